//! Every shipped workflow, end to end: the real sandbox over loopback, the
//! agent (runtime + engine + REST executor) on `workflows/`, and people
//! acting through the human API.

#[path = "support/seeded.rs"]
mod seeded;

use std::time::Duration;

use serde_json::Value;
use switchboard::agent::{Agent, AgentConfig, Handled};
use switchboard::engine::Outcome;
use switchboard::platform::model::{ChatMessage, Mention};
use switchboard::platform::rest::{AgentApi, HumanApi, HumanMessageQuery, RestConfig};
use switchboard::runtime::RuntimeHandle;
use switchboard::sandbox::{default_seed, RunningSandbox};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(10);

/// A sandbox, the triage bot running the shipped workflows, and bob.
struct Harness {
    sb: RunningSandbox,
    handled: UnboundedReceiver<Handled>,
    agent: RuntimeHandle,
    task: JoinHandle<()>,
    bot_id: String,
    bob: HumanApi,
    room: String,
}

impl Harness {
    async fn start() -> Harness {
        Self::start_with("workflows".into(), Vec::new()).await
    }

    async fn start_with(workflows: std::path::PathBuf, allow_http_hosts: Vec<String>) -> Harness {
        let sb = RunningSandbox::start("127.0.0.1:0".parse().unwrap(), default_seed())
            .await
            .unwrap();
        let (tx, handled) = tokio::sync::mpsc::unbounded_channel();
        let config = AgentConfig {
            rest_url: sb.rest_url(),
            ws_url: sb.ws_url(),
            api_key: "triage-key".into(),
            agent_id: None,
            workflows,
            state_file: None,
            allow_env: Vec::new(),
            allow_http_hosts,
        };
        let agent = Agent::prepare(&config, Some(tx)).await.unwrap();
        let handle = agent.handle();
        let task = tokio::spawn(async move {
            agent.run_until(std::future::pending()).await.unwrap();
        });
        let bob = HumanApi::new(RestConfig::new(sb.rest_url(), "bob-key")).unwrap();
        let room = seeded::support_room(&bob).await;
        let bot_id = AgentApi::new(RestConfig::new(sb.rest_url(), "triage-key"))
            .unwrap()
            .me()
            .await
            .unwrap()
            .id;
        let mut h = Harness {
            sb,
            handled,
            agent: handle,
            task,
            bot_id,
            bob,
            room,
        };
        h.next_handled(|e| e.event_type == "agent_started").await;
        h
    }

    /// The next handled event matching `pred` (others are skipped).
    async fn next_handled(&mut self, pred: impl Fn(&Handled) -> bool) -> Handled {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let h = tokio::time::timeout_at(deadline, self.handled.recv())
                .await
                .expect("the agent handled nothing matching in time")
                .expect("the agent stopped");
            if pred(&h) {
                return h;
            }
        }
    }

    /// Bob mentions the bot in the Support room; returns the agent's report.
    async fn bob_says(&mut self, text: &str) -> (String, Handled) {
        let mention = [Mention {
            id: Some(self.bot_id.clone()),
            ..Mention::default()
        }];
        let id = self
            .bob
            .send_message(&self.room, text, &mention)
            .await
            .unwrap()
            .id;
        let wanted = id.clone();
        let h = self
            .next_handled(move |h| {
                h.event_type == "message_created"
                    && h.event.get("id").and_then(Value::as_str) == Some(wanted.as_str())
            })
            .await;
        (id, h)
    }

    /// The sandbox's whole state.
    async fn state(&self) -> Value {
        reqwest::get(format!("{}/_sandbox/state", self.sb.rest_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The bot's delivery status of a message, polled until it settles.
    async fn settled_status(&self, message: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let state = self.state().await;
            let status = state["messages"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["id"] == message)
                .map(|m| {
                    m["delivery"][&self.bot_id]["status"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned()
                })
                .unwrap_or_default();
            if status == "processed" || status == "failed" || tokio::time::Instant::now() > deadline
            {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn participants(&self) -> Vec<String> {
        self.bob
            .list_participants(&self.room)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|p| p.handle)
            .collect()
    }

    /// Messages the bot sent in the room after `after`.
    async fn bot_messages_after(&self, after: &str) -> Vec<ChatMessage> {
        let query = HumanMessageQuery {
            after: Some(after.to_owned()),
            limit: Some(100),
            ..HumanMessageQuery::default()
        };
        self.bob
            .list_messages(&self.room, &query)
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|m| m.sender_id == self.bot_id)
            .collect()
    }

    async fn stop(self) {
        self.agent.shutdown();
        tokio::time::timeout(WAIT, self.task)
            .await
            .unwrap()
            .unwrap();
        self.sb.shutdown().await.unwrap();
    }
}

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
    assert_eq!(report.report.outcome, Outcome::Done);
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
        Outcome::Done,
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
        Outcome::Failed { reason } => {
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
