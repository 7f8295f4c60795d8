//! Our platform clients (`Socket`, `AgentApi`, `HumanApi`) against the real
//! sandbox over loopback: delivery by mention, the lifecycle, reconnects,
//! heartbeat-timeout detection, rate-limit retries and supersede.

use std::time::{Duration, Instant};

use band_client::rest::{AgentApi, HumanApi, HumanMessageQuery, RestConfig, RetryPolicy};
use band_client::socket::{Backoff, Socket, SocketConfig, SocketEvent, StopReason};
use band_sandbox::{default_seed, RunningSandbox};
use band_wire::events::Event;
use band_wire::model::{ChatMessage, Mention};
use serde_json::{json, Value};
use tokio::sync::mpsc::Receiver;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

/// A sandbox with the default seed, the triage bot's identity and the Support room.
struct World {
    sb: RunningSandbox,
    agent: AgentApi,
    agent_id: String,
    bob: HumanApi,
    room: String,
}

impl World {
    async fn start() -> World {
        let sb = RunningSandbox::start("127.0.0.1:0".parse().unwrap(), default_seed())
            .await
            .unwrap();
        let agent = AgentApi::new(RestConfig::new(sb.rest_url(), "triage-key")).unwrap();
        let agent_id = agent.me().await.unwrap().id;
        let bob = HumanApi::new(RestConfig::new(sb.rest_url(), "bob-key")).unwrap();
        let room = crate::fixtures::support_room(&bob).await;
        World {
            sb,
            agent,
            agent_id,
            bob,
            room,
        }
    }

    /// Socket config for the agent with test-sized timings.
    fn socket_config(&self, key: &str) -> SocketConfig {
        let mut c = SocketConfig::new(self.sb.ws_url(), key);
        c.agent_id = Some(self.agent_id.clone());
        c.heartbeat_interval = Duration::from_millis(100);
        c.heartbeat_timeout = Duration::from_millis(300);
        c.join_timeout = Duration::from_secs(2);
        c.reconnect = Backoff::fixed(Duration::from_millis(50), None);
        c.rejoin = Backoff::fixed(Duration::from_millis(50), Some(5));
        c
    }

    fn topics(&self) -> Vec<String> {
        vec![
            format!("agent_control:{}", self.agent_id),
            format!("agent_rooms:{}", self.agent_id),
            format!("chat_room:{}", self.room),
            format!("room_participants:{}", self.room),
        ]
    }

    /// Connects the agent and joins its four topics.
    async fn connect(&self) -> (Socket, Receiver<SocketEvent>) {
        let (socket, events) = Socket::start(self.socket_config("triage-key"));
        for t in self.topics() {
            socket
                .join(&t)
                .await
                .unwrap_or_else(|e| panic!("join {t}: {e}"));
        }
        (socket, events)
    }

    async fn bob_says(&self, text: &str, mention_agent: bool) -> String {
        let mentions = if mention_agent {
            vec![Mention {
                id: Some(self.agent_id.clone()),
                ..Mention::default()
            }]
        } else {
            // alice owns the room; a message must mention someone to be valid.
            vec![Mention {
                handle: Some("alice".into()),
                ..Mention::default()
            }]
        };
        self.bob
            .send_message(&self.room, text, &mentions)
            .await
            .unwrap()
            .id
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        reqwest::Client::new()
            .post(format!("{}{path}", self.sb.rest_url()))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        reqwest::get(format!("{}{path}", self.sb.rest_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// Waits for the first event `pick` accepts, failing on timeout.
async fn wait_for<T>(
    events: &mut Receiver<SocketEvent>,
    what: &str,
    mut pick: impl FnMut(&SocketEvent) -> Option<T>,
) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, events.recv()).await {
            Ok(Some(e)) => {
                if let Some(t) = pick(&e) {
                    return t;
                }
            }
            Ok(None) => panic!("event stream ended while waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

fn message_created(e: &SocketEvent) -> Option<ChatMessage> {
    match e {
        SocketEvent::Event {
            event: Event::MessageCreated(m),
            ..
        } => Some(m.clone()),
        _ => None,
    }
}

#[tokio::test]
async fn mentioned_message_arrives_typed_and_unmentioned_does_not() {
    let w = World::start().await;
    let (socket, mut events) = w.connect().await;
    w.bob_says("not for the bot", false).await;
    let id = w.bob_says("hello bot", true).await;
    let m = wait_for(&mut events, "message_created", message_created).await;
    // The unmentioned message was posted first; the first push must be the mentioned one.
    assert_eq!(m.id, id);
    assert!(
        m.content.starts_with(&format!("@[[{}]]", w.agent_id)),
        "{}",
        m.content
    );
    let mentions = &m.metadata.as_ref().unwrap()["mentions"];
    assert_eq!(mentions[0]["id"], w.agent_id.as_str());
    assert_eq!(m.sender_type, "User");
    socket.shutdown().await;
}

#[tokio::test]
async fn lifecycle_round_trip() {
    let w = World::start().await;
    let id = w.bob_says("please help", true).await;
    let next = w
        .agent
        .next_message(&w.room)
        .await
        .unwrap()
        .expect("a message");
    assert_eq!(next.id, id);
    let st = w
        .agent
        .mark_processing(&w.room, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((st.status.as_str(), st.attempt_number), ("processing", 1));
    let bob_id = next.sender_id.clone();
    let reply = w
        .agent
        .send_message(
            &w.room,
            "on it",
            &[Mention {
                id: Some(bob_id),
                ..Mention::default()
            }],
        )
        .await
        .unwrap();
    let done = w.agent.mark_processed(&w.room, &id).await.unwrap();
    assert_eq!(done.status, "processed");
    assert!(w.agent.next_message(&w.room).await.unwrap().is_none());

    let seen = w
        .bob
        .list_messages(&w.room, &HumanMessageQuery::default())
        .await
        .unwrap()
        .items;
    assert!(seen
        .iter()
        .any(|m| m.id == reply.id && m.content.contains("on it")));
    let state = w.get("/_sandbox/state").await;
    let msg = state["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(msg["delivery"][&w.agent_id]["status"], "processed");
    assert_eq!(
        msg["delivery"][&w.agent_id]["attempts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn reconnects_and_rejoins_after_dropped_sockets() {
    let w = World::start().await;
    let (socket, mut events) = w.connect().await;
    w.post("/_sandbox/faults", json!({"drop_sockets": true}))
        .await;
    wait_for(&mut events, "Disconnected", |e| {
        matches!(e, SocketEvent::Disconnected { .. }).then_some(())
    })
    .await;
    wait_for(&mut events, "Connected{reconnect}", |e| {
        matches!(e, SocketEvent::Connected { reconnect: true }).then_some(())
    })
    .await;
    let mut rejoined = wait_for(&mut events, "Rejoined", |e| match e {
        SocketEvent::Rejoined { topics } => Some(topics.clone()),
        _ => None,
    })
    .await;
    rejoined.sort();
    let mut want = w.topics();
    want.sort();
    assert_eq!(rejoined, want);
    let id = w.bob_says("after the outage", true).await;
    let m = wait_for(&mut events, "message after reconnect", message_created).await;
    assert_eq!(m.id, id);
    socket.shutdown().await;
}

#[tokio::test]
async fn detects_unanswered_heartbeats_and_recovers() {
    let w = World::start().await;
    let (socket, mut events) = w.connect().await;
    w.post("/_sandbox/faults", json!({"heartbeats": "ignore"}))
        .await;
    wait_for(&mut events, "Disconnected after heartbeat timeout", |e| {
        matches!(e, SocketEvent::Disconnected { .. }).then_some(())
    })
    .await;
    assert!(socket.stats().heartbeat_timeouts >= 1);
    w.post("/_sandbox/faults", json!({"heartbeats": "answer"}))
        .await;
    wait_for(&mut events, "Rejoined", |e| {
        matches!(e, SocketEvent::Rejoined { .. }).then_some(())
    })
    .await;
    let id = w.bob_says("still there?", true).await;
    let m = wait_for(&mut events, "message after recovery", message_created).await;
    assert_eq!(m.id, id);
    socket.shutdown().await;
}

#[tokio::test]
async fn rate_limited_post_is_retried_after_retry_after() {
    let w = World::start().await;
    let fault = json!({"fail": {"method": "POST", "path": "/messages", "status": 429, "count": 1, "retry_after": 1}});
    w.post("/_sandbox/faults", fault).await;
    let agent = w.agent.with_retry(RetryPolicy::default());
    let started = Instant::now();
    let sent = agent
        .send_message(
            &w.room,
            "after a pause",
            &[Mention {
                handle: Some("bob".into()),
                ..Mention::default()
            }],
        )
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    let faults = w.get("/_sandbox/faults").await;
    assert_eq!(faults["fired"].as_array().unwrap().len(), 1, "{faults}");
    let state = w.get("/_sandbox/state").await;
    let copies = state["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            m["content"]
                .as_str()
                .unwrap_or("")
                .contains("after a pause")
        })
        .count();
    assert_eq!(copies, 1);
    assert!(!sent.id.is_empty());
}

#[tokio::test]
async fn a_second_connection_supersedes_the_first() {
    let w = World::start().await;
    let (first, mut first_events) = w.connect().await;
    let (second, mut second_events) = w.connect().await;
    wait_for(&mut first_events, "Superseded", |e| {
        matches!(e, SocketEvent::Superseded(_)).then_some(())
    })
    .await;
    let reason = wait_for(&mut first_events, "Stopped", |e| match e {
        SocketEvent::Stopped { reason } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert_eq!(reason, StopReason::Superseded);
    let id = w.bob_says("to the new one", true).await;
    let m = wait_for(
        &mut second_events,
        "message on the second socket",
        message_created,
    )
    .await;
    assert_eq!(m.id, id);
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test]
async fn a_bad_key_stops_the_client() {
    let w = World::start().await;
    let (_socket, mut events) = Socket::start(w.socket_config("not-a-key"));
    let reason = wait_for(&mut events, "Stopped", |e| match e {
        SocketEvent::Stopped { reason } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(
        matches!(reason, StopReason::AuthFailed { .. }),
        "{reason:?}"
    );
}

#[tokio::test]
async fn rooms_added_and_removed_live() {
    let w = World::start().await;
    let (socket, mut events) = w.connect().await;
    // alice owns the agent, so she may add it to a room of hers.
    let alice = HumanApi::new(RestConfig::new(w.sb.rest_url(), "alice-key")).unwrap();
    let room = alice.create_chat(Some("Side room")).await.unwrap();
    alice
        .add_participant(&room.id, &w.agent_id, Some("member"))
        .await
        .unwrap();
    let added = wait_for(&mut events, "room_added", |e| match e {
        SocketEvent::Event {
            event: Event::RoomAdded(r),
            ..
        } => Some(r.id.clone()),
        _ => None,
    })
    .await;
    assert_eq!(added, room.id);
    socket
        .join(&format!("chat_room:{}", room.id))
        .await
        .unwrap();
    let mention = Mention {
        id: Some(w.agent_id.clone()),
        ..Mention::default()
    };
    let id = alice
        .send_message(&room.id, "in the side room", &[mention])
        .await
        .unwrap()
        .id;
    let m = wait_for(&mut events, "message in the new room", message_created).await;
    assert_eq!(
        (m.id.as_str(), m.chat_room_id.as_deref()),
        (id.as_str(), Some(room.id.as_str()))
    );
    alice
        .remove_participant(&room.id, &w.agent_id)
        .await
        .unwrap();
    let removed = wait_for(&mut events, "room_removed", |e| match e {
        SocketEvent::Event {
            event: Event::RoomRemoved(r),
            ..
        } => Some(r.id.clone()),
        _ => None,
    })
    .await;
    assert_eq!(removed, room.id);
    socket.shutdown().await;
}

#[tokio::test]
async fn contact_request_round_trip() {
    let w = World::start().await;
    let (socket, mut events) = w.connect().await;
    socket
        .join(&format!("agent_contacts:{}", w.agent_id))
        .await
        .unwrap();
    let carol = HumanApi::new(RestConfig::new(w.sb.rest_url(), "carol-key")).unwrap();
    carol
        .send_contact_request("alice/triage-bot", Some("hi from carol"))
        .await
        .unwrap();
    let request = wait_for(&mut events, "contact_request_received", |e| match e {
        SocketEvent::Event {
            event: Event::ContactRequestReceived(r),
            ..
        } => Some(r.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        request
            .from_handle
            .as_deref()
            .map(|h| h.trim_start_matches('@')),
        Some("carol")
    );
    assert_eq!(request.status, "pending");
    w.agent
        .respond_contact_request(
            band_client::rest::ContactAction::Approve,
            None,
            Some(&request.id),
        )
        .await
        .unwrap();
    wait_for(&mut events, "contact_added", |e| match e {
        SocketEvent::Event {
            event: Event::ContactAdded(c),
            ..
        } => Some(c.clone()),
        _ => None,
    })
    .await;
    let contacts = carol.contacts(None, None).await.unwrap();
    let text = serde_json::to_string(&contacts.items).unwrap();
    assert!(text.contains(&w.agent_id), "{text}");
    socket.shutdown().await;
}

/// The next `contact_request_updated` on `events`, as (id, status).
async fn request_updated(events: &mut Receiver<SocketEvent>) -> (String, String) {
    wait_for(events, "contact_request_updated", |e| match e {
        SocketEvent::Event {
            event: Event::ContactRequestUpdated(u),
            ..
        } => Some((u.id.clone(), u.status.clone())),
        _ => None,
    })
    .await
}

/// Over a real socket, the agent that sent a request hears
/// `contact_request_updated` when it is rejected and when it expires (the
/// seed sets a short `contact_request_expiry`); an expired one cannot be approved.
#[tokio::test]
async fn requester_hears_rejection_and_expiry_on_its_socket() {
    let text = include_str!("../../../../examples/sandbox-seed.yaml");
    let seed =
        band_sandbox::parse_seed(&format!("{text}\ncontact_request_expiry: 1s\n"), "seed").unwrap();
    let sb = RunningSandbox::start("127.0.0.1:0".parse().unwrap(), seed)
        .await
        .unwrap();
    let agent = AgentApi::new(RestConfig::new(sb.rest_url(), "triage-key")).unwrap();
    let agent_id = agent.me().await.unwrap().id;
    let mut config = SocketConfig::new(sb.ws_url(), "triage-key");
    config.agent_id = Some(agent_id.clone());
    let (socket, mut events) = Socket::start(config);
    socket
        .join(&format!("agent_contacts:{agent_id}"))
        .await
        .unwrap();
    let carol = HumanApi::new(RestConfig::new(sb.rest_url(), "carol-key"))
        .unwrap()
        .with_retry(RetryPolicy::none());

    let sent = agent.add_contact("carol", None).await.unwrap().unwrap();
    carol.reject_contact_request(&sent.id).await.unwrap();
    assert_eq!(
        request_updated(&mut events).await,
        (sent.id.clone(), "rejected".to_string())
    );

    let sent = agent.add_contact("carol", None).await.unwrap().unwrap();
    assert_eq!(sent.status, "pending");
    assert_eq!(
        request_updated(&mut events).await,
        (sent.id.clone(), "expired".to_string())
    );
    let err = carol.approve_contact_request(&sent.id).await.unwrap_err();
    assert_eq!(err.status(), Some(409), "{err}");
    socket.shutdown().await;
}
