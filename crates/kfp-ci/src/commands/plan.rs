//! `kfp-ci plan`: compile, look every pipeline up on the server, print what deploy would do.
//! The steps before apply live here and are shared with `deploy`.

use std::time::Instant;

use anyhow::{Context, Result};

use crate::apply;
use crate::cli::{CompileArgs, GlobalArgs, OutputFormat, PlanCmd, TargetArgs};
use crate::client::Client;
use crate::plan::{self, LocalPipeline, LocalSpec, PlanItem};
use crate::report::{Action, PipelineError, PipelineReport, Report, Status, TargetInfo};
use crate::settings::{self, LoadedConfig};
use crate::status::ExitStatus;
use crate::target::{self, Endpoint, Target};

pub async fn run(cmd: PlanCmd, global: &GlobalArgs) -> Result<ExitStatus> {
    if cmd.comment || cmd.output == crate::cli::PlanOutput::Markdown {
        return super::comment::run(cmd, global).await;
    }
    let started = Instant::now();
    let loaded = load_config(global, &cmd.compile.paths)?;
    let mut report = Report::new("plan");
    let prepared = prepare(&cmd.compile, &cmd.target, &loaded, &mut report, false).await?;
    report.pipelines = prepared.items.iter().map(item_report).collect();
    report.schedules = crate::schedules::plan(
        &prepared.client,
        &prepared.target.namespace,
        &prepared.schedules,
        crate::schedules::pipeline_states(&report.pipelines, false),
    )
    .await;
    finish_links(&mut report, &prepared.target);
    report.recount();
    report.duration_ms = started.elapsed().as_millis() as u64;
    emit(&report, cmd.output.into(), global, None, true)?;
    Ok(if report.has_failures() {
        ExitStatus::Failure
    } else if cmd.detailed_exitcode && report.has_changes() {
        ExitStatus::ChangesPending
    } else {
        ExitStatus::Success
    })
}

/// The configuration, found from the current directory; run from outside any git work tree with
/// PATHs inside one (`kfp-ci deploy ~/repo/pipelines`), from that work tree instead: its
/// configuration applies, file paths are relative to its root and its commit is the one deployed.
pub(super) fn load_config(
    global: &GlobalArgs,
    paths: &[std::path::PathBuf],
) -> Result<LoadedConfig> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let base = match &global.config {
        None if crate::git::enclosing_work_tree(&cwd).is_none() => {
            crate::git::work_tree_of(&cwd, paths).unwrap_or(cwd)
        }
        _ => cwd,
    };
    settings::load(global.config.as_deref(), &base)
}

/// Everything before apply: target, compile, preflight, lookups, plan.
pub(super) struct Prepared {
    pub target: Target,
    pub client: Client,
    pub health: kfp_api::wire::Healthz,
    pub items: Vec<PlanItem>,
    /// `[[schedules]]`, checked against the compiled pipelines.
    pub schedules: crate::schedules::Configured,
    /// Keeps the embedded server alive while the client talks to it.
    pub _embedded: Option<kfp_serve::RunningServer>,
}

pub(super) async fn prepare(
    compile: &CompileArgs,
    target_args: &TargetArgs,
    loaded: &LoadedConfig,
    report: &mut Report,
    force: bool,
) -> Result<Prepared> {
    // The target first: a CI run without an endpoint fails before spending time compiling.
    let target = target::resolve(target_args, loaded)?;
    let (mut client, embedded) = connect(&target).await?;

    // Compile while the server answers the health check.
    let compile_started = Instant::now();
    let (health, compiled) = tokio::join!(client.healthz(), async {
        let c = compile_all(compile, loaded).await;
        (c, compile_started.elapsed())
    });
    let health = health.map_err(|e| {
        let hint = e
            .hint(client.auth())
            .map(|h| format!("\nhint: {h}"))
            .unwrap_or_default();
        match e.transport_reason() {
            Some(reason) => {
                // The whole reqwest chain is for -v; the error is one readable line.
                tracing::debug!("health check: {e}");
                anyhow::anyhow!(
                    "cannot reach the KFP API at {} ({reason}){hint}",
                    endpoint_label(&target)
                )
            }
            None => anyhow::anyhow!(
                "the KFP API at {} did not answer the health check: {}{hint}",
                endpoint_label(&target),
                e.server_message()
            ),
        }
    })?;
    // From here on the client sends what this release reads (kfp_api::compat).
    client.set_capabilities(kfp_api::compat::Capabilities::from_healthz(&health));
    let (compiled, compile_time) = compiled;
    let compiled = compiled?;
    let plan_started = Instant::now();
    let server_version = server_version(&health);
    tracing::info!(
        "KFP {} at {} (multi-user: {}, store: {})",
        server_version.as_deref().unwrap_or("version unknown"),
        endpoint_label(&target),
        health.multi_user,
        if health.pipeline_store.is_empty() {
            "database"
        } else {
            &health.pipeline_store
        }
    );
    if health.multi_user && target.namespace.is_empty() {
        tracing::warn!(
            "the server is multi-user and no namespace is set: pipelines go to the shared namespace (set --namespace or KF_PIPELINES_NAMESPACE)"
        );
    }
    report.target = Some(TargetInfo {
        endpoint: endpoint_label(&target),
        name: target.name.clone(),
        namespace: (!target.namespace.is_empty()).then(|| target.namespace.clone()),
        server_version: server_version.clone(),
        multi_user: health.multi_user,
        pipeline_store: (!health.pipeline_store.is_empty()).then(|| health.pipeline_store.clone()),
        ui_url: target.ui_url.clone(),
    });

    report.kfp_version = compiled.kfp_version.clone();
    report.counts.discovered = compiled.discovered;
    report.counts.compiled = compiled.pipelines.iter().filter(|p| p.yaml.is_ok()).count();
    if let (Some(sdk), Some(server)) = (&compiled.kfp_version, &server_version)
        && newer(sdk, server)
    {
        tracing::warn!(
            "the kfp SDK ({sdk}) is newer than the server ({server}): specs using newer fields fail to upload as \"unknown template format\"; pin kfp_version = \"{server}\""
        );
    }

    let kubernetes_store = health.pipeline_store == "kubernetes";
    let locals: Vec<LocalPipeline> = compiled
        .pipelines
        .into_iter()
        .map(|c| {
            let name = if kubernetes_store {
                target::dns1123(&c.name)
            } else {
                c.name.clone()
            };
            LocalPipeline {
                name,
                display_name: c.name,
                file: c.file,
                spec: c.yaml.and_then(LocalSpec::from_yaml),
            }
        })
        .collect();
    let remotes = apply::fetch_remote(&client, &locals, &target.namespace, health.multi_user)
        .await
        .map_err(|e| {
            let hint = e
                .hint(client.auth())
                .map(|h| format!("\nhint: {h}"))
                .unwrap_or_default();
            anyhow::anyhow!(
                "the KFP API at {} {} the pipeline lookups: {}{hint}",
                endpoint_label(&target),
                if client.auth().is_configured() {
                    "rejected the credentials for"
                } else {
                    "wants credentials for"
                },
                e.server_message()
            )
        })?;
    let items = plan::plan(locals, remotes, force);
    let schedules = crate::schedules::check_config(
        loaded,
        &crate::schedules::specs_of(&items),
        compile.paths.is_empty(),
    )?;
    report.timings = Some(crate::report::Timings {
        compile_ms: compile_time.as_millis() as u64,
        plan_ms: plan_started.elapsed().as_millis() as u64,
        apply_ms: 0,
    });
    Ok(Prepared {
        target,
        client,
        health,
        items,
        schedules,
        _embedded: embedded,
    })
}

pub(super) async fn connect(target: &Target) -> Result<(Client, Option<kfp_serve::RunningServer>)> {
    match &target.endpoint {
        Endpoint::Remote(url) => Ok((Client::for_target(url.clone(), target)?, None)),
        Endpoint::Embedded(db) => {
            let server = kfp_serve::spawn(kfp_serve::ServeOptions::ephemeral(db.clone()))
                .await
                .with_context(|| {
                    format!("cannot start the embedded local store at {}", db.display())
                })?;
            tracing::info!(
                "no KFP endpoint configured: using the local store {} (browse it with `kfp-ci serve`; set KF_PIPELINES_ENDPOINT or --endpoint for a cluster)",
                db.display()
            );
            let url = url::Url::parse(&server.url()).context("embedded server URL")?;
            let client = Client::for_target(url, target)?;
            Ok((client, Some(server)))
        }
    }
}

pub(super) fn endpoint_label(target: &Target) -> String {
    match &target.endpoint {
        Endpoint::Remote(url) => crate::redact::display_url(url.as_str())
            .trim_end_matches('/')
            .to_string(),
        Endpoint::Embedded(db) => format!("local:{}", db.display()),
    }
}

/// The server's release from healthz `tag_name` (`2.17.0`, `v2.17.0`), unless `unknown`.
pub(super) fn server_version(h: &kfp_api::wire::Healthz) -> Option<String> {
    let tag = h.tag_name.trim().trim_start_matches('v');
    (!tag.is_empty() && tag != "unknown" && parse_version(tag).is_some()).then(|| tag.to_string())
}

pub(super) fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let mut parts = v.trim_start_matches('v').split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    Some((major, minor, patch))
}

/// Is `a` a newer release than `b`?
pub(super) fn newer(a: &str, b: &str) -> bool {
    matches!((parse_version(a), parse_version(b)), (Some(x), Some(y)) if x > y)
}

/// One compiled (or failed) pipeline, whatever the compile engine's own types.
pub(super) struct CompiledPipeline {
    pub name: String,
    pub file: String,
    pub yaml: Result<String, PipelineError>,
}

pub(super) struct CompiledAll {
    pub kfp_version: Option<String>,
    pub discovered: usize,
    pub pipelines: Vec<CompiledPipeline>,
}

/// Compile with the one compile engine (every option of `kfp-ci compile`).
async fn compile_all(compile: &CompileArgs, loaded: &LoadedConfig) -> Result<CompiledAll> {
    let settings = crate::compile::CompileSettings::resolve(compile, loaded)?;
    // A progress bar on an interactive terminal only (never in CI logs, tests or with -q).
    let bar = (crate::logging::show_progress()
        && tracing::enabled!(tracing::Level::INFO)
        && !tracing::enabled!(tracing::Level::DEBUG))
    .then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} compiling [{bar:30}] {pos}/{len}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    });
    let mut on_progress = |progress: crate::compile::Progress<'_>| {
        if let Some(bar) = &bar {
            match progress {
                crate::compile::Progress::Started { files } => bar.set_length(files as u64),
                crate::compile::Progress::Finished { done, .. } => bar.set_position(done as u64),
            }
        }
    };
    let run = crate::compile::compile_pipelines_with(&settings, &mut on_progress).await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let run = run?;
    Ok(CompiledAll {
        kfp_version: (!run.kfp_version.is_empty()).then(|| run.kfp_version.clone()),
        discovered: run.discovered,
        pipelines: run
            .results
            .into_iter()
            .map(|r| CompiledPipeline {
                name: r.file.name,
                file: r.file.rel,
                yaml: r.outcome.map(|c| c.yaml),
            })
            .collect(),
    })
}

/// A plan item as a report row (before apply).
pub(super) fn item_report(item: &PlanItem) -> PipelineReport {
    PipelineReport {
        name: item.name.clone(),
        file: item.file.clone(),
        action: item.action,
        status: if item.action == Action::Error {
            Status::Failed
        } else {
            Status::Planned
        },
        reason: item.reason.clone(),
        pipeline_id: item.pipeline_id.clone(),
        version_name: None,
        spec_hash: item.spec.as_ref().map(|s| s.hash.clone()),
        error: item.error.clone(),
        ..PipelineReport::default()
    }
}

/// Links to the KFP UI for pipelines with an id, when `ui_url` is configured.
pub(super) fn finish_links(report: &mut Report, target: &Target) {
    let Some(ui) = &target.ui_url else { return };
    for p in &mut report.pipelines {
        if let Some(id) = &p.pipeline_id {
            p.url = Some(match &p.version_id {
                Some(v) => format!("{ui}/#/pipelines/details/{id}/version/{v}"),
                None => format!("{ui}/#/pipelines/details/{id}"),
            });
        }
    }
}

/// Table on stderr (unless quiet), JSON on stdout with `--output json`, the report file.
pub(super) fn emit(
    report: &Report,
    output: OutputFormat,
    global: &GlobalArgs,
    report_file: Option<&std::path::Path>,
    table: bool,
) -> Result<()> {
    if table {
        crate::output::message(&report.render_table(global.verbose > 0));
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
pub(super) fn check_report_file(path: &std::path::Path, placeholder: &Report) -> Result<()> {
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
pub(super) fn report_json(report: &Report) -> Result<String> {
    crate::redact::redacted_json(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_json_redacts_secrets_that_json_escapes() {
        let secret = "tok\"en\\with-quote-7f3a";
        crate::redact::register(secret);
        let mut report = Report::new("deploy");
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

    #[test]
    fn versions() {
        assert!(newer("2.17.0", "2.14.0"));
        assert!(!newer("2.17.0", "2.17.0"));
        assert!(!newer("2.5.0", "2.17.0"));
        let h = kfp_api::wire::Healthz {
            tag_name: "unknown".into(),
            ..Default::default()
        };
        assert_eq!(server_version(&h), None);
    }
}
