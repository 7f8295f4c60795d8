//! The sandbox's pub/sub: which socket connections exist, which topics each
//! has joined, and fan-out of pushes to them. The REST side publishes here;
//! `ws.rs` owns the sockets and adds each topic's current `join_ref`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use serde_json::Value;
use tokio::sync::mpsc;

use band_wire::model::EntityType;

/// Who is on the other end of a connection or a REST call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    /// User or agent id.
    pub id: String,
    /// User or Agent.
    pub kind: EntityType,
}

/// Which principals may receive a push on a topic they have joined.
#[derive(Debug, Clone)]
pub enum Audience {
    /// Everyone who joined the topic.
    All,
    /// Only these entity ids (e.g. the agents a message mentions, plus people).
    Only(HashSet<String>),
}

impl Audience {
    fn admits(&self, p: &Principal) -> bool {
        match self {
            Audience::All => true,
            Audience::Only(ids) => ids.contains(&p.id),
        }
    }
}

/// A socket push a world change causes: who may receive it, on which topic.
#[derive(Debug, Clone)]
pub struct Push {
    /// Topic, e.g. `chat_room:<id>`.
    pub topic: String,
    /// Event name, e.g. `message_created`.
    pub event: &'static str,
    /// Payload object.
    pub payload: Value,
    /// Who, among those who joined the topic, receives it.
    pub audience: Audience,
}

/// What a world change asks of the hub, applied in order by [`Hub::apply`].
#[derive(Debug, Clone)]
pub enum Effect {
    /// Publish a push.
    Push(Push),
    /// Make a principal's connections stop receiving a topic (they lost access).
    ForceLeave {
        /// User or agent id.
        principal_id: String,
        /// Topic left.
        topic: String,
    },
}

impl Effect {
    /// A push to everyone who joined `topic`.
    pub fn to_all(topic: String, event: &'static str, payload: Value) -> Effect {
        Effect::Push(Push {
            topic,
            event,
            payload,
            audience: Audience::All,
        })
    }

    /// A push on `topic` that only `ids` receive.
    pub fn to_only(
        topic: String,
        event: &'static str,
        payload: Value,
        ids: HashSet<String>,
    ) -> Effect {
        Effect::Push(Push {
            topic,
            event,
            payload,
            audience: Audience::Only(ids),
        })
    }
}

/// Who had a live connection when a request started: the `online` flag of
/// participants, peers and contacts (a snapshot, so the world needs no hub).
#[derive(Debug, Clone, Default)]
pub struct Presence(HashSet<String>);

impl Presence {
    /// Whether `id` is connected.
    pub fn is_online(&self, id: &str) -> bool {
        self.0.contains(id)
    }
}

/// What the hub tells one connection's task to do.
#[derive(Debug, Clone)]
pub enum ConnCommand {
    /// Push this event on this topic (the task adds the topic's join_ref).
    Push {
        /// Topic.
        topic: String,
        /// Event name.
        event: String,
        /// Payload object.
        payload: Value,
    },
    /// A newer connection for the same agent arrived: push `supersede` on
    /// `agent_control:<id>`, then close.
    Supersede,
    /// Close the socket now, abnormally (fault injection).
    Drop,
}

/// Identifies one live connection.
pub type ConnId = u64;

struct Conn {
    principal: Principal,
    tx: mpsc::UnboundedSender<ConnCommand>,
    topics: BTreeSet<String>,
}

/// Registry of live socket connections and their joined topics.
#[derive(Default)]
pub struct Hub {
    conns: Mutex<HashMap<ConnId, Conn>>,
    next_id: AtomicU64,
    heartbeats_ignored: AtomicBool,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConnId, Conn>> {
        // A panic elsewhere must not wedge the sandbox: keep using the map.
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new connection. For an agent, every older connection of
    /// the same agent is told to [`ConnCommand::Supersede`].
    pub fn register(&self, principal: Principal) -> (ConnId, mpsc::UnboundedReceiver<ConnCommand>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut conns = self.lock();
        if principal.kind == EntityType::Agent {
            for conn in conns.values() {
                if conn.principal == principal {
                    let _ = conn.tx.send(ConnCommand::Supersede);
                }
            }
        }
        conns.insert(
            id,
            Conn {
                principal,
                tx,
                topics: BTreeSet::new(),
            },
        );
        (id, rx)
    }

    /// Forgets a connection (it closed).
    pub fn unregister(&self, id: ConnId) {
        self.lock().remove(&id);
    }

    /// Records that a connection joined a topic.
    pub fn joined(&self, id: ConnId, topic: &str) {
        if let Some(c) = self.lock().get_mut(&id) {
            c.topics.insert(topic.to_string());
        }
    }

    /// Records that a connection left a topic.
    pub fn left(&self, id: ConnId, topic: &str) {
        if let Some(c) = self.lock().get_mut(&id) {
            c.topics.remove(topic);
        }
    }

    /// Sends a push to every connection that joined `topic` and is in `audience`.
    pub fn publish(&self, topic: &str, event: &str, payload: Value, audience: &Audience) {
        for conn in self.lock().values() {
            if conn.topics.contains(topic) && audience.admits(&conn.principal) {
                let _ = conn.tx.send(ConnCommand::Push {
                    topic: topic.to_string(),
                    event: event.to_string(),
                    payload: payload.clone(),
                });
            }
        }
    }

    /// Makes connections leave `topic` (e.g. a participant was removed) by
    /// sending them nothing more on it.
    pub fn force_leave(&self, principal_id: &str, topic: &str) {
        for conn in self.lock().values_mut() {
            if conn.principal.id == principal_id {
                conn.topics.remove(topic);
            }
        }
    }

    /// Whether an agent (or user) has a live connection.
    pub fn is_connected(&self, principal_id: &str) -> bool {
        self.lock().values().any(|c| c.principal.id == principal_id)
    }

    /// Applies a world change's effects, in order.
    pub fn apply(&self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Push(p) => self.publish(&p.topic, p.event, p.payload, &p.audience),
                Effect::ForceLeave {
                    principal_id,
                    topic,
                } => self.force_leave(&principal_id, &topic),
            }
        }
    }

    /// Who is connected right now.
    pub fn presence(&self) -> Presence {
        Presence(
            self.lock()
                .values()
                .map(|c| c.principal.id.clone())
                .collect(),
        )
    }

    /// Closes every socket abnormally.
    pub fn drop_all(&self) {
        for conn in self.lock().values() {
            let _ = conn.tx.send(ConnCommand::Drop);
        }
    }

    /// Fault injection: stop (true) or resume (false) answering heartbeats.
    pub fn set_heartbeats_ignored(&self, ignored: bool) {
        self.heartbeats_ignored.store(ignored, Ordering::Relaxed);
    }

    /// Whether heartbeats go unanswered.
    pub fn heartbeats_ignored(&self) -> bool {
        self.heartbeats_ignored.load(Ordering::Relaxed)
    }

    /// Every live connection: principal and joined topics (for `/_sandbox/state`).
    pub fn connections(&self) -> Vec<(Principal, Vec<String>)> {
        let mut out: Vec<_> = self
            .lock()
            .values()
            .map(|c| (c.principal.clone(), c.topics.iter().cloned().collect()))
            .collect();
        out.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        out
    }
}

/// What the socket endpoint (`ws.rs`) needs from the rest of the sandbox.
/// `Sandbox` implements it; tests may implement it with a tiny backend.
pub trait SocketBackend: Send + Sync + 'static {
    /// The principal an API key belongs to (user or agent), if any.
    fn authenticate(&self, api_key: &str) -> Option<Principal>;
    /// Whether `who` may join `topic`: `Ok(response)` with the join reply's
    /// `response` object, or `Err(reason)` for a refusal (`{"reason": ...}`).
    fn can_join(&self, who: &Principal, topic: &str) -> Result<Value, String>;
    /// The hub pushes are published on.
    fn hub(&self) -> &Hub;
}
