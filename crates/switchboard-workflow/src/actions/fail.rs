//! `fail`: mark the message failed (done by the engine; ends the rule).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionDef, ArgValues, Journal};

/// `fail` as the loader and the engine know it (its kind is in the registry).
pub const DEF: ActionDef = ActionDef::new::<Args>("fail", Journal::Repeatable)
    .shorthand("reason")
    .example("{ reason: nope }");

/// Mark the message failed.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "fail")]
pub struct Args {
    /// Reason.
    pub reason: String,
}

/// Mark the message failed with a reason (engine; ends the rule).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fail {
    /// Reason sent to the platform.
    pub reason: String,
}

impl Fail {
    /// Types the rendered arguments.
    pub fn render(args: &ArgValues) -> Result<Self, String> {
        Ok(Fail {
            reason: args
                .text("reason")
                .unwrap_or_else(|| "failed by rule".into()),
        })
    }
}
