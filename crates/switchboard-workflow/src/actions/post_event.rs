//! `post_event`: post an event row (thought, tool call, ...).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use serde_json::Value;

use super::{ActionDef, ArgValues, Journal};

/// `post_event` as the loader and the engine know it (its kind is in the registry).
pub const DEF: ActionDef = ActionDef::new::<Args>("post_event", Journal::Once)
    .choices(&[("type", &["thought", "tool_call", "tool_result", "error", "task"])])
    .example("{ chat: r1, type: thought, content: thinking, metadata: { step: 1 } }");

/// Post an event row.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "post_event")]
pub struct Args {
    /// Room id (default: the event's).
    pub chat: Option<String>,
    /// thought, tool_call, tool_result, error or task.
    pub r#type: String,
    /// Text.
    pub content: String,
    /// Extra metadata.
    pub metadata: Option<Value>,
}

/// Post an event row (thought, tool_call, tool_result, error, task).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PostEvent {
    /// Room id; `None` means the event's room.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat: Option<String>,
    /// Event type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Event text.
    pub content: String,
    /// Extra metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

impl PostEvent {
    /// Types the rendered arguments.
    pub fn render(args: &ArgValues) -> Result<Self, String> {
        Ok(PostEvent {
            chat: args.text("chat"),
            kind: args.required("type")?,
            content: args.required("content")?,
            metadata: args.value("metadata").cloned(),
        })
    }
}
