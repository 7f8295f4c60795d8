//! The workflow test format (`*.test.yaml`): types that are both the parser's
//! target and the source of `schemas/workflow-test.schema.json`, and loading
//! with errors that point at file, line and column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use switchboard_workflow::actions;
use switchboard_workflow::compile::action_arg_keys;
use switchboard_workflow::error::did_you_mean;
use switchboard_workflow::schema::EVENT_TYPES;
use switchboard_workflow::yaml::{self, Kind, Loc, Node};
use switchboard_workflow::{LoadError, LoadErrors};

/// A test file: shared `given`, then the tests.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// What every test in the file starts from (a test's own `given` adds to it).
    #[serde(default)]
    pub given: Given,
    /// The tests, run in order, each on fresh state.
    pub tests: Vec<TestCase>,
}

/// One test: the world, one event or a sequence, and what must happen.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// Shown in the results.
    pub name: String,
    /// State, agent, room, clock, env and simulated action results.
    #[serde(default)]
    pub given: Given,
    /// The event (or use `events`).
    #[serde(default)]
    pub event: Option<EventSpec>,
    /// A sequence of events (throttles, counters); state carries over.
    #[serde(default)]
    pub events: Option<Vec<EventSpec>>,
    /// Expectations for the (last) event.
    #[serde(default)]
    pub expect: Option<Expect>,
    /// One expectation per event of `events`.
    #[serde(default)]
    pub expect_each: Option<Vec<Expect>>,
    /// Where the test starts in its file (filled in by the loader).
    #[serde(skip)]
    #[schemars(skip)]
    pub loc: Loc,
}

/// The world a test starts from.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Given {
    /// State keys before the first event.
    #[serde(default)]
    pub state: Option<Map<String, Value>>,
    /// Our identity (`agent` in templates): id, name, handle.
    #[serde(default)]
    pub agent: Option<Map<String, Value>>,
    /// The room (`chat` in templates): id, title, participants (id, handle, name, type).
    #[serde(default)]
    pub chat: Option<Map<String, Value>>,
    /// The clock (RFC 3339) at the first event.
    #[serde(default)]
    pub now: Option<String>,
    /// Environment variables templates see as `env`.
    #[serde(default)]
    pub env: Option<Map<String, Value>>,
    /// Actions that fail, by name, with the error they give (`add_participant: "404 not found"`).
    #[serde(default)]
    pub failures: Option<BTreeMap<String, String>>,
    /// Results actions give, by name (what an `http` call answered, bound with `as:`).
    #[serde(default)]
    pub results: Option<BTreeMap<String, Value>>,
}

/// One event of a test.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// Event type (`message_created`, `contact_request_received`, `schedule`, ...).
    /// Left out, the entry is no event: only the clock moves (by `after`),
    /// and the waits whose time passed go on.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The payload, as the platform sends it.
    #[serde(default)]
    pub payload: Map<String, Value>,
    /// The room for this event, instead of `given.chat`.
    #[serde(default)]
    pub chat: Option<Map<String, Value>>,
    /// How long after the previous event this one arrives (`11m`), for throttles,
    /// TTLs and the timeouts of `wait_for`, `ask` and `wait` (which pass first).
    #[serde(default)]
    pub after: Option<String>,
    /// For `schedule`: the rule that fires (default: every `on: schedule` rule).
    #[serde(default)]
    pub rule: Option<String>,
}

/// What must have happened.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Rule ids whose `do` ran, in order (exactly these).
    #[serde(default)]
    pub matched: Option<Vec<String>>,
    /// Rule ids whose `else` ran, in order.
    #[serde(default, rename = "else")]
    pub else_ran: Option<Vec<String>>,
    /// The actions that ran, in order, as one-key maps (`reply: {text: ...}` or `reply: "text"`);
    /// arguments not written here are not compared.
    #[serde(default)]
    #[schemars(with = "Option<Vec<Value>>")]
    pub actions: Option<Vec<Value>>,
    /// The whole state afterwards (exactly these keys).
    #[serde(default)]
    pub state: Option<Map<String, Value>>,
    /// How the event ended.
    #[serde(default)]
    pub outcome: Option<ExpectedOutcome>,
    /// Text the failure reason must contain.
    #[serde(default)]
    pub reason: Option<String>,
    /// Rule ids with a list paused (`wait_for`, `ask`, `wait`) after this
    /// event, oldest first (exactly these; `[]`: none).
    #[serde(default)]
    pub waiting: Option<Vec<String>>,
}

/// `done` or `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedOutcome {
    /// Handled (including: nothing matched).
    Done,
    /// Marked failed.
    Failed,
}

impl Given {
    /// `self` with `over`'s fields on top (maps merged key by key).
    pub fn merged(&self, over: &Given) -> Given {
        fn map<V: Clone>(a: &Option<V>, b: &Option<V>, join: fn(&mut V, &V)) -> Option<V> {
            match (a, b) {
                (Some(a), Some(b)) => {
                    let mut out = a.clone();
                    join(&mut out, b);
                    Some(out)
                }
                (a, b) => b.clone().or_else(|| a.clone()),
            }
        }
        fn json(a: &mut Map<String, Value>, b: &Map<String, Value>) {
            a.extend(b.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        fn tree<V: Clone>(a: &mut BTreeMap<String, V>, b: &BTreeMap<String, V>) {
            a.extend(b.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Given {
            state: map(&self.state, &over.state, json),
            agent: map(&self.agent, &over.agent, json),
            chat: map(&self.chat, &over.chat, json),
            now: over.now.clone().or_else(|| self.now.clone()),
            env: map(&self.env, &over.env, json),
            failures: map(&self.failures, &over.failures, tree),
            results: map(&self.results, &over.results, tree),
        }
    }
}

/// The JSON Schema of test files.
pub fn json_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(TestFile)).unwrap_or_default()
}

/// `*.test.yaml` / `*.test.yml` under `dir`, sorted by path (the same walk
/// as the workflows': hidden folders skipped, each folder searched once).
pub fn test_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    switchboard_workflow::load::walk_folder(dir, |path| {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        name.ends_with(".test.yaml") || name.ends_with(".test.yml")
    })
}

/// Reads and checks one test file.
pub fn load_test_file(path: &Path) -> Result<TestFile, LoadErrors> {
    let text = switchboard_workflow::load::read(path).map_err(|e| LoadErrors::new(vec![e]))?;
    parse_test_file(path, &text)
}

/// Parses test-file text (`path` names it in errors).
pub fn parse_test_file(path: &Path, text: &str) -> Result<TestFile, LoadErrors> {
    let error = |loc: Loc, message: String, hint: Option<String>| LoadError {
        file: path.to_owned(),
        loc,
        message,
        hint,
        source_line: (loc.line > 0)
            .then(|| text.lines().nth(loc.line as usize - 1).map(str::to_owned))
            .flatten(),
    };
    let root = yaml::parse(text).map_err(|e| {
        LoadErrors::new(vec![error(
            e.loc.unwrap_or_default(),
            format!("invalid YAML: {}", e.message),
            None,
        )])
    })?;
    let mut file: TestFile = serde_path_to_error::deserialize(root.to_json()).map_err(|e| {
        let (loc, message, hint) = locate(&root, &e);
        LoadErrors::new(vec![error(loc, message, hint)])
    })?;
    // Positions of the tests, for failure reports.
    if let Some(Node {
        kind: Kind::Seq(items),
        ..
    }) = field(&root, "tests")
    {
        for (case, node) in file.tests.iter_mut().zip(items) {
            case.loc = node.loc;
        }
    }
    let mut errors = Vec::new();
    for (i, case) in file.tests.iter().enumerate() {
        let at = |tail: &[&str]| {
            let mut p = vec!["tests".to_owned(), i.to_string()];
            p.extend(tail.iter().map(|s| s.to_string()));
            node_at(&root, &p).map_or(case.loc, |n| n.loc)
        };
        match (&case.event, &case.events) {
            (Some(_), Some(_)) => errors.push(error(
                at(&["events"]),
                format!("test `{}` gives both `event` and `events`", case.name),
                Some("keep one".into()),
            )),
            (None, None) => errors.push(error(
                case.loc,
                format!("test `{}` has no `event` (or `events`)", case.name),
                None,
            )),
            (None, Some(events)) if events.is_empty() => errors.push(error(
                at(&["events"]),
                format!("test `{}` has an empty `events` list", case.name),
                None,
            )),
            _ => {}
        }
        if let (Some(each), Some(events)) = (&case.expect_each, &case.events) {
            if each.len() != events.len() {
                errors.push(error(
                    at(&["expect_each"]),
                    format!(
                        "`expect_each` has {} entries for {} events",
                        each.len(),
                        events.len()
                    ),
                    None,
                ));
            }
        }
        if case.expect_each.is_some() && case.events.is_none() {
            errors.push(error(
                at(&["expect_each"]),
                "`expect_each` needs `events`; with one `event`, use `expect`".into(),
                None,
            ));
        }
        let events: Vec<(&EventSpec, Vec<String>)> = match (&case.event, &case.events) {
            (Some(e), _) => vec![(e, vec!["event".into()])],
            (None, Some(es)) => es
                .iter()
                .enumerate()
                .map(|(j, e)| (e, vec!["events".into(), j.to_string()]))
                .collect(),
            _ => Vec::new(),
        };
        for (event, path) in events {
            let mut p: Vec<&str> = path.iter().map(String::as_str).collect();
            match &event.kind {
                Some(kind) if !EVENT_TYPES.contains(&kind.as_str()) => {
                    p.push("type");
                    errors.push(error(
                        at(&p),
                        format!("unknown event type `{kind}`"),
                        did_you_mean(kind, EVENT_TYPES.iter().copied()),
                    ));
                    p.pop();
                }
                Some(_) => {}
                None if event.after.is_none() => errors.push(error(
                    at(&p),
                    "an event needs `type`; without one it only lets time pass, so give it `after:`"
                        .into(),
                    None,
                )),
                None => {}
            }
            if let Some(after) = &event.after {
                if let Err(e) = switchboard_workflow::duration::parse_duration(after) {
                    p.push("after");
                    errors.push(error(at(&p), format!("bad `after`: {e}"), None));
                    p.pop();
                }
            }
        }
        let given = file.given.merged(&case.given);
        if let Some(now) = &given.now {
            if chrono::DateTime::parse_from_rfc3339(now).is_err() {
                errors.push(error(
                    at(&["given", "now"]),
                    format!("`now` is not an RFC 3339 time: `{now}`"),
                    Some("e.g. 2026-01-05T09:00:00Z".into()),
                ));
            }
        }
        for name in given
            .failures
            .iter()
            .flat_map(|m| m.keys())
            .chain(given.results.iter().flat_map(|m| m.keys()))
        {
            if actions::find(name).is_none() {
                errors.push(error(
                    at(&["given"]),
                    format!("unknown action `{name}` in `given`"),
                    did_you_mean(name, actions::names()),
                ));
            }
        }
        let expects: Vec<(&Expect, Vec<String>)> = match (&case.expect, &case.expect_each) {
            (Some(e), _) => vec![(e, vec!["expect".into()])],
            (None, Some(each)) => each
                .iter()
                .enumerate()
                .map(|(j, e)| (e, vec!["expect_each".into(), j.to_string()]))
                .collect(),
            _ => Vec::new(),
        };
        for (expect, path) in expects {
            for (j, action) in expect.actions.iter().flatten().enumerate() {
                let mut p: Vec<&str> = path.iter().map(String::as_str).collect();
                let j = j.to_string();
                p.extend(["actions", &j]);
                if let Err((message, hint)) = expected_action(action) {
                    errors.push(error(at(&p), message, hint));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(file)
    } else {
        Err(LoadErrors::new(errors))
    }
}

/// An expected action: its name and the arguments the test compares.
pub type ExpectedAction = (String, Map<String, Value>);

/// Why an expected action is malformed: the message and a "did you mean".
pub type Malformed = (String, Option<String>);

/// An expected action as `(name, arguments)`: a one-key map whose value is
/// the arguments or the action's shorthand argument.
pub fn expected_action(v: &Value) -> Result<ExpectedAction, Malformed> {
    let (name, args) = match v {
        Value::Object(m) if m.len() == 1 => m.iter().next().map(|(k, v)| (k.clone(), v)),
        Value::String(s) => return expected_action(&serde_json::json!({ s.clone(): {} })),
        _ => None,
    }
    .ok_or_else(|| {
        (
            "an expected action is a one-key map, e.g. `reply: { text: \"hi\" }`".to_owned(),
            None,
        )
    })?;
    let Some(spec) = actions::find(&name) else {
        return Err((
            format!("unknown action `{name}`"),
            did_you_mean(&name, actions::names()),
        ));
    };
    let args = match (args, spec.shorthand) {
        (Value::Object(m), _) => m.clone(),
        (Value::Null, _) => Map::new(),
        (other, Some(key)) => Map::from_iter([(key.to_owned(), other.clone())]),
        (_, None) => {
            return Err((
                format!("`{name}` has no shorthand; write its arguments as a mapping"),
                None,
            ))
        }
    };
    let known = action_arg_keys(&name);
    for key in args.keys() {
        if !known.iter().any(|k| k == key) {
            return Err((
                format!("`{name}` has no argument `{key}`"),
                did_you_mean(key, known.iter().map(String::as_str)),
            ));
        }
    }
    Ok((name, args))
}

/// Where a deserialisation error points, its message, and a "did you mean".
fn locate(
    root: &Node,
    e: &serde_path_to_error::Error<serde_json::Error>,
) -> (Loc, String, Option<String>) {
    use serde_path_to_error::Segment;
    let path: Vec<String> = e
        .path()
        .iter()
        .filter_map(|s| match s {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .collect();
    let inner = e.inner().to_string();
    // "unknown field `exepct`, expected one of `name`, `given`, ..."
    if let Some(rest) = inner.strip_prefix("unknown field `") {
        let (got, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let mut parent = path.clone();
        if parent.last().map(String::as_str) == Some(got) {
            parent.pop();
        }
        let loc = node_at(root, &parent)
            .and_then(|n| match &n.kind {
                Kind::Map(entries) => entries.iter().find(|(k, _)| k.key_text() == got),
                _ => None,
            })
            .map_or(Loc::default(), |(k, _)| k.loc);
        let hint = did_you_mean(got, known.iter().copied())
            .or_else(|| Some(format!("expected one of: {}", known.join(", "))));
        return (loc, format!("unknown key `{got}`"), hint);
    }
    let mut at = path.clone();
    let loc = loop {
        if let Some(n) = node_at(root, &at) {
            break n.loc;
        }
        if at.pop().is_none() {
            break Loc::default();
        }
    };
    let message = match path.is_empty() {
        true => inner,
        false => format!("{}: {inner}", path.join(".")),
    };
    (loc, message, None)
}

/// The node at a path of map keys and list indexes.
fn node_at<'n>(root: &'n Node, path: &[String]) -> Option<&'n Node> {
    let mut node = root;
    for seg in path {
        node = match &node.kind {
            Kind::Map(entries) => &entries.iter().find(|(k, _)| k.key_text() == *seg)?.1,
            Kind::Seq(items) => items.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

fn field<'n>(node: &'n Node, key: &str) -> Option<&'n Node> {
    node_at(node, &[key.to_owned()])
}
