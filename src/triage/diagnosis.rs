//! From evidence to a diagnosis: the root-cause class, how sure it is, the
//! evidence for and against it, what still works, what evidence is still
//! missing, and the fix.
//!
//! Confidence follows from the evidence and nothing else. Exit status 137
//! means SIGKILL, and podman exits 137 without any OOM (podman #10825), so
//! 137 alone gives `killed-unknown` with an OOM suspected but unproven; an
//! `oom_kill` counter above 0, a kernel OOM line naming a process of the
//! failed command, or an engine's `OOMKilled=true` makes it `oom-kill`,
//! proven. The rules read only [`Evidence`], so evidence gathered live (the
//! node's cgroup, the kernel log, `container inspect`) feeds the same rules
//! as a log does.

use super::advice;
use super::evidence::{Evidence, Fact, Source};
use super::kernel::OomKill;
use super::kube::ContainerStatus;
use super::signatures::{self, Signature};
use super::workload;
use crate::deliver::NodeState;
use crate::engine::EngineKind;
use serde::Serialize;
use std::cmp::Reverse;
use std::fmt;

/// The JSON schema's name and version; bumped on any incompatible change.
pub const SCHEMA: &str = "loadmaster.triage/v1";

/// Root-cause classes. JSON: their [`Class::name`]s (`oom-kill`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// The kernel killed a process for lack of memory.
    OomKill,
    /// An allocation failed (ENOMEM) without a kill.
    OutOfMemory,
    /// A command ran past its deadline in a memory cgroup at its limit,
    /// with no task OOM-killed: starved (the kernel reclaims and waits
    /// instead of killing), as a node given too little memory can be.
    MemoryStarved,
    /// A filesystem was full.
    DiskFull,
    /// A process was killed by SIGKILL and nothing shows who or why.
    KilledUnknown,
    /// A process was stopped by SIGTERM.
    Terminated,
    /// A process crashed (SIGSEGV).
    Crash,
    /// An engine or runtime process (podman service, dockerd, a node's
    /// containerd) went away mid-operation.
    EngineCrash,
    /// The engine reported an error of its own (exit 125).
    EngineError,
    /// A command was not found or could not be run (exit 127 / 126).
    CommandNotRunnable,
    PortConflict,
    NameConflict,
    ImageMissing,
    ImagePullFailure,
    /// A failure that goes away on retry.
    RuntimeTransient,
    Timeout,
    /// A kind node container did not finish booting.
    NodeStartFailure,
    BuildFailure,
    /// inotify (or open-file) limits too low for the nodes.
    InotifyLimits,
    /// An input (image archive) that cannot be read.
    CorruptInput,
    /// The environment came up; a test failed.
    TestFailure,
    /// A registry refused pulls for their rate (HTTP 429, `toomanyrequests`).
    RegistryRateLimit,
    /// The cluster runs on one engine and the tool asked the other (kind
    /// asks docker for images that podman holds), or an image store that is
    /// not the one the cluster reads.
    ProviderMismatch,
    /// A binary or image for another CPU architecture (`exec format
    /// error`), or a crash under emulation.
    ArchitectureMismatch,
    /// Docker 29's containerd store saved an index naming blobs it did not
    /// include: `ctr import` fails with `content digest ... not found`.
    ContainerdStoreDigestMissing,
    /// The kind CLI and its node image (or the node's containerd) are of
    /// versions that do not work together.
    KindNodeVersionMismatch,
    /// An engine's client and server (podman remote, docker API) are of
    /// versions that do not understand each other.
    EngineVersionMismatch,
    /// A name did not resolve or a network path was down.
    DnsNetwork,
    /// A service a component needs was not accepting connections (yet).
    DependencyNotReady,
    /// An application crashed: a panic, a runtime's fatal error, an
    /// uncaught exception.
    AppCrash,
    /// A pod's image is not on the node and its pull policy is Never
    /// (ErrImageNeverPull): a tag or name other than the one loaded.
    ImageNeverPull,
    /// A container keeps crashing and the kubelet backs off restarting it.
    CrashLoop,
    /// A wait ran out because pods never became ready.
    ReadinessTimeout,
    /// The scheduler placed a pod nowhere (FailedScheduling).
    PodUnschedulable,
    /// A container was OOM-killed by its own memory limit.
    ContainerOomKilled,
    /// An address the side that dialled it cannot reach: a VM engine
    /// dialling the client's 127.0.0.1, a kubeconfig pointing nowhere.
    EndpointUnreachable,
    /// The host's cgroup setup (v1/v2, controllers, delegation, driver)
    /// does not suit the runtime or the kubelet.
    CgroupConfig,
    /// A rootless engine may not bind a port below 1024.
    PrivilegedPort,
    /// A client spoke TLS to a plain-HTTP registry (or the reverse), or did
    /// not trust its certificate.
    RegistryTls,
    /// The command named a cluster that does not exist while the intended
    /// one runs under another name (kind's default `kind`).
    ClusterNameMismatch,
    /// Something failed and no rule explains it.
    Unknown,
}

impl Serialize for Class {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl Class {
    /// Every class, in the order they are documented.
    pub const ALL: [Class; 41] = [
        Class::OomKill,
        Class::OutOfMemory,
        Class::MemoryStarved,
        Class::DiskFull,
        Class::KilledUnknown,
        Class::Terminated,
        Class::Crash,
        Class::EngineCrash,
        Class::EngineError,
        Class::CommandNotRunnable,
        Class::PortConflict,
        Class::NameConflict,
        Class::ImageMissing,
        Class::ImagePullFailure,
        Class::RuntimeTransient,
        Class::Timeout,
        Class::NodeStartFailure,
        Class::BuildFailure,
        Class::InotifyLimits,
        Class::CorruptInput,
        Class::TestFailure,
        Class::RegistryRateLimit,
        Class::ProviderMismatch,
        Class::ArchitectureMismatch,
        Class::ContainerdStoreDigestMissing,
        Class::KindNodeVersionMismatch,
        Class::EngineVersionMismatch,
        Class::DnsNetwork,
        Class::DependencyNotReady,
        Class::AppCrash,
        Class::ImageNeverPull,
        Class::CrashLoop,
        Class::ReadinessTimeout,
        Class::PodUnschedulable,
        Class::ContainerOomKilled,
        Class::EndpointUnreachable,
        Class::CgroupConfig,
        Class::PrivilegedPort,
        Class::RegistryTls,
        Class::ClusterNameMismatch,
        Class::Unknown,
    ];

    /// The class of a name, as [`Class::name`] writes it.
    pub fn from_name(name: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Class::OomKill => "oom-kill",
            Class::OutOfMemory => "out-of-memory",
            Class::MemoryStarved => "memory-starved",
            Class::DiskFull => "disk-full",
            Class::KilledUnknown => "killed-unknown",
            Class::Terminated => "terminated",
            Class::Crash => "crash",
            Class::EngineCrash => "engine-crash",
            Class::EngineError => "engine-error",
            Class::CommandNotRunnable => "command-not-runnable",
            Class::PortConflict => "port-conflict",
            Class::NameConflict => "name-conflict",
            Class::ImageMissing => "image-missing",
            Class::ImagePullFailure => "image-pull-failure",
            Class::RuntimeTransient => "runtime-transient",
            Class::Timeout => "timeout",
            Class::NodeStartFailure => "node-start-failure",
            Class::BuildFailure => "build-failure",
            Class::InotifyLimits => "inotify-limits",
            Class::CorruptInput => "corrupt-input",
            Class::TestFailure => "test-failure",
            Class::RegistryRateLimit => "registry-rate-limit",
            Class::ProviderMismatch => "provider-mismatch",
            Class::ArchitectureMismatch => "architecture-mismatch",
            Class::ContainerdStoreDigestMissing => "containerd-store-digest-missing",
            Class::KindNodeVersionMismatch => "kind-node-version-mismatch",
            Class::EngineVersionMismatch => "engine-version-mismatch",
            Class::DnsNetwork => "dns-network",
            Class::DependencyNotReady => "dependency-not-ready",
            Class::AppCrash => "app-crash",
            Class::ImageNeverPull => "image-never-pull",
            Class::CrashLoop => "crash-loop",
            Class::ReadinessTimeout => "readiness-timeout",
            Class::PodUnschedulable => "pod-unschedulable",
            Class::ContainerOomKilled => "container-oomkilled",
            Class::EndpointUnreachable => "endpoint-unreachable",
            Class::CgroupConfig => "cgroup-config",
            Class::PrivilegedPort => "privileged-port",
            Class::RegistryTls => "registry-tls",
            Class::ClusterNameMismatch => "cluster-name-mismatch",
            Class::Unknown => "unknown",
        }
    }

    /// How close to a root cause a class is: 0 for causes (a full disk, an
    /// OOM kill, a taken port), 1 for what happened without its cause (a kill,
    /// a crash, a timeout), 2 for what merely reports a failure (an exit code,
    /// a failed test). A cause outranks the symptoms it produces.
    fn depth(self) -> u8 {
        match self {
            Class::OomKill
            | Class::OutOfMemory
            | Class::MemoryStarved
            | Class::DiskFull
            | Class::InotifyLimits
            | Class::PortConflict
            | Class::NameConflict
            | Class::ImageMissing
            | Class::CorruptInput
            | Class::RegistryRateLimit
            | Class::ProviderMismatch
            | Class::ArchitectureMismatch
            | Class::ContainerdStoreDigestMissing
            | Class::KindNodeVersionMismatch
            | Class::EngineVersionMismatch
            | Class::DnsNetwork
            | Class::DependencyNotReady
            | Class::ImageNeverPull
            | Class::PodUnschedulable
            | Class::ContainerOomKilled
            | Class::EndpointUnreachable
            | Class::CgroupConfig
            | Class::PrivilegedPort
            | Class::RegistryTls
            | Class::ClusterNameMismatch => 0,
            Class::EngineCrash
            | Class::KilledUnknown
            | Class::Crash
            | Class::RuntimeTransient
            | Class::ImagePullFailure
            | Class::NodeStartFailure
            | Class::BuildFailure
            | Class::Timeout
            | Class::AppCrash
            | Class::CrashLoop
            | Class::ReadinessTimeout => 1,
            Class::CommandNotRunnable
            | Class::EngineError
            | Class::Terminated
            | Class::TestFailure
            | Class::Unknown => 2,
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How sure a conclusion is. Ordered: `Suspected < Likely < Proven`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Confidence {
    /// Consistent with the evidence, not shown by it.
    Suspected,
    /// Indirect evidence points at it.
    Likely,
    /// Direct evidence shows it.
    Proven,
}

impl fmt::Display for Confidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Confidence::Suspected => "suspected, unproven",
            Confidence::Likely => "likely",
            Confidence::Proven => "proven",
        })
    }
}

/// The phases of an E2E run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Build,
    ClusterCreate,
    ImageLoad,
    Deploy,
    Test,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Build => "build",
            Phase::ClusterCreate => "cluster-create",
            Phase::ImageLoad => "image-load",
            Phase::Deploy => "deploy",
            Phase::Test => "test",
        })
    }
}

/// Everything known about one failure: the input of [`diagnose`]. A log scan
/// ([`log::scan`](super::log::scan)) makes one; live collectors add evidence.
#[derive(Clone, Debug, Default)]
pub struct Case {
    /// What was examined, for the report: "build.log (212 lines)".
    pub inputs: Vec<String>,
    pub evidence: Vec<Evidence>,
    pub failure: Option<Failure>,
    pub phase: Option<Phase>,
    /// The phases the evidence shows, in the order they began.
    pub phases_seen: Vec<Phase>,
    /// The engine the run used, when known: fix commands are for it.
    pub engine: Option<EngineKind>,
    pub timeline: Vec<Moment>,
}

/// What failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The command, as the log printed it.
    pub command: Option<String>,
    /// Its exit status (signals as 128 + N).
    pub exit_code: Option<i32>,
    /// The line that reports the failure.
    pub message: String,
    pub source: Source,
    /// The node container the command ran in (`exec NODE ...`).
    pub node: Option<String>,
}

impl Failure {
    /// The log line of the failure, when it came from a log.
    pub fn source_line(&self) -> Option<usize> {
        match self.source {
            Source::Log { line, .. } => Some(line),
            _ => None,
        }
    }

    /// The command without its flags: `podman exec NODE ctr images import`.
    pub fn short_command(&self) -> Option<String> {
        let command = self.command.as_ref()?;
        let words: Vec<&str> = command
            .split_whitespace()
            .filter(|w| !w.starts_with('-'))
            .collect();
        Some(words.join(" "))
    }
}

/// One entry of the timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Moment {
    pub line: Option<usize>,
    pub time: Option<String>,
    pub event: String,
}

/// The result of triage.
///
/// JSON (schema [`SCHEMA`], documented in `docs/triage-json.md`): the fields
/// below with their names; `evidence_for`, `evidence_against` and
/// `also_seen` refer to entries of `evidence` by index.
#[derive(Clone, Debug, Serialize)]
pub struct Diagnosis {
    pub schema: &'static str,
    pub outcome: Outcome,
    /// One sentence: what happened and how sure that is.
    pub summary: String,
    pub inputs: Vec<String>,
    pub engine: Option<EngineKind>,
    pub phase: Option<Phase>,
    pub failed: Option<Failure>,
    /// `None` when no failure was found.
    pub root_cause: Option<RootCause>,
    pub evidence_for: Vec<Weighed>,
    pub evidence_against: Vec<Weighed>,
    pub still_works: Vec<String>,
    /// Evidence that would settle what is still open, with how to get it.
    pub to_collect: Vec<Collect>,
    pub fix: Vec<Step>,
    /// Other failures the evidence shows, less likely the cause.
    pub also_seen: Vec<Finding>,
    pub timeline: Vec<Moment>,
    pub evidence: Vec<Evidence>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Failure,
    NoFailureFound,
}

/// The root cause and how sure it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RootCause {
    pub class: Class,
    pub confidence: Confidence,
    /// For a class that leaves the cause open (`killed-unknown`,
    /// `engine-crash`): the cause suspected, unproven. `None` when the
    /// evidence refutes the usual suspect.
    pub suspected: Option<Class>,
    pub statement: String,
    /// When the evidence is a text known to mislead (ENOSPC, exit 137, "not
    /// present locally"...): every cause it fits, likeliest first; the
    /// commands that decide are in `to_collect`. Empty otherwise.
    pub fits: Vec<Class>,
}

/// A piece of evidence and what it means for the root cause.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Weighed {
    /// Index into `evidence`.
    pub evidence: usize,
    pub reading: String,
}

/// Another failure in the evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub class: Class,
    pub confidence: Confidence,
    pub statement: String,
    /// Indices into `evidence`.
    pub evidence: Vec<usize>,
}

/// Evidence still to collect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Collect {
    pub what: String,
    pub why: String,
    pub commands: Vec<CommandLine>,
}

/// One step of the fix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    pub what: String,
    pub commands: Vec<CommandLine>,
}

/// A command to run, and where it applies ("podman machine", "Linux host").
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CommandLine {
    pub context: Option<String>,
    pub run: String,
}

/// A candidate root cause, before the best one is chosen.
pub(super) struct Candidate {
    pub(super) class: Class,
    pub(super) confidence: Confidence,
    pub(super) suspected: Option<Class>,
    pub(super) statement: String,
    pub(super) evidence_for: Vec<Weighed>,
    pub(super) evidence_against: Vec<Weighed>,
    /// For a candidate read from a text known to mislead: the causes that
    /// text fits, likeliest first.
    pub(super) fits: Vec<Class>,
}

impl Candidate {
    fn first_evidence(&self, case: &Case) -> usize {
        self.evidence_for
            .iter()
            .map(|w| case.evidence[w.evidence].line().unwrap_or(usize::MAX))
            .min()
            .unwrap_or(usize::MAX)
    }
}

/// Diagnoses a case.
pub fn diagnose(case: &Case) -> Diagnosis {
    // Pod-level facts first: their statements name pod, container, image.
    let mut candidates = workload::candidates(case);
    candidates.extend(memory_candidate(case));
    candidates.extend(signature_candidates(case));
    let mut candidates = merged(candidates, case);
    // "Failed, unexplained" only stands when nothing explains the failure.
    if candidates.iter().any(|c| c.class != Class::Unknown) {
        candidates.retain(|c| c.class != Class::Unknown);
    }
    workload::absorb_consequences(&mut candidates);
    // Causes before symptoms; then what is proven; then a text with a cause
    // of its own before a guess among the causes a text fits (kubeadm's
    // give-up line comes before the crash its command output names); then
    // the first in time (the rest are its consequences); then the surer.
    candidates.sort_by_key(|c| {
        (
            c.class.depth(),
            c.confidence != Confidence::Proven,
            c.confidence == Confidence::Suspected && !c.fits.is_empty(),
            c.first_evidence(case),
            Reverse(c.confidence),
        )
    });
    let mut candidates = candidates.into_iter();
    let Some(best) = candidates.next() else {
        return no_failure(case);
    };
    let also_seen = candidates
        .map(|c| Finding {
            class: c.class,
            confidence: c.confidence,
            statement: c.statement,
            evidence: c.evidence_for.iter().map(|w| w.evidence).collect(),
        })
        .collect();
    let root_cause = RootCause {
        class: best.class,
        confidence: best.confidence,
        suspected: best.suspected,
        statement: best.statement,
        fits: best.fits,
    };
    let summary = capitalised(&root_cause.statement);
    Diagnosis {
        schema: SCHEMA,
        outcome: Outcome::Failure,
        summary,
        inputs: case.inputs.clone(),
        engine: case.engine,
        phase: case.phase,
        failed: case.failure.clone(),
        still_works: still_works(case),
        to_collect: advice::to_collect(&root_cause, case),
        fix: advice::fix(&root_cause, case),
        root_cause: Some(root_cause),
        evidence_for: best.evidence_for,
        evidence_against: best.evidence_against,
        also_seen,
        timeline: case.timeline.clone(),
        evidence: case.evidence.clone(),
    }
}

fn no_failure(case: &Case) -> Diagnosis {
    let read = if case.inputs.is_empty() {
        "the evidence".to_string()
    } else {
        case.inputs.join(", ")
    };
    Diagnosis {
        schema: SCHEMA,
        outcome: Outcome::NoFailureFound,
        summary: format!(
            "No failure found in {read}: no known failure text, no non-zero exit status, no OOM kill."
        ),
        inputs: case.inputs.clone(),
        engine: case.engine,
        phase: case.phase,
        failed: None,
        root_cause: None,
        evidence_for: Vec::new(),
        evidence_against: Vec::new(),
        still_works: still_works(case),
        to_collect: Vec::new(),
        fix: Vec::new(),
        also_seen: Vec::new(),
        timeline: case.timeline.clone(),
        evidence: case.evidence.clone(),
    }
}

/// One candidate per class: evidence joined, the surest statement kept,
/// and a suspicion that two different texts point at made likely.
fn merged(candidates: Vec<Candidate>, case: &Case) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    for candidate in candidates {
        match out.iter_mut().find(|c| c.class == candidate.class) {
            Some(kept) => {
                if candidate.confidence > kept.confidence {
                    kept.confidence = candidate.confidence;
                    kept.statement = candidate.statement;
                    kept.suspected = candidate.suspected;
                }
                for w in candidate.evidence_for {
                    if !kept.evidence_for.iter().any(|k| k.evidence == w.evidence) {
                        kept.evidence_for.push(w);
                    }
                }
                kept.evidence_against.extend(candidate.evidence_against);
                for class in candidate.fits {
                    if !kept.fits.contains(&class) {
                        kept.fits.push(class);
                    }
                }
            }
            None => out.push(candidate),
        }
    }
    for candidate in &mut out {
        let mut ids: Vec<&str> = candidate
            .evidence_for
            .iter()
            .filter_map(|w| match &case.evidence[w.evidence].fact {
                // Texts of an abrupt end all say the same: that it ended.
                Fact::Signature { id, .. }
                    if signatures::by_id(id).is_some_and(|s| !s.abrupt_end) =>
                {
                    Some(*id)
                }
                _ => None,
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() >= 2 && candidate.confidence == Confidence::Suspected {
            candidate.confidence = Confidence::Likely;
        }
        // Decisive evidence leaves nothing for the alternatives to explain.
        if candidate.confidence == Confidence::Proven {
            candidate.fits.clear();
        }
    }
    out
}

/// The signature a piece of evidence matched, exit statuses included.
fn signature_of(evidence: &Evidence) -> Option<&'static Signature> {
    match &evidence.fact {
        Fact::Signature { id, .. } => signatures::by_id(id),
        Fact::Exit { code, .. } => signatures::for_exit(*code),
        _ => None,
    }
}

/// The memory question: was a process that ended abruptly OOM-killed? Asked
/// whenever something was killed or lost its server, or an OOM is on record.
fn memory_candidate(case: &Case) -> Option<Candidate> {
    let related = |kill: &OomKill| related_to_failure(kill, case.failure.as_ref());
    let mut abrupt = Vec::new();
    let mut killed = Vec::new();
    let mut proof = Vec::new();
    let mut hints = Vec::new();
    let mut against = Vec::new();
    let mut strong_against = false;
    let mut container_kills = Vec::new();
    for (i, e) in case.evidence.iter().enumerate() {
        let weigh = |reading: String| Weighed {
            evidence: i,
            reading,
        };
        if let Some(signature) = signature_of(e).filter(|s| s.abrupt_end) {
            if signature.class == Class::KilledUnknown {
                killed.push(i);
            }
            abrupt.push(weigh(signature.meaning.to_string()));
        }
        match &e.fact {
            Fact::OomKill(kill) if related(kill) => proof.push(weigh(format!(
                "{kill}: {} is part of the failed command",
                kill.process
            ))),
            Fact::OomKill(kill) if workload::is_container_kill(kill) => {
                container_kills.push(weigh(format!(
                    "{kill}: a memory cgroup's own limit, and {} is no engine or runtime process",
                    kill.process
                )));
            }
            // With no failed command on record, the kill is the failure.
            Fact::OomKill(kill) if case.failure.is_none() => proof.push(weigh(format!(
                "{kill}: the kernel's own record of the kill"
            ))),
            Fact::OomKill(kill) => hints.push(weigh(format!(
                "{kill}: memory ran out, but {} is not named by the failed command",
                kill.process
            ))),
            Fact::Memory(m) if m.oom_kill.is_some_and(|k| k > 0) => proof.push(weigh(format!(
                "the cgroup's OOM-kill counter is {} ({}): the kernel killed a task in it",
                m.oom_kill.unwrap_or_default(),
                m.oom_kill_file()
            ))),
            Fact::Memory(m) => {
                if m.hit_limit() {
                    hints.push(weigh(
                        "the cgroup's usage reached its limit: memory pressure".into(),
                    ));
                }
                if m.oom_kill == Some(0) {
                    strong_against = true;
                    against.push(weigh(format!(
                        "the cgroup's OOM-kill counter is 0 ({}): no task in it was OOM-killed",
                        m.oom_kill_file()
                    )));
                }
            }
            Fact::Container(c) if c.oom_killed => proof.push(weigh(format!(
                "{} reports OOMKilled=true for {}",
                c.engine, c.name
            ))),
            Fact::Container(c) => {
                if c.exit_code == 137 {
                    killed.push(i);
                    abrupt.push(weigh(format!("container {} exited 137 (SIGKILL)", c.name)));
                }
                against.push(weigh(format!(
                    "{} reports OOMKilled=false for {}: weak, podman 4.3 on cgroup v1 reports false even for a kernel OOM kill",
                    c.engine, c.name
                )));
            }
            Fact::NodeState {
                node,
                state:
                    NodeState::Stopped {
                        exit_code,
                        oom_killed,
                        ..
                    },
            } => {
                if *oom_killed {
                    proof.push(weigh(format!(
                        "the engine reported OOMKilled=true for node {node} after the failure"
                    )));
                } else if *exit_code == 137 {
                    killed.push(i);
                    abrupt.push(weigh(format!("node {node} exited 137 (SIGKILL)")));
                }
            }
            Fact::KernelLogRead { oom_kills: 0, .. } => {
                strong_against = true;
                against.push(weigh(
                    "the kernel log holds no OOM kill (check that it reaches back to the failure)"
                        .into(),
                ));
            }
            Fact::Signature { id, .. } if *id == "cannot-allocate-memory" => {
                hints.push(weigh("an allocation failed: memory ran short".into()));
            }
            _ => {}
        }
    }
    let during = during(case);
    let what = case
        .failure
        .as_ref()
        .and_then(Failure::short_command)
        .map_or("a process".to_string(), |c| format!("`{c}`"));
    if !proof.is_empty() {
        // The kernel's record names the process killed: the most specific
        // proof, whatever order the evidence came in.
        let named = proof
            .iter()
            .find(|w| matches!(case.evidence[w.evidence].fact, Fact::OomKill(_)))
            .unwrap_or(&proof[0]);
        let shown = case.evidence[named.evidence].fact.to_string();
        let mut evidence_for = proof;
        evidence_for.extend(abrupt);
        evidence_for.extend(hints);
        return Some(Candidate {
            class: Class::OomKill,
            confidence: Confidence::Proven,
            suspected: None,
            statement: format!("{what} failed{during}: OOM kill, proven: {shown}."),
            evidence_for,
            evidence_against: against,
            fits: Vec::new(),
        });
    }
    if !container_kills.is_empty() {
        return Some(workload::container_oom_candidate(case, container_kills));
    }
    if let Some(starved) = starvation_candidate(case, &what, &during) {
        return Some(starved);
    }
    if abrupt.is_empty() {
        return None;
    }
    if !hints.is_empty() && !strong_against {
        let mut evidence_for = abrupt;
        evidence_for.extend(hints);
        return Some(Candidate {
            class: Class::OomKill,
            confidence: Confidence::Likely,
            suspected: None,
            statement: format!(
                "{what} was killed{during}; OOM kill likely: memory ran short, but no OOM kill of its processes is on record."
            ),
            evidence_for,
            evidence_against: against,
            fits: Vec::new(),
        });
    }
    let suspected = (!strong_against).then_some(Class::OomKill);
    let cause = if strong_against {
        "OOM refuted by the evidence against; something else ended it"
    } else {
        "OOM suspected, unproven"
    };
    // A compiler or linker killed in a build: the build's biggest process
    // at its peak, the kill an OOM killer makes (kind's known issues).
    if !strong_against
        && killed
            .iter()
            .any(|&i| is_compiler(case.evidence[i].excerpt.as_deref().unwrap_or("")))
    {
        return Some(Candidate {
            class: Class::OomKill,
            confidence: Confidence::Suspected,
            suspected: None,
            statement: format!(
                "A compiler or linker was killed by SIGKILL{during}: an OOM kill, suspected (the usual end of a build's largest process at its peak), unproven."
            ),
            evidence_for: abrupt,
            evidence_against: against,
            fits: vec![Class::OomKill, Class::KilledUnknown],
        });
    }
    let (class, happened) = if killed.is_empty() {
        (Class::EngineCrash, "lost the containerd it talked to")
    } else {
        (Class::KilledUnknown, "was killed by SIGKILL")
    };
    let status = case
        .failure
        .as_ref()
        .and_then(|f| f.exit_code)
        .map_or(String::new(), |code| format!(" (exit status {code})"));
    Some(Candidate {
        class,
        confidence: Confidence::Suspected,
        suspected,
        statement: format!("{what} {happened}{status}{during}; {cause}."),
        evidence_for: abrupt,
        evidence_against: against,
        fits: Vec::new(),
    })
}

/// A command stopped at loadmaster's deadline while a memory cgroup of the
/// failure sat at its limit with no task OOM-killed: a starved node. The
/// kernel reclaims (the node's own binaries' pages too) and waits instead
/// of killing, so the import crawls until the deadline; on a busy machine
/// the same node is as often OOM-killed. Likely, not proven: a cgroup at
/// its limit is also what page cache alone looks like.
fn starvation_candidate(case: &Case, what: &str, during: &str) -> Option<Candidate> {
    let deadline = case
        .evidence
        .iter()
        .position(|e| matches!(&e.fact, Fact::Signature { id, .. } if *id == "timeout-kill"))?;
    let (at_limit, counters) =
        case.evidence
            .iter()
            .enumerate()
            .find_map(|(i, e)| match &e.fact {
                Fact::Memory(m) if m.hit_limit() && m.oom_kill == Some(0) => Some((i, m)),
                _ => None,
            })?;
    Some(Candidate {
        class: Class::MemoryStarved,
        confidence: Confidence::Likely,
        suspected: None,
        statement: format!(
            "{what} ran out of time{during} starved of memory, likely: its memory cgroup was at its limit ({counters}) and no task in it was OOM-killed, so the kernel reclaimed and waited instead of killing."
        ),
        evidence_for: vec![
            Weighed {
                evidence: at_limit,
                reading: "the cgroup's usage reached its limit and its OOM-kill counter is 0: reclaim, not a kill".into(),
            },
            Weighed {
                evidence: deadline,
                reading: "loadmaster's deadline stopped the command: it crawled, it did not fail".into(),
            },
        ],
        evidence_against: Vec::new(),
        fits: Vec::new(),
    })
}

/// True when a line reports a compiler or linker process: Go's `link` and
/// `compile`, gcc's `cc1`/`cc1plus`/`collect2`, `ld`, `rustc`, `javac`.
fn is_compiler(line: &str) -> bool {
    const TOOLS: [&str; 10] = [
        "/link:",
        "/compile:",
        "cc1:",
        "cc1plus:",
        // gcc's driver: "fatal error: Killed signal terminated program cc1plus".
        "terminated program cc1",
        "collect2:",
        "/ld:",
        "ld.lld:",
        "rustc:",
        "javac:",
    ];
    let lower = line.to_lowercase();
    TOOLS.iter().any(|t| lower.contains(t))
}

/// True when an OOM-killed process belongs to the failed command: it is
/// named in it, or it is the containerd that a `ctr` in it talks to.
fn related_to_failure(kill: &OomKill, failure: Option<&Failure>) -> bool {
    let Some(command) = failure.and_then(|f| f.command.as_deref()) else {
        return false;
    };
    let programs: Vec<&str> = command
        .split_whitespace()
        .map(|w| w.rsplit('/').next().unwrap_or(w))
        .collect();
    programs.contains(&kill.process.as_str())
        || (kill.process == "containerd" && programs.contains(&"ctr"))
}

/// The class and confidence a signature gives in this case: a text that
/// fits several causes is read with what else the case shows.
fn resolved(signature: &Signature, evidence: &Evidence, case: &Case) -> (Class, Confidence) {
    let line = evidence.excerpt.as_deref().unwrap_or("").to_lowercase();
    let podman_in_use = case.engine == Some(EngineKind::Podman);
    match signature.id {
        // kind asks docker; a cluster on podman holds what docker lacks.
        "kind-not-present" | "docker-daemon-unreachable" if podman_in_use => {
            (Class::ProviderMismatch, Confidence::Likely)
        }
        // ENOSPC from inotify_add_watch, not from a write.
        "no-space" if line.contains("watch") || line.contains("inotify") => {
            (Class::InotifyLimits, Confidence::Likely)
        }
        // A full filesystem measured where the write went: a measured limit.
        "no-space"
            if written_path(case)
                .and_then(|path| filesystem_of(case, &path))
                .is_some_and(|i| full_disk(&case.evidence[i].fact).is_some()) =>
        {
            (Class::DiskFull, Confidence::Proven)
        }
        // Refused or reset before a server of the log said it accepts
        // connections: the client dialled it too early.
        "connection-refused" | "connection-reset"
            if server_ready_after(evidence, case).is_some() =>
        {
            (Class::DependencyNotReady, Confidence::Likely)
        }
        // The kubelet's reason relayed as text, while the log lists an
        // engine's store: the image is likely there, not in the node's.
        "image-never-pull" if engine_store_listed(case).is_some() => {
            (Class::ProviderMismatch, Confidence::Likely)
        }
        "connection-refused" if dialled_wrong_side(&line) => {
            (Class::EndpointUnreachable, Confidence::Likely)
        }
        // The kubelet's probe was refused (its address on the probe's line
        // or the next): the container does not listen where it is probed.
        "connection-refused" if refused_probe(evidence, case) => {
            (Class::ReadinessTimeout, Confidence::Likely)
        }
        // kind's default name: the user's cluster likely has another.
        "no-nodes-found" if line.contains("cluster \"kind\"") => {
            (Class::ClusterNameMismatch, Confidence::Suspected)
        }
        // kind runs kubeadm and the kubelet in its node: a flag one of them
        // does not know, while a cluster is created, is a version skew.
        "unknown-flag" if case.phases_seen.contains(&Phase::ClusterCreate) => {
            (Class::KindNodeVersionMismatch, Confidence::Likely)
        }
        // A pod's program refusing its flags exits at every start: the
        // kubelet restarts it, a crash loop whose cause this line is.
        "unknown-flag" if case.phases_seen.contains(&Phase::Deploy) => {
            (Class::CrashLoop, Confidence::Likely)
        }
        // The registry's own answer decides a pull failure; a wrapper that
        // only passes on an exit status does not say why it failed.
        "image-pull" if REGISTRY_ANSWERS.iter().any(|a| line.contains(a)) => {
            (Class::ImagePullFailure, Confidence::Proven)
        }
        "image-pull" if line.contains("exit status") => {
            (Class::ImagePullFailure, Confidence::Suspected)
        }
        // A short name the registries searched did not resolve.
        "image-missing" if line.contains("in registry") => {
            (Class::ImagePullFailure, Confidence::Suspected)
        }
        // Not known right after it was pulled: the store changed under the
        // command (a concurrent prune or removal).
        "image-missing" if line.contains("pulled image") => {
            (Class::RuntimeTransient, Confidence::Suspected)
        }
        // kubectl wait on pods: they never became ready.
        "deadline-exceeded" if line.contains("waiting for the condition on pod") => {
            (Class::ReadinessTimeout, Confidence::Likely)
        }
        // kind's docker CLI found no daemon: the engine is unusable, or the
        // cluster is podman's.
        "kind-list-failed" if podman_in_use => (Class::ProviderMismatch, Confidence::Likely),
        "kind-list-failed" if has_signature(case, "docker-daemon-unreachable") => {
            (Class::EngineError, Confidence::Likely)
        }
        // The OOM killer invoked from a memory cgroup's charge path.
        "oom-killer-invoked" if has_signature(case, "memcg-oom-trace") => {
            (Class::ContainerOomKilled, Confidence::Likely)
        }
        _ => (signature.class, signature.confidence),
    }
}

/// Registry answers in a pull error that say why it failed: the image is
/// not there, or the registry refused it.
/// (An untrusted certificate is the client's own refusal, not an answer.)
const REGISTRY_ANSWERS: [&str; 6] = [
    "not found",
    "manifest unknown",
    "unauthorized",
    "denied",
    "404",
    "toomanyrequests",
];

/// True when a refused connection is a probe's: on the line of a failed
/// probe, or on the line after it (describe and event output wrap there).
fn refused_probe(evidence: &Evidence, case: &Case) -> bool {
    let Some(line) = evidence.line() else {
        return false;
    };
    case.evidence.iter().any(|e| {
        matches!(&e.fact, Fact::Signature { id, .. } if *id == "probe-failed")
            && e.line()
                .is_some_and(|probe| probe == line || probe + 1 == line)
    })
}

/// The first line after `evidence` where a server said it accepts
/// connections (`Fact::ServerReady`).
fn server_ready_after(evidence: &Evidence, case: &Case) -> Option<usize> {
    let line = evidence.line()?;
    case.evidence
        .iter()
        .filter(|e| matches!(e.fact, Fact::ServerReady))
        .filter_map(Evidence::line)
        .find(|&ready| ready > line)
}

/// An engine's image store listed in the evidence (`docker image ls`), as
/// a listing that holds images. Beside a pod whose image is not on its
/// node (ErrImageNeverPull), it shows the image sits in a store the
/// cluster does not read: kind's and k3s's nodes run containerd of their
/// own, not the engine's store.
pub(super) fn engine_store_listed(case: &Case) -> Option<(usize, &Fact)> {
    case.evidence
        .iter()
        .enumerate()
        .find(|(_, e)| matches!(&e.fact, Fact::EngineImages { images, .. } if !images.is_empty()))
        .map(|(i, e)| (i, &e.fact))
}

/// True when some evidence of the case matched the signature `id`.
fn has_signature(case: &Case, id: &str) -> bool {
    case.evidence
        .iter()
        .any(|e| matches!(&e.fact, Fact::Signature { id: found, .. } if *found == id))
}

/// A refused connection to an address that is not the service's from the
/// side that dialled: the engine (or a node) dialling its own loopback for
/// a registry on the client's, or kubectl's server that is not there.
fn dialled_wrong_side(lower_line: &str) -> bool {
    if lower_line.contains("connection to the server") {
        return true;
    }
    let address = signatures::address(lower_line).unwrap_or_default();
    let loopback = ["127.", "localhost", "[::1]", "::1"]
        .iter()
        .any(|l| address.starts_with(l));
    const ENGINE_SIDE: [&str; 9] = [
        "error response from daemon",
        "push",
        "pull",
        "blob",
        "registry",
        "manifest",
        "/v2/",
        "copying",
        "trying to reuse",
    ];
    loopback && ENGINE_SIDE.iter().any(|c| lower_line.contains(c))
}

/// " during image-load", or nothing when the phase is unknown.
fn during(case: &Case) -> String {
    case.phase
        .map_or(String::new(), |phase| format!(" during {phase}"))
}

/// One candidate per class the non-memory signatures point at.
fn signature_candidates(case: &Case) -> Vec<Candidate> {
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut unexplained_exit = None;
    for (i, e) in case.evidence.iter().enumerate() {
        let Some(signature) = signature_of(e) else {
            if let Fact::Exit { .. } = e.fact {
                unexplained_exit.get_or_insert(i);
            }
            continue;
        };
        if signature.abrupt_end {
            continue;
        }
        let reading = match &e.fact {
            Fact::Signature {
                subject: Some(subject),
                ..
            } => format!("{} ({subject})", signature.meaning),
            _ => signature.meaning.to_string(),
        };
        let weighed = Weighed {
            evidence: i,
            reading,
        };
        let (class, confidence) = resolved(signature, e, case);
        match candidates.iter_mut().find(|c| c.class == class) {
            Some(candidate) => {
                candidate.confidence = candidate.confidence.max(confidence);
                candidate.evidence_for.push(weighed);
            }
            None => candidates.push(Candidate {
                class,
                confidence,
                suspected: None,
                statement: statement(signature, class, confidence, e, case),
                evidence_for: vec![weighed],
                evidence_against: Vec::new(),
                fits: signature.fits.to_vec(),
            }),
        }
    }
    // A full disk names its filesystem when its free space was measured.
    for candidate in candidates.iter_mut().filter(|c| c.class == Class::DiskFull) {
        if let Some(i) = written_path(case).and_then(|path| filesystem_of(case, &path)) {
            candidate.evidence_for.push(Weighed {
                evidence: i,
                reading: format!(
                    "the filesystem the failed write went to: {}",
                    case.evidence[i].fact
                ),
            });
        }
    }
    // A filesystem found full when triage looked, with no message saying so
    // (podman exec can lose a command's last stderr lines): likely the cause.
    if let Some(exit) = unexplained_exit
        && !candidates.iter().any(|c| c.class == Class::DiskFull)
        && let Some((full, path)) = case
            .evidence
            .iter()
            .enumerate()
            .find_map(|(i, e)| full_disk(&e.fact).map(|path| (i, path)))
    {
        candidates.push(Candidate {
            class: Class::DiskFull,
            confidence: Confidence::Likely,
            suspected: None,
            statement: format!(
                "The filesystem at {} was full when triage looked ({}) after {}{}: a full disk is likely the cause, though no \"no space left on device\" was seen.",
                path,
                case.evidence[full].fact,
                case.evidence[exit].fact,
                during(case)
            ),
            evidence_for: vec![Weighed {
                evidence: full,
                reading: "a filesystem the failed command writes to was full".into(),
            }],
            evidence_against: Vec::new(),
            fits: Vec::new(),
        });
    }
    // kind's import of a `docker save` archive with --all-platforms fails
    // without a word when Docker 29's containerd store left blobs out. Not
    // when ctr lost its connection (an abrupt-end line such as "progress
    // stream failed to recv") or the node container is gone: containerd
    // went away, which a short archive does not do.
    let connection_lost = case.evidence.iter().any(|e| {
        signature_of(e).is_some_and(|s| s.abrupt_end)
            || matches!(&e.fact, Fact::Container(c) if c.status != "running")
    });
    if candidates.is_empty()
        && !connection_lost
        && let Some(i) = unexplained_exit
        && case.failure.as_ref().is_some_and(|f| {
            f.command
                .as_deref()
                .is_some_and(|c| c.contains("images import") && c.contains("--all-platforms"))
        })
    {
        candidates.push(Candidate {
            class: Class::ContainerdStoreDigestMissing,
            confidence: Confidence::Suspected,
            suspected: None,
            statement: format!(
                "{}{}, with no message of its own; an `--all-platforms` import of a Docker 29 containerd-store archive fails so (kind #3795), suspected.",
                case.evidence[i].fact,
                during(case)
            ),
            evidence_for: vec![Weighed {
                evidence: i,
                reading: "an --all-platforms import failed".into(),
            }],
            evidence_against: Vec::new(),
            fits: vec![
                Class::ContainerdStoreDigestMissing,
                Class::CorruptInput,
                Class::DiskFull,
            ],
        });
    }
    if candidates.is_empty()
        && let Some(i) = unexplained_exit
    {
        candidates.push(Candidate {
            class: Class::Unknown,
            confidence: Confidence::Suspected,
            suspected: None,
            statement: format!(
                "{}{}; no known failure text explains it: read the lines before it.",
                case.evidence[i].fact,
                during(case)
            ),
            evidence_for: vec![Weighed {
                evidence: i,
                reading: "a command failed".into(),
            }],
            evidence_against: Vec::new(),
            fits: Vec::new(),
        });
    }
    candidates
}

/// The path of a measured filesystem with (almost) nothing left: under
/// 1 MiB, or under 1% of its size.
fn full_disk(fact: &Fact) -> Option<&str> {
    match fact {
        Fact::Disk {
            path,
            available_bytes,
            size_bytes,
        } if *size_bytes > 0 && *available_bytes < (1 << 20).max(size_bytes / 100) => Some(path),
        _ => None,
    }
}

/// The statement for a class, from its first piece of evidence.
fn statement(
    signature: &Signature,
    class: Class,
    confidence: Confidence,
    evidence: &Evidence,
    case: &Case,
) -> String {
    let subject = match &evidence.fact {
        Fact::Signature { subject, .. } => subject.clone(),
        _ => None,
    };
    let during = during(case);
    let named = |what: &str| {
        subject
            .as_ref()
            .map_or(String::new(), |s| format!(" {what} {s}"))
    };
    let sure = confidence;
    match class {
        Class::DiskFull => {
            let measured = subject
                .as_deref()
                .and_then(|written| filesystem_of(case, written))
                .map(|i| &case.evidence[i].fact);
            match (&subject, measured) {
                (
                    Some(written),
                    Some(Fact::Disk {
                        path,
                        available_bytes,
                        size_bytes,
                    }),
                ) => format!(
                    "The filesystem at {path} was full{during}: writing {written} failed with \"no space left on device\" ({sure}); it holds {} and had {} free when triage looked (a failed write's partial data may have been removed since).",
                    crate::units::bytes(*size_bytes),
                    crate::units::bytes(*available_bytes)
                ),
                (Some(written), _) => format!(
                    "A filesystem was full{during}: writing {written} failed with \"no space left on device\" ({sure}){}; its free space was not measured, and ENOSPC is also what an exhausted inotify watch limit returns.",
                    staging(written)
                ),
                (None, _) => format!(
                    "A filesystem was full{during} (\"no space left on device\", {sure}): ENOSPC also comes from an exhausted inotify watch limit; which one is not in the evidence yet."
                ),
            }
        }
        Class::InotifyLimits if signature.id == "no-space" => format!(
            "The inotify watch limit was reached{during} ({sure}): \"no space left on device\" came from creating a watch, not from a write."
        ),
        Class::NameConflict => format!(
            "A container or cluster name{} was already taken{during}, {sure}: a leftover of an earlier run.",
            named("")
        ),
        Class::PortConflict => format!(
            "A host port{} was already taken{during}, {sure}.",
            named("")
        ),
        Class::PrivilegedPort => format!(
            "A rootless engine could not bind host port{}{during} ({sure}): ports below 1024 need root or a lower net.ipv4.ip_unprivileged_port_start.",
            named("")
        ),
        Class::ImageMissing => format!(
            "The engine asked had no image{}{during} ({sure}).",
            named("")
        ),
        Class::ProviderMismatch if signature.id == "kind-not-present" => format!(
            "kind found no image{} in docker{during} while the cluster runs on podman ({sure}): kind's `load docker-image` asks docker by name, so an image that podman holds is \"not present locally\".",
            named("")
        ),
        Class::ProviderMismatch if signature.id == "image-never-pull" => never_pull_elsewhere(case),
        Class::ProviderMismatch => format!(
            "{}{during} ({sure}): the cluster's engine and the one asked differ, likeliest first.",
            capitalised(signature.meaning)
        ),
        Class::EndpointUnreachable => {
            let line = evidence.excerpt.as_deref().unwrap_or("").to_lowercase();
            let address = signatures::address(&line).unwrap_or_else(|| "the address".into());
            let side = if line.contains("connection to the server") {
                "kubectl, on the client's side, found no API server there: the cluster is down or the kubeconfig points elsewhere"
            } else {
                "the engine (or a node) dialled it from its own side: from a VM or a network namespace, 127.0.0.1 is its own loopback, not the client's"
            };
            format!("Nothing answered at {address}{during} ({sure}): {side}.")
        }
        Class::DependencyNotReady => match server_ready_after(evidence, case) {
            Some(ready) => format!(
                "A dependency was dialled before it accepted connections{during} ({sure}): `{}`, and only at line {ready} a server said it was ready; the client needs to wait for it or retry.",
                evidence
                    .excerpt
                    .as_deref()
                    .unwrap_or(signature.meaning)
                    .trim()
            ),
            None => format!(
                "A dependency was not accepting connections{}{during} ({sure}): it was not up yet, or is not where it was dialled.",
                named(" at")
            ),
        },
        Class::AppCrash => format!(
            "An application crashed{during} ({sure}): `{}`.",
            evidence
                .excerpt
                .as_deref()
                .unwrap_or(signature.meaning)
                .trim()
        ),
        Class::RuntimeTransient => format!(
            "{}{during}: a runtime failure that goes away on retry, {sure}.",
            capitalised(signature.meaning)
        ),
        _ => format!("{}{during} ({sure}).", capitalised(signature.meaning)),
    }
}

/// A pod's image not on its node (ErrImageNeverPull) while the log lists an
/// engine's store: likely there and not in the node's containerd. Said the
/// same for the API server's status (`workload`) and its text relayed.
pub(super) fn never_pull_elsewhere(case: &Case) -> String {
    let store = match engine_store_listed(case) {
        Some((
            _,
            Fact::EngineImages {
                engine: Some(engine),
                ..
            },
        )) => format!("{engine}'s store"),
        _ => "an engine's store".to_string(),
    };
    format!(
        "A pod's image is not on its node and its pull policy is Never (ErrImageNeverPull), while the log lists images in {store}: the image is likely there and not in the store the cluster's nodes read (kind's and k3s's nodes run a containerd of their own), likely. `crictl images` in a node decides it; load the image into the cluster (`kind load docker-image`, `k3d image import`, `ctr -n k8s.io images import`) or push it to a registry the cluster pulls from, else the tag the pod asks for differs from the one built."
    )
}

/// Where a save stages its archive on the engine's side, when `written`
/// is such a place: the disk that filled is then the engine's (its VM's),
/// not the client's.
fn staging(written: &str) -> &'static str {
    if written.ends_with("/api.tar") {
        " in the engine's VM: a remote podman (podman machine) writes the whole `save` archive to api.tar there before sending any of it, so the VM's disk is the one that filled"
    } else if written.contains("/var/lib/docker/tmp/") {
        " in docker's data-root: the classic image store stages every layer of a `save` there, so the engine's disk (a Docker Desktop VM's) is the one that filled"
    } else {
        ""
    }
}

/// The path of the first write that failed with "no space left on device".
fn written_path(case: &Case) -> Option<String> {
    case.evidence.iter().find_map(|e| match &e.fact {
        Fact::Signature {
            id: "no-space",
            subject,
        } => subject.clone(),
        _ => None,
    })
}

/// The disk evidence of the filesystem holding `written`: the measured path
/// that is its longest ancestor.
fn filesystem_of(case: &Case, written: &str) -> Option<usize> {
    case.evidence
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match &e.fact {
            Fact::Disk { path, .. } => {
                let base = path.trim_end_matches('/');
                let inside = written == base
                    || written
                        .strip_prefix(base)
                        .is_some_and(|rest| rest.starts_with('/'));
                inside.then_some((base.len(), i))
            }
            _ => None,
        })
        .max()
        .map(|(_, i)| i)
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or(String::new(), |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// What the evidence shows still works.
fn still_works(case: &Case) -> Vec<String> {
    let mut works = Vec::new();
    if let Some(failure) = &case.failure
        && let Some(node) = &failure.node
        && let Some(inner) = inner_program(failure)
    {
        // A failure recorded as data has no line: its stderr follows it.
        let line = failure.source_line().unwrap_or(0);
        // The command's own error text came back from inside the node.
        let inner_spoke = case.evidence.iter().any(|e| {
            matches!(e.fact, Fact::Signature { id, .. } if matches!(id, "progress-stream-recv" | "transport-closing" | "server-eof"))
                && e.line().is_some_and(|l| l >= line)
        });
        if inner_spoke {
            works.push(format!(
                "The exec reached node {node} and `{inner}` ran inside it (its own error follows the failure): the engine, the node container and the node's containerd were up when the command started."
            ));
        }
    }
    if let Some(failed) = case.phase {
        let before: Vec<String> = case
            .phases_seen
            .iter()
            .take_while(|&&p| p != failed)
            .map(Phase::to_string)
            .collect();
        if !before.is_empty() {
            works.push(format!(
                "Phases the log shows finishing before {failed}: {}.",
                before.join(", ")
            ));
        }
    }
    for e in &case.evidence {
        match &e.fact {
            Fact::Container(c) if c.status == "running" => {
                works.push(format!("Node container {} is running.", c.name));
            }
            Fact::EngineMemory { engine, .. } => {
                works.push(format!("{engine} answers (`{engine} info`)."));
            }
            _ => {}
        }
    }
    let pods: Vec<&ContainerStatus> = case
        .evidence
        .iter()
        .filter_map(|e| match &e.fact {
            Fact::PodContainer(c) => Some(c),
            _ => None,
        })
        .collect();
    if !pods.is_empty() {
        works.push("The API server answers: it reported the pods' statuses.".into());
    }
    let ready: Vec<String> = pods
        .iter()
        .filter(|c| c.ready == Some(true))
        .map(|c| c.name())
        .collect();
    if !ready.is_empty() {
        let shown = ready.iter().take(READY_SHOWN).cloned().collect::<Vec<_>>();
        let more = ready.len().saturating_sub(READY_SHOWN);
        works.push(format!(
            "Ready: {}{}.",
            shown.join("; "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    works
}

/// How many ready containers "still works" names.
const READY_SHOWN: usize = 5;

/// The program an exec ran in its container: `ctr` of `podman exec -i n ctr ...`.
fn inner_program(failure: &Failure) -> Option<&str> {
    let node = failure.node.as_deref()?;
    let mut words = failure.command.as_deref()?.split_whitespace();
    words.by_ref().find(|w| *w == node)?;
    words.find(|w| !w.starts_with('-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::triage::log;

    fn root(text: &str) -> RootCause {
        diagnose(&log::scan(text, "t.log")).root_cause.unwrap()
    }

    #[test]
    fn a_connection_lost_before_its_server_was_ready_is_a_dependency_not_ready() {
        let early = "<init-db> Error: Io(Os { code: 104, kind: ConnectionReset, message: \"Connection reset by peer\" })\n\
                     LOG:  database system is ready to accept connections\n";
        let root = diagnose(&crate::triage::log::scan(early, "t.log"))
            .root_cause
            .unwrap();
        assert_eq!(
            (root.class, root.confidence),
            (Class::DependencyNotReady, Confidence::Likely)
        );
        assert!(root.statement.contains("line 2"), "{}", root.statement);
        // Ready before the reset: the reset is not the early dial.
        let late = "LOG:  database system is ready to accept connections\n\
                    <init-db> Error: Io(Os { code: 104, kind: ConnectionReset, message: \"Connection reset by peer\" })\n";
        let root = diagnose(&crate::triage::log::scan(late, "t.log"))
            .root_cause
            .unwrap();
        assert_ne!(root.class, Class::DependencyNotReady);
    }

    #[test]
    fn a_silent_all_platforms_import_is_kinds_3795_unless_containerd_went_away() {
        let kind = "ERROR: failed to load image: command \"docker exec --privileged -i kind-control-plane ctr --namespace=k8s.io images import --all-platforms --digests --snapshotter=overlayfs -\" failed with error: exit status 1\n";
        assert_eq!(root(kind).class, Class::ContainerdStoreDigestMissing);
        // Seen in tests/faultlab.rs on a containerd 2.1 node killed
        // mid-import: ctr lost the daemon, which no archive does.
        let lost = format!(
            "{kind}time=\"2026-12-02T17:10:33Z\" level=error msg=\"progress stream failed to recv\" error=\"error reading from server: read unix @->/run/containerd/containerd.sock: read: connection reset by peer\"\n"
        );
        let lost = root(&lost);
        assert_ne!(lost.class, Class::ContainerdStoreDigestMissing);
        // A reset on containerd's unix socket is the daemon gone, not a network.
        assert_ne!(lost.class, Class::EndpointUnreachable);
        assert_ne!(lost.class, Class::DnsNetwork);
    }

    #[test]
    fn a_cause_outranks_the_symptoms_it_produces() {
        // The kill explains the failed test, not the other way round.
        let r = root("--- FAIL: TestE2E (300.00s)\nctr import: signal: killed\n");
        assert_eq!(r.class, Class::KilledUnknown);
        // A full disk explains the timeout that followed it.
        // ENOSPC alone is likely, not proven: inotify returns it too.
        let r = root("Error: context deadline exceeded\nwrite /tmp/x: no space left on device\n");
        assert_eq!(
            (r.class, r.confidence),
            (Class::DiskFull, Confidence::Likely)
        );
        assert_eq!(r.fits, [Class::DiskFull, Class::InotifyLimits]);
    }

    #[test]
    fn a_wrapper_of_a_failed_pull_proves_nothing_the_registry_answer_does() {
        let r = root(
            "ERROR: failed to create cluster: failed to pull image \"kindest/node:v1\": command \"docker pull kindest/node:v1\" failed with error: exit status 1\n",
        );
        assert_eq!(
            (r.class, r.confidence),
            (Class::ImagePullFailure, Confidence::Suspected)
        );
        let r = root(
            "Failed to pull image \"app:2\": rpc error: code = NotFound desc = manifest unknown\n",
        );
        assert_eq!(
            (r.class, r.confidence),
            (Class::ImagePullFailure, Confidence::Proven)
        );
    }

    #[test]
    fn pull_and_engine_texts_that_name_no_cause_of_their_own_prove_nothing() {
        for (line, class, confidence) in [
            // Not registry-tls: both sides spoke TLS; the client refused trust.
            (
                "Failed to pull image \"k8s.gcr.io/pause:3.1\": rpc error: code = Unknown desc = failed to resolve image: x509: certificate signed by unknown authority\n",
                Class::ImagePullFailure,
                Confidence::Likely,
            ),
            // The daemon relays a registry it could not reach: the pull's.
            (
                "Error response from daemon: Get https://registry.example/v2/: net/http: request canceled while waiting for connection\n",
                Class::ImagePullFailure,
                Confidence::Suspected,
            ),
            (
                "Error: cannot connect to the Podman socket, please verify that Podman REST API service is running: ping response was 404\n",
                Class::EngineVersionMismatch,
                Confidence::Suspected,
            ),
        ] {
            let r = root(line);
            assert_eq!((r.class, r.confidence), (class, confidence), "{line}");
        }
    }

    #[test]
    fn a_wait_that_ran_out_on_a_condition_is_a_readiness_timeout() {
        // Cluster API's e2e framework: a Gomega timeout on a condition; the
        // timeout is the readiness failure's consequence.
        let r = root(
            "[FAILED] Timed out after 900.000s.\n  Deployment ns/app failed to get status.Available = True condition\n",
        );
        assert_eq!(
            (r.class, r.confidence),
            (Class::ReadinessTimeout, Confidence::Likely)
        );
    }

    #[test]
    fn a_guess_among_causes_yields_to_a_text_with_a_cause_of_its_own() {
        // kubeadm gave up; its command's output names a crash under QEMU.
        let r = root(
            "ERROR: failed to create cluster: failed to init node with kubeadm: command \"docker exec --privileged kind-control-plane kubeadm init\" failed with error: exit status 139\n\
             Command Output: SIGSEGV: segmentation violation\n\
             qemu: uncaught target signal 11 (Segmentation fault) - core dumped\n",
        );
        assert_eq!(r.class, Class::ArchitectureMismatch);
    }

    #[test]
    fn a_refused_probe_is_the_probes_failure_not_a_dependency() {
        let r = root(
            "Readiness probe failed: Get \"http://10.244.0.7:8080/healthz\":\ndial tcp 10.244.0.7:8080: connect: connection refused\n",
        );
        assert_eq!(
            (r.class, r.confidence),
            (Class::ReadinessTimeout, Confidence::Likely)
        );
        // A refused connection of the application itself stays a dependency's.
        let r = root("dial tcp 10.96.0.5:5432: connect: connection refused\n");
        assert_eq!(r.class, Class::DependencyNotReady);
    }

    #[test]
    fn a_dependency_not_serving_yet_is_suspected() {
        let r = root(
            "psql: error: connection to server on socket \"/var/run/postgresql/.s.PGSQL.5432\" failed: FATAL:  the database system is starting up\n",
        );
        assert_eq!(
            (r.class, r.confidence),
            (Class::DependencyNotReady, Confidence::Suspected)
        );
        // A custom resource applied before its CRD is served.
        let r = root("no matches for kind \"Middleware\" in version \"traefik.io/v1alpha1\"\n");
        assert_eq!(
            (r.class, r.confidence),
            (Class::DependencyNotReady, Confidence::Suspected)
        );
    }

    #[test]
    fn an_oom_report_without_its_victim_line_still_names_the_oom() {
        let r = root("kernel: [1.2] app invoked oom-killer: gfp_mask=0xd0, order=0\n");
        assert_eq!(
            (r.class, r.confidence),
            (Class::OomKill, Confidence::Likely)
        );
        // From a memory cgroup's charge path: a container's own limit.
        let r = root(
            "kernel: [1.2] app invoked oom-killer: gfp_mask=0xd0, order=0\n\
             kernel: [1.3]  [<ffffffff811b1faf>] ? mem_cgroup_oom_synchronize+0x50f/0x580\n",
        );
        assert_eq!(
            (r.class, r.confidence),
            (Class::ContainerOomKilled, Confidence::Likely)
        );
    }

    #[test]
    fn never_pull_says_where_the_image_is_not_and_proves_no_cause() {
        let r = root(
            "Warning  ErrImageNeverPull  3m  kubelet  Container image \"app:dev\" is not present with pull policy of Never\n",
        );
        assert_eq!(r.confidence, Confidence::Likely);
        assert!(r.fits.contains(&Class::ProviderMismatch), "{:?}", r.fits);
    }

    #[test]
    fn a_killed_linker_is_an_oom_suspect_a_killed_command_is_not() {
        for text in [
            "/usr/local/go/pkg/tool/linux_amd64/link: signal: killed\n",
            "c++: fatal error: Killed signal terminated program cc1plus\n",
        ] {
            let r = root(text);
            assert_eq!(
                (r.class, r.confidence),
                (Class::OomKill, Confidence::Suspected),
                "{text}"
            );
        }
        let r = root("ctr import: signal: killed\n");
        assert_eq!(r.class, Class::KilledUnknown);
    }

    #[test]
    fn the_first_cause_in_time_outranks_the_crash_loop_it_causes() {
        // The network was down before kindnet looped; the loop is likely
        // at most, never proven as a root cause.
        let r = root(
            "E0601 kubelet.go:2344] \"Container runtime network not ready\" networkReady=\"NetworkReady=false reason:NetworkPluginNotReady\"\n\
             E0601 pod_workers.go:951] \"Error syncing pod\" err=\"failed to \\\"StartContainer\\\" for \\\"kindnet-cni\\\" with CrashLoopBackOff\"\n",
        );
        assert_eq!(
            (r.class, r.confidence),
            (Class::DnsNetwork, Confidence::Suspected)
        );
    }

    #[test]
    fn misleading_texts_list_what_they_fit_and_prove_nothing() {
        // kind asked docker while the cluster runs on podman.
        let r = root(
            "enabling experimental podman provider\nERROR: image: \"localhost/app:dev\" not present locally\n",
        );
        assert_eq!(
            (r.class, r.confidence),
            (Class::ProviderMismatch, Confidence::Likely)
        );
        // Without the engine in view, the text alone fits both.
        let d = diagnose(&log::scan(
            "ERROR: image: \"localhost/app:dev\" not present locally\n",
            "t.log",
        ));
        let r = d.root_cause.as_ref().unwrap();
        assert_eq!(r.confidence, Confidence::Suspected);
        assert_eq!(r.fits, [Class::ProviderMismatch, Class::ImageMissing]);
        assert!(d.to_collect[0].what.starts_with("Which cause"));
        assert!(
            d.to_collect[0]
                .commands
                .iter()
                .any(|c| c.run == "podman images")
        );
        // ENOSPC from a watch is inotify's.
        let r = root("tail: inotify_add_watch failed: no space left on device\n");
        assert_eq!(r.class, Class::InotifyLimits);
        // kind's default name: likelier a name the user did not pass.
        let r = root("ERROR: no nodes found for cluster \"kind\"\n");
        assert_eq!(
            (r.class, r.confidence),
            (Class::ClusterNameMismatch, Confidence::Suspected)
        );
        assert_eq!(
            r.fits,
            [Class::ProviderMismatch, Class::ClusterNameMismatch]
        );
    }

    #[test]
    fn a_refused_connection_names_the_address_and_the_side() {
        let r = root(
            "Error: writing blob: initiating layer upload to /v2/app/blobs/uploads/ in 127.0.0.1:40123: pinging container registry 127.0.0.1:40123: Get \"http://127.0.0.1:40123/v2/\": dial tcp 127.0.0.1:40123: connect: connection refused\n",
        );
        assert_eq!(r.class, Class::EndpointUnreachable);
        assert!(r.statement.contains("127.0.0.1:40123"), "{}", r.statement);
        assert!(r.statement.contains("own loopback"), "{}", r.statement);
        // A service that retried a dependency until it gave up.
        let r = root(
            "dial tcp 10.96.0.12:5432: connect: connection refused\nfailed to connect to database, giving up after 10 attempts\n",
        );
        assert_eq!(
            (r.class, r.confidence),
            (Class::DependencyNotReady, Confidence::Likely)
        );
    }

    #[test]
    fn a_vm_disk_full_while_staging_a_save_says_whose_disk() {
        let r = root(
            "Error: writing to /var/tmp/api.tar: write /var/tmp/podman123/api.tar: no space left on device\n",
        );
        assert_eq!(r.class, Class::DiskFull);
        assert!(r.statement.contains("engine's VM"), "{}", r.statement);
    }

    #[test]
    fn among_causes_the_first_in_time_is_the_root() {
        let r = root(
            "Error response from daemon: toomanyrequests: You have reached your pull rate limit.\nlookup registry-1.docker.io: no such host\n",
        );
        assert_eq!(r.class, Class::RegistryRateLimit);
        let r = root(
            "lookup registry-1.docker.io: no such host\nError response from daemon: toomanyrequests: You have reached your pull rate limit.\n",
        );
        // Proven outranks an earlier likely: decisive evidence first.
        assert_eq!(r.class, Class::RegistryRateLimit);
        let r = root(
            "failed to create fsnotify watcher: too many open files\nexec /app: exec format error\n",
        );
        assert_eq!(r.class, Class::InotifyLimits);
    }

    #[test]
    fn unexplained_failures_stay_unknown_and_signatures_alone_keep_their_confidence() {
        let r = root("step 4\nError: exit status 3\n");
        assert_eq!(
            (r.class, r.confidence),
            (Class::Unknown, Confidence::Suspected)
        );
        let r = root("error: timed out waiting for the condition on deployments/app\n");
        assert_eq!(
            (r.class, r.confidence),
            (Class::Timeout, Confidence::Likely)
        );
        // containerd gone with no kill status: the runtime crashed, OOM suspected.
        let r = root("ctr: failed to send write: transport is closing: unavailable\n");
        assert_eq!(r.class, Class::EngineCrash);
        assert_eq!(r.suspected, Some(Class::OomKill));
    }

    #[test]
    fn an_oom_of_an_unrelated_process_is_not_proof() {
        let failure = Failure {
            command: Some("podman exec -i n ctr images import -".into()),
            exit_code: Some(137),
            message: String::new(),
            source: Source::Command {
                command: "x".into(),
            },
            node: Some("n".into()),
        };
        let kill = |process: &str| OomKill {
            pid: 1,
            process: process.into(),
            scope: crate::triage::kernel::OomScope::System,
            memcg: None,
            anon_rss_kib: None,
            usage_kib: None,
            limit_kib: None,
        };
        assert!(related_to_failure(&kill("containerd"), Some(&failure)));
        assert!(related_to_failure(&kill("ctr"), Some(&failure)));
        assert!(related_to_failure(&kill("podman"), Some(&failure)));
        assert!(!related_to_failure(&kill("java"), Some(&failure)));
        assert!(!related_to_failure(&kill("ctr"), None));
    }
}
