//! One task per room: its events run one at a time, in arrival order, after
//! the room's drain; it keeps the room's [`RoomInfo`] current, and follows
//! the platform's STOP / PLAY of the room (see [`super::control`]).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::control::RoomControl;
use super::drain::{drain_room, DrainEnd, Drained};
use super::handler::{Delivery, RoomInfo};
use super::lifecycle::{deliver_event, process_message, MessageResult, Services};
use band_client::socket::Socket;
use band_wire::events::{Event, ParticipantAdded, TopicKind};
use band_wire::model::ChatParticipant;

/// A room's topics (`chat_room:<id>`, `room_participants:<id>`), joined in this order.
pub(crate) const ROOM_TOPICS: [TopicKind; 2] = [TopicKind::ChatRoom, TopicKind::RoomParticipants];

/// Work for a room's queue.
#[derive(Debug)]
pub(crate) enum RoomCmd {
    /// Drain the backlog; `done` is told when it is over.
    Drain {
        /// Signalled after the drain (dropped if the room stops first).
        done: Option<oneshot::Sender<()>>,
    },
    /// A live event for this room.
    Event(Event),
    /// The chat list has a (new) title for the room.
    Retitle(Option<String>),
    /// Hand over the event (if any), leave the room's topics and stop.
    Close(Option<Event>),
}

/// The supervisor's end of a room task.
#[derive(Debug)]
pub(crate) struct RoomHandle {
    /// The room's queue.
    pub(crate) tx: mpsc::Sender<RoomCmd>,
    /// The task, to await on shutdown or before re-adding the room.
    pub(crate) task: JoinHandle<()>,
    /// What STOP / PLAY / INTERRUPT pushes said about the room.
    pub(crate) control: watch::Sender<RoomControl>,
}

/// Starts the task for room `id`; its first job is a drain (signalling `drained`).
pub(crate) fn spawn_room(
    services: Services,
    socket: Socket,
    id: String,
    title: Option<String>,
    shutdown: watch::Receiver<bool>,
    drained: Option<oneshot::Sender<()>>,
) -> RoomHandle {
    let (tx, rx) = mpsc::channel(services.tunables.queue_capacity.max(1));
    let (control_tx, control) = watch::channel(RoomControl::default());
    // The drain goes first so live events queue up behind it; capacity is at least 1.
    let _ = tx.try_send(RoomCmd::Drain { done: drained });
    let worker = RoomWorker {
        services,
        socket,
        myself: tx.downgrade(),
        retry_pending: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        info: RoomInfo {
            id,
            title,
            participants: Vec::new(),
        },
        participants_loaded: false,
        control,
        paused: None,
    };
    let task = crate::task::spawn(worker.run(rx, shutdown));
    RoomHandle {
        tx,
        task,
        control: control_tx,
    }
}

/// What woke a room task up.
// Lives only between a wake-up and its handling, so its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Wake {
    /// The control state changed (false: its sender is gone).
    Control(bool),
    /// Time to probe the stopped room.
    Probe,
    /// A job from the queue.
    Cmd(RoomCmd),
}

struct RoomWorker {
    services: Services,
    socket: Socket,
    /// The room's own queue, for retry drains (weak: it must not keep the room alive).
    myself: mpsc::WeakSender<RoomCmd>,
    /// A retry drain is scheduled already.
    retry_pending: Arc<std::sync::atomic::AtomicBool>,
    info: RoomInfo,
    participants_loaded: bool,
    /// STOP / PLAY / INTERRUPT as the supervisor heard them.
    control: watch::Receiver<RoomControl>,
    /// While the room's execution is stopped: when to probe it next.
    paused: Option<Instant>,
}

impl RoomWorker {
    async fn run(mut self, mut rx: mpsc::Receiver<RoomCmd>, mut shutdown: watch::Receiver<bool>) {
        let mut control_open = true;
        let mut switches = 0u64;
        loop {
            // Shutdown is checked only between jobs: the one in hand always finishes.
            let probe_at = self.paused;
            let wake = tokio::select! {
                biased;
                _ = shutdown.wait_for(|s| *s) => break,
                changed = self.control.changed(), if control_open => Wake::Control(changed.is_ok()),
                _ = sleep_until(probe_at), if probe_at.is_some() => Wake::Probe,
                cmd = rx.recv() => match cmd {
                    Some(c) => Wake::Cmd(c),
                    None => break,
                },
            };
            let cmd = match wake {
                Wake::Control(false) => {
                    control_open = false; // the room is being closed
                    continue;
                }
                Wake::Control(true) => {
                    let state = self.control.borrow_and_update().clone();
                    if state.switches != switches {
                        switches = state.switches;
                        if state.stopped {
                            self.pause("STOP received");
                        } else {
                            tracing::info!(room = %self.info.id, "PLAY received: execution resumed; resyncing");
                            self.paused = None;
                            self.drain(&shutdown).await;
                        }
                    }
                    continue;
                }
                Wake::Probe => {
                    tracing::debug!(room = %self.info.id, "probing the stopped room");
                    let drained = self.drain(&shutdown).await;
                    if self.paused.is_some() {
                        if drained.handled > 0 {
                            tracing::info!(room = %self.info.id, "the room runs again (its PLAY was missed); resumed");
                            self.paused = None;
                        } else {
                            self.paused = Some(
                                Instant::now() + self.services.tunables.stopped_probe_interval,
                            );
                        }
                    }
                    continue;
                }
                Wake::Cmd(cmd) => cmd,
            };
            match cmd {
                RoomCmd::Drain { done } => {
                    self.drain(&shutdown).await;
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                }
                RoomCmd::Event(event) => self.on_event(event).await,
                RoomCmd::Retitle(title) => self.info.title = title,
                RoomCmd::Close(event) => {
                    if let Some(event) = event {
                        self.on_event(event).await;
                    }
                    self.leave_topics().await;
                    break;
                }
            }
        }
        tracing::debug!(room = %self.info.id, "room queue stopped");
    }

    /// Drains the room (`/next`, then the sweep), and schedules what its end asks for.
    async fn drain(&mut self, shutdown: &watch::Receiver<bool>) -> Drained {
        let info = self.snapshot().await;
        let stop = shutdown.clone();
        let drained =
            drain_room(&self.services, &info, &self.control, move || *stop.borrow()).await;
        if drained.retry || drained.end == DrainEnd::Error {
            self.retry_later();
        }
        if drained.end == DrainEnd::RoomStopped {
            self.pause("the platform says the room's execution is stopped");
        }
        drained
    }

    /// The room's execution is stopped: nothing more runs until PLAY, or
    /// until a probe every [`super::config::Tunables::stopped_probe_interval`]
    /// finds it running again (a PLAY whose push was lost).
    fn pause(&mut self, why: &str) {
        if self.paused.is_none() {
            let every = self.services.tunables.stopped_probe_interval;
            tracing::info!(room = %self.info.id, probe_every_ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX), "{why}: execution stopped; waiting for PLAY");
        }
        self.paused = Some(Instant::now() + self.services.tunables.stopped_probe_interval);
    }

    /// Drains the room again after [`super::config::Tunables::retry_delay`]
    /// (once, however many failures asked for it).
    fn retry_later(&self) {
        use std::sync::atomic::Ordering;
        if self.retry_pending.swap(true, Ordering::SeqCst) {
            return;
        }
        let delay = self.services.tunables.retry_delay;
        let queue = self.myself.clone();
        let pending = self.retry_pending.clone();
        crate::task::spawn(async move {
            tokio::time::sleep(delay).await;
            pending.store(false, Ordering::SeqCst);
            if let Some(tx) = queue.upgrade() {
                let _ = tx.send(RoomCmd::Drain { done: None }).await;
            }
        });
    }

    /// The room as the handler should see it, loading participants on first need.
    async fn snapshot(&mut self) -> Arc<RoomInfo> {
        if !self.participants_loaded {
            match self.services.api.list_participants(&self.info.id).await {
                Ok(list) => {
                    self.info.participants = list;
                    self.participants_loaded = true;
                }
                Err(e) => {
                    // Try again on the next event; the handler gets what we have.
                    tracing::warn!(room = %self.info.id, error = %crate::error_chain::Chain(&e), "cannot load participants");
                }
            }
        }
        Arc::new(self.info.clone())
    }

    async fn on_event(&mut self, event: Event) {
        match &event {
            Event::ParticipantAdded(p) => self.participant_added(p),
            Event::ParticipantRemoved(p) => self.info.participants.retain(|x| x.id != p.id),
            Event::RoomAdded(r) => self.info.title = r.title.clone(),
            _ => {}
        }
        let room = self.snapshot().await;
        match event {
            Event::MessageCreated(msg) => {
                let result = process_message(&self.services, room, msg, false, &self.control).await;
                match result {
                    MessageResult::WillRetry | MessageResult::ClaimFailed => self.retry_later(),
                    MessageResult::RoomStopped => {
                        self.pause("the platform says the room's execution is stopped")
                    }
                    // A live message claimed: the room runs (a missed PLAY).
                    MessageResult::Handled(_) | MessageResult::Interrupted => self.paused = None,
                    MessageResult::Skipped(_) => {}
                }
            }
            event => {
                let delivery = Delivery {
                    event,
                    room: Some(room),
                    from_backlog: false,
                };
                deliver_event(&self.services, delivery).await;
            }
        }
    }

    fn participant_added(&mut self, p: &ParticipantAdded) {
        if !self.participants_loaded {
            return; // the first load will include them
        }
        match ChatParticipant::try_from(p) {
            Ok(participant) => {
                self.info.participants.retain(|x| x.id != participant.id);
                self.info.participants.push(participant);
            }
            // An entity type we do not model: reload the list instead of guessing.
            Err(_) => self.participants_loaded = false,
        }
    }

    async fn leave_topics(&self) {
        for topic in ROOM_TOPICS.map(|k| k.topic(&self.info.id)) {
            match self.socket.leave(&topic).await {
                Ok(()) => tracing::debug!(%topic, "left topic"),
                Err(e) => {
                    tracing::debug!(%topic, error = %crate::error_chain::Chain(&e), "leave did not complete")
                }
            }
        }
    }
}

/// Sleeps until `at` (never returns without one; the caller guards on it).
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
