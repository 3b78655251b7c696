//! The client against loopback servers that answer as told: retries, auth, uploads, redirects.

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
    c.backoff = Backoff::none();
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
        jitter: true,
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
