//! The world of the conversation benchmarks (`benches/conversations.rs`,
//! `benches/conversations_memory.rs`): rooms with people, each person's
//! "refund" message paused by the workflow reference's `wait_for` example,
//! so every pending conversation is made by the engine as in a running agent.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use crate::rules::{event_input, PreparedEvent};
use switchboard_engine::action::{ActionFuture, Executor, RenderedAction, Scope};
use switchboard_engine::{Engine, PendingConversation, StateStore};
use switchboard_workflow::Ruleset;

/// The workflow: a refund request waits for its sender's order number.
pub const WORKFLOW: &str = r#"version: 1
rules:
  - name: refund-needs-order
    on: message_created
    if:
      - event.content: { matches: '(?i)\brefund\b' }
    do:
      - reply: "Which order number is it about?"
      - wait_for:
          from: "{{ sender.id }}"
          if:
            - event.text: { matches: '\d+\s*$' }
          timeout: 1d
          on_timeout:
            - reply: "No order number, so I'll leave this for now."
        as: answer
      - reply: "Thanks, looking at order {{ answer.content | strip_mentions }}."
"#;

/// The file name the workflow is loaded under.
pub const FILE: &str = "refunds.yaml";

/// Performs nothing and keeps nothing (a recorder would grow per iteration).
pub struct Discard;

impl Executor for Discard {
    fn execute<'a>(&'a self, _: &'a RenderedAction, _: &'a Scope) -> ActionFuture<'a> {
        Box::pin(async { Ok(Value::Null) })
    }

    fn landed<'a>(
        &'a self,
        _: &'a RenderedAction,
        _: &'a Scope,
    ) -> switchboard_engine::action::LandedFuture<'a> {
        Box::pin(async { Ok(None) })
    }
}

/// The compiled workflow.
pub fn ruleset() -> Result<Arc<Ruleset>, switchboard_workflow::LoadErrors> {
    switchboard_workflow::load_str(FILE, WORKFLOW).map(Arc::new)
}

/// Room `r`'s id.
pub fn room(r: usize) -> String {
    format!("room-{r:04}")
}

/// Person `s`'s id (senders are shared by all rooms; each room has them all).
pub fn person(s: usize) -> String {
    format!("user-{s:02}")
}

/// Message `id` from `sender` in room `r` saying `content`, as the runtime
/// gives it to the handler (room with its participants, sender resolved).
pub fn message(
    r: usize,
    senders: usize,
    sender: &str,
    id: &str,
    content: &str,
    now: DateTime<Utc>,
) -> PreparedEvent {
    let room = room(r);
    let mut participants: Vec<Value> = (0..senders)
        .map(|s| json!({"id": person(s), "type": "User", "name": format!("Person {s}"), "handle": format!("person{s}")}))
        .collect();
    participants.push(
        json!({"id": "agent-1", "type": "Agent", "name": "Support", "handle": "acme/support"}),
    );
    event_input(
        "message_created",
        json!({
            "id": id, "chat_room_id": room, "content": format!("@[[agent-1]] {content}"),
            "sender_id": sender, "sender_type": "User", "sender_name": "Someone",
            "message_type": "text", "metadata": {"mentions": [{"id": "agent-1", "handle": "acme/support"}]},
            "inserted_at": now.to_rfc3339(), "updated_at": now.to_rfc3339(),
        }),
        json!({"id": "agent-1", "name": "Support", "handle": "acme/support"}),
        Some(json!({"id": room, "title": format!("Support {r}"), "participants": participants})),
        now,
    )
}

/// `per_room` conversations in each of `rooms` rooms, started in turn by
/// `senders` people (round robin), paused by the engine itself; within a
/// room, conversation `i` started `i` seconds after `start` (each times
/// out a day after it started).
pub async fn pending(
    engine: &Engine,
    rooms: usize,
    per_room: usize,
    senders: usize,
    start: DateTime<Utc>,
) -> Vec<PendingConversation> {
    let mut out = Vec::with_capacity(rooms * per_room);
    for r in 0..rooms {
        for i in 0..per_room {
            let sender = person(i % senders.max(1));
            let now = start + Duration::seconds(i as i64);
            let PreparedEvent { input, scope, .. } = message(
                r,
                senders,
                &sender,
                &format!("msg-{r:04}-{i:02}"),
                "I need a refund please, the parcel came broken",
                now,
            );
            let report = engine.handle(&input, &scope, &Discard).await;
            out.extend(report.pending);
        }
    }
    out
}

/// An engine with the workflow, its state in memory.
pub fn engine(ruleset: Arc<Ruleset>) -> Engine {
    Engine::new(ruleset, Arc::new(StateStore::in_memory()))
}

/// This process's resident set size in KiB (`VmRSS`); `None` off Linux.
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}
