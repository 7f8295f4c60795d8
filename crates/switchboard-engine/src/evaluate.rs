//! Condition evaluation: pure, and traced. Every condition reports whether it
//! held and the value it saw, so `--explain` can say why a rule did or did
//! not fire.

use minijinja::value::Value as JValue;
use serde::Serialize;
use serde_json::Value;

use super::captures::Captures;
use super::context::Context;
use switchboard_workflow::rule::{Check, Cond, Op};
use switchboard_workflow::template::{truthy, Templates};

/// What one condition decided.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CondTrace {
    /// The condition, as written (`event.content matches '(?i)refund'`); empty
    /// unless the engine traces every rule (see `Engine::tracing_every_rule`).
    pub condition: String,
    /// Whether it held.
    pub passed: bool,
    /// The value it looked at (when traced in detail).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saw: Option<Value>,
    /// Errors while evaluating (a template that failed counts as false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Inner conditions of all / any / not / use.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<CondTrace>,
}

/// What conditions read: the rule's context (its template form made only
/// when a template condition asks) and the compiled templates.
pub struct Evaluator<'a> {
    /// The rule's context.
    pub ctx: &'a Context,
    /// The compiled templates.
    pub templates: &'a Templates,
    /// Describe each condition and keep what it saw (for traces people read).
    pub detail: bool,
    jctx: std::cell::OnceCell<JValue>,
    /// The first error that must fail the event rather than count as "no
    /// match" (a pattern that does not compile).
    broken: std::cell::RefCell<Option<String>>,
}

impl<'a> Evaluator<'a> {
    /// An evaluator over `ctx`; `detail`: see [`Evaluator::detail`].
    pub fn new(ctx: &'a Context, templates: &'a Templates, detail: bool) -> Self {
        Evaluator {
            ctx,
            templates,
            detail,
            jctx: std::cell::OnceCell::new(),
            broken: std::cell::RefCell::new(None),
        }
    }

    /// The error that must fail the event, if a condition hit one: the
    /// condition counted as false, but the event must not go on as if it
    /// simply did not match.
    pub fn take_broken(&self) -> Option<String> {
        self.broken.borrow_mut().take()
    }

    /// Keeps the first error that must fail the event.
    fn broke(&self, error: &str) {
        self.broken
            .borrow_mut()
            .get_or_insert_with(|| error.to_owned());
    }

    /// The condition's description, when traces are detailed (empty otherwise:
    /// formatting every condition costs more than evaluating most of them).
    fn describe(&self, text: impl FnOnce() -> String) -> String {
        match self.detail {
            true => text(),
            false => String::new(),
        }
    }

    /// The template context (conditions' templates do not see `match`).
    fn jctx(&self) -> &JValue {
        self.jctx.get_or_init(|| {
            self.ctx
                .template(&Captures::default(), &serde_json::Map::new())
        })
    }
}

/// Evaluates a list (all must hold), collecting traces and captures. Stops
/// at the first failure, like `and`, but reports what it evaluated.
pub fn all(conds: &[Cond], ev: &Evaluator, caps: &mut Captures) -> (bool, Vec<CondTrace>) {
    let mut traces = Vec::with_capacity(conds.len());
    for c in conds {
        let t = eval(c, ev, caps);
        let passed = t.passed;
        traces.push(t);
        if !passed {
            return (false, traces);
        }
    }
    (true, traces)
}

/// Evaluates one condition.
pub fn eval(cond: &Cond, ev: &Evaluator, caps: &mut Captures) -> CondTrace {
    match cond {
        Cond::Path {
            path,
            segments,
            checks,
        } => {
            let actual = ev.ctx.lookup(segments);
            let (passed, error) = settle(ev, every(checks, |c| check(c, actual, caps)));
            CondTrace {
                condition: ev.describe(|| format!("{path} {}", describe_checks(checks))),
                passed,
                saw: ev.detail.then(|| actual.cloned().unwrap_or(Value::Null)),
                error,
                children: Vec::new(),
            }
        }
        Cond::All(list) => {
            let (passed, children) = all(list, ev, caps);
            group(ev, "all", passed, children)
        }
        Cond::Any(list) => {
            let mut children = Vec::new();
            let mut passed = false;
            for c in list {
                let t = eval(c, ev, caps);
                passed = t.passed;
                children.push(t);
                if passed {
                    break;
                }
            }
            group(ev, "any", passed, children)
        }
        Cond::Not(inner) => {
            // Captures from inside a `not` would describe a failed match.
            let mut scratch = Captures::default();
            let t = eval(inner, ev, &mut scratch);
            group(ev, "not", !t.passed, vec![t])
        }
        Cond::Named(name, list) => {
            let (passed, children) = all(list, ev, caps);
            let name = ev.describe(|| format!("use {name}"));
            group(ev, &name, passed, children)
        }
        Cond::Template { source, text } => {
            let (passed, saw, error) = match ev.templates.render(text, ev.jctx()) {
                Ok(v) => (truthy(&v), Some(v), None),
                Err(e) => (false, None, Some(e)),
            };
            CondTrace {
                condition: ev.describe(|| format!("template {source}")),
                passed,
                saw,
                error,
                children: Vec::new(),
            }
        }
        Cond::Time(time) => {
            let zone = time.zone(ev.ctx.timezone());
            CondTrace {
                condition: ev.describe(|| time.describe(zone)),
                passed: time.holds(ev.ctx.at(), zone),
                saw: ev.detail.then(|| {
                    let local = switchboard_workflow::time::local_rfc3339(ev.ctx.at(), zone);
                    Value::String(local)
                }),
                error: None,
                children: Vec::new(),
            }
        }
        Cond::JsonPath {
            source,
            query,
            checks,
        } => {
            let event = ev.ctx.get("event").unwrap_or(&Value::Null);
            let found: Vec<Value> = jsonpath_rust::query::js_path_process(query, event)
                .map(|refs| refs.into_iter().map(|r| r.val().clone()).collect())
                .unwrap_or_default();
            let list = Value::Array(found);
            let (passed, error) = match checks.is_empty() {
                true => (list.as_array().is_some_and(|a| !a.is_empty()), None),
                false => settle(ev, every(checks, |c| check_list(c, &list, caps))),
            };
            CondTrace {
                condition: ev.describe(|| format!("jsonpath {source} {}", describe_checks(checks))),
                passed,
                saw: ev.detail.then_some(list),
                error,
                children: Vec::new(),
            }
        }
    }
}

/// Whether every check holds, stopping at the first that does not (or errs).
fn every<T>(items: &[T], mut f: impl FnMut(&T) -> Result<bool, String>) -> Result<bool, String> {
    for item in items {
        if !f(item)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether any item holds, stopping at the first that does (or errs).
fn some<T>(items: &[T], mut f: impl FnMut(&T) -> Result<bool, String>) -> Result<bool, String> {
    for item in items {
        if f(item)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A condition's outcome and error: an error counts as false, and is kept
/// to fail the event.
fn settle(ev: &Evaluator, outcome: Result<bool, String>) -> (bool, Option<String>) {
    match outcome {
        Ok(passed) => (passed, None),
        Err(e) => {
            ev.broke(&e);
            (false, Some(e))
        }
    }
}

fn group(ev: &Evaluator, name: &str, passed: bool, children: Vec<CondTrace>) -> CondTrace {
    CondTrace {
        condition: ev.describe(|| name.to_owned()),
        passed,
        saw: None,
        error: None,
        children,
    }
}

fn describe_checks(checks: &[Check]) -> String {
    checks
        .iter()
        .map(|c| match c.op {
            Op::Length => format!("length {}", describe_checks(&c.nested)),
            op => format!("{} {}", op.name(), c.operand),
        })
        .collect::<Vec<_>>()
        .join(" and ")
}

/// On a JSONPath result list: list-level operators see the list, the others
/// hold when any element satisfies them.
fn check_list(c: &Check, list: &Value, caps: &mut Captures) -> Result<bool, String> {
    match c.op {
        // The list is always there; "exists" means the query found something.
        Op::Exists => {
            let found = list.as_array().is_some_and(|a| !a.is_empty());
            Ok(found == c.operand.as_bool().unwrap_or(true))
        }
        Op::Contains | Op::Length | Op::Equals | Op::NotEquals => check(c, Some(list), caps),
        Op::NotIn => match list.as_array() {
            Some(items) => every(items, |v| check(c, Some(v), caps)),
            None => Ok(false),
        },
        _ => match list.as_array() {
            Some(items) => some(items, |v| check(c, Some(v), caps)),
            None => Ok(false),
        },
    }
}

/// One operator against the value found (None: the path does not exist).
/// An error (a pattern that does not compile) must fail the event.
pub fn check(c: &Check, actual: Option<&Value>, caps: &mut Captures) -> Result<bool, String> {
    let present = actual.filter(|v| !v.is_null());
    let null = Value::Null;
    let v = actual.unwrap_or(&null);
    Ok(match c.op {
        Op::Exists => present.is_some() == c.operand.as_bool().unwrap_or(true),
        Op::Equals => equal(v, &c.operand, c.insensitive),
        Op::NotEquals => !equal(v, &c.operand, c.insensitive),
        Op::In => member(v, &c.operand, c.insensitive),
        Op::NotIn => !member(v, &c.operand, c.insensitive),
        Op::Contains => match v {
            Value::Array(items) => items.iter().any(|i| equal(i, &c.operand, c.insensitive)),
            Value::String(s) => c.operand.as_str().is_some_and(|needle| {
                fold(s, c.insensitive).contains(&fold(needle, c.insensitive))
            }),
            Value::Object(m) => c.operand.as_str().is_some_and(|k| m.contains_key(k)),
            _ => false,
        },
        Op::StartsWith => strings(v, &c.operand, c.insensitive, |a, b| a.starts_with(b)),
        Op::EndsWith => strings(v, &c.operand, c.insensitive, |a, b| a.ends_with(b)),
        Op::Matches => {
            let re = match &c.regex {
                Some(p) => p.regex()?,
                None => return Err("`matches` without a pattern (engine bug)".to_owned()),
            };
            let Some(text) = as_text(present) else {
                return Ok(false);
            };
            match re.captures(&text) {
                Some(found) => {
                    caps.groups = found
                        .iter()
                        .map(|g| g.map(|m| m.as_str().to_owned()))
                        .collect();
                    caps.named = re
                        .capture_names()
                        .flatten()
                        .filter_map(|n| {
                            found.name(n).map(|m| (n.to_owned(), m.as_str().to_owned()))
                        })
                        .collect();
                    true
                }
                None => false,
            }
        }
        Op::Glob => match (&c.glob, as_text(present)) {
            (Some(g), Some(text)) => g.is_match(text.as_str()),
            _ => false,
        },
        Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
            let Some(ord) = compare(v, &c.operand) else {
                return Ok(false);
            };
            match c.op {
                Op::Gt => ord.is_gt(),
                Op::Gte => ord.is_ge(),
                Op::Lt => ord.is_lt(),
                _ => ord.is_le(),
            }
        }
        Op::Length => {
            let len = match v {
                Value::String(s) => s.chars().count(),
                Value::Array(a) => a.len(),
                Value::Object(m) => m.len(),
                _ => 0,
            };
            let len = Value::from(len);
            return every(&c.nested, |n| check(n, Some(&len), caps));
        }
    })
}

fn fold(s: &str, insensitive: bool) -> String {
    match insensitive {
        true => s.to_lowercase(),
        false => s.to_owned(),
    }
}

fn as_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn strings(a: &Value, b: &Value, insensitive: bool, f: impl Fn(&str, &str) -> bool) -> bool {
    match (a.as_str(), b.as_str()) {
        (Some(a), Some(b)) => f(&fold(a, insensitive), &fold(b, insensitive)),
        _ => false,
    }
}

/// JSON equality, with numbers compared by value and optional case folding.
pub fn equal(a: &Value, b: &Value, insensitive: bool) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::String(x), Value::String(y)) if insensitive => x.to_lowercase() == y.to_lowercase(),
        _ => a == b,
    }
}

fn member(v: &Value, list: &Value, insensitive: bool) -> bool {
    list.as_array()
        .is_some_and(|items| items.iter().any(|i| equal(v, i, insensitive)))
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        // A numeric string against a number: compare as numbers.
        (Value::String(x), Value::Number(y)) => {
            x.trim().parse::<f64>().ok()?.partial_cmp(&y.as_f64()?)
        }
        _ => None,
    }
}
