//! `remove_participant`: remove someone from a room.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionDef, ArgValues, Journal};

/// `remove_participant` as the loader and the engine know it (its kind is in the registry).
pub const DEF: ActionDef =
    ActionDef::new::<Args>("remove_participant", Journal::Repeatable)
        .shorthand("handle")
        .one_of(&["handle", "id"])
        .example("{ chat: r1, handle: '@ann', id: u1 }");

/// Remove a participant.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "remove_participant")]
pub struct Args {
    /// Room id (default: the event's).
    pub chat: Option<String>,
    /// Handle.
    pub handle: Option<String>,
    /// Or id.
    pub id: Option<String>,
}

/// Remove a participant from a room.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoveParticipant {
    /// Room id; `None` means the event's room.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat: Option<String>,
    /// Handle ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    /// ... or id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl RemoveParticipant {
    /// Types the rendered arguments.
    pub fn render(args: &ArgValues) -> Result<Self, String> {
        Ok(RemoveParticipant {
            chat: args.text("chat"),
            handle: args.text("handle"),
            id: args.text("id"),
        })
    }
}
