//! The sandbox console (`GET /` of the sandbox) end to end: `switchboard
//! sandbox` and `switchboard run --metrics-addr` as processes, and
//! `tests/console/e2e.mjs` driving Debian's headless Chromium through
//! playwright-core (a person mentions the agent and sees the reply, the
//! lifecycle and the rule; contact requests approved and rejected by the
//! shipped workflow). Also, without a browser: the sandbox-only helpers the
//! console reads, the agent's `/handled` feed, and `demo --keep-running`.
//!
//! Needs `/usr/bin/chromium`, node and npm; `tests/console/setup.sh` installs
//! them (apt-get, npm ci) when missing. Their absence is a failure, never a skip.

use crate::support::seeded;

use crate::support::cli;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cli::{switchboard, Running};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use switchboard::agent::{Agent, AgentConfig};
use tokio_tungstenite::tungstenite::Message;

/// Bound for one step that waits on a process or the network.
const STEP: Duration = Duration::from_secs(15);
/// Bound for the whole browser script (it bounds each of its own waits at 15 s).
const BROWSER: Duration = Duration::from_secs(180);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A port nobody listens on right now: bound to port 0, read, released.
fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Runs the idempotent `tests/console/setup.sh`; panics when it fails. Its
/// output goes straight to the terminal, past the test harness's capture:
/// whoever runs `cargo test` sees what it installs (it says so first).
fn setup_browser() {
    let status = std::process::Command::new("bash")
        .arg(repo().join("tests/console/setup.sh"))
        .stdin(std::process::Stdio::null())
        .status()
        .expect("bash runs");
    assert!(
        status.success(),
        "tests/console/setup.sh failed ({status}; its output is above): it installs chromium \
         with apt-get (needs root) and playwright-core with npm ci"
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing after tests/console/setup.sh: install Debian's `chromium`"
    );
    let node = std::process::Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "node is missing after tests/console/setup.sh: install Debian's `nodejs`"
    );
}

/// GETs `url` until it answers `200` and `pred` holds for its JSON; panics after `STEP`.
/// GETs `url` and reads its JSON body (panics on failure: a test helper).
async fn get_json(http: &reqwest::Client, url: impl reqwest::IntoUrl) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

async fn wait_json(what: &str, url: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let deadline = tokio::time::Instant::now() + STEP;
    let mut last = String::from("no answer");
    loop {
        if let Ok(resp) = http.get(url).send().await {
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            if status == 200 && pred(&body) {
                return body;
            }
            last = format!("{status} {body}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {what} within {STEP:?}; last answer from {url}: {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The next text frame of `ws`, decoded; panics after `STEP`.
async fn next_frame<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let msg = tokio::time::timeout(STEP, ws.next())
        .await
        .expect("a frame in time")
        .expect("the socket is open")
        .expect("a readable frame");
    serde_json::from_str(msg.to_text().expect("a text frame")).expect("a JSON frame")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_headless_chromium() {
    tokio::task::spawn_blocking(setup_browser).await.unwrap();

    let sandbox_addr = free_addr();
    let metrics_addr = free_addr();
    let base = format!("http://{sandbox_addr}");
    let feed = format!("http://{metrics_addr}");
    let mut cmd = switchboard();
    cmd.args(["sandbox", "--listen", &sandbox_addr.to_string()])
        .args(["--agent-feed", &feed]);
    let sandbox = Running::spawn(&mut cmd);
    wait_json("sandbox users", &format!("{base}/_sandbox/users"), |v| {
        v.as_array().is_some_and(|a| !a.is_empty())
    })
    .await;

    // The shipped workflows, plus a fixture rule that fails a message on
    // purpose; one attempt, so that message stays failed for the page to show.
    let workflows = tempfile::tempdir().unwrap();
    for dir in [
        repo().join("workflows"),
        repo().join("tests/console/workflows"),
    ] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, workflows.path().join(path.file_name().unwrap())).unwrap();
            }
        }
    }
    let mut cmd = switchboard();
    cmd.arg("run")
        .arg("--workflows")
        .arg(workflows.path())
        .args(["--max-attempts", "1"])
        .args(["--api-key", "triage-key", "--rest-url", &base])
        .args([
            "--ws-url",
            &format!("ws://{sandbox_addr}/api/v1/socket/websocket"),
        ])
        .args(["--metrics-addr", &metrics_addr.to_string()]);
    let mut agent = Running::spawn(&mut cmd);
    agent
        .wait_for_stderr("the agent's startup sync", STEP, |l| {
            l.contains("startup sync done")
        })
        .await;
    wait_json("a connected agent", &format!("{feed}/healthz"), |h| {
        h["socket"]["connected"] == true
    })
    .await;

    // CONSOLE_SCREENSHOTS=$PWD/docs/console refreshes the README's pictures;
    // by default they go to a temporary folder and are only checked.
    let temp = tempfile::tempdir().unwrap();
    let shots = std::env::var_os("CONSOLE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| temp.path().to_owned());
    let mut node = tokio::process::Command::new("node");
    node.arg(repo().join("tests/console/e2e.mjs"))
        .current_dir(repo().join("tests/console"))
        .env("CONSOLE_URL", format!("{base}/"))
        .env("SCREENSHOT_DIR", &shots)
        .kill_on_drop(true);
    let out = tokio::time::timeout(BROWSER, node.output())
        .await
        .unwrap_or_else(|_| panic!("tests/console/e2e.mjs did not finish within {BROWSER:?}"))
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}\nagent stderr:\n{}",
        out.status,
        agent.stderr_lines().join("\n")
    );
    assert!(stdout.contains("e2e: PASS"), "{stdout}\n{stderr}");
    for view in ["users", "mention", "room", "contacts"] {
        let png = shots.join(format!("{view}.png"));
        let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "no screenshot of the {view} view at {png:?}");
    }

    agent.stop_cleanly("agent", STEP).await;
    sandbox.stop_cleanly("sandbox", STEP).await;
}

/// The page and its assets, `/_sandbox/users`, `/_sandbox/console/config`,
/// `/_sandbox/rooms/{id}/messages`, and a person's socket keyed by `api_key`.
#[tokio::test]
async fn the_sandbox_serves_what_the_console_reads() {
    let (sb, bob, room, bot) = seeded::seeded_sandbox().await;
    let base = sb.rest_url();
    let http = reqwest::Client::new();

    for (path, kind, needle) in [
        (
            "/",
            "text/html",
            "<script type=\"module\" src=\"/console.js\">",
        ),
        ("/console.js", "text/javascript", "class Phoenix"),
        ("/console.css", "text/css", ":focus-visible"),
    ] {
        let resp = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with(kind), "{path}: {ct}");
        assert!(resp.text().await.unwrap().contains(needle), "{path}");
    }

    let users: Value = get_json(&http, format!("{base}/_sandbox/users")).await;
    let handles: Vec<(&str, &str)> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["handle"].as_str().unwrap(),
                u["api_key"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        handles,
        [
            ("alice", "alice-key"),
            ("bob", "bob-key"),
            ("carol", "carol-key")
        ]
    );
    let bob_id = users[1]["id"].as_str().unwrap().to_owned();

    let config = format!("{base}/_sandbox/console/config");
    let v: Value = get_json(&http, &config).await;
    assert_eq!(v, json!({"agent_feed": null}));
    sb.sandbox()
        .set_agent_feed(Some("http://127.0.0.1:9464".into()));
    let v: Value = get_json(&http, &config).await;
    assert_eq!(v, json!({"agent_feed": "http://127.0.0.1:9464"}));

    // Bob's socket, keyed in the query as a browser must, sees his own message live.
    let url = format!(
        "ws://{}/api/v1/socket/websocket?vsn=2.0.0&api_key=bob-key",
        sb.addr()
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let topic = format!("chat_room:{room}");
    ws.send(Message::text(
        json!(["1", "1", topic, "phx_join", {}]).to_string(),
    ))
    .await
    .unwrap();
    let reply = next_frame(&mut ws).await;
    assert_eq!(reply[4]["status"], "ok", "{reply}");
    let id = seeded::ask(&bob, &room, &bot, "hello there").await;
    let pushed = next_frame(&mut ws).await;
    assert_eq!(
        (&pushed[0], &pushed[3], &pushed[4]["id"]),
        (&json!("1"), &json!("message_created"), &json!(id)),
        "{pushed}"
    );

    // The lifecycle view: the message, delivered to the (not running) bot.
    let rows: Value = get_json(&http, format!("{base}/_sandbox/rooms/{room}/messages")).await;
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == json!(id))
        .expect("the message is listed");
    assert_eq!(row["sender_id"], json!(bob_id));
    assert_eq!(row["delivery"][&bot]["status"], "delivered", "{row}");
    let missing = http
        .get(format!("{base}/_sandbox/rooms/nope/messages"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // The header path is unchanged; a wrong query key is refused like a wrong header.
    let bad = format!(
        "ws://{}/api/v1/socket/websocket?vsn=2.0.0&api_key=nope",
        sb.addr()
    );
    assert!(tokio_tungstenite::connect_async(bad.as_str())
        .await
        .is_err());
}

/// The agent's `/handled`: which rules handled which message, readable from
/// any origin (the console is served from another port).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_feed_lists_handled_events_with_their_rules() {
    let (sb, bob, room, bot) = seeded::seeded_sandbox().await;
    let addr = free_addr();
    let mut config = AgentConfig::new(
        sb.rest_url(),
        sb.ws_url(),
        "triage-key".into(),
        repo().join("workflows"),
    );
    config.metrics_addr = Some(addr);
    let agent = Agent::prepare(&config, None).await.unwrap();
    let handle = agent.handle();
    let running = tokio::spawn(agent.run_until(std::future::pending()));
    let feed = format!("http://{addr}/handled");
    wait_json("agent_started", &feed, |v| {
        v.as_array()
            .is_some_and(|a| a.iter().any(|e| e["event_type"] == "agent_started"))
    })
    .await;

    let id = seeded::ask(&bob, &room, &bot, "I need a refund").await;
    let entries = wait_json("the refund", &feed, |v| {
        v.as_array()
            .is_some_and(|a| a.iter().any(|e| e["message_id"] == json!(id)))
    })
    .await;
    let entry = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["message_id"] == json!(id))
        .unwrap();
    assert_eq!(entry["event_type"], "message_created");
    assert_eq!(entry["room"], json!(room));
    assert_eq!(entry["event_id"], json!(id));
    assert_eq!(entry["rules"], json!(["triage/refunds-to-billing"]));
    assert_eq!(entry["actions"], json!(["add_participant", "reply"]));
    assert_eq!(entry["outcome"], "done");
    assert!(entry.get("reason").is_none(), "{entry}");
    assert!(entry["at"].as_str().unwrap().ends_with('Z'), "{entry}");

    let resp = reqwest::get(&feed).await.unwrap();
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");

    handle.shutdown();
    tokio::time::timeout(STEP, running)
        .await
        .expect("the agent stops")
        .unwrap()
        .unwrap();
}

/// `demo --keep-running`: after the script, the console's URL is printed, its
/// config names the in-process agent's feed, which lists the demo's rules;
/// SIGTERM ends it cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_keeps_running_with_the_console_and_the_agent_feed() {
    let mut cmd = switchboard();
    cmd.args(["demo", "--keep-running"]);
    let (demo, stdout) = Running::spawn_with_stdout(&mut cmd);
    let deadline = tokio::time::Instant::now() + STEP;
    let line = loop {
        let lines = stdout.lock().unwrap().clone();
        if let Some(line) = lines.iter().find(|l| l.starts_with("console at ")) {
            break line.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no console URL within {STEP:?}; stdout:\n{}\nstderr:\n{}",
            lines.join("\n"),
            demo.stderr_lines().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // "console at http://127.0.0.1:P/ (agent feed http://127.0.0.1:Q); Ctrl-C to stop"
    let words: Vec<&str> = line.split_whitespace().collect();
    let console = words[2].trim_end_matches('/');
    let feed = words[5].trim_end_matches(");");
    assert!(console.starts_with("http://127.0.0.1:"), "{line}");
    assert!(feed.starts_with("http://127.0.0.1:"), "{line}");

    let config = wait_json(
        "the console config",
        &format!("{console}/_sandbox/console/config"),
        |_| true,
    )
    .await;
    assert_eq!(config, json!({"agent_feed": feed}));
    let page = reqwest::get(format!("{console}/")).await.unwrap();
    assert_eq!(page.status(), 200);
    let handled = wait_json("the demo's events", &format!("{feed}/handled"), |v| {
        v.as_array().is_some_and(|a| a.len() > 5)
    })
    .await;
    let rules: Vec<&str> = handled
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["rules"].as_array().unwrap().iter())
        .filter_map(Value::as_str)
        .collect();
    for rule in [
        "triage/refunds-to-billing",
        "faq/opening-hours",
        "contacts/approve-known(else)",
    ] {
        assert!(rules.contains(&rule), "no {rule} in {rules:?}");
    }

    demo.stop_cleanly("demo", STEP).await;
}
