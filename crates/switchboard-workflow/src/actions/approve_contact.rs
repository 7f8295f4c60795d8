//! `approve_contact`: approve a contact request.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionDef, ArgValues, Journal};

/// `approve_contact` as the loader and the engine know it (its kind is in the registry).
pub const DEF: ActionDef =
    ActionDef::new::<Args>("approve_contact", Journal::Repeatable)
        .shorthand("request")
        .example("{ request: cr1 }");

/// Approve a contact request.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "approve_contact")]
pub struct Args {
    /// Request id (default: the event's).
    pub request: Option<String>,
}

/// Approve a contact request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApproveContact {
    /// Request id; `None` means the event's request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
}

impl ApproveContact {
    /// Types the rendered arguments.
    pub fn render(args: &ArgValues) -> Result<Self, String> {
        Ok(ApproveContact {
            request: args.text("request"),
        })
    }
}
