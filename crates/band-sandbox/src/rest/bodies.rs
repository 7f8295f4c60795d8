//! Request bodies, parsed into typed structs. Simple bodies derive
//! `Deserialize` (a wrong shape is the 422 of [`super::parse_body`]); the
//! message and event bodies are checked field by field, because each field
//! has its own platform error pointer and message.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::world::{DeliveryUpdate, NewEvent, NewMention, NewMessage, RequestAnswer};

/// Content limit for messages, in bytes (markers not counted).
const MAX_CONTENT_BYTES: usize = 512 * 1024;
/// Content limit for events, in characters.
const MAX_EVENT_CHARS: usize = 16_384;
/// Serialized size limit for event metadata.
const MAX_EVENT_METADATA_BYTES: usize = 65_536;
/// Event types an agent may post.
const EVENT_TYPES: &[&str] = &[
    "tool_call",
    "tool_result",
    "thought",
    "error",
    "task",
    "attention",
];

/// `POST …/chats`: `{"chat": {"title", "task_id"}}`, all optional.
#[derive(Deserialize, Default)]
pub struct CreateChat {
    /// The chat fields.
    #[serde(default)]
    pub chat: Option<ChatFields>,
}

/// Fields of a new chat.
#[derive(Deserialize, Default)]
pub struct ChatFields {
    /// Title (trimmed; blank means none).
    #[serde(default)]
    pub title: Option<String>,
    /// Linked task.
    #[serde(default)]
    pub task_id: Option<String>,
}

/// `POST …/messages`: `{"message": {...}}`, checked by [`SendMessage::checked`].
#[derive(Deserialize)]
pub struct SendMessage {
    /// The message object, any JSON until checked.
    #[serde(default)]
    pub message: Value,
}

/// `POST …/events`: `{"event": {...}}`, checked by [`PostEvent::checked`].
#[derive(Deserialize)]
pub struct PostEvent {
    /// The event object, any JSON until checked.
    #[serde(default)]
    pub event: Value,
}

/// `POST …/failed`: `{"error": "..."}`, optional.
#[derive(Deserialize, Default)]
pub struct Failed {
    /// Why the attempt failed.
    #[serde(default)]
    pub error: Option<String>,
}

impl Failed {
    /// The delivery update this body asks for.
    pub fn update(self) -> DeliveryUpdate {
        DeliveryUpdate::Failed(self.error)
    }
}

/// `POST …/activity`: `{"working": bool}`.
#[derive(Deserialize)]
pub struct Activity {
    /// Whether the agent is working.
    pub working: bool,
}

/// `POST …/participants`: `{"participant": {"participant_id", "role"}}`.
#[derive(Deserialize)]
pub struct AddParticipant {
    /// The participant fields.
    pub participant: ParticipantFields,
}

/// Fields of a participant to add.
#[derive(Deserialize)]
pub struct ParticipantFields {
    /// User or agent id.
    pub participant_id: String,
    /// owner, admin or member (default).
    #[serde(default)]
    pub role: Option<String>,
}

/// `POST /agent/contacts/add`: `{"handle", "message"}`.
#[derive(Deserialize)]
pub struct AddContact {
    /// Handle of the entity to ask (required, checked after parsing).
    #[serde(default)]
    pub handle: Option<String>,
    /// Note to the recipient.
    #[serde(default)]
    pub message: Option<String>,
}

/// `POST /me/contacts/requests`: `{"contact_request": {...}}`.
#[derive(Deserialize)]
pub struct CreateRequest {
    /// The request fields.
    pub contact_request: RequestFields,
}

/// Fields of a contact request.
#[derive(Deserialize)]
pub struct RequestFields {
    /// Handle of the entity to ask.
    pub recipient_handle: String,
    /// Note to the recipient.
    #[serde(default)]
    pub message: Option<String>,
}

/// `POST /agent/contacts/requests/respond`: `{"action", "handle" | "request_id"}`.
#[derive(Deserialize)]
pub struct AnswerRequest {
    /// approve, reject or cancel (checked by [`AnswerRequest::answer`]).
    pub action: String,
    /// The other party's handle.
    #[serde(default)]
    pub handle: Option<String>,
    /// The request's id.
    #[serde(default)]
    pub request_id: Option<String>,
}

impl AnswerRequest {
    /// The answer `action` names; 422 for anything else.
    pub fn answer(&self) -> Result<RequestAnswer, ApiError> {
        match self.action.as_str() {
            "approve" => Ok(RequestAnswer::Approve),
            "reject" => Ok(RequestAnswer::Reject),
            "cancel" => Ok(RequestAnswer::Cancel),
            _ => Err(ApiError::invalid(
                "/action",
                "must be approve, reject or cancel",
            )),
        }
    }
}

/// `POST …/contacts/remove`: `{"contact_id" | "handle"}`.
#[derive(Deserialize)]
pub struct RemoveContact {
    /// Contact record id or the other party's id.
    #[serde(default)]
    pub contact_id: Option<String>,
    /// The other party's handle.
    #[serde(default)]
    pub handle: Option<String>,
}

/// `POST /me/contacts/resolve`: `{"handle"}`.
#[derive(Deserialize)]
pub struct Resolve {
    /// Handle to look up (required, checked after parsing).
    #[serde(default)]
    pub handle: Option<String>,
}

impl SendMessage {
    /// The message, its shape checked in the platform's order: content,
    /// attachments, then mentions.
    pub fn checked(&self) -> Result<NewMessage, ApiError> {
        let Some(body) = self.message.as_object() else {
            return Err(ApiError::invalid("/message", "is required"));
        };
        let content = match body.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => {
                return Err(ApiError::invalid("/message/content", "can't be blank"))
            }
            Some(_) => return Err(ApiError::invalid("/message/content", "is invalid")),
        };
        if !content.chars().any(is_visible) {
            return Err(ApiError::invalid(
                "/message/content",
                "content can't be blank",
            ));
        }
        if content.len() > MAX_CONTENT_BYTES {
            return Err(ApiError::invalid(
                "/message/content",
                "content is too long (maximum is 512 KiB)",
            ));
        }
        match body.get("attachment_ids") {
            None => {}
            Some(Value::Array(a)) if a.is_empty() => {}
            Some(Value::Array(a)) if a.len() > 10 => {
                return Err(ApiError::invalid(
                    "/message/attachment_ids",
                    "at most 10 attachments",
                ))
            }
            // The sandbox stores no attachments, so every id is unknown.
            Some(Value::Array(_)) => {
                return Err(ApiError::invalid(
                    "/message/attachment_ids",
                    "unknown_attachment",
                ))
            }
            Some(_) => return Err(ApiError::invalid("/message/attachment_ids", "is invalid")),
        }
        let raw = match body.get("mentions") {
            Some(Value::Array(a)) if !a.is_empty() => a,
            _ => {
                return Err(ApiError::invalid(
                    "/message/mentions",
                    "messages must include at least one @mention",
                ))
            }
        };
        let mut mentions = Vec::new();
        let mut bad_mention = None;
        for (index, item) in raw.iter().enumerate() {
            match mention(index, item) {
                Ok(m) => mentions.push(m),
                Err(e) => {
                    bad_mention = Some(e);
                    break;
                }
            }
        }
        Ok(NewMessage {
            content,
            mentions,
            bad_mention,
        })
    }
}

/// One item of `message.mentions`: an object with `id` or `handle` and an
/// optional `kind` (mention or reference).
fn mention(index: usize, item: &Value) -> Result<NewMention, ApiError> {
    let ptr = format!("/message/mentions/{index}");
    let Some(obj) = item.as_object() else {
        return Err(ApiError::invalid(&ptr, "is invalid"));
    };
    let reference = match obj.get("kind") {
        None => false,
        Some(Value::String(k)) if k == "mention" => false,
        Some(Value::String(k)) if k == "reference" => true,
        Some(_) => return Err(ApiError::invalid(&format!("{ptr}/kind"), "is invalid")),
    };
    let text = |key: &str| {
        obj.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let (id, handle) = (text("id"), text("handle"));
    if id.is_none() && handle.is_none() {
        return Err(ApiError::invalid(&ptr, "id or handle is required"));
    }
    Ok(NewMention {
        index,
        id,
        handle,
        reference,
    })
}

impl PostEvent {
    /// The event, its shape checked: content, type, then metadata.
    pub fn checked(&self) -> Result<NewEvent, ApiError> {
        let Some(body) = self.event.as_object() else {
            return Err(ApiError::invalid("/event", "is required"));
        };
        let content = match body.get("content") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(ApiError::invalid("/event/content", "is required")),
        };
        if content.chars().count() > MAX_EVENT_CHARS {
            return Err(ApiError::invalid(
                "/event/content",
                "should be at most 16384 character(s)",
            ));
        }
        let message_type = match body.get("message_type").and_then(Value::as_str) {
            Some(t) if EVENT_TYPES.contains(&t) => t.to_string(),
            _ => return Err(ApiError::invalid("/event/message_type", "is invalid")),
        };
        let metadata = match body.get("metadata") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => {
                if serde_json::to_string(m).map(|s| s.len()).unwrap_or(0) > MAX_EVENT_METADATA_BYTES
                {
                    return Err(ApiError::invalid("/event/metadata", "is too large"));
                }
                m.clone()
            }
            Some(_) => return Err(ApiError::invalid("/event/metadata", "is invalid")),
        };
        Ok(NewEvent {
            content,
            message_type,
            metadata,
        })
    }
}

/// Whether a character shows up on screen (not whitespace, not a control or
/// zero-width format character).
fn is_visible(c: char) -> bool {
    !(c.is_whitespace()
        || c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}'))
}
