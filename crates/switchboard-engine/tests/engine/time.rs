//! `time` conditions and `local_now` against the engine's clock (the
//! input's `now`): business hours in Europe and the US on both sides of
//! each daylight-saving change, ranges over midnight, weekdays and dates,
//! and which time zone wins (condition, rule, file, UTC).

use std::sync::Arc;

use crate::replies::replies;
use serde_json::json;
use switchboard_engine::action::Scope;
use switchboard_engine::{Engine, EventInput, RecordingExecutor, StateStore};
use switchboard_workflow::load_str;

fn engine(yaml: &str) -> Engine {
    let rs = load_str("w.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    Engine::new(Arc::new(rs), Arc::new(StateStore::in_memory())).tracing_every_rule()
}

fn message_at(now: &str) -> EventInput {
    EventInput {
        event_type: "message_created".into(),
        event: Arc::new(json!({"id": "m1", "content": "hi", "sender_type": "User",
            "sender_id": "u1", "sender_name": "Ann", "chat_room_id": "r1"})),
        agent: Arc::new(json!({"id": "a1", "handle": "acme/bot", "name": "Bot"})),
        chat: None,
        sender: None,
        now: now.parse().unwrap_or_else(|e| panic!("{now}: {e}")),
    }
}

/// The rules that matched a message at `now` (UTC, RFC 3339).
async fn matched(e: &Engine, now: &str) -> Vec<String> {
    let ex = RecordingExecutor::new();
    e.handle(&message_at(now), &Scope::default(), &ex)
        .await
        .matched
}

/// Asserts, for each (instant, rules that match then), what matched.
async fn expect(e: &Engine, cases: &[(&str, &[&str])]) {
    expect_of(e, None, cases).await;
}

/// [`expect`], looking only at the rule `only` when given.
async fn expect_of(e: &Engine, only: Option<&str>, cases: &[(&str, &[&str])]) {
    let mut wrong = Vec::new();
    for (now, want) in cases {
        let mut got = matched(e, now).await;
        got.retain(|id| only.is_none_or(|o| o == id));
        if got != *want {
            wrong.push(format!("at {now}: expected {want:?}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

const BUSINESS_HOURS: &str = r#"version: 1
timezone: Europe/Berlin
rules:
  - name: berlin
    on: message_created
    if:
      - time: { after: "09:00", before: "17:30", weekdays: [mon, tue, wed, thu, fri] }
    do: [ { reply: open } ]
  - name: new-york
    on: message_created
    timezone: America/New_York
    if:
      - time: { after: "09:00", before: "17:00", weekdays: [mon, tue, wed, thu, fri] }
    do: [ { reply: open } ]
"#;

#[tokio::test]
async fn business_hours_in_berlin_across_both_daylight_saving_changes() {
    let e = engine(BUSINESS_HOURS);
    expect_of(
        &e,
        Some("w/berlin"),
        &[
            // Friday 27 March 2026, CET (UTC+1): 09:00 is 08:00 UTC.
            ("2026-03-27T07:59:59Z", &[]),
            ("2026-03-27T08:00:00Z", &["w/berlin"]),
            // 17:30 is out (`before` is exclusive), 17:29:59 in.
            ("2026-03-27T16:29:59Z", &["w/berlin"]),
            ("2026-03-27T16:30:00Z", &[]),
            // Saturday and Sunday (the day of the change) are closed.
            ("2026-03-28T10:00:00Z", &[]),
            ("2026-03-29T10:00:00Z", &[]),
            // Monday 30 March, CEST (UTC+2): 09:00 is 07:00 UTC.
            ("2026-03-30T06:59:59Z", &[]),
            ("2026-03-30T07:00:00Z", &["w/berlin"]),
            ("2026-03-30T15:29:59Z", &["w/berlin"]),
            ("2026-03-30T15:30:00Z", &[]),
            // Friday 23 October, still CEST.
            ("2026-10-23T07:00:00Z", &["w/berlin"]),
            // Monday 26 October, after the change back to CET.
            ("2026-10-26T07:00:00Z", &[]),
            ("2026-10-26T08:00:00Z", &["w/berlin"]),
            ("2026-10-26T16:29:00Z", &["w/berlin"]),
            ("2026-10-26T16:30:00Z", &[]),
        ],
    )
    .await;
}

#[tokio::test]
async fn business_hours_in_new_york_across_both_daylight_saving_changes() {
    let e = engine(BUSINESS_HOURS);
    expect(
        &e,
        &[
            // Friday 6 March 2026, EST (UTC-5): 09:00 is 14:00 UTC.
            ("2026-03-06T13:59:00Z", &["w/berlin"]),
            ("2026-03-06T14:00:00Z", &["w/berlin", "w/new-york"]),
            ("2026-03-06T21:59:00Z", &["w/new-york"]),
            ("2026-03-06T22:00:00Z", &[]),
            // Monday 9 March, the day after the change, EDT (UTC-4).
            ("2026-03-09T12:59:00Z", &["w/berlin"]),
            ("2026-03-09T13:00:00Z", &["w/berlin", "w/new-york"]),
            ("2026-03-09T20:59:00Z", &["w/new-york"]),
            ("2026-03-09T21:00:00Z", &[]),
            // Friday 30 October, EDT; Monday 2 November, EST again.
            ("2026-10-30T13:00:00Z", &["w/berlin", "w/new-york"]),
            ("2026-11-02T13:00:00Z", &["w/berlin"]),
            ("2026-11-02T14:00:00Z", &["w/berlin", "w/new-york"]),
        ],
    )
    .await;
}

#[tokio::test]
async fn an_hour_range_on_the_change_days_follows_the_wall_clock() {
    let e = engine(
        r#"version: 1
rules:
  - name: two-to-three-berlin
    on: message_created
    timezone: Europe/Berlin
    if: [ { time: { after: "02:00", before: "03:00" } } ]
    do: [ { reply: x } ]
  - name: one-to-two-new-york
    on: message_created
    if: [ { time: { after: "01:00", before: "02:00", timezone: America/New_York } } ]
    do: [ { reply: x } ]
"#,
    );
    expect(
        &e,
        &[
            // 29 March in Berlin: 01:59:59 CET, then 03:00 CEST; 02:xx never happens.
            ("2026-03-29T00:59:59Z", &[]),
            ("2026-03-29T01:00:00Z", &[]),
            // 25 October in Berlin: 02:00-03:00 happens twice, two real hours.
            ("2026-10-24T23:59:59Z", &[]),
            ("2026-10-25T00:00:00Z", &["w/two-to-three-berlin"]),
            ("2026-10-25T01:30:00Z", &["w/two-to-three-berlin"]),
            ("2026-10-25T02:00:00Z", &[]),
            // 1 November in New York: 01:00-02:00 happens twice (EDT, then EST).
            ("2026-11-01T04:59:59Z", &[]),
            ("2026-11-01T05:00:00Z", &["w/one-to-two-new-york"]),
            ("2026-11-01T06:30:00Z", &["w/one-to-two-new-york"]),
            ("2026-11-01T07:00:00Z", &[]),
            // 8 March in New York: 01:59:59 EST, then 03:00 EDT.
            ("2026-03-08T06:30:00Z", &["w/one-to-two-new-york"]),
            ("2026-03-08T07:00:00Z", &[]),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_range_over_midnight_weekdays_and_dates() {
    let e = engine(
        r#"version: 1
rules:
  - name: night
    on: message_created
    if: [ { time: { after: "22:00", before: "06:00" } } ]
    do: [ { reply: night } ]
  - name: weekend
    on: message_created
    if: [ { time: { weekdays: [sat, sun] } } ]
    do: [ { reply: weekend } ]
  - name: workday-not-holiday
    on: message_created
    timezone: Europe/Berlin
    if:
      - time: { weekdays: [mon, tue, wed, thu, fri] }
      - not: { time: { dates: ["2026-12-24", "2026-12-25"] } }
    do: [ { reply: work } ]
"#,
    );
    expect(
        &e,
        &[
            // Wednesday 23 December 2026.
            ("2026-12-23T21:59:59Z", &["w/workday-not-holiday"]),
            (
                "2026-12-23T22:00:00Z",
                &["w/night", "w/workday-not-holiday"],
            ),
            // 23:30 UTC is already Thursday the 24th in Berlin: a holiday.
            ("2026-12-23T23:30:00Z", &["w/night"]),
            ("2026-12-24T05:59:59Z", &["w/night"]),
            ("2026-12-24T06:00:00Z", &[]),
            ("2026-12-25T12:00:00Z", &[]),
            // Saturday 26 December, then Monday 28th.
            ("2026-12-26T12:00:00Z", &["w/weekend"]),
            ("2026-12-26T23:00:00Z", &["w/night", "w/weekend"]),
            (
                "2026-12-28T03:00:00Z",
                &["w/night", "w/workday-not-holiday"],
            ),
            ("2026-12-28T12:00:00Z", &["w/workday-not-holiday"]),
        ],
    )
    .await;
}

#[tokio::test]
async fn the_nearest_time_zone_wins_and_named_conditions_take_the_rules() {
    let e = engine(
        r#"version: 1
timezone: America/New_York
conditions:
  morning: { time: { after: "08:00", before: "12:00" } }
rules:
  - name: file-zone
    on: message_created
    if: [ { use: morning } ]
    do: [ { reply: x } ]
  - name: rule-zone
    on: message_created
    timezone: Asia/Tokyo
    if: [ { use: morning } ]
    do: [ { reply: x } ]
  - name: condition-zone
    on: message_created
    timezone: Asia/Tokyo
    if: [ { time: { after: "08:00", before: "12:00", timezone: UTC } } ]
    do: [ { reply: x } ]
"#,
    );
    expect(
        &e,
        &[
            // 08:00 in Tokyo (UTC+9) is 23:00 UTC the day before.
            ("2026-07-01T23:00:00Z", &["w/rule-zone"]),
            // 09:00 UTC is 18:00 in Tokyo and 05:00 in New York (EDT).
            ("2026-07-02T09:00:00Z", &["w/condition-zone"]),
            // 12:30 UTC is 08:30 in New York, 21:30 in Tokyo.
            ("2026-07-02T12:30:00Z", &["w/file-zone"]),
        ],
    )
    .await;
}

#[tokio::test]
async fn local_now_is_now_in_the_rules_time_zone_and_traces_say_what_was_seen() {
    let e = engine(
        r#"version: 1
timezone: Europe/Berlin
rules:
  - name: stamp
    on: message_created
    do: [ { reply: "{{ now }} {{ local_now }}" } ]
  - name: utc
    on: message_created
    timezone: UTC
    if: [ { template: "{{ local_now == now }}" } ]
    do: [ { reply: "{{ local_now }}" } ]
  - name: open
    on: message_created
    if: [ { time: { after: "09:00", before: "17:00" } } ]
    do: [ { reply: open } ]
"#,
    );
    let ex = RecordingExecutor::new();
    let report = e
        .handle(&message_at("2026-07-01T10:00:00Z"), &Scope::default(), &ex)
        .await;
    assert_eq!(
        replies(&ex.actions()),
        [
            "2026-07-01T10:00:00+00:00 2026-07-01T12:00:00+02:00",
            "2026-07-01T10:00:00+00:00",
            "open"
        ]
    );
    let time = &report.trace[2].conditions[0];
    assert!(time.passed);
    assert_eq!(
        time.condition,
        "time after 09:00 before 17:00 (Europe/Berlin)"
    );
    assert_eq!(time.saw, Some(json!("2026-07-01T12:00:00+02:00")));
}
