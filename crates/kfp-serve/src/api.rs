//! The grpc-gateway routes of the v2beta1 pipeline service: list, get, get by name, create,
//! delete, PATCH, and healthz.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use kfp_api::routes::query;
use kfp_api::wire::limits::check_tags;
use kfp_api::wire::{
    ListPipelineVersionsResponse, ListPipelinesResponse, Pipeline, PipelineVersion, limits,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::AppState;
use crate::emulate;
use crate::error::ApiError;
use crate::list::{self, Kind};
use crate::store::{self, NewPipeline, Store};

pub type ApiResult<T> = Result<Json<T>, ApiError>;

/// Run a store operation off the async threads.
pub async fn blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || f(&state.store))
        .await
        .map_err(|e| ApiError::internal(format!("request task failed: {e}")))?
}

/// Query parameters; the first value of a repeated key wins, as Go's `r.URL.Query().Get`.
pub fn query_map(raw: Option<String>) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    map
}

pub fn path_param<T>(p: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    p.map(|Path(v)| v)
        .map_err(|e| ApiError::invalid(format!("invalid path parameter: {e}")))
}

/// The namespace a request acts in: always `""` in single-user mode.
pub fn namespace(state: &AppState, given: Option<&String>) -> Result<String, ApiError> {
    if !state.multi_user {
        return Ok(String::new());
    }
    let ns = given.cloned().unwrap_or_default();
    if ns.len() > limits::MAX_NAMESPACE {
        return Err(ApiError::invalid(format!(
            "Invalid input error: Namespace length cannot exceed {}",
            limits::MAX_NAMESPACE
        )));
    }
    Ok(ns)
}

/// The list options of a request (`page_size`, `page_token`, `sort_by`, `filter`) for `kind`
/// within `scope` (a namespace, a pipeline id).
pub fn list_params(
    kind: Kind,
    scope: &str,
    q: &HashMap<String, String>,
) -> Result<list::ListParams, ApiError> {
    let get = |name: &str| q.get(name).map(String::as_str);
    list::parse(
        kind,
        scope,
        get(query::PAGE_SIZE),
        get(query::PAGE_TOKEN),
        get(query::SORT_BY),
        get(query::FILTER),
    )
}

/// A JSON body with grpc-gateway's strictness: camelCase names read as snake_case, unknown
/// top-level fields refused.
pub fn strict_body<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    allowed: &[&str],
) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid(format!("invalid JSON request body: {e}")))?;
    let Value::Object(map) = value else {
        return Err(ApiError::invalid(
            "invalid JSON request body: expected an object",
        ));
    };
    let mut out = Map::new();
    for (key, mut v) in map {
        let snake = snake_case(&key);
        if !allowed.contains(&snake.as_str()) {
            return Err(ApiError::invalid(format!(
                "invalid JSON request body: unknown field {key:?}"
            )));
        }
        // Enums may come as their number.
        if snake == "mode"
            && let Some(n) = v.as_i64()
        {
            v = Value::from(match n {
                1 => "ENABLE",
                2 => "DISABLE",
                _ => "MODE_UNSPECIFIED",
            });
        }
        if !v.is_null() {
            out.insert(snake, v);
        }
    }
    serde_json::from_value(Value::Object(out))
        .map_err(|e| ApiError::invalid(format!("invalid JSON request body: {e}")))
}

fn snake_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The emulated release's healthz (plain JSON with every field, as the real handler writes).
pub async fn healthz(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(emulate::healthz(&state.caps, state.multi_user))
}

pub async fn list_pipelines(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
) -> ApiResult<ListPipelinesResponse> {
    let q = query_map(raw);
    let ns = namespace(&state, q.get(query::NAMESPACE))?;
    emulate::check_filter(&state.caps, q.get(query::FILTER))?;
    let params = list_params(Kind::Pipelines, &ns, &q)?;
    let page = blocking(&state, move |s| {
        s.read(|tx| store::list_pipelines(tx, Some(&ns), &params))
    })
    .await?;
    Ok(Json(ListPipelinesResponse {
        pipelines: page
            .items
            .into_iter()
            .map(|p| emulate::pipeline(&state.caps, p))
            .collect(),
        total_size: i32::try_from(page.total).unwrap_or(i32::MAX),
        next_page_token: page.next_token,
    }))
}

/// A request body in proto JSON: proto (snake_case) or JSON (camelCase) names, unknown fields rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineBody {
    #[serde(alias = "pipelineId")]
    pub pipeline_id: Option<String>,
    pub name: Option<String>,
    #[serde(alias = "displayName")]
    pub display_name: Option<String>,
    pub description: Option<String>,
    #[serde(alias = "createdAt")]
    pub created_at: Option<Value>,
    pub namespace: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
    pub error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VersionBody {
    #[serde(alias = "pipelineId")]
    pub pipeline_id: Option<String>,
    #[serde(alias = "pipelineVersionId")]
    pub pipeline_version_id: Option<String>,
    pub name: Option<String>,
    #[serde(alias = "displayName")]
    pub display_name: Option<String>,
    pub description: Option<String>,
    #[serde(alias = "createdAt")]
    pub created_at: Option<Value>,
    #[serde(alias = "packageUrl")]
    pub package_url: Option<Value>,
    #[serde(alias = "codeSourceUrl")]
    pub code_source_url: Option<String>,
    #[serde(alias = "pipelineSpec")]
    pub pipeline_spec: Option<Value>,
    pub tags: Option<BTreeMap<String, String>>,
    pub error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CreateBothBody {
    pub pipeline: Option<PipelineBody>,
    #[serde(alias = "pipelineVersion")]
    pub pipeline_version: Option<VersionBody>,
}

/// A request body, read to the end (so the connection stays usable) but kept only up to
/// [`crate::MAX_JSON_BODY`]; larger bodies are a 400 in grpc-gateway's shape.
pub type Body = axum::body::Body;

pub async fn body_bytes(body: Body) -> Result<Bytes, ApiError> {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    let mut total: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::invalid(format!("cannot read the request body: {e}")))?;
        total += chunk.len() as u64;
        if total <= crate::MAX_JSON_BODY as u64 {
            buf.extend_from_slice(&chunk);
        } else if total > crate::MAX_DRAIN {
            break;
        }
    }
    if total > crate::MAX_JSON_BODY as u64 {
        return Err(ApiError::invalid(format!(
            "the request body exceeds the limit of {} bytes",
            crate::MAX_JSON_BODY
        )));
    }
    Ok(Bytes::from(buf))
}

pub fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.len() > crate::MAX_JSON_BODY {
        return Err(ApiError::invalid(format!(
            "request body of {} bytes exceeds the limit of {} bytes",
            body.len(),
            crate::MAX_JSON_BODY
        )));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("invalid JSON request body: {e}")))
}

pub async fn create_pipeline(
    State(state): State<Arc<AppState>>,
    body: Body,
) -> ApiResult<Pipeline> {
    let mut body: PipelineBody = json_body(&body_bytes(body).await?)?;
    if !state.caps.separate_name {
        // Before 2.14 the message has no `name`: the gateway drops it, `display_name` is the Name.
        body.name = None;
    }
    if !state.caps.tags {
        body.tags = None;
    }
    let name = body
        .name
        .filter(|n| !n.is_empty())
        .or_else(|| body.display_name.clone().filter(|n| !n.is_empty()))
        .ok_or_else(|| {
            ApiError::invalid(
                "Invalid input error: pipeline name is required: set `name` (and optionally `display_name`)",
            )
        })?;
    if name.len() > limits::MAX_PIPELINE_NAME {
        return Err(ApiError::invalid(format!(
            "Invalid input error: Pipeline.Name length cannot exceed {}",
            limits::MAX_PIPELINE_NAME
        )));
    }
    emulate::check_k8s_name(&state.caps, "pipeline", &name).map_err(ApiError::invalid)?;
    let tags = body.tags.unwrap_or_default();
    check_tags(&tags).map_err(|e| ApiError::invalid(format!("Invalid input error: {e}")))?;
    let new = NewPipeline {
        display_name: body
            .display_name
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| name.clone()),
        name,
        description: body.description.unwrap_or_default(),
        namespace: namespace(&state, body.namespace.as_ref())?,
        tags,
    };
    let p = blocking(&state, move |s| {
        s.write(|tx| store::insert_pipeline(tx, &new))
    })
    .await?;
    Ok(Json(emulate::pipeline(&state.caps, p)))
}

/// `POST /pipelines/create` and `POST /pipelines/{id}/versions` take a package URL the real
/// server downloads. The local server downloads nothing.
pub async fn create_from_url(body: Bytes) -> Result<Json<Value>, ApiError> {
    // Parse first, so malformed bodies get the same 400 as on the real server.
    let _: Value = json_body(&body)?;
    // FailedPrecondition (400): this server's configuration allows no package URL, as a real
    // server whose PIPELINE_URL_ALLOWED_DOMAINS matches nothing.
    Err(ApiError::precondition(
        "Invalid input error: kfp-ci serve does not download pipeline package URLs (package_url): upload the file with POST /apis/v2beta1/pipelines/upload or /upload_version instead",
    ))
}

pub async fn create_pipeline_and_version(body: Body) -> Result<Json<Value>, ApiError> {
    let body = body_bytes(body).await?;
    let _: CreateBothBody = json_body(&body)?;
    create_from_url(body).await
}

pub async fn create_version(
    State(state): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let id = path_param(id)?;
    let body = body_bytes(body).await?;
    let _: VersionBody = json_body(&body)?;
    blocking(&state, move |s| s.read(|tx| pipeline_or_404(tx, &id))).await?;
    create_from_url(body).await
}

fn pipeline_or_404(tx: &rusqlite::Transaction<'_>, id: &str) -> Result<Pipeline, ApiError> {
    store::get_pipeline(tx, id)?.ok_or_else(|| {
        ApiError::not_found(format!(
            "Failed to get pipeline: Pipeline {id} not found: list pipelines to find its id"
        ))
    })
}

fn version_or_404(
    tx: &rusqlite::Transaction<'_>,
    pipeline_id: &str,
    version_id: &str,
) -> Result<PipelineVersion, ApiError> {
    store::get_version(tx, pipeline_id, version_id)?.ok_or_else(|| {
        ApiError::not_found(format!(
            "Failed to get pipeline version: PipelineVersion {version_id} of pipeline {pipeline_id} not found"
        ))
    })
}

pub async fn get_pipeline(
    State(state): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Pipeline> {
    let id = path_param(id)?;
    let p = blocking(&state, move |s| s.read(|tx| pipeline_or_404(tx, &id))).await?;
    Ok(Json(emulate::pipeline(&state.caps, p)))
}

pub async fn get_pipeline_by_name(
    State(state): State<Arc<AppState>>,
    name: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Pipeline> {
    let name = path_param(name)?;
    let q = query_map(raw);
    // Multi-user without a namespace: no filter, the newest pipeline of that name anywhere.
    let ns = if state.multi_user && q.get(query::NAMESPACE).is_none_or(|n| n.is_empty()) {
        None
    } else {
        Some(namespace(&state, q.get(query::NAMESPACE))?)
    };
    let p = blocking(&state, move |s| {
        s.read(|tx| {
            store::get_pipeline_by_name(tx, &name, ns.as_deref())?.ok_or_else(|| {
                ApiError::not_found(format!(
                    "Failed to get a pipeline with name {name:?} and namespace {:?}: Namespace/Pipeline {}/{name} not found",
                    ns.clone().unwrap_or_default(),
                    ns.clone().unwrap_or_default()
                ))
            })
        })
    })
    .await?;
    Ok(Json(emulate::pipeline(&state.caps, p)))
}

pub async fn delete_pipeline(
    State(state): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Value> {
    let id = path_param(id)?;
    let q = query_map(raw);
    let cascade = match q.get("cascade").map(String::as_str) {
        None | Some("") => false,
        Some(v) => parse_bool(v).ok_or_else(|| {
            ApiError::invalid(format!(
                "parsing field \"cascade\": {v:?} is not a boolean (true or false)"
            ))
        })?,
    };
    blocking(&state, move |s| {
        s.write(|tx| {
            pipeline_or_404(tx, &id)?;
            let versions = store::count_versions(tx, &id)?;
            if versions > 0 && !cascade {
                return Err(ApiError::precondition(format!(
                    "Failed to delete pipeline {id}: pipeline has {versions} existing pipeline version(s): delete them first or set cascade=true"
                )));
            }
            store::delete_pipeline(tx, &id)
        })
    })
    .await?;
    Ok(Json(Value::Object(Default::default())))
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "true" | "True" | "TRUE" | "1" | "t" | "T" => Some(true),
        "false" | "False" | "FALSE" | "0" | "f" | "F" => Some(false),
        _ => None,
    }
}

/// What a PATCH changes: a non-empty display name, and the tags when present (they replace the
/// old ones; `{}` clears them, as later KFP releases do), checked.
type Tags = BTreeMap<String, String>;
fn patch_fields(
    display_name: Option<String>,
    tags: Option<Tags>,
) -> Result<(Option<String>, Option<Tags>), ApiError> {
    if let Some(tags) = &tags {
        check_tags(tags).map_err(|e| ApiError::invalid(format!("Invalid input error: {e}")))?;
    }
    Ok((display_name.filter(|d| !d.is_empty()), tags))
}

pub async fn patch_pipeline(
    State(state): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
    body: Body,
) -> ApiResult<Pipeline> {
    let id = path_param(id)?;
    let body: PipelineBody = json_body(&body_bytes(body).await?)?;
    let (display, tags) = patch_fields(body.display_name, body.tags)?;
    let p = blocking(&state, move |s| {
        s.write(|tx| {
            pipeline_or_404(tx, &id)?;
            store::update_pipeline(tx, &id, display.as_deref(), tags.as_ref())?;
            pipeline_or_404(tx, &id)
        })
    })
    .await?;
    Ok(Json(emulate::pipeline(&state.caps, p)))
}

pub async fn list_versions(
    State(state): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> ApiResult<ListPipelineVersionsResponse> {
    let id = path_param(id)?;
    let q = query_map(raw);
    emulate::check_filter(&state.caps, q.get(query::FILTER))?;
    let params = list_params(Kind::Versions, &id, &q)?;
    let page = blocking(&state, move |s| {
        s.read(|tx| {
            pipeline_or_404(tx, &id)?;
            store::list_versions(tx, &id, &params)
        })
    })
    .await?;
    Ok(Json(ListPipelineVersionsResponse {
        pipeline_versions: page
            .items
            .into_iter()
            .map(|v| emulate::version(&state.caps, v))
            .collect(),
        total_size: i32::try_from(page.total).unwrap_or(i32::MAX),
        next_page_token: page.next_token,
    }))
}

pub async fn get_version(
    State(state): State<Arc<AppState>>,
    ids: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<PipelineVersion> {
    let (pid, vid) = path_param(ids)?;
    let v = blocking(&state, move |s| s.read(|tx| version_or_404(tx, &pid, &vid))).await?;
    Ok(Json(emulate::version(&state.caps, v)))
}

pub async fn delete_version(
    State(state): State<Arc<AppState>>,
    ids: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Value> {
    let (pid, vid) = path_param(ids)?;
    blocking(&state, move |s| {
        s.write(|tx| {
            version_or_404(tx, &pid, &vid)?;
            store::delete_version(tx, &vid)
        })
    })
    .await?;
    Ok(Json(Value::Object(Default::default())))
}

pub async fn patch_version(
    State(state): State<Arc<AppState>>,
    ids: Result<Path<(String, String)>, PathRejection>,
    body: Body,
) -> ApiResult<PipelineVersion> {
    let (pid, vid) = path_param(ids)?;
    let body: VersionBody = json_body(&body_bytes(body).await?)?;
    let (display, tags) = patch_fields(body.display_name, body.tags)?;
    let v = blocking(&state, move |s| {
        s.write(|tx| {
            version_or_404(tx, &pid, &vid)?;
            store::update_version(tx, &vid, display.as_deref(), tags.as_ref())?;
            version_or_404(tx, &pid, &vid)
        })
    })
    .await?;
    Ok(Json(emulate::version(&state.caps, v)))
}
