//! `loadmaster doctor`: measures the machine against what the environment
//! needs, before anything starts.
//!
//! Each check yields a [`Finding`]: ok, warn or fail, the measured value,
//! what is needed, where the measurement came from, and the command that
//! fixes it. The measurements are the engine's (the podman machine's or
//! Docker Desktop's VM, not the laptop's, when the engine runs in one), made
//! in parallel threads so that the whole pre-flight stays well under two
//! seconds. [`measure`] does the probing; `checks` turns measurements into
//! findings.

mod checks;
pub mod machine;
pub mod ports;
pub mod requirements;

pub use crate::finding::{Finding, Side, Status};
pub use crate::kind_config::{KindConfig, KindConfigError};
pub use requirements::{Estimate, ImageNeed, Need, Needs, Requirements, Staging};

use crate::cluster::{self, Cluster};
use crate::engine::{
    self, Engine, EngineChoice, EngineError, EngineInfo, EngineKind, ImageDetails, Location,
    SelectError, Selection,
};
use crate::host;
use crate::process;
use serde::Serialize;
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

/// How long one probe (a tool's version, a podman machine query) may take.
/// Generous: a cold podman machine answers slowly, and a hung probe must not
/// hang the doctor.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// What to check: the planned cluster and how the doctor reaches the machine.
#[derive(Clone, Debug)]
pub struct Options {
    /// The planned kind cluster's name.
    pub cluster: String,
    /// Its kind config (kind's default cluster without one).
    pub kind_config: KindConfig,
    /// An existing cluster (`provider: existing`) by its kubeconfig
    /// context: kind is not needed, and no node of it runs on this machine.
    pub existing_context: Option<String>,
    /// The planned kind cluster runs already and is to be reused (`up` of
    /// a plan whose cluster is up): its node names and host ports are its
    /// own, not conflicts, and its nodes' memory is already in use.
    pub cluster_up: bool,
    /// Something is applied to the cluster (a plan's deploy steps; without
    /// a plan, taken to be so): kubectl is required, not only advised.
    pub deploys: bool,
    /// Images the environment will load into every node.
    pub images: Vec<String>,
    /// Builds that run at once, and the peak memory of one (with its source).
    pub builds: Option<(u32, Estimate)>,
    /// The `--engine` flag.
    pub engine: Option<EngineChoice>,
    /// `LOADMASTER_ENGINE` and `KIND_EXPERIMENTAL_PROVIDER`, read once.
    pub loadmaster_engine: Option<String>,
    pub kind_provider: Option<String>,
    /// Where temporary files go (`TMPDIR`, else /tmp).
    pub temp_dir: PathBuf,
    /// Where `/proc` is: a fixture tree in tests.
    pub proc_root: PathBuf,
}

impl Options {
    /// Options for `cluster`, with the environment read from this process:
    /// `LOADMASTER_ENGINE`, `KIND_EXPERIMENTAL_PROVIDER`, `TMPDIR`, and
    /// `LOADMASTER_PROC_ROOT` (tests point it at a fixture `/proc`).
    pub fn from_environment(cluster: &str, kind_config: KindConfig) -> Options {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Options {
            cluster: cluster.to_string(),
            kind_config,
            existing_context: None,
            cluster_up: false,
            deploys: true,
            images: Vec::new(),
            builds: None,
            engine: None,
            loadmaster_engine: var("LOADMASTER_ENGINE"),
            kind_provider: var("KIND_EXPERIMENTAL_PROVIDER"),
            temp_dir: host::temp_dir(var("TMPDIR").as_deref()),
            proc_root: PathBuf::from(var("LOADMASTER_PROC_ROOT").unwrap_or("/proc".into())),
        }
    }
}

/// The doctor's answer.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub cluster: String,
    /// The selected engine, if one could be selected.
    pub engine: Option<EngineKind>,
    pub engine_reason: Option<String>,
    pub requirements: Requirements,
    pub needs: Needs,
    pub findings: Vec<Finding>,
    /// How long the doctor took.
    pub elapsed_ms: u64,
}

impl Report {
    pub fn count(&self, status: Status) -> usize {
        self.findings.iter().filter(|f| f.status == status).count()
    }

    pub fn finding(&self, id: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.id == id)
    }
}

/// Why the doctor itself could not run (exit 2), as opposed to a failed check.
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    #[error(transparent)]
    KindConfig(#[from] KindConfigError),
    #[error(transparent)]
    Select(#[from] SelectError),
}

/// What one engine answered.
struct EngineProbe {
    kind: EngineKind,
    /// `info`, asked of the selected engine only: podman's takes seconds
    /// (it samples CPU use), and of the other engine only its containers
    /// matter (names in the way, where kind will look).
    info: Option<Result<EngineInfo, EngineError>>,
    /// Its CLI is on PATH (kind picks docker whenever a docker CLI is).
    installed: bool,
    /// It listed its containers.
    answers: bool,
    /// kind clusters on it (empty when it does not answer).
    clusters: Vec<Cluster>,
    /// Names of all its containers.
    names: Vec<String>,
    /// `podman machine inspect`, asked when podman runs in (or may have) a VM.
    machine: Option<Result<Vec<machine::Machine>, String>>,
    /// `podman info` memFree, asked when podman runs in a VM.
    vm_mem_free: Option<Result<u64, String>>,
}

/// A tool's version, or why there is none.
struct ToolProbe {
    name: &'static str,
    version: Result<String, String>,
}

/// Everything measured, before judging.
struct Measured {
    selection: Result<Selection, SelectError>,
    engines: Vec<EngineProbe>,
    images: Vec<(String, Result<ImageDetails, EngineError>)>,
    mem_available: std::io::Result<u64>,
    temp: std::io::Result<host::Space>,
    /// The selected engine's disks; None when it does not answer.
    disks: Option<Disks>,
    inotify: Vec<(&'static str, std::io::Result<u64>)>,
    ports: Vec<(ports::HostPort, ports::PortState)>,
    tools: Vec<ToolProbe>,
}

/// One filesystem the environment writes to, as measured on one side.
struct Disk {
    available: u64,
    total: u64,
    tmpfs: bool,
    side: Side,
    /// How it was read, for the finding's source.
    how: String,
    /// Where free space is to be made, for the fix.
    at: String,
}

/// The selected engine's storage root and save staging directory.
struct Disks {
    storage: Result<Disk, String>,
    /// None when the engine's `save` streams without staging.
    staging: Option<Result<Disk, String>>,
    /// The staging directory is on the storage root's filesystem, so the
    /// storage root must hold both.
    shared: bool,
    /// `MemAvailable` read inside the engine, when its disks were.
    mem_available: Option<u64>,
}

/// Runs every check. An error only when the doctor cannot run at all (an
/// engine name it does not know).
pub fn run(options: &Options) -> Result<Report, DoctorError> {
    let started = Instant::now();
    let measured = measure(options);
    let selection = match &measured.selection {
        Err(SelectError::UnknownEngine { source_name, value }) => {
            return Err(DoctorError::Select(SelectError::UnknownEngine {
                source_name: source_name.clone(),
                value: value.clone(),
            }));
        }
        Err(SelectError::NoEngine { .. }) => None,
        Ok(selection) => Some(selection),
    };
    let requirements = requirements_of(options, &measured);
    let needs = requirements.needs();
    let findings = checks::all(options, &measured, &needs);
    Ok(Report {
        cluster: options.cluster.clone(),
        engine: selection.map(|s| s.engine.kind()),
        engine_reason: selection.map(|s| s.reason.clone()),
        requirements,
        needs,
        findings,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// The requirements of what `options` asks for, sizes from the engine.
fn requirements_of(options: &Options, measured: &Measured) -> Requirements {
    let images = measured
        .images
        .iter()
        .map(|(image, details)| match details {
            Ok(details) => ImageNeed {
                image: image.clone(),
                size: Estimate::new(
                    details.size,
                    format!("image inspect {image} (Size) on the selected engine"),
                ),
                present: true,
            },
            Err(_) => ImageNeed {
                image: image.clone(),
                size: Estimate::new(
                    requirements::UNKNOWN_IMAGE_DEFAULT,
                    format!(
                        "stated default {}: the image is not built yet and no earlier run recorded its size",
                        crate::units::bytes(requirements::UNKNOWN_IMAGE_DEFAULT)
                    ),
                ),
                present: false,
            },
        })
        .collect();
    let local_nodes = match options.existing_context {
        Some(_) => 0,
        None => options.kind_config.kubernetes_nodes(),
    };
    let mut requirements = Requirements::new(local_nodes, images);
    requirements.nodes_running = options.cluster_up;
    requirements.staging = selected_info(measured).and_then(|info| {
        Some(Staging {
            engine: info.engine,
            dir: info.save_staging.clone()?,
        })
    });
    if let Some((parallel, peak)) = &options.builds {
        requirements.parallel_builds = *parallel;
        requirements.build_peak = Some(peak.clone());
    }
    requirements
}

/// Probes everything at once: each engine, the images, this machine's
/// kernel and ports, and the tools.
fn measure(options: &Options) -> Measured {
    let env = |name: &str| match name {
        "LOADMASTER_ENGINE" => options.loadmaster_engine.clone(),
        "KIND_EXPERIMENTAL_PROVIDER" => options.kind_provider.clone(),
        _ => None,
    };
    thread::scope(|scope| {
        let selecting = scope.spawn(|| {
            let selection = engine::select(options.engine, &env);
            let (images, described) = match &selection {
                Ok(selection) => {
                    let kind = selection.engine.kind();
                    let describing = scope.spawn(move || describe_engine(kind));
                    let images = inspect_images(scope, &selection.engine, &options.images);
                    (
                        images,
                        Some(describing.join().expect("engine info panicked")),
                    )
                }
                Err(_) => (Vec::new(), None),
            };
            (selection, images, described)
        });
        let engines: Vec<_> = EngineKind::ALL
            .map(|kind| scope.spawn(move || list_containers(kind)))
            .into_iter()
            .collect();
        let tools: Vec<_> = [
            ("kind", &["version"][..]),
            ("kubectl", &["version", "--client", "-o", "json"][..]),
        ]
        .into_iter()
        .filter(|(name, _)| *name != "kind" || options.existing_context.is_none())
        .map(|(name, args)| {
            scope.spawn(move || ToolProbe {
                name,
                version: tool_version(name, args),
            })
        })
        .collect();
        let host_ports = scope.spawn(|| {
            options
                .kind_config
                .host_ports
                .iter()
                .map(|port| (port.clone(), ports::probe(&options.proc_root, port)))
                .collect()
        });
        let proc_root = &options.proc_root;
        let inotify = [
            "fs/inotify/max_user_watches",
            "fs/inotify/max_user_instances",
        ]
        .map(|name| (name, host::sysctl(proc_root, name)))
        .into();
        let mem_available = host::mem_available(proc_root);
        let temp = host::space(&options.temp_dir);

        let (selection, images, described) = selecting.join().expect("select thread panicked");
        let mut engines: Vec<EngineProbe> = engines
            .into_iter()
            .map(|e| e.join().expect("engine probe panicked"))
            .collect();
        if let Some(described) = described
            && let Some(probe) = engines.iter_mut().find(|e| e.kind == described.kind)
        {
            probe.info = Some(described.info);
            probe.machine = described.machine;
            probe.vm_mem_free = described.vm_mem_free;
        }
        let disks = selection.as_ref().ok().and_then(|selection| {
            let probe = engines.iter().find(|e| e.kind == selection.engine.kind())?;
            let info = probe.info.as_ref()?.as_ref().ok()?;
            Some(measure_disks(&selection.engine, info))
        });
        Measured {
            selection,
            engines,
            images,
            mem_available,
            temp,
            disks,
            inotify,
            ports: host_ports.join().expect("port probe panicked"),
            tools: tools
                .into_iter()
                .map(|t| t.join().expect("tool probe panicked"))
                .collect(),
        }
    })
}

/// The selected engine's info, when it answered.
fn selected_info(measured: &Measured) -> Option<&EngineInfo> {
    let selection = measured.selection.as_ref().ok()?;
    let probe = measured
        .engines
        .iter()
        .find(|e| e.kind == selection.engine.kind())?;
    probe.info.as_ref()?.as_ref().ok()
}

/// The engine's storage root and staging directory (and its free memory,
/// when read there), measured where the engine sees them: from inside the
/// engine when its files are out of this process's sight, else with
/// `statfs` here.
fn measure_disks(engine: &Engine, info: &EngineInfo) -> Disks {
    let staging = info.save_staging.as_deref();
    if info.files_elsewhere() {
        let mut paths = vec![info.storage_root.as_str()];
        paths.extend(staging);
        return match engine.measure_inside(&paths, cluster::CLUSTER_LABEL) {
            Ok(side) => {
                let disk = |n: usize| {
                    let space = &side.paths[n];
                    Disk {
                        available: space.available,
                        total: space.total,
                        tmpfs: space.tmpfs(),
                        side: Side::Engine,
                        how: format!(
                            "`df` of {} ({}) inside a container of {} on the {} engine (no network, mounted read-only)",
                            space.path, space.fs_type, side.image, info.engine
                        ),
                        at: space.path.clone(),
                    }
                };
                Disks {
                    storage: Ok(disk(0)),
                    staging: staging.map(|_| Ok(disk(1))),
                    shared: side.paths.len() == 2 && side.paths[0].device == side.paths[1].device,
                    mem_available: side.mem_available,
                }
            }
            Err(error) => Disks {
                storage: Err(error.clone()),
                staging: staging.map(|_| Err(error)),
                shared: false,
                mem_available: None,
            },
        };
    }
    let local = |path: &str, what: &str| {
        host::space(std::path::Path::new(path))
            .map(|space| {
                let how = if space.measured_at == space.path {
                    format!(
                        "statfs of {} ({} {what}; the engine shares this machine's kernel and mounts)",
                        space.path.display(),
                        info.engine
                    )
                } else {
                    format!(
                        "statfs of {}: the {} {what} {} is not reachable by this user (same filesystem unless it is a mount point)",
                        space.measured_at.display(),
                        info.engine,
                        space.path.display()
                    )
                };
                Disk {
                    available: space.available,
                    total: space.total,
                    tmpfs: space.tmpfs,
                    side: Side::Client,
                    how,
                    at: space.measured_at.display().to_string(),
                }
            })
            .map_err(|e| format!("statfs of {path}: {e}"))
    };
    Disks {
        storage: local(&info.storage_root, "storage root"),
        staging: staging.map(|dir| local(dir, "save staging directory")),
        shared: staging.is_some_and(|dir| same_filesystem(&info.storage_root, dir)),
        mem_available: None,
    }
}

/// Whether two local paths are on one filesystem (their nearest existing
/// ancestors, as a closed storage root still shows its device).
fn same_filesystem(a: &str, b: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let device = |path: &str| {
        std::path::Path::new(path)
            .ancestors()
            .find_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.dev())
    };
    matches!((device(a), device(b)), (Some(x), Some(y)) if x == y)
}

fn inspect_images<'scope>(
    scope: &'scope thread::Scope<'scope, '_>,
    engine: &Engine,
    images: &[String],
) -> Vec<(String, Result<ImageDetails, EngineError>)> {
    let asks: Vec<_> = images
        .iter()
        .map(|image| {
            let engine = engine.clone();
            let image = image.clone();
            scope.spawn(move || {
                let details = engine.image_inspect(&image);
                (image, details)
            })
        })
        .collect();
    asks.into_iter()
        .map(|ask| ask.join().expect("image inspect panicked"))
        .collect()
}

/// The selected engine's description, and its podman machine's figures.
struct Described {
    kind: EngineKind,
    info: Result<EngineInfo, EngineError>,
    machine: Option<Result<Vec<machine::Machine>, String>>,
    vm_mem_free: Option<Result<u64, String>>,
}

fn describe_engine(kind: EngineKind) -> Described {
    let engine = Engine::new(kind);
    let info = engine.info();
    let in_vm = info
        .as_ref()
        .is_ok_and(|i| i.location == Location::VirtualMachine);
    // podman refuses `machine` commands as root, and on Linux a stopped
    // rootless podman has no machine to start: ask only when it can mean
    // something.
    let may_have_machine =
        in_vm || (matches!(info, Err(EngineError::NotRunning { .. })) && !running_as_root());
    let (machine, vm_mem_free) = if kind == EngineKind::Podman && may_have_machine {
        thread::scope(|scope| {
            let memory = in_vm.then(|| scope.spawn(|| machine::mem_free(PROBE_TIMEOUT)));
            (
                Some(machine::inspect(PROBE_TIMEOUT)),
                memory.map(|m| m.join().expect("podman info panicked")),
            )
        })
    } else {
        (None, None)
    };
    Described {
        kind,
        info,
        machine,
        vm_mem_free,
    }
}

/// An engine's containers: kind clusters and every name, with whether it
/// is installed and answers. Its `info` is asked only if it is selected.
fn list_containers(kind: EngineKind) -> EngineProbe {
    let engine = Engine::new(kind);
    thread::scope(|scope| {
        // An engine that does not answer has no clusters.
        let clusters = scope.spawn(|| cluster::list(&engine).unwrap_or_default());
        let (names, installed, answers) = container_names(kind);
        EngineProbe {
            kind,
            info: None,
            installed,
            answers,
            clusters: clusters.join().expect("cluster listing panicked"),
            names,
            machine: None,
            vm_mem_free: None,
        }
    })
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Every container name on an engine (empty when it does not answer),
/// whether its CLI is installed, and whether it answered.
fn container_names(kind: EngineKind) -> (Vec<String>, bool, bool) {
    let done = process::run(
        Command::new(kind.name()).args(["ps", "-a", "--format", "{{.Names}}"]),
        PROBE_TIMEOUT,
    );
    match done {
        Ok(done) if done.status.success() && !done.timed_out => {
            let names = done
                .stdout_text()
                .split([',', '\n'])
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect();
            (names, true, true)
        }
        Ok(_) => (Vec::new(), true, false),
        Err(error) => (
            Vec::new(),
            error.kind() != std::io::ErrorKind::NotFound,
            false,
        ),
    }
}

/// A tool's version: `kind version` prints `kind v0.24.0 go1.22.6 linux/amd64`,
/// `kubectl version --client -o json` a JSON document.
fn tool_version(name: &str, args: &[&str]) -> Result<String, String> {
    let done = process::run(Command::new(name).args(args), PROBE_TIMEOUT).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("no `{name}` on PATH")
        } else {
            format!("could not run `{name}`: {e}")
        }
    })?;
    if !done.status.success() || done.timed_out {
        return Err(format!(
            "`{name} {}` failed: {}",
            args.join(" "),
            done.stderr_text()
        ));
    }
    let out = done.stdout_text();
    let version = if name == "kubectl" {
        serde_json::from_str::<serde_json::Value>(&out)
            .ok()
            .and_then(|v| {
                v["clientVersion"]["gitVersion"]
                    .as_str()
                    .map(str::to_string)
            })
    } else {
        out.split_whitespace().nth(1).map(str::to_string)
    };
    version.ok_or_else(|| format!("could not read a version from `{name}`: {}", out.trim()))
}
