//! `kfp-ci promote --from TARGET --to TARGET [PIPELINE...]`: the second target gets exactly the
//! specs the first serves now (its newest versions), under the same version names where free.
//! A plan first (the deploy plan: unchanged ones are skipped), then apply with deploy's race
//! safety (`crate::apply`).

use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use kfp_api::wire::PipelineVersion;

use super::history::{Connected, open};
use super::plan::{emit, item_report, newer, server_version};
use crate::apply::{self, ApplyOptions, Provenance};
use crate::cli::{GlobalArgs, PromoteCmd, TargetArgs};
use crate::history::{git_sha, label};
use crate::plan::{self, LocalPipeline, LocalSpec};
use crate::report::{Report, Status, TargetInfo};
use crate::review;
use crate::status::ExitStatus;

/// A pipeline as the source serves it now.
struct Served {
    local: LocalPipeline,
    version: Option<PipelineVersion>,
}

pub async fn run(cmd: PromoteCmd, global: &GlobalArgs) -> Result<ExitStatus> {
    let started = Instant::now();
    if cmd.from == cmd.to {
        bail!("--from and --to are the same target `{}`", cmd.from);
    }
    let target = |name: &str| TargetArgs {
        target: Some(name.to_string()),
        ..TargetArgs::default()
    };
    let src = open(&target(&cmd.from), global).await?;
    let dst = open(&target(&cmd.to), global).await?;
    let names = if cmd.pipelines.is_empty() {
        review::all_pipelines(&src.client, &src.target.namespace)
            .await
            .map_err(|e| {
                anyhow!(
                    "listing the pipelines at {}: {}",
                    src.label,
                    e.server_message()
                )
            })?
            .into_iter()
            .filter(|p| review::provenance(p).is_some_and(|prov| prov.preview.is_none()))
            .map(|p| p.name)
            .collect()
    } else {
        cmd.pipelines.clone()
    };
    let kubernetes = dst.health.pipeline_store == "kubernetes";
    let mut served = Vec::new();
    for name in &names {
        served.push(read_served(&src, name, kubernetes).await);
    }
    let locals: Vec<LocalPipeline> = served.iter().map(|s| s.local.clone()).collect();
    let remotes = apply::fetch_remote(
        &dst.client,
        &locals,
        &dst.target.namespace,
        dst.health.multi_user,
    )
    .await
    .map_err(|e| {
        anyhow!(
            "the KFP API at {} refused the lookups: {}",
            dst.label,
            e.server_message()
        )
    })?;
    let items = plan::plan(locals, remotes, false);

    let mut report = Report::new("promote");
    report.dry_run = cmd.dry_run;
    report.target = Some(TargetInfo {
        endpoint: dst.label.clone(),
        name: Some(cmd.to.clone()),
        namespace: (!dst.target.namespace.is_empty()).then(|| dst.target.namespace.clone()),
        server_version: server_version(&dst.health),
        ..TargetInfo::default()
    });
    report.pipelines = items.iter().map(item_report).collect();
    for (p, s) in report.pipelines.iter_mut().zip(&served) {
        if let Some(v) = &s.version {
            p.reason = format!("{} (from {} {})", p.reason, cmd.from, label(v));
        }
    }
    if !cmd.dry_run {
        // Ctrl-C lets the upload in flight finish; the rest are reported as not started.
        let interrupt = crate::interrupt::Interrupt::install();
        let tags = server_version(&dst.health)
            .as_deref()
            .is_none_or(|v| !newer("2.17.0", v));
        for ((item, s), p) in items.iter().zip(&served).zip(report.pipelines.iter_mut()) {
            if !item.changes() {
                if p.status == Status::Planned {
                    p.status = Status::Done;
                }
                continue;
            }
            let Some(version) = &s.version else { continue };
            let opts = ApplyOptions {
                namespace: dst.target.namespace.clone(),
                multi_user: dst.health.multi_user,
                version_tag: label(version),
                tags,
                provenance: Provenance {
                    commit_sha: git_sha(version),
                    ..Provenance::default()
                },
                keep_versions: None,
                upload_jobs: 1,
            };
            let outcome = apply::apply(&dst.client, std::slice::from_ref(item), &opts, &interrupt)
                .await
                .into_iter()
                .next()
                .unwrap_or_default();
            p.status = outcome.status;
            if outcome.pipeline_id.is_some() {
                p.pipeline_id = outcome.pipeline_id;
            }
            p.version_id = outcome.version_id;
            p.version_name = outcome.version_name;
            if let Some(note) = outcome.note {
                p.reason = format!("{}; {note}", p.reason);
            }
            if outcome.error.is_some() {
                p.error = outcome.error;
            }
        }
    }
    report.recount();
    report.duration_ms = started.elapsed().as_millis() as u64;
    emit(&report, cmd.output, global, None, true)?;
    Ok(if report.has_failures() {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

/// The source's newest version of `name` as a local pipeline for the destination's plan; a
/// failure becomes that pipeline's error (the others still go through).
async fn read_served(src: &Connected, name: &str, kubernetes: bool) -> Served {
    let dst_name = if kubernetes {
        crate::target::dns1123(name)
    } else {
        name.to_string()
    };
    let fail = |message: String| Served {
        local: LocalPipeline {
            name: dst_name.clone(),
            display_name: name.to_string(),
            file: String::new(),
            spec: Err(crate::report::PipelineError {
                kind: "promote".into(),
                message,
                detail: String::new(),
            }),
        },
        version: None,
    };
    let pipeline = match src.pipeline(name).await {
        Ok(p) => p,
        Err(e) => return fail(format!("{e:#}")),
    };
    let (latest, tied) = match src.client.latest_versions(&pipeline.pipeline_id).await {
        Ok(Some(found)) => found,
        Ok(None) => return fail(format!("`{name}` has no version at {}", src.label)),
        Err(e) => {
            return fail(format!(
                "listing versions at {}: {}",
                src.label,
                e.server_message()
            ));
        }
    };
    let Some(spec) = &latest.pipeline_spec else {
        return fail(format!(
            "version {} at {} has no readable spec",
            label(&latest),
            src.label
        ));
    };
    if let Some(other) = tied.iter().find(|t| {
        t.pipeline_spec.as_ref().map(kfp_api::spec::spec_hash)
            != Some(kfp_api::spec::spec_hash(spec))
    }) {
        return fail(format!(
            "versions {} and {} were created in the same second with different specs: which one {} serves is unknown; promote again once it has a newer version",
            label(&latest),
            label(other),
            src.label
        ));
    }
    let file = review::provenance(&pipeline)
        .map(|p| p.file)
        .unwrap_or_else(|| format!("{}:{name}", src.target.name.clone().unwrap_or_default()));
    let spec = LocalSpec::from_yaml(super::rollback::spec_upload_text(spec));
    Served {
        local: LocalPipeline {
            name: dst_name,
            display_name: if pipeline.display_name.is_empty() {
                name.to_string()
            } else {
                pipeline.display_name.clone()
            },
            file,
            spec,
        },
        version: Some(latest),
    }
}
