//! Finding and reading workflow files: every `*.yaml` / `*.yml` under a
//! folder (recursively, in path order, hidden entries skipped) except
//! `*.test.yaml`, each parsed and compiled; all errors of all files are
//! collected before anything runs.

use std::collections::{HashMap, HashSet};
use std::io::Read;
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
                    hint: yaml::syntax_hint(&e.message),
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
    walk_folder(dir, is_workflow)
}

/// Files under `dir` whose path `keep` accepts, sorted by path. The folder is
/// hostile input: hidden entries (`.git`, `.github`, a ConfigMap's `..data`)
/// are skipped, each real folder is searched once however many links lead to
/// it (so symlink loops end), and kept entries that are not regular files
/// are still listed so that [`read`] reports them by name.
pub fn walk_folder(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>, LoadError> {
    let folder_error = |at: &Path, e: std::io::Error| {
        LoadError::file(at, format!("cannot read the workflows folder: {e}"))
    };
    let mut visited = HashSet::new();
    visited.insert(std::fs::canonicalize(dir).map_err(|e| folder_error(dir, e))?);
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries = std::fs::read_dir(&folder).map_err(|e| folder_error(&folder, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| folder_error(&folder, e))?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            // Follows links: a link to a folder is searched, one to a file read.
            let is_dir = std::fs::metadata(&path).is_ok_and(|m| m.is_dir());
            if !is_dir {
                if keep(&path) {
                    out.push(path);
                }
                continue;
            }
            match std::fs::canonicalize(&path) {
                Ok(real) if visited.insert(real.clone()) => pending.push(path),
                Ok(real) => tracing::warn!(
                    path = %path.display(), target = %real.display(),
                    "skipping a folder already searched (a symlink loop or a second link to it)"
                ),
                Err(e) => return Err(folder_error(&path, e)),
            }
        }
    }
    out.sort();
    Ok(out)
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

/// Reads a workflow-folder file: regular files only (a FIFO would block, a
/// device never end), size-capped while reading (metadata can lie), UTF-8
/// checked, errors with a position.
pub fn read(path: &Path) -> Result<String, LoadError> {
    let cannot = |e: std::io::Error| LoadError::file(path, format!("cannot read: {e}"));
    let meta = std::fs::metadata(path).map_err(cannot)?;
    regular(path, &meta)?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large(path));
    }
    let file = open_without_blocking(path).map_err(cannot)?;
    // The path may have been swapped since the check: check what was opened.
    let meta = file.metadata().map_err(cannot)?;
    regular(path, &meta)?;
    let mut bytes = Vec::with_capacity(meta.len().min(MAX_FILE_BYTES) as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(path));
    }
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

fn too_large(path: &Path) -> LoadError {
    LoadError::file(
        path,
        format!("file is larger than {} MiB", MAX_FILE_BYTES >> 20),
    )
}

/// Refuses anything but a regular file, saying what it is.
fn regular(path: &Path, meta: &std::fs::Metadata) -> Result<(), LoadError> {
    if meta.is_file() {
        return Ok(());
    }
    Err(LoadError::file(
        path,
        format!(
            "not a regular file ({}); only regular files (or links to them) are read",
            kind(&meta.file_type())
        ),
    ))
}

#[cfg(unix)]
fn kind(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_dir() {
        "a folder"
    } else {
        "not a file"
    }
}
#[cfg(not(unix))]
fn kind(t: &std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a folder"
    } else {
        "not a file"
    }
}

/// Opens for reading; a FIFO swapped in after the check opens at once
/// instead of waiting for a writer (and is then refused).
#[cfg(unix)]
fn open_without_blocking(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}
#[cfg(not(unix))]
fn open_without_blocking(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}
