//! Contacts, contact requests and peers: who can reach whom, and the
//! contact pushes each change causes.

use std::collections::HashSet;
use std::time::Instant;

use serde_json::{json, Value};

use super::contacts_topic;
use super::{new_id, now, strip_at, Changed, Entity, World};
use crate::error::ApiError;
use crate::hub::{Effect, Presence, Principal};
use band_wire::model::EntityType;

/// A contact: one record for both directions.
#[derive(Clone)]
pub(super) struct Contact {
    pub(super) id: String,
    pub(super) a: String,
    pub(super) b: String,
    pub(super) inserted_at: String,
}

impl Contact {
    /// The other party, when `me` is one of the two.
    pub(super) fn other(&self, me: &str) -> Option<&str> {
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
pub(super) struct ContactRequest {
    pub(super) id: String,
    pub(super) from: String,
    pub(super) to: String,
    pub(super) status: String,
    pub(super) message: Option<String>,
    pub(super) inserted_at: String,
    pub(super) responded_at: Option<String>,
    /// When it expires if still pending (`None`: never).
    pub(super) expires_at: Option<Instant>,
}

/// How a contact request is answered.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RequestAnswer {
    /// Recipient accepts.
    Approve,
    /// Recipient declines.
    Reject,
    /// Requester withdraws.
    Cancel,
}

/// A push only `id` receives.
fn to_one(topic: String, event: &'static str, payload: Value, id: &str) -> Effect {
    Effect::to_only(topic, event, payload, HashSet::from([id.to_string()]))
}

impl World {
    /// Entities the caller can reach, registry first then contact-only.
    pub fn peers(
        &self,
        who: &Principal,
        not_in_chat: Option<&str>,
        kind: Option<&str>,
        online: &Presence,
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
                Some((
                    u8::from(source == "contact"),
                    self.peer_json(me, e, source, online),
                ))
            })
            .collect();
        rows.sort_by_key(|(k, _)| *k);
        rows.into_iter().map(|(_, v)| v).collect()
    }

    /// The caller's contacts (agent flat form or user form).
    pub fn contacts(&self, who: &Principal, online: &Presence) -> Vec<Value> {
        self.contacts
            .iter()
            .filter_map(|c| {
                let other = self.entity(c.other(&who.id)?)?;
                Some(Self::contact_json(other, c, online, who.kind))
            })
            .collect()
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
    ) -> Changed<Value> {
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
            return self.answer_request(who, Some(&inverse), None, RequestAnswer::Approve);
        }
        let r = ContactRequest {
            id: new_id(),
            from: who.id.clone(),
            to: other.id.clone(),
            status: "pending".into(),
            message,
            inserted_at: now(),
            responded_at: None,
            expires_at: self
                .request_expiry
                .and_then(|d| Instant::now().checked_add(d)),
        };
        let payload = match other.kind {
            EntityType::Agent => self.request_received_json(&r),
            EntityType::User => self.request_user_json(&r),
        };
        let push = to_one(
            contacts_topic(&other),
            "contact_request_received",
            payload,
            &other.id,
        );
        let out = self.request_user_json(&r);
        self.requests.push(r);
        Ok((out, vec![push]))
    }

    /// Approves, rejects (received requests) or cancels (sent requests), by
    /// request id or by the other party's handle.
    pub fn answer_request(
        &mut self,
        who: &Principal,
        request_id: Option<&str>,
        handle: Option<&str>,
        answer: RequestAnswer,
    ) -> Changed<Value> {
        let mine = |r: &ContactRequest| match answer {
            RequestAnswer::Approve | RequestAnswer::Reject => r.to == who.id,
            RequestAnswer::Cancel => r.from == who.id,
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
                let party = |r: &ContactRequest| match answer {
                    RequestAnswer::Approve | RequestAnswer::Reject => r.from == other,
                    RequestAnswer::Cancel => r.to == other,
                };
                let matching: Vec<usize> = (0..self.requests.len())
                    .filter(|&i| mine(&self.requests[i]) && party(&self.requests[i]))
                    .collect();
                // The pending one if any, else the latest (to report its status).
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
        let status = match answer {
            RequestAnswer::Approve => "approved",
            RequestAnswer::Reject => "rejected",
            RequestAnswer::Cancel => "cancelled",
        };
        let t = now();
        self.requests[idx].status = status.into();
        self.requests[idx].responded_at = Some(t.clone());
        let r = self.requests[idx].clone();
        let reply = json!({"id": r.id, "status": status});
        let (from, to) = match (self.entity(&r.from).cloned(), self.entity(&r.to).cloned()) {
            (Some(f), Some(t)) => (f, t),
            _ => return Ok((reply, Vec::new())),
        };
        // Both parties hear the new status, each on its own contacts topic.
        let mut effects = Self::request_updated(&from, &to, &reply);
        if answer == RequestAnswer::Approve && !self.are_contacts(&from.id, &to.id) {
            let c = Contact {
                id: new_id(),
                a: from.id.clone(),
                b: to.id.clone(),
                inserted_at: t,
            };
            for (me, other) in [(&from, &to), (&to, &from)] {
                effects.push(to_one(
                    contacts_topic(me),
                    "contact_added",
                    Self::contact_added(other, &c.inserted_at),
                    &me.id,
                ));
            }
            self.contacts.push(c);
        }
        Ok((reply, effects))
    }

    /// Expires the pending requests whose time is up at `at`: status
    /// `expired`, and `contact_request_updated` to both parties.
    pub fn expire_requests(&mut self, at: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        for i in 0..self.requests.len() {
            let r = &self.requests[i];
            if r.status != "pending" || r.expires_at.is_none_or(|t| t > at) {
                continue;
            }
            let r = &mut self.requests[i];
            r.status = "expired".into();
            r.responded_at = Some(now());
            let reply = json!({"id": r.id, "status": "expired"});
            let (from, to) = (r.from.clone(), r.to.clone());
            tracing::info!(request = %reply["id"], "contact request expired");
            if let (Some(f), Some(t)) = (self.entity(&from), self.entity(&to)) {
                effects.extend(Self::request_updated(f, t, &reply));
            }
        }
        effects
    }

    /// When the next pending request expires, if any does.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.requests
            .iter()
            .filter(|r| r.status == "pending")
            .filter_map(|r| r.expires_at)
            .min()
    }

    /// `contact_request_updated` (`{id, status}`) to the requester and to the
    /// recipient, as the platform sends it on every status change.
    fn request_updated(from: &Entity, to: &Entity, reply: &Value) -> Vec<Effect> {
        [from, to]
            .into_iter()
            .map(|e| {
                to_one(
                    contacts_topic(e),
                    "contact_request_updated",
                    reply.clone(),
                    &e.id,
                )
            })
            .collect()
    }

    /// Removes a contact (both directions), by record id, entity id or handle.
    pub fn remove_contact(
        &mut self,
        who: &Principal,
        contact_id: Option<&str>,
        handle: Option<&str>,
    ) -> Changed<Value> {
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
        let mut effects = Vec::new();
        for (me, other) in [
            (who.id.as_str(), other_id.as_str()),
            (other_id.as_str(), who.id.as_str()),
        ] {
            if let Some(e) = self.entity(me) {
                effects.push(to_one(
                    contacts_topic(e),
                    "contact_removed",
                    json!({ "id": other }),
                    me,
                ));
            }
        }
        Ok((json!({"status": "removed"}), effects))
    }

    /// The entity with this handle, for `/me/contacts/resolve`.
    pub fn resolve(&self, handle: &str) -> Result<&Entity, ApiError> {
        self.by_handle(handle)
            .ok_or_else(|| ApiError::not_found("no entity with that handle"))
    }
}
