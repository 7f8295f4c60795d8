//! An agent's lease: the one key saying which process runs it. Taken with
//! `SET NX PX` and a random token, renewed by compare-and-extend, given
//! back by compare-and-delete, so a process never extends or drops a lease
//! it no longer holds.
//!
//! Each process also keeps its own view of how long the lease is surely
//! its own (the [`Fence`]'s deadline): counted from *before* the command
//! that took or renewed it was sent, minus a margin for clocks that run at
//! slightly different rates, so the local view ends before the store's. A
//! process stops an agent when that deadline passes without a renewal.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::Script;
use tokio::sync::watch;

use super::{AgentKeys, RedisStore, StoreError};

/// The default lease: short enough for a takeover within seconds, long
/// enough to ride out a slow renewal.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(5);

/// Extends the lease when it still holds this token.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// Deletes the lease when it still holds this token.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The part of a lease local writes check: its token and until when this
/// process surely holds it.
#[derive(Debug)]
pub struct Fence {
    keys: AgentKeys,
    token: String,
    deadline: Mutex<Instant>,
    lost: watch::Sender<bool>,
}

impl Fence {
    fn new(keys: AgentKeys, token: String, deadline: Instant) -> Fence {
        Fence {
            keys,
            token,
            deadline: Mutex::new(deadline),
            lost: watch::channel(false).0,
        }
    }

    /// The agent's key names.
    pub fn keys(&self) -> &AgentKeys {
        &self.keys
    }

    /// The random token the lease holds while it is this process's.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Until when the lease is surely this process's (if not lost before).
    pub fn deadline(&self) -> Instant {
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True while the lease is surely this process's.
    pub fn holds(&self) -> bool {
        !*self.lost.borrow() && Instant::now() < self.deadline()
    }

    /// True once the lease was found lost (or given back).
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Resolves once the lease is lost or given back.
    pub async fn lost(&self) {
        let mut rx = self.lost.subscribe();
        let _ = rx.wait_for(|lost| *lost).await;
    }

    /// Resolves once the lease is lost, or its local deadline passed
    /// without a renewal (then it is marked lost).
    pub async fn ended(&self) {
        loop {
            if !self.holds() {
                self.mark_lost();
                return;
            }
            let deadline = tokio::time::Instant::from_std(self.deadline());
            tokio::select! {
                _ = self.lost() => return,
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    fn extend(&self, to: Instant) {
        let mut deadline = self.deadline.lock().unwrap_or_else(|p| p.into_inner());
        *deadline = (*deadline).max(to);
    }

    /// Marks the lease lost: writes are refused from now on.
    pub fn mark_lost(&self) {
        self.lost.send_replace(true);
    }
}

/// How much of a lease a process counts as its own: the whole time less a
/// tenth (clock rates may differ that much) and less 100 ms.
fn own_part(ttl: Duration) -> Duration {
    ttl.saturating_sub(ttl / 10 + Duration::from_millis(100))
}

/// A lease this process took.
#[derive(Debug, Clone)]
pub struct Lease {
    store: RedisStore,
    fence: Arc<Fence>,
    ttl: Duration,
}

impl Lease {
    /// Takes the lease of the agent with `keys` when no process holds it.
    pub async fn try_acquire(
        store: &RedisStore,
        keys: &AgentKeys,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let started = Instant::now();
        let mut conn = store.conn();
        let taken: Option<String> = redis::cmd("SET")
            .arg(keys.lease())
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut conn)
            .await
            .map_err(|e| store.failed("taking a lease", e))?;
        Ok(taken.map(|_| Lease {
            store: store.clone(),
            fence: Arc::new(Fence::new(keys.clone(), token, started + own_part(ttl))),
            ttl,
        }))
    }

    /// The fence writes under this lease check.
    pub fn fence(&self) -> &Arc<Fence> {
        &self.fence
    }

    /// Extends every lease in `leases` with one round trip; per lease, true
    /// when it is still this process's. A lease found taken is marked lost;
    /// one that could not be renewed before its deadline is marked lost too.
    pub async fn renew_all(store: &RedisStore, leases: &[Lease]) -> Result<Vec<bool>, StoreError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let script = Script::new(RENEW);
        let invocations: Vec<_> = leases
            .iter()
            .map(|l| {
                let mut inv = script.prepare_invoke();
                inv.key(l.fence.keys.lease())
                    .arg(&l.fence.token)
                    .arg(millis(l.ttl));
                inv
            })
            .collect();
        let started = Instant::now();
        let answer: Result<Vec<i64>, _> = match store.is_cluster() {
            // One round trip for all; a cluster spreads leases over slots
            // (a pipeline must stay in one), so there each goes on its own.
            false => {
                let mut pipe = redis::pipe();
                pipe.load_script(&script).ignore();
                for inv in &invocations {
                    pipe.invoke_script(inv);
                }
                pipe.query_async(&mut store.conn()).await
            }
            true => {
                let each = invocations.iter().map(|inv| {
                    let mut conn = store.conn();
                    async move { inv.invoke_async::<i64>(&mut conn).await }
                });
                futures_util::future::join_all(each)
                    .await
                    .into_iter()
                    .collect()
            }
        };
        match answer {
            Ok(held) => Ok(leases
                .iter()
                .zip(held.into_iter().chain(std::iter::repeat(0)))
                .map(|(lease, held)| match held {
                    1 => {
                        lease.fence.extend(started + own_part(lease.ttl));
                        true
                    }
                    _ => {
                        lease.fence.mark_lost();
                        false
                    }
                })
                .collect()),
            Err(e) => {
                for lease in leases
                    .iter()
                    .filter(|l| Instant::now() >= l.fence.deadline())
                {
                    lease.fence.mark_lost();
                }
                Err(store.failed("renewing leases", e))
            }
        }
    }

    /// [`Lease::release`], a failure only logged: the lease then expires by
    /// itself within its time.
    pub async fn give_back(&self) {
        if let Err(e) = self.release().await {
            let agent = self.fence.keys.agent();
            tracing::warn!(agent_id = %agent, error = %crate::error_chain::Chain(&e), "cannot hand the lease back; it expires by itself");
        }
    }

    /// Gives the lease back (when it is still this process's) so another
    /// process can take the agent at once; writes are refused from now on.
    pub async fn release(&self) -> Result<(), StoreError> {
        self.fence.mark_lost();
        let mut conn = self.store.conn();
        let _: i64 = Script::new(RELEASE)
            .key(self.fence.keys.lease())
            .arg(&self.fence.token)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.store.failed("giving a lease back", e))?;
        Ok(())
    }
}

/// A duration in whole milliseconds, at least 1.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
