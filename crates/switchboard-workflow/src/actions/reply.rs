//! `reply`: post a message in the event's room.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionDef, ArgValues, Journal};

/// `reply` as the loader and the engine know it (its kind is in the registry).
pub const DEF: ActionDef = ActionDef::new::<Args>("reply", Journal::Once)
    .shorthand("text")
    .example("{ text: hi, mentions: ['@ann'] }");

/// Post a message in the event's room.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "reply")]
pub struct Args {
    /// Text (template).
    pub text: String,
    /// Handles or ids to mention (default: the sender).
    pub mentions: Option<Vec<String>>,
}

/// Post a message in the event's room.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reply {
    /// Message text.
    pub text: String,
    /// Handles or ids to mention; `None` means the sender.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mentions: Option<Vec<String>>,
}

impl Reply {
    /// Types the rendered arguments.
    pub fn render(args: &ArgValues) -> Result<Self, String> {
        Ok(Reply {
            text: args.required("text")?,
            mentions: args.list("mentions")?,
        })
    }
}
