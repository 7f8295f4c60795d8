//! `check --fleet` and `run --fleet`: the fleet file's front end.

use std::path::Path;
use std::process::ExitCode;

use crate::fleet::{self, CheckOutcome};

/// Prints what `check --fleet` found; exit 1 when anything is wrong.
pub fn check(path: &Path) -> ExitCode {
    match fleet::check(path) {
        CheckOutcome::File(e) => {
            eprintln!("{}", crate::error_chain::Chain(&e));
            ExitCode::FAILURE
        }
        CheckOutcome::Agents(agents) => {
            let mut failed = 0;
            for (name, loaded) in agents {
                match loaded {
                    Ok(rules) => println!("ok: agent {name}: {rules} rules"),
                    Err(errors) => {
                        failed += 1;
                        for e in errors.errors() {
                            eprint!("[{name}] {e}");
                        }
                        eprintln!(
                            "[{name}] {} error{} in the workflows of agent {name}\n",
                            errors.len(),
                            if errors.len() == 1 { "" } else { "s" }
                        );
                    }
                }
            }
            match failed {
                0 => ExitCode::SUCCESS,
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// What `run --fleet` takes besides the file.
pub struct RunOptions {
    /// REST base URL when the file gives none.
    pub rest_url: String,
    /// WebSocket URL when the file gives none.
    pub ws_url: String,
    /// Serve `/metrics` and `/healthz` here.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// The root of the agents' state directories.
    pub state_root: Option<std::path::PathBuf>,
    /// Follow edits of the fleet file.
    pub watch: bool,
    /// `--store`, over the file's `store:`.
    pub store: Option<fleet::StoreUrl>,
    /// `--max-agents`.
    pub max_agents: Option<usize>,
    /// `--lease`.
    pub lease: std::time::Duration,
}

/// `run --fleet`: every agent of the file until Ctrl-C or SIGTERM.
pub async fn run(path: &Path, options: RunOptions) -> anyhow::Result<ExitCode> {
    let config = fleet::supervise::FleetConfig {
        rest_url: options.rest_url,
        ws_url: options.ws_url,
        metrics_addr: options.metrics_addr,
        state_root: options.state_root,
        watch: options.watch,
        new_redaction: std::sync::Arc::new(super::logging::agent_redaction),
        store: options.store,
        max_agents: options.max_agents,
        lease: options.lease,
    };
    fleet::supervise::run(path, config, super::sandbox::shutdown_signal()).await?;
    tracing::info!("fleet stopped");
    Ok(ExitCode::SUCCESS)
}
