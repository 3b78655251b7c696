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

use kfp_api::compat::Capabilities;
use kfp_api::routes::{self, Route, query};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

mod error;
mod pipelines;
mod runs;
#[cfg(test)]
mod tests;

pub use crate::http::Backoff;
pub use error::{ApiError, PLAIN_HTTP, server_message};
use error::{out_of_time, transport_error};

use crate::http::seconds;
use crate::redact::{Secret, redact};
use crate::target::{Auth, Tls};
use crate::text::truncate;

/// How many times a retryable request is sent in all.
pub const MAX_ATTEMPTS: u32 = 5;
const BASE_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(8);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub use crate::target::DEFAULT_REQUEST_TIMEOUT;
/// How often a waiting request says so in the log.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

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
        let http = crate::http::client(crate::http::Options {
            connect_timeout: Some(CONNECT_TIMEOUT.min(request_timeout)),
            tls: Some(tls),
            // Behind Dex or oauth2-proxy a redirect leads to a login page: report it as such
            // instead of following it and failing on the HTML.
            no_redirects: true,
            pool_max_idle_per_host: Some(64),
            ..crate::http::Options::default()
        })?;
        Ok(Client {
            http,
            base,
            auth,
            backoff: Backoff::new(BASE_DELAY, MAX_DELAY, true),
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

    fn url(&self, route: Route<'_>) -> url::Url {
        self.url_of(&route.segments())
    }

    fn url_of(&self, segments: &[&str]) -> url::Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(routes::PREFIX.split('/').filter(|s| !s.is_empty()));
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
                req.multipart(reqwest::multipart::Form::new().part(query::UPLOAD_FILE, part))
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
    fn invalid(&self, method: &str, route: Route<'_>, what: &str) -> ApiError {
        ApiError::Decode {
            method: method.into(),
            url: crate::redact::display_url(self.url(route).as_str()),
            message: format!("{what}: this does not look like a KFP API (v2beta1) answer"),
        }
    }

    async fn get<T: DeserializeOwned>(
        &self,
        route: Route<'_>,
        query: &[(&str, &str)],
    ) -> Result<T, ApiError> {
        self.get_at(self.url(route), query).await
    }

    async fn get_at<T: DeserializeOwned>(
        &self,
        url: url::Url,
        query: &[(&str, &str)],
    ) -> Result<T, ApiError> {
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
        self.get_at(self.url_of(segments), query).await
    }

    /// Every page of a list: `take` keeps a page's items and returns its `next_page_token`.
    async fn all_pages<L: DeserializeOwned>(
        &self,
        route: Route<'_>,
        query: &[(&str, &str)],
        mut take: impl FnMut(L) -> Result<String, ApiError>,
    ) -> Result<(), ApiError> {
        let mut token = String::new();
        loop {
            let mut q = query.to_vec();
            if !token.is_empty() {
                q.push((query::PAGE_TOKEN, token.as_str()));
            }
            let list: L = self.get(route, &q).await?;
            token = take(list)?;
            if token.is_empty() {
                return Ok(());
            }
        }
    }

    /// `POST` a JSON body, sent once (creations are not idempotent: a lost answer is found by the
    /// caller's next lookup).
    async fn post_json<T: DeserializeOwned>(
        &self,
        route: Route<'_>,
        body: &impl serde::Serialize,
    ) -> Result<T, ApiError> {
        let url = self.url(route);
        let body = serde_json::to_value(body).unwrap_or(Value::Null);
        let bytes = self
            .send_once(
                &Method::POST,
                &url,
                &[],
                &Body::Json(&body),
                self.request_timeout,
            )
            .await?;
        Self::decode("POST", &url, &bytes)
    }

    /// `method` without a body, retried (deletes and actions are idempotent); the answer ignored.
    async fn call(&self, method: Method, route: Route<'_>) -> Result<(), ApiError> {
        self.send_retrying(method, self.url(route), &[], Body::None)
            .await
            .map(|_| ())
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
