//! Lookup: what the server holds for each compiled pipeline (the pipeline by name in the target
//! namespace, its newest versions), read with bounded concurrency before the plan.
//!
//! On a multi-user server every pipeline a lookup returns is checked against the target
//! namespace ([`find_pipeline`]): KFP's get-by-name with namespace `""` does not filter.

use futures_util::StreamExt;
use kfp_api::wire::Pipeline;

use crate::client::{ApiError, Client};
use crate::plan::{LocalPipeline, RemoteState};
use crate::row::{ErrorKind, PipelineError};
use crate::target::Auth;

/// Read concurrency for lookups (reads are cheap for the server; 2 per pipeline).
pub const LOOKUP_JOBS: usize = 32;

pub(crate) fn api_failure(
    kind: ErrorKind,
    what: &str,
    err: &ApiError,
    auth: &Auth,
) -> PipelineError {
    let mut detail = err.body().to_string();
    if let Some(hint) = err.hint(auth) {
        if !detail.is_empty() {
            detail.push('\n');
        }
        detail.push_str("hint: ");
        detail.push_str(&hint);
    }
    PipelineError {
        kind,
        message: format!("{what}: {}", err.server_message()),
        detail,
    }
}

/// Look up every valid local pipeline on the server: the pipeline by name and namespace, then its
/// newest version. Each local pipeline comes back with what the server holds for it.
///
/// A 401 or 403 on a lookup is returned as the run's error instead: the credentials are
/// rejected for every pipeline alike (KFP's health check needs none, so this is where a wrong or
/// expired token shows), and that is a configuration problem (exit 2), not N pipeline failures.
pub async fn server_state(
    client: &Client,
    locals: Vec<LocalPipeline>,
    namespace: &str,
    multi_user: bool,
) -> Result<Vec<(LocalPipeline, RemoteState)>, ApiError> {
    let auth = client.auth();
    let mut results = futures_util::stream::iter(locals.into_iter().enumerate())
        .map(|(index, local)| async move {
            let remote = lookup(client, &local, namespace, multi_user, auth).await;
            (index, remote.map(|remote| (local, remote)))
        })
        .buffer_unordered(LOOKUP_JOBS)
        .collect::<Vec<_>>()
        .await;
    // The lookups finish in any order; the plan keeps the order of discovery.
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
pub(crate) async fn find_pipeline_noting(
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
        Err(e) => {
            return Ok(RemoteState::Failed(api_failure(
                ErrorKind::Plan,
                "lookup",
                &e,
                auth,
            )));
        }
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
        Err(e) => RemoteState::Failed(api_failure(ErrorKind::Plan, "listing versions", &e, auth)),
    })
}
