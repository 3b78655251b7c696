//! Experiments, runs and recurring runs (KFP v2beta1): JSON shapes as grpc-gateway emits them,
//! and the checks the server applies to them (cron syntax, run parameters against the pipeline's
//! root inputs, experiment names). Shared by `kfp-ci serve` and the `kfp-ci` client.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::wire::{RpcStatus, is_empty_str, list_response};

fn is_false(b: &bool) -> bool {
    !*b
}

/// int64 fields as protojson writes them (moved to [`crate::protojson`]).
pub use crate::protojson::int64;

/// `v2beta1Experiment`. The display name is the identity (unique per namespace).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Experiment {
    #[serde(skip_serializing_if = "is_empty_str")]
    pub experiment_id: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    pub display_name: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "is_empty_str")]
    pub namespace: String,
    /// `AVAILABLE` or `ARCHIVED`.
    #[serde(skip_serializing_if = "is_empty_str")]
    pub storage_state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run_created_at: Option<String>,
}

list_response! {
    ListExperimentsResponse { experiments: Experiment }
}

/// A pipeline version to run. An empty `pipeline_version_id` means the pipeline's latest
/// version: resolved once when a run is created; for a recurring run, at every trigger
/// (KFP 2.5.0 and later; older servers refuse it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PipelineVersionReference {
    #[serde(skip_serializing_if = "is_empty_str")]
    pub pipeline_id: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    pub pipeline_version_id: String,
}

/// `v2beta1RuntimeConfig`: the run's parameter values (a protobuf Struct) and pipeline root.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RuntimeConfig {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, Value>,
    #[serde(skip_serializing_if = "is_empty_str")]
    pub pipeline_root: String,
}

impl RuntimeConfig {
    pub fn is_empty(&self) -> bool {
        self.parameters.is_empty() && self.pipeline_root.is_empty()
    }
}

/// `v2beta1RuntimeStatus`: one entry of a run's state history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RuntimeStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_time: Option<String>,
    #[serde(skip_serializing_if = "is_empty_str")]
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcStatus>,
}

/// Run states (`v2beta1RuntimeState`) after which a run does not change any more.
pub const FINAL_STATES: &[&str] = &["SUCCEEDED", "SKIPPED", "FAILED", "CANCELED"];

/// `v2beta1Run`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Run {
    #[serde(skip_serializing_if = "is_empty_str")]
    pub experiment_id: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    pub run_id: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    pub display_name: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    pub storage_state: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    pub description: String,
    /// Deprecated input; read, never written.
    #[serde(skip_serializing_if = "is_empty_str")]
    pub pipeline_version_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_spec: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_version_reference: Option<PipelineVersionReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_config: Option<RuntimeConfig>,
    #[serde(skip_serializing_if = "is_empty_str")]
    pub service_account: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// `PENDING`, `RUNNING`, `SUCCEEDED`, `SKIPPED`, `FAILED`, `CANCELING`, `CANCELED`, `PAUSED`.
    #[serde(skip_serializing_if = "is_empty_str")]
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcStatus>,
    #[serde(skip_serializing_if = "is_empty_str")]
    pub recurring_run_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub state_history: Vec<RuntimeStatus>,
}

impl Run {
    /// Whether the run reached a state it does not leave.
    pub fn is_final(&self) -> bool {
        FINAL_STATES.contains(&self.state.as_str())
    }
}

list_response! {
    ListRunsResponse { runs: Run }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CronSchedule {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    #[serde(skip_serializing_if = "is_empty_str")]
    pub cron: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PeriodicSchedule {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    #[serde(with = "int64", skip_serializing_if = "Option::is_none")]
    pub interval_second: Option<i64>,
}

/// `v2beta1Trigger`: one of the two.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Trigger {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cron_schedule: Option<CronSchedule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub periodic_schedule: Option<PeriodicSchedule>,
}

/// `v2beta1RecurringRun`. There is no update call: a recurring run is created, enabled,
/// disabled or deleted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RecurringRun {
    #[serde(skip_serializing_if = "is_empty_str")]
    pub recurring_run_id: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    pub display_name: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_spec: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_version_reference: Option<PipelineVersionReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_config: Option<RuntimeConfig>,
    #[serde(skip_serializing_if = "is_empty_str")]
    pub service_account: String,
    #[serde(with = "int64", skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// Input: `ENABLE` or `DISABLE` (the server echoes it).
    #[serde(skip_serializing_if = "is_empty_str")]
    pub mode: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// Output: `ENABLED` or `DISABLED`.
    #[serde(skip_serializing_if = "is_empty_str")]
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcStatus>,
    #[serde(skip_serializing_if = "is_false")]
    pub no_catchup: bool,
    #[serde(skip_serializing_if = "is_empty_str")]
    pub namespace: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    pub experiment_id: String,
}

impl RecurringRun {
    pub fn enabled(&self) -> bool {
        self.status == "ENABLED" || (self.status.is_empty() && self.mode == "ENABLE")
    }
}

list_response! {
    /// The list key is `recurringRuns` (the proto field's own spelling), unlike the other lists.
    ListRecurringRunsResponse {
        #[serde(rename = "recurringRuns", alias = "recurring_runs")]
        recurring_runs: RecurringRun
    }
}

/// Limits of the 2.17.0 server for these resources.
pub mod limits {
    /// Experiment names (the display name) are at most 128 characters, non-empty.
    pub const MAX_EXPERIMENT_NAME: usize = 128;
    /// `max_concurrency` of a recurring run is 1..=10.
    pub const MAX_CONCURRENCY: i64 = 10;
}

/// Why KFP would refuse this experiment name, if it would.
pub fn experiment_name_problem(name: &str) -> Option<String> {
    if name.trim().is_empty() {
        return Some("Experiment must have a non-empty name".into());
    }
    let n = name.chars().count();
    if n > limits::MAX_EXPERIMENT_NAME {
        return Some(format!(
            "Experiment.Name length cannot exceed {} (got {n})",
            limits::MAX_EXPERIMENT_NAME
        ));
    }
    None
}

/// Check a cron expression the way the KFP server parses it (robfig/cron v1 `cron.Parse`):
/// six fields `second minute hour day-of-month month day-of-week` (day-of-week may be left out),
/// or a descriptor (`@daily`, `@every 1h30m`, …). Beware: a standard five-field cron is read
/// by the server with a leading *seconds* field; see [`to_kfp_cron`].
pub fn check_kfp_cron(expr: &str) -> Result<(), String> {
    let expr = expr.trim();
    if let Some(desc) = expr.strip_prefix('@') {
        return match desc {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => {
                Ok(())
            }
            _ => match desc.strip_prefix("every ") {
                Some(d) => parse_go_duration(d.trim())
                    .map(|_| ())
                    .ok_or_else(|| format!("@every: {d:?} is not a duration such as 1h30m")),
                None => Err(format!("unrecognized descriptor: @{desc}")),
            },
        };
    }
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if !(5..=6).contains(&fields.len()) {
        return Err(format!(
            "expected 5 to 6 fields (seconds minutes hours day-of-month month [day-of-week]), found {}: {expr:?}",
            fields.len()
        ));
    }
    const BOUNDS: [(&str, u32, u32); 6] = [
        ("seconds", 0, 59),
        ("minutes", 0, 59),
        ("hours", 0, 23),
        ("day-of-month", 1, 31),
        ("month", 1, 12),
        ("day-of-week", 0, 6),
    ];
    for (field, (what, lo, hi)) in fields.iter().zip(BOUNDS) {
        check_cron_field(field, what, lo, hi)?;
    }
    Ok(())
}

/// A cron expression as written in kfp-ci configuration, in the server's form: five fields are
/// standard cron (`minute hour day-of-month month day-of-week`) and get a `0` seconds field in
/// front; six fields and descriptors are KFP's own form and stay as they are.
pub fn to_kfp_cron(expr: &str) -> Result<String, String> {
    let expr = expr.trim();
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let kfp = if !expr.starts_with('@') && fields.len() == 5 {
        format!("0 {}", fields.join(" "))
    } else {
        fields.join(" ")
    };
    check_kfp_cron(&kfp).map(|()| kfp)
}

fn check_cron_field(field: &str, what: &str, lo: u32, hi: u32) -> Result<(), String> {
    let names: &[&str] = match what {
        "month" => &[
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ],
        "day-of-week" => &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
        _ => &[],
    };
    let value = |text: &str| -> Result<u32, String> {
        if let Ok(n) = text.parse::<u32>() {
            return Ok(n);
        }
        let lower = text.to_ascii_lowercase();
        names
            .iter()
            .position(|n| *n == lower)
            .map(|i| i as u32 + if what == "month" { 1 } else { 0 })
            .ok_or_else(|| format!("{what}: {text:?} is not a number"))
    };
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| format!("{what}: step {s:?} is not a number"))?;
                if step == 0 {
                    return Err(format!("{what}: step of zero in {part:?}"));
                }
                (r, Some(step))
            }
            None => (part, None),
        };
        if range == "*" || (range == "?" && matches!(what, "day-of-month" | "day-of-week")) {
            continue;
        }
        let (a, b) = match range.split_once('-') {
            Some((a, b)) => (value(a)?, value(b)?),
            None => {
                let a = value(range)?;
                (a, if step.is_some() { hi } else { a })
            }
        };
        if a < lo || b > hi {
            return Err(format!(
                "{what}: {part:?} is outside {lo}-{hi} in this position"
            ));
        }
        if a > b {
            return Err(format!("{what}: {part:?} starts after it ends"));
        }
    }
    Ok(())
}

/// Go's `time.ParseDuration` for the units a schedule needs (`h`, `m`, `s`, `ms`), in seconds.
pub fn parse_go_duration(text: &str) -> Option<f64> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        total += n * factor;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// The root input parameters of a stored or compiled spec: name → (type, has a default or is
/// optional). Accepts the bare PipelineSpec or the `{pipeline_spec, platform_spec}` form.
pub fn root_parameters(spec: &Value) -> BTreeMap<String, (String, bool)> {
    let spec = spec.get("pipeline_spec").unwrap_or(spec);
    let mut out = BTreeMap::new();
    if let Some(params) = spec
        .pointer("/root/inputDefinitions/parameters")
        .and_then(Value::as_object)
    {
        for (name, p) in params {
            let ty = p
                .get("parameterType")
                .and_then(Value::as_str)
                .unwrap_or("PARAMETER_TYPE_ENUM_UNSPECIFIED")
                .to_string();
            let optional = p.get("defaultValue").is_some()
                || p.get("isOptional").and_then(Value::as_bool) == Some(true);
            out.insert(name.clone(), (ty, optional));
        }
    }
    out
}

/// Whether `value` fits a root parameter of type `ty`, as the server checks it.
pub fn value_fits(ty: &str, value: &Value) -> bool {
    match ty {
        "NUMBER_DOUBLE" => value.is_number(),
        // The server accepts any number for an integer; kfp-ci is stricter where it checks.
        "NUMBER_INTEGER" => value.is_number(),
        "STRING" => value.is_string(),
        "BOOLEAN" => value.is_boolean(),
        "LIST" => value.is_array(),
        "STRUCT" => value.is_object(),
        _ => false,
    }
}

/// A readable name of a root parameter type.
pub fn type_label(ty: &str) -> &str {
    match ty {
        "NUMBER_DOUBLE" => "float",
        "NUMBER_INTEGER" => "int",
        "STRING" => "str",
        "BOOLEAN" => "bool",
        "LIST" => "list",
        "STRUCT" => "dict",
        other => other,
    }
}

/// The checks the 2.17.0 server makes on a run's (or recurring run's) parameters against the
/// pipeline's root inputs: required ones present, types right, nothing undeclared.
pub fn check_parameters(spec: &Value, params: &BTreeMap<String, Value>) -> Result<(), String> {
    let declared = root_parameters(spec);
    for (name, (ty, optional)) in &declared {
        match params.get(name) {
            None if !optional => {
                return Err(format!(
                    "parameter {name} is not optional, yet has neither default value nor user provided value"
                ));
            }
            None => {}
            Some(v) if !value_fits(ty, v) => {
                return Err(format!(
                    "input parameter {name} requires type {}, but the parameter value {v} is not of that type",
                    type_label(ty)
                ));
            }
            Some(_) => {}
        }
    }
    let extra: Vec<&str> = params
        .keys()
        .filter(|k| !declared.contains_key(*k))
        .map(String::as_str)
        .collect();
    if !extra.is_empty() {
        return Err(format!(
            "parameter(s) provided are not required by pipeline: {}",
            extra.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn int64_fields_are_strings_out_and_either_in() {
        let rr = RecurringRun {
            max_concurrency: Some(2),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&rr).unwrap_or_default(),
            r#"{"max_concurrency":"2"}"#
        );
        for text in [r#"{"max_concurrency":3}"#, r#"{"max_concurrency":"3"}"#] {
            let rr: RecurringRun = serde_json::from_str(text).expect("parses");
            assert_eq!(rr.max_concurrency, Some(3));
        }
        let list: ListRecurringRunsResponse =
            serde_json::from_str(r#"{"recurringRuns":[{"display_name":"a"}],"total_size":1}"#)
                .expect("parses");
        assert_eq!(list.recurring_runs[0].display_name, "a");
    }

    #[test]
    fn cron_forms() {
        assert_eq!(to_kfp_cron("0 2 * * *").as_deref(), Ok("0 0 2 * * *"));
        assert_eq!(to_kfp_cron("0 0 9 ? * 2-6").as_deref(), Ok("0 0 9 ? * 2-6"));
        assert_eq!(
            to_kfp_cron("*/15 * * * MON-FRI").as_deref(),
            Ok("0 */15 * * * MON-FRI")
        );
        assert!(to_kfp_cron("@daily").is_ok());
        assert!(to_kfp_cron("@every 6h").is_ok());
        assert!(to_kfp_cron("61 * * * *").is_err());
        assert!(to_kfp_cron("* * * *").is_err());
        assert!(to_kfp_cron("0 25 * * *").is_err());
        assert!(to_kfp_cron("@sometimes").is_err());
        assert!(
            check_kfp_cron("0 2 * * *").is_ok(),
            "five fields: KFP reads seconds first"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_go_duration("1h30m"), Some(5400.0));
        assert_eq!(parse_go_duration("6h"), Some(21600.0));
        assert_eq!(parse_go_duration("6"), None);
        assert_eq!(parse_go_duration("1d"), None);
    }

    #[test]
    fn parameters_checked_like_the_server() {
        let spec = json!({"root": {"inputDefinitions": {"parameters": {
            "x": {"parameterType": "NUMBER_DOUBLE", "defaultValue": 1.5},
            "name": {"parameterType": "STRING"},
        }}}});
        let p = |v: Value| -> BTreeMap<String, Value> { serde_json::from_value(v).expect("map") };
        assert!(check_parameters(&spec, &p(json!({"name": "a"}))).is_ok());
        assert!(check_parameters(&spec, &p(json!({"x": 2, "name": "a"}))).is_ok());
        let missing = check_parameters(&spec, &p(json!({}))).expect_err("missing");
        assert!(missing.contains("name"), "{missing}");
        let ty = check_parameters(&spec, &p(json!({"name": 3}))).expect_err("type");
        assert!(ty.contains("str"), "{ty}");
        let extra = check_parameters(&spec, &p(json!({"name": "a", "y": 1}))).expect_err("extra");
        assert!(extra.contains("not required by pipeline: y"), "{extra}");
        let wrapped = json!({"pipeline_spec": spec, "platform_spec": {}});
        assert_eq!(root_parameters(&wrapped).len(), 2);
    }

    #[test]
    fn experiment_names() {
        assert!(experiment_name_problem("nightly").is_none());
        assert!(experiment_name_problem("").is_some());
        assert!(experiment_name_problem(&"x".repeat(129)).is_some());
    }
}
