//! CI integration end to end: a simulated Gitea Actions job (its variables, `GITHUB_OUTPUT` and
//! `GITHUB_STEP_SUMMARY` files), the real binary, and a loopback ntfy stand-in that validates like
//! the real server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kfp_ci::ci::{CiInfo, Destinations, publish_to};
use kfp_ci::report::{Action, Counts, PipelineError, PipelineReport, Report, Status, TargetInfo};

use crate::common::TestContext;
use crate::ntfy_server::{Auth, NtfyServer, Scripted, closed_port_url};

const TOKEN: &str = "tk_AgQdq7mVBoFD37zQVN29RhuMzNIz2";

/// The report a deploy of six pipelines produces: two created, one new version, two unchanged,
/// one that failed to compile.
fn sample_report() -> Report {
    let done = |name: &str, action: Action, reason: &str| PipelineReport {
        name: name.to_string(),
        file: format!("pipelines/{name}.py"),
        action,
        status: if action == Action::Unchanged {
            Status::Skipped
        } else {
            Status::Done
        },
        reason: reason.to_string(),
        url: Some(format!(
            "https://kfp.example.com/#/pipelines/details/{name}"
        )),
        mermaid: matches!(action, Action::Create | Action::NewVersion)
            .then(|| "flowchart TD\n  n1[\"load\"]\n  n2[\"train\"]\n  n1 --> n2\n".to_string()),
        ..PipelineReport::default()
    };
    let mut failed = done("broken_pipeline", Action::Error, "");
    failed.status = Status::Failed;
    failed.url = None;
    failed.error = Some(PipelineError {
        kind: "compile".into(),
        message: "NameError: name 'dsl' is not defined (pipelines/broken_pipeline.py, line 3)".into(),
        detail: "Traceback (most recent call last):\n  File \"pipelines/broken_pipeline.py\", line 3\nNameError: name 'dsl' is not defined".into(),
    });
    Report {
        schema: 1,
        kfp_ci_version: "0.1.0".into(),
        command: "deploy".into(),
        version_tag: Some("v20261124-120000".into()),
        kfp_version: Some("2.17.0".into()),
        target: Some(TargetInfo {
            endpoint: "http://ml-pipeline.kubeflow:8888".into(),
            server_version: Some("2.17.0".into()),
            ui_url: Some("https://kfp.example.com".into()),
            ..TargetInfo::default()
        }),
        counts: Counts {
            discovered: 6,
            compiled: 5,
            created: 2,
            updated: 1,
            unchanged: 2,
            failed: 1,
        },
        pipelines: vec![
            done(
                "document_ingestion_pipeline",
                Action::Create,
                "not on the server",
            ),
            done("training_pipeline", Action::Create, "not on the server"),
            done("evaluation_pipeline", Action::NewVersion, "spec changed"),
            done("batch_scoring_pipeline", Action::Unchanged, "same spec"),
            done("feature_pipeline", Action::Unchanged, "same spec"),
            failed,
        ],
        errors: vec![],
        ci: None,
        started_at: "2026-11-24T12:00:00Z".into(),
        duration_ms: 4200,
        dry_run: false,
        ..Report::default()
    }
}

/// What a Gitea Actions job sees (act_runner, late 2025).
fn gitea_env(cmd: &mut assert_cmd::Command, api_url: &str) {
    cmd.env("GITEA_ACTIONS", "true")
        .env("GITEA_ACTIONS_RUNNER_VERSION", "v0.2.13")
        .env("GITHUB_ACTIONS", "true")
        .env("ACT", "true")
        .env("CI", "true")
        .env("GITHUB_SERVER_URL", "http://gitea-http.gitea.svc:3000")
        .env("GITHUB_API_URL", api_url)
        .env("GITHUB_REPOSITORY", "ml-team/pipelines")
        .env("GITHUB_REPOSITORY_OWNER", "ml-team")
        .env("GITHUB_SHA", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b")
        .env("GITHUB_REF", "refs/heads/main")
        .env("GITHUB_REF_NAME", "main")
        .env("GITHUB_EVENT_NAME", "push")
        .env("GITHUB_ACTOR", "alice")
        .env("GITHUB_WORKFLOW", "compile-upload")
        .env("GITHUB_JOB", "notify")
        .env("GITHUB_RUN_ID", "4711")
        .env("GITHUB_RUN_NUMBER", "42")
        .env_remove("FORGEJO_ACTIONS")
        .env_remove("KFP_CI_REPORT")
        .env_remove("KFP_CI_JOB_STATUS")
        .env_remove("KFP_CI_RUN_URL")
        .env_remove("KFP_CI_NOTIFY_ON")
        .env_remove("NTFY_USER")
        .env_remove("NTFY_PASSWORD");
}

fn write_report(ctx: &TestContext, report: &Report) -> PathBuf {
    ctx.write(
        "kfp-ci-report.json",
        &serde_json::to_string_pretty(report).expect("json"),
    )
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Parse `$GITHUB_OUTPUT` the way act (nektos/act, gitea/act, Forgejo runner) does: `key=value`
/// or `key<<DELIM` … `DELIM`; any other line, a blank one included, fails the step; a line over
/// 64 KiB ends parsing.
fn parse_act_outputs(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.split('\n').peekable();
    while let Some(line) = lines.next() {
        if line.is_empty() && lines.peek().is_none() {
            break; // the newline that ends the file
        }
        assert!(line.len() < 64 * 1024, "act stops at a line over 64 KiB");
        let eq = line.find('=');
        let heredoc = line.find("<<");
        match (eq, heredoc) {
            (_, Some(h)) if eq.is_none_or(|e| h < e) => {
                let key = &line[..h];
                let delimiter = &line[h + 2..];
                let mut value = Vec::new();
                loop {
                    let next = lines
                        .next()
                        .unwrap_or_else(|| panic!("unterminated heredoc {delimiter}"));
                    if next == delimiter {
                        break;
                    }
                    value.push(next);
                }
                out.insert(key.to_string(), value.join("\n"));
            }
            (Some(e), _) => {
                out.insert(line[..e].to_string(), line[e + 1..].to_string());
            }
            _ => panic!("invalid format {line:?}, expected a line with '=' or '<<'"),
        }
    }
    out
}

#[test]
fn outputs_file_and_step_summary_in_gitea() {
    let ctx = TestContext::new();
    let output = ctx.write("runner/github_output", "");
    let summary = ctx.write("runner/step_summary", "");
    let mut report = sample_report();
    report.ci = Some(CiInfo {
        platform: "gitea".into(),
        commit_sha: Some("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b".into()),
        git_ref: Some("main".into()),
        repository: Some("ml-team/pipelines".into()),
        actor: Some("alice".into()),
        run_id: Some("4711".into()),
        run_number: Some("42".into()),
        run_url: Some("https://git.example.com/ml-team/pipelines/actions/runs/4711".into()),
    });
    let written = publish_to(
        &report,
        &Destinations {
            github_output: Some(output.clone()),
            step_summary: Some(summary.clone()),
            dotenv: None,
        },
    );
    assert_eq!(written, 2);
    let text = std::fs::read_to_string(&output).expect("outputs");
    let parsed = parse_act_outputs(&text);
    assert_eq!(
        parsed.keys().collect::<Vec<_>>(),
        [
            "compiled",
            "failed",
            "failed_names",
            "report",
            "unchanged",
            "uploaded",
            "version_tag"
        ]
    );
    let back: Report = serde_json::from_str(&parsed["report"]).expect("report output is JSON");
    assert_eq!(back.counts, report.counts);
    assert!(back.pipelines.iter().all(|p| p.mermaid.is_none()));
    insta::assert_snapshot!("gitea_github_output", text);
    insta::assert_snapshot!(
        "gitea_step_summary",
        std::fs::read_to_string(&summary).expect("summary")
    );

    // A second step appends; an unwritable destination is a warning, not a failure.
    let written = publish_to(
        &report,
        &Destinations {
            github_output: Some(output.clone()),
            step_summary: Some(ctx.root().join("no/such/dir/summary")),
            dotenv: Some(ctx.root().join("kfp-ci.env")),
        },
    );
    assert_eq!(written, 2);
    let twice = std::fs::read_to_string(&output).expect("outputs");
    assert_eq!(twice, format!("{text}{text}"));
    let dotenv = std::fs::read_to_string(ctx.root().join("kfp-ci.env")).expect("dotenv");
    for line in dotenv.lines() {
        let (key, _) = line.split_once('=').expect("KEY=value");
        assert!(
            key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{key}"
        );
    }
    assert!(dotenv.contains("KFP_CI_UPLOADED=3\n"));
}

#[test]
fn a_report_over_64_kib_stays_parsable_by_act() {
    let ctx = TestContext::new();
    let output = ctx.write("github_output", "");
    let mut report = sample_report();
    let failed = report.pipelines[5].clone();
    for i in 0..300 {
        let mut p = failed.clone();
        p.name = format!("generated_{i:03}_pipeline");
        p.error.as_mut().expect("error").detail = "x".repeat(3000);
        report.pipelines.push(p);
    }
    publish_to(
        &report,
        &Destinations {
            github_output: Some(output.clone()),
            ..Destinations::default()
        },
    );
    let text = std::fs::read_to_string(&output).expect("outputs");
    assert!(text.len() > 64 * 1024);
    let parsed = parse_act_outputs(&text);
    let back: Report = serde_json::from_str(&parsed["report"]).expect("JSON");
    assert_eq!(back.pipelines.len(), 306);
    assert_eq!(parsed["failed_names"].split(',').count(), 301);
}

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

fn notify_cmd(ctx: &TestContext, ntfy_url: &str, report: &Path) -> assert_cmd::Command {
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

// ---------------------------------------------------------------------------------------------
// `kfp-ci init`

/// A Python tool from the test venv (`scripts/test` installs tests/requirements.txt there).
fn venv_tool(name: &str) -> PathBuf {
    let python = crate::common::python();
    let tool = python.parent().expect("venv bin").join(name);
    assert!(
        tool.exists(),
        "{} is missing: run `scripts/test` (it installs tests/requirements.txt)",
        tool.display()
    );
    tool
}

fn run_tool(tool: &str, args: &[&str], file: &Path) {
    let out = crate::common::command(venv_tool(tool))
        .args(args)
        .arg(file)
        .env("NO_COLOR", "1")
        .output()
        .expect("run tool");
    assert!(
        out.status.success(),
        "{tool} {args:?} {} failed:\n{}\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn yaml(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("read");
    serde_yaml::from_str(&text).expect("valid YAML")
}

fn init(ctx: &TestContext, args: &[&str]) -> std::process::Output {
    ctx.cmd().arg("init").args(args).output().expect("run init")
}

#[test]
fn init_quiet_writes_the_files_and_says_nothing() {
    let ctx = TestContext::new();
    let out = init(&ctx, &["-q"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "-q: nothing on stderr");
    assert!(out.stdout.is_empty());
    let workflow = ctx.root().join(".gitea/workflows/compile-upload.yaml");
    assert!(workflow.is_file(), "the workflow is written");
    assert!(
        ctx.root().join("kfp-ci.toml").is_file(),
        "the configuration is written"
    );

    // Without -q the same run lists what it did and the next steps.
    let out = init(&ctx, &["--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("overwrote") && said.contains("next steps:"),
        "{said}"
    );
}

#[test]
fn init_gitea_writes_a_valid_safe_workflow() {
    let ctx = TestContext::new();
    let out = init(&ctx, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let workflow = ctx.root().join(".gitea/workflows/compile-upload.yaml");
    run_tool(
        "check-jsonschema",
        &["--builtin-schema", "vendor.github-workflows"],
        &workflow,
    );
    run_tool("zizmor", &["--offline"], &workflow);

    let w = yaml(&workflow);
    // serde_yaml reads `on` as a string key (YAML 1.2), as GitHub does.
    let on = &w["on"];
    assert_eq!(on["push"]["branches"], serde_json::json!(["main"]));
    assert_eq!(
        on["push"]["paths"],
        serde_json::json!(["**/*_pipeline.py", "**/*pipeline*.py", "kfp-ci.toml"])
    );
    assert!(on.get("workflow_dispatch").is_some());
    assert_eq!(w["permissions"], serde_json::json!({"contents": "read"}));

    let deploy = &w["jobs"]["compile-and-upload"];
    let outputs = deploy["outputs"].as_object().expect("outputs");
    // Every output the deploy step writes is exported by the job, and nothing else.
    let written: Vec<&str> = vec![
        "compiled",
        "uploaded",
        "unchanged",
        "failed",
        "version_tag",
        "failed_names",
        "smoke_failed",
        "report",
    ];
    let mut keys: Vec<&str> = outputs.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = written.clone();
    expected.sort_unstable();
    assert_eq!(keys, expected);
    for key in written {
        assert_eq!(
            outputs[key],
            format!("${{{{ steps.deploy.outputs.{key} }}}}"),
            "{key}"
        );
    }
    let steps = deploy["steps"].as_array().expect("steps");
    assert!(
        steps[0]["uses"]
            .as_str()
            .expect("uses")
            .starts_with("actions/checkout@")
    );
    let deploy_step = steps
        .iter()
        .find(|s| s["id"] == "deploy")
        .expect("deploy step");
    assert!(
        deploy_step["run"]
            .as_str()
            .expect("run")
            .starts_with("kfp-ci deploy")
    );
    assert!(
        deploy_step["env"]["KF_PIPELINES_ENDPOINT"]
            .as_str()
            .expect("endpoint")
            .contains("http://ml-pipeline.kubeflow.svc.cluster.local:8888")
    );
    // Only the notify job notifies, so a configured ntfy URL never sends twice.
    assert_eq!(deploy_step["env"]["KFP_CI_NO_NOTIFY"], "true");
    // The exact kfp-ci that wrote the workflow, as a wheel from PyPI (never built from source),
    // with uv next to it; kfp-ci then makes the kfp virtualenv, which the cache step keeps.
    let version = env!("CARGO_PKG_VERSION");
    let install = steps
        .iter()
        .find(|s| s["name"] == format!("Install kfp-ci {version}"))
        .expect("install step")["run"]
        .as_str()
        .expect("install");
    assert!(
        install.contains(&format!(
            "--only-binary kfp-ci \"kfp-ci=={version}\" \"uv=={}\"",
            kfp_ci::pins::UV_VERSION
        )),
        "{install}"
    );
    let text = std::fs::read_to_string(&workflow).expect("read");
    for never in ["cargo", "rustup", "KFP_CI_GIT_URL", "KFP_CI_INSTALL"] {
        assert!(!text.contains(never), "{never} in the workflow");
    }
    let cache = steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/cache@"))
        })
        .expect("cache step");
    assert_eq!(
        cache["with"]["key"],
        format!(
            "kfp-ci-{version}-kfp2.17.0-${{{{ runner.os }}}}-${{{{ hashFiles('kfp-ci.toml', 'pyproject.toml') }}}}"
        )
    );
    assert!(
        cache["with"]["path"]
            .as_str()
            .expect("path")
            .contains("~/.cache/kfp-ci")
    );
    // The compile cache: saved under a new key per commit, restored from the newest of the same
    // kfp version (and configuration).
    let compile = steps
        .iter()
        .find(|s| s["with"]["path"] == ".kfp-ci/cache")
        .expect("compile cache step");
    let prefix = "kfp-ci-compile-kfp2.17.0-${{ runner.os }}-";
    let files = "${{ hashFiles('kfp-ci.toml', 'pyproject.toml') }}-";
    assert_eq!(
        compile["with"]["key"],
        format!("{prefix}{files}${{{{ github.sha }}}}")
    );
    assert_eq!(
        compile["with"]["restore-keys"],
        format!("{prefix}{files}\n{prefix}\n")
    );
    // The notify job needs no kfp: kfp-ci alone.
    let notify_install = w["jobs"]["notify"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["name"] == format!("Install kfp-ci {version}"))
        .expect("notify install")["run"]
        .as_str()
        .expect("run");
    assert!(
        notify_install.contains(&format!("\"kfp-ci=={version}\""))
            && !notify_install.contains("uv=="),
        "{notify_install}"
    );
    assert!(deploy_step["env"].get("KFP_CI_PYTHON").is_none());

    let notify = &w["jobs"]["notify"];
    assert_eq!(notify["needs"], "compile-and-upload");
    assert_eq!(notify["if"], "always()");
    let notify_step = notify["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["run"] == "kfp-ci notify")
        .expect("notify step");
    assert_eq!(
        notify_step["env"]["KFP_CI_REPORT"],
        "${{ needs.compile-and-upload.outputs.report }}"
    );
    assert_eq!(
        notify_step["env"]["KFP_CI_JOB_STATUS"],
        "${{ needs.compile-and-upload.result }}"
    );
    // Secrets only by reference, and only in `env:` (never expanded inside a script).
    let text = std::fs::read_to_string(&workflow).expect("read");
    for line in text.lines().filter(|l| l.contains("secrets.")) {
        let line = line.trim();
        assert!(
            line.starts_with("KF_PIPELINES_TOKEN: ${{ secrets.")
                || line.starts_with("NTFY_TOKEN: ${{ secrets."),
            "{line}"
        );
    }

    // The configuration parses, and so does every commented-out setting once enabled.
    let config_path = ctx.root().join("kfp-ci.toml");
    kfp_ci::settings::read_file(&config_path).expect("generated kfp-ci.toml parses");
    let config = std::fs::read_to_string(&config_path).expect("read");
    let enabled: String = config
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '[') => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let all = ctx.write("enabled.toml", &enabled);
    let parsed = kfp_ci::settings::read_file(&all).expect("every documented setting is real");
    assert_eq!(
        parsed.notify.ntfy.url.as_deref(),
        Some("https://ntfy.example.com/kfp-deploys")
    );
    assert_eq!(parsed.ci.gitea_version.as_deref(), Some("1.26"));
    assert_eq!(parsed.kfp_version.as_deref(), Some("2.17.0"));
}

#[test]
fn init_networkpolicy_admits_the_runner_namespace() {
    let ctx = TestContext::new();
    let out = init(
        &ctx,
        &[
            "--kfp-namespace",
            "kubeflow-prod",
            "--runner-namespace",
            "ci-runners",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let np = yaml(
        &ctx.root()
            .join("deploy/networkpolicy-allow-gitea-ingress.yaml"),
    );
    assert_eq!(np["apiVersion"], "networking.k8s.io/v1");
    assert_eq!(np["kind"], "NetworkPolicy");
    assert_eq!(np["metadata"]["namespace"], "kubeflow-prod");
    assert_eq!(
        np["metadata"]["name"],
        "allow-ci-runners-ingress-to-ml-pipeline"
    );
    assert_eq!(
        np["spec"]["podSelector"],
        serde_json::json!({"matchLabels": {"app": "ml-pipeline"}})
    );
    assert_eq!(np["spec"]["policyTypes"], serde_json::json!(["Ingress"]));
    let ingress = np["spec"]["ingress"].as_array().expect("ingress");
    assert_eq!(ingress.len(), 1);
    assert_eq!(
        ingress[0]["from"],
        serde_json::json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ci-runners"}}}])
    );
    assert_eq!(
        ingress[0]["ports"],
        serde_json::json!([{"protocol": "TCP", "port": 8888}])
    );
    // The in-cluster endpoint in the workflow points at the same namespace.
    let workflow = std::fs::read_to_string(ctx.root().join(".gitea/workflows/compile-upload.yaml"))
        .expect("workflow");
    assert!(workflow.contains("http://ml-pipeline.kubeflow-prod.svc.cluster.local:8888"));

    let out = init(&ctx, &["--force", "--runner-namespace", "Not_A_Namespace"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--runner-namespace \"Not_A_Namespace\""));
}

#[test]
fn init_github_forgejo_gitlab_validate() {
    for (ci, path, schema) in [
        (
            "github",
            ".github/workflows/compile-upload.yaml",
            "vendor.github-workflows",
        ),
        (
            "forgejo",
            ".forgejo/workflows/compile-upload.yaml",
            "vendor.github-workflows",
        ),
        ("gitlab", ".gitlab-ci.yml", "vendor.gitlab-ci"),
    ] {
        let ctx = TestContext::new();
        let out = init(&ctx, &["--ci", ci]);
        assert!(out.status.success(), "{ci}: {}", stderr(&out));
        let file = ctx.root().join(path);
        run_tool("check-jsonschema", &["--builtin-schema", schema], &file);
        if ci != "gitlab" {
            run_tool("zizmor", &["--offline"], &file);
        }
    }
    // GitLab: the notify job runs always, with the deploy job's artifacts, and the dotenv file
    // is the one `kfp-ci deploy` writes by default there.
    let ctx = TestContext::new();
    assert!(init(&ctx, &["--ci", "gitlab"]).status.success());
    let g = yaml(&ctx.root().join(".gitlab-ci.yml"));
    assert_eq!(
        g["compile-and-upload"]["artifacts"]["reports"]["dotenv"],
        kfp_ci::ci::DEFAULT_DOTENV
    );
    assert_eq!(g["compile-and-upload"]["artifacts"]["when"], "always");
    assert_eq!(
        g["notify"]["needs"],
        serde_json::json!([{"job": "compile-and-upload", "artifacts": true}])
    );
    for rule in g["notify"]["rules"].as_array().expect("rules") {
        assert_eq!(rule["when"], "always");
    }
    // kfp-ci from PyPI at the version that wrote the file; the kfp virtualenv and pip downloads
    // cached inside the project directory (GitLab caches only paths there).
    let install = &g[".install-kfp-ci"];
    let script: Vec<&str> = install["before_script"]
        .as_array()
        .expect("before_script")
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    assert!(
        script.iter().any(|l| l.contains(&format!(
            "--only-binary kfp-ci \"kfp-ci=={}\"",
            env!("CARGO_PKG_VERSION")
        ))),
        "{script:?}"
    );
    assert!(!script.iter().any(|l| l.contains("cargo")), "{script:?}");
    assert_eq!(
        install["variables"]["KFP_CI_CACHE_DIR"],
        "$CI_PROJECT_DIR/.cache/kfp-ci"
    );
    assert_eq!(
        install["cache"]["paths"],
        serde_json::json!([".cache/pip", ".cache/kfp-ci"])
    );
    assert_eq!(
        install["cache"]["key"]["files"],
        serde_json::json!(["kfp-ci.toml", "pyproject.toml"])
    );
}

#[test]
fn init_never_overwrites_without_force_and_keeps_an_existing_config() {
    let ctx = TestContext::new();
    ctx.write(
        "pyproject.toml",
        "[project]\nname = \"x\"\n[tool.kfp-ci]\nmax_depth = 2\n",
    );
    ctx.write(".gitea/workflows/compile-upload.yaml", "# mine\n");
    let out = init(&ctx, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(".gitea/workflows/compile-upload.yaml already exists: pass --force"),
        "{err}"
    );
    assert!(
        !ctx.root().join("deploy").exists(),
        "nothing written on a conflict"
    );
    assert_eq!(
        std::fs::read_to_string(ctx.root().join(".gitea/workflows/compile-upload.yaml"))
            .expect("read"),
        "# mine\n"
    );
    let out = init(&ctx, &["--force"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("overwrote .gitea/workflows/compile-upload.yaml"),
        "{err}"
    );
    assert!(
        err.contains("kept pyproject.toml (a configuration exists)"),
        "{err}"
    );
    assert!(!ctx.root().join("kfp-ci.toml").exists());
}

// ---------------------------------------------------------------------------------------------
// `kfp-ci deploy` inside a simulated Gitea job, against `kfp-ci serve`, then the notify job.

const TRAIN: &str = r#"from kfp import dsl


@dsl.component(base_image="python:3.11-slim")
def load(rows: int) -> int:
    return rows


@dsl.component(base_image="python:3.11-slim")
def train(rows: int) -> str:
    return f"model trained on {rows} rows"


@dsl.pipeline(name="train-pipeline")
def train_pipeline(rows: int = 100):
    data = load(rows=rows)
    train(rows=data.output)
"#;

const SCORE: &str = r#"from kfp import dsl


@dsl.component(base_image="python:3.11-slim")
def score(n: int) -> int:
    return n


@dsl.pipeline(name="score-pipeline")
def score_pipeline(n: int = 2):
    with dsl.ParallelFor([1, 2]) as item:
        score(n=item)
"#;

/// Snapshot filters for a deploy against `kfp-ci serve`: ports, ids, hashes, times, versions.
fn deploy_snapshot_settings(ctx: &TestContext) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    let root = ctx.root().display().to_string();
    let escaped: String = root
        .chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$#&-~".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect();
    s.add_filter(&escaped, "[REPO]");
    s.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]");
    s.add_filter(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "[UUID]",
    );
    s.add_filter(r"c1-[0-9a-f]{40}", "[HASH]");
    s.add_filter(r#""([a-z_]+_ms)":\d+"#, r#""$1":[MS]"#);
    s.add_filter(r#""started_at":"[^"]+""#, r#""started_at":"[TIME]""#);
    s.add_filter(
        r#""kfp_ci_version":"[^"]+""#,
        r#""kfp_ci_version":"[VERSION]""#,
    );
    s.add_filter(
        r#""server_version":"[^"]+""#,
        r#""server_version":"[VERSION]""#,
    );
    s.add_filter(r#""detail":"(\\.|[^"\\])*""#, r#""detail":"[DETAIL]""#);
    s
}

#[test]
fn deploy_in_gitea_then_the_notify_job() {
    let ctx = TestContext::new();
    ctx.write("pipelines/train_pipeline.py", TRAIN);
    ctx.write("pipelines/score_pipeline.py", SCORE);
    ctx.write(
        "pipelines/broken_pipeline.py",
        "from kfp import dsl\nimport module_that_does_not_exist\n",
    );
    ctx.write(
        "kfp-ci.toml",
        "[ci]\nserver_url = \"https://git.example.com\"\n",
    );
    let server = crate::common::Server::start(&ctx.root().join("registry.db"), &[]);
    let ntfy = NtfyServer::start(Auth::Token(TOKEN.into()));
    // The runner creates both files empty before the step.
    let github_output = ctx.write("runner/output", "");
    let step_summary = ctx.write("runner/summary", "");

    let mut cmd = ctx.cmd();
    gitea_env(&mut cmd, &format!("{}/api/v1", ntfy.url));
    let out = cmd
        .args(["deploy", "--endpoint", &server.url])
        .args(["--version-tag", "v20261124-120000"])
        .args(["--ui-url", "https://kfp.example.com"])
        .env("GITHUB_OUTPUT", &github_output)
        .env("GITHUB_STEP_SUMMARY", &step_summary)
        .env("KFP_CI_NTFY_URL", format!("{}/kfp-deploys", ntfy.url))
        .env("NTFY_TOKEN", TOKEN)
        .output()
        .expect("run deploy");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "one pipeline fails:\n{err}");
    assert!(!err.contains(TOKEN));

    // The outputs file: act-parsable, exact.
    let outputs_text = std::fs::read_to_string(&github_output).expect("outputs");
    let outputs = parse_act_outputs(&outputs_text);
    assert_eq!(outputs["compiled"], "2");
    assert_eq!(outputs["uploaded"], "2");
    assert_eq!(outputs["unchanged"], "0");
    assert_eq!(outputs["failed"], "1");
    assert_eq!(outputs["version_tag"], "v20261124-120000");
    assert_eq!(outputs["failed_names"], "broken_pipeline");
    let report: Report = serde_json::from_str(&outputs["report"]).expect("report JSON");
    let ci = report.ci.as_ref().expect("ci info");
    assert_eq!(ci.platform, "gitea");
    // Gitea 1.25 (from /api/v1/version): run number; public server URL from kfp-ci.toml.
    assert_eq!(
        ci.run_url.as_deref(),
        Some("https://git.example.com/ml-team/pipelines/actions/runs/42")
    );
    deploy_snapshot_settings(&ctx).bind(|| {
        insta::assert_snapshot!("deploy_in_gitea_github_output", outputs_text);
    });

    // The step summary: the table, the failure, and a Mermaid graph per uploaded pipeline.
    let summary = std::fs::read_to_string(&step_summary).expect("summary");
    assert_eq!(
        summary.matches("```mermaid\nflowchart TD\n").count(),
        2,
        "{summary}"
    );
    assert!(
        summary.contains("subgraph"),
        "ParallelFor as a subgraph:\n{summary}"
    );
    assert!(summary.contains("| `broken_pipeline` |"), "{summary}");
    deploy_snapshot_settings(&ctx).bind(|| {
        insta::assert_snapshot!("deploy_in_gitea_step_summary", summary);
    });

    // The deploy's own notification.
    let sent = ntfy.accepted();
    assert_eq!(sent.len(), 1, "{:?}", ntfy.requests());
    assert_eq!(
        sent[0].authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let from_deploy = sent[0].json();
    assert_eq!(
        from_deploy["title"],
        "ml-team/pipelines: deploy failed: 1 failed, 2 uploaded, 0 unchanged"
    );
    assert_eq!(
        from_deploy["click"],
        "https://git.example.com/ml-team/pipelines/actions/runs/42"
    );

    // The notify job, from the deploy job's outputs, sends the same notification.
    let mut cmd = ctx.cmd();
    gitea_env(&mut cmd, &format!("{}/api/v1", ntfy.url));
    let out = cmd
        .arg("notify")
        .env("KFP_CI_REPORT", &outputs["report"])
        .env("KFP_CI_JOB_STATUS", "failure")
        .env("KFP_CI_NTFY_URL", format!("{}/kfp-deploys", ntfy.url))
        .env("NTFY_TOKEN", TOKEN)
        .output()
        .expect("run notify");
    assert!(out.status.success(), "{}", stderr(&out));
    let sent = ntfy.accepted();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].json(), from_deploy);

    // Redeploy: nothing changed, so `notify.on = change` sends nothing, and the outputs say so.
    let github_output = ctx.write("runner/output2", "");
    let mut cmd = ctx.cmd();
    gitea_env(&mut cmd, &format!("{}/api/v1", ntfy.url));
    std::fs::remove_file(ctx.root().join("pipelines/broken_pipeline.py")).expect("rm");
    let out = cmd
        .args(["deploy", "--endpoint", &server.url, "--notify-on", "change"])
        .env("GITHUB_OUTPUT", &github_output)
        .env("KFP_CI_NTFY_URL", format!("{}/kfp-deploys", ntfy.url))
        .env("NTFY_TOKEN", TOKEN)
        .output()
        .expect("run deploy");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let outputs = parse_act_outputs(&std::fs::read_to_string(&github_output).expect("outputs"));
    assert_eq!(
        (
            outputs["uploaded"].as_str(),
            outputs["unchanged"].as_str(),
            outputs["failed_names"].as_str()
        ),
        ("0", "2", "")
    );
    assert_eq!(
        ntfy.accepted().len(),
        2,
        "no notification for an unchanged deploy"
    );

    // The generated workflow's deploy step: KFP_CI_NO_NOTIFY leaves notifying to the notify job,
    // even with an ntfy URL in the configuration.
    ctx.write(
        "kfp-ci.toml",
        &format!(
            "[ci]\nserver_url = \"https://git.example.com\"\n[notify.ntfy]\nurl = \"{}/kfp-deploys\"\n",
            ntfy.url
        ),
    );
    ctx.write("pipelines/train_pipeline.py", &TRAIN.replace("100", "200"));
    let mut cmd = ctx.cmd();
    gitea_env(&mut cmd, &format!("{}/api/v1", ntfy.url));
    let out = cmd
        .args(["deploy", "--endpoint", &server.url])
        .env("KFP_CI_NO_NOTIFY", "true")
        .env("NTFY_TOKEN", TOKEN)
        .output()
        .expect("run deploy");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(ntfy.accepted().len(), 2, "KFP_CI_NO_NOTIFY sends nothing");
    let mut cmd = ctx.cmd();
    gitea_env(&mut cmd, &format!("{}/api/v1", ntfy.url));
    let out = cmd
        .args(["deploy", "--endpoint", &server.url, "--force"])
        .env("NTFY_TOKEN", TOKEN)
        .output()
        .expect("run deploy");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        ntfy.accepted().len(),
        3,
        "the configured URL is used otherwise"
    );
}

// ---------------------------------------------------------------------------------------------
// `kfp-ci doctor`

#[test]
fn doctor_checks_endpoint_token_namespace_and_ntfy() {
    let ctx = TestContext::new();
    let token = "serve-token-0123456789";
    let server = crate::common::Server::start(&ctx.root().join("registry.db"), &["--token", token]);
    let ntfy = NtfyServer::start(Auth::Open);
    let doctor = |token: &str, ntfy_url: &str| {
        ctx.cmd()
            .args(["doctor", "--endpoint", &server.url, "--namespace", "team-a"])
            .env("KF_PIPELINES_TOKEN", token)
            .env("KFP_CI_NTFY_URL", format!("{ntfy_url}/kfp-deploys"))
            .output()
            .expect("run doctor")
    };
    let out = doctor(token, &ntfy.url);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    // Check lines carry a mark; indented lines are their details.
    let marks: Vec<&str> = err
        .lines()
        .filter(|l| !l.starts_with(' '))
        .map(|l| &l[..4])
        .collect();
    assert_eq!(marks, ["ok  "; 5], "{err}");
    assert!(err.contains("healthz: "), "{err}");
    assert!(err.contains("credentials accepted"), "{err}");
    assert!(err.contains("namespace team-a visible"), "{err}");
    assert!(
        err.contains("/ healthy; topic kfp-deploys without credentials"),
        "{err}"
    );
    assert!(!err.contains(token));

    let wrong = "not-the-serve-token-42";
    let out = doctor(wrong, &closed_port_url());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("FAIL  healthz: credentials rejected"), "{err}");
    assert!(
        err.contains("hint: the server rejected the credentials"),
        "{err}"
    );
    assert!(err.contains("FAIL  ntfy http://127.0.0.1:"), "{err}");
    assert!(err.contains("connection refused"), "{err}");
    assert!(!err.contains(wrong), "{err}");
}

/// A loopback listener whose accept queue is full: new connections get no SYN-ACK, like a
/// NetworkPolicy that drops packets. The returned values must stay alive.
fn black_hole() -> (std::net::TcpListener, Vec<std::net::TcpStream>, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind");
        socket.listen(1).expect("listen").into_std().expect("std")
    });
    let addr = listener.local_addr().expect("addr");
    let mut held = Vec::new();
    for _ in 0..16 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(stream) => held.push(stream),
            Err(_) => return (listener, held, format!("http://{addr}")),
        }
    }
    panic!("the accept queue never filled up");
}

#[test]
fn doctor_names_the_networkpolicy_on_a_connect_timeout() {
    let ctx = TestContext::new();
    let (_listener, _held, url) = black_hole();
    let out = ctx
        .cmd()
        .args(["doctor", "--connect-timeout", "1", "--endpoint", &url])
        .output()
        .expect("run doctor");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("connect timeout after 1 s"), "{err}");
    assert!(err.contains("NetworkPolicy"), "{err}");
    assert!(
        err.contains("apply deploy/networkpolicy-allow-gitea-ingress.yaml"),
        "{err}"
    );
    assert!(err.contains("skip  healthz, token, namespace"), "{err}");
}

#[test]
fn deploy_in_gitlab_writes_the_dotenv_report() {
    let ctx = TestContext::new();
    ctx.write("pipelines/train_pipeline.py", TRAIN);
    let server = crate::common::Server::start(&ctx.root().join("registry.db"), &[]);
    let out = ctx
        .cmd()
        .args(["deploy", "--endpoint", &server.url, "--no-notify"])
        .args(["--version-tag", "v20261124-120000"])
        .env("GITLAB_CI", "true")
        .env("CI", "true")
        .env("CI_SERVER_URL", "https://gitlab.example.com")
        .env("CI_PROJECT_PATH", "ml/pipelines")
        .env("CI_COMMIT_SHA", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b")
        .env("CI_COMMIT_REF_NAME", "main")
        .env("CI_PIPELINE_ID", "991")
        .env("CI_PIPELINE_IID", "17")
        .env(
            "CI_PIPELINE_URL",
            "https://gitlab.example.com/ml/pipelines/-/pipelines/991",
        )
        .env("GITLAB_USER_LOGIN", "bob")
        .env_remove("KFP_CI_DOTENV")
        .env_remove("ACT")
        .output()
        .expect("run deploy");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The default dotenv file, as `artifacts: reports: dotenv: kfp-ci.env` expects it.
    let dotenv =
        std::fs::read_to_string(ctx.root().join(kfp_ci::ci::DEFAULT_DOTENV)).expect("dotenv");
    let vars: BTreeMap<&str, &str> = dotenv
        .lines()
        .map(|l| l.split_once('=').expect("KEY=value"))
        .collect();
    assert_eq!(
        vars.keys().copied().collect::<Vec<_>>(),
        [
            "KFP_CI_COMPILED",
            "KFP_CI_FAILED",
            "KFP_CI_FAILED_NAMES",
            "KFP_CI_REPORT",
            "KFP_CI_UNCHANGED",
            "KFP_CI_UPLOADED",
            "KFP_CI_VERSION_TAG"
        ]
    );
    assert_eq!(vars["KFP_CI_UPLOADED"], "1");
    assert_eq!(vars["KFP_CI_VERSION_TAG"], "v20261124-120000");
    assert!(dotenv.len() < 5000);
    let report: Report = serde_json::from_str(vars["KFP_CI_REPORT"]).expect("report");
    let ci = report.ci.expect("ci");
    assert_eq!(ci.platform, "gitlab");
    assert_eq!(ci.actor.as_deref(), Some("bob"));
    assert_eq!(
        ci.run_url.as_deref(),
        Some("https://gitlab.example.com/ml/pipelines/-/pipelines/991")
    );
    assert!(!ctx.root().join("runner").exists());
}

#[test]
fn a_413_is_explained_and_not_retried() {
    let ntfy = NtfyServer::start(Auth::Open);
    ntfy.script(&[Scripted::TooLarge, Scripted::TooLarge]);
    let ctx = TestContext::new();
    let report = write_report(&ctx, &sample_report());
    let out = notify_cmd(&ctx, &ntfy.url, &report).output().expect("run");
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(ntfy.requests().len(), 1);
    assert!(err.contains("HTTP 413 code 41303"), "{err}");
    assert!(err.contains("larger than the server accepts"), "{err}");
}

#[test]
fn unreachable_kfp_in_gitea_then_the_notify_job_says_the_deploy_failed() {
    // The deploy job fails before any pipeline is planned (exit 2), but its outputs still carry
    // the report with the error, and the notify job tells the team why, with the run link.
    let ctx = TestContext::new();
    ctx.write("pipelines/train_pipeline.py", TRAIN);
    let ntfy = NtfyServer::start(Auth::Open);
    let github_output = ctx.write("runner/output", "");
    let kfp = closed_port_url();
    let mut cmd = ctx.cmd();
    gitea_env(&mut cmd, &closed_port_url());
    let out = cmd
        .args(["deploy", "--endpoint", &kfp])
        .env("GITHUB_OUTPUT", &github_output)
        .env("KFP_CI_NO_NOTIFY", "true")
        .env("KFP_CI_NTFY_URL", format!("{}/kfp-deploys", ntfy.url))
        .output()
        .expect("run deploy");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let outputs = parse_act_outputs(&std::fs::read_to_string(&github_output).expect("outputs"));
    assert!(
        ntfy.requests().is_empty(),
        "the deploy step does not notify"
    );
    let report = outputs.get("report").cloned().unwrap_or_default();
    assert!(
        report.contains("cannot reach the KFP API"),
        "outputs: {outputs:?}"
    );

    let mut cmd = ctx.cmd();
    gitea_env(&mut cmd, &closed_port_url());
    let out = cmd
        .arg("notify")
        .env("KFP_CI_REPORT", report)
        .env("KFP_CI_JOB_STATUS", "failure")
        .env("KFP_CI_NTFY_URL", format!("{}/kfp-deploys", ntfy.url))
        .output()
        .expect("run notify");
    assert!(out.status.success(), "{}", stderr(&out));
    let sent = ntfy.accepted();
    assert_eq!(sent.len(), 1);
    let body = sent[0].json();
    assert_eq!(body["title"], "ml-team/pipelines: deploy failed");
    assert_eq!(body["priority"], 4);
    // No gitea_version and no answer from the API: Gitea 1.26+ links by run id.
    assert_eq!(
        body["click"],
        "http://gitea-http.gitea.svc:3000/ml-team/pipelines/actions/runs/4711"
    );
    let message = body["message"].as_str().expect("message");
    assert!(
        message.contains(&format!(
            "cannot reach the KFP API at {kfp} (connection refused)"
        )),
        "{message}"
    );
    assert!(!message.contains("KFP_CI_REPORT is empty"), "{message}");
    assert!(!message.contains("0 created"), "{message}");
}
