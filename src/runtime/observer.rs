//! What the runtime tells an onlooker (metrics, health checks) about the
//! socket and the message lifecycle. Plain calls with no-op defaults, so the
//! runtime stays free of any metrics library.

/// One of the lifecycle's POSTs on a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LifecycleMark {
    /// `POST .../processing`: the message is claimed.
    Processing,
    /// `POST .../processed`: the handler succeeded.
    Processed,
    /// `POST .../failed`: the handler failed.
    Failed,
}

impl LifecycleMark {
    /// The mark as the platform's path segment names it.
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleMark::Processing => "processing",
            LifecycleMark::Processed => "processed",
            LifecycleMark::Failed => "failed",
        }
    }
}

/// Told about the socket and the lifecycle as they happen; every method
/// defaults to nothing. Calls are made from the runtime's tasks, so they
/// must be quick and must not block.
pub trait Observer: Send + Sync {
    /// The socket is connected (`reconnect` is false the first time).
    fn socket_connected(&self, reconnect: bool) {
        let _ = reconnect;
    }

    /// The socket dropped (a reconnect may follow) or stopped for good.
    fn socket_disconnected(&self) {}

    /// A lifecycle POST went through (`ok`) or failed; every try counts.
    fn lifecycle_mark(&self, mark: LifecycleMark, ok: bool) {
        let _ = (mark, ok);
    }
}

/// The observer of a runtime nobody watches.
pub(crate) struct Unobserved;

impl Observer for Unobserved {}
