//! Rendering a compiled action into a [`RenderedAction`]: every template
//! argument rendered against the context, then typed and checked.

use std::collections::BTreeMap;
use std::time::Duration;

use minijinja::value::Value as JValue;
use serde_json::{Map, Value};

use super::action::RenderedAction;
use switchboard_workflow::compile::parse_duration;
use switchboard_workflow::rule::{Action, Arg};
use switchboard_workflow::template::Templates;

/// Default time limit of `http`.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Renders one action's arguments and builds the typed action.
pub fn render_action(
    action: &Action,
    templates: &Templates,
    ctx: &JValue,
) -> Result<RenderedAction, String> {
    let mut args = Map::new();
    for (k, a) in &action.args {
        args.insert(
            k.clone(),
            render_arg(a, templates, ctx).map_err(|e| format!("`{k}`: {e}"))?,
        );
    }
    build(action.name, &args)
}

/// Renders an argument tree to JSON.
pub fn render_arg(arg: &Arg, templates: &Templates, ctx: &JValue) -> Result<Value, String> {
    Ok(match arg {
        Arg::Text(t) => templates.render(t, ctx)?,
        Arg::Value(v) => v.clone(),
        Arg::List(items) => Value::Array(
            items
                .iter()
                .map(|a| render_arg(a, templates, ctx))
                .collect::<Result<_, _>>()?,
        ),
        Arg::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, a)| Ok((k.clone(), render_arg(a, templates, ctx)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

fn build(name: &str, args: &Map<String, Value>) -> Result<RenderedAction, String> {
    let text = |k: &str| opt_text(args, k);
    let req = |k: &str| {
        text(k)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| format!("`{k}` rendered empty"))
    };
    Ok(match name {
        "reply" => RenderedAction::Reply {
            text: req("text")?,
            mentions: list(args, "mentions")?,
        },
        "send_message" => RenderedAction::SendMessage {
            chat: req("chat")?,
            text: req("text")?,
            mentions: list(args, "mentions")?.unwrap_or_default(),
        },
        "post_event" => RenderedAction::PostEvent {
            chat: text("chat"),
            kind: req("type")?,
            content: req("content")?,
            metadata: args.get("metadata").cloned().filter(|v| !v.is_null()),
        },
        "create_chat" => RenderedAction::CreateChat {
            title: text("title"),
            participants: list(args, "participants")?.unwrap_or_default(),
        },
        "add_participant" => RenderedAction::AddParticipant {
            chat: text("chat"),
            handle: text("handle"),
            id: text("id"),
            role: text("role"),
        },
        "remove_participant" => RenderedAction::RemoveParticipant {
            chat: text("chat"),
            handle: text("handle"),
            id: text("id"),
        },
        "approve_contact" => RenderedAction::ApproveContact {
            request: text("request"),
        },
        "reject_contact" => RenderedAction::RejectContact {
            request: text("request"),
            reason: text("reason"),
        },
        "add_contact" => RenderedAction::AddContact {
            handle: req("handle")?,
            message: text("message"),
        },
        "remove_contact" => RenderedAction::RemoveContact {
            handle: req("handle")?,
        },
        "set" => RenderedAction::Set {
            key: req("key")?,
            value: args.get("value").cloned().unwrap_or(Value::Null),
            ttl: duration(args, "ttl")?,
        },
        "unset" => RenderedAction::Unset { key: req("key")? },
        "incr" => RenderedAction::Incr {
            key: req("key")?,
            by: match args.get("by") {
                None | Some(Value::Null) => 1,
                Some(v) => {
                    integer(v).ok_or_else(|| format!("`by` must be a whole number, got {v}"))?
                }
            },
            ttl: duration(args, "ttl")?,
        },
        "http" => {
            let json = args.get("json").cloned().filter(|v| !v.is_null());
            let method = text("method")
                .map(|m| m.to_uppercase())
                .unwrap_or_else(|| if json.is_some() { "POST" } else { "GET" }.into());
            let headers = match args.get("headers") {
                Some(Value::Object(m)) => {
                    m.iter().map(|(k, v)| (k.clone(), value_text(v))).collect()
                }
                _ => BTreeMap::new(),
            };
            RenderedAction::Http {
                method,
                url: req("url")?,
                headers,
                json,
                timeout: duration(args, "timeout")?.unwrap_or(HTTP_TIMEOUT),
            }
        }
        "log" => RenderedAction::Log {
            message: text("message").unwrap_or_default(),
            level: text("level").unwrap_or_else(|| "info".into()),
        },
        "fail" => RenderedAction::Fail {
            reason: text("reason").unwrap_or_else(|| "failed by rule".into()),
        },
        other => return Err(format!("unknown action `{other}`")),
    })
}

/// A value as text: strings as they are, other values as JSON.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn opt_text(args: &Map<String, Value>, k: &str) -> Option<String> {
    match args.get(k)? {
        Value::Null => None,
        v => Some(value_text(v)).filter(|s| !s.is_empty()),
    }
}

/// A list of strings; a single string counts as a list of one.
fn list(args: &Map<String, Value>, k: &str) -> Result<Option<Vec<String>>, String> {
    match args.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => Ok(Some(
            items
                .iter()
                .map(value_text)
                .filter(|s| !s.trim().is_empty())
                .collect(),
        )),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(other) => Err(format!("`{k}` must be a list, got {other}")),
    }
}

fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn duration(args: &Map<String, Value>, k: &str) -> Result<Option<Duration>, String> {
    match args.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|s| *s > 0.0)
            .map(|s| Some(Duration::from_secs_f64(s)))
            .ok_or_else(|| format!("`{k}` must be positive")),
        Some(Value::String(s)) => parse_duration(s)
            .map(Some)
            .map_err(|e| format!("`{k}`: {e}")),
        Some(other) => Err(format!("`{k}` must be a duration like `10m`, got {other}")),
    }
}
