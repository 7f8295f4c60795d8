//! The action journal: per message id, which actions of which rule finished
//! (with their results) and which were sent but not yet confirmed. A message
//! the platform serves again after a crash or a failure resumes from here:
//! finished actions are not repeated (their results are reused for `as:`),
//! and an action whose outcome is unknown is looked for on the platform
//! before it is sent again.
//!
//! On disk it is an append-only file of JSON lines, each written with one
//! `write` and synced before the action it guards goes on; opening it replays
//! the lines (a torn last line from a crash is ignored) and rewrites it
//! without the messages already settled.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Messages not settled for this long are dropped at the next open (they
/// were given up on; their journal only costs memory).
const RETENTION_DAYS: i64 = 7;

/// What the journal knows about one step (one action of one rule).
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Sent, outcome unknown (the process stopped before confirming it).
    Sent,
    /// Finished, with its result.
    Done(Value),
}

/// Why the journal cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("action journal {path}: {source}")]
pub struct JournalError {
    /// The file.
    pub path: PathBuf,
    /// Cause.
    #[source]
    pub source: std::io::Error,
}

/// One line of the file.
#[derive(Debug, Serialize, Deserialize)]
struct Line {
    /// Message id.
    m: String,
    /// Step key (`rule#do0`); absent on the settle line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<String>,
    /// The result, on a done line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    done: Option<Value>,
    /// True on a sent line.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    sent: bool,
    /// True when the message is settled (processed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    settled: bool,
    /// When the message was first seen (first line of a message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<DateTime<Utc>>,
}

#[derive(Debug, Default)]
struct Entry {
    first: Option<DateTime<Utc>>,
    steps: HashMap<String, Step>,
}

#[derive(Debug, Default)]
struct Inner {
    file: Option<File>,
    messages: HashMap<String, Entry>,
}

/// The journal; in memory only, or backed by a file.
#[derive(Debug)]
pub struct Journal {
    path: Option<PathBuf>,
    inner: Mutex<Inner>,
}

impl Journal {
    /// A journal that lives as long as the process (retries after a failure
    /// still resume; a crash forgets).
    pub fn in_memory() -> Journal {
        Journal {
            path: None,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Opens (or creates) the journal at `path`, replaying what it holds.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        let err = |source| JournalError {
            path: path.to_owned(),
            source,
        };
        let mut messages: HashMap<String, Entry> = HashMap::new();
        match File::open(path) {
            Ok(f) => {
                for line in BufReader::new(f).split(b'\n') {
                    let line = line.map_err(err)?;
                    // A line cut short by a crash (or garbage) is skipped.
                    let Ok(line) = serde_json::from_slice::<Line>(&line) else {
                        continue;
                    };
                    apply(&mut messages, line);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
        let cutoff = Utc::now() - Duration::days(RETENTION_DAYS);
        messages.retain(|_, e| e.first.is_none_or(|t| t > cutoff));
        // Compact: rewrite what is still open, then swap files atomically.
        let tmp = path.with_extension("compacting");
        {
            let mut out = File::create(&tmp).map_err(err)?;
            let mut text = String::new();
            for (m, entry) in &messages {
                for (k, step) in &entry.steps {
                    let line = Line {
                        m: m.clone(),
                        k: Some(k.clone()),
                        done: match step {
                            Step::Done(v) => Some(v.clone()),
                            Step::Sent => None,
                        },
                        sent: *step == Step::Sent,
                        settled: false,
                        at: entry.first,
                    };
                    text.push_str(&serde_json::to_string(&line).unwrap_or_default());
                    text.push('\n');
                }
            }
            out.write_all(text.as_bytes()).map_err(err)?;
            out.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, path).map_err(err)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The rename is durable once the folder is synced.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        let file = OpenOptions::new().append(true).open(path).map_err(err)?;
        Ok(Journal {
            path: Some(path.to_owned()),
            inner: Mutex::new(Inner {
                file: Some(file),
                messages,
            }),
        })
    }

    /// What is known about `step` of `message`.
    pub fn step(&self, message: &str, step: &str) -> Option<Step> {
        self.lock()
            .messages
            .get(message)
            .and_then(|e| e.steps.get(step))
            .cloned()
    }

    /// Records that `step` is about to be sent; synced before returning.
    pub fn sent(&self, message: &str, step: &str) -> Result<(), JournalError> {
        self.write(Line {
            m: message.to_owned(),
            k: Some(step.to_owned()),
            done: None,
            sent: true,
            settled: false,
            at: Some(Utc::now()),
        })
    }

    /// Records that `step` finished with `result`; synced before returning.
    pub fn done(&self, message: &str, step: &str, result: &Value) -> Result<(), JournalError> {
        self.write(Line {
            m: message.to_owned(),
            k: Some(step.to_owned()),
            done: Some(result.clone()),
            sent: false,
            settled: false,
            at: Some(Utc::now()),
        })
    }

    /// Forgets `message`: the platform has it as processed.
    pub fn settled(&self, message: &str) {
        let known = self.lock().messages.contains_key(message);
        if !known {
            return;
        }
        let line = Line {
            m: message.to_owned(),
            k: None,
            done: None,
            sent: false,
            settled: true,
            at: None,
        };
        if let Err(e) = self.write(line) {
            // Not fatal: the entry is dropped at the next open's retention cut.
            tracing::warn!(error = %e, "cannot record a settled message in the journal");
        }
    }

    /// How many messages have open entries.
    pub fn open_messages(&self) -> usize {
        self.lock().messages.len()
    }

    fn write(&self, line: Line) -> Result<(), JournalError> {
        let mut inner = self.lock();
        if let Some(file) = inner.file.as_mut() {
            let mut text = serde_json::to_string(&line).unwrap_or_default();
            text.push('\n');
            let res = file
                .write_all(text.as_bytes())
                .and_then(|()| file.sync_data());
            if let Err(source) = res {
                return Err(JournalError {
                    path: self.path.clone().unwrap_or_default(),
                    source,
                });
            }
        }
        apply(&mut inner.messages, line);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn apply(messages: &mut HashMap<String, Entry>, line: Line) {
    if line.settled {
        messages.remove(&line.m);
        return;
    }
    let entry = messages.entry(line.m).or_default();
    if entry.first.is_none() {
        entry.first = line.at;
    }
    if let Some(k) = line.k {
        match line.done {
            Some(v) => {
                entry.steps.insert(k, Step::Done(v));
            }
            None if line.sent => {
                entry.steps.entry(k).or_insert(Step::Sent);
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn survives_reopen_and_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        {
            let j = Journal::open(&path).unwrap();
            j.sent("m1", "r#do0").unwrap();
            j.done("m1", "r#do0", &json!({"id": "x"})).unwrap();
            j.sent("m1", "r#do1").unwrap();
            j.done("m2", "r#do0", &json!(1)).unwrap();
            j.settled("m2");
        }
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"m":"m1","k":"r#do1","do"#).unwrap();
        drop(f);
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.step("m1", "r#do0"), Some(Step::Done(json!({"id": "x"}))));
        assert_eq!(j.step("m1", "r#do1"), Some(Step::Sent));
        assert_eq!(
            j.step("m2", "r#do0"),
            None,
            "settled messages are forgotten"
        );
        assert_eq!(j.open_messages(), 1);
        // Compacted: only m1's two steps remain on disk.
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
    }
}
