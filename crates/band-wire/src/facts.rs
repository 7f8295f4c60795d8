//! What an event is about, typed: its room, its message and sender, its
//! contact request; and the conversions between event payloads and models.
//! Kept beside [`crate::events`] so the layers above never pick these out of
//! JSON by key.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::events::{Event, ParticipantAdded};
use crate::mentions;
use crate::model::{ChatMessage, ChatParticipant, EntityType, Extra, Mention};

/// Who sent a message, as the message itself says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSender {
    /// Sender's id.
    pub id: String,
    /// `User`, `Agent` or `System` (empty when a hand-written event has none).
    pub kind: String,
    /// Display name, when the message carries one.
    pub name: Option<String>,
}

/// A message's content and the handles its own mention metadata gives, from
/// which the text rules match on (`event.text`) is made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageText {
    /// The content, with the platform's `@[[id]]` markers.
    pub content: String,
    /// `(id, handle)` of each mention in `metadata.mentions` that has both.
    pub mentions: Vec<(String, String)>,
}

impl MessageText {
    /// The content with each marker replaced by `@handle`: the handle from
    /// the message's own mentions, else from `known` (the room's
    /// participants, the agent); a marker nobody knows is removed.
    pub fn text<'a>(&'a self, known: impl Fn(&str) -> Option<&'a str>) -> String {
        mentions::replace_markers(&self.content, |id| {
            self.mentions
                .iter()
                .find(|(m, _)| m == id)
                .map(|(_, handle)| handle.as_str())
                .or_else(|| known(id))
        })
    }

    /// From a message's content and metadata, read leniently: a mention
    /// that is not an object with an id and a handle (or username) is skipped.
    fn read(content: &str, metadata: Option<&Value>) -> MessageText {
        let listed = metadata
            .and_then(|m| m.get("mentions"))
            .and_then(Value::as_array);
        let mentions = listed
            .into_iter()
            .flatten()
            .filter(|m| m.is_object())
            .filter_map(|m| Mention::deserialize(m).ok())
            .filter_map(|m| Some((m.id?, m.handle.or(m.username)?)))
            .collect();
        MessageText {
            content: content.to_owned(),
            mentions,
        }
    }
}

impl ChatMessage {
    /// The message's content and mention handles, for its text.
    pub fn text_parts(&self) -> MessageText {
        MessageText::read(&self.content, self.metadata.as_ref())
    }

    /// The message's sender.
    pub fn sender(&self) -> MessageSender {
        MessageSender {
            id: self.sender_id.clone(),
            kind: self.sender_type.clone(),
            name: self.sender_name.clone(),
        }
    }
}

/// The ids an event concerns, for scoping what is done about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFacts {
    /// The event's own id: the message's, room's, participant's, contact's
    /// or request's (control events have none).
    pub event_id: Option<String>,
    /// The room: a room event's own id, else a message's `chat_room_id`.
    pub room_id: Option<String>,
    /// The message being handled (`message_created` only: an edit is not handled).
    pub message_id: Option<String>,
    /// The sender of a `message_created`.
    pub sender: Option<MessageSender>,
    /// The request of a `contact_request_*` event.
    pub contact_request_id: Option<String>,
    /// Who sent the request of a `contact_request_received` (their handle).
    pub contact_from: Option<String>,
    /// A message event's content and mentions, to make `event.text` from;
    /// `None` when a hand-written event already has a `text`.
    pub message_text: Option<MessageText>,
}

impl From<&Event> for EventFacts {
    fn from(event: &Event) -> Self {
        let id = |id: &String| Some(id.clone());
        let (event_id, room_id) = match event {
            Event::MessageCreated(m) | Event::MessageUpdated(m) => {
                (id(&m.id), m.chat_room_id.clone())
            }
            Event::RoomAdded(r) | Event::RoomRemoved(r) => (id(&r.id), id(&r.id)),
            Event::RoomDeleted(r) => (id(&r.id), id(&r.id)),
            Event::ParticipantAdded(p) => (id(&p.id), None),
            Event::ParticipantRemoved(p) => (id(&p.id), None),
            Event::ContactRequestReceived(c) => (id(&c.id), None),
            Event::ContactRequestUpdated(c) => (id(&c.id), None),
            Event::ContactAdded(c) => (id(&c.id), None),
            Event::ContactRemoved(c) => (id(&c.id), None),
            Event::Supersede(_)
            | Event::AgentControl(_)
            | Event::EventCreated(_)
            | Event::Unknown { .. } => (None, None),
        };
        let created = match event {
            Event::MessageCreated(m) => Some(m),
            _ => None,
        };
        let message_text = match event {
            Event::MessageCreated(m) | Event::MessageUpdated(m) => Some(m.text_parts()),
            _ => None,
        };
        let contact_from = match event {
            Event::ContactRequestReceived(c) => c.from_handle.clone(),
            _ => None,
        };
        let request = matches!(
            event,
            Event::ContactRequestReceived(_) | Event::ContactRequestUpdated(_)
        );
        EventFacts {
            room_id,
            message_id: created.map(|m| m.id.clone()),
            sender: created.map(ChatMessage::sender),
            contact_request_id: event_id.clone().filter(|_| request),
            event_id,
            message_text,
            contact_from,
        }
    }
}

/// The keys [`EventFacts::from_payload`] reads; anything not a string counts
/// as absent, as a hand-written payload may hold anything.
#[derive(Deserialize, Default)]
struct LoosePayload {
    #[serde(default, deserialize_with = "string_or_none")]
    id: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    chat_room_id: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    sender_id: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    sender_type: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    sender_name: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    content: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    text: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default, deserialize_with = "string_or_none")]
    from_handle: Option<String>,
}

fn string_or_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

impl EventFacts {
    /// The facts of an event given as JSON that need not be valid platform
    /// input (workflow tests, `explain`, `replay`): the same answers as
    /// [`EventFacts::from`] for a valid payload, and whatever can be read of
    /// a partial one.
    pub fn from_payload(event: &str, payload: &Value) -> EventFacts {
        // Only objects: serde would read an array positionally as a struct.
        let loose = match payload {
            Value::Object(_) => LoosePayload::deserialize(payload).unwrap_or_default(),
            _ => LoosePayload::default(),
        };
        let room_id = match event {
            "room_added" | "room_removed" | "room_deleted" => loose.id.clone(),
            _ => loose.chat_room_id,
        };
        let message = event == "message_created";
        let message_text = match (&loose.content, &loose.text) {
            (Some(content), None) if message || event == "message_updated" => {
                Some(MessageText::read(content, loose.metadata.as_ref()))
            }
            _ => None,
        };
        EventFacts {
            message_text,
            contact_from: (event == "contact_request_received")
                .then_some(loose.from_handle)
                .flatten(),
            event_id: loose.id.clone(),
            room_id,
            message_id: message.then(|| loose.id.clone()).flatten(),
            sender: match (message, loose.sender_id) {
                (true, Some(id)) => Some(MessageSender {
                    id,
                    kind: loose.sender_type.unwrap_or_default(),
                    name: loose.sender_name,
                }),
                _ => None,
            },
            contact_request_id: event
                .starts_with("contact_request")
                .then_some(loose.id)
                .flatten(),
        }
    }
}

/// A `participant_added` whose entity type this crate does not model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("participant {id} has an unknown entity type {kind:?}")]
pub struct UnknownEntityType {
    /// The participant.
    pub id: String,
    /// The type it came with.
    pub kind: String,
}

impl TryFrom<&ParticipantAdded> for ChatParticipant {
    type Error = UnknownEntityType;

    /// The participant row the room's list would now show: an active
    /// member (or the `role` the event carries), with no presence yet.
    fn try_from(p: &ParticipantAdded) -> Result<Self, Self::Error> {
        let kind = EntityType::parse(&p.kind).ok_or_else(|| UnknownEntityType {
            id: p.id.clone(),
            kind: p.kind.clone(),
        })?;
        let role = match p.extra.get("role") {
            Some(Value::String(role)) => role.clone(),
            _ => "member".to_owned(),
        };
        Ok(ChatParticipant {
            id: p.id.clone(),
            role,
            status: "active".to_owned(),
            kind,
            name: Some(p.name.clone()),
            handle: p.handle.clone(),
            online: None,
            extra: Extra::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DeliveryStatus;
    use serde_json::json;

    /// One valid payload per event [`Event::decode`] types.
    fn events() -> Vec<Event> {
        let t = "2024-01-01T00:00:00Z";
        [
            (
                "message_created",
                json!({"id":"m1","content":"hi","message_type":"text","sender_id":"u1",
                       "sender_type":"User","sender_name":"Ann","chat_room_id":"r1",
                       "inserted_at":t,"updated_at":t}),
            ),
            (
                "message_updated",
                json!({"id":"m1","content":"hi!","message_type":"text","sender_id":"u1",
                       "sender_type":"User","chat_room_id":"r1","inserted_at":t,"updated_at":t}),
            ),
            (
                "room_added",
                json!({"id":"r1","inserted_at":t,"updated_at":t,"title":"T"}),
            ),
            (
                "room_removed",
                json!({"id":"r1","inserted_at":t,"updated_at":t}),
            ),
            ("room_deleted", json!({"id":"r1"})),
            (
                "participant_added",
                json!({"id":"u2","name":"Bo","type":"User","handle":"bo"}),
            ),
            (
                "participant_removed",
                json!({"id":"u2","name":"Bo","type":"User"}),
            ),
            (
                "contact_request_received",
                json!({"id":"cr1","status":"pending","inserted_at":t,"from_handle":"bo"}),
            ),
            (
                "contact_request_updated",
                json!({"id":"cr1","status":"approved"}),
            ),
            (
                "contact_added",
                json!({"id":"u2","type":"User","inserted_at":t,"handle":"bo","name":"Bo"}),
            ),
            ("contact_removed", json!({"id":"u2"})),
            (
                "supersede",
                json!({"reason":"r","message":"m","correlation_id":null}),
            ),
            (
                "agent.control",
                json!({"mode":"stop","scope":"room","agent_id":"a","correlation_id":"c",
                       "execution_id":null,"room_id":"r1"}),
            ),
            ("event_created", json!({"id":"e1","chat_room_id":"r1"})),
        ]
        .into_iter()
        .map(|(name, payload)| Event::decode(name, payload).unwrap())
        .collect()
    }

    #[test]
    fn typed_facts() {
        let facts: Vec<_> = events().iter().map(EventFacts::from).collect();
        let created = &facts[0];
        assert_eq!(created.event_id.as_deref(), Some("m1"));
        assert_eq!(created.room_id.as_deref(), Some("r1"));
        assert_eq!(created.message_id.as_deref(), Some("m1"));
        assert_eq!(
            created.sender,
            Some(MessageSender {
                id: "u1".into(),
                kind: "User".into(),
                name: Some("Ann".into())
            })
        );
        assert_eq!(facts[1].room_id.as_deref(), Some("r1"));
        assert_eq!(facts[1].message_id, None, "an edit is not handled");
        assert_eq!(facts[2].room_id.as_deref(), Some("r1"));
        assert_eq!(facts[4].room_id.as_deref(), Some("r1"));
        assert_eq!(facts[7].contact_request_id.as_deref(), Some("cr1"));
        assert_eq!(facts[8].contact_request_id.as_deref(), Some("cr1"));
        assert_eq!(facts[7].contact_from.as_deref(), Some("bo"));
        assert_eq!(facts[8].contact_from, None, "an update names no requester");
        assert_eq!(facts[9].event_id.as_deref(), Some("u2"));
        assert_eq!(facts[9].contact_request_id, None);
        assert_eq!(facts[11].event_id, None, "supersede has no id");
    }

    /// The typed facts and those read from the same payload as JSON agree
    /// for every event the rules see, so dry runs scope events as live ones.
    #[test]
    fn typed_and_json_facts_agree() {
        for event in events() {
            // Never reaches the rules; its payload is not read.
            if matches!(event, Event::EventCreated(_)) {
                continue;
            }
            assert_eq!(
                EventFacts::from(&event),
                EventFacts::from_payload(event.name(), &event.payload()),
                "{}",
                event.name()
            );
        }
    }

    #[test]
    fn partial_payloads_give_what_they_have() {
        let facts = EventFacts::from_payload(
            "message_created",
            &json!({"id": "m1", "sender_id": "u1", "sender_name": 5}),
        );
        assert_eq!(facts.message_id.as_deref(), Some("m1"));
        assert_eq!(facts.event_id.as_deref(), Some("m1"));
        assert_eq!(
            facts.sender,
            Some(MessageSender {
                id: "u1".into(),
                kind: String::new(),
                name: None
            })
        );
        assert_eq!(
            EventFacts::from_payload("message_created", &json!(["m1", "r1"])),
            EventFacts::default()
        );
    }

    #[test]
    fn message_text_takes_handles_from_the_mentions_then_from_who_is_known() {
        const A: &str = "7d75c1b8-2808-4598-94fa-eda0d983b580";
        const B: &str = "4f1ce37f-1316-4f79-835b-6074dd0cb943";
        const C: &str = "0c0e7d8a-1111-4f79-835b-6074dd0cb943";
        let t = "2024-01-01T00:00:00Z";
        let payload = json!({"id":"m1","content":format!("@[[{A}]] @[[{B}]] 42 @[[{C}]]"),
            "message_type":"text","sender_id":"u1","sender_type":"User","chat_room_id":"r1",
            "metadata":{"mentions":[{"id":A,"username":"o/bot"},{"id":B}]},
            "inserted_at":t,"updated_at":t});
        let event = Event::decode("message_created", payload.clone()).unwrap();
        let typed = EventFacts::from(&event).message_text.unwrap();
        assert_eq!(typed.mentions, [(A.to_owned(), "o/bot".to_owned())]);
        let known = |id: &str| (id == B).then_some("ann");
        assert_eq!(typed.text(known), "@o/bot @ann 42");
        assert_eq!(typed.text(|_| None), "@o/bot 42");
        let loose = EventFacts::from_payload("message_created", &payload);
        assert_eq!(loose.message_text, Some(typed));
        let mut given = payload.clone();
        given["text"] = json!("as written");
        let facts = EventFacts::from_payload("message_created", &given);
        assert_eq!(facts.message_text, None, "a hand-written text is kept");
        let updated = EventFacts::from_payload("message_updated", &payload);
        assert!(updated.message_text.is_some(), "edits have a text too");
        let mut junk = payload.clone();
        junk["metadata"]["mentions"][1] = json!("junk");
        let loose = EventFacts::from_payload("message_created", &junk).message_text;
        assert_eq!(loose.unwrap().text(|_| None), "@o/bot 42", "junk skipped");
        let room = EventFacts::from_payload("room_added", &payload);
        assert_eq!(room.message_text, None);
    }

    #[test]
    fn participant_added_becomes_a_participant_row() {
        let Event::ParticipantAdded(p) = Event::decode(
            "participant_added",
            json!({"id":"a1","name":"Bot","type":"Agent","handle":"o/bot","role":"admin"}),
        )
        .unwrap() else {
            panic!()
        };
        let row = ChatParticipant::try_from(&p).unwrap();
        assert_eq!(
            serde_json::to_value(&row).unwrap(),
            json!({"id":"a1","role":"admin","status":"active","type":"Agent",
                   "name":"Bot","handle":"o/bot"})
        );
        let mut other = p.clone();
        other.extra.clear();
        other.kind = "Team".into();
        assert!(ChatParticipant::try_from(&other).is_err());
        other.kind = "User".into();
        assert_eq!(ChatParticipant::try_from(&other).unwrap().role, "member");
    }

    #[test]
    fn delivery_status_is_ours_only() {
        let msg = |metadata: Value| -> ChatMessage {
            serde_json::from_value(json!({"id":"m1","content":"","message_type":"text",
                "sender_id":"u","sender_type":"User","metadata":metadata}))
            .unwrap()
        };
        let m = msg(json!({"delivery_status": {"me": {"status": "processed", "attempts": []}}}));
        assert_eq!(m.delivery_status("me"), Some(DeliveryStatus::Processed));
        assert_eq!(m.delivery_status("other"), None);
        let odd = msg(json!({"delivery_status": {"me": {"status": "archived"}}}));
        assert_eq!(odd.delivery_status("me"), None);
        assert_eq!(msg(Value::Null).delivery_status("me"), None);
    }
}
