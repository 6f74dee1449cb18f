//! The rules for pod-level evidence: container statuses and events as the
//! API server reported them ([`kube`](super::kube)), and the kernel's OOM
//! kills of processes that are a container's own.
//!
//! A status reason or an event reason is the API server's word, so it may
//! prove what it names (ErrImageNeverPull, OOMKilled, FailedScheduling,
//! CrashLoopBackOff); what caused it stays for the other evidence to show.
//! Statements name the pod, the container and the image where known.

use super::diagnosis::{Candidate, Case, Class, Confidence, Weighed};
use super::evidence::Fact;
use super::kernel::{OomKill, OomScope};
use super::kube::{ContainerStatus, KubeEvent, State};

/// One candidate per pod-level fact that shows a failure.
pub(super) fn candidates(case: &Case) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (i, e) in case.evidence.iter().enumerate() {
        let found = match &e.fact {
            Fact::PodContainer(status) => from_status(status),
            Fact::KubeEvent(event) => from_event(event),
            _ => None,
        };
        if let Some((class, confidence, statement)) = found {
            out.push(Candidate {
                class,
                confidence,
                suspected: None,
                statement,
                evidence_for: vec![Weighed {
                    evidence: i,
                    reading: format!("the API server reports {}", e.fact),
                }],
                evidence_against: Vec::new(),
                fits: Vec::new(),
            });
        }
    }
    out
}

/// What a container's status shows, if it shows a failure.
fn from_status(c: &ContainerStatus) -> Option<(Class, Confidence, String)> {
    let who = who(c);
    if let Some(t) = c
        .terminations()
        .find(|t| t.reason.as_deref() == Some("OOMKilled"))
    {
        let limit = c
            .memory_limit
            .as_ref()
            .map_or(String::new(), |l| format!(" of {l}"));
        return Some((
            Class::ContainerOomKilled,
            Confidence::Proven,
            format!(
                "{who} was OOM-killed by its own memory limit{limit}, proven: its status reason is {t}. Raise the limit to its measured peak, or find why it grew."
            ),
        ));
    }
    let reason = c.state.waiting_reason().unwrap_or("");
    let found = match reason {
        "ErrImageNeverPull" => (
            Class::ImageNeverPull,
            Confidence::Proven,
            format!(
                "{who} cannot start, proven: its image is not on the node and its pull policy is Never (ErrImageNeverPull). The name the pod asks for is not the name that was loaded: compare tag, registry host and `localhost/` prefix."
            ),
        ),
        "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName" => (
            Class::ImagePullFailure,
            Confidence::Proven,
            format!(
                "{who} cannot start, proven: the kubelet could not pull its image ({reason}). The pull's own error is in the pod's Failed events."
            ),
        ),
        "CrashLoopBackOff" => (
            Class::CrashLoop,
            Confidence::Proven,
            format!(
                "{who} is in CrashLoopBackOff, proven{}: it keeps exiting; its last lines (`kubectl logs --previous`) say why.",
                c.last_termination
                    .as_ref()
                    .map_or(String::new(), |t| format!(" (last ended: {t})"))
            ),
        ),
        "CreateContainerConfigError" => (
            Class::DependencyNotReady,
            Confidence::Likely,
            format!(
                "{who} cannot be created (CreateContainerConfigError): a Secret or ConfigMap it reads does not exist (yet), likely."
            ),
        ),
        "CreateContainerError" | "RunContainerError" => (
            Class::EngineError,
            Confidence::Likely,
            format!("{who} could not be created or started by the runtime ({reason})."),
        ),
        _ => return failed_run(c, &who),
    };
    Some(found)
}

/// A container that ended in error without being restarted (a job's pod).
fn failed_run(c: &ContainerStatus, who: &str) -> Option<(Class, Confidence, String)> {
    let State::Terminated(t) = &c.state else {
        return None;
    };
    let failed = t.exit_code.is_some_and(|code| code != 0)
        || matches!(t.reason.as_deref(), Some("Error" | "ContainerCannotRun"));
    failed.then(|| {
        (
            Class::AppCrash,
            Confidence::Suspected,
            format!("{who} ended with {t}: its own log says why."),
        )
    })
}

/// What an event shows, if it shows a failure.
fn from_event(e: &KubeEvent) -> Option<(Class, Confidence, String)> {
    let on = e
        .object
        .as_ref()
        .map_or(String::new(), |o| format!(" for {o}"));
    let message = e.message.trim();
    let lower = message.to_lowercase();
    let found = match e.reason.as_str() {
        "FailedScheduling" => (
            Class::PodUnschedulable,
            Confidence::Proven,
            format!("The scheduler placed no pod{on}, proven (FailedScheduling): {message}"),
        ),
        "Failed" if lower.contains("failed to pull image") => (
            Class::ImagePullFailure,
            Confidence::Proven,
            format!("The kubelet could not pull an image{on}, proven: {message}"),
        ),
        "BackOff" if lower.contains("restarting failed container") => (
            Class::CrashLoop,
            Confidence::Proven,
            format!("A container{on} keeps crashing, proven: {message}"),
        ),
        "Unhealthy" if lower.contains("readiness probe") => (
            Class::ReadinessTimeout,
            Confidence::Likely,
            format!("A pod{on} never became ready, likely: {message}"),
        ),
        "Evicted" if lower.contains("ephemeral-storage") || lower.contains("diskpressure") => (
            Class::DiskFull,
            Confidence::Likely,
            format!("A pod{on} was evicted for disk space, likely: {message}"),
        ),
        "OOMKilling" => (
            Class::ContainerOomKilled,
            Confidence::Likely,
            format!("The node reported an OOM kill{on}: {message}"),
        ),
        _ => return None,
    };
    Some(found)
}

/// `Container api of pod e2e/api-1 (image app:1)`.
fn who(c: &ContainerStatus) -> String {
    let name = c.name();
    let mut who = format!("{}{}", name[..1].to_uppercase(), &name[1..]);
    if let Some(image) = &c.image {
        who.push_str(&format!(" (image {image})"));
    }
    who
}

/// The runtimes whose kill is a node's or an engine's, not an app's.
const RUNTIME_PROCESSES: [&str; 9] = [
    "containerd",
    "ctr",
    "runc",
    "crun",
    "dockerd",
    "podman",
    "conmon",
    "kubelet",
    "containerd-shim",
];

/// A kernel OOM kill that a container's own memory limit caused: a memory
/// cgroup's (not the machine's), of a process that is no runtime.
pub(super) fn is_container_kill(kill: &OomKill) -> bool {
    kill.scope == OomScope::Cgroup
        && !RUNTIME_PROCESSES
            .iter()
            .any(|p| kill.process.starts_with(p))
}

/// The candidate for kernel OOM kills by a container's own limit.
pub(super) fn container_oom_candidate(case: &Case, kills: Vec<Weighed>) -> Candidate {
    let kill = match &case.evidence[kills[0].evidence].fact {
        Fact::OomKill(kill) => kill.to_string(),
        other => other.to_string(),
    };
    Candidate {
        class: Class::ContainerOomKilled,
        confidence: Confidence::Proven,
        suspected: None,
        statement: format!(
            "A container was OOM-killed by its own memory limit, proven: {kill}, inside a memory cgroup at its limit."
        ),
        evidence_for: kills,
        evidence_against: Vec::new(),
        fits: Vec::new(),
    }
}

/// Where one failure explains another, the explained one goes into the
/// explaining one's evidence: pods that never got ready explain the wait
/// that timed out; a crash's own message explains its crash loop.
pub(super) fn absorb_consequences(candidates: &mut Vec<Candidate>) {
    for (cause, consequence) in [
        (Class::ReadinessTimeout, Class::Timeout),
        (Class::AppCrash, Class::CrashLoop),
        (Class::ImageNeverPull, Class::Timeout),
        (Class::ImagePullFailure, Class::Timeout),
        (Class::CrashLoop, Class::Timeout),
        (Class::PodUnschedulable, Class::Timeout),
    ] {
        let Some(from) = candidates.iter().position(|c| c.class == consequence) else {
            continue;
        };
        let Some(into) = candidates
            .iter()
            .position(|c| c.class == cause && c.confidence >= Confidence::Likely)
        else {
            continue;
        };
        let absorbed = candidates.remove(from);
        let into = if from < into { into - 1 } else { into };
        let kept = &mut candidates[into];
        kept.statement = format!(
            "{} It explains this too: {}",
            kept.statement, absorbed.statement
        );
        kept.evidence_for.extend(absorbed.evidence_for);
    }
}
