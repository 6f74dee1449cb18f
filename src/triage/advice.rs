//! What to collect next and how to fix it: exact commands for the engine in
//! use, with numbers derived from what was measured, never guessed.
//!
//! When the engine is unknown, commands are given for both. When nothing was
//! measured, the advice says what to measure instead of inventing a number.

use super::diagnosis::{self, Case, Class, Collect, CommandLine, Confidence, RootCause, Step};
use super::evidence::Fact;
use super::kernel::OomScope;
use crate::engine::EngineKind;
use crate::units::bytes;

const MIB: u64 = 1 << 20;

/// Safety margin over a measured peak: 25%.
const MARGIN_PERCENT: u64 = 25;

/// Memory sizes are rounded up to this many MiB (what `podman machine set
/// --memory` and Docker Desktop's slider handle without surprise).
const ROUND_MIB: u64 = 256;

const OOM_GREP: &str = "grep -iE 'out of memory|oom-kill|killed process'";

fn run(context: Option<&str>, command: impl Into<String>) -> CommandLine {
    CommandLine {
        context: context.map(str::to_string),
        run: command.into(),
    }
}

/// The engines to give commands for: the one in use, or both.
fn engines(case: &Case) -> Vec<EngineKind> {
    case.engine
        .map_or(EngineKind::ALL.to_vec(), |engine| vec![engine])
}

/// One command per engine in use, each labelled with its engine.
fn per_engine(case: &Case, f: &dyn Fn(EngineKind) -> String) -> Vec<CommandLine> {
    engines(case)
        .into_iter()
        .map(|e| run(Some(e.name()), f(e)))
        .collect()
}

/// The node container the failure concerns, or a placeholder to fill in.
fn node(case: &Case) -> String {
    case.failure
        .as_ref()
        .and_then(|f| f.node.clone())
        .or_else(|| {
            case.evidence.iter().find_map(|e| match &e.fact {
                Fact::Container(c) => Some(c.name.clone()),
                _ => None,
            })
        })
        .unwrap_or_else(|| "NODE".to_string())
}

/// The kind cluster of a node container: `e2e-control-plane` → `e2e`.
pub fn cluster_of(node: &str) -> Option<&str> {
    ["-control-plane", "-worker", "-external-load-balancer"]
        .iter()
        .find_map(|role| {
            let at = node.rfind(role)?;
            let suffix = &node[at + role.len()..];
            suffix
                .chars()
                .all(|c| c.is_ascii_digit())
                .then(|| &node[..at])
        })
}

/// The subject the root cause's signature extracted (name, port, image).
fn subject(case: &Case, class: Class) -> Option<String> {
    case.evidence.iter().find_map(|e| match &e.fact {
        Fact::Signature {
            id,
            subject: Some(subject),
        } if super::signatures::by_id(id).is_some_and(|s| s.class == class) => {
            Some(subject.clone())
        }
        _ => None,
    })
}

fn has(case: &Case, wanted: fn(&Fact) -> bool) -> bool {
    case.evidence.iter().any(|e| wanted(&e.fact))
}

/// The command that tells whether `class` is the cause, for a text that
/// fits several.
fn deciding(class: Class, case: &Case, node: &str) -> Vec<CommandLine> {
    let each = |f: &dyn Fn(EngineKind) -> String| per_engine(case, f);
    match class {
        Class::DiskFull => {
            each(&|e| format!("{e} system df; df -h /var/lib/docker /var/lib/containers /tmp"))
        }
        Class::InotifyLimits => vec![run(
            Some("the engine's machine"),
            "sysctl fs.inotify.max_user_watches fs.inotify.max_user_instances",
        )],
        // An image the log lists in an engine's store while a pod's node
        // lacks it: the node's own store decides.
        Class::ProviderMismatch if diagnosis::engine_store_listed(case).is_some() => vec![
            run(None, "kubectl get pods -o jsonpath='{..image}'"),
            run(Some("a node"), "crictl images"),
        ],
        Class::ProviderMismatch => EngineKind::ALL
            .iter()
            .map(|e| {
                run(
                    Some(e.name()),
                    format!("{e} ps -a --filter label=io.x-k8s.kind.cluster"),
                )
            })
            .collect(),
        Class::ImageMissing => EngineKind::ALL
            .iter()
            .map(|e| run(Some(e.name()), format!("{e} images")))
            .collect(),
        Class::NameConflict => vec![run(None, "kind get clusters")],
        Class::CgroupConfig => vec![run(
            Some("the engine's machine"),
            "stat -fc %T /sys/fs/cgroup; cat /sys/fs/cgroup/cgroup.subtree_control",
        )],
        Class::KindNodeVersionMismatch => {
            let mut c = vec![run(None, "kind version")];
            c.extend(each(&|e| {
                format!("{e} inspect --format '{{{{.Config.Image}}}}' {node}")
            }));
            c
        }
        Class::OomKill => each(&|e| format!("{e} exec {node} dmesg | {OOM_GREP}")),
        Class::ContainerdStoreDigestMissing => vec![run(
            Some("docker"),
            "docker info --format '{{.ServerVersion}} {{.DriverStatus}}'",
        )],
        Class::CorruptInput => vec![run(None, "tar tf image.tar > /dev/null")],
        Class::DependencyNotReady => vec![run(None, "kubectl get endpoints -A")],
        Class::EndpointUnreachable => vec![run(None, "loadmaster engine")],
        Class::EngineVersionMismatch | Class::EngineError => each(&|e| format!("{e} version")),
        _ => Vec::new(),
    }
}

/// Evidence still to collect for this root cause.
pub fn to_collect(root: &RootCause, case: &Case) -> Vec<Collect> {
    let node = node(case);
    let mut collect = Vec::new();
    if root.fits.len() > 1 {
        let names: Vec<&str> = root.fits.iter().map(|c| c.name()).collect();
        collect.push(Collect {
            what: format!("Which cause the message is: {}", names.join(", ")),
            why: "the message fits each of these (likeliest first) and proves none; these commands tell them apart".into(),
            commands: root
                .fits
                .iter()
                .flat_map(|&class| deciding(class, case, &node))
                .collect(),
        });
    }
    let memory_open = matches!(root.class, Class::KilledUnknown | Class::OutOfMemory)
        || (root.class == Class::OomKill && root.confidence < Confidence::Proven)
        || (root.class == Class::EngineCrash && root.suspected == Some(Class::OomKill));
    if memory_open || root.class == Class::OomKill {
        collect.extend(memory_evidence(case, &node, memory_open));
    }
    let each = |f: &dyn Fn(EngineKind) -> String| per_engine(case, f);
    match root.class {
        Class::DiskFull if !has(case, |f| matches!(f, Fact::Disk { .. })) => {
            let mut commands = each(&|e| format!("{e} exec {node} df -h /var/lib/containerd /tmp"));
            commands.extend(each(&|e| format!("{e} system df")));
            if engines(case).contains(&EngineKind::Podman) {
                commands.push(run(
                    Some("podman machine"),
                    "podman machine ssh -- df -h /var/lib/containers /var/tmp /tmp",
                ));
            }
            commands.push(run(Some("Linux host"), "df -h /var/lib/docker /var/lib/containers ${TMPDIR:-/tmp}"));
            collect.push(Collect {
                what: "Free space on each filesystem the failing write could have gone to".into(),
                why: "tells which one was full: the node's containerd root, the engine's storage, or the temp directory image tars go to".into(),
                commands,
            });
        }
        Class::NameConflict => {
            let name = subject(case, Class::NameConflict).unwrap_or_else(|| "NAME".into());
            let mut commands = each(&|e| format!("{e} ps -a --filter name={name}"));
            commands.push(run(None, "kind get clusters"));
            collect.push(Collect {
                what: format!("What holds the name {name}"),
                why: "a leftover node of an earlier run is removed with its cluster; anything else needs a different name".into(),
                commands,
            });
        }
        Class::PortConflict => {
            let port = subject(case, Class::PortConflict).unwrap_or_else(|| "PORT".into());
            let mut commands = vec![
                run(Some("Linux"), format!("sudo ss -ltnp 'sport = :{port}'")),
                run(Some("macOS"), format!("lsof -nP -iTCP:{port} -sTCP:LISTEN")),
            ];
            commands.extend(each(&|e| format!("{e} ps -a --filter publish={port}")));
            collect.push(Collect {
                what: format!("Which process owns port {port}"),
                why: "another cluster, a container, or a podman machine's gvproxy left running".into(),
                commands,
            });
        }
        Class::ImageMissing => {
            let image = subject(case, Class::ImageMissing).unwrap_or_else(|| "IMAGE".into());
            collect.push(Collect {
                what: format!("Which engine has {image}"),
                why: "kind's `load docker-image` asks docker even when the cluster runs on podman".into(),
                commands: EngineKind::ALL
                    .iter()
                    .map(|e| run(None, format!("{e} images {image}")))
                    .collect(),
            });
        }
        Class::ImagePullFailure => collect.push(Collect {
            what: "Whether the node holds the image, and the pod's pull policy".into(),
            why: "a loaded image is still pulled when the policy is Always (the default for `:latest`)".into(),
            commands: {
                let mut c = each(&|e| format!("{e} exec {node} crictl images"));
                c.push(run(
                    None,
                    "kubectl get pods -A -o jsonpath='{range .items[*]}{.metadata.name}{\" \"}{.spec.containers[*].imagePullPolicy}{\"\\n\"}{end}'",
                ));
                c
            },
        }),
        Class::Timeout => collect.push(Collect {
            what: "Why the awaited object was not ready".into(),
            why: "a timeout only says time ran out; the events say what was slow".into(),
            commands: vec![run(
                None,
                "kubectl get events -A --sort-by=.lastTimestamp | tail -n 40",
            )],
        }),
        Class::NodeStartFailure => {
            let cluster = cluster_of(&node).unwrap_or("CLUSTER");
            collect.push(Collect {
                what: "Where the node's boot stopped".into(),
                why: "kind deletes the failed node; --retain keeps it for its logs".into(),
                commands: {
                    let mut c = vec![run(None, format!("kind create cluster --name {cluster} --retain"))];
                    c.extend(each(&|e| format!("{e} logs {cluster}-control-plane")));
                    c
                },
            });
        }
        Class::EngineCrash if root.suspected.is_none() => collect.push(Collect {
            what: "The engine service's own log at the failure".into(),
            why: "shows whether it crashed, was OOM-killed or restarted".into(),
            commands: vec![
                run(Some("podman, Linux"), "journalctl --user -u podman.service --no-pager | tail -n 50"),
                run(Some("podman machine"), "podman machine ssh -- journalctl -u podman.service --no-pager | tail -n 50"),
                run(Some("docker, Linux"), "sudo journalctl -u docker.service --no-pager | tail -n 50"),
            ],
        }),
        Class::RuntimeTransient => collect.push(Collect {
            what: "The OCI runtime and its version".into(),
            why: "if the failure repeats, a runtime older than the engine expects is the cause, not chance".into(),
            commands: vec![run(
                Some("podman"),
                "podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.OCIRuntime.Version}}'",
            )],
        }),
        Class::InotifyLimits => collect.push(Collect {
            what: "The inotify limits of the engine's kernel".into(),
            why: "kind nodes need more than the defaults (128 instances, 8192 watches)".into(),
            commands: vec![
                run(Some("Linux"), "sysctl fs.inotify.max_user_watches fs.inotify.max_user_instances"),
                run(Some("podman machine"), "podman machine ssh -- sysctl fs.inotify.max_user_watches fs.inotify.max_user_instances"),
            ],
        }),
        _ => {}
    }
    collect
}

/// The memory evidence not yet at hand. `open`: whether an OOM is still
/// unproven (then everything that would prove or refute it is asked for);
/// once proven, only what the fix's number needs.
fn memory_evidence(case: &Case, node: &str, open: bool) -> Vec<Collect> {
    let mut collect = Vec::new();
    let each = |f: &dyn Fn(EngineKind) -> String| per_engine(case, f);
    let time = case
        .failure
        .as_ref()
        .and_then(|f| {
            case.evidence
                .iter()
                .find(|e| e.source == f.source)
                .and_then(|e| e.time.clone())
        })
        .or_else(|| case.evidence.iter().find_map(|e| e.time.clone()));
    let around = time.map_or(String::new(), |t| format!(" around {t}"));
    if open && !has(case, |f| matches!(f, Fact::Memory(_))) {
        collect.push(Collect {
            what: format!("The OOM-kill counter of node {node}'s cgroup"),
            why: "oom_kill above 0 proves an OOM kill in the node, 0 refutes it; the counters go with the container, so read them before deleting the cluster".into(),
            commands: each(&|e| format!(
                "{e} exec {node} sh -c 'cat /sys/fs/cgroup/memory.events 2>/dev/null || cat /sys/fs/cgroup/memory/memory.oom_control'"
            )),
        });
    }
    if open
        && !has(case, |f| {
            matches!(f, Fact::OomKill(_) | Fact::KernelLogRead { .. })
        })
    {
        let mut commands = Vec::new();
        if engines(case).contains(&EngineKind::Podman) {
            commands.push(run(
                Some("podman machine (macOS, Windows)"),
                format!("podman machine ssh -- sudo dmesg -T | {OOM_GREP}"),
            ));
        }
        commands.push(run(
            Some("Linux host"),
            format!("sudo dmesg -T | {OOM_GREP}"),
        ));
        commands.push(run(
            Some("Linux host, with journald"),
            format!("sudo journalctl -k --no-pager | {OOM_GREP}"),
        ));
        commands.extend(engines(case).into_iter().map(|e| {
            let context = match e {
                EngineKind::Docker => {
                    "docker (Docker Desktop too), through the node: it shares the engine's kernel"
                }
                EngineKind::Podman => "podman, through the node: it shares the engine's kernel",
            };
            run(Some(context), format!("{e} exec {node} dmesg | {OOM_GREP}"))
        }));
        collect.push(Collect {
            what: format!("OOM lines in the kernel log of the engine's machine{around}"),
            why: "a \"Killed process N (containerd|ctr)\" line at that time proves the OOM kill and names the victim; none refutes it".into(),
            commands,
        });
    }
    if open && !has(case, |f| matches!(f, Fact::Container(_))) {
        collect.push(Collect {
            what: format!("The state of node {node}"),
            why: "OOMKilled=true proves an OOM kill; false is weak (podman 4.3 on cgroup v1 reports false for a real one); exit code, restarts and times show whether the node itself died".into(),
            commands: each(&|e| format!(
                "{e} inspect --format '{{{{.State.Status}}}} exit={{{{.State.ExitCode}}}} OOMKilled={{{{.State.OOMKilled}}}} restarts={{{{.RestartCount}}}} started={{{{.State.StartedAt}}}} finished={{{{.State.FinishedAt}}}}' {node}"
            )),
        });
    }
    if !has(case, |f| matches!(f, Fact::EngineMemory { .. })) {
        let mut commands = vec![run(None, "loadmaster engine")];
        for engine in engines(case) {
            commands.push(match engine {
                EngineKind::Podman => run(
                    Some("podman machine"),
                    "podman machine inspect --format '{{.Resources.Memory}} MiB'",
                ),
                EngineKind::Docker => run(Some("docker"), "docker info --format '{{.MemTotal}}'"),
            });
        }
        collect.push(Collect {
            what: "The memory of the engine's machine (the VM's for a podman machine or Docker Desktop, not the laptop's)".into(),
            why: "every node shares it; the memory to set is derived from it and the measured peak".into(),
            commands,
        });
    }
    if !has(
        case,
        |f| matches!(f, Fact::Memory(m) if m.peak_bytes.is_some()),
    ) {
        collect.push(Collect {
            what: format!("The peak memory of node {node} during a load"),
            why: "the memory to set is this peak plus a margin; without it any number is a guess".into(),
            commands: each(&|e| format!(
                "{e} exec {node} sh -c 'cat /sys/fs/cgroup/memory.peak 2>/dev/null || cat /sys/fs/cgroup/memory/memory.max_usage_in_bytes'"
            )),
        });
    }
    if open {
        collect.push(Collect {
            what: format!("The containerd log of node {node}"),
            why:
                "a containerd restart at the failure shows containerd died rather than the command"
                    .into(),
            commands: each(&|e| {
                format!("{e} exec {node} journalctl -u containerd --no-pager | tail -n 100")
            }),
        });
    }
    collect
}

/// How much memory is needed, from measurements only.
struct MemoryNeed {
    /// The largest measured figure the failure needed (at least).
    needed_bytes: u64,
    /// How it was measured, for the fix's text.
    basis: Vec<String>,
    /// Whether the limit hit was a cgroup's below the machine's memory:
    /// `None` when a cgroup limit was hit but the machine's memory is unknown.
    container_limit: Option<bool>,
    vm: Option<bool>,
}

fn memory_need(case: &Case) -> Option<MemoryNeed> {
    let mut need = MemoryNeed {
        needed_bytes: 0,
        basis: Vec::new(),
        container_limit: Some(false),
        vm: None,
    };
    let mut engine_memory = None;
    let mut cgroup_limit = None;
    let mut system_oom = false;
    for e in &case.evidence {
        match &e.fact {
            Fact::OomKill(kill) => match (kill.scope, kill.limit_kib) {
                (OomScope::Cgroup, Some(limit)) => {
                    cgroup_limit = Some(limit * 1024);
                    need.needed_bytes = need.needed_bytes.max(limit * 1024);
                    need.basis.push(format!(
                        "the cgroup hit its limit of {} ({})",
                        bytes(limit * 1024),
                        e.source
                    ));
                }
                (OomScope::System, _) => system_oom = true,
                _ => {}
            },
            Fact::Memory(m) if m.oom_kill.is_some_and(|k| k > 0) || m.hit_limit() => {
                if let Some(peak) = m.peak_bytes {
                    need.needed_bytes = need.needed_bytes.max(peak);
                    need.basis
                        .push(format!("peak usage {} ({})", bytes(peak), e.source));
                }
                if let Some(limit) = m.limit_bytes {
                    cgroup_limit = Some(limit);
                }
            }
            Fact::EngineMemory {
                memory_bytes,
                in_vm,
                ..
            } => {
                engine_memory = Some((*memory_bytes, e.source.to_string()));
                need.vm = Some(*in_vm);
            }
            _ => {}
        }
    }
    if system_oom && let Some((memory, source)) = &engine_memory {
        need.needed_bytes = need.needed_bytes.max(*memory);
        need.basis.push(format!(
            "the whole machine ran out with {} ({source})",
            bytes(*memory)
        ));
    }
    need.container_limit = match (cgroup_limit, &engine_memory) {
        (Some(limit), Some((memory, _))) => Some(limit < memory / 10 * 9),
        (Some(_), None) if !system_oom => None,
        _ => Some(false),
    };
    (need.needed_bytes > 0).then_some(need)
}

/// `needed` plus the margin, rounded up, in MiB.
pub fn memory_to_set_mib(needed_bytes: u64) -> u64 {
    let needed_mib = needed_bytes.div_ceil(MIB);
    let with_margin = (needed_mib * (100 + MARGIN_PERCENT)).div_ceil(100);
    with_margin.div_ceil(ROUND_MIB) * ROUND_MIB
}

/// The fix for this root cause.
pub fn fix(root: &RootCause, case: &Case) -> Vec<Step> {
    let node = node(case);
    let each = |f: &dyn Fn(EngineKind) -> String| per_engine(case, f);
    let retry = || {
        case.failure
            .as_ref()
            .and_then(|f| f.command.clone())
            .map(|c| vec![run(None, c)])
            .unwrap_or_default()
    };
    match root.class {
        Class::OomKill | Class::MemoryStarved => memory_fix(case, &node),
        Class::KilledUnknown | Class::EngineCrash if root.suspected == Some(Class::OomKill) => {
            let mut steps = vec![Step {
                what: "Collect the evidence listed above before changing anything: whether this was an OOM kill decides the fix.".into(),
                commands: Vec::new(),
            }];
            steps.extend(memory_fix(case, &node).into_iter().map(|mut step| {
                step.what = format!("If an OOM kill shows up: {}", lowercase_first(&step.what));
                step
            }));
            steps.push(Step {
                what: "Either way: retry the failed step with nothing else running in the engine (no parallel builds or loads), to tell a one-off kill from a repeatable one.".into(),
                commands: retry(),
            });
            steps
        }
        Class::KilledUnknown | Class::EngineCrash | Class::Terminated => vec![Step {
            what: "Find what else ended the process: a timeout's kill in the caller, `kill`/`stop` by a cleanup, or the engine tearing down the exec session (podman #10825). Then retry the step alone.".into(),
            commands: retry(),
        }],
        Class::DiskFull => {
            let measured: Vec<String> = case
                .evidence
                .iter()
                .filter(|e| matches!(e.fact, Fact::Disk { .. }))
                .map(|e| format!("{} ({})", e.fact, e.source))
                .collect();
            let mut steps = vec![Step {
                what: if measured.is_empty() {
                    "Free space on the full filesystem (measure which one first, above): unused images and build cache in the engine, unused images in the node, leftover image tars in the temp directory.".into()
                } else {
                    format!("Free space on the full filesystem; measured: {}.", measured.join("; "))
                },
                commands: {
                    let mut c = each(&|e| format!("{e} system df"));
                    c.extend(each(&|e| format!("{e} image prune")));
                    c.extend(each(&|e| format!("{e} exec {node} crictl rmi --prune")));
                    c
                },
            }];
            if engines(case).contains(&EngineKind::Podman) {
                steps.push(Step {
                    what: "If the podman machine's disk is the full one and nothing can go: grow it (it can only grow) to its size plus what the run needs.".into(),
                    commands: vec![
                        run(Some("podman machine"), "podman machine stop"),
                        run(Some("podman machine"), "podman machine set --disk-size <GiB>"),
                        run(Some("podman machine"), "podman machine start"),
                    ],
                });
            }
            steps
        }
        Class::NameConflict => {
            let name = subject(case, Class::NameConflict).unwrap_or_else(|| "NAME".into());
            let cluster = cluster_of(&name).unwrap_or(&name).to_string();
            let provider = match case.engine {
                Some(EngineKind::Podman) => "KIND_EXPERIMENTAL_PROVIDER=podman ",
                _ => "",
            };
            let mut commands = vec![run(None, format!("{provider}kind delete cluster --name {cluster}"))];
            if cluster_of(&name).is_some() {
                commands.extend(each(&|e| format!("{e} rm -f {name}")));
            }
            vec![Step {
                what: format!("Remove the leftover cluster {cluster} (and its node container if kind no longer knows it), then create it again."),
                commands,
            }]
        }
        Class::PortConflict => {
            let port = subject(case, Class::PortConflict);
            let gvproxy = has(case, |f| {
                matches!(f, Fact::Signature { id: "port-in-use", .. })
            }) && case.evidence.iter().any(|e| {
                e.excerpt
                    .as_deref()
                    .is_some_and(|x| x.contains("proxy already running"))
            });
            let mut steps = Vec::new();
            if gvproxy {
                steps.push(Step {
                    what: "A podman machine's gvproxy is still running from before: restart the machine.".into(),
                    commands: vec![
                        run(Some("podman machine"), "podman machine stop"),
                        run(Some("podman machine"), "podman machine start"),
                    ],
                });
            }
            if let Some(port) = port {
                steps.push(Step {
                    what: format!("Stop the owner of port {port} (found above), or map the cluster to another host port (kind config: extraPortMappings[].hostPort; apiServerPort)."),
                    commands: Vec::new(),
                });
            }
            steps
        }
        Class::ImageMissing => {
            let image = subject(case, Class::ImageMissing).unwrap_or_else(|| "IMAGE".into());
            let kind_asked_docker = case.engine == Some(EngineKind::Podman)
                && case.evidence.iter().any(|e| {
                    e.excerpt
                        .as_deref()
                        .is_some_and(|x| x.contains("not present locally"))
                });
            if kind_asked_docker {
                let cluster = cluster_of(&node).unwrap_or("CLUSTER");
                vec![Step {
                    what: format!("`kind load docker-image` asks docker, not podman (kind #2027, #3105): load {image} from podman through an archive."),
                    commands: vec![
                        run(Some("podman"), format!("podman save -o image.tar {image}")),
                        run(Some("podman"), format!("KIND_EXPERIMENTAL_PROVIDER=podman kind load image-archive image.tar --name {cluster}")),
                        run(Some("podman"), "rm image.tar"),
                    ],
                }]
            } else {
                vec![Step {
                    what: format!("Build or pull {image} in the engine the cluster runs on, under exactly that name."),
                    commands: each(&|e| format!("{e} images {image}")),
                }]
            }
        }
        Class::ImagePullFailure => {
            let cluster = cluster_of(&node).unwrap_or("CLUSTER");
            vec![Step {
                what: "Load the image into every node and keep the kubelet from pulling it: a versioned tag, or imagePullPolicy: IfNotPresent (a `:latest` tag means Always).".into(),
                commands: vec![run(None, format!("kind load docker-image IMAGE --name {cluster}"))],
            }]
        }
        Class::RuntimeTransient => vec![Step {
            what: "Retry the same command. If it fails the same way again it is not transient: update the OCI runtime (crun) to what the engine expects.".into(),
            commands: retry(),
        }],
        Class::InotifyLimits => vec![Step {
            what: "Raise the inotify limits of the engine's kernel to kind's recommended values (kind: Known Issues); persist them in /etc/sysctl.d/.".into(),
            commands: vec![
                run(Some("Linux"), "sudo sysctl -w fs.inotify.max_user_watches=524288 fs.inotify.max_user_instances=512"),
                run(Some("podman machine"), "podman machine ssh -- sudo sysctl -w fs.inotify.max_user_watches=524288 fs.inotify.max_user_instances=512"),
            ],
        }],
        Class::NodeStartFailure => vec![Step {
            what: "Read the retained node's log (above) for where boot stopped; the usual causes are inotify limits, too little memory, or a kind release older than the host's cgroup setup.".into(),
            commands: Vec::new(),
        }],
        Class::CorruptInput => vec![Step {
            what: "Write the archive again and check it reads end to end before importing it.".into(),
            commands: each(&|e| format!("{e} save -o image.tar IMAGE && tar tf image.tar > /dev/null")),
        }],
        Class::OutOfMemory => memory_fix(case, &node),
        Class::Timeout => vec![Step {
            what: "Find what was not ready (above) before raising the timeout; raise it only if the object became ready later.".into(),
            commands: Vec::new(),
        }],
        Class::CommandNotRunnable => vec![Step {
            what: "Install the missing program or fix its permissions (exit 127: not found on PATH; 126: found but not executable).".into(),
            commands: Vec::new(),
        }],
        Class::RegistryRateLimit => vec![Step {
            what: "Pull with credentials (authenticated pulls have a higher limit), from a mirror, or load the image into the nodes instead of pulling it; then retry.".into(),
            commands: each(&|e| format!("{e} login docker.io")),
        }],
        Class::ProviderMismatch if diagnosis::engine_store_listed(case).is_some() => vec![Step {
            what: "Put the image in the store the cluster's nodes read: kind and k3d nodes, and k3s, run a containerd of their own that does not see the engine's images; load it there, or push it to a registry the cluster pulls from.".into(),
            commands: vec![
                run(Some("kind"), "kind load docker-image IMAGE --name CLUSTER"),
                run(Some("k3d"), "k3d image import IMAGE --cluster CLUSTER"),
                run(Some("k3s"), "docker save IMAGE | sudo k3s ctr images import -"),
            ],
        }],
        Class::ProviderMismatch => vec![Step {
            what: "Use the engine the cluster was made on for every command: kind reads KIND_EXPERIMENTAL_PROVIDER (podman) and otherwise uses docker; `loadmaster load` finds the nodes on either.".into(),
            commands: vec![
                run(Some("podman"), "KIND_EXPERIMENTAL_PROVIDER=podman kind get clusters"),
                run(Some("docker"), "kind get clusters"),
            ],
        }],
        Class::ArchitectureMismatch => vec![Step {
            what: "Build or pull the image for the engine machine's architecture (`--platform`), or a multi-platform image; do not rely on emulation for nodes.".into(),
            commands: each(&|e| format!("{e} build --platform linux/$(uname -m | sed 's/x86_64/amd64/;s/aarch64/arm64/') -t IMAGE .")),
        }],
        Class::ContainerdStoreDigestMissing => vec![Step {
            what: "Save only the host's platform from Docker's containerd store (kind #3795), or load with loadmaster, which reads such archives.".into(),
            commands: vec![
                run(Some("docker 28+"), "docker save --platform linux/amd64 -o image.tar IMAGE"),
                run(None, "loadmaster load IMAGE --cluster CLUSTER"),
            ],
        }],
        Class::KindNodeVersionMismatch => vec![Step {
            what: "Use a node image built for this kind release (its release notes list them), or the kind release the node image was built for.".into(),
            commands: vec![run(None, "kind version"), run(None, "kind create cluster --image kindest/node:vX.Y.Z@sha256:...")],
        }],
        Class::EngineVersionMismatch => vec![Step {
            what: "Bring the engine's client and server to the same version (for a podman machine: `podman machine init` with the client's version, or upgrade the machine).".into(),
            commands: each(&|e| format!("{e} version")),
        }],
        Class::DnsNetwork => vec![Step {
            what: "Check name resolution and the route from the side that failed (node, pod or engine VM), then retry; a proxy or VPN often sits between.".into(),
            commands: vec![run(None, "kubectl run -it --rm dnscheck --image=busybox:1.36 --restart=Never -- nslookup kubernetes.default")],
        }],
        Class::DependencyNotReady => vec![Step {
            what: "Make the component wait for what it needs (a readiness gate, an init container, a retry without a fixed give-up), or deploy the dependency first and wait for it.".into(),
            commands: vec![run(None, "kubectl get endpoints -A")],
        }],
        Class::AppCrash | Class::CrashLoop => vec![Step {
            what: "Read the crashed container's last lines: the first lines of its panic or stack name the cause.".into(),
            commands: vec![run(None, "kubectl logs POD -c CONTAINER --previous --tail=100")],
        }],
        Class::ImageNeverPull => vec![Step {
            what: "Make the manifest's image name (tag, registry host, `localhost/` prefix) the one that was loaded, or load the name the manifest asks for.".into(),
            commands: each(&|e| format!("{e} exec {node} crictl images")),
        }],
        Class::ReadinessTimeout => vec![Step {
            what: "Read why the pods are not ready (probe failures in their events, their logs) before raising the timeout.".into(),
            commands: vec![run(None, "kubectl describe pods -A | grep -A5 -i unhealthy")],
        }],
        Class::PodUnschedulable => vec![Step {
            what: "Give the pod a node it fits: lower its requests, add node capacity (the engine VM's memory or CPUs), or tolerate the taint the message names.".into(),
            commands: vec![run(None, "kubectl describe nodes | grep -A8 'Allocated resources'")],
        }],
        Class::ContainerOomKilled => vec![Step {
            what: "Raise the container's memory limit to its measured peak plus a margin, or find why it grew.".into(),
            commands: vec![run(None, "kubectl top pod --containers -A")],
        }],
        Class::EndpointUnreachable => vec![Step {
            what: "Give the side that dialled an address it can reach: from a podman machine the host is host.containers.internal, from Docker Desktop host.docker.internal; a kubeconfig must point at a running API server.".into(),
            commands: vec![run(None, "kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}'")],
        }],
        Class::CgroupConfig => vec![Step {
            what: "Use a node image and engine setup that match the host's cgroups: cgroup v2 with the controllers delegated, or a kind release that supports the host's v1.".into(),
            commands: vec![run(None, "stat -fc %T /sys/fs/cgroup && cat /sys/fs/cgroup/cgroup.subtree_control")],
        }],
        Class::PrivilegedPort => vec![Step {
            what: "Map to a host port of 1024 or above, or allow rootless binds from the port on.".into(),
            commands: vec![run(Some("Linux"), "sudo sysctl net.ipv4.ip_unprivileged_port_start=80")],
        }],
        Class::RegistryTls => vec![Step {
            what: "Tell the client how the registry speaks: mark a plain-HTTP registry insecure (podman: registries.conf `insecure = true`, or `--tls-verify=false`; docker: daemon.json `insecure-registries`), or trust its certificate's issuer.".into(),
            commands: Vec::new(),
        }],
        Class::ClusterNameMismatch => vec![Step {
            what: "Name the cluster that exists: kind's commands default to the cluster `kind`; pass `--name` with the name it was created with.".into(),
            commands: vec![run(None, "kind get clusters")],
        }],
        Class::Crash
        | Class::EngineError
        | Class::BuildFailure
        | Class::TestFailure
        | Class::Unknown => vec![Step {
            what: "Read the failing command's own output just before the failure line: the cause is in the program, not the environment.".into(),
            commands: Vec::new(),
        }],
    }
}

/// Give the engine (or the node) the memory it was measured to need.
fn memory_fix(case: &Case, node: &str) -> Vec<Step> {
    let Some(need) = memory_need(case) else {
        return vec![Step {
            what: format!(
                "Give the engine's machine the node's measured peak plus {MARGIN_PERCENT}%, rounded up to {ROUND_MIB} MiB. Nothing measured gives that peak yet: measure it (above) instead of picking a round number."
            ),
            commands: engines(case)
                .into_iter()
                .filter(|e| *e == EngineKind::Podman)
                .flat_map(|_| machine_memory_commands("<peak MiB + 25%, rounded up to 256>"))
                .collect(),
        }];
    };
    let mib = memory_to_set_mib(need.needed_bytes);
    let derivation = format!(
        "measured: {}; at least {} + {MARGIN_PERCENT}%, rounded up to {ROUND_MIB} MiB = {mib} MiB",
        need.basis.join("; "),
        bytes(need.needed_bytes)
    );
    let raise_node_limit = |what: String| Step {
        what,
        commands: engines(case)
            .into_iter()
            .map(|e| {
                run(
                    Some(e.name()),
                    format!("{e} update --memory {mib}m --memory-swap {mib}m {node}"),
                )
            })
            .collect(),
    };
    match need.container_limit {
        Some(true) => {
            return vec![raise_node_limit(format!(
                "Raise node {node}'s own memory limit to {mib} MiB ({derivation}). kind sets no limit on nodes: it comes from how the node was started."
            ))];
        }
        None => {
            return vec![
                Step {
                    what: format!(
                        "A cgroup limit was hit, not the machine's memory. See whether it is node {node}'s own limit (0 means none)."
                    ),
                    commands: engines(case)
                        .into_iter()
                        .map(|e| {
                            run(
                                Some(e.name()),
                                format!("{e} inspect --format '{{{{.HostConfig.Memory}}}}' {node}"),
                            )
                        })
                        .collect(),
                },
                raise_node_limit(format!(
                    "If it is: raise it to {mib} MiB ({derivation}). If it is not, the limit is a cgroup's above the node (a systemd slice's MemoryMax): raise that to {mib} MiB."
                )),
            ];
        }
        Some(false) => {}
    }
    let mut commands = Vec::new();
    for engine in engines(case) {
        match (engine, need.vm) {
            (EngineKind::Podman, Some(true) | None) => {
                commands.extend(machine_memory_commands(&mib.to_string()))
            }
            (EngineKind::Docker, Some(true) | None) => commands.push(run(
                Some("Docker Desktop"),
                format!("Settings > Resources > Memory: {mib} MiB, then Apply & restart"),
            )),
            (_, Some(false)) => {}
        }
    }
    let what = if need.vm == Some(false) {
        format!(
            "The engine runs on this host, so the host's memory is the limit: free {mib} MiB for the run, or load fewer images at once ({derivation})."
        )
    } else {
        format!("Give the engine's VM {mib} MiB ({derivation}).")
    };
    vec![
        Step { what, commands },
        Step {
            what: "Load images one at a time, and not while images build: peaks add up.".into(),
            commands: Vec::new(),
        },
    ]
}

fn machine_memory_commands(mib: &str) -> Vec<CommandLine> {
    vec![
        run(Some("podman machine"), "podman machine stop"),
        run(
            Some("podman machine"),
            format!("podman machine set --memory {mib}"),
        ),
        run(Some("podman machine"), "podman machine start"),
    ]
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or(String::new(), |first| {
        first.to_lowercase().chain(chars).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_to_set_is_peak_plus_a_quarter_rounded_up() {
        assert_eq!(memory_to_set_mib(192 * MIB), 256);
        assert_eq!(memory_to_set_mib(2048 * MIB), 2560);
        // 3000 MiB + 25% = 3750 → 3840.
        assert_eq!(memory_to_set_mib(3000 * MIB), 3840);
        // A byte over a MiB counts as the next MiB.
        assert_eq!(memory_to_set_mib(1024 * MIB + 1), 1536);
    }

    #[test]
    fn clusters_of_kind_node_names() {
        assert_eq!(
            cluster_of("aianalysis-e2e-control-plane"),
            Some("aianalysis-e2e")
        );
        assert_eq!(cluster_of("kind-worker2"), Some("kind"));
        assert_eq!(cluster_of("kind-control-plane3"), Some("kind"));
        assert_eq!(cluster_of("registry"), None);
    }
}
