//! Throttle windows through a `ThrottlePersistence`: what one engine recorded
//! a new engine (a restart, another process taking over) starts from.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use switchboard_engine::action::Scope;
use switchboard_engine::run::Verdict;
use switchboard_engine::{
    Engine, EventInput, RecordingExecutor, StateStore, ThrottleError, ThrottlePersistence,
    ThrottleRun,
};
use switchboard_workflow::load_str;

const RULES: &str = r#"version: 1
rules:
  - name: greet
    on: message_created
    throttle: { key: "{{ event.chat_room_id }}", max: 2, per: 10m }
    do: [ { reply: hello } ]
"#;

/// Persistence in memory: what a restart would load.
#[derive(Default)]
struct Kept(Mutex<Vec<ThrottleRun>>);

impl ThrottlePersistence for Kept {
    fn load(&self) -> Result<Vec<ThrottleRun>, ThrottleError> {
        Ok(self.0.lock().unwrap().clone())
    }

    fn record(&self, run: ThrottleRun) {
        self.0.lock().unwrap().push(run);
    }
}

/// A store that cannot be read.
struct Broken;

impl ThrottlePersistence for Broken {
    fn load(&self) -> Result<Vec<ThrottleRun>, ThrottleError> {
        Err(ThrottleError {
            place: "nowhere".into(),
            message: "unreadable".into(),
        })
    }

    fn record(&self, _: ThrottleRun) {}
}

fn engine(yaml: &str, kept: &Arc<Kept>) -> Engine {
    let rs = load_str("w.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    Engine::new(Arc::new(rs), Arc::new(StateStore::in_memory()))
        .with_throttle_persistence(kept.clone())
        .unwrap()
}

fn message(room: &str, now: DateTime<Utc>) -> EventInput {
    EventInput {
        event_type: "message_created".into(),
        event: Arc::new(json!({"id": "m1", "content": "hi", "sender_type": "User",
            "sender_id": "u1", "chat_room_id": room, "message_type": "text"})),
        agent: Arc::new(json!({"id": "a1", "handle": "acme/bot", "name": "Bot"})),
        chat: None,
        sender: None,
        now,
    }
}

async fn verdict(e: &Engine, room: &str, now: DateTime<Utc>) -> Verdict {
    let ex = RecordingExecutor::new();
    let report = e.handle(&message(room, now), &Scope::default(), &ex).await;
    report.trace[0].verdict
}

#[tokio::test]
async fn a_full_window_is_still_full_in_an_engine_rebuilt_from_the_recorded_runs() {
    let kept = Arc::new(Kept::default());
    let t0 = Utc::now();
    {
        let e = engine(RULES, &kept);
        assert_eq!(verdict(&e, "r1", t0).await, Verdict::Matched);
        assert_eq!(
            verdict(&e, "r1", t0 + Duration::minutes(1)).await,
            Verdict::Matched
        );
        assert_eq!(
            verdict(&e, "r1", t0 + Duration::minutes(2)).await,
            Verdict::Throttled
        );
    }
    let recorded = kept.0.lock().unwrap().clone();
    assert_eq!(recorded.len(), 2, "only allowed runs are recorded");
    assert!(recorded
        .iter()
        .all(|r| r.rule == "w/greet" && r.key == "r1" && r.window.as_secs() == 600));

    // A restart: a new engine on the same store.
    let e = engine(RULES, &kept);
    assert_eq!(
        verdict(&e, "r1", t0 + Duration::minutes(3)).await,
        Verdict::Throttled,
        "the window filled before the restart is still full"
    );
    assert_eq!(
        verdict(&e, "r2", t0 + Duration::minutes(3)).await,
        Verdict::Matched,
        "another key has its own window"
    );
    // The first run's window ended; the second's has not.
    let later = t0 + Duration::minutes(10) + Duration::seconds(1);
    assert_eq!(verdict(&e, "r1", later).await, Verdict::Matched);
    assert_eq!(verdict(&e, "r1", later).await, Verdict::Throttled);
    assert_eq!(
        verdict(&e, "r1", t0 + Duration::minutes(21)).await,
        Verdict::Matched,
        "every window ended"
    );
}

#[tokio::test]
async fn recorded_runs_of_a_rule_missing_at_load_are_dropped_as_by_a_reload() {
    let kept = Arc::new(Kept::default());
    let t0 = Utc::now();
    let once = RULES.replace("max: 2", "max: 1");
    {
        let e = engine(&once, &kept);
        assert_eq!(verdict(&e, "r1", t0).await, Verdict::Matched);
    }
    // Started on rules without `greet`, then reloaded with it: a new rule
    // starts fresh, as when a reload drops a rule and brings it back.
    let e = engine(&RULES.replace("name: greet", "name: other"), &kept);
    e.swap(Arc::new(load_str("w.yaml", &once).unwrap()));
    assert_eq!(
        verdict(&e, "r1", t0 + Duration::seconds(1)).await,
        Verdict::Matched
    );
    // Started on rules with it: the window holds.
    let e = engine(&once, &kept);
    assert_eq!(
        verdict(&e, "r1", t0 + Duration::seconds(2)).await,
        Verdict::Throttled
    );
}

#[test]
fn a_store_that_cannot_be_read_is_an_error() {
    let rs = load_str("w.yaml", RULES).unwrap();
    let err = Engine::new(Arc::new(rs), Arc::new(StateStore::in_memory()))
        .with_throttle_persistence(Arc::new(Broken))
        .err()
        .expect("an error");
    assert_eq!(err.to_string(), "throttle windows in nowhere: unreadable");
}
