//! `on: schedule` rules: one timer task per rule, each running its rule with
//! an empty event at every tick. After a reload only added, changed and
//! removed schedules are touched: an unchanged one keeps its timer, so
//! frequent edits elsewhere cannot postpone an `every:` for ever.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
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
        crate::task::spawn(async move {
            let mut previous = None;
            loop {
                let now = Utc::now();
                let Some(next) = next_run(&schedule, now, previous) else {
                    tracing::warn!(rule = %id, "schedule has no next run; stopping it");
                    return;
                };
                let wait = (next - now).to_std().unwrap_or_default();
                tokio::time::sleep(wait).await;
                previous = Some(next);
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

/// The run after `now`, and after the `previous` one: tokio sleeps on the
/// monotonic clock, so after a tick the wall clock may still read a moment
/// before it, and the same tick must not be found (and run) again.
fn next_run(
    schedule: &Schedule,
    now: DateTime<Utc>,
    previous: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    schedule.next_after(previous.map_or(now, |p| p.max(now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn a_tick_woken_before_its_time_by_the_wall_clock_is_not_run_twice() {
        // 02:30 in Berlin runs once on the autumn change, at 00:30 UTC.
        let text = "version: 1\ntimezone: Europe/Berlin\nrules:\n  - name: t\n    on: schedule\n    cron: \"30 2 * * *\"\n    do: [ { log: t } ]\n";
        let rs = switchboard_workflow::load_str("t.yaml", text).unwrap_or_else(|e| panic!("{e}"));
        let schedule = rs.schedules()[0].1.clone();
        let tick = at("2026-10-25T00:30:00Z");
        // The timer slept until the tick, but the wall clock reads a little
        // earlier (it lags the monotonic clock tokio sleeps on).
        let lagging = at("2026-10-25T00:29:59.900Z");
        assert_eq!(
            next_run(&schedule, lagging, Some(tick)),
            Some(at("2026-10-26T01:30:00Z"))
        );
        // The first run is computed from now.
        assert_eq!(
            next_run(&schedule, at("2026-10-24T12:00:00Z"), None),
            Some(tick)
        );
        // A clock that jumped ahead skips to the next run after it.
        assert_eq!(
            next_run(&schedule, at("2026-10-27T00:00:00Z"), Some(tick)),
            Some(at("2026-10-27T01:30:00Z"))
        );
    }
}
