//! A failure-injecting HTTP proxy on 127.0.0.1:0 in front of a real `kfp-ci serve`: requests
//! matching a rule get the rule's fault a given number of times, everything else is forwarded.
//! Every request is logged (method, path, status) so tests can count retries.

use std::sync::{Arc, Mutex};

use axum::Router;

use crate::common::loopback::Loopback;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and body without forwarding.
    Reply(u16, &'static str),
    /// Forward (the request lands upstream), then answer with this status: a lost answer.
    ForwardThenReply(u16),
    /// Hold matching requests until this many have arrived, then forward them together: two runs
    /// that both planned the same change really race. If they do not all arrive within
    /// [`BARRIER_TIMEOUT`], the waiting ones get a 504 naming the barrier and the test fails
    /// when the proxy is dropped: a race that did not happen is not a pass.
    Barrier(usize),
    /// Never answer (until the proxy shuts down): the client hangs mid-request and can be killed.
    /// With `forward` the request lands upstream first (a lost answer), else it never arrives.
    Hang { forward: bool },
    /// Hold matching requests until [`Faulty::release`], then forward them.
    Hold,
}

#[derive(Debug, Clone)]
pub struct Rule {
    /// `GET`, `POST`, `DELETE`, or `*`.
    pub method: &'static str,
    /// Matches when the request path ends with this.
    pub path_suffix: &'static str,
    /// How many matching requests get the fault (then they pass through).
    pub times: usize,
    pub fault: Fault,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    pub method: String,
    /// The path as the client sent it (before any prefix is stripped).
    pub path: String,
    pub status: u16,
    /// Request headers as received (lower-case names), for auth assertions.
    pub headers: Vec<(String, String)>,
}

impl Logged {
    /// The value of a request header, if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Shared {
    upstream: String,
    /// A path prefix the proxy serves under (`/pipeline`, as the Kubeflow gateway): stripped
    /// before forwarding; anything outside it is a plain-text 404, as from a gateway.
    prefix: String,
    http: reqwest::Client,
    rules: Mutex<Vec<Rule>>,
    log: Mutex<Vec<Logged>>,
    arrived: Mutex<usize>,
    barrier: tokio::sync::Notify,
    /// Barriers that timed out, reported when the proxy is dropped.
    barrier_failures: Mutex<Vec<String>>,
    barrier_timeout: Mutex<std::time::Duration>,
    stop: tokio::sync::watch::Sender<bool>,
    released: tokio::sync::watch::Sender<bool>,
}

pub struct Faulty {
    pub url: String,
    shared: Arc<Shared>,
    server: Option<Loopback>,
}

impl Faulty {
    pub fn start(upstream: &str, rules: Vec<Rule>) -> Faulty {
        Faulty::start_with_prefix(upstream, "", rules)
    }

    /// Serve under a path prefix (`/pipeline`): `url` includes it, and it is stripped before
    /// forwarding, as the Kubeflow gateway does.
    pub fn start_with_prefix(upstream: &str, prefix: &str, rules: Vec<Rule>) -> Faulty {
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            prefix: prefix.trim_end_matches('/').to_string(),
            http: crate::common::http_client(),
            rules: Mutex::new(rules),
            log: Mutex::new(Vec::new()),
            arrived: Mutex::new(0),
            barrier: tokio::sync::Notify::new(),
            barrier_failures: Mutex::new(Vec::new()),
            barrier_timeout: Mutex::new(BARRIER_TIMEOUT),
            stop: tokio::sync::watch::Sender::new(false),
            released: tokio::sync::watch::Sender::new(false),
        });
        let server = Loopback::serve(
            "faulty proxy",
            Router::new().fallback(handle).with_state(shared.clone()),
        );
        Faulty {
            url: format!("http://{}{}", server.addr, shared.prefix),
            shared,
            server: Some(server),
        }
    }

    pub fn log(&self) -> Vec<Logged> {
        self.shared.log.lock().expect("log").clone()
    }

    /// How long a [`Fault::Barrier`] waits (default [`BARRIER_TIMEOUT`]).
    pub fn set_barrier_timeout(&self, timeout: std::time::Duration) {
        *self.shared.barrier_timeout.lock().expect("barrier timeout") = timeout;
    }

    /// Let requests held by [`Fault::Hold`] through.
    pub fn release(&self) {
        self.shared.released.send_replace(true);
    }

    /// Wait (up to 60 s) until `n` requests matching `method` and `suffix` have arrived (held
    /// and hung requests count on arrival).
    pub fn wait_for(&self, method: &str, suffix: &str, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while self.count(method, suffix) < n {
            assert!(
                std::time::Instant::now() < deadline,
                "waited 60 s for {n} × {method} …{suffix}: {:#?}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Requests whose method is `method` and whose path ends with `suffix`.
    pub fn count(&self, method: &str, suffix: &str) -> usize {
        self.log()
            .iter()
            .filter(|l| l.method == method && l.path.ends_with(suffix))
            .count()
    }
}

impl Drop for Faulty {
    fn drop(&mut self) {
        self.shared.stop.send_replace(true);
        drop(self.server.take());
        let failures = self
            .shared
            .barrier_failures
            .lock()
            .expect("barrier failures");
        // Not while the test is already failing: a second panic would abort the test binary.
        if !failures.is_empty() && !std::thread::panicking() {
            panic!(
                "a Fault::Barrier gave up, so the requests it should have raced did not:\n{}\nlog: {:#?}",
                failures.join("\n"),
                self.shared.log.lock().expect("log")
            );
        }
    }
}

/// How long a [`Fault::Barrier`] waits for all its requests (two runs' compile and plan on a
/// loaded machine come first).
pub const BARRIER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| path.clone());
    let logged_headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).to_string(),
            )
        })
        .collect();
    let outside_prefix = !shared.prefix.is_empty()
        && !path
            .strip_prefix(&shared.prefix)
            .is_some_and(|rest| rest.starts_with('/'));
    let path_and_query = path_and_query
        .strip_prefix(&shared.prefix)
        .unwrap_or(&path_and_query)
        .to_string();
    let fault = {
        let mut rules = shared.rules.lock().expect("rules");
        rules
            .iter_mut()
            .find(|r| {
                r.times > 0
                    && (r.method == "*" || r.method == method.as_str())
                    && path.ends_with(r.path_suffix)
            })
            .map(|r| {
                r.times -= 1;
                r.fault.clone()
            })
    };
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 64 << 20)
        .await
        .unwrap_or_default();
    let response = match fault {
        _ if outside_prefix => (StatusCode::NOT_FOUND, "404 page not found\n").into_response(),
        Some(Fault::Reply(status, body)) => reply(status, body),
        Some(Fault::Hold) => {
            arrived(&shared, &method, &path, &logged_headers);
            let mut released = shared.released.subscribe();
            let mut stop = shared.stop.subscribe();
            tokio::select! {
                _ = released.wait_for(|r| *r) => {}
                _ = stop.wait_for(|s| *s) => return reply(502, "proxy shut down"),
            }
            let response = forward(&shared, &method, &path_and_query, &headers, body)
                .await
                .unwrap_or_else(|e| reply(502, &format!("proxy: {e}")));
            if let Some(l) = shared
                .log
                .lock()
                .expect("log")
                .iter_mut()
                .rev()
                .find(|l| l.status == 0 && l.path == path)
            {
                l.status = response.status().as_u16();
            }
            return response;
        }
        Some(Fault::Hang { forward: send }) => {
            if send {
                let _ = forward(&shared, &method, &path_and_query, &headers, body).await;
            }
            arrived(&shared, &method, &path, &logged_headers);
            // Released when the proxy is dropped (graceful shutdown waits for handlers).
            let mut stop = shared.stop.subscribe();
            let _ = stop.wait_for(|stopped| *stopped).await;
            return reply(502, "proxy shut down");
        }
        Some(Fault::Barrier(n)) => {
            let target = {
                let mut arrived = shared.arrived.lock().expect("arrived");
                *arrived += 1;
                arrived.div_ceil(n) * n
            };
            let timeout = *shared.barrier_timeout.lock().expect("barrier timeout");
            let deadline = tokio::time::Instant::now() + timeout;
            let mut met = false;
            while !met {
                let notified = shared.barrier.notified();
                if *shared.arrived.lock().expect("arrived") >= target {
                    shared.barrier.notify_waiters();
                    met = true;
                } else if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    break;
                }
            }
            if met {
                forward(&shared, &method, &path_and_query, &headers, body)
                    .await
                    .unwrap_or_else(|e| reply(502, &format!("proxy: {e}")))
            } else {
                let arrived = *shared.arrived.lock().expect("arrived");
                let message = format!(
                    "test proxy: Fault::Barrier({n}) on {method} {path} gave up after {timeout:?} with {arrived} of {target} requests arrived"
                );
                shared
                    .barrier_failures
                    .lock()
                    .expect("barrier failures")
                    .push(message.clone());
                reply(
                    504,
                    &serde_json::json!({ "code": 4, "message": message }).to_string(),
                )
            }
        }
        Some(Fault::ForwardThenReply(status)) => {
            let _ = forward(&shared, &method, &path_and_query, &headers, body).await;
            reply(status, r#"{"code":14,"message":"injected: answer lost"}"#)
        }
        None => forward(&shared, &method, &path_and_query, &headers, body)
            .await
            .unwrap_or_else(|e| reply(502, &format!("proxy: {e}"))),
    };
    shared.log.lock().expect("log").push(Logged {
        method: method.to_string(),
        path,
        status: response.status().as_u16(),
        headers: logged_headers,
    });
    response
}

/// Log a request that is held or hung (status 0 until answered), so tests can wait for it.
fn arrived(shared: &Shared, method: &Method, path: &str, headers: &[(String, String)]) {
    shared.log.lock().expect("log").push(Logged {
        method: method.to_string(),
        path: path.to_string(),
        status: 0,
        headers: headers.to_vec(),
    });
}

fn reply(status: u16, body: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn forward(
    shared: &Shared,
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, reqwest::Error> {
    let mut req = shared.http.request(
        reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap_or(reqwest::Method::GET),
        format!("{}{path_and_query}", shared.upstream),
    );
    for (name, value) in headers {
        if name != "host" && name != "content-length" {
            req = req.header(name.as_str(), value.as_bytes());
        }
    }
    let upstream = req.body(body.to_vec()).send().await?;
    let status = upstream.status().as_u16();
    let content_type = upstream
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let bytes = upstream.bytes().await?;
    Ok((
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        [("content-type", content_type)],
        Body::from(bytes),
    )
        .into_response())
}
