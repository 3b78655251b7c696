//! The ntfy message for a report: title, markdown body under ntfy's size limit, priority, tags,
//! a click link and view actions.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::report::{Action, Report, Status};
use crate::report::{Outcome, action_label, first_line};
use crate::text::clip;

/// ntfy treats a body of 4096 bytes or more as an attachment; stay clearly below.
pub const MAX_MESSAGE: usize = 4000;

/// A view action button.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewAction {
    pub action: String,
    pub label: String,
    pub url: String,
}

/// The JSON body of a publish to the server root. Types as ntfy requires: priority an integer,
/// tags an array, markdown a bool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub topic: String,
    pub title: String,
    pub message: String,
    pub priority: u8,
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub click: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ViewAction>,
    pub markdown: bool,
}

/// The title: outcome and counts, prefixed with the repository when known.
pub fn title(report: &Report) -> String {
    let c = &report.counts;
    let repo = report
        .ci
        .as_ref()
        .and_then(|ci| ci.repository.as_deref())
        .map(|r| format!("{r}: "))
        .unwrap_or_default();
    let dry = if report.dry_run { " (dry run)" } else { "" };
    let body = match Outcome::of(report) {
        Outcome::Failure if report.pipelines.is_empty() && c.compiled == 0 && c.failed == 0 => {
            "deploy failed".to_string()
        }
        Outcome::Failure => format!(
            "deploy failed: {} failed, {} uploaded, {} unchanged",
            c.failed,
            c.uploaded(),
            c.unchanged
        ),
        Outcome::Changed => format!(
            "deployed {} uploaded, {} unchanged",
            c.uploaded(),
            c.unchanged
        ),
        Outcome::Unchanged => format!("no changes, {} unchanged", c.unchanged),
    };
    format!(
        "{repo}{body}{}{dry}",
        crate::report::smoke_title_suffix(report)
    )
}

/// The message for a report: markdown body cut under [`MAX_MESSAGE`] bytes.
pub fn message(report: &Report, topic: &str) -> Message {
    let outcome = Outcome::of(report);
    let c = &report.counts;
    let mut head = String::new();
    // Without a report (the deploy job failed before writing one) there are no counts to show.
    let no_report = report.pipelines.is_empty()
        && c.compiled == 0
        && c.failed == 0
        && !report.errors.is_empty();
    if !no_report {
        let _ = writeln!(
            head,
            "**{} compiled · {} uploaded** ({} created, {}) · {} unchanged · **{} failed**",
            c.compiled,
            c.uploaded(),
            c.created,
            crate::report::new_versions(c.updated),
            c.unchanged,
            c.failed
        );
    }
    let mut facts = Vec::new();
    if let Some(tag) = &report.version_tag {
        facts.push(format!("version `{tag}`"));
    }
    if let Some(ci) = &report.ci
        && let Some(sha) = ci.short_sha()
    {
        let mut commit = format!("commit `{sha}`");
        if let Some(r) = &ci.git_ref {
            let _ = write!(commit, " on `{r}`");
        }
        if let Some(actor) = &ci.actor {
            let _ = write!(commit, " by {actor}");
        }
        facts.push(commit);
    }
    if !facts.is_empty() {
        let _ = writeln!(head, "{}", facts.join(" · "));
    }

    // Items, most important first; whole lines are dropped from the end when too long.
    let mut items: Vec<(&'static str, String)> = Vec::new();
    for err in &report.errors {
        items.push(("Errors", format!("- {}", clip(first_line(err), 300))));
    }
    for p in report.pipelines.iter().filter(|p| is_failed(p)) {
        let line = match &p.error {
            Some(e) => format!(
                "- `{}`: {}: {}",
                clip(&p.name, 120),
                e.kind,
                clip(first_line(&e.message), 300)
            ),
            None => format!("- `{}`: failed", clip(&p.name, 120)),
        };
        items.push(("Failed", line));
    }
    for p in report
        .pipelines
        .iter()
        .filter(|p| matches!(p.action, Action::Create | Action::NewVersion) && !is_failed(p))
    {
        items.push((
            "Uploaded",
            format!("- `{}` {}", clip(&p.name, 120), action_label(p)),
        ));
    }

    items.extend(crate::report::notify_items(report));

    let mut body = head;
    let mut section = "";
    let mut shown = 0;
    for (heading, line) in &items {
        let mut add = String::new();
        if *heading != section {
            let _ = write!(add, "\n**{heading}**\n");
        }
        add.push_str(line);
        add.push('\n');
        // Keep room for the "…and N more" line.
        if body.len() + add.len() + 40 > MAX_MESSAGE {
            break;
        }
        body.push_str(&add);
        section = heading;
        shown += 1;
    }
    if shown < items.len() {
        let _ = writeln!(body, "…and {} more", items.len() - shown);
    }
    let body = clip(body.trim(), MAX_MESSAGE).to_string();

    let run_url = report.ci.as_ref().and_then(|ci| ci.run_url.clone());
    let mut actions = Vec::new();
    if let Some(url) = &run_url {
        actions.push(view("Open run", url));
    }
    if let Some(ui) = report.target.as_ref().and_then(|t| t.ui_url.as_ref()) {
        actions.push(view("Open KFP", ui));
    }
    let changed_with_links: Vec<_> = report
        .pipelines
        .iter()
        .filter(|p| matches!(p.action, Action::Create | Action::NewVersion) || is_failed(p))
        .filter_map(|p| p.url.as_ref().map(|u| (p, u)))
        .collect();
    if let [(p, url)] = changed_with_links.as_slice() {
        actions.push(view(&format!("Open {}", clip(&p.name, 40)), url));
    }
    actions.truncate(3);

    let (priority, tag) = match outcome {
        Outcome::Failure => (4, "rotating_light"),
        Outcome::Changed => (3, "white_check_mark"),
        Outcome::Unchanged => (2, "white_check_mark"),
    };
    Message {
        topic: topic.to_string(),
        title: title(report),
        message: body,
        priority,
        tags: vec![tag.to_string()],
        click: run_url,
        actions,
        markdown: true,
    }
}

fn is_failed(p: &crate::report::PipelineReport) -> bool {
    p.status == Status::Failed || p.action == Action::Error || p.error.is_some()
}

fn view(label: &str, url: &str) -> ViewAction {
    ViewAction {
        action: "view".into(),
        label: label.into(),
        url: url.into(),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::ci::CiInfo;
    use crate::report::{Counts, PipelineError, PipelineReport, TargetInfo};

    pub(crate) fn failing_report(n: usize) -> Report {
        let mut pipelines = Vec::new();
        for i in 0..n {
            pipelines.push(PipelineReport {
                name: format!("pipeline_ü_{i}"),
                file: format!("p/p{i}_pipeline.py"),
                action: Action::Error,
                status: Status::Failed,
                error: Some(PipelineError {
                    kind: "compile".into(),
                    message: format!("NameError: name 'ä{i}' is not defined — {}", "é".repeat(50)),
                    detail: String::new(),
                }),
                ..Default::default()
            });
        }
        Report {
            version_tag: Some("v20261124-120000".into()),
            counts: Counts {
                discovered: n,
                compiled: 0,
                failed: n,
                ..Default::default()
            },
            pipelines,
            ci: Some(CiInfo {
                platform: "gitea".into(),
                repository: Some("ml/pipes".into()),
                commit_sha: Some("0123456789abcdef".into()),
                run_url: Some("https://git.example/ml/pipes/actions/runs/7".into()),
                ..Default::default()
            }),
            target: Some(TargetInfo {
                endpoint: "http://kfp".into(),
                ui_url: Some("https://kfp.example".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn long_messages_are_cut_under_the_limit_with_a_count() {
        let m = message(&failing_report(200), "t");
        assert!(m.message.len() < 4096, "{}", m.message.len());
        assert!(m.message.len() <= MAX_MESSAGE);
        let tail = m.message.lines().last().expect("last line");
        assert!(
            tail.starts_with("…and ") && tail.ends_with(" more"),
            "{tail}"
        );
        let shown = m.message.lines().filter(|l| l.starts_with("- ")).count();
        assert_eq!(tail, format!("…and {} more", 200 - shown));
        assert_eq!(m.priority, 4);
        assert_eq!(m.tags, vec!["rotating_light"]);
        assert_eq!(
            m.title,
            "ml/pipes: deploy failed: 200 failed, 0 uploaded, 0 unchanged"
        );
        assert_eq!(
            m.click.as_deref(),
            Some("https://git.example/ml/pipes/actions/runs/7")
        );
        assert_eq!(m.actions.len(), 2);
    }

    #[test]
    fn a_short_report_is_not_cut() {
        let m = message(&failing_report(2), "t");
        assert!(!m.message.contains("more"));
        assert!(
            m.message
                .contains("- `pipeline_ü_1`: compile: NameError: name 'ä1'")
        );
        assert!(m.message.contains("commit `0123456`"));
    }
}
