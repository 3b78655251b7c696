//! The server process: kill -9 and restart, two processes on one database, auth, the default
//! database, SIGTERM with a stuck connection, plain-text `-v` logs.

use super::*;

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
