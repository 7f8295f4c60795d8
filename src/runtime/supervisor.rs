//! The runtime's conductor: startup sync, routing socket events to room
//! queues, rooms coming and going, resync after reconnects, and shutdown.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::config::Tunables;
use super::contacts::spawn_contacts;
use super::control::SeenControls;
use super::error::RuntimeError;
use super::lifecycle::Services;
use super::rooms::{spawn_room, RoomCmd, RoomHandle, ROOM_TOPICS};
use band_client::rest::{AgentApi, ApiError};
use band_client::socket::{Socket, SocketEvent, Status, StopReason};
use band_wire::events::{AgentControl, Event, TopicKind};
use band_wire::model::AgentMe;

/// Runs a start-up call until it succeeds, pausing (doubling, capped) after
/// each retryable failure: a platform outage at start-up is waited out like
/// one while running (the socket reconnects the same way). Any other error
/// (a refused key, a wrong URL) is returned at once. The caller races this
/// against shutdown.
async fn until_answered<T, F, Fut>(what: &str, t: &Tunables, mut call: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    let mut delay = t.startup_retry_delay.min(t.startup_retry_cap);
    let mut attempt: u64 = 1;
    loop {
        match call().await {
            Ok(v) => {
                if attempt > 1 {
                    tracing::info!(attempt, "{what} answered; start-up goes on");
                }
                return Ok(v);
            }
            Err(e) if e.is_retryable() => {
                tracing::warn!(
                    attempt,
                    retry_in_ms = delay.as_millis() as u64,
                    error = %crate::error_chain::Chain(&e),
                    "{what} failed; the platform may be down, trying again"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(t.startup_retry_cap);
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// `GET /agent/me`, tried until answered (see [`until_answered`]).
pub(crate) async fn fetch_me(api: &AgentApi, t: &Tunables) -> Result<AgentMe, RuntimeError> {
    me_until_answered(api, t).await.map_err(RuntimeError::Me)
}

/// `GET /agent/me`, tried until answered, with the API's error: for the
/// agent's own start-up, which needs its id (its state directory) before
/// the runtime runs and must wait out an outage the same way.
pub(crate) async fn me_until_answered(api: &AgentApi, t: &Tunables) -> Result<AgentMe, ApiError> {
    until_answered("GET /agent/me", t, || api.me()).await
}

/// Owns the rooms and the socket's event stream for one run.
pub(crate) struct Supervisor {
    services: Services,
    me: AgentMe,
    socket: Socket,
    shutdown_tx: Arc<watch::Sender<bool>>,
    rooms: HashMap<String, RoomHandle>,
    /// Rooms closed but whose task may still be finishing (leaving topics).
    retiring: HashMap<String, JoinHandle<()>>,
    contacts: Option<(mpsc::Sender<Event>, JoinHandle<()>)>,
    started: Option<JoinHandle<()>>,
    /// Room ids, for [`super::RuntimeHandle::rooms`].
    view: Arc<Mutex<BTreeSet<String>>>,
    /// Control pushes already applied (the platform may repeat them).
    seen_controls: SeenControls,
}

impl Supervisor {
    /// A supervisor for a connected socket.
    pub(crate) fn new(
        services: Services,
        me: AgentMe,
        socket: Socket,
        shutdown_tx: Arc<watch::Sender<bool>>,
        view: Arc<Mutex<BTreeSet<String>>>,
    ) -> Supervisor {
        Supervisor {
            services,
            me,
            socket,
            shutdown_tx,
            rooms: HashMap::new(),
            retiring: HashMap::new(),
            contacts: None,
            started: None,
            view,
            seen_controls: SeenControls::default(),
        }
    }

    /// Startup sync (§4.2): agent topics, chat list, every room joined and
    /// drained, contacts; then `started` once the drains are over.
    pub(crate) async fn startup(&mut self) -> Result<(), RuntimeError> {
        let id = self.me.id.clone();
        self.join_required(&TopicKind::AgentControl.topic(&id))
            .await?;
        self.join_required(&TopicKind::AgentRooms.topic(&id))
            .await?;
        let api = &self.services.api;
        let chats = until_answered("GET /agent/chats", &self.services.tunables, || {
            api.list_all_chats()
        })
        .await
        .map_err(RuntimeError::ListChats)?;
        let joins = chats.iter().map(|c| join_room_topics(&self.socket, &c.id));
        futures_util::future::join_all(joins).await;
        let mut drained = Vec::new();
        for chat in chats {
            let (tx, rx) = oneshot::channel();
            drained.push(rx);
            self.spawn_room(chat.id, chat.title, Some(tx));
        }
        let contacts_topic = TopicKind::AgentContacts.topic(&id);
        match self.socket.join(&contacts_topic).await {
            Ok(_) => tracing::debug!(topic = %contacts_topic, "joined"),
            // It stays registered: the socket keeps trying to rejoin it.
            Err(e) => {
                tracing::warn!(topic = %contacts_topic, error = %crate::error_chain::Chain(&e), "cannot join contacts topic")
            }
        }
        let shutdown = self.shutdown_tx.subscribe();
        self.contacts = Some(spawn_contacts(self.services.clone(), shutdown));
        tracing::info!(agent = %id, rooms = self.rooms.len(), "joined; draining backlog");
        let handler = self.services.handler.clone();
        let me = self.me.clone();
        self.started = Some(crate::task::spawn(async move {
            for rx in drained {
                if rx.await.is_err() {
                    return; // a room stopped before its drain ended: shutting down
                }
            }
            tracing::info!(agent = %me.id, "startup sync done");
            handler.started(&me).await;
        }));
        Ok(())
    }

    /// Routes socket events until shutdown or until the socket stops for good.
    pub(crate) async fn serve(
        &mut self,
        events: &mut mpsc::Receiver<SocketEvent>,
    ) -> Result<(), RuntimeError> {
        let mut shutdown = self.shutdown_tx.subscribe();
        loop {
            let ev = tokio::select! {
                biased;
                _ = shutdown.wait_for(|s| *s) => return Ok(()),
                ev = events.recv() => ev,
            };
            match ev {
                None => {
                    self.services.observer.socket_disconnected();
                    return Err(RuntimeError::Stopped(self.stop_reason()));
                }
                Some(SocketEvent::Stopped { reason }) => {
                    self.services.observer.socket_disconnected();
                    return Err(RuntimeError::Stopped(reason));
                }
                Some(SocketEvent::Event { topic, event }) => self.route(&topic, event).await,
                Some(SocketEvent::Rejoined { topics }) => {
                    tracing::info!(topics = topics.len(), "topics rejoined; resyncing rooms");
                    self.resync().await;
                }
                Some(SocketEvent::Connected { reconnect }) => {
                    // Resync waits for `Rejoined`: draining before the rooms are
                    // joined again could miss messages sent in between.
                    tracing::info!(reconnect, "socket connected");
                    self.services.observer.socket_connected(reconnect);
                }
                Some(SocketEvent::Disconnected { reason }) => {
                    tracing::warn!(%reason, "socket disconnected; reconnecting");
                    self.services.observer.socket_disconnected();
                }
                Some(SocketEvent::JoinGaveUp { topic, reason }) => {
                    tracing::warn!(%topic, %reason, "gave up rejoining topic");
                }
                Some(other) => tracing::debug!(event = ?other, "socket event"),
            }
        }
    }

    /// Stops every queue (the jobs in hand finish, bounded by the grace
    /// period) and closes the socket.
    pub(crate) async fn finish(mut self) {
        self.shutdown_tx.send_replace(true);
        let mut tasks: Vec<JoinHandle<()>> = Vec::new();
        tasks.extend(self.rooms.drain().map(|(_, r)| r.task));
        tasks.extend(self.retiring.drain().map(|(_, t)| t));
        if let Some((_, t)) = self.contacts.take() {
            tasks.push(t);
        }
        if let Some(t) = self.started.take() {
            tasks.push(t);
        }
        let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
        let all = futures_util::future::join_all(tasks);
        if tokio::time::timeout(self.services.tunables.shutdown_grace, all)
            .await
            .is_err()
        {
            tracing::warn!("work still running after the shutdown grace period; abandoning it");
            aborts.iter().for_each(|a| a.abort());
        }
        self.socket.shutdown().await;
        self.services.observer.socket_disconnected();
        self.publish_view();
        tracing::info!("runtime stopped");
    }

    async fn join_required(&self, topic: &str) -> Result<(), RuntimeError> {
        match self.socket.join(topic).await {
            Ok(_) => {
                tracing::debug!(%topic, "joined");
                Ok(())
            }
            Err(source) => match self.socket.status().borrow().clone() {
                Status::Stopped(reason) => Err(RuntimeError::Stopped(reason)),
                _ => Err(RuntimeError::Join {
                    topic: topic.to_string(),
                    source,
                }),
            },
        }
    }

    fn stop_reason(&self) -> StopReason {
        match self.socket.status().borrow().clone() {
            Status::Stopped(reason) => reason,
            _ => StopReason::Shutdown,
        }
    }

    async fn route(&mut self, topic: &str, event: Event) {
        let (kind, id) = TopicKind::parse(topic).map_or((None, ""), |(k, id)| (Some(k), id));
        match (kind, event) {
            (_, Event::EventCreated(_)) => tracing::debug!(%topic, "event_created ignored"),
            (_, Event::Supersede(s)) => {
                tracing::warn!(reason = %s.reason, "supersede received");
            }
            (Some(TopicKind::AgentControl), Event::AgentControl(c)) => self.control(&c),
            (_, e @ Event::Unknown { .. }) => {
                tracing::debug!(%topic, event = %e.name(), "unhandled event ignored");
            }
            (Some(TopicKind::AgentRooms), Event::RoomAdded(r)) => {
                let (room_id, title) = (r.id.clone(), r.title.clone());
                self.add_room(room_id, title, Some(Event::RoomAdded(r)))
                    .await;
            }
            (Some(TopicKind::AgentRooms), Event::RoomRemoved(r)) => {
                let room_id = r.id.clone();
                self.close_room(&room_id, Some(Event::RoomRemoved(r))).await;
            }
            (Some(TopicKind::RoomParticipants), e @ Event::RoomDeleted(_)) => {
                self.close_room(id, Some(e)).await;
            }
            (Some(TopicKind::ChatRoom | TopicKind::RoomParticipants), e) => {
                match self.rooms.get(id) {
                    Some(room) => {
                        if room.tx.send(RoomCmd::Event(e)).await.is_err() {
                            tracing::debug!(room = %id, "room queue closed; event dropped");
                        }
                    }
                    None => {
                        tracing::debug!(room = %id, event = %e.name(), "event for an unknown room dropped")
                    }
                }
            }
            (_, e) => self.to_contacts(e).await,
        }
    }

    /// STOP / PLAY / INTERRUPT (§4.4): handed to the room it names, or to
    /// every room when it names none; each room task acts on it.
    fn control(&mut self, c: &AgentControl) {
        if c.agent_id != self.me.id {
            tracing::warn!(agent = %c.agent_id, "agent.control for another agent ignored");
            return;
        }
        if !self.seen_controls.first_time(&c.correlation_id) {
            tracing::debug!(correlation_id = %c.correlation_id, "repeated agent.control ignored");
            return;
        }
        tracing::info!(
            mode = c.mode.as_str(),
            room = c.room_id.as_deref().unwrap_or("all"),
            reason = c.reason.as_deref().unwrap_or(""),
            "agent.control received"
        );
        let targets: Vec<&RoomHandle> = match &c.room_id {
            Some(id) => match self.rooms.get(id) {
                Some(room) => vec![room],
                None => {
                    tracing::debug!(room = %id, "agent.control for a room not served ignored");
                    Vec::new()
                }
            },
            None => self.rooms.values().collect(),
        };
        for room in targets {
            room.control.send_modify(|s| s.apply(c.mode));
        }
    }

    async fn to_contacts(&self, event: Event) {
        if let Some((tx, _)) = &self.contacts {
            if tx.send(event).await.is_err() {
                tracing::debug!("contacts queue closed; event dropped");
            }
        }
    }

    /// A room we now belong to: join it, drain it, then hand over `event`.
    async fn add_room(&mut self, id: String, title: Option<String>, event: Option<Event>) {
        if let Some(room) = self.rooms.get(&id) {
            if let Some(e) = event {
                let _ = room.tx.send(RoomCmd::Event(e)).await;
            }
            return;
        }
        // A room removed and re-added quickly: let the old task leave its topics first.
        if let Some(old) = self.retiring.remove(&id) {
            let _ = tokio::time::timeout(self.services.tunables.shutdown_grace, old).await;
        }
        join_room_topics(&self.socket, &id).await;
        self.spawn_room(id.clone(), title, None);
        if let (Some(e), Some(room)) = (event, self.rooms.get(&id)) {
            let _ = room.tx.send(RoomCmd::Event(e)).await;
        }
    }

    /// A room we left: hand over `event`, then leave its topics and stop its queue.
    async fn close_room(&mut self, id: &str, event: Option<Event>) {
        self.retiring.retain(|_, t| !t.is_finished());
        let Some(room) = self.rooms.remove(id) else {
            tracing::debug!(room = %id, "close of an unknown room ignored");
            return;
        };
        if room.tx.send(RoomCmd::Close(event)).await.is_err() {
            tracing::debug!(room = %id, "room queue already stopped");
        }
        self.retiring.insert(id.to_string(), room.task);
        self.publish_view();
    }

    /// After a reconnect: re-list rooms, join new ones, leave vanished ones,
    /// and drain every surviving room again.
    async fn resync(&mut self) {
        let chats = match self.services.api.list_all_chats().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %crate::error_chain::Chain(&e), "cannot re-list rooms; draining the known ones");
                self.drain_all().await;
                return;
            }
        };
        let listed: HashSet<&str> = chats.iter().map(|c| c.id.as_str()).collect();
        let vanished: Vec<String> = self
            .rooms
            .keys()
            .filter(|id| !listed.contains(id.as_str()))
            .cloned()
            .collect();
        for id in vanished {
            tracing::info!(room = %id, "room gone while disconnected; leaving it");
            self.close_room(&id, None).await;
        }
        for chat in chats {
            match self.rooms.get(&chat.id) {
                Some(room) => {
                    let _ = room.tx.send(RoomCmd::Retitle(chat.title)).await;
                    let _ = room.tx.send(RoomCmd::Drain { done: None }).await;
                }
                None => self.add_room(chat.id, chat.title, None).await,
            }
        }
    }

    async fn drain_all(&self) {
        for room in self.rooms.values() {
            let _ = room.tx.send(RoomCmd::Drain { done: None }).await;
        }
    }

    fn spawn_room(
        &mut self,
        id: String,
        title: Option<String>,
        drained: Option<oneshot::Sender<()>>,
    ) {
        let handle = spawn_room(
            self.services.clone(),
            self.socket.clone(),
            id.clone(),
            title,
            self.shutdown_tx.subscribe(),
            drained,
        );
        self.rooms.insert(id, handle);
        self.publish_view();
    }

    fn publish_view(&self) {
        let mut view = self.view.lock().unwrap_or_else(|p| p.into_inner());
        *view = self.rooms.keys().cloned().collect();
    }
}

/// Joins `chat_room:<id>` then `room_participants:<id>`. A failed join is
/// only logged: the topic stays registered, the socket keeps rejoining it,
/// and the room is drained over REST meanwhile.
async fn join_room_topics(socket: &Socket, id: &str) {
    for topic in ROOM_TOPICS.map(|k| k.topic(id)) {
        match socket.join(&topic).await {
            Ok(_) => tracing::debug!(%topic, "joined"),
            Err(e) => {
                tracing::warn!(%topic, error = %crate::error_chain::Chain(&e), "cannot join room topic yet")
            }
        }
    }
}
