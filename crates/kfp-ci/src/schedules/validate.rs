//! `[[schedules]]` entries checked against the configuration rules and the compiled pipelines.

use std::collections::{BTreeMap, BTreeSet};

use kfp_api::runs::{CronSchedule, PeriodicSchedule, Trigger};
use serde_json::Value;

use super::{DEFAULT_EXPERIMENT, Schedule, ScheduleConfig, parameter_problems, parse_every};

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
        let (experiment, problem) =
            crate::run_params::experiment(c.experiment.as_deref(), DEFAULT_EXPERIMENT);
        if let Some(problem) = problem {
            err("experiment", problem);
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
