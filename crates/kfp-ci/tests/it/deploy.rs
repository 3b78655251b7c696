//! `kfp-ci plan` and `kfp-ci deploy`: the real binary, real kfp compile, real `kfp-ci serve` on an
//! ephemeral port (plus a failure-injecting proxy in front of it where serve cannot fail on demand).

use std::process::Output;

use serde_json::Value;

use crate::common::{Server, TestContext, python};
use crate::faulty::{Fault, Faulty, Rule};

pub(crate) const HELLO: &str = r#"from kfp import dsl


@dsl.component(base_image="python:3.11-slim")
def say(message: str) -> str:
    print(message)
    return message


@dsl.pipeline(name="hello-pipeline", description="Says hello")
def hello_pipeline(message: str = "hello"):
    say(message=message)
"#;

pub(crate) const GOODBYE: &str = r#"from kfp import dsl


@dsl.component(base_image="python:3.11-slim")
def wave(times: int) -> int:
    return times


@dsl.pipeline(name="goodbye-pipeline")
def goodbye_pipeline(times: int = 2):
    wave(times=times)
"#;

const BROKEN: &str = "from kfp import dsl\nimport module_that_does_not_exist\n";

pub(crate) const TAG: &str = "v20260101-120000";

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

pub(crate) fn run(ctx: &TestContext, args: &[&str]) -> Output {
    ctx.cmd().args(args).output().expect("run kfp-ci")
}

/// A repository holding `files` (path, content) and a `kfp-ci serve` on its own store.
pub(crate) fn repo_and_server(files: &[(&str, &str)]) -> (TestContext, Server) {
    let ctx = TestContext::new();
    for (path, content) in files {
        ctx.write(path, content);
    }
    let server = Server::start(&ctx.root().join("registry.db"), &[]);
    (ctx, server)
}

/// A repository with the hello and goodbye pipelines and a `kfp-ci serve` on its own store.
pub(crate) fn hello_and_goodbye() -> (TestContext, Server) {
    repo_and_server(&[
        ("hello_pipeline.py", HELLO),
        ("goodbye_pipeline.py", GOODBYE),
    ])
}

/// A proxy in front of `upstream` giving `fault` to the first `times` requests `method` whose
/// path ends with `path_suffix`.
pub(crate) fn faulty_one(
    upstream: &str,
    method: &'static str,
    path_suffix: &'static str,
    times: usize,
    fault: Fault,
) -> Faulty {
    Faulty::start(
        upstream,
        vec![Rule {
            method,
            path_suffix,
            times,
            fault,
        }],
    )
}

/// `kfp-ci args…`, which must exit with `code`.
#[track_caller]
pub(crate) fn run_exit(ctx: &TestContext, args: &[&str], code: i32) -> Output {
    let out = run(ctx, args);
    assert_exit(&out, code);
    out
}

/// Fail, showing `haystack`, unless it contains `needle`.
#[track_caller]
pub(crate) fn assert_contains(haystack: &str, needle: &str) {
    assert!(haystack.contains(needle), "{haystack}");
}

/// Fail with the run's stderr unless it exited with `code`.
#[track_caller]
pub(crate) fn assert_exit(out: &Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "{}", text(&out.stderr));
}

/// `kfp-ci <command> --endpoint ENDPOINT [args…] --output json`, which must exit with `code`.
#[track_caller]
pub(crate) fn json_run(
    ctx: &TestContext,
    command: &str,
    endpoint: &str,
    args: &[&str],
    code: i32,
) -> Output {
    let mut all = vec![command, "--endpoint", endpoint];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--output", "json"]);
    run_exit(ctx, &all, code)
}

/// A proxy in front of `upstream` whose health check answers `healthz`: a KFP release, store or
/// mode that `kfp-ci serve` does not have.
pub(crate) fn with_healthz(upstream: &str, healthz: &'static str) -> Faulty {
    faulty_one(upstream, "GET", "/healthz", 100, Fault::Reply(200, healthz))
}

pub(crate) fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

/// Filters for snapshots: times, tags, ports, ids, temp paths, durations.
fn snapshot_settings(ctx: &TestContext) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(&regex_escape(&ctx.root().display().to_string()), "[REPO]");
    s.add_filter(r"v\d{8}-\d{6}", "[TAG]");
    s.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]");
    s.add_filter(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "[UUID]",
    );
    s.add_filter(r"c1-[0-9a-f]{40}", "[HASH]");
    s.add_filter(r#""duration_ms": \d+"#, r#""duration_ms": [MS]"#);
    s.add_filter(r#""started_at": "[^"]+""#, r#""started_at": "[TIME]""#);
    s.add_filter(
        r#""kfp_ci_version": "[^"]+""#,
        r#""kfp_ci_version": "[VERSION]""#,
    );
    s.add_filter(r#""commit_sha": "[^"]+""#, r#""commit_sha": "[SHA]""#);
    s.add_filter(r"[ \t]+\n", "\n");
    s
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// What the official `kfp.Client` sees: pipeline name → sorted version names.
pub(crate) fn kfp_client_view(url: &str, namespace: Option<&str>) -> Value {
    let script = r#"
import json, sys
import kfp
client = kfp.Client(host=sys.argv[1])
ns = sys.argv[2] or None
out = {}
token = ""
while True:
    resp = client.list_pipelines(page_size=100, page_token=token, namespace=ns)
    for p in resp.pipelines or []:
        versions = client.list_pipeline_versions(p.pipeline_id, page_size=100).pipeline_versions or []
        out[p.name] = {"display_name": p.display_name, "versions": sorted(v.display_name for v in versions)}
    token = resp.next_page_token
    if not token:
        break
print(json.dumps(out, sort_keys=True))
"#;
    kfp_client_json(script, &[url, namespace.unwrap_or("")])
}

/// Run `script` with the test venv's Python (the kfp SDK) and `args`; its last stdout line, as
/// JSON.
pub(crate) fn kfp_client_json(script: &str, args: &[&str]) -> Value {
    let out = crate::common::command(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "kfp.Client failed:\n{}",
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("{}")).expect("kfp.Client JSON")
}

#[test]
fn fresh_deploy_of_the_examples_then_unchanged_redeploy() {
    let ctx = TestContext::new();
    ctx.copy_examples();
    let server = Server::start(&ctx.root().join("registry.db"), &[]);

    let out = json_run(
        &ctx,
        "deploy",
        &server.url,
        &["examples", "--version-tag", TAG],
        0,
    );
    let report = json(&out);
    assert_eq!(report["counts"]["discovered"], 6);
    assert_eq!(report["counts"]["created"], 6, "{report:#}");
    assert_eq!(report["counts"]["failed"], 0);
    snapshot_settings(&ctx).bind(|| {
        insta::assert_snapshot!("fresh_deploy_stderr", text(&out.stderr));
    });

    // The official client sees six pipelines, each with exactly one version named by the tag.
    let view = kfp_client_view(&server.url, None);
    let view = view.as_object().expect("object");
    assert_eq!(view.len(), 6, "{view:#?}");
    for (name, p) in view {
        assert_eq!(p["versions"], serde_json::json!([TAG]), "{name}");
        assert_ne!(p["versions"][0], Value::String(name.clone()));
    }

    // Redeploy: all unchanged, nothing uploaded.
    let out = json_run(&ctx, "deploy", &server.url, &["examples"], 0);
    let report = json(&out);
    assert_eq!(report["counts"]["unchanged"], 6, "{report:#}");
    assert_eq!(report["counts"]["created"], 0);
    assert_eq!(report["counts"]["updated"], 0);
    let view = kfp_client_view(&server.url, None);
    for (name, p) in view.as_object().expect("object") {
        assert_eq!(p["versions"], serde_json::json!([TAG]), "{name}");
    }
}

#[test]
fn one_edited_pipeline_gets_exactly_one_new_version() {
    let ctx = TestContext::new();
    ctx.write("pipelines/hello_pipeline.py", HELLO);
    ctx.write("pipelines/goodbye_pipeline.py", GOODBYE);
    let server = Server::start(&ctx.root().join("registry.db"), &[]);
    // Only the test clock moves time: without its advance below, this test fails every time.
    server.freeze_clock();
    let endpoint = server.url.as_str();
    let out = run(
        &ctx,
        &["deploy", "--endpoint", endpoint, "--version-tag", "v1"],
    );
    assert_exit(&out, 0);

    ctx.write(
        "pipelines/hello_pipeline.py",
        &HELLO.replace("message: str = \"hello\"", "message: str = \"bonjour\""),
    );
    // plan shows it, and --detailed-exitcode says something would change.
    let out = json_run(&ctx, "plan", endpoint, &["--detailed-exitcode"], 3);
    let plan = json(&out);
    snapshot_settings(&ctx).bind(|| {
        insta::assert_snapshot!("plan_one_edited_stderr", text(&out.stderr));
        insta::assert_json_snapshot!("plan_one_edited_json", plan, {
            ".duration_ms" => "[MS]",
            ".started_at" => "[TIME]",
            ".kfp_ci_version" => "[VERSION]",
            ".target.endpoint" => "[ENDPOINT]",
            ".target.server_version" => "[SERVER_VERSION]",
            ".kfp_version" => "[KFP]",
            ".pipelines[].pipeline_id" => "[ID]",
            ".pipelines[].spec_hash" => "[HASH]",
            ".ci" => "[CI]",
            ".timings" => "[TIMINGS]",
        });
    });

    // KFP timestamps have second precision: versions of different specs created in the same
    // second leave "the newest" undecided, and kfp-ci then plans a new version to be safe.
    server.advance_clock(1);
    let out = json_run(&ctx, "deploy", endpoint, &["--version-tag", "v2"], 0);
    let report = json(&out);
    assert_eq!(report["counts"]["updated"], 1, "{report:#}");
    assert_eq!(report["counts"]["unchanged"], 1);
    let view = kfp_client_view(endpoint, None);
    assert_eq!(
        view["hello_pipeline"]["versions"],
        serde_json::json!(["v1", "v2"])
    );
    assert_eq!(
        view["goodbye_pipeline"]["versions"],
        serde_json::json!(["v1"])
    );

    // Unchanged plan: exit 0 even with --detailed-exitcode.
    let out = run(
        &ctx,
        &["plan", "--endpoint", endpoint, "--detailed-exitcode"],
    );
    assert_exit(&out, 0);
}

#[test]
fn rejected_token_gets_a_hint_and_is_never_printed() {
    let ctx = TestContext::new();
    ctx.write("hello_pipeline.py", HELLO);
    let server = Server::start(
        &ctx.root().join("registry.db"),
        &["--token", "the-right-token-1234"],
    );
    let out = ctx
        .cmd()
        .args(["deploy", "--endpoint", &server.url])
        .env("KF_PIPELINES_TOKEN", "a-wrong-token-5678")
        .output()
        .expect("run");
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("401"), "{stderr}");
    assert!(stderr.contains("KF_PIPELINES_TOKEN"), "{stderr}");
    assert!(!stderr.contains("a-wrong-token-5678"), "{stderr}");
    assert!(!text(&out.stdout).contains("a-wrong-token-5678"));

    // The right token from a token file works.
    let token_file = ctx.write("token", "the-right-token-1234\n");
    let out = ctx
        .cmd()
        .args(["deploy", "--endpoint", &server.url, "--token-file"])
        .arg(&token_file)
        .output()
        .expect("run");
    assert_exit(&out, 0);
    assert!(!text(&out.stderr).contains("the-right-token-1234"));
}

#[test]
fn namespaces_are_kept_apart() {
    let ctx = TestContext::new();
    ctx.write("hello_pipeline.py", HELLO);
    let server = Server::start(&ctx.root().join("registry.db"), &["--multi-user"]);
    for (ns, tag) in [("team-a", "v1"), ("team-b", "v2")] {
        let out = json_run(
            &ctx,
            "deploy",
            &server.url,
            &["--namespace", ns, "--version-tag", tag],
            0,
        );
        assert_eq!(json(&out)["counts"]["created"], 1, "{ns}");
    }
    // Each namespace has its own pipeline with its own first version.
    let a = kfp_client_view(&server.url, Some("team-a"));
    let b = kfp_client_view(&server.url, Some("team-b"));
    assert_eq!(
        a["hello_pipeline"]["versions"],
        serde_json::json!(["v1"]),
        "{a:#}"
    );
    assert_eq!(
        b["hello_pipeline"]["versions"],
        serde_json::json!(["v2"]),
        "{b:#}"
    );
    let out = run(
        &ctx,
        &[
            "plan",
            "--endpoint",
            &server.url,
            "--namespace",
            "team-c",
            "--output",
            "json",
        ],
    );
    assert_eq!(json(&out)["pipelines"][0]["action"], "create");
}

#[test]
fn a_pipeline_that_fails_to_compile_does_not_stop_the_others() {
    let (ctx, server) =
        repo_and_server(&[("hello_pipeline.py", HELLO), ("broken_pipeline.py", BROKEN)]);
    let out = json_run(&ctx, "deploy", &server.url, &["--version-tag", TAG], 1);
    let report = json(&out);
    assert_eq!(report["counts"]["created"], 1, "{report:#}");
    assert_eq!(report["counts"]["failed"], 1);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("module_that_does_not_exist"), "{stderr}");
    let view = kfp_client_view(&server.url, None);
    assert_eq!(view.as_object().expect("object").len(), 1, "{view:#}");

    // --atomic: nothing applied.
    ctx.write("goodbye_pipeline.py", GOODBYE);
    json_run(&ctx, "deploy", &server.url, &["--atomic"], 1);
    let view = kfp_client_view(&server.url, None);
    assert_eq!(view.as_object().expect("object").len(), 1, "{view:#}");
}

#[test]
fn ci_without_an_endpoint_is_a_configuration_error() {
    let ctx = TestContext::new();
    ctx.write("hello_pipeline.py", HELLO);
    let out = ctx
        .cmd()
        .arg("deploy")
        .env("CI", "true")
        .output()
        .expect("run");
    assert_exit(&out, 2);
    assert!(text(&out.stderr).contains("KF_PIPELINES_ENDPOINT"));
    assert!(!ctx.root().join(".kfp-ci").exists());
}

#[test]
fn embedded_default_store_outside_ci() {
    let ctx = TestContext::new();
    ctx.write("hello_pipeline.py", HELLO);
    let out = run(&ctx, &["deploy", "--output", "json"]);
    assert_exit(&out, 0);
    assert_eq!(json(&out)["counts"]["created"], 1);
    assert_contains(&text(&out.stderr), "local store");
    assert!(ctx.root().join(".kfp-ci/registry.db").exists());
    let out = run(&ctx, &["deploy", "--output", "json"]);
    assert_exit(&out, 0);
    assert_eq!(json(&out)["counts"]["unchanged"], 1);
}

#[test]
fn dry_run_force_keep_versions_and_links() {
    let (ctx, server) = repo_and_server(&[("hello_pipeline.py", HELLO)]);
    // Only the test clock moves time: without its advance below, this test fails every time.
    server.freeze_clock();
    let endpoint = server.url.as_str();
    let out = json_run(&ctx, "deploy", endpoint, &["--dry-run"], 0);
    assert_eq!(json(&out)["pipelines"][0]["status"], "planned");
    assert_eq!(kfp_client_view(endpoint, None), serde_json::json!({}));
    for tag in ["v1", "v2", "v3", "v4"] {
        if tag == "v4" {
            // Second-precision timestamps: a version from the newest's second is never pruned.
            server.advance_clock(1);
        }
        let out = json_run(
            &ctx,
            "deploy",
            endpoint,
            &[
                "--force",
                "--keep-versions",
                "2",
                "--version-tag",
                tag,
                "--ui-url",
                "https://kfp.example/",
            ],
            0,
        );
        let report = json(&out);
        let url = report["pipelines"][0]["url"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            url.starts_with("https://kfp.example/#/pipelines/details/"),
            "{report:#}"
        );
    }
    let view = kfp_client_view(endpoint, None);
    assert_eq!(
        view["hello_pipeline"]["versions"],
        serde_json::json!(["v3", "v4"])
    );
    // Unchanged pipelines are pruned too; the newest version always stays.
    let out = json_run(&ctx, "deploy", endpoint, &["--keep-versions", "1"], 0);
    assert_eq!(json(&out)["counts"]["unchanged"], 1);
    let view = kfp_client_view(endpoint, None);
    assert_eq!(
        view["hello_pipeline"]["versions"],
        serde_json::json!(["v4"])
    );
}

#[test]
fn unreachable_server_is_exit_2_with_the_endpoint_named() {
    let ctx = TestContext::new();
    ctx.write("hello_pipeline.py", HELLO);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}/pipeline", listener.local_addr().expect("addr"));
    drop(listener);
    let out = run(&ctx, &["plan", "--endpoint", &endpoint]);
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&endpoint), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    // deploy still leaves a report saying why.
    let out = json_run(
        &ctx,
        "deploy",
        &endpoint,
        &["--report-file", "report.json"],
        2,
    );
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(ctx.root().join("report.json")).expect("report file"),
    )
    .expect("report JSON");
    assert_eq!(report, json(&out));
    assert!(
        report["errors"][0]
            .as_str()
            .is_some_and(|e| e.contains(&endpoint)),
        "{report:#}"
    );
    // No scheme: refused, nothing guessed.
    let out = run(&ctx, &["plan", "--endpoint", "ml-pipeline.kubeflow:8888"]);
    assert_exit(&out, 2);
    assert!(text(&out.stderr).contains("has no scheme"));
}

/// Name, description and tags of every version of every pipeline, from the official client.
pub(crate) fn kfp_client_versions(url: &str) -> Value {
    let script = r#"
import json, sys
import kfp
client = kfp.Client(host=sys.argv[1])
out = {}
for p in client.list_pipelines(page_size=100).pipelines or []:
    for v in client.list_pipeline_versions(p.pipeline_id, page_size=100).pipeline_versions or []:
        out[p.name + "/" + v.name] = {"description": v.description, "tags": getattr(v, "tags", None)}
print(json.dumps(out, sort_keys=True))
"#;
    kfp_client_json(script, &[url])
}

#[test]
fn ci_run_provenance_reaches_the_versions_and_the_ci_outputs() {
    let (ctx, server) = repo_and_server(&[("hello_pipeline.py", HELLO)]);
    let outputs = ctx.root().join("github_output");
    let out = ctx
        .cmd()
        .args(["deploy", "--endpoint", &server.url, "--version-tag", TAG])
        .args(["--report-file", "out/report.json"])
        .env("CI", "true")
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567")
        .env("GITHUB_REF", "refs/heads/main")
        .env("GITHUB_REF_NAME", "main")
        .env("GITHUB_SERVER_URL", "https://github.example")
        .env("GITHUB_REPOSITORY", "ml/pipelines")
        .env("GITHUB_RUN_ID", "4711")
        .env("GITHUB_OUTPUT", &outputs)
        .output()
        .expect("run");
    assert_exit(&out, 0);
    let versions = kfp_client_versions(&server.url);
    let v = &versions[format!("hello_pipeline/{TAG}")];
    let description = v["description"].as_str().unwrap_or_default();
    assert!(
        description.starts_with("Deployed by kfp-ci "),
        "{description}"
    );
    assert!(description.contains("hello_pipeline.py"), "{description}");
    assert!(
        description.contains("0123456789abcdef0123456789abcdef01234567"),
        "{description}"
    );
    assert!(description.contains("main"), "{description}");
    assert!(description.contains("4711"), "{description}");
    assert_eq!(
        v["tags"]["git-sha"], "0123456789abcdef0123456789abcdef01234567",
        "{v:#}"
    );
    assert_eq!(v["tags"]["managed-by"], "kfp-ci", "{v:#}");
    assert_eq!(v["tags"]["run-id"], "4711", "{v:#}");
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(ctx.root().join("out/report.json")).expect("report file"),
    )
    .expect("report JSON");
    assert_eq!(report["counts"]["created"], 1);
    assert_eq!(
        report["ci"]["commit_sha"],
        "0123456789abcdef0123456789abcdef01234567"
    );
    assert!(
        report["pipelines"][0]["mermaid"]
            .as_str()
            .is_some_and(|m| m.starts_with("flowchart")),
        "{report:#}"
    );
    assert!(outputs.exists(), "ci::publish wrote no $GITHUB_OUTPUT");
}

#[test]
fn kubernetes_store_gets_dns_1123_names_with_the_readable_display_name() {
    let (ctx, server) = repo_and_server(&[("hello_pipeline.py", HELLO)]);
    // serve has no kubernetes store: the proxy makes its health check say so.
    let proxy = with_healthz(
        &server.url,
        r#"{"commit_sha":"abc","tag_name":"2.17.0","multi_user":false,"pipeline_store":"kubernetes"}"#,
    );
    let out = json_run(&ctx, "deploy", &proxy.url, &["--version-tag", TAG], 0);
    assert_eq!(json(&out)["pipelines"][0]["name"], "hello-pipeline");
    let view = kfp_client_view(&server.url, None);
    assert_eq!(
        view["hello-pipeline"]["display_name"], "hello_pipeline",
        "{view:#}"
    );
    let out = run(
        &ctx,
        &["deploy", "--endpoint", &proxy.url, "--output", "json"],
    );
    assert_eq!(json(&out)["counts"]["unchanged"], 1);
}

#[test]
fn older_server_gets_no_tags_and_a_version_skew_warning() {
    let (ctx, server) = repo_and_server(&[("hello_pipeline.py", HELLO)]);
    let proxy = with_healthz(
        &server.url,
        r#"{"commit_sha":"abc","tag_name":"2.14.3","multi_user":false,"pipeline_store":"database"}"#,
    );
    let out = run(
        &ctx,
        &["deploy", "--endpoint", &proxy.url, "--version-tag", TAG],
    );
    assert_exit(&out, 0);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("newer than the server (2.14.3)"),
        "{stderr}"
    );
    let versions = kfp_client_versions(&server.url);
    let v = &versions[format!("hello_pipeline/{TAG}")];
    assert!(
        v["tags"].is_null() || v["tags"] == serde_json::json!({}),
        "{v:#}"
    );
    assert!(
        v["description"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Deployed by kfp-ci ")
    );
}

#[test]
fn named_target_from_the_configuration_with_its_own_token_variable() {
    let ctx = TestContext::new();
    ctx.write("hello_pipeline.py", HELLO);
    let server = Server::start(
        &ctx.root().join("registry.db"),
        &["--token", "team-token-abcdef", "--multi-user"],
    );
    ctx.write(
        "kfp-ci.toml",
        &format!(
            "default_target = \"dev\"\n\n[targets.dev]\nendpoint = \"{}\"\nnamespace = \"ml-dev\"\ntoken_env = \"DEV_KFP_TOKEN\"\n",
            server.url
        ),
    );
    let out = ctx
        .cmd()
        .args(["deploy", "--version-tag", TAG, "--output", "json"])
        .env("DEV_KFP_TOKEN", "team-token-abcdef")
        .output()
        .expect("run");
    assert_exit(&out, 0);
    let report = json(&out);
    assert_eq!(report["target"]["name"], "dev");
    assert_eq!(report["target"]["namespace"], "ml-dev");
    assert_eq!(report["counts"]["created"], 1);
    assert!(!text(&out.stdout).contains("team-token-abcdef"));
    assert!(!text(&out.stderr).contains("team-token-abcdef"));
    // An unknown target is a configuration error naming the known ones.
    let out = run(&ctx, &["plan", "--target", "prod"]);
    assert_exit(&out, 2);
    assert_contains(&text(&out.stderr), "[targets.dev]");
}
