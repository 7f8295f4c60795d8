//! `add_contact`: send a contact request.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionDef, ArgValues, Journal};

/// `add_contact` as the loader and the engine know it (its kind is in the registry).
pub const DEF: ActionDef = ActionDef::new::<Args>("add_contact", Journal::Once)
    .shorthand("handle")
    .example("{ handle: '@ann', message: hello }");

/// Send a contact request.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "add_contact")]
pub struct Args {
    /// Handle.
    pub handle: String,
    /// Note.
    pub message: Option<String>,
}

/// Send a contact request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AddContact {
    /// Handle to ask.
    pub handle: String,
    /// Note sent with the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl AddContact {
    /// Types the rendered arguments.
    pub fn render(args: &ArgValues) -> Result<Self, String> {
        Ok(AddContact {
            handle: args.required("handle")?,
            message: args.text("message"),
        })
    }
}
