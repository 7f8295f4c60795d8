//! Pure matching and rendering of rules against events, and the running of
//! the rendered actions through an [`action::Executor`].

pub mod action;
pub mod captures;
pub mod context;
pub mod dry_run;
pub mod evaluate;
pub mod journal;
pub mod render;
pub mod run;
pub mod state;

pub use dry_run::RecordingExecutor;
pub use run::{Engine, EventInput, Outcome, Report};
pub use state::StateStore;
