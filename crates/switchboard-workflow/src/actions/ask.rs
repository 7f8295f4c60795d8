//! `ask`: send a question mentioning someone and pause the list until they
//! answer (naming one of `choices`, when given).

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionDef, ArgValues, Journal};
use crate::schema::Action;

/// `ask` as the loader and the engine know it (its kind is in the registry).
pub const DEF: ActionDef = ActionDef::new::<Args>("ask", Journal::Once)
    .durations(&["timeout"])
    .nested(&["on_timeout"])
    .example("{ to: '@carol', text: 'Approve?', choices: [approve, reject], timeout: 1h, on_timeout: [{ reply: 'no answer' }] }");

/// Ask someone in the room and pause until they answer (durable).
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ask")]
pub struct Args {
    /// Who is asked (a handle or id): mentioned in the question, and the only one whose answer counts.
    pub to: String,
    /// The question (template).
    pub text: String,
    /// The answers accepted (compared ignoring case); the answer must name one.
    pub choices: Option<Vec<String>>,
    /// How long to wait (a literal duration, at most 30d).
    pub timeout: String,
    /// Actions run when the timeout passes first (the rest of the list does not run).
    pub on_timeout: Option<Vec<Action>>,
}

/// `ask` with its templates rendered (`on_timeout` is compiled, not rendered).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ask {
    /// Handles or ids asked (mentioned in the question).
    pub to: Vec<String>,
    /// The question.
    pub text: String,
    /// The accepted answers, as written.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// How long to wait.
    #[serde(with = "super::secs")]
    pub timeout: Duration,
}

impl Ask {
    /// Types the rendered arguments.
    pub fn render(args: &ArgValues) -> Result<Self, String> {
        let to = args.list("to")?.unwrap_or_default();
        if to.is_empty() {
            return Err("`to` rendered empty".into());
        }
        Ok(Ask {
            to,
            text: args.required("text")?,
            choices: args.list("choices")?.unwrap_or_default(),
            timeout: args.duration("timeout")?.ok_or("`timeout` rendered empty")?,
        })
    }
}
