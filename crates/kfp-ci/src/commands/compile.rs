//! `kfp-ci compile` (and, writing nothing, `kfp-ci check`): discover, compile, print one line per
//! pipeline and a summary, write `OUT_DIR/<name>.yaml`.

use std::path::PathBuf;

use anyhow::Context;

use crate::cli::{CompileArgs, CompileCmd, GlobalArgs, OutputFormat};
use crate::compile::{CompileRun, FileResult, Progress, compile_pipelines_with};
use crate::report::{Action, Counts, PipelineReport, REPORT_SCHEMA, Report, Status};
use crate::settings::{self, CompileSettings};
use crate::status::ExitStatus;

/// The default output directory, relative to the repository root.
pub const DEFAULT_OUT_DIR: &str = "dist/pipelines";

pub async fn run(cmd: CompileCmd, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    run_compile(&cmd.compile, Some(cmd.out_dir), cmd.output, global).await
}

/// Shared by `compile` (`out_dir = Some(..)`) and `check` (`None`: write nothing).
pub(super) async fn run_compile(
    args: &CompileArgs,
    out_dir: Option<Option<PathBuf>>,
    output: OutputFormat,
    global: &GlobalArgs,
) -> anyhow::Result<ExitStatus> {
    let started_at = jiff::Timestamp::now();
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let loaded = settings::load(global.config.as_deref(), &cwd)?;
    let settings = CompileSettings::resolve(args, &loaded)?;
    // `build/./` or `build/x/..`: made plain (`create_dir_all` fails on a trailing `.`).
    let out_dir = out_dir.map(|flag| {
        crate::discover::normalize(&match flag {
            Some(dir) => cwd.join(dir),
            None => settings.root.join(
                loaded
                    .config
                    .out_dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_OUT_DIR)),
            ),
        })
    });
    let command = if out_dir.is_some() {
        "compile"
    } else {
        "check"
    };
    // An output directory that cannot be made is a usage error, found before compiling anything.
    if let Some(dir) = &out_dir {
        std::fs::create_dir_all(dir).map_err(|e| {
            let source = loaded
                .path
                .as_ref()
                .map(|p| format!("--out-dir or `out_dir` in {}", p.display()))
                .unwrap_or_else(|| "--out-dir".to_string());
            anyhow::anyhow!(
                "cannot create the output directory {} ({source}): {e}; pick a writable directory",
                dir.display()
            )
        })?;
    }

    let verbose = global.verbose > 0;
    let quiet = global.quiet;
    let bar = if verbose {
        None
    } else {
        crate::output::progress_bar("{spinner} compiling [{bar:30}] {pos}/{len}")
    };
    // Files reported as failed while compiling; a failure found later (a duplicate name, a file
    // that cannot be written) is reported after the run.
    let mut reported_failed = std::collections::HashSet::new();
    let mut on_progress = |progress: Progress<'_>| {
        let (result, done) = match progress {
            Progress::Started { files } => {
                if let Some(bar) = &bar {
                    bar.set_length(files as u64);
                }
                return;
            }
            Progress::Finished { result, done, .. } => (result, done),
        };
        if result.outcome.is_err() {
            reported_failed.insert(result.file.rel.clone());
        }
        let text = render_line(result, verbose);
        match &bar {
            Some(bar) => {
                bar.set_position(done as u64);
                if !(quiet && result.outcome.is_ok()) {
                    bar.println(text.trim_end());
                }
            }
            None => {
                if !(quiet && result.outcome.is_ok()) {
                    crate::output::always(&text);
                }
            }
        }
    };
    let run = compile_pipelines_with(&settings, &mut on_progress).await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let mut run = run?;

    if let Some(dir) = &out_dir {
        write_outputs(&mut run, dir)?;
    }
    for result in &run.results {
        if result.outcome.is_err() && !reported_failed.contains(&result.file.rel) {
            crate::output::always(&render_line(result, verbose));
        }
    }

    if command == "check" {
        // `[[schedules]]` against the compiled pipelines: the same errors plan and deploy give.
        let specs = run
            .results
            .iter()
            .map(|r| {
                let spec = r
                    .outcome
                    .as_ref()
                    .ok()
                    .and_then(|c| crate::schedules::spec_value(&c.yaml));
                (r.file.name.clone(), spec)
            })
            .collect();
        crate::schedules::check_config(&loaded, &specs, args.paths.is_empty())?;
    }
    let failed = run.failed();
    if output == OutputFormat::Json {
        let json = crate::redact::redacted_json(&build_report(&run, command, started_at))?;
        crate::output::data_line(&json)?;
    }
    if !quiet || failed > 0 {
        crate::output::always(&format!(
            "{}\n",
            summary(&run, command, out_dir.as_deref(), &cwd)
        ));
    }
    Ok(if failed > 0 {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

/// Write each compiled pipeline to `dir/<name>.yaml`; a file that cannot be written fails.
fn write_outputs(run: &mut CompileRun, dir: &std::path::Path) -> anyhow::Result<()> {
    if run.compiled() == 0 {
        return Ok(());
    }
    fs_err::create_dir_all(dir).with_context(|| "cannot create the output directory")?;
    for result in &mut run.results {
        if let Ok(compiled) = &result.outcome {
            let path = dir.join(format!("{}.yaml", result.file.name));
            if let Err(e) = fs_err::write(&path, &compiled.yaml) {
                result.outcome = Err(crate::report::PipelineError {
                    kind: crate::report::ErrorKind::Write,
                    message: format!("cannot write {}: {e}", path.display()),
                    detail: String::new(),
                });
            }
        }
    }
    Ok(())
}

/// One line (plus, on failure or with -v, the captured output and traceback tail).
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

fn summary(
    run: &CompileRun,
    command: &str,
    out_dir: Option<&std::path::Path>,
    cwd: &std::path::Path,
) -> String {
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
