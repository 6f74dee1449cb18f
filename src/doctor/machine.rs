//! The podman machine: the VM that runs podman's containers on macOS and
//! Windows (and on Linux when asked for). Its memory, CPUs and disk are the
//! ones a kind node can use, not the laptop's.
//!
//! Read from `podman machine inspect` (the VM's configured size and state)
//! and `podman info` (what the VM's kernel has free now). Both are parsed
//! from their JSON; the shapes are pinned by contract tests against recorded
//! answers, since no podman machine can run where the tests run.

use crate::process;
use serde::Deserialize;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// One podman machine, as `podman machine inspect` describes it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Machine {
    pub name: String,
    /// running, stopped, starting...
    pub state: String,
    pub cpus: u64,
    pub memory_bytes: u64,
    pub disk_bytes: u64,
    /// Containers run as root in the VM (`podman machine set --rootful`).
    pub rootful: bool,
}

impl Machine {
    pub fn running(&self) -> bool {
        self.state == "running"
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawMachine {
    name: String,
    #[serde(default)]
    state: String,
    resources: RawResources,
    #[serde(default)]
    rootful: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawResources {
    #[serde(rename = "CPUs")]
    cpus: u64,
    /// GiB (`--disk-size`).
    disk_size: u64,
    /// MiB (`--memory`).
    memory: u64,
}

/// Parses `podman machine inspect` output: a JSON array of machines.
pub fn parse_inspect(json: &[u8]) -> Result<Vec<Machine>, String> {
    let raw: Vec<RawMachine> = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    Ok(raw
        .into_iter()
        .map(|m| Machine {
            name: m.name,
            state: m.state,
            cpus: m.resources.cpus,
            memory_bytes: m.resources.memory * MIB,
            disk_bytes: m.resources.disk_size * GIB,
            rootful: m.rootful,
        })
        .collect())
}

/// `host.memFree` of `podman info --format json`: what the engine's kernel
/// (the VM's, for a machine) can give now. podman fills it from the
/// kernel's MemAvailable where there is one.
pub fn parse_mem_free(json: &[u8]) -> Result<u64, String> {
    let info: Value = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    info["host"]["memFree"]
        .as_u64()
        .ok_or_else(|| "no host.memFree in the answer".to_string())
}

/// Asks podman about its default machine. Err carries podman's answer
/// (e.g. "cannot run command \"podman machine inspect\" as root").
pub fn inspect(timeout: Duration) -> Result<Vec<Machine>, String> {
    let done = run_podman(&["machine", "inspect"], timeout)?;
    parse_inspect(&done)
}

/// Asks podman what its engine's kernel has free now.
pub fn mem_free(timeout: Duration) -> Result<u64, String> {
    let done = run_podman(&["info", "--format", "json"], timeout)?;
    parse_mem_free(&done)
}

fn run_podman(args: &[&str], timeout: Duration) -> Result<Vec<u8>, String> {
    let described = format!("podman {}", args.join(" "));
    let done = process::run(Command::new("podman").args(args), timeout)
        .map_err(|e| format!("could not run `{described}`: {e}"))?;
    if done.timed_out {
        return Err(format!(
            "`{described}` timed out after {}s",
            timeout.as_secs()
        ));
    }
    if !done.status.success() {
        return Err(format!("`{described}` failed: {}", done.stderr_text()));
    }
    Ok(done.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Contract test, recorded behaviour: `podman machine inspect` of
    /// podman 5.8 and 6.0, shapes derived from podman's source
    /// (`tests/fixtures/podman/README.md`).
    #[test]
    fn machine_inspect_of_podman_5_and_6() {
        for (version, json) in [
            (
                "5.8",
                include_str!("../../tests/fixtures/podman/5.8/machine-inspect.json"),
            ),
            (
                "6.0",
                include_str!("../../tests/fixtures/podman/6.0/machine-inspect.json"),
            ),
        ] {
            let machines = parse_inspect(json.as_bytes()).unwrap();
            assert_eq!(machines.len(), 1, "{version}");
            let m = &machines[0];
            assert_eq!(m.name, "podman-machine-default", "{version}");
            assert!(m.running(), "{version}");
            assert_eq!(
                (m.cpus, m.memory_bytes, m.disk_bytes),
                (5, 2048 * MIB, 100 * GIB),
                "{version}"
            );
            assert!(!m.rootful, "{version}");
        }
    }
}
