//! Typed client of the agent REST API (`api/v1/agent/...`).

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{json, Map, Value};

use super::http::{
    encode_segment, insert_if_set, push_if_set, ApiError, BuildError, Page, RestClient, RestConfig,
    RetryPolicy,
};
use super::scope::Scope;
use band_wire::model::{
    AgentContact, AgentMe, ChatMessage, ChatParticipant, ChatRoom, ContactRequestStatus,
    ContactRequests, EventPosted, Mention, MessageSent, MessageStatus, Peer,
};

/// The agent API's path prefix.
const PREFIX: &str = "api/v1/agent";
/// Most pages [`AgentApi::list_all_chats`] will fetch.
const MAX_CHAT_PAGES: u64 = 50;
/// Page size [`AgentApi::list_all_chats`] asks for.
const CHAT_PAGE_SIZE: u64 = 50;

/// Filters for `GET .../messages`; unset fields are left out of the query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageQuery {
    /// pending, processing, processed, failed or all (unset = not processed).
    pub status: Option<String>,
    /// Keyset cursor from a previous page.
    pub cursor: Option<String>,
    /// Page size (server default 20, max 100).
    pub limit: Option<u32>,
    /// `asc` (default) or `desc`.
    pub sort_order: Option<String>,
}

/// What to do with a contact request (`contacts/requests/respond`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactAction {
    /// Accept a received request.
    Approve,
    /// Decline a received request.
    Reject,
    /// Withdraw a sent request.
    Cancel,
}

impl ContactAction {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ContactAction::Approve => "approve",
            ContactAction::Reject => "reject",
            ContactAction::Cancel => "cancel",
        }
    }
}

/// The agent's REST client.
#[derive(Debug, Clone)]
pub struct AgentApi {
    rest: RestClient,
}

impl AgentApi {
    /// Build from a config (base URL, agent API key, retry policy, timeout).
    pub fn new(config: RestConfig) -> Result<Self, BuildError> {
        Ok(AgentApi {
            rest: RestClient::new(config)?,
        })
    }

    /// Wrap an existing HTTP core.
    pub fn from_client(rest: RestClient) -> Self {
        AgentApi { rest }
    }

    /// The same client with another retry policy (e.g. [`RetryPolicy::none`]).
    pub fn with_retry(&self, retry: RetryPolicy) -> Self {
        AgentApi {
            rest: self.rest.with_retry(retry),
        }
    }

    /// The underlying HTTP core, for endpoints not wrapped here.
    pub fn rest(&self) -> &RestClient {
        &self.rest
    }

    /// The calls shared with the human API, below `api/v1/agent`.
    fn scope(&self) -> Scope<'_> {
        Scope::new(&self.rest, PREFIX)
    }

    /// `GET /agent/me`.
    pub async fn me(&self) -> Result<AgentMe, ApiError> {
        self.rest.get_data(&self.scope().path("me"), &[]).await
    }

    /// `GET /agent/peers`.
    pub async fn peers(
        &self,
        not_in_chat: Option<&str>,
        page: Option<u64>,
        page_size: Option<u64>,
    ) -> Result<Page<Peer>, ApiError> {
        self.scope().peers(not_in_chat, page, page_size).await
    }

    /// `GET /agent/chats` (one page).
    pub async fn list_chats(
        &self,
        page: Option<u64>,
        page_size: Option<u64>,
    ) -> Result<Page<ChatRoom>, ApiError> {
        self.scope()
            .get_numbered_page("chats", page, page_size)
            .await
    }

    /// Every chat room: pages until `total_pages` (at most 50 pages), deduplicated by id.
    pub async fn list_all_chats(&self) -> Result<Vec<ChatRoom>, ApiError> {
        let mut seen = HashSet::new();
        let mut rooms = Vec::new();
        for page_no in 1..=MAX_CHAT_PAGES {
            let page = self.list_chats(Some(page_no), Some(CHAT_PAGE_SIZE)).await?;
            let got = page.items.len() as u64;
            for room in page.items {
                if seen.insert(room.id.clone()) {
                    rooms.push(room);
                }
            }
            let more = match page.meta.total_pages {
                Some(total) => page_no < total,
                // Without totals, a short page is the last one.
                None => got >= page.meta.page_size.unwrap_or(CHAT_PAGE_SIZE),
            };
            if !more || got == 0 {
                break;
            }
            if page_no == MAX_CHAT_PAGES {
                tracing::warn!(pages = MAX_CHAT_PAGES, "chat list truncated at page cap");
            }
        }
        Ok(rooms)
    }

    /// `POST /agent/chats`; the agent becomes owner.
    pub async fn create_chat(&self, title: Option<&str>) -> Result<ChatRoom, ApiError> {
        self.scope().create_chat(title).await
    }

    /// `GET /agent/chats/{id}`.
    pub async fn get_chat(&self, chat_id: &str) -> Result<ChatRoom, ApiError> {
        self.scope().get_chat(chat_id).await
    }

    /// `GET /agent/chats/{chat}/messages`.
    pub async fn list_messages(
        &self,
        chat_id: &str,
        query: &MessageQuery,
    ) -> Result<Page<ChatMessage>, ApiError> {
        let mut q = Vec::new();
        push_if_set(&mut q, "status", query.status.as_deref());
        push_if_set(&mut q, "cursor", query.cursor.as_deref());
        push_if_set(&mut q, "limit", query.limit);
        push_if_set(&mut q, "sort_order", query.sort_order.as_deref());
        let path = self.scope().messages_path(chat_id);
        self.rest.get_page(&path, &q).await
    }

    /// `POST /agent/chats/{chat}/messages` (text only; mentions required by the platform).
    pub async fn send_message(
        &self,
        chat_id: &str,
        content: &str,
        mentions: &[Mention],
    ) -> Result<MessageSent, ApiError> {
        self.scope().send_message(chat_id, content, mentions).await
    }

    /// `GET .../messages/next`: the oldest message not yet processed; 204 → `None`.
    pub async fn next_message(&self, chat_id: &str) -> Result<Option<ChatMessage>, ApiError> {
        let path = format!("{}/next", self.scope().messages_path(chat_id));
        self.rest.call_optional(Method::GET, &path, &[], None).await
    }

    /// `POST .../{msg}/processing`. `None` (204) means the room's execution is stopped.
    pub async fn mark_processing(
        &self,
        chat_id: &str,
        message_id: &str,
    ) -> Result<Option<MessageStatus>, ApiError> {
        let path = self.mark_path(chat_id, message_id, "processing");
        self.rest
            .call_optional(Method::POST, &path, &[], None)
            .await
    }

    /// `POST .../{msg}/processed`; 422 without a live attempt.
    pub async fn mark_processed(
        &self,
        chat_id: &str,
        message_id: &str,
    ) -> Result<MessageStatus, ApiError> {
        let path = self.mark_path(chat_id, message_id, "processed");
        self.rest.call_data(Method::POST, &path, None).await
    }

    /// `POST .../{msg}/failed` with the error text (trimmed; blank → "Unknown error", as the SDK does).
    pub async fn mark_failed(
        &self,
        chat_id: &str,
        message_id: &str,
        error: &str,
    ) -> Result<MessageStatus, ApiError> {
        let error = match error.trim() {
            "" => "Unknown error",
            e => e,
        };
        let path = self.mark_path(chat_id, message_id, "failed");
        let body = json!({ "error": error });
        self.rest.call_data(Method::POST, &path, Some(&body)).await
    }

    /// `POST /agent/chats/{chat}/events` (thought, tool_call, error, task, ...).
    pub async fn post_event(
        &self,
        chat_id: &str,
        message_type: &str,
        content: &str,
        metadata: Option<&Value>,
    ) -> Result<EventPosted, ApiError> {
        let mut event = Map::new();
        event.insert("content".into(), content.into());
        event.insert("message_type".into(), message_type.into());
        insert_if_set(&mut event, "metadata", metadata.cloned());
        let body = json!({ "event": event });
        let path = format!("{}/events", self.scope().chat_path(chat_id));
        self.rest.call_data(Method::POST, &path, Some(&body)).await
    }

    /// `GET /agent/chats/{chat}/participants`.
    pub async fn list_participants(&self, chat_id: &str) -> Result<Vec<ChatParticipant>, ApiError> {
        self.scope().list_participants(chat_id, &[]).await
    }

    /// `POST /agent/chats/{chat}/participants`; `role` left out when unset.
    pub async fn add_participant(
        &self,
        chat_id: &str,
        participant_id: &str,
        role: Option<&str>,
    ) -> Result<ChatParticipant, ApiError> {
        self.scope()
            .add_participant(chat_id, participant_id, role)
            .await
    }

    /// `DELETE /agent/chats/{chat}/participants/{id}`; the removed row, when returned.
    pub async fn remove_participant(
        &self,
        chat_id: &str,
        participant_id: &str,
    ) -> Result<Option<ChatParticipant>, ApiError> {
        self.scope()
            .remove_participant(chat_id, participant_id)
            .await
    }

    /// `GET /agent/chats/{chat}/context`: what the agent sent plus what mentions it.
    pub async fn context(
        &self,
        chat_id: &str,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<ChatMessage>, ApiError> {
        let mut q = Vec::new();
        push_if_set(&mut q, "cursor", cursor);
        push_if_set(&mut q, "limit", limit);
        let path = format!("{}/context", self.scope().chat_path(chat_id));
        self.rest.get_page(&path, &q).await
    }

    /// `GET /agent/contacts`.
    pub async fn contacts(
        &self,
        page: Option<u64>,
        page_size: Option<u64>,
    ) -> Result<Page<AgentContact>, ApiError> {
        self.scope()
            .get_numbered_page("contacts", page, page_size)
            .await
    }

    /// `GET /agent/contacts/requests` (received are pending only; `sent_status` filters sent).
    pub async fn contact_requests(
        &self,
        sent_status: Option<&str>,
    ) -> Result<ContactRequests, ApiError> {
        let mut q = Vec::new();
        push_if_set(&mut q, "sent_status", sent_status);
        let path = self.scope().path("contacts/requests");
        let data = self
            .rest
            .call_optional(Method::GET, &path, &q, None)
            .await?;
        Ok(data.unwrap_or_default())
    }

    /// `POST /agent/contacts/add`; status `approved` when an inverse request was auto-accepted.
    pub async fn add_contact(
        &self,
        handle: &str,
        message: Option<&str>,
    ) -> Result<Option<ContactRequestStatus>, ApiError> {
        let mut body = Map::new();
        body.insert("handle".into(), handle.into());
        insert_if_set(&mut body, "message", message);
        self.scope().post_optional("contacts/add", body).await
    }

    /// `POST /agent/contacts/requests/respond`, by requester/recipient handle or request id.
    pub async fn respond_contact_request(
        &self,
        action: ContactAction,
        handle: Option<&str>,
        request_id: Option<&str>,
    ) -> Result<Option<ContactRequestStatus>, ApiError> {
        let mut body = Map::new();
        body.insert("action".into(), action.as_str().into());
        insert_if_set(&mut body, "handle", handle);
        insert_if_set(&mut body, "request_id", request_id);
        self.scope()
            .post_optional("contacts/requests/respond", body)
            .await
    }

    /// `POST /agent/contacts/remove` by contact id or handle (both directions go).
    pub async fn remove_contact(
        &self,
        contact_id: Option<&str>,
        handle: Option<&str>,
    ) -> Result<(), ApiError> {
        self.scope().remove_contact(contact_id, handle).await
    }

    /// `.../messages/{msg}/{what}` (processing, processed, failed).
    fn mark_path(&self, chat_id: &str, message_id: &str, what: &str) -> String {
        format!(
            "{}/{}/{what}",
            self.scope().messages_path(chat_id),
            encode_segment(message_id)
        )
    }
}
