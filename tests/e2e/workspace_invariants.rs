//! The invariants ARCHITECTURE.md states that a crate boundary holds, checked
//! against `cargo metadata`: what each crate may (not) depend on. And the
//! repository is self-contained: no file points at notes outside it.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use serde_json::Value;

/// Crates that do networking (or serve it); the engine and the language must use none.
const NETWORKING: &[&str] = &[
    "reqwest",
    "hyper",
    "axum",
    "tokio-tungstenite",
    "tungstenite",
    "tokio",
];

/// The normal (not dev, not build) dependency closure of every workspace package, by name.
fn closures() -> HashMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Only this machine's platform: the others' crates may not be downloaded.
    let rustc = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("rustc -vV names the host");
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", &host])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    // Direct normal dependencies of each package id.
    let mut direct: HashMap<&str, Vec<&str>> = HashMap::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let id = node["id"].as_str().unwrap();
        let deps = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kind"].is_null())
            })
            .map(|d| d["pkg"].as_str().unwrap())
            .collect();
        direct.insert(id, deps);
    }
    let mut result = HashMap::new();
    for member in meta["workspace_members"].as_array().unwrap() {
        let member = member.as_str().unwrap();
        let mut seen = BTreeSet::new();
        let mut stack = vec![member];
        while let Some(id) = stack.pop() {
            for &dep in direct.get(id).map(Vec::as_slice).unwrap_or(&[]) {
                if seen.insert(names[dep].to_string()) {
                    stack.push(dep);
                }
            }
        }
        result.insert(names[member].to_string(), seen);
    }
    result
}

fn assert_none_of(closures: &HashMap<String, BTreeSet<String>>, krate: &str, banned: &[&str]) {
    let deps = closures
        .get(krate)
        .unwrap_or_else(|| panic!("{krate} is not a workspace member"));
    let found: Vec<&&str> = banned.iter().filter(|b| deps.contains(**b)).collect();
    assert!(
        found.is_empty(),
        "{krate} must not depend on {found:?} (directly or through another crate)"
    );
}

#[test]
fn the_engine_and_the_language_do_no_networking() {
    let c = closures();
    assert_none_of(&c, "switchboard-engine", NETWORKING);
    assert_none_of(&c, "switchboard-workflow", NETWORKING);
    assert_none_of(&c, "band-wire", NETWORKING);
}

#[test]
fn layers_depend_only_downwards() {
    let c = closures();
    // The sandbox serves the wire types; it knows nothing of agents or rules.
    assert_none_of(
        &c,
        "band-sandbox",
        &[
            "switchboard",
            "switchboard-engine",
            "switchboard-workflow",
            "band-client",
        ],
    );
    assert_none_of(
        &c,
        "band-client",
        &[
            "switchboard",
            "switchboard-engine",
            "switchboard-workflow",
            "band-sandbox",
        ],
    );
    assert_none_of(
        &c,
        "switchboard-engine",
        &["switchboard", "band-wire", "band-client", "band-sandbox"],
    );
    assert_none_of(
        &c,
        "switchboard-workflow",
        &[
            "switchboard",
            "switchboard-engine",
            "band-wire",
            "band-client",
            "band-sandbox",
        ],
    );
    assert_none_of(
        &c,
        "band-wire",
        &[
            "switchboard",
            "switchboard-engine",
            "switchboard-workflow",
            "band-client",
            "band-sandbox",
        ],
    );
}

#[test]
fn no_file_refers_to_notes_outside_the_repository() {
    // Spelled in two parts so this file does not match itself.
    let needle = format!("{}/", "shared");
    let out = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run git ls-files");
    assert!(out.status.success(), "git ls-files failed");
    let mut hits = Vec::new();
    for path in out.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let path = String::from_utf8_lossy(path).into_owned();
        let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(&path);
        // Binary files (screenshots) and lock files cannot point at notes.
        let Ok(text) = std::fs::read_to_string(&full) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            if line.contains(&needle) {
                hits.push(format!("{path}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "files refer to notes outside the repository:\n{}",
        hits.join("\n")
    );
}
