//! The repository files the pipelines read, for CI triggers: `check --print-inputs` lists them,
//! `check --verify-workflow` checks that a workflow's push trigger covers them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};
use globset::{GlobBuilder, GlobMatcher};

use super::cache::Inputs;

/// Repository-relative (`/`-separated) paths of the files read and of the directories listed
/// (a listed directory `d` is given as `d/*`: a file added there changes the compile).
pub fn repository_reads<'a>(
    root: &Path,
    all: impl IntoIterator<Item = &'a Inputs>,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let rel = |p: &str| -> Option<String> {
        let r = Path::new(p).strip_prefix(root).ok()?;
        let s = r.to_str()?.replace('\\', "/");
        (!s.is_empty()).then_some(s)
    };
    for inputs in all {
        for (path, hash) in &inputs.files {
            // A file that was looked for and absent is not a file to watch (yet).
            if hash.as_deref().is_some_and(|h| !h.starts_with("dir:"))
                && let Some(r) = rel(path)
            {
                out.insert(r);
            }
        }
        for (dir, _) in &inputs.dirs {
            if let Some(r) = rel(dir) {
                out.insert(format!("{r}/*"));
            }
        }
    }
    out
}

/// `files` with every directory whose files (recursively; hidden entries and `__pycache__` left
/// out) are all in the set given as `dir/**`, the shallowest such directory winning. A directory
/// with a single file stays a file name.
pub fn collapse(root: &Path, files: &BTreeSet<String>) -> Vec<String> {
    let mut dirs: BTreeSet<String> = BTreeSet::new();
    for f in files {
        let mut parts: Vec<&str> = f.split('/').collect();
        parts.pop();
        for i in 1..=parts.len() {
            dirs.insert(parts[..i].join("/"));
        }
    }
    let mut whole: Vec<String> = Vec::new();
    for dir in &dirs {
        if whole.iter().any(|w| dir.starts_with(&format!("{w}/"))) {
            continue;
        }
        let mut all = Vec::new();
        if !walk(&root.join(dir), dir, &mut all) {
            continue;
        }
        if all.len() >= 2 && all.iter().all(|f| files.contains(f)) {
            whole.push(dir.clone());
        }
    }
    let mut out: Vec<String> = whole.iter().map(|d| format!("{d}/**")).collect();
    for f in files {
        let covered = whole.iter().any(|w| f.starts_with(&format!("{w}/")));
        if !covered {
            out.push(f.clone());
        }
    }
    out.sort();
    out
}

/// Every file below `dir` (relative names under `rel`); false when unreadable.
fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) -> bool {
    let Ok(list) = std::fs::read_dir(dir) else {
        return false;
    };
    for entry in list.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || name == "__pycache__" || name.ends_with(".pyc") {
            continue;
        }
        let path = entry.path();
        let child = format!("{rel}/{name}");
        if path.is_dir() {
            if !walk(&path, &child, out) {
                return false;
            }
        } else {
            out.push(child);
        }
    }
    true
}

/// One workflow's push trigger: `None` when every push triggers it (no `paths:` filter).
#[derive(Debug)]
pub struct Trigger {
    patterns: Vec<(bool, GlobMatcher, String)>,
    ignore: Vec<GlobMatcher>,
}

impl Trigger {
    /// Read the push trigger of a GitHub/Gitea/Forgejo Actions workflow.
    pub fn of_workflow(text: &str) -> Result<Option<Trigger>> {
        let doc: serde_yaml::Value = serde_yaml::from_str(text).context("not valid YAML")?;
        let on = doc
            .get("on")
            .or_else(|| doc.get(serde_yaml::Value::Bool(true)));
        let Some(push) = on.and_then(|o| o.get("push")) else {
            // `on: push`, `on: [push]`, or no push trigger: no path filter to check.
            return Ok(None);
        };
        let list = |key: &str| -> Result<Vec<String>> {
            match push.get(key) {
                None => Ok(vec![]),
                Some(v) => serde_yaml::from_value::<Vec<String>>(v.clone())
                    .with_context(|| format!("`on.push.{key}` is not a list of strings")),
            }
        };
        let paths = list("paths")?;
        let ignore = list("paths-ignore")?;
        if paths.is_empty() && ignore.is_empty() {
            return Ok(None);
        }
        let matcher = |p: &str| -> Result<GlobMatcher> {
            Ok(GlobBuilder::new(p)
                .literal_separator(true)
                .build()
                .with_context(|| format!("invalid path pattern {p:?}"))?
                .compile_matcher())
        };
        let mut patterns = Vec::new();
        for p in &paths {
            let (negated, pat) = match p.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, p.as_str()),
            };
            patterns.push((negated, matcher(pat)?, p.clone()));
        }
        let ignore = ignore
            .iter()
            .map(|p| matcher(p))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Trigger { patterns, ignore }))
    }

    /// Whether a push changing `file` runs the workflow (the last matching pattern decides, as
    /// in GitHub Actions; `paths-ignore` alone triggers on everything it does not match).
    pub fn covers(&self, file: &str) -> bool {
        // A `dir/*` entry stands for a file added to dir.
        let probe = file.replace("/*", "/kfp-ci-new-file");
        if self.patterns.is_empty() {
            return !self.ignore.iter().any(|m| m.is_match(&probe));
        }
        let mut covered = false;
        for (negated, m, _) in &self.patterns {
            if m.is_match(&probe) {
                covered = !negated;
            }
        }
        covered
    }
}

/// The files of `reads` that `trigger` misses.
pub fn uncovered<'a>(trigger: &Trigger, reads: &'a BTreeSet<String>) -> Vec<&'a str> {
    reads
        .iter()
        .filter(|f| !trigger.covers(f))
        .map(String::as_str)
        .collect()
}

/// How one workflow's push trigger covers what the pipelines read (`check --verify-workflow`).
#[derive(Debug, PartialEq, Eq)]
pub enum Coverage<'a> {
    /// No `paths:` filter: every push runs it.
    EveryPush,
    /// Every file the pipelines read is in its `paths:`.
    Covered,
    /// These files the pipelines read do not trigger it.
    Missing(Vec<&'a str>),
}

impl Coverage<'_> {
    pub fn is_covered(&self) -> bool {
        !matches!(self, Coverage::Missing(_))
    }

    /// What `check --verify-workflow` prints for the workflow at `path` (`reads` files read).
    pub fn message(&self, path: &str, reads: usize) -> String {
        match self {
            Coverage::EveryPush => format!("{path}: every push runs it (no `paths:` filter)\n"),
            Coverage::Covered => {
                format!("{path}: its push trigger covers the {reads} files the pipelines read\n")
            }
            Coverage::Missing(missing) => {
                let mut out = format!(
                    "{path}: a change to these files the pipelines read does not trigger it; add them to `on.push.paths` (`kfp-ci check --print-inputs` lists every input):\n"
                );
                for m in missing {
                    out.push_str(&format!("  {m}\n"));
                }
                out
            }
        }
    }
}

/// Each workflow of `root` that runs `kfp-ci deploy` (by path) and how its push trigger covers
/// `reads`; an error when there is none (nothing to verify). A trigger that cannot be read is an
/// error for that workflow, in its place.
pub fn verify_workflows<'a>(
    root: &Path,
    reads: &'a BTreeSet<String>,
) -> Result<Vec<(String, Result<Coverage<'a>>)>> {
    let workflows = deploy_workflows(root);
    if workflows.is_empty() {
        anyhow::bail!(
            "no workflow runs `kfp-ci deploy` in .github/workflows, .gitea/workflows or .forgejo/workflows of {}: nothing to verify (`kfp-ci init` writes one)",
            root.display()
        );
    }
    Ok(workflows
        .into_iter()
        .map(|(path, text)| {
            let coverage = Trigger::of_workflow(&text)
                .with_context(|| format!("cannot read the trigger of {path}"))
                .map(|trigger| match trigger {
                    None => Coverage::EveryPush,
                    Some(trigger) => match uncovered(&trigger, reads) {
                        missing if missing.is_empty() => Coverage::Covered,
                        missing => Coverage::Missing(missing),
                    },
                });
            (path, coverage)
        })
        .collect())
}

/// Workflows (relative path → text) of the Actions-style forges that run `kfp-ci deploy`.
pub fn deploy_workflows(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for dir in [
        ".github/workflows",
        ".gitea/workflows",
        ".forgejo/workflows",
    ] {
        let Ok(list) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in list.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if !(name.ends_with(".yml") || name.ends_with(".yaml")) {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(entry.path())
                && text.contains("kfp-ci deploy")
            {
                out.insert(format!("{dir}/{name}"), text);
            }
        }
    }
    out
}

/// `kfp-ci init`: the workflow's trigger also lists `kfp-ci.toml` and the repository files the
/// pipelines were seen to read (the compile cache of `dir`, filled by an earlier `kfp-ci check`,
/// `compile` or `deploy`; without one, only the configuration is added).
pub fn init_hook(dir: &Path, ci: crate::cli::CiKind, files: &mut [crate::init::Planned]) {
    let root = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let stored = super::cache::stored_inputs(&super::cache::dir_for(&root));
    let mut reads: BTreeSet<String> = repository_reads(&root, stored.iter())
        .into_iter()
        .filter(|r| root.join(r.trim_end_matches("/*")).exists())
        .collect();
    reads.insert(crate::init::CONFIG_PATH.to_string());
    let extra = collapse(&root, &reads);
    let key = match ci {
        crate::cli::CiKind::Gitlab => "changes:",
        _ => "paths:",
    };
    let workflow = Path::new(crate::init::workflow_path(ci));
    for f in files.iter_mut().filter(|f| f.path == workflow) {
        f.content = extend_trigger(&f.content, key, &extra);
    }
}

/// Add `extra` to the path lists of a generated workflow: the Actions push trigger's `paths:`
/// (`key = "paths:"`) or GitLab's `changes:` (`key = "changes:"`), after each list's last item,
/// with its indentation; entries an existing item already covers are left out.
pub fn extend_trigger(workflow: &str, key: &str, extra: &[String]) -> String {
    let lines: Vec<&str> = workflow.lines().collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len() + extra.len());
    let mut i = 0;
    while i < lines.len() {
        out.push(lines[i].to_string());
        if lines[i].trim() != key {
            i += 1;
            continue;
        }
        let mut items = Vec::new();
        let mut indent = String::new();
        i += 1;
        while i < lines.len() {
            let t = lines[i].trim_start();
            if t.starts_with('#') {
                out.push(lines[i].to_string());
                i += 1;
                continue;
            }
            let Some(item) = t.strip_prefix("- ") else {
                break;
            };
            indent = lines[i][..lines[i].len() - t.len()].to_string();
            items.push(item.trim().trim_matches('"').trim_matches('\'').to_string());
            out.push(lines[i].to_string());
            i += 1;
        }
        if items.is_empty() {
            continue;
        }
        let yaml = format!(
            "on:\n  push:\n    paths:\n{}",
            items
                .iter()
                .map(|p| format!("      - {p:?}\n"))
                .collect::<String>()
        );
        let existing = Trigger::of_workflow(&yaml).ok().flatten();
        for e in extra {
            if existing.as_ref().is_some_and(|t| t.covers(e)) {
                continue;
            }
            out.push(format!("{indent}- {e:?}"));
        }
    }
    let mut text = out.join("\n");
    if workflow.ends_with('\n') {
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_lists_get_the_missing_inputs() {
        let wf = "on:\n  push:\n    paths:\n      - \"**/*_pipeline.py\"\n  workflow_dispatch:\njobs: {}\n";
        let out = extend_trigger(
            wf,
            "paths:",
            &[
                "lib/**".into(),
                "a/x_pipeline.py".into(),
                "kfp-ci.toml".into(),
            ],
        );
        assert_eq!(
            out,
            "on:\n  push:\n    paths:\n      - \"**/*_pipeline.py\"\n      - \"lib/**\"\n      - \"kfp-ci.toml\"\n  workflow_dispatch:\njobs: {}\n"
        );
    }

    #[test]
    fn trigger_patterns_follow_actions_rules() {
        let t = Trigger::of_workflow(
            "on:\n  push:\n    paths:\n      - '**/*_pipeline.py'\n      - 'lib/**'\n      - '!lib/skip/**'\n      - kfp-ci.toml\n",
        )
        .expect("parse")
        .expect("filter");
        assert!(t.covers("a/b_pipeline.py"));
        assert!(t.covers("x_pipeline.py"));
        assert!(t.covers("lib/deep/c.py"));
        assert!(!t.covers("lib/skip/c.py"));
        assert!(t.covers("kfp-ci.toml"));
        assert!(!t.covers("components/echo.yaml"));
        assert!(!t.covers("components/*"));
        assert!(
            Trigger::of_workflow("on: [push]\n")
                .expect("parse")
                .is_none()
        );
    }

    #[test]
    fn wholly_read_directories_are_globbed() {
        let dir = tempfile::tempdir().expect("tempdir");
        for f in [
            "lib/a.py",
            "lib/deep/b.py",
            "lib/__pycache__/a.pyc",
            "other/c.py",
            "other/d.py",
        ] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, "").expect("write");
        }
        let read: BTreeSet<String> = ["lib/a.py", "lib/deep/b.py", "other/c.py", "p_pipeline.py"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            collapse(dir.path(), &read),
            vec!["lib/**", "other/c.py", "p_pipeline.py"]
        );
    }

    #[test]
    fn each_deploy_workflow_gets_its_coverage_in_path_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reads: BTreeSet<String> = ["kfp-ci.toml", "lib/a.py"].map(String::from).into();
        assert!(
            verify_workflows(dir.path(), &reads)
                .expect_err("no workflow")
                .to_string()
                .contains("nothing to verify")
        );
        let wf = dir.path().join(".github/workflows");
        std::fs::create_dir_all(&wf).expect("mkdir");
        let write = |name: &str, on: &str| {
            std::fs::write(
                wf.join(name),
                format!("{on}\njobs:\n  d:\n    steps:\n      - run: kfp-ci deploy\n"),
            )
            .expect("write");
        };
        write("a.yml", "on: [push]");
        write("b.yml", "on:\n  push:\n    paths: ['lib/**', kfp-ci.toml]");
        write("c.yml", "on:\n  push:\n    paths: ['lib/**']");
        write("d.yml", "on: [push\n");
        std::fs::write(wf.join("e.yml"), "on: [push]\n").expect("write");
        let found = verify_workflows(dir.path(), &reads).expect("workflows");
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                ".github/workflows/a.yml",
                ".github/workflows/b.yml",
                ".github/workflows/c.yml",
                ".github/workflows/d.yml"
            ]
        );
        let coverage = |i: usize| found[i].1.as_ref().expect("readable");
        assert_eq!(*coverage(0), Coverage::EveryPush);
        assert_eq!(*coverage(1), Coverage::Covered);
        assert_eq!(*coverage(2), Coverage::Missing(vec!["kfp-ci.toml"]));
        assert!(coverage(1).is_covered() && !coverage(2).is_covered());
        let err = found[3].1.as_ref().expect_err("invalid YAML");
        assert!(
            err.to_string()
                .contains("cannot read the trigger of .github/workflows/d.yml")
        );
        assert_eq!(
            coverage(0).message("w.yml", 2),
            "w.yml: every push runs it (no `paths:` filter)\n"
        );
        assert_eq!(
            coverage(1).message("w.yml", 2),
            "w.yml: its push trigger covers the 2 files the pipelines read\n"
        );
        assert_eq!(
            coverage(2).message("w.yml", 2),
            "w.yml: a change to these files the pipelines read does not trigger it; add them to `on.push.paths` (`kfp-ci check --print-inputs` lists every input):\n  kfp-ci.toml\n"
        );
    }
}
