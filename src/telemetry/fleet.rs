//! The metrics of a fleet on one address: each agent keeps its own
//! [`Telemetry`] (every series labelled `agent`), `/metrics` merges them
//! into one exposition (each family once), `/healthz` reports every agent
//! and `/healthz/NAME` one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::net::TcpListener;

use super::{HealthReport, Telemetry};
use switchboard_workflow::secrets::Redaction;

/// Where one agent of the fleet stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "state", content = "reason")]
pub enum AgentState {
    /// Loading its workflows, identifying itself, connecting.
    Starting,
    /// Its runtime runs (its socket may still be reconnecting).
    Running,
    /// It could not start or stopped with an error; retried after a pause.
    Failed(String),
}

struct Slot {
    telemetry: Arc<Telemetry>,
    state: AgentState,
}

/// Every agent's telemetry and state, by name.
#[derive(Default)]
pub struct FleetTelemetry {
    agents: Mutex<BTreeMap<String, Slot>>,
    /// Agents are shared with other processes: holding none is standing by.
    shared: std::sync::atomic::AtomicBool,
}

/// One agent in the fleet's `/healthz`.
#[derive(Debug, Clone, Serialize)]
pub struct AgentHealth {
    /// Starting, running or failed (with why).
    #[serde(flatten)]
    pub state: AgentState,
    /// Its own report (socket, rules, last reload).
    pub health: HealthReport,
}

/// The body of the fleet's `/healthz`.
#[derive(Debug, Clone, Serialize)]
pub struct FleetHealth {
    /// `ok` when every agent is up, `degraded` when some are, `down` when none
    /// is; `standby` for a process sharing a fleet that runs none of it now.
    pub status: &'static str,
    /// Each agent, by name.
    pub agents: BTreeMap<String, AgentHealth>,
}

impl FleetTelemetry {
    /// An empty fleet.
    pub fn new() -> FleetTelemetry {
        FleetTelemetry::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Slot>> {
        // A panicking scrape must not stop the others from reading.
        self.agents.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh telemetry for agent `name` (replacing any earlier one: a restart).
    pub fn add(&self, name: &str, redaction: Redaction) -> Arc<Telemetry> {
        let telemetry = Arc::new(Telemetry::labelled(0, name).with_redaction(redaction));
        let slot = Slot {
            telemetry: telemetry.clone(),
            state: AgentState::Starting,
        };
        self.lock().insert(name.to_owned(), slot);
        telemetry
    }

    /// Says the fleet's agents are shared with other processes (holding
    /// none is then `standby`, not `down`).
    pub fn set_shared(&self, shared: bool) {
        self.shared
            .store(shared, std::sync::atomic::Ordering::Relaxed);
    }

    /// Forgets agent `name` (removed from the fleet, or run elsewhere).
    pub fn remove(&self, name: &str) {
        self.lock().remove(name);
    }

    /// Agent `name`'s telemetry, while it runs here.
    pub fn agent(&self, name: &str) -> Option<Arc<Telemetry>> {
        self.lock().get(name).map(|slot| slot.telemetry.clone())
    }

    /// Records where agent `name` stands.
    pub fn set_state(&self, name: &str, state: AgentState) {
        if let Some(slot) = self.lock().get_mut(name) {
            slot.state = state;
        }
    }

    /// Every agent's report.
    pub fn health(&self) -> FleetHealth {
        let agents: BTreeMap<String, AgentHealth> = self
            .lock()
            .iter()
            .map(|(name, slot)| {
                let health = AgentHealth {
                    state: slot.state.clone(),
                    health: slot.telemetry.health(),
                };
                (name.clone(), health)
            })
            .collect();
        let up = agents.values().filter(|a| agent_up(a)).count();
        let shared = self.shared.load(std::sync::atomic::Ordering::Relaxed);
        let status = match up {
            0 if agents.is_empty() && shared => "standby",
            _ if up == agents.len() && up > 0 => "ok",
            0 => "down",
            _ => "degraded",
        };
        FleetHealth { status, agents }
    }

    /// All agents' metrics as one OpenMetrics text: each family's header
    /// once, then its samples from every agent.
    pub fn encode(&self) -> String {
        let texts: Vec<String> = self
            .lock()
            .values()
            .map(|slot| slot.telemetry.encode())
            .collect();
        merge(&texts)
    }
}

fn agent_up(a: &AgentHealth) -> bool {
    a.state == AgentState::Running && a.health.is_up()
}

/// Merges expositions of the same families (differing only in labels).
fn merge(texts: &[String]) -> String {
    // Family name → (header lines, sample lines), in first-seen order.
    let mut order: Vec<String> = Vec::new();
    let mut families: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for text in texts {
        let mut current: Option<String> = None;
        for line in text.lines() {
            if line == "# EOF" {
                break;
            }
            if let Some(rest) = line.strip_prefix("# ") {
                // `# HELP name ...`, `# TYPE name ...`, `# UNIT name ...`.
                let name = rest
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                let family = families.entry(name.clone()).or_insert_with(|| {
                    order.push(name.clone());
                    (Vec::new(), Vec::new())
                });
                if !family.0.iter().any(|h| h == line) {
                    family.0.push(line.to_owned());
                }
                current = Some(name);
            } else if let Some(name) = &current {
                if let Some(family) = families.get_mut(name) {
                    family.1.push(line.to_owned());
                }
            }
        }
    }
    let mut out = String::new();
    for name in &order {
        if let Some((headers, samples)) = families.get(name) {
            for line in headers.iter().chain(samples) {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

/// `GET /metrics`, `GET /healthz`, `GET /healthz/NAME`, and an agent's
/// `GET /handled/NAME` and `GET /conversations/NAME` over `fleet`.
pub fn router(fleet: Arc<FleetTelemetry>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/healthz/{name}", get(agent_healthz))
        .route("/handled/{name}", get(agent_handled))
        .route("/conversations/{name}", get(agent_conversations))
        .with_state(fleet)
}

/// A name this process does not run.
fn not_here(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("no agent named {name:?} runs in this process\n"),
    )
        .into_response()
}

/// One agent's last handled events, as a single agent's `/handled`.
async fn agent_handled(
    State(fleet): State<Arc<FleetTelemetry>>,
    Path(name): Path<String>,
) -> Response {
    match fleet.agent(&name) {
        Some(t) => super::server::handled(State(t)).await,
        None => not_here(&name),
    }
}

/// One agent's pending conversations, as a single agent's `/conversations`.
async fn agent_conversations(
    State(fleet): State<Arc<FleetTelemetry>>,
    Path(name): Path<String>,
) -> Response {
    match fleet.agent(&name) {
        Some(t) => super::server::conversations(State(t)).await,
        None => not_here(&name),
    }
}

/// Serves [`router`] on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, fleet: Arc<FleetTelemetry>) -> std::io::Result<()> {
    axum::serve(listener, router(fleet)).await
}

async fn metrics(State(fleet): State<Arc<FleetTelemetry>>) -> Response {
    (
        [(header::CONTENT_TYPE, super::server::METRICS_CONTENT_TYPE)],
        fleet.encode(),
    )
        .into_response()
}

/// 200 when every agent is up, 503 otherwise (the body says which is not).
async fn healthz(State(fleet): State<Arc<FleetTelemetry>>) -> Response {
    let report = fleet.health();
    let code = match report.status {
        "ok" | "standby" => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    (code, Json(report)).into_response()
}

/// One agent: 200 while it is up, 503 when not, 404 for a name not in the fleet.
async fn agent_healthz(
    State(fleet): State<Arc<FleetTelemetry>>,
    Path(name): Path<String>,
) -> Response {
    match fleet.health().agents.remove(&name) {
        None => (
            StatusCode::NOT_FOUND,
            format!("no agent named {name:?} in the fleet\n"),
        )
            .into_response(),
        Some(agent) => {
            let code = match agent_up(&agent) {
                true => StatusCode::OK,
                false => StatusCode::SERVICE_UNAVAILABLE,
            };
            (code, Json(agent)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_metrics_have_each_family_once_and_every_agents_series() {
        let fleet = FleetTelemetry::new();
        fleet.add("one", Redaction::new()).set_rules(3);
        fleet.add("two", Redaction::new()).set_rules(4);
        let text = fleet.encode();
        assert_eq!(
            text.matches("# TYPE switchboard_rules gauge").count(),
            1,
            "{text}"
        );
        assert!(
            text.contains("switchboard_rules{agent=\"one\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("switchboard_rules{agent=\"two\"} 4"),
            "{text}"
        );
        assert_eq!(text.matches("# EOF").count(), 1);
        assert!(text.ends_with("# EOF\n"));
        // Samples follow their own family's header.
        let header = text.find("# TYPE switchboard_rules gauge").unwrap();
        let sample = text.find("switchboard_rules{agent=\"two\"}").unwrap();
        let next = text[header + 1..]
            .find("# HELP")
            .map_or(text.len(), |i| i + header + 1);
        assert!(header < sample && sample < next, "{text}");
    }

    #[test]
    fn health_is_ok_only_when_every_agent_runs() {
        let fleet = FleetTelemetry::new();
        fleet.add("one", Redaction::new());
        assert_eq!(fleet.health().status, "down");
        fleet.set_state("one", AgentState::Failed("no".into()));
        assert_eq!(
            fleet.health().agents["one"].state,
            AgentState::Failed("no".into())
        );
        fleet.remove("one");
        assert!(fleet.health().agents.is_empty());
        assert_eq!(fleet.health().status, "down");
    }
}
