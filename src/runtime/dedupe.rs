//! The bounded memory of handled messages, shared by every room: it keeps a
//! message from being handled twice (drain vs. live, reconnect resyncs) and
//! remembers which ones still owe a `/processed` ack.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// Handled message ids (oldest forgotten first) and pending acks.
#[derive(Debug, Clone)]
pub(crate) struct Completed {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    capacity: usize,
    ids: HashSet<String>,
    order: VecDeque<String>,
    /// Handled successfully but `/processed` did not go through.
    ack_pending: HashSet<String>,
}

impl Completed {
    /// An empty set remembering at most `capacity` ids (at least one).
    pub(crate) fn new(capacity: usize) -> Completed {
        Completed {
            inner: Arc::new(Mutex::new(Inner {
                capacity: capacity.max(1),
                ids: HashSet::new(),
                order: VecDeque::new(),
                ack_pending: HashSet::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the sets inconsistent
        // in a way that matters more than losing the runtime, so recover.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `id` was handled (and not yet forgotten).
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.lock().ids.contains(id)
    }

    /// Records `id` as handled, forgetting the oldest id beyond capacity.
    pub(crate) fn insert(&self, id: &str) {
        let mut g = self.lock();
        if !g.ids.insert(id.to_string()) {
            return;
        }
        g.order.push_back(id.to_string());
        while g.order.len() > g.capacity {
            if let Some(old) = g.order.pop_front() {
                g.ids.remove(&old);
                g.ack_pending.remove(&old);
            }
        }
    }

    /// Marks `id` as owing a `/processed` ack (or not).
    pub(crate) fn set_ack_pending(&self, id: &str, pending: bool) {
        let mut g = self.lock();
        if pending {
            g.ack_pending.insert(id.to_string());
        } else {
            g.ack_pending.remove(id);
        }
    }

    /// Whether `id` still owes a `/processed` ack.
    pub(crate) fn ack_pending(&self, id: &str) -> bool {
        self.lock().ack_pending.contains(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_up_to_capacity_then_forgets_oldest() {
        let c = Completed::new(2);
        c.insert("a");
        c.insert("b");
        c.insert("a"); // no-op, does not refresh
        assert!(c.contains("a") && c.contains("b"));
        c.insert("c");
        assert!(!c.contains("a"));
        assert!(c.contains("b") && c.contains("c"));
    }

    #[test]
    fn ack_pending_is_forgotten_with_its_id() {
        let c = Completed::new(1);
        c.insert("a");
        c.set_ack_pending("a", true);
        assert!(c.ack_pending("a"));
        c.insert("b");
        assert!(!c.ack_pending("a"));
        c.set_ack_pending("b", true);
        c.set_ack_pending("b", false);
        assert!(!c.ack_pending("b"));
    }

    #[test]
    fn clones_share_state() {
        let a = Completed::new(10);
        let b = a.clone();
        a.insert("x");
        assert!(b.contains("x"));
    }
}
