//! `switchboard demo`: the sandbox in-process, the agent on the shipped
//! workflows, and a short scripted conversation played through the human
//! API, printed as a live transcript of what happened and which rule did it.

use crate::error_chain::Chain;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::Args;
use tokio::sync::mpsc;

use crate::agent::{Agent, AgentConfig, AgentError, Handled, StateDirChoice};
use crate::rules::reload::{ReloadOutcome, ReloadReport};
use band_client::rest::{HumanApi, HumanMessageQuery, RestConfig};
use band_sandbox::{default_seed, RunningSandbox};
use band_wire::model::{ChatMessage, Mention};
use switchboard_engine::run::ActionStatus;
use switchboard_engine::Finish;
use switchboard_workflow::actions::RenderedAction;

/// How long one step may wait for the agent.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// The agent the demo runs as (from the example seed).
const AGENT_KEY: &str = "triage-key";
/// The workflow file step 5 edits, what it changes in it, and to what.
const EDITED_FILE: &str = "faq.yaml";
const EDIT_FROM: &str = "9:00 to 17:00";
const EDIT_TO: &str = "8:00 to 20:00";

/// Arguments of `switchboard demo`.
#[derive(Debug, Args)]
#[command(after_help = "\
The demo needs no network: the sandbox listens on a free loopback port and
stops with the demo. It runs as alice/triage-bot from the example seed, with
people bob, carol and alice acting through the sandbox's human API. The agent
runs on a temporary copy of the workflows folder, which the script edits
while the agent runs (hot reload); the folder itself is never changed.

With --keep-running, the sandbox and the agent stay up after the script: open
the console URL it prints to be bob, carol or alice in a browser and watch the
agent (which rule handled each message, and the room's conversations waiting
for an answer) until Ctrl-C.")]
pub struct DemoArgs {
    /// Workflows folder the agent runs.
    #[arg(long, default_value = "workflows")]
    workflows: PathBuf,

    /// Seed for the sandbox (default: the built-in example seed).
    #[arg(long)]
    seed: Option<PathBuf>,

    /// After the script, keep the sandbox and the agent running (with the
    /// sandbox console at `/`) until Ctrl-C.
    #[arg(long)]
    keep_running: bool,

    /// Where the sandbox listens (port 0: a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

/// Plays the script; exit 1 if the agent did not do what the script expects.
pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let seed = match &args.seed {
        Some(p) => match super::sandbox::seed_or_report(p)? {
            Some(seed) => seed,
            None => return Ok(ExitCode::FAILURE),
        },
        None => default_seed(),
    };
    let sandbox = RunningSandbox::start(args.listen, seed)
        .await
        .context("cannot start the sandbox")?;
    let (tx, rx) = mpsc::unbounded_channel();
    // The script edits a workflow while the agent runs: it does so on a copy,
    // never in the folder it was given.
    let copy = tempfile::Builder::new()
        .prefix("switchboard-demo-")
        .tempdir()
        .context("cannot create a temporary folder for the workflows' copy")?;
    copy_folder(&args.workflows, copy.path()).with_context(|| {
        format!(
            "cannot copy {} to a temporary folder",
            args.workflows.display()
        )
    })?;
    let mut config = AgentConfig::new(
        sandbox.rest_url(),
        sandbox.ws_url(),
        AGENT_KEY.into(),
        copy.path().to_path_buf(),
    );
    // A throwaway sandbox: nothing of it is worth keeping on disk.
    config.state_dir = StateDirChoice::Ephemeral;
    config.watch = true;
    let agent = if args.keep_running {
        let (agent, feed) = prepare_with_feed(&mut config, tx).await?;
        sandbox.sandbox().set_agent_feed(Some(feed));
        agent
    } else {
        Agent::prepare(&config, Some(tx)).await?
    };
    let (reload_tx, reloads) = mpsc::unbounded_channel();
    let agent = agent.with_reload_reports(reload_tx);
    let rules = agent.engine().ruleset();
    let handle = agent.handle();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(agent.run_until(async {
        let _ = stop_rx.await;
    }));
    println!(
        "switchboard demo: sandbox on {}, agent alice/triage-bot, {} rules from {} workflow files in {} (run from a temporary copy, edited in step 5)\n",
        sandbox.rest_url(),
        rules.len(),
        rules.files(),
        args.workflows.display()
    );
    let mut script = Script::new(&sandbox, rx, reloads, copy.path().to_path_buf())?;
    let result = script.play().await;
    if args.keep_running {
        let stop = super::sandbox::shutdown_signal();
        report(&script, started, &result);
        println!(
            "\nconsole at {}/ (agent feed {}); Ctrl-C to stop",
            sandbox.rest_url(),
            sandbox.sandbox().agent_feed().unwrap_or_default()
        );
        // The transcript is over; the agent's sink ignores a closed channel.
        script.rx.close();
        stop.await;
        println!("stopping");
    }
    handle.shutdown();
    let _ = stop_tx.send(());
    match tokio::time::timeout(STEP_TIMEOUT, running).await {
        Ok(Ok(Err(e))) => eprintln!("agent stopped with an error: {}", Chain(&e)),
        Ok(Err(e)) => eprintln!("agent task failed: {e}"),
        Err(_) => eprintln!("agent did not stop in time"),
        Ok(Ok(Ok(()))) => {}
    }
    let _ = sandbox.shutdown().await;
    if !args.keep_running {
        report(&script, started, &result);
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

/// The closing line of a script that played to the end.
fn report(script: &Script, started: Instant, result: &anyhow::Result<()>) {
    if result.is_ok() {
        println!(
            "\ndone in {:.1}s: {} events handled, {} actions, {} failed",
            started.elapsed().as_secs_f64(),
            script.events,
            script.actions,
            script.failures
        );
    }
}

/// Copies the regular files of `from` into `to`, sub-folders included
/// (symbolic links to folders are not followed: no loops).
fn copy_folder(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            std::fs::create_dir(&target)?;
            copy_folder(&entry.path(), &target)?;
        } else if kind.is_file() || (kind.is_symlink() && entry.path().is_file()) {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Prepares the agent with a metrics server on a free loopback port and
/// returns it with that server's URL, the console's agent feed.
async fn prepare_with_feed(
    config: &mut AgentConfig,
    tx: mpsc::UnboundedSender<Handled>,
) -> anyhow::Result<(Agent, String)> {
    // The agent binds the address itself and does not say which port port 0
    // got, so we pick a free port first; another process may take it in
    // between, hence a few tries.
    let mut last = None;
    for _ in 0..5 {
        let addr = free_loopback_port()?;
        config.metrics_addr = Some(addr);
        match Agent::prepare(config, Some(tx.clone())).await {
            Ok(agent) => return Ok((agent, format!("http://{addr}"))),
            Err(e @ AgentError::Metrics { .. }) => last = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(anyhow!(
        "cannot serve the agent feed: {}",
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}

/// A loopback address with a port nobody listens on right now.
fn free_loopback_port() -> anyhow::Result<SocketAddr> {
    let probe = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("cannot find a free loopback port")?;
    Ok(probe.local_addr()?)
}

/// Who speaks in a step (the seed's people).
#[derive(Debug, Clone, Copy)]
enum Person {
    Bob,
    Carol,
}

/// The scripted people and what they saw.
struct Script {
    rx: mpsc::UnboundedReceiver<Handled>,
    /// The agent's reload reports.
    reloads: mpsc::UnboundedReceiver<ReloadReport>,
    /// The copy of the workflows folder the agent runs on.
    workflows: PathBuf,
    /// Whether the line saying what a "(thought)" row is was printed.
    thoughts_explained: bool,
    bob: HumanApi,
    carol: HumanApi,
    alice: HumanApi,
    /// Handles by id, to show mention markers as @handles.
    names: HashMap<String, String>,
    last_seen: Option<String>,
    events: usize,
    actions: usize,
    failures: usize,
}

impl Script {
    fn new(
        sandbox: &RunningSandbox,
        rx: mpsc::UnboundedReceiver<Handled>,
        reloads: mpsc::UnboundedReceiver<ReloadReport>,
        workflows: PathBuf,
    ) -> anyhow::Result<Self> {
        let human = |key: &str| HumanApi::new(RestConfig::new(sandbox.rest_url(), key));
        Ok(Script {
            rx,
            reloads,
            workflows,
            thoughts_explained: false,
            bob: human("bob-key")?,
            carol: human("carol-key")?,
            alice: human("alice-key")?,
            names: HashMap::new(),
            last_seen: None,
            events: 0,
            actions: 0,
            failures: 0,
        })
    }

    async fn play(&mut self) -> anyhow::Result<()> {
        self.wait_for(|h| h.event_type == "agent_started").await?;

        println!("1. Contact requests to @alice/triage-bot (workflow: contacts)");
        println!("   bob asks to connect: \"Hi, I'm Bob from the support team.\"");
        self.bob
            .send_contact_request(
                "alice/triage-bot",
                Some("Hi, I'm Bob from the support team."),
            )
            .await?;
        self.wait_for(|h| h.event_type == "contact_request_received")
            .await?;
        println!("   carol asks to connect: \"Let's connect!\"");
        self.carol
            .send_contact_request("alice/triage-bot", Some("Let's connect!"))
            .await?;
        self.wait_for(|h| h.event_type == "contact_request_received")
            .await?;

        let room = self
            .bob
            .list_chats(None, Some(100))
            .await?
            .items
            .into_iter()
            .find(|r| r.title.as_deref() == Some("Support"))
            .ok_or_else(|| anyhow!("the seed has no Support room for bob"))?;
        let bot = self.refresh_names(&room.id).await?;
        let mention = [Mention {
            id: Some(bot),
            ..Mention::default()
        }];

        println!("\n2. A refund question in the Support room (workflow: triage)");
        self.say(
            &room.id,
            "I was charged twice for order 1042, can I get a refund?",
            &mention,
        )
        .await?;
        println!("\n3. A frequently asked question (workflow: faq)");
        self.say(&room.id, "What are your opening hours?", &mention)
            .await?;
        println!("\n4. Three questions no rule can answer (workflow: escalation)");
        for text in [
            "Can you explain the warranty terms for refurbished items?",
            "Hello? Is anyone there?",
            "I really need to talk to a person.",
        ] {
            self.say(&room.id, text, &mention).await?;
        }
        println!("\n5. A workflow edited while the agent runs (hot reload)");
        self.edit_and_ask_again(&room.id, &mention).await?;
        println!(
            "\n6. A conversation: the bot asks back and waits for the answer (workflow: triage)"
        );
        self.conversation(&room.id, &mention).await?;
        if self.failures > 0 {
            bail!("{} events failed; see the transcript above", self.failures);
        }
        Ok(())
    }

    /// Changes the opening hours in the running copy of the workflows, waits
    /// for the agent to report the reload, and asks step 3's question again.
    async fn edit_and_ask_again(&mut self, room: &str, mentions: &[Mention]) -> anyhow::Result<()> {
        let file = self.workflows.join(EDITED_FILE);
        let before = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        if !before.contains(EDIT_FROM) {
            println!("   (skipped: {EDITED_FILE} has no \"{EDIT_FROM}\" to change)");
            return Ok(());
        }
        println!(
            "   editing {EDITED_FILE}: the opening hours \"{EDIT_FROM}\" become \"{EDIT_TO}\""
        );
        // Reports of earlier reloads (none are expected) are not this one's.
        while self.reloads.try_recv().is_ok() {}
        std::fs::write(&file, before.replace(EDIT_FROM, EDIT_TO))
            .with_context(|| format!("cannot write {}", file.display()))?;
        let report = tokio::time::timeout(STEP_TIMEOUT, self.reloads.recv())
            .await
            .map_err(|_| {
                anyhow!(
                    "the agent did not reload {EDITED_FILE} within {}s",
                    STEP_TIMEOUT.as_secs()
                )
            })?
            .ok_or_else(|| anyhow!("the agent stopped"))?;
        match &report.outcome {
            ReloadOutcome::Reloaded { rules, changed, .. } => println!(
                "     ↻ reloaded in {}ms: {rules} rules, changed: {}",
                report.elapsed.as_millis(),
                changed.join(", ")
            ),
            ReloadOutcome::Failed { errors } => {
                bail!("the edited workflows do not load:\n{errors}")
            }
        }
        self.say(room, "What are your opening hours?", mentions)
            .await
    }

    /// Bob asks for his money back: the rule asks which order and waits;
    /// his answer goes on with it, which asks carol, whose answer ends it.
    async fn conversation(&mut self, room: &str, mentions: &[Mention]) -> anyhow::Result<()> {
        println!(
            "   (a conversation: the rule asks back and pauses; an answer, which must mention the bot like every message it receives, goes to the waiting rule instead of the rules, and the rule goes on)"
        );
        self.say(room, "I'd like my money back, please.", mentions)
            .await?;
        self.say(room, "It's order 1042.", mentions).await?;
        self.say_as(Person::Carol, room, "approve", mentions).await
    }

    /// Bob says something in the room; waits for the agent, shows the replies.
    async fn say(&mut self, room: &str, text: &str, mentions: &[Mention]) -> anyhow::Result<()> {
        self.say_as(Person::Bob, room, text, mentions).await
    }

    /// `who` says something in the room; waits for the agent, shows the replies.
    async fn say_as(
        &mut self,
        who: Person,
        room: &str,
        text: &str,
        mentions: &[Mention],
    ) -> anyhow::Result<()> {
        let (api, name) = match who {
            Person::Bob => (&self.bob, "Bob Jones"),
            Person::Carol => (&self.carol, "Carol White"),
        };
        let sent = api.send_message(room, text, mentions).await?;
        let id = sent.id.clone();
        // Show the person's line now; the agent's answers are read after it.
        println!("   {name}: @alice/triage-bot {text}");
        self.last_seen = Some(id.clone());
        self.wait_for(|h| h.message_id.as_deref() == Some(id.as_str()))
            .await?;
        // Joins cause participant events; let them land before reading.
        tokio::time::sleep(Duration::from_millis(150)).await;
        while let Ok(h) = self.rx.try_recv() {
            self.show(&h);
        }
        self.refresh_names(room).await?;
        self.show_new_messages(room).await
    }

    /// Waits for a handled event matching `pred`, showing it (and any before it).
    async fn wait_for(&mut self, pred: impl Fn(&Handled) -> bool) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        loop {
            let h = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .map_err(|_| anyhow!("the agent did not react within {}s", STEP_TIMEOUT.as_secs()))?
                .ok_or_else(|| anyhow!("the agent stopped"))?;
            self.show(&h);
            if pred(&h) {
                return Ok(());
            }
        }
    }

    /// One line per rule that did something.
    fn show(&mut self, h: &Handled) {
        if h.event_type == "agent_started" {
            return;
        }
        self.events += 1;
        let r = &h.report;
        let rules = r
            .matched
            .iter()
            .map(|m| (m, ""))
            .chain(r.else_ran.iter().map(|m| (m, " (else)")));
        for (rule, branch) in rules {
            let done: Vec<String> = r
                .actions
                .iter()
                .filter(|a| &a.rule == rule && a.status != ActionStatus::Skipped)
                .map(|a| match a.status {
                    ActionStatus::Failed => format!("{} FAILED", a.name),
                    _ => a.name.to_owned(),
                })
                .collect();
            self.actions += done.len();
            println!("     ⚙ {rule}{branch} → {}", done.join(", "));
            // A rejection's reason is kept nowhere on the platform: show it.
            for a in r.actions.iter().filter(|a| &a.rule == rule) {
                if let Some(RenderedAction::RejectContact(reject)) = &a.action {
                    let why = reject
                        .reason
                        .as_deref()
                        .unwrap_or("(the rule gave no reason)");
                    println!("       why: {why}");
                }
            }
        }
        if let Finish::Failed { reason } = &r.outcome {
            self.failures += 1;
            println!("     ✗ failed: {reason}");
        }
    }

    /// Loads the room's participants; returns the triage bot's id.
    async fn refresh_names(&mut self, room: &str) -> anyhow::Result<String> {
        let people = self.alice.list_participants(room).await?;
        let mut bot = None;
        for p in people {
            let handle = p.handle.clone().unwrap_or_else(|| p.id.clone());
            if handle == "alice/triage-bot" {
                bot = Some(p.id.clone());
            }
            self.names.insert(p.id, handle);
        }
        bot.ok_or_else(|| anyhow!("alice/triage-bot is not in the room"))
    }

    async fn show_new_messages(&mut self, room: &str) -> anyhow::Result<()> {
        let query = HumanMessageQuery {
            after: self.last_seen.clone(),
            limit: Some(100),
            ..HumanMessageQuery::default()
        };
        let page = self.alice.list_messages(room, &query).await?;
        for m in page.items {
            self.print_message(&m);
            self.last_seen = Some(m.id);
        }
        Ok(())
    }

    fn print_message(&mut self, m: &ChatMessage) {
        let who = m.sender_name.clone().unwrap_or_else(|| m.sender_id.clone());
        let text = band_wire::mentions::replace_markers(&m.content, |id| {
            self.names.get(id).map(String::as_str)
        });
        match m.message_type.as_str() {
            "text" => println!("   {who}: {text}"),
            kind => {
                println!("   {who} ({kind}): {text}");
                if kind == "thought" && !self.thoughts_explained {
                    self.thoughts_explained = true;
                    println!(
                        "     (a \"(thought)\" row is an event the agent posted with post_event: a note in the room's timeline that notifies nobody and is not a reply)"
                    );
                }
            }
        }
    }
}
