//! Why the runtime could not start, or had to stop.

use band_client::rest::{ApiError, BuildError};
use band_client::socket::{SocketError, StopReason};

/// A fatal runtime error.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The HTTP client could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// `GET /agent/me` failed (after retries).
    #[error("cannot identify the agent (GET /agent/me)")]
    Me(#[source] ApiError),
    /// The API key belongs to another agent than the one configured.
    #[error("the API key belongs to agent {actual}, but agent {expected} was expected")]
    WrongAgent {
        /// The configured id.
        expected: String,
        /// The id `/agent/me` returned.
        actual: String,
    },
    /// A topic the runtime cannot work without could not be joined.
    #[error("cannot join {topic}")]
    Join {
        /// The topic.
        topic: String,
        /// Why.
        #[source]
        source: SocketError,
    },
    /// `GET /agent/chats` failed at startup.
    #[error("cannot list the agent's chat rooms")]
    ListChats(#[source] ApiError),
    /// The socket ended for good (auth refused, superseded, gave up, ...).
    #[error("the platform connection ended: {}", describe_stop(.0))]
    Stopped(StopReason),
}

/// A readable sentence for a [`StopReason`].
fn describe_stop(reason: &StopReason) -> String {
    match reason {
        StopReason::AuthFailed { status, body } => {
            format!("the platform refused the API key (HTTP {status}): {body}")
        }
        StopReason::Conflict { status, body } => {
            format!("another connection for this agent is live (HTTP {status}): {body}")
        }
        StopReason::Closed { code, reason } => {
            format!("the server closed the socket with code {code}: {reason}")
        }
        StopReason::Superseded => "another connection for this agent took over".into(),
        StopReason::Shutdown => "the socket was shut down".into(),
        StopReason::GaveUp => "reconnecting gave up".into(),
        StopReason::BadConfig(why) => format!("bad socket configuration: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopped_says_why() {
        let e = RuntimeError::Stopped(StopReason::Superseded);
        assert!(e.to_string().contains("took over"), "{e}");
        let e = RuntimeError::WrongAgent {
            expected: "a".into(),
            actual: "b".into(),
        };
        assert!(e.to_string().contains("agent b"), "{e}");
    }
}
