//! `kfp-ci init`: workflow, NetworkPolicy and config templates.
//!
//! The templates live in `crates/kfp-ci/templates/`; `{{name}}` placeholders are filled here.
//! GitHub expressions (`${{ … }}`) pass through untouched.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::cli::CiKind;
use crate::pins;

const ACTIONS_WORKFLOW: &str = include_str!("../templates/actions-workflow.yaml");
/// The pull request workflow: `plan --comment`, preview deploys and their cleanup.
const ACTIONS_REVIEW: &str = include_str!("../templates/actions-review.yaml");
const GITLAB_CI: &str = include_str!("../templates/gitlab-ci.yml");
const NETWORK_POLICY: &str = include_str!("../templates/networkpolicy.yaml");
const CONFIG: &str = include_str!("../templates/kfp-ci.toml");

/// The kfp SDK version of the generated kfp-ci.toml (the default `kfp_version`).
pub const KFP_VERSION: &str = crate::settings::DEFAULT_KFP_VERSION;
/// Where the NetworkPolicy goes; `doctor` points here on a connect timeout.
pub const NETWORK_POLICY_PATH: &str = "deploy/networkpolicy-allow-gitea-ingress.yaml";
pub const CONFIG_PATH: &str = "kfp-ci.toml";

/// How kfp-ci gets onto a runner: the exact version that wrote the workflow, from PyPI, as a
/// wheel only (`--only-binary`: never a build from source), in a virtualenv of its own (runner
/// images refuse `pip install` into the system Python). The deploy job also installs uv next to
/// kfp-ci, which then creates the kfp virtualenv with it. Building from git (`KFP_CI_GIT_URL`) is
/// a documented fallback in docs/ci.md, not part of the templates.
fn install_actions(with_uv: bool) -> String {
    let uv = if with_uv {
        format!(" \"uv=={}\"", pins::UV_VERSION)
    } else {
        String::new()
    };
    format!(
        r#"          python3 -m venv "$RUNNER_TEMP/kfp-ci"
          "$RUNNER_TEMP/kfp-ci/bin/pip" install --quiet --disable-pip-version-check --only-binary kfp-ci "kfp-ci=={version}"{uv}
          echo "$RUNNER_TEMP/kfp-ci/bin" >> "$GITHUB_PATH"
          "$RUNNER_TEMP/kfp-ci/bin/kfp-ci" --version"#,
        version = KFP_CI_VERSION
    )
}

fn install_gitlab() -> String {
    format!(
        r#"    - python3 -m venv /tmp/kfp-ci
    - /tmp/kfp-ci/bin/pip install --quiet --disable-pip-version-check --only-binary kfp-ci "kfp-ci=={version}" "uv=={uv}"
    - export PATH="/tmp/kfp-ci/bin:$PATH"
    - kfp-ci --version"#,
        version = KFP_CI_VERSION,
        uv = pins::UV_VERSION
    )
}

/// The version of kfp-ci writing the templates (and installed by them).
pub const KFP_CI_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What `init` writes.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub ci: CiKind,
    pub kfp_namespace: String,
    pub runner_namespace: String,
}

/// One file to write, relative to the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub path: PathBuf,
    pub content: String,
    /// The configuration file: skipped (never an error) when a configuration exists.
    pub is_config: bool,
}

/// The workflow file for a CI.
pub fn workflow_path(ci: CiKind) -> &'static str {
    match ci {
        CiKind::Gitea => ".gitea/workflows/compile-upload.yaml",
        CiKind::Forgejo => ".forgejo/workflows/compile-upload.yaml",
        CiKind::Github => ".github/workflows/compile-upload.yaml",
        CiKind::Gitlab => ".gitlab-ci.yml",
    }
}

/// The pull request workflow (Actions CIs; GitLab: see docs/review-and-undo.md).
pub fn review_workflow_path(ci: CiKind) -> Option<&'static str> {
    match ci {
        CiKind::Gitea => Some(".gitea/workflows/kfp-ci-review.yaml"),
        CiKind::Forgejo => Some(".forgejo/workflows/kfp-ci-review.yaml"),
        CiKind::Github => Some(".github/workflows/kfp-ci-review.yaml"),
        CiKind::Gitlab => None,
    }
}

fn ci_name(ci: CiKind) -> &'static str {
    match ci {
        CiKind::Gitea => "gitea",
        CiKind::Forgejo => "forgejo",
        CiKind::Github => "github",
        CiKind::Gitlab => "gitlab",
    }
}

/// A Kubernetes namespace name: a DNS-1123 label.
fn check_namespace(flag: &str, ns: &str) -> Result<()> {
    let ok = !ns.is_empty()
        && ns.len() <= 63
        && ns
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !ns.starts_with('-')
        && !ns.ends_with('-');
    if !ok {
        bail!(
            "{flag} {ns:?} is not a Kubernetes namespace name: use at most 63 lower-case letters, digits and `-`, starting and ending with a letter or digit"
        );
    }
    Ok(())
}

fn fill(template: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (key, value) in pairs {
        out = out.replace(&format!("{{{{{key}}}}}"), value);
    }
    out
}

/// The files for these options, in the order they are written.
pub fn plan(options: &InitOptions) -> Result<Vec<Planned>> {
    check_namespace("--kfp-namespace", &options.kfp_namespace)?;
    check_namespace("--runner-namespace", &options.runner_namespace)?;
    let settings_page = match options.ci {
        CiKind::Github => "Settings → Secrets and variables → Actions",
        _ => "Settings → Actions → Variables / Secrets",
    };
    let (template, install, install_uv) = match options.ci {
        CiKind::Gitlab => (GITLAB_CI, install_gitlab(), String::new()),
        _ => (
            ACTIONS_WORKFLOW,
            install_actions(false),
            install_actions(true),
        ),
    };
    let (uses_checkout, uses_cache) = (pins::CHECKOUT.uses(), pins::CACHE.uses());
    let pairs = [
        ("ci", ci_name(options.ci)),
        ("settings_page", settings_page),
        ("kfp_namespace", options.kfp_namespace.as_str()),
        ("runner_namespace", options.runner_namespace.as_str()),
        ("kfp_version", KFP_VERSION),
        ("kfp_ci_version", KFP_CI_VERSION),
        ("install_kfp_ci", install.as_str()),
        ("install_kfp_ci_uv", install_uv.as_str()),
        ("uses_checkout", uses_checkout.as_str()),
        ("uses_cache", uses_cache.as_str()),
    ];
    let mut files = vec![
        Planned {
            path: PathBuf::from(workflow_path(options.ci)),
            content: fill(template, &pairs),
            is_config: false,
        },
        Planned {
            path: PathBuf::from(NETWORK_POLICY_PATH),
            content: fill(NETWORK_POLICY, &pairs),
            is_config: false,
        },
        Planned {
            path: PathBuf::from(CONFIG_PATH),
            content: fill(CONFIG, &pairs),
            is_config: true,
        },
    ];
    if let Some(path) = review_workflow_path(options.ci) {
        files.insert(
            1,
            Planned {
                path: PathBuf::from(path),
                content: fill(ACTIONS_REVIEW, &pairs),
                is_config: false,
            },
        );
    }
    Ok(files)
}

/// What happened to one planned file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Created(PathBuf),
    Overwritten(PathBuf),
    /// A configuration already exists (this file).
    KeptConfig(PathBuf),
}

/// The existing configuration of the repository at `dir`, if any.
fn existing_config(dir: &Path) -> Option<PathBuf> {
    let toml = dir.join(CONFIG_PATH);
    if toml.exists() {
        return Some(toml);
    }
    let pyproject = dir.join("pyproject.toml");
    let text = fs_err::read_to_string(&pyproject).ok()?;
    let table: toml::Table = text.parse().ok()?;
    table
        .get("tool")
        .and_then(|t| t.get("kfp-ci"))
        .map(|_| pyproject)
}

/// Write the planned files into `dir`. Existing files are an error naming them, unless `force`;
/// an existing configuration is kept either way.
pub fn write(dir: &Path, files: &[Planned], force: bool) -> Result<Vec<Written>> {
    if !dir.exists() {
        bail!(
            "{} does not exist: create it (or clone the repository there) first, or give the repository with --dir",
            dir.display()
        );
    }
    if !dir.is_dir() {
        bail!(
            "{} is not a directory: give the repository with --dir",
            dir.display()
        );
    }
    let config = existing_config(dir);
    let conflicts: Vec<String> = files
        .iter()
        .filter(|f| !f.is_config && dir.join(&f.path).exists())
        .map(|f| f.path.display().to_string())
        .collect();
    if !conflicts.is_empty() && !force {
        bail!(
            "{} already {}: pass --force to overwrite, or move {} away",
            conflicts.join(", "),
            if conflicts.len() == 1 {
                "exists"
            } else {
                "exist"
            },
            if conflicts.len() == 1 { "it" } else { "them" }
        );
    }
    let mut done = Vec::new();
    for file in files {
        let path = dir.join(&file.path);
        if file.is_config
            && let Some(existing) = &config
        {
            done.push(Written::KeptConfig(
                existing.strip_prefix(dir).unwrap_or(existing).to_path_buf(),
            ));
            continue;
        }
        let existed = path.exists();
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent)?;
        }
        fs_err::write(&path, &file.content)
            .with_context(|| format!("cannot write {}", path.display()))?;
        done.push(if existed {
            Written::Overwritten(file.path.clone())
        } else {
            Written::Created(file.path.clone())
        });
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(ci: CiKind) -> InitOptions {
        InitOptions {
            ci,
            kfp_namespace: "kubeflow".into(),
            runner_namespace: "gitea".into(),
        }
    }

    #[test]
    fn every_placeholder_is_filled() {
        for ci in [
            CiKind::Gitea,
            CiKind::Forgejo,
            CiKind::Github,
            CiKind::Gitlab,
        ] {
            for file in plan(&options(ci)).expect("plan") {
                let leftover = file.content.replace("${{", "");
                assert!(
                    !leftover.contains("{{"),
                    "{}: {}",
                    file.path.display(),
                    leftover
                );
            }
        }
    }

    #[test]
    fn bad_namespaces_are_refused_by_flag() {
        let mut o = options(CiKind::Gitea);
        o.runner_namespace = "Gitea_Runners".into();
        let err = plan(&o).expect_err("invalid");
        assert!(err.to_string().contains("--runner-namespace"), "{err}");
    }

    #[test]
    fn existing_files_are_named_and_kept_without_force() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = plan(&options(CiKind::Gitea)).expect("plan");
        let first = write(dir.path(), &files, false).expect("first");
        assert!(first.iter().all(|w| matches!(w, Written::Created(_))));
        fs_err::write(dir.path().join(NETWORK_POLICY_PATH), "mine").expect("edit");
        let err = write(dir.path(), &files, false).expect_err("conflict");
        let msg = err.to_string();
        assert!(
            msg.contains(".gitea/workflows/compile-upload.yaml"),
            "{msg}"
        );
        assert!(msg.contains(NETWORK_POLICY_PATH), "{msg}");
        assert!(msg.contains("--force"), "{msg}");
        assert_eq!(
            fs_err::read_to_string(dir.path().join(NETWORK_POLICY_PATH)).expect("read"),
            "mine"
        );
        let again = write(dir.path(), &files, true).expect("force");
        assert!(again.contains(&Written::KeptConfig(PathBuf::from(CONFIG_PATH))));
        assert!(again.contains(&Written::Overwritten(PathBuf::from(NETWORK_POLICY_PATH))));
    }
}
