//! The rules' state on disk: a snapshot (the JSON object of earlier
//! versions, `{key: {value, expires}}`) and, next to it, a log of the changes
//! since (`<file>.log`, JSON lines), appended by a dedicated thread
//! ([`super::writer`]) so a `set` costs one queued line, not a rewrite of the
//! whole file on the async path. Loading is the snapshot plus the log
//! replayed (a torn last line from a crash is ignored). The log is folded
//! into the snapshot (temp file + rename, then the log truncated) at open and
//! whenever it grows past a bound.

use std::io;
use std::path::Path;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use switchboard_engine::state::{Change, Entries, StateError, StatePersistence, Stored};
use switchboard_workflow::secrets::Redaction;

use super::snapshot_log::{Fold, LoadFailure, OpenFailure, SnapshotLog};
use super::writer::Writer;

/// Log lines after which the writer folds the log into the snapshot: a
/// bound on the log's size and on the replay at the next start.
pub const COMPACT_AFTER: usize = 10_000;

/// One line of the log.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLine {
    /// `key` holds `stored`.
    Set {
        /// The key.
        key: String,
        /// Its value and expiry.
        #[serde(flatten)]
        stored: Stored,
    },
    /// `key` is gone.
    Unset {
        /// The key.
        key: String,
    },
}

impl From<Change> for LogLine {
    fn from(change: Change) -> LogLine {
        match change {
            Change::Set { key, stored } => LogLine::Set { key, stored },
            Change::Unset { key } => LogLine::Unset { key },
        }
    }
}

/// The snapshot with the log replayed over it, and the log's line count.
fn load(paths: &SnapshotLog) -> Result<(Entries, usize), StateError> {
    paths.load(<Entries as Fold>::apply).map_err(load_error)
}

fn load_error(failure: LoadFailure) -> StateError {
    match failure {
        LoadFailure::Read(path, source) => StateError::Read { path, source },
        LoadFailure::Parse(path, source) => StateError::Parse { path, source },
    }
}

fn write_error(path: &Path) -> impl Fn(io::Error) -> StateError {
    let path = path.to_owned();
    move |source| StateError::Write {
        path: path.clone(),
        source,
    }
}

impl Fold for Entries {
    type Line = LogLine;

    fn apply(&mut self, line: LogLine) {
        match line {
            LogLine::Set { key, stored } => {
                self.insert(key, stored);
            }
            LogLine::Unset { key } => {
                self.remove(&key);
            }
        }
    }

    /// Expired keys are not written into the snapshot.
    fn prune(&mut self) -> bool {
        let now = Utc::now();
        let before = self.len();
        self.retain(|_, e| e.live(now));
        self.len() != before
    }
}

/// The state kept in files (see the module documentation).
pub struct StateFile {
    paths: SnapshotLog,
    writer: Writer<LogLine>,
    /// Secrets in a key or value are written as `[secret:NAME]`.
    redaction: Redaction,
}

impl StateFile {
    /// Opens the state at `path` (absent: empty), folds its log into it, and
    /// starts the writer thread; the log is compacted past [`COMPACT_AFTER`] lines.
    pub fn open(path: &Path) -> Result<StateFile, StateError> {
        StateFile::open_bounded(path, COMPACT_AFTER)
    }

    /// [`StateFile::open`] with the log compacted past `bound` lines.
    pub fn open_bounded(path: &Path, bound: usize) -> Result<StateFile, StateError> {
        let paths = SnapshotLog::new(path);
        let sink = paths
            .open_sink::<Entries>(bound, "state")
            .map_err(|failure| match failure {
                OpenFailure::Load(failure) => load_error(failure),
                OpenFailure::Write(path, source) => StateError::Write { path, source },
            })?;
        let writer = Writer::spawn("state-writer", sink).map_err(write_error(&paths.log))?;
        Ok(StateFile {
            paths,
            writer,
            redaction: Redaction::new(),
        })
    }

    /// Writes secrets (as they are then) as `[secret:NAME]`.
    pub fn with_redaction(mut self, redaction: Redaction) -> Self {
        self.redaction = redaction;
        self
    }

    /// The change log next to the snapshot.
    pub fn log_path(&self) -> &Path {
        &self.paths.log
    }

    /// Resolves once every change queued so far is on disk (at shutdown).
    pub async fn flush(&self) -> Result<(), StateError> {
        self.writer
            .flush()
            .await
            .map_err(write_error(&self.paths.log))
    }

    /// [`StateFile::flush`], blocking the calling thread.
    pub fn flush_blocking(&self) -> Result<(), StateError> {
        self.writer
            .flush_blocking()
            .map_err(write_error(&self.paths.log))
    }
}

impl StatePersistence for StateFile {
    fn load(&self) -> Result<Entries, StateError> {
        // Called at start-up: what is queued (normally nothing) lands first.
        self.flush_blocking()?;
        Ok(load(&self.paths)?.0)
    }

    fn apply(&self, mut change: Change) {
        let redactor = self.redaction.current();
        if !redactor.is_empty() {
            match &mut change {
                Change::Set { key, stored } => {
                    *key = redactor.redact(key).into_owned();
                    redactor.redact_value(&mut stored.value);
                }
                Change::Unset { key } => *key = redactor.redact(key).into_owned(),
            }
        }
        if !self.writer.send(Some(LogLine::from(change)), None) {
            tracing::warn!(path = %self.paths.log.display(), "cannot save state: its writer has stopped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::fs::OpenOptions;
    use std::io::Write;
    use std::sync::Arc;
    use std::time::Duration;
    use switchboard_engine::StateStore;

    fn store(file: &Arc<StateFile>) -> StateStore {
        StateStore::persisted(file.clone()).unwrap()
    }

    #[test]
    fn survives_a_restart_through_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let now = Utc::now();
        {
            let file = Arc::new(StateFile::open(&path).unwrap());
            let s = store(&file);
            s.incr("n", 5, None, now).unwrap();
            s.set("gone", json!(1), Some(Duration::from_secs(1)), now);
            s.set("x", json!("y"), None, now);
            s.unset("x");
            // Dropped without compaction: only the log has the changes.
        }
        assert!(!path.exists(), "no snapshot was written");
        let log = std::fs::read_to_string(dir.path().join("state.json.log")).unwrap();
        assert_eq!(log.lines().count(), 4, "{log}");
        let file = Arc::new(StateFile::open(&path).unwrap());
        let s = store(&file);
        assert_eq!(s.get("n", now), Some(json!(5)));
        let snap = s.snapshot(now + chrono::Duration::seconds(5));
        assert_eq!(snap, json!({"n": 5}));
        // Opening folded the log into the snapshot.
        assert_eq!(std::fs::read_to_string(file.log_path()).unwrap(), "");
    }

    #[test]
    fn a_torn_last_log_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let now = Utc::now();
        {
            let file = Arc::new(StateFile::open(&path).unwrap());
            store(&file).set("a", json!(1), None, now);
        }
        let mut log = OpenOptions::new()
            .append(true)
            .open(dir.path().join("state.json.log"))
            .unwrap();
        log.write_all(br#"{"set":{"key":"b","val"#).unwrap();
        drop(log);
        let file = Arc::new(StateFile::open(&path).unwrap());
        let s = store(&file);
        assert_eq!(s.snapshot(now), json!({"a": 1}));
        // A later change is not glued to the fragment (open compacted it away).
        s.set("c", json!(2), None, now);
        drop(s);
        drop(file);
        let file = Arc::new(StateFile::open(&path).unwrap());
        assert_eq!(store(&file).snapshot(now), json!({"a": 1, "c": 2}));
    }

    #[test]
    fn a_torn_fragment_alone_in_the_log_does_not_swallow_the_next_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let now = Utc::now();
        {
            let file = Arc::new(StateFile::open(&path).unwrap());
            store(&file).set("a", json!(1), None, now);
        }
        // Opening folds that line into the snapshot: the log is empty.
        drop(StateFile::open(&path).unwrap());
        let mut log = OpenOptions::new()
            .append(true)
            .open(dir.path().join("state.json.log"))
            .unwrap();
        log.write_all(br#"{"set":{"key":"b","val"#).unwrap();
        drop(log);
        {
            let file = Arc::new(StateFile::open(&path).unwrap());
            store(&file).set("c", json!(2), None, now);
        }
        let file = Arc::new(StateFile::open(&path).unwrap());
        assert_eq!(store(&file).snapshot(now), json!({"a": 1, "c": 2}));
    }

    #[test]
    fn compaction_bounds_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let now = Utc::now();
        let file = Arc::new(StateFile::open_bounded(&path, 10).unwrap());
        let s = store(&file);
        for i in 0..100 {
            s.incr("n", 1, None, now).unwrap();
            s.set(&format!("k{}", i % 5), json!(i), None, now);
            file.flush_blocking().unwrap();
            let lines = std::fs::read_to_string(file.log_path())
                .unwrap()
                .lines()
                .count();
            assert!(lines <= 11, "{lines} lines in the log after {i} rounds");
        }
        // The snapshot alone (the log emptied by hand) holds a recent state.
        drop(s);
        drop(file);
        let snapshot: Entries = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert!(snapshot["n"].value.as_i64().unwrap() > 80, "{snapshot:?}");
        let file = Arc::new(StateFile::open(&path).unwrap());
        assert_eq!(store(&file).get("n", now), Some(json!(100)));
    }

    #[test]
    fn a_state_file_of_the_earlier_format_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(
            &path,
            r#"{"n": {"value": 3}, "t": {"value": "x", "expires": "2999-01-01T00:00:00Z"}}"#,
        )
        .unwrap();
        let file = Arc::new(StateFile::open(&path).unwrap());
        let s = store(&file);
        assert_eq!(s.snapshot(Utc::now()), json!({"n": 3, "t": "x"}));
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "{not json").unwrap();
        assert!(matches!(
            StateFile::open(&path),
            Err(StateError::Parse { .. })
        ));
    }
}
