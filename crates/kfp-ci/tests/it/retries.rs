//! Retries as docs/deploy.md states them: a request is sent at most 5 times, lookups included,
//! whatever fails; an upload that landed before its answer was lost is not uploaded again; a 400
//! is not retried.

use crate::deploy::{
    HELLO, TAG, faulty_one, hello_and_goodbye, json, json_run, kfp_client_view, repo_and_server,
    text,
};
use crate::faulty::{Fault, Faulty, Rule};

const BUSY: &str = r#"{"code":14,"message":"busy"}"#;

/// A lookup that keeps failing: 5 attempts, then the pipeline fails with the server's message.
#[test]
fn a_failing_lookup_is_sent_five_times() {
    let (ctx, server) = repo_and_server(&[("hello_pipeline.py", HELLO)]);
    let proxy = faulty_one(
        &server.url,
        "GET",
        "/names/hello_pipeline",
        1000,
        Fault::Reply(503, BUSY),
    );
    let out = json_run(&ctx, "deploy", &proxy.url, &["--version-tag", TAG], 1);
    assert_eq!(
        proxy.count("GET", "/names/hello_pipeline"),
        5,
        "{:#?}",
        proxy.log()
    );
    assert!(
        json(&out)["pipelines"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("HTTP 503: busy")),
        "{}",
        json(&out)
    );
}

/// A create that keeps failing: 5 attempts, and the name is not looked up after each of them
/// (the plan's lookup and one after the last attempt, which may have landed).
#[test]
fn a_failing_create_is_sent_five_times_and_looked_up_once_after() {
    let (ctx, server) = repo_and_server(&[("hello_pipeline.py", HELLO)]);
    let proxy = faulty_one(
        &server.url,
        "POST",
        "/apis/v2beta1/pipelines",
        1000,
        Fault::Reply(503, BUSY),
    );
    json_run(&ctx, "deploy", &proxy.url, &["--version-tag", TAG], 1);
    assert_eq!(
        proxy.count("POST", "/apis/v2beta1/pipelines"),
        5,
        "{:#?}",
        proxy.log()
    );
    assert_eq!(
        proxy.count("GET", "/names/hello_pipeline"),
        2,
        "{:#?}",
        proxy.log()
    );
}

#[test]
fn server_errors_are_retried_and_a_landed_upload_is_not_duplicated() {
    let (ctx, server) = hello_and_goodbye();
    let proxy = Faulty::start(
        &server.url,
        vec![
            // Lookups: two 503s, then through.
            Rule {
                method: "GET",
                path_suffix: "/names/hello_pipeline",
                times: 2,
                fault: Fault::Reply(503, r#"{"code":14,"message":"upstream connect error"}"#),
            },
            // The first upload lands but its answer is lost; the second gets a 502.
            Rule {
                method: "POST",
                path_suffix: "/upload_version",
                times: 1,
                fault: Fault::ForwardThenReply(503),
            },
            Rule {
                method: "POST",
                path_suffix: "/upload_version",
                times: 1,
                fault: Fault::Reply(502, "bad gateway"),
            },
        ],
    );
    let out = json_run(&ctx, "deploy", &proxy.url, &["--version-tag", TAG], 0);
    let report = json(&out);
    assert_eq!(report["counts"]["created"], 2, "{report:#}");
    assert_eq!(proxy.count("GET", "/names/hello_pipeline"), 3);
    // Exactly one version each: the landed upload was found, not sent again under another name.
    let view = kfp_client_view(&server.url, None);
    for (name, p) in view.as_object().expect("object") {
        assert_eq!(p["versions"], serde_json::json!([TAG]), "{name}: {view:#}");
    }
}

#[test]
fn bad_request_is_not_retried_and_the_servers_message_is_shown() {
    let (ctx, server) = repo_and_server(&[("hello_pipeline.py", HELLO)]);
    let proxy = Faulty::start(
        &server.url,
        vec![Rule {
            method: "POST",
            path_suffix: "/upload_version",
            times: 100,
            fault: Fault::Reply(
                400,
                r#"{"error_message":"Failed to create a pipeline version","error_details":"injected"}"#,
            ),
        }],
    );
    let out = json_run(&ctx, "deploy", &proxy.url, &["--version-tag", TAG], 1);
    assert_eq!(
        proxy.count("POST", "/upload_version"),
        1,
        "{:#?}",
        proxy.log()
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("HTTP 400: Failed to create a pipeline version"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: KFP gives this generic 400"),
        "{stderr}"
    );
    // The empty pipeline created for the failed first version was removed again.
    assert_eq!(proxy.count("DELETE", ""), 1, "{:#?}", proxy.log());
    let view = kfp_client_view(&server.url, None);
    assert_eq!(view, serde_json::json!({}));
}
