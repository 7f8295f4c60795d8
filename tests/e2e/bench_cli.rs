//! `switchboard bench` as a process: every contender's messages are all
//! answered exactly once (switchboard both durable, its default, and
//! `--ephemeral`), the figures are sane, the agent's CPU and memory are read,
//! the table compares durable with ephemeral, and it runs against a sandbox
//! started elsewhere from its seed.
//! With a store: the `switchboard-store` contender (a one-agent `run --fleet
//! --store`) answers every message once, fleet density runs one process with
//! several agents and measures it, and failover times a takeover after a
//! SIGKILL.
//! Small loads: this checks the tool, BENCHMARKS.md has the figures.

use crate::support::cli;
use crate::support::redis::{RedisCluster, RedisServer};
use crate::support::venv;

use std::time::Duration;

use band_sandbox::{parse_seed, RunningSandbox};
use serde_json::Value;

fn figures(stdout: &[u8]) -> Vec<Value> {
    let text = String::from_utf8_lossy(stdout);
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    v.as_array().cloned().expect("a list of figures")
}

fn assert_clean(f: &Value, messages: u64) {
    let name = &f["agent"];
    assert_eq!(f["answered"], messages, "{name}: {f}");
    assert_eq!(f["lost"], 0, "{name}: {f}");
    assert_eq!(f["duplicates"], 0, "{name}: {f}");
    let (p50, p99, max) = (
        f["p50_ms"].as_f64().unwrap(),
        f["p99_ms"].as_f64().unwrap(),
        f["max_ms"].as_f64().unwrap(),
    );
    assert!(p50 > 0.0 && p50 <= p99 && p99 <= max, "{name}: {f}");
    assert!(f["throughput"].as_f64().unwrap() > 0.0, "{name}: {f}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_contender_answers_every_message_once() {
    let python = tokio::task::spawn_blocking(venv::setup_venv).await.unwrap();
    let out = cli::output_within(
        cli::switchboard()
            .args([
                "bench",
                "--messages",
                "40",
                "--rooms",
                "2",
                "--inflight",
                "4",
            ])
            .args([
                "--agents",
                "floor,switchboard,switchboard-ephemeral,sdk",
                "--json",
                "--limit",
                "60s",
            ])
            .arg("--python")
            .arg(&python),
        Duration::from_secs(240),
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = figures(&out.stdout);
    let names: Vec<&str> = all.iter().map(|f| f["agent"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["floor", "switchboard", "switchboard-ephemeral", "band-sdk"]
    );
    for f in &all {
        assert_clean(f, 40);
    }
    // Only switchboard has a state directory: durable by default (the bench
    // checked its journal is on disk), in memory with --ephemeral.
    let states: Vec<&Value> = all.iter().map(|f| &f["state"]).collect();
    assert_eq!(
        states,
        [
            &Value::Null,
            &"durable".into(),
            &"ephemeral".into(),
            &Value::Null
        ]
    );
    // The floor has no agent process; the others were measured.
    assert!(all[0]["idle_rss_mib"].is_null());
    for f in &all[1..] {
        assert!(f["idle_rss_mib"].as_f64().unwrap() > 1.0, "{f}");
        assert!(f["peak_rss_mib"].as_f64().unwrap() >= f["idle_rss_mib"].as_f64().unwrap());
        assert!(f["cpu_s"].as_f64().is_some(), "{f}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_against_a_sandbox_started_from_its_seed() {
    let out = cli::output_within(
        cli::switchboard().args(["bench", "--rooms", "2", "--print-seed"]),
        Duration::from_secs(30),
    )
    .await;
    assert!(out.status.success());
    let seed = parse_seed(&String::from_utf8_lossy(&out.stdout), "printed seed")
        .unwrap_or_else(|e| panic!("{e}"));
    let sb = RunningSandbox::start("127.0.0.1:0".parse().unwrap(), seed)
        .await
        .unwrap();

    let out = cli::output_within(
        cli::switchboard()
            .args(["bench", "--rooms", "2", "--messages", "20", "--rate", "200"])
            .args(["--agents", "switchboard", "--json", "--sandbox"])
            .arg(sb.rest_url()),
        Duration::from_secs(120),
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_clean(&figures(&out.stdout)[0], 20);

    // The table: a row for each, and what durability costs as ratios. A
    // success exit means every message was answered exactly once.
    let out = cli::output_within(
        cli::switchboard()
            .args(["bench", "--rooms", "2", "--messages", "20", "--rate", "200"])
            .args(["--agents", "switchboard-ephemeral,switchboard", "--sandbox"])
            .arg(sb.rest_url()),
        Duration::from_secs(120),
    )
    .await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<&str> = table
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(rows.contains(&"switchboard"), "{table}");
    assert!(rows.contains(&"switchboard-ephemeral"), "{table}");
    let ratios = table
        .lines()
        .find(|l| l.starts_with("durable vs --ephemeral:"))
        .unwrap_or_else(|| panic!("no durable/ephemeral ratios in:\n{table}"));
    for what in ["p50", "p99", "throughput"] {
        assert!(ratios.contains(what), "{ratios}");
    }

    // A world of another size is not there: a clear error, no load.
    let out = cli::output_within(
        cli::switchboard()
            .args(["bench", "--rooms", "3", "--agents", "floor", "--sandbox"])
            .arg(sb.rest_url()),
        Duration::from_secs(60),
    )
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not hold the bench world for 3 rooms"),
        "{err}"
    );
    assert!(err.contains("--print-seed"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_contender_answers_every_message_once() {
    let redis = RedisServer::start().await;
    // A key of the bench agent left by an earlier run: the bench deletes it.
    let stale = "switchboard:{00000000-0000-4000-8000-000200000000}:stale";
    redis.set(stale, "from an earlier run").await;
    let out = cli::output_within(
        cli::switchboard()
            .args([
                "bench",
                "--messages",
                "30",
                "--rooms",
                "2",
                "--inflight",
                "4",
            ])
            .args(["--agents", "switchboard-ephemeral,switchboard-store"])
            .args(["--json", "--limit", "40s", "--store"])
            .arg(redis.url()),
        Duration::from_secs(90),
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = figures(&out.stdout);
    let names: Vec<&str> = all.iter().map(|f| f["agent"].as_str().unwrap()).collect();
    assert_eq!(names, ["switchboard-ephemeral", "switchboard-store"]);
    for f in &all {
        assert_clean(f, 30);
        assert!(f["idle_rss_mib"].as_f64().unwrap() > 1.0, "{f}");
    }
    assert_eq!(all[1]["state"], "store");
    assert_eq!(
        redis.get(stale).await,
        None,
        "the stale key was not deleted"
    );
    // The agent's journal went to the store.
    let keys = redis
        .keys("switchboard:{00000000-0000-4000-8000-000200000000}:*")
        .await;
    assert!(!keys.is_empty(), "the store holds none of the agent's keys");

    // A store no contender uses: a clear error rather than a run that ignores it.
    let out = cli::output_within(
        cli::switchboard()
            .args(["bench", "--agents", "floor", "--store"])
            .arg(redis.url()),
        Duration::from_secs(30),
    )
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("switchboard-store"), "{err}");

    // The store contender without a store: a clear error, nothing run.
    let out = cli::output_within(
        cli::switchboard().args(["bench", "--agents", "switchboard-store"]),
        Duration::from_secs(30),
    )
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--store"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_density_measures_one_process_per_fleet_size() {
    let out = cli::output_within(
        cli::switchboard().args(["bench", "--fleet-agents", "1,3", "--idle", "1s", "--json"]),
        Duration::from_secs(90),
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = figures(&out.stdout);
    let sizes: Vec<u64> = all.iter().map(|f| f["agents"].as_u64().unwrap()).collect();
    assert_eq!(sizes, [1, 3]);
    for f in &all {
        let n = f["agents"].as_u64().unwrap();
        assert_eq!(f["rooms"], n * 2, "{f}");
        assert_eq!(f["answered"], n, "{f}");
        assert_eq!(f["duplicates"], 0, "{f}");
        assert!(f["rss_mib"].as_f64().unwrap() > 1.0, "{f}");
        let cpu = f["idle_cpu_percent"].as_f64().unwrap();
        assert!((0.0..=200.0).contains(&cpu), "{f}");
        assert!(f["ready_s"].as_f64().unwrap() > 0.0, "{f}");
        assert_eq!(f["store"], false, "{f}");
    }
    assert!(all[0]["rss_per_extra_agent_kib"].is_null());
    assert!(all[1]["rss_per_extra_agent_kib"].as_f64().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_times_a_takeover_after_sigkill() {
    let redis = RedisServer::start().await;
    let out = cli::output_within(
        cli::switchboard()
            .args([
                "bench",
                "--failover",
                "1",
                "--lease",
                "2s",
                "--json",
                "--store",
            ])
            .arg(redis.url()),
        Duration::from_secs(60),
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(f["lease_s"], 2.0, "{f}");
    let times = f["times_s"].as_array().expect("the times");
    assert_eq!(times.len(), 1, "{f}");
    let t = times[0].as_f64().unwrap();
    assert!(t > 0.0 && t < 30.0, "{f}");
    assert_eq!(f["median_s"], t, "{f}");

    // Failover needs a store.
    let out = cli::output_within(
        cli::switchboard().args(["bench", "--failover", "1"]),
        Duration::from_secs(30),
    )
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--store"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_it_cannot_clear_is_refused_before_the_run() {
    // A SCAN reaches one node of a cluster: clearing the agent's keys there
    // could miss some, and the run would not start from an empty store.
    let cluster = RedisCluster::start(3).await;
    let out = cli::output_within(
        cli::switchboard()
            .args(["bench", "--messages", "10", "--rooms", "1"])
            .args(["--agents", "floor,switchboard-store", "--store"])
            .arg(cluster.url()),
        Duration::from_secs(60),
    )
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("Redis Cluster"), "{err}");
    assert!(err.contains("single node"), "{err}");
    // Refused before any contender ran.
    assert!(!err.contains("floor: starting"), "{err}");
}
