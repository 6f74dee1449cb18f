//! Evidence: one observed fact and where it was observed.
//!
//! Every collector (a log scan, a cgroup read, the kernel log, an engine's
//! inspect answer) produces [`Evidence`]; the rules in
//! [`diagnosis`](super::diagnosis) read nothing else. That is what lets live
//! collectors be added later without touching the rules, and what lets every
//! claim in a diagnosis point back at its source.

use super::kernel::OomKill;
use super::kube::{ContainerStatus, KubeEvent};
use crate::deliver::NodeState;
use crate::engine::{ContainerDetails, EngineInfo, EngineKind, Location, signal_name};
use crate::host::cgroup::MemoryCounters;
use crate::units::bytes;
use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};
use std::fmt;

/// One observed fact, with its source and the text it was read from.
///
/// JSON (`evidence[]` in the triage schema, see `docs/triage-json.md`):
/// `{"source": {...}, "where": "line 3 of build.log", "fact": {"kind": ...},
/// "shows": "exit status 137, i.e. killed by SIGKILL", "excerpt": "...",
/// "time": "2025-12-15T23:08:22Z"}`; `excerpt` and `time` may be null.
#[derive(Clone, Debug, PartialEq)]
pub struct Evidence {
    pub source: Source,
    pub fact: Fact,
    /// The text the fact was read from (a log line, a counter file's content).
    pub excerpt: Option<String>,
    /// When it was observed, as the source wrote it (not normalised).
    pub time: Option<String>,
}

impl Evidence {
    pub fn new(source: Source, fact: Fact) -> Evidence {
        Evidence {
            source,
            fact,
            excerpt: None,
            time: None,
        }
    }

    pub fn with_excerpt(mut self, excerpt: impl Into<String>) -> Evidence {
        self.excerpt = Some(excerpt.into());
        self
    }

    pub fn with_time(mut self, time: Option<String>) -> Evidence {
        self.time = time;
        self
    }

    /// A container's state as the engine reported it (`container inspect`).
    pub fn container(engine: EngineKind, details: &ContainerDetails) -> Evidence {
        let state = &details.state;
        Evidence::new(
            Source::Command {
                command: format!("{engine} container inspect {}", details.name),
            },
            Fact::Container(ContainerFacts {
                engine,
                name: details.name.clone(),
                status: state.status.clone(),
                exit_code: state.exit_code,
                oom_killed: state.oom_killed,
                restarts: state.restart_count,
                started_at: state.started_at.clone(),
                finished_at: state.finished_at.clone(),
                memory_limit_bytes: details.memory_limit,
            }),
        )
        .with_time(state.finished_at.clone())
    }

    /// The memory an engine's kernel has (`info`): the VM's for a VM.
    pub fn engine_memory(info: &EngineInfo) -> Evidence {
        Evidence::new(
            Source::Command {
                command: format!("{} info", info.engine),
            },
            Fact::EngineMemory {
                engine: info.engine,
                memory_bytes: info.memory_bytes,
                in_vm: info.location == Location::VirtualMachine,
            },
        )
    }

    /// The line number, for evidence read from a log or the kernel log.
    pub fn line(&self) -> Option<usize> {
        match self.source {
            Source::Log { line, .. } | Source::KernelLog { line, .. } => Some(line),
            Source::Cgroup { .. } | Source::Command { .. } | Source::Journal { .. } => None,
        }
    }
}

impl Serialize for Evidence {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Evidence", 6)?;
        s.serialize_field("source", &self.source)?;
        s.serialize_field("where", &self.source.to_string())?;
        s.serialize_field("fact", &self.fact)?;
        s.serialize_field("shows", &self.fact.to_string())?;
        s.serialize_field("excerpt", &self.excerpt)?;
        s.serialize_field("time", &self.time)?;
        s.end()
    }
}

/// Where a piece of evidence came from.
///
/// JSON: an object tagged by `kind`: `{"kind": "log", "file": "build.log",
/// "line": 3}`, `{"kind": "kernel-log", "command": "dmesg", "line": 7}`,
/// `{"kind": "cgroup", "dir": "/sys/fs/cgroup/..."}`,
/// `{"kind": "command", "command": "podman container inspect n"}`,
/// `{"kind": "journal", "run": "20251215T230822.123Z-4f3a9c", "event": 7}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Source {
    /// A line (1-based) of a log given to triage; `file` is "stdin" for `-`.
    Log { file: String, line: usize },
    /// A line of the kernel log, as printed by `command` (`dmesg`,
    /// `journalctl -k`, `podman machine ssh -- sudo dmesg`).
    KernelLog { command: String, line: usize },
    /// The memory counter files of a cgroup directory.
    Cgroup { dir: String },
    /// The answer of a command, e.g. `podman container inspect NODE`.
    Command { command: String },
    /// An event (1-based, in order) of a recorded run's journal: a fact
    /// loadmaster recorded as data when the command ran.
    Journal { run: String, event: usize },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Log { file, line } => write!(f, "line {line} of {file}"),
            Source::KernelLog { command, line } => {
                write!(f, "line {line} of the kernel log (`{command}`)")
            }
            Source::Cgroup { dir } => write!(f, "cgroup {dir}"),
            Source::Command { command } => write!(f, "`{command}`"),
            Source::Journal { run, event } => write!(f, "event {event} of run {run}'s journal"),
        }
    }
}

/// What a piece of evidence shows. The rules match on these variants.
///
/// JSON: an object tagged by `kind` (`exit`, `signature`, `oom-kill`,
/// `memory`, `container`, `kernel-log-read`, `engine-memory`, `disk`,
/// `unavailable`, `pod-container`, `kube-event`, `container-log`,
/// `node-state`, `engine-images`, `server-ready`) with
/// the variant's fields; see `docs/triage-json.md`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fact {
    /// A process ended with a non-zero status. `code` is the shell's number:
    /// 128 + N for a process killed by signal N.
    Exit {
        code: i32,
        /// The signal's name when `code` is 128 + a known signal.
        signal: Option<&'static str>,
        /// The command that ended so, when the source names it.
        command: Option<String>,
    },
    /// A line matched an entry of the signature table
    /// ([`signatures::SIGNATURES`](super::signatures::SIGNATURES)).
    Signature {
        id: &'static str,
        /// What the line names, when the signature extracts it: the container
        /// name of a name conflict, the port of a port conflict, the image.
        subject: Option<String>,
    },
    /// The kernel killed a process for lack of memory.
    OomKill(OomKill),
    /// A cgroup's memory counters.
    Memory(MemoryCounters),
    /// A container's state as its engine reports it.
    Container(ContainerFacts),
    /// A kernel log was read in full: how much of it, and how many OOM kills
    /// it holds. With none, it is evidence against an OOM kill.
    KernelLogRead { lines: usize, oom_kills: usize },
    /// The memory an engine's kernel has; for a VM-backed engine, the VM's.
    EngineMemory {
        engine: EngineKind,
        memory_bytes: u64,
        in_vm: bool,
    },
    /// Free space of a filesystem (the node's containerd root, engine storage, /tmp).
    Disk {
        path: String,
        available_bytes: u64,
        size_bytes: u64,
    },
    /// A collector could not read its evidence, and why: recorded so that a
    /// diagnosis shows what it lacks instead of silently knowing less (a
    /// node that exited took its cgroup counters with it).
    Unavailable { what: String, reason: String },
    /// A pod's container as the API server reported it (`kubectl get pods`,
    /// `describe`, JSON): waiting reason, last termination, restarts.
    PodContainer(ContainerStatus),
    /// A Kubernetes event (`FailedScheduling`, `Failed`, `BackOff`,
    /// `Unhealthy`...).
    KubeEvent(KubeEvent),
    /// The last lines a container wrote (`kubectl logs`; `previous`: the
    /// instance before its last restart, the one that crashed), as the
    /// runner gathered them at a failed step.
    ContainerLog(ContainerLog),
    /// A node container that was no longer running after a failed load, as
    /// loadmaster found it then (stopped, with its exit code; or removed).
    NodeState { node: String, state: NodeState },
    /// An engine's image store as a log lists it (`docker image ls`,
    /// `podman images`: `REPOSITORY TAG IMAGE ID ...`), `repository:tag`
    /// per row; `engine` when the listing's command names it. Beside a pod
    /// whose image is not on its node, it shows where the image is instead.
    EngineImages {
        engine: Option<EngineKind>,
        images: Vec<String>,
    },
    /// A server said it now accepts connections (PostgreSQL's and Redis's
    /// "ready to accept connections", MySQL's "ready for connections"). A
    /// client refused or reset before it dialled too early.
    ServerReady,
}

impl Fact {
    /// An exit status, with the signal named when it is 128 + a signal.
    pub fn exit(code: i32, command: Option<String>) -> Fact {
        Fact::Exit {
            code,
            signal: (code > 128).then(|| signal_name(code - 128)).flatten(),
            command,
        }
    }
}

/// The last lines a container wrote (`kubectl logs`; `previous`: the
/// instance before its last restart, the one that crashed), as the runner
/// gathered them at a failed step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ContainerLog {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub previous: bool,
    pub last_lines: Vec<String>,
}

impl ContainerLog {
    /// Whether this is a log of `status`'s container (a status read
    /// without its namespace matches any).
    pub fn is_of(&self, status: &ContainerStatus) -> bool {
        self.pod == status.pod
            && status.container.as_ref() == Some(&self.container)
            && status
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == self.namespace)
    }
}

impl fmt::Display for ContainerLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let which = if self.previous {
            " (its instance before the restart)"
        } else {
            ""
        };
        write!(
            f,
            "the log of pod {}/{}, container {}{which} ends: ",
            self.namespace, self.pod, self.container
        )?;
        match self.last_lines.as_slice() {
            [] => f.write_str("(empty)"),
            lines => write!(f, "`{}`", lines.join(" / ")),
        }
    }
}

/// A container's state, as `container inspect` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ContainerFacts {
    pub engine: EngineKind,
    pub name: String,
    pub status: String,
    pub exit_code: i64,
    /// The engine's OOM flag. `true` is evidence of an OOM kill; `false` is
    /// weak evidence against: podman 4.3 on cgroup v1 reports false for a
    /// node whose containerd the kernel OOM-killed (FIELD-NOTES).
    pub oom_killed: bool,
    pub restarts: u64,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub memory_limit_bytes: Option<u64>,
}

impl fmt::Display for Fact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fact::Exit {
                code,
                signal,
                command,
            } => {
                match command {
                    Some(command) => write!(f, "`{command}` ended with exit status {code}")?,
                    None => write!(f, "exit status {code}")?,
                }
                match signal {
                    Some(signal) => write!(f, ", i.e. killed by {signal}"),
                    None => Ok(()),
                }
            }
            Fact::Signature { id, subject } => {
                let meaning = super::signatures::by_id(id).map_or("", |s| s.meaning);
                write!(f, "{meaning}")?;
                match subject {
                    Some(subject) => write!(f, " ({subject})"),
                    None => Ok(()),
                }
            }
            Fact::OomKill(kill) => kill.fmt(f),
            Fact::Memory(counters) => counters.fmt(f),
            Fact::Container(c) => {
                write!(
                    f,
                    "{} container {}: {}, exit code {}, OOMKilled={}, {} restarts",
                    c.engine, c.name, c.status, c.exit_code, c.oom_killed, c.restarts
                )?;
                if let Some(limit) = c.memory_limit_bytes {
                    write!(f, ", memory limit {}", bytes(limit))?;
                }
                Ok(())
            }
            Fact::KernelLogRead { lines, oom_kills } => {
                write!(f, "kernel log read ({lines} lines): {oom_kills} OOM kills")
            }
            Fact::EngineMemory {
                engine,
                memory_bytes,
                in_vm,
            } => write!(
                f,
                "{engine} has {} of memory{}",
                bytes(*memory_bytes),
                if *in_vm { " (its VM's)" } else { "" }
            ),
            Fact::Disk {
                path,
                available_bytes,
                size_bytes,
            } => write!(
                f,
                "{} free of {} at {path}",
                bytes(*available_bytes),
                bytes(*size_bytes)
            ),
            Fact::Unavailable { what, reason } => write!(f, "could not read {what}: {reason}"),
            Fact::PodContainer(status) => status.fmt(f),
            Fact::KubeEvent(event) => event.fmt(f),
            Fact::ContainerLog(log) => log.fmt(f),
            Fact::NodeState { node, state } => match state {
                NodeState::Stopped {
                    status,
                    exit_code,
                    oom_killed,
                } => write!(
                    f,
                    "node container {node} was {status} after the failure: exit code {exit_code}, OOMKilled={oom_killed}"
                ),
                NodeState::Removed => write!(
                    f,
                    "node container {node} no longer existed after the failure: removed during the load"
                ),
            },
            Fact::EngineImages { engine, images } => {
                match engine {
                    Some(engine) => write!(f, "{engine}'s image store holds ")?,
                    None => write!(f, "an engine's image store holds ")?,
                }
                write!(f, "{} images: {}", images.len(), images.join(", "))
            }
            Fact::ServerReady => write!(f, "a server said it is ready to accept connections"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ContainerState;
    use std::collections::BTreeMap;

    #[test]
    fn exit_codes_name_their_signal() {
        assert_eq!(
            Fact::exit(137, Some("ctr import".into())).to_string(),
            "`ctr import` ended with exit status 137, i.e. killed by SIGKILL"
        );
        assert_eq!(Fact::exit(125, None).to_string(), "exit status 125");
    }

    #[test]
    fn container_inspect_becomes_evidence_with_its_command() {
        let details = ContainerDetails {
            id: "84a5".into(),
            name: "e2e-control-plane".into(),
            image: "kindest/node".into(),
            labels: BTreeMap::new(),
            state: ContainerState {
                status: "exited".into(),
                running: false,
                exit_code: 137,
                oom_killed: true,
                pid: 0,
                restart_count: 0,
                started_at: Some("2025-12-15T22:55:00Z".into()),
                finished_at: Some("2025-12-15T23:08:22Z".into()),
                error: String::new(),
            },
            memory_limit: None,
        };
        let evidence = Evidence::container(EngineKind::Docker, &details);
        assert_eq!(
            evidence.source.to_string(),
            "`docker container inspect e2e-control-plane`"
        );
        assert_eq!(evidence.time.as_deref(), Some("2025-12-15T23:08:22Z"));
        let json = serde_json::to_value(&evidence).unwrap();
        assert_eq!(json["fact"]["kind"], "container");
        assert_eq!(json["fact"]["oom_killed"], true);
        assert!(json["shows"].as_str().unwrap().contains("OOMKilled=true"));
    }
}
