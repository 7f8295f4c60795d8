//! The message ledger, shared by every room: the one place that records what
//! became of a message id. It keeps a message from being handled twice
//! (drain vs. live, reconnect resyncs), remembers which ones still owe a
//! `/processed` ack, and tells the handler once a message is settled.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// Called with a message id once the platform has it settled.
type OnSettled = Arc<dyn Fn(&str) + Send + Sync>;

/// Handled message ids (oldest forgotten first), pending acks, and who is
/// told about settled messages.
#[derive(Clone)]
pub(crate) struct MessageLedger {
    inner: Arc<Mutex<Inner>>,
    on_settled: OnSettled,
}

#[derive(Debug)]
struct Inner {
    capacity: usize,
    ids: HashSet<String>,
    order: VecDeque<String>,
    /// Handled successfully but `/processed` did not go through.
    ack_pending: HashSet<String>,
}

impl MessageLedger {
    /// An empty ledger remembering at most `capacity` ids (at least one);
    /// `on_settled` hears of every settled message.
    pub(crate) fn new(
        capacity: usize,
        on_settled: impl Fn(&str) + Send + Sync + 'static,
    ) -> MessageLedger {
        MessageLedger {
            inner: Arc::new(Mutex::new(Inner {
                capacity: capacity.max(1),
                ids: HashSet::new(),
                order: VecDeque::new(),
                ack_pending: HashSet::new(),
            })),
            on_settled: Arc::new(on_settled),
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

    /// Records `id` as handled: its handler must not run again in this
    /// process. The oldest id beyond capacity is forgotten.
    pub(crate) fn handled(&self, id: &str) {
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

    /// Records the answer to a `/processed` ack of handled message `id`:
    /// taken, the message is settled; not, the ack stays owed (a later
    /// drain retries it).
    pub(crate) fn acked(&self, id: &str, taken: bool) {
        if taken {
            self.settled(id);
        } else {
            self.lock().ack_pending.insert(id.to_string());
        }
    }

    /// Records `id` as handled for good (processed, or left failed) and
    /// tells whoever kept something to resume it that it can go.
    pub(crate) fn settled(&self, id: &str) {
        self.handled(id);
        self.lock().ack_pending.remove(id);
        (self.on_settled)(id);
    }

    /// Whether `id` still owes a `/processed` ack.
    pub(crate) fn ack_pending(&self, id: &str) -> bool {
        self.lock().ack_pending.contains(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(capacity: usize) -> (MessageLedger, Arc<Mutex<Vec<String>>>) {
        let told = Arc::new(Mutex::new(Vec::new()));
        let t = told.clone();
        let ledger = MessageLedger::new(capacity, move |id| t.lock().unwrap().push(id.into()));
        (ledger, told)
    }

    #[test]
    fn remembers_up_to_capacity_then_forgets_oldest() {
        let (c, _) = ledger(2);
        c.handled("a");
        c.handled("b");
        c.handled("a"); // no-op, does not refresh
        assert!(c.contains("a") && c.contains("b"));
        c.handled("c");
        assert!(!c.contains("a"));
        assert!(c.contains("b") && c.contains("c"));
    }

    #[test]
    fn ack_pending_is_forgotten_with_its_id() {
        let (c, _) = ledger(1);
        c.handled("a");
        c.acked("a", false);
        assert!(c.ack_pending("a"));
        c.handled("b");
        assert!(!c.ack_pending("a"));
        c.acked("b", false);
        c.acked("b", true);
        assert!(!c.ack_pending("b"));
    }

    #[test]
    fn settling_is_told_once_per_settlement_and_remembers_the_id() {
        let (c, told) = ledger(4);
        c.handled("a");
        c.acked("a", false);
        assert!(
            told.lock().unwrap().is_empty(),
            "an owed ack is not settled"
        );
        c.acked("a", true);
        c.settled("gave-up");
        assert!(c.contains("gave-up"));
        assert_eq!(*told.lock().unwrap(), ["a", "gave-up"]);
    }

    #[test]
    fn clones_share_state() {
        let (a, _) = ledger(10);
        let b = a.clone();
        a.handled("x");
        assert!(b.contains("x"));
    }
}
