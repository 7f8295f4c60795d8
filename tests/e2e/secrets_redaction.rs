//! Workflow secrets (`secrets:` read from the environment or a file) reach
//! the `http` action's request and nothing the agent writes: the agent runs
//! as a process with `-vv --explain --record`, a state directory and the
//! metrics server, a rule sends the secret in a header to a server the test
//! starts (which checks it got the real value), stores it with `set:` and
//! logs it; another rule tries to put it in a reply. Then everything written
//! is searched for the value, and `[secret:NAME]` is found where it would be.
//! A reload reads the secrets again (a rotated key is used and hidden; one
//! that cannot be read keeps the running rules).

use crate::support::harness::Harness;
use crate::support::{cli, seeded};

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use axum::routing::any;
use axum::Router;
use cli::{run_command, Running};
use switchboard::rules::reload::{ReloadOutcome, ReloadReport};
use switchboard_engine::Finish;
use switchboard_workflow::secrets::Redaction;

/// The partner's key: long and unlike anything else the agent writes.
const VALUE: &str = "pk-live-93b1d5e7f9a2c4e6b8d0f1a3c5e7b9d2";
const SHOWN: &str = "[secret:partner_key]";
const STEP: Duration = Duration::from_secs(15);

/// Every file under `dir`, read (lossily) with its path.
fn files_under(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.push((
                    path.display().to_string(),
                    String::from_utf8_lossy(&bytes).into_owned(),
                ));
            }
        }
    }
    out
}

fn free_addr() -> std::net::SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_reaches_the_partner_and_nothing_the_agent_writes() {
    let (sb, bob, room, bot) = seeded::seeded_sandbox().await;
    // The partner: answers every request, keeping the Authorization it got.
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let partner = {
        let seen = seen.clone();
        Router::new().fallback(any(move |headers: HeaderMap| {
            let seen = seen.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                seen.lock().unwrap().push(auth);
                axum::Json(serde_json::json!({"count": 3}))
            }
        }))
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, partner).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let workflows = dir.path().join("workflows");
    std::fs::create_dir(&workflows).unwrap();
    std::fs::write(
        workflows.join("partner.yaml"),
        format!(
            r#"version: 1
secrets:
  partner_key: {{ env: PARTNER_API_KEY }}
rules:
  - name: lookup
    on: message_created
    if:
      - event.text: {{ contains: orders }}
    do:
      - http:
          url: "http://127.0.0.1:{port}/api/orders"
          headers: {{ Authorization: "Bearer {{{{ secrets.partner_key }}}}" }}
        as: orders
      - set: {{ key: partner_token, value: "{{{{ secrets.partner_key }}}}" }}
      - log: "called the partner with {{{{ secrets.partner_key }}}}"
      - reply: "You have {{{{ orders.body.count }}}} orders."
  - name: leak
    on: message_created
    if:
      - event.text: {{ contains: leak }}
    do:
      - reply: "The key is {{{{ secrets.partner_key }}}}"
"#
        ),
    )
    .unwrap();
    let state_dir = dir.path().join("state");
    let recording = dir.path().join("events.jsonl");
    let metrics = free_addr();
    let mut cmd = run_command(&sb, &workflows);
    cmd.env("PARTNER_API_KEY", VALUE)
        .arg("-vv")
        .arg("--explain")
        .arg("--record")
        .arg(&recording)
        .arg("--state-dir")
        .arg(&state_dir)
        .arg("--metrics-addr")
        .arg(metrics.to_string())
        .arg("--max-attempts")
        .arg("1")
        .arg("--allow-http-host")
        .arg(format!("127.0.0.1:{port}"));
    let (mut agent, stdout) = Running::spawn_with_stdout(&mut cmd);
    agent
        .wait_for_stderr("startup sync", STEP, |l| l.contains("startup sync done"))
        .await;

    let question = seeded::ask(&bob, &room, &bot, "How many orders do I have?").await;
    let answer = seeded::reply_after(&bob, &room, &bot, &question, STEP)
        .await
        .expect("the bot answers");
    assert!(
        answer.content.ends_with("You have 3 orders."),
        "{}",
        answer.content
    );
    assert_eq!(
        seen.lock().unwrap().clone(),
        vec![format!("Bearer {VALUE}")],
        "the partner gets the real value"
    );
    // A reply that would carry the secret is refused; the rule fails.
    let leak = seeded::ask(&bob, &room, &bot, "please leak it").await;
    agent
        .wait_for_stderr("the refused reply", STEP, |l| {
            l.contains("would send the secret `partner_key`")
        })
        .await;

    let client = reqwest::Client::new();
    let handled = client
        .get(format!("http://{metrics}/handled"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let metrics_text = client
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sandbox = seeded::sandbox_state(&sb).await.to_string();
    let stderr = agent.stop_cleanly("agent", Duration::from_secs(10)).await;

    let mut written: Vec<(String, String)> = vec![
        ("stderr".into(), stderr.join("\n")),
        ("stdout".into(), stdout.lock().unwrap().join("\n")),
        ("/handled".into(), handled),
        ("/metrics".into(), metrics_text),
        ("the platform".into(), sandbox.clone()),
    ];
    written.extend(files_under(dir.path()).into_iter().filter(|(path, _)| {
        // The workflow is the one file the person wrote.
        !path.ends_with("partner.yaml")
    }));
    assert!(
        written.iter().any(|(p, _)| p.ends_with("events.jsonl")),
        "{:?}",
        written.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    for (what, text) in &written {
        assert!(
            !text.contains(VALUE),
            "the secret's value is in {what}:\n{text}"
        );
    }
    let shown_in = |what: &str| {
        written
            .iter()
            .filter(|(p, _)| p.contains(what))
            .any(|(_, t)| t.contains(SHOWN))
    };
    // The --explain trace shows the header, the `log` line and the state.
    assert!(
        stderr
            .iter()
            .any(|l| l.contains(&format!("Bearer {SHOWN}"))),
        "{stderr:#?}"
    );
    assert!(
        stderr
            .iter()
            .any(|l| l.contains(&format!("called the partner with {SHOWN}"))),
        "{stderr:#?}"
    );
    let (_, handled) = &written[2];
    assert!(
        handled.contains("would send the secret `partner_key` to the platform"),
        "{handled}"
    );
    let state_files: Vec<&(String, String)> = written
        .iter()
        .filter(|(p, _)| p.starts_with(&state_dir.display().to_string()))
        .collect();
    assert!(
        shown_in(&state_dir.display().to_string()),
        "the state file shows the placeholder: {state_files:#?}"
    );
    // The refused reply never reached the platform; its message failed.
    assert!(
        !sandbox.contains("The key is"),
        "the platform got the reply: {sandbox}"
    );
    assert!(sandbox.contains(&leak));
    sb.shutdown().await.unwrap();
}

/// Serves on loopback, keeping each request's Authorization header; the port.
async fn partner(seen: Arc<Mutex<Vec<String>>>) -> u16 {
    let router = Router::new().fallback(any(move |headers: HeaderMap| {
        let seen = seen.clone();
        async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            seen.lock().unwrap().push(auth);
            "ok"
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    port
}

async fn next_reload(h: &mut Harness) -> ReloadReport {
    tokio::time::timeout(STEP, h.reloads.recv())
        .await
        .expect("a reload within the time limit")
        .expect("the agent is running")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_reads_the_secrets_again_and_one_that_cannot_be_read_keeps_the_old_rules() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let port = partner(seen.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let workflows = dir.path().join("workflows");
    std::fs::create_dir(&workflows).unwrap();
    let key = dir.path().join("partner.key");
    std::fs::write(&key, "first-key-4c1d9e\n").unwrap();
    let workflow = workflows.join("partner.yaml");
    let text = |comment: &str| {
        format!(
            "# {comment}\nversion: 1\nsecrets:\n  partner_key: {{ file: ../partner.key }}\nrules:\n  - name: ping\n    on: message_created\n    if: [ {{ event.content: {{ contains: ping }} }} ]\n    do:\n      - http:\n          url: \"http://127.0.0.1:{port}/\"\n          headers: {{ Authorization: \"Bearer {{{{ secrets.partner_key }}}}\" }}\n"
        )
    };
    std::fs::write(&workflow, text("first")).unwrap();
    let redaction = Redaction::new();
    let shared = redaction.clone();
    let mut h = Harness::start_configured(workflows.clone(), move |config| {
        config.watch = true;
        config.redaction = shared;
        config.allow_http_hosts = vec![format!("127.0.0.1:{port}").parse().unwrap()];
    })
    .await;
    let (_, handled) = h.bob_says("ping").await;
    assert_eq!(handled.report.outcome, Finish::Done);
    assert_eq!(
        redaction.redact("x first-key-4c1d9e"),
        "x [secret:partner_key]"
    );

    // The key is rotated: the next reload reads it, and hides the new value.
    std::fs::write(&key, "second-key-7a2b5f\n").unwrap();
    std::fs::write(&workflow, text("second")).unwrap();
    let report = next_reload(&mut h).await;
    assert!(
        matches!(report.outcome, ReloadOutcome::Reloaded { .. }),
        "{report:?}"
    );
    assert_eq!(
        redaction.redact("x second-key-7a2b5f"),
        "x [secret:partner_key]"
    );
    // The old value stays hidden (an event in flight may still log it).
    assert_eq!(
        redaction.redact("x first-key-4c1d9e"),
        "x [secret:partner_key]"
    );
    let (_, handled) = h.bob_says("ping").await;
    assert_eq!(handled.report.outcome, Finish::Done);

    // The key file is gone: the reload fails, naming the secret; the rules
    // (and the key) that were running stay.
    std::fs::remove_file(&key).unwrap();
    std::fs::write(&workflow, text("third")).unwrap();
    let report = next_reload(&mut h).await;
    let ReloadOutcome::Failed { errors } = &report.outcome else {
        panic!("{report:?}")
    };
    let errors = errors.to_string();
    assert!(
        errors.contains("secret `partner_key`: cannot read the file"),
        "{errors}"
    );
    let (_, handled) = h.bob_says("ping").await;
    assert_eq!(handled.report.outcome, Finish::Done);
    assert_eq!(
        seen.lock().unwrap().clone(),
        [
            "Bearer first-key-4c1d9e",
            "Bearer second-key-7a2b5f",
            "Bearer second-key-7a2b5f"
        ]
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_variable_named_like_a_secret_gets_a_warning_pointing_at_secrets() {
    let (sb, ..) = seeded::seeded_sandbox().await;
    let workflows = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
    let mut cmd = run_command(&sb, &workflows);
    cmd.env("PARTNER_API_TOKEN", "s3cr3t-tok")
        .env("REPORT_ROOM", "r1")
        .args(["--ephemeral", "--allow-env", "PARTNER_API_TOKEN"])
        .args(["--allow-env", "REPORT_ROOM"]);
    let mut agent = Running::spawn(&mut cmd);
    agent
        .wait_for_stderr("the warning", STEP, |l| {
            l.contains("--allow-env PARTNER_API_TOKEN looks like a secret")
                && l.contains("declare it under `secrets:`")
        })
        .await;
    agent
        .wait_for_stderr("startup sync", STEP, |l| l.contains("startup sync done"))
        .await;
    let stderr = agent.stop_cleanly("agent", Duration::from_secs(10)).await;
    // Only the variable named like one; never its value.
    assert!(
        !stderr.iter().any(|l| l.contains("REPORT_ROOM looks like")),
        "{stderr:#?}"
    );
    assert!(
        !stderr.iter().any(|l| l.contains("s3cr3t-tok")),
        "{stderr:#?}"
    );
    sb.shutdown().await.unwrap();
}
