//! Load errors: each names file, line and column, shows the line with a caret
//! and, for a misspelt key, the key that was probably meant.

use std::fmt;
use std::path::{Path, PathBuf};

use super::yaml::Loc;

/// One problem in one workflow file.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadError {
    /// The file.
    pub file: PathBuf,
    /// Where in it (line 0 when the whole file is concerned).
    pub loc: Loc,
    /// What is wrong.
    pub message: String,
    /// A hint under the caret, e.g. "did you mean `title`?".
    pub hint: Option<String>,
    /// The offending line's text.
    pub source_line: Option<String>,
}

impl LoadError {
    /// An error about a whole file (unreadable, not UTF-8).
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        LoadError {
            file: file.to_owned(),
            loc: Loc::default(),
            message: message.into(),
            hint: None,
            source_line: None,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        if self.loc.line == 0 {
            return writeln!(f, "  --> {}", self.file.display());
        }
        writeln!(
            f,
            "  --> {}:{}:{}",
            self.file.display(),
            self.loc.line,
            self.loc.col
        )?;
        let Some(text) = &self.source_line else {
            return match &self.hint {
                Some(h) => writeln!(f, "  = {h}"),
                None => Ok(()),
            };
        };
        let num = self.loc.line.to_string();
        let pad = " ".repeat(num.len());
        // Tabs would shift the caret; show them as single spaces.
        let text = text.replace('\t', " ");
        let caret_at = text
            .chars()
            .take(self.loc.col.saturating_sub(1) as usize)
            .count();
        writeln!(f, "{pad} |")?;
        writeln!(f, "{num} | {text}")?;
        write!(f, "{pad} | {}^", " ".repeat(caret_at))?;
        match &self.hint {
            Some(h) => writeln!(f, " {h}"),
            None => writeln!(f),
        }
    }
}

/// Every error found while loading a folder.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LoadErrors {
    errors: Vec<LoadError>,
}

impl LoadErrors {
    /// From a list (not empty).
    pub fn new(errors: Vec<LoadError>) -> Self {
        LoadErrors { errors }
    }

    /// The errors, in file order.
    pub fn errors(&self) -> &[LoadError] {
        &self.errors
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
}

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

/// "did you mean `x`?" when one of `known` is close to `got`.
pub fn did_you_mean<'a>(got: &str, known: impl IntoIterator<Item = &'a str>) -> Option<String> {
    closest(got, known).map(|k| format!("did you mean `{k}`?"))
}

/// The one of `known` closest to `got`, when it is close enough to be what was meant.
pub fn closest<'a>(got: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::jaro_winkler(got, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_a_compiler() {
        let e = LoadError {
            file: "workflows/triage.yaml".into(),
            loc: Loc { line: 12, col: 7 },
            message: "unknown key `tittle` in rule".into(),
            hint: did_you_mean("tittle", ["title", "name"]),
            source_line: Some("      tittle: foo".into()),
        };
        assert_eq!(
            e.to_string(),
            "error: unknown key `tittle` in rule\n  --> workflows/triage.yaml:12:7\n   |\n12 |       tittle: foo\n   |       ^ did you mean `title`?\n"
        );
    }

    #[test]
    fn no_suggestion_for_far_fetched_keys() {
        assert_eq!(did_you_mean("zzz", ["name", "description"]), None);
    }
}
