//! What a run of a pipeline may be given, shared by schedules and smoke runs: parameters
//! checked against the compiled spec, `every`/`wait` durations.

use std::collections::BTreeMap;

use serde_json::Value;

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

/// The experiment runs go to (`default` when none is configured), and why KFP would refuse its
/// name, if it would.
pub fn experiment(configured: Option<&str>, default: &str) -> (String, Option<String>) {
    let experiment = configured.unwrap_or(default).to_string();
    let problem = kfp_api::runs::experiment_name_problem(&experiment)
        .map(|problem| format!("{experiment:?} would be refused by KFP: {problem}"));
    (experiment, problem)
}
