//! Servers that are not what they seem: a server that answers `200 {}` to everything, one that
//! accepts connections and never answers, an authentication proxy's login page, `https://` to a
//! plain-HTTP port. Each is a clear error naming the endpoint, in bounded time.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};

use crate::common::TestContext;
use crate::common::loopback::Loopback;
use crate::deploy::{HELLO, TAG, assert_exit, json, repo_and_server, run, text};
use crate::faulty::{Fault, Faulty, Rule};

/// A loopback HTTP server answering every request with `respond(request)`; stops when dropped.
pub(crate) struct Stub {
    pub url: String,
    _server: Loopback,
}

impl Stub {
    pub(crate) fn start(respond: fn(&Request) -> Response) -> Stub {
        let server = Loopback::serve(
            "stub",
            Router::new().fallback(move |req: Request| async move { respond(&req) }),
        );
        Stub {
            url: format!("http://{}", server.addr),
            _server: server,
        }
    }
}

/// A TCP listener that accepts connections and never sends a byte.
struct Silent {
    url: String,
    _listener: std::net::TcpListener,
    accepted: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Silent {
    fn start() -> Silent {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let held = accepted.clone();
        let incoming = listener.try_clone().expect("clone listener");
        std::thread::spawn(move || {
            for stream in incoming.incoming().flatten() {
                held.lock().expect("held").push(stream);
            }
        });
        Silent {
            url,
            _listener: listener,
            accepted,
        }
    }

    fn connections(&self) -> usize {
        self.accepted.lock().expect("accepted").len()
    }
}

#[test]
fn a_server_answering_empty_json_to_everything_is_not_taken_for_kfp() {
    let ctx = TestContext::new();
    ctx.write("hello_pipeline.py", HELLO);
    let stub =
        Stub::start(|_| ([("content-type", "application/json")], "{}".to_string()).into_response());
    let out = run(
        &ctx,
        &["deploy", "--endpoint", &stub.url, "--version-tag", TAG],
    );
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("{}/apis/v2beta1/healthz", stub.url)),
        "{stderr}"
    );
    assert!(stderr.contains("does not look like a KFP API"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
}

#[test]
fn answers_without_ids_or_unlisted_versions_fail_the_pipeline_naming_the_endpoint() {
    let (ctx, server) = repo_and_server(&[("hello_pipeline.py", HELLO)]);
    // hello exists on the server; goodbye is new.
    let out = run(
        &ctx,
        &["deploy", "--endpoint", &server.url, "--version-tag", TAG],
    );
    assert_exit(&out, 0);
    ctx.write(
        "hello_pipeline.py",
        &HELLO.replace("Says hello", "Says hello again"),
    );
    ctx.write("goodbye_pipeline.py", crate::deploy::GOODBYE);
    let proxy = Faulty::start(
        &server.url,
        vec![
            // A create answered without an id.
            Rule {
                method: "POST",
                path_suffix: "/apis/v2beta1/pipelines",
                times: 100,
                fault: Fault::Reply(200, "{}"),
            },
            // An upload answered with an id the server does not know.
            Rule {
                method: "POST",
                path_suffix: "/upload_version",
                times: 100,
                fault: Fault::Reply(
                    200,
                    r#"{"pipeline_id":"p","pipeline_version_id":"made-up-id","name":"v"}"#,
                ),
            },
        ],
    );
    let out = run(
        &ctx,
        &[
            "deploy",
            "--endpoint",
            &proxy.url,
            "--version-tag",
            "v20260101-130000",
            "--output",
            "json",
        ],
    );
    assert_exit(&out, 1);
    let report = json(&out);
    assert_eq!(report["counts"]["failed"], 2, "{report:#}");
    let errors = report["pipelines"]
        .as_array()
        .expect("pipelines")
        .iter()
        .map(|p| {
            p["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        errors.contains(&format!("POST {}/apis/v2beta1/pipelines", proxy.url))
            && errors.contains("without a pipeline_id"),
        "{errors}"
    );
    assert!(
        errors.contains("made-up-id") && errors.contains("does not return it"),
        "{errors}"
    );
    // Nothing pretends to have an id.
    for p in report["pipelines"].as_array().expect("pipelines") {
        assert!(p["version_id"].is_null(), "{p:#}");
    }
}

#[test]
fn a_server_that_never_answers_is_given_up_after_the_request_timeout() {
    let ctx = TestContext::new();
    ctx.write("hello_pipeline.py", HELLO);
    let silent = Silent::start();
    let started = Instant::now();
    let out = ctx
        .cmd()
        .args([
            "deploy",
            "--endpoint",
            &silent.url,
            "--request-timeout",
            "1",
        ])
        .env("KFP_CI_TEST_PROGRESS_MS", "150")
        .output()
        .expect("run");
    let took = started.elapsed();
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&silent.url), "{stderr}");
    assert!(
        stderr.contains("no answer within 1") && stderr.contains("--request-timeout 1s"),
        "{stderr}"
    );
    assert!(
        stderr.contains("still waiting for an answer to GET"),
        "{stderr}"
    );
    // One attempt: a request that got no answer is not sent again.
    assert_eq!(silent.connections(), 1, "{stderr}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn an_upload_that_never_answers_fails_that_pipeline_within_the_configured_timeout() {
    let (ctx, server) = repo_and_server(&[
        ("hello_pipeline.py", HELLO),
        ("goodbye_pipeline.py", crate::deploy::GOODBYE),
    ]);
    // Per target, from the configuration file.
    ctx.write(
        "kfp-ci.toml",
        "request_timeout = 600\n[targets.slow]\nrequest_timeout = 1\n",
    );
    let proxy = Faulty::start(
        &server.url,
        vec![Rule {
            method: "POST",
            path_suffix: "/upload_version",
            times: 1,
            fault: Fault::Hang { forward: false },
        }],
    );
    let started = Instant::now();
    let out = run(
        &ctx,
        &[
            "deploy",
            "--target",
            "slow",
            "--endpoint",
            &proxy.url,
            "--version-tag",
            TAG,
            "--upload-jobs",
            "1",
            "--output",
            "json",
        ],
    );
    let took = started.elapsed();
    assert_exit(&out, 1);
    let report = json(&out);
    assert_eq!(report["counts"]["failed"], 1, "{report:#}");
    assert_eq!(report["counts"]["created"], 1, "{report:#}");
    let failed = report["pipelines"]
        .as_array()
        .expect("pipelines")
        .iter()
        .find(|p| p["status"] == "failed")
        .expect("a failed pipeline");
    let message = failed["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("no answer within 1"), "{message}");
    // The hung upload was sent once, then the other pipeline went through.
    assert_eq!(
        proxy.count("POST", "/upload_version"),
        2,
        "{:#?}",
        proxy.log()
    );
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

#[test]
fn a_login_redirect_is_reported_as_a_login_page_without_the_html() {
    let ctx = TestContext::new();
    ctx.write("hello_pipeline.py", HELLO);
    // oauth2-proxy / Dex: every API request is redirected to the login page, which is HTML.
    let stub = Stub::start(|req| {
        if req.uri().path().starts_with("/dex/") {
            (
                [("content-type", "text/html; charset=utf-8")],
                "<!DOCTYPE html><html><body><form>Log in with Dex</form></body></html>",
            )
                .into_response()
        } else {
            (
                axum::http::StatusCode::FOUND,
                [(
                    "location",
                    "/dex/auth?client_id=kubeflow-oidc&state=state-value-123456",
                )],
            )
                .into_response()
        }
    });
    let out = run(&ctx, &["deploy", "--endpoint", &stub.url]);
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("login page"), "{stderr}");
    assert!(stderr.contains("KFP_CI_COOKIE"), "{stderr}");
    assert!(stderr.contains("cookie_env"), "{stderr}");
    assert!(stderr.contains("KF_PIPELINES_TOKEN"), "{stderr}");
    assert!(
        stderr.contains(&format!("{}/dex/auth", stub.url)),
        "{stderr}"
    );
    assert!(
        !stderr.contains("<html") && !stderr.contains("DOCTYPE"),
        "{stderr}"
    );
    assert!(!stderr.contains("state-value-123456"), "{stderr}");
    // doctor says the same on its health check line.
    let out = run(&ctx, &["doctor", "--endpoint", &stub.url]);
    assert_exit(&out, 1);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("healthz: GET"), "{stderr}");
    assert!(
        stderr.contains("login page") && stderr.contains("KFP_CI_COOKIE"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("<html") && !stderr.contains("state-value-123456"),
        "{stderr}"
    );

    // An HTML page answered directly (a proxy that serves its sign-in page in place), with a
    // cookie configured: the cookie was sent and not accepted.
    let stub = Stub::start(|_| {
        (
            [("content-type", "text/html")],
            "<html><body>Sign in</body></html>",
        )
            .into_response()
    });
    let out = ctx
        .cmd()
        .args(["plan", "--endpoint", &stub.url])
        .env("KFP_CI_COOKIE", "authservice_session=expired-session-value")
        .output()
        .expect("run");
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("login page"), "{stderr}");
    assert!(
        stderr.contains("the cookie in KFP_CI_COOKIE was sent and not accepted"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("<html") && !stderr.contains("expired-session-value"),
        "{stderr}"
    );
}

#[test]
fn https_to_a_plain_http_port_says_use_http() {
    let (ctx, server) = repo_and_server(&[("hello_pipeline.py", HELLO)]);
    let https = server.url.replace("http://", "https://");
    let out = run(&ctx, &["deploy", "--endpoint", &https]);
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the server answered plain HTTP; use http://"),
        "{stderr}"
    );
    assert!(stderr.contains(&https), "{stderr}");
    let out = run(&ctx, &["doctor", "--endpoint", &https]);
    assert_exit(&out, 1);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the server answered plain HTTP; use http://"),
        "{stderr}"
    );
}
