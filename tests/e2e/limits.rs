//! Hostile workflows and events never panic: huge durations are refused by
//! `check`, `explain` and `test` with a clear error; against the sandbox, a
//! TTL rendered huge from message text fails that message with the reason
//! while the agent keeps running, and a 355 KB message passes through a
//! single-expression template.

use crate::support::cli::{output_within, switchboard};
use crate::support::harness::Harness;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

const QUICK: Duration = Duration::from_secs(20);

const HUGE: &str = r#"version: 1
rules:
  - name: tick
    on: schedule
    every: 100000000d
    do: [{ log: tick }]
  - name: remember
    on: message_created
    do:
      - set: { key: seen, value: 1, ttl: 100000000d }
      - reply: ok
"#;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test]
async fn check_explain_and_test_refuse_huge_durations_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("wf");
    std::fs::create_dir(&wf).unwrap();
    write(&wf, "w.yaml", HUGE);
    write(
        &wf,
        "w.test.yaml",
        "tests:\n  - name: remembers\n    event:\n      type: message_created\n      payload: { id: m1, chat_room_id: r1, content: hi, sender_id: u1, sender_type: User }\n    expect:\n      matched: [w/remember]\n",
    );
    let event = write(
        dir.path(),
        "event.yaml",
        "type: message_created\npayload: { id: m1, chat_room_id: r1, content: hi, sender_id: u1, sender_type: User }\n",
    );
    let wf = wf.to_str().unwrap();
    for args in [
        vec!["check", wf],
        vec!["explain", "--event", &event, wf],
        vec!["test", wf],
    ] {
        let out = output_within(switchboard().args(&args), QUICK).await;
        let all = text(&out);
        assert!(!all.contains("panicked"), "{args:?}: {all}");
        assert_ne!(out.status.code(), Some(0), "{args:?} must fail: {all}");
        assert_ne!(out.status.code(), Some(101), "{args:?} panicked: {all}");
        assert!(
            all.contains(
                "`every`: duration `100000000d` is longer than the maximum of 3650d (10 years)"
            ) && all.contains(
                "`ttl`: duration `100000000d` is longer than the maximum of 3650d (10 years)"
            ),
            "{args:?}: {all}"
        );
    }
}

#[tokio::test]
async fn a_huge_ttl_from_message_text_fails_that_message_and_the_agent_keeps_going() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "keep.yaml",
        r#"version: 1
rules:
  - name: remember
    on: message_created
    if:
      - event.sender_type: User
    do:
      - set: { key: last, value: "{{ event.content }}" }
      - set: { key: seen, value: 1, ttl: "{{ event.content | strip_mentions | trim if (event.content | length) < 100 else '1h' }}" }
      - reply: "stored {{ event.content | length }} characters"
"#,
    );
    let mut h = Harness::start_with(dir.path().to_path_buf(), Vec::new()).await;

    let (id, handled) = h.bob_says("100000000d").await;
    assert_eq!(h.settled_status(&id).await, "failed");
    let reason = format!("{:?}", handled.report.outcome);
    assert!(
        reason.contains("keep/remember: set: `ttl`: duration `100000000d` is longer than the maximum of 3650d (10 years)"),
        "{reason}"
    );

    // Still running: a reasonable TTL works, and so does a 355 KB message
    // through `value: "{{ event.content }}"`.
    let (id, _) = h.bob_says("10m").await;
    assert_eq!(h.settled_status(&id).await, "processed");
    let big = "<\"é ".repeat(355_000 / 5);
    let (id, handled) = h.bob_says(&big).await;
    assert_eq!(h.settled_status(&id).await, "processed", "{handled:?}");
    let replies = h.bot_messages_after(&id).await;
    assert!(
        replies.iter().any(|m| m.content.contains("stored ")),
        "{replies:?}"
    );
    h.stop().await;
}
