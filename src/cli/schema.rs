//! `switchboard schema`: print the JSON Schema of the workflow format.

use std::process::ExitCode;

/// Prints the schema the loader's own types generate.
pub fn run() -> anyhow::Result<ExitCode> {
    let schema = crate::workflow::json_schema();
    println!("{}", serde_json::to_string_pretty(&schema)?);
    Ok(ExitCode::SUCCESS)
}
