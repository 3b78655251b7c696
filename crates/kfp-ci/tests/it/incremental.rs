//! The compile cache (docs/incremental.md): the correctness corpus with the real kfp SDK and a real
//! `kfp-ci serve`. Each way a pipeline's output can change without its own file changing must
//! miss the cache and deploy the new spec; with nothing changed every file hits, Python is not
//! started, and the bytes are those of an uncached compile.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::common::{Server, TestContext};
use crate::deploy::{assert_exit, json, text};

/// Reads a helper two levels down, a component YAML, an environment variable and an installed
/// distribution's version; `other_pipeline` is picked by `functions` in kfp-ci.toml.
const A: &str = r#"import importlib.metadata
import os

from kfp import components, dsl

from lib import helper

HERE = os.path.dirname(os.path.abspath(__file__))
echo = components.load_component_from_file(os.path.join(HERE, "..", "components", "echo.yaml"))
EXTRA = importlib.metadata.version("kfp_ci_test_extra")


@dsl.component(base_image="python:3.11-slim")
def say(message: str) -> str:
    return message


@dsl.pipeline(
    name="a-pipeline",
    description=f"{helper.DESC} {os.environ.get('KFP_CI_TEST_SUFFIX', 'none')} extra {EXTRA}",
)
def a_pipeline(message: str = "hello"):
    say(message=message)
    echo()


@dsl.pipeline(name="a-other")
def other_pipeline(message: str = "other"):
    say(message=message)
"#;

const B: &str = r#"from kfp import dsl


@dsl.component(base_image="python:3.11-slim")
def wave(times: int) -> int:
    return times


@dsl.pipeline(name="b-pipeline")
def b_pipeline(times: int = 2):
    wave(times=times)
"#;

const ECHO: &str =
    "name: echo\nimplementation:\n  container:\n    image: alpine:3.20\n    command: [echo, hi]\n";

/// A fake installed distribution, in a directory outside the repository on PYTHONPATH.
fn install_extra(site: &Path, version: &str) {
    for entry in std::fs::read_dir(site).expect("site") {
        std::fs::remove_dir_all(entry.expect("entry").path()).expect("remove old dist");
    }
    let dist = site.join(format!("kfp_ci_test_extra-{version}.dist-info"));
    std::fs::create_dir_all(&dist).expect("dist-info");
    std::fs::write(
        dist.join("METADATA"),
        format!("Metadata-Version: 2.1\nName: kfp_ci_test_extra\nVersion: {version}\n"),
    )
    .expect("METADATA");
}

struct Corpus {
    ctx: TestContext,
    site: tempfile::TempDir,
    server: Server,
    suffix: Option<&'static str>,
}

impl Corpus {
    fn new() -> Corpus {
        let ctx = TestContext::new();
        ctx.write("pipelines/a_pipeline.py", A);
        ctx.write("pipelines/b_pipeline.py", B);
        ctx.write("lib/__init__.py", "");
        ctx.write(
            "lib/helper.py",
            "from lib.deep.consts import D\n\nDESC = 'desc ' + D\n",
        );
        ctx.write("lib/deep/__init__.py", "");
        ctx.write("lib/deep/consts.py", "D = 'one'\n");
        ctx.write("components/echo.yaml", ECHO);
        ctx.write("kfp-ci.toml", "python_path = [\".\"]\n");
        let site = tempfile::tempdir().expect("site dir");
        install_extra(site.path(), "1.0");
        let server = Server::start(&ctx.root().join("registry.db"), &[]);
        Corpus {
            ctx,
            site,
            server,
            suffix: None,
        }
    }

    fn cmd(&self, args: &[&str]) -> Output {
        let mut cmd = self.ctx.cmd();
        cmd.env("PYTHONPATH", self.site.path())
            .env_remove("KFP_CI_CACHE_DIR")
            .env_remove("KFP_CI_TEST_SUFFIX");
        if let Some(s) = self.suffix {
            cmd.env("KFP_CI_TEST_SUFFIX", s);
        }
        cmd.args(args).output().expect("run kfp-ci")
    }

    /// `deploy -v --output json`: the report and the stderr with the cache's hit/miss lines.
    fn deploy(&self, tag: &str) -> (Value, String) {
        let out = self.cmd(&[
            "deploy",
            "-v",
            "--endpoint",
            &self.server.url,
            "--version-tag",
            tag,
            "--output",
            "json",
        ]);
        assert_exit(&out, 0);
        (json(&out), text(&out.stderr))
    }
}

fn action(report: &Value, file: &str) -> String {
    report["pipelines"]
        .as_array()
        .expect("pipelines")
        .iter()
        .find(|p| p["file"] == file)
        .unwrap_or_else(|| panic!("{file} not in {report:#}"))["action"]
        .as_str()
        .expect("action")
        .to_string()
}

#[track_caller]
fn assert_miss(stderr: &str, file: &str, why: &str) {
    let line = format!("{file}: compile cache miss: {why}");
    assert!(stderr.contains(&line), "expected `{line}` in:\n{stderr}");
}

#[track_caller]
fn assert_hit(stderr: &str, file: &str) {
    let line = format!("{file}: compile cache hit");
    assert!(stderr.contains(&line), "expected `{line}` in:\n{stderr}");
}

/// Deploy after a change that only `a` sees: `a` misses for `why` and gets a new version, `b`
/// hits and is unchanged.
#[track_caller]
fn only_a_changes(c: &Corpus, tag: &str, why: &str) {
    let (report, stderr) = c.deploy(tag);
    assert_miss(&stderr, "pipelines/a_pipeline.py", why);
    assert_hit(&stderr, "pipelines/b_pipeline.py");
    assert_eq!(
        action(&report, "pipelines/a_pipeline.py"),
        "new_version",
        "{stderr}"
    );
    assert_eq!(action(&report, "pipelines/b_pipeline.py"), "unchanged");
}

#[test]
fn every_input_change_misses_and_deploys_the_new_spec() {
    let mut c = Corpus::new();
    let (report, stderr) = c.deploy("v1");
    assert_eq!(
        action(&report, "pipelines/a_pipeline.py"),
        "create",
        "{stderr}"
    );
    assert!(c.ctx.root().join(".kfp-ci/cache/compile").is_dir());

    // Nothing changed: every file hits and Python is not even started.
    let (report, stderr) = c.deploy("v2");
    assert_hit(&stderr, "pipelines/a_pipeline.py");
    assert_hit(&stderr, "pipelines/b_pipeline.py");
    assert!(
        stderr.contains("every file hit; Python not started"),
        "{stderr}"
    );
    assert_eq!(action(&report, "pipelines/a_pipeline.py"), "unchanged");

    // A helper module imported two levels down.
    c.ctx.write("lib/deep/consts.py", "D = 'two'\n");
    only_a_changes(&c, "v3", "lib/deep/consts.py changed");

    // A component YAML loaded from a file.
    c.ctx.write(
        "components/echo.yaml",
        &ECHO.replace("alpine:3.20", "alpine:3.21"),
    );
    only_a_changes(&c, "v4", "components/echo.yaml changed");

    // An environment variable the pipeline reads.
    c.suffix = Some("blue");
    only_a_changes(&c, "v5", "environment variable KFP_CI_TEST_SUFFIX changed");

    // `functions` in kfp-ci.toml picks another function of the file.
    c.ctx.write(
        "kfp-ci.toml",
        "python_path = [\".\"]\n[functions]\n\"pipelines/a_pipeline.py\" = \"other_pipeline\"\n",
    );
    only_a_changes(&c, "v6", "not compiled before");
    // Back: the earlier entry still matches (a hit), and that spec is deployed again.
    c.ctx.write("kfp-ci.toml", "python_path = [\".\"]\n");
    let (report, stderr) = c.deploy("v7");
    assert_hit(&stderr, "pipelines/a_pipeline.py");
    assert_eq!(action(&report, "pipelines/a_pipeline.py"), "new_version");

    // Another version of an installed distribution: the interpreter is not trusted, every file
    // compiles, and the new spec goes out.
    install_extra(c.site.path(), "2.0");
    let (report, stderr) = c.deploy("v8");
    assert!(
        stderr.contains("(on the interpreter's sys.path) changed"),
        "{stderr}"
    );
    assert_miss(
        &stderr,
        "pipelines/b_pipeline.py",
        "the interpreter's state was not known",
    );
    assert_eq!(action(&report, "pipelines/a_pipeline.py"), "new_version");
    assert_eq!(action(&report, "pipelines/b_pipeline.py"), "unchanged");

    // `requirements` (what kfp-ci installs into its virtualenv) is part of the key.
    c.ctx.write(
        "kfp-ci.toml",
        "python_path = [\".\"]\nrequirements = [\"pyyaml\"]\n",
    );
    let (_, stderr) = c.deploy("v9");
    assert!(
        stderr.contains("no stored description of this interpreter yet"),
        "{stderr}"
    );
    assert_miss(
        &stderr,
        "pipelines/b_pipeline.py",
        "the interpreter's state was not known",
    );

    // Unchanged again: every file hits, and the cached bytes are an uncached compile's.
    let (_, stderr) = c.deploy("v10");
    assert!(stderr.contains("every file hit"), "{stderr}");
    let out = c.cmd(&["compile", "--out-dir", "cached"]);
    assert_exit(&out, 0);
    let out = c.cmd(&["compile", "--no-cache", "-v", "--out-dir", "uncached"]);
    assert_exit(&out, 0);
    assert!(
        !text(&out.stderr).contains("compile cache"),
        "{}",
        text(&out.stderr)
    );
    for name in ["a_pipeline.yaml", "b_pipeline.yaml"] {
        let cached = std::fs::read(c.ctx.root().join("cached").join(name)).expect("cached");
        let uncached = std::fs::read(c.ctx.root().join("uncached").join(name)).expect("uncached");
        assert!(
            cached == uncached,
            "{name} differs from an uncached compile"
        );
    }
}

#[test]
fn network_and_subprocess_compiles_are_never_cached() {
    let ctx = TestContext::new();
    let server = Server::start(&ctx.root().join("registry.db"), &[]);
    let port = server
        .url
        .rsplit(':')
        .next()
        .expect("port")
        .trim_end_matches('/');
    ctx.write(
        "net_pipeline.py",
        &format!(
            "import socket\ns = socket.socket()\ns.connect(('127.0.0.1', {port}))\ns.close()\n{}",
            B.replace("b-pipeline", "net-pipeline")
        ),
    );
    ctx.write(
        "proc_pipeline.py",
        &format!(
            "import subprocess\nsubprocess.run(['true'])\n{}",
            B.replace("b-pipeline", "proc-pipeline")
        ),
    );
    ctx.write("plain_pipeline.py", B);
    let run = || {
        let out = ctx
            .cmd()
            .env_remove("KFP_CI_CACHE_DIR")
            .args(["check", "-v"])
            .output()
            .expect("run");
        assert_exit(&out, 0);
        text(&out.stderr)
    };
    let first = run();
    assert!(
        first.contains("net_pipeline.py: not cached: it connected to the network"),
        "{first}"
    );
    assert!(
        first.contains("proc_pipeline.py: not cached: it started a subprocess"),
        "{first}"
    );
    let second = run();
    assert_hit(&second, "plain_pipeline.py");
    assert_miss(&second, "net_pipeline.py", "not compiled before");
    assert_miss(&second, "proc_pipeline.py", "not compiled before");
}

#[test]
fn cache_dir_and_clear_follow_kfp_ci_cache_dir() {
    let ctx = TestContext::new();
    ctx.write("b_pipeline.py", B);
    let shared = tempfile::tempdir().expect("cache dir");
    let out = ctx
        .cmd()
        .env("KFP_CI_CACHE_DIR", shared.path())
        .args(["cache", "dir"])
        .output()
        .expect("run");
    assert_exit(&out, 0);
    assert_eq!(
        text(&out.stdout).trim(),
        shared.path().join("compile").display().to_string()
    );
    let out = ctx
        .cmd()
        .env("KFP_CI_CACHE_DIR", shared.path())
        .args(["check"])
        .output()
        .expect("run");
    assert_exit(&out, 0);
    assert!(shared.path().join("compile/entries").is_dir());
    assert!(!ctx.root().join(".kfp-ci").exists());
    let out = ctx
        .cmd()
        .env("KFP_CI_CACHE_DIR", shared.path())
        .args(["cache", "clear"])
        .output()
        .expect("run");
    assert_exit(&out, 0);
    assert!(text(&out.stderr).contains("removed the compile cache"));
    assert!(!shared.path().join("compile").exists());
    // Default: in the repository.
    let out = ctx
        .cmd()
        .env_remove("KFP_CI_CACHE_DIR")
        .args(["check"])
        .output()
        .expect("run");
    assert_exit(&out, 0);
    assert!(ctx.root().join(".kfp-ci/cache/compile/entries").is_dir());
    let ignore = std::fs::read_to_string(ctx.root().join(".kfp-ci/cache/.gitignore"))
        .expect("the cache keeps itself out of git");
    assert!(ignore.lines().any(|l| l == "*"), "{ignore}");
}

#[test]
fn print_inputs_and_verify_workflow_name_what_the_trigger_misses() {
    let ctx = TestContext::new();
    ctx.write("pipelines/a_pipeline.py", A);
    ctx.write("lib/__init__.py", "");
    ctx.write(
        "lib/helper.py",
        "from lib.deep.consts import D\n\nDESC = 'desc ' + D\n",
    );
    ctx.write("lib/deep/__init__.py", "");
    ctx.write("lib/deep/consts.py", "D = 'one'\n");
    ctx.write("components/echo.yaml", ECHO);
    ctx.write("components/unused.yaml", ECHO);
    ctx.write("kfp-ci.toml", "python_path = [\".\"]\n");
    let site = tempfile::tempdir().expect("site dir");
    install_extra(site.path(), "1.0");
    let run = |args: &[&str]| {
        ctx.cmd()
            .env("PYTHONPATH", site.path())
            .env_remove("KFP_CI_CACHE_DIR")
            .args(args)
            .output()
            .expect("run")
    };
    let out = run(&["check", "--print-inputs"]);
    assert_exit(&out, 0);
    // `pipelines/*`: importlib.metadata lists every sys.path directory (the pipeline's own
    // first) for distributions, so a file added there may change the compile.
    assert_eq!(
        text(&out.stdout),
        "components/echo.yaml\nkfp-ci.toml\nlib/**\npipelines/*\npipelines/a_pipeline.py\n"
    );

    let workflow = |paths: &str| {
        ctx.write(
            ".github/workflows/kfp.yml",
            &format!(
                "on:\n  push:\n    branches: [main]\n    paths:\n{paths}\njobs:\n  d:\n    runs-on: x\n    steps:\n      - run: kfp-ci deploy\n"
            ),
        );
    };
    workflow("      - '**/*_pipeline.py'\n      - 'lib/**'");
    let out = run(&["check", "--verify-workflow"]);
    assert_exit(&out, 1);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(".github/workflows/kfp.yml: a change to these files"),
        "{stderr}"
    );
    assert!(stderr.contains("  components/echo.yaml\n"), "{stderr}");
    assert!(stderr.contains("  kfp-ci.toml\n"), "{stderr}");
    assert!(!stderr.contains("  lib/"), "{stderr}");

    workflow(
        "      - '**/*_pipeline.py'\n      - 'lib/**'\n      - 'components/*.yaml'\n      - kfp-ci.toml\n      - 'pipelines/**'",
    );
    let out = run(&["check", "--verify-workflow"]);
    assert_exit(&out, 0);
}

#[test]
fn init_writes_the_inputs_seen_into_the_trigger() {
    let ctx = TestContext::new();
    ctx.write(
        "pipelines/x_pipeline.py",
        &format!(
            "from lib import helper\n{}",
            B.replace("b-pipeline", "x-pipeline")
                .replace("def b_pipeline", "def x_pipeline")
                .replace("times: int = 2", "times: int = helper.TIMES")
        ),
    );
    ctx.write("lib/__init__.py", "");
    ctx.write("lib/helper.py", "TIMES = 3\n");
    ctx.write("kfp-ci.toml", "python_path = [\".\"]\n");
    let run = |args: &[&str]| {
        ctx.cmd()
            .env_remove("KFP_CI_CACHE_DIR")
            .args(args)
            .output()
            .expect("run")
    };
    assert_exit(&run(&["check"]), 0);
    assert_exit(&run(&["init", "--ci", "github"]), 0);
    let workflow =
        std::fs::read_to_string(ctx.root().join(".github/workflows/compile-upload.yaml"))
            .expect("workflow");
    let doc: serde_yaml::Value = serde_yaml::from_str(&workflow).expect("yaml");
    let paths: Vec<String> =
        serde_yaml::from_value(doc["on"]["push"]["paths"].clone()).expect("paths");
    assert!(paths.contains(&"lib/**".to_string()), "{paths:?}");
    assert!(paths.contains(&"kfp-ci.toml".to_string()), "{paths:?}");
    // The pipeline file is covered by the pipeline glob already: not listed again.
    assert!(
        !paths.iter().any(|p| p == "pipelines/x_pipeline.py"),
        "{paths:?}"
    );
    let out = run(&["check", "--verify-workflow"]);
    assert_exit(&out, 0);
}

/// A pipeline whose description comes from an installed distribution, `kfp-ci-probe`, which
/// only the cached virtualenv has (through `requirements`).
const R: &str = r#"import kfp_ci_probe
from kfp import dsl


@dsl.component(base_image="python:3.11-slim")
def say(message: str) -> str:
    return message


@dsl.pipeline(name="r-pipeline", description=f"probe {kfp_ci_probe.LABEL}")
def r_pipeline(message: str = "hello"):
    say(message=message)
"#;

/// Packs a tiny local project, `kfp-ci-probe` VERSION (one module with `LABEL = label`), into a
/// wheel in `wheels` (a wheel is a zip with the module and its .dist-info; built here with the
/// test Python's zipfile, offline, without a build backend).
fn build_probe_wheel(ctx: &TestContext, wheels: &Path, version: &str, label: &str) {
    const PACK: &str = r#"
import base64, hashlib, os, sys, zipfile
wheels, version, label = sys.argv[1:4]
info = f"kfp_ci_probe-{version}.dist-info"
files = {
    "kfp_ci_probe.py": f"LABEL = {label!r}\n",
    f"{info}/METADATA": f"Metadata-Version: 2.1\nName: kfp-ci-probe\nVersion: {version}\n",
    f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: kfp-ci-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = []
for name, text in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
    record.append(f"{name},sha256={digest},{len(text.encode())}")
files[f"{info}/RECORD"] = "\n".join(record + [f"{info}/RECORD,,"]) + "\n"
with zipfile.ZipFile(os.path.join(wheels, f"kfp_ci_probe-{version}-py3-none-any.whl"), "w") as z:
    for name, text in files.items():
        z.writestr(name, text)
"#;
    let out = ctx
        .command(crate::common::python())
        .args(["-c", PACK])
        .arg(wheels)
        .args([version, label])
        .output()
        .expect("pack the wheel");
    assert!(
        out.status.success(),
        "kfp-ci-probe {version} wheel: {}",
        text(&out.stderr)
    );
}

/// What the `requirements` tests run kfp-ci with: a `bin` first on PATH holding uv (and the
/// `python3` each test puts there), `kfp-ci-probe` wheels found through `PIP_FIND_LINKS`, and
/// uv's cache kept across tests so kfp is downloaded once.
struct ProbeTools {
    tools: tempfile::TempDir,
    _wheels: tempfile::TempDir,
    path: String,
    find_links: String,
}

impl ProbeTools {
    /// The probe wheels `versions` (version, label) built, uv linked into `bin`.
    fn new(ctx: &TestContext, versions: &[(&str, &str)]) -> ProbeTools {
        let uv = Self::uv();
        let wheels = tempfile::tempdir().expect("wheel dir");
        for (version, label) in versions {
            build_probe_wheel(ctx, wheels.path(), version, label);
        }
        let tools = tempfile::tempdir().expect("tools dir");
        let bin = tools.path().join("bin");
        std::fs::create_dir_all(&bin).expect("bin");
        std::os::unix::fs::symlink(&uv, bin.join("uv")).expect("uv");
        let find_links = match std::env::var("PIP_FIND_LINKS") {
            Ok(v) if !v.trim().is_empty() => format!("{} {v}", wheels.path().display()),
            _ => wheels.path().display().to_string(),
        };
        ProbeTools {
            path: format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display()),
            tools,
            _wheels: wheels,
            find_links,
        }
    }

    /// The test venv's uv (tests/requirements.txt installs it).
    fn uv() -> std::path::PathBuf {
        let uv = crate::common::python()
            .parent()
            .expect("test venv bin")
            .join("uv");
        assert!(
            uv.exists(),
            "no uv at {} (tests/requirements.txt installs it; run scripts/test)",
            uv.display()
        );
        uv
    }

    fn bin(&self) -> std::path::PathBuf {
        self.tools.path().join("bin")
    }

    /// kfp-ci with no interpreter named and no cache directory set: it picks `python3` from
    /// `bin` and builds its cached virtualenv with uv from there.
    fn kfp_ci(&self, ctx: &TestContext) -> assert_cmd::Command {
        let mut cmd = ctx.cmd();
        cmd.env_remove("KFP_CI_PYTHON")
            .env_remove("KFP_CI_CACHE_DIR")
            .env("PATH", &self.path)
            .env("PIP_FIND_LINKS", &self.find_links)
            .env(
                "UV_CACHE_DIR",
                Path::new(env!("CARGO_TARGET_TMPDIR")).join("uv-cache"),
            );
        cmd
    }
}

/// `requirements` is what kfp-ci installs into its cached virtualenv, next to the pinned kfp.
/// Changing it gives another virtualenv, so every cached compile misses, and a pipeline whose
/// output depends on the requirement gets its new spec deployed; one that does not is unchanged.
/// (Real installs: kfp from the package index through uv, `kfp-ci-probe` from wheels built here.)
#[test]
fn a_requirements_change_misses_and_deploys_the_new_spec() {
    let ctx = TestContext::new();
    ctx.write("pipelines/r_pipeline.py", R);
    ctx.write("pipelines/b_pipeline.py", B);
    let tools = ProbeTools::new(&ctx, &[("1.0", "one"), ("2.0", "two")]);

    // The default interpreter is a `python3` without kfp (an empty virtualenv), so kfp-ci makes
    // its cached virtualenv with the pin and the requirements; uv is found on PATH.
    let base = tools.tools.path().join("base");
    let out = ctx
        .command(ProbeTools::uv())
        .args(["venv", "--quiet", "--python"])
        .arg(crate::common::python())
        .arg(&base)
        .env("UV_PYTHON_DOWNLOADS", "never")
        .output()
        .expect("uv venv");
    assert!(out.status.success(), "uv venv: {}", text(&out.stderr));
    std::os::unix::fs::symlink(base.join("bin/python"), tools.bin().join("python3"))
        .expect("python3");
    let server = Server::start(&ctx.root().join("registry.db"), &[]);
    let deploy = |requirement: &str, tag: &str| {
        ctx.write(
            "kfp-ci.toml",
            &format!("requirements = [\"{requirement}\"]\n"),
        );
        let out = tools
            .kfp_ci(&ctx)
            .args([
                "deploy",
                "-v",
                "--endpoint",
                &server.url,
                "--version-tag",
                tag,
                "--output",
                "json",
            ])
            .output()
            .expect("run kfp-ci");
        assert_exit(&out, 0);
        (json(&out), text(&out.stderr))
    };

    let (report, stderr) = deploy("kfp-ci-probe==1.0", "v1");
    assert!(
        stderr.contains("creating a virtualenv") && stderr.contains("kfp-ci-probe==1.0"),
        "{stderr}"
    );
    assert_eq!(action(&report, "pipelines/r_pipeline.py"), "create");
    // Same requirements: every file hits, Python is not started.
    let (report, stderr) = deploy("kfp-ci-probe==1.0", "v2");
    assert!(
        stderr.contains("every file hit; Python not started"),
        "{stderr}"
    );
    assert_eq!(action(&report, "pipelines/r_pipeline.py"), "unchanged");

    // Another requirement: another virtualenv; both files miss, and only the one whose output
    // changed gets a new version.
    let (report, stderr) = deploy("kfp-ci-probe==2.0", "v3");
    assert!(
        stderr.contains("creating a virtualenv") && stderr.contains("kfp-ci-probe==2.0"),
        "{stderr}"
    );
    assert!(
        stderr.contains("no stored description of this interpreter yet"),
        "{stderr}"
    );
    for file in ["pipelines/r_pipeline.py", "pipelines/b_pipeline.py"] {
        assert_miss(
            &stderr,
            file,
            "the interpreter's state was not known before it started",
        );
    }
    assert_eq!(
        action(&report, "pipelines/r_pipeline.py"),
        "new_version",
        "{stderr}"
    );
    assert_eq!(action(&report, "pipelines/b_pipeline.py"), "unchanged");
    // The spec deployed is the new one: what kfp-ci now compiles (from the cache) says "two".
    let out = tools
        .kfp_ci(&ctx)
        .args(["compile", "-v", "--out-dir", "out"])
        .output()
        .expect("run kfp-ci");
    assert_exit(&out, 0);
    assert!(
        text(&out.stderr).contains("every file hit"),
        "{}",
        text(&out.stderr)
    );
    let yaml = std::fs::read_to_string(ctx.root().join("out/r_pipeline.yaml")).expect("yaml");
    assert!(yaml.contains("probe two"), "{yaml}");

    // Back to the first requirement: its virtualenv and its entries are still there (every file
    // hits, Python is not started), and its spec is deployed again over "two".
    let (report, stderr) = deploy("kfp-ci-probe==1.0", "v4");
    assert!(
        stderr.contains("every file hit; Python not started"),
        "{stderr}"
    );
    assert_eq!(
        action(&report, "pipelines/r_pipeline.py"),
        "new_version",
        "{stderr}"
    );
    assert_eq!(action(&report, "pipelines/b_pipeline.py"), "unchanged");
}

/// The default interpreter has the pinned kfp but not the `requirements`: kfp-ci must not compile
/// with it (the requirements would silently be missing) but in its cached virtualenv, which
/// installs them.
#[test]
fn requirements_are_installed_even_when_the_default_python_has_the_pin() {
    let ctx = TestContext::new();
    ctx.write("pipelines/r_pipeline.py", R);
    let tools = ProbeTools::new(&ctx, &[("1.0", "one")]);
    // `python3` on PATH is the test venv's Python: it has kfp 2.17.0, the pin, and no probe.
    // (A script, not a symlink: Python finds its virtualenv from the path it is started as.)
    let python3 = tools.bin().join("python3");
    std::fs::write(
        &python3,
        format!(
            "#!/bin/sh\nexec '{}' \"$@\"\n",
            crate::common::python().display()
        ),
    )
    .expect("python3");
    std::fs::set_permissions(
        &python3,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    ctx.write("kfp-ci.toml", "requirements = [\"kfp-ci-probe==1.0\"]\n");
    let server = Server::start(&ctx.root().join("registry.db"), &[]);
    let out = tools
        .kfp_ci(&ctx)
        .args([
            "deploy",
            "-v",
            "--endpoint",
            &server.url,
            "--output",
            "json",
        ])
        .output()
        .expect("run kfp-ci");
    let stderr = text(&out.stderr);
    assert_exit(&out, 0);
    assert!(
        stderr.contains("`requirements` are set") && stderr.contains("kfp-ci-probe==1.0"),
        "{stderr}"
    );
    assert_eq!(action(&json(&out), "pipelines/r_pipeline.py"), "create");
}
