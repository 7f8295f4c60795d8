//! Reuse across files: `include: [common/support.yaml]` brings in the named
//! sections ([`MERGED`]) of other files of the workflows folder, and
//! `kind: library` marks a file that only holds such names. This module
//! resolves the includes of one file (paths, the folder's bounds, cycles)
//! into the names it sees, each remembering the file it was written in so
//! that errors about it point there.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use super::error::{did_you_mean, LoadError};
use super::yaml::{Kind, Loc, Node};

/// The top-level sections an include brings in, merged by name (the
/// including file's own names first, then each include's in list order;
/// the first of a name wins). A new named section (e.g. `secrets`) is one
/// more entry here, read in `compile` with `Names::section`.
pub const MERGED: &[&str] = &["vars", "conditions", "actions", "secrets"];

/// One parsed file of the folder.
pub struct Source<'a> {
    /// Its path, as errors show it.
    pub path: &'a Path,
    /// Its path inside the workflows folder (what includes name).
    pub rel: PathBuf,
    /// Its text (hashed into its rules' `source_hash`).
    pub text: &'a str,
    /// Its lines, for the source line under an error.
    pub lines: Vec<&'a str>,
    /// Its tree (none when it is not valid YAML; reported elsewhere).
    pub root: Option<Node>,
}

impl Source<'_> {
    /// `kind: library`: no rules, not a workflow of its own.
    pub fn is_library(&self) -> bool {
        self.field("kind").and_then(Node::as_str) == Some("library")
    }

    /// A top-level value.
    pub fn field(&self, key: &str) -> Option<&Node> {
        match &self.root.as_ref()?.kind {
            Kind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// An error at `loc` in this file.
    pub fn error(&self, loc: Loc, message: String, hint: Option<String>) -> LoadError {
        let source_line = (loc.line > 0)
            .then(|| self.lines.get(loc.line as usize - 1).map(|l| l.to_string()))
            .flatten();
        LoadError {
            file: self.path.to_owned(),
            loc,
            message,
            hint,
            source_line,
        }
    }
}

/// One name seen by a file: where it is written and its value.
#[derive(Clone, Copy)]
pub struct Entry<'n> {
    /// The file it is written in (an index into the sources).
    pub origin: usize,
    /// Its key node.
    pub key: &'n Node,
    /// Its value node.
    pub value: &'n Node,
}

/// The names one file sees, per section of [`MERGED`], in order.
#[derive(Default)]
pub struct Names<'n> {
    sections: Vec<(&'static str, Vec<(String, Entry<'n>)>)>,
}

impl<'n> Names<'n> {
    /// The names of `section` (one of [`MERGED`]), first wins already applied.
    pub fn section(&self, section: &str) -> &[(String, Entry<'n>)] {
        self.sections
            .iter()
            .find(|(s, _)| *s == section)
            .map_or(&[], |(_, list)| list.as_slice())
    }

    /// The entry named `name` in `section`.
    pub fn get(&self, section: &str, name: &str) -> Option<&Entry<'n>> {
        self.section(section)
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, e)| e)
    }

    fn add(&mut self, section: &'static str, name: String, entry: Entry<'n>) {
        let at = match self.sections.iter().position(|(s, _)| *s == section) {
            Some(at) => at,
            None => {
                self.sections.push((section, Vec::new()));
                self.sections.len() - 1
            }
        };
        let list = &mut self.sections[at].1;
        if !list.iter().any(|(n, _)| *n == name) {
            list.push((name, entry));
        }
    }
}

/// Resolves the includes of `sources[of]`: the names it sees. Problems go to
/// `errors`, in the file whose `include:` is wrong; `cycles` remembers the
/// cycles reported so that each is reported once per load.
pub fn names<'n>(
    sources: &'n [Source<'n>],
    folder: &Path,
    of: usize,
    cycles: &mut HashSet<Vec<usize>>,
    errors: &mut Vec<LoadError>,
) -> Names<'n> {
    let mut out = Names::default();
    let mut stack = vec![of];
    collect(sources, folder, of, &mut stack, &mut out, cycles, errors);
    out
}

fn collect<'n>(
    sources: &'n [Source<'n>],
    folder: &Path,
    at: usize,
    stack: &mut Vec<usize>,
    out: &mut Names<'n>,
    cycles: &mut HashSet<Vec<usize>>,
    errors: &mut Vec<LoadError>,
) {
    let src = &sources[at];
    for &section in MERGED {
        if let Some(Node {
            kind: Kind::Map(entries),
            ..
        }) = src.field(section)
        {
            for (k, v) in entries {
                let entry = Entry {
                    origin: at,
                    key: k,
                    value: v,
                };
                out.add(section, k.key_text(), entry);
            }
        }
    }
    let Some(list) = src.field("include") else {
        return;
    };
    let items: Vec<&Node> = match &list.kind {
        Kind::Seq(items) => items.iter().collect(),
        Kind::Str(_) => vec![list],
        _ => {
            let msg = format!(
                "`include` must be a list of file paths, found {}",
                list.describe()
            );
            errors.push(src.error(list.loc, msg, None));
            return;
        }
    };
    for item in items {
        let Some(written) = item.as_str() else {
            let msg = format!("an include must be a file path, found {}", item.describe());
            errors.push(src.error(item.loc, msg, None));
            continue;
        };
        let target = match resolve(sources, folder, at, written) {
            Ok(t) => t,
            Err((message, hint)) => {
                errors.push(src.error(item.loc, message, hint));
                continue;
            }
        };
        if let Some(first) = stack.iter().position(|&s| s == target) {
            let mut members: Vec<usize> = stack[first..].to_vec();
            members.sort_unstable();
            if cycles.insert(members) {
                let chain: Vec<String> = stack[first..]
                    .iter()
                    .chain([&target])
                    .map(|&i| sources[i].rel.display().to_string())
                    .collect();
                let msg = format!("include cycle: {}", chain.join(" → "));
                let hint = Some("move what both need into a third file both include".into());
                errors.push(src.error(item.loc, msg, hint));
            }
            continue;
        }
        stack.push(target);
        collect(sources, folder, target, stack, out, cycles, errors);
        stack.pop();
    }
}

/// The source an include names: a path relative to the including file that
/// stays inside the workflows folder (also once links are followed).
fn resolve(
    sources: &[Source<'_>],
    folder: &Path,
    from: usize,
    written: &str,
) -> Result<usize, (String, Option<String>)> {
    let outside = |why: &str| {
        (
            format!("`{written}` is outside the workflows folder ({why})"),
            Some("an include is a path relative to this file, inside the workflows folder".into()),
        )
    };
    let base = sources[from].rel.parent().unwrap_or(Path::new(""));
    let mut rel = PathBuf::new();
    for part in base.join(written).components() {
        match part {
            Component::Normal(p) => rel.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if !rel.pop() {
                    return Err(outside("it climbs above the folder"));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(outside("an absolute path"));
            }
        }
    }
    let Some(found) = sources.iter().position(|s| s.rel == rel) else {
        let known: Vec<String> = sources
            .iter()
            .map(|s| s.rel.display().to_string())
            .collect();
        let hint = did_you_mean(&rel.display().to_string(), known.iter().map(String::as_str));
        return Err((
            format!(
                "no workflow file `{}` in the workflows folder",
                rel.display()
            ),
            hint,
        ));
    };
    // Only a real folder is checked for links (in-memory sources have none).
    if !folder.as_os_str().is_empty() {
        if let (Ok(top), Ok(real)) = (
            std::fs::canonicalize(folder),
            std::fs::canonicalize(folder.join(&rel)),
        ) {
            if !real.starts_with(&top) {
                return Err(outside("a link to a file elsewhere"));
            }
        }
    }
    Ok(found)
}

/// `path` inside `folder` (the path itself when it is not under it).
pub fn relative(folder: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(folder).unwrap_or(path).to_path_buf()
}
