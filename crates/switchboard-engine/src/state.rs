//! The rules' key/value store: JSON values with an optional time to live,
//! shared by all rooms (increments are atomic), kept in memory and, when a
//! file is named, saved after every change (temp file + rename) so counters
//! survive a restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading failed.
    #[error("cannot read state file {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The content is not a state file.
    #[error("state file {path} is not valid: {source}")]
    Parse {
        /// File.
        path: PathBuf,
        /// Cause.
        source: serde_json::Error,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Entry {
    value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires: Option<DateTime<Utc>>,
}

impl Entry {
    fn live(&self, now: DateTime<Utc>) -> bool {
        self.expires.is_none_or(|e| e > now)
    }
}

/// The store.
#[derive(Debug, Default)]
pub struct StateStore {
    entries: Mutex<BTreeMap<String, Entry>>,
    path: Option<PathBuf>,
}

impl StateStore {
    /// A store that lives in memory only.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// A store saved to `path`, loaded from it when it exists.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let entries = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StateError::Parse {
                path: path.to_owned(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => {
                return Err(StateError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        Ok(StateStore {
            entries: Mutex::new(entries),
            path: Some(path.to_owned()),
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
        entries.insert(
            key.to_owned(),
            Entry {
                value,
                expires: expiry(ttl, now),
            },
        );
        self.save(&entries);
    }

    /// Removes a key.
    pub fn unset(&self, key: &str) {
        let mut entries = self.lock();
        if entries.remove(key).is_some() {
            self.save(&entries);
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
        entries.insert(
            key.to_owned(),
            Entry {
                value: Value::from(next),
                expires: expiry(ttl, now).or(old_expiry),
            },
        );
        self.save(&entries);
        Ok(next)
    }

    /// Drops expired keys.
    pub fn purge(&self, now: DateTime<Utc>) {
        let mut entries = self.lock();
        let before = entries.len();
        entries.retain(|_, e| e.live(now));
        if entries.len() != before {
            self.save(&entries);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        // A panic while holding the lock leaves consistent data (single inserts).
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, entries: &BTreeMap<String, Entry>) {
        let Some(path) = &self.path else { return };
        let result = serde_json::to_vec_pretty(entries)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, bytes)?;
                std::fs::rename(&tmp, path)
            });
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "cannot save state");
        }
    }
}

fn expiry(ttl: Option<Duration>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    ttl.and_then(|t| chrono::Duration::from_std(t).ok())
        .map(|t| now + t)
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

    #[test]
    fn survives_a_restart_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let now = Utc::now();
        {
            let s = StateStore::open(&path).unwrap();
            s.incr("n", 5, None, now).unwrap();
            s.set("gone", json!(1), Some(Duration::from_secs(1)), now);
        }
        let s = StateStore::open(&path).unwrap();
        assert_eq!(s.get("n", now), Some(json!(5)));
        let snap = s.snapshot(now + chrono::Duration::seconds(5));
        assert_eq!(snap, json!({"n": 5}));
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "{not json").unwrap();
        assert!(matches!(
            StateStore::open(&path),
            Err(StateError::Parse { .. })
        ));
    }
}
