//! `set`: set a state key (done by the engine).

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use serde_json::Value;

use super::{opt_secs, ActionDef, ArgValues, Journal};

/// `set` as the loader and the engine know it (its kind is in the registry).
pub const DEF: ActionDef = ActionDef::new::<Args>("set", Journal::Repeatable)
    .durations(&["ttl"])
    .example("{ key: k, value: 1, ttl: 1h }");

/// Set a state key.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "set")]
pub struct Args {
    /// Key (template).
    pub key: String,
    /// Value.
    pub value: Value,
    /// Time to live, e.g. `1h`.
    pub ttl: Option<String>,
}

/// Set a state key (done by the engine, not the executor).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Set {
    /// Key.
    pub key: String,
    /// Value.
    pub value: Value,
    /// Time to live.
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_secs")]
    pub ttl: Option<Duration>,
}

impl Set {
    /// Types the rendered arguments.
    pub fn render(args: &ArgValues) -> Result<Self, String> {
        Ok(Set {
            key: args.required("key")?,
            value: args.0.get("value").cloned().unwrap_or(Value::Null),
            ttl: args.duration("ttl")?,
        })
    }
}
