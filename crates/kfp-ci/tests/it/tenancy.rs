//! Multi-user KFP without a namespace: pipelines go to the shared namespace (`""`), and a
//! pipeline of the same name in another namespace is never written to nor compared with, even
//! though KFP's get-by-name with namespace `""` answers with it (`kfp-ci serve --multi-user`
//! emulates that: the newest pipeline of the name in any namespace).

use crate::common::{Server, TestContext};
use crate::deploy::{HELLO, json, json_run, kfp_client_view};
use crate::race::{api_get, versions_of};

#[test]
fn a_shared_deploy_never_touches_another_namespaces_pipeline() {
    let ctx = TestContext::new();
    ctx.write("hello_pipeline.py", HELLO);
    let server = Server::start(&ctx.root().join("registry.db"), &["--multi-user"]);
    let url = server.url.as_str();

    // team-a holds hello_pipeline with this very spec.
    let out = json_run(
        &ctx,
        "deploy",
        url,
        &["--namespace", "team-a", "--version-tag", "a1"],
        0,
    );
    let team_a_id = json(&out)["pipelines"][0]["pipeline_id"]
        .as_str()
        .expect("team-a pipeline id")
        .to_string();
    // The server's get-by-name without a namespace answers with team-a's pipeline.
    let found = api_get(
        url,
        "/apis/v2beta1/pipelines/names/hello_pipeline?namespace=",
    );
    assert_eq!(found["pipeline_id"], team_a_id.as_str(), "{found:#}");

    // Without a namespace: not on the server (in the shared namespace), not "unchanged".
    let plan = json(&json_run(&ctx, "plan", url, &[], 0));
    assert_eq!(plan["pipelines"][0]["action"], "create", "{plan:#}");
    assert_eq!(
        plan["pipelines"][0]["reason"],
        "not in the shared namespace (the pipeline of this name in namespace team-a is not ours and is left alone)",
        "{plan:#}"
    );
    let report = json(&json_run(&ctx, "deploy", url, &["--version-tag", "s1"], 0));
    assert_eq!(report["counts"]["created"], 1, "{report:#}");
    let shared_id = report["pipelines"][0]["pipeline_id"]
        .as_str()
        .expect("shared pipeline id")
        .to_string();
    assert_ne!(shared_id, team_a_id, "{report:#}");

    // team-b's pipeline of that name is now the newest: get-by-name without a namespace
    // answers with it.
    json_run(
        &ctx,
        "deploy",
        url,
        &["--no-cache", "--namespace", "team-b", "--version-tag", "b1"],
        0,
    );
    let found = api_get(
        url,
        "/apis/v2beta1/pipelines/names/hello_pipeline?namespace=",
    );
    assert_eq!(found["namespace"], "team-b", "{found:#}");

    // s2 must land in a later second than s1 (the deploys take a few hundred ms): in the same
    // second "the newest" is undecided and the s3 deploy below would upload again by design.
    server.advance_clock(1);
    // An edited spec without a namespace: a new version of the shared pipeline, nowhere else.
    ctx.write(
        "hello_pipeline.py",
        &HELLO.replace("message: str = \"hello\"", "message: str = \"shared\""),
    );
    // (--no-cache: s2 must not land in the same second as s1; KFP versions have second precision.)
    let report = json(&json_run(
        &ctx,
        "deploy",
        url,
        &["--no-cache", "--version-tag", "s2"],
        0,
    ));
    assert_eq!(report["counts"]["updated"], 1, "{report:#}");
    assert_eq!(report["pipelines"][0]["pipeline_id"], shared_id.as_str());
    // And again: unchanged against the shared pipeline's own newest version.
    let report = json(&json_run(&ctx, "deploy", url, &["--version-tag", "s3"], 0));
    assert_eq!(report["counts"]["unchanged"], 1, "{report:#}");
    assert_eq!(
        report["pipelines"][0]["reason"], "same spec as s2",
        "{report:#}"
    );

    assert_eq!(versions_of(url, &shared_id), ["s1", "s2"]);
    assert_eq!(versions_of(url, &team_a_id), ["a1"]);
    for (ns, versions) in [("team-a", ["a1"]), ("team-b", ["b1"])] {
        let view = kfp_client_view(url, Some(ns));
        assert_eq!(
            view["hello_pipeline"]["versions"],
            serde_json::json!(versions),
            "{ns}: {view:#}"
        );
    }
    let shared = kfp_client_view(url, None);
    assert_eq!(
        shared["hello_pipeline"]["versions"],
        serde_json::json!(["s1", "s2"]),
        "{shared:#}"
    );
}
