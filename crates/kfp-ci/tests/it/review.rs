//! History, rollback and the revert note of deploy, against `kfp-ci serve` with real compiled
//! specs (two variants of one pipeline).

use serde_json::Value;

use crate::deploy::{assert_exit, repo_and_server, text};
use crate::diff::{FILE, VARIANT_A, VARIANT_B};

const PIPELINE: &str = "review_demo_pipeline";

fn sha(c: char) -> String {
    std::iter::repeat_n(c, 40).collect()
}

/// `kfp-ci deploy` as a CI run (act) at commit `sha`.
fn deploy_at(ctx: &crate::common::TestContext, url: &str, tag: &str, sha: &str) -> Value {
    let out = ctx
        .cmd()
        .args([
            "deploy",
            "--endpoint",
            url,
            "--version-tag",
            tag,
            "--output",
            "json",
        ])
        .env("ACT", "true")
        .env("GITHUB_SHA", sha)
        .output()
        .expect("run");
    assert_exit(&out, 0);
    serde_json::from_slice(&out.stdout).expect("json report")
}

fn history(ctx: &crate::common::TestContext, url: &str) -> Value {
    let out = ctx
        .cmd()
        .args(["history", PIPELINE, "--endpoint", url, "--output", "json"])
        .output()
        .expect("run");
    assert_exit(&out, 0);
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn history_rollback_and_the_revert_note() {
    let (ctx, server) = repo_and_server(&[(FILE, VARIANT_A)]);
    let url = server.url.clone();
    deploy_at(&ctx, &url, "v1", &sha('a'));
    ctx.write(FILE, VARIANT_B);
    deploy_at(&ctx, &url, "v2", &sha('b'));
    // Back to A by a revert commit: deploy says it repeats v1.
    ctx.write(FILE, VARIANT_A);
    let report = deploy_at(&ctx, &url, "v3", &sha('c'));
    let reason = report["pipelines"][0]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("same as v1 (a revert?)"), "{reason}");

    let h = history(&ctx, &url);
    let versions = h["versions"].as_array().expect("versions");
    let names: Vec<&str> = versions.iter().filter_map(|v| v["name"].as_str()).collect();
    assert_eq!(names, ["v3", "v2", "v1"]);
    assert_eq!(versions[0]["same_spec_as"], "v1");
    assert_eq!(versions[0]["git_sha"], sha('c'));
    assert_eq!(versions[0]["by_kfp_ci"], true);
    assert!(versions[1].get("same_spec_as").is_none());
    assert_eq!(versions[0]["spec_hash"], versions[2]["spec_hash"]);
    let out = ctx
        .cmd()
        .args(["history", PIPELINE, "--endpoint", &url])
        .output()
        .expect("run");
    assert_exit(&out, 0);
    let table = text(&out.stdout);
    assert!(table.contains("same spec as v1"), "{table}");
    assert!(table.contains("cccccccccccc"), "{table}");

    // Dry run: the diff, nothing uploaded.
    let out = ctx
        .cmd()
        .args([
            "rollback",
            PIPELINE,
            "--to",
            "bbbbbbb",
            "--dry-run",
            "--endpoint",
            &url,
        ])
        .output()
        .expect("run");
    assert_exit(&out, 0);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("rollback from v3 to the spec of v2"),
        "{stderr}"
    );
    assert!(
        stderr.contains("~ parameter promote_threshold: 0.92 → 0.95"),
        "{stderr}"
    );
    assert_eq!(
        history(&ctx, &url)["versions"].as_array().map(Vec::len),
        Some(3)
    );

    // Roll back to v2 (by git sha): the newest version holds exactly v2's spec.
    let out = ctx
        .cmd()
        .args([
            "rollback",
            PIPELINE,
            "--to",
            &sha('b')[..10],
            "--version-tag",
            "r1",
            "--endpoint",
            &url,
            "--output",
            "json",
        ])
        .output()
        .expect("run");
    assert_exit(&out, 0);
    let result: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(result["status"], "done");
    assert_eq!(result["to"], "v2");
    let h = history(&ctx, &url);
    let versions = h["versions"].as_array().expect("versions");
    assert_eq!(versions[0]["name"], "r1");
    assert_eq!(versions[0]["spec_hash"], versions[2]["spec_hash"], "{h}");
    assert_eq!(versions[0]["same_spec_as"], "v2");
    assert_eq!(versions[0]["rollback_of"], "v2");
    // The newest spec now diffs clean against the local variant B.
    ctx.write(FILE, VARIANT_B);
    let out = ctx
        .cmd()
        .args(["diff", "--endpoint", &url])
        .output()
        .expect("run");
    assert_exit(&out, 0);
    assert!(
        text(&out.stdout).contains("no change against r1"),
        "{}",
        text(&out.stdout)
    );

    // Again: nothing to do.
    let out = ctx
        .cmd()
        .args(["rollback", PIPELINE, "--to", "v2", "--endpoint", &url])
        .output()
        .expect("run");
    assert_exit(&out, 0);
    assert!(
        text(&out.stderr).contains("nothing to do"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        history(&ctx, &url)["versions"].as_array().map(Vec::len),
        Some(4)
    );

    // Unknown version or pipeline: exit 2, named.
    let out = ctx
        .cmd()
        .args(["rollback", PIPELINE, "--to", "v9", "--endpoint", &url])
        .output()
        .expect("run");
    assert_exit(&out, 2);
    assert!(
        text(&out.stderr).contains("has no version named `v9`"),
        "{}",
        text(&out.stderr)
    );
    let out = ctx
        .cmd()
        .args(["history", "nope", "--endpoint", &url])
        .output()
        .expect("run");
    assert_exit(&out, 2);
    assert!(
        text(&out.stderr).contains("no pipeline named `nope`"),
        "{}",
        text(&out.stderr)
    );
}
