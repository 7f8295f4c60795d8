//! In-memory emulator of the platform: the agent REST API, a subset of the
//! human API, the Phoenix sockets, and `/_sandbox/*` control endpoints.

pub mod hub;
pub mod ws;
