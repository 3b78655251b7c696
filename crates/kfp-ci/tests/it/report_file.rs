//! Report files: an unwritable `--report-file` found before anything is deployed, one that fails
//! at the end, and `kfp-ci notify` with a file that is not a report.

use crate::common::TestContext;
use crate::deploy::{HELLO, TAG, assert_exit, json, json_run, repo_and_server, run, text};
use crate::faulty::{Fault, Faulty, Rule};
use crate::ntfy_server::{Auth, NtfyServer};

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

/// A report file that was writable at the start but not at the end: a warning names it, the CI
/// outputs and stdout still carry the report, and the exit status is 2.
#[test]
fn a_report_file_that_fails_at_the_end_still_publishes_the_outputs() {
    let (ctx, server) = repo_and_server(&[("hello_pipeline.py", HELLO)]);
    let proxy = Faulty::start(
        &server.url,
        vec![Rule {
            method: "POST",
            path_suffix: "/pipelines/upload_version",
            times: 1,
            fault: Fault::Hold,
        }],
    );
    let github_output = ctx.write("runner/output", "");
    let mut cmd = ctx.std_cmd();
    cmd.args(["deploy", "--endpoint", &proxy.url, "--version-tag", TAG])
        .args(["--output", "json", "--report-file", "out/report.json"])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", &github_output)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("spawn kfp-ci deploy");
    proxy.wait_for("POST", "/pipelines/upload_version", 1);
    // The directory goes away and a file takes its place while the upload is in flight.
    let out_dir = ctx.root().join("out");
    std::fs::remove_dir_all(&out_dir).expect("remove out/");
    std::fs::write(&out_dir, "not a directory\n").expect("block out/");
    proxy.release();
    let out = child.wait_with_output().expect("deploy");
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("out/report.json") && l.contains("--report-file")),
        "{stderr}"
    );
    assert_eq!(json(&out)["counts"]["created"], 1);
    let outputs = std::fs::read_to_string(&github_output).expect("outputs");
    assert!(outputs.contains("report"), "{outputs}");
    assert!(outputs.contains(TAG), "{outputs}");
}

/// `kfp-ci notify` with a report file that is not a report: the notification says the report could
/// not be read and names the file, shows no made-up counts, and the job still succeeds.
#[test]
fn notify_with_a_malformed_report_says_so_without_zero_counts() {
    let ctx = TestContext::new();
    let ntfy = NtfyServer::start(Auth::Open);
    for (file, content) in [
        ("truncated.json", "{\"schema\": 1, \"command\":"),
        ("array.json", "[1, 2]"),
        ("empty-object.json", "{}"),
    ] {
        let path = ctx.write(file, content);
        let out = ctx
            .cmd()
            .args(["notify", "--ntfy-url", &format!("{}/deploys", ntfy.url)])
            .arg("--report-file")
            .arg(&path)
            .output()
            .expect("notify");
        assert_eq!(out.status.code(), Some(0), "{file}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("could not be read") && stderr.contains(file),
            "{file}: {stderr}"
        );
        let sent = ntfy.accepted().last().expect("a notification").json();
        let message = sent["message"].as_str().expect("message");
        assert!(message.starts_with("**Errors**"), "{file}: {message}");
        assert!(
            message.contains(file) && !message.contains("compiled"),
            "{message}"
        );
        assert_eq!(sent["title"], "deploy failed");
    }
}
