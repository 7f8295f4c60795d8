//! Secrets in the engine: `secrets.NAME` renders the value into an `http`
//! request; a platform action that would carry it is refused; `set` keeps
//! `[secret:NAME]`; failure reasons (what goes to the platform) are
//! redacted; without a value (a dry run) templates see the placeholder.

use std::sync::Arc;

use crate::replies::replies;
use serde_json::json;
use switchboard_engine::action::{RenderedAction, Scope};
use switchboard_engine::{Engine, EventInput, Finish, RecordingExecutor, StateStore};
use switchboard_workflow::load_str;
use switchboard_workflow::secrets::SecretValues;

const VALUE: &str = "tok-5f1e9c3a7b";

const WORKFLOW: &str = r#"version: 1
secrets:
  partner_key: { env: PARTNER_API_KEY }
rules:
  - name: lookup
    on: message_created
    if:
      - event.content: { contains: orders }
    do:
      - http:
          url: https://partner.example/api
          headers: { Authorization: "Bearer {{ secrets.partner_key }}" }
      - set: { key: token, value: "{{ secrets.partner_key }}" }
      - reply: done
  - name: leak
    on: message_created
    if:
      - event.content: { contains: leak }
    do:
      - reply: "key: {{ secrets.partner_key }}"
  - name: ask
    on: message_created
    if:
      - event.content: { contains: question }
    do:
      - ask:
          to: "@carol"
          text: "May I use {{ secrets.partner_key }}?"
          timeout: 1h
  - name: fail
    on: message_created
    if:
      - event.content: { contains: fail }
    do:
      - fail: "cannot use {{ secrets.partner_key }}"
"#;

fn engine(values: Option<&str>) -> Engine {
    let rs = load_str("w.yaml", WORKFLOW).unwrap_or_else(|e| panic!("{e}"));
    let mut secrets = SecretValues::new();
    if let Some(v) = values {
        secrets.insert("partner_key", v);
    }
    Engine::new(Arc::new(rs), Arc::new(StateStore::in_memory())).with_secrets(secrets)
}

fn message(content: &str) -> EventInput {
    EventInput {
        event_type: "message_created".into(),
        event: Arc::new(
            json!({"id": "m1", "content": content, "sender_type": "User",
            "sender_id": "u1", "sender_name": "Ann", "chat_room_id": "r1"}),
        ),
        agent: Arc::new(json!({"id": "a1", "handle": "acme/bot", "name": "Bot"})),
        chat: None,
        sender: None,
        now: "2026-01-05T09:00:00Z".parse().unwrap(),
    }
}

fn header(actions: &[RenderedAction]) -> Option<String> {
    actions.iter().find_map(|a| match a {
        RenderedAction::Http(h) => h.headers.get("Authorization").cloned(),
        _ => None,
    })
}

#[tokio::test]
async fn the_http_request_gets_the_value_and_state_the_placeholder() {
    let e = engine(Some(VALUE));
    let ex = RecordingExecutor::new();
    let report = e
        .handle(&message("my orders"), &Scope::default(), &ex)
        .await;
    assert_eq!(report.outcome, Finish::Done);
    assert_eq!(header(&ex.actions()), Some(format!("Bearer {VALUE}")));
    let state = e.state().snapshot("2026-01-05T09:00:00Z".parse().unwrap());
    assert_eq!(state["token"], json!("[secret:partner_key]"));
}

#[tokio::test]
async fn a_message_that_would_carry_a_secret_is_refused() {
    let e = engine(Some(VALUE));
    let ex = RecordingExecutor::new();
    let report = e.handle(&message("leak"), &Scope::default(), &ex).await;
    assert!(replies(&ex.actions()).is_empty(), "{:?}", ex.actions());
    let Finish::Failed { reason } = &report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert!(
        reason.contains("reply would send the secret `partner_key` to the platform"),
        "{reason}"
    );
    // `ask` sends its question as a message: refused the same way.
    let in_room = Scope {
        chat_id: Some("r1".into()),
        ..Scope::default()
    };
    let report = e.handle(&message("question"), &in_room, &ex).await;
    assert!(report.pending.is_empty());
    assert!(
        !ex.actions()
            .iter()
            .any(|a| matches!(a, RenderedAction::SendMessage(_))),
        "{:?}",
        ex.actions()
    );
    let Finish::Failed { reason } = &report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert!(
        reason.contains("ask would send the secret `partner_key` to the platform"),
        "{reason}"
    );
    let report = e.handle(&message("fail"), &Scope::default(), &ex).await;
    assert_eq!(
        report.outcome,
        Finish::Failed {
            reason: "w/fail: cannot use [secret:partner_key]".into()
        }
    );
}

#[tokio::test]
async fn without_a_value_templates_see_the_placeholder() {
    let e = engine(None);
    let ex = RecordingExecutor::new();
    e.handle(&message("orders"), &Scope::default(), &ex).await;
    assert_eq!(
        header(&ex.actions()),
        Some("Bearer [secret:partner_key]".into())
    );
}
