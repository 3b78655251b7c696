//! The Python interpreter and the cached virtualenv with the pinned kfp.
//!
//! The interpreter is `--python`, else `KFP_CI_PYTHON`, else the configuration's `python`, else
//! the Python of the virtualenv kfp-ci itself is installed in (`pip install 'kfp-ci[kfp]'` puts
//! the binary next to it), else `python3` on PATH. The compile worker checks its kfp version itself
//! (from the dist-info) before importing anything (so a matching interpreter costs no extra
//! start-up). When it lacks kfp, or (for the default interpreters only: a named interpreter is
//! always used, see `compile::start_worker`) has another version than the pin, [`ensure_venv`]
//! creates (once) a virtualenv in the user cache directory,
//! keyed by Python version, kfp version and extra requirements, installs
//! `kfp==V kfp-kubernetes==V` plus the requirements, and later runs reuse it. It is made with
//! `uv` when uv is there (next to kfp-ci, else on PATH; `KFP_CI_NO_UV` turns it off), which is
//! several times faster than `venv` + pip, else with `python -m venv` and pip.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// The interpreter asked for, else the one next to kfp-ci's executable, else `python3`.
/// `-v` says which and why.
pub fn interpreter(explicit: Option<&Path>) -> PathBuf {
    if let Some(python) = explicit {
        tracing::debug!(
            "Python: {} (given by --python, KFP_CI_PYTHON or `python` in the configuration)",
            python.display()
        );
        return python.to_path_buf();
    }
    let exe = std::env::current_exe().ok();
    if let Some(python) = exe.as_deref().and_then(python_next_to) {
        tracing::debug!(
            "Python: {} (kfp-ci runs from this virtualenv; no --python, KFP_CI_PYTHON or `python` configured); a cached virtualenv only if it lacks the pinned kfp",
            python.display()
        );
        return python;
    }
    tracing::debug!(
        "Python: python3 on PATH (no --python, KFP_CI_PYTHON or `python` configured, and kfp-ci is not installed in a virtualenv)"
    );
    PathBuf::from("python3")
}

/// The Python of the virtualenv (or conda environment) whose `bin` holds `exe`, if any.
/// `current_exe` is the resolved path, so a pipx symlink on PATH leads to pipx's virtualenv.
pub fn python_next_to(exe: &Path) -> Option<PathBuf> {
    let bin = exe.parent()?;
    let env = bin.parent()?;
    if !env.join("pyvenv.cfg").is_file() && !env.join("conda-meta").is_dir() {
        return None;
    }
    ["python", "python3"]
        .iter()
        .map(|name| bin.join(name))
        .find(|p| p.exists())
}

/// `uv`, when it can create the cached virtualenv: next to kfp-ci (the action and
/// `pip install kfp-ci uv` put it there), else on PATH; never with `KFP_CI_NO_UV` set.
pub fn find_uv() -> Option<PathBuf> {
    if std::env::var_os("KFP_CI_NO_UV").is_some_and(|v| !v.is_empty() && v != "0") {
        return None;
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|bin| bin.join("uv")));
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("uv"));
    beside.into_iter().chain(on_path).find(|p| p.is_file())
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
    match find_uv() {
        Some(uv) => create_with_uv(&uv, base_python, &dir, &packages, &version, &elsewhere).await?,
        None => {
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
        }
    }
    fs_err::write(&stamp, packages.join("\n"))?;
    tracing::info!("virtualenv ready: {}", dir.display());
    Ok(venv_python)
}

/// `uv venv` + `uv pip install`: the same virtualenv as venv + pip, several times faster.
async fn create_with_uv(
    uv: &Path,
    base_python: &Path,
    dir: &Path,
    packages: &[String],
    python_version: &str,
    elsewhere: &str,
) -> Result<()> {
    tracing::info!(
        "with {} (KFP_CI_NO_UV=1: venv and pip instead)",
        uv.display()
    );
    run_step(
        crate::child_env::scrub(&mut tokio::process::Command::new(uv))
            .args(["venv", "--quiet", "--python"])
            .arg(base_python)
            .arg(dir)
            // Only the interpreter kfp-ci was given, never a download.
            .env("UV_PYTHON_DOWNLOADS", "never"),
        &format!(
            "create a virtualenv in {} with {} and uv",
            dir.display(),
            base_python.display()
        ),
        &format!("uv's message above says why; set KFP_CI_NO_UV=1 to use venv and pip instead, {elsewhere}"),
    )
    .await?;
    run_step(
        crate::child_env::scrub(&mut tokio::process::Command::new(uv))
            .args(["pip", "install", "--quiet", "--python"])
            .arg(dir.join("bin").join("python"))
            .args(pip_index_args(
                &|k| std::env::var(k).ok(),
                &pip_config_text(),
            ))
            .args(packages),
        &format!("install {} in {} with uv", packages.join(" "), dir.display()),
        &format!(
            "uv's message above says why (network or package index, a version that does not exist for Python {python_version}); fix that and run again, set KFP_CI_NO_UV=1 to use pip instead, {elsewhere}"
        ),
    )
    .await
}

/// pip's index settings as uv arguments. uv reads neither `PIP_*` variables nor pip.conf, and a
/// team that points pip at a private index (or offline at a wheel directory) must get the same
/// packages from uv: `PIP_INDEX_URL`, `PIP_EXTRA_INDEX_URL`, `PIP_FIND_LINKS`, `PIP_NO_INDEX`,
/// else the same keys in pip's configuration files. uv's own `UV_*` settings win (uv reads them).
pub fn pip_index_args(env: &dyn Fn(&str) -> Option<String>, pip_conf: &str) -> Vec<String> {
    let from_conf = |key: &str| -> Option<String> {
        // `key = value`, continued on indented lines (pip's multi-URL form); last one wins.
        let mut found = None;
        let mut lines = pip_conf.lines().peekable();
        while let Some(line) = lines.next() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            if k.trim() != key || line.starts_with(char::is_whitespace) {
                continue;
            }
            let mut value = v.trim().to_string();
            while let Some(next) = lines.next_if(|l| l.starts_with(char::is_whitespace)) {
                value.push(' ');
                value.push_str(next.trim());
            }
            found = Some(value);
        }
        found
    };
    let setting = |key: &str| {
        env(&format!("PIP_{}", key.to_uppercase().replace('-', "_")))
            .or_else(|| from_conf(key))
            .filter(|v| !v.trim().is_empty())
    };
    let mut args = Vec::new();
    let uv_has = |k: &str| env(k).is_some_and(|v| !v.is_empty());
    if !uv_has("UV_INDEX_URL")
        && !uv_has("UV_DEFAULT_INDEX")
        && let Some(url) = setting("index-url")
    {
        args.extend(["--index-url".to_string(), url]);
    }
    if !uv_has("UV_EXTRA_INDEX_URL") && !uv_has("UV_INDEX") {
        for url in setting("extra-index-url")
            .iter()
            .flat_map(|v| v.split_whitespace())
        {
            args.extend(["--extra-index-url".to_string(), url.to_string()]);
        }
    }
    if !uv_has("UV_FIND_LINKS") {
        for dir in setting("find-links")
            .iter()
            .flat_map(|v| v.split_whitespace())
        {
            // pip skips a missing directory; uv fails on it.
            if dir.contains("://") || Path::new(dir).is_dir() {
                args.extend(["--find-links".to_string(), dir.to_string()]);
            }
        }
    }
    if !uv_has("UV_NO_INDEX")
        && setting("no-index").is_some_and(|v| matches!(v.trim(), "1" | "true" | "yes" | "on"))
    {
        args.push("--no-index".to_string());
    }
    args
}

/// The text of pip's configuration files (`PIP_CONFIG_FILE`, else the site, user and virtualenv
/// ones), later files overriding earlier ones as in pip.
fn pip_config_text() -> String {
    if let Some(file) = std::env::var_os("PIP_CONFIG_FILE") {
        return fs_err::read_to_string(file).unwrap_or_default();
    }
    let mut files = vec![
        PathBuf::from("/etc/xdg/pip/pip.conf"),
        PathBuf::from("/etc/pip.conf"),
    ];
    if let Some(home) = dirs::home_dir() {
        files.push(home.join(".pip/pip.conf"));
    }
    if let Some(config) = dirs::config_dir() {
        files.push(config.join("pip/pip.conf"));
    }
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .collect::<Vec<_>>()
        .join("\n")
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
    fn pip_index_settings_reach_uv() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wheels = dir.path().display().to_string();
        let env_of = |pairs: Vec<(&'static str, String)>| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
        };
        let conf = "[global]\ncert = /etc/ssl/x.pem\nindex-url = https://pypi.corp/simple\nextra-index-url =\n    https://a/simple\n    https://b/simple\n";
        assert_eq!(
            pip_index_args(&env_of(vec![]), conf),
            [
                "--index-url",
                "https://pypi.corp/simple",
                "--extra-index-url",
                "https://a/simple",
                "--extra-index-url",
                "https://b/simple"
            ]
        );
        // The environment wins over the file; a missing find-links directory is skipped.
        let env = env_of(vec![
            ("PIP_INDEX_URL", "https://env/simple".into()),
            ("PIP_FIND_LINKS", format!("{wheels} /no/such/dir")),
            ("PIP_NO_INDEX", "1".into()),
        ]);
        assert_eq!(
            pip_index_args(&env, ""),
            [
                "--index-url",
                "https://env/simple",
                "--find-links",
                wheels.as_str(),
                "--no-index"
            ]
        );
        // uv's own settings win.
        let env = env_of(vec![
            ("PIP_INDEX_URL", "https://env/simple".into()),
            ("UV_INDEX_URL", "https://uv/simple".into()),
        ]);
        assert!(pip_index_args(&env, "").is_empty());
        assert!(pip_index_args(&env_of(vec![]), "[global]\ncert = x\n").is_empty());
    }

    #[test]
    fn the_python_next_to_kfp_ci_only_in_a_virtualenv() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        fs_err::create_dir_all(&bin).expect("bin");
        fs_err::write(bin.join("kfp-ci"), "").expect("exe");
        fs_err::write(bin.join("python"), "").expect("python");
        // A bin directory with a python that is no virtualenv (e.g. /usr/bin): not used.
        assert_eq!(python_next_to(&bin.join("kfp-ci")), None);
        fs_err::write(dir.path().join("pyvenv.cfg"), "home = /usr/bin\n").expect("cfg");
        assert_eq!(
            python_next_to(&bin.join("kfp-ci")),
            Some(bin.join("python"))
        );
        // `python3` only (some virtualenv tools).
        fs_err::remove_file(bin.join("python")).expect("rm");
        assert_eq!(python_next_to(&bin.join("kfp-ci")), None);
        fs_err::write(bin.join("python3"), "").expect("python3");
        assert_eq!(
            python_next_to(&bin.join("kfp-ci")),
            Some(bin.join("python3"))
        );
    }

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
