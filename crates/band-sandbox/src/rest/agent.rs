//! The agent API (`/api/v1/agent/*`): the routes, the handlers only agents
//! have (message lifecycle, events, context, contact requests), and the
//! shared ones from [`super::shared`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::bodies::{Activity, AddContact, AnswerRequest, Failed, PostEvent};
use super::shared::{self, AgentSide, ApiSide, Sb};
use super::{offset_page, ok, ok_meta, ApiResult, Query};
use crate::error::ApiError;
use crate::hub::Principal;
use crate::world::DeliveryUpdate;
use crate::Sandbox;

/// The agent routes.
pub fn routes() -> Router<Arc<Sandbox>> {
    shared::routes::<AgentSide>("/api/v1/agent")
        .route("/api/v1/agent/me", get(me))
        .route("/api/v1/agent/chats/{chat}/messages", get(list_messages))
        .route("/api/v1/agent/chats/{chat}/messages/next", get(next))
        .route(
            "/api/v1/agent/chats/{chat}/messages/{msg}/processing",
            post(|sb: Sb, h: HeaderMap, path: MessagePath| {
                update_delivery(sb, h, path, DeliveryUpdate::Processing)
            }),
        )
        .route(
            "/api/v1/agent/chats/{chat}/messages/{msg}/processed",
            post(|sb: Sb, h: HeaderMap, path: MessagePath| {
                update_delivery(sb, h, path, DeliveryUpdate::Processed)
            }),
        )
        .route(
            "/api/v1/agent/chats/{chat}/messages/{msg}/failed",
            post(failed),
        )
        .route("/api/v1/agent/chats/{chat}/events", post(post_event))
        .route("/api/v1/agent/chats/{chat}/activity", post(activity))
        .route("/api/v1/agent/chats/{chat}/context", get(context))
        .route("/api/v1/agent/contacts/requests", get(contact_requests))
        .route("/api/v1/agent/contacts/add", post(contact_add))
        .route(
            "/api/v1/agent/contacts/requests/respond",
            post(contact_respond),
        )
}

/// The `{chat}` and `{msg}` of a message lifecycle route.
type MessagePath = Path<(String, String)>;

fn agent(sb: &Sandbox, h: &HeaderMap) -> Result<Principal, ApiError> {
    AgentSide::caller(sb, h)
}

async fn me(State(sb): Sb, h: HeaderMap) -> ApiResult {
    let who = agent(&sb, &h)?;
    ok(sb.world().agent_me(&who.id))
}

/// Pages a message list: deprecated `page`/`page_size` when given, else cursor.
fn page_messages(rows: Vec<Value>, q: &Query, default_limit: u64) -> ApiResult {
    let rows = if q.get("sort_order") == Some("desc") {
        rows.into_iter().rev().collect()
    } else if q.get("sort_order").is_some_and(|s| s != "asc") {
        return Err(ApiError::invalid("/sort_order", "must be asc or desc"));
    } else {
        rows
    };
    super::page(rows, q, default_limit)
}

async fn list_messages(
    State(sb): Sb,
    h: HeaderMap,
    Path(chat): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let (who, q) = AgentSide::caller_with_query(&sb, &h, q)?;
    let rows = sb.world().agent_messages(&who, &chat, q.get("status"))?;
    page_messages(rows, &q, 20)
}

async fn next(State(sb): Sb, h: HeaderMap, Path(chat): Path<String>) -> ApiResult {
    let who = agent(&sb, &h)?;
    let found = sb.world().next_message(&who, &chat)?;
    match found {
        Some(m) => ok(m),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// The three lifecycle routes: one delivery update each. While the agent's
/// execution in the room is stopped, `/processing` answers 204 and starts nothing.
async fn update_delivery(
    State(sb): Sb,
    h: HeaderMap,
    Path((chat, msg)): MessagePath,
    update: DeliveryUpdate,
) -> ApiResult {
    let who = agent(&sb, &h)?;
    let mut world = sb.world();
    if update == DeliveryUpdate::Processing {
        world.readable_room(&who, &chat)?;
        if world.is_stopped(&who.id, &chat) {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
    }
    ok(world.update_delivery(&who, &chat, &msg, update)?)
}

async fn failed(sb: Sb, h: HeaderMap, path: MessagePath, body: Bytes) -> ApiResult {
    let (_, b): (_, Failed) = AgentSide::caller_with_body(&sb, &h, &body)?;
    update_delivery(sb, h, path, b.update()).await
}

async fn post_event(
    State(sb): Sb,
    h: HeaderMap,
    Path(chat): Path<String>,
    body: Bytes,
) -> ApiResult {
    let (who, b): (_, PostEvent) = AgentSide::caller_with_body(&sb, &h, &body)?;
    super::created(sb.change(|w| {
        // An unknown room is a 404 before any complaint about the body.
        w.writable_room(&who, &chat)?;
        w.post_event(&who, &chat, b.checked()?)
    })?)
}

/// The working indicator: echoed back, except that it is `false` while the
/// agent's execution in the room is stopped (how the platform tells it).
async fn activity(State(sb): Sb, h: HeaderMap, Path(chat): Path<String>, body: Bytes) -> ApiResult {
    let (who, b): (_, Activity) = AgentSide::caller_with_body(&sb, &h, &body)?;
    let world = sb.world();
    world.get_room(&who, &chat)?;
    let working = b.working && !world.is_stopped(&who.id, &chat);
    ok(json!({ "working": working }))
}

async fn context(
    State(sb): Sb,
    h: HeaderMap,
    Path(chat): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let (who, q) = AgentSide::caller_with_query(&sb, &h, q)?;
    let rows = sb.world().context(&who, &chat)?;
    page_messages(rows, &q, 50)
}

async fn contact_requests(State(sb): Sb, h: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let (who, q) = AgentSide::caller_with_query(&sb, &h, q)?;
    let status = q.get("sent_status").unwrap_or("pending");
    if !super::REQUEST_STATUSES.contains(&status) {
        return Err(ApiError::invalid("/sent_status", "is invalid"));
    }
    let (received, sent) = {
        let w = sb.world();
        (w.received_requests(&who), w.sent_requests(&who, status))
    };
    let (r, rm) = offset_page(&received, &q, 50)?;
    let (s, sm) = offset_page(&sent, &q, 50)?;
    ok_meta(
        json!({"received": r, "sent": s}),
        json!({
            "page": rm["page"], "page_size": rm["page_size"],
            "received": {"total": rm["total_count"], "total_pages": rm["total_pages"]},
            "sent": {"total": sm["total_count"], "total_pages": sm["total_pages"]},
        }),
    )
}

async fn contact_add(State(sb): Sb, h: HeaderMap, body: Bytes) -> ApiResult {
    let (who, b): (_, AddContact) = AgentSide::caller_with_body(&sb, &h, &body)?;
    let handle = b
        .handle
        .ok_or_else(|| ApiError::bad_request("handle is required"))?;
    let r = sb.change(|w| w.request_contact(&who, &handle, b.message))?;
    ok(json!({"id": r["id"], "status": r["status"]}))
}

async fn contact_respond(State(sb): Sb, h: HeaderMap, body: Bytes) -> ApiResult {
    let (who, b): (_, AnswerRequest) = AgentSide::caller_with_body(&sb, &h, &body)?;
    let answer = b.answer()?;
    ok(sb
        .change(|w| w.answer_request(&who, b.request_id.as_deref(), b.handle.as_deref(), answer))?)
}
