//! Pending conversations on disk, in the state directory: a snapshot (JSON:
//! the conversations by id and the workflow texts they paused in, by hash)
//! and a change log next to it (`<file>.log`, JSON lines), appended and
//! synced by a dedicated thread ([`super::writer`]). Every line sets or drops
//! a whole value, so a crash during compaction (which replays a log the
//! snapshot already holds) changes nothing. Loading is the snapshot plus the
//! log (a torn last line from a crash is skipped); the log is folded into
//! the snapshot at open and past [`COMPACT_AFTER`] lines.

use std::path::Path;
use switchboard_workflow::secrets::{Redaction, Redactor};

use switchboard_engine::conversation::{
    ConversationChange, ConversationStore, ConversationStoreError, DurableChange,
    StoredConversations,
};

use super::snapshot_log::{Fold, OpenFailure, SnapshotLog};
use super::writer::Writer;

/// Log lines after which the writer folds the log into the snapshot.
pub const COMPACT_AFTER: usize = 1_000;

/// The snapshot with the log replayed over it, and the log's line count.
fn load(paths: &SnapshotLog) -> Result<(StoredConversations, usize), ConversationStoreError> {
    paths.load(StoredConversations::apply).map_err(|failure| {
        let failure = OpenFailure::Load(failure);
        error(failure.path(), failure.reason())
    })
}

fn error(path: &Path, message: String) -> ConversationStoreError {
    ConversationStoreError {
        place: path.display().to_string(),
        message,
    }
}

/// Every change is synced with its batch: a taken conversation must be on
/// disk before its answer's actions go out (see `rules::conversations`).
impl Fold for StoredConversations {
    type Line = ConversationChange;

    fn apply(&mut self, change: ConversationChange) {
        StoredConversations::apply(self, change);
    }
}

/// The pending conversations kept in files (see the module documentation).
pub struct ConversationFile {
    paths: SnapshotLog,
    writer: Writer<ConversationChange>,
    redaction: Redaction,
}

impl ConversationFile {
    /// Opens the file at `path` (absent: nothing pending), folds its log into
    /// it, and starts the writer thread.
    pub fn open(path: &Path) -> Result<ConversationFile, ConversationStoreError> {
        ConversationFile::open_bounded(path, COMPACT_AFTER)
    }

    /// [`ConversationFile::open`] with the log compacted past `bound` lines.
    pub fn open_bounded(
        path: &Path,
        bound: usize,
    ) -> Result<ConversationFile, ConversationStoreError> {
        let paths = SnapshotLog::new(path);
        let sink = paths
            .open_sink::<StoredConversations>(bound, "pending conversations")
            .map_err(|e| error(e.path(), e.reason()))?;
        let writer = Writer::spawn("conversations-writer", sink)
            .map_err(|e| error(&paths.log, format!("cannot start its writer: {e}")))?;
        Ok(ConversationFile {
            paths,
            writer,
            redaction: Redaction::new(),
        })
    }

    /// Writes secrets (in an answer, an `as:` result) as `[secret:NAME]`:
    /// the conversation in memory keeps its values, the file never has them.
    pub fn with_redaction(mut self, redaction: Redaction) -> Self {
        self.redaction = redaction;
        self
    }

    /// Resolves once every change queued so far is on disk (at shutdown).
    pub async fn flush(&self) -> Result<(), ConversationStoreError> {
        self.writer
            .flush()
            .await
            .map_err(|e| error(&self.paths.log, format!("cannot write: {e}")))
    }
}

impl ConversationStore for ConversationFile {
    fn load(&self) -> Result<StoredConversations, ConversationStoreError> {
        self.writer
            .flush_blocking()
            .map_err(|e| error(&self.paths.log, format!("cannot write: {e}")))?;
        Ok(load(&self.paths)?.0)
    }

    fn apply(&self, change: ConversationChange) -> DurableChange {
        let change = redacted(change, &self.redaction.current());
        let (ack, done) = tokio::sync::oneshot::channel();
        let sent = self.writer.send(
            Some(change),
            Some(Box::new(move |r| {
                let _ = ack.send(r);
            })),
        );
        let log = self.paths.log.clone();
        Box::pin(async move {
            if !sent {
                return Err(error(&log, "its writer has stopped".into()));
            }
            match done.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(error(&log, format!("cannot write: {e}"))),
                Err(_) => Err(error(&log, "its writer has stopped".into())),
            }
        })
    }
}

/// `change` with every secret value in it shown as `[secret:NAME]`.
pub(crate) fn redacted(change: ConversationChange, redactor: &Redactor) -> ConversationChange {
    if redactor.is_empty() {
        return change;
    }
    let Ok(mut value) = serde_json::to_value(&change) else {
        return change;
    };
    redactor.redact_value(&mut value);
    serde_json::from_value(value).unwrap_or(change)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::io::Write;

    #[test]
    fn a_torn_last_line_is_skipped_and_the_log_is_folded_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conversations");
        {
            let file = ConversationFile::open_bounded(&path, 2).unwrap();
            for hash in 0..5u64 {
                let done = file.apply(ConversationChange::Source {
                    hash,
                    text: format!("text {hash}"),
                });
                futures_lite_block(done).unwrap();
            }
            let done = file.apply(ConversationChange::DropSource { hash: 1 });
            futures_lite_block(done).unwrap();
        }
        let mut log = OpenOptions::new()
            .append(true)
            .open(dir.path().join("conversations.log"))
            .unwrap();
        log.write_all(b"{\"op\":\"drop_sou").unwrap();
        let file = ConversationFile::open(&path).unwrap();
        let kept = file.load().unwrap();
        assert_eq!(
            kept.sources.keys().copied().collect::<Vec<_>>(),
            [0, 2, 3, 4]
        );
        let log = std::fs::read_to_string(dir.path().join("conversations.log")).unwrap();
        assert!(log.is_empty(), "{log}");
    }

    #[test]
    fn secrets_are_written_as_their_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conversations");
        let redaction = Redaction::new();
        let mut values = switchboard_workflow::secrets::SecretValues::new();
        values.insert("token", "s3cr3t-value");
        redaction.set(values);
        let file = ConversationFile::open(&path)
            .unwrap()
            .with_redaction(redaction);
        let done = file.apply(ConversationChange::Source {
            hash: 7,
            text: "an answer quoting s3cr3t-value".into(),
        });
        futures_lite_block(done).unwrap();
        let log = std::fs::read_to_string(dir.path().join("conversations.log")).unwrap();
        assert!(!log.contains("s3cr3t-value"), "{log}");
        assert!(log.contains("[secret:token]"), "{log}");
    }

    /// Waits for a durability future on a test thread.
    fn futures_lite_block(f: DurableChange) -> Result<(), ConversationStoreError> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }
}
