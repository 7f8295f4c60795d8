//! A client for the Band platform: the retrying REST client ([`rest`]) and
//! the Phoenix channels socket ([`socket`]). Knows nothing of rules.

pub mod rest;
pub mod socket;
