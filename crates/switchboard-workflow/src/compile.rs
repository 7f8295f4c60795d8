//! YAML nodes → compiled rules. Every key is checked against the schema's
//! list (with "did you mean"), every regex, glob, JSONPath, duration and
//! template is compiled here, and every problem becomes a [`LoadError`] at
//! the exact node, so a ruleset that compiles cannot fail on its own syntax
//! later.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{Map, Value};

use super::actions;
use super::duration::{parse_duration, seconds};
use super::duration::{MAX_WAIT, MAX_WAIT_DAYS};
use super::error::{closest, did_you_mean, LoadError};
use super::include::{self, Names, Source};
use super::pattern::Pattern;
use super::rule::{
    Action, Arg, Call, Check, Cond, OnError, Op, Pause, PauseKind, Rule, Schedule, Throttle,
    Webhook, WebhookAuth, DEFAULT_SIGNATURE_HEADER,
};
use super::schema::{self, keys_of, ACTION_MODIFIERS, CALL_KEYS, EVENT_TYPES, ROOM_EVENTS};
use super::secrets::{self, SecretDecl, SecretSource};
use super::template::Templates;
use super::time;
use super::yaml::{self, Kind, Loc, Node};

/// How deep calls may nest (a list calling a list calling ...): recursion is
/// refused at load, and this bounds what a chain of lists costs at run time.
pub const MAX_CALL_DEPTH: usize = 16;

/// Compiles one parsed file on its own (an `include:` in it names no file).
/// Errors go to `errors`; rules that compiled cleanly are returned (the
/// caller discards everything if any error exists).
pub fn compile_file(
    file: &Path,
    text: &str,
    root: &Node,
    templates: &mut Templates,
    errors: &mut Vec<LoadError>,
) -> FileOutput {
    let sources = [Source {
        path: file,
        rel: file.to_path_buf(),
        text,
        lines: text.lines().collect(),
        root: Some(root.clone()),
    }];
    let names = include::names(&sources, Path::new(""), 0, &mut HashSet::new(), errors);
    let unit = Unit {
        sources: &sources,
        of: 0,
        names: &names,
    };
    compile_unit(&unit, root, templates, errors)
}

/// One file to compile with the names it sees (its own and its includes').
pub struct Unit<'a> {
    /// Every file of the load (names point into them by index).
    pub sources: &'a [Source<'a>],
    /// The file compiled.
    pub of: usize,
    /// The names it sees.
    pub names: &'a Names<'a>,
}

/// Compiles `unit`'s file, whose tree is `root`: its rules, or nothing for a
/// library (which is still checked).
pub fn compile_unit(
    unit: &Unit<'_>,
    root: &Node,
    templates: &mut Templates,
    errors: &mut Vec<LoadError>,
) -> FileOutput {
    let stem = file_stem(unit.sources[unit.of].path);
    let mut c = Compiler {
        sources: unit.sources,
        cur: unit.of,
        top: unit.of,
        names: unit.names,
        lists: HashMap::new(),
        calling: Vec::new(),
        deepest: 0,
        errors,
        templates,
        vars: Arc::new(Value::Object(Map::new())),
        named: HashMap::new(),
        shared_source: String::new(),
        timezone: chrono_tz::UTC,
        secrets: Vec::new(),
        rule_on: Vec::new(),
        list: "`do`".to_owned(),
        webhooks: Vec::new(),
    };
    let rules = c.file_root(root, &stem);
    FileOutput {
        rules,
        webhooks: c.webhooks,
        secrets: c.secrets,
    }
}

/// What one file defines.
#[derive(Debug, Default)]
pub struct FileOutput {
    /// Its rules.
    pub rules: Vec<Rule>,
    /// Its incoming webhooks, in file order.
    pub webhooks: Vec<Webhook>,
    /// The `secrets:` it sees (its own and its includes').
    pub secrets: Vec<SecretDecl>,
}

/// `workflows/triage.yaml` → `triage`.
pub fn file_stem(file: &Path) -> String {
    file.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A named action list once compiled: its actions and how deep calls nest
/// in it (1 with no calls); `None` when it did not compile (reported once).
type Compiled = Option<(Arc<Vec<Action>>, usize)>;

struct Compiler<'a> {
    /// Every file of the load.
    sources: &'a [Source<'a>],
    /// The file whose nodes are being compiled (a library's, inside a call).
    cur: usize,
    /// The file being compiled (its rules).
    top: usize,
    /// The names the file sees.
    names: &'a Names<'a>,
    /// Named action lists compiled so far.
    lists: HashMap<String, Compiled>,
    /// The lists being compiled, outermost first (to refuse recursion).
    calling: Vec<String>,
    /// The deepest call nesting in the list being compiled.
    deepest: usize,
    errors: &'a mut Vec<LoadError>,
    templates: &'a mut Templates,
    vars: Arc<Value>,
    named: HashMap<String, Vec<Cond>>,
    /// vars, conditions and defaults as written: part of every rule's fingerprint.
    shared_source: String,
    /// The file's `timezone` (UTC when it has none).
    timezone: chrono_tz::Tz,
    /// The file's `secrets:` (templates may name only these).
    secrets: Vec<SecretDecl>,
    /// The event types of the rule being compiled (may it pause: has it a room?).
    rule_on: Vec<String>,
    /// The action list being compiled (`` `do` ``, `` `on_timeout` ``,
    /// `` `actions.NAME` ``, ...).
    list: String,
    /// The file's `webhooks:`.
    webhooks: Vec<Webhook>,
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
fn library_keys() -> &'static [String] {
    static K: OnceLock<Vec<String>> = OnceLock::new();
    key_list::<schema::LibraryFile>(&K)
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
fn webhook_keys() -> &'static [String] {
    static K: OnceLock<Vec<String>> = OnceLock::new();
    key_list::<schema::Webhook>(&K)
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
        let e = self.sources[self.cur].error(loc, message.into(), hint);
        self.errors.push(e);
    }

    /// Runs `f` on nodes of the file `origin` (errors point there).
    fn within<R>(&mut self, origin: usize, f: impl FnOnce(&mut Self) -> R) -> R {
        let outer = std::mem::replace(&mut self.cur, origin);
        let out = f(self);
        self.cur = outer;
        out
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
        let get = |k: &str| field(entries, k);
        let library = match get("kind") {
            None => false,
            Some(k) => match k.as_str() {
                Some("workflow") => false,
                Some("library") => true,
                _ => {
                    self.error(k.loc, "`kind` is `workflow` or `library`", None);
                    false
                }
            },
        };
        match library {
            true => {
                let without_rules: Vec<(Node, Node)> = entries
                    .iter()
                    .filter(|(k, _)| k.as_str() != Some("rules"))
                    .cloned()
                    .collect();
                self.check_keys(&without_rules, library_keys(), "a library");
                if let Some((k, _)) = entries.iter().find(|(k, _)| k.as_str() == Some("rules")) {
                    self.error(
                        k.loc,
                        "a library (`kind: library`) has no `rules`",
                        Some("put rules in a workflow that includes this file".into()),
                    );
                }
            }
            false => self.check_keys(entries, file_keys(), "the workflow file"),
        }
        // Everything a rule sees beside itself, includes too: an edit to an
        // included file changes the rules of the files including it.
        let mut shared: Vec<Value> = include::MERGED
            .iter()
            .map(|section| {
                let names = self.names.section(section).iter();
                Value::Array(
                    names
                        .map(|(n, e)| serde_json::json!([n, e.value.to_json()]))
                        .collect(),
                )
            })
            .collect();
        shared.extend(
            ["defaults", "timezone"]
                .iter()
                .map(|k| get(k).map(Node::to_json).unwrap_or(Value::Null)),
        );
        self.shared_source = Value::Array(shared).to_string();
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
        for section in include::MERGED {
            if let Some(n) = get(section) {
                self.map(n, &format!("`{section}`"));
            }
        }
        let names = self.names;
        // Before anything with templates: they are checked against these names.
        for (name, e) in names.section("secrets") {
            self.within(e.origin, |c| c.secret_decl(name, e.key, e.value));
        }
        let vars: Map<String, Value> = names
            .section("vars")
            .iter()
            .map(|(n, e)| (n.clone(), e.value.to_json()))
            .collect();
        self.vars = Arc::new(Value::Object(vars));
        for (name, e) in names.section("conditions") {
            let list = self.within(e.origin, |c| c.conditions(e.value));
            self.named.insert(name.clone(), list);
        }
        // Every list is checked, called or not.
        for (name, _) in names.section("actions") {
            self.action_list(name);
        }
        if library {
            return Vec::new();
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
        if let Some(hooks) = get("webhooks") {
            if let Some(entries) = self.map(hooks, "`webhooks`") {
                for (k, v) in entries {
                    if let Some(hook) = self.webhook(k, v) {
                        self.webhooks.push(hook);
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
        let webhook = self.rule_webhook(node, &on, get("webhook"));
        let mut conditions = get("if").map(|n| self.conditions(n)).unwrap_or_default();
        if let Some((name, _)) = &webhook {
            // A hook's rules see only its deliveries: a condition, so traces
            // (`explain`, `--explain`) say why another hook's rule did not run.
            conditions.insert(0, hook_condition(name));
        }
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
            file: self.sources[self.top].path.to_owned(),
            loc: name_node.map_or(node.loc, |n| n.loc),
            description,
            on,
            schedule,
            webhook_loc: webhook.as_ref().map(|(_, loc)| *loc),
            webhook: webhook.map(|(name, _)| name),
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
            source_hash: source_hash(self.sources[self.top].text),
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

    /// A rule's `webhook:`, with where it is: required with `on: webhook`,
    /// refused without. Whether the hook exists is checked across files.
    fn rule_webhook(
        &mut self,
        rule: &Node,
        on: &[String],
        webhook: Option<&Node>,
    ) -> Option<(String, Loc)> {
        let listens = on.iter().any(|o| o == "webhook");
        match (listens, webhook) {
            (true, Some(n)) => self.string(n, "`webhook`").map(|name| (name, n.loc)),
            (true, None) => {
                self.error(
                    rule.loc,
                    "`on: webhook` needs `webhook: NAME` (a hook under `webhooks:`)",
                    None,
                );
                None
            }
            (false, Some(n)) => {
                self.error(n.loc, "`webhook` only applies to `on: webhook`", None);
                None
            }
            (false, None) => None,
        }
    }

    /// One entry of `webhooks:`.
    fn webhook(&mut self, key: &Node, node: &Node) -> Option<Webhook> {
        let name = key.key_text();
        let mut ok = true;
        if !valid_hook_name(&name) {
            self.error(
                key.loc,
                format!("webhook name `{name}` cannot be a URL path segment"),
                Some("use letters, digits, `-` and `_`".into()),
            );
            ok = false;
        }
        let entries = self.map(node, &format!("webhook `{name}`"))?;
        self.check_keys(entries, webhook_keys(), &format!("webhook `{name}`"));
        let get = |k: &str| field(entries, k);
        let secret = match get("secret") {
            Some(n) => self.secret_source(n),
            None => {
                self.error(
                    key.loc,
                    format!("webhook `{name}` has no `secret`"),
                    Some("add `secret: { env: NAME }` or `secret: { file: PATH }`".into()),
                );
                None
            }
        };
        let auth = match get("auth") {
            None => Some(WebhookAuth::HmacSha256),
            Some(n) => {
                let text = self.string(n, "`auth`")?;
                let found = WebhookAuth::ALL
                    .iter()
                    .find(|(k, _)| *k == text)
                    .map(|(_, a)| *a);
                if found.is_none() {
                    let names: Vec<&str> = WebhookAuth::ALL.iter().map(|(k, _)| *k).collect();
                    self.error(
                        n.loc,
                        format!("`auth` must be one of {}", names.join(", ")),
                        did_you_mean(&text, names.iter().copied()),
                    );
                }
                found
            }
        };
        let signature_header = match get("signature_header") {
            None => Some(DEFAULT_SIGNATURE_HEADER.to_owned()),
            Some(n) => {
                let header = self.string(n, "`signature_header`")?;
                if auth == Some(WebhookAuth::Token) {
                    self.error(
                        n.loc,
                        "`signature_header` only applies to `auth: hmac-sha256`",
                        None,
                    );
                    ok = false;
                }
                if !valid_header_name(&header) {
                    self.error(
                        n.loc,
                        format!("`signature_header` `{header}` is not an HTTP header name"),
                        None,
                    );
                    ok = false;
                }
                Some(header.to_ascii_lowercase())
            }
        };
        if !ok {
            return None;
        }
        Some(Webhook {
            name,
            secret: secret?,
            auth: auth?,
            signature_header: signature_header?,
            file: self.sources[self.cur].path.to_owned(),
            loc: key.loc,
        })
    }

    /// `{ env: NAME }` or `{ file: PATH }`.
    fn secret_source(&mut self, node: &Node) -> Option<SecretSource> {
        let source = match &node.kind {
            Kind::Map(entries) => match entries.as_slice() {
                [(k, v)] => match (k.as_str(), v.as_str()) {
                    (Some("env"), Some(name)) if !name.is_empty() => {
                        Some(SecretSource::Env(name.to_owned()))
                    }
                    (Some("file"), Some(path)) if !path.is_empty() => {
                        Some(SecretSource::File(path.into()))
                    }
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        };
        if source.is_none() {
            self.error(
                node.loc,
                format!(
                    "`secret` is `{{ env: NAME }}` or `{{ file: PATH }}`, found {}",
                    node.describe()
                ),
                Some("the secret's value itself never goes in a workflow file".into()),
            );
        }
        source
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
        let text = match self.templates.compile_located(source) {
            Ok(t) => t,
            Err(errors) => {
                for e in errors {
                    let loc = self.inside(node, source, e.offset);
                    let message = match e.message.starts_with("unknown ") {
                        true => e.message,
                        false => format!("template error: {}", e.message),
                    };
                    self.error(loc, message, e.hint);
                }
                return None;
            }
        };
        let names = match secrets::referenced(source) {
            Ok(names) => names,
            Err(e) => {
                self.error(node.loc, e, None);
                return None;
            }
        };
        let mut ok = true;
        for name in names {
            if !self.secrets.iter().any(|d| d.name == name) {
                let hint = did_you_mean(&name, self.secrets.iter().map(|d| d.name.as_str()));
                self.error(
                    node.loc,
                    format!("no secret named `{name}` in `secrets:`"),
                    hint.or_else(|| {
                        Some("declare it: `secrets: { NAME: { env: VARIABLE } }`".into())
                    }),
                );
                ok = false;
            }
        }
        ok.then_some(text)
    }

    /// One `secrets:` entry (of this file or a library it includes):
    /// name → `{ env: NAME }` or `{ file: PATH }`, relative to its file.
    fn secret_decl(&mut self, name: &str, k: &Node, v: &Node) {
        let file = self.sources[self.cur].path;
        let dir = file.parent().unwrap_or(Path::new("")).to_owned();
        if !valid_name(name) {
            self.error(
                k.loc,
                format!("`{name}` is not a secret name: letters, digits and `_`, not starting with a digit"),
                None,
            );
            return;
        }
        let source = match serde_json::from_value::<SecretSource>(v.to_json()) {
            Ok(SecretSource::Env(var)) if var.is_empty() => None,
            Ok(SecretSource::File(path)) if path.as_os_str().is_empty() => None,
            Ok(source) => Some(source),
            Err(_) => None,
        };
        let Some(source) = source else {
            self.error(
                v.loc,
                format!(
                    "secret `{name}` must be `{{ env: NAME }}` or `{{ file: PATH }}`, found {}",
                    v.describe()
                ),
                None,
            );
            return;
        };
        let source_line = (v.loc.line > 0)
            .then(|| {
                self.sources[self.cur]
                    .lines
                    .get(v.loc.line as usize - 1)
                    .map(|l| l.to_string())
            })
            .flatten();
        self.secrets.push(SecretDecl {
            name: name.to_owned(),
            source: source.relative_to(&dir),
            file: file.to_owned(),
            loc: v.loc,
            source_line,
        });
    }

    /// Where byte `offset` of `value` is, when `node` is the string scalar
    /// holding it (a value from `vars` is pointed at where it is used).
    fn inside(&self, node: &Node, value: &str, offset: Option<usize>) -> Loc {
        match offset {
            Some(offset) if node.as_str() == Some(value) => {
                yaml::position_in_scalar(&self.sources[self.cur].lines, node.loc, value, offset)
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

    fn actions(&mut self, node: &Node, what: &str) -> Vec<Action> {
        let outer = std::mem::replace(&mut self.list, what.to_owned());
        let out = self.action_items(node, what);
        self.list = outer;
        out
    }

    fn action_items(&mut self, node: &Node, what: &str) -> Vec<Action> {
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
        let mut call: Option<(&Node, &Node)> = None;
        let mut with: Option<(&Node, &Node)> = None;
        let mut bind_key: Option<&Node> = None;
        for (k, v) in entries {
            let key = k.key_text();
            match key.as_str() {
                "if" => when = self.conditions(v),
                "as" => {
                    bind_key = Some(k);
                    bind = self.string(v, "`as`");
                }
                "call" => call = Some((k, v)),
                "with" => with = Some((k, v)),
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
                        .chain(ACTION_MODIFIERS.iter().copied())
                        .chain(CALL_KEYS.iter().copied());
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
        if let Some((call_key, call_value)) = call {
            if let Some((prev, _)) = found {
                let msg = format!(
                    "one action per list item: `{}` and `call` are both here",
                    prev.key_text()
                );
                self.error(call_key.loc, msg, Some("start a new item with `- `".into()));
                return None;
            }
            if let Some(k) = bind_key {
                self.error(
                    k.loc,
                    "`as` does not apply to a `call` (a list has no single result)",
                    Some("bind results with `as:` on the actions inside the list".into()),
                );
                return None;
            }
            if !ok {
                return None;
            }
            let with = with.map(|(_, v)| v);
            return self.call(call_key, call_value, with, when, on_error);
        }
        if let Some((k, _)) = with {
            self.error(k.loc, "`with` goes with `call`", None);
            ok = false;
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
                call: None,
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
            call: None,
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
        match self.list.as_str() {
            named if named.starts_with("`actions.") => self.error(
                name_node.loc,
                format!("`{name}` cannot be inside a named action list ({named}): a call runs to its end"),
                Some("put the wait in the rule's own list, after the `call`".into()),
            ),
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

    /// A `- call: NAME` step (with its `with:`).
    fn call(
        &mut self,
        key: &Node,
        value: &Node,
        with: Option<&Node>,
        when: Vec<Cond>,
        on_error: OnError,
    ) -> Option<Action> {
        let name = self.string(value, "`call`")?;
        let mut args = Vec::new();
        let mut ok = true;
        if let Some(w) = with {
            for (k, v) in self.map(w, "`with`")? {
                match self.arg(v) {
                    Some(a) => args.push((k.key_text(), a)),
                    None => ok = false,
                }
            }
        }
        if self.names.get("actions", &name).is_none() {
            let names = self
                .names
                .section("actions")
                .iter()
                .map(|(n, _)| n.as_str());
            let hint = did_you_mean(&name, names);
            self.error(
                value.loc,
                format!("no action list named `{name}` in `actions:`"),
                hint,
            );
            return None;
        }
        if let Some(at) = self.calling.iter().position(|n| *n == name) {
            let chain: Vec<&str> = self.calling[at..]
                .iter()
                .map(String::as_str)
                .chain([name.as_str()])
                .collect();
            self.error(
                value.loc,
                format!("action list `{name}` calls itself: {}", chain.join(" → ")),
                Some("a list cannot run itself, directly or through others".into()),
            );
            return None;
        }
        let (actions, height) = self.action_list(&name)?;
        self.deepest = self.deepest.max(height);
        ok.then(|| Action {
            name: "call",
            args: Vec::new(),
            when,
            bind: None,
            on_error,
            loc: key.loc,
            pause: None,
            call: Some(Box::new(Call {
                name,
                with: args,
                actions,
            })),
        })
    }

    /// The named action list `name` (which exists), compiled once, in the
    /// file that wrote it.
    fn action_list(&mut self, name: &str) -> Compiled {
        if let Some(done) = self.lists.get(name) {
            return done.clone();
        }
        let entry = *self.names.get("actions", name)?;
        self.calling.push(name.to_owned());
        let outer = std::mem::take(&mut self.deepest);
        let before = self.errors.len();
        let what = format!("`actions.{name}`");
        let list = self.within(entry.origin, |c| c.actions(entry.value, &what));
        let height = 1 + self.deepest;
        self.deepest = outer;
        self.calling.pop();
        let mut ok = self.errors.len() == before;
        if ok && height > MAX_CALL_DEPTH {
            self.within(entry.origin, |c| {
                c.error(
                    entry.key.loc,
                    format!(
                        "calls nest {height} lists deep from {what} (at most {MAX_CALL_DEPTH})"
                    ),
                    None,
                )
            });
            ok = false;
        }
        let compiled = ok.then(|| (Arc::new(list), height));
        self.lists.insert(name.to_owned(), compiled.clone());
        compiled
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

/// A secret's name: an identifier, so `secrets.NAME` reads it.
fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
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

/// `event.hook` equals `name`: what keeps a hook's rules to its deliveries.
fn hook_condition(name: &str) -> Cond {
    Cond::Path {
        path: "event.hook".to_owned(),
        segments: vec!["event".to_owned(), "hook".to_owned()],
        checks: vec![Check {
            op: Op::Equals,
            operand: Value::String(name.to_owned()),
            insensitive: false,
            regex: None,
            glob: None,
            nested: Vec::new(),
        }],
    }
}

/// A hook's name is one path segment of its URL, `/hooks/NAME`.
fn valid_hook_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// An HTTP header name (RFC 9110 token characters).
fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
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
