//! YAML nodes → compiled rules. Every key is checked against the schema's
//! list (with "did you mean"), every regex, glob, JSONPath, duration and
//! template is compiled here, and every problem becomes a [`LoadError`] at
//! the exact node, so a ruleset that compiles cannot fail on its own syntax
//! later.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{Map, Value};

use super::actions;
use super::duration::{parse_duration, seconds};
use super::duration::{MAX_WAIT, MAX_WAIT_DAYS};
use super::error::{closest, did_you_mean, LoadError};
use super::pattern::Pattern;
use super::rule::{
    Action, Arg, Check, Cond, OnError, Op, Pause, PauseKind, Rule, Schedule, Throttle,
};
use super::schema::{self, keys_of, ACTION_MODIFIERS, EVENT_TYPES, ROOM_EVENTS};
use super::template::Templates;
use super::time;
use super::yaml::{self, Kind, Loc, Node};

/// Compiles one parsed file. Errors go to `errors`; rules that compiled
/// cleanly are returned (the caller discards everything if any error exists).
pub fn compile_file(
    file: &Path,
    text: &str,
    root: &Node,
    templates: &mut Templates,
    errors: &mut Vec<LoadError>,
) -> Vec<Rule> {
    let stem = file_stem(file);
    let mut c = Compiler {
        file,
        text,
        lines: text.lines().collect(),
        errors,
        templates,
        vars: Arc::new(Value::Object(Map::new())),
        named: HashMap::new(),
        shared_source: String::new(),
        timezone: chrono_tz::UTC,
        rule_on: Vec::new(),
        list: "`do`",
    };
    c.file_root(root, &stem)
}

/// `workflows/triage.yaml` → `triage`.
pub fn file_stem(file: &Path) -> String {
    file.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

struct Compiler<'a> {
    file: &'a Path,
    text: &'a str,
    lines: Vec<&'a str>,
    errors: &'a mut Vec<LoadError>,
    templates: &'a mut Templates,
    vars: Arc<Value>,
    named: HashMap<String, Vec<Cond>>,
    /// vars, conditions and defaults as written: part of every rule's fingerprint.
    shared_source: String,
    /// The file's `timezone` (UTC when it has none).
    timezone: chrono_tz::Tz,
    /// The event types of the rule being compiled (may it pause: has it a room?).
    rule_on: Vec<String>,
    /// The action list being compiled (`` `do` ``, `` `on_timeout` ``, ...).
    list: &'static str,
}

/// Defaults a file gives its rules.
#[derive(Default)]
struct Defaults<'n> {
    stop: Option<bool>,
    priority: Option<i64>,
    enabled: Option<bool>,
    throttle: Option<&'n Node>,
    on_error: Option<&'n Node>,
}

fn key_list<T: schemars::JsonSchema>(cell: &'static OnceLock<Vec<String>>) -> &'static [String] {
    cell.get_or_init(keys_of::<T>)
}

fn file_keys() -> &'static [String] {
    static K: OnceLock<Vec<String>> = OnceLock::new();
    key_list::<schema::WorkflowFile>(&K)
}
fn rule_keys() -> &'static [String] {
    static K: OnceLock<Vec<String>> = OnceLock::new();
    key_list::<schema::Rule>(&K)
}
fn defaults_keys() -> &'static [String] {
    static K: OnceLock<Vec<String>> = OnceLock::new();
    key_list::<schema::Defaults>(&K)
}
fn throttle_keys() -> &'static [String] {
    static K: OnceLock<Vec<String>> = OnceLock::new();
    key_list::<schema::Throttle>(&K)
}
fn operator_keys() -> &'static [String] {
    static K: OnceLock<Vec<String>> = OnceLock::new();
    key_list::<schema::Operators>(&K)
}

/// Argument names of the action `name` (none for an unknown action).
pub fn action_arg_keys(name: &str) -> &'static [String] {
    actions::find(name).map_or(&[], |spec| spec.arg_keys())
}

impl<'a> Compiler<'a> {
    fn error(&mut self, loc: Loc, message: impl Into<String>, hint: Option<String>) {
        let source_line = (loc.line > 0)
            .then(|| self.lines.get(loc.line as usize - 1).map(|l| l.to_string()))
            .flatten();
        self.errors.push(LoadError {
            file: self.file.to_owned(),
            loc,
            message: message.into(),
            hint,
            source_line,
        });
    }

    /// The node's entries, or an error saying a mapping was expected.
    fn map<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [(Node, Node)]> {
        match &node.kind {
            Kind::Map(entries) => Some(entries),
            _ => {
                self.error(
                    node.loc,
                    format!("{what} must be a mapping, found {}", node.describe()),
                    None,
                );
                None
            }
        }
    }

    /// Reports keys not in `allowed`.
    fn check_keys(&mut self, entries: &[(Node, Node)], allowed: &[String], what: &str) {
        for (k, _) in entries {
            let key = k.key_text();
            if !allowed.contains(&key) {
                let hint = did_you_mean(&key, allowed.iter().map(String::as_str));
                self.error(k.loc, format!("unknown key `{key}` in {what}"), hint);
            }
        }
    }

    /// The node's value when `get` accepts it; else an error "WHAT must be EXPECTED".
    fn scalar<T>(
        &mut self,
        node: &Node,
        what: &str,
        expected: &str,
        get: impl Fn(&Kind) -> Option<T>,
    ) -> Option<T> {
        let value = get(&node.kind);
        if value.is_none() {
            let msg = format!("{what} must be {expected}, found {}", node.describe());
            self.error(node.loc, msg, None);
        }
        value
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        self.scalar(node, what, "a string", |k| match k {
            Kind::Str(s) => Some(s.clone()),
            _ => None,
        })
    }

    fn boolean(&mut self, node: &Node, what: &str) -> Option<bool> {
        self.scalar(node, what, "true or false", |k| match k {
            Kind::Bool(b) => Some(*b),
            _ => None,
        })
    }

    fn integer(&mut self, node: &Node, what: &str) -> Option<i64> {
        self.scalar(node, what, "a whole number", |k| match k {
            Kind::Int(i) => Some(*i),
            _ => None,
        })
    }

    fn duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let text = self.string(node, what)?;
        match parse_duration(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(
                    node.loc,
                    format!("{what}: {e}"),
                    Some("e.g. `30s`, `10m`, `1h`, `2d`".into()),
                );
                None
            }
        }
    }

    fn file_root(&mut self, root: &Node, stem: &str) -> Vec<Rule> {
        let Some(entries) = self.map(root, "a workflow file") else {
            return Vec::new();
        };
        self.check_keys(entries, file_keys(), "the workflow file");
        let get = |k: &str| field(entries, k);
        self.shared_source = ["vars", "conditions", "defaults", "timezone"]
            .iter()
            .map(|k| get(k).map(Node::to_json).unwrap_or(Value::Null).to_string())
            .collect();
        match get("version") {
            None => self.error(root.loc, "missing `version: 1`", None),
            Some(v) if v.kind == Kind::Int(1) => {}
            Some(v) => self.error(
                v.loc,
                "unsupported version; this switchboard reads `version: 1`",
                None,
            ),
        }
        if let Some(tz) = get("timezone").and_then(|n| self.zone(n)) {
            self.timezone = tz;
        }
        if let Some(vars) = get("vars") {
            if self.map(vars, "`vars`").is_some() {
                self.vars = Arc::new(vars.to_json());
            }
        }
        if let Some(conds) = get("conditions") {
            if let Some(named) = self.map(conds, "`conditions`") {
                for (k, v) in named {
                    let list = self.conditions(v);
                    self.named.insert(k.key_text(), list);
                }
            }
        }
        let mut defaults = Defaults::default();
        if let Some(d) = get("defaults") {
            if let Some(entries) = self.map(d, "`defaults`") {
                self.check_keys(entries, defaults_keys(), "`defaults`");
                for (k, v) in entries {
                    match k.as_str() {
                        Some("stop") => defaults.stop = self.boolean(v, "`stop`"),
                        Some("priority") => defaults.priority = self.integer(v, "`priority`"),
                        Some("enabled") => defaults.enabled = self.boolean(v, "`enabled`"),
                        Some("throttle") => defaults.throttle = Some(v),
                        Some("on_error") => defaults.on_error = Some(v),
                        _ => {}
                    }
                }
            }
        }
        let Some(rules) = get("rules") else {
            self.error(root.loc, "missing `rules:` (a list of rules)", None);
            return Vec::new();
        };
        let Kind::Seq(items) = &rules.kind else {
            self.error(
                rules.loc,
                format!("`rules` must be a list, found {}", rules.describe()),
                None,
            );
            return Vec::new();
        };
        let mut out: Vec<Rule> = Vec::new();
        let mut seen: HashMap<String, Loc> = HashMap::new();
        for item in items {
            if let Some(rule) = self.rule(item, stem, &defaults) {
                if let Some(first) = seen.get(&rule.id) {
                    let msg = format!(
                        "duplicate rule name `{}` (first at line {})",
                        rule.id.rsplit('/').next().unwrap_or_default(),
                        first.line
                    );
                    self.error(rule.loc, msg, None);
                    continue;
                }
                seen.insert(rule.id.clone(), rule.loc);
                out.push(rule);
            }
        }
        out
    }

    fn rule(&mut self, node: &Node, stem: &str, defaults: &Defaults) -> Option<Rule> {
        let entries = self.map(node, "a rule")?;
        let before = self.errors.len();
        self.check_keys(entries, rule_keys(), "rule");
        let get = |k: &str| field(entries, k);
        let name_node = get("name");
        let name = match name_node {
            Some(n) => self.string(n, "`name`"),
            None => {
                self.error(node.loc, "rule has no `name`", None);
                None
            }
        };
        let on = match get("on") {
            Some(n) => self.event_types(n),
            None => {
                self.error(
                    node.loc,
                    "rule has no `on:` (the event type it listens for)",
                    None,
                );
                Vec::new()
            }
        };
        let timezone = match get("timezone") {
            Some(n) => self.zone(n),
            None => Some(self.timezone),
        };
        let schedule = self.schedule(node, &on, get("every"), get("cron"), timezone);
        self.rule_on = on.clone();
        let conditions = get("if").map(|n| self.conditions(n)).unwrap_or_default();
        let actions = match get("do") {
            Some(n) => self.actions(n, "`do`"),
            None => {
                self.error(node.loc, "rule has no `do:` (the actions to run)", None);
                Vec::new()
            }
        };
        let else_actions = get("else")
            .map(|n| self.actions(n, "`else`"))
            .unwrap_or_default();
        let on_error = get("on_error")
            .or(defaults.on_error)
            .map(|n| self.actions(n, "`on_error`"))
            .unwrap_or_default();
        let throttle = get("throttle")
            .or(defaults.throttle)
            .and_then(|n| self.throttle(n));
        let stop = match get("stop") {
            Some(n) => self.boolean(n, "`stop`"),
            None => defaults.stop,
        };
        let priority = match get("priority") {
            Some(n) => self.integer(n, "`priority`"),
            None => defaults.priority,
        };
        let enabled = match get("enabled") {
            Some(n) => self.boolean(n, "`enabled`"),
            None => defaults.enabled,
        };
        let description = get("description").and_then(|n| self.string(n, "`description`"));
        if self.errors.len() > before {
            return None;
        }
        Some(Rule {
            id: format!("{stem}/{}", name?),
            file: self.file.to_owned(),
            loc: name_node.map_or(node.loc, |n| n.loc),
            description,
            on,
            schedule,
            timezone: timezone?,
            conditions,
            actions,
            else_actions,
            on_error,
            throttle,
            stop: stop.unwrap_or(false),
            priority: priority.unwrap_or(0),
            enabled: enabled.unwrap_or(true),
            vars: self.vars.clone(),
            fingerprint: fingerprint(&self.shared_source, node),
            source_hash: source_hash(self.text),
        })
    }

    fn event_types(&mut self, node: &Node) -> Vec<String> {
        let items: Vec<&Node> = match &node.kind {
            Kind::Seq(items) => items.iter().collect(),
            _ => vec![node],
        };
        let mut out = Vec::new();
        for item in items {
            let Some(name) = self.string(item, "an event type") else {
                continue;
            };
            if EVENT_TYPES.contains(&name.as_str()) {
                out.push(name);
            } else {
                let hint = did_you_mean(&name, EVENT_TYPES.iter().copied());
                self.error(item.loc, format!("unknown event type `{name}`"), hint);
            }
        }
        out
    }

    fn schedule(
        &mut self,
        rule: &Node,
        on: &[String],
        every: Option<&Node>,
        cron: Option<&Node>,
        zone: Option<chrono_tz::Tz>,
    ) -> Option<Schedule> {
        let scheduled = on.iter().any(|o| o == "schedule");
        if !scheduled {
            for n in [every, cron].into_iter().flatten() {
                self.error(
                    n.loc,
                    "`every` and `cron` only apply to `on: schedule`",
                    None,
                );
            }
            return None;
        }
        match (every, cron) {
            (Some(e), None) => self.duration(e, "`every`").map(Schedule::Every),
            (None, Some(c)) => {
                let text = self.string(c, "`cron`")?;
                match croner::Cron::from_str(&text) {
                    Ok(cron) => Some(Schedule::Cron(Box::new(cron), zone?)),
                    Err(e) => {
                        self.error(c.loc, format!("bad cron expression: {e}"), None);
                        None
                    }
                }
            }
            (Some(_), Some(c)) => {
                self.error(c.loc, "give `every` or `cron`, not both", None);
                None
            }
            (None, None) => {
                self.error(
                    rule.loc,
                    "`on: schedule` needs `every: 10m` or `cron: \"0 9 * * *\"`",
                    None,
                );
                None
            }
        }
    }

    /// A `timezone:` value (an IANA name).
    fn zone(&mut self, node: &Node) -> Option<chrono_tz::Tz> {
        let mut problems = Vec::new();
        let zone = time::zone(node, &mut problems);
        for (loc, message, hint) in problems {
            self.error(loc, message, hint);
        }
        zone
    }

    fn throttle(&mut self, node: &Node) -> Option<Throttle> {
        let entries = self.map(node, "`throttle`")?;
        self.check_keys(entries, throttle_keys(), "`throttle`");
        let get = |k: &str| field(entries, k);
        let key = match get("key") {
            Some(k) => {
                let s = self.string(k, "`throttle.key`")?;
                Some(self.template(k, &s)?)
            }
            None => None,
        };
        let Some(max_node) = get("max") else {
            self.error(node.loc, "`throttle` needs `max` (runs per window)", None);
            return None;
        };
        let max = self.integer(max_node, "`throttle.max`")?;
        let max = match u32::try_from(max) {
            Ok(m) if m > 0 => m,
            _ => {
                self.error(max_node.loc, "`throttle.max` must be at least 1", None);
                return None;
            }
        };
        let Some(per_node) = get("per") else {
            self.error(
                node.loc,
                "`throttle` needs `per` (the window, e.g. `10m`)",
                None,
            );
            return None;
        };
        let per = self.duration(per_node, "`throttle.per`")?;
        Some(Throttle { key, max, per })
    }

    fn template(&mut self, node: &Node, source: &str) -> Option<super::template::Text> {
        match self.templates.compile_located(source) {
            Ok(t) => Some(t),
            Err(errors) => {
                for e in errors {
                    let loc = self.inside(node, source, e.offset);
                    let message = match e.message.starts_with("unknown ") {
                        true => e.message,
                        false => format!("template error: {}", e.message),
                    };
                    self.error(loc, message, e.hint);
                }
                None
            }
        }
    }

    /// Where byte `offset` of `value` is, when `node` is the string scalar
    /// holding it (a value from `vars` is pointed at where it is used).
    fn inside(&self, node: &Node, value: &str, offset: Option<usize>) -> Loc {
        match offset {
            Some(offset) if node.as_str() == Some(value) => {
                yaml::position_in_scalar(&self.lines, node.loc, value, offset)
            }
            _ => node.loc,
        }
    }

    /// A condition list: a sequence, one condition, or a template string.
    fn conditions(&mut self, node: &Node) -> Vec<Cond> {
        match &node.kind {
            Kind::Seq(items) => items.iter().filter_map(|n| self.condition(n)).collect(),
            _ => self.condition(node).into_iter().collect(),
        }
    }

    fn condition(&mut self, node: &Node) -> Option<Cond> {
        let entries = match &node.kind {
            Kind::Map(entries) => entries,
            Kind::Str(s) if s.contains("{{") => {
                let text = self.template(node, s)?;
                return Some(Cond::Template {
                    source: s.clone(),
                    text,
                });
            }
            _ => {
                self.error(
                    node.loc,
                    format!("expected a condition such as `event.content: {{ contains: refund }}`, found {}", node.describe()),
                    None,
                );
                return None;
            }
        };
        let Some((first, value)) = entries.first() else {
            self.error(node.loc, "empty condition", None);
            return None;
        };
        let key = first.key_text();
        let alone = |c: &mut Self, what: &str| {
            if entries.len() > 1 {
                c.error(
                    entries[1].0.loc,
                    format!("`{what}` takes no sibling keys; write one condition per list item"),
                    None,
                );
            }
        };
        match key.as_str() {
            "all" | "any" => {
                alone(self, &key);
                let Kind::Seq(items) = &value.kind else {
                    self.error(
                        value.loc,
                        format!("`{key}` must be a list of conditions"),
                        None,
                    );
                    return None;
                };
                let list: Vec<Cond> = items.iter().filter_map(|n| self.condition(n)).collect();
                Some(if key == "all" {
                    Cond::All(list)
                } else {
                    Cond::Any(list)
                })
            }
            "not" => {
                alone(self, "not");
                let inner = self.condition(value)?;
                Some(Cond::Not(Box::new(inner)))
            }
            "use" => {
                alone(self, "use");
                let name = self.string(value, "`use`")?;
                match self.named.get(&name) {
                    Some(_) => {
                        let conds = self.named_copy(&name);
                        Some(Cond::Named(name, conds))
                    }
                    None => {
                        let hint = did_you_mean(&name, self.named.keys().map(String::as_str));
                        self.error(
                            value.loc,
                            format!("no condition named `{name}` in `conditions:`"),
                            hint,
                        );
                        None
                    }
                }
            }
            "time" => {
                alone(self, "time");
                let mut problems = Vec::new();
                let cond = time::compile(value, &mut problems);
                for (loc, message, hint) in problems {
                    self.error(loc, message, hint);
                }
                cond.map(Cond::Time)
            }
            "template" => {
                alone(self, "template");
                let source = self.string(value, "`template`")?;
                let text = self.template(value, &source)?;
                Some(Cond::Template { source, text })
            }
            "jsonpath" => {
                let source = self.string(value, "`jsonpath`")?;
                let query = match jsonpath_rust::parser::parse_json_path(&source) {
                    Ok(q) => q,
                    Err(e) => {
                        self.error(value.loc, format!("bad JSONPath: {e}"), None);
                        return None;
                    }
                };
                // Without operators: true when the query finds something.
                let checks = match entries.len() {
                    1 => Vec::new(),
                    _ => self.operators(&entries[1..], node)?,
                };
                Some(Cond::JsonPath {
                    source,
                    query,
                    checks,
                })
            }
            _ => {
                alone(self, "a path condition");
                if !valid_path(&key) {
                    self.error(first.loc, format!("`{key}` is not a condition: expected a path like `event.content`, or all, any, not, use, template, jsonpath, time"), did_you_mean(&key, ["all", "any", "not", "use", "template", "jsonpath", "time"]));
                    return None;
                }
                let checks = match &value.kind {
                    Kind::Map(ops) => self.operators(ops, value)?,
                    _ => vec![self.check(Op::Equals, value, false)?],
                };
                Some(Cond::Path {
                    segments: key.split('.').map(str::to_owned).collect(),
                    path: key,
                    checks,
                })
            }
        }
    }

    /// Named conditions are stored compiled; a `use` gets its own copy.
    fn named_copy(&mut self, name: &str) -> Vec<Cond> {
        self.named.get(name).cloned().unwrap_or_default()
    }

    /// An operator map (`{ contains: x, case: insensitive }`).
    fn operators(&mut self, entries: &[(Node, Node)], at: &Node) -> Option<Vec<Check>> {
        self.check_keys(entries, operator_keys(), "the operators");
        let insensitive = match entries.iter().find(|(k, _)| k.as_str() == Some("case")) {
            None => false,
            Some((_, v)) => match v.as_str() {
                Some("insensitive") => true,
                Some("sensitive") => false,
                _ => {
                    self.error(v.loc, "`case` must be `insensitive` or `sensitive`", None);
                    return None;
                }
            },
        };
        let mut checks = Vec::new();
        let mut ok = true;
        for (k, v) in entries {
            let key = k.key_text();
            if key == "case" {
                continue;
            }
            let Some(op) = Op::ALL.iter().find(|(n, _)| *n == key).map(|(_, op)| *op) else {
                ok = false; // reported by check_keys
                continue;
            };
            match self.check(op, v, insensitive) {
                Some(c) => checks.push(c),
                None => ok = false,
            }
        }
        if ok && checks.is_empty() {
            self.error(
                at.loc,
                "no operator given",
                Some("e.g. `{ contains: refund }`".into()),
            );
            return None;
        }
        ok.then_some(checks)
    }

    fn check(&mut self, op: Op, node: &Node, insensitive: bool) -> Option<Check> {
        let mut check = Check {
            op,
            operand: Value::Null,
            insensitive,
            regex: None,
            glob: None,
            nested: Vec::new(),
        };
        if op == Op::Length {
            let Kind::Map(entries) = &node.kind else {
                check.nested = vec![self.check(Op::Equals, node, false)?];
                return Some(check);
            };
            check.nested = self.operators(entries, node)?;
            return Some(check);
        }
        check.operand = self.operand(node)?;
        match op {
            Op::In | Op::NotIn if !check.operand.is_array() => {
                self.error(node.loc, format!("`{}` needs a list", op.name()), None);
                return None;
            }
            Op::Exists if !check.operand.is_boolean() => {
                self.error(node.loc, "`exists` takes true or false", None);
                return None;
            }
            Op::Matches => {
                let Some(pattern) = check.operand.as_str() else {
                    self.error(
                        node.loc,
                        "`matches` needs a regular expression string",
                        None,
                    );
                    return None;
                };
                match Pattern::located(pattern, insensitive) {
                    Ok(p) => check.regex = Some(p),
                    Err(e) => {
                        let loc = self.inside(node, pattern, e.offset);
                        self.error(loc, format!("bad regular expression: {}", e.message), None);
                        return None;
                    }
                }
            }
            Op::Glob => {
                let Some(pattern) = check.operand.as_str() else {
                    self.error(node.loc, "`glob` needs a pattern string", None);
                    return None;
                };
                match globset::GlobBuilder::new(pattern)
                    .case_insensitive(insensitive)
                    .literal_separator(false)
                    .build()
                {
                    // `compile_matcher` panics when the regex globset made from
                    // the glob does not compile (alternates nested too deep, too
                    // large: found with `fuzz/`), so compile it the same way first.
                    Ok(g) => match regex::bytes::RegexBuilder::new(g.regex())
                        .dot_matches_new_line(true)
                        .build()
                    {
                        Ok(_) => check.glob = Some(g.compile_matcher()),
                        Err(e) => {
                            let msg = e.to_string();
                            let msg = msg.lines().last().unwrap_or_default().trim();
                            let msg = msg.strip_prefix("error: ").unwrap_or(msg);
                            self.error(node.loc, format!("bad glob: too complex ({msg})"), None);
                            return None;
                        }
                    },
                    Err(e) => {
                        self.error(node.loc, format!("bad glob: {e}"), None);
                        return None;
                    }
                }
            }
            Op::Gt | Op::Gte | Op::Lt | Op::Lte
                if !(check.operand.is_number() || check.operand.is_string()) =>
            {
                self.error(
                    node.loc,
                    format!("`{}` compares with a number or a string", op.name()),
                    None,
                );
                return None;
            }
            _ => {}
        }
        Some(check)
    }

    /// A literal, or `{ var: NAME }` resolved now (vars are constants).
    fn operand(&mut self, node: &Node) -> Option<Value> {
        if let Kind::Map(entries) = &node.kind {
            if let [(k, v)] = entries.as_slice() {
                if k.as_str() == Some("var") {
                    let name = self.string(v, "`var`")?;
                    let vars = self.vars.clone();
                    return match vars.get(&name) {
                        Some(val) => Some(val.clone()),
                        None => {
                            let known = vars
                                .as_object()
                                .map(|m| m.keys().cloned().collect::<Vec<_>>())
                                .unwrap_or_default();
                            let hint = did_you_mean(&name, known.iter().map(String::as_str));
                            self.error(v.loc, format!("no var named `{name}` in `vars:`"), hint);
                            None
                        }
                    };
                }
            }
        }
        Some(node.to_json())
    }

    fn actions(&mut self, node: &Node, what: &'static str) -> Vec<Action> {
        let outer = std::mem::replace(&mut self.list, what);
        let out = self.action_list(node, what);
        self.list = outer;
        out
    }

    fn action_list(&mut self, node: &Node, what: &str) -> Vec<Action> {
        match &node.kind {
            Kind::Seq(items) => {
                self.unique_bindings(items);
                items.iter().filter_map(|n| self.action(n)).collect()
            }
            Kind::Null => Vec::new(),
            _ => {
                self.error(
                    node.loc,
                    format!(
                        "{what} must be a list of actions, found {}",
                        node.describe()
                    ),
                    None,
                );
                Vec::new()
            }
        }
    }

    /// `as:` names are unique in one list: a later step reading `answer`
    /// must not depend on which of two steps bound it last.
    fn unique_bindings(&mut self, items: &[Node]) {
        let mut seen: HashMap<String, Loc> = HashMap::new();
        for item in items {
            let Kind::Map(entries) = &item.kind else {
                continue;
            };
            let Some(bind) = field(entries, "as") else {
                continue;
            };
            let Some(name) = bind.as_str() else { continue };
            match seen.get(name) {
                Some(first) => {
                    let msg = format!(
                        "`as: {name}` is already bound at line {} of this list",
                        first.line
                    );
                    self.error(bind.loc, msg, Some("give each `as:` its own name".into()));
                }
                None => {
                    seen.insert(name.to_owned(), bind.loc);
                }
            }
        }
    }

    fn action(&mut self, node: &Node) -> Option<Action> {
        let entries = self.map(node, "an action")?;
        let names: Vec<&str> = actions::names().collect();
        let mut found: Option<(&Node, &Node)> = None;
        let mut when = Vec::new();
        let mut bind = None;
        let mut on_error = OnError::Fail;
        let mut ok = true;
        // A misspelt action name, with the action it probably means.
        let mut guessed: Option<(&str, &Node)> = None;
        for (k, v) in entries {
            let key = k.key_text();
            match key.as_str() {
                "if" => when = self.conditions(v),
                "as" => bind = self.string(v, "`as`"),
                "on_error" => match v.as_str() {
                    Some("fail") => on_error = OnError::Fail,
                    Some("continue") => on_error = OnError::Continue,
                    _ => {
                        self.error(
                            v.loc,
                            "`on_error` on an action is `fail` or `continue`",
                            None,
                        );
                        ok = false;
                    }
                },
                _ if names.contains(&key.as_str()) => {
                    if let Some((prev, _)) = found {
                        let msg = format!(
                            "one action per list item: `{}` and `{key}` are both here",
                            prev.key_text()
                        );
                        self.error(k.loc, msg, Some("start a new item with `- `".into()));
                        ok = false;
                    }
                    found = Some((k, v));
                }
                _ => {
                    let known = names
                        .iter()
                        .copied()
                        .chain(ACTION_MODIFIERS.iter().copied());
                    let guess = closest(&key, known);
                    if let Some(action) = guess.filter(|g| names.contains(g)) {
                        guessed = Some((action, v));
                    }
                    self.error(
                        k.loc,
                        format!("unknown action `{key}`"),
                        guess.map(|g| format!("did you mean `{g}`?")),
                    );
                    ok = false;
                }
            }
        }
        let Some((name_node, args_node)) = found else {
            // The arguments of a misspelt action are checked against the
            // action it probably means, so their own typos show in this run.
            if let Some((action, args)) = guessed {
                if let (Some(spec), Kind::Map(entries)) = (actions::find(action), &args.kind) {
                    self.check_keys(entries, spec.arg_keys(), &format!("`{action}`"));
                }
            }
            if ok {
                self.error(
                    node.loc,
                    "no action in this item",
                    Some(format!("one of: {}", names.join(", "))),
                );
            }
            return None;
        };
        let spec = actions::find(name_node.as_str()?)?;
        if spec.kind == actions::Kind::Pause {
            let (args, pause) = self.pause(spec, name_node, args_node)?;
            return ok.then(|| Action {
                name: spec.name,
                args,
                when,
                bind,
                on_error,
                loc: name_node.loc,
                pause: Some(Box::new(pause)),
            });
        }
        let (name, shorthand) = (spec.name, spec.shorthand);
        let allowed = spec.arg_keys();
        let mut args: Vec<(String, Arg)> = Vec::new();
        // Arguments that were there but did not compile (already reported).
        let mut broken: Vec<String> = Vec::new();
        match &args_node.kind {
            Kind::Null => {}
            Kind::Map(entries) => {
                self.check_keys(entries, allowed, &format!("`{name}`"));
                for (k, v) in entries {
                    match self.arg(v) {
                        Some(a) => args.push((k.key_text(), a)),
                        None => broken.push(k.key_text()),
                    }
                }
            }
            _ => match shorthand {
                Some(arg) => match self.arg(args_node) {
                    Some(a) => args.push((arg.to_owned(), a)),
                    None => broken.push(arg.to_owned()),
                },
                None => {
                    let msg = format!(
                        "`{name}` needs a mapping of arguments ({})",
                        allowed.join(", ")
                    );
                    self.error(args_node.loc, msg, None);
                    ok = false;
                }
            },
        }
        ok &= broken.is_empty();
        for req in spec.required() {
            if !args.iter().any(|(k, _)| k == req) && !broken.iter().any(|b| b == req) {
                self.error(
                    name_node.loc,
                    format!("`{name}` is missing its `{req}` argument"),
                    None,
                );
                ok = false;
            }
        }
        if !spec.one_of.is_empty() && !args.iter().any(|(k, _)| spec.one_of.contains(&k.as_str())) {
            let either: Vec<String> = spec.one_of.iter().map(|k| format!("`{k}`")).collect();
            self.error(
                name_node.loc,
                format!("`{name}` needs {}", either.join(" or ")),
                None,
            );
            ok = false;
        }
        ok &= self.check_literals(spec, &args, args_node);
        ok.then(|| Action {
            name,
            args,
            when,
            bind,
            on_error,
            loc: name_node.loc,
            pause: None,
        })
    }

    /// `wait_for`, `ask`, `wait`: their arguments, and the parts compiled
    /// into the rule (timeout, choices, `if`, `on_timeout`), all checked now.
    fn pause(
        &mut self,
        spec: &actions::ActionSpec,
        name_node: &Node,
        args_node: &Node,
    ) -> Option<(Vec<(String, Arg)>, Pause)> {
        let name = spec.name;
        let kind = match name {
            "wait_for" => PauseKind::WaitFor,
            "ask" => PauseKind::Ask,
            _ => PauseKind::Wait,
        };
        let before = self.errors.len();
        match self.list {
            "`on_timeout`" => self.error(
                name_node.loc,
                format!("`{name}` cannot be inside `on_timeout`: one level is enough"),
                Some("put what comes after the answer in the list after the first wait".into()),
            ),
            "`on_error`" => self.error(
                name_node.loc,
                format!("`{name}` cannot be inside `on_error`: the fallback ends the event"),
                None,
            ),
            _ => {}
        }
        // A shorthand (`wait: 5m`) is its one argument.
        let shorthand;
        let entries: &[(Node, Node)] = match (&args_node.kind, spec.shorthand) {
            (Kind::Map(entries), _) => {
                self.check_keys(entries, spec.arg_keys(), &format!("`{name}`"));
                entries
            }
            (_, Some(arg)) => {
                shorthand = [(
                    Node {
                        kind: Kind::Str(arg.to_owned()),
                        loc: args_node.loc,
                    },
                    args_node.clone(),
                )];
                &shorthand
            }
            _ => {
                let msg = format!(
                    "`{name}` needs a mapping of arguments ({})",
                    spec.arg_keys().join(", ")
                );
                self.error(args_node.loc, msg, None);
                return None;
            }
        };
        let has_room = !self.rule_on.is_empty()
            && self
                .rule_on
                .iter()
                .all(|on| ROOM_EVENTS.contains(&on.as_str()));
        let room_given = kind == PauseKind::WaitFor && field(entries, "chat").is_some();
        if !(has_room || room_given) {
            let on = self
                .rule_on
                .iter()
                .find(|on| !ROOM_EVENTS.contains(&on.as_str()))
                .cloned()
                .unwrap_or_default();
            let hint = match kind {
                PauseKind::WaitFor => "give it `chat:` (the room to wait in)".to_owned(),
                _ => format!("only rules on {} have a room", ROOM_EVENTS.join(", ")),
            };
            self.error(
                name_node.loc,
                format!("`{name}` waits in a room, and a rule on `{on}` has none"),
                Some(hint),
            );
        }
        // Only a message has a sender to wait for by default.
        if kind == PauseKind::WaitFor && field(entries, "from").is_none() {
            if let Some(on) = self.rule_on.iter().find(|on| *on != "message_created") {
                let msg = format!(
                    "`wait_for` without `from:` waits for the sender of the message, and a rule on `{on}` has none"
                );
                self.error(
                    name_node.loc,
                    msg,
                    Some("give `from:` (a handle or id)".into()),
                );
            }
        }
        let mut pause = Pause {
            kind,
            timeout: MAX_WAIT,
            answer_if: Vec::new(),
            choices: Vec::new(),
            on_timeout: Vec::new(),
        };
        let mut args = Vec::new();
        for (k, v) in entries {
            let key = k.key_text();
            match key.as_str() {
                "if" => pause.answer_if = self.conditions(v),
                "on_timeout" => pause.on_timeout = self.actions(v, "`on_timeout`"),
                "timeout" | "duration" => {
                    if let Some(d) = self.wait_duration(v, &key) {
                        pause.timeout = d;
                        args.push((key, Arg::Value(Value::String(format!("{}s", d.as_secs())))));
                    }
                }
                "choices" => {
                    if let Some(choices) = self.choices(v) {
                        let list = choices.iter().map(|c| Arg::Value(Value::String(c.clone())));
                        args.push((key, Arg::List(list.collect())));
                        pause.choices = choices;
                    }
                }
                _ if spec.arg_keys().contains(&key) => {
                    if let Some(a) = self.arg(v) {
                        args.push((key, a));
                    }
                }
                _ => {} // reported by check_keys
            }
        }
        for req in spec.required() {
            if field(entries, req).is_none() {
                self.error(
                    name_node.loc,
                    format!("`{name}` is missing its `{req}` argument"),
                    None,
                );
            }
        }
        (self.errors.len() == before).then_some((args, pause))
    }

    /// A pause's `timeout` (or `wait`'s duration): literal, at most [`MAX_WAIT`].
    fn wait_duration(&mut self, node: &Node, key: &str) -> Option<Duration> {
        let parsed = match &node.kind {
            Kind::Str(s) if s.contains("{{") => {
                let msg =
                    format!("`{key}` must be a literal duration (like `10m`), not a template");
                self.error(node.loc, msg, None);
                return None;
            }
            Kind::Str(s) => parse_duration(s).map(|d| (d, s.clone())),
            Kind::Int(i) => seconds(*i as f64).map(|d| (d, format!("{i}s"))),
            Kind::Float(f) => seconds(*f).map(|d| (d, format!("{f}s"))),
            _ => Err(format!(
                "must be a duration like `10m`, found {}",
                node.describe()
            )),
        };
        match parsed {
            Ok((d, _)) if d <= MAX_WAIT => Some(d),
            Ok((_, text)) => {
                let msg = format!(
                    "`{key}`: {text} is longer than a conversation may wait ({MAX_WAIT_DAYS}d)"
                );
                self.error(node.loc, msg, None);
                None
            }
            Err(e) => {
                self.error(
                    node.loc,
                    format!("`{key}`: {e}"),
                    Some("e.g. `30s`, `10m`, `1h`, `2d`".into()),
                );
                None
            }
        }
    }

    /// `ask`'s `choices`: literal strings, at least one, distinct ignoring case.
    fn choices(&mut self, node: &Node) -> Option<Vec<String>> {
        let Kind::Seq(items) = &node.kind else {
            let msg = format!(
                "`choices` must be a list of words, found {}",
                node.describe()
            );
            self.error(node.loc, msg, None);
            return None;
        };
        if items.is_empty() {
            self.error(node.loc, "`choices` must name at least one choice", None);
            return None;
        }
        let mut out: Vec<String> = Vec::new();
        let mut ok = true;
        for item in items {
            let choice = match &item.kind {
                Kind::Str(s) if s.contains("{{") => {
                    self.error(
                        item.loc,
                        "a choice must be literal text, not a template",
                        None,
                    );
                    ok = false;
                    continue;
                }
                Kind::Str(s) if !s.trim().is_empty() => s.trim().to_owned(),
                Kind::Int(i) => i.to_string(),
                _ => {
                    let msg = format!("a choice must be a word, found {}", item.describe());
                    self.error(item.loc, msg, None);
                    ok = false;
                    continue;
                }
            };
            if let Some(first) = out
                .iter()
                .find(|c| c.to_lowercase() == choice.to_lowercase())
            {
                let msg = format!(
                    "choice `{choice}` repeats `{first}` (choices are compared ignoring case)"
                );
                self.error(item.loc, msg, None);
                ok = false;
                continue;
            }
            out.push(choice);
        }
        ok.then_some(out)
    }

    /// Validates arguments whose value is known now (enums, durations).
    fn check_literals(
        &mut self,
        spec: &actions::ActionSpec,
        args: &[(String, Arg)],
        at: &Node,
    ) -> bool {
        let mut ok = true;
        for (k, check) in spec.literal_checks {
            let Some(value) = args
                .iter()
                .find(|(a, _)| a == k)
                .and_then(|(_, a)| literal(a))
            else {
                continue;
            };
            if let Err(e) = check(&value) {
                let node = arg_node(at, k).unwrap_or(at);
                self.error(inside(node, &e.at), e.message, None);
                ok = false;
            }
        }
        for (k, a) in args {
            if let Some(schema) = spec.arg_schema(k) {
                if !literal_fits(schema, a) {
                    let loc = arg_loc(at, k).unwrap_or(at.loc);
                    let msg = format!(
                        "`{k}` must be {}, found {}",
                        expected(schema).join(" or "),
                        found(a)
                    );
                    self.error(loc, msg, None);
                    ok = false;
                    continue;
                }
            }
            // A number where a duration goes is seconds; bounded like text.
            if let Arg::Value(Value::Number(n)) = a {
                let bad = match spec.durations.contains(&k.as_str()) {
                    true => match n.as_f64() {
                        Some(s) => seconds(s).err(),
                        None => Some(format!("{n} is not a number of seconds")),
                    },
                    false => None,
                };
                if let Some(e) = bad {
                    let loc = arg_loc(at, k).unwrap_or(at.loc);
                    self.error(loc, format!("`{k}`: {e}"), None);
                    ok = false;
                }
                continue;
            }
            let Arg::Text(t) = a else { continue };
            let Some(lit) = t.literal() else { continue };
            let choices = spec.choices.iter().find(|(c, _)| c == k);
            let bad = match choices {
                Some((_, allowed)) if !allowed.contains(&lit) => {
                    Some(format!("`{k}` must be one of {}", allowed.join(", ")))
                }
                Some(_) => None,
                None if spec.durations.contains(&k.as_str()) => {
                    parse_duration(lit).err().map(|e| format!("`{k}`: {e}"))
                }
                None => None,
            };
            if let Some(msg) = bad {
                let loc = arg_loc(at, k).unwrap_or(at.loc);
                self.error(loc, msg, None);
                ok = false;
            }
        }
        ok
    }

    fn arg(&mut self, node: &Node) -> Option<Arg> {
        match &node.kind {
            Kind::Str(s) => self.template(node, s).map(Arg::Text),
            Kind::Seq(items) => {
                let list: Option<Vec<Arg>> = items.iter().map(|n| self.arg(n)).collect();
                list.map(Arg::List)
            }
            Kind::Map(entries) => {
                let map: Option<Vec<(String, Arg)>> = entries
                    .iter()
                    .map(|(k, v)| self.arg(v).map(|a| (k.key_text(), a)))
                    .collect();
                map.map(Arg::Map)
            }
            _ => Some(Arg::Value(node.to_json())),
        }
    }
}

/// Whether an argument as written can be what its schema (from the action's
/// argument type) says, as the renderer reads it: templates can render to
/// anything; a scalar may stand where text goes (it is written as text),
/// text where a list goes (a list of one), text holding a number or a
/// boolean where one goes. Only a literal the action would refuse at run
/// time fails.
fn literal_fits(schema: &Value, arg: &Arg) -> bool {
    let Value::Object(m) = schema else {
        return schema != &Value::Bool(false);
    };
    if let Some(Value::Array(alternatives)) = m.get("anyOf").or_else(|| m.get("oneOf")) {
        return alternatives.iter().any(|s| literal_fits(s, arg));
    }
    let types: Vec<&str> = match m.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return true,
    };
    let has = |t: &str| types.contains(&t);
    match arg {
        Arg::Text(text) => {
            let Some(s) = text.literal() else {
                return true;
            };
            let pattern_ok = || {
                m.get("pattern")
                    .and_then(Value::as_str)
                    .and_then(|p| regex::Regex::new(p).ok())
                    .is_none_or(|re| re.is_match(s))
            };
            (has("string") && pattern_ok())
                || has("array")
                || (has("integer") && s.trim().parse::<i64>().is_ok())
                || (has("number") && s.trim().parse::<f64>().is_ok())
                || (has("boolean") && (s == "true" || s == "false"))
        }
        Arg::Value(Value::Null) => true,
        Arg::Value(Value::Bool(_)) => has("boolean") || has("string"),
        Arg::Value(Value::Number(n)) => {
            has("number") || has("string") || (has("integer") && (n.is_i64() || n.is_u64()))
        }
        Arg::Value(_) => true,
        Arg::List(items) => {
            has("array")
                && m.get("items")
                    .is_none_or(|item| items.iter().all(|a| literal_fits(item, a)))
        }
        Arg::Map(_) => has("object"),
    }
}

/// What a schema accepts, in words ("a whole number", "true or false").
fn expected(schema: &Value) -> Vec<&'static str> {
    let mut out = Vec::new();
    let Value::Object(m) = schema else {
        return out;
    };
    if let Some(Value::Array(alternatives)) = m.get("anyOf").or_else(|| m.get("oneOf")) {
        for s in alternatives {
            // A string branch with a pattern is the text form of another branch.
            let patterned = s.get("pattern").is_some();
            for word in expected(s) {
                if !(patterned || out.contains(&word)) {
                    out.push(word);
                }
            }
        }
        return out;
    }
    let types: Vec<&str> = match m.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    for t in types {
        out.push(match t {
            "integer" => "a whole number",
            "number" => "a number",
            "boolean" => "true or false",
            "array" => "a list",
            "object" => "a mapping",
            "string" => "text",
            _ => continue,
        });
    }
    out
}

/// An argument as written, in words.
fn found(arg: &Arg) -> String {
    match arg {
        Arg::Text(t) => format!("the string {:?}", t.literal().unwrap_or_default()),
        Arg::Value(Value::Bool(_)) => "a boolean".into(),
        Arg::Value(Value::Number(n)) => format!("the number {n}"),
        Arg::Value(_) => "nothing".into(),
        Arg::List(_) => "a list".into(),
        Arg::Map(_) => "a mapping".into(),
    }
}

/// A stable hash of a rule's source with its file's shared parts.
fn fingerprint(shared: &str, rule: &Node) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    shared.hash(&mut h);
    rule.to_json().to_string().hash(&mut h);
    h.finish()
}

/// A hash of a workflow file's text ([`Rule::source_hash`]): FNV-1a, the
/// same across builds and Rust versions, as it is persisted.
pub fn source_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The value under `key` in a mapping's entries.
fn field<'n>(entries: &'n [(Node, Node)], key: &str) -> Option<&'n Node> {
    entries
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

/// The node of argument `key` (the node itself for a shorthand value).
fn arg_node<'n>(at: &'n Node, key: &str) -> Option<&'n Node> {
    match &at.kind {
        Kind::Map(entries) => field(entries, key),
        _ => Some(at),
    }
}

/// Where `path` (keys and list indexes) leads inside `node`: as deep as it
/// can be followed, so an error points at the innermost part that exists.
fn inside(node: &Node, path: &[String]) -> Loc {
    let mut here = node;
    for step in path {
        let next = match &here.kind {
            Kind::Map(entries) => field(entries, step),
            Kind::Seq(items) => step.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(n) => here = n,
            None => break,
        }
    }
    here.loc
}

/// An argument's value when no part of it is a template.
fn literal(arg: &Arg) -> Option<Value> {
    match arg {
        Arg::Text(t) => t.literal().map(|s| Value::String(s.to_owned())),
        Arg::Value(v) => Some(v.clone()),
        Arg::List(items) => items
            .iter()
            .map(literal)
            .collect::<Option<_>>()
            .map(Value::Array),
        Arg::Map(entries) => entries
            .iter()
            .map(|(k, a)| literal(a).map(|v| (k.clone(), v)))
            .collect::<Option<Map<_, _>>>()
            .map(Value::Object),
    }
}

fn arg_loc(at: &Node, key: &str) -> Option<Loc> {
    match &at.kind {
        Kind::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v.loc),
        _ => Some(at.loc),
    }
}

/// A path: identifiers separated by dots (list indexes allowed after the first).
fn valid_path(s: &str) -> bool {
    let mut parts = s.split('.');
    let first_ok = parts.next().is_some_and(|p| {
        p.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    first_ok
        && parts.all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use crate::load_str;

    fn with_condition(cond: &str) -> String {
        format!("version: 1\nrules:\n  - name: r\n    on: message_created\n    if:\n      - {cond}\n    do:\n      - reply: hi\n")
    }

    #[test]
    fn a_glob_too_complex_for_its_regex_is_an_error_not_a_panic() {
        // globset accepts these but panicked compiling its regex (found with fuzz/).
        let nested = format!("{}{}", "{a,".repeat(200), "}".repeat(200));
        let large = "?".repeat(400_000);
        for glob in [nested, large] {
            let text = with_condition(&format!("event.content: {{ glob: '{glob}' }}"));
            let e = load_str("g.yaml", &text).unwrap_err().to_string();
            assert!(
                e.contains("bad glob: too complex"),
                "{}",
                &e[..e.len().min(300)]
            );
        }
        let fine = with_condition("event.content: { glob: '{a,{b,c}}*' }");
        assert!(load_str("g.yaml", &fine).is_ok());
    }
}
