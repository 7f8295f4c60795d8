//! `switchboard bench`: the load tool (see [`crate::bench`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use crate::bench::load::Pace;
use crate::bench::report::{table, Figures};
use crate::bench::world::World;
use crate::bench::{self, Contender, Plan};

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

The band-sdk contender needs Python with band-sdk: `bash tests/compat/setup-venv.sh`
makes .venv (the default --python).

Examples:
  switchboard bench                                   # every contender, as fast as possible
  switchboard bench --rate 500 --messages 5000 --agents floor,switchboard
  switchboard bench --rate 500 --messages 5000 --agents switchboard,switchboard-ephemeral
  switchboard bench --rules 10000 --messages 200 --agents switchboard   # memory with 10,000 rules")]
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
            Who::Sdk => Contender::Sdk,
        })
        .collect();
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
        exe: std::env::current_exe().context("cannot find the switchboard binary")?,
        python: args.python,
        sdk_script: args.sdk_script,
        sandbox: args.sandbox,
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
        std::thread::available_parallelism().map_or(0, |n| n.get())
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
