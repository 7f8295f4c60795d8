//! `on: schedule` rules: one timer task per rule, started when the agent
//! runs, each running its rule with an empty event at every tick.

use std::sync::Arc;

use serde_json::json;
use tokio::task::JoinHandle;

use super::rules::RulesHandler;
use crate::engine::Engine;

/// Starts a timer per schedule rule of the engine's current ruleset.
pub fn start(engine: &Engine, handler: Arc<RulesHandler>) -> Vec<JoinHandle<()>> {
    let ruleset = engine.ruleset();
    ruleset
        .schedules()
        .into_iter()
        .map(|(id, schedule)| {
            let id = id.to_owned();
            let schedule = schedule.clone();
            let handler = handler.clone();
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
        })
        .collect()
}
