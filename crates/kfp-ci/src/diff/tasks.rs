//! Tasks matched across two specs (renames included) and what changed in each, the DAG's
//! edges, and the pipeline-level fields.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde_json::Value;

use super::model::{Model, TaskRef, fingerprint, keys};
use super::{Change, ChangeKind, MAX_CODE_LINES, show};

/// Old task path → new task path: same name, or a removed and an added task in the same DAG with
/// the same fingerprint and no other candidate (a rename).
pub(super) fn match_tasks(a: &Model<'_>, b: &Model<'_>) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = a
        .tasks
        .keys()
        .filter(|k| b.tasks.contains_key(*k))
        .map(|k| (k.clone(), k.clone()))
        .collect();
    let removed: Vec<&String> = a
        .tasks
        .keys()
        .filter(|k| !b.tasks.contains_key(*k))
        .collect();
    let added: Vec<&String> = b
        .tasks
        .keys()
        .filter(|k| !a.tasks.contains_key(*k))
        .collect();
    let mut by_print: BTreeMap<String, (Vec<&String>, Vec<&String>)> = BTreeMap::new();
    for r in &removed {
        by_print
            .entry(fingerprint(&a.tasks[*r]))
            .or_default()
            .0
            .push(r);
    }
    for n in &added {
        by_print
            .entry(fingerprint(&b.tasks[*n]))
            .or_default()
            .1
            .push(n);
    }
    for (olds, news) in by_print.values() {
        if let ([o], [n]) = (olds.as_slice(), news.as_slice()) {
            map.insert((*o).clone(), (*n).clone());
        }
    }
    map
}

pub(super) fn tasks(
    a: &Model<'_>,
    b: &Model<'_>,
    renames: &BTreeMap<String, String>,
    out: &mut Vec<Change>,
) {
    let matched_new: BTreeSet<&String> = renames.values().collect();
    for (old_path, _) in a.tasks.iter().filter(|(k, _)| !renames.contains_key(*k)) {
        out.push(Change::new(ChangeKind::TaskRemoved, old_path));
    }
    for (new_path, t) in b.tasks.iter().filter(|(k, _)| !matched_new.contains(k)) {
        let image = b.container(t).and_then(|c| c.get("image"));
        out.push(Change::new(ChangeKind::TaskAdded, new_path).values(None, image));
    }
    // In new-side order, so a task's changes read together.
    let mut pairs: Vec<(&String, &String)> = renames.iter().map(|(o, n)| (n, o)).collect();
    pairs.sort();
    for (new_path, old_path) in pairs {
        let (x, y) = (&a.tasks[old_path], &b.tasks[new_path]);
        if old_path != new_path {
            out.push(
                Change::new(ChangeKind::TaskRenamed, new_path)
                    .values(Some(&Value::String(old_path.clone())), None),
            );
        }
        task_changes(new_path, old_path, a, x, b, y, renames, out);
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn task_changes(
    subject: &str,
    old_path: &str,
    a: &Model<'_>,
    x: &TaskRef<'_>,
    b: &Model<'_>,
    y: &TaskRef<'_>,
    renames: &BTreeMap<String, String>,
    out: &mut Vec<Change>,
) {
    let (cx, cy) = (a.container(x), b.container(y));
    let get = |c: Option<&Value>, k: &str| c.and_then(|c| c.get(k)).cloned();
    if get(cx, "image") != get(cy, "image") {
        out.push(
            Change::new(ChangeKind::Image, subject)
                .values(get(cx, "image").as_ref(), get(cy, "image").as_ref()),
        );
    }
    let rename_old = x.executor_label.zip(y.executor_label);
    if let Some(change) = command_change(subject, get(cx, "command"), get(cy, "command"), x, y) {
        out.push(change);
    }
    let (args_x, args_y) = (get(cx, "args"), get(cy, "args"));
    if normalise_renamed(args_x.as_ref(), rename_old) != args_y {
        out.push(Change::new(ChangeKind::Args, subject).values(args_x.as_ref(), args_y.as_ref()));
    }
    // Resources: KFP writes both `cpuLimit: 2.0` and `resourceCpuLimit: '2'`; show the latter.
    let (rx, ry) = (get(cx, "resources"), get(cy, "resources"));
    if rx != ry {
        let (rx, ry) = (rx.unwrap_or(Value::Null), ry.unwrap_or(Value::Null));
        let mut paths = Vec::new();
        leaf_diff(&rx, &ry, "", &mut paths);
        let all: BTreeSet<String> = paths.iter().map(|(p, ..)| p.clone()).collect();
        for (path, o, n) in paths {
            if all.contains(&resource_twin(&path)) {
                continue;
            }
            out.push(
                Change::new(ChangeKind::Resources, subject)
                    .field(path)
                    .values(o.as_ref(), n.as_ref()),
            );
        }
    }
    for key in keys(cx.unwrap_or(&Value::Null), cy.unwrap_or(&Value::Null)) {
        if ["image", "command", "args", "resources"].contains(&key.as_str()) {
            continue;
        }
        let (o, n) = (get(cx, key), get(cy, key));
        if o != n {
            let mut paths = Vec::new();
            leaf_diff(
                o.as_ref().unwrap_or(&Value::Null),
                n.as_ref().unwrap_or(&Value::Null),
                key,
                &mut paths,
            );
            for (path, o, n) in paths {
                out.push(
                    Change::new(ChangeKind::Container, subject)
                        .field(path)
                        .values(o.as_ref(), n.as_ref()),
                );
            }
        }
    }
    let caching = |t: &TaskRef<'_>| {
        Value::Bool(
            t.task
                .pointer("/cachingOptions/enableCache")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        )
    };
    if caching(x) != caching(y) {
        out.push(
            Change::new(ChangeKind::Caching, subject).values(Some(&caching(x)), Some(&caching(y))),
        );
    }
    let (retry_x, retry_y) = (retry(x.task), retry(y.task));
    if retry_x != retry_y {
        out.push(Change::new(ChangeKind::Retry, subject).values(Some(&retry_x), Some(&retry_y)));
    }
    let (px, py) = (a.platform(x), b.platform(y));
    if px != py {
        let mut paths = Vec::new();
        leaf_diff(
            px.unwrap_or(&Value::Null),
            py.unwrap_or(&Value::Null),
            "",
            &mut paths,
        );
        for (path, o, n) in paths {
            out.push(
                Change::new(ChangeKind::Platform, subject)
                    .field(path)
                    .values(o.as_ref(), n.as_ref()),
            );
        }
    }
    // Everything else on the task (inputs, conditions, iterators), producer renames mapped.
    let mut tx = x.task.clone();
    let mut ty = y.task.clone();
    for t in [&mut tx, &mut ty] {
        if let Some(map) = t.as_object_mut() {
            for k in [
                "cachingOptions",
                "retryPolicy",
                "dependentTasks",
                "componentRef",
                "taskInfo",
            ] {
                map.remove(k);
            }
        }
    }
    rename_producers(&mut tx, &x.parent, renames);
    let mut paths = Vec::new();
    leaf_diff(&tx, &ty, "", &mut paths);
    for (path, o, n) in paths {
        out.push(
            Change::new(ChangeKind::Task, subject)
                .field(path)
                .values(o.as_ref(), n.as_ref()),
        );
    }
    let display = |t: &TaskRef<'_>| t.task.pointer("/taskInfo/name").cloned();
    let (o, n) = (display(x), display(y));
    // A rename moves the display name along with the task name: only a different one is news.
    let follows = |d: &Option<Value>, path: &str| {
        d.as_ref().and_then(Value::as_str) == Some(last_segment(path))
    };
    if o != n && !(follows(&o, old_path) && follows(&n, subject)) {
        out.push(
            Change::new(ChangeKind::Task, subject)
                .field("display name")
                .values(o.as_ref(), n.as_ref()),
        );
    }
    // The component's interface (its inputs' and outputs' types).
    for key in ["inputDefinitions", "outputDefinitions"] {
        let (o, n) = (
            x.component.and_then(|c| c.get(key)),
            y.component.and_then(|c| c.get(key)),
        );
        if o != n {
            let mut paths = Vec::new();
            leaf_diff(
                o.unwrap_or(&Value::Null),
                n.unwrap_or(&Value::Null),
                key,
                &mut paths,
            );
            for (path, o, n) in paths {
                out.push(
                    Change::new(ChangeKind::Task, subject)
                        .field(path)
                        .values(o.as_ref(), n.as_ref()),
                );
            }
        }
    }
}

pub(super) fn last_segment(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `cpuLimit` ↔ `resourceCpuLimit`: the numeric twin of a string resource field.
pub(super) fn resource_twin(path: &str) -> String {
    let mut chars = path.chars();
    match chars.next() {
        Some(first) => format!("resource{}{}", first.to_ascii_uppercase(), chars.as_str()),
        None => String::new(),
    }
}

/// A lightweight component's args name its function; after a rename, that is not news.
pub(super) fn normalise_renamed(
    args: Option<&Value>,
    labels: Option<(&str, &str)>,
) -> Option<Value> {
    let (Some(Value::Array(items)), Some((old, new))) = (args, labels) else {
        return args.cloned();
    };
    let (old, new) = (
        old.trim_start_matches("exec-").replace('-', "_"),
        new.trim_start_matches("exec-").replace('-', "_"),
    );
    Some(Value::Array(
        items
            .iter()
            .map(|v| match v {
                Value::String(s) if *s == old => Value::String(new.clone()),
                other => other.clone(),
            })
            .collect(),
    ))
}

pub(super) fn command_change(
    subject: &str,
    old: Option<Value>,
    new: Option<Value>,
    x: &TaskRef<'_>,
    y: &TaskRef<'_>,
) -> Option<Change> {
    if old == new {
        return None;
    }
    let text = |v: &Option<Value>| -> Vec<String> {
        match v {
            Some(Value::Array(items)) => items.iter().map(show).collect(),
            Some(other) => vec![show(other)],
            None => Vec::new(),
        }
    };
    let (a, b) = (text(&old).join("\n"), text(&new).join("\n"));
    // A rename alone changes the function's name in the embedded source: not a code change.
    if let (Some(xo), Some(yn)) = (x.executor_label, y.executor_label) {
        let (fo, fnew) = (
            xo.trim_start_matches("exec-").replace('-', "_"),
            yn.trim_start_matches("exec-").replace('-', "_"),
        );
        if fo != fnew && a.replace(&format!("def {fo}("), &format!("def {fnew}(")) == b {
            return None;
        }
    }
    let mut lines = Vec::new();
    let mut more = 0;
    let d = similar::TextDiff::from_lines(&a, &b);
    for change in d.iter_all_changes() {
        let sign = match change.tag() {
            similar::ChangeTag::Delete => '-',
            similar::ChangeTag::Insert => '+',
            similar::ChangeTag::Equal => continue,
        };
        let line = change.value().trim_end_matches('\n');
        if lines.len() < MAX_CODE_LINES {
            lines.push(format!("{sign} {line}"));
        } else {
            more += 1;
        }
    }
    if more > 0 {
        lines.push(format!("… {more} more changed line(s)"));
    }
    let mut change = Change::new(ChangeKind::Command, subject);
    change.lines = lines;
    Some(change)
}

/// A task's retry policy in words (`none`, `3 retries, backoff 0s ×2 up to 3600s`).
pub(super) fn retry(task: &Value) -> Value {
    let Some(p) = task.get("retryPolicy").filter(|p| !p.is_null()) else {
        return Value::String("none".into());
    };
    let n = p
        .get("maxRetryCount")
        .map(show)
        .unwrap_or_else(|| "0".into());
    let mut s = format!("{n} retries");
    if let Some(d) = p.get("backoffDuration") {
        let _ = write!(s, ", backoff {}", show(d));
    }
    if let Some(f) = p.get("backoffFactor") {
        let _ = write!(s, " ×{}", show(f));
    }
    if let Some(m) = p.get("backoffMaxDuration") {
        let _ = write!(s, " up to {}", show(m));
    }
    Value::String(s)
}

pub(super) fn rename_producers(v: &mut Value, _parent: &str, renames: &BTreeMap<String, String>) {
    match v {
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                if k == "producerTask"
                    && let Value::String(name) = item
                {
                    // Producers are siblings: compare by last segment.
                    if let Some(new) = renames
                        .iter()
                        .find(|(o, _)| last_segment(o) == name.as_str())
                        .map(|(_, n)| last_segment(n).to_string())
                    {
                        *name = new;
                    }
                } else {
                    rename_producers(item, _parent, renames);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                rename_producers(item, _parent, renames);
            }
        }
        _ => {}
    }
}

/// `dependentTasks` edges, `producer -> consumer`, with old names mapped through renames.
pub(super) fn edges(
    a: &Model<'_>,
    b: &Model<'_>,
    renames: &BTreeMap<String, String>,
    out: &mut Vec<Change>,
) {
    let edge_set = |m: &Model<'_>, map: Option<&BTreeMap<String, String>>| {
        let mut set = BTreeSet::new();
        for (path, t) in &m.tasks {
            for dep in t
                .task
                .get("dependentTasks")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                let from = if t.parent.is_empty() {
                    dep.to_string()
                } else {
                    format!("{}/{dep}", t.parent)
                };
                let rename = |p: String| match map {
                    Some(m) => m.get(&p).cloned().unwrap_or(p),
                    None => p,
                };
                set.insert((rename(from), rename(path.clone())));
            }
        }
        set
    };
    let (ea, eb) = (edge_set(a, Some(renames)), edge_set(b, None));
    for (from, to) in ea.difference(&eb) {
        out.push(Change::new(
            ChangeKind::EdgeRemoved,
            format!("{from} -> {to}"),
        ));
    }
    for (from, to) in eb.difference(&ea) {
        out.push(Change::new(
            ChangeKind::EdgeAdded,
            format!("{from} -> {to}"),
        ));
    }
}

/// Pipeline-level fields outside components, tasks and executors (name, description, SDK,
/// pipeline root, outputs), plus platform settings not tied to a task.
pub(super) fn pipeline_level(old: &Value, new: &Value, out: &mut Vec<Change>) {
    let pick = |v: &Value| -> Value {
        let p = v.get("pipeline_spec").unwrap_or(v);
        let mut map = p.as_object().cloned().unwrap_or_default();
        for k in ["components", "deploymentSpec", "root"] {
            map.remove(k);
        }
        if let Some(outputs) = p.pointer("/root/outputDefinitions") {
            map.insert("root.outputDefinitions".into(), outputs.clone());
        }
        let mut platform = v.get("platform_spec").cloned().unwrap_or(Value::Null);
        if let Some(executors) = platform.pointer_mut("/platforms/kubernetes/deploymentSpec")
            && let Some(m) = executors.as_object_mut()
        {
            m.remove("executors");
        }
        if platform != Value::Null {
            map.insert("platform".into(), platform);
        }
        Value::Object(map)
    };
    let mut paths = Vec::new();
    leaf_diff(&pick(old), &pick(new), "", &mut paths);
    for (path, o, n) in paths {
        // An empty platform skeleton appearing or going is not a change anyone made.
        if path.starts_with("platform") && is_empty_tree(o.as_ref()) && is_empty_tree(n.as_ref()) {
            continue;
        }
        out.push(Change::new(ChangeKind::Pipeline, path).values(o.as_ref(), n.as_ref()));
    }
}

pub(super) fn is_empty_tree(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.values().all(|v| is_empty_tree(Some(v))),
        _ => false,
    }
}

/// Leaf paths where `a` and `b` differ (objects recursed, arrays and scalars compared whole).
pub(super) fn leaf_diff(
    a: &Value,
    b: &Value,
    prefix: &str,
    out: &mut Vec<(String, Option<Value>, Option<Value>)>,
) {
    if a == b {
        return;
    }
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()).collect::<BTreeSet<_>>() {
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => leaf_diff(va, vb, &join(k), out),
                    (va, vb) => out.push((join(k), va.cloned(), vb.cloned())),
                }
            }
        }
        (Value::Null, Value::Object(y)) => {
            for (k, v) in y {
                out.push((join(k), None, Some(v.clone())));
            }
        }
        (Value::Object(x), Value::Null) => {
            for (k, v) in x {
                out.push((join(k), Some(v.clone()), None));
            }
        }
        _ => out.push((
            if prefix.is_empty() {
                "(whole value)".into()
            } else {
                prefix.to_string()
            },
            (!a.is_null()).then(|| a.clone()),
            (!b.is_null()).then(|| b.clone()),
        )),
    }
}
