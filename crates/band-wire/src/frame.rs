//! Phoenix Channels v2 frames: `[join_ref, ref, topic, event, payload]` as JSON text.

use serde_json::Value;

/// One Phoenix v2 frame, either direction.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The `join_ref` of the channel join this frame belongs to; `None` for null.
    pub join_ref: Option<String>,
    /// The message ref used to match replies; `None` for server pushes.
    pub msg_ref: Option<String>,
    /// Channel topic, e.g. `chat_room:<id>` or `phoenix`.
    pub topic: String,
    /// Event name, e.g. `phx_join`, `phx_reply`, `message_created`.
    pub event: String,
    /// Event payload; always a JSON object on the wire.
    pub payload: Value,
}

/// Why a text frame could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FrameError {
    /// The text is not JSON at all.
    #[error("frame is not valid JSON: {0}")]
    Json(String),
    /// The JSON is not a 5-element array of the right types.
    #[error("frame is not a Phoenix v2 array: {0}")]
    Shape(&'static str),
}

impl Frame {
    /// A frame with the given parts.
    pub fn new(
        join_ref: Option<String>,
        msg_ref: Option<String>,
        topic: impl Into<String>,
        event: impl Into<String>,
        payload: Value,
    ) -> Self {
        Frame {
            join_ref,
            msg_ref,
            topic: topic.into(),
            event: event.into(),
            payload,
        }
    }

    /// Decodes a v2 text frame. Refs may be strings or numbers (kept as strings).
    pub fn decode(text: &str) -> Result<Frame, FrameError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| FrameError::Json(e.to_string()))?;
        let Value::Array(mut parts) = value else {
            return Err(FrameError::Shape("not an array"));
        };
        if parts.len() < 5 {
            return Err(FrameError::Shape("fewer than 5 elements"));
        }
        // Phoenix ignores elements past the fifth; so do we.
        parts.truncate(5);
        let payload = parts.pop().unwrap_or(Value::Null);
        let event = match parts.pop() {
            Some(Value::String(s)) => s,
            _ => return Err(FrameError::Shape("event is not a string")),
        };
        let topic = match parts.pop() {
            Some(Value::String(s)) => s,
            _ => return Err(FrameError::Shape("topic is not a string")),
        };
        let msg_ref = ref_value(parts.pop())
            .ok_or(FrameError::Shape("ref is not a string, number or null"))?;
        let join_ref = ref_value(parts.pop()).ok_or(FrameError::Shape(
            "join_ref is not a string, number or null",
        ))?;
        if !payload.is_object() {
            return Err(FrameError::Shape("payload is not an object"));
        }
        Ok(Frame {
            join_ref,
            msg_ref,
            topic,
            event,
            payload,
        })
    }

    /// Encodes the frame as v2 JSON text.
    pub fn encode(&self) -> String {
        let opt = |v: &Option<String>| v.clone().map(Value::String).unwrap_or(Value::Null);
        Value::Array(vec![
            opt(&self.join_ref),
            opt(&self.msg_ref),
            Value::String(self.topic.clone()),
            Value::String(self.event.clone()),
            self.payload.clone(),
        ])
        .to_string()
    }

    /// For a `phx_reply`: its status (`ok` / `error`), if present.
    pub fn reply_status(&self) -> Option<&str> {
        self.payload.get("status").and_then(Value::as_str)
    }

    /// For a `phx_reply`: its `response` object (or null).
    pub fn reply_response(&self) -> &Value {
        self.payload.get("response").unwrap_or(&Value::Null)
    }
}

/// A ref element: `Some(None)` for null, `Some(Some(s))` for a string or number, `None` when invalid.
fn ref_value(v: Option<Value>) -> Option<Option<String>> {
    match v {
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s)),
        Some(Value::Number(n)) => Some(Some(n.to_string())),
        _ => None,
    }
}

/// Reserved Phoenix event names.
pub mod control {
    /// Client asks to join a topic.
    pub const JOIN: &str = "phx_join";
    /// Client leaves a topic.
    pub const LEAVE: &str = "phx_leave";
    /// Reply to a client push.
    pub const REPLY: &str = "phx_reply";
    /// Server says the channel crashed; rejoin.
    pub const ERROR: &str = "phx_error";
    /// Server closed the channel; do not rejoin.
    pub const CLOSE: &str = "phx_close";
    /// Heartbeat event on the `phoenix` topic.
    pub const HEARTBEAT: &str = "heartbeat";
    /// Topic heartbeats travel on.
    pub const PHOENIX_TOPIC: &str = "phoenix";
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip() {
        let f = Frame::new(
            Some("1".into()),
            Some("2".into()),
            "chat_room:x",
            "phx_join",
            json!({}),
        );
        assert_eq!(Frame::decode(&f.encode()).unwrap(), f);
    }

    #[test]
    fn numeric_refs_become_strings() {
        let f = Frame::decode(r#"[3, 4, "t", "e", {}]"#).unwrap();
        assert_eq!(f.join_ref.as_deref(), Some("3"));
        assert_eq!(f.msg_ref.as_deref(), Some("4"));
    }

    #[test]
    fn rejects_bad_shapes() {
        assert!(matches!(Frame::decode("nope"), Err(FrameError::Json(_))));
        assert!(Frame::decode(r#"{"topic":"x"}"#).is_err());
        assert!(Frame::decode(r#"[null,null,"t","e"]"#).is_err());
        assert!(Frame::decode(r#"[null,null,"t","e",[]]"#).is_err());
        assert!(Frame::decode(r#"[null,null,1,"e",{}]"#).is_err());
        assert!(Frame::decode(r#"[{},null,"t","e",{}]"#).is_err());
    }
}
