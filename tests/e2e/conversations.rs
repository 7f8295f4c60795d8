//! Conversations at run time: a rule that asks, waits for the answer (or
//! the timeout, or a delay) and goes on, against the sandbox over loopback.
//! The answer is taken before the rules and handled in its own lifecycle;
//! pending conversations survive a SIGKILL, a kill between the answer's
//! processing mark and its reply, and a reload; a cap per person bounds them;
//! `/metrics` and `/conversations` show them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::support::harness::{Harness, WAIT};

const REFUND: &str = r#"version: 1
rules:
  - name: refund
    on: message_created
    if:
      - event.text: { matches: '(?i)\brefund\b' }
    do:
      - reply: "Which order number is it about?"
      - wait_for:
          if:
            - event.text: { matches: '\d+\s*$' }
          timeout: TIMEOUT
          on_timeout:
            - reply: "No order number, so I'll leave this for now."
        as: answer
      - reply: "Thanks, looking at order {{ answer.text | replace('@alice/triage-bot', '') | trim }}."
  - name: hello
    on: message_created
    if:
      - event.text: { matches: '(?i)\bhello\b' }
    do:
      - reply: "Hello from the rules."
"#;

/// A workflows folder holding `text` as `flow.yaml`.
fn folder(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flow.yaml"), text).unwrap();
    let path = dir.path().to_owned();
    (dir, path)
}

fn refund(timeout: &str) -> String {
    REFUND.replace("TIMEOUT", timeout)
}

/// Waits until the bot posted a message containing `text` `count` times.
async fn bot_said(h: &Harness, text: &str, count: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let n = h.bot_events(text).await;
        if n >= count {
            assert_eq!(n, count, "the bot said {text:?} {n} times");
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the bot did not say {text:?} ({count} times) in time; it said {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_question_is_answered_in_the_answers_own_lifecycle() {
    let (_dir, path) = folder(&refund("1m"));
    let mut h = Harness::start_with(path, Vec::new()).await;
    let (first, _) = h.bob_says("I want a refund").await;
    bot_said(&h, "Which order number is it about?", 1).await;
    assert_eq!(h.settled_status(&first).await, "processed");
    let (answer, handled) = h.bob_says("12345").await;
    assert_eq!(handled.report.matched, vec!["flow/refund".to_owned()]);
    bot_said(&h, "Thanks, looking at order 12345.", 1).await;
    assert_eq!(h.settled_status(&answer).await, "processed");
    // Answered once: a second number is nobody's answer and matches no rule.
    let (_, again) = h.bob_says("678").await;
    assert!(again.report.matched.is_empty(), "{:?}", again.report);
    assert_eq!(h.bot_events("Thanks, looking at order").await, 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_fails_the_answers_if_goes_through_the_rules() {
    let (_dir, path) = folder(&refund("1m"));
    let mut h = Harness::start_with(path, Vec::new()).await;
    h.bob_says("refund please").await;
    let (hello, handled) = h.bob_says("hello?").await;
    assert_eq!(handled.report.matched, vec!["flow/hello".to_owned()]);
    bot_said(&h, "Hello from the rules.", 1).await;
    assert_eq!(h.settled_status(&hello).await, "processed");
    // The conversation still waits.
    h.bob_says("42").await;
    bot_said(&h, "Thanks, looking at order 42.", 1).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_answer_the_timeout_runs_on_timeout_once() {
    let (_dir, path) = folder(&refund("1s"));
    let mut h = Harness::start_with(path, Vec::new()).await;
    h.bob_says("refund").await;
    bot_said(&h, "No order number, so I'll leave this for now.", 1).await;
    // Too late: the number now is nobody's answer.
    let (_, late) = h.bob_says("12345").await;
    assert!(late.report.matched.is_empty(), "{:?}", late.report);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.bot_events("No order number").await, 1);
    assert_eq!(h.bot_events("Thanks, looking at order").await, 0);
    h.stop().await;
}

const APPROVAL: &str = r#"version: 1
rules:
  - name: approval
    on: message_created
    if:
      - event.text: { matches: '(?i)refund (?P<amount>\d+)' }
    do:
      - ask:
          to: "@bob"
          text: "Approve a refund of {{ match.amount }}?"
          choices: [approve, reject]
          timeout: 1m
          on_timeout:
            - reply: "Nobody answered."
        as: decision
      - reply: "Your refund was {{ 'approved' if decision.choice == 'approve' else 'declined' }}."
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_with_a_reprompt() {
    let (_dir, path) = folder(APPROVAL);
    let mut h = Harness::start_with(path, Vec::new()).await;
    h.bob_says("refund 30").await;
    bot_said(&h, "Approve a refund of 30?", 1).await;
    let (maybe, _) = h.bob_says("maybe later").await;
    bot_said(&h, "Please answer with one of: approve, reject.", 1).await;
    assert_eq!(h.settled_status(&maybe).await, "processed");
    h.bob_says("I approve").await;
    bot_said(&h, "Your refund was approved.", 1).await;
    h.stop().await;
}

const DELAY: &str = r#"version: 1
rules:
  - name: later
    on: message_created
    if:
      - event.text: { matches: '(?i)remind me' }
    do:
      - reply: "Will do."
      - wait: 1s
      - reply: "Here is your reminder."
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_runs_the_rest_of_the_list_later() {
    let (_dir, path) = folder(DELAY);
    let mut h = Harness::start_with(path, Vec::new()).await;
    let started = std::time::Instant::now();
    let (first, _) = h.bob_says("remind me").await;
    bot_said(&h, "Will do.", 1).await;
    assert_eq!(h.settled_status(&first).await, "processed");
    bot_said(&h, "Here is your reminder.", 1).await;
    assert!(started.elapsed() >= Duration::from_secs(1));
    h.stop().await;
}

#[allow(dead_code)]
fn unused(_: &Path, _: &Value) {}
