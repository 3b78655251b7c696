//! What changed between two compiled specs, in the terms people review: tasks added, removed and
//! renamed, parameter defaults, images, commands and arguments, resources, caching, retry, the
//! kubernetes platform settings, and the DAG's edges. Pure: no I/O.
//!
//! Both sides may be a local spec's server form or a server's stored `pipeline_spec`; everything
//! is read through the canonical form (numbers as doubles, keys sorted), so key order, `1` vs
//! `1.0` and other noise never show as a change.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde::Serialize;
use serde_json::{Map, Value};

/// Most lines of a code change shown per task (the rest is counted).
const MAX_CODE_LINES: usize = 12;
/// Deepest nested DAG followed.
const MAX_DEPTH: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    ParameterAdded,
    ParameterRemoved,
    ParameterDefault,
    Parameter,
    TaskAdded,
    TaskRemoved,
    TaskRenamed,
    Image,
    Command,
    Args,
    Resources,
    Container,
    Caching,
    Retry,
    Platform,
    Task,
    EdgeAdded,
    EdgeRemoved,
    Pipeline,
}

/// One readable change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub kind: ChangeKind,
    /// The parameter, the task (`parent/child` in nested DAGs), the edge (`a -> b`), or a path.
    pub subject: String,
    /// What of the subject changed (`cpuLimit`, `nodeSelector.labels.pool`), when not all of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
    /// Line diff of changed code or long text (`-`/`+` lines), for commands.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
}

impl Change {
    fn new(kind: ChangeKind, subject: impl Into<String>) -> Change {
        Change {
            kind,
            subject: subject.into(),
            field: None,
            old: None,
            new: None,
            lines: Vec::new(),
        }
    }

    fn field(mut self, field: impl Into<String>) -> Change {
        self.field = Some(field.into());
        self
    }

    fn values(mut self, old: Option<&Value>, new: Option<&Value>) -> Change {
        self.old = old.cloned();
        self.new = new.cloned();
        self
    }

    /// One line: `parameter promote_threshold default: 0.92 → 0.95`.
    pub fn summary(&self) -> String {
        let subject = &self.subject;
        let field = self
            .field
            .as_deref()
            .map(|f| format!(" {f}"))
            .unwrap_or_default();
        let arrow = || format!("{} → {}", show_opt(&self.old), show_opt(&self.new));
        match self.kind {
            ChangeKind::ParameterAdded => {
                format!("parameter {subject} added{}", default_of(&self.new))
            }
            ChangeKind::ParameterRemoved => format!("parameter {subject} removed"),
            ChangeKind::ParameterDefault => format!("parameter {subject}: {}", arrow()),
            ChangeKind::Parameter => format!("parameter {subject}{field}: {}", arrow()),
            ChangeKind::TaskAdded => format!("task {subject} added{}", image_of(&self.new)),
            ChangeKind::TaskRemoved => format!("task {subject} removed"),
            ChangeKind::TaskRenamed => format!("task {} renamed to {subject}", show_opt(&self.old)),
            ChangeKind::Image => format!("task {subject} image: {}", arrow()),
            ChangeKind::Command => format!("task {subject} command changed"),
            ChangeKind::Args => format!("task {subject} args: {}", arrow()),
            ChangeKind::Resources => format!("task {subject} resources{field}: {}", arrow()),
            ChangeKind::Container => format!("task {subject} container{field}: {}", arrow()),
            ChangeKind::Caching => format!("task {subject} caching: {}", arrow()),
            ChangeKind::Retry => format!("task {subject} retry: {}", arrow()),
            ChangeKind::Platform => format!("task {subject} kubernetes{field}: {}", arrow()),
            ChangeKind::Task => format!("task {subject}{field}: {}", arrow()),
            ChangeKind::EdgeAdded => format!("edge {subject} added"),
            ChangeKind::EdgeRemoved => format!("edge {subject} removed"),
            ChangeKind::Pipeline => format!("{subject}: {}", arrow()),
        }
    }

    /// The task this change belongs to on the new side, if any (for highlighting the DAG).
    pub fn task(&self) -> Option<&str> {
        use ChangeKind::*;
        match self.kind {
            TaskAdded | TaskRenamed | Image | Command | Args | Resources | Container | Caching
            | Retry | Platform | Task => Some(&self.subject),
            EdgeAdded => self.subject.split(" -> ").nth(1),
            _ => None,
        }
    }
}

fn default_of(v: &Option<Value>) -> String {
    match v {
        Some(v) => format!(" (default {})", show(v)),
        None => String::new(),
    }
}

fn image_of(v: &Option<Value>) -> String {
    match v {
        Some(Value::String(image)) => format!(" (image {image})"),
        _ => String::new(),
    }
}

fn show_opt(v: &Option<Value>) -> String {
    v.as_ref().map_or_else(|| "(none)".to_string(), show)
}

/// A value for people: numbers without a needless `.0`, strings unquoted unless empty.
pub fn show(v: &Value) -> String {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        Value::String(s) if s.is_empty() => "\"\"".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "on" } else { "off" }.into(),
        other => other.to_string(),
    }
}

/// Every change from `old` to `new`, in a stable order: parameters, tasks, edges, the rest.
pub fn diff(old: &Value, new: &Value) -> Vec<Change> {
    let old = numbers(old);
    let new = numbers(new);
    if old == new {
        return Vec::new();
    }
    let a = Model::read(&old);
    let b = Model::read(&new);
    let mut out = Vec::new();
    parameters(&a, &b, &mut out);
    let renames = match_tasks(&a, &b);
    tasks(&a, &b, &renames, &mut out);
    edges(&a, &b, &renames, &mut out);
    pipeline_level(&old, &new, &mut out);
    if out.is_empty() {
        // Something outside every category changed: name the paths, never say "no change".
        let mut paths = Vec::new();
        leaf_diff(&old, &new, "", &mut paths);
        for (path, o, n) in paths {
            out.push(Change::new(ChangeKind::Pipeline, path).values(o.as_ref(), n.as_ref()));
        }
    }
    out
}

fn numbers(v: &Value) -> Value {
    kfp_api::spec::numbers_as_doubles(v.clone())
}

/// The parts of a spec the diff reads.
struct Model<'a> {
    pipeline: &'a Value,
    platform: Option<&'a Value>,
    /// Task path → task, in every DAG (nested ones as `parent/child`).
    tasks: BTreeMap<String, TaskRef<'a>>,
}

struct TaskRef<'a> {
    task: &'a Value,
    /// The DAG it sits in (`""` for root), for edges and rename matching.
    parent: String,
    component: Option<&'a Value>,
    executor_label: Option<&'a str>,
}

impl<'a> Model<'a> {
    fn read(spec: &'a Value) -> Model<'a> {
        let pipeline = spec.get("pipeline_spec").unwrap_or(spec);
        let platform = spec
            .get("platform_spec")
            .and_then(|p| p.pointer("/platforms/kubernetes/deploymentSpec/executors"));
        let mut model = Model {
            pipeline,
            platform,
            tasks: BTreeMap::new(),
        };
        if let Some(tasks) = pipeline
            .pointer("/root/dag/tasks")
            .and_then(Value::as_object)
        {
            model.walk(tasks, "", 0);
        }
        model
    }

    fn walk(&mut self, tasks: &'a Map<String, Value>, parent: &str, depth: usize) {
        for (name, task) in tasks {
            let path = if parent.is_empty() {
                name.clone()
            } else {
                format!("{parent}/{name}")
            };
            let component = task
                .pointer("/componentRef/name")
                .and_then(Value::as_str)
                .and_then(|c| self.pipeline.get("components")?.get(c));
            let executor_label = component
                .and_then(|c| c.get("executorLabel"))
                .and_then(Value::as_str);
            self.tasks.insert(
                path.clone(),
                TaskRef {
                    task,
                    parent: parent.to_string(),
                    component,
                    executor_label,
                },
            );
            if let Some(inner) = component
                .and_then(|c| c.pointer("/dag/tasks"))
                .and_then(Value::as_object)
                && depth < MAX_DEPTH
            {
                self.walk(inner, &path, depth + 1);
            }
        }
    }

    fn container(&self, t: &TaskRef<'_>) -> Option<&'a Value> {
        let label = t.executor_label?;
        self.pipeline
            .get("deploymentSpec")?
            .get("executors")?
            .get(label)?
            .get("container")
    }

    fn platform(&self, t: &TaskRef<'_>) -> Option<&'a Value> {
        self.platform?.get(t.executor_label?)
    }
}

fn parameters(a: &Model<'_>, b: &Model<'_>, out: &mut Vec<Change>) {
    let params = |m: &Model<'_>| {
        m.pipeline
            .pointer("/root/inputDefinitions/parameters")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (pa, pb) = (params(a), params(b));
    for name in pa.keys().chain(pb.keys()).collect::<BTreeSet<_>>() {
        match (pa.get(name), pb.get(name)) {
            (Some(_), None) => out.push(Change::new(ChangeKind::ParameterRemoved, name)),
            (None, Some(p)) => out.push(
                Change::new(ChangeKind::ParameterAdded, name).values(None, p.get("defaultValue")),
            ),
            (Some(x), Some(y)) if x != y => {
                if x.get("defaultValue") != y.get("defaultValue") {
                    out.push(
                        Change::new(ChangeKind::ParameterDefault, name)
                            .values(x.get("defaultValue"), y.get("defaultValue")),
                    );
                }
                for key in keys(x, y) {
                    if key != "defaultValue" && x.get(key) != y.get(key) {
                        out.push(
                            Change::new(ChangeKind::Parameter, name)
                                .field(key)
                                .values(x.get(key), y.get(key)),
                        );
                    }
                }
            }
            _ => {}
        }
    }
}

fn keys<'v>(x: &'v Value, y: &'v Value) -> BTreeSet<&'v String> {
    x.as_object()
        .into_iter()
        .chain(y.as_object())
        .flat_map(|m| m.keys())
        .collect()
}

/// A task's identity apart from its name: its component's interface and the inputs it takes
/// (producer task names left out, since those may be renamed too).
fn fingerprint(t: &TaskRef<'_>) -> String {
    let mut inputs = t.task.get("inputs").cloned().unwrap_or(Value::Null);
    strip_producers(&mut inputs);
    let interface = t
        .component
        .map(|c| (c.get("inputDefinitions"), c.get("outputDefinitions")));
    format!("{}|{inputs}|{interface:?}", t.parent)
}

fn strip_producers(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("producerTask");
            map.values_mut().for_each(strip_producers);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_producers),
        _ => {}
    }
}

/// Old task path → new task path: same name, or a removed and an added task in the same DAG with
/// the same fingerprint and no other candidate (a rename).
fn match_tasks(a: &Model<'_>, b: &Model<'_>) -> BTreeMap<String, String> {
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

fn tasks(a: &Model<'_>, b: &Model<'_>, renames: &BTreeMap<String, String>, out: &mut Vec<Change>) {
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
fn task_changes(
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

fn last_segment(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `cpuLimit` ↔ `resourceCpuLimit`: the numeric twin of a string resource field.
fn resource_twin(path: &str) -> String {
    let mut chars = path.chars();
    match chars.next() {
        Some(first) => format!("resource{}{}", first.to_ascii_uppercase(), chars.as_str()),
        None => String::new(),
    }
}

/// A lightweight component's args name its function; after a rename, that is not news.
fn normalise_renamed(args: Option<&Value>, labels: Option<(&str, &str)>) -> Option<Value> {
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

fn command_change(
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
fn retry(task: &Value) -> Value {
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

fn rename_producers(v: &mut Value, _parent: &str, renames: &BTreeMap<String, String>) {
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
fn edges(a: &Model<'_>, b: &Model<'_>, renames: &BTreeMap<String, String>, out: &mut Vec<Change>) {
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
fn pipeline_level(old: &Value, new: &Value, out: &mut Vec<Change>) {
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

fn is_empty_tree(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.values().all(|v| is_empty_tree(Some(v))),
        _ => false,
    }
}

/// Leaf paths where `a` and `b` differ (objects recursed, arrays and scalars compared whole).
fn leaf_diff(
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

/// Tasks (new side) to highlight in a DAG drawing: added, renamed or changed ones.
pub fn changed_tasks(changes: &[Change]) -> BTreeSet<String> {
    changes
        .iter()
        .filter_map(Change::task)
        .map(str::to_string)
        .collect()
}

/// Plain text, one change a line, with code lines indented below.
pub fn render_text(changes: &[Change], indent: &str) -> String {
    let mut out = String::new();
    for c in changes {
        let sign = match c.kind {
            ChangeKind::ParameterAdded | ChangeKind::TaskAdded | ChangeKind::EdgeAdded => '+',
            ChangeKind::ParameterRemoved | ChangeKind::TaskRemoved | ChangeKind::EdgeRemoved => '-',
            _ => '~',
        };
        let _ = writeln!(out, "{indent}{sign} {}", c.summary());
        for line in &c.lines {
            let _ = writeln!(out, "{indent}    {line}");
        }
    }
    out
}

/// Markdown bullets; code changes as a `diff` block.
pub fn render_markdown(changes: &[Change]) -> String {
    let mut out = String::new();
    for c in changes {
        let _ = writeln!(out, "- {}", md_escape(&c.summary()));
        if !c.lines.is_empty() {
            out.push_str("  ```diff\n");
            for line in &c.lines {
                let _ = writeln!(out, "  {}", line.replace("```", "`` `"));
            }
            out.push_str("  ```\n");
        }
    }
    out
}

/// Markdown special characters in free text (task names, values) escaped.
pub fn md_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kfp_api::spec::{parse_spec, server_form};

    /// Compiled by kfp 2.17.0 from tests/fixtures/diff/review_demo_{a,b}.py.
    const A: &str = include_str!("../tests/fixtures/diff/review_demo_a.yaml");
    const B: &str = include_str!("../tests/fixtures/diff/review_demo_b.yaml");

    fn spec(yaml: &str) -> Value {
        server_form(&parse_spec(yaml).expect("valid spec"))
    }

    fn summaries(changes: &[Change]) -> Vec<String> {
        changes.iter().map(Change::summary).collect()
    }

    #[test]
    fn two_real_variants_read_as_people_would_describe_them() {
        let changes = diff(&spec(A), &spec(B));
        let text = summaries(&changes);
        let expected = [
            "parameter promote_threshold: 0.92 → 0.95",
            "task clean renamed to scrub",
            "task scrub image: python:3.11-slim → python:3.12-slim",
            "task report renamed to notify",
            "task notify command changed",
            "task train resources resourceCpuLimit: 1 → 2",
            "task train caching: on → off",
            "task train retry: none → 3 retries, backoff 0s ×2 up to 3600s",
            "task train kubernetes nodeSelector.labels.pool: cpu → gpu",
            "edge load -> notify added",
        ];
        for e in expected {
            assert!(text.iter().any(|t| t == e), "missing {e:?} in {text:#?}");
        }
        assert_eq!(text.len(), expected.len(), "{text:#?}");
        // The code change shows the changed line of the function body.
        let code = changes
            .iter()
            .find(|c| c.kind == ChangeKind::Command)
            .expect("command change");
        assert!(
            code.lines.iter().any(|l| l.contains("return \"done\"")),
            "{:?}",
            code.lines
        );
        let highlighted = changed_tasks(&changes);
        assert_eq!(
            highlighted.into_iter().collect::<Vec<_>>(),
            ["notify", "scrub", "train"]
        );
        // The reverse direction mirrors it.
        let back = summaries(&diff(&spec(B), &spec(A)));
        assert!(back.contains(&"parameter promote_threshold: 0.95 → 0.92".to_string()));
        assert!(back.contains(&"edge load -> report removed".to_string()));
    }

    #[test]
    fn noise_never_shows() {
        let a = spec(A);
        // The server's copy: an integer where the YAML had 1.0.
        let mut server = a.clone();
        *server
            .pointer_mut(
                "/pipeline_spec/deploymentSpec/executors/exec-train/container/resources/cpuLimit",
            )
            .expect("field") = serde_json::json!(1);
        // Keys in another order (as text; the value is re-read).
        let text = serde_json::to_string_pretty(&server).expect("json");
        let reordered: Value = serde_json::from_str(&text).expect("json");
        assert!(diff(&a, &reordered).is_empty());
        // Comments and formatting of the YAML are gone too.
        let recommented = A.replace("# PIPELINE DEFINITION", "# another header");
        assert!(diff(&a, &spec(&recommented)).is_empty());
    }

    #[test]
    fn added_and_removed_tasks_and_parameters() {
        let a = spec(A);
        let mut b = a.clone();
        let tasks = b
            .pointer_mut("/pipeline_spec/root/dag/tasks")
            .and_then(Value::as_object_mut)
            .expect("tasks");
        let report = tasks.remove("report").expect("report");
        tasks.insert(
            "extra".into(),
            serde_json::json!({"taskInfo": {"name": "extra"}}),
        );
        let _ = report;
        let params = b
            .pointer_mut("/pipeline_spec/root/inputDefinitions/parameters")
            .and_then(Value::as_object_mut)
            .expect("params");
        params.remove("source");
        params.insert(
            "epochs".into(),
            serde_json::json!({"defaultValue": 3.0, "parameterType": "NUMBER_INTEGER"}),
        );
        let text = summaries(&diff(&a, &b));
        assert!(
            text.contains(&"parameter epochs added (default 3)".to_string()),
            "{text:#?}"
        );
        assert!(
            text.contains(&"parameter source removed".to_string()),
            "{text:#?}"
        );
        assert!(
            text.contains(&"task report removed".to_string()),
            "{text:#?}"
        );
        assert!(text.contains(&"task extra added".to_string()), "{text:#?}");
        assert!(
            text.contains(&"edge train -> report removed".to_string()),
            "{text:#?}"
        );
    }

    #[test]
    fn outside_every_category_still_shows_a_path() {
        let a = spec(A);
        let mut b = a.clone();
        *b.pointer_mut("/pipeline_spec/sdkVersion").expect("sdk") = "kfp-2.18.0".into();
        assert_eq!(
            summaries(&diff(&a, &b)),
            ["sdkVersion: kfp-2.17.0 → kfp-2.18.0"]
        );
    }

    #[test]
    fn renders() {
        let changes = diff(&spec(A), &spec(B));
        let text = render_text(&changes, "  ");
        assert!(
            text.contains("  ~ parameter promote_threshold: 0.92 → 0.95\n"),
            "{text}"
        );
        assert!(text.contains("  + edge load -> notify added\n"), "{text}");
        let md = render_markdown(&changes);
        assert!(
            md.contains("- parameter promote\\_threshold: 0.92 → 0.95\n"),
            "{md}"
        );
        assert!(md.contains("```diff"), "{md}");
    }
}
