//! No import cycle between the crate's top-level modules: a module may use the ones below it,
//! never one that uses it back (directly or through others). The graph is read from the source
//! files: every `crate::NAME` path (`use crate::{a, b::c}` included) and `super::NAME` reaching
//! the crate root, outside comments and `#[cfg(test)]` modules. Run it alone with
//! `cargo test -p kfp-ci module_graph`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Edges known to close a cycle, each with the change that removes it. Remove an entry when
/// its cycle is gone; never add one for new code.
#[rustfmt::skip]
const KNOWN: &[(&str, &str, &str)] = &[
    ("target", "client", "issue 10 wire: DEFAULT_REQUEST_TIMEOUT out of client"),
    ("compat", "apply", "version naming rules out of apply"),
    ("ci", "report", "issue 10 stages: publishing moves under report/"),
    ("ci", "smoke", "issue 10 stages: ci/outputs and ci/summary move under report/"),
    // The report holds the schedule and smoke rows, while schedules, smoke and plan use the
    // report's record types (Action, Status, PipelineReport): those types need a module of
    // their own below all three (issue 10 stages: one record per pipeline).
    ("report", "schedules", "the record types out of report"),
    ("report", "smoke", "the record types out of report"),
];

/// Top-level module → the top-level modules it uses.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    collect(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let rel = file.strip_prefix(src).expect("below src");
        let mut path: Vec<String> = rel
            .iter()
            .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
            .collect();
        if path.last().is_some_and(|l| l == "mod") {
            path.pop();
        }
        let Some(top) = path.first().cloned() else {
            continue;
        };
        // This file only reads the others.
        if top == "lib" || top == "main" || top == "module_graph" {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("read a source file");
        let uses = graph.entry(top.clone()).or_default();
        for name in used_modules(&code_of(&text), &path) {
            if name != top {
                uses.insert(name);
            }
        }
    }
    let known: BTreeSet<String> = graph.keys().cloned().collect();
    for uses in graph.values_mut() {
        uses.retain(|u| known.contains(u));
    }
    graph
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read src")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comment lines and without everything from a `#[cfg(test)]` module on
/// (test modules close their file by convention).
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod "))
        {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Top-level module names the code refers to. `module` is the file's module path
/// (`["schedules", "view"]`), for `super::`.
fn used_modules(code: &str, module: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if boundary && rest.starts_with("crate::") {
            i += "crate::".len();
            i = names_after(code, i, &mut out);
            continue;
        }
        if boundary && rest.starts_with("super::") {
            // `super::` k times from `module` reaches the crate root when k == its depth.
            let mut k = 0;
            let mut j = i;
            while code[j..].starts_with("super::") {
                k += 1;
                j += "super::".len();
            }
            if k == module.len() {
                i = names_after(code, j, &mut out);
            } else {
                i = j;
            }
            continue;
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    out
}

/// The first path segment(s) at `i`: `name` or the top-level names of `{a, b::c, d::{e}}`.
fn names_after(code: &str, i: usize, out: &mut BTreeSet<String>) -> usize {
    let ident = |at: usize| -> (String, usize) {
        let end = code[at..]
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map_or(code.len(), |n| at + n);
        (code[at..end].to_string(), end)
    };
    if !code[i..].starts_with('{') {
        let (name, end) = ident(i);
        if !name.is_empty() {
            out.insert(name);
        }
        return end;
    }
    // A group: names at depth 1 that start an item (after `{` or `,`).
    let mut depth = 0;
    let mut expect_name = false;
    let mut j = i;
    while j < code.len() {
        let c = code[j..].chars().next().unwrap_or(' ');
        match c {
            '{' => {
                depth += 1;
                expect_name = depth == 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            ',' => expect_name = depth == 1,
            c if c.is_whitespace() => {}
            _ => {
                if expect_name {
                    let (name, end) = ident(j);
                    if !name.is_empty() && name != "self" {
                        out.insert(name);
                    }
                    expect_name = false;
                    j = end.max(j + 1);
                    continue;
                }
            }
        }
        j += c.len_utf8();
    }
    j
}

/// Every cycle (strongly connected component of two or more modules), sorted.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Kosaraju: finish order on the graph, then components on the reversed graph.
    fn visit<'a>(
        n: &'a str,
        g: &'a BTreeMap<String, BTreeSet<String>>,
        seen: &mut BTreeSet<&'a str>,
        order: &mut Vec<&'a str>,
    ) {
        if !seen.insert(n) {
            return;
        }
        for m in g.get(n).into_iter().flatten() {
            visit(m, g, seen, order);
        }
        order.push(n);
    }
    let mut reversed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, tos) in graph {
        reversed.entry(from.clone()).or_default();
        for to in tos {
            reversed.entry(to.clone()).or_default().insert(from.clone());
        }
    }
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    for n in graph.keys() {
        visit(n, graph, &mut seen, &mut order);
    }
    let mut assigned = BTreeSet::new();
    let mut out = Vec::new();
    for n in order.into_iter().rev() {
        let mut component = Vec::new();
        visit(n, &reversed, &mut assigned, &mut component);
        if component.len() > 1 {
            let mut c: Vec<String> = component.into_iter().map(String::from).collect();
            c.sort();
            out.push(c);
        }
    }
    out.sort();
    out
}

fn describe(graph: &BTreeMap<String, BTreeSet<String>>, cycle: &[String]) -> String {
    let members: BTreeSet<&String> = cycle.iter().collect();
    let mut edges = Vec::new();
    for from in cycle {
        for to in graph.get(from).into_iter().flatten() {
            if members.contains(to) {
                edges.push(format!("{from} -> {to}"));
            }
        }
    }
    format!("{{{}}}: {}", cycle.join(", "), edges.join(", "))
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = graph(&src);
    assert!(
        graph.contains_key("discover") && graph.contains_key("settings"),
        "the module graph was not read: {graph:?}"
    );
    for (from, to, _) in KNOWN {
        if let Some(uses) = graph.get_mut(*from) {
            uses.remove(*to);
        }
    }
    let left = cycles(&graph);
    assert!(
        left.is_empty(),
        "import cycles between top-level modules (a module must not use one that uses it back):\n{}",
        left.iter()
            .map(|c| describe(&graph, c))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_reader_sees_grouped_and_super_paths_and_skips_comments_and_tests() {
    let code = code_of(
        "use crate::{settings::Config, discover, paths::{glob, normalize}};\n\
         // crate::commented\n\
         fn f() { super::redact::x(); crate::ci::Platform::Local; }\n\
         #[cfg(test)]\nmod tests { use crate::in_tests; }\n",
    );
    let top = used_modules(&code, &["smoke".to_string()]);
    let want: BTreeSet<String> = ["ci", "discover", "paths", "redact", "settings"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(top, want);
    // From a submodule, `super::` stays inside its module.
    let nested = used_modules("super::view::marker", &["schedules".into(), "view".into()]);
    assert!(nested.is_empty(), "{nested:?}");

    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    g.entry("c".into()).or_default().insert("a".into());
    g.entry("d".into()).or_default().insert("a".into());
    assert_eq!(cycles(&g), vec![vec!["a", "b", "c"]]);
    if let Some(uses) = g.get_mut("c") {
        uses.remove("a");
    }
    assert!(cycles(&g).is_empty());
}
