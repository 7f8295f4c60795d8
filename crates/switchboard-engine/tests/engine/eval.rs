//! The engine with no network: conditions, rule order, actions and state,
//! through the recording executor.

use std::sync::Arc;

use crate::replies::replies;
use serde_json::{json, Value};
use switchboard_engine::action::{RenderedAction, Scope};
use switchboard_engine::run::{ActionStatus, Verdict};
use switchboard_engine::{Engine, EventInput, Finish, RecordingExecutor, Report, StateStore};
use switchboard_workflow::load_str;

fn engine(yaml: &str) -> Engine {
    let rs = load_str("w.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    // These tests read traces of rules that could not match too.
    Engine::new(Arc::new(rs), Arc::new(StateStore::in_memory())).tracing_every_rule()
}

fn message(content: &str) -> EventInput {
    EventInput {
        event_type: "message_created".into(),
        event: Arc::new(
            json!({"id": "m1", "content": content, "sender_type": "User", "sender_id": "u1",
                      "sender_name": "Ann", "chat_room_id": "r1", "message_type": "text",
                      "metadata": {"mentions": [{"id": "a1", "handle": "acme/bot"}]}}),
        ),
        agent: Arc::new(json!({"id": "a1", "handle": "acme/bot", "name": "Bot"})),
        chat: Some(Arc::new(
            json!({"id": "r1", "title": "Support", "participants": [
            {"id": "u1", "handle": "ann", "type": "User"},
            {"id": "a1", "handle": "acme/bot", "type": "Agent"}]}),
        )),
        sender: Some(Arc::new(
            json!({"id": "u1", "type": "User", "name": "Ann", "handle": "ann"}),
        )),
        now: chrono::Utc::now(),
    }
}

async fn run(e: &Engine, input: &EventInput) -> (Report, Vec<RenderedAction>) {
    let ex = RecordingExecutor::new();
    let report = e.handle(input, &Scope::default(), &ex).await;
    (report, ex.actions())
}

#[tokio::test]
async fn operators_and_combinators() {
    let e = engine(
        r#"version: 1
vars: { vips: [ann, bob] }
conditions:
  from_person: { event.sender_type: User }
rules:
  - name: all-ops
    on: message_created
    if:
      - use: from_person
      - event.content: { contains: REFUND, case: insensitive }
      - event.content: { starts_with: I }
      - event.content: { ends_with: "!" }
      - event.sender_name: { in: [Ann, Bob] }
      - sender.handle: { in: { var: vips } }
      - event.sender_name: { not_in: [Carl] }
      - event.sender_name: { not_equals: Carl }
      - event.chat_room_id: { glob: "r*" }
      - event.thread_id: { exists: false }
      - event.content: { length: { gt: 5, lte: 100 } }
      - event.metadata.mentions.0.handle: acme/bot
      - any:
          - event.content: { matches: nothing-like-this }
          - not: { event.sender_name: Carl }
      - jsonpath: "$.metadata.mentions[*].handle"
        contains: acme/bot
      - template: "{{ event.content | length > 3 }}"
    do:
      - reply: ok
"#,
    );
    let (report, actions) = run(&e, &message("I want a refund!")).await;
    assert_eq!(report.matched, ["w/all-ops"], "{:#?}", report.trace);
    assert_eq!(replies(&actions), ["ok"]);

    let (report, actions) = run(&e, &message("I want a refund?")).await;
    assert!(report.matched.is_empty());
    assert!(actions.is_empty());
    let failed = report.trace[0].conditions.last().unwrap();
    assert!(!failed.passed);
    assert_eq!(failed.condition, "event.content ends_with \"!\"");
    assert_eq!(failed.saw, Some(json!("I want a refund?")));
}

#[tokio::test]
async fn captures_else_stop_priority_and_disabled() {
    let e = engine(
        r#"version: 1
rules:
  - name: order
    on: message_created
    if:
      - event.content: { matches: 'order (?P<number>\d+) for (\w+)' }
    do:
      - reply: "Order {{ match.number }} ({{ match[2] }})"
    else:
      - reply: "No order number"
  - name: off
    on: message_created
    enabled: false
    do: [ { reply: never } ]
  - name: first
    on: message_created
    priority: 10
    if: [ { event.content: { contains: stop } } ]
    do: [ { reply: first } ]
    stop: true
"#,
    );
    let (report, actions) = run(&e, &message("see order 42 for Ann")).await;
    assert_eq!(replies(&actions), ["Order 42 (Ann)"]);
    assert_eq!(report.trace[0].rule, "w/first", "priority orders rules");
    assert_eq!(report.trace[2].verdict, Verdict::Disabled);

    let (report, actions) = run(&e, &message("no number")).await;
    assert_eq!(replies(&actions), ["No order number"]);
    assert_eq!(report.else_ran, ["w/order"]);
    assert!(report.matched.is_empty());

    let (report, actions) = run(&e, &message("please stop order 7 for Bo")).await;
    assert_eq!(replies(&actions), ["first"], "stop keeps later rules out");
    assert_eq!(report.matched, ["w/first"]);
}

#[tokio::test]
async fn state_counters_bindings_and_action_conditions() {
    let e = engine(
        r#"version: 1
rules:
  - name: count
    on: message_created
    do:
      - incr: { key: "pings:{{ event.chat_room_id }}", ttl: 1h }
        as: n
      - reply: "ping {{ n }} (state says {{ state['pings:r1'] }})"
      - reply: "third!"
        if: [ { template: "{{ n >= 3 }}" } ]
      - unset: "pings:{{ event.chat_room_id }}"
        if: "{{ n >= 3 }}"
"#,
    );
    let input = message("hi");
    let mut all = Vec::new();
    for _ in 0..4 {
        let (report, actions) = run(&e, &input).await;
        assert_eq!(report.outcome, Finish::Done);
        all.extend(replies(&actions));
    }
    assert_eq!(
        all,
        [
            "ping 1 (state says 1)",
            "ping 2 (state says 2)",
            "ping 3 (state says 3)",
            "third!",
            "ping 1 (state says 1)"
        ]
    );
    let (report, _) = run(&e, &input).await;
    let skipped = report
        .actions
        .iter()
        .filter(|a| a.status == ActionStatus::Skipped)
        .count();
    assert_eq!(skipped, 2);
    assert_eq!(e.state().get("pings:r1", input.now), Some(json!(2)));
}

#[tokio::test]
async fn throttle_limits_runs_per_key_and_window() {
    let e = engine(
        r#"version: 1
rules:
  - name: greet
    on: message_created
    throttle: { key: "{{ event.chat_room_id }}", max: 2, per: 10m }
    do: [ { reply: hello } ]
"#,
    );
    let mut input = message("hi");
    let mut verdicts = Vec::new();
    for _ in 0..3 {
        let (report, _) = run(&e, &input).await;
        verdicts.push(report.trace[0].verdict);
    }
    assert_eq!(
        verdicts,
        [Verdict::Matched, Verdict::Matched, Verdict::Throttled]
    );
    Arc::make_mut(&mut input.event)["chat_room_id"] = json!("r2");
    assert_eq!(
        run(&e, &input).await.0.trace[0].verdict,
        Verdict::Matched,
        "another key"
    );
    Arc::make_mut(&mut input.event)["chat_room_id"] = json!("r1");
    input.now += chrono::Duration::minutes(11);
    assert_eq!(
        run(&e, &input).await.0.trace[0].verdict,
        Verdict::Matched,
        "window passed"
    );
}

#[tokio::test]
async fn failures_fail_continue_and_fallback() {
    let yaml = r#"version: 1
rules:
  - name: careful
    on: message_created
    if: [ { event.content: careful } ]
    do:
      - add_participant: { handle: acme/billing }
        on_error: continue
      - reply: still here
  - name: strict
    on: message_created
    if: [ { event.content: strict } ]
    do:
      - add_participant: { handle: acme/billing }
      - reply: never
  - name: fallback
    on: message_created
    if: [ { event.content: fallback } ]
    do:
      - add_participant: { handle: acme/billing }
    on_error:
      - reply: "sorry: {{ error }}"
  - name: refuse
    on: message_created
    if: [ { event.content: refuse } ]
    do:
      - fail: "not today, {{ event.sender_name }}"
      - reply: never
"#;
    let e = engine(yaml);
    let ex = RecordingExecutor::new();
    ex.fail_on("add_participant", "HTTP 422");
    let scope = Scope::default();

    let r = e.handle(&message("careful"), &scope, &ex).await;
    assert_eq!(r.outcome, Finish::Done);
    let r = e.handle(&message("strict"), &scope, &ex).await;
    assert_eq!(
        r.outcome,
        Finish::Failed {
            reason: "w/strict: add_participant: HTTP 422".into()
        }
    );
    let r = e.handle(&message("fallback"), &scope, &ex).await;
    assert_eq!(r.outcome, Finish::Done, "the fallback handled it");
    let r = e.handle(&message("refuse"), &scope, &ex).await;
    assert_eq!(
        r.outcome,
        Finish::Failed {
            reason: "w/refuse: not today, Ann".into()
        }
    );
    assert_eq!(
        replies(&ex.actions()),
        ["still here", "sorry: w/fallback: add_participant: HTTP 422"]
    );
}

#[tokio::test]
async fn rendered_actions_keep_what_the_workflow_said() {
    let e = engine(
        r#"version: 1
vars: { billing: acme/billing-agent }
rules:
  - name: route
    on: message_created
    do:
      - add_participant: { handle: "{{ vars.billing }}" }
      - reply:
          text: "Hi {{ event.sender_name }}, {{ vars.billing | mention }} will help."
          mentions: ["{{ event.sender_id }}", "{{ vars.billing }}"]
      - post_event: { type: thought, content: "routed", metadata: { n: "{{ 1 + 1 }}" } }
      - set: { key: last, value: "{{ [1, 2] }}" }
"#,
    );
    let (report, actions) = run(&e, &message("x")).await;
    assert_eq!(report.outcome, Finish::Done);
    let as_json: Vec<Value> = actions
        .iter()
        .map(|a| serde_json::to_value(a).unwrap())
        .collect();
    assert_eq!(
        as_json,
        [
            json!({"add_participant": {"handle": "acme/billing-agent"}}),
            json!({"reply": {"text": "Hi Ann, @acme/billing-agent will help.", "mentions": ["u1", "acme/billing-agent"]}}),
            json!({"post_event": {"type": "thought", "content": "routed", "metadata": {"n": 2}}}),
        ]
    );
    assert_eq!(
        e.state().get("last", chrono::Utc::now()),
        Some(json!([1, 2]))
    );
}

#[tokio::test]
async fn a_swap_changes_rules_but_keeps_state() {
    let e = engine("version: 1\nrules:\n  - name: a\n    on: message_created\n    do: [ { incr: n }, { reply: one } ]\n");
    run(&e, &message("x")).await;
    let next = load_str("w.yaml", "version: 1\nrules:\n  - name: a\n    on: message_created\n    do: [ { reply: \"two {{ state.n }}\" } ]\n").unwrap();
    e.swap(Arc::new(next));
    let (_, actions) = run(&e, &message("x")).await;
    assert_eq!(replies(&actions), ["two 1"]);
}

#[tokio::test]
async fn jsonpath_defaults_to_found_and_exists_means_found() {
    let e = engine(
        r#"version: 1
rules:
  - name: mentions-someone
    on: message_created
    if:
      - jsonpath: "$.metadata.mentions[*].handle"
      - jsonpath: "$.nothing[*]"
        exists: false
    do: [ { reply: yes } ]
  - name: never
    on: message_created
    if:
      - jsonpath: "$.nothing[*]"
        exists: true
    do: [ { reply: no } ]
"#,
    );
    let (report, actions) = run(&e, &message("hi")).await;
    assert_eq!(report.matched, ["w/mentions-someone"]);
    assert_eq!(replies(&actions), ["yes"]);
}

#[tokio::test]
async fn action_conditions_see_bindings_and_captures_by_path() {
    let e = engine(
        r#"version: 1
rules:
  - name: order
    on: message_created
    if: [ { event.content: { matches: 'order (?P<order>\d+)' } } ]
    do:
      - incr: { key: k }
        as: count
      - reply: first
        if: [ { count: 1 }, { match.order: "42" }, { match.1: "42" } ]
      - reply: never
        if: { count: 2 }
"#,
    );
    let (_, actions) = run(&e, &message("order 42")).await;
    assert_eq!(replies(&actions), ["first"]);
}

#[tokio::test]
async fn throttle_windows_carry_over_a_swap_for_rules_that_remain() {
    let yaml = |reply: &str| {
        format!("version: 1\nrules:\n  - name: greet\n    on: message_created\n    throttle: {{ key: \"{{{{ event.chat_room_id }}}}\", max: 1, per: 10m }}\n    do: [ {{ reply: {reply} }} ]\n")
    };
    let e = engine(&yaml("hello"));
    assert_eq!(
        run(&e, &message("hi")).await.0.trace[0].verdict,
        Verdict::Matched
    );
    e.swap(Arc::new(load_str("w.yaml", &yaml("changed")).unwrap()));
    assert_eq!(
        run(&e, &message("hi")).await.0.trace[0].verdict,
        Verdict::Throttled,
        "window kept"
    );
    let renamed = yaml("x").replace("name: greet", "name: other");
    e.swap(Arc::new(load_str("w.yaml", &renamed).unwrap()));
    assert_eq!(
        run(&e, &message("hi")).await.0.trace[0].verdict,
        Verdict::Matched,
        "a new rule starts fresh"
    );
}

/// Refuses `reply` as the platform does while the room is stopped; records the rest.
struct StoppedRoom(RecordingExecutor);

impl switchboard_engine::action::Executor for StoppedRoom {
    fn execute<'a>(
        &'a self,
        action: &'a RenderedAction,
        scope: &'a Scope,
    ) -> switchboard_engine::action::ActionFuture<'a> {
        if action.name() == "reply" {
            return Box::pin(async move {
                Err(switchboard_engine::action::ActionError {
                    action: action.name(),
                    message: "HTTP 403 forbidden: execution is stopped".into(),
                    kind: switchboard_engine::action::ErrorKind::ExecutionStopped,
                })
            });
        }
        self.0.execute(action, scope)
    }

    fn landed<'a>(
        &'a self,
        action: &'a RenderedAction,
        scope: &'a Scope,
    ) -> switchboard_engine::action::LandedFuture<'a> {
        self.0.landed(action, scope)
    }
}

#[tokio::test]
async fn an_action_refused_by_a_stop_ends_the_event_as_stopped_without_fallbacks() {
    let yaml = r#"
version: 1
rules:
  - name: answer
    on: message_created
    do:
      - post_event: { type: thought, content: thinking }
      - reply: "here"
        on_error: continue
      - post_event: { type: thought, content: after }
    on_error:
      - post_event: { type: error, content: "fallback: {{ error }}" }
  - name: later
    on: message_created
    do:
      - post_event: { type: thought, content: "a later rule" }
"#;
    let e = engine(yaml);
    let ex = StoppedRoom(RecordingExecutor::new());
    let r = e.handle(&message("hi"), &Scope::default(), &ex).await;
    assert_eq!(
        r.outcome,
        Finish::Stopped {
            reason: "w/answer: reply: HTTP 403 forbidden: execution is stopped".into()
        }
    );
    // Only the step before the refusal went out: no `continue`, no
    // fallback, no later action or rule.
    let sent: Vec<String> =
        ex.0.actions()
            .iter()
            .map(|a| serde_json::to_value(a).unwrap()["post_event"]["content"].to_string())
            .collect();
    assert_eq!(sent, ["\"thinking\""]);
    assert_eq!(r.actions.last().unwrap().status, ActionStatus::Failed);
}
