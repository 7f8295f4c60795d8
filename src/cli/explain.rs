//! `switchboard explain`: one event through the rules, with every rule's
//! conditions, what they saw, and the actions that would run. Nothing is sent.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::dryrun::explain::explain;
use crate::dryrun::record::RecordedEvent;
use switchboard_engine::{Engine, RecordingExecutor, StateStore};

/// Output format of `explain`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// The engine's full report as JSON.
    Json,
}

/// Arguments of `switchboard explain`.
#[derive(Debug, Args)]
#[command(after_help = "\
The event file is JSON or YAML, the shape `run --record` writes per line:

  type: message_created
  payload: { id: m1, chat_room_id: r1, content: \"I want a refund\",
             sender_id: u1, sender_type: User, sender_name: Ann }
  chat: { id: r1, title: Support, participants: [...] }   # optional
  agent: { id: a1, name: Triage, handle: acme/triage }    # optional
  state: { \"unanswered:r1\": 2 }                          # optional
  now: 2026-01-05T09:00:00Z                               # optional
  rule: reports/daily                                      # schedule events

Exit status: 0 when the event was handled, 1 when it would be marked failed
or the files do not load.")]
pub struct ExplainArgs {
    /// The event (JSON or YAML; `-` reads stdin).
    #[arg(long, short = 'e', value_name = "FILE")]
    event: PathBuf,

    /// Workflows folder.
    #[arg(default_value = "workflows")]
    dir: PathBuf,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// Explains one event.
pub async fn run(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let text = match args.event.as_os_str() == "-" {
        true => std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?,
        false => std::fs::read_to_string(&args.event)
            .with_context(|| format!("cannot read {}", args.event.display()))?,
    };
    let event =
        parse_event(&text).with_context(|| format!("{} is not an event", args.event.display()))?;
    let Some(ruleset) = super::check::load(&args.dir).map(Arc::new) else {
        return Ok(ExitCode::FAILURE);
    };
    if let Some(rule) = &event.rule {
        if ruleset.rule(rule).is_none() {
            anyhow::bail!("no rule `{rule}` in {}", args.dir.display());
        }
    }
    let engine =
        Engine::new(ruleset.clone(), Arc::new(StateStore::in_memory())).tracing_every_rule();
    let executor = RecordingExecutor::new();
    let report = event.run(&engine, &executor).await;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => {
            let scope = event.prepare().scope;
            let mut head = format!("{} event", event.kind);
            if let Some(room) = &scope.chat_id {
                head.push_str(&format!(" in room {room}"));
            }
            if let Some(from) = scope.sender.and_then(|s| s.name) {
                head.push_str(&format!(" from {from}"));
            }
            let listening = ruleset.rules_for(&event.kind).count();
            println!(
                "{head}: {listening} rule{} listening",
                if listening == 1 { "" } else { "s" }
            );
            print!("{}", explain(&report, Some(&ruleset)));
            println!("(dry run: nothing was sent)");
        }
    }
    Ok(match report.outcome {
        switchboard_engine::Finish::Done => ExitCode::SUCCESS,
        // A dry run is never stopped by the platform; not done all the same.
        switchboard_engine::Finish::Failed { .. } | switchboard_engine::Finish::Stopped { .. } => {
            ExitCode::FAILURE
        }
    })
}

/// JSON first (a recorded line), then YAML (by hand).
fn parse_event(text: &str) -> anyhow::Result<RecordedEvent> {
    if let Ok(ev) = serde_json::from_str::<RecordedEvent>(text) {
        return Ok(ev);
    }
    let node = switchboard_workflow::yaml::parse(text).map_err(|e| match e.loc {
        Some(l) => anyhow::anyhow!("line {}, column {}: {}", l.line, l.col, e.message),
        None => anyhow::anyhow!("{}", e.message),
    })?;
    Ok(serde_json::from_value(node.to_json())?)
}
