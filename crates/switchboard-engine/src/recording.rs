//! An [`Executor`] that performs nothing: it records each action and answers
//! with a plausible result, for `switchboard test`, `explain` and the
//! engine's own tests.

use std::sync::Mutex;

use serde_json::{json, Value};

use super::action::{
    ActionFuture, Executor, LandedFuture, PlatformAction, RenderedAction, Scope, Split,
};

/// Records actions instead of performing them.
#[derive(Debug, Default)]
pub struct RecordingExecutor {
    done: Mutex<Vec<RenderedAction>>,
    fail: Mutex<Vec<(&'static str, String)>>,
    results: Mutex<Vec<(&'static str, Value)>>,
}

impl RecordingExecutor {
    /// A new recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every action named `name` fail with `message`.
    pub fn fail_on(&self, name: &'static str, message: &str) {
        self.lock_fail().push((name, message.to_owned()));
    }

    /// Makes every action named `name` answer `result` (what an `http`
    /// call returned, say) instead of the made-up default.
    pub fn respond_with(&self, name: &'static str, result: Value) {
        self.results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name, result));
    }

    /// The actions performed so far.
    pub fn actions(&self) -> Vec<RenderedAction> {
        self.done.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn lock_fail(&self) -> std::sync::MutexGuard<'_, Vec<(&'static str, String)>> {
        self.fail.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Executor for RecordingExecutor {
    fn execute<'a>(&'a self, action: &'a RenderedAction, _scope: &'a Scope) -> ActionFuture<'a> {
        Box::pin(async move {
            if let Some((_, message)) = self.lock_fail().iter().find(|(n, _)| *n == action.name()) {
                return Err(super::action::ActionError {
                    action: action.name(),
                    message: message.clone(),
                    kind: super::action::ErrorKind::Failed,
                });
            }
            let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
            done.push(action.clone());
            let n = done.len();
            let given = self.results.lock().unwrap_or_else(|p| p.into_inner());
            match given.iter().find(|(name, _)| *name == action.name()) {
                Some((_, result)) => Ok(result.clone()),
                None => Ok(synthetic_result(action, n)),
            }
        })
    }

    /// A dry run has no platform to look on: nothing was sent before.
    fn landed<'a>(&'a self, _: &'a RenderedAction, _: &'a Scope) -> LandedFuture<'a> {
        Box::pin(async { Ok(None) })
    }
}

/// A result shaped like the real one (what `as:` binds in a dry run).
/// Exhaustive over platform actions: a new one must say what it answers.
fn synthetic_result(action: &RenderedAction, n: usize) -> Value {
    use PlatformAction as P;
    let Split::Platform(action) = action.split() else {
        // The engine performs local actions itself.
        return json!({"success": true});
    };
    match action {
        P::Reply(_) | P::SendMessage(_) => {
            json!({"id": format!("dry-run-message-{n}"), "success": true})
        }
        P::CreateChat(chat) => {
            json!({"id": format!("dry-run-chat-{n}"), "title": chat.title})
        }
        P::PostEvent(event) => {
            json!({"id": format!("dry-run-event-{n}"), "message_type": event.kind, "success": true})
        }
        P::Http(_) => json!({"status": 200, "body": null}),
        // No model is asked: an empty answer (`json` null when a schema was
        // given); `given.results` stubs a real-looking one.
        P::Llm(llm) => {
            let mut answer = json!({
                "text": "",
                "model": "dry-run",
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            });
            if llm.schema.is_some() {
                answer["json"] = Value::Null;
            }
            answer
        }
        P::AddParticipant(_)
        | P::RemoveParticipant(_)
        | P::ApproveContact(_)
        | P::RejectContact(_)
        | P::AddContact(_)
        | P::RemoveContact(_) => json!({"success": true}),
    }
}
