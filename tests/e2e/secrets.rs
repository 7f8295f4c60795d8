//! The API key never shows up: not in the logs of a full run at the most
//! verbose level, not in a recording, not in templates.

use crate::support::cli;
use crate::support::seeded;

use std::path::Path;
use std::time::Duration;

use band_sandbox::{default_seed, RunningSandbox};
use cli::{output_within, switchboard, Running};

/// The triage bot's key in these tests: long and unlike anything else in a log.
const SECRET: &str = "sk-live-7f3c1e9a5b2d4c6e8f0a1b3c5d7e9f1124680ace";
const STEP: Duration = Duration::from_secs(15);

fn workflows() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows")
}

async fn sandbox_with_secret_key() -> RunningSandbox {
    let mut seed = default_seed();
    for agent in &mut seed.agents {
        if agent.api_key.value == "triage-key" {
            agent.api_key.value = SECRET.to_owned();
        }
    }
    RunningSandbox::start("127.0.0.1:0".parse().unwrap(), seed)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_never_logs_or_records_the_key() {
    let sb = sandbox_with_secret_key().await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{SECRET}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let recording = dir.path().join("events.jsonl");
    let mut cmd = switchboard();
    cmd.args(["-vv", "run", "--explain", "--workflows"])
        .arg(workflows())
        .arg("--api-key-file")
        .arg(&key_file)
        .arg("--record")
        .arg(&recording)
        .arg("--rest-url")
        .arg(sb.rest_url())
        .arg("--ws-url")
        .arg(sb.ws_url());
    let mut agent = Running::spawn(&mut cmd);
    agent
        .wait_for_stderr("startup sync", STEP, |l| l.contains("startup sync done"))
        .await;

    let (bob, room, bot) = seeded::world(&sb).await;
    let question = seeded::ask(&bob, &room, &bot, "What are your opening hours?").await;
    seeded::reply_after(&bob, &room, &bot, &question, STEP)
        .await
        .expect("the bot answers");
    // A dropped socket makes the client reconnect (and log the attempt).
    reqwest::Client::new()
        .post(format!("{}/_sandbox/faults", sb.rest_url()))
        .json(&serde_json::json!({"drop_sockets": true}))
        .send()
        .await
        .unwrap();
    agent
        .wait_for_stderr("reconnect", STEP, |l| l.contains("reconnect=true"))
        .await;
    let stderr = agent.stop_cleanly("agent", Duration::from_secs(10)).await;
    assert!(stderr.len() > 20, "a -vv run logs plenty: {}", stderr.len());
    let leaked: Vec<&String> = stderr.iter().filter(|l| l.contains(SECRET)).collect();
    assert!(leaked.is_empty(), "the key is in the logs:\n{leaked:?}");
    let recorded = std::fs::read_to_string(&recording).unwrap();
    assert!(!recorded.is_empty());
    assert!(!recorded.contains(SECRET), "the key is in the recording");
    sb.shutdown().await.unwrap();
}

#[tokio::test]
async fn templates_cannot_be_given_the_key() {
    let sb = sandbox_with_secret_key().await;
    let out = output_within(
        switchboard()
            .env("BAND_API_KEY", SECRET)
            .args(["run", "--allow-env", "BAND_API_KEY", "--workflows"])
            .arg(workflows())
            .arg("--rest-url")
            .arg(sb.rest_url())
            .arg("--ws-url")
            .arg(sb.ws_url()),
        STEP,
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--allow-env BAND_API_KEY would let templates render the API key"),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET), "{stderr}");
    sb.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_missing_or_empty_key_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let out = output_within(
        switchboard().arg("run").arg("--api-key-file").arg(&missing),
        STEP,
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot read the API key file"), "{stderr}");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let out = output_within(
        switchboard().arg("run").arg("--api-key-file").arg(&empty),
        STEP,
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is empty"), "{stderr}");
}

/// `switchboard run` on a folder whose one workflow declares `partner_key`
/// from `source`, with the key in `BAND_API_KEY` or else in `key_file`; its
/// exit code and stderr.
async fn run_with_secret(source: &str, key_file: Option<&Path>) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("partner.yaml"),
        format!(
            "version: 1\nsecrets:\n  partner_key: {source}\nrules:\n  - name: lookup\n    on: message_created\n    do:\n      - http:\n          url: https://partner.example/\n          headers: {{ Authorization: \"{{{{ secrets.partner_key }}}}\" }}\n"
        ),
    )
    .unwrap();
    let mut cmd = switchboard();
    cmd.args(["run", "--ephemeral", "--rest-url", "http://127.0.0.1:9"])
        .arg("--workflows")
        .arg(dir.path());
    match key_file {
        Some(file) => cmd.arg("--api-key-file").arg(file),
        None => cmd.env("BAND_API_KEY", SECRET),
    };
    let out = output_within(&mut cmd, STEP).await;
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_api_key_cannot_be_a_workflow_secret() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{SECRET}\n")).unwrap();
    // By its variable, by its file, and by a copy of its value elsewhere.
    let copy = dir.path().join("copy");
    std::fs::write(&copy, SECRET).unwrap();
    for (source, key) in [
        ("{ env: BAND_API_KEY }".to_owned(), None),
        (
            format!("{{ file: '{}' }}", key_file.display()),
            Some(key_file.as_path()),
        ),
        (format!("{{ file: '{}' }}", copy.display()), None),
    ] {
        let (code, stderr) = run_with_secret(&source, key).await;
        assert_eq!(code, Some(1), "{source}: {stderr}");
        assert!(
            stderr.contains("secret `partner_key`")
                && stderr.contains("is the agent's own API key, which is never given to templates")
                && stderr.contains("partner.yaml:3:16"),
            "{source}: {stderr}"
        );
        assert!(!stderr.contains(SECRET), "{stderr}");
    }
    // A secret that cannot be read stops the start, naming it.
    let (code, stderr) = run_with_secret("{ env: PARTNER_TOKEN_NEVER_SET }", None).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "secret `partner_key`: the environment variable PARTNER_TOKEN_NEVER_SET is not set"
        ),
        "{stderr}"
    );
}
