//! A real `redis-server` (Debian's package) for the tests: a child process on
//! a free loopback port with its data in a temporary directory, append-only
//! with an fsync per write so its data survives `stop` / `kill` and
//! `start_again` in the same directory. `tests/redis/setup.sh` installs the
//! server when it is not on PATH; a server still missing after that is a test
//! failure, never a skip.
// Each test file that includes this module uses only some of its helpers.
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use redis::aio::MultiplexedConnection;

use crate::support::venv::repo;

/// Bound for a server to answer PING after it is started.
const START: Duration = Duration::from_secs(10);
/// Bound for a server to exit after SIGTERM (or SIGKILL).
const STOP: Duration = Duration::from_secs(10);
/// Bound for one connection attempt or one command.
const ATTEMPT: Duration = Duration::from_secs(1);
/// Fresh ports `start` tries when the one it picked was taken meanwhile.
const PORT_TRIES: usize = 5;
/// The log the server writes (`--logfile`), in its directory.
const LOG: &str = "redis.log";
/// Where the child's own stdout and stderr go (errors before the log opens).
const STDERR: &str = "redis.stderr";

/// A running (or stopped) `redis-server` owned by one test; killed on drop.
pub struct RedisServer {
    /// The absolute path of `redis-server`.
    binary: PathBuf,
    /// `--dir`: the append-only files, the log; removed on drop.
    dir: tempfile::TempDir,
    port: u16,
    /// `None` once stopped or killed.
    child: Option<Child>,
    /// Arguments beyond the usual ones (a cluster node's).
    extra: Vec<String>,
}

/// How one start attempt ended.
enum Started {
    Up(Child),
    /// The port was taken between picking and binding it.
    PortBusy,
}

impl RedisServer {
    /// Starts a server on a free loopback port with a new temporary
    /// directory and waits until it answers PING; panics (with its log
    /// tail) when it does not within 10 s.
    pub async fn start() -> Self {
        Self::start_with(Vec::new()).await
    }

    /// Like [`RedisServer::start`], with more arguments for `redis-server`.
    pub async fn start_with(extra: Vec<String>) -> Self {
        let binary = redis_server_binary().to_owned();
        let dir = tempfile::Builder::new()
            .prefix("switchboard-redis-")
            .tempdir()
            .expect("cannot create a temporary directory for redis-server");
        for _ in 0..PORT_TRIES {
            let port = free_port();
            if let Started::Up(child) = launch(&binary, dir.path(), port, &extra).await {
                return Self {
                    binary,
                    dir,
                    port,
                    child: Some(child),
                    extra,
                };
            }
        }
        panic!(
            "redis-server found no free loopback port in {PORT_TRIES} tries; its log:\n{}",
            log_tail(dir.path())
        );
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The loopback port it listens on (the same across `start_again`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its directory (`--dir`): the append-only files and `redis.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Graceful stop: SIGTERM, then waits (at most 10 s) for the exit, which
    /// must be a success; panics otherwise, with the log tail.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            panic!("redis-server on port {} is not running", self.port);
        };
        let pid = child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("cannot run kill");
        assert!(sent.success(), "kill -TERM {pid} failed: {sent}");
        match wait_exit(&mut child, STOP).await {
            Some(status) => assert!(
                status.success(),
                "redis-server exit {status} after SIGTERM; its log:\n{}",
                log_tail(self.dir.path())
            ),
            None => {
                reap(&mut child);
                panic!(
                    "redis-server did not exit within {STOP:?} of SIGTERM (killed); its log:\n{}",
                    log_tail(self.dir.path())
                );
            }
        }
    }

    /// SIGKILL, then waits for the exit: a crash, nothing flushed at exit.
    pub async fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            panic!("redis-server on port {} is not running", self.port);
        };
        child.kill().expect("cannot SIGKILL redis-server");
        assert!(
            wait_exit(&mut child, STOP).await.is_some(),
            "redis-server did not exit within {STOP:?} of SIGKILL"
        );
    }

    /// Starts it again after `stop` or `kill`: same port, same directory (so
    /// it reloads its append-only file), and waits until it answers PING.
    /// Retries while the port is briefly busy, for at most 10 s.
    pub async fn start_again(&mut self) {
        assert!(
            self.child.is_none(),
            "redis-server on port {} is still running: stop() or kill() it first",
            self.port
        );
        let deadline = tokio::time::Instant::now() + START;
        loop {
            if let Started::Up(child) =
                launch(&self.binary, self.dir.path(), self.port, &self.extra).await
            {
                self.child = Some(child);
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "port {} stayed busy for {START:?}: redis-server cannot start again; its log:\n{}",
                self.port,
                log_tail(self.dir.path())
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new connection to database 0 (panics if it fails: a test helper).
    pub async fn connection(&self) -> MultiplexedConnection {
        connect(&self.url())
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.url()))
    }

    /// `KEYS pattern`, sorted.
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut self.connection().await)
            .await
            .unwrap_or_else(|e| panic!("KEYS {pattern} on {}: {e}", self.url()));
        keys.sort();
        keys
    }

    /// `GET key` as text; `None` when the key does not exist.
    pub async fn get(&self, key: &str) -> Option<String> {
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut self.connection().await)
            .await
            .unwrap_or_else(|e| panic!("GET {key} on {}: {e}", self.url()))
    }

    /// `SET key value`.
    pub async fn set(&self, key: &str, value: &str) {
        let () = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .query_async(&mut self.connection().await)
            .await
            .unwrap_or_else(|e| panic!("SET {key} on {}: {e}", self.url()));
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            reap(&mut child);
        }
    }
}

/// SIGKILL and wait: nothing is left running, not even a zombie.
fn reap(child: &mut Child) {
    // Errors mean it has already exited; `wait` then only collects it.
    let _ = child.kill();
    let _ = child.wait();
}

/// `redis-server` on PATH, after running `tests/redis/setup.sh` once per test
/// process when it is not there. Its output goes straight to the terminal,
/// past the harness's capture: whoever runs `cargo test` sees what it
/// installs (it says so before installing) and why it failed.
fn redis_server_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(found) = on_path("redis-server") {
            return found;
        }
        let status = Command::new("bash")
            .arg(repo().join("tests/redis/setup.sh"))
            .stdin(Stdio::null())
            .status()
            .expect("bash runs");
        assert!(
            status.success(),
            "tests/redis/setup.sh failed ({status}; its output is above): it installs Debian's \
             redis-server with apt-get (needs root)"
        );
        on_path("redis-server").unwrap_or_else(|| {
            panic!(
                "redis-server is not on PATH after tests/redis/setup.sh: install Debian's \
                 `redis-server` (apt-get install redis-server)"
            )
        })
    })
}

/// The first executable file named `name` in the directories of `$PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|file| {
            std::fs::metadata(file)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// A loopback port nobody listens on right now: bound to port 0, read, released.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("cannot bind a loopback port")
        .port()
}

/// Spawns the server and waits for PING. `PortBusy` when it exited because
/// the port was taken; panics, with the log of this attempt, on any other
/// exit or when it does not answer within `START`.
async fn launch(binary: &Path, dir: &Path, port: u16, extra: &[String]) -> Started {
    // The log is appended to across restarts: this attempt's part starts here.
    let log_from = std::fs::metadata(dir.join(LOG)).map_or(0, |m| m.len());
    let stderr_from = std::fs::metadata(dir.join(STDERR)).map_or(0, |m| m.len());
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(STDERR))
        .expect("cannot create redis-server's stderr file");
    let mut cmd = Command::new(binary);
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls prctl(2), which is async-signal-safe.
    unsafe {
        // Killed with the test process even when that dies without running
        // `Drop` (SIGKILL, a timeout): no orphaned servers on the machine.
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1"])
        .arg("--dir")
        .arg(dir)
        .args(["--save", ""])
        .args(["--appendonly", "yes"])
        .args(["--appendfsync", "always"])
        .args(["--daemonize", "no"])
        .args(["--protected-mode", "yes"])
        .arg("--logfile")
        .arg(dir.join(LOG))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("cannot share the stderr file"))
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    let url = format!("redis://127.0.0.1:{port}/0");
    let deadline = tokio::time::Instant::now() + START;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let said = format!(
                    "{}{}",
                    tail_from(&dir.join(STDERR), stderr_from),
                    tail_from(&dir.join(LOG), log_from)
                );
                if said.contains("Address already in use") {
                    return Started::PortBusy;
                }
                panic!("redis-server exited ({status}) before answering PING on port {port}; its output:\n{said}");
            }
            Ok(None) => {}
            Err(e) => panic!("cannot check on redis-server: {e}"),
        }
        let last = match ping(&url, child.id()).await {
            Ok(()) => return Started::Up(child),
            Err(e) => e,
        };
        if tokio::time::Instant::now() >= deadline {
            reap(&mut child);
            panic!(
                "redis-server did not answer PING on port {port} within {START:?} (last: {last}); \
                 its output:\n{}{}",
                tail_from(&dir.join(STDERR), stderr_from),
                tail_from(&dir.join(LOG), log_from)
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// One PING, bounded, then the answering server's process id, which must be
/// `pid`: with tests starting servers in parallel, the port may be another
/// test's server, and this one is then about to exit on "Address already in
/// use". `Err` says why it is not up (refused, still loading, someone else).
async fn ping(url: &str, pid: u32) -> Result<(), String> {
    let mut con = connect(url).await.map_err(|e| e.to_string())?;
    let answer: String = tokio::time::timeout(ATTEMPT, redis::cmd("PING").query_async(&mut con))
        .await
        .map_err(|_| format!("no answer to PING within {ATTEMPT:?}"))?
        .map_err(|e| e.to_string())?;
    if answer != "PONG" {
        return Err(format!("PING answered {answer:?}"));
    }
    let info: String = tokio::time::timeout(
        ATTEMPT,
        redis::cmd("INFO").arg("server").query_async(&mut con),
    )
    .await
    .map_err(|_| format!("no answer to INFO within {ATTEMPT:?}"))?
    .map_err(|e| e.to_string())?;
    let answering = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("process_id:"))
        .unwrap_or("unknown");
    if answering == pid.to_string() {
        Ok(())
    } else {
        Err(format!("answered by process {answering}, not {pid}"))
    }
}

/// A multiplexed connection to `url`, bounded by `ATTEMPT`.
async fn connect(url: &str) -> Result<MultiplexedConnection, String> {
    let client = redis::Client::open(url).map_err(|e| format!("bad url {url}: {e}"))?;
    tokio::time::timeout(ATTEMPT, client.get_multiplexed_async_connection())
        .await
        .map_err(|_| format!("no connection within {ATTEMPT:?}"))?
        .map_err(|e| e.to_string())
}

/// Polls for the exit for at most `limit`; `None` when it is still running.
async fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(None) => return None,
            Err(e) => panic!("cannot check on redis-server: {e}"),
        }
    }
}

/// The last lines of the server's stderr and log, all its runs.
fn log_tail(dir: &Path) -> String {
    format!(
        "{}{}",
        tail_from(&dir.join(STDERR), 0),
        tail_from(&dir.join(LOG), 0)
    )
}

/// The last 30 lines of `file` after byte `from`; empty when unreadable.
fn tail_from(file: &Path, from: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(file) {
        if f.seek(SeekFrom::Start(from)).is_ok() {
            let mut bytes = Vec::new();
            let _ = f.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(30);
    lines[start..].iter().map(|l| format!("{l}\n")).collect()
}

/// A Redis Cluster of `redis-server` nodes on loopback, each with its
/// slots (no replicas), made with `redis-cli --cluster create`.
pub struct RedisCluster {
    /// The nodes, each killed on drop.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `n` (at least 3) nodes, joins them and waits until the
    /// cluster is ok on every node; panics otherwise (bounded).
    pub async fn start(n: usize) -> RedisCluster {
        let mut nodes = Vec::new();
        for _ in 0..n {
            let bus = free_port();
            nodes.push(
                RedisServer::start_with(vec![
                    "--cluster-enabled".into(),
                    "yes".into(),
                    "--cluster-config-file".into(),
                    "nodes.conf".into(),
                    "--cluster-node-timeout".into(),
                    "2000".into(),
                    "--cluster-port".into(),
                    bus.to_string(),
                ])
                .await,
            );
        }
        let cli = redis_server_binary().with_file_name("redis-cli");
        let mut create = Command::new(&cli);
        create.args(["--cluster", "create"]);
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port()));
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", cli.display()));
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        for node in &nodes {
            loop {
                let mut conn = node.connection().await;
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the cluster is not ok on port {}: {info}",
                    node.port()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        RedisCluster { nodes }
    }

    /// The first node's URL (any node leads to the whole cluster).
    pub fn url(&self) -> String {
        self.nodes[0].url()
    }

    /// How many keys each node holds.
    pub async fn keys_per_node(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for node in &self.nodes {
            let mut conn = node.connection().await;
            let n: usize = redis::cmd("DBSIZE")
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            out.push(n);
        }
        out
    }
}
