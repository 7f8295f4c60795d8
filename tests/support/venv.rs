//! The Python venv with the official band-sdk (`tests/compat/setup-venv.sh`).

use std::path::PathBuf;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the idempotent venv setup and returns its python; panics with the
/// setup's output when it fails.
pub fn setup_venv() -> PathBuf {
    let out = std::process::Command::new("bash")
        .arg(repo().join("tests/compat/setup-venv.sh"))
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "setting up the Python venv failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    repo().join(".venv/bin/python")
}
