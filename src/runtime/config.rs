//! What the runtime needs to reach the platform, and its tunables.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use band_client::rest::RestConfig;
use band_client::socket::SocketConfig;
use band_wire::model::AgentMe;

use super::Observer;

/// How to reach the platform and how patient to be.
#[derive(Clone)]
pub struct RuntimeConfig {
    /// REST client settings (base URL, key, retry policy, timeout).
    pub rest: RestConfig,
    /// Socket settings; `agent_id` is filled in from `/agent/me`.
    pub socket: SocketConfig,
    /// When set, startup fails unless `/agent/me` returns this id.
    pub expected_agent_id: Option<String>,
    /// The agent as `/agent/me` already answered its caller (who needed its id
    /// first, e.g. for the state directory): start-up does not ask again.
    pub me: Option<AgentMe>,
    /// Knobs with sane defaults.
    pub tunables: Tunables,
    /// Told about socket and lifecycle changes (metrics), when set.
    pub observer: Option<Arc<dyn Observer>>,
}

impl RuntimeConfig {
    /// A config with default tunables: `rest_url` is the base URL without
    /// `api/v1`, `ws_url` the socket endpoint.
    pub fn new(
        rest_url: impl Into<String>,
        ws_url: impl Into<String>,
        api_key: impl Into<String>,
    ) -> RuntimeConfig {
        let key = api_key.into();
        RuntimeConfig {
            rest: RestConfig::new(rest_url, key.clone()),
            socket: SocketConfig::new(ws_url, key),
            expected_agent_id: None,
            me: None,
            tunables: Tunables::default(),
            observer: None,
        }
    }
}

impl fmt::Debug for RuntimeConfig {
    // Both inner configs redact the key themselves.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeConfig")
            .field("rest", &self.rest)
            .field("socket", &self.socket)
            .field("expected_agent_id", &self.expected_agent_id)
            .field("me", &self.me.as_ref().map(|m| &m.id))
            .field("tunables", &self.tunables)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

/// Runtime knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct Tunables {
    /// First pause between start-up tries (`/agent/me`, the room list) after a
    /// retryable error outlasted the REST client's own retries; doubles up to
    /// [`Tunables::startup_retry_cap`]. Start-up keeps trying until it succeeds,
    /// the runtime is shut down, or the platform gives an answer that cannot
    /// change (a refused key, a wrong URL).
    pub startup_retry_delay: Duration,
    /// Longest pause between start-up tries (16 s, as the SDK caps `/agent/me`).
    pub startup_retry_cap: Duration,
    /// How many handled message ids are remembered (shared by every room).
    pub completed_capacity: usize,
    /// Tries of `POST /processed` after the handler succeeded; the handler is never re-run.
    pub ack_attempts: u32,
    /// Pause between `/processed` tries.
    pub ack_retry_delay: Duration,
    /// Most messages one drain handles before it yields (a guard against a runaway `/next`).
    pub drain_limit: usize,
    /// Events a room (or the contacts queue) may hold before the router waits.
    pub queue_capacity: usize,
    /// On shutdown, how long the messages in hand may take before they are abandoned.
    pub shutdown_grace: Duration,
    /// A message whose handling failed is tried again (the platform counts
    /// attempts) until this many attempts failed; then it is left failed.
    pub max_attempts: u64,
    /// Pause before a room with a failed message is drained again.
    pub retry_delay: Duration,
    /// While a room's execution is stopped, how often it is probed with a
    /// `/next` drain: the only way a PLAY whose push was lost is found.
    pub stopped_probe_interval: Duration,
}

impl Default for Tunables {
    fn default() -> Self {
        Tunables {
            startup_retry_delay: Duration::from_secs(1),
            startup_retry_cap: Duration::from_secs(16),
            completed_capacity: 4096,
            ack_attempts: 3,
            ack_retry_delay: Duration::from_millis(500),
            drain_limit: 10_000,
            queue_capacity: 1024,
            shutdown_grace: Duration::from_secs(30),
            max_attempts: 5,
            retry_delay: Duration::from_secs(5),
            // The official SDK's `stopped_resync_seconds`.
            stopped_probe_interval: Duration::from_secs(60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_api_key() {
        let c = RuntimeConfig::new("http://x", "ws://x", "sk-secret-key");
        let s = format!("{c:?}");
        assert!(!s.contains("sk-secret-key"), "{s}");
    }
}
