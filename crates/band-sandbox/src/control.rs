//! The `/_sandbox/*` control endpoints (state, reset, faults, STOP / PLAY
//! of an agent (`control`), and the
//! console's users and per-room lifecycle views) and the
//! fault-injection middleware that applies armed faults to `/api/v1/*`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::rest::parse_body;
use super::world::Control;
use super::Sandbox;
use band_wire::events::ControlMode;

/// A rule that answers matching requests with an error.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailRule {
    /// HTTP method to match; any when absent.
    #[serde(default)]
    pub method: Option<String>,
    /// Substring of the request path.
    pub path: String,
    /// Status to answer with.
    pub status: u16,
    /// How many requests to fail.
    #[serde(default = "one")]
    pub count: u64,
    /// `Retry-After` seconds, when given.
    #[serde(default)]
    pub retry_after: Option<u64>,
}

/// A rule that delays matching responses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelayRule {
    /// HTTP method to match; any when absent.
    #[serde(default)]
    pub method: Option<String>,
    /// Substring of the request path.
    pub path: String,
    /// Delay in milliseconds.
    pub ms: u64,
    /// How many requests to delay.
    #[serde(default = "one")]
    pub count: u64,
}

fn one() -> u64 {
    1
}

/// Armed faults and a log of the ones that fired.
#[derive(Debug, Default)]
pub struct Faults {
    fail: Vec<FailRule>,
    delay: Vec<DelayRule>,
    fired: Vec<Value>,
}

/// Body of `POST /_sandbox/faults`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    #[serde(default)]
    drop_sockets: bool,
    #[serde(default)]
    heartbeats: Option<String>,
    #[serde(default)]
    fail: Option<FailRule>,
    #[serde(default)]
    delay: Option<DelayRule>,
    #[serde(default)]
    clear: bool,
}

fn matches(method: &Option<String>, path: &str, req_method: &Method, req_path: &str) -> bool {
    method
        .as_ref()
        .is_none_or(|m| m.eq_ignore_ascii_case(req_method.as_str()))
        && req_path.contains(path)
}

impl Faults {
    /// Forgets every rule and the log.
    pub fn clear(&mut self) {
        *self = Faults::default();
    }

    /// Takes one use of the first matching delay rule.
    fn take_delay(&mut self, method: &Method, path: &str) -> Option<Duration> {
        let i = self
            .delay
            .iter()
            .position(|r| matches(&r.method, &r.path, method, path))?;
        let rule = &mut self.delay[i];
        rule.count -= 1;
        let ms = rule.ms;
        if rule.count == 0 {
            self.delay.remove(i);
        }
        self.fired
            .push(json!({"kind": "delay", "method": method.as_str(), "path": path, "ms": ms}));
        Some(Duration::from_millis(ms))
    }

    /// Takes one use of the first matching fail rule.
    fn take_fail(&mut self, method: &Method, path: &str) -> Option<ApiError> {
        let i = self
            .fail
            .iter()
            .position(|r| matches(&r.method, &r.path, method, path))?;
        let rule = &mut self.fail[i];
        rule.count -= 1;
        let (status, retry_after) = (rule.status, rule.retry_after);
        if rule.count == 0 {
            self.fail.remove(i);
        }
        self.fired.push(
            json!({"kind": "fail", "method": method.as_str(), "path": path, "status": status}),
        );
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let code = match status.as_u16() {
            429 => "rate_limited",
            503 => "service_unavailable",
            500 => "internal_server_error",
            408 => "request_timeout",
            409 => "conflict",
            _ => "injected_fault",
        };
        let mut e = ApiError::new(status, code, "injected by /_sandbox/faults");
        e.retry_after = retry_after;
        Some(e)
    }

    fn json(&self, heartbeats_ignored: bool) -> Value {
        let fail: Vec<Value> = self
            .fail
            .iter()
            .map(|r| json!({"method": r.method, "path": r.path, "status": r.status, "count": r.count, "retry_after": r.retry_after}))
            .collect();
        let delay: Vec<Value> = self
            .delay
            .iter()
            .map(|r| json!({"method": r.method, "path": r.path, "ms": r.ms, "count": r.count}))
            .collect();
        json!({
            "armed": {
                "fail": fail,
                "delay": delay,
                "heartbeats": if heartbeats_ignored { "ignore" } else { "answer" },
            },
            "fired": self.fired,
        })
    }
}

/// Middleware: delays and fails `/api/v1/*` requests as armed.
pub async fn fault_layer(State(sb): State<Arc<Sandbox>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if !path.starts_with("/api/v1/") {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let (delay, fail) = {
        let mut f = sb.faults();
        let delay = f.take_delay(&method, &path);
        let fail = f.take_fail(&method, &path);
        (delay, fail)
    };
    if let Some(d) = delay {
        tracing::info!(%method, %path, ms = d.as_millis() as u64, "sandbox fault: delaying request");
        tokio::time::sleep(d).await;
    }
    match fail {
        Some(e) => {
            tracing::info!(%method, %path, status = e.status.as_u16(), "sandbox fault: failing request");
            e.into_response()
        }
        None => next.run(req).await,
    }
}

/// Body of `POST /_sandbox/control`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlRequest {
    agent: String,
    mode: String,
    #[serde(default)]
    room: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    /// False applies the change without pushing it (a lost push).
    #[serde(default = "yes")]
    push: bool,
}

fn yes() -> bool {
    true
}

/// `POST /_sandbox/control`: a person stops, resumes or interrupts an agent,
/// in one room or all of them (see [`crate::world::Control`]).
async fn post_control(State(sb): State<Arc<Sandbox>>, body: Bytes) -> Response {
    let req: ControlRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let mode = match req.mode.as_str() {
        "stop" => ControlMode::Stop,
        "play" => ControlMode::Play,
        "interrupt" => ControlMode::Interrupt,
        _ => return ApiError::invalid("/mode", "must be stop, play or interrupt").into_response(),
    };
    let control = Control {
        agent: req.agent,
        mode,
        room: req.room,
        reason: req.reason,
        push: req.push,
    };
    match sb.change(|w| w.control(control)) {
        Ok(v) => {
            tracing::info!(
                mode = mode.as_str(),
                pushed = req.push,
                "sandbox control applied"
            );
            (StatusCode::OK, Json(v)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// The `/_sandbox/*` routes.
pub fn routes() -> Router<Arc<Sandbox>> {
    Router::new()
        .route("/_sandbox/state", get(state))
        .route("/_sandbox/reset", axum::routing::post(reset))
        .route("/_sandbox/faults", get(get_faults).post(post_faults))
        .route("/_sandbox/control", axum::routing::post(post_control))
        .route("/_sandbox/users", get(users))
        .route("/_sandbox/rooms/{id}/messages", get(room_messages))
}

/// The seeded people with their API keys: the console picks one and acts as
/// them through the human API. Sandbox fixtures on loopback, never real keys.
async fn users(State(sb): State<Arc<Sandbox>>) -> Json<Value> {
    Json(json!(sb.world().users_state()))
}

/// One room's messages with each agent's `delivery` (status, attempts and
/// their errors), oldest first: what the console polls to show lifecycles.
async fn room_messages(State(sb): State<Arc<Sandbox>>, Path(id): Path<String>) -> Response {
    match sb.world().room_messages_state(&id) {
        Some(rows) => Json(json!(rows)).into_response(),
        None => ApiError::not_found("no such room").into_response(),
    }
}

async fn state(State(sb): State<Arc<Sandbox>>) -> Json<Value> {
    let mut v = sb.world().state();
    let conns: Vec<Value> = sb
        .hub()
        .connections()
        .into_iter()
        .map(|(p, topics)| json!({"id": p.id, "type": p.kind.as_str(), "topics": topics}))
        .collect();
    v["connections"] = json!(conns);
    Json(v)
}

async fn reset(State(sb): State<Arc<Sandbox>>) -> Json<Value> {
    sb.reset();
    Json(json!({"status": "reset"}))
}

async fn get_faults(State(sb): State<Arc<Sandbox>>) -> Json<Value> {
    let ignored = sb.hub().heartbeats_ignored();
    Json(sb.faults().json(ignored))
}

async fn post_faults(State(sb): State<Arc<Sandbox>>, body: Bytes) -> Response {
    let req: FaultRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if let Some(f) = &req.fail {
        if StatusCode::from_u16(f.status).is_err() || f.status < 400 || f.count == 0 {
            return ApiError::invalid("/fail", "status must be 4xx/5xx and count at least 1")
                .into_response();
        }
    }
    if req.delay.as_ref().is_some_and(|d| d.count == 0) {
        return ApiError::invalid("/delay/count", "must be at least 1").into_response();
    }
    let heartbeats = match req.heartbeats.as_deref() {
        None => None,
        Some("ignore") => Some(true),
        Some("answer") => Some(false),
        Some(_) => {
            return ApiError::invalid("/heartbeats", "must be ignore or answer").into_response()
        }
    };
    if req.clear {
        sb.faults().clear();
        sb.hub().set_heartbeats_ignored(false);
    }
    if let Some(h) = heartbeats {
        sb.hub().set_heartbeats_ignored(h);
    }
    {
        let mut f = sb.faults();
        if let Some(r) = req.fail {
            f.fail.push(r);
        }
        if let Some(r) = req.delay {
            f.delay.push(r);
        }
    }
    if req.drop_sockets {
        sb.hub().drop_all();
    }
    let ignored = sb.hub().heartbeats_ignored();
    let v = sb.faults().json(ignored);
    (StatusCode::OK, Json(v)).into_response()
}
