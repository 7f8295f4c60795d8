//! A scriptable fake Phoenix Channels v2 server on 127.0.0.1 for socket client
//! tests: it answers heartbeats, joins, leaves and pushes by policy, records
//! every upgrade and inbound frame, and lets a test inject frames, close codes,
//! upgrade rejections and dropped connections.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use band_wire::frame::Frame;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// How the server answers `phx_join`.
#[derive(Debug, Clone)]
pub enum JoinPolicy {
    /// Reply ok with `{"joined": topic}`.
    Accept,
    /// Reply error with this reason.
    Refuse(String),
    /// Never reply.
    Ignore,
}

/// How to set the join_ref of an injected push.
#[derive(Debug, Clone, Copy)]
pub enum JoinRef {
    /// The topic's current join_ref on that connection.
    Current,
    /// A join_ref that is not (any longer) the current one.
    Stale,
    /// null, like a fast-lane broadcast.
    Null,
}

/// An upgrade rejection to serve to the next connection attempt.
#[derive(Debug, Clone)]
pub struct Reject {
    /// HTTP status.
    pub status: u16,
    /// Response body.
    pub body: String,
    /// `Retry-After` header value, if any.
    pub retry_after: Option<String>,
}

/// One upgrade request as the server saw it.
#[derive(Debug, Clone)]
pub struct Upgrade {
    /// When it arrived.
    pub at: Instant,
    /// Path and query.
    pub uri: String,
    /// Query parameters.
    pub query: HashMap<String, String>,
    /// Request headers, lower-case names.
    pub headers: HashMap<String, String>,
    /// Whether it was rejected.
    pub rejected: bool,
}

/// What the server knows and how it behaves; tests read it through `wait_until`/`with`.
pub struct State {
    /// Connections with an index below this ignore heartbeats.
    pub silent_heartbeats_below: usize,
    /// Ignore every heartbeat.
    pub ignore_all_heartbeats: bool,
    /// Join policy per topic; others use `default_join`.
    pub join_policy: HashMap<String, JoinPolicy>,
    /// Join policy for topics without their own.
    pub default_join: JoinPolicy,
    /// Rejections served to the next upgrades, in order.
    pub rejects: VecDeque<Reject>,
    /// Every upgrade attempt; its index is the connection index.
    pub upgrades: Vec<Upgrade>,
    /// Every inbound frame with its connection index.
    pub frames: Vec<(usize, Frame)>,
    /// Connection indexes whose client sent a close frame.
    pub closes_received: Vec<usize>,
    /// Current join_ref per connection and topic.
    pub join_refs: HashMap<(usize, String), String>,
    ctl: HashMap<usize, mpsc::UnboundedSender<Ctl>>,
}

impl State {
    /// Frames of one event name, with their connection index.
    pub fn frames_named(&self, event: &str) -> Vec<(usize, Frame)> {
        self.frames
            .iter()
            .filter(|(_, f)| f.event == event)
            .cloned()
            .collect()
    }

    /// `phx_join` frames for a topic, with their connection index.
    pub fn joins_of(&self, topic: &str) -> Vec<(usize, Frame)> {
        self.frames
            .iter()
            .filter(|(_, f)| f.event == "phx_join" && f.topic == topic)
            .cloned()
            .collect()
    }

    /// Accepted (not rejected) connections so far.
    pub fn accepted(&self) -> usize {
        self.upgrades.iter().filter(|u| !u.rejected).count()
    }
}

enum Ctl {
    Send(String),
    Close(u16, String),
    Drop,
}

/// The fake server; dropped with the test.
pub struct FakePhoenix {
    /// `ws://127.0.0.1:<port>/api/v1/socket/websocket`.
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FakePhoenix {
    /// Binds 127.0.0.1:0 and serves in the background.
    pub async fn start() -> FakePhoenix {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            silent_heartbeats_below: 0,
            ignore_all_heartbeats: false,
            join_policy: HashMap::new(),
            default_join: JoinPolicy::Accept,
            rejects: VecDeque::new(),
            upgrades: Vec::new(),
            frames: Vec::new(),
            closes_received: Vec::new(),
            join_refs: HashMap::new(),
            ctl: HashMap::new(),
        }));
        let st = state.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(serve(tcp, st.clone()));
            }
        });
        FakePhoenix {
            url: format!("ws://{addr}/api/v1/socket/websocket"),
            state,
        }
    }

    /// Locks the state (to script or inspect it).
    pub fn with(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Polls until `f` holds, panicking with `what` after 5 s.
    pub async fn wait_until(&self, what: &str, f: impl Fn(&State) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if f(&self.with()) {
                return;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting until {what}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Serves this rejection to the next upgrade attempt.
    pub fn reject_next(&self, status: u16, body: &str, retry_after: Option<&str>) {
        self.with().rejects.push_back(Reject {
            status,
            body: body.to_string(),
            retry_after: retry_after.map(str::to_string),
        });
    }

    /// Sets the join policy of one topic.
    pub fn set_join(&self, topic: &str, policy: JoinPolicy) {
        self.with().join_policy.insert(topic.to_string(), policy);
    }

    /// The current join_ref of `topic` on connection `conn`.
    pub fn join_ref(&self, conn: usize, topic: &str) -> Option<String> {
        self.with()
            .join_refs
            .get(&(conn, topic.to_string()))
            .cloned()
    }

    /// Sends raw text on connection `conn`.
    pub fn send_raw(&self, conn: usize, text: &str) {
        self.ctl(conn, Ctl::Send(text.to_string()));
    }

    /// Sends a frame on connection `conn`.
    pub fn send_frame(&self, conn: usize, frame: Frame) {
        self.send_raw(conn, &frame.encode());
    }

    /// Pushes a server event (ref null) with the chosen join_ref.
    pub fn push(&self, conn: usize, topic: &str, event: &str, payload: Value, jr: JoinRef) {
        let join_ref = match jr {
            JoinRef::Current => self.join_ref(conn, topic),
            JoinRef::Stale => Some("999999".to_string()),
            JoinRef::Null => None,
        };
        self.send_frame(conn, Frame::new(join_ref, None, topic, event, payload));
    }

    /// Sends `phx_error` for the topic's current join.
    pub fn phx_error(&self, conn: usize, topic: &str) {
        let jr = self.join_ref(conn, topic);
        self.send_frame(
            conn,
            Frame::new(
                jr.clone(),
                jr,
                topic,
                "phx_error",
                json!({"reason": "channel_crash"}),
            ),
        );
    }

    /// Sends `phx_close` for the topic's current join.
    pub fn phx_close(&self, conn: usize, topic: &str) {
        let jr = self.join_ref(conn, topic);
        self.send_frame(
            conn,
            Frame::new(jr.clone(), jr, topic, "phx_close", json!({})),
        );
    }

    /// Closes connection `conn` with a close frame.
    pub fn close(&self, conn: usize, code: u16, reason: &str) {
        self.ctl(conn, Ctl::Close(code, reason.to_string()));
    }

    /// Drops connection `conn`'s TCP stream with no close frame.
    pub fn drop_conn(&self, conn: usize) {
        self.ctl(conn, Ctl::Drop);
    }

    fn ctl(&self, conn: usize, c: Ctl) {
        let st = self.with();
        let tx = st.ctl.get(&conn).expect("no such live connection");
        let _ = tx.send(c);
    }
}

/// Handles one TCP connection: upgrade (or reject), then serve frames.
async fn serve(tcp: TcpStream, state: Arc<Mutex<State>>) {
    let st = state.clone();
    let index = Arc::new(Mutex::new(0usize));
    let idx = index.clone();
    // The error type is tungstenite's callback contract, not ours to shrink.
    #[allow(clippy::result_large_err)]
    let callback = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let mut s = st.lock().unwrap();
        let uri = req.uri().to_string();
        let query = req
            .uri()
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let headers = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let reject = s.rejects.pop_front();
        *idx.lock().unwrap() = s.upgrades.len();
        s.upgrades.push(Upgrade {
            at: Instant::now(),
            uri,
            query,
            headers,
            rejected: reject.is_some(),
        });
        match reject {
            None => Ok(resp),
            Some(r) => {
                let mut b = tokio_tungstenite::tungstenite::http::Response::builder()
                    .status(StatusCode::from_u16(r.status).unwrap())
                    .header("content-type", "application/json");
                if let Some(ra) = r.retry_after {
                    b = b.header("retry-after", ra);
                }
                Err(b.body(Some(r.body)).unwrap())
            }
        }
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
        return;
    };
    let conn = *index.lock().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    state.lock().unwrap().ctl.insert(conn, tx);

    loop {
        tokio::select! {
            msg = ws.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Close(_))) => {
                        state.lock().unwrap().closes_received.push(conn);
                        break;
                    }
                    Some(Ok(_)) => continue,
                    None | Some(Err(_)) => break,
                };
                let Ok(frame) = Frame::decode(&text) else { continue };
                let replies = answer(&state, conn, &frame);
                for r in replies {
                    if ws.send(Message::text(r.encode())).await.is_err() {
                        break;
                    }
                }
            }
            c = rx.recv() => match c {
                Some(Ctl::Send(t)) => {
                    let _ = ws.send(Message::text(t)).await;
                }
                Some(Ctl::Close(code, reason)) => {
                    let _ = ws
                        .send(Message::Close(Some(CloseFrame {
                            code: CloseCode::from(code),
                            reason: reason.into(),
                        })))
                        .await;
                    break;
                }
                Some(Ctl::Drop) | None => break,
            }
        }
    }
    state.lock().unwrap().ctl.remove(&conn);
}

/// Records an inbound frame and computes the server's replies.
fn answer(state: &Arc<Mutex<State>>, conn: usize, f: &Frame) -> Vec<Frame> {
    let mut s = state.lock().unwrap();
    s.frames.push((conn, f.clone()));
    let reply = |status: &str, response: Value| {
        Frame::new(
            f.join_ref.clone(),
            f.msg_ref.clone(),
            f.topic.clone(),
            "phx_reply",
            json!({"status": status, "response": response}),
        )
    };
    match f.event.as_str() {
        "heartbeat" => {
            if s.ignore_all_heartbeats || conn < s.silent_heartbeats_below {
                vec![]
            } else {
                vec![reply("ok", json!({}))]
            }
        }
        "phx_join" => {
            let policy = s
                .join_policy
                .get(&f.topic)
                .cloned()
                .unwrap_or_else(|| s.default_join.clone());
            match policy {
                JoinPolicy::Accept => {
                    if let Some(jr) = &f.join_ref {
                        s.join_refs.insert((conn, f.topic.clone()), jr.clone());
                    }
                    vec![reply("ok", json!({"joined": f.topic}))]
                }
                JoinPolicy::Refuse(reason) => vec![reply("error", json!({"reason": reason}))],
                JoinPolicy::Ignore => vec![],
            }
        }
        "phx_leave" => {
            s.join_refs.remove(&(conn, f.topic.clone()));
            let close = Frame::new(
                f.join_ref.clone(),
                f.join_ref.clone(),
                f.topic.clone(),
                "phx_close",
                json!({}),
            );
            vec![reply("ok", json!({})), close]
        }
        "noreply" => vec![],
        "fail" => vec![reply("error", json!({"reason": "nope"}))],
        _ => vec![reply("ok", json!({"echo": f.payload}))],
    }
}
