//! `switchboard sandbox` run as a process: it prints its address once ready,
//! serves the seed it was given, reports bad seeds with a location, and stops
//! cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
}

#[tokio::test]
async fn serves_the_seed_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.yaml");
    std::fs::write(
        &seed,
        "users:\n  - { handle: dora, api_key: dora-key }\nagents:\n  - handle: dora/helper\n    name: Helper\n    description: Helps\n    api_key: helper-key\n",
    )
    .unwrap();
    let mut child = bin()
        .args(["sandbox", "--listen", "127.0.0.1:0", "--seed"])
        .arg(&seed)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let me = reqwest::Client::new()
        .get(format!("{url}/api/v1/agent/me"))
        .header("X-API-Key", "helper-key")
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let body: serde_json::Value = me.json().await.unwrap();
    assert_eq!(body["data"]["handle"], "dora/helper");

    // SIGTERM → clean exit 0.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(Instant::now() < deadline, "sandbox did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bad_seed_is_reported_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.yaml");
    std::fs::write(
        &seed,
        "users:\n  - handle: a\n    api_key: k\n    colour: blue\n",
    )
    .unwrap();
    let out = bin()
        .args(["sandbox", "--listen", "127.0.0.1:0", "--seed"])
        .arg(&seed)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:4:5", seed.display())),
        "no file:line:column in {err}"
    );
    assert!(err.contains("colour"), "{err}");
}

#[test]
fn every_seed_error_is_reported_once_with_a_caret() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.yaml");
    std::fs::write(
        &seed,
        "users:\n  - handle: alice\n    api_key: k\nrooms:\n  - owner: alcie\n    participants: [bob]\n",
    )
    .unwrap();
    let out = bin()
        .args(["sandbox", "--listen", "127.0.0.1:0", "--seed"])
        .arg(&seed)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        format!(
            "error: unknown handle \"alcie\"\n  --> {}:5:12\n",
            seed.display()
        ),
        "5 |   - owner: alcie\n  |            ^ did you mean `alice`?\n".to_string(),
        format!(
            "error: unknown handle \"bob\"\n  --> {}:6:20\n",
            seed.display()
        ),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
    assert!(!err.contains("error: error"), "{err}");
}

#[tokio::test]
async fn refuses_a_remote_listen_address_without_allow_remote() {
    let out = crate::support::cli::output_within(
        crate::support::cli::switchboard().args(["sandbox", "--listen", "0.0.0.0:0"]),
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--allow-remote"), "stderr: {err}");
    assert!(err.contains("no authentication"), "stderr: {err}");
}

/// With `--allow-remote`, a wildcard listen address is served (here reached
/// on loopback) and the log warns that the control endpoints are open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_a_remote_listen_address_with_allow_remote_and_warns() {
    use crate::support::cli::{strip_ansi, switchboard, Running};
    // A free port, released for the sandbox to take.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("0.0.0.0:{port}");
    let (mut sandbox, stdout) = Running::spawn_with_stdout(switchboard().args([
        "sandbox",
        "--listen",
        &listen,
        "--allow-remote",
    ]));
    sandbox
        .wait_for_stderr("the sandbox ready", Duration::from_secs(15), |l| {
            l.contains("sandbox ready")
        })
        .await;
    let printed = stdout.lock().unwrap().clone();
    assert!(
        printed.iter().any(|l| l.contains(&format!(":{port}"))),
        "no listening line with port {port}: {printed:?}"
    );
    let me = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/v1/agent/me"))
        .header("X-API-Key", "triage-key")
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200, "answers on loopback");
    let warning = sandbox
        .stderr_lines()
        .into_iter()
        .map(|l| strip_ansi(&l))
        .find(|l| l.contains(" WARN "))
        .unwrap_or_else(|| panic!("no warning: {:?}", sandbox.stderr_lines()));
    assert!(warning.contains("no authentication"), "{warning}");
    assert!(warning.contains(&listen), "{warning}");
    sandbox
        .stop_cleanly("sandbox", Duration::from_secs(10))
        .await;
}
