//! Engine figures: match + render of one message against 10 … 10,000 rules
//! of realistic shape (mixed event types, regex and substring conditions,
//! templated replies), with nothing sent. Two events per size: one that a
//! rule near the end answers, one that no rule matches (every condition of
//! every `message_created` rule is checked).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use serde_json::{json, Value};
use switchboard::bench::world::filler;
use switchboard_engine::action::{ActionFuture, Executor, RenderedAction, Scope};
use switchboard_engine::{Engine, EventInput, StateStore};
use switchboard_workflow::load_sources;

/// Performs nothing and keeps nothing (a recorder would grow per iteration).
struct Discard;

impl Executor for Discard {
    fn execute<'a>(&'a self, _: &'a RenderedAction, _: &'a Scope) -> ActionFuture<'a> {
        Box::pin(async { Ok(Value::Null) })
    }

    fn landed<'a>(
        &'a self,
        _: &'a RenderedAction,
        _: &'a Scope,
    ) -> switchboard_engine::action::LandedFuture<'a> {
        Box::pin(async { Ok(None) })
    }
}

/// `n` rules in files of at most 1,000 (a file's YAML node budget is 200,000).
fn ruleset(n: usize) -> switchboard_workflow::Ruleset {
    let files: Vec<(String, String)> = (0..n.div_ceil(1_000))
        .map(|f| {
            let range = f * 1_000..((f + 1) * 1_000).min(n);
            (format!("bench{f:02}.yaml"), filler(range))
        })
        .collect();
    let named: Vec<(&std::path::Path, &str)> = files
        .iter()
        .map(|(p, t)| (std::path::Path::new(p.as_str()), t.as_str()))
        .collect();
    load_sources(&named).unwrap()
}

fn message(content: &str) -> EventInput {
    EventInput {
        event_type: "message_created".into(),
        event: Arc::new(json!({
            "id": "m1", "chat_room_id": "r1", "content": content,
            "sender_id": "u1", "sender_type": "User", "sender_name": "Ann",
            "message_type": "text", "metadata": {"mentions": [{"id": "a1"}]},
        })),
        agent: Arc::new(json!({"id": "a1", "name": "Bot", "handle": "acme/bot"})),
        chat: Some(Arc::new(
            json!({"id": "r1", "title": "Support", "participants": []}),
        )),
        sender: Some(Arc::new(json!({"id": "u1", "type": "User", "name": "Ann"}))),
        now: chrono::Utc::now(),
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let scope = Scope {
        chat_id: Some("r1".into()),
        message_id: Some("m1".into()),
        ..Scope::default()
    };
    let mut group = c.benchmark_group("engine/handle");
    for n in [10usize, 100, 1_000, 10_000] {
        let ruleset = Arc::new(ruleset(n));
        let engine = Engine::new(ruleset, Arc::new(StateStore::in_memory()));
        // A `message_created` rule near the end (index ≡ 0 mod 10 is one).
        let last = (n - 1) / 10 * 10;
        let hit = message(&format!("@acme/bot about word{last} please"));
        let miss = message("@acme/bot nothing any rule knows about");
        // Sanity: the hit matches exactly one rule, the miss none.
        let report = runtime.block_on(engine.handle(&hit, &scope, &Discard));
        assert_eq!(
            report.matched,
            vec![format!("bench{:02}/rule-{last}", last / 1_000)]
        );
        let report = runtime.block_on(engine.handle(&miss, &scope, &Discard));
        assert!(report.matched.is_empty());
        group.bench_with_input(BenchmarkId::new("one match", n), &n, |b, _| {
            b.iter(|| runtime.block_on(engine.handle(&hit, &scope, &Discard)))
        });
        group.bench_with_input(BenchmarkId::new("no match", n), &n, |b, _| {
            b.iter(|| runtime.block_on(engine.handle(&miss, &scope, &Discard)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
