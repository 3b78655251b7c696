//! What changed between two compiled specs, in the terms people review: tasks added, removed and
//! renamed, parameter defaults, images, commands and arguments, resources, caching, retry, the
//! kubernetes platform settings, and the DAG's edges. Pure: no I/O.
//!
//! Both sides may be a local spec's server form or a server's stored `pipeline_spec`; everything
//! is read through the canonical form (numbers as doubles, keys sorted), so key order, `1` vs
//! `1.0` and other noise never show as a change.

use std::collections::BTreeSet;
use std::fmt::Write;

use serde::Serialize;
use serde_json::Value;

mod model;
mod tasks;

use model::{Model, numbers, parameters};
use tasks::{edges, leaf_diff, match_tasks, pipeline_level, tasks};

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
    const A: &str = include_str!("../../tests/fixtures/diff/review_demo_a.yaml");
    const B: &str = include_str!("../../tests/fixtures/diff/review_demo_b.yaml");

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
