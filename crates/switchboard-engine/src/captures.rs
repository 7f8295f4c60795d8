//! Regex captures of `matches` conditions, as the rule's templates and path
//! conditions see them.

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::value::{Enumerator, Object, Value as JValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Regex captures of `matches`, as `match.NAME` and `match[1]` in templates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Captures {
    /// Numbered groups (0 is the whole match).
    pub groups: Vec<Option<String>>,
    /// Named groups.
    pub named: BTreeMap<String, String>,
}

impl Captures {
    /// True when no regex matched yet.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// As JSON for path conditions: named groups and numbered ones (`match.1`).
    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        for (i, g) in self.groups.iter().enumerate() {
            m.insert(i.to_string(), g.clone().map_or(Value::Null, Value::String));
        }
        for (k, v) in &self.named {
            m.insert(k.clone(), Value::String(v.clone()));
        }
        Value::Object(m)
    }

    /// As a template value that answers both `match.name` and `match[1]`.
    pub fn to_template_value(&self) -> JValue {
        JValue::from_object(self.clone())
    }
}

impl Object for Captures {
    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        if let Some(i) = key.as_i64() {
            let i = usize::try_from(i).ok()?;
            return self.groups.get(i).map(|g| JValue::from(g.clone()));
        }
        self.named
            .get(key.as_str()?)
            .map(|s| JValue::from(s.clone()))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let keys: Vec<JValue> = self.named.keys().map(|k| JValue::from(k.clone())).collect();
        Enumerator::Values(keys)
    }
}
