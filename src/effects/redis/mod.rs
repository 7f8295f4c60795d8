//! The shared store of a fleet: Redis (or Valkey) holding what must survive
//! a host — state, the action journal, pending conversations — so another
//! process can take an agent over with nothing lost or repeated.
//!
//! Every key of one agent sits under one hash tag, `switchboard:{<agent id>}:…`,
//! so a Redis Cluster keeps them in one slot and one Lua script can touch
//! them together. An agent runs in one process at a time, chosen by its
//! lease ([`lease`]); the process loads the agent's data at start and
//! writes every change through one writer task ([`writer`]), whose batches
//! are one Lua script each that first checks the lease is still this
//! process's (a fenced write): a process that lost its lease cannot change
//! what the new holder reads.

pub mod conversations;
pub mod journal;
pub mod lease;
pub mod registry;
pub mod state;
pub mod throttles;
pub mod webhooks;
pub(crate) mod writer;

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use lease::{Fence, Lease};
pub use writer::Writer;

/// How long connecting (and each command) may take before it counts as an outage.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one command may wait for its answer.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is not a Redis URL.
    #[error("{url} is not a Redis URL (redis://HOST:PORT/DB or rediss://…)")]
    Url {
        /// The URL, its password hidden.
        url: String,
        /// Cause.
        source: redis::RedisError,
    },
    /// The server did not answer.
    #[error("cannot reach the store {url}")]
    Unreachable {
        /// The URL, its password hidden.
        url: String,
        /// Cause.
        source: redis::RedisError,
    },
    /// Connecting took too long.
    #[error("cannot reach the store {url}: no answer within {CONNECT_TIMEOUT:?}")]
    Timeout {
        /// The URL, its password hidden.
        url: String,
    },
    /// A command failed.
    #[error("the store {url} failed while {doing}")]
    Command {
        /// The URL, its password hidden.
        url: String,
        /// What was being done.
        doing: String,
        /// Cause.
        source: redis::RedisError,
    },
    /// The lease of this agent is held by another process (or expired): a
    /// write is refused so the new holder's data stays right.
    #[error("agent {agent}'s lease is no longer held by this process; its writes are refused")]
    LeaseLost {
        /// The agent id.
        agent: String,
    },
    /// The store stayed unreachable until the lease ran out.
    #[error("the store {url} stayed unreachable until agent {agent}'s lease ran out")]
    Outage {
        /// The URL, its password hidden.
        url: String,
        /// The agent id.
        agent: String,
    },
    /// A value kept in the store is not what this version writes.
    #[error("the store {url} holds an unreadable value at {key}: {message}")]
    Corrupt {
        /// The URL, its password hidden.
        url: String,
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// Something this kind of store cannot do.
    #[error("the store {url} cannot be used for {what}: {why}")]
    Unsupported {
        /// The URL, its password hidden.
        url: String,
        /// What was asked.
        what: String,
        /// Why not.
        why: String,
    },
}

/// A connection to the store, shared by every agent of a process: one
/// multiplexed connection that reconnects by itself, or, when the server
/// is a node of a Redis Cluster, a cluster connection routing each command
/// to the node of its key's slot.
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    shown: Arc<str>,
}

/// A single server's connection or a cluster's.
#[derive(Clone)]
pub(crate) enum Conn {
    /// One server (or a proxy in front of several).
    Single(ConnectionManager),
    /// A Redis Cluster.
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.shown)
            .finish()
    }
}

impl RedisStore {
    /// Connects to `url` (`shown` is the URL with its password hidden, for
    /// messages) and checks the server answers.
    pub async fn connect(url: &str, shown: &str) -> Result<RedisStore, StoreError> {
        let shown: Arc<str> = shown.into();
        let client = redis::Client::open(url).map_err(|source| StoreError::Url {
            url: shown.to_string(),
            source,
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = tokio::time::timeout(
            CONNECT_TIMEOUT * 2,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| StoreError::Timeout {
            url: shown.to_string(),
        })?
        .map_err(|source| StoreError::Unreachable {
            url: shown.to_string(),
            source,
        })?;
        let mut store = RedisStore {
            conn: Conn::Single(conn),
            shown,
        };
        let mut conn = store.conn();
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| store.failed("checking it answers (PING)", e))?;
        let info: String = redis::cmd("INFO")
            .arg("cluster")
            .query_async(&mut conn)
            .await
            .map_err(|e| store.failed("asking whether it is a cluster (INFO cluster)", e))?;
        if info.lines().any(|l| l.trim() == "cluster_enabled:1") {
            let cluster = redis::cluster::ClusterClientBuilder::new(vec![url])
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(RESPONSE_TIMEOUT)
                .build()
                .map_err(|source| StoreError::Url {
                    url: store.shown.to_string(),
                    source,
                })?;
            let conn = tokio::time::timeout(CONNECT_TIMEOUT * 2, cluster.get_async_connection())
                .await
                .map_err(|_| StoreError::Timeout {
                    url: store.shown.to_string(),
                })?
                .map_err(|source| StoreError::Unreachable {
                    url: store.shown.to_string(),
                    source,
                })?;
            tracing::info!(store = %store.shown, "the store is a Redis Cluster; commands go to the node of their key's slot");
            store.conn = Conn::Cluster(conn);
        }
        Ok(store)
    }

    /// True when the store is a Redis Cluster (a pipeline must then stay
    /// within one slot).
    pub fn is_cluster(&self) -> bool {
        matches!(self.conn, Conn::Cluster(_))
    }

    /// The URL with its password hidden.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Deletes every key of one agent (`switchboard:{<agent id>}:*`, its
    /// lease too), walking them with SCAN so a large store is never blocked;
    /// returns how many went. For starting an agent afresh (the bench), never
    /// while a process runs it.
    pub async fn delete_agent(&self, keys: &AgentKeys) -> Result<usize, StoreError> {
        if self.is_cluster() {
            // SCAN walks one node's keys, and which node a SCAN reaches is
            // not the agent's slot's: a partial delete would pass for a full one.
            return Err(StoreError::Unsupported {
                url: self.shown.to_string(),
                what: format!("deleting agent {}'s keys", keys.agent()),
                why: "it is a Redis Cluster; point at a single node".into(),
            });
        }
        let pattern = format!("{}*", glob_escape(&keys.key("")));
        let mut conn = self.conn();
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1_000)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.failed(&format!("listing the keys {pattern}"), e))?;
            if !found.is_empty() {
                let n: usize = redis::cmd("DEL")
                    .arg(&found)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| self.failed(&format!("deleting the keys {pattern}"), e))?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    /// A handle on the shared connection.
    pub(crate) fn conn(&self) -> Conn {
        self.conn.clone()
    }

    /// The error of a failed command.
    pub(crate) fn failed(&self, doing: &str, source: redis::RedisError) -> StoreError {
        StoreError::Command {
            url: self.shown.to_string(),
            doing: doing.to_owned(),
            source,
        }
    }

    /// The error of a value this version cannot read.
    pub(crate) fn corrupt(&self, key: &str, message: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            url: self.shown.to_string(),
            key: key.to_owned(),
            message: message.to_string(),
        }
    }
}

/// `text` with the glob characters of Redis patterns escaped, so it matches itself.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The names of one agent's keys: all under the hash tag `{<agent id>}`.
#[derive(Debug, Clone)]
pub struct AgentKeys {
    agent: Arc<str>,
    prefix: Arc<str>,
}

impl AgentKeys {
    /// The keys of agent `agent_id`.
    pub fn new(agent_id: &str) -> AgentKeys {
        AgentKeys {
            agent: agent_id.into(),
            prefix: format!("switchboard:{{{agent_id}}}:").into(),
        }
    }

    /// The agent id.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// The key `name` of this agent.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The lease.
    pub fn lease(&self) -> String {
        self.key("lease")
    }
}

/// One agent's part of the store while this process holds its lease: the
/// keys, the fence every write checks, and the writer.
#[derive(Clone)]
pub struct AgentSpace {
    store: RedisStore,
    keys: AgentKeys,
    fence: Arc<Fence>,
    writer: Writer,
}

impl std::fmt::Debug for AgentSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentSpace")
            .field("store", &self.store.shown)
            .field("agent", &self.keys.agent)
            .finish()
    }
}

impl AgentSpace {
    /// The agent's space, writing under `fence` (its lease).
    pub fn new(store: &RedisStore, fence: Arc<Fence>) -> AgentSpace {
        let keys = fence.keys().clone();
        AgentSpace {
            writer: Writer::spawn(store.clone(), fence.clone()),
            store: store.clone(),
            keys,
            fence,
        }
    }

    /// The store.
    pub fn store(&self) -> &RedisStore {
        &self.store
    }

    /// The agent's key names.
    pub fn keys(&self) -> &AgentKeys {
        &self.keys
    }

    /// The lease every write checks (a script of its own checks its token too).
    pub fn fence(&self) -> &Arc<Fence> {
        &self.fence
    }

    /// The writer every change goes through.
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// Waits until every change queued so far is written (or refused).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.writer.flush().await
    }

    /// Queues the removal of `members` from the index `index` (`SREM` for a
    /// set, `ZREM` for a sorted set): what the store expired by itself.
    pub(crate) fn forget(&self, cmd: &'static str, index: String, members: Vec<String>) {
        if members.is_empty() {
            return;
        }
        let op = members
            .into_iter()
            .fold(writer::Op::new(cmd, index), writer::Op::arg);
        self.writer.queue(vec![op]);
    }
}

/// What a store read at start-up, handed over once to the engine's `load`.
pub(crate) struct Loaded<T>(std::sync::Mutex<Option<T>>);

impl<T: Default> Loaded<T> {
    /// Holds `value` until taken.
    pub(crate) fn new(value: T) -> Loaded<T> {
        Loaded(std::sync::Mutex::new(Some(value)))
    }

    /// The value (empty when taken before).
    pub(crate) fn take(&self) -> T {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agents_key_pattern_matches_only_its_keys() {
        assert_eq!(
            format!("{}*", glob_escape(&AgentKeys::new("a1").key(""))),
            "switchboard:{a1}:*"
        );
        assert_eq!(glob_escape(r"x*y?[z]\"), r"x\*y\?\[z\]\\");
    }
}
