//! History, rollback and the revert note of deploy, against `kfp-ci serve` with real compiled
//! specs (two variants of one pipeline).

use serde_json::Value;

use crate::deploy::{
    assert_contains, assert_exit, faulty_one, hello_and_goodbye, repo_and_server, run_exit, text,
};
use crate::diff::{FILE, VARIANT_A, VARIANT_B};
use crate::init::run_tool;

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
    let out = run_exit(
        ctx,
        &["history", PIPELINE, "--endpoint", url, "--output", "json"],
        0,
    );
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
    let out = run_exit(&ctx, &["history", PIPELINE, "--endpoint", &url], 0);
    let table = text(&out.stdout);
    assert!(table.contains("same spec as v1"), "{table}");
    assert!(table.contains("cccccccccccc"), "{table}");

    // Dry run: the diff, nothing uploaded.
    let out = run_exit(
        &ctx,
        &[
            "rollback",
            PIPELINE,
            "--to",
            "bbbbbbb",
            "--dry-run",
            "--endpoint",
            &url,
        ],
        0,
    );
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
    let out = run_exit(&ctx, &["diff", "--endpoint", &url], 0);
    assert_contains(&text(&out.stdout), "no change against r1");

    // Again: nothing to do.
    let out = run_exit(
        &ctx,
        &["rollback", PIPELINE, "--to", "v2", "--endpoint", &url],
        0,
    );
    assert_contains(&text(&out.stderr), "nothing to do");
    assert_eq!(
        history(&ctx, &url)["versions"].as_array().map(Vec::len),
        Some(4)
    );

    // Unknown version or pipeline: exit 2, named.
    let out = run_exit(
        &ctx,
        &["rollback", PIPELINE, "--to", "v9", "--endpoint", &url],
        2,
    );
    assert_contains(&text(&out.stderr), "has no version named `v9`");
    let out = run_exit(&ctx, &["history", "nope", "--endpoint", &url], 2);
    assert_contains(&text(&out.stderr), "no pipeline named `nope`");
}

/// Versions of pipeline `name` via `kfp-ci history`: `None` when the pipeline does not exist.
fn version_names(ctx: &crate::common::TestContext, url: &str, name: &str) -> Option<Vec<String>> {
    let out = ctx
        .cmd()
        .args(["history", name, "--endpoint", url, "--output", "json"])
        .output()
        .expect("run");
    if out.status.code() == Some(2) {
        return None;
    }
    assert_exit(&out, 0);
    let h: Value = serde_json::from_slice(&out.stdout).expect("json");
    Some(
        h["versions"]
            .as_array()
            .expect("versions")
            .iter()
            .filter_map(|v| v["name"].as_str().map(str::to_string))
            .collect(),
    )
}

fn deploy_args(ctx: &crate::common::TestContext, args: &[&str]) -> std::process::Output {
    ctx.cmd().args(args).output().expect("run")
}

#[test]
fn preview_deploys_leave_production_alone_and_cleanup_removes_them() {
    use crate::deploy::{GOODBYE, HELLO};
    let (ctx, server) = hello_and_goodbye();
    let url = server.url.clone();
    assert_exit(
        &deploy_args(&ctx, &["deploy", "--endpoint", &url, "--version-tag", "v1"]),
        0,
    );
    ctx.write(
        "hello_pipeline.py",
        &HELLO.replace("\"hello\"", "\"hi there\""),
    );

    let out = deploy_args(
        &ctx,
        &[
            "deploy",
            "--endpoint",
            &url,
            "--preview",
            "pr-12",
            "--version-tag",
            "p1",
            "--output",
            "json",
        ],
    );
    assert_exit(&out, 0);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let rows: Vec<(String, String)> = report["pipelines"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("").to_string(),
                p["action"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        rows.contains(&("hello_pipeline-pr-12".into(), "create".into())),
        "{rows:?}"
    );
    assert!(
        rows.contains(&("goodbye_pipeline".into(), "unchanged".into())),
        "{rows:?}"
    );
    // Production untouched; the preview holds the change; no preview for the unchanged one.
    assert_eq!(
        version_names(&ctx, &url, "hello_pipeline"),
        Some(vec!["v1".to_string()])
    );
    assert_eq!(
        version_names(&ctx, &url, "goodbye_pipeline"),
        Some(vec!["v1".to_string()])
    );
    assert_eq!(
        version_names(&ctx, &url, "hello_pipeline-pr-12"),
        Some(vec!["p1".to_string()])
    );
    assert_eq!(version_names(&ctx, &url, "goodbye_pipeline-pr-12"), None);
    // A second push with the same spec adds nothing; production still plans a new version.
    let out = deploy_args(
        &ctx,
        &[
            "deploy",
            "--endpoint",
            &url,
            "--preview",
            "pr-12",
            "--version-tag",
            "p2",
        ],
    );
    assert_exit(&out, 0);
    assert_eq!(
        version_names(&ctx, &url, "hello_pipeline-pr-12"),
        Some(vec!["p1".to_string()])
    );
    let out = deploy_args(&ctx, &["diff", "--endpoint", &url]);
    assert_contains(
        &text(&out.stdout),
        "hello_pipeline (hello_pipeline.py): 1 change(s) against v1",
    );
    // Another preview's pipelines are not this one's.
    ctx.write(
        "goodbye_pipeline.py",
        &GOODBYE.replace("times: int = 2", "times: int = 3"),
    );
    assert_exit(
        &deploy_args(
            &ctx,
            &[
                "deploy",
                "--endpoint",
                &url,
                "--preview",
                "pr-13",
                "--version-tag",
                "q1",
            ],
        ),
        0,
    );

    let out = deploy_args(
        &ctx,
        &[
            "cleanup",
            "--preview",
            "pr-12",
            "--endpoint",
            &url,
            "--dry-run",
        ],
    );
    assert_exit(&out, 0);
    assert_contains(&text(&out.stderr), "hello_pipeline-pr-12: would delete");
    assert!(version_names(&ctx, &url, "hello_pipeline-pr-12").is_some());
    let out = deploy_args(&ctx, &["cleanup", "--preview", "pr-12", "--endpoint", &url]);
    assert_exit(&out, 0);
    assert_contains(
        &text(&out.stderr),
        "hello_pipeline-pr-12: deleted with 1 version(s)",
    );
    assert_eq!(version_names(&ctx, &url, "hello_pipeline-pr-12"), None);
    assert!(version_names(&ctx, &url, "hello_pipeline-pr-13").is_some());
    assert!(version_names(&ctx, &url, "goodbye_pipeline-pr-13").is_some());
    assert_eq!(
        version_names(&ctx, &url, "hello_pipeline"),
        Some(vec!["v1".to_string()])
    );
    assert_eq!(
        version_names(&ctx, &url, "goodbye_pipeline"),
        Some(vec!["v1".to_string()])
    );
    // Nothing left of pr-12: a second cleanup says so.
    let out = deploy_args(&ctx, &["cleanup", "--preview", "pr-12", "--endpoint", &url]);
    assert_exit(&out, 0);
    assert_contains(&text(&out.stderr), "no preview pipelines of pr-12");
}

/// `POST /apis/v2beta1/pipelines` by hand: a pipeline kfp-ci did not create.
fn create_foreign_pipeline(url: &str, name: &str, description: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let body =
            serde_json::json!({"name": name, "display_name": name, "description": description});
        let v: Value = crate::common::http_client()
            .post(format!("{url}/apis/v2beta1/pipelines"))
            .json(&body)
            .send()
            .await
            .expect("post")
            .json()
            .await
            .expect("json");
        v["pipeline_id"].as_str().expect("id").to_string()
    })
}

/// `POST /apis/v2beta1/recurringruns` by hand: a recurring run kfp-ci did not create, running
/// the newest version of `pipeline_id`.
fn create_foreign_recurring_run(url: &str, name: &str, pipeline_id: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let body = serde_json::json!({
            "display_name": name,
            "pipeline_version_reference": {"pipeline_id": pipeline_id},
            "trigger": {"cron_schedule": {"cron": "0 0 2 * * *"}},
            "max_concurrency": "1",
            "mode": "ENABLE",
        });
        let response = crate::common::http_client()
            .post(format!("{url}/apis/v2beta1/recurringruns"))
            .json(&body)
            .send()
            .await
            .expect("post");
        assert!(response.status().is_success(), "{response:?}");
    })
}

#[test]
fn prune_deletes_only_kfp_cis_orphans_and_keeps_pipelines_in_use() {
    use crate::deploy::{GOODBYE, HELLO};
    let (ctx, server) = repo_and_server(&[
        ("hello_pipeline.py", HELLO),
        ("goodbye_pipeline.py", GOODBYE),
        (
            "nightly_pipeline.py",
            &GOODBYE.replace("goodbye-pipeline", "nightly-pipeline"),
        ),
    ]);
    let url = server.url.clone();
    assert_exit(
        &deploy_args(&ctx, &["deploy", "--endpoint", &url, "--version-tag", "v1"]),
        0,
    );
    create_foreign_pipeline(&url, "by-hand", "made in the UI");
    // Files gone: goodbye (deleted by prune) and nightly (kept: a recurring run uses it).
    std::fs::remove_file(ctx.root().join("goodbye_pipeline.py")).expect("rm");
    std::fs::remove_file(ctx.root().join("nightly_pipeline.py")).expect("rm");
    // A recurring run made by hand in serve uses nightly_pipeline.
    let out = deploy_args(
        &ctx,
        &[
            "history",
            "nightly_pipeline",
            "--endpoint",
            &url,
            "--output",
            "json",
        ],
    );
    let h: Value = serde_json::from_slice(&out.stdout).expect("json");
    let nightly_id = h["pipeline_id"].as_str().expect("id").to_string();
    create_foreign_recurring_run(&url, "nightly-train", &nightly_id);

    // Dry run: shown, nothing deleted.
    let out = deploy_args(
        &ctx,
        &["deploy", "--endpoint", &url, "--prune", "--dry-run"],
    );
    assert_exit(&out, 0);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "prune: would delete goodbye_pipeline (goodbye_pipeline.py is gone from the repository)"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("prune: kept nightly_pipeline"), "{stderr}");
    assert!(stderr.contains("nightly-train"), "{stderr}");
    assert!(
        !stderr.contains("by-hand") && !stderr.contains("prune: would delete hello"),
        "{stderr}"
    );
    assert!(version_names(&ctx, &url, "goodbye_pipeline").is_some());

    // With the configuration key.
    ctx.write("kfp-ci.toml", "[deploy]\nprune = true\n");
    let out = deploy_args(&ctx, &["deploy", "--endpoint", &url]);
    assert_exit(&out, 0);
    assert_contains(&text(&out.stderr), "prune: deleted goodbye_pipeline");
    assert_eq!(version_names(&ctx, &url, "goodbye_pipeline"), None);
    assert!(version_names(&ctx, &url, "nightly_pipeline").is_some());
    assert!(version_names(&ctx, &url, "hello_pipeline").is_some());
    assert!(version_names(&ctx, &url, "by-hand").is_some());
    // A rerun converges: nothing more to prune.
    let out = deploy_args(&ctx, &["deploy", "--endpoint", &url]);
    assert_exit(&out, 0);
    assert!(
        !text(&out.stderr).contains("prune: deleted"),
        "{}",
        text(&out.stderr)
    );
}

fn plan_comment(
    ctx: &crate::common::TestContext,
    url: &str,
    envs: &[(&str, String)],
    extra: &[&str],
) -> std::process::Output {
    let mut cmd = ctx.cmd();
    cmd.args(["plan", "--endpoint", url])
        .args(extra)
        .env_remove("GITHUB_EVENT_PATH")
        .env_remove("GITHUB_REF")
        .env_remove("GITHUB_TOKEN")
        .env_remove("CI_JOB_TOKEN");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run")
}

#[test]
fn plan_comment_is_one_sticky_comment_per_pull_request_on_each_forge() {
    use crate::forge_server::{ForgeServer, TOKEN};
    let forge = ForgeServer::start();
    let (ctx, server) = repo_and_server(&[(FILE, VARIANT_A)]);
    crate::diff::deploy(&ctx, &server, "v1");
    let f = &forge.url;
    let pr = |v: &[(&str, &str)]| -> Vec<(&'static str, String)> {
        v.iter()
            .map(|(k, val)| {
                (
                    Box::leak(k.to_string().into_boxed_str()) as &str,
                    val.to_string(),
                )
            })
            .collect()
    };
    let forges = [
        (
            pr(&[
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_REF", "refs/pull/12/merge"),
                ("GITHUB_REPOSITORY", "o/r"),
                ("GITHUB_API_URL", f),
                ("GITHUB_TOKEN", TOKEN),
            ]),
            "github:o/r#12",
        ),
        (
            pr(&[
                ("GITEA_ACTIONS", "true"),
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_REF", "refs/pull/12/head"),
                ("GITHUB_REPOSITORY", "o/r"),
                ("GITHUB_API_URL", &format!("{f}/api/v1")),
                ("GITHUB_TOKEN", TOKEN),
            ]),
            "gitea:o/r#12",
        ),
        (
            pr(&[
                ("GITLAB_CI", "true"),
                ("CI_MERGE_REQUEST_IID", "7"),
                ("CI_PROJECT_ID", "42"),
                ("CI_API_V4_URL", &format!("{f}/api/v4")),
                ("GITLAB_TOKEN", TOKEN),
            ]),
            "gitlab:42!7",
        ),
    ];
    let pushes = [
        VARIANT_B.to_string(),
        VARIANT_B.replace("0.95", "0.97"),
        VARIANT_A.replace("s3://bucket/a", "s3://bucket/z"),
    ];
    for (envs, thread) in &forges {
        forge.seed(thread, "LGTM, one question below");
        for push in &pushes {
            ctx.write(FILE, push);
            let out = plan_comment(&ctx, &server.url, envs, &["--comment"]);
            assert_exit(&out, 0);
            let stderr = text(&out.stderr);
            assert!(stderr.contains("the plan comment"), "{stderr}");
            assert!(!stderr.contains(TOKEN), "{stderr}");
        }
        let comments = forge.comments(thread);
        assert_eq!(comments.len(), 2, "{thread}: {comments:#?}");
        assert_eq!(comments[0].body, "LGTM, one question below");
        let ours = &comments[1].body;
        assert!(ours.starts_with("<!-- kfp-ci:plan -->"), "{ours}");
        assert!(
            ours.contains(
                "| review\\_demo\\_pipeline | pipelines/review\\_demo\\_pipeline.py | new version |"
            ),
            "{ours}"
        );
        assert!(
            ours.contains("- parameter source: s3://bucket/a → s3://bucket/z"),
            "{ours}"
        );
        assert!(!ours.contains("0.97"), "the last push wins: {ours}");
        assert!(ours.contains("```mermaid\nflowchart TD"), "{ours}");
    }
    // Created once per thread, then updated in place (PATCH / PUT), never posted again.
    let posts = forge.requests().iter().filter(|(m, _)| m == "POST").count();
    let updates = forge
        .requests()
        .iter()
        .filter(|(m, _)| m == "PATCH" || m == "PUT")
        .count();
    assert_eq!((posts, updates), (3, 6));

    // A wrong token: exit 2, a hint, never the token.
    let mut envs = forges[0].0.clone();
    envs.retain(|(k, _)| *k != "GITHUB_TOKEN");
    envs.push(("GITHUB_TOKEN", "wrong-token-77".into()));
    let out = plan_comment(&ctx, &server.url, &envs, &["--comment"]);
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("HTTP 401") && stderr.contains("hint: the token (GITHUB_TOKEN)"),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong-token-77"), "{stderr}");
}

#[test]
fn plan_markdown_and_comment_without_a_pull_request() {
    let (ctx, server) = repo_and_server(&[(FILE, VARIANT_A)]);
    crate::diff::deploy(&ctx, &server, "v1");
    ctx.write(FILE, VARIANT_B);
    // Not in CI: said, exit 0.
    let out = plan_comment(&ctx, &server.url, &[], &["--comment"]);
    assert_exit(&out, 0);
    assert_contains(
        &text(&out.stderr),
        "no pull request to comment on: not running in GitHub Actions",
    );
    // A push build in GitHub Actions: no PR either.
    let envs = vec![
        ("GITHUB_ACTIONS", "true".to_string()),
        ("GITHUB_REF", "refs/heads/main".to_string()),
        ("GITHUB_EVENT_NAME", "push".to_string()),
    ];
    let out = plan_comment(&ctx, &server.url, &envs, &["--comment"]);
    assert_exit(&out, 0);
    assert_contains(
        &text(&out.stderr),
        "no pull request in this run (event push)",
    );
    // The same body on stdout for any other forge, changed tasks highlighted in the DAG.
    let out = plan_comment(&ctx, &server.url, &[], &["--output", "markdown"]);
    assert_exit(&out, 0);
    let md = text(&out.stdout);
    assert!(
        md.starts_with("<!-- kfp-ci:plan -->\n### kfp-ci plan"),
        "{md}"
    );
    assert!(md.contains("- task clean renamed to scrub"), "{md}");
    assert!(md.contains("classDef changed"), "{md}");
    // scrub, train and notify are drawn as changed; load is not.
    let class_line = md
        .lines()
        .find(|l| l.trim_start().starts_with("class "))
        .expect("class line");
    assert_eq!(class_line.split(',').count(), 3, "{class_line}");
}

#[test]
fn init_writes_a_pull_request_workflow_that_comments_and_cleans_up() {
    for (ci, dir) in [
        ("gitea", ".gitea"),
        ("github", ".github"),
        ("forgejo", ".forgejo"),
    ] {
        let ctx = crate::common::TestContext::new();
        run_exit(&ctx, &["init", "--ci", ci], 0);
        let path = ctx
            .root()
            .join(format!("{dir}/workflows/kfp-ci-review.yaml"));
        run_tool(
            "check-jsonschema",
            &["--builtin-schema", "vendor.github-workflows"],
            &path,
        );
        run_tool("zizmor", &["--offline"], &path);
        let w: Value =
            serde_yaml::from_str(&std::fs::read_to_string(&path).expect("read")).expect("yaml");
        let types = &w["on"]["pull_request"]["types"];
        assert!(
            types
                .as_array()
                .is_some_and(|t| t.contains(&"closed".into()) && t.contains(&"synchronize".into())),
            "{w}"
        );
        assert_eq!(w["permissions"], serde_json::json!({"contents": "read"}));
        let plan = &w["jobs"]["plan"];
        assert_eq!(
            plan["permissions"],
            serde_json::json!({"contents": "read", "pull-requests": "write"})
        );
        let runs: Vec<&str> = plan["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .filter_map(|s| s["run"].as_str())
            .collect();
        assert!(runs.contains(&"kfp-ci plan --comment"), "{runs:?}");
        assert!(
            runs.contains(&"kfp-ci deploy --preview \"$KFP_CI_PREVIEW_NAME\""),
            "{runs:?}"
        );
        let cleanup = &w["jobs"]["cleanup"];
        assert!(
            cleanup["if"]
                .as_str()
                .is_some_and(|c| c.contains("github.event.action == 'closed'"))
        );
        assert!(
            cleanup.get("permissions").is_none(),
            "read-only like the workflow"
        );
        assert!(
            cleanup["steps"]
                .as_array()
                .expect("steps")
                .iter()
                .any(|s| s["run"] == "kfp-ci cleanup --preview \"$KFP_CI_PREVIEW_NAME\"")
        );
        assert_eq!(
            w["env"]["KFP_CI_PREVIEW_NAME"],
            "pr-${{ github.event.pull_request.number }}"
        );
    }
    // GitLab: one .gitlab-ci.yml, no extra file.
    let ctx = crate::common::TestContext::new();
    run_exit(&ctx, &["init", "--ci", "gitlab"], 0);
    assert!(!ctx.root().join(".gitlab/workflows").exists());
}

/// `deploy --prune` puts what it did in the report: `--output json`, `--report-file`, the step
/// summary and the notification, one entry per pipeline (deleted, or failed with the reason).
#[test]
fn prune_results_are_in_the_json_report_the_summary_and_the_notification() {
    use crate::deploy::{GOODBYE, HELLO};
    use crate::faulty::Fault;
    use crate::ntfy_server::{Auth, NtfyServer};
    let (ctx, server) = repo_and_server(&[
        ("hello_pipeline.py", HELLO),
        ("goodbye_pipeline.py", GOODBYE),
        (
            "nightly_pipeline.py",
            &GOODBYE.replace("goodbye-pipeline", "nightly-pipeline"),
        ),
    ]);
    let url = server.url.clone();
    assert_exit(
        &deploy_args(&ctx, &["deploy", "--endpoint", &url, "--version-tag", "v1"]),
        0,
    );
    let id_of = |name: &str| -> String {
        let out = deploy_args(
            &ctx,
            &["history", name, "--endpoint", &url, "--output", "json"],
        );
        let h: Value = serde_json::from_slice(&out.stdout).expect("history json");
        h["pipeline_id"].as_str().expect("id").to_string()
    };
    let (goodbye_id, nightly_id) = (id_of("goodbye_pipeline"), id_of("nightly_pipeline"));
    // Without --prune the report has no `prune` field (older reports stay the same).
    let out = deploy_args(&ctx, &["deploy", "--endpoint", &url, "--output", "json"]);
    assert_exit(&out, 0);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(report.get("prune").is_none(), "{report:#}");

    std::fs::remove_file(ctx.root().join("goodbye_pipeline.py")).expect("rm");
    std::fs::remove_file(ctx.root().join("nightly_pipeline.py")).expect("rm");
    let entries = |report: &Value| -> Vec<(String, String, String)> {
        report["prune"]
            .as_array()
            .unwrap_or_else(|| panic!("no prune list: {report:#}"))
            .iter()
            .map(|p| {
                let s = |k: &str| p[k].as_str().unwrap_or_default().to_string();
                (s("name"), s("pipeline_id"), s("action"))
            })
            .collect()
    };

    // Dry run: the planned deletions are in the JSON.
    let out = deploy_args(
        &ctx,
        &[
            "deploy",
            "--endpoint",
            &url,
            "--prune",
            "--dry-run",
            "--output",
            "json",
        ],
    );
    assert_exit(&out, 0);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        entries(&report),
        [
            (
                "goodbye_pipeline".into(),
                goodbye_id.clone(),
                "delete".into()
            ),
            (
                "nightly_pipeline".into(),
                nightly_id.clone(),
                "delete".into()
            ),
        ]
    );

    // The server refuses to delete nightly_pipeline: one deleted, one failed, both reported.
    let suffix: &'static str = Box::leak(format!("/pipelines/{nightly_id}").into_boxed_str());
    let proxy = faulty_one(
        &url,
        "DELETE",
        suffix,
        100,
        Fault::Reply(
            403,
            r#"{"code":7,"message":"injected: not allowed to delete this pipeline"}"#,
        ),
    );
    let ntfy = NtfyServer::start(Auth::Open);
    let summary = ctx.write("step_summary", "");
    let out = ctx
        .cmd()
        .args([
            "deploy",
            "--endpoint",
            &proxy.url,
            "--prune",
            "--output",
            "json",
        ])
        .args(["--report-file", "report.json"])
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("KFP_CI_NTFY_URL", format!("{}/kfp-deploys", ntfy.url))
        .output()
        .expect("run");
    assert_exit(&out, 1);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        entries(&report),
        [
            (
                "goodbye_pipeline".into(),
                goodbye_id.clone(),
                "deleted".into()
            ),
            (
                "nightly_pipeline".into(),
                nightly_id.clone(),
                "failed".into()
            ),
        ]
    );
    let reasons: Vec<&str> = report["prune"]
        .as_array()
        .expect("prune")
        .iter()
        .map(|p| p["reason"].as_str().unwrap_or_default())
        .collect();
    assert!(
        reasons[0].contains("goodbye_pipeline.py is gone") && reasons[0].contains("version(s)"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("not allowed to delete this pipeline"),
        "{reasons:?}"
    );
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(ctx.root().join("report.json")).expect("report file"),
    )
    .expect("report file json");
    assert_eq!(file["prune"], report["prune"]);

    let summary = std::fs::read_to_string(summary).expect("summary");
    assert!(
        summary.contains("| pruned pipeline | pipeline id | action | reason |")
            && summary.contains(&format!(
                "| `goodbye_pipeline` | `{goodbye_id}` | deleted |"
            ))
            && summary.contains(&format!("| `nightly_pipeline` | `{nightly_id}` | failed |")),
        "{summary}"
    );
    let sent = ntfy.accepted();
    assert_eq!(sent.len(), 1);
    let body = sent[0].json();
    let title = body["title"].as_str().unwrap_or_default();
    assert!(title.contains("1 pruned"), "{title}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("**Pruned**")
            && message.contains("`goodbye_pipeline`: deleted")
            && message.contains("`nightly_pipeline`: failed"),
        "{message}"
    );
}
