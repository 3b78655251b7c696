//! The documentation users get: every relative link resolves inside the repository, and neither
//! docs nor code comments point at notes that are not in it.

use std::path::{Path, PathBuf};

use crate::common::workspace_root;

fn files_below(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" && name != "snapshots" {
                files_below(&path, exts, out);
            }
        } else if exts.iter().any(|e| name.ends_with(e)) {
            out.push(path);
        }
    }
}

/// `](target)` links of a markdown text, without `#fragment`; external and in-page ones left out.
fn relative_links(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("](") {
        let after = &rest[start + 2..];
        let Some(end) = after.find(')') else { break };
        let target = after[..end].split('#').next().unwrap_or("").trim();
        if !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
            links.push(target.to_string());
        }
        rest = &after[end + 1..];
    }
    links
}

/// Item 17: docs/serve.md linked a notes file users do not have.
#[test]
fn docs_link_only_to_files_in_the_repository() {
    let root = workspace_root();
    let mut docs = vec![root.join("README.md")];
    for dir in ["docs", "bench", "crates", "examples"] {
        files_below(&root.join(dir), &[".md"], &mut docs);
    }
    let mut broken = Vec::new();
    for doc in &docs {
        let text = std::fs::read_to_string(doc).expect("read");
        for link in relative_links(&text) {
            let target = doc.parent().expect("dir").join(&link);
            let inside = target
                .canonicalize()
                .is_ok_and(|t| t.starts_with(&root) && t.exists());
            if !inside {
                broken.push(format!("{}: {link}", doc.display()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "links to nothing in the repository: {broken:#?}"
    );

    // Nor in words: docs and code comments never send the reader to notes outside the repository.
    let mut sources = docs.clone();
    files_below(&root.join("crates"), &[".rs", ".py"], &mut sources);
    files_below(&root.join("bench"), &[".py", ".sh"], &mut sources);
    let mut mentions = Vec::new();
    for file in &sources {
        if file.ends_with("tests/it/docs.rs") {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for needle in ["../shared", "/work/shared", "shared/notes", "API notes"] {
            if text.contains(needle) {
                mentions.push(format!("{}: {needle}", file.display()));
            }
        }
    }
    assert!(
        mentions.is_empty(),
        "references outside the repository: {mentions:#?}"
    );
}
