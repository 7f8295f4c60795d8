//! One agent under a lease (`switchboard run --store`, no fleet file): the
//! process waits until it holds the agent's lease, runs the agent with its
//! state in the store, renews the lease, and stops the agent at once (every
//! task aborted) when the lease is lost; then waits to take it again. Two
//! hosts running the same agent this way give a standby that takes over.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

use super::balance::{self, HeldLeases};
use crate::agent::{Agent, AgentConfig, AgentError, StateDirChoice};
use crate::effects::redis::{AgentKeys, AgentSpace, Lease, RedisStore};
use crate::error_chain::Chain;
use crate::task::TaskGroup;

/// How long a stopping agent may take before its tasks are cut short.
const STOP_LIMIT: Duration = Duration::from_secs(45);

/// Runs the agent `agent_id` (configured by `config`) whenever this process
/// holds its lease in `store`, until `stop` resolves or the agent fails.
pub async fn run(
    store: RedisStore,
    agent_id: &str,
    config: AgentConfig,
    lease: Duration,
    stop: impl Future<Output = ()> + Send,
) -> Result<(), AgentError> {
    let keys = AgentKeys::new(agent_id);
    let tick = balance::tick(lease);
    tokio::pin!(stop);
    let (mut said_waiting, mut said_unreachable) = (false, false);
    loop {
        let held = loop {
            match Lease::try_acquire(&store, &keys, lease).await {
                Ok(Some(held)) => break held,
                Ok(None) if !said_waiting => {
                    tracing::info!(agent = %agent_id, "another process runs this agent; standing by to take it over");
                    said_waiting = true;
                }
                Ok(None) => {}
                Err(e) if !said_unreachable => {
                    tracing::warn!(error = %Chain(&e), "cannot reach the store; trying again every {tick:?}");
                    said_unreachable = true;
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = &mut stop => return Ok(()),
                _ = tokio::time::sleep(tick) => {}
            }
        };
        (said_waiting, said_unreachable) = (false, false);
        tracing::info!(agent = %agent_id, store = %store.shown(), "took the agent's lease; starting it here");
        // Renewed by a task of its own until dropped, as a fleet's leases are.
        let renewals = HeldLeases::new(store.clone(), tick);
        renewals.insert(agent_id.to_owned(), held.clone());
        let group = TaskGroup::new();
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut agent = {
            let (mut config, store, fence) = (config.clone(), store.clone(), held.fence().clone());
            group.spawn(async move {
                config.state_dir = StateDirChoice::Store(AgentSpace::new(&store, fence));
                let agent = Agent::prepare(&config, None).await?;
                let mut stopped = stop_rx;
                agent
                    .run_until(async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await
            })
        };
        let outcome = tokio::select! {
            ended = &mut agent => Some(ended),
            _ = held.fence().ended() => {
                tracing::error!(agent = %agent_id, "{}", super::LEASE_LOST);
                group.abort_all();
                None
            }
            _ = &mut stop => {
                let _ = stop_tx.send(true);
                let ended = tokio::select! {
                    ended = &mut agent => Some(ended),
                    _ = tokio::time::sleep(STOP_LIMIT) => None,
                    _ = held.fence().ended() => None,
                };
                group.abort_all();
                drop(renewals);
                held.give_back().await;
                return match ended {
                    Some(Ok(result)) => result,
                    _ => Ok(()),
                };
            }
        };
        drop(renewals);
        match outcome {
            // Lost: wait for the lease again.
            None => continue,
            Some(ended) => {
                group.abort_all();
                held.give_back().await;
                return match ended {
                    Ok(result) => result,
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(_) => Ok(()),
                };
            }
        }
    }
}
