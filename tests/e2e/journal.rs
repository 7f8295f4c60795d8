//! The action journal across a restart, made deterministic: a message is
//! served again with the journal saying its reply was sent (and the reply is
//! on the platform, or not), or finished. The agent, run as a process against
//! the sandbox, must then reply exactly once in total.

use crate::support::cli;
use crate::support::seeded;

use std::path::{Path, PathBuf};
use std::time::Duration;

use band_client::rest::{AgentApi, RestConfig};
use band_sandbox::RunningSandbox;
use band_wire::model::Mention;
use cli::{run_command, Running};
use serde_json::{json, Value};

const STEP: Duration = Duration::from_secs(15);
const HOURS: &str = "We're open Monday to Friday, 9:00 to 17:00 CET, and on Saturdays until noon.";

fn workflows() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows")
}

/// Bot replies with the opening hours in `room`.
async fn hours_replies(sb: &RunningSandbox, bot: &str) -> usize {
    seeded::sandbox_state(sb).await["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["sender_id"] == bot && m["content"].as_str().unwrap().ends_with(HOURS))
        .count()
}

/// Runs the agent with `journal` until `message` is processed; its logs.
async fn run_until_processed(
    sb: &RunningSandbox,
    journal: &Path,
    message: &str,
    bot: &str,
) -> Vec<String> {
    run_until_processed_with(sb, journal, message, bot, &[]).await
}

/// Like [`run_until_processed`], with `extra` arguments for `run`.
async fn run_until_processed_with(
    sb: &RunningSandbox,
    journal: &Path,
    message: &str,
    bot: &str,
    extra: &[&str],
) -> Vec<String> {
    let mut cmd = run_command(sb, &workflows());
    cmd.arg("--journal").arg(journal).args(extra);
    let agent = Running::spawn(&mut cmd);
    tokio::time::timeout(STEP, async {
        loop {
            let s = seeded::sandbox_state(sb).await;
            let m = s["messages"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["id"] == message)
                .cloned()
                .unwrap();
            if m["delivery"][bot]["status"] == "processed" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("not processed; logs:\n{}", agent.stderr_lines().join("\n")));
    agent.terminate();
    let (status, lines) = agent.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{}", lines.join("\n"));
    lines
}

/// Bob asks for the opening hours while the agent is down.
async fn question(sb: &RunningSandbox) -> (String, String, String) {
    let (bob, room, bot) = seeded::world(sb).await;
    let id = bob
        .send_message(
            &room,
            "What are your opening hours?",
            &[Mention {
                id: Some(bot.clone()),
                ..Mention::default()
            }],
        )
        .await
        .unwrap()
        .id;
    (room, bot, id)
}

/// A journal in `dir` whose one line says the opening-hours reply to
/// message `id` was `state` (`{"sent": true}` or `{"done": result}`).
fn journal_with(dir: &Path, id: &str, state: Value) -> PathBuf {
    let mut line = json!({"m": id, "k": "faq/opening-hours#do0", "at": chrono::Utc::now()});
    if let (Some(line), Some(state)) = (line.as_object_mut(), state.as_object()) {
        line.extend(state.clone());
    }
    let path = dir.join("journal");
    std::fs::write(&path, format!("{line}\n")).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_sent_before_a_crash_is_found_and_not_sent_again() {
    found_and_not_sent_again(&[]).await;
}

/// With metrics on, the executor is wrapped to time each action: the
/// wrapper must still look for what was sent (it once did not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_sent_before_a_crash_is_found_with_metrics_on_too() {
    found_and_not_sent_again(&["--metrics-addr", "127.0.0.1:0"]).await;
}

/// The crashed process had posted the reply but not recorded it: the
/// restarted agent, run with `extra`, finds it and does not post it again.
async fn found_and_not_sent_again(extra: &[&str]) {
    let (sb, ..) = seeded::seeded_sandbox().await;
    let (room, bot, id) = question(&sb).await;
    // The crashed process had posted the reply but not recorded it.
    let api = AgentApi::new(RestConfig::new(sb.rest_url(), "triage-key")).unwrap();
    let bob_id = seeded::sandbox_state(&sb).await["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["handle"] == "bob")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.send_message(
        &room,
        HOURS,
        &[Mention {
            id: Some(bob_id),
            ..Mention::default()
        }],
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let journal = journal_with(dir.path(), &id, json!({"sent": true}));
    let logs = run_until_processed_with(&sb, &journal, &id, &bot, extra).await;
    assert_eq!(hours_replies(&sb, &bot).await, 1, "{}", logs.join("\n"));
    assert!(
        logs.iter().any(|l| l.contains("and found on the platform")),
        "{}",
        logs.join("\n")
    );
    // Settled: the journal no longer holds the message.
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(text.contains("\"settled\":true"), "{text}");
    sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_sent_but_lost_is_sent_once() {
    let (sb, ..) = seeded::seeded_sandbox().await;
    let (_, bot, id) = question(&sb).await;
    let dir = tempfile::tempdir().unwrap();
    let journal = journal_with(dir.path(), &id, json!({"sent": true}));
    run_until_processed(&sb, &journal, &id, &bot).await;
    assert_eq!(hours_replies(&sb, &bot).await, 1);
    sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_reply_is_not_repeated() {
    let (sb, ..) = seeded::seeded_sandbox().await;
    let (_, bot, id) = question(&sb).await;
    let dir = tempfile::tempdir().unwrap();
    let journal = journal_with(
        dir.path(),
        &id,
        json!({"done": {"id": "earlier", "success": true}}),
    );
    let logs = run_until_processed(&sb, &journal, &id, &bot).await;
    // The journal said done; the platform is trusted to have it already.
    assert_eq!(hours_replies(&sb, &bot).await, 0);
    assert!(
        logs.iter().any(|l| l.contains("already done before")),
        "{}",
        logs.join("\n")
    );
    sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_someone_already_in_the_room_is_not_a_failure() {
    let (sb, bob, room, bot) = seeded::seeded_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("add.yaml"),
        "version: 1\nrules:\n  - name: always-add\n    on: message_created\n    if:\n      - event.sender_type: User\n    do:\n      - add_participant: alice/billing-agent\n      - reply: added\n",
    )
    .unwrap();
    let mut cmd = run_command(&sb, dir.path());
    let agent = Running::spawn(&mut cmd);
    let mention = [Mention {
        id: Some(bot.clone()),
        ..Mention::default()
    }];
    let mut ids = Vec::new();
    for text in ["first", "second"] {
        ids.push(bob.send_message(&room, text, &mention).await.unwrap().id);
    }
    tokio::time::timeout(STEP, async {
        loop {
            let s = seeded::sandbox_state(&sb).await;
            let done = s["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| ids.contains(&m["id"].as_str().unwrap().to_owned()))
                .all(|m| m["delivery"][&bot]["status"] == "processed");
            if done {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("not both processed:\n{}", agent.stderr_lines().join("\n")));
    agent.terminate();
    agent.wait_exit(Duration::from_secs(10)).await;
    sb.shutdown().await.unwrap();
}
