//! A report as text for people: every rule that listened, each condition's
//! verdict and the value it saw, the actions each rule ran (rendered), and
//! the rules a `stop` kept from seeing the event. Used by `switchboard
//! explain`, `run --explain`, `replay --explain` and failing workflow tests.

use std::fmt::Write as _;

use serde_json::Value;

use switchboard_engine::evaluate::CondTrace;
use switchboard_engine::run::{ActionRecord, ActionStatus, Verdict};
use switchboard_engine::{Finish, PendingConversation, Report};
use switchboard_workflow::rule::PauseKind;
use switchboard_workflow::Ruleset;

/// Longest value shown for what a condition saw.
const SAW_WIDTH: usize = 80;

/// The report as an indented trace; `ruleset` names the rules the event
/// never reached (after a `stop` or a failure).
pub fn explain(report: &Report, ruleset: Option<&Ruleset>) -> String {
    let mut out = String::new();
    if report.trace.is_empty() {
        let _ = writeln!(out, "  no rule listens for `{}`", report.event_type);
    }
    for rule in &report.trace {
        let (mark, verdict) = match rule.verdict {
            Verdict::Matched => ("✓", "matched"),
            Verdict::NotMatched if report.else_ran.contains(&rule.rule) => {
                ("✗", "not matched, else ran")
            }
            Verdict::NotMatched => ("✗", "not matched"),
            Verdict::Throttled => ("⏸", "matched but throttled"),
            Verdict::Disabled => ("·", "disabled"),
            Verdict::Unevaluable => ("!", "could not be evaluated"),
        };
        let _ = writeln!(out, "  {mark} {}: {verdict}", rule.rule);
        for c in &rule.conditions {
            condition(&mut out, c, 3);
        }
        for a in report.actions.iter().filter(|a| a.rule == rule.rule) {
            let _ = writeln!(out, "      {}", action_line(a));
        }
        for p in report.pending.iter().filter(|p| p.rule == rule.rule) {
            let _ = writeln!(out, "        {}", pending_line(p, ruleset));
        }
    }
    if let Some(ruleset) = ruleset {
        let seen: Vec<&str> = report.trace.iter().map(|t| t.rule.as_str()).collect();
        let last = seen.last().copied().unwrap_or("-");
        for rule in ruleset.rules_for(&report.event_type) {
            if !seen.contains(&rule.id.as_str()) {
                let _ = writeln!(out, "  · {}: not reached (ended by {last})", rule.id);
            }
        }
    }
    match &report.outcome {
        Finish::Done => out.push_str("  outcome: done\n"),
        Finish::Failed { reason } => {
            let _ = writeln!(out, "  outcome: failed: {reason}");
        }
        Finish::Stopped { reason } => {
            let _ = writeln!(
                out,
                "  outcome: stopped by the platform (runs again after PLAY): {reason}"
            );
        }
    }
    out
}

fn condition(out: &mut String, c: &CondTrace, depth: usize) {
    let mark = if c.passed { "✓" } else { "✗" };
    let pad = "  ".repeat(depth);
    let _ = write!(out, "{pad}{mark} {}", c.condition);
    if let Some(saw) = &c.saw {
        let _ = write!(out, "  (saw {})", short(saw));
    }
    if let Some(e) = &c.error {
        let _ = write!(out, "  error: {e}");
    }
    out.push('\n');
    for child in &c.children {
        condition(out, child, depth + 1);
    }
}

/// One action: `→ reply {"text":"hi"}`, `· post_event skipped`, `✗ http failed: ...`.
pub fn action_line(a: &ActionRecord) -> String {
    let args = a
        .action
        .as_ref()
        .map(|act| action_args(&serde_json_value(act)));
    match a.status {
        ActionStatus::Ok => format!("→ {} {}", a.name, args.unwrap_or_default()),
        ActionStatus::Skipped => format!("· {} skipped (its `if` did not hold)", a.name),
        ActionStatus::Paused => format!(
            "⏸ {} {}: the list pauses here",
            a.name,
            args.unwrap_or_default()
        ),
        ActionStatus::Failed => format!(
            "✗ {} {} failed: {}",
            a.name,
            args.unwrap_or_default(),
            a.error.as_deref().unwrap_or("?")
        ),
    }
}

/// What a paused list waits for: `waits for an answer from u-ann in r1
/// until 2026-…; then do3.. runs (on timeout: its on_timeout)`.
pub fn pending_line(p: &PendingConversation, ruleset: Option<&Ruleset>) -> String {
    let until = p
        .deadline
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let next = format!("{}{}", p.at.branch.name(), p.at.index + 1);
    let on_timeout = ruleset
        .and_then(|r| p.rule_in(r))
        .and_then(|rule| {
            p.at.action(rule)?
                .pause
                .as_ref()
                .map(|w| w.on_timeout.len())
        })
        .map(|n| format!(" ({n} action{})", if n == 1 { "" } else { "s" }))
        .unwrap_or_default();
    match p.kind {
        PauseKind::Wait => format!("waits in {} until {until}; then the list goes on at {next}", p.room),
        PauseKind::WaitFor | PauseKind::Ask => format!(
            "waits for {} from {} in {} until {until}; an answer goes on at {next}, the timeout runs `on_timeout`{on_timeout}",
            match p.kind {
                PauseKind::Ask => "a choice",
                _ => "an answer",
            },
            p.from.join(" or "),
            p.room
        ),
    }
}

fn serde_json_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The arguments of a serialized `{name: {args}}` action, as compact JSON.
fn action_args(v: &Value) -> String {
    match v {
        Value::Object(m) => m
            .values()
            .next()
            .map(|args| args.to_string())
            .unwrap_or_default(),
        other => other.to_string(),
    }
}

/// A value in one line, cut to [`SAW_WIDTH`] characters.
pub fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() <= SAW_WIDTH {
        return s;
    }
    let cut: String = s.chars().take(SAW_WIDTH - 1).collect();
    format!("{cut}…")
}

/// `run --explain`: logs each handled event's trace.
pub struct ExplainLog {
    engine: std::sync::Arc<switchboard_engine::Engine>,
}

impl ExplainLog {
    /// Explains against `engine`'s current rules (to name rules a `stop` skipped).
    pub fn new(engine: std::sync::Arc<switchboard_engine::Engine>) -> Self {
        ExplainLog { engine }
    }
}

impl crate::rules::Sink for ExplainLog {
    fn handled(&self, h: &crate::rules::Handled) {
        if h.report.trace.is_empty() {
            return;
        }
        let ruleset = self.engine.ruleset();
        let trace = explain(&h.report, Some(&ruleset));
        let message_id = h.message_id.as_deref().unwrap_or("-");
        // The trace last, from a new line: text logs stay readable and JSON
        // logs keep it as one field.
        tracing::info!(
            event = %h.event_type,
            room = h.room.as_deref().unwrap_or("-"),
            message_id,
            trace = %format!("\n{}", trace.trim_end()),
            "explain"
        );
    }
}
