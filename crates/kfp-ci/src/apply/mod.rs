//! Apply: carries out a plan ([`apply`]) with bounded concurrency, converging under races and
//! retries (`converge.rs`; version names, descriptions, tags and pruning in `versions.rs`):
//!
//! - create = `POST /pipelines` (no version) then `upload_version` under the run's version tag; if
//!   that upload fails, the empty pipeline is deleted without cascade (so a version a concurrent
//!   run added is never lost); a 409 on create means another run created it: look it up, upload;
//! - a 409 on a version name: if that version holds our spec the work is done (a rerun or a racing
//!   run converges), else retry with a suffix (short git sha, then `-2`, `-3`); never overwrite;
//! - an upload that failed with a retryable error may have landed: look the version up before
//!   sending it again;
//! - racing runs with different version tags converge to one version per spec: just before an
//!   upload the newest version is read again (a concurrent run may have deployed the spec since
//!   the plan), and after it the versions created meanwhile are compared: of two identical
//!   kfp-ci versions the later removes itself (`converge::reconcile`);
//! - on a multi-user server every pipeline a lookup returns is checked against the target
//!   namespace ([`crate::lookup::find_pipeline`]);
//! - after SIGINT/SIGTERM no new item is started; the ones in flight finish;
//! - `--keep-versions N` prunes the oldest versions kfp-ci created, never the newest.

use futures_util::StreamExt;
use kfp_api::wire::{Pipeline, PipelineVersion};

use crate::client::Client;
use crate::interrupt::Interrupt;
use crate::lookup::{api_failure, find_pipeline};
use crate::plan::{LocalSpec, PlanItem, Seen};
use crate::record::{NOT_STARTED, Outcome, Record};
use crate::row::{Action, ErrorKind, PipelineError, Status};
use crate::versions::{DESCRIPTION_MARKER, Provenance, versions_to_prune};

mod converge;

use converge::{Settled, deployed_meanwhile, ensure_pipeline, settle, upload_converging};

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub namespace: String,
    /// The server is multi-user: pipelines found by name must be in `namespace` (shared = `""`).
    pub multi_user: bool,
    pub version_tag: String,
    /// Send version tags (servers ≥ 2.17, or unknown versions: older upload handlers ignore them).
    pub tags: bool,
    pub provenance: Provenance,
    pub keep_versions: Option<usize>,
    pub upload_jobs: usize,
}

/// Carry out the plan: each record gets its outcome. Items that need no change get
/// `Skipped`/`Done` without a request. Once `interrupt` is set no new item is started (they are
/// `Skipped`); the ones in flight finish.
pub async fn apply(
    client: &Client,
    records: &mut [Record],
    opts: &ApplyOptions,
    interrupt: &Interrupt,
) {
    futures_util::stream::iter(records.iter_mut())
        .for_each_concurrent(opts.upload_jobs.max(1), |record| async move {
            record.outcome = Some(apply_item(client, &record.item, opts, interrupt).await);
        })
        .await;
}

async fn apply_item(
    client: &Client,
    item: &PlanItem,
    opts: &ApplyOptions,
    interrupt: &Interrupt,
) -> Outcome {
    match (item.action, &item.spec) {
        (Action::Create | Action::NewVersion, Some(_)) if interrupt.is_set() => Outcome {
            status: Status::Skipped,
            pipeline_id: item.pipeline_id.clone(),
            notes: vec![NOT_STARTED.into()],
            ..Outcome::default()
        },
        (Action::Create | Action::NewVersion, Some(spec)) => {
            let outcome = apply_one(client, item, spec, opts, interrupt).await;
            match (outcome, opts.keep_versions) {
                (mut o, Some(keep)) if o.status == Status::Done && !interrupt.is_set() => {
                    if let Some(pid) = o.pipeline_id.clone() {
                        o.pruned = prune(client, &item.name, &pid, keep).await;
                    }
                    o
                }
                (o, _) => o,
            }
        }
        (Action::Unchanged, _) => {
            let mut o = Outcome {
                status: Status::Done,
                pipeline_id: item.pipeline_id.clone(),
                version_name: item.latest_version.clone(),
                ..Outcome::default()
            };
            // --keep-versions applies to every deployed pipeline, changed or not.
            if let (Some(keep), Some(pid), false) =
                (opts.keep_versions, &item.pipeline_id, interrupt.is_set())
            {
                o.pruned = prune(client, &item.name, pid, keep).await;
            }
            o
        }
        _ => Outcome {
            status: Status::Failed,
            error: item.error.clone(),
            ..Outcome::default()
        },
    }
}

/// Nothing of this run stays: `version` (a concurrent run's, or one already there) holds the spec.
fn already_there(
    pipeline_id: String,
    version: PipelineVersion,
    mut notes: Vec<String>,
    why: String,
) -> Outcome {
    notes.push(why);
    Outcome {
        status: Status::Done,
        action: Some(Action::Unchanged),
        pipeline_id: Some(pipeline_id),
        version_id: Some(version.pipeline_version_id),
        version_name: Some(version.name),
        notes,
        ..Outcome::default()
    }
}

fn by_concurrent_run(version: &PipelineVersion) -> String {
    format!("already deployed by a concurrent run as {}", version.name)
}

async fn apply_one(
    client: &Client,
    item: &PlanItem,
    spec: &LocalSpec,
    opts: &ApplyOptions,
    interrupt: &Interrupt,
) -> Outcome {
    let auth = client.auth();
    let failed = |error: PipelineError| Outcome {
        status: Status::Failed,
        error: Some(error),
        ..Outcome::default()
    };
    let mut notes = Vec::new();
    let mut created_here = false;
    let body = Pipeline {
        name: item.name.clone(),
        display_name: item.display_name.clone(),
        description: format!("{DESCRIPTION_MARKER} from {}", item.file),
        namespace: opts.namespace.clone(),
        ..Pipeline::default()
    };
    // The versions the plan saw; a pipeline found or created now had none then.
    let mut seen = item.seen.clone();
    let mut pipeline_id = match (&item.action, &item.pipeline_id) {
        (Action::NewVersion, Some(id)) => id.clone(),
        _ => match ensure_pipeline(client, &body, opts.multi_user).await {
            Ok((id, None)) => {
                created_here = true;
                id
            }
            Ok((id, Some(found))) => {
                notes = vec![found.to_string()];
                id
            }
            Err(e) => {
                return failed(api_failure(
                    ErrorKind::Upload,
                    "creating the pipeline",
                    &e,
                    auth,
                ));
            }
        },
    };

    // A concurrent run may have deployed this spec since the plan: then there is nothing to do.
    if !created_here && let Some(v) = deployed_meanwhile(client, &pipeline_id, spec, &seen).await {
        let why = by_concurrent_run(&v);
        return already_there(pipeline_id, v, notes, why);
    }

    let mut result = upload_converging(client, &pipeline_id, item, spec, opts).await;
    if !created_here && matches!(&result, Err((_, Some(400)))) {
        // The pipeline was looked up, not created here: a concurrent run whose first upload
        // failed may have deleted it meanwhile (KFP answers an unknown pipeline id with a
        // generic 400). Look it up again; if it is gone, create it (once) and upload again.
        match find_pipeline(client, &item.name, &opts.namespace, opts.multi_user).await {
            Ok(None) => match ensure_pipeline(client, &body, opts.multi_user).await {
                Ok((id, found)) => {
                    tracing::info!(
                        "{}: pipeline {pipeline_id} was deleted by a concurrent run; uploading to {id}",
                        item.name
                    );
                    created_here = found.is_none();
                    notes = vec![format!(
                        "pipeline {pipeline_id} was deleted by a concurrent run meanwhile; {}",
                        if created_here {
                            "created it again"
                        } else {
                            "another run created it again"
                        }
                    )];
                    pipeline_id = id;
                    seen = Seen::default();
                    result = upload_converging(client, &pipeline_id, item, spec, opts).await;
                }
                Err(e) => {
                    return failed(api_failure(
                        ErrorKind::Upload,
                        "creating the pipeline again after it was deleted by a concurrent run",
                        &e,
                        auth,
                    ));
                }
            },
            Ok(Some(p)) if p.pipeline_id != pipeline_id => {
                notes = vec![format!(
                    "pipeline {pipeline_id} was replaced by {} (a concurrent run) meanwhile",
                    p.pipeline_id
                )];
                pipeline_id = p.pipeline_id;
                seen = Seen::default();
                result = upload_converging(client, &pipeline_id, item, spec, opts).await;
            }
            Ok(Some(_)) => {}
            Err(e) => tracing::debug!(
                "{}: looking the pipeline up again after a 400: {}",
                item.name,
                e.server_message()
            ),
        }
    }
    match result.map_err(|(error, _)| error) {
        Ok((version, true)) => {
            // A version of our name already holds our spec: nothing of ours was uploaded. It
            // came from a concurrent run unless the plan saw it (a rerun with the same tag,
            // `--force` with a tag that exists).
            let why = if seen.is_new(&version) {
                by_concurrent_run(&version)
            } else {
                format!(
                    "version {} already held this spec before this run: nothing uploaded",
                    version.name
                )
            };
            already_there(pipeline_id, version, notes, why)
        }
        Ok((version, false)) => {
            match settle(
                client,
                item,
                &pipeline_id,
                version,
                spec,
                &seen,
                opts,
                interrupt,
            )
            .await
            {
                Settled::Kept(version, extra) => {
                    if let Some(extra) = extra {
                        notes.push(extra);
                    }
                    // Say so when the server made the version name differ from the tag.
                    if let Some(renamed) = crate::compat::rename_note(
                        client.capabilities(),
                        &opts.version_tag,
                        &version.name,
                    ) {
                        notes.push(renamed);
                    }
                    Outcome {
                        status: Status::Done,
                        pipeline_id: Some(pipeline_id),
                        version_id: Some(version.pipeline_version_id),
                        version_name: Some(version.name),
                        notes,
                        ..Outcome::default()
                    }
                }
                Settled::Yielded(winner) => {
                    let why = format!(
                        "{} (the identical version this run uploaded was removed again)",
                        by_concurrent_run(&winner)
                    );
                    already_there(pipeline_id, winner, notes, why)
                }
                Settled::Lost(error) => Outcome {
                    status: Status::Failed,
                    pipeline_id: Some(pipeline_id),
                    error: Some(error),
                    notes,
                    ..Outcome::default()
                },
            }
        }
        Err(error) => {
            let mut error = error;
            if created_here {
                // Remove the empty pipeline we just made. No cascade: the server refuses if a
                // concurrent run has added a version meanwhile, which is what we want.
                match client.delete_pipeline(&pipeline_id).await {
                    Ok(()) => error
                        .message
                        .push_str(" (the empty pipeline was removed again)"),
                    Err(e) => tracing::warn!(
                        "{}: could not remove the empty pipeline {pipeline_id}: {}",
                        item.name,
                        e.server_message()
                    ),
                }
            }
            Outcome {
                status: Status::Failed,
                pipeline_id: if created_here {
                    None
                } else {
                    Some(pipeline_id)
                },
                error: Some(error),
                notes,
                ..Outcome::default()
            }
        }
    }
}

/// `--keep-versions`: delete the versions [`versions_to_prune`] picks; how many went.
async fn prune(client: &Client, name: &str, pipeline_id: &str, keep: usize) -> usize {
    let versions = match client.all_versions(pipeline_id).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(
                "{name}: --keep-versions: cannot list versions: {}",
                e.server_message()
            );
            return 0;
        }
    };
    let mut deleted = 0;
    for v in versions_to_prune(&versions, keep) {
        match client
            .delete_version(pipeline_id, &v.pipeline_version_id)
            .await
        {
            Ok(()) => deleted += 1,
            Err(e) => tracing::warn!(
                "{name}: --keep-versions: cannot delete version {}: {}",
                v.name,
                e.server_message()
            ),
        }
    }
    deleted
}
