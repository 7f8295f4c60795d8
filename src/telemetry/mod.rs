//! Metrics and health of a running agent: Prometheus counters, gauges and
//! histograms fed by the rules handler ([`Sink`]), the runtime
//! ([`Observer`]), hot reload ([`reload::Listener`]) and a timing wrapper
//! around the REST executor; [`server`] serves them with `/healthz`, and the
//! last handled events (which rules ran) as JSON on `/handled`.
//!
//! Nothing here decides anything: every hook only counts, so an agent
//! without `--metrics-addr` runs exactly the same code minus these calls.

pub mod fleet;
pub mod server;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use switchboard_workflow::secrets::Redaction;

use chrono::{DateTime, SecondsFormat, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use serde::Serialize;

use crate::rules::conversations::{Conversations, Summary};
use crate::rules::reload::{self, ReloadOutcome, ReloadReport};
use crate::rules::{Handled, Sink};
use crate::runtime::{LifecycleMark, Observer};
use switchboard_engine::action::{ActionFuture, Executor, LandedFuture, RenderedAction, Scope};
use switchboard_engine::run::{ActionStatus, Finish, Verdict};

/// Label set of the per-event-type families.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: String,
}

/// Label set of `switchboard_rule_matches_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MatchLabels {
    rule: String,
    branch: &'static str,
}

/// Label set of `switchboard_rule_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabel {
    rule: String,
}

/// Label set of `switchboard_actions_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: &'static str,
    status: &'static str,
}

/// Label set of `switchboard_action_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: &'static str,
}

/// Label set of `switchboard_lifecycle_marks_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MarkLabels {
    mark: &'static str,
    result: &'static str,
}

/// Label set of `switchboard_webhook_deliveries_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    hook: String,
    status: &'static str,
}

/// Label set of `switchboard_reloads_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// A histogram family whose buckets come from [`duration_histogram`].
type Durations<L> = Family<L, Histogram, fn() -> Histogram>;

/// Buckets from 0.5 ms to about 16 s: an event with no REST call takes well
/// under a millisecond, a REST call tens of ms, a retried one seconds.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// What `/healthz` needs beyond the metrics themselves.
#[derive(Debug, Default)]
struct HealthState {
    connected: bool,
    last_reload: Option<LastReload>,
}

/// The last reload's outcome, for `/healthz`.
#[derive(Debug, Clone)]
struct LastReload {
    ok: bool,
    at: DateTime<Utc>,
    errors: usize,
}

/// Reads how many webhook deliveries wait or are in hand.
type QueueDepth = Box<dyn Fn() -> usize + Send + Sync>;

/// How many handled events `/handled` keeps (the oldest go first).
pub const HANDLED_CAPACITY: usize = 500;

/// One handled event as `/handled` shows it: which rules ran and what they
/// did. The sandbox console joins these to messages by `message_id`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HandledEntry {
    /// When it was handled (RFC 3339, milliseconds).
    pub at: String,
    /// The event's type.
    pub event_type: String,
    /// The room, when the event had one.
    pub room: Option<String>,
    /// The message's id, for `message_created`.
    pub message_id: Option<String>,
    /// The payload's `id` for any event (a contact request's, say).
    pub event_id: Option<String>,
    /// Rules whose branch ran, in order; an `else` branch as `rule(else)`.
    pub rules: Vec<String>,
    /// Rules whose conditions held but whose throttle window was full: they
    /// did nothing, yet unlike rules that did not match they were asked to.
    pub throttled: Vec<String>,
    /// Actions in order, as `name`, `name(skipped)` or `name(failed)`.
    pub actions: Vec<String>,
    /// `done` or `failed`.
    pub outcome: &'static str,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl HandledEntry {
    /// The entry for one handled event.
    pub fn new(handled: &Handled) -> HandledEntry {
        let report = &handled.report;
        let rules = report
            .matched
            .iter()
            .cloned()
            .chain(report.else_ran.iter().map(|r| format!("{r}(else)")))
            .collect();
        let actions = report
            .actions
            .iter()
            .map(|a| match a.status {
                ActionStatus::Ok => a.name.to_owned(),
                ActionStatus::Skipped => format!("{}(skipped)", a.name),
                ActionStatus::Failed => format!("{}(failed)", a.name),
                ActionStatus::Paused => format!("{}(paused)", a.name),
            })
            .collect();
        let (outcome, reason) = match &report.outcome {
            Finish::Done => ("done", None),
            Finish::Failed { reason } => ("failed", Some(reason.clone())),
            Finish::Stopped { reason } => ("stopped", Some(reason.clone())),
        };
        HandledEntry {
            at: handled.now.to_rfc3339_opts(SecondsFormat::Millis, true),
            event_type: handled.event_type.clone(),
            room: handled.room.clone(),
            message_id: handled.message_id.clone(),
            event_id: handled.event_id.clone(),
            rules,
            throttled: report.throttled().map(str::to_owned).collect(),
            actions,
            outcome,
            reason,
        }
    }
}

/// The registry, every metric family, and the health state of one agent.
pub struct Telemetry {
    registry: Registry,
    events: Family<TypeLabel, Counter>,
    rule_matches: Family<MatchLabels, Counter>,
    rule_errors: Family<RuleLabel, Counter>,
    rule_throttled: Family<RuleLabel, Counter>,
    actions: Family<ActionLabels, Counter>,
    event_duration: Durations<TypeLabel>,
    action_duration: Durations<ActionLabel>,
    lifecycle_marks: Family<MarkLabels, Counter>,
    socket_connected: Gauge,
    socket_reconnects: Counter,
    reloads: Family<OutcomeLabel, Counter>,
    rules: Gauge,
    conversations_pending: Gauge,
    /// The agent's pending conversations, once it has them.
    conversations: std::sync::OnceLock<Arc<Conversations>>,
    webhook_deliveries: Family<DeliveryLabels, Counter>,
    webhook_queue_depth: Gauge,
    /// How many webhook deliveries wait, once webhooks are served.
    webhook_queue: std::sync::OnceLock<QueueDepth>,
    health: Mutex<HealthState>,
    /// The last [`HANDLED_CAPACITY`] handled events, oldest first.
    handled: Mutex<VecDeque<HandledEntry>>,
    /// What `/handled` and `/metrics` show of a secret: `[secret:NAME]`.
    redaction: Redaction,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("health", &self.health())
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Every family registered under `switchboard_`, with `rules` loaded now.
    pub fn new(rules: usize) -> Telemetry {
        Telemetry::in_registry(rules, Registry::with_prefix("switchboard"))
    }

    /// Like [`Telemetry::new`], every series labelled `agent="NAME"` (one
    /// agent of a fleet; the fleet's server merges them).
    pub fn labelled(rules: usize, agent: &str) -> Telemetry {
        let label = (Cow::Borrowed("agent"), Cow::Owned(agent.to_owned()));
        let registry = Registry::with_prefix_and_labels("switchboard", std::iter::once(label));
        Telemetry::in_registry(rules, registry)
    }

    /// Sets the loaded-rules gauge (an agent given its telemetry before loading).
    pub fn set_rules(&self, rules: usize) {
        self.rules.set(gauge_value(rules));
    }

    fn in_registry(rules: usize, registry: Registry) -> Telemetry {
        let mut t = Telemetry {
            registry,
            events: Family::default(),
            rule_matches: Family::default(),
            rule_errors: Family::default(),
            rule_throttled: Family::default(),
            actions: Family::default(),
            event_duration: Family::new_with_constructor(duration_histogram),
            action_duration: Family::new_with_constructor(duration_histogram),
            lifecycle_marks: Family::default(),
            socket_connected: Gauge::default(),
            socket_reconnects: Counter::default(),
            reloads: Family::default(),
            rules: Gauge::default(),
            conversations_pending: Gauge::default(),
            conversations: std::sync::OnceLock::new(),
            webhook_deliveries: Family::default(),
            webhook_queue_depth: Gauge::default(),
            webhook_queue: std::sync::OnceLock::new(),
            health: Mutex::new(HealthState::default()),
            handled: Mutex::new(VecDeque::with_capacity(HANDLED_CAPACITY)),
            redaction: Redaction::new(),
        };
        // Counters get their `_total` suffix from the encoder.
        t.registry.register(
            "events",
            "Events the rules handler received, by type",
            t.events.clone(),
        );
        t.registry.register(
            "rule_matches",
            "Rules whose do (or else) branch ran, by rule and branch",
            t.rule_matches.clone(),
        );
        t.registry.register(
            "rule_errors",
            "Rules whose conditions could not be evaluated (the event failed), by rule",
            t.rule_errors.clone(),
        );
        t.registry.register(
            "rule_throttled",
            "Rules whose conditions held but whose throttle window was full (nothing ran), by rule",
            t.rule_throttled.clone(),
        );
        t.registry.register(
            "actions",
            "Actions by name and status (ok, failed, skipped)",
            t.actions.clone(),
        );
        t.registry.register_with_unit(
            "event_duration",
            "Time the engine took per event, by type",
            Unit::Seconds,
            t.event_duration.clone(),
        );
        t.registry.register_with_unit(
            "action_duration",
            "Time of each action that leaves the process, by action",
            Unit::Seconds,
            t.action_duration.clone(),
        );
        t.registry.register(
            "lifecycle_marks",
            "Lifecycle POSTs (processing, processed, failed) by result (ok, error)",
            t.lifecycle_marks.clone(),
        );
        t.registry.register(
            "socket_connected",
            "1 while the platform socket is connected",
            t.socket_connected.clone(),
        );
        t.registry.register(
            "socket_reconnects",
            "Successful reconnections of the platform socket",
            t.socket_reconnects.clone(),
        );
        t.registry.register(
            "reloads",
            "Workflow reloads by outcome (ok, failed)",
            t.reloads.clone(),
        );
        t.registry
            .register("rules", "Rules loaded now", t.rules.clone());
        t.rules.set(gauge_value(rules));
        t.registry.register(
            "conversations_pending",
            "Conversations paused at wait_for, ask or wait, waiting for an answer or their time",
            t.conversations_pending.clone(),
        );
        t.registry.register(
            "webhook_deliveries",
            "Webhook deliveries by hook (`-` for an unknown name) and answer: accepted, duplicate, or the refusal's error code (unauthorized, not_found, payload_too_large, queue_full, internal_error)",
            t.webhook_deliveries.clone(),
        );
        t.registry.register(
            "webhook_queue_depth",
            "Webhook deliveries accepted and not yet handled (the one in hand included)",
            t.webhook_queue_depth.clone(),
        );
        // Known label values start at 0, so rate() and alerts see them before the first one.
        for outcome in ["ok", "failed"] {
            let _ = t.reloads.get_or_create(&OutcomeLabel { outcome });
        }
        for mark in [
            LifecycleMark::Processing,
            LifecycleMark::Processed,
            LifecycleMark::Failed,
        ] {
            for result in ["ok", "error"] {
                let labels = MarkLabels {
                    mark: mark.as_str(),
                    result,
                };
                let _ = t.lifecycle_marks.get_or_create(&labels);
            }
        }
        t
    }

    /// Reports on `conversations`: the pending gauge and `/conversations`.
    pub fn watch_conversations(&self, conversations: Arc<Conversations>) {
        let _ = self.conversations.set(conversations);
    }

    /// Reports the webhook queue's depth, read by `depth` at each scrape.
    pub fn watch_webhook_queue(&self, depth: impl Fn() -> usize + Send + Sync + 'static) {
        let _ = self.webhook_queue.set(Box::new(depth));
    }

    /// Counts a webhook delivery to `hook` answered `status`.
    pub fn webhook_delivery(&self, hook: &str, status: &'static str) {
        let labels = DeliveryLabels {
            hook: hook.to_owned(),
            status,
        };
        self.webhook_deliveries.get_or_create(&labels).inc();
    }

    /// The pending conversations, oldest first (what `/conversations` serves).
    pub fn conversations(&self) -> Vec<Summary> {
        self.conversations
            .get()
            .map(|c| c.list())
            .unwrap_or_default()
    }

    /// The metrics in the OpenMetrics text format (what Prometheus scrapes).
    pub fn encode(&self) -> String {
        if let Some(conversations) = self.conversations.get() {
            // Read when scraped: the set changes outside any event.
            self.conversations_pending
                .set(gauge_value(conversations.len()));
        }
        if let Some(depth) = self.webhook_queue.get() {
            // Read when scraped, like the conversations.
            self.webhook_queue_depth.set(gauge_value(depth()));
        }
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %crate::error_chain::Chain(&e), "cannot encode metrics");
        }
        // Labels are rule ids and action names, but a secret never shows.
        self.redaction.redact(&out)
    }

    /// Shows secrets (as they are then) as `[secret:NAME]`.
    pub fn with_redaction(mut self, redaction: Redaction) -> Self {
        self.redaction = redaction;
        self
    }

    /// The agent's health as `/healthz` reports it.
    pub fn health(&self) -> HealthReport {
        let state = self.lock();
        let last_reload = match &state.last_reload {
            None => ReloadHealth {
                status: "none",
                at: None,
                errors: 0,
            },
            Some(r) => ReloadHealth {
                status: if r.ok { "ok" } else { "failed" },
                at: Some(r.at.to_rfc3339_opts(SecondsFormat::Secs, true)),
                errors: r.errors,
            },
        };
        let status = match (state.connected, &state.last_reload) {
            (false, _) => HealthStatus::Down,
            (true, Some(r)) if !r.ok => HealthStatus::Degraded,
            (true, _) => HealthStatus::Ok,
        };
        HealthReport {
            status,
            socket: SocketHealth {
                connected: state.connected,
                reconnects: self.socket_reconnects.get(),
            },
            ruleset: RulesetHealth {
                loaded: true,
                rules: u64::try_from(self.rules.get()).unwrap_or(0),
            },
            last_reload,
        }
    }

    /// The last handled events, oldest first (what `/handled` serves).
    pub fn handled_log(&self) -> Vec<HandledEntry> {
        self.handled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    fn remember(&self, mut entry: HandledEntry) {
        if let Some(reason) = &mut entry.reason {
            *reason = self.redaction.redact(reason);
        }
        // Same reasoning as `lock`: a poisoned log is still a log.
        let mut log = self.handled.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() == HANDLED_CAPACITY {
            log.pop_front();
        }
        log.push_back(entry);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HealthState> {
        // Counting must go on even if a panicking thread held the lock.
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_connected(&self, connected: bool) {
        self.lock().connected = connected;
        self.socket_connected.set(i64::from(connected));
    }
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Sink for Telemetry {
    fn handled(&self, handled: &Handled) {
        let kind = TypeLabel {
            r#type: handled.event_type.clone(),
        };
        self.events.get_or_create(&kind).inc();
        self.event_duration
            .get_or_create(&kind)
            .observe(handled.elapsed.as_secs_f64());
        let report = &handled.report;
        let branches = (report.matched.iter().map(|r| (r, "do")))
            .chain(report.else_ran.iter().map(|r| (r, "else")));
        for (rule, branch) in branches {
            let labels = MatchLabels {
                rule: rule.clone(),
                branch,
            };
            self.rule_matches.get_or_create(&labels).inc();
        }
        for trace in &report.trace {
            if trace.verdict == Verdict::Unevaluable {
                let labels = RuleLabel {
                    rule: trace.rule.clone(),
                };
                self.rule_errors.get_or_create(&labels).inc();
            }
        }
        for rule in report.throttled() {
            let labels = RuleLabel {
                rule: rule.to_owned(),
            };
            self.rule_throttled.get_or_create(&labels).inc();
        }
        for action in &report.actions {
            let status = match action.status {
                ActionStatus::Ok => "ok",
                ActionStatus::Failed => "failed",
                ActionStatus::Skipped => "skipped",
                ActionStatus::Paused => "paused",
            };
            let labels = ActionLabels {
                action: action.name,
                status,
            };
            self.actions.get_or_create(&labels).inc();
        }
        self.remember(HandledEntry::new(handled));
    }
}

impl Observer for Telemetry {
    fn socket_connected(&self, reconnect: bool) {
        if reconnect {
            self.socket_reconnects.inc();
        }
        self.set_connected(true);
    }

    fn socket_disconnected(&self) {
        self.set_connected(false);
    }

    fn lifecycle_mark(&self, mark: LifecycleMark, ok: bool) {
        let labels = MarkLabels {
            mark: mark.as_str(),
            result: if ok { "ok" } else { "error" },
        };
        self.lifecycle_marks.get_or_create(&labels).inc();
    }
}

impl reload::Listener for Telemetry {
    fn reloaded(&self, report: &ReloadReport) {
        let (outcome, errors) = match &report.outcome {
            ReloadOutcome::Reloaded { rules, .. } => {
                self.rules.set(gauge_value(*rules));
                ("ok", 0)
            }
            ReloadOutcome::Failed { errors } => ("failed", errors.len()),
        };
        self.reloads.get_or_create(&OutcomeLabel { outcome }).inc();
        self.lock().last_reload = Some(LastReload {
            ok: outcome == "ok",
            at: Utc::now(),
            errors,
        });
    }
}

/// Times every action that leaves the process, then hands it to the real
/// executor: the engine stays unaware of metrics.
pub struct TimedExecutor {
    inner: Arc<dyn Executor>,
    telemetry: Arc<Telemetry>,
}

impl TimedExecutor {
    /// Wraps `inner`, recording into `telemetry`.
    pub fn new(inner: Arc<dyn Executor>, telemetry: Arc<Telemetry>) -> TimedExecutor {
        TimedExecutor { inner, telemetry }
    }
}

impl Executor for TimedExecutor {
    fn execute<'a>(&'a self, action: &'a RenderedAction, scope: &'a Scope) -> ActionFuture<'a> {
        Box::pin(async move {
            let started = Instant::now();
            let result = self.inner.execute(action, scope).await;
            let labels = ActionLabel {
                action: action.name(),
            };
            self.telemetry
                .action_duration
                .get_or_create(&labels)
                .observe(started.elapsed().as_secs_f64());
            result
        })
    }

    fn landed<'a>(&'a self, action: &'a RenderedAction, scope: &'a Scope) -> LandedFuture<'a> {
        self.inner.landed(action, scope)
    }
}

/// Overall health: `ok`, `degraded` (connected, but the last reload
/// failed and the previous rules keep running) or `down` (no socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Connected and running the current rules.
    Ok,
    /// Connected; the last reload failed.
    Degraded,
    /// The socket is not connected.
    Down,
}

/// The body of `/healthz`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// The verdict.
    pub status: HealthStatus,
    /// The platform socket.
    pub socket: SocketHealth,
    /// The rules in use.
    pub ruleset: RulesetHealth,
    /// The last hot reload.
    pub last_reload: ReloadHealth,
}

impl HealthReport {
    /// Whether the agent can serve events (`/healthz` answers 200, else 503).
    pub fn is_up(&self) -> bool {
        self.status != HealthStatus::Down
    }
}

/// The socket part of [`HealthReport`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SocketHealth {
    /// Whether the socket is connected now.
    pub connected: bool,
    /// Successful reconnections since start.
    pub reconnects: u64,
}

/// The ruleset part of [`HealthReport`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RulesetHealth {
    /// Always true: an agent whose workflows do not load does not start.
    pub loaded: bool,
    /// Rules loaded now.
    pub rules: u64,
}

/// The reload part of [`HealthReport`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReloadHealth {
    /// `none` (no reload yet), `ok` or `failed`.
    pub status: &'static str,
    /// When it happened (RFC 3339), if it did.
    pub at: Option<String>,
    /// How many errors a failed reload had (0 otherwise).
    pub errors: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_follows_the_socket() {
        let t = Telemetry::new(3);
        let h = t.health();
        assert_eq!(h.status, HealthStatus::Down);
        assert!(!h.is_up());
        assert_eq!(h.ruleset.rules, 3);
        assert_eq!(h.last_reload.status, "none");

        t.socket_connected(false);
        assert_eq!(t.health().status, HealthStatus::Ok);
        t.socket_disconnected();
        assert_eq!(t.health().status, HealthStatus::Down);
        t.socket_connected(true);
        let h = t.health();
        assert_eq!((h.status, h.socket.reconnects), (HealthStatus::Ok, 1));
    }

    fn handled(n: usize, outcome: Finish) -> Handled {
        use switchboard_engine::run::ActionRecord;
        let action = |name: &'static str, status| ActionRecord {
            rule: "triage/x".into(),
            name,
            action: None,
            status,
            error: None,
            result: None,
            calls: Vec::new(),
        };
        Handled {
            event_type: "message_created".into(),
            event: serde_json::json!({"id": format!("m{n}")}),
            room: Some("r1".into()),
            message_id: Some(format!("m{n}")),
            event_id: Some(format!("m{n}")),
            chat: None,
            rule: None,
            now: Utc::now(),
            elapsed: std::time::Duration::from_millis(1),
            report: switchboard_engine::Report {
                event_type: "message_created".into(),
                matched: vec!["triage/x".into()],
                else_ran: vec!["contacts/y".into()],
                actions: vec![
                    action("reply", ActionStatus::Ok),
                    action("add_participant", ActionStatus::Skipped),
                    action("log", ActionStatus::Failed),
                ],
                trace: Vec::new(),
                outcome,
                pending: Vec::new(),
            },
        }
    }

    #[test]
    fn the_handled_log_keeps_the_last_events_as_lists() {
        let t = Telemetry::new(1);
        let failed = Finish::Failed {
            reason: "triage/x: boom".into(),
        };
        t.handled(&handled(0, failed));
        let first = &t.handled_log()[0];
        assert_eq!(first.message_id.as_deref(), Some("m0"));
        assert_eq!(first.rules, ["triage/x", "contacts/y(else)"]);
        assert_eq!(
            first.actions,
            ["reply", "add_participant(skipped)", "log(failed)"]
        );
        assert_eq!(
            (first.outcome, first.reason.as_deref()),
            ("failed", Some("triage/x: boom"))
        );

        for n in 1..=HANDLED_CAPACITY {
            t.handled(&handled(n, Finish::Done));
        }
        let log = t.handled_log();
        assert_eq!(log.len(), HANDLED_CAPACITY);
        let ids = |i: usize| log[i].message_id.clone().unwrap_or_default();
        assert_eq!(
            (ids(0), ids(HANDLED_CAPACITY - 1)),
            ("m1".into(), "m500".into())
        );
        let json = serde_json::to_value(&log[0]).unwrap_or_default();
        assert!(json.get("reason").is_none(), "{json}");
        assert_eq!(json["outcome"], "done");
    }

    #[test]
    fn a_rule_that_could_not_be_evaluated_is_counted() {
        use switchboard_engine::run::RuleTrace;
        let t = Telemetry::new(1);
        let mut h = handled(
            0,
            Finish::Failed {
                reason: "triage/x: pattern `(` does not compile".into(),
            },
        );
        h.report.trace = vec![
            RuleTrace {
                rule: "triage/x".into(),
                verdict: Verdict::Unevaluable,
                conditions: Vec::new(),
            },
            RuleTrace {
                rule: "triage/y".into(),
                verdict: Verdict::NotMatched,
                conditions: Vec::new(),
            },
        ];
        t.handled(&h);
        t.handled(&h);
        let text = t.encode();
        let line = "switchboard_rule_errors_total{rule=\"triage/x\"} 2";
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        assert!(
            !text.contains("rule_errors_total{rule=\"triage/y\"}"),
            "{text}"
        );
    }

    #[test]
    fn a_throttled_rule_is_counted_and_listed() {
        use switchboard_engine::run::RuleTrace;
        let t = Telemetry::new(2);
        let mut h = handled(0, Finish::Done);
        h.report.matched.clear();
        h.report.else_ran.clear();
        h.report.actions.clear();
        h.report.trace = vec![
            RuleTrace {
                rule: "faq/x".into(),
                verdict: Verdict::Throttled,
                conditions: Vec::new(),
            },
            RuleTrace {
                rule: "faq/y".into(),
                verdict: Verdict::NotMatched,
                conditions: Vec::new(),
            },
        ];
        t.handled(&h);
        t.handled(&h);
        let text = t.encode();
        let line = "switchboard_rule_throttled_total{rule=\"faq/x\"} 2";
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        assert!(
            !text.contains("rule_throttled_total{rule=\"faq/y\"}"),
            "{text}"
        );
        let entry = &t.handled_log()[0];
        assert_eq!(entry.throttled, ["faq/x"]);
        assert!(entry.rules.is_empty(), "{entry:?}");
        let json = serde_json::to_value(entry).unwrap_or_default();
        assert_eq!(json["throttled"], serde_json::json!(["faq/x"]), "{json}");
    }

    #[test]
    fn families_have_their_final_names() {
        let t = Telemetry::new(2);
        t.lifecycle_mark(LifecycleMark::Processed, true);
        let text = t.encode();
        for line in [
            "switchboard_rules 2",
            "switchboard_socket_connected 0",
            "switchboard_socket_reconnects_total 0",
            "switchboard_reloads_total{outcome=\"failed\"} 0",
            "switchboard_lifecycle_marks_total{mark=\"processed\",result=\"ok\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
    }
}
