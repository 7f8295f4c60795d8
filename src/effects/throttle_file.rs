//! Throttle windows on disk, in the state directory (`throttles`): a
//! snapshot (a JSON array of runs) and a log of the runs allowed since
//! (`throttles.log`, one run a line), appended and synced by a dedicated
//! thread ([`super::writer`]) so recording a run never waits on the disk.
//! The runs are kept as a set, so a crash during compaction (which replays a
//! log the snapshot already holds) counts no run twice. Runs whose window
//! has ended are dropped at open and at each compaction (past
//! [`COMPACT_AFTER`] lines).

use std::collections::BTreeSet;
use std::path::Path;

use chrono::Utc;
use switchboard_engine::throttle::{ThrottleError, ThrottlePersistence, ThrottleRun};
use switchboard_workflow::secrets::Redaction;

use super::snapshot_log::{Fold, OpenFailure, SnapshotLog};
use super::writer::Writer;

/// Log lines after which the writer folds the log into the snapshot.
pub const COMPACT_AFTER: usize = 10_000;

/// The runs kept, oldest first within a (rule, key).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
struct Runs(BTreeSet<ThrottleRun>);

impl Fold for Runs {
    type Line = ThrottleRun;

    fn apply(&mut self, run: ThrottleRun) {
        self.0.insert(run);
    }

    fn prune(&mut self) -> bool {
        let now = Utc::now();
        let before = self.0.len();
        self.0.retain(|r| r.live(now));
        self.0.len() != before
    }
}

fn error(place: &Path, message: String) -> ThrottleError {
    ThrottleError {
        place: place.display().to_string(),
        message,
    }
}

/// The throttle windows kept in files (see the module documentation).
pub struct ThrottleFile {
    paths: SnapshotLog,
    writer: Writer<ThrottleRun>,
    /// Secrets in a rendered key are written as `[secret:NAME]`.
    redaction: Redaction,
}

impl ThrottleFile {
    /// Opens the windows at `path` (absent: none), drops runs whose window
    /// has ended, folds the log into the snapshot and starts the writer thread.
    pub fn open(path: &Path) -> Result<ThrottleFile, ThrottleError> {
        ThrottleFile::open_bounded(path, COMPACT_AFTER)
    }

    /// [`ThrottleFile::open`] with the log compacted past `bound` lines.
    pub fn open_bounded(path: &Path, bound: usize) -> Result<ThrottleFile, ThrottleError> {
        let paths = SnapshotLog::new(path);
        let sink = paths
            .open_sink::<Runs>(bound, "throttle windows")
            .map_err(|e| error(e.path(), e.reason()))?;
        let writer = Writer::spawn("throttle-writer", sink)
            .map_err(|e| error(&paths.log, format!("cannot start its writer: {e}")))?;
        Ok(ThrottleFile {
            paths,
            writer,
            redaction: Redaction::new(),
        })
    }

    /// Writes secrets in a rendered key (as they are then) as `[secret:NAME]`.
    pub fn with_redaction(mut self, redaction: Redaction) -> Self {
        self.redaction = redaction;
        self
    }

    /// The log next to the snapshot.
    pub fn log_path(&self) -> &Path {
        &self.paths.log
    }

    /// Resolves once every run queued so far is on disk (at shutdown).
    pub async fn flush(&self) -> Result<(), ThrottleError> {
        self.writer
            .flush()
            .await
            .map_err(|e| error(&self.paths.log, format!("cannot write: {e}")))
    }

    /// [`ThrottleFile::flush`], blocking the calling thread.
    pub fn flush_blocking(&self) -> Result<(), ThrottleError> {
        self.writer
            .flush_blocking()
            .map_err(|e| error(&self.paths.log, format!("cannot write: {e}")))
    }
}

impl ThrottlePersistence for ThrottleFile {
    fn load(&self) -> Result<Vec<ThrottleRun>, ThrottleError> {
        // Called at start-up: what is queued (normally nothing) lands first.
        self.flush_blocking()?;
        let (runs, _) = self.paths.load(Runs::apply).map_err(|failure| {
            let failure = OpenFailure::Load(failure);
            error(failure.path(), failure.reason())
        })?;
        let now = Utc::now();
        Ok(runs.0.into_iter().filter(|r| r.live(now)).collect())
    }

    fn record(&self, mut run: ThrottleRun) {
        let redactor = self.redaction.current();
        if !redactor.is_empty() {
            run.key = redactor.redact(&run.key).into_owned();
        }
        if !self.writer.send(Some(run), None) {
            tracing::warn!(path = %self.paths.log.display(), "cannot save a throttle window: its writer has stopped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::io::Write;
    use std::time::Duration;

    fn run(key: &str, ago_secs: i64, window_secs: u64) -> ThrottleRun {
        ThrottleRun {
            rule: "w/greet".into(),
            key: key.into(),
            at: Utc::now() - chrono::Duration::seconds(ago_secs),
            window: Duration::from_secs(window_secs),
        }
    }

    #[test]
    fn runs_survive_a_reopen_and_ended_windows_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("throttles");
        let live = run("r1", 10, 3600);
        {
            let file = ThrottleFile::open(&path).unwrap();
            file.record(live.clone());
            file.record(run("r2", 120, 60));
            file.flush_blocking().unwrap();
            // Dropped without compaction: only the log has the runs.
        }
        assert_eq!(
            std::fs::read_to_string(dir.path().join("throttles.log"))
                .unwrap()
                .lines()
                .count(),
            2
        );
        let file = ThrottleFile::open(&path).unwrap();
        assert_eq!(file.load().unwrap(), vec![live.clone()]);
        // Opening folded the log into the snapshot, without the ended run.
        assert_eq!(std::fs::read_to_string(file.log_path()).unwrap(), "");
        let snapshot: Vec<ThrottleRun> =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(snapshot, vec![live]);
    }

    #[test]
    fn a_log_replayed_over_a_snapshot_holding_it_counts_no_run_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("throttles");
        let r = run("r1", 10, 3600);
        // A crash between the snapshot's rename and the log's truncation.
        std::fs::write(&path, serde_json::to_vec(&vec![r.clone()]).unwrap()).unwrap();
        std::fs::write(
            dir.path().join("throttles.log"),
            format!("{}\n", serde_json::to_string(&r).unwrap()),
        )
        .unwrap();
        let file = ThrottleFile::open(&path).unwrap();
        assert_eq!(file.load().unwrap(), vec![r]);
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_not_glued_to_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("throttles");
        let first = run("r1", 10, 3600);
        let second = run("r2", 5, 3600);
        {
            let file = ThrottleFile::open(&path).unwrap();
            file.record(first.clone());
        }
        let mut log = OpenOptions::new()
            .append(true)
            .open(dir.path().join("throttles.log"))
            .unwrap();
        log.write_all(br#"{"rule":"w/greet","ke"#).unwrap();
        drop(log);
        {
            let file = ThrottleFile::open(&path).unwrap();
            file.record(second.clone());
        }
        let file = ThrottleFile::open(&path).unwrap();
        assert_eq!(file.load().unwrap(), vec![first, second]);
    }

    #[test]
    fn compaction_bounds_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("throttles");
        let file = ThrottleFile::open_bounded(&path, 10).unwrap();
        for i in 0..50 {
            file.record(run(&format!("k{i}"), 1, 3600));
            file.flush_blocking().unwrap();
            let lines = std::fs::read_to_string(file.log_path())
                .unwrap()
                .lines()
                .count();
            assert!(lines <= 11, "{lines} lines in the log after {i} runs");
        }
        assert_eq!(file.load().unwrap().len(), 50);
    }

    #[test]
    fn a_secret_in_a_key_is_written_as_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("throttles");
        let redaction = Redaction::new();
        redaction.also_hide("token", "hunter2-hunter2");
        let file = ThrottleFile::open(&path).unwrap().with_redaction(redaction);
        file.record(run("room-hunter2-hunter2", 1, 3600));
        file.flush_blocking().unwrap();
        let log = std::fs::read_to_string(file.log_path()).unwrap();
        assert!(!log.contains("hunter2"), "{log}");
        assert!(log.contains("[secret:token]"), "{log}");
    }

    #[test]
    fn a_corrupt_snapshot_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("throttles");
        std::fs::write(&path, "{not json").unwrap();
        let err = ThrottleFile::open(&path).err().expect("an error");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
}
