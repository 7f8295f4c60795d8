//! Typed events of the agent's socket topics (platform spec §2), validated
//! like the official core validator: required keys, null rules, and the
//! normalisations it applies. Unknown events are kept as raw JSON.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::model::{ChatMessage, Extra};

/// Generates a family of socket topics, each spelled `<prefix>:<id>`, from
/// one table of variant → prefix: the enum, `ALL`, `prefix`, `topic`,
/// `parse` and `of`, so a prefix is spelled once.
macro_rules! topic_kinds {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$doc:meta])* $variant:ident => $prefix:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$doc])* $variant, )*
        }

        impl $name {
            /// Every kind, in table order.
            pub const ALL: [$name; [$($prefix),*].len()] = [$($name::$variant),*];

            /// The part before `:`.
            pub fn prefix(self) -> &'static str {
                match self {
                    $( $name::$variant => $prefix, )*
                }
            }

            /// The topic of one id, `<prefix>:<id>`.
            pub fn topic(self, id: &str) -> String {
                format!("{}:{id}", self.prefix())
            }

            /// A topic's kind and id (everything after the first `:`);
            /// `None` for a topic of any other family (e.g. `phoenix`).
            pub fn parse(topic: &str) -> Option<($name, &str)> {
                let (prefix, id) = topic.split_once(':')?;
                let kind = $name::ALL.into_iter().find(|k| k.prefix() == prefix)?;
                Some((kind, id))
            }

            /// A topic's kind; `None` for a topic of any other family.
            pub fn of(topic: &str) -> Option<$name> {
                $name::parse(topic).map(|(kind, _)| kind)
            }
        }
    };
}

topic_kinds! {
    /// The families of the agent's topics, each spelled `<prefix>:<id>`.
    TopicKind {
        /// `chat_room:<room id>`: a room's messages.
        ChatRoom => "chat_room",
        /// `room_participants:<room id>`: who is in a room.
        RoomParticipants => "room_participants",
        /// `agent_rooms:<agent id>`: the rooms the agent is in.
        AgentRooms => "agent_rooms",
        /// `agent_contacts:<agent id>`: the agent's contacts and requests.
        AgentContacts => "agent_contacts",
        /// `agent_control:<agent id>`: interrupts and displacement.
        AgentControl => "agent_control",
    }
}

topic_kinds! {
    /// The families of a person's own topics, each spelled `<prefix>:<user id>`:
    /// the human counterparts of [`TopicKind::AgentRooms`] and
    /// [`TopicKind::AgentContacts`]. No event of the [`Event`] table arrives
    /// on them for an agent; the platform (and the sandbox) serve them to people.
    UserTopicKind {
        /// `user_rooms:<user id>`: the rooms a person is in.
        UserRooms => "user_rooms",
        /// `user_contacts:<user id>`: a person's contacts and requests.
        UserContacts => "user_contacts",
    }
}

/// Generates everything that maps event names from the one table below:
/// the [`Event`] enum, [`KNOWN_EVENTS`], and `decode`, `name`, `topic_kind`
/// and `payload` on [`Event`]. Validation lives with each payload type
/// ([`Payload`]), so a row only says name, variant, payload type and topic.
macro_rules! events {
    ($(
        $(#[$doc:meta])*
        $name:literal => $variant:ident($payload:ty) on $topic:ident,
    )*) => {
        /// An event pushed on one of the agent's topics.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Event {
            $(
                $(#[$doc])*
                #[doc = concat!("\n\n`", $name, "`, on [`TopicKind::", stringify!($topic), "`].")]
                $variant($payload),
            )*
            /// Any other event, kept verbatim.
            Unknown {
                /// Event name.
                event: String,
                /// Payload as received.
                payload: Value,
            },
        }

        /// Names of the events [`Event::decode`] knows, in table order.
        pub const KNOWN_EVENTS: &[&str] = &[$($name),*];

        impl Event {
            /// Decodes and validates one pushed event; other names become [`Event::Unknown`].
            pub fn decode(event: &str, payload: Value) -> Result<Event, EventError> {
                let decoded = match event {
                    $( $name => <$payload as Payload>::decode(payload).map(Event::$variant), )*
                    _ => {
                        return Ok(Event::Unknown {
                            event: event.to_string(),
                            payload,
                        })
                    }
                };
                decoded.map_err(|issues| EventError {
                    event: event.to_string(),
                    issues,
                })
            }

            /// The wire name of this event.
            pub fn name(&self) -> &str {
                match self {
                    $( Event::$variant(_) => $name, )*
                    Event::Unknown { event, .. } => event,
                }
            }

            /// The kind of topic this event arrives on; `None` for unknown events.
            pub fn topic_kind(&self) -> Option<TopicKind> {
                match self {
                    $( Event::$variant(_) => Some(TopicKind::$topic), )*
                    Event::Unknown { .. } => None,
                }
            }

            /// The payload as JSON again (for templating); nothing received is lost.
            pub fn payload(&self) -> Value {
                match self {
                    $( Event::$variant(p) => p.to_json(), )*
                    Event::Unknown { payload, .. } => payload.clone(),
                }
            }
        }
    };
}

// The table: each known event spelled once (platform spec §2).
events! {
    /// A message addressed to the agent.
    "message_created" => MessageCreated(ChatMessage) on ChatRoom,
    /// A message was edited.
    "message_updated" => MessageUpdated(ChatMessage) on ChatRoom,
    /// The agent was added to a room.
    "room_added" => RoomAdded(AgentRoom) on AgentRooms,
    /// The agent was removed from a room.
    "room_removed" => RoomRemoved(AgentRoom) on AgentRooms,
    /// A room was deleted.
    "room_deleted" => RoomDeleted(RoomDeleted) on RoomParticipants,
    /// Someone joined a room.
    "participant_added" => ParticipantAdded(ParticipantAdded) on RoomParticipants,
    /// Someone left a room.
    "participant_removed" => ParticipantRemoved(ParticipantRemoved) on RoomParticipants,
    /// A contact request arrived.
    "contact_request_received" => ContactRequestReceived(ContactRequestReceived) on AgentContacts,
    /// A contact request changed status.
    "contact_request_updated" => ContactRequestUpdated(ContactRequestUpdated) on AgentContacts,
    /// A contact was added.
    "contact_added" => ContactAdded(ContactAdded) on AgentContacts,
    /// A contact was removed.
    "contact_removed" => ContactRemoved(ContactRemoved) on AgentContacts,
    /// Another connection displaced this one.
    "supersede" => Supersede(Supersede) on AgentControl,
    /// Interrupt / stop / play.
    "agent.control" => AgentControl(AgentControl) on AgentControl,
    /// An event row (thought, tool_call, ...) was created; no handler, so kept as JSON.
    "event_created" => EventCreated(Value) on ChatRoom,
}

/// A room in the agent's list: the `room_added` / `room_removed` payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentRoom {
    /// Room id.
    pub id: String,
    /// Creation time.
    pub inserted_at: String,
    /// Update time.
    pub updated_at: String,
    /// Title.
    #[serde(default)]
    pub title: Option<String>,
    /// Linked task.
    #[serde(default)]
    pub task_id: Option<String>,
    /// Unknown keys (e.g. `owner`, `type`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `room_deleted` payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RoomDeleted {
    /// Room id.
    pub id: String,
    /// Unknown keys.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `participant_added` payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ParticipantAdded {
    /// Entity id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// User or Agent (any string accepted).
    #[serde(rename = "type")]
    pub kind: String,
    /// Handle.
    #[serde(default)]
    pub handle: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Remote flag (mirrors `is_external`).
    #[serde(default)]
    pub is_remote: Option<bool>,
    /// External flag (mirrors `is_remote`).
    #[serde(default)]
    pub is_external: Option<bool>,
    /// Unknown keys.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `participant_removed` payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ParticipantRemoved {
    /// Entity id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// User or Agent.
    #[serde(rename = "type")]
    pub kind: String,
    /// Unknown keys.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `contact_request_received` payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContactRequestReceived {
    /// Request id.
    pub id: String,
    /// Status, normally `pending`.
    pub status: String,
    /// Creation time.
    pub inserted_at: String,
    /// Requester handle.
    #[serde(default)]
    pub from_handle: Option<String>,
    /// Requester name.
    #[serde(default)]
    pub from_name: Option<String>,
    /// Note.
    #[serde(default)]
    pub message: Option<String>,
    /// Unknown keys.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `contact_request_updated` payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContactRequestUpdated {
    /// Request id.
    pub id: String,
    /// New status.
    pub status: String,
    /// Unknown keys.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `contact_added` payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContactAdded {
    /// Contact's entity id.
    pub id: String,
    /// User or Agent.
    #[serde(rename = "type")]
    pub kind: String,
    /// Creation time.
    pub inserted_at: String,
    /// Handle (key required, may be null).
    pub handle: Option<String>,
    /// Name (key required, may be null).
    pub name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Unknown keys.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `contact_removed` payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContactRemoved {
    /// Contact's entity id.
    pub id: String,
    /// Unknown keys.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `supersede` payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Supersede {
    /// Why.
    pub reason: String,
    /// Human-readable text.
    pub message: String,
    /// Correlation id (key required, may be null).
    pub correlation_id: Option<String>,
    /// Whether reconnecting makes sense; absent or non-bool means false.
    #[serde(default)]
    pub retryable: bool,
    /// Seconds to wait before reconnecting.
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// The socket being displaced.
    #[serde(default)]
    pub target_socket_id: Option<String>,
}

/// What an `agent.control` asks of the agent's execution.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ControlMode {
    /// Cancel the work in hand; the message counts as handled.
    Interrupt,
    /// Cancel the work in hand and stop; the message waits for PLAY.
    Stop,
    /// Resume a stopped execution.
    Play,
}

impl ControlMode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ControlMode::Interrupt => "interrupt",
            ControlMode::Stop => "stop",
            ControlMode::Play => "play",
        }
    }
}

/// Whether an `agent.control` targets one room or all the agent's rooms.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ControlScope {
    /// Every room of the agent (`room_id` null).
    Agent,
    /// The room `room_id`.
    Room,
}

/// `agent.control` payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentControl {
    /// interrupt, stop or play.
    pub mode: ControlMode,
    /// agent or room.
    pub scope: ControlScope,
    /// Target agent.
    pub agent_id: String,
    /// Dedupe key.
    pub correlation_id: String,
    /// Execution (key required, may be null).
    pub execution_id: Option<String>,
    /// Room (key required, may be null: all rooms).
    pub room_id: Option<String>,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
}

/// One problem found by validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Key path, e.g. `metadata.mentions[0].id`.
    pub path: String,
    /// `missing` or `wrong_type`.
    pub kind: &'static str,
}

/// A payload that failed validation for its event.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("invalid {event} payload: {}", issues.iter().map(|i| format!("{} {}", i.path, i.kind)).collect::<Vec<_>>().join(", "))]
pub struct EventError {
    /// Event name.
    pub event: String,
    /// What was wrong.
    pub issues: Vec<Issue>,
}

/// What a payload key may hold. `Required` keys must be present, `Optional`
/// ones may be absent; `OrNull` means null is accepted too (the core
/// validator's null rules differ per key, hence one variant per rule).
#[derive(Clone, Copy)]
enum KeyRule {
    /// Present, a string.
    RequiredString,
    /// Present, a string or null.
    RequiredStringOrNull,
    /// Absent, or a string.
    OptionalString,
    /// Absent, a string or null.
    OptionalStringOrNull,
    /// Absent, a bool or null.
    OptionalBoolOrNull,
    /// Absent, an object or null.
    OptionalObjectOrNull,
    /// Absent, an array or null.
    OptionalArrayOrNull,
}

/// Adds an issue for each key of `obj` that breaks its rule; `prefix` places
/// nested objects in the path (e.g. `metadata.mentions[0].`).
fn check_keys(
    obj: &Map<String, Value>,
    rules: &[(&str, KeyRule)],
    issues: &mut Vec<Issue>,
    prefix: &str,
) {
    use KeyRule::*;
    for (key, rule) in rules {
        let kind = match (rule, obj.get(*key)) {
            (RequiredString | RequiredStringOrNull, None) => "missing",
            (_, None) => continue,
            (RequiredString | OptionalString, Some(Value::String(_))) => continue,
            (RequiredStringOrNull | OptionalStringOrNull, Some(Value::String(_) | Value::Null)) => {
                continue
            }
            (OptionalBoolOrNull, Some(Value::Bool(_) | Value::Null)) => continue,
            (OptionalObjectOrNull, Some(Value::Object(_) | Value::Null)) => continue,
            (OptionalArrayOrNull, Some(Value::Array(_) | Value::Null)) => continue,
            (_, Some(_)) => "wrong_type",
        };
        issues.push(Issue {
            path: format!("{prefix}{key}"),
            kind,
        });
    }
}

/// How a payload type is decoded from, and turned back into, JSON.
trait Payload: Sized {
    /// Checks and decodes one payload; the issues become an [`EventError`].
    fn decode(payload: Value) -> Result<Self, Vec<Issue>>;
    /// The payload as JSON again.
    fn to_json(&self) -> Value;
}

/// `event_created` has no handler, so nothing is checked: any JSON is kept.
impl Payload for Value {
    fn decode(payload: Value) -> Result<Self, Vec<Issue>> {
        Ok(payload)
    }

    fn to_json(&self) -> Value {
        self.clone()
    }
}

/// A payload type with key rules, checked before serde sees the object so
/// that errors name every bad key (as the core validator does), not just the first.
trait Validated: Serialize + DeserializeOwned {
    /// Checks the keys and applies the core validator's normalisations.
    fn validate(obj: &mut Map<String, Value>, issues: &mut Vec<Issue>);
}

impl<T: Validated> Payload for T {
    fn decode(payload: Value) -> Result<Self, Vec<Issue>> {
        let Value::Object(mut obj) = payload else {
            return Err(vec![Issue {
                path: String::new(),
                kind: "wrong_type",
            }]);
        };
        let mut issues = Vec::new();
        T::validate(&mut obj, &mut issues);
        if !issues.is_empty() {
            return Err(issues);
        }
        serde_json::from_value(Value::Object(obj)).map_err(|e| {
            vec![Issue {
                path: e.to_string(),
                kind: "wrong_type",
            }]
        })
    }

    fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl Validated for ChatMessage {
    fn validate(obj: &mut Map<String, Value>, issues: &mut Vec<Issue>) {
        use KeyRule::*;
        check_keys(
            obj,
            &[
                ("id", RequiredString),
                ("content", RequiredString),
                ("message_type", RequiredString),
                ("sender_id", RequiredString),
                ("sender_type", RequiredString),
                ("inserted_at", RequiredString),
                ("updated_at", RequiredString),
                ("sender_name", OptionalStringOrNull),
                ("chat_room_id", OptionalStringOrNull),
                ("thread_id", OptionalStringOrNull),
                ("metadata", OptionalObjectOrNull),
                ("attachments", OptionalArrayOrNull),
            ],
            issues,
            "",
        );
        normalise_message(obj, issues);
    }
}

impl Validated for AgentRoom {
    fn validate(obj: &mut Map<String, Value>, issues: &mut Vec<Issue>) {
        use KeyRule::*;
        check_keys(
            obj,
            &[
                ("id", RequiredString),
                ("inserted_at", RequiredString),
                ("updated_at", RequiredString),
                ("title", OptionalStringOrNull),
                ("task_id", OptionalStringOrNull),
            ],
            issues,
            "",
        );
    }
}

impl Validated for RoomDeleted {
    fn validate(obj: &mut Map<String, Value>, issues: &mut Vec<Issue>) {
        check_keys(obj, &[("id", KeyRule::RequiredString)], issues, "");
        if obj.get("id").and_then(Value::as_str) == Some("") {
            issues.push(Issue {
                path: "id".into(),
                kind: "empty",
            });
        }
    }
}

impl Validated for ParticipantAdded {
    fn validate(obj: &mut Map<String, Value>, issues: &mut Vec<Issue>) {
        use KeyRule::*;
        check_keys(
            obj,
            &[
                ("id", RequiredString),
                ("name", RequiredString),
                ("type", RequiredString),
                ("handle", OptionalString),
                ("description", OptionalStringOrNull),
                ("is_remote", OptionalBoolOrNull),
                ("is_external", OptionalBoolOrNull),
            ],
            issues,
            "",
        );
        // The core validator mirrors the two flags onto each other.
        let flag = obj
            .get("is_remote")
            .and_then(Value::as_bool)
            .or_else(|| obj.get("is_external").and_then(Value::as_bool));
        if let Some(flag) = flag {
            obj.insert("is_remote".into(), Value::Bool(flag));
            obj.insert("is_external".into(), Value::Bool(flag));
        }
    }
}

impl Validated for ParticipantRemoved {
    fn validate(obj: &mut Map<String, Value>, issues: &mut Vec<Issue>) {
        use KeyRule::*;
        check_keys(
            obj,
            &[
                ("id", RequiredString),
                ("name", RequiredString),
                ("type", RequiredString),
            ],
            issues,
            "",
        );
    }
}

impl Validated for ContactRequestReceived {
    fn validate(obj: &mut Map<String, Value>, issues: &mut Vec<Issue>) {
        use KeyRule::*;
        check_keys(
            obj,
            &[
                ("id", RequiredString),
                ("status", RequiredString),
                ("inserted_at", RequiredString),
                ("from_handle", OptionalStringOrNull),
                ("from_name", OptionalStringOrNull),
                ("message", OptionalStringOrNull),
            ],
            issues,
            "",
        );
        for key in ["from_handle", "from_name", "message"] {
            if obj.get(key) == Some(&Value::Null) {
                obj.remove(key);
            }
        }
    }
}

impl Validated for ContactRequestUpdated {
    fn validate(obj: &mut Map<String, Value>, issues: &mut Vec<Issue>) {
        use KeyRule::*;
        check_keys(
            obj,
            &[("id", RequiredString), ("status", RequiredString)],
            issues,
            "",
        );
    }
}

impl Validated for ContactAdded {
    fn validate(obj: &mut Map<String, Value>, issues: &mut Vec<Issue>) {
        use KeyRule::*;
        check_keys(
            obj,
            &[
                ("id", RequiredString),
                ("type", RequiredString),
                ("inserted_at", RequiredString),
                ("handle", RequiredStringOrNull),
                ("name", RequiredStringOrNull),
                ("description", OptionalString),
                ("is_remote", OptionalBoolOrNull),
                ("is_external", OptionalBoolOrNull),
            ],
            issues,
            "",
        );
    }
}

impl Validated for ContactRemoved {
    fn validate(obj: &mut Map<String, Value>, issues: &mut Vec<Issue>) {
        check_keys(obj, &[("id", KeyRule::RequiredString)], issues, "");
    }
}

impl Validated for Supersede {
    fn validate(obj: &mut Map<String, Value>, issues: &mut Vec<Issue>) {
        use KeyRule::*;
        check_keys(
            obj,
            &[
                ("reason", RequiredString),
                ("message", RequiredString),
                ("correlation_id", RequiredStringOrNull),
                ("target_socket_id", OptionalStringOrNull),
            ],
            issues,
            "",
        );
        let retryable = obj
            .get("retryable")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        obj.insert("retryable".into(), Value::Bool(retryable));
        let retry_after = obj.get("retry_after").and_then(Value::as_u64);
        obj.insert(
            "retry_after".into(),
            retry_after.map(Value::from).unwrap_or(Value::Null),
        );
    }
}

impl Validated for AgentControl {
    fn validate(obj: &mut Map<String, Value>, issues: &mut Vec<Issue>) {
        use KeyRule::*;
        check_keys(
            obj,
            &[
                ("mode", RequiredString),
                ("scope", RequiredString),
                ("agent_id", RequiredString),
                ("correlation_id", RequiredString),
                ("execution_id", RequiredStringOrNull),
                ("room_id", RequiredStringOrNull),
                ("reason", OptionalString),
            ],
            issues,
            "",
        );
        for (key, allowed) in [
            ("mode", &["interrupt", "stop", "play"][..]),
            ("scope", &["agent", "room"][..]),
        ] {
            if let Some(v) = obj.get(key).and_then(Value::as_str) {
                if !allowed.contains(&v) {
                    issues.push(Issue {
                        path: key.into(),
                        kind: "invalid_value",
                    });
                }
            }
        }
    }
}

/// Adds `attachments: []` and `metadata.mentions: []` when absent or null, and checks mention ids.
fn normalise_message(obj: &mut Map<String, Value>, issues: &mut Vec<Issue>) {
    if matches!(obj.get("attachments"), None | Some(Value::Null)) {
        obj.insert("attachments".into(), Value::Array(vec![]));
    }
    if matches!(obj.get("metadata"), None | Some(Value::Null)) {
        obj.insert("metadata".into(), serde_json::json!({ "mentions": [] }));
    }
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        match meta.get("mentions") {
            None | Some(Value::Null) => {
                meta.insert("mentions".into(), Value::Array(vec![]));
            }
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let rule = [("id", KeyRule::RequiredString)];
                    match item {
                        Value::Object(m) => {
                            check_keys(m, &rule, issues, &format!("metadata.mentions[{i}]."))
                        }
                        _ => issues.push(Issue {
                            path: format!("metadata.mentions[{i}]"),
                            kind: "wrong_type",
                        }),
                    }
                }
            }
            Some(_) => issues.push(Issue {
                path: "metadata.mentions".into(),
                kind: "wrong_type",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message() -> Value {
        json!({"id":"m1","content":"@[[a]] hi","message_type":"text","sender_id":"u1",
               "sender_type":"User","inserted_at":"t","updated_at":"t","extra_key":1})
    }

    #[test]
    fn message_is_normalised_and_keeps_extras() {
        let Event::MessageCreated(m) = Event::decode("message_created", message()).unwrap() else {
            panic!("wrong variant")
        };
        assert_eq!(m.attachments, Some(vec![]));
        assert_eq!(m.metadata, Some(json!({"mentions": []})));
        assert_eq!(m.extra.get("extra_key"), Some(&json!(1)));
    }

    #[test]
    fn missing_and_wrong_types_are_reported() {
        let mut p = message();
        p.as_object_mut().unwrap().remove("sender_id");
        p["content"] = json!(5);
        p["metadata"] = json!({"mentions": [{"handle": "x"}]});
        let e = Event::decode("message_created", p).unwrap_err();
        let kinds: Vec<_> = e.issues.iter().map(|i| (i.path.as_str(), i.kind)).collect();
        assert!(kinds.contains(&("sender_id", "missing")));
        assert!(kinds.contains(&("content", "wrong_type")));
        assert!(kinds.contains(&("metadata.mentions[0].id", "missing")));
    }

    #[test]
    fn null_rules() {
        // contact_added: handle key required but may be null; description may not be null.
        let ok = json!({"id":"c","type":"User","inserted_at":"t","handle":null,"name":"N"});
        assert!(Event::decode("contact_added", ok).is_ok());
        let missing = json!({"id":"c","type":"User","inserted_at":"t","name":"N"});
        assert!(Event::decode("contact_added", missing).is_err());
        let null_desc = json!({"id":"c","type":"User","inserted_at":"t","handle":"h","name":"N","description":null});
        assert!(Event::decode("contact_added", null_desc).is_err());
        // participant_added: handle null rejected.
        let p = json!({"id":"a","name":"A","type":"Agent","handle":null});
        assert!(Event::decode("participant_added", p).is_err());
    }

    #[test]
    fn supersede_normalises_flags() {
        let s = json!({"reason":"r","message":"m","correlation_id":null,"retryable":"yes","retry_after":"5"});
        let Event::Supersede(s) = Event::decode("supersede", s).unwrap() else {
            panic!()
        };
        assert!(!s.retryable);
        assert_eq!(s.retry_after, None);
    }

    #[test]
    fn unknown_events_are_kept() {
        let e = Event::decode("task_created", json!({"x": 1})).unwrap();
        assert_eq!(e.name(), "task_created");
        assert_eq!(e.payload(), json!({"x": 1}));
    }

    /// Each known event, spelled here independently of the table: a minimal
    /// valid payload, a test for the variant it must decode to, and its topic.
    /// A wrong table row (name, variant or topic) fails `table_round_trips`.
    type Row = (&'static str, Value, fn(&Event) -> bool, TopicKind);

    fn expected_rows() -> Vec<Row> {
        let room = json!({"id":"r","inserted_at":"t","updated_at":"t"});
        vec![
            (
                "message_created",
                message(),
                |e| matches!(e, Event::MessageCreated(_)),
                TopicKind::ChatRoom,
            ),
            (
                "message_updated",
                message(),
                |e| matches!(e, Event::MessageUpdated(_)),
                TopicKind::ChatRoom,
            ),
            (
                "room_added",
                room.clone(),
                |e| matches!(e, Event::RoomAdded(_)),
                TopicKind::AgentRooms,
            ),
            (
                "room_removed",
                room,
                |e| matches!(e, Event::RoomRemoved(_)),
                TopicKind::AgentRooms,
            ),
            (
                "room_deleted",
                json!({"id":"r"}),
                |e| matches!(e, Event::RoomDeleted(_)),
                TopicKind::RoomParticipants,
            ),
            (
                "participant_added",
                json!({"id":"a","name":"A","type":"Agent"}),
                |e| matches!(e, Event::ParticipantAdded(_)),
                TopicKind::RoomParticipants,
            ),
            (
                "participant_removed",
                json!({"id":"a","name":"A","type":"Agent"}),
                |e| matches!(e, Event::ParticipantRemoved(_)),
                TopicKind::RoomParticipants,
            ),
            (
                "contact_request_received",
                json!({"id":"q","status":"pending","inserted_at":"t"}),
                |e| matches!(e, Event::ContactRequestReceived(_)),
                TopicKind::AgentContacts,
            ),
            (
                "contact_request_updated",
                json!({"id":"q","status":"approved"}),
                |e| matches!(e, Event::ContactRequestUpdated(_)),
                TopicKind::AgentContacts,
            ),
            (
                "contact_added",
                json!({"id":"c","type":"User","inserted_at":"t","handle":null,"name":null}),
                |e| matches!(e, Event::ContactAdded(_)),
                TopicKind::AgentContacts,
            ),
            (
                "contact_removed",
                json!({"id":"c"}),
                |e| matches!(e, Event::ContactRemoved(_)),
                TopicKind::AgentContacts,
            ),
            (
                "supersede",
                json!({"reason":"r","message":"m","correlation_id":null}),
                |e| matches!(e, Event::Supersede(_)),
                TopicKind::AgentControl,
            ),
            (
                "agent.control",
                json!({"mode":"stop","scope":"agent","agent_id":"a","correlation_id":"c",
                       "execution_id":null,"room_id":null}),
                |e| matches!(e, Event::AgentControl(_)),
                TopicKind::AgentControl,
            ),
            (
                "event_created",
                json!({"type":"thought"}),
                |e| matches!(e, Event::EventCreated(_)),
                TopicKind::ChatRoom,
            ),
        ]
    }

    #[test]
    fn table_round_trips() {
        let rows = expected_rows();
        let mut names: Vec<_> = rows.iter().map(|r| r.0).collect();
        names.sort_unstable();
        let mut known = KNOWN_EVENTS.to_vec();
        known.sort_unstable();
        assert_eq!(
            known, names,
            "KNOWN_EVENTS differs from the expected events"
        );
        known.dedup();
        assert_eq!(
            known.len(),
            KNOWN_EVENTS.len(),
            "an event name is listed twice"
        );

        for (i, (name, payload, is_variant, topic)) in rows.iter().enumerate() {
            let event = Event::decode(name, payload.clone())
                .unwrap_or_else(|e| panic!("{name}: minimal payload rejected: {e}"));
            assert!(is_variant(&event), "{name} decoded to {event:?}");
            for (j, other) in rows.iter().enumerate() {
                assert!(
                    i == j || !(other.2)(&event),
                    "{name} decodes to {}'s variant",
                    other.0
                );
            }
            assert_eq!(
                event.name(),
                *name,
                "variant of {name} names itself differently"
            );
            assert_eq!(event.topic_kind(), Some(*topic), "{name} topic");
            // Every key sent comes back unchanged from `payload()`.
            let back = event.payload();
            for (key, value) in payload.as_object().unwrap() {
                assert_eq!(
                    back.get(key),
                    Some(value),
                    "{name}: {key} lost by payload()"
                );
            }
        }
    }

    #[test]
    fn unknown_names_are_unknown() {
        for name in [
            "task_created",
            "Message_Created",
            "message_created ",
            "agent_control",
            "",
        ] {
            let e = Event::decode(name, json!({"x": 1})).unwrap();
            assert!(
                matches!(&e, Event::Unknown { event, .. } if event == name),
                "{name:?}"
            );
            assert_eq!(e.name(), name);
            assert_eq!(e.topic_kind(), None);
            assert_eq!(e.payload(), json!({"x": 1}));
        }
    }

    #[test]
    fn topic_kinds_round_trip() {
        for kind in TopicKind::ALL {
            assert_eq!(TopicKind::of(&kind.topic("x:1")), Some(kind));
        }
        assert_eq!(TopicKind::ChatRoom.topic("r1"), "chat_room:r1");
        assert_eq!(TopicKind::of("phoenix"), None);
        assert_eq!(TopicKind::of("chat_room"), None);
        assert_eq!(TopicKind::of("user_rooms:u1"), None);
        assert_eq!(
            TopicKind::parse("chat_room:r1:x"),
            Some((TopicKind::ChatRoom, "r1:x"))
        );
        for kind in UserTopicKind::ALL {
            assert_eq!(UserTopicKind::of(&kind.topic("u1")), Some(kind));
            assert_eq!(TopicKind::of(&kind.topic("u1")), None);
        }
        assert_eq!(UserTopicKind::UserRooms.topic("u1"), "user_rooms:u1");
        assert_eq!(
            UserTopicKind::parse("user_contacts:u1"),
            Some((UserTopicKind::UserContacts, "u1"))
        );
        assert_eq!(UserTopicKind::of("agent_rooms:a1"), None);
    }
}
