//! Workflows: YAML files in, a compiled, immutable [`Ruleset`] out.
//!
//! `load` finds and reads files, `yaml` parses them keeping positions,
//! `include` resolves what each file brings in from others (`include:`,
//! `kind: library`), `compile` checks and compiles every rule, `schema` holds the format's
//! types (and the JSON Schema), `template` the minijinja environment,
//! `time` time zones and the `time` condition, `secrets` where secret values
//! come from and how they are kept out of everything the agent writes.

pub mod actions;
pub mod compile;
pub mod duration;
pub mod error;
pub mod include;
pub mod load;
pub mod pattern;
pub mod prefilter;
pub mod reload_cache;
pub mod rule;
pub mod ruleset;
pub mod schema;
pub mod secrets;
pub mod template;
pub mod time;
pub mod yaml;

pub use error::{LoadError, LoadErrors};
pub use load::{load_dir, load_sources, load_str};
pub use ruleset::Ruleset;
pub use schema::json_schema;
