//! `llm`: ask a language model (an OpenAI-compatible Chat Completions API).
//!
//! The language's side: the arguments, the load-time check of `schema` (a
//! JSON Schema, checked against its meta-schema so a typo is a load error at
//! its place) and the check of an answer against it. The call itself is the
//! executor's (no I/O here).

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ActionDef, ArgValues, Journal, LiteralError};

/// Default time limit of one `llm` action (the whole call, retries included):
/// models answer slowly, far more slowly than the partner APIs `http` reaches.
pub const LLM_TIMEOUT: Duration = Duration::from_secs(60);

/// `llm` as the loader and the engine know it (its kind is in the registry).
/// `Once`: a second call costs money and may answer differently.
pub const DEF: ActionDef = ActionDef::new::<Args>("llm", Journal::Once)
    .shorthand("prompt")
    .durations(&["timeout"])
    .literal_checks(&[("schema", check_schema)])
    .example(
        "{ system: 'Classify the question. Answer with JSON.', prompt: 'Where is my invoice?', schema: { type: object, properties: { route: { enum: [billing, docs, human] } }, required: [route] }, timeout: 20s }",
    );

/// Ask the language model given to `switchboard run --llm-url`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "llm")]
pub struct Args {
    /// The system message (instructions).
    pub system: Option<String>,
    /// The user message: what to answer.
    pub prompt: String,
    /// A JSON Schema the answer must be JSON valid against (then the result
    /// has `json`); an answer that does not validate fails the action.
    pub schema: Option<Value>,
    /// Time limit of the whole call, retries included (default 60s).
    pub timeout: Option<String>,
}

/// A question to the language model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Llm {
    /// The system message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The user message.
    pub prompt: String,
    /// The JSON Schema the answer must validate against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// Time limit of the whole call.
    #[serde(skip)]
    pub timeout: Duration,
}

impl Llm {
    /// Types the rendered arguments.
    pub fn render(args: &ArgValues) -> Result<Self, String> {
        let schema = match args.value("schema") {
            None => None,
            Some(s @ (Value::Object(_) | Value::Bool(_))) => Some(s.clone()),
            // A template rendered to text: the text of a schema.
            Some(Value::String(text)) => Some(
                serde_json::from_str(text)
                    .map_err(|e| format!("`schema` rendered to text that is not JSON: {e}"))?,
            ),
            Some(other) => return Err(format!("`schema` must be a JSON Schema, got {other}")),
        };
        if let Some(schema) = &schema {
            check_schema(schema).map_err(|e| e.to_string())?;
        }
        Ok(Llm {
            system: args.text("system"),
            prompt: args.required("prompt")?,
            schema,
            timeout: args.duration("timeout")?.unwrap_or(LLM_TIMEOUT),
        })
    }
}

/// Checks that `schema` is a JSON Schema: valid against its meta-schema (a
/// misspelt `type`, a `required` that is not a list) and usable (its
/// patterns compile, its references resolve; none may point outside it).
pub fn check_schema(schema: &Value) -> Result<(), LiteralError> {
    if let Err(e) = jsonschema::meta::validate(schema) {
        return Err(LiteralError {
            at: e
                .instance_path()
                .segments()
                .map(|s| s.to_string())
                .collect(),
            message: format!("`schema` is not a valid JSON Schema: {e}"),
        });
    }
    jsonschema::validator_for(schema)
        .map(drop)
        .map_err(|e| LiteralError {
            at: Vec::new(),
            message: format!("`schema` is not a usable JSON Schema: {e}"),
        })
}

/// Checks an answer against the action's schema: `Err` says, readably, the
/// first few places where it does not validate.
pub fn validate_answer(schema: &Value, answer: &Value) -> Result<(), String> {
    let validator = jsonschema::validator_for(schema)
        .map_err(|e| format!("`schema` is not a usable JSON Schema: {e}"))?;
    let problems: Vec<String> = validator
        .iter_errors(answer)
        .take(3)
        .map(|e| match e.instance_path().as_str() {
            "" => e.to_string(),
            at => format!("at {at}: {e}"),
        })
        .collect();
    match problems.is_empty() {
        true => Ok(()),
        false => Err(format!(
            "the answer does not match `schema`: {}",
            problems.join("; ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schemas_are_checked_and_answers_validated() {
        let schema = json!({"type": "object", "properties": {"route": {"enum": ["billing", "docs"]}}, "required": ["route"]});
        assert!(check_schema(&schema).is_ok());
        let bad = check_schema(&json!({"properties": {"a": {"type": "strin"}}})).unwrap_err();
        assert_eq!(bad.at, ["properties", "a", "type"]);
        assert!(bad.message.contains("strin"), "{}", bad.message);
        assert!(check_schema(&json!({"pattern": "(unclosed"})).is_err());
        // Nothing is fetched: a reference outside the schema does not resolve.
        let far = check_schema(&json!({"$ref": "https://example.com/s.json"})).unwrap_err();
        assert!(far.message.contains("not a usable JSON Schema"), "{}", far.message);
        assert!(check_schema(&json!({"$defs": {"r": {"enum": [1]}}, "$ref": "#/$defs/r"})).is_ok());
        assert!(validate_answer(&schema, &json!({"route": "docs"})).is_ok());
        let no = validate_answer(&schema, &json!({"route": "sales"})).unwrap_err();
        assert!(no.contains("/route") && no.contains("sales"), "{no}");
        let no = validate_answer(&schema, &json!({})).unwrap_err();
        assert!(no.contains("route"), "{no}");
    }
}
