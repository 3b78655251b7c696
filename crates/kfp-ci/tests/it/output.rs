//! The output layer: stdout is data and may be closed early; exit codes tell pending changes from
//! errors.

use std::process::Stdio;

use crate::deploy::{HELLO, assert_exit, repo_and_server, text};

#[test]
fn a_reader_that_closes_stdout_early_is_not_an_error() {
    let (ctx, server) = repo_and_server(&[("pipelines/hello_pipeline.py", HELLO)]);
    // `kfp-ci plan --output json | head -c0`: the reader is gone before the report is written.
    let mut child = ctx
        .std_cmd()
        .args(["plan", "--endpoint", &server.url, "--output", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kfp-ci plan");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
}

#[test]
fn detailed_exitcode_tells_pending_changes_from_an_unreachable_server() {
    let (ctx, server) = repo_and_server(&[("pipelines/hello_pipeline.py", HELLO)]);
    let pending = ctx
        .cmd()
        .args(["plan", "--endpoint", &server.url, "--detailed-exitcode"])
        .output()
        .expect("run");
    assert_exit(&pending, 3);
    let unreachable = ctx
        .cmd()
        .args([
            "plan",
            "--endpoint",
            "http://127.0.0.1:1",
            "--detailed-exitcode",
        ])
        .output()
        .expect("run");
    assert_exit(&unreachable, 2);
}
