//! What users meet running the `switchboard` binary against the sandbox: a
//! reply resumed after a crash not mistaken for an identical earlier answer,
//! `cron` schedules firing, `--state-file` across runs, `/healthz` going 503
//! while the platform is unreachable, and `run` configured by its
//! environment variables alone.

use crate::support::cli;
use crate::support::seeded;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use band_client::rest::{AgentApi, RestConfig};
use band_sandbox::RunningSandbox;
use band_wire::model::Mention;
use cli::{run_command, switchboard, Running};
use serde_json::{json, Value};

const STEP: Duration = Duration::from_secs(15);
const HOURS: &str = "We're open Monday to Friday, 9:00 to 17:00 CET, and on Saturdays until noon.";

fn shipped_workflows() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows")
}

/// A port nobody listens on right now: bound to port 0, read, released.
fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A temporary workflows folder holding `flow.yaml`.
fn folder(yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("workflows")).unwrap();
    std::fs::write(dir.path().join("workflows/flow.yaml"), yaml).unwrap();
    dir
}

/// The id of the seeded user `handle`.
async fn user_id(sb: &RunningSandbox, handle: &str) -> String {
    seeded::sandbox_state(sb).await["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["handle"] == handle)
        .and_then(|u| u["id"].as_str())
        .unwrap_or_else(|| panic!("no user {handle} in the seed"))
        .to_owned()
}

/// The bot's delivery status of `message`.
async fn status(sb: &RunningSandbox, message: &str, bot: &str) -> Value {
    seeded::sandbox_state(sb).await["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == message)
        .map(|m| m["delivery"][bot]["status"].clone())
        .unwrap_or(Value::Null)
}

/// Waits until the bot has processed `message`; panics with the agent's logs.
async fn wait_processed(sb: &RunningSandbox, agent: &Running, message: &str, bot: &str) {
    tokio::time::timeout(STEP, async {
        while status(sb, message, bot).await != "processed" {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "{message} not processed; logs:\n{}",
            agent.stderr_lines().join("\n")
        )
    });
}

/// Bot messages in the sandbox ending with `text`.
async fn bot_messages_ending(sb: &RunningSandbox, bot: &str, text: &str) -> Vec<Value> {
    seeded::sandbox_state(sb).await["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["sender_id"] == bot && m["content"].as_str().unwrap_or("").ends_with(text))
        .cloned()
        .collect()
}

/// A message is served again after a crash with the journal saying its reply
/// was sent but not confirmed; the only identical reply on the platform
/// answered an earlier question, so the `/context` look-up must not count
/// it: the reply is sent (once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identical_earlier_answer_does_not_count_as_the_resumed_reply() {
    let (sb, bob, room, bot) = seeded::seeded_sandbox().await;
    let bob_id = user_id(&sb, "bob").await;
    // An earlier question's answer: the same FAQ text, already in the room.
    let api = AgentApi::new(RestConfig::new(sb.rest_url(), "triage-key")).unwrap();
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
    let question = seeded::ask(&bob, &room, &bot, "What are your opening hours?").await;
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let line = json!({"m": question, "k": "faq/opening-hours#do0", "at": chrono::Utc::now(), "sent": true});
    std::fs::write(&journal, format!("{line}\n")).unwrap();

    let mut cmd = run_command(&sb, &shipped_workflows());
    cmd.arg("--journal").arg(&journal);
    let agent = Running::spawn(&mut cmd);
    wait_processed(&sb, &agent, &question, &bot).await;
    let logs = agent.stop_cleanly("agent", STEP).await;
    let reply = seeded::reply_after(&bob, &room, &bot, &question, Duration::from_secs(1)).await;
    assert!(
        reply.is_some_and(|m| m.content.ends_with(HOURS)),
        "the question got no reply; logs:\n{}",
        logs.join("\n")
    );
    assert_eq!(
        bot_messages_ending(&sb, &bot, HOURS).await.len(),
        2,
        "one earlier answer and one reply expected; logs:\n{}",
        logs.join("\n")
    );
    sb.shutdown().await.unwrap();
}

/// A six-field cron (seconds first) fires every second while the agent runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_schedule_fires_at_run_time() {
    let (sb, _bob, room, bot) = seeded::seeded_sandbox().await;
    let bob_id = user_id(&sb, "bob").await;
    let dir = folder(&format!(
        r#"version: 1
rules:
  - name: tick
    on: schedule
    cron: "* * * * * *"
    do:
      - send_message:
          chat: "{room}"
          text: "tick {{{{ now }}}}"
          mentions: ["{bob_id}"]
"#
    ));
    let agent = Running::spawn(&mut run_command(&sb, &dir.path().join("workflows")));
    let ticks = tokio::time::timeout(STEP, async {
        loop {
            let ticks: Vec<Value> = seeded::sandbox_state(&sb).await["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| {
                    m["sender_id"] == bot.as_str()
                        && m["chat_room_id"] == room.as_str()
                        && m["content"].as_str().unwrap_or("").contains("tick ")
                })
                .cloned()
                .collect();
            if ticks.len() >= 2 {
                return ticks;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no two ticks; logs:\n{}", agent.stderr_lines().join("\n")));
    assert_ne!(ticks[0]["content"], ticks[1]["content"], "{ticks:?}");
    agent.stop_cleanly("agent", STEP).await;
    sb.shutdown().await.unwrap();
}

const MEMORY: &str = r#"version: 1
rules:
  - name: remember
    on: message_created
    if: "{{ 'remember' in event.content }}"
    do:
      - set:
          key: fact
          value: "{{ event.content | strip_mentions | trim }}"
      - reply: "noted"
  - name: recall
    on: message_created
    if: "{{ 'recall' in event.content }}"
    do:
      - reply: "fact is {{ state.fact | default('unknown') }}"
"#;

/// One run of the binary with `--state-file` on the memory workflow: bob
/// says `text`; the bot's reply.
async fn state_run(sb: &RunningSandbox, dir: &Path, state: Option<&Path>, text: &str) -> String {
    let (bob, room, bot) = seeded::world(sb).await;
    let mut cmd = run_command(sb, &dir.join("workflows"));
    if let Some(state) = state {
        cmd.arg("--state-file").arg(state);
    }
    let agent = Running::spawn(&mut cmd);
    let id = seeded::ask(&bob, &room, &bot, text).await;
    wait_processed(sb, &agent, &id, &bot).await;
    let logs = agent.stop_cleanly("agent", STEP).await;
    seeded::reply_after(&bob, &room, &bot, &id, Duration::from_secs(1))
        .await
        .unwrap_or_else(|| panic!("no reply to {text:?}; logs:\n{}", logs.join("\n")))
        .content
}

/// State set by one run of the binary is seen by the next (and, without
/// the flag, it is not: the check can fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_file_carries_state_from_one_run_to_the_next() {
    let (sb, ..) = seeded::seeded_sandbox().await;
    let dir = folder(MEMORY);
    let state = dir.path().join("state.json");
    let noted = state_run(&sb, dir.path(), Some(&state), "remember the blue door").await;
    assert!(noted.ends_with("noted"), "{noted}");
    let without = state_run(&sb, dir.path(), None, "recall").await;
    assert!(without.ends_with("fact is unknown"), "{without}");
    let recalled = state_run(&sb, dir.path(), Some(&state), "recall").await;
    assert!(
        recalled.ends_with("fact is remember the blue door"),
        "{recalled}"
    );
    sb.shutdown().await.unwrap();
}

/// `GET /healthz` on `addr`: status and body (`None` while nothing answers).
async fn healthz(addr: SocketAddr) -> Option<(u16, Value)> {
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    let code = resp.status().as_u16();
    Some((code, resp.json().await.ok()?))
}

/// Polls `/healthz` until `pred` holds; panics with the last answer.
async fn wait_health(
    agent: &Running,
    addr: SocketAddr,
    what: &str,
    pred: impl Fn(u16, &Value) -> bool,
) {
    let mut last = None;
    let found = tokio::time::timeout(STEP, async {
        loop {
            let answer = healthz(addr).await;
            if let Some((code, body)) = &answer {
                if pred(*code, body) {
                    return;
                }
            }
            last = answer;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "no {what}; last /healthz: {last:?}; logs:\n{}",
        agent.stderr_lines().join("\n")
    );
}

/// The platform goes away: `/healthz` answers 503 with the socket down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_503_while_the_socket_is_down() {
    let (sb, ..) = seeded::seeded_sandbox().await;
    let addr = free_addr();
    let mut cmd = run_command(&sb, &shipped_workflows());
    cmd.arg("--metrics-addr").arg(addr.to_string());
    let agent = Running::spawn(&mut cmd);
    wait_health(&agent, addr, "healthy agent", |code, h| {
        code == 200 && h["socket"]["connected"] == true
    })
    .await;
    sb.shutdown().await.unwrap();
    wait_health(&agent, addr, "503 with the socket down", |code, h| {
        code == 503 && h["status"] == "down" && h["socket"]["connected"] == false
    })
    .await;
    agent.terminate();
    agent.wait_exit(STEP).await;
}

/// The `[env: NAME]` variables `switchboard run --help` lists.
async fn listed_env_vars() -> BTreeSet<String> {
    let out = cli::output_within(switchboard().args(["run", "--help"]), STEP).await;
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    help.split("[env: ")
        .skip(1)
        .map(|rest| {
            rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// `switchboard run` with no flags but `--workflows`, the rest from `env`.
fn run_from_env(env: &[(&str, String)]) -> tokio::process::Command {
    let mut cmd = switchboard();
    cmd.arg("run")
        .arg("--workflows")
        .arg(shipped_workflows())
        .arg("--no-watch");
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd
}

/// Every variable `run --help` lists configures a run of the binary: key,
/// URLs, agent id, journal and metrics address in one run, the key file in
/// a second, a wrong agent id refused in a third, a cap of 0 pending
/// conversations refused in a fourth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_is_configured_by_its_environment_variables() {
    let checked: BTreeSet<String> = [
        "BAND_API_KEY",
        "BAND_API_KEY_FILE",
        "BAND_AGENT_ID",
        "BAND_REST_URL",
        "BAND_WS_URL",
        "BAND_JOURNAL",
        "BAND_METRICS_ADDR",
        "SWITCHBOARD_STATE_DIR",
        "SWITCHBOARD_WEBHOOK_ADDR",
        "SWITCHBOARD_MAX_PENDING_PER_PERSON",
        // Checked by llm_action's crash test (its restart is configured by them).
        "SWITCHBOARD_LLM_URL",
        "SWITCHBOARD_LLM_MODEL",
        "SWITCHBOARD_LLM_KEY_FILE",
        // Checked by fleet_store's standby test (both runs get the store from it).
        "SWITCHBOARD_STORE",
    ]
    .map(String::from)
    .into();
    assert_eq!(
        listed_env_vars().await,
        checked,
        "`run --help` lists other variables than this test checks; check each one here"
    );

    let (sb, bob, room, bot) = seeded::seeded_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let addr = free_addr();
    let urls = [
        ("BAND_REST_URL", sb.rest_url()),
        ("BAND_WS_URL", sb.ws_url()),
    ];

    // 1: key, URLs, agent id, journal, metrics and webhook addresses.
    let hooks = free_addr();
    let mut env = urls.to_vec();
    env.extend([
        ("BAND_API_KEY", "triage-key".to_owned()),
        ("BAND_AGENT_ID", bot.clone()),
        ("BAND_JOURNAL", journal.display().to_string()),
        ("BAND_METRICS_ADDR", addr.to_string()),
        ("SWITCHBOARD_WEBHOOK_ADDR", hooks.to_string()),
    ]);
    let agent = Running::spawn(&mut run_from_env(&env));
    let id = seeded::ask(&bob, &room, &bot, "What are your opening hours?").await;
    wait_processed(&sb, &agent, &id, &bot).await;
    wait_health(&agent, addr, "/healthz on BAND_METRICS_ADDR", |code, _| {
        code == 200
    })
    .await;
    // The shipped workflows define no hook: served, but unknown.
    let resp = reqwest::Client::new()
        .post(format!("http://{hooks}/hooks/anything"))
        .send()
        .await
        .expect("POST to SWITCHBOARD_WEBHOOK_ADDR");
    assert_eq!(resp.status().as_u16(), 404);
    let logs = agent.stop_cleanly("agent (env)", STEP).await;
    let reply = seeded::reply_after(&bob, &room, &bot, &id, Duration::from_secs(1)).await;
    assert!(
        reply.is_some_and(|m| m.content.ends_with(HOURS)),
        "no reply; logs:\n{}",
        logs.join("\n")
    );
    let written = std::fs::read_to_string(&journal).unwrap_or_default();
    assert!(
        written.contains(&id),
        "BAND_JOURNAL {} does not hold {id}: {written:?}",
        journal.display()
    );

    // 2: the key from BAND_API_KEY_FILE, the state directory from SWITCHBOARD_STATE_DIR.
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "triage-key\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let state_dir = dir.path().join("state");
    let mut env = urls.to_vec();
    env.push(("BAND_API_KEY_FILE", key_file.display().to_string()));
    env.push(("SWITCHBOARD_STATE_DIR", state_dir.display().to_string()));
    let agent = Running::spawn(&mut run_from_env(&env));
    let id = seeded::ask(&bob, &room, &bot, "What are your opening hours?").await;
    wait_processed(&sb, &agent, &id, &bot).await;
    agent.stop_cleanly("agent (key file)", STEP).await;
    let kept = std::fs::read_to_string(state_dir.join("journal")).unwrap_or_default();
    assert!(
        kept.contains(&id),
        "SWITCHBOARD_STATE_DIR {} holds no journal with {id}: {kept:?}",
        state_dir.display()
    );

    // 3: BAND_AGENT_ID is checked against the key's agent.
    let bob_id = user_id(&sb, "bob").await;
    let mut env = urls.to_vec();
    env.extend([
        ("BAND_API_KEY", "triage-key".to_owned()),
        ("BAND_AGENT_ID", bob_id.clone()),
    ]);
    let out = cli::output_within(&mut run_from_env(&env), STEP).await;
    let stderr = cli::strip_ansi(&String::from_utf8_lossy(&out.stderr));
    assert!(
        !out.status.success(),
        "a wrong BAND_AGENT_ID was accepted:\n{stderr}"
    );
    assert!(stderr.contains(&bob_id), "{stderr}");

    // 4: SWITCHBOARD_MAX_PENDING_PER_PERSON is read (and must be at least 1).
    let mut env = urls.to_vec();
    env.extend([
        ("BAND_API_KEY", "triage-key".to_owned()),
        ("SWITCHBOARD_MAX_PENDING_PER_PERSON", "0".to_owned()),
    ]);
    let out = cli::output_within(&mut run_from_env(&env), STEP).await;
    let stderr = cli::strip_ansi(&String::from_utf8_lossy(&out.stderr));
    assert!(
        !out.status.success(),
        "a cap of 0 pending conversations was accepted:\n{stderr}"
    );
    assert!(stderr.contains("--max-pending-per-person"), "{stderr}");
    sb.shutdown().await.unwrap();
}
