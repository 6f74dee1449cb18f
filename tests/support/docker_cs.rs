//! Docker as Docker 25-29 users run it: a dockerd 28.5 with the containerd
//! image store, on a containerd 2.1 of its own, started by
//! `tests/docker-cs/start` (both built from their Go modules by
//! `tests/node-image/go-build`, cached) with its own data root, exec root
//! and socket, no bridge and no iptables. The machine's docker (20.10,
//! classic store) is untouched. `.ci/run` builds and starts it and stops it
//! after the tests; elsewhere a test that needs it starts it (the script
//! does nothing when it is up) and leaves it running, as the machine's
//! engines are left.
//!
//! Without the dockerd build the tests that need it say so and return,
//! unless `LOADMASTER_TEST_DOCKER_CS=1` asked for them: then they fail.

use super::{Containerd, Endpoint, engine_output, engine_output_at};
use loadmaster::engine::EngineKind;
use std::path::Path;
use std::process::{Command, Stdio};

/// The release `tests/docker-cs/start` runs.
const DOCKERD_RELEASE: &str = "v28.5.2+incompatible";

/// The containerd-store docker's endpoint with the test node images of
/// `versions` in its store (copied from the machine's docker), or None
/// (said on stderr) when its dockerd is not built and no one asked for it.
pub fn endpoint(versions: &[Containerd]) -> Option<Endpoint> {
    let required = std::env::var("LOADMASTER_TEST_DOCKER_CS").is_ok_and(|v| v == "1");
    let cache = std::env::var("LOADMASTER_GO_CACHE")
        .unwrap_or_else(|_| "/var/cache/loadmaster-go".to_string());
    let built = Path::new(&cache).join(format!("dockerd@{DOCKERD_RELEASE}/.done"));
    if !built.exists() && !required {
        eprintln!(
            "skipping the containerd-store docker tests: {} is missing (tests/node-image/go-build dockerd {DOCKERD_RELEASE})",
            built.display()
        );
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/docker-cs/start");
    let output = Command::new(&script)
        .stdin(Stdio::null())
        .output()
        .expect("run tests/docker-cs/start");
    assert!(
        output.status.success(),
        "tests/docker-cs/start failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let url = stdout
        .lines()
        .last()
        .expect("a DOCKER_HOST from tests/docker-cs/start");
    let endpoint = Endpoint::at(EngineKind::Docker, url.trim());
    for version in versions {
        copy_node_image(&endpoint, &version.image());
    }
    Some(endpoint)
}

/// Copies a test node image from the machine's docker into `endpoint`'s
/// store, unless it is there.
fn copy_node_image(endpoint: &Endpoint, image: &str) {
    let kind = EngineKind::Docker;
    if engine_output_at(kind, endpoint, &["image", "inspect", image])
        .status
        .success()
    {
        return;
    }
    assert!(
        engine_output(kind, &["image", "inspect", image])
            .status
            .success(),
        "test node image {image} is not built in docker: tests/node-image/build"
    );
    let mut save = Command::new("docker")
        .args(["save", image])
        .env_remove("DOCKER_HOST")
        .stdout(Stdio::piped())
        .spawn()
        .expect("run docker save");
    let mut load = endpoint.command(kind, &["load", "-q"]);
    let loaded = load
        .stdin(save.stdout.take().unwrap())
        .output()
        .expect("run docker load");
    assert!(save.wait().unwrap().success(), "docker save {image} failed");
    assert!(
        loaded.status.success(),
        "docker load of {image} into the containerd-store docker failed: {}",
        String::from_utf8_lossy(&loaded.stderr)
    );
}
