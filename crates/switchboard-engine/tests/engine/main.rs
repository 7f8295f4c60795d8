//! The engine's integration tests, one binary: rules evaluated against events
//! (`eval`), the literal prefilter against a tracing engine (`prefilter`), and
//! every registered action agreeing across schema, loader, renderer and
//! executor (`actions_agree`); `time` conditions and `local_now` across
//! daylight saving (`time`); throttle windows kept through a persistence
//! and loaded by a new engine (`throttles`). No network: a `RecordingExecutor` stands in.

mod actions_agree;
mod calls;
mod conversations;
mod eval;
mod limits;
mod prefilter;
mod replies;
mod secrets;
mod throttles;
mod time;
