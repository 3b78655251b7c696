//! Apply: the server side of plan and deploy. Looks up server state ([`fetch_remote`]) and carries
//! out a plan ([`apply`]) with bounded concurrency, converging under races and retries:
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
//!   kfp-ci versions the later removes itself ([`reconcile`]);
//! - on a multi-user server every pipeline a lookup returns is checked against the target
//!   namespace ([`find_pipeline`]): KFP's get-by-name with namespace `""` does not filter;
//! - after SIGINT/SIGTERM no new item is started; the ones in flight finish;
//! - `--keep-versions N` prunes the oldest versions kfp-ci created, never the newest.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use kfp_api::wire::{Pipeline, PipelineVersion, limits};

use crate::client::{ApiError, Client, UploadMeta};
use crate::interrupt::Interrupt;
use crate::plan::{LocalPipeline, LocalSpec, PlanItem, RemoteState, Seen, timestamp};
use crate::report::{Action, PipelineError, Status};
use crate::target::Auth;

/// Tag and description marker of versions kfp-ci uploaded (what `--keep-versions` may delete).
pub const MANAGED_BY_TAG: (&str, &str) = ("managed-by", "kfp-ci");
pub const DESCRIPTION_MARKER: &str = "Deployed by kfp-ci";

/// Read concurrency for lookups (reads are cheap for the server; 2 per pipeline).
pub const LOOKUP_JOBS: usize = 32;

/// Where this deploy comes from, for version descriptions and tags.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    pub commit_sha: Option<String>,
    /// The work tree differed from `commit_sha`: versions say `<sha>-dirty`.
    pub dirty: bool,
    pub git_ref: Option<String>,
    pub run_url: Option<String>,
    pub run_id: Option<String>,
}

impl Provenance {
    /// The commit as versions name it: `<sha>`, or `<sha>-dirty`.
    pub fn commit_label(&self) -> Option<String> {
        let sha = self.commit_sha.as_deref()?;
        Some(if self.dirty {
            format!("{sha}{}", crate::git::DIRTY_SUFFIX)
        } else {
            sha.to_string()
        })
    }
}

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

/// What happened to one planned item.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub status: Status,
    /// Replaces the planned action: `unchanged` when a concurrent run (or a version already there)
    /// holds the spec and nothing of this run's stays on the server.
    pub action: Option<Action>,
    pub pipeline_id: Option<String>,
    pub version_id: Option<String>,
    pub version_name: Option<String>,
    /// Appended to the plan's reason (e.g. "created by a concurrent run").
    pub note: Option<String>,
    pub error: Option<PipelineError>,
    /// Old versions deleted by `--keep-versions`.
    pub pruned: usize,
}

fn api_failure(kind: &str, what: &str, err: &ApiError, auth: &Auth) -> PipelineError {
    let mut detail = err.body().to_string();
    if let Some(hint) = err.hint(auth) {
        if !detail.is_empty() {
            detail.push('\n');
        }
        detail.push_str("hint: ");
        detail.push_str(&hint);
    }
    PipelineError {
        kind: kind.into(),
        message: format!("{what}: {}", err.server_message()),
        detail,
    }
}

/// Look up every valid local pipeline on the server: the pipeline by name and namespace, then its
/// newest version. Same order as `locals`.
///
/// A 401 or 403 on a lookup is returned as the run's error instead: the credentials are
/// rejected for every pipeline alike (KFP's health check needs none, so this is where a wrong or
/// expired token shows), and that is a configuration problem (exit 2), not N pipeline failures.
pub async fn fetch_remote(
    client: &Client,
    locals: &[LocalPipeline],
    namespace: &str,
    multi_user: bool,
) -> Result<Vec<RemoteState>, ApiError> {
    let auth = client.auth();
    let mut results = futures_util::stream::iter(locals.iter().enumerate())
        .map(|(index, local)| async move {
            (
                index,
                lookup(client, local, namespace, multi_user, auth).await,
            )
        })
        .buffer_unordered(LOOKUP_JOBS)
        .collect::<Vec<_>>()
        .await;
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, r)| r).collect()
}

/// The pipeline named `name` in the target namespace, if any.
///
/// On a multi-user server KFP's `GET /pipelines/names/{name}` with namespace `""` does not
/// filter: it answers with the newest pipeline of that name in any namespace. A pipeline from
/// another namespace is never ours (writing a version into it would deploy into someone else's
/// namespace, comparing with it would call ours "unchanged"): then the shared pipelines are
/// listed, which the list endpoint filters on the exact namespace. Single-user servers ignore
/// namespaces, so there is nothing to check.
pub async fn find_pipeline(
    client: &Client,
    name: &str,
    namespace: &str,
    multi_user: bool,
) -> Result<Option<Pipeline>, ApiError> {
    Ok(find_pipeline_noting(client, name, namespace, multi_user)
        .await?
        .0)
}

/// [`find_pipeline`], and the other namespace get-by-name answered with, if it did.
async fn find_pipeline_noting(
    client: &Client,
    name: &str,
    namespace: &str,
    multi_user: bool,
) -> Result<(Option<Pipeline>, Option<String>), ApiError> {
    match client.pipeline_by_name(name, namespace).await? {
        Some(p) if !multi_user || p.namespace == namespace => Ok((Some(p), None)),
        Some(other) => {
            tracing::debug!(
                "{name}: the lookup answered with the pipeline {} of namespace {:?}, not {:?}; listing {:?} instead",
                other.pipeline_id,
                other.namespace,
                namespace,
                namespace
            );
            let own = client
                .pipelines_named(name, namespace)
                .await?
                .into_iter()
                .find(|p| p.name == name && p.namespace == namespace);
            Ok((own, Some(other.namespace)))
        }
        None => Ok((None, None)),
    }
}

/// Results of `buffer_unordered` back in input order.
fn in_order<T>(mut indexed: Vec<(usize, T)>) -> Vec<T> {
    indexed.sort_by_key(|(index, _)| *index);
    indexed.into_iter().map(|(_, t)| t).collect()
}

async fn lookup(
    client: &Client,
    local: &LocalPipeline,
    namespace: &str,
    multi_user: bool,
    auth: &Auth,
) -> Result<RemoteState, ApiError> {
    if local.spec.is_err() {
        return Ok(RemoteState::Unknown);
    }
    let rejected = |e: &ApiError| matches!(e.status(), Some(401 | 403));
    let pipeline = match find_pipeline_noting(client, &local.name, namespace, multi_user).await {
        Ok((None, None)) => return Ok(RemoteState::Absent),
        Ok((None, Some(other_namespace))) => {
            return Ok(RemoteState::AbsentHere {
                namespace: namespace.to_string(),
                other_namespace,
            });
        }
        Ok((Some(p), _)) => p,
        Err(e) if rejected(&e) => return Err(e),
        Err(e) => return Ok(RemoteState::Failed(api_failure("plan", "lookup", &e, auth))),
    };
    Ok(match client.latest_versions(&pipeline.pipeline_id).await {
        Ok(found) => {
            let (latest, tied) = match found {
                Some((latest, tied)) => (Some(Box::new(latest)), tied),
                None => (None, Vec::new()),
            };
            RemoteState::Present {
                pipeline: Box::new(pipeline),
                latest,
                tied,
            }
        }
        Err(e) if rejected(&e) => return Err(e),
        Err(e) => RemoteState::Failed(api_failure("plan", "listing versions", &e, auth)),
    })
}

/// Carry out the plan: one outcome per item, in the same order. Items that need no change get
/// `Skipped`/`Done` without a request. Once `interrupt` is set no new item is started (they are
/// `Skipped`); the ones in flight finish.
pub async fn apply(
    client: &Client,
    items: &[PlanItem],
    opts: &ApplyOptions,
    interrupt: &Interrupt,
) -> Vec<Outcome> {
    in_order(
        futures_util::stream::iter(items.iter().enumerate())
            .map(|(index, item)| async move {
                (index, apply_item(client, item, opts, interrupt).await)
            })
            .buffer_unordered(opts.upload_jobs.max(1))
            .collect()
            .await,
    )
}

/// The note on an item that a signal kept from starting.
pub const NOT_STARTED: &str = "not applied: interrupted before it started";

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
            note: Some(NOT_STARTED.into()),
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

/// `a; b`, or `b` alone.
fn join_notes(a: Option<String>, b: String) -> Option<String> {
    Some(match a {
        Some(a) => format!("{a}; {b}"),
        None => b,
    })
}

/// Nothing of this run stays: `version` (a concurrent run's, or one already there) holds the spec.
fn already_there(
    pipeline_id: String,
    version: PipelineVersion,
    note: Option<String>,
    why: String,
) -> Outcome {
    Outcome {
        status: Status::Done,
        action: Some(Action::Unchanged),
        pipeline_id: Some(pipeline_id),
        version_id: Some(version.pipeline_version_id),
        version_name: Some(version.name),
        note: join_notes(note, why),
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
    let mut note = None;
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
                note = Some(found.to_string());
                id
            }
            Err(e) => return failed(api_failure("upload", "creating the pipeline", &e, auth)),
        },
    };

    // A concurrent run may have deployed this spec since the plan: then there is nothing to do.
    if !created_here && let Some(v) = deployed_meanwhile(client, &pipeline_id, spec, &seen).await {
        let why = by_concurrent_run(&v);
        return already_there(pipeline_id, v, note, why);
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
                    note = Some(format!(
                        "pipeline {pipeline_id} was deleted by a concurrent run meanwhile; {}",
                        if created_here {
                            "created it again"
                        } else {
                            "another run created it again"
                        }
                    ));
                    pipeline_id = id;
                    seen = Seen::default();
                    result = upload_converging(client, &pipeline_id, item, spec, opts).await;
                }
                Err(e) => {
                    return failed(api_failure(
                        "upload",
                        "creating the pipeline again after it was deleted by a concurrent run",
                        &e,
                        auth,
                    ));
                }
            },
            Ok(Some(p)) if p.pipeline_id != pipeline_id => {
                note = Some(format!(
                    "pipeline {pipeline_id} was replaced by {} (a concurrent run) meanwhile",
                    p.pipeline_id
                ));
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
            already_there(pipeline_id, version, note, why)
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
                        note = join_notes(note, extra);
                    }
                    // Say so when the server made the version name differ from the tag.
                    if let Some(renamed) = crate::compat::rename_note(
                        client.capabilities(),
                        &opts.version_tag,
                        &version.name,
                    ) {
                        note = join_notes(note, renamed);
                    }
                    Outcome {
                        status: Status::Done,
                        pipeline_id: Some(pipeline_id),
                        version_id: Some(version.pipeline_version_id),
                        version_name: Some(version.name),
                        note,
                        ..Outcome::default()
                    }
                }
                Settled::Yielded(winner) => {
                    let why = format!(
                        "{} (the identical version this run uploaded was removed again)",
                        by_concurrent_run(&winner)
                    );
                    already_there(pipeline_id, winner, note, why)
                }
                Settled::Lost(error) => Outcome {
                    status: Status::Failed,
                    pipeline_id: Some(pipeline_id),
                    error: Some(error),
                    note,
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
                note,
                ..Outcome::default()
            }
        }
    }
}

/// The newest version, when a concurrent run created it after the plan and it (with every
/// version of the same second) holds our spec. A failed read is no reason to stop: the upload
/// and [`reconcile`] still converge.
async fn deployed_meanwhile(
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
async fn reconcile(
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
enum Settled {
    /// It stays (with a note when something unusual happened).
    Kept(PipelineVersion, Option<String>),
    /// It was removed: this identical version of a concurrent run stays.
    Yielded(PipelineVersion),
    /// It was removed for a concurrent run's version that is gone too, and could not be
    /// uploaded again.
    Lost(PipelineError),
}

#[allow(clippy::too_many_arguments)]
async fn settle(
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
                    "upload",
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
async fn ensure_pipeline(
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

/// Candidate version names: the tag, then the tag with the short git sha, then `-2`, `-3`, `-4`.
/// Each stays within KFP's 127 bytes by shortening the tag, never the suffix (a 127-byte tag
/// would otherwise make every candidate the same name).
pub fn version_names(tag: &str, short_sha: Option<&str>) -> Vec<String> {
    let with_suffix = |suffix: &str| {
        let room = limits::MAX_VERSION_NAME.saturating_sub(suffix.len());
        format!("{}{suffix}", truncate_bytes(tag, room))
    };
    let mut names = vec![with_suffix("")];
    if let Some(sha) = short_sha.filter(|s| !s.is_empty() && !tag.contains(*s)) {
        names.push(with_suffix(&format!("-{sha}")));
    }
    for n in 2..=4 {
        names.push(with_suffix(&format!("-{n}")));
    }
    names
}

/// The end of `s`, at most `max` bytes, cut on a character boundary.
fn last_bytes(s: &str, max: usize) -> String {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_string()
}

fn truncate_bytes(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Upload a version under the first free name; `Ok((version, true))` when a version with our
/// spec was already there (converged, nothing uploaded by us). An error carries the HTTP status
/// of the failed upload, if any.
async fn upload_converging(
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
                                "upload",
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
                    api_failure("upload", &format!("uploading version {name}"), &e, auth),
                    e.status(),
                ));
            }
        }
    }
    Err((
        PipelineError {
            kind: "upload".into(),
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
fn upload_meta(
    name: &str,
    item: &PlanItem,
    spec: &LocalSpec,
    opts: &ApplyOptions,
    caps: &kfp_api::compat::Capabilities,
) -> UploadMeta {
    UploadMeta {
        name: name.to_string(),
        display_name: name.to_string(),
        description: description(item, opts),
        tags: if opts.tags {
            tags(spec, opts)
        } else {
            BTreeMap::new()
        },
        code_source_url: crate::compat::code_source_url(caps, &item.file, &opts.provenance),
    }
}

/// One upload with retries; before each retry, check whether the failed attempt landed.
async fn upload_checked(
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

/// Version description: marker, source file, commit, ref, run link.
pub fn description(item: &PlanItem, opts: &ApplyOptions) -> String {
    let p = &opts.provenance;
    let mut out = format!(
        "{DESCRIPTION_MARKER} {} from {}",
        env!("CARGO_PKG_VERSION"),
        item.file
    );
    if let Some(sha) = p.commit_label() {
        out.push_str(&format!(" at {sha}"));
    }
    if let Some(r) = &p.git_ref {
        out.push_str(&format!(" ({r})"));
    }
    if let Some(url) = &p.run_url {
        out.push_str(&format!(", run {url}"));
    }
    out
}

/// Version tags within KFP's limits: ≤ 20, key and value ≤ 63 characters, no `.` in keys.
pub fn tags(spec: &LocalSpec, opts: &ApplyOptions) -> BTreeMap<String, String> {
    let p = &opts.provenance;
    let mut tags = BTreeMap::new();
    tags.insert(MANAGED_BY_TAG.0.to_string(), MANAGED_BY_TAG.1.to_string());
    tags.insert(
        "kfp-ci-version".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    tags.insert("spec-hash".to_string(), spec.hash.clone());
    if let Some(sha) = p.commit_label() {
        tags.insert("git-sha".to_string(), sha);
    }
    if let Some(r) = &p.git_ref {
        tags.insert("git-ref".to_string(), r.clone());
    }
    if let Some(id) = &p.run_id {
        tags.insert("run-id".to_string(), id.clone());
    }
    tags.into_iter()
        .take(limits::MAX_TAGS)
        .map(|(k, v)| {
            let k = k.replace('.', "-");
            // Keep the end of long values (a ref's branch name is more telling than its prefix),
            // within 63 bytes: the server's Go `len` counts bytes, so a non-ASCII branch name of
            // 63 characters would still be refused.
            (
                truncate_bytes(&k, limits::MAX_TAG_LEN),
                last_bytes(&v, limits::MAX_TAG_LEN),
            )
        })
        .collect()
}

/// Was this version uploaded by kfp-ci?
pub fn managed_by_kfp_ci(v: &PipelineVersion) -> bool {
    v.tags.get(MANAGED_BY_TAG.0).map(String::as_str) == Some(MANAGED_BY_TAG.1)
        || v.description.starts_with(DESCRIPTION_MARKER)
}

/// Which versions `--keep-versions keep` deletes: kfp-ci's beyond the newest `keep` of them, never
/// the pipeline's newest version. `versions` are newest first.
pub fn versions_to_prune(versions: &[PipelineVersion], keep: usize) -> Vec<&PipelineVersion> {
    let keep = keep.max(1);
    // Timestamps have second precision: a version created in the same second as the newest
    // might be the newest, so it is never deleted either.
    let newest_at = versions.first().and_then(|v| v.created_at.clone());
    versions
        .iter()
        .skip(1)
        .filter(|v| managed_by_kfp_ci(v))
        .filter(|v| newest_at.is_none() || v.created_at != newest_at)
        .skip(keep.saturating_sub(usize::from(versions.first().is_some_and(managed_by_kfp_ci))))
        .collect()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn version(name: &str, ours: bool) -> PipelineVersion {
        PipelineVersion {
            name: name.into(),
            pipeline_version_id: name.into(),
            description: if ours {
                format!("{DESCRIPTION_MARKER} 0.1.0 from x.py")
            } else {
                "by hand".into()
            },
            ..PipelineVersion::default()
        }
    }

    #[test]
    fn prune_keeps_newest_and_foreign_versions() {
        // newest first
        let versions = vec![
            version("v5", true),
            version("v4", false),
            version("v3", true),
            version("v2", true),
            version("v1", true),
        ];
        let names = |keep| {
            versions_to_prune(&versions, keep)
                .iter()
                .map(|v| v.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(2), vec!["v2", "v1"]);
        assert_eq!(names(1), vec!["v3", "v2", "v1"]);
        assert_eq!(names(0), vec!["v3", "v2", "v1"], "never the newest");
        assert!(names(10).is_empty());
        // A version from the same second as the newest is never deleted.
        let mut tied = versions.clone();
        tied[0].created_at = Some("2026-01-01T00:00:05Z".into());
        tied[2].created_at = Some("2026-01-01T00:00:05Z".into());
        let pruned: Vec<_> = versions_to_prune(&tied, 1)
            .iter()
            .map(|v| v.name.clone())
            .collect();
        assert_eq!(pruned, vec!["v2", "v1"]);
        // The newest is foreign: it is kept anyway and does not count against N.
        let versions = vec![
            version("hand", false),
            version("v2", true),
            version("v1", true),
        ];
        let pruned: Vec<_> = versions_to_prune(&versions, 1)
            .iter()
            .map(|v| v.name.clone())
            .collect();
        assert_eq!(pruned, vec!["v1"]);
    }

    #[test]
    fn version_name_suffixes() {
        assert_eq!(
            version_names("v20260101-000000", Some("abc1234")),
            vec![
                "v20260101-000000",
                "v20260101-000000-abc1234",
                "v20260101-000000-2",
                "v20260101-000000-3",
                "v20260101-000000-4"
            ]
        );
        // A tag at the limit (or beyond) still gives distinct names within 127 bytes.
        for len in [127, 200] {
            let long = "x".repeat(len);
            let names = version_names(&long, Some("abc1234"));
            assert!(
                names.iter().all(|n| n.len() <= limits::MAX_VERSION_NAME),
                "{names:?}"
            );
            let distinct: std::collections::BTreeSet<_> = names.iter().collect();
            assert_eq!(distinct.len(), 5, "{names:?}");
            assert!(names[1].ends_with("-abc1234") && names[4].ends_with("-4"));
        }
        // Multi-byte characters are cut on a character boundary.
        let names = version_names(&"é".repeat(64), None);
        assert!(names.iter().all(|n| n.len() <= limits::MAX_VERSION_NAME));
        assert!(names[1].ends_with("-2"));
    }

    #[test]
    fn tags_respect_kfp_limits() {
        let spec = LocalSpec {
            yaml: String::new(),
            canonical: String::new(),
            hash: "c1-0123456789012345678901234567890123456789".into(),
            pipeline_info_name: "x".into(),
        };
        let opts = ApplyOptions {
            namespace: String::new(),
            multi_user: false,
            version_tag: "v1".into(),
            tags: true,
            provenance: Provenance {
                commit_sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
                dirty: false,
                git_ref: Some(format!("refs/heads/{}", "feature/".repeat(10))),
                run_url: None,
                run_id: Some("42".into()),
            },
            keep_versions: None,
            upload_jobs: 8,
        };
        let tags = tags(&spec, &opts);
        assert!(tags.len() <= limits::MAX_TAGS);
        for (k, v) in &tags {
            assert!(!k.contains('.') && !k.is_empty() && k.len() <= 63, "{k}");
            assert!(v.len() <= 63, "{k}={v}");
        }
        assert!(tags["git-ref"].ends_with("feature/feature/"), "{tags:?}");
        // A non-ASCII branch name: within 63 bytes, cut on a character boundary, end kept.
        let mut opts = opts;
        opts.provenance.git_ref = Some(format!("refs/heads/{}-end", "ü".repeat(40)));
        let tags = super::tags(&spec, &opts);
        assert!(tags["git-ref"].len() <= 63, "{tags:?}");
        assert!(tags["git-ref"].ends_with("ü-end"), "{tags:?}");
        assert_eq!(tags["managed-by"], "kfp-ci");
        assert_eq!(tags["spec-hash"], spec.hash);
    }
}
