//! An agent (runtime + engine + REST executor) on a workflows folder, against
//! the real sandbox, with bob to talk to it: the set-up of the end-to-end tests.
#![allow(dead_code)]

use std::time::Duration;

use band_client::rest::{AgentApi, HumanApi, HumanMessageQuery, RestConfig};
use band_sandbox::{default_seed, RunningSandbox};
use band_wire::model::{ChatMessage, Mention};
use serde_json::Value;
use switchboard::agent::{Agent, AgentConfig, Handled};
use switchboard::rules::reload::ReloadReport;
use switchboard::runtime::RuntimeHandle;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;

use super::seeded;

pub const WAIT: Duration = Duration::from_secs(10);

/// A sandbox, the triage bot running the shipped workflows, and bob.
pub struct Harness {
    pub sb: RunningSandbox,
    pub handled: UnboundedReceiver<Handled>,
    pub reloads: UnboundedReceiver<ReloadReport>,
    agent: RuntimeHandle,
    task: JoinHandle<()>,
    pub bot_id: String,
    pub bob: HumanApi,
    pub room: String,
}

impl Harness {
    pub async fn start() -> Harness {
        Self::start_with("workflows".into(), Vec::new()).await
    }

    pub async fn start_with(
        workflows: std::path::PathBuf,
        allow_http_hosts: Vec<String>,
    ) -> Harness {
        Self::start_full(workflows, allow_http_hosts, false).await
    }

    /// With `watch`, the agent reloads its folder on change; reports arrive in `reloads`.
    pub async fn start_full(
        workflows: std::path::PathBuf,
        allow_http_hosts: Vec<String>,
        watch: bool,
    ) -> Harness {
        Self::start_configured(workflows, |config| {
            config.allow_http_hosts = allow_http_hosts
                .iter()
                .map(|h| h.parse().expect("a valid --allow-http-host entry"))
                .collect();
            config.watch = watch;
        })
        .await
    }

    /// On `workflows`, with `configure` adjusting the agent's settings
    /// (retries, watching) before it starts.
    pub async fn start_configured(
        workflows: std::path::PathBuf,
        configure: impl FnOnce(&mut AgentConfig),
    ) -> Harness {
        let sb = RunningSandbox::start("127.0.0.1:0".parse().unwrap(), default_seed())
            .await
            .unwrap();
        let (tx, handled) = tokio::sync::mpsc::unbounded_channel();
        let mut config =
            AgentConfig::new(sb.rest_url(), sb.ws_url(), "triage-key".into(), workflows);
        configure(&mut config);
        let (reload_tx, reloads) = tokio::sync::mpsc::unbounded_channel();
        let agent = Agent::prepare(&config, Some(tx))
            .await
            .unwrap()
            .with_reload_reports(reload_tx);
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
            reloads,
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
    pub async fn next_handled(&mut self, pred: impl Fn(&Handled) -> bool) -> Handled {
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
    pub async fn bob_says(&mut self, text: &str) -> (String, Handled) {
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
    pub async fn state(&self) -> Value {
        reqwest::get(format!("{}/_sandbox/state", self.sb.rest_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The bot's delivery status of a message, polled until it settles.
    pub async fn settled_status(&self, message: &str) -> String {
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

    /// The bot's delivery status of a message now (not waiting for it to settle).
    pub async fn delivery_status(&self, message: &str) -> String {
        let state = self.state().await;
        state["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == message)
            .and_then(|m| m["delivery"][&self.bot_id]["status"].as_str())
            .unwrap_or("")
            .to_owned()
    }

    /// How many messages and events the bot posted whose content contains `text`.
    pub async fn bot_events(&self, text: &str) -> usize {
        let state = self.state().await;
        state["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| {
                m["sender_id"] == self.bot_id.as_str()
                    && m["content"].as_str().is_some_and(|c| c.contains(text))
            })
            .count()
    }

    pub async fn participants(&self) -> Vec<String> {
        self.bob
            .list_participants(&self.room)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|p| p.handle)
            .collect()
    }

    /// Messages the bot sent in the room after `after`.
    pub async fn bot_messages_after(&self, after: &str) -> Vec<ChatMessage> {
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

    pub async fn stop(self) {
        self.agent.shutdown();
        tokio::time::timeout(WAIT, self.task)
            .await
            .unwrap()
            .unwrap();
        self.sb.shutdown().await.unwrap();
    }
}
