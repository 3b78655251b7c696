//! KFP REST API v2beta1 client: auth on every request, retries with backoff on reads, errors that
//! carry the server's own message.
//!
//! Reads (lookups, lists, healthz) and deletes are retried on connect errors, 429 and 5xx, never
//! on 400/401/403/404/409. Uploads are not idempotent: [`Client::upload_version`] sends once; the
//! caller (`apply`) checks whether a failed upload landed before sending it again.
//!
//! Time is bounded by `--request-timeout` (default 30 s): one request and its retries together
//! never take longer, and a request that got no answer in that time is not sent again (a server
//! that accepts connections and never answers would otherwise multiply the wait). While a request
//! waits, a progress line goes to the log every 10 s.
//!
//! Answers are checked for what kfp-ci relies on (healthz shape, ids of pipelines and versions, an
//! uploaded version really listed afterwards): a server that answers `200 {}` to everything is not
//! taken for a KFP API. Redirects are not followed: behind Dex or oauth2-proxy a redirect (or an
//! HTML page) means the request went to a login page, which is said in those words.

use std::time::Duration;

use kfp_api::compat::{Capabilities, FillNames};
use kfp_api::wire::{
    Healthz, ListPipelineVersionsResponse, Pipeline, PipelineVersion, RpcStatus, UploadError,
};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

mod runs;

use crate::redact::{Secret, redact};
use crate::target::{Auth, Tls};

/// How many times a retryable request is sent in all.
pub const MAX_ATTEMPTS: u32 = 5;
const BASE_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(8);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request (with its retries) may take, unless `--request-timeout` says otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a waiting request says so in the log.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// An error talking to the KFP API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No HTTP response: connection refused, DNS, TLS, timeout.
    #[error("{method} {url}: {message}")]
    Transport {
        method: String,
        url: String,
        message: String,
        timeout: bool,
        /// The cause in a few words ("connection refused", "could not resolve host"), for the
        /// one-line error; `message` keeps the whole chain for `-v`.
        reason: String,
    },
    /// The server answered with a non-success status.
    #[error("{method} {url} returned HTTP {status}: {message}")]
    Status {
        method: String,
        url: String,
        status: u16,
        /// The server's own message (gRPC status details, upload `error_message`, or the text body).
        message: String,
        /// The raw body (redacted, truncated), for `-v` and reports.
        body: String,
        /// `Retry-After` of a 429 or 503, in seconds.
        retry_after: Option<Duration>,
    },
    /// A success status whose body is not what the API promises.
    #[error("{method} {url}: unexpected response body: {message}")]
    Decode {
        method: String,
        url: String,
        message: String,
    },
    /// Local credential problems (unreadable token file, bad header).
    #[error("{0}")]
    Credentials(String),
    /// A redirect or an HTML page where JSON was expected: an authentication proxy (Dex,
    /// oauth2-proxy) sent the request to its login page. The page itself is never shown.
    #[error("{method} {url}: {}", login_page_message(url, *status, location.as_deref()))]
    LoginPage {
        method: String,
        url: String,
        status: u16,
        /// Where a redirect pointed (shown without query or userinfo).
        location: Option<String>,
    },
}

fn login_page_message(url: &str, status: u16, location: Option<&str>) -> String {
    match location {
        Some(location) if is_move(url, location) => format!(
            "the server redirects this request (HTTP {status}) to {location}: write the endpoint with that scheme and host"
        ),
        Some(location) => format!(
            "the request was sent to a login page (HTTP {status} redirect to {location}), not to the KFP API"
        ),
        None => format!(
            "the request was sent to a login page (HTTP {status} with an HTML page), not to the KFP API"
        ),
    }
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Connect errors, 429 and 5xx may succeed when tried again; an untrusted TLS certificate,
    /// a TLS handshake with a plain-HTTP server and a request that got no answer within
    /// `--request-timeout` will not (sending it again would only multiply the wait).
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Transport {
                timeout, reason, ..
            } => !*timeout && !self.is_certificate_error() && reason != PLAIN_HTTP,
            ApiError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// The TLS handshake failed on the server's certificate (unknown issuer, wrong name, expired).
    pub fn is_certificate_error(&self) -> bool {
        matches!(self, ApiError::Transport { message, .. } if message.contains("certificate"))
    }

    /// Why no HTTP answer came, in a few words ("connection refused"); `None` for an answer.
    pub fn transport_reason(&self) -> Option<&str> {
        match self {
            ApiError::Transport { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// Did an authentication proxy answer instead of the KFP API?
    pub fn is_login_page(&self) -> bool {
        match self {
            ApiError::LoginPage { url, location, .. } => {
                !location.as_deref().is_some_and(|l| is_move(url, l))
            }
            _ => false,
        }
    }

    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// The server's own message, one line (for no answer: why, in a few words).
    pub fn server_message(&self) -> String {
        match self {
            ApiError::Status {
                status, message, ..
            } => format!("HTTP {status}: {message}"),
            ApiError::Transport {
                method,
                url,
                reason,
                ..
            } => format!("{method} {url}: {reason}"),
            other => other.to_string(),
        }
    }

    /// The raw body, when there was one.
    pub fn body(&self) -> &str {
        match self {
            ApiError::Status { body, .. } => body,
            _ => "",
        }
    }

    /// A `hint:` for errors people can fix themselves.
    pub fn hint(&self, auth: &Auth) -> Option<String> {
        if self.is_login_page() {
            return Some(login_page_hint(auth));
        }
        if self.transport_reason() == Some(PLAIN_HTTP) {
            return Some(
                "the endpoint's port speaks plain HTTP: write the endpoint with http:// (or point https:// at the TLS port, e.g. the Kubeflow gateway)".into(),
            );
        }
        if matches!(self, ApiError::Transport { timeout: true, .. }) {
            return Some(
                "the server accepted the connection but sent no answer in time: is the endpoint the KFP API (and not another service on that port)? A slow server needs a longer --request-timeout (`request_timeout` in kfp-ci.toml)".into(),
            );
        }
        if matches!(self, ApiError::Decode { .. }) {
            return Some(
                "the server at the endpoint does not answer like a KFP API (v2beta1): check that the endpoint is the KFP API base URL, e.g. http://ml-pipeline.kubeflow:8888 or https://<host>/pipeline".into(),
            );
        }
        match self.status() {
            Some(401) | Some(403) => Some(match auth.source() {
                Some(source) => format!(
                    "the server rejected the credentials ({source}): check that it is a valid, unexpired credential for this endpoint and that it may manage pipelines in this namespace"
                ),
                None => "no credentials configured: set KF_PIPELINES_TOKEN or --token-file (KF_PIPELINES_SA_TOKEN_PATH: a projected service-account token with audience pipelines.kubeflow.org), or KFP_CI_COOKIE behind an auth proxy".into(),
            }),
            Some(400) if self.server_message().contains("Failed to create a pipeline") => Some(
                "KFP gives this generic 400 for several causes: an invalid spec, an unknown pipeline id, or (multi-user KFP) a token not allowed to create pipelines in this namespace; the server log has the detail".into(),
            ),
            Some(404) => Some(
                "is the endpoint the KFP API base URL? kfp-ci appends /apis/v2beta1/...; behind the Kubeflow gateway it is https://<host>/pipeline".into(),
            ),
            _ => match self {
                ApiError::Transport { .. } if self.is_certificate_error() => Some(
                    "the server's TLS certificate is not trusted here: pass the CA bundle that signed it with --ca-cert FILE (or `ca_cert` in [targets.NAME]); --insecure-skip-tls-verify turns verification off (never in production)".into(),
                ),
                ApiError::Transport { .. } => Some(
                    "is the endpoint reachable from here? `kfp-ci doctor` checks endpoint, token and namespace".into(),
                ),
                _ => None,
            },
        }
    }
}

/// A redirect to the same path elsewhere (`http://` → `https://`, another host): the API moved,
/// no login page.
fn is_move(url: &str, location: &str) -> bool {
    match (url::Url::parse(url), url::Url::parse(location)) {
        (Ok(from), Ok(to)) => from.path() == to.path() && from.origin() != to.origin(),
        _ => false,
    }
}

/// The reason of a TLS handshake answered in plain HTTP.
pub const PLAIN_HTTP: &str = "the server answered plain HTTP; use http://";

/// What to do about a login page: a session cookie or a token, named by where kfp-ci reads them.
fn login_page_hint(auth: &Auth) -> String {
    let cookie_env = if auth.cookie_env.is_empty() {
        crate::target::COOKIE_ENV
    } else {
        auth.cookie_env.as_str()
    };
    let fix = format!(
        "the endpoint is behind an authentication proxy (Dex, oauth2-proxy): pass a session cookie in {cookie_env} (`cookie_env` in [targets.NAME] names another variable), e.g. authservice_session=…, or a bearer token the proxy accepts (KF_PIPELINES_TOKEN, `token_env`, or --token-file)"
    );
    match auth.source() {
        Some(source) => format!("{fix}; {source} was sent and not accepted: it may have expired"),
        None => fix,
    }
}

/// Retry delays: exponential with full jitter, zero under `KFP_CI_TEST_NO_RETRY_DELAY`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        if std::env::var_os("KFP_CI_TEST_NO_RETRY_DELAY").is_some() {
            Backoff {
                base: Duration::ZERO,
                max: Duration::ZERO,
            }
        } else {
            Backoff {
                base: BASE_DELAY,
                max: MAX_DELAY,
            }
        }
    }
}

impl Backoff {
    /// Delay before attempt `attempt + 1` (attempt counts from 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        if self.base.is_zero() {
            return Duration::ZERO;
        }
        let cap = self.base.saturating_mul(1 << attempt.min(16)).min(self.max);
        let millis = cap.as_millis() as u64;
        // Jitter: somewhere in [cap/2, cap].
        Duration::from_millis(millis / 2 + rand::random_range(0..=millis / 2))
    }

    /// Sleep before the next attempt after `err`: the backoff, or the server's `Retry-After`
    /// when that is longer (at most 30 s).
    pub async fn sleep_after(&self, attempt: u32, err: &ApiError) {
        let d = self.delay_after(attempt, err);
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }

    /// The delay [`Backoff::sleep_after`] sleeps.
    pub fn delay_after(&self, attempt: u32, err: &ApiError) -> Duration {
        let mut d = self.delay(attempt);
        if let ApiError::Status {
            retry_after: Some(after),
            ..
        } = err
            && !self.base.is_zero()
        {
            d = d.max((*after).min(Duration::from_secs(30)));
        }
        d
    }
}

/// What an upload sends besides the spec.
#[derive(Debug, Clone, Default)]
pub struct UploadMeta {
    pub name: String,
    pub display_name: String,
    pub description: String,
    /// Sent only when non-empty and the server reads tags (see [`Client::capabilities`]).
    pub tags: std::collections::BTreeMap<String, String>,
    /// Link to the pipeline's source file; sent only where the upload handler reads it.
    pub code_source_url: String,
}

pub struct Client {
    http: reqwest::Client,
    base: url::Url,
    auth: Auth,
    pub backoff: Backoff,
    /// What the server accepts: set from its healthz ([`Client::set_capabilities`]); until
    /// then the conservative set, which every release reads the same way.
    caps: Capabilities,
    /// How long one request and its retries may take (`--request-timeout`).
    request_timeout: Duration,
    /// Requests waiting for an answer, and when the last progress line was printed: one line
    /// for all of them, not one per request.
    waiting: std::sync::Arc<Waiting>,
}

#[derive(Default)]
struct Waiting {
    count: std::sync::atomic::AtomicUsize,
    last_line: std::sync::Mutex<Option<std::time::Instant>>,
}

enum Body<'a> {
    None,
    Json(&'a Value),
    Upload { filename: &'a str, yaml: &'a str },
}

impl Client {
    pub fn new(base: url::Url, auth: Auth, tls: &Tls) -> anyhow::Result<Client> {
        Client::with_timeout(base, auth, tls, DEFAULT_REQUEST_TIMEOUT)
    }

    /// A client for a resolved target: its credentials, TLS settings and request timeout.
    pub fn for_target(base: url::Url, target: &crate::target::Target) -> anyhow::Result<Client> {
        Client::with_timeout(
            base,
            target.auth.clone(),
            &target.tls,
            target.request_timeout,
        )
    }

    pub fn with_timeout(
        base: url::Url,
        auth: Auth,
        tls: &Tls,
        request_timeout: Duration,
    ) -> anyhow::Result<Client> {
        use anyhow::Context;
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("kfp-ci/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT.min(request_timeout))
            // Behind Dex or oauth2-proxy a redirect leads to a login page: report it as such
            // instead of following it and failing on the HTML.
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(64);
        if let Some(path) = &tls.ca_cert {
            let pem = fs_err::read(path).context("cannot read the CA bundle given by --ca-cert")?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("{} is not a PEM certificate bundle", path.display()))?;
            if certs.is_empty() {
                // reqwest accepts a file without a single certificate; verification would then
                // fail later with a misleading "unknown issuer".
                anyhow::bail!(
                    "the CA bundle {} (--ca-cert) holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    path.display()
                );
            }
            builder = builder.tls_certs_merge(certs);
        }
        if tls.insecure_skip_verify {
            tracing::warn!(
                "TLS certificate verification is off (--insecure-skip-tls-verify): never use this in production"
            );
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let http = builder.build().context("cannot build the HTTP client")?;
        Ok(Client {
            http,
            base,
            auth,
            backoff: Backoff::default(),
            caps: Capabilities::conservative(kfp_api::compat::Store::Database, false),
            request_timeout,
            waiting: Default::default(),
        })
    }

    /// Adapt requests and responses to the server (from its healthz).
    pub fn set_capabilities(&mut self, caps: Capabilities) {
        self.caps = caps;
    }

    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    pub fn base(&self) -> &url::Url {
        &self.base
    }

    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    fn url(&self, segments: &[&str]) -> url::Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(["apis", "v2beta1"]);
            path.extend(segments);
        }
        url
    }

    fn bearer(&self) -> Result<Option<Secret>, ApiError> {
        if let Some(path) = &self.auth.token_file {
            let text = fs_err::read_to_string(path).map_err(|e| {
                ApiError::Credentials(format!(
                    "cannot read the token file (--token-file / KF_PIPELINES_SA_TOKEN_PATH): {e}"
                ))
            })?;
            let token = text.trim();
            if token.is_empty() {
                return Err(ApiError::Credentials(format!(
                    "the token file {} is empty",
                    path.display()
                )));
            }
            return Ok(Some(Secret::new(token)));
        }
        Ok(self.auth.token.clone())
    }

    /// Send one request, no retries, waiting at most `timeout` for the whole answer. Returns the
    /// body of a 2xx answer.
    async fn send_once(
        &self,
        method: &Method,
        url: &url::Url,
        query: &[(&str, &str)],
        body: &Body<'_>,
        timeout: Duration,
    ) -> Result<Vec<u8>, ApiError> {
        let mut req = self
            .http
            .request(method.clone(), url.clone())
            .timeout(timeout);
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(token) = self.bearer()? {
            req = req.bearer_auth(token.expose());
        }
        if let Some(cookie) = &self.auth.cookie {
            req = req.header(reqwest::header::COOKIE, cookie.expose());
        }
        for (name, value) in &self.auth.headers {
            req = req.header(name.as_str(), value.expose());
        }
        req = match body {
            Body::None => req,
            Body::Json(v) => req.json(v),
            Body::Upload { filename, yaml } => {
                let part = reqwest::multipart::Part::bytes(yaml.as_bytes().to_vec())
                    .file_name(filename.to_string())
                    .mime_str("application/octet-stream")
                    .map_err(|e| ApiError::Credentials(e.to_string()))?;
                req.multipart(reqwest::multipart::Form::new().part("uploadfile", part))
            }
        };
        let display_url = crate::redact::display_url(url.as_str());
        let started = std::time::Instant::now();
        let exchange = async {
            let response = req.send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, bytes))
        };
        let (status, headers, bytes) =
            self.waiting(method, &display_url, exchange)
                .await
                .map_err(|e| {
                    transport_error(
                        method,
                        &display_url,
                        &e,
                        started.elapsed(),
                        self.request_timeout,
                    )
                })?;
        let header = |name: reqwest::header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let is_html = header(reqwest::header::CONTENT_TYPE)
            .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("text/html"));
        if status.is_redirection()
            || (is_html && (status.is_success() || matches!(status.as_u16(), 401 | 403)))
        {
            return Err(ApiError::LoginPage {
                method: method.to_string(),
                url: display_url,
                status: status.as_u16(),
                location: header(reqwest::header::LOCATION)
                    .map(|l| crate::redact::display_url(&resolve_location(url, &l))),
            });
        }
        let retry_after = header(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let text = String::from_utf8_lossy(&bytes).to_string();
        let (message, body) = if is_html {
            // A gateway's error page: its markup helps nobody.
            (
                format!(
                    "{} (an HTML page, not a KFP API answer)",
                    status.canonical_reason().unwrap_or("error")
                ),
                String::new(),
            )
        } else {
            (
                redact(&server_message(&text, status)),
                redact(&truncate(&text, 4000)),
            )
        };
        Err(ApiError::Status {
            method: method.to_string(),
            url: display_url,
            status: status.as_u16(),
            message,
            body,
            retry_after,
        })
    }

    /// Await `exchange`, printing one progress line every 10 s (for all requests of this client
    /// together) while it waits, so that a CI log never sits silent on a slow server.
    async fn waiting<T>(
        &self,
        method: &Method,
        url: &str,
        exchange: impl std::future::Future<Output = T>,
    ) -> T {
        use std::sync::atomic::Ordering;
        let every = progress_every();
        let started = std::time::Instant::now();
        self.waiting.count.fetch_add(1, Ordering::SeqCst);
        let _done = OnDrop(|| {
            self.waiting.count.fetch_sub(1, Ordering::SeqCst);
        });
        tokio::pin!(exchange);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                out = &mut exchange => return out,
                _ = tick.tick() => {
                    let now = std::time::Instant::now();
                    let mut last = self
                        .waiting
                        .last_line
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    // Another request of this client said it recently enough.
                    if last.is_some_and(|t| now.duration_since(t) < every.mul_f32(0.9)) {
                        continue;
                    }
                    *last = Some(now);
                    let others = self.waiting.count.load(Ordering::SeqCst).saturating_sub(1);
                    tracing::info!(
                        "still waiting for an answer to {method} {url}: {}s so far{}, giving up after {}s (--request-timeout)",
                        seconds(started.elapsed()),
                        if others > 0 { format!(" ({others} more request(s) waiting)") } else { String::new() },
                        seconds(self.request_timeout)
                    );
                }
            }
        }
    }

    /// Send with retries on retryable errors (reads and deletes), all within the request timeout.
    async fn send_retrying(
        &self,
        method: Method,
        url: url::Url,
        query: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<Vec<u8>, ApiError> {
        let started = std::time::Instant::now();
        let mut attempt = 1;
        loop {
            let left = self.request_timeout.saturating_sub(started.elapsed());
            let result = if left.is_zero() {
                Err(ApiError::Transport {
                    method: method.to_string(),
                    url: crate::redact::display_url(url.as_str()),
                    message: "out of time before the next attempt".into(),
                    timeout: true,
                    reason: out_of_time(started.elapsed(), self.request_timeout),
                })
            } else {
                self.send_once(&method, &url, query, &body, left).await
            };
            match result {
                Ok(b) => return Ok(b),
                Err(e) if e.is_retryable() && attempt < MAX_ATTEMPTS => {
                    let delay = self.backoff.delay_after(attempt, &e);
                    if started.elapsed() + delay >= self.request_timeout {
                        // No time left for another attempt: the last error is the answer.
                        return Err(e);
                    }
                    tracing::debug!("attempt {attempt} failed, retrying: {e}");
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    attempt += 1;
                }
                Err(ApiError::Transport {
                    method,
                    url,
                    message,
                    timeout: true,
                    reason,
                }) if attempt > 1 => {
                    // Say how long the request and its retries took in all.
                    return Err(ApiError::Transport {
                        method,
                        url,
                        message,
                        timeout: true,
                        reason: if reason.starts_with("no answer") {
                            out_of_time(started.elapsed(), self.request_timeout)
                        } else {
                            reason
                        },
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn decode<T: DeserializeOwned>(
        method: &str,
        url: &url::Url,
        bytes: &[u8],
    ) -> Result<T, ApiError> {
        serde_json::from_slice(bytes).map_err(|e| ApiError::Decode {
            method: method.into(),
            url: crate::redact::display_url(url.as_str()),
            message: redact(&format!(
                "{e}: {}",
                truncate(&String::from_utf8_lossy(bytes), 300)
            )),
        })
    }

    /// A 2xx answer that lacks what kfp-ci relies on: an error naming the endpoint and what
    /// was missing.
    fn invalid(&self, method: &str, segments: &[&str], what: &str) -> ApiError {
        ApiError::Decode {
            method: method.into(),
            url: crate::redact::display_url(self.url(segments).as_str()),
            message: format!("{what}: this does not look like a KFP API (v2beta1) answer"),
        }
    }

    fn check_versions(
        &self,
        segments: &[&str],
        versions: &[PipelineVersion],
    ) -> Result<(), ApiError> {
        if versions.iter().any(|v| v.pipeline_version_id.is_empty()) {
            return Err(self.invalid(
                "GET",
                segments,
                "a listed version has no pipeline_version_id",
            ));
        }
        Ok(())
    }

    async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<T, ApiError> {
        let url = self.url(segments);
        let bytes = self
            .send_retrying(Method::GET, url.clone(), query, Body::None)
            .await?;
        Self::decode("GET", &url, &bytes)
    }

    /// `GET` any API path as JSON (the review commands' listings: pipelines, recurring runs).
    pub async fn get_value(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Value, ApiError> {
        self.get(segments, query).await
    }

    /// `GET /healthz`. KFP answers `commit_sha`, `tag_name` and `multi_user` (and, since 2.14,
    /// `pipeline_store`); an answer with none of them is not KFP's.
    pub async fn healthz(&self) -> Result<Healthz, ApiError> {
        let raw: Value = self.get(&["healthz"], &[]).await?;
        let known = ["commit_sha", "tag_name", "multi_user"];
        if !raw
            .as_object()
            .is_some_and(|o| known.iter().any(|k| o.contains_key(*k)))
        {
            return Err(self.invalid(
                "GET",
                &["healthz"],
                &format!(
                    "the health check answered {} without commit_sha, tag_name or multi_user",
                    truncate(&redact(&raw.to_string()), 100)
                ),
            ));
        }
        serde_json::from_value(raw).map_err(|e| {
            self.invalid(
                "GET",
                &["healthz"],
                &format!("the health check answer does not parse ({e})"),
            )
        })
    }

    /// `GET /pipelines/names/{name}?namespace=`: `None` when absent (404).
    pub async fn pipeline_by_name(
        &self,
        name: &str,
        namespace: &str,
    ) -> Result<Option<Pipeline>, ApiError> {
        let segments = ["pipelines", "names", name];
        match self
            .get::<Pipeline>(&segments, &[("namespace", namespace)])
            .await
        {
            Ok(p) if p.pipeline_id.is_empty() => Err(self.invalid(
                "GET",
                &segments,
                &format!("the pipeline {name} was answered without a pipeline_id"),
            )),
            Ok(p) => Ok(Some(p.fill_names())),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The newest version of a pipeline (`sort_by=created_at desc`), and the other versions
    /// created in the same second (timestamps have second precision: any of them may be newest).
    pub async fn latest_versions(
        &self,
        pipeline_id: &str,
    ) -> Result<Option<(PipelineVersion, Vec<PipelineVersion>)>, ApiError> {
        let list: ListPipelineVersionsResponse = self
            .get(
                &["pipelines", pipeline_id, "versions"],
                &[("sort_by", "created_at desc"), ("page_size", "5")],
            )
            .await?;
        self.check_versions(
            &["pipelines", pipeline_id, "versions"],
            &list.pipeline_versions,
        )?;
        let mut versions = list.pipeline_versions.fill_names().into_iter();
        let Some(latest) = versions.next() else {
            return Ok(None);
        };
        let tied = versions
            .filter(|v| v.created_at.is_some() && v.created_at == latest.created_at)
            .collect();
        Ok(Some((latest, tied)))
    }

    /// The version of a pipeline with this exact name, if any.
    pub async fn version_by_name(
        &self,
        pipeline_id: &str,
        name: &str,
    ) -> Result<Option<PipelineVersion>, ApiError> {
        let filter = serde_json::json!({
            "predicates": [{"operation": "EQUALS", "key": "name", "string_value": name}]
        })
        .to_string();
        let list: ListPipelineVersionsResponse = self
            .get(
                &["pipelines", pipeline_id, "versions"],
                &[("filter", &filter), ("page_size", "200")],
            )
            .await?;
        self.check_versions(
            &["pipelines", pipeline_id, "versions"],
            &list.pipeline_versions,
        )?;
        Ok(list
            .pipeline_versions
            .fill_names()
            .into_iter()
            .find(|v| v.name == name))
    }

    /// The pipelines named `name` that `GET /pipelines` lists in `namespace`: unlike get-by-name,
    /// the list filters on the exact namespace, `""` (shared) included.
    pub async fn pipelines_named(
        &self,
        name: &str,
        namespace: &str,
    ) -> Result<Vec<Pipeline>, ApiError> {
        let filter = serde_json::json!({
            "predicates": [{"operation": "EQUALS", "key": "name", "string_value": name}]
        })
        .to_string();
        let list: kfp_api::wire::ListPipelinesResponse = self
            .get(
                &["pipelines"],
                &[
                    ("namespace", namespace),
                    ("filter", &filter),
                    ("page_size", "200"),
                ],
            )
            .await?;
        if list.pipelines.iter().any(|p| p.pipeline_id.is_empty()) {
            return Err(self.invalid(
                "GET",
                &["pipelines"],
                "a listed pipeline has no pipeline_id",
            ));
        }
        Ok(list.pipelines)
    }

    /// The newest versions of a pipeline (`sort_by=created_at desc`), at most `page_size`.
    pub async fn newest_versions(
        &self,
        pipeline_id: &str,
        page_size: usize,
    ) -> Result<Vec<PipelineVersion>, ApiError> {
        let size = page_size.to_string();
        let list: ListPipelineVersionsResponse = self
            .get(
                &["pipelines", pipeline_id, "versions"],
                &[("sort_by", "created_at desc"), ("page_size", &size)],
            )
            .await?;
        self.check_versions(
            &["pipelines", pipeline_id, "versions"],
            &list.pipeline_versions,
        )?;
        Ok(list.pipeline_versions)
    }

    /// Every version of a pipeline, newest first.
    pub async fn all_versions(&self, pipeline_id: &str) -> Result<Vec<PipelineVersion>, ApiError> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let mut query = vec![("sort_by", "created_at desc"), ("page_size", "200")];
            if !token.is_empty() {
                query.push(("page_token", token.as_str()));
            }
            let list: ListPipelineVersionsResponse = self
                .get(&["pipelines", pipeline_id, "versions"], &query)
                .await?;
            self.check_versions(
                &["pipelines", pipeline_id, "versions"],
                &list.pipeline_versions,
            )?;
            out.extend(list.pipeline_versions.fill_names());
            if list.next_page_token.is_empty() {
                return Ok(out);
            }
            token = list.next_page_token;
        }
    }

    /// `POST /pipelines`: a pipeline without a version. Not retried (a 409 after a lost answer is
    /// handled by the caller's lookup).
    pub async fn create_pipeline(&self, pipeline: &Pipeline) -> Result<Pipeline, ApiError> {
        let url = self.url(&["pipelines"]);
        let mut pipeline = pipeline.clone();
        if !self.caps.separate_name {
            // Before 2.14 the gateway drops `name`: the display name is the identity.
            pipeline.display_name = pipeline.name.clone();
        }
        if !self.caps.tags {
            pipeline.tags.clear();
        }
        let body = serde_json::to_value(&pipeline).unwrap_or(Value::Null);
        let bytes = self
            .send_once(
                &Method::POST,
                &url,
                &[],
                &Body::Json(&body),
                self.request_timeout,
            )
            .await?;
        let created: Pipeline = Self::decode("POST", &url, &bytes)?;
        if created.pipeline_id.is_empty() {
            return Err(self.invalid(
                "POST",
                &["pipelines"],
                &format!(
                    "the pipeline {} was created without a pipeline_id in the answer",
                    pipeline.name
                ),
            ));
        }
        Ok(created.fill_names())
    }

    /// `DELETE /pipelines/{id}` without cascade: refused by the server unless the pipeline is empty.
    pub async fn delete_pipeline(&self, pipeline_id: &str) -> Result<(), ApiError> {
        let url = self.url(&["pipelines", pipeline_id]);
        self.send_retrying(Method::DELETE, url, &[], Body::None)
            .await
            .map(|_| ())
    }

    pub async fn delete_version(
        &self,
        pipeline_id: &str,
        version_id: &str,
    ) -> Result<(), ApiError> {
        let url = self.url(&["pipelines", pipeline_id, "versions", version_id]);
        self.send_retrying(Method::DELETE, url, &[], Body::None)
            .await
            .map(|_| ())
    }

    /// `POST /pipelines/upload_version`, sent once (see the module docs).
    pub async fn upload_version(
        &self,
        pipeline_id: &str,
        meta: &UploadMeta,
        yaml: &str,
    ) -> Result<PipelineVersion, ApiError> {
        let url = self.url(&["pipelines", "upload_version"]);
        // Only what this release reads (kfp_api::compat): older handlers ignore the rest.
        let tags = if meta.tags.is_empty() || !self.caps.tags {
            String::new()
        } else {
            serde_json::to_string(&meta.tags).unwrap_or_default()
        };
        let mut query = vec![
            ("pipelineid", pipeline_id),
            ("name", meta.name.as_str()),
            ("description", meta.description.as_str()),
        ];
        if self.caps.upload_display_name {
            query.push(("display_name", meta.display_name.as_str()));
        }
        if !tags.is_empty() {
            query.push(("tags", tags.as_str()));
        }
        if self.caps.upload_code_source_url && !meta.code_source_url.is_empty() {
            query.push(("code_source_url", meta.code_source_url.as_str()));
        }
        let filename = format!("{}.yaml", meta.name);
        let bytes = self
            .send_once(
                &Method::POST,
                &url,
                &query,
                &Body::Upload {
                    filename: &filename,
                    yaml,
                },
                self.request_timeout,
            )
            .await?;
        let uploaded: PipelineVersion = Self::decode("POST", &url, &bytes)?;
        let upload_segments = ["pipelines", "upload_version"];
        if uploaded.pipeline_version_id.is_empty() {
            return Err(self.invalid(
                "POST",
                &upload_segments,
                &format!(
                    "version {} was uploaded without a pipeline_version_id in the answer",
                    meta.name
                ),
            ));
        }
        // Trust, but verify: the version must be there when asked for by its id.
        let listed: Result<PipelineVersion, ApiError> = self
            .get(
                &[
                    "pipelines",
                    pipeline_id,
                    "versions",
                    &uploaded.pipeline_version_id,
                ],
                &[],
            )
            .await;
        match listed {
            Ok(v) if v.pipeline_version_id == uploaded.pipeline_version_id => {
                Ok(uploaded.fill_names())
            }
            Ok(_) | Err(ApiError::Status { status: 404, .. }) | Err(ApiError::Decode { .. }) => {
                Err(self.invalid(
                    "POST",
                    &upload_segments,
                    &format!(
                        "the upload of version {} answered id {}, but GET …/pipelines/{pipeline_id}/versions/{} does not return it",
                        meta.name,
                        uploaded.pipeline_version_id,
                        uploaded.pipeline_version_id
                    ),
                ))
            }
            Err(e) => Err(e),
        }
    }
}

/// The error and its causes on one line (reqwest's Display hides the interesting part).
/// `waited`: how long the request waited; `limit`: the timeout it had.
fn transport_error(
    method: &Method,
    url: &str,
    e: &reqwest::Error,
    waited: Duration,
    limit: Duration,
) -> ApiError {
    // reqwest's own text names the URL with its query: show it as every URL is shown.
    let mut chain = error_chain(e);
    if let Some(full) = e.url() {
        chain = chain.replace(full.as_str(), url);
    }
    let chain = redact(&chain);
    let mut innermost = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        innermost = s.to_string();
        source = s.source();
    }
    let https = url.starts_with("https://");
    ApiError::Transport {
        method: method.to_string(),
        url: url.to_string(),
        reason: redact(&transport_reason(
            &chain,
            &innermost,
            e.is_timeout(),
            e.is_connect(),
            https,
            waited,
            limit,
        )),
        message: chain,
        timeout: e.is_timeout(),
    }
}

/// "no answer within 30s (--request-timeout 30s)": what really happened, in seconds.
fn out_of_time(waited: Duration, limit: Duration) -> String {
    format!(
        "no answer within {}s (--request-timeout {}s)",
        seconds(waited),
        seconds(limit)
    )
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 && s.fract() >= 0.05 {
        format!("{s:.1}")
    } else {
        format!("{s:.0}")
    }
}

/// How often a waiting request logs a progress line (tests shorten it with
/// `KFP_CI_TEST_PROGRESS_MS`, as they shorten retry delays).
fn progress_every() -> Duration {
    std::env::var("KFP_CI_TEST_PROGRESS_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map_or(PROGRESS_EVERY, Duration::from_millis)
}

/// A redirect's `Location`, made absolute against the request URL.
fn resolve_location(request: &url::Url, location: &str) -> String {
    request
        .join(location)
        .map_or_else(|_| location.to_string(), |u| u.to_string())
}

/// Runs a closure when dropped (also when the future holding it is cancelled).
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// A transport failure in a few words, from reqwest's error chain.
fn transport_reason(
    chain: &str,
    innermost: &str,
    timeout: bool,
    connect: bool,
    https: bool,
    waited: Duration,
    limit: Duration,
) -> String {
    let lower = chain.to_lowercase();
    if timeout && connect {
        format!(
            "timed out after {}s connecting",
            seconds(CONNECT_TIMEOUT.min(limit))
        )
    } else if timeout {
        out_of_time(waited, limit)
    } else if https
        && (lower.contains("invalidcontenttype")
            || lower.contains("corrupt message")
            || lower.contains("wrong version number")
            || lower.contains("invalid message"))
    {
        // rustls read an HTTP answer where a TLS record should be.
        PLAIN_HTTP.into()
    } else if lower.contains("dns error") || lower.contains("failed to lookup") {
        "could not resolve host".into()
    } else if lower.contains("certificate") {
        // rustls: "invalid peer certificate: UnknownIssuer".
        let detail = chain
            .split(": ")
            .skip_while(|p| !p.to_lowercase().contains("certificate"))
            .collect::<Vec<_>>()
            .join(": ");
        format!("TLS: {detail}")
    } else if lower.contains("tls") || lower.contains("handshake") {
        format!("TLS handshake failed: {innermost}")
    } else if lower.contains("connection refused") {
        "connection refused".into()
    } else if lower.contains("connection reset") {
        "connection reset".into()
    } else {
        let end = innermost.find(" (os error").unwrap_or(innermost.len());
        innermost[..end].to_string()
    }
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The server's own message from either error body shape (the API's `{code, message, details}`
/// status, or the upload endpoint's `{error_message, …}`), else the text.
pub fn server_message(body: &str, status: reqwest::StatusCode) -> String {
    if let Ok(rpc) = serde_json::from_str::<RpcStatus>(body)
        && (!rpc.message.is_empty() || !rpc.details.is_empty())
    {
        // The details' short message reads better than the full wrapped chain.
        let short = rpc
            .details
            .iter()
            .find_map(|d| d.get("message").and_then(Value::as_str))
            .filter(|m| !m.is_empty());
        return short.unwrap_or(&rpc.message).to_string();
    }
    if let Ok(upload) = serde_json::from_str::<UploadError>(body)
        && !upload.error_message.is_empty()
    {
        return upload.error_message;
    }
    let text = body.trim();
    if text.is_empty() {
        return status
            .canonical_reason()
            .unwrap_or("no message")
            .to_string();
    }
    truncate(text.lines().next().unwrap_or(text), 300)
}

#[cfg(test)]
mod tests {
    #[test]
    fn transport_failures_read_as_a_few_words() {
        use super::transport_reason;
        let reason = |chain: &str, innermost: &str, timeout: bool, connect: bool| {
            transport_reason(
                chain,
                innermost,
                timeout,
                connect,
                false,
                Duration::from_millis(30_020),
                Duration::from_secs(30),
            )
        };
        let refused = "error sending request for url (http://127.0.0.1:1/apis/v2beta1/healthz): client error (Connect): tcp connect error: Connection refused (os error 111)";
        assert_eq!(
            reason(refused, "Connection refused (os error 111)", false, true),
            "connection refused"
        );
        let dns = "error sending request for url (http://kfp.nowhere/apis/v2beta1/healthz): client error (Connect): dns error: failed to lookup address information: Name or service not known";
        assert_eq!(
            reason(dns, "Name or service not known", false, true),
            "could not resolve host"
        );
        assert_eq!(
            reason(
                "error sending request: operation timed out",
                "operation timed out",
                true,
                true
            ),
            "timed out after 10s connecting"
        );
        // What it really waited, and the limit that applied.
        assert_eq!(
            reason(
                "error sending request: operation timed out",
                "operation timed out",
                true,
                false
            ),
            "no answer within 30s (--request-timeout 30s)"
        );
        assert_eq!(
            transport_reason(
                "x",
                "x",
                true,
                false,
                false,
                Duration::from_millis(1_540),
                Duration::from_secs(1)
            ),
            "no answer within 1.5s (--request-timeout 1s)"
        );
        let tls = "error sending request for url (https://127.0.0.1:9/): client error (Connect): invalid peer certificate: UnknownIssuer";
        assert_eq!(
            reason(tls, "invalid peer certificate: UnknownIssuer", false, true),
            "TLS: invalid peer certificate: UnknownIssuer"
        );
        assert_eq!(
            reason(
                "x: connection closed before message completed (os error 5)",
                "connection closed before message completed (os error 5)",
                false,
                false
            ),
            "connection closed before message completed"
        );
    }

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::extract::{Request, State};
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};

    use super::*;

    /// A loopback server answering from `respond(n, request)` where n counts requests from 0.
    async fn serve<F>(respond: F) -> (url::Url, Arc<AtomicUsize>)
    where
        F: Fn(usize, &Request) -> Response + Send + Sync + 'static,
    {
        let count = Arc::new(AtomicUsize::new(0));
        let state = (count.clone(), Arc::new(respond));
        let app = Router::new().fallback(
            |State((count, respond)): State<(Arc<AtomicUsize>, Arc<F>)>, req: Request| async move {
                let n = count.fetch_add(1, Ordering::SeqCst);
                respond(n, &req)
            },
        );
        let app = app.with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (
            url::Url::parse(&format!("http://{addr}/pipeline")).expect("url"),
            count,
        )
    }

    fn client(base: url::Url, auth: Auth) -> Client {
        let mut c = Client::new(base, auth, &Tls::default()).expect("client");
        c.backoff = Backoff {
            base: Duration::ZERO,
            max: Duration::ZERO,
        };
        c
    }

    fn json(status: StatusCode, body: &str) -> Response {
        (
            status,
            [("content-type", "application/json")],
            body.to_string(),
        )
            .into_response()
    }

    #[tokio::test]
    async fn reads_retry_on_503_and_keep_the_path_prefix() {
        let (url, count) = serve(|n, req| {
            assert_eq!(req.uri().path(), "/pipeline/apis/v2beta1/healthz");
            if n < 2 {
                json(StatusCode::SERVICE_UNAVAILABLE, r#"{"code":14,"message":"busy"}"#)
            } else {
                json(StatusCode::OK, r#"{"tag_name":"2.17.0","multi_user":false,"pipeline_store":"database","commit_sha":"x"}"#)
            }
        })
        .await;
        let h = client(url, Auth::default())
            .healthz()
            .await
            .expect("healthz");
        assert_eq!(h.tag_name, "2.17.0");
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn retry_after_is_honoured() {
        let (url, count) = serve(|n, _| {
            if n == 0 {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "1")],
                    "slow down",
                )
                    .into_response()
            } else {
                json(StatusCode::OK, r#"{"tag_name":"2.17.0"}"#)
            }
        })
        .await;
        let mut c = client(url, Auth::default());
        c.backoff = Backoff {
            base: Duration::from_millis(1),
            max: Duration::from_millis(2),
        };
        let started = std::time::Instant::now();
        c.healthz().await.expect("second attempt");
        assert!(started.elapsed() >= Duration::from_millis(950));
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn client_errors_are_not_retried_and_carry_the_servers_message() {
        let (url, count) = serve(|_, _| {
            json(
                StatusCode::BAD_REQUEST,
                r#"{"code":3,"message":"long wrapped chain: Invalid input","details":[{"@type":"type.googleapis.com/google.rpc.Status","code":3,"message":"Invalid input"}]}"#,
            )
        })
        .await;
        let err = client(url, Auth::default())
            .pipeline_by_name("x", "")
            .await
            .expect_err("400");
        assert_eq!(err.status(), Some(400));
        assert_eq!(err.server_message(), "HTTP 400: Invalid input");
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn auth_not_found_and_conflict_are_never_retried() {
        for status in [400u16, 401, 403, 404, 409] {
            let (url, count) = serve(move |_, _| {
                json(
                    StatusCode::from_u16(status).expect("status"),
                    r#"{"code":3,"message":"no"}"#,
                )
            })
            .await;
            let c = client(url, Auth::default());
            let _ = c.healthz().await;
            let _ = c.delete_version("p", "v").await;
            let _ = c
                .upload_version("p", &UploadMeta::default(), "a: 1\n")
                .await;
            assert_eq!(count.load(Ordering::SeqCst), 3, "HTTP {status} was retried");
        }
    }

    #[tokio::test]
    async fn not_found_is_absent_and_upload_errors_parse() {
        let (url, _) = serve(|_, req| {
            if req.uri().path().ends_with("/upload_version") {
                json(
                    StatusCode::CONFLICT,
                    r#"{"error_message":"Failed to create a pipeline version","error_details":"stack"}"#,
                )
            } else {
                json(StatusCode::NOT_FOUND, r#"{"code":5,"message":"Namespace/Pipeline /x not found"}"#)
            }
        })
        .await;
        let c = client(url, Auth::default());
        assert!(
            c.pipeline_by_name("x", "ns")
                .await
                .expect("lookup")
                .is_none()
        );
        let err = c
            .upload_version("id", &UploadMeta::default(), "a: 1\n")
            .await
            .expect_err("409");
        assert!(err.is_conflict());
        assert_eq!(
            err.server_message(),
            "HTTP 409: Failed to create a pipeline version"
        );
    }

    #[tokio::test]
    async fn token_file_is_read_for_every_request_and_never_printed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        fs_err::write(&path, "first-token-123\n").expect("write");
        let (url, _) = serve(|_, req| {
            let auth = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            if auth == "Bearer second-token-456" {
                json(StatusCode::OK, r#"{"tag_name":"2.17.0"}"#)
            } else {
                json(
                    StatusCode::UNAUTHORIZED,
                    &format!(r#"{{"code":16,"message":"bad token {auth}"}}"#),
                )
            }
        })
        .await;
        let c = client(
            url,
            Auth {
                token_file: Some(path.clone()),
                ..Auth::default()
            },
        );
        let err = c.healthz().await.expect_err("401");
        assert_eq!(err.status(), Some(401));
        let text = format!("{err} {}", err.body());
        assert!(!text.contains("first-token-123"), "{text}");
        let hint = err.hint(c.auth()).expect("hint");
        assert!(
            hint.contains(&format!("the token in the file {}", path.display())),
            "{hint}"
        );
        assert!(!hint.contains("KF_PIPELINES_TOKEN"), "{hint}");
        fs_err::write(&path, "second-token-456\n").expect("rotate");
        c.healthz().await.expect("rotated token accepted");
    }

    #[tokio::test]
    async fn cookie_and_extra_headers_go_with_every_request() {
        let (url, _) = serve(|_, req| {
            let h = |name: &str| {
                req.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            };
            if h("cookie") == "authservice_session=cookie-value-123"
                && h("x-team") == "header-value-456"
                && h("authorization") == "Bearer env-token-789"
            {
                json(StatusCode::OK, r#"{"tag_name":"2.17.0"}"#)
            } else {
                json(StatusCode::FORBIDDEN, r#"{"code":7,"message":"denied"}"#)
            }
        })
        .await;
        let auth = Auth {
            token: Some(Secret::new("env-token-789")),
            token_file: None,
            cookie: Some(Secret::new("authservice_session=cookie-value-123")),
            headers: vec![("X-Team".into(), Secret::new("header-value-456"))],
            ..Auth::default()
        };
        assert_eq!(
            auth.source().as_deref(),
            Some(
                "the token in KF_PIPELINES_TOKEN and the cookie in KFP_CI_COOKIE and the header(s) X-Team"
            )
        );
        assert!(format!("{auth:?}").contains("[redacted]"));
        assert!(!format!("{auth:?}").contains("value-456"));
        client(url, auth).healthz().await.expect("authorised");
    }

    #[tokio::test]
    async fn upload_sends_multipart_and_query_metadata() {
        let (url, _) = serve(|_, req| {
            if req.uri().path().ends_with("/pipelines/p1/versions/v-id") {
                // The check that the uploaded version is really there.
                return json(
                    StatusCode::OK,
                    r#"{"pipeline_id":"p1","pipeline_version_id":"v-id","name":"v1"}"#,
                );
            }
            let q = req.uri().query().unwrap_or_default().to_string();
            let ct = req
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            if q.contains("pipelineid=p1")
                && q.contains("name=v1")
                && q.contains("tags=")
                && ct.starts_with("multipart/form-data")
            {
                json(
                    StatusCode::OK,
                    r#"{"pipeline_id":"p1","pipeline_version_id":"v-id","name":"v1"}"#,
                )
            } else {
                json(
                    StatusCode::BAD_REQUEST,
                    &format!(r#"{{"error_message":"bad {q} {ct}"}}"#),
                )
            }
        })
        .await;
        let meta = UploadMeta {
            name: "v1".into(),
            display_name: "v1".into(),
            description: "d".into(),
            tags: [("managed-by".to_string(), "kfp-ci".to_string())].into(),
            ..UploadMeta::default()
        };
        let v = client(url, Auth::default())
            .upload_version("p1", &meta, "a: 1\n")
            .await
            .expect("upload");
        assert_eq!(v.pipeline_version_id, "v-id");
    }

    #[tokio::test]
    async fn redirects_are_not_followed_a_login_page_is_named_a_move_is_not_one() {
        let (url, count) = serve(|_, req| {
            let path = req.uri().path().to_string();
            if path.contains("healthz") {
                (
                    StatusCode::FOUND,
                    [("location", "/oauth2/start?rd=%2Fpipeline&token=query-value")],
                )
                    .into_response()
            } else {
                // The API moved to https, same path.
                (
                    StatusCode::MOVED_PERMANENTLY,
                    [("location", format!("https://kfp.example{path}"))],
                )
                    .into_response()
            }
        })
        .await;
        let c = client(url, Auth::default());
        let err = c.healthz().await.expect_err("login page");
        assert!(err.is_login_page(), "{err}");
        assert!(!err.is_retryable());
        let text = err.to_string();
        assert!(
            text.contains("login page") && text.contains("/oauth2/start"),
            "{text}"
        );
        assert!(!text.contains("query-value"), "{text}");
        let hint = err.hint(c.auth()).expect("hint");
        assert!(
            hint.contains("KFP_CI_COOKIE") && hint.contains("cookie_env"),
            "{hint}"
        );
        let err = c.pipeline_by_name("x", "").await.expect_err("moved");
        assert!(!err.is_login_page(), "{err}");
        assert!(err.to_string().contains("redirects this request (HTTP 301) to https://kfp.example/pipeline/apis/v2beta1/pipelines/names/x"), "{err}");
        assert_eq!(
            count.load(Ordering::SeqCst),
            2,
            "nothing followed, nothing retried"
        );
    }

    #[tokio::test]
    async fn connection_refused_is_retryable_transport_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let c = client(
            url::Url::parse(&format!("http://{addr}")).expect("url"),
            Auth::default(),
        );
        let err = c.healthz().await.expect_err("refused");
        assert!(err.is_retryable());
        assert!(matches!(err, ApiError::Transport { .. }));
    }
}
