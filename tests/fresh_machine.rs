//! A new user's first hour: on a machine with none of the tools (a PATH of
//! only the basics), `loadmaster doctor` names each missing one with the
//! command that installs it, and the README's quick-start `run` stops at
//! once with that message: in the pre-flight, before any build (exit 1);
//! a plan that names no engine, with none installed, before anything
//! starts (exit 3).

mod support;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Output;
use support::{TempDir, engines_under_test, loadmaster_command};

/// A PATH directory of symlinks to only `programs` (found on this PATH).
fn bare_path(dir: &Path, programs: &[&str]) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for program in programs {
        let found = std::env::split_paths(&std::env::var_os("PATH").unwrap())
            .map(|d| d.join(program))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("{program} is not on this PATH"));
        symlink(found, bin.join(program)).unwrap();
    }
    bin
}

fn with_path(bin: &Path, dir: &Path, args: &[&str]) -> Output {
    loadmaster_command(args)
        .env("PATH", bin)
        .env("HOME", dir)
        .env("TMPDIR", dir)
        .env_remove("LOADMASTER_SKIP_PREFLIGHT")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run loadmaster")
}

const QUICK_START: &str = "examples/operator-e2e/loadmaster.yaml";

/// `run` of `plan` with its runs under `dir`, on the PATH of `bin` alone.
fn run_plan(bin: &Path, dir: &Path, plan: &str, extra: &[&str]) -> Output {
    let root = dir.join("runs");
    let mut args = vec!["run", "-f", plan, "--root", root.to_str().unwrap()];
    args.extend_from_slice(extra);
    with_path(bin, dir, &args)
}

fn assert_all(text: &str, wanted: &[&str]) {
    for wanted in wanted {
        assert!(text.contains(wanted), "no {wanted:?} in\n{text}");
    }
}

#[test]
fn doctor_names_every_missing_tool_with_its_install_command() {
    let dir = TempDir::new("lm-fresh");
    let bin = bare_path(&dir.path, &["sh", "cat"]);
    let out = with_path(&bin, &dir.path, &["doctor"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // A failed check: exit 1, as documented.
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert_all(
        &stdout,
        &[
            "FAIL   engine",
            "sudo apt-get install docker.io",
            "sudo apt-get install podman",
            "FAIL   tool.kind",
            "no `kind` on PATH",
            "go install sigs.k8s.io/kind@v0.33.0",
            "https://kind.sigs.k8s.io/dl/v0.33.0/kind-linux-amd64",
            "FAIL   tool.kubectl",
            "install kubectl",
        ],
    );
}

#[test]
fn the_quick_start_without_its_engine_stops_in_the_preflight_saying_how_to_install_it() {
    let dir = TempDir::new("lm-fresh");
    let bin = bare_path(&dir.path, &["sh"]);
    let out = run_plan(&bin, &dir.path, QUICK_START, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The plan names podman, so no engine is looked for: the pre-flight
    // fails (exit 1) on it, kind and kubectl, each with its install command.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_all(
        &stderr,
        &[
            "pre-flight check(s) failed: nothing was built or created",
            "podman is not installed",
            "sudo apt-get install podman",
            "go install sigs.k8s.io/kind@v0.33.0",
            "install kubectl",
            "no cluster aianalysis-e2e to keep or delete",
        ],
    );
    assert!(!stderr.contains("keeping cluster"), "{stderr}");
}

#[test]
fn a_plan_without_an_engine_named_and_none_installed_exits_3() {
    let dir = TempDir::new("lm-fresh");
    let bin = bare_path(&dir.path, &["sh"]);
    let plan = dir.path.join("loadmaster.yaml");
    std::fs::write(
        &plan,
        "apiVersion: loadmaster/v1\ncluster:\n  name: fresh\ntest:\n  command: 'true'\n",
    )
    .unwrap();
    let out = run_plan(&bin, &dir.path, plan.to_str().unwrap(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_all(
        &stderr,
        &[
            "sudo apt-get install docker.io",
            "sudo apt-get install podman",
        ],
    );
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn the_quick_start_without_kind_stops_in_the_preflight_before_any_build() {
    // The quick-start plan runs on podman.
    if !engines_under_test().contains(&loadmaster::engine::EngineKind::Podman) {
        eprintln!("skipped: the quick-start plan needs podman under test");
        return;
    }
    let dir = TempDir::new("lm-fresh");
    let bin = bare_path(&dir.path, &["sh", "podman"]);
    let out = run_plan(&bin, &dir.path, QUICK_START, &["--progress", "plain"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("pre-flight check(s) failed"), "{stderr}");
    assert!(stderr.contains("tool.kind: no `kind` on PATH"), "{stderr}");
    assert!(
        stderr.contains("go install sigs.k8s.io/kind@v0.33.0"),
        "{stderr}"
    );
    // Stopped before anything was built or created: each build is
    // cancelled, none started.
    assert!(
        !stderr
            .lines()
            .any(|line| line.contains(" build/") && line.ends_with(" started")),
        "{stderr}"
    );
    assert!(stderr.contains("cancelled: preflight failed"), "{stderr}");
    assert!(!stderr.contains("cluster started"), "{stderr}");
}
