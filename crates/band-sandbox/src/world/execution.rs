//! The platform's STOP / PLAY / INTERRUPT of an agent's execution in a room,
//! as a person's UI sends them: which rooms are stopped for which agent, and
//! the `agent.control` pushes that tell the agent.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::{new_id, Changed, World};
use crate::error::ApiError;
use crate::hub::Effect;
use band_wire::events::{ControlMode, TopicKind};
use band_wire::model::EntityType;

/// The message of the 403 a stopped room answers posts with (the SDK looks
/// for this text).
pub const EXECUTION_STOPPED: &str = "execution is stopped";

/// One control request: what to do to which agent, in one room or all.
#[derive(Debug, Clone)]
pub struct Control {
    /// The agent's id.
    pub agent: String,
    /// stop, play or interrupt.
    pub mode: ControlMode,
    /// One room, or every room the agent is in (`None`).
    pub room: Option<String>,
    /// Why, shown to the agent.
    pub reason: Option<String>,
    /// Whether the agent is told (false emulates a lost push).
    pub push: bool,
}

impl World {
    /// Whether `agent`'s execution in `room_id` is stopped.
    pub fn is_stopped(&self, agent: &str, room_id: &str) -> bool {
        self.stopped
            .get(agent)
            .is_some_and(|rooms| rooms.contains(room_id))
    }

    /// A 403 "execution is stopped" when `who` (an agent) is stopped in the room.
    pub(crate) fn check_running(&self, who_id: &str, room_id: &str) -> Result<(), ApiError> {
        if self.is_stopped(who_id, room_id) {
            return Err(ApiError::forbidden(format!(
                "{EXECUTION_STOPPED} for this agent in this room"
            )));
        }
        Ok(())
    }

    /// Applies a control request: STOP marks the rooms stopped, PLAY lifts
    /// the stop, INTERRUPT changes nothing here; each pushes `agent.control`
    /// on `agent_control:<agent>` (unless `push` is off).
    pub fn control(&mut self, c: Control) -> Changed<Value> {
        let agent = self
            .entity(&c.agent)
            .filter(|e| e.kind == EntityType::Agent)
            .ok_or_else(|| ApiError::not_found(format!("no agent with id {}", c.agent)))?;
        let agent_id = agent.id.clone();
        let rooms: BTreeSet<String> = match &c.room {
            Some(id) => {
                let room = self
                    .room(id)
                    .filter(|r| World::member(r, &agent_id).is_some())
                    .ok_or_else(|| {
                        ApiError::not_found(format!("agent {agent_id} is in no room with id {id}"))
                    })?;
                BTreeSet::from([room.id.clone()])
            }
            None => self
                .rooms
                .iter()
                .filter(|r| World::member(r, &agent_id).is_some())
                .map(|r| r.id.clone())
                .collect(),
        };
        match c.mode {
            ControlMode::Stop => self
                .stopped
                .entry(agent_id.clone())
                .or_default()
                .extend(rooms.iter().cloned()),
            ControlMode::Play => {
                if let Some(set) = self.stopped.get_mut(&agent_id) {
                    set.retain(|r| !rooms.contains(r));
                    if set.is_empty() {
                        self.stopped.remove(&agent_id);
                    }
                }
            }
            ControlMode::Interrupt => {}
        }
        let payload = json!({
            "mode": c.mode,
            "scope": if c.room.is_some() { "room" } else { "agent" },
            "agent_id": agent_id,
            "room_id": c.room,
            "correlation_id": new_id(),
            "execution_id": c.room.as_ref().map(|_| new_id()),
            "reason": c.reason.unwrap_or_else(|| format!("{} from the sandbox", c.mode.as_str())),
        });
        let effects = if c.push {
            vec![Effect::to_all(
                TopicKind::AgentControl.topic(&agent_id),
                "agent.control",
                payload.clone(),
            )]
        } else {
            Vec::new()
        };
        Ok((
            json!({"pushed": c.push, "control": payload, "stopped": self.stopped_rooms(&agent_id)}),
            effects,
        ))
    }

    /// The rooms stopped for `agent`, sorted.
    fn stopped_rooms(&self, agent: &str) -> Vec<String> {
        self.stopped
            .get(agent)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Agent id → stopped room ids, for `/_sandbox/state`.
    pub(crate) fn stopped_state(&self) -> Value {
        json!(self.stopped)
    }
}
