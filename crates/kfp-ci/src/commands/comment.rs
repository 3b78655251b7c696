//! `kfp-ci plan --comment` and `plan --output markdown`: the plan table, the diff of each
//! changed pipeline and its DAG (changed tasks highlighted) as one Markdown body, posted as the
//! pull request's sticky comment (`crate::forge`) or written to stdout.

use std::fmt::Write;
use std::time::Instant;

use anyhow::Result;

use super::diff::{PipelineDiff, collect};
use super::plan::{finish_links, item_report, load_config, prepare};
use crate::cli::{GlobalArgs, PlanCmd, PlanOutput};
use crate::diff::{changed_tasks, md_escape, render_markdown};
use crate::forge::{self, MARKER, Posted};
use crate::report::{Action, Report};
use crate::status::ExitStatus;

/// GitHub refuses comments over 65536 characters; stay well below.
const MAX_BODY: usize = 60_000;

pub async fn run(cmd: PlanCmd, global: &GlobalArgs) -> Result<ExitStatus> {
    let started = Instant::now();
    let loaded = load_config(global, &cmd.compile.paths)?;
    let mut report = Report::new("plan");
    let prepared = prepare(&cmd.compile, &cmd.target, &loaded, &mut report, false).await?;
    report.pipelines = prepared.items.iter().map(item_report).collect();
    finish_links(&mut report, &prepared.target);
    report.recount();
    report.duration_ms = started.elapsed().as_millis() as u64;
    let diffs = collect(&prepared, None).await;
    let commit = crate::ci::detect(&loaded.config.ci, None).commit_sha;
    let body = crate::redact::redact(&render_body(&report, &diffs, commit.as_deref()));
    if !global.quiet {
        eprint!(
            "{}",
            crate::redact::redact(&report.render_table(global.verbose > 0))
        );
    }
    if cmd.output == PlanOutput::Markdown {
        crate::output::data(&body)?;
    } else if cmd.output == PlanOutput::Json {
        crate::output::data_line(&super::plan::report_json(&report)?)?;
    }
    if cmd.comment {
        let env = |name: &str| std::env::var(name).ok();
        match forge::detect(&env) {
            Err(why) => eprintln!("no pull request to comment on: {why}; nothing posted"),
            Ok(ctx) => match ctx.post(&body).await? {
                Posted::Created(id) => {
                    eprintln!("posted the plan comment {id} on {}", ctx.describe())
                }
                Posted::Updated(id) => {
                    eprintln!("updated the plan comment {id} on {}", ctx.describe())
                }
            },
        }
    }
    Ok(if report.has_failures() {
        ExitStatus::Failure
    } else if cmd.detailed_exitcode && report.has_changes() {
        ExitStatus::ChangesPending
    } else {
        ExitStatus::Success
    })
}

fn action_label(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::NewVersion => "new version",
        Action::Unchanged => "unchanged",
        Action::Error => "error",
        Action::Compiled => "compiled",
    }
}

fn cell(text: &str) -> String {
    md_escape(text.lines().next().unwrap_or_default())
}

/// The comment body: marker, summary, table, then per changed pipeline its diff and DAG.
pub fn render_body(report: &Report, diffs: &[PipelineDiff], commit: Option<&str>) -> String {
    let head = render_head(report, commit);
    let with_dags = render_details(diffs, true);
    if head.len() + with_dags.len() <= MAX_BODY {
        return format!("{head}{with_dags}");
    }
    let without = render_details(diffs, false);
    let mut body = format!("{head}{without}");
    if body.len() > MAX_BODY {
        let mut end = MAX_BODY;
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        body.truncate(end);
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
            action_label(p.action),
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
            out.push_str(&render_markdown(&d.changes));
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
