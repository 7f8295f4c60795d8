//! `on: schedule` rules: one timer task per rule, each running its rule with
//! an empty event at every tick. After a reload only added, changed and
//! removed schedules are touched: an unchanged one keeps its timer, so
//! frequent edits elsewhere cannot postpone an `every:` for ever.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::json;
use tokio::task::JoinHandle;

use super::handler::RulesHandler;
use switchboard_engine::Engine;
use switchboard_workflow::rule::Schedule;

/// One running timer and the schedule it was started for.
struct Timer {
    schedule: Schedule,
    task: JoinHandle<()>,
}

/// The running timers, by rule id.
pub struct Timers {
    engine: Arc<Engine>,
    handler: Arc<RulesHandler>,
    tasks: Mutex<HashMap<String, Timer>>,
}

impl Timers {
    /// Starts a timer per schedule rule of the engine's current ruleset.
    pub fn start(engine: Arc<Engine>, handler: Arc<RulesHandler>) -> Self {
        let timers = Timers {
            engine,
            handler,
            tasks: Mutex::new(HashMap::new()),
        };
        timers.restart();
        timers
    }

    /// Brings the timers in line with the current ruleset: stops those whose
    /// rule is gone or whose schedule changed, starts the new ones, and keeps
    /// the rest running in phase (a timer runs its rule by id, so an edited
    /// rule body takes effect at its next tick).
    pub fn restart(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        let ruleset = self.engine.ruleset();
        let wanted: HashMap<&str, &Schedule> = ruleset.schedules().into_iter().collect();
        tasks.retain(|id, timer| {
            let keep = wanted.get(id.as_str()) == Some(&&timer.schedule);
            if !keep {
                timer.task.abort();
            }
            keep
        });
        for (id, schedule) in wanted {
            if tasks.contains_key(id) {
                continue;
            }
            let task = self.spawn(id.to_owned(), schedule.clone());
            tasks.insert(
                id.to_owned(),
                Timer {
                    schedule: schedule.clone(),
                    task,
                },
            );
        }
    }

    fn spawn(&self, id: String, schedule: Schedule) -> JoinHandle<()> {
        let handler = self.handler.clone();
        tokio::spawn(async move {
            loop {
                let now = chrono::Utc::now();
                let Some(next) = schedule.next_after(now) else {
                    tracing::warn!(rule = %id, "schedule has no next run; stopping it");
                    return;
                };
                let wait = (next - now).to_std().unwrap_or_default();
                tokio::time::sleep(wait).await;
                handler.run_scheduled(&id, json!({})).await;
            }
        })
    }

    /// Stops every timer.
    pub fn stop(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        for (_, timer) in tasks.drain() {
            timer.task.abort();
        }
    }
}
