//! The `llm` action: one question to a model behind an OpenAI-compatible Chat
//! Completions API (OpenAI, Ollama, vLLM, llama.cpp's server), streaming off.
//!
//! `POST {url}/chat/completions` with `{model, messages, stream: false}`, plus
//! `response_format` of type `json_schema` when the action gives a `schema`
//! (`json_object` for a schema that is just `true`/`false`). The answer is
//! checked here whatever the server promised: `json_schema` is a hint many
//! local servers only half honour. 408, 429, 500, 502, 503 and 504 are retried
//! (after `Retry-After` when the server gives one) within the action's
//! `timeout`; every other failure fails the action at once.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use switchboard_workflow::actions::llm::{validate_answer, Llm};
use tokio::time::Instant;

use crate::error_chain::Chain;

/// Most attempts one `llm` action makes (the first and its retries).
const MAX_ATTEMPTS: u32 = 4;
/// First pause before a retry when the server names none (doubled each time).
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Largest answer read (4 MiB): a chat completion is a few kilobytes.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// How much of a server's error body goes into a failure reason.
const ERROR_EXCERPT: usize = 300;

/// Where the model is and how to reach it (`switchboard run --llm-*`).
#[derive(Clone, PartialEq, Eq)]
pub struct LlmConfig {
    /// The API's base URL, up to `/v1` (`http://127.0.0.1:11434/v1`);
    /// `/chat/completions` is added unless it ends with it already.
    pub url: url::Url,
    /// The model asked (`gpt-4o-mini`, `llama3.2`, ...).
    pub model: String,
    /// Sent as `Authorization: Bearer`; a secret, never logged.
    pub api_key: Option<String>,
}

impl std::fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmConfig")
            .field("url", &self.url.as_str())
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Why an `--llm-*` setting cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LlmConfigError {
    /// `--llm-url` does not parse, or is not http(s).
    #[error(
        "bad --llm-url {url:?}: {why} (give the API's base URL, e.g. http://127.0.0.1:11434/v1)"
    )]
    Url {
        /// As given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// `--llm-url` carries a user name or password, which would be logged.
    #[error("--llm-url must not hold credentials (user:password@): give the key with --llm-key-file or SWITCHBOARD_LLM_API_KEY")]
    CredentialsInUrl,
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for the language model")]
    Client(#[source] reqwest::Error),
}

impl LlmConfig {
    /// A configuration for `url` and `model`, with the key if there is one.
    pub fn new(url: &str, model: &str, api_key: Option<String>) -> Result<Self, LlmConfigError> {
        let err = |why: String| LlmConfigError::Url {
            url: url.to_owned(),
            why,
        };
        let parsed = url::Url::parse(url.trim()).map_err(|e| err(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(err("not an http:// or https:// URL with a host".into()));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            // A URL is logged and quoted in failure reasons; a key must not be.
            return Err(LlmConfigError::CredentialsInUrl);
        }
        Ok(LlmConfig {
            url: parsed,
            model: model.trim().to_owned(),
            api_key: api_key.filter(|k| !k.trim().is_empty()),
        })
    }

    /// The endpoint asked: `{url}/chat/completions`.
    fn endpoint(&self) -> String {
        let base = self.url.as_str().trim_end_matches('/');
        match base.ends_with("/chat/completions") {
            true => base.to_owned(),
            false => format!("{base}/chat/completions"),
        }
    }
}

/// Asks the configured model; the `llm` action's performer.
#[derive(Clone)]
pub struct LlmClient {
    config: LlmConfig,
    http: reqwest::Client,
}

impl std::fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The request body (the fields every compatible server knows).
#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<ChatMessage<'a>>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<Value>,
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: &'a str,
}

/// The answer, `object: "chat.completion"`; what the action reads of it.
/// Fields some servers leave out (`id`, `created`, `usage`) are optional.
#[derive(Deserialize)]
struct ChatCompletion {
    #[serde(default)]
    object: Option<String>,
    #[serde(default)]
    model: Option<String>,
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: AnswerMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct AnswerMessage {
    #[serde(default)]
    content: Option<String>,
    /// OpenAI's structured outputs: the model declined to answer.
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize, Serialize, Default)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    total_tokens: u64,
}

/// One attempt's failure: retried (after the pause, if the server named one) or final.
enum Attempt {
    Retry(String, Option<Duration>),
    Fail(String),
}

impl LlmClient {
    /// A client for `config`. Redirects are not followed: the key goes to
    /// the host named by `--llm-url` and nowhere else.
    pub fn new(config: LlmConfig) -> Result<Self, LlmConfigError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(LlmConfigError::Client)?;
        Ok(LlmClient { config, http })
    }

    /// Asks `a` and reads the answer: `{text, json (when schema), model, usage}`.
    /// A failure's reason never holds the key, even where a server echoed it.
    pub async fn ask(&self, a: &Llm) -> Result<Value, String> {
        self.ask_once(a).await.map_err(|e| self.redact(&e))
    }

    /// The key, wherever it occurs in `text`, replaced by `[redacted]`.
    fn redact(&self, text: &str) -> String {
        match self.config.api_key.as_deref().map(str::trim) {
            Some(key) if !key.is_empty() => text.replace(key, "[redacted]"),
            _ => text.to_owned(),
        }
    }

    async fn ask_once(&self, a: &Llm) -> Result<Value, String> {
        let endpoint = self.config.endpoint();
        let body = ChatRequest {
            model: &self.config.model,
            messages: a
                .system
                .iter()
                .map(|s| ChatMessage {
                    role: "system",
                    content: s,
                })
                .chain([ChatMessage {
                    role: "user",
                    content: &a.prompt,
                }])
                .collect(),
            stream: false,
            response_format: a.schema.as_ref().map(response_format),
        };
        let started = Instant::now();
        let deadline = started + a.timeout;
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        let answer = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let outcome = tokio::time::timeout(left, self.attempt(&endpoint, &body)).await;
            let (why, pause) = match outcome {
                Err(_) => {
                    return Err(format!(
                        "{endpoint}: no answer from the model within {:?} (the action's `timeout`)",
                        a.timeout
                    ))
                }
                Ok(Ok(answer)) => break answer,
                Ok(Err(Attempt::Fail(why))) => return Err(format!("{endpoint}: {why}")),
                Ok(Err(Attempt::Retry(why, pause))) => (why, pause),
            };
            if attempt >= MAX_ATTEMPTS {
                return Err(format!("{endpoint}: {why}, {attempt} attempts"));
            }
            let pause = pause.unwrap_or(backoff);
            if Instant::now() + pause >= deadline {
                return Err(format!(
                    "{endpoint}: {why}; waiting {pause:?} more would pass the action's `timeout` of {:?}",
                    a.timeout
                ));
            }
            let why = self.redact(&why);
            tracing::info!(model = %self.config.model, attempt, why = %why, pause_ms = pause.as_millis() as u64, "language model busy; asking again");
            tokio::time::sleep(pause).await;
            backoff *= 2;
            attempt += 1;
        };
        let result = read_answer(answer, a, &self.config.model)?;
        tracing::info!(
            model = %self.config.model,
            ms = started.elapsed().as_millis() as u64,
            total_tokens = result["usage"]["total_tokens"].as_u64().unwrap_or(0),
            "language model answered"
        );
        Ok(result)
    }

    /// One POST; the decoded answer, or why not and whether to retry.
    async fn attempt(
        &self,
        endpoint: &str,
        body: &ChatRequest<'_>,
    ) -> Result<ChatCompletion, Attempt> {
        let mut req = self.http.post(endpoint).json(body);
        if let Some(key) = &self.config.api_key {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| {
                    Attempt::Fail("the API key holds characters a header cannot carry".into())
                })?;
            // Kept out of reqwest's and hyper's debug output.
            value.set_sensitive(true);
            req = req.header(reqwest::header::AUTHORIZATION, value);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| Attempt::Fail(Chain(&e.without_url()).to_string()))?;
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        let bytes = read_capped(resp).await.map_err(Attempt::Fail)?;
        // Before any excerpt is cut: a key cut in two would not be found.
        let bytes = self.redact(&String::from_utf8_lossy(&bytes)).into_bytes();
        if !status.is_success() {
            let why = format!(
                "HTTP {}{}",
                status.as_u16(),
                error_message(&bytes)
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            );
            return Err(match status.as_u16() {
                408 | 429 | 500 | 502 | 503 | 504 => Attempt::Retry(why, retry_after),
                _ => Attempt::Fail(why),
            });
        }
        serde_json::from_slice::<ChatCompletion>(&bytes).map_err(|e| {
            Attempt::Fail(format!(
                "the answer is not a chat completion ({e}): {}",
                excerpt(&String::from_utf8_lossy(&bytes))
            ))
        })
    }
}

/// `response_format` for a schema: `json_schema` (OpenAI's structured
/// outputs, also understood by Ollama, vLLM and llama.cpp), not `strict`,
/// which would refuse most schemas people write (every property required,
/// `additionalProperties: false`); the answer is validated here anyway.
fn response_format(schema: &Value) -> Value {
    match schema {
        Value::Object(_) => json!({
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema},
        }),
        _ => json!({"type": "json_object"}),
    }
}

/// The action's result from a decoded answer, checked against the schema.
fn read_answer(answer: ChatCompletion, a: &Llm, asked: &str) -> Result<Value, String> {
    if let Some(object) = answer.object.as_deref().filter(|o| *o != "chat.completion") {
        return Err(format!(
            "the answer is a {object:?}, not a \"chat.completion\" (is --llm-url the API's base URL?)"
        ));
    }
    let choice = answer
        .choices
        .into_iter()
        .next()
        .ok_or("the answer has no choices")?;
    if let Some(refusal) = choice.message.refusal.filter(|r| !r.is_empty()) {
        return Err(format!("the model refused: {}", excerpt(&refusal)));
    }
    let text = choice.message.content.ok_or_else(|| {
        format!(
            "the answer has no content (finish_reason {:?})",
            choice.finish_reason.as_deref().unwrap_or("none")
        )
    })?;
    let mut result = json!({
        "text": text,
        "model": answer.model.unwrap_or_else(|| asked.to_owned()),
        "usage": answer.usage.unwrap_or_default(),
    });
    if let Some(schema) = &a.schema {
        if choice.finish_reason.as_deref() == Some("length") {
            return Err("the answer was cut off at the model's token limit (finish_reason \"length\"), so it is no whole JSON".into());
        }
        let parsed: Value = serde_json::from_str(unfenced(&text)).map_err(|e| {
            format!(
                "the answer is not the JSON `schema` asks for ({e}): {}",
                excerpt(&text)
            )
        })?;
        validate_answer(schema, &parsed)?;
        result["json"] = parsed;
    }
    Ok(result)
}

/// The text inside a Markdown code fence (```json ... ```), which models
/// often put around JSON; the trimmed text itself otherwise.
fn unfenced(text: &str) -> &str {
    let t = text.trim();
    let Some(inner) = t.strip_prefix("```").and_then(|r| r.strip_suffix("```")) else {
        return t;
    };
    // Drop the info string (`json`) on the opening line.
    match inner.split_once('\n') {
        Some((info, body)) if !info.contains('{') && !info.contains('[') => body.trim(),
        _ => inner.trim(),
    }
}

/// `Retry-After`: seconds, or an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let wait = at.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// The `error.message` of an OpenAI-style error body, else its start.
fn error_message(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let parsed: Option<Value> = serde_json::from_str(&text).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v.pointer("/error/message").or_else(|| v.get("error")))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| text.trim().to_owned());
    (!message.is_empty()).then(|| excerpt(&message))
}

/// The start of a long text, for failure reasons.
fn excerpt(text: &str) -> String {
    match text.char_indices().nth(ERROR_EXCERPT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Reads a body up to [`MAX_ANSWER_BYTES`], chunk by chunk.
async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading the answer: {}", Chain(&e.without_url())))?
    {
        if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(format!(
                "the answer is larger than {MAX_ANSWER_BYTES} bytes"
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_around_json_are_taken_off() {
        assert_eq!(unfenced(" {\"a\":1} "), "{\"a\":1}");
        assert_eq!(unfenced("```json\n{\"a\":1}\n```"), "{\"a\":1}");
        assert_eq!(unfenced("```\n[1]\n```"), "[1]");
        assert_eq!(unfenced("```{\"a\":1}```"), "{\"a\":1}");
    }

    #[test]
    fn the_endpoint_is_added_once_and_the_key_is_not_shown() {
        let c =
            LlmConfig::new("http://127.0.0.1:11434/v1/", "m", Some("sk-secret".into())).unwrap();
        assert_eq!(c.endpoint(), "http://127.0.0.1:11434/v1/chat/completions");
        let c = LlmConfig::new("https://x.example/v1/chat/completions", "m", None).unwrap();
        assert_eq!(c.endpoint(), "https://x.example/v1/chat/completions");
        let shown = format!(
            "{:?}",
            LlmConfig::new("http://h/v1", "m", Some("sk-secret".into())).unwrap()
        );
        assert!(
            !shown.contains("sk-secret") && shown.contains("redacted"),
            "{shown}"
        );
        for bad in [
            "ftp://h/v1",
            "not a url",
            "http://",
            "http://u:sk-secret@h/v1",
        ] {
            let e = LlmConfig::new(bad, "m", None).unwrap_err().to_string();
            assert!(
                e.contains("--llm-url") && !e.contains("sk-secret"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn error_bodies_give_their_message() {
        let body = br#"{"error":{"message":"Rate limit reached","type":"requests"}}"#;
        assert_eq!(error_message(body).as_deref(), Some("Rate limit reached"));
        assert_eq!(error_message(b"busy").as_deref(), Some("busy"));
        assert_eq!(error_message(b""), None);
    }
}
