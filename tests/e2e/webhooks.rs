//! Incoming webhooks: `switchboard run --webhook-addr` as a process against
//! the sandbox, sent real HTTP requests over loopback. A signed delivery
//! posts in the room; a wrong signature, a wrong token, an unknown hook and
//! an oversized body are refused with the platform's JSON error and post
//! nothing; a redelivery is acknowledged and handled once; a delivery
//! acknowledged just before a SIGKILL is handled after the restart, and one
//! killed between its actions repeats none of them; a full queue answers 429.

use crate::support::cli::{run_command, Running};
use crate::support::seeded;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use band_sandbox::RunningSandbox;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// Bound for one step that waits on the running agent.
const STEP: Duration = Duration::from_secs(20);
pub(crate) const SECRET: &str = "s3cret-for-tests";
const TOKEN: &str = "token-for-tests";

/// A port nobody listens on right now: bound to port 0, read, released.
fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// The id of the seeded user `handle`.
pub(crate) async fn user_id(sb: &RunningSandbox, handle: &str) -> String {
    seeded::sandbox_state(sb).await["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["handle"] == handle)
        .and_then(|u| u["id"].as_str())
        .unwrap_or_else(|| panic!("no user {handle} in the seed"))
        .to_owned()
}

/// A folder with the hooks' workflow (posting in `room`, mentioning `bob`)
/// and the token hook's secret file.
pub(crate) fn folder(room: &str, bob: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("alerts-token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    std::fs::create_dir(dir.path().join("workflows")).unwrap();
    let yaml = format!(
        r#"version: 1
webhooks:
  deploys:
    secret: {{ env: DEPLOY_HOOK_SECRET }}
    auth: hmac-sha256
  alerts:
    secret: {{ file: "{token}" }}
    auth: token
rules:
  - name: failed-deploy
    on: webhook
    webhook: deploys
    if:
      - event.body.status: failed
    do:
      - send_message:
          chat: "{room}"
          text: "deploy {{{{ event.body.service }}}} failed ({{{{ event.id }}}}, {{{{ event.query.env }}}}, agent={{{{ event.headers['user-agent'] }}}}, sig={{{{ event.headers['x-hub-signature-256'] | default('hidden') }}}})"
          mentions: ["{bob}"]
  - name: alert
    on: webhook
    webhook: alerts
    do:
      - send_message:
          chat: "{room}"
          text: "alert {{{{ event.body }}}} auth={{{{ event.headers.authorization | default('hidden') }}}}"
          mentions: ["{bob}"]
"#,
        token = token.display()
    );
    std::fs::write(dir.path().join("workflows/hooks.yaml"), yaml).unwrap();
    dir
}

/// `switchboard run` on `dir`'s workflows with webhooks on `addr`.
fn agent_command(sb: &RunningSandbox, dir: &Path, addr: SocketAddr) -> tokio::process::Command {
    let mut cmd = run_command(sb, &dir.join("workflows"));
    cmd.arg("--webhook-addr")
        .arg(addr.to_string())
        .env("DEPLOY_HOOK_SECRET", SECRET);
    cmd
}

async fn listening(agent: &mut Running, addr: SocketAddr) {
    let line = agent
        .wait_for_stderr("webhooks listening", STEP, |l| {
            l.contains("webhooks listening")
        })
        .await;
    assert!(line.contains(&addr.to_string()), "{line}");
}

/// `sha256=<hex HMAC-SHA256 of body>`, as GitHub signs.
pub(crate) fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// POSTs `body` to `/hooks/{path}` with `headers`; status and JSON body
/// (`Null` when the body is not JSON) and the `Retry-After` header.
async fn post(
    addr: SocketAddr,
    path: &str,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> (u16, Value, Option<String>) {
    let mut req = reqwest::Client::new()
        .post(format!("http://{addr}/hooks/{path}"))
        .header("user-agent", "hooktest")
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.send().await.expect("POST to the webhook server");
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, body, retry)
}

/// A signed delivery of `body` to the deploys hook with delivery id `id`.
pub(crate) async fn deliver(
    addr: SocketAddr,
    body: &Value,
    id: &str,
) -> (u16, Value, Option<String>) {
    let bytes = serde_json::to_vec(body).unwrap();
    let sig = sign(SECRET, &bytes);
    let headers = [
        ("x-hub-signature-256", sig),
        ("x-github-delivery", id.to_owned()),
        ("content-type", "application/json".to_owned()),
    ];
    post(addr, "deploys?env=prod", bytes, &headers).await
}

/// Asserts the platform-style error body: `{"error": {code, message, request_id}}`.
fn assert_error(body: &Value, code: &str) {
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(error["request_id"].as_str().is_some(), "{body}");
}

/// The bot's messages in `room` whose text (after the mention markers the
/// platform puts first) starts with `prefix`.
pub(crate) async fn posted(
    sb: &RunningSandbox,
    bot: &str,
    room: &str,
    prefix: &str,
) -> Vec<String> {
    seeded::sandbox_state(sb).await["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["sender_id"] == bot && m["chat_room_id"] == room)
        .filter_map(|m| m["content"].as_str())
        .map(|c| strip_markers(c).to_owned())
        .filter(|c| c.starts_with(prefix))
        .collect()
}

/// `content` without the leading `@[[id]] ` markers.
fn strip_markers(mut content: &str) -> &str {
    while let Some(rest) = content.strip_prefix("@[[") {
        match rest.find("]]") {
            Some(end) => content = rest[end + 2..].trim_start(),
            None => break,
        }
    }
    content
}

/// Waits until at least `n` of those messages are there; returns them.
async fn wait_posted(
    sb: &RunningSandbox,
    agent: &Running,
    bot: &str,
    room: &str,
    prefix: &str,
    n: usize,
) -> Vec<String> {
    tokio::time::timeout(STEP, async {
        loop {
            let found = posted(sb, bot, room, prefix).await;
            if found.len() >= n {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "fewer than {n} messages starting {prefix:?}; logs:\n{}",
            agent.stderr_lines().join("\n")
        )
    })
}

pub(crate) async fn fault(sb: &RunningSandbox, body: Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/_sandbox/faults", sb.rest_url()))
        .json(&body)
        .send()
        .await
        .expect("arm a fault");
    assert!(resp.status().is_success(), "{}", resp.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_authenticated_and_each_handled_once() {
    let (sb, _bob, room, bot) = seeded::seeded_sandbox().await;
    let bob = user_id(&sb, "bob").await;
    let dir = folder(&room, &bob);
    let addr = free_addr();
    let mut agent = Running::spawn(&mut agent_command(&sb, dir.path(), addr));
    listening(&mut agent, addr).await;

    // A wrong signature, and none at all: refused, nothing queued.
    let forged = serde_json::to_vec(&json!({"status": "failed", "service": "forged"})).unwrap();
    let wrong = sign("not-the-secret", &forged);
    let (status, body, _) = post(
        addr,
        "deploys",
        forged.clone(),
        &[("x-hub-signature-256", wrong)],
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_error(&body, "unauthorized");
    let (status, body, _) = post(addr, "deploys", forged.clone(), &[]).await;
    assert_eq!(status, 401, "{body}");
    assert_error(&body, "unauthorized");
    // A hook nobody defined.
    let (status, body, _) = post(addr, "nope", b"{}".to_vec(), &[]).await;
    assert_eq!(status, 404, "{body}");
    assert_error(&body, "not_found");
    // Another path, another method: the same kind of answer.
    let resp = reqwest::get(format!("http://{addr}/hooks/deploys"))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert_error(&resp.json::<Value>().await.unwrap(), "method_not_allowed");
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/elsewhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert_error(&resp.json::<Value>().await.unwrap(), "not_found");
    // 2 MiB, correctly signed: too large all the same.
    let big = serde_json::to_vec(
        &json!({"status": "failed", "service": "big", "pad": "x".repeat(2 << 20)}),
    )
    .unwrap();
    let sig = sign(SECRET, &big);
    let (status, body, _) = post(addr, "deploys", big, &[("x-hub-signature-256", sig)]).await;
    assert_eq!(status, 413, "{body}");
    assert_error(&body, "payload_too_large");
    // The token hook: a wrong token is refused, the right one accepted.
    let (status, body, _) = post(
        addr,
        "alerts",
        b"disk full".to_vec(),
        &[("authorization", "Bearer wrong".to_owned())],
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_error(&body, "unauthorized");
    let (status, body, _) = post(
        addr,
        "alerts",
        b"disk full".to_vec(),
        &[("authorization", format!("Bearer {TOKEN}"))],
    )
    .await;
    assert_eq!(status, 202, "{body}");

    // A signed delivery, then its redelivery: both acknowledged.
    let event = json!({"status": "failed", "service": "web"});
    let (status, first, _) = deliver(addr, &event, "delivery-1").await;
    assert_eq!(status, 202, "{first}");
    let (status, again, _) = deliver(addr, &event, "delivery-1").await;
    assert_eq!(status, 202, "{again}");

    let alerts = wait_posted(&sb, &agent, &bot, &room, "alert ", 1).await;
    // The auth header is not part of the event.
    assert_eq!(alerts, ["alert disk full auth=hidden"]);
    let deploys = wait_posted(&sb, &agent, &bot, &room, "deploy ", 1).await;
    assert_eq!(
        deploys,
        ["deploy web failed (delivery-1, prod, agent=hooktest, sig=hidden)"]
    );
    // The queue is handled in order: had the forged or the oversized delivery
    // been queued, its message would be there by now; and the redelivery is
    // handled (or not) right after the first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(posted(&sb, &bot, &room, "deploy ").await.len(), 1);
    assert_eq!(posted(&sb, &bot, &room, "alert ").await.len(), 1);
    let logs = agent.stop_cleanly("the agent", STEP).await;
    assert!(
        !logs.iter().any(|l| l.contains(SECRET) || l.contains(TOKEN)),
        "a secret reached the logs:\n{}",
        logs.join("\n")
    );
    sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_acknowledged_just_before_a_kill_is_handled_after_the_restart() {
    let (sb, _bob, room, bot) = seeded::seeded_sandbox().await;
    let bob = user_id(&sb, "bob").await;
    let dir = folder(&room, &bob);
    let home = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut first =
        Running::spawn(agent_command(&sb, dir.path(), addr).env("XDG_STATE_HOME", home.path()));
    listening(&mut first, addr).await;
    // The rule's post hangs: the kill lands after the 202, before the send.
    fault(
        &sb,
        json!({"delay": {"method": "POST", "path": "/messages", "ms": 30_000}}),
    )
    .await;
    let (status, body, _) = deliver(
        addr,
        &json!({"status": "failed", "service": "api"}),
        "d-kill",
    )
    .await;
    assert_eq!(status, 202, "{body}");
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10)).await;
    fault(&sb, json!({"clear": true})).await;
    assert!(posted(&sb, &bot, &room, "deploy ").await.is_empty());

    let mut second =
        Running::spawn(agent_command(&sb, dir.path(), addr).env("XDG_STATE_HOME", home.path()));
    listening(&mut second, addr).await;
    let deploys = wait_posted(&sb, &second, &bot, &room, "deploy ", 1).await;
    assert_eq!(
        deploys,
        ["deploy api failed (d-kill, prod, agent=hooktest, sig=hidden)"]
    );
    // A redelivery after the restart is still known.
    let (status, body, _) = deliver(
        addr,
        &json!({"status": "failed", "service": "api"}),
        "d-kill",
    )
    .await;
    assert_eq!(status, 202, "{body}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = second.stop_cleanly("the restarted agent", STEP).await;
    assert_eq!(
        posted(&sb, &bot, &room, "deploy ").await.len(),
        1,
        "{}",
        logs.join("\n")
    );
    sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_until_it_drains() {
    let (sb, _bob, room, bot) = seeded::seeded_sandbox().await;
    let bob = user_id(&sb, "bob").await;
    let dir = folder(&room, &bob);
    let addr = free_addr();
    let mut cmd = agent_command(&sb, dir.path(), addr);
    cmd.args(["--ephemeral", "--webhook-queue", "2"]);
    let mut agent = Running::spawn(&mut cmd);
    listening(&mut agent, addr).await;
    // The first delivery's post is slow: it and the next one fill the queue.
    fault(
        &sb,
        json!({"delay": {"method": "POST", "path": "/messages", "ms": 1500, "count": 1}}),
    )
    .await;
    let event = |n: u32| json!({"status": "failed", "service": format!("s{n}")});
    let (status, body, _) = deliver(addr, &event(1), "q-1").await;
    assert_eq!(status, 202, "{body}");
    let (status, body, _) = deliver(addr, &event(2), "q-2").await;
    assert_eq!(status, 202, "{body}");
    let (status, body, retry) = deliver(addr, &event(3), "q-3").await;
    assert_eq!(status, 429, "{body}");
    assert_error(&body, "queue_full");
    assert!(retry.is_some(), "429 without Retry-After");
    // Drained, the queue takes deliveries again.
    wait_posted(&sb, &agent, &bot, &room, "deploy ", 2).await;
    let (status, body, _) = deliver(addr, &event(3), "q-3").await;
    assert_eq!(status, 202, "{body}");
    let all = wait_posted(&sb, &agent, &bot, &room, "deploy ", 3).await;
    assert!(
        all[0].starts_with("deploy s1 ")
            && all[1].starts_with("deploy s2 ")
            && all[2].starts_with("deploy s3 "),
        "{all:?}"
    );
    agent.stop_cleanly("the agent", STEP).await;
    sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flag_no_webhook_port_is_opened() {
    let (sb, _bob, room, _bot) = seeded::seeded_sandbox().await;
    let bob = user_id(&sb, "bob").await;
    let dir = folder(&room, &bob);
    let mut cmd = run_command(&sb, &dir.path().join("workflows"));
    cmd.env("DEPLOY_HOOK_SECRET", SECRET).arg("--ephemeral");
    let mut agent = Running::spawn(&mut cmd);
    agent
        .wait_for_stderr("startup sync", STEP, |l| l.contains("startup sync done"))
        .await;
    let logs = agent.stop_cleanly("the agent", STEP).await;
    assert!(
        !logs.iter().any(|l| l.contains("webhooks listening")),
        "{}",
        logs.join("\n")
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("webhooks") && l.contains("--webhook-addr")),
        "the agent should say its hooks are not served:\n{}",
        logs.join("\n")
    );
    sb.shutdown().await.unwrap();
}

/// The YAML blocks of the reference's "Webhooks" section, in order.
fn reference_examples() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/workflow-reference.md");
    let text = std::fs::read_to_string(path).unwrap();
    let start = text.find("\n## Webhooks\n").expect("a Webhooks section");
    let section = &text[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    section
        .split("```yaml\n")
        .skip(1)
        .filter_map(|block| block.split("\n```").next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_references_example_checks_and_its_tests_pass() {
    let examples = reference_examples();
    assert_eq!(examples.len(), 2, "{examples:?}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hooks.yaml"), &examples[0]).unwrap();
    std::fs::write(dir.path().join("hooks.test.yaml"), &examples[1]).unwrap();
    let folder = dir.path().to_str().unwrap();
    let run = |args: &[&str]| {
        let mut cmd = crate::support::cli::switchboard();
        cmd.args(args);
        cmd
    };
    let out = crate::support::cli::output_within(&mut run(&["check", folder]), STEP).await;
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = crate::support::cli::output_within(&mut run(&["test", folder]), STEP).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let passed = text(&out).matches(" ... ok").count();
    assert_eq!(passed, 3, "{}", text(&out));
    // A rule naming a hook nobody defines does not check.
    std::fs::write(
        dir.path().join("hooks.yaml"),
        examples[0].replacen("webhook: deploys", "webhook: deploy", 1),
    )
    .unwrap();
    let out = crate::support::cli::output_within(&mut run(&["check", folder]), STEP).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("no webhook named `deploy`"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_delivery_in_hand_finish_and_it_is_not_repeated() {
    let (sb, _bob, room, bot) = seeded::seeded_sandbox().await;
    let bob = user_id(&sb, "bob").await;
    let dir = folder(&room, &bob);
    let home = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut first =
        Running::spawn(agent_command(&sb, dir.path(), addr).env("XDG_STATE_HOME", home.path()));
    listening(&mut first, addr).await;
    fault(
        &sb,
        json!({"delay": {"method": "POST", "path": "/messages", "ms": 1500, "count": 1}}),
    )
    .await;
    let (status, body, _) = deliver(
        addr,
        &json!({"status": "failed", "service": "db"}),
        "d-term",
    )
    .await;
    assert_eq!(status, 202, "{body}");
    // Stopped while the rule's post is in flight: it completes before the exit.
    first
        .wait_for_stderr("the delivery in hand", STEP, |l| {
            l.contains("webhook delivery accepted")
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = first.stop_cleanly("the agent", STEP).await;
    assert_eq!(
        posted(&sb, &bot, &room, "deploy ").await.len(),
        1,
        "the delivery in hand did not finish; logs:\n{}",
        logs.join("\n")
    );
    // And the restart does not run it again.
    let mut second =
        Running::spawn(agent_command(&sb, dir.path(), addr).env("XDG_STATE_HOME", home.path()));
    listening(&mut second, addr).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let logs = second.stop_cleanly("the restarted agent", STEP).await;
    assert_eq!(
        posted(&sb, &bot, &room, "deploy ").await.len(),
        1,
        "{}",
        logs.join("\n")
    );
    sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_secret_stops_the_start_and_names_the_hook_not_a_value() {
    let (sb, _bob, room, _bot) = seeded::seeded_sandbox().await;
    let bob = user_id(&sb, "bob").await;
    let dir = folder(&room, &bob);
    let mut cmd = agent_command(&sb, dir.path(), free_addr());
    cmd.env_remove("DEPLOY_HOOK_SECRET").arg("--ephemeral");
    let out = crate::support::cli::output_within(&mut cmd, STEP).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("the secret of webhook `deploys` (environment variable DEPLOY_HOOK_SECRET) cannot be read")
            && stderr.contains("DEPLOY_HOOK_SECRET is not set"),
        "{stderr}"
    );
    sb.shutdown().await.unwrap();
}

/// Waits until the sandbox has delayed a request (its fault log says so).
async fn wait_delay_fired(sb: &RunningSandbox, agent: &Running) {
    tokio::time::timeout(STEP, async {
        loop {
            let faults: Value = reqwest::get(format!("{}/_sandbox/faults", sb.rest_url()))
                .await
                .expect("read the sandbox's faults")
                .json()
                .await
                .expect("the faults as JSON");
            let fired = faults["fired"].as_array().cloned().unwrap_or_default();
            if fired.iter().any(|f| f["kind"] == "delay") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the delayed request never came; logs:\n{}",
            agent.stderr_lines().join("\n")
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_between_a_deliverys_actions_repeats_none_of_them() {
    kill_between_two_sends(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_cut_short_is_not_taken_for_an_earlier_deliverys_same_text() {
    kill_between_two_sends(true).await;
}

/// A delivery whose rule sends twice, killed while the second send hangs,
/// then restarted: each send lands once. With `earlier`, a delivery with the
/// same body (so the same texts) was handled before: its messages must not
/// be taken for the ones the killed delivery had not sent.
async fn kill_between_two_sends(earlier: bool) {
    let (sb, _bob, room, bot) = seeded::seeded_sandbox().await;
    let bob = user_id(&sb, "bob").await;
    let alice_id = user_id(&sb, "alice").await;
    // A second room of the bot's, so that only the second send is delayed.
    let alice = band_client::rest::HumanApi::new(band_client::rest::RestConfig::new(
        sb.rest_url(),
        "alice-key",
    ))
    .unwrap();
    let ops = alice.create_chat(Some("Ops")).await.unwrap().id;
    alice.add_participant(&ops, &bot, None).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("workflows")).unwrap();
    let yaml = format!(
        r#"version: 1
webhooks:
  deploys:
    secret: {{ env: DEPLOY_HOOK_SECRET }}
    auth: hmac-sha256
rules:
  - name: two-sends
    on: webhook
    webhook: deploys
    do:
      - send_message:
          chat: "{room}"
          text: "deploy {{{{ event.body.service }}}} first"
          mentions: ["{bob}"]
      - send_message:
          chat: "{ops}"
          text: "deploy {{{{ event.body.service }}}} second"
          mentions: ["{alice_id}"]
"#
    );
    std::fs::write(dir.path().join("workflows/hooks.yaml"), yaml).unwrap();
    let home = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut first =
        Running::spawn(agent_command(&sb, dir.path(), addr).env("XDG_STATE_HOME", home.path()));
    listening(&mut first, addr).await;
    let before = usize::from(earlier);
    if earlier {
        let (status, body, _) = deliver(
            addr,
            &json!({"status": "failed", "service": "api"}),
            "d-earlier",
        )
        .await;
        assert_eq!(status, 202, "{body}");
        wait_posted(&sb, &first, &bot, &ops, "deploy api second", 1).await;
        // Later messages get later timestamps.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Only the post in the second room hangs: the kill lands after the
    // first send went out, while the second is in flight.
    fault(
        &sb,
        json!({"delay": {"method": "POST", "path": format!("{ops}/messages"), "ms": 30_000}}),
    )
    .await;
    let (status, body, _) = deliver(
        addr,
        &json!({"status": "failed", "service": "api"}),
        "d-two",
    )
    .await;
    assert_eq!(status, 202, "{body}");
    wait_posted(&sb, &first, &bot, &room, "deploy api first", before + 1).await;
    wait_delay_fired(&sb, &first).await;
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10)).await;
    fault(&sb, json!({"clear": true})).await;
    assert_eq!(posted(&sb, &bot, &ops, "deploy ").await.len(), before);

    let mut second =
        Running::spawn(agent_command(&sb, dir.path(), addr).env("XDG_STATE_HOME", home.path()));
    listening(&mut second, addr).await;
    // Time for the second send, and for a repeat of either to land, were there one.
    second
        .wait_for_stderr("the delivery handled", STEP, |l| {
            l.contains("handled") && l.contains("webhook:deploys/d-two")
        })
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let logs = second.stop_cleanly("the restarted agent", STEP).await;
    let logs = logs.join("\n");
    assert_eq!(
        posted(&sb, &bot, &room, "deploy ").await,
        vec!["deploy api first"; before + 1],
        "{logs}"
    );
    assert_eq!(
        posted(&sb, &bot, &ops, "deploy ").await,
        vec!["deploy api second"; before + 1],
        "{logs}"
    );
    sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adding_a_hook_whose_secret_cannot_be_read_fails_and_keeps_the_running_rules() {
    let (sb, _bob, room, bot) = seeded::seeded_sandbox().await;
    let bob = user_id(&sb, "bob").await;
    let dir = folder(&room, &bob);
    let addr = free_addr();
    let mut cmd = agent_command(&sb, dir.path(), addr);
    cmd.arg("--ephemeral");
    let mut agent = Running::spawn(&mut cmd);
    listening(&mut agent, addr).await;
    // The reload task (and its SIGHUP handler) runs by then.
    agent
        .wait_for_stderr("startup sync", STEP, |l| l.contains("startup sync done"))
        .await;

    // A new hook whose secret file is not there, and the running rule changed.
    let file = dir.path().join("workflows/hooks.yaml");
    let yaml = std::fs::read_to_string(&file).unwrap();
    let missing = dir.path().join("no-such-secret");
    let broken = yaml
        .replacen(
            "webhooks:\n",
            &format!(
                "webhooks:\n  extra:\n    secret: {{ file: \"{}\" }}\n    auth: token\n",
                missing.display()
            ),
            1,
        )
        .replacen("deploy {{", "changed {{", 1);
    std::fs::write(&file, broken).unwrap();
    agent.signal("HUP");
    let line = agent
        .wait_for_stderr("the reload to fail", STEP, |l| l.contains("reload failed"))
        .await;
    let logs = agent.stderr_lines().join("\n");
    assert!(
        logs.contains("the secret of webhook `extra`") && logs.contains("no-such-secret"),
        "the failed reload should name the hook and its secret's file:\n{line}\n{logs}"
    );
    // The running rules and hooks stay: the new hook is not served, the old
    // rule runs as it was.
    let (status, body, _) = post(
        addr,
        "extra",
        b"x".to_vec(),
        &[("authorization", "Bearer x".to_owned())],
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_error(&body, "not_found");
    let (status, body, _) = deliver(
        addr,
        &json!({"status": "failed", "service": "kept"}),
        "d-kept",
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let posted = wait_posted(&sb, &agent, &bot, &room, "deploy kept", 1).await;
    assert_eq!(posted.len(), 1, "{posted:?}");

    // Once the secret is there, the same folder reloads.
    std::fs::write(&missing, "x\n").unwrap();
    agent.signal("HUP");
    agent
        .wait_for_stderr("the reload to succeed", STEP, |l| {
            l.contains("workflows reloaded")
        })
        .await;
    let (status, body, _) = post(
        addr,
        "extra",
        b"x".to_vec(),
        &[("authorization", "Bearer x".to_owned())],
    )
    .await;
    assert_eq!(status, 202, "{body}");
    agent.stop_cleanly("the agent", STEP).await;
    sb.shutdown().await.unwrap();
}

/// `/metrics` of the agent whose metrics server is on `addr`, polled until
/// `pred` holds (bounded by `STEP`).
async fn wait_metrics(addr: SocketAddr, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let text = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("the metrics as text");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_and_the_queue_depth_are_in_the_metrics() {
    use crate::metrics::sample;
    let (sb, _bob, room, bot) = seeded::seeded_sandbox().await;
    let bob = user_id(&sb, "bob").await;
    let dir = folder(&room, &bob);
    let addr = free_addr();
    let metrics = free_addr();
    let mut cmd = agent_command(&sb, dir.path(), addr);
    cmd.arg("--ephemeral")
        .arg("--metrics-addr")
        .arg(metrics.to_string());
    let mut agent = Running::spawn(&mut cmd);
    listening(&mut agent, addr).await;
    // The first delivery's post is slow: the second waits behind it.
    fault(
        &sb,
        json!({"delay": {"method": "POST", "path": "/messages", "ms": 2000, "count": 1}}),
    )
    .await;
    let event = |s: &str| json!({"status": "failed", "service": s});
    let (status, body, _) = deliver(addr, &event("m1"), "m-1").await;
    assert_eq!(status, 202, "{body}");
    let (status, body, _) = deliver(addr, &event("m2"), "m-2").await;
    assert_eq!(status, 202, "{body}");
    let depth = |t: &str| sample(t, "switchboard_webhook_queue_depth", &[]);
    // Both wait (the first being handled) while the post hangs.
    wait_metrics(metrics, "a queue depth of 2", |t| depth(t) == Some(2.0)).await;
    let (status, body, _) = deliver(addr, &event("m1"), "m-1").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"]["duplicate"], true, "{body}");
    let (status, _, _) = post(
        addr,
        "deploys",
        b"{}".to_vec(),
        &[("x-hub-signature-256", sign("wrong", b"{}"))],
    )
    .await;
    assert_eq!(status, 401);
    let (status, _, _) = post(addr, "nope-1", b"{}".to_vec(), &[]).await;
    assert_eq!(status, 404);
    let (status, _, _) = post(addr, "nope-2", b"{}".to_vec(), &[]).await;
    assert_eq!(status, 404);

    wait_posted(&sb, &agent, &bot, &room, "deploy ", 2).await;
    let name = "switchboard_webhook_deliveries_total";
    let text = wait_metrics(metrics, "the drained queue", |t| depth(t) == Some(0.0)).await;
    let count =
        |hook: &str, status: &str| sample(&text, name, &[("hook", hook), ("status", status)]);
    assert_eq!(count("deploys", "accepted"), Some(2.0), "{text}");
    assert_eq!(count("deploys", "duplicate"), Some(1.0), "{text}");
    assert_eq!(count("deploys", "unauthorized"), Some(1.0), "{text}");
    // Unknown hooks share one label: a sender cannot grow the series.
    assert_eq!(count("-", "not_found"), Some(2.0), "{text}");
    assert!(!text.contains("nope-1"), "{text}");
    agent.stop_cleanly("the agent", STEP).await;
    sb.shutdown().await.unwrap();
}
