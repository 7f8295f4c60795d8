//! The rules' state in the store: one string key per state key, holding its
//! value and expiry as JSON and expiring by Redis's own clock (`PX`), plus a
//! set naming them so an agent loads its state in two round trips.

use chrono::Utc;
use switchboard_engine::state::{Change, Entries, StateError, StatePersistence, Stored};
use switchboard_workflow::secrets::Redaction;

use super::writer::Op;
use super::{AgentSpace, Loaded, StoreError};

/// Keys read per `MGET`.
const CHUNK: usize = 1000;

/// The state of one agent, kept in the store.
pub struct RedisState {
    space: AgentSpace,
    loaded: Loaded<Entries>,
    redaction: Redaction,
}

impl RedisState {
    /// Reads the agent's state; `redaction` hides secrets in what is written.
    pub async fn open(space: &AgentSpace, redaction: Redaction) -> Result<RedisState, StoreError> {
        let keys = space.keys();
        let store = space.store();
        let mut conn = store.conn();
        let index = keys.key("state:keys");
        let names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(&index)
            .query_async(&mut conn)
            .await
            .map_err(|e| store.failed("reading the state's keys", e))?;
        let mut entries = Entries::new();
        let mut gone = Vec::new();
        for chunk in names.chunks(CHUNK) {
            let values: Vec<Option<String>> = redis::cmd("MGET")
                .arg(
                    chunk
                        .iter()
                        .map(|n| value_key(space, n))
                        .collect::<Vec<_>>(),
                )
                .query_async(&mut conn)
                .await
                .map_err(|e| store.failed("reading the state", e))?;
            for (name, value) in chunk.iter().zip(values) {
                match value {
                    None => gone.push(name.clone()),
                    Some(text) => {
                        let stored: Stored = serde_json::from_str(&text)
                            .map_err(|e| store.corrupt(&value_key(space, name), e))?;
                        entries.insert(name.clone(), stored);
                    }
                }
            }
        }
        // Expired by the store: their names go from the index.
        space.forget("SREM", index, gone);
        Ok(RedisState {
            space: space.clone(),
            loaded: Loaded::new(entries),
            redaction,
        })
    }
}

/// The key holding state key `name`.
fn value_key(space: &AgentSpace, name: &str) -> String {
    space.keys().key(&format!("state:v:{name}"))
}

impl StatePersistence for RedisState {
    fn load(&self) -> Result<Entries, StateError> {
        Ok(self.loaded.take())
    }

    fn apply(&self, change: Change) {
        let redactor = self.redaction.current();
        let index = self.space.keys().key("state:keys");
        let ops = match change {
            Change::Set { key, mut stored } => {
                let key = redactor.redact(&key).into_owned();
                redactor.redact_value(&mut stored.value);
                let ttl = stored
                    .expires
                    .map(|at| (at - Utc::now()).num_milliseconds());
                match (ttl, serde_json::to_string(&stored)) {
                    (Some(ms), _) if ms <= 0 => vec![
                        Op::new("DEL", value_key(&self.space, &key)),
                        Op::new("SREM", index).arg(key),
                    ],
                    (_, Err(e)) => {
                        tracing::warn!(key = %key, error = %e, "cannot save a state value");
                        return;
                    }
                    (ttl, Ok(json)) => {
                        let mut set = Op::new("SET", value_key(&self.space, &key)).arg(json);
                        if let Some(ms) = ttl {
                            set = set.arg("PX").arg(ms.to_string());
                        }
                        vec![set, Op::new("SADD", index).arg(key)]
                    }
                }
            }
            Change::Unset { key } => {
                let key = redactor.redact(&key).into_owned();
                vec![
                    Op::new("DEL", value_key(&self.space, &key)),
                    Op::new("SREM", index).arg(key),
                ]
            }
        };
        self.space.writer().queue(ops);
    }
}
