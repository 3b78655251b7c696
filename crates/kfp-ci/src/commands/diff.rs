//! `kfp-ci diff`: compile, then show what changed against the server's newest version of each
//! pipeline (or `--against VERSION_NAME`), in the diff engine's terms (`crate::diff`).

use std::fmt::Write;
use std::time::Instant;

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

use super::plan::{Prepared, load_config, prepare};
use crate::cli::{DiffCmd, GlobalArgs, ReviewOutput};
use crate::diff::{self, Change};
use crate::report::{Action, Report};
use crate::status::ExitStatus;

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

pub async fn run(cmd: DiffCmd, global: &GlobalArgs) -> Result<ExitStatus> {
    let started = Instant::now();
    let loaded = load_config(global, &cmd.compile.paths)?;
    let mut report = Report::new("diff");
    let prepared = prepare(&cmd.compile, &cmd.target, &loaded, &mut report, false).await?;
    let diffs = collect(&prepared, cmd.against.as_deref()).await;
    tracing::debug!("diff took {} ms", started.elapsed().as_millis());
    let body = match cmd.output {
        ReviewOutput::Text => render_text(&diffs),
        ReviewOutput::Markdown => render_markdown(&diffs),
        ReviewOutput::Json => {
            let mut json = serde_json::json!({ "pipelines": diffs });
            crate::redact::redact_json(&mut json);
            format!("{json}\n")
        }
    };
    print!("{}", crate::redact::redact(&body));
    Ok(if diffs.iter().any(|d| d.error.is_some()) {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

/// The diff of every planned pipeline against its server version.
pub(super) async fn collect(prepared: &Prepared, against: Option<&str>) -> Vec<PipelineDiff> {
    let mut out = Vec::new();
    for item in &prepared.items {
        let mut d = PipelineDiff {
            name: item.name.clone(),
            file: item.file.clone(),
            status: "error",
            against: None,
            changes: Vec::new(),
            error: None,
            spec: item
                .spec
                .as_ref()
                .and_then(|s| serde_json::from_str(&s.canonical).ok()),
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
            Some(name) => prepared
                .client
                .version_by_name(pipeline_id, name)
                .await
                .map(|v| v.ok_or_else(|| format!("pipeline {} has no version named {name:?} (--against); `kfp-ci history {}` lists them", item.name, item.name))),
            None => prepared
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
