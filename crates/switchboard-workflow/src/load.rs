//! Finding and reading workflow files: every `*.yaml` / `*.yml` under a
//! folder (recursively, in path order) except `*.test.yaml`, each parsed and
//! compiled; all errors of all files are collected before anything runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::compile::compile_file;
use super::error::{LoadError, LoadErrors};
use super::ruleset::Ruleset;
use super::template::Templates;
use super::yaml::{self, Loc};

/// Largest workflow file read (bytes).
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Loads and compiles every workflow under `dir`.
pub fn load_dir(dir: &Path) -> Result<Ruleset, LoadErrors> {
    let files = workflow_files(dir).map_err(|e| LoadErrors::new(vec![e]))?;
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    for path in files {
        match read(&path) {
            Ok(text) => sources.push((path, text)),
            Err(e) => errors.push(e),
        }
    }
    let named: Vec<(&Path, &str)> = sources
        .iter()
        .map(|(p, t)| (p.as_path(), t.as_str()))
        .collect();
    let loaded = load_sources(&named);
    drop(named);
    drop(sources);
    release_scratch();
    match loaded {
        Ok(rs) if errors.is_empty() => Ok(rs),
        Ok(_) => Err(LoadErrors::new(errors)),
        Err(more) => {
            errors.extend(more.errors().iter().cloned());
            errors.sort_by(|a, b| a.file.cmp(&b.file).then(a.loc.line.cmp(&b.loc.line)));
            Err(LoadErrors::new(errors))
        }
    }
}

/// Hands the heap that loading used and freed back to the system: parsing a
/// large folder peaks well above what the ruleset keeps, and glibc's
/// allocator would otherwise hold that peak as the agent's resident size.
fn release_scratch() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages; it touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Loads one workflow from text (`name` stands for its path in errors and ids).
pub fn load_str(name: &str, text: &str) -> Result<Ruleset, LoadErrors> {
    load_sources(&[(Path::new(name), text)])
}

/// Compiles several files into one ruleset.
pub fn load_sources(files: &[(&Path, &str)]) -> Result<Ruleset, LoadErrors> {
    let mut templates = Templates::new();
    let mut errors = Vec::new();
    let mut rules = Vec::new();
    for (path, text) in files {
        match yaml::parse_cached(text) {
            Ok(root) => rules.extend(compile_file(path, text, &root, &mut templates, &mut errors)),
            Err(e) => {
                let loc = e.loc.unwrap_or_default();
                let source_line = (loc.line > 0)
                    .then(|| text.lines().nth(loc.line as usize - 1).map(str::to_owned))
                    .flatten();
                errors.push(LoadError {
                    file: path.to_path_buf(),
                    loc,
                    message: format!("invalid YAML: {}", e.message),
                    hint: None,
                    source_line,
                });
            }
        }
    }
    // The same id from two files (same stem in two folders).
    let mut seen: HashMap<&str, &Path> = HashMap::new();
    for r in &rules {
        if let Some(first) = seen.insert(r.id.as_str(), r.file.as_path()) {
            let line = files
                .iter()
                .find(|(p, _)| *p == r.file.as_path())
                .and_then(|(_, t)| t.lines().nth(r.loc.line.saturating_sub(1) as usize));
            errors.push(LoadError {
                file: r.file.clone(),
                loc: r.loc,
                message: format!("duplicate rule id `{}` (also in {})", r.id, first.display()),
                hint: Some("rename the rule or the file".into()),
                source_line: line.map(str::to_owned),
            });
        }
    }
    if !errors.is_empty() {
        return Err(LoadErrors::new(errors));
    }
    Ok(Ruleset::new(rules, templates, files.len()))
}

/// Workflow files under `dir`, sorted by path.
pub fn workflow_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    walk(dir, &mut out)
        .map_err(|e| LoadError::file(dir, format!("cannot read the workflows folder: {e}")))?;
    out.sort();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if is_workflow(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// `*.yaml` / `*.yml`, but not tests (`*.test.yaml`) or hidden files.
pub fn is_workflow(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
    let test = name.ends_with(".test.yaml") || name.ends_with(".test.yml");
    yaml && !test && !name.starts_with('.')
}

/// Reads a workflow-folder file: size-capped, UTF-8 checked, errors with a position.
pub fn read(path: &Path) -> Result<String, LoadError> {
    let meta =
        std::fs::metadata(path).map_err(|e| LoadError::file(path, format!("cannot read: {e}")))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(LoadError::file(
            path,
            format!("file is larger than {} MiB", MAX_FILE_BYTES >> 20),
        ));
    }
    let bytes =
        std::fs::read(path).map_err(|e| LoadError::file(path, format!("cannot read: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = good.iter().filter(|&&b| b == b'\n').count() as u32 + 1;
        let col = good.iter().rev().take_while(|&&b| b != b'\n').count() as u32 + 1;
        LoadError {
            file: path.to_owned(),
            loc: Loc { line, col },
            message: "the file is not valid UTF-8".into(),
            hint: None,
            source_line: None,
        }
    })
}
