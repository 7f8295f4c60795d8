//! The action journal in the store: per open message a hash (step → sent or
//! done with its result), and one sorted set of the open messages by when
//! they were first seen, for loading and for the retention cut. A settled
//! message's hash is deleted; a forgotten one expires with the retention.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};
use std::path::PathBuf;
use switchboard_engine::journal::{Durable, JournalError, JournalStore, Record, RETENTION_DAYS};
use switchboard_workflow::secrets::Redaction;

use super::writer::Op;
use super::{AgentSpace, Loaded, StoreError};

/// Messages read per pipeline at start-up.
const CHUNK: usize = 500;

/// The journal of one agent, kept in the store.
pub struct RedisJournal {
    space: AgentSpace,
    loaded: Loaded<Vec<Record>>,
    redaction: Redaction,
}

impl RedisJournal {
    /// Reads the agent's journal; `redaction` hides secrets in results written.
    pub async fn open(
        space: &AgentSpace,
        redaction: Redaction,
    ) -> Result<RedisJournal, StoreError> {
        let store = space.store();
        let mut conn = store.conn();
        let open: Vec<(String, i64)> = redis::cmd("ZRANGE")
            .arg(space.keys().key("journal"))
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await
            .map_err(|e| store.failed("reading the journal's messages", e))?;
        let mut records = Vec::new();
        let mut gone = Vec::new();
        for chunk in open.chunks(CHUNK) {
            let mut pipe = redis::pipe();
            for (message, _) in chunk {
                pipe.cmd("HGETALL").arg(message_key(space, message));
            }
            let steps: Vec<Vec<(String, String)>> = pipe
                .query_async(&mut conn)
                .await
                .map_err(|e| store.failed("reading the journal", e))?;
            for ((message, first), steps) in chunk.iter().zip(steps) {
                if steps.is_empty() {
                    gone.push(message.clone());
                }
                let at = Utc.timestamp_millis_opt(*first).single();
                for (step, text) in steps {
                    let key = message_key(space, message);
                    let value: Value =
                        serde_json::from_str(&text).map_err(|e| store.corrupt(&key, e))?;
                    records.push(match value.get("done") {
                        Some(result) => Record::Done {
                            message: message.clone(),
                            step,
                            result: result.clone(),
                            at,
                        },
                        None => Record::Sent {
                            message: message.clone(),
                            step,
                            at,
                        },
                    });
                }
            }
        }
        // Expired with the retention: their ids go from the index.
        space.forget("ZREM", space.keys().key("journal"), gone);
        Ok(RedisJournal {
            space: space.clone(),
            loaded: Loaded::new(records),
            redaction,
        })
    }

    /// Where the journal is, for errors: the store and its index key.
    fn place(&self) -> PathBuf {
        PathBuf::from(format!(
            "{} {}",
            self.space.store().shown(),
            self.space.keys().key("journal")
        ))
    }
}

/// The hash of one message's steps.
fn message_key(space: &AgentSpace, message: &str) -> String {
    space.keys().key(&format!("journal:m:{message}"))
}

/// Milliseconds since the epoch of `at` (now when absent).
fn epoch_ms(at: Option<DateTime<Utc>>) -> String {
    at.unwrap_or_else(Utc::now).timestamp_millis().to_string()
}

impl JournalStore for RedisJournal {
    fn recorded(&self) -> Result<Vec<Record>, JournalError> {
        Ok(self.loaded.take())
    }

    fn record(&self, record: Record) -> Durable {
        let space = &self.space;
        let index = space.keys().key("journal");
        let retention = (RETENTION_DAYS * 24 * 3600 * 1000).to_string();
        let step_ops = |message: &str, step: &str, value: Value, at| {
            let key = message_key(space, message);
            vec![
                Op::new("HSET", key.clone())
                    .arg(step)
                    .arg(value.to_string()),
                Op::new("PEXPIRE", key).arg(retention.clone()),
                Op::new("ZADD", index.clone())
                    .arg("NX")
                    .arg(epoch_ms(at))
                    .arg(message),
            ]
        };
        let ops = match record {
            Record::Sent { message, step, at } => {
                step_ops(&message, &step, json!({"sent": true}), at)
            }
            Record::Done {
                message,
                step,
                mut result,
                at,
            } => {
                self.redaction.current().redact_value(&mut result);
                step_ops(&message, &step, json!({ "done": result }), at)
            }
            Record::Settled { message } => vec![
                Op::new("DEL", message_key(space, &message)),
                Op::new("ZREM", index).arg(message),
            ],
        };
        let written = space.writer().write(ops);
        let path = self.place();
        Box::pin(async move {
            written.await.map_err(|e| JournalError {
                path,
                source: std::io::Error::other(e),
            })
        })
    }
}
