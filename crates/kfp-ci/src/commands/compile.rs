//! `kfp-ci compile` (and, writing nothing, `kfp-ci check`): discover, compile, print one line per
//! pipeline and a summary, write `OUT_DIR/<name>.yaml`.

use std::path::PathBuf;

use anyhow::Context;

use crate::cli::{CompileArgs, CompileCmd, GlobalArgs, OutputFormat};
use crate::compile::{Progress, compile_pipelines_with};
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
        let text = result.line(verbose);
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
        run.write_yaml(dir)?;
    }
    for result in &run.results {
        if result.outcome.is_err() && !reported_failed.contains(&result.file.rel) {
            crate::output::always(&result.line(verbose));
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
        let json = crate::redact::redacted_json(&run.report(command, started_at))?;
        crate::output::data_line(&json)?;
    }
    if !quiet || failed > 0 {
        crate::output::always(&format!(
            "{}\n",
            run.summary(command, out_dir.as_deref(), &cwd)
        ));
    }
    Ok(if failed > 0 {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}
