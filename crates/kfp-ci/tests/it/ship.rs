//! Shipping kfp-ci: the wheel (built with maturin, installed into a fresh virtualenv, run from
//! there), the release workflows, the setup action and the Containerfile (checked offline and
//! against the pins in the code), shell completions and the configuration's JSON Schema.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::{TestContext, command, python, workspace_root};

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

pub(crate) fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// The test venv's `bin` (tests/requirements.txt: maturin, uv, the workflow checkers).
pub(crate) fn venv_bin() -> PathBuf {
    python().parent().expect("venv bin").to_path_buf()
}

pub(crate) fn read(rel: &str) -> String {
    std::fs::read_to_string(workspace_root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(rel: &str) -> Value {
    serde_yaml::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The environment `TestContext` gives kfp-ci, on another executable, without `KFP_CI_PYTHON`.
fn like_ctx(ctx: &TestContext, program: &Path) -> Command {
    let template = ctx.std_cmd();
    let mut cmd = Command::new(program);
    // Only the test context's environment: nothing the developer exported.
    cmd.env_clear().current_dir(ctx.root());
    for (key, value) in template.get_envs() {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    cmd.env_remove("KFP_CI_PYTHON")
        .env_remove("KFP_CI_KFP_VERSION")
        .env_remove("VIRTUAL_ENV");
    cmd
}

/// Every file below `dir` (none when it does not exist).
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The wheel

/// `scripts/package --dev` builds the wheel (maturin, reusing the test build's target dir); it
/// goes into a fresh virtualenv, first alone (kfp-ci then makes the cached kfp virtualenv, with
/// the uv installed next to it), then with the `[kfp]` extra: `kfp-ci deploy examples/` from that
/// virtualenv, without --python, compiles with the Python next to it and creates no cached venv.
#[test]
fn the_wheel_installs_and_deploys_with_the_python_next_to_it() {
    let bin = venv_bin();
    if !bin.join("maturin").exists() || !bin.join("uv").exists() {
        eprintln!(
            "SKIPPED: maturin or uv is not in {} (tests/requirements.txt installs both; run scripts/test)",
            bin.display()
        );
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let dist = work.path().join("dist");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The build inherits the environment: cargo and maturin need the developer's CARGO_HOME
    // and RUSTUP_HOME (an offline registry cache); it talks to no KFP API or ntfy.
    let out = Command::new(workspace_root().join("scripts/package"))
        .args(["--dev", "--out"])
        .arg(&dist)
        .env("PATH", &path)
        .output()
        .expect("run scripts/package");
    ok(&out, "scripts/package --dev");
    let wheels: Vec<PathBuf> = files_below(&dist)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "whl"))
        .collect();
    assert_eq!(wheels.len(), 1, "{wheels:?}");
    let wheel = &wheels[0];
    let name = wheel
        .file_name()
        .expect("name")
        .to_string_lossy()
        .to_string();
    assert!(
        name.starts_with(&format!("kfp_ci-{}-py3-none-", env!("CARGO_PKG_VERSION"))),
        "{name}"
    );

    // A fresh virtualenv with the wheel and uv (as the setup action installs them), no kfp.
    let venv = work.path().join("venv");
    let uv = bin.join("uv");
    let base = python();
    ok(
        &command(&uv)
            .args(["venv", "--quiet", "--python"])
            .arg(&base)
            .arg(&venv)
            .env("UV_PYTHON_DOWNLOADS", "never")
            .output()
            .expect("uv venv"),
        "uv venv",
    );
    let venv_python = venv.join("bin/python");
    let install = |spec: &str| {
        let out = command(&uv)
            .args(["pip", "install", "--quiet", "--python"])
            .arg(&venv_python)
            .arg(spec)
            .arg(format!("uv=={}", kfp_ci::pins::UV_VERSION))
            .output()
            .expect("uv pip install");
        ok(&out, &format!("uv pip install {spec}"));
    };
    install(&wheel.display().to_string());
    let kfp_ci = venv.join("bin/kfp-ci");
    assert!(kfp_ci.is_file(), "the wheel puts kfp-ci in the venv's bin");

    let ctx = TestContext::new();
    ctx.copy_examples();

    // 1. Without kfp next to it: the cached virtualenv, made with the uv beside kfp-ci.
    let cache = work.path().join("cache-1");
    let out = like_ctx(&ctx, &kfp_ci)
        .args(["-v", "check", "examples/"])
        .env("KFP_CI_CACHE_DIR", &cache)
        .output()
        .expect("run kfp-ci check");
    let err = text(&out.stderr);
    ok(&out, "kfp-ci check without kfp");
    assert!(
        err.contains(&format!(
            "Python: {} (kfp-ci runs from this virtualenv",
            venv_python.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("has no kfp, the pin is kfp 2.17.0: creating a virtualenv"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "with {} (KFP_CI_NO_UV=1",
            venv.join("bin/uv").display()
        )),
        "{err}"
    );
    let made: Vec<PathBuf> = files_below(&cache.join("venvs"))
        .into_iter()
        .filter(|p| p.ends_with(".kfp-ci-complete"))
        .collect();
    assert_eq!(made.len(), 1, "one cached virtualenv: {made:?}");
    // uv makes virtualenvs without pip (venv + pip would have it).
    let venv_dir = made[0].parent().expect("venv dir");
    assert!(
        std::fs::read_to_string(venv_dir.join("pyvenv.cfg"))
            .expect("pyvenv.cfg")
            .contains("uv = "),
        "made by uv"
    );

    // 2. `pip install 'kfp-ci[kfp]'`: the extra pins kfp and kfp-kubernetes to the default.
    install(&format!("{}[kfp]", wheel.display()));
    let out = command(&venv_python)
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('kfp'), m.version('kfp-kubernetes'))",
        ])
        .output()
        .expect("versions");
    ok(&out, "kfp versions");
    let want = kfp_ci::settings::DEFAULT_KFP_VERSION;
    assert_eq!(text(&out.stdout).trim(), format!("{want} {want}"));

    let cache = work.path().join("cache-2");
    let out = like_ctx(&ctx, &kfp_ci)
        .args(["-v", "deploy", "examples/"])
        .env("KFP_CI_CACHE_DIR", &cache)
        .output()
        .expect("run kfp-ci deploy");
    let err = text(&out.stderr);
    ok(&out, "kfp-ci deploy from the venv");
    assert!(
        err.contains(&format!(
            "Python: {} (kfp-ci runs from this virtualenv",
            venv_python.display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "compile worker: {} (Python",
            venv_python.display()
        )),
        "{err}"
    );
    assert!(!err.contains("creating a virtualenv"), "{err}");
    // The cache holds compiled specs (cache/compile) but no virtualenv (cache/venvs).
    let venvs = files_below(&cache.join("venvs"));
    assert!(venvs.is_empty(), "no cached virtualenv: {venvs:?}");
    assert!(
        files_below(&cache)
            .iter()
            .all(|p| p.starts_with(cache.join("compile"))),
        "only compile cache entries: {:?}",
        files_below(&cache)
    );
    assert!(err.contains("6 created"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Release workflows, the setup action, the Containerfile: offline checkers and the pins

pub(crate) fn run_tool(tool: &str, args: &[&str], file: &Path) {
    let out = command(venv_bin().join(tool))
        .args(args)
        .arg(file)
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| {
            panic!("{tool}: {e} (run scripts/test: it installs tests/requirements.txt)")
        });
    ok(&out, &format!("{tool} {args:?} {}", file.display()));
}

#[test]
fn release_workflows_and_the_action_pass_the_checkers() {
    let root = workspace_root();
    for (file, schema) in [
        (".github/workflows/release.yml", "vendor.github-workflows"),
        (".gitea/workflows/release.yml", "vendor.github-workflows"),
        ("action.yml", "vendor.github-actions"),
    ] {
        run_tool(
            "check-jsonschema",
            &["--builtin-schema", schema],
            &root.join(file),
        );
        run_tool("zizmor", &["--offline"], &root.join(file));
    }
}

/// `uses:` values of a workflow or action file.
fn uses(rel: &str) -> Vec<String> {
    read(rel)
        .lines()
        .filter_map(|l| l.trim().trim_start_matches("- ").strip_prefix("uses: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_pin_agrees_with_pins_rs() {
    use kfp_ci::pins;
    // Actions: pinned by commit with the tag as a comment, exactly as pins.rs says.
    let mut seen = std::collections::BTreeSet::new();
    let ctx = TestContext::new();
    let mut files: Vec<(String, Vec<String>)> = [
        ".github/workflows/release.yml",
        ".gitea/workflows/release.yml",
        "action.yml",
    ]
    .iter()
    .map(|f| (f.to_string(), uses(f)))
    .collect();
    for ci in ["gitea", "github", "forgejo"] {
        let out = ctx
            .cmd()
            .args(["init", "--force", "--ci", ci])
            .output()
            .expect("init");
        ok(&out, "init");
        let rel = format!(".{ci}/workflows/compile-upload.yaml");
        let text = std::fs::read_to_string(ctx.root().join(&rel)).expect("workflow");
        let u = text
            .lines()
            .filter_map(|l| l.trim().trim_start_matches("- ").strip_prefix("uses: "))
            .map(str::to_string)
            .collect();
        files.push((format!("init --ci {ci}"), u));
    }
    for (file, list) in &files {
        assert!(!list.is_empty(), "{file}: no uses");
        for u in list {
            let pin = pins::ACTIONS
                .iter()
                .find(|p| u.starts_with(&format!("{}@", p.name)))
                .unwrap_or_else(|| panic!("{file}: `{u}` is not in pins.rs"));
            assert_eq!(u, &pin.uses(), "{file}");
            assert!(
                pin.sha.len() == 40 && pin.sha.chars().all(|c| c.is_ascii_hexdigit()),
                "{}",
                pin.name
            );
            seen.insert(pin.name);
        }
    }
    assert_eq!(seen.len(), pins::ACTIONS.len(), "every pin is used");

    // Tool versions in the release workflows.
    for rel in [
        ".github/workflows/release.yml",
        ".gitea/workflows/release.yml",
    ] {
        let w = yaml(rel);
        assert_eq!(w["env"]["MATURIN_VERSION"], pins::MATURIN_VERSION, "{rel}");
        assert_eq!(w["env"]["UV_VERSION"], pins::UV_VERSION, "{rel}");
        assert_eq!(w["env"]["RUST_TOOLCHAIN"], pins::RUST_VERSION, "{rel}");
    }
    // The workspace's MSRV is the release toolchain.
    let cargo: toml::Table = read("Cargo.toml").parse().expect("Cargo.toml");
    assert_eq!(
        cargo["workspace"]["package"]["rust-version"].as_str(),
        Some(pins::RUST_VERSION)
    );
    // pyproject.toml: maturin with bin bindings, the [kfp] extra at the default kfp_version.
    let py: toml::Table = read("pyproject.toml").parse().expect("pyproject.toml");
    assert_eq!(py["tool"]["maturin"]["bindings"].as_str(), Some("bin"));
    assert_eq!(
        py["tool"]["maturin"]["manifest-path"].as_str(),
        Some("crates/kfp-ci/Cargo.toml")
    );
    assert_eq!(py["project"]["name"].as_str(), Some("kfp-ci"));
    let kfp = kfp_ci::settings::DEFAULT_KFP_VERSION;
    assert_eq!(
        py["project"]["optional-dependencies"]["kfp"],
        toml::Value::Array(vec![
            format!("kfp=={kfp}").into(),
            format!("kfp-kubernetes=={kfp}").into()
        ])
    );
    // scripts/package installs the pinned maturin.
    assert!(read("scripts/package").contains("pub const MATURIN_VERSION"));
}

#[test]
fn the_containerfile_pins_match_the_code_defaults() {
    let text = read("Containerfile");
    let arg = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("ARG {name}=")))
            .unwrap_or_else(|| panic!("no ARG {name}= in the Containerfile"))
            .trim()
            .to_string()
    };
    assert_eq!(arg("KFP_VERSION"), kfp_ci::settings::DEFAULT_KFP_VERSION);
    assert_eq!(arg("RUST_VERSION"), kfp_ci::pins::RUST_VERSION);
    assert_eq!(arg("PYTHON_VERSION"), kfp_ci::pins::PYTHON_VERSION);
    // Multi-stage: a build stage, then the slim Python image with kfp-ci next to the pinned kfp
    // (so it uses that Python and never makes a cached virtualenv).
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "{froms:?}");
    assert!(froms[0].contains("rust:${RUST_VERSION}") && froms[0].ends_with(" AS build"));
    assert!(froms[1].contains("python:${PYTHON_VERSION}-slim"));
    assert!(text.contains("\"kfp==${KFP_VERSION}\" \"kfp-kubernetes==${KFP_VERSION}\""));
    assert!(text.contains("COPY --from=build /src/target/release/kfp-ci /opt/kfp-ci/bin/kfp-ci"));
    assert!(text.contains("python -m venv /opt/kfp-ci"));
    assert_eq!(
        kfp_ci::pyenv::python_next_to(Path::new("/opt/kfp-ci/bin/kfp-ci")),
        None,
        "(no such venv on this machine)"
    );
}

#[test]
fn the_action_is_composite_with_the_inputs_and_the_deploy_outputs() {
    let a = yaml("action.yml");
    assert_eq!(a["runs"]["using"], "composite");
    let text = read("action.yml");
    for key in ["permissions:", "concurrency:", "timeout-minutes:"] {
        assert!(
            !text.lines().any(|l| l.trim_start().starts_with(key)),
            "{key} does not work in composite actions on Gitea"
        );
    }
    let inputs = a["inputs"].as_object().expect("inputs");
    for key in [
        "version",
        "command",
        "paths",
        "target",
        "endpoint",
        "namespace",
        "kfp-version",
    ] {
        assert!(inputs.contains_key(key), "input {key}");
    }
    assert_eq!(inputs["command"]["default"], "deploy");
    assert_eq!(inputs["version"]["default"], env!("CARGO_PKG_VERSION"));
    let outputs = a["outputs"].as_object().expect("outputs");
    let mut names: Vec<&str> = outputs.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "compiled",
            "failed",
            "failed_names",
            "report",
            "smoke_failed",
            "unchanged",
            "uploaded",
            "version_tag"
        ]
    );
    for (name, o) in outputs {
        assert_eq!(o["value"], format!("${{{{ steps.run.outputs.{name} }}}}"));
    }
    let steps = a["runs"]["steps"].as_array().expect("steps");
    let install = steps
        .iter()
        .find(|s| s["id"] == "install")
        .expect("install step");
    assert_eq!(install["env"]["UV_VERSION"], kfp_ci::pins::UV_VERSION);
    let script = install["run"].as_str().expect("run");
    // uv from the index without pip (pip as the fallback), then the wheel, never a build from
    // source, with the pinned kfp next to it in one resolve.
    for part in [
        "\"$ACTION_PATH/scripts/get-uv\" \"$UV_VERSION\"",
        "pip\" install --quiet --disable-pip-version-check \"uv==$UV_VERSION\"",
        "\"kfp-ci[kfp]==$KFP_CI_VERSION\"",
        "\"kfp-ci==$KFP_CI_VERSION\" \"kfp==$KFP_VERSION\" \"kfp-kubernetes==$KFP_VERSION\"",
        "--only-binary kfp-ci \"$@\"",
    ] {
        assert!(script.contains(part), "{part} in:\n{script}");
    }
    assert!(workspace_root().join("scripts/get-uv").is_file());
    // The compile cache: a new key per commit, restored from the newest of the same kfp version
    // and configuration, else of the same kfp version.
    let compile = steps
        .iter()
        .find(|s| s["with"]["path"] == ".kfp-ci/cache")
        .expect("compile cache step");
    let key = compile["with"]["key"].as_str().expect("key");
    let restore: Vec<&str> = compile["with"]["restore-keys"]
        .as_str()
        .expect("restore-keys")
        .lines()
        .collect();
    assert_eq!(
        key,
        format!("{}${{{{ github.sha }}}}", restore[0]),
        "{key} {restore:?}"
    );
    assert!(
        restore[0].starts_with(restore[1]) && restore[1].contains("steps.key.outputs.key"),
        "{restore:?}"
    );
    assert!(restore[0].contains("hashFiles('kfp-ci.toml', 'pyproject.toml')"));
    let cache = steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/cache@"))
        })
        .expect("cache step");
    let key = cache["with"]["key"].as_str().expect("key");
    assert!(
        key.contains("steps.key.outputs.key")
            && key.contains("hashFiles('kfp-ci.toml', 'pyproject.toml')"),
        "{key}"
    );
    assert!(
        steps[0]["run"]
            .as_str()
            .expect("key step")
            .contains("kfp${KFP_VERSION:-default}")
    );
}

/// The action's run step, run by bash as a runner would (kfp-ci from this build in place of the
/// installed one): inputs become the environment, and the deploy outputs land in GITHUB_OUTPUT.
#[test]
fn the_actions_run_step_deploys_and_writes_the_outputs() {
    let a = yaml("action.yml");
    let steps = a["runs"]["steps"].as_array().expect("steps");
    let step = steps.iter().find(|s| s["id"] == "run").expect("run step");
    let script = step["run"].as_str().expect("script");
    let ctx = TestContext::new();
    ctx.write("pipelines/hello_pipeline.py", crate::deploy::HELLO);
    let server = crate::common::Server::start(&ctx.root().join("registry.db"), &[]);
    let outputs = ctx.root().join("github_output");
    std::fs::write(&outputs, "").expect("outputs");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_kfp-ci"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let out = command("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(ctx.root())
        .envs(
            ctx.std_cmd()
                .get_envs()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
        )
        .env("KFP_CI_COMMAND", "deploy")
        .env("KFP_CI_PATHS", "pipelines")
        .env("KFP_CI_ARGS", "--version-tag v20260101-000000")
        .env("INPUT_TARGET", "")
        .env("INPUT_ENDPOINT", &server.url)
        .env("INPUT_NAMESPACE", "")
        .env("INPUT_KFP_VERSION", kfp_ci::settings::DEFAULT_KFP_VERSION)
        .env("KFP_CI_BIN", &bin_dir)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", &outputs)
        .env("KFP_CI_NO_NOTIFY", "true")
        .output()
        .expect("bash");
    ok(&out, "the action's run step");
    let written = std::fs::read_to_string(&outputs).expect("outputs");
    for line in [
        "compiled=1",
        "uploaded=1",
        "unchanged=0",
        "failed=0",
        "version_tag=v20260101-000000",
    ] {
        assert!(written.lines().any(|l| l == line), "{line} in:\n{written}");
    }
    let report = written
        .lines()
        .find_map(|l| l.strip_prefix("report="))
        .expect("report output");
    let report: Value = serde_json::from_str(report).expect("the report is JSON");
    assert_eq!(report["target"]["endpoint"], server.url.as_str());
}

// ---------------------------------------------------------------------------------------------
// scripts/get-uv: uv's binary from the package index without pip (the setup action's fast path)

/// A package index on loopback with fake uv wheels: PEP 691 JSON below `/json`, PEP 503 HTML
/// below `/html`. Version 9.9.9 has this machine's wheel (after one for another platform and a
/// 9.9.90 that must not match); 6.6.6's listed SHA-256 is wrong. Prints the port.
const FAKE_INDEX: &str = r##"
import hashlib, http.server, io, json, platform, sys, zipfile
machine = platform.machine().lower()
machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
libc = "manylinux" if platform.libc_ver()[0] == "glibc" else "musllinux"
mine = f"{libc}_2_17_{machine}"
def wheel(version, text):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(f"uv-{version}.data/scripts/uv", f"#!/bin/sh\necho {text}\n")
        z.writestr(f"uv-{version}.dist-info/METADATA", "Name: uv\n")
    return buf.getvalue()
files = {}  # name -> (bytes, listed sha256)
def add(name, data, sha=None):
    files[name] = (data, sha or hashlib.sha256(data).hexdigest())
add("uv-9.9.9-py3-none-win_amd64.whl", wheel("9.9.9", "windows"))
add(f"uv-9.9.90-py3-none-{mine}.whl", wheel("9.9.90", "uv 9.9.90"))
add(f"uv-9.9.9-py3-none-{mine}.whl", wheel("9.9.9", "uv 9.9.9 from the index"))
add("uv-9.9.9.tar.gz", b"sdist")
add(f"uv-6.6.6-py3-none-{mine}.whl", wheel("6.6.6", "tampered"), "0" * 64)
class Index(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def send(self, kind, body):
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path.startswith("/auth/"):
            # user:s3cret, as Basic authorization.
            if self.headers.get("Authorization") != "Basic dXNlcjpzM2NyZXQ=":
                return self.send_error(401)
            self.path = self.path[len("/auth"):]
        if self.path.startswith("/files/"):
            return self.send("application/octet-stream", files[self.path[len("/files/"):]][0])
        if self.path == "/json/uv/":
            listing = [{"filename": n, "url": f"/files/{n}", "hashes": {"sha256": s}} for n, (_, s) in files.items()]
            return self.send("application/vnd.pypi.simple.v1+json", json.dumps({"files": listing}).encode())
        if self.path == "/html/uv/":
            links = "".join(f'<a href="../../files/{n}#sha256={s}">{n}</a>' for n, (_, s) in files.items())
            return self.send("text/html", f"<html><body>{links}</body></html>".encode())
        self.send_error(404)
server = http.server.HTTPServer(("127.0.0.1", 0), Index)
print(server.server_address[1], flush=True)
server.serve_forever()
"##;

#[test]
fn get_uv_takes_this_platforms_binary_from_the_index_and_checks_its_hash() {
    if !cfg!(target_os = "linux") {
        eprintln!("SKIPPED: the fake index names Linux wheels");
        return;
    }
    use std::io::BufRead;
    /// Stops the index also when an assertion fails.
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut server = Stop(
        command(python())
            .args(["-c", FAKE_INDEX])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the fake index"),
    );
    let mut port = String::new();
    std::io::BufReader::new(server.0.stdout.take().expect("stdout"))
        .read_line(&mut port)
        .expect("port");
    let index = format!("http://127.0.0.1:{}", port.trim());
    let work = tempfile::tempdir().expect("tempdir");
    let get_uv = |version: &str, env: &str, kind: &str, dest: &Path| {
        command(python())
            .arg(workspace_root().join("scripts/get-uv"))
            .args([version])
            .arg(dest)
            .env_remove("PIP_INDEX_URL")
            .env(env, format!("{index}/{kind}"))
            .output()
            .expect("run scripts/get-uv")
    };
    // PEP 691 JSON (UV_DEFAULT_INDEX) and PEP 503 HTML (PIP_INDEX_URL, as pip has it).
    for (env, kind) in [("UV_DEFAULT_INDEX", "json"), ("PIP_INDEX_URL", "html")] {
        let dest = work.path().join(kind);
        let out = get_uv("9.9.9", env, kind, &dest);
        ok(&out, &format!("get-uv from the {kind} index"));
        let uv = dest.join("uv");
        assert_eq!(text(&out.stdout).trim(), uv.display().to_string());
        let ran = command(&uv).output().expect("run the fetched uv");
        assert_eq!(
            text(&ran.stdout).trim(),
            "uv 9.9.9 from the index",
            "{kind}"
        );
    }
    // Credentials in the index URL (as in PIP_INDEX_URL) go to the index as Basic auth, and
    // never into a message.
    let port = port.trim();
    let with_auth = |password: &str, dest: &Path| {
        command(python())
            .arg(workspace_root().join("scripts/get-uv"))
            .arg("9.9.9")
            .arg(dest)
            .env(
                "UV_DEFAULT_INDEX",
                format!("http://user:{password}@127.0.0.1:{port}/auth/json"),
            )
            .output()
            .expect("run scripts/get-uv")
    };
    let dest = work.path().join("auth");
    ok(&with_auth("s3cret", &dest), "get-uv with credentials");
    assert!(dest.join("uv").is_file());
    let out = with_auth("wr0ng", &work.path().join("refused"));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("http://127.0.0.1:{port}/auth/json")) && err.contains("401"),
        "{err}"
    );
    assert!(
        !err.contains("wr0ng") && !text(&out.stdout).contains("wr0ng"),
        "{err}"
    );
    // A wheel whose bytes differ from the index's SHA-256 is refused; nothing is written.
    let dest = work.path().join("tampered");
    let out = get_uv("6.6.6", "UV_DEFAULT_INDEX", "json", &dest);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("SHA-256 differs from the index's"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dest.join("uv").exists());
    // A version the index lacks, or no index at all: exit 1 with the reason (the action then
    // installs uv with pip).
    let out = get_uv("1.2.3", "UV_DEFAULT_INDEX", "html", &dest);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("has no uv 1.2.3 wheel"),
        "{}",
        text(&out.stderr)
    );
    let out = get_uv("9.9.9", "UV_DEFAULT_INDEX", "nothing", &dest);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot read uv's page"),
        "{}",
        text(&out.stderr)
    );
    drop(server);
}
