//! Path rules shared by settings and discovery: globs as discovery matches them, lexical
//! normalisation, paths relative to the repository root. No I/O.

use std::path::{Path, PathBuf};

use anyhow::Result;
use globset::Glob;

/// A glob as discovery uses it: `*` and `?` stay within one path component.
pub fn glob(pattern: &str) -> Result<Glob> {
    globset::GlobBuilder::new(pattern.trim_start_matches("./"))
        .literal_separator(true)
        .build()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// `path` relative to `root`, `/`-separated; paths outside the root stay absolute.
pub fn rel_path(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let mut out = String::new();
    for c in rel.components() {
        // The root component (`/`) already ends in a separator: no `//tmp/…`.
        if !out.is_empty() && !out.ends_with('/') {
            out.push('/');
        }
        out.push_str(&c.as_os_str().to_string_lossy());
    }
    out
}

/// Remove `.` and `..` components without touching the file system (symlinks stay as given).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}
