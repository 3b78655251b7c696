//! The schedules', smoke runs' and pruning's part of the report: the `smoke_failed` output, notification
//! lines, step-summary tables and the title's suffix.

use super::{Report, first_line};

/// Names of the pipelines whose smoke run failed, comma-separated (job output `smoke_failed`).
pub fn smoke_failed_names(report: &Report) -> String {
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
    for p in report.prune.iter().filter(|p| p.applied()) {
        items.push((
            "Pruned",
            format!("- `{}`: {} ({})", p.name, p.action, first_line(&p.reason)),
        ));
    }
    items
}

/// Step-summary tables of the schedules and smoke runs (empty when there are none).
pub fn runs_summary_markdown(report: &Report) -> String {
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
    if !report.prune.is_empty() {
        md.push_str(
            "\n| pruned pipeline | pipeline id | action | reason |\n| --- | --- | --- | --- |\n",
        );
        for p in &report.prune {
            md.push_str(&format!(
                "| `{}` | `{}` | {} | {} |\n",
                cell(&p.name),
                cell(&p.pipeline_id),
                p.action,
                cell(&p.reason)
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

/// `, N pruned` and `, N smoke run(s) failed` for the notification title.
pub fn smoke_title_suffix(report: &Report) -> String {
    let mut out = String::new();
    let pruned = report
        .prune
        .iter()
        .filter(|p| p.action == "deleted")
        .count();
    if pruned > 0 {
        out.push_str(&format!(", {pruned} pruned"));
    }
    let n = report.smoke.iter().filter(|r| r.failed()).count();
    if n > 0 {
        out.push_str(&format!(", {n} smoke run(s) failed"));
    }
    out
}
