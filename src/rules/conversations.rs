//! The pending conversations of a running agent: lists paused at `wait_for`,
//! `ask` or `wait`, indexed by room (oldest first) and by deadline, kept in
//! memory and, through a [`ConversationStore`], where the journal and the
//! state are kept. The rules handler offers each
//! message to the conversations of its room before the rules; one timer task
//! ([`spawn_timers`]) fires deadlines and the end of `wait`s.
//!
//! # Exactly once, across crashes
//! An answer M to a conversation P is handled inside M's own lifecycle
//! (`processing` → the rest of P's list → `processed`):
//! 1. P is marked *taken by M* (with the answer itself) and that mark is
//!    durable before any of the rest of the list runs.
//! 2. The rest runs, its steps journaled under M's id like any message's.
//! 3. New pauses of the rest are kept (durable), then the handler returns
//!    and the runtime marks M `processed`.
//! 4. Once M settled, P is dropped.
//!
//! A crash before 1 leaves M unprocessed and P waiting: M is served again
//! and answers P then. A crash between 1 and 3 leaves M unprocessed and P
//! taken by M: served again, M finds P taken by itself and resumes it with
//! the same answer (never the rules); the journal skips the steps done and
//! looks for an unconfirmed one on the platform before sending it again, and
//! a pause reached again has the same id (its origin is M) so it is kept
//! once. A crash after 3 but before 4 is durable leaves P taken by a message
//! the platform has as processed: nobody can take it again, and it is
//! forgotten after the journal's retention. So the answer is consumed once,
//! and nothing is lost or doubled. A deadline goes the same way, taken by
//! the deadline, its steps journaled under `<id>@deadline`, and dropped
//! once its list finished; a deadline taken before a crash fires again at
//! start and skips what was done.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use switchboard_engine::conversation::{
    ConversationChange, ConversationStore, ConversationStoreError, StoredConversation, Taken,
};
use switchboard_engine::journal::RETENTION_DAYS;
use switchboard_engine::PendingConversation;
use switchboard_workflow::rule::PauseKind;
use switchboard_workflow::Ruleset;

/// The default of `--max-pending-per-person`.
pub const DEFAULT_MAX_PER_PERSON: usize = 10;

/// One pending conversation as `GET /conversations` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Its id.
    pub id: String,
    /// Its rule.
    pub rule: String,
    /// The room it waits in.
    pub room: String,
    /// `wait_for`, `ask` or `wait`.
    pub kind: &'static str,
    /// Who may answer (empty for `wait`).
    pub waiting_for: Vec<String>,
    /// When it times out (`wait`: when the rest runs).
    pub deadline: DateTime<Utc>,
    /// When it paused.
    pub started: DateTime<Utc>,
}

/// How many are pending after a reload, and how many of those had their rule
/// changed or removed by it (they finish with the actions they started with).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PendingOnReload {
    /// Pending conversations.
    pub pending: usize,
    /// Of those, whose rule the new rules change or no longer have.
    pub rule_changed: usize,
}

/// Why a conversation could not be kept or taken.
pub type StoreError = ConversationStoreError;

struct Entry {
    stored: StoredConversation,
    /// A deadline taken and being run by the timer task (not kept on disk:
    /// after a crash it runs again).
    running: bool,
    /// A deadline whose room was stopped: run again from then on.
    retry_at: Option<DateTime<Utc>>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Per room: (started, id) of its conversations, oldest first.
    rooms: HashMap<String, BTreeSet<(DateTime<Utc>, String)>>,
    /// (deadline, id) of every conversation.
    deadlines: BTreeSet<(DateTime<Utc>, String)>,
    /// Workflow file texts kept, by hash.
    sources: HashMap<u64, ()>,
    /// How many kept conversations paused in each text (by hash): finding
    /// the texts nobody refers to is then no walk over every conversation.
    source_refs: HashMap<u64, usize>,
    /// Message id → the conversation it took (every message that settles
    /// asks, so this is a lookup, not a scan).
    by_message: HashMap<String, String>,
}

impl Inner {
    fn insert(&mut self, stored: StoredConversation) {
        let p = &stored.conversation;
        self.rooms
            .entry(p.room.clone())
            .or_default()
            .insert((p.started, p.id.clone()));
        self.deadlines.insert((p.deadline, p.id.clone()));
        if let Some(message) = stored.taken.as_ref().and_then(Taken::message) {
            self.by_message.insert(message.to_owned(), p.id.clone());
        }
        *self.source_refs.entry(p.source_hash).or_default() += 1;
        let replaced = self.entries.insert(
            p.id.clone(),
            Entry {
                stored,
                running: false,
                retry_at: None,
            },
        );
        if let Some(old) = replaced {
            self.unref(old.stored.conversation.source_hash);
        }
    }

    /// One conversation fewer refers to text `hash`.
    fn unref(&mut self, hash: u64) {
        if let Some(count) = self.source_refs.get_mut(&hash) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.source_refs.remove(&hash);
            }
        }
    }

    fn remove(&mut self, id: &str) -> Option<StoredConversation> {
        let entry = self.entries.remove(id)?;
        let p = &entry.stored.conversation;
        if let Some(room) = self.rooms.get_mut(&p.room) {
            room.remove(&(p.started, p.id.clone()));
            if room.is_empty() {
                self.rooms.remove(&p.room);
            }
        }
        self.deadlines.remove(&(p.deadline, p.id.clone()));
        if let Some(message) = entry.stored.taken.as_ref().and_then(Taken::message) {
            self.by_message.remove(message);
        }
        self.unref(entry.stored.conversation.source_hash);
        Some(entry.stored)
    }

    /// Marks `id` taken (or no longer taken) and keeps the index in step;
    /// the record to write, `None` when there is no such conversation.
    fn set_taken(
        &mut self,
        id: &str,
        taken: Option<Taken>,
        at: Option<DateTime<Utc>>,
    ) -> Option<&StoredConversation> {
        let entry = self.entries.get_mut(id)?;
        if let Some(message) = entry.stored.taken.as_ref().and_then(Taken::message) {
            self.by_message.remove(message);
        }
        if let Some(message) = taken.as_ref().and_then(Taken::message) {
            self.by_message.insert(message.to_owned(), id.to_owned());
        }
        entry.stored.taken = taken;
        entry.stored.taken_at = at;
        Some(&entry.stored)
    }

    /// Texts no kept conversation refers to any more (a look at the few
    /// texts kept, not at every conversation: it runs on every answer).
    fn unreferenced(&mut self) -> Vec<u64> {
        let gone: Vec<u64> = self
            .sources
            .keys()
            .filter(|h| !self.source_refs.contains_key(h))
            .copied()
            .collect();
        for h in &gone {
            self.sources.remove(h);
        }
        gone
    }
}

/// The pending conversations (see the module documentation).
pub struct Conversations {
    inner: Mutex<Inner>,
    store: Option<Arc<dyn ConversationStore>>,
    wake: Notify,
    max_per_person: usize,
}

impl Conversations {
    /// None pending, kept in memory only (`--ephemeral`, embedded agents).
    pub fn in_memory(max_per_person: usize) -> Conversations {
        Conversations {
            inner: Mutex::new(Inner::default()),
            store: None,
            wake: Notify::new(),
            max_per_person: max_per_person.max(1),
        }
    }

    /// Those kept in `store` from earlier runs, each given back its rules:
    /// the current ones when its rule is unchanged there, else its file's
    /// text as it was, compiled again. One that can have neither is
    /// dropped, logged as an error (it could never go on).
    pub fn open(
        store: Arc<dyn ConversationStore>,
        current: &Arc<Ruleset>,
        max_per_person: usize,
        now: DateTime<Utc>,
    ) -> Result<Conversations, StoreError> {
        let kept = store.load()?;
        let mut inner = Inner::default();
        let mut compiled: HashMap<u64, Arc<Ruleset>> = HashMap::new();
        let mut dropped = Vec::new();
        for (id, mut stored) in kept.conversations {
            let forgotten = stored.taken_at.is_some_and(|at| {
                stored.taken.as_ref().and_then(Taken::message).is_some()
                    && now - at > chrono::Duration::days(RETENTION_DAYS)
            });
            if forgotten {
                dropped.push(id);
                continue;
            }
            let p = &mut stored.conversation;
            if p.attach(current.clone()).is_err() {
                let attached = match compiled.get(&p.source_hash) {
                    Some(rules) => p.attach(rules.clone()),
                    None => match kept.sources.get(&p.source_hash) {
                        Some(text) => p.recompile(text).map(|rules| {
                            compiled.insert(p.source_hash, rules);
                        }),
                        None => Err(switchboard_engine::AttachError::RuleChanged {
                            id: p.id.clone(),
                            rule: p.rule.clone(),
                        }),
                    },
                };
                if let Err(e) = attached {
                    tracing::error!(conversation = %id, rule = %p.rule, error = %crate::error_chain::Chain(&e), "a pending conversation cannot go on (its rule changed and its file's text as it was is not kept); dropped");
                    dropped.push(id);
                    continue;
                }
            }
            inner.insert(stored);
        }
        for hash in kept.sources.keys() {
            inner.sources.insert(*hash, ());
        }
        let unreferenced = inner.unreferenced();
        let conversations = Conversations {
            inner: Mutex::new(inner),
            store: Some(store),
            wake: Notify::new(),
            max_per_person: max_per_person.max(1),
        };
        // Best effort: what is not dropped now is dropped at the next start.
        if let Some(store) = &conversations.store {
            for id in dropped {
                drop(store.apply(ConversationChange::Remove { id }));
            }
            for hash in unreferenced {
                drop(store.apply(ConversationChange::DropSource { hash }));
            }
        }
        let pending = conversations.len();
        if pending > 0 {
            tracing::info!(pending, "pending conversations kept from the last run");
        }
        Ok(conversations)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn write(&self, change: ConversationChange) -> Result<(), StoreError> {
        match &self.store {
            Some(store) => store.apply(change).await,
            None => Ok(()),
        }
    }

    fn put_change(stored: &StoredConversation) -> ConversationChange {
        ConversationChange::Put {
            conversation: Box::new(stored.clone()),
        }
    }

    /// How many are pending (not taken).
    pub fn len(&self) -> usize {
        self.lock()
            .entries
            .values()
            .filter(|e| e.stored.taken.is_none())
            .count()
    }

    /// True when none is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pending ones, oldest first.
    pub fn list(&self) -> Vec<Summary> {
        let inner = self.lock();
        let mut out: Vec<Summary> = inner
            .entries
            .values()
            .filter(|e| e.stored.taken.is_none())
            .map(|e| {
                let p = &e.stored.conversation;
                Summary {
                    id: p.id.clone(),
                    rule: p.rule.clone(),
                    room: p.room.clone(),
                    kind: p.kind.name(),
                    waiting_for: p.from.clone(),
                    deadline: p.deadline,
                    started: p.started,
                }
            })
            .collect();
        out.sort_by(|a, b| (a.started, &a.id).cmp(&(b.started, &b.id)));
        out
    }

    /// The conversation message `message` took earlier (it is served again
    /// after a crash or a failure), with what it took it with.
    pub fn taken_by(&self, message: &str) -> Option<(PendingConversation, Taken)> {
        let inner = self.lock();
        let e = inner.entries.get(inner.by_message.get(message)?)?;
        Some((e.stored.conversation.clone(), e.stored.taken.clone()?))
    }

    /// The conversations waiting in `room` for a message, oldest first.
    pub fn waiting_in(&self, room: &str) -> Vec<PendingConversation> {
        let inner = self.lock();
        let Some(ids) = inner.rooms.get(room) else {
            return Vec::new();
        };
        ids.iter()
            .filter_map(|(_, id)| inner.entries.get(id))
            .filter(|e| e.stored.taken.is_none() && e.stored.conversation.kind != PauseKind::Wait)
            .map(|e| e.stored.conversation.clone())
            .collect()
    }

    /// The conversations waiting in `room` that `check` accepts, oldest
    /// first: their ids with what `check` said. Checked in place: each holds
    /// the event and room it started with, and copying every one of a room's
    /// for each message costs far more than checking them.
    pub fn answered_in<T>(
        &self,
        room: &str,
        mut check: impl FnMut(&PendingConversation) -> Option<T>,
    ) -> Vec<(String, T)> {
        let inner = self.lock();
        let Some(ids) = inner.rooms.get(room) else {
            return Vec::new();
        };
        ids.iter()
            .filter_map(|(_, id)| inner.entries.get(id))
            .filter(|e| e.stored.taken.is_none() && e.stored.conversation.kind != PauseKind::Wait)
            .filter_map(|e| {
                check(&e.stored.conversation).map(|t| (e.stored.conversation.id.clone(), t))
            })
            .collect()
    }

    /// Marks conversation `id` taken (by a message, or its deadline), durably,
    /// and returns it; `None` when someone else took it first.
    pub async fn take(
        &self,
        id: &str,
        taken: Taken,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingConversation>, StoreError> {
        let change = {
            let mut inner = self.lock();
            if inner
                .entries
                .get(id)
                .is_none_or(|e| e.stored.taken.is_some())
            {
                return Ok(None);
            }
            let Some(stored) = inner.set_taken(id, Some(taken), Some(now)) else {
                return Ok(None);
            };
            (stored.conversation.clone(), Self::put_change(stored))
        };
        self.write(change.1).await?;
        Ok(Some(change.0))
    }

    /// Keeps the conversations that paused (durably, with their files'
    /// texts); one already kept (the same pause reached again after a
    /// crash) stays as it is. Past the cap per room and person, the oldest
    /// is ended: its deadline becomes now, so the timer runs its `on_timeout`.
    pub async fn keep(&self, pending: Vec<PendingConversation>) -> Result<(), StoreError> {
        for p in pending {
            let (source, hash, file) = {
                let inner = self.lock();
                if inner.entries.contains_key(&p.id) {
                    continue;
                }
                (
                    !inner.sources.contains_key(&p.source_hash),
                    p.source_hash,
                    p.file.clone(),
                )
            };
            if source && self.store.is_some() {
                match tokio::fs::read_to_string(&file).await {
                    Ok(text) if switchboard_workflow::compile::source_hash(&text) == hash => {
                        self.write(ConversationChange::Source { hash, text })
                            .await?;
                        self.lock().sources.insert(hash, ());
                    }
                    Ok(_) => {
                        tracing::warn!(file = %file.display(), conversation = %p.id, "the workflow file changed since it was loaded; if its rule changes too before this conversation ends, a restart cannot finish it")
                    }
                    Err(e) => {
                        tracing::warn!(file = %file.display(), conversation = %p.id, error = %e, "cannot read the workflow file to keep its text with the conversation; if its rule changes before it ends, a restart cannot finish it")
                    }
                }
            }
            let stored = StoredConversation {
                conversation: p,
                taken: None,
                taken_at: None,
            };
            let change = Self::put_change(&stored);
            let over = {
                let mut inner = self.lock();
                let over = self.over_cap(&inner, &stored.conversation);
                inner.insert(stored);
                over
            };
            self.write(change).await?;
            for id in over {
                self.end_early(&id).await?;
            }
        }
        self.wake.notify_one();
        Ok(())
    }

    /// Who a conversation waits on, for the cap: the person who started it.
    fn person(p: &PendingConversation) -> String {
        match &p.bound.reply_to {
            Some(sender) => sender.id.clone(),
            None => p.from.join(","),
        }
    }

    /// The oldest conversations to end so that `new` fits the cap of its
    /// room and person (`wait`s wait for no one and do not count).
    fn over_cap(&self, inner: &Inner, new: &PendingConversation) -> Vec<String> {
        if new.kind == PauseKind::Wait {
            return Vec::new();
        }
        let person = Self::person(new);
        let Some(ids) = inner.rooms.get(&new.room) else {
            return Vec::new();
        };
        let same: Vec<&String> = ids
            .iter()
            .filter_map(|(_, id)| inner.entries.get(id))
            .filter(|e| {
                let p = &e.stored.conversation;
                e.stored.taken.is_none() && p.kind != PauseKind::Wait && Self::person(p) == person
            })
            .map(|e| &e.stored.conversation.id)
            .collect();
        let excess = (same.len() + 1).saturating_sub(self.max_per_person);
        same.into_iter().take(excess).cloned().collect()
    }

    /// Moves the deadline of `id` to now (the cap ended it).
    async fn end_early(&self, id: &str) -> Result<(), StoreError> {
        let change = {
            let mut inner = self.lock();
            let Some(mut stored) = inner.remove(id) else {
                return Ok(());
            };
            tracing::warn!(
                conversation = %id, rule = %stored.conversation.rule, room = %stored.conversation.room,
                person = %Self::person(&stored.conversation), max = self.max_per_person,
                "too many pending conversations for this person in this room (--max-pending-per-person); the oldest ends now with its on_timeout"
            );
            stored.conversation.deadline = Utc::now();
            let change = Self::put_change(&stored);
            inner.insert(stored);
            change
        };
        self.write(change).await
    }

    /// The conversation re-prompted by a message: waiting on, re-prompted,
    /// still taken by that message until it settles.
    pub async fn reprompted(&self, p: PendingConversation) -> Result<(), StoreError> {
        let change = {
            let mut inner = self.lock();
            let Some(entry) = inner.entries.get_mut(&p.id) else {
                return Ok(());
            };
            entry.stored.conversation.reprompted = p.reprompted;
            Self::put_change(&entry.stored)
        };
        self.write(change).await
    }

    /// Message `message` is processed on the platform: a conversation it
    /// answered ends, one it got the re-prompt of waits again.
    pub fn settled(&self, message: &str) {
        let mut changes = Vec::new();
        {
            let mut inner = self.lock();
            let Some(id) = inner.by_message.get(message).cloned() else {
                return;
            };
            let answered = inner
                .entries
                .get(&id)
                .is_some_and(|e| matches!(e.stored.taken, Some(Taken::Answer { .. })));
            if answered {
                inner.remove(&id);
                changes.push(ConversationChange::Remove { id });
                changes.extend(
                    inner
                        .unreferenced()
                        .into_iter()
                        .map(|hash| ConversationChange::DropSource { hash }),
                );
            } else if let Some(stored) = inner.set_taken(&id, None, None) {
                changes.push(Self::put_change(stored));
            }
        }
        if let Some(store) = &self.store {
            // Nobody waits for these: a crash before they are on disk leaves
            // a taken conversation nobody takes again (see the module doc).
            for change in changes {
                drop(store.apply(change));
            }
        }
        self.wake.notify_one();
    }

    /// Conversation `id` finished after its deadline: dropped (durably).
    pub async fn finished(&self, id: &str) -> Result<(), StoreError> {
        let gone = {
            let mut inner = self.lock();
            inner.remove(id);
            inner.unreferenced()
        };
        self.write(ConversationChange::Remove { id: id.to_owned() })
            .await?;
        for hash in gone {
            self.write(ConversationChange::DropSource { hash }).await?;
        }
        Ok(())
    }

    /// Takes every conversation whose deadline passed by `now` (and those
    /// taken by their deadline before a crash), durably; they are the
    /// timer's to run.
    async fn take_due(&self, now: DateTime<Utc>) -> Result<Vec<PendingConversation>, StoreError> {
        let mut due = Vec::new();
        let mut changes = Vec::new();
        {
            let mut inner = self.lock();
            let ids: Vec<String> = inner
                .deadlines
                .iter()
                .take_while(|(deadline, _)| *deadline <= now)
                .map(|(_, id)| id.clone())
                .chain(
                    inner
                        .entries
                        .values()
                        .filter(|e| matches!(e.stored.taken, Some(Taken::Deadline)))
                        .map(|e| e.stored.conversation.id.clone()),
                )
                .collect();
            for id in ids {
                let Some(entry) = inner.entries.get_mut(&id) else {
                    continue;
                };
                match &entry.stored.taken {
                    None => {
                        // A deadline takes no message: no index to keep.
                        entry.stored.taken = Some(Taken::Deadline);
                        entry.stored.taken_at = Some(now);
                        changes.push(Self::put_change(&entry.stored));
                    }
                    Some(Taken::Deadline)
                        if !entry.running && entry.retry_at.is_none_or(|at| at <= now) => {}
                    _ => continue,
                }
                entry.retry_at = None;
                entry.running = true;
                due.push(entry.stored.conversation.clone());
            }
        }
        for change in changes {
            self.write(change).await?;
        }
        Ok(due)
    }

    /// The next deadline of a conversation nobody took, or the next retry
    /// of one whose room was stopped.
    fn next_deadline(&self) -> Option<DateTime<Utc>> {
        let inner = self.lock();
        let deadline = inner
            .deadlines
            .iter()
            .find(|(_, id)| {
                inner
                    .entries
                    .get(id)
                    .is_some_and(|e| e.stored.taken.is_none())
            })
            .map(|(deadline, _)| *deadline);
        let retry = inner
            .entries
            .values()
            .filter(|e| !e.running)
            .filter_map(|e| e.retry_at)
            .min();
        deadline.into_iter().chain(retry).min()
    }

    /// The deadline of `id` could not run (its room is stopped): it runs
    /// again at `at`, skipping what it did (journaled).
    pub fn retry_later(&self, id: &str, at: DateTime<Utc>) {
        if let Some(entry) = self.lock().entries.get_mut(id) {
            entry.running = false;
            entry.retry_at = Some(at);
        }
        self.wake.notify_one();
    }

    /// For the reload's log line: how many are pending and how many of those
    /// have a rule that `next` changes or drops.
    pub fn on_reload(&self, next: &Ruleset) -> PendingOnReload {
        let inner = self.lock();
        let pending: Vec<&PendingConversation> = inner
            .entries
            .values()
            .filter(|e| e.stored.taken.is_none())
            .map(|e| &e.stored.conversation)
            .collect();
        PendingOnReload {
            pending: pending.len(),
            rule_changed: pending.iter().filter(|p| p.rule_in(next).is_none()).count(),
        }
    }
}

/// Runs a conversation whose deadline passed (the rules handler does, in
/// the conversation's room): what [`spawn_timers`] calls.
pub trait DeadlineRunner: Send + Sync + 'static {
    /// The conversations whose deadlines it runs.
    fn conversations(&self) -> &Arc<Conversations>;
    /// Runs `p`'s `on_timeout` (for `wait`, the rest of its list).
    fn run_deadline(
        self: Arc<Self>,
        p: PendingConversation,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
}

/// Starts the timer task: it sleeps until the earliest deadline (or until a
/// conversation is kept or settles), then runs every conversation whose
/// deadline passed, each on its own task, outside any message lifecycle. A
/// deadline already past (the agent was down, the clock jumped) fires at
/// once, once. One whose room is stopped runs again a minute later.
pub fn spawn_timers<H: DeadlineRunner>(handler: Arc<H>) -> JoinHandle<()> {
    crate::task::spawn(async move {
        let conversations = handler.conversations().clone();
        loop {
            let woken = conversations.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let now = Utc::now();
            match conversations.take_due(now).await {
                Ok(due) => {
                    // Each on its own task: a slow `on_timeout` holds no other.
                    for p in due {
                        crate::task::spawn(handler.clone().run_deadline(p));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %crate::error_chain::Chain(&e), "cannot mark a conversation's deadline as taken; retrying in a second");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            }
            match conversations.next_deadline() {
                Some(next) => {
                    // A wall clock that jumps ahead is seen at the next wake;
                    // sleep at most a minute so it is seen soon.
                    let wait = (next - Utc::now())
                        .to_std()
                        .unwrap_or_default()
                        .min(std::time::Duration::from_secs(60));
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = woken => {}
                    }
                }
                None => woken.await,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FLOW: &str = "version: 1\nrules:\n  - name: r\n    on: message_created\n    do:\n      - wait_for: { timeout: 1m }\n      - reply: done\n";

    /// A conversation paused at `r#do0` in `room`, started `at`, due `deadline`.
    fn pending(id: &str, room: &str, at: &str, deadline: &str) -> PendingConversation {
        let rules = Arc::new(switchboard_workflow::load_str("f.yaml", FLOW).unwrap());
        let rule = rules.rule("f/r").unwrap();
        let mut p: PendingConversation = serde_json::from_value(json!({
            "id": id, "rule": "f/r", "fingerprint": rule.fingerprint, "file": "f.yaml",
            "source_hash": rule.source_hash, "kind": "wait_for",
            "at": {"branch": "do", "index": 0}, "room": room, "from": ["bob"],
            "started": at, "deadline": deadline,
            "bound": {"event_type": "message_created", "event": {}}
        }))
        .unwrap();
        p.attach(rules).unwrap();
        p
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn a_deadline_in_the_past_fires_once_and_answers_are_offered_oldest_first() {
        let c = Conversations::in_memory(10);
        c.keep(vec![
            pending("b", "room", "2026-01-01T00:00:02Z", "2026-01-01T01:00:00Z"),
            pending("a", "room", "2026-01-01T00:00:01Z", "2026-01-01T02:00:00Z"),
            pending("c", "other", "2026-01-01T00:00:00Z", "2026-01-01T03:00:00Z"),
        ])
        .await
        .unwrap();
        let ids = |v: Vec<PendingConversation>| v.into_iter().map(|p| p.id).collect::<Vec<_>>();
        assert_eq!(ids(c.waiting_in("room")), ["a", "b"]);
        assert_eq!(c.next_deadline(), Some(t("2026-01-01T01:00:00Z")));
        // The clock jumped far ahead: every deadline passed, each fires once.
        let now = t("2027-01-01T00:00:00Z");
        assert_eq!(ids(c.take_due(now).await.unwrap()), ["b", "a", "c"]);
        assert!(c.take_due(now).await.unwrap().is_empty());
        assert!(
            c.waiting_in("room").is_empty(),
            "taken: not offered to messages"
        );
        assert_eq!(c.len(), 0);
        c.finished("b").await.unwrap();
        assert_eq!(c.next_deadline(), None);
    }

    #[tokio::test]
    async fn a_deadline_whose_room_is_stopped_runs_again_later() {
        let c = Conversations::in_memory(10);
        c.keep(vec![pending(
            "a",
            "room",
            "2026-01-01T00:00:00Z",
            "2026-01-01T01:00:00Z",
        )])
        .await
        .unwrap();
        let now = t("2026-01-01T01:00:00Z");
        assert_eq!(c.take_due(now).await.unwrap().len(), 1);
        let later = t("2026-01-01T01:01:00Z");
        c.retry_later("a", later);
        assert_eq!(c.next_deadline(), Some(later));
        assert!(c.take_due(now).await.unwrap().is_empty());
        assert_eq!(c.take_due(later).await.unwrap().len(), 1);
        assert!(c.take_due(later).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_answer_is_taken_once_and_dropped_when_its_message_settles() {
        let c = Conversations::in_memory(10);
        let p = pending("a", "room", "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z");
        c.keep(vec![p.clone()]).await.unwrap();
        let now = t("2026-01-01T00:10:00Z");
        let answer = Taken::Answer {
            message: "m2".into(),
            value: json!({"content": "42"}),
        };
        assert!(c.take("a", answer.clone(), now).await.unwrap().is_some());
        // Neither a second message nor the deadline can take it now.
        assert!(c.take("a", Taken::Deadline, now).await.unwrap().is_none());
        assert!(c
            .take_due(t("2026-01-01T02:00:00Z"))
            .await
            .unwrap()
            .is_empty());
        // Served again, m2 finds what it took.
        assert_eq!(
            c.taken_by("m2").map(|(p, t)| (p.id, t)),
            Some(("a".to_owned(), answer))
        );
        // The same pause reached again (a resumed run) is not kept twice.
        c.keep(vec![p]).await.unwrap();
        assert_eq!(c.lock().entries.len(), 1);
        c.settled("m2");
        assert!(c.taken_by("m2").is_none());
        assert!(c.lock().entries.is_empty());
    }

    #[test]
    fn a_workflow_text_is_dropped_once_no_conversation_refers_to_it() {
        let stored = |id: &str, hash: u64| {
            let mut p = pending(id, "room", "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z");
            p.source_hash = hash;
            StoredConversation {
                conversation: p,
                taken: None,
                taken_at: None,
            }
        };
        let mut inner = Inner::default();
        inner.sources.insert(1, ());
        inner.sources.insert(2, ());
        inner.sources.insert(3, ());
        inner.insert(stored("a", 1));
        inner.insert(stored("b", 1));
        inner.insert(stored("c", 2));
        assert_eq!(
            inner.unreferenced(),
            [3],
            "no conversation paused in text 3"
        );
        // The same conversation kept again (a resumed run) counts once.
        inner.insert(stored("a", 1));
        inner.remove("a");
        assert!(inner.unreferenced().is_empty(), "b still refers to text 1");
        inner.remove("b");
        inner.remove("b");
        assert_eq!(inner.unreferenced(), [1]);
        inner.remove("c");
        assert_eq!(inner.unreferenced(), [2]);
        assert!(inner.sources.is_empty());
    }

    #[tokio::test]
    async fn a_reprompt_waits_on_once_its_message_settles() {
        let c = Conversations::in_memory(10);
        c.keep(vec![pending(
            "a",
            "room",
            "2026-01-01T00:00:00Z",
            "2026-01-01T01:00:00Z",
        )])
        .await
        .unwrap();
        let now = t("2026-01-01T00:10:00Z");
        let mut p = c
            .take(
                "a",
                Taken::Reprompt {
                    message: "m2".into(),
                },
                now,
            )
            .await
            .unwrap()
            .unwrap();
        p.reprompted = true;
        c.reprompted(p).await.unwrap();
        assert!(c.waiting_in("room").is_empty());
        c.settled("m2");
        let waiting = c.waiting_in("room");
        assert_eq!(waiting.len(), 1);
        assert!(waiting[0].reprompted);
    }
}
