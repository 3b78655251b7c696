//! The web page: pipelines and versions newest first; with a token, in a browser.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_page_lists_pipelines_and_versions_newest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&db_in(&dir), &[]);
    let c = http();
    let (_, p) = upload(
        &c,
        &server.url,
        &[("name", "page-<test>"), ("description", "a & b")],
    )
    .await;
    let pid = p["pipeline_id"].as_str().expect("id").to_string();
    for name in ["older", "newer"] {
        let resp = c
            .post(format!("{}{API}/pipelines/upload_version", server.url))
            .query(&[("pipelineid", pid.as_str()), ("name", name)])
            .multipart(file_form("p.yaml", compiled_spec()))
            .send()
            .await
            .expect("upload");
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let resp = c
        .get(format!("{}/", server.url))
        .send()
        .await
        .expect("page");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/html")
    );
    let html = resp.text().await.expect("html");
    assert!(
        html.contains("page-&lt;test&gt;") && html.contains("a &amp; b"),
        "escaped"
    );
    assert!(!html.contains("<test>"), "never raw user text");
    let newer = html.find("<code>newer</code>").expect("newer listed");
    let older = html.find("<code>older</code>").expect("older listed");
    assert!(newer < older, "newest version first");
    let link = html
        .split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .find(|h| h.starts_with("/ui/pipelines/"))
        .expect("a spec link")
        .to_string();
    let spec_page = c
        .get(format!("{}{link}", server.url))
        .send()
        .await
        .expect("spec page");
    assert_eq!(spec_page.status(), StatusCode::OK);
    let spec_html = spec_page.text().await.expect("spec html");
    assert!(
        spec_html.contains("pipelineInfo") && spec_html.contains("load-test"),
        "spec shown"
    );
}

/// A spec the server accepts, written by hand (the page test needs no compiler).
const MINI_SPEC: &str = "components:
  comp-echo:
    executorLabel: exec-echo
deploymentSpec:
  executors:
    exec-echo:
      container:
        image: alpine:3.20
        command: [echo, hi]
pipelineInfo:
  name: qa-page
root:
  dag:
    tasks:
      echo:
        componentRef:
          name: comp-echo
        taskInfo:
          name: echo
schemaVersion: 2.1.0
sdkVersion: kfp-2.17.0
";

/// With `--token`, a person opens the page once as `/?token=…`; a session cookie (not the token)
/// then opens the page, never the API; names are escaped and the page runs no script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_page_opens_in_a_browser_with_token_once_and_escapes_names() {
    use reqwest::StatusCode;
    let dir = tempfile::tempdir().expect("tempdir");
    let token = "tk_SERVEPAGESECRET12345";
    let server = Server::start(&dir.path().join("r.db"), &["--token", token]);
    let browser = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let form = reqwest::multipart::Form::new().part(
        "uploadfile",
        reqwest::multipart::Part::bytes(MINI_SPEC.as_bytes().to_vec()).file_name("p.yaml"),
    );
    let up = browser
        .post(format!("{}/apis/v2beta1/pipelines/upload", server.url))
        .query(&[
            ("name", "<script>alert(1)</script>"),
            ("display_name", "<img src=x onerror=alert(1)>"),
        ])
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(up.status(), StatusCode::OK);

    // No token: a page that says how to get in, without the token.
    let resp = get_page(&browser, format!("{}/", server.url), None).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let html = resp.text().await.expect("body");
    assert!(html.contains("?token=") && !html.contains(token), "{html}");
    // A wrong token: refused.
    let resp = get_page(&browser, format!("{}/?token=wrong", server.url), None).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // The right one: a redirect that drops it from the address and sets a session cookie.
    let resp = get_page(&browser, format!("{}/?token={token}", server.url), None).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/");
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(token),
        "the cookie is not the token: {cookie}"
    );
    let session = cookie.split(';').next().expect("name=value").to_string();
    let port = server.url.rsplit(':').next().expect("port");
    assert!(
        session.starts_with(&format!("kfp_ci_serve_session_{port}=")),
        "one cookie per server (browsers share cookies across ports): {session}"
    );

    let resp = get_page(&browser, format!("{}/", server.url), Some(&session)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = resp.text().await.expect("html");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(
        !html.contains("<script") && !html.contains("<img"),
        "{html}"
    );

    // The cookie opens the page, never the API: API auth stays bearer-only.
    for path in ["/apis/v2beta1/pipelines", "/apis/v2beta1/healthz"] {
        let resp = get_page(&browser, format!("{}{path}", server.url), Some(&session)).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    // A forged cookie is refused.
    let forged = format!("{}=forged", session.split('=').next().expect("name"));
    let resp = get_page(&browser, format!("{}/", server.url), Some(&forged)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

/// `GET url` as a browser sends it, with a session cookie when given.
async fn get_page(
    browser: &reqwest::Client,
    url: String,
    cookie: Option<&str>,
) -> reqwest::Response {
    let mut req = browser.get(url);
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    req.send().await.expect("get")
}
