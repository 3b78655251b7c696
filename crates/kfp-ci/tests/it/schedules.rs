//! Experiments, runs and recurring runs: `kfp-ci serve` against the official kfp client, and
//! `[[schedules]]` reconciled by `kfp-ci deploy`, checked through the official client.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Server, TestContext, python, workspace_root};
use crate::deploy::{GOODBYE, HELLO, assert_exit, json, json_run, run, text};

const API: &str = "/apis/v2beta1";

fn get_json(url: &str) -> Value {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        reqwest::get(url)
            .await
            .expect("get")
            .json()
            .await
            .expect("json")
    })
}

/// hello_pipeline compiled by the real SDK.
fn compiled_spec() -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("hello_pipeline.py");
    std::fs::write(
        &script,
        format!("{HELLO}\nimport sys\nfrom kfp import compiler\ncompiler.Compiler().compile(hello_pipeline, sys.argv[1])\n"),
    )
    .expect("write");
    let out = dir.path().join("hello.yaml");
    let status = crate::common::command(python())
        .arg(&script)
        .arg(&out)
        .status()
        .expect("python");
    assert!(status.success(), "compile failed");
    std::fs::read_to_string(out).expect("yaml")
}

/// A python script run with the official client; its last stdout line is returned.
fn client_script(script: &str, args: &[&str]) -> String {
    let home = tempfile::tempdir().expect("home");
    let mut cmd = crate::common::command(python());
    cmd.arg("-W").arg("ignore").arg("-c").arg(script).args(args);
    cmd.env("HOME", home.path());
    for (key, _) in std::env::vars() {
        if key.starts_with("KF_PIPELINES_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd.output().expect("run python");
    assert!(
        out.status.success(),
        "kfp client script failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

/// What the official `kfp.Client` sees: recurring run display name → its fields (every one, so
/// duplicates show as a list longer than one).
fn recurring_view(url: &str) -> Value {
    let script = r#"
import json, sys
import kfp
client = kfp.Client(host=sys.argv[1])
experiments = {e.experiment_id: e.display_name for e in (client.list_experiments(page_size=100).experiments or [])}
out = {}
resp = client.list_recurring_runs(page_size=100)
for r in resp.recurring_runs or []:
    t = r.trigger
    ref = r.pipeline_version_reference
    out.setdefault(r.display_name, []).append({
        "id": r.recurring_run_id,
        "status": r.status,
        "cron": t.cron_schedule.cron if t and t.cron_schedule else None,
        "interval": t.periodic_schedule.interval_second if t and t.periodic_schedule else None,
        "pipeline_id": ref.pipeline_id if ref else None,
        "version_id": (ref.pipeline_version_id or None) if ref else None,
        "experiment": experiments.get(r.experiment_id),
        "parameters": (r.runtime_config.parameters if r.runtime_config else None) or {},
        "description": r.description,
        "max_concurrency": r.max_concurrency,
    })
print(json.dumps(out, sort_keys=True))
"#;
    serde_json::from_str(&client_script(script, &[url])).expect("view JSON")
}

/// The one recurring run of a schedule (fails on duplicates).
#[track_caller]
fn only<'a>(view: &'a Value, name: &str) -> &'a Value {
    let list = view[name]
        .as_array()
        .unwrap_or_else(|| panic!("no {name} in {view:#}"));
    assert_eq!(
        list.len(),
        1,
        "exactly one recurring run for {name}: {view:#}"
    );
    &list[0]
}

/// `deploy --version-tag TAG` (exit 0); its report, whose (schedule, action) rows must be `want`.
#[track_caller]
fn deploy_expecting(ctx: &TestContext, url: &str, tag: &str, want: &[(&str, &str)]) -> Value {
    let report = json(&json_run(ctx, "deploy", url, &["--version-tag", tag], 0));
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(name, action)| (name.to_string(), action.to_string()))
        .collect();
    assert_eq!(schedule_rows(&report), want, "{report:#}");
    report
}

/// The version id a report gives hello_pipeline.
fn hello_version_id(report: &Value) -> Value {
    report["pipelines"]
        .as_array()
        .expect("pipelines")
        .iter()
        .find(|p| p["name"] == "hello_pipeline")
        .map(|p| p["version_id"].clone())
        .expect("hello version")
}

fn schedule_rows(report: &Value) -> Vec<(String, String)> {
    report["schedules"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_string(),
                s["action"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

const CONFIG: &str = r#"
[[schedules]]
name = "nightly-hello"
pipeline = "hello_pipeline"
cron = "0 2 * * *"
experiment = "nightly"
parameters = { message = "good night" }

[[schedules]]
name = "goodbye-every-6h"
pipeline = "goodbye_pipeline"
every = "6h"
parameters = { times = 3 }
max_concurrency = 2
"#;

fn repo(config: &str) -> (TestContext, Server) {
    let ctx = TestContext::new();
    ctx.write("pipelines/hello_pipeline.py", HELLO);
    ctx.write("pipelines/goodbye_pipeline.py", GOODBYE);
    ctx.write("kfp-ci.toml", config);
    let server = Server::start(&ctx.root().join("registry.db"), &[]);
    (ctx, server)
}

/// Created, unchanged on redeploy (same ids), replaced on a change with what differs in the
/// plan, disabled, deleted when removed; a recurring run kfp-ci did not create is never touched.
#[test]
fn schedules_are_created_kept_replaced_disabled_and_deleted() {
    let (ctx, server) = repo(CONFIG);
    let url = server.url.as_str();
    deploy_expecting(
        &ctx,
        url,
        "v1",
        &[("nightly-hello", "create"), ("goodbye-every-6h", "create")],
    );
    let view = recurring_view(url);
    let nightly = only(&view, "nightly-hello").clone();
    assert_eq!(
        nightly["cron"], "0 0 2 * * *",
        "5-field cron gets KFP's seconds field"
    );
    assert_eq!(nightly["status"], "ENABLED");
    assert_eq!(nightly["experiment"], "nightly");
    assert_eq!(
        nightly["version_id"],
        Value::Null,
        "latest: no version pinned"
    );
    assert_eq!(nightly["parameters"], json!({"message": "good night"}));
    assert!(
        nightly["description"]
            .as_str()
            .unwrap_or_default()
            .contains("kfp-ci:{\"schedule\":\"nightly-hello\""),
        "{nightly}"
    );
    let goodbye = only(&view, "goodbye-every-6h").clone();
    assert_eq!(goodbye["interval"], "21600");
    assert_eq!(goodbye["experiment"], "Default");
    assert_eq!(goodbye["max_concurrency"], "2");

    // A recurring run made by hand, on the same pipeline, with a schedule's display name.
    let hand = client_script(
        r#"
import sys, kfp
c = kfp.Client(host=sys.argv[1])
pid = c.get_pipeline_id("hello_pipeline")
vid = c.list_pipeline_versions(pid).pipeline_versions[0].pipeline_version_id
e = c.create_experiment("by-hand")
r = c.create_recurring_run(e.experiment_id, "nightly-hello", cron_expression="0 0 5 * * *",
                           pipeline_id=pid, version_id=vid)
print(r.recurring_run_id)
"#,
        &[url],
    );

    // Redeploy: nothing changes, same ids.
    deploy_expecting(
        &ctx,
        url,
        "v2",
        &[
            ("nightly-hello", "unchanged"),
            ("goodbye-every-6h", "unchanged"),
        ],
    );
    let view = recurring_view(url);
    assert_eq!(view["goodbye-every-6h"][0]["id"], goodbye["id"]);
    let ids: Vec<&Value> = view["nightly-hello"]
        .as_array()
        .expect("list")
        .iter()
        .map(|r| &r["id"])
        .collect();
    assert!(
        ids.contains(&&nightly["id"]) && ids.contains(&&json!(hand)),
        "{view:#}"
    );

    // A changed cron: plan says what differs, deploy replaces (new id, old one gone).
    ctx.write(
        "kfp-ci.toml",
        &CONFIG.replace("cron = \"0 2 * * *\"", "cron = \"30 3 * * 1-5\""),
    );
    let out = json_run(&ctx, "plan", url, &[], 0);
    let plan = json(&out);
    let stderr = text(&out.stderr);
    assert_eq!(plan["schedules"][0]["action"], "replace", "{plan:#}");
    let reason = plan["schedules"][0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("trigger: cron 0 0 2 * * * → cron 0 30 3 * * 1-5"),
        "{reason}"
    );
    assert!(
        stderr.contains("nightly-hello") && stderr.contains("replace"),
        "{stderr}"
    );
    assert_eq!(plan["schedules"][1]["action"], "unchanged");
    let out = json_run(&ctx, "plan", url, &["--detailed-exitcode"], 3);
    drop(out);

    let out = json_run(&ctx, "deploy", url, &["--version-tag", "v3"], 0);
    let report = json(&out);
    assert_eq!(report["schedules"][0]["action"], "replace", "{report:#}");
    assert_eq!(report["schedules"][0]["deleted"], json!([nightly["id"]]));
    let view = recurring_view(url);
    let managed: Vec<&Value> = view["nightly-hello"]
        .as_array()
        .expect("list")
        .iter()
        .filter(|r| r["id"] != json!(hand))
        .collect();
    assert_eq!(managed.len(), 1, "{view:#}");
    assert_ne!(managed[0]["id"], nightly["id"]);
    assert_eq!(managed[0]["cron"], "0 30 3 * * 1-5");
    assert_eq!(
        view["goodbye-every-6h"][0]["id"], goodbye["id"],
        "the other one kept"
    );

    // Removed → deleted; enabled = false → disabled in place; the hand-made one untouched.
    ctx.write(
        "kfp-ci.toml",
        r#"
[[schedules]]
name = "goodbye-every-6h"
pipeline = "goodbye_pipeline"
every = "6h"
parameters = { times = 3 }
max_concurrency = 2
enabled = false
"#,
    );
    let out = json_run(&ctx, "deploy", url, &["--version-tag", "v4"], 0);
    let report = json(&out);
    let mut rows = schedule_rows(&report);
    rows.sort();
    assert_eq!(
        rows,
        [
            ("goodbye-every-6h".to_string(), "disable".to_string()),
            ("nightly-hello".to_string(), "delete".to_string())
        ],
        "{report:#}"
    );
    let view = recurring_view(url);
    let goodbye_now = only(&view, "goodbye-every-6h");
    assert_eq!(goodbye_now["id"], goodbye["id"]);
    assert_eq!(goodbye_now["status"], "DISABLED");
    assert_eq!(
        only(&view, "nightly-hello")["id"],
        json!(hand),
        "hand-made one kept"
    );

    // `schedules = []` prunes the rest (disabled ones included); experiments stay.
    ctx.write("kfp-ci.toml", "schedules = []\n");
    let out = json_run(&ctx, "deploy", url, &["--version-tag", "v5"], 0);
    assert_eq!(
        schedule_rows(&json(&out)),
        [("goodbye-every-6h".to_string(), "delete".to_string())]
    );
    let view = recurring_view(url);
    assert!(view.get("goodbye-every-6h").is_none(), "{view:#}");
    assert_eq!(only(&view, "nightly-hello")["id"], json!(hand));
    let experiments = client_script(
        "import sys, kfp\nprint(sorted(e.display_name for e in kfp.Client(host=sys.argv[1]).list_experiments().experiments))",
        &[url],
    );
    assert!(experiments.contains("'nightly'"), "{experiments}");
}

/// `version = "pinned"` points at the version the deploy uploaded and is replaced when the
/// pipeline gets a new one; `prune_schedules = "disable"` disables instead of deleting.
#[test]
fn pinned_schedules_follow_new_versions() {
    let config = r#"
[deploy]
prune_schedules = "disable"

[[schedules]]
name = "pinned-hello"
pipeline = "hello_pipeline"
cron = "@daily"
version = "pinned"
"#;
    let (ctx, server) = repo(config);
    let url = server.url.as_str();
    let out = json_run(&ctx, "deploy", url, &["--version-tag", "v1"], 0);
    let v1 = hello_version_id(&json(&out));
    let first = only(&recurring_view(url), "pinned-hello").clone();
    assert_eq!(first["version_id"], v1, "pinned to the uploaded version");

    // Unchanged pipeline: unchanged schedule.
    let out = json_run(&ctx, "deploy", url, &["--version-tag", "v1b"], 0);
    assert_eq!(json(&out)["schedules"][0]["action"], "unchanged");

    ctx.write(
        "pipelines/hello_pipeline.py",
        &HELLO.replace("message: str = \"hello\"", "message: str = \"bonjour\""),
    );
    let out = json_run(&ctx, "plan", url, &[], 0);
    let plan = json(&out);
    assert_eq!(plan["schedules"][0]["action"], "replace", "{plan:#}");
    assert!(
        plan["schedules"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("the version this deploy uploads"),
        "{plan:#}"
    );
    let out = json_run(&ctx, "deploy", url, &["--version-tag", "v2"], 0);
    let v2 = hello_version_id(&json(&out));
    assert_ne!(v1, v2);
    let second = only(&recurring_view(url), "pinned-hello").clone();
    assert_eq!(second["version_id"], v2, "follows the new version");
    assert_ne!(second["id"], first["id"]);

    // Removed with prune_schedules = "disable": kept, disabled.
    ctx.write(
        "kfp-ci.toml",
        "schedules = []\n[deploy]\nprune_schedules = \"disable\"\n",
    );
    let out = json_run(&ctx, "deploy", url, &["--version-tag", "v3"], 0);
    assert_eq!(json(&out)["schedules"][0]["action"], "disable");
    let kept = only(&recurring_view(url), "pinned-hello").clone();
    assert_eq!(
        (kept["id"].clone(), kept["status"].clone()),
        (second["id"].clone(), json!("DISABLED"))
    );
}

/// Two deploys at once, then a third: exactly one recurring run per schedule.
#[test]
fn racing_deploys_leave_one_recurring_run_per_schedule() {
    let (ctx, server) = repo(CONFIG);
    let url = server.url.clone();
    let spawn = |tag: &str| {
        ctx.std_cmd()
            .args(["deploy", "--endpoint", &url, "--version-tag", tag, "-q"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let a = spawn("va");
    let b = spawn("vb");
    for child in [a, b] {
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let view = recurring_view(&url);
    only(&view, "nightly-hello");
    only(&view, "goodbye-every-6h");
    let out = json_run(&ctx, "deploy", &url, &["--version-tag", "vc"], 0);
    let rows = schedule_rows(&json(&out));
    assert!(rows.iter().all(|(_, a)| a == "unchanged"), "{rows:?}");

    // What a lost race (or a crash between create and delete) leaves: a second recurring run
    // with the same marker. The next deploy keeps the oldest and deletes the other.
    let kept = only(&recurring_view(&url), "goodbye-every-6h")["id"].clone();
    let twin = client_script(
        r#"
import sys, kfp
c = kfp.Client(host=sys.argv[1])
r = c.get_recurring_run(sys.argv[2])
# The same recurring run again, through the client's API object (kfp.Client's own method
# insists on a version id; this one follows the latest version).
r.recurring_run_id = r.created_at = r.updated_at = r.status = None
t = c._recurring_run_api.recurring_run_service_create_recurring_run(recurring_run=r)
print(t.recurring_run_id)
"#,
        &[&url, kept.as_str().expect("id")],
    );
    assert_eq!(
        recurring_view(&url)["goodbye-every-6h"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let out = json_run(&ctx, "deploy", &url, &["--version-tag", "vd"], 0);
    let report = json(&out);
    assert_eq!(
        report["schedules"][1]["deleted"],
        json!([twin]),
        "{report:#}"
    );
    assert_eq!(only(&recurring_view(&url), "goodbye-every-6h")["id"], kept);
}

/// Bad schedules are found by check and plan, named with their key, before anything is applied.
#[test]
fn bad_schedules_fail_check_and_plan_naming_schedule_and_key() {
    let config = r#"
[[schedules]]
name = "a"
pipeline = "no_such_pipeline"
cron = "0 2 * * *"

[[schedules]]
name = "b"
pipeline = "hello_pipeline"
cron = "0 2 * *"

[[schedules]]
name = "c"
pipeline = "goodbye_pipeline"
every = "6h"
parameters = { times = "three", loud = true }

[[schedules]]
name = "d"
pipeline = "hello_pipeline"
cron = "@hourly"
experiment = "EXPERIMENT_NAME_TOO_LONG"
"#
    .replace("EXPERIMENT_NAME_TOO_LONG", &"x".repeat(129));
    let (ctx, server) = repo(&config);
    let out = run(&ctx, &["check"]);
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    for needle in [
        "kfp-ci.toml: schedule \"a\": pipeline: \"no_such_pipeline\" is not a pipeline this repository deploys (known: goodbye_pipeline, hello_pipeline)",
        "kfp-ci.toml: schedule \"b\": cron: \"0 2 * *\" is not a valid cron expression",
        "kfp-ci.toml: schedule \"c\": parameters.times: \"three\" is not a int: pipeline goodbye_pipeline declares times: int",
        "kfp-ci.toml: schedule \"c\": parameters.loud: pipeline goodbye_pipeline has no parameter \"loud\" (it declares: times: int)",
        "kfp-ci.toml: schedule \"d\": experiment:",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in\n{stderr}");
    }
    let out = run(&ctx, &["deploy", "--endpoint", &server.url]);
    assert_exit(&out, 2);
    assert!(
        text(&out.stderr).contains("schedule \"b\": cron"),
        "{}",
        text(&out.stderr)
    );
    let pipelines = get_json(&format!("{}{API}/pipelines", server.url));
    assert_eq!(pipelines, json!({}), "nothing deployed");
}

/// The official kfp client's experiment, run and recurring-run methods against serve.
#[test]
fn kfp_python_client_runs_against_serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("r.db"), &["--run-duration-ms", "300"]);
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("work");
    let script = workspace_root().join("tests/python/kfp_client_runs.py");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let out = crate::common::command(python())
        .arg("-W")
        .arg("ignore")
        .arg(&script)
        .arg(&server.url)
        .arg(&work)
        .env("HOME", &home)
        .env_remove("KF_PIPELINES_ENDPOINT")
        .env_remove("KF_PIPELINES_NAMESPACE")
        .output()
        .expect("run the kfp client script");
    let stdout = text(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("checks passed"),
        "{stdout}\n{}",
        text(&out.stderr)
    );
}

/// A pipeline with versions v1 and v2: (pipeline id, version ids oldest first).
async fn upload_two_versions(c: &reqwest::Client, url: &str, spec: &str) -> (String, Vec<String>) {
    let mut pipeline_id = String::new();
    for (i, name) in ["v1", "v2"].iter().enumerate() {
        let form = reqwest::multipart::Form::new().part(
            "uploadfile",
            reqwest::multipart::Part::bytes(spec.as_bytes().to_vec()).file_name("p.yaml"),
        );
        let (path, query) = if i == 0 {
            ("upload", vec![("name", "p".to_string())])
        } else {
            (
                "upload_version",
                vec![
                    ("pipelineid", pipeline_id.clone()),
                    ("name", name.to_string()),
                ],
            )
        };
        let v: Value = c
            .post(format!("{url}{API}/pipelines/{path}"))
            .query(&query)
            .multipart(form)
            .send()
            .await
            .expect("upload")
            .json()
            .await
            .expect("json");
        if i == 0 {
            pipeline_id = v["pipeline_id"].as_str().expect("id").to_string();
        }
    }
    let list = fetch_json(
        c,
        format!("{url}{API}/pipelines/{pipeline_id}/versions?sort_by=created_at"),
    )
    .await;
    let versions = list["pipeline_versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v["pipeline_version_id"].as_str().expect("id").to_string())
        .collect();
    (pipeline_id, versions)
}

/// POST `body` (JSON) to `url`; the answer, as JSON.
async fn post_json(c: &reqwest::Client, url: String, body: Value) -> Value {
    let answer = c.post(&url).json(&body).send().await;
    answer
        .unwrap_or_else(|e| panic!("POST {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: not JSON: {e}"))
}

/// GET `url`; the answer, as JSON.
async fn fetch_json(c: &reqwest::Client, url: String) -> Value {
    let answer = c.get(&url).send().await;
    answer
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

/// Failed outcome, the latest version resolved for runs and kept open for recurring runs,
/// terminate, and the web page listing them with names escaped.
#[test]
fn serve_simulates_runs_and_resolves_latest_versions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(
        &dir.path().join("r.db"),
        &["--run-outcome", "failed", "--run-duration-ms", "150"],
    );
    let url = server.url.as_str();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let c = crate::common::http_client();
        let spec = compiled_spec();
        let (pipeline_id, versions) = upload_two_versions(&c, url, &spec).await;
        let experiment = post_json(&c, format!("{url}{API}/experiments"), json!({"display_name": "<b>smoke</b>"})).await;
        let eid = experiment["experiment_id"].as_str().expect("id");
        // A run with only the pipeline id runs its latest version (resolved now).
        let run = post_json(&c, format!("{url}{API}/runs"), json!({"display_name": "r", "experiment_id": eid,
                          "pipeline_version_reference": {"pipeline_id": pipeline_id}})).await;
        assert_eq!(
            run["pipeline_version_reference"]["pipeline_version_id"],
            json!(versions[1]),
            "{run:#}"
        );
        let rid = run["run_id"].as_str().expect("id").to_string();
        let started = Instant::now();
        let final_state = loop {
            let r = fetch_json(&c, format!("{url}{API}/runs/{rid}")).await;
            if r["state"] == "FAILED" || started.elapsed() > Duration::from_secs(10) {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(final_state["state"], "FAILED", "{final_state:#}");
        assert_eq!(final_state["state_history"].as_array().map(Vec::len), Some(3));

        // A recurring run with only the pipeline id keeps following the latest version.
        let rr = post_json(&c, format!("{url}{API}/recurringruns"), json!({"display_name": "rr", "experiment_id": eid, "mode": "ENABLE",
                          "max_concurrency": "1", "trigger": {"cron_schedule": {"cron": "0 0 * * * *"}},
                          "pipeline_version_reference": {"pipeline_id": pipeline_id}})).await;
        assert_eq!(rr["pipeline_version_reference"], json!({"pipeline_id": pipeline_id}), "{rr:#}");
        assert_eq!(rr["status"], "ENABLED");

        // Unknown fields are refused, as grpc-gateway does.
        let bad = c
            .post(format!("{url}{API}/runs"))
            .json(&json!({"display_name": "r", "bogus": 1}))
            .send()
            .await
            .expect("bad");
        assert_eq!(bad.status(), 400);

        // Before KFP 2.5.0 the latest version was resolved once, at creation.
        let dir = tempfile::tempdir().expect("tempdir");
        let old = Server::start(&dir.path().join("old.db"), &["--server-version", "2.4.0"]);
        let (old_pid, old_versions) = upload_two_versions(&c, &old.url, &spec).await;
        let rr = post_json(&c, format!("{}{API}/recurringruns", old.url), json!({"display_name": "rr", "mode": "ENABLE", "max_concurrency": 1,
                          "trigger": {"periodic_schedule": {"interval_second": 60}},
                          "pipeline_version_reference": {"pipeline_id": old_pid}})).await;
        assert_eq!(
            rr["pipeline_version_reference"]["pipeline_version_id"],
            json!(old_versions[1]),
            "{rr:#}"
        );

        // The web page lists the experiment (escaped), the recurring run and the run.
        let page = c.get(format!("{url}/")).send().await.expect("page").text().await.expect("text");
        assert!(page.contains("&lt;b&gt;smoke&lt;/b&gt;") && !page.contains("<b>smoke"), "{page}");
        assert!(page.contains("Recurring runs") && page.contains(&rid) && page.contains("FAILED"));
    });
}

/// `version = "latest"` (here by default) on a KFP 2.0 server, which fixes the version when a
/// recurring run is created: plan and deploy say so, naming the file, the schedule, the server's
/// release and the fix, create nothing for it, and still deploy the pinned schedule. On 2.5 the
/// same configuration goes through and the recurring run names no version (it follows).
#[test]
fn latest_schedules_on_a_server_before_2_5_are_an_error_naming_the_fix() {
    let config = r#"
[[schedules]]
name = "latest-hello"
pipeline = "hello_pipeline"
cron = "@daily"

[[schedules]]
name = "pinned-goodbye"
pipeline = "goodbye_pipeline"
cron = "@daily"
version = "pinned"
"#;
    let ctx = TestContext::new();
    ctx.write("pipelines/hello_pipeline.py", HELLO);
    ctx.write("pipelines/goodbye_pipeline.py", GOODBYE);
    ctx.write("kfp-ci.toml", config);
    let old = Server::start(&ctx.root().join("old.db"), &["--server-version", "2.0.0"]);
    let check = |report: &Value| {
        let rows = report["schedules"].as_array().expect("schedules");
        let latest = rows
            .iter()
            .find(|r| r["name"] == "latest-hello")
            .unwrap_or_else(|| panic!("{report:#}"));
        assert_eq!(latest["action"], "error", "{report:#}");
        let error = latest["error"].as_str().unwrap_or_default();
        for part in [
            "kfp-ci.toml",
            "\"latest-hello\"",
            "version = \"latest\"",
            "KFP 2.0.0",
            "2.5.0",
            "version = \"pinned\"",
        ] {
            assert!(error.contains(part), "{part:?} in {error}");
        }
    };
    let out = json_run(&ctx, "plan", &old.url, &[], 1);
    check(&json(&out));
    let out = json_run(&ctx, "deploy", &old.url, &["--version-tag", "v1"], 1);
    let report = json(&out);
    check(&report);
    assert!(
        text(&out.stderr).contains("latest-hello"),
        "{}",
        text(&out.stderr)
    );
    let pinned = report["schedules"]
        .as_array()
        .expect("schedules")
        .iter()
        .find(|r| r["name"] == "pinned-goodbye")
        .cloned()
        .expect("pinned row");
    assert_eq!(pinned["action"], "create", "{report:#}");
    let listed = get_json(&format!("{}{API}/recurringruns", old.url));
    let names: Vec<&str> = recurring_list(&listed)
        .map(|a| {
            a.iter()
                .filter_map(|r| r["display_name"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(names, ["pinned-goodbye"], "{listed:#}");

    // A 2.5 server follows the newest version: the same configuration deploys.
    let new = Server::start(&ctx.root().join("new.db"), &["--server-version", "2.5.0"]);
    let out = json_run(&ctx, "deploy", &new.url, &["--version-tag", "v1"], 0);
    let rows = schedule_rows(&json(&out));
    assert!(
        rows.contains(&("latest-hello".to_string(), "create".to_string())),
        "{rows:?}"
    );
    let listed = get_json(&format!("{}{API}/recurringruns", new.url));
    let latest = recurring_list(&listed)
        .and_then(|a| a.iter().find(|r| r["display_name"] == "latest-hello"))
        .cloned()
        .unwrap_or_else(|| panic!("{listed:#}"));
    assert_eq!(
        latest["pipeline_version_reference"]["pipeline_version_id"]
            .as_str()
            .unwrap_or_default(),
        "",
        "{latest:#}"
    );
}

/// The list of a `GET /recurringruns` answer (2.0 names the field `recurringRuns`).
fn recurring_list(listed: &Value) -> Option<&Vec<Value>> {
    listed["recurring_runs"]
        .as_array()
        .or_else(|| listed["recurringRuns"].as_array())
}

/// A namespace's recurring runs: display name → (id, cron, status, namespace, experiment id).
fn recurring_in(url: &str, namespace: &str) -> std::collections::BTreeMap<String, Vec<Value>> {
    let listed = get_json(&format!(
        "{url}{API}/recurringruns?namespace={namespace}&page_size=100"
    ));
    let mut out: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for r in recurring_list(&listed).cloned().unwrap_or_default() {
        out.entry(r["display_name"].as_str().unwrap_or_default().to_string())
            .or_default()
            .push(json!({
                "id": r["recurring_run_id"],
                "cron": r["trigger"]["cron_schedule"]["cron"],
                "status": r["status"],
                "namespace": r["namespace"],
                "experiment_id": r["experiment_id"],
                "pipeline_id": r["pipeline_version_reference"]["pipeline_id"],
            }));
    }
    out
}

/// Multi-user KFP: a deploy with `--namespace team-a` creates, replaces and prunes the recurring
/// runs (and their experiment) in team-a only; team-b's recurring runs of the same schedules,
/// also kfp-ci's, keep their ids, triggers and state.
#[test]
fn multi_user_schedules_stay_in_their_namespace() {
    let ctx = TestContext::new();
    ctx.write("pipelines/hello_pipeline.py", HELLO);
    ctx.write("pipelines/goodbye_pipeline.py", GOODBYE);
    ctx.write("kfp-ci.toml", CONFIG);
    let server = Server::start(&ctx.root().join("registry.db"), &["--multi-user"]);
    let url = server.url.as_str();
    let deploy_in = |ns: &str, tag: &str| {
        json(&json_run(
            &ctx,
            "deploy",
            url,
            &["--namespace", ns, "--version-tag", tag],
            0,
        ))
    };

    let report = deploy_in("team-b", "b1");
    assert_eq!(
        schedule_rows(&report),
        [
            ("nightly-hello".to_string(), "create".to_string()),
            ("goodbye-every-6h".to_string(), "create".to_string())
        ],
        "{report:#}"
    );
    let team_b = recurring_in(url, "team-b");
    assert_eq!(team_b.len(), 2, "{team_b:#?}");

    // team-b's recurring runs carry kfp-ci's marker for the same schedules: team-a's deploy
    // must not take them for its own (it creates its own).
    let report = deploy_in("team-a", "a1");
    assert_eq!(
        schedule_rows(&report),
        [
            ("nightly-hello".to_string(), "create".to_string()),
            ("goodbye-every-6h".to_string(), "create".to_string())
        ],
        "{report:#}"
    );
    let team_a = recurring_in(url, "team-a");
    let nightly = &team_a["nightly-hello"];
    assert_eq!(nightly.len(), 1, "{team_a:#?}");
    assert_eq!(nightly[0]["namespace"], "team-a", "{team_a:#?}");
    let a_hello_id = report["pipelines"]
        .as_array()
        .expect("pipelines")
        .iter()
        .find(|p| p["name"] == "hello_pipeline")
        .map(|p| p["pipeline_id"].clone())
        .expect("hello");
    assert_eq!(
        nightly[0]["pipeline_id"], a_hello_id,
        "team-a's own pipeline"
    );
    let experiment_id = nightly[0]["experiment_id"].as_str().expect("experiment id");
    let experiment = get_json(&format!("{url}{API}/experiments/{experiment_id}"));
    assert_eq!(
        (&experiment["display_name"], &experiment["namespace"]),
        (&json!("nightly"), &json!("team-a")),
        "{experiment:#}"
    );
    for runs in team_a.values() {
        assert_eq!(runs.len(), 1, "{team_a:#?}");
        assert_eq!(runs[0]["namespace"], "team-a", "{team_a:#?}");
        assert!(
            team_b.values().all(|b| b[0]["id"] != runs[0]["id"]),
            "{team_a:#?} {team_b:#?}"
        );
    }
    // Rerun: unchanged in team-a, nothing new anywhere.
    let report = deploy_in("team-a", "a2");
    assert_eq!(
        schedule_rows(&report),
        [
            ("nightly-hello".to_string(), "unchanged".to_string()),
            ("goodbye-every-6h".to_string(), "unchanged".to_string())
        ],
        "{report:#}"
    );

    // team-a changes one schedule's trigger and drops the other: replaced and deleted in team-a.
    ctx.write(
        "kfp-ci.toml",
        CONFIG
            .replace("0 2 * * *", "0 4 * * *")
            .split("[[schedules]]\nname = \"goodbye-every-6h\"")
            .next()
            .expect("config"),
    );
    let report = deploy_in("team-a", "a3");
    let mut rows = schedule_rows(&report);
    rows.sort();
    assert_eq!(
        rows,
        [
            ("goodbye-every-6h".to_string(), "delete".to_string()),
            ("nightly-hello".to_string(), "replace".to_string())
        ],
        "{report:#}"
    );
    let after_a = recurring_in(url, "team-a");
    assert_eq!(
        after_a.keys().collect::<Vec<_>>(),
        ["nightly-hello"],
        "{after_a:#?}"
    );
    assert_eq!(after_a["nightly-hello"][0]["cron"], "0 0 4 * * *");
    assert_eq!(recurring_in(url, "team-b"), team_b, "team-b is untouched");
}
