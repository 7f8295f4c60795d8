//! The calls the agent API (`api/v1/agent/...`) and the human API
//! (`api/v1/me/...`) share: the same requests under another path prefix.

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use super::http::{encode_segment, insert_if_set, push_if_set, ApiError, Page, RestClient};
use band_wire::model::{ChatParticipant, ChatRoom, Mention, MessageSent, Peer};

/// One API's view of the HTTP core: every path below `prefix`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Scope<'a> {
    rest: &'a RestClient,
    prefix: &'static str,
}

impl<'a> Scope<'a> {
    /// The calls of `rest` below `prefix` (e.g. `api/v1/agent`, no trailing slash).
    pub(super) fn new(rest: &'a RestClient, prefix: &'static str) -> Self {
        Scope { rest, prefix }
    }

    /// `{prefix}/{tail}`.
    pub(super) fn path(&self, tail: &str) -> String {
        format!("{}/{tail}", self.prefix)
    }

    /// `{prefix}/chats/{chat}`.
    pub(super) fn chat_path(&self, chat_id: &str) -> String {
        self.path(&format!("chats/{}", encode_segment(chat_id)))
    }

    /// `{prefix}/chats/{chat}/messages`.
    pub(super) fn messages_path(&self, chat_id: &str) -> String {
        format!("{}/messages", self.chat_path(chat_id))
    }

    /// `{prefix}/chats/{chat}/participants`.
    fn participants_path(&self, chat_id: &str) -> String {
        format!("{}/participants", self.chat_path(chat_id))
    }

    /// `GET {prefix}/{tail}?page=&page_size=` (each left out when unset).
    pub(super) async fn get_numbered_page<T: DeserializeOwned>(
        &self,
        tail: &str,
        page: Option<u64>,
        page_size: Option<u64>,
    ) -> Result<Page<T>, ApiError> {
        let mut q = Vec::new();
        push_if_set(&mut q, "page", page);
        push_if_set(&mut q, "page_size", page_size);
        self.rest.get_page(&self.path(tail), &q).await
    }

    /// `GET {prefix}/peers`.
    pub(super) async fn peers(
        &self,
        not_in_chat: Option<&str>,
        page: Option<u64>,
        page_size: Option<u64>,
    ) -> Result<Page<Peer>, ApiError> {
        let mut q = Vec::new();
        push_if_set(&mut q, "not_in_chat", not_in_chat);
        push_if_set(&mut q, "page", page);
        push_if_set(&mut q, "page_size", page_size);
        self.rest.get_page(&self.path("peers"), &q).await
    }

    /// `POST {prefix}/chats` with `{"chat":{"title"?}}`.
    pub(super) async fn create_chat(&self, title: Option<&str>) -> Result<ChatRoom, ApiError> {
        let mut chat = Map::new();
        insert_if_set(&mut chat, "title", title);
        let body = json!({ "chat": chat });
        self.rest
            .call_data(Method::POST, &self.path("chats"), Some(&body))
            .await
    }

    /// `GET {prefix}/chats/{id}`.
    pub(super) async fn get_chat(&self, chat_id: &str) -> Result<ChatRoom, ApiError> {
        self.rest.get_data(&self.chat_path(chat_id), &[]).await
    }

    /// `POST {prefix}/chats/{chat}/messages` with content and mentions.
    pub(super) async fn send_message(
        &self,
        chat_id: &str,
        content: &str,
        mentions: &[Mention],
    ) -> Result<MessageSent, ApiError> {
        let body = json!({ "message": { "content": content, "mentions": mentions } });
        self.rest
            .call_data(Method::POST, &self.messages_path(chat_id), Some(&body))
            .await
    }

    /// `GET {prefix}/chats/{chat}/participants` with `query`: the rows of the first page.
    pub(super) async fn list_participants(
        &self,
        chat_id: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<ChatParticipant>, ApiError> {
        let path = self.participants_path(chat_id);
        let page = self.rest.get_page(&path, query).await?;
        Ok(page.items)
    }

    /// `POST {prefix}/chats/{chat}/participants`; `role` left out when unset.
    pub(super) async fn add_participant(
        &self,
        chat_id: &str,
        participant_id: &str,
        role: Option<&str>,
    ) -> Result<ChatParticipant, ApiError> {
        let mut p = Map::new();
        p.insert("participant_id".into(), participant_id.into());
        insert_if_set(&mut p, "role", role);
        let body = json!({ "participant": p });
        self.rest
            .call_data(Method::POST, &self.participants_path(chat_id), Some(&body))
            .await
    }

    /// `DELETE {prefix}/chats/{chat}/participants/{id}`; the removed row, when returned.
    pub(super) async fn remove_participant(
        &self,
        chat_id: &str,
        participant_id: &str,
    ) -> Result<Option<ChatParticipant>, ApiError> {
        let path = format!(
            "{}/{}",
            self.participants_path(chat_id),
            encode_segment(participant_id)
        );
        self.rest
            .call_optional(Method::DELETE, &path, &[], None)
            .await
    }

    /// `POST {prefix}/{tail}` with a JSON object body; its `data`, if any.
    pub(super) async fn post_optional<T: DeserializeOwned>(
        &self,
        tail: &str,
        body: Map<String, Value>,
    ) -> Result<Option<T>, ApiError> {
        self.rest
            .call_optional(
                Method::POST,
                &self.path(tail),
                &[],
                Some(&Value::Object(body)),
            )
            .await
    }

    /// `POST {prefix}/contacts/remove` by contact id or handle.
    pub(super) async fn remove_contact(
        &self,
        contact_id: Option<&str>,
        handle: Option<&str>,
    ) -> Result<(), ApiError> {
        let mut body = Map::new();
        insert_if_set(&mut body, "contact_id", contact_id);
        insert_if_set(&mut body, "handle", handle);
        self.rest
            .send(
                Method::POST,
                &self.path("contacts/remove"),
                &[],
                Some(&Value::Object(body)),
            )
            .await?;
        Ok(())
    }
}
