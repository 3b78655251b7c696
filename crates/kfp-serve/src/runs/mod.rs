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
    PipelineVersionReference, RecurringRun, Run, RuntimeConfig, Trigger, check_kfp_cron,
    check_parameters, experiment_name_problem, limits,
};
use rusqlite::Transaction;
use rusqlite::types::Value as Sql;
use serde_json::{Map, Value};

use crate::AppState;
use crate::api::{
    ApiResult, Body, blocking, body_bytes, list_params, namespace, path_param, query_map,
    strict_body,
};
use crate::error::ApiError;
use crate::list::{self, Kind};
use crate::store::Page;
use kfp_api::routes::{query, split_action};

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

/// `{id}` or `{id}:{action}` of the item routes (axum cannot match a suffix after a parameter).
/// The id of a `/{id}` route; `/{id}:action` is not one (404, as the gateway answers).
fn plain_id(rest: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let rest = path_param(rest)?;
    match split_action(&rest) {
        (id, None) => Ok(id.to_string()),
        (_, Some(_)) => Err(ApiError::not_found_route()),
    }
}

/// One page of a list handler: the list options of `q` for `kind` within `scope`, read by `read`.
async fn list_page<T: Send + 'static>(
    state: &Arc<AppState>,
    kind: Kind,
    scope: &str,
    q: &std::collections::HashMap<String, String>,
    read: impl FnOnce(&Transaction<'_>, &list::ListParams) -> Result<Page<T>, ApiError> + Send + 'static,
) -> Result<(Vec<T>, i32, String), ApiError> {
    let params = list_params(kind, scope, q)?;
    let page = blocking(state, move |s| s.read(|tx| read(tx, &params))).await?;
    Ok((page.items, total(page.total), page.next_token))
}

/// The item of a `GET /{id}` route, or the 404 `find` gives.
async fn get_item<T: Send + 'static>(
    state: &Arc<AppState>,
    rest: Result<Path<String>, PathRejection>,
    find: fn(&Transaction<'_>, &str) -> Result<T, ApiError>,
) -> ApiResult<T> {
    let id = plain_id(rest)?;
    Ok(Json(
        blocking(state, move |s| s.read(|tx| find(tx, &id))).await?,
    ))
}

/// `DELETE /{id}`: 404 unless `find` finds it, then `delete`.
async fn delete_item<T: 'static>(
    state: &Arc<AppState>,
    rest: Result<Path<String>, PathRejection>,
    find: fn(&Transaction<'_>, &str) -> Result<T, ApiError>,
    delete: fn(&Transaction<'_>, &str) -> Result<(), ApiError>,
) -> ApiResult<Value> {
    let id = plain_id(rest)?;
    blocking(state, move |s| {
        s.write(|tx| {
            find(tx, &id)?;
            delete(tx, &id)
        })
    })
    .await?;
    Ok(empty())
}

/// `POST /{id}:{action}`: `parse` reads the action (a 405 for one the route does not have),
/// `apply` carries it out on the item.
async fn item_action<A: Send + 'static>(
    state: &Arc<AppState>,
    rest: Result<Path<String>, PathRejection>,
    parse: fn(Option<&str>) -> Result<A, ApiError>,
    apply: fn(&Transaction<'_>, &str, A) -> Result<(), ApiError>,
) -> ApiResult<Value> {
    let rest = path_param(rest)?;
    let (id, action) = split_action(&rest);
    let action = parse(action)?;
    let id = id.to_string();
    blocking(state, move |s| s.write(|tx| apply(tx, &id, action))).await?;
    Ok(empty())
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
    let ns = namespace(&state, q.get(query::NAMESPACE))?;
    let scope = ns.clone();
    let (experiments, total_size, next_page_token) =
        list_page(&state, Kind::Experiments, &ns, &q, move |tx, params| {
            store::list_experiments(tx, Some(&scope), params)
        })
        .await?;
    Ok(Json(ListExperimentsResponse {
        experiments,
        total_size,
        next_page_token,
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
    get_item(&state, rest, experiment_or_404).await
}

pub async fn delete_experiment(
    State(state): State<Arc<AppState>>,
    rest: Result<Path<String>, PathRejection>,
) -> ApiResult<Value> {
    delete_item(&state, rest, experiment_or_404, store::delete_experiment).await
}

pub async fn experiment_action(
    State(state): State<Arc<AppState>>,
    rest: Result<Path<String>, PathRejection>,
) -> ApiResult<Value> {
    item_action(
        &state,
        rest,
        |action| match action {
            Some("archive") => Ok("ARCHIVED"),
            Some("unarchive") => Ok("AVAILABLE"),
            _ => Err(ApiError::method_not_allowed()),
        },
        |tx, id, target| {
            experiment_or_404(tx, id)?;
            store::set_experiment_state(tx, id, target)
        },
    )
    .await
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

/// What a new run or recurring run runs, its parameters checked against the pipeline's inputs.
/// `failed`: how the server's error starts ("Failed to create a new run").
fn checked_source(
    tx: &Transaction<'_>,
    reference: Option<&PipelineVersionReference>,
    inline: Option<&Value>,
    runtime_config: Option<RuntimeConfig>,
    service_account: String,
    follow_latest: bool,
    failed: &str,
) -> Result<store::Source, ApiError> {
    let (reference, spec) = resolve_source(tx, reference, inline, follow_latest)?;
    check_parameters(&spec, &store::parameters(runtime_config.as_ref()))
        .map_err(|e| ApiError::invalid(format!("{failed}: Invalid input error: {e}")))?;
    Ok(store::Source {
        pipeline_spec: if reference.is_none() {
            Some(spec)
        } else {
            None
        },
        reference,
        runtime_config,
        service_account,
    })
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
    if let Some(e) = q.get(query::EXPERIMENT_ID).filter(|e| !e.is_empty()) {
        return Ok((
            Some(("experiment_id = ?".into(), Sql::Text(e.clone()))),
            format!("e:{e}"),
        ));
    }
    if state.multi_user {
        let ns = namespace(state, q.get(query::NAMESPACE))?;
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
    let (runs, total_size, next_page_token) =
        list_page(&state, Kind::Runs, &key, &q, move |tx, params| {
            store::list_runs(tx, scope, params)
        })
        .await?;
    Ok(Json(ListRunsResponse {
        runs,
        total_size,
        next_page_token,
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
            let source = checked_source(
                tx,
                body.pipeline_version_reference.as_ref(),
                body.pipeline_spec.as_ref(),
                body.runtime_config,
                body.service_account,
                false,
                "Failed to create a new run",
            )?;
            store::insert_run(
                tx,
                &store::NewRun {
                    experiment_id: experiment.experiment_id,
                    display_name: body.display_name,
                    description: body.description,
                    namespace: ns,
                    source,
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
    get_item(&state, rest, run_or_404).await
}

pub async fn delete_run(
    State(state): State<Arc<AppState>>,
    rest: Result<Path<String>, PathRejection>,
) -> ApiResult<Value> {
    delete_item(&state, rest, run_or_404, store::delete_run).await
}

pub async fn run_action(
    State(state): State<Arc<AppState>>,
    rest: Result<Path<String>, PathRejection>,
) -> ApiResult<Value> {
    // The run is looked up first: an unknown action on a missing run is a 404.
    item_action(
        &state,
        rest,
        |action| Ok(action.map(str::to_string)),
        |tx, id, action| {
            let run = run_or_404(tx, id)?;
            match action.as_deref() {
                Some("archive") => store::set_run_storage(tx, id, "ARCHIVED"),
                Some("unarchive") => store::set_run_storage(tx, id, "AVAILABLE"),
                Some("terminate") => store::terminate_run(tx, id),
                Some("retry") => Err(ApiError::precondition(format!(
                    "Failed to retry a run: run {id} is in state {}: kfp-ci serve records runs without executing them, so there is nothing to retry",
                    run.state
                ))),
                _ => Err(ApiError::method_not_allowed()),
            }
        },
    )
    .await
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
    let (recurring_runs, total_size, next_page_token) =
        list_page(&state, Kind::RecurringRuns, &key, &q, move |tx, params| {
            store::list_recurring_runs(tx, scope, params)
        })
        .await?;
    Ok(Json(ListRecurringRunsResponse {
        recurring_runs,
        total_size,
        next_page_token,
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
    let follow_latest = state.caps.recurring_run_follows_latest;
    let rr = blocking(&state, move |s| {
        s.write(|tx| {
            let experiment = resolve_experiment(tx, &body.experiment_id, &ns)?;
            let source = checked_source(
                tx,
                body.pipeline_version_reference.as_ref(),
                body.pipeline_spec.as_ref(),
                body.runtime_config,
                body.service_account,
                follow_latest,
                "Failed to create a recurring run",
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
                    source,
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
    get_item(&state, rest, recurring_or_404).await
}

pub async fn delete_recurring_run(
    State(state): State<Arc<AppState>>,
    rest: Result<Path<String>, PathRejection>,
) -> ApiResult<Value> {
    delete_item(&state, rest, recurring_or_404, store::delete_recurring_run).await
}

pub async fn recurring_run_action(
    State(state): State<Arc<AppState>>,
    rest: Result<Path<String>, PathRejection>,
) -> ApiResult<Value> {
    item_action(
        &state,
        rest,
        |action| match action {
            Some("enable") => Ok(true),
            Some("disable") => Ok(false),
            _ => Err(ApiError::method_not_allowed()),
        },
        |tx, id, enabled| {
            recurring_or_404(tx, id)?;
            store::set_recurring_enabled(tx, id, enabled)
        },
    )
    .await
}

/// The routes, merged into the gateway router by `lib.rs`. Item routes take `{rest}`: an id, or
/// an id with its `:action` (axum cannot match a suffix after a parameter).
pub fn routes() -> axum::Router<Arc<AppState>> {
    use axum::routing::get;
    use kfp_api::routes::Route;
    let path = |route: Route<'_>| route.template();
    axum::Router::new()
        .route(
            &path(Route::Experiments),
            get(list_experiments).post(create_experiment),
        )
        .route(
            &path(Route::Experiment("{rest}")),
            get(get_experiment)
                .delete(delete_experiment)
                .post(experiment_action),
        )
        .route(&path(Route::Runs), get(list_runs).post(create_run))
        .route(
            &path(Route::Run("{rest}")),
            get(get_run).delete(delete_run).post(run_action),
        )
        .route(
            &path(Route::RecurringRuns),
            get(list_recurring_runs).post(create_recurring_run),
        )
        .route(
            &path(Route::RecurringRun("{rest}")),
            get(get_recurring_run)
                .delete(delete_recurring_run)
                .post(recurring_run_action),
        )
}
