//! The people's side of a run: one person per room sends messages that
//! mention the agent (at a rate, or as fast as a bounded number in flight
//! allows) and watches the room over their own socket; the time from just
//! before the POST to the reply arriving on that socket is the latency.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::world::World;
use super::BenchError;
use band_client::rest::{AgentApi, HumanApi, RestConfig};
use band_client::socket::{Socket, SocketConfig, SocketEvent};
use band_wire::events::{Event, TopicKind};
use band_wire::model::Mention;

/// How messages are sent.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// At most this many messages without a reply; the next goes when one is answered.
    Closed {
        /// Messages in flight.
        inflight: usize,
    },
    /// This many messages per second, whatever the replies do.
    Rate(f64),
}

/// What one load run measured.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    /// Messages sent.
    pub sent: usize,
    /// Replies seen (once per message).
    pub answered: usize,
    /// Replies seen for a message already answered.
    pub duplicates: usize,
    /// POSTs that failed.
    pub send_errors: usize,
    /// Latency of each answered message.
    pub latencies: Vec<Duration>,
    /// From the first POST to the last reply.
    pub elapsed: Duration,
}

/// The shared book of the run.
struct Book {
    sent_at: Mutex<Vec<Option<Instant>>>,
    latencies: Mutex<Vec<Option<Duration>>>,
    answered: AtomicUsize,
    duplicates: AtomicUsize,
    send_errors: AtomicUsize,
    last_reply: Mutex<Option<Instant>>,
    slots: Semaphore,
}

impl Book {
    fn new(total: usize) -> Self {
        Book {
            sent_at: Mutex::new(vec![None; total]),
            latencies: Mutex::new(vec![None; total]),
            answered: AtomicUsize::new(0),
            duplicates: AtomicUsize::new(0),
            send_errors: AtomicUsize::new(0),
            last_reply: Mutex::new(None),
            slots: Semaphore::new(0),
        }
    }

    fn sent(&self, seq: usize) {
        if let Some(slot) = lock(&self.sent_at).get_mut(seq) {
            *slot = Some(Instant::now());
        }
    }

    /// A reply for `seq` arrived now.
    fn answered(&self, seq: usize) {
        let now = Instant::now();
        let Some(Some(at)) = lock(&self.sent_at).get(seq).copied() else {
            return;
        };
        let mut latencies = lock(&self.latencies);
        match latencies.get_mut(seq) {
            Some(slot @ None) => *slot = Some(now - at),
            Some(Some(_)) => {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
                return;
            }
            None => return,
        }
        drop(latencies);
        *lock(&self.last_reply) = Some(now);
        self.slots.add_permits(1);
        self.answered.fetch_add(1, Ordering::Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The `q` quantile (0..=1) of sorted durations, nearest rank.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The message number in a reply (`… #123`), if any.
pub fn tag_of(content: &str) -> Option<usize> {
    let after = &content[content.rfind('#')? + 1..];
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Sends `total` messages over the world's rooms and waits (at most
/// `limit`) for their replies. `bare_agent`: the driver answers each
/// message itself with the agent's REST calls (the floor), instead of an
/// agent process.
pub async fn run(
    world: &World,
    rest_url: &str,
    ws_url: &str,
    total: usize,
    pace: Pace,
    bare_agent: bool,
    limit: Duration,
) -> Result<LoadResult, BenchError> {
    let book = Arc::new(Book::new(total));
    // Every person watches their room before anything is sent.
    let mut watchers = Vec::new();
    let mut sockets = Vec::new();
    for (user, room) in world.users.iter().zip(&world.rooms) {
        let (socket, mut events) = Socket::start(SocketConfig::new(ws_url, &user.api_key));
        socket
            .join(&TopicKind::ChatRoom.topic(&room.id))
            .await
            .map_err(|e| {
                BenchError::Setup(format!("{} cannot watch {}: {e}", user.handle, room.id))
            })?;
        let book = book.clone();
        watchers.push(tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if let SocketEvent::Event {
                    event: Event::MessageCreated(m),
                    ..
                } = event
                {
                    if m.sender_type == "Agent" {
                        if let Some(seq) = tag_of(&m.content) {
                            book.answered(seq);
                        }
                    }
                }
            }
        }));
        sockets.push(socket);
    }
    let people = world
        .users
        .iter()
        .map(|u| HumanApi::new(RestConfig::new(rest_url, &u.api_key)).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let agent = match bare_agent {
        true => Some(Arc::new(
            AgentApi::new(RestConfig::new(rest_url, &world.agent.api_key))
                .map_err(|e| BenchError::Setup(e.to_string()))?,
        )),
        false => None,
    };
    let mention = vec![Mention {
        id: Some(world.agent.id.clone()),
        handle: Some(world.agent.handle.clone()),
        ..Mention::default()
    }];

    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + limit;
    let mut ticker = match pace {
        Pace::Closed { inflight } => {
            book.slots.add_permits(inflight.max(1));
            None
        }
        Pace::Rate(rate) => Some(tokio::time::interval(Duration::from_secs_f64(
            1.0 / rate.max(0.001),
        ))),
    };
    let mut senders = Vec::with_capacity(total);
    for seq in 0..total {
        let wait = async {
            match &mut ticker {
                Some(t) => {
                    t.tick().await;
                }
                None => {
                    if let Ok(p) = book.slots.acquire().await {
                        p.forget();
                    }
                }
            }
        };
        if tokio::time::timeout_at(deadline, wait).await.is_err() {
            break;
        }
        let room = seq % world.rooms.len();
        let person = people[room].clone();
        let room_id = world.rooms[room].id.clone();
        let user_id = world.users[room].id.clone();
        let agent = agent.clone();
        let mention = mention.clone();
        let handle = world.agent.handle.clone();
        let book = book.clone();
        senders.push(tokio::spawn(async move {
            let content = format!("@{handle} ping #{seq}");
            book.sent(seq);
            let sent = match person.send_message(&room_id, &content, &mention).await {
                Ok(sent) => sent,
                Err(_) => {
                    book.send_errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            if let Some(agent) = agent {
                // The floor: the REST calls an agent makes for a message, from a bare client.
                let back = vec![Mention {
                    id: Some(user_id),
                    ..Mention::default()
                }];
                let ok = agent.mark_processing(&room_id, &sent.id).await.is_ok()
                    && agent
                        .send_message(&room_id, &format!("echo: {content}"), &back)
                        .await
                        .is_ok()
                    && agent.mark_processed(&room_id, &sent.id).await.is_ok();
                if !ok {
                    book.send_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let sent = senders.len();
    for s in senders {
        let _ = s.await;
    }
    // Until every message that went out is answered, or time is up.
    while book.answered.load(Ordering::Relaxed) + book.send_errors.load(Ordering::Relaxed) < sent
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A moment for duplicates to show.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for s in &sockets {
        s.shutdown().await;
    }
    for w in watchers {
        w.abort();
    }
    let last = (*lock(&book.last_reply)).unwrap_or(started);
    let latencies: Vec<Duration> = lock(&book.latencies).iter().flatten().copied().collect();
    Ok(LoadResult {
        sent,
        answered: latencies.len(),
        duplicates: book.duplicates.load(Ordering::Relaxed),
        send_errors: book.send_errors.load(Ordering::Relaxed),
        latencies,
        elapsed: last.saturating_duration_since(started),
    })
}

#[cfg(test)]
mod tests {
    use super::tag_of;

    #[test]
    fn finds_the_message_number() {
        assert_eq!(tag_of("echo: @bench/echo ping #42"), Some(42));
        assert_eq!(tag_of("echo: #7 and #9x"), Some(9));
        assert_eq!(tag_of("no tag"), None);
        assert_eq!(tag_of("trailing #"), None);
    }
}
