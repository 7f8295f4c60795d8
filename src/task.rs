//! Spawning that keeps the caller's tracing span: a fleet runs each agent
//! in a span carrying `agent=NAME`, and every task that agent starts (rooms,
//! the lifecycle, timers) logs under it, so each line says whose it is.

use std::future::Future;

use tokio::task::JoinHandle;
use tracing::Instrument;

/// `tokio::spawn`, the task entered in the current span.
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future.in_current_span())
}
