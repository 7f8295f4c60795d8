//! `switchboard bench`: end-to-end load against the sandbox. Each
//! contender — the floor (the driver making an agent's REST calls itself),
//! switchboard (`switchboard run` as a child process, durable in a fresh
//! state directory as by default, `--ephemeral`, or a one-agent fleet under
//! a Redis store) and the official Python SDK's echo agent
//! (`tests/compat/sdk_agent.py`) — gets the same world, reset between runs,
//! and the same load (see [`load`]); the agent's CPU time and memory are read
//! from `/proc` ([`process`]). [`fleet`] measures fleets: many agents in one
//! process, and the takeover of an agent when its process dies.

pub mod conversations;
pub mod fleet;
pub mod load;
pub mod process;
pub mod report;
pub mod world;

use crate::error_chain::Chain;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::{Child, Command};

use crate::fleet::StoreUrl;
use band_sandbox::{parse_seed, RunningSandbox};
use band_wire::events::TopicKind;
use load::{LoadResult, Pace};
use process::ProcStats;
use world::World;

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Building the world or the clients failed.
    #[error("setup: {0}")]
    Setup(String),
    /// A child process would not start.
    #[error("cannot start {what}")]
    Spawn {
        /// Which.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// The store could not be cleared before a run.
    #[error("cannot clear the bench agents' keys in the store")]
    Store(#[source] crate::effects::redis::StoreError),
    /// The agent did not connect and join its rooms in time.
    #[error("{who} was not ready after {secs} s (connected and in every room); {why}")]
    NotReady {
        /// Which agent (or fleet).
        who: String,
        /// How long we waited.
        secs: u64,
        /// The end of its log, or what we saw.
        why: String,
    },
}

/// Who answers the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contender {
    /// No agent: the driver makes the agent's REST calls itself.
    Floor,
    /// `switchboard run` as by default: journal and state durable in a
    /// (fresh, temporary) state directory.
    Switchboard,
    /// `switchboard run --ephemeral`: journal and state in memory.
    SwitchboardEphemeral,
    /// `switchboard run --fleet` of the one bench agent with `--store`:
    /// journal and state in Redis, the agent leased.
    SwitchboardStore,
    /// The official Python SDK's echo agent.
    Sdk,
}

impl Contender {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Contender::Floor => "floor",
            Contender::Switchboard => "switchboard",
            Contender::SwitchboardEphemeral => "switchboard-ephemeral",
            Contender::SwitchboardStore => "switchboard-store",
            Contender::Sdk => "band-sdk",
        }
    }

    /// Where a switchboard contender keeps its journal and state: "durable"
    /// "ephemeral" or "store"; `None` for the others.
    pub fn state(self) -> Option<&'static str> {
        match self {
            Contender::Switchboard => Some("durable"),
            Contender::SwitchboardEphemeral => Some("ephemeral"),
            Contender::SwitchboardStore => Some("store"),
            Contender::Floor | Contender::Sdk => None,
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Messages per contender.
    pub messages: usize,
    /// Rooms (one person each).
    pub rooms: usize,
    /// How messages are sent.
    pub pace: Pace,
    /// Rules the switchboard agent loads (one answers; the rest never match).
    pub rules: usize,
    /// Bound on one contender's load.
    pub limit: Duration,
    /// In this order.
    pub contenders: Vec<Contender>,
    /// The switchboard binary.
    pub exe: PathBuf,
    /// Python with `band-sdk` installed.
    pub python: PathBuf,
    /// The SDK echo agent script.
    pub sdk_script: PathBuf,
    /// An already running sandbox (started with `--print-seed`'s seed); else one in-process.
    pub sandbox: Option<String>,
    /// The store of the `switchboard-store` contender.
    pub store: Option<StoreUrl>,
    /// Its `--lease`.
    pub lease: Duration,
}

/// One contender's figures.
#[derive(Debug, Clone)]
pub struct ContenderFigures {
    /// Who.
    pub contender: Contender,
    /// The load's result.
    pub load: LoadResult,
    /// The agent at rest, connected, before the load.
    pub idle: Option<ProcStats>,
    /// The agent's CPU time during the load.
    pub busy_cpu: Option<Duration>,
    /// The agent's peak RSS by the end.
    pub peak_rss: Option<u64>,
    /// From process start to connected and in every room.
    pub ready_in: Option<Duration>,
}

/// How long an agent may take to connect and join its rooms.
const READY_LIMIT: Duration = Duration::from_secs(60);

/// Runs every contender of `plan` in turn; `progress` hears what is going on.
pub async fn run(
    plan: &Plan,
    progress: &dyn Fn(&str),
) -> Result<Vec<ContenderFigures>, BenchError> {
    let world = World::new(plan.rooms.max(1));
    let embedded = match &plan.sandbox {
        Some(_) => None,
        None => Some(start_sandbox(&world.seed(), "bench world").await?),
    };
    let (rest_url, ws_url) = match (&embedded, &plan.sandbox) {
        (Some(sb), _) => (sb.rest_url(), sb.ws_url()),
        (None, Some(url)) => {
            let rest = url.trim_end_matches('/').to_owned();
            let ws = format!("{}/api/v1/socket/websocket", rest.replacen("http", "ws", 1));
            (rest, ws)
        }
        (None, None) => unreachable!("one of the two is set"),
    };
    progress(&format!("sandbox: {rest_url}"));
    let control = Control::new(&rest_url)?;
    control.expect_world(&world).await?;
    let dir = tempfile_dir()?;
    let workflows = workflows_dir(dir.path());
    std::fs::create_dir_all(&workflows)
        .and_then(|()| world::write_workflows(&workflows, plan.rules.max(1)))
        .map_err(|e| BenchError::Setup(format!("workflows in {}: {e}", workflows.display())))?;

    if let (Some(store), true) = (
        &plan.store,
        plan.contenders.contains(&Contender::SwitchboardStore),
    ) {
        // A store that cannot be used fails now, not after the other contenders ran.
        let agent = fleet::FleetAgent::of(&world.agent, "echo", &workflows);
        fleet::clear_store(store, &[agent]).await?;
    }
    let mut outcomes = Vec::new();
    for (run, &contender) in plan.contenders.iter().enumerate() {
        control.reset().await?;
        progress(&format!("{}: starting", contender.name()));
        // A fresh state directory per run: no journal from an earlier run
        // to replay, and no lock held by an agent still exiting.
        let state_dir = dir.path().join(format!("state-{run}"));
        let mut agent = match contender {
            Contender::Floor => None,
            Contender::Switchboard | Contender::SwitchboardEphemeral => Some(spawn_switchboard(
                plan,
                &world,
                (&rest_url, &ws_url),
                dir.path(),
                (contender == Contender::Switchboard).then_some(state_dir.as_path()),
            )?),
            Contender::SwitchboardStore => {
                Some(spawn_store(plan, &world, (&rest_url, &ws_url), dir.path()).await?)
            }
            Contender::Sdk => Some(spawn_sdk(plan, &world, &rest_url, &ws_url, dir.path())?),
        };
        let mut ready_in = None;
        if let Some(child) = &mut agent {
            let started = Instant::now();
            control
                .wait_ready(&world, child, contender, dir.path())
                .await?;
            ready_in = Some(started.elapsed());
            // Let start-up work (backlog drain, allocator) settle before the idle reading.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let pid = agent.as_ref().and_then(Child::id);
        let idle = pid.and_then(process::read);
        progress(&format!(
            "{}: sending {} messages",
            contender.name(),
            plan.messages
        ));
        let load = load::run(
            &world,
            &rest_url,
            &ws_url,
            plan.messages,
            plan.pace,
            contender == Contender::Floor,
            plan.limit,
        )
        .await?;
        let after = pid.and_then(process::read);
        if let Some(mut child) = agent {
            let _ = child.kill().await;
        }
        if contender == Contender::Switchboard {
            expect_journal(&state_dir)?;
        }
        outcomes.push(ContenderFigures {
            contender,
            busy_cpu: idle.zip(after).map(|(a, b)| b.cpu.saturating_sub(a.cpu)),
            peak_rss: after.map(|a| a.peak_rss),
            idle,
            load,
            ready_in,
        });
    }
    control.reset().await?;
    if let Some(sb) = embedded {
        let _ = sb.shutdown().await;
    }
    Ok(outcomes)
}

/// A sandbox in this process on a free loopback port, seeded with `seed`.
async fn start_sandbox(seed: &str, what: &str) -> Result<RunningSandbox, BenchError> {
    let seed = parse_seed(seed, what).map_err(|e| BenchError::Setup(e.to_string()))?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    RunningSandbox::start(addr, seed)
        .await
        .map_err(|e| BenchError::Setup(format!("sandbox: {}", Chain(&e))))
}

fn tempfile_dir() -> Result<tempfile::TempDir, BenchError> {
    tempfile::Builder::new()
        .prefix("switchboard-bench")
        .tempdir()
        .map_err(|e| BenchError::Setup(format!("temporary folder: {e}")))
}

/// `switchboard` with none of the environment that would change what it
/// runs (keys, state, store, metrics from the caller's shell).
fn switchboard_command(exe: &std::path::Path) -> Command {
    let mut cmd = Command::new(exe);
    for var in [
        "BAND_API_KEY",
        "BAND_API_KEY_FILE",
        "BAND_JOURNAL",
        "SWITCHBOARD_STATE_DIR",
        "SWITCHBOARD_STORE",
        "BAND_METRICS_ADDR",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn spawn(what: &str, mut cmd: Command, log: &std::path::Path) -> Result<Child, BenchError> {
    let spawn_err = |source| BenchError::Spawn {
        what: what.to_owned(),
        source,
    };
    let log = std::fs::File::create(log).map_err(spawn_err)?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .map_err(spawn_err)
}

/// Starts `switchboard run`: durable in `state_dir` when given (as `run`
/// is by default), else `--ephemeral`.
fn spawn_switchboard(
    plan: &Plan,
    world: &World,
    (rest_url, ws_url): (&str, &str),
    dir: &std::path::Path,
    state_dir: Option<&std::path::Path>,
) -> Result<Child, BenchError> {
    let mut cmd = switchboard_command(&plan.exe);
    cmd.args(["run", "--no-watch", "--workflows"])
        .arg(workflows_dir(dir))
        .args(["--rest-url", rest_url, "--ws-url", ws_url]);
    match state_dir {
        Some(state) => cmd.arg("--state-dir").arg(state),
        None => cmd.arg("--ephemeral"),
    };
    cmd.env("BAND_API_KEY", &world.agent.api_key);
    let contender = match state_dir {
        Some(_) => Contender::Switchboard,
        None => Contender::SwitchboardEphemeral,
    };
    spawn("switchboard run", cmd, &log_path(dir, contender))
}

/// Starts `switchboard run --fleet` on a one-agent fleet file of the bench
/// agent with the plan's store, the agent's keys in it deleted first so
/// every run starts from the same empty store.
async fn spawn_store(
    plan: &Plan,
    world: &World,
    urls: (&str, &str),
    dir: &std::path::Path,
) -> Result<Child, BenchError> {
    let Some(store) = &plan.store else {
        return Err(BenchError::Setup(
            "the switchboard-store contender needs --store redis://HOST:PORT/DB".into(),
        ));
    };
    let agents = [fleet::FleetAgent::of(
        &world.agent,
        "echo",
        &workflows_dir(dir),
    )];
    fleet::clear_store(store, &agents).await?;
    let file = dir.join("fleet-store.yaml");
    fleet::write_fleet_file(&file, urls, &agents, false)
        .map_err(|e| BenchError::Setup(format!("fleet file {}: {e}", file.display())))?;
    let cmd = fleet::fleet_command(
        &plan.exe,
        &file,
        &agents,
        fleet::FleetOptions {
            store: Some(store),
            lease: plan.lease,
            metrics: None,
            state_home: dir,
        },
    );
    spawn(
        "switchboard run --fleet",
        cmd,
        &log_path(dir, Contender::SwitchboardStore),
    )
}

/// A durable run must have kept its journal in its state directory; else the
/// figures would be an ephemeral run's under the durable name.
fn expect_journal(state_dir: &std::path::Path) -> Result<(), BenchError> {
    let journal = state_dir.join("journal");
    match journal.is_file() {
        true => Ok(()),
        false => Err(BenchError::Setup(format!(
            "the durable switchboard run left no journal at {}: it did not keep its state there",
            journal.display()
        ))),
    }
}

fn spawn_sdk(
    plan: &Plan,
    world: &World,
    rest_url: &str,
    ws_url: &str,
    dir: &std::path::Path,
) -> Result<Child, BenchError> {
    let mut cmd = Command::new(&plan.python);
    cmd.arg(&plan.sdk_script)
        .args(["--rest-url", rest_url, "--ws-url", ws_url])
        .args([
            "--agent-id",
            &world.agent.id,
            "--api-key",
            &world.agent.api_key,
        ])
        // It exits after this many; stay up until measured and killed.
        .args(["--messages", &(plan.messages * 10 + 1_000).to_string()])
        .args(["--timeout", &(plan.limit.as_secs() + 60).to_string()]);
    spawn(
        "the band-sdk echo agent",
        cmd,
        &log_path(dir, Contender::Sdk),
    )
}

/// The sandbox's control endpoints.
struct Control {
    http: reqwest::Client,
    base: String,
}

impl Control {
    fn new(base: &str) -> Result<Self, BenchError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| BenchError::Setup(Chain(&e).to_string()))?;
        Ok(Control {
            http,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    async fn state(&self) -> Result<Value, BenchError> {
        let get = self
            .http
            .get(format!("{}/_sandbox/state", self.base))
            .send();
        let response = get
            .await
            .map_err(|e| BenchError::Setup(format!("sandbox state: {e}")))?;
        response
            .json()
            .await
            .map_err(|e| BenchError::Setup(format!("sandbox state: {e}")))
    }

    async fn reset(&self) -> Result<(), BenchError> {
        self.http
            .post(format!("{}/_sandbox/reset", self.base))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map(|_| ())
            .map_err(|e| BenchError::Setup(format!("sandbox reset: {e}")))
    }

    /// The sandbox must serve the bench world (an external one may not).
    async fn expect_world(&self, world: &World) -> Result<(), BenchError> {
        let state = self.state().await?;
        let has = |kind: &str, id: &str| {
            state[kind]
                .as_array()
                .is_some_and(|l| l.iter().any(|x| x["id"] == id))
        };
        let ok = world.users.iter().all(|u| has("users", &u.id))
            && has("agents", &world.agent.id)
            && world.rooms.iter().all(|r| has("rooms", &r.id));
        match ok {
            true => Ok(()),
            false => Err(BenchError::Setup(format!(
                "the sandbox does not hold the bench world for {} rooms; start it with \
                 `switchboard bench --rooms {} --print-seed > bench-seed.yaml` and \
                 `switchboard sandbox --seed bench-seed.yaml`",
                world.rooms.len(),
                world.rooms.len()
            ))),
        }
    }

    /// Waits until the agent is connected and has joined every room's topic.
    async fn wait_ready(
        &self,
        world: &World,
        child: &mut Child,
        contender: Contender,
        dir: &std::path::Path,
    ) -> Result<(), BenchError> {
        let topics: Vec<String> = world
            .rooms
            .iter()
            .map(|r| TopicKind::ChatRoom.topic(&r.id))
            .collect();
        let wanted = [(world.agent.id.as_str(), topics)];
        self.wait_joined(
            &wanted,
            child,
            contender.name(),
            &log_path(dir, contender),
            READY_LIMIT,
        )
        .await
    }

    /// Waits (at most `limit`) until each agent of `wanted` is connected and
    /// has joined each of its topics; `child` runs them, logging to `log`.
    async fn wait_joined(
        &self,
        wanted: &[(&str, Vec<String>)],
        child: &mut Child,
        who: &str,
        log: &std::path::Path,
        limit: Duration,
    ) -> Result<(), BenchError> {
        let deadline = Instant::now() + limit;
        let not_ready = |why: String| BenchError::NotReady {
            who: who.to_owned(),
            secs: limit.as_secs(),
            why,
        };
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(not_ready(format!(
                    "it exited ({status}); its log ends:\n{}",
                    log_tail(log)
                )));
            }
            let state = self.state().await?;
            let empty = Vec::new();
            let conns = state["connections"].as_array().unwrap_or(&empty);
            let missing = wanted
                .iter()
                .filter(|(id, topics)| {
                    !conns.iter().any(|c| {
                        c["id"] == *id
                            && topics.iter().all(|t| {
                                c["topics"]
                                    .as_array()
                                    .is_some_and(|ts| ts.iter().any(|x| x == t.as_str()))
                            })
                    })
                })
                .count();
            if missing == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(not_ready(format!(
                    "{missing} of {} agents not in all their rooms; its log ends:\n{}",
                    wanted.len(),
                    log_tail(log)
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Where the bench agent's workflows are, in the run's folder (a folder of
/// their own: the rest of it is logs, state and fleet files).
fn workflows_dir(dir: &std::path::Path) -> PathBuf {
    dir.join("workflows")
}

/// Where an agent's stderr goes (for the end of it in errors).
fn log_path(dir: &std::path::Path, contender: Contender) -> PathBuf {
    dir.join(format!("{}.log", contender.name()))
}

/// The last lines of a log file, for error messages.
fn log_tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
