//! `kfp-ci serve` from the outside: the official kfp client, the official swagger (schemathesis),
//! concurrent load (here); bad input, namespaces, testing aids, archives, PATCH ([`api`]); kill -9,
//! two processes, auth, SIGTERM with a stuck connection, plain-text `-v` logs ([`process`]); the
//! web page, with a token, in a browser ([`page`]).

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::common::{Server, python, workspace_root};

mod api;
mod page;
mod process;

const API: &str = "/apis/v2beta1";

const PIPELINE_PY: &str = r#"
import sys
from kfp import compiler, dsl

@dsl.component(base_image="python:3.11")
def add(a: float, b: int) -> float:
    return a + b

@dsl.pipeline(name="load-test")
def load_test(x: float = 1.5):
    add(a=x, b=2)

compiler.Compiler().compile(load_test, sys.argv[1])
"#;

/// A spec compiled by the real SDK, once per test process.
fn compiled_spec() -> &'static str {
    static SPEC: OnceLock<String> = OnceLock::new();
    SPEC.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("load_test_pipeline.py");
        std::fs::write(&script, PIPELINE_PY).expect("write script");
        let out = dir.path().join("load_test.yaml");
        let status = crate::common::command(python())
            .arg(&script)
            .arg(&out)
            .status()
            .expect("run python");
        assert!(status.success(), "compiling the test pipeline failed");
        std::fs::read_to_string(out).expect("compiled yaml")
    })
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

fn file_form(name: &str, content: impl Into<Vec<u8>>) -> Form {
    Form::new().part(
        "uploadfile",
        Part::bytes(content.into())
            .file_name(name.to_string())
            .mime_str("application/octet-stream")
            .expect("mime"),
    )
}

async fn upload(c: &reqwest::Client, url: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = c
        .post(format!("{url}{API}/pipelines/upload"))
        .query(query)
        .multipart(file_form("pipeline.yaml", compiled_spec()))
        .send()
        .await
        .expect("upload");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn get_json(c: &reqwest::Client, url: &str) -> (StatusCode, Value) {
    let resp = c.get(url).send().await.expect("get");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn db_in(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("registry.db")
}

/// Run a script of tests/python with the official kfp client against `server`.
fn run_client_script(name: &str, server: &Server, dir: &Path) -> String {
    let home = dir.join("home");
    let work = dir.join("work");
    std::fs::create_dir_all(&home).expect("home");
    std::fs::create_dir_all(&work).expect("work");
    let script = workspace_root().join("tests/python").join(name);
    let mut cmd = crate::common::command(python());
    cmd.arg("-W")
        .arg("ignore")
        .arg(&script)
        .arg(&server.url)
        .arg(&work)
        // kfp.Client reads (and in multi-user mode writes) ~/.config/kfp; the cleared
        // environment keeps KF_PIPELINES_* variables away from it.
        .env("HOME", &home);
    let out = cmd.output().expect("run the kfp client script");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(stdout.contains("checks passed"), "{stdout}");
    eprintln!("{}", stdout.lines().last().unwrap_or_default());
    stdout
}

/// The official kfp client drives every pipeline method against the server, checking each field.
#[test]
fn kfp_python_client_against_serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&db_in(&dir), &[]);
    run_client_script("kfp_client_against_serve.py", &server, dir.path());
}

/// The official kfp client against `--multi-user`: namespaces kept, shared pipelines in "".
#[test]
fn kfp_python_client_against_multi_user_serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&db_in(&dir), &["--multi-user"]);
    run_client_script("kfp_client_multi_user.py", &server, dir.path());
}

/// The three vendored swagger files as one document, with the dotted path parameters of the
/// PATCH routes (`{pipeline.pipeline_id}`) renamed: schemathesis cannot follow them.
fn merged_swagger() -> Value {
    let dir = workspace_root().join("crates/kfp-serve/swagger");
    let read = |name: &str| -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(dir.join(name)).expect("vendored swagger file"),
        )
        .expect("swagger json")
    };
    let mut base = read("pipeline.swagger.json");
    for name in ["pipeline.upload.swagger.json", "healthz.swagger.json"] {
        let other = read(name);
        for key in ["paths", "definitions"] {
            if let (Some(to), Some(from)) = (
                base[key].as_object_mut(),
                other.get(key).and_then(Value::as_object),
            ) {
                to.extend(from.clone());
            }
        }
    }
    // Rename path by path (a textual rename would make two keys equal and lose one of them).
    let rename = |text: &str| {
        text.replace(
            "pipeline_version.pipeline_version_id",
            "pipeline_version_id",
        )
        .replace("pipeline_version.pipeline_id", "pipeline_id")
        .replace("pipeline.pipeline_id", "pipeline_id")
    };
    let mut paths = serde_json::Map::new();
    for (path, ops) in base["paths"].as_object().expect("paths") {
        let ops: Value =
            serde_json::from_str(&rename(&ops.to_string())).expect("renamed operations");
        let entry = paths
            .entry(rename(path))
            .or_insert_with(|| Value::Object(Default::default()));
        if let (Some(to), Some(from)) = (entry.as_object_mut(), ops.as_object()) {
            to.extend(from.clone());
        }
    }
    base["paths"] = Value::Object(paths);
    base
}

/// schemathesis against the official swagger, with --token so the auth checks have a subject.
#[test]
fn schemathesis_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = "contract-test-token";
    let server = Server::start(&db_in(&dir), &["--token", token]);
    let schema = dir.path().join("kfp-v2beta1.swagger.json");
    std::fs::write(&schema, merged_swagger().to_string()).expect("write schema");
    let st = python().parent().expect("venv bin").join("schemathesis");
    assert!(
        st.exists(),
        "no schemathesis in the test venv: run scripts/test"
    );
    let config = workspace_root().join("tests/python/schemathesis.toml");
    let out = crate::common::command(st)
        .current_dir(dir.path())
        // Every check, but for the deliberate exceptions the config file lists and explains.
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(&schema)
        .args(["--url", &server.url])
        // Lower case: the swagger's security scheme names the header `authorization`, and
        // schemathesis drops exactly that name when it checks unauthenticated requests.
        .args(["--header", &format!("authorization: Bearer {token}")])
        .args([
            "--max-examples",
            "25",
            "--seed",
            "20261124",
            "--workers",
            "1",
        ])
        .args([
            "--generation-database",
            "none",
            "--no-color",
            "--request-timeout",
            "20",
        ])
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis flagged the server\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    eprintln!("{}", stdout.lines().last().unwrap_or_default());
}

/// 1000 uploads from 50 concurrent clients: exactly 1000 versions, no error. Also 50 clients
/// racing to create one pipeline name: one wins, 49 get 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_1000_uploads_from_50_clients() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&db_in(&dir), &[]);
    let url = server.url.clone();
    let c = http();
    // KFP_CI_LOAD_TEST_SPEC: measure with another compiled spec (e.g. a real 25 KB pipeline).
    let spec = match std::env::var_os("KFP_CI_LOAD_TEST_SPEC") {
        Some(path) => std::fs::read_to_string(path).expect("KFP_CI_LOAD_TEST_SPEC"),
        None => compiled_spec().to_string(),
    };

    // The race to create.
    let mut racers = Vec::new();
    for _ in 0..50 {
        let (c, url) = (c.clone(), url.clone());
        racers.push(tokio::spawn(async move {
            c.post(format!("{url}{API}/pipelines"))
                .json(&json!({"name": "load-test", "display_name": "Load test"}))
                .send()
                .await
                .expect("create")
                .status()
        }));
    }
    let mut statuses = Vec::new();
    for r in racers {
        statuses.push(r.await.expect("join"));
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1);
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count(),
        49,
        "{statuses:?}"
    );
    let (_, p) = get_json(&c, &format!("{url}{API}/pipelines/names/load-test")).await;
    let pid = p["pipeline_id"].as_str().expect("pipeline id").to_string();

    const CLIENTS: usize = 50;
    const EACH: usize = 20;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let (url, pid, spec) = (url.clone(), pid.clone(), spec.clone());
        tasks.push(tokio::spawn(async move {
            // One HTTP client (one connection) per simulated client.
            let c = http();
            let mut failures = Vec::new();
            let mut latencies = Vec::new();
            for i in 0..EACH {
                let name = format!("v-{client:02}-{i:02}");
                let sent = Instant::now();
                let resp = c
                    .post(format!("{url}{API}/pipelines/upload_version"))
                    .query(&[("pipelineid", pid.as_str()), ("name", name.as_str())])
                    .multipart(file_form("load_test.yaml", spec.clone()))
                    .send()
                    .await;
                latencies.push(sent.elapsed());
                match resp {
                    Ok(r) if r.status() == StatusCode::OK => {}
                    Ok(r) => failures.push(format!(
                        "{name}: {} {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    )),
                    Err(e) => failures.push(format!("{name}: {e}")),
                }
            }
            (failures, latencies)
        }));
    }
    let mut failures = Vec::new();
    let mut latencies = Vec::new();
    for t in tasks {
        let (f, l) = t.await.expect("join");
        failures.extend(f);
        latencies.extend(l);
    }
    let elapsed = start.elapsed();
    latencies.sort();
    let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    assert!(
        failures.is_empty(),
        "{} failed uploads: {failures:?}",
        failures.len()
    );
    let (status, list) = get_json(
        &c,
        &format!("{url}{API}/pipelines/{pid}/versions?page_size=1"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["total_size"], json!(CLIENTS * EACH));
    // Every name exactly once: walk all pages.
    let mut names = std::collections::BTreeSet::new();
    let mut token = String::new();
    loop {
        let (_, page) = get_json(
            &c,
            &format!("{url}{API}/pipelines/{pid}/versions?page_size=200&page_token={token}"),
        )
        .await;
        for v in page["pipeline_versions"].as_array().expect("versions") {
            assert!(names.insert(v["name"].as_str().expect("name").to_string()));
        }
        match page["next_page_token"].as_str() {
            Some(t) => token = t.to_string(),
            None => break,
        }
    }
    assert_eq!(names.len(), CLIENTS * EACH);
    eprintln!(
        "load: {} uploads from {CLIENTS} clients in {:.2} s = {:.0} uploads/s, latency p50 {} ms, p99 {} ms (spec {} bytes)",
        CLIENTS * EACH,
        elapsed.as_secs_f64(),
        (CLIENTS * EACH) as f64 / elapsed.as_secs_f64(),
        pct(50).as_millis(),
        pct(99).as_millis(),
        spec.len()
    );
}
