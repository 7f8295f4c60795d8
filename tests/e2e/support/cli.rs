//! Running the `switchboard` binary as a child process in tests: a clean
//! environment, stderr collected line by line, bounded waits, SIGTERM, and a
//! kill whenever a test gives up on the child (`kill_on_drop`).
// Each test file that includes this module uses only some of its helpers.
#![allow(dead_code)]

use std::path::Path;
use std::process::{ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use band_sandbox::RunningSandbox;

/// The environment variables `switchboard run` reads; cleared so the
/// developer's own settings cannot leak into a test.
const BAND_VARS: [&str; 11] = [
    "BAND_API_KEY",
    "BAND_AGENT_ID",
    "BAND_REST_URL",
    "BAND_WS_URL",
    "BAND_METRICS_ADDR",
    "BAND_API_KEY_FILE",
    "BAND_JOURNAL",
    "SWITCHBOARD_STATE_DIR",
    "SWITCHBOARD_WEBHOOK_ADDR",
    "SWITCHBOARD_MAX_PENDING_PER_PERSON",
    "SWITCHBOARD_STORE",
];

/// Where agents run by tests keep their default state directories, so no
/// test writes into the developer's own `~/.local/state`: one folder for the
/// whole test binary (agents of different sandboxes have different ids).
fn state_home() -> &'static Path {
    static HOME: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    HOME.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("switchboard-e2e-state-")
            .tempdir()
            .expect("cannot create a temporary state home")
    })
    .path()
}

/// The binary, run from the crate root with `BAND_*` and `RUST_LOG` removed
/// and `XDG_STATE_HOME` in a temporary folder.
pub fn switchboard() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .env("XDG_STATE_HOME", state_home())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for var in BAND_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// `switchboard run` as the triage bot on `workflows`, against `sb`.
pub fn run_command(sb: &RunningSandbox, workflows: &Path) -> Command {
    let mut cmd = switchboard();
    cmd.arg("run")
        .arg("--workflows")
        .arg(workflows)
        .args(["--api-key", "triage-key", "--rest-url"])
        .arg(sb.rest_url())
        .arg("--ws-url")
        .arg(sb.ws_url());
    cmd
}

/// Runs `cmd` to the end within `limit` (killed and panics if it overruns).
pub async fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("cannot start switchboard");
    // On timeout the future (and with it the child) is dropped: kill_on_drop.
    tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("switchboard did not finish within {limit:?}"))
        .expect("cannot read switchboard's output")
}

/// Removes terminal colour sequences (`ESC [ ... letter`) from a log line.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A long-running child (e.g. `switchboard run`) whose stderr is collected.
pub struct Running {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
    reader: JoinHandle<()>,
}

impl Running {
    /// Spawns `cmd` with stdout discarded and stderr read line by line.
    pub fn spawn(cmd: &mut Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start switchboard");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stderr.take().expect("stderr is piped");
        let sink = stderr.clone();
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        Running {
            child,
            stderr,
            reader,
        }
    }

    /// Like [`Running::spawn`], but stdout is collected as well, line by line
    /// (for commands that print where they listen); the lines are returned.
    pub fn spawn_with_stdout(cmd: &mut Command) -> (Running, Arc<Mutex<Vec<String>>>) {
        cmd.stdout(Stdio::piped());
        let mut child = cmd
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start switchboard");
        let collect = |pipe: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>| {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let sink = lines.clone();
            let pipe = pipe.expect("the stream is piped");
            let task = tokio::spawn(async move {
                let mut reader = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    sink.lock().unwrap().push(line);
                }
            });
            (lines, task)
        };
        let (stdout, _) = collect(child.stdout.take().map(|p| Box::new(p) as _));
        let (stderr, reader) = collect(child.stderr.take().map(|p| Box::new(p) as _));
        let running = Running {
            child,
            stderr,
            reader,
        };
        (running, stdout)
    }

    /// The stderr lines read so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until a stderr line satisfies `pred` and returns it; panics
    /// (showing stderr) on timeout or if the process exits first.
    pub async fn wait_for_stderr(
        &mut self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(line) = self.stderr_lines().into_iter().find(|l| pred(l)) {
                return line;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader catch the last lines before reporting them.
                tokio::time::sleep(Duration::from_millis(100)).await;
                panic!(
                    "switchboard exited ({status}) before {what}; stderr:\n{}",
                    self.stderr_lines().join("\n")
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {what} within {limit:?}; stderr:\n{}",
                self.stderr_lines().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The exit status if the process has ended (by itself or by a signal),
    /// `None` while it runs.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .try_wait()
            .expect("cannot poll switchboard's status")
    }

    /// Sends SIGTERM through `kill(1)` (no signal crate is a dependency).
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends a signal by name (`TERM`, `HUP`) through `kill(1)`.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().expect("the child is still running");
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid.to_string()])
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill -{name} {pid} failed: {status}");
    }

    /// Waits for the exit within `limit` and returns the status and all of
    /// stderr; panics (the child is then killed on drop) if it overruns.
    pub async fn wait_exit(mut self, limit: Duration) -> (ExitStatus, Vec<String>) {
        let status = match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => status.expect("cannot wait for switchboard"),
            Err(_) => panic!(
                "switchboard did not exit within {limit:?}; stderr:\n{}",
                self.stderr_lines().join("\n")
            ),
        };
        // The pipe closes with the process, so the reader ends promptly.
        tokio::time::timeout(Duration::from_secs(5), &mut self.reader)
            .await
            .expect("stderr was not closed after exit")
            .expect("stderr reader failed");
        let lines = self.stderr_lines();
        (status, lines)
    }

    /// SIGTERM, then the exit within `limit`, which must be clean (panics
    /// with `what` and stderr otherwise); returns all of stderr.
    pub async fn stop_cleanly(self, what: &str, limit: Duration) -> Vec<String> {
        self.terminate();
        let (status, stderr) = self.wait_exit(limit).await;
        assert!(
            status.success(),
            "{what} exit {status} after SIGTERM; stderr:\n{}",
            stderr.join("\n")
        );
        stderr
    }
}
