//! Log setup: human-readable text or one JSON object per line, on stderr.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    /// Readable text lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// How much a command logs when no `-v` is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quiet {
    /// Everything from info up (the agent, the sandbox).
    No,
    /// Warnings and errors (the demo, whose transcript is its output).
    Warnings,
    /// Errors only (dry runs: the workflows' own `log` lines and the
    /// failures a test provokes on purpose are part of the result, not news).
    Errors,
}

/// Installs the global subscriber. `RUST_LOG` overrides the verbosity flags.
pub fn init(format: LogFormat, verbose: u8, quiet: Quiet) {
    let default = match verbose {
        0 if quiet == Quiet::Warnings => "warn",
        0 if quiet == Quiet::Errors => "error",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // tungstenite traces the raw upgrade request, API key header included;
    // this directive is more specific than any RUST_LOG target, so it holds.
    // Never more verbose than the default either (a quiet demo or bench must
    // not print its debug lines).
    let handshake = match default {
        "error" | "warn" => default,
        _ => "info",
    };
    let filter = match format!("tungstenite::handshake={handshake}").parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in files or pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // A second init (e.g. in tests) is harmless: keep the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
