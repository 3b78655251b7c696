//! One Python worker process: spawn, handshake, one request at a time, stderr kept for errors.
//!
//! Results come back on the worker's stdout pipe, which `worker.py` duplicates to a private fd at
//! start-up before pointing fd 1 at stderr; user code runs only in forked children whose fds 1 and 2
//! go to a capture file. So nothing user code prints can be taken for a result.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// How long a worker may take to start and import kfp.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(180);
/// Extra time beyond the per-file timeout before the worker itself is considered hung.
pub(crate) const GUARD_SLACK: Duration = Duration::from_secs(30);
/// How much of a worker's stderr is kept for error messages.
const STDERR_KEEP: usize = 16 * 1024;

#[derive(Debug, Serialize)]
pub(crate) struct Request<'a> {
    pub id: u64,
    pub path: &'a Path,
    /// The path relative to the repository root, for messages.
    pub rel: &'a str,
    /// The repository root, to look for a module that is missing from the import path.
    pub root: &'a Path,
    pub function: Option<&'a str>,
    pub timeout: f64,
    /// Record the compile's inputs (for the compile cache).
    pub record: bool,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum Message {
    Ready {
        kfp_version: String,
        python: String,
        /// The interpreter's description for the compile cache (path, version, sys.path).
        #[serde(default)]
        environment: Option<serde_json::Value>,
    },
    Mismatch {
        found: Option<String>,
    },
    Fatal {
        message: String,
    },
    /// A child started compiling request `id`.
    Started {
        id: u64,
    },
    Ok {
        id: u64,
        yaml: String,
        function: String,
        pipeline_name: String,
        #[serde(default)]
        display_name: Option<String>,
        #[serde(default)]
        output: String,
        #[serde(default)]
        duration_ms: u64,
        /// What the compile read, when asked to record it.
        #[serde(default)]
        inputs: Option<super::cache::Inputs>,
    },
    Error {
        id: Option<u64>,
        kind: String,
        message: String,
        #[serde(default)]
        detail: String,
        #[serde(default)]
        output: String,
        #[serde(default)]
        duration_ms: u64,
    },
}

pub(crate) enum Started {
    Ready(Box<Worker>),
    /// The interpreter has another kfp (or none).
    Mismatch {
        found: Option<String>,
    },
}

pub(crate) struct Worker {
    child: Child,
    stdin: ChildStdin,
    results: Lines<BufReader<ChildStdout>>,
    stderr: Arc<Mutex<String>>,
    pub kfp_version: String,
    pub python_version: String,
    pub environment: Option<serde_json::Value>,
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WorkerDied {
    #[error("the compile worker stopped answering within {0:?} and was killed")]
    Hung(Duration),
    #[error("the compile worker died{status}{stderr}")]
    Died { status: String, stderr: String },
}

/// A worker process that was started and has not answered its handshake yet.
pub(crate) struct Spawned {
    child: Child,
    stdin: ChildStdin,
    results: Lines<BufReader<ChildStdout>>,
    stderr: Arc<Mutex<String>>,
    python: PathBuf,
}

/// How to start a worker.
#[derive(Debug, Clone)]
pub(crate) struct Launch<'a> {
    pub python: &'a Path,
    pub script: &'a Path,
    pub tmp: &'a Path,
    /// The pin: a worker whose kfp differs answers `mismatch` (unless `accept_other_kfp`).
    pub kfp_version: &'a str,
    pub jobs: usize,
    /// Use the interpreter's kfp whatever its version (an explicit interpreter); a missing kfp
    /// is still a `mismatch`.
    pub accept_other_kfp: bool,
    /// Directories put before `PYTHONPATH` (`python_path`).
    pub python_path: &'a [PathBuf],
}

impl Worker {
    /// Start `python -u -B worker.py TMPDIR KFP_VERSION JOBS ACCEPT` and wait for its handshake.
    pub async fn start(launch: &Launch<'_>) -> Result<Started> {
        Self::spawn(launch)?.ready().await
    }

    /// Start the worker process without waiting for it: Python's start-up and `import kfp` run
    /// while the caller does other work (discovery); [`Spawned::ready`] waits for the handshake.
    pub fn spawn(launch: &Launch<'_>) -> Result<Spawned> {
        let python = launch.python;
        let mut cmd = tokio::process::Command::new(python);
        cmd.arg("-u")
            .arg("-B")
            .arg(launch.script)
            .arg(launch.tmp)
            .arg(launch.kfp_version)
            .arg(launch.jobs.to_string())
            .arg(if launch.accept_other_kfp { "1" } else { "0" })
            // Dict and set order in kfp's output depends on the hash seed: fix it.
            .env("PYTHONHASHSEED", "0")
            .env("PYTHONUNBUFFERED", "1");
        // Pipeline code runs in this process: none of kfp-ci's credentials go with it.
        crate::child_env::scrub(&mut cmd);
        if let Some(joined) = python_path_env(launch.python_path)? {
            cmd.env("PYTHONPATH", joined);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| crate::pyenv::spawn_error(python, e))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr_pipe = child.stderr.take().expect("piped stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        let keep = stderr.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            loop {
                match stderr_pipe.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let text = String::from_utf8_lossy(&buf[..n]);
                        tracing::trace!(target: "kfp_ci::worker", "{}", text.trim_end());
                        if let Ok(mut s) = keep.lock() {
                            s.push_str(&text);
                            if s.len() > STDERR_KEEP * 2 {
                                let cut = s.len() - crate::text::tail(&s, STDERR_KEEP).len();
                                s.drain(..cut);
                            }
                        }
                    }
                }
            }
        });
        Ok(Spawned {
            child,
            stdin,
            results: BufReader::new(stdout).lines(),
            stderr,
            python: python.to_path_buf(),
        })
    }

    /// Send one request; the worker forks a child for it at once.
    pub async fn send(&mut self, req: &Request<'_>) -> Result<(), WorkerDied> {
        let mut line = serde_json::to_string(req).map_err(|e| self.died(e.to_string()))?;
        line.push('\n');
        if let Err(e) = self.stdin.write_all(line.as_bytes()).await {
            return Err(self.died_after(e.to_string()).await);
        }
        if let Err(e) = self.stdin.flush().await {
            return Err(self.died_after(e.to_string()).await);
        }
        Ok(())
    }

    /// The next answer, `(id, message)`. The worker enforces each file's timeout itself; `guard`
    /// catches a worker that stopped answering.
    pub async fn recv(&mut self, guard: Duration) -> Result<(u64, Message), WorkerDied> {
        match tokio::time::timeout(guard, self.results.next_line()).await {
            Err(_) => {
                let _ = self.child.start_kill();
                Err(WorkerDied::Hung(guard))
            }
            Ok(Err(e)) => Err(self.died_after(e.to_string()).await),
            Ok(Ok(None)) => Err(self.died_after(String::new()).await),
            Ok(Ok(Some(text))) => match serde_json::from_str::<Message>(&text) {
                Ok(msg) => {
                    let id = match &msg {
                        Message::Ok { id, .. } => Some(*id),
                        Message::Error { id, .. } => *id,
                        Message::Started { id } => Some(*id),
                        _ => None,
                    };
                    match id {
                        Some(id) => Ok((id, msg)),
                        None => {
                            let _ = self.child.start_kill();
                            Err(self.died(format!("answer without a request id: {text:.200}")))
                        }
                    }
                }
                Err(e) => {
                    let _ = self.child.start_kill();
                    Err(self.died(format!("unreadable answer ({e}): {text:.200}")))
                }
            },
        }
    }

    fn died(&self, why: String) -> WorkerDied {
        let stderr = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
        WorkerDied::Died {
            status: if why.is_empty() {
                String::new()
            } else {
                format!(" ({why})")
            },
            stderr: fmt_stderr(&stderr),
        }
    }

    async fn died_after(&mut self, why: String) -> WorkerDied {
        let status = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let why = match status {
            Ok(Ok(s)) if why.is_empty() => s.to_string(),
            Ok(Ok(s)) => format!("{s}; {why}"),
            _ => why,
        };
        self.died(why)
    }

    /// Close stdin (the worker exits) and reap it.
    pub async fn shutdown(mut self) {
        drop(self.stdin);
        if tokio::time::timeout(Duration::from_secs(2), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
        }
    }
}

impl Spawned {
    /// Wait for the worker's handshake.
    pub async fn ready(self) -> Result<Started> {
        let Spawned {
            mut child,
            stdin,
            mut results,
            stderr,
            python,
        } = self;
        let first = tokio::time::timeout(STARTUP_TIMEOUT, results.next_line()).await;
        let stderr_text = || stderr.lock().map(|s| s.clone()).unwrap_or_default();
        let line = match first {
            Err(_) => anyhow::bail!(
                "the compile worker ({}) did not start within {STARTUP_TIMEOUT:?}{}",
                python.display(),
                fmt_stderr(&stderr_text())
            ),
            Ok(Err(e)) => anyhow::bail!("cannot read from the compile worker: {e}"),
            Ok(Ok(None)) => {
                let status = child.wait().await.ok();
                // Let the stderr task catch up with the last lines.
                tokio::time::sleep(Duration::from_millis(50)).await;
                anyhow::bail!(
                    "the compile worker ({}) exited before it was ready{}{}",
                    python.display(),
                    status.map(|s| format!(" ({s})")).unwrap_or_default(),
                    fmt_stderr(&stderr_text())
                )
            }
            Ok(Ok(Some(line))) => line,
        };
        match serde_json::from_str::<Message>(&line) {
            Ok(Message::Ready {
                kfp_version,
                python: python_version,
                environment,
            }) => Ok(Started::Ready(Box::new(Worker {
                child,
                stdin,
                results,
                stderr,
                kfp_version,
                python_version,
                environment,
            }))),
            Ok(Message::Mismatch { found }) => Ok(Started::Mismatch { found }),
            Ok(Message::Fatal { message }) => anyhow::bail!(
                "the compile worker ({}) cannot start: {message}{}",
                python.display(),
                fmt_stderr(&stderr_text())
            ),
            _ => anyhow::bail!(
                "unexpected handshake from the compile worker ({}): {line:?}",
                python.display()
            ),
        }
    }
}

/// The worker's `PYTHONPATH` when `python_path` is set: its entries, then any `PYTHONPATH`
/// already set (as `PYTHONPATH=src kfp dsl compile`); `None` leaves the variable as it is.
pub(crate) fn python_path_env(python_path: &[PathBuf]) -> Result<Option<std::ffi::OsString>> {
    if python_path.is_empty() {
        return Ok(None);
    }
    let existing = std::env::var_os("PYTHONPATH").filter(|p| !p.is_empty());
    let entries = python_path
        .iter()
        .cloned()
        .chain(existing.iter().flat_map(std::env::split_paths));
    match std::env::join_paths(entries) {
        Ok(joined) => Ok(Some(joined)),
        Err(e) => anyhow::bail!("invalid `python_path` entry: {e}"),
    }
}

fn fmt_stderr(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.trim_end().lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = &lines[lines.len().saturating_sub(20)..];
    format!(":\n{}", tail.join("\n"))
}

/// The embedded worker script, written to a temp directory for the run (also used for the
/// children's capture files).
pub(crate) struct Script {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl Script {
    pub fn write() -> Result<Script> {
        let dir = tempfile::Builder::new().prefix("kfp-ci-").tempdir()?;
        let path = dir.path().join("kfp_ci_worker.py");
        fs_err::write(&path, super::WORKER_PY)?;
        Ok(Script { dir, path })
    }
}
