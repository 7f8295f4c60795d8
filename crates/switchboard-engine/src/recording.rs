//! An [`Executor`] that performs nothing: it records each action and answers
//! with a plausible result, for `switchboard test`, `explain` and the
//! engine's own tests.

use std::sync::Mutex;

use serde_json::{json, Value};

use super::action::{ActionFuture, Executor, RenderedAction, Scope};

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
}

fn synthetic_result(action: &RenderedAction, n: usize) -> Value {
    match action {
        RenderedAction::Reply(_) | RenderedAction::SendMessage(_) => {
            json!({"id": format!("dry-run-message-{n}"), "success": true})
        }
        RenderedAction::CreateChat(chat) => {
            json!({"id": format!("dry-run-chat-{n}"), "title": chat.title})
        }
        RenderedAction::PostEvent(event) => {
            json!({"id": format!("dry-run-event-{n}"), "message_type": event.kind, "success": true})
        }
        RenderedAction::Http(_) => json!({"status": 200, "body": null}),
        _ => json!({"success": true}),
    }
}
