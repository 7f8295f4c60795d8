//! `wait_for`: pause the list until someone answers in the room (or the
//! timeout passes: then `on_timeout` runs instead of the rest).

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionDef, ArgValues, Journal};
use crate::schema::{Action, ConditionList};

/// `wait_for` as the loader and the engine know it (its kind is in the registry).
pub const DEF: ActionDef = ActionDef::new::<Args>("wait_for", Journal::Repeatable)
    .durations(&["timeout"])
    .nested(&["if", "on_timeout"])
    .example("{ from: '@ann', chat: r1, if: [{ event.content: { contains: yes } }], timeout: 10m, on_timeout: [{ reply: 'no answer' }] }");

/// Pause until a message in the room answers (durable).
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "wait_for")]
pub struct Args {
    /// Who may answer: a handle or id (default: the triggering message's sender).
    pub from: Option<String>,
    /// The room (default: the event's room; required in rules whose event has none).
    pub chat: Option<String>,
    /// Conditions the answer must meet, with `event` = the answering message.
    #[serde(rename = "if")]
    pub if_: Option<ConditionList>,
    /// How long to wait (a literal duration, at most 30d).
    pub timeout: String,
    /// Actions run when the timeout passes first (the rest of the list does not run).
    pub on_timeout: Option<Vec<Action>>,
}

/// `wait_for` with its templates rendered (`if` and `on_timeout` are compiled, not rendered).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitFor {
    /// Handles or ids that may answer; `None` means the triggering sender.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<String>>,
    /// Room id; `None` means the event's room.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat: Option<String>,
    /// How long to wait.
    #[serde(with = "super::secs")]
    pub timeout: Duration,
}

impl WaitFor {
    /// Types the rendered arguments.
    pub fn render(args: &ArgValues) -> Result<Self, String> {
        Ok(WaitFor {
            from: args.list("from")?.filter(|l| !l.is_empty()),
            chat: args.text("chat"),
            timeout: args.duration("timeout")?.ok_or("`timeout` rendered empty")?,
        })
    }
}
