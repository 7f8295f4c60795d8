//! The contract between rendering and doing: an action after its templates
//! were rendered, the scope it runs in, and the trait that performs the ones
//! that leave the process (REST calls, outbound HTTP).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

/// One action with every template rendered, arguments as the user wrote them
/// (defaults such as "the event's room" are resolved by the executor from the
/// [`Scope`], so a dry run shows exactly what the workflow said).
///
/// Serialises as a one-key map, `{reply: {text: ...}}`, the shape workflow
/// tests compare against.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RenderedAction {
    /// Post a message in the event's room.
    Reply {
        /// Message text.
        text: String,
        /// Handles or ids to mention; `None` means the sender.
        #[serde(skip_serializing_if = "Option::is_none")]
        mentions: Option<Vec<String>>,
    },
    /// Post a message in a given room.
    SendMessage {
        /// Room id.
        chat: String,
        /// Message text.
        text: String,
        /// Handles or ids to mention (at least one).
        mentions: Vec<String>,
    },
    /// Post an event row (thought, tool_call, tool_result, error, task).
    PostEvent {
        /// Room id; `None` means the event's room.
        #[serde(skip_serializing_if = "Option::is_none")]
        chat: Option<String>,
        /// Event type.
        #[serde(rename = "type")]
        kind: String,
        /// Event text.
        content: String,
        /// Extra metadata.
        #[serde(skip_serializing_if = "Option::is_none")]
        metadata: Option<Value>,
    },
    /// Create a room, then add participants.
    CreateChat {
        /// Room title.
        #[serde(skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        /// Handles or ids to add.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        participants: Vec<String>,
    },
    /// Add a participant to a room.
    AddParticipant {
        /// Room id; `None` means the event's room.
        #[serde(skip_serializing_if = "Option::is_none")]
        chat: Option<String>,
        /// Handle (resolved through peers) ...
        #[serde(skip_serializing_if = "Option::is_none")]
        handle: Option<String>,
        /// ... or id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// owner, admin or member (default member).
        #[serde(skip_serializing_if = "Option::is_none")]
        role: Option<String>,
    },
    /// Remove a participant from a room.
    RemoveParticipant {
        /// Room id; `None` means the event's room.
        #[serde(skip_serializing_if = "Option::is_none")]
        chat: Option<String>,
        /// Handle ...
        #[serde(skip_serializing_if = "Option::is_none")]
        handle: Option<String>,
        /// ... or id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// Approve a contact request.
    ApproveContact {
        /// Request id; `None` means the event's request.
        #[serde(skip_serializing_if = "Option::is_none")]
        request: Option<String>,
    },
    /// Reject a contact request.
    RejectContact {
        /// Request id; `None` means the event's request.
        #[serde(skip_serializing_if = "Option::is_none")]
        request: Option<String>,
        /// Why (logged; the platform's respond call carries no reason).
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Send a contact request.
    AddContact {
        /// Handle to ask.
        handle: String,
        /// Note sent with the request.
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Remove a contact.
    RemoveContact {
        /// Handle or id.
        handle: String,
    },
    /// Outbound HTTP request to an allowed host.
    Http {
        /// HTTP method (upper case).
        method: String,
        /// Absolute URL.
        url: String,
        /// Request headers.
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
        /// JSON body.
        #[serde(skip_serializing_if = "Option::is_none")]
        json: Option<Value>,
        /// Time limit.
        #[serde(skip)]
        timeout: Duration,
    },
    /// Set a state key (done by the engine, not the executor).
    Set {
        /// Key.
        key: String,
        /// Value.
        value: Value,
        /// Time to live.
        #[serde(skip_serializing_if = "Option::is_none", with = "opt_secs")]
        ttl: Option<Duration>,
    },
    /// Remove a state key (engine).
    Unset {
        /// Key.
        key: String,
    },
    /// Add to a numeric state key (engine).
    Incr {
        /// Key.
        key: String,
        /// Amount (default 1).
        by: i64,
        /// Time to live.
        #[serde(skip_serializing_if = "Option::is_none", with = "opt_secs")]
        ttl: Option<Duration>,
    },
    /// Write a log line (engine).
    Log {
        /// Text.
        message: String,
        /// error, warn, info, debug or trace.
        level: String,
    },
    /// Mark the message failed with a reason (engine; ends the rule).
    Fail {
        /// Reason sent to the platform.
        reason: String,
    },
}

impl RenderedAction {
    /// The action's name as written in workflows (`reply`, `add_participant`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            RenderedAction::Reply { .. } => "reply",
            RenderedAction::SendMessage { .. } => "send_message",
            RenderedAction::PostEvent { .. } => "post_event",
            RenderedAction::CreateChat { .. } => "create_chat",
            RenderedAction::AddParticipant { .. } => "add_participant",
            RenderedAction::RemoveParticipant { .. } => "remove_participant",
            RenderedAction::ApproveContact { .. } => "approve_contact",
            RenderedAction::RejectContact { .. } => "reject_contact",
            RenderedAction::AddContact { .. } => "add_contact",
            RenderedAction::RemoveContact { .. } => "remove_contact",
            RenderedAction::Http { .. } => "http",
            RenderedAction::Set { .. } => "set",
            RenderedAction::Unset { .. } => "unset",
            RenderedAction::Incr { .. } => "incr",
            RenderedAction::Log { .. } => "log",
            RenderedAction::Fail { .. } => "fail",
        }
    }

    /// True for actions that must not run twice: repeating them shows (a
    /// second message) or costs (an outside call). The journal guards them
    /// with a "sent" record before they go out.
    pub fn must_not_repeat(&self) -> bool {
        matches!(
            self,
            RenderedAction::Reply { .. }
                | RenderedAction::SendMessage { .. }
                | RenderedAction::PostEvent { .. }
                | RenderedAction::CreateChat { .. }
                | RenderedAction::AddContact { .. }
                | RenderedAction::Http { .. }
        )
    }

    /// True for actions the engine performs itself (state, log, fail).
    pub fn is_local(&self) -> bool {
        matches!(
            self,
            RenderedAction::Set { .. }
                | RenderedAction::Unset { .. }
                | RenderedAction::Incr { .. }
                | RenderedAction::Log { .. }
                | RenderedAction::Fail { .. }
        )
    }
}

mod opt_secs {
    use std::time::Duration;

    use serde::Serializer;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format!("{}s", d.as_secs())),
            None => s.serialize_none(),
        }
    }
}

/// Where an event happened: what the executor needs to resolve defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    /// Id of the event's room, when it has one.
    pub chat_id: Option<String>,
    /// Id of the message being handled (`message_created`).
    pub message_id: Option<String>,
    /// The message's sender: the default mention of `reply`.
    pub sender: Option<Sender>,
    /// Id of the contact request of a `contact_request_*` event.
    pub contact_request_id: Option<String>,
}

/// Who sent a message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sender {
    /// Participant id.
    pub id: String,
    /// `User` or `Agent`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Display name.
    pub name: Option<String>,
    /// Handle, when known.
    pub handle: Option<String>,
}

/// Why an action failed: readable, sent as the message's failure reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{action}: {message}")]
pub struct ActionError {
    /// Action name.
    pub action: &'static str,
    /// What went wrong.
    pub message: String,
}

/// A boxed future, so the trait stays object safe.
pub type ActionFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, ActionError>> + Send + 'a>>;

/// Performs the actions that leave the process. `platform::rest::AgentApi`
/// backs it in production; tests and dry runs use recording executors.
/// The returned value is bound by `as:` (e.g. the created room, the sent message).
pub trait Executor: Send + Sync {
    /// Performs one non-local action (see [`RenderedAction::is_local`]).
    fn execute<'a>(&'a self, action: &'a RenderedAction, scope: &'a Scope) -> ActionFuture<'a>;

    /// For an action sent before a crash whose outcome was never recorded:
    /// its result if it did land (found on the platform), `None` if it did
    /// not and may be sent again, an error when that cannot be told (then the
    /// message fails and is retried later rather than risk a duplicate).
    fn landed<'a>(&'a self, action: &'a RenderedAction, scope: &'a Scope) -> LandedFuture<'a> {
        let _ = (action, scope);
        Box::pin(async { Ok(None) })
    }
}

/// What [`Executor::landed`] answers.
pub type LandedFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Value>, ActionError>> + Send + 'a>>;
