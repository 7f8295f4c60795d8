//! The agent REST API (`/api/v1/agent/*`): thin handlers that authenticate
//! with an agent key, parse the request, and call into [`super::world`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::http::{
    created, cursor_page, offset_page, ok, ok_meta, parse_body, ApiError, ApiResult, Query,
};
use super::world::{Mark, Respond};
use super::Sandbox;
use band_wire::model::EntityType;

type Sb = State<Arc<Sandbox>>;

/// The agent routes.
pub fn routes() -> Router<Arc<Sandbox>> {
    Router::new()
        .route("/api/v1/agent/me", get(me))
        .route("/api/v1/agent/peers", get(peers))
        .route("/api/v1/agent/chats", get(list_chats).post(create_chat))
        .route("/api/v1/agent/chats/{chat}", get(get_chat))
        .route(
            "/api/v1/agent/chats/{chat}/messages",
            get(list_messages).post(send_message),
        )
        .route("/api/v1/agent/chats/{chat}/messages/next", get(next))
        .route(
            "/api/v1/agent/chats/{chat}/messages/{msg}/processing",
            post(processing),
        )
        .route(
            "/api/v1/agent/chats/{chat}/messages/{msg}/processed",
            post(processed),
        )
        .route(
            "/api/v1/agent/chats/{chat}/messages/{msg}/failed",
            post(failed),
        )
        .route("/api/v1/agent/chats/{chat}/events", post(post_event))
        .route("/api/v1/agent/chats/{chat}/activity", post(activity))
        .route(
            "/api/v1/agent/chats/{chat}/participants",
            get(list_participants).post(add_participant),
        )
        .route(
            "/api/v1/agent/chats/{chat}/participants/{pid}",
            delete(remove_participant),
        )
        .route("/api/v1/agent/chats/{chat}/context", get(context))
        .route("/api/v1/agent/contacts", get(contacts))
        .route("/api/v1/agent/contacts/requests", get(contact_requests))
        .route("/api/v1/agent/contacts/add", post(contact_add))
        .route(
            "/api/v1/agent/contacts/requests/respond",
            post(contact_respond),
        )
        .route("/api/v1/agent/contacts/remove", post(contact_remove))
}

fn agent(sb: &Sandbox, h: &HeaderMap) -> Result<super::hub::Principal, ApiError> {
    sb.caller(h, EntityType::Agent)
}

async fn me(State(sb): Sb, h: HeaderMap) -> ApiResult {
    let who = agent(&sb, &h)?;
    ok(sb.world().agent_me(&who.id))
}

async fn peers(State(sb): Sb, h: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let who = agent(&sb, &h)?;
    let q = Query::parse(q.as_deref());
    let rows = sb
        .world()
        .peers(&who, q.get("not_in_chat"), q.get("type"), sb.hub());
    let (page, meta) = offset_page(&rows, &q, 50)?;
    ok_meta(json!(page), meta)
}

async fn list_chats(State(sb): Sb, h: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let who = agent(&sb, &h)?;
    let q = Query::parse(q.as_deref());
    let rows = sb.world().list_rooms(&who, &q.list("include"), sb.hub());
    let (page, meta) = offset_page(&rows, &q, 50)?;
    ok_meta(json!(page), meta)
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
    let who = agent(&sb, &h)?;
    let b: ChatBody = parse_body(&body)?;
    let c = b.chat.unwrap_or_default();
    created(sb.world().create_room(&who, c.title, c.task_id, sb.hub())?)
}

async fn get_chat(State(sb): Sb, h: HeaderMap, Path(chat): Path<String>) -> ApiResult {
    let who = agent(&sb, &h)?;
    ok(sb.world().get_room(&who, &chat)?)
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
    let (page, meta) = if q.get("page").is_some() || q.get("page_size").is_some() {
        offset_page(&rows, q, default_limit)?
    } else {
        cursor_page(&rows, q, default_limit, |m: &Value| {
            m["id"].as_str().unwrap_or_default()
        })?
    };
    ok_meta(json!(page), meta)
}

async fn list_messages(
    State(sb): Sb,
    h: HeaderMap,
    Path(chat): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let who = agent(&sb, &h)?;
    let q = Query::parse(q.as_deref());
    let rows = sb.world().agent_messages(&who, &chat, q.get("status"))?;
    page_messages(rows, &q, 20)
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
    let who = agent(&sb, &h)?;
    let b: MessageBody = parse_body(&body)?;
    created(sb.world().send_message(&who, &chat, &b.message, sb.hub())?)
}

async fn next(State(sb): Sb, h: HeaderMap, Path(chat): Path<String>) -> ApiResult {
    let who = agent(&sb, &h)?;
    let found = sb.world().next_message(&who, &chat)?;
    match found {
        Some(m) => ok(m),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

async fn processing(
    State(sb): Sb,
    h: HeaderMap,
    Path((chat, msg)): Path<(String, String)>,
) -> ApiResult {
    let who = agent(&sb, &h)?;
    ok(sb.world().mark(&who, &chat, &msg, Mark::Processing, None)?)
}

async fn processed(
    State(sb): Sb,
    h: HeaderMap,
    Path((chat, msg)): Path<(String, String)>,
) -> ApiResult {
    let who = agent(&sb, &h)?;
    ok(sb.world().mark(&who, &chat, &msg, Mark::Processed, None)?)
}

#[derive(Deserialize, Default)]
struct FailedBody {
    #[serde(default)]
    error: Option<String>,
}

async fn failed(
    State(sb): Sb,
    h: HeaderMap,
    Path((chat, msg)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let who = agent(&sb, &h)?;
    let b: FailedBody = parse_body(&body)?;
    ok(sb.world().mark(&who, &chat, &msg, Mark::Failed, b.error)?)
}

#[derive(Deserialize)]
struct EventBody {
    #[serde(default)]
    event: Value,
}

async fn post_event(
    State(sb): Sb,
    h: HeaderMap,
    Path(chat): Path<String>,
    body: Bytes,
) -> ApiResult {
    let who = agent(&sb, &h)?;
    let b: EventBody = parse_body(&body)?;
    created(sb.world().post_event(&who, &chat, &b.event, sb.hub())?)
}

#[derive(Deserialize)]
struct ActivityBody {
    working: bool,
}

/// The working indicator: echoed back, since the sandbox never stops a room.
/// (The platform answers `working:false` to a `true` only while execution is stopped.)
async fn activity(State(sb): Sb, h: HeaderMap, Path(chat): Path<String>, body: Bytes) -> ApiResult {
    let who = agent(&sb, &h)?;
    let b: ActivityBody = parse_body(&body)?;
    sb.world().get_room(&who, &chat)?;
    ok(json!({ "working": b.working }))
}

async fn list_participants(State(sb): Sb, h: HeaderMap, Path(chat): Path<String>) -> ApiResult {
    let who = agent(&sb, &h)?;
    ok(json!(sb.world().list_participants(
        &who,
        &chat,
        None,
        sb.hub()
    )?))
}

#[derive(Deserialize)]
pub(crate) struct ParticipantBody {
    pub(crate) participant: ParticipantFields,
}

#[derive(Deserialize)]
pub(crate) struct ParticipantFields {
    pub(crate) participant_id: String,
    #[serde(default)]
    pub(crate) role: Option<String>,
}

async fn add_participant(
    State(sb): Sb,
    h: HeaderMap,
    Path(chat): Path<String>,
    body: Bytes,
) -> ApiResult {
    let who = agent(&sb, &h)?;
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
    let who = agent(&sb, &h)?;
    ok(sb.world().remove_participant(&who, &chat, &pid, sb.hub())?)
}

async fn context(
    State(sb): Sb,
    h: HeaderMap,
    Path(chat): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let who = agent(&sb, &h)?;
    let q = Query::parse(q.as_deref());
    let rows = sb.world().context(&who, &chat)?;
    page_messages(rows, &q, 50)
}

async fn contacts(State(sb): Sb, h: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let who = agent(&sb, &h)?;
    let q = Query::parse(q.as_deref());
    let rows = sb.world().contacts(&who, sb.hub());
    let (page, meta) = offset_page(&rows, &q, 50)?;
    ok_meta(json!(page), meta)
}

async fn contact_requests(State(sb): Sb, h: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let who = agent(&sb, &h)?;
    let q = Query::parse(q.as_deref());
    let status = q.get("sent_status").unwrap_or("pending");
    if !["pending", "approved", "rejected", "cancelled", "all"].contains(&status) {
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

#[derive(Deserialize)]
struct AddBody {
    #[serde(default)]
    handle: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

async fn contact_add(State(sb): Sb, h: HeaderMap, body: Bytes) -> ApiResult {
    let who = agent(&sb, &h)?;
    let b: AddBody = parse_body(&body)?;
    let handle = b
        .handle
        .ok_or_else(|| ApiError::bad_request("handle is required"))?;
    let r = sb
        .world()
        .request_contact(&who, &handle, b.message, sb.hub())?;
    ok(json!({"id": r["id"], "status": r["status"]}))
}

#[derive(Deserialize)]
struct RespondBody {
    action: String,
    #[serde(default)]
    handle: Option<String>,
    #[serde(default)]
    request_id: Option<String>,
}

async fn contact_respond(State(sb): Sb, h: HeaderMap, body: Bytes) -> ApiResult {
    let who = agent(&sb, &h)?;
    let b: RespondBody = parse_body(&body)?;
    let action = match b.action.as_str() {
        "approve" => Respond::Approve,
        "reject" => Respond::Reject,
        "cancel" => Respond::Cancel,
        _ => {
            return Err(ApiError::invalid(
                "/action",
                "must be approve, reject or cancel",
            ))
        }
    };
    ok(sb.world().respond(
        &who,
        b.request_id.as_deref(),
        b.handle.as_deref(),
        action,
        sb.hub(),
    )?)
}

#[derive(Deserialize)]
pub(crate) struct RemoveBody {
    #[serde(default)]
    pub(crate) contact_id: Option<String>,
    #[serde(default)]
    pub(crate) handle: Option<String>,
}

async fn contact_remove(State(sb): Sb, h: HeaderMap, body: Bytes) -> ApiResult {
    let who = agent(&sb, &h)?;
    let b: RemoveBody = parse_body(&body)?;
    ok(sb
        .world()
        .remove_contact(&who, b.contact_id.as_deref(), b.handle.as_deref(), sb.hub())?)
}
