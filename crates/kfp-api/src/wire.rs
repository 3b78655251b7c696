//! KFP REST API v2beta1 JSON shapes, as grpc-gateway emits them: snake_case names, empty fields
//! omitted. One definition serves the client (`kfp-ci deploy`) and the local server (`kfp-ci serve`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub(crate) fn is_empty_str(s: &str) -> bool {
    s.is_empty()
}

pub(crate) fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// A list response as grpc-gateway writes it: the items under their own key, `total_size` and
/// `next_page_token`, each left out when empty.
macro_rules! list_response {
    ($(#[$meta:meta])* $name:ident { $(#[$key_meta:meta])* $key:ident: $item:ty }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(default)]
        pub struct $name {
            $(#[$key_meta])*
            #[serde(skip_serializing_if = "Vec::is_empty")]
            pub $key: Vec<$item>,
            #[serde(skip_serializing_if = "crate::wire::is_zero")]
            pub total_size: i32,
            #[serde(skip_serializing_if = "crate::wire::is_empty_str")]
            pub next_page_token: String,
        }
    };
}
pub(crate) use list_response;

/// `v2beta1Pipeline`. `name` is the identity (unique per namespace); `display_name` is for people.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pipeline {
    #[serde(skip_serializing_if = "is_empty_str")]
    pub pipeline_id: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    pub name: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    pub display_name: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    pub description: String,
    /// RFC 3339, second precision, UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "is_empty_str")]
    pub namespace: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcStatus>,
}

/// `v2beta1PipelineVersion`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PipelineVersion {
    #[serde(skip_serializing_if = "is_empty_str")]
    pub pipeline_id: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    pub pipeline_version_id: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    pub name: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    pub display_name: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package_url: Option<Url>,
    #[serde(skip_serializing_if = "is_empty_str")]
    pub code_source_url: String,
    /// The stored spec as a protobuf Struct: the bare PipelineSpec, or
    /// `{pipeline_spec, platform_spec}` when the upload had a platform document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_spec: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Url {
    #[serde(skip_serializing_if = "is_empty_str")]
    pub pipeline_url: String,
}

list_response! {
    /// `GET /apis/v2beta1/pipelines`.
    ListPipelinesResponse { pipelines: Pipeline }
}

list_response! {
    /// `GET /apis/v2beta1/pipelines/{id}/versions`.
    ListPipelineVersionsResponse { pipeline_versions: PipelineVersion }
}

/// `GET /apis/v2beta1/healthz` (plain encoding/json on the server: every field present).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Healthz {
    pub commit_sha: String,
    pub tag_name: String,
    pub multi_user: bool,
    /// `database` or `kubernetes`.
    pub pipeline_store: String,
}

/// grpc-gateway error body (`googleRpcStatus`), used by every route but the two uploads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RpcStatus {
    pub code: i32,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<serde_json::Value>,
}

/// Error body of the hand-written upload handlers (`/upload`, `/upload_version`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UploadError {
    pub error_message: String,
    pub error_details: String,
}

/// The human message of an error response body, whichever of the server's shapes it has:
/// grpc-gateway's `{code, message, details}`, the upload handlers' `{error_message,
/// error_details}`, or `text/plain` (`Invalid input error: …`). Falls back to the trimmed body.
pub fn error_message(body: &str) -> String {
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(body) {
        for key in ["message", "error_message", "error"] {
            if let Some(text) = value.get(key).and_then(serde_json::Value::as_str)
                && !text.is_empty()
            {
                return text.to_string();
            }
        }
    }
    body.trim().to_string()
}

/// gRPC status codes the server uses, with their HTTP mapping (grpc-gateway's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Code {
    InvalidArgument = 3,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    FailedPrecondition = 9,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

impl Code {
    pub fn http_status(self) -> u16 {
        match self {
            Code::InvalidArgument | Code::FailedPrecondition => 400,
            Code::NotFound => 404,
            Code::AlreadyExists => 409,
            Code::PermissionDenied => 403,
            Code::Unimplemented => 501,
            Code::Internal => 500,
            Code::Unavailable => 503,
            Code::Unauthenticated => 401,
        }
    }
}

/// `filter` query parameter: URL-encoded JSON of predicates, ANDed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Filter {
    pub predicates: Vec<Predicate>,
}

impl Filter {
    /// `key` equals the string `value`.
    pub fn equals(key: &str, value: &str) -> Filter {
        Filter {
            predicates: vec![Predicate {
                operation: serde_json::Value::from("EQUALS"),
                key: key.to_string(),
                string_value: Some(value.to_string()),
                ..Predicate::default()
            }],
        }
    }

    /// The `filter` query parameter's value (the JSON text; the client URL-encodes it).
    pub fn to_query(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Predicate {
    /// Enum name (`"EQUALS"`) or number (`1`): both spellings are accepted by the server.
    pub operation: serde_json::Value,
    pub key: String,
    #[serde(alias = "stringValue", skip_serializing_if = "Option::is_none")]
    pub string_value: Option<String>,
    #[serde(alias = "intValue", skip_serializing_if = "Option::is_none")]
    pub int_value: Option<serde_json::Value>,
    #[serde(alias = "longValue", skip_serializing_if = "Option::is_none")]
    pub long_value: Option<serde_json::Value>,
    #[serde(alias = "timestampValue", skip_serializing_if = "Option::is_none")]
    pub timestamp_value: Option<String>,
    #[serde(alias = "stringValues", skip_serializing_if = "Option::is_none")]
    pub string_values: Option<Values>,
    #[serde(alias = "intValues", skip_serializing_if = "Option::is_none")]
    pub int_values: Option<Values>,
    #[serde(alias = "longValues", skip_serializing_if = "Option::is_none")]
    pub long_values: Option<Values>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Values {
    pub values: Vec<serde_json::Value>,
}

/// Limits the real server enforces (2.17.0).
pub mod limits {
    pub const MAX_UPLOAD_BYTES: usize = 32 << 20;
    pub const MAX_PIPELINE_NAME: usize = 128;
    pub const MAX_VERSION_NAME: usize = 127;
    pub const MAX_NAMESPACE: usize = 63;
    pub const MAX_TAGS: usize = 20;
    pub const MAX_TAG_LEN: usize = 63;
    pub const DEFAULT_PAGE_SIZE: i32 = 20;
    pub const MAX_PAGE_SIZE: i32 = 200;

    /// Tag rules of 2.17.0: at most 20, key and value ≤ 63 characters, keys non-empty without `.`.
    pub fn check_tags(tags: &std::collections::BTreeMap<String, String>) -> Result<(), String> {
        if tags.len() > MAX_TAGS {
            return Err(format!(
                "Tags cannot have more than {} entries, got {}",
                MAX_TAGS,
                tags.len()
            ));
        }
        for (k, v) in tags {
            if k.is_empty() {
                return Err("Tag key cannot be empty".into());
            }
            if k.contains('.') {
                return Err(format!("Tag key {k:?} cannot contain '.'"));
            }
            if k.chars().count() > MAX_TAG_LEN {
                return Err(format!(
                    "Tag key {k:?} cannot exceed {} characters",
                    MAX_TAG_LEN
                ));
            }
            if v.chars().count() > MAX_TAG_LEN {
                return Err(format!(
                    "Tag value of {k:?} cannot exceed {} characters",
                    MAX_TAG_LEN
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_list_serialises_as_empty_object() {
        let json = serde_json::to_string(&ListPipelinesResponse::default()).unwrap_or_default();
        assert_eq!(json, "{}");
    }

    #[test]
    fn error_message_reads_every_shape() {
        assert_eq!(
            error_message(r#"{"code":5,"message":"Pipeline x not found","details":[]}"#),
            "Pipeline x not found"
        );
        assert_eq!(
            error_message(
                r#"{"error_message":"Failed to create a pipeline version","error_details":"…"}"#
            ),
            "Failed to create a pipeline version"
        );
        assert_eq!(
            error_message("Invalid input error: Pipeline.Name length cannot exceed 128\n"),
            "Invalid input error: Pipeline.Name length cannot exceed 128"
        );
    }

    #[test]
    fn filter_builder_writes_what_the_server_reads() {
        let text = Filter::equals("name", "x").to_query();
        assert_eq!(
            text,
            r#"{"predicates":[{"operation":"EQUALS","key":"name","string_value":"x"}]}"#
        );
        let back: Filter = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, Filter::equals("name", "x"));
    }

    #[test]
    fn tag_rules() {
        let tags = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(limits::check_tags(&tags(&[("managed-by", "kfp-ci")])).is_ok());
        assert!(limits::check_tags(&tags(&[("", "x")])).is_err());
        assert!(limits::check_tags(&tags(&[("a.b", "x")])).is_err());
        assert!(limits::check_tags(&tags(&[("k", &"é".repeat(63))])).is_ok());
        assert!(limits::check_tags(&tags(&[("k", &"é".repeat(64))])).is_err());
        let many: Vec<(String, String)> =
            (0..21).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(limits::check_tags(&many.into_iter().collect()).is_err());
    }

    #[test]
    fn filter_accepts_both_spellings() {
        let sdk =
            r#"{"predicates": [{"operation": 1, "key": "display_name", "stringValue": "x"}]}"#;
        let new =
            r#"{"predicates": [{"operation": "EQUALS", "key": "name", "string_value": "x"}]}"#;
        for text in [sdk, new] {
            let f: Filter = serde_json::from_str(text).expect("filter parses");
            assert_eq!(f.predicates[0].string_value.as_deref(), Some("x"));
        }
    }
}
