//! The agent's state directory: where `switchboard run` keeps its action
//! journal and rule state by default, so exactly-once holds across crashes
//! without a flag. One live process per directory: an exclusive lock
//! (`flock`) on `DIR/lock`, held for the life of the process and released by
//! the kernel when it dies, so a crash leaves no stale lock behind.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The journal's file name inside the state directory.
const JOURNAL: &str = "journal";
/// The rule state's file name inside the state directory.
const STATE: &str = "state.json";
/// The webhook queue's file name inside the state directory.
const WEBHOOKS: &str = "webhooks";
/// The lock file's name inside the state directory.
const LOCK: &str = "lock";

/// Why the state directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    /// Another live process holds the directory's lock.
    #[error(
        "the state directory {path} is in use by another switchboard process{holder}; \
         stop it, or give this one its own --state-dir (or --ephemeral)"
    )]
    InUse {
        /// The directory.
        path: PathBuf,
        /// `" (pid N)"` when the holder wrote its pid, else empty.
        holder: String,
    },
    /// No default location: neither `XDG_STATE_HOME` nor `HOME` is set.
    #[error(
        "no default state directory: set XDG_STATE_HOME or HOME, or pass --state-dir DIR (or --ephemeral)"
    )]
    NoDefault,
    /// The agent id cannot name a folder.
    #[error("the agent id {0:?} cannot name a state directory; pass --state-dir DIR")]
    BadAgentId(String),
    /// The directory or its lock file cannot be created or locked.
    #[error("cannot use the state directory {path}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
}

/// The default root of state directories: `$XDG_STATE_HOME/switchboard`, or
/// `~/.local/state/switchboard`.
pub fn default_root() -> Result<PathBuf, StateDirError> {
    let set = |name| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(xdg) = set("XDG_STATE_HOME") {
        return Ok(xdg.join("switchboard"));
    }
    set("HOME")
        .map(|home| home.join(".local/state/switchboard"))
        .ok_or(StateDirError::NoDefault)
}

/// The default state directory of `agent_id` under `root`.
pub fn for_agent(root: &Path, agent_id: &str) -> Result<PathBuf, StateDirError> {
    // The id comes from the network: it must be one plain path component.
    let plain = !agent_id.is_empty()
        && !agent_id.starts_with('.')
        && agent_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    match plain {
        true => Ok(root.join(agent_id)),
        false => Err(StateDirError::BadAgentId(agent_id.to_owned())),
    }
}

/// An open, locked state directory; the lock lasts as long as this value.
#[derive(Debug)]
pub struct StateDir {
    path: PathBuf,
    /// Holds the `flock`; closing it (or the process dying) releases it.
    _lock: File,
}

impl StateDir {
    /// Creates `path` if needed and takes its lock; refused when a live
    /// process holds it.
    pub fn open(path: &Path) -> Result<StateDir, StateDirError> {
        let io_err = |source| StateDirError::Io {
            path: path.to_owned(),
            source,
        };
        create_private_dir(path).map_err(io_err)?;
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path.join(LOCK))
            .map_err(io_err)?;
        if !try_lock(&lock).map_err(io_err)? {
            let mut pid = String::new();
            let _ = lock.read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(StateDirError::InUse {
                path: path.to_owned(),
                holder: match pid.is_empty() {
                    true => String::new(),
                    false => format!(" (pid {pid})"),
                },
            });
        }
        // Ours now: say who holds it, for the error a second process shows.
        lock.set_len(0)
            .and_then(|()| lock.rewind())
            .and_then(|()| writeln!(lock, "{}", std::process::id()))
            .map_err(io_err)?;
        Ok(StateDir {
            path: path.to_owned(),
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The action journal's file.
    pub fn journal(&self) -> PathBuf {
        self.path.join(JOURNAL)
    }

    /// The rule state's file.
    pub fn state(&self) -> PathBuf {
        self.path.join(STATE)
    }

    /// The webhook queue's file.
    pub fn webhooks(&self) -> PathBuf {
        self.path.join(WEBHOOKS)
    }

    /// The pending conversations' file.
    pub fn conversations(&self) -> PathBuf {
        self.path.join("conversations")
    }

    /// The throttle windows' file.
    pub fn throttles(&self) -> PathBuf {
        self.path.join("throttles")
    }
}

/// Takes an exclusive `flock` on `file` without waiting; false when another
/// open file (another process) holds it. `flock`, not `fcntl`: it belongs to
/// the open file, so it lasts until the file is closed or the process dies.
#[cfg(unix)]
fn try_lock(file: &File) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is borrowed from `file`, open for the whole call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        true => Ok(false),
        false => Err(e),
    }
}

/// Elsewhere no lock is taken (switchboard is built and tested on Unix).
#[cfg(not(unix))]
fn try_lock(_file: &File) -> io::Result<bool> {
    Ok(true)
}

/// Creates `path` (and its parents); readable by its owner only, since
/// results of actions are kept there.
fn create_private_dir(path: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b");
        let first = StateDir::open(&path).unwrap();
        let err = StateDir::open(&path).unwrap_err().to_string();
        assert!(
            err.contains("in use by another switchboard process"),
            "{err}"
        );
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        StateDir::open(&path).unwrap();
    }

    #[test]
    fn agent_ids_that_are_not_one_plain_name_are_refused() {
        let root = Path::new("/r");
        assert_eq!(
            for_agent(root, "3b4f0c8e-2c1a").unwrap(),
            root.join("3b4f0c8e-2c1a")
        );
        for bad in ["", "..", "a/b", ".hidden", "a\0b"] {
            assert!(for_agent(root, bad).is_err(), "{bad:?}");
        }
    }
}
