//! Plan: compiled pipelines × server state → what to do with each (create | new version |
//! unchanged | error). Pure: no I/O, unit-tested without a server.
//!
//! "Unchanged" means the server would store the same thing: both specs go through
//! `kfp_api::spec::{server_form, canonical_json}` (numbers as doubles, comments gone, two-document
//! specs wrapped), never a comparison of YAML text.

use std::collections::BTreeMap;

use kfp_api::spec::{canonical_json, numbers_as_doubles, parse_spec, server_form, spec_hash};
use kfp_api::wire::{Pipeline, PipelineVersion, limits};

use crate::row::{Action, ErrorKind, PipelineError};

/// A compiled spec, validated as the server's upload handler would, with its canonical form.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalSpec {
    pub yaml: String,
    /// The server form, numbers as doubles: what `canonical` is the text of. Parsed once, here;
    /// the DAG drawing and the diffs read it.
    pub value: serde_json::Value,
    pub canonical: String,
    pub hash: String,
    /// `pipelineInfo.name`.
    pub pipeline_info_name: String,
}

impl LocalSpec {
    pub fn from_yaml(yaml: String) -> Result<LocalSpec, PipelineError> {
        if yaml.len() > limits::MAX_UPLOAD_BYTES {
            return Err(PipelineError {
                kind: ErrorKind::InvalidSpec,
                message: format!(
                    "compiled spec is {} bytes; KFP accepts at most {} (32 MiB)",
                    yaml.len(),
                    limits::MAX_UPLOAD_BYTES
                ),
                detail: String::new(),
            });
        }
        let docs = parse_spec(&yaml).map_err(|e| PipelineError {
            kind: ErrorKind::InvalidSpec,
            message: format!("the server would reject this spec: {e}"),
            detail: String::new(),
        })?;
        let form = server_form(&docs);
        Ok(LocalSpec {
            canonical: canonical_json(&form),
            hash: spec_hash(&form),
            value: numbers_as_doubles(form),
            pipeline_info_name: docs.pipeline_name().unwrap_or_default().to_string(),
            yaml,
        })
    }

    /// Does this server version hold exactly our spec?
    pub fn same_as(&self, version: &PipelineVersion) -> bool {
        version
            .pipeline_spec
            .as_ref()
            .is_some_and(|s| canonical_json(s) == self.canonical)
    }
}

impl LocalSpec {
    /// Where this spec differs from a server version's: up to three dotted paths
    /// (`root.inputDefinitions.parameters.message.defaultValue`), for the plan's reason.
    pub fn differences(&self, version: &PipelineVersion) -> Vec<String> {
        let Some(remote) = version.pipeline_spec.as_ref() else {
            return Vec::new();
        };
        let remote = numbers_as_doubles(remote.clone());
        let mut paths = Vec::new();
        diff_paths(&self.value, &remote, &mut String::new(), &mut paths, 0);
        let more = paths.len().saturating_sub(MAX_DIFF_PATHS);
        paths.truncate(MAX_DIFF_PATHS);
        if more > 0 {
            paths.push(format!("{more} more"));
        }
        paths
    }
}

const MAX_DIFF_PATHS: usize = 3;
const MAX_DIFF_DEPTH: usize = 8;

fn diff_paths(
    a: &serde_json::Value,
    b: &serde_json::Value,
    prefix: &mut String,
    out: &mut Vec<String>,
    depth: usize,
) {
    use serde_json::Value;
    if a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) if depth < MAX_DIFF_DEPTH => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for key in keys {
                let len = prefix.len();
                if !prefix.is_empty() {
                    prefix.push('.');
                }
                prefix.push_str(key);
                match (x.get(key), y.get(key)) {
                    (Some(va), Some(vb)) => diff_paths(va, vb, prefix, out, depth + 1),
                    _ => out.push(prefix.clone()),
                }
                prefix.truncate(len);
            }
        }
        _ => out.push(if prefix.is_empty() {
            "(whole spec)".to_string()
        } else {
            prefix.clone()
        }),
    }
}

/// One pipeline as compiled locally.
#[derive(Debug, Clone)]
pub struct LocalPipeline {
    /// The KFP pipeline `name` (identity; DNS-1123 on the kubernetes store).
    pub name: String,
    pub display_name: String,
    /// Source file relative to the repository root.
    pub file: String,
    pub spec: Result<LocalSpec, PipelineError>,
}

/// What the server holds for one pipeline name.
#[derive(Debug, Clone)]
pub enum RemoteState {
    /// Not looked up (the local side already failed).
    Unknown,
    Absent,
    /// Not in the target namespace; the server's get-by-name answered with a pipeline of that
    /// name in this other namespace (multi-user KFP, shared namespace), which is left alone.
    AbsentHere {
        namespace: String,
        other_namespace: String,
    },
    Present {
        pipeline: Box<Pipeline>,
        latest: Option<Box<PipelineVersion>>,
        /// Other versions created in the same second as `latest` (the server's timestamps have
        /// second precision, so which of them is the newest is unknown).
        tied: Vec<PipelineVersion>,
    },
    /// The lookup failed after retries.
    Failed(PipelineError),
}

/// The newest versions of a pipeline as the plan saw them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seen {
    pub ids: Vec<String>,
    /// `created_at` of the newest (RFC 3339, second precision).
    pub newest_at: Option<String>,
}

impl Seen {
    /// Was `v` created after the plan looked (by a concurrent run)? Every version is, when the
    /// plan saw none (the pipeline was absent or empty). Timestamps have second precision: a
    /// version from the same second as the newest that the plan did not see is new.
    pub fn is_new(&self, v: &PipelineVersion) -> bool {
        if self.ids.contains(&v.pipeline_version_id) {
            return false;
        }
        match (
            timestamp(self.newest_at.as_deref()),
            timestamp(v.created_at.as_deref()),
        ) {
            (Some(newest), Some(at)) => at >= newest,
            // No version seen, or times unknown: not seen is new.
            _ => true,
        }
    }
}

/// An RFC 3339 timestamp as the server writes it.
pub fn timestamp(s: Option<&str>) -> Option<jiff::Timestamp> {
    s.and_then(|s| s.parse().ok())
}

/// What to do with one pipeline.
#[derive(Debug, Clone)]
pub struct PlanItem {
    pub name: String,
    pub display_name: String,
    pub file: String,
    pub action: Action,
    pub reason: String,
    pub pipeline_id: Option<String>,
    /// Name of the newest version on the server, if any.
    pub latest_version: Option<String>,
    /// The versions the plan saw as newest (ids) and their creation time: anything else that is
    /// not older was created by a concurrent run since the plan (see `apply`).
    pub seen: Seen,
    pub spec: Option<LocalSpec>,
    pub error: Option<PipelineError>,
}

impl PlanItem {
    pub fn changes(&self) -> bool {
        matches!(self.action, Action::Create | Action::NewVersion)
    }
}

/// Names used by more than one file: each such pipeline is an error (which file would win?).
pub fn duplicate_names(locals: &[&LocalPipeline]) -> BTreeMap<String, Vec<String>> {
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in locals {
        by_name
            .entry(l.name.clone())
            .or_default()
            .push(l.file.clone());
    }
    by_name.retain(|_, files| files.len() > 1);
    by_name
}

/// The plan: one item per local pipeline with what the server holds for it (`lookup`), in the
/// same order.
pub fn plan(looked_up: Vec<(LocalPipeline, RemoteState)>, force: bool) -> Vec<PlanItem> {
    let locals: Vec<&LocalPipeline> = looked_up.iter().map(|(local, _)| local).collect();
    let duplicates = duplicate_names(&locals);
    looked_up
        .into_iter()
        .map(|(local, remote)| plan_one(local, remote, force, &duplicates))
        .collect()
}

fn plan_one(
    local: LocalPipeline,
    remote: RemoteState,
    force: bool,
    duplicates: &BTreeMap<String, Vec<String>>,
) -> PlanItem {
    let mut item = PlanItem {
        name: local.name,
        display_name: local.display_name,
        file: local.file,
        action: Action::Error,
        reason: String::new(),
        pipeline_id: None,
        latest_version: None,
        seen: Seen::default(),
        spec: None,
        error: None,
    };
    if let Some(files) = duplicates.get(&item.name) {
        // The compile engine already names the clash with the fix for the configured
        // `name_from`; keep its error. Otherwise the names collide only after the kubernetes
        // store's DNS-1123 mapping.
        let error = match local.spec {
            Err(e) if e.kind == ErrorKind::DuplicateName => e,
            _ => PipelineError {
                kind: ErrorKind::DuplicateName,
                message: format!(
                    "pipeline name `{}` comes from several files ({}); rename one of the files, or set `name_from = \"pipeline\"`",
                    item.name,
                    files.join(", ")
                ),
                detail: String::new(),
            },
        };
        item.reason = error.message.clone();
        item.error = Some(error);
        return item;
    }
    let spec = match local.spec {
        Ok(spec) => spec,
        Err(error) => {
            item.reason = error.message.clone();
            item.error = Some(error);
            return item;
        }
    };
    item.spec = Some(spec);
    match remote {
        RemoteState::Unknown => {
            let error = PipelineError {
                kind: ErrorKind::Plan,
                message: "the server state was not looked up".into(),
                detail: String::new(),
            };
            item.reason = error.message.clone();
            item.error = Some(error);
        }
        RemoteState::Failed(error) => {
            item.reason = error.message.clone();
            item.error = Some(error);
        }
        RemoteState::Absent => {
            item.action = Action::Create;
            item.reason = "not on the server".into();
        }
        RemoteState::AbsentHere {
            namespace,
            other_namespace,
        } => {
            item.action = Action::Create;
            item.reason = format!(
                "not in {} (the pipeline of this name in namespace {other_namespace} is not ours and is left alone)",
                if namespace.is_empty() {
                    "the shared namespace".to_string()
                } else {
                    format!("namespace {namespace}")
                }
            );
        }
        RemoteState::Present {
            pipeline,
            latest,
            tied,
        } => {
            item.pipeline_id = Some(pipeline.pipeline_id.clone());
            item.action = Action::NewVersion;
            match latest {
                None => item.reason = "the pipeline has no version".into(),
                Some(latest) => {
                    item.seen = Seen {
                        ids: std::iter::once(&*latest)
                            .chain(&tied)
                            .map(|v| v.pipeline_version_id.clone())
                            .collect(),
                        newest_at: latest.created_at.clone(),
                    };
                    // Unchanged only when every candidate for "newest" holds our spec.
                    let same = item
                        .spec
                        .as_ref()
                        .is_some_and(|s| s.same_as(&latest) && tied.iter().all(|t| s.same_as(t)));
                    let label = version_label(&latest);
                    item.latest_version = Some(label.clone());
                    item.reason = match (same, force) {
                        (true, false) => {
                            item.action = Action::Unchanged;
                            format!("same spec as {label}")
                        }
                        (true, true) => format!("same spec as {label}, uploaded anyway (--force)"),
                        (false, _) if latest.pipeline_spec.is_none() => {
                            format!("{label} has no readable spec")
                        }
                        (false, _) if item.spec.as_ref().is_some_and(|s| s.same_as(&latest)) => {
                            let others: Vec<String> = tied.iter().map(version_label).collect();
                            format!(
                                "{label} holds this spec, but {} was created in the same second with another spec (which is newest is unknown)",
                                others.join(", ")
                            )
                        }
                        (false, _) => {
                            let paths = item
                                .spec
                                .as_ref()
                                .map(|s| s.differences(&latest))
                                .unwrap_or_default();
                            if paths.is_empty() {
                                format!("spec differs from {label}")
                            } else {
                                format!("spec differs from {label}: {}", paths.join(", "))
                            }
                        }
                    };
                }
            }
        }
    }
    item
}

fn version_label(v: &PipelineVersion) -> String {
    if v.name.is_empty() {
        v.pipeline_version_id.clone()
    } else {
        v.name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SPEC: &str = "# PIPELINE DEFINITION\n# Name: hello\ncomponents: {}\npipelineInfo:\n  name: hello\nroot:\n  dag:\n    tasks: {}\nschemaVersion: 2.1.0\nsdkVersion: kfp-2.17.0\ndeploymentSpec:\n  executors:\n    e:\n      container:\n        resources:\n          cpuLimit: 1\n          memoryLimit: 0.5\n";

    /// The plan of `locals[i]` with `remotes[i]` (the lookup's pairs, written as two lists).
    fn plan(locals: Vec<LocalPipeline>, remotes: Vec<RemoteState>, force: bool) -> Vec<PlanItem> {
        assert_eq!(locals.len(), remotes.len(), "one server state per pipeline");
        super::plan(locals.into_iter().zip(remotes).collect(), force)
    }

    #[test]
    fn each_pipeline_is_planned_against_its_own_server_state() {
        let edited = SPEC.replace("cpuLimit: 1", "cpuLimit: 2");
        let looked_up = vec![
            (local("changed", &edited), present(Some(server_copy(SPEC)))),
            (local("new", SPEC), RemoteState::Absent),
            (local("same", SPEC), present(Some(server_copy(SPEC)))),
        ];
        let items = super::plan(looked_up.clone(), false);
        let got: Vec<(&str, Action)> = items.iter().map(|i| (i.name.as_str(), i.action)).collect();
        assert_eq!(
            got,
            vec![
                ("changed", Action::NewVersion),
                ("new", Action::Create),
                ("same", Action::Unchanged)
            ]
        );
        // Pure: the same input gives the same plan, in any order of the pairs.
        let mut reversed = looked_up;
        reversed.reverse();
        let again = super::plan(reversed, false);
        for item in &items {
            let twin = again.iter().find(|i| i.name == item.name).expect("planned");
            assert_eq!((twin.action, &twin.reason), (item.action, &item.reason));
        }
    }

    fn local(name: &str, yaml: &str) -> LocalPipeline {
        LocalPipeline {
            name: name.into(),
            display_name: name.into(),
            file: format!("{name}.py"),
            spec: LocalSpec::from_yaml(yaml.into()),
        }
    }

    fn present(spec: Option<serde_json::Value>) -> RemoteState {
        RemoteState::Present {
            pipeline: Box::new(Pipeline {
                pipeline_id: "p1".into(),
                name: "hello".into(),
                ..Pipeline::default()
            }),
            latest: Some(Box::new(PipelineVersion {
                pipeline_id: "p1".into(),
                pipeline_version_id: "v1".into(),
                name: "v20260101-000000".into(),
                pipeline_spec: spec,
                ..PipelineVersion::default()
            })),
            tied: vec![],
        }
    }

    /// The spec as the server returns it: a Struct, comments gone, integers as doubles.
    fn server_copy(yaml: &str) -> serde_json::Value {
        let docs = parse_spec(yaml).expect("valid");
        let mut v = server_form(&docs);
        *v.pointer_mut("/deploymentSpec/executors/e/container/resources/cpuLimit")
            .expect("field") = json!(1.0);
        v
    }

    #[test]
    fn absent_is_create() {
        let items = plan(vec![local("hello", SPEC)], vec![RemoteState::Absent], false);
        assert_eq!(items[0].action, Action::Create);
        assert_eq!(items[0].reason, "not on the server");
    }

    #[test]
    fn same_meaning_is_unchanged_even_with_different_text() {
        let items = plan(
            vec![local("hello", SPEC)],
            vec![present(Some(server_copy(SPEC)))],
            false,
        );
        assert_eq!(items[0].action, Action::Unchanged, "{}", items[0].reason);
        assert_eq!(items[0].reason, "same spec as v20260101-000000");
        assert_eq!(items[0].pipeline_id.as_deref(), Some("p1"));
    }

    #[test]
    fn force_uploads_unchanged() {
        let items = plan(
            vec![local("hello", SPEC)],
            vec![present(Some(server_copy(SPEC)))],
            true,
        );
        assert_eq!(items[0].action, Action::NewVersion);
        assert!(items[0].reason.contains("--force"));
    }

    #[test]
    fn changed_spec_is_new_version() {
        let edited = SPEC.replace("cpuLimit: 1", "cpuLimit: 2");
        let items = plan(
            vec![local("hello", &edited)],
            vec![present(Some(server_copy(SPEC)))],
            false,
        );
        assert_eq!(items[0].action, Action::NewVersion);
        assert_eq!(
            items[0].reason,
            "spec differs from v20260101-000000: deploymentSpec.executors.e.container.resources.cpuLimit"
        );
    }

    #[test]
    fn versions_in_the_same_second_must_all_match() {
        let edited = SPEC.replace("memoryLimit: 0.5", "memoryLimit: 0.75");
        let RemoteState::Present {
            pipeline, latest, ..
        } = present(Some(server_copy(SPEC)))
        else {
            unreachable!()
        };
        let other = PipelineVersion {
            name: "v20260101-000000-2".into(),
            pipeline_spec: Some(server_copy(&edited)),
            ..PipelineVersion::default()
        };
        let remote = RemoteState::Present {
            pipeline,
            latest,
            tied: vec![other],
        };
        let items = plan(vec![local("hello", SPEC)], vec![remote], false);
        assert_eq!(items[0].action, Action::NewVersion);
        assert!(
            items[0].reason.contains("same second"),
            "{}",
            items[0].reason
        );
    }

    #[test]
    fn versions_created_after_the_plan_are_new() {
        let at = |id: &str, t: &str| PipelineVersion {
            pipeline_version_id: id.into(),
            created_at: Some(t.into()),
            ..PipelineVersion::default()
        };
        let items = plan(
            vec![local("hello", SPEC)],
            vec![present(Some(server_copy(SPEC)))],
            true,
        );
        // `present` has no creation time: only what the plan did not see is new.
        assert!(!items[0].seen.is_new(&at("v1", "2026-01-01T00:00:00Z")));
        assert!(items[0].seen.is_new(&at("v2", "2026-01-01T00:00:00Z")));
        let seen = Seen {
            ids: vec!["v1".into()],
            newest_at: Some("2026-01-01T00:00:05Z".into()),
        };
        assert!(!seen.is_new(&at("v1", "2026-01-01T00:00:05Z")));
        assert!(!seen.is_new(&at("old", "2026-01-01T00:00:04Z")), "older");
        assert!(seen.is_new(&at("same-second", "2026-01-01T00:00:05Z")));
        assert!(seen.is_new(&at("later", "2026-01-01T00:00:06Z")));
        assert!(Seen::default().is_new(&at("any", "2020-01-01T00:00:00Z")));
    }

    #[test]
    fn empty_pipeline_gets_a_version() {
        let remote = RemoteState::Present {
            pipeline: Box::new(Pipeline {
                pipeline_id: "p1".into(),
                ..Pipeline::default()
            }),
            latest: None,
            tied: vec![],
        };
        let items = plan(vec![local("hello", SPEC)], vec![remote], false);
        assert_eq!(items[0].action, Action::NewVersion);
    }

    #[test]
    fn platform_spec_compares_in_wrapped_form() {
        let two = format!(
            "{SPEC}---\nplatforms:\n  kubernetes:\n    deploymentSpec:\n      executors: {{}}\n"
        );
        let docs = parse_spec(&two).expect("valid");
        let server = server_form(&docs);
        assert!(server.get("platform_spec").is_some());
        let items = plan(
            vec![local("hello", &two)],
            vec![present(Some(server))],
            false,
        );
        assert_eq!(items[0].action, Action::Unchanged);
        // The bare pipeline spec alone is a change (the platform document went missing).
        let items = plan(
            vec![local("hello", &two)],
            vec![present(Some(server_copy(SPEC)))],
            false,
        );
        assert_eq!(items[0].action, Action::NewVersion);
    }

    #[test]
    fn errors_stay_errors() {
        let bad = local("bad", &SPEC.replace("2.1.0", "2.0.0"));
        let failed = LocalPipeline {
            spec: Err(PipelineError {
                kind: "import".into(),
                message: "ModuleNotFoundError: No module named 'nope'".into(),
                detail: String::new(),
            }),
            ..local("broken", SPEC)
        };
        let lookup_failed = RemoteState::Failed(PipelineError {
            kind: "plan".into(),
            message: "HTTP 500: boom".into(),
            detail: String::new(),
        });
        let items = plan(
            vec![bad, failed, local("hello", SPEC)],
            vec![RemoteState::Unknown, RemoteState::Unknown, lookup_failed],
            false,
        );
        assert!(items.iter().all(|i| i.action == Action::Error));
        assert_eq!(
            items[0].error.as_ref().map(|e| e.kind.as_str()),
            Some("invalid_spec")
        );
        assert!(items[1].reason.contains("nope"));
        assert_eq!(items[2].reason, "HTTP 500: boom");
    }

    #[test]
    fn duplicate_names_are_errors() {
        let items = plan(
            vec![local("hello", SPEC), local("hello", SPEC)],
            vec![RemoteState::Absent, RemoteState::Absent],
            false,
        );
        assert!(items.iter().all(|i| i.action == Action::Error));
        assert_eq!(
            items[0].error.as_ref().map(|e| e.kind.as_str()),
            Some("duplicate_name")
        );
        // `[functions]` chooses a function, it cannot set a name: never suggest it.
        for item in &items {
            assert!(!item.reason.contains("[functions]"), "{}", item.reason);
            assert!(
                item.reason
                    .contains("rename one of the files, or set `name_from = \"pipeline\"`"),
                "{}",
                item.reason
            );
        }
        // The compile engine's own duplicate error (it knows `name_from`) is kept as it is.
        let compiled = |file: &str| LocalPipeline {
            spec: Err(PipelineError {
                kind: "duplicate_name".into(),
                message: format!(
                    "pipeline name `hello` is also given by {file}: give one of them another @dsl.pipeline(name=...)"
                ),
                detail: String::new(),
            }),
            ..local("hello", SPEC)
        };
        let items = plan(
            vec![compiled("b.py"), compiled("a.py")],
            vec![RemoteState::Unknown, RemoteState::Unknown],
            false,
        );
        assert!(
            items[0].reason.ends_with("another @dsl.pipeline(name=...)"),
            "{}",
            items[0].reason
        );
        assert!(items[0].reason.contains("b.py"), "{}", items[0].reason);
    }
}
