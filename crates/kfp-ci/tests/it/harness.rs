//! The test harness itself: a developer's exported variables change no result, and the test
//! clock of `kfp-ci serve` moves timestamps without waiting.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::common::{Server, TestContext};
use crate::faulty::{Fault, Faulty, Rule};

/// Tests that start the binary, `kfp-ci serve`, ntfy and the kfp client: each would fail or
/// behave differently if a variable below reached them.
const SUBSET: &[&str] = &[
    "deploy::one_edited_pipeline_gets_exactly_one_new_version",
    "deploy::embedded_default_store_outside_ci",
    "notify::notify_in_gitea_sends_the_exact_request",
    "serve::kfp_python_client_against_serve",
    "retries::server_errors_are_retried_and_a_landed_upload_is_not_duplicated",
];

/// Run [`SUBSET`] in a child of this test binary with everything a developer (or a CI job) might
/// have exported: tokens, endpoints, CI detection, ntfy, proxies, logging, a `kfp` package on
/// PYTHONPATH that fails to import, a HOME with a kfp client configuration. All pass, and nothing
/// reaches the endpoint those variables name.
#[test]
fn a_hostile_developer_environment_changes_nothing() {
    let trap = Trap::start();
    let trap_url = trap.url.clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let hostile = dir.path();
    // A `kfp` that breaks every import of it, and a kfp client configuration in HOME.
    write(
        &hostile.join("pythonpath/kfp/__init__.py"),
        "raise ImportError('hostile kfp on PYTHONPATH')\n",
    );
    write(
        &hostile.join("home/.config/kfp/context.json"),
        &format!(
            r#"{{"namespace": "hostile", "client_authentication_header_name": "Authorization", "host": "{trap_url}"}}"#
        ),
    );
    write(&hostile.join("kfp-ci.toml"), "hostile = \n");
    let output_file = hostile.join("github_output");
    let summary_file = hostile.join("step_summary");

    let mut cmd = std::process::Command::new(std::env::current_exe().expect("this test binary"));
    cmd.args(SUBSET)
        .args(["--exact", "--test-threads", "2"])
        .env("KFP_CI_SERVE_TOKEN", "hostile-serve-token")
        .env("KF_PIPELINES_ENDPOINT", &trap_url)
        .env("KF_PIPELINES_TOKEN", "hostile-token")
        .env("KF_PIPELINES_NAMESPACE", "hostile")
        .env("KF_PIPELINES_SA_TOKEN_PATH", hostile.join("missing-token"))
        .env("KF_PIPELINES_UI_ENDPOINT", &trap_url)
        .env("KFP_CI_NTFY_URL", format!("{trap_url}/hostile"))
        .env("NTFY_TOKEN", "hostile-ntfy-token")
        .env("NTFY_USER", "hostile")
        .env("NTFY_PASSWORD", "hostile")
        .env("KFP_CI_CONFIG", hostile.join("kfp-ci.toml"))
        .env("KFP_CI_TARGET", "hostile")
        .env("KFP_CI_PYTHON", hostile.join("missing-python"))
        .env("KFP_CI_CACHE_DIR", hostile.join("missing-cache/x"))
        .env("KFP_CI_NO_NOTIFY", "false")
        .env("KFP_CI_NOTIFY_ON", "always")
        .env("KFP_CI_REPORT", hostile.join("missing-report.json"))
        .env("KFP_CI_LOG", "trace")
        .env("RUST_LOG", "trace")
        .env("CI", "true")
        .env("GITHUB_ACTIONS", "true")
        .env("GITEA_ACTIONS", "true")
        .env("GITLAB_CI", "true")
        .env("GITHUB_OUTPUT", &output_file)
        .env("GITHUB_STEP_SUMMARY", &summary_file)
        .env("GITHUB_SERVER_URL", &trap_url)
        .env("GITHUB_REPOSITORY", "hostile/repo")
        .env("GITHUB_RUN_ID", "666")
        .env("HTTP_PROXY", &trap_url)
        .env("HTTPS_PROXY", &trap_url)
        .env("ALL_PROXY", &trap_url)
        .env("http_proxy", &trap_url)
        .env("https_proxy", &trap_url)
        .env("all_proxy", &trap_url)
        .env("HOME", hostile.join("home"))
        // The nested test process itself finds its snapshots without running `cargo metadata`
        // (which needs rustup's files under the real HOME).
        .env("INSTA_WORKSPACE_ROOT", crate::common::workspace_root())
        .env("XDG_CONFIG_HOME", hostile.join("home/.config"))
        .env("PYTHONPATH", hostile.join("pythonpath"))
        .env("PYTHONWARNINGS", "error")
        .env("CLICOLOR_FORCE", "1")
        .env("FORCE_COLOR", "1")
        .env_remove("NO_COLOR");
    let out = cmd.output().expect("run the subset");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the subset failed under a hostile environment:\n{stdout}\n{stderr}"
    );
    let passed = format!("test result: ok. {} passed", SUBSET.len());
    assert!(stdout.contains(&passed), "expected `{passed}`:\n{stdout}");
    assert!(!output_file.exists(), "GITHUB_OUTPUT was written");
    assert!(!summary_file.exists(), "GITHUB_STEP_SUMMARY was written");
    assert_eq!(
        trap.connections(),
        0,
        "a process connected to the endpoint, proxy or ntfy URL of the hostile variables"
    );
}

/// A loopback listener that counts connections and closes each at once (so a client that
/// wrongly reaches it fails fast instead of hanging).
struct Trap {
    url: String,
    count: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Trap {
    fn start() -> Trap {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the trap");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", listener.local_addr().expect("trap address"));
        let count = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (count.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok(_) => {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
                }
            }
        });
        Trap { url, count, stop }
    }

    fn connections(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

impl Drop for Trap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `POST /_test/clock/advance` moves `created_at` forward at once, and only a server started with
/// `--test-clock` has it.
#[test]
fn the_test_clock_moves_timestamps_without_waiting() {
    let ctx = TestContext::new();
    let server = Server::start(&ctx.root().join("registry.db"), &[]);
    let created_at = |name: &str| -> jiff::Timestamp {
        let (status, body) = http(
            &server.url,
            "POST",
            "/apis/v2beta1/pipelines",
            &format!(r#"{{"display_name":"{name}"}}"#),
        );
        assert_eq!(status, 200, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        json["created_at"]
            .as_str()
            .expect("created_at")
            .parse()
            .expect("a timestamp")
    };
    let started = std::time::Instant::now();
    let first = created_at("first");
    server.advance_clock(3600);
    let second = created_at("second");
    let moved = second.as_second() - first.as_second();
    assert!((3600..3610).contains(&moved), "{first} → {second}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    let plain = crate::common::command(env!("CARGO_BIN_EXE_kfp-ci"))
        .args(["serve", "--help"])
        .output()
        .expect("serve --help");
    assert!(
        !String::from_utf8_lossy(&plain.stdout).contains("test-clock"),
        "the testing aid is hidden from --help"
    );
    let other = tempfile::tempdir().expect("tempdir");
    let without = ServerWithout::start(&other.path().join("r.db"));
    let (status, _) = http(&without.0, "POST", "/_test/clock/advance?seconds=1", "");
    assert_eq!(status, 404);
}

/// A race barrier that is not met fails the test when the proxy is dropped (it used to forward
/// the requests one by one after 10 s, and the test passed without any race), and the waiting
/// request gets a 504 that names the barrier.
#[test]
#[should_panic(expected = "a Fault::Barrier gave up")]
fn a_race_barrier_that_is_not_met_fails_the_test() {
    let proxy = Faulty::start(
        "http://127.0.0.1:9",
        vec![Rule {
            method: "POST",
            path_suffix: "/upload_version",
            times: 2,
            fault: Fault::Barrier(2),
        }],
    );
    proxy.set_barrier_timeout(std::time::Duration::from_millis(200));
    let (status, body) = http(
        &proxy.url,
        "POST",
        "/apis/v2beta1/pipelines/upload_version",
        "",
    );
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("Fault::Barrier(2)"), "{body}");
    drop(proxy);
}

/// `kfp-ci serve` without `--test-clock`, in process.
struct ServerWithout(
    String,
    tokio::runtime::Runtime,
    Option<kfp_serve::RunningServer>,
);

impl ServerWithout {
    fn start(db: &Path) -> ServerWithout {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let server = rt
            .block_on(kfp_serve::spawn(kfp_serve::ServeOptions::ephemeral(db)))
            .expect("serve");
        ServerWithout(server.url(), rt, Some(server))
    }
}

impl Drop for ServerWithout {
    fn drop(&mut self) {
        if let Some(server) = self.2.take() {
            let _ = self.1.block_on(server.shutdown());
        }
    }
}

/// One HTTP/1.1 request on a fresh connection: (status, body).
fn http(url: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let addr = url.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("read");
    let status = answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, content).expect("write");
}
