//! Hot-reload figures: compiling a 1,000-rule folder and swapping it in, and
//! save-to-effective latency (a file written → the next matching event uses
//! the new rule), through the real watcher, debounce and engine. No network.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use switchboard::rules::reload;
use switchboard_engine::action::{RenderedAction, Scope};
use switchboard_engine::{Engine, EventInput, RecordingExecutor, StateStore};
use switchboard_workflow::{load_dir, Ruleset};

/// `n` rules of realistic shape across 10 files; `tag` makes every pattern
/// and text new (a cold load).
fn write_rules(dir: &Path, n: usize, tag: &str) {
    for f in 0..10 {
        write_file(dir, f, n, tag);
    }
}

fn write_file(dir: &Path, f: usize, n: usize, tag: &str) {
    let mut text = String::from("version: 1\nvars: { team: [ann, bob, carol] }\nrules:\n");
    for i in (f..n).step_by(10) {
        text.push_str(&format!(
                "  - name: rule-{i}\n    on: [message_created, contact_request_received]\n    if:\n      - event.content: {{ matches: '(?i)\\bword{i}{tag}\\b' }}\n      - event.sender_name: {{ in: {{ var: team }} }}\n    do:\n      - reply: \"Hi {{{{ event.sender_name }}}}, rule {i} here.\"\n    throttle: {{ key: \"{{{{ event.chat_room_id }}}}\", max: 3, per: 1m }}\n"
            ));
    }
    std::fs::write(dir.join(format!("f{f}.yaml")), text).unwrap();
}

fn ping(answer: &str) -> String {
    format!("version: 1\nrules:\n  - name: ping\n    on: message_created\n    do:\n      - reply: \"{answer}\"\n")
}

fn event() -> EventInput {
    EventInput {
        event_type: "message_created".into(),
        event: Arc::new(
            json!({"id": "m1", "content": "ping", "sender_type": "User", "sender_id": "u1", "sender_name": "ann", "chat_room_id": "r1"}),
        ),
        agent: Arc::new(json!({"id": "a1"})),
        chat: None,
        sender: None,
        now: chrono::Utc::now(),
    }
}

fn reload_1000(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    write_rules(dir.path(), 1000, "");
    assert_eq!(load_dir(dir.path()).unwrap().len(), 1000);
    let engine = Engine::new(
        Arc::new(Ruleset::empty()),
        Arc::new(StateStore::in_memory()),
    );
    let secrets = reload::plain_secrets();
    let mut group = c.benchmark_group("reload 1000 rules in 10 files");
    group.sample_size(20);
    let mut n = 0u64;
    // SIGHUP with nothing changed: every file and pattern seen before.
    group.bench_function("nothing changed", |b| {
        b.iter(|| reload::reload(&engine, dir.path(), &secrets))
    });
    // The usual reload: one file rewritten (its 100 patterns new), nine unchanged.
    group.bench_function("one file edited", |b| {
        b.iter(|| {
            n += 1;
            write_file(dir.path(), 0, 1000, &format!("e{n}"));
            reload::reload(&engine, dir.path(), &secrets)
        })
    });
    // The first load: every file and pattern new.
    group.bench_function("cold (all new)", |b| {
        b.iter(|| {
            n += 1;
            write_rules(dir.path(), 1000, &format!("c{n}"));
            reload::reload(&engine, dir.path(), &secrets)
        })
    });
    group.finish();
}

fn save_to_effective(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ping.yaml");
    std::fs::write(&file, ping("v0")).unwrap();
    let engine = Arc::new(Engine::new(
        Arc::new(load_dir(dir.path()).unwrap()),
        Arc::new(StateStore::in_memory()),
    ));
    // spawn needs a runtime context; the task keeps running on `rt`.
    let _context = rt.enter();
    let _task = reload::spawn(
        engine.clone(),
        dir.path().to_owned(),
        true,
        Vec::new(),
        Box::new(|| {}),
        None,
        reload::plain_secrets(),
    )
    .unwrap();
    let mut group = c.benchmark_group("hot reload");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    let mut version = 0u64;
    group.bench_function("save to effective (debounce included)", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    version += 1;
                    let wanted = format!("v{version}");
                    let started = Instant::now();
                    std::fs::write(&file, ping(&wanted)).unwrap();
                    loop {
                        let ex = RecordingExecutor::new();
                        engine.handle(&event(), &Scope::default(), &ex).await;
                        let now = ex.actions().into_iter().any(
                            |a| matches!(a, RenderedAction::Reply(reply) if reply.text == wanted),
                        );
                        if now {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        assert!(
                            started.elapsed() < Duration::from_secs(5),
                            "reload never took effect"
                        );
                    }
                    total += started.elapsed();
                }
                total
            })
        })
    });
    group.finish();
}

criterion_group!(benches, reload_1000, save_to_effective);
criterion_main!(benches);
