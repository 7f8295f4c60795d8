//! The scripts that install what some tests need say what they will install
//! before installing it: `tests/compat/setup-venv.sh` (a Python venv with the
//! official SDK from PyPI) and `tests/console/setup.sh` (Chromium, node and
//! playwright-core). With `--plan` they say it and install nothing. No
//! network: the install steps are either not reached or run against a stub.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::support::cli::output_within;
use crate::support::venv::repo;

/// Bound for a script that installs nothing.
const QUICK: Duration = Duration::from_secs(30);

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The pinned requirements, as `name==version` lines.
fn requirements() -> Vec<String> {
    std::fs::read_to_string(repo().join("tests/compat/requirements.txt"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

fn venv_script(venv: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg(repo().join("tests/compat/setup-venv.sh"))
        .env("SWITCHBOARD_VENV", venv)
        .kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn setup_venv_plan_names_every_package_and_installs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let venv = dir.path().join("venv");
    let out = output_within(venv_script(&venv).arg("--plan"), QUICK).await;
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains(&venv.display().to_string()), "{said}");
    assert!(said.contains("PyPI"), "where from: {said}");
    for package in requirements() {
        assert!(said.contains(&package), "`{package}` not named: {said}");
    }
    assert!(!venv.exists(), "--plan created the venv");
}

/// The real run says the same before its first install step: here `python3`
/// is a stub that fails, so nothing is installed either way.
#[tokio::test]
async fn setup_venv_says_what_it_installs_before_installing() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let stub = bin.join("python3");
    std::fs::write(&stub, "#!/bin/sh\necho \"STUB python3 $*\"\nexit 1\n").unwrap();
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let venv = dir.path().join("venv");
    let out = output_within(venv_script(&venv).env("PATH", path), QUICK).await;
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "the stub fails the install: {said}");
    let stub_ran = said
        .find("STUB python3")
        .unwrap_or_else(|| panic!("the stub never ran: {said}{}", text(&out)));
    for package in requirements() {
        let named = said
            .find(&package)
            .unwrap_or_else(|| panic!("`{package}` not named: {said}"));
        assert!(
            named < stub_ran,
            "`{package}` named after installing began: {said}"
        );
    }
}

#[tokio::test]
async fn console_setup_plan_names_every_part_and_installs_nothing() {
    let out = output_within(
        tokio::process::Command::new("bash")
            .arg(repo().join("tests/console/setup.sh"))
            .arg("--plan")
            .kill_on_drop(true),
        QUICK,
    )
    .await;
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    for part in ["chromium", "node", "playwright-core"] {
        assert!(said.contains(part), "`{part}` not named: {said}");
    }
    // What the lock pins is what it names.
    let lock: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/console/package-lock.json")).unwrap(),
    )
    .unwrap();
    let version = lock["packages"]["node_modules/playwright-core"]["version"]
        .as_str()
        .unwrap();
    assert!(said.contains(version), "playwright-core {version}: {said}");
    assert!(
        said.contains("--plan: nothing installed"),
        "says it installed nothing: {said}"
    );
}
