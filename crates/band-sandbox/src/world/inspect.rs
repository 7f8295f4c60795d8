//! What the sandbox shows about itself (`/_sandbox/state`, users, a room's
//! lifecycles) and who may join which socket topic.

use serde_json::{json, Map, Value};

use super::messages::Message;
use super::views::to_json;
use super::World;
use crate::hub::Principal;
use band_wire::events::{TopicKind, UserTopicKind};
use band_wire::model::EntityType;

impl World {
    /// Whether `who` may join `topic` (see `SocketBackend::can_join`).
    pub fn can_join(&self, who: &Principal, topic: &str) -> Result<(), String> {
        // A room's topics: whoever reads the room. An entity's own topics:
        // that entity alone (for the other kind of entity the topic is unmatched).
        let (owner, id) = if let Some((kind, id)) = TopicKind::parse(topic) {
            match kind {
                TopicKind::ChatRoom | TopicKind::RoomParticipants => {
                    return match self.room(id) {
                        Some(r) if self.can_read(who, r) => Ok(()),
                        _ => Err("unauthorized: not a participant of this room".into()),
                    }
                }
                TopicKind::AgentRooms | TopicKind::AgentContacts | TopicKind::AgentControl => {
                    (EntityType::Agent, id)
                }
            }
        } else if let Some((_, id)) = UserTopicKind::parse(topic) {
            (EntityType::User, id)
        } else {
            return Err("unmatched topic".into());
        };
        if who.kind != owner {
            return Err("unmatched topic".into());
        }
        if id == who.id {
            Ok(())
        } else {
            Err("unauthorized".into())
        }
    }

    /// One message as `/_sandbox/state` shows it, with its per-agent `delivery`.
    fn message_state(m: &Message) -> Value {
        let delivery: Map<String, Value> = m
            .delivery
            .iter()
            .map(|(k, d)| {
                let attempts = to_json(&d.attempt_views());
                (k.clone(), json!({"status": d.status, "attempts": attempts}))
            })
            .collect();
        let mentions: Vec<Value> = m
            .mentions
            .iter()
            .map(|x| json!({"id": x.id, "handle": x.handle, "name": x.name, "kind": if x.reference { "reference" } else { "mention" }}))
            .collect();
        json!({
            "id": m.id,
            "chat_room_id": m.room_id,
            "sender_id": m.sender_id,
            "sender_type": m.sender_kind.as_str(),
            "message_type": m.message_type,
            "content": m.content,
            "mentions": mentions,
            "inserted_at": m.inserted_at,
            "delivery": delivery,
        })
    }

    /// `GET /_sandbox/rooms/{id}/messages`: one room's messages, oldest first,
    /// in the shape of `/_sandbox/state`; `None` when there is no such room.
    pub fn room_messages_state(&self, room_id: &str) -> Option<Vec<Value>> {
        self.room(room_id)?;
        Some(
            self.messages
                .iter()
                .filter(|m| m.room_id == room_id)
                .map(Self::message_state)
                .collect(),
        )
    }

    /// `GET /_sandbox/users`: the seeded people with their keys, so the
    /// console can act as them (sandbox fixtures on loopback, not secrets).
    pub fn users_state(&self) -> Vec<Value> {
        self.entities
            .iter()
            .filter(|e| e.kind == EntityType::User)
            .map(|e| json!({"id": e.id, "handle": e.handle, "name": e.name, "api_key": e.api_key}))
            .collect()
    }

    /// `GET /_sandbox/state` (without `connections`, which the hub adds).
    pub fn state(&self) -> Value {
        let users: Vec<Value> = self
            .entities
            .iter()
            .filter(|e| e.kind == EntityType::User)
            .map(|e| json!({"id": e.id, "handle": e.handle, "name": e.name}))
            .collect();
        let agents: Vec<Value> = self
            .entities
            .iter()
            .filter(|e| e.kind == EntityType::Agent)
            .map(|e| {
                json!({"id": e.id, "handle": e.handle, "name": e.name, "description": e.description, "owner_id": e.owner_id})
            })
            .collect();
        let rooms: Vec<Value> = self
            .rooms
            .iter()
            .map(|r| {
                let parts: Vec<Value> = r
                    .members
                    .iter()
                    .map(|m| {
                        let e = self.entity(&m.id);
                        json!({
                            "id": m.id,
                            "handle": e.map(|e| e.handle.clone()),
                            "type": e.map(|e| e.kind.as_str()),
                            "role": m.role,
                        })
                    })
                    .collect();
                json!({"id": r.id, "title": r.title, "inserted_at": r.inserted_at, "participants": parts})
            })
            .collect();
        let messages: Vec<Value> = self.messages.iter().map(Self::message_state).collect();
        let handle = |id: &str| {
            self.entity(id)
                .map(|e| e.handle.clone())
                .unwrap_or_else(|| id.to_string())
        };
        let contacts: Vec<Value> = self
            .contacts
            .iter()
            .map(|c| json!([handle(&c.a), handle(&c.b)]))
            .collect();
        let requests: Vec<Value> = self
            .requests
            .iter()
            .map(|r| json!({"id": r.id, "from": handle(&r.from), "to": handle(&r.to), "status": r.status, "message": r.message}))
            .collect();
        json!({
            "users": users,
            "agents": agents,
            "rooms": rooms,
            "messages": messages,
            "contacts": contacts,
            "contact_requests": requests,
            "stopped": self.stopped_state(),
        })
    }
}
