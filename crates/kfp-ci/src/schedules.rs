//! Recurring runs declared in git (`[[schedules]]`): validated against the compiled pipelines
//! at check/plan time, reconciled with the server after the pipelines on deploy.
//!
//! kfp-ci manages only the recurring runs it created: their description ends with a marker line
//! `kfp-ci:{"schedule":NAME,"settings":HASH}`. KFP has no update call for a recurring run, so a
//! changed schedule is replaced (the new one created first, then the old one deleted); the hash
//! covers every setting but `enabled`, which is switched in place. After creating, kfp-ci lists
//! again and keeps the oldest recurring run carrying the wanted hash, so two deploys racing each
//! other still leave exactly one per schedule. See docs/schedules.md.

use std::collections::{BTreeMap, BTreeSet};

use kfp_api::runs::{
    CronSchedule, PeriodicSchedule, PipelineVersionReference, RecurringRun, RuntimeConfig, Trigger,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::Client;
use crate::report::{Action, PipelineReport, Status};

/// The experiment schedules and smoke runs use when none is configured (KFP's default one).
pub const DEFAULT_EXPERIMENT: &str = "Default";

/// Prefix of the marker line in a managed recurring run's description.
const MARKER: &str = "kfp-ci:";

/// One `[[schedules]]` entry as written in the configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Unique; the recurring run's display name.
    pub name: String,
    /// A pipeline this repository deploys (its KFP name).
    pub pipeline: String,
    /// Standard 5-field cron (`0 2 * * *`), KFP's 6-field form with seconds, or `@daily` etc.
    pub cron: Option<String>,
    /// A periodic trigger instead of cron: `6h`, `30m`, `1h30m`, `90s`, `1d`.
    pub every: Option<String>,
    /// Created when missing, never deleted (default `Default`).
    pub experiment: Option<String>,
    pub parameters: BTreeMap<String, Value>,
    /// `latest` (default: every run uses the pipeline's newest version) or `pinned` (the version
    /// the deploy uploaded; replaced whenever the pipeline gets a new version).
    pub version: Option<String>,
    pub max_concurrency: Option<i64>,
    pub enabled: Option<bool>,
    pub service_account: Option<String>,
    pub no_catchup: Option<bool>,
    /// RFC 3339.
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub description: Option<String>,
    pub pipeline_root: Option<String>,
}

/// What happens to a managed recurring run whose schedule left the configuration
/// (`[deploy] prune_schedules`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Prune {
    #[default]
    Delete,
    Disable,
}

impl Prune {
    pub fn parse(text: Option<&str>) -> anyhow::Result<Prune> {
        match text.map(str::trim) {
            None | Some("delete") => Ok(Prune::Delete),
            Some("disable") => Ok(Prune::Disable),
            Some(other) => anyhow::bail!(
                "[deploy] prune_schedules = {other:?}: use \"delete\" (default) or \"disable\""
            ),
        }
    }
}

/// A checked schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub name: String,
    pub pipeline: String,
    pub trigger: Trigger,
    pub experiment: String,
    pub parameters: BTreeMap<String, Value>,
    pub pinned: bool,
    pub max_concurrency: i64,
    pub enabled: bool,
    pub service_account: String,
    pub no_catchup: bool,
    pub description: String,
    pub pipeline_root: String,
}

/// Check every schedule against the configuration rules and the compiled pipelines
/// (`pipelines`: name → compiled spec, `None` when it failed to compile). `in_scope`: whether a
/// pipeline name missing from `pipelines` is an error (false when PATHs limit the run: such a
/// schedule is left alone). Returns the schedules to manage, or every problem found, each naming
/// the schedule and the key.
pub fn validate(
    configs: &[ScheduleConfig],
    pipelines: &BTreeMap<String, Option<Value>>,
    all_in_scope: bool,
    source: &str,
) -> Result<Vec<Schedule>, Vec<String>> {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, c) in configs.iter().enumerate() {
        let who = if c.name.trim().is_empty() {
            format!("{source}: [[schedules]] #{}", i + 1)
        } else {
            format!("{source}: schedule {:?}", c.name)
        };
        let mut err = |key: &str, msg: String| errors.push(format!("{who}: {key}: {msg}"));
        if c.name.trim().is_empty() {
            err(
                "name",
                "missing: every schedule needs a unique name (the recurring run's display name)"
                    .into(),
            );
        } else if c.name.contains('\n') || c.name.chars().count() > 128 {
            err("name", "must be one line of at most 128 characters".into());
        } else if !seen.insert(c.name.clone()) {
            err(
                "name",
                format!(
                    "{:?} is used by more than one schedule: names must be unique",
                    c.name
                ),
            );
        }
        let spec = match pipelines.get(&c.pipeline) {
            _ if c.pipeline.trim().is_empty() => {
                err(
                    "pipeline",
                    "missing: name the pipeline to run (a pipeline this repository deploys)".into(),
                );
                None
            }
            Some(spec) => spec.as_ref(),
            None if !all_in_scope => continue,
            None => {
                let known: Vec<&str> = pipelines.keys().map(String::as_str).collect();
                err(
                    "pipeline",
                    format!(
                        "{:?} is not a pipeline this repository deploys (known: {})",
                        c.pipeline,
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
                None
            }
        };
        let trigger = match (&c.cron, &c.every) {
            (Some(_), Some(_)) => {
                err("cron", "set either cron or every, not both".into());
                None
            }
            (None, None) => {
                err(
                    "cron",
                    "missing: set cron = \"0 2 * * *\" (standard 5 fields) or every = \"6h\""
                        .into(),
                );
                None
            }
            (Some(cron), None) => match kfp_api::runs::to_kfp_cron(cron) {
                Ok(kfp) => Some(Trigger {
                    cron_schedule: Some(CronSchedule {
                        cron: kfp,
                        start_time: c.start_time.clone(),
                        end_time: c.end_time.clone(),
                    }),
                    periodic_schedule: None,
                }),
                Err(e) => {
                    err(
                        "cron",
                        format!(
                            "{cron:?} is not a valid cron expression ({e}); write 5 fields `minute hour day-of-month month day-of-week` such as \"0 2 * * *\", or KFP's 6 fields starting with seconds"
                        ),
                    );
                    None
                }
            },
            (None, Some(every)) => match parse_every(every) {
                Some(secs) => Some(Trigger {
                    cron_schedule: None,
                    periodic_schedule: Some(PeriodicSchedule {
                        interval_second: Some(secs),
                        start_time: c.start_time.clone(),
                        end_time: c.end_time.clone(),
                    }),
                }),
                None => {
                    err(
                        "every",
                        format!(
                            "{every:?} is not a period: write e.g. \"6h\", \"30m\", \"1h30m\", \"1d\" (at least 1s)"
                        ),
                    );
                    None
                }
            },
        };
        for (key, value) in [("start_time", &c.start_time), ("end_time", &c.end_time)] {
            if let Some(t) = value
                && t.parse::<jiff::Timestamp>().is_err()
            {
                err(
                    key,
                    format!("{t:?} is not an RFC 3339 time such as \"2026-01-01T00:00:00Z\""),
                );
            }
        }
        let experiment = c
            .experiment
            .clone()
            .unwrap_or_else(|| DEFAULT_EXPERIMENT.to_string());
        if let Some(problem) = kfp_api::runs::experiment_name_problem(&experiment) {
            err(
                "experiment",
                format!("{experiment:?} would be refused by KFP: {problem}"),
            );
        }
        let pinned = match c.version.as_deref().map(str::trim) {
            None | Some("latest") => false,
            Some("pinned") => true,
            Some(other) => {
                err(
                    "version",
                    format!(
                        "{other:?}: use \"latest\" (every run uses the newest version) or \"pinned\" (the version this deploy uploaded)"
                    ),
                );
                false
            }
        };
        let max_concurrency = c.max_concurrency.unwrap_or(1);
        if !(1..=kfp_api::runs::limits::MAX_CONCURRENCY).contains(&max_concurrency) {
            err(
                "max_concurrency",
                format!("{max_concurrency}: KFP accepts 1 to 10"),
            );
        }
        if let Some(spec) = spec {
            for problem in parameter_problems(&c.pipeline, spec, &c.parameters) {
                err(&problem.0, problem.1);
            }
        }
        if let Some(trigger) = trigger {
            out.push(Schedule {
                name: c.name.clone(),
                pipeline: c.pipeline.clone(),
                trigger,
                experiment,
                parameters: c.parameters.clone(),
                pinned,
                max_concurrency,
                enabled: c.enabled.unwrap_or(true),
                service_account: c.service_account.clone().unwrap_or_default(),
                no_catchup: c.no_catchup.unwrap_or(false),
                description: c.description.clone().unwrap_or_default(),
                pipeline_root: c.pipeline_root.clone().unwrap_or_default(),
            });
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// `6h`, `30m`, `1h30m`, `90s`, `1d` → whole seconds (at least 1).
pub fn parse_every(text: &str) -> Option<i64> {
    let text = text.trim();
    let (days, rest) = match text.split_once('d') {
        Some((d, rest)) => (d.parse::<i64>().ok()?, rest),
        None => (0, text),
    };
    let rest_secs = if rest.is_empty() {
        0.0
    } else {
        kfp_api::runs::parse_go_duration(rest)?
    };
    let total = days * 86_400 + rest_secs as i64;
    (total >= 1 && rest_secs.fract() == 0.0).then_some(total)
}

/// Parameter problems as (key, message): undeclared, wrong type, required but missing.
pub fn parameter_problems(
    pipeline: &str,
    spec: &Value,
    params: &BTreeMap<String, Value>,
) -> Vec<(String, String)> {
    let declared = kfp_api::runs::root_parameters(spec);
    let listing = || {
        if declared.is_empty() {
            "it declares no parameters".to_string()
        } else {
            format!(
                "it declares: {}",
                declared
                    .iter()
                    .map(|(n, (t, _))| format!("{n}: {}", kfp_api::runs::type_label(t)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    };
    let mut out = Vec::new();
    for (name, value) in params {
        let key = format!("parameters.{name}");
        match declared.get(name) {
            None => out.push((
                key,
                format!(
                    "pipeline {pipeline} has no parameter {name:?} ({})",
                    listing()
                ),
            )),
            Some((ty, _)) => {
                let fits = match ty.as_str() {
                    // KFP would accept 2.5 for an int; the pipeline would then fail at run time.
                    "NUMBER_INTEGER" => value.as_i64().is_some() || value.as_u64().is_some(),
                    other => kfp_api::runs::value_fits(other, value),
                };
                if !fits {
                    out.push((
                        key,
                        format!(
                            "{value} is not a {}: pipeline {pipeline} declares {name}: {}",
                            kfp_api::runs::type_label(ty),
                            kfp_api::runs::type_label(ty)
                        ),
                    ));
                }
            }
        }
    }
    for (name, (ty, optional)) in &declared {
        if !optional && !params.contains_key(name) {
            out.push((
                "parameters".into(),
                format!(
                    "pipeline {pipeline} requires {name} ({}), which has no default: set parameters.{name}",
                    kfp_api::runs::type_label(ty)
                ),
            ));
        }
    }
    out
}

/// The schedules of a configuration, checked, with what the run may touch.
#[derive(Debug, Clone, Default)]
pub struct Configured {
    pub schedules: Vec<Schedule>,
    /// `[smoke]`, checked too (deploy turns it on with `--smoke` as well).
    pub smoke: crate::smoke::Smoke,
    /// The configuration file, for messages.
    pub source: String,
    /// Configured schedules outside this run's PATHs: left alone, never pruned.
    pub ignored: BTreeSet<String>,
    pub prune: Prune,
    /// Whether the configuration has a `[[schedules]]` list at all (nothing is pruned
    /// without one, so a repository that never used schedules never lists recurring runs).
    pub enabled: bool,
}

/// Check the configured schedules against the compiled pipelines (name → server-form spec,
/// `None` when it failed): every problem in one error (exit 2), before anything is applied.
pub fn check_config(
    loaded: &crate::settings::LoadedConfig,
    pipelines: &BTreeMap<String, Option<Value>>,
    all_in_scope: bool,
) -> anyhow::Result<Configured> {
    let config = &loaded.config;
    let prune = Prune::parse(config.deploy.prune_schedules.as_deref())?;
    let source = loaded
        .path
        .as_ref()
        .map(|p| {
            p.strip_prefix(&loaded.root)
                .unwrap_or(p)
                .display()
                .to_string()
        })
        .unwrap_or_else(|| "configuration".into());
    let configs = config.schedules.as_deref().unwrap_or_default();
    let checked = validate(configs, pipelines, all_in_scope, &source);
    let smoke = crate::smoke::check_config(
        config.smoke.as_ref(),
        false,
        pipelines,
        all_in_scope,
        &source,
    );
    let schedules = match (checked, smoke) {
        (Ok(schedules), Ok(smoke)) => (schedules, smoke),
        (checked, smoke) => {
            let mut errors = checked.err().unwrap_or_default();
            if let Err(e) = smoke {
                errors.push(e.to_string());
            }
            anyhow::bail!("{}", errors.join("\n"));
        }
    };
    let (schedules, smoke) = schedules;
    let managed: BTreeSet<&str> = schedules.iter().map(|s| s.name.as_str()).collect();
    let ignored = configs
        .iter()
        .filter(|c| !managed.contains(c.name.as_str()))
        .map(|c| c.name.clone())
        .collect();
    Ok(Configured {
        schedules,
        smoke,
        source,
        ignored,
        prune,
        enabled: config.schedules.is_some() || config.deploy.prune_schedules.is_some(),
    })
}

/// Name → compiled spec (server form) of planned pipelines; `None` when one failed.
pub fn specs_of(items: &[crate::plan::PlanItem]) -> BTreeMap<String, Option<Value>> {
    items
        .iter()
        .map(|i| {
            let spec = i
                .spec
                .as_ref()
                .and_then(|s| serde_json::from_str::<Value>(&s.canonical).ok());
            (i.name.clone(), spec)
        })
        .collect()
}

/// A compiled YAML in the server's form (what root inputs are read from).
pub fn spec_value(yaml: &str) -> Option<Value> {
    kfp_api::spec::parse_spec(yaml)
        .ok()
        .map(|docs| kfp_api::spec::server_form(&docs))
}

// ---------------------------------------------------------------- reconciling

/// One schedule's line in the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScheduleReport {
    pub name: String,
    pub pipeline: String,
    /// `create`, `replace`, `enable`, `disable`, `delete`, `unchanged`, `skipped`, `error`.
    pub action: String,
    pub status: Status,
    /// What differs, or why.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The recurring run that now stands for the schedule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recurring_run_id: Option<String>,
    /// Recurring runs deleted (replaced, duplicates, pruned).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ScheduleReport {
    pub fn changes(&self) -> bool {
        !matches!(self.action.as_str(), "unchanged" | "skipped" | "error")
    }
    pub fn failed(&self) -> bool {
        self.status == Status::Failed
    }
}

/// The marker of a managed recurring run: (schedule name, settings hash).
pub fn marker(description: &str) -> Option<(String, String)> {
    let line = description.lines().rev().find(|l| l.starts_with(MARKER))?;
    let v: Value = serde_json::from_str(&line[MARKER.len()..]).ok()?;
    Some((
        v.get("schedule")?.as_str()?.to_string(),
        v.get("settings")?.as_str()?.to_string(),
    ))
}

fn with_marker(description: &str, name: &str, hash: &str) -> String {
    let line = format!("{MARKER}{}", json!({"schedule": name, "settings": hash}));
    if description.is_empty() {
        line
    } else {
        format!("{description}\n{line}")
    }
}

/// Where a schedule's pipeline stands for this run.
#[derive(Debug, Clone, Default)]
pub struct PipelineState {
    pub pipeline_id: Option<String>,
    /// For pinned schedules: the version to point at; `None` when it is not known yet (plan
    /// with a new version coming).
    pub version_id: Option<String>,
    /// The pipeline gets a new version in this run.
    pub changes: bool,
    /// It failed to compile, plan or upload: its schedules are left alone.
    pub failed: bool,
}

/// The settings kfp-ci compares, as short texts (for "what differs") and as the hash input.
fn desired_view(
    s: &Schedule,
    pipeline: &PipelineState,
    experiment_id: Option<&str>,
) -> BTreeMap<&'static str, String> {
    let mut m = BTreeMap::new();
    m.insert("trigger", trigger_label(&s.trigger));
    m.insert(
        "pipeline",
        pipeline
            .pipeline_id
            .clone()
            .unwrap_or_else(|| "(new pipeline)".into()),
    );
    m.insert(
        "version",
        if s.pinned {
            pipeline
                .version_id
                .clone()
                .unwrap_or_else(|| "(the version this deploy uploads)".into())
        } else {
            "latest".into()
        },
    );
    m.insert(
        "experiment",
        experiment_id.map_or_else(|| format!("{} (new)", s.experiment), str::to_string),
    );
    m.insert("parameters", params_text(&s.parameters));
    m.insert("max_concurrency", s.max_concurrency.to_string());
    m.insert("service_account", s.service_account.clone());
    m.insert("no_catchup", s.no_catchup.to_string());
    m.insert("description", s.description.clone());
    m.insert("pipeline_root", s.pipeline_root.clone());
    m
}

fn existing_view(rr: &RecurringRun) -> BTreeMap<&'static str, String> {
    let mut m = BTreeMap::new();
    m.insert(
        "trigger",
        rr.trigger.as_ref().map(trigger_label).unwrap_or_default(),
    );
    let reference = rr.pipeline_version_reference.clone().unwrap_or_default();
    m.insert("pipeline", reference.pipeline_id.clone());
    m.insert(
        "version",
        if reference.pipeline_version_id.is_empty() {
            "latest".into()
        } else {
            reference.pipeline_version_id
        },
    );
    m.insert("experiment", rr.experiment_id.clone());
    let config = rr.runtime_config.clone().unwrap_or_default();
    m.insert("parameters", params_text(&config.parameters));
    m.insert(
        "max_concurrency",
        rr.max_concurrency.unwrap_or(1).to_string(),
    );
    m.insert("service_account", rr.service_account.clone());
    m.insert("no_catchup", rr.no_catchup.to_string());
    let description = rr
        .description
        .lines()
        .filter(|l| !l.starts_with(MARKER))
        .collect::<Vec<_>>()
        .join("\n");
    m.insert("description", description);
    m.insert("pipeline_root", config.pipeline_root);
    m
}

fn trigger_label(t: &Trigger) -> String {
    let mut s = match (&t.cron_schedule, &t.periodic_schedule) {
        (Some(c), _) => format!("cron {}", c.cron),
        (_, Some(p)) => format!("every {}s", p.interval_second.unwrap_or(0)),
        _ => String::new(),
    };
    let (start, end) = match (&t.cron_schedule, &t.periodic_schedule) {
        (Some(c), _) => (c.start_time.clone(), c.end_time.clone()),
        (_, Some(p)) => (p.start_time.clone(), p.end_time.clone()),
        _ => (None, None),
    };
    let norm = |t: Option<String>| t.and_then(|t| t.parse::<jiff::Timestamp>().ok());
    if let Some(t) = norm(start) {
        s.push_str(&format!(" from {t}"));
    }
    if let Some(t) = norm(end) {
        s.push_str(&format!(" until {t}"));
    }
    s
}

fn params_text(params: &BTreeMap<String, Value>) -> String {
    let v = serde_json::to_value(params).unwrap_or(Value::Null);
    kfp_api::spec::canonical_json(&kfp_api::spec::numbers_as_doubles(v))
}

fn settings_hash(view: &BTreeMap<&'static str, String>, pipeline_name: &str) -> String {
    let mut v = serde_json::to_value(view).unwrap_or(Value::Null);
    if let Some(m) = v.as_object_mut() {
        m.insert("pipeline_name".into(), Value::from(pipeline_name));
    }
    let full = kfp_api::spec::spec_hash(&v);
    full.rsplit('-').next().unwrap_or(&full)[..16.min(full.len())].to_string()
}

fn differences(
    old: &BTreeMap<&'static str, String>,
    new: &BTreeMap<&'static str, String>,
) -> String {
    let diffs: Vec<String> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, v)| {
            let o = old.get(k).cloned().unwrap_or_default();
            let show = |s: &str| {
                if s.is_empty() {
                    "(none)".to_string()
                } else {
                    s.to_string()
                }
            };
            format!("{k}: {} → {}", show(&o), show(v))
        })
        .collect();
    if diffs.is_empty() {
        "settings changed".into()
    } else {
        diffs.join("; ")
    }
}

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
    // Without `[[schedules]]` (or `schedules = []`) kfp-ci leaves recurring runs alone.
    if !configured.enabled {
        return Vec::new();
    }
    let all = match client.all_recurring_runs(namespace).await {
        Ok(all) => all,
        Err(e) => return vec![listing_error(&e)],
    };
    if let Err(e) = resolve_pinned(client, schedules, &mut states).await {
        return vec![listing_error(&e)];
    }
    let by_name = managed(all);
    let mut experiments: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut out = Vec::new();
    for s in schedules {
        let state = states.get(&s.pipeline).cloned().unwrap_or_default();
        let mut row = ScheduleReport {
            name: s.name.clone(),
            pipeline: s.pipeline.clone(),
            status: Status::Planned,
            ..Default::default()
        };
        if state.failed {
            row.action = "skipped".into();
            row.status = Status::Skipped;
            row.reason = format!(
                "pipeline {} failed: its recurring run is left as it is",
                s.pipeline
            );
            out.push(row);
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
    if !configured.enabled {
        return Vec::new();
    }
    let all = match client.all_recurring_runs(namespace).await {
        Ok(all) => all,
        Err(e) => return vec![listing_error(&e)],
    };
    if let Err(e) = resolve_pinned(client, schedules, &mut states).await {
        return vec![listing_error(&e)];
    }
    let by_name = managed(all);
    let mut out = Vec::new();
    for s in schedules {
        let state = states.get(&s.pipeline).cloned().unwrap_or_default();
        let existing = by_name.get(&s.name).cloned().unwrap_or_default();
        let mut row = ScheduleReport {
            name: s.name.clone(),
            pipeline: s.pipeline.clone(),
            status: Status::Done,
            ..Default::default()
        };
        if state.failed || state.pipeline_id.is_none() || (s.pinned && state.version_id.is_none()) {
            row.action = "skipped".into();
            row.status = Status::Skipped;
            row.reason = format!(
                "pipeline {} was not deployed: its recurring run is left as it is",
                s.pipeline
            );
            out.push(row);
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

/// The schedules' lines for the stderr table.
pub fn render(rows: &[ScheduleReport], applied: bool) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nSCHEDULE  ACTION  STATUS  DETAIL\n");
    let mut table: Vec<[String; 4]> = vec![[
        "SCHEDULE".into(),
        "ACTION".into(),
        if applied { "STATUS" } else { "" }.into(),
        "DETAIL".into(),
    ]];
    for r in rows {
        let detail = match (&r.error, &r.recurring_run_id) {
            (Some(e), _) => e.clone(),
            (None, Some(id)) if applied && r.reason.is_empty() => id.clone(),
            (None, Some(id)) if applied => format!("{} ({id})", r.reason),
            _ => r.reason.clone(),
        };
        table.push([
            r.name.clone(),
            r.action.clone(),
            if applied {
                r.status.label().into()
            } else {
                String::new()
            },
            detail,
        ]);
    }
    out.clear();
    out.push('\n');
    let widths: Vec<usize> = (0..3)
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &table {
        let mut line = String::new();
        for (i, w) in widths.iter().enumerate() {
            if *w > 0 {
                line.push_str(&format!("{:<w$}  ", row[i], w = *w));
            }
        }
        line.push_str(&row[3]);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Value {
        json!({"root": {"inputDefinitions": {"parameters": {
            "promote_threshold": {"parameterType": "NUMBER_DOUBLE", "defaultValue": 0.8},
            "epochs": {"parameterType": "NUMBER_INTEGER", "defaultValue": 3},
        }}}})
    }

    fn config(toml_text: &str) -> Vec<ScheduleConfig> {
        #[derive(Deserialize)]
        struct W {
            schedules: Vec<ScheduleConfig>,
        }
        toml::from_str::<W>(toml_text).expect("toml").schedules
    }

    fn pipelines() -> BTreeMap<String, Option<Value>> {
        BTreeMap::from([("eval".to_string(), Some(spec()))])
    }

    #[test]
    fn valid_schedule() {
        let c = config(
            r#"[[schedules]]
name = "nightly"
pipeline = "eval"
cron = "0 2 * * *"
experiment = "nightly"
parameters = { promote_threshold = 0.9, epochs = 5 }
version = "pinned"
"#,
        );
        let s = validate(&c, &pipelines(), true, "kfp-ci.toml").expect("valid");
        assert_eq!(
            s[0].trigger.cron_schedule.as_ref().map(|c| c.cron.as_str()),
            Some("0 0 2 * * *")
        );
        assert!(s[0].pinned && s[0].enabled);
    }

    #[test]
    fn errors_name_schedule_and_key() {
        let c = config(
            r#"[[schedules]]
name = "a"
pipeline = "nope"
cron = "0 2 * * *"

[[schedules]]
name = "b"
pipeline = "eval"
cron = "0 25 * * *"

[[schedules]]
name = "c"
pipeline = "eval"
every = "6h"
parameters = { promote_threshold = "high", bogus = 1, epochs = 2.5 }
experiment = ""
max_concurrency = 0
"#,
        );
        let errs = validate(&c, &pipelines(), true, "kfp-ci.toml").expect_err("errors");
        let all = errs.join("\n");
        for needle in [
            "schedule \"a\": pipeline: \"nope\" is not a pipeline",
            "schedule \"b\": cron: \"0 25 * * *\"",
            "schedule \"c\": parameters.promote_threshold: \"high\" is not a float",
            "schedule \"c\": parameters.bogus: pipeline eval has no parameter \"bogus\"",
            "schedule \"c\": parameters.epochs: 2.5 is not a int",
            "schedule \"c\": experiment:",
            "schedule \"c\": max_concurrency: 0",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
        // Outside the run's scope: left alone, no error.
        let c = config("[[schedules]]\nname = \"a\"\npipeline = \"other\"\ncron = \"@daily\"\n");
        assert_eq!(validate(&c, &pipelines(), false, "f").expect("ok").len(), 0);
    }

    #[test]
    fn every_periods() {
        assert_eq!(parse_every("6h"), Some(21_600));
        assert_eq!(parse_every("1d"), Some(86_400));
        assert_eq!(parse_every("1h30m"), Some(5_400));
        assert_eq!(parse_every("0s"), None);
        assert_eq!(parse_every("soon"), None);
    }

    #[test]
    fn marker_round_trip() {
        let d = with_marker("nightly eval", "nightly \"x\"", "abc");
        assert_eq!(marker(&d), Some(("nightly \"x\"".into(), "abc".into())));
        assert_eq!(marker("made by hand"), None);
    }
}
