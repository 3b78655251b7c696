//! Smoke runs (`deploy --smoke` or `[smoke]`): one run per selected pipeline that this deploy
//! created or gave a new version, started right after the upload, then waited for (bounded by
//! `wait`) with progress lines on stderr. A run that fails or does not finish in time fails the
//! deploy (exit 1). Runs are never terminated by kfp-ci: after a timeout or Ctrl-C they go on on
//! the server.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kfp_api::runs::{PipelineVersionReference, Run, RuntimeConfig};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::Client;
use crate::report::{Action, PipelineReport, Report, Status};
pub use crate::settings::SmokeConfig;

/// Experiment of smoke runs unless `[smoke] experiment` says otherwise.
pub const DEFAULT_EXPERIMENT: &str = "kfp-ci-smoke";
/// How long to wait unless `[smoke] wait` says otherwise.
pub const DEFAULT_WAIT: &str = "30m";

/// Checked smoke settings.
#[derive(Debug, Clone, Default)]
pub struct Smoke {
    pub enabled: bool,
    /// `None`: every pipeline.
    pub pipelines: Option<Vec<String>>,
    pub experiment: String,
    pub parameters: BTreeMap<String, BTreeMap<String, Value>>,
    pub wait: Duration,
}

/// One smoke run in the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SmokeReport {
    pub pipeline: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The run's last state (`SUCCEEDED`, `FAILED`, …), `TIMED_OUT` when the wait ended first,
    /// `INTERRUPTED` on Ctrl-C, `NOT_STARTED` when it could not be created.
    pub state: String,
    /// Link to the run in the KFP UI, when `ui_url` is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub waited_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl SmokeReport {
    /// Anything but a success (or a run deliberately not waited for) fails the deploy.
    pub fn failed(&self) -> bool {
        !matches!(self.state.as_str(), "SUCCEEDED" | "STARTED")
    }
}

/// Check `[smoke]` (and `--smoke`) against the compiled pipelines (name → spec): unknown
/// pipelines, parameters they do not declare or of the wrong type, a refused experiment name.
pub fn check_config(
    config: Option<&SmokeConfig>,
    flag: bool,
    pipelines: &BTreeMap<String, Option<Value>>,
    all_in_scope: bool,
    source: &str,
) -> anyhow::Result<Smoke> {
    let Some(config) = config.cloned().or_else(|| flag.then(SmokeConfig::default)) else {
        return Ok(Smoke::default());
    };
    let mut errors = Vec::new();
    let mut err = |key: &str, msg: String| errors.push(format!("{source}: [smoke] {key}: {msg}"));
    let selected = match &config.pipelines {
        None => None,
        Some(list) if list.iter().any(|p| p == "*") => None,
        Some(list) => Some(list.clone()),
    };
    let known = || pipelines.keys().cloned().collect::<Vec<_>>().join(", ");
    if all_in_scope {
        for name in selected.iter().flatten() {
            if !pipelines.contains_key(name) {
                err(
                    "pipelines",
                    format!(
                        "{name:?} is not a pipeline this repository deploys (known: {})",
                        known()
                    ),
                );
            }
        }
    }
    for (name, params) in &config.parameters {
        match pipelines.get(name) {
            None if all_in_scope => err(
                &format!("parameters.{name}"),
                format!(
                    "{name:?} is not a pipeline this repository deploys (known: {})",
                    known()
                ),
            ),
            Some(Some(spec)) => {
                for (key, msg) in crate::run_params::parameter_problems(name, spec, params) {
                    err(
                        &format!(
                            "parameters.{name}.{}",
                            key.trim_start_matches("parameters.")
                        ),
                        msg,
                    );
                }
            }
            _ => {}
        }
    }
    // Pipelines without configured parameters run with their defaults: required ones missing.
    for (name, spec) in pipelines {
        let wanted = selected.as_ref().is_none_or(|s| s.contains(name));
        if let (true, Some(spec), false) = (wanted, spec, config.parameters.contains_key(name)) {
            for (key, msg) in crate::run_params::parameter_problems(name, spec, &BTreeMap::new()) {
                err(&format!("parameters.{name}"), format!("{key}: {msg}"));
            }
        }
    }
    let (experiment, problem) =
        crate::run_params::experiment(config.experiment.as_deref(), DEFAULT_EXPERIMENT);
    if let Some(problem) = problem {
        err("experiment", problem);
    }
    let wait_text = config
        .wait
        .clone()
        .unwrap_or_else(|| DEFAULT_WAIT.to_string());
    let wait = match wait_text.trim() {
        "0" => Some(Duration::ZERO),
        text => crate::run_params::parse_every(text).map(|s| Duration::from_secs(s as u64)),
    };
    let wait = wait.unwrap_or_else(|| {
        err("wait", format!("{wait_text:?} is not a duration: write e.g. \"30m\", \"90s\", \"1h\", or 0 to start without waiting"));
        Duration::ZERO
    });
    if !errors.is_empty() {
        anyhow::bail!("{}", errors.join("\n"));
    }
    Ok(Smoke {
        enabled: true,
        pipelines: selected,
        experiment,
        parameters: config.parameters,
        wait,
    })
}

/// The pipelines this deploy created or changed, and that `[smoke]` selects.
fn selected<'a>(smoke: &Smoke, rows: &'a [PipelineReport]) -> Vec<&'a PipelineReport> {
    rows.iter()
        .filter(|p| matches!(p.action, Action::Create | Action::NewVersion))
        .filter(|p| p.status == Status::Done && p.pipeline_id.is_some() && p.version_id.is_some())
        .filter(|p| smoke.pipelines.as_ref().is_none_or(|s| s.contains(&p.name)))
        .collect()
}

/// Start the smoke runs and wait for them; progress on stderr (unless `quiet`).
pub async fn run(
    client: &Client,
    namespace: &str,
    smoke: &Smoke,
    report: &Report,
    ui_url: Option<&str>,
    quiet: bool,
    interrupt: &crate::interrupt::Interrupt,
) -> Vec<SmokeReport> {
    if !smoke.enabled {
        return Vec::new();
    }
    let say = |line: String| {
        if !quiet {
            crate::output::message_line(&line);
        }
    };
    let targets = selected(smoke, &report.pipelines);
    if targets.is_empty() {
        say("smoke: no created or changed pipeline to run".into());
        return Vec::new();
    }
    let mut out: Vec<SmokeReport> = Vec::new();
    let experiment = match client.ensure_experiment(&smoke.experiment, namespace).await {
        Ok(e) => Some(e.experiment_id),
        Err(e) => {
            for p in &targets {
                out.push(SmokeReport {
                    pipeline: p.name.clone(),
                    state: "NOT_STARTED".into(),
                    error: Some(format!(
                        "cannot create experiment {:?}: {}",
                        smoke.experiment,
                        e.server_message()
                    )),
                    ..Default::default()
                });
            }
            None
        }
    };
    let Some(experiment_id) = experiment else {
        return out;
    };
    let tag = report.version_tag.clone().unwrap_or_default();
    for p in &targets {
        let run = Run {
            display_name: format!("smoke {} {tag}", p.name).trim().to_string(),
            description: "smoke run started by kfp-ci deploy".into(),
            experiment_id: experiment_id.clone(),
            pipeline_version_reference: Some(PipelineVersionReference {
                pipeline_id: p.pipeline_id.clone().unwrap_or_default(),
                pipeline_version_id: p.version_id.clone().unwrap_or_default(),
            }),
            runtime_config: Some(RuntimeConfig {
                parameters: smoke.parameters.get(&p.name).cloned().unwrap_or_default(),
                pipeline_root: String::new(),
            }),
            ..Default::default()
        };
        match client.create_run(&run).await {
            Ok(created) => {
                let url = ui_url.map(|ui| format!("{ui}/#/runs/details/{}", created.run_id));
                say(format!(
                    "smoke: {}: started run {}{}",
                    p.name,
                    created.run_id,
                    url.as_ref().map(|u| format!(" ({u})")).unwrap_or_default()
                ));
                out.push(SmokeReport {
                    pipeline: p.name.clone(),
                    run_id: Some(created.run_id),
                    state: if smoke.wait.is_zero() {
                        "STARTED".into()
                    } else {
                        created.state
                    },
                    url,
                    ..Default::default()
                });
            }
            Err(e) => {
                say(format!(
                    "smoke: {}: cannot start a run: {}",
                    p.name,
                    e.server_message()
                ));
                out.push(SmokeReport {
                    pipeline: p.name.clone(),
                    state: "NOT_STARTED".into(),
                    error: Some(format!("cannot start a run: {}", e.server_message())),
                    ..Default::default()
                });
            }
        }
    }
    if smoke.wait.is_zero() {
        say("smoke: wait = 0: not waiting for the runs".into());
        return out;
    }
    wait(client, smoke.wait, &mut out, &say, interrupt).await;
    out
}

async fn wait(
    client: &Client,
    limit: Duration,
    runs: &mut [SmokeReport],
    say: &impl Fn(String),
    interrupt: &crate::interrupt::Interrupt,
) {
    let started = Instant::now();
    let pending = |runs: &[SmokeReport]| {
        runs.iter()
            .any(|r| r.run_id.is_some() && !kfp_api::runs::FINAL_STATES.contains(&r.state.as_str()))
    };
    say(format!(
        "smoke: waiting up to {} for {} run(s); Ctrl-C stops waiting, not the runs",
        human(limit),
        runs.iter().filter(|r| r.run_id.is_some()).count()
    ));
    let mut delay = Duration::from_millis(100);
    let mut last_progress = Instant::now();
    let interrupted = loop {
        if !pending(runs) {
            break false;
        }
        if started.elapsed() >= limit {
            break false;
        }
        let sleep = delay.min(limit.saturating_sub(started.elapsed()));
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            _ = interrupt.wait() => break true,
        }
        delay = (delay * 2).min(Duration::from_secs(5));
        for r in runs.iter_mut() {
            let Some(id) = r.run_id.clone() else { continue };
            if kfp_api::runs::FINAL_STATES.contains(&r.state.as_str()) {
                continue;
            }
            match client.get_run(&id).await {
                Ok(run) => {
                    if run.state != r.state {
                        say(format!(
                            "smoke: {}: {} after {}",
                            r.pipeline,
                            run.state,
                            human(started.elapsed())
                        ));
                        r.state = run.state;
                    }
                    r.waited_ms = started.elapsed().as_millis() as u64;
                }
                Err(e) => tracing::debug!("smoke: reading run {id}: {e}"),
            }
        }
        // A line at least every 30 s in CI logs, so a long wait is visibly alive.
        if last_progress.elapsed() >= Duration::from_secs(30) && pending(runs) {
            say(format!(
                "smoke: still waiting ({} of {})",
                human(started.elapsed()),
                human(limit)
            ));
            last_progress = Instant::now();
        }
    };
    for r in runs.iter_mut().filter(|r| r.run_id.is_some()) {
        r.waited_ms = started.elapsed().as_millis() as u64;
        if kfp_api::runs::FINAL_STATES.contains(&r.state.as_str()) {
            continue;
        }
        let (state, why) = if interrupted {
            (
                "INTERRUPTED",
                "interrupted (Ctrl-C) while waiting; the run goes on on the server",
            )
        } else {
            (
                "TIMED_OUT",
                "did not finish within the wait; the run goes on on the server",
            )
        };
        r.error = Some(format!(
            "{why} (last state {})",
            if r.state.is_empty() {
                "unknown"
            } else {
                &r.state
            }
        ));
        r.state = state.into();
        say(format!(
            "smoke: {}: {}",
            r.pipeline,
            r.error.clone().unwrap_or_default()
        ));
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// The smoke runs' lines for the stderr table.
pub fn render(rows: &[SmokeReport]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nsmoke runs:\n");
    for r in rows {
        out.push_str(&format!(
            "  {}  {}  {}{}{}\n",
            r.pipeline,
            r.state,
            r.run_id.as_deref().unwrap_or("-"),
            r.url.as_ref().map(|u| format!("  {u}")).unwrap_or_default(),
            r.error
                .as_ref()
                .map(|e| format!("  ({e})"))
                .unwrap_or_default(),
        ));
    }
    out
}

/// Names of the pipelines whose smoke run failed, comma-separated (job output `smoke_failed`).
pub fn failed_names(report: &Report) -> String {
    report
        .smoke
        .iter()
        .filter(|r| r.failed())
        .map(|r| r.pipeline.replace(['\r', '\n'], " "))
        .collect::<Vec<_>>()
        .join(",")
}

/// Notification lines: schedules that changed and smoke runs.
pub fn notify_items(report: &Report) -> Vec<(&'static str, String)> {
    let mut items = Vec::new();
    for r in &report.smoke {
        let link = r
            .url
            .as_ref()
            .map(|u| format!(" ([run]({u}))"))
            .unwrap_or_default();
        items.push((
            "Smoke runs",
            format!("- `{}`: {}{link}", r.pipeline, r.state),
        ));
    }
    for s in report
        .schedules
        .iter()
        .filter(|s| s.changes() || s.failed())
    {
        let what = match &s.error {
            Some(e) => format!("{} failed: {e}", s.action),
            None => s.action.clone(),
        };
        items.push(("Schedules", format!("- `{}`: {what}", s.name)));
    }
    items
}

/// Step-summary tables of the schedules and smoke runs (empty when there are none).
pub fn summary_markdown(report: &Report) -> String {
    let cell = |t: &str| t.lines().next().unwrap_or_default().replace('|', "\\|");
    let mut md = String::new();
    if !report.schedules.is_empty() {
        md.push_str("\n| schedule | action | status | details |\n| --- | --- | --- | --- |\n");
        for s in &report.schedules {
            let details = s.error.as_deref().unwrap_or(&s.reason);
            md.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                cell(&s.name),
                s.action,
                s.status.label(),
                cell(details)
            ));
        }
    }
    if !report.smoke.is_empty() {
        md.push_str("\n| smoke run | state | run |\n| --- | --- | --- |\n");
        for r in &report.smoke {
            let run = match (&r.url, &r.run_id) {
                (Some(u), Some(id)) => format!("[{}]({u})", cell(id)),
                (None, Some(id)) => format!("`{}`", cell(id)),
                _ => cell(r.error.as_deref().unwrap_or("-")),
            };
            md.push_str(&format!(
                "| `{}` | {} | {run} |\n",
                cell(&r.pipeline),
                r.state
            ));
        }
    }
    md
}

/// `, N smoke run(s) failed` for the notification title.
pub fn title_suffix(report: &Report) -> String {
    let n = report.smoke.iter().filter(|r| r.failed()).count();
    if n == 0 {
        String::new()
    } else {
        format!(", {n} smoke run(s) failed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_checks() {
        let spec = json!({"root": {"inputDefinitions": {"parameters": {
            "threshold": {"parameterType": "NUMBER_DOUBLE", "defaultValue": 0.8}}}}});
        let pipelines = BTreeMap::from([("eval".to_string(), Some(spec))]);
        let ok: SmokeConfig = toml::from_str(
            "pipelines = [\"eval\"]\nwait = \"90s\"\nparameters.eval = { threshold = 0.5 }\n",
        )
        .expect("toml");
        let s = check_config(Some(&ok), false, &pipelines, true, "kfp-ci.toml").expect("ok");
        assert_eq!(s.wait, Duration::from_secs(90));
        let bad: SmokeConfig = toml::from_str(
            "pipelines = [\"nope\"]\nwait = \"soon\"\nparameters.eval = { threshold = \"x\", other = 1 }\n",
        )
        .expect("toml");
        let err = check_config(Some(&bad), false, &pipelines, true, "kfp-ci.toml")
            .expect_err("errors")
            .to_string();
        for needle in [
            "[smoke] pipelines: \"nope\"",
            "[smoke] wait: \"soon\"",
            "[smoke] parameters.eval.threshold: \"x\" is not a float",
            "[smoke] parameters.eval.other: pipeline eval has no parameter \"other\"",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in\n{err}");
        }
        assert!(
            !check_config(None, false, &pipelines, true, "f")
                .expect("off")
                .enabled
        );
        assert!(
            check_config(None, true, &pipelines, true, "f")
                .expect("flag")
                .enabled
        );
    }
}
