//! Test support for the VM tier: an engine inside a qemu VM of its own, as a
//! podman machine is one (`tests/vm/start` and `tests/vm/stop`; the base
//! image is made by `tests/vm/prepare`). The tests reach it only through the
//! engine's forwarded API socket: `CONTAINER_HOST` or `DOCKER_HOST` pointed at
//! it ([`TestVm::endpoint`]), as a user's CLI is.
//!
//! The tier is opt-in: it runs only with `LOADMASTER_TEST_VM=1`, and then
//! fails when qemu or the base image (`tests/vm/prepare`) is missing.
//! `.ci/run` sets it through `tests/vm/ci`, which also stops any VM a
//! killed test run left behind.

use super::{Endpoint, unique_name};
use loadmaster::engine::EngineKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The VM scripts, in the source tree.
fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vm")
        .join(name)
}

/// Whether the VM tier must run (`LOADMASTER_TEST_VM=1`).
pub fn required() -> bool {
    std::env::var("LOADMASTER_TEST_VM").is_ok_and(|value| value == "1")
}

/// Why the VM tier cannot run here, if it cannot.
pub fn missing() -> Option<String> {
    let qemu = Command::new("qemu-system-x86_64")
        .arg("--version")
        .stdout(Stdio::null())
        .status();
    if !qemu.is_ok_and(|status| status.success()) {
        return Some(
            "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86 qemu-utils)"
                .into(),
        );
    }
    let check = Command::new(script("prepare"))
        .arg("--check")
        .output()
        .expect("run tests/vm/prepare --check");
    (!check.status.success()).then(|| String::from_utf8_lossy(&check.stderr).trim().to_string())
}

/// A booted VM with `kind`'s engine inside, shut down (qemu process, disk
/// overlay, sockets) when dropped.
pub struct TestVm {
    pub kind: EngineKind,
    /// The VM's name (`LOADMASTER_VM_NAME`): its state directory and qemu's.
    pub name: String,
    /// The engine's address, as `tests/vm/start` printed it (`tcp://127.0.0.1:PORT`).
    pub host: String,
    /// The VM's state directory: its console log (the guest's kernel log).
    pub state: PathBuf,
}

impl TestVm {
    /// The engine inside, as its CLI (and loadmaster) reach it.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::at(self.kind, &self.host)
    }

    /// Boots a VM named `name` with `memory_mib` of memory and one vCPU,
    /// from which `host_ports` of this machine's loopback are reachable
    /// as `host.containers.internal` / `host.docker.internal`.
    pub fn boot(kind: EngineKind, name: &str, memory_mib: u64, host_ports: &[u16]) -> TestVm {
        let host_ports: Vec<String> = host_ports.iter().map(u16::to_string).collect();
        // Under LOADMASTER_VM_STATE when set (tests/vm/ci stops what a
        // killed run left there), else the temporary directory.
        let root =
            std::env::var_os("LOADMASTER_VM_STATE").map_or_else(std::env::temp_dir, PathBuf::from);
        let state = root.join(unique_name("lmt-vm"));
        let output = Command::new(script("start"))
            .arg(kind.name())
            .env("LOADMASTER_VM_NAME", name)
            .env("LOADMASTER_VM_STATE", &state)
            .env("LOADMASTER_VM_MEMORY", memory_mib.to_string())
            .env("LOADMASTER_VM_CPUS", "1")
            .env("LOADMASTER_VM_HOST_PORTS", host_ports.join(" "))
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .expect("run tests/vm/start");
        let vm = TestVm {
            kind,
            name: name.to_string(),
            host: String::from_utf8_lossy(&output.stdout)
                .lines()
                .last()
                .unwrap_or_default()
                .to_string(),
            state,
        };
        assert!(
            output.status.success() && vm.host.starts_with("tcp://127.0.0.1:"),
            "tests/vm/start {kind} failed ({}); its logs: {}",
            output.status,
            vm.state.join(name).display()
        );
        vm
    }

    /// The guest's console: its kernel's messages, as qemu recorded them.
    pub fn console(&self) -> String {
        std::fs::read_to_string(self.state.join(&self.name).join("console.log")).unwrap_or_default()
    }

    /// Copies `image` from the engine on this machine into the VM's engine
    /// (`save | load` across the forwarded socket).
    pub fn copy_image_in(&self, image: &str) {
        let mut save = Endpoint::local()
            .command(self.kind, &["save", image])
            .stdout(Stdio::piped())
            .spawn()
            .expect("run the engine's save");
        let load = self
            .endpoint()
            .command(self.kind, &["load"])
            .stdin(save.stdout.take().unwrap())
            .output()
            .expect("run the engine's load");
        let saved = save.wait().expect("wait for save");
        assert!(
            saved.success() && load.status.success(),
            "copying {image} into the {} VM failed: save {saved}, load {}: {}",
            self.kind,
            load.status,
            String::from_utf8_lossy(&load.stderr)
        );
    }
}

impl Drop for TestVm {
    fn drop(&mut self) {
        let stopped = Command::new(script("stop"))
            .arg(self.kind.name())
            .env("LOADMASTER_VM_NAME", &self.name)
            .env("LOADMASTER_VM_STATE", &self.state)
            .stdin(Stdio::null())
            .status();
        let stopped = stopped.is_ok_and(|status| status.success());
        // A failed test keeps the VM's logs for its reader.
        if !stopped || std::thread::panicking() {
            eprintln!(
                "the {} VM's logs are kept in {}{}",
                self.kind,
                self.state.display(),
                if stopped {
                    ""
                } else {
                    " (tests/vm/stop failed)"
                }
            );
            return;
        }
        let _ = std::fs::remove_dir_all(&self.state);
    }
}
