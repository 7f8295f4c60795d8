//! The connection task: connect, serve one WebSocket (routing, heartbeats,
//! joins, replies), classify how it ended, wait, and go again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::{debug, info, warn};

use super::backoff::jittered;
use super::{Counters, SocketConfig, SocketError, SocketEvent, Status, StopReason};
use band_wire::events::{Event, TopicKind};
use band_wire::frame::{control, Frame};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Reply<T> = oneshot::Sender<Result<T, SocketError>>;

/// 401 is often transient on a platform rolling keys; stop after this many in a row.
const MAX_UNAUTHORIZED: u32 = 3;
/// Upgrade error bodies are kept to this many bytes.
const MAX_BODY: usize = 2048;
/// Longest `Retry-After` we honour, so a bad header cannot park us for hours.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// How long shutdown waits for the close frame to be written.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// A request from a [`super::Socket`] handle.
pub(crate) enum Command {
    /// Register and join a topic.
    Join { topic: String, reply: Reply<Value> },
    /// Unregister and leave a topic.
    Leave { topic: String, reply: Reply<()> },
    /// Push an event on a topic and wait for its reply.
    Push {
        topic: String,
        event: String,
        payload: Value,
        reply: Reply<Value>,
    },
    /// Close and end the task.
    Shutdown { done: oneshot::Sender<()> },
}

/// Where a registered topic stands on the current connection.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Not yet joined on this connection (or waiting to connect).
    Idle,
    /// `phx_join` sent; its reply is due by the deadline.
    Joining { deadline: Instant },
    /// Joined.
    Joined,
    /// Waiting for the rejoin backoff to expire.
    AwaitingRejoin { at: Instant },
}

/// A push held until its topic is joined.
struct HeldPush {
    event: String,
    payload: Value,
    deadline: Instant,
    reply: Reply<Value>,
}

/// A registered topic.
struct RegisteredTopic {
    /// Ref of this topic's latest `phx_join` on the current connection.
    join_ref: Option<String>,
    phase: Phase,
    /// Callers of `join` waiting for the outcome of the next join reply.
    waiters: Vec<Reply<Value>>,
    /// The response of the last successful join.
    joined_response: Value,
    /// Consecutive failed joins (refusal, timeout, phx_error).
    failures: u32,
    held_pushes: Vec<HeldPush>,
}

impl RegisteredTopic {
    fn new() -> RegisteredTopic {
        RegisteredTopic {
            join_ref: None,
            phase: Phase::Idle,
            waiters: Vec::new(),
            joined_response: Value::Null,
            failures: 0,
            held_pushes: Vec::new(),
        }
    }

    /// Fails everything waiting on this topic with `err`.
    fn fail_waiting(&mut self, err: &SocketError) {
        for w in self.waiters.drain(..) {
            let _ = w.send(Err(err.clone()));
        }
        for b in self.held_pushes.drain(..) {
            let _ = b.reply.send(Err(err.clone()));
        }
    }
}

/// Who waits for a reply sent by ref.
enum Waiter {
    Push(Reply<Value>),
    Leave(Reply<()>),
}

/// A message sent by ref, awaiting its `phx_reply`.
struct Pending {
    topic: String,
    deadline: Instant,
    waiter: Waiter,
}

impl Pending {
    fn fail(self, err: SocketError) {
        match self.waiter {
            Waiter::Push(tx) => {
                let _ = tx.send(Err(err));
            }
            Waiter::Leave(tx) => {
                let _ = tx.send(Err(err));
            }
        }
    }
}

/// How a connection, or an attempt to make one, ended.
enum ConnectionEnd {
    /// Reconnect, after `delay` if given, else after the reconnect backoff.
    Reconnect {
        reason: String,
        delay: Option<Duration>,
    },
    /// End the task.
    Stop(StopReason),
}

impl ConnectionEnd {
    fn reconnect(reason: impl Into<String>) -> ConnectionEnd {
        ConnectionEnd::Reconnect {
            reason: reason.into(),
            delay: None,
        }
    }
}

/// State that lives only as long as one WebSocket.
struct LiveConnection {
    /// Joins, leaves, heartbeats and close: written before anything else.
    urgent: mpsc::UnboundedSender<Message>,
    /// Pushes.
    normal: mpsc::UnboundedSender<Message>,
    pending: HashMap<String, Pending>,
    heartbeat_ref: Option<String>,
    heartbeat_deadline: Option<Instant>,
    /// The rejoin batch after a reconnect: topics still to settle, and those that rejoined.
    rejoin_batch: Option<(BTreeSet<String>, Vec<String>)>,
}

/// The background task's state.
pub(crate) struct Driver {
    config: SocketConfig,
    cmds: mpsc::UnboundedReceiver<Command>,
    events: mpsc::Sender<SocketEvent>,
    status: watch::Sender<Status>,
    stats: Arc<Counters>,
    topics: BTreeMap<String, RegisteredTopic>,
    next_ref: u64,
    connected_once: bool,
    unauthorized: u32,
    /// A server-suggested delay for the next reconnect (retryable supersede).
    retry_hint: Option<Duration>,
    shutdown_waiters: Vec<oneshot::Sender<()>>,
}

impl Driver {
    /// A driver that has not connected yet.
    pub(crate) fn new(
        config: SocketConfig,
        cmds: mpsc::UnboundedReceiver<Command>,
        events: mpsc::Sender<SocketEvent>,
        status: watch::Sender<Status>,
        stats: Arc<Counters>,
    ) -> Driver {
        Driver {
            config,
            cmds,
            events,
            status,
            stats,
            topics: BTreeMap::new(),
            next_ref: 0,
            connected_once: false,
            unauthorized: 0,
            retry_hint: None,
            shutdown_waiters: Vec::new(),
        }
    }

    /// Runs until a terminal condition; never panics on network input.
    pub(crate) async fn run(mut self) {
        let mut attempt: u32 = 0;
        let reason = loop {
            let end = match self.connect().await {
                Ok(Ok(ws)) => {
                    self.unauthorized = 0;
                    let up = Instant::now();
                    let end = self.serve(ws).await;
                    if up.elapsed() >= self.config.reconnect.reset_after {
                        attempt = 0;
                    }
                    end
                }
                Ok(Err(end)) => end,
                Err(stop) => break stop,
            };
            let (reason, delay) = match end {
                ConnectionEnd::Stop(r) => break r,
                ConnectionEnd::Reconnect { reason, delay } => (reason, delay),
            };
            attempt = attempt.saturating_add(1);
            if self.config.reconnect.exhausted(attempt) {
                warn!(attempt, %reason, "socket: giving up reconnecting");
                break StopReason::GaveUp;
            }
            let delay = delay
                .or(self.retry_hint.take())
                .unwrap_or_else(|| self.config.reconnect.delay(attempt));
            info!(attempt, %reason, ?delay, "socket: reconnecting");
            self.status.send_replace(Status::Reconnecting { attempt });
            if let Some(stop) = self.idle(delay).await {
                break stop;
            }
        };
        self.finish(reason);
    }

    /// Ends the task: fail every waiter, publish the reason, release `shutdown` callers.
    fn finish(&mut self, reason: StopReason) {
        info!(?reason, "socket: stopped");
        for (_, mut t) in std::mem::take(&mut self.topics) {
            t.fail_waiting(&SocketError::Stopped);
        }
        self.cmds.close();
        while let Ok(cmd) = self.cmds.try_recv() {
            if let Command::Shutdown { done } = cmd {
                self.shutdown_waiters.push(done);
            }
        }
        self.status.send_replace(Status::Stopped(reason.clone()));
        self.emit(SocketEvent::Stopped { reason });
        for done in self.shutdown_waiters.drain(..) {
            let _ = done.send(());
        }
    }

    /// Sends an event without ever blocking the connection task.
    fn emit(&self, event: SocketEvent) {
        match self.events.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(ev)) => {
                Counters::bump(&self.stats.events_dropped);
                warn!(?ev, "socket: event channel full, event dropped");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn make_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }

    // ---- offline: connecting and waiting -------------------------------------------------

    /// Waits `delay`, answering commands meanwhile; `Some` on shutdown.
    async fn idle(&mut self, delay: Duration) -> Option<StopReason> {
        let until = Instant::now() + delay;
        loop {
            tokio::select! {
                _ = sleep_until(until) => return None,
                cmd = self.cmds.recv() => {
                    if let Some(stop) = self.offline_command(cmd) {
                        return Some(stop);
                    }
                }
            }
        }
    }

    /// Handles a command while there is no connection.
    fn offline_command(&mut self, cmd: Option<Command>) -> Option<StopReason> {
        match cmd {
            None => return Some(StopReason::Shutdown),
            Some(Command::Shutdown { done }) => {
                self.shutdown_waiters.push(done);
                return Some(StopReason::Shutdown);
            }
            Some(Command::Join { topic, reply }) => {
                let t = self
                    .topics
                    .entry(topic)
                    .or_insert_with(RegisteredTopic::new);
                if t.phase == Phase::Joined {
                    let _ = reply.send(Ok(t.joined_response.clone()));
                } else {
                    t.waiters.push(reply);
                }
            }
            Some(Command::Leave { topic, reply }) => {
                if let Some(mut t) = self.topics.remove(&topic) {
                    t.fail_waiting(&SocketError::Closed(topic));
                }
                let _ = reply.send(Ok(()));
            }
            Some(Command::Push { reply, .. }) => {
                let _ = reply.send(Err(SocketError::Disconnected));
            }
        }
        None
    }

    /// One connect attempt. `Err` = stop now; `Ok(Err)` = the attempt failed.
    async fn connect(&mut self) -> Result<Result<Ws, ConnectionEnd>, StopReason> {
        let request = self.request().map_err(StopReason::BadConfig)?;
        let timeout = self.config.connect_timeout;
        // No Nagle: a join or heartbeat behind an unacknowledged frame would
        // wait for the server's delayed ACK.
        let connect = tokio_tungstenite::connect_async_with_config(request, None, true);
        let attempt = tokio::time::timeout(timeout, connect);
        tokio::pin!(attempt);
        loop {
            tokio::select! {
                res = &mut attempt => {
                    return Ok(match res {
                        Err(_) => Err(ConnectionEnd::reconnect("connect timed out")),
                        Ok(Ok((ws, _))) => Ok(ws),
                        Ok(Err(e)) => Err(self.classify_connect_error(e)?),
                    });
                }
                cmd = self.cmds.recv() => {
                    if let Some(stop) = self.offline_command(cmd) {
                        return Err(stop);
                    }
                }
            }
        }
    }

    /// The upgrade request: URL with `vsn`, `agent_id`, maybe `on_conflict`; `x-api-key` header.
    fn request(&self) -> Result<Request, String> {
        let mut url = url::Url::parse(&self.config.url).map_err(|e| format!("bad url: {e}"))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("vsn", "2.0.0");
            if let Some(agent) = &self.config.agent_id {
                q.append_pair("agent_id", agent);
            }
            if self.config.reject_on_conflict && !self.connected_once {
                q.append_pair("on_conflict", "reject");
            }
        }
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| format!("bad url: {e}"))?;
        let mut key = HeaderValue::from_str(&self.config.api_key)
            .map_err(|_| "api key is not a valid header value".to_string())?;
        key.set_sensitive(true);
        request.headers_mut().insert("x-api-key", key);
        Ok(request)
    }

    /// Classifies a failed upgrade: terminal statuses stop, the rest retry.
    fn classify_connect_error(&mut self, e: WsError) -> Result<ConnectionEnd, StopReason> {
        let WsError::Http(response) = e else {
            return Ok(ConnectionEnd::reconnect(format!("connect failed: {e}")));
        };
        let status = response.status().as_u16();
        let body = body_text(&response);
        warn!(status, %body, "socket: upgrade rejected");
        match status {
            400 | 403 => Err(StopReason::AuthFailed { status, body }),
            409 => Err(StopReason::Conflict { status, body }),
            401 => {
                self.unauthorized += 1;
                if self.unauthorized >= MAX_UNAUTHORIZED {
                    Err(StopReason::AuthFailed { status, body })
                } else {
                    Ok(ConnectionEnd::reconnect(format!(
                        "upgrade rejected with {status}"
                    )))
                }
            }
            429 | 503 => Ok(ConnectionEnd::Reconnect {
                reason: format!("upgrade rejected with {status}"),
                delay: retry_after(&response),
            }),
            _ => Ok(ConnectionEnd::reconnect(format!(
                "upgrade rejected with {status}"
            ))),
        }
    }

    // ---- online: one WebSocket -------------------------------------------------------------

    /// Serves one connection until it ends, then cleans up its state.
    async fn serve(&mut self, ws: Ws) -> ConnectionEnd {
        let reconnect = self.connected_once;
        self.connected_once = true;
        if reconnect {
            Counters::bump(&self.stats.reconnects);
        }
        info!(reconnect, "socket: connected");
        self.status.send_replace(Status::Connected);
        self.emit(SocketEvent::Connected { reconnect });

        let (sink, mut stream) = ws.split();
        let (urgent_tx, urgent_rx) = mpsc::unbounded_channel();
        let (normal_tx, normal_rx) = mpsc::unbounded_channel();
        let mut writer = tokio::spawn(tracing::Instrument::in_current_span(write_loop(
            sink, urgent_rx, normal_rx,
        )));
        let mut conn = LiveConnection {
            urgent: urgent_tx,
            normal: normal_tx,
            pending: HashMap::new(),
            heartbeat_ref: None,
            heartbeat_deadline: None,
            rejoin_batch: None,
        };

        // Rejoin everything registered, before any push can be written.
        let registered: Vec<String> = self.topics.keys().cloned().collect();
        if reconnect {
            conn.rejoin_batch = Some((registered.iter().cloned().collect(), Vec::new()));
        }
        for topic in &registered {
            if let Some(t) = self.topics.get_mut(topic) {
                t.failures = 0;
            }
            self.send_join(&mut conn, topic);
        }
        self.settle_rejoin_batch(&mut conn);

        let every = self.config.heartbeat_interval;
        let mut heartbeat = tokio::time::interval_at(Instant::now() + every, every);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        let end = loop {
            let wake = self.next_deadline(&conn);
            // Unbiased: a busy inbound stream must not starve heartbeats or commands.
            tokio::select! {
                _ = sleep_until(wake.unwrap_or_else(far_future)), if wake.is_some() => {
                    if let Some(o) = self.on_timers(&mut conn) {
                        break o;
                    }
                }
                msg = stream.next() => match msg {
                    None => break ConnectionEnd::reconnect("connection closed"),
                    Some(Err(e)) => break ConnectionEnd::reconnect(format!("read failed: {e}")),
                    Some(Ok(m)) => {
                        if let Some(o) = self.on_message(&mut conn, m) {
                            break o;
                        }
                    }
                },
                _ = heartbeat.tick() => self.send_heartbeat(&mut conn),
                _ = conn.urgent.closed() => break ConnectionEnd::reconnect("write failed"),
                cmd = self.cmds.recv() => {
                    if let Some(o) = self.online_command(&mut conn, cmd) {
                        break o;
                    }
                }
            }
        };

        // Tear down. Only a shutdown says goodbye; anything else drops the socket at once
        // (a half-open peer would never finish a close handshake).
        let LiveConnection {
            urgent,
            normal,
            pending,
            ..
        } = conn;
        if matches!(end, ConnectionEnd::Stop(StopReason::Shutdown)) {
            let _ = urgent.send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "shutdown".into(),
            })));
            drop((urgent, normal));
            if tokio::time::timeout(CLOSE_WAIT, &mut writer).await.is_err() {
                writer.abort();
            }
        } else {
            drop((urgent, normal));
            writer.abort();
        }
        drop(stream);

        for (_, p) in pending {
            p.fail(SocketError::Disconnected);
        }
        for t in self.topics.values_mut() {
            t.fail_waiting(&SocketError::Disconnected);
            t.join_ref = None;
            t.phase = Phase::Idle;
        }
        let reason = match &end {
            ConnectionEnd::Reconnect { reason, .. } => reason.clone(),
            ConnectionEnd::Stop(r) => format!("{r:?}"),
        };
        info!(%reason, "socket: disconnected");
        self.emit(SocketEvent::Disconnected { reason });
        end
    }

    /// The earliest timer due on this connection.
    fn next_deadline(&self, conn: &LiveConnection) -> Option<Instant> {
        let topics = self.topics.values().flat_map(|t| {
            let phase = match t.phase {
                Phase::Joining { deadline } => Some(deadline),
                Phase::AwaitingRejoin { at } => Some(at),
                _ => None,
            };
            phase
                .into_iter()
                .chain(t.held_pushes.iter().map(|b| b.deadline))
        });
        conn.heartbeat_deadline
            .into_iter()
            .chain(conn.pending.values().map(|p| p.deadline))
            .chain(topics)
            .min()
    }

    /// Fires every timer that is due.
    fn on_timers(&mut self, conn: &mut LiveConnection) -> Option<ConnectionEnd> {
        let now = Instant::now();
        if conn.heartbeat_deadline.is_some_and(|d| d <= now) {
            Counters::bump(&self.stats.heartbeat_timeouts);
            warn!("socket: heartbeat reply overdue, reconnecting");
            return Some(ConnectionEnd::reconnect("heartbeat timeout"));
        }
        let overdue: Vec<String> = conn
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(r, _)| r.clone())
            .collect();
        for r in overdue {
            if let Some(p) = conn.pending.remove(&r) {
                p.fail(SocketError::Timeout);
            }
        }
        let registered: Vec<String> = self.topics.keys().cloned().collect();
        for topic in registered {
            let Some(t) = self.topics.get_mut(&topic) else {
                continue;
            };
            let (late, keep): (Vec<HeldPush>, Vec<HeldPush>) =
                t.held_pushes.drain(..).partition(|b| b.deadline <= now);
            t.held_pushes = keep;
            for b in late {
                let _ = b.reply.send(Err(SocketError::Timeout));
            }
            match t.phase {
                Phase::Joining { deadline } if deadline <= now => {
                    warn!(%topic, "socket: join timed out, will retry");
                    self.join_failed(conn, &topic, SocketError::Timeout);
                }
                Phase::AwaitingRejoin { at } if at <= now => self.send_join(conn, &topic),
                _ => {}
            }
        }
        None
    }

    /// Sends a heartbeat unless one is still unanswered.
    fn send_heartbeat(&mut self, conn: &mut LiveConnection) {
        if conn.heartbeat_ref.is_some() {
            return;
        }
        let r = self.make_ref();
        let frame = Frame::new(
            None,
            Some(r.clone()),
            control::PHOENIX_TOPIC,
            control::HEARTBEAT,
            json!({}),
        );
        let _ = conn.urgent.send(Message::text(frame.encode()));
        conn.heartbeat_ref = Some(r);
        conn.heartbeat_deadline = Some(Instant::now() + self.config.heartbeat_timeout);
    }

    /// Sends `phx_join` for a registered topic with a fresh join_ref.
    fn send_join(&mut self, conn: &mut LiveConnection, topic: &str) {
        let r = self.make_ref();
        let deadline = Instant::now() + self.config.join_timeout;
        let Some(t) = self.topics.get_mut(topic) else {
            return;
        };
        t.join_ref = Some(r.clone());
        t.phase = Phase::Joining { deadline };
        let frame = Frame::new(Some(r.clone()), Some(r), topic, control::JOIN, json!({}));
        debug!(topic, "socket: joining");
        let _ = conn.urgent.send(Message::text(frame.encode()));
    }

    /// Sends a push for a joined topic and records who waits for its reply.
    fn send_push(&mut self, conn: &mut LiveConnection, topic: &str, b: HeldPush) {
        let r = self.make_ref();
        let join_ref = self.topics.get(topic).and_then(|t| t.join_ref.clone());
        let frame = Frame::new(join_ref, Some(r.clone()), topic, b.event, b.payload);
        let _ = conn.normal.send(Message::text(frame.encode()));
        conn.pending.insert(
            r,
            Pending {
                topic: topic.to_string(),
                deadline: b.deadline,
                waiter: Waiter::Push(b.reply),
            },
        );
    }

    /// Handles a command while connected; `Some` ends the connection.
    fn online_command(
        &mut self,
        conn: &mut LiveConnection,
        cmd: Option<Command>,
    ) -> Option<ConnectionEnd> {
        let cmd = match cmd {
            None => return Some(ConnectionEnd::Stop(StopReason::Shutdown)),
            Some(c) => c,
        };
        match cmd {
            Command::Shutdown { done } => {
                self.shutdown_waiters.push(done);
                return Some(ConnectionEnd::Stop(StopReason::Shutdown));
            }
            Command::Join { topic, reply } => {
                let t = self
                    .topics
                    .entry(topic.clone())
                    .or_insert_with(RegisteredTopic::new);
                match t.phase {
                    Phase::Joined => {
                        let _ = reply.send(Ok(t.joined_response.clone()));
                    }
                    Phase::Joining { .. } | Phase::AwaitingRejoin { .. } => t.waiters.push(reply),
                    Phase::Idle => {
                        t.waiters.push(reply);
                        self.send_join(conn, &topic);
                    }
                }
            }
            Command::Leave { topic, reply } => {
                let Some(mut t) = self.topics.remove(&topic) else {
                    let _ = reply.send(Ok(()));
                    return None;
                };
                t.fail_waiting(&SocketError::Closed(topic.clone()));
                self.forget_in_rejoin_batch(conn, &topic);
                match t.join_ref {
                    Some(join_ref) => {
                        let r = self.make_ref();
                        let frame = Frame::new(
                            Some(join_ref),
                            Some(r.clone()),
                            topic.as_str(),
                            control::LEAVE,
                            json!({}),
                        );
                        let _ = conn.urgent.send(Message::text(frame.encode()));
                        conn.pending.insert(
                            r,
                            Pending {
                                topic,
                                deadline: Instant::now() + self.config.push_timeout,
                                waiter: Waiter::Leave(reply),
                            },
                        );
                    }
                    None => {
                        let _ = reply.send(Ok(()));
                    }
                }
            }
            Command::Push {
                topic,
                event,
                payload,
                reply,
            } => {
                let deadline = Instant::now() + self.config.push_timeout;
                let b = HeldPush {
                    event,
                    payload,
                    deadline,
                    reply,
                };
                match self.topics.get_mut(&topic) {
                    None => {
                        let _ = b.reply.send(Err(SocketError::NotJoined(topic)));
                    }
                    Some(t) if t.phase == Phase::Joined => self.send_push(conn, &topic, b),
                    Some(t) => t.held_pushes.push(b),
                }
            }
        }
        None
    }

    // ---- inbound ---------------------------------------------------------------------------

    /// Handles one WebSocket message; `Some` ends the connection.
    fn on_message(&mut self, conn: &mut LiveConnection, msg: Message) -> Option<ConnectionEnd> {
        match msg {
            Message::Text(text) => {
                Counters::bump(&self.stats.frames_received);
                match Frame::decode(text.as_str()) {
                    Ok(frame) => self.route(conn, frame),
                    Err(e) => {
                        Counters::bump(&self.stats.malformed_frames);
                        warn!(error = %e, "socket: malformed frame dropped");
                        None
                    }
                }
            }
            Message::Binary(_) => {
                Counters::bump(&self.stats.frames_received);
                Counters::bump(&self.stats.malformed_frames);
                warn!("socket: binary frame dropped (unsupported)");
                None
            }
            Message::Close(frame) => {
                let (code, reason) = frame
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or((1005, String::new()));
                info!(code, %reason, "socket: server closed the connection");
                Some(self.classify_close(code, reason))
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => None,
        }
    }

    /// What a server close code means for reconnecting.
    fn classify_close(&self, code: u16, reason: String) -> ConnectionEnd {
        let why = format!("server closed with {code} {reason}");
        match code {
            1008 => ConnectionEnd::Stop(StopReason::Closed { code, reason }),
            // Restart: come back soon, spread over 1–5× the base.
            1012 => ConnectionEnd::Reconnect {
                reason: why,
                delay: Some(
                    self.config.restart_delay + jittered(self.config.restart_delay * 4, 1.0),
                ),
            },
            // Try again later: a long cooldown, spread over 1–2× the base.
            1013 => ConnectionEnd::Reconnect {
                reason: why,
                delay: Some(
                    self.config.overload_cooldown + jittered(self.config.overload_cooldown, 1.0),
                ),
            },
            _ => ConnectionEnd::reconnect(why),
        }
    }

    /// Routes one decoded frame.
    fn route(&mut self, conn: &mut LiveConnection, frame: Frame) -> Option<ConnectionEnd> {
        if frame.topic == control::PHOENIX_TOPIC {
            if frame.msg_ref.is_some() && frame.msg_ref == conn.heartbeat_ref {
                conn.heartbeat_ref = None;
                conn.heartbeat_deadline = None;
            }
            return None;
        }
        // Replies to pushes and leaves, matched by ref (the topic may be gone after a leave).
        if frame.event == control::REPLY {
            if let Some(r) = &frame.msg_ref {
                if conn.pending.get(r).is_some_and(|p| p.topic == frame.topic) {
                    if let Some(p) = conn.pending.remove(r) {
                        resolve(p, &frame);
                    }
                    return None;
                }
            }
        }
        let Some(t) = self.topics.get(&frame.topic) else {
            debug!(topic = %frame.topic, event = %frame.event, "socket: frame for unregistered topic dropped");
            return None;
        };
        if frame.join_ref.is_some() && frame.join_ref != t.join_ref {
            Counters::bump(&self.stats.stale_frames);
            debug!(topic = %frame.topic, event = %frame.event, "socket: stale join_ref, dropped");
            return None;
        }
        match frame.event.as_str() {
            control::REPLY => {
                let is_join_reply = matches!(t.phase, Phase::Joining { .. })
                    && frame.msg_ref.is_some()
                    && frame.msg_ref == t.join_ref;
                if is_join_reply {
                    self.on_join_reply(conn, &frame);
                } else {
                    debug!(topic = %frame.topic, "socket: unmatched reply dropped");
                }
                None
            }
            control::ERROR => {
                warn!(topic = %frame.topic, payload = %frame.payload, "socket: channel error, rejoining");
                self.join_failed(
                    conn,
                    &frame.topic,
                    SocketError::ChannelError(frame.topic.clone()),
                );
                None
            }
            control::CLOSE => {
                info!(topic = %frame.topic, "socket: channel closed by server");
                if let Some(mut t) = self.topics.remove(&frame.topic) {
                    t.fail_waiting(&SocketError::Closed(frame.topic.clone()));
                }
                fail_topic_pending(conn, &frame.topic, SocketError::Closed(frame.topic.clone()));
                self.forget_in_rejoin_batch(conn, &frame.topic);
                self.emit(SocketEvent::ChannelClosed { topic: frame.topic });
                None
            }
            _ => self.on_event(frame),
        }
    }

    /// A pushed (non-control) event: validate, emit, and act on `supersede`.
    fn on_event(&mut self, frame: Frame) -> Option<ConnectionEnd> {
        let Frame {
            topic,
            event,
            payload,
            ..
        } = frame;
        match Event::decode(&event, payload) {
            Ok(Event::Supersede(s)) if TopicKind::of(&topic) == Some(TopicKind::AgentControl) => {
                warn!(reason = %s.reason, retryable = s.retryable, "socket: superseded");
                let retryable = s.retryable;
                let after = s.retry_after;
                self.emit(SocketEvent::Superseded(s));
                if !retryable {
                    return Some(ConnectionEnd::Stop(StopReason::Superseded));
                }
                // The server closes this socket next; honour its suggested pause.
                self.retry_hint = after.map(Duration::from_secs);
                None
            }
            Ok(ev) => {
                if let Event::Unknown { event, .. } = &ev {
                    debug!(%topic, %event, "socket: unknown event passed through");
                }
                self.emit(SocketEvent::Event { topic, event: ev });
                None
            }
            Err(e) => {
                Counters::bump(&self.stats.invalid_events);
                warn!(%topic, %event, error = %e, "socket: invalid event dropped");
                self.emit(SocketEvent::Invalid {
                    topic,
                    event,
                    error: e.to_string(),
                });
                None
            }
        }
    }

    /// The reply to the topic's current join.
    fn on_join_reply(&mut self, conn: &mut LiveConnection, frame: &Frame) {
        let topic = frame.topic.as_str();
        let status = frame.reply_status().unwrap_or("").to_string();
        let response = frame.reply_response().clone();
        if status != "ok" {
            let reason = response
                .get("reason")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("join status {status:?}"));
            warn!(topic, %reason, "socket: join refused");
            self.emit(SocketEvent::JoinRefused {
                topic: topic.to_string(),
                reason: reason.clone(),
            });
            self.join_failed(
                conn,
                topic,
                SocketError::Refused {
                    topic: topic.to_string(),
                    reason,
                },
            );
            return;
        }
        let Some(t) = self.topics.get_mut(topic) else {
            return;
        };
        debug!(topic, "socket: joined");
        t.phase = Phase::Joined;
        t.failures = 0;
        t.joined_response = response.clone();
        let mut told_someone = false;
        for w in t.waiters.drain(..) {
            told_someone |= w.send(Ok(response.clone())).is_ok();
        }
        let held_pushes: Vec<HeldPush> = t.held_pushes.drain(..).collect();
        for b in held_pushes {
            self.send_push(conn, topic, b);
        }
        let in_batch = conn.rejoin_batch.as_mut().is_some_and(|(waiting, done)| {
            let hit = waiting.remove(topic);
            if hit {
                done.push(topic.to_string());
            }
            hit
        });
        if in_batch {
            self.settle_rejoin_batch(conn);
        } else if !told_someone {
            // A rejoin nobody asked for (after phx_error, a refusal or a timeout).
            self.emit(SocketEvent::Rejoined {
                topics: vec![topic.to_string()],
            });
        }
    }

    /// A join was refused, timed out or the channel crashed: retry later, or give up.
    fn join_failed(&mut self, conn: &mut LiveConnection, topic: &str, err: SocketError) {
        fail_topic_pending(conn, topic, err.clone());
        let Some(t) = self.topics.get_mut(topic) else {
            return;
        };
        t.failures = t.failures.saturating_add(1);
        t.join_ref = None;
        t.fail_waiting(&err);
        let refused = matches!(err, SocketError::Refused { .. });
        if refused && self.config.rejoin.exhausted(t.failures) {
            let failures = t.failures;
            self.topics.remove(topic);
            warn!(topic, failures, "socket: join refused too often, giving up");
            let reason = match err {
                SocketError::Refused { reason, .. } => reason,
                other => other.to_string(),
            };
            self.emit(SocketEvent::JoinGaveUp {
                topic: topic.to_string(),
                reason,
            });
        } else {
            let at = Instant::now() + self.config.rejoin.delay(t.failures);
            t.phase = Phase::AwaitingRejoin { at };
        }
        self.forget_in_rejoin_batch(conn, topic);
    }

    /// Drops a topic from the rejoin batch (it did not rejoin) and settles the batch.
    fn forget_in_rejoin_batch(&mut self, conn: &mut LiveConnection, topic: &str) {
        if let Some((waiting, _)) = conn.rejoin_batch.as_mut() {
            waiting.remove(topic);
        }
        self.settle_rejoin_batch(conn);
    }

    /// Emits `Rejoined` once every topic of the rejoin batch has settled.
    fn settle_rejoin_batch(&mut self, conn: &mut LiveConnection) {
        if conn
            .rejoin_batch
            .as_ref()
            .is_some_and(|(w, _)| w.is_empty())
        {
            if let Some((_, done)) = conn.rejoin_batch.take() {
                info!(topics = done.len(), "socket: rejoined after reconnect");
                self.emit(SocketEvent::Rejoined { topics: done });
            }
        }
    }
}

/// Writes outbound messages; urgent ones (joins, heartbeats, close) go first.
async fn write_loop(
    mut sink: SplitSink<Ws, Message>,
    mut urgent: mpsc::UnboundedReceiver<Message>,
    mut normal: mpsc::UnboundedReceiver<Message>,
) {
    loop {
        let msg = tokio::select! {
            biased;
            m = urgent.recv() => m,
            m = normal.recv() => m,
        };
        let Some(msg) = msg else {
            break;
        };
        let closing = matches!(msg, Message::Close(_));
        if let Err(e) = sink.send(msg).await {
            debug!(error = %e, "socket: write failed");
            break;
        }
        if closing {
            break;
        }
    }
}

/// Answers a push or leave waiter from its reply frame.
fn resolve(p: Pending, frame: &Frame) {
    let status = frame.reply_status().unwrap_or("").to_string();
    let response = frame.reply_response().clone();
    match p.waiter {
        Waiter::Push(tx) => {
            let result = if status == "ok" {
                Ok(response)
            } else {
                Err(SocketError::Reply { status, response })
            };
            let _ = tx.send(result);
        }
        Waiter::Leave(tx) => {
            let _ = tx.send(Ok(()));
        }
    }
}

/// Fails every in-flight push of one topic.
fn fail_topic_pending(conn: &mut LiveConnection, topic: &str, err: SocketError) {
    let refs: Vec<String> = conn
        .pending
        .iter()
        .filter(|(_, p)| p.topic == topic)
        .map(|(r, _)| r.clone())
        .collect();
    for r in refs {
        if let Some(p) = conn.pending.remove(&r) {
            p.fail(err.clone());
        }
    }
}

/// The rejected upgrade's body as text, truncated.
fn body_text(response: &Response<Option<Vec<u8>>>) -> String {
    let bytes = response.body().as_deref().unwrap_or_default();
    let cut = &bytes[..bytes.len().min(MAX_BODY)];
    String::from_utf8_lossy(cut).into_owned()
}

/// `Retry-After` (seconds) from the header, else from the body's `error.retry_after`.
fn retry_after(response: &Response<Option<Vec<u8>>>) -> Option<Duration> {
    let from_header = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok());
    let from_body = || {
        let body: Value = serde_json::from_slice(response.body().as_deref()?).ok()?;
        match body.get("error")?.get("retry_after")? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    };
    from_header
        .or_else(from_body)
        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER))
}

/// A deadline that never comes (for a disabled timer branch).
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}
