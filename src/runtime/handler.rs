//! The contract between the runtime (which owns the socket, the rooms and the
//! message lifecycle) and whatever decides what to do with an event (the
//! rules engine in production, small closures in tests).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use band_wire::events::Event;
use band_wire::model::{AgentMe, ChatParticipant};

/// What the runtime knows about a room when it hands over one of its events.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomInfo {
    /// Room id.
    pub id: String,
    /// Title, when the room has one.
    pub title: Option<String>,
    /// Participants, as last loaded (`GET /participants`, kept current by
    /// `participant_added` / `participant_removed`).
    pub participants: Vec<ChatParticipant>,
}

/// One event for the handler.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The typed event (`message_created`, `room_added`, `contact_request_received`, ...).
    pub event: Event,
    /// The room it belongs to, when it belongs to one.
    pub room: Option<Arc<RoomInfo>>,
    /// True when it came from the `/next` drain rather than the live socket.
    pub from_backlog: bool,
}

/// What the handler made of a delivery. For `message_created` the runtime
/// turns it into `/processed` or `/failed`, or (`Stopped`) leaves it in
/// `processing` for after PLAY.
#[derive(Debug, Clone, PartialEq)]
pub enum HandlerResult {
    /// Handled (including "no rule matched").
    Done,
    /// Failed, with a readable reason for `/failed`.
    Failed {
        /// Reason sent to the platform.
        reason: String,
    },
    /// The platform refused the handler's work because the room's execution
    /// is stopped (a post answered 403 "execution is stopped"), maybe before
    /// the STOP push arrived: not a failure. The message stays in
    /// `processing` and the room waits for PLAY, as after a STOP push.
    Stopped {
        /// What told us, for the log.
        reason: String,
    },
}

/// A boxed future, so the trait stays object safe.
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = HandlerResult> + Send + 'a>>;

/// Decides what to do with events. Called for one room's events one at a time,
/// in arrival order; different rooms and contact events run concurrently.
pub trait Handler: Send + Sync + 'static {
    /// Called once, after the startup sync (every room joined and drained).
    fn started<'a>(&'a self, me: &'a AgentMe) -> HandlerFuture<'a>;
    /// Called for every event except the agent's own messages. For
    /// `message_created` it runs between `/processing` and `/processed`.
    fn handle(&self, delivery: Delivery) -> HandlerFuture<'_>;
    /// Called once the platform has a message as processed (or the runtime
    /// gave up on it): whatever was kept to resume it can go.
    fn settled(&self, message_id: &str) {
        let _ = message_id;
    }
}
