//! The compiled, immutable form of a workflows folder: rules indexed by event
//! type, with every regex, glob, JSONPath and template compiled.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use globset::GlobMatcher;
use jsonpath_rust::parser::model::JpQuery;
use serde_json::Value;

use super::pattern::Pattern;
use super::prefilter::{Field, Prefilter};
use super::template::{Templates, Text};
use super::yaml::Loc;

/// Every rule of a folder, ready to run. Cheap to share in an `Arc`.
#[derive(Debug)]
pub struct Ruleset {
    rules: Vec<Rule>,
    index: HashMap<String, Vec<usize>>,
    prefilter: Prefilter,
    templates: Templates,
    files: usize,
}

impl Ruleset {
    /// Builds the index: per event type, rules by priority (higher first),
    /// then in load order.
    pub fn new(rules: Vec<Rule>, templates: Templates, files: usize) -> Self {
        let mut index: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, rule) in rules.iter().enumerate() {
            for on in &rule.on {
                index.entry(on.clone()).or_default().push(i);
            }
        }
        for list in index.values_mut() {
            // Stable sort: ties keep load order.
            list.sort_by_key(|&i| std::cmp::Reverse(rules[i].priority));
        }
        let prefilter = Prefilter::new(&rules, &index);
        Ruleset {
            rules,
            index,
            prefilter,
            templates,
            files,
        }
    }

    /// An empty ruleset.
    pub fn empty() -> Self {
        Self::new(Vec::new(), Templates::new(), 0)
    }

    /// The rules listening for `event_type`, in the order they run.
    pub fn rules_for<'a>(&'a self, event_type: &str) -> impl Iterator<Item = &'a Rule> + 'a {
        self.index
            .get(event_type)
            .map(|v| v.as_slice())
            .unwrap_or(&[])
            .iter()
            .map(|&i| &self.rules[i])
    }

    /// The rules listening for `event_type` that could match, in the order
    /// they run: those whose required literals (see [`Prefilter`]) occur in
    /// the event, and those without any. `field` reads a path of the event.
    pub fn candidates<'a, 'v>(
        &'a self,
        event_type: &str,
        field: impl Fn(&[String]) -> Field<'v>,
    ) -> Vec<&'a Rule> {
        let list = self.index.get(event_type).map_or(&[][..], |v| v.as_slice());
        match self.prefilter.candidates(event_type, field) {
            Some(positions) => positions
                .into_iter()
                .filter_map(|p| list.get(p as usize))
                .map(|&i| &self.rules[i])
                .collect(),
            None => list.iter().map(|&i| &self.rules[i]).collect(),
        }
    }

    /// The literal prefilter.
    pub fn prefilter(&self) -> &Prefilter {
        &self.prefilter
    }

    /// A rule by id (`<file stem>/<name>`).
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// All rules, in load order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Rule ids, in load order.
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.id.as_str())
    }

    /// How many rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True without rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// How many workflow files the rules came from.
    pub fn files(&self) -> usize {
        self.files
    }

    /// The compiled templates.
    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    /// Enabled `on: schedule` rules and their timing.
    pub fn schedules(&self) -> Vec<(&str, &Schedule)> {
        self.rules
            .iter()
            .filter(|r| r.enabled)
            .filter_map(|r| r.schedule.as_ref().map(|s| (r.id.as_str(), s)))
            .collect()
    }
}

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
}

/// When a schedule rule runs.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// At a fixed interval.
    Every(Duration),
    /// On a cron pattern (UTC).
    Cron(Box<croner::Cron>),
}

impl Schedule {
    /// The next run strictly after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(d) => chrono::Duration::from_std(*d).ok().map(|d| now + d),
            Schedule::Cron(c) => c.find_next_occurrence(&now, false).ok(),
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
