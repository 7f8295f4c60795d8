//! `reject_contact`: reject a contact request.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionDef, ArgValues, Journal};

/// `reject_contact` as the loader and the engine know it (its kind is in the registry).
pub const DEF: ActionDef =
    ActionDef::new::<Args>("reject_contact", Journal::Repeatable)
        .shorthand("reason")
        .example("{ request: cr1, reason: spam }");

/// Reject a contact request.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "reject_contact")]
pub struct Args {
    /// Request id (default: the event's).
    pub request: Option<String>,
    /// Why (logged).
    pub reason: Option<String>,
}

/// Reject a contact request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectContact {
    /// Request id; `None` means the event's request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// Why (logged; the platform's respond call carries no reason).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl RejectContact {
    /// Types the rendered arguments.
    pub fn render(args: &ArgValues) -> Result<Self, String> {
        Ok(RejectContact {
            request: args.text("request"),
            reason: args.text("reason"),
        })
    }
}
