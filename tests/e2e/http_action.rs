//! The `http` action against small servers the tests start on loopback:
//! redirects are checked hop by hop against the allowlist and never carry
//! the workflow's headers to another origin, bodies are capped, `host:port`
//! entries allow one port, every call carries an `Idempotency-Key` that a
//! retry of the same message repeats, and the journal keeps no whole bodies.

use crate::support::{cli, harness, seeded};

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{any, get};
use axum::Router;
use cli::{run_command, Running};
use harness::Harness;
use switchboard_engine::Finish;

/// What a test server saw: one entry per request, its path and headers.
type Seen = Arc<Mutex<Vec<(String, HeaderMap)>>>;

/// Serves `router` on 127.0.0.1 at a free port; the port.
async fn serve(router: Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    port
}

/// A server answering `body` on every path, recording each request in `seen`.
async fn recording_server(seen: Seen, body: &'static str) -> u16 {
    let router = Router::new().fallback(any(move |uri: axum::http::Uri, headers: HeaderMap| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().push((uri.path().to_owned(), headers));
            body
        }
    }));
    serve(router).await
}

fn workflow(dir: &std::path::Path, rules: &str) {
    std::fs::write(
        dir.join("hooks.yaml"),
        format!("version: 1\nrules:\n{rules}"),
    )
    .unwrap();
}

fn failure(outcome: &Finish) -> String {
    match outcome {
        Finish::Failed { reason } => reason.clone(),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_redirect_to_a_host_not_allowed_is_refused_and_gets_no_headers() {
    // The partner that is not allowed ("localhost" is a different host from
    // the allowed "127.0.0.1", though it is the same machine).
    let stolen: Seen = Arc::default();
    let thief = recording_server(stolen.clone(), "STOLEN-BODY").await;
    // A second allowed origin (another port): redirects there are followed,
    // but the workflow's headers stay with the origin they were written for.
    let other: Seen = Arc::default();
    let other_port = recording_server(other.clone(), "OTHER-BODY").await;
    let first: Seen = Arc::default();
    let partner = {
        let first = first.clone();
        Router::new()
            .route(
                "/steal",
                get(move || async move {
                    Redirect::to(&format!("http://localhost:{thief}/steal")).into_response()
                }),
            )
            .route(
                "/elsewhere",
                get(move || async move {
                    Redirect::temporary(&format!("http://127.0.0.1:{other_port}/landed"))
                        .into_response()
                }),
            )
            .route(
                "/here",
                get(move |headers: HeaderMap| {
                    let first = first.clone();
                    async move {
                        first.lock().unwrap().push(("/here".into(), headers));
                        Redirect::to("/final").into_response()
                    }
                }),
            )
            .route(
                "/final",
                get(|headers: HeaderMap| async move {
                    let key = headers
                        .get("x-api-key")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("none")
                        .to_owned();
                    format!("FINAL key={key}")
                }),
            )
    };
    let port = serve(partner).await;

    let dir = tempfile::tempdir().unwrap();
    let step = |name: &str, path: &str| {
        format!(
            r#"  - name: {name}
    on: message_created
    if: [ {{ event.content: {{ contains: {name} }} }} ]
    do:
      - http: {{ url: "http://127.0.0.1:{port}/{path}", headers: {{ X-Api-Key: sekrit }} }}
        as: got
      - reply: "got: {{{{ got.body }}}}"
"#
        )
    };
    workflow(
        dir.path(),
        &[
            step("steal", "steal"),
            step("elsewhere", "elsewhere"),
            step("here", "here"),
        ]
        .concat(),
    );
    let mut h = Harness::start_with(dir.path().to_owned(), vec!["127.0.0.1".into()]).await;

    let (id, report) = h.bob_says("steal").await;
    let reason = failure(&report.report.outcome);
    assert!(
        reason.contains("redirect")
            && reason.contains("localhost")
            && reason.contains("not allowed"),
        "{reason}"
    );
    assert_eq!(h.settled_status(&id).await, "failed");
    assert!(
        stolen.lock().unwrap().is_empty(),
        "the host not allowed was contacted: {:?}",
        stolen.lock().unwrap()
    );
    assert!(h.bot_messages_after(&id).await.is_empty(), "no reply");

    // Another allowed origin: followed, without the workflow's headers.
    let (id, report) = h.bob_says("elsewhere").await;
    assert_eq!(report.report.outcome, Finish::Done, "{:?}", report.report);
    let reply = h.bot_messages_after(&id).await;
    assert!(
        reply[0].content.contains("OTHER-BODY"),
        "{}",
        reply[0].content
    );
    let landed = other.lock().unwrap().clone();
    assert_eq!(landed.len(), 1, "{landed:?}");
    assert!(landed[0].1.get("x-api-key").is_none(), "{landed:?}");

    // The same origin: followed, headers kept.
    let (id, report) = h.bob_says("here").await;
    assert_eq!(report.report.outcome, Finish::Done, "{:?}", report.report);
    let reply = h.bot_messages_after(&id).await;
    assert!(
        reply[0].content.contains("FINAL key=sekrit"),
        "{}",
        reply[0].content
    );
    h.stop().await;
}

#[tokio::test]
async fn redirects_are_not_followed_when_the_workflow_says_so() {
    let landed: Seen = Arc::default();
    let target = recording_server(landed.clone(), "LANDED").await;
    let port = serve(Router::new().route(
        "/go",
        get(move || async move {
            Redirect::to(&format!("http://127.0.0.1:{target}/x")).into_response()
        }),
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    workflow(
        dir.path(),
        &format!(
            r#"  - name: go
    on: message_created
    do:
      - http: {{ url: "http://127.0.0.1:{port}/go", follow_redirects: false }}
"#
        ),
    );
    let mut h = Harness::start_with(dir.path().to_owned(), vec!["127.0.0.1".into()]).await;
    let (_, report) = h.bob_says("go").await;
    let reason = failure(&report.report.outcome);
    assert!(
        reason.contains("HTTP 303") || reason.contains("HTTP 302") || reason.contains("HTTP 307"),
        "{reason}"
    );
    assert!(reason.contains("follow_redirects"), "{reason}");
    assert!(landed.lock().unwrap().is_empty());
    h.stop().await;
}

#[tokio::test]
async fn a_body_over_the_cap_fails_the_action_and_max_bytes_raises_it() {
    const BIG: usize = 2 * 1024 * 1024;
    let port = serve(
        Router::new()
            .route("/big", get(|| async { "x".repeat(BIG) }))
            // Streamed, with no Content-Length to refuse it up front.
            .route(
                "/stream",
                get(|| async {
                    let chunks = (0..64).map(|_| {
                        Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b'y'; 64 * 1024]))
                    });
                    axum::body::Body::from_stream(futures_util::stream::iter(chunks))
                }),
            ),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    workflow(
        dir.path(),
        &format!(
            r#"  - name: big
    on: message_created
    if: [ {{ event.content: {{ contains: big }} }} ]
    do:
      - http: "http://127.0.0.1:{port}/big"
  - name: stream
    on: message_created
    if: [ {{ event.content: {{ contains: stream }} }} ]
    do:
      - http: "http://127.0.0.1:{port}/stream"
  - name: raised
    on: message_created
    if: [ {{ event.content: {{ contains: raised }} }} ]
    do:
      - http: {{ url: "http://127.0.0.1:{port}/big", max_bytes: 3000000 }}
        as: got
      - reply: "size {{{{ got.body | length }}}}"
"#
        ),
    );
    let mut h = Harness::start_with(dir.path().to_owned(), vec!["127.0.0.1".into()]).await;
    for what in ["big", "stream"] {
        let (id, report) = h.bob_says(what).await;
        let reason = failure(&report.report.outcome);
        assert!(
            reason.contains("larger than")
                && reason.contains("1048576")
                && reason.contains("max_bytes"),
            "{what}: {reason}"
        );
        assert_eq!(h.settled_status(&id).await, "failed");
    }
    let (id, report) = h.bob_says("raised").await;
    assert_eq!(
        report.report.outcome,
        Finish::Done,
        "{:?}",
        report.report.actions
    );
    let reply = h.bot_messages_after(&id).await;
    assert!(
        reply[0].content.contains(&format!("size {BIG}")),
        "{}",
        reply[0].content
    );
    h.stop().await;
}

#[tokio::test]
async fn a_host_port_entry_allows_only_that_port() {
    let a: Seen = Arc::default();
    let b: Seen = Arc::default();
    let port_a = recording_server(a.clone(), "A").await;
    let port_b = recording_server(b.clone(), "B").await;
    let dir = tempfile::tempdir().unwrap();
    workflow(
        dir.path(),
        &format!(
            r#"  - name: a
    on: message_created
    if: [ {{ event.content: {{ contains: port-a }} }} ]
    do:
      - http: "http://127.0.0.1:{port_a}/a"
  - name: b
    on: message_created
    if: [ {{ event.content: {{ contains: port-b }} }} ]
    do:
      - http: "http://127.0.0.1:{port_b}/b"
"#
        ),
    );
    let mut h =
        Harness::start_with(dir.path().to_owned(), vec![format!("127.0.0.1:{port_a}")]).await;
    let (_, report) = h.bob_says("port-a").await;
    assert_eq!(
        report.report.outcome,
        Finish::Done,
        "{:?}",
        report.report.actions
    );
    assert_eq!(a.lock().unwrap().len(), 1);
    let (_, report) = h.bob_says("port-b").await;
    let reason = failure(&report.report.outcome);
    assert!(
        reason.contains(&format!("port {port_b} of host 127.0.0.1 is not allowed")),
        "{reason}"
    );
    assert!(b.lock().unwrap().is_empty(), "port b was contacted");
    h.stop().await;
}

#[tokio::test]
async fn a_bad_allow_http_host_entry_is_refused_at_start() {
    let out = cli::output_within(
        cli::switchboard().args([
            "run",
            "--api-key",
            "k",
            "--allow-http-host",
            "127.0.0.1:http",
        ]),
        Duration::from_secs(20),
    )
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("127.0.0.1:http") && err.contains("port"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idempotency_key_is_sent_and_repeated_on_a_retry_and_the_journal_keeps_no_body() {
    // The first call fails (503), so the message fails and is retried; the
    // second call succeeds with a body far larger than a journal line should be.
    let seen: Seen = Arc::default();
    let port = {
        let seen = seen.clone();
        serve(Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap| {
                let seen = seen.clone();
                async move {
                    let mut seen = seen.lock().unwrap();
                    seen.push(("/hook".into(), headers));
                    match seen.len() {
                        1 => (StatusCode::SERVICE_UNAVAILABLE, "busy".to_owned()),
                        _ => (StatusCode::OK, format!("OK{}", "z".repeat(200_000))),
                    }
                }
            }),
        ))
        .await
    };
    let (sb, bob, room, bot) = seeded::seeded_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir(&flows).unwrap();
    workflow(
        &flows,
        &format!(
            r#"  - name: hook
    on: message_created
    do:
      - http: {{ url: "http://127.0.0.1:{port}/hook", json: {{ q: "{{{{ event.content }}}}" }} }}
        as: got
      - reply: "status {{{{ got.status }}}}"
"#
        ),
    );
    let journal = dir.path().join("journal");
    let mut cmd = run_command(&sb, &flows);
    cmd.arg("--journal").arg(&journal).args([
        "--retry-delay",
        "200ms",
        "--allow-http-host",
        "127.0.0.1",
    ]);
    let agent = Running::spawn(&mut cmd);
    let id = seeded::ask(&bob, &room, &bot, "call the hook").await;
    let reply = seeded::reply_after(&bob, &room, &bot, &id, Duration::from_secs(15)).await;
    let logs = agent
        .stop_cleanly("the agent", Duration::from_secs(10))
        .await;
    let reply = reply.unwrap_or_else(|| panic!("no reply; logs:\n{}", logs.join("\n")));
    assert!(reply.content.contains("status 200"), "{}", reply.content);

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "one failed call, one retry");
    let keys: Vec<&str> = seen
        .iter()
        .map(|(_, h)| {
            h.get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .expect("an Idempotency-Key header")
        })
        .collect();
    assert!(keys[0].len() >= 16, "{keys:?}");
    assert_eq!(keys[0], keys[1], "the retry repeats the key");

    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(text.len() < 20_000, "journal of {} bytes", text.len());
    assert!(!text.contains("zzzz"), "the body is not journaled");
    assert!(text.contains("\"status\":200"), "{text}");
    sb.shutdown().await.unwrap();
}

#[tokio::test]
async fn different_steps_and_messages_get_different_keys() {
    let seen: Seen = Arc::default();
    let port = recording_server(seen.clone(), "ok").await;
    let dir = tempfile::tempdir().unwrap();
    workflow(
        dir.path(),
        &format!(
            r#"  - name: twice
    on: message_created
    do:
      - http: "http://127.0.0.1:{port}/one"
      - http: "http://127.0.0.1:{port}/two"
"#
        ),
    );
    let mut h = Harness::start_with(dir.path().to_owned(), vec!["127.0.0.1".into()]).await;
    h.bob_says("first").await;
    h.bob_says("second").await;
    let keys: std::collections::HashSet<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, h)| {
            h.get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert!(!keys.contains(""), "{keys:?}");
    h.stop().await;
}
