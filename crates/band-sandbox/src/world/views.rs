//! The wire JSON the world answers and pushes with: one `Serialize` struct
//! per shape, fields in the platform's key order (serde keeps declaration
//! order, and the bytes must not change).

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::contacts::{Contact, ContactRequest};
use super::messages::{Delivery, Message};
use super::{Entity, Member, Room, World};
use crate::hub::Presence;
use band_wire::model::{DeliveryStatus, EntityType};

/// Serialises a view. Views are plain strings, numbers and maps with string
/// keys, which serde_json always accepts; `Null` is never reached.
pub(crate) fn to_json<T: Serialize>(view: &T) -> Value {
    serde_json::to_value(view).unwrap_or(Value::Null)
}

/// `{id, handle, name}` of an entity, or `{id}` for an unknown one.
#[derive(Serialize)]
pub(super) struct Identity<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    handle: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

impl<'a> Identity<'a> {
    pub(super) fn of(e: &'a Entity) -> Identity<'a> {
        Identity {
            id: &e.id,
            handle: Some(&e.handle),
            name: Some(&e.name),
        }
    }
}

#[derive(Serialize)]
struct AgentMe<'a> {
    id: &'a str,
    name: &'a str,
    handle: &'a str,
    description: Option<&'a str>,
    owner_uuid: Option<&'a str>,
    feature_flags: Map<String, Value>,
    inserted_at: &'a str,
    updated_at: &'a str,
}

#[derive(Serialize)]
struct UserProfile<'a> {
    id: &'a str,
    email: String,
    handle: &'a str,
    role: &'static str,
    first_name: &'a str,
    last_name: Option<&'a str>,
    name: &'a str,
}

#[derive(Serialize)]
struct Participant<'a> {
    id: &'a str,
    role: &'a str,
    status: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    name: Option<&'a str>,
    handle: Option<&'a str>,
    online: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
}

/// A room as agents see it.
#[derive(Serialize)]
struct RoomView<'a> {
    id: &'a str,
    title: Option<&'a str>,
    task_id: Option<&'a str>,
    inserted_at: &'a str,
    updated_at: &'a str,
}

/// A room as people see it: the agent shape plus type, status and last_message_at.
#[derive(Serialize)]
struct HumanRoomView<'a> {
    #[serde(flatten)]
    room: RoomView<'a>,
    #[serde(rename = "type")]
    kind: &'static str,
    status: &'static str,
    last_message_at: Option<&'a str>,
}

#[derive(Serialize)]
struct RoomListItem<'a, R: Serialize> {
    #[serde(flatten)]
    room: R,
    participant_count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    participants: Option<Vec<Participant<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    participants_truncated: Option<bool>,
}

/// The room in `room_added` / `room_removed` pushes.
#[derive(Serialize)]
struct RoomEvent<'a> {
    #[serde(flatten)]
    room: RoomView<'a>,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    participant_role: Option<&'a str>,
}

/// The entity in `participant_added` and `contact_added` pushes.
#[derive(Serialize)]
struct ParticipantAdded<'a> {
    id: &'a str,
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    handle: &'a str,
    role: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
}

#[derive(Serialize)]
struct ParticipantRemoved<'a> {
    id: &'a str,
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct MentionView<'a> {
    id: &'a str,
    handle: &'a str,
    name: &'a str,
    username: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
}

#[derive(Serialize)]
pub(super) struct AttemptView<'a> {
    attempt_number: u64,
    status: DeliveryStatus,
    started_at: &'a str,
    finished_at: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

#[derive(Serialize)]
struct DeliveryView<'a> {
    status: DeliveryStatus,
    current_attempt: Option<u64>,
    attempts: Vec<AttemptView<'a>>,
}

#[derive(Serialize)]
struct MessageView<'a> {
    id: &'a str,
    content: &'a str,
    message_type: &'a str,
    sender_id: &'a str,
    sender_type: &'static str,
    sender_name: &'a str,
    chat_room_id: &'a str,
    thread_id: Option<&'a str>,
    metadata: Map<String, Value>,
    attachments: [Value; 0],
    inserted_at: &'a str,
    updated_at: &'a str,
}

#[derive(Serialize)]
struct Peer<'a> {
    id: &'a str,
    name: &'a str,
    handle: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    is_contact: bool,
    online: bool,
    source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
}

/// A contact in the agent API's flat form (also the `contact_added` push).
#[derive(Serialize)]
struct AgentContact<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    handle: &'a str,
    name: &'a str,
    online: bool,
    inserted_at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
}

/// `contact_added`: the agent contact shape without `online`, keys in push order.
#[derive(Serialize)]
struct ContactAdded<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    inserted_at: &'a str,
    handle: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
}

#[derive(Serialize)]
struct UserContact<'a> {
    id: &'a str,
    contact_id: &'a str,
    contact_type: &'static str,
    inserted_at: &'a str,
    online: bool,
    status: &'static str,
    source: &'static str,
    handle: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<Identity<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<Identity<'a>>,
}

#[derive(Serialize)]
struct RequestForUser<'a> {
    id: &'a str,
    status: &'a str,
    inserted_at: &'a str,
    requester_id: &'a str,
    recipient_id: &'a str,
    message: Option<&'a str>,
    responded_at: Option<&'a str>,
    requester_type: Option<&'static str>,
    recipient_type: Option<&'static str>,
    requester: Identity<'a>,
    recipient: Identity<'a>,
}

#[derive(Serialize)]
struct RequestReceived<'a> {
    id: &'a str,
    status: &'a str,
    inserted_at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    from_handle: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

#[derive(Serialize)]
struct RequestSent<'a> {
    id: &'a str,
    status: &'a str,
    inserted_at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    to_handle: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

impl Delivery {
    /// `delivery_status.<agent>` of a message.
    fn view(&self) -> DeliveryView<'_> {
        DeliveryView {
            status: self.status,
            current_attempt: self.attempts.last().map(|a| a.number),
            attempts: self.attempt_views(),
        }
    }

    pub(super) fn attempt_views(&self) -> Vec<AttemptView<'_>> {
        self.attempts
            .iter()
            .map(|a| AttemptView {
                attempt_number: a.number,
                status: a.status,
                started_at: &a.started_at,
                finished_at: a.finished_at.as_deref(),
                error: a.error.as_deref(),
            })
            .collect()
    }
}

impl World {
    /// `{id, handle, name}` of `id`, or `{id}` when unknown.
    pub(super) fn identity<'a>(&'a self, id: &'a str) -> Identity<'a> {
        match self.entity(id) {
            Some(e) => Identity::of(e),
            None => Identity {
                id,
                handle: None,
                name: None,
            },
        }
    }

    /// `GET /agent/me`.
    pub fn agent_me(&self, id: &str) -> Value {
        match self.entity(id) {
            Some(e) => to_json(&AgentMe {
                id: &e.id,
                name: &e.name,
                handle: &e.handle,
                description: e.description.as_deref(),
                owner_uuid: e.owner_id.as_deref(),
                feature_flags: Map::new(),
                inserted_at: &e.inserted_at,
                updated_at: &e.inserted_at,
            }),
            None => json!({ "id": id }),
        }
    }

    /// `GET /me/profile` (UserDetails).
    pub fn user_profile(&self, id: &str) -> Value {
        match self.entity(id) {
            Some(e) => {
                let mut parts = e.name.splitn(2, ' ');
                let first = parts.next().unwrap_or_default();
                let last = parts.next();
                to_json(&UserProfile {
                    id: &e.id,
                    email: format!("{}@sandbox.local", e.handle),
                    handle: &e.handle,
                    role: "user",
                    first_name: first,
                    last_name: last,
                    name: &e.name,
                })
            }
            None => json!({ "id": id }),
        }
    }

    /// `{"type", "handle", "name"}` of an entity (`/me/contacts/resolve`).
    pub fn resolved(e: &Entity) -> Value {
        json!({"type": e.kind.as_str(), "handle": e.handle, "name": e.name})
    }

    fn participant<'a>(&'a self, m: &'a Member, online: &Presence) -> Participant<'a> {
        let e = self.entity(&m.id);
        Participant {
            id: &m.id,
            role: &m.role,
            status: &m.status,
            kind: e.map(|e| e.kind.as_str()).unwrap_or("User"),
            name: e.map(|e| e.name.as_str()),
            handle: e.map(|e| e.handle.as_str()),
            online: online.is_online(&m.id),
            description: e.and_then(|e| e.description.as_deref()),
        }
    }

    /// One participant row.
    pub(super) fn participant_json(&self, m: &Member, online: &Presence) -> Value {
        to_json(&self.participant(m, online))
    }

    fn room_view(room: &Room) -> RoomView<'_> {
        RoomView {
            id: &room.id,
            title: room.title.as_deref(),
            task_id: room.task_id.as_deref(),
            inserted_at: &room.inserted_at,
            updated_at: &room.updated_at,
        }
    }

    fn human_room_view<'a>(&'a self, room: &'a Room) -> HumanRoomView<'a> {
        let last = self
            .messages
            .iter()
            .rev()
            .find(|m| m.room_id == room.id && m.message_type == "text")
            .map(|m| m.inserted_at.as_str());
        HumanRoomView {
            room: Self::room_view(room),
            kind: "group",
            status: "active",
            last_message_at: last,
        }
    }

    /// A room in the form `viewer` reads it.
    pub(super) fn room_json(&self, room: &Room, viewer: EntityType) -> Value {
        match viewer {
            EntityType::Agent => to_json(&Self::room_view(room)),
            EntityType::User => to_json(&self.human_room_view(room)),
        }
    }

    /// A row of a room list, with its first 100 participants when asked.
    pub(super) fn room_list_item(
        &self,
        room: &Room,
        participants: bool,
        online: &Presence,
        viewer: EntityType,
    ) -> Value {
        let (list, truncated) = if participants {
            let list = room
                .members
                .iter()
                .take(100)
                .map(|m| self.participant(m, online))
                .collect();
            (Some(list), Some(room.members.len() > 100))
        } else {
            (None, None)
        };
        let count = room.members.len();
        match viewer {
            EntityType::Agent => to_json(&RoomListItem {
                room: Self::room_view(room),
                participant_count: count,
                participants: list,
                participants_truncated: truncated,
            }),
            EntityType::User => to_json(&RoomListItem {
                room: self.human_room_view(room),
                participant_count: count,
                participants: list,
                participants_truncated: truncated,
            }),
        }
    }

    /// The room in a `room_added` / `room_removed` push to `who`.
    pub(super) fn room_event_payload(room: &Room, who: &str) -> Value {
        to_json(&RoomEvent {
            room: Self::room_view(room),
            kind: "group",
            participant_role: World::member(room, who).map(|m| m.role.as_str()),
        })
    }

    /// The `participant_added` push.
    pub(super) fn participant_added(other: &Entity, role: &str) -> Value {
        to_json(&ParticipantAdded {
            id: &other.id,
            name: &other.name,
            kind: other.kind.as_str(),
            handle: &other.handle,
            role,
            description: other.description.as_deref(),
        })
    }

    /// The `participant_removed` push.
    pub(super) fn participant_removed(e: &Entity) -> Value {
        to_json(&ParticipantRemoved {
            id: &e.id,
            name: &e.name,
            kind: e.kind.as_str(),
        })
    }

    /// A message, with `viewer_agent`'s delivery state when given.
    pub(super) fn message_json(&self, m: &Message, viewer_agent: Option<&str>) -> Value {
        let mut meta = m.extra_metadata.clone();
        let mentions: Vec<MentionView> = m
            .mentions
            .iter()
            .map(|x| MentionView {
                id: &x.id,
                handle: &x.handle,
                name: &x.name,
                username: &x.handle,
                kind: x.reference.then_some("reference"),
            })
            .collect();
        meta.insert("mentions".into(), to_json(&mentions));
        meta.insert("status".into(), json!("sent"));
        if let Some(agent) = viewer_agent {
            if let Some(d) = m.delivery.get(agent) {
                let mut by_agent = Map::new();
                by_agent.insert(agent.to_string(), to_json(&d.view()));
                meta.insert("delivery_status".into(), Value::Object(by_agent));
            }
        }
        to_json(&MessageView {
            id: &m.id,
            content: &m.content,
            message_type: &m.message_type,
            sender_id: &m.sender_id,
            sender_type: m.sender_kind.as_str(),
            sender_name: &m.sender_name,
            chat_room_id: &m.room_id,
            thread_id: None,
            metadata: meta,
            attachments: [],
            inserted_at: &m.inserted_at,
            updated_at: &m.inserted_at,
        })
    }

    /// A row of `/peers`.
    pub(super) fn peer_json(
        &self,
        me: &Entity,
        e: &Entity,
        source: &'static str,
        online: &Presence,
    ) -> Value {
        to_json(&Peer {
            id: &e.id,
            name: &e.name,
            handle: &e.handle,
            kind: e.kind.as_str(),
            is_contact: self.are_contacts(&me.id, &e.id),
            online: online.is_online(&e.id),
            source,
            description: e.description.as_deref(),
        })
    }

    /// A contact in the form `viewer` reads it.
    pub(super) fn contact_json(
        e: &Entity,
        c: &Contact,
        online: &Presence,
        viewer: EntityType,
    ) -> Value {
        match viewer {
            EntityType::Agent => to_json(&AgentContact {
                id: &e.id,
                kind: e.kind.as_str(),
                handle: &e.handle,
                name: &e.name,
                online: online.is_online(&e.id),
                inserted_at: &c.inserted_at,
                description: e.description.as_deref(),
            }),
            EntityType::User => {
                let agent = e.kind == EntityType::Agent;
                to_json(&UserContact {
                    id: &c.id,
                    contact_id: &e.id,
                    contact_type: e.kind.as_str(),
                    inserted_at: &c.inserted_at,
                    online: online.is_online(&e.id),
                    status: "active",
                    source: "request",
                    handle: &e.handle,
                    name: &e.name,
                    agent: agent.then(|| Identity::of(e)),
                    user: (!agent).then(|| Identity::of(e)),
                })
            }
        }
    }

    /// The `contact_added` push: `other` became a contact at `inserted_at`.
    pub(super) fn contact_added(other: &Entity, inserted_at: &str) -> Value {
        to_json(&ContactAdded {
            id: &other.id,
            kind: other.kind.as_str(),
            inserted_at,
            handle: &other.handle,
            name: &other.name,
            description: other.description.as_deref(),
        })
    }

    /// A contact request in the human API's form (both parties spelled out).
    pub(super) fn request_user_json(&self, r: &ContactRequest) -> Value {
        let kind = |id: &str| self.entity(id).map(|e| e.kind.as_str());
        to_json(&RequestForUser {
            id: &r.id,
            status: &r.status,
            inserted_at: &r.inserted_at,
            requester_id: &r.from,
            recipient_id: &r.to,
            message: r.message.as_deref(),
            responded_at: r.responded_at.as_deref(),
            requester_type: kind(&r.from),
            recipient_type: kind(&r.to),
            requester: self.identity(&r.from),
            recipient: self.identity(&r.to),
        })
    }

    /// A request an agent received.
    pub(super) fn request_received_json(&self, r: &ContactRequest) -> Value {
        let from = self.entity(&r.from);
        to_json(&RequestReceived {
            id: &r.id,
            status: &r.status,
            inserted_at: &r.inserted_at,
            from_handle: from.map(|f| f.handle.as_str()),
            from_name: from.map(|f| f.name.as_str()),
            message: r.message.as_deref(),
        })
    }

    /// A request an agent sent.
    pub(super) fn request_sent_json(&self, r: &ContactRequest) -> Value {
        let to = self.entity(&r.to);
        to_json(&RequestSent {
            id: &r.id,
            status: &r.status,
            inserted_at: &r.inserted_at,
            to_handle: to.map(|t| t.handle.as_str()),
            to_name: to.map(|t| t.name.as_str()),
            message: r.message.as_deref(),
        })
    }
}
