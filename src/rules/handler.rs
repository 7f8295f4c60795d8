//! The runtime's [`Handler`] in production: each event becomes an engine
//! input (event, agent, room, sender), runs through the rules, and is
//! logged as one line saying which rules matched and what they did.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::handled::{Handled, Sink};
use crate::runtime::{Delivery, Handler, HandlerFuture, Outcome, RoomInfo};
use band_wire::events::Event;
use band_wire::model::AgentMe;
use switchboard_engine::action::{Executor, Scope, Sender};
use switchboard_engine::{Engine, EventInput, Finish, Report};

/// Runs the rules for the runtime's events.
pub struct RulesHandler {
    engine: Arc<Engine>,
    executor: Arc<dyn Executor>,
    agent: Value,
    sinks: Vec<Arc<dyn Sink>>,
}

impl RulesHandler {
    /// A handler for agent `me`.
    pub fn new(engine: Arc<Engine>, executor: Arc<dyn Executor>, me: &AgentMe) -> Self {
        RulesHandler {
            engine,
            executor,
            agent: serde_json::to_value(me).unwrap_or(Value::Null),
            sinks: Vec::new(),
        }
    }

    /// Also tells `sink` about every handled event.
    pub fn with_sink(mut self, sink: Arc<dyn Sink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Our identity as the rules see it (`agent` in templates).
    pub fn agent(&self) -> &Value {
        &self.agent
    }

    /// Runs one `on: schedule` rule.
    pub async fn run_scheduled(&self, rule_id: &str, event: Value) -> Report {
        self.run_inner("schedule", event, None, Some(rule_id)).await
    }

    /// Runs one event through the engine, logs it and reports it.
    pub async fn run(&self, event_type: &str, event: Value, room: Option<&RoomInfo>) -> Report {
        self.run_inner(event_type, event, room, None).await
    }

    async fn run_inner(
        &self,
        event_type: &str,
        event: Value,
        room: Option<&RoomInfo>,
        only_rule: Option<&str>,
    ) -> Report {
        let started = Instant::now();
        let chat = room.map(room_json);
        let (input, scope) = event_input(
            event_type,
            event,
            self.agent.clone(),
            chat,
            chrono::Utc::now(),
        );
        let executor = self.executor.as_ref();
        let report = match only_rule {
            Some(id) => self.engine.run_rule(id, &input, &scope, executor).await,
            None => self.engine.handle(&input, &scope, executor).await,
        };
        let elapsed = started.elapsed();
        log(&report, &scope, elapsed);
        if !self.sinks.is_empty() {
            let handled = Handled {
                event_type: input.event_type,
                event: Arc::unwrap_or_clone(input.event),
                room: scope.chat_id,
                chat: input.chat.map(Arc::unwrap_or_clone),
                rule: only_rule.map(str::to_owned),
                now: input.now,
                elapsed,
                report: report.clone(),
            };
            for sink in &self.sinks {
                sink.handled(&handled);
            }
        }
        report
    }
}

impl Handler for RulesHandler {
    fn started<'a>(&'a self, _me: &'a AgentMe) -> HandlerFuture<'a> {
        Box::pin(async move {
            self.run("agent_started", json!({}), None)
                .await
                .outcome
                .into()
        })
    }

    fn settled(&self, message_id: &str) {
        if let Some(journal) = self.engine.journal() {
            journal.settled(message_id);
        }
    }

    fn handle(&self, delivery: Delivery) -> HandlerFuture<'_> {
        Box::pin(async move {
            let event_type = delivery.event.name().to_owned();
            if !is_rule_event(&delivery.event) {
                return Outcome::Done;
            }
            let report = self
                .run(
                    &event_type,
                    delivery.event.payload(),
                    delivery.room.as_deref(),
                )
                .await;
            report.outcome.into()
        })
    }
}

/// The engine's verdict as the runtime's lifecycle outcome.
impl From<Finish> for Outcome {
    fn from(o: Finish) -> Self {
        match o {
            Finish::Done => Outcome::Done,
            Finish::Failed { reason } => Outcome::Failed { reason },
        }
    }
}

/// Control and bookkeeping events never reach rules.
fn is_rule_event(event: &Event) -> bool {
    !matches!(
        event,
        Event::Supersede(_)
            | Event::AgentControl(_)
            | Event::EventCreated(_)
            | Event::MessageUpdated(_)
            | Event::Unknown { .. }
    )
}

/// One line per event: what matched, what ran, how it ended.
fn log(report: &Report, scope: &Scope, elapsed: Duration) {
    let matched = report.rules_summary();
    let actions = report.actions_summary();
    let ms = elapsed.as_secs_f64() * 1000.0;
    let room = scope.chat_id.as_deref().unwrap_or("-");
    let message_id = scope.message_id.as_deref().unwrap_or("-");
    match &report.outcome {
        // Events no rule listens for are routine: keep them out of the info log.
        Finish::Done if report.trace.is_empty() => tracing::debug!(
            event = %report.event_type, room, message_id, ms = format!("{ms:.1}"), "no rule could apply"
        ),
        Finish::Done => tracing::info!(
            event = %report.event_type, room, message_id, rules = %matched,
            actions = %actions, ms = format!("{ms:.1}"), "handled"
        ),
        Finish::Failed { reason } => tracing::warn!(
            event = %report.event_type, room, message_id, rules = %matched,
            actions = %actions, ms = format!("{ms:.1}"), %reason, "failed"
        ),
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// The room an event concerns when the runtime did not attach one.
fn chat_of(event_type: &str, event: &Value) -> Option<String> {
    match event_type {
        "room_added" | "room_removed" | "room_deleted" => text(event, "id"),
        _ => text(event, "chat_room_id"),
    }
}

/// A message's sender, with the handle looked up among the room's participants.
fn sender_of(event_type: &str, event: &Value, chat: Option<&Value>) -> Option<Sender> {
    if event_type != "message_created" {
        return None;
    }
    let id = text(event, "sender_id")?;
    let known = chat
        .and_then(|c| c.get("participants"))
        .and_then(Value::as_array)
        .and_then(|ps| {
            ps.iter()
                .find(|p| p.get("id").and_then(Value::as_str) == Some(&id))
        });
    Some(Sender {
        kind: text(event, "sender_type").unwrap_or_default(),
        name: text(event, "sender_name").or_else(|| known.and_then(|p| text(p, "name"))),
        handle: known.and_then(|p| text(p, "handle")),
        id,
    })
}

/// One event as the engine takes it, and the scope its actions run in: the
/// same for live events, workflow tests, `explain` and `replay`.
pub fn event_input(
    event_type: &str,
    event: Value,
    agent: Value,
    chat: Option<Value>,
    now: DateTime<Utc>,
) -> (EventInput, Scope) {
    let sender = sender_of(event_type, &event, chat.as_ref());
    let scope = Scope {
        chat_id: chat
            .as_ref()
            .and_then(|c| text(c, "id"))
            .or_else(|| chat_of(event_type, &event)),
        message_id: (event_type == "message_created")
            .then(|| text(&event, "id"))
            .flatten(),
        sender: sender.clone(),
        contact_request_id: event_type
            .starts_with("contact_request")
            .then(|| text(&event, "id"))
            .flatten(),
    };
    let input = EventInput {
        event_type: event_type.to_owned(),
        event: Arc::new(event),
        agent: Arc::new(agent),
        chat: chat.map(Arc::new),
        sender: sender.map(|s| Arc::new(serde_json::to_value(s).unwrap_or(Value::Null))),
        now,
    };
    (input, scope)
}

/// A room as the rules see it (`chat` in templates).
pub fn room_json(room: &RoomInfo) -> Value {
    json!({
        "id": room.id,
        "title": room.title,
        "participants": room.participants.iter().map(|p| json!({
            "id": p.id, "handle": p.handle, "name": p.name,
            "type": p.kind.as_str(), "role": p.role,
        })).collect::<Vec<_>>(),
    })
}
