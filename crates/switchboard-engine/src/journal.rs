//! The action journal: per message id, which actions of which rule finished
//! (with their results) and which were sent but not yet confirmed. A message
//! the platform serves again after a crash or a failure resumes from here:
//! finished actions are not repeated (their results are reused for `as:`),
//! and an action whose outcome is unknown is looked for on the platform
//! before it is sent again.
//!
//! This module keeps the journal in memory; where records are kept across
//! restarts is a [`JournalStore`] the binary provides (the engine does no I/O).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

/// Messages not settled for this long are dropped when the journal is
/// loaded (they were given up on; their journal only costs memory).
pub const RETENTION_DAYS: i64 = 7;

/// What the journal knows about one step (one action of one rule).
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Sent, outcome unknown (the process stopped before confirming it).
    Sent,
    /// Finished, with its result.
    Done(Value),
}

/// One fact recorded in the journal, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// `step` of `message` is about to be sent.
    Sent {
        /// Message id.
        message: String,
        /// Step key (`rule#do0`).
        step: String,
        /// When the message was first seen (retention counts from it).
        at: Option<DateTime<Utc>>,
    },
    /// `step` of `message` finished with `result`.
    Done {
        /// Message id.
        message: String,
        /// Step key (`rule#do0`).
        step: String,
        /// What it returned (bound by `as:`).
        result: Value,
        /// When the message was first seen (retention counts from it).
        at: Option<DateTime<Utc>>,
    },
    /// `message` is processed on the platform; it can be forgotten.
    Settled {
        /// Message id.
        message: String,
    },
}

/// Why the journal cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("action journal {path}")]
pub struct JournalError {
    /// Where the journal is kept (a file, for the binary's store).
    pub path: PathBuf,
    /// Cause.
    #[source]
    pub source: std::io::Error,
}

/// Resolves once a record is durable (or could not be made so).
pub type Durable = Pin<Box<dyn Future<Output = Result<(), JournalError>> + Send + 'static>>;

/// Where journal records outlive the process. The binary implements it on a
/// file; the engine only calls it.
pub trait JournalStore: Send + Sync {
    /// Every record kept from earlier runs, oldest first.
    fn recorded(&self) -> Result<Vec<Record>, JournalError>;

    /// Queues `record` behind those recorded before; the returned future
    /// resolves when it is durable. The record is queued even if the future
    /// is dropped unawaited (what fire-and-forget records such as
    /// [`Record::Settled`] rely on).
    fn record(&self, record: Record) -> Durable;
}

#[derive(Debug, Default)]
struct Entry {
    first: Option<DateTime<Utc>>,
    steps: HashMap<String, Step>,
}

/// The journal: in memory, optionally backed by a [`JournalStore`].
pub struct Journal {
    messages: Mutex<HashMap<String, Entry>>,
    store: Option<Arc<dyn JournalStore>>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("open_messages", &self.open_messages())
            .field("persistent", &self.store.is_some())
            .finish()
    }
}

impl Journal {
    /// A journal that lives as long as the process (retries after a failure
    /// still resume; a crash forgets).
    pub fn in_memory() -> Journal {
        Journal {
            messages: Mutex::new(HashMap::new()),
            store: None,
        }
    }

    /// A journal kept in `store`, starting from what it recorded before.
    pub fn backed_by(store: Arc<dyn JournalStore>) -> Result<Journal, JournalError> {
        let messages = fold(store.recorded()?, Utc::now());
        Ok(Journal {
            messages: Mutex::new(messages),
            store: Some(store),
        })
    }

    /// What is known about `step` of `message`.
    pub fn step(&self, message: &str, step: &str) -> Option<Step> {
        self.lock()
            .get(message)
            .and_then(|e| e.steps.get(step))
            .cloned()
    }

    /// Records that `step` is about to be sent; durable when this returns.
    pub async fn sent(&self, message: &str, step: &str) -> Result<(), JournalError> {
        self.write(Record::Sent {
            message: message.to_owned(),
            step: step.to_owned(),
            at: Some(Utc::now()),
        })
        .await
    }

    /// Records that `step` finished with `result`; durable when this returns.
    pub async fn done(
        &self,
        message: &str,
        step: &str,
        result: &Value,
    ) -> Result<(), JournalError> {
        self.write(Record::Done {
            message: message.to_owned(),
            step: step.to_owned(),
            result: result.clone(),
            at: Some(Utc::now()),
        })
        .await
    }

    /// Forgets `message`: the platform has it as processed. Not waited for:
    /// a settle lost in a crash only leaves an entry the next load's
    /// retention cut drops.
    pub fn settled(&self, message: &str) {
        if self.lock().remove(message).is_none() {
            return;
        }
        if let Some(store) = &self.store {
            // Queued at once; dropping the future does not cancel it.
            drop(store.record(Record::Settled {
                message: message.to_owned(),
            }));
        }
    }

    /// How many messages have open entries.
    pub fn open_messages(&self) -> usize {
        self.lock().len()
    }

    /// Like [`Journal::done`], but the store keeps only `durable` (a cut-down
    /// `result`, e.g. without a large `http` body): this process resumes with
    /// the whole result, a restarted one with what was kept.
    pub async fn done_keeping(
        &self,
        message: &str,
        step: &str,
        result: &Value,
        durable: &Value,
    ) -> Result<(), JournalError> {
        let at = Some(Utc::now());
        if let Some(store) = &self.store {
            store
                .record(Record::Done {
                    message: message.to_owned(),
                    step: step.to_owned(),
                    result: durable.clone(),
                    at,
                })
                .await?;
        }
        apply(
            &mut self.lock(),
            Record::Done {
                message: message.to_owned(),
                step: step.to_owned(),
                result: result.clone(),
                at,
            },
        );
        Ok(())
    }

    async fn write(&self, record: Record) -> Result<(), JournalError> {
        if let Some(store) = &self.store {
            store.record(record.clone()).await?;
        }
        // Only what is durable is believed (as a failed write fails the action).
        apply(&mut self.lock(), record);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.messages.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The records still needed after `records` (oldest first): the steps of
/// messages not settled and first seen within [`RETENTION_DAYS`] of `now`,
/// one record per step. What a store keeps when it compacts.
pub fn still_open(records: Vec<Record>, now: DateTime<Utc>) -> Vec<Record> {
    let messages = fold(records, now);
    let mut out = Vec::new();
    for (message, entry) in messages {
        for (step, s) in entry.steps {
            out.push(match s {
                Step::Sent => Record::Sent {
                    message: message.clone(),
                    step,
                    at: entry.first,
                },
                Step::Done(result) => Record::Done {
                    message: message.clone(),
                    step,
                    result,
                    at: entry.first,
                },
            });
        }
    }
    out
}

fn fold(records: Vec<Record>, now: DateTime<Utc>) -> HashMap<String, Entry> {
    let mut messages = HashMap::new();
    for record in records {
        apply(&mut messages, record);
    }
    let cutoff = now - Duration::days(RETENTION_DAYS);
    messages.retain(|_, e| e.first.is_none_or(|t| t > cutoff));
    messages
}

fn apply(messages: &mut HashMap<String, Entry>, record: Record) {
    let (message, step, s, at) = match record {
        Record::Settled { message } => {
            messages.remove(&message);
            return;
        }
        Record::Sent { message, step, at } => (message, step, Step::Sent, at),
        Record::Done {
            message,
            step,
            result,
            at,
        } => (message, step, Step::Done(result), at),
    };
    let entry = messages.entry(message).or_default();
    if entry.first.is_none() {
        entry.first = at;
    }
    match s {
        // A later "sent" never hides a finished step.
        Step::Sent => {
            entry.steps.entry(step).or_insert(Step::Sent);
        }
        done => {
            entry.steps.insert(step, done);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sent(m: &str, k: &str, at: DateTime<Utc>) -> Record {
        Record::Sent {
            message: m.into(),
            step: k.into(),
            at: Some(at),
        }
    }

    #[test]
    fn still_open_keeps_unsettled_recent_steps_once() {
        let now = Utc::now();
        let old = now - Duration::days(RETENTION_DAYS + 1);
        let records = vec![
            sent("m1", "r#do0", now),
            Record::Done {
                message: "m1".into(),
                step: "r#do0".into(),
                result: json!({"id": "x"}),
                at: Some(now),
            },
            sent("m1", "r#do0", now),
            sent("m1", "r#do1", now),
            sent("m2", "r#do0", now),
            Record::Settled {
                message: "m2".into(),
            },
            sent("m3", "r#do0", old),
        ];
        let mut open = still_open(records, now);
        open.sort_by_key(|r| format!("{r:?}"));
        assert_eq!(open.len(), 2, "{open:?}");
        let journal = Journal::in_memory();
        for r in open {
            apply(&mut journal.lock(), r);
        }
        assert_eq!(
            journal.step("m1", "r#do0"),
            Some(Step::Done(json!({"id": "x"})))
        );
        assert_eq!(journal.step("m1", "r#do1"), Some(Step::Sent));
        assert_eq!(journal.open_messages(), 1);
    }
}
