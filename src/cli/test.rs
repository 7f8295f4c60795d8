//! `switchboard test`: runs the workflow tests (`*.test.yaml`) of a folder
//! with no network and reports like `cargo test`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;

use crate::dryrun::spec::{load_test_file, test_files};
use crate::dryrun::suite::{run_file, CaseResult};

/// Arguments of `switchboard test`.
#[derive(Debug, Args)]
#[command(after_help = "\
A test file sits beside the workflows (triage.test.yaml next to triage.yaml):

  tests:
    - name: refund goes to billing
      given: { chat: { id: r1, title: Support } }
      event:
        type: message_created
        payload: { id: m1, content: \"I want a refund\", sender_type: User,
                   sender_id: u1, sender_name: Ann, chat_room_id: r1 }
      expect:
        matched: [triage/refunds-to-billing]
        actions:
          - reply: { text: \"I've asked alice/billing-agent to help you with this.\" }

Every test runs on fresh state against all the folder's workflows; nothing
is sent anywhere. Exit status: 0 when every test passes, 1 otherwise.
See docs/workflow-reference.md (\"Testing workflows\") for every key.")]
pub struct TestArgs {
    /// Workflows folder; its *.test.yaml files (recursively) are the tests.
    #[arg(default_value = "workflows")]
    dir: PathBuf,

    /// Run only tests whose "file: name" contains this text.
    #[arg(long, short = 'f')]
    filter: Option<String>,
}

/// Runs the tests; exit 1 when any fails or a file does not load.
pub async fn run(args: TestArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let Some(ruleset) = super::check::load(&args.dir).map(Arc::new) else {
        eprintln!("no test ran: the workflows must load first");
        return Ok(ExitCode::FAILURE);
    };
    let files = match test_files(&args.dir) {
        Ok(f) => f,
        Err(e) => {
            eprint!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let paint = Paint(std::io::stdout().is_terminal());
    let mut results: Vec<CaseResult> = Vec::new();
    // Test files that did not load, with their errors: reported in the
    // report (stdout), before its summary line, so they are read where the
    // summary is, however the two output streams are collected.
    let mut broken: Vec<(String, String)> = Vec::new();
    let mut filtered = 0;
    for path in &files {
        let label = label(&args.dir, path);
        let file = match load_test_file(path) {
            Ok(f) => f,
            Err(errors) => {
                println!("test {label}: did not load ... {}", paint.red("FAILED"));
                broken.push((label, errors.to_string()));
                continue;
            }
        };
        let mut file = file;
        if let Some(f) = &args.filter {
            let before = file.tests.len();
            file.tests
                .retain(|t| format!("{label}: {}", t.name).contains(f.as_str()));
            filtered += before - file.tests.len();
        }
        for result in run_file(&ruleset, path, &file).await {
            let status = match result.passed() {
                true => paint.green("ok"),
                false => paint.red("FAILED"),
            };
            println!("test {label}: {} ... {status}", result.name);
            results.push(result);
        }
    }
    let failed: Vec<&CaseResult> = results.iter().filter(|r| !r.passed()).collect();
    let broken_files = broken.len();
    if !failed.is_empty() || !broken.is_empty() {
        println!("\nfailures:");
        for (label, errors) in &broken {
            println!("\n---- {label}: did not load ----");
            println!("{}", errors.trim_end());
        }
        for r in &failed {
            println!(
                "\n---- {}: {} ({}:{}) ----",
                label(&args.dir, &r.file),
                r.name,
                r.file.display(),
                r.loc.line
            );
            for f in &r.failures {
                if f.event.0 > 0 {
                    println!("event {} of {} ({}):", f.event.0, f.event.1, f.event_type);
                }
                for p in &f.problems {
                    println!("{}", indent(p, "  "));
                }
                if !f.trace.is_empty() {
                    println!("  trace:\n{}", indent(f.trace.trim_end(), "  "));
                }
            }
        }
        println!("\nfailures:");
        for (label, _) in &broken {
            println!("    {label}: did not load");
        }
        for r in &failed {
            println!("    {}: {}", label(&args.dir, &r.file), r.name);
        }
    }
    if files.is_empty() {
        println!("no test files (*.test.yaml) under {}", args.dir.display());
    }
    let passed = results.len() - failed.len();
    let ok = failed.is_empty() && broken_files == 0;
    let mut summary = format!("{passed} passed, {} failed", failed.len());
    if broken_files > 0 {
        summary.push_str(&format!(
            ", {broken_files} test file{} did not load",
            plural(broken_files)
        ));
    }
    if filtered > 0 {
        summary.push_str(&format!(", {filtered} filtered out"));
    }
    println!(
        "\ntest result: {}. {summary}; finished in {:.2}s",
        if ok {
            paint.green("ok")
        } else {
            paint.red("FAILED")
        },
        started.elapsed().as_secs_f64()
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A test file's path under the folder, without `.test.yaml`.
fn label(dir: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(dir).unwrap_or(path).to_string_lossy();
    rel.trim_end_matches(".test.yaml")
        .trim_end_matches(".test.yml")
        .to_owned()
}

fn indent(text: &str, pad: &str) -> String {
    text.lines()
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Colour for `ok` / `FAILED`, only on a terminal.
struct Paint(bool);

impl Paint {
    fn green(&self, s: &str) -> String {
        self.wrap("32", s)
    }
    fn red(&self, s: &str) -> String {
        self.wrap("31", s)
    }
    fn wrap(&self, code: &str, s: &str) -> String {
        match self.0 {
            true => format!("\x1b[{code}m{s}\x1b[0m"),
            false => s.to_owned(),
        }
    }
}
