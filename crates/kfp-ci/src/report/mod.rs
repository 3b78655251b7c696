//! Report: what a run did, as one value that every output is rendered from: the stderr table,
//! `--output json`, `--report-file`, CI job outputs, the step summary and the notification.

use serde::{Deserialize, Serialize};

mod emit;
mod outputs;
mod publish;
mod runs;
mod summary;
mod table;

pub use emit::{check_report_file, emit, report_json};
pub use outputs::{dotenv, github_output};
pub use publish::{DEFAULT_DOTENV, Destinations, publish, publish_to};
pub use runs::{notify_items, runs_summary_markdown, smoke_failed_names, smoke_title_suffix};
pub use summary::{Outcome, action_label, first_line, new_versions, step_summary};

// The per-pipeline vocabulary lives in `crate::row` (the stages use it before any report exists).
pub use crate::row::{Action, ErrorKind, PipelineError, PipelineReport, Status};

/// Bumped when a field changes meaning or goes away (adding fields does not bump it).
pub const REPORT_SCHEMA: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Report {
    pub schema: u32,
    /// kfp-ci's own version.
    pub kfp_ci_version: String,
    /// `compile`, `check`, `plan`, `deploy`, `diff` or `promote`.
    pub command: Command,
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
    /// Where the time went (plan and deploy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
    /// Recurring runs from `[[schedules]]` (docs/schedules.md).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub schedules: Vec<crate::schedules::ScheduleReport>,
    /// Smoke runs of created or changed pipelines (deploy `--smoke` or `[smoke]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub smoke: Vec<crate::smoke::SmokeReport>,
    /// `deploy --prune`: one entry per kfp-ci pipeline whose file is gone (deleted, failed to
    /// delete, kept because a recurring run uses it, or planned on a dry run).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prune: Vec<crate::review::PruneItem>,
}

/// Milliseconds per phase of a plan or deploy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timings {
    /// Discovery and compile.
    pub compile_ms: u64,
    /// Health check, lookups and plan (overlaps compile: the health check runs alongside it).
    pub plan_ms: u64,
    /// Uploads, deletes, pruning.
    pub apply_ms: u64,
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

/// The command a report is from; in JSON its name (`"deploy"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Command {
    Compile,
    Check,
    Plan,
    Deploy,
    Diff,
    Promote,
    /// Not set, or a name this release does not know (a report from another version).
    #[default]
    Unknown,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Compile => "compile",
            Command::Check => "check",
            Command::Plan => "plan",
            Command::Deploy => "deploy",
            Command::Diff => "diff",
            Command::Promote => "promote",
            Command::Unknown => "",
        }
    }
}

impl From<&str> for Command {
    fn from(name: &str) -> Command {
        [
            Command::Compile,
            Command::Check,
            Command::Plan,
            Command::Deploy,
            Command::Diff,
            Command::Promote,
        ]
        .into_iter()
        .find(|c| c.as_str() == name)
        .unwrap_or(Command::Unknown)
    }
}

impl Serialize for Command {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Command, D::Error> {
        Ok(Command::from(String::deserialize(d)?.as_str()))
    }
}

impl Report {
    /// A fresh report for `command`, started now.
    pub fn new(command: Command) -> Report {
        Report {
            schema: REPORT_SCHEMA,
            kfp_ci_version: env!("CARGO_PKG_VERSION").to_string(),
            command,
            started_at: jiff::Timestamp::now()
                .round(jiff::Unit::Second)
                .unwrap_or_else(|_| jiff::Timestamp::now())
                .to_string(),
            ..Report::default()
        }
    }

    /// Recompute `counts` (all but `discovered`/`compiled`) from the pipelines.
    ///
    /// Planned items count as what they would do; applied ones only when done.
    pub fn recount(&mut self) {
        let mut c = Counts {
            discovered: self.counts.discovered,
            compiled: self.counts.compiled,
            ..Counts::default()
        };
        for p in &self.pipelines {
            match (p.status, p.action) {
                (Status::Failed, _) | (_, Action::Error) => c.failed += 1,
                (Status::Skipped, _) => {}
                (_, Action::Create) => c.created += 1,
                (_, Action::NewVersion) => c.updated += 1,
                (_, Action::Unchanged) => c.unchanged += 1,
                (_, Action::Compiled) => {}
            }
        }
        self.counts = c;
    }

    /// Links to the KFP UI for pipelines with an id, when `ui_url` is configured.
    pub fn link_pipelines(&mut self, ui_url: Option<&str>) {
        let Some(ui) = ui_url else { return };
        for p in &mut self.pipelines {
            if let Some(id) = &p.pipeline_id {
                p.url = Some(match &p.version_id {
                    Some(v) => format!("{ui}/#/pipelines/details/{id}/version/{v}"),
                    None => format!("{ui}/#/pipelines/details/{id}"),
                });
            }
        }
    }

    /// Did any pipeline fail (or a run-level error occur)?
    pub fn has_failures(&self) -> bool {
        self.counts.failed > 0
            || !self.errors.is_empty()
            || self.schedules.iter().any(|s| s.failed())
            || self.smoke.iter().any(|s| s.failed())
    }

    /// The exit status of a plan: 1 when something failed; with `--detailed-exitcode`, 3 when
    /// something would change.
    pub fn plan_status(&self, detailed_exitcode: bool) -> crate::status::ExitStatus {
        use crate::status::ExitStatus;
        if self.has_failures() {
            ExitStatus::Failure
        } else if detailed_exitcode && self.has_changes() {
            ExitStatus::ChangesPending
        } else {
            ExitStatus::Success
        }
    }

    /// Would (or did) anything change on the server?
    pub fn has_changes(&self) -> bool {
        self.counts.uploaded() > 0 || self.schedules.iter().any(|s| s.changes())
    }

    /// Pretty JSON (what `--output json` prints and `--report-file` writes).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_and_error_kind_keep_their_json_names() {
        let mut report = Report::new(Command::Deploy);
        report.pipelines.push(PipelineReport {
            error: Some(PipelineError {
                kind: ErrorKind::DuplicateName,
                ..PipelineError::default()
            }),
            ..PipelineReport::default()
        });
        let json: serde_json::Value = serde_json::to_value(&report).expect("json");
        assert_eq!(json["command"], "deploy");
        assert_eq!(json["pipelines"][0]["error"]["kind"], "duplicate_name");
        assert_eq!(
            serde_json::from_value::<Report>(json).expect("back"),
            report
        );
        // Kinds the compile worker names and this release does not know are kept as they are.
        let kind: ErrorKind = serde_json::from_str("\"out_of_memory\"").expect("kind");
        assert_eq!(kind, "out_of_memory");
        assert_eq!(
            serde_json::to_string(&kind).expect("json"),
            "\"out_of_memory\""
        );
        for name in [
            "syntax",
            "import",
            "timeout",
            "invalid_spec",
            "upload",
            "write",
        ] {
            let kind = ErrorKind::from(name);
            assert!(!matches!(kind, ErrorKind::Other(_)), "{name}");
            assert_eq!(kind.as_str(), name);
        }
        assert_eq!(Command::from("promote"), Command::Promote);
        assert_eq!(Command::from("later"), Command::Unknown);
    }
}
