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
//! - `--keep-versions N` prunes the oldest versions kfp-ci created, never the newest.

use std::collections::BTreeMap;

use futures_util::StreamExt;
use kfp_api::wire::{Pipeline, PipelineVersion, limits};

use crate::client::{ApiError, Client, UploadMeta};
use crate::plan::{LocalPipeline, LocalSpec, PlanItem, RemoteState};
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
    pub git_ref: Option<String>,
    pub run_url: Option<String>,
    pub run_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub namespace: String,
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
) -> Result<Vec<RemoteState>, ApiError> {
    let auth = client.auth();
    let mut results = futures_util::stream::iter(locals.iter().enumerate())
        .map(|(index, local)| async move { (index, lookup(client, local, namespace, auth).await) })
        .buffer_unordered(LOOKUP_JOBS)
        .collect::<Vec<_>>()
        .await;
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, r)| r).collect()
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
    auth: &Auth,
) -> Result<RemoteState, ApiError> {
    if local.spec.is_err() {
        return Ok(RemoteState::Unknown);
    }
    let rejected = |e: &ApiError| matches!(e.status(), Some(401 | 403));
    let pipeline = match client.pipeline_by_name(&local.name, namespace).await {
        Ok(None) => return Ok(RemoteState::Absent),
        Ok(Some(p)) => p,
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
/// `Skipped`/`Done` without a request.
pub async fn apply(client: &Client, items: &[PlanItem], opts: &ApplyOptions) -> Vec<Outcome> {
    in_order(
        futures_util::stream::iter(items.iter().enumerate())
            .map(|(index, item)| async move { (index, apply_item(client, item, opts).await) })
            .buffer_unordered(opts.upload_jobs.max(1))
            .collect()
            .await,
    )
}

async fn apply_item(client: &Client, item: &PlanItem, opts: &ApplyOptions) -> Outcome {
    match (item.action, &item.spec) {
        (Action::Create | Action::NewVersion, Some(spec)) => {
            let outcome = apply_one(client, item, spec, opts).await;
            match (outcome, opts.keep_versions) {
                (mut o, Some(keep)) if o.status == Status::Done => {
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
            if let (Some(keep), Some(pid)) = (opts.keep_versions, &item.pipeline_id) {
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

async fn apply_one(
    client: &Client,
    item: &PlanItem,
    spec: &LocalSpec,
    opts: &ApplyOptions,
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
    let mut pipeline_id = match (&item.action, &item.pipeline_id) {
        (Action::NewVersion, Some(id)) => id.clone(),
        _ => match ensure_pipeline(client, &body).await {
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

    let mut result = upload_converging(client, &pipeline_id, item, spec, opts).await;
    if !created_here && matches!(&result, Err((_, Some(400)))) {
        // The pipeline was looked up, not created here: a concurrent run whose first upload
        // failed may have deleted it meanwhile (KFP answers an unknown pipeline id with a
        // generic 400). Look it up again; if it is gone, create it (once) and upload again.
        match client.pipeline_by_name(&item.name, &opts.namespace).await {
            Ok(None) => match ensure_pipeline(client, &body).await {
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
        Ok((version, converged)) => {
            if converged {
                note = Some(format!(
                    "version {} already holds this spec (uploaded by a concurrent run)",
                    version.name
                ));
            }
            // Say so when the server made the version name differ from the tag.
            if let Some(renamed) =
                crate::compat::rename_note(client.capabilities(), &opts.version_tag, &version.name)
            {
                note = Some(note.map_or(renamed.clone(), |n| format!("{n}; {renamed}")));
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

/// Create the pipeline; `(id, None)` when this call created it, else `(id, Some(why it was
/// there))`. A 409 means another run created it; a retryable failure may have landed: both are
/// looked up before trying again.
async fn ensure_pipeline(
    client: &Client,
    body: &Pipeline,
) -> Result<(String, Option<&'static str>), ApiError> {
    let mut attempt = 1;
    loop {
        match client.create_pipeline(body).await {
            Ok(p) => return Ok((p.pipeline_id, None)),
            Err(e) if e.is_conflict() || e.is_retryable() => {
                if let Some(p) = client.pipeline_by_name(&body.name, &body.namespace).await? {
                    let found = if e.is_conflict() {
                        "pipeline created concurrently by another run"
                    } else {
                        // Our own create may have landed with its answer lost; either way the
                        // pipeline is not known to be ours, so it is never deleted on failure.
                        "pipeline found after a failed create (its answer was lost, or a concurrent run created it)"
                    };
                    return Ok((p.pipeline_id, Some(found)));
                }
                if e.is_conflict() || attempt >= crate::client::MAX_ATTEMPTS {
                    return Err(e);
                }
                client.backoff.sleep_after(attempt, &e).await;
                attempt += 1;
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
        let meta = UploadMeta {
            name: name.clone(),
            display_name: name.clone(),
            description: description(item, opts),
            tags: if opts.tags {
                tags(spec, opts)
            } else {
                BTreeMap::new()
            },
            code_source_url: crate::compat::code_source_url(caps, &item.file, &opts.provenance),
        };
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
    if let Some(sha) = &p.commit_sha {
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
    if let Some(sha) = &p.commit_sha {
        tags.insert("git-sha".to_string(), sha.clone());
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
            version_tag: "v1".into(),
            tags: true,
            provenance: Provenance {
                commit_sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
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
