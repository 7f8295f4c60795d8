//! The root package's integration tests, one binary: the `switchboard` binary
//! as a process (CLI, demo, agent, chaos), the agent against the sandbox over
//! loopback, the official SDK against the sandbox, and the workspace's own
//! invariants. Helpers shared by several modules live in `support`.

mod bench_cli;
mod chaos;
mod cli_agent;
mod cli_dryrun;
mod cli_sandbox;
mod console_browser;
mod conversations;
mod coverage_cli;
mod coverage_runtime;
mod durable;
mod fleet;
mod fleet_store;
mod http_action;
mod journal;
mod limits;
mod llm_action;
mod metrics;
mod redis_server;
mod reload;
mod runtime_sandbox;
mod schemas;
mod sdk_compat;
mod secrets;
mod secrets_redaction;
mod setup_scripts;
mod store_redis;
mod support;
mod webhooks;
mod webhooks_store;
mod workflows;
mod workspace_invariants;
