//! The command line: one module per subcommand; `anyhow` lives only here.

mod check;
mod demo;
mod logging;
mod run;
mod sandbox;
mod schema;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// switchboard: a rule-driven agent for the Band platform, written as YAML workflows.
///
/// It listens to the platform's WebSocket channels, matches each event against
/// rules, and answers through the platform's REST API inside the message
/// processing lifecycle. `switchboard sandbox` serves an in-memory emulator of
/// the platform on localhost, for trying workflows and running tests offline.
#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Log output format.
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Text)]
    log_format: logging::LogFormat,

    /// More log detail (-v: debug, -vv: trace). RUST_LOG, when set, wins.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Play a scripted conversation against the sandbox and show what the rules did.
    Demo(demo::DemoArgs),
    /// Run the agent: connect, follow every room, answer events with the workflows.
    Run(run::RunArgs),
    /// Validate a workflows folder; lists every error with file:line:column.
    Check(check::CheckArgs),
    /// Run the workflow tests (*.test.yaml) with no network; reports like `cargo test`.
    Test(test::TestArgs),
    /// Print the JSON Schema of the workflow format (--tests: of test files).
    Schema(schema::SchemaArgs),
    /// Serve the platform emulator (agent API, human API, sockets) on localhost.
    Sandbox(sandbox::SandboxArgs),
}

/// Runs the CLI and turns errors into an exit code with a readable message.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet = matches!(cli.command, Command::Demo(_));
    logging::init(cli.log_format, cli.verbose, quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => demo::run(args).await,
            Command::Run(args) => run::run(args).await,
            Command::Check(args) => check::run(args),
            Command::Test(args) => test::run(args).await,
            Command::Schema(args) => schema::run(args),
            Command::Sandbox(args) => sandbox::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
