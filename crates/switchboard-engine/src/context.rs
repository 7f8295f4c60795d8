//! What conditions and templates see for one rule: the event's part (built
//! once per event), the file's `vars`, a state snapshot, `local_now` (in the
//! rule's time zone), and extras (`error`, `match`, `as:` results), all
//! shared, none copied per rule. Templates read
//! it through [`JsonView`], a lazy minijinja view of JSON: a template pays
//! only for the values it touches, not for a deep conversion of the context.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use minijinja::value::{Enumerator, Object, ObjectRepr, Value as JValue};
use serde_json::{Map, Value};

use super::captures::Captures;

/// The event's part of every rule's context, built once per event.
#[derive(Debug)]
pub struct EventContext {
    /// `event_type`.
    pub event_type: Value,
    /// `event`: the payload.
    pub event: Arc<Value>,
    /// `agent`: our identity.
    pub agent: Arc<Value>,
    /// `chat`: the room (null outside one).
    pub chat: Option<Arc<Value>>,
    /// `sender`: who sent a message (null otherwise).
    pub sender: Option<Arc<Value>>,
    /// `now`, RFC 3339.
    pub now: Value,
    /// The instant `now` names (for `time` conditions and `local_now`).
    pub at: DateTime<Utc>,
    /// `env`: the allowed environment variables.
    pub env: Arc<Value>,
    /// `secrets`: the workflows' secrets by name (a dry run without a
    /// value sees `[secret:NAME]`).
    pub secrets: Arc<Value>,
}

/// The names an [`EventContext`] answers, sorted (as minijinja lists map keys).
const EVENT_KEYS: &[&str] = &[
    "agent",
    "chat",
    "env",
    "event",
    "event_type",
    "now",
    "secrets",
    "sender",
];

impl EventContext {
    fn get(&self, key: &str) -> Option<&Value> {
        const NULL: &Value = &Value::Null;
        Some(match key {
            "event" => &self.event,
            "event_type" => &self.event_type,
            "agent" => &self.agent,
            "chat" => self.chat.as_deref().unwrap_or(NULL),
            "sender" => self.sender.as_deref().unwrap_or(NULL),
            "now" => &self.now,
            "env" => &self.env,
            "secrets" => &self.secrets,
            _ => return None,
        })
    }

    fn shared(&self, key: &str) -> Option<JValue> {
        let arc = match key {
            "event" => &self.event,
            "agent" => &self.agent,
            "env" => &self.env,
            "secrets" => &self.secrets,
            "chat" => self.chat.as_ref()?,
            "sender" => self.sender.as_ref()?,
            _ => return self.get(key).map(|v| scalar(v).unwrap_or_default()),
        };
        Some(JsonView::wrap(arc.clone()))
    }
}

impl Object for EventContext {
    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        self.shared(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<JValue> {
        self.shared(key)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(EVENT_KEYS)
    }
}

/// The context of one rule.
#[derive(Debug, Clone)]
pub struct Context {
    base: Arc<EventContext>,
    vars: Arc<Value>,
    state: Arc<Value>,
    extra: Arc<Map<String, Value>>,
    /// The rule's time zone.
    timezone: Tz,
    /// `local_now`, made when first read.
    local_now: OnceCell<Value>,
}

impl Context {
    /// The context of a rule of `vars` for the event `base`.
    pub fn new(base: Arc<EventContext>, vars: Arc<Value>, state: Arc<Value>) -> Self {
        Context {
            base,
            vars,
            state,
            extra: Arc::new(Map::new()),
            timezone: Tz::UTC,
            local_now: OnceCell::new(),
        }
    }

    /// The same context in the rule's time zone (UTC until set).
    pub fn in_zone(mut self, timezone: Tz) -> Self {
        self.timezone = timezone;
        self.local_now = OnceCell::new();
        self
    }

    /// The rule's time zone.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// The instant the event is handled at.
    pub fn at(&self) -> DateTime<Utc> {
        self.base.at
    }

    /// `local_now`: `now` on the wall clock of the rule's time zone, RFC 3339.
    pub fn local_now(&self) -> &Value {
        self.local_now.get_or_init(|| {
            Value::String(switchboard_workflow::time::local_rfc3339(
                self.base.at,
                self.timezone,
            ))
        })
    }

    /// A top-level name: extras first, then `vars`, `state`, the event's part.
    pub fn get(&self, root: &str) -> Option<&Value> {
        if let Some(v) = self.extra.get(root) {
            return Some(v);
        }
        match root {
            "vars" => Some(&self.vars),
            "state" => Some(&self.state),
            "local_now" => Some(self.local_now()),
            _ => self.base.get(root),
        }
    }

    /// Follows a dotted path (root first).
    pub fn lookup(&self, segments: &[String]) -> Option<&Value> {
        let (root, rest) = segments.split_first()?;
        lookup(self.get(root)?, rest)
    }

    /// Adds (or replaces) a top-level name.
    pub fn insert(&mut self, key: &str, value: Value) {
        Arc::make_mut(&mut self.extra).insert(key.to_owned(), value);
    }

    /// Replaces the state snapshot (after an action may have changed it).
    pub fn set_state(&mut self, state: Arc<Value>) {
        self.state = state;
    }

    /// The minijinja context: `match`, then `as:` results, then this context.
    pub fn template(&self, caps: &Captures, bindings: &Map<String, Value>) -> JValue {
        let mut layers = Vec::with_capacity(5);
        if !caps.is_empty() {
            layers.push(JValue::from(BTreeMap::from([(
                "match".to_owned(),
                caps.to_template_value(),
            )])));
        }
        if !bindings.is_empty() {
            layers.push(JsonView::wrap(Arc::new(Value::Object(bindings.clone()))));
        }
        if !self.extra.is_empty() {
            layers.push(JsonView::wrap(Arc::new(Value::Object(
                (*self.extra).clone(),
            ))));
        }
        let local_now = self.local_now().as_str().unwrap_or_default();
        layers.push(JValue::from(BTreeMap::from([
            ("vars", JsonView::wrap(self.vars.clone())),
            ("state", JsonView::wrap(self.state.clone())),
            ("local_now", JValue::from(local_now)),
        ])));
        layers.push(JValue::from_dyn_object(self.base.clone()));
        // Earlier layers win.
        minijinja::value::merge_maps(layers)
    }
}

/// A lazy minijinja view of a JSON value (a map or a list inside `root`).
#[derive(Debug)]
pub struct JsonView {
    root: Arc<Value>,
    path: Vec<Step>,
}

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

impl JsonView {
    /// The template value of `root`: scalars as they are, maps and lists as views.
    pub fn wrap(root: Arc<Value>) -> JValue {
        scalar(&root).unwrap_or_else(|| {
            JValue::from_object(JsonView {
                root,
                path: Vec::new(),
            })
        })
    }

    fn target(&self) -> &Value {
        let mut cur = &*self.root;
        for step in &self.path {
            cur = match (cur, step) {
                (Value::Object(m), Step::Key(k)) => m.get(k).unwrap_or(&Value::Null),
                (Value::Array(a), Step::Index(i)) => a.get(*i).unwrap_or(&Value::Null),
                _ => &Value::Null,
            };
        }
        cur
    }

    fn child(&self, step: Step, value: &Value) -> JValue {
        scalar(value).unwrap_or_else(|| {
            let mut path = self.path.clone();
            path.push(step);
            JValue::from_object(JsonView {
                root: self.root.clone(),
                path,
            })
        })
    }
}

/// A scalar as a template value (`None` for maps and lists).
fn scalar(v: &Value) -> Option<JValue> {
    Some(match v {
        Value::Null => JValue::from(()),
        Value::Bool(b) => JValue::from(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => JValue::from(i),
            (None, Some(u)) => JValue::from(u),
            _ => JValue::from(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => JValue::from(s.as_str()),
        Value::Array(_) | Value::Object(_) => return None,
    })
}

impl Object for JsonView {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        match self.target() {
            Value::Array(_) => ObjectRepr::Seq,
            _ => ObjectRepr::Map,
        }
    }

    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        match self.target() {
            Value::Object(m) => {
                let k = key.as_str()?;
                m.get(k).map(|v| self.child(Step::Key(k.to_owned()), v))
            }
            Value::Array(a) => {
                let i = usize::try_from(key.as_i64()?).ok()?;
                a.get(i).map(|v| self.child(Step::Index(i), v))
            }
            _ => None,
        }
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<JValue> {
        match self.target() {
            Value::Object(m) => m.get(key).map(|v| self.child(Step::Key(key.to_owned()), v)),
            _ => self.get_value(&JValue::from(key)),
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match self.target() {
            // Sorted, as minijinja orders the maps it converts itself.
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort_unstable();
                Enumerator::Values(keys.into_iter().map(|k| JValue::from(k.as_str())).collect())
            }
            Value::Array(a) => Enumerator::Seq(a.len()),
            _ => Enumerator::Empty,
        }
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        match self.target() {
            Value::Object(m) => Some(m.len()),
            Value::Array(a) => Some(a.len()),
            _ => Some(0),
        }
    }
}

/// Follows a dotted path; numeric segments index lists.
pub fn lookup<'v>(root: &'v Value, segments: &[String]) -> Option<&'v Value> {
    let mut cur = root;
    for seg in segments {
        cur = match cur {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The view renders like a deep conversion for the constructs workflows use.
    #[test]
    fn view_renders_like_a_copy() {
        let data = json!({
            "event": {"content": "hi", "n": 3, "f": 1.5, "ok": true, "none": null,
                      "tags": ["a", "b"], "metadata": {"mentions": [{"id": "x", "handle": "h"}]}},
            "empty": {}, "list": [],
        });
        let env = minijinja::Environment::new();
        let lazy = JsonView::wrap(Arc::new(data.clone()));
        let copy = JValue::from(minijinja::value::Serde(&data));
        for source in [
            "{{ event.content }} {{ event.n + 1 }} {{ event.f }} {{ event.ok }} {{ event.none }}",
            "{{ event.tags | join(',') }} {{ event.tags[1] }} {{ event.tags | length }} {{ event.tags[-1] }}",
            "{{ event.metadata.mentions[0].handle }} {{ event.missing is defined }} {{ event.none is none }}",
            "{% for k, v in event.metadata | items %}{{ k }}={{ v | tojson }}{% endfor %}",
            "{{ event | tojson }}",
            "{{ 'a' in event.tags }} {{ 'content' in event }} {{ empty | length }} {{ list | length }}",
            "{% if empty %}yes{% else %}no{% endif %} {% if event.tags %}yes{% endif %}",
            "{{ event.tags | map('upper') | list }} {{ event.tags | first }} {{ event.tags | sort | reverse | list }}",
            "{{ event.metadata.mentions | map(attribute='id') | join }} {{ event }}",
        ] {
            let tmpl = env.template_from_str(source).unwrap();
            assert_eq!(
                tmpl.render(&lazy).unwrap(),
                tmpl.render(&copy).unwrap(),
                "{source}"
            );
        }
    }
}
