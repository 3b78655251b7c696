//! A stand-in for the forges' comment APIs on 127.0.0.1:0, in their three shapes: GitHub
//! (`/repos/{owner}/{repo}/issues/{n}/comments`, `PATCH …/issues/comments/{id}`), Gitea/Forgejo
//! (the same under `/api/v1`, `Authorization: token …`), GitLab
//! (`/api/v4/projects/{id}/merge_requests/{iid}/notes`, `PUT …/notes/{id}`, `PRIVATE-TOKEN`).
//! Comments live in memory per thread; a wrong or missing token is a 401.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use serde_json::{Value, json};

use crate::common::loopback::Loopback;

pub const TOKEN: &str = "forge-token-5b1d";

#[derive(Debug, Clone)]
pub struct Comment {
    pub id: u64,
    /// `github:o/r#12`, `gitea:o/r#12`, `gitlab:42!7`.
    pub thread: String,
    pub body: String,
}

#[derive(Default)]
struct Inner {
    comments: Vec<Comment>,
    next_id: u64,
    /// (method, path) of every request.
    log: Vec<(String, String)>,
}

type Shared = Arc<Mutex<Inner>>;

pub struct ForgeServer {
    pub url: String,
    inner: Shared,
    _server: Loopback,
}

impl ForgeServer {
    pub fn start() -> ForgeServer {
        let inner: Shared = Arc::new(Mutex::new(Inner {
            next_id: 1000,
            ..Inner::default()
        }));
        let app = Router::new()
            .route(
                "/repos/{o}/{r}/issues/{n}/comments",
                get(github_list).post(github_create),
            )
            .route("/repos/{o}/{r}/issues/comments/{id}", patch(github_update))
            .route(
                "/api/v1/repos/{o}/{r}/issues/{n}/comments",
                get(gitea_list).post(gitea_create),
            )
            .route(
                "/api/v1/repos/{o}/{r}/issues/comments/{id}",
                patch(gitea_update),
            )
            .route(
                "/api/v4/projects/{p}/merge_requests/{iid}/notes",
                get(gitlab_list).post(gitlab_create),
            )
            .route(
                "/api/v4/projects/{p}/merge_requests/{iid}/notes/{id}",
                axum::routing::put(gitlab_update),
            )
            .fallback(|| async { (StatusCode::NOT_FOUND, "not found") })
            .with_state(inner.clone());
        let server = Loopback::serve("forge", app);
        ForgeServer {
            url: server.url.clone(),
            inner,
            _server: server,
        }
    }

    /// A comment someone else wrote.
    pub fn seed(&self, thread: &str, body: &str) {
        let mut inner = self.inner.lock().expect("lock");
        inner.next_id += 1;
        let id = inner.next_id;
        inner.comments.push(Comment {
            id,
            thread: thread.into(),
            body: body.into(),
        });
    }

    pub fn comments(&self, thread: &str) -> Vec<Comment> {
        let inner = self.inner.lock().expect("lock");
        inner
            .comments
            .iter()
            .filter(|c| c.thread == thread)
            .cloned()
            .collect()
    }

    pub fn requests(&self) -> Vec<(String, String)> {
        self.inner.lock().expect("lock").log.clone()
    }
}

fn authorised(headers: &HeaderMap, name: &str, value: &str) -> bool {
    headers.get(name).and_then(|v| v.to_str().ok()) == Some(value)
}

fn unauthorised() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"message": "Bad credentials"})),
    )
        .into_response()
}

fn log(state: &Shared, method: &str, path: String) {
    state.lock().expect("lock").log.push((method.into(), path));
}

fn list(state: &Shared, thread: &str, page: u64) -> Response {
    // One comment per page: kfp-ci must page through.
    let inner = state.lock().expect("lock");
    let items: Vec<Value> = inner
        .comments
        .iter()
        .filter(|c| c.thread == thread)
        .skip(page.saturating_sub(1) as usize)
        .take(1)
        .map(|c| json!({"id": c.id, "body": c.body}))
        .collect();
    axum::Json(Value::Array(items)).into_response()
}

fn create(state: &Shared, thread: &str, body: &Value) -> Response {
    let Some(text) = body.get("body").and_then(Value::as_str) else {
        return (StatusCode::UNPROCESSABLE_ENTITY, "body missing").into_response();
    };
    let mut inner = state.lock().expect("lock");
    inner.next_id += 1;
    let id = inner.next_id;
    inner.comments.push(Comment {
        id,
        thread: thread.into(),
        body: text.into(),
    });
    (
        StatusCode::CREATED,
        axum::Json(json!({"id": id, "body": text})),
    )
        .into_response()
}

fn update(state: &Shared, thread_prefix: &str, id: u64, body: &Value) -> Response {
    let Some(text) = body.get("body").and_then(Value::as_str) else {
        return (StatusCode::UNPROCESSABLE_ENTITY, "body missing").into_response();
    };
    let mut inner = state.lock().expect("lock");
    match inner
        .comments
        .iter_mut()
        .find(|c| c.id == id && c.thread.starts_with(thread_prefix))
    {
        Some(c) => {
            c.body = text.into();
            axum::Json(json!({"id": id, "body": text})).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such comment").into_response(),
    }
}

fn page(q: &std::collections::HashMap<String, String>) -> u64 {
    q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1)
}

type Q = Query<std::collections::HashMap<String, String>>;

async fn github_list(
    State(s): State<Shared>,
    h: HeaderMap,
    Path((o, r, n)): Path<(String, String, u64)>,
    q: Q,
) -> Response {
    log(&s, "GET", format!("/repos/{o}/{r}/issues/{n}/comments"));
    if !authorised(&h, "authorization", &format!("Bearer {TOKEN}")) {
        return unauthorised();
    }
    list(&s, &format!("github:{o}/{r}#{n}"), page(&q.0))
}

async fn github_create(
    State(s): State<Shared>,
    h: HeaderMap,
    Path((o, r, n)): Path<(String, String, u64)>,
    axum::Json(b): axum::Json<Value>,
) -> Response {
    log(&s, "POST", format!("/repos/{o}/{r}/issues/{n}/comments"));
    if !authorised(&h, "authorization", &format!("Bearer {TOKEN}")) {
        return unauthorised();
    }
    create(&s, &format!("github:{o}/{r}#{n}"), &b)
}

async fn github_update(
    State(s): State<Shared>,
    h: HeaderMap,
    Path((o, r, id)): Path<(String, String, u64)>,
    axum::Json(b): axum::Json<Value>,
) -> Response {
    log(&s, "PATCH", format!("/repos/{o}/{r}/issues/comments/{id}"));
    if !authorised(&h, "authorization", &format!("Bearer {TOKEN}")) {
        return unauthorised();
    }
    update(&s, &format!("github:{o}/{r}#"), id, &b)
}

async fn gitea_list(
    State(s): State<Shared>,
    h: HeaderMap,
    Path((o, r, n)): Path<(String, String, u64)>,
    q: Q,
) -> Response {
    log(
        &s,
        "GET",
        format!("/api/v1/repos/{o}/{r}/issues/{n}/comments"),
    );
    if !authorised(&h, "authorization", &format!("token {TOKEN}")) {
        return unauthorised();
    }
    list(&s, &format!("gitea:{o}/{r}#{n}"), page(&q.0))
}

async fn gitea_create(
    State(s): State<Shared>,
    h: HeaderMap,
    Path((o, r, n)): Path<(String, String, u64)>,
    axum::Json(b): axum::Json<Value>,
) -> Response {
    log(
        &s,
        "POST",
        format!("/api/v1/repos/{o}/{r}/issues/{n}/comments"),
    );
    if !authorised(&h, "authorization", &format!("token {TOKEN}")) {
        return unauthorised();
    }
    create(&s, &format!("gitea:{o}/{r}#{n}"), &b)
}

async fn gitea_update(
    State(s): State<Shared>,
    h: HeaderMap,
    Path((o, r, id)): Path<(String, String, u64)>,
    axum::Json(b): axum::Json<Value>,
) -> Response {
    log(
        &s,
        "PATCH",
        format!("/api/v1/repos/{o}/{r}/issues/comments/{id}"),
    );
    if !authorised(&h, "authorization", &format!("token {TOKEN}")) {
        return unauthorised();
    }
    update(&s, &format!("gitea:{o}/{r}#"), id, &b)
}

async fn gitlab_list(
    State(s): State<Shared>,
    h: HeaderMap,
    Path((p, iid)): Path<(String, u64)>,
    q: Q,
) -> Response {
    log(
        &s,
        "GET",
        format!("/api/v4/projects/{p}/merge_requests/{iid}/notes"),
    );
    if !authorised(&h, "private-token", TOKEN) {
        return unauthorised();
    }
    list(&s, &format!("gitlab:{p}!{iid}"), page(&q.0))
}

async fn gitlab_create(
    State(s): State<Shared>,
    h: HeaderMap,
    Path((p, iid)): Path<(String, u64)>,
    axum::Json(b): axum::Json<Value>,
) -> Response {
    log(
        &s,
        "POST",
        format!("/api/v4/projects/{p}/merge_requests/{iid}/notes"),
    );
    if !authorised(&h, "private-token", TOKEN) {
        return unauthorised();
    }
    create(&s, &format!("gitlab:{p}!{iid}"), &b)
}

async fn gitlab_update(
    State(s): State<Shared>,
    h: HeaderMap,
    Path((p, iid, id)): Path<(String, u64, u64)>,
    axum::Json(b): axum::Json<Value>,
) -> Response {
    log(
        &s,
        "PUT",
        format!("/api/v4/projects/{p}/merge_requests/{iid}/notes/{id}"),
    );
    if !authorised(&h, "private-token", TOKEN) {
        return unauthorised();
    }
    update(&s, &format!("gitlab:{p}!{iid}"), id, &b)
}
