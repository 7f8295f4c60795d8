//! The workflows folder as hostile input: symlink loops, links to devices,
//! FIFOs, hidden folders (CI config, the Kubernetes ConfigMap layout). Each
//! load runs on its own thread with a deadline, so a hang fails the test
//! instead of stalling the suite.
#![cfg(unix)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use switchboard_workflow::{load_dir, LoadErrors, Ruleset};

/// Generous for a folder of three small files; a hang is caught well before the suite's.
const DEADLINE: Duration = Duration::from_secs(10);

fn rule(name: &str) -> String {
    format!("version: 1\nrules:\n  - name: {name}\n    on: room_added\n    do: []\n")
}

/// `load_dir` on a thread; panics if it has not returned by the deadline.
fn load_within_deadline(dir: &Path) -> Result<Ruleset, LoadErrors> {
    let (tx, rx) = mpsc::channel();
    let dir: PathBuf = dir.to_owned();
    std::thread::spawn(move || {
        let _ = tx.send(load_dir(&dir));
    });
    rx.recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("load_dir did not return within {DEADLINE:?}"))
}

fn ids(rs: &Ruleset) -> Vec<String> {
    rs.rule_ids().map(str::to_owned).collect()
}

#[test]
fn symlink_loops_are_searched_once_and_the_load_ends() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), rule("one")).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    // Two links back to the root per level: a naive walk branches for ever.
    symlink("..", dir.path().join("sub/a")).unwrap();
    symlink("..", dir.path().join("sub/b")).unwrap();
    symlink(".", dir.path().join("self")).unwrap();
    let rs = load_within_deadline(dir.path()).unwrap();
    assert_eq!(ids(&rs), ["a/one"]);
}

#[test]
fn a_link_to_a_device_is_refused_quickly_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), rule("one")).unwrap();
    symlink("/dev/zero", dir.path().join("zero.yaml")).unwrap();
    let err = load_within_deadline(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("zero.yaml") && err.contains("not a regular file"),
        "{err}"
    );
}

#[test]
fn a_fifo_is_refused_without_blocking_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), rule("one")).unwrap();
    let fifo = dir.path().join("pipe.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let err = load_within_deadline(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("pipe.yaml") && err.contains("not a regular file") && err.contains("FIFO"),
        "{err}"
    );
}

#[test]
fn a_file_over_the_cap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut big = rule("one");
    big.push_str(&format!("# {}\n", "x".repeat(4 * 1024 * 1024)));
    std::fs::write(dir.path().join("big.yaml"), big).unwrap();
    let err = load_within_deadline(dir.path()).unwrap_err().to_string();
    assert!(err.contains("big.yaml") && err.contains("4 MiB"), "{err}");
}

#[test]
fn hidden_folders_are_not_searched() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), rule("one")).unwrap();
    std::fs::create_dir_all(dir.path().join(".github/workflows")).unwrap();
    std::fs::write(
        dir.path().join(".github/workflows/ci.yml"),
        "name: ci\non: [push]\njobs:\n  test:\n    runs-on: ubuntu-latest\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("sub/.cache")).unwrap();
    std::fs::write(dir.path().join("sub/.cache/old.yaml"), rule("stale")).unwrap();
    let rs = load_within_deadline(dir.path()).unwrap();
    assert_eq!(ids(&rs), ["a/one"]);
}

#[test]
fn the_configmap_layout_loads_each_file_once() {
    // What Kubernetes mounts for a ConfigMap: the data in a timestamped
    // hidden folder, `..data` pointing at it, and a visible link per key.
    let dir = tempfile::tempdir().unwrap();
    let version = dir.path().join("..2026_01_01_00_00_00.000000001");
    std::fs::create_dir(&version).unwrap();
    std::fs::write(version.join("triage.yaml"), rule("one")).unwrap();
    std::fs::write(version.join("faq.yaml"), rule("two")).unwrap();
    symlink("..2026_01_01_00_00_00.000000001", dir.path().join("..data")).unwrap();
    symlink("..data/triage.yaml", dir.path().join("triage.yaml")).unwrap();
    symlink("..data/faq.yaml", dir.path().join("faq.yaml")).unwrap();
    let rs = load_within_deadline(dir.path()).unwrap();
    assert_eq!(ids(&rs), ["faq/two", "triage/one"]);
    assert_eq!(rs.files(), 2);
}
