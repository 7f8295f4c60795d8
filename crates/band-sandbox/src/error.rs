//! The platform's error body (`{"error": {code, message, request_id, ...}}`)
//! and the [`ApiError`] every REST handler and world operation fails with.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

/// An error the sandbox answers with, in the platform's `{"error": ...}` shape.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code.
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// JSON pointer → messages, for validation errors (boxed: keeps `Result`s small).
    pub details: Option<Box<Value>>,
    /// Seconds, sent as `Retry-After` and `error.retry_after`.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// Any status and code.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }
    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    /// 409 `conflict`.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }
    /// 422 `validation_error` with one pointer → message detail.
    pub fn invalid(pointer: &str, message: impl Into<String>) -> ApiError {
        let message = message.into();
        let mut details = Map::new();
        details.insert(pointer.to_string(), json!([message.clone()]));
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "validation_error".into(),
            message,
            details: Some(Box::new(Value::Object(details))),
            retry_after: None,
        }
    }
}

static REQUEST_SEQ: AtomicU64 = AtomicU64::new(1);

/// A fresh `req_…` id for an error body.
pub fn request_id() -> String {
    format!("req_{:012}", REQUEST_SEQ.fetch_add(1, Ordering::Relaxed))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({
            "code": self.code,
            "message": self.message,
            "request_id": request_id(),
        });
        if let Some(d) = self.details {
            error["details"] = *d;
        }
        if let Some(r) = self.retry_after {
            error["retry_after"] = json!(r);
        }
        let mut resp = (self.status, Json(json!({ "error": error }))).into_response();
        if let Some(r) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&r.to_string()) {
                resp.headers_mut().insert("retry-after", v);
            }
        }
        resp
    }
}
