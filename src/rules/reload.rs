//! Hot reload: the workflows folder is watched (and SIGHUP asks too); after
//! a burst of changes settles, the whole folder is loaded and compiled, and
//! the engine's ruleset is swapped only if that succeeded. A failed reload
//! keeps the rules that were running and logs every error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::RecursiveMode;

use super::watch_hub::HubWatch;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::conversations::{Conversations, PendingOnReload};
use switchboard_engine::Engine;
use switchboard_workflow::load::is_workflow;
use switchboard_workflow::secrets::SecretValues;
use switchboard_workflow::{self, LoadErrors, Ruleset};

/// Quiet time after the last change before reloading: an editor's
/// write-rename-chmod burst gives one reload.
pub const DEBOUNCE: Duration = Duration::from_millis(60);

/// What one reload did.
#[derive(Debug, Clone)]
pub struct ReloadReport {
    /// Success with the differences, or the errors (the old rules stay).
    pub outcome: ReloadOutcome,
    /// Load + compile + swap time.
    pub elapsed: Duration,
    /// Pending conversations after it, and how many of those had their rule
    /// changed or removed (they finish with the actions they started with).
    pub conversations: PendingOnReload,
}

/// How a reload ended.
#[derive(Debug, Clone)]
pub enum ReloadOutcome {
    /// The new rules are in use.
    Reloaded {
        /// Rules now loaded.
        rules: usize,
        /// Rule ids that are new.
        added: Vec<String>,
        /// Rule ids that are gone.
        removed: Vec<String>,
        /// Rule ids whose source changed.
        changed: Vec<String>,
    },
    /// The folder does not compile; nothing changed.
    Failed {
        /// Every error.
        errors: LoadErrors,
    },
}

/// Reads a ruleset's secrets (the agent's, which also refuses its own API
/// key); each one that cannot be used is a load error at its declaration.
pub type ReadSecrets = Arc<dyn Fn(&Ruleset) -> Result<SecretValues, LoadErrors> + Send + Sync>;

/// Reads a ruleset's secrets with no further check (benchmarks, tests).
pub fn plain_secrets() -> ReadSecrets {
    Arc::new(|ruleset: &Ruleset| ruleset.read_secrets())
}

/// Loads `dir` and, if it compiles and its secrets can be read, swaps it
/// (and the secrets) into `engine`. Logs one summary line.
pub fn reload(engine: &Engine, dir: &Path, read_secrets: &ReadSecrets) -> ReloadReport {
    reload_with(engine, dir, read_secrets, None)
}

/// [`reload`], also saying in its line and report how many `conversations`
/// are pending and how many of those had their rule changed or removed.
pub fn reload_with(
    engine: &Engine,
    dir: &Path,
    read_secrets: &ReadSecrets,
    conversations: Option<&Conversations>,
) -> ReloadReport {
    let started = Instant::now();
    let mut pending = PendingOnReload::default();
    let loaded = switchboard_workflow::load_dir(dir)
        .and_then(|next| read_secrets(&next).map(|values| (next, values)));
    let outcome = match loaded {
        Ok((next, values)) => {
            if let Some(conversations) = conversations {
                pending = conversations.on_reload(&next);
            }
            let (added, removed, changed) = diff(&engine.ruleset(), &next);
            let rules = next.len();
            // Secrets first: a new rule never runs without its values.
            engine.redaction().set(values);
            engine.swap(Arc::new(next));
            ReloadOutcome::Reloaded {
                rules,
                added,
                removed,
                changed,
            }
        }
        Err(errors) => ReloadOutcome::Failed { errors },
    };
    let report = ReloadReport {
        outcome,
        elapsed: started.elapsed(),
        conversations: pending,
    };
    log(&report, dir);
    report
}

/// Rule ids added, removed and changed from `old` to `new`.
pub fn diff(old: &Ruleset, new: &Ruleset) -> (Vec<String>, Vec<String>, Vec<String>) {
    let before: HashMap<&str, u64> = old
        .rules()
        .iter()
        .map(|r| (r.id.as_str(), r.fingerprint))
        .collect();
    let after: HashMap<&str, u64> = new
        .rules()
        .iter()
        .map(|r| (r.id.as_str(), r.fingerprint))
        .collect();
    let mut added: Vec<String> = Vec::new();
    let mut changed: Vec<String> = Vec::new();
    for r in new.rules() {
        match before.get(r.id.as_str()) {
            None => added.push(r.id.clone()),
            Some(fp) if *fp != r.fingerprint => changed.push(r.id.clone()),
            Some(_) => {}
        }
    }
    let removed = old
        .rules()
        .iter()
        .filter(|r| !after.contains_key(r.id.as_str()))
        .map(|r| r.id.clone())
        .collect();
    (added, removed, changed)
}

fn log(report: &ReloadReport, dir: &Path) {
    let ms = format!("{:.1}", report.elapsed.as_secs_f64() * 1000.0);
    match &report.outcome {
        ReloadOutcome::Reloaded {
            rules,
            added,
            removed,
            changed,
        } => {
            let list = |v: &Vec<String>| {
                if v.is_empty() {
                    "-".to_owned()
                } else {
                    v.join(",")
                }
            };
            tracing::info!(
                dir = %dir.display(), rules, ms,
                added = %list(added), removed = %list(removed), changed = %list(changed),
                pending = report.conversations.pending,
                pending_rule_changed = report.conversations.rule_changed,
                "workflows reloaded (pending conversations finish with the actions they started with)"
            );
        }
        ReloadOutcome::Failed { errors } => {
            tracing::error!(
                dir = %dir.display(), errors = errors.len(), ms,
                "reload failed; the previous rules keep running:\n{errors}"
            );
        }
    }
}

/// Called after a successful swap (e.g. to restart schedule timers).
pub type AfterSwap = Box<dyn Fn() + Send + Sync>;

/// Something told about every reload: tests (through a channel), metrics.
pub trait Listener: Send + Sync {
    /// Called once per reload, after the swap (or the refusal).
    fn reloaded(&self, report: &ReloadReport);
}

impl Listener for mpsc::UnboundedSender<ReloadReport> {
    fn reloaded(&self, report: &ReloadReport) {
        // The receiver going away (a finished test) is no error for the agent.
        let _ = self.send(report.clone());
    }
}

/// Starts the reload task: folder changes (when `watch`) and SIGHUP trigger
/// a reload; each report also goes to every listener. The watch stays on the
/// configured path: when the folder there is replaced (renamed away and
/// recreated, removed and recreated, a symlink swapped) it watches the new
/// one, and SIGHUP always watches the path afresh before reloading from it.
pub fn spawn(
    engine: Arc<Engine>,
    dir: PathBuf,
    watch: bool,
    listeners: Vec<Arc<dyn Listener>>,
    after_swap: AfterSwap,
    conversations: Option<Arc<Conversations>>,
    read_secrets: ReadSecrets,
) -> Result<JoinHandle<()>, notify::Error> {
    let (tx, mut changes) = mpsc::unbounded_channel::<()>();
    let mut folder = match watch {
        false => None,
        true => Some(FolderWatch::start(&dir, tx)?),
    };
    Ok(crate::task::spawn(async move {
        let mut hangup = hangup_signal();
        // Without a watcher the channel is closed at once; then only signals count.
        let mut watching = watch;
        loop {
            let asked = tokio::select! {
                change = changes.recv(), if watching => {
                    if change.is_none() {
                        watching = false;
                        continue;
                    }
                    while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, changes.recv()).await {}
                    false
                }
                _ = recv_hangup(&mut hangup) => {
                    tracing::info!("SIGHUP: reloading workflows");
                    true
                }
            };
            // Watch first, then load: a file written in between is in the load.
            if let Some(folder) = folder.as_mut() {
                folder.follow(asked);
            }
            let (engine, dir, pending) = (engine.clone(), dir.clone(), conversations.clone());
            let read = read_secrets.clone();
            let Ok(report) = tokio::task::spawn_blocking(move || {
                reload_with(&engine, &dir, &read, pending.as_deref())
            })
            .await
            else {
                continue;
            };
            if matches!(report.outcome, ReloadOutcome::Reloaded { .. }) {
                after_swap();
            }
            for listener in &listeners {
                listener.reloaded(&report);
            }
        }
    }))
}

/// The watch on the workflows folder, kept on its configured path. A watch
/// is on a folder, not a path: once the folder is renamed away or removed,
/// or a symlink on the path is swapped, it sees nothing more. So the parent
/// is watched too (an event naming the path itself marks the watch stale),
/// and before each reload the folder's identity is compared with the one
/// watched; either way the path is watched again.
struct FolderWatch {
    /// The configured path, absolute (symlinks kept: they are what gets swapped).
    path: PathBuf,
    tx: mpsc::UnboundedSender<()>,
    /// Set by the watcher when the path itself is created, removed or renamed.
    stale: Arc<AtomicBool>,
    /// Dropping a watch stops it; one is kept for the task's life.
    watcher: Option<HubWatch>,
    /// The folder being watched; `None` while there is none at the path.
    watched: Option<FolderId>,
}

/// What tells one folder from another at the same path.
#[derive(Debug, PartialEq, Eq)]
struct FolderId {
    real: PathBuf,
    #[cfg(unix)]
    inode: (u64, u64),
}

impl FolderId {
    fn of(path: &Path) -> Option<FolderId> {
        let real = std::fs::canonicalize(path).ok()?;
        #[cfg(unix)]
        let inode = {
            use std::os::unix::fs::MetadataExt;
            let meta = std::fs::metadata(&real).ok()?;
            (meta.dev(), meta.ino())
        };
        Some(FolderId {
            real,
            #[cfg(unix)]
            inode,
        })
    }
}

impl FolderWatch {
    /// Watches `dir`, which must be there and watchable (the agent's start fails otherwise).
    fn start(dir: &Path, tx: mpsc::UnboundedSender<()>) -> notify::Result<FolderWatch> {
        let path = std::path::absolute(dir).map_err(notify::Error::io)?;
        let mut folder = FolderWatch {
            path,
            tx,
            stale: Arc::new(AtomicBool::new(false)),
            watcher: None,
            watched: None,
        };
        let watched = FolderId::of(&folder.path);
        let mut watcher = folder.new_watcher()?;
        watcher.watch(&folder.path, RecursiveMode::Recursive)?;
        folder.watch_parent(&mut watcher);
        folder.watcher = Some(watcher);
        folder.watched = watched;
        Ok(folder)
    }

    /// Watches the path again if the folder there was replaced (or `always`:
    /// SIGHUP), logging what happened; a failure is logged, never fatal.
    fn follow(&mut self, always: bool) {
        let stale = self.stale.swap(false, Ordering::SeqCst);
        let now = FolderId::of(&self.path);
        if !always && !stale && now == self.watched {
            return;
        }
        let path = self.path.display().to_string();
        let mut watcher = match self.new_watcher() {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(dir = %path, error = %crate::error_chain::Chain(&e), "cannot watch the workflows folder again; edits are not picked up until SIGHUP");
                return;
            }
        };
        match &now {
            None => tracing::warn!(
                dir = %path,
                "the workflows folder is gone; waiting for it to come back (the running rules stay)"
            ),
            Some(id) => match watcher.watch(&self.path, RecursiveMode::Recursive) {
                Ok(()) if now != self.watched => tracing::info!(
                    dir = %path, folder = %id.real.display(),
                    "the workflows folder was replaced; watching the new one"
                ),
                Ok(()) => {}
                Err(e) => tracing::error!(
                    dir = %path, error = %crate::error_chain::Chain(&e),
                    "cannot watch the workflows folder; edits are not picked up until SIGHUP"
                ),
            },
        }
        self.watch_parent(&mut watcher);
        // The old watcher goes only now, so no moment is watched by neither.
        self.watcher = Some(watcher);
        self.watched = now;
    }

    /// The parent sees the path itself come and go (or its symlink swapped).
    fn watch_parent(&self, watcher: &mut HubWatch) {
        let Some(parent) = self.path.parent() else {
            return;
        };
        if let Err(e) = watcher.watch(parent, RecursiveMode::NonRecursive) {
            tracing::warn!(
                dir = %self.path.display(), parent = %parent.display(), error = %crate::error_chain::Chain(&e),
                "cannot watch the workflows folder's parent; if the folder is replaced, send SIGHUP"
            );
        }
    }

    fn new_watcher(&self) -> notify::Result<HubWatch> {
        let (tx, stale, path) = (self.tx.clone(), self.stale.clone(), self.path.clone());
        HubWatch::new(move |event: &notify::Event| {
            // Reading files (our own reload included) is no change.
            if matches!(event.kind, notify::EventKind::Access(_)) {
                return;
            }
            let mut change = false;
            for p in &event.paths {
                if *p == path {
                    stale.store(true, Ordering::SeqCst);
                    change = true;
                } else if p.starts_with(&path) && (is_workflow(p) || p.is_dir()) {
                    // Not editor swap files, test files or the parent's other entries.
                    change = true;
                }
            }
            if change {
                let _ = tx.send(());
            }
        })
    }
}

/// SIGHUP, where there is one (the workflows' reloader and the fleet's
/// supervisor both read their files again on it).
#[cfg(unix)]
pub(crate) type Hangup = Option<tokio::signal::unix::Signal>;
/// SIGHUP, where there is one.
#[cfg(not(unix))]
pub(crate) type Hangup = Option<()>;

/// Listens for SIGHUP (none where the platform has no signals).
#[cfg(unix)]
pub(crate) fn hangup_signal() -> Hangup {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}
/// Listens for SIGHUP (none where the platform has no signals).
#[cfg(not(unix))]
pub(crate) fn hangup_signal() -> Hangup {
    None
}

/// The next SIGHUP (never, without one).
#[cfg(unix)]
pub(crate) async fn recv_hangup(h: &mut Hangup) {
    match h {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}
/// The next SIGHUP (never, without one).
#[cfg(not(unix))]
pub(crate) async fn recv_hangup(_: &mut Hangup) {
    std::future::pending().await
}
