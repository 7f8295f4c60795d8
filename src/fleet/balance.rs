//! How processes sharing a fleet split its agents: each takes up to its
//! share (the agents divided by the processes counted in the store, capped
//! by `--max-agents`), preferring the agents that rank highest for it, so
//! two processes reach for different agents instead of racing for the same.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::FleetFile;
use crate::effects::redis::{Lease, RedisStore};

/// How often a process renews its leases and looks at the balance: four
/// times per lease, so two renewals can fail before it runs out.
pub fn tick(lease: Duration) -> Duration {
    (lease / 4).max(Duration::from_millis(50))
}

/// Ticks a process holds more than its share before it hands the surplus
/// back: longer than a lease (four ticks), the time a dead process stays counted.
pub const SURPLUS_TICKS: u32 = 6;

/// Failed starts in a row, under a lease, before a process hands the agent
/// to another one.
pub const HAND_OVER_AFTER: u32 = 3;

/// How long a process leaves an agent it gave up on to the others.
pub const COOLDOWN: Duration = Duration::from_secs(60);

/// This process's share of `agents` among `processes`, at most `max`.
pub fn share(agents: usize, processes: usize, max: Option<usize>) -> usize {
    agents
        .div_ceil(processes.max(1))
        .min(max.unwrap_or(usize::MAX))
}

/// How much `process` prefers `agent` (rendezvous hashing: each agent's
/// order of preference differs per process).
pub fn rank(process: &str, agent: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (process, agent).hash(&mut h);
    h.finish()
}

/// The fleet's name in the store: a digest of its agent ids, the same for
/// every process running the same agents.
pub fn fleet_id(fleet: &FleetFile) -> String {
    let mut ids: Vec<&str> = fleet.agents.iter().map(|a| a.agent_id.as_str()).collect();
    ids.sort_unstable();
    let digest = Sha256::digest(ids.join("\n").as_bytes());
    hex::encode(&digest[..8])
}

/// This process's id: host, pid and a random part (a restarted process is
/// a new one).
pub fn process_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &random[..8])
}

/// The leases a process holds, by agent name, renewed by a task of their
/// own every tick: the fleet's main loop may wait (an agent stopping for an
/// edit, a slow start) without letting any lease run out.
pub struct HeldLeases {
    held: Arc<Mutex<BTreeMap<String, Lease>>>,
    renewals: tokio::task::JoinHandle<()>,
}

impl HeldLeases {
    /// No lease yet; renews those added every `tick` in `store`.
    pub fn new(store: RedisStore, tick: Duration) -> HeldLeases {
        let held: Arc<Mutex<BTreeMap<String, Lease>>> = Arc::default();
        let renewed = held.clone();
        let renewals = tokio::spawn(async move {
            let mut failing = false;
            loop {
                tokio::time::sleep(tick).await;
                let leases: Vec<Lease> = lock(&renewed).values().cloned().collect();
                match Lease::renew_all(&store, &leases).await {
                    Ok(_) => failing = false,
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %crate::error_chain::Chain(&e), "cannot renew the leases; each agent keeps running until its own part of its lease ends");
                    }
                    Err(_) => {}
                }
            }
        });
        HeldLeases { held, renewals }
    }

    /// Adds a lease just taken.
    pub fn insert(&self, name: String, lease: Lease) {
        lock(&self.held).insert(name, lease);
    }

    /// Forgets (no longer renews) agent `name`'s lease.
    pub fn remove(&self, name: &str) -> Option<Lease> {
        lock(&self.held).remove(name)
    }

    /// Agent `name`'s lease, when held.
    pub fn get(&self, name: &str) -> Option<Lease> {
        lock(&self.held).get(name).cloned()
    }

    /// True when agent `name`'s lease is held.
    pub fn contains(&self, name: &str) -> bool {
        lock(&self.held).contains_key(name)
    }

    /// How many are held.
    pub fn len(&self) -> usize {
        lock(&self.held).len()
    }

    /// True when none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every lease held, by name.
    pub fn all(&self) -> Vec<(String, Lease)> {
        lock(&self.held)
            .iter()
            .map(|(n, l)| (n.clone(), l.clone()))
            .collect()
    }

    /// Forgets every lease (to give them back).
    pub fn take_all(&self) -> BTreeMap<String, Lease> {
        std::mem::take(&mut *lock(&self.held))
    }
}

impl Drop for HeldLeases {
    fn drop(&mut self) {
        self.renewals.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_agent_and_respect_the_cap() {
        assert_eq!(share(4, 2, None), 2);
        assert_eq!(share(5, 2, None), 3);
        assert_eq!(share(4, 1, None), 4);
        assert_eq!(share(4, 0, None), 4);
        assert_eq!(share(500, 3, Some(100)), 100);
        for agents in 0..20 {
            for processes in 1..6 {
                assert!(share(agents, processes, None) * processes >= agents);
            }
        }
    }

    #[test]
    fn processes_prefer_different_agents() {
        let agents: Vec<String> = (0..8).map(|i| format!("a{i}")).collect();
        let top = |p: &str| {
            let mut v = agents.clone();
            v.sort_by_key(|a| std::cmp::Reverse(rank(p, a)));
            v
        };
        assert_ne!(top("one"), top("two"));
    }
}
