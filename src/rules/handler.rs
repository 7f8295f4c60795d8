//! The runtime's [`Handler`] in production: each event becomes an engine
//! input (event, agent, room, sender), runs through the rules, and is
//! logged as one line saying which rules matched and what they did. A
//! message is first offered to the pending conversations of its room
//! ([`super::conversations`]): one it answers goes on there instead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::conversations::{Conversations, DEFAULT_MAX_PER_PERSON};
use super::handled::{Handled, Sink};
use super::input::{event_input, typed_input, Chat, PreparedEvent};
use crate::runtime::{Delivery, Handler, HandlerFuture, HandlerResult};
use band_wire::events::Event;
use band_wire::model::AgentMe;
use switchboard_engine::action::{Executor, Scope};
use switchboard_engine::conversation::{AnswerCheck, Taken};
use switchboard_engine::EventInput;
use switchboard_engine::{Engine, Finish, PendingConversation, Report};

/// Runs the rules for the runtime's events.
pub struct RulesHandler {
    engine: Arc<Engine>,
    executor: Arc<dyn Executor>,
    agent: Arc<Value>,
    sinks: Vec<Arc<dyn Sink>>,
    conversations: Arc<Conversations>,
}

impl RulesHandler {
    /// A handler for agent `me`.
    pub fn new(engine: Arc<Engine>, executor: Arc<dyn Executor>, me: &AgentMe) -> Self {
        RulesHandler {
            engine,
            executor,
            agent: Arc::new(serde_json::to_value(me).unwrap_or(Value::Null)),
            sinks: Vec::new(),
            conversations: Arc::new(Conversations::in_memory(DEFAULT_MAX_PER_PERSON)),
        }
    }

    /// Keeps pending conversations in `conversations` (default: in memory).
    pub fn with_conversations(mut self, conversations: Arc<Conversations>) -> Self {
        self.conversations = conversations;
        self
    }

    /// The pending conversations.
    pub fn conversations(&self) -> &Arc<Conversations> {
        &self.conversations
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
    /// Its actions are journaled under `key` (see [`webhook_key`]), so a
    /// delivery run again after a crash repeats none that went out (a send
    /// cut short is looked for among what was sent since `received`); the
    /// caller settles `key` ([`Handler::settled`]) once the delivery is done.
    pub async fn run_webhook(
        &self,
        key: &str,
        received: Option<chrono::DateTime<chrono::Utc>>,
        event: Value,
    ) -> Report {
        let mut prepared = event_input("webhook", event, self.agent().clone(), None, now());
        prepared.scope.message_id = Some(key.to_owned());
        prepared.scope.not_before = received;
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
        let answered = match only_rule {
            None => self.answer(&input, &scope).await,
            Some(_) => None,
        };
        let mut report = match (answered, only_rule) {
            (Some(report), _) => report,
            (None, Some(id)) => self.engine.run_rule(id, &input, &scope, executor).await,
            (None, None) => self.engine.handle(&input, &scope, executor).await,
        };
        self.keep_pending(&mut report).await;
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

impl RulesHandler {
    /// When the message `input` answers a pending conversation of its room
    /// (or took one before a crash), goes on with it and returns what ran;
    /// `None` when it answers nothing (it goes through the rules).
    async fn answer(&self, input: &EventInput, scope: &Scope) -> Option<Report> {
        if input.event_type != "message_created" {
            return None;
        }
        let message = scope.message_id.as_deref()?;
        if let Some((p, taken)) = self.conversations.taken_by(message) {
            tracing::info!(conversation = %p.id, rule = %p.rule, message_id = message, "served again: goes on with the conversation it answered");
            return Some(self.go_on(p, taken, input, scope).await);
        }
        let room = scope.chat_id.as_deref()?;
        let answered =
            self.conversations
                .answered_in(room, |p| match self.engine.check_answer(p, input) {
                    AnswerCheck::NotAnAnswer => None,
                    check => Some(check),
                });
        for (id, check) in answered {
            let taken = match check {
                AnswerCheck::NotAnAnswer => continue,
                AnswerCheck::Answer(value) => Taken::Answer {
                    message: message.to_owned(),
                    value,
                },
                AnswerCheck::Reprompt => Taken::Reprompt {
                    message: message.to_owned(),
                },
            };
            match self.conversations.take(&id, taken.clone(), input.now).await {
                Ok(Some(p)) => {
                    let what = match taken {
                        Taken::Reprompt { .. } => {
                            "names none of the choices: re-prompted, the conversation waits on"
                        }
                        _ => "answers a pending conversation; the rest of its list runs",
                    };
                    tracing::info!(conversation = %p.id, rule = %p.rule, message_id = message, "{what}");
                    return Some(self.go_on(p, taken, input, scope).await);
                }
                Ok(None) => continue,
                Err(e) => {
                    return Some(failed(
                        input,
                        format!(
                            "cannot keep that conversation {} was answered: {}",
                            id,
                            crate::error_chain::Chain(&e)
                        ),
                    ))
                }
            }
        }
        None
    }

    /// Resumes `p` as `taken` says, inside the current message's lifecycle.
    async fn go_on(
        &self,
        p: PendingConversation,
        taken: Taken,
        input: &EventInput,
        scope: &Scope,
    ) -> Report {
        let executor = self.executor.as_ref();
        let mut report = self
            .engine
            .resume(p, taken.resume(), input, scope, executor)
            .await;
        if matches!(taken, Taken::Reprompt { .. }) {
            // The same conversation, re-prompted: it waits on (not a new one).
            for p in std::mem::take(&mut report.pending) {
                if let Err(e) = self.conversations.reprompted(p).await {
                    report.outcome = Finish::Failed {
                        reason: format!(
                            "cannot keep the re-prompted conversation: {}",
                            crate::error_chain::Chain(&e)
                        ),
                    };
                }
            }
        }
        report
    }

    /// Keeps the lists that paused; the event fails if they cannot be kept
    /// (it is served again and pauses again, with the same ids).
    async fn keep_pending(&self, report: &mut Report) {
        let pending = std::mem::take(&mut report.pending);
        if pending.is_empty() {
            return;
        }
        if let Err(e) = self.conversations.keep(pending.clone()).await {
            report.outcome = Finish::Failed {
                reason: format!(
                    "cannot keep the pending conversation: {}",
                    crate::error_chain::Chain(&e)
                ),
            };
        }
        report.pending = pending;
    }

    /// Runs conversation `p`, whose deadline passed (taken by it): its
    /// `on_timeout`, or for a `wait` the rest of its list, outside any
    /// message lifecycle, its steps journaled under `<id>@deadline`.
    pub async fn deadline(&self, p: PendingConversation) {
        let key = format!("{}@deadline", p.id);
        let PreparedEvent { input, .. } = event_input(
            "conversation_deadline",
            json!({"conversation": p.id, "rule": p.rule, "chat_room_id": p.room}),
            self.agent().clone(),
            None,
            now(),
        );
        let scope = Scope {
            chat_id: Some(p.room.clone()),
            message_id: Some(key.clone()),
            // No source message: a send cut short by a crash is looked for
            // among what was sent since the deadline, not taken for an
            // earlier timeout's identical reply.
            not_before: Some(p.deadline),
            ..Scope::default()
        };
        let started = Instant::now();
        let id = p.id.clone();
        let mut report = self
            .engine
            .resume(
                p,
                Taken::Deadline.resume(),
                &input,
                &scope,
                self.executor.as_ref(),
            )
            .await;
        self.keep_pending(&mut report).await;
        if let Finish::Stopped { .. } = report.outcome {
            // The room is stopped: tried again later, skipping the steps
            // done so far (journaled), as a stopped room's messages wait for PLAY.
            log(&report, &scope, started.elapsed());
            self.conversations
                .retry_later(&id, now() + chrono::Duration::seconds(STOPPED_RETRY_SECS));
            return;
        }
        match self.conversations.finished(&id).await {
            Ok(()) => {
                if let Some(journal) = self.engine.journal() {
                    journal.settled(&key);
                }
            }
            Err(e) => {
                tracing::warn!(conversation = %id, error = %crate::error_chain::Chain(&e), "cannot drop the finished conversation; it runs again (skipping what was done) at the next start")
            }
        }
        let elapsed = started.elapsed();
        log(&report, &scope, elapsed);
        let handled = Handled {
            event_type: input.event_type,
            event: Arc::unwrap_or_clone(input.event),
            room: scope.chat_id,
            message_id: None,
            event_id: None,
            chat: None,
            rule: None,
            now: input.now,
            elapsed,
            report,
        };
        for sink in &self.sinks {
            sink.handled(&handled);
        }
    }
}

/// The journal key of a queued webhook delivery (`<hook>/<delivery id>`):
/// the engine journals a delivery's actions under it as under a message id,
/// and `http` derives its `Idempotency-Key` from it.
pub fn webhook_key(delivery: &str) -> String {
    format!("webhook:{delivery}")
}

/// How long a deadline whose room is stopped waits before it is tried again
/// (the runtime probes a stopped room as often).
const STOPPED_RETRY_SECS: i64 = 60;

/// A report of an event that failed before any rule ran.
fn failed(input: &EventInput, reason: String) -> Report {
    let mut report = Report::empty(&input.event_type);
    report.outcome = Finish::Failed { reason };
    report
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
        self.conversations.settled(message_id);
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

impl super::conversations::DeadlineRunner for RulesHandler {
    fn conversations(&self) -> &Arc<Conversations> {
        RulesHandler::conversations(self)
    }

    fn run_deadline(
        self: Arc<Self>,
        p: PendingConversation,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move { self.deadline(p).await })
    }
}
