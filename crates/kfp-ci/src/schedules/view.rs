//! The settings of a recurring run as kfp-ci compares them, and the marker line that makes it
//! a managed one.

use std::collections::BTreeMap;

use kfp_api::runs::{RecurringRun, Trigger};
use serde_json::{Value, json};

use super::{PipelineState, Schedule};

/// Prefix of the marker line in a managed recurring run's description.
const MARKER: &str = "kfp-ci:";

/// The marker of a managed recurring run: (schedule name, settings hash).
pub fn marker(description: &str) -> Option<(String, String)> {
    let line = description.lines().rev().find(|l| l.starts_with(MARKER))?;
    let v: Value = serde_json::from_str(&line[MARKER.len()..]).ok()?;
    Some((
        v.get("schedule")?.as_str()?.to_string(),
        v.get("settings")?.as_str()?.to_string(),
    ))
}

pub(super) fn with_marker(description: &str, name: &str, hash: &str) -> String {
    let line = format!("{MARKER}{}", json!({"schedule": name, "settings": hash}));
    if description.is_empty() {
        line
    } else {
        format!("{description}\n{line}")
    }
}

/// The settings kfp-ci compares, as short texts (for "what differs") and as the hash input.
pub(super) fn desired_view(
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

pub(super) fn existing_view(rr: &RecurringRun) -> BTreeMap<&'static str, String> {
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

pub(super) fn trigger_label(t: &Trigger) -> String {
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

pub(super) fn params_text(params: &BTreeMap<String, Value>) -> String {
    let v = serde_json::to_value(params).unwrap_or(Value::Null);
    kfp_api::spec::canonical_json(&kfp_api::spec::numbers_as_doubles(v))
}

pub(super) fn settings_hash(view: &BTreeMap<&'static str, String>, pipeline_name: &str) -> String {
    let mut v = serde_json::to_value(view).unwrap_or(Value::Null);
    if let Some(m) = v.as_object_mut() {
        m.insert("pipeline_name".into(), Value::from(pipeline_name));
    }
    let full = kfp_api::spec::spec_hash(&v);
    full.rsplit('-').next().unwrap_or(&full)[..16.min(full.len())].to_string()
}

pub(super) fn differences(
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
