//! Chaos: the agent binary against the sandbox, killed at the moments where a
//! crash can repeat or lose a reply, and then at random.
//!
//! Aimed kills (deterministic): a `/_sandbox/faults` delay holds the agent's
//! request in the sandbox while the test sends SIGKILL, so the process dies
//! exactly there:
//! - a delay on `POST .../processed` holds a message between its reply and
//!   its processed mark: with the default state directory (no flags) the
//!   restarted agent finds the reply done in its journal and does not repeat
//!   it; with `--ephemeral` it replies a second time (which proves the aim);
//! - a delay on the reply's `POST .../messages` holds it between the journal's
//!   `sent` record and its confirmation: the restarted agent resumes the
//!   message, asks the platform whether the reply landed, and replies once.
//!
//! Random kills (seeded) on top: several rooms, a few hundred messages, the
//! sandbox dropping sockets, answering 5xx and 429 and answering slowly, and
//! the agent killed with SIGKILL at random moments and restarted. At the end
//! every message is processed and has exactly one reply.
//! `CHAOS_SEED=N cargo test --test e2e chaos -- --nocapture` replays a run's
//! random choices (the seed is printed).
//!
//! In every test an agent that exits by itself (not by the test's SIGKILL or
//! SIGTERM) fails the test with its stderr.

use crate::support::cli;
use crate::support::seeded;

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use band_client::rest::{HumanApi, RestConfig};
use band_sandbox::{default_seed, RunningSandbox};
use band_wire::model::Mention;
use cli::{switchboard, Running};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::sync::Mutex;

const ROOMS: usize = 4;
const PER_ROOM: usize = 60;
/// Bound on the random test once the chaos stops: everything must settle by then.
const SETTLE: Duration = Duration::from_secs(30);
/// Bound on one step of an aimed test (a start-up, a request reaching the
/// sandbox, a message being processed).
const STEP: Duration = Duration::from_secs(15);
/// How long an aimed delay holds its request: far longer than the test takes
/// to see it held and kill the agent.
const HOLD_MS: u64 = 3_000;
/// How long the reply is held between `sent` and its confirmation: the test
/// waits it out after the kill, to see that the request died with the agent.
const SENT_HOLD_MS: u64 = 1_000;
/// The journal's key of the echo rule's reply.
const REPLY_STEP: &str = "echo/echo#do0";

const WORKFLOW: &str = r#"version: 1
rules:
  - name: echo
    on: message_created
    if:
      - event.sender_type: User
    do:
      - reply: "echo: {{ event.content | strip_mentions | trim }}"
"#;

/// The agent on the echo workflow with its default state directory (under
/// `dir`, through XDG_STATE_HOME: no flag), fast retries and attempts to
/// spare (a message may fail many times while faults fly); `extra` flags
/// after (`--ephemeral`).
fn agent_command(rest: &str, ws: &str, dir: &Path, extra: &[&str]) -> tokio::process::Command {
    let mut cmd = switchboard();
    cmd.arg("run")
        .arg("--workflows")
        .arg(dir.join("workflows"))
        .env("XDG_STATE_HOME", dir.join("state"))
        .args([
            "--max-attempts",
            "1000",
            "--retry-delay",
            "200ms",
            "--no-watch",
        ])
        .args(["--api-key", "triage-key", "--rest-url"])
        .arg(rest)
        .arg("--ws-url")
        .arg(ws)
        .args(extra);
    cmd
}

/// A running agent process whose every end is checked: the test's SIGKILL
/// must be what killed it, its SIGTERM must end it cleanly, and it must not
/// have exited on its own before either.
struct Agent {
    running: Running,
}

impl Agent {
    fn spawn(mut cmd: tokio::process::Command) -> Agent {
        Agent {
            running: Running::spawn(&mut cmd),
        }
    }

    /// `Err` with the exit status and stderr if the agent has exited by itself.
    fn alive(&mut self) -> Result<(), String> {
        match self.running.exited() {
            None => Ok(()),
            Some(status) => Err(format!(
                "the agent exited by itself ({status}); stderr:\n{}",
                self.running.stderr_lines().join("\n")
            )),
        }
    }

    /// Waits for `startup sync done`; panics with stderr otherwise.
    async fn started(&mut self) {
        self.running
            .wait_for_stderr("startup sync", STEP, |l| l.contains("startup sync done"))
            .await;
    }

    /// SIGKILL and its stderr; `Err` (with stderr) if the process had already
    /// ended by itself, i.e. did not die of this SIGKILL.
    async fn kill(mut self) -> Result<Vec<String>, String> {
        self.alive()?;
        self.running.signal("KILL");
        let (status, lines) = self.running.wait_exit(Duration::from_secs(10)).await;
        if status.signal() == Some(9) {
            Ok(lines)
        } else {
            Err(format!(
                "the agent exited by itself ({status}) just before the test's SIGKILL; stderr:\n{}",
                lines.join("\n")
            ))
        }
    }

    /// SIGTERM; the exit must be clean. All of stderr.
    async fn stop(mut self) -> Result<Vec<String>, String> {
        self.alive()?;
        self.running.terminate();
        let (status, lines) = self.running.wait_exit(Duration::from_secs(10)).await;
        if status.success() {
            Ok(lines)
        } else {
            Err(format!(
                "the agent's exit after SIGTERM was {status}; stderr:\n{}",
                lines.join("\n")
            ))
        }
    }
}

/// A sandbox, a folder with the echo workflow and the state home, and
/// `rooms` rooms of alice's, each with the bot.
struct World {
    sb: RunningSandbox,
    dir: tempfile::TempDir,
    alice: HumanApi,
    bot: String,
    rooms: Vec<String>,
}

impl World {
    async fn new(rooms: usize) -> World {
        let sb = RunningSandbox::start("127.0.0.1:0".parse().unwrap(), default_seed())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("workflows")).unwrap();
        std::fs::write(dir.path().join("workflows/echo.yaml"), WORKFLOW).unwrap();
        let alice = HumanApi::new(RestConfig::new(sb.rest_url(), "alice-key")).unwrap();
        let seeded = seeded::sandbox_state(&sb).await;
        let bot = seeded["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["handle"] == "alice/triage-bot")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut ids = Vec::new();
        for i in 0..rooms {
            let room = alice
                .create_chat(Some(&format!("Chaos {i}")))
                .await
                .unwrap()
                .id;
            alice.add_participant(&room, &bot, None).await.unwrap();
            ids.push(room);
        }
        World {
            sb,
            dir,
            alice,
            bot,
            rooms: ids,
        }
    }

    fn command(&self, extra: &[&str]) -> tokio::process::Command {
        agent_command(
            &self.sb.rest_url(),
            &self.sb.ws_url(),
            self.dir.path(),
            extra,
        )
    }

    /// An agent on this world, started (its startup sync done).
    async fn agent(&self, extra: &[&str]) -> Agent {
        let mut agent = Agent::spawn(self.command(extra));
        agent.started().await;
        agent
    }

    /// Alice posts `content` in `room`, mentioning the bot; the message id.
    async fn post(&self, room: &str, content: &str) -> String {
        let mention = [Mention {
            id: Some(self.bot.clone()),
            ..Mention::default()
        }];
        // The human API is not faulted; a refusal would be a sandbox bug.
        self.alice
            .send_message(room, content, &mention)
            .await
            .unwrap()
            .id
    }

    /// The bot's replies, counted by the text they echo.
    async fn replies(&self) -> HashMap<String, usize> {
        let s = seeded::sandbox_state(&self.sb).await;
        let mut replies: HashMap<String, usize> = HashMap::new();
        for m in s["messages"].as_array().unwrap() {
            if m["sender_id"] == self.bot.as_str() && m["message_type"] == "text" {
                let content = m["content"].as_str().unwrap();
                let echoed = content.rsplit("echo: ").next().unwrap_or(content);
                *replies.entry(echoed.to_owned()).or_default() += 1;
            }
        }
        replies
    }

    /// The bot's delivery status of message `id` (`none` when it has none).
    async fn status(&self, id: &str) -> String {
        let s = seeded::sandbox_state(&self.sb).await;
        s["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .and_then(|m| m["delivery"][&self.bot]["status"].as_str())
            .unwrap_or("none")
            .to_owned()
    }

    /// Waits until message `id` is processed, checking that `agent` stays up.
    async fn processed(&self, id: &str, agent: &mut Agent) -> Result<(), String> {
        let deadline = Instant::now() + STEP;
        loop {
            agent.alive()?;
            let status = self.status(id).await;
            if status == "processed" {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "message {id} not processed within {STEP:?} (status {status}); stderr:\n{}",
                    agent.running.stderr_lines().join("\n")
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Arms a fault (`POST /_sandbox/faults`).
    async fn fault(&self, body: Value) {
        let resp = reqwest::Client::new()
            .post(format!("{}/_sandbox/faults", self.sb.rest_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "faults: {}", resp.status());
    }

    /// Waits until the sandbox has begun delaying a request whose method and
    /// path satisfy `held` (the faults' log of what fired), checking that
    /// `agent` stays up; the request's path. `what` names the request.
    async fn held(
        &self,
        agent: &mut Agent,
        what: &str,
        held: impl Fn(&str, &str) -> bool,
    ) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            if let Err(e) = agent.alive() {
                panic!("{e}");
            }
            let faults: Value = reqwest::get(format!("{}/_sandbox/faults", self.sb.rest_url()))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let hit = faults["fired"].as_array().unwrap().iter().find_map(|f| {
                let (method, path) = (f["method"].as_str()?, f["path"].as_str()?);
                (f["kind"] == "delay" && held(method, path)).then(|| path.to_owned())
            });
            if let Some(path) = hit {
                return path;
            }
            assert!(
                Instant::now() < deadline,
                "the agent made no {what} within {STEP:?}; stderr:\n{}",
                agent.running.stderr_lines().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The journal in the agent's default state directory (under this
    /// world's XDG_STATE_HOME), as JSON lines.
    fn journal(&self) -> Vec<Value> {
        let root = self.dir.path().join("state/switchboard");
        let path: PathBuf = std::fs::read_dir(&root)
            .unwrap_or_else(|e| panic!("no state directory under {}: {e}", root.display()))
            .filter_map(Result::ok)
            .map(|e| e.path().join("journal"))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("no journal under {}", root.display()));
        std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// The process's lines about message `id` that contain `what`.
fn logged<'a>(lines: &'a [String], id: &str, what: &str) -> Vec<&'a String> {
    lines
        .iter()
        .filter(|l| l.contains(id) && l.contains(what))
        .collect()
}

/// Kills the agent (run with `extra` flags) while the sandbox holds the
/// processed mark of a message whose reply is already on the platform, and
/// starts it again (with the same flags) until the message is processed.
/// The world, the message's text and id, and the second process's stderr.
async fn kill_between_reply_and_mark(extra: &[&str]) -> (World, String, String, Vec<String>) {
    let world = World::new(1).await;
    let room = world.rooms[0].clone();
    let mut agent = world.agent(extra).await;
    world
        .fault(json!({"delay": {"method": "POST", "path": "/processed", "ms": HOLD_MS}}))
        .await;
    let content = "held before its mark".to_owned();
    let id = world.post(&room, &content).await;
    let path = world
        .held(&mut agent, "processed mark", |m, p| {
            m == "POST" && p.ends_with("/processed")
        })
        .await;
    assert!(path.contains(&id), "held {path}, not {id}'s mark");
    // The aim: the reply is out, the mark is not.
    assert_eq!(world.replies().await.get(&content), Some(&1));
    assert_ne!(world.status(&id).await, "processed");
    agent.kill().await.unwrap_or_else(|e| panic!("{e}"));
    world.fault(json!({"clear": true})).await;

    let mut again = Agent::spawn(world.command(extra));
    world
        .processed(&id, &mut again)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let lines = again.stop().await.unwrap_or_else(|e| panic!("{e}"));
    (world, content, id, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_between_the_reply_and_the_processed_mark_does_not_repeat_the_reply() {
    let (world, content, id, lines) = kill_between_reply_and_mark(&[]).await;
    assert_eq!(
        world.replies().await.get(&content),
        Some(&1),
        "the reply was repeated; stderr of the restarted agent:\n{}",
        lines.join("\n")
    );
    // The recovery path: the message resumed from the journal, whose record
    // said the reply was done, so it was not sent again.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("action journal has unfinished messages")),
        "no resume from the journal at start-up:\n{}",
        lines.join("\n")
    );
    assert_eq!(
        logged(&lines, &id, "already done before; not repeated").len(),
        1,
        "the journal's done reply was not recognised:\n{}",
        lines.join("\n")
    );
    world.sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ephemeral_the_same_kill_doubles_the_reply() {
    // Without a journal nothing remembers the reply: the kill lands where
    // a duplicate is made, which is what the test above guards against.
    let (world, content, _, lines) = kill_between_reply_and_mark(&["--ephemeral"]).await;
    assert_eq!(
        world.replies().await.get(&content),
        Some(&2),
        "the aimed kill did not repeat the reply with --ephemeral; stderr:\n{}",
        lines.join("\n")
    );
    world.sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_between_sent_and_its_confirmation_replies_once() {
    let world = World::new(1).await;
    let room = world.rooms[0].clone();
    let mut agent = world.agent(&[]).await;
    // Delay rules match a path by substring, and the claim's path
    // (`.../messages/ID/processing`) contains the reply's
    // (`.../messages`): the claim is held first, and the reply's delay armed
    // while it waits, so the reply is the next POST to match.
    world
        .fault(json!({"delay": {"method": "POST", "path": "/processing", "ms": 1_000}}))
        .await;
    let content = "held between sent and done".to_owned();
    let id = world.post(&room, &content).await;
    world
        .held(&mut agent, "claim", |m, p| {
            m == "POST" && p.ends_with("/processing")
        })
        .await;
    let reply_path = format!("/chats/{room}/messages");
    world
        .fault(json!({"delay": {"method": "POST", "path": reply_path, "ms": SENT_HOLD_MS}}))
        .await;
    world
        .held(&mut agent, "reply", |m, p| {
            m == "POST" && p.ends_with(&reply_path)
        })
        .await;
    agent.kill().await.unwrap_or_else(|e| panic!("{e}"));
    // The aim: the journal says the reply was sent, not that it was done.
    let records: Vec<Value> = world
        .journal()
        .into_iter()
        .filter(|r| r["m"] == id.as_str())
        .collect();
    assert!(
        records
            .iter()
            .any(|r| r["k"] == REPLY_STEP && r["sent"] == true),
        "no `sent` record for the reply: {records:?}"
    );
    assert!(
        records.iter().all(|r| r.get("done").is_none()),
        "the reply was confirmed before the kill: {records:?}"
    );
    // The held request died with the agent's connection: once its delay
    // is over, the reply is still not on the platform.
    tokio::time::sleep(Duration::from_millis(SENT_HOLD_MS + 300)).await;
    assert_eq!(
        world.replies().await.get(&content),
        None,
        "the held reply landed after the kill"
    );
    world.fault(json!({"clear": true})).await;
    // A 1 ms delay on the room's `/context` marks the lookup of the reply,
    // which the restarted agent must make before sending it again.
    let lookup = format!("/chats/{room}/context");
    world
        .fault(json!({"delay": {"method": "GET", "path": lookup, "ms": 1}}))
        .await;

    let mut again = Agent::spawn(world.command(&[]));
    world
        .processed(&id, &mut again)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    world
        .held(
            &mut again,
            "lookup of the reply on the platform (GET .../context)",
            |m, p| m == "GET" && p.ends_with(&lookup),
        )
        .await;
    let lines = again.stop().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        world.replies().await.get(&content),
        Some(&1),
        "not exactly one reply; stderr of the restarted agent:\n{}",
        lines.join("\n")
    );
    // The recovery path: resumed from the journal, the reply looked for on
    // the platform, not found there, sent once.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("action journal has unfinished messages")),
        "no resume from the journal at start-up:\n{}",
        lines.join("\n")
    );
    assert!(
        logged(&lines, &id, "found on the platform").is_empty(),
        "a reply that never landed was found:\n{}",
        lines.join("\n")
    );
    world.sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_restarted_into_a_burst_of_429_on_agent_me_starts() {
    // Found by the random test: a restart while the platform answers 429
    // must wait it out (more failures than one request's own retries), not
    // exit before it knows its state directory.
    let world = World::new(1).await;
    world
        .fault(json!({"fail": {"path": "/agent/me", "status": 429, "count": 6, "retry_after": 0}}))
        .await;
    let mut agent = world.agent(&[]).await;
    let id = world.post(&world.rooms[0], "after the burst").await;
    world
        .processed(&id, &mut agent)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    agent.stop().await.unwrap_or_else(|e| panic!("{e}"));
    world.sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_gets_exactly_one_reply_through_random_kills_and_faults() {
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("chaos seed: {seed} (CHAOS_SEED={seed} replays it)");
    let world = World::new(ROOMS).await;

    let agent = Arc::new(Mutex::new(Some(world.agent(&[]).await)));
    let chaos = Arc::new(AtomicBool::new(true));
    let kills = Arc::new(AtomicUsize::new(0));
    let faults = Arc::new(AtomicUsize::new(0));
    // Log lines of the journal at work, from every process that ran.
    let resumed = Arc::new(AtomicUsize::new(0));
    let found = Arc::new(AtomicUsize::new(0));
    let count_resumes = {
        let (resumed, found) = (resumed.clone(), found.clone());
        move |lines: &[String]| {
            let n = |p: &str| lines.iter().filter(|l| l.contains(p)).count();
            resumed.fetch_add(n("already done before"), Ordering::SeqCst);
            found.fetch_add(n("found on the platform"), Ordering::SeqCst);
        }
    };

    // The agent is killed (SIGKILL) at random moments and started again; an
    // agent found dead by other means ends the chaos with its stderr.
    let killer = {
        let (agent, chaos, kills) = (agent.clone(), chaos.clone(), kills.clone());
        let count_resumes = count_resumes.clone();
        let (rest, ws) = (world.sb.rest_url(), world.sb.ws_url());
        let dir = world.dir.path().to_owned();
        let mut rng = StdRng::seed_from_u64(seed);
        tokio::spawn(async move {
            while chaos.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(rng.random_range(200..900))).await;
                let mut slot = agent.lock().await;
                if let Some(running) = slot.take() {
                    match running.kill().await {
                        Ok(lines) => count_resumes(&lines),
                        Err(e) => {
                            chaos.store(false, Ordering::SeqCst);
                            return Err(e);
                        }
                    }
                    kills.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
                *slot = Some(Agent::spawn(agent_command(&rest, &ws, &dir, &[])));
            }
            Ok(())
        })
    };

    // The sandbox misbehaves: on the agent's API only (people keep posting).
    let injector = {
        let chaos = chaos.clone();
        let faults = faults.clone();
        let url = world.sb.rest_url();
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            while chaos.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(rng.random_range(150..600))).await;
                let fault = match rng.random_range(0..4) {
                    0 => json!({"drop_sockets": true}),
                    1 => {
                        json!({"fail": {"path": "/api/v1/agent", "status": 503, "count": rng.random_range(1..5)}})
                    }
                    2 => {
                        json!({"fail": {"path": "/api/v1/agent", "status": 429, "count": rng.random_range(1..4), "retry_after": 0}})
                    }
                    _ => {
                        json!({"delay": {"path": "/api/v1/agent", "ms": rng.random_range(100..800), "count": rng.random_range(1..6)}})
                    }
                };
                if client
                    .post(format!("{url}/_sandbox/faults"))
                    .json(&fault)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
                {
                    faults.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };

    // People post, spread over the rooms, each message mentioning the bot.
    let mut sent: Vec<String> = Vec::new();
    let mut rng = StdRng::seed_from_u64(seed ^ 0xfeed);
    for n in 0..PER_ROOM {
        if !chaos.load(Ordering::SeqCst) {
            break; // the killer found the agent dead by itself
        }
        for (r, room) in world.rooms.iter().enumerate() {
            let content = format!("chaos r{r} #{n}");
            world.post(room, &content).await;
            sent.push(content);
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..25))).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    chaos.store(false, Ordering::SeqCst);
    if let Err(e) = killer.await.unwrap() {
        panic!("seed {seed}: {e}");
    }
    injector.await.unwrap();
    world.fault(json!({"clear": true})).await;
    let mut agent = match agent.lock().await.take() {
        Some(agent) => agent,
        None => Agent::spawn(world.command(&[])),
    };

    // Everything settles: every message processed, the agent up throughout.
    let started = Instant::now();
    let (mut processed, mut other) = (0, Vec::new());
    while started.elapsed() < SETTLE {
        if let Err(e) = agent.alive() {
            panic!("seed {seed}: {e}");
        }
        let s = seeded::sandbox_state(&world.sb).await;
        let statuses: Vec<String> = s["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["sender_type"] == "User")
            .map(|m| {
                m["delivery"][&world.bot]["status"]
                    .as_str()
                    .unwrap_or("none")
                    .to_owned()
            })
            .collect();
        processed = statuses.iter().filter(|s| *s == "processed").count();
        other = statuses
            .iter()
            .filter(|s| *s != "processed")
            .cloned()
            .collect();
        if processed == sent.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let replies = world.replies().await;
    let lost: Vec<&String> = sent.iter().filter(|c| !replies.contains_key(*c)).collect();
    let doubled: Vec<(&String, &usize)> = replies.iter().filter(|(_, n)| **n > 1).collect();
    let strays = replies.keys().filter(|k| !sent.contains(k)).count();
    println!(
        "chaos: {} messages in {ROOMS} rooms, {} kills, {} faults injected, {} processed, {} duplicates, {} lost, settled in {:.1}s",
        sent.len(),
        kills.load(Ordering::SeqCst),
        faults.load(Ordering::SeqCst),
        processed,
        doubled.len(),
        lost.len(),
        started.elapsed().as_secs_f64()
    );
    // Stopped once it has started: a SIGTERM before its signal handler is
    // installed would end it by the signal, not by a clean stop.
    agent.started().await;
    let logs = agent
        .stop()
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    count_resumes(&logs);
    println!(
        "journal: {} finished actions not repeated, {} sent before a kill and found on the platform",
        resumed.load(Ordering::SeqCst),
        found.load(Ordering::SeqCst)
    );
    assert_eq!(sent.len(), ROOMS * PER_ROOM);
    assert!(
        kills.load(Ordering::SeqCst) >= 3,
        "the agent was killed {} times",
        kills.load(Ordering::SeqCst)
    );
    assert!(
        doubled.is_empty(),
        "duplicated replies (seed {seed}): {doubled:?}"
    );
    assert!(
        lost.is_empty() && processed == sent.len(),
        "not all answered/processed (seed {seed}): {} lost {:?}, statuses not processed: {other:?}\nlast agent logs:\n{}",
        lost.len(),
        lost.iter().take(5).collect::<Vec<_>>(),
        logs.iter().rev().take(40).rev().cloned().collect::<Vec<_>>().join("\n")
    );
    assert_eq!(strays, 0, "replies to messages nobody sent");
    world.sb.shutdown().await.unwrap();
}
