//! The universe a test runs in: a temp git repository with pipeline files, the `kfp-ci` binary,
//! the test venv's Python with the pinned kfp, and `kfp-ci serve` on an ephemeral port.
//!
//! Every process a test starts (the binary, servers, Python) starts from a cleared environment:
//! only [`INHERITED`] passes through, and HOME and the cache directory are temp directories. So a
//! developer with `KFP_CI_SERVE_TOKEN`, `KF_PIPELINES_*`, `NTFY_*`, `CI`, `GITHUB_*`, a proxy or a
//! global gitignore exported gets what CI gets (`hostile_environment::*` proves it).

#![allow(dead_code)]

pub mod loopback;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The variables a child process inherits from the test's environment; everything else is
/// cleared. Tests set what a run needs explicitly (`.env(…)`).
pub const INHERITED: &[&str] = &[
    // Programs run by name (`kill`, the venv's tools: scripts/test puts the venv first).
    "PATH",
    // The test venv's Python (scripts/test), for the rare child that is itself a test run.
    "KFP_CI_TEST_PYTHON",
    // Where this machine keeps temp files.
    "TMPDIR",
    // How this machine reaches the package index (trust roots, local wheels): the wheel test's
    // `uv pip install` needs them, and they carry no credential.
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "PIP_CERT",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "PIP_DEFAULT_TIMEOUT",
    // Debugging and coverage of the children (no effect on what they do).
    "RUST_BACKTRACE",
    "LLVM_PROFILE_FILE",
];

/// `program` with a cleared environment: [`INHERITED`] and an isolated HOME (`home`, with its
/// cache directory below it), `NO_COLOR`. Every process a test starts goes through here.
pub fn command_in_home(program: impl AsRef<OsStr>, home: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear();
    for key in INHERITED {
        if let Some(value) = std::env::var_os(key) {
            cmd.env(key, value);
        }
    }
    cmd.env("HOME", home)
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("NO_COLOR", "1");
    cmd
}

/// [`command_in_home`] with the HOME shared by the processes a test starts outside any
/// [`TestContext`] (servers, the kfp client): a directory under cargo's test temp directory.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    command_in_home(program, &shared_home())
}

/// An HTTP client for the test's own requests to its loopback servers: no proxy, whatever
/// `HTTP_PROXY` the developer exported.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("HTTP client")
}

/// The HOME for processes outside a [`TestContext`]; created on first use.
pub fn shared_home() -> PathBuf {
    let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("home");
    std::fs::create_dir_all(home.join(".cache")).expect("create the shared test HOME");
    home
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// The Python with the pinned kfp that `scripts/test` installs (override: `KFP_CI_TEST_PYTHON`).
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("KFP_CI_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let p = workspace_root().join("target/test-venv/bin/python");
    assert!(
        p.exists(),
        "no test venv at {}: run `scripts/test` (it creates it)",
        p.display()
    );
    p
}

pub struct TestContext {
    pub dir: tempfile::TempDir,
    /// HOME (and below it the cache directory) of the processes this test starts: outside the
    /// repository, so discovery never sees it.
    pub home: tempfile::TempDir,
}

impl TestContext {
    /// An empty git repository in a temp directory.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join(".git")).expect(".git");
        let home = tempfile::tempdir().expect("tempdir");
        TestContext { dir, home }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// `program` with this test's cleared environment and HOME (see [`command_in_home`]).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        command_in_home(program, self.home())
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Write a file below the repository root, creating its directories.
    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let path = self.root().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, content).expect("write");
        path
    }

    /// Copy the repository's `examples/` into this repository's `examples/`.
    pub fn copy_examples(&self) {
        let src = workspace_root().join("examples");
        for entry in std::fs::read_dir(&src).expect("examples") {
            let entry = entry.expect("entry");
            if entry.path().extension().is_some_and(|e| e == "py") {
                let dest = self.root().join("examples").join(entry.file_name());
                std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
                std::fs::copy(entry.path(), dest).expect("copy");
            }
        }
    }

    /// `kfp-ci` in this repository, with the test Python, no colour, no progress, not in CI
    /// (a cleared environment: see [`command_in_home`]).
    pub fn cmd(&self) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.std_cmd())
    }

    /// [`TestContext::cmd`] as a `std::process::Command`, for tests that spawn and kill it.
    pub fn std_cmd(&self) -> Command {
        let mut cmd = self.command(env!("CARGO_BIN_EXE_kfp-ci"));
        cmd.current_dir(self.root())
            .env("KFP_CI_PYTHON", python())
            .env("KFP_CI_NO_PROGRESS", "1")
            .env("KFP_CI_TEST_NO_RETRY_DELAY", "1");
        cmd
    }
}

/// A running `kfp-ci serve` on 127.0.0.1 with an ephemeral port; killed on drop.
pub struct Server {
    pub url: String,
    child: Child,
    pub db: PathBuf,
    /// The `--token` it was started with, for [`Server::advance_clock`].
    token: Option<String>,
}

impl Server {
    /// Start `kfp-ci serve --addr 127.0.0.1:0 --test-clock --db <db> <extra args>` and wait
    /// until it listens.
    pub fn start(db: &Path, extra: &[&str]) -> Server {
        let mut child = command(env!("CARGO_BIN_EXE_kfp-ci"))
            .args(["serve", "--addr", "127.0.0.1:0", "--test-clock", "--db"])
            .arg(db)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kfp-ci serve");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("kfp-ci serve exited before listening")
                .expect("read stderr");
            if let Some(idx) = line.find("listening on ") {
                break line[idx + "listening on ".len()..].trim().to_string();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let token = extra
            .iter()
            .position(|a| *a == "--token")
            .and_then(|i| extra.get(i + 1))
            .map(|t| t.to_string());
        Server {
            url,
            child,
            db: db.to_path_buf(),
            token,
        }
    }

    /// Move the server's clock `secs` seconds forward (`--test-clock`): what a test needs instead
    /// of sleeping into the next second of KFP's second-precision timestamps.
    pub fn advance_clock(&self, secs: u32) {
        self.clock_request(&format!("advance?seconds={secs}"));
    }

    /// Stop the server's wall clock (`--test-clock`): only [`Server::advance_clock`] moves time
    /// from here on, so a test that forgets to advance it fails every time, not only when two
    /// requests happen to fall in the same second.
    pub fn freeze_clock(&self) {
        self.clock_request("freeze");
    }

    /// `POST /_test/clock/{what}`, which must answer 200.
    fn clock_request(&self, what: &str) {
        use std::io::{Read, Write};
        let addr = self.url.trim_start_matches("http://");
        let auth = self
            .token
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let mut conn = std::net::TcpStream::connect(addr).expect("connect to kfp-ci serve");
        write!(
            conn,
            "POST /_test/clock/{what} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .expect("send the clock request");
        let mut answer = String::new();
        conn.read_to_string(&mut answer)
            .expect("read the clock answer");
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "{what} on the clock of {} failed:\n{answer}",
            self.url
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
