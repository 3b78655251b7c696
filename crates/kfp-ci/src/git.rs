//! What git says about the repository a deploy comes from: its commit, and whether the work tree
//! differs from it. Always asked with `git -C <repository root>`, so a run started outside the
//! repository (`kfp-ci deploy ~/repo/pipelines`) still finds them. Any failure (no git, not a
//! work tree) means "unknown", never an error.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The suffix of a commit deployed from a work tree that differs from it.
pub const DIRTY_SUFFIX: &str = "-dirty";

fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

/// `HEAD` of the work tree at `root`.
pub fn head(root: &Path) -> Option<String> {
    let sha = git(root, &["rev-parse", "--verify", "-q", "HEAD"])?;
    let sha = sha.trim();
    (!sha.is_empty()).then(|| sha.to_string())
}

/// Does the work tree at `root` differ from its `HEAD`, as `git describe --dirty` sees it
/// (tracked files changed, staged or not), or is one of `files` (relative to `root`, the
/// pipeline files deployed) not committed at all? `None` when git cannot tell.
pub fn dirty(root: &Path, files: &[&str]) -> Option<bool> {
    let changed = git(root, &["status", "--porcelain", "--untracked-files=no"])?;
    if !changed.trim().is_empty() {
        return Some(true);
    }
    let inside: Vec<&str> = files
        .iter()
        .copied()
        .filter(|f| !Path::new(f).is_absolute())
        .collect();
    if inside.is_empty() {
        return Some(false);
    }
    let mut args = vec!["ls-files", "--others", "--exclude-standard", "--"];
    args.extend(inside);
    let untracked = git(root, &args)?;
    Some(!untracked.trim().is_empty())
}

/// The git work tree that holds every one of `paths` (relative to `cwd`), if they share one.
pub fn work_tree_of(cwd: &Path, paths: &[PathBuf]) -> Option<PathBuf> {
    let mut found: Option<PathBuf> = None;
    for p in paths {
        let abs = std::path::absolute(cwd.join(p)).ok()?;
        let root = enclosing_work_tree(&abs)?;
        match &found {
            Some(f) if *f != root => return None,
            _ => found = Some(root),
        }
    }
    found
}

/// The nearest directory at or above `path` with a `.git`.
pub fn enclosing_work_tree(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .find(|d| d.join(".git").exists())
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dir: &Path, args: &[&str]) {
        let ok = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "git {args:?}");
    }

    #[test]
    fn head_and_dirty_from_outside_the_work_tree() {
        if Command::new("git").arg("--version").output().is_err() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        run(root, &["init", "-q"]);
        assert_eq!(head(root), None, "no commit yet");
        fs_err::write(root.join("a_pipeline.py"), "x = 1\n").expect("write");
        run(root, &["add", "."]);
        run(root, &["commit", "-q", "-m", "one"]);
        let sha = head(root).expect("head");
        assert_eq!(sha.len(), 40);
        assert_eq!(dirty(root, &["a_pipeline.py"]), Some(false));
        // An untracked file elsewhere is not dirt; an untracked pipeline file deployed is.
        fs_err::write(root.join("notes.txt"), "n\n").expect("write");
        fs_err::write(root.join("b_pipeline.py"), "y = 1\n").expect("write");
        assert_eq!(dirty(root, &["a_pipeline.py"]), Some(false));
        assert_eq!(dirty(root, &["a_pipeline.py", "b_pipeline.py"]), Some(true));
        // A changed tracked file is.
        fs_err::write(root.join("a_pipeline.py"), "x = 2\n").expect("write");
        assert_eq!(dirty(root, &[]), Some(true));
        // Not a work tree: unknown.
        let plain = tempfile::tempdir().expect("tempdir");
        assert_eq!(dirty(plain.path(), &[]), None);
        assert_eq!(
            work_tree_of(plain.path(), &[root.join("a_pipeline.py")]),
            Some(root.to_path_buf())
        );
    }
}
