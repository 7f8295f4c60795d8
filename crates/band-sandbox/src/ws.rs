//! The sandbox's Phoenix Channels v2 socket endpoint
//! (`GET /api/v1/socket/websocket`): upgrade auth, channel joins and leaves,
//! heartbeats, and delivery of hub pushes stamped with each topic's join_ref.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use super::hub::{ConnCommand, ConnId, Principal, SocketBackend};
use band_wire::events::TopicKind;
use band_wire::frame::{control, Frame};
use band_wire::model::EntityType;

/// Path the socket endpoint is served on.
pub const SOCKET_PATH: &str = "/api/v1/socket/websocket";

/// A socket that sends nothing for this long is closed (Phoenix's default).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// HTTP status for an unknown or missing API key, or an `agent_id` that is
/// not the key's agent. The official SDK reads the status of a refused
/// upgrade only for 400/409/429/503; a 401 or 403 looks like a dropped socket
/// to it and it retries for minutes. 400 makes it stop at once.
pub const AUTH_REJECT_STATUS: StatusCode = StatusCode::BAD_REQUEST;

/// HTTP status for a `vsn` we do not speak (Phoenix answers 403).
pub const VERSION_REJECT_STATUS: StatusCode = StatusCode::FORBIDDEN;

/// Close code used when the sandbox ends a socket on purpose (supersede, idle).
const NORMAL_CLOSE: u16 = 1000;

/// The socket endpoint's routes, for merging into the sandbox's router.
pub fn routes<B: SocketBackend>(backend: Arc<B>) -> Router {
    routes_with_idle_timeout(backend, IDLE_TIMEOUT)
}

/// Like [`routes`], with a custom idle timeout (tests use a short one).
pub fn routes_with_idle_timeout<B: SocketBackend>(backend: Arc<B>, idle: Duration) -> Router {
    Router::new()
        .route(SOCKET_PATH, get(upgrade::<B>))
        .with_state(Endpoint { backend, idle })
}

/// Shared state of the endpoint's handler.
struct Endpoint<B> {
    backend: Arc<B>,
    idle: Duration,
}

// Derive would demand `B: Clone`; only the Arc is cloned.
impl<B> Clone for Endpoint<B> {
    fn clone(&self) -> Self {
        Endpoint {
            backend: self.backend.clone(),
            idle: self.idle,
        }
    }
}

/// The platform's error body: `{"error":{"code","message","request_id"}}`.
fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({
        "error": {
            "code": code,
            "message": message,
            "request_id": uuid::Uuid::new_v4().to_string(),
        }
    });
    (status, Json(body)).into_response()
}

/// Checks the handshake before upgrading: version, key, agent id, conflict policy.
async fn upgrade<B: SocketBackend>(
    State(Endpoint { backend, idle }): State<Endpoint<B>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // Phoenix defaults a missing vsn to 1.0.0, which we do not serve.
    let vsn = params.get("vsn").map(String::as_str).unwrap_or("1.0.0");
    if !vsn.starts_with("2.") {
        tracing::info!(vsn, "socket upgrade refused: unsupported protocol version");
        return error_response(
            VERSION_REJECT_STATUS,
            "unsupported_version",
            "only Phoenix serializer vsn 2.x is supported",
        );
    }

    let header_key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty());
    // Sandbox only (the platform takes the header alone): browsers cannot set
    // headers on a WebSocket, so the console passes the key as `api_key`.
    let key = header_key.or_else(|| {
        params
            .get("api_key")
            .map(String::as_str)
            .filter(|k| !k.is_empty())
    });
    let Some(principal) = key.and_then(|k| backend.authenticate(k)) else {
        tracing::info!(
            key_present = key.is_some(),
            "socket upgrade refused: unknown or missing API key"
        );
        return error_response(
            AUTH_REJECT_STATUS,
            "invalid_api_key",
            "missing or unknown API key",
        );
    };

    if let Some(agent_id) = params.get("agent_id") {
        if principal.kind != EntityType::Agent || &principal.id != agent_id {
            tracing::info!(%agent_id, "socket upgrade refused: agent_id does not match the key");
            return error_response(
                AUTH_REJECT_STATUS,
                "agent_id_mismatch",
                "agent_id does not belong to this API key",
            );
        }
    }

    let reject_conflict = params.get("on_conflict").map(String::as_str) == Some("reject");
    if reject_conflict
        && principal.kind == EntityType::Agent
        && backend.hub().is_connected(&principal.id)
    {
        tracing::info!(agent = %principal.id, "socket upgrade refused: connection conflict");
        return error_response(
            StatusCode::CONFLICT,
            "connection_conflict",
            "another live connection exists for this agent",
        );
    }

    match ws {
        Ok(ws) => ws.on_upgrade(move |socket| serve(backend, principal, socket, idle)),
        Err(rejection) => rejection.into_response(),
    }
}

/// Why a connection's loop ended.
enum End {
    /// The peer closed or the stream failed; nothing more to send.
    Peer,
    /// We close with a close frame (supersede, idle timeout).
    Close(&'static str),
    /// Drop the TCP connection without a close handshake (fault injection).
    Abort,
}

/// One connection's state: who it is and the join_ref of each joined topic.
struct Conn<B: SocketBackend> {
    backend: Arc<B>,
    principal: Principal,
    id: ConnId,
    joins: HashMap<String, String>,
    out: Vec<Frame>,
    idle: Duration,
}

/// Runs one upgraded socket until it ends, then unregisters it.
async fn serve<B: SocketBackend>(
    backend: Arc<B>,
    principal: Principal,
    socket: WebSocket,
    idle: Duration,
) {
    let (id, rx) = backend.hub().register(principal.clone());
    tracing::debug!(conn = id, who = %principal.id, "socket connected");
    let mut conn = Conn {
        backend: backend.clone(),
        principal,
        id,
        joins: HashMap::new(),
        out: Vec::new(),
        idle,
    };
    let end = conn.run(socket, rx).await;
    backend.hub().unregister(id);
    tracing::debug!(conn = id, who = %conn.principal.id, "socket ended ({})", match end {
        End::Peer => "peer",
        End::Close(why) => why,
        End::Abort => "dropped",
    });
}

impl<B: SocketBackend> Conn<B> {
    /// The connection's main loop: client frames, hub commands, idle timer.
    async fn run(
        &mut self,
        socket: WebSocket,
        mut rx: mpsc::UnboundedReceiver<ConnCommand>,
    ) -> End {
        let (mut sink, mut stream) = socket.split();
        let mut deadline = Instant::now() + self.idle;
        let end = loop {
            let end = tokio::select! {
                msg = stream.next() => match msg {
                    Some(Ok(msg)) => {
                        deadline = Instant::now() + self.idle;
                        match msg {
                            Message::Text(text) => {
                                self.handle_text(text.as_str());
                                None
                            }
                            Message::Binary(_) => {
                                tracing::warn!(conn = self.id, "binary frame ignored");
                                None
                            }
                            Message::Close(_) => Some(End::Peer),
                            // Pongs to pings are sent by the WebSocket layer itself.
                            Message::Ping(_) | Message::Pong(_) => None,
                        }
                    }
                    Some(Err(e)) => {
                        tracing::debug!(conn = self.id, error = %e, "socket read failed");
                        Some(End::Peer)
                    }
                    None => Some(End::Peer),
                },
                cmd = rx.recv() => match cmd {
                    Some(ConnCommand::Push { topic, event, payload }) => {
                        self.push(topic, event, payload);
                        None
                    }
                    Some(ConnCommand::Supersede) => {
                        self.supersede();
                        Some(End::Close("superseded"))
                    }
                    Some(ConnCommand::Drop) | None => Some(End::Abort),
                },
                _ = sleep_until(deadline) => Some(End::Close("idle timeout")),
            };
            if !matches!(end, Some(End::Abort)) {
                for frame in self.out.drain(..) {
                    if let Err(e) = sink.send(Message::Text(frame.encode().into())).await {
                        tracing::debug!(conn = self.id, error = %e, "socket write failed");
                        break;
                    }
                }
            }
            if let Some(end) = end {
                break end;
            }
        };
        if let End::Close(reason) = end {
            let frame = CloseFrame {
                code: NORMAL_CLOSE,
                reason: reason.into(),
            };
            let _ = sink.send(Message::Close(Some(frame))).await;
            let _ = sink.close().await;
        }
        // Abort: dropping both halves drops the TCP stream, no close frame.
        end
    }

    /// Queues a frame to send.
    fn send(
        &mut self,
        join_ref: Option<String>,
        msg_ref: Option<String>,
        topic: &str,
        event: &str,
        payload: Value,
    ) {
        self.out
            .push(Frame::new(join_ref, msg_ref, topic, event, payload));
    }

    /// Queues a `phx_reply`.
    fn reply(
        &mut self,
        join_ref: Option<String>,
        msg_ref: Option<String>,
        topic: &str,
        status: &str,
        response: Value,
    ) {
        self.send(
            join_ref,
            msg_ref,
            topic,
            control::REPLY,
            json!({"status": status, "response": response}),
        );
    }

    /// Decodes and dispatches one client text frame; bad input is logged, never fatal.
    fn handle_text(&mut self, text: &str) {
        let frame = match Frame::decode(text) {
            Ok(frame) => frame,
            Err(e) => {
                tracing::warn!(conn = self.id, error = %e, "malformed frame ignored");
                self.reply_to_malformed(text);
                return;
            }
        };
        if frame.topic == control::PHOENIX_TOPIC && frame.event == control::HEARTBEAT {
            if self.backend.hub().heartbeats_ignored() {
                tracing::debug!(conn = self.id, "heartbeat ignored (fault injection)");
            } else {
                self.reply(None, frame.msg_ref, control::PHOENIX_TOPIC, "ok", json!({}));
            }
            return;
        }
        match frame.event.as_str() {
            control::JOIN => self.join(frame),
            control::LEAVE => self.leave(frame),
            _ => self.other(frame),
        }
    }

    /// When a malformed frame still has a readable ref and topic, tell the client.
    fn reply_to_malformed(&mut self, text: &str) {
        let Ok(Value::Array(parts)) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let as_ref = |v: Option<&Value>| match v {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let (Some(msg_ref), Some(Value::String(topic))) = (as_ref(parts.get(1)), parts.get(2))
        else {
            return;
        };
        let topic = topic.clone();
        let join_ref = as_ref(parts.first());
        self.reply(
            join_ref,
            Some(msg_ref),
            &topic,
            "error",
            json!({"reason": "malformed frame"}),
        );
    }

    /// `phx_join`: last join wins; the old join is closed first.
    fn join(&mut self, frame: Frame) {
        let topic = frame.topic;
        // A join always carries join_ref == ref; tolerate a client that only set ref.
        let join_ref = frame.join_ref.or_else(|| frame.msg_ref.clone());
        if let Some(old) = self.joins.remove(&topic) {
            self.send(Some(old), None, &topic, control::CLOSE, json!({}));
            self.backend.hub().left(self.id, &topic);
        }
        match self.backend.can_join(&self.principal, &topic) {
            Ok(response) => {
                self.reply(join_ref.clone(), frame.msg_ref, &topic, "ok", response);
                if let Some(jr) = join_ref {
                    self.joins.insert(topic.clone(), jr);
                    self.backend.hub().joined(self.id, &topic);
                } else {
                    tracing::warn!(conn = self.id, %topic, "join without any ref: not recorded");
                }
            }
            Err(reason) => {
                tracing::info!(conn = self.id, %topic, %reason, "join refused");
                self.reply(
                    join_ref,
                    frame.msg_ref,
                    &topic,
                    "error",
                    json!({"reason": reason}),
                );
            }
        }
    }

    /// `phx_leave`: ok reply, then `phx_close`, both with the topic's join_ref.
    fn leave(&mut self, frame: Frame) {
        let topic = frame.topic;
        match self.joins.get(&topic).cloned() {
            // A leave for an older join raced a server close: Phoenix ignores it.
            Some(current) if frame.join_ref.as_ref().is_some_and(|jr| *jr != current) => {
                tracing::debug!(conn = self.id, %topic, "stale leave ignored");
            }
            Some(current) => {
                self.joins.remove(&topic);
                self.backend.hub().left(self.id, &topic);
                self.reply(
                    Some(current.clone()),
                    frame.msg_ref,
                    &topic,
                    "ok",
                    json!({}),
                );
                self.send(Some(current), None, &topic, control::CLOSE, json!({}));
            }
            None => self.reply(frame.join_ref, frame.msg_ref, &topic, "ok", json!({})),
        }
    }

    /// Any other client event: we serve no client-sent events on channels.
    fn other(&mut self, frame: Frame) {
        match self.joins.get(&frame.topic).cloned() {
            Some(current) if frame.join_ref.as_ref().is_some_and(|jr| *jr != current) => {
                tracing::debug!(conn = self.id, topic = %frame.topic, "message for a stale join dropped");
            }
            Some(current) => {
                tracing::info!(conn = self.id, topic = %frame.topic, event = %frame.event, "unknown client event");
                self.reply(
                    Some(current),
                    frame.msg_ref,
                    &frame.topic,
                    "error",
                    json!({"reason": "unknown event"}),
                );
            }
            None => self.reply(
                frame.join_ref,
                frame.msg_ref,
                &frame.topic,
                "error",
                json!({"reason": "unmatched topic"}),
            ),
        }
    }

    /// A hub push: sent with the topic's current join_ref, dropped if not joined.
    fn push(&mut self, topic: String, event: String, payload: Value) {
        match self.joins.get(&topic).cloned() {
            Some(join_ref) => self.send(Some(join_ref), None, &topic, &event, payload),
            None => {
                tracing::debug!(conn = self.id, %topic, %event, "push for an unjoined topic dropped")
            }
        }
    }

    /// Tells an agent's control channel it was superseded (if it joined it).
    fn supersede(&mut self) {
        let topic = TopicKind::AgentControl.topic(&self.principal.id);
        let payload = json!({
            "reason": "superseded",
            "message": "a newer connection for this agent replaced this one",
            "correlation_id": null,
            "retryable": false,
            "target_socket_id": self.id.to_string(),
        });
        self.push(topic, "supersede".to_string(), payload);
    }
}
