//! `matches` patterns: checked when a workflow loads (syntax and size, with
//! the same messages the `regex` crate gives), compiled on first use. A
//! compiled case-insensitive word pattern holds ~20 KiB (its DFA and literal
//! prefilter); with the rule prefilter most patterns of a large folder are
//! never run, so compiling them all would be memory spent on nothing.

use std::sync::{Arc, OnceLock};

use regex::Regex;

use super::reload_cache::ReloadCache;

/// Largest compiled regex (bytes); far above any sane pattern.
pub const SIZE_LIMIT: usize = 1 << 20;

/// A checked pattern, compiled the first time it runs.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    insensitive: bool,
    compiled: Arc<OnceLock<Result<Regex, String>>>,
}

impl Pattern {
    /// Checks `source`; the error reads like the `regex` crate's last line.
    pub fn new(source: &str, insensitive: bool) -> Result<Self, String> {
        Self::located(source, insensitive).map_err(|e| e.message)
    }

    /// Like [`Pattern::new`], the error saying where in `source` the problem is.
    pub fn located(source: &str, insensitive: bool) -> Result<Self, PatternError> {
        check_once(source, insensitive)?;
        Ok(Pattern {
            source: source.to_owned(),
            insensitive,
            compiled: Arc::default(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// `case: insensitive`.
    pub fn insensitive(&self) -> bool {
        self.insensitive
    }

    /// The compiled regex. An error only if compiling failed after the check
    /// passed, which the check is built to prevent (it builds the same NFAs
    /// the `regex` crate does); the caller must treat it as a failure, never
    /// as "no match". The error is remembered: the pattern is not compiled again.
    pub fn regex(&self) -> Result<&Regex, String> {
        self.compiled
            .get_or_init(|| {
                compiled(&self.source, self.insensitive).map_err(|e| {
                    let e = last_line(&e.to_string());
                    tracing::error!(pattern = %self.source, error = %e, "regex does not compile although its check passed");
                    format!("pattern `{}` does not compile: {e}", self.source)
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct PatternError {
    /// What is wrong, like the `regex` crate's last line.
    pub message: String,
    /// Byte offset in the pattern of the problem, when it has one place.
    pub offset: Option<usize>,
}

/// [`check`], remembered for patterns that passed: a reload of a folder
/// does not check its unchanged patterns again. Cleared past a bound.
fn check_once(source: &str, insensitive: bool) -> Result<(), PatternError> {
    static PASSED: ReloadCache<(String, bool), ()> = ReloadCache::new(50_000);
    PASSED.get_or_try((source.to_owned(), insensitive), || {
        check(source, insensitive)
    })
}

/// Syntax (the parser `regex` uses, so the same messages) and the compiled
/// size: the two NFAs `regex` builds and fails on, forward (with captures)
/// and reverse (without; it can be the larger one: `(?s:.){2000}`), each
/// configured as `regex` does, against the same limit. Building the regex
/// itself would cost several times more per pattern at load.
fn check(source: &str, insensitive: bool) -> Result<(), PatternError> {
    use regex_automata::nfa::thompson::{self, WhichCaptures};
    let hir = regex_syntax::ParserBuilder::new()
        .case_insensitive(insensitive)
        .build()
        .parse(source)
        .map_err(|e| {
            let offset = match &e {
                regex_syntax::Error::Parse(e) => Some(e.span().start.offset),
                regex_syntax::Error::Translate(e) => Some(e.span().start.offset),
                _ => None,
            };
            PatternError {
                message: last_line(&e.to_string()),
                offset,
            }
        })?;
    let config = thompson::Config::new()
        .nfa_size_limit(Some(SIZE_LIMIT))
        .shrink(false);
    let reverse = config
        .clone()
        .which_captures(WhichCaptures::None)
        .reverse(true);
    for config in [config, reverse] {
        thompson::Compiler::new()
            .configure(config)
            .build_from_hir(&hir)
            .map_err(|_| PatternError {
                message: format!("compiled regex exceeds size limit of {SIZE_LIMIT} bytes"),
                offset: None,
            })?;
    }
    Ok(())
}

/// The last line of a multi-line regex error, without its `error: ` prefix.
fn last_line(text: &str) -> String {
    let line = text.lines().last().unwrap_or_default().trim();
    line.strip_prefix("error: ").unwrap_or(line).to_owned()
}

/// Compiled regexes by (pattern, case-insensitive), shared across loads: a
/// reload does not recompile a pattern that already ran. Cleared when it
/// grows past a bound.
fn compiled(pattern: &str, insensitive: bool) -> Result<Regex, regex::Error> {
    static COMPILED: ReloadCache<(String, bool), Regex> = ReloadCache::new(20_000);
    COMPILED.get_or_try((pattern.to_owned(), insensitive), || {
        regex::RegexBuilder::new(pattern)
            .case_insensitive(insensitive)
            .size_limit(SIZE_LIMIT)
            .build()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_like_the_regex_crate_and_compiles_on_use() {
        // Built at run time: clippy rightly refuses a literal bad regex.
        let unclosed = String::from("(") + "unclosed";
        let bad = Pattern::new(&unclosed, false).unwrap_err();
        let theirs = regex::Regex::new(&unclosed).unwrap_err().to_string();
        assert_eq!(bad, last_line(&theirs));
        let huge = Pattern::new(r"\w{1000}{1000}", false).unwrap_err();
        assert!(huge.contains("size limit"), "{huge}");
        let p = Pattern::new(r"(?P<n>\d+)", true).unwrap();
        assert!(p.compiled.get().is_none(), "not compiled before use");
        assert_eq!(&p.regex().unwrap().captures("a 42").unwrap()["n"], "42");
        // Clones share the compiled regex.
        assert!(p.clone().compiled.get().is_some());
    }
}
