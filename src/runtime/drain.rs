//! The `/next` drain of one room: handle the backlog, oldest first, until the
//! platform has nothing more (204) or keeps re-serving something we cannot
//! move past (a failed message, a lost ack). `/next` is a cursor stuck on
//! that message, so the drain then sweeps the room's unprocessed list to
//! reach what lies behind it.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::watch;

use super::control::RoomControl;
use super::handler::RoomInfo;
use super::lifecycle::{ack_processed, process_message, MessageRef, MessageResult, Services};
use band_client::rest::MessageQuery;

/// Page size of the sweep (the list endpoint's maximum).
const SWEEP_PAGE: u32 = 100;

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

/// What a drain did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Drained {
    /// Messages the handler ran for.
    pub(crate) handled: usize,
    /// Why it stopped.
    pub(crate) end: DrainEnd,
    /// Some message failed and has attempts left: drain again later.
    pub(crate) retry: bool,
}

/// Drains `room`; `control` cancels the message in hand (STOP, INTERRUPT).
pub(crate) async fn drain_room(
    services: &Services,
    room: &Arc<RoomInfo>,
    control: &watch::Receiver<RoomControl>,
    stopping: impl Fn() -> bool,
) -> Drained {
    let (handled, end, retry) = drain_inner(services, room, control, stopping).await;
    Drained {
        handled,
        end,
        retry,
    }
}

async fn drain_inner(
    services: &Services,
    room: &Arc<RoomInfo>,
    control: &watch::Receiver<RoomControl>,
    stopping: impl Fn() -> bool,
) -> (usize, DrainEnd, bool) {
    let mut seen: HashSet<String> = HashSet::new();
    let mut handled = 0usize;
    let mut retry = false;
    let end = loop {
        if stopping() {
            break DrainEnd::ShuttingDown;
        }
        if seen.len() >= services.tunables.drain_limit {
            break DrainEnd::Limit;
        }
        let msg = match services.api.next_message(&room.id).await {
            Ok(None) => break DrainEnd::Empty,
            Ok(Some(m)) => m,
            Err(e) => {
                tracing::warn!(room = %room.id, error = %crate::error_chain::Chain(&e), "GET /next failed; drain stops");
                break DrainEnd::Error;
            }
        };
        let id = msg.id.clone();
        if services.ledger.ack_pending(&id) {
            // The handler ran; only the ack is owed.
            let target = MessageRef {
                room_id: &room.id,
                id: &id,
            };
            if ack_processed(services, target).await && seen.insert(id.clone()) {
                continue;
            }
            break DrainEnd::Stuck(id);
        }
        if !seen.insert(id.clone()) || services.ledger.contains(&id) {
            // `/next` is a cursor: it will keep serving this one.
            break DrainEnd::Stuck(id);
        }
        match process_message(services, room.clone(), msg, true, control).await {
            MessageResult::Handled(_) | MessageResult::Interrupted => handled += 1,
            // Failed with attempts left: `/next` serves it again at once, which
            // ends this drain as Stuck; the retry comes from a later drain.
            MessageResult::WillRetry => {
                handled += 1;
                retry = true;
            }
            // Skipped ones come back next turn and end the drain as Stuck.
            MessageResult::Skipped(_) => {}
            MessageResult::RoomStopped => break DrainEnd::RoomStopped,
            MessageResult::ClaimFailed => break DrainEnd::Error,
        }
    };
    if let DrainEnd::Stuck(id) = &end {
        tracing::debug!(room = %room.id, message_id = %id, "/next is stuck; sweeping the unprocessed list");
        let (more, sweep_end, sweep_retry) =
            sweep_room(services, room, control, &stopping, &seen).await;
        handled += more;
        retry |= sweep_retry;
        if let Some(e) = sweep_end {
            tracing::debug!(room = %room.id, handled, end = ?e, "drain finished");
            return (handled, e, retry);
        }
    }
    tracing::debug!(room = %room.id, handled, end = ?end, "drain finished");
    (handled, end, retry)
}

/// Walks `GET /messages` (not processed, oldest first) and handles what this
/// process has not dealt with yet (nor tried in this drain, `tried`).
/// Returns how many ran, a new end when the sweep itself was cut short, and
/// whether one failed with attempts left.
async fn sweep_room(
    services: &Services,
    room: &Arc<RoomInfo>,
    control: &watch::Receiver<RoomControl>,
    stopping: &impl Fn() -> bool,
    tried: &HashSet<String>,
) -> (usize, Option<DrainEnd>, bool) {
    let mut handled = 0usize;
    let mut retry = false;
    let mut looked = 0usize;
    let mut cursor: Option<String> = None;
    loop {
        let query = MessageQuery {
            cursor: cursor.take(),
            limit: Some(SWEEP_PAGE),
            sort_order: Some("asc".into()),
            ..MessageQuery::default()
        };
        let page = match services.api.list_messages(&room.id, &query).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(room = %room.id, error = %crate::error_chain::Chain(&e), "cannot list unprocessed messages");
                return (handled, Some(DrainEnd::Error), retry);
            }
        };
        for msg in page.items {
            if stopping() {
                return (handled, Some(DrainEnd::ShuttingDown), retry);
            }
            looked += 1;
            if looked > services.tunables.drain_limit {
                return (handled, Some(DrainEnd::Limit), retry);
            }
            if services.ledger.ack_pending(&msg.id) {
                let target = MessageRef {
                    room_id: &room.id,
                    id: &msg.id,
                };
                ack_processed(services, target).await;
                continue;
            }
            if tried.contains(&msg.id) {
                retry = true;
                continue;
            }
            match process_message(services, room.clone(), msg, true, control).await {
                MessageResult::Handled(_) | MessageResult::Interrupted => handled += 1,
                MessageResult::WillRetry => {
                    handled += 1;
                    retry = true;
                }
                MessageResult::Skipped(_) => {}
                MessageResult::RoomStopped => return (handled, Some(DrainEnd::RoomStopped), retry),
                MessageResult::ClaimFailed => return (handled, Some(DrainEnd::Error), retry),
            }
        }
        match (page.meta.has_more, page.meta.next_cursor) {
            (Some(true), Some(next)) => cursor = Some(next),
            _ => return (handled, None, retry),
        }
    }
}
