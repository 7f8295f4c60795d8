//! The Phoenix Channels client against a scriptable fake server on 127.0.0.1.

use std::time::Duration;

use crate::fake_phoenix::{FakePhoenix, JoinPolicy, JoinRef};
use band_client::socket::{
    Backoff, Socket, SocketConfig, SocketError, SocketEvent, Status, StopReason,
};
use band_wire::events::Event;
use serde_json::{json, Value};
use tokio::sync::mpsc::Receiver;

const KEY: &str = "sk-test-secret-123";
const ROOM: &str = "chat_room:r1";

/// Short intervals so the suite runs in seconds.
fn config(url: &str) -> SocketConfig {
    let mut c = SocketConfig::new(url, KEY);
    c.agent_id = Some("a1".into());
    c.heartbeat_interval = Duration::from_millis(50);
    c.heartbeat_timeout = Duration::from_millis(100);
    c.join_timeout = Duration::from_millis(500);
    c.push_timeout = Duration::from_millis(500);
    c.connect_timeout = Duration::from_secs(1);
    c.reconnect = Backoff::fixed(Duration::from_millis(20), None);
    c.rejoin = Backoff::fixed(Duration::from_millis(30), Some(3));
    c.restart_delay = Duration::from_millis(20);
    c
}

/// Waits (bounded) for the first event matching `want`, skipping others.
async fn expect(
    rx: &mut Receiver<SocketEvent>,
    what: &str,
    want: impl Fn(&SocketEvent) -> bool,
) -> SocketEvent {
    let wait = async {
        while let Some(ev) = rx.recv().await {
            if want(&ev) {
                return Some(ev);
            }
        }
        None
    };
    match tokio::time::timeout(Duration::from_secs(5), wait).await {
        Ok(Some(ev)) => ev,
        Ok(None) => panic!("event channel closed before {what}"),
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Waits (bounded) for `Stopped` and returns its reason.
async fn expect_stopped(rx: &mut Receiver<SocketEvent>) -> StopReason {
    match expect(rx, "Stopped", |e| matches!(e, SocketEvent::Stopped { .. })).await {
        SocketEvent::Stopped { reason } => reason,
        ev => unreachable!("{ev:?}"),
    }
}

/// Waits (bounded) for a reconnect's `Connected { reconnect: true }`.
async fn expect_reconnect(rx: &mut Receiver<SocketEvent>, what: &str) {
    expect(rx, what, |e| {
        matches!(e, SocketEvent::Connected { reconnect: true })
    })
    .await;
}

/// Asserts no event matching `bad` arrives within `window`.
async fn expect_none(
    rx: &mut Receiver<SocketEvent>,
    window: Duration,
    bad: impl Fn(&SocketEvent) -> bool,
) {
    let _ = tokio::time::timeout(window, async {
        while let Some(ev) = rx.recv().await {
            assert!(!bad(&ev), "unexpected event {ev:?}");
        }
    })
    .await;
}

fn message(id: &str) -> Value {
    json!({
        "id": id, "content": "hi", "message_type": "text",
        "sender_id": "u1", "sender_type": "User", "chat_room_id": "r1",
        "inserted_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"
    })
}

fn message_id(ev: &SocketEvent) -> Option<String> {
    match ev {
        SocketEvent::Event {
            event: Event::MessageCreated(m),
            ..
        } => Some(m.id.clone()),
        _ => None,
    }
}

async fn connected(server: &FakePhoenix, cfg: SocketConfig) -> (Socket, Receiver<SocketEvent>) {
    let (socket, mut rx) = Socket::start(cfg);
    expect(&mut rx, "Connected", |e| {
        matches!(e, SocketEvent::Connected { reconnect: false })
    })
    .await;
    server
        .wait_until("connection registered", |s| s.accepted() == 1)
        .await;
    (socket, rx)
}

#[tokio::test]
async fn connect_sends_key_header_and_query() {
    let server = FakePhoenix::start().await;
    let mut cfg = config(&server.url);
    cfg.reject_on_conflict = true;
    let (socket, mut rx) = connected(&server, cfg).await;
    {
        let s = server.with();
        let up = &s.upgrades[0];
        assert_eq!(up.headers.get("x-api-key").map(String::as_str), Some(KEY));
        assert_eq!(up.query.get("vsn").map(String::as_str), Some("2.0.0"));
        assert_eq!(up.query.get("agent_id").map(String::as_str), Some("a1"));
        assert_eq!(
            up.query.get("on_conflict").map(String::as_str),
            Some("reject")
        );
        assert!(
            up.uri.starts_with("/api/v1/socket/websocket?"),
            "{}",
            up.uri
        );
        assert!(!up.uri.contains(KEY), "key leaked into the URL");
    }
    assert_eq!(*socket.status().borrow(), Status::Connected);
    assert!(!format!("{socket:?}").contains(KEY));

    // A reconnect drops on_conflict but keeps the key and agent id.
    server.drop_conn(0);
    expect_reconnect(&mut rx, "reconnect").await;
    let s = server.with();
    let up = &s.upgrades[1];
    assert_eq!(up.headers.get("x-api-key").map(String::as_str), Some(KEY));
    assert_eq!(up.query.get("agent_id").map(String::as_str), Some("a1"));
    assert!(!up.query.contains_key("on_conflict"), "{}", up.uri);
}

#[tokio::test]
async fn join_push_and_receive_typed_event() {
    let server = FakePhoenix::start().await;
    let (socket, mut rx) = connected(&server, config(&server.url)).await;

    let resp = socket.join(ROOM).await.unwrap();
    assert_eq!(resp, json!({"joined": ROOM}));
    let jr = server.join_ref(0, ROOM).unwrap();
    {
        let joins = server.with().joins_of(ROOM);
        assert_eq!(joins.len(), 1);
        assert_eq!(
            joins[0].1.msg_ref, joins[0].1.join_ref,
            "join ref == join_ref"
        );
        assert_eq!(joins[0].1.payload, json!({}));
    }

    server.push(0, ROOM, "message_created", message("m1"), JoinRef::Current);
    let ev = expect(&mut rx, "message", |e| message_id(e).is_some()).await;
    assert_eq!(message_id(&ev).as_deref(), Some("m1"));
    let SocketEvent::Event { topic, .. } = ev else {
        unreachable!()
    };
    assert_eq!(topic, ROOM);

    // Pushes carry the topic's join_ref and return the reply's response.
    let echo = socket.push(ROOM, "typing", json!({"x": 1})).await.unwrap();
    assert_eq!(echo, json!({"echo": {"x": 1}}));
    let typing = server.with().frames_named("typing");
    assert_eq!(typing[0].1.join_ref.as_deref(), Some(jr.as_str()));
    assert_ne!(
        typing[0].1.msg_ref.as_deref(),
        Some(jr.as_str()),
        "each push gets a new ref"
    );

    let err = socket.push(ROOM, "fail", json!({})).await.unwrap_err();
    assert!(
        matches!(err, SocketError::Reply { ref status, .. } if status == "error"),
        "{err:?}"
    );
    let err = socket
        .push("chat_room:other", "typing", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err, SocketError::NotJoined("chat_room:other".into()));
}

#[tokio::test]
async fn stale_join_ref_dropped_null_accepted() {
    let server = FakePhoenix::start().await;
    let (socket, mut rx) = connected(&server, config(&server.url)).await;
    socket.join(ROOM).await.unwrap();

    server.push(0, ROOM, "message_created", message("stale"), JoinRef::Stale);
    server.push(0, ROOM, "message_created", message("null"), JoinRef::Null);
    server.push(
        0,
        ROOM,
        "message_created",
        message("current"),
        JoinRef::Current,
    );

    let first = expect(&mut rx, "first message", |e| message_id(e).is_some()).await;
    let second = expect(&mut rx, "second message", |e| message_id(e).is_some()).await;
    assert_eq!(message_id(&first).as_deref(), Some("null"));
    assert_eq!(message_id(&second).as_deref(), Some("current"));
    assert_eq!(socket.stats().stale_frames, 1);
}

#[tokio::test]
async fn heartbeat_timeout_reconnects_and_rejoins_with_new_join_refs() {
    let server = FakePhoenix::start().await;
    server.with().silent_heartbeats_below = 1; // the first connection goes quiet
    let (socket, mut rx) = connected(&server, config(&server.url)).await;
    socket.join(ROOM).await.unwrap();
    socket.join("agent_rooms:a1").await.unwrap();

    let ev = expect(&mut rx, "Disconnected", |e| {
        matches!(e, SocketEvent::Disconnected { .. })
    })
    .await;
    let SocketEvent::Disconnected { reason } = ev else {
        unreachable!()
    };
    assert!(reason.contains("heartbeat"), "{reason}");
    expect_reconnect(&mut rx, "reconnect").await;
    let ev = expect(&mut rx, "Rejoined", |e| {
        matches!(e, SocketEvent::Rejoined { .. })
    })
    .await;
    let SocketEvent::Rejoined { mut topics } = ev else {
        unreachable!()
    };
    topics.sort();
    assert_eq!(topics, vec!["agent_rooms:a1".to_string(), ROOM.to_string()]);

    {
        let s = server.with();
        // The heartbeat went out on "phoenix" with a null join_ref.
        let hb = &s.frames_named("heartbeat")[0].1;
        assert_eq!((hb.topic.as_str(), hb.join_ref.as_ref()), ("phoenix", None));
        for topic in [ROOM, "agent_rooms:a1"] {
            let joins = s.joins_of(topic);
            let old: Vec<_> = joins.iter().filter(|(c, _)| *c == 0).collect();
            let new: Vec<_> = joins.iter().filter(|(c, _)| *c == 1).collect();
            assert_eq!((old.len(), new.len()), (1, 1), "{topic}");
            assert_ne!(
                old[0].1.join_ref, new[0].1.join_ref,
                "{topic} needs a new join_ref"
            );
        }
        // On the new connection the joins are the first frames sent.
        let first: Vec<&str> = s
            .frames
            .iter()
            .filter(|(c, _)| *c == 1)
            .take(2)
            .map(|(_, f)| f.event.as_str())
            .collect();
        assert_eq!(first, vec!["phx_join", "phx_join"]);
    }
    let stats = socket.stats();
    assert!(stats.heartbeat_timeouts >= 1);
    assert_eq!(stats.reconnects, 1);

    // The new connection answers heartbeats: no spurious reconnect from a stale ref.
    server
        .wait_until("heartbeats answered on the new connection", |s| {
            s.frames_named("heartbeat")
                .iter()
                .filter(|(c, _)| *c == 1)
                .count()
                >= 4
        })
        .await;
    assert_eq!(server.with().upgrades.len(), 2);
    assert_eq!(*socket.status().borrow(), Status::Connected);

    // Events flow with the new join_ref.
    server.push(
        1,
        ROOM,
        "message_created",
        message("after"),
        JoinRef::Current,
    );
    let ev = expect(&mut rx, "message after reconnect", |e| {
        message_id(e).is_some()
    })
    .await;
    assert_eq!(message_id(&ev).as_deref(), Some("after"));
}

#[tokio::test]
async fn dropped_tcp_fails_pending_push_and_reconnects() {
    let server = FakePhoenix::start().await;
    let (socket, mut rx) = connected(&server, config(&server.url)).await;
    socket.join(ROOM).await.unwrap();

    let s2 = socket.clone();
    let pending = tokio::spawn(async move { s2.push(ROOM, "noreply", json!({})).await });
    server
        .wait_until("push arrived", |s| !s.frames_named("noreply").is_empty())
        .await;
    server.drop_conn(0);

    let result = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result, Err(SocketError::Disconnected));
    expect(&mut rx, "Disconnected", |e| {
        matches!(e, SocketEvent::Disconnected { .. })
    })
    .await;
    expect_reconnect(&mut rx, "reconnect").await;
    let ev = expect(&mut rx, "Rejoined", |e| {
        matches!(e, SocketEvent::Rejoined { .. })
    })
    .await;
    assert!(matches!(ev, SocketEvent::Rejoined { topics } if topics == vec![ROOM.to_string()]));
    assert_eq!(
        socket.push(ROOM, "typing", json!({})).await.unwrap(),
        json!({"echo": {}})
    );
}

#[tokio::test]
async fn phx_error_rejoins_the_topic() {
    let server = FakePhoenix::start().await;
    let (socket, mut rx) = connected(&server, config(&server.url)).await;
    socket.join(ROOM).await.unwrap();
    let old = server.join_ref(0, ROOM);

    server.phx_error(0, ROOM);
    let ev = expect(&mut rx, "Rejoined", |e| {
        matches!(e, SocketEvent::Rejoined { .. })
    })
    .await;
    assert!(matches!(ev, SocketEvent::Rejoined { topics } if topics == vec![ROOM.to_string()]));
    let joins = server.with().joins_of(ROOM);
    assert_eq!(joins.len(), 2);
    assert!(joins.iter().all(|(c, _)| *c == 0), "same connection");
    assert_ne!(server.join_ref(0, ROOM), old);
    assert_eq!(server.with().upgrades.len(), 1);

    // Frames for the crashed join are now stale; the new join's are delivered.
    server.send_frame(
        0,
        band_wire::frame::Frame::new(old, None, ROOM, "message_created", message("old")),
    );
    server.push(0, ROOM, "message_created", message("new"), JoinRef::Current);
    let ev = expect(&mut rx, "message", |e| message_id(e).is_some()).await;
    assert_eq!(message_id(&ev).as_deref(), Some("new"));
}

#[tokio::test]
async fn phx_close_closes_without_rejoin() {
    let server = FakePhoenix::start().await;
    let (socket, mut rx) = connected(&server, config(&server.url)).await;
    socket.join(ROOM).await.unwrap();

    server.phx_close(0, ROOM);
    let ev = expect(&mut rx, "ChannelClosed", |e| {
        matches!(e, SocketEvent::ChannelClosed { .. })
    })
    .await;
    assert!(matches!(ev, SocketEvent::ChannelClosed { topic } if topic == ROOM));
    expect_none(&mut rx, Duration::from_millis(200), |e| {
        matches!(e, SocketEvent::Rejoined { .. })
    })
    .await;
    assert_eq!(server.with().joins_of(ROOM).len(), 1);
    assert_eq!(
        socket.push(ROOM, "typing", json!({})).await,
        Err(SocketError::NotJoined(ROOM.into()))
    );

    // Nor is it rejoined after a reconnect.
    server.drop_conn(0);
    expect(&mut rx, "Rejoined", |e| {
        matches!(e, SocketEvent::Rejoined { .. })
    })
    .await;
    assert_eq!(server.with().joins_of(ROOM).len(), 1);
}

#[tokio::test]
async fn leave_unregisters_the_topic() {
    let server = FakePhoenix::start().await;
    let (socket, mut rx) = connected(&server, config(&server.url)).await;
    socket.join(ROOM).await.unwrap();
    let jr = server.join_ref(0, ROOM);

    socket.leave(ROOM).await.unwrap();
    let leaves = server.with().frames_named("phx_leave");
    assert_eq!(leaves.len(), 1);
    assert_eq!(leaves[0].1.join_ref, jr);
    // The server's phx_close after a leave is not reported as a surprise close.
    expect_none(&mut rx, Duration::from_millis(100), |e| {
        matches!(e, SocketEvent::ChannelClosed { .. })
    })
    .await;

    server.drop_conn(0);
    let ev = expect(&mut rx, "Rejoined", |e| {
        matches!(e, SocketEvent::Rejoined { .. })
    })
    .await;
    assert!(matches!(ev, SocketEvent::Rejoined { topics } if topics.is_empty()));
    assert_eq!(server.with().joins_of(ROOM).len(), 1);
}

#[tokio::test]
async fn refused_join_is_reported_retried_then_abandoned() {
    let server = FakePhoenix::start().await;
    server.set_join(ROOM, JoinPolicy::Refuse("not a participant".into()));
    let (socket, mut rx) = connected(&server, config(&server.url)).await;

    let err = socket.join(ROOM).await.unwrap_err();
    assert_eq!(
        err,
        SocketError::Refused {
            topic: ROOM.into(),
            reason: "not a participant".into()
        }
    );
    let ev = expect(&mut rx, "JoinRefused", |e| {
        matches!(e, SocketEvent::JoinRefused { .. })
    })
    .await;
    assert!(
        matches!(ev, SocketEvent::JoinRefused { topic, reason } if topic == ROOM && reason == "not a participant")
    );
    let ev = expect(&mut rx, "JoinGaveUp", |e| {
        matches!(e, SocketEvent::JoinGaveUp { .. })
    })
    .await;
    assert!(matches!(ev, SocketEvent::JoinGaveUp { topic, .. } if topic == ROOM));
    // rejoin allows 3 refusals in a row: the first join and two retries.
    assert_eq!(server.with().joins_of(ROOM).len(), 3);
    expect_none(&mut rx, Duration::from_millis(150), |e| {
        matches!(e, SocketEvent::JoinRefused { .. })
    })
    .await;
    assert_eq!(server.with().joins_of(ROOM).len(), 3);

    // A refusal then a success: the retry succeeds and is reported as Rejoined.
    let other = "room_participants:r2";
    server.set_join(other, JoinPolicy::Refuse("busy".into()));
    assert!(socket.join(other).await.is_err());
    server.set_join(other, JoinPolicy::Accept);
    let ev = expect(&mut rx, "Rejoined", |e| {
        matches!(e, SocketEvent::Rejoined { .. })
    })
    .await;
    assert!(matches!(ev, SocketEvent::Rejoined { topics } if topics == vec![other.to_string()]));
}

#[tokio::test]
async fn join_timeout_is_retried() {
    let server = FakePhoenix::start().await;
    server.set_join(ROOM, JoinPolicy::Ignore);
    let mut cfg = config(&server.url);
    cfg.join_timeout = Duration::from_millis(80);
    let (socket, mut rx) = connected(&server, cfg).await;

    // The handle waits connect_timeout + join_timeout; the task times the join out at 80 ms.
    assert_eq!(socket.join(ROOM).await, Err(SocketError::Timeout));
    server.set_join(ROOM, JoinPolicy::Accept);
    let ev = expect(&mut rx, "Rejoined", |e| {
        matches!(e, SocketEvent::Rejoined { .. })
    })
    .await;
    assert!(matches!(ev, SocketEvent::Rejoined { topics } if topics == vec![ROOM.to_string()]));
    assert!(server.with().joins_of(ROOM).len() >= 2);
}

#[tokio::test]
async fn supersede_stops_without_reconnect() {
    let server = FakePhoenix::start().await;
    let (socket, mut rx) = connected(&server, config(&server.url)).await;
    let control = "agent_control:a1";
    socket.join(control).await.unwrap();

    let payload =
        json!({"reason": "duplicate_connection", "message": "replaced", "correlation_id": null});
    server.push(0, control, "supersede", payload, JoinRef::Current);
    server.close(0, 1000, "superseded");

    let ev = expect(&mut rx, "Superseded", |e| {
        matches!(e, SocketEvent::Superseded(_))
    })
    .await;
    assert!(
        matches!(ev, SocketEvent::Superseded(s) if s.reason == "duplicate_connection" && !s.retryable)
    );
    let reason = expect_stopped(&mut rx).await;
    assert!(matches!(reason, StopReason::Superseded), "{reason:?}");
    assert_eq!(
        *socket.status().borrow(),
        Status::Stopped(StopReason::Superseded)
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        server.with().upgrades.len(),
        1,
        "no reconnect after supersede"
    );
    assert_eq!(socket.join(ROOM).await, Err(SocketError::Stopped));
}

#[tokio::test]
async fn forbidden_upgrade_stops_with_auth_failed() {
    let server = FakePhoenix::start().await;
    let body = r#"{"error":{"code":"forbidden","message":"bad key","request_id":"r1"}}"#;
    server.reject_next(403, body, None);
    let (socket, mut rx) = Socket::start(config(&server.url));

    let reason = expect_stopped(&mut rx).await;
    let StopReason::AuthFailed { status, body: got } = reason else {
        panic!("expected AuthFailed, got {reason:?}");
    };
    assert_eq!(status, 403);
    assert_eq!(got, body);
    assert!(!format!("{:?}", socket.status().borrow()).contains(KEY));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.with().upgrades.len(), 1, "no retry after 403");
}

#[tokio::test]
async fn conflict_upgrade_stops() {
    let server = FakePhoenix::start().await;
    server.reject_next(409, r#"{"error":{"code":"connection_conflict"}}"#, None);
    let (_socket, mut rx) = Socket::start(config(&server.url));
    let reason = expect_stopped(&mut rx).await;
    assert!(
        matches!(reason, StopReason::Conflict { status: 409, .. }),
        "{reason:?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.with().upgrades.len(), 1);
}

#[tokio::test]
async fn rate_limited_upgrade_honours_retry_after() {
    let server = FakePhoenix::start().await;
    server.reject_next(429, r#"{"error":{"code":"rate_limited"}}"#, Some("1"));
    server.reject_next(
        503,
        r#"{"error":{"code":"unavailable","retry_after":1}}"#,
        None,
    );
    let (_socket, mut rx) = Socket::start(config(&server.url));

    expect(&mut rx, "Connected", |e| {
        matches!(e, SocketEvent::Connected { reconnect: false })
    })
    .await;
    let s = server.with();
    assert_eq!(s.upgrades.len(), 3);
    // The reconnect backoff is 20 ms, so these gaps come from Retry-After (header, then body).
    for pair in s.upgrades.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(900), "gap {gap:?}");
    }
}

#[tokio::test]
async fn malformed_frames_are_counted_and_survived() {
    let server = FakePhoenix::start().await;
    let (socket, mut rx) = connected(&server, config(&server.url)).await;
    socket.join(ROOM).await.unwrap();

    server.send_raw(0, "not json");
    server.send_raw(0, "[1, 2]");
    server.send_raw(0, r#"{"topic": "x"}"#);
    server.send_raw(0, r#"[null, null, "chat_room:r1", "message_created", []]"#);
    server.push(
        0,
        ROOM,
        "message_created",
        json!({"id": 5}),
        JoinRef::Current,
    );
    server.push(0, ROOM, "mystery_event", json!({"a": 1}), JoinRef::Current);
    server.push(0, ROOM, "message_created", message("ok"), JoinRef::Current);

    let ev = expect(&mut rx, "Invalid", |e| {
        matches!(e, SocketEvent::Invalid { .. })
    })
    .await;
    assert!(
        matches!(ev, SocketEvent::Invalid { topic, event, .. } if topic == ROOM && event == "message_created")
    );
    let ev = expect(&mut rx, "unknown event", |e| {
        matches!(
            e,
            SocketEvent::Event {
                event: Event::Unknown { .. },
                ..
            }
        )
    })
    .await;
    assert!(
        matches!(ev, SocketEvent::Event { event: Event::Unknown { event, .. }, .. } if event == "mystery_event")
    );
    let ev = expect(&mut rx, "valid message", |e| message_id(e).is_some()).await;
    assert_eq!(message_id(&ev).as_deref(), Some("ok"));

    let stats = socket.stats();
    assert_eq!(stats.malformed_frames, 4);
    assert_eq!(stats.invalid_events, 1);
    assert!(stats.frames_received >= 8);
    assert_eq!(server.with().upgrades.len(), 1, "no disconnect");
    assert_eq!(*socket.status().borrow(), Status::Connected);
}

#[tokio::test]
async fn server_close_codes_are_classified() {
    let server = FakePhoenix::start().await;
    let (socket, mut rx) = connected(&server, config(&server.url)).await;
    socket.join(ROOM).await.unwrap();

    // 1012 (restart) and 1000: reconnect.
    server.close(0, 1012, "restart");
    expect_reconnect(&mut rx, "reconnect after 1012").await;
    expect(&mut rx, "Rejoined", |e| {
        matches!(e, SocketEvent::Rejoined { .. })
    })
    .await;
    server.close(1, 1000, "bye");
    expect_reconnect(&mut rx, "reconnect after 1000").await;
    server
        .wait_until("third connection", |s| s.accepted() == 3)
        .await;

    // 1008 (policy violation): terminal.
    server.close(2, 1008, "policy");
    let reason = expect_stopped(&mut rx).await;
    assert!(
        matches!(reason, StopReason::Closed { code: 1008, .. }),
        "{reason:?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.with().upgrades.len(), 3);
}

#[tokio::test]
async fn shutdown_sends_close_and_ends_the_task() {
    let server = FakePhoenix::start().await;
    let (socket, mut rx) = connected(&server, config(&server.url)).await;
    socket.join(ROOM).await.unwrap();

    tokio::time::timeout(Duration::from_secs(3), socket.shutdown())
        .await
        .unwrap();
    assert_eq!(
        *socket.status().borrow(),
        Status::Stopped(StopReason::Shutdown)
    );
    let reason = expect_stopped(&mut rx).await;
    assert!(matches!(reason, StopReason::Shutdown), "{reason:?}");
    // The task is gone: the event channel ends and calls fail fast.
    let end = tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .unwrap();
    assert!(end.is_none());
    assert_eq!(
        socket.push(ROOM, "typing", json!({})).await,
        Err(SocketError::Stopped)
    );
    server
        .wait_until("close frame received", |s| s.closes_received == vec![0])
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.with().upgrades.len(), 1);
}

#[tokio::test]
async fn repeated_unauthorized_upgrade_stops_after_a_few_tries() {
    let server = FakePhoenix::start().await;
    for _ in 0..5 {
        server.reject_next(401, r#"{"error":{"code":"unauthorized"}}"#, None);
    }
    let (_socket, mut rx) = Socket::start(config(&server.url));
    let reason = expect_stopped(&mut rx).await;
    assert!(
        matches!(reason, StopReason::AuthFailed { status: 401, .. }),
        "{reason:?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        server.with().upgrades.len(),
        3,
        "401 is retried, but only a few times"
    );
}
