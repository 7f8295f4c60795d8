//! The agent's subcommands run as processes: `check` reports every workflow
//! error with its location, `schema` prints the committed schema, `run`
//! answers on the sandbox and stops cleanly on SIGTERM, and `demo` plays its
//! script to the end.

use crate::support::seeded;

use crate::support::cli;

use std::path::{Path, PathBuf};
use std::time::Duration;

use band_client::rest::{HumanApi, HumanMessageQuery};
use band_sandbox::{default_seed, RunningSandbox};
use band_wire::model::Mention;
use cli::{output_within, run_command, strip_ansi, switchboard, Running};
use seeded::seeded_sandbox;
use serde_json::Value;

/// Bound for commands that only read files.
const QUICK: Duration = Duration::from_secs(20);
/// Bound for one step that waits on the running agent.
const STEP: Duration = Duration::from_secs(15);

fn workflows_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("output is UTF-8")
}

/// A folder with two broken workflow files: a bad regex and an unknown event
/// type in one, a misspelt rule key in the other.
fn broken_workflows() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "version: 1\n\
         rules:\n\
         \x20 - name: one\n\
         \x20   on: message_created\n\
         \x20   if:\n\
         \x20     - event.content: { matches: '(unclosed' }\n\
         \x20   do:\n\
         \x20     - reply: \"hi\"\n\
         \x20 - name: two\n\
         \x20   on: mesage_created\n\
         \x20   do:\n\
         \x20     - reply: \"x\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.yaml"),
        "version: 1\n\
         rules:\n\
         \x20 - name: three\n\
         \x20   on: message_created\n\
         \x20   stopp: true\n\
         \x20   do:\n\
         \x20     - reply: \"y\"\n",
    )
    .unwrap();
    dir
}

/// Asserts `report` has the error `message` at `file:line:col`, followed by
/// the offending source line and a caret under column `col` (with `hint`
/// after the caret when given).
fn assert_error_at(
    report: &str,
    message: &str,
    file: &Path,
    (line, col): (usize, usize),
    source: &str,
    hint: Option<&str>,
) {
    let lines: Vec<&str> = report.lines().collect();
    let location = format!("--> {}:{line}:{col}", file.display());
    let at = lines
        .iter()
        .position(|l| l.trim() == location)
        .unwrap_or_else(|| panic!("no `{location}` in:\n{report}"));
    assert!(
        at > 0 && lines[at - 1].starts_with("error: ") && lines[at - 1].contains(message),
        "the line before `{location}` is not `error: ...{message}...`:\n{report}"
    );
    let quoted = lines
        .get(at + 2)
        .unwrap_or_else(|| panic!("no source line after `{location}`:\n{report}"));
    let (number, code) = quoted
        .split_once(" | ")
        .unwrap_or_else(|| panic!("source line `{quoted}` has no gutter"));
    assert_eq!(number.trim(), line.to_string(), "line number in `{quoted}`");
    assert_eq!(code, source, "quoted source line");
    let caret_line = lines
        .get(at + 3)
        .unwrap_or_else(|| panic!("no caret line after `{quoted}`:\n{report}"));
    let gutter = caret_line
        .find('|')
        .unwrap_or_else(|| panic!("caret line `{caret_line}` has no gutter"));
    assert_eq!(gutter, number.len() + 1, "gutters line up in:\n{report}");
    let caret = caret_line
        .find('^')
        .unwrap_or_else(|| panic!("no caret in `{caret_line}`"));
    assert_eq!(
        caret - (gutter + 2),
        col - 1,
        "caret not under column {col}:\n{quoted}\n{caret_line}"
    );
    if let Some(hint) = hint {
        assert!(
            caret_line[caret..].contains(hint),
            "`{hint}` not after the caret in `{caret_line}`"
        );
    }
}

#[tokio::test]
async fn check_accepts_the_shipped_workflows() {
    let dir = workflows_dir();
    let out = output_within(switchboard().arg("check").arg(&dir), QUICK).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let count = stdout
        .trim_end()
        .strip_prefix("ok: ")
        .and_then(|rest| rest.strip_suffix(&format!(" rules in {}", dir.display())))
        .unwrap_or_else(|| panic!("unexpected summary {stdout:?}"));
    assert!(count.parse::<usize>().unwrap() > 0, "{stdout}");
}

/// A FIFO named like a workflow would block a plain `open` until some
/// writer came; `check` refuses it by name and ends at once.
#[cfg(unix)]
#[tokio::test]
async fn check_refuses_a_fifo_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "version: 1\nrules:\n  - name: a\n    on: room_added\n    do: []\n",
    )
    .unwrap();
    let fifo = dir.path().join("pipe.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo failed");
    let out = output_within(
        switchboard().arg("check").arg(dir.path()),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let report = text(&out.stderr);
    assert!(
        report.contains(&fifo.display().to_string())
            && report.contains("not a regular file (a FIFO)"),
        "{report}"
    );
}

#[tokio::test]
async fn check_lists_every_error_with_its_location() {
    let dir = broken_workflows();
    let out = output_within(switchboard().arg("check").arg(dir.path()), QUICK).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    let report = text(&out.stderr);
    let a = dir.path().join("a.yaml");
    let b = dir.path().join("b.yaml");
    assert_error_at(
        &report,
        "regular expression",
        &a,
        (6, 36),
        "      - event.content: { matches: '(unclosed' }",
        None,
    );
    assert_error_at(
        &report,
        "unknown event type `mesage_created`",
        &a,
        (10, 9),
        "    on: mesage_created",
        Some("did you mean `message_created`?"),
    );
    assert_error_at(
        &report,
        "unknown key `stopp`",
        &b,
        (5, 5),
        "    stopp: true",
        Some("did you mean `stop`?"),
    );
    assert_eq!(report.matches("error: ").count(), 3, "{report}");
    assert_eq!(
        report.lines().last(),
        Some(format!("3 errors in {}", dir.path().display()).as_str()),
        "{report}"
    );
}

#[tokio::test]
async fn check_catches_what_would_fail_only_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("w.yaml");
    std::fs::write(
        &file,
        "version: 1\n\
         rules:\n\
         \x20 - name: greet\n\
         \x20   on: message_created\n\
         \x20   do:\n\
         \x20     - reply: \"Hi {{ sender.name | uppper }}\"\n\
         \x20     - incr: { key: greetings, by: \"two\" }\n\
         \x20     - rpely: { txt: hi }\n",
    )
    .unwrap();
    let out = output_within(switchboard().arg("check").arg(dir.path()), QUICK).await;
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out.stderr);
    assert_error_at(
        &report,
        "unknown filter `uppper`",
        &file,
        (6, 37),
        "      - reply: \"Hi {{ sender.name | uppper }}\"",
        Some("did you mean `upper`?"),
    );
    assert_error_at(
        &report,
        "`by` must be a whole number, found the string \"two\"",
        &file,
        (7, 37),
        "      - incr: { key: greetings, by: \"two\" }",
        None,
    );
    assert_error_at(
        &report,
        "unknown action `rpely`",
        &file,
        (8, 9),
        "      - rpely: { txt: hi }",
        Some("did you mean `reply`?"),
    );
    assert_error_at(
        &report,
        "unknown key `txt` in `reply`",
        &file,
        (8, 18),
        "      - rpely: { txt: hi }",
        Some("did you mean `text`?"),
    );
    assert_eq!(report.matches("error: ").count(), 4, "{report}");
}

#[tokio::test]
async fn schema_prints_the_committed_schema() {
    let out = output_within(switchboard().arg("schema"), QUICK).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).expect("schema output is JSON");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/workflow.schema.json");
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(printed, committed);
    assert_eq!(printed["title"], "switchboard workflow");
}

#[tokio::test]
async fn run_without_a_key_names_band_api_key() {
    let out = output_within(switchboard().arg("run"), QUICK).await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("BAND_API_KEY"), "stderr: {err}");

    // An empty key counts as none.
    let out = output_within(switchboard().arg("run").env("BAND_API_KEY", ""), QUICK).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("BAND_API_KEY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_refuses_broken_workflows_with_their_location() {
    let sb = RunningSandbox::start("127.0.0.1:0".parse().unwrap(), default_seed())
        .await
        .unwrap();
    let dir = broken_workflows();
    let mut cmd = switchboard();
    cmd.arg("run")
        .arg("--workflows")
        .arg(dir.path())
        .args(["--api-key", "triage-key", "--rest-url"])
        .arg(sb.rest_url())
        .arg("--ws-url")
        .arg(sb.ws_url());
    let out = output_within(&mut cmd, QUICK).await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    for at in [
        format!("{}:6:36", dir.path().join("a.yaml").display()),
        format!("{}:10:9", dir.path().join("a.yaml").display()),
        format!("{}:5:5", dir.path().join("b.yaml").display()),
    ] {
        assert!(err.contains(&at), "no {at} in stderr:\n{err}");
    }
    sb.shutdown().await.unwrap();
}

/// What one `switchboard run` session against the sandbox left behind.
struct Session {
    /// Id of the message Bob sent.
    question: String,
    /// Every stderr line of the process.
    stderr: Vec<String>,
}

/// Runs the agent as a process on the shipped workflows, asks the triage bot
/// for the opening hours as Bob, waits for its answer in the room, then stops
/// the process with SIGTERM and expects exit 0.
async fn ask_opening_hours(extra_args: &[&str]) -> Session {
    let (sb, bob, room, bot) = seeded_sandbox().await;
    let mut cmd = run_command(&sb, &workflows_dir());
    cmd.args(extra_args);
    let mut agent = Running::spawn(&mut cmd);
    agent
        .wait_for_stderr("startup sync", STEP, |l| l.contains("startup sync done"))
        .await;

    let question = seeded::ask(&bob, &room, &bot, "What are your opening hours?").await;
    let answer = seeded::reply_after(&bob, &room, &bot, &question, STEP)
        .await
        .unwrap_or_else(|| {
            panic!(
                "no reply from the agent within {STEP:?}; stderr:\n{}",
                agent.stderr_lines().join("\n")
            )
        });
    assert!(
        answer.content.contains("Monday to Friday"),
        "not the opening hours: {}",
        answer.content
    );

    let stderr = agent.stop_cleanly("agent", Duration::from_secs(5)).await;
    sb.shutdown().await.unwrap();
    Session { question, stderr }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_answers_on_the_sandbox_and_stops_on_sigterm() {
    let session = ask_opening_hours(&[]).await;
    assert!(
        session.stderr.iter().all(|l| !l.contains('\x1b')),
        "no colour codes when stderr is not a terminal"
    );
    let lines: Vec<String> = session.stderr.iter().map(|l| strip_ansi(l)).collect();
    // Matched on the message id alone: the field's key is not asserted.
    let handled = lines
        .iter()
        .find(|l| l.contains("rules=") && l.contains(&session.question))
        .unwrap_or_else(|| {
            panic!(
                "no log line for message {}:\n{}",
                session.question,
                lines.join("\n")
            )
        });
    for part in [
        " INFO ",
        "handled",
        "event=message_created",
        "rules=faq/opening-hours",
        "actions=reply",
    ] {
        assert!(handled.contains(part), "`{part}` not in `{handled}`");
    }
    assert!(
        lines.last().is_some_and(|l| l.contains("agent stopped")),
        "the last line is not `agent stopped`:\n{}",
        lines.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_logs_json_lines() {
    let session = ask_opening_hours(&["--log-format", "json"]).await;
    assert!(!session.stderr.is_empty());
    let records: Vec<Value> = session
        .stderr
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {l}"));
            assert!(v.is_object(), "not a JSON object: {l}");
            v
        })
        .collect();
    let (line, handled) = session
        .stderr
        .iter()
        .zip(&records)
        .find(|(_, r)| r["event"] == "message_created" && r["rules"] == "faq/opening-hours")
        .unwrap_or_else(|| panic!("no record for the rule:\n{}", session.stderr.join("\n")));
    assert!(line.contains(&session.question), "message id not in {line}");
    assert_eq!(handled["level"], "INFO", "{handled}");
    assert_eq!(handled["actions"], "reply", "{handled}");
    // The log text and the message id live under different keys.
    assert_eq!(handled["message"], "handled", "{handled}");
    assert_eq!(
        handled["message_id"],
        session.question.as_str(),
        "{handled}"
    );
}

#[tokio::test]
async fn demo_plays_every_section() {
    let out = output_within(switchboard().arg("demo"), Duration::from_secs(60)).await;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    for rule in [
        "⚙ contacts/approve-known",
        "⚙ triage/refunds-to-billing → add_participant, reply",
        "⚙ faq/opening-hours → reply",
        "⚙ escalation/count-unanswered",
    ] {
        assert!(stdout.contains(rule), "`{rule}` not in:\n{stdout}");
    }
    // Why carol was turned away: the rule's rendered reason.
    assert!(
        stdout.contains("why: carol is not on the allowlist"),
        "no reason for carol's rejection in:\n{stdout}"
    );
    // What a "(thought)" row is, said once.
    let legend = stdout
        .lines()
        .filter(|l| l.contains("\"(thought)\"") && l.contains("notifies nobody"))
        .count();
    assert_eq!(legend, 1, "one line explains the (thought) rows:\n{stdout}");
    // A workflow edited while the agent runs: the reload is reported and the
    // same question gets the new answer.
    let edit = stdout
        .split("\n5. ")
        .nth(1)
        .unwrap_or_else(|| panic!("no step 5 in:\n{stdout}"));
    let answers: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("   Triage Bot: @bob We're open"))
        .collect();
    assert_eq!(answers.len(), 2, "the question asked twice:\n{stdout}");
    assert_ne!(answers[0], answers[1], "the answer did not change");
    assert!(
        edit.contains(answers[1]),
        "the new answer is in step 5:\n{edit}"
    );
    let reloaded = edit.find("reloaded").expect("the reload is reported");
    let asked = edit.find(answers[1]).unwrap_or_default();
    assert!(reloaded < asked, "reported before the question:\n{edit}");
    assert!(edit.contains("faq/opening-hours"), "{edit}");
    // One conversation: the bot asks back, bob's answer (mentioning the bot)
    // goes to the waiting rule, which asks carol, whose answer finishes it.
    let talk = stdout
        .split("\n6. ")
        .nth(1)
        .unwrap_or_else(|| panic!("no step 6 in:\n{stdout}"));
    let mut at = 0;
    for line in [
        "   Bob Jones: @alice/triage-bot I'd like my money back, please.",
        "     ⚙ triage/money-back-needs-approval → reply, wait_for",
        "   Triage Bot: @bob Which order number is it about?",
        "   Bob Jones: @alice/triage-bot It's order 1042.",
        "     ⚙ triage/money-back-needs-approval → ask",
        "   Triage Bot: @carol Approve a refund for order 1042 (Bob Jones)?",
        "   Carol White: @alice/triage-bot approve",
        "     ⚙ triage/money-back-needs-approval → reply",
        "   Triage Bot: @bob Your refund for order 1042 was approved.",
    ] {
        let found = talk[at..]
            .lines()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("no line `{line}` (in order) in step 6:\n{talk}"));
        at += talk[at..]
            .lines()
            .take(found + 1)
            .map(|l| l.len() + 1)
            .sum::<usize>();
    }
    let explained = talk
        .lines()
        .filter(|l| l.contains("conversation") && l.contains("mention"))
        .count();
    assert_eq!(explained, 1, "one line explains the conversation:\n{talk}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("done in ") && last.ends_with(" 0 failed"),
        "unexpected last line {last:?}"
    );
    // It edits a copy: the shipped workflow is untouched.
    let shipped = std::fs::read_to_string(workflows_dir().join("faq.yaml")).unwrap();
    assert!(shipped.contains(answers[0].trim_start_matches("   Triage Bot: @bob ")));
}

/// Bob says `text` to the triage bot; returns the bot's text replies after it.
async fn bot_replies(bob: &HumanApi, room: &str, bot: &str, text: &str) -> Vec<String> {
    let mention = [Mention {
        id: Some(bot.to_owned()),
        ..Mention::default()
    }];
    let id = bob.send_message(room, text, &mention).await.unwrap().id;
    let query = HumanMessageQuery {
        after: Some(id),
        limit: Some(100),
        ..HumanMessageQuery::default()
    };
    // Every rule here answers, so wait for the first reply.
    tokio::time::timeout(STEP, async {
        loop {
            let replies: Vec<String> = bob
                .list_messages(room, &query)
                .await
                .unwrap()
                .items
                .into_iter()
                .filter(|m| m.sender_id == bot && m.message_type == "text")
                .map(|m| m.content)
                .collect();
            if !replies.is_empty() {
                return replies;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the agent answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_a_run_with_no_watch() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ping.yaml");
    let rule = |answer: &str| {
        format!("version: 1\nrules:\n  - name: ping\n    on: message_created\n    do:\n      - reply: \"{answer}\"\n")
    };
    std::fs::write(&file, rule("before")).unwrap();
    let (sb, bob, room, bot) = seeded_sandbox().await;
    let mut cmd = run_command(&sb, dir.path());
    cmd.arg("--no-watch");
    let mut agent = Running::spawn(&mut cmd);
    agent
        .wait_for_stderr("startup sync", STEP, |l| l.contains("startup sync done"))
        .await;
    assert_eq!(bot_replies(&bob, &room, &bot, "one").await.len(), 1);

    std::fs::write(&file, rule("after")).unwrap();
    let replies = bot_replies(&bob, &room, &bot, "two").await;
    assert!(
        replies.iter().all(|r| r.contains("before")),
        "--no-watch did not reload: {replies:?}"
    );

    agent.signal("HUP");
    agent
        .wait_for_stderr("the reload", STEP, |l| l.contains("workflows reloaded"))
        .await;
    let replies = bot_replies(&bob, &room, &bot, "three").await;
    assert!(replies.iter().any(|r| r.contains("after")), "{replies:?}");

    agent.stop_cleanly("agent", Duration::from_secs(5)).await;
    sb.shutdown().await.unwrap();
}

/// SIGHUP reloads from the configured path and watches it afresh: when a
/// deploy swaps a `current` link above the workflows folder (too far up for
/// the watch to see), SIGHUP loads the new release and later edits in it
/// are picked up.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_from_the_configured_path_and_watches_it_afresh() {
    use std::os::unix::fs::symlink;
    let rule = |answer: &str| {
        format!("version: 1\nrules:\n  - name: ping\n    on: message_created\n    do:\n      - reply: \"{answer}\"\n")
    };
    let dir = tempfile::tempdir().unwrap();
    for (release, answer) in [("release-1", "before"), ("release-2", "after")] {
        let workflows = dir.path().join(release).join("workflows");
        std::fs::create_dir_all(&workflows).unwrap();
        std::fs::write(workflows.join("ping.yaml"), rule(answer)).unwrap();
    }
    let current = dir.path().join("current");
    symlink("release-1", &current).unwrap();
    let (sb, bob, room, bot) = seeded_sandbox().await;
    let mut agent = Running::spawn(&mut run_command(&sb, &current.join("workflows")));
    agent
        .wait_for_stderr("startup sync", STEP, |l| l.contains("startup sync done"))
        .await;
    let replies = bot_replies(&bob, &room, &bot, "one").await;
    assert!(replies.iter().all(|r| r.contains("before")), "{replies:?}");

    let next = dir.path().join("current.next");
    symlink("release-2", &next).unwrap();
    std::fs::rename(&next, &current).unwrap();
    agent.signal("HUP");
    agent
        .wait_for_stderr("the reload", STEP, |l| l.contains("workflows reloaded"))
        .await;
    let replies = bot_replies(&bob, &room, &bot, "two").await;
    assert!(replies.iter().any(|r| r.contains("after")), "{replies:?}");

    // An edit in the new release, saved atomically, reloads on its own.
    let file = dir.path().join("release-2/workflows/ping.yaml");
    let tmp = file.with_extension("yaml.swp");
    std::fs::write(&tmp, rule("edited")).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    let reloads = || {
        agent
            .stderr_lines()
            .iter()
            .filter(|l| l.contains("workflows reloaded"))
            .count()
    };
    tokio::time::timeout(STEP, async {
        while reloads() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the edit after SIGHUP was not reloaded; stderr:\n{}",
            agent.stderr_lines().join("\n")
        )
    });
    let replies = bot_replies(&bob, &room, &bot, "three").await;
    assert!(replies.iter().any(|r| r.contains("edited")), "{replies:?}");

    agent.stop_cleanly("agent", Duration::from_secs(5)).await;
    sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_records_and_explains_and_replay_reads_the_recording() {
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("events.jsonl");
    let session = ask_opening_hours(&["--explain", "--record", recording.to_str().unwrap()]).await;
    let lines: Vec<String> = session.stderr.iter().map(|l| strip_ansi(l)).collect();
    let logs = lines.join("\n");
    // The trace of the question: the matching rule with what its regex saw.
    let at = lines
        .iter()
        .position(|l| l.contains("explain") && l.contains(&session.question))
        .unwrap_or_else(|| panic!("no explain line for the question:\n{logs}"));
    let trace = lines[at + 1..].join("\n");
    assert!(trace.contains("  ✓ faq/opening-hours: matched"), "{trace}");
    assert!(
        trace.contains(" What are your opening hours?\")"),
        "{trace}"
    );
    assert!(trace.contains("→ reply {\"text\":\"We're open"), "{trace}");

    // The recording has the question with its room and our identity.
    let recorded = std::fs::read_to_string(&recording).unwrap();
    let events: Vec<Value> = recorded
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let question = events
        .iter()
        .find(|e| e["type"] == "message_created" && e["payload"]["id"] == session.question.as_str())
        .unwrap_or_else(|| panic!("the question was not recorded:\n{recorded}"));
    assert_eq!(question["chat"]["title"], "Support", "{question}");
    assert_eq!(
        question["agent"]["handle"], "alice/triage-bot",
        "{question}"
    );
    assert!(question["now"].is_string(), "{question}");

    // Replayed on the shipped workflows: the same rule and action, nothing sent.
    let out = output_within(
        switchboard()
            .args(["replay", "--events"])
            .arg(&recording)
            .arg(workflows_dir()),
        QUICK,
    )
    .await;
    let replayed = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{replayed}");
    assert!(
        replayed
            .lines()
            .any(|l| l.contains(&format!("message={}", session.question))
                && l.contains("rules=faq/opening-hours actions=reply")),
        "{replayed}"
    );
    // Replayed without the FAQ: the escalation counter would have taken it.
    let changed = tempfile::tempdir().unwrap();
    for name in ["contacts.yaml", "triage.yaml", "escalation.yaml"] {
        std::fs::copy(workflows_dir().join(name), changed.path().join(name)).unwrap();
    }
    let out = output_within(
        switchboard()
            .args(["replay", "--events"])
            .arg(&recording)
            .arg(changed.path()),
        QUICK,
    )
    .await;
    let replayed = text(&out.stdout);
    assert!(
        replayed
            .lines()
            .any(|l| l.contains(&format!("message={}", session.question))
                && l.contains("rules=escalation/count-unanswered actions=incr,post_event")),
        "{replayed}"
    );
}

/// How many times `needle` occurs in `haystack`.
fn occurrences(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_is_reported_once() {
    let sb = RunningSandbox::start("127.0.0.1:0".parse().unwrap(), default_seed())
        .await
        .unwrap();
    let mut cmd = switchboard();
    cmd.arg("run")
        .arg("--workflows")
        .arg(workflows_dir())
        .args(["--ephemeral", "--api-key", "not-a-key", "--rest-url"])
        .arg(sb.rest_url())
        .arg("--ws-url")
        .arg(sb.ws_url());
    let out = output_within(&mut cmd, QUICK).await;
    assert_eq!(out.status.code(), Some(1));
    let err = strip_ansi(&text(&out.stderr));
    let last = err.lines().last().unwrap_or_default();
    assert!(last.contains("HTTP 401"), "stderr:\n{err}");
    assert_eq!(occurrences(last, "HTTP 401"), 1, "stderr:\n{err}");
    assert_eq!(occurrences(last, "/api/v1/agent/me"), 1, "stderr:\n{err}");
    sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_state_file_is_reported_once() {
    let sb = RunningSandbox::start("127.0.0.1:0".parse().unwrap(), default_seed())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    std::fs::write(&state, "{ this is not json").unwrap();
    let mut cmd = run_command(&sb, &workflows_dir());
    cmd.arg("--state-file").arg(&state);
    let out = output_within(&mut cmd, QUICK).await;
    assert_eq!(out.status.code(), Some(1));
    let err = strip_ansi(&text(&out.stderr));
    let last = err.lines().last().unwrap_or_default();
    assert!(last.contains("is not valid"), "stderr:\n{err}");
    assert_eq!(
        occurrences(last, "key must be a string"),
        1,
        "stderr:\n{err}"
    );
    sb.shutdown().await.unwrap();
}

/// At the default log level, a rejected contact request is logged with who
/// asked (handle and request id) and the rule's rendered reason, with no
/// `log` action in the workflow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_contact_is_logged_with_who_and_why() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("contacts.yaml"),
        "version: 1\nrules:\n  - name: reject-all\n    on: contact_request_received\n    do:\n      \
         - reject_contact: { reason: \"{{ event.from_handle }} is not on the list\" }\n",
    )
    .unwrap();
    let (sb, _bob, _room, _bot) = seeded_sandbox().await;
    let mut agent = Running::spawn(&mut run_command(&sb, dir.path()));
    agent
        .wait_for_stderr("startup sync", STEP, |l| l.contains("startup sync done"))
        .await;
    let carol = HumanApi::new(band_client::rest::RestConfig::new(
        sb.rest_url(),
        "carol-key",
    ))
    .unwrap();
    let request = carol
        .send_contact_request("alice/triage-bot", Some("Let's connect!"))
        .await
        .unwrap()
        .id;
    let line = agent
        .wait_for_stderr("the rejection's log line", STEP, |l| {
            l.contains("reject") && l.contains("is not on the list")
        })
        .await;
    let line = strip_ansi(&line);
    assert!(line.contains(" INFO "), "{line}");
    assert!(line.contains("carol"), "who was rejected: {line}");
    assert!(
        line.contains("carol is not on the list"),
        "the rendered reason: {line}"
    );
    assert!(line.contains(&request), "the request's id: {line}");
    agent.stop_cleanly("agent", Duration::from_secs(5)).await;
    sb.shutdown().await.unwrap();
}
