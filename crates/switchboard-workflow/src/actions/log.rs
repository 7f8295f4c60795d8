//! `log`: write a log line (done by the engine).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionDef, ArgValues, Journal};

/// `log` as the loader and the engine know it (its kind is in the registry).
pub const DEF: ActionDef = ActionDef::new::<Args>("log", Journal::Repeatable)
    .shorthand("message")
    .choices(&[("level", &["error", "warn", "info", "debug", "trace"])])
    .example("{ message: hi, level: warn }");

/// Write a log line.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "log")]
pub struct Args {
    /// Text.
    pub message: String,
    /// error, warn, info (default), debug, trace.
    pub level: Option<String>,
}

/// Write a log line (engine).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Log {
    /// Text.
    pub message: String,
    /// error, warn, info, debug or trace.
    pub level: String,
}

impl Log {
    /// Types the rendered arguments.
    pub fn render(args: &ArgValues) -> Result<Self, String> {
        Ok(Log {
            message: args.text("message").unwrap_or_default(),
            level: args.text("level").unwrap_or_else(|| "info".into()),
        })
    }
}
