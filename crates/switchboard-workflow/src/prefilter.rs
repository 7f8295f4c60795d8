//! The literal prefilter: which rules could possibly match an event, found
//! with one Aho-Corasick pass per field instead of evaluating every rule.
//!
//! A rule is *indexed* when its conditions require some text on a field of
//! the event (`contains`, `equals`, `in`, `starts_with`, `ends_with` on
//! strings, or a `matches` regex whose every match begins or ends with one
//! of a few literals, as `regex-syntax` extracts them). If none of those
//! literals occurs in the field, the rule cannot match and is not evaluated.
//! The filter may let through rules that then fail; it must never hold back
//! one that would match, so every literal is searched case-insensitively
//! (a superset of any case-sensitive test), and text compared after
//! Unicode lowercasing is searched lowercased as well.
//!
//! Rules with `else` actions run when their conditions fail, so they are
//! never filtered out; neither are rules without an indexable condition.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, MatchKind};
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use serde_json::Value;

use super::reload_cache::ReloadCache;
use super::rule::{Check, Cond, Op, Rule};

/// Roots whose values stay the same for the whole of one event (`state`
/// changes as rules run; `vars` belong to a file).
const EVENT_ROOTS: [&str; 4] = ["event", "sender", "chat", "agent"];

/// Per event type, the rules that need a literal and the automata that find them.
#[derive(Debug, Default)]
pub struct Prefilter {
    by_type: HashMap<String, TypeFilter>,
}

#[derive(Debug, Default)]
struct TypeFilter {
    /// Positions (in the event type's rule list) evaluated whatever the text.
    always: Vec<u32>,
    fields: Vec<FieldIndex>,
}

#[derive(Debug)]
struct FieldIndex {
    /// The dotted path, root first.
    path: Vec<String>,
    automaton: AhoCorasick,
    /// Pattern id → positions of the rules that need it.
    owners: Vec<Vec<u32>>,
    /// Every position indexed on this field (when its value is not text).
    all: Vec<u32>,
    /// Some literal is compared after Unicode lowercasing.
    lowered: bool,
}

/// One requirement: at least one of `literals` occurs in the field at `path`.
#[derive(Debug, Clone)]
struct Need {
    path: Vec<String>,
    literals: Vec<Lit>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Lit {
    /// Occurs in the text as it is (up to ASCII case).
    Raw(Vec<u8>),
    /// Occurs in the Unicode-lowercased text.
    Lowered(String),
}

impl Lit {
    fn bytes(&self) -> &[u8] {
        match self {
            Lit::Raw(b) => b,
            Lit::Lowered(s) => s.as_bytes(),
        }
    }
}

/// The value of a field, as far as the filter is concerned.
pub enum Field<'a> {
    /// Text (numbers and booleans as they print).
    Text(std::borrow::Cow<'a, str>),
    /// Missing or null: no text condition on it can hold.
    Absent,
    /// A list or a map: `contains` looks at items or keys, so anything may hold.
    Opaque,
}

impl<'a> Field<'a> {
    /// Classifies a looked-up value.
    pub fn of(value: Option<&'a Value>) -> Self {
        match value {
            None | Some(Value::Null) => Field::Absent,
            Some(Value::String(s)) => Field::Text(s.as_str().into()),
            Some(Value::Number(n)) => Field::Text(n.to_string().into()),
            Some(Value::Bool(b)) => Field::Text(b.to_string().into()),
            Some(_) => Field::Opaque,
        }
    }
}

impl Prefilter {
    /// Indexes `rules` (all of the ruleset) for each event type's list of positions.
    pub fn new(rules: &[Rule], index: &HashMap<String, Vec<usize>>) -> Self {
        let by_type = index
            .iter()
            .map(|(event_type, list)| {
                let listed: Vec<&Rule> = list.iter().map(|&i| &rules[i]).collect();
                (event_type.clone(), TypeFilter::new(&listed))
            })
            .collect();
        Prefilter { by_type }
    }

    /// Positions (ascending) in `event_type`'s rule list of the rules that
    /// could match, given `field` to read a path (root first) of the event.
    /// `None` when the type has no filter (every rule is a candidate).
    pub fn candidates<'v>(
        &self,
        event_type: &str,
        field: impl Fn(&[String]) -> Field<'v>,
    ) -> Option<Vec<u32>> {
        let filter = self.by_type.get(event_type)?;
        if filter.fields.is_empty() {
            return None;
        }
        let mut out = filter.always.clone();
        for index in &filter.fields {
            match field(&index.path) {
                Field::Absent => {}
                Field::Opaque => out.extend_from_slice(&index.all),
                Field::Text(text) => index.search(&text, &mut out),
            }
        }
        out.sort_unstable();
        out.dedup();
        Some(out)
    }

    /// How many rules of `event_type` are indexed (for figures and tests).
    pub fn indexed(&self, event_type: &str) -> usize {
        self.by_type
            .get(event_type)
            .map_or(0, |f| f.fields.iter().map(|i| i.all.len()).sum())
    }
}

impl FieldIndex {
    fn search(&self, text: &str, out: &mut Vec<u32>) {
        let mut found: Vec<usize> = self
            .automaton
            .find_overlapping_iter(text)
            .map(|m| m.pattern().as_usize())
            .collect();
        if self.lowered && !text.is_ascii() {
            let lower = text.to_lowercase();
            found.extend(
                self.automaton
                    .find_overlapping_iter(&lower)
                    .map(|m| m.pattern().as_usize()),
            );
        }
        found.sort_unstable();
        found.dedup();
        for p in found {
            out.extend_from_slice(&self.owners[p]);
        }
    }
}

impl TypeFilter {
    fn new(rules: &[&Rule]) -> Self {
        let needs: Vec<Vec<Need>> = rules
            .iter()
            .map(|r| match r.else_actions.is_empty() {
                true => needs_of(&r.conditions),
                // `else` runs when the conditions fail: always evaluate.
                false => Vec::new(),
            })
            .collect();
        // How many rules share each literal: the rarer, the better the filter.
        let mut shared: HashMap<(&[String], &Lit), usize> = HashMap::new();
        for need in needs.iter().flatten() {
            for lit in &need.literals {
                *shared.entry((&need.path, lit)).or_default() += 1;
            }
        }
        let cost = |n: &Need| -> usize {
            n.literals
                .iter()
                .map(|l| shared[&(n.path.as_slice(), l)] + usize::from(l.bytes().len() < 3) * 1_000)
                .sum()
        };
        let mut always = Vec::new();
        let mut by_field: HashMap<Vec<String>, Vec<(u32, Vec<Lit>)>> = HashMap::new();
        for (pos, rule_needs) in needs.iter().enumerate() {
            let pos = u32::try_from(pos).unwrap_or(u32::MAX);
            match rule_needs.iter().min_by_key(|n| cost(n)) {
                Some(best) => by_field
                    .entry(best.path.clone())
                    .or_default()
                    .push((pos, best.literals.clone())),
                None => always.push(pos),
            }
        }
        let mut fields = Vec::new();
        for (path, entries) in by_field {
            match FieldIndex::new(path, &entries) {
                Some(index) => fields.push(index),
                // Too big for the automaton: evaluate them all.
                None => always.extend(entries.iter().map(|(pos, _)| *pos)),
            }
        }
        always.sort_unstable();
        TypeFilter { always, fields }
    }
}

impl FieldIndex {
    fn new(path: Vec<String>, entries: &[(u32, Vec<Lit>)]) -> Option<Self> {
        let mut ids: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut owners: Vec<Vec<u32>> = Vec::new();
        let mut lowered = false;
        for (pos, literals) in entries {
            for lit in literals {
                lowered |= matches!(lit, Lit::Lowered(_));
                // The search ignores ASCII case: one pattern per folded literal.
                let key = lit.bytes().to_ascii_lowercase();
                let id = *ids.entry(key.clone()).or_insert_with(|| {
                    patterns.push(key);
                    owners.push(Vec::new());
                    patterns.len() - 1
                });
                if owners[id].last() != Some(pos) {
                    owners[id].push(*pos);
                }
            }
        }
        let automaton = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&patterns)
            .ok()?;
        Some(FieldIndex {
            path,
            automaton,
            owners,
            all: entries.iter().map(|(pos, _)| *pos).collect(),
            lowered,
        })
    }
}

/// The requirements of a list of conditions that must all hold.
fn needs_of(conds: &[Cond]) -> Vec<Need> {
    let mut out = Vec::new();
    for cond in conds {
        match cond {
            Cond::All(list) | Cond::Named(_, list) => out.extend(needs_of(list)),
            other => out.extend(need_of(other)),
        }
    }
    out
}

/// A single condition's requirement, when it has one.
fn need_of(cond: &Cond) -> Option<Need> {
    match cond {
        Cond::Path {
            segments, checks, ..
        } => {
            if !EVENT_ROOTS.contains(&segments.first()?.as_str()) {
                return None;
            }
            // All checks must hold: any one of them is a requirement.
            checks
                .iter()
                .filter_map(literals_of)
                .min_by_key(|lits| std::cmp::Reverse(min_len(lits)))
                .map(|literals| Need {
                    path: segments.clone(),
                    literals,
                })
        }
        Cond::All(list) | Cond::Named(_, list) => needs_of(list)
            .into_iter()
            .max_by_key(|n| min_len(&n.literals)),
        // One branch must hold: a requirement only when every branch has
        // one on the same field (then any of their literals will do).
        Cond::Any(list) => {
            let mut merged: Option<Need> = None;
            for branch in list {
                let need = need_of(branch)?;
                match &mut merged {
                    None => merged = Some(need),
                    Some(m) if m.path == need.path => m.literals.extend(need.literals),
                    Some(_) => return None,
                }
            }
            merged.filter(|m| !m.literals.is_empty())
        }
        Cond::Not(_) | Cond::Template { .. } | Cond::JsonPath { .. } | Cond::Time(_) => None,
    }
}

fn min_len(lits: &[Lit]) -> usize {
    lits.iter().map(|l| l.bytes().len()).min().unwrap_or(0)
}

/// The literals one of which the field's text must contain for `check` to hold.
fn literals_of(check: &Check) -> Option<Vec<Lit>> {
    let string = |v: &Value| -> Option<Lit> {
        let s = v.as_str().filter(|s| !s.is_empty())?;
        Some(match check.insensitive {
            true => Lit::Lowered(s.to_lowercase()),
            false => Lit::Raw(s.as_bytes().to_vec()),
        })
    };
    match check.op {
        Op::Equals | Op::Contains | Op::StartsWith | Op::EndsWith => {
            string(&check.operand).map(|l| vec![l])
        }
        Op::In => {
            let items = check.operand.as_array()?;
            let lits: Option<Vec<Lit>> = items.iter().map(string).collect();
            lits.filter(|l| !l.is_empty())
        }
        Op::Matches => {
            let p = check.regex.as_ref()?;
            regex_literals(p.as_str(), p.insensitive())
        }
        _ => None,
    }
}

/// [`extract_regex_literals`], remembered by pattern: a reload does not parse
/// unchanged patterns again. Cleared past a bound.
fn regex_literals(pattern: &str, insensitive: bool) -> Option<Vec<Lit>> {
    static LITERALS: ReloadCache<(String, bool), Option<Vec<Lit>>> = ReloadCache::new(50_000);
    let found = LITERALS.get_or_try((pattern.to_owned(), insensitive), || {
        Ok::<_, std::convert::Infallible>(extract_regex_literals(pattern, insensitive))
    });
    found.unwrap_or_else(|never| match never {})
}

/// Literals one of which every match of the regex begins with (or ends
/// with): whichever list has the longer shortest literal.
fn extract_regex_literals(pattern: &str, insensitive: bool) -> Option<Vec<Lit>> {
    let hir = regex_syntax::ParserBuilder::new()
        .case_insensitive(insensitive)
        .build()
        .parse(pattern)
        .ok()?;
    [ExtractKind::Prefix, ExtractKind::Suffix]
        .into_iter()
        .filter_map(|kind| {
            let mut seq = Extractor::new().kind(kind).extract(&hir);
            seq.dedup();
            let literals = seq.literals()?;
            // An empty literal matches anywhere; no literal at all means a
            // regex that never matches, which evaluation will tell anyway.
            let shortest = seq.min_literal_len()?;
            if shortest == 0 || literals.is_empty() {
                return None;
            }
            let mut lits: Vec<Lit> = literals
                .iter()
                .map(|l| Lit::Raw(l.as_bytes().to_vec()))
                .collect();
            lits.sort_by_key(|l| l.bytes().to_ascii_lowercase());
            lits.dedup_by(|a, b| a.bytes().eq_ignore_ascii_case(b.bytes()));
            Some((shortest, lits))
        })
        .max_by_key(|(shortest, _)| *shortest)
        .map(|(_, lits)| lits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lits(pattern: &str) -> Option<Vec<String>> {
        regex_literals(pattern, false).map(|l| {
            l.iter()
                .map(|l| String::from_utf8_lossy(l.bytes()).to_lowercase())
                .collect()
        })
    }

    #[test]
    fn regex_literals_are_required_text() {
        assert_eq!(lits(r"(?i)\brefund\b"), Some(vec!["refund".into()]));
        let both = lits("refund|money back").unwrap();
        assert!(both.contains(&"refund".into()) && both.contains(&"money back".into()));
        // A leading repetition: the suffix still gives a literal.
        assert_eq!(lits(r"\s*help"), Some(vec!["help".into()]));
        // Nothing required.
        assert_eq!(lits(r".*"), None);
        assert_eq!(lits(r"\w+"), None);
        assert_eq!(lits(r"a?"), None);
        // Unicode digits are too many to list.
        assert_eq!(lits(r"\d{3}"), None);
        // A case-insensitive `k` also matches the Kelvin sign: both are listed.
        let k = regex_literals("(?i)kelvin", false).unwrap();
        assert!(k
            .iter()
            .any(|l| l.bytes().starts_with("\u{212A}".as_bytes())));
    }
}
