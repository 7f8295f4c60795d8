//! Conversations at run time: a rule that asks, waits for the answer (or
//! the timeout, or a delay) and goes on, against the sandbox over loopback.
//! The answer is taken before the rules and handled in its own lifecycle;
//! pending conversations survive a SIGKILL, a kill between the answer's
//! processing mark and its reply, and a reload; a cap per person bounds them;
//! `/metrics` and `/conversations` show them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use band_sandbox::RunningSandbox;
use serde_json::{json, Value};

use crate::support::cli::{run_command, Running};
use crate::support::harness::{Harness, WAIT};
use crate::support::seeded;
use switchboard::rules::conversations::PendingOnReload;
use switchboard::rules::reload::ReloadOutcome;

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
      - reply: "Thanks, looking at order {{ answer.content | strip_mentions }}."
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

/// Bound on one step of a process test (a start-up, a reply, a settle).
const STEP: Duration = Duration::from_secs(20);

/// `switchboard run` on `workflows` with its state in `state`, no watching.
fn agent(sb: &RunningSandbox, workflows: &Path, state: &Path, extra: &[&str]) -> Running {
    let mut cmd = run_command(sb, workflows);
    cmd.arg("--state-dir")
        .arg(state)
        .args(["--no-watch", "--retry-delay", "200ms"])
        .args(extra);
    Running::spawn(&mut cmd)
}

async fn started(agent: &mut Running) {
    agent
        .wait_for_stderr("startup sync", STEP, |l| l.contains("startup sync done"))
        .await;
}

/// How many of the bot's messages contain `text`.
async fn said(sb: &RunningSandbox, bot: &str, text: &str) -> usize {
    seeded::sandbox_state(sb).await["messages"]
        .as_array()
        .expect("messages in the sandbox state")
        .iter()
        .filter(|m| m["sender_id"] == bot && m["content"].as_str().unwrap_or("").contains(text))
        .count()
}

/// Waits until the bot said `text` at least once; panics with the agent's logs.
async fn until_said(sb: &RunningSandbox, bot: &str, text: &str, agent: &Running) {
    tokio::time::timeout(STEP, async {
        while said(sb, bot, text).await == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the bot never said {text:?}; logs:\n{}",
            agent.stderr_lines().join("\n")
        )
    });
}

/// The bot's delivery status of `message`, once it is processed or failed.
async fn settled(sb: &RunningSandbox, bot: &str, message: &str, agent: &Running) -> String {
    tokio::time::timeout(STEP, async {
        loop {
            let state = seeded::sandbox_state(sb).await;
            let status = state["messages"]
                .as_array()
                .expect("messages")
                .iter()
                .find(|m| m["id"] == message)
                .and_then(|m| m["delivery"][bot]["status"].as_str())
                .unwrap_or("")
                .to_owned();
            if status == "processed" || status == "failed" {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("not settled; logs:\n{}", agent.stderr_lines().join("\n")))
}

async fn fault(sb: &RunningSandbox, body: Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/_sandbox/faults", sb.rest_url()))
        .json(&body)
        .send()
        .await
        .expect("arm a fault");
    assert!(resp.status().is_success(), "faults: {}", resp.status());
}

/// Waits until the sandbox began delaying a request `held` accepts.
async fn held(sb: &RunningSandbox, agent: &Running, held: impl Fn(&str, &str) -> bool) {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let faults: Value = reqwest::get(format!("{}/_sandbox/faults", sb.rest_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let hit = faults["fired"].as_array().unwrap().iter().any(|f| {
            f["kind"] == "delay"
                && held(
                    f["method"].as_str().unwrap_or(""),
                    f["path"].as_str().unwrap_or(""),
                )
        });
        if hit {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no delayed request; logs:\n{}",
            agent.stderr_lines().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_conversation_survives_a_sigkill_and_still_takes_its_answer() {
    let (sb, bob, room, bot) = seeded::seeded_sandbox().await;
    let (_dir, workflows) = folder(&refund("10m"));
    let state = tempfile::tempdir().unwrap();
    let mut first = agent(&sb, &workflows, state.path(), &[]);
    started(&mut first).await;
    let question = seeded::ask(&bob, &room, &bot, "refund please").await;
    until_said(&sb, &bot, "Which order number", &first).await;
    assert_eq!(settled(&sb, &bot, &question, &first).await, "processed");
    first.signal("KILL");
    first.wait_exit(STEP).await;

    let mut second = agent(&sb, &workflows, state.path(), &[]);
    started(&mut second).await;
    let answer = seeded::ask(&bob, &room, &bot, "4711").await;
    until_said(&sb, &bot, "Thanks, looking at order 4711.", &second).await;
    assert_eq!(settled(&sb, &bot, &answer, &second).await, "processed");
    let logs = second.stop_cleanly("the restarted agent", STEP).await;
    assert!(
        logs.iter()
            .any(|l| l.contains("pending conversations kept from the last run")),
        "{}",
        logs.join("\n")
    );
    assert_eq!(said(&sb, &bot, "Thanks, looking at order").await, 1);
    sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_that_passed_while_the_agent_was_down_fires_at_start_once() {
    let (sb, bob, room, bot) = seeded::seeded_sandbox().await;
    let (_dir, workflows) = folder(&refund("1s"));
    let state = tempfile::tempdir().unwrap();
    let mut first = agent(&sb, &workflows, state.path(), &[]);
    started(&mut first).await;
    // The timer fires after a second; the agent dies before that.
    seeded::ask(&bob, &room, &bot, "refund please").await;
    until_said(&sb, &bot, "Which order number", &first).await;
    first.signal("KILL");
    first.wait_exit(STEP).await;
    assert_eq!(said(&sb, &bot, "No order number").await, 0);
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    let mut second = agent(&sb, &workflows, state.path(), &[]);
    started(&mut second).await;
    until_said(&sb, &bot, "No order number", &second).await;
    // Once: neither a second start nor time passing fires it again.
    let logs = second.stop_cleanly("the restarted agent", STEP).await;
    let mut third = agent(&sb, &workflows, state.path(), &[]);
    started(&mut third).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    third.stop_cleanly("the third agent", STEP).await;
    assert_eq!(
        said(&sb, &bot, "No order number").await,
        1,
        "{}",
        logs.join("\n")
    );
    sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_between_the_answers_processing_mark_and_its_reply_continues_once() {
    let (sb, bob, room, bot) = seeded::seeded_sandbox().await;
    let (_dir, workflows) = folder(&refund("10m"));
    let state = tempfile::tempdir().unwrap();
    let mut first = agent(&sb, &workflows, state.path(), &[]);
    started(&mut first).await;
    let question = seeded::ask(&bob, &room, &bot, "refund please").await;
    until_said(&sb, &bot, "Which order number", &first).await;
    assert_eq!(settled(&sb, &bot, &question, &first).await, "processed");
    // Delay rules match paths by substring, and the processing mark's path
    // contains the reply's: hold the mark first, then arm the reply's delay.
    fault(
        &sb,
        json!({"delay": {"method": "POST", "path": "/processing", "ms": 1_000}}),
    )
    .await;
    let answer = seeded::ask(&bob, &room, &bot, "4711").await;
    held(&sb, &first, |m, p| {
        m == "POST" && p.ends_with("/processing")
    })
    .await;
    let reply_path = format!("/chats/{room}/messages");
    fault(
        &sb,
        json!({"delay": {"method": "POST", "path": reply_path, "ms": 1_000}}),
    )
    .await;
    held(&sb, &first, |m, p| m == "POST" && p.ends_with(&reply_path)).await;
    first.signal("KILL");
    first.wait_exit(STEP).await;
    // The held reply died with the agent's connection.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(said(&sb, &bot, "Thanks, looking at order").await, 0);
    fault(&sb, json!({"clear": true})).await;

    let mut second = agent(&sb, &workflows, state.path(), &[]);
    started(&mut second).await;
    assert_eq!(settled(&sb, &bot, &answer, &second).await, "processed");
    until_said(&sb, &bot, "Thanks, looking at order 4711.", &second).await;
    // A later number is nobody's answer: the conversation was consumed.
    let later = seeded::ask(&bob, &room, &bot, "4712").await;
    assert_eq!(settled(&sb, &bot, &later, &second).await, "processed");
    let logs = second.stop_cleanly("the restarted agent", STEP).await;
    assert!(
        logs.iter()
            .any(|l| l.contains("served again: goes on with the conversation it answered")),
        "{}",
        logs.join("\n")
    );
    assert_eq!(
        said(&sb, &bot, "Thanks, looking at order").await,
        1,
        "{}",
        logs.join("\n")
    );
    assert_eq!(said(&sb, &bot, "Which order number").await, 1);
    sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_while_pending_keeps_the_actions_it_started_with_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flow.yaml"), refund("1m")).unwrap();
    let mut h = Harness::start_full(dir.path().to_owned(), Vec::new(), true).await;
    h.bob_says("refund please").await;
    bot_said(&h, "Which order number is it about?", 1).await;
    let changed = refund("1m").replace("Thanks, looking at order", "Now checking order");
    std::fs::write(dir.path().join("flow.yaml"), changed).unwrap();
    let report = tokio::time::timeout(WAIT, h.reloads.recv())
        .await
        .expect("no reload in time")
        .expect("the agent stopped");
    assert!(
        matches!(report.outcome, ReloadOutcome::Reloaded { ref changed, .. } if changed == &["flow/refund".to_owned()]),
        "{:?}",
        report.outcome
    );
    assert_eq!(
        report.conversations,
        PendingOnReload {
            pending: 1,
            rule_changed: 1
        }
    );
    h.bob_says("99").await;
    bot_said(&h, "Thanks, looking at order 99.", 1).await;
    // New conversations run the new rule.
    h.bob_says("another refund").await;
    h.bob_says("100").await;
    bot_said(&h, "Now checking order 100.", 1).await;
    assert_eq!(h.bot_events("Now checking order 99").await, 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_cap_per_person_the_oldest_ends_with_its_on_timeout() {
    let (_dir, path) = folder(&refund("1m"));
    let mut h = Harness::start_configured(path, |config| config.max_pending_per_person = 2).await;
    h.bob_says("refund one").await;
    h.bob_says("refund two").await;
    bot_said(&h, "Which order number is it about?", 2).await;
    assert_eq!(h.bot_events("No order number").await, 0);
    h.bob_says("refund three").await;
    bot_said(&h, "No order number, so I'll leave this for now.", 1).await;
    // The two left answer in order, oldest first; then none is left.
    h.bob_says("55").await;
    h.bob_says("56").await;
    bot_said(&h, "Thanks, looking at order 55.", 1).await;
    bot_said(&h, "Thanks, looking at order 56.", 1).await;
    let (_, none) = h.bob_says("57").await;
    assert!(none.report.matched.is_empty(), "{:?}", none.report);
    assert_eq!(h.bot_events("No order number").await, 1);
    h.stop().await;
}

/// A port nobody listens on right now.
fn free_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// The value of the pending gauge in `/metrics`.
async fn pending_gauge(addr: std::net::SocketAddr) -> Option<f64> {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("switchboard_conversations_pending "))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_the_conversations_list_show_what_is_pending() {
    let (_dir, path) = folder(&refund("10m"));
    let addr = free_addr();
    let mut h = Harness::start_configured(path, |config| config.metrics_addr = Some(addr)).await;
    assert_eq!(pending_gauge(addr).await, Some(0.0));
    let (_, asked) = h.bob_says("refund please").await;
    let bob = asked.event["sender_id"].clone();
    bot_said(&h, "Which order number is it about?", 1).await;
    assert_eq!(pending_gauge(addr).await, Some(1.0));
    let resp = reqwest::get(format!("http://{addr}/conversations"))
        .await
        .unwrap();
    // The sandbox console, on another origin, reads it like `/handled`.
    assert_eq!(
        resp.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("*"),
        "{:?}",
        resp.headers()
    );
    let list: Value = resp.json().await.unwrap();
    let list = list.as_array().expect("a JSON list");
    assert_eq!(list.len(), 1, "{list:?}");
    let c = &list[0];
    assert_eq!(c["rule"], "flow/refund");
    assert_eq!(c["room"], h.room.as_str());
    assert_eq!(c["kind"], "wait_for");
    assert_eq!(c["waiting_for"], serde_json::json!([bob]));
    assert!(
        c["id"]
            .as_str()
            .is_some_and(|id| id.ends_with("/flow/refund#do1")),
        "{c}"
    );
    let deadline: chrono::DateTime<chrono::Utc> = c["deadline"].as_str().unwrap().parse().unwrap();
    let left = deadline - chrono::Utc::now();
    assert!(
        left > chrono::Duration::minutes(9) && left <= chrono::Duration::minutes(10),
        "{left}"
    );
    h.bob_says("12").await;
    bot_said(&h, "Thanks, looking at order 12.", 1).await;
    assert_eq!(pending_gauge(addr).await, Some(0.0));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_a_conversation_whose_rule_changed_finishes_with_its_old_actions() {
    let (sb, bob, room, bot) = seeded::seeded_sandbox().await;
    let (dir, workflows) = folder(&refund("10m"));
    let state = tempfile::tempdir().unwrap();
    let mut first = agent(&sb, &workflows, state.path(), &[]);
    started(&mut first).await;
    seeded::ask(&bob, &room, &bot, "refund please").await;
    until_said(&sb, &bot, "Which order number", &first).await;
    first.stop_cleanly("the first agent", STEP).await;
    let changed = refund("10m").replace("Thanks, looking at order", "Now checking order");
    std::fs::write(dir.path().join("flow.yaml"), changed).unwrap();

    let mut second = agent(&sb, &workflows, state.path(), &[]);
    started(&mut second).await;
    let answer = seeded::ask(&bob, &room, &bot, "4711").await;
    until_said(&sb, &bot, "Thanks, looking at order 4711.", &second).await;
    assert_eq!(settled(&sb, &bot, &answer, &second).await, "processed");
    // A new conversation runs the rule as it is now.
    seeded::ask(&bob, &room, &bot, "another refund").await;
    until_said(&sb, &bot, "Which order number", &second).await;
    tokio::time::timeout(STEP, async {
        while said(&sb, &bot, "Which order number").await < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the second question");
    let id = seeded::ask(&bob, &room, &bot, "4712").await;
    assert_eq!(settled(&sb, &bot, &id, &second).await, "processed");
    let logs = second.stop_cleanly("the restarted agent", STEP).await;
    assert_eq!(
        said(&sb, &bot, "Now checking order 4712.").await,
        1,
        "{}",
        logs.join("\n")
    );
    assert_eq!(said(&sb, &bot, "Now checking order 4711").await, 0);
    // Nothing refers to the old text any more: it is no longer kept.
    use switchboard_engine::conversation::ConversationStore;
    let kept = switchboard::effects::conversation_file::ConversationFile::open(
        &state.path().join("conversations"),
    )
    .unwrap()
    .load()
    .unwrap();
    assert_eq!(kept.conversations.len(), 0, "{kept:?}");
    assert!(kept.sources.is_empty(), "{kept:?}");
    drop(dir);
    sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_while_on_timeout_sends_its_reply_runs_it_once_after_the_restart() {
    let (sb, bob, room, bot) = seeded::seeded_sandbox().await;
    let (_dir, workflows) = folder(&refund("2s"));
    let state = tempfile::tempdir().unwrap();
    let mut first = agent(&sb, &workflows, state.path(), &[]);
    started(&mut first).await;
    let question = seeded::ask(&bob, &room, &bot, "refund please").await;
    until_said(&sb, &bot, "Which order number", &first).await;
    assert_eq!(settled(&sb, &bot, &question, &first).await, "processed");
    // The next message the bot posts in the room is on_timeout's reply: hold it.
    let reply_path = format!("/chats/{room}/messages");
    fault(
        &sb,
        json!({"delay": {"method": "POST", "path": reply_path, "ms": 1_000}}),
    )
    .await;
    held(&sb, &first, |m, p| m == "POST" && p.ends_with(&reply_path)).await;
    first.signal("KILL");
    first.wait_exit(STEP).await;
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(said(&sb, &bot, "No order number").await, 0);
    fault(&sb, json!({"clear": true})).await;

    let mut second = agent(&sb, &workflows, state.path(), &[]);
    started(&mut second).await;
    until_said(&sb, &bot, "No order number", &second).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = second.stop_cleanly("the restarted agent", STEP).await;
    assert_eq!(
        said(&sb, &bot, "No order number").await,
        1,
        "{}",
        logs.join("\n")
    );
    sb.shutdown().await.unwrap();
}

const LONG_ANSWER: &str = r#"version: 1
rules:
  - name: essay
    on: message_created
    if:
      - event.text: { matches: '(?i)\bessay\b' }
    do:
      - reply: "Send it."
      - wait_for:
          timeout: 1m
        as: answer
      - reply: "Got {{ answer.text | length }} characters, ending {{ answer.text[-6:] }}."
"#;

/// An answer near the platform's 512 KiB message limit is taken like any
/// other: kept with the conversation, bound to `as:`, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enormous_answer_is_taken_whole() {
    let (_dir, path) = folder(LONG_ANSWER);
    let mut h = Harness::start_with(path, Vec::new()).await;
    h.bob_says("an essay for you").await;
    bot_said(&h, "Send it.", 1).await;
    let body = format!("{} END42", "lorem ipsum ".repeat(40_000));
    let (answer, handled) = h.bob_says(&body).await;
    assert_eq!(handled.report.matched, vec!["flow/essay".to_owned()]);
    assert_eq!(h.settled_status(&answer).await, "processed");
    assert_eq!(h.bot_events("characters, ending  END42.").await, 1);
    h.stop().await;
}
