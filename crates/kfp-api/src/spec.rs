//! Compiled pipeline specs in the form the KFP server stores them.
//!
//! The server parses each YAML document into a `google.protobuf.Struct`: comments go, every number
//! becomes a double, and a spec with a platform document comes back as
//! `{"pipeline_spec": …, "platform_spec": …}`. Both sides of a comparison go through
//! [`server_form`] and [`canonical_json`], so "unchanged" means "the server would store the same".

use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Bumped whenever the canonical form changes: a new prefix means every hash differs once.
pub const HASH_VERSION: &str = "c1";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("not valid YAML: {0}")]
    Yaml(String),
    #[error("unknown template format")]
    UnknownFormat,
    #[error("multiple pipeline specs provided")]
    MultipleSpecs,
    #[error("KFP only supports schema version 2.1.0, but the pipeline spec has version {0}")]
    SchemaVersion(String),
    #[error(
        "pipeline's name must contain only lowercase alphanumeric characters or '-' and must start with alphanumeric characters, but got {0:?}"
    )]
    BadName(String),
    #[error("invalid v2 pipeline spec: root component is empty")]
    EmptyRoot,
    /// The strict protobuf parse failed: an unknown field or a wrongly shaped value.
    #[error("unknown template format: {0}")]
    NotProto(String),
}

/// A parsed spec file: the PipelineSpec document and an optional PlatformSpec document.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecDocuments {
    pub pipeline_spec: Value,
    pub platform_spec: Option<Value>,
}

impl SpecDocuments {
    /// `pipelineInfo.name` of the PipelineSpec.
    pub fn pipeline_name(&self) -> Option<&str> {
        self.pipeline_spec
            .pointer("/pipelineInfo/name")
            .and_then(Value::as_str)
    }
}

/// Parse every YAML document of `text` into JSON values (numbers as doubles, as a Struct holds them).
pub fn parse_yaml_documents(text: &str) -> Result<Vec<Value>, SpecError> {
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(doc).map_err(|e| SpecError::Yaml(e.to_string()))?;
        if value.is_null() {
            continue; // an empty document, e.g. a trailing `---`
        }
        docs.push(numbers_as_doubles(value));
    }
    Ok(docs)
}

/// Parse and validate a spec file the way the KFP server's upload handler does,
/// including its strict protobuf parse: an unknown field anywhere in the PipelineSpec (typically
/// from a kfp SDK newer than the server) is an error.
pub fn parse_spec(text: &str) -> Result<SpecDocuments, SpecError> {
    let docs = parse_yaml_documents(text)?;
    let mut pipeline_spec = None;
    let mut platform_spec = None;
    for doc in docs {
        if is_platform_spec(&doc) {
            proto::check_platform_spec(&doc).map_err(SpecError::NotProto)?;
            if platform_spec.replace(doc).is_some() {
                return Err(SpecError::MultipleSpecs);
            }
        } else if is_pipeline_spec(&doc) {
            proto::check_pipeline_spec(&doc).map_err(SpecError::NotProto)?;
            if pipeline_spec.replace(doc).is_some() {
                return Err(SpecError::MultipleSpecs);
            }
        } else {
            return Err(SpecError::UnknownFormat);
        }
    }
    let pipeline_spec = pipeline_spec.ok_or(SpecError::UnknownFormat)?;
    let version = pipeline_spec
        .get("schemaVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if version != "2.1.0" {
        return Err(SpecError::SchemaVersion(version.to_string()));
    }
    let name = pipeline_spec
        .pointer("/pipelineInfo/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !valid_pipeline_info_name(name) {
        return Err(SpecError::BadName(name.to_string()));
    }
    match pipeline_spec.get("root") {
        Some(Value::Object(root)) if !root.is_empty() => {}
        _ => return Err(SpecError::EmptyRoot),
    }
    Ok(SpecDocuments {
        pipeline_spec,
        platform_spec,
    })
}

fn is_pipeline_spec(doc: &Value) -> bool {
    doc.pointer("/pipelineInfo/name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty())
        && doc.get("root").is_some()
}

fn is_platform_spec(doc: &Value) -> bool {
    doc.get("platforms").is_some() && doc.get("pipelineInfo").is_none()
}

/// `^[a-z0-9][a-z0-9-]{0,127}$`
pub fn valid_pipeline_info_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// The JSON the server returns as `pipeline_spec` for these documents.
pub fn server_form(docs: &SpecDocuments) -> Value {
    match &docs.platform_spec {
        None => docs.pipeline_spec.clone(),
        Some(platform) => {
            let mut map = Map::new();
            map.insert("pipeline_spec".into(), docs.pipeline_spec.clone());
            map.insert("platform_spec".into(), platform.clone());
            Value::Object(map)
        }
    }
}

pub use crate::protojson::numbers_as_doubles;

/// Canonical text of a spec value: keys sorted, numbers as doubles, no whitespace.
/// Accepts either side (a local spec's [`server_form`] or the server's `pipeline_spec`).
pub fn canonical_json(value: &Value) -> String {
    // serde_json's Map is a BTreeMap here (no `preserve_order`), so keys serialise sorted.
    let normalised = numbers_as_doubles(value.clone());
    serde_json::to_string(&normalised).unwrap_or_default()
}

/// A short, versioned content hash of the canonical form, fit for a KFP tag value (≤ 63 chars).
pub fn spec_hash(value: &Value) -> String {
    let digest = Sha256::digest(canonical_json(value).as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{HASH_VERSION}-{}", &hex[..40])
}

/// The server's strict `protojson` parse of PipelineSpec / PlatformSpec, from a table of the
/// proto's field names (`data/pipeline_spec_fields.json`, generated from kfp-pipeline-spec 2.17.0).
mod proto {
    use std::sync::OnceLock;

    use serde_json::Value;

    fn fields() -> &'static Value {
        static FIELDS: OnceLock<Value> = OnceLock::new();
        FIELDS.get_or_init(|| {
            serde_json::from_str(include_str!("../data/pipeline_spec_fields.json"))
                .unwrap_or(Value::Null)
        })
    }

    pub fn check_pipeline_spec(doc: &Value) -> Result<(), String> {
        check("ml_pipelines.PipelineSpec", doc, "")
    }

    pub fn check_platform_spec(doc: &Value) -> Result<(), String> {
        check("ml_pipelines.PlatformSpec", doc, "")
    }

    fn at(path: &str) -> String {
        if path.is_empty() {
            "at the top level".into()
        } else {
            format!("at {path}")
        }
    }

    fn join(path: &str, key: &str) -> String {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    }

    fn check(kind: &str, v: &Value, path: &str) -> Result<(), String> {
        if v.is_null() {
            return Ok(());
        }
        if let Some(inner) = kind.strip_prefix("list:") {
            let items = v
                .as_array()
                .ok_or_else(|| format!("expected a list {}", at(path)))?;
            for (i, item) in items.iter().enumerate() {
                check(inner, item, &format!("{path}[{i}]"))?;
            }
            return Ok(());
        }
        if let Some(inner) = kind.strip_prefix("map:") {
            let map = v
                .as_object()
                .ok_or_else(|| format!("expected a mapping {}", at(path)))?;
            for (k, item) in map {
                check(inner, item, &join(path, k))?;
            }
            return Ok(());
        }
        if let Some(names) = kind.strip_prefix("enum:") {
            return match v {
                Value::String(s) if names.split('|').any(|n| n == s) => Ok(()),
                Value::Number(_) => Ok(()),
                other => Err(format!(
                    "invalid value {other} {}: expected one of {}",
                    at(path),
                    names.replace('|', ", ")
                )),
            };
        }
        match kind {
            "scalar" => {
                if v.is_object() || v.is_array() {
                    return Err(format!("expected a single value {}", at(path)));
                }
                Ok(())
            }
            "google.protobuf.Struct" => v
                .is_object()
                .then_some(())
                .ok_or_else(|| format!("expected a mapping {}", at(path))),
            "google.protobuf.ListValue" => v
                .is_array()
                .then_some(())
                .ok_or_else(|| format!("expected a list {}", at(path))),
            "google.protobuf.Value" | "google.protobuf.Duration" => Ok(()),
            message => {
                let Some(known) = fields().get(message).and_then(Value::as_object) else {
                    // No table (cannot happen with the embedded file): accept, as before.
                    return Ok(());
                };
                let map = v
                    .as_object()
                    .ok_or_else(|| format!("expected a mapping {}", at(path)))?;
                let short = message.trim_start_matches("ml_pipelines.");
                for (k, item) in map {
                    let Some(field_kind) = known.get(k).and_then(Value::as_str) else {
                        return Err(format!(
                            "{short} has no field {k:?} ({}): a spec compiled by a newer kfp SDK than the server (KFP 2.17.0), or edited by hand",
                            at(path)
                        ));
                    };
                    check(field_kind, item, &join(path, k))?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE_DOC: &str = "# PIPELINE DEFINITION\n# Name: hello\ncomponents: {}\npipelineInfo:\n  name: hello\nroot:\n  dag:\n    tasks: {}\nschemaVersion: 2.1.0\nsdkVersion: kfp-2.17.0\ndeploymentSpec:\n  executors:\n    e:\n      container:\n        resources:\n          cpuLimit: 1\n";

    #[test]
    fn numbers_compare_equal_to_the_servers_doubles() {
        let docs = parse_spec(ONE_DOC).expect("valid");
        let local = server_form(&docs);
        let mut server = local.clone();
        // The server writes 1.0 as `1`; parsing it back gives an integer Number.
        *server
            .pointer_mut("/deploymentSpec/executors/e/container/resources/cpuLimit")
            .expect("field") = serde_json::json!(1);
        assert_eq!(canonical_json(&local), canonical_json(&server));
        assert_eq!(spec_hash(&local), spec_hash(&server));
    }

    #[test]
    fn two_documents_are_wrapped() {
        let text = format!("{ONE_DOC}---\nplatforms:\n  kubernetes:\n    deploymentSpec: {{}}\n");
        let docs = parse_spec(&text).expect("valid");
        let form = server_form(&docs);
        assert!(form.get("pipeline_spec").is_some());
        assert!(form.get("platform_spec").is_some());
    }

    #[test]
    fn validation_mirrors_the_server() {
        assert_eq!(
            parse_spec(&ONE_DOC.replace("2.1.0", "2.0.0")),
            Err(SpecError::SchemaVersion("2.0.0".into()))
        );
        assert!(matches!(
            parse_spec(&ONE_DOC.replace("name: hello", "name: Hello_World")),
            Err(SpecError::BadName(_))
        ));
        assert_eq!(parse_spec("a: 1\n"), Err(SpecError::UnknownFormat));
        let twice = format!("{ONE_DOC}---\n{ONE_DOC}");
        assert_eq!(parse_spec(&twice), Err(SpecError::MultipleSpecs));
    }

    #[test]
    fn unknown_fields_fail_like_the_servers_strict_parse() {
        let top = ONE_DOC.replace("sdkVersion:", "bogusField: 1\nsdkVersion:");
        let err = parse_spec(&top).expect_err("unknown top-level field");
        assert!(
            err.to_string()
                .contains("PipelineSpec has no field \"bogusField\""),
            "{err}"
        );
        let deep = ONE_DOC.replace(
            "    tasks: {}",
            "    tasks:\n      t:\n        taskInfo:\n          name: t\n          colour: red",
        );
        let err = parse_spec(&deep).expect_err("unknown nested field");
        assert!(
            err.to_string().contains("root.dag.tasks.t.taskInfo"),
            "{err}"
        );
        // Struct-typed fields (deploymentSpec) are free-form; snake_case names are accepted.
        let snake = ONE_DOC.replace(
            "schemaVersion:",
            "default_pipeline_root: gs://b\nschemaVersion:",
        );
        assert!(parse_spec(&snake).is_ok());
        let platform = format!(
            "{ONE_DOC}---\nplatforms:\n  kubernetes:\n    deploymentSpec:\n      executors:\n        e:\n          anything: [1]\n"
        );
        assert!(parse_spec(&platform).is_ok());
        let bad_platform = format!("{ONE_DOC}---\nplatforms:\n  kubernetes:\n    nope: 1\n");
        assert!(matches!(
            parse_spec(&bad_platform),
            Err(SpecError::NotProto(_))
        ));
    }
}
