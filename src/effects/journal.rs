//! The action journal on disk: an append-only file of JSON lines, one per
//! record, written by a dedicated thread ([`super::writer`]) that syncs each
//! batch once; a record's future resolves only when its line is synced, so
//! a "sent" record is durable before the action it guards goes out. Opening
//! replays the lines (a torn last line from a crash is ignored) and rewrites
//! the file without the messages already settled; the writer does the same
//! while running, every [`COMPACT_AFTER_SETTLED`] settled messages, so the
//! file stays bounded. A file with lines that are not journal records is
//! damaged: it is renamed aside (`journal.damaged-<time>`), never overwritten,
//! and a warning says so.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_engine::journal::{self, Durable, JournalError, JournalStore, Record};
use switchboard_workflow::secrets::Redaction;

use super::writer::{Sink, Writer};

/// Settled messages after which the writer compacts the file while running
/// (each costs ~440 bytes of sent, done and settle lines): the bound on the
/// file's size beyond the messages still open.
pub const COMPACT_AFTER_SETTLED: usize = 64;

/// One queued line, and whether it settles a message (what compaction counts).
pub struct Queued {
    bytes: Vec<u8>,
    settles: bool,
}

/// One line of the file (the format journals of earlier versions use too).
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
    /// When the message was first seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<DateTime<Utc>>,
}

impl From<Record> for Line {
    fn from(record: Record) -> Line {
        let line = |m, k, done, sent, at| Line {
            m,
            k: Some(k),
            done,
            sent,
            settled: false,
            at,
        };
        match record {
            Record::Sent { message, step, at } => line(message, step, None, true, at),
            Record::Done {
                message,
                step,
                result,
                at,
            } => line(message, step, Some(result), false, at),
            Record::Settled { message } => Line {
                m: message,
                k: None,
                done: None,
                sent: false,
                settled: true,
                at: None,
            },
        }
    }
}

impl Line {
    /// The record this line holds; `None` for lines that say nothing.
    fn record(self) -> Option<Record> {
        if self.settled {
            return Some(Record::Settled { message: self.m });
        }
        let step = self.k?;
        match self.done {
            Some(result) => Some(Record::Done {
                message: self.m,
                step,
                result,
                at: self.at,
            }),
            None if self.sent => Some(Record::Sent {
                message: self.m,
                step,
                at: self.at,
            }),
            None => None,
        }
    }

    fn bytes(record: Record) -> io::Result<Vec<u8>> {
        let mut bytes = serde_json::to_vec(&Line::from(record)).map_err(io::Error::other)?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    fn queued(record: Record) -> io::Result<Queued> {
        let settles = matches!(record, Record::Settled { .. });
        Ok(Queued {
            bytes: Line::bytes(record)?,
            settles,
        })
    }
}

/// The file behind the writer thread.
struct JournalSink {
    path: PathBuf,
    file: File,
    /// A failed write may have left part of a line: the next batch starts
    /// on a fresh line so its first record is not glued to the fragment.
    torn: bool,
    /// Settled messages written since the file was last compacted.
    settled: usize,
    /// Compact once `settled` reaches this.
    bound: usize,
    /// How many times the file was synced (shared with [`JournalFile`]).
    syncs: Arc<AtomicU64>,
    /// Lines were written since the last sync (settles only).
    unsynced: bool,
}

impl Sink for JournalSink {
    type Item = Queued;

    fn write_batch(&mut self, lines: Vec<Queued>) -> io::Result<()> {
        // Nobody waits for a settle, and one lost in a crash is harmless (the
        // message is forgotten at the next start all the same): a batch of
        // settles only is written without an fsync of its own, so the next
        // message's "sent" record does not queue behind one. The next synced
        // batch, a flush or the writer's end makes it durable.
        let lazy = lines.iter().all(|q| q.settles);
        let mut bytes = Vec::with_capacity(lines.iter().map(|q| q.bytes.len()).sum::<usize>() + 1);
        if self.torn {
            bytes.push(b'\n');
        }
        for line in lines {
            self.settled += usize::from(line.settles);
            bytes.extend_from_slice(&line.bytes);
        }
        let result = self.file.write_all(&bytes).and_then(|()| match lazy {
            true => {
                self.unsynced = true;
                Ok(())
            }
            false => self.sync_now(),
        });
        self.torn = result.is_err();
        result?;
        if self.settled >= self.bound {
            // The batch is durable either way; a failed compaction only
            // leaves the file longer, so it is logged, not reported.
            // Compaction rewrites the file synced: nothing is left unsynced.
            match self.compact() {
                Ok(()) => self.settled = 0,
                Err(e) => {
                    // Try again after as many settles more, not on every batch.
                    self.settled = 0;
                    tracing::warn!(file = %self.path.display(), error = %crate::error_chain::Chain(&e), "cannot compact the action journal; it keeps growing until the next try");
                }
            }
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        match self.unsynced {
            true => self.sync_now(),
            false => Ok(()),
        }
    }
}

impl JournalSink {
    /// `fdatasync`: everything written so far is durable.
    fn sync_now(&mut self) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.file.sync_data()?;
        self.unsynced = false;
        Ok(())
    }

    /// Rewrites the file with only the messages still open (temp file,
    /// rename), then appends to the new file. Runs on the writer thread,
    /// the file's only writer, so no record can slip in between.
    fn compact(&mut self) -> io::Result<()> {
        let (records, _) = read(&self.path)?;
        compact_into(&self.path, records)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.torn = false;
        self.unsynced = false;
        Ok(())
    }
}

/// Makes the file at `path` hold only the records of `records` still open.
fn compact_into(path: &Path, records: Vec<Record>) -> io::Result<()> {
    let mut text = Vec::new();
    for record in journal::still_open(records, Utc::now()) {
        text.extend(Line::bytes(record)?);
    }
    replace(path, &path.with_extension("compacting"), &text)
}

/// The journal kept in a file (see the module documentation).
pub struct JournalFile {
    path: PathBuf,
    writer: Writer<Queued>,
    syncs: Arc<AtomicU64>,
    /// Secrets in a result (an `http` body echoing one) are written as `[secret:NAME]`.
    redaction: Redaction,
}

impl JournalFile {
    /// Opens (or creates) the journal at `path`: replays it, rewrites it with
    /// only the messages still open, and starts its writer thread. A damaged
    /// file is renamed aside first (and a warning logged).
    pub fn open(path: &Path) -> Result<JournalFile, JournalError> {
        JournalFile::open_bounded(path, COMPACT_AFTER_SETTLED)
    }

    /// [`JournalFile::open`], compacting after `bound` settled messages.
    pub fn open_bounded(path: &Path, bound: usize) -> Result<JournalFile, JournalError> {
        let err = |source| JournalError {
            path: path.to_owned(),
            source,
        };
        let (records, damaged) = read(path).map_err(err)?;
        if damaged > 0 {
            let aside = keep_aside(path).map_err(err)?;
            tracing::warn!(
                file = %path.display(),
                kept = %aside.display(),
                damaged_lines = damaged,
                usable_records = records.len(),
                "the action journal is damaged (lines that are not journal records); the file is kept aside \
                 as evidence and a new journal starts from the records that could be read: a message it \
                 no longer knows about may be answered twice"
            );
        }
        // Compact: write what is still open aside, then swap files atomically.
        compact_into(path, records).map_err(err)?;
        let file = OpenOptions::new().append(true).open(path).map_err(err)?;
        let syncs = Arc::new(AtomicU64::new(0));
        let sink = JournalSink {
            path: path.to_owned(),
            file,
            torn: false,
            settled: 0,
            bound: bound.max(1),
            syncs: syncs.clone(),
            unsynced: false,
        };
        let writer = Writer::spawn("journal-writer", sink).map_err(err)?;
        Ok(JournalFile {
            path: path.to_owned(),
            writer,
            syncs,
            redaction: Redaction::new(),
        })
    }

    /// Writes secrets (as they are then) as `[secret:NAME]`.
    pub fn with_redaction(mut self, redaction: Redaction) -> Self {
        self.redaction = redaction;
        self
    }

    /// Resolves once every record queued so far is durable (at shutdown,
    /// for the settle records nobody waits for).
    pub async fn flush(&self) -> Result<(), JournalError> {
        self.writer
            .flush()
            .await
            .map_err(|source| self.error(source))
    }

    /// How many batches were written (each one write and one fsync).
    pub fn batches(&self) -> u64 {
        self.writer.batches()
    }

    /// How many times the writer synced the file (appends; compaction aside).
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    fn error(&self, source: io::Error) -> JournalError {
        JournalError {
            path: self.path.clone(),
            source,
        }
    }
}

impl JournalStore for JournalFile {
    fn recorded(&self) -> Result<Vec<Record>, JournalError> {
        // Called at start-up: what is queued (normally nothing) lands first.
        self.writer
            .flush_blocking()
            .map_err(|source| self.error(source))?;
        read(&self.path)
            .map(|(records, _)| records)
            .map_err(|source| self.error(source))
    }

    fn record(&self, mut record: Record) -> Durable {
        if let Record::Done { result, .. } = &mut record {
            self.redaction.current().redact_value(result);
        }
        let path = self.path.clone();
        let err = move |source| JournalError { path, source };
        let bytes = match Line::queued(record) {
            Ok(bytes) => bytes,
            Err(e) => return Box::pin(std::future::ready(Err(err(e)))),
        };
        let (ack, done) = tokio::sync::oneshot::channel();
        // Queued here, not when the future is first polled (see JournalStore::record).
        let queued = self.writer.send(
            Some(bytes),
            Some(Box::new(move |r| {
                let _ = ack.send(r);
            })),
        );
        Box::pin(async move {
            if !queued {
                return Err(err(io::Error::other("the journal writer has stopped")));
            }
            match done.await {
                Ok(result) => result.map_err(err),
                Err(_) => Err(err(io::Error::other("the journal writer has stopped"))),
            }
        })
    }
}

/// Every record in the file, in order, and how many lines are damaged (not
/// a journal record). A last line without its newline is a write torn by a
/// crash, not damage: it is skipped silently.
fn read(path: &Path) -> io::Result<(Vec<Record>, usize)> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let complete = bytes.ends_with(b"\n");
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    let last = lines.len().saturating_sub(1);
    let mut records = Vec::new();
    let mut damaged = 0;
    for (i, line) in lines.into_iter().enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Line>(line)
            .ok()
            .and_then(Line::record)
        {
            Some(record) => records.push(record),
            None if i == last && !complete => {}
            None => damaged += 1,
        }
    }
    Ok((records, damaged))
}

/// Renames the damaged file at `path` to `<path>.damaged-<UTC time>`, never
/// over an existing file; the new name.
pub(crate) fn keep_aside(path: &Path) -> io::Result<PathBuf> {
    let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".damaged-{stamp}"));
    let aside = PathBuf::from(name);
    if aside.exists() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists already", aside.display()),
        ));
    }
    std::fs::rename(path, &aside)?;
    Ok(aside)
}

/// Makes `path` hold exactly `bytes`, atomically: written and synced at
/// `tmp`, renamed over `path`, the folder synced so the rename is durable.
pub(crate) fn replace(path: &Path, tmp: &Path, bytes: &[u8]) -> io::Result<()> {
    {
        let mut out = File::create(tmp)?;
        out.write_all(bytes)?;
        out.sync_all()?;
    }
    std::fs::rename(tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Best effort: some platforms cannot open a folder to sync it.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;
    use switchboard_engine::journal::{Journal, Step};

    fn open(path: &Path) -> (Arc<JournalFile>, Journal) {
        let file = Arc::new(JournalFile::open(path).unwrap());
        let journal = Journal::backed_by(file.clone()).unwrap();
        (file, journal)
    }

    #[tokio::test]
    async fn survives_reopen_and_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        {
            let (file, j) = open(&path);
            j.sent("m1", "r#do0").await.unwrap();
            j.done("m1", "r#do0", &json!({"id": "x"})).await.unwrap();
            j.sent("m1", "r#do1").await.unwrap();
            j.done("m2", "r#do0", &json!(1)).await.unwrap();
            j.settled("m2");
            file.flush().await.unwrap();
        }
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"m":"m1","k":"r#do1","do"#).unwrap();
        drop(f);
        let (_file, j) = open(&path);
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

    #[tokio::test]
    async fn a_settle_nobody_waits_for_is_written_by_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        {
            let (_file, j) = open(&path);
            j.done("m1", "r#do0", &json!(1)).await.unwrap();
            j.settled("m1");
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"settled\":true"), "{text}");
    }

    #[tokio::test]
    async fn concurrent_records_share_one_fsync_and_are_durable_when_acknowledged() {
        use futures_util::FutureExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let (file, j) = open(&path);
        // Hold the writer thread so the records below queue up together.
        let (release, held) = std::sync::mpsc::channel::<()>();
        assert!(file.writer.send(
            None,
            Some(Box::new(move |_| {
                let _ = held.recv();
            })),
        ));
        let before = file.batches();
        let ids: Vec<String> = (0..32).map(|i| format!("m{i}")).collect();
        let all = futures_util::future::join_all(ids.iter().map(|m| j.sent(m, "r#do0")));
        let mut all = std::pin::pin!(all);
        // One poll queues every record; none is acknowledged while held.
        assert!(all.as_mut().now_or_never().is_none());
        release.send(()).unwrap();
        for result in all.await {
            result.unwrap();
        }
        // Acknowledged means written and synced: a reader sees every record.
        let (on_disk, _) = read(&path).unwrap();
        assert_eq!(on_disk.len(), 32);
        assert_eq!(
            file.batches() - before,
            1,
            "one write and one fsync for all"
        );
        assert_eq!(j.step("m31", "r#do0"), Some(Step::Sent));
    }

    /// Waits (bounded) until the file holds `needle`.
    async fn until_written(path: &Path, needle: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !std::fs::read_to_string(path).unwrap().contains(needle) {
            assert!(
                std::time::Instant::now() < deadline,
                "{needle} never written"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_settle_costs_no_fsync_of_its_own_and_is_synced_by_the_next_record_or_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let (file, j) = open(&path);
        j.sent("m1", "r#do0").await.unwrap();
        j.done("m1", "r#do0", &json!(1)).await.unwrap();
        let synced = file.syncs();
        // Nobody waits for a settle: written, but not synced on its own.
        j.settled("m1");
        until_written(&path, r#"{"m":"m1","settled":true}"#).await;
        assert_eq!(file.syncs(), synced, "a settle alone costs no fsync");
        // The next record waited for syncs it too (one fsync for the file).
        j.sent("m2", "r#do0").await.unwrap();
        assert_eq!(file.syncs(), synced + 1);
        // A flush syncs a settle nothing else synced, and only then.
        j.done("m2", "r#do0", &json!(2)).await.unwrap();
        j.settled("m2");
        until_written(&path, r#"{"m":"m2","settled":true}"#).await;
        let before = file.syncs();
        file.flush().await.unwrap();
        assert_eq!(file.syncs(), before + 1, "flush syncs what was written");
        file.flush().await.unwrap();
        assert_eq!(file.syncs(), before + 1, "nothing left to sync");
    }

    #[tokio::test]
    async fn a_damaged_journal_is_kept_aside_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let good = r#"{"m":"m1","k":"r#do0","sent":true}"#;
        let text = format!("garbage\n{good}\n{{\"m\":3}}\n");
        std::fs::write(&path, &text).unwrap();
        let (_file, j) = open(&path);
        assert_eq!(j.step("m1", "r#do0"), Some(Step::Sent), "good records kept");
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("journal.damaged-")
            })
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(std::fs::read_to_string(aside[0].path()).unwrap(), text);
        // A torn last line alone is not damage.
        let torn = dir.path().join("torn");
        std::fs::write(&torn, format!("{good}\n{{\"m\":\"m2\",\"k")).unwrap();
        assert_eq!(read(&torn).unwrap().1, 0);
    }

    #[tokio::test]
    async fn the_file_is_compacted_while_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let file = Arc::new(JournalFile::open_bounded(&path, 10).unwrap());
        let j = Journal::backed_by(file.clone()).unwrap();
        j.sent("open", "r#do0").await.unwrap();
        let mut largest = 0;
        for i in 0..100 {
            let m = format!("m{i}");
            j.sent(&m, "r#do0").await.unwrap();
            j.done(&m, "r#do0", &json!({"id": i})).await.unwrap();
            j.settled(&m);
            file.flush().await.unwrap();
            largest = largest.max(std::fs::metadata(&path).unwrap().len());
        }
        // Ten settled messages of three lines each, plus the open one.
        assert!(largest < 31 * 64, "grew to {largest} bytes");
        drop(j);
        let (records, damaged) = read(&path).unwrap();
        assert_eq!(damaged, 0);
        let open = journal::still_open(records, Utc::now());
        assert_eq!(open.len(), 1, "{open:?}");
    }
}
