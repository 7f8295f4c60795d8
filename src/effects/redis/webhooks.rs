//! The webhook queue of one agent in the store: a list of the pending
//! delivery keys in arrival order, a hash of their events by key, and one
//! key per delivery id remembered for deduplication (`SET ... EX`, so Redis
//! forgets it by itself after [`crate::effects::webhook_queue::DEDUPE_FOR`]).
//!
//! A delivery is queued by one Lua script that checks the agent's lease,
//! the delivery id, the bound, and only then remembers the id and queues the
//! event: a process that lost its lease accepts nothing, and the 202 goes
//! out once the entry is in the store. Marking one done goes through the
//! agent's fenced writer like every other change.

use serde_json::Value;

use super::writer::Op;
use super::{AgentSpace, StoreError};

/// Checks the lease, then dedupe, bound and enqueue in one step.
/// KEYS: lease, pending list, entries hash, the delivery's dedupe key.
/// ARGV: token, delivery key, event JSON, bound, seconds to remember the id.
/// Answers `{1, ''}` queued, `{-1, ''}` full, `{0, ''}` a known delivery
/// already handled, `{2, event}` a known delivery still pending.
const PUSH: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED the lease is not held by this process')
end
local pending = redis.call('HGET', KEYS[3], ARGV[2])
if pending then
  return {2, pending}
end
if redis.call('EXISTS', KEYS[4]) == 1 then
  return {0, ''}
end
if redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[4]) then
  return {-1, ''}
end
redis.call('SET', KEYS[4], '1', 'EX', ARGV[5])
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
return {1, ''}
";

/// What became of a delivery offered to the store.
#[derive(Debug, Clone, PartialEq)]
pub enum StorePushed {
    /// Queued (and its id remembered).
    Queued,
    /// Known: already handled (`None`) or still pending with this event.
    Duplicate(Option<Value>),
    /// As many deliveries are pending as the bound allows.
    Full,
}

/// The agent's webhook queue in the store.
pub struct RedisWebhooks {
    space: AgentSpace,
    script: redis::Script,
}

impl std::fmt::Debug for RedisWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisWebhooks")
            .field("space", &self.space)
            .finish()
    }
}

fn pending_key(space: &AgentSpace) -> String {
    space.keys().key("webhooks:pending")
}

fn entries_key(space: &AgentSpace) -> String {
    space.keys().key("webhooks:entries")
}

fn damaged_key(space: &AgentSpace) -> String {
    space.keys().key("webhooks:damaged")
}

fn seen_key(space: &AgentSpace, delivery: &str) -> String {
    space.keys().key(&format!("webhooks:seen:{delivery}"))
}

impl RedisWebhooks {
    /// Reads the agent's pending deliveries, oldest first. An entry whose
    /// event cannot be read is moved to the `webhooks:damaged` hash (and a
    /// warning logged) instead of stopping the agent.
    pub async fn open(
        space: &AgentSpace,
    ) -> Result<(RedisWebhooks, Vec<(String, Value)>), StoreError> {
        let store = space.store();
        let mut conn = store.conn();
        let (pending, entries) = (pending_key(space), entries_key(space));
        let (order, mut events): (Vec<String>, std::collections::HashMap<String, String>) =
            redis::pipe()
                .cmd("LRANGE")
                .arg(&pending)
                .arg(0)
                .arg(-1)
                .cmd("HGETALL")
                .arg(&entries)
                .query_async(&mut conn)
                .await
                .map_err(|e| store.failed("reading the pending webhook deliveries", e))?;
        let mut loaded = Vec::new();
        let mut repairs = Vec::new();
        for key in order {
            let Some(text) = events.remove(&key) else {
                // Listed twice, or its event gone: nothing to run.
                if !loaded.iter().any(|(k, _)| k == &key) {
                    tracing::warn!(delivery = %key, "a pending webhook delivery has no event in the store; dropped");
                    repairs.push(Op::new("LREM", pending.clone()).arg("0").arg(key));
                }
                continue;
            };
            match serde_json::from_str::<Value>(&text) {
                Ok(event) => loaded.push((key, event)),
                Err(e) => {
                    tracing::warn!(delivery = %key, error = %e, key = %damaged_key(space), "a pending webhook delivery cannot be read; kept aside, not run");
                    repairs.extend(set_aside(space, &key, text));
                }
            }
        }
        // Events no list entry names (a queue edited by hand): kept aside.
        for (key, text) in events {
            tracing::warn!(delivery = %key, key = %damaged_key(space), "a webhook event in the store is not in the pending list; kept aside, not run");
            repairs.extend(set_aside(space, &key, text));
        }
        if !repairs.is_empty() {
            space.writer().queue(repairs);
        }
        let queue = RedisWebhooks {
            space: space.clone(),
            script: redis::Script::new(PUSH),
        };
        Ok((queue, loaded))
    }

    /// Offers the delivery `key` with its `event` (JSON text): queued unless
    /// known or `max` are pending; its id remembered for `remember_secs`.
    pub async fn push(
        &self,
        key: &str,
        event: &str,
        max: usize,
        remember_secs: u64,
    ) -> Result<StorePushed, StoreError> {
        let space = &self.space;
        let fence = space.fence();
        let lost = || StoreError::LeaseLost {
            agent: space.keys().agent().to_owned(),
        };
        if fence.is_lost() {
            return Err(lost());
        }
        let store = space.store();
        let mut conn = store.conn();
        let answer: Result<(i64, String), _> = self
            .script
            .key(space.keys().lease())
            .key(pending_key(space))
            .key(entries_key(space))
            .key(seen_key(space, key))
            .arg(fence.token())
            .arg(key)
            .arg(event)
            .arg(max)
            .arg(remember_secs.max(1))
            .invoke_async(&mut conn)
            .await;
        match answer {
            Ok((1, _)) => Ok(StorePushed::Queued),
            Ok((-1, _)) => Ok(StorePushed::Full),
            Ok((0, _)) => Ok(StorePushed::Duplicate(None)),
            Ok((2, text)) => match serde_json::from_str(&text) {
                Ok(event) => Ok(StorePushed::Duplicate(Some(event))),
                Err(e) => Err(store.corrupt(&entries_key(space), e)),
            },
            Ok((other, _)) => Err(store.corrupt(
                &pending_key(space),
                format!("the queueing script answered {other}"),
            )),
            Err(e) if super::writer::is_fenced(&e) => {
                fence.mark_lost();
                Err(lost())
            }
            Err(e) => Err(store.failed("queueing a webhook delivery", e)),
        }
    }

    /// Marks the delivery `key` handled: out of the list and its event
    /// dropped (its id stays remembered); resolves once written.
    pub fn done(
        &self,
        key: &str,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static {
        let space = &self.space;
        self.space.writer().write(vec![
            Op::new("LREM", pending_key(space)).arg("0").arg(key),
            Op::new("HDEL", entries_key(space)).arg(key),
        ])
    }

    /// The store, its password hidden, and the list's key (for messages).
    pub fn shown(&self) -> String {
        format!(
            "{} {}",
            self.space.store().shown(),
            pending_key(&self.space)
        )
    }
}

/// Ops moving the entry `key` (event `text`) to the damaged hash.
fn set_aside(space: &AgentSpace, key: &str, text: String) -> Vec<Op> {
    vec![
        Op::new("HSET", damaged_key(space)).arg(key).arg(text),
        Op::new("HDEL", entries_key(space)).arg(key),
        Op::new("LREM", pending_key(space)).arg("0").arg(key),
    ]
}
