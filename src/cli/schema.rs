//! `switchboard schema`: print the JSON Schema of the workflow format (or of
//! workflow tests).

use std::process::ExitCode;

use clap::Args;

/// Arguments of `switchboard schema`.
#[derive(Debug, Args)]
#[command(after_help = "\
Editors that speak the YAML language server pick the schema up from a first-line comment:
  # yaml-language-server: $schema=../schemas/workflow.schema.json")]
pub struct SchemaArgs {
    /// The schema of test files (*.test.yaml) instead.
    #[arg(long)]
    tests: bool,
}

/// Prints the schema the loader's own types generate.
pub fn run(args: SchemaArgs) -> anyhow::Result<ExitCode> {
    let schema = match args.tests {
        false => switchboard_workflow::json_schema(),
        true => crate::dryrun::spec::json_schema(),
    };
    println!("{}", serde_json::to_string_pretty(&schema)?);
    Ok(ExitCode::SUCCESS)
}
