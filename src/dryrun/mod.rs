//! Workflows run with no network: `switchboard test` (the `*.test.yaml`
//! format in [`spec`], run by [`suite`]), `explain` and `--explain` (the trace
//! as text, [`explain`]), and `replay` / `run --record` ([`record`]).

pub mod explain;
pub mod record;
pub mod spec;
pub mod suite;
