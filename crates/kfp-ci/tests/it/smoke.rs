//! `deploy --smoke` / `[smoke]`: one run per created or changed pipeline on `kfp-ci serve`
//! (simulated lifecycle), waited for; exit codes, report, job outputs and the notification.

use std::process::Command;

use serde_json::{Value, json};

use crate::common::{Server, TestContext, python};
use crate::deploy::{GOODBYE, HELLO, assert_exit, json, text};
use crate::ntfy_server::{Auth, NtfyServer};

fn repo(config: &str, server_args: &[&str]) -> (TestContext, Server) {
    let ctx = TestContext::new();
    ctx.write("pipelines/hello_pipeline.py", HELLO);
    ctx.write("pipelines/goodbye_pipeline.py", GOODBYE);
    ctx.write("kfp-ci.toml", config);
    let server = Server::start(&ctx.root().join("registry.db"), server_args);
    (ctx, server)
}

/// `kfp-ci deploy` with a `$GITHUB_OUTPUT` file; returns (output, report, job outputs text).
fn deploy(ctx: &TestContext, url: &str, args: &[&str]) -> (std::process::Output, Value, String) {
    let outputs = ctx.write("github_output", "");
    let out = ctx
        .cmd()
        .args([
            "deploy",
            "--endpoint",
            url,
            "--output",
            "json",
            "--ui-url",
            "https://kfp.example/pipeline",
        ])
        .args(args)
        .env("GITHUB_OUTPUT", &outputs)
        .output()
        .expect("run");
    let report = json(&out);
    (
        out,
        report,
        std::fs::read_to_string(outputs).expect("outputs"),
    )
}

/// The run as the official client sees it: (state, experiment name).
fn client_run(url: &str, run_id: &str) -> (String, String) {
    let script = r#"
import sys, kfp
c = kfp.Client(host=sys.argv[1])
r = c.get_run(sys.argv[2])
print(r.state, c.get_experiment(experiment_id=r.experiment_id).display_name)
"#;
    let home = tempfile::tempdir().expect("home");
    let out = crate::common::command(python())
        .args(["-W", "ignore", "-c", script, url, run_id])
        .env("HOME", home.path())
        .env_remove("KF_PIPELINES_ENDPOINT")
        .output()
        .expect("python");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    let mut parts = line.lines().last().unwrap_or_default().splitn(2, ' ');
    (
        parts.next().unwrap_or_default().to_string(),
        parts.next().unwrap_or_default().to_string(),
    )
}

#[test]
fn smoke_runs_of_changed_pipelines_succeed() {
    let config = r#"
[smoke]
pipelines = ["hello_pipeline"]
experiment = "ci-smoke"
parameters.hello_pipeline = { message = "smoke" }
wait = "30s"
"#;
    let (ctx, server) = repo(config, &["--run-duration-ms", "300"]);
    let (out, report, outputs) = deploy(&ctx, &server.url, &["--version-tag", "v1"]);
    assert_exit(&out, 0);
    let stderr = text(&out.stderr);
    let smoke = report["smoke"].as_array().expect("smoke").clone();
    assert_eq!(smoke.len(), 1, "only the selected pipeline: {report:#}");
    assert_eq!(smoke[0]["pipeline"], "hello_pipeline");
    assert_eq!(smoke[0]["state"], "SUCCEEDED");
    let run_id = smoke[0]["run_id"].as_str().expect("run id").to_string();
    assert_eq!(
        smoke[0]["url"],
        json!(format!(
            "https://kfp.example/pipeline/#/runs/details/{run_id}"
        ))
    );
    assert!(
        stderr.contains(&format!("smoke: hello_pipeline: started run {run_id}")),
        "{stderr}"
    );
    assert!(
        stderr.contains("smoke: hello_pipeline: SUCCEEDED after"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Ctrl-C stops waiting, not the runs"),
        "{stderr}"
    );
    assert!(outputs.contains("smoke_failed=\n"), "{outputs}");
    assert_eq!(
        client_run(&server.url, &run_id),
        ("SUCCEEDED".into(), "ci-smoke".into())
    );

    // Nothing changed: no smoke run.
    let (out, report, _) = deploy(&ctx, &server.url, &["--version-tag", "v2"]);
    assert_exit(&out, 0);
    assert!(report.get("smoke").is_none(), "{report:#}");
}

#[test]
fn failed_smoke_runs_fail_the_deploy_and_are_reported_and_notified() {
    let ntfy = NtfyServer::start(Auth::Open);
    let (ctx, server) = repo("", &["--run-outcome", "failed", "--run-duration-ms", "200"]);
    let outputs = ctx.write("github_output", "");
    let summary = ctx.write("step_summary", "");
    let out = ctx
        .cmd()
        .args([
            "deploy",
            "--endpoint",
            &server.url,
            "--output",
            "json",
            "--smoke",
        ])
        .env("GITHUB_OUTPUT", &outputs)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("KFP_CI_NTFY_URL", format!("{}/kfp-deploys", ntfy.url))
        .output()
        .expect("run");
    assert_exit(&out, 1);
    let report = json(&out);
    let states: Vec<(&str, &str)> = report["smoke"]
        .as_array()
        .expect("smoke")
        .iter()
        .map(|s| {
            (
                s["pipeline"].as_str().unwrap_or(""),
                s["state"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        states,
        [("goodbye_pipeline", "FAILED"), ("hello_pipeline", "FAILED")],
        "{report:#}"
    );
    let outputs = std::fs::read_to_string(outputs).expect("outputs");
    assert!(
        outputs.contains("smoke_failed=goodbye_pipeline,hello_pipeline\n"),
        "{outputs}"
    );
    let summary = std::fs::read_to_string(summary).expect("summary");
    assert!(
        summary.contains("| smoke run | state | run |")
            && summary.contains("| `hello_pipeline` | FAILED |"),
        "{summary}"
    );
    let sent = ntfy.accepted();
    assert_eq!(sent.len(), 1);
    let body = sent[0].json();
    let title = body["title"].as_str().unwrap_or_default();
    assert!(title.contains("2 smoke run(s) failed"), "{title}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("**Smoke runs**") && message.contains("`hello_pipeline`: FAILED"),
        "{message}"
    );
}

#[test]
fn a_smoke_run_that_outlasts_the_wait_times_out_and_keeps_running() {
    let config = "[smoke]\nwait = \"1s\"\npipelines = [\"goodbye_pipeline\"]\n";
    let (ctx, server) = repo(config, &["--run-duration-ms", "600000"]);
    let (out, report, outputs) = deploy(&ctx, &server.url, &[]);
    assert_exit(&out, 1);
    let smoke = &report["smoke"][0];
    assert_eq!(smoke["state"], "TIMED_OUT", "{report:#}");
    assert!(
        smoke["error"]
            .as_str()
            .unwrap_or_default()
            .contains("goes on on the server"),
        "{smoke}"
    );
    assert!(smoke["waited_ms"].as_u64().unwrap_or(0) >= 1000, "{smoke}");
    assert!(
        outputs.contains("smoke_failed=goodbye_pipeline\n"),
        "{outputs}"
    );
    let (state, experiment) = client_run(&server.url, smoke["run_id"].as_str().expect("id"));
    assert!(
        matches!(state.as_str(), "PENDING" | "RUNNING"),
        "still going: {state}"
    );
    assert_eq!(experiment, "kfp-ci-smoke");

    // wait = 0: started, not waited for, not a failure.
    ctx.write("kfp-ci.toml", "[smoke]\nwait = \"0\"\n");
    ctx.write(
        "pipelines/goodbye_pipeline.py",
        &GOODBYE.replace("times: int = 2", "times: int = 4"),
    );
    let (out, report, _) = deploy(&ctx, &server.url, &[]);
    assert_exit(&out, 0);
    assert_eq!(report["smoke"][0]["state"], "STARTED", "{report:#}");
}

/// Ctrl-C while waiting stops the wait, not the runs: exit 130, INTERRUPTED in the report, the
/// run still going on the server.
#[cfg(unix)]
#[test]
fn ctrl_c_while_waiting_leaves_the_runs_running() {
    use std::io::{BufRead, BufReader};
    let (ctx, server) = repo(
        "[smoke]\nwait = \"5m\"\npipelines = [\"hello_pipeline\"]\n",
        &["--run-duration-ms", "600000"],
    );
    let mut child = ctx
        .std_cmd()
        .args(["deploy", "--endpoint", &server.url, "--output", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = String::new();
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("deploy ended before waiting:\n{seen}"))
            .expect("line");
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("Ctrl-C stops waiting, not the runs") {
            break;
        }
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let out = child.wait_with_output().expect("wait");
    // 130: the shell's code for SIGINT, as for any interrupted deploy.
    assert_eq!(out.status.code(), Some(130), "{seen}{}", rest.join("\n"));
    let report = json(&out);
    let smoke = &report["smoke"][0];
    assert_eq!(smoke["state"], "INTERRUPTED", "{report:#}");
    assert!(
        smoke["error"]
            .as_str()
            .unwrap_or_default()
            .contains("the run goes on on the server"),
        "{smoke}"
    );
    let (state, _) = client_run(&server.url, smoke["run_id"].as_str().expect("id"));
    assert!(matches!(state.as_str(), "PENDING" | "RUNNING"), "{state}");
}
