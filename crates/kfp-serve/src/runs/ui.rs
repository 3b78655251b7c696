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

    section(
        &mut body,
        ("experiments", "Experiments"),
        &format!("{} experiment(s).", s.experiments_total),
        &["name", "id", "state", "created", "last run", "description"],
        s.experiments.iter().map(|e| {
            let cells = vec![
                esc(&e.display_name),
                format!("<code>{}</code>", esc(&e.experiment_id)),
                esc(&e.storage_state),
                esc(e.created_at.as_deref().unwrap_or_default()),
                esc(e.last_run_created_at.as_deref().unwrap_or_default()),
                esc(&e.description),
            ];
            (None, cells)
        }),
    );
    section(
        &mut body,
        ("recurring-runs", "Recurring runs"),
        &format!(
            "{} recurring run(s). Stored only: this server never triggers them.",
            s.recurring_total
        ),
        &[
            "name",
            "status",
            "trigger",
            "pipeline / version",
            "experiment",
            "parameters",
            "description",
        ],
        s.recurring.iter().map(|r| {
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
            let cells = vec![
                format!(
                    "{}<br><code class=\"muted\">{}</code>",
                    esc(&r.display_name),
                    esc(&r.recurring_run_id)
                ),
                esc(&r.status),
                trigger,
                source,
                experiment(&r.experiment_id),
                parameters(r.runtime_config.as_ref()),
                esc(&r.description),
            ];
            (None, cells)
        }),
    );
    section(
        &mut body,
        ("runs", "Runs"),
        &format!(
            "{} run(s), newest first. Recorded, not executed: each ends after a simulated duration.",
            s.runs_total
        ),
        &[
            "name",
            "state",
            "experiment",
            "pipeline version",
            "created",
            "finished",
            "parameters",
        ],
        s.runs.iter().map(|r| {
            let id = esc(&r.run_id);
            let version = r
                .pipeline_version_reference
                .as_ref()
                .map(|v| format!("<code>{}</code>", esc(&v.pipeline_version_id)))
                .unwrap_or_else(|| "inline spec".into());
            let finished = if r.is_final() {
                esc(r.finished_at.as_deref().unwrap_or_default())
            } else {
                String::new()
            };
            let cells = vec![
                format!(
                    "{}<br><code class=\"muted\">{id}</code>",
                    esc(&r.display_name)
                ),
                esc(&r.state),
                experiment(&r.experiment_id),
                version,
                esc(r.created_at.as_deref().unwrap_or_default()),
                finished,
                parameters(r.runtime_config.as_ref()),
            ];
            (Some(format!("run-{id}")), cells)
        }),
    );
    body
}

/// A section: its heading, a line saying how many, and (when there are any) a table of rows,
/// each with an optional anchor id and cells already escaped.
fn section(
    body: &mut String,
    (id, title): (&str, &str),
    summary: &str,
    header: &[&str],
    rows: impl Iterator<Item = (Option<String>, Vec<String>)>,
) {
    let _ = write!(
        body,
        "<h1 id=\"{id}\">{title}</h1><p class=\"muted\">{summary}</p>"
    );
    let mut rows = rows.peekable();
    if rows.peek().is_none() {
        return;
    }
    body.push_str("<table><tr>");
    for h in header {
        let _ = write!(body, "<th>{h}</th>");
    }
    body.push_str("</tr>");
    for (anchor, cells) in rows {
        match anchor {
            Some(anchor) => {
                let _ = write!(body, "<tr id=\"{anchor}\">");
            }
            None => body.push_str("<tr>"),
        }
        for c in cells {
            let _ = write!(body, "<td>{c}</td>");
        }
        body.push_str("</tr>");
    }
    body.push_str("</table>");
}

/// Run parameters as JSON text, escaped, in a `<code>` cell.
fn parameters(config: Option<&kfp_api::runs::RuntimeConfig>) -> String {
    let text = config
        .and_then(|c| serde_json::to_string(&c.parameters).ok())
        .unwrap_or_default();
    format!("<code>{}</code>", esc(&text))
}
