//! Secrets: redacted whatever their length, a one-character credential refused, a report that
//! cannot be redacted never shown, and URLs shown without userinfo or query everywhere.

use axum::extract::Request;
use axum::response::IntoResponse;

use crate::common::TestContext;
use crate::deploy::{HELLO, TAG, assert_exit, json, repo_and_server, run, text};
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
