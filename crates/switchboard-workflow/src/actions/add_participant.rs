//! `add_participant`: add someone to a room.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionDef, ArgValues, Journal};

/// `add_participant` as the loader and the engine know it (its kind is in the registry). Repeatable:
/// adding someone already there has the effect wanted.
pub const DEF: ActionDef =
    ActionDef::new::<Args>("add_participant", Journal::Repeatable)
        .shorthand("handle")
        .one_of(&["handle", "id"])
        .choices(&[("role", &["owner", "admin", "member"])])
        .example("{ chat: r1, handle: '@ann', id: u1, role: admin }");

/// Add a participant.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "add_participant")]
pub struct Args {
    /// Room id (default: the event's).
    pub chat: Option<String>,
    /// Handle.
    pub handle: Option<String>,
    /// Or id.
    pub id: Option<String>,
    /// owner, admin or member.
    pub role: Option<String>,
}

/// Add a participant to a room.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AddParticipant {
    /// Room id; `None` means the event's room.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat: Option<String>,
    /// Handle (resolved through peers) ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    /// ... or id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// owner, admin or member (default member).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

impl AddParticipant {
    /// Types the rendered arguments.
    pub fn render(args: &ArgValues) -> Result<Self, String> {
        Ok(AddParticipant {
            chat: args.text("chat"),
            handle: args.text("handle"),
            id: args.text("id"),
            role: args.text("role"),
        })
    }
}
