//! Handlers the agent and human APIs share: the same operation for either
//! kind of caller, chosen by the [`ApiSide`] type parameter of the route.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::{delete, get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::bodies::{AddParticipant, CreateChat, RemoveContact, SendMessage};
use super::{created, offset_ok, ok, page, parse_body, ApiResult, Query};
use crate::error::ApiError;
use crate::hub::Principal;
use crate::Sandbox;
use band_wire::model::EntityType;

/// The sandbox as axum state.
pub type Sb = State<Arc<Sandbox>>;

/// Which API a route belongs to: the kind of key its callers must hold.
pub trait ApiSide: Send + Sync + 'static {
    /// Agent for `/api/v1/agent/*`, User for `/api/v1/me/*`.
    const KIND: EntityType;

    /// The authenticated caller (401 without a valid key, 403 for the other kind).
    fn caller(sb: &Sandbox, headers: &HeaderMap) -> Result<Principal, ApiError> {
        sb.caller(headers, Self::KIND)
    }

    /// The caller, then the parsed query string.
    fn caller_with_query(
        sb: &Sandbox,
        headers: &HeaderMap,
        raw: Option<String>,
    ) -> Result<(Principal, Query), ApiError> {
        let who = Self::caller(sb, headers)?;
        Ok((who, Query::parse(raw.as_deref())))
    }

    /// The caller, then its parsed JSON body (auth before the body, as every route does).
    fn caller_with_body<T: DeserializeOwned>(
        sb: &Sandbox,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(Principal, T), ApiError> {
        let who = Self::caller(sb, headers)?;
        Ok((who, parse_body(body)?))
    }

    /// A page of the caller's rooms (oldest first as the world lists them).
    fn room_page(rows: Vec<Value>, q: &Query) -> ApiResult;

    /// The participant type filter this API reads from the query, if any.
    fn participant_type(q: &Query) -> Option<&str>;

    /// The participant list as this API answers it.
    fn participant_page(rows: Vec<Value>, q: &Query) -> ApiResult;
}

/// The agent API (`/api/v1/agent/*`).
pub struct AgentSide;

impl ApiSide for AgentSide {
    const KIND: EntityType = EntityType::Agent;

    fn room_page(rows: Vec<Value>, q: &Query) -> ApiResult {
        offset_ok(&rows, q, 50)
    }

    fn participant_type(_: &Query) -> Option<&str> {
        None
    }

    /// Agents get every participant, unpaged.
    fn participant_page(rows: Vec<Value>, _: &Query) -> ApiResult {
        ok(rows.into())
    }
}

/// The human API (`/api/v1/me/*`).
pub struct HumanSide;

impl ApiSide for HumanSide {
    const KIND: EntityType = EntityType::User;

    /// Newest first unless `order=asc`.
    fn room_page(mut rows: Vec<Value>, q: &Query) -> ApiResult {
        if q.get("order") != Some("asc") {
            rows.reverse();
        }
        page(rows, q, 20)
    }

    fn participant_type(q: &Query) -> Option<&str> {
        q.get("participant_type")
    }

    fn participant_page(rows: Vec<Value>, q: &Query) -> ApiResult {
        page(rows, q, 20)
    }
}

/// The routes both APIs serve alike, below `prefix` (`/api/v1/agent` or `/api/v1/me`).
/// `…/chats/{chat}/messages` has only its POST here: each API lists messages its own way.
pub fn routes<S: ApiSide>(prefix: &str) -> Router<Arc<Sandbox>> {
    let at = |tail: &str| format!("{prefix}{tail}");
    Router::new()
        .route(&at("/peers"), get(peers::<S>))
        .route(&at("/chats"), get(list_chats::<S>).post(create_chat::<S>))
        .route(&at("/chats/{chat}"), get(get_chat::<S>))
        .route(&at("/chats/{chat}/messages"), post(send_message::<S>))
        .route(
            &at("/chats/{chat}/participants"),
            get(list_participants::<S>).post(add_participant::<S>),
        )
        .route(
            &at("/chats/{chat}/participants/{pid}"),
            delete(remove_participant::<S>),
        )
        .route(&at("/contacts"), get(contacts::<S>))
        .route(&at("/contacts/remove"), post(remove_contact::<S>))
}

/// `GET …/chats`.
pub async fn list_chats<S: ApiSide>(
    State(sb): Sb,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let (who, q) = S::caller_with_query(&sb, &h, q)?;
    let online = sb.hub().presence();
    let rows = sb.world().list_rooms(&who, &q.list("include"), &online);
    S::room_page(rows, &q)
}

/// `GET …/chats/{chat}/participants`.
pub async fn list_participants<S: ApiSide>(
    State(sb): Sb,
    h: HeaderMap,
    Path(chat): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let (who, q) = S::caller_with_query(&sb, &h, q)?;
    let online = sb.hub().presence();
    let rows = sb
        .world()
        .list_participants(&who, &chat, S::participant_type(&q), &online)?;
    S::participant_page(rows, &q)
}

/// `POST …/chats`.
pub async fn create_chat<S: ApiSide>(State(sb): Sb, h: HeaderMap, body: Bytes) -> ApiResult {
    let (who, b): (_, CreateChat) = S::caller_with_body(&sb, &h, &body)?;
    let c = b.chat.unwrap_or_default();
    created(sb.change(|w| w.create_room(&who, c.title, c.task_id))?)
}

/// `GET …/chats/{chat}`.
pub async fn get_chat<S: ApiSide>(
    State(sb): Sb,
    h: HeaderMap,
    Path(chat): Path<String>,
) -> ApiResult {
    let who = S::caller(&sb, &h)?;
    ok(sb.world().get_room(&who, &chat)?)
}

/// `POST …/chats/{chat}/messages`.
pub async fn send_message<S: ApiSide>(
    State(sb): Sb,
    h: HeaderMap,
    Path(chat): Path<String>,
    body: Bytes,
) -> ApiResult {
    let (who, b): (_, SendMessage) = S::caller_with_body(&sb, &h, &body)?;
    created(sb.change(|w| {
        // An unknown room is a 404 before any complaint about the body.
        w.writable_room(&who, &chat)?;
        w.send_message(&who, &chat, b.checked()?)
    })?)
}

/// `POST …/chats/{chat}/participants`.
pub async fn add_participant<S: ApiSide>(
    State(sb): Sb,
    h: HeaderMap,
    Path(chat): Path<String>,
    body: Bytes,
) -> ApiResult {
    let (who, b): (_, AddParticipant) = S::caller_with_body(&sb, &h, &body)?;
    let p = b.participant;
    let online = sb.hub().presence();
    created(sb.change(|w| {
        w.add_participant(&who, &chat, &p.participant_id, p.role.as_deref(), &online)
    })?)
}

/// `DELETE …/chats/{chat}/participants/{pid}`.
pub async fn remove_participant<S: ApiSide>(
    State(sb): Sb,
    h: HeaderMap,
    Path((chat, pid)): Path<(String, String)>,
) -> ApiResult {
    let who = S::caller(&sb, &h)?;
    let online = sb.hub().presence();
    ok(sb.change(|w| w.remove_participant(&who, &chat, &pid, &online))?)
}

/// `GET …/contacts`.
pub async fn contacts<S: ApiSide>(State(sb): Sb, h: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let (who, q) = S::caller_with_query(&sb, &h, q)?;
    let online = sb.hub().presence();
    let rows = sb.world().contacts(&who, &online);
    offset_ok(&rows, &q, 50)
}

/// `POST …/contacts/remove`.
pub async fn remove_contact<S: ApiSide>(State(sb): Sb, h: HeaderMap, body: Bytes) -> ApiResult {
    let (who, b): (_, RemoveContact) = S::caller_with_body(&sb, &h, &body)?;
    ok(sb.change(|w| w.remove_contact(&who, b.contact_id.as_deref(), b.handle.as_deref()))?)
}

/// `GET …/peers`.
pub async fn peers<S: ApiSide>(State(sb): Sb, h: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let (who, q) = S::caller_with_query(&sb, &h, q)?;
    let online = sb.hub().presence();
    let rows = sb
        .world()
        .peers(&who, q.get("not_in_chat"), q.get("type"), &online);
    offset_ok(&rows, &q, 50)
}
