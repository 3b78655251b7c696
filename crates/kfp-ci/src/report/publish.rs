//! Publishing a report where the CI picks it up: `$GITHUB_OUTPUT` (GitHub, Gitea, Forgejo), a
//! dotenv file (GitLab, Woodpecker) and `$GITHUB_STEP_SUMMARY`. Facts behind the choices:
//! `docs/ci.md`.

use std::path::PathBuf;

use super::{Report, dotenv, github_output, step_summary};
use crate::ci::Platform;

/// Where [`publish`] writes; from the environment by [`Destinations::from_env`].
#[derive(Debug, Clone, Default)]
pub struct Destinations {
    /// `$GITHUB_OUTPUT`.
    pub github_output: Option<PathBuf>,
    /// `$GITHUB_STEP_SUMMARY`.
    pub step_summary: Option<PathBuf>,
    /// GitLab / Woodpecker dotenv file.
    pub dotenv: Option<PathBuf>,
}

/// Default dotenv file for GitLab (`artifacts: reports: dotenv: kfp-ci.env`) and Woodpecker.
pub const DEFAULT_DOTENV: &str = "kfp-ci.env";

impl Destinations {
    pub fn from_env() -> Destinations {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let env = |name: &str| std::env::var(name).ok();
        let platform = Platform::detect(&env);
        let dotenv = var("KFP_CI_DOTENV").map(PathBuf::from).or_else(|| {
            matches!(platform, Platform::Gitlab | Platform::Woodpecker)
                .then(|| PathBuf::from(DEFAULT_DOTENV))
        });
        Destinations {
            github_output: var("GITHUB_OUTPUT").map(PathBuf::from),
            step_summary: var("GITHUB_STEP_SUMMARY").map(PathBuf::from),
            dotenv,
        }
    }
}

/// Write the report where this CI picks it up. A file that cannot be written is a warning, not a
/// failure: the deploy itself went through.
pub fn publish(report: &Report) -> anyhow::Result<()> {
    publish_to(report, &Destinations::from_env());
    Ok(())
}

/// [`publish`] to explicit destinations; returns how many files were written.
pub fn publish_to(report: &Report, to: &Destinations) -> usize {
    // Pipeline output and server answers in the report may carry a secret: hide them all.
    let report = &match crate::redact::redact_serde(report) {
        Ok(r) => r,
        Err(err) => {
            // Fail closed: no output, no summary rather than a report that may show a secret.
            tracing::error!("CI outputs and step summary not written: {err:#}");
            return 0;
        }
    };
    let mut written = 0;
    let mut append = |path: &PathBuf, what: &str, text: String| match append_file(path, &text) {
        Ok(()) => {
            tracing::debug!("wrote {what} to {}", path.display());
            written += 1;
        }
        Err(err) => tracing::warn!(
            "cannot write the {what} to {}: {err}; the deploy itself is not affected",
            path.display()
        ),
    };
    if let Some(path) = &to.github_output {
        append(path, "job outputs ($GITHUB_OUTPUT)", github_output(report));
    }
    if let Some(path) = &to.dotenv {
        let (text, dropped) = dotenv(report);
        if dropped {
            tracing::warn!(
                "the report is too large for the dotenv file {} (GitLab accepts 5 KB); KFP_CI_REPORT \
                 left out: pass the report with --report-file and an artifact instead",
                path.display()
            );
        }
        append(path, "dotenv outputs", text);
    }
    if let Some(path) = &to.step_summary {
        append(
            path,
            "step summary ($GITHUB_STEP_SUMMARY)",
            step_summary(report),
        );
    }
    written
}

fn append_file(path: &PathBuf, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = fs_err::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.flush()
}
