//! A value kept as a snapshot file (JSON) plus a log of changes next to it
//! (`<file>.log`, JSON lines): the shape of both the state file and the
//! pending conversations' file. Loading replays the log over the snapshot (a
//! line cut short by a crash is skipped); compacting writes the snapshot
//! (temp file + rename) and then empties the log. Every line sets or drops a
//! whole value, so a crash between the two replays a log the snapshot
//! already holds, which changes nothing. [`LogSink`] is the writer thread's
//! side of such a pair for a value that says how a line folds into it ([`Fold`]).

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::journal::replace;

/// Why a snapshot or its log cannot be loaded.
#[derive(Debug)]
pub enum LoadFailure {
    /// A file could not be read.
    Read(PathBuf, io::Error),
    /// The snapshot is not the JSON it should be.
    Parse(PathBuf, serde_json::Error),
}

/// The snapshot, its log and the temporary file of a compaction.
#[derive(Debug, Clone)]
pub struct SnapshotLog {
    /// The snapshot.
    pub snapshot: PathBuf,
    /// The change log next to it.
    pub log: PathBuf,
    tmp: PathBuf,
}

impl SnapshotLog {
    /// The files for the snapshot at `snapshot`.
    pub fn new(snapshot: &Path) -> SnapshotLog {
        let beside = |suffix: &str| {
            let mut name = OsString::from(snapshot.as_os_str());
            name.push(suffix);
            PathBuf::from(name)
        };
        SnapshotLog {
            snapshot: snapshot.to_owned(),
            log: beside(".log"),
            tmp: beside(".tmp"),
        }
    }

    /// The snapshot (`T::default()` when absent) with each line of the log
    /// applied by `apply`, and the number of lines applied.
    pub fn load<T, L>(&self, mut apply: impl FnMut(&mut T, L)) -> Result<(T, usize), LoadFailure>
    where
        T: DeserializeOwned + Default,
        L: DeserializeOwned,
    {
        let mut kept: T = match std::fs::read(&self.snapshot) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| LoadFailure::Parse(self.snapshot.clone(), e))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => T::default(),
            Err(e) => return Err(LoadFailure::Read(self.snapshot.clone(), e)),
        };
        let mut lines = 0;
        match File::open(&self.log) {
            Ok(f) => {
                for line in BufReader::new(f).split(b'\n') {
                    let line = line.map_err(|e| LoadFailure::Read(self.log.clone(), e))?;
                    // A line cut short by a crash is skipped.
                    let Ok(line) = serde_json::from_slice::<L>(&line) else {
                        continue;
                    };
                    lines += 1;
                    apply(&mut kept, line);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(LoadFailure::Read(self.log.clone(), e)),
        }
        Ok((kept, lines))
    }

    /// Writes `kept` as the snapshot (temp file + rename), then empties the
    /// log (`log`, the writer's open handle, or the file by its path).
    pub fn compact<T: Serialize + ?Sized>(&self, kept: &T, log: Option<&File>) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(kept).map_err(io::Error::other)?;
        replace(&self.snapshot, &self.tmp, &bytes)?;
        match log {
            Some(log) => log.set_len(0),
            None => match OpenOptions::new().write(true).open(&self.log) {
                Ok(f) => f.set_len(0),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            },
        }
    }
}

/// A value kept as a snapshot plus a log: what a log line changes in it.
pub trait Fold: Serialize + DeserializeOwned + Default + Send + 'static {
    /// One line of the log.
    type Line: Serialize + DeserializeOwned + Send + 'static;

    /// Applies one line (replaying a line the value already holds changes nothing).
    fn apply(&mut self, line: Self::Line);

    /// Drops what is no longer needed (before each compaction); true when
    /// something was dropped.
    fn prune(&mut self) -> bool {
        false
    }
}

/// Why a snapshot and its log cannot be opened for writing.
#[derive(Debug)]
pub enum OpenFailure {
    /// They cannot be loaded.
    Load(LoadFailure),
    /// A file cannot be written (compacted, opened for appending) or the
    /// writer thread not started.
    Write(PathBuf, io::Error),
}

impl OpenFailure {
    /// The file that could not be used.
    pub fn path(&self) -> &Path {
        match self {
            OpenFailure::Load(LoadFailure::Read(path, _) | LoadFailure::Parse(path, _))
            | OpenFailure::Write(path, _) => path,
        }
    }

    /// What went wrong with it.
    pub fn reason(&self) -> String {
        match self {
            OpenFailure::Load(LoadFailure::Read(_, e)) => format!("cannot read: {e}"),
            OpenFailure::Load(LoadFailure::Parse(_, e)) => format!("not readable as JSON: {e}"),
            OpenFailure::Write(_, e) => format!("cannot write: {e}"),
        }
    }
}

/// The log behind a writer thread ([`super::writer`]), with a copy of the
/// value to compact from; every batch is synced.
pub struct LogSink<T: Fold> {
    paths: SnapshotLog,
    log: File,
    kept: T,
    lines: usize,
    bound: usize,
    torn: bool,
    /// What the files hold, for logs ("throttle windows").
    what: &'static str,
}

impl SnapshotLog {
    /// Loads the value, folds the log into the snapshot when it has lines
    /// (or a torn fragment) or pruning dropped something, and opens the log
    /// for appending: the sink of a writer thread that compacts past `bound`
    /// lines. `what` names the files' content in logs.
    pub fn open_sink<T: Fold>(
        &self,
        bound: usize,
        what: &'static str,
    ) -> Result<LogSink<T>, OpenFailure> {
        let (mut kept, lines) = self.load(T::apply).map_err(OpenFailure::Load)?;
        // A torn fragment alone counts too: a line appended to it would be lost.
        let torn = std::fs::metadata(&self.log).is_ok_and(|m| m.len() > 0);
        let pruned = kept.prune();
        if lines > 0 || torn || pruned {
            self.compact(&kept, None)
                .map_err(|e| OpenFailure::Write(self.snapshot.clone(), e))?;
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| OpenFailure::Write(self.log.clone(), e))?;
        Ok(LogSink {
            paths: self.clone(),
            log,
            kept,
            lines: 0,
            bound,
            torn: false,
            what,
        })
    }
}

impl<T: Fold> super::writer::Sink for LogSink<T> {
    type Item = T::Line;

    fn write_batch(&mut self, lines: Vec<T::Line>) -> io::Result<()> {
        let mut bytes = Vec::new();
        if self.torn {
            // Start after whatever fragment a failed write left.
            bytes.push(b'\n');
        }
        let count = lines.len();
        for line in lines {
            serde_json::to_writer(&mut bytes, &line).map_err(io::Error::other)?;
            bytes.push(b'\n');
            self.kept.apply(line);
        }
        let result = self
            .log
            .write_all(&bytes)
            .and_then(|()| self.log.sync_data());
        self.torn = result.is_err();
        if let Err(e) = &result {
            // Memory is right; what a restart sees may be older.
            tracing::warn!(path = %self.paths.log.display(), error = %crate::error_chain::Chain(&e), "cannot save the {}", self.what);
            return result;
        }
        self.lines += count;
        if self.lines > self.bound {
            self.kept.prune();
            match self.paths.compact(&self.kept, Some(&self.log)) {
                Ok(()) => self.lines = 0,
                // The log stays whole; compaction is tried again next batch.
                Err(e) => {
                    tracing::warn!(path = %self.paths.snapshot.display(), error = %crate::error_chain::Chain(&e), "cannot compact the {}", self.what)
                }
            }
        }
        Ok(())
    }
}
