//! Throttle windows in the store: per (rule, key) a sorted set of its runs
//! by time, trimmed to the window and expiring with it (Redis's own
//! expiry), plus a set naming them for loading.

use chrono::Utc;
use switchboard_engine::throttle::{ThrottleError, ThrottlePersistence, ThrottleRun};
use switchboard_workflow::secrets::Redaction;

use super::lease::millis;
use super::writer::Op;
use super::{AgentSpace, Loaded, StoreError};

/// The throttle windows of one agent, kept in the store.
pub struct RedisThrottles {
    space: AgentSpace,
    loaded: Loaded<Vec<ThrottleRun>>,
    redaction: Redaction,
}

/// The name of a window in the index: its rule and key, unambiguous.
fn window_name(rule: &str, key: &str) -> String {
    serde_json::json!([rule, key]).to_string()
}

impl RedisThrottles {
    /// Reads the agent's throttle windows; `redaction` hides secrets in keys.
    pub async fn open(
        space: &AgentSpace,
        redaction: Redaction,
    ) -> Result<RedisThrottles, StoreError> {
        let store = space.store();
        let mut conn = store.conn();
        let index = space.keys().key("throttles");
        let names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(&index)
            .query_async(&mut conn)
            .await
            .map_err(|e| store.failed("reading the throttle windows' names", e))?;
        let mut pipe = redis::pipe();
        for name in &names {
            pipe.cmd("ZRANGE")
                .arg(window_key(space, name))
                .arg(0)
                .arg(-1);
        }
        let windows: Vec<Vec<String>> = match names.is_empty() {
            true => Vec::new(),
            false => pipe
                .query_async(&mut conn)
                .await
                .map_err(|e| store.failed("reading the throttle windows", e))?,
        };
        let now = Utc::now();
        let mut runs = Vec::new();
        let mut gone = Vec::new();
        for (name, members) in names.iter().zip(windows) {
            if members.is_empty() {
                gone.push(name.clone());
            }
            for member in members {
                let run: ThrottleRun = serde_json::from_str(&member)
                    .map_err(|e| store.corrupt(&window_key(space, name), e))?;
                if run.live(now) {
                    runs.push(run);
                }
            }
        }
        // Expired by the store: their names go from the index.
        space.forget("SREM", index, gone);
        Ok(RedisThrottles {
            space: space.clone(),
            loaded: Loaded::new(runs),
            redaction,
        })
    }
}

/// The sorted set of one window.
fn window_key(space: &AgentSpace, name: &str) -> String {
    space.keys().key(&format!("throttles:w:{name}"))
}

impl ThrottlePersistence for RedisThrottles {
    fn load(&self) -> Result<Vec<ThrottleRun>, ThrottleError> {
        Ok(self.loaded.take())
    }

    fn record(&self, mut run: ThrottleRun) {
        run.key = self.redaction.current().redact(&run.key).into_owned();
        let name = window_name(&run.rule, &run.key);
        let key = window_key(&self.space, &name);
        let Ok(member) = serde_json::to_string(&run) else {
            return;
        };
        let at = run.at.timestamp_millis();
        let window = millis(run.window);
        let oldest = at.saturating_sub(i64::try_from(window).unwrap_or(i64::MAX));
        self.space.writer().queue(vec![
            Op::new("ZADD", key.clone()).arg(at.to_string()).arg(member),
            Op::new("ZREMRANGEBYSCORE", key.clone())
                .arg("-inf")
                .arg(format!("({oldest}")),
            Op::new("PEXPIRE", key).arg(window.to_string()),
            Op::new("SADD", self.space.keys().key("throttles")).arg(name),
        ]);
    }
}
