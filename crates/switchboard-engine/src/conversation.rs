//! Pending conversations: an action list that reached `wait_for`, `ask` or
//! `wait` stops there, and the engine hands back a [`PendingConversation`]
//! saying what it waits for and everything the rest of the list needs. The
//! runtime keeps it (in memory, as JSON on disk), asks
//! [`Engine::check_answer`](crate::Engine::check_answer) of each later
//! message in its room, and calls [`Engine::resume`](crate::Engine::resume)
//! with the answer, a re-prompt or the deadline. No clock and no I/O here:
//! times come in with the event input.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::action::Sender;
use super::captures::Captures;
use switchboard_workflow::compile::source_hash;
use switchboard_workflow::rule::{Action, PauseKind, Rule};
use switchboard_workflow::{load_str, LoadErrors, Ruleset};

/// Which of a rule's lists a pause is in (`on_error` and `on_timeout` hold none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Branch {
    /// The rule's `do`.
    Do,
    /// The rule's `else`.
    Else,
}

impl Branch {
    /// As written in workflows and journal step names.
    pub fn name(self) -> &'static str {
        match self {
            Branch::Do => "do",
            Branch::Else => "else",
        }
    }
}

/// Where a pause is in its rule: the list and the action's index in it.
/// The rest of the list starts at `index + 1`; `on_timeout` is the pause's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionPath {
    /// `do` or `else`.
    pub branch: Branch,
    /// Index of the pausing action in that list.
    pub index: usize,
}

impl ActionPath {
    /// The pausing action in `rule` (`None` if the rule has no such pause,
    /// e.g. it is not the rule the conversation started in).
    pub fn action<'r>(&self, rule: &'r Rule) -> Option<&'r Action> {
        self.list(rule)
            .get(self.index)
            .filter(|a| a.pause.is_some())
    }

    /// The whole list the pause is in.
    pub fn list<'r>(&self, rule: &'r Rule) -> &'r [Action] {
        match self.branch {
            Branch::Do => &rule.actions,
            Branch::Else => &rule.else_actions,
        }
    }

    /// The journal step name of the pause (`rule#do2`).
    pub fn step(&self, rule: &str) -> String {
        format!("{rule}#{}{}", self.branch.name(), self.index)
    }
}

/// What the rest of a paused list needs from the event that started it:
/// the parts of its context templates read, its captures and `as:` results.
/// The agent and `now` are taken fresh when it resumes; `vars` and `state`
/// are read then too (a continuation sees the state as it is when it runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bound {
    /// The triggering event's type.
    pub event_type: String,
    /// The triggering event's payload (`event` in the rest of the list).
    pub event: Value,
    /// Its room (`chat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<Value>,
    /// Its sender (`sender`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<Value>,
    /// The sender as the executor needs it (who `reply` mentions by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Sender>,
    /// The rule's regex captures (`match`).
    #[serde(default, skip_serializing_if = "Captures::is_empty")]
    pub captures: Captures,
    /// `as:` results so far, the pause's own included once answered.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub bindings: Map<String, Value>,
}

/// A list paused at `wait_for`, `ask` or `wait`: what it waits for, until
/// when, and what the rest needs. Serialisable as JSON, so the runtime can
/// keep it across restarts; small (the rule itself is referred to, not copied).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingConversation {
    /// Unique per pause: `<origin>/<rule id>#<branch><index>`, the origin
    /// being the id of the message whose handling reached the pause.
    pub id: String,
    /// The rule's id.
    pub rule: String,
    /// The rule's fingerprint when it paused: the rest of the list runs only
    /// on a rule with the same fingerprint (the same actions).
    pub fingerprint: u64,
    /// The workflow file the rule came from.
    pub file: PathBuf,
    /// Hash of that file's text when it paused ([`Rule::source_hash`]): with a
    /// store of file texts by hash, the rule can be compiled again after a
    /// restart even if the file changed since.
    pub source_hash: u64,
    /// `wait_for`, `ask` or `wait`.
    pub kind: PauseKind,
    /// Where the pause is; the rest of the list follows it.
    pub at: ActionPath,
    /// The room it waits in.
    pub room: String,
    /// Who may answer: ids or handles (`@carol`); empty for `wait`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<String>,
    /// When it paused.
    pub started: DateTime<Utc>,
    /// When the timeout passes (`wait`: when the rest runs).
    pub deadline: DateTime<Utc>,
    /// `ask` with choices: an answer naming none was already re-prompted once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reprompted: bool,
    /// What the rest of the list needs.
    pub bound: Bound,
    /// The compiled rules it runs with: those it paused in, kept alive while
    /// it is in memory (a reload does not change them); not serialised, so
    /// after loading it from JSON, [`PendingConversation::attach`] or
    /// [`PendingConversation::recompile`] gives them back.
    #[serde(skip)]
    pub(crate) rules: Rules,
}

/// The ruleset a pending conversation runs with (compared as equal always:
/// two records are the same conversation whatever rules they hold).
#[derive(Clone, Default)]
pub(crate) struct Rules(pub(crate) Option<Arc<Ruleset>>);

impl PartialEq for Rules {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Debug for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "attached" } else { "none" })
    }
}

/// Why a pending conversation cannot run with the rules offered.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The ruleset has no rule with that id and fingerprint (changed or removed).
    #[error("conversation {id}: rule `{rule}` is not in these rules as it was when it paused (changed or removed)")]
    RuleChanged {
        /// The conversation.
        id: String,
        /// Its rule's id.
        rule: String,
    },
    /// The file text offered is not the one the rule was compiled from.
    #[error("conversation {id}: the text offered for {file} is not the one it paused with (hash {got:016x}, expected {expected:016x})")]
    OtherSource {
        /// The conversation.
        id: String,
        /// The workflow file.
        file: String,
        /// The hash it paused with.
        expected: u64,
        /// The hash of the text offered.
        got: u64,
    },
    /// The file text does not compile any more (a different switchboard version).
    #[error("conversation {id}: {file} does not compile")]
    Compile {
        /// The conversation.
        id: String,
        /// The workflow file.
        file: String,
        /// The errors.
        #[source]
        errors: LoadErrors,
    },
}

impl PendingConversation {
    /// The rules it runs with, when attached (always, unless loaded from JSON).
    pub fn ruleset(&self) -> Option<&Arc<Ruleset>> {
        self.rules.0.as_ref()
    }

    /// Attaches `ruleset` (e.g. the current one after a restart) if it holds
    /// this conversation's rule unchanged (same id and fingerprint).
    pub fn attach(&mut self, ruleset: Arc<Ruleset>) -> Result<(), AttachError> {
        if self.rule_in(&ruleset).is_none() {
            return Err(AttachError::RuleChanged {
                id: self.id.clone(),
                rule: self.rule.clone(),
            });
        }
        self.rules = Rules(Some(ruleset));
        Ok(())
    }

    /// Compiles the rule again from its file's text as it was when the
    /// conversation paused (kept by the runtime under [`Self::source_hash`]),
    /// and attaches it: a conversation finishes with the actions it started
    /// with even when the file changed since. The text must hash to
    /// `source_hash`. Several conversations of one file may share the result
    /// through [`Self::attach`].
    pub fn recompile(&mut self, file_text: &str) -> Result<Arc<Ruleset>, AttachError> {
        let file = self.file.to_string_lossy().into_owned();
        let got = source_hash(file_text);
        if got != self.source_hash {
            return Err(AttachError::OtherSource {
                id: self.id.clone(),
                file,
                expected: self.source_hash,
                got,
            });
        }
        let ruleset = load_str(&file, file_text).map_err(|errors| AttachError::Compile {
            id: self.id.clone(),
            file,
            errors,
        })?;
        let ruleset = Arc::new(ruleset);
        self.attach(ruleset.clone())?;
        Ok(ruleset)
    }

    /// The rule this conversation continues in `ruleset`: same id and same
    /// fingerprint, else `None` (changed or removed since it paused).
    pub fn rule_in<'r>(&self, ruleset: &'r Ruleset) -> Option<&'r Rule> {
        ruleset
            .rule(&self.rule)
            .filter(|r| r.fingerprint == self.fingerprint && self.at.action(r).is_some())
    }

    /// True when `sender` (its id, or its handle) is one of those who may answer.
    pub fn may_answer(&self, sender_id: &str, sender_handle: Option<&str>) -> bool {
        let handle = sender_handle.map(|h| h.trim_start_matches('@'));
        self.from.iter().any(|who| {
            who == sender_id
                || handle.is_some_and(|h| who.trim_start_matches('@').eq_ignore_ascii_case(h))
        })
    }

    /// True once `now` reached the deadline.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        now >= self.deadline
    }
}

/// What a message is to a pending conversation.
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerCheck {
    /// Not an answer (other room, other person, `if:` not met, a `wait`, or
    /// an `ask` answer naming no choice after the one re-prompt): the message
    /// goes through the rules as usual.
    NotAnAnswer,
    /// The answer: resume with [`Resume::Answer`] and this value (what `as:` binds).
    Answer(Value),
    /// An answer to an `ask` that names none of its choices, the first time:
    /// resume with [`Resume::Reprompt`] (one short re-prompt; the wait goes on).
    Reprompt,
}

/// How a pending conversation goes on.
#[derive(Debug, Clone, PartialEq)]
pub enum Resume {
    /// Answered: `as:` binds the value, then the rest of the list runs (it may pause again).
    Answer(Value),
    /// Send the re-prompt listing the choices; the conversation keeps waiting.
    Reprompt,
    /// The deadline passed: `on_timeout` runs (`wait`: the rest of the list).
    Deadline,
}

/// The text of a message for matching choices: `text` when the event has it
/// (mentions as `@handle`), else `content` with `@[[id]]` markers dropped.
pub(crate) fn answer_text(event: &Value) -> String {
    if let Some(text) = event.get("text").and_then(Value::as_str) {
        return text.to_owned();
    }
    let content = event.get("content").and_then(Value::as_str).unwrap_or("");
    let mut out = String::with_capacity(content.len());
    let mut rest = content;
    while let Some(start) = rest.find("@[[") {
        out.push_str(&rest[..start]);
        match rest[start..].find("]]") {
            Some(end) => rest = &rest[start + end + 2..],
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The one choice `text` names as a whole word (or words), ignoring case;
/// `None` when it names none or more than one.
pub(crate) fn named_choice<'c>(text: &str, choices: &'c [String]) -> Option<&'c str> {
    let words: Vec<String> = text
        .split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let named: Vec<&'c String> = choices
        .iter()
        .filter(|choice| {
            let want: Vec<String> = choice
                .split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase)
                .collect();
            !want.is_empty() && words.windows(want.len()).any(|w| w == want.as_slice())
        })
        .collect();
    match named.as_slice() {
        [one] => Some(one.as_str()),
        _ => None,
    }
}

/// What `ask`'s `as:` binds: `{choice, message, by}`.
pub(crate) fn ask_result(choice: Option<&str>, message: &Value, by: &str) -> Value {
    json!({"choice": choice, "message": message, "by": by})
}

/// The re-prompt sent once to an answer naming no choice.
pub(crate) fn reprompt_text(choices: &[String]) -> String {
    format!("Please answer with one of: {}.", choices.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_are_whole_words_ignoring_case() {
        let choices = vec!["Approve".to_owned(), "reject".to_owned()];
        assert_eq!(named_choice("APPROVE it", &choices), Some("Approve"));
        assert_eq!(named_choice("I reject.", &choices), Some("reject"));
        assert_eq!(named_choice("approved", &choices), None);
        assert_eq!(named_choice("approve or reject", &choices), None);
        let multi = vec!["not now".to_owned()];
        assert_eq!(named_choice("Not  now, sorry", &multi), Some("not now"));
    }

    #[test]
    fn mention_markers_are_not_part_of_the_answer() {
        let event = json!({"content": "@[[4d2a-1]] approve"});
        assert_eq!(answer_text(&event).trim(), "approve");
        let event = json!({"content": "x @[[unclosed", "text": "@bot x"});
        assert_eq!(answer_text(&event), "@bot x");
        assert_eq!(answer_text(&json!({"content": "a @[[b"})), "a @[[b");
    }
}
