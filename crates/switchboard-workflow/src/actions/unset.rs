//! `unset`: remove a state key (done by the engine).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionDef, ArgValues, Journal};

/// `unset` as the loader and the engine know it (its kind is in the registry).
pub const DEF: ActionDef = ActionDef::new::<Args>("unset", Journal::Repeatable)
    .shorthand("key")
    .example("{ key: k }");

/// Remove a state key.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "unset")]
pub struct Args {
    /// Key.
    pub key: String,
}

/// Remove a state key (engine).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unset {
    /// Key.
    pub key: String,
}

impl Unset {
    /// Types the rendered arguments.
    pub fn render(args: &ArgValues) -> Result<Self, String> {
        Ok(Unset {
            key: args.required("key")?,
        })
    }
}
