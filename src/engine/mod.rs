//! Pure matching and rendering of rules against events, and the execution of
//! the rendered actions through an [`action::Executor`].

pub mod action;
pub mod execute;
