//! Rooms and their participants: listing, creating, adding and removing,
//! with the room and participant pushes each change causes.

use serde_json::Value;

use super::rooms_topic;
use super::{new_id, now, Changed, Member, Room, World};
use crate::error::ApiError;
use crate::hub::{Effect, Presence, Principal};
use band_wire::events::TopicKind;
use band_wire::model::EntityType;

impl World {
    /// Rooms listed for the caller: an agent's rooms, or a user's rooms (with
    /// `agent_rooms`, also rooms of agents they own).
    pub fn list_rooms(&self, who: &Principal, include: &[String], online: &Presence) -> Vec<Value> {
        let participants = include.iter().any(|i| i == "participants");
        let agent_rooms = include.iter().any(|i| i == "agent_rooms");
        let human = who.kind == EntityType::User;
        self.rooms
            .iter()
            .filter(|r| {
                Self::member(r, &who.id).is_some()
                    || (human && agent_rooms && self.can_read(who, r))
            })
            .map(|r| self.room_list_item(r, participants, online, who.kind))
            .collect()
    }

    /// One room the caller can read.
    pub fn get_room(&self, who: &Principal, room_id: &str) -> Result<Value, ApiError> {
        let room = self.readable_room(who, room_id)?;
        Ok(self.room_json(room, who.kind))
    }

    /// Creates a room owned by the caller; pushes `room_added` to them.
    pub fn create_room(
        &mut self,
        who: &Principal,
        title: Option<String>,
        task_id: Option<String>,
    ) -> Changed<Value> {
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
        let mut effects = Vec::new();
        if let Some(e) = self.entity(&who.id) {
            effects.push(Effect::to_all(
                rooms_topic(e),
                "room_added",
                Self::room_event_payload(&room, &who.id),
            ));
        }
        self.rooms.push(room);
        let out = match self.rooms.last() {
            Some(room) => self.room_json(room, who.kind),
            None => Value::Null,
        };
        Ok((out, effects))
    }

    /// Participant rows of a readable room, optionally filtered by type.
    pub fn list_participants(
        &self,
        who: &Principal,
        room_id: &str,
        kind: Option<&str>,
        online: &Presence,
    ) -> Result<Vec<Value>, ApiError> {
        let room = self.readable_room(who, room_id)?;
        Ok(room
            .members
            .iter()
            .filter(|m| kind.is_none_or(|k| self.entity(&m.id).map(|e| e.kind.as_str()) == Some(k)))
            .map(|m| self.participant_json(m, online))
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
        online: &Presence,
    ) -> Changed<Value> {
        let (room, my_role) = self.writable_room_and_role(who, room_id)?;
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
            .ok_or_else(|| ApiError::not_found("chat room not found"))?;
        let row = self.participant_json(&member, online);
        let effects = vec![
            Effect::to_all(
                TopicKind::RoomParticipants.topic(room_id),
                "participant_added",
                Self::participant_added(&other, role),
            ),
            Effect::to_all(
                rooms_topic(&other),
                "room_added",
                Self::room_event_payload(room, &other.id),
            ),
        ];
        Ok((row, effects))
    }

    /// A room the caller may write to, and the caller's role in it.
    fn writable_room_and_role(
        &self,
        who: &Principal,
        room_id: &str,
    ) -> Result<(&Room, String), ApiError> {
        let room = self.writable_room(who, room_id)?;
        let role = Self::member(room, &who.id)
            .map(|m| m.role.clone())
            .unwrap_or_default();
        Ok((room, role))
    }

    /// Removes a participant (owner/admin only; anyone may remove itself).
    pub fn remove_participant(
        &mut self,
        who: &Principal,
        room_id: &str,
        participant_id: &str,
        online: &Presence,
    ) -> Changed<Value> {
        let (room, my_role) = self.writable_room_and_role(who, room_id)?;
        let target = Self::member(room, participant_id)
            .cloned()
            .ok_or_else(|| ApiError::not_found("participant not found"))?;
        if participant_id != who.id && my_role == "member" {
            return Err(ApiError::forbidden("requires owner or admin role"));
        }
        let row = self.participant_json(&target, online);
        let payload_room = Self::room_event_payload(room, participant_id);
        let t = now();
        if let Some(r) = self.room_mut(room_id) {
            r.members.retain(|m| m.id != participant_id);
            r.updated_at = t;
        }
        let Some(e) = self.entity(participant_id).cloned() else {
            return Ok((row, Vec::new()));
        };
        let mut effects = vec![
            Effect::to_all(
                TopicKind::RoomParticipants.topic(room_id),
                "participant_removed",
                Self::participant_removed(&e),
            ),
            Effect::to_all(rooms_topic(&e), "room_removed", payload_room),
        ];
        // A user who still reads the room through an own agent keeps the topics.
        let p = Principal {
            id: e.id.clone(),
            kind: e.kind,
        };
        if !self.room(room_id).is_some_and(|r| self.can_read(&p, r)) {
            for topic in [
                TopicKind::ChatRoom.topic(room_id),
                TopicKind::RoomParticipants.topic(room_id),
            ] {
                effects.push(Effect::ForceLeave {
                    principal_id: e.id.clone(),
                    topic,
                });
            }
        }
        Ok((row, effects))
    }
}
