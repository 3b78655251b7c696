//! `kfp-ci deploy`: plan, then apply; report on stderr, JSON on stdout/in a file.

use std::time::Instant;

use anyhow::{Result, bail};

use super::plan::{
    check_report_file, emit, finish_links, item_report, load_config, newer, prepare, server_version,
};
use crate::apply::{self, ApplyOptions, Provenance};
use crate::cli::{DeployCmd, GlobalArgs};
use crate::report::{Action, Status};
use crate::status::ExitStatus;

/// Default parallel uploads.
pub const DEFAULT_UPLOAD_JOBS: usize = 8;

pub async fn run(cmd: DeployCmd, global: &GlobalArgs) -> Result<ExitStatus> {
    let started = Instant::now();
    let loaded = load_config(global)?;
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
    // A report file that cannot be written fails now, not after everything was deployed.
    if let Some(path) = &cmd.report_file {
        check_report_file(path)?;
    }

    // Resolve notification settings early: a configuration error exits 2 before any deploy.
    let notify_settings = crate::notify::resolve(&cmd.notify, &loaded.config.notify)?;
    let ci_info =
        Some(crate::ci::detect_probing(&loaded.config.ci, cmd.notify.run_url.as_deref()).await);
    let provenance = Provenance {
        commit_sha: ci_info.as_ref().and_then(|c| c.commit_sha.clone()),
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
    let prepared = match prepare(&cmd.compile, &cmd.target, &loaded, &mut report, cmd.force).await {
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
    report.pipelines = prepared.items.iter().map(item_report).collect();
    for (p, item) in report.pipelines.iter_mut().zip(&prepared.items) {
        if item.changes()
            && let Some(spec) = &item.spec
            && let Ok(value) = serde_json::from_str::<serde_json::Value>(&spec.canonical)
        {
            p.mermaid = Some(crate::dag::mermaid(&value));
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
        let server = server_version(&prepared.health);
        let opts = ApplyOptions {
            namespace: prepared.target.namespace.clone(),
            version_tag: version_tag.clone(),
            // Upload handlers before 2.17 ignore the tags parameter, so unknown versions get them.
            tags: server.as_deref().is_none_or(|v| !newer("2.17.0", v)),
            provenance,
            keep_versions,
            upload_jobs,
        };
        let apply_started = Instant::now();
        let outcomes = apply::apply(&prepared.client, &prepared.items, &opts).await;
        if let Some(t) = &mut report.timings {
            t.apply_ms = apply_started.elapsed().as_millis() as u64;
        }
        for (p, o) in report.pipelines.iter_mut().zip(outcomes) {
            p.status = o.status;
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
    let states = crate::schedules::pipeline_states(&report.pipelines, !cmd.dry_run && !blocked);
    report.schedules = if cmd.dry_run || blocked {
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
    if !cmd.dry_run && !blocked {
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
                )
                .await;
            }
            Err(e) => report.errors.push(format!("--smoke: {e:#}")),
        }
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
    Ok(if emitted.is_err() {
        ExitStatus::Error
    } else if report.has_failures() {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
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
