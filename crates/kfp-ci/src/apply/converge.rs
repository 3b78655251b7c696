//! Converging under races and retries: the upload under the first free version name, the
//! checks before and after it (a concurrent run may deploy the same spec meanwhile), and the
//! pipeline's creation. The rules are listed in the parent module.

use std::collections::BTreeMap;
use std::time::Duration;

use kfp_api::wire::{Pipeline, PipelineVersion};

use super::ApplyOptions;
use crate::client::{ApiError, Client, UploadMeta};
use crate::interrupt::Interrupt;
use crate::lookup::{api_failure, find_pipeline};
use crate::plan::{LocalSpec, PlanItem, Seen, timestamp};
use crate::row::{ErrorKind, PipelineError};
use crate::versions::{description, managed_by_kfp_ci, tags};

/// The newest version, when a concurrent run created it after the plan and it (with every
/// version of the same second) holds our spec. A failed read is no reason to stop: the upload
/// and [`reconcile`] still converge.
pub(super) async fn deployed_meanwhile(
    client: &Client,
    pipeline_id: &str,
    spec: &LocalSpec,
    seen: &Seen,
) -> Option<PipelineVersion> {
    let versions = match client.newest_versions(pipeline_id, 5).await {
        Ok(v) => v,
        Err(e) => {
            tracing::debug!(
                "reading the newest versions of {pipeline_id} again before uploading: {}",
                e.server_message()
            );
            return None;
        }
    };
    let mut versions = versions.into_iter();
    let newest = versions.next()?;
    let tied_hold_it = versions
        .filter(|v| v.created_at.is_some() && v.created_at == newest.created_at)
        .all(|v| spec.same_as(&v));
    (seen.is_new(&newest) && spec.same_as(&newest) && tied_hold_it).then_some(newest)
}

/// How many of the newest versions [`reconcile`] reads: versions created meanwhile are newest.
const RECONCILE_PAGE: usize = 10;
/// How long the first of identical versions from the same second waits for the others to remove
/// themselves (a run that listed before ours landed never will).
const TIE_WAIT: Duration = Duration::from_secs(5);
const TIE_POLL: Duration = Duration::from_millis(100);

/// After uploading `mine`: the identical kfp-ci version, created by a concurrent run since the
/// plan, that ours must give way to, if any.
///
/// Order: creation time, then id. A run lists after its own upload, so of two uploads in
/// different seconds the later run always sees the earlier one and removes itself. In the same
/// second the order by id says nothing about which landed first: the later run may have listed
/// before ours landed and kept its own. So the first by id waits (at most [`TIE_WAIT`]) for the
/// others of its second to go, and gives way to the one that stays.
pub(super) async fn reconcile(
    client: &Client,
    pipeline_id: &str,
    mine: &PipelineVersion,
    spec: &LocalSpec,
    seen: &Seen,
    interrupt: &Interrupt,
) -> Result<Option<PipelineVersion>, ApiError> {
    let key = |v: &PipelineVersion| {
        (
            timestamp(v.created_at.as_deref()),
            v.pipeline_version_id.clone(),
        )
    };
    let deadline = tokio::time::Instant::now() + TIE_WAIT;
    loop {
        let versions = client.newest_versions(pipeline_id, RECONCILE_PAGE).await?;
        let Some(me) = versions
            .iter()
            .find(|v| v.pipeline_version_id == mine.pipeline_version_id)
        else {
            // Not among the newest any more (or removed by someone else): nothing to compare.
            return Ok(None);
        };
        let rivals: Vec<&PipelineVersion> = versions
            .iter()
            .filter(|v| {
                v.pipeline_version_id != me.pipeline_version_id
                    && seen.is_new(v)
                    && managed_by_kfp_ci(v)
                    && spec.same_as(v)
            })
            .collect();
        let Some(first) = rivals.iter().min_by_key(|v| key(v)) else {
            return Ok(None);
        };
        if key(first) < key(me) {
            return Ok(Some((*first).clone()));
        }
        let my_second = key(me).0;
        let Some(same_second) = rivals.iter().find(|v| key(v).0 == my_second) else {
            // Every rival landed in a later second: their runs see ours and remove theirs.
            return Ok(None);
        };
        if tokio::time::Instant::now() >= deadline || interrupt.is_set() {
            // Still there: its run listed before ours landed and kept it.
            return Ok(Some((*same_second).clone()));
        }
        tokio::time::sleep(TIE_POLL).await;
    }
}

/// What became of the version this run uploaded.
pub(super) enum Settled {
    /// It stays (with a note when something unusual happened).
    Kept(PipelineVersion, Option<String>),
    /// It was removed: this identical version of a concurrent run stays.
    Yielded(PipelineVersion),
    /// It was removed for a concurrent run's version that is gone too, and could not be
    /// uploaded again.
    Lost(PipelineError),
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn settle(
    client: &Client,
    item: &PlanItem,
    pipeline_id: &str,
    mine: PipelineVersion,
    spec: &LocalSpec,
    seen: &Seen,
    opts: &ApplyOptions,
    interrupt: &Interrupt,
) -> Settled {
    let winner = match reconcile(client, pipeline_id, &mine, spec, seen, interrupt).await {
        Ok(None) => return Settled::Kept(mine, None),
        Ok(Some(winner)) => winner,
        Err(e) => {
            tracing::warn!(
                "{}: cannot compare {} with versions created meanwhile (an identical one from a concurrent run may stay): {}",
                item.name,
                mine.name,
                e.server_message()
            );
            return Settled::Kept(mine, None);
        }
    };
    tracing::info!(
        "{}: {} of a concurrent run holds the same spec as {}: removing ours",
        item.name,
        winner.name,
        mine.name
    );
    match client
        .delete_version(pipeline_id, &mine.pipeline_version_id)
        .await
    {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => {
            let why = format!(
                "{} of a concurrent run holds the same spec; removing ours failed: {}",
                winner.name,
                e.server_message()
            );
            tracing::warn!("{}: {why}", item.name);
            return Settled::Kept(mine, Some(why));
        }
    }
    // The winner must still be there: it may have given way to ours meanwhile (its run waited
    // in vain for ours to go). Then ours comes back under its name.
    match client.version_by_name(pipeline_id, &winner.name).await {
        Ok(Some(v)) if spec.same_as(&v) => Settled::Yielded(v),
        Err(_) => Settled::Yielded(winner),
        Ok(_) => {
            let meta = upload_meta(&mine.name, item, spec, opts, client.capabilities());
            match upload_checked(client, pipeline_id, &meta, spec).await {
                Ok((v, _)) => Settled::Kept(
                    v,
                    Some(format!(
                        "uploaded again after the identical {} of a concurrent run was removed too",
                        winner.name
                    )),
                ),
                Err(e) => Settled::Lost(api_failure(
                    ErrorKind::Upload,
                    &format!(
                        "{} was removed for the identical {} of a concurrent run, which was removed too; uploading it again failed (rerun the deploy)",
                        mine.name, winner.name
                    ),
                    &e,
                    client.auth(),
                )),
            }
        }
    }
}

/// Create the pipeline; `(id, None)` when this call created it, else `(id, Some(why it was
/// there))`. A 409 means another run created it (or an earlier attempt of ours landed with its
/// answer lost): it is looked up. A retryable failure is sent again as it is, at most
/// [`MAX_ATTEMPTS`](crate::client::MAX_ATTEMPTS) times in all: had it landed, the next attempt
/// gets the 409; after the last one the name is looked up once.
pub(super) async fn ensure_pipeline(
    client: &Client,
    body: &Pipeline,
    multi_user: bool,
) -> Result<(String, Option<&'static str>), ApiError> {
    // Our own create may have landed with its answer lost; either way the pipeline found is not
    // known to be ours, so it is never deleted on failure.
    const AFTER_FAILED: &str = "pipeline found after a failed create (its answer was lost, or a concurrent run created it)";
    let mut failed_before = false;
    let mut attempt = 1;
    loop {
        match client.create_pipeline(body).await {
            Ok(p) => return Ok((p.pipeline_id, None)),
            Err(e) if e.is_conflict() => {
                let found = if failed_before {
                    AFTER_FAILED
                } else {
                    "pipeline created concurrently by another run"
                };
                return match find_pipeline(client, &body.name, &body.namespace, multi_user).await? {
                    Some(p) => Ok((p.pipeline_id, Some(found))),
                    None => Err(e),
                };
            }
            Err(e) if e.is_retryable() && attempt < crate::client::MAX_ATTEMPTS => {
                tracing::debug!(
                    "creating {} failed ({}), sending it again",
                    body.name,
                    e.server_message()
                );
                failed_before = true;
                client.backoff.sleep_after(attempt, &e).await;
                attempt += 1;
            }
            Err(e) if e.is_retryable() => {
                // The last attempt may have landed too.
                return match find_pipeline(client, &body.name, &body.namespace, multi_user).await? {
                    Some(p) => Ok((p.pipeline_id, Some(AFTER_FAILED))),
                    None => Err(e),
                };
            }
            Err(e) => return Err(e),
        }
    }
}

/// Upload a version under the first free name; `Ok((version, true))` when a version with our
/// spec was already there (converged, nothing uploaded by us). An error carries the HTTP status
/// of the failed upload, if any.
pub(super) async fn upload_converging(
    client: &Client,
    pipeline_id: &str,
    item: &PlanItem,
    spec: &LocalSpec,
    opts: &ApplyOptions,
) -> Result<(PipelineVersion, bool), (PipelineError, Option<u16>)> {
    let auth = client.auth();
    let short_sha = opts
        .provenance
        .commit_sha
        .as_deref()
        .map(|s| &s[..s.len().min(7)]);
    let mut last_conflict = None;
    let caps = client.capabilities();
    for name in crate::compat::version_candidates(caps, &item.name, &opts.version_tag, short_sha) {
        let meta = upload_meta(&name, item, spec, opts, caps);
        match upload_checked(client, pipeline_id, &meta, spec).await {
            Ok(found) => return Ok(found),
            Err(e) if e.is_conflict() => {
                // A version of that name exists: ours already (a rerun, or a racing run with the
                // same spec)? Then we are done. Otherwise try the next name.
                match client.version_by_name(pipeline_id, &name).await {
                    Ok(Some(v)) if spec.same_as(&v) => return Ok((v, true)),
                    Ok(_) => {
                        tracing::debug!("{}: version name {name} is taken", item.name);
                        last_conflict = Some(e);
                    }
                    Err(e2) => {
                        return Err((
                            api_failure(
                                ErrorKind::Upload,
                                &format!("checking version {name} after a conflict"),
                                &e2,
                                auth,
                            ),
                            None,
                        ));
                    }
                }
            }
            Err(e) => {
                return Err((
                    api_failure(
                        ErrorKind::Upload,
                        &format!("uploading version {name}"),
                        &e,
                        auth,
                    ),
                    e.status(),
                ));
            }
        }
    }
    Err((
        PipelineError {
            kind: ErrorKind::Upload,
            message: format!(
                "every version name tried ({}…) is taken by a different spec; pass another --version-tag",
                opts.version_tag
            ),
            detail: last_conflict.map(|e| e.to_string()).unwrap_or_default(),
        },
        None,
    ))
}

/// Name, description and tags of an upload.
pub(super) fn upload_meta(
    name: &str,
    item: &PlanItem,
    spec: &LocalSpec,
    opts: &ApplyOptions,
    caps: &kfp_api::compat::Capabilities,
) -> UploadMeta {
    UploadMeta {
        name: name.to_string(),
        display_name: name.to_string(),
        description: description(item, &opts.provenance),
        tags: if opts.tags {
            tags(spec, &opts.provenance)
        } else {
            BTreeMap::new()
        },
        code_source_url: crate::compat::code_source_url(caps, &item.file, &opts.provenance),
    }
}

/// One upload with retries; before each retry, check whether the failed attempt landed.
pub(super) async fn upload_checked(
    client: &Client,
    pipeline_id: &str,
    meta: &UploadMeta,
    spec: &LocalSpec,
) -> Result<(PipelineVersion, bool), ApiError> {
    let mut attempt = 1;
    loop {
        match client.upload_version(pipeline_id, meta, &spec.yaml).await {
            Ok(v) => return Ok((v, false)),
            Err(e) if e.is_retryable() => {
                tracing::debug!(
                    "upload of {} failed ({}), checking whether it landed",
                    meta.name,
                    e.server_message()
                );
                // The last attempt may have landed too: check before giving up.
                let last = attempt >= crate::client::MAX_ATTEMPTS;
                if !last {
                    client.backoff.sleep_after(attempt, &e).await;
                }
                attempt += 1;
                match client.version_by_name(pipeline_id, &meta.name).await {
                    Ok(Some(v)) if spec.same_as(&v) => return Ok((v, false)),
                    // Taken by something else: let the caller try the next name.
                    Ok(Some(_)) => return Err(e.into_conflict()),
                    Ok(None) if last => return Err(e),
                    Err(check) if last && check.is_retryable() => return Err(e),
                    Ok(None) => {}
                    Err(check) if check.is_retryable() => {}
                    Err(check) => return Err(check),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

impl ApiError {
    /// The same error seen as a name conflict (the version name turned out to be taken).
    fn into_conflict(self) -> ApiError {
        match self {
            ApiError::Status {
                method, url, body, ..
            } => ApiError::Status {
                method,
                url,
                status: 409,
                message: "version name taken".into(),
                body,
                retry_after: None,
            },
            ApiError::Transport { method, url, .. } | ApiError::Decode { method, url, .. } => {
                ApiError::Status {
                    method,
                    url,
                    status: 409,
                    message: "version name taken".into(),
                    body: String::new(),
                    retry_after: None,
                }
            }
            other => other,
        }
    }
}
