//! The sandbox's in-memory platform state: who exists, rooms and their
//! participants, messages with per-agent delivery state, contacts and
//! contact requests. Operations check permissions the way the platform does
//! and return the socket pushes they cause ([`Effect`]s) instead of
//! publishing them, so the world never touches the hub.
//!
//! One job per file: [`rooms`], [`messages`], [`contacts`] hold the
//! operations, [`views`] the wire JSON they answer with, [`inspect`] the
//! `/_sandbox/*` views and socket join checks, [`execution`] STOP / PLAY.

mod contacts;
mod execution;
mod inspect;
mod messages;
mod rooms;
mod views;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{SecondsFormat, Utc};
use serde_saphyr::Spanned;
use uuid::Uuid;

use super::error::ApiError;
use super::hub::{Effect, Principal};
use super::seed::Seed;
use band_wire::events::{TopicKind, UserTopicKind};
use band_wire::model::EntityType;

pub use contacts::RequestAnswer;
pub use execution::{Control, EXECUTION_STOPPED};
pub use messages::{DeliveryUpdate, NewEvent, NewMention, NewMessage};

/// What a changing operation returns: its reply and the hub effects it
/// causes, in the order they must be applied.
pub type Changed<T> = Result<(T, Vec<Effect>), ApiError>;

/// Current time in the platform's ISO-8601 form.
pub fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn new_id() -> String {
    Uuid::new_v4().to_string()
}

/// The id a seed gives, else a fresh one.
fn seeded_id(id: &Option<Spanned<String>>) -> String {
    id.as_ref().map(|i| i.value.clone()).unwrap_or_else(new_id)
}

/// A handle without its `@` and surrounding spaces.
pub(crate) fn strip_at(h: &str) -> &str {
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

/// The whole platform state.
#[derive(Clone, Default)]
pub struct World {
    entities: Vec<Entity>,
    rooms: Vec<Room>,
    messages: Vec<messages::Message>,
    contacts: Vec<contacts::Contact>,
    requests: Vec<contacts::ContactRequest>,
    /// Agent id → rooms where its execution is stopped (`/_sandbox/control`).
    stopped: BTreeMap<String, BTreeSet<String>>,
    /// How long a contact request stays pending (`None`: forever).
    request_expiry: Option<std::time::Duration>,
}

impl World {
    /// Builds the state a (validated) seed describes.
    pub fn from_seed(seed: &Seed) -> World {
        let mut w = World {
            request_expiry: Some(seed.contact_request_expiry()),
            ..World::default()
        };
        let t = now();
        for u in &seed.users {
            let handle = strip_at(&u.handle.value).to_string();
            w.entities.push(Entity {
                id: seeded_id(&u.id),
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
                id: seeded_id(&a.id),
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
                id: seeded_id(&r.id),
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
                    w.contacts.push(contacts::Contact {
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

    pub(crate) fn room(&self, id: &str) -> Option<&Room> {
        self.rooms.iter().find(|r| r.id == id)
    }

    pub(crate) fn room_mut(&mut self, id: &str) -> Option<&mut Room> {
        self.rooms.iter_mut().find(|r| r.id == id)
    }

    pub(crate) fn member<'a>(room: &'a Room, id: &str) -> Option<&'a Member> {
        room.members.iter().find(|m| m.id == id)
    }

    pub(crate) fn are_contacts(&self, a: &str, b: &str) -> bool {
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
    pub(crate) fn user_readers(&self, room: &Room) -> HashSet<String> {
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
    pub(crate) fn readable_room(&self, who: &Principal, room_id: &str) -> Result<&Room, ApiError> {
        self.room(room_id)
            .filter(|r| self.can_read(who, r))
            .ok_or_else(|| ApiError::not_found("chat room not found"))
    }

    /// A room where the caller has its own row (needed for writes), else 404.
    pub(crate) fn writable_room(&self, who: &Principal, room_id: &str) -> Result<&Room, ApiError> {
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
    pub(crate) fn reachable(&self, who: &Entity, other: &Entity) -> Option<&'static str> {
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
}

/// The push topic of an entity's room list.
pub(crate) fn rooms_topic(e: &Entity) -> String {
    match e.kind {
        EntityType::Agent => TopicKind::AgentRooms.topic(&e.id),
        EntityType::User => UserTopicKind::UserRooms.topic(&e.id),
    }
}

/// The push topic of an entity's contacts.
pub(crate) fn contacts_topic(e: &Entity) -> String {
    match e.kind {
        EntityType::Agent => TopicKind::AgentContacts.topic(&e.id),
        EntityType::User => UserTopicKind::UserContacts.topic(&e.id),
    }
}
