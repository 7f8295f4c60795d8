//! Conversation figures with 10,000 pending conversations across 1,000 rooms
//! (10 per room, started in turn by 5 people, so 2 per person per room),
//! each paused by the engine at the workflow reference's `wait_for` example
//! (`switchboard::bench::conversations`):
//! - `lookup`: what the handler does before the rules for each message
//!   (`taken_by`, `waiting_in` of the room, `Engine::check_answer` oldest
//!   first, `take`), for a message that answers one, for ordinary messages
//!   that answer none, and in a room with none pending; `settle`: dropping
//!   an answered conversation once its message is processed;
//! - `handler`: the same messages through `RulesHandler::run` (the answer's
//!   rest of the list rendered and "sent" to an executor that does nothing),
//!   against a handler with nothing pending;
//! - `restart`: opening a state directory's conversations file holding them
//!   and attaching them to the rules, as the agent does at start.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion};
use switchboard::bench::conversations::{
    engine, message, pending, person, ruleset, Discard, FILE, WORKFLOW,
};
use switchboard::effects::conversation_file::ConversationFile;
use switchboard::rules::conversations::{Conversations, DEFAULT_MAX_PER_PERSON};
use switchboard::rules::{Chat, PreparedEvent, RulesHandler};
use switchboard_engine::conversation::{
    AnswerCheck, ConversationChange, ConversationStore, StoredConversation, Taken,
};
use switchboard_engine::{Engine, EventInput, PendingConversation};

const ROOMS: usize = 1_000;
const PER_ROOM: usize = 10;
const SENDERS: usize = 5;
/// The person whose message answers: the 5th conversation of each room is
/// theirs, so four of another person's are checked before it.
const ANSWERER: usize = 4;

/// What `RulesHandler` does with a message before the rules (see its
/// `answer`): the conversation the message took, if any.
async fn lookup(
    conversations: &Conversations,
    engine: &Engine,
    input: &EventInput,
    message: &str,
    room: &str,
) -> Option<PendingConversation> {
    if let Some((p, _)) = conversations.taken_by(message) {
        return Some(p);
    }
    let answered = conversations.answered_in(room, |p| match engine.check_answer(p, input) {
        AnswerCheck::NotAnAnswer => None,
        check => Some(check),
    });
    for (id, check) in answered {
        let taken = match check {
            AnswerCheck::NotAnAnswer => continue,
            AnswerCheck::Answer(value) => Taken::Answer {
                message: message.to_owned(),
                value,
            },
            AnswerCheck::Reprompt => Taken::Reprompt {
                message: message.to_owned(),
            },
        };
        if let Ok(Some(p)) = conversations.take(&id, taken, input.now).await {
            return Some(p);
        }
    }
    None
}

/// One message per room: (room id, message id, prepared input).
fn messages(
    sender: &str,
    content: &str,
    now: chrono::DateTime<Utc>,
) -> Vec<(String, String, PreparedEvent)> {
    (0..ROOMS)
        .map(|r| {
            let id = format!("m-{r:04}");
            let prepared = message(r, SENDERS, sender, &id, content, now);
            (switchboard::bench::conversations::room(r), id, prepared)
        })
        .collect()
}

/// The typed event and room of a prepared message (what the runtime hands the handler).
fn typed(prepared: &PreparedEvent) -> (band_wire::events::Event, Chat) {
    let event = band_wire::events::Event::decode(
        "message_created",
        serde_json::Value::clone(&prepared.input.event),
    )
    .expect("a valid message_created payload");
    let chat = Chat::from_json(
        prepared
            .input
            .chat
            .as_deref()
            .cloned()
            .expect("the message has its room"),
    );
    (event, chat)
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let rules = ruleset().expect("the benchmark workflow compiles");
    let engine = Arc::new(engine(rules.clone()));
    let start = Utc::now();
    let all = runtime.block_on(pending(&engine, ROOMS, PER_ROOM, SENDERS, start));
    assert_eq!(all.len(), ROOMS * PER_ROOM);
    let conversations = Arc::new(Conversations::in_memory(DEFAULT_MAX_PER_PERSON));
    runtime
        .block_on(conversations.keep(all.clone()))
        .expect("kept in memory");
    assert_eq!(conversations.len(), ROOMS * PER_ROOM);
    let later = start + chrono::Duration::minutes(5);

    let answers = messages(&person(ANSWERER), "it is order 12345", later);
    let strangers = messages("user-99", "thanks, that helps", later);
    let not_answers = messages(&person(ANSWERER), "thanks, that helps", later);
    // The same messages in rooms where nothing is pending.
    let quiet: Vec<(String, String, PreparedEvent)> = (0..ROOMS)
        .map(|r| {
            let id = format!("q-{r:04}");
            let prepared = message(
                ROOMS + r,
                SENDERS,
                &person(ANSWERER),
                &id,
                "it is order 12345",
                later,
            );
            (
                switchboard::bench::conversations::room(ROOMS + r),
                id,
                prepared,
            )
        })
        .collect();
    // The conversation each answer takes (to put it back between iterations).
    let taken: Vec<PendingConversation> = answers
        .iter()
        .map(|(room, id, prepared)| {
            let p = runtime
                .block_on(lookup(&conversations, &engine, &prepared.input, id, room))
                .expect("the answer takes a conversation");
            conversations.settled(id);
            p
        })
        .collect();
    runtime
        .block_on(conversations.keep(taken.clone()))
        .expect("kept in memory");
    assert_eq!(conversations.len(), ROOMS * PER_ROOM);
    for (list, what) in [(&strangers, "stranger"), (&not_answers, "not an answer")] {
        let (room, id, prepared) = &list[0];
        let found = runtime.block_on(lookup(&conversations, &engine, &prepared.input, id, room));
        assert!(found.is_none(), "{what} answers nothing");
    }

    let mut group = c.benchmark_group("conversations/lookup");
    group.bench_function("answers one", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for i in 0..iters as usize {
                let r = i % ROOMS;
                let (room, id, prepared) = &answers[r];
                let t = Instant::now();
                let p =
                    runtime.block_on(lookup(&conversations, &engine, &prepared.input, id, room));
                spent += t.elapsed();
                assert!(p.is_some());
                conversations.settled(id);
                runtime
                    .block_on(conversations.keep(vec![taken[r].clone()]))
                    .expect("kept in memory");
            }
            spent
        })
    });
    group.bench_function("settle an answered one", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for i in 0..iters as usize {
                let r = i % ROOMS;
                let (room, id, prepared) = &answers[r];
                let p =
                    runtime.block_on(lookup(&conversations, &engine, &prepared.input, id, room));
                assert!(p.is_some());
                let t = Instant::now();
                conversations.settled(id);
                spent += t.elapsed();
                runtime
                    .block_on(conversations.keep(vec![taken[r].clone()]))
                    .expect("kept in memory");
            }
            spent
        })
    });
    for (name, list) in [
        ("answers none (a person nobody waits for)", &strangers),
        ("answers none (a person two wait for)", &not_answers),
        ("room with none pending", &quiet),
    ] {
        group.bench_function(name, |b| {
            let mut i = 0;
            b.iter(|| {
                let (room, id, prepared) = &list[i % ROOMS];
                i += 1;
                runtime.block_on(lookup(&conversations, &engine, &prepared.input, id, room))
            })
        });
    }
    group.bench_function("waiting_in alone (the room's 10, copied)", |b| {
        let mut i = 0;
        b.iter(|| {
            let (room, _, _) = &strangers[i % ROOMS];
            i += 1;
            conversations.waiting_in(room)
        })
    });
    group.finish();

    // The whole handler: the answer runs the rest of its list.
    let me: band_wire::model::AgentMe = serde_json::from_value(serde_json::json!({
        "id": "agent-1", "name": "Support", "handle": "acme/support"
    }))
    .expect("an agent");
    let handler = RulesHandler::new(engine.clone(), Arc::new(Discard), &me)
        .with_conversations(conversations.clone());
    let bare = RulesHandler::new(engine.clone(), Arc::new(Discard), &me);
    let typed_answers: Vec<_> = answers.iter().map(|(_, _, p)| typed(p)).collect();
    let typed_strangers: Vec<_> = strangers.iter().map(|(_, _, p)| typed(p)).collect();
    let mut group = c.benchmark_group("conversations/handler");
    group.bench_function("answers one", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for i in 0..iters as usize {
                let r = i % ROOMS;
                let (event, chat) = &typed_answers[r];
                let t = Instant::now();
                let report = runtime.block_on(handler.run(event, Some(chat.clone())));
                spent += t.elapsed();
                assert_eq!(report.actions.len(), 1, "the rest of the list: one reply");
                conversations.settled(&answers[r].1);
                runtime
                    .block_on(conversations.keep(vec![taken[r].clone()]))
                    .expect("kept in memory");
            }
            spent
        })
    });
    group.bench_function("answers none (a person nobody waits for)", |b| {
        let mut i = 0;
        b.iter(|| {
            let (event, chat) = &typed_strangers[i % ROOMS];
            i += 1;
            runtime.block_on(handler.run(event, Some(chat.clone())))
        })
    });
    group.bench_function("same message, nothing pending anywhere", |b| {
        let mut i = 0;
        b.iter(|| {
            let (event, chat) = &typed_strangers[i % ROOMS];
            i += 1;
            runtime.block_on(bare.run(event, Some(chat.clone())))
        })
    });
    group.finish();

    restart(c, &runtime, &all, rules);
}

/// Writes `all` (and the workflow text) to a conversations file at `path`
/// through `ConversationFile`; with `compacted`, folds the log into the
/// snapshot (what a clean start leaves) and returns the snapshot's size.
fn write_file(
    runtime: &tokio::runtime::Runtime,
    path: &Path,
    all: &[PendingConversation],
    compacted: bool,
) -> u64 {
    let file = ConversationFile::open_bounded(path, usize::MAX).expect("a conversations file");
    let hash = all[0].source_hash;
    runtime.block_on(async {
        let mut writes = vec![file.apply(ConversationChange::Source {
            hash,
            text: WORKFLOW.to_owned(),
        })];
        for p in all {
            writes.push(file.apply(ConversationChange::Put {
                conversation: Box::new(StoredConversation {
                    conversation: p.clone(),
                    taken: None,
                    taken_at: None,
                }),
            }));
        }
        for w in writes {
            w.await.expect("written");
        }
    });
    drop(file);
    if compacted {
        drop(ConversationFile::open(path).expect("compacted at open"));
    }
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn restart(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    all: &[PendingConversation],
    rules: Arc<switchboard_workflow::Ruleset>,
) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    // A clean state: the snapshot alone.
    let clean = dir.path().join("clean");
    let snapshot = write_file(runtime, &clean, all, true);
    // After a crash: the same conversations, every one in the log.
    let logged = dir.path().join("logged");
    write_file(runtime, &logged, all, false);
    let mut log_name = logged.clone().into_os_string();
    log_name.push(".log");
    let log = std::fs::metadata(&log_name).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "conversations file, {} pending: snapshot {snapshot} bytes ({} per conversation); log {log} bytes ({} per conversation)",
        all.len(),
        snapshot / all.len() as u64,
        log / all.len() as u64,
    );
    // The workflow edited since: every conversation recompiles its old text.
    let edited = Arc::new(
        switchboard_workflow::load_str(FILE, &WORKFLOW.replace("timeout: 1d", "timeout: 2d"))
            .expect("the edited workflow compiles"),
    );
    // The snapshot and its log as they are at `from` (either may be absent).
    let copy = |from: &Path, to: &Path| {
        let beside = |p: &Path| {
            let mut name = p.to_owned().into_os_string();
            name.push(".log");
            std::path::PathBuf::from(name)
        };
        for (from, to) in [(from.to_owned(), to.to_owned()), (beside(from), beside(to))] {
            match std::fs::copy(&from, &to) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    drop(std::fs::remove_file(&to));
                }
                Err(e) => panic!("cannot copy {}: {e}", from.display()),
            }
        }
    };
    let mut group = c.benchmark_group("conversations/restart");
    group.sample_size(10);
    for (name, source, current) in [
        ("10000 pending, snapshot", &clean, &rules),
        ("10000 pending, all in the log", &logged, &rules),
        (
            "10000 pending, snapshot, rule edited since",
            &clean,
            &edited,
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let work = dir.path().join("work");
                    copy(source, &work);
                    let t = Instant::now();
                    let file = Arc::new(ConversationFile::open(&work).expect("opens"));
                    let store: Arc<dyn ConversationStore> = file.clone();
                    let opened =
                        Conversations::open(store, current, DEFAULT_MAX_PER_PERSON, Utc::now())
                            .expect("loads");
                    spent += t.elapsed();
                    assert_eq!(opened.len(), all.len());
                    drop(opened);
                    drop(file);
                }
                spent
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
