//! Found by using kfp-ci as its users do: secrets that passed through, error messages, the
//! generated workflow, the serve page. Each test pins one fix.

use std::path::Path;

use crate::common::{Server, TestContext, workspace_root};
use crate::ntfy_server::{Auth, NtfyServer};

const KFP_TOKEN: &str = "tk_SECRETSECRETSECRETSECRET12345";
const NTFY_TOKEN: &str = "tk_NTFYSECRETNTFYSECRETNTFYSEC12"; // tk_ + 29, as ntfy requires
const COOKIE: &str = "authservice_session=tk_COOKIESECRETCOOKIESECRET12345";
const HEADER: &str = "tk_HEADERSECRETHEADERSECRET12345";
const SECRETS: &[&str] = &[
    "SECRETSECRETSECRET",
    "NTFYSECRETNTFYSECRET",
    "COOKIESECRETCOOKIESECRET",
    "HEADERSECRETHEADERSECRET",
];

/// A pipeline file that prints the secrets it can see and fails with one in its error: user code
/// kfp-ci passes through to logs, reports, job outputs, the step summary and ntfy.
const LEAKY: &str = r#"import os
print("env:", os.environ.get("KF_PIPELINES_TOKEN"), os.environ.get("NTFY_TOKEN"),
      os.environ.get("KFP_CI_COOKIE"), os.environ.get("QA_HEADER"))
# kfp-ci's own credentials never reach the compile (None); a secret it knows only by value, such
# as a header given on the command line, can, and must still be redacted wherever it goes.
raise RuntimeError("cannot reach the registry with " + str(os.environ.get("KF_PIPELINES_TOKEN") or os.environ.get("QA_HEADER")))
"#;

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{what} shows a secret ({secret}):\n{text}"
        );
    }
}

fn gitea(cmd: &mut assert_cmd::Command, runner: &Path) {
    cmd.env("GITEA_ACTIONS", "true")
        .env("GITHUB_ACTIONS", "true")
        .env("CI", "true")
        .env("GITHUB_SERVER_URL", "http://127.0.0.1:9")
        .env("GITHUB_API_URL", "http://127.0.0.1:9/api/v1")
        .env("GITHUB_REPOSITORY", "ml-team/pipelines")
        .env("GITHUB_SHA", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b")
        .env("GITHUB_REF", "refs/heads/main")
        .env("GITHUB_REF_NAME", "main")
        .env("GITHUB_RUN_ID", "4711")
        .env("GITHUB_RUN_NUMBER", "42")
        .env("GITHUB_OUTPUT", runner.join("github_output"))
        .env("GITHUB_STEP_SUMMARY", runner.join("step_summary"))
        .env("KF_PIPELINES_TOKEN", KFP_TOKEN)
        .env("NTFY_TOKEN", NTFY_TOKEN)
        .env("KFP_CI_COOKIE", COOKIE)
        .env("QA_HEADER", HEADER)
        .env_remove("KFP_CI_REPORT")
        .env_remove("KFP_CI_JOB_STATUS");
}

#[test]
fn secrets_that_pass_through_never_reach_any_output() {
    let ctx = TestContext::new();
    let good = workspace_root().join("examples/evaluation_pipeline.py");
    std::fs::copy(&good, ctx.root().join("evaluation_pipeline.py")).expect("copy example");
    ctx.write("leaky_pipeline.py", LEAKY);
    let runner = ctx.root().join("runner");
    std::fs::create_dir_all(&runner).expect("runner dir");
    let server = Server::start(&ctx.root().join("kfp.db"), &["--token", KFP_TOKEN]);
    let ntfy = NtfyServer::start(Auth::Token(NTFY_TOKEN.into()));
    let ntfy_url = format!("{}/kfp-deploys", ntfy.url);
    let report_file = runner.join("report.json");

    let mut outputs = Vec::new();
    let mut deploy = ctx.cmd();
    gitea(&mut deploy, &runner);
    let out = deploy
        .args([
            "-vv",
            "deploy",
            "--output",
            "json",
            "--endpoint",
            &server.url,
        ])
        .args([
            "--header",
            &format!("X-Qa: {HEADER}"),
            "--ntfy-url",
            &ntfy_url,
        ])
        .arg("--report-file")
        .arg(&report_file)
        .output()
        .expect("deploy");
    assert_eq!(out.status.code(), Some(1), "one pipeline fails");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    serde_json::from_str::<serde_json::Value>(&stdout).expect("stdout is one JSON report");
    assert!(
        stdout.contains("[redacted]"),
        "the error was kept, redacted"
    );
    outputs.push(("deploy stdout", stdout));
    outputs.push(("deploy stderr", String::from_utf8_lossy(&out.stderr).into()));

    let mut notify = ctx.cmd();
    gitea(&mut notify, &runner);
    let out = notify
        .args(["-vv", "notify", "--ntfy-url", &ntfy_url, "--report-file"])
        .arg(&report_file)
        .output()
        .expect("notify");
    assert_eq!(out.status.code(), Some(0));
    outputs.push(("notify stdout", String::from_utf8_lossy(&out.stdout).into()));
    outputs.push(("notify stderr", String::from_utf8_lossy(&out.stderr).into()));

    // `check` reads no token itself, yet the pipeline's output carries the conventional ones.
    for command in ["check", "compile"] {
        let mut check = ctx.cmd();
        gitea(&mut check, &runner);
        // A header is a secret only where it is given (plan, deploy, doctor).
        check.env_remove("QA_HEADER");
        let out = check
            .args(["-v", command, "--output", "json"])
            .output()
            .expect("check");
        assert_eq!(out.status.code(), Some(1));
        outputs.push((
            "check/compile stdout",
            String::from_utf8_lossy(&out.stdout).into(),
        ));
        outputs.push((
            "check/compile stderr",
            String::from_utf8_lossy(&out.stderr).into(),
        ));
    }

    for file in ["github_output", "step_summary", "report.json"] {
        let text = std::fs::read_to_string(runner.join(file)).expect(file);
        assert!(
            text.contains("leaky_pipeline"),
            "{file} reports the failure"
        );
        outputs.push((file, text));
    }
    let published = ntfy.accepted();
    assert_eq!(published.len(), 2, "deploy and notify each published once");
    for r in &published {
        outputs.push(("ntfy body", String::from_utf8_lossy(&r.body).into()));
    }
    for (what, text) in &outputs {
        assert_no_secret(what, text);
    }
}

/// A spec the server accepts, written by hand (the page test needs no compiler).
const MINI_SPEC: &str = "components:
  comp-echo:
    executorLabel: exec-echo
deploymentSpec:
  executors:
    exec-echo:
      container:
        image: alpine:3.20
        command: [echo, hi]
pipelineInfo:
  name: qa-page
root:
  dag:
    tasks:
      echo:
        componentRef:
          name: comp-echo
        taskInfo:
          name: echo
schemaVersion: 2.1.0
sdkVersion: kfp-2.17.0
";

/// With `--token`, a person opens the page once as `/?token=…`; a session cookie (not the token)
/// then opens the page, never the API; names are escaped and the page runs no script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_page_opens_in_a_browser_with_token_once_and_escapes_names() {
    use reqwest::StatusCode;
    let dir = tempfile::tempdir().expect("tempdir");
    let token = "tk_SERVEPAGESECRET12345";
    let server = Server::start(&dir.path().join("r.db"), &["--token", token]);
    let browser = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let form = reqwest::multipart::Form::new().part(
        "uploadfile",
        reqwest::multipart::Part::bytes(MINI_SPEC.as_bytes().to_vec()).file_name("p.yaml"),
    );
    let up = browser
        .post(format!("{}/apis/v2beta1/pipelines/upload", server.url))
        .query(&[
            ("name", "<script>alert(1)</script>"),
            ("display_name", "<img src=x onerror=alert(1)>"),
        ])
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(up.status(), StatusCode::OK);

    // No token: a page that says how to get in, without the token.
    let resp = browser
        .get(format!("{}/", server.url))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let html = resp.text().await.expect("body");
    assert!(html.contains("?token=") && !html.contains(token), "{html}");
    // A wrong token: refused.
    let resp = browser
        .get(format!("{}/?token=wrong", server.url))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // The right one: a redirect that drops it from the address and sets a session cookie.
    let resp = browser
        .get(format!("{}/?token={token}", server.url))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/");
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(token),
        "the cookie is not the token: {cookie}"
    );
    let session = cookie.split(';').next().expect("name=value").to_string();
    let port = server.url.rsplit(':').next().expect("port");
    assert!(
        session.starts_with(&format!("kfp_ci_serve_session_{port}=")),
        "one cookie per server (browsers share cookies across ports): {session}"
    );

    let resp = browser
        .get(format!("{}/", server.url))
        .header("cookie", &session)
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::OK);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = resp.text().await.expect("html");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(
        !html.contains("<script") && !html.contains("<img"),
        "{html}"
    );

    // The cookie opens the page, never the API: API auth stays bearer-only.
    for path in ["/apis/v2beta1/pipelines", "/apis/v2beta1/healthz"] {
        let resp = browser
            .get(format!("{}{path}", server.url))
            .header("cookie", &session)
            .send()
            .await
            .expect("get");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    // A forged cookie is refused.
    let resp = browser
        .get(format!("{}/", server.url))
        .header(
            "cookie",
            format!("{}=forged", session.split('=').next().expect("name")),
        )
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

/// `kfp-ci notify` with a report file that is not a report: the notification says the report could
/// not be read and names the file, shows no made-up counts, and the job still succeeds.
#[test]
fn notify_with_a_malformed_report_says_so_without_zero_counts() {
    let ctx = TestContext::new();
    let ntfy = NtfyServer::start(Auth::Open);
    for (file, content) in [
        ("truncated.json", "{\"schema\": 1, \"command\":"),
        ("array.json", "[1, 2]"),
        ("empty-object.json", "{}"),
    ] {
        let path = ctx.write(file, content);
        let out = ctx
            .cmd()
            .args(["notify", "--ntfy-url", &format!("{}/deploys", ntfy.url)])
            .arg("--report-file")
            .arg(&path)
            .output()
            .expect("notify");
        assert_eq!(out.status.code(), Some(0), "{file}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("could not be read") && stderr.contains(file),
            "{file}: {stderr}"
        );
        let sent = ntfy.accepted().last().expect("a notification").json();
        let message = sent["message"].as_str().expect("message");
        assert!(message.starts_with("**Errors**"), "{file}: {message}");
        assert!(
            message.contains(file) && !message.contains("compiled"),
            "{message}"
        );
        assert_eq!(sent["title"], "deploy failed");
    }
}

/// SIGTERM stops `kfp-ci serve` promptly and cleanly even while a client holds a connection with
/// a request it never finishes (a browser tab, a stuck client).
#[test]
fn serve_stops_on_sigterm_despite_a_stuck_connection() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = crate::common::command(env!("CARGO_BIN_EXE_kfp-ci"))
        .args(["serve", "--addr", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("r.db"))
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let url = loop {
        let line = lines.next().expect("serve output").expect("line");
        if let Some(i) = line.find("listening on http://") {
            break line[i + "listening on http://".len()..].trim().to_string();
        }
    };
    let mut stuck = std::net::TcpStream::connect(&url).expect("connect");
    stuck
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .expect("half a request");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let started = std::time::Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = std::time::Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break exit;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            panic!("serve still running {deadline:?} after SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("shutting down")), "{rest:?}");
    drop(stuck);
}

/// An output directory that cannot be created is a usage error (exit 2) found before compiling,
/// in one line naming the directory and the setting.
#[test]
fn compile_into_an_impossible_out_dir_fails_first_naming_it() {
    let ctx = TestContext::new();
    ctx.write("a_pipeline.py", "raise SystemExit('never compiled')\n");
    let blocker = ctx.write("not-a-dir", "a file\n");
    let out = ctx
        .cmd()
        .arg("compile")
        .arg("--out-dir")
        .arg(blocker.join("yaml"))
        .output()
        .expect("compile");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: cannot create the output directory")
            && stderr.contains("not-a-dir")
            && stderr.contains("--out-dir"),
        "{stderr}"
    );
}

const TINY: &str = r#"from kfp import dsl

@dsl.component(base_image="python:3.11")
def hello() -> str:
    return "hi"

@dsl.pipeline
def tiny():
    hello()
"#;

/// Two files with the same pipeline name: `check` prints why both failed, not only a count.
#[test]
fn check_prints_the_duplicate_name_failures_it_counts() {
    let ctx = TestContext::new();
    ctx.write("team_a/train_pipeline.py", TINY);
    ctx.write("team_b/train_pipeline.py", TINY);
    let out = ctx.cmd().arg("check").output().expect("check");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for file in ["team_a/train_pipeline.py", "team_b/train_pipeline.py"] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains("FAILED") && l.contains(file) && l.contains("duplicate_name")),
            "{file}: {stderr}"
        );
    }
    assert!(stderr.contains("2 failed"), "{stderr}");
}

/// A bad value in a nested table of kfp-ci.toml: exit 2, one line naming the file, the line, the
/// table and the key, for every command that reads the configuration.
#[test]
fn nested_config_errors_are_one_line_naming_file_table_and_key() {
    let ctx = TestContext::new();
    ctx.write(
        "kfp-ci.toml",
        "include = [\"**/*_pipeline.py\"]\n\n[targets.prod]\nendpoint = \"https://kfp.example.com/pipeline\"\ntoken = \"oops\"\n",
    );
    for command in ["check", "plan", "deploy", "notify", "doctor"] {
        let out = ctx.cmd().arg(command).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{command}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{command}: {stderr}");
        assert!(
            stderr.contains("kfp-ci.toml, line 5 in [targets.prod]: unknown key `token`"),
            "{command}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{command}: stdout is for data");
    }
}

/// Log lines are plain text when stderr is not a terminal: no ANSI codes, not even in the
/// `key=value` fields of `-v` request logs (a CI log or a file shows them as garbage).
#[test]
fn verbose_logs_to_a_pipe_carry_no_ansi_codes() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = crate::common::command(env!("CARGO_BIN_EXE_kfp-ci"))
        .args(["-v", "serve", "--addr", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("r.db"))
        .env_remove("NO_COLOR")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let mut reader = BufReader::new(child.stderr.take().expect("stderr"));
    let mut log = String::new();
    let url = loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).expect("read") > 0, "{log}");
        log.push_str(&line);
        if let Some(i) = line.find("listening on http://") {
            break line[i + "listening on http://".len()..].trim().to_string();
        }
    };
    let mut conn = std::net::TcpStream::connect(&url).expect("connect");
    conn.write_all(b"GET /apis/v2beta1/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    reader.read_to_string(&mut log).expect("rest of the log");
    child.wait().expect("wait");
    assert!(log.contains("path=/apis/v2beta1/healthz"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI codes in a piped log: {log:?}"
    );
}
