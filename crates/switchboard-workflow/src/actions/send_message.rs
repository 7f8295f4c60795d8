//! `send_message`: post a message in a given room.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionDef, ArgValues, Journal};

/// `send_message` as the loader and the engine know it (its kind is in the registry).
pub const DEF: ActionDef =
    ActionDef::new::<Args>("send_message", Journal::Once)
        .example("{ chat: r1, text: hi, mentions: ['@ann'] }");

/// Post a message in a room.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "send_message")]
pub struct Args {
    /// Room id.
    pub chat: String,
    /// Text.
    pub text: String,
    /// Handles or ids to mention.
    pub mentions: Vec<String>,
}

/// Post a message in a given room.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SendMessage {
    /// Room id.
    pub chat: String,
    /// Message text.
    pub text: String,
    /// Handles or ids to mention (at least one).
    pub mentions: Vec<String>,
}

impl SendMessage {
    /// Types the rendered arguments.
    pub fn render(args: &ArgValues) -> Result<Self, String> {
        Ok(SendMessage {
            chat: args.required("chat")?,
            text: args.required("text")?,
            mentions: args.list("mentions")?.unwrap_or_default(),
        })
    }
}
