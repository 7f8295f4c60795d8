//! The contract between rendering and doing: an action after its templates
//! were rendered, the scope it runs in, and the trait that performs the ones
//! that leave the process (REST calls, outbound HTTP).

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use serde_json::Value;

/// Defined, one module per action, in the workflow crate (the language);
/// re-exported here as the engine's contract with executors.
pub use switchboard_workflow::actions::RenderedAction;

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
