//! switchboard: a rule-driven agent for the Band platform, and an in-memory
//! sandbox of the platform to run it against offline.

pub mod agent;
pub mod bench;
pub mod cli;
pub mod dryrun;
pub mod engine;
pub mod platform;
pub mod runtime;
pub mod sandbox;
pub mod telemetry;
pub mod workflow;
