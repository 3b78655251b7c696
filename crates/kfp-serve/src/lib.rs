//! `kfp-ci serve`: a local stand-in for the Kubeflow Pipelines REST API (v2beta1 pipeline
//! service and healthz) on an embedded SQLite store.
//!
//! It answers like KFP 2.17.0 wherever a client can tell (routes, status codes, both error body
//! shapes, omitted empty fields, paging, filters), so the same client code works against it and
//! against a cluster; [`ServeOptions::server_version`] and [`ServeOptions::pipeline_store`] make
//! it answer like an older release or the Kubernetes store instead (see `emulate`). [`spawn`] runs it in the background of the current tokio runtime (what
//! `kfp-ci deploy` does when no endpoint is configured); [`serve`] runs it until Ctrl-C/SIGTERM.
//!
//! The library prints nothing: it logs through `tracing`.

mod api;
mod archive;
pub mod clock;
mod emulate;
mod error;
mod list;
mod runs;
mod store;
mod ui;
mod upload;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use base64::Engine as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use kfp_api::routes::Route;

pub use error::ApiError;
pub use kfp_api::compat::{Release, Store};
pub use runs::RunOutcome;

/// The KFP server release whose behaviour this server follows (healthz `tag_name`).
pub const EMULATED_KFP_VERSION: &str = "2.17.0";

/// The default database, relative to the repository root.
pub const DEFAULT_DB: &str = ".kfp-ci/registry.db";

/// How long a simulated run takes unless `--run-duration-ms` says otherwise.
pub const DEFAULT_RUN_DURATION_MS: u64 = 3000;

/// Largest JSON request body the gateway routes read.
pub(crate) const MAX_JSON_BODY: usize = 4 << 20;

/// Oversized bodies are read and dropped up to this many bytes, so the client gets the 400 on a
/// healthy connection; beyond it the connection is closed.
pub(crate) const MAX_DRAIN: u64 = 256 << 20;

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// `host:port`; port 0 picks a free port. Default `127.0.0.1:8888`.
    pub addr: String,
    /// The SQLite database file (created with its directory if missing).
    pub db: PathBuf,
    /// Require `Authorization: Bearer <token>` on every request.
    pub token: Option<String>,
    /// Allow a non-loopback address without a token.
    pub insecure_no_auth: bool,
    /// Keep namespaces (multi-user KFP) instead of replacing them by `""`.
    pub multi_user: bool,
    /// Testing aid: delay every API response by this many milliseconds.
    pub latency_ms: u64,
    /// Testing aid: answer this fraction (0.0–1.0) of API requests with 503, before any effect.
    pub fail_rate: f64,
    /// Testing aid: seed of the `fail_rate` random generator (random when `None`).
    pub seed: Option<u64>,
    /// Testing aid: how every simulated run ends.
    pub run_outcome: RunOutcome,
    /// Testing aid: how long a simulated run takes from creation to its outcome.
    pub run_duration_ms: u64,
    /// The KFP release to answer like (`--server-version`): upload parameters, objects, routes,
    /// healthz and Kubernetes-store naming follow [`kfp_api::compat::Capabilities`].
    pub server_version: Release,
    /// The pipeline store to emulate (`--pipeline-store`; Kubernetes from 2.14).
    pub pipeline_store: Store,
    /// Testing aid: mount `POST /_test/clock/advance?seconds=N` (see [`clock`]).
    pub test_clock: bool,
}

impl ServeOptions {
    /// Loopback on port 8888, no auth, no testing aids.
    pub fn new(db: impl Into<PathBuf>) -> Self {
        ServeOptions {
            addr: "127.0.0.1:8888".into(),
            db: db.into(),
            token: None,
            insecure_no_auth: false,
            multi_user: false,
            latency_ms: 0,
            fail_rate: 0.0,
            seed: None,
            run_outcome: RunOutcome::Succeeded,
            run_duration_ms: DEFAULT_RUN_DURATION_MS,
            server_version: Release::V2_17,
            pipeline_store: Store::Database,
            test_clock: false,
        }
    }

    /// The same options on `127.0.0.1:0` (an ephemeral port): for in-process use and tests.
    pub fn ephemeral(db: impl Into<PathBuf>) -> Self {
        ServeOptions {
            addr: "127.0.0.1:0".into(),
            ..ServeOptions::new(db)
        }
    }
}

/// Shared by every handler.
pub(crate) struct AppState {
    pub store: store::Store,
    pub multi_user: bool,
    /// What the emulated release does (never the conservative set: always a known release).
    pub caps: kfp_api::compat::Capabilities,
    token: Option<String>,
    /// With `--token`: the value of the web page's session cookie, set once a browser has
    /// presented the token as `/?token=…` (random per server start; never the token itself).
    ui_session: String,
    /// Its name: [`UI_COOKIE`] and the port, as browsers share cookies across the ports of a host.
    ui_cookie: String,
    latency: Duration,
    fail_rate: f64,
    rng: Mutex<StdRng>,
    pub run_outcome: RunOutcome,
    pub run_duration: Duration,
    test_clock: bool,
}

/// A server running in the background; dropping it asks it to stop.
pub struct RunningServer {
    addr: SocketAddr,
    db: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningServer {
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn db(&self) -> &Path {
        &self.db
    }

    /// Stop accepting connections, finish the requests in flight, and wait for that.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .context("the server task failed")?
                .context("the server stopped with an error")?;
        }
        Ok(())
    }

    /// Wait until the server stops by itself (it only does on an I/O error).
    pub async fn wait(mut self) -> anyhow::Result<()> {
        if let Some(task) = self.task.take() {
            task.await
                .context("the server task failed")?
                .context("the server stopped with an error")?;
        }
        Ok(())
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Open the store, bind `opts.addr` and serve in the background of the current tokio runtime.
pub async fn spawn(opts: ServeOptions) -> anyhow::Result<RunningServer> {
    if !(0.0..=1.0).contains(&opts.fail_rate) {
        anyhow::bail!(
            "--fail-rate must be between 0.0 and 1.0, got {}",
            opts.fail_rate
        );
    }
    emulate::check(opts.server_version, opts.pipeline_store)?;
    // Check before binding: a non-loopback address is never opened without authentication.
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host(&opts.addr)
        .await
        .with_context(|| {
            format!(
                "invalid address {:?}: expected HOST:PORT, e.g. 127.0.0.1:8888",
                opts.addr
            )
        })?
        .collect();
    let has_token = opts.token.as_deref().is_some_and(|t| !t.is_empty());
    if let Some(open) = resolved.iter().find(|a| !a.ip().is_loopback())
        && !has_token
        && !opts.insecure_no_auth
    {
        anyhow::bail!(
            "refusing to serve on non-loopback address {open} without authentication: pass --token (or set KFP_CI_SERVE_TOKEN), or --insecure-no-auth if everyone who can reach {open} may change your pipelines"
        );
    }
    let listener = tokio::net::TcpListener::bind(resolved.as_slice())
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}\nhint: is another server using it? Pick another port with --addr (port 0 picks a free one)",
                opts.addr
            )
        })?;
    let addr = listener.local_addr()?;
    let db = opts.db.clone();
    let store = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || store::Store::open(&db))
            .await
            .context("opening the database failed")??
    };
    let rng = match opts.seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_os_rng(),
    };
    let state = Arc::new(AppState {
        store,
        multi_user: opts.multi_user,
        caps: kfp_api::compat::Capabilities::of(
            opts.server_version,
            opts.pipeline_store,
            opts.multi_user,
        ),
        token: opts.token.filter(|t| !t.is_empty()),
        ui_session: {
            let mut bytes = [0u8; 32];
            rand::rng().fill(&mut bytes);
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        },
        ui_cookie: format!("{UI_COOKIE}_{}", addr.port()),
        latency: Duration::from_millis(opts.latency_ms),
        fail_rate: opts.fail_rate,
        rng: Mutex::new(rng),
        run_outcome: opts.run_outcome,
        run_duration: Duration::from_millis(opts.run_duration_ms),
        test_clock: opts.test_clock,
    });
    let app = router(state);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    tracing::debug!(%addr, db = %db.display(), "kfp-ci serve listening");
    Ok(RunningServer {
        addr,
        db,
        shutdown: Some(tx),
        task: Some(task),
    })
}

/// Serve until Ctrl-C or SIGTERM, then shut down gracefully.
pub async fn serve(opts: ServeOptions) -> anyhow::Result<()> {
    let server = spawn(opts).await?;
    shutdown_signal().await;
    server.shutdown().await
}

/// Resolves on Ctrl-C or (on Unix) SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

fn router(state: Arc<AppState>) -> Router {
    // One spelling of every path, shared with the client (kfp_api::routes).
    let path = |route: Route<'_>| route.template();
    // PATCH came with 2.17; before, those paths answer other methods only.
    let patch = state.caps.patch;
    let pipeline_routes = get(api::get_pipeline).delete(api::delete_pipeline);
    let version_routes = get(api::get_version).delete(api::delete_version);
    let (pipeline_routes, version_routes) = if patch {
        (
            pipeline_routes.patch(api::patch_pipeline),
            version_routes.patch(api::patch_version),
        )
    } else {
        (pipeline_routes, version_routes)
    };
    let uploads = Router::new()
        .route(&path(Route::Upload), any(upload::upload_pipeline))
        .route(&path(Route::UploadVersion), any(upload::upload_version))
        // Uploads enforce their own 32 MiB limit on the file (a 400 like the real server).
        .layer(DefaultBodyLimit::disable());
    let gateway = Router::new()
        // Bodies are read by `api::body_bytes`, with its own limit and a 400.
        .route(&path(Route::Healthz), any(api::healthz))
        .route(
            &path(Route::Pipelines),
            get(api::list_pipelines).post(api::create_pipeline),
        )
        .route(
            &path(Route::PipelineCreate),
            post(api::create_pipeline_and_version),
        )
        .route(
            &path(Route::PipelineByName("{name}")),
            get(api::get_pipeline_by_name),
        )
        .route(&path(Route::Pipeline("{pipeline_id}")), pipeline_routes)
        .route(
            &path(Route::Versions("{pipeline_id}")),
            get(api::list_versions).post(api::create_version),
        )
        .route(
            &path(Route::Version("{pipeline_id}", "{pipeline_version_id}")),
            version_routes,
        );
    let mut testing = Router::new();
    if state.test_clock {
        testing = testing.route("/_test/clock/advance", post(clock::advance));
        testing = testing.route("/_test/clock/freeze", post(clock::freeze));
    }
    Router::new()
        .merge(uploads)
        .merge(gateway)
        .merge(runs::routes())
        .merge(testing)
        .route("/", get(ui::index))
        .route(
            "/ui/pipelines/{pipeline_id}/versions/{pipeline_version_id}",
            get(ui::version_page),
        )
        .fallback(not_found)
        .layer(middleware::from_fn(method_not_allowed))
        .layer(middleware::from_fn_with_state(state.clone(), testing_aids))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

async fn not_found(req: Request) -> Response {
    if req.uri().path().starts_with("/apis/") {
        error::rpc_response(StatusCode::NOT_FOUND, 5, "Not Found")
    } else {
        text_plain(StatusCode::NOT_FOUND, "404 page not found\n")
    }
}

/// 405 with grpc-gateway's body under `/apis/`, keeping axum's `Allow` header. The upload routes
/// and healthz take any standard method (as the real server's hand-written handlers); TRACE and
/// non-standard methods are refused everywhere.
async fn method_not_allowed(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/apis/");
    let any_method_route =
        is_upload(req.uri().path()) || req.uri().path() == Route::Healthz.template();
    let standard = matches!(
        req.method().as_str(),
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS"
    );
    if req.method() == axum::http::Method::TRACE || (any_method_route && !standard) {
        let mut resp = if api {
            error::rpc_response(StatusCode::METHOD_NOT_ALLOWED, 12, "Method Not Allowed")
        } else {
            text_plain(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed\n")
        };
        if any_method_route {
            resp.headers_mut().insert(
                header::ALLOW,
                axum::http::HeaderValue::from_static("GET,HEAD,POST,PUT,PATCH,DELETE,OPTIONS"),
            );
        }
        return resp;
    }
    let resp = next.run(req).await;
    if resp.status() != StatusCode::METHOD_NOT_ALLOWED || !api {
        return resp;
    }
    let (parts, _) = resp.into_parts();
    let mut out = error::rpc_response(StatusCode::METHOD_NOT_ALLOWED, 12, "Method Not Allowed");
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}

fn text_plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let start = std::time::Instant::now();
    let resp = next.run(req).await;
    tracing::debug!(%method, %path, status = resp.status().as_u16(), elapsed_ms = start.elapsed().as_millis() as u64, "request");
    resp
}

fn is_upload(path: &str) -> bool {
    path.ends_with("/pipelines/upload") || path.ends_with("/pipelines/upload_version")
}

/// The web page's session cookie, followed by `_<port>` (see [`AppState::ui_session`]).
pub const UI_COOKIE: &str = "kfp_ci_serve_session";

/// `--token`: every request needs `Authorization: Bearer <token>`. A browser cannot send that
/// header, so the read-only web page (`GET /`, `GET /ui/…`) also accepts `?token=TOKEN` once: the
/// answer is a redirect to the same page without the token, setting an HttpOnly, SameSite=Strict
/// session cookie that opens the web page (never the API) until the server stops.
async fn auth(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(expected) = &state.token else {
        return next.run(req).await;
    };
    let path = req.uri().path();
    let page = (path == "/" || path.starts_with("/ui/"))
        && matches!(
            *req.method(),
            axum::http::Method::GET | axum::http::Method::HEAD
        );
    if page && !req.headers().contains_key(header::AUTHORIZATION) {
        return page_auth(&state, expected, req, next).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    if given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes())) {
        return next.run(req).await;
    }
    let message = if given.is_some() {
        "Unauthenticated: the bearer token is not the one this kfp-ci serve was started with (--token)"
    } else {
        "Unauthenticated: this kfp-ci serve requires `Authorization: Bearer <token>` (the value of its --token)"
    };
    let mut resp = error::rpc_response(StatusCode::UNAUTHORIZED, 16, message);
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Bearer"),
    );
    resp
}

async fn page_auth(state: &AppState, expected: &str, req: Request, next: Next) -> Response {
    let has_session = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .any(|(k, v)| {
            k == state.ui_cookie && constant_time_eq(v.as_bytes(), state.ui_session.as_bytes())
        });
    if has_session {
        return next.run(req).await;
    }
    let given = req.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
    });
    let Some(given) = given else {
        return page_unauthorized(
            "This kfp-ci serve was started with --token. Open this page once as <code>/?token=TOKEN</code> \
             (the value of its --token or KFP_CI_SERVE_TOKEN): a session cookie then keeps the page open \
             until the server stops. API clients send <code>Authorization: Bearer TOKEN</code>.",
        );
    };
    if !constant_time_eq(given.trim().as_bytes(), expected.as_bytes()) {
        return page_unauthorized(
            "The token in <code>?token=</code> is not the one this kfp-ci serve was started with \
             (--token or KFP_CI_SERVE_TOKEN).",
        );
    }
    // Drop the token from the address bar (and from history) at once.
    let location = req.uri().path().to_string();
    let cookie = format!(
        "{}={}; Path=/; HttpOnly; SameSite=Strict",
        state.ui_cookie, state.ui_session
    );
    let mut resp = StatusCode::SEE_OTHER.into_response();
    for (name, value) in [(header::LOCATION, location), (header::SET_COOKIE, cookie)] {
        if let Ok(value) = axum::http::HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, value);
        }
    }
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    resp
}

fn page_unauthorized(why: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>kfp-ci serve: token required</title></head>\
         <body style=\"font-family:system-ui,sans-serif;margin:2rem\"><h1>Token required</h1><p>{why}</p></body></html>"
    );
    let mut resp = (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Bearer"),
    );
    resp
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `--latency-ms` and `--fail-rate`: applied to API requests (`/apis/…`) before any effect.
async fn testing_aids(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/apis/") {
        return next.run(req).await;
    }
    if !state.latency.is_zero() {
        tokio::time::sleep(state.latency).await;
    }
    if state.fail_rate > 0.0 {
        let fail = {
            let mut rng = state.rng.lock().unwrap_or_else(|e| e.into_inner());
            rng.random_bool(state.fail_rate)
        };
        if fail {
            let message = "injected failure (kfp-ci serve --fail-rate): nothing was changed, retry";
            return if is_upload(req.uri().path()) {
                ApiError::upload(StatusCode::SERVICE_UNAVAILABLE, message).into_response()
            } else {
                error::rpc_response(StatusCode::SERVICE_UNAVAILABLE, 14, message)
            };
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// What `kfp-ci deploy` does: spawn in-process on a file, talk HTTP, shut down, reopen.
    #[tokio::test]
    async fn spawn_serves_http_and_shuts_down_gracefully() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join(".kfp-ci/registry.db");
        let server = spawn(ServeOptions::ephemeral(&db)).await.expect("spawn");
        let url = server.url();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        let c = reqwest::Client::new();
        let created: Value = c
            .post(format!("{url}/apis/v2beta1/pipelines"))
            .json(&serde_json::json!({"name": "in-process"}))
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("json");
        assert_eq!(created["display_name"], "in-process");
        server.shutdown().await.expect("shutdown");
        assert!(
            c.get(format!("{url}/apis/v2beta1/healthz"))
                .send()
                .await
                .is_err()
        );
        assert_eq!(
            fs_err::read_to_string(dir.path().join(".kfp-ci/.gitignore")).expect("gitignore"),
            "*\n"
        );

        let again = spawn(ServeOptions::ephemeral(&db)).await.expect("respawn");
        let list: Value = c
            .get(format!("{}/apis/v2beta1/pipelines", again.url()))
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        assert_eq!(list["total_size"], 1);
        drop(again);
    }

    /// Every path of `kfp_api::routes` (every one the client calls) reaches a handler here: the
    /// router's own 404 (`Not Found`) answers only paths it does not have.
    #[tokio::test]
    async fn every_shared_route_is_served() {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = spawn(ServeOptions::ephemeral(dir.path().join("r.db")))
            .await
            .expect("spawn");
        let c = reqwest::Client::new();
        let fallback = |status: u16, body: &Value| status == 404 && body["message"] == "Not Found";
        let unknown = format!("{}{}/nothing-here", server.url(), kfp_api::routes::PREFIX);
        let r = c.get(&unknown).send().await.expect("get");
        let status = r.status().as_u16();
        let body: Value = r.json().await.expect("json");
        assert!(fallback(status, &body), "{status} {body}");
        for route in Route::patterns() {
            // Parameters filled with an id that does not exist: a handler's 404, not the router's.
            // Each with a method it is served with: `pipelines/create` would otherwise be read as
            // the pipeline `create` (GET), and a missing route would pass unseen.
            let path = route.template().replace(['{', '}'], "");
            let method = match route {
                Route::PipelineCreate | Route::Upload | Route::UploadVersion => {
                    reqwest::Method::POST
                }
                _ => reqwest::Method::GET,
            };
            let r = c
                .request(method.clone(), format!("{}{path}", server.url()))
                .send()
                .await
                .expect("request");
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            assert!(
                !fallback(status, &body) && status != 405,
                "{method} {path}: {status} {body}"
            );
        }
        drop(server);
    }

    #[tokio::test]
    async fn refuses_open_addresses_without_auth_and_bad_fail_rates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("r.db");
        let mut open = ServeOptions::new(&db);
        open.addr = "0.0.0.0:0".into();
        let err = spawn(open).await.err().expect("refused");
        assert!(err.to_string().contains("--token"), "{err}");
        let mut bad = ServeOptions::ephemeral(&db);
        bad.fail_rate = 1.5;
        assert!(spawn(bad).await.is_err());
        assert!(!db.exists());
    }

    #[test]
    fn protojson_numbers_drop_integral_fractions() {
        let v = serde_json::json!({"a": 1.0, "b": [2.5, 3.0], "c": "1.0"});
        assert_eq!(
            kfp_api::protojson::integral_numbers(kfp_api::spec::numbers_as_doubles(v)).to_string(),
            r#"{"a":1,"b":[2.5,3],"c":"1.0"}"#
        );
    }
}
