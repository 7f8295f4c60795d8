//! The scripts that install what some tests need say what they will install
//! before installing it: `tests/compat/setup-venv.sh` (a Python venv with the
//! official SDK from PyPI), `tests/console/setup.sh` (Chromium, node and
//! playwright-core) and `tests/redis/setup.sh` (Debian's redis-server). With
//! `--plan` they say it and install nothing. No network: the install steps
//! are either not reached or run against a stub.

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

/// `tests/redis/setup.sh` run by the absolute path of bash, with `path` as
/// its whole PATH (so a PATH without redis-server is possible).
fn redis_script(path: &str) -> tokio::process::Command {
    let bash = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("bash"))
        .find(|file| file.is_file())
        .expect("bash on PATH");
    let mut cmd = tokio::process::Command::new(bash);
    cmd.arg(repo().join("tests/redis/setup.sh"))
        .env("PATH", path)
        .kill_on_drop(true);
    cmd
}

/// A folder of stub commands for the redis script, as (name, stdout, exit
/// code): each records `<name> <args>` in `ran`; one without stdout of its
/// own prints `STUB <name> <args>`.
fn stubs(dir: &Path, commands: &[(&str, &str, i32)]) -> std::path::PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let ran = dir.join("ran");
    for (name, output, code) in commands {
        let say = if output.is_empty() {
            format!("echo \"STUB {name} $*\"")
        } else {
            format!("echo '{output}'")
        };
        let stub = bin.join(name);
        std::fs::write(
            &stub,
            format!(
                "#!/bin/sh\necho \"{name} $*\" >>'{}'\n{say}\nexit {code}\n",
                ran.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

/// What the stubs recorded; empty when none ran.
fn stubs_ran(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("ran")).unwrap_or_default()
}

/// With `redis-server` on PATH (a stub here, so the machine's own does not
/// matter) it says which one and installs nothing.
#[tokio::test]
async fn redis_setup_plan_with_the_server_present_installs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bin = stubs(
        dir.path(),
        &[
            ("redis-server", "Redis server v=9.9.9 sha=00000000:0", 0),
            ("apt-get", "", 0),
            ("apt-cache", "", 0),
            ("id", "0", 0),
        ],
    );
    for args in [&["--plan"][..], &[]] {
        let out = output_within(redis_script(&bin.display().to_string()).args(args), QUICK).await;
        let said = text(&out);
        assert!(out.status.success(), "{args:?}: {said}");
        let present = format!(
            "redis-server: present ({}, v=9.9.9)",
            bin.join("redis-server").display()
        );
        assert!(said.contains(&present), "{args:?}: {said}");
        assert!(!said.contains("will install"), "{args:?}: {said}");
    }
    assert!(
        !stubs_ran(dir.path()).contains("apt-"),
        "apt ran with redis-server present: {}",
        stubs_ran(dir.path())
    );
}

#[tokio::test]
async fn redis_setup_plan_without_the_server_names_it_and_installs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bin = stubs(
        dir.path(),
        &[("apt-get", "", 0), ("apt-cache", "", 0), ("id", "0", 0)],
    );
    let out = output_within(
        redis_script(&bin.display().to_string()).arg("--plan"),
        QUICK,
    )
    .await;
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("redis-server: will install (apt-get install redis-server; needs root)"),
        "{said}"
    );
    assert!(
        said.contains("--plan: nothing installed"),
        "says it installed nothing: {said}"
    );
    assert_eq!(stubs_ran(dir.path()), "", "--plan ran commands: {said}");
}

/// As root, the real run names redis-server before apt-get runs; here apt-get
/// is a stub that fails, so nothing is installed either way. The script's
/// stdout and the stubs' records go to one file, in the order they happened
/// (the script hides apt-get's own stdout).
#[tokio::test]
async fn redis_setup_says_what_it_installs_before_installing() {
    let dir = tempfile::tempdir().unwrap();
    let bin = stubs(
        dir.path(),
        &[("apt-get", "", 1), ("apt-cache", "", 0), ("id", "0", 0)],
    );
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("ran"))
        .unwrap();
    let mut cmd = redis_script(&bin.display().to_string());
    cmd.stdout(log).stderr(std::process::Stdio::piped());
    let out = tokio::time::timeout(QUICK, cmd.spawn().unwrap().wait_with_output())
        .await
        .expect("tests/redis/setup.sh finishes")
        .unwrap();
    let said = stubs_ran(dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the stub fails the install: {said}{stderr}"
    );
    let named = said
        .find("redis-server: will install")
        .unwrap_or_else(|| panic!("redis-server not named: {said}{stderr}"));
    let installing = said
        .find("apt-get install -y -qq --no-install-recommends redis-server")
        .unwrap_or_else(|| panic!("apt-get install never ran: {said}{stderr}"));
    assert!(named < installing, "named after installing began: {said}");
}

/// Not root and redis-server missing: a clear failure that says how to
/// install it, and no apt-get.
#[tokio::test]
async fn redis_setup_without_root_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let bin = stubs(
        dir.path(),
        &[("apt-get", "", 0), ("apt-cache", "", 0), ("id", "1000", 0)],
    );
    let out = output_within(&mut redis_script(&bin.display().to_string()), QUICK).await;
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs root"), "{said}");
    assert!(stderr.contains("apt-get install redis-server"), "{said}");
    assert!(
        !stubs_ran(dir.path()).contains("apt-"),
        "apt ran without root: {}",
        stubs_ran(dir.path())
    );
}
