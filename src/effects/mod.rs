//! The engine's effects as this binary performs them: rendered actions as
//! REST calls on the platform ([`rest`]), the action journal ([`journal`])
//! and the rules' state ([`state_file`]) on disk, both written by a
//! dedicated thread ([`writer`]) so the async runtime never waits on a disk;
//! both live in the agent's locked state directory ([`state_dir`]) by default.

pub mod journal;
pub mod llm;
pub mod rest;
pub mod state_dir;
pub mod state_file;
pub mod writer;
