//! Retries as docs/deploy.md states them: a request is sent at most 5 times, lookups included,
//! whatever fails.

use crate::deploy::{HELLO, TAG, faulty_one, json, json_run, repo_and_server};
use crate::faulty::Fault;

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
