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
    /// For `on: schedule`: a cron expression (e.g. `0 9 * * MON-FRI`).
    pub cron: Option<String>,
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
    /// A JSONPath query on the event; true when it finds something, or when
    /// the operators hold on the list it finds.
    JsonPath(Box<JsonPathCondition>),
    /// `PATH: { OP: VALUE }` or `PATH: VALUE` (equals).
    #[schemars(schema_with = "path_condition_schema")]
    Path(BTreeMap<String, Value>),
}

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

macro_rules! action_args {
    ($( $(#[$doc:meta])* $name:ident { $( $(#[$fdoc:meta])* $field:ident : $ty:ty ),* $(,)? } )*) => {
        /// Argument types of each action (for the schema).
        pub mod args {
            use super::*;
            $(
                $(#[$doc])*
                #[derive(Debug, Serialize, Deserialize, JsonSchema)]
                #[serde(deny_unknown_fields)]
                #[allow(non_camel_case_types)]
                pub struct $name { $( $(#[$fdoc])* pub $field: $ty ),* }
            )*
        }
    };
}

action_args! {
    /// Post a message in the event's room.
    reply { /// Text (template).
        text: String, /// Handles or ids to mention (default: the sender).
        mentions: Option<Vec<String>> }
    /// Post a message in a room.
    send_message { /// Room id.
        chat: String, /// Text.
        text: String, /// Handles or ids to mention.
        mentions: Vec<String> }
    /// Post an event row.
    post_event { /// Room id (default: the event's).
        chat: Option<String>, /// thought, tool_call, tool_result, error or task.
        r#type: String, /// Text.
        content: String, /// Extra metadata.
        metadata: Option<Value> }
    /// Create a room and add participants.
    create_chat { /// Title.
        title: Option<String>, /// Handles or ids.
        participants: Option<Vec<String>> }
    /// Add a participant.
    add_participant { /// Room id (default: the event's).
        chat: Option<String>, /// Handle.
        handle: Option<String>, /// Or id.
        id: Option<String>, /// owner, admin or member.
        role: Option<String> }
    /// Remove a participant.
    remove_participant { /// Room id (default: the event's).
        chat: Option<String>, /// Handle.
        handle: Option<String>, /// Or id.
        id: Option<String> }
    /// Approve a contact request.
    approve_contact { /// Request id (default: the event's).
        request: Option<String> }
    /// Reject a contact request.
    reject_contact { /// Request id (default: the event's).
        request: Option<String>, /// Why (logged).
        reason: Option<String> }
    /// Send a contact request.
    add_contact { /// Handle.
        handle: String, /// Note.
        message: Option<String> }
    /// Remove a contact.
    remove_contact { /// Handle or id.
        handle: String }
    /// Set a state key.
    set { /// Key (template).
        key: String, /// Value.
        value: Value, /// Time to live, e.g. `1h`.
        ttl: Option<String> }
    /// Remove a state key.
    unset { /// Key.
        key: String }
    /// Add to a number in state; the result is the new value.
    incr { /// Key.
        key: String, /// Amount (default 1).
        by: Option<Value>, /// Time to live.
        ttl: Option<String> }
    /// Outbound HTTP, only to allowed hosts.
    http { /// GET, POST, ... (default GET, or POST with `json`).
        method: Option<String>, /// URL.
        url: String, /// Headers.
        headers: Option<BTreeMap<String, String>>, /// JSON body.
        json: Option<Value>, /// Time limit (default 10s).
        timeout: Option<String> }
    /// Write a log line.
    log { /// Text.
        message: String, /// error, warn, info (default), debug, trace.
        level: Option<String> }
    /// Mark the message failed.
    fail { /// Reason.
        reason: String }
}

/// Per action: name, the argument a plain string stands for, required arguments.
pub const ACTIONS: &[(&str, Option<&str>, &[&str])] = &[
    ("reply", Some("text"), &["text"]),
    ("send_message", None, &["chat", "text", "mentions"]),
    ("post_event", None, &["type", "content"]),
    ("create_chat", Some("title"), &[]),
    ("add_participant", Some("handle"), &[]),
    ("remove_participant", Some("handle"), &[]),
    ("approve_contact", Some("request"), &[]),
    ("reject_contact", Some("reason"), &[]),
    ("add_contact", Some("handle"), &["handle"]),
    ("remove_contact", Some("handle"), &["handle"]),
    ("set", None, &["key", "value"]),
    ("unset", Some("key"), &["key"]),
    ("incr", Some("key"), &["key"]),
    ("http", Some("url"), &["url"]),
    ("log", Some("message"), &["message"]),
    ("fail", Some("reason"), &["reason"]),
];

fn action_schema(generator: &mut SchemaGenerator) -> Schema {
    let conditions = generator.subschema_for::<ConditionList>();
    let mut variants = Vec::new();
    for (name, shorthand, _) in ACTIONS {
        let args = match *name {
            "reply" => generator.subschema_for::<args::reply>(),
            "send_message" => generator.subschema_for::<args::send_message>(),
            "post_event" => generator.subschema_for::<args::post_event>(),
            "create_chat" => generator.subschema_for::<args::create_chat>(),
            "add_participant" => generator.subschema_for::<args::add_participant>(),
            "remove_participant" => generator.subschema_for::<args::remove_participant>(),
            "approve_contact" => generator.subschema_for::<args::approve_contact>(),
            "reject_contact" => generator.subschema_for::<args::reject_contact>(),
            "add_contact" => generator.subschema_for::<args::add_contact>(),
            "remove_contact" => generator.subschema_for::<args::remove_contact>(),
            "set" => generator.subschema_for::<args::set>(),
            "unset" => generator.subschema_for::<args::unset>(),
            "incr" => generator.subschema_for::<args::incr>(),
            "http" => generator.subschema_for::<args::http>(),
            "log" => generator.subschema_for::<args::log>(),
            _ => generator.subschema_for::<args::fail>(),
        };
        let value = match shorthand {
            Some(_) => serde_json::json!({"anyOf": [args, {"type": ["string", "null"]}]}),
            None => serde_json::to_value(&args).unwrap_or_default(),
        };
        variants.push(serde_json::json!({
            "type": "object",
            "required": [name],
            "properties": {
                *name: value,
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
        assert_eq!(keys_of::<args::post_event>().len(), 4);
        let ops = keys_of::<Operators>();
        assert!(ops.contains(&"in".to_string()) && ops.contains(&"case".to_string()));
    }

    #[test]
    fn every_action_has_argument_types_in_the_schema() {
        let schema = json_schema();
        let text = schema.to_string();
        for (name, _, _) in ACTIONS {
            assert!(text.contains(&format!("\"{name}\"")), "{name}");
        }
    }
}
