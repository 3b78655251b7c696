//! What a deployed version says about where it came from, and what the report says happened:
//! the commit (with `-dirty` when the work tree differs from it), paths relative to the
//! repository root wherever kfp-ci was started, and `--force` with an existing tag told apart
//! from a concurrent run.

use std::path::Path;

use serde_json::Value;

use crate::common::{Server, TestContext};
use crate::deploy::{HELLO, assert_exit, json, json_run, kfp_client_versions, text};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = crate::common::command("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=kfp-ci tests",
            "-c",
            "user.email=tests@example.com",
        ])
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

/// A real git repository holding `files`, committed; returns the commit.
fn committed_repo(ctx: &TestContext, files: &[(&str, &str)]) -> String {
    std::fs::remove_dir_all(ctx.root().join(".git")).expect("remove the bare .git");
    for (path, content) in files {
        ctx.write(path, content);
    }
    ctx.write(".gitignore", "registry.db*\n");
    git(ctx.root(), &["init", "-q"]);
    git(ctx.root(), &["add", "."]);
    git(ctx.root(), &["commit", "-q", "-m", "pipelines"]);
    git(ctx.root(), &["rev-parse", "HEAD"])
}

fn version<'a>(versions: &'a Value, key: &str) -> &'a Value {
    let v = &versions[key];
    assert!(!v.is_null(), "no version {key}: {versions:#}");
    v
}

#[test]
fn a_dirty_work_tree_says_so_in_the_description_and_the_git_sha_tag() {
    let ctx = TestContext::new();
    let sha = committed_repo(&ctx, &[("hello_pipeline.py", HELLO)]);
    let server = Server::start(&ctx.root().join("registry.db"), &[]);

    json_run(&ctx, "deploy", &server.url, &["--version-tag", "clean"], 0);
    // A tracked file changed, not committed: the same commit, but not what it holds.
    ctx.write(
        "hello_pipeline.py",
        &HELLO.replace("message: str = \"hello\"", "message: str = \"edited\""),
    );
    let out = json_run(&ctx, "deploy", &server.url, &["--version-tag", "dirty"], 0);
    assert_eq!(json(&out)["counts"]["updated"], 1);

    let versions = kfp_client_versions(&server.url);
    let clean = version(&versions, "hello_pipeline/clean");
    let description = clean["description"].as_str().unwrap_or_default();
    assert!(description.contains(&format!(" at {sha}")), "{description}");
    assert!(!description.contains("-dirty"), "{description}");
    assert_eq!(clean["tags"]["git-sha"], sha.as_str(), "{clean:#}");

    let dirty = version(&versions, "hello_pipeline/dirty");
    let description = dirty["description"].as_str().unwrap_or_default();
    assert!(
        description.contains(&format!(" at {sha}-dirty")),
        "{description}"
    );
    assert_eq!(
        dirty["tags"]["git-sha"],
        format!("{sha}-dirty").as_str(),
        "{dirty:#}"
    );
}

#[test]
fn run_from_outside_the_repository_paths_are_relative_and_the_commit_is_found() {
    let ctx = TestContext::new();
    let sha = committed_repo(&ctx, &[("pipelines/hello_pipeline.py", HELLO)]);
    let server = Server::start(&ctx.root().join("registry.db"), &[]);
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let out = ctx
        .std_cmd()
        .current_dir(elsewhere.path())
        .arg("deploy")
        .arg(ctx.root().join("pipelines"))
        .args(["--endpoint", &server.url, "--version-tag", "v1"])
        .args(["--output", "json"])
        .output()
        .expect("run kfp-ci");
    assert_exit(&out, 0);
    let report = json(&out);
    assert_eq!(
        report["pipelines"][0]["file"], "pipelines/hello_pipeline.py",
        "{report:#}"
    );
    assert_eq!(report["ci"]["commit_sha"], sha.as_str(), "{report:#}");
    let versions = kfp_client_versions(&server.url);
    let v = version(&versions, "hello_pipeline/v1");
    let description = v["description"].as_str().unwrap_or_default();
    assert!(
        description.contains(&format!(" from pipelines/hello_pipeline.py at {sha}")),
        "{description}"
    );
    assert_eq!(v["tags"]["git-sha"], sha.as_str(), "{v:#}");
}

/// `--force` with a tag that already holds the spec uploads nothing, and says that the version
/// was there before the run, not that a concurrent run uploaded it.
#[test]
fn force_with_an_existing_tag_is_not_a_concurrent_run() {
    let ctx = TestContext::new();
    ctx.write("hello_pipeline.py", HELLO);
    let server = Server::start(&ctx.root().join("registry.db"), &[]);
    json_run(&ctx, "deploy", &server.url, &["--version-tag", "v1"], 0);
    let out = json_run(
        &ctx,
        "deploy",
        &server.url,
        &["--force", "--version-tag", "v1"],
        0,
    );
    let report = json(&out);
    let p = &report["pipelines"][0];
    let reason = p["reason"].as_str().unwrap_or_default();
    assert!(!reason.contains("concurrent"), "{report:#}");
    assert!(
        reason.contains("version v1 already held this spec before this run: nothing uploaded"),
        "{report:#}"
    );
    assert_eq!(p["action"], "unchanged", "{report:#}");
    assert_eq!(report["counts"]["updated"], 0, "{report:#}");
    assert_eq!(report["counts"]["unchanged"], 1, "{report:#}");
}
