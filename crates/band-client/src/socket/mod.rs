//! Phoenix Channels v2 client for the platform's socket: one background task
//! owns the WebSocket, joins topics, heartbeats, reconnects with jittered
//! backoff and rejoins every registered topic. Callers hold a cheap [`Socket`]
//! handle and read [`SocketEvent`]s from a channel.

mod backoff;
mod connection;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

pub use backoff::Backoff;

use band_wire::events::{Event, Supersede};
use connection::{Command, Driver};

/// How many events may wait unread before new ones are dropped (and counted).
const EVENT_BUFFER: usize = 1024;

/// Everything the client needs to reach the socket and how patient to be.
#[derive(Clone)]
pub struct SocketConfig {
    /// `ws://` or `wss://…/api/v1/socket/websocket`; query parameters are added by the client.
    pub url: String,
    /// Sent as the `x-api-key` upgrade header; never logged, redacted in `Debug`.
    pub api_key: String,
    /// Adds `agent_id=<id>` to the query; `None` for a user socket.
    pub agent_id: Option<String>,
    /// Time between heartbeats.
    pub heartbeat_interval: Duration,
    /// No heartbeat reply within this → tear down and reconnect.
    pub heartbeat_timeout: Duration,
    /// How long a `phx_join` may wait for its reply before it is retried.
    pub join_timeout: Duration,
    /// How long a push (or leave) may wait for its reply.
    pub push_timeout: Duration,
    /// Reconnect schedule after a drop or a failed upgrade.
    pub reconnect: Backoff,
    /// Rejoin schedule after `phx_error`, a refused join or a join timeout.
    pub rejoin: Backoff,
    /// Bound on TCP + TLS + upgrade.
    pub connect_timeout: Duration,
    /// Base delay after the server closes with 1012 (restart); jittered up to 5×.
    pub restart_delay: Duration,
    /// Base cooldown after the server closes with 1013 (try again later); jittered up to 2×.
    pub overload_cooldown: Duration,
    /// Adds `on_conflict=reject` to the connects before the first success only.
    pub reject_on_conflict: bool,
}

impl SocketConfig {
    /// A config with the spec's defaults (30 s heartbeat, 10 s heartbeat timeout, …).
    pub fn new(url: impl Into<String>, api_key: impl Into<String>) -> SocketConfig {
        SocketConfig {
            url: url.into(),
            api_key: api_key.into(),
            agent_id: None,
            heartbeat_interval: Duration::from_secs(30),
            heartbeat_timeout: Duration::from_secs(10),
            join_timeout: Duration::from_secs(10),
            push_timeout: Duration::from_secs(10),
            reconnect: Backoff::reconnect_default(),
            rejoin: Backoff::rejoin_default(),
            connect_timeout: Duration::from_secs(5),
            restart_delay: Duration::from_secs(1),
            overload_cooldown: Duration::from_secs(30),
            reject_on_conflict: false,
        }
    }
}

impl fmt::Debug for SocketConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketConfig")
            .field("url", &self.url)
            .field("api_key", &"<redacted>")
            .field("agent_id", &self.agent_id)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("heartbeat_timeout", &self.heartbeat_timeout)
            .field("join_timeout", &self.join_timeout)
            .field("push_timeout", &self.push_timeout)
            .field("reconnect", &self.reconnect)
            .field("rejoin", &self.rejoin)
            .field("connect_timeout", &self.connect_timeout)
            .field("restart_delay", &self.restart_delay)
            .field("overload_cooldown", &self.overload_cooldown)
            .field("reject_on_conflict", &self.reject_on_conflict)
            .finish()
    }
}

/// Where the connection stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Trying to connect for the first time.
    Connecting,
    /// Upgraded and serving.
    Connected,
    /// Waiting to (re)connect after a failure; `attempt` counts consecutive failures.
    Reconnecting {
        /// Consecutive failed attempts so far.
        attempt: u32,
    },
    /// The task has ended and will not reconnect.
    Stopped(StopReason),
}

/// Why the connection task ended for good.
#[derive(Debug, Clone, PartialEq)]
pub enum StopReason {
    /// The upgrade was refused with 400, 401 (repeatedly) or 403.
    AuthFailed {
        /// HTTP status.
        status: u16,
        /// Response body (the platform's error JSON), possibly truncated.
        body: String,
    },
    /// The upgrade was refused with 409 (another live connection, `on_conflict=reject`).
    Conflict {
        /// HTTP status.
        status: u16,
        /// Response body, possibly truncated.
        body: String,
    },
    /// The server closed with a terminal close code (1008).
    Closed {
        /// WebSocket close code.
        code: u16,
        /// Close reason text.
        reason: String,
    },
    /// A non-retryable `supersede` arrived: another connection took over.
    Superseded,
    /// [`Socket::shutdown`] was called, or every handle was dropped.
    Shutdown,
    /// The reconnect schedule ran out of attempts.
    GaveUp,
    /// The configuration cannot work (e.g. the URL does not parse).
    BadConfig(String),
}

/// What the connection task reports.
// `Event` is big, but it is the common case; boxing it would only make every match noisier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum SocketEvent {
    /// After every successful upgrade; `reconnect` is false only the first time.
    Connected {
        /// Whether an earlier connection existed.
        reconnect: bool,
    },
    /// Topics joined again without a caller waiting: after a reconnect once every
    /// registered topic has settled (listing those that succeeded), or after a single
    /// topic recovered from `phx_error`, a refusal or a timeout. Resync on this.
    Rejoined {
        /// Topics that are joined again.
        topics: Vec<String>,
    },
    /// A typed, validated event pushed on a topic.
    Event {
        /// Topic it arrived on.
        topic: String,
        /// The event.
        event: Event,
    },
    /// A pushed event that failed validation: dropped and counted.
    Invalid {
        /// Topic it arrived on.
        topic: String,
        /// Event name.
        event: String,
        /// What was wrong.
        error: String,
    },
    /// The server refused a join; it will be retried with the rejoin backoff.
    JoinRefused {
        /// Topic.
        topic: String,
        /// The server's `reason` (or the reply status).
        reason: String,
    },
    /// The rejoin backoff ran out for a topic: it is unregistered.
    JoinGaveUp {
        /// Topic.
        topic: String,
        /// The last refusal reason.
        reason: String,
    },
    /// The server closed the channel (`phx_close`): unregistered, not rejoined.
    ChannelClosed {
        /// Topic.
        topic: String,
    },
    /// The connection dropped; a reconnect follows unless `Stopped` comes next.
    Disconnected {
        /// Why.
        reason: String,
    },
    /// `supersede` on `agent_control:*`; `Stopped` follows unless it is retryable.
    Superseded(Supersede),
    /// Terminal: the task has ended.
    Stopped {
        /// Why.
        reason: StopReason,
    },
}

/// Why a join, leave or push did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SocketError {
    /// The socket is not connected, or dropped while waiting.
    #[error("socket disconnected")]
    Disconnected,
    /// No reply in time.
    #[error("timed out waiting for a reply")]
    Timeout,
    /// Push to a topic that is not registered.
    #[error("topic {0} is not joined")]
    NotJoined(String),
    /// The server refused the join.
    #[error("join of {topic} refused: {reason}")]
    Refused {
        /// Topic.
        topic: String,
        /// The server's reason.
        reason: String,
    },
    /// The server answered a push with a non-ok status.
    #[error("push refused with status {status}: {response}")]
    Reply {
        /// Reply status, e.g. `error`.
        status: String,
        /// Reply response object.
        response: Value,
    },
    /// The channel crashed (`phx_error`) while waiting.
    #[error("channel {0} crashed")]
    ChannelError(String),
    /// The channel was closed (`phx_close` or a leave) while waiting.
    #[error("channel {0} closed")]
    Closed(String),
    /// The connection task has ended.
    #[error("socket stopped")]
    Stopped,
}

/// Counters for metrics, as a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SocketStats {
    /// Text frames received.
    pub frames_received: u64,
    /// Frames that were not valid Phoenix v2 JSON (or were binary): dropped.
    pub malformed_frames: u64,
    /// Frames dropped because their `join_ref` was stale.
    pub stale_frames: u64,
    /// Pushed events that failed validation.
    pub invalid_events: u64,
    /// Events dropped because the event channel was full.
    pub events_dropped: u64,
    /// Successful reconnects (upgrades after the first).
    pub reconnects: u64,
    /// Heartbeats that got no reply in time.
    pub heartbeat_timeouts: u64,
}

/// Live counters shared between the task and the handles.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) frames_received: AtomicU64,
    pub(crate) malformed_frames: AtomicU64,
    pub(crate) stale_frames: AtomicU64,
    pub(crate) invalid_events: AtomicU64,
    pub(crate) events_dropped: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) heartbeat_timeouts: AtomicU64,
}

impl Counters {
    /// Adds one to a counter.
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> SocketStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SocketStats {
            frames_received: get(&self.frames_received),
            malformed_frames: get(&self.malformed_frames),
            stale_frames: get(&self.stale_frames),
            invalid_events: get(&self.invalid_events),
            events_dropped: get(&self.events_dropped),
            reconnects: get(&self.reconnects),
            heartbeat_timeouts: get(&self.heartbeat_timeouts),
        }
    }
}

/// Cheap-to-clone handle to one background connection task.
#[derive(Clone)]
pub struct Socket {
    cmds: mpsc::UnboundedSender<Command>,
    status: watch::Receiver<Status>,
    stats: Arc<Counters>,
    join_wait: Duration,
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("status", &*self.status.borrow())
            .finish_non_exhaustive()
    }
}

impl Socket {
    /// Spawns the connection task (on the current tokio runtime) and returns its handle and events.
    pub fn start(config: SocketConfig) -> (Socket, mpsc::Receiver<SocketEvent>) {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (event_tx, event_rx) = mpsc::channel(EVENT_BUFFER);
        let (status_tx, status_rx) = watch::channel(Status::Connecting);
        let stats = Arc::new(Counters::default());
        // A join issued while offline waits for the connect as well as the reply.
        let join_wait = config.connect_timeout + config.join_timeout;
        let driver = Driver::new(config, cmd_rx, event_tx, status_tx, stats.clone());
        // In the caller's span: a fleet's socket lines say which agent's they are.
        tokio::spawn(tracing::Instrument::in_current_span(driver.run()));
        let socket = Socket {
            cmds: cmd_tx,
            status: status_rx,
            stats,
            join_wait,
        };
        (socket, event_rx)
    }

    /// Joins `topic` and waits for the reply (bounded by connect + join timeout).
    /// The topic stays registered, even on refusal or timeout, and is rejoined after
    /// every reconnect until [`Socket::leave`], `phx_close` or the rejoin limit.
    pub async fn join(&self, topic: &str) -> Result<Value, SocketError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Join {
            topic: topic.to_string(),
            reply: tx,
        })?;
        match tokio::time::timeout(self.join_wait, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(SocketError::Stopped),
            Err(_) => Err(SocketError::Timeout),
        }
    }

    /// Leaves `topic` (unregisters it at once, then waits for the server's reply).
    pub async fn leave(&self, topic: &str) -> Result<(), SocketError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Leave {
            topic: topic.to_string(),
            reply: tx,
        })?;
        rx.await.unwrap_or(Err(SocketError::Stopped))
    }

    /// Pushes `event` on a registered topic and waits for the reply's `response`.
    /// Pushes made while the topic is (re)joining are held until the join succeeds.
    pub async fn push(
        &self,
        topic: &str,
        event: &str,
        payload: Value,
    ) -> Result<Value, SocketError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Push {
            topic: topic.to_string(),
            event: event.to_string(),
            payload,
            reply: tx,
        })?;
        rx.await.unwrap_or(Err(SocketError::Stopped))
    }

    /// A watch on the connection status.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SocketStats {
        self.stats.snapshot()
    }

    /// Sends a close frame, waits (bounded) for it to go out, and ends the task.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(Command::Shutdown { done: tx }).is_err() {
            return; // already stopped
        }
        // The task bounds its own close wait; this is a backstop.
        let _ = tokio::time::timeout(Duration::from_secs(5), rx).await;
    }

    fn send(&self, cmd: Command) -> Result<(), SocketError> {
        self.cmds.send(cmd).map_err(|_| SocketError::Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_api_key() {
        let c = SocketConfig::new("ws://x/socket/websocket", "sk-very-secret");
        let s = format!("{c:?}");
        assert!(!s.contains("sk-very-secret"), "{s}");
        assert!(s.contains("<redacted>"));
    }
}
