//! The compile environment: which interpreter is used (an explicit one always, `--strict`), what
//! a Python without `venv` support says, local helper packages (`python_path`), files that define
//! only a component, `--out-dir` spelling, and the credentials a compile never sees.

use std::path::{Path, PathBuf};

use crate::common::{TestContext, python};
use crate::compile::{assert_same_as_kfp, parse_report};

const COMPONENT: &str = r#"from kfp import dsl


@dsl.component(base_image="python:3.11.9-slim-bookworm")
def add(a: int, b: int = 2) -> int:
    return a + b
"#;

const PIPELINE: &str = r#"from kfp import dsl


@dsl.component(base_image="python:3.11.9-slim-bookworm")
def hello(name: str) -> str:
    return name


@dsl.pipeline
def greet(name: str = "x"):
    hello(name=name)
"#;

/// `kfp dsl compile --py FILE --output OUT [--function F]` from `cwd` with extra environment.
fn kfp_dsl_compile_env(
    cwd: &Path,
    file: &Path,
    function: Option<&str>,
    env: &[(&str, &str)],
) -> String {
    let out = cwd.join(format!(
        "kfp-ref-{}-{}.yaml",
        file.file_stem().expect("stem").to_string_lossy(),
        function.unwrap_or("")
    ));
    let mut cmd = crate::common::command(python().parent().expect("bin").join("kfp"));
    cmd.current_dir(cwd)
        .env("PYTHONHASHSEED", "0")
        .envs(env.iter().copied())
        .args(["dsl", "compile", "--py"])
        .arg(file)
        .arg("--output")
        .arg(&out);
    if let Some(f) = function {
        cmd.args(["--function", f]);
    }
    let output = cmd.output().expect("run kfp dsl compile");
    assert!(
        output.status.success(),
        "kfp dsl compile {}: {}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read_to_string(out).expect("kfp output")
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Item 10: a file with one component and no pipeline compiles as `kfp dsl compile` compiles it
/// (the component's one-step pipeline spec), byte for byte, also when the component is imported
/// from a helper module; several components are an error naming them, unless `functions` picks one.
#[test]
fn a_lone_component_compiles_like_kfp_dsl_compile() {
    let ctx = TestContext::new();
    let lone = ctx.write("comps/lone_pipeline.py", COMPONENT);
    ctx.write("comps/shared_components.py", COMPONENT);
    let imported = ctx.write(
        "comps/imported_pipeline.py",
        "from shared_components import add  # noqa: F401\n",
    );
    let two = ctx.write(
        "two/two_pipeline.py",
        &format!(
            "{COMPONENT}\n\n@dsl.component(base_image=\"python:3.11.9-slim-bookworm\")\ndef sub(a: int) -> int:\n    return -a\n"
        ),
    );
    let out = ctx
        .cmd()
        .args(["compile", "--output", "json", "--out-dir", "out"])
        .output()
        .expect("run");
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "two_pipeline fails: {stderr}");
    let report = parse_report(&out.stdout);
    let by_file = |file: &str| {
        report["pipelines"]
            .as_array()
            .expect("pipelines")
            .iter()
            .find(|p| p["file"] == file)
            .unwrap_or_else(|| panic!("{file} not in {report}"))
            .clone()
    };
    for file in ["comps/lone_pipeline.py", "comps/imported_pipeline.py"] {
        assert_eq!(by_file(file)["status"], "done", "{file}: {stderr}");
    }
    let two_report = by_file("two/two_pipeline.py");
    assert_eq!(
        two_report["error"]["kind"], "several_components",
        "{stderr}"
    );
    let message = two_report["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("add, sub") && message.contains("[functions]"),
        "{message}"
    );

    for (file, stem) in [(&lone, "lone_pipeline"), (&imported, "imported_pipeline")] {
        let ours = std::fs::read_to_string(ctx.root().join(format!("out/{stem}.yaml")))
            .expect("kfp-ci output");
        let kfp = kfp_dsl_compile_env(ctx.root(), file, None, &[]);
        assert_eq!(ours, kfp, "{stem}: not byte-identical to kfp dsl compile");
        assert!(ours.contains("# Name: add\n"), "{ours}");
    }

    // `functions` picks one of several components, as `kfp dsl compile --function sub`.
    ctx.write(
        "kfp-ci.toml",
        "[functions]\n\"two/two_pipeline.py\" = \"sub\"\n",
    );
    let out = ctx
        .cmd()
        .args(["compile", "two", "--out-dir", "out2"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let ours = std::fs::read_to_string(ctx.root().join("out2/two_pipeline.yaml")).expect("ours");
    assert_eq!(
        ours,
        kfp_dsl_compile_env(ctx.root(), &two, Some("sub"), &[]),
        "--function sub"
    );
}

/// Item 7: an explicit interpreter whose kfp is not `kfp_version` is used as it is, with a
/// warning naming both versions; never swapped for a cached virtualenv. `--strict` (or
/// `strict = true`) makes it an error.
#[test]
fn an_explicit_interpreter_is_always_used() {
    let ctx = TestContext::new();
    ctx.write("greet_pipeline.py", PIPELINE);
    // The test venv has kfp 2.17.0; pin another version so they differ.
    ctx.write("kfp-ci.toml", "kfp_version = \"2.16.0\"\n");
    let cache = ctx.root().join("cache");
    let run = |extra: &[&str]| {
        ctx.cmd()
            .env("KFP_CI_CACHE_DIR", &cache)
            // Were a virtualenv attempted, it could not download anything.
            .env("PIP_NO_INDEX", "1")
            .arg("check")
            .args(extra)
            .output()
            .expect("run")
    };
    let out = run(&[]);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("has kfp 2.17.0, but `kfp_version` is 2.16.0"),
        "{stderr}"
    );
    assert!(stderr.contains("with kfp 2.17.0"), "{stderr}");
    assert!(!stderr.contains("virtualenv"), "{stderr}");
    assert!(!cache.join("venvs").exists(), "no virtualenv is created");

    let out = run(&["--strict"]);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("has kfp 2.17.0, but `kfp_version` is 2.16.0, and strict mode (--strict"),
        "{stderr}"
    );
    assert!(!cache.join("venvs").exists(), "no virtualenv is created");

    ctx.write("kfp-ci.toml", "kfp_version = \"2.16.0\"\nstrict = true\n");
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
}

/// A Python installation without `ensurepip` (what Debian/Ubuntu's python3 is without the
/// python3-venv package): the interpreter binary copied next to a copy of its standard library
/// (symlinks) that leaves `ensurepip` out. Prefers the system's Debian Python, whose `venv` names
/// the package to install; else the test venv's base Python.
fn python_without_ensurepip(dir: &Path) -> (PathBuf, bool) {
    let probe = |py: &Path| -> Option<(PathBuf, PathBuf, String)> {
        let out = crate::common::command(py)
            .args([
                "-I",
                "-c",
                "import os, sys, sysconfig; print(os.path.realpath(sys._base_executable)); print(sysconfig.get_path('stdlib')); print('%d.%d' % sys.version_info[:2])",
            ])
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        let mut lines = text.lines();
        Some((
            PathBuf::from(lines.next()?),
            PathBuf::from(lines.next()?),
            lines.next()?.to_string(),
        ))
    };
    let debian = Path::new("/usr/bin/python3");
    let candidates = [debian.to_path_buf(), python()];
    for candidate in candidates {
        let Some((exe, stdlib, version)) = probe(&candidate) else {
            continue;
        };
        let venv_source =
            std::fs::read_to_string(stdlib.join("venv/__init__.py")).unwrap_or_default();
        let is_debian = venv_source.contains("python3-venv");
        let bin = dir.join("bin");
        let lib = dir.join(format!("lib/python{version}"));
        std::fs::create_dir_all(&bin).expect("mkdir");
        std::fs::create_dir_all(&lib).expect("mkdir");
        let copy = bin.join(format!("python{version}"));
        std::fs::copy(&exe, &copy).expect("copy python");
        for entry in std::fs::read_dir(&stdlib).expect("stdlib") {
            let entry = entry.expect("entry");
            if entry.file_name() != "ensurepip" {
                std::os::unix::fs::symlink(entry.path(), lib.join(entry.file_name()))
                    .expect("symlink");
            }
        }
        // The copy must really run on that library, without ensurepip.
        let check = crate::common::command(&copy)
            .args([
                "-I",
                "-c",
                "import importlib.util as u, sys; sys.exit(u.find_spec('ensurepip') is not None)",
            ])
            .status()
            .expect("run the copy");
        if check.success() {
            return (copy, is_debian);
        }
        std::fs::remove_dir_all(dir).expect("clean");
    }
    panic!("no Python could be set up without ensurepip");
}

/// Item 8: `python -m venv` fails (no ensurepip, i.e. no python3-venv): kfp-ci passes Python's
/// own message through (on Debian it names the package to install), without guessing "offline"
/// and without suggesting the `-m venv` command that just failed.
#[test]
fn no_venv_support_passes_python_s_message_through() {
    let ctx = TestContext::new();
    ctx.write("greet_pipeline.py", PIPELINE);
    let (py, is_debian) = python_without_ensurepip(&ctx.root().join(".pythons/noensurepip"));
    let out = ctx
        .cmd()
        .env("KFP_CI_PYTHON", &py)
        .env("KFP_CI_CACHE_DIR", ctx.root().join(".cache"))
        .env("PIP_NO_INDEX", "1")
        // venv + pip: uv makes virtualenvs without ensurepip.
        .env("KFP_CI_NO_UV", "1")
        .arg("check")
        .output()
        .expect("run");
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("could not create a virtualenv"), "{stderr}");
    if is_debian {
        assert!(stderr.contains("apt install python3."), "{stderr}");
        assert!(stderr.contains("-venv"), "{stderr}");
    } else {
        assert!(stderr.contains("ensurepip"), "{stderr}");
    }
    assert!(!stderr.contains("offline"), "{stderr}");
    assert!(!stderr.contains("-m venv"), "{stderr}");
    assert!(
        stderr.contains("pip install kfp==2.17.0 kfp-kubernetes==2.17.0"),
        "{stderr}"
    );
}

/// Item 9: a local helper package that is not on the import path: the hint names `python_path`
/// and the directory for PYTHONPATH, not `requirements`; with `python_path = ["src"]` the file
/// compiles, byte-identical to `PYTHONPATH=src kfp dsl compile`.
#[test]
fn a_local_helper_package_is_found_with_python_path() {
    let ctx = TestContext::new();
    ctx.write(
        "src/team_helpers/__init__.py",
        "IMAGE = \"python:3.12.4-slim-bookworm\"\n",
    );
    let file = ctx.write(
        "pipelines/helped_pipeline.py",
        "from kfp import dsl\nfrom team_helpers import IMAGE\n\n\n@dsl.component(base_image=IMAGE)\ndef hello() -> str:\n    return 'x'\n\n\n@dsl.pipeline\ndef helped():\n    hello()\n",
    );
    let report = crate::compile::failing_check(&ctx);
    let error = &report["pipelines"][0]["error"];
    let message = error["message"].as_str().expect("message");
    assert_eq!(error["kind"], "import", "{message}");
    assert!(
        message.contains("missing module `team_helpers`"),
        "{message}"
    );
    assert!(message.contains("python_path = [\"src\"]"), "{message}");
    let src = ctx.root().join("src");
    assert!(
        message.contains(&format!("PYTHONPATH={}", src.display())),
        "{message}"
    );
    assert!(!message.contains("requirements"), "{message}");

    // A package at the repository root: the root goes on the path.
    ctx.write("shared_steps/__init__.py", "");
    ctx.write(
        "pipelines/rooted_pipeline.py",
        "import shared_steps  # noqa: F401\n",
    );
    let out = ctx
        .cmd()
        .args(["check", "pipelines/rooted_pipeline.py"])
        .output()
        .expect("run");
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("python_path = [\".\"]")
            && stderr.contains(&format!("PYTHONPATH={}", ctx.root().display())),
        "{stderr}"
    );
    std::fs::remove_file(ctx.root().join("pipelines/rooted_pipeline.py")).expect("rm");

    // A module that is nowhere in the repository still points at `requirements`.
    ctx.write(
        "pipelines/other_pipeline.py",
        "import not_installed_anywhere  # noqa: F401\n",
    );
    let out = ctx
        .cmd()
        .args(["check", "pipelines/other_pipeline.py"])
        .output()
        .expect("run");
    let stderr = stderr_of(&out);
    assert!(stderr.contains("`requirements`"), "{stderr}");
    std::fs::remove_file(ctx.root().join("pipelines/other_pipeline.py")).expect("rm");

    ctx.write("kfp-ci.toml", "python_path = [\"src\"]\n");
    let out = ctx
        .cmd()
        .args(["compile", "--out-dir", "out"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let ours = std::fs::read_to_string(ctx.root().join("out/helped_pipeline.yaml")).expect("ours");
    assert!(ours.contains("python:3.12.4-slim-bookworm"));
    let kfp = kfp_dsl_compile_env(
        ctx.root(),
        &file,
        None,
        &[("PYTHONPATH", src.to_str().expect("utf-8"))],
    );
    assert_same_as_kfp("helped_pipeline", &ours, &kfp);

    // An entry that is not a directory is a configuration error naming it.
    ctx.write("kfp-ci.toml", "python_path = [\"lib\"]\n");
    let out = ctx.cmd().arg("check").output().expect("run");
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`python_path` entry \"lib\"") && stderr.contains("kfp-ci.toml"),
        "{stderr}"
    );
}

/// Item 12: `--out-dir build/./` (and `build/x/..`) is the directory `build`.
#[test]
fn out_dir_with_dot_components_is_normalised() {
    let ctx = TestContext::new();
    ctx.write("greet_pipeline.py", PIPELINE);
    for spelling in ["build/./", "build/./x/..", "./build/."] {
        let out = ctx
            .cmd()
            .args(["compile", "--out-dir", spelling])
            .output()
            .expect("run");
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(0), "{spelling}: {stderr}");
        assert!(stderr.contains("→ build\n"), "{spelling}: {stderr}");
        assert!(ctx.root().join("build/greet_pipeline.yaml").is_file());
        assert!(!ctx.root().join("build/x").exists(), "{spelling}");
        std::fs::remove_dir_all(ctx.root().join("build")).expect("rm");
    }
}

/// Item 13: the compile worker (where pipeline code runs) and the processes that build the cached
/// virtualenv get none of kfp-ci's credentials; other variables are kept.
#[test]
fn child_processes_get_no_credentials() {
    let ctx = TestContext::new();
    let token_file = ctx.write("token", "file-token-value-123456\n");
    ctx.write(
        "kfp-ci.toml",
        r#"
[targets.prod]
endpoint = "http://127.0.0.1:9"
token_env = "MY_PROD_TOKEN"
cookie_env = "MY_PROD_COOKIE"
headers = { "X-Api-Key" = "${MY_API_KEY}" }

[notify.ntfy]
token_env = "MY_NTFY_TOKEN"
password_env = "MY_NTFY_PASSWORD"
"#,
    );
    let secrets = [
        ("KF_PIPELINES_TOKEN", "kfp-token-secret-value-1"),
        ("NTFY_TOKEN", "ntfy-token-secret-value-2"),
        ("NTFY_PASSWORD", "ntfy-password-secret-value-3"),
        ("KFP_CI_COOKIE", "authservice_session=cookie-secret-value-4"),
        ("KFP_CI_SERVE_TOKEN", "serve-token-secret-value-5"),
        ("MY_PROD_TOKEN", "prod-token-secret-value-6"),
        ("MY_PROD_COOKIE", "session=prod-cookie-secret-value-7"),
        ("MY_API_KEY", "api-key-secret-value-8"),
        ("MY_NTFY_TOKEN", "my-ntfy-token-secret-value-9"),
        ("MY_NTFY_PASSWORD", "my-ntfy-password-secret-value-10"),
    ];
    let names: Vec<&str> = secrets.iter().map(|(n, _)| *n).collect();
    let values: Vec<&str> = secrets.iter().map(|(_, v)| *v).collect();
    // The pipeline file fails (and says which) if it can see any credential, by name or value.
    ctx.write(
        "env_pipeline.py",
        &format!(
            "import os\n\nnames = {names:?}\nvalues = {values:?} + [open({token:?}).read().strip()]\nseen = [n for n in names + ['KF_PIPELINES_SA_TOKEN_PATH'] if n in os.environ]\nseen += [n for n, v in os.environ.items() if any(s in v for s in values)]\nif seen:\n    raise SystemExit('credentials visible: ' + ', '.join(sorted(set(seen))))\nprint('KEEP_ME=' + os.environ.get('KEEP_ME', 'missing'))\n\n{PIPELINE}",
            token = token_file.display().to_string()
        ),
    );
    let mut cmd = ctx.cmd();
    cmd.args(["-v", "check"])
        .env("KEEP_ME", "kept")
        .env("KF_PIPELINES_SA_TOKEN_PATH", &token_file);
    for (name, value) in secrets {
        cmd.env(name, value);
    }
    let out = cmd.output().expect("run");
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("KEEP_ME=kept"), "{stderr}");

    // The interpreter that builds the cached venv: a wrapper that records its environment, in
    // front of a Python without kfp (so kfp-ci builds a venv; pip cannot download: it fails).
    let bare = ctx.root().join(".bare");
    let status = crate::common::command(python())
        .args(["-m", "venv", "--without-pip"])
        .arg(&bare)
        .status()
        .expect("venv");
    assert!(status.success());
    let log = ctx.root().join("env.log");
    let wrapper = ctx.write(
        ".bin/python",
        &format!(
            // `-m venv` is only recorded, then fails: building a real one takes seconds.
            "#!/bin/sh\nenv >> '{}'\necho ---- >> '{}'\n[ \"$1 $2\" = '-m venv' ] && exit 1\nexec '{}' \"$@\"\n",
            log.display(),
            log.display(),
            bare.join("bin/python").display()
        ),
    );
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let mut cmd = ctx.cmd();
    cmd.args(["check"])
        .env("KFP_CI_PYTHON", &wrapper)
        .env("KFP_CI_CACHE_DIR", ctx.root().join(".cache"))
        .env("PIP_NO_INDEX", "1")
        .env("KEEP_ME", "kept")
        .env("KF_PIPELINES_SA_TOKEN_PATH", &token_file);
    for (name, value) in secrets {
        cmd.env(name, value);
    }
    let out = cmd.output().expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    let env_log = std::fs::read_to_string(&log).expect("the wrapper ran");
    // The worker, the version probe and `-m venv`.
    assert!(env_log.matches("----").count() >= 3, "{env_log}");
    assert!(env_log.contains("KEEP_ME=kept"), "{env_log}");
    for (name, value) in secrets {
        assert!(
            !env_log.contains(value),
            "{name} reached a child: {env_log}"
        );
        assert!(
            !env_log.lines().any(|l| l.starts_with(&format!("{name}="))),
            "{name} reached a child"
        );
    }
    assert!(!env_log.contains("KF_PIPELINES_SA_TOKEN_PATH"), "{env_log}");
}
