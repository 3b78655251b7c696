//! `[[schedules]]` and `[smoke]` as written in the configuration file; checked by
//! [`crate::schedules`] and [`crate::smoke`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

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

/// `[smoke]` as written in the configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SmokeConfig {
    /// Pipelines to smoke-test when created or changed; `["*"]` (default) for all of them.
    pub pipelines: Option<Vec<String>>,
    pub experiment: Option<String>,
    /// Parameters per pipeline: `parameters.NAME = { key = value }`.
    pub parameters: BTreeMap<String, BTreeMap<String, Value>>,
    /// `30m` (default), `90s`, `1h`; `0` starts the runs without waiting.
    pub wait: Option<String>,
}
