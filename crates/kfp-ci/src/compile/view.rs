//! What a compile run looks like to people and to machines: the per-file lines, the summary,
//! the JSON report, and the compiled YAML written to an output directory (`compile`, `check`).

use std::path::Path;

use anyhow::Context;

use super::{CompileRun, FileResult};
use crate::report::{Action, Counts, PipelineReport, REPORT_SCHEMA, Report, Status};
use crate::row::{ErrorKind, PipelineError};

impl CompileRun {
    /// Write each compiled pipeline to `dir/<name>.yaml`; a file that cannot be written fails.
    pub fn write_yaml(&mut self, dir: &Path) -> anyhow::Result<()> {
        if self.compiled() == 0 {
            return Ok(());
        }
        fs_err::create_dir_all(dir).with_context(|| "cannot create the output directory")?;
        for result in &mut self.results {
            if let Ok(compiled) = &result.outcome {
                let path = dir.join(format!("{}.yaml", result.file.name));
                if let Err(e) = fs_err::write(&path, &compiled.yaml) {
                    result.outcome = Err(PipelineError {
                        kind: ErrorKind::Write,
                        message: format!("cannot write {}: {e}", path.display()),
                        detail: String::new(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The summary line: `compiled N of M pipelines in S with kfp V → DIR; F failed`.
    pub fn summary(&self, command: &str, out_dir: Option<&Path>, cwd: &Path) -> String {
        summary(self, command, out_dir, cwd)
    }

    /// The `--output json` report (the same schema as plan and deploy).
    pub fn report(&self, command: &str, started_at: jiff::Timestamp) -> Report {
        build_report(self, command, started_at)
    }
}

impl FileResult {
    /// One line (plus, on failure or with -v, the captured output and traceback tail), redacted.
    pub fn line(&self, verbose: bool) -> String {
        render_line(self, verbose)
    }
}

fn render_line(result: &FileResult, verbose: bool) -> String {
    let secs = result.duration.as_secs_f64();
    let mut out = match &result.outcome {
        Ok(c) => {
            let function = if verbose {
                format!(" [{}]", c.function)
            } else {
                String::new()
            };
            format!(
                "  ok      {} ({}{function}) {secs:.2}s\n",
                result.file.name, result.file.rel
            )
        }
        Err(e) => format!(
            "  FAILED  {} ({}): {}: {}\n",
            result.file.name, result.file.rel, e.kind, e.message
        ),
    };
    let failed = result.outcome.is_err();
    if (failed || verbose) && !result.output.trim().is_empty() {
        out.push_str(&boxed(
            &format!("output of {}", result.file.rel),
            &result.output,
        ));
    }
    if verbose
        && let Err(e) = &result.outcome
        && !e.detail.trim().is_empty()
    {
        out.push_str(&boxed("traceback (tail)", &e.detail));
    }
    crate::redact::redact(&out)
}

fn boxed(title: &str, body: &str) -> String {
    let mut s = format!("    ----- {title} -----\n");
    for line in body.trim_end().lines() {
        s.push_str("    ");
        s.push_str(line);
        s.push('\n');
    }
    s.push_str("    -----\n");
    s
}

fn summary(run: &CompileRun, command: &str, out_dir: Option<&Path>, cwd: &Path) -> String {
    let secs = run.duration.as_secs_f64();
    if run.discovered == 0 {
        return "warning: no pipeline files found (the PATHs, `include`/`exclude` globs and `max_depth` decide where kfp-ci looks; see docs/compile.md)".to_string();
    }
    let failed = run.failed();
    let verb = if command == "compile" {
        "compiled"
    } else {
        "checked"
    };
    let mut s = format!(
        "{verb} {} of {} pipeline{} in {secs:.2}s with kfp {}",
        run.compiled(),
        run.discovered,
        if run.discovered == 1 { "" } else { "s" },
        run.kfp_version
    );
    if let Some(dir) = out_dir
        && run.compiled() > 0
    {
        let shown = dir.strip_prefix(cwd).unwrap_or(dir);
        s.push_str(&format!(" → {}", shown.display()));
    }
    if failed > 0 {
        s.push_str(&format!("; {failed} failed"));
    }
    s
}

fn build_report(run: &CompileRun, command: &str, started_at: jiff::Timestamp) -> Report {
    let pipelines = run
        .results
        .iter()
        .map(|r| PipelineReport {
            name: r.file.name.clone(),
            file: r.file.rel.clone(),
            action: Action::Compiled,
            status: if r.outcome.is_ok() {
                Status::Done
            } else {
                Status::Failed
            },
            error: r.outcome.as_ref().err().cloned(),
            ..Default::default()
        })
        .collect();
    Report {
        schema: REPORT_SCHEMA,
        kfp_ci_version: env!("CARGO_PKG_VERSION").to_string(),
        command: command.into(),
        kfp_version: (!run.kfp_version.is_empty()).then(|| run.kfp_version.clone()),
        counts: Counts {
            discovered: run.discovered,
            compiled: run.compiled(),
            failed: run.failed(),
            ..Default::default()
        },
        pipelines,
        started_at: started_at.to_string(),
        duration_ms: run.duration.as_millis() as u64,
        ..Default::default()
    }
}
