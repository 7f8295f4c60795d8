//! What users meet while an agent runs, against the sandbox over loopback
//! (in process, and the binary for a start-up backlog): rooms handled one
//! message at a time but in parallel with each other, live and when draining, an event in flight keeping its rules through a reload, a
//! retry within one run not repeating finished actions, and a successful
//! `on_error` fallback ending the event.

use crate::support::cli::{run_command, Running};
use crate::support::harness::{Harness, WAIT};
use crate::support::seeded;

use std::time::Duration;

use band_client::rest::{HumanApi, RestConfig};
use band_sandbox::RunningSandbox;
use band_wire::model::Mention;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use switchboard::agent::Handled;
use switchboard::rules::reload::ReloadOutcome;
use switchboard_engine::run::Finish;

/// Arms a fault (`POST /_sandbox/faults`).
async fn fault(sb: &RunningSandbox, body: Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/_sandbox/faults", sb.rest_url()))
        .json(&body)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("POST /_sandbox/faults");
    assert!(
        resp.status().is_success(),
        "fault {body}: {}",
        resp.status()
    );
}

/// The faults that fired so far.
async fn fired(sb: &RunningSandbox) -> Vec<Value> {
    let faults: Value = reqwest::get(format!("{}/_sandbox/faults", sb.rest_url()))
        .await
        .expect("GET /_sandbox/faults")
        .json()
        .await
        .expect("the faults are JSON");
    faults["fired"].as_array().cloned().unwrap_or_default()
}

/// A temporary workflows folder holding `flow.yaml`.
fn folder(yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flow.yaml"), yaml).unwrap();
    dir
}

fn mention(id: &str) -> [Mention; 1] {
    [Mention {
        id: Some(id.to_owned()),
        ..Mention::default()
    }]
}

fn is_message(h: &Handled, id: &str) -> bool {
    h.event_type == "message_created" && h.message_id.as_deref() == Some(id)
}

/// One processing attempt of a message as the sandbox recorded it.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    started: DateTime<Utc>,
    finished: DateTime<Utc>,
}

fn time(v: &Value) -> DateTime<Utc> {
    let text = v.as_str().unwrap_or_else(|| panic!("no time in {v}"));
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .with_timezone(&Utc)
}

/// The bot's attempts at `message` once it is processed (polled up to `WAIT`).
async fn attempts_when_processed(sb: &RunningSandbox, bot: &str, message: &str) -> Vec<Attempt> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let state = seeded::sandbox_state(sb).await;
        let delivery = state["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == message)
            .map(|m| m["delivery"][bot].clone())
            .unwrap_or(Value::Null);
        if delivery["status"] == "processed" {
            return delivery["attempts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| Attempt {
                    started: time(&a["started_at"]),
                    finished: time(&a["finished_at"]),
                })
                .collect();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{message} not processed in time: {delivery}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

const ECHO: &str = r#"version: 1
rules:
  - name: echo
    on: message_created
    if:
      - event.sender_type: User
    do:
      - post_event:
          type: thought
          content: "working"
      - reply: "echo: {{ event.content | strip_mentions | trim }}"
"#;

const PER_ROOM: usize = 3;
const HOLD_MS: u64 = 400;

/// Two rooms of alice's with the bot, each message's first action (an
/// event, not `/messages`, whose path the lifecycle marks share) held
/// `HOLD_MS` by the sandbox; `PER_ROOM` questions asked in each,
/// interleaved. The rooms and the ids asked in each.
async fn two_busy_rooms(sb: &RunningSandbox, bot: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let alice = HumanApi::new(RestConfig::new(sb.rest_url(), "alice-key")).unwrap();
    let mut rooms = Vec::new();
    for name in ["Serial A", "Serial B"] {
        let room = alice.create_chat(Some(name)).await.unwrap().id;
        alice.add_participant(&room, bot, None).await.unwrap();
        fault(
            sb,
            json!({"delay": {"method": "POST", "path": format!("/agent/chats/{room}/events"),
                             "ms": HOLD_MS, "count": PER_ROOM}}),
        )
        .await;
        rooms.push(room);
    }
    let mut sent: Vec<Vec<String>> = vec![Vec::new(); rooms.len()];
    for i in 0..PER_ROOM {
        for (r, room) in rooms.iter().enumerate() {
            let text = format!("room {r} question {i}");
            let id = alice
                .send_message(room, &text, &mention(bot))
                .await
                .unwrap()
                .id;
            sent[r].push(id);
        }
    }
    (rooms, sent)
}

/// Within a room each attempt starts after the previous one finished
/// (serial) and the replies follow the questions (in order); across rooms
/// attempts overlap (parallel).
async fn assert_serial_rooms_in_parallel(
    sb: &RunningSandbox,
    bot: &str,
    rooms: &[String],
    sent: &[Vec<String>],
) {
    let mut per_room = Vec::new();
    for ids in sent {
        let mut attempts = Vec::new();
        for id in ids {
            let a = attempts_when_processed(sb, bot, id).await;
            assert_eq!(a.len(), 1, "{id} took {} attempts", a.len());
            attempts.push(a[0]);
        }
        per_room.push(attempts);
    }
    let state = seeded::sandbox_state(sb).await;
    for (r, attempts) in per_room.iter().enumerate() {
        for pair in attempts.windows(2) {
            assert!(
                pair[0].finished <= pair[1].started,
                "room {r}: an attempt started at {} before the previous one finished at {}",
                pair[1].started,
                pair[0].finished
            );
        }
        // Each attempt waited for its held action.
        for a in attempts {
            assert!(
                a.finished - a.started >= chrono::Duration::milliseconds(HOLD_MS as i64),
                "room {r}: {a:?} shorter than the hold"
            );
        }
        let mut replies: Vec<(String, String)> = state["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| {
                m["chat_room_id"] == rooms[r].as_str()
                    && m["sender_id"] == bot
                    && m["message_type"] == "text"
            })
            .map(|m| {
                let at = m["inserted_at"].as_str().unwrap_or_default().to_owned();
                (at, m["content"].as_str().unwrap_or_default().to_owned())
            })
            .collect();
        replies.sort();
        let replies: Vec<String> = replies.into_iter().map(|(_, text)| text).collect();
        assert_eq!(replies.len(), PER_ROOM, "room {r}: {replies:?}");
        for (i, reply) in replies.iter().enumerate() {
            assert!(
                reply.ends_with(&format!("echo: room {r} question {i}")),
                "room {r}: reply {i} is {reply:?}"
            );
        }
    }
    let overlap = per_room[0].iter().any(|a| {
        per_room[1]
            .iter()
            .any(|b| a.started < b.finished && b.started < a.finished)
    });
    assert!(
        overlap,
        "the rooms never ran at the same time: {per_room:?}"
    );
}

/// Live messages: one room serial and in order, rooms in parallel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_room_is_serial_and_in_order_while_rooms_run_in_parallel() {
    let dir = folder(ECHO);
    let h = Harness::start_with(dir.path().into(), Vec::new()).await;
    let (rooms, sent) = two_busy_rooms(&h.sb, &h.bot_id).await;
    assert_serial_rooms_in_parallel(&h.sb, &h.bot_id, &rooms, &sent).await;
    h.stop().await;
}

/// A backlog waiting at start-up (the `/next` drain): the same guarantees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_drained_serially_per_room_and_rooms_in_parallel() {
    let (sb, ..) = seeded::seeded_sandbox().await;
    let bot = seeded::sandbox_state(&sb).await["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["handle"] == "alice/triage-bot")
        .and_then(|a| a["id"].as_str())
        .expect("the seed has the triage bot")
        .to_owned();
    let (rooms, sent) = two_busy_rooms(&sb, &bot).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flow.yaml"), ECHO).unwrap();
    let agent = Running::spawn(&mut run_command(&sb, dir.path()));
    assert_serial_rooms_in_parallel(&sb, &bot, &rooms, &sent).await;
    agent.stop_cleanly("agent", WAIT).await;
    sb.shutdown().await.unwrap();
}

const OLD_RULES: &str = r#"version: 1
rules:
  - name: answer
    on: message_created
    if:
      - event.sender_type: User
    do:
      - post_event:
          type: thought
          content: "old rules"
      - reply: "old first"
      - reply: "old second"
"#;

const NEW_RULES: &str = r#"version: 1
rules:
  - name: answer
    on: message_created
    if:
      - event.sender_type: User
    do:
      - post_event:
          type: thought
          content: "new rules"
      - reply: "new first"
      - reply: "new second"
"#;

/// The bot's text replies after `after`, oldest first.
async fn replies_after(h: &Harness, after: &str) -> Vec<String> {
    h.bot_messages_after(after)
        .await
        .into_iter()
        .filter(|m| m.message_type == "text")
        .map(|m| m.content)
        .collect()
}

/// Replies (each starting with its mention of the sender) end with `texts`, in order.
fn assert_replies(replies: &[String], texts: &[&str]) {
    assert_eq!(
        replies.len(),
        texts.len(),
        "{replies:?}, expected {texts:?}"
    );
    for (reply, text) in replies.iter().zip(texts) {
        assert!(reply.ends_with(text), "{replies:?}, expected {texts:?}");
    }
}

/// The first action (an event) is held by the sandbox; the rules change meanwhile. The
/// message in flight finishes on the old rules (both replies), the next one
/// runs on the new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_in_flight_finishes_on_its_rules_through_a_reload() {
    let dir = folder(OLD_RULES);
    let mut h = Harness::start_full(dir.path().into(), Vec::new(), true).await;
    let path = format!("/agent/chats/{}/events", h.room);
    fault(
        &h.sb,
        json!({"delay": {"method": "POST", "path": path, "ms": 2000, "count": 1}}),
    )
    .await;
    let first = h
        .bob
        .send_message(&h.room, "first", &mention(&h.bot_id))
        .await
        .unwrap()
        .id;
    // Wait until the first action is being held.
    tokio::time::timeout(WAIT, async {
        while fired(&h.sb).await.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the first action never reached the sandbox");
    std::fs::write(dir.path().join("flow.yaml"), NEW_RULES).unwrap();
    let report = tokio::time::timeout(WAIT, h.reloads.recv())
        .await
        .expect("no reload in time")
        .expect("the agent stopped");
    assert!(
        matches!(report.outcome, ReloadOutcome::Reloaded { .. }),
        "the reload failed: {report:?}"
    );
    // The reload landed while the first message was still in flight.
    while let Ok(done) = h.handled.try_recv() {
        assert!(
            !is_message(&done, &first),
            "the first message finished before the reload; the test proves nothing"
        );
    }
    h.next_handled(|e| is_message(e, &first)).await;
    assert_replies(
        &replies_after(&h, &first).await,
        &["old first", "old second"],
    );
    let (second, _) = h.bob_says("second").await;
    assert_replies(
        &replies_after(&h, &second).await,
        &["new first", "new second"],
    );
    h.stop().await;
}

const TWO_STEPS: &str = r#"version: 1
rules:
  - name: steps
    on: message_created
    if:
      - event.sender_type: User
    do:
      - reply: "step one"
      - post_event:
          type: thought
          content: "step two"
"#;

/// The second action fails once (a 400 the client does not retry); the
/// message fails and is retried in the same run: the reply that finished
/// the first time is not sent again, the event goes out once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_within_one_run_does_not_repeat_finished_actions() {
    let dir = folder(TWO_STEPS);
    let mut h = Harness::start_configured(dir.path().into(), |c| {
        c.max_attempts = 3;
        c.retry_delay = Duration::from_millis(200);
    })
    .await;
    let path = format!("/agent/chats/{}/events", h.room);
    fault(
        &h.sb,
        json!({"fail": {"method": "POST", "path": path, "status": 400, "count": 1}}),
    )
    .await;
    let (id, first) = h.bob_says("do both").await;
    assert!(
        matches!(first.report.outcome, Finish::Failed { .. }),
        "the first attempt should have failed: {:?}",
        first.report.outcome
    );
    let retried = h.next_handled(|e| is_message(e, &id)).await;
    assert!(
        retried.report.outcome == Finish::Done,
        "the retry should have succeeded: {:?}",
        retried.report.outcome
    );
    assert_eq!(h.settled_status(&id).await, "processed");
    let after = h.bot_messages_after(&id).await;
    let replies = after
        .iter()
        .filter(|m| m.message_type == "text" && m.content.ends_with("step one"))
        .count();
    let events = after
        .iter()
        .filter(|m| m.message_type == "thought" && m.content == "step two")
        .count();
    assert_eq!(replies, 1, "the reply was repeated: {after:?}");
    assert_eq!(events, 1, "{after:?}");
    h.stop().await;
}

const FALLBACK: &str = r#"version: 1
rules:
  - name: first
    on: message_created
    priority: 10
    if:
      - event.sender_type: User
    do:
      - add_participant: nobody-by-this-handle
      - reply: "not reached"
    on_error:
      - reply: "fallback ran"
  - name: later
    on: message_created
    if:
      - event.sender_type: User
    do:
      - reply: "later rule ran"
"#;

/// docs/workflow-reference.md: "A fallback that succeeds ends the event as
/// handled: later rules do not run."
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_fallback_ends_the_event_as_handled() {
    let dir = folder(FALLBACK);
    let mut h = Harness::start_with(dir.path().into(), Vec::new()).await;
    let (id, handled) = h.bob_says("hello").await;
    assert!(
        handled.report.outcome == Finish::Done,
        "{:?}",
        handled.report.outcome
    );
    assert_eq!(h.settled_status(&id).await, "processed");
    assert!(
        !handled.report.matched.iter().any(|r| r == "flow/later"),
        "the later rule ran: {:?}",
        handled.report.matched
    );
    // Give a wrongly running later rule time to post, then look.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_replies(&replies_after(&h, &id).await, &["fallback ran"]);
    h.stop().await;
}
