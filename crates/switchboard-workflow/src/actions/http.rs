//! `http`: outbound HTTP to an allowed host.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use serde_json::Value;

use super::{value_text, ActionDef, ArgValues, Journal};

/// Default time limit.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// `http` as the loader and the engine know it (its kind is in the registry).
pub const DEF: ActionDef = ActionDef::new::<Args>("http", Journal::Once)
    .shorthand("url")
    .durations(&["timeout"])
    .example(
        "{ method: post, url: 'https://example.com/hook', headers: { X-Key: k }, json: { a: 1 }, timeout: 5s }",
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
        })
    }
}
