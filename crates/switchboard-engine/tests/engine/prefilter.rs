//! The literal prefilter never changes what happens: for thousands of
//! generated messages (ASCII and Unicode, any case), an engine that
//! evaluates only the prefilter's candidates matches, falls to `else` and
//! replies exactly like one that evaluates every rule — and evaluates fewer.

use std::sync::Arc;

use crate::replies::replies;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use switchboard_engine::action::Scope;
use switchboard_engine::{Engine, EventInput, RecordingExecutor, StateStore};
use switchboard_workflow::load_str;

const RULES: &str = r#"version: 1
vars: { words: [apple, "Banana split"] }
rules:
  - { name: word, on: message_created, if: [ { event.content: { matches: '(?i)\bword\d\b' } } ], do: [ { reply: "word" } ] }
  - { name: order, on: message_created, if: [ { event.content: { matches: 'order (?P<n>\d+)' } } ], do: [ { reply: "order {{ match.n }}" } ] }
  - { name: help, on: message_created, if: [ { event.content: { matches: '^\s*help' } } ], do: [ { reply: "help" } ] }
  - { name: refund, on: message_created, if: [ { event.content: { matches: 'refund|money back' } } ], do: [ { reply: "refund" } ] }
  - { name: kelvin, on: message_created, if: [ { event.content: { matches: '(?i)kelvin' } } ], do: [ { reply: "kelvin" } ] }
  - { name: stop, on: message_created, if: [ { event.content: { matches: 'stop', case: insensitive } } ], do: [ { reply: "stop" } ] }
  - { name: strasse, on: message_created, if: [ { event.content: { matches: '(?i)straße' } } ], do: [ { reply: "strasse" } ] }
  - { name: digits, on: message_created, if: [ { event.content: { matches: '\d{3}' } } ], do: [ { reply: "digits" } ] }
  - { name: any-word, on: message_created, if: [ { event.content: { matches: '\w+' } } ], do: [ { reply: "any" } ] }
  - { name: phrase, on: message_created, if: [ { event.content: { contains: "Phrase one", case: insensitive } } ], do: [ { reply: "phrase" } ] }
  - { name: ete, on: message_created, if: [ { event.content: { contains: "ÉTÉ", case: insensitive } } ], do: [ { reply: "ete" } ] }
  - { name: dotted-i, on: message_created, if: [ { event.content: { contains: "i̇x", case: insensitive } } ], do: [ { reply: "dotted" } ] }
  - { name: exact, on: message_created, if: [ { event.content: { contains: "Exact" } } ], do: [ { reply: "exact" } ] }
  - { name: equals, on: message_created, if: [ { event.content: { equals: "ping", case: insensitive } } ], do: [ { reply: "pong" } ] }
  - { name: starts, on: message_created, if: [ { event.content: { starts_with: "Hey" } } ], do: [ { reply: "starts" } ] }
  - { name: ends, on: message_created, if: [ { event.content: { ends_with: "thanks", case: insensitive } } ], do: [ { reply: "ends" } ] }
  - { name: in-list, on: message_created, if: [ { event.content: { in: [yes, no, maybe] } } ], do: [ { reply: "in" } ] }
  - { name: in-vars, on: message_created, if: [ { event.content: { contains: "apple" } }, { sender.name: { in: { var: words } } } ], do: [ { reply: "vars" } ] }
  - { name: sender, on: message_created, if: [ { sender.name: { equals: Ann } }, { event.content: { contains: "word1" } } ], do: [ { reply: "ann" } ] }
  - { name: tags, on: message_created, if: [ { event.metadata.tags: { contains: urgent } } ], do: [ { reply: "tags" } ] }
  - name: either
    on: message_created
    if: [ { any: [ { event.content: { contains: banana } }, { event.content: { matches: 'cherr(y|ies)' } } ] } ]
    do: [ { reply: "either" } ]
  - name: mixed-any
    on: message_created
    if: [ { any: [ { event.content: { contains: grape } }, { sender.name: { equals: Bob } } ] } ]
    do: [ { reply: "mixed" } ]
  - name: negated
    on: message_created
    if: [ { not: { event.content: { contains: word } } }, { event.content: { contains: "x" } } ]
    do: [ { reply: "negated" } ]
  - name: otherwise
    on: message_created
    if: [ { event.content: { contains: "never-said" } } ]
    do: [ { reply: "never" } ]
    else: [ { reply: "else" } ]
  - { name: number, on: message_created, if: [ { event.sequence: { matches: '^4\d' } } ], do: [ { reply: "number" } ] }
  - { name: template, on: message_created, if: [ "{{ 'kiwi' in event.content }}" ], do: [ { reply: "kiwi" } ] }
"#;

/// Words the rules look for, in forms that test case and Unicode folding.
const TOKENS: &[&str] = &[
    "word1",
    "WORD7",
    "words",
    "order 42",
    "help",
    "  help",
    "refund",
    "money back",
    "kelvin",
    "\u{212A}elvin",
    "ſtop",
    "STOP",
    "straße",
    "STRAẞE",
    "STRASSE",
    "123",
    "Phrase ONE",
    "été",
    "ÉTÉ",
    "Été",
    "İx",
    "Exact",
    "exact",
    "ping",
    "Hey",
    "THANKS",
    "yes",
    "apple",
    "banana",
    "cherries",
    "grape",
    "x",
    "kiwi",
    "…",
    "日本",
];

fn engines() -> (Engine, Engine) {
    let ruleset = Arc::new(load_str("p.yaml", RULES).unwrap_or_else(|e| panic!("{e}")));
    let fast = Engine::new(ruleset.clone(), Arc::new(StateStore::in_memory()));
    let full = Engine::new(ruleset, Arc::new(StateStore::in_memory())).tracing_every_rule();
    (fast, full)
}

fn message(rng: &mut StdRng) -> EventInput {
    let n = rng.random_range(0..5);
    let words: Vec<String> = (0..n)
        .map(|_| {
            let t = TOKENS[rng.random_range(0..TOKENS.len())];
            match rng.random_range(0..4) {
                0 => t.to_uppercase(),
                1 => t.to_lowercase(),
                _ => t.to_owned(),
            }
        })
        .collect();
    let content = words.join(if rng.random_bool(0.5) { " " } else { "" });
    let sender = ["Ann", "Bob", "apple", "Banana split", "Zoë"][rng.random_range(0..5)];
    let tags = match rng.random_range(0..3) {
        0 => json!(["urgent"]),
        1 => json!("urgent-ish"),
        _ => json!(null),
    };
    EventInput {
        event_type: "message_created".into(),
        event: Arc::new(
            json!({"id": "m1", "content": content, "sender_type": "User",
                      "sequence": rng.random_range(0..100), "metadata": {"tags": tags}}),
        ),
        agent: Arc::new(json!({"id": "a1", "handle": "acme/bot", "name": "Bot"})),
        chat: Some(Arc::new(
            json!({"id": "r1", "title": "Support", "participants": []}),
        )),
        sender: Some(Arc::new(
            json!({"id": "u1", "type": "User", "name": sender}),
        )),
        now: chrono::Utc::now(),
    }
}

#[tokio::test]
async fn candidates_only_never_changes_the_outcome() {
    let (fast, full) = engines();
    let seed: u64 = std::env::var("PREFILTER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut evaluated_fast, mut evaluated_full, mut matched) = (0, 0, 0);
    for _ in 0..3_000 {
        let input = message(&mut rng);
        let (a, b) = (RecordingExecutor::new(), RecordingExecutor::new());
        let fast_report = fast.handle(&input, &Scope::default(), &a).await;
        let full_report = full.handle(&input, &Scope::default(), &b).await;
        let content = &input.event["content"];
        assert_eq!(fast_report.matched, full_report.matched, "{content}");
        assert_eq!(fast_report.else_ran, full_report.else_ran, "{content}");
        assert_eq!(replies(&a.actions()), replies(&b.actions()), "{content}");
        evaluated_fast += fast_report.trace.len();
        evaluated_full += full_report.trace.len();
        matched += fast_report.matched.len();
    }
    // The filter did something, and the messages exercised the rules.
    assert!(
        evaluated_fast * 2 < evaluated_full,
        "evaluated {evaluated_fast} with the filter vs {evaluated_full}"
    );
    assert!(matched > 3_000, "only {matched} matches in 3,000 messages");
}

#[test]
fn rules_without_a_required_literal_are_not_indexed() {
    let (fast, _) = engines();
    let ruleset = fast.ruleset();
    let indexed = ruleset.prefilter().indexed("message_created");
    // Not indexed: any-word (`\w+` needs no literal), digits (`\d{3}`: too
    // many Unicode digits to list), mixed-any (its
    // branches look at two fields), otherwise (has `else`), template.
    let listening = ruleset.rules_for("message_created").count();
    assert_eq!(listening - indexed, 5, "indexed {indexed} of {listening}");
}
