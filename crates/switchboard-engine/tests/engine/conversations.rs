//! Lists that pause at `wait_for`, `ask` and `wait`: the pending
//! conversation the engine hands back, which messages answer it, and the
//! rest of the list (or `on_timeout`) when it resumes, also after a JSON
//! round trip (what the runtime persists).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use switchboard_engine::action::{RenderedAction, Scope, Sender};
use switchboard_engine::run::ActionStatus;
use switchboard_engine::{
    AnswerCheck, Engine, EventInput, Finish, PendingConversation, RecordingExecutor, Report,
    Resume, StateStore,
};
use switchboard_workflow::rule::PauseKind;
use switchboard_workflow::{load_str, Ruleset};

/// The engine never waits with a recording executor: one poll finishes it.
fn ready<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the engine waited on something"),
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap()
}

/// The workflow file with one rule, `conv/r`, doing `actions` on "refund N".
fn source(actions: &str) -> String {
    format!(
        "version: 1\nrules:\n  - name: r\n    on: message_created\n    if:\n      - event.content: {{ matches: '(?i)refund (?P<amount>\\d+)' }}\n    do:\n{actions}"
    )
}

fn ruleset(actions: &str) -> Arc<Ruleset> {
    Arc::new(load_str("conv.yaml", &source(actions)).unwrap_or_else(|e| panic!("{e}")))
}

/// A message `content` from `who` (id `u-who`, handle `who`) in `room`.
fn message(
    id: &str,
    room: &str,
    who: &str,
    content: &str,
    now: DateTime<Utc>,
) -> (EventInput, Scope) {
    let sender = json!({"id": format!("u-{who}"), "handle": who, "name": who, "type": "User"});
    let input = EventInput {
        event_type: "message_created".into(),
        event: Arc::new(
            json!({"id": id, "chat_room_id": room, "content": content, "sender_id": format!("u-{who}")}),
        ),
        agent: Arc::new(json!({"id": "a1", "handle": "acme/bot"})),
        chat: Some(Arc::new(json!({"id": room, "title": "Support"}))),
        sender: Some(Arc::new(sender)),
        now,
    };
    let scope = Scope {
        chat_id: Some(room.into()),
        message_id: Some(id.into()),
        sender: Some(Sender {
            id: format!("u-{who}"),
            kind: "User".into(),
            name: Some(who.into()),
            handle: Some(who.into()),
        }),
        ..Scope::default()
    };
    (input, scope)
}

fn texts(executor: &RecordingExecutor) -> Vec<String> {
    executor
        .actions()
        .iter()
        .map(|a| match a {
            RenderedAction::Reply(r) => r.text.clone(),
            RenderedAction::SendMessage(m) => format!("{} -> {}", m.text, m.mentions.join(",")),
            other => other.name().to_owned(),
        })
        .collect()
}

struct Conv {
    engine: Engine,
    ruleset: Arc<Ruleset>,
    executor: RecordingExecutor,
}

impl Conv {
    fn new(actions: &str) -> Self {
        let ruleset = ruleset(actions);
        Conv {
            engine: Engine::new(ruleset.clone(), Arc::new(StateStore::in_memory())),
            ruleset,
            executor: RecordingExecutor::new(),
        }
    }

    fn handle(&self, id: &str, who: &str, content: &str) -> Report {
        let (input, scope) = message(id, "r1", who, content, t0());
        ready(self.engine.handle(&input, &scope, &self.executor))
    }

    fn check(&self, p: &PendingConversation, room: &str, who: &str, content: &str) -> AnswerCheck {
        let (input, _) = message("m-check", room, who, content, t0());
        self.engine.check_answer(p, &input)
    }

    fn resume(
        &self,
        p: PendingConversation,
        how: Resume,
        id: &str,
        who: &str,
        content: &str,
        at: DateTime<Utc>,
    ) -> Report {
        let (input, scope) = message(id, "r1", who, content, at);
        ready(self.engine.resume(p, how, &input, &scope, &self.executor))
    }
}

const WAIT_FOR: &str = r#"      - reply: "Which order?"
      - wait_for:
          if:
            - event.content: { matches: '^\s*\d+\s*$' }
          timeout: 10m
          on_timeout:
            - reply: "No order number for {{ match.amount }}; leaving it."
        as: answer
      - reply: "Refund of {{ match.amount }} for order {{ answer.content }} ({{ event.content }})."
"#;

#[test]
fn a_list_pauses_at_wait_for_and_the_answer_runs_the_rest() {
    let conv = Conv::new(WAIT_FOR);
    let report = conv.handle("m1", "ann", "refund 30 please");
    assert_eq!(report.outcome, Finish::Done);
    assert_eq!(report.actions_summary(), "reply,wait_for(paused)");
    assert_eq!(report.actions[1].status, ActionStatus::Paused);
    assert_eq!(texts(&conv.executor), ["Which order?"]);
    let [pending] = report.pending.as_slice() else {
        panic!("one pending conversation: {:?}", report.pending)
    };
    assert_eq!(pending.kind, PauseKind::WaitFor);
    assert_eq!(pending.rule, "conv/r");
    assert_eq!(pending.room, "r1");
    assert_eq!(pending.from, ["u-ann"], "default: the triggering sender");
    assert_eq!(pending.deadline, t0() + chrono::Duration::minutes(10));
    assert_eq!(pending.id, "m1/conv/r#do1");

    // Only Ann, only in r1, and only what meets `if:`.
    assert_eq!(
        conv.check(pending, "r1", "bob", "42"),
        AnswerCheck::NotAnAnswer
    );
    assert_eq!(
        conv.check(pending, "r2", "ann", "42"),
        AnswerCheck::NotAnAnswer
    );
    assert_eq!(
        conv.check(pending, "r1", "ann", "order 42"),
        AnswerCheck::NotAnAnswer
    );
    let AnswerCheck::Answer(answer) = conv.check(pending, "r1", "ann", " 42 ") else {
        panic!("an answer")
    };
    assert_eq!(answer["content"], " 42 ");

    let report = conv.resume(
        pending.clone(),
        Resume::Answer(answer),
        "m2",
        "ann",
        " 42 ",
        t0(),
    );
    assert_eq!(report.outcome, Finish::Done);
    assert!(report.pending.is_empty());
    assert_eq!(report.matched, ["conv/r"]);
    assert_eq!(
        texts(&conv.executor),
        [
            "Which order?",
            "Refund of 30 for order  42  (refund 30 please)."
        ]
    );
}

#[test]
fn the_timeout_runs_on_timeout_and_not_the_rest() {
    let conv = Conv::new(WAIT_FOR);
    let mut report = conv.handle("m1", "ann", "refund 30");
    let pending = report.pending.remove(0);
    let later = pending.deadline;
    assert!(pending.is_due(later) && !pending.is_due(later - chrono::Duration::seconds(1)));
    // Once the deadline passed, a late answer is not one: the timeout wins.
    let (late, _) = message("m9", "r1", "ann", "42", later);
    assert_eq!(
        conv.engine.check_answer(&pending, &late),
        AnswerCheck::NotAnAnswer
    );
    let (in_time, _) = message(
        "m9",
        "r1",
        "ann",
        "42",
        later - chrono::Duration::seconds(1),
    );
    assert!(matches!(
        conv.engine.check_answer(&pending, &in_time),
        AnswerCheck::Answer(_)
    ));
    let report = conv.resume(pending, Resume::Deadline, "", "ann", "", later);
    assert_eq!(report.outcome, Finish::Done);
    assert!(report.pending.is_empty());
    assert_eq!(
        texts(&conv.executor),
        ["Which order?", "No order number for 30; leaving it."]
    );
}

const ASK: &str = r#"      - ask:
          to: "@carol"
          text: "Approve a refund of {{ match.amount }}?"
          choices: [Approve, reject]
          timeout: 1h
        as: decision
      - reply: "{{ decision.choice }} by {{ decision.by }}: {{ decision.message.content }}"
"#;

#[test]
fn ask_sends_the_question_and_takes_a_choice_in_its_written_case() {
    let conv = Conv::new(ASK);
    let mut report = conv.handle("m1", "ann", "refund 30");
    assert_eq!(texts(&conv.executor), ["Approve a refund of 30? -> @carol"]);
    let pending = report.pending.remove(0);
    assert_eq!(
        (pending.kind, pending.from.as_slice()),
        (PauseKind::Ask, &["@carol".to_owned()][..])
    );

    // Carol (by handle) only; Ann's answer is not one.
    assert_eq!(
        conv.check(&pending, "r1", "ann", "approve"),
        AnswerCheck::NotAnAnswer
    );
    let AnswerCheck::Answer(decision) = conv.check(&pending, "r1", "carol", "@[[a1]] APPROVE it")
    else {
        panic!("an answer")
    };
    assert_eq!(decision["choice"], "Approve");
    assert_eq!(decision["by"], "u-carol");
    let report = conv.resume(
        pending,
        Resume::Answer(decision),
        "m2",
        "carol",
        "@[[a1]] APPROVE it",
        t0(),
    );
    assert_eq!(report.outcome, Finish::Done);
    assert_eq!(
        texts(&conv.executor)[1],
        "Approve by u-carol: @[[a1]] APPROVE it"
    );
}

#[test]
fn an_answer_naming_no_choice_is_reprompted_once() {
    let conv = Conv::new(ASK);
    let mut report = conv.handle("m1", "ann", "refund 30");
    let pending = report.pending.remove(0);
    assert_eq!(
        conv.check(&pending, "r1", "carol", "maybe later"),
        AnswerCheck::Reprompt
    );
    // Naming both is no choice either.
    assert_eq!(
        conv.check(&pending, "r1", "carol", "approve or reject?"),
        AnswerCheck::Reprompt
    );

    let mut report = conv.resume(
        pending,
        Resume::Reprompt,
        "m2",
        "carol",
        "maybe later",
        t0(),
    );
    assert_eq!(
        texts(&conv.executor)[1],
        "Please answer with one of: Approve, reject. -> @carol"
    );
    let pending = report.pending.remove(0);
    assert!(pending.reprompted);
    // After the one re-prompt a wrong answer is just a message; a right one still answers.
    assert_eq!(
        conv.check(&pending, "r1", "carol", "hmm"),
        AnswerCheck::NotAnAnswer
    );
    let AnswerCheck::Answer(decision) = conv.check(&pending, "r1", "carol", "Reject.") else {
        panic!("an answer")
    };
    assert_eq!(decision["choice"], "reject");
}

#[test]
fn wait_delays_the_rest() {
    let conv = Conv::new("      - wait: 5m\n        as: waited\n      - reply: \"later: {{ match.amount }} {{ waited }}\"\n");
    let mut report = conv.handle("m1", "ann", "refund 7");
    assert!(texts(&conv.executor).is_empty());
    let pending = report.pending.remove(0);
    assert_eq!(pending.kind, PauseKind::Wait);
    assert_eq!(pending.deadline, t0() + chrono::Duration::minutes(5));
    assert_eq!(
        conv.check(&pending, "r1", "ann", "anything"),
        AnswerCheck::NotAnAnswer
    );
    let report = conv.resume(
        pending,
        Resume::Deadline,
        "",
        "ann",
        "",
        t0() + chrono::Duration::minutes(5),
    );
    assert_eq!(report.outcome, Finish::Done);
    assert_eq!(texts(&conv.executor), ["later: 7 None"]);
}

#[test]
fn the_rest_may_pause_again() {
    let conv = Conv::new(
        "      - wait_for: { timeout: 1m }\n        as: first\n      - reply: \"got {{ first.content }}\"\n      - wait_for: { timeout: 2m, from: u-bob }\n        as: second\n      - reply: \"{{ first.content }} then {{ second.content }}\"\n",
    );
    let mut report = conv.handle("m1", "ann", "refund 1");
    let first = report.pending.remove(0);
    let AnswerCheck::Answer(a) = conv.check(&first, "r1", "ann", "one") else {
        panic!()
    };
    let later = t0() + chrono::Duration::seconds(30);
    let mut report = conv.resume(first, Resume::Answer(a), "m2", "ann", "one", later);
    assert_eq!(report.actions_summary(), "reply,wait_for(paused)");
    let second = report.pending.remove(0);
    assert_eq!(second.id, "m2/conv/r#do2");
    assert_eq!(second.from, ["u-bob"]);
    assert_eq!(second.deadline, later + chrono::Duration::minutes(2));
    assert_eq!(
        conv.check(&second, "r1", "ann", "two"),
        AnswerCheck::NotAnAnswer
    );
    let AnswerCheck::Answer(b) = conv.check(&second, "r1", "bob", "two") else {
        panic!()
    };
    let report = conv.resume(second, Resume::Answer(b), "m3", "bob", "two", later);
    assert!(report.pending.is_empty());
    assert_eq!(texts(&conv.executor), ["got one", "one then two"]);
}

#[test]
fn a_pending_conversation_survives_a_json_round_trip() {
    let conv = Conv::new(WAIT_FOR);
    let mut report = conv.handle("m1", "ann", "refund 30");
    let pending = report.pending.remove(0);
    let text = serde_json::to_string(&pending).unwrap();
    assert!(text.len() < 1024, "small: {} bytes: {text}", text.len());
    let mut back: PendingConversation = serde_json::from_str(&text).unwrap();
    assert_eq!(back, pending);
    assert!(pending.ruleset().is_some() && back.ruleset().is_none());

    // Loaded with no rules attached, it cannot run, and says why.
    let restarted = Conv::new(WAIT_FOR);
    assert_eq!(
        restarted.check(&back, "r1", "ann", "42"),
        AnswerCheck::NotAnAnswer
    );
    let report = restarted.resume(back.clone(), Resume::Deadline, "", "ann", "", t0());
    let Finish::Failed { reason } = &report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert!(reason.contains("has no rules attached"), "{reason}");

    // After a restart on unchanged rules: attached, it goes on.
    back.attach(restarted.ruleset.clone()).unwrap();
    let AnswerCheck::Answer(answer) = restarted.check(&back, "r1", "ann", "42") else {
        panic!()
    };
    let report = restarted.resume(back, Resume::Answer(answer), "m2", "ann", "42", t0());
    assert_eq!(report.outcome, Finish::Done);
    assert_eq!(
        texts(&restarted.executor),
        ["Refund of 30 for order 42 (refund 30)."]
    );
}

#[test]
fn a_conversation_finishes_with_the_actions_it_started_with() {
    let conv = Conv::new(WAIT_FOR);
    let mut report = conv.handle("m1", "ann", "refund 30");
    let pending = report.pending.remove(0);

    // A reload to a changed rule: the one in memory keeps its rules.
    let changed = ruleset(&WAIT_FOR.replace("Refund of", "Changed: refund of"));
    conv.engine.swap(changed.clone());
    let AnswerCheck::Answer(answer) = conv.check(&pending, "r1", "ann", "42") else {
        panic!()
    };
    conv.resume(
        pending.clone(),
        Resume::Answer(answer.clone()),
        "m2",
        "ann",
        "42",
        t0(),
    );
    assert_eq!(
        texts(&conv.executor)[1],
        "Refund of 30 for order 42 (refund 30)."
    );

    // After a restart the changed rules do not take it; the file's text as
    // it was (which the runtime keeps by its hash) compiles it again.
    let mut back: PendingConversation =
        serde_json::from_str(&serde_json::to_string(&pending).unwrap()).unwrap();
    let err = back.attach(changed).unwrap_err().to_string();
    assert!(
        err.contains("is not in these rules as it was when it paused"),
        "{err}"
    );
    let changed_text = source(&WAIT_FOR.replace("Refund of", "Changed: refund of"));
    let err = back.recompile(&changed_text).unwrap_err().to_string();
    assert!(err.contains("is not the one it paused with"), "{err}");
    back.recompile(&source(WAIT_FOR)).unwrap();
    let restarted = Conv::new(&WAIT_FOR.replace("Refund of", "Changed: refund of"));
    let report = restarted.resume(back, Resume::Answer(answer), "m2", "ann", "42", t0());
    assert_eq!(report.outcome, Finish::Done);
    assert_eq!(
        texts(&restarted.executor),
        ["Refund of 30 for order 42 (refund 30)."]
    );
}
