//! Promote: the second target gets exactly the specs the first serves now (its newest
//! versions), under the same version names where free. A plan first (the deploy plan: unchanged
//! ones are skipped), then apply with deploy's race safety (`crate::apply`).

use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use kfp_api::wire::PipelineVersion;

use crate::apply::{self, ApplyOptions};
use crate::cli::{GlobalArgs, PromoteCmd, TargetArgs};
use crate::history::{git_sha, label};
use crate::plan::{self, LocalPipeline, LocalSpec};
use crate::record::Record;
use crate::report::{Command, ErrorKind, PipelineError, Report, Status, TargetInfo};
use crate::review;
use crate::session::Session;
use crate::versions::Provenance;

/// A pipeline as the source serves it now.
struct Served {
    local: LocalPipeline,
    version: Option<PipelineVersion>,
}

/// Plan and (unless `--dry-run`) apply the promotion; the report of what was done.
pub async fn run(cmd: &PromoteCmd, global: &GlobalArgs) -> Result<Report> {
    let started = Instant::now();
    if cmd.from == cmd.to {
        bail!("--from and --to are the same target `{}`", cmd.from);
    }
    let target = |name: &str| TargetArgs {
        target: Some(name.to_string()),
        ..TargetArgs::default()
    };
    let src = Session::open(&target(&cmd.from), global).await?;
    let dst = Session::open(&target(&cmd.to), global).await?;
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
    // The plan against the destination: each served pipeline with the destination's state.
    let mut from_versions = std::collections::BTreeMap::new();
    let mut locals = Vec::new();
    for s in served {
        if let Some(v) = s.version {
            from_versions.insert(s.local.name.clone(), v);
        }
        locals.push(s.local);
    }
    let looked_up = crate::lookup::server_state(
        &dst.client,
        locals,
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
    let mut records: Vec<Record> = plan::plan(looked_up, false)
        .into_iter()
        .map(Record::new)
        .collect();
    for r in &mut records {
        if let Some(v) = from_versions.get(&r.item.name) {
            r.item.reason = format!("{} (from {} {})", r.item.reason, cmd.from, label(v));
        }
    }

    let mut report = Report::new(Command::Promote);
    report.dry_run = cmd.dry_run;
    report.target = Some(TargetInfo {
        endpoint: dst.label.clone(),
        name: Some(cmd.to.clone()),
        namespace: (!dst.target.namespace.is_empty()).then(|| dst.target.namespace.clone()),
        server_version: dst.server_version(),
        ..TargetInfo::default()
    });
    if !cmd.dry_run {
        // Ctrl-C lets the upload in flight finish; the rest are reported as not started.
        let interrupt = crate::interrupt::Interrupt::install();
        for record in &mut records {
            if !record.item.changes() {
                continue;
            }
            let Some(version) = from_versions.get(&record.item.name) else {
                continue;
            };
            let opts = ApplyOptions {
                namespace: dst.target.namespace.clone(),
                multi_user: dst.health.multi_user,
                version_tag: label(version),
                tags: dst.sends_tags(),
                provenance: Provenance {
                    commit_sha: git_sha(version),
                    ..Provenance::default()
                },
                keep_versions: None,
                upload_jobs: 1,
            };
            apply::apply(&dst.client, std::slice::from_mut(record), &opts, &interrupt).await;
        }
    }
    report.pipelines = records
        .iter()
        .map(|r| {
            let mut row = r.row();
            // Nothing to do for it: done, unless it failed.
            if !cmd.dry_run && !r.item.changes() && row.status == Status::Planned {
                row.status = Status::Done;
            }
            row
        })
        .collect();
    report.recount();
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// The source's newest version of `name` as a local pipeline for the destination's plan; a
/// failure becomes that pipeline's error (the others still go through).
async fn read_served(src: &Session, name: &str, kubernetes: bool) -> Served {
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
            spec: Err(PipelineError {
                kind: ErrorKind::Promote,
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
    let spec = LocalSpec::from_yaml(crate::rollback::spec_upload_text(spec));
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
