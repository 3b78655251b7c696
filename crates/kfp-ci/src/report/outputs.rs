//! Job outputs: `$GITHUB_OUTPUT` (act-based runners parse it strictly) and a dotenv file (GitLab).

use crate::report::{Action, Report, Status};

/// act's parser (Gitea, Forgejo, nektos/act) reads lines with Go's default 64 KiB limit; a longer
/// line silently ends parsing. Stay well below it.
const MAX_LINE: usize = 60 * 1024;
/// GitLab rejects dotenv reports above about 5 KB.
const DOTENV_LIMIT: usize = 5000;
/// Longest `detail` kept in the exported report: the notify job needs the first line, not tracebacks.
const MAX_DETAIL: usize = 2000;

/// Names of the pipelines that failed, comma-separated, on one line.
pub fn failed_names(report: &Report) -> String {
    report
        .pipelines
        .iter()
        .filter(|p| is_failed(p))
        .map(|p| one_line(&p.name))
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn is_failed(p: &crate::report::PipelineReport) -> bool {
    p.status == Status::Failed || p.action == Action::Error || p.error.is_some()
}

fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

/// The report as exported to later jobs: no Mermaid text; details, messages and reasons cut to
/// 2000 bytes, so no line of the pretty form comes near act's 64 KiB limit.
pub fn export_report(report: &Report) -> Report {
    let mut report = report.clone();
    for p in &mut report.pipelines {
        p.mermaid = None;
        if let Some(err) = &mut p.error {
            shorten(&mut err.detail);
            shorten(&mut err.message);
        }
        shorten(&mut p.reason);
    }
    for err in &mut report.errors {
        shorten(err);
    }
    report
}

/// Cut a text to [`MAX_DETAIL`] bytes on a UTF-8 boundary, marking the cut with `…`.
fn shorten(text: &mut String) {
    if crate::text::cut(text, MAX_DETAIL) {
        text.push('…');
    }
}

fn scalar_outputs(report: &Report) -> Vec<(&'static str, String)> {
    let c = &report.counts;
    vec![
        ("compiled", c.compiled.to_string()),
        ("uploaded", c.uploaded().to_string()),
        ("unchanged", c.unchanged.to_string()),
        ("failed", c.failed.to_string()),
        (
            "version_tag",
            one_line(report.version_tag.as_deref().unwrap_or("")),
        ),
        ("failed_names", failed_names(report)),
    ]
    .into_iter()
    // Only after smoke runs, so workflows without them see the outputs they always had.
    .chain((!report.smoke.is_empty()).then(|| ("smoke_failed", super::smoke_failed_names(report))))
    .collect()
}

/// The text appended to `$GITHUB_OUTPUT`: `key=value` lines, and a heredoc for the report when
/// it would not fit on one line. Never a blank line (act fails the step on one).
pub fn github_output(report: &Report) -> String {
    github_output_with(report, &random_delimiter())
}

fn random_delimiter() -> String {
    format!("ghadelimiter_{:032x}", rand::random::<u128>())
}

pub(crate) fn github_output_with(report: &Report, delimiter: &str) -> String {
    let mut out = String::new();
    for (key, value) in scalar_outputs(report) {
        out.push_str(&format!("{key}={value}\n"));
    }
    let exported = export_report(report);
    let compact = serde_json::to_string(&exported).unwrap_or_else(|_| "{}".to_string());
    if compact.len() + "report=".len() < MAX_LINE {
        out.push_str(&format!("report={compact}\n"));
    } else {
        // Pretty JSON puts every value on its own line; a value is at most MAX_DETAIL long
        // except names and messages, which are one line each.
        let pretty = serde_json::to_string_pretty(&exported).unwrap_or_else(|_| "{}".to_string());
        let mut delimiter = delimiter.to_string();
        while pretty.contains(&delimiter) {
            delimiter = random_delimiter();
        }
        out.push_str(&format!("report<<{delimiter}\n{pretty}\n{delimiter}\n"));
    }
    out
}

/// The dotenv text (`KFP_CI_COMPILED=3` …, for `artifacts: reports: dotenv:`): one line per
/// variable, no multi-line values, no comments, no blank lines. `KFP_CI_REPORT` is included only
/// when the whole file stays under GitLab's 5 KB; the bool says it was left out.
pub fn dotenv(report: &Report) -> (String, bool) {
    let mut out = String::new();
    for (key, value) in scalar_outputs(report) {
        out.push_str(&format!("KFP_CI_{}={value}\n", key.to_ascii_uppercase()));
    }
    let compact = serde_json::to_string(&export_report(report)).unwrap_or_default();
    let line = format!("KFP_CI_REPORT={compact}\n");
    if out.len() + line.len() <= DOTENV_LIMIT {
        out.push_str(&line);
        (out, false)
    } else {
        (out, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Counts, PipelineError, PipelineReport};

    fn report() -> Report {
        Report {
            schema: 1,
            command: "deploy".into(),
            version_tag: Some("v20261124-120000".into()),
            counts: Counts {
                discovered: 3,
                compiled: 2,
                created: 1,
                updated: 0,
                unchanged: 1,
                failed: 1,
            },
            pipelines: vec![
                PipelineReport {
                    name: "a".into(),
                    action: Action::Create,
                    status: Status::Done,
                    mermaid: Some("flowchart TD\n  x".into()),
                    ..Default::default()
                },
                PipelineReport {
                    name: "bad".into(),
                    action: Action::Error,
                    status: Status::Failed,
                    error: Some(PipelineError {
                        kind: "compile".into(),
                        message: "NameError".into(),
                        detail: "x".repeat(5000),
                    }),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    fn assert_act_parsable(text: &str) {
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            assert!(line.len() < 64 * 1024, "line too long for act");
            if let Some((key, delim)) = line.split_once("<<")
                && !key.contains('=')
            {
                assert!(lines.any(|l| l == delim), "missing delimiter {delim}");
            } else {
                assert!(line.contains('='), "act rejects {line:?}");
            }
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn outputs_are_key_value_lines_without_mermaid_or_long_details() {
        let text = github_output_with(&report(), "D");
        assert_act_parsable(&text);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            &lines[..6],
            &[
                "compiled=2",
                "uploaded=1",
                "unchanged=1",
                "failed=1",
                "version_tag=v20261124-120000",
                "failed_names=bad"
            ]
        );
        let json = lines[6].strip_prefix("report=").expect("report line");
        let back: Report = serde_json::from_str(json).expect("json");
        assert_eq!(back.pipelines[0].mermaid, None);
        assert!(
            back.pipelines[1]
                .error
                .as_ref()
                .expect("error")
                .detail
                .len()
                <= MAX_DETAIL + 3
        );
    }

    #[test]
    fn a_huge_report_goes_in_a_heredoc_with_short_lines() {
        let mut big = report();
        let template = big.pipelines[1].clone();
        for i in 0..400 {
            let mut p = template.clone();
            p.name = format!("pipeline_number_{i}");
            big.pipelines.push(p);
        }
        let text = github_output_with(&big, "ghadelimiter_test");
        assert_act_parsable(&text);
        assert!(text.contains("report<<ghadelimiter_test\n{\n"));
        assert!(text.ends_with("}\nghadelimiter_test\n"));
        let start = text.find("report<<ghadelimiter_test\n").expect("heredoc") + 26;
        let end = text.rfind("\nghadelimiter_test").expect("end");
        let back: Report = serde_json::from_str(&text[start..end]).expect("json");
        assert_eq!(back.pipelines.len(), 402);
    }

    #[test]
    fn dotenv_has_no_multiline_values_and_drops_a_large_report() {
        let (text, dropped) = dotenv(&report());
        assert!(!dropped);
        assert!(
            text.lines()
                .all(|l| l.starts_with("KFP_CI_") && l.contains('='))
        );
        assert!(text.contains("KFP_CI_FAILED_NAMES=bad\n"));
        let mut big = report();
        for _ in 0..20 {
            big.pipelines.push(big.pipelines[1].clone());
        }
        let (text, dropped) = dotenv(&big);
        assert!(dropped);
        assert!(!text.contains("KFP_CI_REPORT"));
    }

    #[test]
    fn newlines_in_names_never_break_a_line() {
        let mut r = report();
        r.pipelines[1].name = "evil\nname=1".into();
        let text = github_output_with(&r, "D");
        assert_act_parsable(&text);
        assert!(text.contains("failed_names=evil name=1\n"));
    }
}
