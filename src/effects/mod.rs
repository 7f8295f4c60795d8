//! The engine's effects as this binary performs them: rendered actions as
//! REST calls on the platform ([`rest`]).

pub mod rest;
