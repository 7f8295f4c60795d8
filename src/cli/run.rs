//! `switchboard run`: the agent, on the real platform or the sandbox.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

use crate::agent::{Agent, AgentConfig, AllowedHost, StateDirChoice};
use crate::effects::webhook_queue::DEFAULT_MAX_PENDING;

/// The platform's defaults, as the official SDK has them.
const DEFAULT_REST_URL: &str = "https://app.band.ai";
const DEFAULT_WS_URL: &str = "wss://app.band.ai/api/v1/socket/websocket";

/// Arguments of `switchboard run`.
#[derive(Debug, Args)]
#[command(after_help = "\
Every flag also reads the environment variable the official tools use.
Against the sandbox (`switchboard sandbox` in another terminal):
  switchboard run --rest-url http://127.0.0.1:4000 \\
      --ws-url ws://127.0.0.1:4000/api/v1/socket/websocket --api-key triage-key

The journal, the rule state and the queue of accepted webhook deliveries live
in a locked state directory (--state-dir; --ephemeral keeps them in memory), so
a crash does not repeat replies nor lose a delivery answered 202.
The agent stops cleanly on Ctrl-C or SIGTERM: the event in hand finishes first.
It reloads its workflows when a file in the folder changes, and on SIGHUP; a
folder that does not compile leaves the running rules in place (errors logged).")]
pub struct RunArgs {
    /// Run every agent of this fleet file in this process instead (see
    /// docs/fleet.md); --rest-url, --ws-url, --metrics-addr, --no-watch and
    /// --state-dir (a root: one directory per agent id in it) apply to the
    /// fleet, the per-agent options come from the file.
    #[arg(
        long,
        value_name = "FLEET.yaml",
        conflicts_with_all = ["workflows", "ephemeral", "state_file", "journal", "allow_env", "allow_http_hosts", "explain", "record", "webhook_addr", "webhook_queue", "max_attempts", "retry_delay", "llm_url", "llm_model", "llm_key_file", "max_pending_per_person"]
    )]
    fleet: Option<PathBuf>,

    /// Keep the agent's (or the fleet's agents') state, action journal,
    /// pending conversations and throttle windows in this shared store instead
    /// of a state directory: redis://HOST:PORT/DB (rediss:// for TLS; Redis >= 6
    /// or Valkey). An agent then runs in one process at a time, chosen by a
    /// lease: a second `run` of the same agent stands by and takes over when
    /// the first dies; processes running the same fleet split its agents.
    /// Overrides the fleet file's `store:`.
    #[arg(long, env = "SWITCHBOARD_STORE", value_name = "URL", value_parser = parse_store, conflicts_with_all = ["ephemeral", "state_file", "journal"])]
    store: Option<crate::fleet::StoreUrl>,

    /// With a store: the most agents this process runs (the others are left
    /// to other processes).
    #[arg(long, value_name = "N", requires = "fleet", value_parser = clap::value_parser!(u64).range(1..))]
    max_agents: Option<u64>,

    /// With a store: how long an agent's lease lasts without renewal (renewed
    /// four times per lease). A dead process's agents are taken over after
    /// about this long.
    #[arg(long, default_value = "5s", value_parser = parse_lease, value_name = "DURATION")]
    lease: std::time::Duration,

    /// Workflows folder (every *.yaml / *.yml under it, except *.test.yaml).
    #[arg(long, default_value = "workflows")]
    workflows: PathBuf,

    /// The agent's API key. Prefer --api-key-file or the environment: a flag
    /// is visible to other users in the process list.
    #[arg(long, env = "BAND_API_KEY", hide_env_values = true)]
    api_key: Option<String>,

    /// Read the API key from this file (surrounding whitespace ignored).
    #[arg(
        long,
        env = "BAND_API_KEY_FILE",
        value_name = "PATH",
        conflicts_with = "api_key"
    )]
    api_key_file: Option<PathBuf>,

    /// The agent's id; when given, the key must belong to it.
    #[arg(long, env = "BAND_AGENT_ID")]
    agent_id: Option<String>,

    /// REST base URL.
    #[arg(long, env = "BAND_REST_URL", default_value = DEFAULT_REST_URL)]
    rest_url: String,

    /// WebSocket URL.
    #[arg(long, env = "BAND_WS_URL", default_value = DEFAULT_WS_URL)]
    ws_url: String,

    /// Keep the action journal and the rule state in DIR (locked: one live
    /// process per directory). Default: $XDG_STATE_HOME/switchboard/<agent id>,
    /// or ~/.local/state/switchboard/<agent id>.
    #[arg(long, env = "SWITCHBOARD_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// Keep the journal, the state and the webhook queue in memory: nothing
    /// is written, a reply sent just before a crash may be sent again after
    /// it, and webhook deliveries not yet handled are lost (demos,
    /// benchmarks, throwaway runs).
    #[arg(long, conflicts_with = "state_dir")]
    ephemeral: bool,

    /// Save rule state (counters) to this file instead of the state directory's.
    #[arg(long)]
    state_file: Option<PathBuf>,

    /// Let templates read this environment variable as `env.NAME` (repeatable).
    #[arg(long = "allow-env", value_name = "NAME")]
    allow_env: Vec<String>,

    /// Let the `http` action reach this host, on any port, or only this port
    /// with HOST:PORT (repeatable). Redirects are followed only to allowed hosts.
    #[arg(long = "allow-http-host", value_name = "HOST[:PORT]")]
    allow_http_hosts: Vec<AllowedHost>,

    /// The OpenAI-compatible API `llm` actions ask, up to `/v1`
    /// (e.g. http://127.0.0.1:11434/v1 for Ollama). Only this host is
    /// reached for them; the `http` allowlist is not widened.
    #[arg(
        long,
        env = "SWITCHBOARD_LLM_URL",
        value_name = "URL",
        requires = "llm_model"
    )]
    llm_url: Option<String>,

    /// The model `llm` actions ask (e.g. gpt-4o-mini, llama3.2).
    #[arg(
        long,
        env = "SWITCHBOARD_LLM_MODEL",
        value_name = "NAME",
        requires = "llm_url"
    )]
    llm_model: Option<String>,

    /// Read the language model's API key from this file; or set
    /// SWITCHBOARD_LLM_API_KEY. None is sent when neither is given (local servers).
    #[arg(long, env = "SWITCHBOARD_LLM_KEY_FILE", value_name = "PATH")]
    llm_key_file: Option<PathBuf>,

    /// Do not reload when workflow files change (SIGHUP still reloads).
    #[arg(long)]
    no_watch: bool,

    /// Keep the action journal in this file instead of the state directory's
    /// (a message served again after a crash resumes without repeating replies).
    #[arg(long, env = "BAND_JOURNAL", value_name = "PATH")]
    journal: Option<PathBuf>,

    /// Attempts a failing message gets (retried after a pause) before it is left failed.
    #[arg(long, default_value_t = 5, value_name = "N")]
    max_attempts: u64,

    /// Pause before a room with a failed message is drained again (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s", value_parser = parse_delay, value_name = "DURATION")]
    retry_delay: std::time::Duration,

    /// Log every event's trace: each rule's conditions, what they saw, the actions.
    #[arg(long)]
    explain: bool,

    /// Append every handled event to FILE (JSON lines) for `switchboard replay`.
    #[arg(long, value_name = "FILE.jsonl")]
    record: Option<PathBuf>,
    /// Serve Prometheus metrics (/metrics) and a health check (/healthz) on
    /// this address, e.g. 127.0.0.1:9464.
    #[arg(long, env = "BAND_METRICS_ADDR", value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,

    /// Serve the workflows' incoming webhooks (POST /hooks/NAME) on this
    /// address, e.g. 0.0.0.0:8787. Accepted deliveries are queued in the
    /// state directory (in memory with --ephemeral) before the 202.
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_ADDR", value_name = "ADDR")]
    webhook_addr: Option<SocketAddr>,

    /// The most webhook deliveries waiting to be handled; more get 429.
    #[arg(long, default_value_t = DEFAULT_MAX_PENDING, value_name = "N")]
    webhook_queue: usize,
    /// Most pending conversations (`wait_for`, `ask`) per room and person;
    /// past it the oldest ends at once with its `on_timeout`.
    #[arg(
        long,
        env = "SWITCHBOARD_MAX_PENDING_PER_PERSON",
        default_value_t = crate::rules::conversations::DEFAULT_MAX_PER_PERSON as u64,
        value_parser = clap::value_parser!(u64).range(1..),
        value_name = "N"
    )]
    max_pending_per_person: u64,
}

/// Runs the agent until Ctrl-C / SIGTERM.
pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if let Some(fleet) = &args.fleet {
        let (rest, ws) = (args.rest_url, args.ws_url);
        let root = args.state_dir.filter(|d| !d.as_os_str().is_empty());
        let options = super::fleet::RunOptions {
            rest_url: rest,
            ws_url: ws,
            metrics_addr: args.metrics_addr,
            state_root: root,
            watch: !args.no_watch,
            store: args.store,
            max_agents: args
                .max_agents
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            lease: args.lease,
        };
        return super::fleet::run(fleet, options).await;
    }
    let api_key = match (&args.api_key_file, args.api_key) {
        (Some(path), _) => read_key_file(path)?,
        (None, Some(key)) if !key.trim().is_empty() => key,
        (None, _) => bail!(
            "no API key: set BAND_API_KEY, or pass --api-key-file (BAND_API_KEY_FILE) or --api-key"
        ),
    };
    let config = AgentConfig {
        rest_url: args.rest_url,
        ws_url: args.ws_url,
        api_key,
        agent_id: args.agent_id.filter(|a| !a.is_empty()),
        workflows: args.workflows,
        state_dir: match (args.ephemeral, args.state_dir) {
            (true, _) => StateDirChoice::Ephemeral,
            (false, Some(dir)) if !dir.as_os_str().is_empty() => StateDirChoice::At(dir),
            (false, _) => StateDirChoice::Default,
        },
        state_file: args.state_file,
        allow_env: args.allow_env,
        allow_http_hosts: args.allow_http_hosts,
        watch: !args.no_watch,
        journal: args.journal,
        max_attempts: args.max_attempts,
        retry_delay: args.retry_delay,
        explain: args.explain,
        record: args.record,
        metrics_addr: args.metrics_addr,
        webhook_addr: args.webhook_addr,
        webhook_queue: args.webhook_queue,
        max_pending_per_person: usize::try_from(args.max_pending_per_person).unwrap_or(usize::MAX),
        redaction: super::logging::redaction(),
        llm: llm_config(args.llm_url, args.llm_model, args.llm_key_file)?,
    };
    if let Some(url) = &args.store {
        let store = crate::effects::redis::RedisStore::connect(url.secret_url(), &url.redacted())
            .await
            .with_context(|| format!("--store {}", url.redacted()))?;
        // The lease is per agent: its id is needed before anything runs.
        let agent_id = match &config.agent_id {
            Some(id) => id.clone(),
            None => {
                let api = band_client::rest::AgentApi::new(band_client::rest::RestConfig::new(
                    &config.rest_url,
                    &config.api_key,
                ))?;
                crate::runtime::me_until_answered(&api, &crate::runtime::Tunables::default())
                    .await
                    .context("cannot identify the agent (GET /agent/me)")?
                    .id
            }
        };
        let stop = super::sandbox::shutdown_signal();
        crate::fleet::leased::run(store, &agent_id, config, args.lease, stop).await?;
        tracing::info!("agent stopped");
        return Ok(ExitCode::SUCCESS);
    }
    let agent = Agent::prepare(&config, None).await?;
    agent.run_until(super::sandbox::shutdown_signal()).await?;
    tracing::info!("agent stopped");
    Ok(ExitCode::SUCCESS)
}

/// A `--store` URL (redis:// or rediss://); the error never shows a password.
fn parse_store(text: &str) -> Result<crate::fleet::StoreUrl, String> {
    crate::fleet::StoreUrl::parse(text).map_err(|e| e.replace("`store`", "--store"))
}

/// A `--lease` between 1 s and 10 min.
fn parse_lease(text: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| format!("{e} (e.g. 5s, 1500ms)"))?;
    match d {
        d if d < std::time::Duration::from_secs(1) => {
            Err("a lease shorter than 1s would be lost on any hiccup".into())
        }
        d if d > std::time::Duration::from_secs(600) => Err(
            "a lease longer than 10min leaves an agent unanswered that long when its process dies"
                .into(),
        ),
        d => Ok(d),
    }
}

/// The key from a file; warns when others may read it.
fn read_key_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the API key file {}", path.display()))?;
    let key = text.trim();
    if key.is_empty() {
        bail!("the API key file {} is empty", path.display());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    file = %path.display(),
                    "the API key file can be read by other users; chmod 600 it"
                );
            }
        }
    }
    Ok(key.to_owned())
}

/// The `--llm-*` settings; the key from `--llm-key-file`, else from
/// `SWITCHBOARD_LLM_API_KEY` (never a flag: the process list shows flags).
fn llm_config(
    url: Option<String>,
    model: Option<String>,
    key_file: Option<PathBuf>,
) -> anyhow::Result<Option<crate::agent::LlmConfig>> {
    let (Some(url), Some(model)) = (url, model) else {
        if key_file.is_some() {
            bail!("--llm-key-file is given without --llm-url and --llm-model");
        }
        return Ok(None);
    };
    if model.trim().is_empty() {
        bail!("--llm-model is empty");
    }
    let key = match key_file {
        Some(path) => Some(read_key_file(&path).context("the language model's API key")?),
        None => std::env::var(LLM_KEY_VAR).ok(),
    };
    Ok(Some(crate::agent::LlmConfig::new(&url, &model, key)?))
}

/// The environment variable holding the language model's API key.
const LLM_KEY_VAR: &str = "SWITCHBOARD_LLM_API_KEY";

fn parse_delay(s: &str) -> Result<std::time::Duration, String> {
    switchboard_workflow::duration::parse_duration(s)
}
