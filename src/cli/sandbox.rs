//! `switchboard sandbox`: serve the platform emulator until Ctrl-C.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use band_sandbox::{default_seed, load_seed, RunningSandbox, Seed, SeedError};

/// Arguments of `switchboard sandbox`.
#[derive(Debug, Args)]
#[command(after_help = "\
Agents connect with their api_key from the seed:
  REST       http://ADDR/api/v1/agent/...    (header X-API-Key)
  WebSocket  ws://ADDR/api/v1/socket/websocket?vsn=2.0.0&agent_id=ID
People use their user api_key on http://ADDR/api/v1/me/...
The console at http://ADDR/ acts as the seeded people in a browser; give it
--agent-feed http://METRICS_ADDR (an agent's `run --metrics-addr`) to show
which rule handled each message.
Control (no auth; loopback only): GET /_sandbox/state, POST /_sandbox/reset,
GET|POST /_sandbox/faults, GET /_sandbox/users, GET /_sandbox/rooms/ID/messages.
See the README for the fault syntax.")]
pub struct SandboxArgs {
    /// Address to listen on. Port 0 picks a free port; the real one is printed.
    /// The control endpoints have no authentication: keep this on loopback.
    #[arg(long, default_value = "127.0.0.1:4000")]
    listen: SocketAddr,

    /// Seed file (YAML) with users, agents, rooms and contacts.
    /// Default: the built-in copy of examples/sandbox-seed.yaml.
    #[arg(long)]
    seed: Option<PathBuf>,

    /// The console's default agent feed: the base URL of an agent's metrics
    /// server (`switchboard run --metrics-addr`), e.g. http://127.0.0.1:9464.
    /// The console reads its /handled to show which rule handled a message.
    #[arg(long, value_name = "URL", value_parser = parse_feed)]
    agent_feed: Option<String>,

    /// Allow --listen on an address other than loopback. The control
    /// endpoints (faults, reset) have no authentication.
    #[arg(long)]
    allow_remote: bool,
}

/// Serves until Ctrl-C (or SIGTERM), then stops cleanly.
pub async fn run(args: SandboxArgs) -> anyhow::Result<ExitCode> {
    let seed = match &args.seed {
        Some(path) => match seed_or_report(path)? {
            Some(seed) => seed,
            None => return Ok(ExitCode::FAILURE),
        },
        None => default_seed(),
    };
    // The control endpoints let anyone reset the world or inject faults, so
    // reaching them from other machines must be asked for explicitly.
    if !args.listen.ip().is_loopback() {
        if !args.allow_remote {
            anyhow::bail!(
                "refusing to listen on {}: the sandbox's control endpoints have no authentication; \
                 use a loopback address (127.0.0.1) or pass --allow-remote",
                args.listen
            );
        }
        tracing::warn!(
            listen = %args.listen,
            "listening beyond loopback: the control endpoints (/_sandbox/...) have no authentication"
        );
    }
    let running = RunningSandbox::start(args.listen, seed).await?;
    running.sandbox().set_agent_feed(args.agent_feed);
    let stop = shutdown_signal();
    // Scripts wait for this exact line on stdout, and may stop reading after
    // it: anything more goes to the log (a closed pipe would fail a print).
    println!("listening on {}", running.rest_url());
    tracing::info!(ws = %running.ws_url(), console = %format!("{}/", running.rest_url()), "sandbox ready");
    stop.await;
    tracing::info!("stopping sandbox");
    running.shutdown().await.context("sandbox server failed")?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled: a signal that arrives right
/// after a ready line (scripts send one as soon as they read it) is not lost.
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// An http(s) URL, kept without a trailing slash (the console appends `/handled`).
fn parse_feed(s: &str) -> Result<String, String> {
    let url = url::Url::parse(s).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must start with http:// or https://".into());
    }
    Ok(s.trim_end_matches('/').to_owned())
}

/// Loads a seed file; a seed with problems has them all printed to stderr,
/// shaped like `check`'s errors, and gives `None`.
pub(crate) fn seed_or_report(path: &Path) -> anyhow::Result<Option<Seed>> {
    match load_seed(path) {
        Ok(seed) => Ok(Some(seed)),
        Err(e @ SeedError::Invalid { .. }) => {
            eprint!("{e}");
            eprintln!("\nthe seed {} has errors", path.display());
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}
