//! Discovery: find the pipeline files.
//!
//! Every file matching an `include` glob (default `**/*_pipeline.py`) below the repository root, or
//! below the PATHs given (a PATH may be a file), honouring `.gitignore`/`.ignore`, skipping hidden
//! directories and virtualenvs (a file under `.venv/` is never imported), minus `exclude` globs,
//! down to `max_depth`. Globs match the path relative to the repository root, `/`-separated, and `*`
//! does not cross `/`. The result is sorted by that path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use globset::{GlobSet, GlobSetBuilder};
use serde::Serialize;

use crate::settings::CompileSettings;

// Discovery's path rules, also used where settings are checked.
pub use crate::paths::{glob, normalize, rel_path};

/// One pipeline file to compile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PipelineFile {
    /// Absolute path.
    pub path: PathBuf,
    /// Path relative to the repository root, `/`-separated (used in reports and `functions` keys).
    pub rel: String,
    /// The KFP pipeline name: the file stem, or with `name_from = "pipeline"` the compiled
    /// `pipelineInfo.name` (the file stem until the file has compiled).
    pub name: String,
    /// The function to compile, when the configuration picks one (`functions`).
    pub function: Option<String>,
}

fn glob_set(patterns: &[String]) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        builder.add(glob(p)?);
    }
    builder.build().context("cannot build the glob set")
}

/// Directory names that are never searched (besides hidden ones): virtualenvs and caches.
const SKIPPED_DIRS: &[&str] = &["venv", "site-packages", "node_modules", "__pycache__"];

fn is_virtualenv_or_skipped(dir: &Path) -> bool {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
    SKIPPED_DIRS.contains(&name)
        || dir.join("pyvenv.cfg").is_file()
        || dir.join("conda-meta").is_dir()
}

/// Whether any directory between `base` and `file` is hidden or a virtualenv.
fn under_skipped_dir(base: &Path, file: &Path) -> bool {
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == base || !d.starts_with(base) {
            break;
        }
        let hidden = d
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden || is_virtualenv_or_skipped(d) {
            return true;
        }
        dir = d.parent();
    }
    false
}

/// Find the pipeline files, sorted by their path relative to the root.
pub fn discover(settings: &CompileSettings) -> Result<Vec<PipelineFile>> {
    let include = glob_set(&settings.include).context("invalid `include` glob")?;
    let exclude = glob_set(&settings.exclude).context("invalid `exclude` glob")?;
    let roots = if settings.paths.is_empty() {
        vec![settings.root.clone()]
    } else {
        settings.paths.clone()
    };
    let mut found: BTreeMap<String, PathBuf> = BTreeMap::new();
    for base in &roots {
        let base = normalize(base);
        if base.is_file() {
            // An explicit file: compiled whatever its name, unless excluded or inside a
            // hidden directory or virtualenv below the root.
            let rel = rel_path(&settings.root, &base);
            if exclude.is_match(&rel) || under_skipped_dir(&settings.root, &base) {
                tracing::debug!("skipping {rel}: excluded");
                continue;
            }
            found.insert(rel, base);
            continue;
        }
        if !base.is_dir() {
            anyhow::bail!("{} is neither a file nor a directory", base.display());
        }
        let mut walker = ignore::WalkBuilder::new(&base);
        walker
            .hidden(true)
            .git_ignore(true)
            .git_exclude(true)
            .git_global(false)
            .ignore(true)
            .parents(true)
            .require_git(false)
            .follow_links(false)
            .max_depth(settings.max_depth)
            .filter_entry(|entry| {
                !(entry.depth() > 0
                    && entry.file_type().is_some_and(|t| t.is_dir())
                    && is_virtualenv_or_skipped(entry.path()))
            });
        for entry in walker.build() {
            let entry = entry.with_context(|| format!("cannot search {}", base.display()))?;
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                continue;
            }
            let path = entry.path();
            let rel = rel_path(&settings.root, path);
            // Globs match below the root; outside it, below the searched directory.
            let matched = if path.starts_with(&settings.root) {
                rel.clone()
            } else {
                rel_path(&base, path)
            };
            if include.is_match(&matched) && !exclude.is_match(&matched) {
                found.insert(rel, path.to_path_buf());
            }
        }
    }
    Ok(found
        .into_iter()
        .map(|(rel, path)| {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let function = settings.functions.get(&rel).cloned();
            PipelineFile {
                path,
                rel,
                name,
                function,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(root: &Path) -> CompileSettings {
        CompileSettings {
            root: root.to_path_buf(),
            paths: vec![],
            include: vec![crate::settings::DEFAULT_INCLUDE.to_string()],
            exclude: vec![],
            max_depth: None,
            name_from: Default::default(),
            functions: Default::default(),
            python: None,
            kfp_version: "2.17.0".into(),
            requirements: vec![],
            python_path: vec![],
            strict: false,
            jobs: 1,
            timeout: std::time::Duration::from_secs(5),
            cache_dir: None,
        }
    }

    #[test]
    fn rel_path_inside_and_outside_the_root() {
        let root = Path::new("/repo");
        assert_eq!(
            rel_path(root, Path::new("/repo/a/b_pipeline.py")),
            "a/b_pipeline.py"
        );
        assert_eq!(
            rel_path(root, Path::new("/elsewhere/x.py")),
            "/elsewhere/x.py"
        );
    }

    fn write(root: &Path, rel: &str) {
        let p = root.join(rel);
        fs_err::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs_err::write(p, "").expect("write");
    }

    fn rels(files: &[PipelineFile]) -> Vec<&str> {
        files.iter().map(|f| f.rel.as_str()).collect()
    }

    #[test]
    fn walks_sorted_and_skips_hidden_venvs_and_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for f in [
            "z_pipeline.py",
            "a/b/deep_pipeline.py",
            "a/helpers.py",
            ".venv/lib/venv_pipeline.py",
            "env/pyvenv.cfg",
            "env/x_pipeline.py",
            ".hidden/h_pipeline.py",
            "ignored/i_pipeline.py",
            "b_pipeline.py",
        ] {
            write(root, f);
        }
        fs_err::write(root.join(".gitignore"), "ignored/\n").expect("write");
        let files = discover(&settings(root)).expect("discover");
        assert_eq!(
            rels(&files),
            ["a/b/deep_pipeline.py", "b_pipeline.py", "z_pipeline.py"]
        );
        assert_eq!(files[0].name, "deep_pipeline");
        assert!(files[0].path.is_absolute());
    }

    #[test]
    fn max_depth_include_exclude_and_explicit_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for f in ["top_pipeline.py", "sub/low_pipeline.py", "sub/other.py"] {
            write(root, f);
        }
        let mut s = settings(root);
        s.max_depth = Some(1);
        assert_eq!(rels(&discover(&s).expect("discover")), ["top_pipeline.py"]);

        let mut s = settings(root);
        s.include = vec!["sub/*.py".into()];
        s.exclude = vec!["**/low_*".into()];
        assert_eq!(rels(&discover(&s).expect("discover")), ["sub/other.py"]);

        let mut s = settings(root);
        s.paths = vec![root.join("sub/other.py"), root.join("sub")];
        s.functions.insert("sub/other.py".into(), "main".into());
        let files = discover(&s).expect("discover");
        assert_eq!(rels(&files), ["sub/low_pipeline.py", "sub/other.py"]);
        assert_eq!(files[1].function.as_deref(), Some("main"));
    }
}
