//! The `/next` drain of one room: handle the backlog, oldest first, until the
//! platform has nothing more (204) or keeps re-serving something we cannot
//! move past (a failed message, a stopped room, a lost ack).

use std::collections::HashSet;
use std::sync::Arc;

use super::handler::RoomInfo;
use super::lifecycle::{ack_processed, process_message, MessageResult, Shared};

/// Why a drain ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DrainEnd {
    /// `/next` answered 204.
    Empty,
    /// `/next` served a message again that this process already dealt with
    /// (failed, skipped, or its ack would not go through): it would loop.
    Stuck(String),
    /// The room's execution is stopped.
    RoomStopped,
    /// A REST call failed; a later drain will pick up from here.
    Error,
    /// Shutdown was requested.
    ShuttingDown,
    /// [`super::config::Tunables::drain_limit`] messages in one go.
    Limit,
}

/// Drains `room`; returns how many messages the handler ran for and why it stopped.
pub(crate) async fn drain_room(
    shared: &Shared,
    room: &Arc<RoomInfo>,
    stopping: impl Fn() -> bool,
) -> (usize, DrainEnd) {
    let mut seen: HashSet<String> = HashSet::new();
    let mut handled = 0usize;
    let end = loop {
        if stopping() {
            break DrainEnd::ShuttingDown;
        }
        if seen.len() >= shared.tunables.drain_limit {
            break DrainEnd::Limit;
        }
        let msg = match shared.api.next_message(&room.id).await {
            Ok(None) => break DrainEnd::Empty,
            Ok(Some(m)) => m,
            Err(e) => {
                tracing::warn!(room = %room.id, error = %e, "GET /next failed; drain stops");
                break DrainEnd::Error;
            }
        };
        let id = msg.id.clone();
        if shared.completed.ack_pending(&id) {
            // The handler ran; only the ack is owed.
            if ack_processed(shared, &room.id, &id).await && seen.insert(id.clone()) {
                continue;
            }
            break DrainEnd::Stuck(id);
        }
        if !seen.insert(id.clone()) || shared.completed.contains(&id) {
            // `/next` is a cursor: it will keep serving this one.
            break DrainEnd::Stuck(id);
        }
        match process_message(shared, room.clone(), msg, true).await {
            MessageResult::Handled(_) => handled += 1,
            // Skipped ones come back next turn and end the drain as Stuck.
            MessageResult::Skipped(_) => {}
            MessageResult::RoomStopped => break DrainEnd::RoomStopped,
            MessageResult::ClaimFailed => break DrainEnd::Error,
        }
    };
    tracing::debug!(room = %room.id, handled, end = ?end, "drain finished");
    (handled, end)
}
