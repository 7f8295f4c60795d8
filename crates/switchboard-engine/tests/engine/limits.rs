//! Hostile events against bounded workflows: durations rendered from message
//! text and large values fail or pass cleanly, never panic.

use std::sync::Arc;

use serde_json::json;
use switchboard_engine::action::Scope;
use switchboard_engine::{Engine, EventInput, Finish, RecordingExecutor, StateStore};
use switchboard_workflow::load_str;

fn input(content: &str) -> EventInput {
    EventInput {
        event_type: "message_created".into(),
        event: Arc::new(json!({"id": "m1", "content": content, "chat_room_id": "r1"})),
        agent: Arc::new(json!({"id": "a1"})),
        chat: None,
        sender: None,
        now: chrono::Utc::now(),
    }
}

#[tokio::test]
async fn a_ttl_rendered_from_the_message_is_bounded() {
    let rs = load_str(
        "w.yaml",
        r#"version: 1
rules:
  - name: remember
    on: message_created
    do:
      - set: { key: k, value: 1, ttl: "{{ event.content }}" }
      - incr: { key: n, ttl: "{{ event.content }}" }
      - reply: ok
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let engine = Engine::new(Arc::new(rs), Arc::new(StateStore::in_memory()));
    for huge in ["100000000d", "99999999999999999999d", "1e300"] {
        let ex = RecordingExecutor::new();
        let report = engine.handle(&input(huge), &Scope::default(), &ex).await;
        let Finish::Failed { reason } = &report.outcome else {
            panic!("{huge}: {:?}", report.outcome);
        };
        assert!(reason.starts_with("w/remember: set: `ttl`"), "{reason}");
        assert!(ex.actions().is_empty(), "{huge}: nothing after the failure");
    }
    // Numbers of seconds too: a huge one is refused, a good one is used.
    let rs = load_str(
        "n.yaml",
        "version: 1\nrules:\n  - name: n\n    on: message_created\n    do:\n      - set: { key: k, value: 1, ttl: \"{{ event.content | float }}\" }\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let engine = Engine::new(Arc::new(rs), Arc::new(StateStore::in_memory()));
    let ex = RecordingExecutor::new();
    let report = engine.handle(&input("1e300"), &Scope::default(), &ex).await;
    assert!(
        matches!(&report.outcome, Finish::Failed { reason } if reason.contains("longer than the maximum")),
        "{:?}",
        report.outcome
    );
    let report = engine.handle(&input("60"), &Scope::default(), &ex).await;
    assert_eq!(report.outcome, Finish::Done);
}

#[tokio::test]
async fn a_long_throttle_window_does_not_overflow() {
    let rs = load_str(
        "w.yaml",
        "version: 1\nrules:\n  - name: t\n    on: message_created\n    throttle: { max: 1, per: 3650d }\n    do: [{ reply: ok }]\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let engine = Engine::new(Arc::new(rs), Arc::new(StateStore::in_memory()));
    let ex = RecordingExecutor::new();
    let mut late = input("x");
    // Near the calendar's end: `at + window` would overflow.
    late.now = chrono::DateTime::<chrono::Utc>::MAX_UTC - chrono::Duration::days(1);
    for _ in 0..2 {
        engine.handle(&late, &Scope::default(), &ex).await;
    }
    assert_eq!(ex.actions().len(), 1, "the second run is throttled");
}

#[tokio::test]
async fn a_355_kb_message_goes_through_a_single_expression() {
    let rs = load_str(
        "w.yaml",
        "version: 1\nrules:\n  - name: keep\n    on: message_created\n    do:\n      - set: { key: last, value: \"{{ event.content }}\" }\n      - reply: \"{{ event.content }}\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let engine = Engine::new(Arc::new(rs), Arc::new(StateStore::in_memory()));
    let content = "<\"é".repeat(355_000 / 4);
    let ex = RecordingExecutor::new();
    let report = engine
        .handle(&input(&content), &Scope::default(), &ex)
        .await;
    assert_eq!(report.outcome, Finish::Done, "{:?}", report.outcome);
    assert_eq!(
        engine.state().get("last", chrono::Utc::now()),
        Some(json!(content))
    );
}
