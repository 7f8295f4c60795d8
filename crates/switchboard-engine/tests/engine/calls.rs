//! `- call: NAME`: a named action list run with `with:` arguments (`args`),
//! nested calls, failures inside a call, and the trace showing each action
//! under the calls it ran in.

use std::sync::Arc;

use serde_json::{json, Value};
use switchboard_engine::action::Scope;
use switchboard_engine::run::ActionStatus;
use switchboard_engine::{Engine, EventInput, Finish, RecordingExecutor, StateStore};
use switchboard_workflow::load_str;

const FLOWS: &str = r#"version: 1
vars: { team: support }
actions:
  greet:
    - reply: "Hello {{ args.name }} from {{ vars.team }}"
      as: sent
    - call: sign
      with: { by: "{{ args.name }}", seen: "{{ sent is defined }}" }
  sign:
    - log: "signed {{ args.by }}, caller's binding seen: {{ args.seen }}"
    - set: { key: "signed.{{ args.by }}", value: "{{ args.by }}" }
  fragile:
    - http: { url: "https://x.example/fail" }
    - reply: never
rules:
  - name: welcome
    on: message_created
    if: [ { event.content: { contains: hello } } ]
    do:
      - reply: before
        as: first
      - call: greet
        with: { name: "{{ sender.name }}" }
      - call: greet
        if: [ { event.content: { contains: twice } } ]
        with: { name: again }
      - reply: "after {{ 'args leaked' if args is defined else 'the call' }}"
  - name: broken
    on: message_created
    if: [ { event.content: { contains: break } } ]
    do:
      - call: fragile
      - reply: not reached
    on_error:
      - reply: "fallback: {{ error }}"
"#;

fn message(content: &str) -> EventInput {
    EventInput {
        event_type: "message_created".into(),
        event: Arc::new(
            json!({"id": "m1", "content": content, "sender_type": "User",
            "sender_id": "u1", "sender_name": "Ann", "chat_room_id": "r1"}),
        ),
        agent: Arc::new(json!({"id": "a1", "handle": "acme/bot", "name": "Bot"})),
        chat: Some(Arc::new(
            json!({"id": "r1", "title": "Support", "participants": []}),
        )),
        sender: Some(Arc::new(
            json!({"id": "u1", "type": "User", "name": "Ann", "handle": "ann"}),
        )),
        now: chrono::Utc::now(),
    }
}

fn engine() -> Engine {
    let rs = load_str("w.yaml", FLOWS).unwrap_or_else(|e| panic!("{e}"));
    Engine::new(Arc::new(rs), Arc::new(StateStore::in_memory()))
}

fn texts(report: &switchboard_engine::Report) -> Vec<String> {
    report
        .actions
        .iter()
        .filter(|a| a.name == "reply" && a.status == ActionStatus::Ok)
        .filter_map(|a| serde_json::to_value(a.action.as_ref()?).ok())
        .map(|v| v["reply"]["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_call_runs_its_list_with_args_and_nested_calls() {
    let e = engine();
    let ex = RecordingExecutor::new();
    let report = e.handle(&message("hello"), &Scope::default(), &ex).await;
    assert_eq!(report.outcome, Finish::Done, "{report:#?}");
    assert_eq!(
        texts(&report),
        ["before", "Hello Ann from support", "after the call"],
        "args inside the list only; the skipped call ran nothing"
    );
    // Each action names the calls it ran under, outermost first.
    let under: Vec<(String, Vec<String>)> = report
        .actions
        .iter()
        .map(|a| {
            let calls = a.calls.iter().map(|c| c.name.clone()).collect();
            (a.name.to_owned(), calls)
        })
        .collect();
    let want: Vec<(String, Vec<String>)> = [
        ("reply", vec![]),
        ("reply", vec!["greet"]),
        ("log", vec!["greet", "sign"]),
        ("set", vec!["greet", "sign"]),
        ("call", vec!["greet"]),
        ("reply", vec![]),
    ]
    .into_iter()
    .map(|(n, c)| (n.to_owned(), c.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(under, want);
    assert_eq!(report.actions[4].status, ActionStatus::Skipped);
    assert_eq!(report.actions[2].calls[0].args, json!({"name": "Ann"}));
    // The caller's `as:` results stay the caller's; the list's stay its own.
    assert_eq!(
        report.actions[2].calls[1].args,
        json!({"by": "Ann", "seen": true})
    );
    let state = e.state().snapshot(chrono::Utc::now());
    assert_eq!(state["signed.Ann"], Value::from("Ann"));
}

#[tokio::test]
async fn a_failure_inside_a_call_is_the_callers_failure() {
    let e = engine();
    let ex = RecordingExecutor::new();
    ex.fail_on("http", "503 from x.example");
    let report = e.handle(&message("break"), &Scope::default(), &ex).await;
    let texts = texts(&report);
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0].starts_with("fallback: w/broken: "), "{texts:?}");
    assert!(texts[0].contains("503 from x.example"), "{texts:?}");
    let failed = report
        .actions
        .iter()
        .find(|a| a.status == ActionStatus::Failed)
        .expect("the http action failed");
    assert_eq!(failed.calls[0].name, "fragile");
}
