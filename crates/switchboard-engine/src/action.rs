//! The contract between rendering and doing: an action after its templates
//! were rendered, the scope it runs in, and the trait that performs the ones
//! that leave the process (REST calls, outbound HTTP).

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use switchboard_workflow::actions;
/// Defined, one module per action, in the workflow crate (the language);
/// re-exported here as the engine's contract with executors.
pub use switchboard_workflow::actions::{
    LocalAction, PauseAction, PlatformAction, RenderedAction, Split,
};

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
    /// Handle of who sent that request, when the event says (for logs).
    pub contact_from: Option<String>,
    /// The step being performed (`rule#do0`), set by the engine for each
    /// action: with `message_id`, what names one action of one message across
    /// retries and restarts (`http` derives its `Idempotency-Key` from it).
    pub step: Option<String>,
    /// The earliest time anything this event's actions sent can bear, when
    /// it has no source message on the platform to date it (a webhook
    /// delivery's receipt): looking for a send cut short by a crash
    /// (`Executor::landed`), what is older belongs to an earlier event.
    pub not_before: Option<chrono::DateTime<chrono::Utc>>,
}

/// Who sent a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Whether it is the rule's failure or the platform's STOP.
    pub kind: ErrorKind,
}

/// What kind of refusal an action met.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ErrorKind {
    /// The action failed: the rule's `on_error` applies, then the event fails.
    #[default]
    Failed,
    /// The platform refused it because the agent's execution in the room is
    /// stopped (STOP): not a failure of the rule. The event ends at once
    /// ([`crate::Finish::Stopped`]), no `on_error` runs, and the message is
    /// handled again after PLAY (the journal keeps the steps already done).
    ExecutionStopped,
}

/// Why a platform action's effect did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectError {
    /// What went wrong, readable.
    pub message: String,
    /// Failure, or the platform's STOP.
    pub kind: ErrorKind,
}

impl EffectError {
    /// The platform refused the action because the room's execution is stopped.
    pub fn execution_stopped(message: impl Into<String>) -> Self {
        EffectError {
            message: message.into(),
            kind: ErrorKind::ExecutionStopped,
        }
    }
}

/// Any readable message is a plain failure.
impl From<String> for EffectError {
    fn from(message: String) -> Self {
        EffectError {
            message,
            kind: ErrorKind::Failed,
        }
    }
}

/// Any readable message is a plain failure.
impl From<&str> for EffectError {
    fn from(message: &str) -> Self {
        EffectError::from(message.to_owned())
    }
}

/// A boxed future, so the trait stays object safe.
pub type ActionFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, ActionError>> + Send + 'a>>;

/// Performs the actions that leave the process. The REST executor gets it by
/// implementing [`Effects`] (one method per action); tests and dry runs use
/// recording executors, which take any action alike.
/// The returned value is bound by `as:` (e.g. the created room, the sent message).
pub trait Executor: Send + Sync {
    /// Performs one non-local action (see [`RenderedAction::is_local`]).
    fn execute<'a>(&'a self, action: &'a RenderedAction, scope: &'a Scope) -> ActionFuture<'a>;

    /// For an action sent before a crash whose outcome was never recorded:
    /// its result if it did land (found on the platform), `None` if it did
    /// not and may be sent again, an error when that cannot be told (then the
    /// message fails and is retried later rather than risk a duplicate).
    /// No default: a wrapper that forgot to forward it would send again
    /// what it should have found.
    fn landed<'a>(&'a self, action: &'a RenderedAction, scope: &'a Scope) -> LandedFuture<'a>;
}

/// What [`Executor::landed`] answers.
pub type LandedFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Value>, ActionError>> + Send + 'a>>;

/// What one platform action's effect answers: its result, or why it failed.
pub type Effect = Result<Value, EffectError>;

/// The platform's side of every action, one method per platform action
/// ([`Kind::Platform`](switchboard_workflow::actions::Kind)): an executor
/// that implements this gets [`Executor`] for free, and a new platform
/// action does not compile until every such executor performs it.
pub trait Effects: Send + Sync {
    /// `reply`.
    fn reply(&self, a: &actions::Reply, scope: &Scope) -> impl Future<Output = Effect> + Send;
    /// `send_message`.
    fn send_message(
        &self,
        a: &actions::SendMessage,
        scope: &Scope,
    ) -> impl Future<Output = Effect> + Send;
    /// `post_event`.
    fn post_event(
        &self,
        a: &actions::PostEvent,
        scope: &Scope,
    ) -> impl Future<Output = Effect> + Send;
    /// `create_chat`.
    fn create_chat(
        &self,
        a: &actions::CreateChat,
        scope: &Scope,
    ) -> impl Future<Output = Effect> + Send;
    /// `add_participant`.
    fn add_participant(
        &self,
        a: &actions::AddParticipant,
        scope: &Scope,
    ) -> impl Future<Output = Effect> + Send;
    /// `remove_participant`.
    fn remove_participant(
        &self,
        a: &actions::RemoveParticipant,
        scope: &Scope,
    ) -> impl Future<Output = Effect> + Send;
    /// `approve_contact`.
    fn approve_contact(
        &self,
        a: &actions::ApproveContact,
        scope: &Scope,
    ) -> impl Future<Output = Effect> + Send;
    /// `reject_contact`.
    fn reject_contact(
        &self,
        a: &actions::RejectContact,
        scope: &Scope,
    ) -> impl Future<Output = Effect> + Send;
    /// `add_contact`.
    fn add_contact(
        &self,
        a: &actions::AddContact,
        scope: &Scope,
    ) -> impl Future<Output = Effect> + Send;
    /// `remove_contact`.
    fn remove_contact(
        &self,
        a: &actions::RemoveContact,
        scope: &Scope,
    ) -> impl Future<Output = Effect> + Send;
    /// `http`.
    fn http(&self, a: &actions::Http, scope: &Scope) -> impl Future<Output = Effect> + Send;
    /// `llm`.
    fn llm(&self, a: &actions::Llm, scope: &Scope) -> impl Future<Output = Effect> + Send;

    /// See [`Executor::landed`]; by default nothing can be found (sent again).
    fn landed(
        &self,
        action: PlatformAction<'_>,
        scope: &Scope,
    ) -> impl Future<Output = Result<Option<Value>, String>> + Send {
        let _ = (action, scope);
        async { Ok(None) }
    }
}

impl<T: Effects> Executor for T {
    fn execute<'a>(&'a self, action: &'a RenderedAction, scope: &'a Scope) -> ActionFuture<'a> {
        use PlatformAction as P;
        Box::pin(async move {
            let done = match action.split() {
                Split::Platform(platform) => match platform {
                    P::Reply(a) => self.reply(a, scope).await,
                    P::SendMessage(a) => self.send_message(a, scope).await,
                    P::PostEvent(a) => self.post_event(a, scope).await,
                    P::CreateChat(a) => self.create_chat(a, scope).await,
                    P::AddParticipant(a) => self.add_participant(a, scope).await,
                    P::RemoveParticipant(a) => self.remove_participant(a, scope).await,
                    P::ApproveContact(a) => self.approve_contact(a, scope).await,
                    P::RejectContact(a) => self.reject_contact(a, scope).await,
                    P::AddContact(a) => self.add_contact(a, scope).await,
                    P::RemoveContact(a) => self.remove_contact(a, scope).await,
                    P::Http(a) => self.http(a, scope).await,
                    P::Llm(a) => self.llm(a, scope).await,
                },
                Split::Local(_) => Err("a local action reached the executor (engine bug)".into()),
                Split::Pause(_) => Err("a pause reached the executor (engine bug)".into()),
            };
            done.map_err(|e| ActionError {
                action: action.name(),
                message: e.message,
                kind: e.kind,
            })
        })
    }

    fn landed<'a>(&'a self, action: &'a RenderedAction, scope: &'a Scope) -> LandedFuture<'a> {
        Box::pin(async move {
            let found = match action.split() {
                Split::Platform(platform) => Effects::landed(self, platform, scope).await,
                // Never sent, so never found.
                Split::Local(_) | Split::Pause(_) => Ok(None),
            };
            found.map_err(|message| ActionError {
                action: action.name(),
                message,
                kind: ErrorKind::Failed,
            })
        })
    }
}
