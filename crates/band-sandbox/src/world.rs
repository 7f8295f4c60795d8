//! The sandbox's in-memory platform state and the operations on it: who
//! exists, rooms and their participants, messages with per-agent delivery
//! state, contacts and contact requests. Every operation checks permissions
//! the way the platform does and publishes the socket pushes it causes.
//!
//! Lock order: callers hold the world's mutex while calling in here, and the
//! hub takes its own lock inside `publish`; the hub never calls back into the
//! world, so the order is always world → hub.

use std::collections::{BTreeMap, HashSet};

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::http::ApiError;
use super::hub::{Audience, Hub, Principal};
use super::seed::Seed;
use band_wire::model::EntityType;

/// Content limit for messages, in bytes (markers not counted).
const MAX_CONTENT_BYTES: usize = 512 * 1024;
/// Content limit for events, in characters.
const MAX_EVENT_CHARS: usize = 16_384;
/// Serialized size limit for event metadata.
const MAX_EVENT_METADATA_BYTES: usize = 65_536;
/// Event types an agent may post.
const EVENT_TYPES: &[&str] = &[
    "tool_call",
    "tool_result",
    "thought",
    "error",
    "task",
    "attention",
];

/// Current time in the platform's ISO-8601 form.
pub fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn new_id() -> String {
    Uuid::new_v4().to_string()
}

fn strip_at(h: &str) -> &str {
    h.trim().strip_prefix('@').unwrap_or(h.trim())
}

/// A user or an agent.
#[derive(Clone)]
pub struct Entity {
    /// Id.
    pub id: String,
    /// User or Agent.
    pub kind: EntityType,
    /// Handle without `@` (`owner/slug` for agents).
    pub handle: String,
    /// Display name.
    pub name: String,
    /// Description (agents).
    pub description: Option<String>,
    /// API key; never logged.
    api_key: String,
    /// Owner's user id (agents).
    pub owner_id: Option<String>,
    /// Creation time.
    pub inserted_at: String,
}

/// One participant row.
#[derive(Clone)]
pub struct Member {
    /// Entity id.
    pub id: String,
    /// owner, admin or member.
    pub role: String,
    /// Membership status.
    pub status: String,
}

/// A chat room.
#[derive(Clone)]
pub struct Room {
    /// Id.
    pub id: String,
    /// Title.
    pub title: Option<String>,
    /// Linked task.
    pub task_id: Option<String>,
    /// Creation time.
    pub inserted_at: String,
    /// Update time.
    pub updated_at: String,
    /// Participant rows, in join order.
    pub members: Vec<Member>,
}

/// Delivery state of a message for one recipient agent.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DeliveryStatus {
    /// Not yet claimed.
    Delivered,
    /// An attempt is live.
    Processing,
    /// Done.
    Processed,
    /// Last attempt failed; served again by `/next`.
    Failed,
}

impl DeliveryStatus {
    /// Wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Processing => "processing",
            DeliveryStatus::Processed => "processed",
            DeliveryStatus::Failed => "failed",
        }
    }
}

/// One processing attempt.
#[derive(Clone)]
pub struct Attempt {
    number: u64,
    status: DeliveryStatus,
    started_at: String,
    finished_at: Option<String>,
    error: Option<String>,
}

/// Per-agent delivery record.
#[derive(Clone)]
pub struct Delivery {
    status: DeliveryStatus,
    attempts: Vec<Attempt>,
}

impl Delivery {
    fn json(&self) -> Value {
        let attempts: Vec<Value> = self
            .attempts
            .iter()
            .map(|a| {
                let mut v = json!({
                    "attempt_number": a.number,
                    "status": a.status.as_str(),
                    "started_at": a.started_at,
                    "finished_at": a.finished_at,
                });
                if let Some(e) = &a.error {
                    v["error"] = json!(e);
                }
                v
            })
            .collect();
        json!({
            "status": self.status.as_str(),
            "current_attempt": self.attempts.last().map(|a| a.number),
            "attempts": attempts,
        })
    }
}

/// A mention as stored.
#[derive(Clone)]
struct StoredMention {
    id: String,
    handle: String,
    name: String,
    reference: bool,
}

/// A message or event row.
#[derive(Clone)]
pub struct Message {
    id: String,
    room_id: String,
    sender_id: String,
    sender_kind: EntityType,
    sender_name: String,
    message_type: String,
    content: String,
    mentions: Vec<StoredMention>,
    extra_metadata: Map<String, Value>,
    inserted_at: String,
    delivery: BTreeMap<String, Delivery>,
}

/// A contact: one record for both directions.
#[derive(Clone)]
struct Contact {
    id: String,
    a: String,
    b: String,
    inserted_at: String,
}

impl Contact {
    fn other(&self, me: &str) -> Option<&str> {
        if self.a == me {
            Some(&self.b)
        } else if self.b == me {
            Some(&self.a)
        } else {
            None
        }
    }
}

/// A contact request.
#[derive(Clone)]
struct ContactRequest {
    id: String,
    from: String,
    to: String,
    status: String,
    message: Option<String>,
    inserted_at: String,
    responded_at: Option<String>,
}

/// What `/processing`, `/processed` and `/failed` ask for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mark {
    /// Start (or keep) an attempt.
    Processing,
    /// Finish the live attempt successfully.
    Processed,
    /// Finish the live attempt with an error.
    Failed,
}

/// How a contact request is answered.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Respond {
    /// Recipient accepts.
    Approve,
    /// Recipient declines.
    Reject,
    /// Requester withdraws.
    Cancel,
}

/// The whole platform state.
#[derive(Clone, Default)]
pub struct World {
    entities: Vec<Entity>,
    rooms: Vec<Room>,
    messages: Vec<Message>,
    contacts: Vec<Contact>,
    requests: Vec<ContactRequest>,
}

impl World {
    /// Builds the state a (validated) seed describes.
    pub fn from_seed(seed: &Seed) -> World {
        let mut w = World::default();
        let t = now();
        for u in &seed.users {
            let handle = strip_at(&u.handle.value).to_string();
            w.entities.push(Entity {
                id: u
                    .id
                    .as_ref()
                    .map(|i| i.value.clone())
                    .unwrap_or_else(new_id),
                kind: EntityType::User,
                name: u.name.clone().unwrap_or_else(|| handle.clone()),
                handle,
                description: None,
                api_key: u.api_key.value.clone(),
                owner_id: None,
                inserted_at: t.clone(),
            });
        }
        for a in &seed.agents {
            let handle = strip_at(&a.handle.value).to_string();
            let owner_handle = match &a.owner {
                Some(o) => strip_at(&o.value).to_string(),
                None => handle.split('/').next().unwrap_or_default().to_string(),
            };
            let owner_id = w.by_handle(&owner_handle).map(|e| e.id.clone());
            w.entities.push(Entity {
                id: a
                    .id
                    .as_ref()
                    .map(|i| i.value.clone())
                    .unwrap_or_else(new_id),
                kind: EntityType::Agent,
                handle,
                name: a.name.clone(),
                description: Some(a.description.value.clone()),
                api_key: a.api_key.value.clone(),
                owner_id,
                inserted_at: t.clone(),
            });
        }
        for r in &seed.rooms {
            let mut members = Vec::new();
            if let Some(o) = w.by_handle(&r.owner.value) {
                members.push(Member {
                    id: o.id.clone(),
                    role: "owner".into(),
                    status: "active".into(),
                });
            }
            for p in &r.participants {
                if let Some(e) = w.by_handle(&p.value) {
                    members.push(Member {
                        id: e.id.clone(),
                        role: "member".into(),
                        status: "active".into(),
                    });
                }
            }
            w.rooms.push(Room {
                id: r
                    .id
                    .as_ref()
                    .map(|i| i.value.clone())
                    .unwrap_or_else(new_id),
                title: r.title.clone(),
                task_id: None,
                inserted_at: t.clone(),
                updated_at: t.clone(),
                members,
            });
        }
        for pair in &seed.contacts {
            let ids: Vec<String> = pair
                .value
                .iter()
                .filter_map(|h| w.by_handle(&h.value).map(|e| e.id.clone()))
                .collect();
            if let [a, b] = ids.as_slice() {
                if !w.are_contacts(a, b) {
                    w.contacts.push(Contact {
                        id: new_id(),
                        a: a.clone(),
                        b: b.clone(),
                        inserted_at: t.clone(),
                    });
                }
            }
        }
        w
    }

    // ---------------------------------------------------------------- lookups

    /// The principal an API key belongs to.
    pub fn authenticate(&self, key: &str) -> Option<Principal> {
        self.entities
            .iter()
            .find(|e| !key.is_empty() && e.api_key == key)
            .map(|e| Principal {
                id: e.id.clone(),
                kind: e.kind,
            })
    }

    /// An entity by id.
    pub fn entity(&self, id: &str) -> Option<&Entity> {
        self.entities.iter().find(|e| e.id == id)
    }

    /// An entity by handle (with or without `@`, case-insensitive).
    pub fn by_handle(&self, handle: &str) -> Option<&Entity> {
        let h = strip_at(handle);
        self.entities
            .iter()
            .find(|e| e.handle.eq_ignore_ascii_case(h))
    }

    fn room(&self, id: &str) -> Option<&Room> {
        self.rooms.iter().find(|r| r.id == id)
    }

    fn room_mut(&mut self, id: &str) -> Option<&mut Room> {
        self.rooms.iter_mut().find(|r| r.id == id)
    }

    fn member<'a>(room: &'a Room, id: &str) -> Option<&'a Member> {
        room.members.iter().find(|m| m.id == id)
    }

    fn are_contacts(&self, a: &str, b: &str) -> bool {
        self.contacts.iter().any(|c| c.other(a) == Some(b))
    }

    /// Whether `who` may read `room`: an agent needs a participant row; a
    /// user needs an active row or an own agent that participates.
    pub fn can_read(&self, who: &Principal, room: &Room) -> bool {
        match who.kind {
            EntityType::Agent => Self::member(room, &who.id).is_some(),
            EntityType::User => room.members.iter().any(|m| {
                (m.id == who.id && m.status == "active")
                    || self.entity(&m.id).and_then(|e| e.owner_id.as_deref())
                        == Some(who.id.as_str())
            }),
        }
    }

    /// Users who may read a room (the human audience of its pushes).
    fn user_readers(&self, room: &Room) -> HashSet<String> {
        let mut out = HashSet::new();
        for m in &room.members {
            match self.entity(&m.id) {
                Some(e) if e.kind == EntityType::User && m.status == "active" => {
                    out.insert(e.id.clone());
                }
                Some(e) if e.kind == EntityType::Agent => {
                    if let Some(o) = &e.owner_id {
                        out.insert(o.clone());
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// A room the caller may read, else 404 (existence is not leaked).
    fn readable_room(&self, who: &Principal, room_id: &str) -> Result<&Room, ApiError> {
        self.room(room_id)
            .filter(|r| self.can_read(who, r))
            .ok_or_else(|| ApiError::not_found("chat room not found"))
    }

    /// A room where the caller has its own row (needed for writes), else 404.
    fn writable_room(&self, who: &Principal, room_id: &str) -> Result<&Room, ApiError> {
        self.room(room_id)
            .filter(|r| Self::member(r, &who.id).is_some())
            .ok_or_else(|| ApiError::not_found("chat room not found"))
    }

    /// The user id whose "organisation view" an entity has: itself for a
    /// user, its owner for an agent.
    fn home(&self, e: &Entity) -> String {
        e.owner_id.clone().unwrap_or_else(|| e.id.clone())
    }

    /// Whether `who` can reach `other` (peers, participant adds). The
    /// sandbox is one organisation: every user is reachable; agents are
    /// reachable by their owner and sibling agents, and by contacts.
    fn reachable(&self, who: &Entity, other: &Entity) -> Option<&'static str> {
        if who.id == other.id {
            return None;
        }
        let registry = other.kind == EntityType::User || self.home(who) == self.home(other);
        if registry {
            Some("registry")
        } else if self.are_contacts(&who.id, &other.id) {
            Some("contact")
        } else {
            None
        }
    }

    // ---------------------------------------------------------------- JSON views

    fn identity(&self, id: &str) -> Value {
        match self.entity(id) {
            Some(e) => json!({"id": e.id, "handle": e.handle, "name": e.name}),
            None => json!({"id": id}),
        }
    }

    /// `GET /agent/me`.
    pub fn agent_me(&self, id: &str) -> Value {
        match self.entity(id) {
            Some(e) => json!({
                "id": e.id,
                "name": e.name,
                "handle": e.handle,
                "description": e.description,
                "owner_uuid": e.owner_id,
                "feature_flags": {},
                "inserted_at": e.inserted_at,
                "updated_at": e.inserted_at,
            }),
            None => json!({"id": id}),
        }
    }

    /// `GET /me/profile` (UserDetails).
    pub fn user_profile(&self, id: &str) -> Value {
        match self.entity(id) {
            Some(e) => {
                let mut parts = e.name.splitn(2, ' ');
                let first = parts.next().unwrap_or_default();
                let last = parts.next();
                json!({
                    "id": e.id,
                    "email": format!("{}@sandbox.local", e.handle),
                    "handle": e.handle,
                    "role": "user",
                    "first_name": first,
                    "last_name": last,
                    "name": e.name,
                })
            }
            None => json!({"id": id}),
        }
    }

    fn participant_json(&self, m: &Member, hub: &Hub) -> Value {
        let e = self.entity(&m.id);
        let mut v = json!({
            "id": m.id,
            "role": m.role,
            "status": m.status,
            "type": e.map(|e| e.kind.as_str()).unwrap_or("User"),
            "name": e.map(|e| e.name.clone()),
            "handle": e.map(|e| e.handle.clone()),
            "online": hub.is_connected(&m.id),
        });
        if let Some(d) = e.and_then(|e| e.description.clone()) {
            v["description"] = json!(d);
        }
        v
    }

    fn room_json(&self, room: &Room) -> Value {
        json!({
            "id": room.id,
            "title": room.title,
            "task_id": room.task_id,
            "inserted_at": room.inserted_at,
            "updated_at": room.updated_at,
        })
    }

    /// A room for a user: the agent-side shape plus type, status, last_message_at.
    fn me_room_json(&self, room: &Room) -> Value {
        let mut v = self.room_json(room);
        let last = self
            .messages
            .iter()
            .rev()
            .find(|m| m.room_id == room.id && m.message_type == "text")
            .map(|m| m.inserted_at.clone());
        v["type"] = json!("group");
        v["status"] = json!("active");
        v["last_message_at"] = json!(last);
        v
    }

    fn room_list_item(&self, room: &Room, participants: bool, hub: &Hub, human: bool) -> Value {
        let mut v = if human {
            self.me_room_json(room)
        } else {
            self.room_json(room)
        };
        v["participant_count"] = json!(room.members.len());
        if participants {
            let list: Vec<Value> = room
                .members
                .iter()
                .take(100)
                .map(|m| self.participant_json(m, hub))
                .collect();
            v["participants"] = json!(list);
            v["participants_truncated"] = json!(room.members.len() > 100);
        }
        v
    }

    fn message_json(&self, m: &Message, viewer_agent: Option<&str>) -> Value {
        let mut meta = m.extra_metadata.clone();
        let mentions: Vec<Value> = m
            .mentions
            .iter()
            .map(|x| {
                let mut v =
                    json!({"id": x.id, "handle": x.handle, "name": x.name, "username": x.handle});
                if x.reference {
                    v["kind"] = json!("reference");
                }
                v
            })
            .collect();
        meta.insert("mentions".into(), json!(mentions));
        meta.insert("status".into(), json!("sent"));
        if let Some(agent) = viewer_agent {
            if let Some(d) = m.delivery.get(agent) {
                meta.insert("delivery_status".into(), json!({ agent: d.json() }));
            }
        }
        json!({
            "id": m.id,
            "content": m.content,
            "message_type": m.message_type,
            "sender_id": m.sender_id,
            "sender_type": m.sender_kind.as_str(),
            "sender_name": m.sender_name,
            "chat_room_id": m.room_id,
            "thread_id": null,
            "metadata": meta,
            "attachments": [],
            "inserted_at": m.inserted_at,
            "updated_at": m.inserted_at,
        })
    }

    fn room_event_payload(&self, room: &Room, who: &str) -> Value {
        let mut v = self.room_json(room);
        v["type"] = json!("group");
        if let Some(m) = Self::member(room, who) {
            v["participant_role"] = json!(m.role);
        }
        v
    }

    fn rooms_topic(e: &Entity) -> String {
        match e.kind {
            EntityType::Agent => format!("agent_rooms:{}", e.id),
            EntityType::User => format!("user_rooms:{}", e.id),
        }
    }

    fn contacts_topic(e: &Entity) -> String {
        match e.kind {
            EntityType::Agent => format!("agent_contacts:{}", e.id),
            EntityType::User => format!("user_contacts:{}", e.id),
        }
    }

    fn only(id: &str) -> Audience {
        Audience::Only(HashSet::from([id.to_string()]))
    }

    // ---------------------------------------------------------------- rooms

    /// Rooms listed for the caller: an agent's rooms, or a user's rooms (with
    /// `agent_rooms`, also rooms of agents they own).
    pub fn list_rooms(&self, who: &Principal, include: &[String], hub: &Hub) -> Vec<Value> {
        let participants = include.iter().any(|i| i == "participants");
        let agent_rooms = include.iter().any(|i| i == "agent_rooms");
        let human = who.kind == EntityType::User;
        self.rooms
            .iter()
            .filter(|r| {
                Self::member(r, &who.id).is_some()
                    || (human && agent_rooms && self.can_read(who, r))
            })
            .map(|r| self.room_list_item(r, participants, hub, human))
            .collect()
    }

    /// One room the caller can read.
    pub fn get_room(&self, who: &Principal, room_id: &str) -> Result<Value, ApiError> {
        let room = self.readable_room(who, room_id)?;
        Ok(match who.kind {
            EntityType::Agent => self.room_json(room),
            EntityType::User => self.me_room_json(room),
        })
    }

    /// Creates a room owned by the caller; pushes `room_added` to them.
    pub fn create_room(
        &mut self,
        who: &Principal,
        title: Option<String>,
        task_id: Option<String>,
        hub: &Hub,
    ) -> Result<Value, ApiError> {
        let title = match title.map(|t| t.trim().to_string()) {
            Some(t) if t.chars().any(|c| c.is_control()) => {
                return Err(ApiError::invalid(
                    "/chat/title",
                    "must not contain control characters",
                ))
            }
            Some(t) if t.chars().count() > 120 => {
                return Err(ApiError::invalid(
                    "/chat/title",
                    "should be at most 120 character(s)",
                ))
            }
            Some(t) if t.is_empty() => None,
            other => other,
        };
        let t = now();
        let room = Room {
            id: new_id(),
            title,
            task_id,
            inserted_at: t.clone(),
            updated_at: t,
            members: vec![Member {
                id: who.id.clone(),
                role: "owner".into(),
                status: "active".into(),
            }],
        };
        if let Some(e) = self.entity(&who.id) {
            hub.publish(
                &Self::rooms_topic(e),
                "room_added",
                self.room_event_payload(&room, &who.id),
                &Audience::All,
            );
        }
        let out = match who.kind {
            EntityType::Agent => self.room_json(&room),
            EntityType::User => self.me_room_json(&room),
        };
        self.rooms.push(room);
        Ok(out)
    }

    /// Participant rows of a readable room, optionally filtered by type.
    pub fn list_participants(
        &self,
        who: &Principal,
        room_id: &str,
        kind: Option<&str>,
        hub: &Hub,
    ) -> Result<Vec<Value>, ApiError> {
        let room = self.readable_room(who, room_id)?;
        Ok(room
            .members
            .iter()
            .filter(|m| kind.is_none_or(|k| self.entity(&m.id).map(|e| e.kind.as_str()) == Some(k)))
            .map(|m| self.participant_json(m, hub))
            .collect())
    }

    /// Adds a participant. Any participant may add someone it can reach as a
    /// member; granting owner/admin needs owner/admin.
    pub fn add_participant(
        &mut self,
        who: &Principal,
        room_id: &str,
        participant_id: &str,
        role: Option<&str>,
        hub: &Hub,
    ) -> Result<Value, ApiError> {
        let room = self.writable_room(who, room_id)?;
        let my_role = Self::member(room, &who.id)
            .map(|m| m.role.clone())
            .unwrap_or_default();
        let role = role.unwrap_or("member");
        if !["owner", "admin", "member"].contains(&role) {
            return Err(ApiError::invalid("/participant/role", "is invalid"));
        }
        if role != "member" && my_role == "member" {
            return Err(ApiError::forbidden(
                "only an owner or admin may grant that role",
            ));
        }
        let me = self
            .entity(&who.id)
            .ok_or_else(|| ApiError::unauthorized("unknown caller"))?;
        let other = self
            .entity(participant_id)
            .ok_or_else(|| ApiError::not_found("participant not found"))?
            .clone();
        if self.reachable(me, &other).is_none() {
            return Err(ApiError::forbidden("you cannot add this participant"));
        }
        if Self::member(room, participant_id).is_some() {
            return Err(ApiError::invalid(
                "/participant/participant_id",
                "is already a participant",
            ));
        }
        let member = Member {
            id: participant_id.to_string(),
            role: role.to_string(),
            status: "active".into(),
        };
        let t = now();
        if let Some(r) = self.room_mut(room_id) {
            r.members.push(member.clone());
            r.updated_at = t;
        }
        let room = self
            .room(room_id)
            .cloned()
            .ok_or_else(|| ApiError::not_found("chat room not found"))?;
        let row = self.participant_json(&member, hub);
        let mut added = json!({"id": other.id, "name": other.name, "type": other.kind.as_str(), "handle": other.handle, "role": role});
        if let Some(d) = &other.description {
            added["description"] = json!(d);
        }
        hub.publish(
            &format!("room_participants:{room_id}"),
            "participant_added",
            added,
            &Audience::All,
        );
        hub.publish(
            &Self::rooms_topic(&other),
            "room_added",
            self.room_event_payload(&room, &other.id),
            &Audience::All,
        );
        Ok(row)
    }

    /// Removes a participant (owner/admin only; anyone may remove itself).
    pub fn remove_participant(
        &mut self,
        who: &Principal,
        room_id: &str,
        participant_id: &str,
        hub: &Hub,
    ) -> Result<Value, ApiError> {
        let room = self.writable_room(who, room_id)?;
        let my_role = Self::member(room, &who.id)
            .map(|m| m.role.clone())
            .unwrap_or_default();
        let target = Self::member(room, participant_id)
            .cloned()
            .ok_or_else(|| ApiError::not_found("participant not found"))?;
        if participant_id != who.id && my_role == "member" {
            return Err(ApiError::forbidden("requires owner or admin role"));
        }
        let row = self.participant_json(&target, hub);
        let payload_room = self.room_event_payload(room, participant_id);
        let t = now();
        if let Some(r) = self.room_mut(room_id) {
            r.members.retain(|m| m.id != participant_id);
            r.updated_at = t;
        }
        let Some(e) = self.entity(participant_id).cloned() else {
            return Ok(row);
        };
        hub.publish(
            &format!("room_participants:{room_id}"),
            "participant_removed",
            json!({"id": e.id, "name": e.name, "type": e.kind.as_str()}),
            &Audience::All,
        );
        hub.publish(
            &Self::rooms_topic(&e),
            "room_removed",
            payload_room,
            &Audience::All,
        );
        // A user who still reads the room through an own agent keeps the topics.
        let p = Principal {
            id: e.id.clone(),
            kind: e.kind,
        };
        if !self.room(room_id).is_some_and(|r| self.can_read(&p, r)) {
            hub.force_leave(&e.id, &format!("chat_room:{room_id}"));
            hub.force_leave(&e.id, &format!("room_participants:{room_id}"));
        }
        Ok(row)
    }

    // ---------------------------------------------------------------- messages

    /// Posts a text message (agent or user). `body` is the `message` object.
    pub fn send_message(
        &mut self,
        who: &Principal,
        room_id: &str,
        body: &Value,
        hub: &Hub,
    ) -> Result<Value, ApiError> {
        let room = self.writable_room(who, room_id)?.clone();
        let Some(body) = body.as_object() else {
            return Err(ApiError::invalid("/message", "is required"));
        };
        let content = match body.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => {
                return Err(ApiError::invalid("/message/content", "can't be blank"))
            }
            Some(_) => return Err(ApiError::invalid("/message/content", "is invalid")),
        };
        if !content.chars().any(is_visible) {
            return Err(ApiError::invalid(
                "/message/content",
                "content can't be blank",
            ));
        }
        if content.len() > MAX_CONTENT_BYTES {
            return Err(ApiError::invalid(
                "/message/content",
                "content is too long (maximum is 512 KiB)",
            ));
        }
        match body.get("attachment_ids") {
            None => {}
            Some(Value::Array(a)) if a.is_empty() => {}
            Some(Value::Array(a)) if a.len() > 10 => {
                return Err(ApiError::invalid(
                    "/message/attachment_ids",
                    "at most 10 attachments",
                ))
            }
            Some(Value::Array(_)) => {
                return Err(ApiError::invalid(
                    "/message/attachment_ids",
                    "unknown_attachment",
                ))
            }
            Some(_) => return Err(ApiError::invalid("/message/attachment_ids", "is invalid")),
        }
        let raw = match body.get("mentions") {
            Some(Value::Array(a)) if !a.is_empty() => a.clone(),
            _ => {
                return Err(ApiError::invalid(
                    "/message/mentions",
                    "messages must include at least one @mention",
                ))
            }
        };
        let mut mentions: Vec<StoredMention> = Vec::new();
        for (i, item) in raw.iter().enumerate() {
            let ptr = format!("/message/mentions/{i}");
            let Some(obj) = item.as_object() else {
                return Err(ApiError::invalid(&ptr, "is invalid"));
            };
            let reference = match obj.get("kind") {
                None => false,
                Some(Value::String(k)) if k == "mention" => false,
                Some(Value::String(k)) if k == "reference" => true,
                Some(_) => return Err(ApiError::invalid(&format!("{ptr}/kind"), "is invalid")),
            };
            let id = obj
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            let handle = obj
                .get("handle")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            let target = match (id, handle) {
                (Some(id), _) => room
                    .members
                    .iter()
                    .find(|m| m.id == id)
                    .map(|m| m.id.clone()),
                (None, Some(h)) => room
                    .members
                    .iter()
                    .find(|m| {
                        self.entity(&m.id)
                            .is_some_and(|e| e.handle.eq_ignore_ascii_case(strip_at(h)))
                    })
                    .map(|m| m.id.clone()),
                (None, None) => return Err(ApiError::invalid(&ptr, "id or handle is required")),
            };
            if id == Some(who.id.as_str()) || target.as_deref() == Some(who.id.as_str()) {
                return Err(ApiError::invalid(&ptr, "cannot mention yourself"));
            }
            let Some(target) = target else {
                let mut e = ApiError::invalid(&ptr, "mentioned_participant_not_in_room");
                e.message = "mentioned_participant_not_in_room".into();
                return Err(e);
            };
            if mentions.iter().any(|m| m.id == target) {
                continue;
            }
            let e = self.entity(&target);
            mentions.push(StoredMention {
                handle: e.map(|e| e.handle.clone()).unwrap_or_default(),
                name: e.map(|e| e.name.clone()).unwrap_or_default(),
                id: target,
                reference,
            });
        }
        let mut prefix = String::new();
        for m in &mentions {
            let marker = format!("@[[{}]]", m.id);
            if !content.contains(&marker) {
                prefix.push_str(&marker);
                prefix.push(' ');
            }
        }
        let delivery: BTreeMap<String, Delivery> = mentions
            .iter()
            .filter(|m| {
                !m.reference
                    && self
                        .entity(&m.id)
                        .is_some_and(|e| e.kind == EntityType::Agent)
            })
            .map(|m| {
                (
                    m.id.clone(),
                    Delivery {
                        status: DeliveryStatus::Delivered,
                        attempts: Vec::new(),
                    },
                )
            })
            .collect();
        let recipients: Vec<Value> = mentions
            .iter()
            .filter(|m| !m.reference)
            .map(|m| json!({"id": m.id, "handle": m.handle, "name": m.name}))
            .collect();
        let msg = Message {
            id: new_id(),
            room_id: room_id.to_string(),
            sender_id: who.id.clone(),
            sender_kind: who.kind,
            sender_name: self
                .entity(&who.id)
                .map(|e| e.name.clone())
                .unwrap_or_default(),
            message_type: "text".into(),
            content: format!("{prefix}{content}"),
            mentions,
            extra_metadata: Map::new(),
            inserted_at: now(),
            delivery,
        };
        let mut audience = self.user_readers(&room);
        audience.extend(msg.delivery.keys().cloned());
        if who.kind == EntityType::Agent {
            audience.remove(&who.id);
        }
        hub.publish(
            &format!("chat_room:{room_id}"),
            "message_created",
            self.message_json(&msg, None),
            &Audience::Only(audience),
        );
        let id = msg.id.clone();
        self.messages.push(msg);
        Ok(json!({"id": id, "success": true, "recipients": recipients}))
    }

    /// Posts an agent event (thought, tool_call, ...): stored as a message of
    /// that type, pushed to people as `event_created`, never delivered.
    pub fn post_event(
        &mut self,
        who: &Principal,
        room_id: &str,
        body: &Value,
        hub: &Hub,
    ) -> Result<Value, ApiError> {
        let room = self.writable_room(who, room_id)?.clone();
        let Some(body) = body.as_object() else {
            return Err(ApiError::invalid("/event", "is required"));
        };
        let content = match body.get("content") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(ApiError::invalid("/event/content", "is required")),
        };
        if content.chars().count() > MAX_EVENT_CHARS {
            return Err(ApiError::invalid(
                "/event/content",
                "should be at most 16384 character(s)",
            ));
        }
        let message_type = match body.get("message_type").and_then(Value::as_str) {
            Some(t) if EVENT_TYPES.contains(&t) => t.to_string(),
            _ => return Err(ApiError::invalid("/event/message_type", "is invalid")),
        };
        let metadata = match body.get("metadata") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => {
                if serde_json::to_string(m).map(|s| s.len()).unwrap_or(0) > MAX_EVENT_METADATA_BYTES
                {
                    return Err(ApiError::invalid("/event/metadata", "is too large"));
                }
                m.clone()
            }
            Some(_) => return Err(ApiError::invalid("/event/metadata", "is invalid")),
        };
        let msg = Message {
            id: new_id(),
            room_id: room_id.to_string(),
            sender_id: who.id.clone(),
            sender_kind: who.kind,
            sender_name: self
                .entity(&who.id)
                .map(|e| e.name.clone())
                .unwrap_or_default(),
            message_type: message_type.clone(),
            content,
            mentions: Vec::new(),
            extra_metadata: metadata,
            inserted_at: now(),
            delivery: BTreeMap::new(),
        };
        hub.publish(
            &format!("chat_room:{room_id}"),
            "event_created",
            self.message_json(&msg, None),
            &Audience::Only(self.user_readers(&room)),
        );
        let id = msg.id.clone();
        self.messages.push(msg);
        Ok(json!({"id": id, "message_type": message_type, "success": true}))
    }

    /// The oldest message for `agent` in the room that is not processed.
    pub fn next_message(
        &self,
        agent: &Principal,
        room_id: &str,
    ) -> Result<Option<Value>, ApiError> {
        self.readable_room(agent, room_id)?;
        Ok(self
            .messages
            .iter()
            .find(|m| {
                m.room_id == room_id
                    && m.delivery
                        .get(&agent.id)
                        .is_some_and(|d| d.status != DeliveryStatus::Processed)
            })
            .map(|m| self.message_json(m, Some(&agent.id))))
    }

    /// `/processing`, `/processed`, `/failed`.
    pub fn mark(
        &mut self,
        agent: &Principal,
        room_id: &str,
        msg_id: &str,
        mark: Mark,
        error: Option<String>,
    ) -> Result<Value, ApiError> {
        self.readable_room(agent, room_id)?;
        let d = self
            .messages
            .iter_mut()
            .find(|m| m.id == msg_id && m.room_id == room_id)
            .and_then(|m| m.delivery.get_mut(&agent.id))
            .ok_or_else(|| ApiError::not_found("message not found"))?;
        let t = now();
        match mark {
            Mark::Processing => {
                if d.status != DeliveryStatus::Processing {
                    let number = d.attempts.len() as u64 + 1;
                    d.attempts.push(Attempt {
                        number,
                        status: DeliveryStatus::Processing,
                        started_at: t,
                        finished_at: None,
                        error: None,
                    });
                    d.status = DeliveryStatus::Processing;
                }
            }
            Mark::Processed | Mark::Failed => {
                if d.status != DeliveryStatus::Processing {
                    return Err(ApiError::invalid(
                        "/processing_attempt",
                        "no active processing attempt",
                    ));
                }
                let status = if mark == Mark::Processed {
                    DeliveryStatus::Processed
                } else {
                    DeliveryStatus::Failed
                };
                if let Some(a) = d.attempts.last_mut() {
                    a.status = status;
                    a.finished_at = Some(t);
                    if mark == Mark::Failed {
                        a.error = Some(
                            error
                                .filter(|e| !e.trim().is_empty())
                                .unwrap_or_else(|| "Unknown error".into()),
                        );
                    }
                }
                d.status = status;
            }
        }
        Ok(json!({
            "id": msg_id,
            "status": d.status.as_str(),
            "attempt_number": d.attempts.last().map(|a| a.number).unwrap_or(0),
            "success": true,
        }))
    }

    /// Messages delivered to `agent` in the room, oldest first, filtered by
    /// status (`None` = everything not processed; `all`; `pending` = delivered).
    pub fn agent_messages(
        &self,
        agent: &Principal,
        room_id: &str,
        status: Option<&str>,
    ) -> Result<Vec<Value>, ApiError> {
        self.readable_room(agent, room_id)?;
        let want: Option<DeliveryStatus> = match status {
            None | Some("") => None,
            Some("all") => None,
            Some("pending") | Some("delivered") => Some(DeliveryStatus::Delivered),
            Some("processing") => Some(DeliveryStatus::Processing),
            Some("processed") => Some(DeliveryStatus::Processed),
            Some("failed") => Some(DeliveryStatus::Failed),
            Some(_) => return Err(ApiError::invalid("/status", "is invalid")),
        };
        let all = status == Some("all");
        Ok(self
            .messages
            .iter()
            .filter(|m| m.room_id == room_id)
            .filter(|m| match m.delivery.get(&agent.id) {
                None => false,
                Some(d) => match want {
                    Some(w) => d.status == w,
                    None => all || d.status != DeliveryStatus::Processed,
                },
            })
            .map(|m| self.message_json(m, Some(&agent.id)))
            .collect())
    }

    /// What the agent sent (any type) plus text that mentions it, oldest first.
    pub fn context(&self, agent: &Principal, room_id: &str) -> Result<Vec<Value>, ApiError> {
        self.readable_room(agent, room_id)?;
        Ok(self
            .messages
            .iter()
            .filter(|m| m.room_id == room_id)
            .filter(|m| {
                m.sender_id == agent.id
                    || (m.message_type == "text" && m.mentions.iter().any(|x| x.id == agent.id))
            })
            .map(|m| self.message_json(m, Some(&agent.id)))
            .collect())
    }

    /// Every message of a readable room, newest first (`after` anchor:
    /// messages after it, oldest first).
    pub fn user_messages(
        &self,
        who: &Principal,
        room_id: &str,
        after: Option<&str>,
        types: &[String],
    ) -> Result<Vec<Value>, ApiError> {
        self.readable_room(who, room_id)?;
        let rows: Vec<&Message> = self
            .messages
            .iter()
            .filter(|m| m.room_id == room_id)
            .filter(|m| types.is_empty() || types.contains(&m.message_type))
            .collect();
        if let Some(a) = after {
            let pos = rows
                .iter()
                .position(|m| m.id == a)
                .ok_or_else(|| ApiError::not_found("anchor message not found"))?;
            return Ok(rows[pos + 1..]
                .iter()
                .map(|m| self.message_json(m, None))
                .collect());
        }
        Ok(rows
            .iter()
            .rev()
            .map(|m| self.message_json(m, None))
            .collect())
    }

    // ---------------------------------------------------------------- peers

    /// Entities the caller can reach, registry first then contact-only.
    pub fn peers(
        &self,
        who: &Principal,
        not_in_chat: Option<&str>,
        kind: Option<&str>,
        hub: &Hub,
    ) -> Vec<Value> {
        let Some(me) = self.entity(&who.id) else {
            return Vec::new();
        };
        let excluded: HashSet<&str> = not_in_chat
            .and_then(|r| self.room(r))
            .map(|r| r.members.iter().map(|m| m.id.as_str()).collect())
            .unwrap_or_default();
        let mut rows: Vec<(u8, Value)> = self
            .entities
            .iter()
            .filter(|e| !excluded.contains(e.id.as_str()))
            .filter(|e| kind.is_none_or(|k| e.kind.as_str() == k))
            .filter_map(|e| {
                let source = self.reachable(me, e)?;
                let mut v = json!({
                    "id": e.id,
                    "name": e.name,
                    "handle": e.handle,
                    "type": e.kind.as_str(),
                    "is_contact": self.are_contacts(&me.id, &e.id),
                    "online": hub.is_connected(&e.id),
                    "source": source,
                });
                if let Some(d) = &e.description {
                    v["description"] = json!(d);
                }
                Some((u8::from(source == "contact"), v))
            })
            .collect();
        rows.sort_by_key(|(k, _)| *k);
        rows.into_iter().map(|(_, v)| v).collect()
    }

    // ---------------------------------------------------------------- contacts

    fn agent_contact_json(&self, e: &Entity, c: &Contact, hub: &Hub) -> Value {
        let mut v = json!({
            "id": e.id,
            "type": e.kind.as_str(),
            "handle": e.handle,
            "name": e.name,
            "online": hub.is_connected(&e.id),
            "inserted_at": c.inserted_at,
        });
        if let Some(d) = &e.description {
            v["description"] = json!(d);
        }
        v
    }

    fn user_contact_json(&self, e: &Entity, c: &Contact, hub: &Hub) -> Value {
        let key = if e.kind == EntityType::Agent {
            "agent"
        } else {
            "user"
        };
        let mut v = json!({
            "id": c.id,
            "contact_id": e.id,
            "contact_type": e.kind.as_str(),
            "inserted_at": c.inserted_at,
            "online": hub.is_connected(&e.id),
            "status": "active",
            "source": "request",
            "handle": e.handle,
            "name": e.name,
        });
        v[key] = json!({"id": e.id, "handle": e.handle, "name": e.name});
        v
    }

    /// The caller's contacts (agent flat form or user form).
    pub fn contacts(&self, who: &Principal, hub: &Hub) -> Vec<Value> {
        self.contacts
            .iter()
            .filter_map(|c| {
                let other = self.entity(c.other(&who.id)?)?;
                Some(match who.kind {
                    EntityType::Agent => self.agent_contact_json(other, c, hub),
                    EntityType::User => self.user_contact_json(other, c, hub),
                })
            })
            .collect()
    }

    fn request_user_json(&self, r: &ContactRequest) -> Value {
        let kind = |id: &str| self.entity(id).map(|e| e.kind.as_str());
        json!({
            "id": r.id,
            "status": r.status,
            "inserted_at": r.inserted_at,
            "requester_id": r.from,
            "recipient_id": r.to,
            "message": r.message,
            "responded_at": r.responded_at,
            "requester_type": kind(&r.from),
            "recipient_type": kind(&r.to),
            "requester": self.identity(&r.from),
            "recipient": self.identity(&r.to),
        })
    }

    fn request_received_json(&self, r: &ContactRequest) -> Value {
        let from = self.entity(&r.from);
        let mut v = json!({"id": r.id, "status": r.status, "inserted_at": r.inserted_at});
        if let Some(f) = from {
            v["from_handle"] = json!(f.handle);
            v["from_name"] = json!(f.name);
        }
        if let Some(m) = &r.message {
            v["message"] = json!(m);
        }
        v
    }

    fn request_sent_json(&self, r: &ContactRequest) -> Value {
        let to = self.entity(&r.to);
        let mut v = json!({"id": r.id, "status": r.status, "inserted_at": r.inserted_at});
        if let Some(t) = to {
            v["to_handle"] = json!(t.handle);
            v["to_name"] = json!(t.name);
        }
        if let Some(m) = &r.message {
            v["message"] = json!(m);
        }
        v
    }

    /// Pending requests the caller received (in the caller's form).
    pub fn received_requests(&self, who: &Principal) -> Vec<Value> {
        self.requests
            .iter()
            .filter(|r| r.to == who.id && r.status == "pending")
            .map(|r| match who.kind {
                EntityType::Agent => self.request_received_json(r),
                EntityType::User => self.request_user_json(r),
            })
            .collect()
    }

    /// Requests the caller sent, with `status` filter (`all` or a status).
    pub fn sent_requests(&self, who: &Principal, status: &str) -> Vec<Value> {
        self.requests
            .iter()
            .filter(|r| r.from == who.id && (status == "all" || r.status == status))
            .map(|r| match who.kind {
                EntityType::Agent => self.request_sent_json(r),
                EntityType::User => self.request_user_json(r),
            })
            .collect()
    }

    /// Sends a contact request to `handle`; an inverse pending request is
    /// approved instead. Returns the request (now pending or approved).
    pub fn request_contact(
        &mut self,
        who: &Principal,
        handle: &str,
        message: Option<String>,
        hub: &Hub,
    ) -> Result<Value, ApiError> {
        if strip_at(handle).is_empty() {
            return Err(ApiError::bad_request("handle is required"));
        }
        if message.as_ref().is_some_and(|m| m.chars().count() > 500) {
            return Err(ApiError::invalid(
                "/contact_request/message",
                "should be at most 500 character(s)",
            ));
        }
        let other = self
            .by_handle(handle)
            .cloned()
            .ok_or_else(|| ApiError::not_found("no entity with that handle"))?;
        if other.id == who.id {
            return Err(ApiError::bad_request("Cannot send a request to yourself"));
        }
        if self.are_contacts(&who.id, &other.id) {
            return Err(ApiError::conflict("already contacts"));
        }
        if self
            .requests
            .iter()
            .any(|r| r.from == who.id && r.to == other.id && r.status == "pending")
        {
            return Err(ApiError::conflict(
                "a request to this recipient is already pending",
            ));
        }
        if let Some(inverse) = self
            .requests
            .iter()
            .find(|r| r.from == other.id && r.to == who.id && r.status == "pending")
            .map(|r| r.id.clone())
        {
            return self.respond(who, Some(&inverse), None, Respond::Approve, hub);
        }
        let r = ContactRequest {
            id: new_id(),
            from: who.id.clone(),
            to: other.id.clone(),
            status: "pending".into(),
            message,
            inserted_at: now(),
            responded_at: None,
        };
        let push = match other.kind {
            EntityType::Agent => self.request_received_json(&r),
            EntityType::User => self.request_user_json(&r),
        };
        hub.publish(
            &Self::contacts_topic(&other),
            "contact_request_received",
            push,
            &Self::only(&other.id),
        );
        let out = self.request_user_json(&r);
        self.requests.push(r);
        Ok(out)
    }

    /// Approves, rejects (received requests) or cancels (sent requests), by
    /// request id or by the other party's handle.
    pub fn respond(
        &mut self,
        who: &Principal,
        request_id: Option<&str>,
        handle: Option<&str>,
        action: Respond,
        hub: &Hub,
    ) -> Result<Value, ApiError> {
        let mine = |r: &ContactRequest| match action {
            Respond::Approve | Respond::Reject => r.to == who.id,
            Respond::Cancel => r.from == who.id,
        };
        let idx = match (
            request_id.filter(|s| !s.is_empty()),
            handle.filter(|s| !s.is_empty()),
        ) {
            (Some(id), _) => self
                .requests
                .iter()
                .position(|r| r.id == id && mine(r))
                .ok_or_else(|| ApiError::not_found("contact request not found"))?,
            (None, Some(h)) => {
                let other = self
                    .by_handle(h)
                    .map(|e| e.id.clone())
                    .ok_or_else(|| ApiError::not_found("no entity with that handle"))?;
                let party = |r: &ContactRequest| match action {
                    Respond::Approve | Respond::Reject => r.from == other,
                    Respond::Cancel => r.to == other,
                };
                let matching: Vec<usize> = (0..self.requests.len())
                    .filter(|&i| mine(&self.requests[i]) && party(&self.requests[i]))
                    .collect();
                matching
                    .iter()
                    .copied()
                    .find(|&i| self.requests[i].status == "pending")
                    .or_else(|| matching.last().copied())
                    .ok_or_else(|| ApiError::not_found("contact request not found"))?
            }
            (None, None) => return Err(ApiError::bad_request("request_id or handle is required")),
        };
        if self.requests[idx].status != "pending" {
            return Err(ApiError::conflict(format!(
                "contact request is already {}",
                self.requests[idx].status
            )));
        }
        let status = match action {
            Respond::Approve => "approved",
            Respond::Reject => "rejected",
            Respond::Cancel => "cancelled",
        };
        let t = now();
        self.requests[idx].status = status.into();
        self.requests[idx].responded_at = Some(t.clone());
        let r = self.requests[idx].clone();
        let (from, to) = match (self.entity(&r.from).cloned(), self.entity(&r.to).cloned()) {
            (Some(f), Some(t)) => (f, t),
            _ => return Ok(json!({"id": r.id, "status": status})),
        };
        let updated = json!({"id": r.id, "status": status});
        match action {
            Respond::Approve => {
                hub.publish(
                    &Self::contacts_topic(&from),
                    "contact_request_updated",
                    updated,
                    &Self::only(&from.id),
                );
                if !self.are_contacts(&from.id, &to.id) {
                    let c = Contact {
                        id: new_id(),
                        a: from.id.clone(),
                        b: to.id.clone(),
                        inserted_at: t,
                    };
                    for (me, other) in [(&from, &to), (&to, &from)] {
                        let mut added = json!({
                            "id": other.id, "type": other.kind.as_str(), "inserted_at": c.inserted_at,
                            "handle": other.handle, "name": other.name,
                        });
                        if let Some(d) = &other.description {
                            added["description"] = json!(d);
                        }
                        hub.publish(
                            &Self::contacts_topic(me),
                            "contact_added",
                            added,
                            &Self::only(&me.id),
                        );
                    }
                    self.contacts.push(c);
                }
            }
            // The platform does not tell a requester about a rejection.
            Respond::Reject => {}
            // The recipient's pending list changed: tell them.
            Respond::Cancel => {
                hub.publish(
                    &Self::contacts_topic(&to),
                    "contact_request_updated",
                    updated,
                    &Self::only(&to.id),
                );
            }
        }
        Ok(json!({"id": r.id, "status": status}))
    }

    /// Removes a contact (both directions), by record id, entity id or handle.
    pub fn remove_contact(
        &mut self,
        who: &Principal,
        contact_id: Option<&str>,
        handle: Option<&str>,
        hub: &Hub,
    ) -> Result<Value, ApiError> {
        let other_id = match (
            contact_id.filter(|s| !s.is_empty()),
            handle.filter(|s| !s.is_empty()),
        ) {
            (Some(cid), _) => self
                .contacts
                .iter()
                .find(|c| {
                    c.other(&who.id).is_some() && (c.id == cid || c.other(&who.id) == Some(cid))
                })
                .and_then(|c| c.other(&who.id).map(str::to_string)),
            (None, Some(h)) => self.by_handle(h).map(|e| e.id.clone()),
            (None, None) => return Err(ApiError::bad_request("contact_id or handle is required")),
        };
        let other_id = other_id
            .filter(|o| self.are_contacts(&who.id, o))
            .ok_or_else(|| ApiError::not_found("contact not found"))?;
        self.contacts
            .retain(|c| c.other(&who.id) != Some(other_id.as_str()));
        for (me, other) in [
            (who.id.as_str(), other_id.as_str()),
            (other_id.as_str(), who.id.as_str()),
        ] {
            if let Some(e) = self.entity(me) {
                hub.publish(
                    &Self::contacts_topic(e),
                    "contact_removed",
                    json!({"id": other}),
                    &Self::only(me),
                );
            }
        }
        Ok(json!({"status": "removed"}))
    }

    // ---------------------------------------------------------------- sockets, state

    /// Whether `who` may join `topic` (see `SocketBackend::can_join`).
    pub fn can_join(&self, who: &Principal, topic: &str) -> Result<(), String> {
        let Some((kind, id)) = topic.split_once(':') else {
            return Err("unmatched topic".into());
        };
        let own = id == who.id;
        let allowed = match (kind, who.kind) {
            ("agent_control" | "agent_rooms" | "agent_contacts", EntityType::Agent) => own,
            ("user_rooms" | "user_contacts", EntityType::User) => own,
            ("chat_room" | "room_participants", _) => {
                return match self.room(id) {
                    Some(r) if self.can_read(who, r) => Ok(()),
                    _ => Err("unauthorized: not a participant of this room".into()),
                }
            }
            _ => return Err("unmatched topic".into()),
        };
        if allowed {
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
                let attempts = d.json()["attempts"].clone();
                (
                    k.clone(),
                    json!({"status": d.status.as_str(), "attempts": attempts}),
                )
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
        })
    }
}

/// Whether a character shows up on screen (not whitespace, not a control or
/// zero-width format character).
fn is_visible(c: char) -> bool {
    !(c.is_whitespace()
        || c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}'))
}
