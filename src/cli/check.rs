//! `switchboard check`: load and compile a workflows folder, report every error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use switchboard_workflow::{self, Ruleset};

/// Arguments of `switchboard check`.
#[derive(Debug, Args)]
#[command(after_help = "\
Exit status: 0 when every workflow loads and compiles, 1 when any does not
(all errors are listed, each with file:line:column and the offending line).")]
pub struct CheckArgs {
    /// Workflows folder (every *.yaml / *.yml under it, recursively, except *.test.yaml).
    #[arg(default_value = "workflows")]
    dir: PathBuf,

    /// Check a fleet file (`run --fleet`) and every agent's workflows folder instead.
    #[arg(long, value_name = "FLEET.yaml")]
    fleet: Option<PathBuf>,
}

/// Loads the folder; prints a summary or the errors.
pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    if let Some(fleet) = &args.fleet {
        return Ok(super::fleet::check(fleet));
    }
    match load(&args.dir) {
        Some(ruleset) => {
            println!("ok: {} rules in {}", ruleset.len(), args.dir.display());
            Ok(ExitCode::SUCCESS)
        }
        None => Ok(ExitCode::FAILURE),
    }
}

/// Loads a workflows folder, or prints every error (and their count) to stderr.
pub fn load(dir: &Path) -> Option<Ruleset> {
    match switchboard_workflow::load_dir(dir) {
        Ok(ruleset) => Some(ruleset),
        Err(errors) => {
            eprint!("{errors}");
            eprintln!(
                "\n{} error{} in {}",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
                dir.display()
            );
            None
        }
    }
}
