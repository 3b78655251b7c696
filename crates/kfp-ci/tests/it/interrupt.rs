//! SIGINT/SIGTERM during a deploy, sent to the real binary: one line, no new uploads, the one in
//! flight finished (no empty pipeline left), a complete report (`--report-file` valid JSON with
//! `interrupted` in its errors), exit 130/143, and a rerun converges.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::common::TestContext;
use crate::deploy::{GOODBYE, HELLO, TAG, json, json_run, repo_and_server, text};
use crate::faulty::{Fault, Faulty, Rule};
use crate::race::server_view;

/// A deploy whose stderr lines arrive on a channel (and are kept for the end).
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(ctx: &TestContext, endpoint: &str, extra: &[&str]) -> Running {
        let mut child = ctx
            .std_cmd()
            .args(["deploy", "--endpoint", endpoint, "--version-tag", TAG])
            .args(["--upload-jobs", "1", "--report-file", "out/report.json"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kfp-ci deploy");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn signal(&self, name: &str) {
        let ok = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{name}");
    }

    /// Wait (up to 60 s) for a stderr line containing `needle`.
    fn wait_for_line(&mut self, needle: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !self.seen.iter().any(|l| l.contains(needle)) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no line with {needle:?} on stderr: {:#?}", self.seen),
            }
        }
    }

    /// Exit code and every stderr line.
    fn finish(mut self) -> (Option<i32>, Vec<String>) {
        let status = self.child.wait().expect("wait");
        self.seen.extend(self.lines.iter());
        (status.code(), self.seen)
    }
}

fn report_file(ctx: &TestContext) -> Value {
    let text = std::fs::read_to_string(ctx.root().join("out/report.json")).expect("report file");
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("report file is not JSON ({e}): {text:?}"))
}

fn errors(report: &Value) -> Vec<String> {
    report["errors"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| e.as_str().unwrap_or_default().to_string())
        .collect()
}

const FILES: [(&str, &str); 3] = [
    ("a_pipeline.py", HELLO),
    ("b_pipeline.py", GOODBYE),
    ("c_pipeline.py", HELLO),
];

#[test]
fn sigterm_during_an_upload_finishes_it_starts_nothing_else_and_reports() {
    let (ctx, server) = repo_and_server(&FILES);
    let proxy = Faulty::start(
        &server.url,
        vec![Rule {
            method: "POST",
            path_suffix: "/upload_version",
            times: 1,
            fault: Fault::Hold,
        }],
    );
    let mut run = Running::start(&ctx, &proxy.url, &[]);
    proxy.wait_for("POST", "/upload_version", 1);
    run.signal("TERM");
    run.wait_for_line("interrupted (SIGTERM)");
    proxy.release();
    let (code, stderr) = run.finish();
    assert_eq!(code, Some(143), "{stderr:#?}");
    let notices: Vec<&String> = stderr
        .iter()
        .filter(|l| l.starts_with("warning: interrupted"))
        .collect();
    assert_eq!(notices.len(), 1, "{stderr:#?}");

    let report = report_file(&ctx);
    assert!(
        errors(&report).iter().any(|e| e.contains("interrupted (SIGTERM)")
            && e.contains("2 pipeline(s) not applied")),
        "{report:#}"
    );
    let statuses: Vec<(String, String)> = report["pipelines"]
        .as_array()
        .expect("pipelines")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                p["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("a_pipeline".to_string(), "done".to_string()),
            ("b_pipeline".to_string(), "skipped".to_string()),
            ("c_pipeline".to_string(), "skipped".to_string()),
        ],
        "{report:#}"
    );
    assert_eq!(report["counts"]["created"], 1, "{report:#}");
    // The upload in flight landed; nothing else was started.
    assert_eq!(
        server_view(&server.url),
        [("a_pipeline".to_string(), vec![TAG.to_string()])].into()
    );

    // A rerun converges: the rest is created, the finished one is unchanged.
    let out = json_run(&ctx, "deploy", &server.url, &["--version-tag", TAG], 0);
    let counts = &json(&out)["counts"];
    assert_eq!(
        (&counts["created"], &counts["unchanged"]),
        (&2.into(), &1.into())
    );
    for (name, versions) in server_view(&server.url) {
        assert_eq!(versions, [TAG], "{name}");
    }
}

/// SIGINT while the pipeline is being created: the create is finished with its first version
/// (no empty pipeline is left behind), exit 130.
#[test]
fn sigint_while_creating_a_pipeline_leaves_no_empty_pipeline() {
    let (ctx, server) = repo_and_server(&FILES[..2]);
    let proxy = Faulty::start(
        &server.url,
        vec![Rule {
            method: "POST",
            path_suffix: "/apis/v2beta1/pipelines",
            times: 1,
            fault: Fault::Hold,
        }],
    );
    let mut run = Running::start(&ctx, &proxy.url, &[]);
    proxy.wait_for("POST", "/apis/v2beta1/pipelines", 1);
    run.signal("INT");
    run.wait_for_line("interrupted (SIGINT)");
    proxy.release();
    let (code, stderr) = run.finish();
    assert_eq!(code, Some(130), "{stderr:#?}");
    let report = report_file(&ctx);
    assert!(
        errors(&report)
            .iter()
            .any(|e| e.contains("interrupted (SIGINT)")),
        "{report:#}"
    );
    assert_eq!(report["pipelines"][0]["status"], "done", "{report:#}");
    assert_eq!(report["pipelines"][1]["status"], "skipped", "{report:#}");
    assert_eq!(
        server_view(&server.url),
        [("a_pipeline".to_string(), vec![TAG.to_string()])].into()
    );
}

/// A signal before anything was deployed (here: while the health check hangs): the server is
/// untouched, the report says so, exit 143.
#[test]
fn sigterm_before_apply_writes_the_report_and_touches_nothing() {
    let (ctx, server) = repo_and_server(&FILES[..1]);
    let proxy = Faulty::start(
        &server.url,
        vec![Rule {
            method: "GET",
            path_suffix: "/healthz",
            times: 1,
            fault: Fault::Hold,
        }],
    );
    let mut run = Running::start(&ctx, &proxy.url, &[]);
    proxy.wait_for("GET", "/healthz", 1);
    // The placeholder written at the start is already valid JSON saying the run is not done.
    let placeholder = report_file(&ctx);
    assert!(
        errors(&placeholder)
            .iter()
            .any(|e| e.contains("did not finish")),
        "{placeholder:#}"
    );
    run.signal("TERM");
    run.wait_for_line("interrupted (SIGTERM)");
    let (code, stderr) = run.finish();
    assert_eq!(code, Some(143), "{stderr:#?}");
    let report = report_file(&ctx);
    assert!(
        errors(&report)
            .iter()
            .any(|e| e.contains("interrupted (SIGTERM) before anything was deployed")),
        "{report:#}"
    );
    assert!(server_view(&server.url).is_empty());
    assert!(
        !stderr.iter().any(|l| l.contains("panicked")),
        "{}",
        text(stderr.join("\n").as_bytes())
    );
}
