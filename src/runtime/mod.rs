//! The agent's life on the platform: startup sync, rooms coming and going,
//! the message lifecycle, de-duplication, reconnects and shutdown.

pub mod handler;
