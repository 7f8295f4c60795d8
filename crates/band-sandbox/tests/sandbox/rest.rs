//! The sandbox's REST surface over loopback: auth, messages and their
//! lifecycle, participants, contacts, control endpoints, seed errors.

use std::sync::Arc;
use std::time::Duration;

use band_sandbox::hub::{ConnCommand, Principal};
use band_sandbox::{default_seed, load_seed, parse_seed, serve, Sandbox, SeedError};
use band_wire::model::EntityType;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::oneshot;

struct Env {
    base: String,
    http: Client,
    sb: Arc<Sandbox>,
    _stop: oneshot::Sender<()>,
}

async fn start() -> Env {
    start_with(default_seed()).await
}

async fn start_with(seed: band_sandbox::Seed) -> Env {
    let sb = Sandbox::new(seed).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, sb.clone(), async move {
        let _ = rx.await;
    }));
    Env {
        base: format!("http://{addr}"),
        http: Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        sb,
        _stop: tx,
    }
}

impl Env {
    /// Sends a request; returns status, headers and parsed body (Null when empty).
    async fn call(
        &self,
        method: Method,
        key: Option<&str>,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(k) = key {
            req = req.header("X-API-Key", k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, headers, v)
    }
    /// Sends raw bytes with the given content type (none when `None`);
    /// returns status, the response's content type, and its parsed body.
    async fn raw(
        &self,
        method: Method,
        key: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, String, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .header("X-API-Key", key)
            .body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, ct, v)
    }
    async fn get(&self, key: &str, path: &str) -> (StatusCode, Value) {
        let (s, _, v) = self.call(Method::GET, Some(key), path, None).await;
        (s, v)
    }
    async fn post(&self, key: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, _, v) = self.call(Method::POST, Some(key), path, Some(body)).await;
        (s, v)
    }
    async fn delete(&self, key: &str, path: &str) -> (StatusCode, Value) {
        let (s, _, v) = self.call(Method::DELETE, Some(key), path, None).await;
        (s, v)
    }
    async fn state(&self) -> Value {
        self.call(Method::GET, None, "/_sandbox/state", None)
            .await
            .2
    }
    /// Id of a user or agent by handle.
    async fn id(&self, handle: &str) -> String {
        let st = self.state().await;
        for list in ["users", "agents"] {
            for e in st[list].as_array().unwrap() {
                if e["handle"] == handle {
                    return e["id"].as_str().unwrap().to_string();
                }
            }
        }
        panic!("no {handle}");
    }
    async fn support(&self) -> String {
        let st = self.state().await;
        st["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["title"] == "Support")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

fn assert_error(v: &Value, code: &str) {
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    assert!(
        v["error"]["request_id"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{v}"
    );
}

#[tokio::test]
async fn auth_is_checked_per_surface() {
    let env = start().await;
    let (s, _, v) = env.call(Method::GET, None, "/api/v1/agent/me", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_error(&v, "unauthorized");
    let (s, v) = env.get("nope", "/api/v1/agent/me").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_error(&v, "unauthorized");
    let (s, v) = env.get("triage-key", "/api/v1/me/profile").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_error(&v, "forbidden");
    let (s, _) = env.get("alice-key", "/api/v1/agent/me").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = env.get("triage-key", "/api/v1/agent/me").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["handle"], "alice/triage-bot");
    assert!(v["data"]["description"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));
    let (s, v) = env.get("alice-key", "/api/v1/me/profile").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["handle"], "alice");
}

#[tokio::test]
async fn user_message_reaches_the_agent_via_next_and_socket() {
    let env = start().await;
    let room = env.support().await;
    let triage = env.id("alice/triage-bot").await;
    // The agent's socket, registered straight on the hub (ws.rs is elsewhere).
    let me = Principal {
        id: triage.clone(),
        kind: EntityType::Agent,
    };
    let (conn, mut rx) = env.sb.hub().register(me);
    env.sb.hub().joined(conn, &format!("chat_room:{room}"));

    // bob mentions alice only: not delivered to the agent.
    let (s, _) = env
        .post(
            "bob-key",
            &format!("/api/v1/me/chats/{room}/messages"),
            json!({"message": {"content": "hi alice", "mentions": [{"handle": "@alice"}]}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = env
        .get(
            "triage-key",
            &format!("/api/v1/agent/chats/{room}/messages/next"),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");

    let (s, v) = env
        .post(
            "bob-key",
            &format!("/api/v1/me/chats/{room}/messages"),
            json!({"message": {"content": "my invoice is wrong", "mentions": [{"handle": "alice/triage-bot"}]}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["data"]["success"], true);
    assert_eq!(v["data"]["recipients"][0]["id"], triage.as_str());
    let msg_id = v["data"]["id"].as_str().unwrap().to_string();

    // Only the message that mentions it is pushed to the agent.
    let cmd = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let ConnCommand::Push {
        topic,
        event,
        payload,
    } = cmd
    else {
        panic!("unexpected {cmd:?}")
    };
    assert_eq!(topic, format!("chat_room:{room}"));
    assert_eq!(event, "message_created");
    assert_eq!(payload["id"], msg_id.as_str());
    assert_eq!(payload["metadata"]["mentions"][0]["id"], triage.as_str());
    band_wire::events::Event::decode(&event, payload.clone()).unwrap();
    assert!(rx.try_recv().is_err());

    let (s, v) = env
        .get(
            "triage-key",
            &format!("/api/v1/agent/chats/{room}/messages/next"),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["id"], msg_id.as_str());
    assert_eq!(
        v["data"]["content"],
        format!("@[[{triage}]] my invoice is wrong")
    );
    assert_eq!(v["data"]["sender_type"], "User");
    assert_eq!(
        v["data"]["metadata"]["delivery_status"][&triage]["status"],
        "delivered"
    );

    // The default list shows it; context shows it; the person sees it newest first.
    let (_, v) = env
        .get(
            "triage-key",
            &format!("/api/v1/agent/chats/{room}/messages"),
        )
        .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["metadata"]["has_more"], false);
    let (_, v) = env
        .get("triage-key", &format!("/api/v1/agent/chats/{room}/context"))
        .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    let (_, v) = env
        .get("alice-key", &format!("/api/v1/me/chats/{room}/messages"))
        .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][0]["id"], msg_id.as_str());
}

#[tokio::test]
async fn agent_messages_status_filter_spellings() {
    let env = start().await;
    let room = env.support().await;
    let triage = env.id("alice/triage-bot").await;
    env.post(
        "alice-key",
        &format!("/api/v1/me/chats/{room}/messages"),
        json!({"message": {"content": "help", "mentions": [{"id": triage}]}}),
    )
    .await;
    let list = format!("/api/v1/agent/chats/{room}/messages");
    for (filter, n) in [
        ("", 1),
        ("all", 1),
        ("pending", 1),
        ("delivered", 1),
        ("processing", 0),
        ("processed", 0),
        ("failed", 0),
    ] {
        let (s, v) = env
            .get("triage-key", &format!("{list}?status={filter}"))
            .await;
        assert_eq!(s, StatusCode::OK, "{filter:?}");
        assert_eq!(v["data"].as_array().unwrap().len(), n, "{filter:?}");
    }
    for filter in ["Delivered", "done"] {
        let (s, v) = env
            .get("triage-key", &format!("{list}?status={filter}"))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{filter:?}");
        assert!(v["error"]["details"]["/status"].is_array(), "{v}");
    }
}

#[tokio::test]
async fn lifecycle_processing_processed_failed() {
    let env = start().await;
    let room = env.support().await;
    let triage = env.id("alice/triage-bot").await;
    let (_, v) = env
        .post(
            "alice-key",
            &format!("/api/v1/me/chats/{room}/messages"),
            json!({"message": {"content": "help", "mentions": [{"id": triage}]}}),
        )
        .await;
    let m = v["data"]["id"].as_str().unwrap().to_string();
    let base = format!("/api/v1/agent/chats/{room}/messages/{m}");

    let (s, v) = env
        .post("triage-key", &format!("{base}/processed"), json!({}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&v, "validation_error");
    assert!(
        v["error"]["details"]["/processing_attempt"].is_array(),
        "{v}"
    );

    let (s, v) = env
        .post("triage-key", &format!("{base}/processing"), json!(null))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v["data"],
        json!({"id": m, "status": "processing", "attempt_number": 1, "success": true})
    );
    let (_, v) = env
        .post("triage-key", &format!("{base}/processing"), json!(null))
        .await;
    assert_eq!(v["data"]["attempt_number"], 1, "processing is idempotent");

    // Still served while processing (crash recovery).
    let (s, v) = env
        .get(
            "triage-key",
            &format!("/api/v1/agent/chats/{room}/messages/next"),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["id"], m.as_str());

    let (s, v) = env
        .post(
            "triage-key",
            &format!("{base}/failed"),
            json!({"error": "boom"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["status"], "failed");
    let (s, v) = env
        .get(
            "triage-key",
            &format!("/api/v1/agent/chats/{room}/messages/next"),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "failed is re-served");
    assert_eq!(v["data"]["id"], m.as_str());
    let (_, v) = env
        .get(
            "triage-key",
            &format!("/api/v1/agent/chats/{room}/messages?status=failed"),
        )
        .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);

    let (_, v) = env
        .post("triage-key", &format!("{base}/processing"), json!(null))
        .await;
    assert_eq!(v["data"]["attempt_number"], 2);
    let (s, v) = env
        .post("triage-key", &format!("{base}/processed"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["status"], "processed");
    assert_eq!(v["data"]["attempt_number"], 2);

    let (s, _, v) = env
        .call(
            Method::GET,
            Some("triage-key"),
            &format!("/api/v1/agent/chats/{room}/messages/next"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(v, Value::Null, "204 has an empty body");
    let (_, v) = env
        .get(
            "triage-key",
            &format!("/api/v1/agent/chats/{room}/messages"),
        )
        .await;
    assert_eq!(
        v["data"].as_array().unwrap().len(),
        0,
        "processed leaves the default list"
    );

    // The control state shows the delivery and both attempts.
    let st = env.state().await;
    let msg = st["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == m.as_str())
        .unwrap();
    assert_eq!(msg["delivery"][&triage]["status"], "processed");
    let attempts = msg["delivery"][&triage]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["status"], "failed");
    assert_eq!(attempts[0]["error"], "boom");

    // Another agent, or a message id it does not have: 404 not_found.
    let (s, v) = env
        .post(
            "triage-key",
            &format!("/api/v1/agent/chats/{room}/messages/nope/processing"),
            json!(null),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_error(&v, "not_found");
    let (s, _) = env
        .post("billing-key", &format!("{base}/processing"), json!(null))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn message_validation() {
    let env = start().await;
    let room = env.support().await;
    let triage = env.id("alice/triage-bot").await;
    let billing = env.id("alice/billing-agent").await;
    let path = format!("/api/v1/agent/chats/{room}/messages");

    let (s, v) = env
        .post(
            "triage-key",
            &path,
            json!({"message": {"content": "me", "mentions": [{"id": triage}]}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "self-mention");
    assert_error(&v, "validation_error");

    let (s, v) = env
        .post(
            "triage-key",
            &path,
            json!({"message": {"content": "hey", "mentions": [{"id": billing}]}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["error"]["message"], "mentioned_participant_not_in_room");

    let (s, v) = env
        .post(
            "triage-key",
            &path,
            json!({"message": {"content": " \u{200b}\n", "mentions": [{"handle": "bob"}]}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("can't be blank"),
        "{v}"
    );

    let (s, _) = env
        .post(
            "triage-key",
            &path,
            json!({"message": {"content": "x", "mentions": []}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "mentions required");
    let (s, _) = env
        .post(
            "triage-key",
            &path,
            json!({"message": {"content": "x", "mentions": [{"name": "bob"}]}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "id or handle required");
    let big = "a".repeat(512 * 1024 + 1);
    let (s, _) = env
        .post(
            "triage-key",
            &path,
            json!({"message": {"content": big, "mentions": [{"handle": "bob"}]}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "too long");

    // Malformed JSON: the error body, not a crash.
    let resp = env
        .http
        .post(format!("{}{path}", env.base))
        .header("X-API-Key", "triage-key")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&resp.json::<Value>().await.unwrap(), "validation_error");

    // A good one, with a reference that is not a recipient.
    let (s, v) = env
        .post("triage-key", &path, json!({"message": {"content": "see alice", "mentions": [{"handle": "bob"}, {"handle": "alice", "kind": "reference"}]}}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["data"]["recipients"].as_array().unwrap().len(), 1);

    // Events are stored with their type and never delivered.
    let (s, v) = env
        .post(
            "triage-key",
            &format!("/api/v1/agent/chats/{room}/events"),
            json!({"event": {"content": "thinking", "message_type": "thought"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["data"]["message_type"], "thought");
    let (s, _) = env
        .post(
            "triage-key",
            &format!("/api/v1/agent/chats/{room}/events"),
            json!({"event": {"content": "x", "message_type": "text"}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, v) = env
        .get("triage-key", &format!("/api/v1/agent/chats/{room}/context"))
        .await;
    assert_eq!(
        v["data"].as_array().unwrap().len(),
        2,
        "context has what it sent, events included"
    );

    // Not a participant: 404.
    let (s, _) = env
        .post(
            "billing-key",
            &path,
            json!({"message": {"content": "x", "mentions": [{"handle": "bob"}]}}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn participants_add_remove_with_roles() {
    let env = start().await;
    let room = env.support().await;
    let triage = env.id("alice/triage-bot").await;
    let billing = env.id("alice/billing-agent").await;
    let carol = env.id("carol").await;
    let path = format!("/api/v1/me/chats/{room}/participants");

    let (s, v) = env.delete("bob-key", &format!("{path}/{triage}")).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "members cannot remove others");
    assert_error(&v, "forbidden");
    let (s, _) = env
        .post(
            "bob-key",
            &path,
            json!({"participant": {"participant_id": carol, "role": "admin"}}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "members cannot grant admin");

    // The agent recruits a sibling agent as a member.
    let (s, v) = env
        .post(
            "triage-key",
            &format!("/api/v1/agent/chats/{room}/participants"),
            json!({"participant": {"participant_id": billing}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["data"]["role"], "member");
    assert_eq!(v["data"]["type"], "Agent");
    let (_, v) = env.get("billing-key", "/api/v1/agent/chats").await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    let (s, _) = env
        .post(
            "triage-key",
            &format!("/api/v1/agent/chats/{room}/participants"),
            json!({"participant": {"participant_id": billing}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "already there");

    let (s, _) = env
        .delete(
            "triage-key",
            &format!("/api/v1/agent/chats/{room}/participants/{billing}"),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = env.delete("alice-key", &format!("{path}/{billing}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["id"], billing.as_str());
    let (_, v) = env.get("alice-key", &path).await;
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&billing.as_str()));
    assert_eq!(ids.len(), 3);
    let (s, _) = env
        .get("billing-key", &format!("/api/v1/agent/chats/{room}"))
        .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "rooms the agent is not in are 404"
    );

    // Peers: not_in_chat leaves room members out.
    let (_, v) = env
        .get(
            "triage-key",
            &format!("/api/v1/agent/peers?not_in_chat={room}"),
        )
        .await;
    let handles: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["handle"].as_str().unwrap())
        .collect();
    assert!(
        handles.contains(&"alice/billing-agent") && handles.contains(&"carol"),
        "{handles:?}"
    );
    assert!(
        !handles.contains(&"bob") && !handles.contains(&"alice"),
        "{handles:?}"
    );
}

#[tokio::test]
async fn contacts_state_machine() {
    let env = start().await;
    // Human side: bob → carol.
    let (s, v) = env
        .post(
            "bob-key",
            "/api/v1/me/contacts/requests",
            json!({"contact_request": {"recipient_handle": "@carol", "message": "hi"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["data"]["status"], "pending");
    let req = v["data"]["id"].as_str().unwrap().to_string();
    let (s, v) = env
        .post(
            "bob-key",
            "/api/v1/me/contacts/requests",
            json!({"contact_request": {"recipient_handle": "carol"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "duplicate pending");
    assert_error(&v, "conflict");
    let (s, _) = env
        .post(
            "bob-key",
            "/api/v1/me/contacts/requests",
            json!({"contact_request": {"recipient_handle": "bob"}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "to yourself");
    let (s, _) = env
        .post(
            "bob-key",
            "/api/v1/me/contacts/requests",
            json!({"contact_request": {"recipient_handle": "nobody"}}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (_, v) = env.get("carol-key", "/api/v1/me/contacts/requests").await;
    assert_eq!(v["data"][0]["id"], req.as_str());
    assert_eq!(v["data"][0]["requester"]["handle"], "bob");
    let (s, _) = env
        .post(
            "bob-key",
            &format!("/api/v1/me/contacts/requests/{req}/approve"),
            json!(null),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "only the recipient approves");
    let (s, v) = env
        .post(
            "carol-key",
            &format!("/api/v1/me/contacts/requests/{req}/approve"),
            json!(null),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"], json!({"id": req, "status": "approved"}));
    let (s, _) = env
        .post(
            "carol-key",
            &format!("/api/v1/me/contacts/requests/{req}/reject"),
            json!(null),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "terminal");
    for (key, other) in [("bob-key", "carol"), ("carol-key", "bob")] {
        let (_, v) = env.get(key, "/api/v1/me/contacts").await;
        assert_eq!(v["data"].as_array().unwrap().len(), 1, "{v}");
        assert_eq!(v["data"][0]["handle"], other);
    }

    // Agent side: triage → bob, then cancel.
    let (s, v) = env
        .post(
            "triage-key",
            "/api/v1/agent/contacts/add",
            json!({"handle": "bob"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["status"], "pending");
    let (_, v) = env
        .get("triage-key", "/api/v1/agent/contacts/requests")
        .await;
    assert_eq!(v["data"]["sent"][0]["to_handle"], "bob");
    let (s, v) = env
        .post(
            "triage-key",
            "/api/v1/agent/contacts/requests/respond",
            json!({"action": "cancel", "handle": "bob"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["status"], "cancelled");
    let (s, _) = env
        .post(
            "triage-key",
            "/api/v1/agent/contacts/requests/respond",
            json!({"action": "cancel", "handle": "bob"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);

    // Inverse pending request auto-approves; contacts both ways.
    let (_, v) = env
        .post(
            "billing-key",
            "/api/v1/agent/contacts/add",
            json!({"handle": "alice/faq-bot", "message": "hello"}),
        )
        .await;
    assert_eq!(v["data"]["status"], "pending");
    let (_, v) = env.get("faq-key", "/api/v1/agent/contacts/requests").await;
    assert_eq!(
        v["data"]["received"][0]["from_handle"],
        "alice/billing-agent"
    );
    let (s, v) = env
        .post(
            "faq-key",
            "/api/v1/agent/contacts/add",
            json!({"handle": "@alice/billing-agent"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["status"], "approved");
    let (_, v) = env.get("billing-key", "/api/v1/agent/contacts").await;
    assert_eq!(v["data"][0]["handle"], "alice/faq-bot");
    let (s, v) = env
        .post(
            "faq-key",
            "/api/v1/agent/contacts/remove",
            json!({"handle": "alice/billing-agent"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["status"], "removed");
    let (_, v) = env.get("billing-key", "/api/v1/agent/contacts").await;
    assert_eq!(v["data"].as_array().unwrap().len(), 0);
    let (s, _) = env
        .post("faq-key", "/api/v1/agent/contacts/remove", json!({}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn faults_fail_then_recover() {
    let env = start().await;
    let (s, _, _) = env
        .call(Method::POST, None, "/_sandbox/faults", Some(json!({"fail": {"method": "GET", "path": "/agent/me", "status": 503, "count": 2, "retry_after": 1}})))
        .await;
    assert_eq!(s, StatusCode::OK);
    for _ in 0..2 {
        let (s, h, v) = env
            .call(Method::GET, Some("triage-key"), "/api/v1/agent/me", None)
            .await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(h.get("retry-after").unwrap(), "1");
        assert_error(&v, "service_unavailable");
    }
    let (s, _) = env.get("triage-key", "/api/v1/agent/me").await;
    assert_eq!(s, StatusCode::OK);
    let (_, _, v) = env.call(Method::GET, None, "/_sandbox/faults", None).await;
    assert_eq!(v["armed"]["fail"].as_array().unwrap().len(), 0);
    assert_eq!(v["fired"].as_array().unwrap().len(), 2);

    // Delay applies, then clear removes what is armed.
    env.call(
        Method::POST,
        None,
        "/_sandbox/faults",
        Some(
            json!({"delay": {"path": "/agent/me", "ms": 300, "count": 5}, "heartbeats": "ignore"}),
        ),
    )
    .await;
    let t = std::time::Instant::now();
    env.get("triage-key", "/api/v1/agent/me").await;
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert!(env.sb.hub().heartbeats_ignored());
    let (_, _, v) = env
        .call(
            Method::POST,
            None,
            "/_sandbox/faults",
            Some(json!({"clear": true})),
        )
        .await;
    assert_eq!(v["armed"]["delay"].as_array().unwrap().len(), 0);
    assert!(!env.sb.hub().heartbeats_ignored());
    let (s, _, _) = env
        .call(
            Method::POST,
            None,
            "/_sandbox/faults",
            Some(json!({"bogus": 1})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn reset_and_unknown_paths() {
    let env = start().await;
    let room = env.support().await;
    let (s, _) = env
        .post(
            "alice-key",
            "/api/v1/me/chats",
            json!({"chat": {"title": "Scratch"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    env.post(
        "alice-key",
        &format!("/api/v1/me/chats/{room}/messages"),
        json!({"message": {"content": "x", "mentions": [{"handle": "bob"}]}}),
    )
    .await;
    let st = env.state().await;
    assert_eq!(st["rooms"].as_array().unwrap().len(), 2);
    assert_eq!(st["messages"].as_array().unwrap().len(), 1);
    assert!(st["connections"].is_array());

    let (s, _, _) = env.call(Method::POST, None, "/_sandbox/reset", None).await;
    assert_eq!(s, StatusCode::OK);
    let st = env.state().await;
    assert_eq!(st["rooms"].as_array().unwrap().len(), 1);
    assert_eq!(st["rooms"][0]["id"], room.as_str(), "ids survive a reset");
    assert_eq!(st["messages"].as_array().unwrap().len(), 0);
    assert_eq!(st["contacts"].as_array().unwrap().len(), 1);

    for path in [
        "/api/v1/agent/nope",
        &format!("/api/v1/agent/chats/{room}/tasks"),
        "/api/v1/agent/memories",
        "/whatever",
    ] {
        let (s, v) = env.get("triage-key", path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
        assert_error(&v, "not_found");
    }
    let (s, _, v) = env
        .call(Method::PATCH, Some("triage-key"), "/api/v1/agent/me", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_error(&v, "not_found");
}

#[tokio::test]
async fn seed_errors_carry_line_and_column() {
    let err = parse_seed(
        "users:\n  - handle: alice\n    api_key: k\n    colour: red\n",
        "x.yaml",
    )
    .unwrap_err();
    let SeedError::Invalid {
        line,
        column,
        ref origin,
        ..
    } = err
    else {
        panic!("{err}")
    };
    assert_eq!((origin.as_str(), line), ("x.yaml", 4), "{err}");
    assert!(column > 0, "{err}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.yaml");
    std::fs::write(
        &path,
        "users:\n  - handle: alice\n    api_key: k\ncontacts:\n  - [alice, ghost]\n",
    )
    .unwrap();
    let msg = load_seed(&path).unwrap_err().to_string();
    assert!(msg.contains(&format!("--> {}:5:", path.display())), "{msg}");
    assert!(msg.contains("ghost"), "{msg}");

    let ok = parse_seed("users:\n  - handle: a\n    api_key: k\n", "y").unwrap();
    assert!(Sandbox::new(ok).is_ok());
}

#[tokio::test]
async fn seed_errors_are_all_reported_with_a_caret_and_a_suggestion() {
    // Every misspelt key at once, each with its line, a caret and the key meant.
    let keys = "users:\n  - handle: alice\n    api_key: k\n    nmae: Alice\n  - handle: bob\n    api_kye: k2\nromos: []\n";
    let msg = parse_seed(keys, "s.yaml").unwrap_err().to_string();
    for expected in [
        "error: unknown key `nmae` in a user\n  --> s.yaml:4:5\n  |\n4 |     nmae: Alice\n  |     ^ did you mean `name`?\n",
        "error: unknown key `api_kye` in a user\n  --> s.yaml:6:5\n",
        "did you mean `api_key`?",
        "error: unknown key `romos` in the seed\n  --> s.yaml:7:1\n",
        "did you mean `rooms`?",
    ] {
        assert!(msg.contains(expected), "missing {expected:?} in:\n{msg}");
    }
    // Every dangling or duplicate handle at once, too.
    let handles = "users:\n  - handle: alice\n    api_key: k\n  - handle: alice\n    api_key: k2\nrooms:\n  - owner: alcie\n    participants: [zed]\ncontacts:\n  - [alice, ghost]\n";
    let msg = parse_seed(handles, "s.yaml").unwrap_err().to_string();
    for expected in [
        "duplicate user handle \"alice\"\n  --> s.yaml:4:13\n",
        "unknown handle \"alcie\"\n  --> s.yaml:7:12\n",
        "did you mean `alice`?",
        "unknown handle \"zed\"\n  --> s.yaml:8:20\n",
        "unknown handle \"ghost\"\n  --> s.yaml:10:13\n",
    ] {
        assert!(msg.contains(expected), "missing {expected:?} in:\n{msg}");
    }
}

/// Drains pushes already queued for a connection, checking each against the
/// client's validator, and returns (topic, event, payload).
fn drain(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<ConnCommand>,
) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    while let Ok(cmd) = rx.try_recv() {
        if let ConnCommand::Push {
            topic,
            event,
            payload,
        } = cmd
        {
            band_wire::events::Event::decode(&event, payload.clone())
                .unwrap_or_else(|e| panic!("{event} payload fails validation: {e:?} {payload}"));
            out.push((topic, event, payload));
        }
    }
    out
}

#[tokio::test]
async fn socket_pushes_and_join_rules() {
    use band_sandbox::hub::SocketBackend;
    let env = start().await;
    let room = env.support().await;
    let triage = env.id("alice/triage-bot").await;
    let billing = env.id("alice/billing-agent").await;
    let carol = env.id("carol").await;
    let sb = env.sb.clone();

    let agent = |id: &str| Principal {
        id: id.to_string(),
        kind: EntityType::Agent,
    };
    let user = |id: &str| Principal {
        id: id.to_string(),
        kind: EntityType::User,
    };
    assert_eq!(sb.authenticate("billing-key"), Some(agent(&billing)));
    assert!(sb.authenticate("wrong").is_none());
    assert_eq!(
        sb.can_join(&agent(&triage), &format!("agent_rooms:{triage}")),
        Ok(json!({}))
    );
    // (who, topic, may join)
    let joins = [
        (agent(&triage), format!("agent_rooms:{billing}"), false),
        (agent(&triage), format!("chat_room:{room}"), true),
        (agent(&billing), format!("chat_room:{room}"), false),
        (user(&carol), format!("room_participants:{room}"), false),
        (user(&carol), format!("user_contacts:{carol}"), true),
        (user(&carol), format!("agent_rooms:{carol}"), false),
        (agent(&triage), "tasks:x".to_string(), false),
    ];
    for (who, topic, allowed) in joins {
        assert_eq!(sb.can_join(&who, &topic).is_ok(), allowed, "{topic}");
    }

    let (bc, mut brx) = sb.hub().register(agent(&billing));
    for t in [
        format!("agent_rooms:{billing}"),
        format!("agent_contacts:{billing}"),
    ] {
        sb.hub().joined(bc, &t);
    }
    let (tc, mut trx) = sb.hub().register(agent(&triage));
    for t in [
        format!("room_participants:{room}"),
        format!("agent_contacts:{triage}"),
    ] {
        sb.hub().joined(tc, &t);
    }
    let (cc, mut crx) = sb.hub().register(user(&carol));
    sb.hub().joined(cc, &format!("user_contacts:{carol}"));

    // Adding billing: room_added to it, participant_added to the room.
    env.post(
        "triage-key",
        &format!("/api/v1/agent/chats/{room}/participants"),
        json!({"participant": {"participant_id": billing}}),
    )
    .await;
    let got = drain(&mut brx);
    assert!(
        got.iter()
            .any(|(t, e, p)| t == &format!("agent_rooms:{billing}")
                && e == "room_added"
                && p["id"] == room.as_str()),
        "{got:?}"
    );
    let got = drain(&mut trx);
    assert!(
        got.iter()
            .any(|(_, e, p)| e == "participant_added" && p["id"] == billing.as_str()),
        "{got:?}"
    );
    sb.hub().joined(bc, &format!("chat_room:{room}"));

    // Removing it: participant_removed, room_removed, and its room topics are left.
    env.delete(
        "alice-key",
        &format!("/api/v1/me/chats/{room}/participants/{billing}"),
    )
    .await;
    let got = drain(&mut trx);
    assert!(
        got.iter()
            .any(|(_, e, p)| e == "participant_removed" && p["id"] == billing.as_str()),
        "{got:?}"
    );
    let got = drain(&mut brx);
    assert!(got.iter().any(|(_, e, _)| e == "room_removed"), "{got:?}");
    let topics = sb
        .hub()
        .connections()
        .into_iter()
        .find(|(p, _)| p.id == billing)
        .unwrap()
        .1;
    assert!(!topics.contains(&format!("chat_room:{room}")), "{topics:?}");

    // Contacts: agent → user request, approve: received, updated, added both sides.
    env.post(
        "triage-key",
        "/api/v1/agent/contacts/add",
        json!({"handle": "carol", "message": "hi"}),
    )
    .await;
    let got = drain(&mut crx);
    let (_, e, p) = &got[0];
    assert_eq!(e, "contact_request_received");
    assert_eq!(p["requester"]["handle"], "alice/triage-bot");
    let req = p["id"].as_str().unwrap().to_string();
    env.post(
        "carol-key",
        &format!("/api/v1/me/contacts/requests/{req}/approve"),
        json!(null),
    )
    .await;
    let got = drain(&mut trx);
    assert!(
        got.iter()
            .any(|(_, e, p)| e == "contact_request_updated" && p["status"] == "approved"),
        "{got:?}"
    );
    assert!(
        got.iter().any(|(_, e, p)| e == "contact_added"
            && p["id"] == carol.as_str()
            && p["handle"] == "carol"),
        "{got:?}"
    );
    let got = drain(&mut crx);
    assert!(
        got.iter()
            .any(|(_, e, p)| e == "contact_added" && p["id"] == triage.as_str()),
        "{got:?}"
    );

    // An agent-side received push is the compact flat form.
    env.post(
        "carol-key",
        "/api/v1/me/contacts/requests",
        json!({"contact_request": {"recipient_handle": "alice/billing-agent"}}),
    )
    .await;
    let got = drain(&mut brx);
    let (_, e, p) = &got[0];
    assert_eq!(e, "contact_request_received");
    assert_eq!(p["from_handle"], "carol");
    assert!(p.get("message").is_none(), "no null keys: {p}");
    assert!(sb.hub().is_connected(&carol));
}

/// `POST /_sandbox/control`: STOP, PLAY and INTERRUPT as the platform's UI
/// sends them, the `agent.control` pushes, and a stopped room's answers.
#[tokio::test]
async fn control_stops_and_resumes_an_agent_in_a_room() {
    let env = start().await;
    let room = env.support().await;
    let triage = env.id("alice/triage-bot").await;
    let sb = env.sb.clone();
    let me = Principal {
        id: triage.clone(),
        kind: EntityType::Agent,
    };
    let (conn, mut rx) = sb.hub().register(me);
    sb.hub().joined(conn, &format!("agent_control:{triage}"));
    let control = |body: Value| env.call(Method::POST, None, "/_sandbox/control", Some(body));
    let chat = format!("/api/v1/agent/chats/{room}");

    let (s, v) = env
        .post(
            "bob-key",
            &format!("/api/v1/me/chats/{room}/messages"),
            json!({"message": {"content": "hi", "mentions": [{"id": triage}]}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let msg = v["data"]["id"].as_str().unwrap().to_string();

    // STOP in one room: pushed on agent_control, shown in the state.
    let (s, _, v) = control(json!({"agent": triage, "mode": "stop", "room": room})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let pushes = drain(&mut rx);
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    let (topic, event, p) = &pushes[0];
    assert_eq!(topic, &format!("agent_control:{triage}"));
    assert_eq!(event, "agent.control");
    assert_eq!(p["mode"], "stop");
    assert_eq!(p["scope"], "room");
    assert_eq!(p["agent_id"], triage.as_str());
    assert_eq!(p["room_id"], room.as_str());
    assert!(
        p["correlation_id"].as_str().is_some_and(|c| !c.is_empty()),
        "{p}"
    );
    assert_eq!(env.state().await["stopped"][&triage], json!([room]));

    // While stopped: /next offers nothing, /processing is 204 and changes
    // nothing, posts are 403 "execution is stopped", activity echoes false.
    let (s, _, _) = env
        .call(
            Method::GET,
            Some("triage-key"),
            &format!("{chat}/messages/next"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, v) = env
        .call(
            Method::POST,
            Some("triage-key"),
            &format!("{chat}/messages/{msg}/processing"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let st = env.state().await;
    let m = st["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == msg.as_str())
        .unwrap();
    assert_eq!(m["delivery"][&triage]["status"], "delivered");
    let (s, v) = env
        .post(
            "triage-key",
            &format!("{chat}/messages"),
            json!({"message": {"content": "reply", "mentions": [{"handle": "bob"}]}}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_error(&v, "forbidden");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("execution is stopped"),
        "{v}"
    );
    let (s, v) = env
        .post(
            "triage-key",
            &format!("{chat}/events"),
            json!({"event": {"content": "thinking", "message_type": "thought"}}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("execution is stopped"),
        "{v}"
    );
    let (s, v) = env
        .post(
            "triage-key",
            &format!("{chat}/activity"),
            json!({"working": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["working"], false);
    // People still talk in the room.
    let (s, v) = env
        .post(
            "bob-key",
            &format!("/api/v1/me/chats/{room}/messages"),
            json!({"message": {"content": "still there?", "mentions": [{"id": triage}]}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    // PLAY for every room of the agent lifts all of it.
    let (s, _, v) = control(json!({"agent": triage, "mode": "play", "room": null})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let pushes = drain(&mut rx);
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert_eq!(pushes[0].2["mode"], "play");
    assert_eq!(pushes[0].2["scope"], "agent");
    assert_eq!(pushes[0].2["room_id"], Value::Null);
    assert!(env.state().await["stopped"].get(&triage).is_none());
    let (s, v) = env
        .get("triage-key", &format!("{chat}/messages/next"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["id"], msg.as_str());
    let (s, v) = env
        .post(
            "triage-key",
            &format!("{chat}/messages/{msg}/processing"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["status"], "processing");

    // STOP for the agent stops every room it is in; correlation ids are fresh.
    let (s, _, _) = control(json!({"agent": triage, "mode": "stop"})).await;
    assert_eq!(s, StatusCode::OK);
    let stopped = env.state().await["stopped"][&triage].clone();
    assert!(
        stopped.as_array().unwrap().contains(&json!(room)),
        "{stopped}"
    );
    // A silent PLAY (as if its push were lost) lifts the stop without a push.
    let (s, _, _) =
        control(json!({"agent": triage, "mode": "play", "room": room, "push": false})).await;
    assert_eq!(s, StatusCode::OK);
    let pushes = drain(&mut rx);
    assert_eq!(pushes.len(), 1, "only the STOP was pushed: {pushes:?}");
    assert_eq!(pushes[0].2["scope"], "agent");
    let stopped = env.state().await["stopped"][&triage].clone();
    assert!(
        stopped.as_array().is_none_or(|r| !r.contains(&json!(room))),
        "{stopped}"
    );
    // INTERRUPT is pushed and stops nothing.
    let (s, _, _) = control(json!({"agent": triage, "mode": "interrupt", "room": room})).await;
    assert_eq!(s, StatusCode::OK);
    let pushes = drain(&mut rx);
    assert_eq!(pushes[0].2["mode"], "interrupt");
    let (s, _) = env
        .get("triage-key", &format!("{chat}/messages/next"))
        .await;
    assert_eq!(s, StatusCode::OK);

    // Bad requests say what is wrong.
    let bob = env.id("bob").await;
    for (body, status) in [
        (
            json!({"agent": "nobody", "mode": "stop"}),
            StatusCode::NOT_FOUND,
        ),
        (json!({"agent": bob, "mode": "stop"}), StatusCode::NOT_FOUND),
        (
            json!({"agent": triage, "mode": "pause"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"agent": triage, "mode": "stop", "room": "nowhere"}),
            StatusCode::NOT_FOUND,
        ),
        (json!({"mode": "stop"}), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let (s, _, v) = control(body.clone()).await;
        assert_eq!(s, status, "{body}: {v}");
        assert!(v["error"]["message"].is_string(), "{v}");
    }
    // Reset forgets every stop.
    control(json!({"agent": triage, "mode": "stop", "room": room})).await;
    env.call(Method::POST, None, "/_sandbox/reset", None).await;
    assert_eq!(env.state().await["stopped"], json!({}));
}

/// A body over 2 MiB is refused with 413 and the platform's JSON error body,
/// on the agent API and on the human API alike; one at the limit is not.
#[tokio::test]
async fn oversized_bodies_get_413_with_the_json_error_body() {
    let env = start().await;
    let room = env.support().await;
    let limit = 2 * 1024 * 1024;
    let body_of = |len: usize| {
        let frame = json!({"message": {"content": "", "mentions": []}}).to_string();
        let pad = "x".repeat(len - frame.len());
        json!({"message": {"content": pad, "mentions": []}})
            .to_string()
            .into_bytes()
    };
    for (key, api) in [("triage-key", "agent"), ("bob-key", "me")] {
        let path = format!("/api/v1/{api}/chats/{room}/messages");
        let (s, ct, v) = env
            .raw(
                Method::POST,
                key,
                &path,
                Some("application/json"),
                body_of(limit + 1),
            )
            .await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{api}: {v}");
        assert!(ct.starts_with("application/json"), "{api}: {ct}");
        assert_error(&v, "payload_too_large");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("2 MiB"),
            "{v}"
        );
        // At the limit the body is read (and judged on its content: no mentions).
        let (s, _, v) = env
            .raw(
                Method::POST,
                key,
                &path,
                Some("application/json"),
                body_of(limit),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{api}: {v}");
    }
}

/// A JSON body is read only when it says `application/json` (parameters such
/// as charset allowed, any letter case); any other type, or none, is a 415
/// with the JSON error body. A request without a body needs no type.
#[tokio::test]
async fn json_bodies_need_the_application_json_content_type() {
    let env = start().await;
    let room = env.support().await;
    let triage = env.id("alice/triage-bot").await;
    let chat = json!({"chat": {"title": "typed"}}).to_string().into_bytes();
    for (key, api) in [("triage-key", "agent"), ("bob-key", "me")] {
        let path = format!("/api/v1/{api}/chats");
        for ct in [
            Some("text/plain"),
            Some("application/vnd.api+json"),
            Some("application/x-www-form-urlencoded"),
            Some("text/json"),
            None,
        ] {
            let (s, rct, v) = env.raw(Method::POST, key, &path, ct, chat.clone()).await;
            assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{api} {ct:?}: {v}");
            assert!(rct.starts_with("application/json"), "{api}: {rct}");
            assert_error(&v, "unsupported_media_type");
        }
        for ct in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON;charset=UTF-8",
        ] {
            let (s, _, v) = env
                .raw(Method::POST, key, &path, Some(ct), chat.clone())
                .await;
            assert_eq!(s, StatusCode::CREATED, "{api} {ct}: {v}");
        }
    }
    // No body, no content type: fine (lifecycle calls send nothing).
    let (s, v) = env
        .post(
            "bob-key",
            &format!("/api/v1/me/chats/{room}/messages"),
            json!({"message": {"content": "@alice/triage-bot hi", "mentions": [{"id": triage}]}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let msg = v["data"]["id"].as_str().unwrap().to_string();
    let (s, _, v) = env
        .raw(
            Method::POST,
            "triage-key",
            &format!("/api/v1/agent/chats/{room}/messages/{msg}/processing"),
            None,
            Vec::new(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

/// The human API answers a query parameter its route does not declare with
/// 422 `validation_error`, one `Unexpected field` detail per name (after
/// auth); the agent API ignores parameters it does not know.
#[tokio::test]
async fn human_api_refuses_undeclared_query_parameters() {
    let env = start().await;
    let room = env.support().await;
    let (s, v) = env
        .get("bob-key", "/api/v1/me/chats?limit=5&bogus=1&zz=2&bogus=3")
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_error(&v, "validation_error");
    assert_eq!(
        v["error"]["details"],
        json!({"/bogus": ["Unexpected field: bogus"], "/zz": ["Unexpected field: zz"]})
    );
    for path in [
        "/api/v1/me/profile?verbose=true".to_string(),
        format!("/api/v1/me/chats/{room}/messages?sort_order=asc"),
        "/api/v1/me/contacts/requests?status=pending".to_string(),
    ] {
        let (s, v) = env.get("bob-key", &path).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {v}");
        assert_error(&v, "validation_error");
    }
    let (s, v) = env
        .post(
            "bob-key",
            "/api/v1/me/contacts/resolve?x=1",
            json!({"handle": "carol"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // Auth comes first.
    let (s, v) = env.get("nope", "/api/v1/me/chats?bogus=1").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    // Declared parameters pass.
    for path in [
        "/api/v1/me/chats?limit=5&order=asc&include=participants".to_string(),
        format!("/api/v1/me/chats/{room}/messages?limit=5&message_types=text"),
        format!("/api/v1/me/chats/{room}/participants?participant_type=Agent&limit=5"),
        "/api/v1/me/contacts/requests/sent?status=pending&page=1&page_size=5".to_string(),
        "/api/v1/me/peers?type=Agent&page=1".to_string(),
    ] {
        let (s, v) = env.get("bob-key", &path).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
    }
    // The agent API: unknown parameters are ignored.
    let (s, v) = env
        .get("triage-key", "/api/v1/agent/chats?bogus=1&page=1")
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

/// Connections of `ids` (agents or users), each joined to its own contacts
/// topic, as the socket endpoint would register them.
fn contact_listeners(
    sb: &Sandbox,
    who: &[Principal],
) -> Vec<tokio::sync::mpsc::UnboundedReceiver<ConnCommand>> {
    who.iter()
        .map(|p| {
            let (conn, rx) = sb.hub().register(p.clone());
            let topic = match p.kind {
                EntityType::Agent => format!("agent_contacts:{}", p.id),
                EntityType::User => format!("user_contacts:{}", p.id),
            };
            sb.hub().joined(conn, &topic);
            rx
        })
        .collect()
}

/// The `contact_request_updated` pushes in `got`, as (topic, payload).
fn updates(got: Vec<(String, String, Value)>) -> Vec<(String, Value)> {
    got.into_iter()
        .filter(|(_, e, _)| e == "contact_request_updated")
        .map(|(t, _, p)| (t, p))
        .collect()
}

/// `contact_request_updated` (`{id, status}` only) reaches the requester and
/// the recipient, each on its own contacts topic, when a request is
/// approved, rejected or cancelled, on either API.
#[tokio::test]
async fn contact_request_updated_reaches_both_parties() {
    let env = start().await;
    let agent = |id: String| Principal {
        id,
        kind: EntityType::Agent,
    };
    let user = |id: String| Principal {
        id,
        kind: EntityType::User,
    };
    let bob = user(env.id("bob").await);
    let carol = user(env.id("carol").await);
    let triage = agent(env.id("alice/triage-bot").await);
    let mut rx = contact_listeners(&env.sb, &[bob.clone(), carol.clone(), triage.clone()]);

    let topic = |p: &Principal| match p.kind {
        EntityType::Agent => format!("agent_contacts:{}", p.id),
        EntityType::User => format!("user_contacts:{}", p.id),
    };
    // (requester key, recipient handle, answering key, how, status, requester index, recipient index)
    struct Case {
        from_key: &'static str,
        to_handle: &'static str,
        by_key: &'static str,
        how: &'static str,
        status: &'static str,
        from: usize,
        to: usize,
    }
    let cases = [
        Case {
            from_key: "bob-key",
            to_handle: "carol",
            by_key: "carol-key",
            how: "reject",
            status: "rejected",
            from: 0,
            to: 1,
        },
        Case {
            from_key: "bob-key",
            to_handle: "carol",
            by_key: "bob-key",
            how: "cancel",
            status: "cancelled",
            from: 0,
            to: 1,
        },
        Case {
            from_key: "triage-key",
            to_handle: "bob",
            by_key: "bob-key",
            how: "reject",
            status: "rejected",
            from: 2,
            to: 0,
        },
        Case {
            from_key: "bob-key",
            to_handle: "alice/triage-bot",
            by_key: "bob-key",
            how: "cancel",
            status: "cancelled",
            from: 0,
            to: 2,
        },
        Case {
            from_key: "carol-key",
            to_handle: "alice/triage-bot",
            by_key: "triage-key",
            how: "reject",
            status: "rejected",
            from: 1,
            to: 2,
        },
        Case {
            from_key: "bob-key",
            to_handle: "carol",
            by_key: "carol-key",
            how: "approve",
            status: "approved",
            from: 0,
            to: 1,
        },
        Case {
            from_key: "triage-key",
            to_handle: "carol",
            by_key: "triage-key",
            how: "cancel",
            status: "cancelled",
            from: 2,
            to: 1,
        },
        Case {
            from_key: "carol-key",
            to_handle: "alice/triage-bot",
            by_key: "triage-key",
            how: "approve",
            status: "approved",
            from: 1,
            to: 2,
        },
    ];
    let who = [bob, carol, triage];
    for c in cases {
        let (s, v) = if c.from_key == "triage-key" {
            env.post(
                c.from_key,
                "/api/v1/agent/contacts/add",
                json!({"handle": c.to_handle}),
            )
            .await
        } else {
            env.post(
                c.from_key,
                "/api/v1/me/contacts/requests",
                json!({"contact_request": {"recipient_handle": c.to_handle}}),
            )
            .await
        };
        assert!(s.is_success(), "{v}");
        let req = v["data"]["id"].as_str().unwrap().to_string();
        for r in rx.iter_mut() {
            drain(r);
        }
        let (s, v) = if c.by_key == "triage-key" {
            env.post(
                c.by_key,
                "/api/v1/agent/contacts/requests/respond",
                json!({"action": c.how, "request_id": req}),
            )
            .await
        } else if c.how == "cancel" {
            env.delete(c.by_key, &format!("/api/v1/me/contacts/requests/{req}"))
                .await
        } else {
            env.post(
                c.by_key,
                &format!("/api/v1/me/contacts/requests/{req}/{}", c.how),
                json!(null),
            )
            .await
        };
        assert_eq!(s, StatusCode::OK, "{} {}: {v}", c.how, c.to_handle);
        let want = json!({"id": req, "status": c.status});
        for (i, r) in rx.iter_mut().enumerate() {
            let got = updates(drain(r));
            if i == c.from || i == c.to {
                assert_eq!(
                    got,
                    vec![(topic(&who[i]), want.clone())],
                    "{} of a request to {}: party {i}",
                    c.how,
                    c.to_handle
                );
            } else {
                assert!(got.is_empty(), "a bystander hears nothing: {got:?}");
            }
        }
    }
}

/// The example seed with `extra` YAML appended at the top level.
fn example_seed_with(extra: &str) -> Result<band_sandbox::Seed, SeedError> {
    let text = include_str!("../../../../examples/sandbox-seed.yaml");
    parse_seed(&format!("{text}\n{extra}"), "seed.yaml")
}

/// The next `contact_request_updated` push on `rx`, waiting at most 5 s.
async fn next_update(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<ConnCommand>,
) -> (String, Value) {
    let wait = async {
        loop {
            match rx.recv().await {
                Some(ConnCommand::Push {
                    topic,
                    event,
                    payload,
                }) if event == "contact_request_updated" => {
                    band_wire::events::Event::decode(&event, payload.clone())
                        .unwrap_or_else(|e| panic!("invalid payload {payload}: {e:?}"));
                    return (topic, payload);
                }
                Some(_) => {}
                None => panic!("connection closed"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .expect("contact_request_updated within 5 s")
}

/// A pending request expires after the seed's `contact_request_expiry`:
/// status `expired`, `contact_request_updated` to both parties (without any
/// request to the sandbox), and it can no longer be approved (409).
#[tokio::test]
async fn pending_contact_requests_expire() {
    let env = start_with(example_seed_with("contact_request_expiry: 400ms").unwrap()).await;
    let bob = Principal {
        id: env.id("bob").await,
        kind: EntityType::User,
    };
    let triage = Principal {
        id: env.id("alice/triage-bot").await,
        kind: EntityType::Agent,
    };
    let mut rx = contact_listeners(&env.sb, &[bob.clone(), triage.clone()]);
    let (s, v) = env
        .post(
            "bob-key",
            "/api/v1/me/contacts/requests",
            json!({"contact_request": {"recipient_handle": "alice/triage-bot"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let req = v["data"]["id"].as_str().unwrap().to_string();
    let want = json!({"id": req, "status": "expired"});
    assert_eq!(
        next_update(&mut rx[0]).await,
        (format!("user_contacts:{}", bob.id), want.clone())
    );
    assert_eq!(
        next_update(&mut rx[1]).await,
        (format!("agent_contacts:{}", triage.id), want.clone())
    );

    let (s, v) = env
        .post(
            "triage-key",
            "/api/v1/agent/contacts/requests/respond",
            json!({"action": "approve", "request_id": req}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_error(&v, "conflict");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("expired"),
        "{v}"
    );
    let (s, _) = env
        .delete("bob-key", &format!("/api/v1/me/contacts/requests/{req}"))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (_, v) = env
        .get("bob-key", "/api/v1/me/contacts/requests/sent?status=all")
        .await;
    assert_eq!(v["data"][0]["status"], "expired", "{v}");
    assert!(v["data"][0]["responded_at"].is_string(), "{v}");
    let (_, v) = env
        .get("triage-key", "/api/v1/agent/contacts/requests")
        .await;
    assert_eq!(v["data"]["received"], json!([]), "{v}");
    // Expired is terminal, so a new request may be sent.
    let (s, v) = env
        .post(
            "bob-key",
            "/api/v1/me/contacts/requests",
            json!({"contact_request": {"recipient_handle": "alice/triage-bot"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["data"]["status"], "pending");
    assert_eq!(
        env.state().await["contact_requests"][0]["status"],
        "expired"
    );
}

/// `contact_request_expiry` is a duration (`ms`, `s`, `m`, `h`, `d`) above
/// zero; 30 days when absent.
#[tokio::test]
async fn contact_request_expiry_in_the_seed() {
    for bad in ["soon", "0s", "-3d", "10", "5 weeks"] {
        let err = example_seed_with(&format!("contact_request_expiry: {bad}"))
            .err()
            .unwrap_or_else(|| panic!("{bad} accepted"));
        let msg = err.to_string();
        assert!(msg.contains("--> seed.yaml:"), "{msg}");
        assert!(msg.contains("contact_request_expiry"), "{msg}");
    }
    let day = Duration::from_secs(24 * 3600);
    for (text, want) in [
        ("250ms", Duration::from_millis(250)),
        ("90s", Duration::from_secs(90)),
        ("15m", Duration::from_secs(900)),
        ("2h", Duration::from_secs(7200)),
        ("7d", 7 * day),
    ] {
        let seed = example_seed_with(&format!("contact_request_expiry: {text}")).unwrap();
        assert_eq!(seed.contact_request_expiry(), want, "{text}");
    }
    assert_eq!(default_seed().contact_request_expiry(), 30 * day);
}

/// A body sent in chunks, with no length up front, is cut off at 2 MiB too:
/// 413 with the JSON error body.
#[tokio::test]
async fn oversized_chunked_bodies_get_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = start().await;
    let room = env.support().await;
    let addr = env.base.trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/me/chats/{room}/messages HTTP/1.1\r\nHost: {addr}\r\n\
         X-API-Key: bob-key\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let talk = async {
        tcp.write_all(head.as_bytes()).await.unwrap();
        let chunk = vec![b' '; 64 * 1024];
        // 40 chunks of 64 KiB: 2.5 MiB. The server may answer before the end.
        for _ in 0..40 {
            let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
            frame.extend_from_slice(&chunk);
            frame.extend_from_slice(b"\r\n");
            if tcp.write_all(&frame).await.is_err() {
                break;
            }
        }
        let _ = tcp.write_all(b"0\r\n\r\n").await;
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).await.unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    };
    let answer = tokio::time::timeout(Duration::from_secs(10), talk)
        .await
        .expect("an answer within 10 s");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{answer}"
    );
    assert!(body.contains("payload_too_large"), "{answer}");
}
