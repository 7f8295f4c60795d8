//! A value kept as a snapshot file (JSON) plus a log of changes next to it
//! (`<file>.log`, JSON lines): the shape of both the state file and the
//! pending conversations' file. Loading replays the log over the snapshot (a
//! line cut short by a crash is skipped); compacting writes the snapshot
//! (temp file + rename) and then empties the log. Every line sets or drops a
//! whole value, so a crash between the two replays a log the snapshot
//! already holds, which changes nothing.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader};
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
