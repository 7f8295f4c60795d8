//! The `llm` action against a small OpenAI-compatible server the tests start
//! on loopback, answering in the Chat Completions wire format (streaming
//! off): a good answer routes (the participant is added in the sandbox),
//! a malformed answer, one the schema refuses and one that is no JSON fall
//! back through `on_error`, a 429 with `Retry-After` is waited out (within
//! the action's `timeout`), a slow model fails at the `timeout`, a crash
//! after the call does not ask again, and the key is never shown.

use crate::support::{cli, harness, seeded};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use cli::{run_command, Running};
use harness::Harness;
use serde_json::{json, Value};
use switchboard::agent::LlmConfig;
use switchboard_engine::Finish;

/// The key the tests give; it must never appear in anything the agent shows.
const KEY: &str = "sk-test-8f2c1e7a9b4d-never-shown";
/// The example shipped with the repository: keywords first, then the model.
const EXAMPLE: &str = "examples/llm-triage";
/// The fallback of the example's model rule.
const FALLBACK: &str = "I couldn't tell who should help with this";
const STEP: Duration = Duration::from_secs(20);

/// One request the model server saw: its headers and JSON body.
#[derive(Clone, Debug)]
struct Call {
    headers: HeaderMap,
    body: Value,
}

/// What the model server saw, and how many times each prompt was asked.
#[derive(Clone, Default)]
struct Model {
    calls: Arc<Mutex<Vec<Call>>>,
    asked: Arc<Mutex<HashMap<String, usize>>>,
}

impl Model {
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Calls whose user message contains `text`.
    fn calls_about(&self, text: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| user_message(&c.body).contains(text))
            .count()
    }
}

fn user_message(body: &Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// A chat completion as the API answers it (streaming off).
fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": 1741570283,
        "model": "test-model-2026-01-01",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": 41,
            "completion_tokens": 7,
            "total_tokens": 48,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        },
        "service_tier": "default",
        "system_fingerprint": "fp_f9f4fb6dbf"
    })
}

/// Answers by what the user asked: the word in the prompt picks the behaviour.
async fn chat(State(model): State<Model>, headers: HeaderMap, body: Json<Value>) -> Response {
    let Json(body) = body;
    let prompt = user_message(&body);
    model.calls.lock().unwrap().push(Call {
        headers,
        body: body.clone(),
    });
    let nth = {
        let mut asked = model.asked.lock().unwrap();
        let n = asked.entry(prompt.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let ok = |content: &str| Json(completion(content)).into_response();
    if prompt.contains("garbled") {
        // Cut off mid-object: not JSON at all.
        return (
            [("content-type", "application/json")],
            r#"{"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"index": 0, "mess"#,
        )
            .into_response();
    }
    if prompt.contains("sideways") {
        // JSON, but no chat completion (choices is not a list).
        return Json(json!({"object": "chat.completion", "choices": "none today"})).into_response();
    }
    if prompt.contains("sales") {
        return ok(r#"{"route": "sales"}"#);
    }
    if prompt.contains("chatty") {
        return ok("I would send this to the docs team.");
    }
    if prompt.contains("crowded") && nth == 1 {
        let body = json!({"error": {"message": "Rate limit reached for requests", "type": "requests", "param": null, "code": "rate_limit_exceeded"}});
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            Json(body),
        )
            .into_response();
    }
    if prompt.contains("swamped") {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "120")],
            Json(json!({"error": {"message": "Rate limit reached", "type": "requests"}})),
        )
            .into_response();
    }
    if prompt.contains("jammed") {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "0")],
            "upstream overloaded",
        )
            .into_response();
    }
    if prompt.contains("locked") {
        // A server that echoes the key it refused.
        let message = format!("Incorrect API key provided: {KEY}");
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}})),
        )
            .into_response();
    }
    if prompt.contains("slowly") {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    if prompt.contains("fenced") {
        return ok("```json\n{\"route\": \"billing\"}\n```");
    }
    if prompt.contains("crowded") || prompt.contains("money") {
        return ok(r#"{"route": "billing"}"#);
    }
    ok(r#"{"route": "docs"}"#)
}

/// The model server on 127.0.0.1 at a free port: its base URL (`.../v1`).
async fn model_server() -> (String, Model) {
    let model = Model::default();
    let router = Router::new()
        .route("/v1/chat/completions", post(chat))
        .with_state(model.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://127.0.0.1:{port}/v1"), model)
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(EXAMPLE)
}

async fn agent_on(workflows: PathBuf, url: &str) -> Harness {
    let llm = LlmConfig::new(url, "test-model", Some(KEY.into())).unwrap();
    Harness::start_configured(workflows, move |c| c.llm = Some(llm)).await
}

/// The error of the first failed action of a report.
fn failed_action(report: &switchboard::agent::Handled) -> String {
    report
        .report
        .actions
        .iter()
        .find_map(|a| a.error.clone())
        .unwrap_or_else(|| panic!("no action failed: {:?}", report.report.actions))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_answer_routes_and_keywords_route_without_the_model() {
    let (url, model) = model_server().await;
    let mut h = agent_on(example(), &url).await;

    // No keyword: the model is asked and its route taken.
    let (id, report) = h.bob_says("How do I move my data elsewhere?").await;
    assert_eq!(report.report.outcome, Finish::Done, "{:?}", report.report);
    assert_eq!(report.report.matched, ["triage/ask-the-model"]);
    assert!(h.participants().await.contains(&"alice/faq-bot".to_owned()));
    let replies = h.bot_messages_after(&id).await;
    assert!(
        replies[0].content.contains("I've asked alice/faq-bot"),
        "{}",
        replies[0].content
    );
    let verdict = report.report.actions[0].result.clone().unwrap();
    assert_eq!(verdict["json"], json!({"route": "docs"}));
    assert_eq!(verdict["text"], r#"{"route": "docs"}"#);
    assert_eq!(verdict["model"], "test-model-2026-01-01");
    assert_eq!(verdict["usage"]["total_tokens"], 48);

    // What went over the wire: the Chat Completions request.
    let calls = model.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0];
    assert_eq!(
        call.headers.get("authorization").unwrap(),
        &format!("Bearer {KEY}")
    );
    let body = &call.body;
    assert_eq!(body["model"], "test-model");
    assert_eq!(body["stream"], false);
    assert_eq!(body["messages"][0]["role"], "system");
    assert!(body["messages"][0]["content"]
        .as_str()
        .unwrap()
        .starts_with("Classify the support question."));
    // The mention of the bot is stripped from the prompt.
    assert_eq!(body["messages"][1]["role"], "user");
    assert_eq!(
        body["messages"][1]["content"],
        "How do I move my data elsewhere?"
    );
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(
        body["response_format"]["json_schema"]["schema"]["required"],
        json!(["route"])
    );

    // A keyword routes first: the model is not asked.
    let (_, report) = h.bob_says("I want a refund").await;
    assert_eq!(report.report.matched, ["triage/billing-by-keyword"]);
    assert_eq!(model.calls().len(), 1, "the model was asked");
    assert!(h
        .participants()
        .await
        .contains(&"alice/billing-agent".to_owned()));

    // An answer in a Markdown fence is still JSON.
    let (_, report) = h.bob_says("a fenced question").await;
    assert_eq!(report.report.outcome, Finish::Done, "{:?}", report.report);
    assert_eq!(
        report.report.actions[0].result.as_ref().unwrap()["json"]["route"],
        "billing"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_that_are_not_the_json_asked_for_fall_back_through_on_error() {
    let (url, _model) = model_server().await;
    let mut h = agent_on(example(), &url).await;
    for (prompt, why) in [
        ("a garbled answer", "not a chat completion"),
        ("a sideways answer", "not a chat completion"),
        ("route me to sales", "does not match `schema`"),
        ("a chatty model", "not the JSON `schema` asks for"),
    ] {
        let (id, report) = h.bob_says(prompt).await;
        // The fallback ran: handled, with the fallback's reply.
        assert_eq!(
            report.report.outcome,
            Finish::Done,
            "{prompt}: {:?}",
            report.report
        );
        let error = failed_action(&report);
        assert!(error.contains(why), "{prompt}: {error}");
        let replies = h.bot_messages_after(&id).await;
        assert_eq!(replies.len(), 1, "{prompt}: {replies:?}");
        assert!(
            replies[0].content.contains(FALLBACK),
            "{}",
            replies[0].content
        );
        assert_eq!(h.settled_status(&id).await, "processed");
    }
    // A schema violation names the value refused.
    let (_, report) = h.bob_says("route me to sales again").await;
    let error = failed_action(&report);
    assert!(
        error.contains("/route") && error.contains("sales"),
        "{error}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_waited_out_after_retry_after_within_the_timeout() {
    let (url, model) = model_server().await;
    let mut h = agent_on(example(), &url).await;
    let started = Instant::now();
    let (_, report) = h.bob_says("a crowded service").await;
    assert_eq!(report.report.outcome, Finish::Done, "{:?}", report.report);
    assert_eq!(report.report.actions[0].error, None);
    assert_eq!(model.calls_about("crowded"), 2, "one 429, one answer");
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After: 1 was not waited: {:?}",
        started.elapsed()
    );
    assert!(h
        .participants()
        .await
        .contains(&"alice/billing-agent".to_owned()));

    // A Retry-After past the action's 20s timeout fails at once, not after it.
    let started = Instant::now();
    let (_, report) = h.bob_says("a swamped service").await;
    let error = failed_action(&report);
    assert!(
        error.contains("HTTP 429")
            && error.contains("Rate limit reached")
            && error.contains("timeout"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(model.calls_about("swamped"), 1);

    // A server that stays busy is asked a bounded number of times.
    let (_, report) = h.bob_says("a jammed service").await;
    let error = failed_action(&report);
    assert!(
        error.contains("HTTP 503: upstream overloaded, 4 attempts"),
        "{error}"
    );
    assert_eq!(model.calls_about("jammed"), 4);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_model_fails_at_the_timeout_and_the_llm_host_is_not_open_to_http() {
    let (url, model) = model_server().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ask.yaml"),
        format!(
            r#"version: 1
rules:
  - name: peek
    on: message_created
    if: [ {{ event.text: {{ contains: peek }} }} ]
    do:
      - http: {{ url: "{url}/chat/completions", json: {{ model: x }} }}
    stop: true
  - name: ask
    on: message_created
    do:
      - llm: {{ prompt: "{{{{ event.content | strip_mentions }}}}", timeout: 1s }}
        as: answer
      - reply: "{{{{ answer.text }}}}"
"#
        ),
    )
    .unwrap();
    let mut h = agent_on(dir.path().to_owned(), &url).await;

    let started = Instant::now();
    let (id, report) = h.bob_says("answer slowly please").await;
    let Finish::Failed { reason } = &report.report.outcome else {
        panic!("{:?}", report.report);
    };
    assert!(
        reason.contains("no answer from the model within 1s"),
        "{reason}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(h.bot_messages_after(&id).await.is_empty());

    // Without a schema the text is the result.
    let (id, report) = h.bob_says("what is up").await;
    assert_eq!(report.report.outcome, Finish::Done, "{:?}", report.report);
    let replies = h.bot_messages_after(&id).await;
    assert!(
        replies[0].content.ends_with(r#" {"route": "docs"}"#),
        "{}",
        replies[0].content
    );
    assert!(report.report.actions[0]
        .result
        .as_ref()
        .unwrap()
        .get("json")
        .is_none());

    // --llm-url opens the model to `llm` only, not to `http`.
    let before = model.calls().len();
    let (_, report) = h.bob_says("peek at the model").await;
    let Finish::Failed { reason } = &report.report.outcome else {
        panic!("{:?}", report.report);
    };
    assert!(reason.contains("host 127.0.0.1 is not allowed"), "{reason}");
    assert_eq!(model.calls().len(), before);

    // A server that echoes the key: the failure reason does not.
    let (_, report) = h.bob_says("locked out").await;
    let Finish::Failed { reason } = &report.report.outcome else {
        panic!("{:?}", report.report);
    };
    assert!(reason.contains("HTTP 401"), "{reason}");
    assert!(!reason.contains(KEY), "{reason}");
    h.stop().await;
}

/// Polls until `check` holds, within [`STEP`].
async fn eventually(what: &str, agent: &Running, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !check().await {
        if Instant::now() > deadline {
            panic!("{what}; logs:\n{}", agent.stderr_lines().join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_call_does_not_ask_again_and_the_key_is_never_logged() {
    let (url, model) = model_server().await;
    let (sb, bob, room, bot) = seeded::seeded_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let key_file = dir.path().join("llm-key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    // First by flags and the key's variable, then by the environment alone.
    let command = |from_env: bool| {
        let mut cmd = run_command(&sb, &example());
        cmd.arg("--state-dir").arg(&state).env("RUST_LOG", "debug");
        match from_env {
            false => cmd
                .args(["--llm-url", &url, "--llm-model", "test-model"])
                .env("SWITCHBOARD_LLM_API_KEY", KEY),
            true => cmd
                .env("SWITCHBOARD_LLM_URL", &url)
                .env("SWITCHBOARD_LLM_MODEL", "test-model")
                .env("SWITCHBOARD_LLM_KEY_FILE", &key_file),
        };
        cmd
    };
    let mut first = Running::spawn(&mut command(false));
    first
        .wait_for_stderr("startup sync", STEP, |l| l.contains("startup sync done"))
        .await;
    // Adding the participant hangs: the model has answered, the next step is out.
    let faults = format!("{}/_sandbox/faults", sb.rest_url());
    let armed = reqwest::Client::new()
        .post(&faults)
        .json(&json!({"delay": {"method": "POST", "path": "/participants", "ms": 30000}}))
        .send()
        .await
        .unwrap();
    assert!(armed.status().is_success());
    let id = seeded::ask(&bob, &room, &bot, "How can I move my data elsewhere?").await;
    let journal = state.join("journal");
    eventually("the answer was never journaled", &first, async || {
        std::fs::read_to_string(&journal).is_ok_and(|j| j.contains("test-model-2026-01-01"))
    })
    .await;
    first.signal("KILL");
    let (_, first_logs) = first.wait_exit(STEP).await;
    reqwest::Client::new()
        .post(&faults)
        .json(&json!({"clear": true}))
        .send()
        .await
        .unwrap();

    let second = Running::spawn(&mut command(true));
    let status = async || {
        seeded::sandbox_state(&sb).await["messages"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["id"] == id.as_str()).cloned())
            .and_then(|m| m["delivery"][&bot]["status"].as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    eventually(
        "the message was not processed after the restart",
        &second,
        async || status().await == "processed",
    )
    .await;
    let reply = seeded::reply_after(&bob, &room, &bot, &id, STEP).await;
    assert_eq!(model.calls().len(), 1, "the model was asked again");
    // A new question is asked, with the settings and key from the environment.
    let next = seeded::ask(
        &bob,
        &room,
        &bot,
        "And can I move the old data elsewhere too?",
    )
    .await;
    let next_reply = seeded::reply_after(&bob, &room, &bot, &next, STEP).await;
    let second_logs = second.stop_cleanly("the restarted agent", STEP).await;
    assert!(next_reply.is_some(), "{}", second_logs.join("\n"));
    let calls = model.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[1].body["model"], "test-model");
    assert_eq!(
        calls[1].headers.get("authorization").unwrap(),
        &format!("Bearer {KEY}")
    );
    let reply = reply.unwrap_or_else(|| panic!("no reply; logs:\n{}", second_logs.join("\n")));
    assert!(reply.content.contains("alice/faq-bot"), "{}", reply.content);
    let people = bob.list_participants(&room).await.unwrap();
    assert!(people
        .iter()
        .any(|p| p.handle.as_deref() == Some("alice/faq-bot")));
    assert!(
        second_logs
            .iter()
            .any(|l| l.contains("already done before")),
        "{}",
        second_logs.join("\n")
    );
    assert_eq!(
        calls[0].headers.get("authorization").unwrap(),
        &format!("Bearer {KEY}")
    );
    for line in first_logs.iter().chain(&second_logs) {
        assert!(!line.contains(KEY), "the key was logged: {line}");
    }
    let journal_text = std::fs::read_to_string(&journal).unwrap_or_default();
    assert!(!journal_text.contains(KEY));
    sb.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_llm_settings_are_refused_at_start_and_name_the_flag() {
    let missing = std::env::temp_dir().join("switchboard-no-such-llm-key-file");
    let cases: [(&[&str], &str); 4] = [
        (&["--llm-url", "http://127.0.0.1:9/v1"], "--llm-model"),
        (
            &["--llm-url", "ftp://127.0.0.1/v1", "--llm-model", "m"],
            "bad --llm-url",
        ),
        (
            &[
                "--llm-url",
                &format!("http://me:{KEY}@127.0.0.1:9/v1"),
                "--llm-model",
                "m",
            ],
            "SWITCHBOARD_LLM_API_KEY",
        ),
        (
            &[
                "--llm-url",
                "http://127.0.0.1:9/v1",
                "--llm-model",
                "m",
                "--llm-key-file",
                missing.to_str().unwrap(),
            ],
            "switchboard-no-such-llm-key-file",
        ),
    ];
    for (args, expected) in cases {
        let out = cli::output_within(
            cli::switchboard()
                .args(["run", "--api-key", "k", "--ephemeral"])
                .args(args),
            STEP,
        )
        .await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!err.contains(KEY), "{args:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_using_llm_without_a_model_are_warned_about_and_the_key_stays_out_of_templates() {
    let (sb, ..) = seeded::seeded_sandbox().await;
    let mut agent = Running::spawn(run_command(&sb, &example()).arg("--ephemeral"));
    agent
        .wait_for_stderr("a warning about the missing model", STEP, |l| {
            l.contains("triage/ask-the-model") && l.contains("--llm-url")
        })
        .await;
    agent
        .wait_for_stderr("startup sync", STEP, |l| l.contains("startup sync done"))
        .await;
    agent.stop_cleanly("the agent", STEP).await;

    // `--allow-env` naming a variable that holds the model's key is refused.
    let out = cli::output_within(
        run_command(&sb, &example())
            .args(["--ephemeral", "--allow-env", "MY_SETTING"])
            .args(["--llm-url", "http://127.0.0.1:9/v1", "--llm-model", "m"])
            .env("MY_SETTING", KEY)
            .env("SWITCHBOARD_LLM_API_KEY", KEY),
        STEP,
    )
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("--allow-env MY_SETTING"), "{err}");
    assert!(!err.contains(KEY), "{err}");
    sb.shutdown().await.unwrap();
}
