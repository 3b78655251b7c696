//! A small read-only web page: every pipeline with its versions, newest first, each version's
//! stored spec one click away. Plain HTML, no scripts.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use kfp_api::wire::{Pipeline, PipelineVersion};

use crate::AppState;
use crate::api::blocking;
use crate::error::ApiError;
use crate::list::{self, Kind};
use crate::store;

/// Versions shown per pipeline on the index page.
const VERSIONS_SHOWN: i64 = 50;
const PIPELINES_SHOWN: &str = "200";

pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}\
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}\
td,th{border-bottom:1px solid #ddd;padding:.25rem .5rem;text-align:left;font-size:.9rem}\
code,pre{font-family:ui-monospace,monospace}pre{background:#f6f6f6;padding:1rem;overflow:auto}\
.muted{color:#777}h2{margin-bottom:0}";

/// The page, with headers that keep a stored name from ever running as code (no scripts, no
/// framing, no sniffing) and the address (it may have carried `?token=`) out of referrers.
fn page(title: &str, body: &str) -> Response {
    let mut resp = Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        esc(title)
    ))
    .into_response();
    let headers = resp.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, axum::http::HeaderValue::from_static(value));
    }
    resp
}

pub async fn index(State(state): State<Arc<AppState>>) -> Response {
    let db = state.store.path().display().to_string();
    let result = blocking(&state, |s| {
        s.read(|tx| {
            let params = list::parse(
                Kind::Pipelines,
                "",
                Some(PIPELINES_SHOWN),
                None,
                Some("created_at desc"),
                None,
            )?;
            let page = store::list_pipelines(tx, None, &params)?;
            let mut out = Vec::new();
            for p in page.items {
                let vparams = list::parse(
                    Kind::Versions,
                    &p.pipeline_id,
                    Some(&VERSIONS_SHOWN.to_string()),
                    None,
                    Some("created_at desc"),
                    None,
                )?;
                let versions = store::list_versions(tx, &p.pipeline_id, &vparams)?;
                out.push((p, versions.items, versions.total));
            }
            Ok((out, page.total))
        })
    })
    .await;
    let (pipelines, total) = match result {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>Pipelines</h1><p class=\"muted\">kfp-ci serve, a local stand-in for the Kubeflow Pipelines API (v2beta1), database <code>{}</code>. {} pipeline(s), newest first. Read-only.</p>",
        esc(&db),
        total
    );
    if pipelines.is_empty() {
        body.push_str("<p>No pipelines yet. Deploy some with <code>kfp-ci deploy</code>.</p>");
    }
    for (p, versions, vtotal) in &pipelines {
        pipeline_section(&mut body, p, versions, *vtotal);
    }
    body.push_str(&crate::runs::ui::sections(&state).await);
    page("kfp-ci serve: pipelines", &body)
}

fn pipeline_section(body: &mut String, p: &Pipeline, versions: &[PipelineVersion], total: i64) {
    let _ = write!(
        body,
        "<h2 id=\"{id}\">{display}</h2><p class=\"muted\">name <code>{name}</code>{ns} · id <code>{id}</code> · created {created}</p>",
        id = esc(&p.pipeline_id),
        display = esc(&p.display_name),
        name = esc(&p.name),
        ns = if p.namespace.is_empty() {
            String::new()
        } else {
            format!(" · namespace <code>{}</code>", esc(&p.namespace))
        },
        created = esc(p.created_at.as_deref().unwrap_or_default()),
    );
    if !p.description.is_empty() {
        let _ = write!(body, "<p>{}</p>", esc(&p.description));
    }
    body.push_str("<table><tr><th>version</th><th>display name</th><th>created</th><th>description</th><th>tags</th><th></th></tr>");
    for v in versions {
        let tags: Vec<String> = v
            .tags
            .iter()
            .map(|(k, v)| format!("<code>{}={}</code>", esc(k), esc(v)))
            .collect();
        let _ = write!(
            body,
            "<tr><td><code>{name}</code></td><td>{display}</td><td>{created}</td><td>{desc}</td><td>{tags}</td><td><a href=\"/ui/pipelines/{pid}/versions/{vid}\">spec</a></td></tr>",
            name = esc(&v.name),
            display = esc(&v.display_name),
            created = esc(v.created_at.as_deref().unwrap_or_default()),
            desc = esc(&v.description),
            tags = tags.join(" "),
            pid = esc(&p.pipeline_id),
            vid = esc(&v.pipeline_version_id),
        );
    }
    body.push_str("</table>");
    if total > versions.len() as i64 {
        let _ = write!(
            body,
            "<p class=\"muted\">{} older version(s) not shown.</p>",
            total - versions.len() as i64
        );
    }
}

pub async fn version_page(
    State(state): State<Arc<AppState>>,
    ids: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let Ok(Path((pid, vid))) = ids else {
        return (StatusCode::BAD_REQUEST, "bad path").into_response();
    };
    let result = blocking(&state, move |s| {
        s.read(|tx| {
            let p = store::get_pipeline(tx, &pid)?;
            let v = store::get_version(tx, &pid, &vid)?;
            match (p, v) {
                (Some(p), Some(v)) => Ok((p, v)),
                _ => Err(ApiError::not_found(format!(
                    "pipeline version {vid} of pipeline {pid} not found"
                ))),
            }
        })
    })
    .await;
    let (p, v) = match result {
        Ok(r) => r,
        Err(e) => {
            return (StatusCode::NOT_FOUND, page("not found", &esc(e.message()))).into_response();
        }
    };
    let spec = v
        .pipeline_spec
        .as_ref()
        .and_then(|s| serde_json::to_string_pretty(s).ok())
        .unwrap_or_default();
    let body = format!(
        "<p><a href=\"/#{pid}\">← pipelines</a></p><h1>{display} <span class=\"muted\">/ {vname}</span></h1>\
         <p class=\"muted\">pipeline <code>{pname}</code> · version id <code>{vid}</code> · created {created} · spec hash <code>{hash}</code></p>\
         <p>The stored spec, as the API returns it (<code>pipeline_spec</code>):</p><pre>{spec}</pre>",
        pid = esc(&p.pipeline_id),
        display = esc(&p.display_name),
        vname = esc(&v.name),
        pname = esc(&p.name),
        vid = esc(&v.pipeline_version_id),
        created = esc(v.created_at.as_deref().unwrap_or_default()),
        hash = esc(&v
            .pipeline_spec
            .as_ref()
            .map(kfp_api::spec::spec_hash)
            .unwrap_or_default()),
        spec = esc(&spec),
    );
    let mut resp = page(&format!("{} / {}", p.name, v.name), &body);
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    resp
}
