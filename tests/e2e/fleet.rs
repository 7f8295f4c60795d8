//! Fleets: `check --fleet` reports every problem of the fleet file with
//! file:line:column, and each agent's workflow errors under its name;
//! `run --fleet` runs two agents of the sandbox in one process, each
//! answering its own room, one agent's bad workflows leaving the other
//! running, and an edit to the fleet file stopping only the agent removed.

use std::path::Path;
use std::time::Duration;

use band_client::rest::{HumanApi, RestConfig};
use band_sandbox::RunningSandbox;

use crate::support::cli::{output_within, strip_ansi, switchboard, Running};
use crate::support::seeded::{ask, reply_after};

fn ping_rule(answer: &str) -> String {
    format!(
        "version: 1\nrules:\n  - name: ping\n    on: message_created\n    if: [ {{ event.content: {{ contains: ping }} }} ]\n    do:\n      - reply: \"{answer}\"\n"
    )
}

fn write(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn check_fleet_lists_every_problem_of_the_file_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("keys/a.key"), "a-key\n");
    write(&dir.path().join("wf/a/w.yaml"), &ping_rule("a"));
    let fleet = dir.path().join("fleet.yaml");
    write(
        &fleet,
        "rest_url: http://127.0.0.1:4000\n\
         store: redis://user:hunter2@127.0.0.1:6379/0\n\
         agents:\n\
         \x20 - name: a\n\
         \x20   agent_id: 9c1e0000-0000-4000-8000-000000000001\n\
         \x20   api_key_file: keys/a.key\n\
         \x20   workflow: wf/a\n\
         \x20 - name: a\n\
         \x20   agent_id: 9c1e0000-0000-4000-8000-000000000001\n\
         \x20   api_key_file: keys/missing.key\n\
         \x20   workflows: wf/a\n",
    );
    let out = output_within(
        switchboard().arg("check").arg("--fleet").arg(&fleet),
        Duration::from_secs(30),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    let at = |line_col: &str| format!("{}:{line_col}", fleet.display());
    for (pos, what) in [
        ("7:5", "unknown key `workflow`"),
        ("8:11", "two agents are named `a`"),
        ("9:15", "two agents have the agent id"),
        ("10:19", "cannot read the API key file"),
    ] {
        assert!(stderr.contains(&at(pos)), "no {} in:\n{stderr}", at(pos));
        assert!(stderr.contains(what), "no `{what}` in:\n{stderr}");
    }
    assert!(stderr.contains("did you mean `workflows`?"), "{stderr}");
    assert!(stderr.contains("^"), "a caret under the place: {stderr}");
    assert!(
        !stderr.contains("hunter2"),
        "the store's password shows: {stderr}"
    );
}

#[tokio::test]
async fn check_fleet_checks_each_agents_workflows_under_its_name() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("wf/good/w.yaml"), &ping_rule("good"));
    write(
        &dir.path().join("wf/bad/w.yaml"),
        "version: 1\nrules:\n  - name: ping\n    on: message_created\n    do:\n      - rply: x\n",
    );
    let fleet = dir.path().join("fleet.yaml");
    write(
        &fleet,
        "agents:\n\
         \x20 - name: good\n\
         \x20   agent_id: 9c1e0000-0000-4000-8000-000000000001\n\
         \x20   api_key_env: FLEET_TEST_GOOD_KEY\n\
         \x20   workflows: wf/good\n\
         \x20 - name: bad\n\
         \x20   agent_id: 9c1e0000-0000-4000-8000-000000000002\n\
         \x20   api_key_env: FLEET_TEST_BAD_KEY\n\
         \x20   workflows: wf/bad\n",
    );
    let out = output_within(
        switchboard()
            .arg("check")
            .arg("--fleet")
            .arg(&fleet)
            .env("FLEET_TEST_GOOD_KEY", "good-key")
            .env("FLEET_TEST_BAD_KEY", "bad-key"),
        Duration::from_secs(30),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(stdout.contains("ok: agent good: 1 rules"), "{stdout}");
    let bad_file = dir.path().join("wf/bad/w.yaml");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("[bad] error:"))
        .unwrap_or_else(|| panic!("no error of agent bad in:\n{stderr}"));
    assert!(line.contains("rply"), "{line}");
    assert!(
        stderr.contains(&format!("{}:6:9", bad_file.display())),
        "no position in:\n{stderr}"
    );
    assert!(!stderr.contains("[good]"), "{stderr}");
}

/// A sandbox with bob and two agents (ids ending in `n1`, `n2`), each alone
/// with bob in a room of its own.
struct TwoBots {
    sb: RunningSandbox,
    bob: HumanApi,
    dir: tempfile::TempDir,
    /// (agent id, room id) of bots one and two.
    bots: [(String, String); 2],
}

impl TwoBots {
    async fn start(n1: u32, n2: u32) -> TwoBots {
        let id = |n: u32| format!("9c1e0000-0000-4000-8000-{n:012}");
        let seed = format!(
            "users:\n  - handle: bob\n    name: Bob\n    api_key: bob-key\n\
             agents:\n\
             \x20 - handle: bob/one\n    name: One\n    description: first\n    api_key: one-key\n    id: {}\n\
             \x20 - handle: bob/two\n    name: Two\n    description: second\n    api_key: two-key\n    id: {}\n\
             rooms:\n\
             \x20 - title: Room one\n    owner: bob\n    participants: [bob/one]\n\
             \x20 - title: Room two\n    owner: bob\n    participants: [bob/two]\n",
            id(n1),
            id(n2)
        );
        let seed = band_sandbox::parse_seed(&seed, "two-bots seed").expect("the seed is valid");
        let sb = RunningSandbox::start("127.0.0.1:0".parse().unwrap(), seed)
            .await
            .unwrap();
        let bob = HumanApi::new(RestConfig::new(sb.rest_url(), "bob-key")).unwrap();
        let rooms = bob.list_chats(None, None).await.unwrap().items;
        let room = |title: &str| {
            rooms
                .iter()
                .find(|r| r.title.as_deref() == Some(title))
                .expect("the seeded room")
                .id
                .clone()
        };
        let bots = [(id(n1), room("Room one")), (id(n2), room("Room two"))];
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("keys/two.key");
        write(&key, "two-key\n");
        // Readable by others on purpose, whatever the umask: the start-up warns.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        TwoBots { sb, bob, dir, bots }
    }

    /// Where this test's agents keep their state directories.
    fn state_home(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }

    fn fleet_path(&self) -> std::path::PathBuf {
        self.dir.path().join("fleet.yaml")
    }

    /// Writes the fleet file with the agents named in `which` (`one`, `two`).
    fn write_fleet(&self, which: &[&str]) {
        let folders: Vec<(&str, String)> = which.iter().map(|n| (*n, format!("wf/{n}"))).collect();
        self.write_fleet_with(&folders);
    }

    /// Writes the fleet file with these agents (`one`, `two`) and workflows folders.
    fn write_fleet_with(&self, which: &[(&str, String)]) {
        self.write_fleet_ids(which, &self.bots[1].0);
    }

    /// Like [`TwoBots::write_fleet_with`], agent two's entry giving `two_id` as its id.
    fn write_fleet_ids(&self, which: &[(&str, String)], two_id: &str) {
        let mut text = format!(
            "rest_url: {}\nws_url: {}\nagents:\n",
            self.sb.rest_url(),
            self.sb.ws_url()
        );
        for (name, folder) in which {
            let (id, key) = match *name {
                "one" => (&self.bots[0].0, "api_key_env: FLEET_TEST_ONE_KEY"),
                _ => (&two_id.to_owned(), "api_key_file: keys/two.key"),
            };
            text.push_str(&format!(
                "  - name: {name}\n    agent_id: {id}\n    {key}\n    workflows: {folder}\n"
            ));
        }
        // Saved like an editor: a new file renamed over the old one.
        let tmp = self.dir.path().join("fleet.yaml.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.fleet_path()).unwrap();
    }

    fn run(&self, metrics: Option<std::net::SocketAddr>) -> Running {
        self.run_with(metrics, &[])
    }

    fn run_with(&self, metrics: Option<std::net::SocketAddr>, extra: &[&str]) -> Running {
        let mut cmd = switchboard();
        cmd.arg("run")
            .args(extra)
            .arg("--fleet")
            .arg(self.fleet_path())
            .env("FLEET_TEST_ONE_KEY", "one-key")
            .env("XDG_STATE_HOME", self.state_home());
        if let Some(addr) = metrics {
            cmd.arg("--metrics-addr").arg(addr.to_string());
        }
        Running::spawn(&mut cmd)
    }

    /// Bob pings bot `i` (0 or 1) in its room; its reply's text, if one came within `limit`.
    async fn ping(&self, i: usize, limit: Duration) -> Option<String> {
        let (bot, room) = &self.bots[i];
        let asked = ask(&self.bob, room, bot, "ping").await;
        reply_after(&self.bob, room, bot, &asked, limit)
            .await
            .map(|m| m.content)
    }
}

fn free_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

async fn wait_until_answers(bots: &TwoBots, fleet: &Running, i: usize, answer: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let reply = bots.ping(i, Duration::from_secs(3)).await;
        if reply.as_deref().is_some_and(|r| r.ends_with(answer)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bot {i} never answered {answer:?}; stderr:\n{}",
            fleet.stderr_lines().join("\n")
        );
    }
}

#[tokio::test]
async fn two_agents_in_one_process_answer_their_own_rooms_with_labelled_metrics() {
    let bots = TwoBots::start(101, 102).await;
    write(
        &bots.dir.path().join("wf/one/w.yaml"),
        &ping_rule("pong from one"),
    );
    write(
        &bots.dir.path().join("wf/two/w.yaml"),
        &ping_rule("pong from two"),
    );
    bots.write_fleet(&["one", "two"]);
    let addr = free_addr();
    let root = bots.dir.path().join("custom-state");
    let fleet = bots.run_with(Some(addr), &["--state-dir", root.to_str().unwrap()]);
    wait_until_answers(&bots, &fleet, 0, "pong from one").await;
    wait_until_answers(&bots, &fleet, 1, "pong from two").await;
    let http = reqwest::Client::new();
    let metrics = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in ["one", "two"] {
        let labelled = format!("agent=\"{name}\"");
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("switchboard_rules{") && l.contains(&labelled)),
            "no rules gauge labelled {labelled}:\n{metrics}"
        );
    }
    assert_eq!(
        metrics.matches("# TYPE switchboard_rules ").count(),
        1,
        "one header per family:\n{metrics}"
    );
    assert!(metrics.trim_end().ends_with("# EOF"), "{metrics}");
    let health = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["agents"]["one"]["state"], "running", "{body}");
    assert_eq!(body["agents"]["two"]["state"], "running", "{body}");
    let one = http
        .get(format!("http://{addr}/healthz/one"))
        .send()
        .await
        .unwrap();
    assert_eq!(one.status().as_u16(), 200);
    let missing = http
        .get(format!("http://{addr}/healthz/nobody"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    // Each agent's feed of handled events and its pending conversations.
    let handled: serde_json::Value = http
        .get(format!("http://{addr}/handled/two"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let handled = handled.as_array().expect("a list of handled events");
    assert!(!handled.is_empty(), "two answered a ping: {handled:?}");
    let pending = http
        .get(format!("http://{addr}/conversations/one"))
        .send()
        .await
        .unwrap();
    assert_eq!(pending.status().as_u16(), 200);
    assert!(pending
        .json::<serde_json::Value>()
        .await
        .unwrap()
        .is_array());
    for path in ["handled", "conversations"] {
        let nobody = http
            .get(format!("http://{addr}/{path}/nobody"))
            .send()
            .await
            .unwrap();
        assert_eq!(nobody.status().as_u16(), 404, "/{path}/nobody");
    }
    let stderr = fleet
        .stop_cleanly("the fleet", Duration::from_secs(30))
        .await;
    // Two's key file is readable by others: said once, by name.
    let warned: Vec<String> = stderr
        .iter()
        .map(|l| strip_ansi(l))
        .filter(|l| l.contains("WARN") && l.contains("chmod 600"))
        .collect();
    assert!(
        warned.len() == 1 && warned[0].contains("agent=two"),
        "{}",
        stderr.join("\n")
    );
    // Each agent kept its journal in its own state directory under
    // --state-dir, named by its id.
    for (id, _) in &bots.bots {
        let own = root.join(id);
        assert!(
            own.join("lock").exists(),
            "no state directory {}",
            own.display()
        );
    }
    // Every line an agent's work logs says whose it is, also from the
    // runtime's own tasks (rooms, the lifecycle, the handler).
    for name in ["one", "two"] {
        let field = format!("agent={name}");
        assert!(
            stderr
                .iter()
                .map(|l| strip_ansi(l))
                .any(|l| l.contains("handled event=message_created") && l.contains(&field)),
            "no handled line with {field}:\n{}",
            stderr.join("\n")
        );
    }
}

#[tokio::test]
async fn a_bad_workflow_in_one_agent_leaves_the_other_answering() {
    let bots = TwoBots::start(201, 202).await;
    write(
        &bots.dir.path().join("wf/one/w.yaml"),
        &ping_rule("pong from one"),
    );
    write(
        &bots.dir.path().join("wf/two/w.yaml"),
        "version: 1\nrules:\n  - name: ping\n    on: message_created\n    do:\n      - rply: x\n",
    );
    bots.write_fleet(&["one", "two"]);
    let mut fleet = bots.run(None);
    wait_until_answers(&bots, &fleet, 0, "pong from one").await;
    let line = fleet
        .wait_for_stderr("the bad agent's error", Duration::from_secs(10), |l| {
            let l = strip_ansi(l);
            l.contains("agent=two") && l.contains("ERROR") && l.contains("do not load")
        })
        .await;
    assert!(!strip_ansi(&line).contains("agent=one"), "{line}");
    assert_eq!(bots.ping(1, Duration::from_secs(2)).await, None);
    let stderr = fleet
        .stop_cleanly("the fleet", Duration::from_secs(30))
        .await;
    assert!(
        !stderr
            .iter()
            .any(|l| strip_ansi(l).contains("agent=one") && strip_ansi(l).contains("ERROR")),
        "agent one failed:\n{}",
        stderr.join("\n")
    );
}

#[tokio::test]
async fn editing_the_fleet_file_restarts_or_stops_only_the_agents_whose_entries_changed() {
    let bots = TwoBots::start(301, 302).await;
    write(
        &bots.dir.path().join("wf/one/w.yaml"),
        &ping_rule("pong from one"),
    );
    write(
        &bots.dir.path().join("wf/two/w.yaml"),
        &ping_rule("pong from two"),
    );
    bots.write_fleet(&["one", "two"]);
    let mut fleet = bots.run(None);
    wait_until_answers(&bots, &fleet, 0, "pong from one").await;
    wait_until_answers(&bots, &fleet, 1, "pong from two").await;
    // One's entry changes: only one restarts, on its new folder.
    write(
        &bots.dir.path().join("wf/one-b/w.yaml"),
        &ping_rule("pong v2 from one"),
    );
    bots.write_fleet_with(&[("one", "wf/one-b".into()), ("two", "wf/two".into())]);
    wait_until_answers(&bots, &fleet, 0, "pong v2 from one").await;
    let started = |name: &str| {
        let field = format!("agent={name}");
        fleet
            .stderr_lines()
            .iter()
            .map(|l| strip_ansi(l))
            .filter(|l| l.contains(&field) && l.contains("agent started"))
            .count()
    };
    assert_eq!(
        (started("one"), started("two")),
        (2, 1),
        "{}",
        fleet.stderr_lines().join("\n")
    );
    // An edit that does not check changes nothing, and says why.
    let broken = bots.dir.path().join("fleet.yaml.tmp");
    std::fs::write(&broken, "agents:\n  - name: one\n    agnt_id: x\n").unwrap();
    std::fs::rename(&broken, bots.fleet_path()).unwrap();
    fleet
        .wait_for_stderr("the broken edit refused", Duration::from_secs(20), |l| {
            l.contains("not used") || l.contains("agnt_id")
        })
        .await;
    assert!(
        fleet
            .stderr_lines()
            .iter()
            .any(|l| l.contains("fleet.yaml:3:5")),
        "{}",
        fleet.stderr_lines().join("\n")
    );
    wait_until_answers(&bots, &fleet, 1, "pong from two").await;
    bots.write_fleet_with(&[("one", "wf/one-b".into())]);
    fleet
        .wait_for_stderr("agent two stopping", Duration::from_secs(20), |l| {
            let l = strip_ansi(l);
            l.contains("agent=two") && l.contains("agent stopped")
        })
        .await;
    assert_eq!(
        bots.ping(1, Duration::from_secs(3)).await,
        None,
        "two still answers"
    );
    let reply = bots.ping(0, Duration::from_secs(10)).await;
    assert!(
        reply
            .as_deref()
            .is_some_and(|r| r.ends_with("pong v2 from one")),
        "one no longer answers: {reply:?}"
    );
    let stderr = fleet
        .stop_cleanly("the fleet", Duration::from_secs(30))
        .await;
    let one_stops = stderr
        .iter()
        .filter(|l| strip_ansi(l).contains("agent=one") && strip_ansi(l).contains("agent stopped"))
        .count();
    assert_eq!(
        one_stops,
        2,
        "agent one was restarted more than once:\n{}",
        stderr.join("\n")
    );
}

#[tokio::test]
async fn an_unreachable_store_stops_the_fleet_at_its_line_before_anything_connects() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("wf/a/w.yaml"), &ping_rule("a"));
    let fleet = dir.path().join("fleet.yaml");
    // Nothing listens on the platform's address nor the store's.
    let closed = free_addr();
    let no_store = free_addr();
    write(
        &fleet,
        &format!(
            "rest_url: http://{closed}\nws_url: ws://{closed}/api/v1/socket/websocket\n\
             store: redis://:s3cret-pw@{no_store}/0\n\
             agents:\n  - name: a\n    agent_id: 9c1e0000-0000-4000-8000-000000000401\n    \
             api_key_env: FLEET_TEST_A_KEY\n    workflows: wf/a\n"
        ),
    );
    let out = output_within(
        switchboard()
            .arg("run")
            .arg("--fleet")
            .arg(&fleet)
            .env("FLEET_TEST_A_KEY", "a-key"),
        Duration::from_secs(20),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(stderr.contains("cannot reach the store"), "{stderr}");
    assert!(
        stderr.contains(&format!("redis://:***@{no_store}/0")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{}:3:8", fleet.display())),
        "no position of `store:` in:\n{stderr}"
    );
    assert!(
        !stderr.contains("s3cret-pw"),
        "the password shows:\n{stderr}"
    );
    assert!(!stderr.contains("agent started"), "{stderr}");
}

#[tokio::test]
async fn run_fleet_refuses_a_bad_fleet_file_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet.yaml");
    let closed = free_addr();
    write(
        &fleet,
        &format!(
            "rest_url: http://{closed}\nagents:\n  - name: a\n    agent_id: 9c1e0000-0000-4000-8000-000000000501\n    \
             api_key_env: FLEET_TEST_UNSET_KEY\n    workflows: wf/a\n"
        ),
    );
    let out = output_within(
        switchboard().arg("run").arg("--fleet").arg(&fleet),
        Duration::from_secs(20),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("{}:5:18", fleet.display())),
        "no position in:\n{stderr}"
    );
    assert!(stderr.contains("FLEET_TEST_UNSET_KEY"), "{stderr}");
    assert!(!stderr.contains("agent started"), "{stderr}");
}

#[tokio::test]
async fn an_agent_whose_key_belongs_to_another_id_fails_alone_and_touches_no_state() {
    let bots = TwoBots::start(601, 602).await;
    write(
        &bots.dir.path().join("wf/one/w.yaml"),
        &ping_rule("pong from one"),
    );
    write(
        &bots.dir.path().join("wf/two/w.yaml"),
        &ping_rule("pong from two"),
    );
    let wrong = "9c1e0000-0000-4000-8000-000000000699";
    bots.write_fleet_ids(&[("one", "wf/one".into()), ("two", "wf/two".into())], wrong);
    let addr = free_addr();
    let mut fleet = bots.run(Some(addr));
    wait_until_answers(&bots, &fleet, 0, "pong from one").await;
    fleet
        .wait_for_stderr("agent two's failure", Duration::from_secs(10), |l| {
            let l = strip_ansi(l);
            l.contains("ERROR") && l.contains("agent=two") && l.contains(wrong)
        })
        .await;
    let http = reqwest::Client::new();
    let two = http
        .get(format!("http://{addr}/healthz/two"))
        .send()
        .await
        .unwrap();
    assert_eq!(two.status().as_u16(), 503);
    let body: serde_json::Value = two.json().await.unwrap();
    assert_eq!(body["state"], "failed", "{body}");
    let all = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(all.status().as_u16(), 503);
    let body: serde_json::Value = all.json().await.unwrap();
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["agents"]["one"]["state"], "running", "{body}");
    // The key's own agent's state directory was never opened (nor locked) for it.
    let real = bots.state_home().join("switchboard").join(&bots.bots[1].0);
    assert!(!real.exists(), "{} was created", real.display());
    fleet
        .stop_cleanly("the fleet", Duration::from_secs(30))
        .await;
}

#[tokio::test]
async fn sighup_rereads_the_fleet_file_when_it_is_not_watched() {
    let bots = TwoBots::start(701, 702).await;
    write(
        &bots.dir.path().join("wf/one/w.yaml"),
        &ping_rule("pong from one"),
    );
    write(
        &bots.dir.path().join("wf/two/w.yaml"),
        &ping_rule("pong from two"),
    );
    bots.write_fleet(&["one", "two"]);
    let mut fleet = bots.run_with(None, &["--no-watch"]);
    wait_until_answers(&bots, &fleet, 0, "pong from one").await;
    wait_until_answers(&bots, &fleet, 1, "pong from two").await;
    bots.write_fleet(&["one"]);
    // Not watched: the edit alone changes nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    wait_until_answers(&bots, &fleet, 1, "pong from two").await;
    fleet.signal("HUP");
    fleet
        .wait_for_stderr("agent two stopping", Duration::from_secs(20), |l| {
            let l = strip_ansi(l);
            l.contains("agent=two") && l.contains("agent stopped")
        })
        .await;
    assert_eq!(bots.ping(1, Duration::from_secs(2)).await, None);
    wait_until_answers(&bots, &fleet, 0, "pong from one").await;
    fleet
        .stop_cleanly("the fleet", Duration::from_secs(30))
        .await;
}

#[tokio::test]
async fn no_watch_leaves_every_agents_workflows_unwatched_too() {
    let bots = TwoBots::start(711, 712).await;
    let rules = bots.dir.path().join("wf/one/w.yaml");
    write(&rules, &ping_rule("pong from one"));
    bots.write_fleet(&["one"]);
    let fleet = bots.run_with(None, &["--no-watch"]);
    wait_until_answers(&bots, &fleet, 0, "pong from one").await;
    // An edit of the agent's folder: with --no-watch nothing reloads it
    // (a watching agent reloads within a few hundred milliseconds).
    write(&rules, &ping_rule("pong edited"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let reply = bots.ping(0, Duration::from_secs(5)).await;
    assert!(
        reply
            .as_deref()
            .is_some_and(|r| r.ends_with("pong from one")),
        "the agent reloaded its workflows under --no-watch: {reply:?}; stderr:\n{}",
        fleet.stderr_lines().join("\n")
    );
    fleet
        .stop_cleanly("the fleet", Duration::from_secs(30))
        .await;
}

/// More agents than a user's inotify instances (128 by default on Linux):
/// each watching its own workflows folder, all start and answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_of_more_agents_than_inotify_instances_all_start_watching() {
    const N: usize = 140;
    let id = |i: usize| format!("9c1e0000-0000-4000-8000-{:012}", 900_000 + i);
    let mut seed =
        String::from("users:\n  - handle: bob\n    name: Bob\n    api_key: bob-key\nagents:\n");
    for i in 0..N {
        seed.push_str(&format!(
            "  - handle: bob/w{i}\n    name: W{i}\n    description: watcher {i}\n    api_key: wkey-{i}\n    id: {}\n",
            id(i)
        ));
    }
    seed.push_str("rooms:\n  - title: Last\n    owner: bob\n    participants: [bob/w139]\n");
    let seed = band_sandbox::parse_seed(&seed, "many-agents seed").expect("the seed is valid");
    let sb = RunningSandbox::start("127.0.0.1:0".parse().unwrap(), seed)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!(
        "rest_url: {}\nws_url: {}\nagents:\n",
        sb.rest_url(),
        sb.ws_url()
    );
    for i in 0..N {
        write(
            &dir.path().join(format!("wf/w{i}/w.yaml")),
            &ping_rule(&format!("pong from w{i}")),
        );
        text.push_str(&format!(
            "  - name: w{i}\n    agent_id: {}\n    api_key_env: MANY_KEY_{i}\n    workflows: wf/w{i}\n    ephemeral: true\n",
            id(i)
        ));
    }
    let fleet_path = dir.path().join("fleet.yaml");
    write(&fleet_path, &text);
    let addr = free_addr();
    let mut cmd = switchboard();
    cmd.arg("run")
        .arg("--fleet")
        .arg(&fleet_path)
        .arg("--metrics-addr")
        .arg(addr.to_string());
    for i in 0..N {
        cmd.env(format!("MANY_KEY_{i}"), format!("wkey-{i}"));
    }
    let fleet = Running::spawn(&mut cmd);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let running = match reqwest::get(format!("http://{addr}/healthz")).await {
            Ok(r) => r.json::<serde_json::Value>().await.ok().map(|b| {
                b["agents"]
                    .as_object()
                    .map(|a| a.values().filter(|v| v["state"] == "running").count())
                    .unwrap_or(0)
            }),
            Err(_) => None,
        };
        if running == Some(N) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{running:?} of {N} agents running; stderr:\n{}",
            fleet
                .stderr_lines()
                .iter()
                .filter(|l| l.contains("ERROR") || l.contains("WARN"))
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The last one watches its folder: an edit changes its answer.
    let bob = HumanApi::new(RestConfig::new(sb.rest_url(), "bob-key")).unwrap();
    let room = bob.list_chats(None, None).await.unwrap().items[0]
        .id
        .clone();
    write(
        &dir.path().join("wf/w139/w.yaml"),
        &ping_rule("edited w139"),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let asked = ask(&bob, &room, &id(139), "ping").await;
        let reply = reply_after(&bob, &room, &id(139), &asked, Duration::from_secs(3)).await;
        if reply.is_some_and(|m| m.content.ends_with("edited w139")) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the edit was not picked up"
        );
    }
    fleet
        .stop_cleanly("the fleet", Duration::from_secs(60))
        .await;
}

/// The place (`line:column`, 1-based) of the last `needle` on line `line` of `text`.
fn place(text: &str, line: usize, needle: &str) -> String {
    let l = text.lines().nth(line - 1).expect("the line exists");
    let col = l
        .rfind(needle)
        .unwrap_or_else(|| panic!("no {needle:?} on line {line}: {l:?}"));
    format!("{line}:{}", col + 1)
}

#[tokio::test]
async fn check_fleet_reports_bad_webhook_and_llm_options_at_their_place() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("wf/a/w.yaml"), &ping_rule("a"));
    let fleet = dir.path().join("fleet.yaml");
    let text = "agents:\n\
         \x20 - name: a\n\
         \x20   agent_id: 9c1e0000-0000-4000-8000-000000000001\n\
         \x20   api_key_env: FLEET_TEST_OPT_KEY\n\
         \x20   workflows: wf/a\n\
         \x20   webhook_addr: 127.0.0.1:18787\n\
         \x20   webhook_queue: 0\n\
         \x20   llm_url: ftp://model.example/v1\n\
         \x20   llm_model: m\n\
         \x20   llm_key_env: FLEET_TEST_UNSET_LLM_KEY\n\
         \x20 - name: b\n\
         \x20   agent_id: 9c1e0000-0000-4000-8000-000000000002\n\
         \x20   api_key_env: FLEET_TEST_OPT_KEY\n\
         \x20   workflows: wf/a\n\
         \x20   webhook_addr: 127.0.0.1:18787\n\
         \x20   max_pending_per_person: -1\n\
         \x20   llm_model: m\n\
         \x20   webhook_adr: 127.0.0.1:1\n\
         \x20 - name: c\n\
         \x20   agent_id: 9c1e0000-0000-4000-8000-000000000003\n\
         \x20   api_key_env: FLEET_TEST_OPT_KEY\n\
         \x20   workflows: wf/a\n\
         \x20   webhook_addr: localhost-8787\n\
         \x20   llm_url: http://127.0.0.1:9/v1\n\
         \x20   llm_model: m\n\
         \x20   llm_key_file: keys/missing-llm.key\n";
    write(&fleet, text);
    let out = output_within(
        switchboard()
            .arg("check")
            .arg("--fleet")
            .arg(&fleet)
            .env("FLEET_TEST_OPT_KEY", "k")
            .env_remove("FLEET_TEST_UNSET_LLM_KEY"),
        Duration::from_secs(30),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    for (line, needle, what) in [
        (7, "0", "`webhook_queue` must be a whole number from 1"),
        (8, "ftp:", "`llm_url`"),
        (
            10,
            "FLEET_TEST_UNSET_LLM_KEY",
            "FLEET_TEST_UNSET_LLM_KEY (`llm_key_env`) is not set",
        ),
        (
            15,
            "127.0.0.1:18787",
            "two agents serve webhooks on 127.0.0.1:18787 (the first at line 6)",
        ),
        (
            16,
            "-1",
            "`max_pending_per_person` must be a whole number from 1",
        ),
        (17, "m", "`llm_model` without `llm_url`"),
        (18, "webhook_adr", "unknown key `webhook_adr`"),
        (23, "localhost-8787", "`webhook_addr` is not an address"),
        (
            26,
            "keys/missing-llm.key",
            "cannot read the language model's API key file",
        ),
    ] {
        let at = format!("{}:{}", fleet.display(), place(text, line, needle));
        assert!(stderr.contains(&at), "no {at} ({what}) in:\n{stderr}");
        assert!(stderr.contains(what), "no `{what}` in:\n{stderr}");
    }
    assert!(stderr.contains("did you mean `webhook_addr`?"), "{stderr}");
}

/// A loopback model server in the Chat Completions format: answers
/// `model says hi` and records each request's `Authorization` header.
async fn model_server() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::http::HeaderMap;
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |headers: HeaderMap| {
            let record = record.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                record.lock().unwrap().push(auth);
                axum::Json(serde_json::json!({
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "created": 1741570283,
                    "model": "test-model",
                    "choices": [{
                        "index": 0,
                        "message": {"role": "assistant", "content": "model says hi"},
                        "finish_reason": "stop"
                    }],
                    "usage": {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), seen)
}

/// A workflow with the token hook `hook` posting `<hook> <delivery id>` in
/// `room` (and what the model answered, when `llm`).
fn hook_rule(hook: &str, room: &str, bob: &str, llm: bool) -> String {
    let (ask, said) = match llm {
        true => (
            "      - llm: { prompt: \"{{ event.body }}\" }\n        as: answer\n",
            ": {{ answer.text }}",
        ),
        false => ("", ""),
    };
    format!(
        "version: 1\nwebhooks:\n  {hook}:\n    secret: {{ env: FLEET_TEST_HOOK_TOKEN }}\n    auth: token\n\
         rules:\n  - name: on-{hook}\n    on: webhook\n    webhook: {hook}\n    do:\n{ask}\
         \x20     - send_message:\n          chat: \"{room}\"\n          text: \"{hook} {{{{ event.id }}}}{said}\"\n          mentions: [\"{bob}\"]\n"
    )
}

/// POSTs a token-authenticated delivery `id` to `/hooks/{hook}` on `addr`; the status.
async fn post_hook(addr: std::net::SocketAddr, hook: &str, id: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("http://{addr}/hooks/{hook}"))
        .header("authorization", "Bearer fleet-hook-token")
        .header("x-request-id", id)
        .body("hello")
        .send()
        .await
        .expect("POST to the fleet agent's webhook server")
        .status()
        .as_u16()
}

#[tokio::test]
async fn fleet_agents_serve_webhooks_each_on_its_own_address_and_ask_their_own_model() {
    let bots = TwoBots::start(701, 702).await;
    let state = crate::support::seeded::sandbox_state(&bots.sb).await;
    let bob = state["users"]
        .as_array()
        .and_then(|u| u.iter().find(|u| u["handle"] == "bob"))
        .and_then(|u| u["id"].as_str())
        .expect("bob's id")
        .to_owned();
    let (llm_url, seen) = model_server().await;
    write(
        &bots.dir.path().join("wf/one/w.yaml"),
        &hook_rule("deploys", &bots.bots[0].1, &bob, true),
    );
    write(
        &bots.dir.path().join("wf/two/w.yaml"),
        &hook_rule("alerts", &bots.bots[1].1, &bob, false),
    );
    let llm_key = "sk-fleet-llm-key-never-shown";
    write(
        &bots.dir.path().join("keys/llm.key"),
        &format!("{llm_key}\n"),
    );
    let (one_addr, two_addr) = (free_addr(), free_addr());
    let text = format!(
        "rest_url: {}\nws_url: {}\nagents:\n\
         \x20 - name: one\n    agent_id: {}\n    api_key_env: FLEET_TEST_ONE_KEY\n    workflows: wf/one\n\
         \x20   webhook_addr: {one_addr}\n    webhook_queue: 5\n    max_pending_per_person: 2\n\
         \x20   llm_url: {llm_url}\n    llm_model: test-model\n    llm_key_file: keys/llm.key\n\
         \x20 - name: two\n    agent_id: {}\n    api_key_file: keys/two.key\n    workflows: wf/two\n\
         \x20   webhook_addr: {two_addr}\n",
        bots.sb.rest_url(),
        bots.sb.ws_url(),
        bots.bots[0].0,
        bots.bots[1].0,
    );
    write(&bots.fleet_path(), &text);
    let mut cmd = switchboard();
    cmd.arg("run")
        .arg("--fleet")
        .arg(bots.fleet_path())
        .env("FLEET_TEST_ONE_KEY", "one-key")
        .env("FLEET_TEST_HOOK_TOKEN", "fleet-hook-token")
        .env("XDG_STATE_HOME", bots.state_home());
    let mut fleet = Running::spawn(&mut cmd);
    for name in ["one", "two"] {
        fleet
            .wait_for_stderr("both webhook servers", Duration::from_secs(30), |l| {
                let l = strip_ansi(l);
                l.contains("webhooks listening") && l.contains(&format!("agent={name}"))
            })
            .await;
    }
    assert_eq!(post_hook(one_addr, "deploys", "d-1").await, 202);
    assert_eq!(post_hook(two_addr, "alerts", "a-1").await, 202);
    // Each agent serves only its own hooks, on its own address.
    assert_eq!(post_hook(two_addr, "deploys", "d-2").await, 404);
    assert_eq!(post_hook(one_addr, "alerts", "a-2").await, 404);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let posted = |i: usize| {
        let state = crate::support::seeded::sandbox_state(&bots.sb);
        let (bot, room) = bots.bots[i].clone();
        async move {
            state.await["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["sender_id"] == bot.as_str() && m["chat_room_id"] == room.as_str())
                .filter_map(|m| m["content"].as_str().map(str::to_owned))
                .collect::<Vec<String>>()
        }
    };
    loop {
        let (one, two) = (posted(0).await, posted(1).await);
        if one
            .iter()
            .any(|m| m.ends_with("deploys d-1: model says hi"))
            && two.iter().any(|m| m.ends_with("alerts a-1"))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not posted: one {one:?}, two {two:?}; stderr:\n{}",
            fleet.stderr_lines().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stderr = fleet
        .stop_cleanly("the fleet", Duration::from_secs(30))
        .await;
    assert_eq!(
        seen.lock().unwrap().clone(),
        [format!("Bearer {llm_key}")],
        "agent one's model got its key, once"
    );
    assert!(
        !stderr.iter().any(|l| l.contains(llm_key)),
        "the model's key reached the logs:\n{}",
        stderr.join("\n")
    );
}
