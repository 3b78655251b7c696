//! clap definitions only: every command's arguments, turned into typed settings in `settings`.
//! Conventions: `short` only with an explicit letter; upper-case `value_name`; long help from `///`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "kfp-ci",
    version,
    about = "Ship Kubeflow Pipelines from git: discover, compile, plan, deploy, report, notify"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// More output (repeat for more); shows captured pipeline output and tracebacks
    #[arg(short = 'v', long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors
    #[arg(short = 'q', long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Configuration file (default: kfp-ci.toml, else [tool.kfp-ci] in pyproject.toml)
    #[arg(long, value_name = "FILE", global = true, env = "KFP_CI_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compile pipeline files to YAML (default dist/pipelines/<name>.yaml)
    Compile(CompileCmd),
    /// Compile every pipeline file and write nothing: for laptops and pre-commit
    Check(CheckCmd),
    /// Compile and compare with the KFP server: what would be created, versioned, left alone
    Plan(PlanCmd),
    /// Compile, plan and apply: create pipelines, upload new versions, skip unchanged ones
    Deploy(Box<DeployCmd>),
    /// Serve a local KFP API (v2beta1 pipelines) on an embedded store
    Serve(ServeCmd),
    /// Write the CI workflow, the NetworkPolicy and a commented kfp-ci.toml into a repository
    Init(InitCmd),
    /// Send the ntfy notification for a deploy report
    Notify(NotifyCmd),
    /// Check the endpoint, token, namespace and ntfy from here
    Doctor(DoctorCmd),
    /// What changed between the local specs and the server's newest (or a named) version
    Diff(DiffCmd),
    /// A pipeline's versions, newest first, with where each came from
    History(HistoryCmd),
    /// Upload an older version's exact spec as the newest version
    Rollback(RollbackCmd),
    /// Give one target exactly the specs another target serves now
    Promote(PromoteCmd),
    /// Delete the preview pipelines of a pull request (`deploy --preview NAME`)
    Cleanup(CleanupCmd),
    /// Write the pipelines as Kubernetes custom resources for GitOps (--kubernetes)
    Render(RenderCmd),
    /// Print a shell completion script (bash, zsh, fish, powershell) to stdout
    Completions(CompletionsCmd),
    /// About the configuration file: `config schema` prints its JSON Schema for editors
    #[command(subcommand)]
    Config(ConfigCmd),
    /// The compile cache (docs/incremental.md)
    #[command(subcommand)]
    Cache(CacheCmd),
}

#[derive(Debug, Clone, Subcommand)]
pub enum CacheCmd {
    /// Remove this repository's compile cache (.kfp-ci/cache/compile, or $KFP_CI_CACHE_DIR/compile)
    Clear,
    /// Print the compile cache directory
    Dir,
}

#[derive(Debug, Clone, Args)]
pub struct CompletionsCmd {
    /// The shell to complete in
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ConfigCmd {
    /// Print the JSON Schema of kfp-ci.toml (and of `[tool.kfp-ci]` in pyproject.toml)
    Schema,
}

/// Output of the review commands (diff, plan --comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ReviewOutput {
    #[default]
    Text,
    Markdown,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct DiffCmd {
    #[command(flatten)]
    pub compile: CompileArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Compare with this version of each pipeline instead of the newest
    #[arg(long, value_name = "VERSION_NAME")]
    pub against: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    pub output: ReviewOutput,
}

#[derive(Debug, Clone, Args)]
pub struct HistoryCmd {
    /// Pipeline name (as on the server)
    #[arg(value_name = "PIPELINE")]
    pub pipeline: String,
    #[command(flatten)]
    pub target: TargetArgs,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Args)]
pub struct RollbackCmd {
    /// Pipeline name (as on the server)
    #[arg(value_name = "PIPELINE")]
    pub pipeline: String,
    /// The version to go back to: its name, or the git sha it was deployed from (a prefix will do)
    #[arg(long, value_name = "VERSION_NAME|GIT_SHA")]
    pub to: String,
    /// Show the diff and what would be uploaded; upload nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Name of the new version (default rollback-<version>-YYYYMMDD-HHMMSS)
    #[arg(long, value_name = "TAG")]
    pub version_tag: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Args)]
pub struct PromoteCmd {
    /// Target to read the served specs from (a [targets.NAME] of the configuration)
    #[arg(long, value_name = "TARGET")]
    pub from: String,
    /// Target to give the same specs
    #[arg(long, value_name = "TARGET")]
    pub to: String,
    /// Only these pipelines (default: every pipeline kfp-ci deployed to the first target)
    #[arg(value_name = "PIPELINE")]
    pub pipelines: Vec<String>,
    /// Show the plan; change nothing
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Args)]
pub struct CleanupCmd {
    /// The preview name given to `deploy --preview` (e.g. pr-12)
    #[arg(long, value_name = "NAME")]
    pub preview: String,
    /// Show what would be deleted; delete nothing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub target: TargetArgs,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

/// Discovery and compile options, shared by every command that compiles.
#[derive(Debug, Clone, Args, Default)]
pub struct CompileArgs {
    /// Files or directories to search (default: the repository root)
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Python interpreter that has (or gets) the kfp SDK
    #[arg(long, value_name = "PYTHON", env = "KFP_CI_PYTHON")]
    pub python: Option<PathBuf>,
    /// The pinned kfp SDK version (and kfp-kubernetes) (default: `kfp_version`, else 2.17.0)
    #[arg(long, value_name = "VERSION", env = "KFP_CI_KFP_VERSION")]
    pub kfp_version: Option<String>,
    /// Fail when the --python interpreter's kfp is not `kfp_version` (default: a warning)
    #[arg(long)]
    pub strict: bool,
    /// Parallel compile workers (default: number of cores)
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Seconds one file may take to compile before it is killed (default 120)
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Glob of pipeline files to include (repeatable; replaces the configured list)
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Glob of files to exclude (repeatable; added to the configured list)
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Maximum directory depth below each PATH (1 = only files directly in it)
    #[arg(long, value_name = "N")]
    pub max_depth: Option<usize>,
    /// Where pipeline names come from: the file stem or @dsl.pipeline(name=...)
    #[arg(long, value_name = "SOURCE")]
    pub name_from: Option<NameFrom>,
    /// Compile every file, neither reading nor writing the compile cache (docs/incremental.md)
    #[arg(long)]
    pub no_cache: bool,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    ValueEnum,
    Default,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum NameFrom {
    /// `document_ingestion_pipeline.py` → `document_ingestion_pipeline`
    #[default]
    File,
    /// The name given to `@dsl.pipeline`
    Pipeline,
}

#[derive(Debug, Clone, Args)]
pub struct CompileCmd {
    #[command(flatten)]
    pub compile: CompileArgs,
    /// Output directory for the YAML files
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Args)]
pub struct RenderCmd {
    #[command(flatten)]
    pub compile: CompileArgs,
    /// Pipeline and PipelineVersion resources (pipelines.kubeflow.org/v2beta1) for KFP's
    /// Kubernetes pipeline store, one file per pipeline
    #[arg(long)]
    pub kubernetes: bool,
    /// Output directory (default dist/kubernetes in the repository)
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// metadata.namespace of the resources (default: none, the namespace GitOps applies to)
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Name of a new version (default vYYYYMMDD-HHMMSS, as deploy); an unchanged spec keeps the
    /// version already in the file
    #[arg(long, value_name = "TAG")]
    pub version_tag: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct CheckCmd {
    #[command(flatten)]
    pub compile: CompileArgs,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Print the repository files the pipelines read (relative, sorted; `dir/**` where a
    /// directory is wholly read), for a CI trigger's `paths:`
    #[arg(long, conflicts_with = "output")]
    pub print_inputs: bool,
    /// Fail, naming them, when files the pipelines read are not covered by the `paths:` of the
    /// push trigger of the workflows that run `kfp-ci deploy`
    #[arg(long, conflicts_with = "output")]
    pub verify_workflow: bool,
}

/// Where pipelines go: a KFP endpoint and how to authenticate to it.
#[derive(Debug, Clone, Args, Default)]
pub struct TargetArgs {
    /// KFP API base URL, scheme included (e.g. http://ml-pipeline.kubeflow:8888, https://host/pipeline)
    #[arg(long, value_name = "URL", env = "KF_PIPELINES_ENDPOINT")]
    pub endpoint: Option<String>,
    /// KFP namespace (multi-user KFP); used on every lookup and create
    #[arg(long, value_name = "NAMESPACE", env = "KF_PIPELINES_NAMESPACE")]
    pub namespace: Option<String>,
    /// A named target from the configuration ([targets.NAME])
    #[arg(long, value_name = "NAME", env = "KFP_CI_TARGET")]
    pub target: Option<String>,
    /// File holding a bearer token, re-read on every request (projected service-account tokens rotate)
    #[arg(long, value_name = "FILE", env = "KF_PIPELINES_SA_TOKEN_PATH")]
    pub token_file: Option<PathBuf>,
    /// Extra request header `Name: value` (repeatable)
    #[arg(long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// PEM bundle of extra trusted CA certificates
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Do not verify the server's TLS certificate (never in production)
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,
    /// KFP UI base URL, for links in reports and notifications
    #[arg(long, value_name = "URL", env = "KFP_CI_UI_URL")]
    pub ui_url: Option<String>,
    /// Seconds one request to the KFP API may take, retries included (default 30)
    #[arg(long, value_name = "SECONDS", env = "KFP_CI_REQUEST_TIMEOUT")]
    pub request_timeout: Option<u64>,
}

#[derive(Debug, Clone, Args)]
pub struct PlanCmd {
    #[command(flatten)]
    pub compile: CompileArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    /// text, json, or markdown (the pull request comment's body, for any forge)
    #[arg(long, value_enum, default_value_t)]
    pub output: PlanOutput,
    /// Exit 3 when something would change, 0 when nothing would (2 stays an error)
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Post the plan, the diff and the DAGs as one sticky pull request comment (GitHub, Gitea,
    /// Forgejo, GitLab), updated in place on every push
    #[arg(long)]
    pub comment: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum PlanOutput {
    #[default]
    Text,
    Json,
    Markdown,
}

impl From<PlanOutput> for OutputFormat {
    fn from(o: PlanOutput) -> OutputFormat {
        match o {
            PlanOutput::Json => OutputFormat::Json,
            PlanOutput::Text | PlanOutput::Markdown => OutputFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct DeployCmd {
    #[command(flatten)]
    pub compile: CompileArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub notify: NotifyArgs,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Also write the JSON report to this file
    #[arg(long, value_name = "PATH")]
    pub report_file: Option<PathBuf>,
    /// Stop after the plan
    #[arg(long)]
    pub dry_run: bool,
    /// Upload a new version even for unchanged pipelines
    #[arg(long)]
    pub force: bool,
    /// Version name for every uploaded version (default vYYYYMMDD-HHMMSS, UTC)
    #[arg(long, value_name = "TAG")]
    pub version_tag: Option<String>,
    /// Keep at most N versions per deployed pipeline (only kfp-ci's, never the newest)
    #[arg(long, value_name = "N")]
    pub keep_versions: Option<usize>,
    /// Apply nothing if any pipeline failed to compile or plan
    #[arg(long)]
    pub atomic: bool,
    /// Parallel uploads (default 8)
    #[arg(long, value_name = "N")]
    pub upload_jobs: Option<usize>,
    /// Also delete pipelines kfp-ci created whose files are gone from the repository
    #[arg(long)]
    pub prune: bool,
    /// Deploy each created or changed pipeline as its own preview pipeline `<name>-<NAME>`
    /// (e.g. pr-12), never as a version of the production pipeline
    #[arg(long, value_name = "NAME", conflicts_with = "prune")]
    pub preview: Option<String>,
    /// Start one run per created or changed pipeline and wait for it (`[smoke]` configures it)
    #[arg(long)]
    pub smoke: bool,
}

/// Notification options (deploy and notify).
#[derive(Debug, Clone, Args, Default)]
pub struct NotifyArgs {
    /// ntfy topic URL, e.g. https://ntfy.example/kfp-deploys
    #[arg(long, value_name = "URL", env = "KFP_CI_NTFY_URL")]
    pub ntfy_url: Option<String>,
    /// Fail when the notification cannot be sent
    #[arg(long)]
    pub notify_required: bool,
    /// When to notify: always (default), failure, or change (uploads and failures)
    #[arg(long, value_name = "WHEN", env = "KFP_CI_NOTIFY_ON")]
    pub notify_on: Option<String>,
    /// Send no notification from this command (the workflow's separate notify job sends it)
    #[arg(long, env = "KFP_CI_NO_NOTIFY")]
    pub no_notify: bool,
    /// Link to the CI run (overrides the detected one)
    #[arg(long, value_name = "URL", env = "KFP_CI_RUN_URL")]
    pub run_url: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeCmd {
    /// Address to listen on; a non-loopback address needs --token or --insecure-no-auth
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8888")]
    pub addr: String,
    /// SQLite database (default .kfp-ci/registry.db in the repository)
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Require `Authorization: Bearer <token>` on every request (env KFP_CI_SERVE_TOKEN)
    #[arg(
        long,
        value_name = "TOKEN",
        env = "KFP_CI_SERVE_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Allow a non-loopback address without a token
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Behave like a multi-user KFP (namespaces kept, shared pipelines in "")
    #[arg(long)]
    pub multi_user: bool,
    /// Testing aid: add this many milliseconds to every API response
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// Testing aid: answer this fraction (0.0–1.0) of API requests with 503
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Testing aid: seed for --fail-rate
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Testing aid: how every simulated run ends (runs are recorded, not executed)
    #[arg(long, value_name = "OUTCOME", default_value = "succeeded", value_parser = ["succeeded", "failed"])]
    pub run_outcome: String,
    /// Testing aid: milliseconds a simulated run takes from creation to its outcome
    #[arg(long, value_name = "MS", default_value_t = kfp_serve::DEFAULT_RUN_DURATION_MS)]
    pub run_duration_ms: u64,
    /// Answer like this KFP server release (2.0.0 to 2.17.x): upload parameters, objects,
    /// routes, healthz and Kubernetes-store naming of that release (see docs/compat.md)
    #[arg(long, value_name = "X.Y.Z", default_value = "2.17.0", value_parser = parse_release)]
    pub server_version: kfp_api::compat::Release,
    /// Pipeline store to emulate: database, or kubernetes (custom resources, from 2.14)
    #[arg(long, value_name = "STORE", default_value = "database", value_parser = parse_store)]
    pub pipeline_store: kfp_api::compat::Store,
    /// Testing aid (hidden): POST /_test/clock/advance?seconds=N moves the server's clock forward
    #[arg(long, hide = true)]
    pub test_clock: bool,
}

fn parse_release(s: &str) -> Result<kfp_api::compat::Release, String> {
    kfp_api::compat::Release::parse(s)
        .ok_or_else(|| format!("{s:?} is not a release: expected X.Y.Z, e.g. 2.5.0"))
}

fn parse_store(s: &str) -> Result<kfp_api::compat::Store, String> {
    kfp_api::compat::Store::parse(s)
        .filter(|_| !s.trim().is_empty())
        .ok_or_else(|| format!("{s:?} is not a pipeline store: use database or kubernetes"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum CiKind {
    #[default]
    Gitea,
    Forgejo,
    Github,
    Gitlab,
}

#[derive(Debug, Clone, Args)]
pub struct InitCmd {
    /// Which CI to write a workflow for
    #[arg(long, value_enum, default_value_t)]
    pub ci: CiKind,
    /// Namespace KFP runs in (the NetworkPolicy goes there)
    #[arg(long, value_name = "NAMESPACE", default_value = "kubeflow")]
    pub kfp_namespace: String,
    /// Namespace the CI runners run in
    #[arg(long, value_name = "NAMESPACE", default_value = "gitea")]
    pub runner_namespace: String,
    /// Repository to write into
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Overwrite existing files
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct NotifyCmd {
    #[command(flatten)]
    pub notify: NotifyArgs,
    /// The deploy's JSON report (default: the `report` output exported by the deploy job, from env)
    #[arg(long, value_name = "PATH")]
    pub report_file: Option<PathBuf>,
    /// Result of the deploy job as the CI saw it (success, failure, cancelled, skipped), e.g.
    /// `${{ needs.compile-and-upload.result }}`
    #[arg(long, value_name = "RESULT", env = "KFP_CI_JOB_STATUS")]
    pub job_status: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct DoctorCmd {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub notify: NotifyArgs,
    /// Seconds to wait for a TCP connection before calling the endpoint unreachable
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    pub connect_timeout: f64,
}
