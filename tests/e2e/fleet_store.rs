//! Fleets sharing a real `redis-server`: two processes split a fleet of four
//! agents, each agent answered by exactly one of them; a process killed
//! with SIGKILL in the middle of a message stream is taken over by the
//! other with nothing lost and nothing answered twice; a counter and a
//! throttle window carry on across the takeover; Redis restarted under load
//! pauses the agents, which then answer everything once.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use band_client::rest::{HumanApi, HumanMessageQuery, RestConfig};
use band_sandbox::RunningSandbox;

use crate::support::cli::{switchboard, Running};
use crate::support::redis::{RedisCluster, RedisServer};
use crate::support::seeded::ask;

/// Answers each `ping` with the agent's running count; `once` at most once an hour.
const RULES: &str = r#"version: 1
rules:
  - name: ping
    on: message_created
    if: [ { event.text: { contains: ping } } ]
    do:
      - incr: { key: pings }
        as: n
      - reply: "pong {{ n }} for {{ event.text }}"
  - name: once
    on: message_created
    if: [ { event.text: { contains: once } } ]
    throttle: { max: 1, per: 1h }
    do:
      - reply: "only once for {{ event.text }}"
"#;

/// A sandbox with bob and `n` agents, each alone with bob in its own room,
/// one workflows folder for all, and a fleet file naming them.
struct Fleet {
    sb: RunningSandbox,
    bob: HumanApi,
    dir: tempfile::TempDir,
    /// (name, agent id, room id) per agent.
    bots: Vec<(String, String, String)>,
}

impl Fleet {
    async fn start(n: usize, first: usize) -> Fleet {
        let id = |i: usize| format!("9c1e0000-0000-4000-8000-{:012}", first + i);
        let mut seed =
            String::from("users:\n  - handle: bob\n    name: Bob\n    api_key: bob-key\nagents:\n");
        for i in 0..n {
            seed.push_str(&format!(
                "  - handle: bob/b{i}\n    name: B{i}\n    description: bot {i}\n    api_key: key-{i}\n    id: {}\n",
                id(i)
            ));
        }
        seed.push_str("rooms:\n");
        for i in 0..n {
            seed.push_str(&format!(
                "  - title: Room {i}\n    owner: bob\n    participants: [bob/b{i}]\n"
            ));
        }
        let seed = band_sandbox::parse_seed(&seed, "fleet seed").expect("the seed is valid");
        let sb = RunningSandbox::start("127.0.0.1:0".parse().unwrap(), seed)
            .await
            .unwrap();
        let bob = HumanApi::new(RestConfig::new(sb.rest_url(), "bob-key")).unwrap();
        let rooms = bob.list_chats(None, None).await.unwrap().items;
        let bots = (0..n)
            .map(|i| {
                let room = rooms
                    .iter()
                    .find(|r| r.title.as_deref() == Some(&format!("Room {i}")))
                    .expect("the seeded room")
                    .id
                    .clone();
                (format!("b{i}"), id(i), room)
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("wf")).unwrap();
        std::fs::write(dir.path().join("wf/rules.yaml"), RULES).unwrap();
        let fleet = Fleet { sb, bob, dir, bots };
        let mut text = format!(
            "rest_url: {}\nws_url: {}\nagents:\n",
            fleet.sb.rest_url(),
            fleet.sb.ws_url()
        );
        for (i, (name, id, _)) in fleet.bots.iter().enumerate() {
            text.push_str(&format!(
                "  - name: {name}\n    agent_id: {id}\n    api_key_env: FLEET_STORE_KEY_{i}\n    workflows: wf\n"
            ));
        }
        std::fs::write(fleet.path(), text).unwrap();
        fleet
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("fleet.yaml")
    }

    /// `run --fleet` with the store; its metrics (and `/healthz`) at the returned address.
    fn run(&self, redis: &RedisServer, extra: &[&str]) -> (Running, SocketAddr) {
        self.run_on(&redis.url(), extra)
    }

    /// Like [`Fleet::run`], on the store at `url`.
    fn run_on(&self, url: &str, extra: &[&str]) -> (Running, SocketAddr) {
        let addr = free_addr();
        let mut cmd = switchboard();
        cmd.arg("run")
            .arg("--fleet")
            .arg(self.path())
            .arg("--store")
            .arg(url)
            .arg("--lease")
            .arg("2s")
            .arg("--metrics-addr")
            .arg(addr.to_string())
            .args(extra)
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .env("RUST_LOG", "info");
        for i in 0..self.bots.len() {
            cmd.env(format!("FLEET_STORE_KEY_{i}"), format!("key-{i}"));
        }
        (Running::spawn(&mut cmd), addr)
    }

    /// Bob asks agent `i` `text` in its room; the question's id.
    async fn ask(&self, i: usize, text: &str) -> String {
        let (_, bot, room) = &self.bots[i];
        ask(&self.bob, room, bot, text).await
    }

    /// Every text message agent `i` posted in its room (without the mention
    /// of bob it starts with).
    async fn replies(&self, i: usize) -> Vec<String> {
        let (_, bot, room) = &self.bots[i];
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let query = HumanMessageQuery {
                limit: Some(100),
                cursor: cursor.clone(),
                ..HumanMessageQuery::default()
            };
            let page = self.bob.list_messages(room, &query).await.unwrap();
            out.extend(
                page.items
                    .into_iter()
                    .filter(|m| &m.sender_id == bot && m.message_type == "text")
                    .map(|m| without_mention(&m.content).to_owned()),
            );
            match page.meta.next_cursor {
                Some(next) if !next.is_empty() => cursor = Some(next),
                _ => return out,
            }
        }
    }

    /// Agent `i`'s room, message by message (for failure reports).
    async fn transcript(&self, i: usize) -> String {
        let (_, _, room) = &self.bots[i];
        let query = HumanMessageQuery {
            limit: Some(100),
            ..HumanMessageQuery::default()
        };
        let page = self.bob.list_messages(room, &query).await.unwrap();
        page.items
            .iter()
            .map(|m| {
                format!(
                    "\n  {} {} {} {}",
                    m.inserted_at,
                    m.id,
                    &m.sender_id[..8.min(m.sender_id.len())],
                    m.content
                )
            })
            .collect()
    }

    /// Waits (bounded) until each token in `tokens[i]` has a reply from
    /// agent `i`; panics with the processes' logs otherwise.
    async fn wait_answered(&self, tokens: &[Vec<String>], limit: Duration, logs: &[&Running]) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let mut missing = Vec::new();
            for (i, wanted) in tokens.iter().enumerate() {
                let replies = self.replies(i).await;
                for token in wanted {
                    if !replies.iter().any(|r| answers(r, token)) {
                        missing.push(format!("{}:{token}", self.bots[i].0));
                    }
                }
            }
            if missing.is_empty() {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                let logs: Vec<String> = logs.iter().map(|r| r.stderr_lines().join("\n")).collect();
                panic!(
                    "unanswered after {limit:?}: {missing:?}\nlogs:\n{}",
                    logs.join("\n-----\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Per agent, the tokens answered more than once.
    async fn answered_twice(&self, tokens: &[Vec<String>]) -> Vec<String> {
        let mut twice = Vec::new();
        for (i, wanted) in tokens.iter().enumerate() {
            let replies = self.replies(i).await;
            for token in wanted {
                let n = replies.iter().filter(|r| answers(r, token)).count();
                if n > 1 {
                    twice.push(format!(
                        "{}:{token} x{n}: {}",
                        self.bots[i].0,
                        self.transcript(i).await
                    ));
                }
            }
        }
        twice
    }
}

/// A reply's text after the mention of whoever it answers (`@[[id]] `).
fn without_mention(reply: &str) -> &str {
    match reply.strip_prefix("@[[").and_then(|r| r.split_once("]] ")) {
        Some((_, text)) => text,
        None => reply,
    }
}

/// True when `reply` answers the question carrying `token`.
fn answers(reply: &str, token: &str) -> bool {
    reply
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '-')
        .any(|w| w == token)
}

fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// The agents a process runs now (its `/healthz`), `None` if it does not answer.
async fn running_here(addr: SocketAddr) -> Option<BTreeSet<String>> {
    let body: serde_json::Value = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    Some(
        body["agents"]
            .as_object()?
            .iter()
            .filter(|(_, a)| a["state"] == "running")
            .map(|(name, _)| name.clone())
            .collect(),
    )
}

/// Waits until `want(per process agents)` holds; returns the split.
async fn wait_split(
    addrs: &[SocketAddr],
    limit: Duration,
    logs: &[&Running],
    want: impl Fn(&[BTreeSet<String>]) -> bool,
) -> Vec<BTreeSet<String>> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let mut split = Vec::new();
        for addr in addrs {
            split.push(running_here(*addr).await.unwrap_or_default());
        }
        if want(&split) {
            return split;
        }
        if tokio::time::Instant::now() >= deadline {
            let logs: Vec<String> = logs.iter().map(|r| r.stderr_lines().join("\n")).collect();
            panic!(
                "the agents never split as wanted; last: {split:?}\nlogs:\n{}",
                logs.join("\n-----\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn all_four(split: &[BTreeSet<String>]) -> bool {
    let names: Vec<&String> = split.iter().flatten().collect();
    let unique: BTreeSet<&String> = names.iter().copied().collect();
    names.len() == 4 && unique.len() == 4
}

#[tokio::test]
async fn two_processes_share_four_agents_each_answered_by_exactly_one() {
    let redis = RedisServer::start().await;
    let fleet = Fleet::start(4, 301).await;
    let (one, one_addr) = fleet.run(&redis, &[]);
    let (two, two_addr) = fleet.run(&redis, &[]);
    let split = wait_split(
        &[one_addr, two_addr],
        Duration::from_secs(40),
        &[&one, &two],
        |s| all_four(s) && s.iter().all(|p| p.len() == 2),
    )
    .await;
    assert!(split[0].is_disjoint(&split[1]), "{split:?}");
    let mut tokens = vec![Vec::new(); 4];
    for round in 0..3 {
        for (i, wanted) in tokens.iter_mut().enumerate() {
            let token = format!("q{i}r{round}");
            fleet.ask(i, &format!("ping {token}")).await;
            wanted.push(token);
        }
    }
    fleet
        .wait_answered(&tokens, Duration::from_secs(30), &[&one, &two])
        .await;
    // Late doubles would show up within a moment.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(fleet.answered_twice(&tokens).await, Vec::<String>::new());
    for i in 0..4 {
        let replies = fleet.replies(i).await;
        assert_eq!(replies.len(), 3, "agent {i}: {replies:?}");
        // The count in the store went 1, 2, 3 for each agent.
        for n in 1..=3 {
            assert!(
                replies.iter().any(|r| r.starts_with(&format!("pong {n} "))),
                "{replies:?}"
            );
        }
    }
    one.stop_cleanly("process one", Duration::from_secs(30))
        .await;
    // A clean stop hands its agents back at once: the other takes all four.
    wait_split(&[two_addr], Duration::from_secs(20), &[&two], all_four).await;
    two.stop_cleanly("process two", Duration::from_secs(30))
        .await;
}

#[tokio::test]
async fn sigkill_of_a_process_is_taken_over_with_nothing_lost_or_repeated() {
    let redis = RedisServer::start().await;
    let fleet = Fleet::start(4, 311).await;
    let (one, one_addr) = fleet.run(&redis, &[]);
    let (two, two_addr) = fleet.run(&redis, &[]);
    wait_split(
        &[one_addr, two_addr],
        Duration::from_secs(40),
        &[&one, &two],
        |s| all_four(s) && s.iter().all(|p| p.len() == 2),
    )
    .await;
    let mut tokens = vec![Vec::new(); 4];
    let mut killed_at = None;
    for n in 0..15 {
        for (i, wanted) in tokens.iter_mut().enumerate() {
            let token = format!("s{i}n{n}");
            fleet.ask(i, &format!("ping {token}")).await;
            wanted.push(token);
        }
        if n == 5 {
            one.signal("KILL");
            killed_at = Some(tokio::time::Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    fleet
        .wait_answered(&tokens, Duration::from_secs(60), &[&two])
        .await;
    let took = killed_at.map(|t| t.elapsed());
    wait_split(&[two_addr], Duration::from_secs(5), &[&two], all_four).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        fleet.answered_twice(&tokens).await,
        Vec::<String>::new(),
        "logs of the killed process:\n{}\n-----\nlogs of the other:\n{}",
        one.stderr_lines().join("\n"),
        two.stderr_lines().join("\n")
    );
    // Each agent's counter counted every ping exactly once.
    for i in 0..4 {
        let replies = fleet.replies(i).await;
        assert_eq!(replies.len(), 15, "agent {i}: {replies:?}");
        let counts: BTreeSet<String> = replies
            .iter()
            .filter_map(|r| r.split_whitespace().nth(1).map(str::to_owned))
            .collect();
        assert_eq!(
            counts.len(),
            15,
            "agent {i} counted a ping twice: {replies:?}"
        );
    }
    let stderr = two
        .stop_cleanly("process two", Duration::from_secs(30))
        .await;
    assert!(
        stderr.iter().any(|l| l.contains("took the agent's lease")),
        "{}",
        stderr.join("\n")
    );
    eprintln!("every message answered once, {took:?} after the kill");
    drop(one);
}

#[tokio::test]
async fn a_counter_and_a_throttle_window_carry_on_across_a_takeover() {
    let redis = RedisServer::start().await;
    let fleet = Fleet::start(1, 321).await;
    let (one, one_addr) = fleet.run(&redis, &[]);
    wait_split(&[one_addr], Duration::from_secs(30), &[&one], |s| {
        s[0].len() == 1
    })
    .await;
    let tokens = vec![vec!["c1".to_owned(), "c2".to_owned(), "t1".to_owned()]];
    fleet.ask(0, "ping c1").await;
    fleet.ask(0, "ping c2").await;
    fleet.ask(0, "once t1").await;
    fleet
        .wait_answered(&tokens, Duration::from_secs(20), &[&one])
        .await;
    one.signal("KILL");
    let (two, two_addr) = fleet.run(&redis, &[]);
    wait_split(&[two_addr], Duration::from_secs(30), &[&two], |s| {
        s[0].len() == 1
    })
    .await;
    fleet.ask(0, "ping c3").await;
    fleet.ask(0, "once t2").await;
    fleet.ask(0, "ping c4").await;
    let later = vec![vec!["c3".to_owned(), "c4".to_owned()]];
    fleet
        .wait_answered(&later, Duration::from_secs(20), &[&two])
        .await;
    let replies = fleet.replies(0).await;
    assert!(
        replies.iter().any(|r| r == "pong 3 for @bob/b0 ping c3"),
        "the counter did not carry on: {replies:?}"
    );
    assert!(
        replies.iter().any(|r| r.starts_with("pong 4 ")),
        "{replies:?}"
    );
    assert!(
        !replies.iter().any(|r| answers(r, "t2")),
        "the throttle window did not carry on: {replies:?}"
    );
    two.stop_cleanly("process two", Duration::from_secs(30))
        .await;
    drop(one);
}

#[tokio::test]
async fn redis_restarted_under_load_pauses_the_agents_and_loses_nothing() {
    let mut redis = RedisServer::start().await;
    let fleet = Fleet::start(2, 331).await;
    let (one, one_addr) = fleet.run(&redis, &[]);
    wait_split(&[one_addr], Duration::from_secs(30), &[&one], |s| {
        s[0].len() == 2
    })
    .await;
    let mut tokens = vec![Vec::new(); 2];
    for n in 0..20 {
        for (i, wanted) in tokens.iter_mut().enumerate() {
            let token = format!("r{i}n{n}");
            fleet.ask(i, &format!("ping {token}")).await;
            wanted.push(token);
        }
        if n == 5 {
            redis.stop().await;
        }
        if n == 12 {
            // Down for longer than a lease: the agents stop, then resume.
            tokio::time::sleep(Duration::from_secs(3)).await;
            redis.start_again().await;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    fleet
        .wait_answered(&tokens, Duration::from_secs(60), &[&one])
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        fleet.answered_twice(&tokens).await,
        Vec::<String>::new(),
        "logs:\n{}",
        one.stderr_lines().join("\n")
    );
    let stderr = one.stop_cleanly("the fleet", Duration::from_secs(30)).await;
    assert!(
        stderr.iter().any(|l| l.contains("lease is lost")),
        "the agents did not stop while the store was away:\n{}",
        stderr.join("\n")
    );
}

/// `switchboard run` of agent 0 alone (no fleet file), its store from `SWITCHBOARD_STORE`.
fn run_single(fleet: &Fleet, redis: &RedisServer) -> Running {
    let mut cmd = switchboard();
    cmd.arg("run")
        .arg("--workflows")
        .arg(fleet.dir.path().join("wf"))
        .args(["--api-key", "key-0", "--rest-url"])
        .arg(fleet.sb.rest_url())
        .arg("--ws-url")
        .arg(fleet.sb.ws_url())
        .args(["--lease", "2s"])
        .env("SWITCHBOARD_STORE", redis.url())
        .env("RUST_LOG", "info");
    Running::spawn(&mut cmd)
}

#[tokio::test]
async fn a_second_run_of_one_agent_stands_by_and_takes_over_when_the_first_dies() {
    let redis = RedisServer::start().await;
    let fleet = Fleet::start(1, 341).await;
    let mut first = run_single(&fleet, &redis);
    first
        .wait_for_stderr("the lease taken", Duration::from_secs(30), |l| {
            l.contains("took the agent's lease")
        })
        .await;
    fleet.ask(0, "ping a1").await;
    fleet
        .wait_answered(&[vec!["a1".to_owned()]], Duration::from_secs(20), &[&first])
        .await;
    let mut second = run_single(&fleet, &redis);
    second
        .wait_for_stderr("standing by", Duration::from_secs(30), |l| {
            l.contains("standing by")
        })
        .await;
    fleet.ask(0, "ping a2").await;
    fleet
        .wait_answered(&[vec!["a2".to_owned()]], Duration::from_secs(20), &[&first])
        .await;
    first.signal("KILL");
    fleet.ask(0, "ping a3").await;
    fleet
        .wait_answered(
            &[vec!["a3".to_owned()]],
            Duration::from_secs(30),
            &[&second],
        )
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let tokens = vec![vec!["a1".to_owned(), "a2".to_owned(), "a3".to_owned()]];
    assert_eq!(fleet.answered_twice(&tokens).await, Vec::<String>::new());
    let replies = fleet.replies(0).await;
    assert!(
        replies.iter().any(|r| r.starts_with("pong 3 ")),
        "the counter carried on in the standby: {replies:?}"
    );
    let stderr = second
        .stop_cleanly("the standby", Duration::from_secs(30))
        .await;
    assert!(
        stderr.iter().any(|l| l.contains("took the agent's lease")),
        "{}",
        stderr.join("\n")
    );
    // A clean stop hands the lease back.
    assert_eq!(
        redis
            .get(&format!("switchboard:{{{}}}:lease", fleet.bots[0].1))
            .await,
        None
    );
}

#[tokio::test]
async fn max_agents_caps_what_one_process_takes() {
    let redis = RedisServer::start().await;
    let fleet = Fleet::start(4, 351).await;
    let (capped, capped_addr) = fleet.run(&redis, &["--max-agents", "1"]);
    // Alone, the capped process still takes only one agent.
    wait_split(&[capped_addr], Duration::from_secs(30), &[&capped], |s| {
        s[0].len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        running_here(capped_addr).await.unwrap_or_default().len(),
        1,
        "{}",
        capped.stderr_lines().join("\n")
    );
    let (other, other_addr) = fleet.run(&redis, &[]);
    let split = wait_split(
        &[capped_addr, other_addr],
        Duration::from_secs(30),
        &[&capped, &other],
        |s| all_four(s) && s[0].len() == 1,
    )
    .await;
    assert_eq!(split[1].len(), 3, "{split:?}");
    capped
        .stop_cleanly("the capped process", Duration::from_secs(30))
        .await;
    other
        .stop_cleanly("the other process", Duration::from_secs(30))
        .await;
}

#[tokio::test]
async fn an_agent_failing_in_one_process_is_handed_to_another() {
    let redis = RedisServer::start().await;
    let fleet = Fleet::start(1, 361).await;
    // Its workflows need a secret that only the second process has.
    std::fs::write(
        fleet.dir.path().join("wf/secret.yaml"),
        "version: 1\nsecrets:\n  token: { env: HANDOVER_TEST_TOKEN }\nrules: []\n",
    )
    .unwrap();
    let (mut first, _) = fleet.run(&redis, &[]);
    first
        .wait_for_stderr("a failed start", Duration::from_secs(30), |l| {
            l.contains("agent failed")
        })
        .await;
    let (second, second_addr) = {
        let addr = free_addr();
        let mut cmd = switchboard();
        cmd.arg("run")
            .arg("--fleet")
            .arg(fleet.path())
            .arg("--store")
            .arg(redis.url())
            .args(["--lease", "2s", "--metrics-addr"])
            .arg(addr.to_string())
            .env("FLEET_STORE_KEY_0", "key-0")
            .env("HANDOVER_TEST_TOKEN", "t0k3n")
            .env("RUST_LOG", "info");
        (Running::spawn(&mut cmd), addr)
    };
    first
        .wait_for_stderr("the hand-over", Duration::from_secs(40), |l| {
            l.contains("handing it to another process")
        })
        .await;
    wait_split(
        &[second_addr],
        Duration::from_secs(30),
        &[&first, &second],
        |s| s[0].len() == 1,
    )
    .await;
    fleet.ask(0, "ping h1").await;
    fleet
        .wait_answered(
            &[vec!["h1".to_owned()]],
            Duration::from_secs(20),
            &[&second],
        )
        .await;
    second
        .stop_cleanly("the second process", Duration::from_secs(30))
        .await;
    first
        .stop_cleanly("the first process", Duration::from_secs(30))
        .await;
}

#[tokio::test]
async fn a_fleet_shares_a_redis_cluster_with_each_agents_keys_in_one_slot() {
    let cluster = RedisCluster::start(3).await;
    let fleet = Fleet::start(4, 371).await;
    let (one, one_addr) = fleet.run_on(&cluster.url(), &[]);
    let (two, two_addr) = fleet.run_on(&cluster.url(), &[]);
    wait_split(
        &[one_addr, two_addr],
        Duration::from_secs(40),
        &[&one, &two],
        |s| all_four(s) && s.iter().all(|p| p.len() == 2),
    )
    .await;
    let mut tokens = vec![Vec::new(); 4];
    for round in 0..2 {
        for (i, wanted) in tokens.iter_mut().enumerate() {
            let token = format!("k{i}r{round}");
            fleet.ask(i, &format!("ping {token}")).await;
            wanted.push(token);
        }
    }
    fleet
        .wait_answered(&tokens, Duration::from_secs(30), &[&one, &two])
        .await;
    // The agents' keys are spread over the nodes (each agent's in one slot).
    let spread = cluster.keys_per_node().await;
    assert!(
        spread.iter().filter(|n| **n > 0).count() >= 2,
        "every key on one node: {spread:?}"
    );
    one.signal("KILL");
    wait_split(&[two_addr], Duration::from_secs(30), &[&two], all_four).await;
    for (i, wanted) in tokens.iter_mut().enumerate() {
        let token = format!("k{i}r2");
        fleet.ask(i, &format!("ping {token}")).await;
        wanted.push(token);
    }
    fleet
        .wait_answered(&tokens, Duration::from_secs(30), &[&two])
        .await;
    assert_eq!(fleet.answered_twice(&tokens).await, Vec::<String>::new());
    for i in 0..4 {
        let replies = fleet.replies(i).await;
        assert!(
            replies.iter().any(|r| r.starts_with("pong 3 ")),
            "agent {i}'s counter did not carry on: {replies:?}"
        );
    }
    let stderr = two
        .stop_cleanly("process two", Duration::from_secs(30))
        .await;
    assert!(
        stderr.iter().any(|l| l.contains("is a Redis Cluster")),
        "{}",
        stderr.join("\n")
    );
    drop(one);
}
