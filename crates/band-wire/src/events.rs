//! Typed events of the agent's socket topics (platform spec §2), validated
//! like the official core validator: required keys, null rules, and the
//! normalisations it applies. Unknown events are kept as raw JSON.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::model::{ChatMessage, Extra};

/// An event pushed on one of the agent's topics.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A message addressed to the agent (`chat_room:<id>`).
    MessageCreated(ChatMessage),
    /// A message was edited (`chat_room:<id>`).
    MessageUpdated(ChatMessage),
    /// The agent was added to a room (`agent_rooms:<agent>`).
    RoomAdded(RoomEvent),
    /// The agent was removed from a room (`agent_rooms:<agent>`).
    RoomRemoved(RoomEvent),
    /// A room was deleted (`room_participants:<id>`).
    RoomDeleted(RoomDeleted),
    /// Someone joined a room (`room_participants:<id>`).
    ParticipantAdded(ParticipantAdded),
    /// Someone left a room (`room_participants:<id>`).
    ParticipantRemoved(ParticipantRemoved),
    /// A contact request arrived (`agent_contacts:<agent>`).
    ContactRequestReceived(ContactRequestReceived),
    /// A contact request changed status (`agent_contacts:<agent>`).
    ContactRequestUpdated(ContactRequestUpdated),
    /// A contact was added (`agent_contacts:<agent>`).
    ContactAdded(ContactAdded),
    /// A contact was removed (`agent_contacts:<agent>`).
    ContactRemoved(ContactRemoved),
    /// Another connection displaced this one (`agent_control:<agent>`).
    Supersede(Supersede),
    /// Interrupt / stop / play (`agent_control:<agent>`).
    AgentControl(AgentControl),
    /// An event row (thought, tool_call, ...) was created; no handler.
    EventCreated(Value),
    /// Any other event, kept verbatim.
    Unknown {
        /// Event name.
        event: String,
        /// Payload as received.
        payload: Value,
    },
}

/// `room_added` / `room_removed` payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RoomEvent {
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

/// `agent.control` payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentControl {
    /// interrupt, stop or play.
    pub mode: String,
    /// agent or room.
    pub scope: String,
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

/// What a key may hold.
#[derive(Clone, Copy)]
enum Want {
    /// Required string.
    Str,
    /// Key required, string or null.
    StrOrNullKey,
    /// Optional; string or null.
    OptStr,
    /// Optional; string only (null rejected).
    OptStrNoNull,
    /// Optional; bool or null.
    OptBool,
    /// Optional; object or null.
    OptObj,
    /// Optional; array or null.
    OptArr,
}

fn check(obj: &Map<String, Value>, rules: &[(&str, Want)], issues: &mut Vec<Issue>, prefix: &str) {
    for (key, want) in rules {
        let path = format!("{prefix}{key}");
        let v = obj.get(*key);
        let bad = |issues: &mut Vec<Issue>, kind| {
            issues.push(Issue {
                path: path.clone(),
                kind,
            })
        };
        match (want, v) {
            (Want::Str, None) | (Want::StrOrNullKey, None) => bad(issues, "missing"),
            (Want::Str, Some(Value::String(_))) => {}
            (Want::Str, Some(_)) => bad(issues, "wrong_type"),
            (Want::StrOrNullKey | Want::OptStr, Some(Value::String(_) | Value::Null)) => {}
            (Want::OptStrNoNull, Some(Value::String(_))) => {}
            (Want::OptBool, Some(Value::Bool(_) | Value::Null)) => {}
            (Want::OptObj, Some(Value::Object(_) | Value::Null)) => {}
            (Want::OptArr, Some(Value::Array(_) | Value::Null)) => {}
            (_, None) => {}
            (_, Some(_)) => bad(issues, "wrong_type"),
        }
    }
}

/// Names of the events [`decode`] knows.
pub const KNOWN_EVENTS: &[&str] = &[
    "message_created",
    "message_updated",
    "room_added",
    "room_removed",
    "room_deleted",
    "participant_added",
    "participant_removed",
    "contact_request_received",
    "contact_request_updated",
    "contact_added",
    "contact_removed",
    "supersede",
    "agent.control",
    "event_created",
];

impl Event {
    /// Decodes and validates one pushed event.
    pub fn decode(event: &str, payload: Value) -> Result<Event, EventError> {
        let err = |issues: Vec<Issue>| EventError {
            event: event.to_string(),
            issues,
        };
        if event == "event_created" {
            return Ok(Event::EventCreated(payload));
        }
        if !KNOWN_EVENTS.contains(&event) {
            return Ok(Event::Unknown {
                event: event.to_string(),
                payload,
            });
        }
        let Value::Object(mut obj) = payload else {
            return Err(err(vec![Issue {
                path: String::new(),
                kind: "wrong_type",
            }]));
        };
        let mut issues = Vec::new();
        use Want::*;
        match event {
            "message_created" | "message_updated" => {
                check(
                    &obj,
                    &[
                        ("id", Str),
                        ("content", Str),
                        ("message_type", Str),
                        ("sender_id", Str),
                        ("sender_type", Str),
                        ("inserted_at", Str),
                        ("updated_at", Str),
                        ("sender_name", OptStr),
                        ("chat_room_id", OptStr),
                        ("thread_id", OptStr),
                        ("metadata", OptObj),
                        ("attachments", OptArr),
                    ],
                    &mut issues,
                    "",
                );
                normalise_message(&mut obj, &mut issues);
            }
            "room_added" | "room_removed" => check(
                &obj,
                &[
                    ("id", Str),
                    ("inserted_at", Str),
                    ("updated_at", Str),
                    ("title", OptStr),
                    ("task_id", OptStr),
                ],
                &mut issues,
                "",
            ),
            "room_deleted" => {
                check(&obj, &[("id", Str)], &mut issues, "");
                if obj.get("id").and_then(Value::as_str) == Some("") {
                    issues.push(Issue {
                        path: "id".into(),
                        kind: "empty",
                    });
                }
            }
            "participant_added" => {
                check(
                    &obj,
                    &[
                        ("id", Str),
                        ("name", Str),
                        ("type", Str),
                        ("handle", OptStrNoNull),
                        ("description", OptStr),
                        ("is_remote", OptBool),
                        ("is_external", OptBool),
                    ],
                    &mut issues,
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
            "participant_removed" => check(
                &obj,
                &[("id", Str), ("name", Str), ("type", Str)],
                &mut issues,
                "",
            ),
            "contact_request_received" => {
                check(
                    &obj,
                    &[
                        ("id", Str),
                        ("status", Str),
                        ("inserted_at", Str),
                        ("from_handle", OptStr),
                        ("from_name", OptStr),
                        ("message", OptStr),
                    ],
                    &mut issues,
                    "",
                );
                for key in ["from_handle", "from_name", "message"] {
                    if obj.get(key) == Some(&Value::Null) {
                        obj.remove(key);
                    }
                }
            }
            "contact_request_updated" => {
                check(&obj, &[("id", Str), ("status", Str)], &mut issues, "")
            }
            "contact_added" => check(
                &obj,
                &[
                    ("id", Str),
                    ("type", Str),
                    ("inserted_at", Str),
                    ("handle", StrOrNullKey),
                    ("name", StrOrNullKey),
                    ("description", OptStrNoNull),
                    ("is_remote", OptBool),
                    ("is_external", OptBool),
                ],
                &mut issues,
                "",
            ),
            "contact_removed" => check(&obj, &[("id", Str)], &mut issues, ""),
            "supersede" => {
                check(
                    &obj,
                    &[
                        ("reason", Str),
                        ("message", Str),
                        ("correlation_id", StrOrNullKey),
                        ("target_socket_id", OptStr),
                    ],
                    &mut issues,
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
            "agent.control" => {
                check(
                    &obj,
                    &[
                        ("mode", Str),
                        ("scope", Str),
                        ("agent_id", Str),
                        ("correlation_id", Str),
                        ("execution_id", StrOrNullKey),
                        ("room_id", StrOrNullKey),
                        ("reason", OptStrNoNull),
                    ],
                    &mut issues,
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
            _ => {}
        }
        if !issues.is_empty() {
            return Err(err(issues));
        }
        let value = Value::Object(obj);
        let typed = |v: Value| -> Result<Event, EventError> {
            let fail = |e: serde_json::Error| {
                err(vec![Issue {
                    path: e.to_string(),
                    kind: "wrong_type",
                }])
            };
            Ok(match event {
                "message_created" => {
                    Event::MessageCreated(serde_json::from_value(v).map_err(fail)?)
                }
                "message_updated" => {
                    Event::MessageUpdated(serde_json::from_value(v).map_err(fail)?)
                }
                "room_added" => Event::RoomAdded(serde_json::from_value(v).map_err(fail)?),
                "room_removed" => Event::RoomRemoved(serde_json::from_value(v).map_err(fail)?),
                "room_deleted" => Event::RoomDeleted(serde_json::from_value(v).map_err(fail)?),
                "participant_added" => {
                    Event::ParticipantAdded(serde_json::from_value(v).map_err(fail)?)
                }
                "participant_removed" => {
                    Event::ParticipantRemoved(serde_json::from_value(v).map_err(fail)?)
                }
                "contact_request_received" => {
                    Event::ContactRequestReceived(serde_json::from_value(v).map_err(fail)?)
                }
                "contact_request_updated" => {
                    Event::ContactRequestUpdated(serde_json::from_value(v).map_err(fail)?)
                }
                "contact_added" => Event::ContactAdded(serde_json::from_value(v).map_err(fail)?),
                "contact_removed" => {
                    Event::ContactRemoved(serde_json::from_value(v).map_err(fail)?)
                }
                "supersede" => Event::Supersede(serde_json::from_value(v).map_err(fail)?),
                "agent.control" => Event::AgentControl(serde_json::from_value(v).map_err(fail)?),
                other => Event::Unknown {
                    event: other.to_string(),
                    payload: v,
                },
            })
        };
        typed(value)
    }

    /// The wire name of this event.
    pub fn name(&self) -> &str {
        match self {
            Event::MessageCreated(_) => "message_created",
            Event::MessageUpdated(_) => "message_updated",
            Event::RoomAdded(_) => "room_added",
            Event::RoomRemoved(_) => "room_removed",
            Event::RoomDeleted(_) => "room_deleted",
            Event::ParticipantAdded(_) => "participant_added",
            Event::ParticipantRemoved(_) => "participant_removed",
            Event::ContactRequestReceived(_) => "contact_request_received",
            Event::ContactRequestUpdated(_) => "contact_request_updated",
            Event::ContactAdded(_) => "contact_added",
            Event::ContactRemoved(_) => "contact_removed",
            Event::Supersede(_) => "supersede",
            Event::AgentControl(_) => "agent.control",
            Event::EventCreated(_) => "event_created",
            Event::Unknown { event, .. } => event,
        }
    }

    /// The payload as JSON again (for templating); nothing received is lost.
    pub fn payload(&self) -> Value {
        let to = |r: Result<Value, serde_json::Error>| r.unwrap_or(Value::Null);
        match self {
            Event::MessageCreated(m) | Event::MessageUpdated(m) => to(serde_json::to_value(m)),
            Event::RoomAdded(r) | Event::RoomRemoved(r) => to(serde_json::to_value(r)),
            Event::RoomDeleted(r) => to(serde_json::to_value(r)),
            Event::ParticipantAdded(p) => to(serde_json::to_value(p)),
            Event::ParticipantRemoved(p) => to(serde_json::to_value(p)),
            Event::ContactRequestReceived(c) => to(serde_json::to_value(c)),
            Event::ContactRequestUpdated(c) => to(serde_json::to_value(c)),
            Event::ContactAdded(c) => to(serde_json::to_value(c)),
            Event::ContactRemoved(c) => to(serde_json::to_value(c)),
            Event::Supersede(s) => to(serde_json::to_value(s)),
            Event::AgentControl(a) => to(serde_json::to_value(a)),
            Event::EventCreated(v) => v.clone(),
            Event::Unknown { payload, .. } => payload.clone(),
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
                    let rule = [("id", Want::Str)];
                    match item {
                        Value::Object(m) => {
                            check(m, &rule, issues, &format!("metadata.mentions[{i}]."))
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
}
