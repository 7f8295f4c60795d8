//! The engine's effects as this binary performs them: rendered actions as
//! REST calls on the platform ([`rest`]), the action journal ([`journal`]),
//! the rules' state ([`state_file`]), the pending conversations
//! ([`conversation_file`]) and the throttle windows ([`throttle_file`]) on disk, each written by a
//! dedicated thread ([`writer`]) so the async runtime never waits on a disk;
//! all live in the agent's locked state directory ([`state_dir`]) by default,
//! as does the queue of accepted webhook deliveries ([`webhook_queue`]).

pub mod conversation_file;
pub mod journal;
pub mod llm;
pub mod redis;
pub mod rest;
pub(crate) mod snapshot_log;
pub mod state_dir;
pub mod state_file;
pub mod throttle_file;
pub mod webhook_queue;
pub mod writer;
