//! `switchboard sandbox`: serve the platform emulator until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::sandbox::{default_seed, load_seed, RunningSandbox};

/// Arguments of `switchboard sandbox`.
#[derive(Debug, Args)]
#[command(after_help = "\
Agents connect with their api_key from the seed:
  REST       http://ADDR/api/v1/agent/...    (header X-API-Key)
  WebSocket  ws://ADDR/api/v1/socket/websocket?vsn=2.0.0&agent_id=ID
People use their user api_key on http://ADDR/api/v1/me/...
Control (no auth; loopback only): GET /_sandbox/state, POST /_sandbox/reset,
GET|POST /_sandbox/faults. See the README for the fault syntax.")]
pub struct SandboxArgs {
    /// Address to listen on. Port 0 picks a free port; the real one is printed.
    /// The control endpoints have no authentication: keep this on loopback.
    #[arg(long, default_value = "127.0.0.1:4000")]
    listen: SocketAddr,

    /// Seed file (YAML) with users, agents, rooms and contacts.
    /// Default: the built-in copy of examples/sandbox-seed.yaml.
    #[arg(long)]
    seed: Option<PathBuf>,
}

/// Serves until Ctrl-C (or SIGTERM), then stops cleanly.
pub async fn run(args: SandboxArgs) -> anyhow::Result<ExitCode> {
    let seed = match &args.seed {
        Some(path) => load_seed(path)?,
        None => default_seed(),
    };
    let running = RunningSandbox::start(args.listen, seed).await?;
    // Scripts wait for this exact line on stdout.
    println!("listening on {}", running.rest_url());
    tracing::info!(ws = %running.ws_url(), "sandbox ready");
    shutdown_signal().await;
    tracing::info!("stopping sandbox");
    running.shutdown().await.context("sandbox server failed")?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
