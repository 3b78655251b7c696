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

use kfp_api::runs::Trigger;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::row::Status;

mod reconcile;
mod validate;
mod view;

pub use crate::run_params::{parameter_problems, parse_every};
pub use crate::settings::ScheduleConfig;
pub use reconcile::{deploy, pipeline_states, plan};
pub use validate::validate;
pub use view::marker;

/// The experiment schedules and smoke runs use when none is configured (KFP's default one).
pub const DEFAULT_EXPERIMENT: &str = "Default";

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
        .map(|i| (i.name.clone(), i.spec.as_ref().map(|s| s.value.clone())))
        .collect()
}

/// A compiled YAML in the server's form (what root inputs are read from).
pub fn spec_value(yaml: &str) -> Option<Value> {
    kfp_api::spec::parse_spec(yaml)
        .ok()
        .map(|docs| kfp_api::spec::server_form(&docs))
}

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
    use serde_json::json;

    use super::view::with_marker;
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
