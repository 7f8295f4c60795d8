//! `on: schedule` rules: one timer task per rule, each running its rule with
//! an empty event at every tick; restarted after a reload so added, changed
//! and removed schedules take effect.

use std::sync::{Arc, Mutex};

use serde_json::json;
use tokio::task::JoinHandle;

use super::handler::RulesHandler;
use switchboard_engine::Engine;

/// The running timers.
pub struct Timers {
    engine: Arc<Engine>,
    handler: Arc<RulesHandler>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Timers {
    /// Starts a timer per schedule rule of the engine's current ruleset.
    pub fn start(engine: Arc<Engine>, handler: Arc<RulesHandler>) -> Self {
        let timers = Timers {
            engine,
            handler,
            tasks: Mutex::new(Vec::new()),
        };
        timers.restart();
        timers
    }

    /// Stops every timer and starts them again from the current ruleset.
    pub fn restart(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        for t in tasks.drain(..) {
            t.abort();
        }
        let ruleset = self.engine.ruleset();
        for (id, schedule) in ruleset.schedules() {
            let id = id.to_owned();
            let schedule = schedule.clone();
            let handler = self.handler.clone();
            tasks.push(tokio::spawn(async move {
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
            }));
        }
    }

    /// Stops every timer.
    pub fn stop(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        for t in tasks.drain(..) {
            t.abort();
        }
    }
}
