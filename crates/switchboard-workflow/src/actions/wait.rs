//! `wait`: a durable delay; the rest of the list runs after it.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionDef, ArgValues, Journal};

/// `wait` as the loader and the engine know it (its kind is in the registry).
pub const DEF: ActionDef = ActionDef::new::<Args>("wait", Journal::Repeatable)
    .shorthand("duration")
    .durations(&["duration"])
    .example("{ duration: 5m }");

/// Pause the list for a while (durable); `- wait: 5m` for short.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "wait")]
pub struct Args {
    /// How long (a literal duration, at most 30d).
    pub duration: String,
}

/// `wait` with its argument read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Wait {
    /// How long.
    #[serde(with = "super::secs")]
    pub duration: Duration,
}

impl Wait {
    /// Types the rendered arguments.
    pub fn render(args: &ArgValues) -> Result<Self, String> {
        Ok(Wait {
            duration: args
                .duration("duration")?
                .ok_or("`duration` rendered empty")?,
        })
    }
}
