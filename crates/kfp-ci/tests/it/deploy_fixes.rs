//! Regressions from the QA pass over plan/deploy: each test pins one fixed behaviour.

use crate::common::{Server, TestContext};
use crate::deploy::{HELLO, TAG, assert_exit, json, json_run, repo_and_server, run, text};

/// An unwritable `--report-file` fails before anything is compiled or deployed: one line naming
/// the path and the option, exit 2, the server untouched.
#[test]
fn an_unwritable_report_file_fails_first_naming_it() {
    let (ctx, server) = repo_and_server(&[("hello_pipeline.py", HELLO)]);
    ctx.write("blocker", "a file, not a directory\n");
    let bad = ctx.root().join("blocker/out/report.json");
    let bad = bad.to_str().expect("utf-8 path");
    let out = run(
        &ctx,
        &[
            "deploy",
            "--endpoint",
            &server.url,
            "--version-tag",
            TAG,
            "--report-file",
            bad,
        ],
    );
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    let error: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(error.len(), 1, "{stderr}");
    assert!(
        error[0].contains(bad) && error[0].contains("--report-file"),
        "{stderr}"
    );
    // Nothing was deployed: the next deploy still creates the pipeline.
    let out = json_run(&ctx, "deploy", &server.url, &["--version-tag", TAG], 0);
    let report = json(&out);
    assert_eq!(report["pipelines"][0]["action"], "create", "{report:#}");
}

/// A 401 hint names where the rejected credential came from: the variable a target's
/// `token_env` names, not KF_PIPELINES_TOKEN.
#[test]
fn a_rejected_token_hint_names_the_variable_it_came_from() {
    let ctx = TestContext::new();
    ctx.write("hello_pipeline.py", HELLO);
    let server = Server::start(
        &ctx.root().join("registry.db"),
        &["--token", "the-right-token-1234"],
    );
    ctx.write(
        "kfp-ci.toml",
        &format!(
            "[targets.prod]\nendpoint = \"{}\"\ntoken_env = \"PROD_TOKEN\"\n",
            server.url
        ),
    );
    let out = ctx
        .cmd()
        .args(["deploy", "--target", "prod", "--version-tag", TAG])
        .env("PROD_TOKEN", "a-wrong-token-5678")
        .env_remove("KF_PIPELINES_TOKEN")
        .output()
        .expect("run");
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    let hint = stderr
        .lines()
        .find(|l| l.starts_with("hint:"))
        .unwrap_or_else(|| panic!("no hint: {stderr}"));
    assert!(hint.contains("the token in PROD_TOKEN"), "{stderr}");
    assert!(!hint.contains("KF_PIPELINES_TOKEN"), "{stderr}");
    assert!(!stderr.contains("a-wrong-token-5678"), "{stderr}");

    // Without any credential the hint says none is configured.
    let out = ctx
        .cmd()
        .args(["deploy", "--target", "prod", "--version-tag", TAG])
        .env_remove("PROD_TOKEN")
        .env_remove("KF_PIPELINES_TOKEN")
        .output()
        .expect("run");
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("hint: no credentials configured: set KF_PIPELINES_TOKEN or --token-file"),
        "{stderr}"
    );
}

/// An endpoint that does not answer is one readable line plus the hint; the reqwest chain is
/// for -v.
#[test]
fn an_unreachable_endpoint_is_one_readable_line() {
    let ctx = TestContext::new();
    ctx.write("hello_pipeline.py", HELLO);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let out = run(&ctx, &["deploy", "--endpoint", &endpoint]);
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error:") || l.starts_with("hint:"))
        .collect();
    assert_eq!(
        lines,
        [
            format!("error: cannot reach the KFP API at {endpoint} (connection refused)").as_str(),
            "hint: is the endpoint reachable from here? `kfp-ci doctor` checks endpoint, token and namespace",
        ],
        "{stderr}"
    );
    let out = run(&ctx, &["-v", "deploy", "--endpoint", &endpoint]);
    assert!(
        text(&out.stderr).contains("tcp connect error"),
        "{}",
        text(&out.stderr)
    );
}
