//! plan/deploy as a platform engineer meets them: TLS with a private CA, the Kubeflow gateway's
//! path prefix, auth proxies (cookie, extra headers, a rotating token file), a deploy killed in
//! the middle of an apply and rerun, answers lost or pipelines deleted meanwhile, specs uploaded
//! by the official kfp client, and the one-line errors for an unreachable endpoint, an untrusted
//! certificate or a rejected token.

use crate::common::{Server, TestContext, python};
use crate::deploy::{
    GOODBYE, HELLO, TAG, assert_contains, assert_exit, faulty_one, hello_and_goodbye, json,
    json_run, kfp_client_view, repo_and_server, run, text, with_healthz,
};
use crate::faulty::{Fault, Faulty, Rule};
use crate::tls::TlsProxy;

#[test]
fn tls_with_a_private_ca_without_it_and_with_verification_off() {
    let (ctx, server) = repo_and_server(&[("hello_pipeline.py", HELLO)]);
    let tls = TlsProxy::start(&server.url);
    let ca = tls.ca_pem.to_str().expect("utf-8 path");

    // The private CA given: deployed over TLS.
    let out = json_run(
        &ctx,
        "deploy",
        &tls.url,
        &["--ca-cert", ca, "--version-tag", TAG],
        0,
    );
    assert_eq!(json(&out)["counts"]["created"], 1);
    assert_eq!(tls.handshake_failures(), 0);

    // Without it: the certificate is refused, at once (no retries of a certificate error), exit
    // 2, naming the endpoint and saying what to do.
    let out = run(&ctx, &["deploy", "--endpoint", &tls.url]);
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&tls.url), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
    assert!(stderr.contains("--ca-cert"), "{stderr}");
    assert_eq!(
        tls.handshake_failures(),
        1,
        "a certificate error is not retried"
    );

    // Verification off: works, with a loud warning.
    let out = json_run(&ctx, "deploy", &tls.url, &["--insecure-skip-tls-verify"], 0);
    assert_eq!(json(&out)["counts"]["unchanged"], 1);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning: TLS certificate verification is off"),
        "{stderr}"
    );

    // A CA file that is not PEM: a configuration error naming the file.
    let bogus = ctx.write("not-a-ca.pem", "hello\n");
    let out = run(
        &ctx,
        &["plan", "--endpoint", &tls.url, "--ca-cert"]
            .into_iter()
            .chain([bogus.to_str().expect("utf-8")])
            .collect::<Vec<_>>(),
    );
    assert_exit(&out, 2);
    assert_contains(&text(&out.stderr), "not-a-ca.pem");
}

#[test]
fn endpoint_with_the_gateways_path_prefix_with_and_without_trailing_slash() {
    let (ctx, server) = repo_and_server(&[("hello_pipeline.py", HELLO)]);
    let gateway = Faulty::start_with_prefix(&server.url, "/pipeline", vec![]);
    assert!(gateway.url.ends_with("/pipeline"));

    let out = json_run(&ctx, "deploy", &gateway.url, &["--version-tag", TAG], 0);
    assert_eq!(json(&out)["counts"]["created"], 1);
    // The trailing-slash spelling (and KF_PIPELINES_ENDPOINT) reaches the same API.
    let out = ctx
        .cmd()
        .args(["deploy", "--output", "json"])
        .env("KF_PIPELINES_ENDPOINT", format!("{}/", gateway.url))
        .output()
        .expect("run");
    assert_exit(&out, 0);
    assert_eq!(json(&out)["counts"]["unchanged"], 1);
    let log = gateway.log();
    assert!(
        log.iter()
            .all(|l| l.path.starts_with("/pipeline/apis/v2beta1/")
                && (l.status == 200 || (l.status == 404 && l.path.contains("/names/")))),
        "{log:#?}"
    );
    assert!(!log.iter().any(|l| l.path.contains("//")), "{log:#?}");
    assert_eq!(
        kfp_client_view(&server.url, None)["hello_pipeline"]["versions"],
        serde_json::json!([TAG])
    );

    // The gateway's host without the prefix: a 404 with a hint about the base URL, exit 2.
    let host = gateway.url.trim_end_matches("/pipeline").to_string();
    let out = run(&ctx, &["plan", "--endpoint", &host]);
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("404"), "{stderr}");
    assert!(stderr.contains("https://<host>/pipeline"), "{stderr}");
}

#[test]
fn cookie_extra_headers_and_a_token_file_rotated_mid_run() {
    let (ctx, server) = hello_and_goodbye();
    // The health check is held until the token file has been rewritten: everything after it
    // must carry the new token.
    let proxy = faulty_one(&server.url, "GET", "/healthz", 1, Fault::Hold);
    let token_file = ctx.write("token", "first-sa-token-AAAA\n");
    let cookie = "oauth2_proxy_kubeflow=cookie-secret-BBBB; other=1";
    let mut cmd = ctx.std_cmd();
    cmd.args(["deploy", "--endpoint", &proxy.url, "--version-tag", TAG])
        .args(["--output", "json", "--report-file", "report.json", "-v"])
        .arg("--token-file")
        .arg(&token_file)
        .args(["--header", "kubeflow-userid: alice@example.com"])
        .args(["--header", "X-Api-Key: header-secret-CCCC"])
        .env("KFP_CI_COOKIE", cookie)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("spawn kfp-ci deploy");
    proxy.wait_for("GET", "/healthz", 1);
    std::fs::write(&token_file, "second-sa-token-DDDD\n").expect("rotate the token");
    proxy.release();
    let out = child.wait_with_output().expect("deploy");
    assert_exit(&out, 0);
    assert_eq!(json(&out)["counts"]["created"], 2);

    let log = proxy.log();
    assert!(log.len() >= 7, "{log:#?}");
    for (i, l) in log.iter().enumerate() {
        let expected_token = if i == 0 {
            "Bearer first-sa-token-AAAA"
        } else {
            "Bearer second-sa-token-DDDD"
        };
        assert_eq!(l.header("authorization"), Some(expected_token), "{l:#?}");
        assert_eq!(l.header("cookie"), Some(cookie), "{l:#?}");
        assert_eq!(l.header("kubeflow-userid"), Some("alice@example.com"));
        assert_eq!(l.header("x-api-key"), Some("header-secret-CCCC"));
    }
    assert_eq!(log[0].path, "/apis/v2beta1/healthz");

    // No secret in any output: stdout, stderr (at -v), the report file.
    let report = std::fs::read_to_string(ctx.root().join("report.json")).expect("report");
    for output in [text(&out.stdout), text(&out.stderr), report] {
        for secret in [
            "AAAA",
            "DDDD",
            "cookie-secret",
            "header-secret",
            "alice@example.com",
        ] {
            assert!(!output.contains(secret), "{secret} leaked:\n{output}");
        }
    }
}

/// Spawn `kfp-ci deploy` against `endpoint`, wait until the proxy has `n` requests matching
/// `POST …suffix` hanging, then SIGKILL it.
fn deploy_killed_mid_apply(ctx: &TestContext, proxy: &Faulty, suffix: &str, n: usize, tag: &str) {
    let mut child = ctx
        .std_cmd()
        .args(["deploy", "--endpoint", &proxy.url, "--version-tag", tag])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn kfp-ci deploy");
    proxy.wait_for("POST", suffix, n);
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), None, "killed by a signal");
}

/// Pipeline name → (number of pipelines of that name, version names sorted) from the store.
fn store_state(url: &str) -> serde_json::Value {
    kfp_client_view(url, None)
}

#[test]
fn rerun_after_a_kill_mid_upload_converges() {
    let (ctx, server) = hello_and_goodbye();
    let out = run(
        &ctx,
        &["deploy", "--endpoint", &server.url, "--version-tag", "v1"],
    );
    assert_exit(&out, 0);

    // goodbye changes, a new pipeline appears; every upload hangs without reaching the server,
    // and the deploy is killed. The new pipeline was created (POST /pipelines) just before.
    server.advance_clock(1);
    ctx.write(
        "goodbye_pipeline.py",
        &GOODBYE.replace("times: int = 2", "times: int = 3"),
    );
    ctx.write(
        "fresh_pipeline.py",
        &HELLO.replace("hello-pipeline", "fresh-pipeline"),
    );
    let proxy = faulty_one(
        &server.url,
        "POST",
        "/upload_version",
        100,
        Fault::Hang { forward: false },
    );
    deploy_killed_mid_apply(&ctx, &proxy, "/upload_version", 2, "v2");
    assert_eq!(proxy.count("POST", "/apis/v2beta1/pipelines"), 1);
    let state = store_state(&server.url);
    assert_eq!(
        state["fresh_pipeline"]["versions"],
        serde_json::json!([]),
        "the leftover: an empty pipeline\n{state:#}"
    );

    // The rerun (a new run, a new tag) sees the empty pipeline as present without versions:
    // it uploads its first version instead of creating it again.
    let out = json_run(&ctx, "deploy", &server.url, &["--version-tag", "v3"], 0);
    let report = json(&out);
    assert_eq!(report["counts"]["created"], 0, "{report:#}");
    assert_eq!(report["counts"]["updated"], 2, "{report:#}");
    assert_eq!(report["counts"]["unchanged"], 1, "{report:#}");
    let fresh = report["pipelines"]
        .as_array()
        .expect("pipelines")
        .iter()
        .find(|p| p["name"] == "fresh_pipeline")
        .expect("fresh_pipeline")
        .clone();
    assert_eq!(fresh["reason"], "the pipeline has no version", "{fresh:#}");
    let state = store_state(&server.url);
    assert_eq!(
        state,
        serde_json::json!({
            "fresh_pipeline": {"display_name": "fresh_pipeline", "versions": ["v3"]},
            "goodbye_pipeline": {"display_name": "goodbye_pipeline", "versions": ["v1", "v3"]},
            "hello_pipeline": {"display_name": "hello_pipeline", "versions": ["v1"]},
        })
    );
}

#[test]
fn rerun_after_a_kill_when_the_uploads_had_landed_uploads_nothing() {
    let (ctx, server) = hello_and_goodbye();
    // Both uploads reach the server, but the answers never come back; the deploy is killed.
    let proxy = faulty_one(
        &server.url,
        "POST",
        "/upload_version",
        100,
        Fault::Hang { forward: true },
    );
    deploy_killed_mid_apply(&ctx, &proxy, "/upload_version", 2, "v1");
    // The rerun, same commit, a new tag: everything is already there.
    let out = json_run(&ctx, "deploy", &server.url, &["--version-tag", "v2"], 0);
    assert_eq!(
        json(&out)["counts"]["unchanged"],
        2,
        "{}",
        text(&out.stdout)
    );
    let state = store_state(&server.url);
    assert_eq!(
        state["hello_pipeline"]["versions"],
        serde_json::json!(["v1"])
    );
    assert_eq!(
        state["goodbye_pipeline"]["versions"],
        serde_json::json!(["v1"])
    );
}

/// Compile `file` with the kfp SDK and upload it with `kfp.Client.upload_pipeline`, the way a
/// team deployed before kfp-ci; returns nothing, panics on failure.
fn upload_with_the_official_client(ctx: &TestContext, url: &str, file: &str, name: &str) {
    let script = r#"
import importlib.util, sys
import kfp
from kfp import compiler
url, path, name, out = sys.argv[1:5]
spec = importlib.util.spec_from_file_location("p", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
compiler.Compiler().compile(getattr(module, name), out)
kfp.Client(host=url).upload_pipeline(out, pipeline_name=name)
"#;
    let out = ctx
        .command(python())
        .current_dir(ctx.root())
        .args(["-c", script, url, file, name, "official.yaml"])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "kfp.Client upload failed:\n{}",
        text(&out.stderr)
    );
}

#[test]
fn a_spec_uploaded_by_the_official_client_plans_unchanged() {
    let ctx = TestContext::new();
    ctx.write("hello_pipeline.py", HELLO);
    // Two documents (a kfp-kubernetes platform spec) and numbers the server turns into doubles.
    ctx.write(
        "secret_pipeline.py",
        r#"from kfp import dsl, kubernetes


@dsl.component(base_image="python:3.11-slim")
def train(epochs: int, rate: float) -> float:
    return rate * epochs


@dsl.pipeline(name="secret-pipeline")
def secret_pipeline(epochs: int = 3, rate: float = 0.5):
    task = train(epochs=epochs, rate=rate)
    task.set_cpu_limit("2").set_memory_limit("1G").set_retry(num_retries=2)
    kubernetes.use_secret_as_env(task, secret_name="creds", secret_key_to_env={"key": "KEY"})
"#,
    );
    let server = Server::start(&ctx.root().join("registry.db"), &[]);
    upload_with_the_official_client(&ctx, &server.url, "hello_pipeline.py", "hello_pipeline");
    upload_with_the_official_client(&ctx, &server.url, "secret_pipeline.py", "secret_pipeline");
    let out = json_run(&ctx, "plan", &server.url, &["--detailed-exitcode"], 0);
    let report = json(&out);
    assert_eq!(report["counts"]["unchanged"], 2, "{report:#}");
    for p in report["pipelines"].as_array().expect("pipelines") {
        assert_eq!(p["action"], "unchanged", "{p:#}");
    }

    // --keep-versions 1 on two changed deploys: kfp-ci's older version goes, the version the
    // official client uploaded (not kfp-ci's) stays.
    for (tag, greeting) in [("v2", "bonjour"), ("v3", "hallo")] {
        server.advance_clock(1);
        ctx.write(
            "hello_pipeline.py",
            &HELLO.replace(
                "message: str = \"hello\"",
                &format!("message: str = \"{greeting}\""),
            ),
        );
        let out = json_run(
            &ctx,
            "deploy",
            &server.url,
            &["--version-tag", tag, "--keep-versions", "1"],
            0,
        );
        assert_eq!(json(&out)["counts"]["updated"], 1);
    }
    assert_eq!(
        kfp_client_view(&server.url, None)["hello_pipeline"]["versions"],
        serde_json::json!(["hello_pipeline", "v3"])
    );
}

#[test]
fn an_upload_whose_last_retry_landed_is_found_not_failed() {
    let (ctx, server) = repo_and_server(&[("hello_pipeline.py", HELLO)]);
    // Four uploads fail outright; the fifth (the last attempt) lands, but its answer is lost.
    let proxy = Faulty::start(
        &server.url,
        vec![
            Rule {
                method: "POST",
                path_suffix: "/upload_version",
                times: 4,
                fault: Fault::Reply(503, r#"{"code":14,"message":"injected"}"#),
            },
            Rule {
                method: "POST",
                path_suffix: "/upload_version",
                times: 1,
                fault: Fault::ForwardThenReply(503),
            },
        ],
    );
    let out = json_run(&ctx, "deploy", &proxy.url, &["--version-tag", TAG], 0);
    assert_eq!(json(&out)["counts"]["created"], 1);
    assert_eq!(proxy.count("POST", "/upload_version"), 5);
    assert_eq!(proxy.count("DELETE", ""), 0, "{:#?}", proxy.log());
    assert_eq!(
        kfp_client_view(&server.url, None)["hello_pipeline"]["versions"],
        serde_json::json!([TAG])
    );
}

#[test]
fn credentials_rejected_at_lookup_are_a_run_error_not_per_pipeline_failures() {
    let ctx = TestContext::new();
    ctx.write("hello_pipeline.py", HELLO);
    ctx.write("goodbye_pipeline.py", GOODBYE);
    let server = Server::start(
        &ctx.root().join("registry.db"),
        &["--token", "the-right-token-1234"],
    );
    // KFP's own health check needs no credentials; the lookups do.
    let proxy = with_healthz(
        &server.url,
        r#"{"commit_sha":"abc","tag_name":"2.17.0","multi_user":true,"pipeline_store":"database"}"#,
    );
    let out = ctx
        .cmd()
        .args(["deploy", "--endpoint", &proxy.url, "--namespace", "ml"])
        .args(["--report-file", "report.json"])
        .env("KF_PIPELINES_TOKEN", "an-expired-token-5678")
        .output()
        .expect("run");
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("rejected the credentials for the pipeline lookups"),
        "{stderr}"
    );
    assert!(stderr.contains(&proxy.url), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    assert!(!stderr.contains("an-expired-token-5678"), "{stderr}");
    // Nothing was written, and the report says why.
    assert_eq!(proxy.count("POST", ""), 0, "{:#?}", proxy.log());
    let report = std::fs::read_to_string(ctx.root().join("report.json")).expect("report");
    assert!(report.contains("rejected the credentials"), "{report}");
    assert!(!report.contains("an-expired-token-5678"));
}

#[test]
fn a_create_whose_answer_was_lost_is_found_not_duplicated() {
    let (ctx, server) = repo_and_server(&[("hello_pipeline.py", HELLO)]);
    let proxy = faulty_one(
        &server.url,
        "POST",
        "/apis/v2beta1/pipelines",
        1,
        Fault::ForwardThenReply(503),
    );
    let out = json_run(&ctx, "deploy", &proxy.url, &["--version-tag", TAG], 0);
    let report = json(&out);
    assert_eq!(report["counts"]["created"], 1, "{report:#}");
    let reason = report["pipelines"][0]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("answer was lost"), "{reason}");
    // Sent again as it was: the 409 says it had landed, the lookup finds it.
    assert_eq!(proxy.count("POST", "/apis/v2beta1/pipelines"), 2);
    assert_eq!(
        kfp_client_view(&server.url, None),
        serde_json::json!({"hello_pipeline": {"display_name": "hello_pipeline", "versions": [TAG]}})
    );
}

#[test]
fn behind_a_gateway_https_with_a_path_prefix_and_a_session_cookie() {
    let (ctx, server) = repo_and_server(&[("hello_pipeline.py", HELLO)]);
    let gateway = Faulty::start_with_prefix(&server.url, "/pipeline", vec![]);
    let tls = TlsProxy::start(&gateway.url);
    let endpoint = format!("{}/pipeline/", tls.url);
    let ca = tls.ca_pem.to_str().expect("utf-8 path");
    let out = ctx
        .cmd()
        .args(["deploy", "--endpoint", &endpoint, "--ca-cert", ca])
        .args(["--version-tag", TAG, "--output", "json"])
        .env("KFP_CI_COOKIE", "authservice_session=session-secret-EEEE")
        .output()
        .expect("run");
    assert_exit(&out, 0);
    assert_eq!(json(&out)["counts"]["created"], 1);
    assert_eq!(
        json(&out)["target"]["endpoint"],
        format!("{}/pipeline", tls.url)
    );
    let log = gateway.log();
    assert!(
        log.iter()
            .all(|l| l.path.starts_with("/pipeline/apis/v2beta1/")
                && l.header("cookie") == Some("authservice_session=session-secret-EEEE")),
        "{log:#?}"
    );
    assert!(!text(&out.stderr).contains("EEEE") && !text(&out.stdout).contains("EEEE"));
}

/// A 401 hint names where the rejected credential came from: the variable a target's
/// `token_env` names, not KF_PIPELINES_TOKEN.
#[test]
fn a_rejected_token_hint_names_the_variable_it_came_from() {
    let ctx = TestContext::new();
    ctx.write("hello_pipeline.py", HELLO);
    let server = Server::start(
        &ctx.root().join("registry.db"),
        &["--token", "the-right-token-1234"],
    );
    ctx.write(
        "kfp-ci.toml",
        &format!(
            "[targets.prod]\nendpoint = \"{}\"\ntoken_env = \"PROD_TOKEN\"\n",
            server.url
        ),
    );
    let out = ctx
        .cmd()
        .args(["deploy", "--target", "prod", "--version-tag", TAG])
        .env("PROD_TOKEN", "a-wrong-token-5678")
        .env_remove("KF_PIPELINES_TOKEN")
        .output()
        .expect("run");
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    let hint = stderr
        .lines()
        .find(|l| l.starts_with("hint:"))
        .unwrap_or_else(|| panic!("no hint: {stderr}"));
    assert!(hint.contains("the token in PROD_TOKEN"), "{stderr}");
    assert!(!hint.contains("KF_PIPELINES_TOKEN"), "{stderr}");
    assert!(!stderr.contains("a-wrong-token-5678"), "{stderr}");

    // Without any credential the hint says none is configured.
    let out = ctx
        .cmd()
        .args(["deploy", "--target", "prod", "--version-tag", TAG])
        .env_remove("PROD_TOKEN")
        .env_remove("KF_PIPELINES_TOKEN")
        .output()
        .expect("run");
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("hint: no credentials configured: set KF_PIPELINES_TOKEN or --token-file"),
        "{stderr}"
    );
}

/// An endpoint that does not answer is one readable line plus the hint; the reqwest chain is
/// for -v.
#[test]
fn an_unreachable_endpoint_is_one_readable_line() {
    let ctx = TestContext::new();
    ctx.write("hello_pipeline.py", HELLO);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let out = run(&ctx, &["deploy", "--endpoint", &endpoint]);
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error:") || l.starts_with("hint:"))
        .collect();
    assert_eq!(
        lines,
        [
            format!("error: cannot reach the KFP API at {endpoint} (connection refused)").as_str(),
            "hint: is the endpoint reachable from here? `kfp-ci doctor` checks endpoint, token and namespace",
        ],
        "{stderr}"
    );
    let out = run(&ctx, &["-v", "deploy", "--endpoint", &endpoint]);
    assert_contains(&text(&out.stderr), "tcp connect error");
}

/// `python -c SCRIPT ARGS…` with the test Python; its stdout.
fn py(script: &str, args: &[&str]) -> String {
    let out = crate::common::command(crate::common::python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

/// The race left open by the cleanup of a failed first upload: run B looked the pipeline up (it
/// was there, empty), then run A deleted it before B's upload arrived. B's upload gets KFP's
/// generic 400; B looks the pipeline up again, finds it gone, creates it and uploads.
#[test]
fn an_upload_to_a_pipeline_deleted_meanwhile_recreates_it() {
    let (ctx, server) = repo_and_server(&[("hello_pipeline.py", HELLO)]);
    let planned = json(&json_run(&ctx, "plan", &server.url, &[], 0));
    let name = planned["pipelines"][0]["name"]
        .as_str()
        .expect("name")
        .to_string();
    // The empty pipeline a concurrent run A created (its first upload is about to fail).
    let first_id = py(
        "import json, sys, urllib.request\n\
         req = urllib.request.Request(sys.argv[1] + '/apis/v2beta1/pipelines', method='POST',\n\
             data=json.dumps({'name': sys.argv[2], 'display_name': sys.argv[2]}).encode(),\n\
             headers={'Content-Type': 'application/json'})\n\
         print(json.load(urllib.request.urlopen(req))['pipeline_id'])",
        &[&server.url, &name],
    );
    let proxy = faulty_one(
        &server.url,
        "POST",
        "/pipelines/upload_version",
        1,
        Fault::Hold,
    );
    let mut cmd = ctx.std_cmd();
    cmd.args(["deploy", "--endpoint", &proxy.url, "--version-tag", TAG])
        .args(["--output", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("spawn kfp-ci deploy");
    proxy.wait_for("POST", "/pipelines/upload_version", 1);
    // Run A gives up and deletes its empty pipeline while B's upload is in flight.
    py(
        "import sys, urllib.request\n\
         urllib.request.urlopen(urllib.request.Request(\n\
             sys.argv[1] + '/apis/v2beta1/pipelines/' + sys.argv[2], method='DELETE'))",
        &[&server.url, &first_id],
    );
    proxy.release();
    let out = child.wait_with_output().expect("deploy");
    assert_exit(&out, 0);
    let report = json(&out);
    let p = &report["pipelines"][0];
    assert_eq!(p["status"], "done", "{report:#}");
    assert_eq!(p["version_name"], TAG, "{report:#}");
    let new_id = p["pipeline_id"].as_str().expect("pipeline id");
    assert_ne!(new_id, first_id, "{report:#}");
    assert!(
        p["reason"]
            .as_str()
            .is_some_and(|r| r.contains("deleted by a concurrent run")),
        "{report:#}"
    );
    // The server holds the pipeline again, with our version.
    let listed = py(
        "import json, sys, urllib.request\n\
         url = sys.argv[1] + '/apis/v2beta1/pipelines/' + sys.argv[2] + '/versions'\n\
         print(','.join(v['name'] for v in json.load(urllib.request.urlopen(url))['pipeline_versions']))",
        &[&server.url, new_id],
    );
    assert_eq!(listed, TAG);
    // The first upload went to the deleted id and got the generic 400.
    let uploads: Vec<u16> = proxy
        .log()
        .iter()
        .filter(|l| l.path.contains("upload_version"))
        .map(|l| l.status)
        .collect();
    assert_eq!(uploads, [400, 200], "{:#?}", proxy.log());
}

/// An untrusted certificate is one line too, with the certificate hint.
#[test]
fn an_untrusted_certificate_is_one_readable_line() {
    let (ctx, server) = repo_and_server(&[("hello_pipeline.py", HELLO)]);
    let tls = crate::tls::TlsProxy::start(&server.url);
    let out = run(&ctx, &["deploy", "--endpoint", &tls.url]);
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    let error: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        error,
        [format!(
            "error: cannot reach the KFP API at {} (TLS: invalid peer certificate: UnknownIssuer)",
            tls.url.trim_end_matches('/')
        )
        .as_str()],
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: the server's TLS certificate is not trusted here"),
        "{stderr}"
    );
}
