//! The deploy workflow: prepare (discover → compile → lookup → plan) → apply → schedules and
//! smoke runs → report → CI outputs and notification. One [`Record`] per pipeline carries the
//! plan through apply into the report.

use std::time::Instant;

use anyhow::{Result, bail};
use futures_util::StreamExt;

use crate::apply::{self, ApplyOptions};
use crate::cli::{DeployCmd, GlobalArgs};
use crate::interrupt::{Interrupt, Signal};
use crate::notify::NotifySettings;
use crate::plan::PlanItem;
use crate::prepare::prepare;
use crate::record::{Held, Record};
use crate::report::{Action, Command, Report};
use crate::session::load_config;
use crate::settings::LoadedConfig;
use crate::status::ExitStatus;
use crate::versions::Provenance;

/// Default parallel uploads.
pub const DEFAULT_UPLOAD_JOBS: usize = 8;

/// The deploy's settings: flags over `[deploy]` in the configuration.
struct Options {
    version_tag: String,
    upload_jobs: usize,
    keep_versions: Option<usize>,
    atomic: bool,
    preview: Option<String>,
    prune: bool,
}

impl Options {
    fn resolve(cmd: &DeployCmd, loaded: &LoadedConfig) -> Result<Options> {
        let deploy_config = &loaded.config.deploy;
        let version_tag = match &cmd.version_tag {
            Some(tag) => check_version_tag(tag)?,
            None => crate::versions::default_version_tag(),
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
        // Review and undo (crate::review): previews never touch production pipelines.
        let preview = cmd
            .preview
            .as_deref()
            .map(crate::review::check_preview_name)
            .transpose()?;
        let prune = preview.is_none() && (cmd.prune || deploy_config.prune.unwrap_or(false));
        Ok(Options {
            version_tag,
            upload_jobs,
            keep_versions: if preview.is_some() {
                None
            } else {
                keep_versions
            },
            atomic: cmd.atomic || deploy_config.atomic.unwrap_or(false),
            preview,
            prune,
        })
    }
}

/// Where a finished (or stopped) deploy's report goes.
struct Outputs<'a> {
    cmd: &'a DeployCmd,
    global: &'a GlobalArgs,
    notify: NotifySettings,
    started: Instant,
}

impl Outputs<'_> {
    /// A deploy that stopped before apply (an error, a signal): still the report (JSON, report
    /// file, CI outputs and step summary) and the notification, each failure only a warning.
    /// A separate notify job then reads the report's error ("cannot reach the KFP API at …")
    /// instead of "failed before it could report" (docs/ci.md).
    async fn early(&self, report: &mut Report) {
        report.recount();
        report.duration_ms = self.started.elapsed().as_millis() as u64;
        let emitted = crate::report::emit(
            report,
            self.cmd.output,
            self.global.verbose > 0,
            self.cmd.report_file.as_deref(),
            false,
        );
        if let Err(e) = &emitted {
            tracing::warn!("{e:#}");
        }
        if let Err(e) = crate::report::publish(report) {
            tracing::warn!("{e:#}");
        }
        if let Err(e) = crate::notify::deliver(report, &self.notify).await {
            tracing::warn!("{e:#}");
        }
    }
}

pub async fn run(cmd: &DeployCmd, global: &GlobalArgs) -> Result<ExitStatus> {
    let started = Instant::now();
    // From here on SIGINT/SIGTERM end the run with a report instead of killing it mid-request.
    let interrupt = Interrupt::install();
    let loaded = load_config(global, &cmd.compile.paths)?;
    let opts = Options::resolve(cmd, &loaded)?;
    // Resolve notification settings early: a configuration error exits 2 before any deploy.
    let outputs = Outputs {
        cmd,
        global,
        notify: crate::notify::resolve(&cmd.notify, &loaded.config.notify)?,
        started,
    };
    // A report file that cannot be written fails now, not after everything was deployed. From
    // here on every way out writes the whole report over the placeholder.
    if let Some(path) = &cmd.report_file {
        let mut placeholder = Report::new(Command::Deploy);
        placeholder.version_tag = Some(opts.version_tag.clone());
        placeholder.dry_run = cmd.dry_run;
        placeholder.errors.push(
            "the deploy did not finish: this is the placeholder it writes when it starts (the job was killed, or is still running)".into(),
        );
        crate::report::check_report_file(path, &placeholder)?;
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

    let mut report = Report::new(Command::Deploy);
    report.version_tag = Some(opts.version_tag.clone());
    report.dry_run = cmd.dry_run;
    report.ci = ci_info;
    let prepared = tokio::select! {
        biased;
        signal = interrupt.wait() => Err(signal),
        prepared = prepare(&cmd.compile, &cmd.target, &loaded, &mut report, cmd.force) => Ok(prepared),
    };
    let prepared = match prepared {
        Ok(Ok(prepared)) => prepared,
        Err(signal) => {
            // Nothing is written before apply: stopping here leaves the server as it was.
            report.errors.push(format!(
                "interrupted ({}) before anything was deployed: nothing was uploaded; rerun the deploy",
                signal.name()
            ));
            outputs.early(&mut report).await;
            return Ok(ExitStatus::Interrupted(signal));
        }
        Ok(Err(err)) => {
            // Configuration, an unreachable server, rejected credentials: exit 2 with the error.
            report
                .errors
                .push(crate::redact::redact(&format!("{err:#}")));
            outputs.early(&mut report).await;
            return Err(err);
        }
    };
    let session = &prepared.session;
    let mut items = prepared.items;
    if let Some(preview) = &opts.preview {
        items = crate::review::preview_items(session, items, preview).await?;
    }
    let mut pruning = if opts.prune {
        match crate::review::plan_prune(session, &items, &loaded.root).await {
            Ok(items) => items,
            Err(e) => {
                report.errors.push(e);
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    if !pruning.is_empty() {
        crate::output::message(&crate::review::render_prune(&pruning));
    }
    let blocked = opts.atomic && items.iter().any(|i| i.action == Action::Error);
    if !cmd.dry_run && !blocked {
        mark_dirty(&mut provenance, &loaded.root, &items);
    }
    let mut records: Vec<Record> = items.into_iter().map(Record::new).collect();
    for r in records.iter_mut().filter(|r| r.item.changes()) {
        r.mermaid = r.item.spec.as_ref().map(|s| crate::dag::mermaid(&s.value));
    }
    // A spec an older version already holds: say so (history module).
    futures_util::stream::iter(records.iter_mut())
        .for_each_concurrent(crate::lookup::LOOKUP_JOBS, |r| async {
            if let Some(note) = crate::history::revert_note(&session.client, &r.item).await {
                r.notes.push(note);
            }
        })
        .await;

    if cmd.dry_run {
        // The plan is the answer.
    } else if blocked {
        for r in &mut records {
            if r.item.action != Action::Error && r.item.action != Action::Unchanged {
                r.held = Some(Held::Atomic);
            }
        }
        report.errors.push(
            "--atomic: nothing was applied because at least one pipeline failed to compile or plan"
                .into(),
        );
    } else {
        let apply_opts = ApplyOptions {
            namespace: session.target.namespace.clone(),
            multi_user: session.health.multi_user,
            version_tag: opts.version_tag.clone(),
            tags: session.sends_tags(),
            provenance,
            keep_versions: opts.keep_versions,
            upload_jobs: opts.upload_jobs,
        };
        let apply_started = Instant::now();
        apply::apply(&session.client, &mut records, &apply_opts, &interrupt).await;
        if let Some(t) = &mut report.timings {
            t.apply_ms = apply_started.elapsed().as_millis() as u64;
        }
    }
    report.pipelines = records.iter().map(Record::row).collect();

    // Schedules and smoke runs come after the uploads; after a signal they are only planned.
    let applying = !cmd.dry_run && !blocked;
    let apply_more = applying && !interrupt.is_set();
    let states = crate::schedules::pipeline_states(&report.pipelines, applying);
    let (client, namespace) = (&session.client, &session.target.namespace);
    report.schedules = if !apply_more {
        crate::schedules::plan(client, namespace, &prepared.schedules, states).await
    } else {
        crate::schedules::deploy(client, namespace, &prepared.schedules, states).await
    };
    if apply_more && !interrupt.is_set() {
        let smoke = if cmd.smoke && !prepared.schedules.smoke.enabled {
            let items: Vec<PlanItem> = records.iter().map(|r| r.item.clone()).collect();
            crate::smoke::check_config(
                None,
                true,
                &crate::schedules::specs_of(&items),
                cmd.compile.paths.is_empty(),
                &prepared.schedules.source,
            )
        } else {
            Ok(prepared.schedules.smoke.clone())
        };
        match smoke {
            Ok(smoke) => {
                report.smoke = crate::smoke::run(
                    client,
                    namespace,
                    &smoke,
                    &report.pipelines,
                    report.version_tag.as_deref().unwrap_or_default(),
                    session.target.ui_url.as_deref(),
                    &interrupt,
                )
                .await;
            }
            Err(e) => report.errors.push(format!("--smoke: {e:#}")),
        }
    }
    let signal = interrupt.signal();
    if signal.is_none() && applying && !pruning.is_empty() {
        crate::review::apply_prune(client, &mut pruning).await;
        crate::output::message(&crate::review::render_prune(&pruning));
        for p in pruning.iter().filter(|p| p.action == "failed") {
            report
                .errors
                .push(format!("--prune: {}: {}", p.name, p.reason));
        }
    }
    report.prune = pruning;
    if let Some(signal) = signal {
        let not_started = records.iter().filter(|r| r.not_started()).count();
        report
            .errors
            .push(interrupted_error(signal, applying, not_started));
    }
    report.link_pipelines(session.target.ui_url.as_deref());
    report.recount();
    report.duration_ms = started.elapsed().as_millis() as u64;

    // The CI outputs and the notification go out even when the report file cannot be written
    // (it was writable at the start); the exit status says so.
    let emitted = crate::report::emit(
        &report,
        cmd.output,
        global.verbose > 0,
        cmd.report_file.as_deref(),
        true,
    );
    if let Err(e) = &emitted {
        tracing::warn!("{e:#}");
    }
    crate::report::publish(&report)?;
    crate::notify::deliver(&report, &outputs.notify).await?;
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

/// The run's error after a signal stopped it.
fn interrupted_error(signal: Signal, applying: bool, not_started: usize) -> String {
    if !applying {
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
    }
}

/// A work tree that differs from the commit being deployed (tracked files changed, or a pipeline
/// file not committed) is not that commit: its versions say `<sha>-dirty` (description and
/// `git-sha` tag), as `git describe --dirty` would.
fn mark_dirty(provenance: &mut Provenance, root: &std::path::Path, items: &[PlanItem]) {
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
