//! `kfp-ci promote` between two `kfp-ci serve` instances: the second converges on exactly the
//! specs the first serves, under the same version names where free; a rerun changes nothing.

use serde_json::Value;

use crate::common::Server;
use crate::deploy::{GOODBYE, HELLO, assert_exit, repo_and_server, text};
use crate::diff::{FILE, VARIANT_A, VARIANT_B};

fn history(ctx: &crate::common::TestContext, target: &str, name: &str) -> Value {
    let out = ctx
        .cmd()
        .args(["history", name, "--target", target, "--output", "json"])
        .output()
        .expect("run");
    assert_exit(&out, 0);
    serde_json::from_slice(&out.stdout).expect("json")
}

fn promote(ctx: &crate::common::TestContext, args: &[&str]) -> Value {
    let out = ctx
        .cmd()
        .args([
            "promote", "--from", "dev", "--to", "prod", "--output", "json",
        ])
        .args(args)
        .output()
        .expect("run");
    assert_exit(&out, 0);
    serde_json::from_slice(&out.stdout).expect("json report")
}

fn actions(report: &Value) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = report["pipelines"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                p["action"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn promote_converges_and_is_idempotent() {
    let (ctx, dev) = repo_and_server(&[(FILE, VARIANT_A), ("hello_pipeline.py", HELLO)]);
    let prod = Server::start(&ctx.root().join("prod.db"), &[]);
    ctx.write(
        "kfp-ci.toml",
        &format!(
            "[targets.dev]\nendpoint = \"{}\"\n\n[targets.prod]\nendpoint = \"{}\"\n",
            dev.url, prod.url
        ),
    );
    let deploy_paths = |target: &str, tag: &str, paths: &[&str]| {
        let out = ctx
            .cmd()
            .args(["deploy", "--target", target, "--version-tag", tag])
            .args(paths)
            .output()
            .expect("run");
        assert_exit(&out, 0);
    };
    let deploy = |target: &str, tag: &str| deploy_paths(target, tag, &[]);
    deploy("dev", "v1");
    // Versions are stamped to the second: v2 must be unambiguously the newest.
    dev.advance_clock(1);
    ctx.write(FILE, VARIANT_B);
    deploy("dev", "v2");
    // prod already has hello at the same spec (another name): skipped, not re-uploaded.
    deploy_paths("prod", "p1", &["hello_pipeline.py"]);
    // A pipeline only on prod, or only a file: promote never touches what dev does not serve.
    ctx.write("goodbye_pipeline.py", GOODBYE);

    // Plan only.
    let out = ctx
        .cmd()
        .args(["promote", "--from", "dev", "--to", "prod", "--dry-run"])
        .output()
        .expect("run");
    assert_exit(&out, 0);
    assert!(
        text(&out.stderr).contains("review_demo_pipeline"),
        "{}",
        text(&out.stderr)
    );
    let absent = ctx
        .cmd()
        .args(["history", "review_demo_pipeline", "--target", "prod"])
        .output()
        .expect("run");
    assert_exit(&absent, 2);

    let report = promote(&ctx, &[]);
    assert_eq!(
        actions(&report),
        [
            ("hello_pipeline".to_string(), "unchanged".to_string()),
            ("review_demo_pipeline".to_string(), "create".to_string())
        ]
    );
    let dev_h = history(&ctx, "dev", "review_demo_pipeline");
    let prod_h = history(&ctx, "prod", "review_demo_pipeline");
    assert_eq!(
        prod_h["versions"][0]["name"], "v2",
        "same name where free: {prod_h}"
    );
    assert_eq!(
        prod_h["versions"][0]["spec_hash"],
        dev_h["versions"][0]["spec_hash"]
    );
    assert_eq!(
        history(&ctx, "prod", "hello_pipeline")["versions"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // Idempotent: nothing changes the second time.
    let report = promote(&ctx, &[]);
    assert_eq!(
        actions(&report),
        [
            ("hello_pipeline".to_string(), "unchanged".to_string()),
            ("review_demo_pipeline".to_string(), "unchanged".to_string())
        ]
    );
    assert_eq!(
        history(&ctx, "prod", "review_demo_pipeline")["versions"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // A name taken on prod by another spec: a suffixed name, never an overwrite.
    ctx.write(FILE, VARIANT_A);
    prod.advance_clock(1);
    deploy_paths("prod", "v3", &["pipelines"]);
    ctx.write(FILE, &VARIANT_A.replace("s3://bucket/a", "s3://bucket/c"));
    dev.advance_clock(1);
    deploy_paths("dev", "v3", &["pipelines"]);
    let report = promote(&ctx, &["review_demo_pipeline"]);
    assert_eq!(actions(&report).len(), 1);
    let prod_h = history(&ctx, "prod", "review_demo_pipeline");
    let newest = prod_h["versions"][0]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(newest.starts_with("v3-"), "{prod_h}");
    assert_eq!(
        prod_h["versions"][0]["spec_hash"],
        history(&ctx, "dev", "review_demo_pipeline")["versions"][0]["spec_hash"]
    );
    // An unknown pipeline is that pipeline's error, exit 1.
    let out = ctx
        .cmd()
        .args(["promote", "--from", "dev", "--to", "prod", "nope"])
        .output()
        .expect("run");
    assert_exit(&out, 1);
    assert!(
        text(&out.stderr).contains("no pipeline named `nope`"),
        "{}",
        text(&out.stderr)
    );
}
