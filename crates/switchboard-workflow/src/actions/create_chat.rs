//! `create_chat`: create a room and add participants.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionDef, ArgValues, Journal};

/// `create_chat` as the loader and the engine know it (its kind is in the registry).
pub const DEF: ActionDef = ActionDef::new::<Args>("create_chat", Journal::Once)
    .shorthand("title")
    .example("{ title: Billing, participants: ['@ann'] }");

/// Create a room and add participants.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "create_chat")]
pub struct Args {
    /// Title.
    pub title: Option<String>,
    /// Handles or ids.
    pub participants: Option<Vec<String>>,
}

/// Create a room, then add participants.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreateChat {
    /// Room title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Handles or ids to add.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<String>,
}

impl CreateChat {
    /// Types the rendered arguments.
    pub fn render(args: &ArgValues) -> Result<Self, String> {
        Ok(CreateChat {
            title: args.text("title"),
            participants: args.list("participants")?.unwrap_or_default(),
        })
    }
}
