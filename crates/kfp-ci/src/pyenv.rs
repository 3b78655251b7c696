//! The Python interpreter and the cached virtualenv with the pinned kfp.
//!
//! The interpreter is `--python`, else `KFP_CI_PYTHON`, else the configuration's `python`, else
//! `python3` on PATH. The compile worker checks its kfp version itself (from the dist-info) before importing
//! anything (so a matching interpreter costs no extra start-up). When it lacks kfp, or (for the
//! default `python3` only: a named interpreter is always used, see `compile::start_worker`) has
//! another version than the pin, [`ensure_venv`] creates (once) a virtualenv in the user cache directory,
//! keyed by Python version, kfp version and extra requirements, installs
//! `kfp==V kfp-kubernetes==V` plus the requirements, and later runs reuse it.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// The interpreter asked for, or `python3`.
pub fn interpreter(explicit: Option<&Path>) -> PathBuf {
    explicit.map_or_else(|| PathBuf::from("python3"), Path::to_path_buf)
}

/// Where cached virtualenvs live: `$KFP_CI_CACHE_DIR/venvs`, else `<user cache dir>/kfp-ci/venvs`.
pub fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("KFP_CI_CACHE_DIR") {
        return Ok(PathBuf::from(dir).join("venvs"));
    }
    let base = dirs::cache_dir()
        .context("no user cache directory (set KFP_CI_CACHE_DIR or HOME, or use --python)")?;
    Ok(base.join("kfp-ci").join("venvs"))
}

/// The Python version (`3.11.7`) of `python`.
pub async fn python_version(python: &Path) -> Result<String> {
    let out = crate::child_env::scrub(&mut tokio::process::Command::new(python))
        .args([
            "-I",
            "-c",
            "import sys; print('.'.join(map(str, sys.version_info[:3])))",
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| spawn_error(python, e))?;
    if !out.status.success() {
        anyhow::bail!(
            "{} failed to report its version ({}): {}",
            python.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Explain a failure to start the interpreter.
pub fn spawn_error(python: &Path, err: std::io::Error) -> anyhow::Error {
    if err.kind() == std::io::ErrorKind::NotFound {
        anyhow::anyhow!(
            "Python interpreter `{}` not found: install Python 3, or point --python, KFP_CI_PYTHON or `python` in kfp-ci.toml at one",
            python.display()
        )
    } else {
        anyhow::anyhow!("cannot run Python `{}`: {err}", python.display())
    }
}

/// The packages a cached venv gets.
pub fn packages(kfp_version: &str, requirements: &[String]) -> Vec<String> {
    let mut p = vec![
        format!("kfp=={kfp_version}"),
        format!("kfp-kubernetes=={kfp_version}"),
    ];
    p.extend(requirements.iter().cloned());
    p
}

/// The cache key: Python version, kfp version and extra requirements.
pub fn venv_key(python_version: &str, kfp_version: &str, requirements: &[String]) -> String {
    let mut reqs: Vec<&str> = requirements.iter().map(|s| s.trim()).collect();
    reqs.sort_unstable();
    let mut h = Sha256::new();
    h.update(python_version.as_bytes());
    h.update([0]);
    h.update(kfp_version.as_bytes());
    for r in reqs {
        h.update([0]);
        h.update(r.as_bytes());
    }
    let digest = h.finalize();
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("py{python_version}-kfp{kfp_version}-{hex}")
}

/// A cached virtualenv with `kfp==kfp_version` (created if needed); returns its Python.
/// `found` is what the base interpreter has (for the message).
pub async fn ensure_venv(
    base_python: &Path,
    found: Option<&str>,
    kfp_version: &str,
    requirements: &[String],
) -> Result<PathBuf> {
    let version = python_version(base_python).await?;
    let dir = cache_dir()?.join(venv_key(&version, kfp_version, requirements));
    let venv_python = dir.join("bin").join("python");
    let stamp = dir.join(".kfp-ci-complete");
    if stamp.is_file() && venv_python.exists() {
        tracing::debug!("using the cached virtualenv {}", dir.display());
        return Ok(venv_python);
    }
    let packages = packages(kfp_version, requirements);
    let have = match found {
        Some(v) => format!("has kfp {v}"),
        None => "has no kfp".to_string(),
    };
    tracing::info!(
        "{} {have}, the pin is kfp {kfp_version}: creating a virtualenv in {} with {} (once; later runs reuse it)",
        base_python.display(),
        dir.display(),
        packages.join(" ")
    );
    // What to do instead: never the command that just failed.
    let elsewhere = format!(
        "or run `pip install {}` for a Python you have and point kfp-ci at it with --python (or KFP_CI_PYTHON)",
        packages.join(" ")
    );
    if dir.exists() {
        fs_err::remove_dir_all(&dir)?;
    }
    fs_err::create_dir_all(dir.parent().unwrap_or(&dir))?;
    run_step(
        crate::child_env::scrub(&mut tokio::process::Command::new(base_python))
            .args(["-m", "venv"])
            .arg(&dir),
        &format!(
            "create a virtualenv in {} with {}",
            dir.display(),
            base_python.display()
        ),
        &format!("Python's message above says why; {elsewhere}"),
    )
    .await?;
    run_step(
        crate::child_env::scrub(&mut tokio::process::Command::new(&venv_python))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(&packages),
        &format!("install {} in {}", packages.join(" "), dir.display()),
        &format!(
            "pip's message above says why (network or package index, a version that does not exist for Python {version}); fix that and run again, {elsewhere}"
        ),
    )
    .await?;
    fs_err::write(&stamp, packages.join("\n"))?;
    tracing::info!("virtualenv ready: {}", dir.display());
    Ok(venv_python)
}

async fn run_step(cmd: &mut tokio::process::Command, what: &str, hint: &str) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("cannot {what}"))?;
    if !out.status.success() {
        // Python's own words, from both streams: Debian's venv prints on stdout which package
        // to install (python3-venv), pip prints its errors on stderr.
        let mut message = String::new();
        for stream in [&out.stdout, &out.stderr] {
            let text = String::from_utf8_lossy(stream);
            let lines: Vec<&str> = text.trim_end().lines().collect();
            for line in &lines[lines.len().saturating_sub(20)..] {
                if !line.trim().is_empty() {
                    message.push_str("    ");
                    message.push_str(line);
                }
                message.push('\n');
            }
        }
        anyhow::bail!("could not {what} ({}):\n{message}hint: {hint}", out.status,);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn venv_key_depends_on_every_input_but_not_requirement_order() {
        let a = venv_key(
            "3.11.7",
            "2.17.0",
            &["pandas==2.2.0".into(), "boto3".into()],
        );
        let b = venv_key(
            "3.11.7",
            "2.17.0",
            &["boto3".into(), "pandas==2.2.0".into()],
        );
        assert_eq!(a, b);
        assert!(a.starts_with("py3.11.7-kfp2.17.0-"), "{a}");
        assert_ne!(a, venv_key("3.12.1", "2.17.0", &[]));
        assert_ne!(
            venv_key("3.11.7", "2.17.0", &[]),
            venv_key("3.11.7", "2.16.0", &[])
        );
        assert_eq!(
            packages("2.17.0", &["boto3".into()]),
            ["kfp==2.17.0", "kfp-kubernetes==2.17.0", "boto3"]
        );
    }
}
