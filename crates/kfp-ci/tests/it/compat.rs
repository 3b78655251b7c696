//! Every KFP server release kfp-ci supports, both pipeline stores: `kfp-ci serve --server-version
//! X --pipeline-store S` answers like that release (upload parameters, objects, routes, healthz,
//! Kubernetes-store naming), and the deploy scenarios run against each: first deploy, unchanged
//! redeploy, one edit by two racing runs, retention, multi-user.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::Output;

use serde_json::{Value, json};

use crate::common::{Server, TestContext, python};
use crate::deploy::{GOODBYE, HELLO, assert_exit, json, run, text};
use crate::faulty::{Fault, Faulty, Rule};

/// `hello_pipeline.py` with another default: a changed spec.
fn hello_edited(n: u32) -> String {
    HELLO.replace(
        "message: str = \"hello\"",
        &format!("message: str = \"hello {n}\""),
    )
}

/// `GET url` over plain HTTP/1.0 on loopback, the body as JSON.
pub(crate) fn get_json(url: &str) -> Value {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{head}\n{body}"
    );
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Raw pipelines of a namespace (`""`: the default), as the server writes them.
fn raw_pipelines(url: &str, namespace: &str) -> Vec<Value> {
    let list = get_json(&format!(
        "{url}/apis/v2beta1/pipelines?page_size=200&namespace={}",
        enc(namespace)
    ));
    list["pipelines"].as_array().cloned().unwrap_or_default()
}

/// The identity of an object: `name`, or `display_name` before 2.14 (no `name` there).
fn ident(o: &Value) -> String {
    o["name"]
        .as_str()
        .or_else(|| o["display_name"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// pipeline → its versions (raw objects, newest first).
fn server_state(url: &str, namespace: &str) -> BTreeMap<String, Vec<Value>> {
    raw_pipelines(url, namespace)
        .iter()
        .map(|p| {
            let id = p["pipeline_id"].as_str().expect("pipeline_id");
            let list = get_json(&format!(
                "{url}/apis/v2beta1/pipelines/{id}/versions?page_size=200&sort_by={}",
                enc("created_at desc")
            ));
            (
                ident(p),
                list["pipeline_versions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            )
        })
        .collect()
}

fn version_names(state: &BTreeMap<String, Vec<Value>>, pipeline: &str) -> Vec<String> {
    let mut names: Vec<String> = state
        .get(pipeline)
        .unwrap_or_else(|| panic!("no pipeline {pipeline}: {state:#?}"))
        .iter()
        .map(ident)
        .collect();
    names.sort();
    names
}

struct Emulated {
    release: &'static str,
    store: &'static str,
}

impl Emulated {
    fn at_least(&self, minor: u64) -> bool {
        let m: u64 = self
            .release
            .split('.')
            .nth(1)
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        m >= minor
    }

    fn kubernetes(&self) -> bool {
        self.store == "kubernetes"
    }

    /// Version names unique per namespace (Kubernetes store before 2.17).
    fn collides(&self) -> bool {
        self.kubernetes() && !self.at_least(17)
    }

    fn start(&self, ctx: &TestContext, file: &str, extra: &[&str]) -> Server {
        let mut args = vec![
            "--server-version",
            self.release,
            "--pipeline-store",
            self.store,
        ];
        args.extend_from_slice(extra);
        Server::start(&ctx.root().join(file), &args)
    }

    /// The pipelines' names as deploy sends them (DNS-1123 on the Kubernetes store).
    fn names(&self) -> (&'static str, &'static str) {
        if self.kubernetes() {
            ("hello-pipeline", "goodbye-pipeline")
        } else {
            ("hello_pipeline", "goodbye_pipeline")
        }
    }
}

fn deploy(ctx: &TestContext, url: &str, args: &[&str]) -> Output {
    let mut all = vec!["deploy", "--endpoint", url];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--output", "json"]);
    run(ctx, &all)
}

/// Age every version by `secs` (timestamps have second precision: retention never deletes a
/// version from the newest one's second) and upload a version by hand, not through kfp-ci.
fn age_and_upload_by_hand(db: &std::path::Path, url: &str, pipeline: &str) {
    let script = r#"
import json, sqlite3, sys, urllib.parse, urllib.request
import requests
db, url, pipeline = sys.argv[1], sys.argv[2], sys.argv[3]
con = sqlite3.connect(db, timeout=10)
con.execute("UPDATE pipeline_versions SET created_at = created_at - 100")
con.commit()
con.close()
pipelines = json.load(urllib.request.urlopen(url + "/apis/v2beta1/pipelines?page_size=200"))["pipelines"]
p = next(p for p in pipelines if p.get("name", p.get("display_name")) == pipeline)
versions = json.load(urllib.request.urlopen(url + "/apis/v2beta1/pipelines/" + p["pipeline_id"] + "/versions"))["pipeline_versions"]
spec = json.dumps(versions[0]["pipeline_spec"])
q = urllib.parse.urlencode({"pipelineid": p["pipeline_id"], "name": "by-hand", "description": "uploaded by hand"})
r = requests.post(url + "/apis/v2beta1/pipelines/upload_version?" + q, files={"uploadfile": ("by-hand.json", spec)})
assert r.status_code == 200, r.text
# By hand 50 s ago: still newer than kfp-ci's (aged 100 s), and never in the same second as the
# next deploy's version however fast that deploy is (cached compiles take milliseconds).
con = sqlite3.connect(db, timeout=10)
con.execute("UPDATE pipeline_versions SET created_at = created_at - 50 WHERE name = 'by-hand'")
con.commit()
con.close()
"#;
    let out = crate::common::command(python())
        .args(["-c", script])
        .arg(db)
        .args([url, pipeline])
        .output()
        .expect("run python");
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// The deploy scenarios against one emulated release and store.
fn scenarios(e: Emulated) {
    let ctx = TestContext::new();
    ctx.write("hello_pipeline.py", HELLO);
    ctx.write("goodbye_pipeline.py", GOODBYE);
    let server = e.start(&ctx, "registry.db", &[]);
    let url = server.url.as_str();
    let (hello, goodbye) = e.names();

    // healthz is the release's own.
    let h = get_json(&format!("{url}/apis/v2beta1/healthz"));
    assert_eq!(h["tag_name"], e.release, "{h}");
    if e.at_least(14) {
        assert_eq!(h["pipeline_store"], e.store, "{h}");
    } else {
        assert!(h.get("pipeline_store").is_none(), "{h}");
    }

    // 1. First deploy: both pipelines created, one version each.
    let tag = "v20261202-101010";
    let out = deploy(&ctx, url, &["--version-tag", tag]);
    assert_exit(&out, 0);
    let report = json(&out);
    assert_eq!(report["counts"]["created"], 2, "{report:#}");
    let state = server_state(url, "");
    assert_eq!(state.len(), 2, "{state:#?}");
    let mut first: Vec<String> = [hello, goodbye]
        .iter()
        .flat_map(|p| version_names(&state, p))
        .collect();
    first.sort();
    if e.collides() {
        // One pipeline has the tag; the other's is taken in the namespace: `<pipeline>-<tag>`,
        // and the report says why.
        assert!(first.contains(&tag.to_string()), "{first:?}");
        assert!(
            first.contains(&format!("{hello}-{tag}"))
                || first.contains(&format!("{goodbye}-{tag}")),
            "{first:?}"
        );
        let reasons = report["pipelines"].to_string();
        assert!(reasons.contains("#13534"), "{report:#}");
    } else {
        assert_eq!(first, [tag, tag], "{state:#?}");
        for p in report["pipelines"].as_array().expect("pipelines") {
            assert_eq!(p["version_name"], tag, "{report:#}");
        }
    }
    // Objects: no `name` before 2.14, no tags before 2.17, provenance in the description.
    for versions in state.values() {
        let v = &versions[0];
        assert_eq!(v.get("name").is_some(), e.at_least(14), "{v:#}");
        assert_eq!(v.get("tags").is_some(), e.at_least(17), "{v:#}");
        assert!(
            v["description"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Deployed by kfp-ci"),
            "{v:#}"
        );
    }
    for p in raw_pipelines(url, "") {
        assert_eq!(p.get("name").is_some(), e.at_least(14), "{p:#}");
    }

    // 2. Unchanged redeploy: nothing uploaded.
    let out = deploy(&ctx, url, &["--version-tag", "v20261202-111111"]);
    assert_exit(&out, 0);
    assert_eq!(
        json(&out)["counts"]["unchanged"],
        2,
        "{}",
        text(&out.stdout)
    );
    assert_eq!(server_state(url, ""), state);

    // 3. One edit, deployed by two racing runs (a proxy holds both uploads until both have
    // sent theirs): exactly one new version of that pipeline, both runs report it.
    ctx.write("hello_pipeline.py", &hello_edited(1));
    let proxy = Faulty::start(
        url,
        vec![Rule {
            method: "POST",
            path_suffix: "/upload_version",
            times: 2,
            fault: Fault::Barrier(2),
        }],
    );
    let args = ["--version-tag", "v20261202-121212"];
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| deploy(&ctx, &proxy.url, &args));
        let b = s.spawn(|| deploy(&ctx, &proxy.url, &args));
        (a.join().expect("a"), b.join().expect("b"))
    });
    assert_exit(&a, 0);
    assert_exit(&b, 0);
    assert_eq!(proxy.count("POST", "/upload_version"), 2);
    for out in [&a, &b] {
        let report = json(out);
        let p = report["pipelines"]
            .as_array()
            .expect("pipelines")
            .iter()
            .find(|p| p["name"] == hello)
            .cloned()
            .expect("hello in the report");
        assert_eq!(p["version_name"], "v20261202-121212", "{report:#}");
    }
    let state = server_state(url, "");
    assert_eq!(state[hello].len(), 2, "{state:#?}");
    assert_eq!(state[goodbye].len(), 1, "{state:#?}");

    // 4. Retention: only kfp-ci's versions are pruned (found by the description where there
    // are no tags), never the newest, never one uploaded by hand.
    age_and_upload_by_hand(&server.db, url, hello);
    // The next version must not share by-hand's second (KFP timestamps have second precision; a
    // tie leaves "the newest" undecided and the last plan below would not be unchanged).
    server.advance_clock(1);
    ctx.write("hello_pipeline.py", &hello_edited(2));
    let out = deploy(
        &ctx,
        url,
        &["--version-tag", "v20261202-131313", "--keep-versions", "1"],
    );
    assert_exit(&out, 0);
    let state = server_state(url, "");
    assert_eq!(
        version_names(&state, hello),
        ["by-hand", "v20261202-131313"],
        "{state:#?}"
    );
    assert_eq!(state[goodbye].len(), 1, "{state:#?}");
    let out = deploy(&ctx, url, &[]);
    assert_eq!(
        json(&out)["counts"]["unchanged"],
        2,
        "{}",
        text(&out.stdout)
    );

    // 5. Multi-user: the same tag in two namespaces, each with its own pipelines.
    let multi = e.start(&ctx, "multi.db", &["--multi-user"]);
    for ns in ["team-a", "team-b"] {
        let out = deploy(&ctx, &multi.url, &["--namespace", ns, "--version-tag", tag]);
        assert_exit(&out, 0);
        assert_eq!(json(&out)["counts"]["created"], 2, "{ns}");
        let state = server_state(&multi.url, ns);
        assert_eq!(state.len(), 2, "{ns}: {state:#?}");
        assert!(state.values().all(|v| v.len() == 1), "{ns}: {state:#?}");
        for p in raw_pipelines(&multi.url, ns) {
            assert_eq!(p["namespace"], ns, "{p:#}");
        }
    }
}

macro_rules! matrix {
    ($($test:ident: $release:literal, $store:literal;)*) => {$(
        #[test]
        fn $test() {
            scenarios(Emulated { release: $release, store: $store });
        }
    )*};
}

matrix! {
    deploy_scenarios_on_2_0_0_database: "2.0.0", "database";
    deploy_scenarios_on_2_5_0_database: "2.5.0", "database";
    deploy_scenarios_on_2_14_0_database: "2.14.0", "database";
    deploy_scenarios_on_2_14_0_kubernetes: "2.14.0", "kubernetes";
    deploy_scenarios_on_2_16_0_database: "2.16.0", "database";
    deploy_scenarios_on_2_16_0_kubernetes: "2.16.0", "kubernetes";
    deploy_scenarios_on_2_17_0_database: "2.17.0", "database";
    deploy_scenarios_on_2_17_0_kubernetes: "2.17.0", "kubernetes";
}

/// The emulation itself, request by request: what each release ignores, refuses and omits.
#[test]
fn emulated_releases_differ_where_the_real_ones_do() {
    let ctx = TestContext::new();
    let e = Emulated {
        release: "2.5.0",
        store: "database",
    };
    let old = e.start(&ctx, "old.db", &[]);
    let script = r#"
import json, sys, requests
url = sys.argv[1]
spec = '{"pipelineInfo": {"name": "x"}, "root": {"dag": {"tasks": {}}}, "schemaVersion": "2.1.0", "sdkVersion": "kfp-2.17.0"}'
def up(path, **q):
    return requests.post(url + "/apis/v2beta1/pipelines/" + path, params=q, files={"uploadfile": ("x.json", spec)})
out = {}
r = up("upload", name="ident", display_name="Readable", tags='{"a":"b"}')
out["upload"] = [r.status_code, r.json()]
pid = r.json().get("pipeline_id", "")
r = requests.patch(url + "/apis/v2beta1/pipelines/" + pid, json={"display_name": "new"})
out["patch"] = r.status_code
r = requests.get(url + "/apis/v2beta1/pipelines/names/ident")
out["by_name"] = r.status_code
r = requests.get(url + "/apis/v2beta1/pipelines", params={"filter": json.dumps({"predicates": [{"operation": "EQUALS", "key": "tags.a", "string_value": "b"}]})})
out["tag_filter"] = r.status_code
r = requests.post(url + "/apis/v2beta1/pipelines", json={"name": "ignored", "display_name": "shown"})
out["create"] = [r.status_code, r.json()]
r = requests.post(url + "/apis/v2beta1/pipelines", json={"name": "Not_DNS", "display_name": "Not_DNS"})
out["create_bad_name"] = r.status_code
print(json.dumps(out))
"#;
    let py = |url: &str| -> Value {
        let out = crate::common::command(python())
            .args(["-c", script, url])
            .output()
            .expect("python");
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_str(text(&out.stdout).lines().last().unwrap_or("{}")).expect("json")
    };
    let r = py(&old.url);
    // 2.5: `name` is the only name (display_name and tags ignored), shown as display_name.
    assert_eq!(r["upload"][0], 200, "{r:#}");
    assert_eq!(r["upload"][1]["display_name"], "ident", "{r:#}");
    assert!(r["upload"][1].get("name").is_none(), "{r:#}");
    assert!(r["upload"][1].get("tags").is_none(), "{r:#}");
    assert_ne!(r["patch"], 200, "{r:#}");
    assert_eq!(r["by_name"], 200, "{r:#}");
    assert_eq!(r["tag_filter"], 400, "{r:#}");
    assert_eq!(r["create"][1]["display_name"], "shown", "{r:#}");

    let new = Emulated {
        release: "2.17.0",
        store: "database",
    }
    .start(&ctx, "new.db", &[]);
    let r = py(&new.url);
    assert_eq!(r["upload"][1]["name"], "ident", "{r:#}");
    assert_eq!(r["upload"][1]["display_name"], "Readable", "{r:#}");
    assert_eq!(r["upload"][1]["tags"], json!({"a": "b"}), "{r:#}");
    assert_eq!(r["patch"], 200, "{r:#}");
    assert_eq!(r["tag_filter"], 200, "{r:#}");
    assert_eq!(r["create"][1]["name"], "ignored", "{r:#}");
    assert_eq!(r["create_bad_name"], 200, "{r:#}");

    // Kubernetes store: DNS-1123 names only; before 2.14 there is none.
    let k8s = Emulated {
        release: "2.16.0",
        store: "kubernetes",
    }
    .start(&ctx, "k8s.db", &[]);
    let r = py(&k8s.url);
    assert_eq!(r["upload"][0], 200, "{r:#}");
    assert_eq!(r["create"][0], 200, "{r:#}");
    assert_eq!(r["create_bad_name"], 400, "{r:#}");
    let out = ctx
        .cmd()
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--server-version",
            "2.5.0",
        ])
        .args(["--pipeline-store", "kubernetes", "--db", "x.db"])
        .output()
        .expect("serve");
    assert_exit(&out, 2);
    assert!(
        text(&out.stderr).contains("needs --server-version 2.14.0 or later"),
        "{}",
        text(&out.stderr)
    );
}

/// On a 2.16 Kubernetes store, version resources are named by the bare version name: three
/// changed pipelines under one tag still get exactly one version each, named as close to the
/// tag as the server allows, and the report says why.
#[test]
fn version_collision_on_a_2_16_kubernetes_store_still_gives_each_pipeline_one_version() {
    let (ctx, server) = three_pipelines_on_a_2_16_kubernetes_store();
    let tag = "v20261202-101010";
    let out = deploy(&ctx, &server.url, &["--version-tag", tag]);
    assert_exit(&out, 0);
    let report = json(&out);
    one_version_each_one_with_the_tag(&server.url, tag);
    let notes: Vec<&str> = report["pipelines"]
        .as_array()
        .expect("pipelines")
        .iter()
        .filter_map(|p| p["reason"].as_str())
        .filter(|r| r.contains("kubeflow/pipelines#13534"))
        .collect();
    assert_eq!(notes.len(), 2, "{report:#}");
    assert_eq!(
        report["pipelines"]
            .as_array()
            .expect("pipelines")
            .iter()
            .filter(|p| p["version_name"] == tag)
            .count(),
        1,
        "{report:#}"
    );

    // On 2.17 the same deploy gives every pipeline the tag itself.
    let ctx17 = TestContext::new();
    for f in [
        "hello_pipeline.py",
        "goodbye_pipeline.py",
        "third_pipeline.py",
    ] {
        ctx17.write(
            f,
            &std::fs::read_to_string(ctx.root().join(f)).expect("read"),
        );
    }
    let server17 = Emulated {
        release: "2.17.0",
        store: "kubernetes",
    }
    .start(&ctx17, "registry.db", &[]);
    let out = deploy(&ctx17, &server17.url, &["--version-tag", tag]);
    assert_exit(&out, 0);
    let state = server_state(&server17.url, "");
    for (pipeline, versions) in &state {
        assert_eq!(
            versions.iter().map(ident).collect::<Vec<_>>(),
            [tag],
            "{pipeline}"
        );
    }
}

/// `kfp-ci doctor` names the release, the store, the mode, what works there, and SDK advice.
#[test]
fn doctor_prints_the_release_store_mode_features_and_sdk_advice() {
    let ctx = TestContext::new();
    let k8s = Emulated {
        release: "2.16.0",
        store: "kubernetes",
    }
    .start(&ctx, "k8s.db", &["--multi-user"]);
    let out = run(&ctx, &["doctor", "--endpoint", &k8s.url]);
    assert_exit(&out, 0);
    let stderr = text(&out.stderr);
    for expected in [
        "ok    healthz: KFP 2.16.0, multi-user, kubernetes store",
        "      tags: no: KFP 2.16.0 has no tags",
        "      PATCH: no",
        "      code links: no",
        "      DNS-1123 names: yes: needed (Kubernetes store)",
        "<pipeline>-<tag>",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in:\n{stderr}");
    }

    // An SDK pin of 2.15.0 against a 2.5 server: the custom_path break and its fix.
    ctx.write("kfp-ci.toml", "kfp_version = \"2.15.0\"\n");
    let old = Emulated {
        release: "2.5.0",
        store: "database",
    }
    .start(&ctx, "old.db", &[]);
    let out = run(&ctx, &["doctor", "--endpoint", &old.url]);
    assert_exit(&out, 0);
    let stderr = text(&out.stderr);
    for expected in [
        "ok    healthz: KFP 2.5.0, single-user",
        "      names: yes: KFP 2.5.0 has one name per pipeline",
        "      hint: kfp SDK 2.15.0 writes a `custom_path` field",
        "2.15.2",
        "newer than the server (2.5.0)",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in:\n{stderr}");
    }
}

/// The kfp 2.5 SDK (`target/kfp25-venv`, made by `scripts/test`; override
/// `KFP_CI_TEST_KFP25_PYTHON`).
fn kfp25_python() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("KFP_CI_TEST_KFP25_PYTHON") {
        return p.into();
    }
    let p = crate::common::workspace_root().join("target/kfp25-venv/bin/python");
    assert!(
        p.exists(),
        "no kfp 2.5 venv at {}: run `scripts/test` (it creates it)",
        p.display()
    );
    p
}

/// What an official client lists: display name → sorted version display names, and the SDK's
/// own version.
fn official_client_view(python: &std::path::Path, url: &str, namespace: &str) -> Value {
    let script = r#"
import json, sys
import kfp
client = kfp.Client(host=sys.argv[1])
ns = sys.argv[2] or None
out = {}
for p in client.list_pipelines(page_size=100, namespace=ns).pipelines or []:
    versions = client.list_pipeline_versions(p.pipeline_id, page_size=100).pipeline_versions or []
    out[p.display_name] = sorted(v.display_name for v in versions)
print(json.dumps({"sdk": kfp.__version__, "pipelines": out}, sort_keys=True))
"#;
    let out = crate::common::command(python)
        .args(["-c", script, url, namespace])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "kfp.Client failed:\n{}",
        text(&out.stderr)
    );
    serde_json::from_str(text(&out.stdout).lines().last().unwrap_or("{}")).expect("JSON")
}

/// The kfp 2.5 client (the SDK line of KFP 2.5 servers) lists what kfp-ci uploaded to an
/// emulated 2.5 server, single- and multi-user; the 2.17 client reads the 2.17 emulation.
#[test]
fn the_official_kfp_2_5_client_lists_what_kfp_ci_uploaded_to_a_2_5_server() {
    let ctx = TestContext::new();
    ctx.write("hello_pipeline.py", HELLO);
    ctx.write("goodbye_pipeline.py", GOODBYE);
    let tag = "v20261202-101010";
    let expected = json!({"goodbye_pipeline": [tag], "hello_pipeline": [tag]});
    let e = Emulated {
        release: "2.5.0",
        store: "database",
    };
    let single = e.start(&ctx, "single.db", &[]);
    let multi = e.start(&ctx, "multi.db", &["--multi-user"]);
    for (server, ns) in [(&single, ""), (&multi, "team-a")] {
        let out = deploy(
            &ctx,
            &server.url,
            &["--namespace", ns, "--version-tag", tag],
        );
        assert_exit(&out, 0);
        let view = official_client_view(&kfp25_python(), &server.url, ns);
        assert_eq!(view["sdk"], "2.5.0", "{view:#}");
        assert_eq!(view["pipelines"], expected, "{ns}: {view:#}");
    }
    let new = Emulated {
        release: "2.17.0",
        store: "database",
    }
    .start(&ctx, "new.db", &[]);
    let out = deploy(&ctx, &new.url, &["--version-tag", tag]);
    assert_exit(&out, 0);
    let view = official_client_view(&python(), &new.url, "");
    assert_eq!(view["sdk"], "2.17.0", "{view:#}");
    assert_eq!(view["pipelines"], expected, "{view:#}");
}

/// `code_source_url`: a link to the file at the commit, sent where the upload handler reads it
/// (after 2.17.0), not to 2.17.0.
#[test]
fn code_source_url_links_the_file_at_the_commit_where_the_server_reads_it() {
    let ctx = TestContext::new();
    ctx.write("pipes/hello_pipeline.py", HELLO);
    let sha = "0123456789abcdef0123456789abcdef01234567";
    for (release, expected) in [
        (
            "2.17.1",
            Some(format!(
                "https://git.example/ml/pipes/src/commit/{sha}/pipes/hello_pipeline.py"
            )),
        ),
        ("2.17.0", None),
    ] {
        let server = Emulated {
            release,
            store: "database",
        }
        .start(&ctx, &format!("{release}.db"), &[]);
        let out = ctx
            .cmd()
            .args(["deploy", "--endpoint", &server.url, "--version-tag", "v1"])
            .env("CI", "true")
            .env("GITHUB_ACTIONS", "true")
            .env("GITEA_ACTIONS", "true")
            .env("GITHUB_SHA", sha)
            .env("GITHUB_SERVER_URL", "https://git.example/")
            .env("GITHUB_REPOSITORY", "ml/pipes")
            .output()
            .expect("run");
        assert_exit(&out, 0);
        let state = server_state(&server.url, "");
        let v = &state["hello_pipeline"][0];
        assert_eq!(
            v["code_source_url"].as_str().map(str::to_string),
            expected,
            "{release}: {v:#}"
        );
    }
}

/// Three pipeline files, for the collision tests.
/// Three pipelines in a repository, and a 2.16 server on the Kubernetes store (versions named
/// by their bare name: the three collide under one tag).
fn three_pipelines_on_a_2_16_kubernetes_store() -> (TestContext, Server) {
    let ctx = TestContext::new();
    ctx.write("hello_pipeline.py", HELLO);
    ctx.write("goodbye_pipeline.py", GOODBYE);
    ctx.write(
        "third_pipeline.py",
        &GOODBYE.replace("goodbye-pipeline", "third-pipeline"),
    );
    let server = Emulated {
        release: "2.16.0",
        store: "kubernetes",
    }
    .start(&ctx, "registry.db", &[]);
    (ctx, server)
}

/// Every pipeline has exactly one version; exactly one of them is named by the tag itself, the
/// others `<pipeline>-<tag>`.
#[track_caller]
fn one_version_each_one_with_the_tag(url: &str, tag: &str) {
    let state = server_state(url, "");
    assert_eq!(state.len(), 3, "{state:#?}");
    let mut with_tag = 0;
    for (pipeline, versions) in &state {
        assert_eq!(versions.len(), 1, "{pipeline}: {state:#?}");
        let name = ident(&versions[0]);
        if name == tag {
            with_tag += 1;
        } else {
            assert_eq!(name, format!("{pipeline}-{tag}"), "{state:#?}");
        }
    }
    assert_eq!(with_tag, 1, "{state:#?}");
}

/// Two runs deploying the same three new pipelines under one tag at once (a proxy holds the
/// creates, then the uploads, until both runs have sent theirs) on a 2.16 Kubernetes store: the
/// runs converge on one version per pipeline.
#[test]
fn racing_runs_converge_despite_version_collisions_on_a_2_16_kubernetes_store() {
    let (ctx, server) = three_pipelines_on_a_2_16_kubernetes_store();
    let proxy = Faulty::start(
        &server.url,
        vec![
            Rule {
                method: "POST",
                path_suffix: "/apis/v2beta1/pipelines",
                times: 6,
                fault: Fault::Barrier(6),
            },
            Rule {
                method: "POST",
                path_suffix: "/upload_version",
                times: 6,
                fault: Fault::Barrier(6),
            },
        ],
    );
    let tag = "v20261202-101010";
    let args = ["--version-tag", tag];
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| deploy(&ctx, &proxy.url, &args));
        let b = s.spawn(|| deploy(&ctx, &proxy.url, &args));
        (a.join().expect("a"), b.join().expect("b"))
    });
    assert_exit(&a, 0);
    assert_exit(&b, 0);
    // Both runs sent every create and a first upload for every pipeline.
    assert_eq!(proxy.count("POST", "/apis/v2beta1/pipelines"), 6);
    assert!(proxy.count("POST", "/upload_version") >= 6);
    one_version_each_one_with_the_tag(&server.url, tag);
    // Both runs report the same version for each pipeline.
    let names = |out: &Output| -> BTreeMap<String, String> {
        json(out)["pipelines"]
            .as_array()
            .expect("pipelines")
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap_or_default().to_string(),
                    p["version_name"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(names(&a), names(&b));
}

/// A server whose healthz has no release (`dev`) on a Kubernetes store: kfp-ci assumes the
/// older naming rule, so a collision is still handled.
#[test]
fn an_unknown_release_on_a_kubernetes_store_is_handled_conservatively() {
    let (ctx, server) = three_pipelines_on_a_2_16_kubernetes_store();
    let proxy = crate::deploy::with_healthz(
        &server.url,
        r#"{"commit_sha":"abc","tag_name":"dev","multi_user":false,"pipeline_store":"kubernetes"}"#,
    );
    let tag = "v20261202-101010";
    let out = deploy(&ctx, &proxy.url, &["--version-tag", tag]);
    assert_exit(&out, 0);
    one_version_each_one_with_the_tag(&server.url, tag);
    let out = run(&ctx, &["doctor", "--endpoint", &proxy.url]);
    assert!(
        text(&out.stderr).contains("release: unknown (tag_name \"dev\")"),
        "{}",
        text(&out.stderr)
    );
}
