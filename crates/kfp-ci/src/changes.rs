//! What changed, per pipeline, against the server: the diff of each planned pipeline (`kfp-ci
//! diff`, in the diff engine's terms, `crate::diff`) and the pull-request comment made of the
//! plan table, those diffs and each changed pipeline's DAG (`plan --comment`,
//! `plan --output markdown`).

use std::fmt::Write;

use serde::Serialize;
use serde_json::Value;

use crate::diff::{self, Change, changed_tasks, md_escape};
use crate::forge::MARKER;
use crate::plan::PlanItem;
use crate::report::{Action, Report};
use crate::session::Session;

/// GitHub refuses comments over 65536 characters; stay well below.
const MAX_BODY: usize = 60_000;

/// One pipeline's diff.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineDiff {
    pub name: String,
    pub file: String,
    /// `new`, `changed`, `unchanged`, `error`.
    pub status: &'static str,
    /// The server version compared with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub against: Option<String>,
    pub changes: Vec<Change>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The local spec (server form), for DAG drawings; not part of the JSON.
    #[serde(skip)]
    pub spec: Option<Value>,
}

/// The diff of every planned pipeline against its server version.
pub async fn collect(
    session: &Session,
    items: &[PlanItem],
    against: Option<&str>,
) -> Vec<PipelineDiff> {
    let mut out = Vec::new();
    for item in items {
        let mut d = PipelineDiff {
            name: item.name.clone(),
            file: item.file.clone(),
            status: "error",
            against: None,
            changes: Vec::new(),
            error: None,
            spec: item.spec.as_ref().map(|s| s.value.clone()),
        };
        let (Some(local), None) = (&d.spec, &item.error) else {
            d.error = Some(item.reason.clone());
            out.push(d);
            continue;
        };
        let Some(pipeline_id) = item.pipeline_id.as_deref() else {
            d.status = "new";
            out.push(d);
            continue;
        };
        let version = match against {
            Some(name) => session
                .client
                .version_by_name(pipeline_id, name)
                .await
                .map(|v| v.ok_or_else(|| format!("pipeline {} has no version named {name:?} (--against); `kfp-ci history {}` lists them", item.name, item.name))),
            None => session
                .client
                .latest_versions(pipeline_id)
                .await
                .map(|v| v.map(|(latest, _)| latest).ok_or_else(|| "the pipeline has no version".to_string())),
        };
        let version = match version {
            Ok(Ok(v)) => v,
            Ok(Err(message)) => {
                if item.action == Action::NewVersion && against.is_none() {
                    // An empty pipeline: everything is new.
                    d.status = "new";
                } else {
                    d.error = Some(message);
                }
                out.push(d);
                continue;
            }
            Err(e) => {
                d.error = Some(format!(
                    "{}: reading its versions: {}",
                    item.name,
                    e.server_message()
                ));
                out.push(d);
                continue;
            }
        };
        d.against = Some(if version.name.is_empty() {
            version.pipeline_version_id.clone()
        } else {
            version.name.clone()
        });
        let Some(remote) = &version.pipeline_spec else {
            d.error = Some(format!(
                "version {} of {} has no readable spec",
                d.against.as_deref().unwrap_or_default(),
                item.name
            ));
            out.push(d);
            continue;
        };
        d.changes = diff::diff(remote, local);
        d.status = if d.changes.is_empty() {
            "unchanged"
        } else {
            "changed"
        };
        out.push(d);
    }
    out
}

fn headline(d: &PipelineDiff) -> String {
    let against = d.against.as_deref().unwrap_or("the server");
    match (d.status, &d.error) {
        (_, Some(e)) => format!("error: {e}"),
        ("new", _) => "new pipeline (not on the server yet)".into(),
        ("unchanged", _) => format!("no change against {against}"),
        _ => format!("{} change(s) against {against}", d.changes.len()),
    }
}

pub fn render_text(diffs: &[PipelineDiff]) -> String {
    let mut out = String::new();
    for d in diffs {
        let _ = writeln!(out, "{} ({}): {}", d.name, d.file, headline(d));
        out.push_str(&diff::render_text(&d.changes, "  "));
    }
    if diffs.is_empty() {
        out.push_str("no pipelines found\n");
    }
    out
}

pub fn render_markdown(diffs: &[PipelineDiff]) -> String {
    let mut out = String::new();
    for d in diffs {
        let _ = writeln!(
            out,
            "#### `{}` ({})\n\n{}\n",
            d.name.replace('`', "'"),
            diff::md_escape(&d.file),
            diff::md_escape(&headline(d))
        );
        if !d.changes.is_empty() {
            out.push_str(&diff::render_markdown(&d.changes));
            out.push('\n');
        }
    }
    out
}

fn cell(text: &str) -> String {
    md_escape(text.lines().next().unwrap_or_default())
}

/// The comment body: marker, summary, table, then per changed pipeline its diff and DAG.
pub fn comment_body(report: &Report, diffs: &[PipelineDiff], commit: Option<&str>) -> String {
    let head = render_head(report, commit);
    let with_dags = render_details(diffs, true);
    if head.len() + with_dags.len() <= MAX_BODY {
        return format!("{head}{with_dags}");
    }
    let without = render_details(diffs, false);
    let mut body = format!("{head}{without}");
    if crate::text::cut(&mut body, MAX_BODY) {
        body.push_str("\n\n… cut here (too long for a comment): run `kfp-ci diff` for the rest\n");
    } else {
        body.push_str("\n_DAGs left out: the comment would be too long._\n");
    }
    body
}

fn render_head(report: &Report, commit: Option<&str>) -> String {
    let mut out = format!("{MARKER}\n### kfp-ci plan\n\n");
    let c = &report.counts;
    let endpoint = report
        .target
        .as_ref()
        .map(|t| t.endpoint.clone())
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{} to create, {} new version(s), {} unchanged, {} failed · target `{}`{}\n",
        c.created,
        c.updated,
        c.unchanged,
        c.failed,
        endpoint.replace('`', "'"),
        commit
            .map(|s| format!(" · commit `{}`", s.get(..12).unwrap_or(s)))
            .unwrap_or_default()
    );
    out.push_str("| Pipeline | File | Action | Why |\n|---|---|---|---|\n");
    for p in &report.pipelines {
        let why = match &p.error {
            Some(e) => &e.message,
            None => &p.reason,
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            cell(&p.name),
            cell(&p.file),
            p.action.label(),
            cell(why)
        );
    }
    out.push('\n');
    out
}

fn render_details(diffs: &[PipelineDiff], dags: bool) -> String {
    let mut out = String::new();
    for d in diffs
        .iter()
        .filter(|d| matches!(d.status, "changed" | "new"))
    {
        let _ = writeln!(out, "#### {} ({})\n", cell(&d.name), cell(&d.file));
        if d.status == "new" {
            out.push_str("New pipeline.\n\n");
        } else {
            let _ = writeln!(
                out,
                "Against `{}`:\n",
                d.against
                    .as_deref()
                    .unwrap_or("the server")
                    .replace('`', "'")
            );
            out.push_str(&diff::render_markdown(&d.changes));
            out.push('\n');
        }
        if dags && let Some(spec) = &d.spec {
            let changed = changed_tasks(&d.changes);
            let _ = writeln!(
                out,
                "<details><summary>DAG{}</summary>\n\n```mermaid\n{}```\n\n</details>\n",
                if changed.is_empty() {
                    String::new()
                } else {
                    " (changed tasks highlighted)".to_string()
                },
                crate::dag::mermaid_highlighting(spec, &changed)
            );
        }
    }
    out
}
