//! The Python venv with the official band-sdk (`tests/compat/setup-venv.sh`).

use std::path::PathBuf;
use std::sync::OnceLock;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the idempotent venv setup once per test process (tests that need it
/// run concurrently in one binary) and returns its python; panics when it
/// fails. The script's output goes straight to the terminal, past the test
/// harness's capture: whoever runs `cargo test` sees what it installs (it
/// says so before installing) and why it failed.
pub fn setup_venv() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(run_setup).clone()
}

/// The venv the script sets up: `$SWITCHBOARD_VENV`, else `.venv`.
fn venv_dir() -> PathBuf {
    std::env::var_os("SWITCHBOARD_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv"))
}

fn run_setup() -> PathBuf {
    let status = std::process::Command::new("bash")
        .arg(repo().join("tests/compat/setup-venv.sh"))
        .stdin(std::process::Stdio::null())
        .status()
        .expect("bash runs");
    assert!(
        status.success(),
        "tests/compat/setup-venv.sh failed ({status}; its output is above): it needs python3 \
         (>= 3.11) with venv and pip, and PyPI on first run"
    );
    venv_dir().join("bin/python")
}
