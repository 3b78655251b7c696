//! Regressions from the QA pass over plan/deploy: each test pins one fixed behaviour.

use crate::common::{Server, TestContext};
use crate::deploy::{HELLO, TAG, assert_exit, json, json_run, repo_and_server, run, text};
use crate::faulty::{Fault, Faulty, Rule};

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

/// `python -c SCRIPT ARGS…` with the test Python; its stdout.
fn py(script: &str, args: &[&str]) -> String {
    let out = crate::common::command(crate::common::python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

/// The race left open by the cleanup of a failed first upload: run B looked the pipeline up (it
/// was there, empty), then run A deleted it before B's upload arrived. B's upload gets KFP's
/// generic 400; B looks the pipeline up again, finds it gone, creates it and uploads.
#[test]
fn an_upload_to_a_pipeline_deleted_meanwhile_recreates_it() {
    let (ctx, server) = repo_and_server(&[("hello_pipeline.py", HELLO)]);
    let planned = json(&json_run(&ctx, "plan", &server.url, &[], 0));
    let name = planned["pipelines"][0]["name"]
        .as_str()
        .expect("name")
        .to_string();
    // The empty pipeline a concurrent run A created (its first upload is about to fail).
    let first_id = py(
        "import json, sys, urllib.request\n\
         req = urllib.request.Request(sys.argv[1] + '/apis/v2beta1/pipelines', method='POST',\n\
             data=json.dumps({'name': sys.argv[2], 'display_name': sys.argv[2]}).encode(),\n\
             headers={'Content-Type': 'application/json'})\n\
         print(json.load(urllib.request.urlopen(req))['pipeline_id'])",
        &[&server.url, &name],
    );
    let proxy = Faulty::start(
        &server.url,
        vec![Rule {
            method: "POST",
            path_suffix: "/pipelines/upload_version",
            times: 1,
            fault: Fault::Hold,
        }],
    );
    let mut cmd = ctx.std_cmd();
    cmd.args(["deploy", "--endpoint", &proxy.url, "--version-tag", TAG])
        .args(["--output", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("spawn kfp-ci deploy");
    proxy.wait_for("POST", "/pipelines/upload_version", 1);
    // Run A gives up and deletes its empty pipeline while B's upload is in flight.
    py(
        "import sys, urllib.request\n\
         urllib.request.urlopen(urllib.request.Request(\n\
             sys.argv[1] + '/apis/v2beta1/pipelines/' + sys.argv[2], method='DELETE'))",
        &[&server.url, &first_id],
    );
    proxy.release();
    let out = child.wait_with_output().expect("deploy");
    assert_exit(&out, 0);
    let report = json(&out);
    let p = &report["pipelines"][0];
    assert_eq!(p["status"], "done", "{report:#}");
    assert_eq!(p["version_name"], TAG, "{report:#}");
    let new_id = p["pipeline_id"].as_str().expect("pipeline id");
    assert_ne!(new_id, first_id, "{report:#}");
    assert!(
        p["reason"]
            .as_str()
            .is_some_and(|r| r.contains("deleted by a concurrent run")),
        "{report:#}"
    );
    // The server holds the pipeline again, with our version.
    let listed = py(
        "import json, sys, urllib.request\n\
         url = sys.argv[1] + '/apis/v2beta1/pipelines/' + sys.argv[2] + '/versions'\n\
         print(','.join(v['name'] for v in json.load(urllib.request.urlopen(url))['pipeline_versions']))",
        &[&server.url, new_id],
    );
    assert_eq!(listed, TAG);
    // The first upload went to the deleted id and got the generic 400.
    let uploads: Vec<u16> = proxy
        .log()
        .iter()
        .filter(|l| l.path.contains("upload_version"))
        .map(|l| l.status)
        .collect();
    assert_eq!(uploads, [400, 200], "{:#?}", proxy.log());
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

/// An untrusted certificate is one line too, with the certificate hint.
#[test]
fn an_untrusted_certificate_is_one_readable_line() {
    let (ctx, server) = repo_and_server(&[("hello_pipeline.py", HELLO)]);
    let tls = crate::tls::TlsProxy::start(&server.url);
    let out = run(&ctx, &["deploy", "--endpoint", &tls.url]);
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    let error: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        error,
        [format!(
            "error: cannot reach the KFP API at {} (TLS: invalid peer certificate: UnknownIssuer)",
            tls.url.trim_end_matches('/')
        )
        .as_str()],
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: the server's TLS certificate is not trusted here"),
        "{stderr}"
    );
}
