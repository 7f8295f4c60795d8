//! The workflow file format as types: the JSON Schema editors use
//! (`schemas/workflow.schema.json`) is generated from these, and the loader
//! takes its lists of allowed keys from the same schema, so the two cannot
//! drift apart. The loader itself reads YAML nodes (to keep positions) and
//! compiles them into [`super::ruleset`] types.

use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A workflow file.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "switchboard workflow",
    description = "Rules that tell a switchboard agent what to do with platform events."
)]
pub struct WorkflowFile {
    /// Language version; must be 1.
    pub version: u32,
    /// IANA time zone of the file's `cron` schedules, `time` conditions and
    /// `local_now` (e.g. `Europe/Berlin`); default UTC.
    pub timezone: Option<String>,
    /// Constants for templates (`vars.NAME`) and operators (`{ var: NAME }`).
    #[serde(default)]
    pub vars: BTreeMap<String, Value>,
    /// Named conditions, reused in rules with `- use: NAME`.
    #[serde(default)]
    pub conditions: BTreeMap<String, ConditionList>,
    /// Fields every rule of this file inherits unless it sets them.
    #[serde(default)]
    pub defaults: Option<Defaults>,
    /// The rules, in order.
    pub rules: Vec<Rule>,
}

/// Fields rules inherit.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Fallback actions when an action fails.
    pub on_error: Option<Vec<Action>>,
    /// Later rules do not see an event this rule handled.
    pub stop: Option<bool>,
    /// Higher runs first.
    pub priority: Option<i64>,
    /// `false` keeps a rule but skips it.
    pub enabled: Option<bool>,
    /// Rate limit.
    pub throttle: Option<Throttle>,
}

/// One rule.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Unique in the file; the rule's id is `<file stem>/<name>`.
    pub name: String,
    /// What the rule is for.
    pub description: Option<String>,
    /// The event type(s) the rule listens for.
    pub on: OneOrMany<EventType>,
    /// For `on: schedule`: run every interval (e.g. `10m`).
    pub every: Option<String>,
    /// For `on: schedule`: a cron expression (e.g. `0 9 * * MON-FRI`), on the
    /// wall clock of the rule's time zone.
    pub cron: Option<String>,
    /// IANA time zone of this rule (e.g. `America/New_York`), instead of the file's.
    pub timezone: Option<String>,
    /// Conditions; a list means all must hold.
    #[serde(rename = "if")]
    pub if_: Option<OneOrMany<Condition>>,
    /// Actions when the conditions hold.
    #[serde(rename = "do")]
    pub do_: Vec<Action>,
    /// Actions when they do not.
    #[serde(rename = "else")]
    pub else_: Option<Vec<Action>>,
    /// Rate limit: at most `max` runs per `per` for each rendered `key`.
    pub throttle: Option<Throttle>,
    /// Later rules do not see an event this rule handled.
    pub stop: Option<bool>,
    /// Higher runs first; ties keep file order.
    pub priority: Option<i64>,
    /// Fallback actions when an action fails (`error` holds the reason).
    pub on_error: Option<Vec<Action>>,
    /// `false` keeps the rule but skips it.
    pub enabled: Option<bool>,
}

/// A rate limit.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Throttle {
    /// Template; one window per rendered value (default: one for the rule).
    pub key: Option<String>,
    /// Runs allowed per window.
    pub max: u32,
    /// Window length, e.g. `30s`, `10m`, `1h`.
    pub per: String,
}

/// One value or a list of them.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// One.
    One(T),
    /// Several.
    Many(Vec<T>),
}

/// A list of conditions (all must hold) or one.
pub type ConditionList = OneOrMany<Condition>;

/// The platform's event types, plus `agent_started` and `schedule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// A message that mentions the agent.
    MessageCreated,
    /// The agent was added to a room.
    RoomAdded,
    /// The agent was removed from a room.
    RoomRemoved,
    /// Someone joined a room.
    ParticipantAdded,
    /// Someone left a room.
    ParticipantRemoved,
    /// A room was deleted.
    RoomDeleted,
    /// A contact request arrived.
    ContactRequestReceived,
    /// A contact request changed status.
    ContactRequestUpdated,
    /// A contact was added.
    ContactAdded,
    /// A contact was removed.
    ContactRemoved,
    /// Once, after the startup sync.
    AgentStarted,
    /// On a timer (`every` or `cron`).
    Schedule,
}

/// The event type names, as written in workflows.
pub const EVENT_TYPES: &[&str] = &[
    "message_created",
    "room_added",
    "room_removed",
    "participant_added",
    "participant_removed",
    "room_deleted",
    "contact_request_received",
    "contact_request_updated",
    "contact_added",
    "contact_removed",
    "agent_started",
    "schedule",
];

/// The event types whose rules have a room the agent is in: only they may
/// `wait_for` (without `chat:`), `ask` or `wait`.
pub const ROOM_EVENTS: &[&str] = &[
    "message_created",
    "room_added",
    "participant_added",
    "participant_removed",
];

/// A condition.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Condition {
    /// All of these.
    All {
        /// Conditions.
        all: Vec<Condition>,
    },
    /// At least one of these.
    Any {
        /// Conditions.
        any: Vec<Condition>,
    },
    /// The opposite.
    Not {
        /// Condition.
        not: Box<Condition>,
    },
    /// A named condition from `conditions:`.
    Use {
        /// Name.
        #[serde(rename = "use")]
        use_: String,
    },
    /// True when the rendered template is truthy.
    Template {
        /// Template, e.g. `{{ event.content | length > 200 }}`.
        template: String,
    },
    /// True at the times of day, weekdays and dates given, in the rule's time zone.
    Time {
        /// Times of day, weekdays, dates.
        time: TimeCondition,
    },
    /// A JSONPath query on the event; true when it finds something, or when
    /// the operators hold on the list it finds.
    JsonPath(Box<JsonPathCondition>),
    /// `PATH: { OP: VALUE }` or `PATH: VALUE` (equals).
    #[schemars(schema_with = "path_condition_schema")]
    Path(BTreeMap<String, Value>),
}

/// The `time` condition: all given parts must hold.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("minProperties" = 1))]
pub struct TimeCondition {
    /// From this time of day on, inclusive (`HH:MM`).
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub after: Option<String>,
    /// Until this time of day, exclusive (`HH:MM`); earlier than `after` wraps over midnight.
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub before: Option<String>,
    /// Days of the week.
    pub weekdays: Option<Vec<WeekdayName>>,
    /// Dates (`YYYY-MM-DD`).
    pub dates: Option<Vec<IsoDate>>,
    /// IANA time zone, instead of the rule's.
    pub timezone: Option<String>,
}

/// A day of the week.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WeekdayName {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

/// An ISO date, `YYYY-MM-DD`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct IsoDate(#[schemars(regex(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))] pub String);

/// `jsonpath:` with optional operators.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonPathCondition {
    /// The query, e.g. `$.metadata.mentions[*].handle`.
    pub jsonpath: String,
    /// Operators on the result list.
    #[serde(flatten)]
    pub ops: Operators,
}

/// Operators on a value; several in one map must all hold.
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Operators {
    /// Equal to.
    pub equals: Option<Operand>,
    /// Not equal to.
    pub not_equals: Option<Operand>,
    /// One of a list.
    #[serde(rename = "in")]
    pub in_: Option<Operand>,
    /// None of a list.
    pub not_in: Option<Operand>,
    /// Substring, or member of a list.
    pub contains: Option<Operand>,
    /// Starts with.
    pub starts_with: Option<Operand>,
    /// Ends with.
    pub ends_with: Option<Operand>,
    /// Regular expression (Rust syntax); named groups become `match.NAME`.
    pub matches: Option<Operand>,
    /// Glob pattern (`*`, `?`, `[abc]`).
    pub glob: Option<Operand>,
    /// Whether the value is present (true) or absent (false).
    pub exists: Option<bool>,
    /// Greater than.
    pub gt: Option<Operand>,
    /// Greater than or equal.
    pub gte: Option<Operand>,
    /// Less than.
    pub lt: Option<Operand>,
    /// Less than or equal.
    pub lte: Option<Operand>,
    /// Operators on the length (characters, list items, map entries).
    pub length: Option<Box<Operators>>,
    /// `insensitive` makes string operators ignore case.
    pub case: Option<Case>,
}

/// Case handling of string operators.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Case {
    /// Ignore case.
    Insensitive,
    /// Exact (default).
    Sensitive,
}

/// A literal or a var.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Operand {
    /// `{ var: NAME }`: the value of a var.
    Var {
        /// Var name.
        var: String,
    },
    /// Any value.
    Literal(Value),
}

fn path_condition_schema(generator: &mut SchemaGenerator) -> Schema {
    let ops = generator.subschema_for::<Operators>();
    schemars::json_schema!({
        "type": "object",
        "description": "PATH: { OP: VALUE } or PATH: VALUE (equals); PATH is dotted, e.g. event.content",
        "minProperties": 1,
        "maxProperties": 1,
        "propertyNames": { "pattern": "^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z0-9_-]+)*$" },
        "additionalProperties": { "anyOf": [ops, {"type": ["string", "number", "boolean", "null"]}] }
    })
}

/// Keys every action accepts beside its own.
pub const ACTION_MODIFIERS: &[&str] = &["if", "as", "on_error"];

/// An action: one action key, plus `if`, `as` and `on_error`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Action {
    /// One of the actions.
    #[schemars(schema_with = "action_schema")]
    Any(BTreeMap<String, Value>),
}

fn action_schema(generator: &mut SchemaGenerator) -> Schema {
    let conditions = generator.subschema_for::<ConditionList>();
    let mut variants = Vec::new();
    for spec in crate::actions::ALL {
        let (name, shorthand) = (spec.name, spec.shorthand);
        let args = spec.args_schema(generator);
        let value = match shorthand {
            Some(_) => serde_json::json!({"anyOf": [args, {"type": ["string", "null"]}]}),
            None => serde_json::to_value(&args).unwrap_or_default(),
        };
        variants.push(serde_json::json!({
            "type": "object",
            "required": [name],
            "properties": {
                name: value,
                "if": conditions,
                "as": {"type": "string", "description": "Bind the action's result to this name"},
                "on_error": {"enum": ["fail", "continue"]}
            },
            "additionalProperties": false
        }));
    }
    schemars::json_schema!({ "oneOf": variants })
}

/// The JSON Schema of a workflow file.
pub fn json_schema() -> Value {
    let schema = schemars::schema_for!(WorkflowFile);
    serde_json::to_value(&schema).unwrap_or_default()
}

/// The property names the schema gives a type: the loader's allowed keys.
pub fn keys_of<T: JsonSchema>() -> Vec<String> {
    let schema = schemars::schema_for!(T);
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lists_come_from_the_schema() {
        let rule = keys_of::<Rule>();
        for k in [
            "name",
            "on",
            "if",
            "do",
            "else",
            "throttle",
            "stop",
            "priority",
            "on_error",
            "enabled",
            "every",
            "cron",
            "description",
        ] {
            assert!(rule.contains(&k.to_string()), "{k} missing from {rule:?}");
        }
        assert_eq!(keys_of::<crate::actions::post_event::Args>().len(), 4);
        let ops = keys_of::<Operators>();
        assert!(ops.contains(&"in".to_string()) && ops.contains(&"case".to_string()));
    }

    #[test]
    fn every_action_has_argument_types_in_the_schema() {
        let schema = json_schema();
        let text = schema.to_string();
        for name in crate::actions::names() {
            assert!(text.contains(&format!("\"{name}\"")), "{name}");
        }
    }
}
