//! Talking to the platform: wire types, REST client, Phoenix socket client.
//! Knows nothing of rules.

pub mod events;
pub mod frame;
pub mod model;
pub mod rest;
pub mod socket;
