//! The workflow language's integration tests: every load error, with its
//! file, line and column (`load`); the folder walk against hostile folders
//! (`folder`).

mod folder;
mod load;
