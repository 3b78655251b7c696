//! The step summary: markdown for `$GITHUB_STEP_SUMMARY` (GitHub; Gitea from 1.27).

use std::fmt::Write;

use super::outputs::is_failed;
use crate::report::{Action, PipelineReport, Report, Status};

/// GitHub caps a step summary at 1 MiB; leave room for other steps.
const MAX_SUMMARY: usize = 900 * 1024;

/// How a run went, for titles, priorities and `notify.on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A pipeline failed, or the run as a whole did.
    Failure,
    /// Something was created or got a new version.
    Changed,
    /// Nothing to do.
    Unchanged,
}

impl Outcome {
    pub fn of(report: &Report) -> Outcome {
        if report.counts.failed > 0
            || report.has_failures()
            || !report.errors.is_empty()
            || report.pipelines.iter().any(is_failed)
        {
            Outcome::Failure
        } else if report.counts.uploaded() > 0 || report.prune.iter().any(|p| p.applied()) {
            Outcome::Changed
        } else {
            Outcome::Unchanged
        }
    }
}

/// The first non-empty line of an error message.
pub fn first_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

/// Text safe inside a markdown table cell.
fn cell(text: &str) -> String {
    first_line(text).replace('|', "\\|")
}

pub fn action_label(p: &PipelineReport) -> &'static str {
    match (p.action, p.status) {
        (_, Status::Failed) | (Action::Error, _) => "failed",
        (Action::Create, Status::Done) => "created",
        (Action::NewVersion, Status::Done) => "new version",
        (Action::Create, _) => "create (planned)",
        (Action::NewVersion, _) => "new version (planned)",
        (Action::Unchanged, _) => "unchanged",
        (Action::Compiled, _) => "compiled",
    }
}

/// The whole summary: headline, counts, pipelines, failures, DAGs.
pub fn step_summary(report: &Report) -> String {
    let mut md = String::new();
    let c = &report.counts;
    let headline = match Outcome::of(report) {
        Outcome::Failure => "❌ kfp-ci: some pipelines failed",
        Outcome::Changed => "✅ kfp-ci: pipelines deployed",
        Outcome::Unchanged => "✅ kfp-ci: no changes",
    };
    let _ = writeln!(md, "## {headline}");
    md.push('\n');
    let mut facts = Vec::new();
    if let Some(tag) = &report.version_tag {
        facts.push(format!("version `{tag}`"));
    }
    if let Some(ci) = &report.ci
        && let Some(sha) = ci.short_sha()
    {
        facts.push(format!("commit `{sha}`"));
    }
    if let Some(target) = &report.target {
        facts.push(format!("KFP `{}`", target.endpoint));
        if let Some(ui) = &target.ui_url {
            facts.push(format!("[KFP UI]({ui})"));
        }
    }
    if report.dry_run {
        facts.push("dry run: nothing applied".to_string());
    }
    if !facts.is_empty() {
        let _ = writeln!(md, "{}", facts.join(" · "));
        md.push('\n');
    }
    md.push_str("| compiled | uploaded | unchanged | failed |\n| ---: | ---: | ---: | ---: |\n");
    let _ = writeln!(
        md,
        "| {} | {} ({} created, {}) | {} | {} |",
        c.compiled,
        c.uploaded(),
        c.created,
        new_versions(c.updated),
        c.unchanged,
        c.failed
    );
    if !report.pipelines.is_empty() {
        md.push('\n');
        md.push_str("| pipeline | file | result | details |\n| --- | --- | --- | --- |\n");
        for p in &report.pipelines {
            let name = match &p.url {
                Some(url) => format!("[{}]({url})", cell(&p.name)),
                None => format!("`{}`", cell(&p.name)),
            };
            let details = match &p.error {
                Some(err) => cell(&err.message),
                None => cell(&p.reason),
            };
            let _ = writeln!(
                md,
                "| {name} | `{}` | {} | {details} |",
                cell(&p.file),
                action_label(p)
            );
        }
    }
    md.push_str(&super::runs_summary_markdown(report));
    let failed: Vec<&PipelineReport> = report.pipelines.iter().filter(|p| is_failed(p)).collect();
    if !failed.is_empty() || !report.errors.is_empty() {
        md.push_str("\n### Failures\n\n");
        for p in failed {
            let (kind, message) = p
                .error
                .as_ref()
                .map(|e| (e.kind.as_str(), first_line(&e.message)))
                .unwrap_or(("error", "failed"));
            let _ = writeln!(
                md,
                "- **{}** (`{}`): {kind}: {message}",
                p.name.replace('\n', " "),
                p.file
            );
        }
        for err in &report.errors {
            let _ = writeln!(md, "- {}", first_line(err));
        }
    }
    let graphs: Vec<(&PipelineReport, &String)> = report
        .pipelines
        .iter()
        .filter(|p| matches!(p.action, Action::Create | Action::NewVersion) && !is_failed(p))
        .filter_map(|p| p.mermaid.as_ref().map(|m| (p, m)))
        .collect();
    if !graphs.is_empty() {
        md.push_str("\n### Pipeline graphs\n");
        for (p, mermaid) in graphs {
            let block = format!(
                "\n<details><summary><code>{}</code> ({})</summary>\n\n```mermaid\n{}\n```\n\n</details>\n",
                html_escape(&p.name),
                action_label(p),
                mermaid.trim_end()
            );
            if md.len() + block.len() > MAX_SUMMARY {
                md.push_str("\n(more graphs left out: the summary size limit is 1 MiB)\n");
                break;
            }
            md.push_str(&block);
        }
    }
    md.push('\n');
    md
}

/// `1 new version`, `2 new versions`.
pub fn new_versions(n: usize) -> String {
    if n == 1 {
        "1 new version".to_string()
    } else {
        format!("{n} new versions")
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Counts, PipelineError};

    #[test]
    fn summary_has_table_failures_and_graphs() {
        let report = Report {
            version_tag: Some("v1".into()),
            counts: Counts {
                compiled: 2,
                created: 1,
                failed: 1,
                ..Default::default()
            },
            pipelines: vec![
                PipelineReport {
                    name: "train".into(),
                    file: "p/train_pipeline.py".into(),
                    action: Action::Create,
                    status: Status::Done,
                    mermaid: Some("flowchart TD\n  a --> b\n".into()),
                    ..Default::default()
                },
                PipelineReport {
                    name: "bad".into(),
                    file: "p/bad_pipeline.py".into(),
                    action: Action::Error,
                    status: Status::Failed,
                    error: Some(PipelineError {
                        kind: "compile".into(),
                        message: "\nNameError: x | y\nmore".into(),
                        detail: String::new(),
                    }),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let md = step_summary(&report);
        assert!(
            md.starts_with("## ❌ kfp-ci: some pipelines failed\n"),
            "{md}"
        );
        assert!(md.contains("| `bad` | `p/bad_pipeline.py` | failed | NameError: x \\| y |"));
        assert!(md.contains("- **bad** (`p/bad_pipeline.py`): compile: NameError: x | y\n"));
        assert!(md.contains("```mermaid\nflowchart TD\n  a --> b\n```"));
        assert!(!md.contains("\n\n\n"));
    }
}
