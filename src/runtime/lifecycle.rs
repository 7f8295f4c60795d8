//! One message's life: skip what is not ours to handle, claim it
//! (`/processing`), run the handler, and ack (`/processed` or `/failed`).
//! Also the plain delivery of non-message events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::config::Tunables;
use super::control::{Cancelled, RoomControl};
use super::dedupe::MessageLedger;
use super::handler::{Delivery, Handler, HandlerResult, RoomInfo};
use super::observer::{LifecycleMark, Observer};
use band_client::rest::AgentApi;
use band_wire::events::Event;
use band_wire::model::{ChatMessage, DeliveryStatus};

/// What every runtime task (each room's, the contacts queue, the supervisor)
/// works with: the REST client, the handler, who we are, the message ledger
/// and the knobs.
#[derive(Clone)]
pub(crate) struct Services {
    /// Agent REST client.
    pub(crate) api: AgentApi,
    /// Decides what to do with events.
    pub(crate) handler: Arc<dyn Handler>,
    /// Our agent id (from `/agent/me`).
    pub(crate) me_id: String,
    /// What became of each message id, shared by all rooms.
    pub(crate) ledger: MessageLedger,
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
    /// `/processing` said the room's execution is stopped, or a STOP
    /// cancelled the handler: left (in `processing`) for after PLAY.
    RoomStopped,
    /// An INTERRUPT cancelled the handler; the message was marked processed.
    Interrupted,
    /// `/processing` failed: left for a later drain.
    ClaimFailed,
    /// The handler ran; its result (the ack may still be pending).
    Handled(HandlerResult),
    /// The handler failed and the message will be tried again (later drain).
    WillRetry,
}

/// The message a lifecycle step marks: taken once from the message and
/// handed down, so no step looks the id up again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MessageRef<'a> {
    /// Its room.
    pub(crate) room_id: &'a str,
    /// Its id.
    pub(crate) id: &'a str,
}

/// Whether `msg` should be left alone, and why.
pub(crate) fn skip_reason(msg: &ChatMessage, me_id: &str, ledger: &MessageLedger) -> Option<Skip> {
    if msg.sender_id == me_id {
        return Some(Skip::Own);
    }
    if ledger.contains(&msg.id) {
        return Some(Skip::AlreadyHandled);
    }
    if msg.delivery_status(me_id) == Some(DeliveryStatus::Processed) {
        return Some(Skip::AlreadyProcessed);
    }
    None
}

/// Runs the lifecycle for one message of `room`; a STOP or INTERRUPT in
/// `control` after it started cancels the handler.
pub(crate) async fn process_message(
    services: &Services,
    room: Arc<RoomInfo>,
    msg: ChatMessage,
    from_backlog: bool,
    control: &watch::Receiver<RoomControl>,
) -> MessageResult {
    if let Some(skip) = skip_reason(&msg, &services.me_id, &services.ledger) {
        tracing::debug!(room = %room.id, message_id = %msg.id, ?skip, from_backlog, "message skipped");
        return MessageResult::Skipped(skip);
    }
    let mut control = control.clone();
    let cancels_at_start = control.borrow().cancels;
    let started = Instant::now();
    // The message itself goes to the handler; its id stays here.
    let (room_id, msg_id) = (room.id.clone(), msg.id.clone());
    let target = MessageRef {
        room_id: &room_id,
        id: &msg_id,
    };
    let claim = services.api.mark_processing(&room_id, &msg_id).await;
    // A 204 (room stopped) is an answer, not a failed POST.
    services
        .observer
        .lifecycle_mark(LifecycleMark::Processing, claim.is_ok());
    let attempt = match claim {
        Ok(Some(status)) => status.attempt_number,
        Ok(None) => {
            tracing::info!(room = %room_id, message_id = %msg_id, "room execution is stopped; message left for later");
            return MessageResult::RoomStopped;
        }
        Err(e) => {
            tracing::warn!(room = %room_id, message_id = %msg_id, error = %crate::error_chain::Chain(&e), "cannot claim message; left for a later drain");
            return MessageResult::ClaimFailed;
        }
    };
    let limit = services.tunables.max_attempts.max(1);
    if attempt > limit {
        // Served again after its last allowed attempt (e.g. by a restart).
        let reason = format!("gave up after {limit} failed attempts");
        tracing::warn!(room = %room_id, message_id = %msg_id, attempt, "{reason}; left failed");
        mark_failed(services, target, &reason).await;
        services.ledger.settled(&msg_id);
        return MessageResult::Handled(HandlerResult::Failed { reason });
    }
    let delivery = Delivery {
        event: Event::MessageCreated(msg),
        room: Some(room),
        from_backlog,
    };
    let result = match run_cancellable(&services.handler, delivery, &mut control, cancels_at_start)
        .await
    {
        Ok(result) => result,
        Err(Cancelled::Stop) => {
            // Not recorded in the ledger and not marked: `/next` serves it
            // again after PLAY and the handler runs anew (the action journal
            // keeps what already went out).
            tracing::info!(room = %room_id, message_id = %msg_id, "execution stopped: the work in hand was cancelled; the message waits for PLAY");
            return MessageResult::RoomStopped;
        }
        Err(Cancelled::Interrupt) => {
            tracing::info!(room = %room_id, message_id = %msg_id, "interrupted: the work in hand was cancelled; the message is marked processed");
            services.ledger.handled(&msg_id);
            ack_processed(services, target).await;
            return MessageResult::Interrupted;
        }
    };
    if let HandlerResult::Stopped { reason } = &result {
        // A STOP learned from the platform's answer rather than its push:
        // handled like one (not recorded, not marked; served again after PLAY).
        tracing::info!(room = %room_id, message_id = %msg_id, %reason, "the platform says the room's execution is stopped: the message waits for PLAY");
        return MessageResult::RoomStopped;
    }
    let failed = matches!(result, HandlerResult::Failed { .. });
    // Remember it before acking: whatever the ack does, the handler must not
    // run again — unless it failed and has attempts left (then a later drain
    // retries it, and the action journal keeps what already succeeded).
    let retry = failed && attempt < limit;
    if !retry {
        services.ledger.handled(&msg_id);
    }
    let acked = match &result {
        HandlerResult::Done => ack_processed(services, target).await,
        HandlerResult::Failed { reason } => mark_failed(services, target, reason).await,
        // Returned above: a stopped message gets no mark.
        HandlerResult::Stopped { .. } => false,
    };
    // The handler logs the event's line at info; this one is the lifecycle's detail.
    tracing::debug!(
        event = "message_created",
        room = %room_id,
        message_id = %msg_id,
        outcome = %describe(&result),
        acked,
        from_backlog,
        duration_ms = millis(started.elapsed()),
        "handled event"
    );
    if retry {
        tracing::info!(room = %room_id, message_id = %msg_id, attempt, limit, "message failed; it will be tried again");
        return MessageResult::WillRetry;
    }
    if failed {
        tracing::warn!(room = %room_id, message_id = %msg_id, attempt, "message failed on its last allowed attempt; left failed");
        services.ledger.settled(&msg_id);
    }
    MessageResult::Handled(result)
}

/// `POST /failed` with `reason`. True when the platform took it.
async fn mark_failed(services: &Services, target: MessageRef<'_>, reason: &str) -> bool {
    let marked = services
        .api
        .mark_failed(target.room_id, target.id, reason)
        .await;
    services
        .observer
        .lifecycle_mark(LifecycleMark::Failed, marked.is_ok());
    match marked {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(room = %target.room_id, message_id = %target.id, error = %crate::error_chain::Chain(&e), "cannot mark message failed");
            false
        }
    }
}

/// `POST /processed` for a handled message, retried on its own; the ledger
/// records the answer (settled, or the ack still owed for the next drain).
/// True when the platform took it.
pub(crate) async fn ack_processed(services: &Services, target: MessageRef<'_>) -> bool {
    let taken = post_processed(services, target).await;
    services.ledger.acked(target.id, taken);
    taken
}

async fn post_processed(services: &Services, target: MessageRef<'_>) -> bool {
    let MessageRef { room_id, id } = target;
    let attempts = services.tunables.ack_attempts.max(1);
    for attempt in 1..=attempts {
        let marked = services.api.mark_processed(room_id, id).await;
        // "No live attempt" means an earlier try went through but its answer
        // was lost: the mark is recorded.
        let recorded = match &marked {
            Ok(_) => true,
            Err(e) => e.is_missing_processing_attempt(),
        };
        services
            .observer
            .lifecycle_mark(LifecycleMark::Processed, recorded);
        match marked {
            Ok(_) => return true,
            Err(_) if recorded => {
                tracing::debug!(room = %room_id, message_id = %id, "processed already recorded");
                return true;
            }
            Err(e) => {
                tracing::warn!(room = %room_id, message_id = %id, attempt, error = %crate::error_chain::Chain(&e), "cannot mark message processed");
                if attempt < attempts {
                    tokio::time::sleep(services.tunables.ack_retry_delay).await;
                }
            }
        }
    }
    false
}

/// Runs the handler like [`run_handler`], but aborts it when a STOP or
/// INTERRUPT arrives after `since` (a [`RoomControl::cancels`] count). A
/// failure that lands together with a STOP (say, a post answered 403
/// "execution is stopped") counts as the STOP.
async fn run_cancellable(
    handler: &Arc<dyn Handler>,
    delivery: Delivery,
    control: &mut watch::Receiver<RoomControl>,
    since: u64,
) -> Result<HandlerResult, Cancelled> {
    if let Some(c) = Cancelled::since(&control.borrow(), since) {
        return Err(c);
    }
    let handler = handler.clone();
    let mut task = crate::task::spawn(async move { handler.handle(delivery).await });
    let cancel = async {
        // The guard must not live across an await; a closed channel (the
        // room is going away) cancels nothing.
        match control.wait_for(|c| c.cancels != since).await {
            Ok(state) => Cancelled::since(&state, since),
            Err(_) => None,
        }
    };
    let result = tokio::select! {
        biased;
        Some(c) = cancel => {
            task.abort();
            return Err(c);
        }
        joined = &mut task => joined,
    };
    let result = match result {
        Ok(result) => result,
        Err(e) => HandlerResult::Failed {
            reason: format!("handler crashed: {e}"),
        },
    };
    if matches!(result, HandlerResult::Failed { .. })
        && Cancelled::since(&control.borrow(), since) == Some(Cancelled::Stop)
    {
        return Err(Cancelled::Stop);
    }
    Ok(result)
}

/// Hands a non-message event to the handler (no lifecycle) and logs it.
pub(crate) async fn deliver_event(services: &Services, delivery: Delivery) {
    let started = Instant::now();
    let name = delivery.event.name().to_string();
    let room = delivery.room.as_ref().map(|r| r.id.clone());
    let result = run_handler(&services.handler, delivery).await;
    tracing::debug!(
        event = %name,
        room = room.as_deref().unwrap_or("-"),
        outcome = %describe(&result),
        duration_ms = millis(started.elapsed()),
        "handled event"
    );
}

/// Runs the handler in its own task so a panic becomes a `Failed` result
/// instead of killing the room's queue.
async fn run_handler(handler: &Arc<dyn Handler>, delivery: Delivery) -> HandlerResult {
    let handler = handler.clone();
    let task = crate::task::spawn(async move { handler.handle(delivery).await });
    match task.await {
        Ok(result) => result,
        Err(e) => HandlerResult::Failed {
            reason: format!("handler crashed: {e}"),
        },
    }
}

fn describe(result: &HandlerResult) -> String {
    match result {
        HandlerResult::Done => "done".into(),
        HandlerResult::Failed { reason } => format!("failed: {reason}"),
        HandlerResult::Stopped { reason } => format!("stopped: {reason}"),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn ledger() -> MessageLedger {
        MessageLedger::new(4, |_| {})
    }

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
        let c = ledger();
        assert_eq!(
            skip_reason(&msg("me", json!({})), "me", &c),
            Some(Skip::Own)
        );
        assert_eq!(skip_reason(&msg("bob", json!({})), "me", &c), None);
    }

    #[test]
    fn handled_and_processed_messages_are_skipped() {
        let c = ledger();
        let processed = json!({"delivery_status": {"me": {"status": "processed"}}});
        assert_eq!(
            skip_reason(&msg("bob", processed), "me", &c),
            Some(Skip::AlreadyProcessed)
        );
        // Someone else's processed status is not ours.
        let theirs = json!({"delivery_status": {"other": {"status": "processed"}}});
        assert_eq!(skip_reason(&msg("bob", theirs), "me", &c), None);
        c.handled("m1");
        assert_eq!(
            skip_reason(&msg("bob", json!(null)), "me", &c),
            Some(Skip::AlreadyHandled)
        );
    }
}
