//! What went wrong talking to the KFP API, in words people can act on: the server's own message,
//! why no answer came, and a `hint:` for what they can fix themselves.

use std::time::Duration;

use kfp_api::wire::{RpcStatus, UploadError};
use reqwest::Method;
use serde_json::Value;

pub use crate::http::PLAIN_HTTP;
use crate::http::{Backoff, Failure, seconds};
use crate::redact::redact;
use crate::target::Auth;
use crate::text::truncate;

use super::CONNECT_TIMEOUT;

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

/// The KFP client's use of the shared backoff: a 429 or 503 may name its own delay.
impl Backoff {
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
        let retry_after = match err {
            ApiError::Status { retry_after, .. } => *retry_after,
            _ => None,
        };
        self.delay_or_retry_after(attempt, retry_after)
    }
}

/// A request without an answer, as an [`ApiError::Transport`]. `waited`: how long the request
/// waited; `limit`: the timeout it had.
pub(super) fn transport_error(
    method: &Method,
    url: &str,
    e: &reqwest::Error,
    waited: Duration,
    limit: Duration,
) -> ApiError {
    let t = crate::http::Transport::of(e, url);
    ApiError::Transport {
        method: method.to_string(),
        url: url.to_string(),
        reason: redact(&reason(&t.failure, waited, limit)),
        message: t.chain,
        timeout: t.timeout,
    }
}

/// "no answer within 30s (--request-timeout 30s)": what really happened, in seconds.
pub(super) fn out_of_time(waited: Duration, limit: Duration) -> String {
    format!(
        "no answer within {}s (--request-timeout {}s)",
        seconds(waited),
        seconds(limit)
    )
}

/// A transport failure in a few words.
fn reason(failure: &Failure, waited: Duration, limit: Duration) -> String {
    match failure {
        Failure::ConnectTimeout => format!(
            "timed out after {}s connecting",
            seconds(CONNECT_TIMEOUT.min(limit))
        ),
        Failure::Timeout => out_of_time(waited, limit),
        Failure::PlainHttp => PLAIN_HTTP.into(),
        Failure::Dns => "could not resolve host".into(),
        Failure::Certificate(detail) => format!("TLS: {detail}"),
        Failure::Tls(innermost) => format!("TLS handshake failed: {innermost}"),
        Failure::Refused => "connection refused".into(),
        Failure::Reset => "connection reset".into(),
        Failure::Other(text) => text.clone(),
    }
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
    use std::time::Duration;

    use crate::http::classify;

    #[test]
    fn transport_failures_read_as_a_few_words() {
        let words = |chain: &str, innermost: &str, timeout: bool, connect: bool| {
            super::reason(
                &classify(chain, innermost, timeout, connect, false),
                Duration::from_millis(30_020),
                Duration::from_secs(30),
            )
        };
        let refused = "error sending request for url (http://127.0.0.1:1/apis/v2beta1/healthz): client error (Connect): tcp connect error: Connection refused (os error 111)";
        assert_eq!(
            words(refused, "Connection refused (os error 111)", false, true),
            "connection refused"
        );
        let dns = "error sending request for url (http://kfp.nowhere/apis/v2beta1/healthz): client error (Connect): dns error: failed to lookup address information: Name or service not known";
        assert_eq!(
            words(dns, "Name or service not known", false, true),
            "could not resolve host"
        );
        assert_eq!(
            words(
                "error sending request: operation timed out",
                "operation timed out",
                true,
                true
            ),
            "timed out after 10s connecting"
        );
        // What it really waited, and the limit that applied.
        assert_eq!(
            words(
                "error sending request: operation timed out",
                "operation timed out",
                true,
                false
            ),
            "no answer within 30s (--request-timeout 30s)"
        );
        assert_eq!(
            super::reason(
                &classify("x", "x", true, false, false),
                Duration::from_millis(1_540),
                Duration::from_secs(1)
            ),
            "no answer within 1.5s (--request-timeout 1s)"
        );
        let tls = "error sending request for url (https://127.0.0.1:9/): client error (Connect): invalid peer certificate: UnknownIssuer";
        assert_eq!(
            words(tls, "invalid peer certificate: UnknownIssuer", false, true),
            "TLS: invalid peer certificate: UnknownIssuer"
        );
        assert_eq!(
            words(
                "x: connection closed before message completed (os error 5)",
                "connection closed before message completed (os error 5)",
                false,
                false
            ),
            "connection closed before message completed"
        );
    }
}
