//! Webhook deliveries of a fleet agent running under a real `redis-server`:
//! a delivery answered 202 is queued in the store (not in the process), so
//! it is handled once and leaves no pending entry behind; a redelivery is
//! known also to the process that takes the agent over after a SIGKILL;
//! and a delivery accepted just before the kill is handled by that process.
//! The store bounds the queue (429 when full) and refuses deliveries to a
//! process whose lease was taken; one agent run without a fleet file under
//! `--store` queues its deliveries there too.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use band_sandbox::RunningSandbox;
use serde_json::{json, Value};

use crate::support::cli::{strip_ansi, switchboard, Running};
use crate::support::redis::RedisServer;
use crate::support::seeded;
use crate::webhooks::{deliver, fault, folder, posted, user_id, SECRET};

/// Bound for one step that waits on a running process.
const STEP: Duration = Duration::from_secs(30);

/// The example seed's triage bot as the one agent of a fleet, its webhooks
/// on their own address.
struct HookFleet {
    sb: RunningSandbox,
    room: String,
    bot: String,
    dir: tempfile::TempDir,
    addr: SocketAddr,
}

impl HookFleet {
    async fn start() -> HookFleet {
        HookFleet::with_options("").await
    }

    /// Like [`HookFleet::start`], with more keys (`extra`, each line indented
    /// as an agent's key) in the agent's entry.
    async fn with_options(extra: &str) -> HookFleet {
        let (sb, _bob, room, bot) = seeded::seeded_sandbox().await;
        let bob = user_id(&sb, "bob").await;
        let dir = folder(&room, &bob);
        let addr = free_addr();
        let text = format!(
            "rest_url: {}\nws_url: {}\nagents:\n  - name: hooks\n    agent_id: {bot}\n    \
             api_key_env: WEBHOOKS_STORE_KEY\n    workflows: workflows\n    webhook_addr: {addr}\n{extra}",
            sb.rest_url(),
            sb.ws_url()
        );
        std::fs::write(dir.path().join("fleet.yaml"), text).unwrap();
        HookFleet {
            sb,
            room,
            bot,
            dir,
            addr,
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("fleet.yaml")
    }

    /// `run --fleet` with the store; returns once the agent serves its webhooks.
    async fn run(&self, redis: &RedisServer) -> Running {
        let mut cmd = switchboard();
        cmd.arg("run")
            .arg("--fleet")
            .arg(self.path())
            .arg("--store")
            .arg(redis.url())
            .arg("--lease")
            .arg("2s")
            .env("WEBHOOKS_STORE_KEY", "triage-key")
            .env("DEPLOY_HOOK_SECRET", SECRET)
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .env("RUST_LOG", "info");
        let mut running = Running::spawn(&mut cmd);
        let addr = self.addr.to_string();
        running
            .wait_for_stderr("the agent's webhooks listening", STEP, |l| {
                let l = strip_ansi(l);
                l.contains("webhooks listening") && l.contains(&addr)
            })
            .await;
        running
    }

    /// The agent's `deploy ...` messages in the room.
    async fn deploys(&self) -> Vec<String> {
        posted(&self.sb, &self.bot, &self.room, "deploy ").await
    }

    /// Waits until `n` deploy messages are posted; returns them.
    async fn wait_deploys(&self, n: usize, logs: &Running) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let found = self.deploys().await;
            if found.len() >= n {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "fewer than {n} deploy messages ({found:?}); logs:\n{}",
                logs.stderr_lines().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The agent's webhook keys in the store, sorted.
    async fn hook_keys(&self, redis: &RedisServer) -> Vec<String> {
        redis
            .keys(&format!("switchboard:{{{}}}:webhook*", self.bot))
            .await
    }

    /// Waits until the store holds no pending delivery of the agent: every
    /// webhook key left is a delivery id remembered for deduplication.
    async fn wait_nothing_pending(&self, redis: &RedisServer, logs: &Running) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let keys = self.hook_keys(redis).await;
            let pending: Vec<&String> = keys.iter().filter(|k| !k.contains(":seen:")).collect();
            if pending.is_empty() {
                return keys;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "still pending in the store: {pending:?}; logs:\n{}",
                logs.stderr_lines().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A signed delivery `id` of a failed deploy of `service`; status and body.
async fn failed_deploy(addr: SocketAddr, service: &str, id: &str) -> (u16, Value) {
    let (status, body, _) =
        deliver(addr, &json!({"status": "failed", "service": service}), id).await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_queued_in_the_store_and_known_to_the_process_taking_over() {
    let redis = RedisServer::start().await;
    let fleet = HookFleet::start().await;
    let one = fleet.run(&redis).await;
    let (status, body) = failed_deploy(fleet.addr, "web", "d-1").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"]["duplicate"], false, "{body}");
    let deploys = fleet.wait_deploys(1, &one).await;
    assert_eq!(
        deploys,
        ["deploy web failed (d-1, prod, agent=hooktest, sig=hidden)"]
    );
    // Handled: no pending entry left, the delivery id remembered in the store.
    let keys = fleet.wait_nothing_pending(&redis, &one).await;
    assert!(
        keys.iter().any(|k| k.ends_with("deploys/d-1")),
        "the delivery id is not remembered in the store: {keys:?}"
    );
    // A redelivery is acknowledged and not handled again.
    let (status, body) = failed_deploy(fleet.addr, "web", "d-1").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"]["duplicate"], true, "{body}");

    one.signal("KILL");
    one.wait_exit(Duration::from_secs(10)).await;
    let two = fleet.run(&redis).await;
    // The process taking over knows the id: the store remembers it.
    let (status, body) = failed_deploy(fleet.addr, "web", "d-1").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"]["duplicate"], true, "{body}");
    // And handles new deliveries.
    let (status, body) = failed_deploy(fleet.addr, "db", "d-2").await;
    assert_eq!(status, 202, "{body}");
    fleet.wait_deploys(2, &two).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = two.stop_cleanly("process two", STEP).await;
    let deploys = fleet.deploys().await;
    assert_eq!(
        deploys,
        [
            "deploy web failed (d-1, prod, agent=hooktest, sig=hidden)",
            "deploy db failed (d-2, prod, agent=hooktest, sig=hidden)"
        ],
        "logs:\n{}",
        logs.join("\n")
    );
    assert!(
        !logs.iter().any(|l| l.contains("queued in memory")),
        "{}",
        logs.join("\n")
    );
    fleet.sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_accepted_just_before_a_kill_is_handled_by_the_process_taking_over() {
    let redis = RedisServer::start().await;
    let fleet = HookFleet::start().await;
    let one = fleet.run(&redis).await;
    // The rule's post hangs: the kill lands after the 202, before the send.
    fault(
        &fleet.sb,
        json!({"delay": {"method": "POST", "path": "/messages", "ms": 30_000}}),
    )
    .await;
    let (status, body) = failed_deploy(fleet.addr, "api", "d-kill").await;
    assert_eq!(status, 202, "{body}");
    one.signal("KILL");
    one.wait_exit(Duration::from_secs(10)).await;
    fault(&fleet.sb, json!({"clear": true})).await;
    assert!(fleet.deploys().await.is_empty());

    let two = fleet.run(&redis).await;
    let deploys = fleet.wait_deploys(1, &two).await;
    assert_eq!(
        deploys,
        ["deploy api failed (d-kill, prod, agent=hooktest, sig=hidden)"]
    );
    fleet.wait_nothing_pending(&redis, &two).await;
    // A redelivery after the takeover is still known.
    let (status, body) = failed_deploy(fleet.addr, "api", "d-kill").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"]["duplicate"], true, "{body}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = two.stop_cleanly("process two", STEP).await;
    assert_eq!(fleet.deploys().await.len(), 1, "{}", logs.join("\n"));
    fleet.sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_bounds_the_queue_and_answers_429_when_full() {
    let redis = RedisServer::start().await;
    let fleet = HookFleet::with_options("    webhook_queue: 2\n").await;
    let one = fleet.run(&redis).await;
    // The first delivery's post is slow: it and the next one fill the queue.
    fault(
        &fleet.sb,
        json!({"delay": {"method": "POST", "path": "/messages", "ms": 1500, "count": 1}}),
    )
    .await;
    assert_eq!(failed_deploy(fleet.addr, "s1", "q-1").await.0, 202);
    assert_eq!(failed_deploy(fleet.addr, "s2", "q-2").await.0, 202);
    let (status, body) = failed_deploy(fleet.addr, "s3", "q-3").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "queue_full", "{body}");
    // Drained, the queue takes deliveries again.
    fleet.wait_deploys(2, &one).await;
    fleet.wait_nothing_pending(&redis, &one).await;
    let (status, body) = failed_deploy(fleet.addr, "s3", "q-3").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"]["duplicate"], false, "{body}");
    let all = fleet.wait_deploys(3, &one).await;
    assert!(all[2].starts_with("deploy s3 "), "{all:?}");
    one.stop_cleanly("the fleet", STEP).await;
    fleet.sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_whose_lease_was_taken_accepts_no_delivery() {
    let redis = RedisServer::start().await;
    let fleet = HookFleet::start().await;
    let one = fleet.run(&redis).await;
    let lease = format!("switchboard:{{{}}}:lease", fleet.bot);
    assert!(redis.get(&lease).await.is_some(), "no lease at {lease}");
    // Another process holds the agent now.
    redis.set(&lease, "someone-else").await;
    let answer = reqwest::Client::new()
        .post(format!("http://{}/hooks/deploys", fleet.addr))
        .header("x-hub-signature-256", crate::webhooks::sign(SECRET, b"{}"))
        .header("x-github-delivery", "d-fenced")
        .body("{}")
        .send()
        .await;
    // Refused by the store's check (503: another process runs the agent),
    // or the server already stopped with the agent.
    if let Ok(resp) = answer {
        assert_eq!(resp.status().as_u16(), 503, "{:?}", resp.text().await);
    }
    let keys = fleet.hook_keys(&redis).await;
    assert!(keys.is_empty(), "queued without the lease: {keys:?}");
    let logs = one.stop_cleanly("the fleet", STEP).await;
    assert!(
        fleet.deploys().await.is_empty(),
        "handled without the lease:\n{}",
        logs.join("\n")
    );
    fleet.sb.shutdown().await.unwrap();
}

/// The queue itself against the store: order, deduplication with Redis's
/// own expiry, a push whose answer was lost, the next holder reading what
/// is pending (a damaged entry kept aside), the last holder refused.
#[tokio::test]
async fn the_queue_in_the_store_keeps_order_and_ids_across_holders() {
    use switchboard::effects::redis::webhooks::RedisWebhooks;
    use switchboard::effects::redis::{AgentKeys, AgentSpace, Lease, RedisStore};
    use switchboard::effects::webhook_queue::{Pushed, QueueError, WebhookQueue};

    const AGENT: &str = "9c1e0000-0000-4000-8000-00000000b001";
    let lease = Duration::from_secs(5);
    let redis = RedisServer::start().await;
    let store = RedisStore::connect(&redis.url(), &redis.url())
        .await
        .expect("the test's redis-server answers");
    let keys = AgentKeys::new(AGENT);
    let first = Lease::try_acquire(&store, &keys, lease)
        .await
        .unwrap()
        .expect("the lease is free");
    let space = AgentSpace::new(&store, first.fence().clone());
    let q = WebhookQueue::in_store(&space, 10).await.unwrap();
    let now = chrono::Utc::now();
    for k in ["h/1", "h/2", "h/3"] {
        let pushed = q.push(k.into(), json!({"id": k}), now).await.unwrap();
        assert_eq!(pushed, Pushed::Queued, "{k}");
    }
    assert_eq!(q.next().await.key, "h/1");
    q.done("h/1").await.unwrap();
    assert_eq!(q.next().await.key, "h/2");
    // Handled or pending, a known id is a duplicate.
    for k in ["h/1", "h/2"] {
        let pushed = q.push(k.into(), json!({}), now).await.unwrap();
        assert_eq!(pushed, Pushed::Duplicate, "{k}");
    }
    // Redis forgets the id by itself after a day.
    let mut conn = redis.connection().await;
    let ttl: i64 = ::redis::cmd("TTL")
        .arg(keys.key("webhooks:seen:h/1"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((86_000..=86_400).contains(&ttl), "ttl {ttl}");
    // A push that reached the store but whose answer was lost: the
    // sender's retry is a duplicate, and the delivery is run all the same.
    let (other, _) = RedisWebhooks::open(&space).await.unwrap();
    other.push("h/4", r#"{"id":"h/4"}"#, 10, 60).await.unwrap();
    assert_eq!(q.pending(), 2);
    let pushed = q.push("h/4".into(), json!({}), now).await.unwrap();
    assert_eq!(pushed, Pushed::Duplicate);
    assert_eq!(q.pending(), 3);
    space.flush().await.unwrap();
    // An entry nobody can read (edited by hand).
    let () = ::redis::pipe()
        .cmd("RPUSH")
        .arg(keys.key("webhooks:pending"))
        .arg("h/x")
        .ignore()
        .cmd("HSET")
        .arg(keys.key("webhooks:entries"))
        .arg("h/x")
        .arg("not json")
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();

    // The lease changes hands.
    first.release().await.unwrap();
    let second = Lease::try_acquire(&store, &keys, lease)
        .await
        .unwrap()
        .expect("the lease was given back");
    let next = AgentSpace::new(&store, second.fence().clone());
    let q2 = WebhookQueue::in_store(&next, 10).await.unwrap();
    assert_eq!(q2.pending(), 3, "h/2, h/3 and h/4 pending; h/x kept aside");
    for want in ["h/2", "h/3", "h/4"] {
        let entry = q2.next().await;
        assert_eq!(entry.key, want);
        assert_eq!(entry.event, json!({"id": want}));
        q2.done(want).await.unwrap();
    }
    for k in ["h/1", "h/2", "h/4"] {
        let pushed = q2.push(k.into(), json!({}), now).await.unwrap();
        assert_eq!(pushed, Pushed::Duplicate, "{k}");
    }
    next.flush().await.unwrap();
    let damaged: Option<String> = ::redis::cmd("HGET")
        .arg(keys.key("webhooks:damaged"))
        .arg("h/x")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(damaged.as_deref(), Some("not json"));
    let left: Vec<String> = redis
        .keys(&format!("switchboard:{{{AGENT}}}:webhooks:*"))
        .await
        .into_iter()
        .filter(|k| !k.contains(":seen:") && !k.ends_with(":damaged"))
        .collect();
    assert!(left.is_empty(), "pending entries left: {left:?}");
    // The last holder accepts nothing more.
    let refused = q.push("h/5".into(), json!({}), now).await;
    assert!(
        matches!(refused, Err(QueueError::Store { .. })),
        "{refused:?}"
    );
    assert!(redis.get(&keys.key("webhooks:seen:h/5")).await.is_none());
}

/// `switchboard run` of the one agent (no fleet file) under the store, its
/// webhooks on `addr`; returns once they are served.
async fn run_single(fleet: &HookFleet, redis: &RedisServer) -> Running {
    let mut cmd = crate::support::cli::run_command(&fleet.sb, &fleet.dir.path().join("workflows"));
    cmd.arg("--webhook-addr")
        .arg(fleet.addr.to_string())
        .args(["--lease", "2s", "--store"])
        .arg(redis.url())
        .env("DEPLOY_HOOK_SECRET", SECRET)
        .env("RUST_LOG", "info");
    let mut running = Running::spawn(&mut cmd);
    let addr = fleet.addr.to_string();
    running
        .wait_for_stderr("the agent's webhooks listening", STEP, |l| {
            let l = strip_ansi(l);
            l.contains("webhooks listening") && l.contains(&addr)
        })
        .await;
    running
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_agent_run_with_a_store_queues_its_deliveries_there_too() {
    let redis = RedisServer::start().await;
    let fleet = HookFleet::start().await;
    let one = run_single(&fleet, &redis).await;
    fault(
        &fleet.sb,
        json!({"delay": {"method": "POST", "path": "/messages", "ms": 30_000}}),
    )
    .await;
    let (status, body) = failed_deploy(fleet.addr, "api", "s-kill").await;
    assert_eq!(status, 202, "{body}");
    one.signal("KILL");
    one.wait_exit(Duration::from_secs(10)).await;
    fault(&fleet.sb, json!({"clear": true})).await;
    let two = run_single(&fleet, &redis).await;
    let deploys = fleet.wait_deploys(1, &two).await;
    assert_eq!(
        deploys,
        ["deploy api failed (s-kill, prod, agent=hooktest, sig=hidden)"]
    );
    fleet.wait_nothing_pending(&redis, &two).await;
    let (status, body) = failed_deploy(fleet.addr, "api", "s-kill").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"]["duplicate"], true, "{body}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = two.stop_cleanly("the second run", STEP).await;
    assert_eq!(fleet.deploys().await.len(), 1, "{}", logs.join("\n"));
    fleet.sb.shutdown().await.unwrap();
}
