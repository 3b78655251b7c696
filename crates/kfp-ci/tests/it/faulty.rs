//! A failure-injecting HTTP proxy on 127.0.0.1:0 in front of a real `kfp-ci serve`: requests
//! matching a rule get the rule's fault a given number of times, everything else is forwarded.
//! Every request is logged (method, path, status) so tests can count retries.

use std::sync::{Arc, Mutex};

use axum::Router;
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
    /// Hold matching requests until this many have arrived (or 10 s passed), then forward them
    /// together: two runs that both planned the same change really race.
    Barrier(usize),
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
    pub path: String,
    pub status: u16,
}

struct Shared {
    upstream: String,
    http: reqwest::Client,
    rules: Mutex<Vec<Rule>>,
    log: Mutex<Vec<Logged>>,
    arrived: Mutex<usize>,
    barrier: tokio::sync::Notify,
}

pub struct Faulty {
    pub url: String,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Faulty {
    pub fn start(upstream: &str, rules: Vec<Rule>) -> Faulty {
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            rules: Mutex::new(rules),
            log: Mutex::new(Vec::new()),
            arrived: Mutex::new(0),
            barrier: tokio::sync::Notify::new(),
        });
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                addr_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                let app = Router::new().fallback(handle).with_state(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = shutdown_rx.await;
                    })
                    .await
                    .expect("serve");
            });
        });
        let addr = addr_rx.recv().expect("proxy address");
        Faulty {
            url: format!("http://{addr}"),
            shared,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    pub fn log(&self) -> Vec<Logged> {
        self.shared.log.lock().expect("log").clone()
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
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| path.clone());
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
        Some(Fault::Reply(status, body)) => reply(status, body),
        Some(Fault::Barrier(n)) => {
            let target = {
                let mut arrived = shared.arrived.lock().expect("arrived");
                *arrived += 1;
                arrived.div_ceil(n) * n
            };
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let notified = shared.barrier.notified();
                if *shared.arrived.lock().expect("arrived") >= target {
                    shared.barrier.notify_waiters();
                    break;
                }
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    break;
                }
            }
            forward(&shared, &method, &path_and_query, &headers, body)
                .await
                .unwrap_or_else(|e| reply(502, &format!("proxy: {e}")))
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
    });
    response
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
