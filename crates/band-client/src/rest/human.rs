//! Client of the human REST API (`api/v1/me/...`): lets tests, the demo and
//! the load tool act as people.

use reqwest::Method;
use serde_json::{json, Map};

use super::http::{
    encode_segment, insert_if_set, push_if_set, ApiError, BuildError, Page, RestClient, RestConfig,
    RetryPolicy,
};
use super::scope::Scope;
use band_wire::model::{
    ChatMessage, ChatParticipant, ChatRoom, Contact, ContactRequest, ContactRequestStatus, Mention,
    MessageSent, Peer, UserDetails,
};

/// The human API's path prefix.
const PREFIX: &str = "api/v1/me";

/// Filters for `GET /me/chats/{chat}/messages`; unset fields are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HumanMessageQuery {
    /// Keyset cursor from a previous page.
    pub cursor: Option<String>,
    /// Page size (server default 20, max 100).
    pub limit: Option<u32>,
    /// Comma list of message types to keep.
    pub message_types: Option<String>,
    /// Only messages after this message id (oldest first).
    pub after: Option<String>,
}

/// A person's REST client (user API key).
#[derive(Debug, Clone)]
pub struct HumanApi {
    rest: RestClient,
}

impl HumanApi {
    /// Build from a config (base URL, user API key, retry policy, timeout).
    pub fn new(config: RestConfig) -> Result<Self, BuildError> {
        Ok(HumanApi {
            rest: RestClient::new(config)?,
        })
    }

    /// Wrap an existing HTTP core.
    pub fn from_client(rest: RestClient) -> Self {
        HumanApi { rest }
    }

    /// The same client with another retry policy.
    pub fn with_retry(&self, retry: RetryPolicy) -> Self {
        HumanApi {
            rest: self.rest.with_retry(retry),
        }
    }

    /// The underlying HTTP core, for endpoints not wrapped here.
    pub fn rest(&self) -> &RestClient {
        &self.rest
    }

    /// The calls shared with the agent API, below `api/v1/me`.
    fn scope(&self) -> Scope<'_> {
        Scope::new(&self.rest, PREFIX)
    }

    /// `GET /me/profile`: the caller's own user (its `id` names `user_rooms:{id}`).
    pub async fn profile(&self) -> Result<UserDetails, ApiError> {
        self.rest.get_data(&self.scope().path("profile"), &[]).await
    }

    /// `GET /me/chats` (newest first by default); extra row fields stay in `extra`.
    pub async fn list_chats(
        &self,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<ChatRoom>, ApiError> {
        let mut q = Vec::new();
        push_if_set(&mut q, "cursor", cursor);
        push_if_set(&mut q, "limit", limit);
        self.rest.get_page(&self.scope().path("chats"), &q).await
    }

    /// `POST /me/chats`; the caller becomes owner. Sends `{"chat":{}}` without a title.
    pub async fn create_chat(&self, title: Option<&str>) -> Result<ChatRoom, ApiError> {
        self.scope().create_chat(title).await
    }

    /// `GET /me/chats/{id}`.
    pub async fn get_chat(&self, chat_id: &str) -> Result<ChatRoom, ApiError> {
        self.scope().get_chat(chat_id).await
    }

    /// `GET /me/chats/{chat}/messages` (newest first; every message type).
    pub async fn list_messages(
        &self,
        chat_id: &str,
        query: &HumanMessageQuery,
    ) -> Result<Page<ChatMessage>, ApiError> {
        let mut q = Vec::new();
        push_if_set(&mut q, "cursor", query.cursor.as_deref());
        push_if_set(&mut q, "limit", query.limit);
        push_if_set(&mut q, "message_types", query.message_types.as_deref());
        push_if_set(&mut q, "after", query.after.as_deref());
        let path = self.scope().messages_path(chat_id);
        self.rest.get_page(&path, &q).await
    }

    /// `POST /me/chats/{chat}/messages` (text; at least one mention).
    pub async fn send_message(
        &self,
        chat_id: &str,
        content: &str,
        mentions: &[Mention],
    ) -> Result<MessageSent, ApiError> {
        self.scope().send_message(chat_id, content, mentions).await
    }

    /// `GET /me/chats/{chat}/participants` (first page, up to 100 rows).
    pub async fn list_participants(&self, chat_id: &str) -> Result<Vec<ChatParticipant>, ApiError> {
        let q = [("limit", "100".to_string())];
        self.scope().list_participants(chat_id, &q).await
    }

    /// `POST /me/chats/{chat}/participants`; `role` left out when unset.
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

    /// `DELETE /me/chats/{chat}/participants/{entity id}`; the removed row, when returned.
    pub async fn remove_participant(
        &self,
        chat_id: &str,
        participant_id: &str,
    ) -> Result<Option<ChatParticipant>, ApiError> {
        self.scope()
            .remove_participant(chat_id, participant_id)
            .await
    }

    /// `GET /me/contacts`.
    pub async fn contacts(
        &self,
        page: Option<u64>,
        page_size: Option<u64>,
    ) -> Result<Page<Contact>, ApiError> {
        self.scope()
            .get_numbered_page("contacts", page, page_size)
            .await
    }

    /// `POST /me/contacts/requests` to a handle (with or without `@`).
    pub async fn send_contact_request(
        &self,
        recipient_handle: &str,
        message: Option<&str>,
    ) -> Result<ContactRequest, ApiError> {
        let mut r = Map::new();
        r.insert("recipient_handle".into(), recipient_handle.into());
        insert_if_set(&mut r, "message", message);
        let body = json!({ "contact_request": r });
        let path = self.scope().path("contacts/requests");
        self.rest.call_data(Method::POST, &path, Some(&body)).await
    }

    /// `GET /me/contacts/requests`: pending requests to the caller.
    pub async fn received_contact_requests(&self) -> Result<Page<ContactRequest>, ApiError> {
        let path = self.scope().path("contacts/requests");
        self.rest.get_page(&path, &[]).await
    }

    /// `GET /me/contacts/requests/sent`, optionally filtered by status.
    pub async fn sent_contact_requests(
        &self,
        status: Option<&str>,
    ) -> Result<Page<ContactRequest>, ApiError> {
        let mut q = Vec::new();
        push_if_set(&mut q, "status", status);
        let path = self.scope().path("contacts/requests/sent");
        self.rest.get_page(&path, &q).await
    }

    /// `POST /me/contacts/requests/{id}/approve` (a received request).
    pub async fn approve_contact_request(
        &self,
        request_id: &str,
    ) -> Result<ContactRequestStatus, ApiError> {
        self.answer_contact_request(request_id, "approve").await
    }

    /// `POST /me/contacts/requests/{id}/reject` (a received request).
    pub async fn reject_contact_request(
        &self,
        request_id: &str,
    ) -> Result<ContactRequestStatus, ApiError> {
        self.answer_contact_request(request_id, "reject").await
    }

    /// `DELETE /me/contacts/requests/{id}` (a sent request).
    pub async fn cancel_contact_request(
        &self,
        request_id: &str,
    ) -> Result<ContactRequestStatus, ApiError> {
        self.rest
            .call_data(Method::DELETE, &self.request_path(request_id), None)
            .await
    }

    /// `POST /me/contacts/remove` by contact record id or handle.
    pub async fn remove_contact(
        &self,
        contact_id: Option<&str>,
        handle: Option<&str>,
    ) -> Result<(), ApiError> {
        self.scope().remove_contact(contact_id, handle).await
    }

    /// `GET /me/peers`.
    pub async fn peers(
        &self,
        not_in_chat: Option<&str>,
        page: Option<u64>,
        page_size: Option<u64>,
    ) -> Result<Page<Peer>, ApiError> {
        self.scope().peers(not_in_chat, page, page_size).await
    }

    /// `POST /me/contacts/requests/{id}/{verb}` (approve or reject).
    async fn answer_contact_request(
        &self,
        request_id: &str,
        verb: &str,
    ) -> Result<ContactRequestStatus, ApiError> {
        let path = format!("{}/{verb}", self.request_path(request_id));
        self.rest.call_data(Method::POST, &path, None).await
    }

    /// `/me/contacts/requests/{id}`.
    fn request_path(&self, request_id: &str) -> String {
        let tail = format!("contacts/requests/{}", encode_segment(request_id));
        self.scope().path(&tail)
    }
}
