//! A compiled pipeline's DAG as a Mermaid flowchart, for step summaries (GitHub and Gitea render
//! ```` ```mermaid ```` blocks).
//!
//! Tasks come from `root.dag.tasks`, edges from each task's `dependentTasks`; a task whose
//! component has its own `dag` (a `ParallelFor`, a condition, an exit handler, a nested
//! pipeline) becomes a subgraph.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::Value;

/// Deepest nesting drawn; deeper DAGs are shown as a single node.
const MAX_DEPTH: usize = 8;
/// Beyond this many nodes the graph is cut (Mermaid slows down and GitHub stops rendering).
const MAX_NODES: usize = 400;

/// The flowchart for a compiled PipelineSpec (either the spec itself or the
/// `{pipeline_spec, platform_spec}` wrapping). An empty graph when there is no `root.dag`.
pub fn mermaid(spec: &Value) -> String {
    mermaid_highlighting(spec, &std::collections::BTreeSet::new())
}

/// [`mermaid`] with the tasks at these paths (`parent/child` in nested DAGs, as `crate::diff`
/// names them) drawn as changed.
pub fn mermaid_highlighting(spec: &Value, changed: &std::collections::BTreeSet<String>) -> String {
    let spec = spec.get("pipeline_spec").unwrap_or(spec);
    let mut graph = Graph {
        components: spec.get("components").and_then(Value::as_object),
        out: String::from("flowchart TD\n"),
        ids: 0,
        cut: false,
        changed,
        marked: Vec::new(),
    };
    if let Some(tasks) = spec.pointer("/root/dag/tasks").and_then(Value::as_object) {
        graph.dag(tasks, 1, "");
    }
    if graph.cut {
        graph.out.push_str("  more[\"… graph cut at 400 tasks\"]\n");
    }
    if !graph.marked.is_empty() {
        graph
            .out
            .push_str("  classDef changed fill:#fff3b0,stroke:#d4a000,stroke-width:2px\n");
        let _ = writeln!(graph.out, "  class {} changed", graph.marked.join(","));
    }
    graph.out
}

struct Graph<'a> {
    components: Option<&'a serde_json::Map<String, Value>>,
    out: String,
    ids: usize,
    cut: bool,
    changed: &'a std::collections::BTreeSet<String>,
    marked: Vec<String>,
}

impl Graph<'_> {
    fn next_id(&mut self) -> String {
        self.ids += 1;
        format!("n{}", self.ids)
    }

    fn dag(&mut self, tasks: &serde_json::Map<String, Value>, depth: usize, parent: &str) {
        let indent = "  ".repeat(depth);
        // Ids first, so edges can refer to any sibling.
        let mut ids: BTreeMap<&str, String> = BTreeMap::new();
        let names: Vec<&String> = tasks.keys().collect();
        for name in &names {
            if self.ids >= MAX_NODES {
                self.cut = true;
                break;
            }
            let id = self.next_id();
            ids.insert(name.as_str(), id);
        }
        for name in &names {
            let Some(id) = ids.get(name.as_str()).cloned() else {
                continue;
            };
            let task = &tasks[name.as_str()];
            let label = label(name, task);
            let path = if parent.is_empty() {
                name.to_string()
            } else {
                format!("{parent}/{name}")
            };
            if self.changed.contains(&path) {
                self.marked.push(id.clone());
            }
            let inner = task
                .pointer("/componentRef/name")
                .and_then(Value::as_str)
                .and_then(|c| self.components?.get(c))
                .and_then(|c| c.pointer("/dag/tasks"))
                .and_then(Value::as_object);
            match inner {
                Some(inner) if depth < MAX_DEPTH && !inner.is_empty() => {
                    let _ = writeln!(self.out, "{indent}subgraph {id}[\"{label}\"]");
                    self.dag(inner, depth + 1, &path);
                    let _ = writeln!(self.out, "{indent}end");
                }
                _ => {
                    let _ = writeln!(self.out, "{indent}{id}[\"{label}\"]");
                }
            }
        }
        for name in &names {
            let Some(id) = ids.get(name.as_str()) else {
                continue;
            };
            let deps = tasks[name.as_str()]
                .get("dependentTasks")
                .and_then(Value::as_array);
            for dep in deps.into_iter().flatten().filter_map(Value::as_str) {
                if let Some(from) = ids.get(dep) {
                    let _ = writeln!(self.out, "{indent}{from} --> {id}");
                }
            }
        }
    }
}

fn label(name: &str, task: &Value) -> String {
    let shown = task
        .pointer("/taskInfo/name")
        .and_then(Value::as_str)
        .unwrap_or(name);
    let mut label = escape(shown);
    if task.get("parameterIterator").is_some() || task.get("artifactIterator").is_some() {
        label.push_str(" (for each)");
    }
    if task.pointer("/triggerPolicy/condition").is_some() {
        label.push_str(" (if)");
    }
    label
}

/// Mermaid label text inside `"…"`: entity codes for quotes and markup.
fn escape(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().take(80) {
        match c {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tasks_edges_and_nested_dags() {
        let spec = json!({
            "components": {
                "comp-a": {"executorLabel": "exec-a"},
                "comp-for-loop-2": {"dag": {"tasks": {
                    "a-2": {"taskInfo": {"name": "a-2"}, "componentRef": {"name": "comp-a"}},
                    "b": {"taskInfo": {"name": "b"}, "dependentTasks": ["a-2"]}
                }}}
            },
            "root": {"dag": {"tasks": {
                "a": {"taskInfo": {"name": "a"}, "componentRef": {"name": "comp-a"}},
                "for-loop-2": {"taskInfo": {"name": "for-loop-2"},
                               "componentRef": {"name": "comp-for-loop-2"},
                               "parameterIterator": {}, "dependentTasks": ["a"]},
                "c\"x": {"taskInfo": {"name": "say \"hi\""}, "dependentTasks": ["a", "for-loop-2"],
                         "triggerPolicy": {"condition": "x > 1"}}
            }}}
        });
        assert_eq!(
            mermaid(&spec),
            "flowchart TD\n  \
             n1[\"a\"]\n  \
             n2[\"say #quot;hi#quot; (if)\"]\n  \
             subgraph n3[\"for-loop-2 (for each)\"]\n    \
             n4[\"a-2\"]\n    \
             n5[\"b\"]\n    \
             n4 --> n5\n  \
             end\n  \
             n1 --> n2\n  \
             n3 --> n2\n  \
             n1 --> n3\n"
        );
        let wrapped = json!({"pipeline_spec": spec, "platform_spec": {}});
        assert_eq!(mermaid(&wrapped), mermaid(&spec));
        assert_eq!(mermaid(&json!({})), "flowchart TD\n");
    }
}
