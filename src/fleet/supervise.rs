//! Running a fleet: each agent in its own supervised task (a failure to
//! start or a crash is logged with `agent=NAME` and retried after a growing
//! pause, never touching the others), one metrics server for all, and the
//! fleet file watched: an edit starts, stops or restarts only the agents
//! whose entries changed.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::file::{self, AgentEntry, FleetFile, FleetFileError};
use crate::agent::{Agent, AgentConfig, StateDirChoice};
use crate::error_chain::Chain;
use crate::rules::reload::{hangup_signal, recv_hangup};
use crate::telemetry::fleet::{AgentState, FleetTelemetry};
use switchboard_workflow::secrets::Redaction;

/// The first pause before a failed agent is started again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest pause between two starts of a failing agent.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long a stopping agent may take before its task is cut short.
const STOP_LIMIT: Duration = Duration::from_secs(45);
/// Writes to the fleet file closer together than this are one edit.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// Makes the secret redaction of one agent (the CLI also hides its
/// secrets in the log lines).
pub type NewRedaction = Arc<dyn Fn() -> Redaction + Send + Sync>;

/// What `run --fleet` takes besides the file.
pub struct FleetConfig {
    /// REST base URL for agents when the file gives none.
    pub rest_url: String,
    /// WebSocket URL for agents when the file gives none.
    pub ws_url: String,
    /// Serve `/metrics` and `/healthz` for every agent here.
    pub metrics_addr: Option<SocketAddr>,
    /// Keep each agent's state in `<this>/<agent id>` instead of the default root.
    pub state_root: Option<PathBuf>,
    /// Follow edits of the fleet file.
    pub watch: bool,
    /// Each agent's redaction.
    pub new_redaction: NewRedaction,
}

/// Why a fleet cannot start (before any agent connects).
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The fleet file is unreadable or wrong.
    #[error(transparent)]
    File(#[from] FleetFileError),
    /// A shared store was asked for; this version keeps state locally.
    #[error("the fleet file asks for the store {url}, but shared stores are not wired yet in this version; remove `store:` to keep each agent's state in its local state directory")]
    StoreNotWired {
        /// The URL, its password hidden.
        url: String,
    },
    /// The metrics address cannot be listened on.
    #[error("cannot serve metrics on {addr}")]
    Metrics {
        /// The address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The fleet file's folder cannot be watched.
    #[error("cannot watch {path} for changes")]
    Watch {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: notify::Error,
    },
}

/// One agent as it runs: what it was started with, and how to stop it.
struct Running {
    started_with: Effective,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// An agent's entry with the fleet-wide settings it runs with: a change
/// in any part restarts it.
#[derive(Debug, Clone, PartialEq)]
struct Effective {
    entry: AgentEntry,
    rest_url: String,
    ws_url: String,
}

/// Runs every agent of the fleet file until `stop` resolves; then stops
/// them all (each finishes the event in hand).
pub async fn run(
    path: &Path,
    config: FleetConfig,
    stop: impl Future<Output = ()> + Send,
) -> Result<(), FleetError> {
    let fleet = file::load(path)?;
    refuse_store(&fleet)?;
    let telemetry = Arc::new(FleetTelemetry::new());
    let server = match config.metrics_addr {
        None => None,
        Some(addr) => {
            let listener = crate::telemetry::server::bind(addr)
                .await
                .map_err(|source| FleetError::Metrics { addr, source })?;
            let bound = listener.local_addr().unwrap_or(addr);
            tracing::info!(addr = %bound, "fleet metrics listening (/metrics, /healthz, /healthz/NAME)");
            let served = telemetry.clone();
            Some(tokio::spawn(async move {
                if let Err(e) = crate::telemetry::fleet::serve(listener, served).await {
                    tracing::error!(error = %Chain(&e), "metrics server stopped");
                }
            }))
        }
    };
    let (tx, mut edits) = mpsc::unbounded_channel::<()>();
    let _watcher = match config.watch {
        true => Some(watch_file(path, tx)?),
        false => None,
    };
    tracing::info!(file = %path.display(), agents = fleet.agents.len(), "fleet starting");
    let mut running: BTreeMap<String, Running> = BTreeMap::new();
    apply(&fleet, &config, &telemetry, &mut running).await;
    tokio::pin!(stop);
    let mut hangup = hangup_signal();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(()) = edits.recv() => {
                while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, edits.recv()).await {}
            }
            _ = recv_hangup(&mut hangup) => {
                tracing::info!(file = %path.display(), "SIGHUP: reading the fleet file again");
            }
        }
        match file::load(path)
            .map_err(FleetError::from)
            .and_then(|fleet| {
                refuse_store(&fleet)?;
                Ok(fleet)
            }) {
            Ok(fleet) => apply(&fleet, &config, &telemetry, &mut running).await,
            Err(e) => tracing::error!(
                file = %path.display(),
                "the edited fleet file is not used, the agents keep running as they were:\n{}",
                Chain(&e)
            ),
        }
    }
    tracing::info!(agents = running.len(), "stopping every agent");
    let stops: Vec<_> = std::mem::take(&mut running)
        .into_iter()
        .map(|(name, agent)| stop_agent(name, agent))
        .collect();
    futures_util::future::join_all(stops).await;
    if let Some(server) = server {
        server.abort();
    }
    Ok(())
}

/// Refuses a `store:` until shared stores are wired (its password hidden).
fn refuse_store(fleet: &FleetFile) -> Result<(), FleetError> {
    match &fleet.store {
        None => Ok(()),
        Some(url) => Err(FleetError::StoreNotWired {
            url: url.redacted(),
        }),
    }
}

/// Brings the running agents in line with `fleet`: stops the removed, starts
/// the new, restarts the changed; leaves the others alone.
async fn apply(
    fleet: &FleetFile,
    config: &FleetConfig,
    telemetry: &Arc<FleetTelemetry>,
    running: &mut BTreeMap<String, Running>,
) {
    let wanted: BTreeMap<String, Effective> = fleet
        .agents
        .iter()
        .map(|entry| {
            let effective = Effective {
                entry: entry.clone(),
                rest_url: fleet
                    .rest_url
                    .clone()
                    .unwrap_or_else(|| config.rest_url.clone()),
                ws_url: fleet
                    .ws_url
                    .clone()
                    .unwrap_or_else(|| config.ws_url.clone()),
            };
            (entry.name.clone(), effective)
        })
        .collect();
    let stale: Vec<String> = running
        .iter()
        .filter(|(name, r)| wanted.get(*name) != Some(&r.started_with))
        .map(|(name, _)| name.clone())
        .collect();
    let mut stops = Vec::new();
    for name in stale {
        if let Some(agent) = running.remove(&name) {
            let why = match wanted.contains_key(&name) {
                true => "its entry changed; restarting it",
                false => "removed from the fleet file; stopping it",
            };
            tracing::info!(agent = %name, "{why}");
            if !wanted.contains_key(&name) {
                telemetry.remove(&name);
            }
            stops.push(stop_agent(name, agent));
        }
    }
    // Stopped first: a restarted agent needs its state directory's lock back.
    futures_util::future::join_all(stops).await;
    for (name, effective) in wanted {
        if running.contains_key(&name) {
            continue;
        }
        let agent = start_agent(&name, effective, config, telemetry);
        running.insert(name, agent);
    }
}

/// Signals agent `name` to stop and waits (bounded) for its task.
async fn stop_agent(name: String, agent: Running) {
    let _ = agent.stop.send(true);
    let mut task = agent.task;
    if tokio::time::timeout(STOP_LIMIT, &mut task).await.is_err() {
        tracing::warn!(agent = %name, "the agent did not stop within {STOP_LIMIT:?}; cut short");
        task.abort();
    }
    tracing::info!(agent = %name, "agent stopped");
}

/// Spawns the supervised task of one agent.
fn start_agent(
    name: &str,
    effective: Effective,
    config: &FleetConfig,
    telemetry: &Arc<FleetTelemetry>,
) -> Running {
    if let super::KeySource::File(path) = &effective.entry.key_source {
        if file::readable_by_others(path) {
            tracing::warn!(agent = %name, file = %path.display(), "the API key file can be read by other users; chmod 600 it");
        }
    }
    let redaction = (config.new_redaction)();
    let shared = telemetry.add(name, redaction.clone());
    let entry = &effective.entry;
    let mut agent = AgentConfig::new(
        effective.rest_url.clone(),
        effective.ws_url.clone(),
        entry.api_key.clone(),
        entry.workflows.clone(),
    );
    agent.agent_id = Some(entry.agent_id.clone());
    agent.state_dir = match (entry.ephemeral, &config.state_root) {
        (true, _) => StateDirChoice::Ephemeral,
        // The id is one plain path component (checked with the file) and
        // the key's agent (checked before the directory is opened).
        (false, Some(root)) => StateDirChoice::At(root.join(&entry.agent_id)),
        (false, None) => StateDirChoice::Default,
    };
    agent.allow_env = entry.allow_env.clone();
    agent.allow_http_hosts = entry.allowed_hosts();
    agent.watch = entry.watch;
    agent.explain = entry.explain;
    if let Some(n) = entry.max_attempts {
        agent.max_attempts = n;
    }
    if let Some(d) = entry.retry_delay {
        agent.retry_delay = d;
    }
    agent.redaction = redaction;
    let (stop, stopped) = watch::channel(false);
    let span = tracing::info_span!("agent", agent = %name);
    let task = tokio::spawn(
        supervise(name.to_owned(), agent, shared, telemetry.clone(), stopped).instrument(span),
    );
    Running {
        started_with: effective,
        stop,
        task,
    }
}

/// Resolves once `stopped` says so (or its sender is gone).
async fn stop_requested(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// Starts the agent, runs it, and starts it again after a pause whenever
/// it fails to start, stops with an error or panics, until asked to stop.
async fn supervise(
    name: String,
    config: AgentConfig,
    shared: Arc<crate::telemetry::Telemetry>,
    fleet: Arc<FleetTelemetry>,
    stopped: watch::Receiver<bool>,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        fleet.set_state(&name, AgentState::Starting);
        let attempt = {
            let (config, shared, fleet, name) =
                (config.clone(), shared.clone(), fleet.clone(), name.clone());
            let (stop_start, stop_run) = (stopped.clone(), stopped.clone());
            let span = tracing::Span::current();
            tokio::spawn(
                async move {
                    let prepared = tokio::select! {
                        prepared = Agent::prepare_with_telemetry(&config, None, Some(shared)) => prepared,
                        _ = stop_requested(stop_start) => return Ok(()),
                    };
                    let agent = prepared?;
                    tracing::info!(agent = %name, "agent started");
                    fleet.set_state(&name, AgentState::Running);
                    agent.run_until(stop_requested(stop_run)).await
                }
                .instrument(span),
            )
        };
        let outcome = attempt.await;
        if *stopped.borrow() {
            return;
        }
        let reason = match outcome {
            Ok(Ok(())) => "its runtime ended by itself".to_owned(),
            Ok(Err(e)) => Chain(&e).to_string(),
            Err(e) if e.is_panic() => "it crashed (a panic; see the log above)".to_owned(),
            Err(e) => e.to_string(),
        };
        tracing::error!(agent = %name, error = %reason, retry_in = ?backoff, "agent failed; the other agents keep running");
        fleet.set_state(&name, AgentState::Failed(reason));
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop_requested(stopped.clone()) => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Watches the fleet file's folder (editors save by renaming a new file
/// over the old one, which a watch on the file itself would miss) and
/// sends `()` for each event naming the file.
fn watch_file(
    path: &Path,
    tx: mpsc::UnboundedSender<()>,
) -> Result<notify::RecommendedWatcher, FleetError> {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let folder = absolute
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let name = absolute.file_name().map(|n| n.to_owned());
    let failed = |source| FleetError::Watch {
        path: path.to_owned(),
        source,
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        if event.paths.iter().any(|p| p.file_name() == name.as_deref()) {
            let _ = tx.send(());
        }
    })
    .map_err(failed)?;
    watcher
        .watch(&folder, RecursiveMode::NonRecursive)
        .map_err(failed)?;
    Ok(watcher)
}
