//! `kfp-ci deploy`: plan, then apply; report on stderr, JSON on stdout/in a file.

use std::time::Instant;

use anyhow::{Result, bail};

use super::plan::{
    check_report_file, emit, finish_links, item_report, load_config, newer, prepare, server_version,
};
use crate::apply::{self, ApplyOptions, Provenance};
use crate::cli::{DeployCmd, GlobalArgs};
use crate::interrupt::Interrupt;
use crate::report::{Action, Status};
use crate::status::ExitStatus;

/// Default parallel uploads.
pub const DEFAULT_UPLOAD_JOBS: usize = 8;

pub async fn run(cmd: DeployCmd, global: &GlobalArgs) -> Result<ExitStatus> {
    let started = Instant::now();
    // From here on SIGINT/SIGTERM end the run with a report instead of killing it mid-request.
    let interrupt = Interrupt::install();
    let loaded = load_config(global, &cmd.compile.paths)?;
    let deploy_config = &loaded.config.deploy;
    let version_tag = match &cmd.version_tag {
        Some(tag) => check_version_tag(tag)?,
        None => default_version_tag(),
    };
    let upload_jobs = cmd
        .upload_jobs
        .or(deploy_config.upload_jobs)
        .unwrap_or(DEFAULT_UPLOAD_JOBS);
    if upload_jobs == 0 {
        bail!("--upload-jobs must be at least 1");
    }
    let keep_versions = cmd.keep_versions.or(deploy_config.keep_versions);
    if keep_versions == Some(0) {
        bail!("--keep-versions must be at least 1 (the newest version is never deleted)");
    }
    let atomic = cmd.atomic || deploy_config.atomic.unwrap_or(false);
    // Review and undo (commands/cleanup.rs): previews never touch production pipelines.
    let preview = cmd
        .preview
        .as_deref()
        .map(crate::review::check_preview_name)
        .transpose()?;
    let prune = preview.is_none() && (cmd.prune || deploy_config.prune.unwrap_or(false));
    let keep_versions = if preview.is_some() {
        None
    } else {
        keep_versions
    };
    // Resolve notification settings early: a configuration error exits 2 before any deploy.
    let notify_settings = crate::notify::resolve(&cmd.notify, &loaded.config.notify)?;
    // A report file that cannot be written fails now, not after everything was deployed. From
    // here on every way out writes the whole report over the placeholder.
    if let Some(path) = &cmd.report_file {
        let mut placeholder = crate::report::Report::new("deploy");
        placeholder.version_tag = Some(version_tag.clone());
        placeholder.dry_run = cmd.dry_run;
        placeholder.errors.push(
            "the deploy did not finish: this is the placeholder it writes when it starts (the job was killed, or is still running)".into(),
        );
        check_report_file(path, &placeholder)?;
    }

    let mut ci_info =
        Some(crate::ci::detect_probing(&loaded.config.ci, cmd.notify.run_url.as_deref()).await);
    // A local run deploys the commit of the repository it reads, wherever it was started from.
    if let Some(ci) = ci_info
        .as_mut()
        .filter(|c| c.platform == crate::ci::Platform::Local)
    {
        ci.commit_sha = crate::git::head(&loaded.root);
    }
    let mut provenance = Provenance {
        commit_sha: ci_info.as_ref().and_then(|c| c.commit_sha.clone()),
        dirty: false,
        git_ref: ci_info.as_ref().and_then(|c| c.git_ref.clone()),
        run_url: cmd
            .notify
            .run_url
            .clone()
            .or_else(|| ci_info.as_ref().and_then(|c| c.run_url.clone())),
        run_id: ci_info.as_ref().and_then(|c| c.run_id.clone()),
    };

    let mut report = crate::report::Report::new("deploy");
    report.version_tag = Some(version_tag.clone());
    report.dry_run = cmd.dry_run;
    report.ci = ci_info;
    let prepared = tokio::select! {
        biased;
        signal = interrupt.wait() => Err(signal),
        prepared = prepare(&cmd.compile, &cmd.target, &loaded, &mut report, cmd.force) => Ok(prepared),
    };
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(signal) => {
            // Nothing is written before apply: stopping here leaves the server as it was.
            report.errors.push(format!(
                "interrupted ({}) before anything was deployed: nothing was uploaded; rerun the deploy",
                signal.name()
            ));
            report.recount();
            report.duration_ms = started.elapsed().as_millis() as u64;
            let emitted = emit(
                &report,
                cmd.output,
                global,
                cmd.report_file.as_deref(),
                false,
            );
            if let Err(e) = &emitted {
                tracing::warn!("{e:#}");
            }
            if let Err(e) = crate::ci::publish(&report) {
                tracing::warn!("{e:#}");
            }
            if let Err(e) = crate::notify::deliver(&report, &notify_settings).await {
                tracing::warn!("{e:#}");
            }
            return Ok(ExitStatus::Interrupted(signal));
        }
    };
    let mut prepared = match prepared {
        Ok(p) => p,
        Err(err) => {
            // Configuration, an unreachable server, rejected credentials: still leave a report
            // (JSON, report file, CI outputs and step summary) and notify, then exit 2 with the
            // error. A separate notify job reads the report's error ("cannot reach the KFP API
            // at …") instead of "failed before it could report" (docs/ci.md).
            report
                .errors
                .push(crate::redact::redact(&format!("{err:#}")));
            report.recount();
            report.duration_ms = started.elapsed().as_millis() as u64;
            if let Err(e) = emit(
                &report,
                cmd.output,
                global,
                cmd.report_file.as_deref(),
                false,
            ) {
                tracing::warn!("{e:#}");
            }
            if let Err(e) = crate::ci::publish(&report) {
                tracing::warn!("{e:#}");
            }
            if let Err(e) = crate::notify::deliver(&report, &notify_settings).await {
                tracing::warn!("{e:#}");
            }
            return Err(err);
        }
    };
    if let Some(preview) = &preview {
        super::cleanup::preview_items(&mut prepared, preview).await?;
    }
    let mut pruning = if prune {
        match super::cleanup::prune_plan(&prepared, &loaded.root).await {
            Ok(items) => items,
            Err(e) => {
                report.errors.push(e);
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    if !global.quiet && !pruning.is_empty() {
        eprint!("{}", crate::review::render_prune(&pruning));
    }
    report.pipelines = prepared.items.iter().map(item_report).collect();
    for (p, item) in report.pipelines.iter_mut().zip(&prepared.items) {
        if item.changes()
            && let Some(spec) = &item.spec
            && let Ok(value) = serde_json::from_str::<serde_json::Value>(&spec.canonical)
        {
            p.mermaid = Some(crate::dag::mermaid(&value));
        }
    }

    // A spec an older version already holds: say so (history module).
    let notes = crate::history::revert_notes(&prepared.client, &prepared.items).await;
    for (p, note) in report.pipelines.iter_mut().zip(notes) {
        if let Some(note) = note {
            p.reason = format!("{}; {note}", p.reason);
        }
    }

    let blocked = atomic && prepared.items.iter().any(|i| i.action == Action::Error);
    if cmd.dry_run {
        // The plan is the answer.
    } else if blocked {
        for p in &mut report.pipelines {
            if p.action != Action::Error && p.action != Action::Unchanged {
                p.status = Status::Skipped;
                p.reason = format!("{} (not applied: --atomic and a pipeline failed)", p.reason);
            }
        }
        report.errors.push(
            "--atomic: nothing was applied because at least one pipeline failed to compile or plan"
                .into(),
        );
    } else {
        mark_dirty(&mut provenance, &loaded.root, &prepared.items);
        let server = server_version(&prepared.health);
        let opts = ApplyOptions {
            namespace: prepared.target.namespace.clone(),
            multi_user: prepared.health.multi_user,
            version_tag: version_tag.clone(),
            // Upload handlers before 2.17 ignore the tags parameter, so unknown versions get them.
            tags: server.as_deref().is_none_or(|v| !newer("2.17.0", v)),
            provenance,
            keep_versions,
            upload_jobs,
        };
        let apply_started = Instant::now();
        let outcomes = apply::apply(&prepared.client, &prepared.items, &opts, &interrupt).await;
        if let Some(t) = &mut report.timings {
            t.apply_ms = apply_started.elapsed().as_millis() as u64;
        }
        for (p, o) in report.pipelines.iter_mut().zip(outcomes) {
            p.status = o.status;
            if let Some(action) = o.action {
                p.action = action;
            }
            if o.pipeline_id.is_some() {
                p.pipeline_id = o.pipeline_id;
            }
            p.version_id = o.version_id;
            p.version_name = o.version_name;
            if let Some(note) = o.note {
                p.reason = format!("{}; {note}", p.reason);
            }
            if o.pruned > 0 {
                p.reason = format!("{}; {} old version(s) deleted", p.reason, o.pruned);
            }
            if o.error.is_some() {
                p.error = o.error;
            }
        }
    }
    // Schedules and smoke runs come after the uploads; after a signal they are only planned.
    let apply_more = !cmd.dry_run && !blocked && !interrupt.is_set();
    let states = crate::schedules::pipeline_states(&report.pipelines, !cmd.dry_run && !blocked);
    report.schedules = if !apply_more {
        crate::schedules::plan(
            &prepared.client,
            &prepared.target.namespace,
            &prepared.schedules,
            states,
        )
        .await
    } else {
        crate::schedules::deploy(
            &prepared.client,
            &prepared.target.namespace,
            &prepared.schedules,
            states,
        )
        .await
    };
    if apply_more && !interrupt.is_set() {
        let smoke = if cmd.smoke && !prepared.schedules.smoke.enabled {
            crate::smoke::check_config(
                None,
                true,
                &crate::schedules::specs_of(&prepared.items),
                cmd.compile.paths.is_empty(),
                &prepared.schedules.source,
            )
        } else {
            Ok(prepared.schedules.smoke.clone())
        };
        match smoke {
            Ok(smoke) => {
                report.smoke = crate::smoke::run(
                    &prepared.client,
                    &prepared.target.namespace,
                    &smoke,
                    &report,
                    prepared.target.ui_url.as_deref(),
                    global.quiet,
                    &interrupt,
                )
                .await;
            }
            Err(e) => report.errors.push(format!("--smoke: {e:#}")),
        }
    }
    let signal = interrupt.signal();
    if signal.is_none() && !cmd.dry_run && !blocked && !pruning.is_empty() {
        super::cleanup::prune_apply(&prepared, &mut pruning).await;
        if !global.quiet {
            eprint!("{}", crate::review::render_prune(&pruning));
        }
        for p in pruning.iter().filter(|p| p.action == "failed") {
            report
                .errors
                .push(format!("--prune: {}: {}", p.name, p.reason));
        }
    }
    if let Some(signal) = signal {
        let not_started = report
            .pipelines
            .iter()
            .filter(|p| p.status == Status::Skipped && p.reason.ends_with(apply::NOT_STARTED))
            .count();
        let applying = !cmd.dry_run && !blocked;
        report.errors.push(if !applying {
            format!(
                "interrupted ({}) after the plan was complete: nothing was applied",
                signal.name()
            )
        } else if not_started == 0 {
            format!(
                "interrupted ({}): every change had already started and was finished",
                signal.name()
            )
        } else {
            format!(
                "interrupted ({}): {not_started} pipeline(s) not applied (the uploads in flight were finished); rerun the deploy to apply them",
                signal.name()
            )
        });
    }
    finish_links(&mut report, &prepared.target);
    report.recount();
    report.duration_ms = started.elapsed().as_millis() as u64;

    // The CI outputs and the notification go out even when the report file cannot be written
    // (it was writable at the start); the exit status says so.
    let emitted = emit(
        &report,
        cmd.output,
        global,
        cmd.report_file.as_deref(),
        true,
    );
    if let Err(e) = &emitted {
        tracing::warn!("{e:#}");
    }
    crate::ci::publish(&report)?;
    crate::notify::deliver(&report, &notify_settings).await?;
    Ok(if let Some(signal) = signal {
        ExitStatus::Interrupted(signal)
    } else if emitted.is_err() {
        ExitStatus::Error
    } else if report.has_failures() {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

/// A work tree that differs from the commit being deployed (tracked files changed, or a pipeline
/// file not committed) is not that commit: its versions say `<sha>-dirty` (description and
/// `git-sha` tag), as `git describe --dirty` would.
fn mark_dirty(
    provenance: &mut Provenance,
    root: &std::path::Path,
    items: &[crate::plan::PlanItem],
) {
    let Some(sha) = &provenance.commit_sha else {
        return;
    };
    // Only when the work tree is at that commit (a CI variable may name another one).
    if crate::git::head(root).as_deref() != Some(sha.as_str()) {
        return;
    }
    let files: Vec<&str> = items.iter().map(|i| i.file.as_str()).collect();
    if crate::git::dirty(root, &files) == Some(true) {
        let short = &sha[..sha.len().min(7)];
        tracing::info!(
            "the work tree has changes not in commit {short}: the versions say {short}{}",
            crate::git::DIRTY_SUFFIX
        );
        provenance.dirty = true;
    }
}

/// `vYYYYMMDD-HHMMSS` in UTC, computed once per run.
pub fn default_version_tag() -> String {
    jiff::Timestamp::now()
        .strftime("v%Y%m%d-%H%M%S")
        .to_string()
}

fn check_version_tag(tag: &str) -> Result<String> {
    let tag = tag.trim();
    if tag.is_empty() {
        bail!("--version-tag is empty");
    }
    if tag.len() > kfp_api::wire::limits::MAX_VERSION_NAME {
        bail!(
            "--version-tag `{tag}` is longer than {} bytes",
            kfp_api::wire::limits::MAX_VERSION_NAME
        );
    }
    Ok(tag.to_string())
}
