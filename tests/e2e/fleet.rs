//! Fleets: `check --fleet` reports every problem of the fleet file with
//! file:line:column, and each agent's workflow errors under its name;
//! `run --fleet` runs two agents of the sandbox in one process, each
//! answering its own room, one agent's bad workflows leaving the other
//! running, and an edit to the fleet file stopping only the agent removed.

use std::path::Path;
use std::time::Duration;

use crate::support::cli::{output_within, switchboard};

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
