//! `--server-version` and `--pipeline-store`: how an emulated release differs from 2.17.0.
//!
//! The differences come from [`kfp_api::compat::Capabilities`] (the table kfp-ci's client reads
//! too); this module applies them where the handlers answer:
//!
//! - before 2.14, objects have no `name` (the one `Name` is shown as `display_name`), the upload
//!   handlers ignore `display_name`, `POST /pipelines` ignores `name`, and healthz has no
//!   `pipeline_store`;
//! - before 2.17, no tags (upload parameter ignored, `tags.<key>` filters refused) and no PATCH
//!   routes (see the router);
//! - `code_source_url` on upload only after 2.17.0;
//! - Kubernetes store (2.14+): names must be DNS-1123 subdomains, and a version's custom resource
//!   is named by the bare version name before 2.17 (so version names are unique per namespace),
//!   `{pipeline}-{version}` from 2.17.

use axum::http::StatusCode;
use kfp_api::compat::{Capabilities, Release, Store, VersionResourceName, is_dns1123_subdomain};
use kfp_api::wire::{Filter, Pipeline, PipelineVersion};
use serde_json::{Value, json};

use crate::error::ApiError;

/// Refuse combinations no release had.
pub fn check(release: Release, store: Store) -> anyhow::Result<()> {
    if release < Release::V2_0 {
        anyhow::bail!(
            "--server-version {release}: kfp-ci serve emulates KFP 2.0.0 and later (the v2beta1 API)"
        );
    }
    if store == Store::Kubernetes && release < Release::V2_14 {
        anyhow::bail!(
            "--pipeline-store kubernetes needs --server-version 2.14.0 or later: KFP {release} has only the database store"
        );
    }
    Ok(())
}

/// A pipeline as the emulated release writes it.
pub fn pipeline(caps: &Capabilities, mut p: Pipeline) -> Pipeline {
    if !caps.separate_name {
        p.name.clear();
    }
    if !caps.tags {
        p.tags.clear();
    }
    p
}

/// A version as the emulated release writes it.
pub fn version(caps: &Capabilities, mut v: PipelineVersion) -> PipelineVersion {
    if !caps.separate_name {
        v.name.clear();
    }
    if !caps.tags {
        v.tags.clear();
    }
    // 2.17.0 and older do not write `code_source_url` in v2beta1 versions; later ones do.
    if !caps.upload_code_source_url {
        v.code_source_url.clear();
    }
    v
}

/// healthz: `pipeline_store` from 2.14 on (older releases write three fields).
pub fn healthz(caps: &Capabilities, multi_user: bool) -> Value {
    let commit_sha = format!("kfp-ci-serve-{}", env!("CARGO_PKG_VERSION"));
    let tag_name = caps.release_label();
    if caps.release.is_some_and(|r| r >= Release::V2_14) {
        json!({
            "commit_sha": commit_sha,
            "tag_name": tag_name,
            "multi_user": multi_user,
            "pipeline_store": caps.store.as_str(),
        })
    } else {
        json!({"commit_sha": commit_sha, "tag_name": tag_name, "multi_user": multi_user})
    }
}

/// Before 2.17 there are no tags to filter on: the key is unknown.
pub fn check_filter(caps: &Capabilities, filter: Option<&String>) -> Result<(), ApiError> {
    if caps.tags {
        return Ok(());
    }
    let Some(text) = filter.filter(|f| !f.trim().is_empty()) else {
        return Ok(());
    };
    let Ok(parsed) = serde_json::from_str::<Filter>(text) else {
        return Ok(()); // the list parser reports malformed filters
    };
    if let Some(p) = parsed
        .predicates
        .iter()
        .find(|p| p.key.starts_with("tags."))
    {
        return Err(ApiError::invalid(format!(
            "Invalid input error: invalid filter key {:?}: KFP {} has no tags (they came with 2.17.0)",
            p.key,
            caps.release_label()
        )));
    }
    Ok(())
}

/// Kubernetes store: `metadata.name` must be a DNS-1123 subdomain. `kind` is `pipeline` or
/// `pipeline version`. 2.17 checks before asking Kubernetes; older releases pass on the API
/// server's refusal; both answer 400.
pub fn check_k8s_name(caps: &Capabilities, kind: &str, name: &str) -> Result<(), String> {
    if caps.store != Store::Kubernetes || is_dns1123_subdomain(name) {
        return Ok(());
    }
    Err(if caps.tags {
        format!(
            "Invalid input error: Invalid {kind} name {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character. Use 'display_name' for human-readable labels"
        )
    } else {
        format!(
            "Invalid input error: Invalid {kind} name: {kind} names must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        )
    })
}

/// Kubernetes store: the custom resource name of version `version` of pipeline `pipeline`.
pub fn version_resource_name(caps: &Capabilities, pipeline: &str, version: &str) -> Option<String> {
    match caps.version_resource_name {
        VersionResourceName::None => None,
        VersionResourceName::Bare => Some(version.to_string()),
        VersionResourceName::Composite if pipeline == version => Some(version.to_string()),
        VersionResourceName::Composite => Some(format!("{pipeline}-{version}")),
    }
}

/// The 409 of a Kubernetes store whose version resource name is taken in the namespace.
pub fn resource_taken(resource: &str) -> ApiError {
    ApiError::already_exists(format!(
        "Failed to create a pipeline version: Already exist error: Failed to create a new pipeline version. The name {resource} already exists. Please specify a new name"
    ))
}

/// The upload handlers' 400 for a bad name.
pub fn bad_name(message: String) -> ApiError {
    ApiError::upload(StatusCode::BAD_REQUEST, message)
}
