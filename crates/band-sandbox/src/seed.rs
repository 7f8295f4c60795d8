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
    /// Bad YAML, wrong types, unknown keys, or dangling/duplicate handles:
    /// every problem found, rendered like a compiler's errors in `report`.
    #[error("{report}")]
    Invalid {
        /// File path or label.
        origin: String,
        /// 1-based line of the first problem (0 when unknown).
        line: u64,
        /// 1-based column of the first problem (0 when unknown).
        column: u64,
        /// What is wrong (the first problem).
        message: String,
        /// Every problem: message, `--> file:line:column`, the line and a caret.
        report: String,
    },
}

/// One problem in a seed.
struct Problem {
    at: Location,
    message: String,
    hint: Option<String>,
}

/// The problems found in one seed, with its text for the carets.
struct Problems<'a> {
    origin: &'a str,
    text: &'a str,
    list: Vec<Problem>,
}

impl<'a> Problems<'a> {
    fn new(origin: &'a str, text: &'a str) -> Self {
        Problems {
            origin,
            text,
            list: Vec::new(),
        }
    }

    fn push(&mut self, at: Location, message: impl Into<String>, hint: Option<String>) {
        self.list.push(Problem {
            at,
            message: message.into(),
            hint,
        });
    }

    /// `Ok` when nothing was found, else every problem in one error.
    fn finish(self) -> Result<(), SeedError> {
        let Some(first) = self.list.first() else {
            return Ok(());
        };
        let lines: Vec<&str> = self.text.lines().collect();
        let report: Vec<String> = self
            .list
            .iter()
            .map(|p| render(self.origin, &lines, p))
            .collect();
        Err(SeedError::Invalid {
            origin: self.origin.to_string(),
            line: first.at.line(),
            column: first.at.column(),
            message: first.message.clone(),
            report: report.join("\n"),
        })
    }
}

/// One problem as a compiler shows it (the same look as workflow errors):
/// the message, `--> file:line:column`, the line and a caret with the hint.
fn render(origin: &str, lines: &[&str], p: &Problem) -> String {
    let (line, col) = (p.at.line(), p.at.column());
    let mut out = format!("error: {}\n", p.message);
    if line == 0 {
        out.push_str(&format!("  --> {origin}\n"));
        return out;
    }
    out.push_str(&format!("  --> {origin}:{line}:{col}\n"));
    let Some(text) = lines.get(line as usize - 1) else {
        if let Some(h) = &p.hint {
            out.push_str(&format!("  = {h}\n"));
        }
        return out;
    };
    let num = line.to_string();
    let pad = " ".repeat(num.len());
    // Tabs would shift the caret; show them as single spaces.
    let text = text.replace('\t', " ");
    let caret = " ".repeat(col.saturating_sub(1) as usize);
    out.push_str(&format!("{pad} |\n{num} | {text}\n{pad} | {caret}^"));
    match &p.hint {
        Some(h) => out.push_str(&format!(" {h}\n")),
        None => out.push('\n'),
    }
    out
}

/// "did you mean `x`?" when one of `known` is close to `got`.
fn did_you_mean<'k>(got: &str, known: impl IntoIterator<Item = &'k str>) -> Option<String> {
    known
        .into_iter()
        .map(|k| (strsim::jaro_winkler(got, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!("did you mean `{k}`?"))
}

/// A hint for a YAML error whose usual cause is a line indented more or
/// less than its siblings (the parser's wording does not say so).
fn indentation_hint(message: &str) -> Option<String> {
    const INDENTATION: &[&str] = &[
        "mapping values are not allowed",
        "did not find expected key",
        "did not find expected '-'",
        "while parsing a block",
    ];
    INDENTATION
        .iter()
        .any(|m| message.contains(m))
        .then(|| "hint: check the indentation of this line against the one above".to_owned())
}

/// Keys of the seed file and of its entries (the fields of [`Seed`],
/// [`SeedUser`], [`SeedAgent`], [`SeedRoom`]; a unit test keeps them equal).
const SEED_KEYS: &[&str] = &[
    "users",
    "agents",
    "rooms",
    "contacts",
    "contact_request_expiry",
];
const USER_KEYS: &[&str] = &["handle", "name", "api_key", "id"];
const AGENT_KEYS: &[&str] = &["handle", "name", "description", "api_key", "owner", "id"];
const ROOM_KEYS: &[&str] = &["title", "owner", "participants", "id"];

/// Reads and validates a seed file.
pub fn load_seed(path: &Path) -> Result<Seed, SeedError> {
    let text = std::fs::read_to_string(path).map_err(|source| SeedError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_seed(&text, &path.display().to_string())
}

/// Parses and validates seed YAML; `origin` names it in errors. Every
/// unknown key is reported at once; when the keys are right, every
/// dangling or duplicate handle, key and id is.
pub fn parse_seed(text: &str, origin: &str) -> Result<Seed, SeedError> {
    let mut seed: Seed = if text.trim().is_empty() {
        Seed::default()
    } else {
        // Keys first, from a positioned tree: serde stops at the first unknown one.
        if let Ok(tree) = serde_saphyr::from_str::<Tree>(text) {
            let mut problems = Problems::new(origin, text);
            check_keys(&tree, &mut problems);
            problems.finish()?;
        }
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
            let mut problems = Problems::new(origin, text);
            problems.push(loc, first, indentation_hint(first));
            match problems.finish() {
                Err(e) => e,
                Ok(()) => SeedError::Invalid {
                    origin: origin.to_string(),
                    line: 0,
                    column: 0,
                    message: first.to_string(),
                    report: first.to_string(),
                },
            }
        })?
    };
    seed.origin = origin.to_string();
    let mut problems = Problems::new(origin, text);
    validate(&seed, &mut problems);
    problems.finish()?;
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

/// A YAML node with its position: enough of the seed's shape to check its
/// keys and the kind of every value before serde, which stops at the first.
struct Tree {
    at: Location,
    shape: Shape,
}

enum Shape {
    Null,
    Scalar,
    Seq(Vec<Tree>),
    /// Entries: key, the key's position, value.
    Map(Vec<(Option<String>, Location, Tree)>),
}

impl Tree {
    /// The node's kind in words.
    fn describe(&self) -> &'static str {
        match self.shape {
            Shape::Null => "nothing",
            Shape::Scalar => "a single value",
            Shape::Seq(_) => "a list",
            Shape::Map(_) => "a mapping",
        }
    }
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<Shape>::deserialize(d)?;
        Ok(Tree {
            at: s.referenced,
            shape: s.value,
        })
    }
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ShapeVisitor)
    }
}

struct ShapeVisitor;

impl<'de> serde::de::Visitor<'de> for ShapeVisitor {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }
    fn visit_str<E>(self, _: &str) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }
    fn visit_unit<E>(self) -> Result<Shape, E> {
        Ok(Shape::Null)
    }
    fn visit_none<E>(self) -> Result<Shape, E> {
        Ok(Shape::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Shape, D::Error> {
        d.deserialize_any(ShapeVisitor)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = seq.next_element::<Tree>()? {
            items.push(n);
        }
        Ok(Shape::Seq(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        let mut entries = Vec::new();
        while let Some(k) = map.next_key::<Spanned<Option<String>>>()? {
            let v = map.next_value::<Tree>()?;
            entries.push((k.value, k.referenced, v));
        }
        Ok(Shape::Map(entries))
    }
}

/// Reports every unknown key of the seed and its entries, and every value
/// of the wrong kind (a list where a handle goes, a mapping where a list goes).
fn check_keys(root: &Tree, problems: &mut Problems) {
    let Shape::Map(top) = &root.shape else {
        return;
    };
    check_entries(top, SEED_KEYS, "the seed", problems);
    for (key, _, value) in top {
        let (known, what) = match key.as_deref() {
            Some("users") => (USER_KEYS, "a user"),
            Some("agents") => (AGENT_KEYS, "an agent"),
            Some("rooms") => (ROOM_KEYS, "a room"),
            Some("contacts") => (&[][..], "a contact"),
            _ => continue,
        };
        let key = key.as_deref().unwrap_or_default();
        let items = match &value.shape {
            Shape::Seq(items) => items,
            Shape::Null => continue,
            _ => {
                let found = value.describe();
                problems.push(
                    value.at,
                    format!("`{key}` must be a list, found {found}"),
                    None,
                );
                continue;
            }
        };
        for item in items {
            match (&item.shape, key) {
                (Shape::Map(entries), "users" | "agents" | "rooms") => {
                    check_entries(entries, known, what, problems);
                }
                (Shape::Seq(pair), "contacts") => {
                    for handle in pair {
                        must_be_scalar(handle, "a contact's handle", problems);
                    }
                }
                (_, "contacts") => {
                    let found = item.describe();
                    let message =
                        format!("{what} must be a pair `[handle, handle]`, found {found}");
                    problems.push(item.at, message, None);
                }
                _ => {
                    let found = item.describe();
                    problems.push(
                        item.at,
                        format!("{what} must be a mapping, found {found}"),
                        None,
                    );
                }
            }
        }
    }
}

/// Unknown keys of one mapping (with did-you-mean), and values of the wrong kind.
fn check_entries(
    entries: &[(Option<String>, Location, Tree)],
    known: &[&str],
    what: &str,
    problems: &mut Problems,
) {
    for (k, at, value) in entries {
        let key = k.as_deref().unwrap_or("~");
        if !known.contains(&key) {
            let hint = did_you_mean(key, known.iter().copied());
            problems.push(*at, format!("unknown key `{key}` in {what}"), hint);
            continue;
        }
        match key {
            // The seed's lists, checked by the caller.
            "users" | "agents" | "rooms" | "contacts" => {}
            "participants" => match &value.shape {
                Shape::Seq(items) => {
                    for item in items {
                        must_be_scalar(item, "a participant", problems);
                    }
                }
                Shape::Null => {}
                _ => {
                    let found = value.describe();
                    let message =
                        format!("`participants` must be a list of handles, found {found}");
                    problems.push(value.at, message, None);
                }
            },
            _ => must_be_scalar(value, &format!("`{key}`"), problems),
        }
    }
}

/// A handle, key, name or id: one value, not a list or a mapping.
fn must_be_scalar(value: &Tree, what: &str, problems: &mut Problems) {
    if matches!(value.shape, Shape::Seq(_) | Shape::Map(_)) {
        let found = value.describe();
        problems.push(
            value.at,
            format!("{what} must be a single value, found {found}"),
            None,
        );
    }
}

/// Checks handles, keys and ids of a seed that may have been built in code;
/// every problem is reported (without carets: there is no text to show).
pub(crate) fn validate_seed(seed: &Seed, o: &str) -> Result<(), SeedError> {
    let mut problems = Problems::new(o, "");
    validate(seed, &mut problems);
    problems.finish()
}

/// Checks handles, keys, ids and the expiry; every problem points at its node.
fn validate(seed: &Seed, problems: &mut Problems) {
    if let Some(e) = &seed.contact_request_expiry {
        if let Err(why) = parse_duration(&e.value) {
            problems.push(e.referenced, format!("contact_request_expiry: {why}"), None);
        }
    }
    let mut users = HashSet::new();
    let mut agents = HashSet::new();
    let mut keys = HashSet::new();
    let mut ids = HashSet::new();
    let mut check_id = |id: &Option<Spanned<String>>, problems: &mut Problems| {
        if let Some(id) = id {
            if id.value.trim().is_empty() {
                problems.push(id.referenced, "id must not be empty", None);
            } else if !ids.insert(id.value.clone()) {
                problems.push(id.referenced, format!("duplicate id {:?}", id.value), None);
            }
        }
    };
    for u in &seed.users {
        let h = strip_at(&u.handle.value);
        if h.is_empty() || h.contains('/') || h.chars().any(char::is_whitespace) {
            problems.push(
                u.handle.referenced,
                format!("invalid user handle {h:?}"),
                None,
            );
        } else if !users.insert(h.to_string()) {
            problems.push(
                u.handle.referenced,
                format!("duplicate user handle {h:?}"),
                None,
            );
        }
        if u.api_key.value.is_empty() || !keys.insert(u.api_key.value.clone()) {
            problems.push(
                u.api_key.referenced,
                "api_key must be non-empty and unique",
                None,
            );
        }
        check_id(&u.id, problems);
    }
    for a in &seed.agents {
        let h = strip_at(&a.handle.value);
        let owner = match h.split_once('/') {
            Some((owner, slug))
                if !owner.is_empty()
                    && !slug.is_empty()
                    && !slug.contains('/')
                    && !h.chars().any(char::is_whitespace) =>
            {
                if !agents.insert(h.to_string()) {
                    problems.push(
                        a.handle.referenced,
                        format!("duplicate agent handle {h:?}"),
                        None,
                    );
                }
                Some(owner)
            }
            _ => {
                problems.push(
                    a.handle.referenced,
                    format!("agent handle {h:?} is not owner/slug"),
                    None,
                );
                None
            }
        };
        let user_hint = |got: &str| did_you_mean(got, users.iter().map(String::as_str));
        match (&a.owner, owner) {
            (Some(ow), _) if !users.contains(strip_at(&ow.value)) => {
                let hint = user_hint(strip_at(&ow.value));
                problems.push(ow.referenced, format!("unknown owner {:?}", ow.value), hint);
            }
            (None, Some(owner)) if !users.contains(owner) => {
                let hint = user_hint(owner);
                problems.push(
                    a.handle.referenced,
                    format!("unknown owner {owner:?}"),
                    hint,
                );
            }
            _ => {}
        }
        if a.description.value.trim().is_empty() {
            problems.push(
                a.description.referenced,
                "description must not be empty",
                None,
            );
        }
        if a.api_key.value.is_empty() || !keys.insert(a.api_key.value.clone()) {
            problems.push(
                a.api_key.referenced,
                "api_key must be non-empty and unique",
                None,
            );
        }
        check_id(&a.id, problems);
    }
    let known = |h: &Spanned<String>, problems: &mut Problems| {
        let s = strip_at(&h.value);
        if users.contains(s) || agents.contains(s) {
            return true;
        }
        let hint = did_you_mean(s, users.iter().chain(agents.iter()).map(String::as_str));
        problems.push(h.referenced, format!("unknown handle {:?}", h.value), hint);
        false
    };
    for r in &seed.rooms {
        known(&r.owner, problems);
        let mut seen = HashSet::from([strip_at(&r.owner.value).to_string()]);
        for p in &r.participants {
            if known(p, problems) && !seen.insert(strip_at(&p.value).to_string()) {
                problems.push(p.referenced, format!("{:?} is listed twice", p.value), None);
            }
        }
        check_id(&r.id, problems);
    }
    for pair in &seed.contacts {
        let [first, second] = pair.value.as_slice() else {
            problems.push(pair.referenced, "a contact is a pair of two handles", None);
            continue;
        };
        let both = known(first, problems) & known(second, problems);
        if both && strip_at(&first.value) == strip_at(&second.value) {
            problems.push(
                pair.referenced,
                "a contact pair needs two different handles",
                None,
            );
        }
    }
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
    fn the_key_lists_are_the_fields() {
        let every = "users:\n  - { handle: u, name: U, api_key: k1, id: i1 }\nagents:\n  - { handle: u/a, name: A, description: d, api_key: k2, owner: u, id: i2 }\nrooms:\n  - { title: t, owner: u, participants: [u/a], id: i3 }\ncontacts: []\ncontact_request_expiry: 30d\n";
        let yaml_keys = [SEED_KEYS, USER_KEYS, AGENT_KEYS, ROOM_KEYS].concat();
        for k in yaml_keys {
            assert!(
                every.contains(&format!("{k}:")),
                "{k} is not in the test seed"
            );
        }
        // Every listed key is a field (deny_unknown_fields would refuse it otherwise).
        parse_seed(every, "all").unwrap();
    }

    #[test]
    fn values_of_the_wrong_kind_are_all_reported() {
        let text =
            "users:\n  - handle: [a]\n    api_key: { k: 1 }\nrooms: 5\ncontacts:\n  - alice\n";
        let err = parse_seed(text, "s.yaml").unwrap_err().to_string();
        for expected in [
            "`handle` must be a single value, found a list\n  --> s.yaml:2:13\n",
            "`api_key` must be a single value, found a mapping\n  --> s.yaml:3:14\n",
            "`rooms` must be a list, found a single value\n  --> s.yaml:4:8\n",
            "a contact must be a pair `[handle, handle]`, found a single value\n  --> s.yaml:6:5\n",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
        }
    }

    #[test]
    fn wrong_indentation_gets_a_hint() {
        let text = "users:\n  - handle: alice\n      api_key: k\n";
        let err = parse_seed(text, "s.yaml").unwrap_err().to_string();
        assert!(
            err.contains("hint: check the indentation of this line against the one above"),
            "{err}"
        );
    }

    #[test]
    fn dangling_handle_reports_position() {
        let text = "users:\n  - handle: alice\n    api_key: k\nrooms:\n  - owner: alice\n    participants: [zed]\n";
        let err = parse_seed(text, "s.yaml").unwrap_err().to_string();
        assert!(err.contains("--> s.yaml:6:20\n"), "{err}");
        assert!(err.contains("zed"), "{err}");
    }
}
