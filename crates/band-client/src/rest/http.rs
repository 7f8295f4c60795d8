//! The shared HTTP core of the REST clients: URL join, `X-API-Key`, JSON
//! bodies, envelope unwrapping, typed errors and bounded retries.

use std::fmt;
use std::time::Duration;

use rand::Rng;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use band_wire::model::{ErrorBody, PageMeta};

/// Header carrying the API key on every request.
const API_KEY_HEADER: &str = "X-API-Key";

/// Everything that can go wrong with one REST call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server answered with a non-2xx status.
    #[error("{method} {path}: HTTP {status}{}", describe_body(.body))]
    Status {
        /// HTTP status code.
        status: u16,
        /// Request method.
        method: String,
        /// Request path, from the root of the base URL (`/api/v1/...`).
        path: String,
        /// The platform's error body, when it parsed (boxed to keep the error small).
        body: Option<Box<ErrorBody>>,
        /// The raw response body.
        raw: String,
    },
    /// Connect, timeout or I/O failure: no usable response.
    #[error("{method} {path}: transport error")]
    Transport {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// A 2xx response whose body we could not parse.
    #[error("{method} {path}: cannot decode response")]
    Decode {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
        /// The raw response body.
        raw: String,
    },
}

fn describe_body(body: &Option<Box<ErrorBody>>) -> String {
    match body {
        Some(b) => format!(" {}: {}", b.error.code, b.error.message),
        None => String::new(),
    }
}

/// Whether a status is worth retrying: 408, 429 and every 5xx.
fn retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || status >= 500
}

impl ApiError {
    /// The HTTP status, for [`ApiError::Status`].
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The platform's `error.code`, when the error body parsed.
    pub fn code(&self) -> Option<&str> {
        self.error_body().map(|b| b.error.code.as_str())
    }

    /// The platform's error body, when there was one and it parsed.
    pub fn error_body(&self) -> Option<&ErrorBody> {
        match self {
            ApiError::Status { body, .. } => body.as_deref(),
            _ => None,
        }
    }

    /// 404: unknown, or not visible to this caller.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// 409: conflict (e.g. already contacts, request already pending).
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    /// 422 with code `validation_error`.
    pub fn is_validation(&self) -> bool {
        self.status() == Some(422) && self.code() == Some("validation_error")
    }

    /// 422 naming `/processing_attempt`: a terminal mark without a live attempt.
    pub fn is_missing_processing_attempt(&self) -> bool {
        self.status() == Some(422)
            && self
                .error_body()
                .and_then(|b| b.error.details.as_ref())
                .and_then(|d| d.get("/processing_attempt"))
                .is_some()
    }

    /// 403 whose message says the room's execution is stopped.
    pub fn is_execution_stopped(&self) -> bool {
        self.status() == Some(403)
            && self
                .error_body()
                .is_some_and(|b| b.error.message.contains("execution is stopped"))
    }

    /// Whether repeating the same request could succeed (408, 429, 5xx, transport).
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Status { status, .. } => retryable_status(*status),
            ApiError::Transport { .. } => true,
            ApiError::Decode { .. } => false,
        }
    }
}

/// When and how often to repeat a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 = never repeat.
    pub max_retries: u32,
    /// First backoff delay; doubles per retry.
    pub base_delay: Duration,
    /// Cap on the computed backoff delay.
    pub max_delay: Duration,
    /// Cap on a delay the server asks for (`Retry-After`, `retry-after-ms`).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// A policy that never repeats a request (for POSTs that must not be doubled).
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }

    /// Exponential backoff for retry `n` (0-based), capped, with ±20 % jitter.
    fn backoff(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.min(20));
        let raw = self.base_delay.saturating_mul(factor).min(self.max_delay);
        let jitter: f64 = rand::rng().random_range(0.8..1.2);
        raw.mul_f64(jitter).min(self.max_delay)
    }
}

/// How to reach the platform: base URL, key, retry policy, timeout.
#[derive(Clone)]
pub struct RestConfig {
    /// Base URL without the `api/v1` prefix, e.g. `http://127.0.0.1:4000`.
    pub base_url: String,
    /// The API key (agent or user).
    pub api_key: String,
    /// Retry policy for every call.
    pub retry: RetryPolicy,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl RestConfig {
    /// A config with the default retry policy and a 30 s timeout.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>) -> Self {
        RestConfig {
            base_url: base_url.into(),
            api_key: api_key.into(),
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for RestConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("retry", &self.retry)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The HTTP client could not be built (TLS backend initialisation).
#[derive(Debug, thiserror::Error)]
#[error("cannot build HTTP client")]
pub struct BuildError(#[from] reqwest::Error);

/// A successful (2xx) response, JSON-parsed.
#[derive(Debug, Clone)]
pub struct Response {
    /// The 2xx status.
    pub status: u16,
    /// Parsed body; `None` for 204 or an empty body.
    pub body: Option<Value>,
    /// The raw body text.
    pub raw: String,
}

/// One page of a list endpoint: the rows and the paging metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The rows.
    pub items: Vec<T>,
    /// Paging metadata (`metadata`, or `meta`), empty when absent.
    pub meta: PageMeta,
}

/// The retrying JSON-over-HTTP core shared by the agent and human clients.
#[derive(Clone)]
pub struct RestClient {
    http: reqwest::Client,
    base: String,
    api_key: String,
    retry: RetryPolicy,
}

impl fmt::Debug for RestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestClient")
            .field("base", &self.base)
            .field("api_key", &"<redacted>")
            .field("retry", &self.retry)
            .finish()
    }
}

impl RestClient {
    /// Build a client from a config.
    pub fn new(config: RestConfig) -> Result<Self, BuildError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(RestClient {
            http,
            base: config.base_url.trim_end_matches('/').to_string(),
            api_key: config.api_key,
            retry: config.retry,
        })
    }

    /// The same client (sharing its connection pool) with another retry policy.
    pub fn with_retry(&self, retry: RetryPolicy) -> Self {
        RestClient {
            retry,
            ..self.clone()
        }
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `base + '/' + path`, as the official client joins them.
    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// Send one request with retries; 2xx → [`Response`], anything else → error.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Response, ApiError> {
        let mut retry_no = 0u32;
        loop {
            let result = self.send_once(&method, path, query, body).await;
            let (err, server_delay) = match result {
                Ok(resp) => return Ok(resp),
                Err(failure) => failure,
            };
            if !err.is_retryable() || retry_no >= self.retry.max_retries {
                return Err(err);
            }
            let delay = match server_delay {
                Some(d) => d.min(self.retry.max_retry_after),
                None => self.retry.backoff(retry_no),
            };
            retry_no += 1;
            tracing::debug!(
                method = %method,
                path,
                retry = retry_no,
                max_retries = self.retry.max_retries,
                delay_ms = delay.as_millis() as u64,
                error = %chain(&err),
                "retrying REST call"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// One attempt. On failure also returns the delay the server asked for.
    async fn send_once(
        &self,
        method: &Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Response, (ApiError, Option<Duration>)> {
        let mut req = self
            .http
            .request(method.clone(), self.url(path))
            .header(API_KEY_HEADER, &self.api_key)
            .header(reqwest::header::ACCEPT, "application/json");
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let transport = |source| ApiError::Transport {
            method: method.to_string(),
            path: from_root(path),
            source,
        };
        let resp = req.send().await.map_err(|e| (transport(e), None))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let raw = resp.text().await.map_err(|e| (transport(e), None))?;
        if status.is_success() {
            return parse_success(method, path, status, raw).map_err(|e| (e, None));
        }
        let parsed: Option<Box<ErrorBody>> = serde_json::from_str(&raw).ok();
        let delay = server_delay(&headers, parsed.as_deref());
        Err((
            ApiError::Status {
                status: status.as_u16(),
                method: method.to_string(),
                path: from_root(path),
                body: parsed,
                raw,
            },
            delay,
        ))
    }

    /// GET and return the unwrapped `data`.
    pub async fn get_data<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ApiError> {
        let resp = self.send(Method::GET, path, query, None).await?;
        required_data(&Method::GET, path, resp)
    }

    /// GET a list endpoint and return rows plus paging metadata.
    pub async fn get_page<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Page<T>, ApiError> {
        let resp = self.send(Method::GET, path, query, None).await?;
        page(&Method::GET, path, resp)
    }

    /// Send and return the unwrapped `data`, which must be present.
    pub async fn call_data<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, ApiError> {
        let resp = self.send(method.clone(), path, &[], body).await?;
        required_data(&method, path, resp)
    }

    /// Send and return the unwrapped `data`, or `None` for 204 / no body / no `data`.
    pub async fn call_optional<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Option<T>, ApiError> {
        let resp = self.send(method.clone(), path, query, body).await?;
        optional_data(&method, path, resp)
    }
}

/// Parse a 2xx body; 204 or an empty body gives `None`.
fn parse_success(
    method: &Method,
    path: &str,
    status: StatusCode,
    raw: String,
) -> Result<Response, ApiError> {
    let body = if status == StatusCode::NO_CONTENT || raw.trim().is_empty() {
        None
    } else {
        match serde_json::from_str(&raw) {
            Ok(v) => Some(v),
            Err(source) => {
                return Err(ApiError::Decode {
                    method: method.to_string(),
                    path: from_root(path),
                    source,
                    raw,
                })
            }
        }
    };
    Ok(Response {
        status: status.as_u16(),
        body,
        raw,
    })
}

fn decode_error(method: &Method, path: &str, source: serde_json::Error, raw: &str) -> ApiError {
    ApiError::Decode {
        method: method.to_string(),
        path: from_root(path),
        source,
        raw: raw.to_string(),
    }
}

/// The `data` of an envelope, or `None` when the response had none.
pub fn optional_data<T: DeserializeOwned>(
    method: &Method,
    path: &str,
    resp: Response,
) -> Result<Option<T>, ApiError> {
    let Some(mut body) = resp.body else {
        return Ok(None);
    };
    match body.get_mut("data").map(Value::take) {
        None | Some(Value::Null) => Ok(None),
        Some(data) => serde_json::from_value(data)
            .map(Some)
            .map_err(|e| decode_error(method, path, e, &resp.raw)),
    }
}

/// The `data` of an envelope; a missing one is a decode error.
pub fn required_data<T: DeserializeOwned>(
    method: &Method,
    path: &str,
    resp: Response,
) -> Result<T, ApiError> {
    let raw = resp.raw.clone();
    optional_data(method, path, resp)?.ok_or_else(|| {
        decode_error(
            method,
            path,
            serde::de::Error::custom("response has no `data`"),
            &raw,
        )
    })
}

/// Rows (`data`, absent = empty) and metadata (`metadata`, else `meta`).
pub fn page<T: DeserializeOwned>(
    method: &Method,
    path: &str,
    resp: Response,
) -> Result<Page<T>, ApiError> {
    let meta_value = resp
        .body
        .as_ref()
        .and_then(|b| b.get("metadata").or_else(|| b.get("meta")))
        .filter(|m| m.is_object())
        .cloned();
    let items: Vec<T> = optional_data(method, path, resp)?.unwrap_or_default();
    let meta = match meta_value {
        // Metadata is informational: a shape we do not know must not fail the call.
        Some(m) => serde_json::from_value(m).unwrap_or_else(|e| {
            tracing::debug!(path, error = %e, "ignoring unparsable page metadata");
            PageMeta::default()
        }),
        None => PageMeta::default(),
    };
    Ok(Page { items, meta })
}

/// The delay the server asked for: `retry-after-ms`, then `Retry-After`
/// (seconds or HTTP-date), then the error body's `retry_after` seconds.
fn server_delay(headers: &HeaderMap, body: Option<&ErrorBody>) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    if let Some(v) = header("retry-after") {
        if let Some(d) = parse_retry_after(v) {
            return Some(d);
        }
    }
    let secs = body
        .and_then(|b| b.error.retry_after.as_ref())
        .and_then(|v| {
            v.as_f64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        })?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// `Retry-After`: delta-seconds or an HTTP-date (past dates mean 0).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// Percent-encode one path segment (ids are UUIDs, but never trust that).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Push `key=value` onto a query when the value is set.
pub(crate) fn push_if_set<T: ToString>(
    q: &mut Vec<(&'static str, String)>,
    key: &'static str,
    v: Option<T>,
) {
    if let Some(v) = v {
        q.push((key, v.to_string()));
    }
}

/// Insert `key: value` into a JSON object when the value is set (never null).
pub(crate) fn insert_if_set(obj: &mut Map<String, Value>, key: &str, v: Option<impl Into<Value>>) {
    if let Some(v) = v {
        obj.insert(key.to_string(), v.into());
    }
}

/// `err` and every cause under it, `outer: cause: root`: error types print
/// only their own sentence, so a log of the error alone would lose why.
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(e) = cause {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cause = e.source();
    }
    out
}

/// `path` as errors show it: from the root, `/api/v1/agent/me`, whether or
/// not the caller wrote the leading slash.
fn from_root(path: &str) -> String {
    format!("/{}", path.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, message: Option<&str>) -> ApiError {
        ApiError::Status {
            status: code,
            method: "POST".into(),
            path: "agent/chats/r1/messages".into(),
            body: message.map(|m| {
                Box::new(ErrorBody {
                    error: band_wire::model::ErrorDetail {
                        code: "forbidden".into(),
                        message: m.into(),
                        request_id: String::new(),
                        details: None,
                        retry_after: None,
                    },
                })
            }),
            raw: String::new(),
        }
    }

    #[test]
    fn execution_stopped_is_a_403_whose_message_says_so() {
        let stopped = "execution is stopped for this agent in this room";
        assert!(status(403, Some(stopped)).is_execution_stopped());
        // Another 403, the phrase under another status, or no body: not a STOP.
        assert!(!status(403, Some("not a participant")).is_execution_stopped());
        assert!(!status(422, Some(stopped)).is_execution_stopped());
        assert!(!status(403, None).is_execution_stopped());
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        let future = (chrono::Utc::now() + chrono::Duration::seconds(30))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let d = parse_retry_after(&future).unwrap();
        assert!(d > Duration::from_secs(25) && d <= Duration::from_secs(30));
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn backoff_is_capped() {
        let p = RetryPolicy {
            max_retries: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
            max_retry_after: Duration::from_secs(1),
        };
        for n in 0..12 {
            assert!(p.backoff(n) <= Duration::from_millis(500));
        }
        assert!(p.backoff(0) >= Duration::from_millis(80));
    }

    #[test]
    fn segments_are_escaped() {
        assert_eq!(encode_segment("abc-1_2.3~"), "abc-1_2.3~");
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
    }
}
