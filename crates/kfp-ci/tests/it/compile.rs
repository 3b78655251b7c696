//! `kfp-ci compile` / `check` against the real kfp SDK: byte identity with `kfp dsl compile`,
//! the corpus of good and bad files (tests/fixtures/corpus, see its README), discovery rules,
//! reproducibility, configuration and usage errors (one line naming the file, table and key,
//! or the output directory), duplicate names in `check`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::{TestContext, python};

pub(crate) fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus")
}

/// Copy a directory tree (hidden entries included).
pub(crate) fn copy_tree(src: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).expect("mkdir");
    for entry in std::fs::read_dir(src).expect("read_dir") {
        let entry = entry.expect("entry");
        let to = dest.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).expect("copy");
        }
    }
}

/// `kfp dsl compile --py FILE --output OUT [--function F]` with the test venv's kfp, from `cwd`,
/// under `PYTHONHASHSEED=0` (the seed kfp-ci's workers use).
pub(crate) fn kfp_dsl_compile(
    cwd: &Path,
    file: &Path,
    out: &Path,
    function: Option<&str>,
) -> Vec<u8> {
    let kfp = python().parent().expect("bin dir").join("kfp");
    let mut cmd = crate::common::command(kfp);
    cmd.current_dir(cwd)
        .env("PYTHONHASHSEED", "0")
        .args(["dsl", "compile", "--py"])
        .arg(file)
        .arg("--output")
        .arg(out);
    if let Some(f) = function {
        cmd.args(["--function", f]);
    }
    let output = cmd.output().expect("run kfp dsl compile");
    assert!(
        output.status.success(),
        "kfp dsl compile {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read(out).expect("kfp output")
}

/// Run `kfp dsl compile` for several files concurrently (two at a time: the machine is small).
fn kfp_dsl_compile_all(
    cwd: &Path,
    jobs: &[(PathBuf, Option<String>)],
    out_dir: &Path,
) -> Vec<Vec<u8>> {
    std::fs::create_dir_all(out_dir).expect("mkdir");
    let mut results = Vec::new();
    for chunk in jobs.chunks(2) {
        let handles: Vec<_> = chunk
            .iter()
            .enumerate()
            .map(|(i, (file, function))| {
                let cwd = cwd.to_path_buf();
                let file = file.clone();
                let function = function.clone();
                let out = out_dir.join(format!(
                    "{}-{i}.yaml",
                    file.file_stem().expect("stem").to_string_lossy()
                ));
                std::thread::spawn(move || kfp_dsl_compile(&cwd, &file, &out, function.as_deref()))
            })
            .collect();
        for h in handles {
            results.push(h.join().expect("thread"));
        }
    }
    results
}

/// The leading `# ...` comment lines kfp writes, and the rest.
fn split_header(yaml: &str) -> (&str, &str) {
    let mut end = 0;
    for line in yaml.split_inclusive('\n') {
        if !line.starts_with('#') {
            break;
        }
        end += line.len();
    }
    yaml.split_at(end)
}

/// Byte identity, except where kfp itself is not reproducible: a dict default printed in the
/// `# Inputs:` header (protobuf Struct order, see the corpus README), where kfp-ci sorts the keys.
/// Then the bodies must be identical and the headers equal up to key order.
pub(crate) fn assert_same_as_kfp(label: &str, ours: &str, kfp: &str) {
    if ours == kfp {
        return;
    }
    let (our_header, our_body) = split_header(ours);
    let (kfp_header, kfp_body) = split_header(kfp);
    assert_eq!(
        our_body, kfp_body,
        "{label}: spec differs from kfp dsl compile"
    );
    assert!(
        kfp_header.contains("[Default: {") || kfp_header.contains("[Default: [{"),
        "{label}: header differs from kfp dsl compile and has no dict default:\n{our_header}\n---\n{kfp_header}"
    );
    let sorted = |h: &str| {
        let mut chars: Vec<char> = h.chars().collect();
        chars.sort_unstable();
        chars
    };
    assert_eq!(
        sorted(our_header),
        sorted(kfp_header),
        "{label}: header differs beyond dict key order"
    );
}

/// Compare the `__KFP_EMBEDDED_ARCHIVE_B64` archives of two YAML files: same member names and
/// contents (timestamps and owners aside). Done by the test Python (tarfile, gzip).
fn assert_same_archives(ours: &Path, kfp: &Path) {
    let script = r#"
import base64, gzip, io, re, sys, tarfile
def archives(path):
    text = open(path).read()
    found = []
    for b64 in re.findall(r"__KFP_EMBEDDED_ARCHIVE_B64 = '([A-Za-z0-9+/=]+)'", text):
        raw = gzip.decompress(base64.b64decode(b64))
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            found.append(sorted((m.name, tar.extractfile(m).read() if m.isfile() else b"") for m in tar.getmembers()))
    return found, re.sub(r"__KFP_EMBEDDED_ARCHIVE_B64 = '[A-Za-z0-9+/=]+'", "ARCHIVE", text)
a, rest_a = archives(sys.argv[1])
b, rest_b = archives(sys.argv[2])
assert a, "no embedded archive in " + sys.argv[1]
assert a == b, f"archives differ: {a} vs {b}"
assert rest_a == rest_b, "the YAML around the archives differs"
print("same", len(a))
"#;
    let out = crate::common::command(python())
        .arg("-c")
        .arg(script)
        .arg(ours)
        .arg(kfp)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{} vs {}: {}",
        ours.display(),
        kfp.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn parse_report(stdout: &[u8]) -> serde_json::Value {
    serde_json::from_slice(stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON report ({e}):\n{}",
            String::from_utf8_lossy(stdout)
        )
    })
}

/// `kfp-ci check --output json` where some file fails: exit 1, the JSON report.
#[track_caller]
pub(crate) fn failing_check(ctx: &TestContext) -> serde_json::Value {
    let out = ctx
        .cmd()
        .args(["check", "--output", "json"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_report(&out.stdout)
}

/// file (relative) → (status, error kind, error message)
pub(crate) fn outcomes(report: &serde_json::Value) -> BTreeMap<String, (String, String, String)> {
    report["pipelines"]
        .as_array()
        .expect("pipelines")
        .iter()
        .map(|p| {
            (
                p["file"].as_str().expect("file").to_string(),
                (
                    p["status"].as_str().expect("status").to_string(),
                    p["error"]["kind"].as_str().unwrap_or("").to_string(),
                    p["error"]["message"].as_str().unwrap_or("").to_string(),
                ),
            )
        })
        .collect()
}

#[test]
fn examples_are_byte_identical_to_kfp_dsl_compile() {
    let ctx = TestContext::new();
    ctx.copy_examples();
    let out = ctx
        .cmd()
        .args(["compile", "examples", "--out-dir", "out"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(out.stdout.is_empty(), "human output goes to stderr");
    assert!(stderr.contains("with kfp 2.17.0"), "{stderr}");

    let mut files: Vec<PathBuf> = std::fs::read_dir(ctx.root().join("examples"))
        .expect("examples")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "py"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 6, "six examples");
    let jobs: Vec<_> = files.iter().map(|f| (f.clone(), None)).collect();
    let refs = kfp_dsl_compile_all(ctx.root(), &jobs, &ctx.root().join("ref"));
    for (file, reference) in files.iter().zip(refs) {
        let stem = file.file_stem().expect("stem").to_string_lossy();
        let ours = std::fs::read_to_string(ctx.root().join(format!("out/{stem}.yaml")))
            .expect("kfp-ci output");
        assert_same_as_kfp(&stem, &ours, &String::from_utf8(reference).expect("utf-8"));
    }
}

/// The corpus (minus `duplicate_name`, which is its own test) in one `compile --output json` run.
#[test]
fn corpus_outcomes_identity_and_isolation() {
    let ctx = TestContext::new();
    copy_tree(&corpus_dir(), &ctx.root().join("corpus"));
    std::fs::remove_dir_all(ctx.root().join("corpus/duplicate_name")).expect("rm");
    let out = ctx
        .cmd()
        .args([
            "compile",
            "--timeout",
            "4",
            "--jobs",
            "2",
            "--output",
            "json",
            "--out-dir",
            "out",
        ])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "some files fail: {stderr}");
    let report = parse_report(&out.stdout);
    assert_eq!(report["command"], "compile");
    assert_eq!(report["kfp_version"], "2.17.0");
    let got = outcomes(&report);

    // Never discovered: the .venv/ and venv/ traps (they would exit with "imported!").
    assert!(!stderr.contains("imported!"), "{stderr}");
    assert!(got.keys().all(|f| !f.contains("trap")), "{:?}", got.keys());

    let expect_err = |file: &str, kind: &str, needle: &str| {
        let (status, k, message) = got
            .get(&format!("corpus/{file}"))
            .unwrap_or_else(|| panic!("{file} not in report: {got:?}"));
        assert_eq!(status, "failed", "{file}");
        assert_eq!(k, kind, "{file}: {message}");
        assert!(
            message.contains(needle),
            "{file}: {message:?} lacks {needle:?}"
        );
    };
    expect_err("syntax_error/syntax_error_pipeline.py", "syntax", ":12");
    expect_err(
        "missing_import/missing_import_pipeline.py",
        "import",
        "not_a_real_module",
    );
    expect_err(
        "ambiguous/ambiguous_pipeline.py",
        "several_pipelines",
        "nightly_train, weekly_report",
    );
    expect_err("no_pipeline/no_pipeline_pipeline.py", "no_pipeline", "");
    expect_err(
        "compile_error/compile_error_pipeline.py",
        "compile",
        "unexpected keyword argument \"epochz\"",
    );
    expect_err(
        "compile_error_missing/compile_error_missing_pipeline.py",
        "compile",
        "missing 1 required argument: learning_rate",
    );
    expect_err("sys_exit/sys_exit_pipeline.py", "crash", "status 3");
    expect_err("endless_loop/endless_loop_pipeline.py", "timeout", "4s");
    expect_err("crash/crash_pipeline.py", "crash", "signal 9");
    // Captured output is shown with the error, never parsed.
    assert!(stderr.contains("about to exit"), "{stderr}");
    assert!(stderr.contains("going down"), "{stderr}");

    let good: &[(&str, Option<&str>)] = &[
        ("nested/nested_pipeline.py", Some("training")),
        (
            "stem_match/stem_match_pipeline.py",
            Some("stem_match_pipeline"),
        ),
        ("prints/prints_pipeline.py", None),
        // As kfp: a lone component compiles to its one-step pipeline.
        ("component_only/component_only_pipeline.py", None),
        ("sibling_packages/pkg_a/team_a_pipeline.py", None),
        ("sibling_packages/pkg_b/team_b_pipeline.py", None),
        ("venv_ignored/kept_pipeline.py", None),
        ("struct_default/struct_default_pipeline.py", None),
        ("embedded_artifact/embedded_artifact_pipeline.py", None),
        ("notebook/notebook_pipeline.py", None),
    ];
    for (file, _) in good {
        let (status, kind, message) = &got[&format!("corpus/{file}")];
        assert_eq!(status, "done", "{file}: {kind}: {message}");
    }
    assert_eq!(
        report["counts"]["compiled"].as_u64(),
        Some(good.len() as u64)
    );
    // The chatty file printed JSON-looking lines: captured, not shown without -v, not parsed.
    assert!(!stderr.contains("progress line 5"), "{stderr}");

    // Sibling packages with the same module name each got their own `common.helpers`.
    let a = std::fs::read_to_string(ctx.root().join("out/team_a_pipeline.yaml")).expect("a");
    let b = std::fs::read_to_string(ctx.root().join("out/team_b_pipeline.yaml")).expect("b");
    assert!(a.contains("python:3.10.14-slim-bookworm") && !a.contains("python:3.12.4"));
    assert!(b.contains("python:3.12.4-slim-bookworm") && !b.contains("python:3.10.14"));

    // Byte identity with kfp dsl compile (run from the same directory, same seed).
    let jobs: Vec<_> = good
        .iter()
        .map(|(f, func)| (ctx.root().join("corpus").join(f), func.map(String::from)))
        .collect();
    let refs = kfp_dsl_compile_all(ctx.root(), &jobs, &ctx.root().join("ref"));
    for ((file, _), reference) in good.iter().zip(refs) {
        let stem = Path::new(file).file_stem().expect("stem").to_string_lossy();
        let ours_path = ctx.root().join(format!("out/{stem}.yaml"));
        let ours = std::fs::read_to_string(&ours_path).expect("ours");
        let reference = String::from_utf8(reference).expect("utf-8");
        if reference.contains("__KFP_EMBEDDED_ARCHIVE_B64") {
            let ref_path = ctx.root().join(format!("ref/{stem}.kfp.yaml"));
            std::fs::write(&ref_path, &reference).expect("write");
            assert_same_archives(&ours_path, &ref_path);
        } else {
            assert_same_as_kfp(file, &ours, &reference);
        }
    }

    // Reproducible: a second run (one worker, assets touched) gives the same bytes, archives and
    // dict-default headers included.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    for asset in [
        "embedded_artifact/assets/scoring.py",
        "notebook/report.ipynb",
    ] {
        std::fs::File::options()
            .write(true)
            .open(ctx.root().join("corpus").join(asset))
            .expect("open")
            .set_modified(later)
            .expect("touch");
    }
    let again = ctx
        .cmd()
        .args(["compile", "--jobs", "1", "--out-dir", "again"])
        .args(
            ["embedded_artifact", "notebook", "struct_default", "prints"]
                .iter()
                .map(|d| format!("corpus/{d}")),
        )
        .output()
        .expect("run");
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    for stem in [
        "embedded_artifact_pipeline",
        "notebook_pipeline",
        "struct_default_pipeline",
        "prints_pipeline",
    ] {
        let first = std::fs::read(ctx.root().join(format!("out/{stem}.yaml"))).expect("first");
        let second = std::fs::read(ctx.root().join(format!("again/{stem}.yaml"))).expect("second");
        assert!(first == second, "{stem}: not reproducible");
    }
}

#[test]
fn verbose_shows_captured_output_and_traceback() {
    let ctx = TestContext::new();
    copy_tree(&corpus_dir().join("prints"), &ctx.root().join("prints"));
    copy_tree(
        &corpus_dir().join("compile_error"),
        &ctx.root().join("compile_error"),
    );
    let out = ctx.cmd().args(["check", "-v"]).output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "check writes nothing to stdout");
    assert!(stderr.contains("progress line 199"), "{stderr}");
    assert!(stderr.contains(r#"{"id": 4, "result": "Ok""#), "{stderr}");
    assert!(
        stderr.contains("Traceback") || stderr.contains("File \""),
        "{stderr}"
    );
    // The traceback is the user's and kfp's, not kfp-ci's own worker script.
    assert!(
        stderr.contains("compile_error_pipeline.py\", line"),
        "{stderr}"
    );
    assert!(!stderr.contains("kfp_ci_worker"), "{stderr}");
    assert!(stderr.contains("checked 1 of 2 pipelines"), "{stderr}");
    assert!(!ctx.root().join("dist").exists(), "check writes nothing");
}

/// An interpreter without the pinned kfp, and no way to install it: the error says what to install.
#[test]
fn missing_kfp_offline_says_what_to_install() {
    let ctx = TestContext::new();
    ctx.write("x_pipeline.py", "raise SystemExit('never imported')\n");
    // A bare venv without kfp (no pip inside: creating it takes no network).
    let bare = ctx.root().join("bare");
    let status = ctx
        .command(python())
        .args(["-m", "venv", "--without-pip"])
        .arg(&bare)
        .status()
        .expect("venv");
    assert!(status.success());
    let out = ctx
        .cmd()
        .env("KFP_CI_PYTHON", bare.join("bin/python"))
        .env("KFP_CI_CACHE_DIR", ctx.root().join("cache"))
        .env("PIP_NO_INDEX", "1")
        .arg("check")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("has no kfp"), "{stderr}");
    assert!(
        stderr.contains("pip install kfp==2.17.0 kfp-kubernetes==2.17.0"),
        "{stderr}"
    );
}

/// A file that kills the worker process itself (not just its forked child): that file is reported,
/// the worker is restarted and the files after it still compile.
#[test]
fn a_killed_worker_is_restarted() {
    let ctx = TestContext::new();
    let good =
        std::fs::read_to_string(corpus_dir().join("venv_ignored/kept_pipeline.py")).expect("read");
    ctx.write(
        "a_kill_pipeline.py",
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
    );
    ctx.write("b_pipeline.py", &good);
    ctx.write(
        "c_pipeline.py",
        &good.replace("name=\"kept\"", "name=\"kept-c\""),
    );
    ctx.write(
        "d_pipeline.py",
        &good.replace("name=\"kept\"", "name=\"kept-d\""),
    );
    // One file at a time, and several: then the files in flight with the killer run again one by
    // one, and only the killer is reported.
    for jobs in ["1", "3"] {
        let out = ctx
            .cmd()
            .args(["check", "--jobs", jobs, "--output", "json"])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        let got = outcomes(&parse_report(&out.stdout));
        let (status, kind, message) = &got["a_kill_pipeline.py"];
        assert_eq!(
            (status.as_str(), kind.as_str()),
            ("failed", "crash"),
            "{message}"
        );
        assert!(message.contains("worker died"), "{message}");
        for f in ["b_pipeline.py", "c_pipeline.py", "d_pipeline.py"] {
            assert_eq!(got[f].0, "done", "--jobs {jobs} {f}: {stderr}");
        }
    }
}

/// `KFP_DISABLE_EXECUTION_CACHING_BY_DEFAULT` changes kfp's output; kfp-ci reads it the way
/// `kfp dsl compile` does (through kfp's own click option).
#[test]
fn caching_env_var_is_honoured_like_kfp() {
    let ctx = TestContext::new();
    let good =
        std::fs::read_to_string(corpus_dir().join("venv_ignored/kept_pipeline.py")).expect("read");
    let file = ctx.write("kept_pipeline.py", &good);
    let out = ctx
        .cmd()
        .env("KFP_DISABLE_EXECUTION_CACHING_BY_DEFAULT", "true")
        .args(["compile", "--out-dir", "out"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = std::fs::read_to_string(ctx.root().join("out/kept_pipeline.yaml")).expect("ours");
    let kfp = python().parent().expect("bin").join("kfp");
    let status = ctx
        .command(kfp)
        .current_dir(ctx.root())
        .env("PYTHONHASHSEED", "0")
        .env("KFP_DISABLE_EXECUTION_CACHING_BY_DEFAULT", "true")
        .args(["dsl", "compile", "--py"])
        .arg(&file)
        .args(["--output", "ref.yaml"])
        .output()
        .expect("kfp");
    assert!(status.status.success());
    let reference = std::fs::read_to_string(ctx.root().join("ref.yaml")).expect("ref");
    assert_eq!(ours, reference);
    assert!(!ours.contains("enableCache: true"), "caching disabled");
}

/// The human output is the product: one line per pipeline, captured output with a failure, summary.
#[test]
fn human_output() {
    let ctx = TestContext::new();
    let good =
        std::fs::read_to_string(corpus_dir().join("venv_ignored/kept_pipeline.py")).expect("read");
    ctx.write("pipelines/kept_pipeline.py", &good);
    ctx.write(
        "pipelines/broken_pipeline.py",
        "print('loading broken')\nfrom kfp import dsl\n\n@dsl.pipeline\ndef broken(:\n    pass\n",
    );
    ctx.write(
        "pipelines/needs_pandas_pipeline.py",
        "print('{\"looks\": \"like json\"}')\nimport pandas_not_installed\n",
    );
    ctx.write(
        "pipelines/multi_pipeline.py",
        &std::fs::read_to_string(corpus_dir().join("ambiguous/ambiguous_pipeline.py"))
            .expect("read"),
    );
    let out = ctx
        .cmd()
        .args(["compile", "--jobs", "1"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    insta::with_settings!({filters => vec![(r"\d+\.\d\ds", "[TIME]")]}, {
        insta::assert_snapshot!(stderr);
    });

    // The same run as a JSON report on stdout: what CI steps consume.
    let report = failing_check(&ctx);
    insta::assert_json_snapshot!(report, {
        ".started_at" => "[started_at]",
        ".duration_ms" => "[duration_ms]",
        ".kfp_ci_version" => "[version]",
        ".pipelines[].error.detail" => "[traceback]",
    });
}

/// A compile error carries kfp's own message, the same text `kfp dsl compile` prints (here from a
/// task setting that kfp-ci's worker makes cheaper to call: the caller's name must stay right).
#[test]
fn compile_errors_carry_kfp_s_message() {
    let ctx = TestContext::new();
    let file = ctx.write(
        "cpu_on_pipeline_pipeline.py",
        "from kfp import dsl\n\n@dsl.component(base_image=\"python:3.11\")\ndef a() -> int:\n    return 1\n\n@dsl.pipeline\ndef inner():\n    a()\n\n@dsl.pipeline\ndef outer():\n    inner().set_memory_limit(\"1G\")\n",
    );
    let got = outcomes(&failing_check(&ctx));
    let (_, kind, message) = &got["cpu_on_pipeline_pipeline.py"];
    assert_eq!(kind, "compile");
    let kfp = ctx
        .command(python().parent().expect("bin").join("kfp"))
        .current_dir(ctx.root())
        .args(["dsl", "compile", "--py"])
        .arg(&file)
        .args(["--output", "x.yaml"])
        .output()
        .expect("kfp");
    assert!(!kfp.status.success());
    let kfp_message = String::from_utf8_lossy(&kfp.stderr);
    let kfp_message = kfp_message.trim().lines().last().expect("kfp's message");
    assert!(
        kfp_message.starts_with("set_memory_limit can only be used"),
        "{kfp_message}"
    );
    assert!(
        message.ends_with(kfp_message),
        "{message:?} vs {kfp_message:?}"
    );
}

/// The worker imports kfp without kfp.client and without `requests` (kfp imports both but a
/// compile does not use them), and kfp-kubernetes only when a file mentions it. Files that use
/// them anyway get the real ones, and the same bytes as `kfp dsl compile`: `kfp.Client`, `requests`
/// through kfp's own module, kfp-kubernetes through a helper module (imported in the file's
/// child) and directly (imported by the worker before it forks that file).
#[test]
fn deferred_imports_are_real_when_used() {
    let ctx = TestContext::new();
    let component = r#"
@dsl.component(base_image="python:3.11-slim")
def hello(name: str) -> str:
    return f"hello {name}"
"#;
    ctx.write(
        "a_client_pipeline.py",
        &format!(
            r#"import kfp
import requests
from kfp import Client, client, dsl
from kfp.components import load_yaml_utilities

assert kfp.Client is Client is client.Client
assert load_yaml_utilities.requests.get is requests.get
print("client from", Client.__module__)
{component}

@dsl.pipeline(name="client-user")
def a_client_pipeline(name: str = "kfp"):
    hello(name=name)
"#
        ),
    );
    ctx.write(
        "k8s_helpers.py",
        "from kfp import kubernetes\n\n\ndef with_token(task):\n    kubernetes.use_secret_as_env(task, secret_name=\"creds\", secret_key_to_env={\"token\": \"TOKEN\"})\n    return task\n",
    );
    ctx.write(
        "b_helper_pipeline.py",
        &format!(
            r#"from kfp import dsl
from k8s_helpers import with_token
{component}

@dsl.pipeline(name="helper-user")
def b_helper_pipeline(name: str = "kfp"):
    with_token(hello(name=name))
"#
        ),
    );
    ctx.write(
        "c_direct_pipeline.py",
        &format!(
            r#"from kfp import dsl, kubernetes
{component}

@dsl.pipeline(name="direct-user")
def c_direct_pipeline(name: str = "kfp"):
    task = hello(name=name)
    kubernetes.add_toleration(task, key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")
"#
        ),
    );
    let out = ctx
        .cmd()
        .args(["-v", "compile", "--jobs", "1", "--out-dir", "out"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("client from kfp.client.client"), "{stderr}");
    let stems = [
        "a_client_pipeline",
        "b_helper_pipeline",
        "c_direct_pipeline",
    ];
    let jobs: Vec<_> = stems
        .iter()
        .map(|s| (ctx.root().join(format!("{s}.py")), None))
        .collect();
    let refs = kfp_dsl_compile_all(ctx.root(), &jobs, &ctx.root().join("ref"));
    for (stem, reference) in stems.iter().zip(refs) {
        let ours =
            std::fs::read_to_string(ctx.root().join(format!("out/{stem}.yaml"))).expect("ours");
        let reference = String::from_utf8(reference).expect("utf-8");
        assert_eq!(ours, reference, "{stem}");
    }
    let direct = std::fs::read_to_string(ctx.root().join("out/c_direct_pipeline.yaml")).expect("c");
    assert!(direct.contains("nvidia.com/gpu"), "platform spec written");
}
