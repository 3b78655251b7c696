//! The API's answers: bad input, any-method uploads and healthz, namespaces, testing aids,
//! archives, PATCH.

use super::*;

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
