//! A bounded, process-wide memo for load-time work that a reload would
//! otherwise repeat for unchanged input (parsed files, checked and compiled
//! patterns). Cleared whole when full: simple, and a reload refills it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};

/// Keeps up to `limit` values by key; only successes are kept.
pub struct ReloadCache<K, V> {
    limit: usize,
    map: Mutex<Option<HashMap<K, V>>>,
}

impl<K: Hash + Eq, V: Clone> ReloadCache<K, V> {
    /// An empty memo (usable in a `static`).
    pub const fn new(limit: usize) -> Self {
        ReloadCache {
            limit,
            map: Mutex::new(None),
        }
    }

    /// The value for `key`, computed by `make` (outside the lock) when absent.
    pub fn get_or_try<E>(&self, key: K, make: impl FnOnce() -> Result<V, E>) -> Result<V, E> {
        if let Some(v) = self.lock().get_or_insert_with(HashMap::new).get(&key) {
            return Ok(v.clone());
        }
        let value = make()?;
        let mut guard = self.lock();
        let map = guard.get_or_insert_with(HashMap::new);
        if map.len() >= self.limit {
            map.clear();
        }
        map.insert(key, value.clone());
        Ok(value)
    }

    fn lock(&self) -> MutexGuard<'_, Option<HashMap<K, V>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::ReloadCache;

    #[test]
    fn keeps_successes_and_clears_when_full() {
        let memo: ReloadCache<u32, u32> = ReloadCache::new(2);
        assert_eq!(memo.get_or_try(1, || Ok::<_, ()>(10)), Ok(10));
        assert_eq!(memo.get_or_try(1, || Err("not called")), Ok(10));
        assert_eq!(memo.get_or_try(2, || Err("failed")), Err("failed"));
        assert_eq!(memo.get_or_try(2, || Ok::<_, ()>(20)), Ok(20));
        // Full: the next insert starts over.
        assert_eq!(memo.get_or_try(3, || Ok::<_, ()>(30)), Ok(30));
        assert_eq!(memo.get_or_try(1, || Ok::<_, ()>(11)), Ok(11));
    }
}
