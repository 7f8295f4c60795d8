//! The sandbox seed: the YAML file that says which users, agents, rooms and
//! contacts exist at start (and after `/_sandbox/reset`). Parsing and
//! validation only; `world` turns a valid seed into state.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

/// A seed file, as written (handles without `@`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// People.
    #[serde(default)]
    pub users: Vec<SeedUser>,
    /// Agents.
    #[serde(default)]
    pub agents: Vec<SeedAgent>,
    /// Chat rooms.
    #[serde(default)]
    pub rooms: Vec<SeedRoom>,
    /// Pairs of handles that are contacts already.
    #[serde(default)]
    pub contacts: Vec<Spanned<Vec<Spanned<String>>>>,
    /// How long a contact request may stay pending before it expires, e.g.
    /// `30d`, `2h`, `400ms`; [`DEFAULT_CONTACT_REQUEST_EXPIRY`] when absent.
    #[serde(default)]
    pub contact_request_expiry: Option<Spanned<String>>,
    /// Where the seed came from (file path or a label), for error messages.
    #[serde(skip)]
    pub origin: String,
}

/// How long a contact request stays pending when the seed does not say:
/// 30 days (the platform does not publish its own figure).
pub const DEFAULT_CONTACT_REQUEST_EXPIRY: Duration = Duration::from_secs(30 * 24 * 3600);

impl Seed {
    /// How long a contact request may stay pending before it expires.
    pub fn contact_request_expiry(&self) -> Duration {
        self.contact_request_expiry
            .as_ref()
            .and_then(|s| parse_duration(&s.value).ok())
            .unwrap_or(DEFAULT_CONTACT_REQUEST_EXPIRY)
    }
}

/// A duration above zero: an integer and one unit of `ms`, `s`, `m`, `h`, `d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 30d, 2h, 15m, 90s, 500ms)"))?;
    let ms_per = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "{text:?} needs a unit: ms, s, m, h or d (e.g. 30d)"
            ))
        }
    };
    match n.checked_mul(ms_per) {
        Some(0) => Err("must be above zero".to_string()),
        Some(ms) => Ok(Duration::from_millis(ms)),
        None => Err(format!("{text:?} is too long")),
    }
}

/// A user in the seed.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedUser {
    /// Unique handle, e.g. `alice`.
    pub handle: Spanned<String>,
    /// Display name; defaults to the handle.
    #[serde(default)]
    pub name: Option<String>,
    /// The user's API key.
    pub api_key: Spanned<String>,
    /// Fixed id; generated when absent.
    #[serde(default)]
    pub id: Option<Spanned<String>>,
}

/// An agent in the seed.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedAgent {
    /// `owner/slug`.
    pub handle: Spanned<String>,
    /// Display name.
    pub name: String,
    /// Description (the SDK refuses agents without one).
    pub description: Spanned<String>,
    /// The agent's API key.
    pub api_key: Spanned<String>,
    /// Owner's user handle; defaults to the part of the handle before `/`.
    #[serde(default)]
    pub owner: Option<Spanned<String>>,
    /// Fixed id; generated when absent.
    #[serde(default)]
    pub id: Option<Spanned<String>>,
}

/// A room in the seed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedRoom {
    /// Title.
    #[serde(default)]
    pub title: Option<String>,
    /// Owner's handle (user or agent).
    pub owner: Spanned<String>,
    /// Member handles (users or agents).
    #[serde(default)]
    pub participants: Vec<Spanned<String>>,
    /// Fixed id; generated when absent.
    #[serde(default)]
    pub id: Option<Spanned<String>>,
}

// Keys must never reach logs: hand-written Debug impls leave them out.
impl fmt::Debug for SeedUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeedUser")
            .field("handle", &self.handle.value)
            .field("name", &self.name)
            .field("api_key", &"<redacted>")
            .finish()
    }
}

impl fmt::Debug for SeedAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeedAgent")
            .field("handle", &self.handle.value)
            .field("name", &self.name)
            .field("api_key", &"<redacted>")
            .finish()
    }
}

/// Why a seed could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The file could not be read.
    #[error("cannot read seed file {path}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Bad YAML, a wrong type, an unknown key, or a dangling/duplicate handle.
    #[error("{origin}:{line}:{column}: {message}")]
    Invalid {
        /// File path or label.
        origin: String,
        /// 1-based line (0 when unknown).
        line: u64,
        /// 1-based column (0 when unknown).
        column: u64,
        /// What is wrong.
        message: String,
    },
}

impl SeedError {
    fn at(origin: &str, loc: Location, message: impl Into<String>) -> SeedError {
        SeedError::Invalid {
            origin: origin.to_string(),
            line: loc.line(),
            column: loc.column(),
            message: message.into(),
        }
    }
}

/// Reads and validates a seed file.
pub fn load_seed(path: &Path) -> Result<Seed, SeedError> {
    let text = std::fs::read_to_string(path).map_err(|source| SeedError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_seed(&text, &path.display().to_string())
}

/// Parses and validates seed YAML; `origin` names it in errors.
pub fn parse_seed(text: &str, origin: &str) -> Result<Seed, SeedError> {
    let mut seed: Seed = if text.trim().is_empty() {
        Seed::default()
    } else {
        serde_saphyr::from_str(text).map_err(|e| {
            let loc = e.location().unwrap_or(Location::UNKNOWN);
            // The rendered error repeats the position and a snippet; keep its first line.
            let rendered = e.to_string();
            let first = rendered.lines().next().unwrap_or("invalid seed").trim();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            // Drop the library's own "line N column M: " since we print file:line:column.
            let first = match first.split_once(": ") {
                Some((pos, rest)) if pos.starts_with("line ") => rest,
                _ => first,
            };
            SeedError::at(origin, loc, first.to_string())
        })?
    };
    seed.origin = origin.to_string();
    validate_seed(&seed, origin)?;
    Ok(seed)
}

/// The built-in seed: `examples/sandbox-seed.yaml`, embedded at compile time.
pub fn default_seed() -> Seed {
    // Embedded at build time and covered by a unit test, so it cannot fail at run time.
    parse_seed(DEFAULT_SEED, "examples/sandbox-seed.yaml").expect("embedded seed is valid")
}

const DEFAULT_SEED: &str = include_str!("../../../examples/sandbox-seed.yaml");

fn strip_at(h: &str) -> &str {
    h.strip_prefix('@').unwrap_or(h)
}

/// Checks handles, keys and ids; errors point at the offending node.
pub(crate) fn validate_seed(seed: &Seed, o: &str) -> Result<(), SeedError> {
    if let Some(e) = &seed.contact_request_expiry {
        parse_duration(&e.value).map_err(|why| {
            SeedError::at(o, e.referenced, format!("contact_request_expiry: {why}"))
        })?;
    }
    let mut users = HashSet::new();
    let mut agents = HashSet::new();
    let mut keys = HashSet::new();
    let mut ids = HashSet::new();
    let mut check_id = |id: &Option<Spanned<String>>| -> Result<(), SeedError> {
        if let Some(id) = id {
            if id.value.trim().is_empty() {
                return Err(SeedError::at(o, id.referenced, "id must not be empty"));
            }
            if !ids.insert(id.value.clone()) {
                return Err(SeedError::at(
                    o,
                    id.referenced,
                    format!("duplicate id {:?}", id.value),
                ));
            }
        }
        Ok(())
    };
    for u in &seed.users {
        let h = strip_at(&u.handle.value);
        if h.is_empty() || h.contains('/') || h.chars().any(char::is_whitespace) {
            return Err(SeedError::at(
                o,
                u.handle.referenced,
                format!("invalid user handle {h:?}"),
            ));
        }
        if !users.insert(h.to_string()) {
            return Err(SeedError::at(
                o,
                u.handle.referenced,
                format!("duplicate user handle {h:?}"),
            ));
        }
        if u.api_key.value.is_empty() || !keys.insert(u.api_key.value.clone()) {
            return Err(SeedError::at(
                o,
                u.api_key.referenced,
                "api_key must be non-empty and unique",
            ));
        }
        check_id(&u.id)?;
    }
    for a in &seed.agents {
        let h = strip_at(&a.handle.value);
        let Some((owner, slug)) = h.split_once('/') else {
            return Err(SeedError::at(
                o,
                a.handle.referenced,
                format!("agent handle {h:?} is not owner/slug"),
            ));
        };
        if owner.is_empty()
            || slug.is_empty()
            || slug.contains('/')
            || h.chars().any(char::is_whitespace)
        {
            return Err(SeedError::at(
                o,
                a.handle.referenced,
                format!("agent handle {h:?} is not owner/slug"),
            ));
        }
        if !agents.insert(h.to_string()) {
            return Err(SeedError::at(
                o,
                a.handle.referenced,
                format!("duplicate agent handle {h:?}"),
            ));
        }
        match &a.owner {
            Some(ow) if !users.contains(strip_at(&ow.value)) => {
                return Err(SeedError::at(
                    o,
                    ow.referenced,
                    format!("unknown owner {:?}", ow.value),
                ));
            }
            None if !users.contains(owner) => {
                return Err(SeedError::at(
                    o,
                    a.handle.referenced,
                    format!("unknown owner {owner:?}"),
                ));
            }
            _ => {}
        }
        if a.description.value.trim().is_empty() {
            return Err(SeedError::at(
                o,
                a.description.referenced,
                "description must not be empty",
            ));
        }
        if a.api_key.value.is_empty() || !keys.insert(a.api_key.value.clone()) {
            return Err(SeedError::at(
                o,
                a.api_key.referenced,
                "api_key must be non-empty and unique",
            ));
        }
        check_id(&a.id)?;
    }
    let known = |h: &Spanned<String>| -> Result<(), SeedError> {
        let s = strip_at(&h.value);
        if users.contains(s) || agents.contains(s) {
            Ok(())
        } else {
            Err(SeedError::at(
                o,
                h.referenced,
                format!("unknown handle {:?}", h.value),
            ))
        }
    };
    for r in &seed.rooms {
        known(&r.owner)?;
        let mut seen = HashSet::from([strip_at(&r.owner.value).to_string()]);
        for p in &r.participants {
            known(p)?;
            if !seen.insert(strip_at(&p.value).to_string()) {
                return Err(SeedError::at(
                    o,
                    p.referenced,
                    format!("{:?} is listed twice", p.value),
                ));
            }
        }
        check_id(&r.id)?;
    }
    for pair in &seed.contacts {
        if pair.value.len() != 2 {
            return Err(SeedError::at(
                o,
                pair.referenced,
                "a contact is a pair of two handles",
            ));
        }
        known(&pair.value[0])?;
        known(&pair.value[1])?;
        if strip_at(&pair.value[0].value) == strip_at(&pair.value[1].value) {
            return Err(SeedError::at(
                o,
                pair.referenced,
                "a contact pair needs two different handles",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_seed_is_valid() {
        let s = default_seed();
        assert!(s.users.iter().any(|u| u.handle.value == "alice"));
        assert!(s
            .agents
            .iter()
            .any(|a| a.handle.value == "alice/triage-bot"));
    }

    #[test]
    fn dangling_handle_reports_position() {
        let text = "users:\n  - handle: alice\n    api_key: k\nrooms:\n  - owner: alice\n    participants: [zed]\n";
        let err = parse_seed(text, "s.yaml").unwrap_err().to_string();
        assert!(err.starts_with("s.yaml:6:20:"), "{err}");
        assert!(err.contains("zed"), "{err}");
    }
}
