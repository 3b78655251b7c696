//! `kfp-ci serve` from the outside: the official kfp client, the official swagger (schemathesis),
//! concurrent load, bad input, kill -9, SIGTERM with a stuck connection, auth, multi-user mode,
//! testing aids, the web page (with a token, in a browser), plain-text `-v` logs.

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::common::{Server, python, workspace_root};

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

/// Each bad request is a 4xx with a message, never a 5xx, a hang or a crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_4xx() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&db_in(&dir), &[]);
    let url = &server.url;
    let c = http();
    let (status, p) = upload(&c, url, &[("name", "good")]).await;
    assert_eq!(status, StatusCode::OK, "{p}");
    let pid = p["pipeline_id"].as_str().expect("id").to_string();
    let upload_url = format!("{url}{API}/pipelines/upload?name=bad");
    let version_url = format!("{url}{API}/pipelines/upload_version?pipelineid={pid}&name=bad");

    let mut cases: Vec<(&str, reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            "not multipart",
            c.post(&upload_url).json(&json!({"a": 1})),
            StatusCode::BAD_REQUEST,
            "Failed to read pipeline from file",
        ),
        (
            "malformed multipart",
            c.post(&upload_url)
                .header("content-type", "multipart/form-data; boundary=XYZ")
                .body("--XYZ\r\nContent-Disposition: form-data; name=\"uploadfile\"; filename=\"a.yaml\"\r\n\r\nunterminated"),
            StatusCode::BAD_REQUEST,
            "malformed multipart",
        ),
        (
            "no uploadfile part",
            c.post(&upload_url).multipart(Form::new().text("other", "x")),
            StatusCode::BAD_REQUEST,
            "uploadfile",
        ),
        (
            "wrong extension",
            c.post(&upload_url).multipart(file_form("notes.txt", compiled_spec())),
            StatusCode::BAD_REQUEST,
            "Failed to read a pipeline spec file",
        ),
        (
            "not YAML",
            c.post(&upload_url).multipart(file_form("p.yaml", "key: [unclosed\n\t- {")),
            StatusCode::BAD_REQUEST,
            "not valid YAML",
        ),
        (
            "binary garbage",
            c.post(&upload_url).multipart(file_form("p.yaml", vec![0xff, 0xfe, 0x00, 0x01])),
            StatusCode::BAD_REQUEST,
            "not UTF-8",
        ),
        (
            "YAML but no PipelineSpec",
            c.post(&upload_url).multipart(file_form("p.yaml", "apiVersion: v1\nkind: ConfigMap\n")),
            StatusCode::BAD_REQUEST,
            "unknown template format",
        ),
        (
            "wrong schemaVersion",
            c.post(&upload_url).multipart(file_form(
                "p.yaml",
                compiled_spec().replace("schemaVersion: 2.1.0", "schemaVersion: 2.0.0"),
            )),
            StatusCode::BAD_REQUEST,
            "schema version 2.1.0",
        ),
        (
            "unknown pipelineid",
            c.post(format!("{url}{API}/pipelines/upload_version?pipelineid=nope&name=x"))
                .multipart(file_form("p.yaml", compiled_spec())),
            StatusCode::BAD_REQUEST,
            "not found",
        ),
        (
            "missing pipelineid",
            c.post(format!("{url}{API}/pipelines/upload_version?name=x"))
                .multipart(file_form("p.yaml", compiled_spec())),
            StatusCode::BAD_REQUEST,
            "pipelineid",
        ),
        (
            "bad tags",
            c.post(format!("{upload_url}&tags=notjson")).multipart(file_form("p.yaml", compiled_spec())),
            StatusCode::BAD_REQUEST,
            "tags",
        ),
        (
            "name too long",
            c.post(format!("{url}{API}/pipelines/upload?name={}", "n".repeat(129)))
                .multipart(file_form("p.yaml", compiled_spec())),
            StatusCode::BAD_REQUEST,
            "cannot exceed 128",
        ),
        (
            "oversized body (33 MiB)",
            c.post(&version_url).multipart(file_form("big.yaml", vec![b'#'; 33 << 20])),
            StatusCode::BAD_REQUEST,
            "32 MiB",
        ),
        (
            "unknown pipeline id",
            c.get(format!("{url}{API}/pipelines/0000")),
            StatusCode::NOT_FOUND,
            "not found",
        ),
        (
            "unknown pipeline name",
            c.get(format!("{url}{API}/pipelines/names/nope")),
            StatusCode::NOT_FOUND,
            "not found",
        ),
        (
            "unknown version id",
            c.get(format!("{url}{API}/pipelines/{pid}/versions/0000")),
            StatusCode::NOT_FOUND,
            "not found",
        ),
        (
            "delete unknown version",
            c.delete(format!("{url}{API}/pipelines/{pid}/versions/0000")),
            StatusCode::NOT_FOUND,
            "not found",
        ),
        (
            "delete unknown pipeline",
            c.delete(format!("{url}{API}/pipelines/0000")),
            StatusCode::NOT_FOUND,
            "not found",
        ),
        (
            "versions of unknown pipeline",
            c.get(format!("{url}{API}/pipelines/0000/versions")),
            StatusCode::NOT_FOUND,
            "not found",
        ),
        (
            "delete non-empty without cascade",
            c.delete(format!("{url}{API}/pipelines/{pid}")),
            StatusCode::BAD_REQUEST,
            "cascade=true",
        ),
        (
            "bad filter",
            c.get(format!("{url}{API}/pipelines")).query(&[("filter", "{\"predicates\": [")]),
            StatusCode::BAD_REQUEST,
            "filter",
        ),
        (
            "bad filter key",
            c.get(format!("{url}{API}/pipelines")).query(&[(
                "filter",
                r#"{"predicates":[{"operation":"EQUALS","key":"colour","string_value":"x"}]}"#,
            )]),
            StatusCode::BAD_REQUEST,
            "colour",
        ),
        (
            "bad page token",
            c.get(format!("{url}{API}/pipelines?page_token=garbage")),
            StatusCode::BAD_REQUEST,
            "page token",
        ),
        (
            "negative page size",
            c.get(format!("{url}{API}/pipelines?page_size=-1")),
            StatusCode::BAD_REQUEST,
            "page size",
        ),
        (
            "bad sort key",
            c.get(format!("{url}{API}/pipelines?sort_by=colour")),
            StatusCode::BAD_REQUEST,
            "sorting field",
        ),
        (
            "bad cascade",
            c.delete(format!("{url}{API}/pipelines/{pid}?cascade=maybe")),
            StatusCode::BAD_REQUEST,
            "cascade",
        ),
        (
            "create with unknown field",
            c.post(format!("{url}{API}/pipelines")).json(&json!({"name": "x", "colour": "red"})),
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        (
            "create with invalid JSON",
            c.post(format!("{url}{API}/pipelines")).body("{\"name\":"),
            StatusCode::BAD_REQUEST,
            "invalid JSON",
        ),
        (
            "create without name",
            c.post(format!("{url}{API}/pipelines")).json(&json!({"description": "x"})),
            StatusCode::BAD_REQUEST,
            "name is required",
        ),
        (
            "create from a package URL",
            c.post(format!("{url}{API}/pipelines/create")).json(&json!({
                "pipeline": {"name": "u"},
                "pipeline_version": {"package_url": {"pipeline_url": "https://example.invalid/p.yaml"}}
            })),
            StatusCode::BAD_REQUEST,
            "upload the file",
        ),
        (
            "oversized JSON body",
            c.post(format!("{url}{API}/pipelines")).body(vec![b' '; 5 << 20]),
            StatusCode::BAD_REQUEST,
            "exceeds",
        ),
        (
            "wrong method on the collection",
            c.put(format!("{url}{API}/pipelines")),
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed",
        ),
        (
            "wrong method on a pipeline",
            c.post(format!("{url}{API}/pipelines/{pid}")),
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed",
        ),
        (
            "unknown API route",
            c.get(format!("{url}{API}/no_such_route")),
            StatusCode::NOT_FOUND,
            "Not Found",
        ),
    ];
    let mut report = Vec::new();
    for (what, req, expected, needle) in cases.drain(..) {
        let resp = req.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        assert!(!status.is_server_error(), "{what}: {status} {body}");
        if status != expected || !body.contains(needle) {
            report.push(format!(
                "{what}: expected {expected} containing {needle:?}, got {status} {body}"
            ));
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
    // Still serving, and the bad uploads left nothing behind.
    let (status, list) = get_json(&c, &format!("{url}{API}/pipelines")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["total_size"], json!(1), "{list}");
    let (_, versions) = get_json(&c, &format!("{url}{API}/pipelines/{pid}/versions")).await;
    assert_eq!(versions["total_size"], json!(1), "{versions}");
}

/// The upload routes answer any method, like the real server's hand-written handlers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_accept_any_method_and_healthz_reports_the_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&db_in(&dir), &[]);
    let c = http();
    let resp = c
        .put(format!(
            "{}{API}/pipelines/upload?name=put-upload",
            server.url
        ))
        .multipart(file_form("p.yml", compiled_spec()))
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status(), StatusCode::OK);
    let (status, health) = get_json(&c, &format!("{}{API}/healthz", server.url)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["multi_user"], json!(false));
    assert_eq!(health["pipeline_store"], json!("database"));
    assert_eq!(health["tag_name"], json!("2.17.0"));
    assert!(health["commit_sha"].is_string());
}

/// kill -9 (Server's drop sends SIGKILL), restart on the same file: everything is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_kill_9_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = db_in(&dir);
    let c = http();
    let server = Server::start(&db, &[]);
    let (status, p) = upload(
        &c,
        &server.url,
        &[("name", "durable"), ("description", "kept")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    let pid = p["pipeline_id"].as_str().expect("id").to_string();
    for i in 0..5 {
        let resp = c
            .post(format!("{}{API}/pipelines/upload_version", server.url))
            .query(&[("pipelineid", pid.as_str()), ("name", &format!("v{i}"))])
            .multipart(file_form("p.yaml", compiled_spec()))
            .send()
            .await
            .expect("upload version");
        assert_eq!(resp.status(), StatusCode::OK);
    }
    drop(server); // SIGKILL: no graceful shutdown, no checkpoint
    let server = Server::start(&db, &[]);
    let (status, got) = get_json(&c, &format!("{}{API}/pipelines/{pid}", server.url)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, p, "the pipeline reads back identically");
    let (_, versions) = get_json(
        &c,
        &format!("{}{API}/pipelines/{pid}/versions?sort_by=name", server.url),
    )
    .await;
    assert_eq!(versions["total_size"], json!(6));
    let names: Vec<&str> = versions["pipeline_versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(names, ["durable", "v0", "v1", "v2", "v3", "v4"]);
}

/// Two servers on one database file (deploy's in-process server next to `kfp-ci serve`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_share_one_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = db_in(&dir);
    let a = Server::start(&db, &[]);
    let b = Server::start(&db, &[]);
    let (status, p) = upload(&http(), &a.url, &[("name", "shared")]).await;
    assert_eq!(status, StatusCode::OK);
    let pid = p["pipeline_id"].as_str().expect("id").to_string();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let url = if i % 2 == 0 {
            a.url.clone()
        } else {
            b.url.clone()
        };
        let pid = pid.clone();
        tasks.push(tokio::spawn(async move {
            http()
                .post(format!("{url}{API}/pipelines/upload_version"))
                .query(&[("pipelineid", pid.as_str()), ("name", &format!("v{i}"))])
                .multipart(file_form("p.yaml", compiled_spec()))
                .send()
                .await
                .expect("upload")
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("join"), StatusCode::OK);
    }
    for url in [&a.url, &b.url] {
        let (_, versions) =
            get_json(&http(), &format!("{url}{API}/pipelines/{pid}/versions")).await;
        assert_eq!(versions["total_size"], json!(41), "{url}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_required_on_every_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&db_in(&dir), &["--token", "s3cret-token-value"]);
    let c = http();
    for path in [
        format!("{API}/healthz"),
        format!("{API}/pipelines"),
        "/".to_string(),
    ] {
        let resp = c
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .expect("get");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
        let body = resp.text().await.expect("body");
        assert!(body.contains("Bearer"), "{body}");
        assert!(!body.contains("s3cret"), "the token never appears: {body}");
        let wrong = c
            .get(format!("{}{path}", server.url))
            .bearer_auth("wrong-token")
            .send()
            .await
            .expect("get");
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "{path}");
        let right = c
            .get(format!("{}{path}", server.url))
            .bearer_auth("s3cret-token-value")
            .send()
            .await
            .expect("get");
        assert_eq!(right.status(), StatusCode::OK, "{path}");
    }
}

#[test]
fn non_loopback_address_needs_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Refused before anything is bound.
    let out = crate::common::command(env!("CARGO_BIN_EXE_kfp-ci"))
        .args(["serve", "--addr", "0.0.0.0:0", "--db"])
        .arg(db_in(&dir))
        .env_remove("KFP_CI_SERVE_TOKEN")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--token") && stderr.contains("--insecure-no-auth"),
        "{stderr}"
    );
    assert!(!db_in(&dir).exists(), "nothing was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_user_mode_keeps_namespaces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&db_in(&dir), &["--multi-user"]);
    let (url, c) = (&server.url, http());
    let (_, health) = get_json(&c, &format!("{url}{API}/healthz")).await;
    assert_eq!(health["multi_user"], json!(true));
    for ns in ["team-a", "team-b", ""] {
        let (status, p) = upload(&c, url, &[("name", "same-name"), ("namespace", ns)]).await;
        assert_eq!(status, StatusCode::OK, "{ns}: {p}");
        assert_eq!(p.get("namespace").and_then(Value::as_str).unwrap_or(""), ns);
    }
    let (status, _) = upload(&c, url, &[("name", "same-name"), ("namespace", "team-a")]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    // List filters on the exact namespace; none given means the shared ones.
    let (_, a) = get_json(&c, &format!("{url}{API}/pipelines?namespace=team-a")).await;
    assert_eq!(a["total_size"], json!(1));
    assert_eq!(a["pipelines"][0]["namespace"], json!("team-a"));
    let (_, shared) = get_json(&c, &format!("{url}{API}/pipelines")).await;
    assert_eq!(shared["total_size"], json!(1));
    assert!(
        shared["pipelines"][0].get("namespace").is_none(),
        "{shared}"
    );
    let (_, b) = get_json(
        &c,
        &format!("{url}{API}/pipelines/names/same-name?namespace=team-b"),
    )
    .await;
    assert_eq!(b["namespace"], json!("team-b"));
    // Without a namespace, by-name takes the newest of that name in any namespace.
    let (status, any) = get_json(&c, &format!("{url}{API}/pipelines/names/same-name")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(any["pipeline_id"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_user_mode_ignores_namespaces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&db_in(&dir), &[]);
    let (url, c) = (&server.url, http());
    let (status, p) = upload(&c, url, &[("name", "ns-test"), ("namespace", "team-a")]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(p.get("namespace").is_none(), "{p}");
    let (status, _) = upload(&c, url, &[("name", "ns-test"), ("namespace", "team-b")]).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "one namespace in single-user mode"
    );
    let (_, list) = get_json(&c, &format!("{url}{API}/pipelines?namespace=anything")).await;
    assert_eq!(list["total_size"], json!(1));
}

/// `--fail-rate` answers some requests 503 before any effect; `--latency-ms` delays every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testing_aids_inject_503s_and_latency() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(
        &db_in(&dir),
        &["--fail-rate", "0.5", "--seed", "7", "--latency-ms", "20"],
    );
    let c = http();
    let (mut ok, mut failed) = (0, 0);
    let start = Instant::now();
    for i in 0..40 {
        let (status, body) = upload(&c, &server.url, &[("name", &format!("p{i}"))]).await;
        match status {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                failed += 1;
                assert!(
                    body["error_message"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("--fail-rate")
                );
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(start.elapsed() >= Duration::from_millis(40 * 20));
    assert!(ok > 5 && failed > 5, "ok {ok}, failed {failed}");
    // Failed uploads changed nothing: exactly the successful ones exist (page through; some
    // list calls may themselves be answered 503, so retry those).
    let mut total = None;
    for _ in 0..50 {
        let (status, list) =
            get_json(&c, &format!("{}{API}/pipelines?page_size=1", server.url)).await;
        if status == StatusCode::OK {
            total = list["total_size"].as_i64();
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(list["code"], json!(14));
    }
    assert_eq!(total, Some(ok));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_page_lists_pipelines_and_versions_newest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&db_in(&dir), &[]);
    let c = http();
    let (_, p) = upload(
        &c,
        &server.url,
        &[("name", "page-<test>"), ("description", "a & b")],
    )
    .await;
    let pid = p["pipeline_id"].as_str().expect("id").to_string();
    for name in ["older", "newer"] {
        let resp = c
            .post(format!("{}{API}/pipelines/upload_version", server.url))
            .query(&[("pipelineid", pid.as_str()), ("name", name)])
            .multipart(file_form("p.yaml", compiled_spec()))
            .send()
            .await
            .expect("upload");
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let resp = c
        .get(format!("{}/", server.url))
        .send()
        .await
        .expect("page");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/html")
    );
    let html = resp.text().await.expect("html");
    assert!(
        html.contains("page-&lt;test&gt;") && html.contains("a &amp; b"),
        "escaped"
    );
    assert!(!html.contains("<test>"), "never raw user text");
    let newer = html.find("<code>newer</code>").expect("newer listed");
    let older = html.find("<code>older</code>").expect("older listed");
    assert!(newer < older, "newest version first");
    let link = html
        .split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .find(|h| h.starts_with("/ui/pipelines/"))
        .expect("a spec link")
        .to_string();
    let spec_page = c
        .get(format!("{}{link}", server.url))
        .send()
        .await
        .expect("spec page");
    assert_eq!(spec_page.status(), StatusCode::OK);
    let spec_html = spec_page.text().await.expect("spec html");
    assert!(
        spec_html.contains("pipelineInfo") && spec_html.contains("load-test"),
        "spec shown"
    );
}

/// `.kfp-ci/registry.db` in the repository is the default, and it is kept out of git.
#[test]
fn default_database_is_in_the_repository() {
    let ctx = crate::common::TestContext::new();
    let mut child = ctx
        .command(env!("CARGO_BIN_EXE_kfp-ci"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .current_dir(ctx.root().join(".git").parent().expect("root"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let mut seen = Vec::new();
    while let Some(Ok(line)) = lines.next() {
        seen.push(line.clone());
        if line.contains("Ctrl-C") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = seen.join("\n");
    let db = ctx.root().join(".kfp-ci/registry.db");
    assert!(db.exists(), "{text}");
    insta::with_settings!({filters => vec![
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]"),
        (r"/\S*/\.kfp-ci/registry\.db", "[REPO]/.kfp-ci/registry.db"),
    ]}, {
        insta::assert_snapshot!(text, @r"
        kfp-ci serve: listening on http://127.0.0.1:[PORT]
          database: [REPO]/.kfp-ci/registry.db
          a local stand-in for the Kubeflow Pipelines API v2beta1 (pipelines, versions, experiments, runs, recurring runs, healthz), answering like KFP 2.17.0; runs are recorded, not executed (each ends SUCCEEDED after 3000 ms); no cluster
          mode: single-user (namespaces ignored); auth: none
          pipelines page: http://127.0.0.1:[PORT]/ · API: http://127.0.0.1:[PORT]/apis/v2beta1/pipelines · Ctrl-C stops
        ");
    });
    assert_eq!(
        std::fs::read_to_string(ctx.root().join(".kfp-ci/.gitignore")).expect("gitignore"),
        "*\n"
    );
}

/// `.zip` and `.tar.gz` packages made by Python's zipfile/tarfile: `pipeline.yaml` wins, else
/// the first entry, which must be YAML.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_are_read_like_the_real_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&db_in(&dir), &[]);
    let spec_path = dir.path().join("spec.yaml");
    std::fs::write(&spec_path, compiled_spec()).expect("spec");
    let script = r#"
import sys, tarfile, zipfile
d, spec = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(f"{d}/named.zip", "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("README.md", "not the pipeline")
    z.write(spec, "pipeline.yaml")
with zipfile.ZipFile(f"{d}/first.zip", "w", zipfile.ZIP_STORED) as z:
    z.write(spec, "my_pipeline.yml")
    z.writestr("other.txt", "x")
with zipfile.ZipFile(f"{d}/bad.zip", "w") as z:
    z.writestr("notes.txt", "x")
with tarfile.open(f"{d}/named.tar.gz", "w:gz") as t:
    t.add(spec, "docs.txt")
    t.add(spec, "pipeline.yaml")
with tarfile.open(f"{d}/first.tgz", "w:gz") as t:
    t.add(spec, "a/very/" + "long/" * 30 + "first.yaml")
with tarfile.open(f"{d}/bad.tar.gz", "w:gz") as t:
    t.add(spec, "spec.txt")
"#;
    let status = crate::common::command(python())
        .args(["-c", script])
        .arg(dir.path())
        .arg(&spec_path)
        .status()
        .expect("python");
    assert!(status.success());
    let c = http();
    for (file, expected) in [
        ("named.zip", StatusCode::OK),
        ("first.zip", StatusCode::OK),
        ("bad.zip", StatusCode::BAD_REQUEST),
        ("named.tar.gz", StatusCode::OK),
        ("first.tgz", StatusCode::OK),
        ("bad.tar.gz", StatusCode::BAD_REQUEST),
    ] {
        let bytes = std::fs::read(dir.path().join(file)).expect("archive");
        let resp = c
            .post(format!("{}{API}/pipelines/upload", server.url))
            .query(&[("name", file)])
            .multipart(file_form(file, bytes))
            .send()
            .await
            .expect("upload");
        let status = resp.status();
        let body: Value = resp.json().await.expect("json");
        assert_eq!(status, expected, "{file}: {body}");
        if status == StatusCode::OK {
            let pid = body["pipeline_id"].as_str().expect("id");
            let (_, versions) =
                get_json(&c, &format!("{}{API}/pipelines/{pid}/versions", server.url)).await;
            let spec = &versions["pipeline_versions"][0]["pipeline_spec"];
            assert_eq!(spec["pipelineInfo"]["name"], json!("load-test"), "{file}");
        } else {
            let message = body["error_message"].as_str().unwrap_or_default();
            assert!(
                message.contains("Expecting a pipeline.yaml file"),
                "{file}: {message}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_changes_display_name_and_tags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&db_in(&dir), &[]);
    let c = http();
    let (_, p) = upload(
        &c,
        &server.url,
        &[("name", "patched"), ("tags", r#"{"team":"ml"}"#)],
    )
    .await;
    assert_eq!(p["tags"], json!({"team": "ml"}));
    let pid = p["pipeline_id"].as_str().expect("id");
    let (_, versions) =
        get_json(&c, &format!("{}{API}/pipelines/{pid}/versions", server.url)).await;
    assert!(
        versions["pipeline_versions"][0].get("tags").is_none(),
        "upload tags are the pipeline's"
    );
    let vid = versions["pipeline_versions"][0]["pipeline_version_id"]
        .as_str()
        .expect("vid");
    let patched: Value = c
        .patch(format!("{}{API}/pipelines/{pid}", server.url))
        .json(&json!({"display_name": "Patched", "tags": {"env": "prod"}}))
        .send()
        .await
        .expect("patch")
        .json()
        .await
        .expect("json");
    assert_eq!(patched["display_name"], json!("Patched"));
    assert_eq!(patched["name"], json!("patched"), "name is the identity");
    assert_eq!(patched["tags"], json!({"env": "prod"}));
    let cleared: Value = c
        .patch(format!("{}{API}/pipelines/{pid}", server.url))
        .json(&json!({"tags": {}}))
        .send()
        .await
        .expect("patch")
        .json()
        .await
        .expect("json");
    assert!(cleared.get("tags").is_none(), "{cleared}");
    assert_eq!(cleared["display_name"], json!("Patched"));
    let v: Value = c
        .patch(format!(
            "{}{API}/pipelines/{pid}/versions/{vid}",
            server.url
        ))
        .json(&json!({"displayName": "v-display", "tags": {"spec-sha": "c1-abc"}}))
        .send()
        .await
        .expect("patch version")
        .json()
        .await
        .expect("json");
    assert_eq!(v["display_name"], json!("v-display"));
    assert_eq!(v["tags"], json!({"spec-sha": "c1-abc"}));
    // The tag is filterable.
    let filter =
        r#"{"predicates":[{"operation":"EQUALS","key":"tags.spec-sha","string_value":"c1-abc"}]}"#;
    let (_, found) = get_json(
        &c,
        &format!(
            "{}{API}/pipelines/{pid}/versions?filter={}",
            server.url,
            url::form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
        ),
    )
    .await;
    assert_eq!(found["total_size"], json!(1), "{found}");
}

/// A spec the server accepts, written by hand (the page test needs no compiler).
const MINI_SPEC: &str = "components:
  comp-echo:
    executorLabel: exec-echo
deploymentSpec:
  executors:
    exec-echo:
      container:
        image: alpine:3.20
        command: [echo, hi]
pipelineInfo:
  name: qa-page
root:
  dag:
    tasks:
      echo:
        componentRef:
          name: comp-echo
        taskInfo:
          name: echo
schemaVersion: 2.1.0
sdkVersion: kfp-2.17.0
";

/// With `--token`, a person opens the page once as `/?token=…`; a session cookie (not the token)
/// then opens the page, never the API; names are escaped and the page runs no script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_page_opens_in_a_browser_with_token_once_and_escapes_names() {
    use reqwest::StatusCode;
    let dir = tempfile::tempdir().expect("tempdir");
    let token = "tk_SERVEPAGESECRET12345";
    let server = Server::start(&dir.path().join("r.db"), &["--token", token]);
    let browser = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let form = reqwest::multipart::Form::new().part(
        "uploadfile",
        reqwest::multipart::Part::bytes(MINI_SPEC.as_bytes().to_vec()).file_name("p.yaml"),
    );
    let up = browser
        .post(format!("{}/apis/v2beta1/pipelines/upload", server.url))
        .query(&[
            ("name", "<script>alert(1)</script>"),
            ("display_name", "<img src=x onerror=alert(1)>"),
        ])
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(up.status(), StatusCode::OK);

    // No token: a page that says how to get in, without the token.
    let resp = browser
        .get(format!("{}/", server.url))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let html = resp.text().await.expect("body");
    assert!(html.contains("?token=") && !html.contains(token), "{html}");
    // A wrong token: refused.
    let resp = browser
        .get(format!("{}/?token=wrong", server.url))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // The right one: a redirect that drops it from the address and sets a session cookie.
    let resp = browser
        .get(format!("{}/?token={token}", server.url))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/");
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(token),
        "the cookie is not the token: {cookie}"
    );
    let session = cookie.split(';').next().expect("name=value").to_string();
    let port = server.url.rsplit(':').next().expect("port");
    assert!(
        session.starts_with(&format!("kfp_ci_serve_session_{port}=")),
        "one cookie per server (browsers share cookies across ports): {session}"
    );

    let resp = browser
        .get(format!("{}/", server.url))
        .header("cookie", &session)
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::OK);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = resp.text().await.expect("html");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(
        !html.contains("<script") && !html.contains("<img"),
        "{html}"
    );

    // The cookie opens the page, never the API: API auth stays bearer-only.
    for path in ["/apis/v2beta1/pipelines", "/apis/v2beta1/healthz"] {
        let resp = browser
            .get(format!("{}{path}", server.url))
            .header("cookie", &session)
            .send()
            .await
            .expect("get");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    // A forged cookie is refused.
    let resp = browser
        .get(format!("{}/", server.url))
        .header(
            "cookie",
            format!("{}=forged", session.split('=').next().expect("name")),
        )
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

/// SIGTERM stops `kfp-ci serve` promptly and cleanly even while a client holds a connection with
/// a request it never finishes (a browser tab, a stuck client).
#[test]
fn serve_stops_on_sigterm_despite_a_stuck_connection() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = crate::common::command(env!("CARGO_BIN_EXE_kfp-ci"))
        .args(["serve", "--addr", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("r.db"))
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let url = loop {
        let line = lines.next().expect("serve output").expect("line");
        if let Some(i) = line.find("listening on http://") {
            break line[i + "listening on http://".len()..].trim().to_string();
        }
    };
    let mut stuck = std::net::TcpStream::connect(&url).expect("connect");
    stuck
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .expect("half a request");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let started = std::time::Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = std::time::Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break exit;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            panic!("serve still running {deadline:?} after SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("shutting down")), "{rest:?}");
    drop(stuck);
}

/// Log lines are plain text when stderr is not a terminal: no ANSI codes, not even in the
/// `key=value` fields of `-v` request logs (a CI log or a file shows them as garbage).
#[test]
fn verbose_logs_to_a_pipe_carry_no_ansi_codes() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = crate::common::command(env!("CARGO_BIN_EXE_kfp-ci"))
        .args(["-v", "serve", "--addr", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("r.db"))
        .env_remove("NO_COLOR")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let mut reader = BufReader::new(child.stderr.take().expect("stderr"));
    let mut log = String::new();
    let url = loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).expect("read") > 0, "{log}");
        log.push_str(&line);
        if let Some(i) = line.find("listening on http://") {
            break line[i + "listening on http://".len()..].trim().to_string();
        }
    };
    let mut conn = std::net::TcpStream::connect(&url).expect("connect");
    conn.write_all(b"GET /apis/v2beta1/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    reader.read_to_string(&mut log).expect("rest of the log");
    child.wait().expect("wait");
    assert!(log.contains("path=/apis/v2beta1/healthz"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI codes in a piped log: {log:?}"
    );
}
