//! The workflow language's integration tests: every load error, with its
//! file, line and column (`load`).

mod limits;
mod load;
