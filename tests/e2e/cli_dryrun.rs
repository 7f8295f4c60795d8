//! The dry-run subcommands as processes, with no network: `test` passes on
//! the shipped workflows and fails with a diff when a workflow changes,
//! `explain` shows every condition and action, `replay` runs a recording on
//! one state, `init` writes a folder that passes its own tests.

use crate::support::cli;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use cli::{output_within, switchboard};
use serde_json::Value;

/// Bound for one dry-run command.
const QUICK: Duration = Duration::from_secs(20);

fn workflows_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("stderr is UTF-8")
}

async fn run(args: &[&str]) -> Output {
    output_within(switchboard().args(args), QUICK).await
}

/// A copy of the shipped workflows and their tests.
fn shipped_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(workflows_dir()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    dir
}

#[tokio::test]
async fn test_passes_on_the_shipped_workflows() {
    let out = run(&["test", "workflows"]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let results: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("test ") && l.contains(" ... "))
        .collect();
    // Every shipped workflow has tests, and each one passed.
    for stem in ["contacts", "escalation", "faq", "triage"] {
        assert!(
            results
                .iter()
                .any(|l| l.starts_with(&format!("test {stem}: "))),
            "no test of {stem}.yaml ran:\n{text}"
        );
    }
    assert!(results.iter().all(|l| l.ends_with("... ok")), "{text}");
    let summary = text.lines().last().unwrap();
    assert!(
        summary.starts_with(&format!(
            "test result: ok. {} passed, 0 failed",
            results.len()
        )),
        "{summary}"
    );
}

#[tokio::test]
async fn a_changed_workflow_fails_its_test_with_a_diff_and_the_trace() {
    let dir = shipped_copy();
    let faq = dir.path().join("faq.yaml");
    let text = std::fs::read_to_string(&faq).unwrap();
    std::fs::write(&faq, text.replace("Monday to Friday", "Tuesday to Friday")).unwrap();
    // and the shipping rule no longer matches "tracking"
    let text = std::fs::read_to_string(&faq).unwrap();
    std::fs::write(&faq, text.replace("delivery|tracking", "delivery")).unwrap();

    let out = run(&["test", dir.path().to_str().unwrap()]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("test faq: opening hours are answered ... FAILED"),
        "{text}"
    );
    assert!(
        text.contains("test faq: a password question gets the reset steps ... ok"),
        "{text}"
    );
    // The reply's diff: expected text minus, rendered text plus.
    assert!(
        text.contains(
            "  - reply {\"text\":\"We're open Monday to Friday, 9:00 to 17:00 CET, and on Saturdays until noon.\"}"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "  + reply {\"text\":\"We're open Tuesday to Friday, 9:00 to 17:00 CET, and on Saturdays until noon.\"}"
        ),
        "{text}"
    );
    // The shipping test: the rule that was expected, then why it did not match.
    let block = text
        .split("---- ")
        .find(|b| b.starts_with("faq: shipping questions match case-insensitively"))
        .unwrap_or_else(|| panic!("no failure block for the shipping test:\n{text}"));
    assert!(block.contains("  - faq/shipping"), "{block}");
    assert!(block.contains("+ escalation/count-unanswered"), "{block}");
    assert!(
        block.contains("✗ event.text matches \"(?i)\\\\b(shipping|delivery)\\\\b\"  (saw \"Where is my TRACKING number?\")"),
        "{block}"
    );
    let summary = text.lines().last().unwrap();
    let total = text
        .lines()
        .filter(|l| l.starts_with("test ") && l.contains(" ... "))
        .count();
    assert!(
        summary.starts_with(&format!(
            "test result: FAILED. {} passed, 2 failed",
            total - 2
        )),
        "{summary}"
    );
}

#[tokio::test]
async fn sequences_check_state_and_a_wrong_count_fails() {
    let dir = shipped_copy();
    let tests = dir.path().join("escalation.test.yaml");
    let text = std::fs::read_to_string(&tests).unwrap();
    // The second of three unanswered questions does not leave the count at 3.
    std::fs::write(
        &tests,
        text.replacen(
            "- state: { \"unanswered:r1\": 2 }",
            "- state: { \"unanswered:r1\": 3 }",
            1,
        ),
    )
    .unwrap();
    let out = run(&["test", dir.path().to_str().unwrap(), "--filter", "third"]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("event 2 of 3 (message_created):"), "{text}");
    assert!(
        text.contains("state differs (- expected, + got):"),
        "{text}"
    );
    assert!(text.contains("  - unanswered:r1: 3"), "{text}");
    assert!(text.contains("  + unanswered:r1: 2"), "{text}");
    assert!(text.contains("filtered out"), "{text}");
}

#[tokio::test]
async fn a_broken_test_file_is_reported_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        workflows_dir().join("faq.yaml"),
        dir.path().join("faq.yaml"),
    )
    .unwrap();
    let file = dir.path().join("faq.test.yaml");
    std::fs::write(
        &file,
        "tests:\n  - name: typo\n    event: { type: message_created }\n    expect:\n      actions:\n        - replay: hi\n",
    )
    .unwrap();
    let out = run(&["test", dir.path().to_str().unwrap()]).await;
    // Part of the report, on stdout.
    let err = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("error: unknown action `replay`"), "{err}");
    assert!(
        err.contains(&format!("--> {}:6:11", file.display())),
        "{err}"
    );
    assert!(err.contains("did you mean `reply`?"), "{err}");
    assert!(
        stdout(&out).contains("1 test file did not load"),
        "{}",
        stdout(&out)
    );
}

/// A test file that does not load is reported where the report is read:
/// in the report itself, after the tests that ran and before the summary
/// line, however stdout and stderr are collected (a CI log or a pager shows
/// one stream after the other).
#[tokio::test]
async fn a_test_file_that_does_not_load_is_reported_before_the_summary() {
    let dir = shipped_copy();
    let file = dir.path().join("zzz.test.yaml");
    std::fs::write(&file, "tests: [\n").unwrap();
    let out = run(&["test", dir.path().to_str().unwrap()]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    let lines: Vec<&str> = text.lines().collect();
    let at = |needle: &str| {
        lines
            .iter()
            .rposition(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in the report:\n{text}"))
    };
    let error = at("error: invalid YAML");
    let location = at(&format!("--> {}:1:", file.display()));
    let summary = at("test result: FAILED");
    let last_test = at("test triage:");
    assert!(
        last_test < error && error < location && location < summary,
        "the error belongs between the tests and the summary:\n{text}"
    );
    assert!(
        lines[summary].contains("1 test file did not load"),
        "{}",
        lines[summary]
    );
    assert!(
        text.contains("    zzz: did not load"),
        "the broken file is listed with the failures:\n{text}"
    );
}

fn write_event(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("event.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

const REFUND: &str = "type: message_created\n\
payload: { id: m1, chat_room_id: r1, content: \"I was charged twice\", sender_id: u-bob, sender_type: User, sender_name: Bob }\n\
chat: { id: r1, title: Support, participants: [ { id: u-bob, handle: bob, name: Bob, type: User } ] }\n";

#[tokio::test]
async fn explain_shows_every_rule_condition_and_action() {
    let dir = tempfile::tempdir().unwrap();
    let event = write_event(dir.path(), REFUND);
    let out = run(&["explain", "--event", event.to_str().unwrap(), "workflows"]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    for line in [
        "message_created event in room r1 from Bob: 7 rules listening",
        "  ✗ faq/opening-hours: not matched",
        "      ✓ event.sender_type equals \"User\"  (saw \"User\")",
        "      ✗ event.text matches \"(?i)\\\\b(opening hours|when are you open|office hours)\\\\b\"  (saw \"I was charged twice\")",
        "  ✓ triage/refunds-to-billing: matched",
        "      → add_participant {\"handle\":\"alice/billing-agent\"}",
        "      → reply {\"text\":\"I've asked alice/billing-agent to help you with this.\",\"mentions\":[\"u-bob\",\"alice/billing-agent\"]}",
        "  · escalation/count-unanswered: not reached (ended by triage/refunds-to-billing)",
        "  outcome: done",
        "(dry run: nothing was sent)",
    ] {
        assert!(text.lines().any(|l| l == line), "no line `{line}` in:\n{text}");
    }

    let out = run(&[
        "explain",
        "--event",
        event.to_str().unwrap(),
        "--format",
        "json",
    ])
    .await;
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["matched"],
        serde_json::json!(["triage/refunds-to-billing"])
    );
    assert_eq!(
        report["actions"][1]["action"]["reply"]["mentions"][1],
        "alice/billing-agent"
    );
    assert_eq!(report["trace"][0]["conditions"][1]["passed"], false);
}

#[tokio::test]
async fn explain_exits_1_when_the_event_would_fail_and_names_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("wf");
    std::fs::create_dir(&wf).unwrap();
    std::fs::write(
        wf.join("strict.yaml"),
        "version: 1\nrules:\n  - name: no-refunds\n    on: message_created\n    if:\n      - event.content: { contains: charged }\n    do:\n      - fail: \"refunds are handled by phone\"\n",
    )
    .unwrap();
    let event = write_event(dir.path(), REFUND);
    let out = run(&[
        "explain",
        "-e",
        event.to_str().unwrap(),
        wf.to_str().unwrap(),
    ])
    .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("  outcome: failed: strict/no-refunds: refunds are handled by phone"),
        "{text}"
    );

    std::fs::write(&event, "type: message_created\npayload: [not, a, map]\n").unwrap();
    let out = run(&["explain", "-e", event.to_str().unwrap(), "workflows"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is not an event"), "{}", stderr(&out));
}

#[tokio::test]
async fn replay_runs_a_recording_on_one_state_and_skips_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let chat = r#"{"id":"r1","title":"Support","participants":[{"id":"u-dave","handle":"dave","name":"Dave","type":"User"}]}"#;
    let line = |id: &str, content: &str, at: &str| {
        format!(
            r#"{{"type":"message_created","payload":{{"id":"{id}","chat_room_id":"r1","content":"{content}","sender_id":"u-dave","sender_type":"User","sender_name":"Dave"}},"chat":{chat},"now":"{at}"}}"#
        )
    };
    let recording = [
        line("m1", "is the moon made of cheese?", "2026-01-05T09:00:00Z"),
        line("m2", "what are your opening hours?", "2026-01-05T09:01:00Z"),
        "{ this is not json".to_owned(),
        line("m3", "why is the sky blue?", "2026-01-05T09:02:00Z"),
        String::new(),
        line("m4", "and the sea?", "2026-01-05T09:03:00Z"),
    ]
    .join("\n");
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, recording).unwrap();

    let out = run(&["replay", "--events", file.to_str().unwrap(), "workflows"]).await;
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a bad line makes exit 1:\n{text}"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("line 1: 2026-01-05T09:00:00Z message_created room=r1 message=m1 rules=escalation/count-unanswered actions=incr,post_event,"),
        "{text}"
    );
    assert!(
        lines[1].contains("message=m2 rules=faq/opening-hours actions=reply"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("line 3: skipped, not a recorded event"),
        "{text}"
    );
    // The count carried over from line 1: the third unanswered one calls carol.
    assert!(
        lines[4].starts_with("line 6:")
            && lines[4].contains("actions=incr,post_event(skipped),add_participant,reply,unset"),
        "{text}"
    );
    assert!(
        text.contains("4 events replayed: 4 matched a rule, ")
            && text.contains("1 unreadable lines"),
        "{text}"
    );
}

#[tokio::test]
async fn init_writes_a_folder_that_passes_its_tests() {
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("bot");
    let out = run(&["init", wf.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let hello = std::fs::read_to_string(wf.join("hello.yaml")).unwrap();
    let first = hello.lines().next().unwrap();
    let schema = first
        .strip_prefix("# yaml-language-server: $schema=")
        .expect("the schema comment comes first");
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(wf.join(schema)).unwrap()).unwrap();
    assert_eq!(schema, switchboard_workflow::json_schema());

    let out = run(&["test", wf.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("2 passed, 0 failed"),
        "{}",
        stdout(&out)
    );
    let out = run(&["check", wf.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // A second init leaves the user's edits alone.
    std::fs::write(wf.join("hello.yaml"), "# mine\n").unwrap();
    let out = run(&["init", wf.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(wf.join("hello.yaml")).unwrap(),
        "# mine\n"
    );
}

/// The YAML blocks of the reference's section `heading`, in order.
fn reference_examples(heading: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/workflow-reference.md");
    let text = std::fs::read_to_string(path).unwrap();
    let start = text
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("no section `{heading}` in the reference"));
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
async fn business_hours_tests_run_on_the_clock_given_now_sets() {
    // The reference's example: the workflow, then its tests.
    let examples = reference_examples("Time zones and business hours");
    assert_eq!(examples.len(), 2, "{examples:?}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hours.yaml"), &examples[0]).unwrap();
    let tests = dir.path().join("hours.test.yaml");
    std::fs::write(&tests, &examples[1]).unwrap();
    let folder = dir.path().to_str().unwrap();

    let out = run(&["check", folder]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let out = run(&["test", folder]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let passed = text
        .lines()
        .filter(|l| l.starts_with("test hours: ") && l.ends_with(" ... ok"))
        .count();
    assert_eq!(passed, 5, "{text}");

    // An hour earlier, 08:00 in Berlin, the Monday-morning test fails: the
    // `time` condition reads `given.now`, not the machine's clock.
    std::fs::write(
        &tests,
        examples[1].replacen("2026-03-30T07:00:00Z", "2026-03-30T06:00:00Z", 1),
    )
    .unwrap();
    let out = run(&["test", folder]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "a Monday morning in summer is open (09:00 in Berlin is 07:00 UTC) ... FAILED"
        ),
        "{text}"
    );
    assert!(text.contains("2026-03-30T08:00:00+02:00"), "{text}");
}

#[tokio::test]
async fn explain_reads_time_conditions_on_the_events_now_in_the_rules_zone() {
    let examples = reference_examples("Time zones and business hours");
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("wf");
    std::fs::create_dir(&wf).unwrap();
    std::fs::write(wf.join("hours.yaml"), &examples[0]).unwrap();
    // Saturday 10:00 in Berlin (CEST): closed, whatever the machine's clock says.
    let event = write_event(
        dir.path(),
        "type: message_created\nnow: 2026-07-04T08:00:00Z\npayload: { id: m1, chat_room_id: r1, content: hi, sender_id: u1, sender_type: User, sender_name: Ann }\n",
    );
    let out = run(&[
        "explain",
        "--event",
        event.to_str().unwrap(),
        wf.to_str().unwrap(),
    ])
    .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    for line in [
        "  ✗ hours/open: not matched, else ran",
        "        ✗ time after 09:00 before 17:30 weekdays mon,tue,wed,thu,fri (Europe/Berlin)  (saw \"2026-07-04T10:00:00+02:00\")",
        "      → reply {\"text\":\"We're closed right now (it is 10:00 in Berlin); we answer Monday to Friday, 9:00 to 17:30.\"}",
    ] {
        assert!(text.lines().any(|l| l == line), "no line `{line}` in:\n{text}");
    }
}

const CONVERSATION: &str = r#"version: 1
rules:
  - name: refund-needs-order
    on: message_created
    if:
      - event.content: { matches: '(?i)\brefund\b' }
    do:
      - reply: "Which order number is it about?"
      - wait_for:
          if:
            - event.content: { matches: '^\s*\d+\s*$' }
          timeout: 10m
          on_timeout:
            - reply: "No order number, so I'll leave this for now."
        as: answer
      - reply: "Thanks, looking at order {{ answer.content }}."
  - name: anything-else
    on: message_created
    if:
      - event.content: { contains: hello }
    do:
      - reply: "Hello!"
"#;

const CONVERSATION_TESTS: &str = r#"given:
  chat: { id: r1, title: Support, participants: [ { id: u-bob, handle: bob, name: Bob, type: User } ] }
tests:
  - name: a later message answers
    events:
      - type: message_created
        payload: { id: m1, chat_room_id: r1, content: "a refund please", sender_id: u-bob, sender_type: User, sender_name: Bob }
      - type: message_created
        after: 1m
        payload: { id: m2, chat_room_id: r1, content: "hello?", sender_id: u-bob, sender_type: User, sender_name: Bob }
      - type: message_created
        after: 2m
        payload: { id: m3, chat_room_id: r1, content: "42", sender_id: u-bob, sender_type: User, sender_name: Bob }
    expect_each:
      - matched: [conv/refund-needs-order]
        actions: [reply: "Which order number is it about?", wait_for]
        waiting: [conv/refund-needs-order]
      - matched: [conv/anything-else]
        actions: [reply: "Hello!"]
        waiting: [conv/refund-needs-order]
      - matched: [conv/refund-needs-order]
        actions: [reply: "Thanks, looking at order 42."]
        waiting: []
  - name: the timeout passes
    events:
      - type: message_created
        payload: { id: m1, chat_room_id: r1, content: "refund", sender_id: u-bob, sender_type: User, sender_name: Bob }
      - after: 9m
      - after: 1m
    expect_each:
      - waiting: [conv/refund-needs-order]
      - actions: []
        waiting: [conv/refund-needs-order]
      - actions: [reply: "No order number, so I'll leave this for now."]
        waiting: []
"#;

#[tokio::test]
async fn test_sequences_answer_a_wait_let_its_timeout_pass_and_check_waiting() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("conv.yaml"), CONVERSATION).unwrap();
    let tests = dir.path().join("conv.test.yaml");
    std::fs::write(&tests, CONVERSATION_TESTS).unwrap();
    let out = run(&["test", dir.path().to_str().unwrap()]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        text.contains("test result: ok. 2 passed, 0 failed"),
        "{text}"
    );

    // A wrong `waiting` fails with a diff.
    std::fs::write(
        &tests,
        CONVERSATION_TESTS.replacen(
            "      - waiting: [conv/refund-needs-order]\n      - actions: []",
            "      - waiting: []\n      - actions: []",
            1,
        ),
    )
    .unwrap();
    let out = run(&["test", dir.path().to_str().unwrap()]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("event 1 of 3 (message_created):"), "{text}");
    assert!(
        text.contains("rules waiting differ (- expected, + got):")
            && text.contains("  + conv/refund-needs-order"),
        "{text}"
    );
}

#[tokio::test]
async fn explain_shows_where_a_list_pauses_and_what_it_waits_for() {
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("wf");
    std::fs::create_dir(&wf).unwrap();
    std::fs::write(
        wf.join("conv.yaml"),
        CONVERSATION.replace("hello", "charged"),
    )
    .unwrap();
    let event = write_event(
        dir.path(),
        &REFUND.replace("I was charged twice", "refund: charged twice"),
    );
    let out = run(&[
        "explain",
        "-e",
        event.to_str().unwrap(),
        wf.to_str().unwrap(),
    ])
    .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    for line in [
        "  ✓ conv/refund-needs-order: matched",
        "      → reply {\"text\":\"Which order number is it about?\"}",
        "      ⏸ wait_for {\"timeout\":\"600s\"}: the list pauses here",
        "  ✓ conv/anything-else: matched",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line `{line}` in:\n{text}"
        );
    }
    assert!(
        text.contains("        waits for an answer from u-bob in r1 until ")
            && text
                .contains("; an answer goes on at do2, the timeout runs `on_timeout` (1 action)"),
        "{text}"
    );
}

/// The reference's examples of `heading` written as files: each block's
/// first line is `# PATH` inside the workflows folder.
fn reference_folder(heading: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for block in reference_examples(heading) {
        let first = block.lines().next().unwrap_or_default();
        let Some(path) = first.strip_prefix("# ") else {
            continue;
        };
        let path = dir.path().join("wf").join(path.trim());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("{block}\n")).unwrap();
    }
    dir
}

#[tokio::test]
async fn the_reuse_examples_check_and_explain_shows_each_call_with_its_actions() {
    let dir = reference_folder("Reuse across files");
    let wf = dir.path().join("wf");
    let out = run(&["check", wf.to_str().unwrap()]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    let event = write_event(
        dir.path(),
        "type: message_created\n\
payload: { id: m1, chat_room_id: r1, content: \"hello there\", sender_id: u-ann, sender_type: User, sender_name: Ann }\n\
chat: { id: r1, title: Support, participants: [ { id: u-ann, handle: ann, name: Ann, type: User } ] }\n",
    );
    let out = run(&[
        "explain",
        "-e",
        event.to_str().unwrap(),
        wf.to_str().unwrap(),
    ])
    .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    for line in [
        "  ✓ welcome/hello: matched",
        "      ↳ call greet with {\"name\":\"Ann\"}",
        "        → reply {\"text\":\"Hi Ann, the support team is here.\"}",
        "        ↳ call note with {\"what\":\"greeted Ann\"}",
        "          → log {\"message\":\"greeted Ann\",\"level\":\"info\"}",
        "          → incr {\"key\":\"greeted.ann\",\"by\":1}",
        "      → log {\"message\":\"done with ann\",\"level\":\"info\"}",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line `{line}` in:\n{text}"
        );
    }
    // The library is no workflow of its own: one file's rules listen.
    assert!(!text.contains("support/"), "{text}");

    // A mistake inside the library is reported in the library by `check`.
    let lib = wf.join("common/support.yaml");
    let broken = std::fs::read_to_string(&lib)
        .unwrap()
        .replace("- log:", "- lgo:");
    std::fs::write(&lib, broken).unwrap();
    let out = run(&["check", wf.to_str().unwrap()]).await;
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("unknown action `lgo`"), "{text}");
    assert!(text.contains(&format!("{}:", lib.display())), "{text}");
}

#[tokio::test]
async fn secrets_come_from_given_secrets_in_tests_and_never_show_in_the_output() {
    // The reference's example: the workflow, then its tests.
    let examples = reference_examples("Secrets");
    assert_eq!(examples.len(), 2, "{examples:?}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("partner.yaml"), &examples[0]).unwrap();
    let tests = dir.path().join("partner.test.yaml");
    std::fs::write(&tests, &examples[1]).unwrap();
    let folder = dir.path().to_str().unwrap();

    // `check` and `test` read no secret: PARTNER_API_KEY is not set here.
    let out = run(&["check", folder]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(&["test", folder]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        text.contains("test result: ok. 2 passed, 0 failed"),
        "{text}"
    );

    // A failing test shows the given value as `[secret:NAME]`, in the diff
    // and in the trace.
    std::fs::write(
        &tests,
        examples[1].replacen("You have 2 open orders.", "You have 3 open orders.", 1),
    )
    .unwrap();
    let out = run(&["test", folder]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(!text.contains("test-key-1"), "{text}");
    assert!(text.contains("Bearer [secret:partner_key]"), "{text}");

    // A name the workflows do not declare is a mistake in the test.
    std::fs::write(
        &tests,
        examples[1].replacen("partner_key: test-key-1", "partner_kye: test-key-1", 1),
    )
    .unwrap();
    let out = run(&["test", folder]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("`given.secrets` names `partner_kye`, which no workflow declares")
            && text.contains("did you mean `partner_key`?"),
        "{text}"
    );
}

#[tokio::test]
async fn the_llm_example_passes_its_tests_with_the_model_stubbed_by_given_results() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/llm-triage");
    let out = run(&["test", example.to_str().unwrap()]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        text.contains("test triage: no keyword, so the model's route is taken ... ok"),
        "{text}"
    );
    assert!(
        text.contains("test result: ok. 3 passed, 0 failed"),
        "{text}"
    );

    // The stub is what routes: another answer, another participant.
    let dir = tempfile::tempdir().unwrap();
    for name in ["triage.yaml", "triage.test.yaml"] {
        std::fs::copy(example.join(name), dir.path().join(name)).unwrap();
    }
    let tests = dir.path().join("triage.test.yaml");
    let text = std::fs::read_to_string(&tests).unwrap();
    std::fs::write(
        &tests,
        text.replace("json: { route: docs }", "json: { route: human }"),
    )
    .unwrap();
    let out = run(&["test", dir.path().to_str().unwrap()]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("add_participant {\"handle\":\"carol\"}"),
        "{text}"
    );
}
