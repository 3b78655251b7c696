//! Racing deploys converge to exactly one version per distinct spec, whatever their version
//! tags. Every race here asserts that the runs really overlapped (the proxy holds their requests
//! until both have sent them, and fails the test after 60 s otherwise): a race test whose runs
//! happened one after the other would prove nothing.

use std::process::{Child, Output, Stdio};

use serde_json::Value;

use crate::common::TestContext;
use crate::deploy::{
    GOODBYE, HELLO, TAG, assert_exit, faulty_one, hello_and_goodbye, json, json_run,
    kfp_client_view, repo_and_server, run,
};
use crate::faulty::{Fault, Faulty, Rule};

/// `GET {url}{path}` as JSON.
pub(crate) fn api_get(url: &str, path: &str) -> Value {
    let url = format!("{}{path}", url.trim_end_matches('/'));
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let response = reqwest::get(&url).await.expect("GET");
            assert!(response.status().is_success(), "GET {url}: {response:?}");
            response.json::<Value>().await.expect("JSON")
        })
}

/// Version names of a pipeline, oldest first.
pub(crate) fn versions_of(url: &str, pipeline_id: &str) -> Vec<String> {
    let list = api_get(
        url,
        &format!("/apis/v2beta1/pipelines/{pipeline_id}/versions?page_size=200&sort_by=created_at"),
    );
    list["pipeline_versions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|v| v["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Every pipeline (of the shared namespace) by name → its version names, oldest first.
pub(crate) fn server_view(url: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let list = api_get(url, "/apis/v2beta1/pipelines?page_size=200");
    list["pipelines"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let id = p["pipeline_id"].as_str().unwrap_or_default();
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                versions_of(url, id),
            )
        })
        .collect()
}

fn spawn_deploy(ctx: &TestContext, endpoint: &str, tag: &str) -> Child {
    ctx.std_cmd()
        // --no-cache (here and below): KFP versions have second precision, and these tests want
        // versions of different specs in different seconds, which a compile took care of.
        .args([
            "deploy",
            "--no-cache",
            "--endpoint",
            endpoint,
            "--version-tag",
            tag,
        ])
        .args(["--output", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kfp-ci deploy")
}

/// Two deploys with tags `tags`, their uploads held until all `uploads` have arrived.
fn race(ctx: &TestContext, upstream: &str, tags: [&str; 2], uploads: usize) -> [Value; 2] {
    let proxy = faulty_one(upstream, "POST", "/upload_version", uploads, Fault::Hold);
    let a = spawn_deploy(ctx, &proxy.url, tags[0]);
    let b = spawn_deploy(ctx, &proxy.url, tags[1]);
    // Both runs planned and sent every upload before any landed: they overlap. If they did not,
    // this fails after 60 s with the proxy's log.
    proxy.wait_for("POST", "/upload_version", uploads);
    proxy.release();
    let outs: Vec<Output> = [a, b]
        .into_iter()
        .map(|c| c.wait_with_output().expect("deploy"))
        .collect();
    for out in &outs {
        assert_exit(out, 0);
    }
    [json(&outs[0]), json(&outs[1])]
}

/// Per pipeline: exactly one run reports the change (one of `actions`) with the version that
/// stays, the other reports "unchanged: already deployed by a concurrent run as <that version>"; counts
/// add up across both runs.
fn assert_converged(
    reports: &[Value; 2],
    view: &std::collections::BTreeMap<String, Vec<String>>,
    actions: &[&str],
    names: &[&str],
) {
    let count = |key: &str| -> u64 {
        reports
            .iter()
            .map(|r| r["counts"][key].as_u64().unwrap_or(0))
            .sum()
    };
    let changed = count("created") + count("updated");
    assert_eq!(changed, names.len() as u64, "{reports:#?}");
    assert_eq!(count("unchanged"), names.len() as u64, "{reports:#?}");
    assert_eq!(count("failed"), 0, "{reports:#?}");
    for name in names {
        let newest = view[*name].last().expect("a version").clone();
        let rows: Vec<&Value> = reports
            .iter()
            .flat_map(|r| r["pipelines"].as_array().expect("pipelines"))
            .filter(|p| p["name"] == *name)
            .collect();
        assert_eq!(rows.len(), 2, "{rows:#?}");
        let winner: Vec<&&Value> = rows
            .iter()
            .filter(|p| actions.iter().any(|a| p["action"] == *a))
            .collect();
        let loser: Vec<&&Value> = rows.iter().filter(|p| p["action"] == "unchanged").collect();
        assert_eq!((winner.len(), loser.len()), (1, 1), "{name}: {rows:#?}");
        assert_eq!(winner[0]["version_name"], newest.as_str(), "{rows:#?}");
        assert_eq!(loser[0]["version_name"], newest.as_str(), "{rows:#?}");
        let reason = loser[0]["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains(&format!("already deployed by a concurrent run as {newest}")),
            "{name}: {reason}"
        );
    }
}

/// Run B, finishing after run A deployed the same spec as `a1`: exit 0, its pipeline unchanged
/// as `a1`, the reason saying `why`. B's report.
#[track_caller]
fn unchanged_as_a1(b: Child, why: &str) -> Value {
    let b = b.wait_with_output().expect("deploy b");
    assert_exit(&b, 0);
    let report = json(&b);
    let p = &report["pipelines"][0];
    assert_eq!(p["action"], "unchanged", "{report:#}");
    assert_eq!(p["version_name"], "a1", "{report:#}");
    assert!(
        p["reason"].as_str().is_some_and(|r| r.contains(why)),
        "{report:#}"
    );
    report
}

/// `deploy --no-cache --version-tag TAG` against `url`, which must exit 0.
#[track_caller]
fn deploy_uncached(ctx: &TestContext, url: &str, tag: &str) -> Output {
    json_run(ctx, "deploy", url, &["--no-cache", "--version-tag", tag], 0)
}

#[test]
fn racing_runs_with_different_tags_leave_one_version_per_spec() {
    let (ctx, server) = hello_and_goodbye();
    let names = ["goodbye_pipeline", "hello_pipeline"];

    // Both create both pipelines (one run's create gets the 409; or, when one run plans after
    // the other created a pipeline, it plans a first version for it), both upload under their
    // tags.
    let reports = race(&ctx, &server.url, ["a1", "b1"], 4);
    let view = crate::race::server_view(&server.url);
    assert_eq!(view.len(), 2, "{view:#?}");
    for name in names {
        assert_eq!(view[name].len(), 1, "{name}: {view:#?}");
    }
    assert_converged(&reports, &view, &["create", "new_version"], &names);

    // Both edited: each pipeline gets exactly one new version. The new versions must not share
    // the first ones' second (KFP timestamps have second precision; a tie leaves "the newest"
    // undecided and the rerun below would not be unchanged): the test clock moves on.
    server.advance_clock(1);
    ctx.write(
        "hello_pipeline.py",
        &HELLO.replace("message: str = \"hello\"", "message: str = \"hi\""),
    );
    ctx.write(
        "goodbye_pipeline.py",
        &GOODBYE.replace("times: int = 2", "times: int = 3"),
    );
    let reports = race(&ctx, &server.url, ["a2", "b2"], 4);
    let view = crate::race::server_view(&server.url);
    for name in names {
        assert_eq!(view[name].len(), 2, "{name}: {view:#?}");
    }
    assert_converged(&reports, &view, &["new_version"], &names);

    // A rerun finds nothing to do.
    let out = deploy_uncached(&ctx, &server.url, "c1");
    assert_eq!(json(&out)["counts"]["unchanged"], 2, "{}", json(&out));
}

/// A run that planned before a concurrent run's upload landed reads the newest version again
/// just before uploading, and uploads nothing when it already holds its spec.
#[test]
fn a_run_that_planned_before_a_concurrent_upload_uploads_nothing() {
    let (ctx, server) = repo_and_server(&[("hello_pipeline.py", HELLO)]);
    deploy_uncached(&ctx, &server.url, "v0");
    // a1 must be unambiguously newer than v0: B's check before uploading trusts the newest only
    // when every version of its second holds B's spec, and would upload if v0 shared a1's second.
    server.advance_clock(1);
    ctx.write(
        "hello_pipeline.py",
        &HELLO.replace("message: str = \"hello\"", "message: str = \"hi\""),
    );
    // Run B: its plan reads the versions; its next read of them (just before uploading) is held.
    let proxy = Faulty::start(
        &server.url,
        vec![
            // A barrier of one forwards at once: the plan's read goes through.
            Rule {
                method: "GET",
                path_suffix: "/versions",
                times: 1,
                fault: Fault::Barrier(1),
            },
            Rule {
                method: "GET",
                path_suffix: "/versions",
                times: 1,
                fault: Fault::Hold,
            },
        ],
    );
    let b = spawn_deploy(&ctx, &proxy.url, "b1");
    // B has planned "new version" and is about to upload: the runs overlap from here.
    proxy.wait_for("GET", "/versions", 2);
    let a = deploy_uncached(&ctx, &server.url, "a1");
    assert_eq!(json(&a)["counts"]["updated"], 1, "{}", json(&a));
    proxy.release();
    let report = unchanged_as_a1(b, "already deployed by a concurrent run as a1");
    assert_eq!(report["counts"]["updated"], 0, "{report:#}");
    assert_eq!(
        proxy.count("POST", "/upload_version"),
        0,
        "{:#?}",
        proxy.log()
    );
    assert_eq!(
        crate::race::server_view(&server.url)["hello_pipeline"],
        ["v0", "a1"]
    );
}

/// The interleaving a rule "the later one removes itself" alone gets wrong when both land in the
/// same second: run A uploads and checks before run B's upload has landed (A sees no rival and
/// keeps its version); B's upload lands, B sees A's identical version and gives way to it,
/// whichever of the two sorts first.
#[test]
fn a_run_whose_rival_never_saw_it_gives_way() {
    let (ctx, server) = repo_and_server(&[("hello_pipeline.py", HELLO)]);
    deploy_uncached(&ctx, &server.url, "v0");
    ctx.write(
        "hello_pipeline.py",
        &HELLO.replace("message: str = \"hello\"", "message: str = \"hi\""),
    );
    let proxy = faulty_one(&server.url, "POST", "/upload_version", 1, Fault::Hold);
    let b = spawn_deploy(&ctx, &proxy.url, "b1");
    // B read the newest version again and sent its upload: the runs overlap from here.
    proxy.wait_for("POST", "/upload_version", 1);
    let a = json(&json_run(
        &ctx,
        "deploy",
        &server.url,
        &["--version-tag", "a1"],
        0,
    ));
    assert_eq!(a["pipelines"][0]["action"], "new_version", "{a:#}");
    assert_eq!(a["pipelines"][0]["version_name"], "a1", "{a:#}");
    proxy.release();
    unchanged_as_a1(
        b,
        "already deployed by a concurrent run as a1 (the identical version this run uploaded was removed again)",
    );
    assert_eq!(
        crate::race::server_view(&server.url)["hello_pipeline"],
        ["v0", "a1"]
    );
}

#[test]
fn two_racing_deploys_converge_without_duplicates() {
    let (ctx, server) = hello_and_goodbye();
    // Both runs plan "create" for both pipelines; the proxy holds the creates until both runs
    // have sent theirs, so they really collide (a test whose runs did not overlap fails in
    // `wait_for`).
    let proxy = faulty_one(
        &server.url,
        "POST",
        "/apis/v2beta1/pipelines",
        4,
        Fault::Hold,
    );
    let args = [
        "deploy",
        "--endpoint",
        &proxy.url,
        "--version-tag",
        TAG,
        "--output",
        "json",
    ];
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| run(&ctx, &args));
        let b = s.spawn(|| run(&ctx, &args));
        proxy.wait_for("POST", "/apis/v2beta1/pipelines", 4);
        proxy.release();
        (a.join().expect("a"), b.join().expect("b"))
    });
    for out in [&a, &b] {
        assert_exit(out, 0);
    }
    let reports = [json(&a), json(&b)];
    let reasons: Vec<String> = reports
        .iter()
        .flat_map(|r| r["pipelines"].as_array().cloned().unwrap_or_default())
        .map(|p| p["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.contains(&format!("already deployed by a concurrent run as {TAG}")))
            .count(),
        2,
        "{reasons:#?}"
    );
    // Counts add up: each pipeline created by one run, unchanged for the other.
    let sum = |key: &str| -> u64 {
        reports
            .iter()
            .map(|r| r["counts"][key].as_u64().unwrap_or(0))
            .sum()
    };
    assert_eq!((sum("created"), sum("unchanged")), (2, 2), "{reports:#?}");
    let view = kfp_client_view(&server.url, None);
    assert_eq!(view.as_object().expect("object").len(), 2, "{view:#}");
    for (name, p) in view.as_object().expect("object") {
        assert_eq!(p["versions"], serde_json::json!([TAG]), "{name}: {view:#}");
    }
}
