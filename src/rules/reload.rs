//! Hot reload: the workflows folder is watched (and SIGHUP asks too); after
//! a burst of changes settles, the whole folder is loaded and compiled, and
//! the engine's ruleset is swapped only if that succeeded. A failed reload
//! keeps the rules that were running and logs every error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use switchboard_engine::Engine;
use switchboard_workflow::load::is_workflow;
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

/// Loads `dir` and, if it compiles, swaps it into `engine`. Logs one summary line.
pub fn reload(engine: &Engine, dir: &Path) -> ReloadReport {
    let started = Instant::now();
    let outcome = match switchboard_workflow::load_dir(dir) {
        Ok(next) => {
            let (added, removed, changed) = diff(&engine.ruleset(), &next);
            let rules = next.len();
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
                "workflows reloaded"
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
/// a reload; each report also goes to every listener.
pub fn spawn(
    engine: Arc<Engine>,
    dir: PathBuf,
    watch: bool,
    listeners: Vec<Arc<dyn Listener>>,
    after_swap: AfterSwap,
) -> Result<JoinHandle<()>, notify::Error> {
    let (tx, mut changes) = mpsc::unbounded_channel::<()>();
    let watcher = match watch {
        false => None,
        true => {
            let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                // Reading files (our own reload included) is no change; nor are
                // editor swap files or test files.
                if let Ok(event) = res {
                    let change = !matches!(event.kind, notify::EventKind::Access(_));
                    if change && event.paths.iter().any(|p| is_workflow(p) || p.is_dir()) {
                        let _ = tx.send(());
                    }
                }
            })?;
            w.watch(&dir, RecursiveMode::Recursive)?;
            Some(w)
        }
    };
    Ok(tokio::spawn(async move {
        // Dropping the watcher stops it; keep it for the task's life.
        let _watcher = watcher;
        let mut hangup = hangup_signal();
        // Without a watcher the channel is closed at once; then only signals count.
        let mut watching = watch;
        loop {
            tokio::select! {
                change = changes.recv(), if watching => {
                    if change.is_none() {
                        watching = false;
                        continue;
                    }
                    while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, changes.recv()).await {}
                }
                _ = recv_hangup(&mut hangup) => {
                    tracing::info!("SIGHUP: reloading workflows");
                }
            }
            let (engine, dir) = (engine.clone(), dir.clone());
            let Ok(report) = tokio::task::spawn_blocking(move || reload(&engine, &dir)).await
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

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}
#[cfg(not(unix))]
fn hangup_signal() -> Hangup {
    None
}

#[cfg(unix)]
async fn recv_hangup(h: &mut Hangup) {
    match h {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}
#[cfg(not(unix))]
async fn recv_hangup(_: &mut Hangup) {
    std::future::pending().await
}
