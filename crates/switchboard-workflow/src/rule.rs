//! One compiled rule and its parts (conditions, throttle, schedule, actions
//! with their arguments): what the compiler produces and the engine reads.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use globset::GlobMatcher;
use jsonpath_rust::parser::model::JpQuery;
use serde_json::Value;

use super::pattern::Pattern;
use super::template::Text;
use super::time::TimeCond;
use super::yaml::Loc;

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// `<file stem>/<name>`.
    pub id: String,
    /// The file it came from.
    pub file: PathBuf,
    /// Where its `name` is.
    pub loc: Loc,
    /// Description.
    pub description: Option<String>,
    /// Event types it listens for.
    pub on: Vec<String>,
    /// Timing, for `on: schedule`.
    pub schedule: Option<Schedule>,
    /// Its time zone (`cron`, `time` conditions, `local_now`): the rule's, else the file's, else UTC.
    pub timezone: Tz,
    /// All must hold.
    pub conditions: Vec<Cond>,
    /// Run when they hold.
    pub actions: Vec<Action>,
    /// Run when they do not.
    pub else_actions: Vec<Action>,
    /// Fallback when an action fails.
    pub on_error: Vec<Action>,
    /// Rate limit.
    pub throttle: Option<Throttle>,
    /// Later rules do not see the event after this one ran.
    pub stop: bool,
    /// Higher runs first.
    pub priority: i64,
    /// Skipped when false.
    pub enabled: bool,
    /// The file's vars.
    pub vars: Arc<Value>,
    /// Hash of the rule's source and its file's vars, named conditions and
    /// defaults: equal fingerprints mean an unchanged rule across reloads.
    pub fingerprint: u64,
    /// Hash of its file's whole text: with the text kept by that hash, the
    /// rule can be compiled again as it was (a paused conversation after a
    /// restart finishes with the actions it started with).
    pub source_hash: u64,
}

/// When a schedule rule runs (equal schedules keep their timers across reloads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// At a fixed interval.
    Every(Duration),
    /// On a cron pattern, read on the wall clock of the time zone.
    Cron(Box<croner::Cron>, Tz),
}

impl Schedule {
    /// The next run strictly after `now` (none past the calendar's end).
    /// A cron time that the spring change to daylight saving skips runs once,
    /// at the first instant after the gap; one the autumn change repeats runs
    /// once, at its first occurrence (croner's rules, as in Vixie cron).
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(d) => chrono::Duration::from_std(*d)
                .ok()
                .and_then(|d| now.checked_add_signed(d)),
            Schedule::Cron(c, zone) => c
                .find_next_occurrence(&now.with_timezone(zone), false)
                .ok()
                .map(|next| next.with_timezone(&Utc)),
        }
    }
}

/// A rate limit.
#[derive(Debug, Clone)]
pub struct Throttle {
    /// One window per rendered key (none: one window for the rule).
    pub key: Option<Text>,
    /// Runs per window.
    pub max: u32,
    /// Window length.
    pub per: Duration,
}

/// A compiled condition.
#[derive(Debug, Clone)]
pub enum Cond {
    /// A dotted path checked with operators.
    Path {
        /// As written.
        path: String,
        /// Split on dots.
        segments: Vec<String>,
        /// All must hold.
        checks: Vec<Check>,
    },
    /// All of these.
    All(Vec<Cond>),
    /// At least one.
    Any(Vec<Cond>),
    /// The opposite.
    Not(Box<Cond>),
    /// A named condition (`use:`).
    Named(String, Vec<Cond>),
    /// A truthy template.
    Template {
        /// As written.
        source: String,
        /// Compiled.
        text: Text,
    },
    /// A `time` condition (times of day, weekdays, dates).
    Time(TimeCond),
    /// A JSONPath query on the event.
    JsonPath {
        /// As written.
        source: String,
        /// Compiled.
        query: JpQuery,
        /// On the result list; none means "found something".
        checks: Vec<Check>,
    },
}

/// One operator with its operand.
#[derive(Debug, Clone)]
pub struct Check {
    /// Which.
    pub op: Op,
    /// The operand (vars resolved).
    pub operand: Value,
    /// `case: insensitive`.
    pub insensitive: bool,
    /// For `matches`.
    pub regex: Option<Pattern>,
    /// For `glob`.
    pub glob: Option<GlobMatcher>,
    /// For `length`.
    pub nested: Vec<Check>,
}

/// Operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `equals`.
    Equals,
    /// `not_equals`.
    NotEquals,
    /// `in`.
    In,
    /// `not_in`.
    NotIn,
    /// `contains`.
    Contains,
    /// `starts_with`.
    StartsWith,
    /// `ends_with`.
    EndsWith,
    /// `matches`.
    Matches,
    /// `glob`.
    Glob,
    /// `exists`.
    Exists,
    /// `gt`.
    Gt,
    /// `gte`.
    Gte,
    /// `lt`.
    Lt,
    /// `lte`.
    Lte,
    /// `length`.
    Length,
}

impl Op {
    /// Every operator with its name.
    pub const ALL: &'static [(&'static str, Op)] = &[
        ("equals", Op::Equals),
        ("not_equals", Op::NotEquals),
        ("in", Op::In),
        ("not_in", Op::NotIn),
        ("contains", Op::Contains),
        ("starts_with", Op::StartsWith),
        ("ends_with", Op::EndsWith),
        ("matches", Op::Matches),
        ("glob", Op::Glob),
        ("exists", Op::Exists),
        ("gt", Op::Gt),
        ("gte", Op::Gte),
        ("lt", Op::Lt),
        ("lte", Op::Lte),
        ("length", Op::Length),
    ];

    /// The operator's name.
    pub fn name(self) -> &'static str {
        Op::ALL
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("?", |(n, _)| n)
    }
}

/// A compiled action.
#[derive(Debug)]
pub struct Action {
    /// Action name (`reply`, `add_participant`, ...).
    pub name: &'static str,
    /// Arguments, templates compiled.
    pub args: Vec<(String, Arg)>,
    /// Run only when these hold.
    pub when: Vec<Cond>,
    /// Bind the result to this name.
    pub bind: Option<String>,
    /// What a failure does.
    pub on_error: OnError,
    /// Where it is written.
    pub loc: Loc,
    /// For `wait_for`, `ask` and `wait`: what the pause waits for (the parts
    /// compiled rather than rendered). `None` for every other action.
    pub pause: Option<Box<Pause>>,
}

/// Which of the pausing actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseKind {
    /// `wait_for`: until a message answers.
    WaitFor,
    /// `ask`: a question sent, until the one asked answers.
    Ask,
    /// `wait`: a delay.
    Wait,
}

impl PauseKind {
    /// The action's name.
    pub fn name(self) -> &'static str {
        match self {
            PauseKind::WaitFor => "wait_for",
            PauseKind::Ask => "ask",
            PauseKind::Wait => "wait",
        }
    }
}

/// The compiled parts of a pause: literal, checked at load.
#[derive(Debug)]
pub struct Pause {
    /// Which action.
    pub kind: PauseKind,
    /// `timeout` (`wait`: its duration); at most [`crate::duration::MAX_WAIT`].
    pub timeout: Duration,
    /// `wait_for`'s `if:`, evaluated with `event` = the answering message.
    pub answer_if: Vec<Cond>,
    /// `ask`'s `choices`, as written (distinct ignoring case).
    pub choices: Vec<String>,
    /// Run when the timeout passes first; holds no pause.
    pub on_timeout: Vec<Action>,
}

/// An action argument.
#[derive(Debug)]
pub enum Arg {
    /// A string, maybe a template.
    Text(Text),
    /// A number, boolean or null.
    Value(Value),
    /// A list.
    List(Vec<Arg>),
    /// A mapping.
    Map(Vec<(String, Arg)>),
}

/// What an action's failure does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Stop the rule; the message is marked failed (or the rule's `on_error` runs).
    Fail,
    /// Log it and go on with the next action.
    Continue,
}
