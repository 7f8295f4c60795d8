//! YAML text → a tree of nodes that remember their line and column, so every
//! later error (unknown key, bad regex, template syntax) can point at the
//! exact place. Parsing is serde-saphyr with YAML 1.2 booleans (`on:` stays a
//! string key), duplicate keys rejected and a budget against YAML bombs.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_saphyr::Spanned;

use super::reload_cache::ReloadCache;

/// A 1-based position in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Loc {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub col: u32,
}

/// One YAML node with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the node starts.
    pub loc: Loc,
    /// What it holds.
    pub kind: Kind,
}

/// A node's content.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `~`, `null` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string (quoted or plain).
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The node's kind in words, for "expected a list, found a string".
    pub fn describe(&self) -> &'static str {
        match self.kind {
            Kind::Null => "nothing",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) | Kind::Float(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }

    /// The string, when the node is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The node as plain JSON (positions dropped).
    pub fn to_json(&self) -> Value {
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::from(*i),
            Kind::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.key_text(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// A mapping key as text (non-string keys are written as YAML would show them).
    pub fn key_text(&self) -> String {
        match &self.kind {
            Kind::Str(s) => s.clone(),
            Kind::Null => "null".into(),
            Kind::Bool(b) => b.to_string(),
            Kind::Int(i) => i.to_string(),
            Kind::Float(f) => f.to_string(),
            Kind::Seq(_) | Kind::Map(_) => "<complex key>".into(),
        }
    }
}

/// Where byte `offset` of a string scalar's value is in the file, given the
/// scalar's start `at` (its opening quote or block indicator) and the file's
/// `lines`: an error inside a regex or template then points at its place,
/// not at the quote. Plain and quoted scalars are followed character by
/// character (`''` and `\` escapes are one character of the value, a line
/// break one space); block scalars (`|`, `>`) by line.
pub fn position_in_scalar(lines: &[&str], at: Loc, value: &str, offset: usize) -> Loc {
    let Some(first) = lines.get(at.line.saturating_sub(1) as usize) else {
        return at;
    };
    let offset = offset.min(value.len());
    let start_char = at.col.saturating_sub(1) as usize;
    let style = first.chars().nth(start_char).unwrap_or(' ');
    if style == '|' || style == '>' {
        let before = value.get(..offset).unwrap_or(value);
        let line_index = before.matches('\n').count();
        let within = before.rsplit('\n').next().unwrap_or("").chars().count();
        let body = &lines[(at.line as usize).min(lines.len())..];
        let indent = body
            .iter()
            .find(|l| !l.trim().is_empty())
            .map_or(0, |l| l.len() - l.trim_start().len());
        return Loc {
            line: at.line + 1 + line_index as u32,
            col: (indent + within + 1) as u32,
        };
    }
    let quote = matches!(style, '\'' | '"').then_some(style);
    let mut line = at.line.saturating_sub(1) as usize;
    let mut chars: Vec<char> = first.chars().collect();
    let mut i = start_char + usize::from(quote.is_some());
    let mut consumed = 0usize;
    loop {
        if consumed >= offset {
            break;
        }
        let Some(&c) = chars.get(i) else {
            // A line break folds into one character; the next line's indentation is not part of the value.
            match lines.get(line + 1) {
                Some(next) => {
                    line += 1;
                    chars = next.chars().collect();
                    i = chars.iter().take_while(|c| c.is_whitespace()).count();
                    consumed += 1;
                    continue;
                }
                None => break,
            }
        };
        match (quote, c) {
            (Some('\''), '\'') if chars.get(i + 1) == Some(&'\'') => {
                consumed += 1;
                i += 2;
            }
            (Some('"'), '\\') => {
                let escape = chars.get(i + 1).copied();
                let (raw, bytes) = match escape {
                    Some('x') => (4, hex_char_len(&chars, i + 2, 2)),
                    Some('u') => (6, hex_char_len(&chars, i + 2, 4)),
                    Some('U') => (10, hex_char_len(&chars, i + 2, 8)),
                    Some('N' | '_') => (2, 2),
                    Some('L' | 'P') => (2, 3),
                    // An escaped line break: nothing in the value.
                    None => (1, 0),
                    Some(_) => (2, 1),
                };
                consumed += bytes;
                i += raw;
            }
            _ => {
                consumed += c.len_utf8();
                i += 1;
            }
        }
    }
    Loc {
        line: line as u32 + 1,
        col: i as u32 + 1,
    }
}

/// The UTF-8 length of the character a `\x`/`\u`/`\U` escape's hex digits name.
fn hex_char_len(chars: &[char], from: usize, digits: usize) -> usize {
    let hex: String = chars.iter().skip(from).take(digits).collect();
    u32::from_str_radix(&hex, 16)
        .ok()
        .and_then(char::from_u32)
        .map_or(1, char::len_utf8)
}

/// A YAML syntax error with its position.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    /// Where, when known.
    pub loc: Option<Loc>,
    /// What.
    pub message: String,
}

/// Parses one YAML document into a [`Node`] tree.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        budget: serde_saphyr::budget! {
            // Workflows need about a dozen levels; each costs stack while parsing.
            max_depth: 32,
            max_nodes: 200_000,
            max_total_scalar_bytes: 8 * 1024 * 1024,
            max_aliases: 1_000,
        },
    };
    serde_saphyr::from_str_with_options::<Node>(text, options).map_err(|e| {
        let loc = e.location().map(|l| Loc {
            line: l.line() as u32,
            col: l.column() as u32,
        });
        SyntaxError {
            loc,
            message: first_line(&e.to_string()),
        }
    })
}

/// Like [`parse`], but an unchanged text (same hash) reuses its earlier
/// tree: a reload re-parses only the files that changed.
pub fn parse_cached(text: &str) -> Result<Node, SyntaxError> {
    use std::hash::{Hash, Hasher};
    static TREES: ReloadCache<(u64, usize), Node> = ReloadCache::new(4_096);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    TREES.get_or_try((h.finish(), text.len()), || parse(text))
}

/// A hint for a YAML syntax error: the parser's wording ("mapping values are
/// not allowed", "did not find expected key") rarely says that the usual
/// cause is a line indented more or less than its siblings.
pub fn syntax_hint(message: &str) -> Option<String> {
    const INDENTATION: &[&str] = &[
        "mapping values are not allowed",
        "did not find expected key",
        "did not find expected '-'",
        "while parsing a block",
        "block sequence entries are not allowed",
        "could not find expected ':'",
    ];
    INDENTATION
        .iter()
        .any(|m| message.contains(m))
        .then(|| "hint: check the indentation of this line against the one above".to_owned())
}

/// serde-saphyr's messages carry their own snippet; we print ours.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message).trim();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    // "line 2 column 2: illegal ..." → "illegal ..."
    match line.split_once(": ") {
        Some((head, rest)) if head.starts_with("line ") => rest.to_owned(),
        _ => line.to_owned(),
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<Kind>::deserialize(d)?;
        Ok(Node {
            loc: Loc {
                line: s.referenced.line() as u32,
                col: s.referenced.column() as u32,
            },
            kind: s.value,
        })
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KindVisitor)
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = Kind;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Kind, E> {
        Ok(Kind::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Kind, E> {
        Ok(Kind::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Kind, E> {
        Ok(i64::try_from(v).map_or(Kind::Float(v as f64), Kind::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Kind, E> {
        Ok(Kind::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Kind, E> {
        Ok(Kind::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Kind, E> {
        Ok(Kind::Str(v))
    }
    fn visit_unit<E>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }
    fn visit_none<E>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Kind, D::Error> {
        d.deserialize_any(KindVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = seq.next_element::<Node>()? {
            items.push(n);
        }
        Ok(Kind::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
        let mut entries = Vec::new();
        while let Some(k) = map.next_key::<Node>()? {
            let v = map.next_value::<Node>()?;
            entries.push((k, v));
        }
        Ok(Kind::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_know_where_they_are_and_on_stays_a_string() {
        let n = parse("version: 1\nrules:\n  - on: message_created\n").unwrap();
        let Kind::Map(top) = &n.kind else { panic!() };
        let Kind::Seq(rules) = &top[1].1.kind else {
            panic!()
        };
        let Kind::Map(rule) = &rules[0].kind else {
            panic!()
        };
        assert_eq!(rule[0].0.as_str(), Some("on"));
        assert_eq!(rule[0].1.loc, Loc { line: 3, col: 9 });
    }

    #[test]
    fn offsets_in_a_scalar_map_to_the_file() {
        let at = |text: &str, value: &str, offset: usize| {
            let lines: Vec<&str> = text.lines().collect();
            let col = text.find(['\'', '"', '|']).map_or(4, |c| c + 1) as u32;
            position_in_scalar(&lines, Loc { line: 1, col }, value, offset)
        };
        // Plain: one column per character, multi-byte ones too.
        assert_eq!(
            at("a: héllo x", "héllo x", "héllo ".len()),
            Loc { line: 1, col: 10 }
        );
        // Double-quoted: a \u escape is one character of the value.
        let value = "é (";
        assert_eq!(at("a: \"\\u00e9 (\"", value, 3), Loc { line: 1, col: 12 });
        // A quoted scalar over two lines: the break is one space, indentation skipped.
        assert_eq!(
            at("a: 'one\n   two'", "one two", 4),
            Loc { line: 2, col: 4 }
        );
        // A literal block: by line, after the indentation.
        assert_eq!(at("a: |\n  x\n  yz", "x\nyz\n", 3), Loc { line: 3, col: 4 });
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert_eq!(e.loc, Some(Loc { line: 2, col: 2 }));
        assert!(!e.message.contains("-->"), "{}", e.message);
    }

    #[test]
    fn duplicate_keys_and_deep_nesting_are_rejected() {
        assert!(parse("a: 1\na: 2\n").is_err());
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        assert!(parse(&deep).is_err());
    }
}
