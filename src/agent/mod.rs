//! A switchboard agent assembled from its parts: the workflows loaded and
//! compiled, the engine with its state, the REST executor, the rules handler
//! and the runtime. The CLI's `run` and `demo` and the end-to-end tests all
//! start agents through here.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::dryrun::explain::ExplainLog;
use crate::dryrun::record::Recorder;
use crate::effects::journal::JournalFile;
use crate::effects::llm::LlmClient;
/// An `--allow-http-host` entry (`host` or `host:port`).
pub use crate::effects::llm::LlmConfig;
use crate::effects::redis::conversations::RedisConversations;
use crate::effects::redis::journal::RedisJournal;
use crate::effects::redis::state::RedisState;
use crate::effects::redis::throttles::RedisThrottles;
pub use crate::effects::rest::AllowedHost;
use crate::effects::rest::RestExecutor;
use crate::effects::state_dir::{self, StateDir, StateDirError};
use crate::effects::state_file::StateFile;
use crate::effects::throttle_file::ThrottleFile;
use crate::effects::webhook_queue::{QueueError, WebhookQueue, DEFAULT_MAX_PENDING};
use crate::runtime::{Runtime, RuntimeConfig, RuntimeError, RuntimeHandle};
use crate::telemetry::{self, Telemetry, TimedExecutor};
use crate::webhooks;
use band_client::rest::{AgentApi, ApiError, BuildError, RestConfig};
use switchboard_engine::action::Executor;
use switchboard_engine::journal::{Journal, JournalError};
use switchboard_engine::state::StateError;
use switchboard_engine::{Engine, StateStore};
use switchboard_workflow::secrets::{Redaction, SecretDecl, SecretSource, SecretValues};
use switchboard_workflow::{LoadError, LoadErrors, Ruleset};

use crate::effects::conversation_file::ConversationFile;
use crate::rules::conversations::{self, Conversations};
use crate::rules::{reload, schedule};
pub use crate::rules::{Handled, RulesHandler};
use switchboard_engine::conversation::ConversationStoreError;

/// How long a stopping agent waits for the webhook delivery in hand.
const WEBHOOK_FINISH: std::time::Duration = std::time::Duration::from_secs(30);

/// What an agent needs to run.
#[derive(Clone)]
pub struct AgentConfig {
    /// REST base URL (`https://app.band.ai`, or the sandbox's).
    pub rest_url: String,
    /// WebSocket URL (`wss://app.band.ai/api/v1/socket/websocket`).
    pub ws_url: String,
    /// The agent's API key.
    pub api_key: String,
    /// The agent id the key must belong to, when given.
    pub agent_id: Option<String>,
    /// The workflows folder.
    pub workflows: PathBuf,
    /// Where the journal and the state are kept by default (`switchboard
    /// run`: the agent's own directory; embedded agents: in memory).
    pub state_dir: StateDirChoice,
    /// Where state is saved, overriding the state directory's file.
    pub state_file: Option<PathBuf>,
    /// Environment variables templates may read as `env.NAME`.
    pub allow_env: Vec<String>,
    /// Hosts (or host:port pairs) the `http` action may reach.
    pub allow_http_hosts: Vec<AllowedHost>,
    /// Reload when a workflow file changes (SIGHUP reloads either way).
    pub watch: bool,
    /// The action journal's file, overriding the state directory's: messages
    /// resume after a crash without repeating what they did.
    pub journal: Option<PathBuf>,
    /// Attempts a failing message gets before it is left failed.
    pub max_attempts: u64,
    /// Pause before a room with a failed message is drained again.
    pub retry_delay: std::time::Duration,
    /// Log each event's trace (every condition and what it saw).
    pub explain: bool,
    /// Append every handled event to this file (JSON lines, for `replay`).
    pub record: Option<PathBuf>,
    /// Serve `/metrics` and `/healthz` on this address, when given.
    pub metrics_addr: Option<SocketAddr>,
    /// Serve incoming webhooks (`POST /hooks/NAME`) on this address, when given.
    pub webhook_addr: Option<SocketAddr>,
    /// The most webhook deliveries waiting before new ones get 429.
    pub webhook_queue: usize,
    /// Most pending conversations per room and person; past it the oldest
    /// ends with its `on_timeout`.
    pub max_pending_per_person: usize,
    /// Where the workflows' secrets go once read: the engine reads them,
    /// and every writer (the log lines too, when the CLI passes its own)
    /// shows them as `[secret:NAME]`.
    pub redaction: Redaction,
    /// The language model `llm` actions ask, when given.
    pub llm: Option<LlmConfig>,
}

impl AgentConfig {
    /// An agent on `workflows` with every option at its default: ephemeral
    /// (journal and state in memory; `switchboard run` chooses a directory), the runtime's retry limits, nothing extra
    /// reachable from templates, no watching, no metrics.
    pub fn new(rest_url: String, ws_url: String, api_key: String, workflows: PathBuf) -> Self {
        let tunables = crate::runtime::Tunables::default();
        AgentConfig {
            rest_url,
            ws_url,
            api_key,
            agent_id: None,
            workflows,
            state_dir: StateDirChoice::Ephemeral,
            state_file: None,
            allow_env: Vec::new(),
            allow_http_hosts: Vec::new(),
            watch: false,
            journal: None,
            max_attempts: tunables.max_attempts,
            retry_delay: tunables.retry_delay,
            explain: false,
            record: None,
            metrics_addr: None,
            webhook_addr: None,
            webhook_queue: DEFAULT_MAX_PENDING,
            max_pending_per_person: conversations::DEFAULT_MAX_PER_PERSON,
            redaction: Redaction::new(),
            llm: None,
        }
    }
}

/// The environment variable the CLI reads the agent's API key from.
const API_KEY_VARIABLE: &str = "BAND_API_KEY";

/// True for a variable name with a part like `KEY`, `TOKEN` or `SECRET`
/// (`PARTNER_API_TOKEN`, not `MONKEY`).
fn named_like_a_secret(name: &str) -> bool {
    const WORDS: &[&str] = &[
        "KEY",
        "APIKEY",
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "CREDENTIALS",
    ];
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .any(|part| WORDS.iter().any(|w| part.eq_ignore_ascii_case(w)))
}

/// Reads a ruleset's secrets, refusing any that is the agent's own API key
/// (by its variable, or by value: its file, or a copy elsewhere), so no
/// template can put the key in a message or a request. When webhooks are
/// served (`hooks` is the redaction hiding their secrets), every hook's
/// secret must be readable too: at start and at each reload alike.
fn secrets_reader(api_key: &str, hooks: Option<Redaction>) -> reload::ReadSecrets {
    let key = api_key.trim().to_owned();
    Arc::new(move |ruleset: &Ruleset| {
        // Every secret that cannot be used is reported, hooks' and rules' alike.
        let mut errors: Vec<LoadError> = match &hooks {
            Some(redaction) => webhooks::read_secrets(ruleset, redaction),
            None => Vec::new(),
        };
        let named = |d: &&SecretDecl| d.source == SecretSource::Env(API_KEY_VARIABLE.into());
        // The key's variable is refused before anything is read.
        let read = match ruleset.secret_decls().iter().any(|d| named(&d)) {
            true => Ok(SecretValues::new()),
            false => ruleset.read_secrets(),
        };
        let values = match read {
            Ok(values) => values,
            Err(unreadable) => {
                errors.extend(unreadable.errors().iter().cloned());
                return Err(LoadErrors::new(errors));
            }
        };
        errors.extend(
            ruleset
                .secret_decls()
                .iter()
                .filter(|d| named(d) || values.get(&d.name).is_some_and(|v| v.trim() == key))
                .map(|d| {
                    d.error(format!(
                        "secret `{}` ({}) is the agent's own API key, which is never given to templates",
                        d.name, d.source
                    ))
                }),
        );
        match errors.is_empty() {
            true => Ok(values),
            false => Err(LoadErrors::new(errors)),
        }
    })
}

/// What serving webhooks needs: the bound listener, the queue, and who
/// counts the answers (with metrics).
type Served = (
    TcpListener,
    Arc<WebhookQueue>,
    Option<Arc<dyn webhooks::Observer>>,
);

/// Counts the webhook server's answers in the agent's metrics (the
/// telemetry and webhook layers do not know each other).
struct WebhookMetrics(Arc<Telemetry>);

impl webhooks::Observer for WebhookMetrics {
    fn delivery(&self, hook: &str, status: &'static str) {
        self.0.webhook_delivery(hook, status);
    }
}

/// Warns when a rule has an `llm` action but no model was given: those
/// actions would fail on every message, which start-up can tell already.
fn warn_llm_unconfigured(ruleset: &switchboard_workflow::Ruleset) {
    let uses_llm = |r: &&switchboard_workflow::rule::Rule| {
        r.actions
            .iter()
            .chain(&r.else_actions)
            .chain(&r.on_error)
            .any(|a| a.name == "llm")
    };
    if let Some(rule) = ruleset.rules().iter().find(uses_llm) {
        tracing::warn!(
            rule = %rule.id,
            "a rule uses the `llm` action but no model is configured (--llm-url and --llm-model): its `llm` actions will fail"
        );
    }
}

/// Where an agent keeps its journal and state when no file is given for them.
#[derive(Debug, Clone)]
pub enum StateDirChoice {
    /// In memory: a crash forgets what was sent (retries within a run still resume).
    Ephemeral,
    /// `$XDG_STATE_HOME/switchboard/<agent id>` (or `~/.local/state/...`).
    Default,
    /// This directory.
    At(PathBuf),
    /// The shared store (Redis), under the agent's lease.
    Store(crate::effects::redis::AgentSpace),
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("rest_url", &self.rest_url)
            .field("ws_url", &self.ws_url)
            .field("api_key", &"<redacted>")
            .field("agent_id", &self.agent_id)
            .field("workflows", &self.workflows)
            .field("state_dir", &self.state_dir)
            .field("metrics_addr", &self.metrics_addr)
            .field("webhook_addr", &self.webhook_addr)
            .finish_non_exhaustive()
    }
}

/// Why an agent could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The workflows did not load.
    #[error("the workflows in {dir} do not load:\n{errors}")]
    Workflows {
        /// The folder.
        dir: PathBuf,
        /// Every error.
        errors: LoadErrors,
    },
    /// The state file is unusable.
    #[error(transparent)]
    State(#[from] StateError),
    /// The journal file is unusable.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The pending conversations cannot be read or kept.
    #[error(transparent)]
    Conversations(#[from] ConversationStoreError),
    /// The throttle windows cannot be read.
    #[error(transparent)]
    Throttles(#[from] switchboard_engine::ThrottleError),
    /// The state directory is unusable or in use.
    #[error(transparent)]
    StateDir(#[from] StateDirError),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The `llm` action's client could not be built.
    #[error(transparent)]
    Llm(#[from] crate::effects::llm::LlmConfigError),
    /// The `http` action's client could not be built.
    #[error("cannot build the client of the `http` action")]
    HttpClient(#[source] reqwest::Error),
    /// `/agent/me` failed.
    #[error("cannot identify the agent (GET /agent/me)")]
    Me(#[source] ApiError),
    /// `--allow-env` names the variable holding the API key.
    #[error(
        "--allow-env {name} would let templates render the API key; it is never given to templates"
    )]
    SecretInTemplates {
        /// The variable.
        name: String,
    },
    /// The recording file cannot be opened.
    #[error("cannot open {path} to record events")]
    Record {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The workflows folder cannot be watched.
    #[error("cannot watch {dir} for changes{hint}")]
    Watch {
        /// The folder.
        dir: PathBuf,
        /// What to do about a system limit, when one is the cause ([`watch_hint`]).
        hint: String,
        /// Cause.
        source: notify::Error,
    },
    /// The metrics address cannot be listened on (taken, not local, ...).
    #[error("cannot serve metrics on {addr}")]
    Metrics {
        /// The address asked for.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The webhook address cannot be listened on.
    #[error("cannot serve webhooks on {addr}")]
    WebhookAddr {
        /// The address asked for.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The webhook queue cannot be opened.
    #[error(transparent)]
    WebhookQueue(#[from] QueueError),
    /// The shared store cannot be read.
    #[error(transparent)]
    Store(#[from] crate::effects::redis::StoreError),
    /// The runtime stopped with an error.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// An agent ready to run.
pub struct Agent {
    runtime: Runtime,
    engine: Arc<Engine>,
    handler: Arc<RulesHandler>,
    workflows: PathBuf,
    watch: bool,
    reloads: Vec<Arc<dyn reload::Listener>>,
    /// The bound metrics listener and what it serves, until `run_until` starts it.
    metrics: Option<(TcpListener, Arc<Telemetry>)>,
    /// The files behind the journal and the state, flushed when the agent stops.
    files: Files,
    /// The bound webhook listener, the queue and who counts the answers,
    /// until `run_until` serves them.
    webhooks: Option<Served>,
    /// Reads the secrets of a reloaded ruleset.
    read_secrets: reload::ReadSecrets,
}

/// The agent's files, each written by its own thread, and the lock on their
/// directory (held until the agent is dropped).
#[derive(Default)]
struct Files {
    dir: Option<StateDir>,
    journal: Option<Arc<JournalFile>>,
    state: Option<Arc<StateFile>>,
    conversations: Option<Arc<ConversationFile>>,
    throttles: Option<Arc<ThrottleFile>>,
    /// The shared store's part of this agent, instead of the files.
    space: Option<crate::effects::redis::AgentSpace>,
}

impl Files {
    /// Waits until what was queued (settle records, state changes) is on disk.
    async fn flush(&self) {
        if let Some(journal) = &self.journal {
            if let Err(e) = journal.flush().await {
                tracing::warn!(error = %crate::error_chain::Chain(&e), "cannot flush the action journal");
            }
        }
        if let Some(state) = &self.state {
            if let Err(e) = state.flush().await {
                tracing::warn!(error = %crate::error_chain::Chain(&e), "cannot flush the state");
            }
        }
        if let Some(conversations) = &self.conversations {
            if let Err(e) = conversations.flush().await {
                tracing::warn!(error = %crate::error_chain::Chain(&e), "cannot flush the pending conversations");
            }
        }
        if let Some(throttles) = &self.throttles {
            if let Err(e) = throttles.flush().await {
                tracing::warn!(error = %crate::error_chain::Chain(&e), "cannot flush the throttle windows");
            }
        }
        if let Some(space) = &self.space {
            if let Err(e) = space.flush().await {
                tracing::warn!(error = %crate::error_chain::Chain(&e), "cannot flush the writes to the store");
            }
        }
    }
}

impl Agent {
    /// Loads the workflows, opens the state, identifies the agent and builds
    /// the runtime; `watch` receives every handled event.
    pub async fn prepare(
        config: &AgentConfig,
        watch: Option<mpsc::UnboundedSender<Handled>>,
    ) -> Result<Agent, AgentError> {
        Agent::prepare_with_telemetry(config, watch, None).await
    }

    /// Like [`Agent::prepare`], reporting to `shared` (a fleet's agent, whose
    /// metrics another server serves) unless `config` has a metrics address.
    pub async fn prepare_with_telemetry(
        config: &AgentConfig,
        watch: Option<mpsc::UnboundedSender<Handled>>,
        shared: Option<Arc<Telemetry>>,
    ) -> Result<Agent, AgentError> {
        let hooks = config.webhook_addr.map(|_| config.redaction.clone());
        let read_secrets = secrets_reader(&config.api_key, hooks);
        let (ruleset, secrets) = switchboard_workflow::load_dir(&config.workflows)
            .and_then(|rs| read_secrets(&rs).map(|values| (rs, values)))
            .map_err(|errors| AgentError::Workflows {
                dir: config.workflows.clone(),
                errors,
            })?;
        config.redaction.set(secrets);
        tracing::info!(
            rules = ruleset.len(),
            files = ruleset.files(),
            dir = %config.workflows.display(),
            "workflows loaded"
        );
        if config.llm.is_none() {
            warn_llm_unconfigured(&ruleset);
        }
        let metrics = match config.metrics_addr {
            None => None,
            Some(addr) => {
                let listener = telemetry::server::bind(addr)
                    .await
                    .map_err(|source| AgentError::Metrics { addr, source })?;
                let bound = listener.local_addr().unwrap_or(addr);
                tracing::info!(addr = %bound, "metrics listening");
                let telemetry =
                    Telemetry::new(ruleset.len()).with_redaction(config.redaction.clone());
                Some((listener, Arc::new(telemetry)))
            }
        };
        let webhook_listener = match config.webhook_addr {
            None => {
                if !ruleset.webhooks().is_empty() {
                    tracing::info!(
                        webhooks = ruleset.webhooks().len(),
                        "the workflows define webhooks, but none is served without --webhook-addr"
                    );
                }
                None
            }
            Some(addr) => {
                let listener = webhooks::bind(addr)
                    .await
                    .map_err(|source| AgentError::WebhookAddr { addr, source })?;
                Some(listener)
            }
        };
        let telemetry = match (&metrics, shared) {
            (Some((_, t)), _) => Some(t.clone()),
            (None, Some(t)) => {
                t.set_rules(ruleset.len());
                Some(t)
            }
            (None, None) => None,
        };
        let api = AgentApi::new(RestConfig::new(&config.rest_url, &config.api_key))?;
        // Waits out an outage like the runtime's own start-up (a 429 or 503
        // burst while restarting), ending only on an answer that cannot change.
        let me = crate::runtime::me_until_answered(&api, &crate::runtime::Tunables::default())
            .await
            .map_err(AgentError::Me)?;
        // Before the state directory: a key of another agent must not open
        // (nor lock) that agent's directory.
        if let Some(expected) = config.agent_id.as_ref().filter(|id| **id != me.id) {
            return Err(AgentError::Runtime(RuntimeError::WrongAgent {
                expected: expected.clone(),
                actual: me.id,
            }));
        }
        let mut files = Files::default();
        let dir = match &config.state_dir {
            StateDirChoice::Ephemeral => None,
            StateDirChoice::Store(space) => {
                tracing::info!(store = %space.store().shown(), "state, journal, pending conversations, throttle windows and webhook queue kept in the store");
                files.space = Some(space.clone());
                None
            }
            StateDirChoice::Default => {
                Some(state_dir::for_agent(&state_dir::default_root()?, &me.id)?)
            }
            StateDirChoice::At(path) => Some(path.clone()),
        };
        if let Some(path) = dir {
            let dir = StateDir::open(&path)?;
            tracing::info!(dir = %dir.path().display(), "state directory (journal and state) locked");
            files.dir = Some(dir);
        }
        let in_dir = |file: fn(&StateDir) -> PathBuf| files.dir.as_ref().map(file);
        let webhooks = match webhook_listener {
            None => None,
            Some(listener) => {
                let queue = match (in_dir(StateDir::webhooks), &files.space) {
                    (Some(path), _) => WebhookQueue::open(&path, config.webhook_queue)?,
                    (None, Some(space)) => {
                        WebhookQueue::in_store(space, config.webhook_queue).await?
                    }
                    (None, None) => WebhookQueue::in_memory(config.webhook_queue),
                };
                let bound = listener
                    .local_addr()
                    .map_or_else(|_| "?".to_owned(), |a| a.to_string());
                tracing::info!(
                    addr = %bound,
                    hooks = %ruleset.webhooks().keys().cloned().collect::<Vec<_>>().join(","),
                    pending = queue.pending(),
                    durable = queue.durable(),
                    "webhooks listening (POST /hooks/NAME)"
                );
                if !queue.durable() {
                    tracing::warn!("ephemeral: accepted webhook deliveries are queued in memory; a crash loses those not yet handled");
                }
                let queue = Arc::new(queue);
                let observer = telemetry.as_ref().map(|t| {
                    let depth = queue.clone();
                    t.watch_webhook_queue(move || depth.pending());
                    Arc::new(WebhookMetrics(t.clone())) as Arc<dyn webhooks::Observer>
                });
                Some((listener, queue, observer))
            }
        };
        let state_path = config
            .state_file
            .clone()
            .or_else(|| in_dir(StateDir::state));
        let journal_path = config.journal.clone().or_else(|| in_dir(StateDir::journal));
        if files.dir.is_none()
            && files.space.is_none()
            && (state_path.is_none() || journal_path.is_none())
        {
            tracing::info!(
                "ephemeral: what is not given a file is kept in memory and lost on a crash"
            );
        }
        let state = match (&state_path, &files.space) {
            (None, Some(space)) => {
                let store = RedisState::open(space, config.redaction.clone()).await?;
                StateStore::persisted(Arc::new(store))?
            }
            (Some(path), _) => {
                let file =
                    Arc::new(StateFile::open(path)?.with_redaction(config.redaction.clone()));
                files.state = Some(file.clone());
                StateStore::persisted(file)?
            }
            (None, None) => StateStore::in_memory(),
        };
        // The key reaches templates only if someone allows its variable by
        // name; refuse that rather than let a reply leak it.
        if let Some(name) = config.allow_env.iter().find(|name| {
            name.as_str() == API_KEY_VARIABLE
                || std::env::var(name).is_ok_and(|v| {
                    let key = config.llm.as_ref().and_then(|l| l.api_key.as_deref());
                    v.trim() == config.api_key.trim() || key.is_some_and(|k| v.trim() == k.trim())
                })
        }) {
            return Err(AgentError::SecretInTemplates { name: name.clone() });
        }
        // Allowed variables are shown as they are in traces and logs.
        for name in config.allow_env.iter().filter(|n| named_like_a_secret(n)) {
            tracing::warn!(
                "--allow-env {name} looks like a secret, but an allowed variable is shown as it is in \
                 logs and --explain traces; declare it under `secrets:` in the workflow \
                 (`{{ env: {name} }}`) and read it as `secrets.NAME` to have it shown as [secret:NAME]"
            );
        }
        let env: Map<String, Value> = config
            .allow_env
            .iter()
            .filter_map(|name| {
                std::env::var(name)
                    .ok()
                    .map(|v| (name.clone(), Value::String(v)))
            })
            .collect();
        let journal = match (&journal_path, &files.space) {
            (None, Some(space)) => {
                let store = RedisJournal::open(space, config.redaction.clone()).await?;
                Journal::backed_by(Arc::new(store))?
            }
            (Some(path), _) => {
                let file =
                    Arc::new(JournalFile::open(path)?.with_redaction(config.redaction.clone()));
                files.journal = Some(file.clone());
                Journal::backed_by(file)?
            }
            (None, None) => Journal::in_memory(),
        };
        if journal.open_messages() > 0 {
            tracing::info!(
                messages = journal.open_messages(),
                "action journal has unfinished messages; they resume when served again"
            );
        }
        let ruleset = Arc::new(ruleset);
        let conversations = match (
            files.dir.as_ref().map(StateDir::conversations),
            &files.space,
        ) {
            (None, Some(space)) => Conversations::open(
                Arc::new(RedisConversations::open(space, config.redaction.clone()).await?),
                &ruleset,
                config.max_pending_per_person,
                chrono::Utc::now(),
            )?,
            (Some(path), _) => {
                let file = Arc::new(
                    ConversationFile::open(&path)?.with_redaction(config.redaction.clone()),
                );
                files.conversations = Some(file.clone());
                Conversations::open(
                    file,
                    &ruleset,
                    config.max_pending_per_person,
                    chrono::Utc::now(),
                )?
            }
            (None, None) => Conversations::in_memory(config.max_pending_per_person),
        };
        let conversations = Arc::new(conversations);
        if let Some(t) = &telemetry {
            t.watch_conversations(conversations.clone());
        }
        let mut engine = Engine::new(ruleset, Arc::new(state))
            .with_env(env)
            .with_redaction(config.redaction.clone())
            .with_journal(Arc::new(journal));
        // Windows outlive a restart only with a state directory; else memory.
        if let Some(path) = files.dir.as_ref().map(StateDir::throttles) {
            let file =
                Arc::new(ThrottleFile::open(&path)?.with_redaction(config.redaction.clone()));
            files.throttles = Some(file.clone());
            engine = engine.with_throttle_persistence(file)?;
        }
        if let Some(space) = &files.space {
            let store = RedisThrottles::open(space, config.redaction.clone()).await?;
            engine = engine.with_throttle_persistence(Arc::new(store))?;
        }
        if config.explain {
            engine = engine.tracing_every_rule();
        }
        let engine = Arc::new(engine);
        let mut rest = RestExecutor::new(api, config.allow_http_hosts.clone())
            .map_err(AgentError::HttpClient)?
            .with_identity(&me.id);
        if let Some(llm) = &config.llm {
            // Hidden like a workflow secret wherever the agent writes.
            if let Some(key) = llm.api_key.as_deref() {
                config.redaction.also_hide("llm_key", key);
            }
            tracing::info!(url = %llm.url, model = %llm.model, key = llm.api_key.is_some(), "llm actions ask this model");
            rest = rest.with_llm(LlmClient::new(llm.clone())?);
        }
        let mut executor: Arc<dyn Executor> = Arc::new(rest);
        if let Some(t) = &telemetry {
            executor = Arc::new(TimedExecutor::new(executor, t.clone()));
        }
        let mut handler =
            RulesHandler::new(engine.clone(), executor, &me).with_conversations(conversations);
        if let Some(tx) = watch {
            handler = handler.with_sink(Arc::new(tx));
        }
        if config.explain {
            handler = handler.with_sink(Arc::new(ExplainLog::new(engine.clone())));
        }
        if let Some(path) = &config.record {
            let recorder = Recorder::open(path, handler.agent().clone(), config.redaction.clone())
                .map_err(|source| AgentError::Record {
                    path: path.clone(),
                    source,
                })?;
            handler = handler.with_sink(recorder);
        }
        if let Some(t) = &telemetry {
            handler = handler.with_sink(t.clone());
        }
        let handler = Arc::new(handler);
        let mut runtime_config =
            RuntimeConfig::new(&config.rest_url, &config.ws_url, &config.api_key);
        runtime_config.expected_agent_id = config.agent_id.clone();
        runtime_config.me = Some(me.clone());
        runtime_config.tunables.max_attempts = config.max_attempts.max(1);
        runtime_config.tunables.retry_delay = config.retry_delay;
        let mut reloads: Vec<Arc<dyn reload::Listener>> = Vec::new();
        if let Some(t) = telemetry {
            runtime_config.observer = Some(t.clone());
            reloads.push(t);
        }
        let runtime = Runtime::new(runtime_config, handler.clone());
        Ok(Agent {
            runtime,
            engine,
            handler,
            workflows: config.workflows.clone(),
            watch: config.watch,
            reloads,
            metrics,
            files,
            webhooks,
            read_secrets,
        })
    }

    /// Also sends a report of every reload to `tx`.
    pub fn with_reload_reports(mut self, tx: mpsc::UnboundedSender<reload::ReloadReport>) -> Self {
        self.reloads.push(Arc::new(tx));
        self
    }

    /// A handle to stop the agent.
    pub fn handle(&self) -> RuntimeHandle {
        self.runtime.handle()
    }

    /// The engine (its ruleset can be swapped while running).
    pub fn engine(&self) -> Arc<Engine> {
        self.engine.clone()
    }

    /// Runs until `stop` resolves (then finishes the event in hand) or the
    /// runtime fails.
    pub async fn run_until(self, stop: impl Future<Output = ()> + Send) -> Result<(), AgentError> {
        let timers = Arc::new(schedule::Timers::start(
            self.engine.clone(),
            self.handler.clone(),
        ));
        let restart = timers.clone();
        let deadlines = conversations::spawn_timers(self.handler.clone());
        let reloader = reload::spawn(
            self.engine.clone(),
            self.workflows.clone(),
            self.watch,
            self.reloads,
            Box::new(move || restart.restart()),
            Some(self.handler.conversations().clone()),
            self.read_secrets,
        )
        .map_err(|e| AgentError::Watch {
            dir: self.workflows.clone(),
            hint: watch_hint(&e),
            source: e,
        })?;
        let server = self.metrics.map(|(listener, telemetry)| {
            crate::task::spawn(async move {
                if let Err(e) = telemetry::server::serve(listener, telemetry).await {
                    tracing::error!(error = %crate::error_chain::Chain(&e), "metrics server stopped");
                }
            })
        });
        let hooks = self.webhooks.map(|(listener, queue, observer)| {
            let engine = self.engine.clone();
            let served = queue.clone();
            let server = crate::task::spawn(async move {
                if let Err(e) = webhooks::serve(listener, engine, served, observer).await {
                    tracing::error!(error = %crate::error_chain::Chain(&e), "webhook server stopped");
                }
            });
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let consumer = crate::task::spawn(webhooks::consume(queue, self.handler.clone(), stopped));
            (server, consumer, stop)
        });
        let result = self.runtime.run_until(stop).await;
        if let Some(server) = server {
            server.abort();
        }
        if let Some((server, mut consumer, stop)) = hooks {
            // No new deliveries; the one in hand finishes (bounded), so a
            // clean stop does not repeat it. One cut short stays queued and
            // runs at the next start.
            server.abort();
            let _ = stop.send(true);
            if tokio::time::timeout(WEBHOOK_FINISH, &mut consumer)
                .await
                .is_err()
            {
                tracing::warn!(
                    "the webhook delivery in hand did not finish in {WEBHOOK_FINISH:?}; it runs again at the next start"
                );
                consumer.abort();
            }
        }
        reloader.abort();
        timers.stop();
        deadlines.abort();
        self.files.flush().await;
        Ok(result?)
    }
}

/// When watching failed on a system limit, which one and what to do (else
/// empty): the names of Linux's limits are not in the OS error's text.
pub fn watch_hint(e: &notify::Error) -> String {
    let sysctl = |name: &str| {
        std::fs::read_to_string(format!("/proc/sys/fs/inotify/{name}"))
            .map(|v| format!("fs.inotify.{name} = {}", v.trim()))
            .unwrap_or_else(|_| format!("fs.inotify.{name}"))
    };
    match &e.kind {
        notify::ErrorKind::Io(io) if io.raw_os_error() == Some(libc::EMFILE) => format!(
            " (too many open files: either this user's inotify instances ({}; each switchboard \
             process holds one) or the process's file limit (ulimit -n) are used up; \
             run with --no-watch, set `watch: false` for some agents, or raise the limit)",
            sysctl("max_user_instances")
        ),
        notify::ErrorKind::MaxFilesWatch => format!(
            " (this user's inotify watches are used up ({}; one per watched folder); \
             run with --no-watch, set `watch: false` for some agents, or raise the limit)",
            sysctl("max_user_watches")
        ),
        _ => String::new(),
    }
}

#[cfg(test)]
mod watch_hint_tests {
    use super::*;

    #[test]
    fn running_out_of_inotify_instances_says_which_limit_and_what_to_do() {
        let e = notify::Error::io(std::io::Error::from_raw_os_error(libc::EMFILE));
        let hint = watch_hint(&e);
        assert!(hint.contains("fs.inotify.max_user_instances"), "{hint}");
        assert!(hint.contains("ulimit -n"), "{hint}");
        assert!(hint.contains("--no-watch"), "{hint}");
        let err = AgentError::Watch {
            dir: PathBuf::from("/w"),
            hint,
            source: e,
        };
        assert!(err
            .to_string()
            .starts_with("cannot watch /w for changes (too many open files"));
        let watches = watch_hint(&notify::Error::new(notify::ErrorKind::MaxFilesWatch));
        assert!(watches.contains("fs.inotify.max_user_watches"), "{watches}");
        // Anything else: no hint.
        let other = notify::Error::io(std::io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(watch_hint(&other), "");
    }
}
