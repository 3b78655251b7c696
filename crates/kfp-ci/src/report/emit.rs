//! The report's own outputs: the table on stderr, JSON on stdout, the report file.

use anyhow::{Context, Result};

use super::Report;
use crate::cli::OutputFormat;

/// Table on stderr (unless quiet), JSON on stdout with `--output json`, the report file.
pub fn emit(
    report: &Report,
    output: OutputFormat,
    verbose: bool,
    report_file: Option<&std::path::Path>,
    table: bool,
) -> Result<()> {
    if table {
        crate::output::message(&report.render_table(verbose));
    }
    let json = report_json(report)?;
    if output == OutputFormat::Json {
        crate::output::data_line(&json).context("cannot write the report to stdout")?;
    }
    if let Some(path) = report_file {
        write_report_file(path, &json)?;
    }
    Ok(())
}

fn report_file_error(path: &std::path::Path, err: &std::io::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot write the report file {} (--report-file): {err}",
        path.display()
    )
}

/// Can the report file be written? Called before anything is compiled or deployed: creates its
/// directory and writes `placeholder` there, a valid report saying the run did not finish, so a
/// run killed before its end (SIGKILL, a CI job cancelled hard) never leaves an empty or stale
/// file for the notify job.
pub fn check_report_file(path: &std::path::Path, placeholder: &Report) -> Result<()> {
    write_report_file(path, &report_json(placeholder)?)
}

/// Write the whole report or nothing: a temporary file next to it, renamed over it (a signal or
/// a full disk never leaves a truncated file).
fn write_report_file(path: &std::path::Path, json: &str) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| report_file_error(path, &e))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "report.json".into());
    let temp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let written = std::fs::write(&temp, format!("{json}\n")).and_then(|()| {
        if path.is_dir() {
            return Err(std::io::Error::other("it is a directory"));
        }
        std::fs::rename(&temp, path)
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(report_file_error(path, &e));
    }
    Ok(())
}

/// The report as JSON with every registered secret removed from every string field before
/// serialising (a text replacement on the JSON would miss a secret holding `"` or `\\`, which
/// JSON escapes).
pub fn report_json(report: &Report) -> Result<String> {
    crate::redact::redacted_json(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Command, PipelineReport};

    #[test]
    fn report_json_redacts_secrets_that_json_escapes() {
        let secret = "tok\"en\\with-quote-7f3a";
        crate::redact::register(secret);
        let mut report = Report::new(Command::Deploy);
        report
            .errors
            .push(format!("the server said: bad token {secret}"));
        report.pipelines.push(PipelineReport {
            name: "p".into(),
            reason: format!("rejected {secret}"),
            ..PipelineReport::default()
        });
        let json = report_json(&report).expect("redacted");
        let escaped = serde_json::to_string(secret).expect("string");
        assert!(!json.contains(escaped.trim_matches('"')), "{json}");
        assert!(!json.contains("with-quote-7f3a"), "{json}");
        assert!(json.contains("bad token"), "{json}");
    }
}
