//! Secrets: values a workflow may use (templates read `secrets.NAME`) but the
//! agent must never write. A file declares where each comes from
//! ([`SecretSource`]: an environment variable or a file); the agent reads
//! them when it loads the workflows, and one [`Redactor`] built from the
//! values replaces each occurrence with `[secret:NAME]` wherever the agent
//! writes (logs, traces, recordings, the journal, state, telemetry).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use aho_corasick::{AhoCorasick, MatchKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::LoadError;
use super::yaml::Loc;

/// Largest secret file read (bytes): a secret is a key or a token, and a
/// path pointing at something else (a log, a device) must not be slurped.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Where a secret's value comes from: `{ env: NAME }` or `{ file: PATH }`
/// (a relative path is relative to the workflow file that names it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum SecretSource {
    /// An environment variable, by name.
    Env(String),
    /// A file; its trailing newlines are not part of the value.
    File(PathBuf),
}

/// Why a secret's value cannot be read. Never holds the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The variable is not set.
    #[error("the environment variable {0} is not set")]
    NotSet(String),
    /// The variable is not valid Unicode.
    #[error("the environment variable {0} is not valid UTF-8")]
    NotUnicode(String),
    /// The file cannot be opened or read.
    #[error("cannot read the file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The path is a folder, a FIFO, a device...
    #[error("{0} is not a regular file")]
    NotAFile(PathBuf),
    /// The file is over [`MAX_SECRET_FILE_BYTES`].
    #[error("the file {0} is larger than {MAX_SECRET_FILE_BYTES} bytes")]
    TooLarge(PathBuf),
    /// The file is not text.
    #[error("the file {0} is not valid UTF-8")]
    NotUtf8(PathBuf),
    /// Nothing to use.
    #[error("the value ({0}) is empty")]
    Empty(String),
}

impl SecretSource {
    /// The same source with a relative file path made relative to `dir`.
    pub fn relative_to(self, dir: &Path) -> SecretSource {
        match self {
            SecretSource::File(p) if p.is_relative() => SecretSource::File(dir.join(p)),
            other => other,
        }
    }

    /// Reads the value (a file size-capped, trailing newlines trimmed);
    /// an empty value is an error.
    pub fn read(&self) -> Result<String, SecretError> {
        let value = match self {
            SecretSource::Env(name) => match std::env::var(name) {
                Ok(v) => v,
                Err(std::env::VarError::NotPresent) => {
                    return Err(SecretError::NotSet(name.clone()))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(SecretError::NotUnicode(name.clone()))
                }
            },
            SecretSource::File(path) => read_file(path)?,
        };
        if value.is_empty() {
            return Err(SecretError::Empty(self.to_string()));
        }
        Ok(value)
    }
}

impl std::fmt::Display for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::Env(name) => write!(f, "environment variable {name}"),
            SecretSource::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

fn read_file(path: &Path) -> Result<String, SecretError> {
    let cannot = |source| SecretError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(cannot)?;
    // Checked on what was opened: a FIFO would block, a device never end.
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(SecretError::NotAFile(path.to_owned()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(SecretError::TooLarge(path.to_owned()));
    }
    let text = String::from_utf8(bytes).map_err(|_| SecretError::NotUtf8(path.to_owned()))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// One `secrets:` entry of a workflow file.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretDecl {
    /// Its name (`secrets.NAME` in templates).
    pub name: String,
    /// Where its value comes from (file paths already made absolute or
    /// relative to the working directory, not to the workflow).
    pub source: SecretSource,
    /// The workflow file that declares it.
    pub file: PathBuf,
    /// Where in that file.
    pub loc: Loc,
    /// The declaring line, for error messages.
    pub source_line: Option<String>,
}

impl SecretDecl {
    /// A load error at the declaration.
    pub fn error(&self, message: String) -> LoadError {
        LoadError {
            file: self.file.clone(),
            loc: self.loc,
            message,
            hint: None,
            source_line: self.source_line.clone(),
        }
    }
}

/// Secret values by name. Its `Debug` shows the names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretValues(BTreeMap<String, String>);

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl SecretValues {
    /// No secrets.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a value.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    /// A value by name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Names and values, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// True without any.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What templates see as `secrets`: an object of name → value.
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        )
    }
}

/// How a secret is shown where its value would be written.
pub fn shown(name: &str) -> String {
    format!("[secret:{name}]")
}

/// Replaces secret values with `[secret:NAME]`: in text as written (and in
/// its JSON- and Debug-escaped forms, as logs and JSON files spell it), and
/// in every string of a JSON value.
pub struct Redactor {
    values: SecretValues,
    /// Values replaced by a reload (a rotated key): no template reads them,
    /// but an event that started before the reload may still log one.
    retired: Vec<(String, String)>,
    /// Every form to hide, longest first, with the index of its owner in `names`.
    patterns: Vec<(String, usize)>,
    /// The patterns compiled; `None` without any (or, should building fail,
    /// `patterns` are searched one by one: slower, never less hidden).
    matcher: Option<AhoCorasick>,
    names: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({:?})", self.names)
    }
}

impl Default for Redactor {
    fn default() -> Self {
        Redactor::new(SecretValues::new())
    }
}

impl Redactor {
    /// A redactor for these values (empty values are ignored).
    pub fn new(values: SecretValues) -> Self {
        Redactor::with_retired(values, Vec::new())
    }

    /// A redactor for `values` that also hides `retired` (name, value) pairs.
    pub fn with_retired(values: SecretValues, retired: Vec<(String, String)>) -> Self {
        let mut patterns: Vec<(String, usize)> = Vec::new();
        let mut names = Vec::new();
        let all: Vec<(String, String)> = values
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .chain(retired.iter().cloned())
            .collect();
        for (i, (name, value)) in all.iter().enumerate() {
            names.push(name.clone());
            if value.is_empty() {
                continue;
            }
            let json = serde_json::to_string(value).unwrap_or_default();
            let debug = format!("{value:?}");
            for form in [
                value.as_str(),
                json.get(1..json.len().saturating_sub(1)).unwrap_or(value),
                debug.get(1..debug.len().saturating_sub(1)).unwrap_or(value),
            ] {
                if !form.is_empty() && !patterns.iter().any(|(p, _)| p == form) {
                    patterns.push((form.to_owned(), i));
                }
            }
        }
        // Longest first, so one secret inside another is not half shown.
        patterns.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        let matcher = match patterns.is_empty() {
            true => None,
            false => AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(patterns.iter().map(|(p, _)| p))
                .map_err(|e| {
                    tracing::warn!(error = %e, "cannot compile the secrets' patterns; searching them one by one")
                })
                .ok(),
        };
        Redactor {
            values,
            retired,
            patterns,
            matcher,
            names,
        }
    }

    /// Every (name, value) it hides: the values, then the retired ones.
    fn hidden(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values
            .iter()
            .chain(self.retired.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// The first secret in `text`: (start, end, owner), leftmost, longest.
    fn first(&self, text: &str, from: usize) -> Option<(usize, usize, usize)> {
        let rest = text.get(from..)?;
        if let Some(ac) = &self.matcher {
            let m = ac.find(rest)?;
            let owner = self.patterns[m.pattern().as_usize()].1;
            return Some((from + m.start(), from + m.end(), owner));
        }
        self.patterns
            .iter()
            .filter_map(|(p, owner)| rest.find(p.as_str()).map(|at| (at, p.len(), *owner)))
            .min_by_key(|&(at, len, _)| (at, std::cmp::Reverse(len)))
            .map(|(at, len, owner)| (from + at, from + at + len, owner))
    }

    /// The values it hides.
    pub fn values(&self) -> &SecretValues {
        &self.values
    }

    /// True when there is nothing to hide.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The name of the first secret found in `text`.
    pub fn find(&self, text: &str) -> Option<&str> {
        let (_, _, owner) = self.first(text, 0)?;
        Some(self.names[owner].as_str())
    }

    /// The name of the first secret found in a string (or key) of `value`.
    pub fn find_in(&self, value: &Value) -> Option<&str> {
        if self.is_empty() {
            return None;
        }
        match value {
            Value::String(s) => self.find(s),
            Value::Array(items) => items.iter().find_map(|v| self.find_in(v)),
            Value::Object(map) => map
                .iter()
                .find_map(|(k, v)| self.find(k).or_else(|| self.find_in(v))),
            _ => None,
        }
    }

    /// `text` with every secret shown as `[secret:NAME]`.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut out = String::new();
        let mut last = 0;
        while let Some((start, end, owner)) = self.first(text, last) {
            out.push_str(&text[last..start]);
            out.push_str(&shown(&self.names[owner]));
            last = end;
        }
        if last == 0 {
            return Cow::Borrowed(text);
        }
        out.push_str(&text[last..]);
        Cow::Owned(out)
    }

    /// Redacts every string and key of `value` in place.
    pub fn redact_value(&self, value: &mut Value) {
        if self.is_empty() {
            return;
        }
        match value {
            Value::String(s) => {
                if let Cow::Owned(r) = self.redact(s) {
                    *s = r;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_value(v)),
            Value::Object(map) => {
                let hit = map.keys().any(|k| self.find(k).is_some());
                if hit {
                    let old = std::mem::take(map);
                    for (k, v) in old {
                        map.insert(self.redact(&k).into_owned(), v);
                    }
                }
                map.values_mut().for_each(|v| self.redact_value(v));
            }
            _ => {}
        }
    }

    /// Serialises `value` as JSON with every secret redacted (structurally,
    /// so a value that looks like JSON syntax cannot break the document).
    pub fn to_json_string<T: serde::Serialize + ?Sized>(
        &self,
        value: &T,
    ) -> serde_json::Result<String> {
        if self.is_empty() {
            return serde_json::to_string(value);
        }
        let mut v = serde_json::to_value(value)?;
        self.redact_value(&mut v);
        serde_json::to_string(&v)
    }
}

/// The redactor in use, shared by everything that writes and swapped when
/// the workflows (and with them the secrets) are reloaded.
#[derive(Clone, Default)]
pub struct Redaction(Arc<RwLock<Arc<Redactor>>>);

impl std::fmt::Debug for Redaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redaction({:?})", self.current())
    }
}

impl Redaction {
    /// A handle with no secrets yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The redactor now.
    pub fn current(&self) -> Arc<Redactor> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the secrets (a reload). The values replaced stay hidden:
    /// an event that started before may still write one.
    pub fn set(&self, values: SecretValues) {
        let mut current = self.0.write().unwrap_or_else(|p| p.into_inner());
        let mut retired: Vec<(String, String)> = Vec::new();
        for (name, value) in current.hidden() {
            let kept =
                values.iter().any(|(_, v)| v == value) || retired.iter().any(|(_, v)| v == value);
            if !kept {
                retired.push((name.to_owned(), value.to_owned()));
            }
        }
        *current = Arc::new(Redactor::with_retired(values, retired));
    }

    /// Also hides `value` as `[secret:NAME]` from now on, without giving it
    /// to templates (a webhook's secret, the `llm` key): kept across reloads.
    pub fn also_hide(&self, name: &str, value: &str) {
        if value.is_empty() {
            return;
        }
        let mut current = self.0.write().unwrap_or_else(|p| p.into_inner());
        let mut retired = current.retired.clone();
        retired.push((name.to_owned(), value.to_owned()));
        *current = Arc::new(Redactor::with_retired(current.values.clone(), retired));
    }

    /// Shorthand for `current().redact(text)`, owned.
    pub fn redact(&self, text: &str) -> String {
        self.current().redact(text).into_owned()
    }
}

/// The names a template reads under `secrets`: `secrets.NAME` and
/// `secrets['NAME']`; an error for `secrets` alone or with a computed name
/// (which no load-time check, and no redaction by name, could follow).
pub fn referenced(source: &str) -> Result<Vec<String>, String> {
    use minijinja::machinery::{tokenize, Token};
    let tokens: Vec<Token> = tokenize(source, false, Default::default())
        .map_while(Result::ok)
        .map(|(t, _)| t)
        .collect();
    let mut names = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        if !matches!(token, Token::Ident("secrets")) {
            continue;
        }
        // `event.secrets` is someone else's attribute.
        if i > 0 && matches!(tokens[i - 1], Token::Dot) {
            continue;
        }
        let name = match (tokens.get(i + 1), tokens.get(i + 2), tokens.get(i + 3)) {
            (Some(Token::Dot), Some(Token::Ident(n)), _) => Some(n.to_string()),
            (Some(Token::BracketOpen), Some(Token::Str(n)), Some(Token::BracketClose)) => {
                Some(n.to_string())
            }
            (Some(Token::BracketOpen), Some(Token::String(n)), Some(Token::BracketClose)) => {
                Some(n.to_string())
            }
            _ => None,
        };
        match name {
            Some(n) => names.push(n),
            None => {
                return Err(
                    "`secrets` must be followed by a name (`secrets.NAME`): the whole map or a computed name is not allowed"
                        .into(),
                )
            }
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(pairs: &[(&str, &str)]) -> Redactor {
        let mut v = SecretValues::new();
        for (k, val) in pairs {
            v.insert(*k, *val);
        }
        Redactor::new(v)
    }

    #[test]
    fn redacts_raw_escaped_and_nested_values() {
        let r = redactor(&[("k", "ab\"cd"), ("long", "ab\"cdef")]);
        assert_eq!(r.redact("x ab\"cdef y"), "x [secret:long] y");
        assert_eq!(r.redact(r#"{"h":"ab\"cd"}"#), r#"{"h":"[secret:k]"}"#);
        let mut v = serde_json::json!({"a": ["ab\"cd!"], "ab\"cd": 1});
        r.redact_value(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a": ["[secret:k]!"], "[secret:k]": 1})
        );
        assert_eq!(format!("{:?}", r.values()), r#"{"k", "long"}"#);
    }

    #[test]
    fn without_the_compiled_matcher_the_patterns_hide_the_same() {
        let mut r = redactor(&[("k", "ab\"cd"), ("long", "ab\"cdef")]);
        let text = r#"x ab"cdef y {"h":"ab\"cd"} ab"cd"#;
        let compiled = r.redact(text).into_owned();
        r.matcher = None;
        assert_eq!(r.redact(text), compiled);
        assert_eq!(
            compiled,
            r#"x [secret:long] y {"h":"[secret:k]"} [secret:k]"#
        );
    }

    #[test]
    fn a_rotated_value_stays_hidden_but_is_no_longer_given_to_templates() {
        let handle = Redaction::new();
        let mut first = SecretValues::new();
        first.insert("k", "old-value-1");
        handle.set(first);
        let mut second = SecretValues::new();
        second.insert("k", "new-value-2");
        handle.set(second);
        assert_eq!(
            handle.redact("old-value-1 new-value-2"),
            "[secret:k] [secret:k]"
        );
        assert_eq!(handle.current().values().get("k"), Some("new-value-2"));
        assert_eq!(handle.current().values().iter().count(), 1);
        // A value hidden but never given to templates, kept across a reload.
        handle.also_hide("llm_key", "llm-key-3");
        handle.set(SecretValues::new());
        assert_eq!(handle.redact("llm-key-3"), "[secret:llm_key]");
        assert!(handle.current().values().is_empty());
    }

    #[test]
    fn finds_references() {
        assert_eq!(
            referenced("{{ secrets.a }} {{ secrets['b'] }} {{ event.secrets }}").unwrap(),
            ["a", "b"]
        );
        assert!(referenced("{{ secrets | tojson }}").is_err());
    }
}
