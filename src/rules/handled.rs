//! What the rules report about each event they handled, and the [`Sink`]
//! trait through which the layers above (telemetry, `--explain`, `--record`,
//! the demo, tests) are told; defined here so those layers depend on the
//! rules, never the other way.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::mpsc;

use switchboard_engine::Report;

/// One handled event, for live transcripts (the demo) and tests.
#[derive(Debug, Clone)]
pub struct Handled {
    /// The event's type.
    pub event_type: String,
    /// Its payload.
    pub event: Value,
    /// The room, when it had one.
    pub room: Option<String>,
    /// The message handled (`message_created`).
    pub message_id: Option<String>,
    /// The event's own id (message, room, participant, contact, request).
    pub event_id: Option<String>,
    /// The room's details as the rules saw them (id, title, participants).
    pub chat: Option<Value>,
    /// The scheduled rule, for `schedule` events.
    pub rule: Option<String>,
    /// When it was handled.
    pub now: DateTime<Utc>,
    /// How long the engine took.
    pub elapsed: Duration,
    /// What the engine did.
    pub report: Report,
}

/// Something told about every handled event: the demo's transcript, tests,
/// `--explain`, `--record`, metrics.
pub trait Sink: Send + Sync {
    /// Called once per event, after the engine finished with it.
    fn handled(&self, handled: &Handled);
}

impl Sink for mpsc::UnboundedSender<Handled> {
    fn handled(&self, handled: &Handled) {
        // The receiver going away (a finished test) is no error for the agent.
        let _ = self.send(handled.clone());
    }
}
