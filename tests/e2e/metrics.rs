//! `switchboard run --metrics-addr` as a process against the sandbox, read
//! with plain HTTP: `/healthz` after start-up, `/metrics` after a message a
//! shipped rule answers, after a reload that fails, and after the sandbox
//! drops every socket; throttled runs counted, listed and logged; and a
//! taken address is a startup error.

use crate::support::seeded;

use crate::support::cli;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use band_wire::model::Mention;
use cli::{output_within, run_command, Running};
use seeded::seeded_sandbox;
use serde_json::{json, Value};

/// Bound for one step that waits on the running agent.
const STEP: Duration = Duration::from_secs(15);
/// Bound for a run that fails at startup.
const QUICK: Duration = Duration::from_secs(20);

/// A port nobody listens on right now: bound to port 0, read, released.
fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// The shipped workflows copied into a folder the test may break.
fn copied_workflows() -> tempfile::TempDir {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&shipped).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    dir
}

/// The value of the sample `name{labels...}` in a text exposition, when
/// there is one whose labels include every pair of `labels`.
pub(crate) fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, set) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            let all = labels
                .iter()
                .all(|(k, v)| set.split(',').any(|p| p == format!("{k}=\"{v}\"")));
            (metric == name && all).then(|| value.parse().ok())?
        })
}

/// The agent's metrics server, read over HTTP.
struct Scraper {
    http: reqwest::Client,
    base: String,
}

impl Scraper {
    fn new(addr: SocketAddr) -> Scraper {
        Scraper {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
            base: format!("http://{addr}"),
        }
    }

    async fn metrics(&self) -> String {
        let resp = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(resp.status(), 200);
        let kind = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
        resp.text().await.unwrap()
    }

    async fn healthz(&self) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}/healthz", self.base))
            .send()
            .await
            .expect("GET /healthz");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("/healthz is JSON"))
    }

    /// Polls `/metrics` until `pred` holds; panics with the last scrape after `STEP`.
    async fn wait_metrics(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let text = self.metrics().await;
            if pred(&text) {
                return text;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {what} within {STEP:?}; /metrics:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls `/healthz` until `pred` holds; panics with the last answer after `STEP`.
    async fn wait_health(&self, what: &str, pred: impl Fn(u16, &Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let (status, body) = self.healthz().await;
            if pred(status, &body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {what} within {STEP:?}; /healthz: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn at_least(text: &str, name: &str, labels: &[(&str, &str)], n: f64) -> bool {
    sample(text, name, labels).is_some_and(|v| v >= n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_follow_the_running_agent() {
    let (sb, bob, room, bot) = seeded_sandbox().await;
    let dir = copied_workflows();
    let rules = switchboard_workflow::load_dir(dir.path()).unwrap().len();
    let addr = free_addr();
    let mut cmd = run_command(&sb, dir.path());
    cmd.arg("--metrics-addr").arg(addr.to_string());
    let mut agent = Running::spawn(&mut cmd);
    let listening = agent
        .wait_for_stderr("metrics listening", STEP, |l| {
            l.contains("metrics listening")
        })
        .await;
    assert!(listening.contains(&format!("addr={addr}")), "{listening}");
    agent
        .wait_for_stderr("startup sync", STEP, |l| l.contains("startup sync done"))
        .await;
    let scraper = Scraper::new(addr);

    // Start-up: connected, every rule loaded, no reload yet.
    let health = scraper
        .wait_health("a connected socket", |code, h| {
            code == 200 && h["socket"]["connected"] == true
        })
        .await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["socket"]["reconnects"], 0, "{health}");
    assert_eq!(
        health["ruleset"],
        json!({"loaded": true, "rules": rules}),
        "{health}"
    );
    assert_eq!(
        health["last_reload"],
        json!({"status": "none", "at": null, "errors": 0}),
        "{health}"
    );

    // A question the FAQ rule answers.
    let mention = [Mention {
        id: Some(bot.clone()),
        ..Mention::default()
    }];
    bob.send_message(&room, "What are your opening hours?", &mention)
        .await
        .unwrap();
    let text = scraper
        .wait_metrics("the processed mark", |t| {
            at_least(
                t,
                "switchboard_lifecycle_marks_total",
                &[("mark", "processed"), ("result", "ok")],
                1.0,
            )
        })
        .await;
    let expected: [(&str, &[(&str, &str)]); 7] = [
        ("switchboard_events_total", &[("type", "message_created")]),
        (
            "switchboard_rule_matches_total",
            &[("rule", "faq/opening-hours"), ("branch", "do")],
        ),
        (
            "switchboard_actions_total",
            &[("action", "reply"), ("status", "ok")],
        ),
        (
            "switchboard_lifecycle_marks_total",
            &[("mark", "processing"), ("result", "ok")],
        ),
        (
            "switchboard_event_duration_seconds_bucket",
            &[("type", "message_created"), ("le", "+Inf")],
        ),
        (
            "switchboard_event_duration_seconds_count",
            &[("type", "message_created")],
        ),
        (
            "switchboard_action_duration_seconds_bucket",
            &[("action", "reply"), ("le", "+Inf")],
        ),
    ];
    for (name, labels) in expected {
        assert!(
            at_least(&text, name, labels, 1.0),
            "no {name}{labels:?} >= 1 in:\n{text}"
        );
    }
    assert_eq!(
        sample(&text, "switchboard_socket_connected", &[]),
        Some(1.0)
    );
    assert_eq!(sample(&text, "switchboard_rules", &[]), Some(rules as f64));
    assert!(text.contains("# TYPE switchboard_event_duration_seconds histogram"));

    // A broken save: the reload fails, the old rules keep running.
    std::fs::write(
        dir.path().join("broken.yaml"),
        "version: 1\nrules:\n  - name: bad\n    on: mesage_created\n    do:\n      - reply: \"x\"\n",
    )
    .unwrap();
    let text = scraper
        .wait_metrics("a failed reload", |t| {
            at_least(
                t,
                "switchboard_reloads_total",
                &[("outcome", "failed")],
                1.0,
            )
        })
        .await;
    assert_eq!(
        sample(&text, "switchboard_reloads_total", &[("outcome", "failed")]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "switchboard_rules", &[]), Some(rules as f64));
    let (code, health) = scraper.healthz().await;
    assert_eq!(code, 200, "{health}");
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["last_reload"]["status"], "failed", "{health}");
    assert!(
        health["last_reload"]["errors"].as_u64().unwrap() >= 1,
        "{health}"
    );
    let at = health["last_reload"]["at"].as_str().expect("a reload time");
    chrono::DateTime::parse_from_rfc3339(at).unwrap_or_else(|e| panic!("{at}: {e}"));
    assert_eq!(health["ruleset"]["rules"], rules, "{health}");

    // The sandbox drops every socket; the agent reconnects.
    let faults = reqwest::Client::new()
        .post(format!("{}/_sandbox/faults", sb.rest_url()))
        .json(&json!({"drop_sockets": true}))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!(faults.status(), 200);
    scraper
        .wait_metrics("a reconnect", |t| {
            at_least(t, "switchboard_socket_reconnects_total", &[], 1.0)
                && sample(t, "switchboard_socket_connected", &[]) == Some(1.0)
        })
        .await;
    let health = scraper
        .wait_health("a reconnected socket", |code, h| {
            code == 200 && h["socket"]["connected"] == true
        })
        .await;
    assert!(
        health["socket"]["reconnects"].as_u64().unwrap() >= 1,
        "{health}"
    );

    agent.stop_cleanly("agent", Duration::from_secs(5)).await;
    sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_metrics_address_is_a_startup_error() {
    let (sb, ..) = seeded_sandbox().await;
    // Held for the whole run, so the agent cannot bind it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let workflows = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("workflows");
    let mut cmd = run_command(&sb, &workflows);
    cmd.arg("--metrics-addr").arg(addr.to_string());
    let out = output_within(&mut cmd, QUICK).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("cannot serve metrics on {addr}")),
        "stderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "stderr:\n{stderr}");
    drop(taken);
    sb.shutdown().await.unwrap();
}

/// A rule that answers `ping` at most once per ten minutes.
const THROTTLED_WORKFLOW: &str = r#"version: 1
rules:
  - name: pong
    on: message_created
    if:
      - event.content: { matches: '\bping\b' }
    throttle: { max: 1, per: 10m }
    do:
      - reply: "pong"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_rules_are_counted_listed_and_logged() {
    let (sb, bob, room, bot) = seeded_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ping.yaml"), THROTTLED_WORKFLOW).unwrap();
    let addr = free_addr();
    let mut cmd = run_command(&sb, dir.path());
    cmd.arg("--metrics-addr").arg(addr.to_string());
    let mut agent = Running::spawn(&mut cmd);
    agent
        .wait_for_stderr("startup sync", STEP, |l| l.contains("startup sync done"))
        .await;
    let scraper = Scraper::new(addr);

    // One run is allowed; the two after it fall in the full window.
    for n in 1..=3 {
        seeded::ask(&bob, &room, &bot, &format!("ping {n}")).await;
    }
    let text = scraper
        .wait_metrics("two throttled runs", |t| {
            at_least(
                t,
                "switchboard_rule_throttled_total",
                &[("rule", "ping/pong")],
                2.0,
            )
        })
        .await;
    assert_eq!(
        sample(
            &text,
            "switchboard_rule_throttled_total",
            &[("rule", "ping/pong")]
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "switchboard_rule_matches_total",
            &[("rule", "ping/pong"), ("branch", "do")]
        ),
        Some(1.0),
        "{text}"
    );

    let handled: Value = scraper
        .http
        .get(format!("{}/handled", scraper.base))
        .send()
        .await
        .expect("GET /handled")
        .json()
        .await
        .expect("/handled is JSON");
    let entries = handled.as_array().expect("/handled is a list");
    let throttled: Vec<&Value> = entries
        .iter()
        .filter(|e| e["throttled"] == json!(["ping/pong"]))
        .collect();
    assert_eq!(throttled.len(), 2, "{handled:#}");
    for entry in throttled {
        assert_eq!(entry["rules"], json!([]), "{entry}");
        assert_eq!(entry["actions"], json!([]), "{entry}");
    }
    let ran = entries
        .iter()
        .filter(|e| e["rules"] == json!(["ping/pong"]))
        .count();
    assert_eq!(ran, 1, "{handled:#}");

    let line = agent
        .wait_for_stderr("a throttled log line", STEP, |l| {
            cli::strip_ansi(l).contains("throttled=ping/pong")
        })
        .await;
    assert!(cli::strip_ansi(&line).contains("handled"), "{line}");
    agent.stop_cleanly("agent", Duration::from_secs(5)).await;
    sb.shutdown().await.unwrap();
}
