//! Running a fleet: each agent in its own supervised task (a failure to
//! start or a crash is logged with `agent=NAME` and retried after a growing
//! pause, never touching the others), one metrics server for all, and the
//! fleet file watched: an edit starts, stops or restarts only the agents
//! whose entries changed.
//!
//! With a shared store, an agent runs only where this process holds its
//! lease: each tick renews the leases held (one round trip), counts the
//! processes sharing the fleet, takes free agents up to this process's
//! share and hands surplus ones back (see [`super::balance`]). An agent
//! whose lease is lost is stopped at once, every task of it aborted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::balance;
use super::file::{self, AgentEntry, FleetFile, FleetFileError, StoreUrl};
use crate::agent::{Agent, AgentConfig, StateDirChoice};
use crate::effects::redis::registry::Registry;
use crate::effects::redis::{AgentKeys, AgentSpace, Fence, Lease, RedisStore, StoreError};
use crate::error_chain::Chain;
use crate::rules::reload::{hangup_signal, recv_hangup};
use crate::task::TaskGroup;
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
    /// Follow edits of the fleet file and of the agents' workflows (`--no-watch`: neither).
    pub watch: bool,
    /// Each agent's redaction.
    pub new_redaction: NewRedaction,
    /// The shared store (`--store`), over the file's `store:`.
    pub store: Option<StoreUrl>,
    /// The most agents this process runs (with a store).
    pub max_agents: Option<usize>,
    /// How long a lease lasts without renewal.
    pub lease: Duration,
}

/// Why a fleet cannot start (before any agent connects).
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The fleet file is unreadable or wrong (or its store unreachable).
    #[error(transparent)]
    File(#[from] FleetFileError),
    /// The store given with `--store` cannot be used.
    #[error("--store {url}")]
    Store {
        /// The URL, its password hidden.
        url: String,
        /// Cause.
        source: StoreError,
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
    #[error("cannot watch {path} for changes{hint}")]
    Watch {
        /// The file.
        path: PathBuf,
        /// What to do about a system limit, when one is the cause.
        hint: String,
        /// Cause.
        source: notify::Error,
    },
}

/// One agent as it runs: what it was started with, how to stop it, and
/// its tasks (to abort them all when its lease is lost).
struct Running {
    started_with: Effective,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    group: TaskGroup,
}

/// An agent's entry with the fleet-wide settings it runs with: a change
/// in any part restarts it.
#[derive(Debug, Clone, PartialEq)]
struct Effective {
    entry: AgentEntry,
    rest_url: String,
    ws_url: String,
}

/// The leases of a fleet sharing a store with other processes.
struct Shared {
    store: RedisStore,
    registry: Registry,
    /// Leases held, by agent name (those being handed back included).
    leases: balance::HeldLeases,
    /// Agents being stopped to hand their lease back.
    releasing: BTreeSet<String>,
    /// Ticks in a row each agent not held here was seen free.
    free_ticks: HashMap<String, u32>,
    /// Ticks in a row this process held more than its share.
    surplus_ticks: u32,
    /// The store did not answer the last tick (said once per outage).
    store_down: bool,
    /// Agents that kept failing here, left to other processes until then.
    cooldown: HashMap<String, tokio::time::Instant>,
    /// Told the name of each agent whose lease was handed back.
    released: mpsc::UnboundedSender<String>,
}

/// The fleet as this process runs it.
struct FleetRun {
    config: FleetConfig,
    telemetry: Arc<FleetTelemetry>,
    wanted: BTreeMap<String, Effective>,
    running: BTreeMap<String, Running>,
    shared: Option<Shared>,
}

/// Connects to the store the fleet asks for, before any agent starts: an
/// unreachable store is an error at `store:` (or about `--store`).
async fn connect(
    fleet: &FleetFile,
    config: &FleetConfig,
) -> Result<Option<RedisStore>, FleetError> {
    match (&config.store, &fleet.store) {
        (Some(url), _) => RedisStore::connect(url.secret_url(), &url.redacted())
            .await
            .map(Some)
            .map_err(|source| FleetError::Store {
                url: url.redacted(),
                source,
            }),
        (None, Some(url)) => RedisStore::connect(url.secret_url(), &url.redacted())
            .await
            .map(Some)
            .map_err(|e| FleetError::File(fleet.store_error(Chain(&e).to_string()))),
        (None, None) => Ok(None),
    }
}

/// Runs every agent of the fleet file until `stop` resolves; then stops
/// them all (each finishes the event in hand).
pub async fn run(
    path: &Path,
    config: FleetConfig,
    stop: impl Future<Output = ()> + Send,
) -> Result<(), FleetError> {
    let fleet = file::load(path)?;
    let store = connect(&fleet, &config).await?;
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
    let (released_tx, mut released) = mpsc::unbounded_channel::<String>();
    let lease = config.lease;
    let shared = store.map(|store| {
        let process = balance::process_id();
        let registry = Registry::new(&store, &balance::fleet_id(&fleet), &process);
        tracing::info!(
            store = %store.shown(),
            process = %process,
            lease = ?lease,
            max_agents = ?config.max_agents,
            "fleet shares its agents with other processes through the store"
        );
        telemetry.set_shared(true);
        Shared {
            registry,
            leases: balance::HeldLeases::new(store.clone(), balance::tick(lease)),
            store,
            releasing: BTreeSet::new(),
            free_ticks: HashMap::new(),
            surplus_ticks: 0,
            store_down: false,
            cooldown: HashMap::new(),
            released: released_tx,
        }
    });
    let is_shared = shared.is_some();
    tracing::info!(file = %path.display(), agents = fleet.agents.len(), "fleet starting");
    let mut run = FleetRun {
        config,
        telemetry,
        wanted: BTreeMap::new(),
        running: BTreeMap::new(),
        shared,
    };
    run.apply(&fleet).await;
    tokio::pin!(stop);
    let mut hangup = hangup_signal();
    let mut tick = tokio::time::interval(balance::tick(lease));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick(), if is_shared => {
                run.balance().await;
                continue;
            }
            Some(name) = released.recv() => {
                run.released(&name);
                continue;
            }
            Some(()) = edits.recv() => {
                while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, edits.recv()).await {}
            }
            _ = recv_hangup(&mut hangup) => {
                tracing::info!(file = %path.display(), "SIGHUP: reading the fleet file again");
            }
        }
        match file::load(path) {
            Ok(edited) => {
                if edited.store != fleet.store {
                    tracing::warn!(file = %path.display(), "`store:` changed; the fleet keeps the store it started with until it is restarted");
                }
                run.apply(&edited).await;
            }
            Err(e) => tracing::error!(
                file = %path.display(),
                "the edited fleet file is not used, the agents keep running as they were:\n{}",
                Chain(&e)
            ),
        }
    }
    run.stop_all().await;
    if let Some(server) = server {
        server.abort();
    }
    Ok(())
}

impl FleetRun {
    /// Brings the agents in line with `fleet`: stops the removed, restarts
    /// the changed, starts the new (with a store: those whose lease is held
    /// here; [`FleetRun::balance`] takes the others); leaves the rest alone.
    async fn apply(&mut self, fleet: &FleetFile) {
        self.wanted = fleet
            .agents
            .iter()
            .map(|entry| {
                let effective = Effective {
                    entry: entry.clone(),
                    rest_url: fleet
                        .rest_url
                        .clone()
                        .unwrap_or_else(|| self.config.rest_url.clone()),
                    ws_url: fleet
                        .ws_url
                        .clone()
                        .unwrap_or_else(|| self.config.ws_url.clone()),
                };
                (entry.name.clone(), effective)
            })
            .collect();
        let stale: Vec<String> = self
            .running
            .iter()
            .filter(|(name, r)| self.wanted.get(*name) != Some(&r.started_with))
            .map(|(name, _)| name.clone())
            .collect();
        let mut stops = Vec::new();
        for name in stale {
            if let Some(agent) = self.running.remove(&name) {
                let why = match self.wanted.contains_key(&name) {
                    true => "its entry changed; restarting it",
                    false => "removed from the fleet file; stopping it",
                };
                tracing::info!(agent = %name, "{why}");
                if !self.wanted.contains_key(&name) {
                    self.telemetry.remove(&name);
                }
                stops.push(stop_agent(name, agent));
            }
        }
        // Stopped first: a restarted agent needs its state directory's lock back.
        futures_util::future::join_all(stops).await;
        if let Some(shared) = &mut self.shared {
            let gone: Vec<String> = shared
                .leases
                .all()
                .into_iter()
                .map(|(name, _)| name)
                .filter(|name| !self.wanted.contains_key(name))
                .collect();
            for name in gone {
                if let Some(lease) = shared.leases.remove(&name) {
                    shared.releasing.remove(&name);
                    lease.give_back().await;
                }
            }
        }
        let names: Vec<String> = self.wanted.keys().cloned().collect();
        for name in names {
            let held = match &self.shared {
                None => true,
                Some(shared) => shared.leases.contains(&name) && !shared.releasing.contains(&name),
            };
            if held && !self.running.contains_key(&name) {
                self.start(&name);
            }
        }
    }

    /// Starts agent `name` (with a store: under the lease held for it).
    fn start(&mut self, name: &str) {
        let Some(effective) = self.wanted.get(name).cloned() else {
            return;
        };
        let leased = self.shared.as_ref().and_then(|shared| {
            shared
                .leases
                .get(name)
                .map(|lease| (shared.store.clone(), lease.fence().clone()))
        });
        let agent = start_agent(name, effective, &self.config, &self.telemetry, leased);
        self.running.insert(name.to_owned(), agent);
    }

    /// One tick with a store: renew, count the processes, take free agents
    /// up to this process's share, hand surplus ones back.
    async fn balance(&mut self) {
        let Some(shared) = &mut self.shared else {
            return;
        };
        // An agent that kept failing here gave up: its lease goes back, and
        // this process leaves it to the others for a while.
        let gave_up: Vec<String> = self
            .running
            .iter()
            .filter(|(name, r)| {
                r.task.is_finished() && shared.leases.get(name).is_some_and(|l| l.fence().holds())
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in gave_up {
            self.running.remove(&name);
            self.telemetry.remove(&name);
            shared.cooldown.insert(
                name.clone(),
                tokio::time::Instant::now() + balance::COOLDOWN,
            );
            if let Some(lease) = shared.leases.remove(&name) {
                lease.give_back().await;
            }
        }
        let now = tokio::time::Instant::now();
        shared.cooldown.retain(|_, until| *until > now);
        // Renewed by their own task (see `HeldLeases`); here, the lost are let go.
        let held = shared.leases.all();
        let lost: Vec<String> = held
            .iter()
            .filter(|(_, l)| !l.fence().holds())
            .map(|(n, _)| n.clone())
            .collect();
        for name in lost {
            shared.leases.remove(&name);
            shared.releasing.remove(&name);
            if let Some(agent) = self.running.remove(&name) {
                tracing::error!(agent = %name, "{}", super::LEASE_LOST);
                agent.group.abort_all();
                agent.task.abort();
            }
            self.telemetry.remove(&name);
        }
        let processes = match shared.registry.heartbeat(self.config.lease).await {
            Ok(n) => {
                if std::mem::take(&mut shared.store_down) {
                    tracing::info!(store = %shared.store.shown(), "the store answers again");
                }
                n
            }
            Err(e) => {
                if !std::mem::replace(&mut shared.store_down, true) {
                    tracing::warn!(error = %Chain(&e), "cannot reach the store; no agent is taken or handed back until it answers");
                }
                return;
            }
        };
        let holding = shared.leases.len().saturating_sub(shared.releasing.len());
        let share = balance::share(self.wanted.len(), processes, self.config.max_agents);
        let mut taken = Vec::new();
        let process = shared.registry.process().to_owned();
        let mut free: Vec<String> = self
            .wanted
            .keys()
            .filter(|n| !shared.leases.contains(n) && !shared.cooldown.contains_key(*n))
            .cloned()
            .collect();
        free.sort_by_key(|n| std::cmp::Reverse(balance::rank(&process, n)));
        let limit = self.config.max_agents.unwrap_or(usize::MAX);
        let mut count = holding;
        if count < share {
            for name in &free {
                if count >= share {
                    break;
                }
                let keys = AgentKeys::new(&self.wanted[name].entry.agent_id);
                match Lease::try_acquire(&shared.store, &keys, self.config.lease).await {
                    Ok(Some(lease)) => {
                        shared.leases.insert(name.clone(), lease);
                        taken.push(name.clone());
                        count += 1;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %Chain(&e), "cannot take a lease");
                        break;
                    }
                }
            }
        } else if count < limit && !free.is_empty() {
            // At our share: an agent free for two ticks in a row has no
            // process (its holder died and the count has not caught up).
            let keys: Vec<String> = free
                .iter()
                .map(|n| AgentKeys::new(&self.wanted[n].entry.agent_id).lease())
                .collect();
            if let Ok(exists) = shared.registry.taken(&keys).await {
                for (name, exists) in free.iter().zip(exists) {
                    let ticks = shared.free_ticks.entry(name.clone()).or_default();
                    *ticks = if exists { 0 } else { *ticks + 1 };
                    if *ticks >= 2 && count < limit {
                        let keys = AgentKeys::new(&self.wanted[name].entry.agent_id);
                        if let Ok(Some(lease)) =
                            Lease::try_acquire(&shared.store, &keys, self.config.lease).await
                        {
                            shared.leases.insert(name.clone(), lease);
                            taken.push(name.clone());
                            count += 1;
                        }
                    }
                }
            }
        }
        for name in &taken {
            shared.free_ticks.remove(name);
            tracing::info!(agent = %name, processes, share, "took the agent's lease; starting it here");
        }
        // Handed back only after a surplus lasting longer than a lease: a
        // dead process is still counted until its entry expires, and its
        // agents, just taken over, must not bounce back and forth meanwhile.
        shared.surplus_ticks = match count > share {
            true => shared.surplus_ticks + 1,
            false => 0,
        };
        if shared.surplus_ticks >= balance::SURPLUS_TICKS {
            shared.surplus_ticks = 0;
            let mut mine: Vec<String> = shared
                .leases
                .all()
                .into_iter()
                .map(|(n, _)| n)
                .filter(|n| !shared.releasing.contains(n) && !taken.contains(n))
                .collect();
            mine.sort_by_key(|n| balance::rank(&process, n));
            for name in mine.into_iter().take(count - share) {
                tracing::info!(agent = %name, processes, share, "handing the agent to another process (more processes share the fleet now)");
                shared.releasing.insert(name.clone());
                let Some(lease) = shared.leases.get(&name) else {
                    continue;
                };
                let running = self.running.remove(&name);
                let done = shared.released.clone();
                tokio::spawn(async move {
                    if let Some(agent) = running {
                        stop_agent(name.clone(), agent).await;
                    }
                    lease.give_back().await;
                    let _ = done.send(name);
                });
            }
        }
        for name in taken {
            self.start(&name);
        }
    }

    /// Agent `name`'s lease was handed back.
    fn released(&mut self, name: &str) {
        if let Some(shared) = &mut self.shared {
            shared.releasing.remove(name);
            shared.leases.remove(name);
        }
        self.telemetry.remove(name);
    }

    /// Stops every agent (each finishes the event in hand), then hands
    /// every lease back and leaves the registry.
    async fn stop_all(&mut self) {
        tracing::info!(agents = self.running.len(), "stopping every agent");
        let stops: Vec<_> = std::mem::take(&mut self.running)
            .into_iter()
            .map(|(name, agent)| stop_agent(name, agent))
            .collect();
        futures_util::future::join_all(stops).await;
        if let Some(shared) = &mut self.shared {
            for lease in shared.leases.take_all().into_values() {
                lease.give_back().await;
            }
            if let Err(e) = shared.registry.leave().await {
                tracing::warn!(error = %Chain(&e), "cannot leave the fleet's registry; this process stops counting within a lease time");
            }
        }
    }
}

/// Signals agent `name` to stop and waits (bounded) for its task.
async fn stop_agent(name: String, agent: Running) {
    let _ = agent.stop.send(true);
    let mut task = agent.task;
    if tokio::time::timeout(STOP_LIMIT, &mut task).await.is_err() {
        tracing::warn!(agent = %name, "the agent did not stop within {STOP_LIMIT:?}; cut short");
        agent.group.abort_all();
        task.abort();
    }
    tracing::info!(agent = %name, "agent stopped");
}

/// Spawns the supervised task of one agent, in a task group of its own;
/// `leased` is the store and the lease it runs under, when shared.
fn start_agent(
    name: &str,
    effective: Effective,
    config: &FleetConfig,
    telemetry: &Arc<FleetTelemetry>,
    leased: Option<(RedisStore, Arc<Fence>)>,
) -> Running {
    if let super::KeySource::File(path) = &effective.entry.key_source {
        if file::readable_by_others(path) {
            tracing::warn!(agent = %name, file = %path.display(), "the API key file can be read by other users; chmod 600 it");
        }
    }
    if let Some(super::KeySource::File(path)) = &effective.entry.llm_key_source {
        if file::readable_by_others(path) {
            tracing::warn!(agent = %name, file = %path.display(), "the language model's key file can be read by other users; chmod 600 it");
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
    // `--no-watch` is the fleet's: no agent watches its folder either.
    agent.watch = entry.watch && config.watch;
    agent.explain = entry.explain;
    if let Some(n) = entry.max_attempts {
        agent.max_attempts = n;
    }
    if let Some(d) = entry.retry_delay {
        agent.retry_delay = d;
    }
    agent.webhook_addr = entry.webhook_addr;
    if let Some(n) = entry.webhook_queue {
        agent.webhook_queue = n;
    }
    if let Some(n) = entry.max_pending_per_person {
        agent.max_pending_per_person = n;
    }
    agent.llm = entry.llm.clone();
    agent.redaction = redaction;
    let (stop, stopped) = watch::channel(false);
    let span = tracing::info_span!("agent", agent = %name);
    let group = TaskGroup::new();
    let leased = leased.filter(|_| !entry.ephemeral);
    let task = group.spawn(
        supervise(
            name.to_owned(),
            agent,
            shared,
            telemetry.clone(),
            stopped,
            leased,
            group.clone(),
        )
        .instrument(span),
    );
    Running {
        started_with: effective,
        stop,
        task,
        group,
    }
}
/// Resolves once `stopped` says so (or its sender is gone).
async fn stop_requested(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// Starts the agent, runs it, and starts it again after a pause whenever
/// it fails to start, stops with an error or panics, until asked to stop.
/// Under a lease, the agent's state is in the store and the whole group
/// (this task included) is aborted the moment the lease is lost.
async fn supervise(
    name: String,
    config: AgentConfig,
    shared: Arc<crate::telemetry::Telemetry>,
    fleet: Arc<FleetTelemetry>,
    stopped: watch::Receiver<bool>,
    leased: Option<(RedisStore, Arc<Fence>)>,
    group: TaskGroup,
) {
    let fence = leased.as_ref().map(|(_, fence)| fence.clone());
    let work = attempts(name.clone(), config, shared, fleet.clone(), stopped, leased);
    match fence {
        None => work.await,
        Some(fence) => {
            tokio::select! {
                _ = work => {}
                _ = fence.ended() => {
                    tracing::error!(agent = %name, "{}", super::LEASE_LOST);
                    fleet.remove(&name);
                    group.abort_all();
                }
            }
        }
    }
}

/// The restart loop of [`supervise`].
async fn attempts(
    name: String,
    config: AgentConfig,
    shared: Arc<crate::telemetry::Telemetry>,
    fleet: Arc<FleetTelemetry>,
    stopped: watch::Receiver<bool>,
    leased: Option<(RedisStore, Arc<Fence>)>,
) {
    let mut backoff = FIRST_BACKOFF;
    let mut failures = 0;
    loop {
        fleet.set_state(&name, AgentState::Starting);
        let attempt = {
            let (mut config, shared, fleet, name) =
                (config.clone(), shared.clone(), fleet.clone(), name.clone());
            let (stop_start, stop_run) = (stopped.clone(), stopped.clone());
            let leased = leased.clone();
            crate::task::spawn(async move {
                if let Some((store, fence)) = leased {
                    // A writer per attempt, in the agent's task group.
                    config.state_dir = StateDirChoice::Store(AgentSpace::new(&store, fence));
                }
                let prepared = tokio::select! {
                    prepared = Agent::prepare_with_telemetry(&config, None, Some(shared)) => prepared,
                    _ = stop_requested(stop_start) => return Ok(()),
                };
                let agent = prepared?;
                tracing::info!(agent = %name, "agent started");
                fleet.set_state(&name, AgentState::Running);
                agent.run_until(stop_requested(stop_run)).await
            })
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
        failures += 1;
        if leased.is_some() && failures >= balance::HAND_OVER_AFTER {
            // Another process may not share this one's trouble (a port in
            // use here, a file missing on this host): let it try.
            tracing::error!(agent = %name, error = %reason, failures, "agent failed again; handing it to another process (this one takes it again after a pause)");
            fleet.set_state(&name, AgentState::Failed(reason));
            return;
        }
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
    let failed = |source: notify::Error| FleetError::Watch {
        path: path.to_owned(),
        hint: crate::agent::watch_hint(&source),
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
