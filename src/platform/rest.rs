//! Typed REST client of the agent API (see issue 2, item 3).
