//! Messages and events: posting (delivery goes to the agents a message
//! mentions), the per-agent lifecycle (`/next`, processing, processed,
//! failed), and the message lists of both APIs.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{new_id, now, strip_at, Changed, World};
use crate::error::ApiError;
use crate::hub::{Effect, Principal};
use band_wire::events::TopicKind;
use band_wire::model::{DeliveryStatus, EntityType};

/// What `/processing`, `/processed` and `/failed` ask of a delivery.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum DeliveryUpdate {
    /// Start (or keep) an attempt.
    Processing,
    /// Finish the live attempt successfully.
    Processed,
    /// Finish the live attempt with this error (blank: "Unknown error").
    Failed(Option<String>),
}

/// One processing attempt.
#[derive(Clone)]
pub(super) struct Attempt {
    pub(super) number: u64,
    pub(super) status: DeliveryStatus,
    pub(super) started_at: String,
    pub(super) finished_at: Option<String>,
    pub(super) error: Option<String>,
}

/// Per-agent delivery record.
#[derive(Clone)]
pub(super) struct Delivery {
    pub(super) status: DeliveryStatus,
    pub(super) attempts: Vec<Attempt>,
}

/// A mention as stored.
#[derive(Clone)]
pub(super) struct StoredMention {
    pub(super) id: String,
    pub(super) handle: String,
    pub(super) name: String,
    pub(super) reference: bool,
}

/// A message or event row.
#[derive(Clone)]
pub(super) struct Message {
    pub(super) id: String,
    pub(super) room_id: String,
    pub(super) sender_id: String,
    pub(super) sender_kind: EntityType,
    pub(super) sender_name: String,
    pub(super) message_type: String,
    pub(super) content: String,
    pub(super) mentions: Vec<StoredMention>,
    pub(super) extra_metadata: Map<String, Value>,
    pub(super) inserted_at: String,
    pub(super) delivery: BTreeMap<String, Delivery>,
}

/// A text message to post, its shape already checked.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Visible content, within the size limit.
    pub content: String,
    /// The well-formed mentions, in request order.
    pub mentions: Vec<NewMention>,
    /// The first malformed mention, reported only after the mentions before
    /// it were checked against the room (the platform checks them in order).
    pub bad_mention: Option<ApiError>,
}

/// One mention of a [`NewMessage`]: by id, else by handle.
#[derive(Debug, Clone)]
pub struct NewMention {
    /// Position in the request (for error pointers).
    pub index: usize,
    /// Participant id, when given.
    pub id: Option<String>,
    /// Participant handle, when no id is given.
    pub handle: Option<String>,
    /// A reference: shown, but not delivered.
    pub reference: bool,
}

/// An agent event to post, its shape already checked.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Content, within the size limit.
    pub content: String,
    /// One of the event types.
    pub message_type: String,
    /// Extra metadata, within the size limit.
    pub metadata: Map<String, Value>,
}

impl World {
    /// A fresh message row from `who`, stamped now, with no mentions,
    /// metadata or deliveries yet.
    fn new_row(
        &self,
        who: &Principal,
        room_id: &str,
        message_type: String,
        content: String,
    ) -> Message {
        Message {
            id: new_id(),
            room_id: room_id.to_string(),
            sender_id: who.id.clone(),
            sender_kind: who.kind,
            sender_name: self
                .entity(&who.id)
                .map(|e| e.name.clone())
                .unwrap_or_default(),
            message_type,
            content,
            mentions: Vec::new(),
            extra_metadata: Map::new(),
            inserted_at: now(),
            delivery: BTreeMap::new(),
        }
    }

    /// Posts a text message (agent or user), delivered to the agents it mentions.
    pub fn send_message(
        &mut self,
        who: &Principal,
        room_id: &str,
        new: NewMessage,
    ) -> Changed<Value> {
        let room = self.writable_room(who, room_id)?;
        self.check_running(&who.id, room_id)?;
        let mut mentions: Vec<StoredMention> = Vec::new();
        for m in &new.mentions {
            let ptr = format!("/message/mentions/{}", m.index);
            let target = match (&m.id, &m.handle) {
                (Some(id), _) => room
                    .members
                    .iter()
                    .find(|x| &x.id == id)
                    .map(|x| x.id.clone()),
                (None, Some(h)) => room
                    .members
                    .iter()
                    .find(|x| {
                        self.entity(&x.id)
                            .is_some_and(|e| e.handle.eq_ignore_ascii_case(strip_at(h)))
                    })
                    .map(|x| x.id.clone()),
                (None, None) => return Err(ApiError::invalid(&ptr, "id or handle is required")),
            };
            if m.id.as_deref() == Some(who.id.as_str())
                || target.as_deref() == Some(who.id.as_str())
            {
                return Err(ApiError::invalid(&ptr, "cannot mention yourself"));
            }
            let Some(target) = target else {
                let mut e = ApiError::invalid(&ptr, "mentioned_participant_not_in_room");
                e.message = "mentioned_participant_not_in_room".into();
                return Err(e);
            };
            if mentions.iter().any(|x| x.id == target) {
                continue;
            }
            let e = self.entity(&target);
            mentions.push(StoredMention {
                handle: e.map(|e| e.handle.clone()).unwrap_or_default(),
                name: e.map(|e| e.name.clone()).unwrap_or_default(),
                id: target,
                reference: m.reference,
            });
        }
        if let Some(e) = new.bad_mention {
            return Err(e);
        }
        // Markers the content lacks go in front, as the platform stores them.
        let mut prefix = String::new();
        for m in &mentions {
            let marker = format!("@[[{}]]", m.id);
            if !new.content.contains(&marker) {
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
        let mut audience = self.user_readers(room);
        audience.extend(delivery.keys().cloned());
        if who.kind == EntityType::Agent {
            audience.remove(&who.id);
        }
        let mut msg = self.new_row(
            who,
            room_id,
            "text".into(),
            format!("{prefix}{}", new.content),
        );
        msg.mentions = mentions;
        msg.delivery = delivery;
        let push = Effect::to_only(
            TopicKind::ChatRoom.topic(room_id),
            "message_created",
            self.message_json(&msg, None),
            audience,
        );
        let id = msg.id.clone();
        self.messages.push(msg);
        Ok((
            json!({"id": id, "success": true, "recipients": recipients}),
            vec![push],
        ))
    }

    /// Posts an agent event (thought, tool_call, ...): stored as a message of
    /// that type, pushed to people as `event_created`, never delivered.
    pub fn post_event(&mut self, who: &Principal, room_id: &str, new: NewEvent) -> Changed<Value> {
        let room = self.writable_room(who, room_id)?;
        self.check_running(&who.id, room_id)?;
        let readers = self.user_readers(room);
        let mut msg = self.new_row(who, room_id, new.message_type.clone(), new.content);
        msg.extra_metadata = new.metadata;
        let push = Effect::to_only(
            TopicKind::ChatRoom.topic(room_id),
            "event_created",
            self.message_json(&msg, None),
            readers,
        );
        let id = msg.id.clone();
        self.messages.push(msg);
        Ok((
            json!({"id": id, "message_type": new.message_type, "success": true}),
            vec![push],
        ))
    }

    /// The oldest message for `agent` in the room that is not processed;
    /// none while the agent's execution there is stopped.
    pub fn next_message(
        &self,
        agent: &Principal,
        room_id: &str,
    ) -> Result<Option<Value>, ApiError> {
        self.readable_room(agent, room_id)?;
        if self.is_stopped(&agent.id, room_id) {
            return Ok(None);
        }
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

    /// `/processing`, `/processed`, `/failed`: moves `agent`'s delivery of a message.
    pub fn update_delivery(
        &mut self,
        agent: &Principal,
        room_id: &str,
        msg_id: &str,
        update: DeliveryUpdate,
    ) -> Result<Value, ApiError> {
        self.readable_room(agent, room_id)?;
        let d = self
            .messages
            .iter_mut()
            .find(|m| m.id == msg_id && m.room_id == room_id)
            .and_then(|m| m.delivery.get_mut(&agent.id))
            .ok_or_else(|| ApiError::not_found("message not found"))?;
        let t = now();
        let (status, error) = match update {
            DeliveryUpdate::Processing => {
                if d.status != DeliveryStatus::Processing {
                    let number = d.attempts.len() as u64 + 1;
                    d.attempts.push(Attempt {
                        number,
                        status: DeliveryStatus::Processing,
                        started_at: t.clone(),
                        finished_at: None,
                        error: None,
                    });
                    d.status = DeliveryStatus::Processing;
                }
                (None, None)
            }
            DeliveryUpdate::Processed => (Some(DeliveryStatus::Processed), None),
            DeliveryUpdate::Failed(error) => (
                Some(DeliveryStatus::Failed),
                Some(
                    error
                        .filter(|e| !e.trim().is_empty())
                        .unwrap_or_else(|| "Unknown error".into()),
                ),
            ),
        };
        if let Some(status) = status {
            if d.status != DeliveryStatus::Processing {
                return Err(ApiError::invalid(
                    "/processing_attempt",
                    "no active processing attempt",
                ));
            }
            if let Some(a) = d.attempts.last_mut() {
                a.status = status;
                a.finished_at = Some(t);
                a.error = error.or(a.error.take());
            }
            d.status = status;
        }
        Ok(json!({
            "id": msg_id,
            "status": d.status,
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
            None | Some("" | "all") => None,
            Some("pending") => Some(DeliveryStatus::Delivered),
            // Any other filter is a status's wire name.
            Some(s) => Some(
                serde_json::from_value(Value::from(s))
                    .map_err(|_| ApiError::invalid("/status", "is invalid"))?,
            ),
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
}
