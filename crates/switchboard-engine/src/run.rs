//! The engine: for one event, the rules that listen for it, in order; each
//! rule's conditions evaluated (traced), its actions rendered one at a time
//! (so `as:` results and state changes are visible to the next) and run,
//! local ones here, the rest through an [`Executor`].

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::action::{
    ActionError, ErrorKind, Executor, LocalAction, PauseAction, RenderedAction, Scope, Split,
};
use super::captures::Captures;
use super::context::lookup;
use super::context::{Context, EventContext};
use super::conversation::{
    answer_text, ask_result, named_choice, reprompt_text, ActionPath, AnswerCheck, Bound, Branch,
    PendingConversation, Resume, Rules,
};
use super::evaluate::{self, CondTrace, Evaluator};
use super::journal::{Journal, Step};
use super::render::{render_action, render_arg};
use super::state::StateStore;
use super::throttle::{ThrottleError, ThrottlePersistence, Throttles};
use switchboard_workflow::actions::SendMessage;
use switchboard_workflow::prefilter::Field;
use switchboard_workflow::rule::{Action, Call, OnError, PauseKind, Rule};
use switchboard_workflow::secrets::{shown, Redaction, Redactor, SecretValues};
use switchboard_workflow::Ruleset;

/// What goes back to the platform (`/failed`) and into every sink: failure
/// reasons and action errors with secrets shown as `[secret:NAME]`.
fn redact_report(report: &mut Report, redactor: &Redactor) {
    if let Finish::Failed { reason } | Finish::Stopped { reason } = &mut report.outcome {
        *reason = redactor.redact(reason).into_owned();
    }
    for a in &mut report.actions {
        if let Some(e) = &mut a.error {
            *e = redactor.redact(e).into_owned();
        }
    }
}

/// `secrets` in templates: the ruleset's declared names with their values;
/// a name without one (a dry run) reads as its placeholder.
fn secrets_value(ruleset: &Ruleset, redactor: &Redactor) -> Arc<Value> {
    let decls = ruleset.secret_decls();
    if decls.is_empty() {
        return Arc::new(Value::Object(Map::new()));
    }
    Arc::new(Value::Object(
        decls
            .iter()
            .map(|d| {
                let value = redactor
                    .values()
                    .get(&d.name)
                    .map_or_else(|| shown(&d.name), str::to_owned);
                (d.name.clone(), Value::String(value))
            })
            .collect(),
    ))
}

/// Why `action` may not run: it would hand a secret to the platform (a
/// message, an event, a room's title...). Only `http` requests, which go to
/// the hosts the operator allowed, may carry one.
fn secret_bound_for_platform(action: &RenderedAction, redactor: &Redactor) -> Option<String> {
    if redactor.is_empty() || action.name() == "http" {
        return None;
    }
    // Platform actions, and `ask` (its question is a message).
    if let Split::Local(_) = action.split() {
        return None;
    }
    let value = serde_json::to_value(action).ok()?;
    let name = redactor.find_in(&value)?;
    Some(format!(
        "{} would send the secret `{name}` to the platform; secrets go only into `http` requests",
        action.name()
    ))
}

/// One event as the engine sees it.
#[derive(Debug, Clone, Serialize)]
pub struct EventInput {
    /// Event type (`message_created`, `schedule`, ...).
    pub event_type: String,
    /// The payload as received.
    pub event: Arc<Value>,
    /// Our identity (`/agent/me`).
    pub agent: Arc<Value>,
    /// The room, when the event belongs to one: id, title, participants.
    pub chat: Option<Arc<Value>>,
    /// The sender of a message: id, type, name, handle.
    pub sender: Option<Arc<Value>>,
    /// The time the event is handled.
    pub now: DateTime<Utc>,
}

impl EventInput {
    /// The value at a dotted path (root first) among the parts that stay
    /// the same while the event is handled: `event`, `sender`, `chat`, `agent`.
    pub fn field(&self, path: &[String]) -> Option<&Value> {
        let (root, rest) = path.split_first()?;
        let root = match root.as_str() {
            "event" => &self.event,
            "agent" => &self.agent,
            "sender" => self.sender.as_deref()?,
            "chat" => self.chat.as_deref()?,
            _ => return None,
        };
        lookup(root, rest)
    }
}

/// The verdict on one rule.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Conditions held; `do` ran.
    Matched,
    /// Conditions failed (`else` ran, if any).
    NotMatched,
    /// Conditions held but the throttle window was full.
    Throttled,
    /// `enabled: false`.
    Disabled,
    /// A condition could not be evaluated (a pattern that does not compile):
    /// not "no match", so the event failed.
    Unevaluable,
}

/// Why a rule did what it did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RuleTrace {
    /// Rule id.
    pub rule: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Each condition's outcome, in order.
    pub conditions: Vec<CondTrace>,
}

/// What happened to one action.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// Done.
    Ok,
    /// Failed.
    Failed,
    /// Its `if:` did not hold.
    Skipped,
    /// The list paused here (`wait_for`, `ask`, `wait`): see [`Report::pending`].
    Paused,
}

/// One action's record.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ActionRecord {
    /// Rule id.
    pub rule: String,
    /// Action name.
    pub name: &'static str,
    /// The rendered action (absent when rendering failed or it was skipped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<RenderedAction>,
    /// What happened to it.
    pub status: ActionStatus,
    /// The error, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its result (bound by `as:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The calls (`- call: NAME`) it ran under, outermost first.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub calls: Vec<CallFrame>,
}

/// One `- call: NAME` an action ran under.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CallFrame {
    /// The action list's name.
    pub name: String,
    /// Its rendered `with:` (what the list saw as `args`).
    pub args: Value,
    /// Tells two calls of the same list apart within one report (the
    /// index in [`Report::actions`] where the call began).
    pub seq: usize,
}

/// How the event ended.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Finish {
    /// Handled (including: no rule matched).
    Done,
    /// Failed; the reason goes to `/failed`.
    Failed {
        /// Readable reason, starting with the rule id.
        reason: String,
    },
    /// Cut short because the platform says the agent's execution in the
    /// room is stopped (an action was refused, [`ErrorKind::ExecutionStopped`]):
    /// not a failure; the message is left for after PLAY, and no `on_error` ran.
    Stopped {
        /// Readable reason, starting with the rule id.
        reason: String,
    },
}

/// Why one step did not complete.
enum StepError {
    /// It failed: `on_error` applies.
    Failed(String),
    /// The platform's STOP refused it: the event ends, no fallback.
    Stopped(String),
}

impl StepError {
    fn message(&self) -> &str {
        match self {
            StepError::Failed(m) | StepError::Stopped(m) => m,
        }
    }
}

impl From<String> for StepError {
    fn from(message: String) -> Self {
        StepError::Failed(message)
    }
}

impl From<ActionError> for StepError {
    fn from(e: ActionError) -> Self {
        match e.kind {
            ErrorKind::Failed => StepError::Failed(e.to_string()),
            ErrorKind::ExecutionStopped => StepError::Stopped(e.to_string()),
        }
    }
}

/// Everything the engine did for one event.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// Event type.
    pub event_type: String,
    /// Rules whose `do` ran, in order.
    pub matched: Vec<String>,
    /// Rules whose `else` ran.
    pub else_ran: Vec<String>,
    /// Every action, in order.
    pub actions: Vec<ActionRecord>,
    /// The rules evaluated, with their conditions: every rule that listened
    /// when the engine traces every rule (then with each condition described
    /// and what it saw), else those the prefilter let through.
    pub trace: Vec<RuleTrace>,
    /// How the event ended.
    pub outcome: Finish,
    /// Lists that paused (`wait_for`, `ask`, `wait`), one per rule at most:
    /// the runtime keeps them and resumes them with [`Engine::resume`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingConversation>,
}

impl Report {
    /// The rules that ran, for one-line summaries: `faq/hours,contacts/x(else)`, or `-`.
    pub fn rules_summary(&self) -> String {
        if self.matched.is_empty() && self.else_ran.is_empty() {
            return "-".to_owned();
        }
        self.matched
            .iter()
            .cloned()
            .chain(self.else_ran.iter().map(|r| format!("{r}(else)")))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Rules whose conditions held but whose throttle window was full, in order.
    pub fn throttled(&self) -> impl Iterator<Item = &str> {
        self.trace
            .iter()
            .filter(|t| t.verdict == Verdict::Throttled)
            .map(|t| t.rule.as_str())
    }

    /// The actions, for one-line summaries: `add_participant(failed),reply`.
    pub fn actions_summary(&self) -> String {
        self.actions
            .iter()
            .map(|a| match a.status {
                ActionStatus::Ok => a.name.to_owned(),
                ActionStatus::Skipped => format!("{}(skipped)", a.name),
                ActionStatus::Failed => format!("{}(failed)", a.name),
                ActionStatus::Paused => format!("{}(paused)", a.name),
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A report of `event_type` where nothing ran yet.
    pub fn empty(event_type: &str) -> Self {
        Report::new(event_type)
    }

    fn new(event_type: &str) -> Self {
        Report {
            event_type: event_type.to_owned(),
            matched: Vec::new(),
            else_ran: Vec::new(),
            actions: Vec::new(),
            trace: Vec::new(),
            outcome: Finish::Done,
            pending: Vec::new(),
        }
    }
}

/// Runs rules. Holds the current ruleset (swappable), the state and the
/// throttle windows, which survive a swap.
pub struct Engine {
    ruleset: RwLock<Arc<Ruleset>>,
    state: Arc<StateStore>,
    throttles: Throttles,
    env: Arc<Value>,
    /// The secrets' values, and what hides them (shared with the writers).
    redaction: Redaction,
    journal: Option<Arc<Journal>>,
    every_rule: bool,
}

/// How a rule's actions ended.
enum Flow {
    Next,
    /// The list paused (its pending conversation is in the report).
    Paused,
    /// The event is finished (a `fail`, or an error and its fallback).
    End,
}

/// What every step of a called action list shares.
struct RuleRun<'a> {
    rule: &'a Rule,
    ruleset: &'a Arc<Ruleset>,
    caps: &'a Captures,
    input: &'a EventInput,
    scope: &'a Scope,
    executor: &'a dyn Executor,
    redactor: &'a Redactor,
}

impl Engine {
    /// An engine on `ruleset` with `state`.
    pub fn new(ruleset: Arc<Ruleset>, state: Arc<StateStore>) -> Self {
        Engine {
            ruleset: RwLock::new(ruleset),
            state,
            throttles: Throttles::default(),
            env: Arc::new(Value::Object(Map::new())),
            redaction: Redaction::new(),
            journal: None,
            every_rule: false,
        }
    }

    /// Gives templates these secrets (`secrets.NAME`); the handle's later
    /// changes (a reload) apply to the next event.
    pub fn with_redaction(mut self, redaction: Redaction) -> Self {
        self.redaction = redaction;
        self
    }

    /// Gives templates these secret values (a fresh handle; tests, dry runs).
    pub fn with_secrets(self, values: SecretValues) -> Self {
        let redaction = Redaction::new();
        redaction.set(values);
        self.with_redaction(redaction)
    }

    /// The secrets in use and what hides them.
    pub fn redaction(&self) -> &Redaction {
        &self.redaction
    }

    /// Evaluates (and traces) every rule listening for an event, not only
    /// those the literal prefilter lets through: for `explain`, tests and
    /// `--explain`, where the rules that could not match are part of the story.
    pub fn tracing_every_rule(mut self) -> Self {
        self.every_rule = true;
        self
    }

    /// Starts the throttle windows from what `persistence` kept (windows of
    /// rules that are not throttled now are dropped) and hands it every
    /// allowed run, so windows outlive a restart or a takeover.
    pub fn with_throttle_persistence(
        mut self,
        persistence: Arc<dyn ThrottlePersistence>,
    ) -> Result<Self, ThrottleError> {
        self.throttles = Throttles::persisted(persistence)?;
        let ruleset = self.ruleset();
        self.throttles.retain(|rule| throttled(&ruleset, rule));
        Ok(self)
    }

    /// Records each message's finished actions in `journal`, so a message
    /// served again resumes instead of repeating them.
    pub fn with_journal(mut self, journal: Arc<Journal>) -> Self {
        self.journal = Some(journal);
        self
    }

    /// The journal, when there is one.
    pub fn journal(&self) -> Option<&Arc<Journal>> {
        self.journal.as_ref()
    }

    /// Makes these environment variables visible to templates as `env`.
    pub fn with_env(mut self, env: Map<String, Value>) -> Self {
        self.env = Arc::new(Value::Object(env));
        self
    }

    /// The ruleset in use.
    pub fn ruleset(&self) -> Arc<Ruleset> {
        self.ruleset
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the ruleset; events already running finish on the old one.
    /// Throttle windows of rules that still exist carry over; others are dropped.
    pub fn swap(&self, ruleset: Arc<Ruleset>) {
        self.throttles.retain(|rule| throttled(&ruleset, rule));
        *self.ruleset.write().unwrap_or_else(|p| p.into_inner()) = ruleset;
    }

    /// The state store.
    pub fn state(&self) -> &StateStore {
        &self.state
    }

    /// Runs every rule listening for the event's type.
    pub async fn handle(
        &self,
        input: &EventInput,
        scope: &Scope,
        executor: &dyn Executor,
    ) -> Report {
        let ruleset = self.ruleset();
        let rules: Vec<&Rule> = match self.every_rule {
            true => ruleset.rules_for(&input.event_type).collect(),
            false => ruleset.candidates(&input.event_type, |path| Field::of(input.field(path))),
        };
        self.run_rules(&ruleset, &rules, input, scope, executor)
            .await
    }

    /// Runs one rule by id (schedules), whatever its event types.
    pub async fn run_rule(
        &self,
        rule_id: &str,
        input: &EventInput,
        scope: &Scope,
        executor: &dyn Executor,
    ) -> Report {
        let ruleset = self.ruleset();
        let rules: Vec<&Rule> = ruleset.rule(rule_id).into_iter().collect();
        self.run_rules(&ruleset, &rules, input, scope, executor)
            .await
    }

    async fn run_rules(
        &self,
        ruleset: &Arc<Ruleset>,
        rules: &[&Rule],
        input: &EventInput,
        scope: &Scope,
        executor: &dyn Executor,
    ) -> Report {
        let mut report = Report::new(&input.event_type);
        let redactor = self.redaction.current();
        // The event's part of the context is built once; `vars` and the
        // state snapshot are shared, the snapshot renewed only after a
        // rule's actions ran (they may change state).
        let mut base: Option<Arc<EventContext>> = None;
        let mut state: Option<Arc<Value>> = None;
        for rule in rules {
            if !rule.enabled {
                report.trace.push(RuleTrace {
                    rule: rule.id.clone(),
                    verdict: Verdict::Disabled,
                    conditions: Vec::new(),
                });
                continue;
            }
            let snapshot = state
                .get_or_insert_with(|| Arc::new(self.state.snapshot(input.now)))
                .clone();
            let base = base
                .get_or_insert_with(|| Arc::new(self.base_context(input, ruleset, &redactor)))
                .clone();
            let ctx = Context::new(base, rule.vars.clone(), snapshot).in_zone(rule.timezone);
            let mut caps = Captures::default();
            let (passed, conditions, broken) = {
                let ev = Evaluator::new(&ctx, ruleset.templates(), self.every_rule);
                let (passed, conditions) = evaluate::all(&rule.conditions, &ev, &mut caps);
                (passed, conditions, ev.take_broken())
            };
            if let Some(error) = broken {
                // Not "no match": the rule cannot be evaluated, so the event fails.
                report.trace.push(RuleTrace {
                    rule: rule.id.clone(),
                    verdict: Verdict::Unevaluable,
                    conditions,
                });
                tracing::error!(rule = %rule.id, %error, "a condition could not be evaluated");
                report.outcome = Finish::Failed {
                    reason: format!("{}: {error}", rule.id),
                };
                break;
            }
            let mut verdict = if passed {
                Verdict::Matched
            } else {
                Verdict::NotMatched
            };
            if passed && !self.throttle_allows(rule, ruleset, &ctx, &caps, input.now) {
                verdict = Verdict::Throttled;
            }
            report.trace.push(RuleTrace {
                rule: rule.id.clone(),
                verdict,
                conditions,
            });
            let actions = match verdict {
                Verdict::Matched => {
                    report.matched.push(rule.id.clone());
                    &rule.actions
                }
                Verdict::NotMatched if !rule.else_actions.is_empty() => {
                    report.else_ran.push(rule.id.clone());
                    &rule.else_actions
                }
                _ => continue,
            };
            // Actions may change state: the next rule takes a new snapshot.
            state = None;
            let list = match verdict {
                Verdict::Matched => List::Do,
                _ => List::Else,
            };
            let flow = self
                .run_actions(
                    rule,
                    (list, actions, 0),
                    ruleset,
                    ctx,
                    &caps,
                    Map::new(),
                    input,
                    scope,
                    executor,
                    &mut report,
                    &redactor,
                )
                .await;
            if matches!(flow, Flow::End) || (verdict == Verdict::Matched && rule.stop) {
                break;
            }
        }
        redact_report(&mut report, &redactor);
        report
    }

    /// Runs `actions` (the list `list` of `rule`) from index `start`, with
    /// the `as:` results bound so far.
    #[allow(clippy::too_many_arguments)]
    async fn run_actions(
        &self,
        rule: &Rule,
        (list, actions, start): (List, &[Action], usize),
        ruleset: &Arc<Ruleset>,
        ctx: Context,
        caps: &Captures,
        bindings: Map<String, Value>,
        input: &EventInput,
        scope: &Scope,
        executor: &dyn Executor,
        report: &mut Report,
        redactor: &Redactor,
    ) -> Flow {
        let mut bindings = bindings;
        let mut ctx = ctx;
        for (index, action) in actions.iter().enumerate().skip(start) {
            let (step, at) = match list {
                List::Do => (format!("{}#do{index}", rule.id), Some((Branch::Do, index))),
                List::Else => (
                    format!("{}#else{index}", rule.id),
                    Some((Branch::Else, index)),
                ),
                List::OnError => (format!("{}#on_error{index}", rule.id), None),
                List::OnTimeout(at) => (format!("{}.t{index}", at.step(&rule.id)), None),
            };
            let at = at.map(|(branch, index)| ActionPath { branch, index });
            let outcome = match &action.call {
                Some(call) => {
                    let run = RuleRun {
                        rule,
                        ruleset,
                        caps,
                        input,
                        scope,
                        executor,
                        redactor,
                    };
                    let mut own = Map::new();
                    Box::pin(self.run_call(
                        &run,
                        (action, call, &step),
                        &[],
                        &mut ctx,
                        &mut own,
                        report,
                    ))
                    .await
                }
                None => {
                    self.run_action(
                        rule,
                        (action, &step, at, &[]),
                        ruleset,
                        &mut ctx,
                        caps,
                        &mut bindings,
                        input,
                        scope,
                        executor,
                        report,
                        redactor,
                    )
                    .await
                }
            };
            match outcome {
                Ok(Flow::Next) => {}
                Ok(Flow::Paused) => return Flow::Paused,
                Ok(Flow::End) => return Flow::End,
                // Neither `on_error: continue` nor the fallback: the rule did
                // not fail, the room stopped under it.
                Err(StepError::Stopped(error)) => {
                    tracing::info!(rule = %rule.id, action = action.name, %error, "the platform says the room's execution is stopped; the event ends here and runs again after PLAY");
                    report.outcome = Finish::Stopped {
                        reason: format!("{}: {error}", rule.id),
                    };
                    return Flow::End;
                }
                Err(StepError::Failed(error)) if action.on_error == OnError::Continue => {
                    tracing::warn!(rule = %rule.id, action = action.name, %error, "action failed; continuing (on_error: continue)");
                }
                Err(StepError::Failed(error)) => {
                    let reason = format!("{}: {error}", rule.id);
                    if rule.on_error.is_empty() || list == List::OnError {
                        report.outcome = Finish::Failed { reason };
                        return Flow::End;
                    }
                    // The rule's fallback runs with the error in `error`.
                    // Redacted: a fallback often puts it in a message.
                    ctx.insert(
                        "error",
                        Value::String(redactor.redact(&reason).into_owned()),
                    );
                    // Whatever the fallback does, the event ends here.
                    Box::pin(self.run_actions(
                        rule,
                        (List::OnError, &rule.on_error, 0),
                        ruleset,
                        ctx,
                        caps,
                        bindings,
                        input,
                        scope,
                        executor,
                        report,
                        redactor,
                    ))
                    .await;
                    return Flow::End;
                }
            }
        }
        Flow::Next
    }

    /// Runs an action list: a rule's branch, or a called list (under
    /// `calls`). Step keys are `PREFIX<index>`, a called list's inside its
    /// call's (`rule#do1.0`). The first failure that is not
    /// `on_error: continue` ends the list and is returned.
    #[allow(clippy::too_many_arguments)]
    async fn run_list(
        &self,
        list: &RuleRun<'_>,
        actions: &[Action],
        prefix: &str,
        calls: &[CallFrame],
        ctx: &mut Context,
        bindings: &mut Map<String, Value>,
        report: &mut Report,
    ) -> Result<Flow, StepError> {
        let rule = list.rule;
        for (index, action) in actions.iter().enumerate() {
            let step = format!("{prefix}{index}");
            let outcome = match &action.call {
                Some(call) => {
                    Box::pin(self.run_call(
                        list,
                        (action, call, &step),
                        calls,
                        ctx,
                        bindings,
                        report,
                    ))
                    .await
                }
                None => {
                    self.run_action(
                        rule,
                        (action, &step, None, calls),
                        list.ruleset,
                        ctx,
                        list.caps,
                        bindings,
                        list.input,
                        list.scope,
                        list.executor,
                        report,
                        list.redactor,
                    )
                    .await
                }
            };
            match outcome {
                Ok(Flow::Next) => {}
                Ok(Flow::End) => return Ok(Flow::End),
                // A called list holds no pause (refused at load).
                Ok(Flow::Paused) => return Ok(Flow::Paused),
                Err(StepError::Failed(error)) if action.on_error == OnError::Continue => {
                    tracing::warn!(rule = %rule.id, action = action.name, %error, "action failed; continuing (on_error: continue)");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Flow::Next)
    }

    /// A `- call: NAME` step: its `if`, its `with` rendered into `args`,
    /// then the list run with its own `as:` bindings (the caller's are not
    /// seen inside; pass them with `with:`).
    #[allow(clippy::too_many_arguments)]
    async fn run_call(
        &self,
        list: &RuleRun<'_>,
        (action, call, step): (&Action, &Call, &str),
        calls: &[CallFrame],
        ctx: &mut Context,
        bindings: &mut Map<String, Value>,
        report: &mut Report,
    ) -> Result<Flow, StepError> {
        let mut frames = calls.to_vec();
        frames.push(CallFrame {
            name: call.name.clone(),
            args: Value::Null,
            seq: report.actions.len(),
        });
        let mut record = ActionRecord {
            rule: list.rule.id.clone(),
            name: action.name,
            action: None,
            status: ActionStatus::Skipped,
            error: None,
            result: None,
            calls: frames.clone(),
        };
        ctx.set_state(Arc::new(self.state.snapshot(list.input.now)));
        match self.action_holds(action, list.ruleset, ctx, list.caps, bindings) {
            Ok(true) => {}
            Ok(false) => {
                report.actions.push(record);
                return Ok(Flow::Next);
            }
            Err(error) => {
                record.status = ActionStatus::Failed;
                record.error = Some(error.clone());
                report.actions.push(record);
                return Err(error.into());
            }
        }
        let jctx = ctx.template(list.caps, bindings);
        let mut args = Map::new();
        for (k, a) in &call.with {
            match render_arg(a, list.ruleset.templates(), &jctx) {
                Ok(v) => {
                    args.insert(k.clone(), v);
                }
                Err(e) => {
                    let error = format!("call {} `with.{k}`: {e}", call.name);
                    record.status = ActionStatus::Failed;
                    record.error = Some(error.clone());
                    report.actions.push(record);
                    return Err(error.into());
                }
            }
        }
        if let Some(frame) = frames.last_mut() {
            frame.args = Value::Object(args.clone());
        }
        let mut inner = ctx.clone();
        inner.insert("args", Value::Object(args));
        let mut own = Map::new();
        let prefix = format!("{step}.");
        self.run_list(
            list,
            &call.actions,
            &prefix,
            &frames,
            &mut inner,
            &mut own,
            report,
        )
        .await
    }

    /// Whether an action's `if:` holds (true without one). Path conditions
    /// see what templates see: `match` and `as:` results too.
    fn action_holds(
        &self,
        action: &Action,
        ruleset: &Ruleset,
        ctx: &Context,
        caps: &Captures,
        bindings: &Map<String, Value>,
    ) -> Result<bool, String> {
        if action.when.is_empty() {
            return Ok(true);
        }
        let mut scratch = caps.clone();
        let mut seen = ctx.clone();
        seen.insert("match", caps.to_json());
        for (k, v) in bindings.iter() {
            seen.insert(k, v.clone());
        }
        let ev = Evaluator::new(&seen, ruleset.templates(), false);
        let (ok, _) = evaluate::all(&action.when, &ev, &mut scratch);
        match ev.take_broken() {
            Some(e) => Err(format!("{} `if`: {e}", action.name)),
            None => Ok(ok),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_action(
        &self,
        rule: &Rule,
        (action, step, at, calls): (&Action, &str, Option<ActionPath>, &[CallFrame]),
        ruleset: &Arc<Ruleset>,
        ctx: &mut Context,
        caps: &Captures,
        bindings: &mut Map<String, Value>,
        input: &EventInput,
        scope: &Scope,
        executor: &dyn Executor,
        report: &mut Report,
        redactor: &Redactor,
    ) -> Result<Flow, StepError> {
        // State may have changed since the rule started (incr, set).
        ctx.set_state(Arc::new(self.state.snapshot(input.now)));
        let jctx = ctx.template(caps, bindings);
        let mut record = ActionRecord {
            rule: rule.id.clone(),
            name: action.name,
            action: None,
            status: ActionStatus::Skipped,
            error: None,
            result: None,
            calls: calls.to_vec(),
        };
        match self.action_holds(action, ruleset, ctx, caps, bindings) {
            Ok(true) => {}
            Ok(false) => {
                report.actions.push(record);
                return Ok(Flow::Next);
            }
            Err(error) => {
                record.status = ActionStatus::Failed;
                record.error = Some(error.clone());
                report.actions.push(record);
                return Err(error.into());
            }
        }
        let rendered = match render_action(action, ruleset.templates(), &jctx) {
            Ok(r) => r,
            Err(e) => {
                let error = format!("{}: {e}", action.name);
                record.status = ActionStatus::Failed;
                record.error = Some(error.clone());
                report.actions.push(record);
                return Err(error.into());
            }
        };
        record.action = Some(rendered.clone());
        if let Some(error) = secret_bound_for_platform(&rendered, redactor) {
            record.status = ActionStatus::Failed;
            record.error = Some(error.clone());
            report.actions.push(record);
            return Err(error.into());
        }
        let result = match rendered.split() {
            Split::Local(LocalAction::Fail(fail)) => {
                record.status = ActionStatus::Ok;
                report.actions.push(record);
                report.outcome = Finish::Failed {
                    reason: format!("{}: {}", rule.id, fail.reason),
                };
                return Ok(Flow::End);
            }
            Split::Pause(pause) => {
                let paused = self
                    .pause(
                        ruleset, rule, pause, step, at, caps, bindings, input, scope, executor,
                        redactor,
                    )
                    .await;
                return match paused {
                    Ok(pending) => {
                        tracing::debug!(rule = %rule.id, pending = %pending.id, until = %pending.deadline, "the list pauses");
                        record.status = ActionStatus::Paused;
                        report.actions.push(record);
                        report.pending.push(pending);
                        Ok(Flow::Paused)
                    }
                    Err(e) => {
                        record.status = ActionStatus::Failed;
                        record.error = Some(e.message().to_owned());
                        report.actions.push(record);
                        Err(e)
                    }
                };
            }
            _ => {
                let journal = self.journal.as_deref().zip(scope.message_id.as_deref());
                let bound = action.bind.is_some();
                self.perform(
                    &rendered, rule, step, bound, journal, input, scope, executor, redactor,
                )
                .await
            }
        };
        match result {
            Ok(value) => {
                record.status = ActionStatus::Ok;
                if let Some(name) = &action.bind {
                    bindings.insert(name.clone(), value.clone());
                }
                record.result = Some(value);
                report.actions.push(record);
                Ok(Flow::Next)
            }
            Err(e) => {
                record.status = ActionStatus::Failed;
                record.error = Some(e.message().to_owned());
                report.actions.push(record);
                Err(e)
            }
        }
    }

    /// Runs one action, through the journal when the message has one: a
    /// finished step is not run again (its result is reused), a step sent but
    /// never confirmed is looked for on the platform first. `bound` says
    /// whether a later step reads the result (`as:`): what the journal must keep.
    #[allow(clippy::too_many_arguments)]
    async fn perform(
        &self,
        action: &RenderedAction,
        rule: &Rule,
        step: &str,
        bound: bool,
        journal: Option<(&Journal, &str)>,
        input: &EventInput,
        scope: &Scope,
        executor: &dyn Executor,
        redactor: &Redactor,
    ) -> Result<Value, StepError> {
        let journal_err = |e: super::journal::JournalError| e.to_string();
        if let Some((j, message)) = journal {
            match j.step(message, step) {
                // The journal kept only part of the result (e.g. not a large
                // `http` body) and a later step reads it: performed again.
                Some(Step::Done(result)) if bound && action.journaled_is_partial(&result) => {
                    tracing::info!(rule = %rule.id, message_id = message, action = action.name(), "done before, but its result was not kept whole; performed again");
                }
                Some(Step::Done(result)) => {
                    tracing::info!(rule = %rule.id, message_id = message, action = action.name(), "already done before; not repeated");
                    return Ok(result);
                }
                Some(Step::Sent) => match executor.landed(action, scope).await {
                    Ok(Some(result)) => {
                        tracing::info!(rule = %rule.id, message_id = message, action = action.name(), "sent before a restart and found on the platform; not repeated");
                        j.done(message, step, &result).await.map_err(journal_err)?;
                        return Ok(result);
                    }
                    Ok(None) => {
                        tracing::info!(rule = %rule.id, message_id = message, action = action.name(), "sent before a restart but missing on the platform; sending it");
                    }
                    Err(e) => {
                        return Err(StepError::Failed(format!(
                            "cannot tell whether it was sent already: {e}"
                        )))
                    }
                },
                None => {}
            }
            if action.must_not_repeat() {
                j.sent(message, step).await.map_err(journal_err)?;
            }
        }
        let result = match action.split() {
            Split::Local(local) => self
                .run_local(rule, local, input.now, redactor)
                .map_err(StepError::from),
            Split::Pause(_) => Err(StepError::Failed(format!(
                "`{}` reached perform (engine bug)",
                action.name()
            ))),
            Split::Platform(_) => {
                let scope = Scope {
                    step: Some(step.to_owned()),
                    ..scope.clone()
                };
                executor
                    .execute(action, &scope)
                    .await
                    .map_err(StepError::from)
            }
        }?;
        if let Some((j, message)) = journal {
            let kept = action.journaled_result(&result, bound);
            j.done_keeping(message, step, &result, kept.as_ref().unwrap_or(&result))
                .await
                .map_err(journal_err)?;
        }
        Ok(result)
    }

    /// Performs a local action. Exhaustive: a new local action does not
    /// compile until it is performed here.
    fn run_local(
        &self,
        rule: &Rule,
        action: LocalAction<'_>,
        now: DateTime<Utc>,
        redactor: &Redactor,
    ) -> Result<Value, String> {
        match action {
            LocalAction::Set(set) => {
                // State is written to disk and shown: it keeps `[secret:NAME]`,
                // never the value (so it reads the same after a restart).
                let key = redactor.redact(&set.key);
                let mut value = set.value.clone();
                redactor.redact_value(&mut value);
                self.state.set(&key, value.clone(), set.ttl, now);
                Ok(value)
            }
            LocalAction::Unset(unset) => {
                self.state.unset(&redactor.redact(&unset.key));
                Ok(Value::Null)
            }
            LocalAction::Incr(incr) => self
                .state
                .incr(&redactor.redact(&incr.key), incr.by, incr.ttl, now)
                .map(Value::from)
                .map_err(|e| format!("incr: {e}")),
            LocalAction::Log(log) => {
                let (rule, message) = (rule.id.as_str(), redactor.redact(&log.message));
                match log.level.as_str() {
                    "error" => tracing::error!(rule, "{message}"),
                    "warn" => tracing::warn!(rule, "{message}"),
                    "debug" => tracing::debug!(rule, "{message}"),
                    "trace" => tracing::trace!(rule, "{message}"),
                    _ => tracing::info!(rule, "{message}"),
                }
                Ok(Value::Null)
            }
            // Ends the event in `run_action`, before it would be performed.
            LocalAction::Fail(_) => Err("`fail` reached run_local (engine bug)".into()),
        }
    }

    /// True when the rule may run now; records the run when it may.
    fn throttle_allows(
        &self,
        rule: &Rule,
        ruleset: &Ruleset,
        ctx: &Context,
        caps: &Captures,
        now: DateTime<Utc>,
    ) -> bool {
        let Some(t) = &rule.throttle else {
            return true;
        };
        let key = match &t.key {
            Some(text) => {
                let jctx = ctx.template(caps, &Map::new());
                ruleset
                    .templates()
                    .render_text(text, &jctx)
                    .unwrap_or_default()
            }
            None => String::new(),
        };
        self.throttles.allows(&rule.id, key, t.max, t.per, now)
    }

    fn base_context(
        &self,
        input: &EventInput,
        ruleset: &Ruleset,
        redactor: &Redactor,
    ) -> EventContext {
        let secrets = secrets_value(ruleset, redactor);
        EventContext {
            secrets,
            event_type: Value::String(input.event_type.clone()),
            event: input.event.clone(),
            agent: input.agent.clone(),
            chat: input.chat.clone(),
            sender: input.sender.clone(),
            now: Value::String(input.now.to_rfc3339()),
            at: input.now,
            env: self.env.clone(),
        }
    }
}

/// True when `rule` exists in `ruleset` and has a throttle: its windows are kept.
fn throttled(ruleset: &Ruleset, rule: &str) -> bool {
    ruleset.rule(rule).is_some_and(|r| r.throttle.is_some())
}

/// Which of a rule's action lists is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    Do,
    Else,
    OnError,
    /// The `on_timeout` of the pause at this place.
    OnTimeout(ActionPath),
}

impl Engine {
    /// Reaching `wait_for`, `ask` or `wait`: `ask` sends its question (a
    /// journaled step like any message), then the pending conversation.
    #[allow(clippy::too_many_arguments)]
    async fn pause(
        &self,
        ruleset: &Arc<Ruleset>,
        rule: &Rule,
        pause: PauseAction<'_>,
        step: &str,
        at: Option<ActionPath>,
        caps: &Captures,
        bindings: &Map<String, Value>,
        input: &EventInput,
        scope: &Scope,
        executor: &dyn Executor,
        redactor: &Redactor,
    ) -> Result<PendingConversation, StepError> {
        let Some(at) = at else {
            // The loader refuses these; a pause here would never resume.
            return Err(StepError::Failed(
                "cannot pause inside `on_error` or `on_timeout`".into(),
            ));
        };
        let (kind, chat, from, timeout) = match pause {
            PauseAction::WaitFor(w) => (
                PauseKind::WaitFor,
                w.chat.clone(),
                w.from.clone(),
                w.timeout,
            ),
            PauseAction::Ask(a) => (PauseKind::Ask, None, Some(a.to.clone()), a.timeout),
            PauseAction::Wait(w) => (PauseKind::Wait, None, Some(Vec::new()), w.duration),
        };
        let name = kind.name();
        let room = chat
            .or_else(|| scope.chat_id.clone())
            .ok_or_else(|| format!("{name}: the event has no room to wait in (give `chat:`)"))?;
        let from = match from {
            Some(from) => from,
            None => match scope.sender.as_ref() {
                Some(sender) => vec![sender.id.clone()],
                None => {
                    return Err(StepError::Failed(format!(
                        "{name}: the event has no sender to wait for (give `from:`)"
                    )))
                }
            },
        };
        let deadline = chrono::Duration::from_std(timeout)
            .ok()
            .and_then(|d| input.now.checked_add_signed(d))
            .ok_or_else(|| format!("{name}: the timeout is past the calendar's end"))?;
        if let PauseAction::Ask(ask) = pause {
            let question = RenderedAction::SendMessage(SendMessage {
                chat: room.clone(),
                text: ask.text.clone(),
                mentions: ask.to.clone(),
            });
            let journal = self.journal.as_deref().zip(scope.message_id.as_deref());
            let scope = Scope {
                chat_id: Some(room.clone()),
                ..scope.clone()
            };
            self.perform(
                &question, rule, step, false, journal, input, &scope, executor, redactor,
            )
            .await?;
        }
        let origin = scope.message_id.clone().unwrap_or_else(|| {
            input
                .now
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        });
        Ok(PendingConversation {
            id: format!("{origin}/{}", at.step(&rule.id)),
            rule: rule.id.clone(),
            fingerprint: rule.fingerprint,
            file: rule.file.clone(),
            source_hash: rule.source_hash,
            kind,
            at,
            room,
            from,
            started: input.now,
            deadline,
            reprompted: false,
            rules: Rules(Some(ruleset.clone())),
            bound: Bound {
                event_type: input.event_type.clone(),
                event: (*input.event).clone(),
                chat: input.chat.as_deref().cloned(),
                sender: input.sender.as_deref().cloned(),
                reply_to: scope.sender.clone(),
                captures: caps.clone(),
                bindings: bindings.clone(),
            },
        })
    }

    /// Whether the message event `input` answers `pending`, by the rules it
    /// runs with ([`PendingConversation::ruleset`]; none attached: not an
    /// answer). Pure: nothing is performed, the state is only read (for `if:`).
    ///
    /// An answer is a `message_created` before the deadline (by its `now`),
    /// in the conversation's room from one
    /// of [`PendingConversation::from`] (id or handle) meeting `wait_for`'s
    /// `if:` (evaluated with `event`, `sender` and `chat` the answer's, and
    /// `match` and the `as:` results of the paused list). With `ask`'s
    /// `choices`, the answer must name exactly one choice as a word (ignoring
    /// case): naming none (or several) gets one [`AnswerCheck::Reprompt`],
    /// and after that such a message is not an answer (it goes through the
    /// rules; the wait goes on until an answer or the timeout).
    pub fn check_answer(&self, pending: &PendingConversation, input: &EventInput) -> AnswerCheck {
        if pending.kind == PauseKind::Wait || input.event_type != "message_created" {
            return AnswerCheck::NotAnAnswer;
        }
        // From the deadline on the timeout wins, even before it was handled.
        if pending.is_due(input.now) {
            return AnswerCheck::NotAnAnswer;
        }
        let room = input.event.get("chat_room_id").and_then(Value::as_str);
        if room != Some(pending.room.as_str()) {
            return AnswerCheck::NotAnAnswer;
        }
        let sender = input.sender.as_deref();
        let sender_id = sender
            .and_then(|s| s.get("id"))
            .or_else(|| input.event.get("sender_id"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let handle = sender.and_then(|s| s.get("handle")).and_then(Value::as_str);
        if sender_id.is_empty() || !pending.may_answer(sender_id, handle) {
            return AnswerCheck::NotAnAnswer;
        }
        let Some(ruleset) = pending.ruleset() else {
            tracing::warn!(pending = %pending.id, rule = %pending.rule, "the conversation has no rules attached (attach or recompile them after loading it); its answers cannot be checked");
            return AnswerCheck::NotAnAnswer;
        };
        let Some(pause) = pending
            .rule_in(ruleset)
            .and_then(|rule| Some((rule, pending.at.action(rule)?.pause.as_deref()?)))
        else {
            return AnswerCheck::NotAnAnswer; // `attach` checked it is there.
        };
        let (rule, pause) = pause;
        if !pause.answer_if.is_empty() {
            let redactor = self.redaction.current();
            let mut ctx = Context::new(
                Arc::new(self.base_context(input, ruleset, &redactor)),
                rule.vars.clone(),
                Arc::new(self.state.snapshot(input.now)),
            );
            ctx.insert("match", pending.bound.captures.to_json());
            for (k, v) in &pending.bound.bindings {
                ctx.insert(k, v.clone());
            }
            let mut caps = Captures::default();
            let ev = Evaluator::new(&ctx, ruleset.templates(), false);
            let (ok, _) = evaluate::all(&pause.answer_if, &ev, &mut caps);
            if let Some(error) = ev.take_broken() {
                tracing::warn!(pending = %pending.id, %error, "the answer's `if:` could not be evaluated; not an answer");
                return AnswerCheck::NotAnAnswer;
            }
            if !ok {
                return AnswerCheck::NotAnAnswer;
            }
        }
        match pending.kind {
            PauseKind::Ask if !pause.choices.is_empty() => {
                let text = answer_text(&input.event);
                match named_choice(&text, &pause.choices) {
                    Some(choice) => {
                        AnswerCheck::Answer(ask_result(Some(choice), &input.event, sender_id))
                    }
                    None if !pending.reprompted => AnswerCheck::Reprompt,
                    None => AnswerCheck::NotAnAnswer,
                }
            }
            PauseKind::Ask => AnswerCheck::Answer(ask_result(None, &input.event, sender_id)),
            _ => AnswerCheck::Answer((*input.event).clone()),
        }
    }

    /// Goes on with a pending conversation, with the rules it paused in
    /// (kept in it; after loading it from JSON, attached or recompiled): with its answer (`as:` binds it, then the
    /// rest of the list runs), a re-prompt (sent; the conversation is handed
    /// back in [`Report::pending`] with `reprompted` set) or its deadline
    /// (`on_timeout` runs, not the rest; for `wait`, the rest runs). The rest
    /// may pause again: the new pending conversation is in the report.
    ///
    /// `input` gives the time, the agent and (for an answer) the answering
    /// message; `scope.message_id` names the message whose lifecycle the
    /// actions run in (the answer's; none for a deadline), for the journal.
    /// The rest runs in the conversation's room, `reply` mentioning the
    /// sender of the message that started it, and sees that message as
    /// `event`. A reload does not change what it runs. With no rules
    /// attached nothing runs: the outcome is a failure saying so.
    pub async fn resume(
        &self,
        pending: PendingConversation,
        how: Resume,
        input: &EventInput,
        scope: &Scope,
        executor: &dyn Executor,
    ) -> Report {
        let mut report = Report::new(&input.event_type);
        let redactor = self.redaction.current();
        let Some(ruleset) = pending.ruleset().cloned() else {
            report.outcome = Finish::Failed {
                reason: format!(
                    "{}: conversation {} has no rules attached (attach or recompile them after loading it)",
                    pending.rule, pending.id
                ),
            };
            return report;
        };
        let ruleset = &ruleset;
        let Some(rule) = pending.rule_in(ruleset) else {
            return report; // `attach` checked it is there.
        };
        let Some(action) = pending.at.action(rule) else {
            return report; // rule_in checked it is there.
        };
        let Some(pause) = action.pause.as_deref() else {
            return report;
        };
        let scope = Scope {
            chat_id: Some(pending.room.clone()),
            sender: pending.bound.reply_to.clone(),
            contact_request_id: None,
            contact_from: None,
            step: None,
            message_id: scope.message_id.clone(),
            not_before: scope.not_before,
        };
        let base = EventContext {
            event_type: Value::String(pending.bound.event_type.clone()),
            event: Arc::new(pending.bound.event.clone()),
            agent: input.agent.clone(),
            chat: pending.bound.chat.clone().map(Arc::new),
            sender: pending.bound.sender.clone().map(Arc::new),
            now: Value::String(input.now.to_rfc3339()),
            at: input.now,
            env: self.env.clone(),
            secrets: secrets_value(ruleset, &redactor),
        };
        // The rest of the list sees the event that started it.
        let started = EventInput {
            event_type: pending.bound.event_type.clone(),
            event: base.event.clone(),
            agent: input.agent.clone(),
            chat: base.chat.clone(),
            sender: base.sender.clone(),
            now: input.now,
        };
        let ctx = Context::new(
            Arc::new(base),
            rule.vars.clone(),
            Arc::new(self.state.snapshot(input.now)),
        )
        .in_zone(rule.timezone);
        let caps = pending.bound.captures.clone();
        let mut bindings = pending.bound.bindings.clone();
        let list = match pending.at.branch {
            Branch::Do => List::Do,
            Branch::Else => List::Else,
        };
        let rest = (list, pending.at.list(rule), pending.at.index + 1);
        let answer = match how {
            Resume::Reprompt => {
                let text = reprompt_text(&pause.choices);
                let prompt = RenderedAction::SendMessage(SendMessage {
                    chat: pending.room.clone(),
                    text,
                    mentions: pending.from.clone(),
                });
                let step = format!("{}.reprompt", pending.at.step(&rule.id));
                let journal = self.journal.as_deref().zip(scope.message_id.as_deref());
                let result = self
                    .perform(
                        &prompt, rule, &step, false, journal, &started, &scope, executor, &redactor,
                    )
                    .await;
                let mut record = ActionRecord {
                    rule: rule.id.clone(),
                    name: prompt.name(),
                    action: Some(prompt),
                    status: ActionStatus::Ok,
                    error: None,
                    result: None,
                    calls: Vec::new(),
                };
                match result {
                    Ok(value) => record.result = Some(value),
                    Err(e) => {
                        record.status = ActionStatus::Failed;
                        record.error = Some(e.message().to_owned());
                    }
                }
                report.actions.push(record);
                let mut pending = pending;
                pending.reprompted = true;
                report.pending.push(pending);
                return report;
            }
            Resume::Answer(value) => value,
            Resume::Deadline if pending.kind == PauseKind::Wait => Value::Null,
            Resume::Deadline => {
                tracing::info!(rule = %rule.id, pending = %pending.id, "no answer before the timeout; on_timeout runs");
                report.matched.push(rule.id.clone());
                let on_timeout = (List::OnTimeout(pending.at), pause.on_timeout.as_slice(), 0);
                self.run_actions(
                    rule,
                    on_timeout,
                    ruleset,
                    ctx,
                    &caps,
                    bindings,
                    &started,
                    &scope,
                    executor,
                    &mut report,
                    &redactor,
                )
                .await;
                redact_report(&mut report, &redactor);
                return report;
            }
        };
        if let Some(name) = &action.bind {
            bindings.insert(name.clone(), answer);
        }
        report.matched.push(rule.id.clone());
        self.run_actions(
            rule,
            rest,
            ruleset,
            ctx,
            &caps,
            bindings,
            &started,
            &scope,
            executor,
            &mut report,
            &redactor,
        )
        .await;
        redact_report(&mut report, &redactor);
        report
    }
}
