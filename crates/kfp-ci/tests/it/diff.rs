//! `kfp-ci diff`: two variants of a real pipeline compiled by the real kfp SDK, compared with what
//! `kfp-ci serve` holds.

use serde_json::Value;

use crate::common::Server;
use crate::deploy::{assert_exit, repo_and_server, run, text};

pub(crate) const VARIANT_A: &str = include_str!("../fixtures/diff/review_demo_a.py");
pub(crate) const VARIANT_B: &str = include_str!("../fixtures/diff/review_demo_b.py");
pub(crate) const FILE: &str = "pipelines/review_demo_pipeline.py";

pub(crate) fn deploy(ctx: &crate::common::TestContext, server: &Server, tag: &str) {
    let out = run(
        ctx,
        &["deploy", "--endpoint", &server.url, "--version-tag", tag],
    );
    assert_exit(&out, 0);
}

#[test]
fn diff_names_the_changes_against_the_newest_and_a_named_version() {
    let (ctx, server) = repo_and_server(&[(FILE, VARIANT_A)]);
    // Nothing on the server yet: a new pipeline.
    let out = run(&ctx, &["diff", "--endpoint", &server.url]);
    assert_exit(&out, 0);
    assert!(
        text(&out.stdout)
            .contains("review_demo_pipeline (pipelines/review_demo_pipeline.py): new pipeline"),
        "{}",
        text(&out.stdout)
    );
    deploy(&ctx, &server, "v1");
    let out = run(&ctx, &["diff", "--endpoint", &server.url]);
    assert_exit(&out, 0);
    assert!(
        text(&out.stdout).contains("no change against v1"),
        "{}",
        text(&out.stdout)
    );

    ctx.write(FILE, VARIANT_B);
    let out = run(&ctx, &["diff", "--endpoint", &server.url]);
    assert_exit(&out, 0);
    let stdout = text(&out.stdout);
    for line in [
        "review_demo_pipeline (pipelines/review_demo_pipeline.py): 10 change(s) against v1",
        "  ~ parameter promote_threshold: 0.92 → 0.95",
        "  ~ task clean renamed to scrub",
        "  ~ task scrub image: python:3.11-slim → python:3.12-slim",
        "  ~ task train resources resourceCpuLimit: 1 → 2",
        "  ~ task train caching: on → off",
        "  ~ task train retry: none → 3 retries, backoff 0s ×2 up to 3600s",
        "  ~ task train kubernetes nodeSelector.labels.pool: cpu → gpu",
        "  + edge load -> notify added",
        "      + def notify(score: float) -> str:",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "missing {line:?}:\n{stdout}"
        );
    }

    let out = run(
        &ctx,
        &["diff", "--endpoint", &server.url, "--output", "markdown"],
    );
    assert_exit(&out, 0);
    let md = text(&out.stdout);
    assert!(md.contains("#### `review_demo_pipeline`"), "{md}");
    assert!(
        md.contains("- parameter promote\\_threshold: 0.92 → 0.95"),
        "{md}"
    );
    assert!(md.contains("```diff"), "{md}");

    // After deploying B, B has no change against the newest, and ten against v1.
    deploy(&ctx, &server, "v2");
    let out = run(
        &ctx,
        &["diff", "--endpoint", &server.url, "--output", "json"],
    );
    assert_exit(&out, 0);
    let json: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["pipelines"][0]["status"], "unchanged", "{json}");
    assert_eq!(json["pipelines"][0]["against"], "v2");
    let out = run(
        &ctx,
        &[
            "diff",
            "--endpoint",
            &server.url,
            "--against",
            "v1",
            "--output",
            "json",
        ],
    );
    assert_exit(&out, 0);
    let json: Value = serde_json::from_slice(&out.stdout).expect("json");
    let p = &json["pipelines"][0];
    assert_eq!(p["status"], "changed");
    assert_eq!(p["against"], "v1");
    assert_eq!(p["changes"].as_array().map(Vec::len), Some(10), "{json}");
    assert_eq!(p["changes"][0]["kind"], "parameter_default");
    assert_eq!(p["changes"][0]["subject"], "promote_threshold");
    assert_eq!(p["changes"][0]["old"], 0.92);
    assert_eq!(p["changes"][0]["new"], 0.95);

    // An unknown version is an error naming it and the pipeline, exit 1.
    let out = run(
        &ctx,
        &["diff", "--endpoint", &server.url, "--against", "v9"],
    );
    assert_exit(&out, 1);
    assert!(
        text(&out.stdout)
            .contains("pipeline review_demo_pipeline has no version named \"v9\" (--against)"),
        "{}",
        text(&out.stdout)
    );
}
