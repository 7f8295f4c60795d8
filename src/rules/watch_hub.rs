//! One file-system watcher for the whole process: every agent's workflows
//! folder is watched through it. A watcher is an inotify instance, and a
//! user gets few of them (128 by default on Linux): a fleet of hundreds of
//! agents, each with its own, would fail to start past that.
//!
//! Each [`HubWatch`] registers a callback and the paths it wants; every
//! event goes to every callback (each filters its own paths; events are
//! rare). A path is unwatched when no handle wants it any more.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use notify::{RecursiveMode, Watcher};

/// What a handle does with each event.
type Callback = Arc<dyn Fn(&notify::Event) + Send + Sync>;

/// The process's watcher and who listens to it. Two locks, never held
/// together: the watcher's thread calls back under `subs` only, while
/// `watch` (which waits for that thread) runs under `watcher` only.
struct Hub {
    watcher: Mutex<Watched>,
    subs: Mutex<HashMap<u64, Callback>>,
}

#[derive(Default)]
struct Watched {
    watcher: Option<notify::RecommendedWatcher>,
    /// How many handles want each path watched.
    wanted: HashMap<PathBuf, usize>,
    next_id: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn hub() -> &'static Hub {
    static HUB: OnceLock<Hub> = OnceLock::new();
    HUB.get_or_init(|| Hub {
        watcher: Mutex::new(Watched::default()),
        subs: Mutex::new(HashMap::new()),
    })
}

/// Hands each event to every registered callback.
fn dispatch(res: notify::Result<notify::Event>) {
    let Ok(event) = res else {
        return;
    };
    let subs: Vec<Callback> = lock(&hub().subs).values().cloned().collect();
    for sub in subs {
        sub(&event);
    }
}

/// One listener on the process's watcher; its paths are let go on drop.
pub(crate) struct HubWatch {
    id: u64,
    paths: Vec<PathBuf>,
}

impl HubWatch {
    /// Registers `callback` (it sees every event of the process's watcher).
    pub(crate) fn new(
        callback: impl Fn(&notify::Event) + Send + Sync + 'static,
    ) -> notify::Result<HubWatch> {
        let id = {
            let mut w = lock(&hub().watcher);
            if w.watcher.is_none() {
                w.watcher = Some(notify::recommended_watcher(dispatch)?);
            }
            w.next_id += 1;
            w.next_id
        };
        lock(&hub().subs).insert(id, Arc::new(callback));
        Ok(HubWatch {
            id,
            paths: Vec::new(),
        })
    }

    /// Watches `path` (again, when already watched: a folder replaced at
    /// the same path is a new one to the kernel).
    pub(crate) fn watch(&mut self, path: &Path, mode: RecursiveMode) -> notify::Result<()> {
        let mut w = lock(&hub().watcher);
        let Some(watcher) = w.watcher.as_mut() else {
            return Err(notify::Error::generic("the watcher is gone"));
        };
        watcher.watch(path, mode)?;
        *w.wanted.entry(path.to_owned()).or_default() += 1;
        self.paths.push(path.to_owned());
        Ok(())
    }
}

impl Drop for HubWatch {
    fn drop(&mut self) {
        lock(&hub().subs).remove(&self.id);
        let mut w = lock(&hub().watcher);
        let Watched {
            watcher, wanted, ..
        } = &mut *w;
        for path in self.paths.drain(..) {
            let Some(count) = wanted.get_mut(&path) else {
                continue;
            };
            *count -= 1;
            if *count == 0 {
                wanted.remove(&path);
                if let Some(watcher) = watcher.as_mut() {
                    // Gone already (a removed folder) is fine.
                    let _ = watcher.unwatch(&path);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn many_handles_share_one_watcher_and_each_hears_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<usize>();
        // More handles than a user's inotify instances (128 by default).
        let handles: Vec<HubWatch> = (0..300)
            .map(|i| {
                let folder = dir.path().join(format!("f{i}"));
                std::fs::create_dir(&folder).unwrap();
                let tx = tx.clone();
                let mine = folder.clone();
                let mut h = HubWatch::new(move |e: &notify::Event| {
                    if e.paths.iter().any(|p| p.starts_with(&mine)) {
                        let _ = tx.send(i);
                    }
                })
                .unwrap();
                h.watch(&folder, RecursiveMode::Recursive).unwrap();
                h
            })
            .collect();
        std::fs::write(dir.path().join("f7/x.yaml"), "x").unwrap();
        let heard = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(heard, 7);
        drop(handles);
        assert!(lock(&hub().watcher)
            .wanted
            .keys()
            .all(|p| !p.starts_with(dir.path())));
    }
}
