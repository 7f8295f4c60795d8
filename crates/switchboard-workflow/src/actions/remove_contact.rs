//! `remove_contact`: remove a contact.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionDef, ArgValues, Journal};

/// `remove_contact` as the loader and the engine know it (its kind is in the registry).
pub const DEF: ActionDef =
    ActionDef::new::<Args>("remove_contact", Journal::Repeatable)
        .shorthand("handle")
        .example("{ handle: '@ann' }");

/// Remove a contact.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "remove_contact")]
pub struct Args {
    /// Handle or id.
    pub handle: String,
}

/// Remove a contact.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoveContact {
    /// Handle or id.
    pub handle: String,
}

impl RemoveContact {
    /// Types the rendered arguments.
    pub fn render(args: &ArgValues) -> Result<Self, String> {
        Ok(RemoveContact {
            handle: args.required("handle")?,
        })
    }
}
