//! Secrets: redacted whatever their length, a one-character credential refused, a report that
//! cannot be redacted never shown, URLs shown without userinfo or query everywhere, and secrets
//! that user code prints never reaching any output (logs, reports, job outputs, ntfy).

use std::path::Path;

use axum::extract::Request;
use axum::response::IntoResponse;

use crate::common::{Server, TestContext, workspace_root};
use crate::deploy::{HELLO, TAG, assert_exit, json, repo_and_server, run, text};
use crate::ntfy_server::{Auth, NtfyServer};
use crate::server_faults::Stub;

#[test]
fn a_short_secret_echoed_by_the_server_is_redacted() {
    let ctx = TestContext::new();
    ctx.write("hello_pipeline.py", HELLO);
    // A server that puts the Authorization header it got into its error message.
    let stub = Stub::start(|req: &Request| {
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (
            axum::http::StatusCode::BAD_REQUEST,
            [("content-type", "application/json")],
            format!(r#"{{"code":3,"message":"cannot use {auth}"}}"#),
        )
            .into_response()
    });
    let out = ctx
        .cmd()
        .args(["plan", "--endpoint", &stub.url, "-v"])
        .env("KF_PIPELINES_TOKEN", "q7Zx9")
        .output()
        .expect("run");
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cannot use Bearer [redacted]"), "{stderr}");
    assert!(!stderr.contains("q7Zx9"), "{stderr}");
}

#[test]
fn a_one_character_credential_is_a_configuration_error_naming_its_source() {
    let (ctx, server) = repo_and_server(&[("hello_pipeline.py", HELLO)]);
    let out = ctx
        .cmd()
        .args(["plan", "--endpoint", &server.url])
        .env("KF_PIPELINES_TOKEN", "x")
        .output()
        .expect("run");
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the token in KF_PIPELINES_TOKEN is a single character"),
        "{stderr}"
    );

    // A target's own variable, named in the message.
    ctx.write(
        "kfp-ci.toml",
        "[targets.prod]\ncookie_env = \"PROD_COOKIE\"\n",
    );
    let out = ctx
        .cmd()
        .args(["plan", "--endpoint", &server.url, "--target", "prod"])
        .env("PROD_COOKIE", "s")
        .output()
        .expect("run");
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("the cookie in PROD_COOKIE"), "{stderr}");

    let out = ctx
        .cmd()
        .args(["deploy", "--endpoint", &server.url])
        .args(["--ntfy-url", "https://ntfy.example/kfp"])
        .env("NTFY_TOKEN", "t")
        .output()
        .expect("run");
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("the ntfy token in NTFY_TOKEN"), "{stderr}");
}

#[test]
fn a_report_that_cannot_be_redacted_is_never_shown() {
    let (ctx, server) = repo_and_server(&[("hello_pipeline.py", HELLO)]);
    let out = run(
        &ctx,
        &["deploy", "--endpoint", &server.url, "--version-tag", TAG],
    );
    assert_exit(&out, 0);
    // A credential that equals a word of the report ("unchanged"): the report's redacted copy
    // cannot be read back, so CI outputs are not written at all (on main they were written
    // unredacted), and the JSON output is redacted as JSON, never printed as it was.
    let outputs = ctx.root().join("outputs.txt");
    let summary = ctx.root().join("summary.md");
    let out = ctx
        .cmd()
        .args(["deploy", "--endpoint", &server.url, "--output", "json"])
        .args(["--report-file", "report.json"])
        .env("KF_PIPELINES_TOKEN", "unchanged")
        .env("GITHUB_OUTPUT", &outputs)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .expect("run");
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(!stdout.contains("unchanged"), "{stdout}");
    assert!(!stderr.contains("unchanged"), "{stderr}");
    let report = std::fs::read_to_string(ctx.root().join("report.json")).expect("report file");
    assert!(!report.contains("unchanged"), "{report}");
    for file in [&outputs, &summary] {
        let written = std::fs::read_to_string(file).unwrap_or_default();
        assert!(
            !written.contains("unchanged"),
            "{}: {written}",
            file.display()
        );
    }
    assert!(
        stderr.contains("cannot remove the credentials from the report"),
        "{stderr}"
    );
}

#[test]
fn urls_are_shown_without_userinfo_or_query() {
    let (ctx, server) = repo_and_server(&[("hello_pipeline.py", HELLO)]);

    // An endpoint with a token in its query: refused, the token not shown.
    let out = run(
        &ctx,
        &[
            "plan",
            "--endpoint",
            "http://127.0.0.1:1/pipeline?token=endpoint-query-secret",
        ],
    );
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("must not have a query"), "{stderr}");
    assert!(stderr.contains("http://127.0.0.1:1/pipeline"), "{stderr}");
    assert!(!stderr.contains("endpoint-query-secret"), "{stderr}");

    // A malformed endpoint with a password: not a URL, and the password not shown.
    let out = run(
        &ctx,
        &[
            "plan",
            "--endpoint",
            "http://admin:malformed-url-password@kfp host.example/pipeline",
        ],
    );
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("is not a URL"), "{stderr}");
    assert!(!stderr.contains("malformed-url-password"), "{stderr}");

    // ntfy's `?auth=` and a malformed ntfy URL with a password.
    for (url, secret) in [
        (
            "https://ntfy.example/kfp?auth=ntfy-auth-query-secret",
            "ntfy-auth-query-secret",
        ),
        (
            "https://bot:ntfy-malformed-password@ntfy example/kfp",
            "ntfy-malformed-password",
        ),
    ] {
        let out = run(
            &ctx,
            &["deploy", "--endpoint", &server.url, "--ntfy-url", url],
        );
        assert_exit(&out, 2);
        let stderr = text(&out.stderr);
        assert!(stderr.contains("ntfy URL"), "{stderr}");
        assert!(!stderr.contains(secret), "{stderr}");
    }

    // The run link published in the report and outputs: without its query.
    let out = run(
        &ctx,
        &[
            "deploy",
            "--endpoint",
            &server.url,
            "--version-tag",
            TAG,
            "--run-url",
            "https://git.example/ml/pipelines/actions/runs/7?token=run-url-secret",
            "--output",
            "json",
        ],
    );
    assert_exit(&out, 0);
    let report = json(&out);
    assert_eq!(
        report["ci"]["run_url"], "https://git.example/ml/pipelines/actions/runs/7",
        "{report:#}"
    );
    assert!(!text(&out.stdout).contains("run-url-secret"));
    assert!(!text(&out.stderr).contains("run-url-secret"));
}

const KFP_TOKEN: &str = "tk_SECRETSECRETSECRETSECRET12345";
const NTFY_TOKEN: &str = "tk_NTFYSECRETNTFYSECRETNTFYSEC12"; // tk_ + 29, as ntfy requires
const COOKIE: &str = "authservice_session=tk_COOKIESECRETCOOKIESECRET12345";
const HEADER: &str = "tk_HEADERSECRETHEADERSECRET12345";
const SECRETS: &[&str] = &[
    "SECRETSECRETSECRET",
    "NTFYSECRETNTFYSECRET",
    "COOKIESECRETCOOKIESECRET",
    "HEADERSECRETHEADERSECRET",
];

/// A pipeline file that prints the secrets it can see and fails with one in its error: user code
/// kfp-ci passes through to logs, reports, job outputs, the step summary and ntfy.
const LEAKY: &str = r#"import os
print("env:", os.environ.get("KF_PIPELINES_TOKEN"), os.environ.get("NTFY_TOKEN"),
      os.environ.get("KFP_CI_COOKIE"), os.environ.get("QA_HEADER"))
# kfp-ci's own credentials never reach the compile (None); a secret it knows only by value, such
# as a header given on the command line, can, and must still be redacted wherever it goes.
raise RuntimeError("cannot reach the registry with " + str(os.environ.get("KF_PIPELINES_TOKEN") or os.environ.get("QA_HEADER")))
"#;

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{what} shows a secret ({secret}):\n{text}"
        );
    }
}

fn gitea(cmd: &mut assert_cmd::Command, runner: &Path) {
    cmd.env("GITEA_ACTIONS", "true")
        .env("GITHUB_ACTIONS", "true")
        .env("CI", "true")
        .env("GITHUB_SERVER_URL", "http://127.0.0.1:9")
        .env("GITHUB_API_URL", "http://127.0.0.1:9/api/v1")
        .env("GITHUB_REPOSITORY", "ml-team/pipelines")
        .env("GITHUB_SHA", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b")
        .env("GITHUB_REF", "refs/heads/main")
        .env("GITHUB_REF_NAME", "main")
        .env("GITHUB_RUN_ID", "4711")
        .env("GITHUB_RUN_NUMBER", "42")
        .env("GITHUB_OUTPUT", runner.join("github_output"))
        .env("GITHUB_STEP_SUMMARY", runner.join("step_summary"))
        .env("KF_PIPELINES_TOKEN", KFP_TOKEN)
        .env("NTFY_TOKEN", NTFY_TOKEN)
        .env("KFP_CI_COOKIE", COOKIE)
        .env("QA_HEADER", HEADER)
        .env_remove("KFP_CI_REPORT")
        .env_remove("KFP_CI_JOB_STATUS");
}

#[test]
fn secrets_that_pass_through_never_reach_any_output() {
    let ctx = TestContext::new();
    let good = workspace_root().join("examples/evaluation_pipeline.py");
    std::fs::copy(&good, ctx.root().join("evaluation_pipeline.py")).expect("copy example");
    ctx.write("leaky_pipeline.py", LEAKY);
    let runner = ctx.root().join("runner");
    std::fs::create_dir_all(&runner).expect("runner dir");
    let server = Server::start(&ctx.root().join("kfp.db"), &["--token", KFP_TOKEN]);
    let ntfy = NtfyServer::start(Auth::Token(NTFY_TOKEN.into()));
    let ntfy_url = format!("{}/kfp-deploys", ntfy.url);
    let report_file = runner.join("report.json");

    let mut outputs = Vec::new();
    let mut deploy = ctx.cmd();
    gitea(&mut deploy, &runner);
    let out = deploy
        .args([
            "-vv",
            "deploy",
            "--output",
            "json",
            "--endpoint",
            &server.url,
        ])
        .args([
            "--header",
            &format!("X-Qa: {HEADER}"),
            "--ntfy-url",
            &ntfy_url,
        ])
        .arg("--report-file")
        .arg(&report_file)
        .output()
        .expect("deploy");
    assert_eq!(out.status.code(), Some(1), "one pipeline fails");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    serde_json::from_str::<serde_json::Value>(&stdout).expect("stdout is one JSON report");
    assert!(
        stdout.contains("[redacted]"),
        "the error was kept, redacted"
    );
    outputs.push(("deploy stdout", stdout));
    outputs.push(("deploy stderr", String::from_utf8_lossy(&out.stderr).into()));

    let mut notify = ctx.cmd();
    gitea(&mut notify, &runner);
    let out = notify
        .args(["-vv", "notify", "--ntfy-url", &ntfy_url, "--report-file"])
        .arg(&report_file)
        .output()
        .expect("notify");
    assert_eq!(out.status.code(), Some(0));
    outputs.push(("notify stdout", String::from_utf8_lossy(&out.stdout).into()));
    outputs.push(("notify stderr", String::from_utf8_lossy(&out.stderr).into()));

    // `check` reads no token itself, yet the pipeline's output carries the conventional ones.
    for command in ["check", "compile"] {
        let mut check = ctx.cmd();
        gitea(&mut check, &runner);
        // A header is a secret only where it is given (plan, deploy, doctor).
        check.env_remove("QA_HEADER");
        let out = check
            .args(["-v", command, "--output", "json"])
            .output()
            .expect("check");
        assert_eq!(out.status.code(), Some(1));
        outputs.push((
            "check/compile stdout",
            String::from_utf8_lossy(&out.stdout).into(),
        ));
        outputs.push((
            "check/compile stderr",
            String::from_utf8_lossy(&out.stderr).into(),
        ));
    }

    for file in ["github_output", "step_summary", "report.json"] {
        let text = std::fs::read_to_string(runner.join(file)).expect(file);
        assert!(
            text.contains("leaky_pipeline"),
            "{file} reports the failure"
        );
        outputs.push((file, text));
    }
    let published = ntfy.accepted();
    assert_eq!(published.len(), 2, "deploy and notify each published once");
    for r in &published {
        outputs.push(("ntfy body", String::from_utf8_lossy(&r.body).into()));
    }
    for (what, text) in &outputs {
        assert_no_secret(what, text);
    }
}
