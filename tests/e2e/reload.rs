//! Hot reload against the sandbox: an edited rule answers the next message,
//! a broken save changes nothing (and says why), a deleted file's rules stop,
//! and SIGHUP reloads a running `switchboard run --no-watch`; the watch
//! follows the configured path when the folder is replaced (renamed away and
//! recreated, removed and recreated, a `current` symlink swapped), and an
//! `every:` schedule keeps its phase across reloads of other files.

use crate::support::harness;

use std::path::Path;
use std::time::Duration;

use harness::{Harness, WAIT};
use switchboard::rules::reload::{ReloadOutcome, ReloadReport};
use switchboard_engine::Finish;

fn ping_rule(answer: &str) -> String {
    format!(
        "version: 1\nrules:\n  - name: ping\n    on: message_created\n    if: [ {{ event.content: {{ contains: ping }} }} ]\n    do:\n      - reply: \"{answer}\"\n"
    )
}

/// Writes like an editor that saves atomically: a temp file renamed over the target.
fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("yaml.swp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn next_reload(h: &mut Harness) -> ReloadReport {
    tokio::time::timeout(WAIT, h.reloads.recv())
        .await
        .expect("a reload within the time limit")
        .expect("the agent is running")
}

async fn reply_to_ping(h: &mut Harness) -> Vec<String> {
    let (id, report) = h.bob_says("ping").await;
    assert_eq!(report.report.outcome, Finish::Done);
    assert_eq!(h.settled_status(&id).await, "processed");
    h.bot_messages_after(&id)
        .await
        .into_iter()
        .map(|m| m.content)
        .collect()
}

fn contains(texts: &[String], needle: &str) -> bool {
    texts.iter().any(|t| t.contains(needle))
}

#[tokio::test]
async fn edits_take_effect_broken_saves_change_nothing_and_deletes_remove_rules() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("w.yaml");
    std::fs::write(&file, ping_rule("pong v1")).unwrap();
    let mut h = Harness::start_full(dir.path().to_owned(), Vec::new(), true).await;
    assert!(contains(&reply_to_ping(&mut h).await, "pong v1"));

    // An edit: the next message gets the new reply.
    save(&file, &ping_rule("pong v2"));
    match next_reload(&mut h).await.outcome {
        ReloadOutcome::Reloaded {
            changed,
            added,
            removed,
            ..
        } => {
            assert_eq!(changed, ["w/ping"]);
            assert!(added.is_empty() && removed.is_empty());
        }
        other => panic!("expected a reload, got {other:?}"),
    }
    assert!(contains(&reply_to_ping(&mut h).await, "pong v2"));

    // A broken save: reported with its position, the old rule keeps answering.
    save(&file, &ping_rule("pong v3").replace("reply:", "rpely:"));
    match next_reload(&mut h).await.outcome {
        ReloadOutcome::Failed { errors } => {
            let text = errors.to_string();
            assert!(
                text.contains("w.yaml:7:9") && text.contains("did you mean `reply`?"),
                "{text}"
            );
        }
        other => panic!("expected a failed reload, got {other:?}"),
    }
    assert!(contains(&reply_to_ping(&mut h).await, "pong v2"));

    // The next good save recovers; a new file adds its rules.
    save(&file, &ping_rule("pong v4"));
    std::fs::write(
        dir.path().join("extra.yaml"),
        ping_rule("extra").replace("name: ping", "name: also"),
    )
    .unwrap();
    let mut seen_extra = false;
    while !seen_extra {
        if let ReloadOutcome::Reloaded { added, .. } = next_reload(&mut h).await.outcome {
            seen_extra = added.contains(&"extra/also".to_string());
        }
    }
    let replies = reply_to_ping(&mut h).await;
    assert!(
        contains(&replies, "pong v4") && contains(&replies, "extra"),
        "{replies:?}"
    );

    // Deleting files removes their rules: no reply, message still processed.
    std::fs::remove_file(dir.path().join("extra.yaml")).unwrap();
    std::fs::remove_file(&file).unwrap();
    loop {
        if let ReloadOutcome::Reloaded { rules: 0, .. } = next_reload(&mut h).await.outcome {
            break;
        }
    }
    assert!(reply_to_ping(&mut h).await.is_empty());
    h.stop().await;
}

#[tokio::test]
async fn state_survives_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("count.yaml");
    let rule = |word: &str| {
        format!("version: 1\nrules:\n  - name: count\n    on: message_created\n    do:\n      - incr: n\n        as: n\n      - reply: \"{word} {{{{ n }}}}\"\n")
    };
    std::fs::write(&file, rule("count")).unwrap();
    let mut h = Harness::start_full(dir.path().to_owned(), Vec::new(), true).await;
    assert!(contains(&reply_to_ping(&mut h).await, "count 1"));
    save(&file, &rule("total"));
    assert!(matches!(
        next_reload(&mut h).await.outcome,
        ReloadOutcome::Reloaded { .. }
    ));
    assert!(contains(&reply_to_ping(&mut h).await, "total 2"));
    h.stop().await;
}

#[tokio::test]
async fn a_burst_of_writes_gives_one_reload() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("w.yaml");
    std::fs::write(&file, ping_rule("one")).unwrap();
    let mut h = Harness::start_full(dir.path().to_owned(), Vec::new(), true).await;
    for i in 0..5 {
        save(&file, &ping_rule(&format!("burst {i}")));
    }
    assert!(matches!(
        next_reload(&mut h).await.outcome,
        ReloadOutcome::Reloaded { .. }
    ));
    // Nothing else is queued once the burst has settled.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        h.reloads.try_recv().is_err(),
        "more than one reload for one burst"
    );
    assert!(contains(&reply_to_ping(&mut h).await, "burst 4"));
    h.stop().await;
}

/// Waits for a successful reload that changed `id` (reloads of a folder
/// half-way through being replaced may come first and fail).
async fn reload_changing(h: &mut Harness, id: &str) {
    loop {
        if let ReloadOutcome::Reloaded { changed, .. } = next_reload(h).await.outcome {
            if changed.iter().any(|c| c == id) {
                return;
            }
        }
    }
}

/// After `replace` has put a folder with `pong v2` at the watched path, the
/// agent answers from it, and a later edit in it (at `edit`) is picked up too.
async fn follows_a_replaced_folder(watched: &Path, replace: impl FnOnce(), edit: &Path) {
    let mut h = Harness::start_full(watched.to_owned(), Vec::new(), true).await;
    assert!(contains(&reply_to_ping(&mut h).await, "pong v1"));
    replace();
    reload_changing(&mut h, "w/ping").await;
    assert!(contains(&reply_to_ping(&mut h).await, "pong v2"));
    save(edit, &ping_rule("pong v3"));
    reload_changing(&mut h, "w/ping").await;
    assert!(contains(&reply_to_ping(&mut h).await, "pong v3"));
    h.stop().await;
}

#[tokio::test]
async fn the_watch_follows_a_folder_renamed_away_and_recreated() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("workflows");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("w.yaml"), ping_rule("pong v1")).unwrap();
    let replace = || {
        std::fs::rename(&dir, parent.path().join("workflows.old")).unwrap();
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("w.yaml"), ping_rule("pong v2")).unwrap();
    };
    follows_a_replaced_folder(&dir, replace, &dir.join("w.yaml")).await;
}

#[tokio::test]
async fn the_watch_follows_a_folder_removed_and_recreated() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("workflows");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("w.yaml"), ping_rule("pong v1")).unwrap();
    let replace = || {
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("w.yaml"), ping_rule("pong v2")).unwrap();
    };
    follows_a_replaced_folder(&dir, replace, &dir.join("w.yaml")).await;
}

#[cfg(unix)]
#[tokio::test]
async fn the_watch_follows_a_swapped_current_symlink() {
    use std::os::unix::fs::symlink;
    let parent = tempfile::tempdir().unwrap();
    for (release, answer) in [("release-1", "pong v1"), ("release-2", "pong v2")] {
        std::fs::create_dir(parent.path().join(release)).unwrap();
        std::fs::write(
            parent.path().join(release).join("w.yaml"),
            ping_rule(answer),
        )
        .unwrap();
    }
    let current = parent.path().join("current");
    symlink("release-1", &current).unwrap();
    // As deploy tools do it: a new link renamed over the old one (atomic).
    let replace = || {
        let next = parent.path().join("current.next");
        symlink("release-2", &next).unwrap();
        std::fs::rename(&next, &current).unwrap();
    };
    let edit = parent.path().join("release-2/w.yaml");
    follows_a_replaced_folder(&current, replace, &edit).await;
}

#[tokio::test]
async fn an_every_schedule_keeps_its_phase_across_reloads_of_other_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tick.yaml"),
        "version: 1\nrules:\n  - name: tick\n    on: schedule\n    every: 2s\n    do:\n      - incr: ticks\n",
    )
    .unwrap();
    let other = dir.path().join("other.yaml");
    std::fs::write(&other, ping_rule("pong 0")).unwrap();
    let mut h = Harness::start_full(dir.path().to_owned(), Vec::new(), true).await;
    // An edit of another file every 0.5 s for 5 s: a timer restarted by each
    // reload would never reach its 2 s; one that keeps its phase fires twice.
    for i in 1..=10 {
        save(&other, &ping_rule(&format!("pong {i}")));
        reload_changing(&mut h, "other/ping").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut ticks = 0;
    while let Ok(handled) = h.handled.try_recv() {
        ticks += usize::from(handled.event_type == "schedule");
    }
    assert!(
        ticks >= 2,
        "the 2 s schedule ran {ticks} times in 5 s of reloads"
    );
    h.stop().await;
}

#[tokio::test]
async fn saving_a_library_reloads_the_workflows_that_include_it() {
    let dir = tempfile::tempdir().unwrap();
    let lib = |answer: &str| {
        format!("version: 1\nkind: library\nactions:\n  answer:\n    - reply: \"{answer} to {{{{ args.who }}}}\"\n")
    };
    std::fs::create_dir(dir.path().join("common")).unwrap();
    let library = dir.path().join("common/answers.yaml");
    std::fs::write(&library, lib("pong v1")).unwrap();
    let main = "version: 1\ninclude: [common/answers.yaml]\nrules:\n  - name: ping\n    on: message_created\n    if: [ { event.content: { contains: ping } } ]\n    do:\n      - call: answer\n        with: { who: \"{{ sender.name }}\" }\n";
    std::fs::write(dir.path().join("main.yaml"), main).unwrap();
    let mut h = Harness::start_full(dir.path().to_owned(), Vec::new(), true).await;
    let replies = reply_to_ping(&mut h).await;
    assert!(contains(&replies, "pong v1 to "), "{replies:?}");

    // Only the library changes; the rule that calls it is the one changed.
    save(&library, &lib("pong v2"));
    match next_reload(&mut h).await.outcome {
        ReloadOutcome::Reloaded { changed, .. } => assert_eq!(changed, ["main/ping"]),
        other => panic!("expected a reload, got {other:?}"),
    }
    let replies = reply_to_ping(&mut h).await;
    assert!(contains(&replies, "pong v2 to "), "{replies:?}");

    // A broken library: the error is in the library, the old rules answer.
    save(&library, &lib("pong v3").replace("reply:", "rpely:"));
    match next_reload(&mut h).await.outcome {
        ReloadOutcome::Failed { errors } => {
            let text = errors.to_string();
            let at = format!("{}:5:7", library.display());
            assert!(text.contains(&at), "{text}");
        }
        other => panic!("expected a failed reload, got {other:?}"),
    }
    assert!(contains(&reply_to_ping(&mut h).await, "pong v2 to "));
    h.stop().await;
}
