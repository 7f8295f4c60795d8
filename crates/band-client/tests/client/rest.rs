//! REST clients against a scripted axum server on 127.0.0.1.

use std::time::{Duration, Instant};

use crate::rest_server::{ScriptServer, Scripted};
use band_client::rest::{
    AgentApi, ApiError, ContactAction, HumanApi, HumanMessageQuery, MessageQuery, RestConfig,
    RetryPolicy,
};
use band_wire::model::Mention;
use serde_json::{json, Value};
use tokio::time::timeout;

const KEY: &str = "sk-agent-secret-1234";
const USER_KEY: &str = "sk-user-secret-5678";
const LIMIT: Duration = Duration::from_secs(10);

fn fast_policy(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(5),
    }
}

fn config(base: &str, key: &str, retries: u32) -> RestConfig {
    let mut c = RestConfig::new(base, key);
    c.retry = fast_policy(retries);
    c.timeout = Duration::from_secs(5);
    c
}

fn agent(server: &ScriptServer, retries: u32) -> AgentApi {
    // A trailing slash on the base must not double up in the URL.
    AgentApi::new(config(&format!("{}/", server.base()), KEY, retries)).unwrap()
}

fn human(server: &ScriptServer) -> HumanApi {
    HumanApi::new(config(&server.base(), USER_KEY, 0)).unwrap()
}

fn message(id: &str) -> Value {
    json!({"id": id, "content": "@[[a1]] hi", "message_type": "text", "sender_id": "u1",
           "sender_type": "User", "chat_room_id": "c1", "metadata": {}, "attachments": [],
           "inserted_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z"})
}

fn status_body(id: &str, status: &str) -> Value {
    json!({"data": {"id": id, "status": status, "attempt_number": 1, "success": true}})
}

fn validation_422() -> Scripted {
    Scripted::json(
        422,
        json!({"error": {"code": "validation_error", "message": "no attempt", "request_id": "r1",
                         "details": {"/processing_attempt": ["no active processing attempt"]}}}),
    )
}

/// Assert no JSON null anywhere in a request body.
fn assert_no_nulls(v: &Value) {
    match v {
        Value::Null => panic!("null in request body"),
        Value::Array(a) => a.iter().for_each(assert_no_nulls),
        Value::Object(o) => o.values().for_each(assert_no_nulls),
        _ => {}
    }
}

#[tokio::test]
async fn agent_paths_methods_key_and_envelopes() {
    let s = ScriptServer::start().await;
    s.script(
        "GET",
        "/api/v1/agent/me",
        Scripted::json(
            200,
            json!({"data": {"id": "a1", "name": "Bot", "handle": "owner/bot", "owner_uuid": "u0",
                            "feature_flags": {}, "description": "d", "avatar_url": "x"}}),
        ),
    );
    s.script(
        "GET",
        "/api/v1/agent/chats/c1/messages",
        Scripted::json(
            200,
            json!({"data": [message("m1"), message("m2")],
                   "metadata": {"has_more": true, "limit": 2, "next_cursor": "cur2"}}),
        ),
    );
    s.script(
        "GET",
        "/api/v1/agent/chats/c1/participants",
        Scripted::json(
            200,
            json!({"data": [{"id": "a1", "role": "member", "status": "active", "type": "Agent",
                             "name": "Bot", "handle": "owner/bot"}]}),
        ),
    );
    s.script(
        "GET",
        "/api/v1/agent/chats/c1/context",
        Scripted::json(
            200,
            json!({"data": [message("m9")], "meta": {"has_more": false, "limit": 50}}),
        ),
    );
    let api = agent(&s, 0);
    let me = timeout(LIMIT, api.me()).await.unwrap().unwrap();
    assert_eq!(me.handle, "owner/bot");
    assert_eq!(me.extra.get("avatar_url"), Some(&json!("x")));

    let q = MessageQuery {
        status: Some("pending".into()),
        limit: Some(2),
        ..Default::default()
    };
    let page = timeout(LIMIT, api.list_messages("c1", &q))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page.items.len(), 2);
    assert_eq!(page.items[1].id, "m2");
    assert_eq!(page.meta.next_cursor.as_deref(), Some("cur2"));
    assert_eq!(page.meta.has_more, Some(true));

    let parts = api.list_participants("c1").await.unwrap();
    assert_eq!(parts[0].role, "member");

    let ctx = api.context("c1", Some("k"), Some(50)).await.unwrap();
    assert_eq!(ctx.items[0].id, "m9");
    assert_eq!(
        ctx.meta.limit,
        Some(50),
        "`meta` is read when `metadata` is absent"
    );

    let seen = s.seen();
    assert_eq!(seen.len(), 4);
    for r in &seen {
        assert_eq!(r.method, "GET");
        assert_eq!(r.api_key.as_deref(), Some(KEY));
        assert!(r.body.is_none());
    }
    assert_eq!(seen[0].path, "/api/v1/agent/me");
    assert_eq!(seen[0].query, None);
    assert_eq!(seen[1].query.as_deref(), Some("status=pending&limit=2"));
    assert_eq!(seen[3].query.as_deref(), Some("cursor=k&limit=50"));
}

#[tokio::test]
async fn agent_bodies_leave_out_unset_fields() {
    let s = ScriptServer::start().await;
    let room = json!({"data": {"id": "c9", "title": null, "inserted_at": "t", "updated_at": "t"}});
    s.script("POST", "/api/v1/agent/chats", Scripted::json(201, room));
    s.script(
        "POST",
        "/api/v1/agent/chats/c1/messages",
        Scripted::json(
            201,
            json!({"data": {"id": "m5", "success": true, "recipients": [{"id": "u1", "handle": "al"}]}}),
        ),
    );
    s.script(
        "POST",
        "/api/v1/agent/chats/c1/participants",
        Scripted::json(
            201,
            json!({"data": {"id": "a2", "role": "member", "status": "inactive", "type": "Agent"}}),
        ),
    );
    s.script(
        "POST",
        "/api/v1/agent/chats/c1/events",
        Scripted::json(
            200,
            json!({"data": {"id": "e1", "message_type": "thought", "success": true}}),
        ),
    );
    s.script(
        "POST",
        "/api/v1/agent/chats/c1/messages/m1/failed",
        Scripted::json(200, status_body("m1", "failed")),
    );
    s.script(
        "POST",
        "/api/v1/agent/chats/c1/messages/m1/processed",
        Scripted::json(200, status_body("m1", "processed")),
    );
    s.script(
        "POST",
        "/api/v1/agent/contacts/requests/respond",
        Scripted::json(200, json!({"data": {"id": "r1", "status": "approved"}})),
    );
    s.script(
        "POST",
        "/api/v1/agent/contacts/add",
        Scripted::json(200, json!({"data": {"id": "r2", "status": "pending"}})),
    );
    s.script(
        "POST",
        "/api/v1/agent/contacts/remove",
        Scripted::json(200, json!({"data": {"status": "removed"}})),
    );
    let api = agent(&s, 0);

    let chat = timeout(LIMIT, api.create_chat(None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(chat.id, "c9");
    let mention = Mention {
        id: Some("u1".into()),
        ..Default::default()
    };
    let sent = api.send_message("c1", "hello", &[mention]).await.unwrap();
    assert_eq!(sent.id, "m5");
    assert_eq!(sent.recipients[0].handle.as_deref(), Some("al"));
    let p = api.add_participant("c1", "a2", None).await.unwrap();
    assert_eq!(p.status, "inactive");
    let ev = api.post_event("c1", "thought", "hmm", None).await.unwrap();
    assert_eq!(ev.message_type, "thought");
    let failed = api.mark_failed("c1", "m1", "   ").await.unwrap();
    assert_eq!(failed.status, "failed");
    let done = api.mark_processed("c1", "m1").await.unwrap();
    assert_eq!(done.status, "processed");
    let r = api
        .respond_contact_request(ContactAction::Approve, None, Some("r1"))
        .await
        .unwrap();
    assert_eq!(r.unwrap().status, "approved");
    let added = api.add_contact("@bob", None).await.unwrap().unwrap();
    assert_eq!(added.status, "pending");
    api.remove_contact(None, Some("bob")).await.unwrap();

    let body = |path: &str| s.seen_at(path)[0].body.clone();
    assert_eq!(body("/api/v1/agent/chats"), Some(json!({"chat": {}})));
    assert_eq!(
        body("/api/v1/agent/chats/c1/messages"),
        Some(json!({"message": {"content": "hello", "mentions": [{"id": "u1"}]}}))
    );
    assert_eq!(
        body("/api/v1/agent/chats/c1/participants"),
        Some(json!({"participant": {"participant_id": "a2"}}))
    );
    assert_eq!(
        body("/api/v1/agent/chats/c1/events"),
        Some(json!({"event": {"content": "hmm", "message_type": "thought"}}))
    );
    assert_eq!(
        body("/api/v1/agent/chats/c1/messages/m1/failed"),
        Some(json!({"error": "Unknown error"}))
    );
    assert_eq!(body("/api/v1/agent/chats/c1/messages/m1/processed"), None);
    assert_eq!(
        body("/api/v1/agent/contacts/requests/respond"),
        Some(json!({"action": "approve", "request_id": "r1"}))
    );
    assert_eq!(
        body("/api/v1/agent/contacts/add"),
        Some(json!({"handle": "@bob"}))
    );
    assert_eq!(
        body("/api/v1/agent/contacts/remove"),
        Some(json!({"handle": "bob"}))
    );
    for r in s.seen() {
        assert_eq!(r.method, "POST");
        assert_eq!(r.api_key.as_deref(), Some(KEY));
        if let Some(b) = &r.body {
            assert_no_nulls(b);
            assert_eq!(r.content_type.as_deref(), Some("application/json"));
        }
    }
}

#[tokio::test]
async fn no_content_means_none() {
    let s = ScriptServer::start().await;
    s.script(
        "GET",
        "/api/v1/agent/chats/c1/messages/next",
        Scripted::empty(204),
    );
    s.script(
        "GET",
        "/api/v1/agent/chats/c2/messages/next",
        Scripted::json(200, json!({"data": message("m7")})),
    );
    s.script(
        "POST",
        "/api/v1/agent/chats/c1/messages/m1/processing",
        Scripted::empty(204),
    );
    s.script(
        "POST",
        "/api/v1/agent/chats/c2/messages/m7/processing",
        Scripted::json(200, status_body("m7", "processing")),
    );
    let api = agent(&s, 0);
    assert!(timeout(LIMIT, api.next_message("c1"))
        .await
        .unwrap()
        .unwrap()
        .is_none());
    let m = api.next_message("c2").await.unwrap().unwrap();
    assert_eq!(m.id, "m7");
    assert!(api.mark_processing("c1", "m1").await.unwrap().is_none());
    let st = api.mark_processing("c2", "m7").await.unwrap().unwrap();
    assert_eq!((st.status.as_str(), st.attempt_number), ("processing", 1));
}

#[tokio::test]
async fn error_bodies_are_typed_and_4xx_not_retried() {
    let s = ScriptServer::start().await;
    s.script(
        "POST",
        "/api/v1/agent/chats/c1/messages/m1/processed",
        validation_422(),
    );
    s.script(
        "POST",
        "/api/v1/agent/chats/c1/events",
        Scripted::json(
            403,
            json!({"error": {"code": "forbidden", "message": "room execution is stopped", "request_id": "r"}}),
        ),
    );
    let api = agent(&s, 3);

    let err = timeout(LIMIT, api.mark_processed("c1", "m1"))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.status(), Some(422));
    assert_eq!(err.code(), Some("validation_error"));
    assert!(err.is_validation());
    assert!(err.is_missing_processing_attempt());
    assert!(!err.is_retryable());
    assert!(matches!(&err, ApiError::Status { method, path, raw, .. }
        if method == "POST" && path.ends_with("/m1/processed") && raw.contains("/processing_attempt")));

    // Nothing scripted → the server's 404 body.
    let err = api.get_chat("nope").await.unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(err.code(), Some("not_found"));
    assert!(!err.is_missing_processing_attempt());

    let err = api
        .post_event("c1", "thought", "x", None)
        .await
        .unwrap_err();
    assert!(err.is_execution_stopped());

    assert_eq!(
        s.seen_at("/api/v1/agent/chats/c1/messages/m1/processed")
            .len(),
        1
    );
    assert_eq!(s.seen_at("/api/v1/agent/chats/nope").len(), 1);
    assert_eq!(s.seen_at("/api/v1/agent/chats/c1/events").len(), 1);
}

#[tokio::test]
async fn retries_503_then_succeeds() {
    let s = ScriptServer::start().await;
    let unavailable = Scripted::json(
        503,
        json!({"error": {"code": "unavailable", "message": "busy", "request_id": "r"}}),
    );
    s.script("GET", "/api/v1/agent/me", unavailable.clone());
    s.script("GET", "/api/v1/agent/me", unavailable);
    s.script(
        "GET",
        "/api/v1/agent/me",
        Scripted::json(
            200,
            json!({"data": {"id": "a1", "name": "Bot", "handle": "o/bot"}}),
        ),
    );
    let api = agent(&s, 3);
    let me = timeout(LIMIT, api.me()).await.unwrap().unwrap();
    assert_eq!(me.id, "a1");
    assert_eq!(s.seen_at("/api/v1/agent/me").len(), 3);
}

#[tokio::test]
async fn honours_retry_after_on_429() {
    let s = ScriptServer::start().await;
    s.script(
        "GET",
        "/api/v1/agent/chats/c1",
        Scripted::json(
            429,
            json!({"error": {"code": "rate_limited", "message": "slow down", "request_id": "r"}}),
        )
        .header("retry-after", "1"),
    );
    s.script(
        "GET",
        "/api/v1/agent/chats/c1",
        Scripted::json(
            200,
            json!({"data": {"id": "c1", "title": "T", "inserted_at": "t", "updated_at": "t"}}),
        ),
    );
    let api = agent(&s, 2);
    let started = Instant::now();
    let room = timeout(LIMIT, api.get_chat("c1")).await.unwrap().unwrap();
    let elapsed = started.elapsed();
    assert_eq!(room.title.as_deref(), Some("T"));
    assert_eq!(s.seen_at("/api/v1/agent/chats/c1").len(), 2);
    assert!(
        elapsed >= Duration::from_millis(950),
        "Retry-After ignored: {elapsed:?}"
    );
}

#[tokio::test]
async fn gives_up_after_max_retries_with_last_error() {
    let s = ScriptServer::start().await;
    s.script(
        "GET",
        "/api/v1/agent/peers",
        Scripted::json(
            500,
            json!({"error": {"code": "internal", "message": "boom", "request_id": "r"}}),
        ),
    );
    let api = agent(&s, 2);
    let err = timeout(LIMIT, api.peers(Some("c1"), None, None))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.status(), Some(500));
    assert_eq!(err.code(), Some("internal"));
    assert!(err.is_retryable());
    let seen = s.seen_at("/api/v1/agent/peers");
    assert_eq!(seen.len(), 3, "1 attempt + 2 retries");
    assert_eq!(seen[0].query.as_deref(), Some("not_in_chat=c1"));

    // A zero-retry client sends exactly once.
    let before = s.seen_at("/api/v1/agent/peers").len();
    let once = api.with_retry(RetryPolicy::none());
    once.peers(None, None, None).await.unwrap_err();
    assert_eq!(s.seen_at("/api/v1/agent/peers").len(), before + 1);
}

#[tokio::test]
async fn closed_port_is_a_transport_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let api = AgentApi::new(config(&format!("http://{addr}"), KEY, 1)).unwrap();
    let err = timeout(LIMIT, api.me()).await.unwrap().unwrap_err();
    assert!(
        matches!(&err, ApiError::Transport { method, path, .. }
        if method == "GET" && path == "/api/v1/agent/me"),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(err.status(), None);
}

#[tokio::test]
async fn malformed_success_body_is_a_decode_error() {
    let s = ScriptServer::start().await;
    s.script(
        "GET",
        "/api/v1/agent/me",
        Scripted {
            status: 200,
            headers: vec![],
            body: "not json".into(),
        },
    );
    s.script(
        "GET",
        "/api/v1/agent/chats/c1",
        Scripted::json(200, json!({"data": {"title": "no id"}})),
    );
    let api = agent(&s, 3);
    let err = timeout(LIMIT, api.me()).await.unwrap().unwrap_err();
    assert!(matches!(&err, ApiError::Decode { raw, .. } if raw == "not json"));
    let err = api.get_chat("c1").await.unwrap_err();
    assert!(matches!(err, ApiError::Decode { .. }));
    assert_eq!(s.seen().len(), 2, "decode errors are not retried");
}

#[tokio::test]
async fn list_all_chats_pages_and_dedupes() {
    let s = ScriptServer::start().await;
    let room = |id: &str| json!({"id": id, "inserted_at": "t", "updated_at": "t"});
    s.script(
        "GET",
        "/api/v1/agent/chats",
        Scripted::json(
            200,
            json!({"data": [room("c1"), room("c2")],
                   "metadata": {"page": 1, "page_size": 2, "total_count": 3, "total_pages": 2}}),
        ),
    );
    s.script(
        "GET",
        "/api/v1/agent/chats",
        Scripted::json(
            200,
            json!({"data": [room("c2"), room("c3")],
                   "metadata": {"page": 2, "page_size": 2, "total_count": 3, "total_pages": 2}}),
        ),
    );
    let api = agent(&s, 0);
    let rooms = timeout(LIMIT, api.list_all_chats()).await.unwrap().unwrap();
    let ids: Vec<_> = rooms.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["c1", "c2", "c3"]);
    let seen = s.seen_at("/api/v1/agent/chats");
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].query.as_deref(), Some("page=1&page_size=50"));
    assert_eq!(seen[1].query.as_deref(), Some("page=2&page_size=50"));
}

#[tokio::test]
async fn human_api_paths_and_shapes() {
    let s = ScriptServer::start().await;
    s.script(
        "GET",
        "/api/v1/me/profile",
        Scripted::json(
            200,
            json!({"data": {"id": "u1", "email": "a@x", "handle": "alice", "role": "user", "first_name": "Alice"}}),
        ),
    );
    s.script(
        "POST",
        "/api/v1/me/chats",
        Scripted::json(
            201,
            json!({"data": {"id": "c1", "inserted_at": "t", "updated_at": "t", "type": "direct"}}),
        ),
    );
    s.script(
        "POST",
        "/api/v1/me/chats/c1/messages",
        Scripted::json(
            201,
            json!({"data": {"id": "m1", "success": true, "recipients": []}}),
        ),
    );
    s.script(
        "GET",
        "/api/v1/me/chats/c1/messages",
        Scripted::json(
            200,
            json!({"data": [message("m1")], "metadata": {"has_more": false, "limit": 20}}),
        ),
    );
    s.script(
        "GET",
        "/api/v1/me/contacts",
        Scripted::json(
            200,
            json!({"data": [{"id": "k1", "contact_id": "a1", "contact_type": "Agent", "inserted_at": "t",
                             "online": true, "status": "active", "user": {"handle": "alice/bot"}}],
                   "metadata": {"page": 1, "page_size": 20, "total_count": 1, "total_pages": 1}}),
        ),
    );
    let request = json!({"id": "q1", "status": "pending", "inserted_at": "t", "requester_id": "u1",
                         "recipient_id": "u2", "recipient": {"handle": "bob"}});
    s.script(
        "POST",
        "/api/v1/me/contacts/requests",
        Scripted::json(201, json!({"data": request})),
    );
    s.script(
        "GET",
        "/api/v1/me/contacts/requests/sent",
        Scripted::json(200, json!({"data": [request]})),
    );
    s.script(
        "POST",
        "/api/v1/me/contacts/requests/q2/approve",
        Scripted::json(200, json!({"data": {"id": "q2", "status": "approved"}})),
    );
    s.script(
        "DELETE",
        "/api/v1/me/contacts/requests/q1",
        Scripted::json(200, json!({"data": {"id": "q1", "status": "cancelled"}})),
    );
    s.script(
        "DELETE",
        "/api/v1/me/chats/c1/participants/a1",
        Scripted::json(
            200,
            json!({"data": {"id": "a1", "role": "member", "status": "active", "type": "Agent"}}),
        ),
    );
    let h = human(&s);

    let me = timeout(LIMIT, h.profile()).await.unwrap().unwrap();
    assert_eq!((me.id.as_str(), me.handle.as_str()), ("u1", "alice"));
    let chat = h.create_chat(Some("Plans")).await.unwrap();
    assert_eq!(chat.extra.get("type"), Some(&json!("direct")));
    let mention = Mention {
        id: Some("a1".into()),
        handle: Some("alice/bot".into()),
        ..Default::default()
    };
    h.send_message("c1", "@bot hi", &[mention]).await.unwrap();
    let q = HumanMessageQuery {
        after: Some("m0".into()),
        ..Default::default()
    };
    let msgs = h.list_messages("c1", &q).await.unwrap();
    assert_eq!(msgs.items[0].id, "m1");
    let contacts = h.contacts(None, None).await.unwrap();
    assert_eq!(contacts.items[0].contact_id, "a1");
    assert_eq!(contacts.meta.total_pages, Some(1));
    let req = h.send_contact_request("@bob", None).await.unwrap();
    assert_eq!(req.recipient_id, "u2");
    let sent = h.sent_contact_requests(Some("pending")).await.unwrap();
    assert_eq!(sent.items.len(), 1);
    assert_eq!(
        h.approve_contact_request("q2").await.unwrap().status,
        "approved"
    );
    assert_eq!(
        h.cancel_contact_request("q1").await.unwrap().status,
        "cancelled"
    );
    let removed = h.remove_participant("c1", "a1").await.unwrap().unwrap();
    assert_eq!(removed.id, "a1");

    let seen = s.seen();
    for r in &seen {
        assert_eq!(r.api_key.as_deref(), Some(USER_KEY));
        if let Some(b) = &r.body {
            assert_no_nulls(b);
        }
    }
    let body = |path: &str| s.seen_at(path)[0].body.clone();
    assert_eq!(
        body("/api/v1/me/chats"),
        Some(json!({"chat": {"title": "Plans"}}))
    );
    assert_eq!(
        body("/api/v1/me/chats/c1/messages"),
        Some(
            json!({"message": {"content": "@bot hi", "mentions": [{"id": "a1", "handle": "alice/bot"}]}})
        )
    );
    assert_eq!(
        body("/api/v1/me/contacts/requests"),
        Some(json!({"contact_request": {"recipient_handle": "@bob"}}))
    );
    let get_msgs: Vec<_> = seen
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/api/v1/me/chats/c1/messages")
        .collect();
    assert_eq!(get_msgs[0].query.as_deref(), Some("after=m0"));
    assert_eq!(
        s.seen_at("/api/v1/me/contacts/requests/sent")[0]
            .query
            .as_deref(),
        Some("status=pending")
    );
    assert_eq!(
        s.seen_at("/api/v1/me/contacts/requests/q2/approve")[0].body,
        None
    );
    assert_eq!(
        s.seen_at("/api/v1/me/contacts/requests/q1")[0].method,
        "DELETE"
    );
}

#[tokio::test]
async fn debug_output_hides_the_key() {
    let s = ScriptServer::start().await;
    let api = agent(&s, 0);
    let h = human(&s);
    let cfg = config(&s.base(), KEY, 0);
    for text in [
        format!("{api:?}"),
        format!("{h:?}"),
        format!("{cfg:?}"),
        format!("{:?}", api.rest()),
    ] {
        assert!(!text.contains(KEY) && !text.contains(USER_KEY), "{text}");
        assert!(text.contains("redacted"), "{text}");
    }
    // Nor in errors.
    let err = api.me().await.unwrap_err();
    let text = format!("{err:?} {err}");
    assert!(!text.contains(KEY), "{text}");
}

#[tokio::test]
async fn errors_name_the_request_path_from_its_root() {
    let s = ScriptServer::start().await;
    let api = agent(&s, 0);
    // Nothing scripted → the server's 404.
    let err = timeout(LIMIT, api.get_chat("nope"))
        .await
        .unwrap()
        .unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.starts_with("GET /api/v1/agent/chats/nope: HTTP 404"),
        "{shown}"
    );
}
