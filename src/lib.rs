//! switchboard: a rule-driven agent for the Band platform. The workflow
//! language, the engine, the platform client and the sandbox are crates of
//! their own under `crates/`; this crate assembles them into the agent, the
//! runtime and the command line.

pub mod agent;
pub mod bench;
pub mod cli;
pub mod dryrun;
pub mod effects;
pub mod error_chain;
pub mod fleet;
pub mod rules;
pub mod runtime;
pub mod task;
pub mod telemetry;
pub mod webhooks;
