//! The runtime's [`Handler`] in production: each event becomes an engine
//! input (event, agent, room, sender), runs through the rules, and is
//! logged as one line saying which rules matched and what they did.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::handled::{Handled, Sink};
use super::input::{event_input, typed_input, Chat, PreparedEvent};
use crate::runtime::{Delivery, Handler, HandlerFuture, HandlerResult};
use band_wire::events::Event;
use band_wire::model::AgentMe;
use switchboard_engine::action::{Executor, Scope};
use switchboard_engine::{Engine, Finish, Report};

/// Runs the rules for the runtime's events.
pub struct RulesHandler {
    engine: Arc<Engine>,
    executor: Arc<dyn Executor>,
    agent: Arc<Value>,
    sinks: Vec<Arc<dyn Sink>>,
}

impl RulesHandler {
    /// A handler for agent `me`.
    pub fn new(engine: Arc<Engine>, executor: Arc<dyn Executor>, me: &AgentMe) -> Self {
        RulesHandler {
            engine,
            executor,
            agent: Arc::new(serde_json::to_value(me).unwrap_or(Value::Null)),
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
        let prepared = event_input("schedule", event, self.agent().clone(), None, now());
        self.run_prepared(prepared, Some(rule_id)).await
    }

    /// Runs the `on: webhook` rules for one delivery (`event.hook` names the
    /// hook), outside any message's lifecycle: no room, no processing marks.
    pub async fn run_webhook(&self, event: Value) -> Report {
        let prepared = event_input("webhook", event, self.agent().clone(), None, now());
        self.run_prepared(prepared, None).await
    }

    /// Runs one platform event through the engine, logs it and reports it.
    pub async fn run(&self, event: &Event, chat: Option<Chat>) -> Report {
        let prepared = typed_input(event, self.agent.clone(), chat, now());
        self.run_prepared(prepared, None).await
    }

    async fn run_prepared(&self, prepared: PreparedEvent, only_rule: Option<&str>) -> Report {
        let PreparedEvent {
            input,
            scope,
            event_id,
        } = prepared;
        let started = Instant::now();
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
                message_id: scope.message_id,
                event_id,
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

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

impl Handler for RulesHandler {
    fn started<'a>(&'a self, _me: &'a AgentMe) -> HandlerFuture<'a> {
        Box::pin(async move {
            let agent = self.agent().clone();
            let prepared = event_input("agent_started", json!({}), agent, None, now());
            self.run_prepared(prepared, None).await.outcome.into()
        })
    }

    fn settled(&self, message_id: &str) {
        if let Some(journal) = self.engine.journal() {
            journal.settled(message_id);
        }
    }

    fn handle(&self, delivery: Delivery) -> HandlerFuture<'_> {
        Box::pin(async move {
            if !is_rule_event(&delivery.event) {
                return HandlerResult::Done;
            }
            let chat = delivery.room.as_deref().map(Chat::of_room);
            self.run(&delivery.event, chat).await.outcome.into()
        })
    }
}

/// The engine's verdict as the runtime's handler result.
impl From<Finish> for HandlerResult {
    fn from(o: Finish) -> Self {
        match o {
            Finish::Done => HandlerResult::Done,
            Finish::Failed { reason } => HandlerResult::Failed { reason },
            Finish::Stopped { reason } => HandlerResult::Stopped { reason },
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
    // Absent from the line (None) unless a throttle held a rule back: a
    // throttled rule otherwise reads exactly like one that did not match.
    let throttled = report.throttled().collect::<Vec<_>>().join(",");
    let throttled = (!throttled.is_empty()).then(|| tracing::field::display(throttled.as_str()));
    let ms = elapsed.as_secs_f64() * 1000.0;
    let room = scope.chat_id.as_deref().unwrap_or("-");
    let message_id = scope.message_id.as_deref().unwrap_or("-");
    match &report.outcome {
        // Events no rule listens for are routine: keep them out of the info log.
        Finish::Done if report.trace.is_empty() => tracing::debug!(
            event = %report.event_type, room, message_id, ms = format!("{ms:.1}"), "no rule could apply"
        ),
        Finish::Done => tracing::info!(
            event = %report.event_type, room, message_id, rules = %matched, throttled,
            actions = %actions, ms = format!("{ms:.1}"), "handled"
        ),
        Finish::Stopped { reason } => tracing::info!(
            event = %report.event_type, room, message_id, rules = %matched, throttled,
            actions = %actions, ms = format!("{ms:.1}"), %reason, "stopped by the platform; runs again after PLAY"
        ),
        Finish::Failed { reason } => tracing::warn!(
            event = %report.event_type, room, message_id, rules = %matched, throttled,
            actions = %actions, ms = format!("{ms:.1}"), %reason, "failed"
        ),
    }
}
