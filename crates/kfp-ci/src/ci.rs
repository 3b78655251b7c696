//! CI platform detection, run links, job outputs, step summary.
//!
//! [`detect`] reads the environment the CI gives a job and says which platform this is, which
//! commit, and where the run's page is. [`publish`] writes a report where the platform picks it
//! up: `$GITHUB_OUTPUT` (GitHub, Gitea, Forgejo), a dotenv file (GitLab, Woodpecker) and
//! `$GITHUB_STEP_SUMMARY`. Facts behind the choices: `docs/ci.md`.

mod outputs;
mod summary;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::report::Report;
use crate::settings::CiConfig;

pub use outputs::{dotenv, github_output};
pub use summary::{Outcome, action_label, first_line, new_versions, step_summary};

/// What the CI environment says about this run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CiInfo {
    /// Serialised as `forgejo`, `gitea`, `gitlab`, `woodpecker`, `act` (nektos/act on a
    /// laptop), `github`, `local`; `""` when a report read back did not say.
    pub platform: Platform,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_sha: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_url: Option<String>,
}

impl CiInfo {
    /// First 7 characters of the commit, for titles and tables.
    pub fn short_sha(&self) -> Option<&str> {
        self.commit_sha.as_deref().map(|s| s.get(..7).unwrap_or(s))
    }
}

/// The CI platforms kfp-ci knows, in detection order.
///
/// In JSON and outputs a platform is its [`Platform::as_str`] name, as it always was; a report
/// read back with a missing, empty or unknown name gets [`Platform::Unstated`] (`""`), which
/// `notify` fills from its own environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Platform {
    Forgejo,
    Gitea,
    Gitlab,
    Woodpecker,
    /// nektos/act on a laptop: GitHub's variables, no meaningful run page.
    Act,
    Github,
    Local,
    /// Never detected: only a report that did not name its platform.
    #[default]
    Unstated,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Unstated => "",
            Platform::Forgejo => "forgejo",
            Platform::Gitea => "gitea",
            Platform::Gitlab => "gitlab",
            Platform::Woodpecker => "woodpecker",
            Platform::Act => "act",
            Platform::Github => "github",
            Platform::Local => "local",
        }
    }

    /// The platform named `name` ([`Platform::as_str`]); any other name is
    /// [`Platform::Unstated`].
    pub fn from_name(name: &str) -> Platform {
        [
            Platform::Forgejo,
            Platform::Gitea,
            Platform::Gitlab,
            Platform::Woodpecker,
            Platform::Act,
            Platform::Github,
            Platform::Local,
        ]
        .into_iter()
        .find(|p| p.as_str() == name)
        .unwrap_or(Platform::Unstated)
    }

    /// Detection order: Forgejo (it also sets `GITEA_ACTIONS`), Gitea, GitLab, Woodpecker, act, GitHub.
    pub fn detect(env: &dyn Fn(&str) -> Option<String>) -> Platform {
        let is = |name: &str, value: &str| {
            env(name).is_some_and(|v| v.trim().eq_ignore_ascii_case(value))
        };
        if is("FORGEJO_ACTIONS", "true") {
            Platform::Forgejo
        } else if is("GITEA_ACTIONS", "true") {
            Platform::Gitea
        } else if is("GITLAB_CI", "true") {
            Platform::Gitlab
        } else if is("CI", "woodpecker") {
            Platform::Woodpecker
        } else if is("ACT", "true") {
            Platform::Act
        } else if is("GITHUB_ACTIONS", "true") {
            Platform::Github
        } else {
            Platform::Local
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Platform {
    fn from(name: &str) -> Platform {
        Platform::from_name(name)
    }
}

/// Compare with a serialised name (`info.platform == "gitea"`).
impl PartialEq<&str> for Platform {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

impl Serialize for Platform {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Platform {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Lenient: a report from another kfp-ci version still reads.
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(Platform::from_name(&name))
    }
}

/// Detect the CI platform and this run's facts from the process environment.
///
/// `run_url_override` (`--run-url`, `KFP_CI_RUN_URL`) wins over everything; then the configured
/// template `ci.run_url`; then the platform's own rule. A local run gets the commit from `git`.
pub fn detect(config: &CiConfig, run_url_override: Option<&str>) -> CiInfo {
    let env = |name: &str| std::env::var(name).ok();
    let mut info = detect_from(&env, config, run_url_override);
    if info.commit_sha.is_none() && matches!(info.platform, Platform::Local | Platform::Act) {
        info.commit_sha = git_head();
    }
    info
}

/// [`detect`], but when this is Gitea and `ci.gitea_version` is not set, ask the server for its
/// version (`GET {GITHUB_API_URL}/version`, two seconds at most) to choose the run link's form.
pub async fn detect_probing(config: &CiConfig, run_url_override: Option<&str>) -> CiInfo {
    let env = |name: &str| std::env::var(name).ok();
    if Platform::detect(&env) == Platform::Gitea
        && config.gitea_version.is_none()
        && config.run_url.is_none()
        && run_url_override.is_none()
        && let Some(api) = nonempty(env("GITHUB_API_URL"))
        && let Some(version) = gitea_server_version(&api).await
    {
        tracing::debug!("Gitea server version {version} (from {api}/version)");
        let config = CiConfig {
            gitea_version: Some(version),
            ..config.clone()
        };
        return detect(&config, run_url_override);
    }
    detect(config, run_url_override)
}

async fn gitea_server_version(api_url: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Version {
        version: String,
    }
    let client = crate::http::client(crate::http::Options {
        timeout: Some(std::time::Duration::from_secs(2)),
        ..crate::http::Options::default()
    })
    .ok()?;
    let url = format!("{}/version", api_url.trim_end_matches('/'));
    let response = client.get(&url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json::<Version>().await.ok().map(|v| v.version)
}

fn git_head() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    nonempty(Some(
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    ))
}

fn nonempty(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// [`detect`] over any environment (tests pass a map).
pub fn detect_from(
    env: &dyn Fn(&str) -> Option<String>,
    config: &CiConfig,
    run_url_override: Option<&str>,
) -> CiInfo {
    let var = |name: &str| nonempty(env(name));
    let platform = Platform::detect(env);
    let mut info = CiInfo {
        platform,
        ..CiInfo::default()
    };
    match platform {
        Platform::Forgejo | Platform::Gitea | Platform::Github | Platform::Act => {
            info.commit_sha = var("GITHUB_SHA");
            info.git_ref = var("GITHUB_REF_NAME").or_else(|| var("GITHUB_REF"));
            info.repository = var("GITHUB_REPOSITORY");
            info.actor = var("GITHUB_ACTOR");
            info.run_id = var("GITHUB_RUN_ID");
            info.run_number = var("GITHUB_RUN_NUMBER");
        }
        Platform::Gitlab => {
            info.commit_sha = var("CI_COMMIT_SHA");
            info.git_ref = var("CI_COMMIT_REF_NAME");
            info.repository = var("CI_PROJECT_PATH");
            info.actor = var("GITLAB_USER_LOGIN");
            info.run_id = var("CI_PIPELINE_ID");
            info.run_number = var("CI_PIPELINE_IID");
        }
        Platform::Woodpecker => {
            info.commit_sha = var("CI_COMMIT_SHA");
            info.git_ref = var("CI_COMMIT_BRANCH").or_else(|| var("CI_COMMIT_REF"));
            info.repository = var("CI_REPO");
            info.actor = var("CI_COMMIT_AUTHOR");
            info.run_number = var("CI_PIPELINE_NUMBER");
        }
        Platform::Local | Platform::Unstated => {}
    }
    info.run_url = run_url(platform, &info, &var, config, run_url_override);
    info
}

fn run_url(
    platform: Platform,
    info: &CiInfo,
    var: &dyn Fn(&str) -> Option<String>,
    config: &CiConfig,
    run_url_override: Option<&str>,
) -> Option<String> {
    if let Some(url) = nonempty(run_url_override.map(str::to_string)) {
        // Published in reports, outputs and notifications, and it comes from the environment
        // (where credentials live): shown as every URL, without userinfo or query. A query the
        // link needs belongs in the `ci.run_url` template, which is committed.
        let url = crate::redact::display_url(&url);
        return Some(url.trim_end_matches('/').to_string());
    }
    let server = nonempty(config.server_url.clone())
        .or_else(|| match platform {
            Platform::Gitlab => var("CI_SERVER_URL"),
            Platform::Woodpecker => var("CI_FORGE_URL"),
            _ => var("GITHUB_SERVER_URL"),
        })
        .map(|s| s.trim_end_matches('/').to_string());
    if let Some(template) = nonempty(config.run_url.clone()) {
        let url = template
            .replace("{server}", server.as_deref().unwrap_or(""))
            .replace("{repo}", info.repository.as_deref().unwrap_or(""))
            .replace("{run_id}", info.run_id.as_deref().unwrap_or(""))
            .replace("{run_number}", info.run_number.as_deref().unwrap_or(""))
            .replace("{sha}", info.commit_sha.as_deref().unwrap_or(""));
        return Some(url.trim_end_matches('/').to_string());
    }
    let on_forge = |run: Option<&String>| -> Option<String> {
        Some(format!(
            "{}/{}/actions/runs/{}",
            server.as_deref()?,
            info.repository.as_deref()?,
            run?
        ))
    };
    match platform {
        Platform::Github => on_forge(info.run_id.as_ref()),
        Platform::Forgejo => on_forge(info.run_number.as_ref()),
        Platform::Gitea => {
            if gitea_links_by_run_id(config.gitea_version.as_deref()) {
                on_forge(info.run_id.as_ref())
            } else {
                on_forge(info.run_number.as_ref())
            }
        }
        Platform::Gitlab => var("CI_PIPELINE_URL").or_else(|| var("CI_JOB_URL")),
        Platform::Woodpecker => var("CI_PIPELINE_URL"),
        Platform::Act | Platform::Local | Platform::Unstated => None,
    }
}

/// Gitea 1.26 moved run pages from the per-repository run number to the global run id
/// (go-gitea/gitea#36842). Without a configured version, assume a current Gitea (≥ 1.26).
pub fn gitea_links_by_run_id(gitea_version: Option<&str>) -> bool {
    let Some(version) = gitea_version else {
        return true;
    };
    let version = version.trim().trim_start_matches(['v', 'V']);
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u64>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (1, 26),
        (Some(major), None) => major > 1,
        _ => {
            tracing::warn!(
                "ci.gitea_version = {version:?} is not a version like \"1.26\"; assuming Gitea 1.26 or later"
            );
            true
        }
    }
}

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
        let var = |name: &str| nonempty(std::env::var(name).ok());
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn detect_with(vars: &[(&str, &str)], config: &CiConfig, over: Option<&str>) -> CiInfo {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        detect_from(&|name| map.get(name).cloned(), config, over)
    }

    const GITEA: &[(&str, &str)] = &[
        ("GITEA_ACTIONS", "true"),
        ("GITHUB_ACTIONS", "true"),
        ("ACT", "true"),
        ("CI", "true"),
        ("GITHUB_SERVER_URL", "http://gitea:3000/"),
        ("GITHUB_REPOSITORY", "ml/pipelines"),
        ("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567"),
        ("GITHUB_REF", "refs/heads/main"),
        ("GITHUB_REF_NAME", "main"),
        ("GITHUB_ACTOR", "alice"),
        ("GITHUB_RUN_ID", "4711"),
        ("GITHUB_RUN_NUMBER", "12"),
    ];

    #[test]
    fn gitea_defaults_to_run_id_and_trims_the_server_slash() {
        let info = detect_with(GITEA, &CiConfig::default(), None);
        assert_eq!(info.platform, "gitea");
        assert_eq!(
            info.run_url.as_deref(),
            Some("http://gitea:3000/ml/pipelines/actions/runs/4711")
        );
        assert_eq!(info.git_ref.as_deref(), Some("main"));
        assert_eq!(info.short_sha(), Some("0123456"));
    }

    #[test]
    fn gitea_1_25_links_by_run_number_and_server_url_overrides() {
        let config = CiConfig {
            gitea_version: Some("1.25.4".into()),
            server_url: Some("https://git.example.com/".into()),
            run_url: None,
        };
        let info = detect_with(GITEA, &config, None);
        assert_eq!(
            info.run_url.as_deref(),
            Some("https://git.example.com/ml/pipelines/actions/runs/12")
        );
        let config = CiConfig {
            gitea_version: Some("v1.26.0".into()),
            ..config
        };
        let info = detect_with(GITEA, &config, None);
        assert_eq!(
            info.run_url.as_deref(),
            Some("https://git.example.com/ml/pipelines/actions/runs/4711")
        );
    }

    #[test]
    fn forgejo_wins_over_gitea_and_links_by_number() {
        let mut vars = GITEA.to_vec();
        vars.push(("FORGEJO_ACTIONS", "true"));
        let info = detect_with(&vars, &CiConfig::default(), None);
        assert_eq!(info.platform, "forgejo");
        assert_eq!(
            info.run_url.as_deref(),
            Some("http://gitea:3000/ml/pipelines/actions/runs/12")
        );
    }

    #[test]
    fn run_url_override_and_template_win() {
        let info = detect_with(GITEA, &CiConfig::default(), Some("https://ci/run/9/"));
        assert_eq!(info.run_url.as_deref(), Some("https://ci/run/9"));
        let config = CiConfig {
            run_url: Some("{server}/{repo}/actions/runs/{run_number}?sha={sha}".into()),
            ..CiConfig::default()
        };
        let info = detect_with(GITEA, &config, None);
        assert_eq!(
            info.run_url.as_deref(),
            Some(
                "http://gitea:3000/ml/pipelines/actions/runs/12?sha=0123456789abcdef0123456789abcdef01234567"
            )
        );
    }

    #[test]
    fn github_gitlab_woodpecker_act_local() {
        let github = [
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "o/r"),
            ("GITHUB_RUN_ID", "99"),
            ("GITHUB_RUN_NUMBER", "3"),
        ];
        let info = detect_with(&github, &CiConfig::default(), None);
        assert_eq!(info.platform, "github");
        assert_eq!(
            info.run_url.as_deref(),
            Some("https://github.com/o/r/actions/runs/99")
        );

        let gitlab = [
            ("GITLAB_CI", "true"),
            ("CI", "true"),
            (
                "CI_PIPELINE_URL",
                "https://gitlab.example/g/p/-/pipelines/7",
            ),
            ("CI_PROJECT_PATH", "g/p"),
            ("CI_PIPELINE_ID", "7"),
            ("CI_PIPELINE_IID", "2"),
            ("CI_COMMIT_REF_NAME", "main"),
        ];
        let info = detect_with(&gitlab, &CiConfig::default(), None);
        assert_eq!(info.platform, "gitlab");
        assert_eq!(
            info.run_url.as_deref(),
            Some("https://gitlab.example/g/p/-/pipelines/7")
        );
        assert_eq!(info.repository.as_deref(), Some("g/p"));

        let woodpecker = [
            ("CI", "woodpecker"),
            ("CI_PIPELINE_URL", "https://wp.example/repos/1/pipeline/5"),
            ("CI_PIPELINE_NUMBER", "5"),
            ("CI_REPO", "o/r"),
        ];
        let info = detect_with(&woodpecker, &CiConfig::default(), None);
        assert_eq!(info.platform, "woodpecker");
        assert_eq!(info.run_number.as_deref(), Some("5"));
        assert_eq!(
            info.run_url.as_deref(),
            Some("https://wp.example/repos/1/pipeline/5")
        );

        let act = [
            ("ACT", "true"),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "o/r"),
            ("GITHUB_RUN_ID", "1"),
        ];
        let info = detect_with(&act, &CiConfig::default(), None);
        assert_eq!(info.platform, "act");
        assert_eq!(info.run_url, None);

        let info = detect_with(&[], &CiConfig::default(), None);
        assert_eq!(info.platform, "local");
        assert_eq!(info.run_url, None);
    }

    #[test]
    fn gitea_version_parsing() {
        assert!(!gitea_links_by_run_id(Some("1.25")));
        assert!(!gitea_links_by_run_id(Some("1.21.11")));
        assert!(gitea_links_by_run_id(Some("1.26")));
        assert!(gitea_links_by_run_id(Some("1.27.0+dev-12-gabc")));
        assert!(gitea_links_by_run_id(Some("2")));
        assert!(gitea_links_by_run_id(None));
    }

    #[test]
    fn platform_is_serialised_by_its_name_and_read_back_leniently() {
        let info = detect_with(GITEA, &CiConfig::default(), None);
        let json = serde_json::to_value(&info).expect("serialise");
        assert_eq!(json["platform"], "gitea");
        let back: CiInfo = serde_json::from_value(json).expect("read back");
        assert_eq!(back.platform, Platform::Gitea);
        for name in [
            "forgejo",
            "gitea",
            "gitlab",
            "woodpecker",
            "act",
            "github",
            "local",
        ] {
            let platform: Platform = serde_json::from_value(serde_json::json!(name)).expect(name);
            assert_eq!(platform.as_str(), name);
            assert_ne!(platform, Platform::Unstated);
        }
        // A report that does not say (or names a platform this version does not know).
        let missing: CiInfo = serde_json::from_str(r#"{"commit_sha":"abc"}"#).expect("missing");
        assert_eq!(missing.platform, Platform::Unstated);
        let unknown: CiInfo = serde_json::from_str(r#"{"platform":"jenkins"}"#).expect("unknown");
        assert_eq!(unknown.platform, Platform::Unstated);
        assert_eq!(
            serde_json::to_value(CiInfo::default()).expect("default")["platform"],
            ""
        );
    }
}
