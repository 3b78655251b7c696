//! A loopback ntfy stand-in that validates publishes the way ntfy v2.13 does (see
//! shared notes, "ntfy publish contract"): the topic route regex and the JSON root route, exact
//! `Bearer` (case-sensitive, `tk_` + 29 characters), Basic, unpadded URL-safe `?auth=`, JSON field
//! types, priority range, action rules, the 4096-byte message rule (attachments not configured),
//! the 8192-byte JSON body limit, 200 with the message JSON. Every request is recorded; responses
//! can be scripted (429 without Retry-After, 500, 413, slow).

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use base64::Engine;
use serde_json::{Value, json};

use crate::common::loopback::Loopback;

const MESSAGE_LIMIT: usize = 4096;
const RESERVED: &[&str] = &[
    "docs", "static", "file", "app", "metrics", "account", "settings", "signup", "login", "v1",
];

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    /// The status the stand-in answered.
    pub status: u16,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("recorded body is JSON")
    }
}

/// What the server requires to publish.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    /// No auth configured: the Authorization header is ignored.
    #[default]
    Open,
    /// This token (sent as `Bearer`, or Basic with an empty user) may publish.
    Token(String),
    /// This user may publish.
    User(String, String),
}

/// A scripted answer that replaces the next publish's normal handling.
#[derive(Debug, Clone, Copy)]
pub enum Scripted {
    TooManyRequests,
    ServerError,
    TooLarge,
    /// Wait this long, then handle normally.
    Slow(Duration),
}

#[derive(Default)]
struct Inner {
    auth: Auth,
    /// Topics the authenticated principal may not write (403).
    read_only_topics: Vec<String>,
    script: VecDeque<Scripted>,
    requests: Vec<Recorded>,
}

pub struct NtfyServer {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    _server: Loopback,
}

impl NtfyServer {
    pub fn start(auth: Auth) -> NtfyServer {
        let inner = Arc::new(Mutex::new(Inner {
            auth,
            ..Inner::default()
        }));
        let app = Router::new()
            .route(
                "/v1/health",
                get(|| async { axum::Json(json!({"healthy": true})) }),
            )
            // Not ntfy: Gitea's version endpoint, for the run-link probe.
            .route(
                "/api/v1/version",
                get(|| async { axum::Json(json!({"version": "1.25.2"})) }),
            )
            .route("/", any(publish_root))
            .route("/{topic}", any(publish_topic))
            .fallback(not_found)
            .with_state(inner.clone());
        let server = Loopback::serve("ntfy", app);
        NtfyServer {
            url: server.url.clone(),
            inner,
            _server: server,
        }
    }

    /// Queue scripted answers for the next publishes.
    pub fn script(&self, answers: &[Scripted]) {
        self.inner
            .lock()
            .expect("lock")
            .script
            .extend(answers.iter().copied());
    }

    pub fn deny_write(&self, topic: &str) {
        self.inner
            .lock()
            .expect("lock")
            .read_only_topics
            .push(topic.to_string());
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.lock().expect("lock").requests.clone()
    }

    /// Publishes that were accepted (200).
    pub fn accepted(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.status == 200 && r.path != "/v1/health")
            .collect()
    }
}

/// A loopback URL nothing listens on (bound, then released).
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

fn error(status: u16, code: u32, text: &str) -> (u16, Value) {
    (status, json!({"code": code, "http": status, "error": text}))
}

async fn not_found() -> Response {
    let (status, body) = error(404, 40401, "page not found");
    respond(status, body)
}

fn respond(status: u16, body: Value) -> Response {
    // ntfy answers JSON plus a newline; a 429 carries no Retry-After.
    let text = format!("{body}\n");
    (
        StatusCode::from_u16(status).expect("status"),
        [("content-type", "application/json")],
        text,
    )
        .into_response()
}

type Params = std::collections::HashMap<String, String>;

async fn publish_root(
    State(state): State<Arc<Mutex<Inner>>>,
    method: Method,
    Query(query): Query<Params>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    handle(state, method, None, query, headers, uri, body).await
}

async fn publish_topic(
    State(state): State<Arc<Mutex<Inner>>>,
    method: Method,
    Path(topic): Path<String>,
    Query(query): Query<Params>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    handle(state, method, Some(topic), query, headers, uri, body).await
}

async fn handle(
    state: Arc<Mutex<Inner>>,
    method: Method,
    path_topic: Option<String>,
    query: Params,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut record = Recorded {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        authorization: header("authorization"),
        content_type: header("content-type"),
        body: body.to_vec(),
        status: 0,
    };
    let scripted = state.lock().expect("lock").script.pop_front();
    if let Some(Scripted::Slow(d)) = scripted {
        tokio::time::sleep(d).await;
    }
    let (status, answer) = match scripted {
        Some(Scripted::TooManyRequests) => error(429, 42901, "limit reached: too many requests"),
        Some(Scripted::ServerError) => error(500, 50001, "internal server error"),
        Some(Scripted::TooLarge) => error(413, 41303, "request entity too large"),
        _ => {
            let inner = state.lock().expect("lock");
            let auth = inner.auth.clone();
            let read_only = inner.read_only_topics.clone();
            drop(inner);
            validate(
                &method, path_topic, &query, &headers, &body, &auth, &read_only,
            )
        }
    };
    record.status = status;
    state.lock().expect("lock").requests.push(record);
    respond(status, answer)
}

fn validate(
    method: &Method,
    path_topic: Option<String>,
    query: &Params,
    headers: &HeaderMap,
    body: &[u8],
    auth: &Auth,
    read_only: &[String],
) -> (u16, Value) {
    if method != Method::POST && method != Method::PUT {
        return error(404, 40401, "page not found");
    }
    let topic_ok = |t: &str| {
        !t.is_empty()
            && t.len() <= 64
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    // Publish fields: from JSON at the root, from headers/query on a topic route.
    let fields: Value = match &path_topic {
        None => {
            if body.len() > 2 * MESSAGE_LIMIT {
                return error(413, 41303, "request entity too large");
            }
            let Ok(value) = serde_json::from_slice::<Value>(body) else {
                return error(
                    400,
                    40024,
                    "invalid request: request body must be valid JSON",
                );
            };
            if !json_types_ok(&value) {
                return error(
                    400,
                    40024,
                    "invalid request: request body must be valid JSON",
                );
            }
            value
        }
        Some(topic) => {
            if !topic_ok(topic) {
                return error(404, 40401, "page not found");
            }
            let get = |names: &[&str]| {
                names.iter().find_map(|n| {
                    headers
                        .get(*n)
                        .and_then(|v| v.to_str().ok())
                        .map(|s| s.trim().to_string())
                        .or_else(|| query.get(&n.to_ascii_lowercase()).cloned())
                })
            };
            let message = if body.is_empty() {
                get(&["X-Message", "Message", "m"]).unwrap_or_else(|| "triggered".into())
            } else {
                match std::str::from_utf8(body) {
                    Ok(s) => s.to_string(),
                    Err(_) => {
                        if body.len() < MESSAGE_LIMIT {
                            return error(
                                400,
                                40011,
                                "invalid request: message must be UTF-8 encoded",
                            );
                        }
                        String::from_utf8_lossy(body).into_owned()
                    }
                }
            };
            let priority = match get(&["X-Priority", "Priority", "prio", "p"]) {
                None => Value::Null,
                Some(p) => match p.as_str() {
                    "1" | "min" => json!(1),
                    "2" | "low" => json!(2),
                    "3" | "default" => json!(3),
                    "4" | "high" => json!(4),
                    "5" | "max" | "urgent" => json!(5),
                    _ => return error(400, 40007, "invalid request: priority invalid"),
                },
            };
            json!({
                "topic": topic,
                "message": message,
                "title": get(&["X-Title", "Title", "t"]),
                "priority": priority,
                "tags": get(&["X-Tags", "Tags", "tag", "ta"]).map(|t| t.split(',').map(|s| s.trim().to_string()).collect::<Vec<_>>()),
                "click": get(&["X-Click", "Click"]),
                "markdown": get(&["X-Markdown", "Markdown", "md"]).map(|v| matches!(v.as_str(), "1" | "yes" | "true"))
                    .or_else(|| headers.get("content-type").map(|c| c.as_bytes().starts_with(b"text/markdown"))),
            })
        }
    };
    let topic = fields.get("topic").and_then(Value::as_str).unwrap_or("");
    if path_topic.is_none() && !topic_ok(topic) {
        return error(400, 40009, "invalid request: topic invalid");
    }
    if RESERVED.contains(&topic) {
        return error(400, 40010, "invalid request: topic name is not allowed");
    }

    // Authentication: `?auth=` (unpadded URL-safe base64 of the header) overrides the header.
    let header_value = match query.get("auth") {
        Some(encoded) => match base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded) {
            Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
            Err(_) if !matches!(auth, Auth::Open) => {
                return error(500, 50001, "internal server error");
            }
            Err(_) => None,
        },
        None => headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    if !matches!(auth, Auth::Open) {
        let presented = match header_value.as_deref() {
            None => None,
            Some(h) if h.starts_with("Bearer ") => {
                Some(Credential::Token(h["Bearer ".len()..].trim().to_string()))
            }
            Some(h) if h.starts_with("Basic ") => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(h["Basic ".len()..].trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok());
                match decoded.as_deref().and_then(|d| d.split_once(':')) {
                    Some(("", token)) => Some(Credential::Token(token.to_string())),
                    Some((u, p)) => Some(Credential::User(u.to_string(), p.to_string())),
                    None => return error(401, 40101, "unauthorized"),
                }
            }
            // `bearer …` (lower case) falls through to Basic parsing in ntfy and fails.
            Some(h) if h.to_ascii_lowercase().starts_with("bearer ") => {
                return error(401, 40101, "unauthorized");
            }
            Some(_) => None,
        };
        let allowed = match (&presented, auth) {
            (None, _) => false,
            (Some(Credential::Token(t)), Auth::Token(expected)) => {
                if t.len() != 32 || !t.starts_with("tk_") || t != expected {
                    return error(401, 40101, "unauthorized");
                }
                true
            }
            (Some(Credential::User(u, p)), Auth::User(eu, ep)) => {
                if u != eu || p != ep {
                    return error(401, 40101, "unauthorized");
                }
                true
            }
            (Some(_), _) => return error(401, 40101, "unauthorized"),
        };
        if !allowed || read_only.iter().any(|t| t == topic) {
            return error(403, 40301, "forbidden");
        }
    }

    if let Some(p) = fields.get("priority").and_then(Value::as_i64)
        && !(0..=5).contains(&p)
    {
        return error(400, 40007, "invalid request: priority invalid");
    }
    if let Some(actions) = fields.get("actions").and_then(Value::as_array) {
        if actions.len() > 3 {
            return error(400, 40018, "invalid request: actions invalid");
        }
        for a in actions {
            let kind = a.get("action").and_then(Value::as_str).unwrap_or("");
            let label = a.get("label").and_then(Value::as_str).unwrap_or("");
            let url = a.get("url").and_then(Value::as_str).unwrap_or("");
            let ok = matches!(kind, "view" | "broadcast" | "http")
                && !label.is_empty()
                && (kind == "broadcast" || !url.is_empty());
            if !ok {
                return error(400, 40018, "invalid request: actions invalid");
            }
        }
    }
    let message = fields
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("triggered")
        .trim()
        .to_string();
    // A message of 4096 bytes or more becomes an attachment; attachments are not configured.
    if message.len() >= MESSAGE_LIMIT {
        return error(400, 40014, "invalid request: attachments not allowed");
    }
    let mut out = json!({
        "id": "hwQ2YpKdmg12",
        "time": 1735689600,
        "expires": 1735732800,
        "event": "message",
        "topic": topic,
        "message": if message.is_empty() { "triggered".to_string() } else { message },
    });
    for key in ["title", "priority", "tags", "click"] {
        if let Some(v) = fields.get(key).filter(|v| !v.is_null()) {
            out[key] = v.clone();
        }
    }
    if let Some(actions) = fields.get("actions").and_then(Value::as_array) {
        out["actions"] = actions
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let mut a = a.clone();
                a["id"] = json!(format!("act{i:07}"));
                if a.get("clear").is_none() {
                    a["clear"] = json!(false);
                }
                a
            })
            .collect();
    }
    if fields.get("markdown").and_then(Value::as_bool) == Some(true) {
        out["content_type"] = json!("text/markdown");
    }
    (200, out)
}

enum Credential {
    Token(String),
    User(String, String),
}

/// ntfy decodes the JSON publish into a typed struct: a wrong type is a 400 40024.
fn json_types_ok(v: &Value) -> bool {
    let Some(obj) = v.as_object() else {
        return false;
    };
    let is = |key: &str, check: fn(&Value) -> bool| obj.get(key).is_none_or(check);
    is("topic", Value::is_string)
        && is("message", Value::is_string)
        && is("title", Value::is_string)
        && is("priority", |p| p.is_i64() || p.is_u64())
        && is("tags", |t| {
            t.as_array().is_some_and(|a| a.iter().all(Value::is_string))
        })
        && is("click", Value::is_string)
        && is("markdown", Value::is_boolean)
        && is("actions", |a| {
            a.as_array().is_some_and(|a| a.iter().all(Value::is_object))
        })
        && is("icon", Value::is_string)
        && is("attach", Value::is_string)
        && is("filename", Value::is_string)
        && is("email", Value::is_string)
        && is("call", Value::is_string)
        && is("delay", Value::is_string)
        && is("cache", Value::is_string)
        && is("firebase", Value::is_string)
}
