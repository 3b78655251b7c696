//! Settings: flags > environment > configuration file > defaults.
//!
//! The configuration file is `--config FILE`, else `kfp-ci.toml` at the repository root, else the
//! `[tool.kfp-ci]` table of `pyproject.toml`. Unknown keys are errors that name the key and the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cli::NameFrom;

mod runs;

pub use runs::{ScheduleConfig, SmokeConfig};

/// The whole configuration file. Every key is optional; see the README's configuration reference.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    // Discovery.
    /// Globs of pipeline files, relative to the repository root (default ["**/*_pipeline.py"]; --include replaces).
    pub include: Option<Vec<String>>,
    /// Globs of files never compiled (--exclude adds to them).
    pub exclude: Option<Vec<String>>,
    /// Directory depth below each searched path (1: flat layout; default unlimited).
    pub max_depth: Option<usize>,
    /// Pipeline names from the file stem ("file", default) or from @dsl.pipeline(name=...) ("pipeline").
    pub name_from: Option<NameFrom>,
    /// Which `@dsl.pipeline` function to compile, per file (path relative to the repository root).
    pub functions: BTreeMap<String, String>,

    // Compile.
    /// Interpreter with kfp, or to build the cached virtualenv from (default: the Python next to kfp-ci in its virtualenv, else python3).
    pub python: Option<PathBuf>,
    /// The pinned kfp SDK (and kfp-kubernetes) version (default "2.17.0").
    pub kfp_version: Option<String>,
    /// Extra packages the pipeline files import at compile time.
    pub requirements: Option<Vec<String>>,
    /// Directories (relative to the repository root) put on the compile's import path, like
    /// `PYTHONPATH`: where local helper packages live (`["src"]`).
    pub python_path: Option<Vec<PathBuf>>,
    /// A kfp version other than `kfp_version` in an explicit interpreter is an error, not a warning.
    pub strict: Option<bool>,
    /// Files compiled at once (default: number of cores).
    pub jobs: Option<usize>,
    /// Seconds per file before it is killed and reported (default 120).
    pub timeout: Option<u64>,
    /// Where `compile` writes YAML (default "dist/pipelines").
    pub out_dir: Option<PathBuf>,

    // Target (the default one; `[targets.NAME]` adds named ones).
    /// KFP API base URL, scheme explicit, path prefix kept (default: the embedded local store; an error in CI).
    pub endpoint: Option<String>,
    /// KFP namespace (multi-user), used on every lookup and create.
    pub namespace: Option<String>,
    /// KFP UI base URL, for links in reports and notifications.
    pub ui_url: Option<String>,
    /// Seconds one request to the KFP API may take, retries included (default 30).
    pub request_timeout: Option<u64>,
    /// Which [targets.NAME] to use when --target / KFP_CI_TARGET is not given.
    pub default_target: Option<String>,
    /// Named targets: endpoint, namespace and credentials each.
    pub targets: BTreeMap<String, TargetConfig>,

    /// Upload settings.
    pub deploy: DeployConfig,
    /// When and where to notify.
    pub notify: NotifyConfig,
    /// CI run links.
    pub ci: CiConfig,

    /// Recurring runs (docs/schedules.md). `schedules = []` manages (and so prunes) none.
    pub schedules: Option<Vec<ScheduleConfig>>,
    /// Smoke runs after deploy (docs/schedules.md).
    pub smoke: Option<SmokeConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TargetConfig {
    /// KFP API base URL, scheme explicit, path prefix kept.
    pub endpoint: Option<String>,
    /// KFP namespace (multi-user).
    pub namespace: Option<String>,
    /// KFP UI base URL, for links.
    pub ui_url: Option<String>,
    /// Name of the environment variable holding this target's bearer token.
    pub token_env: Option<String>,
    /// File holding a bearer token, re-read on every request.
    pub token_file: Option<PathBuf>,
    /// Name of the environment variable holding a cookie string (e.g. `authservice_session=…`).
    pub cookie_env: Option<String>,
    /// Extra headers; values may reference environment variables as `${NAME}`.
    pub headers: BTreeMap<String, String>,
    /// PEM bundle of extra trusted CA certificates.
    pub ca_cert: Option<PathBuf>,
    /// Do not verify the server's TLS certificate (never in production).
    pub insecure_skip_tls_verify: Option<bool>,
    /// Overrides the top-level `request_timeout` for this target.
    pub request_timeout: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DeployConfig {
    /// Parallel uploads (default 8).
    pub upload_jobs: Option<usize>,
    /// Keep at most N versions per deployed pipeline (only kfp-ci's, never the newest).
    pub keep_versions: Option<usize>,
    /// Apply nothing if any pipeline failed to compile or plan.
    pub atomic: Option<bool>,
    /// Delete pipelines kfp-ci created whose files are gone (`deploy --prune`).
    pub prune: Option<bool>,
    /// `delete` (default) or `disable` managed recurring runs whose schedule was removed.
    pub prune_schedules: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// `always` (default), `failure` or `change`.
    #[schemars(extend("enum" = ["always", "failure", "change"]))]
    pub on: Option<String>,
    /// Fail when the notification cannot be sent.
    pub required: Option<bool>,
    /// The ntfy topic and its credentials.
    pub ntfy: NtfyConfig,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NtfyConfig {
    /// ntfy topic URL, e.g. https://ntfy.example.com/kfp-deploys.
    pub url: Option<String>,
    /// ntfy user (the password comes from NTFY_PASSWORD or password_env).
    pub user: Option<String>,
    /// Name of the environment variable holding the password (default `NTFY_PASSWORD`).
    pub password_env: Option<String>,
    /// Name of the environment variable holding the token (default `NTFY_TOKEN`).
    pub token_env: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CiConfig {
    /// Gitea server version (e.g. "1.26"): from 1.26 run links use the run id, before the number.
    pub gitea_version: Option<String>,
    /// Public base URL of the forge, when the runner's `GITHUB_SERVER_URL` is internal.
    pub server_url: Option<String>,
    /// A full run URL template, e.g. `{server}/{repo}/actions/runs/{run_id}`.
    pub run_url: Option<String>,
}

/// The JSON Schema (draft 7, which taplo and VS Code's TOML extensions read) of [`Config`]: the
/// same types that parse the file, so the schema cannot drift from what kfp-ci accepts.
pub fn json_schema() -> String {
    let mut schema = schemars::generate::SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<Config>();
    schema.insert("title".into(), "kfp-ci configuration".into());
    schema.insert(
        "description".into(),
        "kfp-ci.toml at the repository root, or the [tool.kfp-ci] table of pyproject.toml. Every key is optional; unknown keys are errors.".into(),
    );
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}

/// A loaded configuration and where it came from.
#[derive(Debug, Clone, Default)]
pub struct LoadedConfig {
    pub config: Config,
    /// The file it was read from, if any.
    pub path: Option<PathBuf>,
    /// The repository root: the directory of the configuration file, else the git root, else cwd.
    pub root: PathBuf,
}

/// Find and read the configuration for a run started in `cwd`.
pub fn load(explicit: Option<&Path>, cwd: &Path) -> Result<LoadedConfig> {
    if let Some(path) = explicit {
        if !path.is_file() {
            anyhow::bail!(
                "configuration file {} does not exist (given by --config or KFP_CI_CONFIG)",
                path.display()
            );
        }
        let config = read_file(path)?;
        // The repository the file belongs to: `--config ci/kfp-ci.toml` still means the whole
        // repository, not `ci/`. Outside a git work tree, the file's directory.
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| cwd.to_path_buf(), |p| cwd.join(p));
        let root = repo_root(&dir);
        return Ok(LoadedConfig {
            config,
            path: Some(path.to_path_buf()),
            root,
        });
    }
    let root = repo_root(cwd);
    for candidate in [root.join("kfp-ci.toml"), root.join("pyproject.toml")] {
        if candidate.is_file() {
            let config = read_file(&candidate)?;
            let is_pyproject = candidate.ends_with("pyproject.toml");
            if is_pyproject && config == Config::default() && !has_tool_table(&candidate) {
                continue;
            }
            return Ok(LoadedConfig {
                config,
                path: Some(candidate),
                root,
            });
        }
    }
    Ok(LoadedConfig {
        config: Config::default(),
        path: None,
        root,
    })
}

fn has_tool_table(path: &Path) -> bool {
    fs_err::read_to_string(path)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| t.get("tool").and_then(|t| t.get("kfp-ci")).cloned())
        .is_some()
}

/// Parse one configuration file (a kfp-ci.toml, or a pyproject.toml's `[tool.kfp-ci]`).
pub fn read_file(path: &Path) -> Result<Config> {
    let text = fs_err::read_to_string(path)?;
    let is_pyproject = path.file_name().is_some_and(|n| n == "pyproject.toml");
    if is_pyproject {
        let table: toml::Table =
            toml::from_str(&text).map_err(|e| config_error(path, &text, &e))?;
        if table.get("tool").and_then(|t| t.get("kfp-ci")).is_none() {
            return Ok(Config::default());
        }
        // Parsed again from the text (not from the table) so that errors keep their line.
        let config = toml::from_str::<PyProject>(&text)
            .map_err(|e| config_error(path, &text, &e))?
            .tool
            .kfp_ci;
        config.register_secrets();
        Ok(config)
    } else {
        let config: Config = toml::from_str(&text).map_err(|e| config_error(path, &text, &e))?;
        config.register_secrets();
        Ok(config)
    }
}

#[derive(Deserialize)]
struct PyProject {
    tool: PyProjectTool,
}

#[derive(Deserialize)]
struct PyProjectTool {
    #[serde(rename = "kfp-ci")]
    kfp_ci: Config,
}

/// One line: `invalid configuration file F, line N ([table]): message (`the line`); see …`.
/// toml's own rendering is a multi-line source snippet with Rust type names (`usize`).
fn config_error(path: &Path, text: &str, err: &toml::de::Error) -> anyhow::Error {
    let mut message = err.message().trim().replace('\n', " ");
    for (rust, plain) in [
        ("expected usize", "expected a whole number ≥ 0"),
        ("expected u64", "expected a whole number ≥ 0"),
        ("expected u32", "expected a whole number ≥ 0"),
        (
            "expected a sequence",
            "expected a list, e.g. [\"a\", \"b\"]",
        ),
        ("expected a map", "expected a table"),
        ("unknown field", "unknown key"),
    ] {
        message = message.replace(rust, plain);
    }
    let mut place = String::new();
    if let Some(span) = err.span() {
        let start = span.start.min(text.len());
        let line_no = text[..start].matches('\n').count() + 1;
        let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
        place = format!(", line {line_no}");
        let table = text[..start]
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('['));
        if let Some(table) = table
            && !line.starts_with('[')
        {
            place.push_str(&format!(
                " in {}",
                table.split('#').next().unwrap_or(table).trim()
            ));
        }
        if !line.is_empty() {
            message.push_str(&format!(" (`{}`)", crate::text::clip_chars(line, 80)));
        }
    }
    anyhow::anyhow!(
        "invalid configuration file {}{place}: {message}; see the configuration reference in the README",
        path.display()
    )
}

impl Config {
    /// Register the values of the environment variables this configuration names as secret
    /// holders (`token_env`, `cookie_env`, `password_env`) with the redactor.
    pub fn register_secrets(&self) {
        let mut names: Vec<&str> = Vec::new();
        for t in self.targets.values() {
            names.extend(t.token_env.as_deref());
            names.extend(t.cookie_env.as_deref());
        }
        names.extend(self.notify.ntfy.token_env.as_deref());
        names.extend(self.notify.ntfy.password_env.as_deref());
        crate::redact::register_env_secrets(&names);
        crate::child_env::register(self.credential_vars());
    }

    /// The environment variables this configuration names as holding credentials, which no
    /// child process gets: `token_env`, `cookie_env`, `${NAME}` in `headers`, the ntfy ones.
    fn credential_vars(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for t in self.targets.values() {
            names.extend(t.token_env.clone());
            names.extend(t.cookie_env.clone());
            for value in t.headers.values() {
                names.extend(crate::child_env::referenced_vars(value));
            }
        }
        names.extend(self.notify.ntfy.token_env.clone());
        names.extend(self.notify.ntfy.password_env.clone());
        names
    }
}

/// `python_path` entries made absolute (relative ones from the repository root); each must be an
/// existing directory.
fn resolve_python_path(
    entries: Option<&[PathBuf]>,
    root: &Path,
    loaded: &LoadedConfig,
) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in entries.unwrap_or_default() {
        let dir = crate::paths::normalize(&root.join(entry));
        if !dir.is_dir() {
            anyhow::bail!(
                "`python_path` entry {:?} in {} is not a directory below the repository root {}: list directories relative to it, e.g. python_path = [\"src\"]",
                entry.display().to_string(),
                loaded.path.as_ref().map_or_else(
                    || "the configuration".to_string(),
                    |p| p.display().to_string()
                ),
                root.display()
            );
        }
        out.push(dir);
    }
    Ok(out)
}

/// Refuse to search a tree nobody named: a root that is not a git work tree (kfp-ci was run
/// outside a repository, e.g. in `/tmp` or a home directory), or that is the user's home directory
/// or above it. Searching it would import every `*_pipeline.py` below, whoever put it there. A
/// PATH, `--include` or the configuration's `include` names what to search, and then it is searched.
fn check_search_root(
    root: &Path,
    args: &crate::cli::CompileArgs,
    loaded: &LoadedConfig,
) -> Result<()> {
    if !args.paths.is_empty() || !args.include.is_empty() || loaded.config.include.is_some() {
        return Ok(());
    }
    let home = dirs::home_dir().map(|h| crate::paths::normalize(&h));
    let why = if home.as_deref().is_some_and(|h| h.starts_with(root)) {
        "is your home directory or one above it"
    } else if !root.join(".git").exists() {
        "is not inside a git repository"
    } else {
        return Ok(());
    };
    anyhow::bail!(
        "{} {why}: kfp-ci does not search it for pipeline files unless told to (it imports every file it finds). \
         Run kfp-ci inside your repository, or name what to compile: a PATH (`kfp-ci check pipelines/`), \
         --include GLOB, or `include` in kfp-ci.toml",
        root.display()
    )
}

/// The git work tree containing `cwd`, else `cwd` itself.
pub fn repo_root(cwd: &Path) -> PathBuf {
    let mut dir = Some(cwd);
    while let Some(d) = dir {
        if d.join(".git").exists() {
            return d.to_path_buf();
        }
        dir = d.parent();
    }
    cwd.to_path_buf()
}

/// Where compiled specs are cached for the repository at `root`: `$KFP_CI_CACHE_DIR/compile`,
/// else `.kfp-ci/cache/compile` below the root.
pub fn compile_cache_dir(root: &Path) -> PathBuf {
    match std::env::var_os("KFP_CI_CACHE_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("compile"),
        None => root.join(".kfp-ci").join("cache").join("compile"),
    }
}

/// The default `include` glob.
pub const DEFAULT_INCLUDE: &str = "**/*_pipeline.py";
/// The default `kfp_version` pin.
pub const DEFAULT_KFP_VERSION: &str = "2.17.0";
/// The default per-file compile timeout, in seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 120;

/// Everything discovery and the compile engine need, resolved from flags > environment >
/// configuration file > defaults. Built by [`CompileSettings::resolve`]; used by
/// [`crate::compile::compile_pipelines`].
#[derive(Debug, Clone)]
pub struct CompileSettings {
    /// Repository root (absolute): globs, `functions` keys and report paths are relative to it.
    pub root: PathBuf,
    /// Files or directories to search (absolute); empty means the root.
    pub paths: Vec<PathBuf>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub max_depth: Option<usize>,
    pub name_from: NameFrom,
    /// File (relative to the root, `/`-separated) → the `@dsl.pipeline` function to compile.
    pub functions: BTreeMap<String, String>,
    /// The interpreter asked for (`--python`, `KFP_CI_PYTHON`, config `python`); `None` = `python3`.
    pub python: Option<PathBuf>,
    pub kfp_version: String,
    /// Extra packages installed into the cached virtualenv, if kfp-ci creates one.
    pub requirements: Vec<String>,
    /// Absolute directories put first on the compile's import path (`python_path`).
    pub python_path: Vec<PathBuf>,
    /// An explicit interpreter whose kfp is not `kfp_version` is an error (`--strict`).
    pub strict: bool,
    pub jobs: usize,
    pub timeout: std::time::Duration,
    /// The compile cache directory; `None` with `--no-cache`.
    pub cache_dir: Option<PathBuf>,
}

impl CompileSettings {
    /// Resolve the discovery and compile settings of one run. Relative CLI paths are relative to
    /// the current directory, relative paths in the configuration file to the repository root.
    pub fn resolve(args: &crate::cli::CompileArgs, loaded: &LoadedConfig) -> Result<Self> {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        let root = std::path::absolute(&loaded.root)
            .with_context(|| format!("invalid repository root {}", loaded.root.display()))?;
        let config = &loaded.config;
        // Where a bad value may come from: the command line, or the configuration file if any.
        let or_file = |key: &str| {
            loaded
                .path
                .as_ref()
                .map(|p| format!(", or `{key}` in {}", p.display()))
                .unwrap_or_default()
        };

        let paths = args
            .paths
            .iter()
            .map(|p| {
                let abs = cwd.join(p);
                if !abs.exists() {
                    anyhow::bail!("path {} does not exist", p.display());
                }
                Ok(abs)
            })
            .collect::<Result<Vec<_>>>()?;

        let include = if !args.include.is_empty() {
            args.include.clone()
        } else {
            config
                .include
                .clone()
                .unwrap_or_else(|| vec![DEFAULT_INCLUDE.to_string()])
        };
        let mut exclude = config.exclude.clone().unwrap_or_default();
        exclude.extend(args.exclude.iter().cloned());
        for (key, globs) in [("include", &include), ("exclude", &exclude)] {
            for glob in globs {
                crate::paths::glob(glob).with_context(|| {
                    format!("invalid `{key}` glob {glob:?} (--{key}{})", or_file(key))
                })?;
            }
        }

        let jobs = match args.jobs.or(config.jobs) {
            Some(0) => anyhow::bail!("`jobs` (--jobs{}) must be at least 1", or_file("jobs")),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        let timeout = match args.timeout.or(config.timeout) {
            Some(0) => {
                anyhow::bail!(
                    "`timeout` (--timeout{}) must be at least 1 second",
                    or_file("timeout")
                )
            }
            Some(n) => n,
            None => DEFAULT_TIMEOUT_SECS,
        };
        let python = match (&args.python, &config.python) {
            (Some(p), _) => Some(p.clone()),
            // A path in the configuration file is relative to the repository root; a bare
            // name (`python3.11`) is looked up on PATH.
            (None, Some(p)) if p.components().count() > 1 => Some(root.join(p)),
            (None, Some(p)) => Some(p.clone()),
            (None, None) => None,
        };
        let kfp_version = args
            .kfp_version
            .clone()
            .or_else(|| config.kfp_version.clone())
            .unwrap_or_else(|| DEFAULT_KFP_VERSION.to_string());
        if kfp_version.trim().is_empty() || kfp_version.contains(char::is_whitespace) {
            anyhow::bail!(
                "`kfp_version` (--kfp-version, KFP_CI_KFP_VERSION{}) must be a version such as \"2.17.0\"",
                or_file("kfp_version")
            );
        }
        let functions = config
            .functions
            .iter()
            .map(|(k, v)| (k.trim_start_matches("./").replace('\\', "/"), v.clone()))
            .collect();
        let python_path = resolve_python_path(config.python_path.as_deref(), &root, loaded)?;
        check_search_root(&root, args, loaded)?;

        let cache_dir = (!args.no_cache).then(|| compile_cache_dir(&root));
        Ok(CompileSettings {
            root,
            paths,
            include,
            exclude,
            max_depth: args.max_depth.or(config.max_depth),
            name_from: args.name_from.or(config.name_from).unwrap_or_default(),
            functions,
            python,
            kfp_version,
            requirements: config.requirements.clone().unwrap_or_default(),
            python_path,
            strict: args.strict || config.strict.unwrap_or(false),
            jobs,
            timeout: std::time::Duration::from_secs(timeout),
            cache_dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_names_key_and_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kfp-ci.toml");
        fs_err::write(&path, "includes = [\"x\"]\n").expect("write");
        let err = format!("{:#}", read_file(&path).expect_err("unknown key"));
        assert!(err.contains("includes"), "{err}");
        assert!(err.contains("kfp-ci.toml"), "{err}");
    }

    #[test]
    fn config_errors_are_one_line_with_line_table_and_plain_types() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kfp-ci.toml");
        for (text, expected) in [
            (
                "jobs = 2\n[targets.prod]\nendpoint = \"https://x\"\ntoken = \"t\"\n",
                "line 4 in [targets.prod]: unknown key `token`",
            ),
            (
                "[notify.ntfy]\ntopic = \"x\"\n",
                "line 2 in [notify.ntfy]: unknown key `topic`",
            ),
            (
                "jobs = \"two\"\n",
                "line 1: invalid type: string \"two\", expected a whole number",
            ),
            ("include = \"x\"\n", "expected a list"),
        ] {
            fs_err::write(&path, text).expect("write");
            let err = format!("{:#}", read_file(&path).expect_err("invalid"));
            assert!(err.contains(expected), "{err}");
            assert!(!err.contains('\n') && !err.contains("usize"), "{err}");
            assert!(err.contains(&path.display().to_string()), "{err}");
        }
    }

    #[test]
    fn compile_settings_flags_over_file_over_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs_err::create_dir_all(dir.path().join(".git")).expect(".git");
        let loaded = LoadedConfig {
            config: Config {
                include: Some(vec!["pipelines/**/*.py".into()]),
                exclude: Some(vec!["**/old_*".into()]),
                jobs: Some(3),
                timeout: Some(30),
                python: Some(PathBuf::from(".venv/bin/python")),
                ..Config::default()
            },
            path: Some(dir.path().join("kfp-ci.toml")),
            root: dir.path().to_path_buf(),
        };
        let args = crate::cli::CompileArgs {
            exclude: vec!["**/tmp_*".into()],
            timeout: Some(5),
            ..Default::default()
        };
        let s = CompileSettings::resolve(&args, &loaded).expect("valid");
        assert_eq!(s.include, ["pipelines/**/*.py"]);
        assert_eq!(s.exclude, ["**/old_*", "**/tmp_*"]);
        assert_eq!((s.jobs, s.timeout.as_secs()), (3, 5));
        assert_eq!(s.python, Some(dir.path().join(".venv/bin/python")));
        assert_eq!(s.kfp_version, DEFAULT_KFP_VERSION);

        let defaults = CompileSettings::resolve(
            &crate::cli::CompileArgs::default(),
            &LoadedConfig {
                root: dir.path().to_path_buf(),
                ..LoadedConfig::default()
            },
        )
        .expect("valid");
        assert_eq!(defaults.include, [DEFAULT_INCLUDE]);
        assert_eq!(defaults.timeout.as_secs(), DEFAULT_TIMEOUT_SECS);
        assert!(defaults.jobs >= 1 && defaults.python.is_none());

        let bad = crate::cli::CompileArgs {
            include: vec!["[oops".into()],
            ..Default::default()
        };
        let err = format!(
            "{:#}",
            CompileSettings::resolve(&bad, &loaded).expect_err("bad glob")
        );
        assert!(
            err.contains("[oops") && err.contains("kfp-ci.toml"),
            "{err}"
        );
    }

    #[test]
    fn explicit_config_in_a_subdirectory_keeps_the_repository_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs_err::create_dir_all(dir.path().join(".git")).expect(".git");
        fs_err::create_dir_all(dir.path().join("ci")).expect("ci");
        let cfg = dir.path().join("ci/kfp-ci.toml");
        fs_err::write(&cfg, "max_depth = 2\n").expect("write");
        let loaded = load(Some(&cfg), &dir.path().join("ci")).expect("load");
        assert_eq!(loaded.root, dir.path());
        assert_eq!(loaded.config.max_depth, Some(2));
        // Outside a git work tree: the file's directory.
        let plain = tempfile::tempdir().expect("tempdir");
        let cfg = plain.path().join("kfp-ci.toml");
        fs_err::write(&cfg, "").expect("write");
        assert_eq!(
            load(Some(&cfg), dir.path()).expect("load").root,
            plain.path()
        );
    }

    #[test]
    fn pyproject_tool_table_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pyproject.toml");
        fs_err::write(&path, "[project]\nname='x'\n[tool.kfp-ci]\nmax_depth = 1\n").expect("write");
        assert_eq!(read_file(&path).expect("valid").max_depth, Some(1));
    }
}
