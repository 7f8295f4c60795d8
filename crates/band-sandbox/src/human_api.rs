//! The human API subset (`/api/v1/me/*`) that lets scripts, tests and people
//! act as users: profile, chats, messages, participants, contacts, peers.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::{delete, get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::agent_api::{ParticipantBody, RemoveBody};
use super::http::{
    created, cursor_page, offset_page, ok, ok_meta, parse_body, ApiError, ApiResult, Query,
};
use super::hub::Principal;
use super::world::Respond;
use super::Sandbox;
use band_wire::model::EntityType;

type Sb = State<Arc<Sandbox>>;

/// The `/me` routes.
pub fn routes() -> Router<Arc<Sandbox>> {
    Router::new()
        .route("/api/v1/me/profile", get(profile))
        .route("/api/v1/me/chats", get(list_chats).post(create_chat))
        .route("/api/v1/me/chats/{chat}", get(get_chat))
        .route(
            "/api/v1/me/chats/{chat}/messages",
            get(list_messages).post(send_message),
        )
        .route(
            "/api/v1/me/chats/{chat}/participants",
            get(list_participants).post(add_participant),
        )
        .route(
            "/api/v1/me/chats/{chat}/participants/{pid}",
            delete(remove_participant),
        )
        .route("/api/v1/me/contacts", get(contacts))
        .route(
            "/api/v1/me/contacts/requests",
            get(received).post(create_request),
        )
        .route("/api/v1/me/contacts/requests/sent", get(sent))
        .route("/api/v1/me/contacts/requests/{id}", delete(cancel))
        .route("/api/v1/me/contacts/requests/{id}/approve", post(approve))
        .route("/api/v1/me/contacts/requests/{id}/reject", post(reject))
        .route("/api/v1/me/contacts/remove", post(remove_contact))
        .route("/api/v1/me/contacts/resolve", post(resolve))
        .route("/api/v1/me/peers", get(peers))
}

fn user(sb: &Sandbox, h: &HeaderMap) -> Result<Principal, ApiError> {
    sb.caller(h, EntityType::User)
}

/// Cursor paging, or offset paging when the deprecated `page`/`page_size` are given.
fn page(rows: Vec<Value>, q: &Query, default: u64, id_key: &'static str) -> ApiResult {
    let (page, meta) = if q.get("page").is_some() || q.get("page_size").is_some() {
        offset_page(&rows, q, default)?
    } else {
        cursor_page(&rows, q, default, |v: &Value| {
            v[id_key].as_str().unwrap_or_default()
        })?
    };
    ok_meta(json!(page), meta)
}

async fn profile(State(sb): Sb, h: HeaderMap) -> ApiResult {
    let who = user(&sb, &h)?;
    ok(sb.world().user_profile(&who.id))
}

async fn list_chats(State(sb): Sb, h: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let who = user(&sb, &h)?;
    let q = Query::parse(q.as_deref());
    let mut rows = sb.world().list_rooms(&who, &q.list("include"), sb.hub());
    // Newest first unless `order=asc`.
    if q.get("order") != Some("asc") {
        rows.reverse();
    }
    page(rows, &q, 20, "id")
}

#[derive(Deserialize, Default)]
struct ChatBody {
    #[serde(default)]
    chat: Option<ChatFields>,
}

#[derive(Deserialize, Default)]
struct ChatFields {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    task_id: Option<String>,
}

async fn create_chat(State(sb): Sb, h: HeaderMap, body: Bytes) -> ApiResult {
    let who = user(&sb, &h)?;
    let b: ChatBody = parse_body(&body)?;
    let c = b.chat.unwrap_or_default();
    created(sb.world().create_room(&who, c.title, c.task_id, sb.hub())?)
}

async fn get_chat(State(sb): Sb, h: HeaderMap, Path(chat): Path<String>) -> ApiResult {
    let who = user(&sb, &h)?;
    ok(sb.world().get_room(&who, &chat)?)
}

async fn list_messages(
    State(sb): Sb,
    h: HeaderMap,
    Path(chat): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let who = user(&sb, &h)?;
    let q = Query::parse(q.as_deref());
    let mut types = q.list("message_types");
    types.extend(q.list("message_type"));
    let rows = sb
        .world()
        .user_messages(&who, &chat, q.get("after"), &types)?;
    page(rows, &q, 20, "id")
}

#[derive(Deserialize)]
struct MessageBody {
    #[serde(default)]
    message: Value,
}

async fn send_message(
    State(sb): Sb,
    h: HeaderMap,
    Path(chat): Path<String>,
    body: Bytes,
) -> ApiResult {
    let who = user(&sb, &h)?;
    let b: MessageBody = parse_body(&body)?;
    created(sb.world().send_message(&who, &chat, &b.message, sb.hub())?)
}

async fn list_participants(
    State(sb): Sb,
    h: HeaderMap,
    Path(chat): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let who = user(&sb, &h)?;
    let q = Query::parse(q.as_deref());
    let rows = sb
        .world()
        .list_participants(&who, &chat, q.get("participant_type"), sb.hub())?;
    page(rows, &q, 20, "id")
}

async fn add_participant(
    State(sb): Sb,
    h: HeaderMap,
    Path(chat): Path<String>,
    body: Bytes,
) -> ApiResult {
    let who = user(&sb, &h)?;
    let b: ParticipantBody = parse_body(&body)?;
    let p = b.participant;
    created(sb.world().add_participant(
        &who,
        &chat,
        &p.participant_id,
        p.role.as_deref(),
        sb.hub(),
    )?)
}

async fn remove_participant(
    State(sb): Sb,
    h: HeaderMap,
    Path((chat, pid)): Path<(String, String)>,
) -> ApiResult {
    let who = user(&sb, &h)?;
    ok(sb.world().remove_participant(&who, &chat, &pid, sb.hub())?)
}

async fn contacts(State(sb): Sb, h: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let who = user(&sb, &h)?;
    let q = Query::parse(q.as_deref());
    let rows = sb.world().contacts(&who, sb.hub());
    let (p, meta) = offset_page(&rows, &q, 50)?;
    ok_meta(json!(p), meta)
}

async fn received(State(sb): Sb, h: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let who = user(&sb, &h)?;
    let q = Query::parse(q.as_deref());
    let rows = sb.world().received_requests(&who);
    let (p, meta) = offset_page(&rows, &q, 50)?;
    ok_meta(json!(p), meta)
}

async fn sent(State(sb): Sb, h: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let who = user(&sb, &h)?;
    let q = Query::parse(q.as_deref());
    let status = q.get("status").unwrap_or("all");
    if !["pending", "approved", "rejected", "cancelled", "all"].contains(&status) {
        return Err(ApiError::invalid("/status", "is invalid"));
    }
    let rows = sb.world().sent_requests(&who, status);
    let (p, meta) = offset_page(&rows, &q, 50)?;
    ok_meta(json!(p), meta)
}

#[derive(Deserialize)]
struct RequestBody {
    contact_request: RequestFields,
}

#[derive(Deserialize)]
struct RequestFields {
    recipient_handle: String,
    #[serde(default)]
    message: Option<String>,
}

async fn create_request(State(sb): Sb, h: HeaderMap, body: Bytes) -> ApiResult {
    let who = user(&sb, &h)?;
    let b: RequestBody = parse_body(&body)?;
    let r = b.contact_request;
    created(
        sb.world()
            .request_contact(&who, &r.recipient_handle, r.message, sb.hub())?,
    )
}

async fn act(sb: &Sandbox, h: &HeaderMap, id: &str, action: Respond) -> ApiResult {
    let who = user(sb, h)?;
    ok(sb.world().respond(&who, Some(id), None, action, sb.hub())?)
}

async fn approve(State(sb): Sb, h: HeaderMap, Path(id): Path<String>) -> ApiResult {
    act(&sb, &h, &id, Respond::Approve).await
}

async fn reject(State(sb): Sb, h: HeaderMap, Path(id): Path<String>) -> ApiResult {
    act(&sb, &h, &id, Respond::Reject).await
}

async fn cancel(State(sb): Sb, h: HeaderMap, Path(id): Path<String>) -> ApiResult {
    act(&sb, &h, &id, Respond::Cancel).await
}

async fn remove_contact(State(sb): Sb, h: HeaderMap, body: Bytes) -> ApiResult {
    let who = user(&sb, &h)?;
    let b: RemoveBody = parse_body(&body)?;
    ok(sb
        .world()
        .remove_contact(&who, b.contact_id.as_deref(), b.handle.as_deref(), sb.hub())?)
}

#[derive(Deserialize)]
struct ResolveBody {
    #[serde(default)]
    handle: Option<String>,
}

async fn resolve(State(sb): Sb, h: HeaderMap, body: Bytes) -> ApiResult {
    user(&sb, &h)?;
    let b: ResolveBody = parse_body(&body)?;
    let handle = b
        .handle
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("handle is required"))?;
    let w = sb.world();
    let e = w
        .by_handle(&handle)
        .ok_or_else(|| ApiError::not_found("no entity with that handle"))?;
    ok(json!({"type": e.kind.as_str(), "handle": e.handle, "name": e.name}))
}

async fn peers(State(sb): Sb, h: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let who = user(&sb, &h)?;
    let q = Query::parse(q.as_deref());
    let rows = sb
        .world()
        .peers(&who, q.get("not_in_chat"), q.get("type"), sb.hub());
    let (p, meta) = offset_page(&rows, &q, 50)?;
    ok_meta(json!(p), meta)
}
