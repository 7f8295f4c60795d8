//! The band-client integration tests, as one binary: the REST clients against
//! a scripted axum server, and the Phoenix socket against a fake server.

mod fake_phoenix;
mod rest;
mod rest_server;
mod socket;
