//! Report: what a run did, as one value that every output is rendered from: the stderr table,
//! `--output json`, `--report-file`, CI job outputs, the step summary and the notification.

use serde::{Deserialize, Serialize};

/// Bumped when a field changes meaning or goes away (adding fields does not bump it).
pub const REPORT_SCHEMA: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Report {
    pub schema: u32,
    /// kfp-ci's own version.
    pub kfp_ci_version: String,
    /// `compile`, `check`, `plan` or `deploy`.
    pub command: String,
    /// The version name given to every uploaded version in this run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_tag: Option<String>,
    /// kfp SDK version used to compile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kfp_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetInfo>,
    pub counts: Counts,
    pub pipelines: Vec<PipelineReport>,
    /// Errors that are not any one pipeline's (e.g. the server was unreachable).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ci: Option<crate::ci::CiInfo>,
    /// RFC 3339 UTC.
    pub started_at: String,
    pub duration_ms: u64,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    pub discovered: usize,
    pub compiled: usize,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub failed: usize,
}

impl Counts {
    /// Pipelines that got a new version (created + updated).
    pub fn uploaded(&self) -> usize {
        self.created + self.updated
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TargetInfo {
    /// Endpoint URL (credentials never appear in it), or `local:<path>` for the embedded store.
    pub endpoint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    pub multi_user: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_store: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ui_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Compiled only (compile/check).
    #[default]
    Compiled,
    Create,
    NewVersion,
    Unchanged,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Planned, not applied (plan, --dry-run).
    #[default]
    Planned,
    Done,
    Skipped,
    Failed,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PipelineReport {
    /// KFP pipeline name.
    pub name: String,
    /// Source file, relative to the repository root.
    pub file: String,
    pub action: Action,
    pub status: Status,
    /// Why this action (e.g. "spec changed", "not on the server").
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_name: Option<String>,
    /// Link to the pipeline in the KFP UI, when `ui_url` is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<PipelineError>,
    /// The compiled DAG as Mermaid flowchart text (created and changed pipelines), for summaries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mermaid: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PipelineError {
    /// `syntax`, `import`, `no_pipeline`, `several_pipelines`, `compile`, `timeout`, `crash`,
    /// `duplicate_name`, `plan`, `upload`, …
    pub kind: String,
    /// One line, suitable for a table or a notification.
    pub message: String,
    /// Longer detail (traceback tail, server body), shown with -v.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}
