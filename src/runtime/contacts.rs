//! The agent-level queue: contact events (and agent control events) run one
//! at a time, beside the rooms, with no room and no lifecycle.

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::handler::Delivery;
use super::lifecycle::{deliver_event, Services};
use band_wire::events::Event;

/// Starts the queue; returns its sender and task.
pub(crate) fn spawn_contacts(
    services: Services,
    mut shutdown: watch::Receiver<bool>,
) -> (mpsc::Sender<Event>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Event>(services.tunables.queue_capacity.max(1));
    let task = crate::task::spawn(async move {
        loop {
            let event = tokio::select! {
                biased;
                _ = shutdown.wait_for(|s| *s) => break,
                e = rx.recv() => match e {
                    Some(e) => e,
                    None => break,
                },
            };
            let delivery = Delivery {
                event,
                room: None,
                from_backlog: false,
            };
            deliver_event(&services, delivery).await;
        }
    });
    (tx, task)
}
