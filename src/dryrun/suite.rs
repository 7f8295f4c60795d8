//! Running workflow tests: each test gets a fresh engine (state, throttles)
//! over the folder's ruleset and a recording executor; its events run in
//! order; the reports are compared with the expectations, and a failure is
//! told as a diff plus the trace of the event that failed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use similar::{capture_diff_slices, Algorithm, DiffTag};

use super::explain::explain;
use super::spec::{expected_action, EventSpec, Expect, ExpectedOutcome, Given, TestCase, TestFile};
use crate::rules::{event_input, PreparedEvent};
use switchboard_engine::action::Scope;
use switchboard_engine::run::ActionStatus;
use switchboard_engine::{
    AnswerCheck, Engine, EventInput, Finish, PendingConversation, RecordingExecutor, Report,
    Resume, StateStore,
};
use switchboard_workflow::actions;
use switchboard_workflow::duration::parse_duration;
use switchboard_workflow::error::did_you_mean;
use switchboard_workflow::yaml::Loc;
use switchboard_workflow::Ruleset;

/// The clock of a test that does not set `given.now` (a Monday, 09:00 UTC).
pub const DEFAULT_NOW: &str = "2026-01-05T09:00:00Z";

/// The agent of a test that does not set `given.agent`.
pub fn default_agent() -> Map<String, Value> {
    let v = json!({
        "id": "agent-under-test",
        "name": "Agent Under Test",
        "handle": "test/agent",
        "description": "the agent the workflows run as in tests",
    });
    v.as_object().cloned().unwrap_or_default()
}

/// One test's result.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The test file.
    pub file: PathBuf,
    /// Where the test starts.
    pub loc: Loc,
    /// Its name.
    pub name: String,
    /// Empty when it passed.
    pub failures: Vec<Failure>,
}

impl CaseResult {
    /// True when every expectation held.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// What went wrong with one event of a test.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Which event (1-based) of how many.
    pub event: (usize, usize),
    /// Its type.
    pub event_type: String,
    /// Each expectation that did not hold, as readable text.
    pub problems: Vec<String>,
    /// The trace of the event (empty when it never ran).
    pub trace: String,
}

/// Runs every test of `file` against `ruleset`.
pub async fn run_file(ruleset: &Arc<Ruleset>, path: &Path, file: &TestFile) -> Vec<CaseResult> {
    let mut out = Vec::new();
    for case in &file.tests {
        let given = file.given.merged(&case.given);
        out.push(CaseResult {
            file: path.to_owned(),
            loc: case.loc,
            name: case.name.clone(),
            failures: run_case(ruleset, &given, case).await,
        });
    }
    out
}

/// Runs one test; the failures, if any.
pub async fn run_case(ruleset: &Arc<Ruleset>, given: &Given, case: &TestCase) -> Vec<Failure> {
    let events: Vec<&EventSpec> = match (&case.event, &case.events) {
        (Some(e), _) => vec![e],
        (None, Some(es)) => es.iter().collect(),
        (None, None) => Vec::new(),
    };
    let count = events.len();
    let setup = |problem: String| Failure {
        event: (0, count),
        event_type: String::new(),
        problems: vec![problem],
        trace: String::new(),
    };
    let mut now: DateTime<Utc> = match given.now.as_deref().unwrap_or(DEFAULT_NOW).parse() {
        Ok(t) => t,
        Err(e) => return vec![setup(format!("`given.now` is not an RFC 3339 time: {e}"))],
    };
    let state = StateStore::in_memory();
    for (k, v) in given.state.iter().flatten() {
        state.set(k, v.clone(), None, now);
    }
    let env = given.env.clone().unwrap_or_default();
    let engine = Engine::new(ruleset.clone(), Arc::new(state))
        .with_env(env)
        .tracing_every_rule();
    let executor = RecordingExecutor::new();
    for (name, message) in given.failures.iter().flatten() {
        if let Some(name) = static_action_name(name) {
            executor.fail_on(name, message);
        }
    }
    for (name, result) in given.results.iter().flatten() {
        if let Some(name) = static_action_name(name) {
            executor.respond_with(name, result.clone());
        }
    }
    let agent = Value::Object(given.agent.clone().unwrap_or_else(default_agent));
    let mut failures = Vec::new();
    // Lists paused by earlier events (what `switchboard run` would keep).
    let mut pending: Vec<PendingConversation> = Vec::new();
    for (i, event) in events.iter().enumerate() {
        if let Some(after) = &event.after {
            // The spec check already refused a bad `after`; the clock still
            // cannot run past the calendar's end (no overflow).
            let step = parse_duration(after).unwrap_or(Duration::ZERO);
            let Some(later) = chrono::Duration::from_std(step)
                .ok()
                .and_then(|d| now.checked_add_signed(d))
            else {
                failures.push(setup(format!(
                    "event {}: `after: {after}` moves the clock past the last date it can hold",
                    i + 1
                )));
                return failures;
            };
            now = later;
        }
        // Waits whose time passed go on first, the earliest deadline first.
        let mut report = Report {
            event_type: event.kind.clone().unwrap_or_else(|| TIME_PASSES.into()),
            matched: Vec::new(),
            else_ran: Vec::new(),
            actions: Vec::new(),
            trace: Vec::new(),
            outcome: Finish::Done,
            pending: Vec::new(),
        };
        while let Some(due) = (0..pending.len())
            .filter(|&j| pending[j].is_due(now))
            .min_by_key(|&j| pending[j].deadline)
        {
            let p = pending.remove(due);
            let tick = EventInput {
                event_type: TIME_PASSES.into(),
                event: Arc::new(json!({})),
                agent: Arc::new(agent.clone()),
                chat: None,
                sender: None,
                now,
            };
            let done = engine
                .resume(p, Resume::Deadline, &tick, &Scope::default(), &executor)
                .await;
            pending.extend(done.pending.iter().cloned());
            absorb(&mut report, done);
        }
        if let Some(kind) = &event.kind {
            let chat = event.chat.clone().or_else(|| given.chat.clone());
            let PreparedEvent { input, scope, .. } = event_input(
                kind,
                Value::Object(event.payload.clone()),
                agent.clone(),
                chat.map(Value::Object),
                now,
            );
            // A message answering a paused list (the oldest it answers) goes
            // there and not through the rules.
            let answered = pending.iter().enumerate().find_map(|(j, p)| {
                match engine.check_answer(p, &input) {
                    AnswerCheck::NotAnAnswer => None,
                    AnswerCheck::Answer(value) => Some((j, Resume::Answer(value))),
                    AnswerCheck::Reprompt => Some((j, Resume::Reprompt)),
                }
            });
            let ran = match (answered, &event.rule) {
                (Some((j, how)), _) => {
                    let p = pending.remove(j);
                    engine.resume(p, how, &input, &scope, &executor).await
                }
                (None, Some(rule)) => {
                    if ruleset.rule(rule).is_none() {
                        failures.push(setup(unknown_rule(ruleset, rule)));
                        return failures;
                    }
                    engine.run_rule(rule, &input, &scope, &executor).await
                }
                (None, None) => engine.handle(&input, &scope, &executor).await,
            };
            pending.extend(ran.pending.iter().cloned());
            report.trace.extend(ran.trace.iter().cloned());
            absorb(&mut report, ran);
        }
        // Oldest first (a re-prompted one keeps its place).
        pending.sort_by_key(|p| p.started);
        let waiting: Vec<String> = pending.iter().map(|p| p.rule.clone()).collect();
        let expect = match (&case.expect, &case.expect_each) {
            (_, Some(each)) => each.get(i),
            (Some(e), None) if i + 1 == count => Some(e),
            _ => None,
        };
        let Some(expect) = expect else { continue };
        let state_after = engine.state().snapshot(now);
        let problems = compare(ruleset, expect, &report, &state_after, &waiting);
        if !problems.is_empty() {
            failures.push(Failure {
                event: (i + 1, count),
                event_type: report.event_type.clone(),
                problems,
                trace: explain(&report, Some(ruleset)),
            });
        }
    }
    failures
}

/// The event type shown for an entry with no `type` (only the clock moves).
const TIME_PASSES: &str = "time passes";

/// Adds what `from` did to `into` (the reports of one step of a test:
/// timeouts that fired, then the event itself); the first failure wins.
fn absorb(into: &mut Report, from: Report) {
    into.matched.extend(from.matched);
    into.else_ran.extend(from.else_ran);
    into.actions.extend(from.actions);
    into.pending.extend(from.pending);
    if into.outcome == Finish::Done {
        into.outcome = from.outcome;
    }
}

fn static_action_name(name: &str) -> Option<&'static str> {
    actions::find(name).map(|spec| spec.name)
}

fn unknown_rule(ruleset: &Ruleset, id: &str) -> String {
    let hint = did_you_mean(id, ruleset.rules().iter().map(|r| r.id.as_str()))
        .map(|h| format!(" ({h})"))
        .unwrap_or_default();
    format!("no rule `{id}` in the workflows{hint}")
}

/// Every expectation that does not hold, as text.
fn compare(
    ruleset: &Ruleset,
    expect: &Expect,
    report: &Report,
    state: &Value,
    waiting: &[String],
) -> Vec<String> {
    let mut problems = Vec::new();
    let named = expect.matched.iter().chain(&expect.else_ran);
    for id in named.chain(&expect.waiting).flatten() {
        if ruleset.rule(id).is_none() {
            problems.push(unknown_rule(ruleset, id));
        }
    }
    if let Some(want) = &expect.matched {
        if *want != report.matched {
            problems.push(diff("matched rules differ", want, &report.matched));
        }
    }
    if let Some(want) = &expect.else_ran {
        if *want != report.else_ran {
            problems.push(diff(
                "rules whose `else` ran differ",
                want,
                &report.else_ran,
            ));
        }
    }
    if let Some(want) = &expect.actions {
        if let Some(p) = compare_actions(want, report) {
            problems.push(p);
        }
    }
    if let Some(want) = &expect.waiting {
        if want.as_slice() != waiting {
            problems.push(diff("rules waiting differ", want, waiting));
        }
    }
    if let Some(want) = &expect.state {
        let want_lines = state_lines(want);
        let got_lines = state_lines(state.as_object().unwrap_or(&Map::new()));
        if want_lines != got_lines {
            problems.push(diff("state differs", &want_lines, &got_lines));
        }
    }
    let failed_reason = match &report.outcome {
        Finish::Done => None,
        // Not done either way (a dry run is never stopped by the platform).
        Finish::Failed { reason } | Finish::Stopped { reason } => Some(reason.as_str()),
    };
    if let Some(outcome) = expect.outcome {
        let got = match failed_reason {
            None => ExpectedOutcome::Done,
            Some(_) => ExpectedOutcome::Failed,
        };
        if got != outcome {
            let said = failed_reason
                .map(|r| format!("failed: {r}"))
                .unwrap_or_else(|| "done".into());
            problems.push(format!(
                "outcome: expected {}, got {said}",
                match outcome {
                    ExpectedOutcome::Done => "done",
                    ExpectedOutcome::Failed => "failed",
                }
            ));
        }
    }
    if let Some(part) = &expect.reason {
        match failed_reason {
            Some(r) if r.contains(part.as_str()) => {}
            Some(r) => problems.push(format!(
                "failure reason: expected it to contain {part:?}, got {r:?}"
            )),
            None => problems.push(format!(
                "failure reason: expected one containing {part:?}, but the event did not fail"
            )),
        }
    }
    problems
}

/// Compares the actions that ran with the expected ones; arguments the test
/// does not mention are not compared.
fn compare_actions(want: &[Value], report: &Report) -> Option<String> {
    let ran: Vec<(String, Map<String, Value>, Option<String>)> = report
        .actions
        .iter()
        .filter(|a| a.status != ActionStatus::Skipped)
        .map(|a| {
            let args = a
                .action
                .as_ref()
                .and_then(|act| serde_json::to_value(act).ok())
                .and_then(|v| v.as_object().and_then(|m| m.values().next().cloned()))
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default();
            let failed =
                (a.status == ActionStatus::Failed).then(|| a.error.clone().unwrap_or_default());
            (a.name.to_owned(), args, failed)
        })
        .collect();
    let want: Vec<(String, Map<String, Value>)> = want
        .iter()
        .filter_map(|v| expected_action(v).ok())
        .collect();
    let mut same = want.len() == ran.len();
    let mut want_lines = Vec::new();
    let mut got_lines = Vec::new();
    for i in 0..want.len().max(ran.len()) {
        let w = want.get(i);
        let g = ran.get(i);
        if let Some((name, args)) = w {
            want_lines.push(format!("{name} {}", Value::Object(args.clone())));
        }
        if let Some((name, args, failed)) = g {
            // Shown as the test wrote it: only the arguments it names.
            let shown = match w {
                Some((wname, wargs)) if wname == name => {
                    let projected: Map<String, Value> = wargs
                        .keys()
                        .map(|k| (k.clone(), args.get(k).cloned().unwrap_or(Value::Null)))
                        .collect();
                    if !wargs
                        .iter()
                        .all(|(k, v)| args.get(k).is_some_and(|a| same_value(k, v, a)))
                    {
                        same = false;
                    }
                    projected
                }
                _ => {
                    same = false;
                    args.clone()
                }
            };
            let failed = failed
                .as_ref()
                .map(|e| format!("  (failed: {e})"))
                .unwrap_or_default();
            got_lines.push(format!("{name} {}{failed}", Value::Object(shown)));
        }
    }
    (!same).then(|| diff("actions differ", &want_lines, &got_lines))
}

/// Equal as JSON, numbers by value, and a `ttl` compared as a duration
/// (`1d` equals the engine's `86400s`).
fn same_value(key: &str, want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::String(a), Value::String(b)) if key == "ttl" => {
            a == b || matches!((parse_duration(a), parse_duration(b)), (Ok(x), Ok(y)) if x == y)
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_value(key, x, y))
        }
        _ => want == got,
    }
}

fn state_lines(m: &Map<String, Value>) -> Vec<String> {
    let mut lines: Vec<String> = m.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    lines.sort();
    lines
}

/// A titled line diff: `-` expected, `+` got, unchanged lines indented.
fn diff(title: &str, want: &[String], got: &[String]) -> String {
    let mut out = format!("{title} (- expected, + got):");
    if want.is_empty() && got.is_empty() {
        return out;
    }
    for op in capture_diff_slices(Algorithm::Myers, want, got) {
        let (tag, old, new) = op.as_tag_tuple();
        match tag {
            DiffTag::Equal => old.for_each(|i| out.push_str(&format!("\n    {}", want[i]))),
            DiffTag::Delete => old.for_each(|i| out.push_str(&format!("\n  - {}", want[i]))),
            DiffTag::Insert => new.for_each(|i| out.push_str(&format!("\n  + {}", got[i]))),
            DiffTag::Replace => {
                old.for_each(|i| out.push_str(&format!("\n  - {}", want[i])));
                new.for_each(|i| out.push_str(&format!("\n  + {}", got[i])));
            }
        }
    }
    if want.is_empty() {
        out.push_str("\n  - (none)");
    }
    if got.is_empty() {
        out.push_str("\n  + (none)");
    }
    out
}
