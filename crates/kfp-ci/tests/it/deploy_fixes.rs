//! Regressions from the QA pass over plan/deploy: each test pins one fixed behaviour.

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
