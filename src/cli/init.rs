//! `switchboard init`: a starter workflows folder that passes its own tests.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

/// Arguments of `switchboard init`.
#[derive(Debug, Args)]
#[command(after_help = "\
Writes hello.yaml (one rule), hello.test.yaml (its tests) and the JSON Schemas
editors use for completion (schemas/), then tells you what to run next.
Existing files are left alone unless --force is given.")]
pub struct InitArgs {
    /// The folder to create (or add to).
    #[arg(default_value = "workflows")]
    dir: PathBuf,

    /// Overwrite files that already exist.
    #[arg(long)]
    force: bool,
}

const HELLO: &str = r#"# yaml-language-server: $schema=schemas/workflow.schema.json
#
# A first workflow: the agent greets people who say hello to it.
# Every *.yaml file in this folder is a workflow; rule ids are
# <file name>/<rule name>, here hello/say-hello.
version: 1

vars:
  help: "Edit hello.yaml to teach me more."

rules:
  - name: say-hello
    description: Greet people who say hello
    on: message_created
    if:
      - event.sender_type: User
      - event.text: { matches: '(?i)\b(hello|hi|hey)\b' }
    do:
      - reply: "Hello {{ event.sender_name }}! I'm {{ agent.name }}. {{ vars.help }}"
    stop: true
"#;

const HELLO_TEST: &str = r#"# yaml-language-server: $schema=schemas/workflow-test.schema.json
#
# Tests for hello.yaml: `switchboard test` runs them with no network.
tests:
  - name: hello gets a greeting
    event:
      type: message_created
      payload: { id: m1, chat_room_id: r1, content: "hello there", sender_id: u1, sender_type: User, sender_name: Ann, message_type: text }
    expect:
      matched: [hello/say-hello]
      actions:
        - reply: "Hello Ann! I'm Agent Under Test. Edit hello.yaml to teach me more."

  - name: other messages are left alone
    event:
      type: message_created
      payload: { id: m2, chat_room_id: r1, content: "what's the weather like?", sender_id: u1, sender_type: User, sender_name: Ann, message_type: text }
    expect:
      matched: []
      actions: []
"#;

/// Writes the starter files.
pub fn run(args: InitArgs) -> anyhow::Result<ExitCode> {
    let files: Vec<(PathBuf, String)> = vec![
        (args.dir.join("hello.yaml"), HELLO.to_owned()),
        (args.dir.join("hello.test.yaml"), HELLO_TEST.to_owned()),
        (
            args.dir.join("schemas/workflow.schema.json"),
            pretty(&switchboard_workflow::json_schema())?,
        ),
        (
            args.dir.join("schemas/workflow-test.schema.json"),
            pretty(&crate::dryrun::spec::json_schema())?,
        ),
    ];
    let existing: Vec<&Path> = files
        .iter()
        .map(|(p, _)| p.as_path())
        .filter(|p| p.exists())
        .collect();
    if !existing.is_empty() && !args.force {
        eprintln!("error: these files exist already (--force overwrites them):");
        for p in existing {
            eprintln!("  {}", p.display());
        }
        return Ok(ExitCode::FAILURE);
    }
    for (path, text) in &files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("created {}", path.display());
    }
    let dir = args.dir.display();
    println!(
        "\nnext:\n  \
         switchboard test {dir}      run the workflow tests (no network)\n  \
         switchboard check {dir}     validate every workflow\n  \
         switchboard sandbox         a local platform to try it on, then in another terminal:\n  \
         switchboard run --workflows {dir} --api-key triage-key \\\n      \
         --rest-url http://127.0.0.1:4000 --ws-url ws://127.0.0.1:4000/api/v1/socket/websocket"
    );
    Ok(ExitCode::SUCCESS)
}

fn pretty(v: &serde_json::Value) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(v)? + "\n")
}
