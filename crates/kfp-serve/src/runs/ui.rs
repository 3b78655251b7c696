//! The web page's sections for experiments, recurring runs and runs (escaped like the rest).

use std::fmt::Write as _;
use std::sync::Arc;

use kfp_api::runs::{Experiment, RecurringRun, Run};

use crate::AppState;
use crate::api::blocking;
use crate::list::{self, Kind};
use crate::ui::esc;

const SHOWN: &str = "100";

struct Sections {
    experiments: Vec<Experiment>,
    experiments_total: i64,
    recurring: Vec<RecurringRun>,
    recurring_total: i64,
    runs: Vec<Run>,
    runs_total: i64,
}

/// HTML of the three sections, newest first; an error is shown in place of them.
pub async fn sections(state: &Arc<AppState>) -> String {
    let result = blocking(state, |s| {
        s.read(|tx| {
            let params =
                |kind| list::parse(kind, "", Some(SHOWN), None, Some("created_at desc"), None);
            let e = super::store::list_experiments(tx, None, &params(Kind::Experiments)?)?;
            let j = super::store::list_recurring_runs(tx, None, &params(Kind::RecurringRuns)?)?;
            let r = super::store::list_runs(tx, None, &params(Kind::Runs)?)?;
            Ok(Sections {
                experiments: e.items,
                experiments_total: e.total,
                recurring: j.items,
                recurring_total: j.total,
                runs: r.items,
                runs_total: r.total,
            })
        })
    })
    .await;
    let s = match result {
        Ok(s) => s,
        Err(e) => return format!("<p>Cannot read runs: {}</p>", esc(e.message())),
    };
    let mut body = String::new();
    let names: std::collections::HashMap<&str, &str> = s
        .experiments
        .iter()
        .map(|e| (e.experiment_id.as_str(), e.display_name.as_str()))
        .collect();
    let experiment = |id: &str| esc(names.get(id).copied().unwrap_or(id));

    let _ = write!(
        body,
        "<h1 id=\"experiments\">Experiments</h1><p class=\"muted\">{} experiment(s).</p>",
        s.experiments_total
    );
    if !s.experiments.is_empty() {
        body.push_str("<table><tr><th>name</th><th>id</th><th>state</th><th>created</th><th>last run</th><th>description</th></tr>");
        for e in &s.experiments {
            let _ = write!(
                body,
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&e.display_name),
                esc(&e.experiment_id),
                esc(&e.storage_state),
                esc(e.created_at.as_deref().unwrap_or_default()),
                esc(e.last_run_created_at.as_deref().unwrap_or_default()),
                esc(&e.description),
            );
        }
        body.push_str("</table>");
    }

    let _ = write!(
        body,
        "<h1 id=\"recurring-runs\">Recurring runs</h1><p class=\"muted\">{} recurring run(s). Stored only: this server never triggers them.</p>",
        s.recurring_total
    );
    if !s.recurring.is_empty() {
        body.push_str("<table><tr><th>name</th><th>status</th><th>trigger</th><th>pipeline / version</th><th>experiment</th><th>parameters</th><th>description</th></tr>");
        for r in &s.recurring {
            let trigger = match &r.trigger {
                Some(t) => match (&t.cron_schedule, &t.periodic_schedule) {
                    (Some(c), _) => format!("cron <code>{}</code>", esc(&c.cron)),
                    (_, Some(p)) => format!("every {} s", p.interval_second.unwrap_or(0)),
                    _ => String::new(),
                },
                None => String::new(),
            };
            let source = match &r.pipeline_version_reference {
                Some(v) if v.pipeline_version_id.is_empty() => {
                    format!("<code>{}</code> / latest", esc(&v.pipeline_id))
                }
                Some(v) => format!(
                    "<code>{}</code> / <code>{}</code>",
                    esc(&v.pipeline_id),
                    esc(&v.pipeline_version_id)
                ),
                None => "inline spec".into(),
            };
            let params = r
                .runtime_config
                .as_ref()
                .and_then(|c| serde_json::to_string(&c.parameters).ok())
                .unwrap_or_default();
            let _ = write!(
                body,
                "<tr><td>{}<br><code class=\"muted\">{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                esc(&r.display_name),
                esc(&r.recurring_run_id),
                esc(&r.status),
                trigger,
                source,
                experiment(&r.experiment_id),
                esc(&params),
                esc(&r.description),
            );
        }
        body.push_str("</table>");
    }

    let _ = write!(
        body,
        "<h1 id=\"runs\">Runs</h1><p class=\"muted\">{} run(s), newest first. Recorded, not executed: each ends after a simulated duration.</p>",
        s.runs_total
    );
    if !s.runs.is_empty() {
        body.push_str("<table><tr><th>name</th><th>state</th><th>experiment</th><th>pipeline version</th><th>created</th><th>finished</th><th>parameters</th></tr>");
        for r in &s.runs {
            let version = r
                .pipeline_version_reference
                .as_ref()
                .map(|v| format!("<code>{}</code>", esc(&v.pipeline_version_id)))
                .unwrap_or_else(|| "inline spec".into());
            let params = r
                .runtime_config
                .as_ref()
                .and_then(|c| serde_json::to_string(&c.parameters).ok())
                .unwrap_or_default();
            let finished = if r.is_final() {
                esc(r.finished_at.as_deref().unwrap_or_default())
            } else {
                String::new()
            };
            let _ = write!(
                body,
                "<tr id=\"run-{id}\"><td>{}<br><code class=\"muted\">{id}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                esc(&r.display_name),
                esc(&r.state),
                experiment(&r.experiment_id),
                version,
                esc(r.created_at.as_deref().unwrap_or_default()),
                finished,
                esc(&params),
                id = esc(&r.run_id),
            );
        }
        body.push_str("</table>");
    }
    body
}
