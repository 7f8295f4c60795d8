//! Every shipped workflow, end to end: the real sandbox over loopback, the
//! agent (runtime + engine + REST executor) on `workflows/`, and people
//! acting through the human API.

use crate::support::harness;

use band_client::rest::{AgentApi, HumanApi, RestConfig};
use harness::Harness;
use serde_json::Value;
use switchboard::agent::Handled;
use switchboard_engine::Finish;

fn request_status(state: &Value, from: &str) -> String {
    state["contact_requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["from"] == from)
        .map(|r| r["status"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn contacts_are_approved_by_pattern_and_allowlist_and_the_rest_rejected() {
    let mut h = Harness::start().await;
    let url = h.sb.rest_url();
    let human = |key: &str| HumanApi::new(RestConfig::new(url.clone(), key)).unwrap();
    human("bob-key")
        .send_contact_request("alice/triage-bot", Some("hi"))
        .await
        .unwrap();
    let bob = h
        .next_handled(|e| e.event_type == "contact_request_received")
        .await;
    assert_eq!(bob.report.matched, ["contacts/approve-known"]);
    human("carol-key")
        .send_contact_request("@alice/triage-bot", None)
        .await
        .unwrap();
    let carol = h
        .next_handled(|e| e.event_type == "contact_request_received")
        .await;
    assert_eq!(carol.report.else_ran, ["contacts/approve-known"]);
    // A sibling agent matches the organisation pattern.
    AgentApi::new(RestConfig::new(h.sb.rest_url(), "billing-key"))
        .unwrap()
        .add_contact("alice/triage-bot", Some("colleague"))
        .await
        .unwrap();
    let billing = h
        .next_handled(|e| e.event_type == "contact_request_received")
        .await;
    assert_eq!(billing.report.matched, ["contacts/approve-known"]);

    let state = h.state().await;
    assert_eq!(request_status(&state, "bob"), "approved");
    assert_eq!(request_status(&state, "carol"), "rejected");
    assert_eq!(request_status(&state, "alice/billing-agent"), "approved");
    h.stop().await;
}

#[tokio::test]
async fn triage_recruits_the_billing_agent_once_and_tells_the_sender() {
    let mut h = Harness::start().await;
    assert!(!h
        .participants()
        .await
        .contains(&"alice/billing-agent".to_string()));
    let (first, report) = h.bob_says("I was charged twice, I want a refund").await;
    assert_eq!(report.report.matched, ["triage/refunds-to-billing"]);
    assert_eq!(h.settled_status(&first).await, "processed");
    assert!(h
        .participants()
        .await
        .contains(&"alice/billing-agent".to_string()));
    let replies = h.bot_messages_after(&first).await;
    assert_eq!(replies.len(), 1, "{replies:?}");
    let reply = &replies[0];
    assert!(
        reply.content.contains("alice/billing-agent to help you"),
        "{}",
        reply.content
    );
    let mentioned: Vec<String> = reply.metadata.as_ref().unwrap()["mentions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["handle"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(mentioned, ["bob", "alice/billing-agent"]);

    // Asked again: the billing agent is already there; no failure, one more reply.
    let (second, report) = h.bob_says("Another invoice question").await;
    assert_eq!(report.report.outcome, Finish::Done);
    assert_eq!(h.settled_status(&second).await, "processed");
    let count = h
        .participants()
        .await
        .iter()
        .filter(|p| *p == "alice/billing-agent")
        .count();
    assert_eq!(count, 1);

    let (third, report) = h.bob_says("Where is the manual for the router?").await;
    assert_eq!(report.report.matched, ["triage/manuals-to-docs"]);
    assert_eq!(h.settled_status(&third).await, "processed");
    assert!(h
        .participants()
        .await
        .contains(&"alice/faq-bot".to_string()));
    h.stop().await;
}

#[tokio::test]
async fn faq_answers_in_place_and_is_not_counted_as_unanswered() {
    let mut h = Harness::start().await;
    let (id, report) = h.bob_says("What are your opening hours?").await;
    assert_eq!(report.report.matched, ["faq/opening-hours"]);
    assert_eq!(h.settled_status(&id).await, "processed");
    let replies = h.bot_messages_after(&id).await;
    assert_eq!(replies.len(), 1);
    assert!(
        replies[0].content.contains("Monday to Friday"),
        "{}",
        replies[0].content
    );
    let (id, report) = h.bob_says("I forgot my password").await;
    assert_eq!(report.report.matched, ["faq/password-reset"]);
    assert_eq!(h.settled_status(&id).await, "processed");
    let counted = report
        .report
        .trace
        .iter()
        .any(|t| t.rule.starts_with("escalation/"));
    assert!(!counted, "stop keeps the escalation counter away");
    h.stop().await;
}

#[tokio::test]
async fn escalation_pulls_in_a_person_after_three_unanswered_mentions() {
    let mut h = Harness::start().await;
    let mut last = String::new();
    for (n, text) in ["Tell me a joke", "Are you there?", "Hello??"]
        .iter()
        .enumerate()
    {
        let (id, report) = h.bob_says(text).await;
        assert_eq!(report.report.matched, ["escalation/count-unanswered"]);
        assert_eq!(h.settled_status(&id).await, "processed");
        let carol_in = h.participants().await.contains(&"carol".to_string());
        assert_eq!(
            carol_in,
            n == 2,
            "carol joins on the third, not before (after {})",
            n + 1
        );
        last = id;
    }
    let replies = h.bot_messages_after(&last).await;
    let reply = replies
        .iter()
        .find(|m| m.message_type == "text")
        .expect("a reply");
    assert!(
        reply.content.contains("could you help Bob Jones"),
        "{}",
        reply.content
    );
    // The count starts again.
    let (_, report) = h.bob_says("One more?").await;
    let incr = report
        .report
        .actions
        .iter()
        .find(|a| a.name == "incr")
        .unwrap();
    assert_eq!(incr.result, Some(serde_json::json!(1)));
    h.stop().await;
}

#[tokio::test]
async fn agent_started_and_schedules_run_rules_with_no_event() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("timers.yaml"),
        r#"version: 1
rules:
  - name: hello
    on: agent_started
    do:
      - set: { key: started, value: "{{ agent.handle }}" }
  - name: tick
    on: schedule
    every: 200ms
    do:
      - incr: ticks
      - log: "tick {{ state.ticks }} for {{ state.started }}"
"#,
    )
    .unwrap();
    let mut h = Harness::start_with(dir.path().to_owned(), Vec::new()).await;
    let first = h.next_handled(|e| e.event_type == "schedule").await;
    assert_eq!(first.report.matched, ["timers/tick"]);
    let second = h.next_handled(|e| e.event_type == "schedule").await;
    let ticks = |r: &Handled| {
        r.report
            .actions
            .iter()
            .find(|a| a.name == "incr")
            .unwrap()
            .result
            .clone()
    };
    assert_eq!(ticks(&first), Some(serde_json::json!(1)));
    assert_eq!(ticks(&second), Some(serde_json::json!(2)));
    let logged = second
        .report
        .actions
        .iter()
        .find(|a| a.name == "log")
        .unwrap();
    assert_eq!(
        serde_json::to_value(logged.action.as_ref().unwrap()).unwrap(),
        serde_json::json!({"log": {"message": "tick 2 for alice/triage-bot", "level": "info"}}),
        "agent_started ran first and set state"
    );
    h.stop().await;
}

#[tokio::test]
async fn http_reaches_allowed_hosts_only_and_a_refusal_fails_the_message() {
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let hook = {
        let seen = seen.clone();
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(body);
                    axum::Json(serde_json::json!({"ticket": 7}))
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, hook).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hooks.yaml"),
        format!(
            r#"version: 1
rules:
  - name: ticket
    on: message_created
    if: [ {{ event.content: {{ contains: ticket }} }} ]
    do:
      - http: {{ url: "http://127.0.0.1:{port}/hook", json: {{ text: "{{{{ event.content }}}}" }} }}
        as: created
      - reply: "Ticket {{{{ created.body.ticket }}}} opened."
  - name: elsewhere
    on: message_created
    if: [ {{ event.content: {{ contains: elsewhere }} }} ]
    do:
      - http: "http://localhost:{port}/hook"
"#
        ),
    )
    .unwrap();
    let mut h = Harness::start_with(dir.path().to_owned(), vec!["127.0.0.1".into()]).await;
    let (id, report) = h.bob_says("please open a ticket").await;
    assert_eq!(
        report.report.outcome,
        Finish::Done,
        "{:?}",
        report.report.actions
    );
    assert_eq!(h.settled_status(&id).await, "processed");
    assert_eq!(seen.lock().unwrap().len(), 1);
    let reply = h.bot_messages_after(&id).await;
    assert!(
        reply[0].content.contains("Ticket 7 opened."),
        "{}",
        reply[0].content
    );

    let (id, report) = h.bob_says("send it elsewhere").await;
    match &report.report.outcome {
        Finish::Failed { reason } => {
            assert!(reason.contains("host localhost is not allowed"), "{reason}")
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(h.settled_status(&id).await, "failed");
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "nothing was sent to a host not allowed"
    );
    h.stop().await;
}

#[test]
fn shipped_workflows_compile() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
    let rs = switchboard_workflow::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(rs.len() >= 4, "{} rules", rs.len());
}

#[tokio::test]
async fn a_post_refused_because_the_room_is_stopped_is_no_failure_and_resumes_after_play() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("answer.yaml"),
        r#"version: 1
rules:
  - name: answer
    on: message_created
    do:
      - post_event: { type: thought, content: "looking into it" }
      - reply: "here is the answer"
        on_error: continue
    on_error:
      - log: { message: "fallback ran: {{ error }}", level: warn }
"#,
    )
    .unwrap();
    let mut h = Harness::start_with(dir.path().to_owned(), Vec::new()).await;
    let (url, agent, room) = (h.sb.rest_url(), h.bot_id.clone(), h.room.clone());
    let control = |mode: &str| {
        let (url, agent, room) = (url.clone(), agent.clone(), room.clone());
        let body =
            serde_json::json!({"agent": agent, "mode": mode, "room": room, "push": mode == "play"});
        async move {
            let resp = reqwest::Client::new()
                .post(format!("{url}/_sandbox/control"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success(), "{}", resp.status());
        }
    };
    // Hold the claim and the reply (both POSTs under the room's messages);
    // the event goes out at once.
    let faults = serde_json::json!({"delay": {"method": "POST", "path": format!("/agent/chats/{}/messages", h.room), "ms": 1500, "count": 2}});
    let resp = reqwest::Client::new()
        .post(format!("{}/_sandbox/faults", h.sb.rest_url()))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let mention = [band_wire::model::Mention {
        id: Some(h.bot_id.clone()),
        ..Default::default()
    }];
    let id = h
        .bob
        .send_message(&h.room, "a question", &mention)
        .await
        .unwrap()
        .id;
    // Wait for the thought (posted after the claim), then STOP with no push
    // while the reply is held: the reply is answered 403 "execution is stopped".
    let deadline = tokio::time::Instant::now() + harness::WAIT;
    while h.bot_events("looking into it").await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no thought posted");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    control("stop").await;
    let first = h
        .next_handled(|e| e.message_id.as_deref() == Some(id.as_str()))
        .await;
    let outcome = serde_json::to_value(&first.report.outcome).unwrap();
    assert_eq!(outcome["status"], "stopped", "{outcome}");
    assert!(
        outcome["reason"]
            .as_str()
            .is_some_and(|r| r.contains("execution is stopped")),
        "{outcome}"
    );
    assert_eq!(
        first
            .report
            .actions
            .iter()
            .map(|a| a.name)
            .collect::<Vec<_>>(),
        ["post_event", "reply"],
        "neither `on_error: continue` nor the fallback applies to a STOP"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(h.delivery_status(&id).await, "processing", "left for PLAY");
    control("play").await;
    let again = h
        .next_handled(|e| e.message_id.as_deref() == Some(id.as_str()))
        .await;
    assert_eq!(again.report.outcome, Finish::Done, "{:?}", again.report);
    assert_eq!(h.settled_status(&id).await, "processed");
    let replies = h.bot_messages_after(&id).await;
    let texts: Vec<&str> = replies.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(
        texts
            .iter()
            .filter(|t| t.contains("here is the answer"))
            .count(),
        1,
        "{texts:?}"
    );
    assert_eq!(
        h.bot_events("looking into it").await,
        1,
        "the thought was posted again"
    );
    h.stop().await;
}

/// The billing agent's id in the default seed.
async fn billing_id(h: &Harness) -> String {
    AgentApi::new(RestConfig::new(h.sb.rest_url(), "billing-key"))
        .unwrap()
        .me()
        .await
        .unwrap()
        .id
}

/// The billing agent's delivery status of the bot's one reply after `after`.
async fn billing_delivery(h: &Harness, after: &str, billing: &str) -> (String, String) {
    let replies = h.bot_messages_after(after).await;
    assert_eq!(replies.len(), 1, "{replies:?}");
    let state = h.state().await;
    let status = state["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == replies[0].id.as_str())
        .and_then(|m| m["delivery"][billing]["status"].as_str())
        .unwrap_or("")
        .to_owned();
    (replies[0].content.clone(), status)
}

#[tokio::test]
async fn a_mention_marker_or_participant_handle_in_a_reply_text_is_a_mention() {
    let dir = tempfile::tempdir().unwrap();
    // Ids are made when the sandbox starts: bob's message ends with the one
    // the `by-id` rule turns into a marker.
    let workflow = r#"version: 1
rules:
  - name: by-id
    on: message_created
    if: [ { event.content: { contains: by id } } ]
    do:
      - add_participant: alice/billing-agent
      - reply: "ask {{ event.content[-36:] | mention }}"
  - name: by-handle
    on: message_created
    if: [ { event.content: { contains: by handle } } ]
    do:
      - add_participant: alice/billing-agent
      - send_message:
          chat: "{{ chat.id }}"
          text: "ask @alice/billing-agent, bob@example.com is not one"
          mentions: ["{{ sender.id }}"]
"#;
    std::fs::write(dir.path().join("mentions.yaml"), workflow).unwrap();
    let mut h = Harness::start_with(dir.path().to_path_buf(), Vec::new()).await;
    let billing = billing_id(&h).await;

    let (first, report) = h.bob_says(&format!("please route by id {billing}")).await;
    assert_eq!(report.report.matched, ["mentions/by-id"]);
    assert_eq!(h.settled_status(&first).await, "processed");
    let (content, status) = billing_delivery(&h, &first, &billing).await;
    assert!(content.contains(&format!("@[[{billing}]]")), "{content}");
    assert_eq!(
        status, "delivered",
        "the marker's agent is mentioned: {content}"
    );

    let (second, report) = h.bob_says("please route by handle").await;
    assert_eq!(report.report.matched, ["mentions/by-handle"]);
    assert_eq!(h.settled_status(&second).await, "processed");
    let (content, status) = billing_delivery(&h, &second, &billing).await;
    assert_eq!(
        status, "delivered",
        "the handle's agent is mentioned: {content}"
    );
    h.stop().await;
}

/// Rules match on `event.text`, the message as the person wrote it: the
/// platform's `@[[id]]` marker becomes the mentioned agent's `@handle`, so
/// its UUID neither feeds a digit pattern nor hides the first word.
#[tokio::test]
async fn rules_match_the_text_with_handles_not_the_markers_uuid() {
    let dir = tempfile::tempdir().unwrap();
    let workflow = r#"version: 1
rules:
  - name: number
    on: message_created
    if: [ { event.text: { matches: '^@\S+ \d+$' } } ]
    do:
      - reply: "number in {{ event.text }}"
  - name: any-digit
    on: message_created
    if: [ { event.text: { matches: '\d' } } ]
    do:
      - reply: "a digit"
"#;
    std::fs::write(dir.path().join("text.yaml"), workflow).unwrap();
    let mut h = Harness::start_with(dir.path().to_path_buf(), Vec::new()).await;

    let (first, report) = h.bob_says("42").await;
    assert_eq!(report.report.matched, ["text/number", "text/any-digit"]);
    let replies = h.bot_messages_after(&first).await;
    let texts: Vec<&str> = replies.iter().map(|m| m.content.as_str()).collect();
    assert!(
        texts
            .iter()
            .any(|t| t.ends_with(" 42") && t.contains("number in @")),
        "the text starts with the agent's handle: {texts:?}"
    );
    assert!(
        texts.iter().all(|t| !t.contains(&h.bot_id)),
        "no UUID in the text: {texts:?}"
    );

    let (_, report) = h.bob_says("hello there").await;
    assert!(
        report.report.matched.is_empty(),
        "the marker's digits are not the person's: {:?}",
        report.report.matched
    );
    h.stop().await;
}

#[tokio::test]
async fn a_running_agent_reads_time_conditions_and_local_now_in_the_rules_zone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hours.yaml"),
        r#"version: 1
timezone: Pacific/Kiritimati      # UTC+14 all year: no daylight saving to race
rules:
  - name: long-gone
    on: message_created
    if:
      - time: { dates: ["2000-01-01"] }
    do: [ { reply: "never" } ]
  - name: any-time
    on: message_created
    if:
      - time: { after: "00:00", weekdays: [mon, tue, wed, thu, fri, sat, sun] }
    do:
      - reply: "{{ local_now }}"
"#,
    )
    .unwrap();
    let mut h = Harness::start_with(dir.path().to_owned(), Vec::new()).await;
    let before = chrono::Utc::now();
    let (first, report) = h.bob_says("what time is it?").await;
    assert_eq!(report.report.matched, ["hours/any-time"]);
    let replies = h.bot_messages_after(&first).await;
    assert_eq!(replies.len(), 1, "{replies:?}");
    // The reply starts with the sender's mention marker; the time is last.
    let content = &replies[0].content;
    let text = content.rsplit(' ').next().unwrap_or_default();
    assert!(text.ends_with("+14:00"), "{content}");
    let said = chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .with_timezone(&chrono::Utc);
    let after = chrono::Utc::now();
    // RFC 3339 from chrono keeps sub-seconds, so the instant is exact.
    assert!(
        before <= said && said <= after,
        "{before} <= {said} <= {after}"
    );
    h.stop().await;
}

/// `who` (a person's API) mentions the bot in the Support room; returns the
/// message's id and the agent's report of it.
async fn person_says(h: &mut Harness, who: &HumanApi, text: &str) -> (String, Handled) {
    let mention = [band_wire::model::Mention {
        id: Some(h.bot_id.clone()),
        ..band_wire::model::Mention::default()
    }];
    let id = who.send_message(&h.room, text, &mention).await.unwrap().id;
    let wanted = id.clone();
    let report = h
        .next_handled(move |e| {
            e.event_type == "message_created"
                && e.event.get("id").and_then(Value::as_str) == Some(wanted.as_str())
        })
        .await;
    (id, report)
}

/// Waits until the bot posted a message containing `text` (the question is
/// sent in the answer's lifecycle, so it may land after the report).
async fn until_bot_said(h: &Harness, text: &str) {
    let deadline = tokio::time::Instant::now() + harness::WAIT;
    while h.bot_events(text).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the bot did not say {text:?} in time"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triage_asks_for_the_order_then_the_on_call_person_approves_the_refund() {
    let mut h = Harness::start().await;
    let carol = HumanApi::new(RestConfig::new(h.sb.rest_url(), "carol-key")).unwrap();
    let (first, report) = h.bob_says("I want my money back").await;
    assert_eq!(report.report.matched, ["triage/money-back-needs-approval"]);
    assert_eq!(h.settled_status(&first).await, "processed");
    until_bot_said(&h, "Which order number is it about?").await;

    // Not a number: not the answer; the rules take it (escalation counts it).
    let (_, other) = h.bob_says("hmm, let me look").await;
    assert_eq!(other.report.matched, ["escalation/count-unanswered"]);

    // The order number answers the question; carol is called in and asked.
    let (order, answered) = h.bob_says("It's order 4711").await;
    assert!(
        !answered
            .report
            .trace
            .iter()
            .any(|t| t.rule.starts_with("escalation/")),
        "an answer does not go through the rules: {:?}",
        answered.report
    );
    assert_eq!(h.settled_status(&order).await, "processed");
    until_bot_said(&h, "Approve a refund for order 4711 (Bob Jones)?").await;
    assert!(h.participants().await.contains(&"carol".to_string()));

    // Carol answers with no choice: one re-prompt, the wait goes on.
    let (unsure, _) = person_says(&mut h, &carol, "which order was that?").await;
    assert_eq!(h.settled_status(&unsure).await, "processed");
    until_bot_said(&h, "Please answer with one of: approve, reject.").await;

    let (decision, _) = person_says(&mut h, &carol, "Approve").await;
    assert_eq!(h.settled_status(&decision).await, "processed");
    until_bot_said(&h, "Your refund for order 4711 was approved.").await;
    let replies = h.bot_messages_after(&decision).await;
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(h.bot_events("Approve a refund for order").await, 1);
    h.stop().await;
}
