//! For every registered action, the JSON Schema, the loader's checks, the
//! renderer and the executor agree: an action missing from one of them, or
//! with different argument names in two of them, fails here.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use serde_json::json;
use switchboard_engine::action::{LocalAction, RenderedAction, Scope, Split};
use switchboard_engine::run::ActionStatus;
use switchboard_engine::{Engine, EventInput, Finish, RecordingExecutor, StateStore};
use switchboard_workflow::actions::{self, ActionSpec, Kind};
use switchboard_workflow::{json_schema, load_str};

/// The engine has no runtime of its own and, with a recording executor and
/// in-memory state, never waits: polling once finishes it.
fn ready<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the engine waited on something"),
    }
}

fn workflow(action: &str, args: &str) -> String {
    format!("version: 1\nrules:\n  - name: r\n    on: message_created\n    do:\n      - {action}: {args}\n")
}

fn keys(spec: &ActionSpec) -> BTreeSet<String> {
    spec.arg_keys().iter().cloned().collect()
}

#[test]
fn the_registry_has_each_action_once() {
    let names: BTreeSet<&str> = actions::names().collect();
    assert_eq!(names.len(), actions::ALL.len());
    for spec in actions::ALL {
        assert!(!spec.arg_keys().is_empty(), "{}: no arguments", spec.name);
        let known = keys(spec);
        let named = spec
            .required()
            .iter()
            .map(String::as_str)
            .chain(spec.shorthand)
            .chain(spec.one_of.iter().copied())
            .chain(spec.durations.iter().copied())
            .chain(spec.choices.iter().map(|(k, _)| *k));
        for k in named {
            assert!(known.contains(k), "{}: `{k}` is not an argument", spec.name);
        }
    }
}

#[test]
fn the_schema_has_every_action_with_its_arguments() {
    let schema = json_schema();
    let variants = schema["$defs"]["Action"]["anyOf"][0]["oneOf"]
        .as_array()
        .expect("the action variants");
    assert_eq!(variants.len(), actions::ALL.len());
    for (spec, variant) in actions::ALL.iter().zip(variants) {
        assert_eq!(variant["required"], json!([spec.name]));
        let args = &variant["properties"][spec.name];
        let reference = json!(format!("#/$defs/{}", spec.name));
        match spec.shorthand {
            Some(_) => assert_eq!(args["anyOf"][0]["$ref"], reference, "{}", spec.name),
            None => assert_eq!(args["$ref"], reference, "{}", spec.name),
        }
        let def = &schema["$defs"][spec.name];
        let props: BTreeSet<String> = def["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        assert_eq!(props, keys(spec), "{}", spec.name);
        let required: BTreeSet<String> = spec.required().iter().cloned().collect();
        let in_schema: BTreeSet<String> = def["required"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(in_schema, required, "{}", spec.name);
    }
}

#[test]
fn the_checker_accepts_each_example_and_rejects_an_unknown_argument() {
    for spec in actions::ALL {
        let text = workflow(spec.name, spec.example);
        let ruleset = load_str("t.yaml", &text)
            .unwrap_or_else(|e| panic!("{}: the example does not load:\n{e}", spec.name));
        let given: BTreeSet<String> = ruleset.rules()[0].actions[0]
            .args
            .iter()
            .map(|(k, _)| k.clone())
            // Conditions and action lists are compiled into the rule, not kept as arguments.
            .chain(spec.nested.iter().map(|k| k.to_string()))
            .collect();
        assert_eq!(
            given,
            keys(spec),
            "{}: the example must give every argument",
            spec.name
        );

        let first = &spec.arg_keys()[0];
        let wrong = format!("{first}x");
        let bad = spec.example.replacen("{ ", &format!("{{ {wrong}: 1, "), 1);
        let err = load_str("t.yaml", &workflow(spec.name, &bad))
            .expect_err(spec.name)
            .to_string();
        assert!(
            err.contains(&format!("unknown key `{wrong}` in `{}`", spec.name))
                && err.contains(&format!("did you mean `{first}`?")),
            "{}: {err}",
            spec.name
        );
    }
}

#[test]
fn the_renderer_and_the_executor_handle_every_action() {
    let input = EventInput {
        event_type: "message_created".into(),
        event: Arc::new(json!({"id": "m1", "content": "hi", "chat_room_id": "r1"})),
        agent: Arc::new(json!({"id": "a1", "handle": "acme/bot"})),
        chat: None,
        sender: None,
        now: chrono::Utc::now(),
    };
    let scope = Scope {
        chat_id: Some("r1".into()),
        message_id: Some("m1".into()),
        ..Scope::default()
    };
    for spec in actions::ALL {
        let ruleset = load_str("t.yaml", &workflow(spec.name, spec.example)).unwrap();
        let engine = Engine::new(Arc::new(ruleset), Arc::new(StateStore::in_memory()));
        let executor = RecordingExecutor::new();
        let report = ready(engine.handle(&input, &scope, &executor));
        let expected = match spec.kind {
            Kind::Pause => ActionStatus::Paused,
            _ => ActionStatus::Ok,
        };
        let record = report.actions.last().expect(spec.name);
        assert_eq!(record.status, expected, "{}: {:?}", spec.name, record.error);
        let rendered: &RenderedAction = record.action.as_ref().expect(spec.name);
        assert_eq!(rendered.name(), spec.name);
        assert_eq!(rendered.kind(), spec.kind, "{}", spec.name);
        assert_eq!(
            rendered.is_local(),
            spec.kind == Kind::Local,
            "{}",
            spec.name
        );

        // What dry runs show and workflow tests compare: `{name: {args}}`,
        // with only argument names the loader accepts.
        let shown = serde_json::to_value(rendered).unwrap();
        let args = shown[spec.name].as_object().expect(spec.name);
        let known = keys(spec);
        assert!(
            args.keys().all(|k| known.contains(k)),
            "{}: {shown}",
            spec.name
        );

        let performed = executor.actions();
        match spec.kind {
            Kind::Platform => assert_eq!(performed, vec![rendered.clone()], "{}", spec.name),
            Kind::Local => assert!(performed.is_empty(), "{}: {performed:?}", spec.name),
            // A pause reaches no executor; `ask` sends its question as a message.
            Kind::Pause => {
                assert_eq!(report.pending.len(), 1, "{}", spec.name);
                let sent: Vec<&str> = performed.iter().map(|a| a.name()).collect();
                let question: &[&str] = if spec.name == "ask" {
                    &["send_message"]
                } else {
                    &[]
                };
                assert_eq!(sent, question, "{}", spec.name);
            }
        }
        let failed = matches!(report.outcome, Finish::Failed { .. });
        assert_eq!(
            failed,
            matches!(rendered.split(), Split::Local(LocalAction::Fail(_))),
            "{}: {:?}",
            spec.name,
            report.outcome
        );
    }
}
