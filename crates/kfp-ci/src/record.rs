//! One record per pipeline through plan and deploy: the plan's item, what the later stages said
//! about it (notes), and what apply did. Each stage writes into the record it works on, so nothing
//! is joined by position; the report row is rendered from it once, at the end.

use crate::plan::PlanItem;
use crate::row::{Action, PipelineError, PipelineReport, Status};

/// The note on an item that a signal kept from starting.
pub const NOT_STARTED: &str = "not applied: interrupted before it started";

/// What happened to one planned item.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub status: Status,
    /// Replaces the planned action: `unchanged` when a concurrent run (or a version already there)
    /// holds the spec and nothing of this run's stays on the server.
    pub action: Option<Action>,
    pub pipeline_id: Option<String>,
    pub version_id: Option<String>,
    pub version_name: Option<String>,
    /// Said after the plan's reason (e.g. "created by a concurrent run").
    pub notes: Vec<String>,
    pub error: Option<PipelineError>,
    /// Old versions deleted by `--keep-versions`.
    pub pruned: usize,
}

/// Why a planned change was not applied though nothing failed for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// `--atomic` and another pipeline failed.
    Atomic,
}

#[derive(Debug, Clone)]
pub struct Record {
    pub item: PlanItem,
    /// Said about the plan after it was made (e.g. "same as v1 (a revert?)"); shown after the
    /// plan's reason, `; `-separated.
    pub notes: Vec<String>,
    /// The compiled DAG as Mermaid text (deploy, created and changed pipelines).
    pub mermaid: Option<String>,
    pub held: Option<Held>,
    /// Set by apply.
    pub outcome: Option<Outcome>,
}

impl Record {
    pub fn new(item: PlanItem) -> Record {
        Record {
            item,
            notes: Vec::new(),
            mermaid: None,
            held: None,
            outcome: None,
        }
    }

    /// Was this item's change kept from the server by a signal?
    pub fn not_started(&self) -> bool {
        self.outcome.as_ref().is_some_and(|o| {
            o.status == Status::Skipped && o.notes.last().map(String::as_str) == Some(NOT_STARTED)
        })
    }

    /// The report row: the plan, then what apply did; notes joined after the plan's reason.
    pub fn row(&self) -> PipelineReport {
        let item = &self.item;
        let mut row = plan_row(item);
        row.mermaid = self.mermaid.clone();
        let mut reason = vec![item.reason.as_str()];
        reason.extend(self.notes.iter().map(String::as_str));
        let pruned;
        if let Some(o) = &self.outcome {
            row.status = o.status;
            if let Some(action) = o.action {
                row.action = action;
            }
            if o.pipeline_id.is_some() {
                row.pipeline_id = o.pipeline_id.clone();
            }
            row.version_id = o.version_id.clone();
            row.version_name = o.version_name.clone();
            reason.extend(o.notes.iter().map(String::as_str));
            if o.pruned > 0 {
                pruned = format!("{} old version(s) deleted", o.pruned);
                reason.push(&pruned);
            }
            if o.error.is_some() {
                row.error = o.error.clone();
            }
        }
        row.reason = reason.join("; ");
        if self.held == Some(Held::Atomic) {
            row.status = Status::Skipped;
            row.reason
                .push_str(" (not applied: --atomic and a pipeline failed)");
        }
        row
    }
}

/// A plan item as a report row, before anything was applied (plan, diff, a dry run).
pub fn plan_row(item: &PlanItem) -> PipelineReport {
    PipelineReport {
        name: item.name.clone(),
        file: item.file.clone(),
        action: item.action,
        status: if item.action == Action::Error {
            Status::Failed
        } else {
            Status::Planned
        },
        reason: item.reason.clone(),
        pipeline_id: item.pipeline_id.clone(),
        version_name: None,
        spec_hash: item.spec.as_ref().map(|s| s.hash.clone()),
        error: item.error.clone(),
        ..PipelineReport::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Seen;

    fn item(action: Action, reason: &str) -> PlanItem {
        PlanItem {
            name: "hello".into(),
            display_name: "hello".into(),
            file: "hello_pipeline.py".into(),
            action,
            reason: reason.into(),
            pipeline_id: Some("p1".into()),
            latest_version: Some("v1".into()),
            seen: Seen::default(),
            spec: None,
            error: None,
        }
    }

    #[test]
    fn row_joins_the_notes_of_every_stage_in_order() {
        let mut record = Record::new(item(Action::NewVersion, "spec differs from v1"));
        record.notes.push("same as v0 (a revert?)".into());
        record.outcome = Some(Outcome {
            status: Status::Done,
            version_id: Some("v2-id".into()),
            version_name: Some("v2".into()),
            notes: vec!["first".into(), "second".into()],
            pruned: 2,
            ..Outcome::default()
        });
        let row = record.row();
        assert_eq!(
            row.reason,
            "spec differs from v1; same as v0 (a revert?); first; second; 2 old version(s) deleted"
        );
        assert_eq!(
            (row.status, row.action, row.pipeline_id.as_deref()),
            (Status::Done, Action::NewVersion, Some("p1"))
        );
        assert_eq!(row.version_name.as_deref(), Some("v2"));
    }

    #[test]
    fn row_before_apply_is_the_plan() {
        let record = Record::new(item(Action::Create, "not on the server"));
        let row = record.row();
        assert_eq!(
            (row.status, row.reason.as_str()),
            (Status::Planned, "not on the server")
        );
        let mut held = Record::new(item(Action::Create, "not on the server"));
        held.notes.push("note".into());
        held.held = Some(Held::Atomic);
        assert_eq!(
            held.row().reason,
            "not on the server; note (not applied: --atomic and a pipeline failed)"
        );
        assert_eq!(held.row().status, Status::Skipped);
    }

    #[test]
    fn not_started_only_for_a_signal() {
        let mut record = Record::new(item(Action::Create, "x"));
        assert!(!record.not_started());
        record.outcome = Some(Outcome {
            status: Status::Skipped,
            notes: vec![NOT_STARTED.into()],
            ..Outcome::default()
        });
        assert!(record.not_started());
        assert!(record.row().reason.ends_with(NOT_STARTED));
    }
}
