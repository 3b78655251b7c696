//! `kfp-ci compile` / `check`: usage and configuration errors (one line naming the file, table and
//! key, or the output directory; exit 2) and duplicate pipeline names.

use crate::common::TestContext;
use crate::compile::{copy_tree, corpus_dir, failing_check, outcomes, parse_report};

#[test]
fn duplicate_names_fail_naming_both_files() {
    let ctx = TestContext::new();
    copy_tree(&corpus_dir().join("duplicate_name"), ctx.root());
    let got = outcomes(&failing_check(&ctx));
    let (_, kind, message) = &got["one/same_name_pipeline.py"];
    assert_eq!(kind, "duplicate_name");
    assert!(message.contains("two/same_name_pipeline.py"), "{message}");
    let (_, kind, message) = &got["two/same_name_pipeline.py"];
    assert_eq!(kind, "duplicate_name");
    assert!(message.contains("one/same_name_pipeline.py"), "{message}");
}

#[test]
fn config_functions_name_from_gitignore_and_max_depth() {
    let ctx = TestContext::new();
    copy_tree(
        &corpus_dir().join("ambiguous"),
        &ctx.root().join("deep/ambiguous"),
    );
    copy_tree(&corpus_dir().join("prints"), &ctx.root().join("ignored"));
    let top =
        std::fs::read_to_string(corpus_dir().join("venv_ignored/kept_pipeline.py")).expect("read");
    ctx.write("top_pipeline.py", &top);
    ctx.write(".gitignore", "ignored/\n");
    ctx.write(
        "kfp-ci.toml",
        "name_from = \"pipeline\"\n[functions]\n\"deep/ambiguous/ambiguous_pipeline.py\" = \"weekly_report\"\n",
    );
    let out = ctx
        .cmd()
        .args(["compile", "--output", "json"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report = parse_report(&out.stdout);
    let names: Vec<(&str, &str)> = report["pipelines"]
        .as_array()
        .expect("pipelines")
        .iter()
        .map(|p| {
            (
                p["file"].as_str().expect("file"),
                p["name"].as_str().expect("name"),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("deep/ambiguous/ambiguous_pipeline.py", "weekly-report"),
            ("top_pipeline.py", "kept")
        ],
        "gitignored prints/ skipped; names from @dsl.pipeline"
    );
    assert!(
        ctx.root()
            .join("dist/pipelines/weekly-report.yaml")
            .is_file()
    );

    // max_depth = 1: only files directly in the searched directory.
    let out = ctx
        .cmd()
        .args(["check", "--max-depth", "1", "--output", "json"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let got = outcomes(&parse_report(&out.stdout));
    assert_eq!(got.keys().collect::<Vec<_>>(), ["top_pipeline.py"]);
}

#[test]
fn configuration_errors_exit_2() {
    let ctx = TestContext::new();
    ctx.write("kfp-ci.toml", "includes = [\"*.py\"]\n");
    let out = ctx.cmd().arg("check").output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("includes") && stderr.contains("kfp-ci.toml"),
        "{stderr}"
    );

    ctx.write("kfp-ci.toml", "include = [\"[bad\"]\n");
    let out = ctx.cmd().arg("check").output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("include") && stderr.contains("[bad"),
        "{stderr}"
    );

    ctx.write("kfp-ci.toml", "");
    let out = ctx
        .cmd()
        .args(["check", "no/such/dir"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no/such/dir"), "{stderr}");
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
