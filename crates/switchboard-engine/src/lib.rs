//! Pure matching and rendering of rules against events, and the running of
//! the rendered actions through an [`action::Executor`]. No I/O of its own:
//! the journal, the state and the throttle windows are kept through
//! [`journal::JournalStore`], [`state::StatePersistence`] and
//! [`throttle::ThrottlePersistence`], which the binary implements.

pub mod action;
pub mod captures;
pub mod context;
pub mod conversation;
pub mod evaluate;
pub mod journal;
pub mod recording;
pub mod render;
pub mod run;
pub mod state;
pub mod throttle;

pub use conversation::{AnswerCheck, AttachError, PendingConversation, Resume};
pub use journal::{Journal, JournalStore};
pub use recording::RecordingExecutor;
pub use run::{Engine, EventInput, Finish, Report};
pub use state::{StatePersistence, StateStore};
pub use throttle::{ThrottleError, ThrottlePersistence, ThrottleRun};
