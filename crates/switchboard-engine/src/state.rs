//! The rules' key/value store: JSON values with an optional time to live,
//! shared by all rooms (increments are atomic), kept in memory and, when a
//! [`StatePersistence`] is given, every change handed to it so counters
//! survive a restart (the engine does no I/O; the binary persists).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Why the persisted state could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading failed.
    #[error("cannot read state file {path}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Writing (compacting) failed.
    #[error("cannot write state file {path}")]
    Write {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The content is not a state file.
    #[error("state file {path} is not valid")]
    Parse {
        /// File.
        path: PathBuf,
        /// Cause.
        source: serde_json::Error,
    },
}

/// One key's value as kept: the value and when it stops being live.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Stored {
    /// The value.
    pub value: Value,
    /// When it expires (never, when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<DateTime<Utc>>,
}

impl Stored {
    /// True when not expired at `now`.
    pub fn live(&self, now: DateTime<Utc>) -> bool {
        self.expires.is_none_or(|e| e > now)
    }
}

/// Every key, as kept (expired ones may linger until purged).
pub type Entries = BTreeMap<String, Stored>;

/// One change to the store, as handed to its [`StatePersistence`].
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// `key` now holds `stored` (an `incr` is recorded as its result).
    Set {
        /// Key.
        key: String,
        /// Its value and expiry.
        stored: Stored,
    },
    /// `key` was removed.
    Unset {
        /// Key.
        key: String,
    },
}

/// Where the state outlives the process. The binary implements it on files;
/// the engine only calls it.
pub trait StatePersistence: Send + Sync {
    /// The state as last persisted (every change applied so far included).
    fn load(&self) -> Result<Entries, StateError>;

    /// Persists `change` after those applied before. Must not block on I/O:
    /// it is called from the engine's hot path, under the store's lock.
    fn apply(&self, change: Change);
}

/// The store.
#[derive(Default)]
pub struct StateStore {
    entries: Mutex<Entries>,
    persistence: Option<Arc<dyn StatePersistence>>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("keys", &self.lock().len())
            .field("persistent", &self.persistence.is_some())
            .finish()
    }
}

impl StateStore {
    /// A store that lives in memory only.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// A store persisted through `persistence`, starting from what it holds.
    pub fn persisted(persistence: Arc<dyn StatePersistence>) -> Result<Self, StateError> {
        Ok(StateStore {
            entries: Mutex::new(persistence.load()?),
            persistence: Some(persistence),
        })
    }

    /// Every live key, as a JSON object (for templates).
    pub fn snapshot(&self, now: DateTime<Utc>) -> Value {
        let entries = self.lock();
        let map: Map<String, Value> = entries
            .iter()
            .filter(|(_, e)| e.live(now))
            .map(|(k, e)| (k.clone(), e.value.clone()))
            .collect();
        Value::Object(map)
    }

    /// One key's value, when live.
    pub fn get(&self, key: &str, now: DateTime<Utc>) -> Option<Value> {
        self.lock()
            .get(key)
            .filter(|e| e.live(now))
            .map(|e| e.value.clone())
    }

    /// Sets a key.
    pub fn set(&self, key: &str, value: Value, ttl: Option<Duration>, now: DateTime<Utc>) {
        let mut entries = self.lock();
        let stored = Stored {
            value,
            expires: expiry(ttl, now),
        };
        self.persist(Change::Set {
            key: key.to_owned(),
            stored: stored.clone(),
        });
        entries.insert(key.to_owned(), stored);
    }

    /// Removes a key.
    pub fn unset(&self, key: &str) {
        let mut entries = self.lock();
        if entries.remove(key).is_some() {
            self.persist(Change::Unset {
                key: key.to_owned(),
            });
        }
    }

    /// Adds `by` to a numeric key (absent or expired counts as 0) and returns
    /// the new value. A `ttl` sets a new expiry; without one the old one stays.
    pub fn incr(
        &self,
        key: &str,
        by: i64,
        ttl: Option<Duration>,
        now: DateTime<Utc>,
    ) -> Result<i64, String> {
        let mut entries = self.lock();
        let (current, old_expiry) = match entries.get(key).filter(|e| e.live(now)) {
            None => (0, None),
            Some(e) => match e.value.as_i64() {
                Some(n) => (n, e.expires),
                None => {
                    return Err(format!(
                        "state key `{key}` holds {}, not a whole number",
                        e.value
                    ))
                }
            },
        };
        let next = current
            .checked_add(by)
            .ok_or_else(|| format!("state key `{key}` would overflow"))?;
        let stored = Stored {
            value: Value::from(next),
            expires: expiry(ttl, now).or(old_expiry),
        };
        self.persist(Change::Set {
            key: key.to_owned(),
            stored: stored.clone(),
        });
        entries.insert(key.to_owned(), stored);
        Ok(next)
    }

    /// Drops expired keys from memory (persistence drops them when it
    /// compacts; an expired key read back is not live either way).
    pub fn purge(&self, now: DateTime<Utc>) {
        self.lock().retain(|_, e| e.live(now));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding the lock leaves consistent data (single inserts).
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Called under the lock, so changes reach persistence in memory's order.
    fn persist(&self, change: Change) {
        if let Some(p) = &self.persistence {
            p.apply(change);
        }
    }
}

/// When a key set at `now` with `ttl` expires. Workflows bound a TTL (see
/// `switchboard_workflow::duration::MAX_DURATION`), so this only saturates for
/// callers that do not: a TTL past the calendar's end never expires.
fn expiry(ttl: Option<Duration>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let ttl = ttl?;
    Some(
        chrono::Duration::from_std(ttl)
            .ok()
            .and_then(|t| now.checked_add_signed(t))
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn incr_counts_and_expires() {
        let s = StateStore::in_memory();
        let t0 = Utc::now();
        assert_eq!(
            s.incr("c", 1, Some(Duration::from_secs(60)), t0).unwrap(),
            1
        );
        assert_eq!(s.incr("c", 2, None, t0).unwrap(), 3);
        assert_eq!(s.get("c", t0), Some(json!(3)));
        let later = t0 + chrono::Duration::seconds(61);
        assert_eq!(s.get("c", later), None, "the first ttl still applies");
        assert_eq!(s.incr("c", 1, None, later).unwrap(), 1);
        s.set("name", json!("x"), None, t0);
        assert!(s.incr("name", 1, None, t0).is_err());
    }

    /// Persistence in memory: what a restart would load.
    #[derive(Default)]
    struct Kept(Mutex<Entries>);

    impl StatePersistence for Kept {
        fn load(&self) -> Result<Entries, StateError> {
            Ok(self.0.lock().unwrap().clone())
        }

        fn apply(&self, change: Change) {
            let mut kept = self.0.lock().unwrap();
            match change {
                Change::Set { key, stored } => kept.insert(key, stored),
                Change::Unset { key } => kept.remove(&key),
            };
        }
    }

    #[test]
    fn every_change_reaches_persistence() {
        let kept = Arc::new(Kept::default());
        let now = Utc::now();
        {
            let s = StateStore::persisted(kept.clone()).unwrap();
            s.incr("n", 5, None, now).unwrap();
            s.set("gone", json!(1), Some(Duration::from_secs(1)), now);
            s.set("x", json!(1), None, now);
            s.unset("x");
        }
        let s = StateStore::persisted(kept).unwrap();
        assert_eq!(s.get("n", now), Some(json!(5)));
        let snap = s.snapshot(now + chrono::Duration::seconds(5));
        assert_eq!(snap, json!({"n": 5}));
    }
}
