//! The REST layer: routes of the agent API ([`agent`]) and the human API
//! ([`human`]), the handlers they share ([`shared`]), typed request bodies
//! ([`bodies`]), and the plumbing here: success envelopes, body and query
//! parsing, paging.

pub mod agent;
pub mod bodies;
pub mod guard;
pub mod human;
pub mod shared;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::error::ApiError;

/// Result of a REST handler.
pub type ApiResult = Result<Response, ApiError>;

/// 200 `{"data": data}`.
pub fn ok(data: Value) -> ApiResult {
    Ok((StatusCode::OK, Json(json!({ "data": data }))).into_response())
}

/// 201 `{"data": data}`.
pub fn created(data: Value) -> ApiResult {
    Ok((StatusCode::CREATED, Json(json!({ "data": data }))).into_response())
}

/// 200 `{"data": data, "metadata": metadata}`.
pub fn ok_meta(data: Value, metadata: Value) -> ApiResult {
    Ok((
        StatusCode::OK,
        Json(json!({ "data": data, "metadata": metadata })),
    )
        .into_response())
}

/// Parses a JSON body into `T`; an empty body counts as `{}`. Bad JSON or a
/// wrong shape is a 422 with the error body, never a panic.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::invalid("", format!("malformed JSON body: {e}")))?
    };
    serde_json::from_value(value)
        .map_err(|e| ApiError::invalid("", format!("invalid request body: {e}")))
}

/// Query parameters as a map (the last value wins for repeated keys, except
/// where the caller reads `all`).
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Query {
        let pairs = raw
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        Query { pairs }
    }
    /// Every parameter name, in order, repeats included.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(k, _)| k.as_str())
    }
    /// The last value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    /// Every comma-separated value across repeated `key`s.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_string()))
            .filter(|s| !s.is_empty())
            .collect()
    }
    /// A positive integer in `1..=max`, or `default` when absent; 422 otherwise.
    pub fn int(&self, key: &str, default: u64, max: u64) -> Result<u64, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(default),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n >= 1 && n <= max => Ok(n),
                _ => Err(ApiError::invalid(
                    &format!("/{key}"),
                    format!("must be an integer between 1 and {max}"),
                )),
            },
        }
    }
}

/// Offset paging: the slice for `page`/`page_size` and its metadata.
pub fn offset_page<T: Clone>(
    rows: &[T],
    q: &Query,
    default_size: u64,
) -> Result<(Vec<T>, Value), ApiError> {
    let page = q.int("page", 1, u64::MAX)?;
    let size = q.int("page_size", default_size, 100)?;
    let total = rows.len() as u64;
    let start = (page - 1).saturating_mul(size);
    let slice = rows
        .iter()
        .skip(start as usize)
        .take(size as usize)
        .cloned()
        .collect();
    let meta = json!({
        "page": page,
        "page_size": size,
        "total_count": total,
        "total_pages": total.div_ceil(size),
    });
    Ok((slice, meta))
}

/// Cursor paging over rows already in the wanted order: the cursor is the id
/// of the last row of the previous page. `id` extracts a row's id.
pub fn cursor_page<T: Clone>(
    rows: &[T],
    q: &Query,
    default_limit: u64,
    id: impl Fn(&T) -> &str,
) -> Result<(Vec<T>, Value), ApiError> {
    let limit = q.int("limit", default_limit, 100)?;
    let start = match q.get("cursor").filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => match rows.iter().position(|r| id(r) == c) {
            Some(i) => i + 1,
            None => return Err(ApiError::invalid("/cursor", "unknown cursor")),
        },
    };
    let page: Vec<T> = rows
        .iter()
        .skip(start)
        .take(limit as usize)
        .cloned()
        .collect();
    let has_more = start + page.len() < rows.len();
    let next = if has_more {
        page.last().map(|r| id(r).to_string())
    } else {
        None
    };
    let meta = json!({ "has_more": has_more, "limit": limit, "next_cursor": next });
    Ok((page, meta))
}

/// Statuses a sent-requests filter accepts.
pub(crate) const REQUEST_STATUSES: [&str; 5] =
    ["pending", "approved", "rejected", "cancelled", "all"];

/// 200 with one offset page of `rows` (`page`/`page_size`) and its metadata.
pub fn offset_ok(rows: &[Value], q: &Query, default_size: u64) -> ApiResult {
    let (page, meta) = offset_page(rows, q, default_size)?;
    ok_meta(page.into(), meta)
}

/// Cursor paging by `id`, or offset paging when the deprecated
/// `page`/`page_size` are given.
pub(crate) fn page(rows: Vec<Value>, q: &Query, default: u64) -> ApiResult {
    let (page, meta) = if q.get("page").is_some() || q.get("page_size").is_some() {
        offset_page(&rows, q, default)?
    } else {
        cursor_page(&rows, q, default, |v: &Value| {
            v["id"].as_str().unwrap_or_default()
        })?
    };
    ok_meta(page.into(), meta)
}
