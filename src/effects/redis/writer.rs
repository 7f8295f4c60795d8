//! One agent's writes to the store, in the order they were made: a task
//! takes whatever has queued (state changes, journal records, conversation
//! changes, from every room at once) and writes it as one Lua script, which
//! first checks the agent's lease still holds this process's token. One
//! round trip per batch, and a process that lost its lease changes nothing.
//!
//! Every write sets, adds or removes a whole value, so a batch whose answer
//! was lost (a timeout, a dropped connection) is simply sent again. While
//! the store is unreachable the batch waits and is retried, until the
//! lease's local deadline: then it fails (the agent is being stopped).

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Script;
use tokio::sync::{mpsc, oneshot};

use super::{Fence, RedisStore, StoreError};

/// Most commands in one script (a script blocks the server while it runs).
const MAX_OPS: usize = 1000;
/// The first pause before a failed batch is sent again; it doubles up to a second.
const FIRST_RETRY: Duration = Duration::from_millis(50);

/// Checks the lease, then runs each command: ARGV after the token is a
/// sequence of (command, index of its key in KEYS, argument count, arguments…).
const FENCED_BATCH: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED the lease is not held by this writer')
end
local i = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i + 2])
  local args = {KEYS[tonumber(ARGV[i + 1])]}
  for j = 1, n do args[j + 1] = ARGV[i + 2 + j] end
  redis.call(ARGV[i], unpack(args))
  i = i + 3 + n
end
return 1
";

/// True for the refusal of a script that found the lease not held by this
/// process (its error code `FENCED`, here and in the webhook queue's push).
pub(crate) fn is_fenced(e: &redis::RedisError) -> bool {
    e.code() == Some("FENCED")
}

/// One command on one key of the agent (`HSET key field value`).
#[derive(Debug, Clone)]
pub(crate) struct Op {
    cmd: &'static str,
    key: String,
    args: Vec<Vec<u8>>,
}

impl Op {
    /// `cmd key` with no arguments yet.
    pub(crate) fn new(cmd: &'static str, key: String) -> Op {
        Op {
            cmd,
            key,
            args: Vec::new(),
        }
    }

    /// Adds an argument.
    pub(crate) fn arg(mut self, arg: impl Into<Vec<u8>>) -> Op {
        self.args.push(arg.into());
        self
    }
}

type Ack = oneshot::Sender<Result<(), StoreError>>;

/// Ops to write, and who waits for them (nobody for fire-and-forget ones).
struct Job {
    ops: Vec<Op>,
    ack: Option<Ack>,
}

/// The queue into an agent's writer task.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::UnboundedSender<Job>,
    fence: Arc<Fence>,
}

impl Writer {
    /// Starts the writer task of the agent `fence` guards.
    pub(crate) fn spawn(store: RedisStore, fence: Arc<Fence>) -> Writer {
        let (tx, rx) = mpsc::unbounded_channel();
        crate::task::spawn(run(store, fence.clone(), rx));
        Writer { tx, fence }
    }

    /// Queues `ops` (as one unit, after everything queued before); the
    /// returned future resolves once they are written. Queued even if the
    /// future is dropped.
    pub(crate) fn write(
        &self,
        ops: Vec<Op>,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static {
        let (ack, done) = oneshot::channel();
        let queued = self.tx.send(Job {
            ops,
            ack: Some(ack),
        });
        let agent = self.fence.keys().agent().to_owned();
        async move {
            if queued.is_err() {
                return Err(StoreError::LeaseLost { agent });
            }
            done.await.unwrap_or(Err(StoreError::LeaseLost { agent }))
        }
    }

    /// Queues `ops` with nobody waiting for them.
    pub(crate) fn queue(&self, ops: Vec<Op>) {
        if self.tx.send(Job { ops, ack: None }).is_err() {
            tracing::warn!(agent = %self.fence.keys().agent(), "a store write was dropped: the agent's writer has stopped");
        }
    }

    /// Waits until everything queued before is written.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.write(Vec::new()).await
    }
}

/// The writer task: batches what has queued and writes it.
async fn run(store: RedisStore, fence: Arc<Fence>, mut rx: mpsc::UnboundedReceiver<Job>) {
    let script = Script::new(FENCED_BATCH);
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        let mut count = jobs[0].ops.len();
        while count < MAX_OPS {
            match rx.try_recv() {
                Ok(job) => {
                    count += job.ops.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let ops: Vec<&Op> = jobs.iter().flat_map(|j| &j.ops).collect();
        let result = write(&store, &fence, &script, &ops).await;
        for job in jobs {
            if let Some(ack) = job.ack {
                let _ = ack.send(result.as_ref().map(|_| ()).map_err(|e| copy(e, &fence)));
            } else if let Err(e) = &result {
                tracing::warn!(agent = %fence.keys().agent(), error = %crate::error_chain::Chain(e), "a store write was lost");
            }
        }
    }
}

/// Writes `ops` with the fenced script, retrying while the store is out
/// and the lease is surely still ours.
async fn write(
    store: &RedisStore,
    fence: &Fence,
    script: &Script,
    ops: &[&Op],
) -> Result<(), StoreError> {
    let agent = || fence.keys().agent().to_owned();
    if fence.is_lost() {
        return Err(StoreError::LeaseLost { agent: agent() });
    }
    if ops.is_empty() {
        return Ok(());
    }
    let mut inv = script.prepare_invoke();
    inv.key(fence.keys().lease()).arg(fence.token());
    for (i, op) in ops.iter().enumerate() {
        inv.key(&op.key)
            .arg(op.cmd)
            .arg(i + 2)
            .arg(op.args.len())
            .arg(&op.args);
    }
    let mut pause = FIRST_RETRY;
    loop {
        let mut conn = store.conn();
        match inv.invoke_async::<i64>(&mut conn).await {
            Ok(_) => return Ok(()),
            Err(e) if is_fenced(&e) => {
                fence.mark_lost();
                return Err(StoreError::LeaseLost { agent: agent() });
            }
            Err(e) => {
                if fence.is_lost() || Instant::now() >= fence.deadline() {
                    return Err(StoreError::Outage {
                        url: store.shown().to_owned(),
                        agent: agent(),
                    });
                }
                tracing::warn!(agent = %agent(), error = %crate::error_chain::Chain(&e), retry_in = ?pause, "cannot write to the store; retrying while the lease lasts");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// The same failure, for a second waiter (errors are not `Clone`).
fn copy(e: &StoreError, fence: &Fence) -> StoreError {
    match e {
        StoreError::Outage { url, agent } => StoreError::Outage {
            url: url.clone(),
            agent: agent.clone(),
        },
        _ => StoreError::LeaseLost {
            agent: fence.keys().agent().to_owned(),
        },
    }
}
