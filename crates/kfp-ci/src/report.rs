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
    /// Where the time went (plan and deploy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
    /// Recurring runs from `[[schedules]]` (docs/schedules.md).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub schedules: Vec<crate::schedules::ScheduleReport>,
    /// Smoke runs of created or changed pipelines (deploy `--smoke` or `[smoke]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub smoke: Vec<crate::smoke::SmokeReport>,
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

impl Report {
    /// A fresh report for `command`, started now.
    pub fn new(command: &str) -> Report {
        Report {
            schema: REPORT_SCHEMA,
            kfp_ci_version: env!("CARGO_PKG_VERSION").to_string(),
            command: command.to_string(),
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

    /// Did any pipeline fail (or a run-level error occur)?
    pub fn has_failures(&self) -> bool {
        self.counts.failed > 0
            || !self.errors.is_empty()
            || self.schedules.iter().any(|s| s.failed())
            || self.smoke.iter().any(|s| s.failed())
    }

    /// Would (or did) anything change on the server?
    pub fn has_changes(&self) -> bool {
        self.counts.uploaded() > 0 || self.schedules.iter().any(|s| s.changes())
    }

    /// Pretty JSON (what `--output json` prints and `--report-file` writes).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into())
    }

    /// The human table and summary for stderr.
    pub fn render_table(&self, verbose: bool) -> String {
        let applied = self.command == "deploy" && !self.dry_run;
        let mut rows: Vec<Vec<String>> = vec![
            if applied {
                vec!["PIPELINE", "ACTION", "STATUS", "VERSION", "REASON"]
            } else {
                vec!["PIPELINE", "ACTION", "REASON"]
            }
            .into_iter()
            .map(String::from)
            .collect(),
        ];
        for p in &self.pipelines {
            let reason = match &p.error {
                Some(e) if p.reason.is_empty() || p.status == Status::Failed => e.message.clone(),
                _ => p.reason.clone(),
            };
            let reason = reason.lines().next().unwrap_or_default().to_string();
            if applied {
                rows.push(vec![
                    p.name.clone(),
                    p.action.label().into(),
                    p.status.label().into(),
                    p.version_name.clone().unwrap_or_else(|| "-".into()),
                    reason,
                ]);
            } else {
                rows.push(vec![p.name.clone(), p.action.label().into(), reason]);
            }
        }
        let mut out = String::new();
        let cols = rows[0].len();
        let widths: Vec<usize> = (0..cols)
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        if self.pipelines.is_empty() {
            out.push_str("no pipelines found\n");
        } else {
            for row in &rows {
                let mut line = String::new();
                for (i, cell) in row.iter().enumerate() {
                    if i + 1 == cols {
                        line.push_str(cell);
                    } else {
                        line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
                    }
                }
                out.push_str(line.trim_end());
                out.push('\n');
            }
        }
        let failures: Vec<&PipelineReport> = self
            .pipelines
            .iter()
            .filter(|p| {
                p.error.is_some() && (p.status == Status::Failed || p.action == Action::Error)
            })
            .collect();
        if !failures.is_empty() {
            out.push_str("\nfailures:\n");
            for p in failures {
                if let Some(e) = &p.error {
                    out.push_str(&format!(
                        "  {} ({}): [{}] {}\n",
                        p.name, p.file, e.kind, e.message
                    ));
                    if verbose && !e.detail.is_empty() {
                        for line in e.detail.lines() {
                            out.push_str(&format!("    {line}\n"));
                        }
                    } else if let Some(hint) = e.detail.lines().find(|l| l.starts_with("hint: ")) {
                        out.push_str(&format!("    {hint}\n"));
                    }
                }
            }
        }
        out.push_str(&crate::schedules::render(&self.schedules, applied));
        out.push_str(&crate::smoke::render(&self.smoke));
        for e in &self.errors {
            out.push_str(&format!("error: {e}\n"));
        }
        let c = &self.counts;
        let verb = if applied { "" } else { "would be " };
        out.push_str(&format!(
            "\n{}: {} discovered, {} compiled; {} {verb}created, {} {verb}updated, {} unchanged, {} failed",
            if applied { "deploy" } else { "plan" },
            c.discovered,
            c.compiled,
            c.created,
            c.updated,
            c.unchanged,
            c.failed
        ));
        if let Some(tag) = &self.version_tag
            && c.uploaded() > 0
        {
            out.push_str(&format!(" (version {tag})"));
        }
        out.push('\n');
        if applied {
            for p in &self.pipelines {
                if let Some(url) = &p.url
                    && matches!(p.action, Action::Create | Action::NewVersion)
                    && p.status == Status::Done
                {
                    out.push_str(&format!("  {}: {url}\n", p.name));
                }
            }
        }
        out
    }
}
