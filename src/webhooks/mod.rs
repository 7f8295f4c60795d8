//! Incoming webhooks: `switchboard run --webhook-addr` serves
//! `POST /hooks/NAME` for every hook under `webhooks:` in the current
//! ruleset. A delivery is authenticated (HMAC-SHA256 of the raw body,
//! GitHub-style, or a bearer token; both compared in constant time), turned
//! into the event the rules see, and answered `202` once it is durably
//! queued ([`crate::effects::webhook_queue`]). One task takes the queue in
//! order and runs each delivery's `on: webhook` rules outside any message
//! lifecycle, its actions journaled like a message's, then marks it done,
//! so a restart handles each delivery once and repeats none of its actions.
//! Refusals carry the platform's JSON error body.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

use crate::effects::webhook_queue::{Pushed, QueueError, WebhookQueue};
use crate::rules::RulesHandler;
use crate::runtime::Handler as _;
use switchboard_engine::{Engine, Finish};
use switchboard_workflow::rule::{Webhook, WebhookAuth};
use switchboard_workflow::secrets::Redaction;
use switchboard_workflow::{LoadError, Ruleset};

/// The largest body accepted (bytes); larger ones are answered 413.
pub const MAX_BODY: usize = 1024 * 1024;

/// How much of an oversized body is read (and dropped) before answering
/// 413, so a client still sending gets the answer rather than a reset.
const DRAIN_LIMIT: usize = 16 * MAX_BODY;

/// The headers that carry a delivery's own id, in order of preference.
const DELIVERY_ID_HEADERS: [&str; 2] = ["x-github-delivery", "x-request-id"];

/// Seconds a sender is told to wait when the queue is full.
const RETRY_AFTER_SECS: u64 = 5;

/// Reads every hook's secret, so a missing variable or file is found when
/// the workflows load (at start, which it stops, and at each reload, which
/// it fails, keeping the running rules) rather than by refusing every
/// delivery later; one load error at the hook's name for each that cannot
/// be read. Each value read is hidden from everything the agent writes.
pub fn read_secrets(ruleset: &Ruleset, redaction: &Redaction) -> Vec<LoadError> {
    let mut errors = Vec::new();
    for hook in ruleset.webhooks().values() {
        match hook.secret.read() {
            Ok(value) => hide(redaction, &hook.name, &value),
            Err(e) => errors.push(LoadError {
                file: hook.file.clone(),
                loc: hook.loc,
                message: format!(
                    "the secret of webhook `{}` ({}) cannot be read: {e}",
                    hook.name, hook.secret
                ),
                hint: None,
                source_line: None,
            }),
        }
    }
    errors
}

/// Hides a hook's secret `value` unless it is hidden already (a reload
/// reads it again; hidden values are kept across reloads).
fn hide(redaction: &Redaction, hook: &str, value: &str) {
    if redaction.current().find(value).is_none() {
        redaction.also_hide(&hidden_name(hook), value);
    }
}

/// How a hook's secret is shown where it would be written.
fn hidden_name(hook: &str) -> String {
    format!("webhook:{hook}")
}

/// Binds the webhook address; done before the agent connects, so a taken
/// port is a start-up error.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Told how each delivery was answered (telemetry counts them); implemented
/// above this layer, so the server knows nothing of metrics.
pub trait Observer: Send + Sync {
    /// A delivery to `hook` ([`UNKNOWN_HOOK`] for a name no hook has) was
    /// answered `status`: `accepted`, `duplicate`, or the refusal's error
    /// code (`unauthorized`, `payload_too_large`, `queue_full`, `unavailable`, ...).
    fn delivery(&self, hook: &str, status: &'static str);
}

/// The hook a delivery to an undefined name is counted under: senders
/// choose the names, so each must not get a series of its own.
pub const UNKNOWN_HOOK: &str = "-";

/// What the endpoint reads: the hooks of the engine's current ruleset (so a
/// reload adds and removes hooks), the queue, and who is told the answers.
struct App {
    engine: Arc<Engine>,
    queue: Arc<WebhookQueue>,
    observer: Option<Arc<dyn Observer>>,
}

impl App {
    /// Tells the observer, if any, how a delivery to `hook` was answered.
    fn answered(&self, hook: &str, status: &'static str) {
        if let Some(observer) = &self.observer {
            observer.delivery(hook, status);
        }
    }
}

/// `POST /hooks/{name}`; anything else gets the platform's JSON error too.
/// Each answer to a `POST /hooks/NAME` is told to `observer`.
pub fn router(
    engine: Arc<Engine>,
    queue: Arc<WebhookQueue>,
    observer: Option<Arc<dyn Observer>>,
) -> Router {
    Router::new()
        .route("/hooks/{name}", post(deliver))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "not_found",
                "webhooks are served at POST /hooks/NAME",
            )
        })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "webhooks take POST",
            )
        })
        .with_state(Arc::new(App {
            engine,
            queue,
            observer,
        }))
}

/// Serves [`router`] on `listener` until the task is dropped or aborted.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    queue: Arc<WebhookQueue>,
    observer: Option<Arc<dyn Observer>>,
) -> std::io::Result<()> {
    axum::serve(listener, router(engine, queue, observer)).await
}

/// Runs the queued deliveries, oldest first, one at a time, until `stop`
/// turns true; the delivery in hand then finishes first (like the runtime's
/// event in hand), so a clean stop never repeats one.
pub async fn consume(
    queue: Arc<WebhookQueue>,
    handler: Arc<RulesHandler>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let entry = tokio::select! {
            entry = queue.next() => entry,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        let key = crate::rules::handler::webhook_key(&entry.key);
        // Our own field, written at receipt; unreadable only in a hand-edited queue.
        let received = entry.event["received_at"]
            .as_str()
            .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
            .map(|at| at.with_timezone(&Utc));
        let report = handler
            .run_webhook(&key, received, entry.event.clone())
            .await;
        match &report.outcome {
            Finish::Done => {}
            // The handler logged the reason; a delivery is not retried: its
            // sender got its 202, and a failing rule would fail again.
            Finish::Failed { .. } | Finish::Stopped { .. } => {
                tracing::warn!(delivery = %entry.key, "webhook delivery not fully handled; not retried")
            }
        }
        match queue.done(&entry.key).await {
            // Done for good: its journal records are no longer needed.
            Ok(()) => handler.settled(&key),
            Err(e) => {
                // Not settled: run again after a restart, its journal
                // keeps the actions that went out from repeating.
                tracing::error!(delivery = %entry.key, error = %crate::error_chain::Chain(&e), "cannot mark the webhook delivery done; it runs again after a restart, repeating none of its journaled actions");
                // A disk that refuses writes: do not spin through the queue.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// A refusal in the platform's error shape.
fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({"error": {
        "code": code,
        "message": message.into(),
        "request_id": uuid::Uuid::new_v4().to_string(),
    }});
    (status, Json(body)).into_response()
}

/// `POST /hooks/{name}`: [`accept`], its answer told to the observer.
async fn deliver(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (hook, status, response) = accept(&app, name, query, headers, body).await;
    app.answered(hook.as_deref().unwrap_or(UNKNOWN_HOOK), status);
    response
}

/// What became of one delivery: the hook (`None` when no hook has the
/// name), how it was answered (as [`Observer::delivery`] says) and the answer.
type Answer = (Option<String>, &'static str, Response);

/// Authenticates and queues one delivery to `name`.
async fn accept(
    app: &App,
    name: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let ruleset = app.engine.ruleset();
    let Some(hook) = ruleset.webhooks().get(&name) else {
        let message = format!("no webhook named {name:?}");
        return (
            None,
            "not_found",
            error(StatusCode::NOT_FOUND, "not_found", message),
        );
    };
    // Every answer from here on is for this hook.
    let answer = |code: &'static str, response: Response| (Some(name.clone()), code, response);
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is over {MAX_BODY} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_LIMIT as u64) {
        return answer("payload_too_large", too_large());
    }
    let Some(bytes) = read_body(body).await else {
        return answer("payload_too_large", too_large());
    };
    // A file secret is read from disk: off the async workers.
    let source = hook.secret.clone();
    let read = tokio::task::spawn_blocking(move || source.read()).await;
    let secret = match read {
        Ok(Ok(secret)) => {
            // A file rotated since the load: hidden from its first delivery on.
            hide(app.engine.redaction(), &hook.name, &secret);
            secret
        }
        Err(e) => {
            tracing::error!(hook = %hook.name, error = %e, "reading the webhook's secret did not finish");
            return answer(
                "internal_error",
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "the hook's secret cannot be read",
                ),
            );
        }
        Ok(Err(e)) => {
            tracing::error!(hook = %hook.name, secret = %hook.secret, error = %crate::error_chain::Chain(&e), "cannot read the webhook's secret; deliveries are refused");
            return answer(
                "internal_error",
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "the hook's secret cannot be read",
                ),
            );
        }
    };
    if let Err(why) = authenticate(hook, &secret, &headers, &bytes) {
        tracing::info!(hook = %hook.name, why, "webhook delivery refused");
        return answer(
            "unauthorized",
            error(StatusCode::UNAUTHORIZED, "unauthorized", why),
        );
    }
    let now = Utc::now();
    let id = DELIVERY_ID_HEADERS
        .iter()
        .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let event = event(hook, &id, now, &headers, query.as_deref(), &bytes);
    let key = format!("{}/{id}", hook.name);
    match app.queue.push(key, event, now).await {
        Ok(pushed) => {
            let duplicate = pushed == Pushed::Duplicate;
            tracing::info!(hook = %hook.name, delivery = %id, duplicate, "webhook delivery accepted");
            let body = json!({"data": {"id": id, "duplicate": duplicate}});
            let status = if duplicate { "duplicate" } else { "accepted" };
            answer(status, (StatusCode::ACCEPTED, Json(body)).into_response())
        }
        Err(QueueError::Full { max }) => {
            tracing::warn!(hook = %hook.name, delivery = %id, max, "webhook queue full; delivery refused with 429");
            let mut resp = error(
                StatusCode::TOO_MANY_REQUESTS,
                "queue_full",
                format!("{max} deliveries are waiting; retry later"),
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            answer("queue_full", resp)
        }
        Err(e) if e.lease_lost() => {
            tracing::warn!(hook = %hook.name, delivery = %id, error = %crate::error_chain::Chain(&e), "webhook delivery refused with 503: this process no longer runs the agent");
            let mut resp = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "this process no longer runs the agent; retry later",
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            answer("unavailable", resp)
        }
        Err(e) => {
            tracing::error!(hook = %hook.name, delivery = %id, error = %crate::error_chain::Chain(&e), "cannot queue the webhook delivery");
            answer(
                "internal_error",
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "the delivery could not be queued",
                ),
            )
        }
    }
}

/// The body, or `None` when it is over [`MAX_BODY`] (then read on, up to
/// [`DRAIN_LIMIT`], and dropped) or broken off.
async fn read_body(body: Body) -> Option<Vec<u8>> {
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.ok()?;
        seen = seen.saturating_add(chunk.len());
        if seen > DRAIN_LIMIT {
            return None;
        }
        if seen <= MAX_BODY {
            bytes.extend_from_slice(&chunk);
        }
    }
    (seen <= MAX_BODY).then_some(bytes)
}

/// Checks the delivery's proof of the secret; why not, when it fails.
fn authenticate(
    hook: &Webhook,
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), &'static str> {
    match hook.auth {
        WebhookAuth::HmacSha256 => {
            let value = headers
                .get(hook.signature_header.as_str())
                .ok_or("no signature header")?;
            let hex_sig = value
                .to_str()
                .ok()
                .and_then(|v| v.trim().strip_prefix("sha256="))
                .ok_or("the signature is not `sha256=<hex>`")?;
            let sig = hex::decode(hex_sig).map_err(|_| "the signature is not `sha256=<hex>`")?;
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
                .map_err(|_| "the hook's secret cannot key an HMAC")?;
            mac.update(body);
            // `verify_slice` compares in constant time.
            mac.verify_slice(&sig).map_err(|_| "wrong signature")
        }
        WebhookAuth::Token => {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or("no `Authorization: Bearer` token")?;
            // Digests of equal length, compared in constant time: neither
            // the token's content nor its length shows in the timing.
            let (a, b) = (Sha256::digest(given.trim()), Sha256::digest(secret));
            match bool::from(a.ct_eq(&b)) {
                true => Ok(()),
                false => Err("wrong token"),
            }
        }
    }
}

/// The header that authenticates deliveries to `hook`, kept out of the event.
fn auth_header(hook: &Webhook) -> &str {
    match hook.auth {
        WebhookAuth::HmacSha256 => &hook.signature_header,
        WebhookAuth::Token => "authorization",
    }
}

/// The event the rules see: `{hook, id, received_at, headers, query, body}`.
fn event(
    hook: &Webhook,
    id: &str,
    now: DateTime<Utc>,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Value {
    let skip = auth_header(hook);
    let mut heads = Map::new();
    for (name, value) in headers {
        // Names come lower-case from the HTTP library.
        if name.as_str() == skip {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match heads.get_mut(name.as_str()) {
            // A repeated header reads as one, its values joined (RFC 9110).
            Some(Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&value);
            }
            _ => {
                heads.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    let query: Map<String, Value> = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    let body = serde_json::from_slice::<Value>(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
    json!({
        "hook": hook.name,
        "id": id,
        "received_at": now.to_rfc3339_opts(SecondsFormat::Millis, true),
        "headers": heads,
        "query": query,
        "body": body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_workflow::load_str;

    fn hook(auth: &str) -> Webhook {
        let text = format!(
            "version: 1\nwebhooks:\n  h:\n    secret: {{ env: X }}\n    auth: {auth}\nrules: []\n"
        );
        let rs = load_str("w.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
        rs.webhooks()["h"].clone()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn github_signatures_are_checked_against_the_raw_body() {
        let h = hook("hmac-sha256");
        // GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let ok = headers(&[("x-hub-signature-256", sig)]);
        assert_eq!(
            authenticate(&h, "It's a Secret to Everybody", &ok, b"Hello, World!"),
            Ok(())
        );
        assert_eq!(
            authenticate(&h, "It's a Secret to Everybody", &ok, b"Hello, World?"),
            Err("wrong signature")
        );
        let bad = headers(&[("x-hub-signature-256", "sha256=zz")]);
        assert!(authenticate(&h, "s", &bad, b"").is_err());
        assert_eq!(
            authenticate(&h, "s", &HeaderMap::new(), b""),
            Err("no signature header")
        );
    }

    #[test]
    fn tokens_must_match_exactly() {
        let h = hook("token");
        let ok = headers(&[("authorization", "Bearer t0ken")]);
        assert_eq!(authenticate(&h, "t0ken", &ok, b""), Ok(()));
        for wrong in ["Bearer t0ke", "Bearer t0kenn", "Basic t0ken", "t0ken"] {
            let hs = headers(&[("authorization", wrong)]);
            assert!(authenticate(&h, "t0ken", &hs, b"").is_err(), "{wrong}");
        }
    }

    #[test]
    fn the_event_has_lower_case_headers_without_the_auth_one_a_query_and_a_parsed_body() {
        let h = hook("hmac-sha256");
        let hs = headers(&[
            ("X-Hub-Signature-256", "sha256=00"),
            ("X-Custom", "a"),
            ("x-custom", "b"),
        ]);
        let now = Utc::now();
        let e = event(&h, "d1", now, &hs, Some("env=prod&x=%20y"), b"{\"a\":1}");
        assert_eq!(e["hook"], "h");
        assert_eq!(e["id"], "d1");
        assert_eq!(e["headers"], json!({"x-custom": "a, b"}));
        assert_eq!(e["query"], json!({"env": "prod", "x": " y"}));
        assert_eq!(e["body"], json!({"a": 1}));
        let text = event(&h, "d1", now, &hs, None, b"plain text");
        assert_eq!(text["body"], "plain text");
        assert_eq!(text["query"], json!({}));
    }
}
