//! One event as the engine takes it ([`EventInput`]) and the scope its
//! actions run in ([`Scope`]): from a typed platform event for live events
//! ([`typed_input`]), from JSON for workflow tests, `explain`, `replay`,
//! schedules and `agent_started` ([`event_input`]). Both take the ids they
//! scope by from [`EventFacts`], so the two paths cannot drift apart; JSON is
//! only produced here, for templates (`event`, `chat`, `sender`).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::runtime::RoomInfo;
use band_wire::events::Event;
use band_wire::facts::EventFacts;
use band_wire::model::EntityType;
use switchboard_engine::action::{Scope, Sender};
use switchboard_engine::EventInput;

/// An event ready for the engine.
#[derive(Debug, Clone)]
pub struct PreparedEvent {
    /// What the engine and templates see.
    pub input: EventInput,
    /// Where its actions run: room, message, sender, contact request.
    pub scope: Scope,
    /// The event's own id, for logs and transcripts.
    pub event_id: Option<String>,
}

/// The room as the rules see it: the JSON templates read as `chat`, and the
/// id and participants scoping needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Chat {
    json: Value,
    id: Option<String>,
    members: Vec<Member>,
}

/// What a room's participant tells about a message's sender.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
struct Member {
    #[serde(default, deserialize_with = "string_or_none")]
    id: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    name: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    handle: Option<String>,
}

/// `chat` as templates see it for a live room; the field order is the JSON's.
#[derive(Serialize)]
struct ChatJson<'a> {
    id: &'a str,
    title: Option<&'a str>,
    participants: Vec<ParticipantJson<'a>>,
}

/// One of `chat.participants`.
#[derive(Serialize)]
struct ParticipantJson<'a> {
    id: &'a str,
    handle: Option<&'a str>,
    name: Option<&'a str>,
    #[serde(rename = "type")]
    kind: EntityType,
    role: &'a str,
}

/// What is read of a hand-written `chat`; anything else is only for templates.
#[derive(Deserialize, Default)]
struct LooseChat {
    #[serde(default, deserialize_with = "string_or_none")]
    id: Option<String>,
    #[serde(default, deserialize_with = "objects")]
    participants: Vec<Member>,
}

/// Hand-written values may be anything: a non-string counts as absent.
fn string_or_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

/// The object entries of a list; anything else counts as no entry.
fn objects<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Member>, D::Error> {
    let Value::Array(items) = Value::deserialize(d)? else {
        return Ok(Vec::new());
    };
    Ok(items
        .iter()
        .filter(|item| item.is_object())
        .filter_map(|item| Member::deserialize(item).ok())
        .collect())
}

impl Chat {
    /// A room the runtime serves (live events).
    pub fn of_room(room: &RoomInfo) -> Chat {
        let json = ChatJson {
            id: &room.id,
            title: room.title.as_deref(),
            participants: room
                .participants
                .iter()
                .map(|p| ParticipantJson {
                    id: &p.id,
                    handle: p.handle.as_deref(),
                    name: p.name.as_deref(),
                    kind: p.kind,
                    role: &p.role,
                })
                .collect(),
        };
        Chat {
            json: serde_json::to_value(json).unwrap_or(Value::Null),
            id: Some(room.id.clone()),
            members: room
                .participants
                .iter()
                .map(|p| Member {
                    id: Some(p.id.clone()),
                    name: p.name.clone(),
                    handle: p.handle.clone(),
                })
                .collect(),
        }
    }

    /// A room written by hand or recorded (tests, `explain`, `replay`): kept
    /// verbatim for templates; its id and participants read where readable.
    pub fn from_json(json: Value) -> Chat {
        // Only objects: serde would read an array positionally as a struct.
        let loose = match &json {
            Value::Object(_) => LooseChat::deserialize(&json).unwrap_or_default(),
            _ => LooseChat::default(),
        };
        Chat {
            json,
            id: loose.id,
            members: loose.participants,
        }
    }

    /// The JSON templates read as `chat`.
    pub fn json(&self) -> &Value {
        &self.json
    }

    fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id.as_deref() == Some(id))
    }

    /// The handle of the participant `id`, when the room lists one.
    fn handle(&self, id: &str) -> Option<&str> {
        self.member(id).and_then(|m| m.handle.as_deref())
    }
}

/// A live event's engine input and scope: `event` is its typed payload as
/// JSON, the ids come from its typed fields.
pub fn typed_input(
    event: &Event,
    agent: Arc<Value>,
    chat: Option<Chat>,
    now: DateTime<Utc>,
) -> PreparedEvent {
    assemble(
        event.name(),
        event.payload(),
        EventFacts::from(event),
        agent,
        chat,
        now,
    )
}

/// The engine input and scope of an event given as JSON: the same for
/// workflow tests, `explain` and `replay` as [`typed_input`] for a live one.
pub fn event_input(
    event_type: &str,
    event: Value,
    agent: Value,
    chat: Option<Value>,
    now: DateTime<Utc>,
) -> PreparedEvent {
    let facts = EventFacts::from_payload(event_type, &event);
    let chat = chat.map(Chat::from_json);
    assemble(event_type, event, facts, Arc::new(agent), chat, now)
}

/// What is read of the agent for `event.text`: its own handle, for markers
/// naming it that the message's metadata does not resolve.
#[derive(Deserialize, Default)]
struct LooseAgent {
    #[serde(default, deserialize_with = "string_or_none")]
    id: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    handle: Option<String>,
}

/// A message event's `text`: its content with each `@[[id]]` marker made
/// `@handle` (from the message's mentions, the room's participants, the
/// agent) or removed when nobody known has that id.
fn message_text(facts: &EventFacts, chat: Option<&Chat>, agent: &Value) -> Option<String> {
    let parts = facts.message_text.as_ref()?;
    let me = match agent {
        Value::Object(_) => LooseAgent::deserialize(agent).unwrap_or_default(),
        _ => LooseAgent::default(),
    };
    Some(parts.text(|id| {
        chat.and_then(|c| c.handle(id)).or_else(|| {
            (me.id.as_deref() == Some(id))
                .then_some(me.handle.as_deref())
                .flatten()
        })
    }))
}

fn assemble(
    event_type: &str,
    mut event: Value,
    facts: EventFacts,
    agent: Arc<Value>,
    chat: Option<Chat>,
    now: DateTime<Utc>,
) -> PreparedEvent {
    if let (Some(text), Value::Object(fields)) =
        (message_text(&facts, chat.as_ref(), &agent), &mut event)
    {
        fields.insert("text".to_owned(), Value::String(text));
    }
    // The handle (and a missing name) come from the room's participant list.
    let sender = facts.sender.map(|s| {
        let known = chat.as_ref().and_then(|c| c.member(&s.id));
        Sender {
            name: s.name.or_else(|| known.and_then(|m| m.name.clone())),
            handle: known.and_then(|m| m.handle.clone()),
            kind: s.kind,
            id: s.id,
        }
    });
    let scope = Scope {
        chat_id: chat.as_ref().and_then(|c| c.id.clone()).or(facts.room_id),
        message_id: facts.message_id,
        sender: sender.clone(),
        contact_request_id: facts.contact_request_id,
        contact_from: facts.contact_from,
        step: None,
        not_before: None,
    };
    let input = EventInput {
        event_type: event_type.to_owned(),
        event: Arc::new(event),
        agent,
        chat: chat.map(|c| Arc::new(c.json)),
        sender: sender.map(|s| Arc::new(serde_json::to_value(s).unwrap_or(Value::Null))),
        now,
    };
    PreparedEvent {
        input,
        scope,
        event_id: facts.event_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use band_wire::model::ChatParticipant;
    use serde_json::json;

    const T: &str = "2024-05-01T09:00:00Z";

    fn now() -> DateTime<Utc> {
        T.parse().unwrap()
    }

    fn room() -> RoomInfo {
        let p = |v: Value| serde_json::from_value::<ChatParticipant>(v).unwrap();
        RoomInfo {
            id: "r1".into(),
            title: Some("Support".into()),
            participants: vec![
                p(
                    json!({"id":"u1","role":"owner","status":"active","type":"User",
                         "name":"Ann","handle":"ann","online":true}),
                ),
                p(
                    json!({"id":"a1","role":"member","status":"active","type":"Agent",
                         "handle":"o/bot"}),
                ),
            ],
        }
    }

    /// `chat` exactly as workflows and docs read it (ordered keys, nulls kept).
    fn chat_json() -> Value {
        json!({"id":"r1","title":"Support","participants":[
            {"id":"u1","handle":"ann","name":"Ann","type":"User","role":"owner"},
            {"id":"a1","handle":"o/bot","name":null,"type":"Agent","role":"member"}]})
    }

    /// Per event: the payload as received, the `event` the rules see (the
    /// validator's normalisations applied), `sender`, and the scope's ids.
    #[allow(clippy::type_complexity)]
    fn cases() -> Vec<(&'static str, Value, Value, Value, [Option<&'static str>; 3])> {
        let message = json!({"id":"m1","content":"@[[a1]] hi","message_type":"text",
            "sender_id":"u1","sender_type":"User","chat_room_id":"r1","inserted_at":T,
            "updated_at":T,"thread_id":"th1","extra_key":1});
        let normalised = json!({"id":"m1","content":"@[[a1]] hi","message_type":"text",
            "sender_id":"u1","sender_type":"User","chat_room_id":"r1","thread_id":"th1",
            "metadata":{"mentions":[]},"attachments":[],"inserted_at":T,"updated_at":T,
            "extra_key":1,"text":"@[[a1]] hi"});
        let sender = json!({"id":"u1","type":"User","name":"Ann","handle":"ann"});
        vec![
            (
                "message_created",
                message.clone(),
                normalised.clone(),
                sender,
                [Some("r1"), Some("m1"), None],
            ),
            (
                "room_added",
                json!({"id":"r1","inserted_at":T,"updated_at":T,"title":"Support","type":"group"}),
                json!({"id":"r1","inserted_at":T,"updated_at":T,"title":"Support","task_id":null,"type":"group"}),
                Value::Null,
                [Some("r1"), None, None],
            ),
            (
                "room_removed",
                json!({"id":"r1","inserted_at":T,"updated_at":T}),
                json!({"id":"r1","inserted_at":T,"updated_at":T,"title":null,"task_id":null}),
                Value::Null,
                [Some("r1"), None, None],
            ),
            (
                "room_deleted",
                json!({"id":"r1"}),
                json!({"id":"r1"}),
                Value::Null,
                [Some("r1"), None, None],
            ),
            (
                "participant_added",
                json!({"id":"u2","name":"Bo","type":"User","handle":"bo","is_remote":true,"role":"member"}),
                json!({"id":"u2","name":"Bo","type":"User","handle":"bo","description":null,
                       "is_remote":true,"is_external":true,"role":"member"}),
                Value::Null,
                [Some("r1"), None, None],
            ),
            (
                "participant_removed",
                json!({"id":"u2","name":"Bo","type":"User"}),
                json!({"id":"u2","name":"Bo","type":"User"}),
                Value::Null,
                [Some("r1"), None, None],
            ),
            (
                "contact_request_received",
                json!({"id":"cr1","status":"pending","inserted_at":T,"from_handle":"bo",
                       "from_name":null,"message":"hi"}),
                json!({"id":"cr1","status":"pending","inserted_at":T,"from_handle":"bo",
                       "from_name":null,"message":"hi"}),
                Value::Null,
                [None, None, Some("cr1")],
            ),
            (
                "contact_request_updated",
                json!({"id":"cr1","status":"approved"}),
                json!({"id":"cr1","status":"approved"}),
                Value::Null,
                [None, None, Some("cr1")],
            ),
            (
                "contact_added",
                json!({"id":"u2","type":"User","inserted_at":T,"handle":null,"name":"Bo"}),
                json!({"id":"u2","type":"User","inserted_at":T,"handle":null,"name":"Bo",
                       "description":null}),
                Value::Null,
                [None, None, None],
            ),
            (
                "contact_removed",
                json!({"id":"u2"}),
                json!({"id":"u2"}),
                Value::Null,
                [None, None, None],
            ),
        ]
    }

    /// Fails when a typed conversion drops, renames or reorders a field the
    /// rules see, or scopes an event differently from its JSON form.
    #[test]
    fn every_rule_event_reaches_the_rules_unchanged() {
        let agent = json!({"id":"a1","name":"Bot","handle":"o/bot"});
        for (name, payload, event_json, sender, [room_id, message, request]) in cases() {
            let event = Event::decode(name, payload.clone()).unwrap();
            let in_room = !name.starts_with("contact_");
            let chat = in_room.then(|| Chat::of_room(&room()));
            let PreparedEvent {
                input,
                scope,
                event_id,
            } = typed_input(&event, Arc::new(agent.clone()), chat, now());
            assert_eq!(event_id.as_deref(), payload["id"].as_str(), "{name}: id");
            assert_eq!(input.event_type, name);
            // Compared as text: key order is part of what templates and records show.
            assert_eq!(
                input.event.to_string(),
                event_json.to_string(),
                "{name}: event"
            );
            let chat_seen = input.chat.as_deref().cloned().unwrap_or(Value::Null);
            let chat_want = if in_room { chat_json() } else { Value::Null };
            assert_eq!(chat_seen.to_string(), chat_want.to_string(), "{name}: chat");
            let sender_seen = input.sender.as_deref().cloned().unwrap_or(Value::Null);
            assert_eq!(
                sender_seen.to_string(),
                sender.to_string(),
                "{name}: sender"
            );
            assert_eq!(*input.agent, agent);
            assert_eq!(scope.chat_id.as_deref(), room_id, "{name}: room");
            assert_eq!(scope.message_id.as_deref(), message, "{name}: message");
            assert_eq!(
                scope.contact_request_id.as_deref(),
                request,
                "{name}: request"
            );

            // A dry run of the same event and room sees and scopes the same.
            let dry = event_input(
                name,
                event.payload(),
                agent.clone(),
                in_room.then(chat_json),
                now(),
            );
            assert_eq!(dry.input.event, input.event, "{name}: dry event");
            assert_eq!(dry.input.chat, input.chat, "{name}: dry chat");
            assert_eq!(dry.input.sender, input.sender, "{name}: dry sender");
            assert_eq!(dry.scope, scope, "{name}: dry scope");
            assert_eq!(dry.event_id, event_id, "{name}: dry id");
        }
    }

    /// `event.text` names who the markers name, by the handles the message,
    /// the room and the agent know, in live events and dry runs alike.
    #[test]
    fn message_text_replaces_markers_with_known_handles() {
        const AGENT: &str = "7d75c1b8-2808-4598-94fa-eda0d983b580";
        const ANN: &str = "4f1ce37f-1316-4f79-835b-6074dd0cb943";
        const NOBODY: &str = "0c0e7d8a-1111-4f79-835b-6074dd0cb943";
        let content = format!("@[[{AGENT}]] @[[{NOBODY}]] 42 for @[[{ANN}]]");
        let payload = json!({"id":"m1","content":content,"message_type":"text",
            "sender_id":ANN,"sender_type":"User","chat_room_id":"r1","inserted_at":T,
            "updated_at":T});
        let agent = json!({"id": AGENT, "handle": "o/bot"});
        let mut room = room();
        room.participants[0].id = ANN.into();
        let event = Event::decode("message_created", payload.clone()).unwrap();
        let live = typed_input(
            &event,
            Arc::new(agent.clone()),
            Some(Chat::of_room(&room)),
            now(),
        );
        assert_eq!(live.input.event["text"], json!("@o/bot 42 for @ann"));
        assert_eq!(live.input.event["content"], json!(content), "content kept");
        let chat =
            serde_json::to_value(json!({"id":"r1","participants":[{"id":ANN,"handle":"ann"}]}));
        let dry = event_input("message_created", payload.clone(), agent, chat.ok(), now());
        assert_eq!(dry.input.event["text"], json!("@o/bot 42 for @ann"));
        let bare = event_input("message_created", payload, json!({}), None, now());
        assert_eq!(
            bare.input.event["text"],
            json!("42 for"),
            "unknown ids removed"
        );
    }

    #[test]
    fn room_events_without_a_room_scope_to_their_own_id() {
        let event = Event::decode("room_deleted", json!({"id":"r7"})).unwrap();
        let scope = typed_input(&event, Arc::new(json!({})), None, now()).scope;
        assert_eq!(scope.chat_id.as_deref(), Some("r7"));
    }

    #[test]
    fn hand_written_events_keep_their_json_and_read_what_they_can() {
        let payload = json!({"id":"m1","chat_room_id":"r2","content":"hi","sender_id":"u9",
                             "sender_type":"User"});
        let chat = json!({"id":"r1","topic":"x","participants":[
            {"id":"u9","handle":"zed","name":"Zed","type":"User"}, "junk", {"id": 3}]});
        let PreparedEvent { input, scope, .. } = event_input(
            "message_created",
            payload.clone(),
            json!({}),
            Some(chat.clone()),
            now(),
        );
        let mut with_text = payload.clone();
        with_text["text"] = json!("hi");
        assert_eq!(
            *input.event, with_text,
            "no normalisation in dry runs but the text"
        );
        assert_eq!(input.chat.as_deref(), Some(&chat), "chat kept verbatim");
        assert_eq!(
            input.sender.as_deref(),
            Some(&json!({"id":"u9","type":"User","name":"Zed","handle":"zed"}))
        );
        assert_eq!(scope.chat_id.as_deref(), Some("r1"), "the room given wins");
        let scope = event_input("message_created", payload, json!({}), None, now()).scope;
        assert_eq!(scope.chat_id.as_deref(), Some("r2"));
        let scheduled = event_input("schedule", json!({}), json!({}), None, now());
        assert_eq!(scheduled.input.sender, None);
        assert_eq!(scheduled.scope, Scope::default());
        assert_eq!(scheduled.event_id, None);
    }
}
