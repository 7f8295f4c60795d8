//! The agent's life on the platform: startup sync, rooms coming and going,
//! the message lifecycle, de-duplication, reconnects and shutdown.
//!
//! [`Runtime::run`] identifies the agent, connects, joins every room, drains
//! each room's backlog through `/next`, then serves live events: one queue
//! per room (serial), one for contact and control events, all in parallel.

mod config;
mod contacts;
mod control;
mod dedupe;
mod drain;
mod error;
pub mod handler;
mod lifecycle;
mod observer;
mod rooms;
mod supervisor;

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

pub use config::{RuntimeConfig, Tunables};
pub use error::RuntimeError;
pub use handler::{Delivery, Handler, HandlerFuture, HandlerResult, RoomInfo};
pub use observer::{LifecycleMark, Observer};

use dedupe::MessageLedger;
use lifecycle::Services;
use observer::Unobserved;
pub(crate) use supervisor::me_until_answered;
use supervisor::{fetch_me, Supervisor};

use band_client::rest::AgentApi;
use band_client::socket::Socket;

/// Runs one agent until told to stop.
pub struct Runtime {
    config: RuntimeConfig,
    handler: Arc<dyn Handler>,
    shutdown: Arc<watch::Sender<bool>>,
    rooms: Arc<Mutex<BTreeSet<String>>>,
}

/// A cheap handle to a [`Runtime`]: ask it to stop, look at its rooms.
#[derive(Clone)]
pub struct RuntimeHandle {
    shutdown: Arc<watch::Sender<bool>>,
    rooms: Arc<Mutex<BTreeSet<String>>>,
}

impl RuntimeHandle {
    /// Asks the runtime to stop: no new events are taken, the ones in hand
    /// finish (handler and ack), the socket is closed, and `run` returns `Ok`.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Ids of the rooms the runtime currently serves.
    pub fn rooms(&self) -> Vec<String> {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms.iter().cloned().collect()
    }
}

impl std::fmt::Debug for RuntimeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeHandle")
            .field("shutdown", &*self.shutdown.borrow())
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// A runtime for `config`, handing events to `handler`.
    pub fn new(config: RuntimeConfig, handler: Arc<dyn Handler>) -> Runtime {
        let (tx, _) = watch::channel(false);
        Runtime {
            config,
            handler,
            shutdown: Arc::new(tx),
            rooms: Arc::new(Mutex::new(BTreeSet::new())),
        }
    }

    /// A handle for stopping it (e.g. from a signal handler).
    pub fn handle(&self) -> RuntimeHandle {
        RuntimeHandle {
            shutdown: self.shutdown.clone(),
            rooms: self.rooms.clone(),
        }
    }

    /// Runs until `stop` completes (then shuts down gracefully) or a fatal error.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send,
    ) -> Result<(), RuntimeError> {
        let handle = self.handle();
        let run = self.run();
        tokio::pin!(run);
        tokio::select! {
            result = &mut run => result,
            _ = stop => {
                handle.shutdown();
                run.await
            }
        }
    }

    /// Runs until [`RuntimeHandle::shutdown`] (→ `Ok`) or a fatal error: the
    /// startup failed, or the platform ended the session (auth, supersede).
    pub async fn run(self) -> Result<(), RuntimeError> {
        let mut stop = self.shutdown.subscribe();
        let tunables = self.config.tunables.clone();
        let api = AgentApi::new(self.config.rest.clone())?;
        let me = match self.config.me.clone() {
            Some(me) => me,
            None => tokio::select! {
                me = fetch_me(&api, &tunables) => me?,
                _ = stop.wait_for(|s| *s) => return Ok(()),
            },
        };
        if let Some(expected) = &self.config.expected_agent_id {
            if *expected != me.id {
                return Err(RuntimeError::WrongAgent {
                    expected: expected.clone(),
                    actual: me.id,
                });
            }
        }
        tracing::info!(agent = %me.id, handle = %me.handle, "agent identified");
        let mut socket_config = self.config.socket.clone();
        socket_config.agent_id = Some(me.id.clone());
        let (socket, mut events) = Socket::start(socket_config);
        let handler = self.handler.clone();
        let services = Services {
            api,
            handler: self.handler.clone(),
            me_id: me.id.clone(),
            // The ledger tells the handler when a message is settled, and
            // nothing else does: one owner for a message id's fate.
            ledger: MessageLedger::new(tunables.completed_capacity, move |id| handler.settled(id)),
            tunables,
            observer: self
                .config
                .observer
                .clone()
                .unwrap_or_else(|| Arc::new(Unobserved)),
        };
        let mut sup = Supervisor::new(services, me, socket, self.shutdown.clone(), self.rooms);
        let result = tokio::select! {
            r = sup.startup() => r,
            _ = stop.wait_for(|s| *s) => Ok(()),
        };
        let result = match result {
            Ok(()) => sup.serve(&mut events).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            tracing::error!(error = %crate::error_chain::Chain(&e), "runtime stopping");
        }
        sup.finish().await;
        result
    }
}
