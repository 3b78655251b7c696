//! Experiments, runs and recurring runs of the v2beta1 API. Runs are recorded, not executed:
//! each goes PENDING → RUNNING → the configured outcome (`--run-outcome`) after
//! `--run-duration-ms`, computed from its creation time whenever it is read. Recurring runs are
//! stored, enabled and disabled, but never trigger runs.

pub mod store;
pub mod ui;

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use kfp_api::runs::{
    Experiment, ListExperimentsResponse, ListRecurringRunsResponse, ListRunsResponse,
    PipelineVersionReference, RecurringRun, Run, Trigger, check_kfp_cron, check_parameters,
    experiment_name_problem, limits,
};
use rusqlite::Transaction;
use rusqlite::types::Value as Sql;
use serde_json::{Map, Value};

use crate::AppState;
use crate::api::{ApiResult, Body, blocking, body_bytes, namespace, path_param, query_map};
use crate::error::ApiError;
use crate::list::{self, Kind};

/// Name of the experiment runs go to when the request names none (KFP's default experiment).
pub const DEFAULT_EXPERIMENT: &str = "Default";

/// How simulated runs end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunOutcome {
    #[default]
    Succeeded,
    Failed,
}

impl RunOutcome {
    pub fn state(self) -> &'static str {
        match self {
            RunOutcome::Succeeded => "SUCCEEDED",
            RunOutcome::Failed => "FAILED",
        }
    }
}

impl std::str::FromStr for RunOutcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "succeeded" => Ok(RunOutcome::Succeeded),
            "failed" => Ok(RunOutcome::Failed),
            other => Err(format!(
                "unknown run outcome {other:?}: use succeeded or failed"
            )),
        }
    }
}

fn empty() -> Json<Value> {
    Json(Value::Object(Map::new()))
}

/// A JSON body with grpc-gateway's strictness: camelCase names read as snake_case, unknown
/// top-level fields refused.
fn strict_body<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    allowed: &[&str],
) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid(format!("invalid JSON request body: {e}")))?;
    let Value::Object(map) = value else {
        return Err(ApiError::invalid(
            "invalid JSON request body: expected an object",
        ));
    };
    let mut out = Map::new();
    for (key, mut v) in map {
        let snake = snake_case(&key);
        if !allowed.contains(&snake.as_str()) {
            return Err(ApiError::invalid(format!(
                "invalid JSON request body: unknown field {key:?}"
            )));
        }
        // Enums may come as their number.
        if snake == "mode"
            && let Some(n) = v.as_i64()
        {
            v = Value::from(match n {
                1 => "ENABLE",
                2 => "DISABLE",
                _ => "MODE_UNSPECIFIED",
            });
        }
        if !v.is_null() {
            out.insert(snake, v);
        }
    }
    serde_json::from_value(Value::Object(out))
        .map_err(|e| ApiError::invalid(format!("invalid JSON request body: {e}")))
}

fn snake_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `{id}` or `{id}:{action}` of the item routes (axum cannot match a suffix after a parameter).
/// The id of a `/{id}` route; `/{id}:action` is not one (404, as the gateway answers).
fn plain_id(rest: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let rest = path_param(rest)?;
    match split_action(&rest) {
        (id, None) => Ok(id.to_string()),
        (_, Some(_)) => Err(ApiError::not_found_route()),
    }
}

fn split_action(rest: &str) -> (&str, Option<&str>) {
    match rest.split_once(':') {
        Some((id, action)) => (id, Some(action)),
        None => (rest, None),
    }
}

fn list_params(
    kind: Kind,
    scope: &str,
    q: &std::collections::HashMap<String, String>,
) -> Result<list::ListParams, ApiError> {
    list::parse(
        kind,
        scope,
        q.get("page_size").map(String::as_str),
        q.get("page_token").map(String::as_str),
        q.get("sort_by").map(String::as_str),
        q.get("filter").map(String::as_str),
    )
}

fn total(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

// ---------------------------------------------------------------- experiments

fn experiment_or_404(tx: &Transaction<'_>, id: &str) -> Result<Experiment, ApiError> {
    store::get_experiment(tx, id)?.ok_or_else(|| {
        ApiError::not_found(format!(
            "Failed to get experiment: ResourceNotFoundError: Experiment {id} not found"
        ))
    })
}

pub async fn list_experiments(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
) -> ApiResult<ListExperimentsResponse> {
    let q = query_map(raw);
    let ns = namespace(&state, q.get("namespace"))?;
    let params = list_params(Kind::Experiments, &ns, &q)?;
    let page = blocking(&state, move |s| {
        s.read(|tx| store::list_experiments(tx, Some(&ns), &params))
    })
    .await?;
    Ok(Json(ListExperimentsResponse {
        experiments: page.items,
        total_size: total(page.total),
        next_page_token: page.next_token,
    }))
}

pub async fn create_experiment(
    State(state): State<Arc<AppState>>,
    body: Body,
) -> ApiResult<Experiment> {
    let body: Experiment = strict_body(
        &body_bytes(body).await?,
        &[
            "experiment_id",
            "display_name",
            "description",
            "created_at",
            "namespace",
            "storage_state",
            "last_run_created_at",
        ],
    )?;
    if let Some(problem) = experiment_name_problem(&body.display_name) {
        return Err(ApiError::invalid(format!(
            "Failed to create a experiment: Invalid input error: {problem}"
        )));
    }
    let ns = namespace(&state, Some(&body.namespace))?;
    let e = blocking(&state, move |s| {
        s.write(|tx| store::insert_experiment(tx, &body.display_name, &body.description, &ns))
    })
    .await?;
    Ok(Json(e))
}

pub async fn get_experiment(
    State(state): State<Arc<AppState>>,
    rest: Result<Path<String>, PathRejection>,
) -> ApiResult<Experiment> {
    let id = plain_id(rest)?;
    Ok(Json(
        blocking(&state, move |s| s.read(|tx| experiment_or_404(tx, &id))).await?,
    ))
}

pub async fn delete_experiment(
    State(state): State<Arc<AppState>>,
    rest: Result<Path<String>, PathRejection>,
) -> ApiResult<Value> {
    let id = plain_id(rest)?;
    blocking(&state, move |s| {
        s.write(|tx| {
            experiment_or_404(tx, &id)?;
            store::delete_experiment(tx, &id)
        })
    })
    .await?;
    Ok(empty())
}

pub async fn experiment_action(
    State(state): State<Arc<AppState>>,
    rest: Result<Path<String>, PathRejection>,
) -> ApiResult<Value> {
    let rest = path_param(rest)?;
    let (id, action) = split_action(&rest);
    let target = match action {
        Some("archive") => "ARCHIVED",
        Some("unarchive") => "AVAILABLE",
        _ => return Err(ApiError::method_not_allowed()),
    };
    let id = id.to_string();
    blocking(&state, move |s| {
        s.write(|tx| {
            experiment_or_404(tx, &id)?;
            store::set_experiment_state(tx, &id, target)
        })
    })
    .await?;
    Ok(empty())
}

/// The experiment a run or recurring run goes to: the one named, or the default one.
fn resolve_experiment(tx: &Transaction<'_>, id: &str, ns: &str) -> Result<Experiment, ApiError> {
    if id.is_empty() {
        return match store::experiment_by_name(tx, DEFAULT_EXPERIMENT, ns)? {
            Some(e) => Ok(e),
            None => store::insert_experiment(
                tx,
                DEFAULT_EXPERIMENT,
                "All runs created without specifying an experiment will be grouped here.",
                ns,
            ),
        };
    }
    let e = store::get_experiment(tx, id)?.ok_or_else(|| {
        ApiError::not_found(format!(
            "Failed to create a run: ResourceNotFoundError: Experiment {id} not found: create it first (POST /apis/v2beta1/experiments) or leave experiment_id empty for the default experiment"
        ))
    })?;
    if e.storage_state == "ARCHIVED" {
        return Err(ApiError::precondition(format!(
            "Failed to create a run: experiment {id} is archived: unarchive it first"
        )));
    }
    Ok(e)
}

/// The pipeline a run uses: (reference to store, spec to check parameters against).
/// `follow_latest`: an empty version id stays empty (recurring runs, KFP 2.5.0+) instead of
/// being resolved now (runs).
fn resolve_source(
    tx: &Transaction<'_>,
    reference: Option<&PipelineVersionReference>,
    inline: Option<&Value>,
    follow_latest: bool,
) -> Result<(Option<PipelineVersionReference>, Value), ApiError> {
    match (reference, inline) {
        (Some(r), _) if !r.pipeline_version_id.is_empty() => {
            let version: Option<(String, String)> =
                rusqlite::OptionalExtension::optional(tx.query_row(
                    "SELECT pipeline_id, spec FROM pipeline_versions WHERE id = ?1",
                    [&r.pipeline_version_id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                ))?;
            let (pid, spec) = version.ok_or_else(|| {
                ApiError::not_found(format!(
                    "Failed to fetch a pipeline version and its manifest from pipeline version {}: PipelineVersion {} not found",
                    r.pipeline_version_id, r.pipeline_version_id
                ))
            })?;
            if !r.pipeline_id.is_empty() && r.pipeline_id != pid {
                return Err(ApiError::invalid(format!(
                    "Invalid input error: Pipeline version {} belongs to pipeline {pid} (not {})",
                    r.pipeline_version_id, r.pipeline_id
                )));
            }
            Ok((
                Some(PipelineVersionReference {
                    pipeline_id: pid,
                    pipeline_version_id: r.pipeline_version_id.clone(),
                }),
                serde_json::from_str(&spec).unwrap_or(Value::Null),
            ))
        }
        (Some(r), _) if !r.pipeline_id.is_empty() => {
            let latest = store::latest_version_id(tx, &r.pipeline_id)?.ok_or_else(|| {
                ApiError::not_found(format!(
                    "Failed to fetch a pipeline version and its manifest from pipeline {}: the pipeline does not exist or has no versions",
                    r.pipeline_id
                ))
            })?;
            let spec: String = tx.query_row(
                "SELECT spec FROM pipeline_versions WHERE id = ?1",
                [&latest],
                |row| row.get(0),
            )?;
            Ok((
                Some(PipelineVersionReference {
                    pipeline_id: r.pipeline_id.clone(),
                    pipeline_version_id: if follow_latest { String::new() } else { latest },
                }),
                serde_json::from_str(&spec).unwrap_or(Value::Null),
            ))
        }
        (_, Some(spec)) => Ok((None, spec.clone())),
        _ => Err(ApiError::invalid(
            "Invalid input error: Pipeline spec source is missing: set pipeline_version_reference (pipeline_id, optionally pipeline_version_id) or pipeline_spec",
        )),
    }
}

// ---------------------------------------------------------------- runs

const RUN_FIELDS: &[&str] = &[
    "experiment_id",
    "run_id",
    "display_name",
    "storage_state",
    "description",
    "pipeline_version_id",
    "pipeline_spec",
    "pipeline_version_reference",
    "runtime_config",
    "service_account",
    "created_at",
    "scheduled_at",
    "finished_at",
    "state",
    "error",
    "run_details",
    "recurring_run_id",
    "state_history",
    "plugins_input",
];

fn run_or_404(tx: &Transaction<'_>, id: &str) -> Result<Run, ApiError> {
    store::get_run(tx, id)?.ok_or_else(|| {
        ApiError::not_found(format!(
            "Failed to get a run: ResourceNotFoundError: Run {id} not found"
        ))
    })
}

/// `experiment_id` (deprecated) and `namespace` scope a list of runs or recurring runs.
fn run_scope(
    state: &AppState,
    q: &std::collections::HashMap<String, String>,
) -> Result<(Option<(String, Sql)>, String), ApiError> {
    if let Some(e) = q.get("experiment_id").filter(|e| !e.is_empty()) {
        return Ok((
            Some(("experiment_id = ?".into(), Sql::Text(e.clone()))),
            format!("e:{e}"),
        ));
    }
    if state.multi_user {
        let ns = namespace(state, q.get("namespace"))?;
        return Ok((
            Some(("namespace = ?".into(), Sql::Text(ns.clone()))),
            format!("n:{ns}"),
        ));
    }
    Ok((None, String::new()))
}

pub async fn list_runs(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
) -> ApiResult<ListRunsResponse> {
    let q = query_map(raw);
    let (scope, key) = run_scope(&state, &q)?;
    let params = list_params(Kind::Runs, &key, &q)?;
    let page = blocking(&state, move |s| {
        s.read(|tx| store::list_runs(tx, scope, &params))
    })
    .await?;
    Ok(Json(ListRunsResponse {
        runs: page.items,
        total_size: total(page.total),
        next_page_token: page.next_token,
    }))
}

pub async fn create_run(State(state): State<Arc<AppState>>, body: Body) -> ApiResult<Run> {
    let body: Run = strict_body(&body_bytes(body).await?, RUN_FIELDS)?;
    if body.display_name.is_empty() {
        return Err(ApiError::invalid(
            "Failed to create a new run: Invalid input error: Run name cannot be empty: set display_name",
        ));
    }
    let outcome = state.run_outcome.state().to_string();
    let duration_ms = i64::try_from(state.run_duration.as_millis()).unwrap_or(i64::MAX);
    let given_ns = state.multi_user;
    let run = blocking(&state, move |s| {
        s.write(|tx| {
            let experiment = resolve_experiment(tx, &body.experiment_id, "")?;
            let ns = if given_ns {
                experiment.namespace.clone()
            } else {
                String::new()
            };
            let (reference, spec) = resolve_source(
                tx,
                body.pipeline_version_reference.as_ref(),
                body.pipeline_spec.as_ref(),
                false,
            )?;
            check_parameters(&spec, &store::parameters(body.runtime_config.as_ref())).map_err(
                |e| {
                    ApiError::invalid(format!(
                        "Failed to create a new run: Invalid input error: {e}"
                    ))
                },
            )?;
            store::insert_run(
                tx,
                &store::NewRun {
                    experiment_id: experiment.experiment_id,
                    display_name: body.display_name,
                    description: body.description,
                    namespace: ns,
                    pipeline_spec: if reference.is_none() {
                        Some(spec)
                    } else {
                        None
                    },
                    reference,
                    runtime_config: body.runtime_config,
                    service_account: body.service_account,
                    recurring_run_id: body.recurring_run_id,
                    outcome,
                    duration_ms,
                },
            )
        })
    })
    .await?;
    Ok(Json(run))
}

pub async fn get_run(
    State(state): State<Arc<AppState>>,
    rest: Result<Path<String>, PathRejection>,
) -> ApiResult<Run> {
    let id = plain_id(rest)?;
    Ok(Json(
        blocking(&state, move |s| s.read(|tx| run_or_404(tx, &id))).await?,
    ))
}

pub async fn delete_run(
    State(state): State<Arc<AppState>>,
    rest: Result<Path<String>, PathRejection>,
) -> ApiResult<Value> {
    let id = plain_id(rest)?;
    blocking(&state, move |s| {
        s.write(|tx| {
            run_or_404(tx, &id)?;
            store::delete_run(tx, &id)
        })
    })
    .await?;
    Ok(empty())
}

pub async fn run_action(
    State(state): State<Arc<AppState>>,
    rest: Result<Path<String>, PathRejection>,
) -> ApiResult<Value> {
    let rest = path_param(rest)?;
    let (id, action) = split_action(&rest);
    let id = id.to_string();
    let action = action.map(str::to_string);
    blocking(&state, move |s| {
        s.write(|tx| {
            let run = run_or_404(tx, &id)?;
            match action.as_deref() {
                Some("archive") => store::set_run_storage(tx, &id, "ARCHIVED"),
                Some("unarchive") => store::set_run_storage(tx, &id, "AVAILABLE"),
                Some("terminate") => store::terminate_run(tx, &id),
                Some("retry") => Err(ApiError::precondition(format!(
                    "Failed to retry a run: run {id} is in state {}: kfp-ci serve records runs without executing them, so there is nothing to retry",
                    run.state
                ))),
                _ => Err(ApiError::method_not_allowed()),
            }
        })
    })
    .await?;
    Ok(empty())
}

// ---------------------------------------------------------------- recurring runs

const RECURRING_FIELDS: &[&str] = &[
    "recurring_run_id",
    "display_name",
    "description",
    "pipeline_version_id",
    "pipeline_spec",
    "pipeline_version_reference",
    "runtime_config",
    "service_account",
    "max_concurrency",
    "trigger",
    "mode",
    "created_at",
    "updated_at",
    "status",
    "error",
    "no_catchup",
    "namespace",
    "experiment_id",
    "plugins_input",
];

fn recurring_or_404(tx: &Transaction<'_>, id: &str) -> Result<RecurringRun, ApiError> {
    store::get_recurring_run(tx, id)?.ok_or_else(|| {
        ApiError::not_found(format!(
            "Failed to get a recurring run: ResourceNotFoundError: RecurringRun {id} not found"
        ))
    })
}

fn check_trigger(trigger: Option<&Trigger>) -> Result<Trigger, ApiError> {
    let bad = |m: String| {
        ApiError::invalid(format!(
            "Failed to create a recurring run: Invalid input error: {m}"
        ))
    };
    let trigger = trigger.cloned().unwrap_or_default();
    match (&trigger.cron_schedule, &trigger.periodic_schedule) {
        (Some(c), None) => check_kfp_cron(&c.cron).map_err(|e| {
            bad(format!(
                "Schedule cron is not a supported format(https://godoc.org/github.com/robfig/cron). Error: {e}"
            ))
        })?,
        (None, Some(p)) => {
            let n = p.interval_second.unwrap_or(0);
            if n < 1 {
                return Err(bad(format!(
                    "Found invalid period schedule interval {n}. Set at interval to least 1 second"
                )));
            }
        }
        (Some(_), Some(_)) => {
            return Err(bad("a trigger has either cron_schedule or periodic_schedule, not both".into()));
        }
        (None, None) => {
            return Err(bad("a recurring run needs a trigger: cron_schedule or periodic_schedule".into()));
        }
    }
    for t in [
        trigger
            .cron_schedule
            .as_ref()
            .and_then(|c| c.start_time.as_ref()),
        trigger
            .cron_schedule
            .as_ref()
            .and_then(|c| c.end_time.as_ref()),
        trigger
            .periodic_schedule
            .as_ref()
            .and_then(|c| c.start_time.as_ref()),
        trigger
            .periodic_schedule
            .as_ref()
            .and_then(|c| c.end_time.as_ref()),
    ]
    .into_iter()
    .flatten()
    {
        t.parse::<jiff::Timestamp>()
            .map_err(|e| bad(format!("start/end time {t:?} is not RFC 3339: {e}")))?;
    }
    Ok(trigger)
}

pub async fn list_recurring_runs(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
) -> ApiResult<ListRecurringRunsResponse> {
    let q = query_map(raw);
    let (scope, key) = run_scope(&state, &q)?;
    let params = list_params(Kind::RecurringRuns, &key, &q)?;
    let page = blocking(&state, move |s| {
        s.read(|tx| store::list_recurring_runs(tx, scope, &params))
    })
    .await?;
    Ok(Json(ListRecurringRunsResponse {
        recurring_runs: page.items,
        total_size: total(page.total),
        next_page_token: page.next_token,
    }))
}

pub async fn create_recurring_run(
    State(state): State<Arc<AppState>>,
    body: Body,
) -> ApiResult<RecurringRun> {
    let body: RecurringRun = strict_body(&body_bytes(body).await?, RECURRING_FIELDS)?;
    if body.display_name.is_empty() {
        return Err(ApiError::invalid(
            "Failed to create a recurring run: Invalid input error: Recurring run's name cannot be empty: set display_name",
        ));
    }
    let max = body.max_concurrency.unwrap_or(0);
    if !(1..=limits::MAX_CONCURRENCY).contains(&max) {
        return Err(ApiError::invalid(format!(
            "Failed to create a recurring run: Invalid input error: Max concurrency of a recurring run must be at least 1 and at most 10. Received {max}"
        )));
    }
    let trigger = check_trigger(body.trigger.as_ref())?;
    let enabled = body.mode == "ENABLE";
    let ns = namespace(&state, Some(&body.namespace))?;
    // Following the latest version came with KFP 2.5.0 (kubeflow/pipelines#11560); before, an
    // empty version id was resolved once, at creation.
    let follow_latest = state
        .caps
        .release
        .is_none_or(|r| r >= kfp_api::compat::Release::V2_5);
    let rr = blocking(&state, move |s| {
        s.write(|tx| {
            let experiment = resolve_experiment(tx, &body.experiment_id, &ns)?;
            let (reference, spec) = resolve_source(
                tx,
                body.pipeline_version_reference.as_ref(),
                body.pipeline_spec.as_ref(),
                follow_latest,
            )?;
            check_parameters(&spec, &store::parameters(body.runtime_config.as_ref())).map_err(
                |e| {
                    ApiError::invalid(format!(
                        "Failed to create a recurring run: Invalid input error: {e}"
                    ))
                },
            )?;
            store::insert_recurring_run(
                tx,
                &store::NewRecurringRun {
                    display_name: body.display_name,
                    description: body.description,
                    namespace: if ns.is_empty() {
                        experiment.namespace
                    } else {
                        ns
                    },
                    experiment_id: experiment.experiment_id,
                    pipeline_spec: if reference.is_none() {
                        Some(spec)
                    } else {
                        None
                    },
                    reference,
                    runtime_config: body.runtime_config,
                    service_account: body.service_account,
                    max_concurrency: max,
                    trigger,
                    enabled,
                    no_catchup: body.no_catchup,
                },
            )
        })
    })
    .await?;
    Ok(Json(rr))
}

pub async fn get_recurring_run(
    State(state): State<Arc<AppState>>,
    rest: Result<Path<String>, PathRejection>,
) -> ApiResult<RecurringRun> {
    let id = plain_id(rest)?;
    Ok(Json(
        blocking(&state, move |s| s.read(|tx| recurring_or_404(tx, &id))).await?,
    ))
}

pub async fn delete_recurring_run(
    State(state): State<Arc<AppState>>,
    rest: Result<Path<String>, PathRejection>,
) -> ApiResult<Value> {
    let id = plain_id(rest)?;
    blocking(&state, move |s| {
        s.write(|tx| {
            recurring_or_404(tx, &id)?;
            store::delete_recurring_run(tx, &id)
        })
    })
    .await?;
    Ok(empty())
}

pub async fn recurring_run_action(
    State(state): State<Arc<AppState>>,
    rest: Result<Path<String>, PathRejection>,
) -> ApiResult<Value> {
    let rest = path_param(rest)?;
    let (id, action) = split_action(&rest);
    let enabled = match action {
        Some("enable") => true,
        Some("disable") => false,
        _ => return Err(ApiError::method_not_allowed()),
    };
    let id = id.to_string();
    blocking(&state, move |s| {
        s.write(|tx| {
            recurring_or_404(tx, &id)?;
            store::set_recurring_enabled(tx, &id, enabled)
        })
    })
    .await?;
    Ok(empty())
}

/// The routes, merged into the gateway router by `lib.rs`.
pub fn routes() -> axum::Router<Arc<AppState>> {
    use axum::routing::get;
    const V: &str = "/apis/v2beta1";
    axum::Router::new()
        .route(
            &format!("{V}/experiments"),
            get(list_experiments).post(create_experiment),
        )
        .route(
            &format!("{V}/experiments/{{rest}}"),
            get(get_experiment)
                .delete(delete_experiment)
                .post(experiment_action),
        )
        .route(&format!("{V}/runs"), get(list_runs).post(create_run))
        .route(
            &format!("{V}/runs/{{rest}}"),
            get(get_run).delete(delete_run).post(run_action),
        )
        .route(
            &format!("{V}/recurringruns"),
            get(list_recurring_runs).post(create_recurring_run),
        )
        .route(
            &format!("{V}/recurringruns/{{rest}}"),
            get(get_recurring_run)
                .delete(delete_recurring_run)
                .post(recurring_run_action),
        )
}
