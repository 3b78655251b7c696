//! Reconciling the configured schedules with the managed recurring runs on the server: `plan`
//! says what would change, `deploy` applies it.

use std::collections::{BTreeMap, BTreeSet};

use kfp_api::runs::{PipelineVersionReference, RecurringRun, RuntimeConfig};

use super::view::{desired_view, differences, existing_view, marker, settings_hash, with_marker};
use super::{Configured, PipelineState, Prune, Schedule, ScheduleReport};
use crate::client::Client;
use crate::row::{Action, PipelineReport, Status};

/// The oldest of several recurring runs (what every racing deploy agrees to keep).
fn oldest<'a>(runs: impl Iterator<Item = &'a RecurringRun>) -> Option<&'a RecurringRun> {
    runs.min_by(|a, b| {
        let ta = a
            .created_at
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        let tb = b
            .created_at
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        ta.cmp(&tb)
            .then_with(|| a.recurring_run_id.cmp(&b.recurring_run_id))
    })
}

/// Managed recurring runs by schedule name.
fn managed(all: Vec<RecurringRun>) -> BTreeMap<String, Vec<(String, RecurringRun)>> {
    let mut by_name: BTreeMap<String, Vec<(String, RecurringRun)>> = BTreeMap::new();
    for rr in all {
        if let Some((name, hash)) = marker(&rr.description) {
            by_name.entry(name).or_default().push((hash, rr));
        }
    }
    by_name
}

/// Pipeline states from the plan or deploy report rows.
pub fn pipeline_states(rows: &[PipelineReport], applied: bool) -> BTreeMap<String, PipelineState> {
    rows.iter()
        .map(|p| {
            let changes = matches!(p.action, Action::Create | Action::NewVersion);
            let failed = p.action == Action::Error
                || p.status == Status::Failed
                || (applied && changes && p.status != Status::Done);
            (
                p.name.clone(),
                PipelineState {
                    pipeline_id: p.pipeline_id.clone(),
                    version_id: if applied { p.version_id.clone() } else { None },
                    changes,
                    failed,
                },
            )
        })
        .collect()
}

/// Names of the schedules in the configuration, for pruning.
fn configured_names(schedules: &[Schedule], ignored: &BTreeSet<String>) -> BTreeSet<String> {
    schedules
        .iter()
        .map(|s| s.name.clone())
        .chain(ignored.iter().cloned())
        .collect()
}

/// Fill in the pinned version of unchanged pipelines (the newest version on the server).
async fn resolve_pinned(
    client: &Client,
    schedules: &[Schedule],
    states: &mut BTreeMap<String, PipelineState>,
) -> Result<(), crate::client::ApiError> {
    for s in schedules.iter().filter(|s| s.pinned) {
        if let Some(state) = states.get_mut(&s.pipeline)
            && state.version_id.is_none()
            && !state.changes
            && let Some(pid) = state.pipeline_id.clone()
            && let Some((latest, _)) = client.latest_versions(&pid).await?
        {
            state.version_id = Some(latest.pipeline_version_id);
        }
    }
    Ok(())
}

/// What `plan` and `deploy` both start from: the managed recurring runs by schedule name, the
/// pinned versions of unchanged pipelines filled in. `Err`: the rows to report instead (none
/// when the configuration manages no schedules, the listing error when the server said no).
async fn on_server(
    client: &Client,
    namespace: &str,
    configured: &Configured,
    states: &mut BTreeMap<String, PipelineState>,
) -> Result<BTreeMap<String, Vec<(String, RecurringRun)>>, Vec<ScheduleReport>> {
    // Without `[[schedules]]` (or `schedules = []`) kfp-ci leaves recurring runs alone.
    if !configured.enabled {
        return Err(Vec::new());
    }
    let all = client
        .all_recurring_runs(namespace)
        .await
        .map_err(|e| vec![listing_error(&e)])?;
    resolve_pinned(client, &configured.schedules, states)
        .await
        .map_err(|e| vec![listing_error(&e)])?;
    Ok(managed(all))
}

/// A schedule's report row, action still to decide.
fn row_for(s: &Schedule, status: Status) -> ScheduleReport {
    ScheduleReport {
        name: s.name.clone(),
        pipeline: s.pipeline.clone(),
        status,
        ..Default::default()
    }
}

/// `row`, left alone because its pipeline `why` (`failed`, `was not deployed`).
fn skipped(mut row: ScheduleReport, why: &str) -> ScheduleReport {
    row.action = "skipped".into();
    row.status = Status::Skipped;
    row.reason = format!(
        "pipeline {} {why}: its recurring run is left as it is",
        row.pipeline
    );
    row
}

/// What `deploy` would do to each schedule (no effect on the server).
/// `ignored`: configured schedules outside this run's scope (never pruned).
pub async fn plan(
    client: &Client,
    namespace: &str,
    configured: &Configured,
    mut states: BTreeMap<String, PipelineState>,
) -> Vec<ScheduleReport> {
    let (schedules, ignored, prune) =
        (&configured.schedules, &configured.ignored, configured.prune);
    let by_name = match on_server(client, namespace, configured, &mut states).await {
        Ok(by_name) => by_name,
        Err(rows) => return rows,
    };
    let mut experiments: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut out = Vec::new();
    for s in schedules {
        let state = states.get(&s.pipeline).cloned().unwrap_or_default();
        let mut row = row_for(s, Status::Planned);
        if state.failed {
            out.push(skipped(row, "failed"));
            continue;
        }
        if let Some(e) = latest_unsupported(client, s, &configured.source) {
            out.push(failed(row, e));
            continue;
        }
        if !experiments.contains_key(&s.experiment) {
            let id = client
                .experiment_by_name(&s.experiment, namespace)
                .await
                .ok()
                .flatten()
                .map(|e| e.experiment_id);
            experiments.insert(s.experiment.clone(), id);
        }
        let experiment_id = experiments.get(&s.experiment).cloned().flatten();
        let want = desired_view(s, &state, experiment_id.as_deref());
        let hash = settings_hash(&want, &s.pipeline);
        let existing = by_name.get(&s.name).map(Vec::as_slice).unwrap_or_default();
        decide(&mut row, existing, &want, &hash, s.enabled);
        out.push(row);
    }
    out.extend(orphans(
        &by_name,
        &configured_names(schedules, ignored),
        prune,
        true,
    ));
    out
}

/// `version = "latest"` on a server that cannot follow the newest version (before KFP 2.5): the
/// recurring run would keep running the version current when it was made, whatever is deployed
/// later. The schedule is an error (its recurring run, if any, is left as it is) instead.
fn latest_unsupported(client: &Client, s: &Schedule, source: &str) -> Option<String> {
    let caps = client.capabilities();
    if s.pinned || caps.recurring_run_follows_latest {
        return None;
    }
    Some(format!(
        "{source}: schedule {:?}: version = \"latest\" (the default) needs KFP 2.5.0 or later, where a recurring run follows the pipeline's newest version; this server is KFP {}, which would keep running the version that is newest when the recurring run is created. Set version = \"pinned\" on this schedule (kfp-ci then replaces the recurring run whenever {} gets a new version) or upgrade the server",
        s.name,
        caps.release_label(),
        s.pipeline
    ))
}

/// `row` as the error `e`.
fn failed(mut row: ScheduleReport, e: String) -> ScheduleReport {
    row.action = "error".into();
    row.status = Status::Failed;
    row.error = Some(e);
    row
}

fn listing_error(e: &crate::client::ApiError) -> ScheduleReport {
    ScheduleReport {
        name: "(schedules)".into(),
        action: "error".into(),
        status: Status::Failed,
        error: Some(format!(
            "cannot read the recurring runs: {}",
            e.server_message()
        )),
        ..Default::default()
    }
}

/// The action for one schedule given the managed recurring runs carrying its name.
fn decide(
    row: &mut ScheduleReport,
    existing: &[(String, RecurringRun)],
    want: &BTreeMap<&'static str, String>,
    hash: &str,
    enabled: bool,
) {
    let keep = oldest(existing.iter().filter(|(h, _)| h == hash).map(|(_, rr)| rr));
    match keep {
        Some(rr) => {
            row.recurring_run_id = Some(rr.recurring_run_id.clone());
            row.action = match (rr.enabled(), enabled) {
                (true, false) => "disable",
                (false, true) => "enable",
                _ => "unchanged",
            }
            .into();
            let mut why = Vec::new();
            match row.action.as_str() {
                "disable" => why.push("enabled: true → false".to_string()),
                "enable" => why.push("enabled: false → true".to_string()),
                _ => {}
            }
            let extra = existing.len() - 1;
            if extra > 0 {
                why.push(format!(
                    "{extra} other recurring run(s) of this schedule to delete"
                ));
            }
            row.reason = why.join("; ");
        }
        None => match oldest(existing.iter().map(|(_, rr)| rr)) {
            Some(old) => {
                row.action = "replace".into();
                row.reason = differences(&existing_view(old), want);
            }
            None => {
                row.action = "create".into();
                row.reason = want.get("trigger").cloned().unwrap_or_default();
                if !enabled {
                    row.reason.push_str(" (disabled)");
                }
            }
        },
    }
}

fn orphans(
    by_name: &BTreeMap<String, Vec<(String, RecurringRun)>>,
    configured: &BTreeSet<String>,
    prune: Prune,
    planned: bool,
) -> Vec<ScheduleReport> {
    let mut out = Vec::new();
    for (name, runs) in by_name {
        if configured.contains(name) {
            continue;
        }
        let targets: Vec<&RecurringRun> = runs
            .iter()
            .map(|(_, rr)| rr)
            .filter(|rr| prune == Prune::Delete || rr.enabled())
            .collect();
        if targets.is_empty() {
            continue;
        }
        out.push(ScheduleReport {
            name: name.clone(),
            action: match prune {
                Prune::Delete => "delete",
                Prune::Disable => "disable",
            }
            .into(),
            status: if planned {
                Status::Planned
            } else {
                Status::Done
            },
            reason: "no longer in the configuration".into(),
            deleted: if prune == Prune::Delete {
                targets
                    .iter()
                    .map(|rr| rr.recurring_run_id.clone())
                    .collect()
            } else {
                Vec::new()
            },
            recurring_run_id: (prune == Prune::Disable)
                .then(|| targets[0].recurring_run_id.clone()),
            ..Default::default()
        });
    }
    out
}

/// Apply the schedules after the pipelines: create, replace, enable, disable, delete.
pub async fn deploy(
    client: &Client,
    namespace: &str,
    configured: &Configured,
    mut states: BTreeMap<String, PipelineState>,
) -> Vec<ScheduleReport> {
    let (schedules, ignored, prune) =
        (&configured.schedules, &configured.ignored, configured.prune);
    let by_name = match on_server(client, namespace, configured, &mut states).await {
        Ok(by_name) => by_name,
        Err(rows) => return rows,
    };
    let mut out = Vec::new();
    for s in schedules {
        let state = states.get(&s.pipeline).cloned().unwrap_or_default();
        let existing = by_name.get(&s.name).cloned().unwrap_or_default();
        let mut row = row_for(s, Status::Done);
        if state.failed || state.pipeline_id.is_none() || (s.pinned && state.version_id.is_none()) {
            out.push(skipped(row, "was not deployed"));
            continue;
        }
        if let Some(e) = latest_unsupported(client, s, &configured.source) {
            out.push(failed(row, e));
            continue;
        }
        if let Err(e) = apply_one(client, namespace, s, &state, &existing, &mut row).await {
            row.status = Status::Failed;
            row.error = Some(crate::redact::redact(&e));
        }
        out.push(row);
    }
    let names = configured_names(schedules, ignored);
    for mut row in orphans(&by_name, &names, prune, false) {
        let result = match prune {
            Prune::Delete => {
                let mut err = None;
                for id in &row.deleted {
                    if let Err(e) = client.delete_recurring_run(id).await {
                        err = Some(e.server_message());
                    }
                }
                err
            }
            Prune::Disable => {
                let mut err = None;
                for (_, rr) in by_name.get(&row.name).into_iter().flatten() {
                    if rr.enabled()
                        && let Err(e) = client
                            .set_recurring_run_enabled(&rr.recurring_run_id, false)
                            .await
                    {
                        err = Some(e.server_message());
                    }
                }
                err
            }
        };
        if let Some(e) = result {
            row.status = Status::Failed;
            row.error = Some(e);
        }
        out.push(row);
    }
    out
}

async fn apply_one(
    client: &Client,
    namespace: &str,
    s: &Schedule,
    state: &PipelineState,
    existing: &[(String, RecurringRun)],
    row: &mut ScheduleReport,
) -> Result<(), String> {
    let experiment = client
        .ensure_experiment(&s.experiment, namespace)
        .await
        .map_err(|e| {
            format!(
                "cannot create experiment {:?}: {}",
                s.experiment,
                e.server_message()
            )
        })?;
    let want = desired_view(s, state, Some(&experiment.experiment_id));
    let hash = settings_hash(&want, &s.pipeline);
    decide(row, existing, &want, &hash, s.enabled);
    let mut keep_id = row.recurring_run_id.clone();
    match row.action.as_str() {
        "enable" | "disable" => {
            if let Some(id) = &keep_id {
                client
                    .set_recurring_run_enabled(id, s.enabled)
                    .await
                    .map_err(|e| {
                        format!(
                            "cannot {} recurring run {id}: {}",
                            row.action,
                            e.server_message()
                        )
                    })?;
            }
        }
        "create" | "replace" => {
            let rr = RecurringRun {
                display_name: s.name.clone(),
                description: with_marker(&s.description, &s.name, &hash),
                pipeline_version_reference: Some(PipelineVersionReference {
                    pipeline_id: state.pipeline_id.clone().unwrap_or_default(),
                    pipeline_version_id: if s.pinned {
                        state.version_id.clone().unwrap_or_default()
                    } else {
                        String::new()
                    },
                }),
                runtime_config: Some(RuntimeConfig {
                    parameters: s.parameters.clone(),
                    pipeline_root: s.pipeline_root.clone(),
                }),
                service_account: s.service_account.clone(),
                max_concurrency: Some(s.max_concurrency),
                trigger: Some(s.trigger.clone()),
                mode: if s.enabled { "ENABLE" } else { "DISABLE" }.into(),
                no_catchup: s.no_catchup,
                namespace: namespace.to_string(),
                experiment_id: experiment.experiment_id.clone(),
                ..Default::default()
            };
            let created = client
                .create_recurring_run(&rr)
                .await
                .map_err(|e| format!("cannot create the recurring run: {}", e.server_message()))?;
            keep_id = Some(created.recurring_run_id.clone());
            // A racing deploy may have created one too: list again, keep the oldest.
            if let Ok(all) = client.all_recurring_runs(namespace).await {
                let mine = managed(all).remove(&s.name).unwrap_or_default();
                if let Some(winner) =
                    oldest(mine.iter().filter(|(h, _)| *h == hash).map(|(_, rr)| rr))
                {
                    keep_id = Some(winner.recurring_run_id.clone());
                }
            }
        }
        _ => {}
    }
    row.recurring_run_id = keep_id.clone();
    // Everything else carrying this schedule's name goes: replaced ones and racing duplicates.
    // After a create the listing is fresh; otherwise the one read at the start is enough.
    let mine: Vec<String> = if matches!(row.action.as_str(), "create" | "replace") {
        let current = client
            .all_recurring_runs(namespace)
            .await
            .map_err(|e| format!("cannot list recurring runs: {}", e.server_message()))?;
        managed(current)
            .remove(&s.name)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, rr)| rr.recurring_run_id)
            .collect()
    } else {
        existing
            .iter()
            .map(|(_, rr)| rr.recurring_run_id.clone())
            .collect()
    };
    let stale: Vec<String> = mine
        .into_iter()
        .filter(|id| Some(id) != keep_id.as_ref())
        .collect();
    for id in stale {
        client.delete_recurring_run(&id).await.map_err(|e| {
            format!(
                "cannot delete the old recurring run {id}: {}",
                e.server_message()
            )
        })?;
        row.deleted.push(id);
    }
    Ok(())
}
