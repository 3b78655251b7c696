//! Everything before apply, shared by `plan`, `deploy`, `diff` and `plan --comment`: the target
//! and its health check (run alongside discover + compile), then the lookups and the plan.
//!
//! discover + compile (`compile`) → lookup (`lookup`) → plan (`plan`, pure)

use std::time::Instant;

use anyhow::{Result, anyhow};

use crate::cli::{CompileArgs, GlobalArgs, TargetArgs};
use crate::plan::{self, LocalPipeline, LocalSpec, PlanItem};
use crate::record::plan_row;
use crate::report::{Command, PipelineError, Report, TargetInfo, Timings};
use crate::session::{Connection, Session, load_config, newer};
use crate::settings::LoadedConfig;

/// The plan, and the session it was made against.
pub struct Prepared {
    pub session: Session,
    pub items: Vec<PlanItem>,
    /// `[[schedules]]`, checked against the compiled pipelines.
    pub schedules: crate::schedules::Configured,
}

/// Target, compile, health check, lookups, plan. Fills in the report's target, counts of
/// discovered and compiled files, kfp version and timings.
pub async fn prepare(
    compile: &CompileArgs,
    target_args: &TargetArgs,
    loaded: &LoadedConfig,
    report: &mut Report,
    force: bool,
) -> Result<Prepared> {
    // The target first: a CI run without an endpoint fails before spending time compiling.
    let target = crate::target::resolve(target_args, loaded)?;
    let connection = Connection::open(target).await?;

    // Compile while the server answers the health check.
    let compile_started = Instant::now();
    let (health, compiled) = tokio::join!(connection.healthz(), async {
        let c = compile_all(compile, loaded).await;
        (c, compile_started.elapsed())
    });
    let health = health?;
    // From here on the client sends what this release reads (kfp_api::compat).
    let mut connection = connection;
    connection
        .client
        .set_capabilities(kfp_api::compat::Capabilities::from_healthz(&health));
    let session = connection.ready(health);
    let (compiled, compile_time) = compiled;
    let compiled = compiled?;
    let plan_started = Instant::now();
    let server_version = session.server_version();
    let health = &session.health;
    tracing::info!(
        "KFP {} at {} (multi-user: {}, store: {})",
        server_version.as_deref().unwrap_or("version unknown"),
        session.label,
        health.multi_user,
        if health.pipeline_store.is_empty() {
            "database"
        } else {
            &health.pipeline_store
        }
    );
    let target = &session.target;
    if health.multi_user && target.namespace.is_empty() {
        tracing::warn!(
            "the server is multi-user and no namespace is set: pipelines go to the shared namespace (set --namespace or KF_PIPELINES_NAMESPACE)"
        );
    }
    report.target = Some(TargetInfo {
        endpoint: session.label.clone(),
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

    let locals: Vec<LocalPipeline> = compiled
        .pipelines
        .into_iter()
        .map(|c| LocalPipeline {
            name: session.stored_name(&c.name),
            display_name: c.name,
            file: c.file,
            spec: c.yaml.and_then(LocalSpec::from_yaml),
        })
        .collect();
    let client = &session.client;
    let looked_up =
        crate::lookup::server_state(client, locals, &target.namespace, health.multi_user)
            .await
            .map_err(|e| {
                let hint = e
                    .hint(client.auth())
                    .map(|h| format!("\nhint: {h}"))
                    .unwrap_or_default();
                anyhow!(
                    "the KFP API at {} {} the pipeline lookups: {}{hint}",
                    session.label,
                    if client.auth().is_configured() {
                        "rejected the credentials for"
                    } else {
                        "wants credentials for"
                    },
                    e.server_message()
                )
            })?;
    let items = plan::plan(looked_up, force);
    let schedules = crate::schedules::check_config(
        loaded,
        &crate::schedules::specs_of(&items),
        compile.paths.is_empty(),
    )?;
    report.timings = Some(Timings {
        compile_ms: compile_time.as_millis() as u64,
        plan_ms: plan_started.elapsed().as_millis() as u64,
        apply_ms: 0,
    });
    Ok(Prepared {
        session,
        items,
        schedules,
    })
}

impl Prepared {
    /// The plan as report rows (plan, diff, comment: nothing applied).
    pub fn rows(&self) -> Vec<crate::report::PipelineReport> {
        self.items.iter().map(plan_row).collect()
    }
}

/// One compiled (or failed) pipeline, whatever the compile engine's own types.
struct CompiledPipeline {
    name: String,
    file: String,
    yaml: Result<String, PipelineError>,
}

struct CompiledAll {
    kfp_version: Option<String>,
    discovered: usize,
    pipelines: Vec<CompiledPipeline>,
}

/// Discover and compile with the one compile engine (every option of `kfp-ci compile`).
async fn compile_all(compile: &CompileArgs, loaded: &LoadedConfig) -> Result<CompiledAll> {
    let settings = crate::compile::CompileSettings::resolve(compile, loaded)?;
    // A progress bar on an interactive terminal only (never in CI logs, tests or with -q).
    let bar = crate::output::progress_bar("{spinner} compiling [{bar:30}] {pos}/{len}");
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

/// `kfp-ci plan`: the plan as a report, with the schedules it would change.
pub async fn plan_report(
    compile: &CompileArgs,
    target: &TargetArgs,
    global: &GlobalArgs,
) -> Result<Report> {
    let started = Instant::now();
    let loaded = load_config(global, &compile.paths)?;
    let mut report = Report::new(Command::Plan);
    let prepared = prepare(compile, target, &loaded, &mut report, false).await?;
    report.pipelines = prepared.rows();
    let session = &prepared.session;
    report.schedules = crate::schedules::plan(
        &session.client,
        &session.target.namespace,
        &prepared.schedules,
        crate::schedules::pipeline_states(&report.pipelines, false),
    )
    .await;
    report.link_pipelines(session.target.ui_url.as_deref());
    report.recount();
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// `kfp-ci plan --comment`: the plan as a report and the comment's Markdown body (redacted).
pub async fn plan_comment(
    compile: &CompileArgs,
    target: &TargetArgs,
    global: &GlobalArgs,
) -> Result<(Report, String)> {
    let started = Instant::now();
    let loaded = load_config(global, &compile.paths)?;
    let mut report = Report::new(Command::Plan);
    let prepared = prepare(compile, target, &loaded, &mut report, false).await?;
    report.pipelines = prepared.rows();
    report.link_pipelines(prepared.session.target.ui_url.as_deref());
    report.recount();
    report.duration_ms = started.elapsed().as_millis() as u64;
    let diffs = crate::changes::collect(&prepared.session, &prepared.items, None).await;
    let commit = crate::ci::detect(&loaded.config.ci, None).commit_sha;
    let body = crate::changes::comment_body(&report, &diffs, commit.as_deref());
    Ok((report, crate::redact::redact(&body)))
}

/// `kfp-ci diff`: the diff of every pipeline against the server (or `--against` a version).
pub async fn diffs(
    compile: &CompileArgs,
    target: &TargetArgs,
    against: Option<&str>,
    global: &GlobalArgs,
) -> Result<Vec<crate::changes::PipelineDiff>> {
    let loaded = load_config(global, &compile.paths)?;
    let mut report = Report::new(Command::Diff);
    let prepared = prepare(compile, target, &loaded, &mut report, false).await?;
    Ok(crate::changes::collect(&prepared.session, &prepared.items, against).await)
}
