//! The recorded-event format (one JSON object per line), the sink that
//! writes it (`run --record`), and replaying a recording through the engine
//! with nothing sent (`switchboard replay`). `switchboard explain` reads the
//! same shape, as JSON or YAML.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::suite::{default_agent, DEFAULT_NOW};
use crate::rules::{event_input, Handled, PreparedEvent, Sink};
use switchboard_engine::{Engine, RecordingExecutor, Report};
use switchboard_workflow::secrets::Redaction;

/// One event as recorded: enough to run it through the rules again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedEvent {
    /// Event type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The payload as received.
    #[serde(default)]
    pub payload: Map<String, Value>,
    /// The room as the rules saw it (id, title, participants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<Value>,
    /// Our identity at the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<Value>,
    /// When it was handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now: Option<DateTime<Utc>>,
    /// For `schedule` events: the rule that fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// State before the event (written by hand for `explain`; never recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Map<String, Value>>,
}

impl RecordedEvent {
    /// When it is handled: as recorded, else the dry runs' clock.
    fn now(&self) -> DateTime<Utc> {
        self.now
            .or_else(|| DEFAULT_NOW.parse().ok())
            .unwrap_or_else(Utc::now)
    }

    /// The engine input and scope, as the live event had them.
    pub fn prepare(&self) -> PreparedEvent {
        let agent = self
            .agent
            .clone()
            .unwrap_or_else(|| Value::Object(default_agent()));
        event_input(
            &self.kind,
            Value::Object(self.payload.clone()),
            agent,
            self.chat.clone(),
            self.now(),
        )
    }

    /// Runs the event through `engine` with nothing sent.
    pub async fn run(&self, engine: &Engine, executor: &RecordingExecutor) -> Report {
        let now = self.now();
        for (k, v) in self.state.iter().flatten() {
            engine.state().set(k, v.clone(), None, now);
        }
        let PreparedEvent { input, scope, .. } = self.prepare();
        match &self.rule {
            Some(rule) => engine.run_rule(rule, &input, &scope, executor).await,
            None => engine.handle(&input, &scope, executor).await,
        }
    }
}

/// Appends every handled event to a file, one JSON line each, flushed as
/// written so a crash loses nothing already handled.
pub struct Recorder {
    agent: Value,
    file: Mutex<File>,
    /// A secret in an event (someone pasted it) is recorded as `[secret:NAME]`.
    redaction: Redaction,
}

impl Recorder {
    /// Opens (creates or appends to) `path`; `agent` is written with each event.
    pub fn open(path: &Path, agent: Value, redaction: Redaction) -> std::io::Result<Arc<Recorder>> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Arc::new(Recorder {
            agent,
            file: Mutex::new(file),
            redaction,
        }))
    }
}

impl Sink for Recorder {
    fn handled(&self, h: &Handled) {
        let line = RecordedEvent {
            kind: h.event_type.clone(),
            payload: h.event.as_object().cloned().unwrap_or_default(),
            chat: h.chat.clone(),
            agent: Some(self.agent.clone()),
            now: Some(h.now),
            rule: h.rule.clone(),
            state: None,
        };
        let Ok(mut text) = self.redaction.current().to_json_string(&line) else {
            return;
        };
        text.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        // One write per line keeps lines whole when appending.
        if let Err(e) = file.write_all(text.as_bytes()) {
            tracing::warn!(error = %crate::error_chain::Chain(&e), "cannot write the event recording");
        }
    }
}

/// One line of a recording, read.
pub enum Line {
    /// An event.
    Event(Box<RecordedEvent>),
    /// A line that is not one, with the reason.
    Bad(String),
}

/// Reads a recording line by line (blank lines skipped), with 1-based line numbers.
pub fn read_lines(path: &Path) -> std::io::Result<impl Iterator<Item = (usize, Line)>> {
    let reader = BufReader::new(File::open(path)?);
    Ok(reader.split(b'\n').enumerate().filter_map(|(i, bytes)| {
        let line = match bytes {
            Ok(b) => match String::from_utf8(b) {
                Ok(s) => s,
                Err(_) => return Some((i + 1, Line::Bad("not valid UTF-8".into()))),
            },
            Err(e) => return Some((i + 1, Line::Bad(e.to_string()))),
        };
        if line.trim().is_empty() {
            return None;
        }
        Some((
            i + 1,
            match serde_json::from_str::<RecordedEvent>(&line) {
                Ok(ev) => Line::Event(Box::new(ev)),
                Err(e) => Line::Bad(e.to_string()),
            },
        ))
    }))
}
