//! The agent runtime against the real sandbox over loopback: startup drain,
//! live handling, the lifecycle marks, rooms coming and going, reconnects,
//! contacts, `started`, and graceful shutdown.

use crate::support::seeded;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use band_client::rest::{AgentApi, HumanApi, RestConfig};
use band_client::socket::{Backoff, Socket, SocketConfig, StopReason};
use band_sandbox::{default_seed, RunningSandbox};
use band_wire::events::Event;
use band_wire::model::{AgentMe, Mention};
use serde_json::{json, Value};
use switchboard::runtime::{
    Delivery, Handler, HandlerFuture, HandlerResult, Runtime, RuntimeConfig, RuntimeError,
    RuntimeHandle,
};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout};

const WAIT: Duration = Duration::from_secs(10);

/// What the test handler saw.
#[derive(Debug, Clone)]
struct Record {
    event: String,
    room: Option<String>,
    message_id: Option<String>,
    content: String,
    from_backlog: bool,
    participants: Vec<String>,
    title: Option<String>,
}

/// Records deliveries; for messages it replies through the agent API, fails
/// when the text says "fail", and dawdles when it says "slow".
struct Recorder {
    api: AgentApi,
    log: Mutex<Vec<Record>>,
    slow_entered: Notify,
}

impl Recorder {
    fn records(&self) -> Vec<Record> {
        self.log.lock().unwrap().clone()
    }

    fn messages(&self) -> Vec<Record> {
        self.records()
            .into_iter()
            .filter(|r| r.event == "message_created")
            .collect()
    }
}

impl Handler for Recorder {
    fn started<'a>(&'a self, _me: &'a AgentMe) -> HandlerFuture<'a> {
        Box::pin(async move {
            self.log.lock().unwrap().push(Record {
                event: "started".into(),
                room: None,
                message_id: None,
                content: String::new(),
                from_backlog: false,
                participants: vec![],
                title: None,
            });
            HandlerResult::Done
        })
    }

    fn handle(&self, d: Delivery) -> HandlerFuture<'_> {
        Box::pin(async move {
            let msg = match &d.event {
                Event::MessageCreated(m) => Some(m.clone()),
                _ => None,
            };
            self.log.lock().unwrap().push(Record {
                event: d.event.name().to_string(),
                room: d.room.as_ref().map(|r| r.id.clone()),
                message_id: msg.as_ref().map(|m| m.id.clone()),
                content: msg.as_ref().map(|m| m.content.clone()).unwrap_or_default(),
                from_backlog: d.from_backlog,
                participants: d
                    .room
                    .as_ref()
                    .map(|r| r.participants.iter().map(|p| p.id.clone()).collect())
                    .unwrap_or_default(),
                title: d.room.as_ref().and_then(|r| r.title.clone()),
            });
            let (Some(m), Some(room)) = (msg, d.room) else {
                return HandlerResult::Done;
            };
            if m.content.contains("fail") {
                return HandlerResult::Failed {
                    reason: "asked to fail".into(),
                };
            }
            // "flaky": fails on its first run only.
            let runs = self
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|r| r.message_id.as_deref() == Some(m.id.as_str()))
                .count();
            if m.content.contains("flaky") && runs == 1 {
                return HandlerResult::Failed {
                    reason: "flaky the first time".into(),
                };
            }
            if m.content.contains("slow") {
                self.slow_entered.notify_one();
                sleep(Duration::from_millis(1500)).await;
            }
            let mention = Mention {
                id: Some(m.sender_id.clone()),
                ..Mention::default()
            };
            match self
                .api
                .send_message(&room.id, &format!("ack {}", m.id), &[mention])
                .await
            {
                Ok(_) => HandlerResult::Done,
                Err(e) if e.is_execution_stopped() => HandlerResult::Stopped {
                    reason: e.to_string(),
                },
                Err(e) => HandlerResult::Failed {
                    reason: e.to_string(),
                },
            }
        })
    }
}

/// A sandbox, the bot's identity, the Support room, and people to talk.
struct World {
    sb: RunningSandbox,
    agent_id: String,
    alice: HumanApi,
    bob: HumanApi,
    carol: HumanApi,
    room: String,
    recorder: Arc<Recorder>,
}

impl World {
    async fn start() -> World {
        let sb = RunningSandbox::start("127.0.0.1:0".parse().unwrap(), default_seed())
            .await
            .unwrap();
        let api = AgentApi::new(RestConfig::new(sb.rest_url(), "triage-key")).unwrap();
        let agent_id = api.me().await.unwrap().id;
        let human = |key: &str| HumanApi::new(RestConfig::new(sb.rest_url(), key)).unwrap();
        let (alice, bob, carol) = (human("alice-key"), human("bob-key"), human("carol-key"));
        let room = seeded::support_room(&bob).await;
        let recorder = Arc::new(Recorder {
            api,
            log: Mutex::new(Vec::new()),
            slow_entered: Notify::new(),
        });
        World {
            sb,
            agent_id,
            alice,
            bob,
            carol,
            room,
            recorder,
        }
    }

    /// Runtime config with test-sized timings.
    fn config(&self, reconnect: Duration) -> RuntimeConfig {
        let mut c = RuntimeConfig::new(self.sb.rest_url(), self.sb.ws_url(), "triage-key");
        c.socket.heartbeat_interval = Duration::from_millis(500);
        c.socket.heartbeat_timeout = Duration::from_secs(2);
        c.socket.join_timeout = Duration::from_secs(2);
        c.socket.reconnect = Backoff::fixed(reconnect, None);
        c.socket.rejoin = Backoff::fixed(Duration::from_millis(50), Some(5));
        c.tunables.startup_retry_delay = Duration::from_millis(50);
        c.tunables.ack_retry_delay = Duration::from_millis(50);
        c.tunables.shutdown_grace = Duration::from_secs(5);
        // One attempt unless a test is about retries.
        c.tunables.max_attempts = 1;
        c.tunables.retry_delay = Duration::from_millis(100);
        c
    }

    fn spawn_with(
        &self,
        config: RuntimeConfig,
    ) -> (RuntimeHandle, JoinHandle<Result<(), RuntimeError>>) {
        let rt = Runtime::new(config, self.recorder.clone());
        let handle = rt.handle();
        (handle, tokio::spawn(rt.run()))
    }

    fn spawn(&self) -> (RuntimeHandle, JoinHandle<Result<(), RuntimeError>>) {
        self.spawn_with(self.config(Duration::from_millis(50)))
    }

    /// Starts the runtime and waits for `started`.
    async fn run(&self) -> (RuntimeHandle, JoinHandle<Result<(), RuntimeError>>) {
        let r = self.spawn();
        self.wait("started", |w| w.count("started") == 1).await;
        r
    }

    fn count(&self, event: &str) -> usize {
        self.recorder
            .records()
            .iter()
            .filter(|r| r.event == event)
            .count()
    }

    async fn say(&self, who: &HumanApi, room: &str, text: &str) -> String {
        let mention = Mention {
            id: Some(self.agent_id.clone()),
            ..Mention::default()
        };
        who.send_message(room, text, &[mention]).await.unwrap().id
    }

    async fn state(&self) -> Value {
        reqwest::get(format!("{}/_sandbox/state", self.sb.rest_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn post(&self, path: &str, body: Value) {
        let resp = reqwest::Client::new()
            .post(format!("{}{path}", self.sb.rest_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
    }

    /// The agent's delivery record of message `id`.
    async fn delivery(&self, id: &str) -> Value {
        let state = self.state().await;
        let msg = state["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap_or_else(|| panic!("message {id} not in state"))
            .clone();
        msg["delivery"][&self.agent_id].clone()
    }

    /// Topics the agent's live connections have joined.
    async fn agent_topics(&self) -> Vec<String> {
        let state = self.state().await;
        state["connections"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["id"] == self.agent_id.as_str())
            .flat_map(|c| c["topics"].as_array().unwrap().clone())
            .map(|t| t.as_str().unwrap().to_string())
            .collect()
    }

    /// Polls `cond` until it holds, failing after [`WAIT`].
    async fn wait(&self, what: &str, cond: impl Fn(&World) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !cond(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {:#?}",
                self.recorder.records()
            );
            sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls the sandbox until message `id` reaches `status` for the agent.
    async fn wait_status(&self, id: &str, status: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let d = self.delivery(id).await;
            if d["status"] == status {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "message {id} never became {status}: {d}"
            );
            sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(&self, handle: RuntimeHandle, task: JoinHandle<Result<(), RuntimeError>>) {
        handle.shutdown();
        timeout(WAIT, task).await.unwrap().unwrap().unwrap();
    }
}

fn ids(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| r.message_id.clone())
        .collect()
}

#[tokio::test]
async fn backlog_is_drained_before_live_messages_and_handled_once() {
    let w = World::start().await;
    let m1 = w.say(&w.bob, &w.room, "backlog one").await;
    let m2 = w.say(&w.bob, &w.room, "backlog two").await;
    let (handle, task) = w.run().await;
    // `started` came after the drain of both backlog messages.
    let recs = w.recorder.records();
    let started_at = recs.iter().position(|r| r.event == "started").unwrap();
    assert_eq!(ids(&recs[..started_at]), vec![m1.clone(), m2.clone()]);
    let m3 = w.say(&w.bob, &w.room, "live three").await;
    w.wait("three messages", |w| w.recorder.messages().len() >= 3)
        .await;
    w.wait_status(&m3, "processed").await;
    sleep(Duration::from_millis(300)).await; // room for a wrong second delivery
    let msgs = w.recorder.messages();
    assert_eq!(ids(&msgs), vec![m1.clone(), m2.clone(), m3.clone()]);
    assert_eq!(
        msgs.iter().map(|r| r.from_backlog).collect::<Vec<_>>(),
        vec![true, true, false]
    );
    // The handler sees the room as the chat list and `/participants` describe it.
    let bob_id = w.bob.profile().await.unwrap().id;
    assert_eq!(msgs[0].title.as_deref(), Some("Support"));
    assert!(
        msgs[0].participants.contains(&bob_id),
        "{:?}",
        msgs[0].participants
    );
    for id in [&m1, &m2, &m3] {
        assert_eq!(w.delivery(id).await["status"], "processed");
    }
    assert_eq!(w.count("started"), 1);
    w.stop(handle, task).await;
}

#[tokio::test]
async fn live_messages_are_handled_once_in_order_and_replied_to() {
    let w = World::start().await;
    let (handle, task) = w.run().await;
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(w.say(&w.bob, &w.room, &format!("live {i}")).await);
    }
    w.wait("five messages", |w| w.recorder.messages().len() >= 5)
        .await;
    for id in &sent {
        w.wait_status(id, "processed").await;
    }
    sleep(Duration::from_millis(300)).await;
    assert_eq!(ids(&w.recorder.messages()), sent);
    // The replies are real messages from the agent (and were not fed back to it).
    let state = w.state().await;
    let replies = state["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["sender_id"] == w.agent_id.as_str())
        .count();
    assert_eq!(replies, 5);
    assert_eq!(w.count("started"), 1);
    w.stop(handle, task).await;
}

#[tokio::test]
async fn live_messages_arriving_during_the_drain_are_not_handled_twice() {
    let w = World::start().await;
    // Hold the startup drain's first `/next` so live pushes pile up behind it.
    w.post(
        "/_sandbox/faults",
        json!({"delay": {"path": "/next", "ms": 1000, "count": 1}}),
    )
    .await;
    let (handle, task) = w.spawn();
    let topic = format!("chat_room:{}", w.room);
    let deadline = Instant::now() + WAIT;
    while !w.agent_topics().await.contains(&topic) {
        assert!(Instant::now() < deadline, "room never joined");
        sleep(Duration::from_millis(10)).await;
    }
    let a = w.say(&w.bob, &w.room, "during drain a").await;
    let b = w.say(&w.bob, &w.room, "during drain b").await;
    w.wait("started", |w| w.count("started") == 1).await;
    w.wait_status(&b, "processed").await;
    let c = w.say(&w.bob, &w.room, "after drain").await;
    w.wait_status(&c, "processed").await;
    sleep(Duration::from_millis(300)).await;
    let msgs = w.recorder.messages();
    // Both were pushed live and served by `/next`; each ran once, from the drain.
    assert_eq!(ids(&msgs), vec![a, b, c]);
    assert!(msgs[0].from_backlog && msgs[1].from_backlog, "{msgs:#?}");
    w.stop(handle, task).await;
}

#[tokio::test]
async fn a_failing_processed_ack_is_retried_without_rerunning_the_handler() {
    let w = World::start().await;
    let (handle, task) = w.run().await;
    // More failures than the REST client's own retries: our ack loop must step in.
    w.post(
        "/_sandbox/faults",
        json!({"fail": {"method": "POST", "path": "/processed", "status": 503, "count": 5}}),
    )
    .await;
    let id = w.say(&w.bob, &w.room, "ack me").await;
    let d = w.wait_status(&id, "processed").await;
    assert_eq!(d["attempts"].as_array().unwrap().len(), 1, "{d}");
    sleep(Duration::from_millis(300)).await;
    assert_eq!(ids(&w.recorder.messages()), vec![id]);
    w.stop(handle, task).await;
}

#[tokio::test]
async fn failed_outcome_marks_the_message_failed_with_the_reason() {
    let w = World::start().await;
    let (handle, task) = w.run().await;
    let id = w.say(&w.bob, &w.room, "please fail").await;
    let d = w.wait_status(&id, "failed").await;
    let attempts = d["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{d}");
    assert_eq!(attempts[0]["error"], "asked to fail");
    // A later message still goes through, and the failed one is not retried.
    let ok = w.say(&w.bob, &w.room, "all good").await;
    w.wait_status(&ok, "processed").await;
    let msgs = w.recorder.messages();
    assert_eq!(ids(&msgs), vec![id, ok]);
    assert!(
        msgs[0].content.ends_with("please fail"),
        "{}",
        msgs[0].content
    );
    w.stop(handle, task).await;
}

#[tokio::test]
async fn a_failing_message_is_retried_up_to_the_limit_and_a_flaky_one_recovers() {
    let w = World::start().await;
    let mut config = w.config(Duration::from_millis(600));
    config.tunables.max_attempts = 3;
    let (handle, task) = w.spawn_with(config);
    w.wait("started", |w| w.count("started") == 1).await;
    let flaky = w.say(&w.bob, &w.room, "flaky one").await;
    let bad = w.say(&w.bob, &w.room, "please fail").await;
    let d = w.wait_status(&flaky, "processed").await;
    assert_eq!(d["attempts"].as_array().unwrap().len(), 2, "{d}");
    // Three attempts, each failed with the reason; then it is left alone.
    let deadline = Instant::now() + WAIT;
    loop {
        let d = w.delivery(&bad).await;
        let attempts = d["attempts"].as_array().unwrap().len();
        if attempts == 3 && d["status"] == "failed" {
            assert!(d["attempts"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["error"] == "asked to fail"));
            break;
        }
        assert!(attempts <= 3, "{d}");
        assert!(Instant::now() < deadline, "not tried 3 times: {d}");
        sleep(Duration::from_millis(50)).await;
    }
    sleep(Duration::from_millis(500)).await;
    let runs = |id: &str| {
        w.recorder
            .messages()
            .iter()
            .filter(|m| m.message_id.as_deref() == Some(id))
            .count()
    };
    assert_eq!(runs(&bad), 3, "no fourth attempt");
    assert_eq!(runs(&flaky), 2);
    w.stop(handle, task).await;
}

#[tokio::test]
async fn a_room_added_while_running_is_joined_drained_and_served() {
    let w = World::start().await;
    let (handle, task) = w.run().await;
    let room = w.alice.create_chat(Some("Ops")).await.unwrap().id;
    w.alice
        .add_participant(&room, &w.agent_id, None)
        .await
        .unwrap();
    // Sent at once: it may be drained or pushed live, but it is handled once.
    let m1 = w.say(&w.alice, &room, "ops one").await;
    w.wait("room_added", |w| w.count("room_added") == 1).await;
    w.wait("ops one", |w| ids(&w.recorder.messages()).contains(&m1))
        .await;
    let m2 = w.say(&w.alice, &room, "ops two").await;
    w.wait_status(&m2, "processed").await;
    w.wait_status(&m1, "processed").await;
    sleep(Duration::from_millis(300)).await;
    let in_room: Vec<Record> = w
        .recorder
        .messages()
        .into_iter()
        .filter(|r| r.room.as_deref() == Some(room.as_str()))
        .collect();
    assert_eq!(ids(&in_room), vec![m1, m2]);
    assert!(handle.rooms().contains(&room));
    let topics = w.agent_topics().await;
    assert!(topics.contains(&format!("chat_room:{room}")), "{topics:?}");
    assert!(
        topics.contains(&format!("room_participants:{room}")),
        "{topics:?}"
    );
    let added = w
        .recorder
        .records()
        .into_iter()
        .find(|r| r.event == "room_added")
        .unwrap();
    assert_eq!(added.room.as_deref(), Some(room.as_str()));
    assert_eq!(added.title.as_deref(), Some("Ops"));
    w.stop(handle, task).await;
}

#[tokio::test]
async fn room_removed_reaches_the_handler_and_the_room_is_left() {
    let w = World::start().await;
    let (handle, task) = w.run().await;
    assert!(handle.rooms().contains(&w.room));
    w.alice
        .remove_participant(&w.room, &w.agent_id)
        .await
        .unwrap();
    w.wait("room_removed", |w| w.count("room_removed") == 1)
        .await;
    let deadline = Instant::now() + WAIT;
    while handle.rooms().contains(&w.room) {
        assert!(Instant::now() < deadline, "room still served");
        sleep(Duration::from_millis(20)).await;
    }
    let topics = w.agent_topics().await;
    assert!(!topics.iter().any(|t| t.ends_with(&w.room)), "{topics:?}");
    assert!(
        topics.contains(&format!("agent_rooms:{}", w.agent_id)),
        "{topics:?}"
    );
    // After a reconnect the room is not rejoined.
    w.post("/_sandbox/faults", json!({"drop_sockets": true}))
        .await;
    let deadline = Instant::now() + WAIT;
    loop {
        let topics = w.agent_topics().await;
        if topics.contains(&format!("agent_rooms:{}", w.agent_id)) {
            assert!(!topics.iter().any(|t| t.ends_with(&w.room)), "{topics:?}");
            break;
        }
        assert!(Instant::now() < deadline, "never reconnected");
        sleep(Duration::from_millis(20)).await;
    }
    assert!(!handle.rooms().contains(&w.room));
    w.stop(handle, task).await;
}

#[tokio::test]
async fn messages_sent_while_disconnected_are_handled_once_after_reconnect() {
    let w = World::start().await;
    let (handle, task) = w.spawn_with(w.config(Duration::from_millis(600)));
    w.wait("started", |w| w.count("started") == 1).await;
    let before = w.say(&w.bob, &w.room, "before the outage").await;
    w.wait_status(&before, "processed").await;
    w.post("/_sandbox/faults", json!({"drop_sockets": true}))
        .await;
    let d1 = w.say(&w.bob, &w.room, "during one").await;
    let d2 = w.say(&w.bob, &w.room, "during two").await;
    w.wait_status(&d2, "processed").await;
    w.wait_status(&d1, "processed").await;
    let after = w.say(&w.bob, &w.room, "after").await;
    w.wait_status(&after, "processed").await;
    sleep(Duration::from_millis(300)).await;
    let msgs = w.recorder.messages();
    assert_eq!(ids(&msgs), vec![before, d1, d2, after]);
    // The outage messages came from the resync drain, not the socket.
    assert!(msgs[1].from_backlog && msgs[2].from_backlog, "{msgs:#?}");
    assert!(!msgs[3].from_backlog);
    w.stop(handle, task).await;
}

#[tokio::test]
async fn a_failed_message_does_not_hide_the_outage_backlog_behind_it() {
    let w = World::start().await;
    let (handle, task) = w.spawn_with(w.config(Duration::from_millis(600)));
    w.wait("started", |w| w.count("started") == 1).await;
    let failed = w.say(&w.bob, &w.room, "please fail").await;
    w.wait_status(&failed, "failed").await;
    // `/next` keeps serving the failed message first; the resync must look past it.
    w.post("/_sandbox/faults", json!({"drop_sockets": true}))
        .await;
    let during = w.say(&w.bob, &w.room, "during the outage").await;
    w.wait_status(&during, "processed").await;
    sleep(Duration::from_millis(300)).await;
    let msgs = w.recorder.messages();
    assert_eq!(ids(&msgs), vec![failed.clone(), during]);
    assert!(msgs[1].from_backlog, "{msgs:#?}");
    // The failed one was not run again.
    assert_eq!(
        w.delivery(&failed).await["attempts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    w.stop(handle, task).await;
}

#[tokio::test]
async fn participant_events_keep_the_room_info_current() {
    let w = World::start().await;
    let (handle, task) = w.run().await;
    let carol_id = w.carol.profile().await.unwrap().id;
    let first = w.say(&w.bob, &w.room, "who is here").await;
    w.wait_status(&first, "processed").await;
    assert!(!w.recorder.messages()[0].participants.contains(&carol_id));
    w.alice
        .add_participant(&w.room, &carol_id, None)
        .await
        .unwrap();
    w.wait("participant_added", |w| w.count("participant_added") == 1)
        .await;
    let second = w.say(&w.bob, &w.room, "and now").await;
    w.wait_status(&second, "processed").await;
    let msgs = w.recorder.messages();
    assert!(msgs[1].participants.contains(&carol_id), "{msgs:#?}");
    w.alice
        .remove_participant(&w.room, &carol_id)
        .await
        .unwrap();
    w.wait("participant_removed", |w| {
        w.count("participant_removed") == 1
    })
    .await;
    let removed = w
        .recorder
        .records()
        .into_iter()
        .find(|r| r.event == "participant_removed")
        .unwrap();
    assert!(!removed.participants.contains(&carol_id), "{removed:#?}");
    w.stop(handle, task).await;
}

#[tokio::test]
async fn agent_me_is_retried_on_server_errors() {
    let w = World::start().await;
    // More failures than the REST client retries on its own.
    w.post(
        "/_sandbox/faults",
        json!({"fail": {"method": "GET", "path": "/agent/me", "status": 503, "count": 6}}),
    )
    .await;
    let (handle, task) = w.spawn();
    w.wait("started", |w| w.count("started") == 1).await;
    w.stop(handle, task).await;
}

#[tokio::test]
async fn startup_outlasts_a_long_server_error_burst_on_agent_me() {
    // Far more failures than the REST client and any fixed number of tries
    // absorb: only an answer that cannot change (a refused key) ends start-up.
    let (w, handle, task) = started_through_an_outage_of("/agent/me").await;
    w.stop(handle, task).await;
}

/// A world whose `GET PATH` fails with 503 forty times, and the runtime
/// (with short pauses) started through it.
async fn started_through_an_outage_of(
    path: &str,
) -> (World, RuntimeHandle, JoinHandle<Result<(), RuntimeError>>) {
    let w = World::start().await;
    w.post(
        "/_sandbox/faults",
        json!({"fail": {"method": "GET", "path": path, "status": 503, "count": 40}}),
    )
    .await;
    let mut c = w.config(Duration::from_millis(50));
    c.rest.retry.base_delay = Duration::from_millis(5);
    c.tunables.startup_retry_cap = Duration::from_millis(20);
    let (handle, task) = w.spawn_with(c);
    w.wait("started", |w| w.count("started") == 1).await;
    (w, handle, task)
}

#[tokio::test]
async fn startup_outlasts_a_server_error_burst_on_the_room_list() {
    let (w, handle, task) = started_through_an_outage_of("/agent/chats").await;
    // Not only started: the rooms listed after the burst are served.
    w.say(&w.bob, &w.room, "after the outage").await;
    w.wait("message handled", |w| w.count("message_created") == 1)
        .await;
    w.stop(handle, task).await;
}

#[tokio::test]
async fn startup_ends_at_once_when_the_key_is_refused() {
    let w = World::start().await;
    w.post(
        "/_sandbox/faults",
        json!({"fail": {"method": "GET", "path": "/agent/chats", "status": 401, "count": 1}}),
    )
    .await;
    let (_handle, task) = w.spawn();
    let err = timeout(WAIT, task).await.unwrap().unwrap().unwrap_err();
    assert!(matches!(err, RuntimeError::ListChats(_)), "{err}");
}

#[tokio::test]
async fn run_until_stops_gracefully_when_the_future_completes() {
    let w = World::start().await;
    let rt = Runtime::new(w.config(Duration::from_millis(50)), w.recorder.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(rt.run_until(async move {
        let _ = rx.await;
    }));
    w.wait("started", |w| w.count("started") == 1).await;
    tx.send(()).unwrap();
    timeout(WAIT, task).await.unwrap().unwrap().unwrap();
    let deadline = Instant::now() + WAIT;
    while !w.agent_topics().await.is_empty() {
        assert!(Instant::now() < deadline, "agent still connected");
        sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn contact_requests_reach_the_handler() {
    let w = World::start().await;
    let (handle, task) = w.run().await;
    w.carol
        .send_contact_request("alice/triage-bot", Some("hi"))
        .await
        .unwrap();
    w.wait("contact_request_received", |w| {
        w.count("contact_request_received") == 1
    })
    .await;
    let rec = w
        .recorder
        .records()
        .into_iter()
        .find(|r| r.event == "contact_request_received")
        .unwrap();
    assert_eq!(rec.room, None);
    w.stop(handle, task).await;
}

#[tokio::test]
async fn shutdown_lets_the_message_in_hand_finish() {
    let w = World::start().await;
    let (handle, task) = w.run().await;
    let entered = w.recorder.slow_entered.notified();
    let id = w.say(&w.bob, &w.room, "slow one").await;
    timeout(WAIT, entered).await.unwrap();
    handle.shutdown();
    timeout(WAIT, task).await.unwrap().unwrap().unwrap();
    // The handler finished, its reply went out, and the ack landed.
    assert_eq!(w.delivery(&id).await["status"], "processed");
    let state = w.state().await;
    assert!(state["messages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["content"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("ack {id}"))));
    // The socket is gone.
    let deadline = Instant::now() + WAIT;
    while !w.agent_topics().await.is_empty() {
        assert!(Instant::now() < deadline, "agent still connected");
        sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_wrong_expected_agent_id_fails_clearly() {
    let w = World::start().await;
    let mut c = w.config(Duration::from_millis(50));
    c.expected_agent_id = Some("someone-else".into());
    let (_handle, task) = w.spawn_with(c);
    let err = timeout(WAIT, task).await.unwrap().unwrap().unwrap_err();
    assert!(matches!(err, RuntimeError::WrongAgent { .. }), "{err}");
    assert!(err.to_string().contains(&w.agent_id), "{err}");
}

#[tokio::test]
async fn being_superseded_ends_the_runtime_with_an_error() {
    let w = World::start().await;
    let (_handle, task) = w.run().await;
    let mut c = SocketConfig::new(w.sb.ws_url(), "triage-key");
    c.agent_id = Some(w.agent_id.clone());
    let (other, _events) = Socket::start(c);
    other
        .join(&format!("agent_control:{}", w.agent_id))
        .await
        .unwrap();
    let err = timeout(WAIT, task).await.unwrap().unwrap().unwrap_err();
    assert!(
        matches!(err, RuntimeError::Stopped(StopReason::Superseded)),
        "{err}"
    );
    other.shutdown().await;
}

impl World {
    /// `POST /_sandbox/control` for the bot: `mode` in the Support room (or
    /// every room with `room: null`), pushed unless `push` is false.
    async fn control(&self, mode: &str, push: bool) {
        self.post(
            "/_sandbox/control",
            json!({"agent": self.agent_id, "mode": mode, "room": self.room, "push": push}),
        )
        .await;
    }

    /// Sends `text` with the claim and then the reply (both POSTs under the
    /// room's messages) held 1.2 s each; returns once the message is claimed
    /// and its handler runs, so its reply is on its way.
    async fn in_hand_with_its_reply_held(&self, text: &str) -> String {
        self.post(
            "/_sandbox/faults",
            json!({"delay": {"method": "POST", "path": format!("/agent/chats/{}/messages", self.room), "ms": 1200, "count": 2}}),
        )
        .await;
        let id = self.say(&self.bob, &self.room, text).await;
        self.wait_status(&id, "processing").await;
        self.wait("the handler to start", |w| w.runs(&id) == 1)
            .await;
        id
    }

    /// How many replies the handler posted for message `id`.
    async fn acks(&self, id: &str) -> usize {
        let state = self.state().await;
        state["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| {
                m["content"]
                    .as_str()
                    .unwrap_or("")
                    .contains(&format!("ack {id}"))
            })
            .count()
    }

    /// How many times the handler ran for message `id`.
    fn runs(&self, id: &str) -> usize {
        self.recorder
            .messages()
            .iter()
            .filter(|r| r.message_id.as_deref() == Some(id))
            .count()
    }
}

#[tokio::test]
async fn a_message_arriving_while_stopped_waits_for_play_and_is_answered_once() {
    let w = World::start().await;
    let (handle, task) = w.run().await;
    w.control("stop", true).await;
    let id = w.say(&w.bob, &w.room, "are you there?").await;
    sleep(Duration::from_millis(600)).await;
    assert_eq!(w.runs(&id), 0, "handled while stopped");
    assert_eq!(w.delivery(&id).await["status"], "delivered");
    w.control("play", true).await;
    w.wait_status(&id, "processed").await;
    assert_eq!(w.runs(&id), 1);
    assert_eq!(w.acks(&id).await, 1);
    w.stop(handle, task).await;
}

#[tokio::test]
async fn stop_during_a_slow_action_cancels_it_and_the_message_is_processed_once_later() {
    let w = World::start().await;
    let (handle, task) = w.run().await;
    let id = w.in_hand_with_its_reply_held("take your time").await;
    // The reply is on its way (held by the delay): stop now.
    w.control("stop", true).await;
    sleep(Duration::from_millis(2000)).await;
    let d = w.delivery(&id).await;
    assert_eq!(d["status"], "processing", "left for later, not failed: {d}");
    assert_eq!(w.acks(&id).await, 0);
    w.control("play", true).await;
    let d = w.wait_status(&id, "processed").await;
    assert_eq!(w.acks(&id).await, 1, "answered exactly once");
    assert_eq!(w.runs(&id), 2, "cancelled once, then run again");
    assert_eq!(d["attempts"].as_array().unwrap().len(), 1, "{d}");
    w.stop(handle, task).await;
}

#[tokio::test]
async fn interrupt_during_a_slow_action_cancels_it_and_the_message_is_settled_unanswered() {
    let w = World::start().await;
    let (handle, task) = w.run().await;
    let id = w.in_hand_with_its_reply_held("never mind").await;
    w.control("interrupt", true).await;
    // Interrupted work is done with: marked processed, not run again, no reply
    // (the held reply is cancelled before it reaches the platform).
    w.wait_status(&id, "processed").await;
    sleep(Duration::from_millis(1500)).await;
    assert_eq!(w.acks(&id).await, 0, "the interrupted reply went out");
    assert_eq!(w.runs(&id), 1, "run again after an interrupt");
    // The room is not stopped: the next message is answered as usual.
    let next = w.say(&w.bob, &w.room, "now a real question").await;
    w.wait_status(&next, "processed").await;
    assert_eq!(w.acks(&next).await, 1);
    w.stop(handle, task).await;
}

#[tokio::test]
async fn a_missed_play_is_found_by_the_stopped_room_probe() {
    let w = World::start().await;
    let mut c = w.config(Duration::from_millis(50));
    c.tunables.stopped_probe_interval = Duration::from_millis(300);
    let (handle, task) = w.spawn_with(c);
    w.wait("started", |w| w.count("started") == 1).await;
    w.control("stop", true).await;
    let id = w.say(&w.bob, &w.room, "hello?").await;
    sleep(Duration::from_millis(600)).await;
    assert_eq!(w.runs(&id), 0, "handled while stopped");
    // The PLAY push is lost: only the probe can find out.
    let played = Instant::now();
    w.control("play", false).await;
    w.wait_status(&id, "processed").await;
    assert!(
        played.elapsed() < Duration::from_millis(2000),
        "found after {:?}",
        played.elapsed()
    );
    assert_eq!(w.runs(&id), 1);
    assert_eq!(w.acks(&id).await, 1);
    w.stop(handle, task).await;
}

#[tokio::test]
async fn a_stop_first_learned_from_a_403_leaves_the_message_for_play() {
    let w = World::start().await;
    let mut c = w.config(Duration::from_millis(50));
    c.tunables.stopped_probe_interval = Duration::from_millis(300);
    let (handle, task) = w.spawn_with(c);
    w.wait("started", |w| w.count("started") == 1).await;
    let id = w.in_hand_with_its_reply_held("take your time").await;
    // STOP while the reply is held, and its push is lost: the agent learns
    // of it only from the reply's 403 "execution is stopped".
    w.control("stop", false).await;
    sleep(Duration::from_millis(2000)).await;
    let d = w.delivery(&id).await;
    assert_eq!(d["status"], "processing", "left for PLAY, not failed: {d}");
    assert_eq!(w.acks(&id).await, 0);
    // The room is stopped for the agent: the probes (every 300 ms) find
    // nothing to run, and a new message is not worked on either.
    let next = w.say(&w.bob, &w.room, "and another thing").await;
    sleep(Duration::from_millis(900)).await;
    assert_eq!(w.runs(&id), 1, "run again while stopped");
    assert_eq!(w.runs(&next), 0, "handled while stopped");
    // The PLAY push is lost too: the stopped-room probe finds it.
    w.control("play", false).await;
    let d = w.wait_status(&id, "processed").await;
    w.wait_status(&next, "processed").await;
    assert_eq!(w.acks(&id).await, 1, "answered exactly once");
    assert_eq!(w.runs(&id), 2, "stopped once, then run again");
    assert_eq!(d["attempts"].as_array().unwrap().len(), 1, "{d}");
    assert_eq!(w.acks(&next).await, 1);
    w.stop(handle, task).await;
}
