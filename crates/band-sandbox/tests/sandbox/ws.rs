//! The sandbox's Phoenix socket endpoint, driven by a raw tokio-tungstenite
//! client over 127.0.0.1 against `ws::routes` with a small test backend.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use band_sandbox::hub::{Audience, Hub, Principal, SocketBackend};
use band_sandbox::ws;
use band_wire::frame::Frame;
use band_wire::model::EntityType;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const AGENT: &str = "agent-1";
const USER: &str = "user-1";
const WAIT: Duration = Duration::from_secs(5);

/// Keys for one agent and one user; topics containing "forbidden" are refused.
struct TestBackend {
    keys: HashMap<String, Principal>,
    hub: Hub,
}

impl SocketBackend for TestBackend {
    fn authenticate(&self, api_key: &str) -> Option<Principal> {
        self.keys.get(api_key).cloned()
    }

    fn can_join(&self, _who: &Principal, topic: &str) -> Result<Value, String> {
        if topic.contains("forbidden") {
            Err("not a participant".to_string())
        } else {
            Ok(json!({"joined": topic}))
        }
    }

    fn hub(&self) -> &Hub {
        &self.hub
    }
}

async fn start_with_idle(idle: Duration) -> (Arc<TestBackend>, SocketAddr) {
    let mut keys = HashMap::new();
    keys.insert(
        "agent-key".to_string(),
        Principal {
            id: AGENT.into(),
            kind: EntityType::Agent,
        },
    );
    keys.insert(
        "user-key".to_string(),
        Principal {
            id: USER.into(),
            kind: EntityType::User,
        },
    );
    let backend = Arc::new(TestBackend {
        keys,
        hub: Hub::default(),
    });
    let app = ws::routes_with_idle_timeout(backend.clone(), idle);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (backend, addr)
}

async fn start() -> (Arc<TestBackend>, SocketAddr) {
    start_with_idle(ws::IDLE_TIMEOUT).await
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connects with the given query string and optional `x-api-key` header.
async fn try_connect(
    addr: SocketAddr,
    query: &str,
    header_key: Option<&str>,
) -> Result<Client, tungstenite::Error> {
    let url = format!("ws://{addr}/api/v1/socket/websocket?{query}");
    let mut req = url.into_client_request().unwrap();
    if let Some(key) = header_key {
        req.headers_mut().insert("x-api-key", key.parse().unwrap());
    }
    let (ws, _) = timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("connect timed out")?;
    Ok(Client { ws })
}

/// The usual agent connection: header auth, vsn 2, agent_id.
async fn connect_agent(addr: SocketAddr) -> Client {
    try_connect(
        addr,
        &format!("vsn=2.0.0&agent_id={AGENT}"),
        Some("agent-key"),
    )
    .await
    .unwrap()
}

/// The status and parsed JSON body of a refused upgrade.
fn refusal(err: tungstenite::Error) -> (u16, Value) {
    match err {
        tungstenite::Error::Http(resp) => {
            let body = resp.body().clone().unwrap_or_default();
            let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
            (resp.status().as_u16(), json)
        }
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
}

struct Client {
    ws: Ws,
}

impl Client {
    async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    async fn send(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    /// Next text frame, decoded (fails the test after a generous wait).
    async fn recv(&mut self) -> Frame {
        loop {
            let msg = timeout(WAIT, self.ws.next())
                .await
                .expect("no frame in time")
                .expect("socket ended")
                .expect("socket error");
            match msg {
                Message::Text(t) => return Frame::decode(t.as_str()).unwrap(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Asserts nothing arrives for a short while.
    async fn recv_nothing(&mut self, ms: u64) {
        if let Ok(msg) = timeout(Duration::from_millis(ms), self.ws.next()).await {
            panic!("expected silence, got {msg:?}");
        }
    }

    /// Waits for the end of the socket; returns the close frame's code if any.
    async fn recv_end(&mut self) -> Option<u16> {
        loop {
            match timeout(WAIT, self.ws.next())
                .await
                .expect("socket not closed")
            {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code.into()),
                Some(Ok(Message::Text(t))) => panic!("unexpected frame before close: {t}"),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    async fn heartbeat(&mut self, msg_ref: &str) {
        self.send(json!([null, msg_ref, "phoenix", "heartbeat", {}]))
            .await;
    }

    /// Joins `topic` with `join_ref` (== ref, as clients do) and returns the reply.
    async fn join(&mut self, topic: &str, join_ref: &str) -> Frame {
        self.send(json!([join_ref, join_ref, topic, "phx_join", {}]))
            .await;
        let reply = self.recv().await;
        assert_eq!(reply.event, "phx_reply");
        assert_eq!(reply.topic, topic);
        reply
    }
}

fn everyone() -> Audience {
    Audience::All
}

async fn wait_until(mut cond: impl FnMut() -> bool) {
    timeout(WAIT, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("condition not reached in time");
}

#[tokio::test]
async fn auth_by_header_and_heartbeat_answered() {
    let (_backend, addr) = start().await;
    let mut c = connect_agent(addr).await;
    c.heartbeat("7").await;
    let reply = c.recv().await;
    assert_eq!(reply.join_ref, None);
    assert_eq!(reply.msg_ref.as_deref(), Some("7"));
    assert_eq!(reply.topic, "phoenix");
    assert_eq!(reply.event, "phx_reply");
    assert_eq!(reply.payload, json!({"status": "ok", "response": {}}));
}

#[tokio::test]
async fn auth_by_query_param_for_agent_and_user() {
    let (backend, addr) = start().await;
    let mut agent = try_connect(
        addr,
        &format!("api_key=agent-key&agent_id={AGENT}&vsn=2.0.0"),
        None,
    )
    .await
    .unwrap();
    agent.heartbeat("1").await;
    assert_eq!(agent.recv().await.reply_status(), Some("ok"));

    let mut user = try_connect(addr, "api_key=user-key&vsn=2.0.0", None)
        .await
        .unwrap();
    user.heartbeat("1").await;
    assert_eq!(user.recv().await.reply_status(), Some("ok"));
    let ids: Vec<String> = backend
        .hub
        .connections()
        .into_iter()
        .map(|(p, _)| p.id)
        .collect();
    assert_eq!(ids, vec![AGENT.to_string(), USER.to_string()]);
}

#[tokio::test]
async fn bad_or_missing_key_is_refused_before_upgrade() {
    let (backend, addr) = start().await;
    for (query, header) in [
        ("vsn=2.0.0", Some("wrong-key")),
        ("vsn=2.0.0&api_key=wrong-key", None),
        ("vsn=2.0.0", None),
    ] {
        let err = try_connect(addr, query, header)
            .await
            .err()
            .expect("upgrade should be refused");
        let (status, body) = refusal(err);
        assert_eq!(status, ws::AUTH_REJECT_STATUS.as_u16(), "{query}");
        assert_eq!(body["error"]["code"], "invalid_api_key");
        assert!(body["error"]["message"].is_string());
        assert!(body["error"]["request_id"].is_string());
    }
    // The body never echoes the key back.
    let err = try_connect(addr, "vsn=2.0.0", Some("secret-wrong-key"))
        .await
        .err()
        .unwrap();
    let (_, body) = refusal(err);
    assert!(!body.to_string().contains("secret-wrong-key"));
    assert!(backend.hub.connections().is_empty());
}

#[tokio::test]
async fn wrong_agent_id_and_wrong_vsn_are_refused() {
    let (_backend, addr) = start().await;
    let err = try_connect(addr, "vsn=2.0.0&agent_id=someone-else", Some("agent-key"))
        .await
        .err()
        .unwrap();
    assert_eq!(refusal(err).0, ws::AUTH_REJECT_STATUS.as_u16());
    // A user key claiming to be an agent.
    let err = try_connect(
        addr,
        &format!("vsn=2.0.0&agent_id={AGENT}"),
        Some("user-key"),
    )
    .await
    .err()
    .unwrap();
    assert_eq!(refusal(err).0, ws::AUTH_REJECT_STATUS.as_u16());
    for query in ["vsn=1.0.0", ""] {
        let err = try_connect(addr, query, Some("agent-key"))
            .await
            .err()
            .unwrap();
        assert_eq!(refusal(err).0, 403, "query {query:?}");
    }
}

#[tokio::test]
async fn heartbeats_unanswered_while_ignored() {
    let (backend, addr) = start().await;
    let mut c = connect_agent(addr).await;
    backend.hub.set_heartbeats_ignored(true);
    c.heartbeat("1").await;
    c.recv_nothing(300).await;
    backend.hub.set_heartbeats_ignored(false);
    c.heartbeat("2").await;
    let reply = c.recv().await;
    assert_eq!(reply.msg_ref.as_deref(), Some("2"));
    assert_eq!(reply.reply_status(), Some("ok"));
}

#[tokio::test]
async fn join_ok_and_refused() {
    let (backend, addr) = start().await;
    let mut c = connect_agent(addr).await;
    let ok = c.join("chat_room:r1", "3").await;
    assert_eq!(ok.join_ref.as_deref(), Some("3"));
    assert_eq!(ok.msg_ref.as_deref(), Some("3"));
    assert_eq!(ok.reply_status(), Some("ok"));
    assert_eq!(ok.reply_response(), &json!({"joined": "chat_room:r1"}));

    let refused = c.join("chat_room:forbidden", "4").await;
    assert_eq!(refused.join_ref.as_deref(), Some("4"));
    assert_eq!(refused.reply_status(), Some("error"));
    assert_eq!(
        refused.reply_response(),
        &json!({"reason": "not a participant"})
    );
    let conns = backend.hub.connections();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].1, vec!["chat_room:r1".to_string()]);
}

#[tokio::test]
async fn push_after_join_carries_join_ref_and_unjoined_topics_get_nothing() {
    let (backend, addr) = start().await;
    let mut c = connect_agent(addr).await;
    c.join("chat_room:r1", "5").await;
    backend.hub.publish(
        "chat_room:r2",
        "message_created",
        json!({"n": 0}),
        &everyone(),
    );
    backend.hub.publish(
        "chat_room:r1",
        "message_created",
        json!({"n": 1}),
        &everyone(),
    );
    let push = c.recv().await;
    assert_eq!(push.join_ref.as_deref(), Some("5"));
    assert_eq!(push.msg_ref, None);
    assert_eq!(push.topic, "chat_room:r1");
    assert_eq!(push.event, "message_created");
    assert_eq!(push.payload, json!({"n": 1}));
}

#[tokio::test]
async fn rejoin_closes_old_join_and_pushes_use_new_join_ref() {
    let (backend, addr) = start().await;
    let mut c = connect_agent(addr).await;
    c.join("chat_room:r1", "1").await;
    c.send(json!(["3", "3", "chat_room:r1", "phx_join", {}]))
        .await;
    let close = c.recv().await;
    assert_eq!(close.event, "phx_close");
    assert_eq!(close.join_ref.as_deref(), Some("1"));
    let reply = c.recv().await;
    assert_eq!(reply.event, "phx_reply");
    assert_eq!(reply.join_ref.as_deref(), Some("3"));
    assert_eq!(reply.reply_status(), Some("ok"));

    backend.hub.publish(
        "chat_room:r1",
        "message_created",
        json!({"n": 2}),
        &everyone(),
    );
    let push = c.recv().await;
    assert_eq!(push.join_ref.as_deref(), Some("3"));
    assert_eq!(push.payload, json!({"n": 2}));
    // Still one subscription, not two.
    assert_eq!(
        backend.hub.connections()[0].1,
        vec!["chat_room:r1".to_string()]
    );
}

#[tokio::test]
async fn leave_replies_then_closes_and_stops_pushes() {
    let (backend, addr) = start().await;
    let mut c = connect_agent(addr).await;
    c.join("chat_room:r1", "1").await;
    c.send(json!(["1", "2", "chat_room:r1", "phx_leave", {}]))
        .await;
    let reply = c.recv().await;
    assert_eq!(reply.event, "phx_reply");
    assert_eq!(reply.join_ref.as_deref(), Some("1"));
    assert_eq!(reply.msg_ref.as_deref(), Some("2"));
    assert_eq!(reply.reply_status(), Some("ok"));
    let close = c.recv().await;
    assert_eq!(close.event, "phx_close");
    assert_eq!(close.join_ref.as_deref(), Some("1"));
    assert_eq!(close.topic, "chat_room:r1");

    backend
        .hub
        .publish("chat_room:r1", "message_created", json!({}), &everyone());
    c.recv_nothing(200).await;
    assert!(backend.hub.connections()[0].1.is_empty());
}

#[tokio::test]
async fn unknown_events_get_error_replies() {
    let (_backend, addr) = start().await;
    let mut c = connect_agent(addr).await;
    c.join("chat_room:r1", "1").await;
    c.send(json!(["1", "2", "chat_room:r1", "typing", {}]))
        .await;
    let reply = c.recv().await;
    assert_eq!(reply.join_ref.as_deref(), Some("1"));
    assert_eq!(reply.msg_ref.as_deref(), Some("2"));
    assert_eq!(reply.reply_status(), Some("error"));
    assert_eq!(reply.reply_response(), &json!({"reason": "unknown event"}));

    c.send(json!(["9", "3", "chat_room:other", "typing", {}]))
        .await;
    let reply = c.recv().await;
    assert_eq!(reply.join_ref.as_deref(), Some("9"));
    assert_eq!(reply.msg_ref.as_deref(), Some("3"));
    assert_eq!(reply.topic, "chat_room:other");
    assert_eq!(reply.reply_status(), Some("error"));
}

#[tokio::test]
async fn newer_agent_connection_supersedes_older() {
    let (backend, addr) = start().await;
    let mut old = connect_agent(addr).await;
    let control = format!("agent_control:{AGENT}");
    old.join(&control, "1").await;

    let mut new = connect_agent(addr).await;
    let push = old.recv().await;
    assert_eq!(push.event, "supersede");
    assert_eq!(push.topic, control);
    assert_eq!(push.join_ref.as_deref(), Some("1"));
    assert_eq!(push.payload["reason"], "superseded");
    assert_eq!(push.payload["retryable"], false);
    assert!(push.payload["message"].is_string());
    assert!(push.payload["target_socket_id"].is_string());
    assert!(push.payload.get("correlation_id").unwrap().is_null());
    assert_eq!(old.recv_end().await, Some(1000));

    let reply = new.join(&control, "1").await;
    assert_eq!(reply.reply_status(), Some("ok"));
    backend.hub.publish(
        &control,
        "agent.control",
        json!({"mode": "stop"}),
        &everyone(),
    );
    assert_eq!(new.recv().await.event, "agent.control");
    wait_until(|| backend.hub.connections().len() == 1).await;
}

#[tokio::test]
async fn on_conflict_reject_refuses_a_second_connection() {
    let (backend, addr) = start().await;
    let mut first = connect_agent(addr).await;
    // A round trip proves the first connection is registered.
    first.heartbeat("1").await;
    first.recv().await;

    let err = try_connect(
        addr,
        &format!("vsn=2.0.0&agent_id={AGENT}&on_conflict=reject"),
        Some("agent-key"),
    )
    .await
    .err()
    .expect("second connection should be refused");
    let (status, body) = refusal(err);
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "connection_conflict");

    // The first connection was not disturbed.
    first.heartbeat("2").await;
    assert_eq!(first.recv().await.msg_ref.as_deref(), Some("2"));

    // Once it is gone, the same request is accepted.
    drop(first);
    wait_until(|| !backend.hub.is_connected(AGENT)).await;
    try_connect(
        addr,
        &format!("vsn=2.0.0&agent_id={AGENT}&on_conflict=reject"),
        Some("agent-key"),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn drop_all_closes_every_socket() {
    let (backend, addr) = start().await;
    let mut a = connect_agent(addr).await;
    let mut u = try_connect(addr, "vsn=2.0.0", Some("user-key"))
        .await
        .unwrap();
    for c in [&mut a, &mut u] {
        c.heartbeat("1").await;
        c.recv().await;
    }
    assert_eq!(backend.hub.connections().len(), 2);
    backend.hub.drop_all();
    // Abrupt: the stream ends without a close handshake.
    assert_eq!(a.recv_end().await, None);
    assert_eq!(u.recv_end().await, None);
    wait_until(|| backend.hub.connections().is_empty()).await;
}

#[tokio::test]
async fn malformed_frames_are_ignored_and_the_connection_keeps_working() {
    let (_backend, addr) = start().await;
    let mut c = connect_agent(addr).await;
    c.send_text("not json at all").await;
    c.send_text(r#"{"topic":"phoenix"}"#).await;
    c.send_text(r#"[null,null]"#).await;
    c.ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    c.recv_nothing(200).await;

    // Wrong shape but a readable ref and topic: an error reply to that ref.
    c.send_text(r#"["1","4","chat_room:r1","phx_join","oops"]"#)
        .await;
    let reply = c.recv().await;
    assert_eq!(reply.msg_ref.as_deref(), Some("4"));
    assert_eq!(reply.reply_status(), Some("error"));

    c.heartbeat("5").await;
    let reply = c.recv().await;
    assert_eq!(reply.msg_ref.as_deref(), Some("5"));
    assert_eq!(reply.reply_status(), Some("ok"));
    let joined = c.join("chat_room:r1", "6").await;
    assert_eq!(joined.reply_status(), Some("ok"));
}

#[tokio::test]
async fn idle_socket_is_closed_and_heartbeats_keep_it_open() {
    let (backend, addr) = start_with_idle(Duration::from_millis(400)).await;
    let mut busy = connect_agent(addr).await;
    let mut idle = try_connect(addr, "vsn=2.0.0", Some("user-key"))
        .await
        .unwrap();
    // Heartbeats every 100 ms for 800 ms, twice the idle timeout.
    for i in 0..8 {
        busy.heartbeat(&i.to_string()).await;
        assert_eq!(busy.recv().await.reply_status(), Some("ok"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(idle.recv_end().await, Some(1000));
    busy.heartbeat("last").await;
    assert_eq!(busy.recv().await.msg_ref.as_deref(), Some("last"));
    wait_until(|| backend.hub.connections().len() == 1).await;
}
