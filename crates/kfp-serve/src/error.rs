//! The two error shapes of the real server: grpc-gateway's `{code, message, details}` for every
//! route but the uploads, and the upload handlers' `{error_message, error_details}` (or, for a few
//! early checks, `text/plain` "Invalid input error: …").

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kfp_api::wire::{Code, RpcStatus, UploadError};
use serde_json::json;

#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// A gRPC status as grpc-gateway renders it.
    Rpc { code: Code, message: String },
    /// An upload handler's JSON error.
    Upload { status: StatusCode, message: String },
    /// An upload handler's early `text/plain` 400.
    UploadText(String),
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::Rpc {
            code: Code::InvalidArgument,
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::Rpc {
            code: Code::NotFound,
            message: message.into(),
        }
    }
    pub fn already_exists(message: impl Into<String>) -> Self {
        ApiError::Rpc {
            code: Code::AlreadyExists,
            message: message.into(),
        }
    }
    pub fn precondition(message: impl Into<String>) -> Self {
        ApiError::Rpc {
            code: Code::FailedPrecondition,
            message: message.into(),
        }
    }
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::Rpc {
            code: Code::Internal,
            message: message.into(),
        }
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::Rpc {
            code: Code::Unavailable,
            message: message.into(),
        }
    }
    /// An unknown route under `/apis/` (grpc-gateway's 404).
    pub fn not_found_route() -> Self {
        Self::not_found("Not Found")
    }
    /// A known route with a method or action it does not take.
    pub fn method_not_allowed() -> Self {
        ApiError::Rpc {
            code: Code::Unimplemented,
            message: "Method Not Allowed".into(),
        }
    }
    pub fn upload(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError::Upload {
            status,
            message: message.into(),
        }
    }

    /// The gRPC code of a store error, for re-wrapping it into the upload shape.
    pub fn code(&self) -> Option<Code> {
        match self {
            ApiError::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            ApiError::Rpc { message, .. } | ApiError::Upload { message, .. } => message,
            ApiError::UploadText(message) => message,
        }
    }

    /// The same error in the upload handlers' shape, under their generic `context` text.
    pub fn into_upload(self, context: &str) -> ApiError {
        match self {
            ApiError::Rpc { code, message } => ApiError::Upload {
                status: StatusCode::from_u16(code.http_status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                message: format!("{context}: {message}"),
            },
            other => other,
        }
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(err: rusqlite::Error) -> Self {
        match err.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                ApiError::unavailable(format!(
                    "the database is busy (another process holds a lock); retry: {err}"
                ))
            }
            Some(rusqlite::ErrorCode::ConstraintViolation) => {
                ApiError::already_exists(format!("already exists: {err}"))
            }
            _ => ApiError::internal(format!("database error: {err}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Rpc { code, message } => {
                let status = StatusCode::from_u16(code.http_status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                rpc_response(status, code as i32, &message)
            }
            ApiError::Upload { status, message } => {
                let body = UploadError {
                    error_details: message.clone(),
                    error_message: message,
                };
                (status, axum::Json(body)).into_response()
            }
            ApiError::UploadText(message) => {
                let mut resp = (
                    StatusCode::BAD_REQUEST,
                    format!("Invalid input error: {message}\n"),
                )
                    .into_response();
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                resp
            }
        }
    }
}

/// A grpc-gateway error body with one `google.rpc.Status` detail.
pub fn rpc_response(status: StatusCode, code: i32, message: &str) -> Response {
    let body = RpcStatus {
        code,
        message: message.to_string(),
        details: vec![json!({
            "@type": "type.googleapis.com/google.rpc.Status",
            "code": code,
            "message": message,
        })],
    };
    (status, axum::Json(body)).into_response()
}
