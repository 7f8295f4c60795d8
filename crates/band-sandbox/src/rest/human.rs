//! The human API subset (`/api/v1/me/*`) that lets scripts, tests and people
//! act as users: the routes, the handlers only people have (profile, message
//! history, contact requests, resolve), and the shared ones from [`super::shared`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::{delete, get, post};
use axum::Router;

use super::bodies::{CreateRequest, Resolve};
use super::shared::{self, ApiSide, HumanSide, Sb};
use super::{created, offset_ok, ok, page, ApiResult};
use crate::error::ApiError;
use crate::hub::Principal;
use crate::world::{RequestAnswer, World};
use crate::Sandbox;

/// The `/me` routes.
pub fn routes() -> Router<Arc<Sandbox>> {
    shared::routes::<HumanSide>("/api/v1/me")
        .route("/api/v1/me/profile", get(profile))
        .route("/api/v1/me/chats/{chat}/messages", get(list_messages))
        .route(
            "/api/v1/me/contacts/requests",
            get(received).post(create_request),
        )
        .route("/api/v1/me/contacts/requests/sent", get(sent))
        .route("/api/v1/me/contacts/requests/{id}", delete(cancel))
        .route("/api/v1/me/contacts/requests/{id}/approve", post(approve))
        .route("/api/v1/me/contacts/requests/{id}/reject", post(reject))
        .route("/api/v1/me/contacts/resolve", post(resolve))
}

fn user(sb: &Sandbox, h: &HeaderMap) -> Result<Principal, ApiError> {
    HumanSide::caller(sb, h)
}

async fn profile(State(sb): Sb, h: HeaderMap) -> ApiResult {
    let who = user(&sb, &h)?;
    ok(sb.world().user_profile(&who.id))
}

async fn list_messages(
    State(sb): Sb,
    h: HeaderMap,
    Path(chat): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let (who, q) = HumanSide::caller_with_query(&sb, &h, q)?;
    let mut types = q.list("message_types");
    types.extend(q.list("message_type"));
    let rows = sb
        .world()
        .user_messages(&who, &chat, q.get("after"), &types)?;
    page(rows, &q, 20)
}

async fn received(State(sb): Sb, h: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let (who, q) = HumanSide::caller_with_query(&sb, &h, q)?;
    let rows = sb.world().received_requests(&who);
    offset_ok(&rows, &q, 50)
}

async fn sent(State(sb): Sb, h: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let (who, q) = HumanSide::caller_with_query(&sb, &h, q)?;
    let status = q.get("status").unwrap_or("all");
    if !super::REQUEST_STATUSES.contains(&status) {
        return Err(ApiError::invalid("/status", "is invalid"));
    }
    let rows = sb.world().sent_requests(&who, status);
    offset_ok(&rows, &q, 50)
}

async fn create_request(State(sb): Sb, h: HeaderMap, body: Bytes) -> ApiResult {
    let (who, b): (_, CreateRequest) = HumanSide::caller_with_body(&sb, &h, &body)?;
    let r = b.contact_request;
    created(sb.change(|w| w.request_contact(&who, &r.recipient_handle, r.message))?)
}

/// Approve, reject and cancel: one answer to the request in the path.
async fn answer(sb: &Sandbox, h: &HeaderMap, id: &str, answer: RequestAnswer) -> ApiResult {
    let who = user(sb, h)?;
    ok(sb.change(|w| w.answer_request(&who, Some(id), None, answer))?)
}

async fn approve(State(sb): Sb, h: HeaderMap, Path(id): Path<String>) -> ApiResult {
    answer(&sb, &h, &id, RequestAnswer::Approve).await
}

async fn reject(State(sb): Sb, h: HeaderMap, Path(id): Path<String>) -> ApiResult {
    answer(&sb, &h, &id, RequestAnswer::Reject).await
}

async fn cancel(State(sb): Sb, h: HeaderMap, Path(id): Path<String>) -> ApiResult {
    answer(&sb, &h, &id, RequestAnswer::Cancel).await
}

async fn resolve(State(sb): Sb, h: HeaderMap, body: Bytes) -> ApiResult {
    let (_, b): (_, Resolve) = HumanSide::caller_with_body(&sb, &h, &body)?;
    let handle = b
        .handle
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("handle is required"))?;
    let w = sb.world();
    ok(World::resolved(w.resolve(&handle)?))
}
