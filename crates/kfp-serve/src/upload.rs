//! The hand-written upload handlers: `POST /apis/v2beta1/pipelines/upload` and `/upload_version`.
//! Any method is accepted, metadata comes from the query string, the file from the multipart part
//! `uploadfile`, and errors use the `{error_message, error_details}` shape.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kfp_api::spec;
use kfp_api::wire::limits;

use crate::api::{blocking, namespace, query_map};
use crate::archive;
use crate::emulate;
use crate::error::ApiError;
use crate::store::{self, NewPipeline, NewVersion};
use crate::{AppState, MAX_DRAIN};
use kfp_api::wire::limits::check_tags;

const READ_FILE: &str = "Failed to read pipeline from file";
const READ_SPEC: &str = "Failed to read a pipeline spec file";
const CREATE_BOTH: &str = "Failed to create a pipeline and a pipeline version";
const CREATE_VERSION: &str = "Failed to create a pipeline version";

fn bad(context: &str, cause: impl std::fmt::Display) -> ApiError {
    ApiError::upload(StatusCode::BAD_REQUEST, format!("{context}: {cause}"))
}

/// The uploaded file: its name and bytes.
struct UploadFile {
    name: String,
    bytes: Vec<u8>,
}

/// Read the first `uploadfile` part that has a filename; drain everything else.
/// `missing` and `unreadable` are the route's generic texts for a missing and a bad file.
async fn read_upload(
    req: Request,
    missing: &str,
    unreadable: &str,
) -> Result<UploadFile, ApiError> {
    let mut multipart = Multipart::from_request(req, &())
        .await
        .map_err(|e| {
            bad(
                missing,
                format!(
                    "{}: send a multipart/form-data body with the spec file in a part named `uploadfile`",
                    e.body_text()
                ),
            )
        })?;
    let mut found: Option<UploadFile> = None;
    let mut oversized: Option<String> = None;
    let mut drained: u64 = 0;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Err(bad(missing, format!("malformed multipart body: {e}"))),
        };
        let wanted = found.is_none()
            && oversized.is_none()
            && field.name() == Some("uploadfile")
            && field.file_name().is_some();
        let file_name = field.file_name().unwrap_or_default().to_string();
        let mut field = field;
        let mut bytes = Vec::new();
        loop {
            let chunk = match field.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => return Err(bad(missing, format!("malformed multipart body: {e}"))),
            };
            if wanted && oversized.is_none() {
                if bytes.len() + chunk.len() > limits::MAX_UPLOAD_BYTES {
                    oversized = Some(file_name.clone());
                    bytes = Vec::new();
                } else {
                    bytes.extend_from_slice(&chunk);
                    continue;
                }
            }
            drained += chunk.len() as u64;
            if drained > MAX_DRAIN {
                break;
            }
        }
        if drained > MAX_DRAIN {
            break;
        }
        if wanted && oversized.is_none() {
            found = Some(UploadFile {
                name: file_name,
                bytes,
            });
        }
    }
    if let Some(name) = oversized {
        return Err(bad(
            unreadable,
            format!(
                "file {name:?} exceeds the maximum upload size of {} bytes (32 MiB)",
                limits::MAX_UPLOAD_BYTES
            ),
        ));
    }
    found.ok_or_else(|| {
        bad(
            missing,
            "no file in the multipart part `uploadfile` (it needs a filename, e.g. `filename=\"pipeline.yaml\"`)",
        )
    })
}

/// The file's text by the real server's rules: the filename decides the format. `context` is the
/// route's generic error text.
fn spec_text(file: &UploadFile, context: &str) -> Result<String, ApiError> {
    let name = &file.name;
    if name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json") {
        return String::from_utf8(file.bytes.clone())
            .map_err(|_| bad(context, format!("file {name:?} is not UTF-8 text")));
    }
    let extracted = if archive::is_zip(&file.bytes) {
        archive::from_zip(&file.bytes)
    } else if archive::is_tar_gz(&file.bytes) {
        archive::from_tar_gz(&file.bytes)
    } else {
        return Err(bad(
            context,
            format!(
                "unexpected format of file {name:?}: the filename must end in .yaml, .yml or .json, or the file be a .zip or .tar.gz archive"
            ),
        ));
    };
    let bytes = extracted.map_err(|e| bad(context, format!("file {name:?}: {e}")))?;
    String::from_utf8(bytes).map_err(|_| {
        bad(
            context,
            format!("the pipeline in archive {name:?} is not UTF-8 text"),
        )
    })
}

/// Validate the spec and return the JSON text to store (the server form, protojson numbers).
fn stored_spec(file: &UploadFile, context: &str) -> Result<String, ApiError> {
    let text = spec_text(file, context)?;
    let docs = spec::parse_spec(&text).map_err(|e| {
        let message = match e {
            spec::SpecError::Yaml(_) => format!("{context}: file {:?}: {e}", file.name),
            other => format!("Invalid input error: {other}"),
        };
        ApiError::upload(StatusCode::BAD_REQUEST, message)
    })?;
    let form = kfp_api::protojson::integral_numbers(spec::server_form(&docs));
    serde_json::to_string(&form).map_err(|e| ApiError::internal(e.to_string()))
}

/// [`stored_spec`] on the blocking pool: parsing a large spec must not stall other requests.
async fn parse_off_thread(
    file: UploadFile,
    context: &'static str,
) -> Result<(UploadFile, String), ApiError> {
    tokio::task::spawn_blocking(move || stored_spec(&file, context).map(|spec| (file, spec)))
        .await
        .map_err(|e| {
            ApiError::upload(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{context}: request task failed: {e}"),
            )
        })?
}

/// The `tags` parameter: read from 2.17 on, ignored before.
fn tags(
    state: &AppState,
    q: &HashMap<String, String>,
) -> Result<BTreeMap<String, String>, ApiError> {
    if !state.caps.tags {
        return Ok(BTreeMap::new());
    }
    let Some(text) = q.get("tags").filter(|t| !t.is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let tags: BTreeMap<String, String> = serde_json::from_str(text).map_err(|_| {
        ApiError::upload(
            StatusCode::BAD_REQUEST,
            format!(
                "Failed to parse tags query parameter. Expected JSON object with string keys and values, got {text:?}"
            ),
        )
    })?;
    check_tags(&tags).map_err(ApiError::UploadText)?;
    Ok(tags)
}

fn nonempty<'a>(q: &'a HashMap<String, String>, key: &str) -> Option<&'a String> {
    q.get(key).filter(|v| !v.is_empty())
}

/// `display_name`: read from 2.14 on; before, `name` is the only name.
fn display_name<'a>(state: &AppState, q: &'a HashMap<String, String>) -> Option<&'a String> {
    if state.caps.upload_display_name {
        nonempty(q, "display_name")
    } else {
        None
    }
}

/// `code_source_url`: read by the upload handlers after 2.17.0 only.
fn code_source_url(state: &AppState, q: &HashMap<String, String>) -> String {
    if state.caps.upload_code_source_url {
        q.get("code_source_url").cloned().unwrap_or_default()
    } else {
        String::new()
    }
}

/// Kubernetes store: refuse a version whose custom resource name is taken in the namespace.
fn check_resource_free(
    state: &AppState,
    tx: &rusqlite::Transaction<'_>,
    pipeline: &kfp_api::wire::Pipeline,
    version_name: &str,
) -> Result<(), ApiError> {
    let Some(resource) = emulate::version_resource_name(&state.caps, &pipeline.name, version_name)
    else {
        return Ok(());
    };
    let composite =
        state.caps.version_resource_name == kfp_api::compat::VersionResourceName::Composite;
    if store::version_resource_taken(tx, &pipeline.namespace, &resource, composite)? {
        return Err(emulate::resource_taken(&resource));
    }
    Ok(())
}

fn respond<T: serde::Serialize>(result: Result<T, ApiError>) -> Response {
    match result {
        Ok(body) => Json(body).into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn upload_pipeline(State(state): State<Arc<AppState>>, req: Request) -> Response {
    respond(upload_pipeline_inner(state, req).await)
}

async fn upload_pipeline_inner(
    state: Arc<AppState>,
    req: Request,
) -> Result<kfp_api::wire::Pipeline, ApiError> {
    let q = query_map(req.uri().query().map(str::to_string));
    let file = read_upload(req, READ_FILE, READ_SPEC).await?;
    let (file, spec) = parse_off_thread(file, READ_SPEC).await?;
    let name = nonempty(&q, "name")
        .or_else(|| display_name(&state, &q))
        .cloned()
        .unwrap_or_else(|| file.name.clone());
    if name.len() > limits::MAX_PIPELINE_NAME {
        return Err(ApiError::UploadText(format!(
            "Pipeline.Name length cannot exceed {}",
            limits::MAX_PIPELINE_NAME
        )));
    }
    // Checked before the single-user mode replaces the namespace, as the real handler does.
    if q.get("namespace")
        .is_some_and(|n| n.len() > limits::MAX_NAMESPACE)
    {
        return Err(ApiError::UploadText(format!(
            "Pipeline.Namespace length cannot exceed {}",
            limits::MAX_NAMESPACE
        )));
    }
    let ns = namespace(&state, q.get("namespace"))?;
    let tags = tags(&state, &q)?;
    emulate::check_k8s_name(&state.caps, "pipeline", &name).map_err(emulate::bad_name)?;
    let pipeline = NewPipeline {
        display_name: display_name(&state, &q)
            .cloned()
            .unwrap_or_else(|| name.clone()),
        name,
        description: q.get("description").cloned().unwrap_or_default(),
        namespace: ns,
        tags,
    };
    // The first version carries the pipeline's own name, display name and description (the
    // tags are the pipeline's only).
    let version = NewVersion {
        name: pipeline.name.clone(),
        display_name: pipeline.display_name.clone(),
        description: pipeline.description.clone(),
        code_source_url: code_source_url(&state, &q),
        spec,
        tags: BTreeMap::new(),
    };
    let st = state.clone();
    blocking(&state, move |s| {
        s.write(|tx| {
            let p = store::insert_pipeline(tx, &pipeline)?;
            check_resource_free(&st, tx, &p, &version.name)?;
            store::insert_version(tx, &p.pipeline_id, &version)?;
            Ok(emulate::pipeline(&st.caps, p))
        })
    })
    .await
    .map_err(|e| e.into_upload(CREATE_BOTH))
}

pub async fn upload_version(State(state): State<Arc<AppState>>, req: Request) -> Response {
    respond(upload_version_inner(state, req).await)
}

async fn upload_version_inner(
    state: Arc<AppState>,
    req: Request,
) -> Result<kfp_api::wire::PipelineVersion, ApiError> {
    let q = query_map(req.uri().query().map(str::to_string));
    let file = read_upload(req, CREATE_VERSION, CREATE_VERSION).await?;
    let (file, spec) = parse_off_thread(file, CREATE_VERSION).await?;
    let pipeline_id = nonempty(&q, "pipelineid").cloned().ok_or_else(|| {
        bad(
            CREATE_VERSION,
            "the query parameter `pipelineid` is required: the id of the pipeline to add a version to",
        )
    })?;
    let name = nonempty(&q, "name")
        .or_else(|| display_name(&state, &q))
        .cloned()
        .unwrap_or_else(|| file.name.clone());
    if name.len() > limits::MAX_VERSION_NAME {
        return Err(ApiError::UploadText(format!(
            "PipelineVersion.Name length cannot exceed {}",
            limits::MAX_VERSION_NAME
        )));
    }
    emulate::check_k8s_name(&state.caps, "pipeline version", &name).map_err(emulate::bad_name)?;
    let tags = tags(&state, &q)?;
    let version = NewVersion {
        display_name: display_name(&state, &q)
            .cloned()
            .unwrap_or_else(|| name.clone()),
        name,
        description: q.get("description").cloned().unwrap_or_default(),
        code_source_url: code_source_url(&state, &q),
        spec,
        tags,
    };
    let st = state.clone();
    blocking(&state, move |s| {
        s.write(|tx| {
            let Some(pipeline) = store::get_pipeline(tx, &pipeline_id)? else {
                // The real server answers 400 here, not 404.
                return Err(bad(
                    CREATE_VERSION,
                    format!("pipeline {pipeline_id} not found: check `pipelineid`"),
                ));
            };
            // The same name in the same pipeline is the store's own 409, below.
            if store::get_version_by_name(tx, &pipeline_id, &version.name)?.is_none() {
                check_resource_free(&st, tx, &pipeline, &version.name)?;
            }
            store::insert_version(tx, &pipeline_id, &version).map(|v| emulate::version(&st.caps, v))
        })
    })
    .await
    .map_err(|e| e.into_upload(CREATE_VERSION))
}
