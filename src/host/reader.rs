//! Reading files on the engine's host: this machine, or a podman machine's
//! VM through `podman machine ssh`.
//!
//! Memory that matters is where containers run. For a local engine that is
//! this kernel (/proc/meminfo, /sys/fs/cgroup); for a podman machine it is
//! the VM's, reached with one `ssh` per read of several files, so that a
//! sample costs one round trip, not one per counter.

use crate::process;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How long one read through `podman machine ssh` may take. It delays only
/// the sampler's thread, never the run.
const MACHINE_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the engine's files are read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostReader {
    /// This machine's kernel.
    Local,
    /// A podman machine's VM (`None`: the default machine).
    PodmanMachine { name: Option<String> },
}

impl HostReader {
    /// The contents of `names` in `dir`, by name; a file that cannot be
    /// read is absent (cgroup files differ by kernel and version).
    pub fn files(&self, dir: &Path, names: &[&str]) -> io::Result<HashMap<String, String>> {
        match self {
            HostReader::Local => Ok(names
                .iter()
                .filter_map(|name| {
                    let text = std::fs::read_to_string(dir.join(name)).ok()?;
                    Some((name.to_string(), text))
                })
                .collect()),
            HostReader::PodmanMachine { .. } => {
                let paths: Vec<String> = names
                    .iter()
                    .map(|name| dir.join(name).display().to_string())
                    .collect();
                // `grep -H .` prints `path:line` for every line of every
                // readable file: several files, one round trip.
                let mut argv = vec!["grep", "-H", "."];
                argv.extend(paths.iter().map(String::as_str));
                let output = self.machine_command(&argv)?;
                let mut files: HashMap<String, String> = HashMap::new();
                for line in output.lines() {
                    for (name, path) in names.iter().zip(&paths) {
                        if let Some(rest) = line.strip_prefix(path.as_str())
                            && let Some(value) = rest.strip_prefix(':')
                        {
                            let text = files.entry(name.to_string()).or_default();
                            text.push_str(value);
                            text.push('\n');
                        }
                    }
                }
                Ok(files)
            }
        }
    }

    /// Free and total bytes of the filesystem under `path`.
    pub fn space(&self, path: &Path) -> io::Result<(u64, u64)> {
        match self {
            HostReader::Local => {
                let space = super::space(path)?;
                Ok((space.available, space.total))
            }
            HostReader::PodmanMachine { .. } => {
                let path = path.display().to_string();
                let rows = super::parse_df(&self.machine_command(&["df", "-Pk", &path])?)?;
                Ok((rows[0].available, rows[0].total))
            }
        }
    }

    /// Runs `podman machine ssh [NAME] ARGV...` and returns its stdout.
    fn machine_command(&self, argv: &[&str]) -> io::Result<String> {
        let HostReader::PodmanMachine { name } = self else {
            unreachable!("only a machine reader runs machine commands")
        };
        let mut command = Command::new("podman");
        command.args(["machine", "ssh"]);
        command.args(name);
        command.args(argv);
        let done = process::run(&mut command, MACHINE_READ_TIMEOUT)?;
        // grep exits 2 when one of several files is unreadable but still
        // prints the others.
        if done.timed_out || done.stdout.is_empty() && !done.status.success() {
            return Err(io::Error::other(format!(
                "`podman machine ssh {}` failed ({}): {}",
                argv.join(" "),
                if done.timed_out {
                    "timed out".to_string()
                } else {
                    done.status.to_string()
                },
                done.stderr_text().trim()
            )));
        }
        Ok(done.stdout_text())
    }
}

/// The memory cgroup directory of a process, from `/proc/<pid>/cgroup` as
/// the host's reader sees it: the v1 `memory` controller's line, else the
/// v2 line (`0::`).
pub fn cgroup_of_pid(reader: &HostReader, pid: u32) -> io::Result<PathBuf> {
    let dir = PathBuf::from(format!("/proc/{pid}"));
    let text = reader
        .files(&dir, &["cgroup"])?
        .remove("cgroup")
        .ok_or_else(|| io::Error::other(format!("cannot read /proc/{pid}/cgroup")))?;
    let v1 = text.lines().find_map(|line| {
        let (_, rest) = line.split_once(':')?;
        let (controllers, path) = rest.split_once(':')?;
        controllers
            .split(',')
            .any(|c| c == "memory")
            .then(|| Path::new("/sys/fs/cgroup/memory").join(path.trim_start_matches('/')))
    });
    let v2 = || {
        text.lines().find_map(|line| {
            let path = line.strip_prefix("0::")?;
            Some(Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/')))
        })
    };
    v1.or_else(v2)
        .ok_or_else(|| io::Error::other(format!("no memory cgroup in /proc/{pid}/cgroup")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_this_process_memory_cgroup() {
        let dir = cgroup_of_pid(&HostReader::Local, std::process::id()).unwrap();
        assert!(dir.starts_with("/sys/fs/cgroup"), "{}", dir.display());
    }
}
