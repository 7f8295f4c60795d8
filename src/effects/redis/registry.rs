//! The processes sharing a fleet: a sorted set of process ids by when each
//! stops counting (by the store's clock, so hosts' clocks do not matter),
//! refreshed by every process at each tick. Each process reads from it how
//! many processes share the agents.

use std::time::Duration;

use redis::Script;

use super::lease::millis;
use super::{RedisStore, StoreError};

/// Adds or refreshes this process, drops the expired, returns the count.
const HEARTBEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZCARD', KEYS[1])
";

/// This process in the fleet's registry.
#[derive(Debug, Clone)]
pub struct Registry {
    store: RedisStore,
    key: String,
    process: String,
}

impl Registry {
    /// The registry of the fleet named `fleet` (a digest of its agents),
    /// as process `process`.
    pub fn new(store: &RedisStore, fleet: &str, process: &str) -> Registry {
        Registry {
            store: store.clone(),
            key: format!("switchboard:{{fleet:{fleet}}}:processes"),
            process: process.to_owned(),
        }
    }

    /// This process's id.
    pub fn process(&self) -> &str {
        &self.process
    }

    /// Says this process is alive for `ttl`; returns how many are.
    pub async fn heartbeat(&self, ttl: Duration) -> Result<usize, StoreError> {
        let mut conn = self.store.conn();
        let count: i64 = Script::new(HEARTBEAT)
            .key(&self.key)
            .arg(&self.process)
            .arg(millis(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.store.failed("counting the fleet's processes", e))?;
        Ok(usize::try_from(count).unwrap_or(1).max(1))
    }

    /// Leaves the registry (a clean stop): the others count without it at once.
    pub async fn leave(&self) -> Result<(), StoreError> {
        let mut conn = self.store.conn();
        let _: i64 = redis::cmd("ZREM")
            .arg(&self.key)
            .arg(&self.process)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.store.failed("leaving the fleet's registry", e))?;
        Ok(())
    }

    /// Which of `keys` (lease keys) exist, in one round trip.
    pub async fn taken(&self, lease_keys: &[String]) -> Result<Vec<bool>, StoreError> {
        if lease_keys.is_empty() {
            return Ok(Vec::new());
        }
        let found: Result<Vec<i64>, _> = match self.store.is_cluster() {
            false => {
                let mut pipe = redis::pipe();
                for key in lease_keys {
                    pipe.cmd("EXISTS").arg(key);
                }
                pipe.query_async(&mut self.store.conn()).await
            }
            // Each agent's lease is in its own slot: one command each.
            true => futures_util::future::join_all(lease_keys.iter().map(|key| {
                let mut conn = self.store.conn();
                async move {
                    redis::cmd("EXISTS")
                        .arg(key)
                        .query_async::<i64>(&mut conn)
                        .await
                }
            }))
            .await
            .into_iter()
            .collect(),
        };
        let found = found.map_err(|e| self.store.failed("looking for free agents", e))?;
        Ok(found.into_iter().map(|n| n > 0).collect())
    }
}
