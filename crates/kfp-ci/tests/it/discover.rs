//! Where kfp-ci looks for pipeline files: never in a tree nobody named (outside a git repository,
//! or the home directory), and always where a PATH or `--include` points.

use crate::common::TestContext;

/// A pipeline file that leaves a mark when it is imported.
fn trap(marker: &std::path::Path) -> String {
    format!(
        "open({:?}, 'a').write('imported\\n')\n\nfrom kfp import dsl\n\n\n@dsl.component(base_image=\"python:3.11\")\ndef hello() -> str:\n    return 'x'\n\n\n@dsl.pipeline\ndef trap():\n    hello()\n",
        marker.display().to_string()
    )
}

/// Item 11: run outside a git repository with no PATH, kfp-ci refuses to search (exit 2) and
/// imports nothing; a PATH or `--include` names the tree, and then it is compiled.
#[test]
fn outside_a_repository_nothing_is_searched_unless_named() {
    let ctx = TestContext::new();
    let plain = tempfile::tempdir().expect("tempdir");
    let marker = plain.path().join("marker");
    std::fs::create_dir_all(plain.path().join("deep/er")).expect("mkdir");
    std::fs::write(plain.path().join("deep/er/trap_pipeline.py"), trap(&marker)).expect("write");

    let out = ctx
        .cmd()
        .current_dir(plain.path())
        .arg("check")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("is not inside a git repository")
            && stderr.contains(&plain.path().display().to_string())
            && stderr.contains("PATH")
            && stderr.contains("--include"),
        "{stderr}"
    );
    assert!(!marker.exists(), "a file was imported");

    // deploy refuses the same way, before touching any server.
    let out = ctx
        .cmd()
        .current_dir(plain.path())
        .args(["deploy", "--endpoint", "http://127.0.0.1:9"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!marker.exists(), "a file was imported");

    for args in [
        // (--no-cache: the second run must import the file again, not reuse the first's compile.)
        vec!["check", "--no-cache", "."],
        vec!["check", "--no-cache", "--include", "**/*_pipeline.py"],
    ] {
        let out = ctx
            .cmd()
            .current_dir(plain.path())
            .args(&args)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.contains("checked 1 of 1 pipeline"), "{stderr}");
    }
    assert_eq!(
        std::fs::read_to_string(&marker).expect("marker"),
        "imported\nimported\n"
    );
}

/// Item 11: a repository whose root is the home directory (dotfiles in git) is not searched as
/// a whole either; a PATH below it is.
#[test]
fn the_home_directory_is_not_searched_as_a_whole() {
    let ctx = TestContext::new();
    let marker = ctx.root().join("marker");
    ctx.write("projects/x/trap_pipeline.py", &trap(&marker));
    let out = ctx
        .cmd()
        .env("HOME", ctx.root())
        .arg("check")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("home directory"), "{stderr}");
    assert!(!marker.exists(), "a file was imported");

    let out = ctx
        .cmd()
        .env("HOME", ctx.root())
        .args(["check", "projects"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(marker.exists());
}
