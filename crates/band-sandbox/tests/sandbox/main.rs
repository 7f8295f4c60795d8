//! The sandbox's integration tests, one binary: the REST surface over
//! loopback ([`rest`]), the Phoenix socket endpoint ([`ws`]), and our
//! platform clients against the sandbox ([`platform`]).

mod fixtures;
mod platform;
mod rest;
mod ws;
