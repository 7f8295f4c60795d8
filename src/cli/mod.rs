//! The command line: one module per subcommand; `anyhow` lives only here.

mod bench;
mod check;
mod demo;
mod explain;
mod fleet;
mod init;
mod logging;
mod replay;
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
    Run(Box<run::RunArgs>),
    /// Validate a workflows folder; lists every error with file:line:column.
    Check(check::CheckArgs),
    /// Create a starter workflows folder: one rule, its tests, the schemas.
    Init(init::InitArgs),
    /// Run the workflow tests (*.test.yaml) with no network; reports like `cargo test`.
    Test(test::TestArgs),
    /// Show why the rules do what they do with one event: every condition, what it saw, the actions.
    Explain(explain::ExplainArgs),
    /// Run a recorded event stream (`run --record`) through the workflows, dry.
    Replay(replay::ReplayArgs),
    /// Print the JSON Schema of the workflow format (--tests: of test files).
    Schema(schema::SchemaArgs),
    /// Serve the platform emulator (agent API, human API, sockets) on localhost.
    Sandbox(sandbox::SandboxArgs),
    /// Load test: people send messages, agents answer; latency, throughput, CPU and memory.
    Bench(Box<bench::BenchArgs>),
}

/// Runs the CLI and turns errors into an exit code with a readable message.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet = match cli.command {
        Command::Demo(_) | Command::Bench(_) => logging::Quiet::Warnings,
        Command::Test(_) | Command::Explain(_) | Command::Replay(_) => logging::Quiet::Errors,
        _ => logging::Quiet::No,
    };
    if matches!(
        cli.command,
        Command::Check(_)
            | Command::Init(_)
            | Command::Test(_)
            | Command::Explain(_)
            | Command::Replay(_)
            | Command::Schema(_)
    ) {
        die_quietly_on_closed_pipe();
    }
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
            Command::Run(args) => run::run(*args).await,
            Command::Check(args) => check::run(args),
            Command::Init(args) => init::run(args),
            Command::Test(args) => test::run(args).await,
            Command::Explain(args) => explain::run(args).await,
            Command::Replay(args) => replay::run(args).await,
            Command::Schema(args) => schema::run(args),
            Command::Bench(args) => bench::run(*args).await,
            Command::Sandbox(args) => sandbox::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            // Positioned errors (a file's) already begin with `error:`.
            let text = format!("{e:#}");
            match text.starts_with("error: ") {
                true => eprintln!("{text}"),
                false => eprintln!("error: {text}"),
            }
            ExitCode::FAILURE
        }
    }
}

/// Commands that print and exit (`explain ... | head`) end silently when the
/// reader goes away, like other Unix tools, instead of panicking in `println!`.
/// Not for `run` and `sandbox`: they own sockets and must never die of SIGPIPE.
fn die_quietly_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread
    // is started; no handler is installed.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
