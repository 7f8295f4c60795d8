//! `switchboard bench`: the load tool (see [`crate::bench`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use crate::bench::fleet::{DensityPlan, FailoverPlan};
use crate::bench::load::Pace;
use crate::bench::report::{density_table, failover_text, table, Figures};
use crate::bench::world::World;
use crate::bench::{self, Contender, Plan};
use crate::fleet::StoreUrl;

/// Who to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Who {
    /// The driver makes the agent's REST calls itself: what the platform costs.
    Floor,
    /// `switchboard run` as by default, durable (journal and state fsync'd in a
    /// fresh temporary state directory), on an echo rule plus --rules filler.
    Switchboard,
    /// The same with --ephemeral: journal and state in memory, nothing written.
    SwitchboardEphemeral,
    /// `switchboard run --fleet` of the same agent under --store: journal and
    /// state in Redis, the agent leased.
    SwitchboardStore,
    /// The official Python SDK's echo agent (tests/compat/sdk_agent.py).
    Sdk,
}

/// Arguments of `switchboard bench`.
#[derive(Debug, Args)]
#[command(after_help = "\
Each contender gets the same world (one person per room, each room with the
agent bench/echo), reset between runs, and the same messages (\"@bench/echo
ping #N\"). Latency is from just before a person's POST to the reply arriving
on that person's socket. CPU time and RSS of the agent process come from /proc.
Everything stays on loopback; every run is bounded by --limit.

switchboard runs durable, as `switchboard run` does by default (every reply is
journaled and fsync'd before it goes out), in a temporary state directory on
the temporary folder's disk; switchboard-ephemeral runs with --ephemeral. With
both, the report gives durable / ephemeral ratios: what durability costs.
switchboard-store runs the same agent as a one-agent `run --fleet` under
--store (its keys in the store deleted first), with store / ephemeral ratios.

Fleets (instead of the contenders):
  --fleet-agents 1,10,100: for each size, one `run --fleet` process with that
  many agents (2 rooms each with one person, 5 rules each; ephemeral, or under
  --store), measured once all are running and in their rooms: RSS, RSS per
  extra agent against the smallest fleet, CPU over --idle; then each agent
  gets one message and must answer it once.
  --failover N --store URL: two `run --fleet` processes share a one-agent
  fleet; N times the one holding the agent is killed (SIGKILL) while a person
  pings every 200 ms: the time to the agent's first reply from the other
  process (within the --lease plus start-up), then a fresh standby starts.

The band-sdk contender needs Python with band-sdk: `bash tests/compat/setup-venv.sh`
makes .venv (the default --python).

Examples:
  switchboard bench                                   # every contender, as fast as possible
  switchboard bench --rate 500 --messages 5000 --agents floor,switchboard
  switchboard bench --rate 500 --messages 5000 --agents switchboard,switchboard-ephemeral
  switchboard bench --rules 10000 --messages 200 --agents switchboard   # memory with 10,000 rules
  switchboard bench --rate 500 --messages 5000 --store redis://127.0.0.1:6379/0 \
      --agents switchboard,switchboard-ephemeral,switchboard-store
  switchboard bench --fleet-agents 1,10,100,500 --idle 10s
  switchboard bench --failover 10 --store redis://127.0.0.1:6379/0")]
pub struct BenchArgs {
    /// Messages per contender.
    #[arg(long, default_value_t = 2_000)]
    messages: usize,

    /// Rooms (each with its own person).
    #[arg(long, default_value_t = 8)]
    rooms: usize,

    /// Messages per second; without it, as fast as --inflight allows.
    #[arg(long, value_name = "PER_SECOND")]
    rate: Option<f64>,

    /// Without --rate: messages sent but not yet answered, at most.
    #[arg(long, default_value_t = 32)]
    inflight: usize,

    /// Rules the switchboard agent loads (one answers; the rest never match a bench message).
    #[arg(long, default_value_t = 100)]
    rules: usize,

    /// Contenders, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "floor,switchboard,switchboard-ephemeral,sdk"
    )]
    agents: Vec<Who>,

    /// Bound on each contender's load.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    limit: Duration,

    /// Python with band-sdk installed.
    #[arg(long, default_value = ".venv/bin/python")]
    python: PathBuf,

    /// The band-sdk echo agent script.
    #[arg(long, default_value = "tests/compat/sdk_agent.py")]
    sdk_script: PathBuf,

    /// Use this running sandbox (started with --print-seed's seed) instead of one in-process.
    #[arg(long, value_name = "URL")]
    sandbox: Option<String>,

    /// Print the sandbox seed of the bench world and exit.
    #[arg(long)]
    print_seed: bool,

    /// The Redis store of switchboard-store, --fleet-agents and --failover
    /// (its bench agents' keys are deleted before each run).
    #[arg(long, value_name = "URL", value_parser = parse_store)]
    store: Option<StoreUrl>,

    /// With a store: the agents' --lease.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    lease: Duration,

    /// Fleet density at these fleet sizes instead of the contenders.
    #[arg(long, value_name = "N,N,…", value_delimiter = ',', conflicts_with_all = ["agents", "failover", "sandbox"])]
    fleet_agents: Vec<usize>,

    /// With --fleet-agents: the window idle CPU is measured over.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    idle: Duration,

    /// Time this many takeovers of an agent whose process was killed (needs --store).
    #[arg(long, value_name = "N", conflicts_with_all = ["agents", "sandbox"], value_parser = clap::value_parser!(u64).range(1..))]
    failover: Option<u64>,

    /// Print the figures as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs the benchmark; exit 1 when a message was lost or answered twice.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if args.print_seed {
        print!("{}", World::new(args.rooms.max(1)).seed());
        return Ok(ExitCode::SUCCESS);
    }
    let contenders: Vec<Contender> = args
        .agents
        .iter()
        .map(|w| match w {
            Who::Floor => Contender::Floor,
            Who::Switchboard => Contender::Switchboard,
            Who::SwitchboardEphemeral => Contender::SwitchboardEphemeral,
            Who::SwitchboardStore => Contender::SwitchboardStore,
            Who::Sdk => Contender::Sdk,
        })
        .collect();
    let exe = std::env::current_exe().context("cannot find the switchboard binary")?;
    if !args.fleet_agents.is_empty() {
        return density(&args, exe).await;
    }
    if let Some(runs) = args.failover {
        return failover(&args, exe, runs).await;
    }
    if args.store.is_some() && !contenders.contains(&Contender::SwitchboardStore) {
        anyhow::bail!(
            "--store is for the switchboard-store contender (add it to --agents), \
             --fleet-agents and --failover; no contender of this run would use it"
        );
    }
    if contenders.contains(&Contender::SwitchboardStore) && args.store.is_none() {
        anyhow::bail!(
            "the switchboard-store contender needs a store: pass --store redis://HOST:PORT/DB \
             (its bench agent's keys there are deleted before the run)"
        );
    }
    if contenders.contains(&Contender::Sdk) && !args.python.exists() {
        anyhow::bail!(
            "no Python at {} for the band-sdk contender; run `bash tests/compat/setup-venv.sh`, \
             pass --python, or leave sdk out of --agents",
            args.python.display()
        );
    }
    let pace = match args.rate {
        Some(r) if r > 0.0 => Pace::Rate(r),
        Some(_) => anyhow::bail!("--rate must be above 0"),
        None => Pace::Closed {
            inflight: args.inflight.max(1),
        },
    };
    let plan = Plan {
        messages: args.messages,
        rooms: args.rooms.max(1),
        pace,
        rules: args.rules.max(1),
        limit: args.limit,
        contenders,
        exe,
        python: args.python,
        sdk_script: args.sdk_script,
        sandbox: args.sandbox,
        store: args.store,
        lease: args.lease,
    };
    let pace_text = match pace {
        Pace::Rate(r) => format!("at {r} messages/s"),
        Pace::Closed { inflight } => format!("as fast as possible ({inflight} in flight)"),
    };
    eprintln!(
        "switchboard bench: {} messages over {} rooms, {pace_text}; switchboard with {} rules; {} CPUs",
        plan.messages,
        plan.rooms,
        plan.rules,
        cpus()
    );
    let outcomes = bench::run(&plan, &|line| eprintln!("  {line}")).await?;
    if args.json {
        let figures: Vec<Figures> = outcomes.iter().map(Figures::of).collect();
        println!("{}", serde_json::to_string_pretty(&figures)?);
    } else {
        println!("{}", table(&outcomes));
    }
    let clean = outcomes.iter().all(|o| {
        o.load.answered == o.load.sent && o.load.duplicates == 0 && o.load.sent == plan.messages
    });
    Ok(match clean {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    })
}

/// `--fleet-agents`: one fleet process per size; exit 1 unless every agent
/// answered its message exactly once.
async fn density(args: &BenchArgs, exe: std::path::PathBuf) -> anyhow::Result<ExitCode> {
    let plan = DensityPlan {
        sizes: args.fleet_agents.iter().map(|&n| n.max(1)).collect(),
        idle: args.idle,
        rooms_per_agent: 2,
        rules: 5,
        exe,
        store: args.store.clone(),
        lease: args.lease,
    };
    eprintln!(
        "switchboard bench: fleet density at {:?} agents ({} rooms and {} rules each, {}), idle window {:?}; {} CPUs",
        plan.sizes,
        plan.rooms_per_agent,
        plan.rules,
        plan.store
            .as_ref()
            .map_or("ephemeral".to_owned(), |s| format!("store {}", s.redacted())),
        plan.idle,
        cpus()
    );
    let figures = bench::fleet::density(&plan, &|line| eprintln!("  {line}")).await?;
    match args.json {
        true => println!("{}", serde_json::to_string_pretty(&figures)?),
        false => print!("{}", density_table(&figures)),
    }
    let clean = figures
        .iter()
        .all(|f| f.answered == f.agents && f.duplicates == 0);
    if !clean {
        eprintln!("switchboard bench: an agent of a fleet did not answer its message exactly once");
    }
    Ok(match clean {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    })
}

/// `--failover N`: N timed takeovers under the store.
async fn failover(
    args: &BenchArgs,
    exe: std::path::PathBuf,
    runs: u64,
) -> anyhow::Result<ExitCode> {
    let Some(store) = args.store.clone() else {
        anyhow::bail!(
            "--failover needs a store the two processes share: pass --store redis://HOST:PORT/DB"
        );
    };
    let plan = FailoverPlan {
        runs: usize::try_from(runs).context("--failover is too large")?,
        exe,
        store,
        lease: args.lease,
        limit: args.limit.min(Duration::from_secs(120)).max(args.lease * 4),
    };
    eprintln!(
        "switchboard bench: {} takeovers with a {:?} lease, store {}; {} CPUs",
        plan.runs,
        plan.lease,
        plan.store.redacted(),
        cpus()
    );
    let figures = bench::fleet::failover(&plan, &|line| eprintln!("  {line}")).await?;
    match args.json {
        true => println!("{}", serde_json::to_string_pretty(&figures)?),
        false => print!("{}", failover_text(&figures)),
    }
    Ok(ExitCode::SUCCESS)
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

/// A `--store` URL (redis:// or rediss://); the error never shows a password.
fn parse_store(text: &str) -> Result<StoreUrl, String> {
    StoreUrl::parse(text).map_err(|e| e.replace("`store`", "--store"))
}
