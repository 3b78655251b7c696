//! The parts of a spec the diff reads: tasks by path, pipeline parameters.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::{Change, ChangeKind, MAX_DEPTH};

pub(super) fn numbers(v: &Value) -> Value {
    kfp_api::spec::numbers_as_doubles(v.clone())
}

/// The parts of a spec the diff reads.
pub(super) struct Model<'a> {
    pub(super) pipeline: &'a Value,
    pub(super) platform: Option<&'a Value>,
    /// Task path → task, in every DAG (nested ones as `parent/child`).
    pub(super) tasks: BTreeMap<String, TaskRef<'a>>,
}

pub(super) struct TaskRef<'a> {
    pub(super) task: &'a Value,
    /// The DAG it sits in (`""` for root), for edges and rename matching.
    pub(super) parent: String,
    pub(super) component: Option<&'a Value>,
    pub(super) executor_label: Option<&'a str>,
}

impl<'a> Model<'a> {
    pub(super) fn read(spec: &'a Value) -> Model<'a> {
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

    pub(super) fn walk(&mut self, tasks: &'a Map<String, Value>, parent: &str, depth: usize) {
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

    pub(super) fn container(&self, t: &TaskRef<'_>) -> Option<&'a Value> {
        let label = t.executor_label?;
        self.pipeline
            .get("deploymentSpec")?
            .get("executors")?
            .get(label)?
            .get("container")
    }

    pub(super) fn platform(&self, t: &TaskRef<'_>) -> Option<&'a Value> {
        self.platform?.get(t.executor_label?)
    }
}

pub(super) fn parameters(a: &Model<'_>, b: &Model<'_>, out: &mut Vec<Change>) {
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

pub(super) fn keys<'v>(x: &'v Value, y: &'v Value) -> BTreeSet<&'v String> {
    x.as_object()
        .into_iter()
        .chain(y.as_object())
        .flat_map(|m| m.keys())
        .collect()
}

/// A task's identity apart from its name: its component's interface and the inputs it takes
/// (producer task names left out, since those may be renamed too).
pub(super) fn fingerprint(t: &TaskRef<'_>) -> String {
    let mut inputs = t.task.get("inputs").cloned().unwrap_or(Value::Null);
    strip_producers(&mut inputs);
    let interface = t
        .component
        .map(|c| (c.get("inputDefinitions"), c.get("outputDefinitions")));
    format!("{}|{inputs}|{interface:?}", t.parent)
}

pub(super) fn strip_producers(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("producerTask");
            map.values_mut().for_each(strip_producers);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_producers),
        _ => {}
    }
}
