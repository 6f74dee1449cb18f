//! Live collectors: the evidence about a failed node, gathered at once while
//! it still exists, and the diagnosis of a failed `load`.
//!
//! Each collector records where its evidence came from (the command run, the
//! cgroup directory read) and none fails the triage: what cannot be read
//! becomes an [`Fact::Unavailable`] saying what and why, so a diagnosis shows
//! what it lacks. Nothing is inferred here; the rules in
//! [`diagnosis`](super::diagnosis) weigh what was read.
//!
//! The order of the evidence matters to the reader, not to the rules: the
//! kernel's own account of a kill comes first, then the cgroup's counters,
//! then the engine's view of the container.

use super::cgroup;
use super::diagnosis::{Case, Diagnosis, Failure, Phase, diagnose};
use super::evidence::{Evidence, Fact, Source};
use super::kernel;
use super::log;
use super::recorded;
use crate::archive::ArchiveError;
use crate::cluster::CLUSTER_LABEL;
use crate::deliver::NodeFailure;
use crate::engine::{ContainerDetails, Engine, EngineInfo, EngineKind, Location};
use crate::host;
use crate::process;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Where kind nodes keep images: the filesystem a load fills.
pub const CONTAINERD_ROOT: &str = "/var/lib/containerd";

/// How much of a node's containerd log is read.
const CONTAINERD_LOG_LINES: u32 = 50;

/// How long reading the kernel log may take.
const KERNEL_LOG_TIMEOUT: Duration = Duration::from_secs(30);

/// The cgroup v1 memory counter files, and v2's; a node's are read through
/// `exec` when the engine's machine is not this one.
const MEMORY_FILES: [&str; 10] = [
    "memory.usage_in_bytes",
    "memory.limit_in_bytes",
    "memory.max_usage_in_bytes",
    "memory.failcnt",
    "memory.oom_control",
    "memory.current",
    "memory.max",
    "memory.peak",
    "memory.events",
    "memory.stat",
];

/// What `load` knows when it failed, for [`diagnose_load`].
#[derive(Clone, Copy, Debug)]
pub struct LoadFailure<'a> {
    /// The node that failed; `None` when the source failed (a corrupt
    /// archive, a failed `save`) before any node did.
    pub node: Option<&'a str>,
    /// The error as loadmaster reports it, for people: the failure's
    /// message, never scanned.
    pub error: &'a str,
    /// The failure as facts: the command that failed (its argv, exit and
    /// stderr tail) and the node's state after it.
    pub facts: Option<&'a NodeFailure>,
    /// The source's archive (or `save` stream) that could not be read.
    pub archive: Option<&'a ArchiveError>,
}

/// Diagnoses a failed load: its recorded facts (the failed command, its
/// exit, the node's state, what its stderr says), then (for a node) every
/// live collector, run now.
pub fn diagnose_load(engine: &Engine, failure: &LoadFailure<'_>) -> Diagnosis {
    let mut case = Case {
        inputs: vec!["loadmaster's record of the failure".to_string()],
        phase: Some(Phase::ImageLoad),
        phases_seen: vec![Phase::ImageLoad],
        engine: Some(engine.kind()),
        ..Case::default()
    };
    let message = failure.error.lines().next().unwrap_or_default();
    let command = failure.facts.and_then(|f| f.command.as_ref());
    let source = Source::Command {
        command: command.map_or_else(
            || "loadmaster load".to_string(),
            |c| process::shell_words(&c.argv),
        ),
    };
    case.evidence.extend(
        failure
            .archive
            .and_then(|error| recorded::archive_evidence(error, message, &source)),
    );
    if let Some(facts) = failure.facts {
        case.evidence.extend(recorded::node_failure_evidence(
            failure.node.unwrap_or_default(),
            facts,
            &source,
            "the failed command's stderr",
        ));
    }
    case.failure = Some(match command {
        Some(c) => recorded::command_failure(&c.argv, &c.exit, failure.node, Some(message), source),
        None => Failure {
            command: None,
            exit_code: None,
            message: message.to_string(),
            source,
            node: failure.node.map(str::to_string),
        },
    });
    if let Some(node) = failure.node {
        case.inputs.push(format!("live evidence of node {node}"));
        case.evidence.extend(node_evidence(engine, node));
    }
    diagnose(&case)
}

/// Everything the collectors can read about `node` now: the kernel log's OOM
/// kills in its cgroup, its memory counters, its container state, the
/// engine's memory and storage, the node's free space for images, and its
/// containerd log.
pub fn node_evidence(engine: &Engine, node: &str) -> Vec<Evidence> {
    let inspect = format!("{} container inspect {node}", engine.kind());
    let details = engine.container_inspect(node).map_err(|e| e.to_string());
    let info = engine.info().map_err(|e| e.to_string());
    let location = info.as_ref().map_or(Location::Local, |i| i.location);

    let mut evidence = Vec::new();
    evidence.extend(kernel_log(engine, location, details.as_ref().ok()));
    evidence.push(match &details {
        Ok(details) => node_cgroup(engine, location, details),
        Err(reason) => unavailable(&inspect, "the node's memory cgroup", reason),
    });
    evidence.push(match &details {
        Ok(details) => Evidence::container(engine.kind(), details),
        Err(reason) => unavailable(&inspect, "the node container's state", reason),
    });
    let info_command = format!("{} info", engine.kind());
    match &info {
        Ok(info) => {
            evidence.push(Evidence::engine_memory(info));
            evidence.push(engine_storage(engine.kind(), info));
        }
        Err(reason) => evidence.push(unavailable(&info_command, "the engine's resources", reason)),
    }
    evidence.push(match &details {
        Ok(details) if details.state.running => node_disk(engine, node),
        Ok(details) => gone(
            &format!("{} exec {node} df", engine.kind()),
            &format!("free space at the node's {CONTAINERD_ROOT}"),
            details,
        ),
        Err(reason) => unavailable(&inspect, "the node's free space", reason),
    });
    evidence.extend(containerd_log(engine, node));
    evidence
}

/// A collector's failure, as evidence of what is missing.
fn unavailable(command: &str, what: &str, reason: &str) -> Evidence {
    Evidence::new(
        Source::Command {
            command: command.to_string(),
        },
        Fact::Unavailable {
            what: what.to_string(),
            reason: reason.to_string(),
        },
    )
}

/// Evidence that went with a container that is no longer running.
fn gone(command: &str, what: &str, details: &ContainerDetails) -> Evidence {
    unavailable(
        command,
        what,
        &format!(
            "the node container is {} (exit code {}), and what lived inside it went with it",
            details.state.status, details.state.exit_code
        ),
    )
}

/// The kernel log's OOM kills that concern the node: in its memory cgroup
/// (whose path holds the container's ID), or of the whole machine. Kills in
/// other containers' cgroups are left out, and counted in the excerpt.
fn kernel_log(
    engine: &Engine,
    location: Location,
    details: Option<&ContainerDetails>,
) -> Vec<Evidence> {
    let (text, command) = match read_kernel_log(engine, location) {
        Ok(read) => read,
        Err((command, reason)) => {
            return vec![unavailable(&command, "the kernel log", &reason)];
        }
    };
    let concerns = |kill: &kernel::OomKill| match (&kill.memcg, details) {
        _ if kill.scope == kernel::OomScope::System => true,
        (Some(memcg), Some(details)) => memcg.contains(&details.id),
        // A cgroup's kill whose cgroup the log no longer names (the ring
        // buffer dropped the lines before it): not known to be this node's.
        (None, Some(_)) => false,
        // Without the container's ID nothing can be told apart: keep all.
        (_, None) => true,
    };
    let mut evidence = Vec::new();
    let mut others = Vec::new();
    for found in kernel::scan(&text) {
        if concerns(&found.kill) {
            evidence.push(
                Evidence::new(
                    Source::KernelLog {
                        command: command.clone(),
                        line: found.line,
                    },
                    Fact::OomKill(found.kill),
                )
                .with_excerpt(found.text)
                .with_time(found.time),
            );
        } else {
            others.push(format!(
                "{} in {}",
                found.kill.process,
                found.kill.memcg.unwrap_or_default()
            ));
        }
    }
    let read = Evidence::new(
        Source::Command {
            command: command.clone(),
        },
        Fact::KernelLogRead {
            lines: text.lines().count(),
            oom_kills: evidence.len(),
        },
    );
    evidence.push(if others.is_empty() {
        read
    } else {
        read.with_excerpt(format!(
            "OOM kills of other containers, not counted: {}",
            others.join(", ")
        ))
    });
    evidence
}

/// The kernel log of the machine the engine's containers run on, with the
/// command that printed it; or the commands tried and why each failed.
///
/// Here: `dmesg` (or the journal). In a podman machine: `podman machine
/// ssh`. Wherever else the engine runs (a VM reached through its socket,
/// Docker Desktop, another machine), and when the machine's ssh fails: a
/// helper container on the engine reads its kernel's ring buffer, through
/// the engine's API alone ([`Engine::kernel_log_inside`]).
fn read_kernel_log(
    engine: &Engine,
    location: Location,
) -> Result<(String, String), (String, String)> {
    let attempts: Vec<Vec<&str>> = match (engine.kind(), location) {
        (_, Location::Local) => vec![vec!["dmesg"], vec!["journalctl", "-k", "--no-pager", "-q"]],
        (EngineKind::Podman, Location::VirtualMachine) => {
            vec![vec!["podman", "machine", "ssh", "--", "sudo", "dmesg"]]
        }
        (EngineKind::Docker, Location::VirtualMachine) | (_, Location::Remote) => vec![],
    };
    let mut tried = Vec::new();
    let mut failures = Vec::new();
    for argv in attempts {
        let line = argv.join(" ");
        let done = process::run(Command::new(argv[0]).args(&argv[1..]), KERNEL_LOG_TIMEOUT);
        let why = match done {
            Ok(done) if done.status.success() => {
                let text = done.stdout_text();
                // journalctl without a journal says so on stdout and exits 0.
                if text
                    .lines()
                    .any(|l| !l.trim().is_empty() && !l.contains("No entries"))
                {
                    return Ok((text, line));
                }
                "it printed no kernel messages".to_string()
            }
            Ok(done) if done.timed_out => {
                format!("timed out after {}s", KERNEL_LOG_TIMEOUT.as_secs())
            }
            Ok(done) => done.stderr_text(),
            Err(error) => error.to_string(),
        };
        failures.push(format!("`{line}`: {why}"));
        tried.push(line);
    }
    let advice = if location == Location::Local {
        "as root, `dmesg` needs kernel.dmesg_restrict=0 or CAP_SYSLOG"
    } else {
        match engine.kernel_log_inside(CLUSTER_LABEL) {
            Ok(read) => return Ok(read),
            Err(why) => {
                let line = format!("{} run --cap-add SYSLOG … dmesg", engine.kind());
                failures.push(format!("`{line}`: {why}"));
                tried.push(line);
            }
        }
        "the engine must let a container have CAP_SYSLOG to read its kernel's log"
    };
    Err((
        tried.join(", then "),
        format!("{}; {advice}", failures.join("; ")),
    ))
}

/// The node's memory counters: from this machine's cgroup tree when the
/// engine runs here (found through the node's main process), else read
/// inside the node. An exited node's cgroup no longer exists.
fn node_cgroup(engine: &Engine, location: Location, details: &ContainerDetails) -> Evidence {
    if !details.state.running || details.state.pid == 0 {
        return gone(
            &format!("{} container inspect {}", engine.kind(), details.name),
            "the node's memory cgroup",
            details,
        );
    }
    if location == Location::Local {
        let procfile = format!("/proc/{}/cgroup", details.state.pid);
        return match std::fs::read_to_string(&procfile) {
            Ok(text) => match memory_cgroup_dir(&text) {
                Some(dir) => match cgroup::evidence(&dir) {
                    Ok(evidence) => evidence,
                    Err(error) => unavailable(
                        &dir.display().to_string(),
                        "the node's memory cgroup",
                        &error.to_string(),
                    ),
                },
                None => unavailable(
                    &procfile,
                    "the node's memory cgroup",
                    "its main process is in no memory cgroup (no memory controller is mounted)",
                ),
            },
            Err(error) => unavailable(&procfile, "the node's memory cgroup", &error.to_string()),
        };
    }
    cgroup_in_node(engine, &details.name)
}

/// The directory of the memory cgroup a `/proc/PID/cgroup` names: v1's
/// `N:memory:/docker/ID` under /sys/fs/cgroup/memory, else v2's `0::/PATH`
/// under /sys/fs/cgroup.
pub fn memory_cgroup_dir(proc_cgroup: &str) -> Option<std::path::PathBuf> {
    let mut v2 = None;
    for line in proc_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let relative = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "memory") {
            return Some(Path::new("/sys/fs/cgroup/memory").join(relative));
        }
        if controllers.is_empty() {
            v2 = Some(Path::new("/sys/fs/cgroup").join(relative));
        }
    }
    v2
}

/// The node's memory counters read inside it (`exec`): a node sees its own
/// cgroup at /sys/fs/cgroup/memory (v1) or /sys/fs/cgroup (v2). This is the
/// way in for an engine in a VM or on another machine.
pub fn cgroup_in_node(engine: &Engine, node: &str) -> Evidence {
    let script = format!(
        "for d in /sys/fs/cgroup/memory /sys/fs/cgroup; do [ -e $d/memory.usage_in_bytes ] || [ -e $d/memory.current ] || continue; for f in {}; do [ -e $d/$f ] && echo \"==> $d/$f\" && cat $d/$f; done; break; done",
        MEMORY_FILES.join(" ")
    );
    let command = format!(
        "{} exec {node} sh -c '...cat /sys/fs/cgroup/.../memory.*'",
        engine.kind()
    );
    let text = match engine.exec_output(node, &["sh", "-c", &script]) {
        Ok(text) => text,
        Err(error) => return unavailable(&command, "the node's memory cgroup", &error.to_string()),
    };
    let files = split_files(&text);
    let dir = files
        .first()
        .and_then(|(path, _)| path.rsplit_once('/'))
        .map_or("/sys/fs/cgroup".to_string(), |(dir, _)| dir.to_string());
    let lookup = |name: &str| {
        files
            .iter()
            .find(|(path, _)| path.rsplit('/').next() == Some(name))
            .map(|(_, content)| content.clone())
    };
    let source_dir = format!(
        "{dir} in node {node} (read through `{} exec`)",
        engine.kind()
    );
    match host::cgroup::parse(&source_dir, &lookup) {
        Ok(counters) => Evidence::new(Source::Cgroup { dir: source_dir }, Fact::Memory(counters)),
        Err(error) => unavailable(&command, "the node's memory cgroup", &error.to_string()),
    }
}

/// `==> PATH` headed sections, as the cgroup script prints them.
fn split_files(text: &str) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(path) = line.strip_prefix("==> ") {
            files.push((path.to_string(), String::new()));
        } else if let Some((_, content)) = files.last_mut() {
            content.push_str(line);
            content.push('\n');
        }
    }
    files
}

/// Free space where the engine keeps images and containers (inside the VM
/// for a VM).
fn engine_storage(kind: EngineKind, info: &EngineInfo) -> Evidence {
    let root = &info.storage_root;
    match info.location {
        Location::Local => match host::space(Path::new(root)) {
            Ok(space) => Evidence::new(
                Source::Command {
                    command: format!("statfs {}", space.measured_at.display()),
                },
                Fact::Disk {
                    path: root.clone(),
                    available_bytes: space.available,
                    size_bytes: space.total,
                },
            ),
            Err(error) => unavailable(
                &format!("statfs {root}"),
                "the engine's storage",
                &error.to_string(),
            ),
        },
        Location::VirtualMachine if kind == EngineKind::Podman => {
            let argv = ["machine", "ssh", "--", "df", "-P", "-k", root.as_str()];
            let command = format!("podman {}", argv.join(" "));
            match process::run(Command::new("podman").args(argv), KERNEL_LOG_TIMEOUT) {
                Ok(done) if done.status.success() => {
                    df_evidence(&done.stdout_text(), root, &command)
                }
                Ok(done) => unavailable(&command, "the engine's storage", &done.stderr_text()),
                Err(error) => unavailable(&command, "the engine's storage", &error.to_string()),
            }
        }
        Location::VirtualMachine | Location::Remote => unavailable(
            &format!("{kind} info"),
            "the engine's storage",
            &format!("{root} is on the engine's own machine, which the {kind} CLI cannot `df`"),
        ),
    }
}

/// Free space at the node's containerd root, where a load writes.
fn node_disk(engine: &Engine, node: &str) -> Evidence {
    let command = format!("{} exec {node} df -P -k {CONTAINERD_ROOT}", engine.kind());
    match engine.exec_output(node, &["df", "-P", "-k", CONTAINERD_ROOT]) {
        Ok(text) => df_evidence(&text, CONTAINERD_ROOT, &command),
        Err(error) => unavailable(
            &command,
            &format!("free space at the node's {CONTAINERD_ROOT}"),
            &error.to_string(),
        ),
    }
}

/// `df -P -k` output as disk evidence for `path`.
fn df_evidence(text: &str, path: &str, command: &str) -> Evidence {
    let source = Source::Command {
        command: command.to_string(),
    };
    match parse_df(text) {
        Some((size_kib, available_kib)) => Evidence::new(
            source,
            Fact::Disk {
                path: path.to_string(),
                available_bytes: available_kib * 1024,
                size_bytes: size_kib * 1024,
            },
        )
        .with_excerpt(text.lines().nth(1).unwrap_or_default().trim()),
        None => Evidence::new(
            source,
            Fact::Unavailable {
                what: format!("free space at {path}"),
                reason: format!("`df` printed {text:?}, not a POSIX table"),
            },
        ),
    }
}

/// (size, available) in KiB from `df -P -k`: the data row's 2nd and 4th fields.
pub fn parse_df(text: &str) -> Option<(u64, u64)> {
    let row = text.lines().nth(1)?;
    let fields: Vec<&str> = row.split_whitespace().collect();
    Some((fields.get(1)?.parse().ok()?, fields.get(3)?.parse().ok()?))
}

/// The known failure texts in the tail of the node's containerd log
/// (`<engine> logs`): what containerd itself said about the failure.
fn containerd_log(engine: &Engine, node: &str) -> Vec<Evidence> {
    let command = format!(
        "{} logs --tail {CONTAINERD_LOG_LINES} {node}",
        engine.kind()
    );
    match engine.container_logs(node, CONTAINERD_LOG_LINES) {
        Ok(text) => log::scan(&text, &format!("`{command}`"))
            .evidence
            .into_iter()
            .filter(|e| matches!(e.fact, Fact::Signature { .. }))
            .collect(),
        Err(error) => vec![unavailable(
            &command,
            "the node's containerd log",
            &error.to_string(),
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_memory_cgroup_of_a_process() {
        // cgroup v1, docker and podman (cgroupfs manager), as on this project's CI.
        let v1 = "12:pids:/docker/84a5\n4:memory:/docker/84a5\n1:name=systemd:/docker/84a5\n";
        assert_eq!(
            memory_cgroup_dir(v1).unwrap(),
            Path::new("/sys/fs/cgroup/memory/docker/84a5")
        );
        let podman = "4:memory:/libpod_parent/libpod-4b1e\n";
        assert_eq!(
            memory_cgroup_dir(podman).unwrap(),
            Path::new("/sys/fs/cgroup/memory/libpod_parent/libpod-4b1e")
        );
        // cgroup v2 (systemd manager).
        let v2 = "0::/system.slice/docker-84a5.scope\n";
        assert_eq!(
            memory_cgroup_dir(v2).unwrap(),
            Path::new("/sys/fs/cgroup/system.slice/docker-84a5.scope")
        );
        assert_eq!(memory_cgroup_dir("3:cpu:/x\n"), None);
    }

    #[test]
    fn reads_posix_df_and_refuses_anything_else() {
        let busybox = "Filesystem           1024-blocks    Used Available Capacity Mounted on\ntmpfs                    32768     32768         0 100% /var/lib/containerd\n";
        assert_eq!(parse_df(busybox), Some((32768, 0)));
        let evidence = df_evidence(busybox, CONTAINERD_ROOT, "df");
        assert_eq!(
            evidence.fact,
            Fact::Disk {
                path: CONTAINERD_ROOT.into(),
                available_bytes: 0,
                size_bytes: 32 << 20
            }
        );
        let garbage = df_evidence("df: /x: No such file or directory\n", "/x", "df");
        assert!(
            matches!(garbage.fact, Fact::Unavailable { .. }),
            "{garbage:?}"
        );
    }

    #[test]
    fn splits_the_cgroup_script_output_into_files() {
        let text = "==> /sys/fs/cgroup/memory/memory.oom_control\noom_kill_disable 0\noom_kill 1\n==> /sys/fs/cgroup/memory/memory.usage_in_bytes\n4096\n";
        let files = split_files(text);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].1, "oom_kill_disable 0\noom_kill 1\n");
        assert_eq!(files[1].1, "4096\n");
    }
}
