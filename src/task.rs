//! Spawning that keeps the caller's tracing span and task group: a fleet
//! runs each agent in a span carrying `agent=NAME`, and every task that
//! agent starts (rooms, the lifecycle, timers) logs under it, so each line
//! says whose it is. The same agent's tasks also belong to its
//! [`TaskGroup`], so a fleet can stop all of them at once (a lost lease).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::task::{AbortHandle, Id, JoinHandle};
use tracing::Instrument;

tokio::task_local! {
    static GROUP: TaskGroup;
}

/// Tasks that can be aborted together: every task spawned (through
/// [`spawn`]) from inside the group joins it, and so do theirs.
#[derive(Clone, Default)]
pub struct TaskGroup(Arc<Mutex<Members>>);

#[derive(Default)]
struct Members {
    running: HashMap<Id, AbortHandle>,
    /// Tasks that ended before they were tracked (so never tracked).
    ended_early: HashSet<Id>,
    aborted: bool,
}

impl TaskGroup {
    /// An empty group.
    pub fn new() -> TaskGroup {
        TaskGroup::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Members> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Spawns `future` as a member of this group.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let group = self.clone();
        let ended = self.clone();
        let handle = tokio::spawn(
            GROUP
                .scope(group, async move {
                    let out = future.await;
                    if let Some(id) = tokio::task::try_id() {
                        ended.ended(id);
                    }
                    out
                })
                .in_current_span(),
        );
        self.track(&handle);
        handle
    }

    fn track<T>(&self, handle: &JoinHandle<T>) {
        let mut members = self.lock();
        if members.aborted {
            handle.abort();
        } else if !members.ended_early.remove(&handle.id()) {
            members.running.insert(handle.id(), handle.abort_handle());
        }
    }

    fn ended(&self, id: Id) {
        let mut members = self.lock();
        if members.running.remove(&id).is_none() {
            members.ended_early.insert(id);
        }
    }

    /// Aborts every member, and any spawned from now on.
    pub fn abort_all(&self) {
        let mut members = self.lock();
        members.aborted = true;
        for (_, task) in members.running.drain() {
            task.abort();
        }
        members.ended_early.clear();
    }

    /// How many members are running.
    pub fn len(&self) -> usize {
        self.lock().running.len()
    }

    /// True when no member runs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `tokio::spawn`, the task entered in the current span and, when spawned
/// by a member of a [`TaskGroup`], made a member too.
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match GROUP.try_with(TaskGroup::clone) {
        Ok(group) => group.spawn(future),
        Err(_) => tokio::spawn(future.in_current_span()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn aborting_a_group_stops_its_tasks_and_theirs() {
        let group = TaskGroup::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let outer = group.spawn(async move {
            let inner_tx = tx.clone();
            spawn(async move {
                loop {
                    let _ = inner_tx.send(1);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
            std::future::pending::<()>().await;
        });
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(group.len(), 2);
        group.abort_all();
        assert!(outer.await.unwrap_err().is_cancelled());
        // Every sender is gone once both tasks are.
        while rx.recv().await.is_some() {}
        // A task spawned after the abort does not run.
        let late = group.spawn(async { 5 });
        assert!(late.await.unwrap_err().is_cancelled());
    }

    #[tokio::test]
    async fn finished_members_are_forgotten() {
        let group = TaskGroup::new();
        for _ in 0..50 {
            group.spawn(async {}).await.unwrap();
        }
        assert_eq!(group.len(), 0);
        assert!(group.lock().ended_early.is_empty());
        let outside = spawn(async { 3 });
        assert_eq!(outside.await.unwrap(), 3);
    }
}
