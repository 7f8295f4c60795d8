//! Fleets under `switchboard bench`: density — one `run --fleet` process
//! with 1, 10, 100… agents, its memory and idle CPU — and failover — two
//! processes sharing a one-agent fleet under a store, timed from the SIGKILL
//! of the one holding the agent to the agent's first reply from the other.
//! The fleet files, the processes and the store's clean-up are shared with
//! the `switchboard-store` contender.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use band_client::rest::{HumanApi, RestConfig};
use band_client::socket::{Socket, SocketConfig, SocketEvent};
use band_wire::events::{Event, TopicKind};
use band_wire::model::Mention;

use super::load::quantile;
use super::load::tag_of;
use super::world::{self, FleetWorld, Member, Room, World};
use super::{log_tail, process, BenchError, Control, READY_LIMIT};
use crate::effects::redis::{AgentKeys, RedisStore};
use crate::fleet::StoreUrl;

/// One agent of a bench fleet file.
#[derive(Debug, Clone)]
pub struct FleetAgent {
    /// Its name in the file (and in `/healthz`).
    pub name: String,
    /// Its id on the platform.
    pub id: String,
    /// Its key, handed to the process in an environment variable.
    pub api_key: String,
    /// Its workflows folder.
    pub workflows: PathBuf,
}

impl FleetAgent {
    /// `member` as fleet agent `name` running the workflows in `workflows`.
    pub fn of(member: &Member, name: &str, workflows: &Path) -> Self {
        FleetAgent {
            name: name.to_owned(),
            id: member.id.clone(),
            api_key: member.api_key.clone(),
            workflows: workflows.to_owned(),
        }
    }
}

/// The variable holding the key of the fleet's agent `i` (keys stay out of
/// the file and of the command line).
fn key_var(i: usize) -> String {
    format!("SWITCHBOARD_BENCH_KEY_{i}")
}

/// Writes a fleet file for `agents` against the sandbox at `urls` (REST,
/// WebSocket); `ephemeral`: each agent's journal and state in memory.
pub fn write_fleet_file(
    path: &Path,
    (rest_url, ws_url): (&str, &str),
    agents: &[FleetAgent],
    ephemeral: bool,
) -> std::io::Result<()> {
    let quoted = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "''"));
    let mut text = format!("rest_url: {rest_url}\nws_url: {ws_url}\nagents:\n");
    for (i, a) in agents.iter().enumerate() {
        let _ = write!(
            text,
            "  - name: {}\n    agent_id: {}\n    api_key_env: {}\n    workflows: {}\n",
            a.name,
            a.id,
            key_var(i),
            quoted(&a.workflows)
        );
        if ephemeral {
            text.push_str("    ephemeral: true\n");
        }
    }
    std::fs::write(path, text)
}

/// How a fleet process runs, besides its file.
pub struct FleetOptions<'a> {
    /// The shared store, if any.
    pub store: Option<&'a StoreUrl>,
    /// `--lease` (with a store).
    pub lease: Duration,
    /// `--metrics-addr`: where its `/healthz` answers.
    pub metrics: Option<SocketAddr>,
    /// Its `XDG_STATE_HOME`, so nothing lands in the user's state folder.
    pub state_home: &'a Path,
}

/// `switchboard run --fleet FILE --no-watch` with the agents' keys in its
/// environment and the store (its URL may hold a password) in
/// `SWITCHBOARD_STORE` rather than on its command line.
pub fn fleet_command(
    exe: &Path,
    file: &Path,
    agents: &[FleetAgent],
    options: FleetOptions<'_>,
) -> Command {
    let mut cmd = super::switchboard_command(exe);
    cmd.args(["run", "--no-watch", "--fleet"]).arg(file);
    if let Some(store) = options.store {
        cmd.env("SWITCHBOARD_STORE", store.secret_url())
            .arg("--lease")
            .arg(format!("{}ms", options.lease.as_millis()));
    }
    if let Some(addr) = options.metrics {
        cmd.arg("--metrics-addr").arg(addr.to_string());
    }
    cmd.env("XDG_STATE_HOME", options.state_home);
    for (i, a) in agents.iter().enumerate() {
        cmd.env(key_var(i), &a.api_key);
    }
    cmd
}

/// Deletes every key the store holds for `agents`, so a run starts from the
/// same empty store as the last one (no journal, state or lease left over).
pub async fn clear_store(store: &StoreUrl, agents: &[FleetAgent]) -> Result<(), BenchError> {
    let redis = RedisStore::connect(store.secret_url(), &store.redacted())
        .await
        .map_err(BenchError::Store)?;
    for a in agents {
        redis
            .delete_agent(&AgentKeys::new(&a.id))
            .await
            .map_err(BenchError::Store)?;
    }
    Ok(())
}

/// A `run --fleet` child with its `/healthz` address and log.
struct FleetProcess {
    child: Child,
    metrics: SocketAddr,
    log: PathBuf,
    label: String,
}

impl FleetProcess {
    /// Starts `run --fleet file`, logging to `dir/<label>.log`.
    fn spawn(
        exe: &Path,
        file: &Path,
        agents: &[FleetAgent],
        store: Option<&StoreUrl>,
        lease: Duration,
        dir: &Path,
        label: &str,
    ) -> Result<FleetProcess, BenchError> {
        let metrics = free_addr()?;
        let cmd = fleet_command(
            exe,
            file,
            agents,
            FleetOptions {
                store,
                lease,
                metrics: Some(metrics),
                state_home: dir,
            },
        );
        let log = dir.join(format!("{label}.log"));
        let child = super::spawn("switchboard run --fleet", cmd, &log)?;
        Ok(FleetProcess {
            child,
            metrics,
            log,
            label: label.to_owned(),
        })
    }

    /// The agents it runs now (`/healthz`), `None` while it does not answer.
    async fn running(&self, http: &reqwest::Client) -> Option<BTreeSet<String>> {
        let url = format!("http://{}/healthz", self.metrics);
        let body: Value = http.get(url).send().await.ok()?.json().await.ok()?;
        Some(
            body["agents"]
                .as_object()?
                .iter()
                .filter(|(_, a)| a["state"] == "running")
                .map(|(name, _)| name.clone())
                .collect(),
        )
    }

    /// Fails when it exited, with the end of its log.
    fn alive(&mut self) -> Result<(), BenchError> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(BenchError::NotReady {
                who: self.label.clone(),
                secs: 0,
                why: format!(
                    "it exited ({status}); its log ends:\n{}",
                    log_tail(&self.log)
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Waits (at most `limit`) until its `/healthz` answers and `done` holds
    /// for the agents it runs.
    async fn wait_health(
        &mut self,
        http: &reqwest::Client,
        limit: Duration,
        what: &str,
        done: impl Fn(&BTreeSet<String>) -> bool,
    ) -> Result<(), BenchError> {
        let deadline = Instant::now() + limit;
        loop {
            self.alive()?;
            let running = self.running(http).await;
            if running.as_ref().is_some_and(&done) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(BenchError::NotReady {
                    who: self.label.clone(),
                    secs: limit.as_secs(),
                    why: format!(
                        "{what}; its /healthz showed {}; its log ends:\n{}",
                        running.map_or("nothing (no answer)".to_owned(), |r| format!(
                            "{} agents running",
                            r.len()
                        )),
                        log_tail(&self.log)
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A loopback address free a moment ago (for a child's `--metrics-addr`).
fn free_addr() -> Result<SocketAddr, BenchError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| BenchError::Setup(format!("no free loopback port: {e}")))
}

fn http_client() -> Result<reqwest::Client, BenchError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| BenchError::Setup(format!("HTTP client: {e}")))
}

/// A person watching rooms over their socket: each agent reply carrying a
/// `#N` tag arrives as (sender id, N).
struct Watcher {
    socket: Socket,
    replies: mpsc::UnboundedReceiver<(String, usize)>,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    async fn start<'a>(
        ws_url: &str,
        person: &Member,
        rooms: impl IntoIterator<Item = &'a Room>,
    ) -> Result<Watcher, BenchError> {
        let (socket, mut events) = Socket::start(SocketConfig::new(ws_url, &person.api_key));
        for room in rooms {
            socket
                .join(&TopicKind::ChatRoom.topic(&room.id))
                .await
                .map_err(|e| {
                    BenchError::Setup(format!("{} cannot watch {}: {e}", person.handle, room.id))
                })?;
        }
        let (tx, replies) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if let SocketEvent::Event {
                    event: Event::MessageCreated(m),
                    ..
                } = event
                {
                    if m.sender_type == "Agent" {
                        if let Some(tag) = tag_of(&m.content) {
                            let _ = tx.send((m.sender_id, tag));
                        }
                    }
                }
            }
        });
        Ok(Watcher {
            socket,
            replies,
            task,
        })
    }

    async fn stop(self) {
        self.socket.shutdown().await;
        self.task.abort();
    }
}

/// `@handle ping #tag` from `person` in `room`, mentioning `agent`.
async fn ping(person: &HumanApi, room: &str, agent: &Member, tag: usize) -> Result<(), String> {
    let mention = [Mention {
        id: Some(agent.id.clone()),
        handle: Some(agent.handle.clone()),
        ..Mention::default()
    }];
    person
        .send_message(room, &format!("@{} ping #{tag}", agent.handle), &mention)
        .await
        .map(|_| ())
        .map_err(|e| format!("sending a message to {} in {room}: {e}", agent.handle))
}

/// What fleet density runs.
#[derive(Debug, Clone)]
pub struct DensityPlan {
    /// Fleet sizes, in this order.
    pub sizes: Vec<usize>,
    /// The window idle CPU is measured over.
    pub idle: Duration,
    /// Rooms of each agent (one person in all).
    pub rooms_per_agent: usize,
    /// Rules of each agent (one echo rule, the rest never match).
    pub rules: usize,
    /// The switchboard binary.
    pub exe: PathBuf,
    /// Run the agents under this store; else ephemeral.
    pub store: Option<StoreUrl>,
    /// `--lease` with a store.
    pub lease: Duration,
}

/// One fleet size's figures.
#[derive(Debug, Clone, Serialize)]
pub struct DensityFigures {
    /// Agents in the process.
    pub agents: usize,
    /// Rooms they are in, all told.
    pub rooms: usize,
    /// Under a store (else ephemeral).
    pub store: bool,
    /// Process start to every agent running and in all its rooms, seconds.
    pub ready_s: f64,
    /// RSS at the end of the idle window, MiB.
    pub rss_mib: f64,
    /// Peak RSS by then, MiB.
    pub peak_rss_mib: f64,
    /// (RSS − RSS of the smallest fleet) / extra agents, KiB; null for the smallest.
    pub rss_per_extra_agent_kib: Option<f64>,
    /// CPU time over the idle window / the window, percent of one core.
    pub idle_cpu_percent: f64,
    /// The idle window, seconds.
    pub idle_s: f64,
    /// Agents that answered their one message.
    pub answered: usize,
    /// Extra replies beyond one per agent.
    pub duplicates: usize,
}

/// Settling time after the fleet is ready, before the idle window (start-up
/// work, the allocator returning memory).
const SETTLE: Duration = Duration::from_secs(1);

/// How long a fleet of `n` may take to be ready (or to answer one message each).
fn fleet_limit(n: usize) -> Duration {
    READY_LIMIT + Duration::from_millis(250) * u32::try_from(n).unwrap_or(u32::MAX)
}

/// Runs each fleet size of `plan` in turn, each in a fresh sandbox.
pub async fn density(
    plan: &DensityPlan,
    progress: &dyn Fn(&str),
) -> Result<Vec<DensityFigures>, BenchError> {
    let mut out = Vec::new();
    for &n in &plan.sizes {
        out.push(density_one(plan, n.max(1), progress).await?);
    }
    if let Some((n0, rss0)) = out
        .iter()
        .min_by_key(|f| f.agents)
        .map(|f| (f.agents, f.rss_mib))
    {
        for f in out.iter_mut().filter(|f| f.agents > n0) {
            f.rss_per_extra_agent_kib = Some((f.rss_mib - rss0) * 1024.0 / (f.agents - n0) as f64);
        }
    }
    Ok(out)
}

async fn density_one(
    plan: &DensityPlan,
    n: usize,
    progress: &dyn Fn(&str),
) -> Result<DensityFigures, BenchError> {
    let world = FleetWorld::new(n, plan.rooms_per_agent);
    let sandbox = super::start_sandbox(&world.seed(), "bench fleet world").await?;
    let (rest_url, ws_url) = (sandbox.rest_url(), sandbox.ws_url());
    let dir = super::tempfile_dir()?;
    let workflows = dir.path().join("workflows");
    std::fs::create_dir_all(&workflows)
        .and_then(|()| world::write_workflows(&workflows, plan.rules.max(1)))
        .map_err(|e| BenchError::Setup(format!("workflows in {}: {e}", workflows.display())))?;
    let agents: Vec<FleetAgent> = world
        .agents
        .iter()
        .enumerate()
        .map(|(i, a)| FleetAgent::of(a, &format!("a{i}"), &workflows))
        .collect();
    if let Some(store) = &plan.store {
        clear_store(store, &agents).await?;
    }
    let file = dir.path().join("fleet.yaml");
    write_fleet_file(&file, (&rest_url, &ws_url), &agents, plan.store.is_none())
        .map_err(|e| BenchError::Setup(format!("fleet file {}: {e}", file.display())))?;

    progress(&format!("{n} agents: starting one process"));
    let started = Instant::now();
    let mut fleet = FleetProcess::spawn(
        &plan.exe,
        &file,
        &agents,
        plan.store.as_ref(),
        plan.lease,
        dir.path(),
        &format!("fleet-{n}"),
    )?;
    let limit = fleet_limit(n);
    let http = http_client()?;
    fleet
        .wait_health(&http, limit, "not every agent running", |r| r.len() == n)
        .await?;
    let wanted: Vec<(&str, Vec<String>)> = world
        .agents
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let topics = world
                .rooms_of(i)
                .iter()
                .map(|r| TopicKind::ChatRoom.topic(&r.id))
                .collect();
            (a.id.as_str(), topics)
        })
        .collect();
    let control = Control::new(&rest_url)?;
    control
        .wait_joined(
            &wanted,
            &mut fleet.child,
            &fleet.label,
            &fleet.log,
            limit.saturating_sub(started.elapsed()),
        )
        .await?;
    let ready_in = started.elapsed();
    progress(&format!(
        "{n} agents: ready in {:.1} s; idle for {:?}",
        ready_in.as_secs_f64(),
        plan.idle
    ));
    tokio::time::sleep(SETTLE).await;
    let read = |fleet: &FleetProcess| {
        fleet.child.id().and_then(process::read).ok_or_else(|| {
            BenchError::Setup(format!(
                "cannot read /proc of the fleet process (Linux only); its log ends:\n{}",
                log_tail(&fleet.log)
            ))
        })
    };
    let before = read(&fleet)?;
    tokio::time::sleep(plan.idle).await;
    let after = read(&fleet)?;
    fleet.alive()?;

    progress(&format!("{n} agents: one message each"));
    let replies = ping_each(&world, &rest_url, &ws_url, limit).await?;
    let _ = fleet.child.kill().await;
    let _ = sandbox.shutdown().await;
    let answered = replies.iter().filter(|&&c| c > 0).count();
    let duplicates = replies.iter().map(|&c| c.saturating_sub(1)).sum();
    const MIB: f64 = 1024.0 * 1024.0;
    Ok(DensityFigures {
        agents: n,
        rooms: world.rooms.len(),
        store: plan.store.is_some(),
        ready_s: ready_in.as_secs_f64(),
        rss_mib: after.rss as f64 / MIB,
        peak_rss_mib: after.peak_rss as f64 / MIB,
        rss_per_extra_agent_kib: None,
        idle_cpu_percent: after.cpu.saturating_sub(before.cpu).as_secs_f64() * 100.0
            / plan.idle.as_secs_f64().max(f64::EPSILON),
        idle_s: plan.idle.as_secs_f64(),
        answered,
        duplicates,
    })
}

/// Sends one message to each agent (in its first room) and counts each
/// agent's replies until all answered (at most `limit`), then a moment more
/// for doubles.
async fn ping_each(
    world: &FleetWorld,
    rest_url: &str,
    ws_url: &str,
    limit: Duration,
) -> Result<Vec<usize>, BenchError> {
    let firsts: Vec<&Room> = (0..world.agents.len())
        .filter_map(|i| world.rooms_of(i).first())
        .collect();
    let mut watcher = Watcher::start(ws_url, &world.user, firsts.iter().copied()).await?;
    let person = HumanApi::new(RestConfig::new(rest_url, &world.user.api_key))
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    for (i, (agent, room)) in world.agents.iter().zip(&firsts).enumerate() {
        ping(&person, &room.id, agent, i)
            .await
            .map_err(BenchError::Setup)?;
    }
    let mut counts = vec![0; world.agents.len()];
    let deadline = tokio::time::Instant::now() + limit;
    let mut grace = None;
    loop {
        let until = grace.unwrap_or(deadline);
        match tokio::time::timeout_at(until, watcher.replies.recv()).await {
            Ok(Some((sender, tag))) => {
                if world.agents.get(tag).is_some_and(|a| a.id == sender) {
                    counts[tag] += 1;
                }
                if grace.is_none() && counts.iter().all(|&c| c > 0) {
                    grace = Some(tokio::time::Instant::now() + Duration::from_millis(500));
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    watcher.stop().await;
    Ok(counts)
}

/// What failover runs.
#[derive(Debug, Clone)]
pub struct FailoverPlan {
    /// Takeovers to time.
    pub runs: usize,
    /// The switchboard binary.
    pub exe: PathBuf,
    /// The store the two processes share.
    pub store: StoreUrl,
    /// Their `--lease`.
    pub lease: Duration,
    /// Bound on one takeover.
    pub limit: Duration,
}

/// The takeover times.
#[derive(Debug, Clone, Serialize)]
pub struct FailoverFigures {
    /// The lease, seconds.
    pub lease_s: f64,
    /// Takeovers timed.
    pub runs: usize,
    /// Each one: SIGKILL to the agent's first reply from the other process, seconds.
    pub times_s: Vec<f64>,
    /// Median (nearest rank), seconds.
    pub median_s: f64,
    /// Fastest.
    pub min_s: f64,
    /// Slowest.
    pub max_s: f64,
}

/// How often the ping loop sends while the agent is away.
const PING_EVERY: Duration = Duration::from_millis(200);

/// Two processes on a one-agent fleet; `plan.runs` times: SIGKILL the one
/// holding the agent, ping every 200 ms, time the first reply, start a
/// fresh standby in the dead one's place.
pub async fn failover(
    plan: &FailoverPlan,
    progress: &dyn Fn(&str),
) -> Result<FailoverFigures, BenchError> {
    let world = World::new(1);
    let sandbox = super::start_sandbox(&world.seed(), "bench world").await?;
    let (rest_url, ws_url) = (sandbox.rest_url(), sandbox.ws_url());
    let dir = super::tempfile_dir()?;
    let workflows = dir.path().join("workflows");
    std::fs::create_dir_all(&workflows)
        .and_then(|()| world::write_workflows(&workflows, 1))
        .map_err(|e| BenchError::Setup(format!("workflows in {}: {e}", workflows.display())))?;
    let agents = [FleetAgent::of(&world.agent, "echo", &workflows)];
    clear_store(&plan.store, &agents).await?;
    let file = dir.path().join("fleet.yaml");
    write_fleet_file(&file, (&rest_url, &ws_url), &agents, false)
        .map_err(|e| BenchError::Setup(format!("fleet file {}: {e}", file.display())))?;
    let mut started = 0;
    let mut start = || {
        started += 1;
        FleetProcess::spawn(
            &plan.exe,
            &file,
            &agents,
            Some(&plan.store),
            plan.lease,
            dir.path(),
            &format!("process-{started}"),
        )
    };
    let http = http_client()?;
    let holds = |r: &BTreeSet<String>| r.contains("echo");
    // The first takes the agent; the second, started after, stands by.
    let mut first = start()?;
    first
        .wait_health(&http, READY_LIMIT, "it does not run the agent", holds)
        .await?;
    let mut second = start()?;
    second
        .wait_health(&http, READY_LIMIT, "no /healthz", |_| true)
        .await?;
    let mut procs = [first, second];
    let control = Control::new(&rest_url)?;
    let topics = vec![TopicKind::ChatRoom.topic(&world.rooms[0].id)];
    let wanted = [(world.agent.id.as_str(), topics)];
    let mut watcher = Watcher::start(&ws_url, &world.users[0], &world.rooms).await?;
    let person = Arc::new(
        HumanApi::new(RestConfig::new(&rest_url, &world.users[0].api_key))
            .map_err(|e| BenchError::Setup(e.to_string()))?,
    );
    let renewal = crate::fleet::balance::tick(plan.lease);
    let mut tag = 0;
    let mut times = Vec::new();
    for run in 0..plan.runs {
        let holder = wait_holder(&mut procs, &http).await?;
        let p = &mut procs[holder];
        control
            .wait_joined(&wanted, &mut p.child, &p.label, &p.log, READY_LIMIT)
            .await?;
        // Replies still due from the last takeover's backlog come and go;
        // then the kill lands anywhere in the holder's renewal cycle.
        tokio::time::sleep(Duration::from_secs(1) + jitter(renewal)).await;
        while watcher.replies.try_recv().is_ok() {}
        let killed_at = Instant::now();
        p.child
            .kill()
            .await
            .map_err(|e| BenchError::Setup(format!("cannot SIGKILL {}: {e}", p.label)))?;
        let first_tag = tag;
        let mut ticker = tokio::time::interval(PING_EVERY);
        let deadline = tokio::time::Instant::now() + plan.limit;
        let took = loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let (person, agent, room) =
                        (person.clone(), world.agent.clone(), world.rooms[0].id.clone());
                    let t = tag;
                    tag += 1;
                    // Sent aside, so a slow POST does not delay reading a reply.
                    tokio::spawn(async move {
                        if let Err(e) = ping(&person, &room, &agent, t).await {
                            tracing::warn!("failover ping: {e}");
                        }
                    });
                }
                reply = watcher.replies.recv() => match reply {
                    Some((sender, t)) if t >= first_tag && sender == world.agent.id => {
                        break killed_at.elapsed();
                    }
                    Some(_) => {}
                    None => return Err(BenchError::Setup("the person's socket closed".into())),
                },
                _ = tokio::time::sleep_until(deadline) => {
                    let other = &procs[1 - holder];
                    return Err(BenchError::NotReady {
                        who: other.label.clone(),
                        secs: plan.limit.as_secs(),
                        why: format!(
                            "no reply from the agent after {} was killed; its log ends:\n{}",
                            procs[holder].label,
                            log_tail(&other.log)
                        ),
                    });
                }
            }
        };
        progress(&format!(
            "takeover {}/{}: first reply {:.2} s after the SIGKILL",
            run + 1,
            plan.runs,
            took.as_secs_f64()
        ));
        times.push(took);
        // The standby's ticks at any phase of the holder's, not the same each time.
        tokio::time::sleep(jitter(renewal)).await;
        let mut fresh = start()?;
        fresh
            .wait_health(&http, READY_LIMIT, "no /healthz", |_| true)
            .await?;
        procs[holder] = fresh;
    }
    watcher.stop().await;
    for p in &mut procs {
        let _ = p.child.kill().await;
    }
    let _ = sandbox.shutdown().await;
    let mut sorted = times.clone();
    sorted.sort_unstable();
    Ok(FailoverFigures {
        lease_s: plan.lease.as_secs_f64(),
        runs: times.len(),
        times_s: times.iter().map(Duration::as_secs_f64).collect(),
        median_s: quantile(&sorted, 0.5).as_secs_f64(),
        min_s: sorted.first().map_or(0.0, Duration::as_secs_f64),
        max_s: sorted.last().map_or(0.0, Duration::as_secs_f64),
    })
}

/// A random span in `[0, span)`. Without it each takeover repeats the last
/// one's timing (the kill and the standby's start always at the same phase of
/// the lease renewals) and the spread of real takeovers would not show.
fn jitter(span: Duration) -> Duration {
    let nanos = span.as_nanos().max(1);
    let pick = uuid::Uuid::new_v4().as_u128() % nanos;
    Duration::from_nanos(u64::try_from(pick).unwrap_or(u64::MAX))
}

/// Which of the two processes runs the agent (waits until exactly one does).
async fn wait_holder(
    procs: &mut [FleetProcess; 2],
    http: &reqwest::Client,
) -> Result<usize, BenchError> {
    let deadline = Instant::now() + READY_LIMIT;
    loop {
        let mut holders = Vec::new();
        for (i, p) in procs.iter_mut().enumerate() {
            p.alive()?;
            if p.running(http).await.is_some_and(|r| r.contains("echo")) {
                holders.push(i);
            }
        }
        if let [one] = holders[..] {
            return Ok(one);
        }
        if Instant::now() > deadline {
            return Err(BenchError::NotReady {
                who: "the fleet".into(),
                secs: READY_LIMIT.as_secs(),
                why: format!(
                    "{} processes run the agent, not one; their logs end:\n{}\n-----\n{}",
                    holders.len(),
                    log_tail(&procs[0].log),
                    log_tail(&procs[1].log)
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
