//! The Band platform's wire types: every REST JSON shape ([`model`]), socket
//! events typed and validated ([`events`]) and Phoenix v2 frames ([`frame`]).
//! Parses platform JSON; does no I/O.

pub mod events;
pub mod frame;
pub mod model;
