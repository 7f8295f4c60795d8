//! Rules' throttle windows: the times each (rule, rendered key) ran, kept in
//! memory and, when a [`ThrottlePersistence`] is given, every allowed run
//! handed to it, so a window outlives a restart or a takeover by another
//! process (the engine does no I/O; the binary persists).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One allowed run of a throttled rule, as handed to persistence.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ThrottleRun {
    /// The rule's id.
    pub rule: String,
    /// The rendered throttle key (empty: one window for the whole rule).
    pub key: String,
    /// When it ran.
    pub at: DateTime<Utc>,
    /// The rule's `per` then: lets a store drop runs whose window has ended
    /// without knowing the rules.
    pub window: Duration,
}

impl ThrottleRun {
    /// True while the run still counts in its window at `now`.
    pub fn live(&self, now: DateTime<Utc>) -> bool {
        window_open(self.at, chrono_window(self.window), now)
    }
}

/// Why the persisted throttle windows cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("throttle windows in {place}: {message}")]
pub struct ThrottleError {
    /// Where they are kept (a file, a server).
    pub place: String,
    /// What went wrong.
    pub message: String,
}

/// Where throttle windows outlive the process. The binary implements it on
/// a file; another store (e.g. a fleet's shared one) can too. The engine
/// only calls it.
pub trait ThrottlePersistence: Send + Sync {
    /// The runs recorded so far (those whose window ended may be left out).
    fn load(&self) -> Result<Vec<ThrottleRun>, ThrottleError>;

    /// Records an allowed run. Must not block on I/O: it is called from the
    /// engine's hot path, under the windows' lock; implementations queue.
    fn record(&self, run: ThrottleRun);
}

/// Run times per (rule id, rendered throttle key), oldest first.
type Windows = HashMap<(String, String), VecDeque<DateTime<Utc>>>;

/// The engine's throttle windows.
#[derive(Default)]
pub(crate) struct Throttles {
    windows: Mutex<Windows>,
    persistence: Option<Arc<dyn ThrottlePersistence>>,
}

impl Throttles {
    /// Windows persisted through `persistence`, starting from what it holds.
    /// Runs whose window has ended are dropped lazily, by the next check.
    pub(crate) fn persisted(
        persistence: Arc<dyn ThrottlePersistence>,
    ) -> Result<Throttles, ThrottleError> {
        let mut runs = persistence.load()?;
        // Oldest first per window, whatever order the store kept them in.
        runs.sort_by_key(|r| r.at);
        let mut windows = Windows::new();
        for run in runs {
            windows
                .entry((run.rule, run.key))
                .or_default()
                .push_back(run.at);
        }
        Ok(Throttles {
            windows: Mutex::new(windows),
            persistence: Some(persistence),
        })
    }

    /// True when `rule` may run now for `key` (at most `max` runs in any
    /// sliding `window`); records the run when it may.
    pub(crate) fn allows(
        &self,
        rule: &str,
        key: String,
        max: u32,
        window: Duration,
        now: DateTime<Utc>,
    ) -> bool {
        let span = chrono_window(window);
        let mut all = self.lock();
        let runs = all.entry((rule.to_owned(), key.clone())).or_default();
        while runs.front().is_some_and(|&at| !window_open(at, span, now)) {
            runs.pop_front();
        }
        if runs.len() >= max as usize {
            return false;
        }
        runs.push_back(now);
        // Under the lock, so runs reach persistence in memory's order.
        if let Some(p) = &self.persistence {
            p.record(ThrottleRun {
                rule: rule.to_owned(),
                key,
                at: now,
                window,
            });
        }
        true
    }

    /// Keeps only the windows of rules for which `keep` holds (a reload).
    pub(crate) fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.lock().retain(|(rule, _), _| keep(rule));
    }

    fn lock(&self) -> MutexGuard<'_, Windows> {
        // A panic while holding the lock leaves consistent data (single pushes and pops).
        self.windows.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A window as chrono counts it; one past the calendar's end never closes.
fn chrono_window(window: Duration) -> chrono::Duration {
    chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX)
}

/// True while a run at `at` still counts in a `span` window at `now` (no
/// overflow: a window past the calendar's end never closes).
fn window_open(at: DateTime<Utc>, span: chrono::Duration, now: DateTime<Utc>) -> bool {
    at.checked_add_signed(span).is_none_or(|end| end > now)
}
