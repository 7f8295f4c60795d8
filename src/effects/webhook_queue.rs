//! The queue of accepted webhook deliveries: bounded, deduplicated by
//! delivery id for [`DEDUPE_FOR`], and, in a state directory, durable. On
//! disk it is an append-only file of JSON lines written by a dedicated
//! thread ([`super::writer`]) that syncs each batch: a delivery is answered
//! `202` only once its line is synced, so it survives a crash right after.
//! A delivery stays in the queue until its rules ran and its "done" line is
//! written, so a restart handles what a crash interrupted. Opening replays
//! the file (a torn last line from a crash is skipped; a file with other
//! unreadable lines is kept aside) and rewrites it with only what is still
//! pending or remembered; the writer does the same every
//! [`COMPACT_AFTER_DONE`] handled deliveries.
//!
//! Under a shared store the same contract holds with Redis as the backing
//! ([`super::redis::webhooks`]): a delivery is answered `202` once the
//! script that deduplicates, bounds and queues it (checking the agent's
//! lease first) has run; ids are remembered by the store itself, so a
//! process taking the agent over knows them, and runs what is pending.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::journal::{keep_aside, replace};
use super::redis::webhooks::{RedisWebhooks, StorePushed};
use super::redis::{AgentSpace, StoreError};
use super::writer::{Sink, Writer};

/// How long a delivery id is remembered: a redelivery within it is
/// acknowledged and not handled again.
pub const DEDUPE_FOR: chrono::Duration = chrono::Duration::hours(24);

/// Handled deliveries after which the writer compacts the file.
pub const COMPACT_AFTER_DONE: usize = 256;

/// The default bound on deliveries waiting (or being handled).
pub const DEFAULT_MAX_PENDING: usize = 1000;

/// One accepted delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// `<hook>/<delivery id>`: what deduplicates it.
    pub key: String,
    /// The event the rules see (`hook`, `id`, `received_at`, `headers`, `query`, `body`).
    pub event: Value,
}

/// What became of a delivery offered to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued and (on disk) durable.
    Queued,
    /// Seen within [`DEDUPE_FOR`]: acknowledged, not queued again.
    Duplicate,
}

/// Why a delivery was not queued, or the queue cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// As many deliveries wait as the queue holds.
    #[error("the webhook queue is full ({max} deliveries waiting)")]
    Full {
        /// The bound.
        max: usize,
    },
    /// The file cannot be read or written.
    #[error("cannot use the webhook queue file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// The store holding the queue failed, or the agent's lease is lost.
    #[error("cannot use the webhook queue in the store {place}")]
    Store {
        /// The store (password hidden) and the queue's key.
        place: String,
        /// Cause.
        #[source]
        source: StoreError,
    },
}

impl QueueError {
    /// True when this process no longer runs the agent (its lease in the
    /// store is lost): another process takes its deliveries.
    pub fn lease_lost(&self) -> bool {
        matches!(
            self,
            QueueError::Store {
                source: StoreError::LeaseLost { .. } | StoreError::Outage { .. },
                ..
            }
        )
    }
}

/// One line of the file: a queued delivery (`q`), a handled one (`done`),
/// or a handled one remembered for deduplication after compaction (`seen`).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Line {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    q: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    done: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<DateTime<Utc>>,
}

impl Line {
    fn bytes(&self) -> io::Result<Vec<u8>> {
        let mut bytes = serde_json::to_vec(self).map_err(io::Error::other)?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

/// What the lines of a file add up to.
#[derive(Debug, Default)]
struct Replayed {
    pending: VecDeque<Entry>,
    seen: HashMap<String, DateTime<Utc>>,
}

impl Replayed {
    fn apply(&mut self, line: Line) -> bool {
        match line {
            Line {
                q: Some(key),
                event: Some(event),
                at,
                ..
            } => {
                self.seen.insert(key.clone(), at.unwrap_or_else(Utc::now));
                self.pending.push_back(Entry { key, event });
            }
            Line {
                done: Some(key), ..
            } => self.pending.retain(|e| e.key != key),
            Line {
                seen: Some(key),
                at: Some(at),
                ..
            } => {
                self.seen.insert(key, at);
            }
            _ => return false,
        }
        true
    }

    /// The lines that say the same, minus what is forgotten by `now`.
    fn compacted(mut self, now: DateTime<Utc>) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        for e in &self.pending {
            let at = self.seen.remove(&e.key);
            out.extend(queued_line(&e.key, &e.event, at)?);
        }
        for (key, at) in self.seen {
            if now - at < DEDUPE_FOR {
                let line = Line {
                    seen: Some(key),
                    at: Some(at),
                    ..Line::default()
                };
                out.extend(line.bytes()?);
            }
        }
        Ok(out)
    }
}

fn queued_line(key: &str, event: &Value, at: Option<DateTime<Utc>>) -> io::Result<Vec<u8>> {
    Line {
        q: Some(key.to_owned()),
        event: Some(event.clone()),
        at,
        ..Line::default()
    }
    .bytes()
}

/// Every line of the file applied, and how many lines are damaged. A last
/// line without its newline is a write torn by a crash: skipped silently.
fn read(path: &Path) -> io::Result<(Replayed, usize)> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Replayed::default(), 0)),
        Err(e) => return Err(e),
    };
    let complete = bytes.ends_with(b"\n");
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    let last = lines.len().saturating_sub(1);
    let mut replayed = Replayed::default();
    let mut damaged = 0;
    for (i, line) in lines.into_iter().enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let applied = serde_json::from_slice::<Line>(line)
            .map(|l| replayed.apply(l))
            .unwrap_or(false);
        if !applied && (i != last || complete) {
            damaged += 1;
        }
    }
    Ok((replayed, damaged))
}

/// Makes the file hold only what `replayed` still needs (atomic rename).
fn compact_into(path: &Path, replayed: Replayed) -> io::Result<()> {
    let bytes = replayed.compacted(Utc::now())?;
    replace(path, &path.with_extension("compacting"), &bytes)
}

/// A line for the writer thread, and whether it marks a delivery handled.
struct Queued {
    bytes: Vec<u8>,
    done: bool,
}

/// The file behind the writer thread.
struct QueueSink {
    path: PathBuf,
    file: File,
    /// A failed write may have left part of a line: the next starts afresh.
    torn: bool,
    done: usize,
}

impl Sink for QueueSink {
    type Item = Queued;

    fn write_batch(&mut self, items: Vec<Queued>) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(items.iter().map(|q| q.bytes.len()).sum::<usize>() + 1);
        if self.torn {
            bytes.push(b'\n');
        }
        for item in items {
            self.done += usize::from(item.done);
            bytes.extend_from_slice(&item.bytes);
        }
        let result = self
            .file
            .write_all(&bytes)
            .and_then(|()| self.file.sync_data());
        self.torn = result.is_err();
        result?;
        if self.done >= COMPACT_AFTER_DONE {
            // Try again after as many more either way: a failed compaction
            // only leaves the file longer.
            self.done = 0;
            if let Err(e) = self.compact() {
                tracing::warn!(file = %self.path.display(), error = %crate::error_chain::Chain(&e), "cannot compact the webhook queue; it keeps growing until the next try");
            }
        }
        Ok(())
    }
}

impl QueueSink {
    /// Runs on the writer thread, the file's only writer.
    fn compact(&mut self) -> io::Result<()> {
        let (replayed, _) = read(&self.path)?;
        compact_into(&self.path, replayed)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.torn = false;
        Ok(())
    }
}

/// What the queue holds in memory.
struct State {
    /// Durable deliveries not yet handled, oldest first (the first one may be in hand).
    pending: VecDeque<Entry>,
    /// Accepted deliveries whose line is being written.
    reserved: usize,
    /// Delivery keys and when they arrived; in the store (which remembers
    /// arrivals itself), the keys handled here, so a late answer about one
    /// never queues it again.
    seen: HashMap<String, DateTime<Utc>>,
    /// `seen`'s size after its last pruning.
    pruned_at: usize,
}

/// Where the queue is kept besides memory.
enum Backing {
    /// Nowhere: lost in a crash.
    Memory,
    /// The file at the path, appended by its writer thread.
    File(PathBuf, Writer<Queued>),
    /// The shared store, under the agent's lease.
    Store(RedisWebhooks),
}

/// The queue (see the module documentation).
pub struct WebhookQueue {
    state: Mutex<State>,
    max: usize,
    backing: Backing,
    ready: tokio::sync::Notify,
}

impl WebhookQueue {
    /// A queue in memory (`--ephemeral`): lost in a crash.
    pub fn in_memory(max: usize) -> WebhookQueue {
        WebhookQueue::with(Replayed::default(), max, Backing::Memory)
    }

    /// The agent's queue in the shared store: loads what is pending there
    /// (oldest first) and writes through.
    pub async fn in_store(space: &AgentSpace, max: usize) -> Result<WebhookQueue, QueueError> {
        let (store, pending) =
            RedisWebhooks::open(space)
                .await
                .map_err(|source| QueueError::Store {
                    place: space.store().shown().to_owned(),
                    source,
                })?;
        let replayed = Replayed {
            pending: pending
                .into_iter()
                .map(|(key, event)| Entry { key, event })
                .collect(),
            seen: HashMap::new(),
        };
        Ok(WebhookQueue::with(replayed, max, Backing::Store(store)))
    }

    /// True when an accepted delivery survives a crash (a file or the store).
    pub fn durable(&self) -> bool {
        !matches!(self.backing, Backing::Memory)
    }

    /// Opens (or creates) the queue file at `path`: replays it, rewrites it
    /// with what is still pending or remembered, and starts its writer. A
    /// damaged file is renamed aside first (and a warning logged).
    pub fn open(path: &Path, max: usize) -> Result<WebhookQueue, QueueError> {
        let err = |source| QueueError::Io {
            path: path.to_owned(),
            source,
        };
        let (replayed, damaged) = read(path).map_err(err)?;
        if damaged > 0 {
            let aside = keep_aside(path).map_err(err)?;
            tracing::warn!(
                file = %path.display(),
                kept = %aside.display(),
                damaged_lines = damaged,
                pending = replayed.pending.len(),
                "the webhook queue is damaged (lines that are not queue records); the file is kept aside \
                 and a new queue starts from the deliveries that could be read"
            );
        }
        let (replayed, _) = {
            // Compact from what was read, then read back what was kept (forgotten ids gone).
            compact_into(path, replayed).map_err(err)?;
            read(path).map_err(err)?
        };
        let file = OpenOptions::new().append(true).open(path).map_err(err)?;
        let sink = QueueSink {
            path: path.to_owned(),
            file,
            torn: false,
            done: 0,
        };
        let writer = Writer::spawn("webhook-queue-writer", sink).map_err(err)?;
        Ok(WebhookQueue::with(
            replayed,
            max,
            Backing::File(path.to_owned(), writer),
        ))
    }

    fn with(replayed: Replayed, max: usize, backing: Backing) -> Self {
        let pruned_at = replayed.seen.len();
        WebhookQueue {
            state: Mutex::new(State {
                pending: replayed.pending,
                reserved: 0,
                seen: replayed.seen,
                pruned_at,
            }),
            max: max.max(1),
            backing,
            ready: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Deliveries waiting or in hand.
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    /// Offers a delivery received `now` with `key` (`<hook>/<delivery id>`);
    /// resolves once it is durable (or known already).
    pub async fn push(
        &self,
        key: String,
        event: Value,
        now: DateTime<Utc>,
    ) -> Result<Pushed, QueueError> {
        if let Backing::Store(store) = &self.backing {
            return self.push_to_store(store, key, event, now).await;
        }
        {
            let mut state = self.lock();
            if state
                .seen
                .get(&key)
                .is_some_and(|at| now - *at < DEDUPE_FOR)
            {
                return Ok(Pushed::Duplicate);
            }
            if state.pending.len() + state.reserved >= self.max {
                return Err(QueueError::Full { max: self.max });
            }
            state.reserved += 1;
            state.seen.insert(key.clone(), now);
            prune(&mut state, now);
        }
        let written = match &self.backing {
            Backing::Memory | Backing::Store(_) => Ok(()),
            Backing::File(path, writer) => {
                let err = |source| QueueError::Io {
                    path: path.clone(),
                    source,
                };
                match queued_line(&key, &event, Some(now)) {
                    Ok(bytes) => writer
                        .write(Queued { bytes, done: false })
                        .await
                        .map_err(err),
                    Err(e) => Err(err(e)),
                }
            }
        };
        let mut state = self.lock();
        state.reserved = state.reserved.saturating_sub(1);
        match written {
            Ok(()) => {
                state.pending.push_back(Entry { key, event });
                drop(state);
                self.ready.notify_one();
                Ok(Pushed::Queued)
            }
            Err(e) => {
                // Not queued: a redelivery must be accepted.
                state.seen.remove(&key);
                Err(e)
            }
        }
    }

    /// [`WebhookQueue::push`] with the store deciding: the script there
    /// deduplicates, bounds and queues in one step.
    async fn push_to_store(
        &self,
        store: &RedisWebhooks,
        key: String,
        event: Value,
        now: DateTime<Utc>,
    ) -> Result<Pushed, QueueError> {
        let err = |source| QueueError::Store {
            place: store.shown(),
            source,
        };
        let text = serde_json::to_string(&event).map_err(|e| {
            err(StoreError::Corrupt {
                url: store.shown(),
                key: key.clone(),
                message: format!("the event cannot be written as JSON: {e}"),
            })
        })?;
        let remember = u64::try_from(DEDUPE_FOR.num_seconds()).unwrap_or(u64::MAX);
        let pushed = store
            .push(&key, &text, self.max, remember)
            .await
            .map_err(err)?;
        let mut state = self.lock();
        match pushed {
            StorePushed::Queued => {
                state.pending.push_back(Entry { key, event });
                drop(state);
                self.ready.notify_one();
                Ok(Pushed::Queued)
            }
            StorePushed::Full => Err(QueueError::Full { max: self.max }),
            StorePushed::Duplicate(None) => Ok(Pushed::Duplicate),
            StorePushed::Duplicate(Some(stored)) => {
                // Pending in the store but not here: an earlier push whose
                // answer was lost (its sender got an error and retried).
                let known =
                    state.pending.iter().any(|e| e.key == key) || state.seen.contains_key(&key);
                if !known {
                    state.pending.push_back(Entry { key, event: stored });
                    prune(&mut state, now);
                    drop(state);
                    self.ready.notify_one();
                }
                Ok(Pushed::Duplicate)
            }
        }
    }

    /// The oldest delivery not yet handled, waiting for one; it stays in the
    /// queue until [`WebhookQueue::done`].
    pub async fn next(&self) -> Entry {
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(entry) = self.lock().pending.front().cloned() {
                return entry;
            }
            notified.await;
        }
    }

    /// Marks the delivery `key` handled: out of the queue now, and on disk
    /// once this resolves.
    pub async fn done(&self, key: &str) -> Result<(), QueueError> {
        {
            let mut state = self.lock();
            state.pending.retain(|e| e.key != key);
            if matches!(self.backing, Backing::Store(_)) {
                let now = Utc::now();
                state.seen.insert(key.to_owned(), now);
                prune(&mut state, now);
            }
        }
        let (path, writer) = match &self.backing {
            Backing::Memory => return Ok(()),
            Backing::File(path, writer) => (path, writer),
            Backing::Store(store) => {
                return store.done(key).await.map_err(|source| QueueError::Store {
                    place: store.shown(),
                    source,
                })
            }
        };
        let err = |source| QueueError::Io {
            path: path.clone(),
            source,
        };
        let line = Line {
            done: Some(key.to_owned()),
            ..Line::default()
        };
        let bytes = line.bytes().map_err(err)?;
        writer
            .write(Queued { bytes, done: true })
            .await
            .map_err(err)
    }
}

/// Forgets delivery ids older than [`DEDUPE_FOR`] once the map has doubled
/// since the last pass (amortised: the map stays bounded by a day's traffic).
fn prune(state: &mut State, now: DateTime<Utc>) {
    if state.seen.len() < state.pruned_at.saturating_mul(2).max(1024) {
        return;
    }
    let State { pending, seen, .. } = state;
    seen.retain(|k, at| now - *at < DEDUPE_FOR || pending.iter().any(|e| &e.key == k));
    state.pruned_at = state.seen.len();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn pending_deliveries_and_known_ids_survive_a_reopen_and_done_ones_do_not_return() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("webhooks");
        let now = Utc::now();
        rt().block_on(async {
            let q = WebhookQueue::open(&path, 10).unwrap();
            for k in ["h/1", "h/2", "h/3"] {
                let pushed = q.push(k.into(), json!({"id": k}), now).await.unwrap();
                assert_eq!(pushed, Pushed::Queued);
            }
            assert_eq!(q.next().await.key, "h/1");
            q.done("h/1").await.unwrap();
            assert_eq!(q.next().await.key, "h/2");
        });
        // A torn last line (a crash mid-write) is not damage.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"q\":\"h/4\",\"ev").unwrap();
        drop(f);
        rt().block_on(async {
            let q = WebhookQueue::open(&path, 10).unwrap();
            assert_eq!(q.pending(), 2);
            assert_eq!(q.next().await.event, json!({"id": "h/2"}));
            // Handled or not, a known id is a duplicate.
            for k in ["h/1", "h/2"] {
                let pushed = q.push(k.into(), json!({}), now).await.unwrap();
                assert_eq!(pushed, Pushed::Duplicate, "{k}");
            }
            // The torn line was never acknowledged: a redelivery is queued.
            let pushed = q.push("h/4".into(), json!({}), now).await.unwrap();
            assert_eq!(pushed, Pushed::Queued);
            // Ids older than a day are forgotten.
            let later = now + DEDUPE_FOR + chrono::Duration::seconds(1);
            q.done("h/2").await.unwrap();
            let pushed = q.push("h/2".into(), json!({}), later).await.unwrap();
            assert_eq!(pushed, Pushed::Queued);
        });
        assert!(!dir
            .path()
            .read_dir()
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains("damaged")));
    }

    #[test]
    fn a_full_queue_refuses_until_a_delivery_is_done() {
        rt().block_on(async {
            let q = WebhookQueue::in_memory(2);
            let now = Utc::now();
            q.push("h/1".into(), json!({}), now).await.unwrap();
            q.push("h/2".into(), json!({}), now).await.unwrap();
            let full = q.push("h/3".into(), json!({}), now).await;
            assert!(matches!(full, Err(QueueError::Full { max: 2 })), "{full:?}");
            // A redelivery of a queued one is still acknowledged.
            let again = q.push("h/2".into(), json!({}), now).await.unwrap();
            assert_eq!(again, Pushed::Duplicate);
            q.done("h/1").await.unwrap();
            let pushed = q.push("h/3".into(), json!({}), now).await.unwrap();
            assert_eq!(pushed, Pushed::Queued);
        });
    }

    #[test]
    fn the_file_stays_bounded_while_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("webhooks");
        let body = "x".repeat(1024);
        let n = COMPACT_AFTER_DONE * 2 + 10;
        rt().block_on(async {
            let q = WebhookQueue::open(&path, 10).unwrap();
            for i in 0..n {
                let key = format!("h/{i}");
                q.push(key.clone(), json!({"body": body}), Utc::now())
                    .await
                    .unwrap();
                q.done(&key).await.unwrap();
            }
        });
        // The bodies of handled deliveries are gone; their ids are kept (a day).
        let len = std::fs::metadata(&path).unwrap().len() as usize;
        assert!(len < 80 * 1024, "{len} bytes after {n} deliveries");
        rt().block_on(async {
            let q = WebhookQueue::open(&path, 10).unwrap();
            assert_eq!(q.pending(), 0);
            let again = q.push("h/3".into(), json!({}), Utc::now()).await.unwrap();
            assert_eq!(again, Pushed::Duplicate);
        });
    }

    #[test]
    fn a_damaged_file_is_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("webhooks");
        std::fs::write(&path, "garbage\n{\"q\":\"h/1\",\"event\":{}}\n").unwrap();
        let q = WebhookQueue::open(&path, 10).unwrap();
        assert_eq!(q.pending(), 1);
        assert!(dir.path().read_dir().unwrap().flatten().any(|e| e
            .file_name()
            .to_string_lossy()
            .starts_with("webhooks.damaged-")));
    }
}
