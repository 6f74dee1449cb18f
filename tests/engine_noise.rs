//! The engines' own log lines stay out of loadmaster's messages: a real
//! podman, made to log at info level (as after a storage change, when it
//! prints `[graphdriver] using prior storage driver: overlay`), fails a
//! real command, and the error shown carries podman's answer without its
//! chatter. One test, alone in its binary, since it puts a wrapper first
//! on this process's PATH.

mod support;

use loadmaster::engine::{Engine, EngineKind};
use std::os::unix::fs::PermissionsExt;
use support::{TempDir, engines_under_test, unique_name};

/// Removes the container when the test ends, passed or not.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = std::process::Command::new("podman")
            .args(["rm", "-f", &self.0])
            .output();
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn podmans_info_lines_are_not_shown_in_its_errors() {
    if !engines_under_test().contains(&EngineKind::Podman) {
        eprintln!("skipped: podman is not under test");
        return;
    }
    let dir = TempDir::new("lm-noise");
    let wrapper = dir.path.join("podman");
    let real = "/usr/bin/podman";
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nexec {real} --log-level=info \"$@\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", dir.path.display(), std::env::var("PATH").unwrap());
    // SAFETY: the only test in this binary; no other thread reads the
    // environment while it is set.
    unsafe { std::env::set_var("PATH", path) };

    // A created, never started container: exec into it fails after podman
    // has opened its storage (and logged that it did).
    let name = unique_name("lm-noise");
    let created = std::process::Command::new(&wrapper)
        .args([
            "create",
            "--network",
            "none",
            "--name",
            &name,
            support::NODE_IMAGE,
        ])
        .output()
        .unwrap();
    let _container = Container(name.clone());
    let stderr = String::from_utf8_lossy(&created.stderr);
    assert!(created.status.success(), "{stderr}");
    assert!(
        stderr.contains("level=info"),
        "podman logged nothing: {stderr}"
    );

    let error = Engine::new(EngineKind::Podman)
        .exec_output(&name, &["true"])
        .unwrap_err()
        .to_string();
    assert!(error.contains("exec"), "{error}");
    assert!(!error.contains("level=info"), "{error}");
    assert!(!error.contains("graphdriver"), "{error}");
}
