//! Checks the platform makes on every API request before a handler sees it:
//! the body's size and content type ([`json_body`], both APIs, before auth,
//! as the platform parses bodies before it routes) and, on the human API,
//! undeclared query parameters ([`human_query`], after auth).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{json, Map};

use super::Query;
use crate::error::ApiError;
use crate::Sandbox;
use band_wire::model::EntityType;

/// The largest request body the sandbox reads: 2 MiB.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// How much of an oversized body is still read (and thrown away) before the
/// 413, so a client that is still sending gets the answer rather than a reset.
const DRAIN_CAP_BYTES: usize = 64 * 1024 * 1024;

/// Refuses a body over [`MAX_BODY_BYTES`] (413) and a non-empty body whose
/// content type is not `application/json` (415), both with the error body.
pub async fn json_body(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        tracing::info!(path = %parts.uri.path(), bytes = ?declared, "request body over 2 MiB: 413");
        drain(body).await;
        return too_large().into_response();
    }
    let bytes = match read_limited(body).await {
        Ok(Some(b)) => b,
        Ok(None) => {
            tracing::info!(path = %parts.uri.path(), "request body over 2 MiB: 413");
            return too_large().into_response();
        }
        Err(e) => {
            return ApiError::bad_request(format!("cannot read the request body: {e}"))
                .into_response()
        }
    };
    if !bytes.is_empty() {
        let ct = parts
            .headers
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        if !ct.as_deref().is_some_and(is_json) {
            let got = ct.as_deref().unwrap_or("no content type");
            tracing::info!(path = %parts.uri.path(), content_type = got, "body not application/json: 415");
            return ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("request bodies must be application/json, got {got}"),
            )
            .into_response();
        }
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// `application/json`, in any letter case, with or without parameters.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

fn too_large() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "request body is larger than 2 MiB",
    )
}

/// The whole body, or `None` when it passes [`MAX_BODY_BYTES`] (the rest is
/// drained up to a cap first).
async fn read_limited(body: Body) -> Result<Option<Bytes>, axum::Error> {
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(data) = stream.next().await {
        let data = data?;
        if buf.len() + data.len() > MAX_BODY_BYTES {
            drain_stream(stream).await;
            return Ok(None);
        }
        buf.extend_from_slice(&data);
    }
    Ok(Some(Bytes::from(buf)))
}

/// Reads and drops what the client still sends, up to [`DRAIN_CAP_BYTES`].
async fn drain(body: Body) {
    drain_stream(body.into_data_stream()).await;
}

async fn drain_stream(mut stream: axum::body::BodyDataStream) {
    let mut seen = 0usize;
    while let Some(Ok(data)) = stream.next().await {
        seen += data.len();
        if seen > DRAIN_CAP_BYTES {
            return;
        }
    }
}

/// The query parameters each human route declares, by method and route
/// pattern; `None` for a route not in the table (nothing is checked).
fn declared(method: &Method, route: &str) -> Option<&'static [&'static str]> {
    let tail = route.strip_prefix("/api/v1/me")?;
    let list: &'static [&'static str] = match (method.as_str(), tail) {
        ("GET", "/chats") => &[
            "cursor",
            "limit",
            "page",
            "page_size",
            "status",
            "type",
            "sort_by",
            "order",
            "include",
        ],
        ("GET", "/chats/{chat}") => &["include"],
        ("GET", "/chats/{chat}/messages") => &[
            "cursor",
            "limit",
            "page",
            "page_size",
            "message_type",
            "message_types",
            "exclude_message_types",
            "since",
            "after",
            "before",
            "around",
        ],
        ("GET", "/chats/{chat}/participants") => {
            &["participant_type", "cursor", "limit", "page", "page_size"]
        }
        ("GET", "/contacts") | ("GET", "/contacts/requests") => &["page", "page_size"],
        ("GET", "/contacts/requests/sent") => &["status", "page", "page_size"],
        ("GET", "/peers") => &["not_in_chat", "type", "page", "page_size"],
        _ => &[],
    };
    Some(list)
}

/// On the human API, a query parameter the route does not declare is a 422
/// `validation_error` naming each one under its JSON pointer, as the
/// platform answers (`Unexpected field: NAME`). Auth is checked first.
pub async fn human_query(
    State(sb): State<Arc<Sandbox>>,
    route: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let allowed = route.and_then(|r| declared(req.method(), r.as_str()));
    let Some(allowed) = allowed else {
        return next.run(req).await;
    };
    let q = Query::parse(req.uri().query());
    let mut unknown: Vec<&str> = q
        .keys()
        .filter(|k| !allowed.contains(k))
        .collect::<Vec<_>>();
    if unknown.is_empty() {
        return next.run(req).await;
    }
    if let Err(e) = sb.caller(req.headers(), EntityType::User) {
        return e.into_response();
    }
    unknown.sort_unstable();
    unknown.dedup();
    let mut details = Map::new();
    for k in &unknown {
        details.insert(format!("/{k}"), json!([format!("Unexpected field: {k}")]));
    }
    let mut err = ApiError::invalid("", format!("Unexpected field: {}", unknown.join(", ")));
    err.details = Some(Box::new(details.into()));
    err.into_response()
}
