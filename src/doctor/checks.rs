//! Judging measurements: each function turns what was measured into
//! findings with a status, what is needed, the source, and the fix.

use super::machine::Machine;
use super::ports::{PortState, Process};
use super::{Disk, EngineProbe, Finding, Measured, Needs, Options, Side, Status};
use crate::cluster::CLUSTER_LABEL;
use crate::engine::{EngineError, EngineInfo, EngineKind, Location, Selection};
use crate::units::bytes;

/// kind's documented minimums for `fs.inotify` (kind's "known issues": pods
/// fail with "too many open files" below them).
pub const INOTIFY_MINIMUMS: [(&str, u64); 2] = [
    ("fs/inotify/max_user_watches", 524_288),
    ("fs/inotify/max_user_instances", 512),
];

const GIB: u64 = 1 << 30;

pub(super) fn all(options: &Options, m: &Measured, needs: &Needs) -> Vec<Finding> {
    let selected = m.selection.as_ref().ok();
    let probe = selected.and_then(|s| m.engines.iter().find(|e| e.kind == s.engine.kind()));
    let info = probe.and_then(|p| p.info.as_ref()?.as_ref().ok());
    let mut findings = vec![engine(m, selected, probe)];
    // kind's engine and node names matter only for a cluster kind runs.
    if options.existing_context.is_none() {
        findings.extend(provider(options, m, selected));
    }
    findings.extend(podman_machine(m, selected));
    // A cluster to be reused holds its own names and ports.
    let creates = options.existing_context.is_none() && !options.cluster_up;
    if creates {
        findings.push(names(options, m, selected));
    }
    findings.push(memory(m, probe, needs));
    findings.push(storage(m, probe, needs));
    findings.extend(staging(m, probe, needs));
    findings.push(temp(m, needs));
    findings.extend(inotify(options, m, info));
    findings.extend(info.map(cgroup));
    if creates {
        findings.extend(ports(options, m));
    }
    findings.extend(images(m, selected));
    findings.extend(tools(options, m, creates));
    findings
}

fn finding(id: impl Into<String>, status: Status) -> Finding {
    Finding {
        id: id.into(),
        status,
        measured: String::new(),
        measured_bytes: None,
        needed: String::new(),
        needed_bytes: None,
        source: String::new(),
        side: None,
        fix: None,
    }
}

/// An engine error's first line, and its "fix:" part if it has one.
fn split_fix(error: &dyn std::fmt::Display) -> (String, Option<String>) {
    let text = error.to_string();
    match text.split_once("\n  fix: ") {
        Some((what, fix)) => (what.to_string(), Some(fix.to_string())),
        None => (text, None),
    }
}

fn describe(info: &EngineInfo) -> String {
    let location = match info.location {
        Location::Local => "on this machine",
        Location::VirtualMachine => "in a VM",
        Location::Remote => "remote",
    };
    format!(
        "{} {} {location}, {}, {} CPUs, {} memory, cgroup v{}, {} storage at {}",
        info.engine,
        info.version,
        if info.rootless { "rootless" } else { "rootful" },
        info.cpus,
        bytes(info.memory_bytes),
        info.cgroup_version,
        info.storage_driver,
        info.storage_root
    )
}

fn engine(m: &Measured, selected: Option<&Selection>, probe: Option<&EngineProbe>) -> Finding {
    let mut f = finding("engine", Status::Ok);
    f.needed = "a container engine that answers".into();
    match (&m.selection, probe) {
        (Err(error), _) => {
            f.status = Status::Fail;
            f.measured = error.to_string();
            f.source = "`docker version` and `podman version`".into();
            f.fix = Some("start docker (`sudo systemctl start docker`, or Docker Desktop) or podman (`podman machine start`), or install one: `sudo apt-get install docker.io` or `sudo apt-get install podman` (Debian and Ubuntu; elsewhere https://docs.docker.com/engine/install/ or https://podman.io/docs/installation)".into());
        }
        (_, Some(probe)) => {
            let reason = selected.map_or("", |s| s.reason.as_str());
            f.source = format!("`{} info` (chosen: {reason})", probe.kind);
            match &probe.info {
                Some(Ok(info)) => {
                    // Memory, CPUs and storage as the engine's kernel reports them.
                    f.measured = describe(info);
                    f.side = Some(Side::Engine);
                }
                None => {
                    f.status = Status::Fail;
                    f.measured = format!("{} was not asked for its info", probe.kind);
                }
                Some(Err(error)) => {
                    let (what, fix) = split_fix(error);
                    f.status = Status::Fail;
                    f.measured = what;
                    f.fix = fix.or_else(|| {
                        Some(format!(
                            "choose the other engine with `--engine {}`",
                            probe.kind.other()
                        ))
                    });
                }
            }
        }
        (Ok(selection), None) => {
            // Both engines are always probed; kept total rather than panicking.
            f.status = Status::Fail;
            f.measured = format!("{} was not probed", selection.engine.kind());
        }
    }
    f
}

/// The engine kind will use: `KIND_EXPERIMENTAL_PROVIDER`, else docker
/// whenever a docker CLI is installed (kind checks `docker -v` only), else
/// podman.
fn kinds_engine(options: &Options, m: &Measured) -> (Option<EngineKind>, String) {
    if let Some(value) = &options.kind_provider {
        let kind = match value.as_str() {
            "docker" => Some(EngineKind::Docker),
            "podman" => Some(EngineKind::Podman),
            _ => None,
        };
        return (kind, format!("KIND_EXPERIMENTAL_PROVIDER={value}"));
    }
    let docker_installed = m
        .engines
        .iter()
        .any(|e| e.kind == EngineKind::Docker && e.installed);
    if docker_installed {
        (
            Some(EngineKind::Docker),
            "kind's default: docker whenever a docker CLI is installed".into(),
        )
    } else {
        (
            Some(EngineKind::Podman),
            "kind's default without a docker CLI: podman".into(),
        )
    }
}

fn provider(options: &Options, m: &Measured, selected: Option<&Selection>) -> Option<Finding> {
    let selected = selected?;
    let ours = selected.engine.kind();
    let (theirs, why) = kinds_engine(options, m);
    let answering: Vec<String> = m
        .engines
        .iter()
        .filter(|e| e.answers)
        .map(|e| e.kind.to_string())
        .collect();
    let mut f = finding("engine.provider", Status::Ok);
    f.needed = "kind and loadmaster on the same engine".into();
    f.source = format!("{why}; loadmaster: {}", selected.reason);
    let both = if answering.len() == 2 {
        " (docker and podman both answer)"
    } else {
        ""
    };
    match theirs {
        Some(theirs) if theirs == ours => {
            f.measured = format!("kind and loadmaster both use {ours}{both}");
        }
        _ => {
            let theirs = theirs.map_or_else(
                || options.kind_provider.clone().unwrap_or_default(),
                |k| k.to_string(),
            );
            f.status = Status::Fail;
            f.measured = format!(
                "kind will use {theirs}, loadmaster uses {ours}{both}: kind then reports \"no nodes found for cluster\""
            );
            f.fix = Some(format!("export KIND_EXPERIMENTAL_PROVIDER={ours}"));
        }
    }
    Some(f)
}

fn podman_machine(m: &Measured, selected: Option<&Selection>) -> Option<Finding> {
    if selected.is_some_and(|s| s.engine.kind() != EngineKind::Podman) {
        return None;
    }
    let probe = m.engines.iter().find(|e| e.kind == EngineKind::Podman)?;
    let answer = probe.machine.as_ref()?;
    let mut f = finding("engine.machine", Status::Ok);
    f.needed = "the podman machine running".into();
    f.source = "`podman machine inspect`".into();
    match answer.as_ref().map(|all| all.first()) {
        Ok(Some(machine)) => {
            f.measured = describe_machine(machine);
            f.measured_bytes = Some(machine.memory_bytes);
            if !machine.running() {
                f.status = Status::Fail;
                f.fix = Some(format!("podman machine start {}", machine.name));
            }
        }
        Ok(None) => {
            f.status = Status::Fail;
            f.measured = "no podman machine".into();
            f.fix = Some(
                "podman machine init --memory 8192 --disk-size 100 && podman machine start".into(),
            );
        }
        Err(error) => {
            f.status = Status::Warn;
            f.measured = format!("not readable: {error}");
            f.fix = Some("run `podman machine list` as the user that runs kind".into());
        }
    }
    Some(f)
}

pub fn describe_machine(machine: &Machine) -> String {
    format!(
        "{} {}: {} CPUs, {} memory, {} disk, {}",
        machine.name,
        machine.state,
        machine.cpus,
        bytes(machine.memory_bytes),
        bytes(machine.disk_bytes),
        if machine.rootful {
            "rootful"
        } else {
            "rootless"
        }
    )
}

/// Containers in the way of `kind create cluster --name <cluster>`: named as
/// its nodes will be, or labelled as its nodes, on either engine.
fn names(options: &Options, m: &Measured, selected: Option<&Selection>) -> Finding {
    let cluster = &options.cluster;
    let planned = options.kind_config.node_names(cluster);
    let mut f = finding("cluster.name", Status::Ok);
    f.needed = format!(
        "no container named {} or labelled {CLUSTER_LABEL}={cluster}",
        planned.join(", ")
    );
    f.source = "`docker ps -a` and `podman ps -a` (names and kind's labels)".into();
    let mut found = Vec::new();
    let mut fixes = Vec::new();
    for probe in &m.engines {
        let cluster_nodes: Vec<&str> = probe
            .clusters
            .iter()
            .filter(|c| &c.name == cluster)
            .flat_map(|c| c.nodes.iter().map(|n| n.name.as_str()))
            .collect();
        let unlabelled: Vec<&str> = probe
            .names
            .iter()
            .map(String::as_str)
            .filter(|n| planned.iter().any(|p| p == n) && !cluster_nodes.contains(n))
            .collect();
        let other_engine = selected.is_some_and(|s| s.engine.kind() != probe.kind);
        if !cluster_nodes.is_empty() {
            let states: Vec<String> = probe
                .clusters
                .iter()
                .filter(|c| &c.name == cluster)
                .flat_map(|c| c.nodes.iter().map(|n| format!("{} {}", n.name, n.status)))
                .collect();
            found.push(format!(
                "kind cluster {cluster:?} exists on {}{}: {}",
                probe.kind,
                if other_engine {
                    " (not the selected engine: kind would report \"no nodes found for cluster\")"
                } else {
                    ""
                },
                states.join(", ")
            ));
            fixes.push(format!(
                "KIND_EXPERIMENTAL_PROVIDER={} kind delete cluster --name {cluster}",
                probe.kind
            ));
        }
        if !unlabelled.is_empty() {
            found.push(format!(
                "{} has containers named {} (\"name is already in use\")",
                probe.kind,
                unlabelled.join(", ")
            ));
            fixes.push(format!("{} rm -f {}", probe.kind, unlabelled.join(" ")));
        }
    }
    if found.is_empty() {
        f.measured = format!("no container or cluster named {cluster:?} on docker or podman");
    } else {
        f.status = Status::Fail;
        f.measured = found.join("; ");
        fixes.push("or plan another name with `--cluster`".to_string());
        f.fix = Some(fixes.join("; "));
    }
    f
}

fn memory(m: &Measured, probe: Option<&EngineProbe>, needs: &Needs) -> Finding {
    let needed = needs.memory_bytes();
    let mut f = finding("memory", Status::Ok);
    f.needed = format!("{} (see requirements)", bytes(needed));
    f.needed_bytes = Some(needed);
    let info = probe.and_then(|p| p.info.as_ref()?.as_ref().ok());
    let location = info.map_or(Location::Local, |i| i.location);
    let available = match (location, info) {
        (Location::Local, _) => match &m.mem_available {
            Ok(available) => {
                let whose = match info {
                    Some(info) => format!(
                        "the {} engine shares this kernel; total {}",
                        info.engine,
                        bytes(info.memory_bytes)
                    ),
                    None => "no engine answers: this machine's".into(),
                };
                f.source = format!("MemAvailable in /proc/meminfo ({whose})");
                f.side = Some(Side::Client);
                Some(*available)
            }
            Err(error) => {
                f.source = "/proc/meminfo".into();
                f.measured = format!("not readable: {error}");
                None
            }
        },
        (_, Some(info)) if info.engine == EngineKind::Podman => {
            match probe.and_then(|p| p.vm_mem_free.as_ref()) {
                Some(Ok(free)) => {
                    f.source = format!(
                        "`podman info` host.memFree, inside the VM (its total: {})",
                        bytes(info.memory_bytes)
                    );
                    f.side = Some(Side::Engine);
                    Some(*free)
                }
                other => {
                    let why = match other {
                        Some(Err(e)) => e.clone(),
                        _ => "not asked".into(),
                    };
                    f.source = "`podman info`".into();
                    f.measured = format!("VM memory free not readable: {why}");
                    None
                }
            }
        }
        (_, Some(info)) if m.disks.as_ref().and_then(|d| d.mem_available).is_some() => {
            f.source = format!(
                "MemAvailable of /proc/meminfo inside a measuring container on the {} engine (its kernel's; total {})",
                info.engine,
                bytes(info.memory_bytes)
            );
            f.side = Some(Side::Engine);
            m.disks.as_ref().and_then(|d| d.mem_available)
        }
        (_, Some(info)) => {
            f.side = Some(Side::Engine);
            f.source = "`docker info` MemTotal (the VM's; its free memory is not reported, and no measuring container ran)".into();
            f.measured = format!(
                "not measured: the {} VM does not report free memory; it has {} in all",
                info.engine,
                bytes(info.memory_bytes)
            );
            if info.memory_bytes < needed {
                f.status = Status::Fail;
                f.measured_bytes = Some(info.memory_bytes);
            } else {
                f.status = Status::Warn;
            }
            f.fix = Some("check the VM's use with `docker stats --no-stream`; raise it in Docker Desktop > Settings > Resources > Memory".into());
            return f;
        }
        (_, None) => None,
    };
    let Some(available) = available else {
        f.status = Status::Warn;
        return f;
    };
    f.measured = format!("{} available", bytes(available));
    f.measured_bytes = Some(available);
    if available < needed {
        f.status = Status::Fail;
        f.fix = Some(match info {
            Some(info) if info.location == Location::VirtualMachine => {
                let short = needed - available;
                let target = (info.memory_bytes + short).div_ceil(GIB) * 1024;
                format!(
                    "podman machine stop && podman machine set --memory {target} && podman machine start"
                )
            }
            _ => "free memory on this machine (stop unused clusters: `kind get clusters`), or plan fewer nodes or fewer builds at once (budget.parallelBuilds)".into(),
        });
    }
    f
}

fn storage(m: &Measured, probe: Option<&EngineProbe>, needs: &Needs) -> Finding {
    let shared = m.disks.as_ref().is_some_and(|d| d.shared);
    // A save staged on the storage root's filesystem takes room there too.
    let needed = needs.storage_bytes() + if shared { needs.staging_bytes() } else { 0 };
    let mut f = finding("disk.storage", Status::Ok);
    f.needed = if shared && needs.staging_bytes() > 0 {
        format!(
            "{} (see requirements; with the save staging copy, on the same filesystem)",
            bytes(needed)
        )
    } else {
        format!("{} (see requirements)", bytes(needed))
    };
    f.needed_bytes = Some(needed);
    let (Some(info), Some(disks)) = (probe.and_then(|p| p.info.as_ref()?.as_ref().ok()), &m.disks)
    else {
        f.status = Status::Warn;
        f.measured = "not measured: no engine answers".into();
        f.source = "engine info".into();
        return f;
    };
    match &disks.storage {
        Ok(disk) => {
            judge_disk(&mut f, disk, needed);
            if f.status == Status::Fail {
                f.fix = Some(format!(
                    "`{} system prune` (stopped containers, unused images), or free space on {}{}",
                    info.engine,
                    disk.at,
                    vm_disk_hint(info.engine, disk.side)
                ));
            }
        }
        Err(error) => {
            f.status = Status::Warn;
            f.side = Some(Side::Engine);
            let machine = m
                .engines
                .iter()
                .find(|e| e.kind == info.engine)
                .and_then(|p| p.machine.as_ref())
                .and_then(|m| m.as_ref().ok())
                .and_then(|all| all.first());
            let (what, fix) = split_fix(error);
            f.measured = match machine {
                Some(machine) => format!(
                    "not measured on the engine's side ({what}); the VM's disk is {}",
                    bytes(machine.disk_bytes)
                ),
                None => format!("not measured on the engine's side: {what}"),
            };
            f.source = format!(
                "a measuring container on the {} engine, for its storage root {}",
                info.engine, info.storage_root
            );
            f.fix = fix.or_else(|| {
                Some(match info.engine {
                    EngineKind::Podman => format!(
                        "check with `podman machine ssh df -h {}`",
                        info.storage_root
                    ),
                    EngineKind::Docker => "check with `docker system df`; raise the disk limit in Docker Desktop > Settings > Resources".into(),
                })
            });
        }
    }
    f
}

/// The measured figure of a disk finding, its side and source, and its
/// status against `needed`.
fn judge_disk(f: &mut Finding, disk: &Disk, needed: u64) {
    f.measured = format!(
        "{} free of {}{}",
        bytes(disk.available),
        bytes(disk.total),
        if disk.tmpfs {
            " on tmpfs: files here take memory, not disk"
        } else {
            ""
        }
    );
    f.measured_bytes = Some(disk.available);
    f.source = disk.how.clone();
    f.side = Some(disk.side);
    if disk.available < needed {
        f.status = Status::Fail;
    }
}

fn vm_disk_hint(engine: EngineKind, side: Side) -> &'static str {
    match (side, engine) {
        (Side::Client, _) => "",
        (Side::Engine, EngineKind::Podman) => {
            " inside the engine's VM (`podman machine ssh`), or give the machine a bigger disk (`podman machine init --disk-size`)"
        }
        (Side::Engine, EngineKind::Docker) => {
            " on the engine's side, or raise the disk limit in Docker Desktop > Settings > Resources"
        }
    }
}

/// Where the engine stages a whole image for `save` (docker's classic
/// store, podman): there must be room for the largest image there, on the
/// engine's side, and on tmpfs that room is memory.
fn staging(m: &Measured, probe: Option<&EngineProbe>, needs: &Needs) -> Option<Finding> {
    let info = probe.and_then(|p| p.info.as_ref()?.as_ref().ok())?;
    let dir = info.save_staging.as_ref()?;
    let disks = m.disks.as_ref()?;
    let staged = disks.staging.as_ref()?;
    let needed = needs.staging_bytes();
    let mut f = finding("disk.staging", Status::Ok);
    f.needed = format!(
        "{} in {dir}: `{} save` writes the whole image there before it streams{}",
        bytes(needed),
        info.engine,
        if disks.shared {
            " (the storage root's filesystem: counted in disk.storage too)"
        } else {
            ""
        }
    );
    f.needed_bytes = Some(needed);
    match staged {
        Ok(disk) => {
            judge_disk(&mut f, disk, needed);
            if disk.tmpfs {
                if f.status == Status::Ok {
                    f.status = Status::Warn;
                }
                f.fix = Some(staging_fix(info.engine, "on disk"));
            } else if f.status == Status::Fail {
                f.fix = Some(staging_fix(
                    info.engine,
                    &format!("with {} free", bytes(needed)),
                ));
            }
        }
        Err(error) => {
            let (what, fix) = split_fix(error);
            f.status = Status::Warn;
            f.side = Some(Side::Engine);
            f.measured = format!("not measured on the engine's side: {what}");
            f.source = format!(
                "a measuring container on the {} engine, for {dir}",
                info.engine
            );
            f.fix = fix;
        }
    }
    Some(f)
}

fn staging_fix(engine: EngineKind, wanted: &str) -> String {
    match engine {
        EngineKind::Podman => format!(
            "point the podman service's staging at a directory {wanted}: `image_copy_tmp_dir = \"/var/tmp\"` under `[engine]` in containers.conf on the engine's side (or TMPDIR in the service's environment), then restart the service"
        ),
        EngineKind::Docker => format!(
            "start dockerd with `DOCKER_TMPDIR` set to a directory {wanted}, or free space under its data root"
        ),
    }
}

fn temp(m: &Measured, needs: &Needs) -> Finding {
    let needed = needs.temp_bytes();
    let mut f = finding("disk.temp", Status::Ok);
    f.needed = format!(
        "{} for `kind load docker-image` (loadmaster streams: none)",
        bytes(needed)
    );
    f.needed_bytes = Some(needed);
    match &m.temp {
        Ok(space) => {
            f.source = format!("statfs of {} (TMPDIR, else /tmp)", space.path.display());
            f.side = Some(Side::Client);
            f.measured_bytes = Some(space.available);
            f.measured = format!(
                "{} free{}",
                bytes(space.available),
                if space.tmpfs {
                    " on tmpfs: files here take memory, not disk"
                } else {
                    ""
                }
            );
            if space.tmpfs {
                f.status = Status::Warn;
                f.fix = Some(
                    "point TMPDIR at a disk-backed directory: `export TMPDIR=/var/tmp`".into(),
                );
            } else if space.available < needed {
                f.status = Status::Warn;
                f.fix = Some(format!(
                    "free space on {}, or `export TMPDIR=` a directory with {} free",
                    space.path.display(),
                    bytes(needed)
                ));
            }
        }
        Err(error) => {
            f.status = Status::Warn;
            f.measured = format!("not readable: {error}");
            f.source = "statfs of the temp dir".into();
        }
    }
    f
}

fn inotify(options: &Options, m: &Measured, info: Option<&EngineInfo>) -> Vec<Finding> {
    let in_vm = info.is_some_and(|i| i.location != Location::Local);
    m.inotify
        .iter()
        .map(|(name, value)| {
            let minimum = INOTIFY_MINIMUMS
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, min)| *min);
            let key = name.replace('/', ".");
            let short = key.trim_start_matches("fs.inotify.");
            let mut f = finding(format!("kernel.inotify.{short}"), Status::Ok);
            f.needed = format!("at least {minimum} (kind's known issues)");
            f.source = format!("{}/sys/{name}", options.proc_root.display());
            let fix = format!(
                "sudo sysctl {key}={minimum} && echo '{key} = {minimum}' | sudo tee /etc/sysctl.d/99-kind.conf"
            );
            match value {
                Ok(_) if in_vm => {
                    f.status = Status::Warn;
                    f.measured = "not measured: the nodes run in the engine's VM, whose kernel has its own limits".into();
                    f.fix = Some(format!("check with `podman machine ssh sysctl {key}`"));
                }
                Ok(value) => {
                    f.measured = value.to_string();
                    if *value < minimum {
                        f.status = Status::Warn;
                        f.measured =
                            format!("{value}: pods may fail with \"too many open files\"");
                        f.fix = Some(fix);
                    }
                }
                Err(error) => {
                    f.status = Status::Warn;
                    f.measured = format!("not readable: {error}");
                }
            }
            f
        })
        .collect()
}

fn cgroup(info: &EngineInfo) -> Finding {
    let mut f = finding("kernel.cgroup", Status::Ok);
    f.measured = format!("cgroup v{}", info.cgroup_version);
    f.needed = "cgroup v2 (v1 works with older node images only)".into();
    f.source = format!("`{} info`", info.engine);
    if info.cgroup_version < 2 {
        f.status = Status::Warn;
        f.fix = Some("boot with `systemd.unified_cgroup_hierarchy=1` on the kernel command line; meanwhile use a kind node image whose Kubernetes still runs on cgroup v1 (kubelet refuses v1 by default from 1.35)".into());
    }
    f
}

fn ports(options: &Options, m: &Measured) -> Vec<Finding> {
    let config = options.kind_config.path.display();
    m.ports
        .iter()
        .map(|(port, state)| {
            let mut f = finding(format!("port.{}/{}", port.port, port.protocol), Status::Ok);
            f.needed = format!(
                "{} free on {} for {} in {config}",
                port.port, port.address, port.origin
            );
            match state {
                PortState::Free { checked } => {
                    f.measured = "free".into();
                    f.source = checked.clone();
                }
                PortState::NotChecked => {
                    f.status = Status::Warn;
                    f.measured = "not checked: SCTP ports are not probed".into();
                    f.source = "none".into();
                }
                PortState::Busy { on, owner, checked } => {
                    f.status = Status::Fail;
                    f.source = format!("{checked}; owner from /proc/<pid>/fd");
                    let holder = owner.as_ref().map_or_else(
                        || "an unknown process (not readable)".to_string(),
                        |p| format!("{} (pid {})", p.name, p.pid),
                    );
                    f.measured = format!("in use on {on} by {holder}");
                    f.fix = Some(port_fix(owner.as_ref(), port.port, &config.to_string()));
                }
            }
            f
        })
        .collect()
}

fn port_fix(owner: Option<&Process>, port: u16, config: &str) -> String {
    let change = format!("or change hostPort {port} in {config}");
    match owner {
        Some(p) if p.name == "docker-proxy" => {
            format!(
                "a docker container publishes it: `docker ps --filter publish={port}`, stop that container, {change}"
            )
        }
        Some(p) if p.name == "gvproxy" => {
            format!(
                "podman machine's gvproxy still holds it: `podman machine stop && podman machine start`, {change}"
            )
        }
        Some(p) if p.name.starts_with("rootlessport") || p.name == "conmon" => {
            format!(
                "a podman container publishes it: `podman ps --filter publish={port}`, stop that container, {change}"
            )
        }
        Some(p) => format!("stop {} (`kill {}`), {change}", p.name, p.pid),
        None => format!("find the holder with `sudo ss -lptn 'sport = :{port}'`, {change}"),
    }
}

fn images(m: &Measured, selected: Option<&Selection>) -> Vec<Finding> {
    let engine = selected.map(|s| s.engine.kind());
    m.images
        .iter()
        .map(|(image, details)| {
            let mut f = finding(format!("image.{image}"), Status::Ok);
            f.needed = "present in the selected engine, to size and load it".into();
            f.source = engine.map_or_else(String::new, |e| format!("`{e} image inspect {image}`"));
            match details {
                Ok(details) => {
                    f.measured = format!("{} ({})", bytes(details.size), details.id);
                    f.measured_bytes = Some(details.size);
                }
                Err(EngineError::ImageNotFound {
                    engine,
                    also_in: Some(other),
                    ..
                }) => {
                    f.status = Status::Fail;
                    f.measured = format!(
                        "not in {engine}, but in {other}: kind reports \"image not present locally\""
                    );
                    f.fix = Some(format!(
                        "rerun with `--engine {other}`, or copy it: `{other} save {image} | {engine} load`"
                    ));
                }
                Err(EngineError::ImageNotFound { engine, .. }) => {
                    f.status = Status::Warn;
                    f.measured = format!(
                        "not in {engine} yet: its size is a stated default (see requirements)"
                    );
                    f.fix = Some(format!("build or pull it first (`{engine} build` / `{engine} pull`) for a measured size"));
                }
                Err(error) => {
                    let (what, fix) = split_fix(error);
                    f.status = Status::Warn;
                    f.measured = what;
                    f.fix = fix;
                }
            }
            f
        })
        .collect()
}

/// The release of kind the install commands name: the one these checks
/// and the kind tier were written against.
pub const KIND_VERSION: &str = "v0.33.0";

/// kind and kubectl. kind is required when a kind cluster is to be
/// created (nothing else can create it, so `up` would stop there after its
/// builds); kubectl when something is deployed (every deploy step applies
/// and waits with it). Missing where required, each fails with the command
/// that installs it; elsewhere it is a warning (`down` needs kind, a failed
/// test's evidence kubectl).
fn tools(options: &Options, m: &Measured, creates_kind_cluster: bool) -> Vec<Finding> {
    m.tools
        .iter()
        .map(|tool| {
            let mut f = finding(format!("tool.{}", tool.name), Status::Ok);
            f.needed = format!("{} on PATH", tool.name);
            f.source = match tool.name {
                "kind" => "`kind version`".into(),
                _ => "`kubectl version --client -o json`".into(),
            };
            match &tool.version {
                Ok(version) => f.measured = version.clone(),
                Err(why) => {
                    f.measured = why.clone();
                    f.status = Status::Fail;
                    match tool.name {
                        "kind" if creates_kind_cluster => {
                            f.measured = format!(
                                "{why}: the kind CLI is not on PATH to create kind cluster {}",
                                options.cluster
                            );
                        }
                        "kubectl" if options.deploys => {
                            f.measured = format!("{why}: the plan's deploy steps apply with it");
                        }
                        _ => f.status = Status::Warn,
                    }
                    f.fix = Some(match tool.name {
                        "kind" => format!(
                            "install kind: `go install sigs.k8s.io/kind@{KIND_VERSION}` (Go 1.22+), or the release binary: `curl -Lo ./kind https://kind.sigs.k8s.io/dl/{KIND_VERSION}/kind-linux-amd64 && chmod +x ./kind && sudo mv ./kind /usr/local/bin/kind` (other systems: https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
                        ),
                        _ => "install kubectl: `curl -LO \"https://dl.k8s.io/release/$(curl -Ls https://dl.k8s.io/release/stable.txt)/bin/linux/amd64/kubectl\" && sudo install kubectl /usr/local/bin/`, or your package manager (`sudo apt-get install kubectl` from the Kubernetes apt repository, `brew install kubectl`; https://kubernetes.io/docs/tasks/tools/)".into(),
                    });
                }
            }
            f
        })
        .collect()
}
