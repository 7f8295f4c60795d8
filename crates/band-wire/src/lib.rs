//! The Band platform's wire types: every REST JSON shape ([`model`]), socket
//! events typed and validated ([`events`]), what an event is about and the
//! conversions between payloads and models ([`facts`]), mentions written in
//! message text ([`mentions`]), and Phoenix v2 frames ([`frame`]).
//! Parses platform JSON; does no I/O.

pub mod events;
pub mod facts;
pub mod frame;
pub mod mentions;
pub mod model;
