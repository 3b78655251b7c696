//! One pipeline's line in a report, and the words every stage uses for it: what is to be done
//! ([`Action`]), how it went ([`Status`]), why it failed ([`PipelineError`], [`ErrorKind`]). A leaf
//! module: compile, plan, apply, schedules and smoke speak it without depending on the report.

use serde::{Deserialize, Serialize};

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
    pub kind: ErrorKind,
    /// One line, suitable for a table or a notification.
    pub message: String,
    /// Longer detail (traceback tail, server body), shown with -v.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// What kind of failure a [`PipelineError`] is; in JSON its snake_case name. The compile worker
/// names its own kinds: one this release does not know is kept as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    Syntax,
    Import,
    NoPipeline,
    SeveralPipelines,
    Compile,
    Timeout,
    Crash,
    DuplicateName,
    /// The compiled spec is one the server would reject.
    InvalidSpec,
    /// A lookup failed, or the server state is unknown.
    Plan,
    Upload,
    /// `compile` could not write the output file.
    Write,
    Promote,
    Other(String),
}

const ERROR_KINDS: [ErrorKind; 13] = [
    ErrorKind::Syntax,
    ErrorKind::Import,
    ErrorKind::NoPipeline,
    ErrorKind::SeveralPipelines,
    ErrorKind::Compile,
    ErrorKind::Timeout,
    ErrorKind::Crash,
    ErrorKind::DuplicateName,
    ErrorKind::InvalidSpec,
    ErrorKind::Plan,
    ErrorKind::Upload,
    ErrorKind::Write,
    ErrorKind::Promote,
];

impl ErrorKind {
    pub fn as_str(&self) -> &str {
        match self {
            ErrorKind::Syntax => "syntax",
            ErrorKind::Import => "import",
            ErrorKind::NoPipeline => "no_pipeline",
            ErrorKind::SeveralPipelines => "several_pipelines",
            ErrorKind::Compile => "compile",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Crash => "crash",
            ErrorKind::DuplicateName => "duplicate_name",
            ErrorKind::InvalidSpec => "invalid_spec",
            ErrorKind::Plan => "plan",
            ErrorKind::Upload => "upload",
            ErrorKind::Write => "write",
            ErrorKind::Promote => "promote",
            ErrorKind::Other(name) => name,
        }
    }
}

impl Default for ErrorKind {
    fn default() -> ErrorKind {
        ErrorKind::Other(String::new())
    }
}

impl From<&str> for ErrorKind {
    fn from(name: &str) -> ErrorKind {
        ERROR_KINDS
            .into_iter()
            .find(|k| k.as_str() == name)
            .unwrap_or_else(|| ErrorKind::Other(name.to_string()))
    }
}

impl From<String> for ErrorKind {
    fn from(name: String) -> ErrorKind {
        ErrorKind::from(name.as_str())
    }
}

impl PartialEq<&str> for ErrorKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ErrorKind, D::Error> {
        Ok(ErrorKind::from(String::deserialize(d)?))
    }
}

impl Action {
    /// As shown in tables: `create`, `new version`, `unchanged`, `error`, `compiled`.
    pub fn label(self) -> &'static str {
        match self {
            Action::Compiled => "compiled",
            Action::Create => "create",
            Action::NewVersion => "new version",
            Action::Unchanged => "unchanged",
            Action::Error => "error",
        }
    }
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Planned => "planned",
            Status::Done => "done",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
        }
    }
}
