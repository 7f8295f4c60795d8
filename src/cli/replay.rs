//! `switchboard replay`: a recorded event stream (`run --record`) through
//! the current workflows, dry: one summary line per event.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::dryrun::explain::explain;
use crate::dryrun::record::{read_lines, Line};
use switchboard_engine::run::ActionStatus;
use switchboard_engine::{Engine, Finish, RecordingExecutor, StateStore};

/// Arguments of `switchboard replay`.
#[derive(Debug, Args)]
#[command(after_help = "\
Record a live stream with `switchboard run --record events.jsonl`, change the
workflows, and replay it to see what the new rules would have done:

  switchboard replay --events events.jsonl workflows/

Events run in order on one in-memory state (counters and throttles carry over),
each at its recorded time. Nothing is sent. Lines that are not events are
reported and skipped. Exit status: 0, or 1 when a line could not be read.")]
pub struct ReplayArgs {
    /// The recording (JSON lines).
    #[arg(long, value_name = "FILE.jsonl")]
    events: PathBuf,

    /// Workflows folder.
    #[arg(default_value = "workflows")]
    dir: PathBuf,

    /// Also print each event's trace.
    #[arg(long)]
    explain: bool,
}

/// Replays the stream.
pub async fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let lines = read_lines(&args.events)
        .with_context(|| format!("cannot read {}", args.events.display()))?;
    let Some(ruleset) = super::check::load(&args.dir).map(Arc::new) else {
        return Ok(ExitCode::FAILURE);
    };
    let engine =
        Engine::new(ruleset.clone(), Arc::new(StateStore::in_memory())).tracing_every_rule();
    let executor = RecordingExecutor::new();
    let (mut events, mut matched, mut actions, mut failed, mut bad) = (0, 0, 0, 0, 0);
    for (n, line) in lines {
        let event = match line {
            Line::Event(e) => e,
            Line::Bad(why) => {
                bad += 1;
                println!("line {n}: skipped, not a recorded event: {why}");
                continue;
            }
        };
        if let Some(rule) = &event.rule {
            if ruleset.rule(rule).is_none() {
                println!("line {n}: {} for rule {rule}: no such rule now", event.kind);
                continue;
            }
        }
        let report = event.run(&engine, &executor).await;
        events += 1;
        matched += usize::from(!report.matched.is_empty() || !report.else_ran.is_empty());
        actions += report
            .actions
            .iter()
            .filter(|a| a.status != ActionStatus::Skipped)
            .count();
        let scope = event.prepare().scope;
        let room = scope.chat_id.as_deref().unwrap_or("-");
        let message = scope.message_id.as_deref().unwrap_or("-");
        let end = match &report.outcome {
            Finish::Done => String::new(),
            Finish::Failed { reason } => {
                failed += 1;
                format!(" FAILED: {reason}")
            }
            Finish::Stopped { reason } => {
                failed += 1;
                format!(" STOPPED: {reason}")
            }
        };
        let at = event
            .now
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            .unwrap_or_default();
        println!(
            "line {n}: {at} {} room={room} message={message} rules={} actions={}{end}",
            event.kind,
            report.rules_summary(),
            none_if_empty(report.actions_summary()),
        );
        if args.explain {
            print!("{}", explain(&report, Some(&ruleset)));
        }
    }
    println!(
        "\n{events} events replayed: {matched} matched a rule, {actions} actions, {failed} failed{}; nothing was sent",
        match bad {
            0 => String::new(),
            n => format!(", {n} unreadable lines"),
        }
    );
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn none_if_empty(s: String) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s
    }
}
