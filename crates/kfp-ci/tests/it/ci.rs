//! CI integration end to end: a simulated Gitea Actions job (its variables, `GITHUB_OUTPUT` and
//! `GITHUB_STEP_SUMMARY` files), the real binary, and a loopback ntfy stand-in that validates like
//! the real server.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use kfp_ci::ci::{CiInfo, Destinations, publish_to};
use kfp_ci::report::{Action, Counts, PipelineError, PipelineReport, Report, Status, TargetInfo};

use crate::common::TestContext;
use crate::notify::notify_cmd;
use crate::ntfy_server::{Auth, NtfyServer, Scripted, closed_port_url};

pub(crate) const TOKEN: &str = "tk_AgQdq7mVBoFD37zQVN29RhuMzNIz2";

/// The report a deploy of six pipelines produces: two created, one new version, two unchanged,
/// one that failed to compile.
pub(crate) fn sample_report() -> Report {
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
pub(crate) fn gitea_env(cmd: &mut assert_cmd::Command, api_url: &str) {
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

pub(crate) fn write_report(ctx: &TestContext, report: &Report) -> PathBuf {
    ctx.write(
        "kfp-ci-report.json",
        &serde_json::to_string_pretty(report).expect("json"),
    )
}

pub(crate) fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Parse `$GITHUB_OUTPUT` the way act (nektos/act, gitea/act, Forgejo runner) does: `key=value`
/// or `key<<DELIM` … `DELIM`; any other line, a blank one included, fails the step; a line over
/// 64 KiB ends parsing.
pub(crate) fn parse_act_outputs(text: &str) -> BTreeMap<String, String> {
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
