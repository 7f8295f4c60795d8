//! The agent's decisions: each runtime event becomes an engine input
//! ([`input`]) and runs through the rules ([`handler`]), every handled event is reported to
//! [`Sink`]s ([`handled`]), pending conversations wait for answers and
//! deadlines ([`conversations`]), the rules reload when their folder changes
//! ([`reload`]) and `on: schedule` rules fire from timers ([`schedule`]).
//! Knows nothing of telemetry, dry runs or how the agent is assembled.

pub mod conversations;
pub mod handled;
pub mod handler;
pub mod input;
pub mod reload;
pub mod schedule;
pub(crate) mod watch_hub;

pub use handled::{Handled, Sink};
pub use handler::RulesHandler;
pub use input::{event_input, typed_input, Chat, PreparedEvent};
