//! The runtime's [`Handler`] in production: each event becomes an engine
//! input (event, agent, room, sender), runs through the rules, and is
//! logged as one line saying which rules matched and what they did.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::engine::action::{Executor, Scope, Sender};
use crate::engine::run::ActionStatus;
use crate::engine::{Engine, EventInput, Outcome as EngineOutcome, Report};
use crate::platform::events::Event;
use crate::platform::model::AgentMe;
use crate::runtime::{Delivery, Handler, HandlerFuture, Outcome, RoomInfo};

/// One handled event, for live transcripts (the demo) and tests.
#[derive(Debug, Clone)]
pub struct Handled {
    /// The event's type.
    pub event_type: String,
    /// Its payload.
    pub event: Value,
    /// The room, when it had one.
    pub room: Option<String>,
    /// What the engine did.
    pub report: Report,
}

/// Runs the rules for the runtime's events.
pub struct RulesHandler {
    engine: Arc<Engine>,
    executor: Arc<dyn Executor>,
    agent: Value,
    watch: Option<mpsc::UnboundedSender<Handled>>,
}

impl RulesHandler {
    /// A handler for agent `me`.
    pub fn new(engine: Arc<Engine>, executor: Arc<dyn Executor>, me: &AgentMe) -> Self {
        RulesHandler {
            engine,
            executor,
            agent: serde_json::to_value(me).unwrap_or(Value::Null),
            watch: None,
        }
    }

    /// Also sends every handled event to `tx`.
    pub fn with_watch(mut self, tx: mpsc::UnboundedSender<Handled>) -> Self {
        self.watch = Some(tx);
        self
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
        let sender = sender_of(event_type, &event, room);
        let scope = Scope {
            chat_id: room
                .map(|r| r.id.clone())
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
            event,
            agent: self.agent.clone(),
            chat: room.map(room_json),
            sender: sender.map(|s| serde_json::to_value(s).unwrap_or(Value::Null)),
            now: chrono::Utc::now(),
        };
        let executor = self.executor.as_ref();
        let report = match only_rule {
            Some(id) => self.engine.run_rule(id, &input, &scope, executor).await,
            None => self.engine.handle(&input, &scope, executor).await,
        };
        log(&report, &scope, started);
        if let Some(tx) = &self.watch {
            let _ = tx.send(Handled {
                event_type: input.event_type,
                event: input.event,
                room: scope.chat_id,
                report: report.clone(),
            });
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
impl From<EngineOutcome> for Outcome {
    fn from(o: EngineOutcome) -> Self {
        match o {
            EngineOutcome::Done => Outcome::Done,
            EngineOutcome::Failed { reason } => Outcome::Failed { reason },
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
fn log(report: &Report, scope: &Scope, started: Instant) {
    let actions: Vec<String> = report
        .actions
        .iter()
        .map(|a| match a.status {
            ActionStatus::Ok => a.name.to_owned(),
            ActionStatus::Skipped => format!("{}(skipped)", a.name),
            ActionStatus::Failed => format!("{}(failed)", a.name),
        })
        .collect();
    let matched = match (report.matched.is_empty(), report.else_ran.is_empty()) {
        (true, true) => "-".to_owned(),
        _ => report
            .matched
            .iter()
            .cloned()
            .chain(report.else_ran.iter().map(|r| format!("{r}(else)")))
            .collect::<Vec<_>>()
            .join(","),
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let room = scope.chat_id.as_deref().unwrap_or("-");
    let message_id = scope.message_id.as_deref().unwrap_or("-");
    match &report.outcome {
        // Events no rule listens for are routine: keep them out of the info log.
        EngineOutcome::Done if report.trace.is_empty() => tracing::debug!(
            event = %report.event_type, room, message_id, ms = format!("{ms:.1}"), "no rules for event"
        ),
        EngineOutcome::Done => tracing::info!(
            event = %report.event_type, room, message_id, rules = %matched,
            actions = %actions.join(","), ms = format!("{ms:.1}"), "handled"
        ),
        EngineOutcome::Failed { reason } => tracing::warn!(
            event = %report.event_type, room, message_id, rules = %matched,
            actions = %actions.join(","), ms = format!("{ms:.1}"), %reason, "failed"
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

/// A message's sender, with the handle looked up among the participants.
fn sender_of(event_type: &str, event: &Value, room: Option<&RoomInfo>) -> Option<Sender> {
    if event_type != "message_created" {
        return None;
    }
    let id = text(event, "sender_id")?;
    let known = room.and_then(|r| r.participants.iter().find(|p| p.id == id));
    Some(Sender {
        kind: text(event, "sender_type").unwrap_or_default(),
        name: text(event, "sender_name").or_else(|| known.and_then(|p| p.name.clone())),
        handle: known.and_then(|p| p.handle.clone()),
        id,
    })
}

fn room_json(room: &RoomInfo) -> Value {
    json!({
        "id": room.id,
        "title": room.title,
        "participants": room.participants.iter().map(|p| json!({
            "id": p.id, "handle": p.handle, "name": p.name,
            "type": p.kind.as_str(), "role": p.role,
        })).collect::<Vec<_>>(),
    })
}
