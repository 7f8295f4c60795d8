//! Safe by default: `switchboard run` with no flags keeps its journal and
//! state in a state directory, so a crash does not double a reply; the
//! directory is locked against a second live process; `--ephemeral` writes
//! nothing; a damaged journal is kept aside, not overwritten; `create_chat`
//! and `add_contact` sent before a crash are found, not repeated; the journal
//! stays bounded while running; a throttle window outlives a SIGKILL.

use crate::support::cli;
use crate::support::seeded;

use std::path::{Path, PathBuf};
use std::time::Duration;

use band_client::rest::{AgentApi, RestConfig};
use band_sandbox::RunningSandbox;
use cli::{run_command, Running};
use serde_json::json;

const STEP: Duration = Duration::from_secs(20);
const HOURS: &str = "We're open Monday to Friday, 9:00 to 17:00 CET, and on Saturdays until noon.";

fn workflows() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows")
}

/// The bot's replies with the opening hours.
async fn hours_replies(sb: &RunningSandbox, bot: &str) -> usize {
    seeded::sandbox_state(sb).await["messages"]
        .as_array()
        .expect("messages in the sandbox state")
        .iter()
        .filter(|m| m["sender_id"] == bot && m["content"].as_str().unwrap_or("").ends_with(HOURS))
        .count()
}

/// The bot's delivery status of `message` (`pending`, `processed`, ...).
async fn status(sb: &RunningSandbox, message: &str, bot: &str) -> String {
    let s = seeded::sandbox_state(sb).await;
    s["messages"]
        .as_array()
        .expect("messages in the sandbox state")
        .iter()
        .find(|m| m["id"] == message)
        .and_then(|m| m["delivery"][bot]["status"].as_str())
        .unwrap_or("")
        .to_owned()
}

/// Waits until `message` is no longer pending or processing; its status.
async fn settled(sb: &RunningSandbox, message: &str, bot: &str, agent: &Running) -> String {
    tokio::time::timeout(STEP, async {
        loop {
            let s = status(sb, message, bot).await;
            if s == "processed" || s == "failed" {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("not settled; logs:\n{}", agent.stderr_lines().join("\n")))
}

/// `switchboard run` with the state directories of `home` (XDG_STATE_HOME).
fn run_in(sb: &RunningSandbox, workflows: &Path, home: &Path) -> tokio::process::Command {
    let mut cmd = run_command(sb, workflows);
    cmd.env("XDG_STATE_HOME", home);
    cmd
}

async fn started(agent: &mut Running) {
    agent
        .wait_for_stderr("startup sync", STEP, |l| l.contains("startup sync done"))
        .await;
}

async fn arm_delay(sb: &RunningSandbox, path: &str, ms: u64) {
    let resp = reqwest::Client::new()
        .post(format!("{}/_sandbox/faults", sb.rest_url()))
        .json(&json!({"delay": {"method": "POST", "path": path, "ms": ms}}))
        .send()
        .await
        .expect("arm a fault");
    assert!(resp.status().is_success(), "{}", resp.status());
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_between_the_reply_and_the_processed_mark_does_not_double_it_without_flags() {
    let (sb, bob, room, bot) = seeded::seeded_sandbox().await;
    let home = tempfile::tempdir().unwrap();
    let mut first = Running::spawn(&mut run_in(&sb, &workflows(), home.path()));
    started(&mut first).await;
    // The processed mark hangs: the reply is out, the mark is not.
    arm_delay(&sb, "/processed", 30_000).await;
    let id = seeded::ask(&bob, &room, &bot, "What are your opening hours?").await;
    tokio::time::timeout(STEP, async {
        while hours_replies(&sb, &bot).await == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no reply; logs:\n{}", first.stderr_lines().join("\n")));
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10)).await;
    reqwest::Client::new()
        .post(format!("{}/_sandbox/faults", sb.rest_url()))
        .json(&json!({"clear": true}))
        .send()
        .await
        .unwrap();
    let mut second = Running::spawn(&mut run_in(&sb, &workflows(), home.path()));
    started(&mut second).await;
    assert_eq!(settled(&sb, &id, &bot, &second).await, "processed");
    let logs = second.stop_cleanly("the restarted agent", STEP).await;
    assert_eq!(hours_replies(&sb, &bot).await, 1, "{}", logs.join("\n"));
    // The journal lives in the default state directory, under the agent's id.
    let dir = home.path().join("switchboard").join(&bot);
    assert!(
        dir.join("journal").exists(),
        "{:?}",
        files_under(home.path())
    );
    sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_dir_in_use_by_a_live_process_is_refused_and_freed_by_its_death() {
    let (sb, ..) = seeded::seeded_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut first = run_command(&sb, &workflows());
    first.arg("--state-dir").arg(&state);
    let mut first = Running::spawn(&mut first);
    started(&mut first).await;

    let mut second = run_command(&sb, &workflows());
    second.env("SWITCHBOARD_STATE_DIR", &state);
    let out = cli::output_within(&mut second, STEP).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("in use by another switchboard process"),
        "{stderr}"
    );
    assert!(stderr.contains(&state.display().to_string()), "{stderr}");

    // Killed: its lock goes with it, the file stays behind.
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10)).await;
    assert!(state.join("lock").exists());
    let mut third = run_command(&sb, &workflows());
    third.arg("--state-dir").arg(&state);
    let mut third = Running::spawn(&mut third);
    started(&mut third).await;
    third.stop_cleanly("the third agent", STEP).await;
    sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_writes_nothing() {
    let (sb, bob, room, bot) = seeded::seeded_sandbox().await;
    let home = tempfile::tempdir().unwrap();
    let mut cmd = run_in(&sb, &workflows(), home.path());
    cmd.arg("--ephemeral");
    let mut agent = Running::spawn(&mut cmd);
    started(&mut agent).await;
    let id = seeded::ask(&bob, &room, &bot, "What are your opening hours?").await;
    assert_eq!(settled(&sb, &id, &bot, &agent).await, "processed");
    agent.stop_cleanly("the ephemeral agent", STEP).await;
    assert_eq!(files_under(home.path()), Vec::<PathBuf>::new());
    sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_journal_is_kept_aside_and_warned_about() {
    let (sb, ..) = seeded::seeded_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let garbage = "this is not a journal\n\u{0}\u{1}binary\n{\"m\": 3}\n";
    std::fs::write(&journal, garbage).unwrap();
    let mut cmd = run_command(&sb, &workflows());
    cmd.arg("--ephemeral").arg("--journal").arg(&journal);
    let mut agent = Running::spawn(&mut cmd);
    started(&mut agent).await;
    let logs = agent.stop_cleanly("the agent", STEP).await;
    let logs = logs.join("\n");
    assert!(logs.contains("WARN") && logs.contains("damaged"), "{logs}");
    let kept: Vec<PathBuf> = files_under(dir.path())
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("journal.damaged-"))
        })
        .collect();
    assert_eq!(kept.len(), 1, "{:?}\n{logs}", files_under(dir.path()));
    assert_eq!(std::fs::read_to_string(&kept[0]).unwrap(), garbage);
    assert!(logs.contains(&kept[0].display().to_string()), "{logs}");
    sb.shutdown().await.unwrap();
}

/// A folder with one workflow file `case.yaml` holding `rule`.
fn one_rule(dir: &Path, rule: &str) -> PathBuf {
    let flows = dir.join("workflows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(flows.join("case.yaml"), rule).unwrap();
    flows
}

/// A journal whose one line says step `case/open#do0` of `id` was sent.
fn sent_journal(dir: &Path, id: &str) -> PathBuf {
    let line = json!({"m": id, "k": "case/open#do0", "sent": true, "at": chrono::Utc::now()});
    let path = dir.join("journal");
    std::fs::write(&path, format!("{line}\n")).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_created_before_a_crash_is_found_and_not_created_again() {
    let (sb, bob, room, bot) = seeded::seeded_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let flows = one_rule(
        dir.path(),
        "version: 1\nrules:\n  - name: open\n    on: message_created\n    if:\n      - event.sender_type: User\n    do:\n      - create_chat: { title: Case room }\n",
    );
    let api = AgentApi::new(RestConfig::new(sb.rest_url(), "triage-key")).unwrap();
    let id = seeded::ask(&bob, &room, &bot, "open a case").await;
    // The crashed process had created the room but not recorded it.
    api.create_chat(Some("Case room")).await.unwrap();
    let journal = sent_journal(dir.path(), &id);
    let mut cmd = run_command(&sb, &flows);
    cmd.arg("--ephemeral").arg("--journal").arg(&journal);
    let agent = Running::spawn(&mut cmd);
    assert_eq!(settled(&sb, &id, &bot, &agent).await, "processed");
    let logs = agent.stop_cleanly("the agent", STEP).await;
    let rooms = api.list_all_chats().await.unwrap();
    let cases = rooms
        .iter()
        .filter(|r| r.title.as_deref() == Some("Case room"))
        .count();
    assert_eq!(cases, 1, "{}", logs.join("\n"));
    assert!(
        logs.iter().any(|l| l.contains("found on the platform")),
        "{}",
        logs.join("\n")
    );
    sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_request_sent_before_a_crash_is_found_and_not_sent_again() {
    let (sb, bob, room, bot) = seeded::seeded_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let flows = one_rule(
        dir.path(),
        "version: 1\nrules:\n  - name: open\n    on: message_created\n    if:\n      - event.sender_type: User\n    do:\n      - add_contact: '@carol'\n",
    );
    let api = AgentApi::new(RestConfig::new(sb.rest_url(), "triage-key")).unwrap();
    let id = seeded::ask(&bob, &room, &bot, "befriend carol").await;
    api.add_contact("carol", None).await.unwrap();
    let journal = sent_journal(dir.path(), &id);
    let mut cmd = run_command(&sb, &flows);
    cmd.arg("--ephemeral")
        .arg("--journal")
        .arg(&journal)
        .args(["--max-attempts", "1"]);
    let agent = Running::spawn(&mut cmd);
    let got = settled(&sb, &id, &bot, &agent).await;
    let logs = agent.stop_cleanly("the agent", STEP).await;
    assert_eq!(got, "processed", "{}", logs.join("\n"));
    let sent = api.contact_requests(Some("all")).await.unwrap().sent;
    let to_carol = sent
        .iter()
        .filter(|r| r.to_handle.as_deref() == Some("carol"))
        .count();
    assert_eq!(to_carol, 1, "{sent:?}");
    sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_stays_bounded_while_running() {
    let (sb, bob, room, bot) = seeded::seeded_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let mut cmd = run_command(&sb, &workflows());
    cmd.arg("--ephemeral").arg("--journal").arg(&journal);
    let mut agent = Running::spawn(&mut cmd);
    started(&mut agent).await;
    let mut ids = Vec::new();
    let mut largest = 0;
    for i in 0..200 {
        ids.push(seeded::ask(&bob, &room, &bot, &format!("opening hours? {i}")).await);
        if i % 20 == 19 {
            let last = ids.last().cloned().unwrap_or_default();
            assert_eq!(settled(&sb, &last, &bot, &agent).await, "processed");
            largest = largest.max(std::fs::metadata(&journal).map_or(0, |m| m.len()));
        }
    }
    let _logs = agent.stop_cleanly("the agent", STEP).await;
    assert!(
        hours_replies(&sb, &bot).await >= 200,
        "every question answered"
    );
    // ~440 bytes a message unbounded: 200 messages would be ~88 kB.
    assert!(largest < 48 * 1024, "the journal grew to {largest} bytes");
    sb.shutdown().await.unwrap();
}

/// The bot's messages with exactly `text`.
async fn replies_with(sb: &RunningSandbox, bot: &str, text: &str) -> usize {
    seeded::sandbox_state(sb).await["messages"]
        .as_array()
        .expect("messages in the sandbox state")
        .iter()
        .filter(|m| m["sender_id"] == bot && m["content"].as_str().unwrap_or("").ends_with(text))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttle_window_survives_a_kill_and_restart_on_the_same_state_dir() {
    let (sb, bob, room, bot) = seeded::seeded_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let flows = one_rule(
        dir.path(),
        "version: 1\nrules:\n  - name: once\n    on: message_created\n    if:\n      - event.sender_type: User\n    throttle: { max: 1, per: 1h }\n    do:\n      - reply: Answered once an hour.\n",
    );
    let state = dir.path().join("state");
    let spawn = || {
        let mut cmd = run_command(&sb, &flows);
        cmd.arg("--state-dir").arg(&state);
        Running::spawn(&mut cmd)
    };
    let mut first = spawn();
    started(&mut first).await;
    let id = seeded::ask(&bob, &room, &bot, "first question").await;
    assert_eq!(settled(&sb, &id, &bot, &first).await, "processed");
    assert_eq!(replies_with(&sb, &bot, "Answered once an hour.").await, 1);
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10)).await;

    let mut second = spawn();
    started(&mut second).await;
    let id = seeded::ask(&bob, &room, &bot, "second question").await;
    assert_eq!(settled(&sb, &id, &bot, &second).await, "processed");
    let logs = second.stop_cleanly("the restarted agent", STEP).await;
    assert_eq!(
        replies_with(&sb, &bot, "Answered once an hour.").await,
        1,
        "the window of the first run still holds after the restart:\n{}",
        logs.join("\n")
    );
    assert!(
        logs.iter().any(|l| l.contains("throttled=case/once")),
        "{}",
        logs.join("\n")
    );
    sb.shutdown().await.unwrap();
}
