//! In-memory emulator of the platform: the agent REST API, a subset of the
//! human API, the Phoenix sockets, `/_sandbox/*` control endpoints, and a
//! web console at `/`.
//!
//! Public surface: [`Sandbox`] (state + hub + faults), [`Sandbox::router`],
//! [`serve`], and the seed loaders re-exported from [`seed`].

pub mod console;
pub mod control;
pub mod error;
pub mod hub;
pub mod rest;
pub mod seed;
pub mod world;
pub mod ws;

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

use band_wire::model::EntityType;
use control::Faults;
use error::ApiError;
use hub::{Hub, Principal, SocketBackend};
use world::{Changed, World};

pub use seed::{default_seed, load_seed, parse_seed, Seed, SeedError};

/// The sandbox: platform state, the socket hub, armed faults, and the seed
/// it was built from (for `/_sandbox/reset`).
pub struct Sandbox {
    world: Mutex<World>,
    initial: World,
    hub: Hub,
    faults: Mutex<Faults>,
    seed: Seed,
    /// The console's default agent feed (an agent's metrics server), if known.
    agent_feed: Mutex<Option<String>>,
}

impl Sandbox {
    /// Builds a sandbox from a seed (validated again, so hand-built seeds are safe).
    pub fn new(seed: Seed) -> Result<Arc<Sandbox>, SeedError> {
        // Re-validate: a Seed may have been built in code rather than parsed.
        let origin = if seed.origin.is_empty() {
            "<seed>"
        } else {
            seed.origin.as_str()
        };
        seed::validate_seed(&seed, origin)?;
        let initial = World::from_seed(&seed);
        Ok(Arc::new(Sandbox {
            world: Mutex::new(initial.clone()),
            initial,
            hub: Hub::default(),
            faults: Mutex::new(Faults::default()),
            seed,
            agent_feed: Mutex::new(None),
        }))
    }

    /// All routes: `/api/v1/agent/*`, `/api/v1/me/*`, `/_sandbox/*`, the console, with the
    /// fault middleware on `/api/v1/*` and the platform's 404 for the rest.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .merge(
                Router::new()
                    .merge(rest::agent::routes())
                    .merge(
                        rest::human::routes().route_layer(axum::middleware::from_fn_with_state(
                            self.clone(),
                            rest::guard::human_query,
                        )),
                    )
                    // Matched routes only: an unknown path stays a plain 404.
                    .route_layer(axum::middleware::from_fn(rest::guard::json_body)),
            )
            .merge(control::routes())
            .merge(console::routes())
            .fallback(not_found)
            .method_not_allowed_fallback(not_found)
            .with_state(self.clone())
            .merge(ws::routes(self.clone()))
            // Outermost, so faults reach the socket upgrade too.
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                control::fault_layer,
            ))
    }

    /// The hub pushes are published on.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The seed this sandbox was built from.
    pub fn seed(&self) -> &Seed {
        &self.seed
    }

    /// The agent feed the console uses by default (see [`console`]).
    pub fn agent_feed(&self) -> Option<String> {
        self.agent_feed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sets the console's default agent feed: the base URL of an agent's
    /// metrics server (`run --metrics-addr`), whose `/handled` it reads.
    pub fn set_agent_feed(&self, url: Option<String>) {
        *self.agent_feed.lock().unwrap_or_else(|e| e.into_inner()) = url;
    }

    /// The platform state (never hold the guard across an `.await`).
    /// Requests whose time is up are expired first, so every answer sees them
    /// as `expired` even before the background sweep has pushed it.
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        // A panicked handler must not wedge the sandbox.
        let mut world = self.world.lock().unwrap_or_else(|e| e.into_inner());
        let effects = world.expire_requests(Instant::now());
        if !effects.is_empty() {
            // Same lock order as `change`: world, then hub.
            self.hub.apply(effects);
        }
        world
    }

    /// When the next pending contact request expires, if any does.
    fn next_expiry(&self) -> Option<Instant> {
        self.world().next_expiry()
    }

    /// Runs a changing world operation and publishes the pushes it caused.
    pub(crate) fn change<T>(
        &self,
        op: impl FnOnce(&mut World) -> Changed<T>,
    ) -> Result<T, ApiError> {
        let mut world = self.world();
        let (reply, effects) = op(&mut world)?;
        // Published before the world is unlocked, so pushes go out in the
        // order of the changes that caused them (lock order: world, then hub).
        self.hub.apply(effects);
        Ok(reply)
    }

    /// The armed faults (never hold the guard across an `.await`).
    pub(crate) fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Back to the seed: same ids, no messages or requests beyond it, no
    /// faults, every socket dropped.
    pub fn reset(&self) {
        tracing::info!("sandbox reset to its seed");
        *self.world() = self.initial.clone();
        self.faults().clear();
        self.hub.set_heartbeats_ignored(false);
        self.hub.drop_all();
    }

    /// The caller of a REST request, which must be of `kind`: a missing or
    /// unknown key is 401, a key of the other kind is 403.
    pub(crate) fn caller(
        &self,
        headers: &HeaderMap,
        kind: EntityType,
    ) -> Result<Principal, ApiError> {
        let key = headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| ApiError::unauthorized("missing X-API-Key header"))?;
        let who = self
            .world()
            .authenticate(key)
            .ok_or_else(|| ApiError::unauthorized("invalid API key"))?;
        if who.kind != kind {
            let msg = match kind {
                EntityType::Agent => "this endpoint needs an agent API key",
                EntityType::User => "this endpoint needs a user API key",
            };
            return Err(ApiError::forbidden(msg));
        }
        Ok(who)
    }
}

impl SocketBackend for Sandbox {
    fn authenticate(&self, api_key: &str) -> Option<Principal> {
        self.world().authenticate(api_key)
    }

    fn can_join(&self, who: &Principal, topic: &str) -> Result<Value, String> {
        self.world().can_join(who, topic).map(|()| json!({}))
    }

    fn hub(&self) -> &Hub {
        &self.hub
    }
}

async fn not_found(method: Method, uri: Uri) -> Response {
    ApiError::not_found(format!("no route for {method} {}", uri.path())).into_response()
}

/// Serves the sandbox on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    sandbox: Arc<Sandbox>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let app = sandbox.router();
    // Socket pushes are small frames written one by one: with Nagle's
    // algorithm on, a push behind an unacknowledged one waits for the
    // peer's delayed ACK (up to 40 ms), as the platform's own servers do not.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let sweeper = tokio::spawn(expire_requests(Arc::downgrade(&sandbox)));
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    sweeper.abort();
    served
}

/// Expires contact requests on time, so both parties hear it without
/// waiting for some other request to touch the world. Wakes at the next
/// deadline, and at least every 250 ms to see requests made meanwhile.
async fn expire_requests(sandbox: Weak<Sandbox>) {
    const AT_MOST: Duration = Duration::from_millis(250);
    loop {
        let Some(sb) = sandbox.upgrade() else { return };
        let wait = sb
            .next_expiry()
            .map_or(AT_MOST, |t| t.saturating_duration_since(Instant::now()))
            .min(AT_MOST);
        drop(sb);
        tokio::time::sleep(wait).await;
    }
}

/// A sandbox served in the background: for the CLI, the demo and tests.
pub struct RunningSandbox {
    addr: std::net::SocketAddr,
    sandbox: Arc<Sandbox>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningSandbox {
    /// Binds `addr` (port 0 picks a free port) and serves `seed` in a background task.
    pub async fn start(
        addr: std::net::SocketAddr,
        seed: Seed,
    ) -> Result<RunningSandbox, StartError> {
        let sandbox = Sandbox::new(seed)?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, sandbox.clone(), async move {
            let _ = rx.await;
        }));
        Ok(RunningSandbox {
            addr,
            sandbox,
            stop: Some(tx),
            task,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Base URL for REST clients, e.g. `http://127.0.0.1:4000`.
    pub fn rest_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The WebSocket endpoint, e.g. `ws://127.0.0.1:4000/api/v1/socket/websocket`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}{}", self.addr, ws::SOCKET_PATH)
    }

    /// The sandbox state, for in-process inspection.
    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// Stops accepting, drops every socket and waits for the server to end.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        self.sandbox.hub().drop_all();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

impl Drop for RunningSandbox {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why a sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The seed is invalid.
    #[error(transparent)]
    Seed(#[from] SeedError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}
