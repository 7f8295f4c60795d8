//! Many agents in one process (`run --fleet`, `check --fleet`): the fleet
//! file, each agent assembled like `run` assembles one and supervised on its
//! own (one agent's failure never stops another), one metrics server
//! labelling every series with `agent`, and the fleet file watched so an
//! edit restarts only the agents whose entries changed.

pub mod balance;
pub mod file;
pub mod leased;
pub mod supervise;

use std::path::Path;

/// Logged when an agent is stopped at once because its lease is gone.
pub(crate) const LEASE_LOST: &str = "the agent's lease is lost (taken over by another process, or the store unreachable for the lease's time): stopped at once";

pub use file::{AgentEntry, FleetFile, FleetFileError, KeySource, StoreUrl};

/// What `check --fleet` found: the file's problems, or each agent's
/// workflows' problems (prefixed by the agent's name).
#[derive(Debug)]
pub enum CheckOutcome {
    /// The file itself is wrong (nothing else was checked).
    File(FleetFileError),
    /// The file is right; per agent, its rule count or its errors.
    Agents(Vec<(String, Result<usize, switchboard_workflow::LoadErrors>)>),
}

/// Checks a fleet file and, when it is right, every agent's workflows folder.
pub fn check(path: &Path) -> CheckOutcome {
    let fleet = match file::load(path) {
        Ok(fleet) => fleet,
        Err(e) => return CheckOutcome::File(e),
    };
    let agents = fleet
        .agents
        .iter()
        .map(|a| {
            let loaded = switchboard_workflow::load_dir(&a.workflows).map(|rs| rs.len());
            (a.name.clone(), loaded)
        })
        .collect();
    CheckOutcome::Agents(agents)
}
