//! The universe a test runs in: a temp git repository with pipeline files, the `kfp-ci` binary,
//! the test venv's Python with the pinned kfp, and `kfp-ci serve` on an ephemeral port.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

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
}

impl TestContext {
    /// An empty git repository in a temp directory.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join(".git")).expect(".git");
        TestContext { dir }
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

    /// `kfp-ci` in this repository, with the test Python, no colour, no progress, not in CI.
    pub fn cmd(&self) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.std_cmd())
    }

    /// [`TestContext::cmd`] as a `std::process::Command`, for tests that spawn and kill it.
    pub fn std_cmd(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kfp-ci"));
        cmd.current_dir(self.root())
            .env("KFP_CI_PYTHON", python())
            .env("NO_COLOR", "1")
            .env("KFP_CI_NO_PROGRESS", "1")
            .env("KFP_CI_TEST_NO_RETRY_DELAY", "1")
            .env_remove("CI")
            .env_remove("GITHUB_ACTIONS")
            .env_remove("GITEA_ACTIONS")
            .env_remove("FORGEJO_ACTIONS")
            .env_remove("GITLAB_CI")
            .env_remove("GITHUB_OUTPUT")
            .env_remove("GITHUB_STEP_SUMMARY")
            .env_remove("KF_PIPELINES_ENDPOINT")
            .env_remove("KF_PIPELINES_NAMESPACE")
            .env_remove("KF_PIPELINES_TOKEN")
            .env_remove("KF_PIPELINES_SA_TOKEN_PATH")
            .env_remove("KFP_CI_NTFY_URL")
            .env_remove("NTFY_TOKEN")
            .env_remove("RUST_LOG")
            .env_remove("KFP_CI_LOG");
        cmd
    }
}

/// A running `kfp-ci serve` on 127.0.0.1 with an ephemeral port; killed on drop.
pub struct Server {
    pub url: String,
    child: Child,
    pub db: PathBuf,
}

impl Server {
    /// Start `kfp-ci serve --addr 127.0.0.1:0 --db <db> <extra args>` and wait until it listens.
    pub fn start(db: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kfp-ci"))
            .args(["serve", "--addr", "127.0.0.1:0", "--db"])
            .arg(db)
            .args(extra)
            .env("NO_COLOR", "1")
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
        Server {
            url,
            child,
            db: db.to_path_buf(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
