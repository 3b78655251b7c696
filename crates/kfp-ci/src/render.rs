//! The pipelines as `pipelines.kubeflow.org/v2beta1` custom
//! resources for KFP's Kubernetes pipeline store (2.14+), one file per pipeline, for GitOps
//! (Argo CD, Flux) to commit or sync (`kfp-ci render --kubernetes`).
//!
//! Each file holds a `Pipeline` and its current `PipelineVersion`. Names are DNS-1123 subdomains
//! (as deploy sends them to a Kubernetes store); the version is named by the run's version tag, as
//! deploy names it, unless the file already holds a version with the same spec: then that version
//! is kept, so an unchanged spec renders to the same bytes and a GitOps diff is empty. The version
//! resource is `{pipeline}-{version}` (2.17's naming, which also keeps two pipelines' versions of
//! one tag apart on older servers).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use kfp_api::compat::dns1123;
use kfp_api::spec::{self, SpecDocuments};
use kfp_api::wire::limits;
use serde_json::{Map, Number, Value, json};

use crate::compile::CompileRun;

/// The default output directory, relative to the repository root.
pub const DEFAULT_OUT_DIR: &str = "dist/kubernetes";

const API_VERSION: &str = "pipelines.kubeflow.org/v2beta1";

/// What became of one pipeline file, in the order of the compile run.
pub enum FileRendered {
    /// Not rendered: `error: FILE: why`.
    Failed(String),
    /// Its resources file, written unless it already held the same text.
    Written {
        path: PathBuf,
        name: String,
        version: String,
        unchanged: bool,
    },
}

impl FileRendered {
    /// The stderr line.
    pub fn message(&self) -> String {
        match self {
            FileRendered::Failed(message) => format!("error: {message}\n"),
            FileRendered::Written {
                name,
                version,
                unchanged,
                ..
            } => format!(
                "{} {name}: version {version}\n",
                if *unchanged { "unchanged" } else { "rendered " }
            ),
        }
    }
}

/// Render every compiled pipeline of `run` into `out_dir/<name>.yaml`, versions named by `tag`
/// unless a file keeps its version; `each` sees every file as it is done. The number of files
/// that failed; an error when a file cannot be written (the files before it stay written).
pub fn render_run(
    run: CompileRun,
    out_dir: &Path,
    tag: &str,
    namespace: Option<&str>,
    each: &mut dyn FnMut(&FileRendered) -> Result<()>,
) -> Result<usize> {
    let mut failed = 0usize;
    let mut seen = std::collections::BTreeMap::<String, String>::new();
    for result in run.results {
        let file = &result.file;
        let outcome = match result.outcome {
            Err(e) => FileRendered::Failed(format!("{}: {}", file.rel, e.message)),
            Ok(compiled) => {
                let name = dns1123(&file.name, limits::MAX_PIPELINE_NAME);
                if let Some(other) = seen.insert(name.clone(), file.rel.clone()) {
                    FileRendered::Failed(format!(
                        "{}: its Kubernetes name {name} is also the name of {other}: rename one of the files (or its pipeline)",
                        file.rel
                    ))
                } else {
                    match spec::parse_spec(&compiled.yaml) {
                        Err(e) => FileRendered::Failed(format!(
                            "{}: the server would reject this spec: {e}",
                            file.rel
                        )),
                        Ok(docs) => {
                            let path = out_dir.join(format!("{name}.yaml"));
                            let version = existing_version(&path, &docs)
                                .unwrap_or_else(|| dns1123(tag, limits::MAX_VERSION_NAME));
                            let text = render(&Rendered {
                                name: &name,
                                display_name: &file.name,
                                file: &file.rel,
                                namespace,
                                version: &version,
                                docs: &docs,
                            })?;
                            let unchanged =
                                fs_err::read_to_string(&path).is_ok_and(|old| old == text);
                            if !unchanged {
                                fs_err::write(&path, &text)
                                    .with_context(|| format!("cannot write {}", path.display()))?;
                            }
                            FileRendered::Written {
                                path,
                                name,
                                version,
                                unchanged,
                            }
                        }
                    }
                }
            }
        };
        if matches!(outcome, FileRendered::Failed(_)) {
            failed += 1;
        }
        each(&outcome)?;
    }
    Ok(failed)
}

/// What one file is rendered from.
pub struct Rendered<'a> {
    pub name: &'a str,
    pub display_name: &'a str,
    pub file: &'a str,
    pub namespace: Option<&'a str>,
    pub version: &'a str,
    pub docs: &'a SpecDocuments,
}

/// The file's text: a `Pipeline` and a `PipelineVersion`, keys sorted, no timestamps.
pub fn render(r: &Rendered<'_>) -> Result<String> {
    let metadata = |name: String| {
        let mut m = Map::new();
        m.insert("name".into(), json!(name));
        if let Some(ns) = r.namespace {
            m.insert("namespace".into(), json!(ns));
        }
        Value::Object(m)
    };
    let description = format!("Rendered by kfp-ci from {}", r.file);
    let pipeline = json!({
        "apiVersion": API_VERSION,
        "kind": "Pipeline",
        "metadata": metadata(r.name.to_string()),
        "spec": {"displayName": r.display_name, "description": description},
    });
    let resource = version_resource_name(r.name, r.version);
    let mut spec = Map::new();
    spec.insert("pipelineName".into(), json!(r.name));
    spec.insert("versionName".into(), json!(r.version));
    spec.insert("displayName".into(), json!(r.version));
    spec.insert("description".into(), json!(description));
    spec.insert(
        "pipelineSpec".into(),
        integral_numbers(r.docs.pipeline_spec.clone()),
    );
    if let Some(platform) = &r.docs.platform_spec {
        spec.insert("platformSpec".into(), integral_numbers(platform.clone()));
    }
    let version = json!({
        "apiVersion": API_VERSION,
        "kind": "PipelineVersion",
        "metadata": metadata(resource),
        "spec": Value::Object(spec),
    });
    let mut out = format!(
        "# Rendered by kfp-ci from {}: Kubeflow Pipelines Kubernetes store (2.14+). Do not edit: re-run `kfp-ci render --kubernetes`.\n",
        r.file
    );
    for doc in [pipeline, version] {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&doc).context("cannot write YAML")?);
    }
    Ok(out)
}

/// `{pipeline}-{version}` (how 2.17 names a version's resource), shortened on the pipeline side
/// to stay a DNS-1123 subdomain.
pub fn version_resource_name(pipeline: &str, version: &str) -> String {
    if pipeline == version {
        return version.to_string();
    }
    let room = 253usize.saturating_sub(version.len() + 1).max(1);
    dns1123(&format!("{}-{version}", dns1123(pipeline, room)), 253)
}

/// The version name in the existing file at `path` when it holds the same spec.
fn existing_version(path: &Path, docs: &SpecDocuments) -> Option<String> {
    let text = fs_err::read_to_string(path).ok()?;
    let old = spec::parse_yaml_documents(&text)
        .ok()?
        .into_iter()
        .find(|d| d["kind"] == "PipelineVersion")?;
    let old_docs = SpecDocuments {
        pipeline_spec: old.pointer("/spec/pipelineSpec")?.clone(),
        platform_spec: old.pointer("/spec/platformSpec").cloned(),
    };
    let same = spec::canonical_json(&spec::server_form(&old_docs))
        == spec::canonical_json(&spec::server_form(docs));
    if !same {
        return None;
    }
    old.pointer("/spec/versionName")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Integral doubles as integers (as the server writes a Struct), so `1.0` stays `1`.
fn integral_numbers(value: Value) -> Value {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => Value::Number(Number::from(f as i64)),
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(integral_numbers).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, integral_numbers(v)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_are_composite_and_dns_1123() {
        assert_eq!(version_resource_name("hello", "v1"), "hello-v1");
        assert_eq!(version_resource_name("v1", "v1"), "v1");
        let long = "p".repeat(300);
        let name = version_resource_name(&long, "v20261202-101010");
        assert!(name.len() <= 253 && name.ends_with("-v20261202-101010"));
        assert!(kfp_api::compat::is_dns1123_subdomain(&name));
    }

    #[test]
    fn render_is_deterministic_and_keeps_integers() {
        let docs = SpecDocuments {
            pipeline_spec: kfp_api::spec::numbers_as_doubles(json!({"a": 1, "b": 2.5})),
            platform_spec: None,
        };
        let r = Rendered {
            name: "hello",
            display_name: "hello_pipeline",
            file: "hello_pipeline.py",
            namespace: Some("team-a"),
            version: "v1",
            docs: &docs,
        };
        let a = render(&r).expect("render");
        assert_eq!(a, render(&r).expect("render"));
        assert!(a.contains("a: 1\n") && a.contains("b: 2.5\n"), "{a}");
        assert!(
            a.contains("name: hello-v1\n") && a.contains("namespace: team-a\n"),
            "{a}"
        );
    }
}
