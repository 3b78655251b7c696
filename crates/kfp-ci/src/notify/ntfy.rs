//! Publishing to ntfy: one JSON `POST` to the server root, retried briefly on 429, 5xx and
//! connection failures; a refusal explained with what the server said and what to do.

use std::fmt::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;

use super::{Message, NtfyAuth, NtfyTarget, Sent};
use crate::http::{self, Attempt, Backoff, Transport};
use crate::redact::redact;
use crate::report::first_line;
use crate::text::clip;

const ATTEMPTS: u32 = 3;

#[derive(Debug, Deserialize)]
struct NtfyOk {
    #[serde(default)]
    id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NtfyError {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    link: Option<String>,
}

/// POST the message to the server root, retrying 429, 5xx and connection failures briefly.
pub async fn publish(target: &NtfyTarget, message: &Message) -> Result<Sent> {
    let client = http::client(http::Options {
        connect_timeout: Some(Duration::from_secs(5)),
        timeout: Some(Duration::from_secs(15)),
        ..http::Options::default()
    })?;
    let body = serde_json::to_vec(message).context("cannot encode the notification")?;
    // ntfy's 429 carries no Retry-After; its limiter refills one request per 5 s: wait 5 s,
    // then 10 s.
    let backoff = Backoff::new(Duration::from_millis(2_500), Duration::from_secs(40), false);
    http::retry(ATTEMPTS, backoff, |attempt| {
        let mut request = client
            .post(&target.base)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone());
        request = match &target.auth {
            Some(NtfyAuth::Token(token)) => request.header(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {}", token.expose()),
            ),
            Some(NtfyAuth::Basic { user, password }) => {
                request.basic_auth(user, Some(password.expose()))
            }
            None => request,
        };
        async move {
            let response = match request.send().await {
                Ok(r) => r,
                Err(err) => {
                    let t = Transport::of(&err, &target.base);
                    let what = if t.connect {
                        "cannot connect to"
                    } else if t.timeout {
                        "no answer in time from"
                    } else {
                        "request failed to"
                    };
                    return Attempt::Retry(anyhow::anyhow!(
                        "{what} ntfy at {} ({attempt} attempts): {}",
                        target.base,
                        t.chain
                    ));
                }
            };
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            if status.is_success() {
                let id = serde_json::from_str::<NtfyOk>(text.trim())
                    .ok()
                    .and_then(|ok| ok.id);
                return Attempt::Done(Sent::Sent { id });
            }
            let err = explain(target, status.as_u16(), &text, attempt);
            if status.as_u16() == 429 || status.is_server_error() {
                Attempt::Retry(err)
            } else {
                Attempt::Fail(err)
            }
        }
    })
    .await
}

/// A configuration error or server answer, in words: what the server said and what to do.
fn explain(target: &NtfyTarget, status: u16, body: &str, attempts: u32) -> anyhow::Error {
    let parsed = serde_json::from_str::<NtfyError>(body.trim()).ok();
    let said = match &parsed {
        Some(NtfyError {
            code,
            error: Some(error),
            link,
        }) => {
            let mut s = format!("HTTP {status}");
            if let Some(code) = code {
                let _ = write!(s, " code {code}");
            }
            let _ = write!(s, ": {error}");
            if let Some(link) = link {
                let _ = write!(s, " (see {link})");
            }
            s
        }
        _ => {
            let body = body.trim();
            if body.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {}", clip(first_line(body), 300))
            }
        }
    };
    let said = redact(&said);
    let base = &target.base;
    let topic = &target.topic;
    let hint = match status {
        401 => match &target.auth {
            Some(NtfyAuth::Token(_)) => format!(
                "the token was not accepted: {} must be a current access token (`tk_` and 29 more characters, from `ntfy token add` or the web app's account page)",
                target.token_env
            ),
            Some(NtfyAuth::Basic { user, .. }) => format!(
                "user {user:?} and its password were not accepted: check notify.ntfy.user / NTFY_USER and {}",
                target.password_env
            ),
            None => format!(
                "this server needs credentials: set {} (an access token) or a user and {}",
                target.token_env, target.password_env
            ),
        },
        403 => format!(
            "these credentials may not publish to topic {topic:?}: grant write access (`ntfy access <user> {topic} write-only`) or use a topic this user can write to"
        ),
        429 => format!(
            "rate limited after {attempts} attempts: ntfy limits requests per client (ntfy.sh: 250 messages a day on the free plan; self-hosted: visitor-request-limit-burst / -replenish); an authenticated user gets its own limits"
        ),
        413 => "the notification is larger than the server accepts".to_string(),
        404 => format!(
            "{base} does not look like an ntfy server root: give the topic URL, e.g. https://ntfy.example/{topic}"
        ),
        400 => "ntfy rejected the request as invalid".to_string(),
        s if s >= 500 => format!("ntfy had a server error, {attempts} attempts"),
        _ => "unexpected answer".to_string(),
    };
    anyhow::anyhow!("ntfy at {base} refused the notification for topic {topic:?} ({said}): {hint}")
}
