//! `kfp-ci notify` in a simulated Gitea Actions job against a loopback ntfy stand-in that
//! validates like the real server: the exact request, the deploy job's outputs and failures,
//! ntfy's refusals and rate limits explained.

use std::path::Path;

use kfp_ci::ci::{CiInfo, Destinations, publish_to};
use kfp_ci::report::Counts;

use crate::ci::{TOKEN, gitea_env, parse_act_outputs, sample_report, stderr, write_report};
use crate::common::TestContext;
use crate::ntfy_server::{Auth, NtfyServer, Scripted, closed_port_url};

#[test]
fn notify_in_gitea_sends_the_exact_request() {
    let ntfy = NtfyServer::start(Auth::Token(TOKEN.into()));
    let ctx = TestContext::new();
    let report = write_report(&ctx, &sample_report());
    let mut cmd = ctx.cmd();
    gitea_env(&mut cmd, &format!("{}/api/v1", ntfy.url));
    let output = cmd
        .args(["notify", "--report-file"])
        .arg(&report)
        .args(["--job-status", "failure"])
        .env("KFP_CI_NTFY_URL", format!("{}/kfp-deploys", ntfy.url))
        .env("NTFY_TOKEN", TOKEN)
        .output()
        .expect("run");
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(!err.contains(TOKEN), "token printed: {err}");
    assert!(output.stdout.is_empty());

    let requests = ntfy.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = &requests[0];
    assert_eq!(request.status, 200);
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/")
    );
    assert_eq!(
        request.authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(request.content_type.as_deref(), Some("application/json"));
    let body = request.json();
    assert!(body["message"].as_str().expect("message").len() < 4096);
    insta::assert_snapshot!(
        "gitea_ntfy_request",
        serde_json::to_string_pretty(&body).expect("json")
    );
}

#[test]
fn notify_from_the_deploy_jobs_outputs_like_the_workflow() {
    // The deploy job writes $GITHUB_OUTPUT; the runner turns it into job outputs; the notify job
    // gets `report` and `result` through env.
    let ntfy = NtfyServer::start(Auth::Open);
    let ctx = TestContext::new();
    let output = ctx.write("github_output", "");
    let mut report = sample_report();
    report.pipelines.truncate(3);
    report.counts = Counts {
        discovered: 3,
        compiled: 3,
        created: 2,
        updated: 1,
        ..Counts::default()
    };
    report.ci = Some(CiInfo {
        platform: "gitea".into(),
        repository: Some("ml-team/pipelines".into()),
        commit_sha: Some("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b".into()),
        run_url: Some("https://git.example.com/ml-team/pipelines/actions/runs/4711".into()),
        ..CiInfo::default()
    });
    publish_to(
        &report,
        &Destinations {
            github_output: Some(output.clone()),
            ..Destinations::default()
        },
    );
    let outputs = parse_act_outputs(&std::fs::read_to_string(&output).expect("outputs"));
    let mut cmd = ctx.cmd();
    gitea_env(&mut cmd, &closed_port_url());
    let out = cmd
        .arg("notify")
        .env("KFP_CI_REPORT", &outputs["report"])
        .env("KFP_CI_JOB_STATUS", "success")
        .env("KFP_CI_NTFY_URL", format!("{}/kfp-deploys", ntfy.url))
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let sent = ntfy.accepted();
    assert_eq!(sent.len(), 1);
    let body = sent[0].json();
    assert_eq!(
        body["title"],
        "ml-team/pipelines: deployed 3 uploaded, 0 unchanged"
    );
    assert_eq!(body["priority"], 3);
    assert_eq!(body["tags"], serde_json::json!(["white_check_mark"]));
    assert_eq!(
        body["click"],
        "https://git.example.com/ml-team/pipelines/actions/runs/4711"
    );
    // No auth configured on the server and none sent.
    assert_eq!(sent[0].authorization, None);
}

#[test]
fn deploy_job_that_failed_before_reporting_still_notifies_with_the_run_link() {
    // The Gitea version comes from the server's /api/v1/version (the stand-in says 1.25.2), so the
    // run link uses the run number; `ci.server_url` replaces the runner's internal address.
    let ntfy = NtfyServer::start(Auth::Open);
    let ctx = TestContext::new();
    ctx.write(
        "kfp-ci.toml",
        "[ci]\nserver_url = \"https://git.example.com/\"\n",
    );
    let mut cmd = ctx.cmd();
    gitea_env(&mut cmd, &format!("{}/api/v1", ntfy.url));
    let out = cmd
        .args(["notify", "--job-status", "failure"])
        .env("KFP_CI_REPORT", "")
        .env("KFP_CI_NTFY_URL", format!("{}/kfp-deploys", ntfy.url))
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let sent = ntfy.accepted();
    assert_eq!(sent.len(), 1, "{:?}", ntfy.requests());
    let body = sent[0].json();
    assert_eq!(body["title"], "ml-team/pipelines: deploy failed");
    assert_eq!(body["priority"], 4);
    assert_eq!(body["tags"], serde_json::json!(["rotating_light"]));
    assert_eq!(
        body["click"],
        "https://git.example.com/ml-team/pipelines/actions/runs/42"
    );
    let message = body["message"].as_str().expect("message");
    assert!(
        message.contains("the deploy job failed before it could report"),
        "{message}"
    );
    assert!(
        message.contains("commit `9f86d08` on `main` by alice"),
        "{message}"
    );
    assert_eq!(body["actions"][0]["label"], "Open run");
}

#[test]
fn skipped_deploy_job_and_notify_on_failure_send_nothing() {
    let ntfy = NtfyServer::start(Auth::Open);
    let ctx = TestContext::new();
    let mut ok = sample_report();
    ok.pipelines.truncate(5);
    ok.counts.failed = 0;
    let report = write_report(&ctx, &ok);
    for (args, on) in [
        (vec!["--job-status", "skipped"], "always"),
        (vec!["--job-status", "success"], "failure"),
    ] {
        let mut cmd = ctx.cmd();
        gitea_env(&mut cmd, &closed_port_url());
        let out = cmd
            .args(["notify", "--report-file"])
            .arg(&report)
            .args(args)
            .env("KFP_CI_NOTIFY_ON", on)
            .env("KFP_CI_NTFY_URL", format!("{}/kfp-deploys", ntfy.url))
            .output()
            .expect("run");
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert!(ntfy.requests().is_empty());
}

pub(crate) fn notify_cmd(ctx: &TestContext, ntfy_url: &str, report: &Path) -> assert_cmd::Command {
    let mut cmd = ctx.cmd();
    gitea_env(&mut cmd, &closed_port_url());
    cmd.args(["notify", "--report-file"])
        .arg(report)
        .env("KFP_CI_NTFY_URL", format!("{ntfy_url}/kfp-deploys"));
    cmd
}

#[test]
fn ntfy_down_is_a_warning_unless_required() {
    let ctx = TestContext::new();
    let report = write_report(&ctx, &sample_report());
    let down = closed_port_url();
    let out = notify_cmd(&ctx, &down, &report).output().expect("run");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("notification not sent"), "{err}");
    assert!(err.contains("cannot connect to ntfy at"), "{err}");
    assert!(err.contains("(3 attempts)"), "{err}");

    let out = notify_cmd(&ctx, &down, &report)
        .arg("--notify-required")
        .output()
        .expect("run");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("error: the notification is required"), "{err}");
    assert!(err.contains("cannot connect to ntfy at"), "{err}");
}

#[test]
fn rate_limited_then_accepted() {
    let ntfy = NtfyServer::start(Auth::Open);
    ntfy.script(&[Scripted::TooManyRequests, Scripted::ServerError]);
    let ctx = TestContext::new();
    let report = write_report(&ctx, &sample_report());
    let out = notify_cmd(&ctx, &ntfy.url, &report)
        .arg("--notify-required")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let statuses: Vec<u16> = ntfy.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 500, 200]);
    // Every attempt sends the same body.
    let bodies: Vec<Vec<u8>> = ntfy.requests().into_iter().map(|r| r.body).collect();
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn rate_limited_every_time_is_explained() {
    let ntfy = NtfyServer::start(Auth::Open);
    ntfy.script(&[Scripted::TooManyRequests; 5]);
    let ctx = TestContext::new();
    let report = write_report(&ctx, &sample_report());
    let out = notify_cmd(&ctx, &ntfy.url, &report).output().expect("run");
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(ntfy.requests().len(), 3, "three attempts");
    assert!(
        err.contains("HTTP 429 code 42901: limit reached: too many requests"),
        "{err}"
    );
    assert!(err.contains("rate limited after 3 attempts"), "{err}");
}

#[test]
fn wrong_token_and_missing_permission_are_explained_without_the_token() {
    let ntfy = NtfyServer::start(Auth::Token(TOKEN.into()));
    let ctx = TestContext::new();
    let report = write_report(&ctx, &sample_report());
    let wrong = "tk_0000000000000000000000000000x";
    let out = notify_cmd(&ctx, &ntfy.url, &report)
        .env("NTFY_TOKEN", wrong)
        .output()
        .expect("run");
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("HTTP 401 code 40101: unauthorized"), "{err}");
    assert!(
        err.contains("NTFY_TOKEN must be a current access token"),
        "{err}"
    );
    assert!(!err.contains(wrong), "{err}");
    assert_eq!(ntfy.requests().len(), 1, "a 401 is not retried");

    // No credentials at all on a server that needs them: 403 from ntfy.
    let out = notify_cmd(&ctx, &ntfy.url, &report).output().expect("run");
    let err = stderr(&out);
    assert!(err.contains("HTTP 403 code 40301: forbidden"), "{err}");

    // Right token, but no write permission on the topic.
    ntfy.deny_write("kfp-deploys");
    let out = notify_cmd(&ctx, &ntfy.url, &report)
        .env("NTFY_TOKEN", TOKEN)
        .arg("--notify-required")
        .output()
        .expect("run");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("may not publish to topic \"kfp-deploys\""),
        "{err}"
    );
    assert!(!err.contains(TOKEN), "{err}");
}

#[test]
fn basic_auth_with_user_and_password() {
    let ntfy = NtfyServer::start(Auth::User("ci-bot".into(), "s3cret-pässword".into()));
    let ctx = TestContext::new();
    let report = write_report(&ctx, &sample_report());
    let out = notify_cmd(&ctx, &ntfy.url, &report)
        .env("NTFY_USER", "ci-bot")
        .env("NTFY_PASSWORD", "s3cret-pässword")
        .arg("--notify-required")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ntfy.accepted().len(), 1);
    assert!(
        ntfy.accepted()[0]
            .authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Basic "))
    );
}

#[test]
fn a_huge_failure_list_is_cut_under_4096_bytes() {
    let ntfy = NtfyServer::start(Auth::Open);
    let ctx = TestContext::new();
    let mut report = sample_report();
    let failed = report.pipelines[5].clone();
    for i in 0..150 {
        let mut p = failed.clone();
        p.name = format!("pipeline_ünïcødé_{i:03}");
        report.pipelines.push(p);
    }
    report.counts.failed = 151;
    let path = write_report(&ctx, &report);
    let out = notify_cmd(&ctx, &ntfy.url, &path)
        .arg("--notify-required")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let sent = ntfy.accepted();
    assert_eq!(sent.len(), 1, "{:?}", ntfy.requests());
    let message = sent[0].json()["message"]
        .as_str()
        .expect("message")
        .to_string();
    assert!(message.len() < 4096);
    let last = message.lines().last().expect("last");
    let shown = message.lines().filter(|l| l.starts_with("- ")).count();
    // 151 failures + 3 uploads listed in all.
    assert_eq!(last, format!("…and {} more", 154 - shown));
}

#[test]
fn ntfy_stand_in_rejects_what_ntfy_rejects() {
    // The stand-in is only worth its tests if it refuses what the real server refuses.
    let ntfy = NtfyServer::start(Auth::Token(TOKEN.into()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = crate::common::http_client();
    let post = |path: &str, auth: Option<&str>, body: serde_json::Value| {
        let mut req = client.post(format!("{}{path}", ntfy.url)).json(&body);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        rt.block_on(async { req.send().await.expect("send").status().as_u16() })
    };
    let bearer = format!("Bearer {TOKEN}");
    let lower = format!("bearer {TOKEN}");
    let ok = serde_json::json!({"topic": "t", "message": "hi", "priority": 4, "tags": ["a"], "markdown": true});
    assert_eq!(post("/", Some(&bearer), ok.clone()), 200);
    assert_eq!(post("/", Some(&lower), ok.clone()), 401);
    assert_eq!(post("/", None, ok.clone()), 403);
    assert_eq!(post("/", Some("Bearer tk_short"), ok.clone()), 401);
    let with = |key: &str, value: serde_json::Value| {
        let mut body = ok.clone();
        body[key] = value;
        body
    };
    assert_eq!(
        post("/", Some(&bearer), with("priority", "high".into())),
        400
    );
    assert_eq!(post("/", Some(&bearer), with("priority", 6.into())), 400);
    assert_eq!(post("/", Some(&bearer), with("tags", "a,b".into())), 400);
    assert_eq!(
        post("/", Some(&bearer), with("markdown", "yes".into())),
        400
    );
    assert_eq!(post("/", Some(&bearer), with("topic", "a.b".into())), 400);
    assert_eq!(post("/", Some(&bearer), with("topic", "v1".into())), 400);
    assert_eq!(
        post("/", Some(&bearer), with("message", "x".repeat(4095).into())),
        200
    );
    assert_eq!(
        post("/", Some(&bearer), with("message", "x".repeat(4096).into())),
        400
    );
    let actions = serde_json::json!([
        {"action": "view", "label": "a", "url": "https://a"},
        {"action": "view", "label": "b", "url": "https://b"},
        {"action": "view", "label": "c", "url": "https://c"},
        {"action": "view", "label": "d", "url": "https://d"}
    ]);
    assert_eq!(post("/", Some(&bearer), with("actions", actions)), 400);
    assert_eq!(post("/a.b", Some(&bearer), ok.clone()), 404);
    assert_eq!(post("/t/", Some(&bearer), ok.clone()), 404);
}
