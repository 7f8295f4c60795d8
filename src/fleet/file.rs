//! The fleet file (`fleet.yaml`): many agents for one process. Parsed into
//! positioned nodes (the workflow loader's), so every problem — an unknown
//! key, a duplicate name or agent id, a missing key file — is reported at
//! once, each with file:line:column, the line and a caret.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use switchboard_workflow::error::did_you_mean;
use switchboard_workflow::yaml::{self, Kind, Loc, Node};
use switchboard_workflow::{LoadError, LoadErrors};

use crate::agent::{AllowedHost, LlmConfig};
use crate::effects::llm::LlmConfigError;

/// Keys of the file's top level.
const TOP_KEYS: &[&str] = &["rest_url", "ws_url", "store", "agents"];
/// Keys of one agent's entry.
const AGENT_KEYS: &[&str] = &[
    "name",
    "agent_id",
    "api_key_file",
    "api_key_env",
    "workflows",
    "allow_http_hosts",
    "allow_env",
    "max_attempts",
    "retry_delay",
    "ephemeral",
    "explain",
    "watch",
    "webhook_addr",
    "webhook_queue",
    "max_pending_per_person",
    "llm_url",
    "llm_model",
    "llm_key_file",
    "llm_key_env",
];

/// A checked fleet file.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetFile {
    /// The file.
    pub path: PathBuf,
    /// REST base URL for every agent, when given.
    pub rest_url: Option<String>,
    /// WebSocket URL for every agent, when given.
    pub ws_url: Option<String>,
    /// The shared store, when given.
    pub store: Option<StoreUrl>,
    /// Where `store:`'s value is, for errors about the store.
    pub store_loc: Option<Loc>,
    /// The agents, in file order.
    pub agents: Vec<AgentEntry>,
}

/// One agent of the fleet, with its paths made absolute and its key read.
#[derive(Clone, PartialEq)]
pub struct AgentEntry {
    /// Unique in the file; in logs and metric labels.
    pub name: String,
    /// The agent's id on the platform (its key must belong to it).
    pub agent_id: String,
    /// Where the key came from (for messages; never the key itself).
    pub key_source: KeySource,
    /// The API key, as read.
    pub api_key: String,
    /// The workflows folder, relative paths resolved against the fleet file's folder.
    pub workflows: PathBuf,
    /// Hosts the `http` action may reach (as written, checked).
    pub allow_http_hosts: Vec<String>,
    /// Variables templates may read as `env.NAME`.
    pub allow_env: Vec<String>,
    /// Attempts a failing message gets, when not the default.
    pub max_attempts: Option<u64>,
    /// Pause before a failed room is drained again, when not the default.
    pub retry_delay: Option<std::time::Duration>,
    /// Journal and state in memory instead of the agent's state directory.
    pub ephemeral: bool,
    /// Log every event's trace.
    pub explain: bool,
    /// Reload the workflows when the folder changes (default true).
    pub watch: bool,
    /// Serve the agent's webhooks on this address (its own: no two agents share one).
    pub webhook_addr: Option<SocketAddr>,
    /// The most webhook deliveries waiting, when not the default.
    pub webhook_queue: Option<usize>,
    /// Most pending conversations per room and person, when not the default.
    pub max_pending_per_person: Option<usize>,
    /// The model `llm` actions ask, with its key when one was given.
    pub llm: Option<LlmConfig>,
    /// Where the model's key came from (for messages; never the key itself).
    pub llm_key_source: Option<KeySource>,
}

impl std::fmt::Debug for AgentEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentEntry")
            .field("name", &self.name)
            .field("agent_id", &self.agent_id)
            .field("key_source", &self.key_source)
            .field("api_key", &"<redacted>")
            .field("workflows", &self.workflows)
            .field("webhook_addr", &self.webhook_addr)
            .field("llm", &self.llm)
            .finish_non_exhaustive()
    }
}

impl AgentEntry {
    /// The `http` allowlist, parsed (checked when the file was read).
    pub fn allowed_hosts(&self) -> Vec<AllowedHost> {
        self.allow_http_hosts
            .iter()
            .filter_map(|h| h.parse().ok())
            .collect()
    }
}

/// True when others than the owner may read the file at `path` (a key
/// file should be `chmod 600`); false where that cannot be told.
pub fn readable_by_others(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// Where an agent's key is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `api_key_file:` (absolute).
    File(PathBuf),
    /// `api_key_env:`.
    Env(String),
}

/// A store URL; shown everywhere with its password hidden.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreUrl {
    url: url::Url,
}

impl StoreUrl {
    /// Parses `redis://` or `rediss://` URLs; the error never repeats a password.
    pub fn parse(text: &str) -> Result<StoreUrl, String> {
        let url = url::Url::parse(text).map_err(|e| {
            format!("`store` is not a URL ({e}); give redis://HOST:PORT/DB or rediss://...")
        })?;
        match url.scheme() {
            "redis" | "rediss" => {}
            other => {
                return Err(format!(
                    "`store` has the scheme `{other}`; only redis:// and rediss:// are known"
                ))
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("`store` has no host; give redis://HOST:PORT/DB".into());
        }
        Ok(StoreUrl { url })
    }

    /// The URL itself, password included (for connecting only).
    pub fn secret_url(&self) -> &str {
        self.url.as_str()
    }

    /// The URL with any password replaced by `***`, for messages and logs.
    pub fn redacted(&self) -> String {
        let mut shown = self.url.clone();
        if shown.password().is_some() {
            // Cannot fail on a URL with a host, which `parse` requires.
            let _ = shown.set_password(Some("***"));
        }
        shown.to_string()
    }
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreUrl({})", self.redacted())
    }
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `line` with the password of any URL in it shown as `***` (an error's
/// quoted line must not show the store's password).
fn hide_passwords(line: &str) -> String {
    static USERINFO: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let re = USERINFO.get_or_init(|| regex::Regex::new(r"(://[^:/@\s]*:)[^@\s]*@").ok());
    match re {
        Some(re) => re.replace_all(line, "${1}***@").into_owned(),
        None => line.to_owned(),
    }
}

/// Why a fleet file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FleetFileError {
    /// The file cannot be read.
    #[error("cannot read the fleet file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Every problem found in it.
    #[error("{errors}\n{} error{} in {}", errors.len(), if errors.len() == 1 { "" } else { "s" }, path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem, each with file:line:column.
        errors: LoadErrors,
    },
}

impl FleetFile {
    /// An error about the value of `store:`, pointing at it like the file's
    /// own errors (the file is read again for the caret's line).
    pub fn store_error(&self, message: String) -> FleetFileError {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let mut p = Problems {
            path: &self.path,
            lines: text.lines().collect(),
            errors: Vec::new(),
        };
        p.push(self.store_loc.unwrap_or_default(), message, None);
        FleetFileError::Invalid {
            path: self.path.clone(),
            errors: LoadErrors::new(p.errors),
        }
    }
}

/// Reads and checks a fleet file; `env` looks up `api_key_env:` variables.
pub fn load(path: &Path) -> Result<FleetFile, FleetFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FleetFileError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path, &|name| std::env::var(name).ok())
}

/// Checks fleet YAML `text` read from `path` (relative paths in it are
/// resolved against `path`'s folder).
pub fn parse(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<FleetFile, FleetFileError> {
    let mut p = Problems {
        path,
        lines: text.lines().collect(),
        errors: Vec::new(),
    };
    let base = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let base = std::path::absolute(&base).unwrap_or(base);
    let root = match yaml::parse(text) {
        Ok(root) => root,
        Err(e) => {
            let hint = yaml::syntax_hint(&e.message);
            p.push(e.loc.unwrap_or_default(), e.message, hint);
            return p.finish(None);
        }
    };
    let mut fleet = FleetFile {
        path: path.to_owned(),
        rest_url: None,
        ws_url: None,
        store: None,
        store_loc: None,
        agents: Vec::new(),
    };
    let Kind::Map(top) = &root.kind else {
        let found = root.describe();
        p.push(
            root.loc,
            format!("a fleet file is a mapping with `agents:`, found {found}"),
            None,
        );
        return p.finish(None);
    };
    let mut agents_node = None;
    for (key, value) in top {
        match key.key_text().as_str() {
            "rest_url" => fleet.rest_url = p.url(value, "rest_url", &["http", "https"]),
            "ws_url" => fleet.ws_url = p.url(value, "ws_url", &["ws", "wss"]),
            "store" => {
                if let Some(text) = p.string(value, "store") {
                    match StoreUrl::parse(&text) {
                        Ok(url) => {
                            fleet.store = Some(url);
                            fleet.store_loc = Some(value.loc);
                        }
                        Err(message) => p.push(value.loc, message, None),
                    }
                }
            }
            "agents" => agents_node = Some((key, value)),
            other => p.unknown(key, other, TOP_KEYS, "the fleet file"),
        }
    }
    match agents_node {
        None => p.push(
            root.loc,
            "the fleet file has no `agents:` list",
            Some("add `agents:` with one entry per agent".into()),
        ),
        Some((_, value)) => match &value.kind {
            Kind::Seq(items) if !items.is_empty() => {
                let mut names: HashMap<String, Loc> = HashMap::new();
                let mut ids: HashMap<String, Loc> = HashMap::new();
                let mut hooks: Vec<(SocketAddr, Loc)> = Vec::new();
                for item in items {
                    let seen = Seen {
                        names: &mut names,
                        ids: &mut ids,
                        hooks: &mut hooks,
                    };
                    if let Some(agent) = p.agent(item, &base, env, seen) {
                        fleet.agents.push(agent);
                    }
                }
            }
            Kind::Seq(_) | Kind::Null => p.push(
                value.loc,
                "`agents` is empty; list at least one agent",
                None,
            ),
            _ => p.push(
                value.loc,
                format!("`agents` must be a list, found {}", value.describe()),
                None,
            ),
        },
    }
    p.finish(Some(fleet))
}

/// A string value as given, with where it is.
type Given = Option<(Loc, String)>;

/// What earlier agents of the file took: names, agent ids and webhook
/// addresses, each with where it was given.
struct Seen<'a> {
    names: &'a mut HashMap<String, Loc>,
    ids: &'a mut HashMap<String, Loc>,
    hooks: &'a mut Vec<(SocketAddr, Loc)>,
}

/// True when two webhook addresses cannot both be listened on: the same
/// port (not 0, which picks a free one) on the same or an unspecified IP.
fn addrs_clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// What a key is for, in messages: its keys in the file and its name.
struct KeyKind {
    file_key: &'static str,
    env_key: &'static str,
    what: &'static str,
}

/// The agent's platform API key.
const API_KEY: KeyKind = KeyKind {
    file_key: "api_key_file",
    env_key: "api_key_env",
    what: "API key",
};

/// The language model's API key.
const LLM_KEY: KeyKind = KeyKind {
    file_key: "llm_key_file",
    env_key: "llm_key_env",
    what: "language model's API key",
};

/// The problems found so far, with the text for the carets.
struct Problems<'a> {
    path: &'a Path,
    lines: Vec<&'a str>,
    errors: Vec<LoadError>,
}

impl Problems<'_> {
    fn push(&mut self, loc: Loc, message: impl Into<String>, hint: Option<String>) {
        let source_line = (loc.line > 0)
            .then(|| self.lines.get(loc.line as usize - 1))
            .flatten()
            .map(|l| hide_passwords(l));
        self.errors.push(LoadError {
            file: self.path.to_owned(),
            loc,
            message: message.into(),
            hint,
            source_line,
        });
    }

    fn finish(self, fleet: Option<FleetFile>) -> Result<FleetFile, FleetFileError> {
        match (self.errors.is_empty(), fleet) {
            (true, Some(fleet)) => Ok(fleet),
            _ => Err(FleetFileError::Invalid {
                path: self.path.to_owned(),
                errors: LoadErrors::new(self.errors),
            }),
        }
    }

    fn unknown(&mut self, key: &Node, got: &str, known: &[&str], what: &str) {
        let hint = did_you_mean(got, known.iter().copied())
            .or_else(|| Some(format!("known keys: {}", known.join(", "))));
        self.push(key.loc, format!("unknown key `{got}` in {what}"), hint);
    }

    /// A whole number from 1, or an error at the value.
    fn count<N: TryFrom<i64>>(&mut self, value: &Node, key: &str) -> Option<N> {
        match value.kind {
            Kind::Int(n) if n >= 1 => N::try_from(n).ok(),
            _ => {
                self.push(
                    value.loc,
                    format!("`{key}` must be a whole number from 1"),
                    None,
                );
                None
            }
        }
    }

    /// A non-empty string, or an error at the value.
    fn string(&mut self, value: &Node, key: &str) -> Option<String> {
        match &value.kind {
            Kind::Str(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Kind::Str(_) => {
                self.push(value.loc, format!("`{key}` is empty"), None);
                None
            }
            _ => {
                let found = value.describe();
                self.push(
                    value.loc,
                    format!("`{key}` must be a string, found {found}"),
                    None,
                );
                None
            }
        }
    }

    fn url(&mut self, value: &Node, key: &str, schemes: &[&str]) -> Option<String> {
        let text = self.string(value, key)?;
        match url::Url::parse(&text) {
            Ok(u) if schemes.contains(&u.scheme()) => Some(text),
            Ok(u) => {
                let message = format!(
                    "`{key}` has the scheme `{}`; expected {}",
                    u.scheme(),
                    schemes.join(" or ")
                );
                self.push(value.loc, message, None);
                None
            }
            Err(e) => {
                self.push(value.loc, format!("`{key}` is not a URL ({e})"), None);
                None
            }
        }
    }

    fn strings(&mut self, value: &Node, key: &str) -> Vec<(Loc, String)> {
        match &value.kind {
            Kind::Seq(items) => items
                .iter()
                .filter_map(|i| self.string(i, key).map(|s| (i.loc, s)))
                .collect(),
            Kind::Null => Vec::new(),
            _ => {
                let found = value.describe();
                self.push(
                    value.loc,
                    format!("`{key}` must be a list, found {found}"),
                    None,
                );
                Vec::new()
            }
        }
    }

    fn boolean(&mut self, value: &Node, key: &str) -> Option<bool> {
        match value.kind {
            Kind::Bool(b) => Some(b),
            _ => {
                let found = value.describe();
                self.push(
                    value.loc,
                    format!("`{key}` must be true or false, found {found}"),
                    None,
                );
                None
            }
        }
    }

    /// One entry of `agents:`; `None` when it has errors (all reported).
    fn agent(
        &mut self,
        item: &Node,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        seen: Seen<'_>,
    ) -> Option<AgentEntry> {
        let Seen { names, ids, hooks } = seen;
        let Kind::Map(entries) = &item.kind else {
            let found = item.describe();
            self.push(
                item.loc,
                format!("an agent must be a mapping, found {found}"),
                None,
            );
            return None;
        };
        let before = self.errors.len();
        let mut name = None;
        let mut agent_id = None;
        let mut key_file: Option<(Loc, String)> = None;
        let mut key_env: Option<(Loc, String)> = None;
        let mut workflows = None;
        let mut hosts = Vec::new();
        let mut allow_env = Vec::new();
        let (mut max_attempts, mut retry_delay) = (None, None);
        let (mut ephemeral, mut explain, mut watch) = (false, false, true);
        let mut webhook_addr = None;
        let (mut webhook_queue, mut max_pending_per_person) = (None, None);
        let (mut llm_url, mut llm_model): (Given, Given) = (None, None);
        let (mut llm_key_file, mut llm_key_env): (Given, Given) = (None, None);
        for (key, value) in entries {
            let k = key.key_text();
            match k.as_str() {
                "name" => {
                    name = self.string(value, "name").and_then(|n| {
                        if let Some(first) = names.get(&n) {
                            let message = format!(
                                "two agents are named `{n}` (the first at line {})",
                                first.line
                            );
                            self.push(value.loc, message, Some("names must be unique".into()));
                            return None;
                        }
                        if !n
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                        {
                            let message = format!("agent name `{n}` has characters other than letters, digits, `-`, `_` and `.`");
                            self.push(value.loc, message, Some("it is used in log fields and metric labels".into()));
                            return None;
                        }
                        names.insert(n.clone(), value.loc);
                        Some(n)
                    })
                }
                "agent_id" => {
                    agent_id = self.string(value, "agent_id").and_then(|id| {
                        // It names the agent's state directory: one plain path component.
                        let plain = !id.starts_with('.')
                            && id
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                        if !plain {
                            let message = format!("agent id `{id}` has characters other than letters, digits, `-`, `_` and `.`");
                            self.push(value.loc, message, None);
                            return None;
                        }
                        if let Some(first) = ids.get(&id) {
                            let message = format!(
                                "two agents have the agent id `{id}` (the first at line {})",
                                first.line
                            );
                            let hint = "an agent runs once: its platform socket allows one connection";
                            self.push(value.loc, message, Some(hint.into()));
                            return None;
                        }
                        ids.insert(id.clone(), value.loc);
                        Some(id)
                    })
                }
                "api_key_file" => key_file = self.string(value, &k).map(|s| (value.loc, s)),
                "api_key_env" => key_env = self.string(value, &k).map(|s| (value.loc, s)),
                "workflows" => workflows = self.string(value, &k).map(|s| (value.loc, s)),
                "allow_http_hosts" => {
                    for (loc, host) in self.strings(value, &k) {
                        match host.parse::<AllowedHost>() {
                            Ok(_) => hosts.push(host),
                            Err(e) => self.push(loc, e.to_string(), None),
                        }
                    }
                }
                "allow_env" => {
                    allow_env = self.strings(value, &k).into_iter().map(|(_, s)| s).collect()
                }
                "max_attempts" => max_attempts = self.count(value, &k),
                "retry_delay" => {
                    if let Some(text) = self.string(value, &k) {
                        match switchboard_workflow::duration::parse_duration(&text) {
                            Ok(d) => retry_delay = Some(d),
                            Err(e) => self.push(value.loc, format!("`retry_delay`: {e}"), None),
                        }
                    }
                }
                "ephemeral" => ephemeral = self.boolean(value, &k).unwrap_or(false),
                "explain" => explain = self.boolean(value, &k).unwrap_or(false),
                "watch" => watch = self.boolean(value, &k).unwrap_or(true),
                "webhook_addr" => {
                    webhook_addr = self.string(value, &k).and_then(|text| {
                        let addr = match text.parse::<SocketAddr>() {
                            Ok(addr) => addr,
                            Err(e) => {
                                let message = format!("`webhook_addr` is not an address ({e})");
                                let hint = "give IP:PORT, e.g. 127.0.0.1:8787 or 0.0.0.0:8787";
                                self.push(value.loc, message, Some(hint.into()));
                                return None;
                            }
                        };
                        if let Some((_, first)) = hooks.iter().find(|(a, _)| addrs_clash(*a, addr))
                        {
                            let message = format!(
                                "two agents serve webhooks on {addr} (the first at line {})",
                                first.line
                            );
                            let hint = "each agent listens on its own address: give each its own port";
                            self.push(value.loc, message, Some(hint.into()));
                            return None;
                        }
                        hooks.push((addr, value.loc));
                        Some(addr)
                    })
                }
                "webhook_queue" => webhook_queue = self.count(value, &k),
                "max_pending_per_person" => max_pending_per_person = self.count(value, &k),
                "llm_url" => llm_url = self.string(value, &k).map(|s| (value.loc, s)),
                "llm_model" => llm_model = self.string(value, &k).map(|s| (value.loc, s)),
                "llm_key_file" => llm_key_file = self.string(value, &k).map(|s| (value.loc, s)),
                "llm_key_env" => llm_key_env = self.string(value, &k).map(|s| (value.loc, s)),
                other => self.unknown(key, other, AGENT_KEYS, "an agent"),
            }
        }
        let what = name
            .as_deref()
            .map_or_else(|| "an agent".to_owned(), |n| format!("agent `{n}`"));
        let missing = |p: &mut Self, key: &str| {
            if p.errors.len() == before {
                p.push(item.loc, format!("{what} has no `{key}`"), None);
            }
        };
        if name.is_none() {
            missing(self, "name");
        }
        if agent_id.is_none() {
            missing(self, "agent_id");
        }
        if workflows.is_none() {
            missing(self, "workflows");
        }
        let key = match (key_file, key_env) {
            (None, None) => {
                self.push(
                    item.loc,
                    format!("{what} has no key: give `api_key_file` or `api_key_env`"),
                    None,
                );
                None
            }
            (file, var) => self.key(&what, &API_KEY, file, var, base, env),
        };
        let llm = self.llm(
            &what,
            llm_url,
            llm_model,
            llm_key_file,
            llm_key_env,
            base,
            env,
        );
        if self.errors.len() != before {
            return None;
        }
        let (key_source, api_key) = key?;
        Some(AgentEntry {
            name: name?,
            agent_id: agent_id?,
            key_source,
            api_key,
            workflows: base.join(workflows?.1),
            allow_http_hosts: hosts,
            allow_env,
            max_attempts,
            retry_delay,
            ephemeral,
            explain,
            watch,
            webhook_addr,
            webhook_queue,
            max_pending_per_person,
            llm: llm.as_ref().map(|(config, _)| config.clone()),
            llm_key_source: llm.and_then(|(_, source)| source),
        })
    }

    /// A key from `file` (relative to `base`) or the variable `var` (one of
    /// the two); `None` when it cannot be read (reported at its place).
    fn key(
        &mut self,
        what: &str,
        kind: &KeyKind,
        file: Option<(Loc, String)>,
        var: Option<(Loc, String)>,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<(KeySource, String)> {
        let label = kind.what;
        match (file, var) {
            (Some(_), Some((loc, _))) => {
                let message = format!("{what} has both `{}` and `{}`", kind.file_key, kind.env_key);
                self.push(loc, message, Some("keep one".into()));
                None
            }
            (Some((loc, file)), None) => {
                let path = base.join(&file);
                match std::fs::read_to_string(&path) {
                    Ok(text) if !text.trim().is_empty() => {
                        Some((KeySource::File(path), text.trim().to_owned()))
                    }
                    Ok(_) => {
                        let message = format!("the {label} file {} is empty", path.display());
                        self.push(loc, message, None);
                        None
                    }
                    Err(e) => {
                        let message =
                            format!("cannot read the {label} file {}: {e}", path.display());
                        self.push(
                            loc,
                            message,
                            Some("paths are relative to the fleet file's folder".into()),
                        );
                        None
                    }
                }
            }
            (None, Some((loc, var))) => match env(&var) {
                Some(v) if !v.trim().is_empty() => Some((KeySource::Env(var), v.trim().to_owned())),
                _ => {
                    let message = format!(
                        "the environment variable {var} (`{}`) is not set or empty",
                        kind.env_key
                    );
                    self.push(loc, message, None);
                    None
                }
            },
            (None, None) => None,
        }
    }

    /// The model `llm` actions ask: `llm_url` and `llm_model` together, the
    /// key (optional) from `llm_key_file` or `llm_key_env`; `None` when not
    /// given or wrong (reported at the place).
    #[allow(clippy::too_many_arguments)]
    fn llm(
        &mut self,
        what: &str,
        url: Option<(Loc, String)>,
        model: Option<(Loc, String)>,
        key_file: Option<(Loc, String)>,
        key_env: Option<(Loc, String)>,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<(LlmConfig, Option<KeySource>)> {
        let (url, model) = match (url, model) {
            (Some(url), Some(model)) => (url, model),
            (None, None) => {
                if let Some((loc, _)) = key_file.as_ref().or(key_env.as_ref()) {
                    let message =
                        format!("{what} has a model key but no `llm_url` and `llm_model`");
                    self.push(*loc, message, Some("give both, or drop the key".into()));
                }
                return None;
            }
            (Some((loc, _)), None) => {
                let message = format!("`llm_url` without `llm_model` in {what}");
                self.push(loc, message, Some("give both".into()));
                return None;
            }
            (None, Some((loc, _))) => {
                let message = format!("`llm_model` without `llm_url` in {what}");
                self.push(loc, message, Some("give both".into()));
                return None;
            }
        };
        // The URL is checked before the key is read: both are reported.
        let checked = LlmConfig::new(&url.1, &model.1, None).map_err(|e| match e {
            LlmConfigError::Url { why, .. } => format!("`llm_url` cannot be used: {why}"),
            LlmConfigError::CredentialsInUrl => "`llm_url` must not hold credentials \
                (user:password@); give the key with `llm_key_file` or `llm_key_env`"
                .to_owned(),
            other => other.to_string(),
        });
        // `Some(None)`: a key was given and cannot be read (reported).
        let key = match (&key_file, &key_env) {
            (None, None) => None,
            _ => Some(self.key(what, &LLM_KEY, key_file, key_env, base, env)),
        };
        match checked {
            Ok(mut config) => match key {
                None => Some((config, None)),
                Some(read) => {
                    let (source, key) = read?;
                    config.api_key = Some(key);
                    Some((config, Some(source)))
                }
            },
            Err(message) => {
                let hint = "give the API's base URL, e.g. http://127.0.0.1:11434/v1";
                self.push(url.0, message, Some(hint.into()));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_store_url_never_shows_its_password() {
        let url = StoreUrl::parse("redis://user:p%40ss@127.0.0.1:6379/0").unwrap();
        assert_eq!(url.redacted(), "redis://user:***@127.0.0.1:6379/0");
        assert!(!format!("{url:?} {url}").contains("p%40ss"));
        let err = StoreUrl::parse("http://user:pw@host/").unwrap_err();
        assert!(!err.contains("pw"), "{err}");
        assert!(StoreUrl::parse("redis:///0").is_err());
    }

    #[test]
    fn paths_are_relative_to_the_fleet_files_folder_and_keys_come_from_the_environment() {
        let env = |name: &str| (name == "K").then(|| " the-key \n".to_owned());
        let text = "agents:\n  - name: a\n    agent_id: x1\n    api_key_env: K\n    workflows: wf/a\n    allow_http_hosts: [partner.example, '127.0.0.1:8080']\n";
        let fleet = parse(text, Path::new("/etc/sb/fleet.yaml"), &env).unwrap();
        let a = &fleet.agents[0];
        assert_eq!(a.workflows, Path::new("/etc/sb/wf/a"));
        assert_eq!(a.api_key, "the-key");
        assert_eq!(a.allowed_hosts().len(), 2);
        assert!(a.watch && !a.ephemeral);
        assert!(!format!("{a:?}").contains("the-key"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = "agents:\n  - name: a\n    agent_id: x1\n    workflows: wf\n    max_attempts: 0\n    allow_http_hosts: ['']\n  - nme: b\n    agent_id: x2\n    api_key_env: K\n    workflows: wf\n";
        let Err(FleetFileError::Invalid { errors, .. }) = parse(text, Path::new("f.yaml"), &no_env)
        else {
            panic!("the file passed");
        };
        let shown = errors.to_string();
        for want in [
            "has no key",
            "`max_attempts` must be",
            "`allow_http_hosts` is empty",
            "unknown key `nme`",
            "did you mean `name`?",
            "K (`api_key_env`) is not set",
        ] {
            assert!(shown.contains(want), "no {want:?} in:\n{shown}");
        }
        assert!(shown.contains("f.yaml:7:5"), "{shown}");
    }

    #[test]
    fn webhook_and_model_options_are_read_and_addresses_must_not_clash() {
        let env = |name: &str| (name == "K").then(|| "k".to_owned());
        let text = "agents:\n  - name: a\n    agent_id: x1\n    api_key_env: K\n    workflows: wf\n    webhook_addr: 0.0.0.0:8787\n    webhook_queue: 7\n    max_pending_per_person: 3\n    llm_url: http://127.0.0.1:11434/v1\n    llm_model: llama3.2\n  - name: b\n    agent_id: x2\n    api_key_env: K\n    workflows: wf\n    webhook_addr: 127.0.0.1:8788\n";
        let fleet = parse(text, Path::new("f.yaml"), &env).unwrap();
        let a = &fleet.agents[0];
        assert_eq!(a.webhook_addr, Some("0.0.0.0:8787".parse().unwrap()));
        assert_eq!(
            (a.webhook_queue, a.max_pending_per_person),
            (Some(7), Some(3))
        );
        let llm = a.llm.as_ref().expect("the model");
        // No key given: none is sent (a local server).
        assert_eq!(
            (llm.model.as_str(), llm.api_key.as_deref()),
            ("llama3.2", None)
        );
        assert_eq!(fleet.agents[1].llm, None);
        // Any IP on a port clashes with one IP on it; port 0 never clashes.
        let clash = text.replace("127.0.0.1:8788", "127.0.0.1:8787");
        let err = parse(&clash, Path::new("f.yaml"), &env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("two agents serve webhooks on 127.0.0.1:8787 (the first at line 6)"),
            "{err}"
        );
        let zero = text
            .replace("0.0.0.0:8787", "127.0.0.1:0")
            .replace(":8788", ":0");
        assert!(parse(&zero, Path::new("f.yaml"), &env).is_ok());
    }

    #[test]
    fn an_agent_id_must_be_a_plain_path_component() {
        let escape =
            "agents:\n  - name: a\n    agent_id: ../x\n    api_key_env: K\n    workflows: wf\n";
        let env = |_: &str| Some("k".to_owned());
        let err = parse(escape, Path::new("f.yaml"), &env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("agent id `../x`") && err.contains("f.yaml:3:15"),
            "{err}"
        );
    }

    #[test]
    fn a_file_that_is_not_a_mapping_or_has_no_agents_is_refused() {
        for text in [
            "- a\n",
            "agents: []\n",
            "rest_url: http://x\n",
            "agents: {a: 1}\n",
            "a: [\n",
        ] {
            assert!(
                parse(text, Path::new("f.yaml"), &no_env).is_err(),
                "{text:?} passed"
            );
        }
    }
}
