//! `incr`: add to a number in state (done by the engine).

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use serde_json::Value;

use super::{opt_secs, ActionDef, ArgValues, Journal};

/// `incr` as the loader and the engine know it (its kind is in the registry).
pub const DEF: ActionDef = ActionDef::new::<Args>("incr", Journal::Repeatable)
    .shorthand("key")
    .durations(&["ttl"])
    .example("{ key: k, by: 2, ttl: 1h }");

/// Add to a number in state; the result is the new value.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "incr")]
pub struct Args {
    /// Key.
    pub key: String,
    /// Amount (default 1).
    #[serde(default)]
    #[schemars(schema_with = "super::whole_number_or_template")]
    pub by: Option<Value>,
    /// Time to live.
    pub ttl: Option<String>,
}

/// Add to a numeric state key (engine).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incr {
    /// Key.
    pub key: String,
    /// Amount (default 1).
    pub by: i64,
    /// Time to live.
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_secs")]
    pub ttl: Option<Duration>,
}

impl Incr {
    /// Types the rendered arguments.
    pub fn render(args: &ArgValues) -> Result<Self, String> {
        Ok(Incr {
            key: args.required("key")?,
            by: match args.value("by") {
                None => 1,
                Some(v) => {
                    integer(v).ok_or_else(|| format!("`by` must be a whole number, got {v}"))?
                }
            },
            ttl: args.duration("ttl")?,
        })
    }
}

/// A whole number, or text holding one (templates render to text).
fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
