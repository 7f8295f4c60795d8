//! The platform's official Python SDK (`band-sdk`, from PyPI) against our
//! sandbox: an echo agent written on the SDK connects, receives a message a
//! person posted through the human API, and completes processing → reply →
//! processed. If the SDK and the sandbox disagree, the sandbox is wrong.
//!
//! Needs `python3` (≥ 3.11) with `venv`; `tests/compat/setup-venv.sh` creates
//! `.venv/` and installs the pinned SDK on first run.

use crate::support::seeded;
use crate::support::venv;

use std::process::Stdio;
use std::time::Duration;

use band_client::rest::{AgentApi, HumanApi, HumanMessageQuery, RestConfig};
use band_sandbox::{default_seed, RunningSandbox};
use band_wire::model::Mention;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::time::timeout;
use venv::{repo, setup_venv};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdk_agent_processes_and_replies() {
    let python = tokio::task::spawn_blocking(setup_venv).await.unwrap();
    let sb = RunningSandbox::start("127.0.0.1:0".parse().unwrap(), default_seed())
        .await
        .unwrap();
    let agent = AgentApi::new(RestConfig::new(sb.rest_url(), "triage-key")).unwrap();
    let me = agent.me().await.unwrap();
    let bob = HumanApi::new(RestConfig::new(sb.rest_url(), "bob-key")).unwrap();
    let room = seeded::support_room(&bob).await;

    let mut child = Command::new(&python)
        .arg(repo().join("tests/compat/sdk_agent.py"))
        .args(["--rest-url", &sb.rest_url(), "--ws-url", &sb.ws_url()])
        .args(["--agent-id", &me.id, "--api-key", "triage-key"])
        .args(["--messages", "1", "--timeout", "45"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let stderr = child.stderr.take().unwrap();
    let stderr_task = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut all = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            all.push(line);
        }
        all
    });

    // Wait until the SDK has connected, joined and drained its rooms.
    let mut seen = Vec::new();
    let ready = timeout(Duration::from_secs(45), async {
        while let Ok(Some(line)) = stdout.next_line().await {
            seen.push(line.clone());
            if line.contains("waiting for messages") {
                return true;
            }
            if line.contains("FAILED") {
                return false;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    if !ready {
        let _ = child.kill().await;
        let err = stderr_task.await.unwrap_or_default();
        panic!(
            "SDK agent did not start:\n{}\n--- stderr ---\n{}",
            seen.join("\n"),
            err.join("\n")
        );
    }

    let mention = Mention {
        id: Some(me.id.clone()),
        ..Mention::default()
    };
    let sent = bob
        .send_message(&room, "hello from bob", &[mention])
        .await
        .unwrap();
    assert_eq!(sent.recipients.len(), 1);

    let status = timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("SDK agent exits in time")
        .unwrap();
    while let Ok(Some(line)) = stdout.next_line().await {
        seen.push(line);
    }
    let err = stderr_task.await.unwrap_or_default();
    assert!(
        status.success(),
        "SDK agent failed ({status}):\n{}\n--- stderr ---\n{}",
        seen.join("\n"),
        err.join("\n")
    );
    // The SDK validates every pushed event with its core validator and drops
    // those that fail; any such complaint means our payloads are off.
    // One warning is the SDK's own start-up race, not our payloads: `agent.start()`
    // can return before its presence task marks the room wanted, and a message
    // pushed in that gap is "dropped" live and then served by `/next` (the
    // asserts below prove it was handled once). Seen on a loaded 2-core machine.
    let sdk_race = "No execution for room";
    let complaints: Vec<_> = err
        .iter()
        .filter(|l| l.contains("WARNING") || l.contains("ERROR"))
        .filter(|l| !l.contains(sdk_race))
        .collect();
    assert!(complaints.is_empty(), "SDK complained:\n{complaints:#?}");

    // Bob sees the SDK's reply, and the message is processed after one attempt.
    let messages = bob
        .list_messages(&room, &HumanMessageQuery::default())
        .await
        .unwrap()
        .items;
    let reply = messages
        .iter()
        .find(|m| m.sender_id == me.id && m.content.contains("echo:"))
        .unwrap_or_else(|| panic!("no reply from the SDK agent in {messages:#?}"));
    assert_eq!(reply.sender_type, "Agent");
    assert!(reply.content.contains("hello from bob"));

    let state: Value = reqwest::get(format!("{}/_sandbox/state", sb.rest_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let original = state["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == sent.id.as_str())
        .expect("message in state");
    let delivery = &original["delivery"][&me.id];
    assert_eq!(delivery["status"], "processed", "delivery: {delivery}");
    assert_eq!(delivery["attempts"].as_array().map(Vec::len), Some(1));

    sb.shutdown().await.unwrap();
}
