//! Log setup: human-readable text or one JSON object per line, on stderr,
//! each line with the workflows' secrets shown as `[secret:NAME]`.

use std::io::Write;
use std::sync::OnceLock;

use switchboard_workflow::secrets::Redaction;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// The secrets every log line is cleaned of: the agent this process runs
/// sets them when it loads (and reloads) its workflows.
pub fn redaction() -> Redaction {
    static LOGS: OnceLock<Redaction> = OnceLock::new();
    LOGS.get_or_init(Redaction::new).clone()
}

/// The redactions of a fleet's agents: each agent has its own (its
/// secrets change on its reloads), and every log line is cleaned of them all.
fn fleet_redactions() -> &'static std::sync::Mutex<Vec<Redaction>> {
    static AGENTS: OnceLock<std::sync::Mutex<Vec<Redaction>>> = OnceLock::new();
    AGENTS.get_or_init(Default::default)
}

/// A new redaction for one agent of a fleet, also applied to every log line.
pub fn agent_redaction() -> Redaction {
    let redaction = Redaction::new();
    fleet_redactions()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(redaction.clone());
    redaction
}

/// Makes a [`RedactingStderr`] per log line.
struct Redacted(Redaction);

impl<'a> MakeWriter<'a> for Redacted {
    type Writer = RedactingStderr;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingStderr(self.0.clone())
    }
}

/// Stderr that replaces secrets in what is written. The formatter writes
/// each line whole (one `write_all` of its buffer), so a secret is never
/// split across two writes.
struct RedactingStderr(Redaction);

impl Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut redactors = vec![self.0.current()];
        redactors.extend(
            fleet_redactions()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(Redaction::current),
        );
        let mut err = std::io::stderr().lock();
        match std::str::from_utf8(buf) {
            Ok(text) if redactors.iter().any(|r| !r.is_empty()) => {
                let mut text = text.to_owned();
                for r in redactors.iter().filter(|r| !r.is_empty()) {
                    text = r.redact(&text).into_owned();
                }
                err.write_all(text.as_bytes())?
            }
            _ => err.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

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
        .with_writer(Redacted(redaction()))
        // Colour codes only for a person at a terminal, not in files or pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // A second init (e.g. in tests) is harmless: keep the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
