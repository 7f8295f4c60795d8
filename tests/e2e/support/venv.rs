//! The Python venv with the official band-sdk (`tests/compat/setup-venv.sh`).

use std::path::PathBuf;
use std::sync::OnceLock;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the idempotent venv setup once per test process (tests that need it
/// run concurrently in one binary) and returns its python; panics with the
/// setup's output when it fails.
pub fn setup_venv() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(run_setup).clone()
}

fn run_setup() -> PathBuf {
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
