//! `http`: outbound HTTP to an allowed host.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use serde_json::Value;

use super::{value_text, ActionDef, ArgValues, Journal};

/// Default time limit.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Default cap on a response body (1 MiB): a larger one fails the action.
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024;

/// Highest `max_bytes` a workflow may ask for (1 GiB): the body is held in memory.
pub const MAX_BYTES_CEILING: u64 = 1024 * 1024 * 1024;

/// Largest body (as JSON) the journal keeps for an `http` step whose result
/// is bound with `as:`; a larger one is left out (see [`journaled`]).
pub const JOURNAL_BODY_LIMIT: usize = 16 * 1024;

/// Key of a journaled result saying its body was left out.
const BODY_LEFT_OUT: &str = "body_not_journaled";

/// `http` as the loader and the engine know it (its kind is in the registry).
pub const DEF: ActionDef = ActionDef::new::<Args>("http", Journal::Once)
    .shorthand("url")
    .durations(&["timeout"])
    .example(
        "{ method: post, url: 'https://example.com/hook', headers: { X-Key: k }, json: { a: 1 }, timeout: 5s, max_bytes: 65536, follow_redirects: false }",
    );

/// Outbound HTTP, only to allowed hosts.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "http")]
pub struct Args {
    /// GET, POST, ... (default GET, or POST with `json`).
    pub method: Option<String>,
    /// URL.
    pub url: String,
    /// Headers.
    pub headers: Option<BTreeMap<String, String>>,
    /// JSON body.
    pub json: Option<Value>,
    /// Time limit (default 10s).
    pub timeout: Option<String>,
    /// Largest response body accepted, in bytes (default 1048576, 1 MiB); a
    /// larger one fails the action.
    #[serde(default)]
    #[schemars(schema_with = "super::whole_number_or_template")]
    pub max_bytes: Option<Value>,
    /// Follow redirects (default true): each hop must be an allowed host, and
    /// `headers` go only to the URL's own origin. With false a 3xx fails.
    #[serde(default)]
    #[schemars(schema_with = "super::boolean_or_template")]
    pub follow_redirects: Option<Value>,
}

/// Outbound HTTP request to an allowed host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Http {
    /// HTTP method (upper case).
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Request headers.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// JSON body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
    /// Time limit.
    #[serde(skip)]
    pub timeout: Duration,
    /// Largest response body accepted, in bytes.
    #[serde(skip_serializing_if = "is_default_max")]
    pub max_bytes: u64,
    /// Whether redirects (to allowed hosts) are followed.
    #[serde(skip_serializing_if = "is_true")]
    pub follow_redirects: bool,
}

fn is_default_max(n: &u64) -> bool {
    *n == DEFAULT_MAX_BYTES
}

fn is_true(b: &bool) -> bool {
    *b
}

impl Http {
    /// Types the rendered arguments.
    pub fn render(args: &ArgValues) -> Result<Self, String> {
        let json = args.value("json").cloned();
        let method = args
            .text("method")
            .map(|m| m.to_uppercase())
            .unwrap_or_else(|| if json.is_some() { "POST" } else { "GET" }.into());
        let headers = match args.value("headers") {
            Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), value_text(v))).collect(),
            _ => BTreeMap::new(),
        };
        Ok(Http {
            method,
            url: args.required("url")?,
            headers,
            json,
            timeout: args.duration("timeout")?.unwrap_or(HTTP_TIMEOUT),
            max_bytes: match args.value("max_bytes") {
                None => DEFAULT_MAX_BYTES,
                Some(v) => max_bytes(v)?,
            },
            follow_redirects: match args.value("follow_redirects") {
                None => true,
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
                Some(v) => return Err(format!("`follow_redirects` must be true or false, got {v}")),
            },
        })
    }
}

/// A byte count between 1 and [`MAX_BYTES_CEILING`] (text holding one too:
/// templates render to text).
fn max_bytes(v: &Value) -> Result<u64, String> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    match n {
        Some(n) if (1..=MAX_BYTES_CEILING).contains(&n) => Ok(n),
        _ => Err(format!(
            "`max_bytes` must be a whole number of bytes from 1 to {MAX_BYTES_CEILING}, got {v}"
        )),
    }
}

/// What the journal keeps of an `http` result (`{status, body}`): the body
/// only when a later step can read it (`bound`, the step has `as:`) and it is
/// at most [`JOURNAL_BODY_LIMIT`] bytes as JSON; otherwise the status and a
/// marker. Whole bodies would make every journal write (and fsync) as large as
/// the responses.
pub fn journaled(result: &Value, bound: bool) -> Value {
    let body = result.get("body");
    let small = body
        .is_some_and(|b| serde_json::to_vec(b).is_ok_and(|v| v.len() <= JOURNAL_BODY_LIMIT));
    if bound && small {
        return result.clone();
    }
    let mut kept = serde_json::Map::new();
    if let Some(status) = result.get("status") {
        kept.insert("status".into(), status.clone());
    }
    if body.is_some() {
        kept.insert(BODY_LEFT_OUT.into(), Value::Bool(true));
    }
    Value::Object(kept)
}

/// True when a journaled result lacks the body [`journaled`] left out: a step
/// that binds it must be sent again to have it (with the same
/// `Idempotency-Key`, so the partner can answer from its own record).
pub fn body_left_out(journaled: &Value) -> bool {
    journaled.get(BODY_LEFT_OUT) == Some(&Value::Bool(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_journal_keeps_small_bound_bodies_only() {
        let small = json!({"status": 200, "body": {"ticket": 7}});
        assert_eq!(journaled(&small, true), small);
        let unbound = journaled(&small, false);
        assert_eq!(unbound, json!({"status": 200, "body_not_journaled": true}));
        assert!(body_left_out(&unbound));
        let big = json!({"status": 201, "body": "x".repeat(JOURNAL_BODY_LIMIT + 1)});
        let kept = journaled(&big, true);
        assert_eq!(kept["status"], 201);
        assert!(body_left_out(&kept));
        assert!(!body_left_out(&small));
    }

    #[test]
    fn max_bytes_is_a_bounded_whole_number() {
        assert_eq!(max_bytes(&json!(10)), Ok(10));
        assert_eq!(max_bytes(&json!("2048")), Ok(2048));
        for bad in [json!(0), json!(-1), json!("lots"), json!(MAX_BYTES_CEILING + 1)] {
            assert!(max_bytes(&bad).unwrap_err().contains("max_bytes"), "{bad}");
        }
    }
}
