//! `kfp-ci check --print-inputs` and `kfp-ci check --verify-workflow`: what the pipelines read,
//! and whether the CI trigger covers it (docs/incremental.md).

use std::collections::BTreeSet;

use anyhow::Context;

use crate::cli::{CheckCmd, GlobalArgs};
use crate::compile::{Progress, compile_pipelines_with, inputs};
use crate::output;
use crate::settings::{self, CompileSettings};
use crate::status::ExitStatus;

pub async fn run(cmd: &CheckCmd, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let loaded = settings::load(global.config.as_deref(), &cwd)?;
    let settings = CompileSettings::resolve(&cmd.compile, &loaded)?;
    let mut on_progress = |progress: Progress<'_>| {
        if let Progress::Finished { result, .. } = progress
            && let Err(e) = &result.outcome
        {
            output::always(&format!("  failed  {}: {}\n", result.file.rel, e.message));
        }
    };
    let run = compile_pipelines_with(&settings, &mut on_progress).await?;
    let mut reads = inputs::repository_reads(&settings.root, run.inputs.values());
    // The configuration decides what is compiled and how.
    if let Some(config) = &loaded.path
        && let Ok(rel) = std::path::absolute(config)
            .unwrap_or_else(|_| config.clone())
            .strip_prefix(&settings.root)
        && let Some(rel) = rel.to_str()
    {
        reads.insert(rel.replace('\\', "/"));
    }
    let failed = run.failed();
    if failed > 0 {
        output::always(&format!(
            "{failed} of {} pipeline files failed to compile: what they read is not listed\n",
            run.discovered
        ));
    }
    let mut status = if failed > 0 {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    };
    if cmd.print_inputs {
        for line in inputs::collapse(&settings.root, &reads) {
            output::data_line(&line)?;
        }
    }
    if cmd.verify_workflow {
        status = verify(&settings.root, &reads, status)?;
    }
    Ok(status)
}

/// `--verify-workflow`: one message per workflow; a failure when a trigger misses a file.
fn verify(
    root: &std::path::Path,
    reads: &BTreeSet<String>,
    mut status: ExitStatus,
) -> anyhow::Result<ExitStatus> {
    for (path, coverage) in inputs::verify_workflows(root, reads)? {
        let coverage = coverage?;
        output::always(&coverage.message(&path, reads.len()));
        if !coverage.is_covered() {
            status = ExitStatus::Failure;
        }
    }
    Ok(status)
}
