//! SQLite tables of experiments, runs and recurring runs, beside the pipeline tables (created
//! with them; older databases get them on open).

use std::collections::BTreeMap;

use kfp_api::runs::{
    Experiment, PipelineVersionReference, RecurringRun, Run, RuntimeConfig, RuntimeStatus, Trigger,
};
use rusqlite::types::Value as Sql;
use rusqlite::{OptionalExtension, Transaction, params};
use serde_json::Value;

use crate::error::ApiError;
use crate::list::{Kind, ListParams};
use crate::store::Page;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS experiments (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    id                  TEXT NOT NULL UNIQUE,
    display_name        TEXT NOT NULL,
    description         TEXT NOT NULL DEFAULT '',
    created_at          INTEGER NOT NULL,
    namespace           TEXT NOT NULL DEFAULT '',
    storage_state       TEXT NOT NULL DEFAULT 'AVAILABLE',
    last_run_created_at INTEGER NOT NULL DEFAULT 0,
    UNIQUE (namespace, display_name)
);
CREATE TABLE IF NOT EXISTS runs (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    id                  TEXT NOT NULL UNIQUE,
    experiment_id       TEXT NOT NULL,
    display_name        TEXT NOT NULL,
    description         TEXT NOT NULL DEFAULT '',
    created_at          INTEGER NOT NULL,
    created_ms          INTEGER NOT NULL,
    namespace           TEXT NOT NULL DEFAULT '',
    storage_state       TEXT NOT NULL DEFAULT 'AVAILABLE',
    pipeline_id         TEXT NOT NULL DEFAULT '',
    pipeline_version_id TEXT NOT NULL DEFAULT '',
    pipeline_spec       TEXT NOT NULL DEFAULT '',
    runtime_config      TEXT NOT NULL DEFAULT '',
    service_account     TEXT NOT NULL DEFAULT '',
    recurring_run_id    TEXT NOT NULL DEFAULT '',
    outcome             TEXT NOT NULL,
    duration_ms         INTEGER NOT NULL,
    terminated_ms       INTEGER
);
CREATE INDEX IF NOT EXISTS runs_by_experiment ON runs (experiment_id, seq);
CREATE TABLE IF NOT EXISTS recurring_runs (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    id                  TEXT NOT NULL UNIQUE,
    display_name        TEXT NOT NULL,
    description         TEXT NOT NULL DEFAULT '',
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    namespace           TEXT NOT NULL DEFAULT '',
    experiment_id       TEXT NOT NULL,
    pipeline_id         TEXT NOT NULL DEFAULT '',
    pipeline_version_id TEXT NOT NULL DEFAULT '',
    pipeline_spec       TEXT NOT NULL DEFAULT '',
    runtime_config      TEXT NOT NULL DEFAULT '',
    service_account     TEXT NOT NULL DEFAULT '',
    max_concurrency     INTEGER NOT NULL,
    trigger_json        TEXT NOT NULL,
    enabled             INTEGER NOT NULL,
    no_catchup          INTEGER NOT NULL DEFAULT 0
);
";

/// API field → column, for sort keys and filters.
pub fn column(kind: Kind, key: &str) -> Option<&'static str> {
    let col = match (kind, key) {
        (Kind::Experiments, "experiment_id" | "id") => "id",
        (Kind::Experiments, "namespace") => "namespace",
        (Kind::Experiments, "last_run_created_at") => "last_run_created_at",
        (Kind::Runs, "run_id" | "id") => "id",
        (Kind::Runs, "experiment_id") => "experiment_id",
        (Kind::Runs, "recurring_run_id") => "recurring_run_id",
        (Kind::Runs, "namespace") => "namespace",
        (Kind::RecurringRuns, "recurring_run_id" | "id") => "id",
        (Kind::RecurringRuns, "experiment_id") => "experiment_id",
        (Kind::RecurringRuns, "namespace") => "namespace",
        (Kind::RecurringRuns, "updated_at") => "updated_at",
        (Kind::Experiments | Kind::Runs | Kind::RecurringRuns, "display_name" | "name") => {
            "display_name"
        }
        (Kind::Experiments | Kind::Runs | Kind::RecurringRuns, "created_at") => "created_at",
        (Kind::Experiments | Kind::Runs | Kind::RecurringRuns, "description") => "description",
        (Kind::Experiments | Kind::Runs, "storage_state") => "storage_state",
        _ => return None,
    };
    Some(col)
}

pub fn keys(kind: Kind) -> &'static str {
    match kind {
        Kind::Experiments => {
            "experiment_id, id, display_name, name, created_at, description, namespace, storage_state, last_run_created_at"
        }
        Kind::Runs => {
            "run_id, id, display_name, name, created_at, description, experiment_id, recurring_run_id, namespace, storage_state"
        }
        _ => {
            "recurring_run_id, id, display_name, name, created_at, updated_at, description, experiment_id, namespace"
        }
    }
}

fn timestamp(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn ms_timestamp(ms: i64) -> String {
    timestamp(ms.div_euclid(1000))
}

pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
}

fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The row of `table` with this id, read by `row`.
fn by_id<T>(
    tx: &Transaction<'_>,
    table: &str,
    cols: &str,
    id: &str,
    row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>, ApiError> {
    Ok(tx
        .query_row(
            &format!("SELECT {cols} FROM {table} WHERE id = ?1"),
            [id],
            row,
        )
        .optional()?)
}

/// What a run or a recurring run runs: a pipeline (version) or an inline spec, with its
/// parameters and service account. Stored in the same four columns of both tables.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub reference: Option<PipelineVersionReference>,
    pub pipeline_spec: Option<Value>,
    pub runtime_config: Option<RuntimeConfig>,
    pub service_account: String,
}

impl Source {
    /// (pipeline_id, pipeline_version_id, pipeline_spec, runtime_config) as stored.
    fn columns(&self) -> (String, String, String, String) {
        let reference = self.reference.clone().unwrap_or_default();
        (
            reference.pipeline_id,
            reference.pipeline_version_id,
            self.pipeline_spec
                .as_ref()
                .map(json_text)
                .unwrap_or_default(),
            self.runtime_config
                .as_ref()
                .map(json_text)
                .unwrap_or_default(),
        )
    }

    /// The stored spec and parameters of a row, from `spec` and `config` column texts.
    fn read(spec: &str, config: &str) -> (Option<Value>, Option<RuntimeConfig>) {
        (
            if spec.is_empty() {
                None
            } else {
                serde_json::from_str(spec).ok()
            },
            serde_json::from_str::<RuntimeConfig>(config)
                .ok()
                .filter(|c| !c.is_empty()),
        )
    }
}

// ---------------------------------------------------------------- experiments

const EXPERIMENT_COLS: &str =
    "seq, id, display_name, description, created_at, namespace, storage_state, last_run_created_at";

fn experiment_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Experiment> {
    Ok(Experiment {
        experiment_id: r.get(1)?,
        display_name: r.get(2)?,
        description: r.get(3)?,
        created_at: Some(timestamp(r.get(4)?)),
        namespace: r.get(5)?,
        storage_state: r.get(6)?,
        last_run_created_at: Some(timestamp(r.get(7)?)),
    })
}

pub fn insert_experiment(
    tx: &Transaction<'_>,
    name: &str,
    description: &str,
    namespace: &str,
) -> Result<Experiment, ApiError> {
    let id = uuid::Uuid::new_v4().to_string();
    let created = now_ms() / 1000;
    match tx.execute(
        "INSERT INTO experiments (id, display_name, description, created_at, namespace) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, name, description, created, namespace],
    ) {
        Ok(_) => {}
        Err(e) if is_constraint(&e) => {
            return Err(ApiError::already_exists(format!(
                "Failed to create a experiment: Failed to create a new experiment. The name {name} already exists. Please specify a new name"
            )));
        }
        Err(e) => return Err(e.into()),
    }
    get_experiment(tx, &id)?.ok_or_else(|| ApiError::internal("experiment vanished after insert"))
}

pub fn get_experiment(tx: &Transaction<'_>, id: &str) -> Result<Option<Experiment>, ApiError> {
    by_id(tx, "experiments", EXPERIMENT_COLS, id, experiment_row)
}

pub fn experiment_by_name(
    tx: &Transaction<'_>,
    name: &str,
    namespace: &str,
) -> Result<Option<Experiment>, ApiError> {
    Ok(tx
        .query_row(
            &format!(
                "SELECT {EXPERIMENT_COLS} FROM experiments WHERE display_name = ?1 AND namespace = ?2"
            ),
            [name, namespace],
            experiment_row,
        )
        .optional()?)
}

pub fn delete_experiment(tx: &Transaction<'_>, id: &str) -> Result<(), ApiError> {
    tx.execute("DELETE FROM runs WHERE experiment_id = ?1", [id])?;
    tx.execute("DELETE FROM recurring_runs WHERE experiment_id = ?1", [id])?;
    tx.execute("DELETE FROM experiments WHERE id = ?1", [id])?;
    Ok(())
}

/// Archiving an experiment archives its runs and disables its recurring runs (as KFP does).
pub fn set_experiment_state(tx: &Transaction<'_>, id: &str, state: &str) -> Result<(), ApiError> {
    tx.execute(
        "UPDATE experiments SET storage_state = ?1 WHERE id = ?2",
        [state, id],
    )?;
    if state == "ARCHIVED" {
        tx.execute(
            "UPDATE runs SET storage_state = 'ARCHIVED' WHERE experiment_id = ?1",
            [id],
        )?;
        tx.execute(
            "UPDATE recurring_runs SET enabled = 0, updated_at = ?1 WHERE experiment_id = ?2",
            params![now_ms() / 1000, id],
        )?;
    }
    Ok(())
}

pub fn list_experiments(
    tx: &Transaction<'_>,
    namespace: Option<&str>,
    p: &ListParams,
) -> Result<Page<Experiment>, ApiError> {
    let scope = namespace.map(|ns| ("namespace = ?".to_string(), Sql::Text(ns.to_string())));
    crate::store::list(
        tx,
        Kind::Experiments,
        "experiments",
        EXPERIMENT_COLS,
        scope,
        p,
        experiment_row,
    )
}

// ---------------------------------------------------------------- runs

/// A run to record. Its lifecycle is simulated: PENDING at creation, RUNNING, then `outcome`
/// once `duration_ms` has passed (unless terminated first).
pub struct NewRun {
    pub experiment_id: String,
    pub display_name: String,
    pub description: String,
    pub namespace: String,
    pub source: Source,
    pub recurring_run_id: String,
    pub outcome: String,
    pub duration_ms: i64,
}

const RUN_COLS: &str = "seq, id, experiment_id, display_name, description, created_ms, namespace, storage_state, pipeline_id, pipeline_version_id, pipeline_spec, runtime_config, service_account, recurring_run_id, outcome, duration_ms, terminated_ms";

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Run> {
    let created_ms: i64 = r.get(5)?;
    let pipeline_id: String = r.get(8)?;
    let version_id: String = r.get(9)?;
    let spec: String = r.get(10)?;
    let config: String = r.get(11)?;
    let (pipeline_spec, runtime_config) = Source::read(&spec, &config);
    let outcome: String = r.get(14)?;
    let duration_ms: i64 = r.get(15)?;
    let terminated_ms: Option<i64> = r.get(16)?;
    let (state, finished_ms, history) =
        lifecycle(created_ms, duration_ms, &outcome, terminated_ms, now_ms());
    Ok(Run {
        run_id: r.get(1)?,
        experiment_id: r.get(2)?,
        display_name: r.get(3)?,
        description: r.get(4)?,
        created_at: Some(ms_timestamp(created_ms)),
        scheduled_at: Some(ms_timestamp(created_ms)),
        // KFP reports the epoch for a run that has not finished.
        finished_at: Some(ms_timestamp(finished_ms.unwrap_or(0))),
        storage_state: r.get(7)?,
        pipeline_version_reference: (!version_id.is_empty()).then_some(PipelineVersionReference {
            pipeline_id,
            pipeline_version_id: version_id,
        }),
        pipeline_spec,
        runtime_config,
        service_account: r.get(12)?,
        recurring_run_id: r.get(13)?,
        state,
        state_history: history,
        ..Default::default()
    })
}

/// The state of a simulated run at `now`: (state, finished at, history).
fn lifecycle(
    created: i64,
    duration: i64,
    outcome: &str,
    terminated: Option<i64>,
    now: i64,
) -> (String, Option<i64>, Vec<RuntimeStatus>) {
    let status = |at: i64, state: &str| RuntimeStatus {
        update_time: Some(ms_timestamp(at)),
        state: state.to_string(),
        error: None,
    };
    let mut history = vec![status(created, "PENDING")];
    let end = created + duration;
    let cut = terminated.filter(|t| *t < end);
    // PENDING for the first tenth of the run (at most a second), then RUNNING.
    let running_at = created + (duration / 10).min(1000);
    let upto = cut.unwrap_or(end).min(now);
    if upto >= running_at && running_at < end {
        history.push(status(running_at, "RUNNING"));
    }
    if let Some(t) = cut.filter(|t| *t <= now) {
        history.push(status(t, "CANCELED"));
        return ("CANCELED".into(), Some(t), history);
    }
    if now >= end {
        history.push(status(end, outcome));
        return (outcome.to_string(), Some(end), history);
    }
    let state = history
        .last()
        .map(|s| s.state.clone())
        .unwrap_or_else(|| "PENDING".into());
    (state, None, history)
}

pub fn insert_run(tx: &Transaction<'_>, run: &NewRun) -> Result<Run, ApiError> {
    let id = uuid::Uuid::new_v4().to_string();
    let created_ms = now_ms();
    let (pipeline_id, version_id, spec, config) = run.source.columns();
    tx.execute(
        "INSERT INTO runs (id, experiment_id, display_name, description, created_at, created_ms, namespace,
             pipeline_id, pipeline_version_id, pipeline_spec, runtime_config, service_account,
             recurring_run_id, outcome, duration_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        params![
            id,
            run.experiment_id,
            run.display_name,
            run.description,
            created_ms / 1000,
            created_ms,
            run.namespace,
            pipeline_id,
            version_id,
            spec,
            config,
            run.source.service_account,
            run.recurring_run_id,
            run.outcome,
            run.duration_ms,
        ],
    )?;
    tx.execute(
        "UPDATE experiments SET last_run_created_at = ?1 WHERE id = ?2",
        params![created_ms / 1000, run.experiment_id],
    )?;
    get_run(tx, &id)?.ok_or_else(|| ApiError::internal("run vanished after insert"))
}

pub fn get_run(tx: &Transaction<'_>, id: &str) -> Result<Option<Run>, ApiError> {
    by_id(tx, "runs", RUN_COLS, id, run_row)
}

pub fn delete_run(tx: &Transaction<'_>, id: &str) -> Result<(), ApiError> {
    tx.execute("DELETE FROM runs WHERE id = ?1", [id])?;
    Ok(())
}

pub fn set_run_storage(tx: &Transaction<'_>, id: &str, state: &str) -> Result<(), ApiError> {
    tx.execute(
        "UPDATE runs SET storage_state = ?1 WHERE id = ?2",
        [state, id],
    )?;
    Ok(())
}

/// Terminate: a run that has not finished is CANCELED from now on.
pub fn terminate_run(tx: &Transaction<'_>, id: &str) -> Result<(), ApiError> {
    tx.execute(
        "UPDATE runs SET terminated_ms = ?1 WHERE id = ?2 AND terminated_ms IS NULL",
        params![now_ms(), id],
    )?;
    Ok(())
}

pub fn list_runs(
    tx: &Transaction<'_>,
    scope: Option<(String, Sql)>,
    p: &ListParams,
) -> Result<Page<Run>, ApiError> {
    crate::store::list(tx, Kind::Runs, "runs", RUN_COLS, scope, p, run_row)
}

// ---------------------------------------------------------------- recurring runs

pub struct NewRecurringRun {
    pub display_name: String,
    pub description: String,
    pub namespace: String,
    pub experiment_id: String,
    pub source: Source,
    pub max_concurrency: i64,
    pub trigger: Trigger,
    pub enabled: bool,
    pub no_catchup: bool,
}

const RECURRING_COLS: &str = "seq, id, display_name, description, created_at, updated_at, namespace, experiment_id, pipeline_id, pipeline_version_id, pipeline_spec, runtime_config, service_account, max_concurrency, trigger_json, enabled, no_catchup";

fn recurring_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RecurringRun> {
    let pipeline_id: String = r.get(8)?;
    let version_id: String = r.get(9)?;
    let spec: String = r.get(10)?;
    let config: String = r.get(11)?;
    let (pipeline_spec, runtime_config) = Source::read(&spec, &config);
    let trigger: String = r.get(14)?;
    let enabled: bool = r.get(15)?;
    Ok(RecurringRun {
        recurring_run_id: r.get(1)?,
        display_name: r.get(2)?,
        description: r.get(3)?,
        created_at: Some(timestamp(r.get(4)?)),
        updated_at: Some(timestamp(r.get(5)?)),
        namespace: r.get(6)?,
        experiment_id: r.get(7)?,
        // Either the reference (a pipeline, optionally one version) or the inline spec.
        pipeline_version_reference: (!pipeline_id.is_empty() || !version_id.is_empty()).then_some(
            PipelineVersionReference {
                pipeline_id,
                pipeline_version_id: version_id,
            },
        ),
        pipeline_spec,
        runtime_config,
        service_account: r.get(12)?,
        max_concurrency: Some(r.get(13)?),
        trigger: serde_json::from_str(&trigger).ok(),
        no_catchup: r.get(16)?,
        status: if enabled { "ENABLED" } else { "DISABLED" }.into(),
        mode: if enabled { "ENABLE" } else { "DISABLE" }.into(),
        ..Default::default()
    })
}

pub fn insert_recurring_run(
    tx: &Transaction<'_>,
    rr: &NewRecurringRun,
) -> Result<RecurringRun, ApiError> {
    let id = uuid::Uuid::new_v4().to_string();
    let now = now_ms() / 1000;
    let (pipeline_id, version_id, spec, config) = rr.source.columns();
    tx.execute(
        "INSERT INTO recurring_runs (id, display_name, description, created_at, updated_at, namespace,
             experiment_id, pipeline_id, pipeline_version_id, pipeline_spec, runtime_config,
             service_account, max_concurrency, trigger_json, enabled, no_catchup)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        params![
            id,
            rr.display_name,
            rr.description,
            now,
            rr.namespace,
            rr.experiment_id,
            pipeline_id,
            version_id,
            spec,
            config,
            rr.source.service_account,
            rr.max_concurrency,
            json_text(&rr.trigger),
            rr.enabled,
            rr.no_catchup,
        ],
    )?;
    get_recurring_run(tx, &id)?
        .ok_or_else(|| ApiError::internal("recurring run vanished after insert"))
}

pub fn get_recurring_run(tx: &Transaction<'_>, id: &str) -> Result<Option<RecurringRun>, ApiError> {
    by_id(tx, "recurring_runs", RECURRING_COLS, id, recurring_row)
}

pub fn set_recurring_enabled(
    tx: &Transaction<'_>,
    id: &str,
    enabled: bool,
) -> Result<(), ApiError> {
    tx.execute(
        "UPDATE recurring_runs SET enabled = ?1, updated_at = ?2 WHERE id = ?3",
        params![enabled, now_ms() / 1000, id],
    )?;
    Ok(())
}

pub fn delete_recurring_run(tx: &Transaction<'_>, id: &str) -> Result<(), ApiError> {
    tx.execute("DELETE FROM recurring_runs WHERE id = ?1", [id])?;
    Ok(())
}

pub fn list_recurring_runs(
    tx: &Transaction<'_>,
    scope: Option<(String, Sql)>,
    p: &ListParams,
) -> Result<Page<RecurringRun>, ApiError> {
    crate::store::list(
        tx,
        Kind::RecurringRuns,
        "recurring_runs",
        RECURRING_COLS,
        scope,
        p,
        recurring_row,
    )
}

/// The latest version of a pipeline (newest created; ties by insertion), as the server resolves
/// an empty `pipeline_version_id`.
pub fn latest_version_id(
    tx: &Transaction<'_>,
    pipeline_id: &str,
) -> Result<Option<String>, ApiError> {
    Ok(tx
        .query_row(
            "SELECT id FROM pipeline_versions WHERE pipeline_id = ?1 ORDER BY created_at DESC, seq DESC LIMIT 1",
            [pipeline_id],
            |r| r.get(0),
        )
        .optional()?)
}

/// Parameters as a map, for [`kfp_api::runs::check_parameters`].
pub fn parameters(config: Option<&RuntimeConfig>) -> BTreeMap<String, Value> {
    config.map(|c| c.parameters.clone()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_lifecycle() {
        let (s, f, h) = lifecycle(0, 1000, "SUCCEEDED", None, 50);
        assert_eq!((s.as_str(), f, h.len()), ("PENDING", None, 1));
        let (s, _, h) = lifecycle(0, 1000, "SUCCEEDED", None, 500);
        assert_eq!((s.as_str(), h.len()), ("RUNNING", 2));
        let (s, f, h) = lifecycle(0, 1000, "FAILED", None, 1000);
        assert_eq!((s.as_str(), f, h.len()), ("FAILED", Some(1000), 3));
        let (s, f, _) = lifecycle(0, 1000, "SUCCEEDED", Some(600), 2000);
        assert_eq!((s.as_str(), f), ("CANCELED", Some(600)));
        let (s, f, _) = lifecycle(0, 0, "SUCCEEDED", None, 0);
        assert_eq!((s.as_str(), f), ("SUCCEEDED", Some(0)));
    }
}
