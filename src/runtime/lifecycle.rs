//! One message's life: skip what is not ours to handle, claim it
//! (`/processing`), run the handler, and ack (`/processed` or `/failed`).
//! Also the plain delivery of non-message events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::config::Tunables;
use super::dedupe::Completed;
use super::handler::{Delivery, Handler, Outcome, RoomInfo};
use super::observer::{Mark, Observer};
use band_client::rest::AgentApi;
use band_wire::events::Event;
use band_wire::model::ChatMessage;

/// What every room task shares: the REST client, the handler, who we are,
/// the handled-message memory and the knobs.
#[derive(Clone)]
pub(crate) struct Shared {
    /// Agent REST client.
    pub(crate) api: AgentApi,
    /// Decides what to do with events.
    pub(crate) handler: Arc<dyn Handler>,
    /// Our agent id (from `/agent/me`).
    pub(crate) me_id: String,
    /// Handled message ids, shared by all rooms.
    pub(crate) completed: Completed,
    /// Knobs.
    pub(crate) tunables: Tunables,
    /// Told about lifecycle marks and the socket (a no-op when nobody watches).
    pub(crate) observer: Arc<dyn Observer>,
}

/// Why a message is not handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skip {
    /// Sent by this agent.
    Own,
    /// Already handled by this process.
    AlreadyHandled,
    /// The platform says we processed it already.
    AlreadyProcessed,
}

/// How handling one message ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MessageResult {
    /// Not handled, and no mark sent.
    Skipped(Skip),
    /// `/processing` said the room's execution is stopped: left for later.
    RoomStopped,
    /// `/processing` failed: left for a later drain.
    ClaimFailed,
    /// The handler ran; its outcome (the ack may still be pending).
    Handled(Outcome),
    /// The handler failed and the message will be tried again (later drain).
    WillRetry,
}

/// Whether `msg` should be left alone, and why.
pub(crate) fn skip_reason(msg: &ChatMessage, me_id: &str, completed: &Completed) -> Option<Skip> {
    if msg.sender_id == me_id {
        return Some(Skip::Own);
    }
    if completed.contains(&msg.id) {
        return Some(Skip::AlreadyHandled);
    }
    if delivery_status(msg, me_id) == Some("processed") {
        return Some(Skip::AlreadyProcessed);
    }
    None
}

/// `metadata.delivery_status[<me>].status`, when present.
fn delivery_status<'a>(msg: &'a ChatMessage, me_id: &str) -> Option<&'a str> {
    msg.metadata
        .as_ref()?
        .get("delivery_status")?
        .get(me_id)?
        .get("status")
        .and_then(Value::as_str)
}

/// Runs the lifecycle for one message of `room`.
pub(crate) async fn process_message(
    shared: &Shared,
    room: Arc<RoomInfo>,
    msg: ChatMessage,
    from_backlog: bool,
) -> MessageResult {
    if let Some(skip) = skip_reason(&msg, &shared.me_id, &shared.completed) {
        tracing::debug!(room = %room.id, message_id = %msg.id, ?skip, from_backlog, "message skipped");
        return MessageResult::Skipped(skip);
    }
    let started = Instant::now();
    let claim = shared.api.mark_processing(&room.id, &msg.id).await;
    // A 204 (room stopped) is an answer, not a failed POST.
    shared
        .observer
        .lifecycle_mark(Mark::Processing, claim.is_ok());
    let attempt = match claim {
        Ok(Some(status)) => status.attempt_number,
        Ok(None) => {
            tracing::info!(room = %room.id, message_id = %msg.id, "room execution is stopped; message left for later");
            return MessageResult::RoomStopped;
        }
        Err(e) => {
            tracing::warn!(room = %room.id, message_id = %msg.id, error = %e, "cannot claim message; left for a later drain");
            return MessageResult::ClaimFailed;
        }
    };
    let msg_id = msg.id.clone();
    let room_id = room.id.clone();
    let limit = shared.tunables.max_attempts.max(1);
    if attempt > limit {
        // Served again after its last allowed attempt (e.g. by a restart).
        let reason = format!("gave up after {limit} failed attempts");
        tracing::warn!(room = %room_id, message_id = %msg_id, attempt, "{reason}; left failed");
        let marked = shared.api.mark_failed(&room_id, &msg_id, &reason).await;
        shared.observer.lifecycle_mark(Mark::Failed, marked.is_ok());
        shared.completed.insert(&msg_id);
        shared.handler.settled(&msg_id);
        return MessageResult::Handled(Outcome::Failed { reason });
    }
    let delivery = Delivery {
        event: Event::MessageCreated(msg),
        room: Some(room),
        from_backlog,
    };
    let outcome = run_handler(&shared.handler, delivery).await;
    // Remember it before acking: whatever the ack does, the handler must not
    // run again — unless it failed and has attempts left (then a later drain
    // retries it, and the action journal keeps what already succeeded).
    let retry = matches!(outcome, Outcome::Failed { .. }) && attempt < limit;
    if !retry {
        shared.completed.insert(&msg_id);
    }
    let acked = match &outcome {
        Outcome::Done => ack_processed(shared, &room_id, &msg_id).await,
        Outcome::Failed { reason } => {
            let marked = shared.api.mark_failed(&room_id, &msg_id, reason).await;
            shared.observer.lifecycle_mark(Mark::Failed, marked.is_ok());
            match marked {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!(room = %room_id, message_id = %msg_id, error = %e, "cannot mark message failed");
                    false
                }
            }
        }
    };
    // The handler logs the event's line at info; this one is the lifecycle's detail.
    tracing::debug!(
        event = "message_created",
        room = %room_id,
        message_id = %msg_id,
        outcome = %describe(&outcome),
        acked,
        from_backlog,
        duration_ms = millis(started.elapsed()),
        "handled event"
    );
    if retry {
        tracing::info!(room = %room_id, message_id = %msg_id, attempt, limit, "message failed; it will be tried again");
        return MessageResult::WillRetry;
    }
    if matches!(outcome, Outcome::Failed { .. }) {
        tracing::warn!(room = %room_id, message_id = %msg_id, attempt, "message failed on its last allowed attempt; left failed");
        shared.handler.settled(&msg_id);
    }
    MessageResult::Handled(outcome)
}

/// `POST /processed`, retried on its own; a failure leaves the ack pending
/// for the next drain. True when the platform took it.
pub(crate) async fn ack_processed(shared: &Shared, room_id: &str, msg_id: &str) -> bool {
    let attempts = shared.tunables.ack_attempts.max(1);
    for attempt in 1..=attempts {
        let marked = shared.api.mark_processed(room_id, msg_id).await;
        // "No live attempt" means an earlier try went through: the mark is recorded.
        let recorded = match &marked {
            Ok(_) => true,
            Err(e) => e.is_missing_processing_attempt(),
        };
        shared.observer.lifecycle_mark(Mark::Processed, recorded);
        match marked {
            Ok(_) => {
                shared.completed.set_ack_pending(msg_id, false);
                shared.handler.settled(msg_id);
                return true;
            }
            // No live attempt: an earlier try went through but its answer was lost.
            Err(e) if e.is_missing_processing_attempt() => {
                tracing::debug!(room = %room_id, message_id = %msg_id, "processed already recorded");
                shared.completed.set_ack_pending(msg_id, false);
                shared.handler.settled(msg_id);
                return true;
            }
            Err(e) => {
                tracing::warn!(room = %room_id, message_id = %msg_id, attempt, error = %e, "cannot mark message processed");
                if attempt < attempts {
                    tokio::time::sleep(shared.tunables.ack_retry_delay).await;
                }
            }
        }
    }
    shared.completed.set_ack_pending(msg_id, true);
    false
}

/// Hands a non-message event to the handler (no lifecycle) and logs it.
pub(crate) async fn deliver_event(shared: &Shared, delivery: Delivery) {
    let started = Instant::now();
    let name = delivery.event.name().to_string();
    let room = delivery.room.as_ref().map(|r| r.id.clone());
    let outcome = run_handler(&shared.handler, delivery).await;
    tracing::debug!(
        event = %name,
        room = room.as_deref().unwrap_or("-"),
        outcome = %describe(&outcome),
        duration_ms = millis(started.elapsed()),
        "handled event"
    );
}

/// Runs the handler in its own task so a panic becomes a `Failed` outcome
/// instead of killing the room's queue.
async fn run_handler(handler: &Arc<dyn Handler>, delivery: Delivery) -> Outcome {
    let handler = handler.clone();
    let task = tokio::spawn(async move { handler.handle(delivery).await });
    match task.await {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Failed {
            reason: format!("handler crashed: {e}"),
        },
    }
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Done => "done".into(),
        Outcome::Failed { reason } => format!("failed: {reason}"),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(sender: &str, metadata: Value) -> ChatMessage {
        serde_json::from_value(json!({
            "id": "m1", "content": "hi", "message_type": "text",
            "sender_id": sender, "sender_type": "User",
            "metadata": metadata, "inserted_at": "", "updated_at": ""
        }))
        .unwrap()
    }

    #[test]
    fn own_messages_are_skipped() {
        let c = Completed::new(4);
        assert_eq!(
            skip_reason(&msg("me", json!({})), "me", &c),
            Some(Skip::Own)
        );
        assert_eq!(skip_reason(&msg("bob", json!({})), "me", &c), None);
    }

    #[test]
    fn handled_and_processed_messages_are_skipped() {
        let c = Completed::new(4);
        let processed = json!({"delivery_status": {"me": {"status": "processed"}}});
        assert_eq!(
            skip_reason(&msg("bob", processed), "me", &c),
            Some(Skip::AlreadyProcessed)
        );
        // Someone else's processed status is not ours.
        let theirs = json!({"delivery_status": {"other": {"status": "processed"}}});
        assert_eq!(skip_reason(&msg("bob", theirs), "me", &c), None);
        c.insert("m1");
        assert_eq!(
            skip_reason(&msg("bob", json!(null)), "me", &c),
            Some(Skip::AlreadyHandled)
        );
    }
}
