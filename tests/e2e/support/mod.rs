//! Helpers the e2e modules share: the binary as a process (`cli`), a running
//! agent with channels (`harness`), seeded sandboxes (`seeded`), the Python venv
//! with the official SDK (`venv`), a real `redis-server` (`redis`).

pub mod cli;
pub mod harness;
pub mod redis;
pub mod seeded;
pub mod venv;
