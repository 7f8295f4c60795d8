//! Wire types of the platform's REST API (agent side, and the human-side
//! shapes the sandbox serves). One place for every JSON shape.
//!
//! Every object keeps unknown keys in `extra`, as the official models do
//! (`extra=allow`), so nothing the platform adds is lost on a round trip.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Unknown keys kept verbatim.
pub type Extra = Map<String, Value>;

/// Success envelope `{"data": ..., "metadata"?: ...}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// The payload.
    pub data: T,
    /// Paging metadata, when the endpoint has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// Error body `{"error": {...}}` returned with every non-2xx status.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    /// The error details.
    pub error: ErrorDetail,
}

/// The inside of an [`ErrorBody`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorDetail {
    /// Machine-readable code, e.g. `not_found`, `validation_error`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// Correlates with platform logs.
    #[serde(default)]
    pub request_id: String,
    /// For validation errors: JSON pointer → messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// Seconds to wait, on rate-limit errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<Value>,
}

/// Whether a participant, peer or sender is a person or an agent.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum EntityType {
    /// A human user.
    User,
    /// An agent.
    Agent,
}

impl EntityType {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityType::User => "User",
            EntityType::Agent => "Agent",
        }
    }

    /// The entity type a wire spelling names (exact, as serde reads it);
    /// `None` for kinds the platform may add later.
    pub fn parse(s: &str) -> Option<EntityType> {
        match s {
            "User" => Some(EntityType::User),
            "Agent" => Some(EntityType::Agent),
            _ => None,
        }
    }
}

/// `GET /agent/me`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentMe {
    /// Agent id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `owner/slug`.
    pub handle: String,
    /// Owner's user id.
    #[serde(default)]
    pub owner_uuid: String,
    /// Creation time.
    #[serde(default)]
    pub inserted_at: String,
    /// Update time.
    #[serde(default)]
    pub updated_at: String,
    /// Feature flags (required by the platform's model).
    #[serde(default)]
    pub feature_flags: Map<String, Value>,
    /// Description; the SDK insists it is non-empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Unknown keys.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An entity the agent can reach (`GET /agent/peers`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Peer {
    /// Entity id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Handle without `@`.
    pub handle: String,
    /// User or Agent.
    #[serde(rename = "type")]
    pub kind: EntityType,
    /// Whether it is a contact.
    #[serde(default)]
    pub is_contact: bool,
    /// Whether it is online.
    #[serde(default)]
    pub online: bool,
    /// `registry` or `contact`.
    #[serde(default)]
    pub source: String,
    /// Description, for agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Unknown keys.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A chat room.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChatRoom {
    /// Room id.
    pub id: String,
    /// Title, if any.
    #[serde(default)]
    pub title: Option<String>,
    /// Linked task, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// Creation time.
    #[serde(default)]
    pub inserted_at: String,
    /// Update time.
    #[serde(default)]
    pub updated_at: String,
    /// Participants, when listed with `include=participants`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participants: Option<Vec<ChatParticipant>>,
    /// Number of participants, in list rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant_count: Option<u64>,
    /// Unknown keys.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A room participant.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChatParticipant {
    /// Entity id (user or agent id).
    pub id: String,
    /// owner, admin or member.
    pub role: String,
    /// Membership status, e.g. `active`.
    #[serde(default)]
    pub status: String,
    /// User or Agent.
    #[serde(rename = "type")]
    pub kind: EntityType,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Handle (username for users, `owner/slug` for agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    /// Presence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    /// Unknown keys.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A mention in a message request or in message metadata.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Mention {
    /// Entity id (authoritative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Handle, resolved within the room when no id is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Username, as the socket projection spells it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `mention` (default) or `reference` (no delivery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// A chat message as the REST API and the socket return it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChatMessage {
    /// Message id.
    pub id: String,
    /// Text, with `@[[id]]` mention markers.
    pub content: String,
    /// `text`, or an event type such as `thought`.
    pub message_type: String,
    /// Sender's id.
    pub sender_id: String,
    /// `User`, `Agent` or `System`.
    pub sender_type: String,
    /// Sender's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_name: Option<String>,
    /// Room id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_room_id: Option<String>,
    /// Thread id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// Metadata: `mentions`, `delivery_status`, `status`, ...
    #[serde(default)]
    pub metadata: Option<Value>,
    /// Attachments; always present on the wire, `[]` when none.
    #[serde(default)]
    pub attachments: Option<Vec<Value>>,
    /// Creation time.
    #[serde(default)]
    pub inserted_at: String,
    /// Update time.
    #[serde(default)]
    pub updated_at: String,
    /// Unknown keys.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Where a message stands for one recipient agent
/// (`metadata.delivery_status[<agent id>].status`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Not yet claimed.
    Delivered,
    /// An attempt is live.
    Processing,
    /// Done: `/next` will not serve it again.
    Processed,
    /// The last attempt failed; `/next` serves it again.
    Failed,
}

/// One recipient's entry of `metadata.delivery_status`; only the status is
/// read (attempts and times stay in the metadata).
#[derive(Deserialize)]
struct DeliveryRecord {
    status: DeliveryStatus,
}

impl ChatMessage {
    /// The message's delivery status for agent `agent_id`, when the platform
    /// sent one we know; another agent's status is not ours.
    pub fn delivery_status(&self, agent_id: &str) -> Option<DeliveryStatus> {
        let record = self
            .metadata
            .as_ref()?
            .get("delivery_status")?
            .get(agent_id)?;
        DeliveryRecord::deserialize(record).ok().map(|r| r.status)
    }
}

/// A message recipient in [`MessageSent`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Recipient {
    /// Entity id.
    pub id: String,
    /// Handle; the SDK tolerates it missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Response to `POST .../messages`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MessageSent {
    /// New message id.
    pub id: String,
    /// Whether it was accepted.
    #[serde(default)]
    pub success: bool,
    /// Who it was delivered to.
    #[serde(default)]
    pub recipients: Vec<Recipient>,
}

/// Response to `/processing`, `/processed`, `/failed`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MessageStatus {
    /// Message id.
    pub id: String,
    /// processing, processed or failed.
    pub status: String,
    /// Attempt counter, from 1.
    #[serde(default)]
    pub attempt_number: u64,
    /// Whether the mark was applied.
    #[serde(default)]
    pub success: bool,
}

/// Response to `POST .../events` (`post_event`); not the `event_created` socket event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EventPosted {
    /// New event id.
    pub id: String,
    /// The event's type.
    pub message_type: String,
    /// Whether it was accepted.
    #[serde(default)]
    pub success: bool,
}

/// A contact of the agent (`GET /agent/contacts`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentContact {
    /// Contact's entity id.
    pub id: String,
    /// User or Agent.
    #[serde(rename = "type")]
    pub kind: EntityType,
    /// Handle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Creation time.
    #[serde(default)]
    pub inserted_at: String,
    /// Unknown keys.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A contact request the agent received (flat agent-side form).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReceivedContactRequest {
    /// Request id.
    pub id: String,
    /// pending, approved, rejected or cancelled.
    pub status: String,
    /// Creation time.
    #[serde(default)]
    pub inserted_at: String,
    /// Requester handle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_handle: Option<String>,
    /// Requester name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_name: Option<String>,
    /// Note from the requester.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Unknown keys.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A contact request the agent sent (flat agent-side form).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SentContactRequest {
    /// Request id.
    pub id: String,
    /// pending, approved, rejected or cancelled.
    pub status: String,
    /// Creation time.
    #[serde(default)]
    pub inserted_at: String,
    /// Recipient handle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_handle: Option<String>,
    /// Recipient name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_name: Option<String>,
    /// Note to the recipient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Unknown keys.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `GET /agent/contacts/requests` data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ContactRequests {
    /// Pending requests to the agent.
    #[serde(default)]
    pub received: Vec<ReceivedContactRequest>,
    /// Requests the agent sent.
    #[serde(default)]
    pub sent: Vec<SentContactRequest>,
}

/// Response to contact add / respond: `{id, status}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContactRequestStatus {
    /// Request id.
    pub id: String,
    /// New status.
    pub status: String,
}

/// Paging metadata, both styles; every field optional.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct PageMeta {
    /// Offset paging: current page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u64>,
    /// Offset paging: page size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u64>,
    /// Offset paging: total rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_count: Option<u64>,
    /// Offset paging: total pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_pages: Option<u64>,
    /// Cursor paging: more rows after this page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_more: Option<bool>,
    /// Cursor paging: page size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Cursor paging: cursor for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The caller's own user (`GET /me/profile`). There is no `name`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserDetails {
    /// User id (for `user_rooms:{id}`).
    pub id: String,
    /// Email address.
    #[serde(default)]
    pub email: String,
    /// Handle, without `@`.
    pub handle: String,
    /// `user`, `business` or `admin`.
    #[serde(default)]
    pub role: String,
    /// First name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Unknown keys.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The other party of a human-side [`Contact`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ContactUser {
    /// Entity id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Handle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Unknown keys.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A contact of a person (`GET /me/contacts`), the human-side shape.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Contact {
    /// Contact record id (what `contacts/remove` takes as `contact_id`).
    pub id: String,
    /// The other party's user or agent id.
    pub contact_id: String,
    /// User or Agent.
    pub contact_type: EntityType,
    /// Creation time.
    #[serde(default)]
    pub inserted_at: String,
    /// Presence.
    #[serde(default)]
    pub online: bool,
    /// `active`.
    #[serde(default)]
    pub status: String,
    /// `request`, when made through a contact request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The other party.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<ContactUser>,
    /// Unknown keys.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A contact request, the human-side shape (lists and create).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContactRequest {
    /// Request id.
    pub id: String,
    /// pending, approved, rejected, expired or cancelled.
    pub status: String,
    /// Creation time.
    #[serde(default)]
    pub inserted_at: String,
    /// Who asked.
    #[serde(default)]
    pub requester_id: String,
    /// Who was asked.
    #[serde(default)]
    pub recipient_id: String,
    /// Note from the requester.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When it was answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responded_at: Option<String>,
    /// User or Agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester_type: Option<EntityType>,
    /// User or Agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_type: Option<EntityType>,
    /// Requester summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<ContactUser>,
    /// Recipient summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<ContactUser>,
    /// Unknown keys.
    #[serde(flatten)]
    pub extra: Extra,
}
