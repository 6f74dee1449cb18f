//! The rules for pod-level evidence: container statuses and events as the
//! API server reported them ([`kube`](super::kube)), and the kernel's OOM
//! kills of processes that are a container's own.
//!
//! A status reason or an event reason is the API server's word, so it may
//! prove what it names (ErrImageNeverPull, OOMKilled, FailedScheduling, a
//! restart for a failed probe); what caused it stays for the other evidence
//! to show. A crash loop is a symptom whose cause is in the container's last
//! lines: proven the program's own doing only when its last instance exited
//! with a status of its own, and otherwise at most likely as a root cause.
//! Statements name the pod, the container and the image where known.

use super::diagnosis::{self, Candidate, Case, Class, Confidence, Weighed};
use super::evidence::{ContainerLog, Fact};
use super::kernel::{OomKill, OomScope};
use super::kube::{ContainerStatus, KubeEvent, State, Termination};
use super::signatures;

/// One candidate per pod-level fact that shows a failure.
pub(super) fn candidates(case: &Case) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (i, e) in case.evidence.iter().enumerate() {
        let found = match &e.fact {
            Fact::PodContainer(status) => from_status(status, case),
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
                // A status read as another class's doing still fits its own.
                fits: match (&e.fact, class) {
                    (Fact::PodContainer(_), Class::ProviderMismatch) => {
                        vec![Class::ProviderMismatch, Class::ImageNeverPull]
                    }
                    _ => Vec::new(),
                },
            });
        }
    }
    out
}

/// What a container's status shows, if it shows a failure.
fn from_status(c: &ContainerStatus, case: &Case) -> Option<(Class, Confidence, String)> {
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
        // The API server's word proves the pod cannot start, not why: with
        // an engine's store listed beside it, the image is likely there and
        // not in the node's (k3s and kind nodes read their own containerd).
        "ErrImageNeverPull" if diagnosis::engine_store_listed(case).is_some() => (
            Class::ProviderMismatch,
            Confidence::Likely,
            format!("{who}: {}", diagnosis::never_pull_elsewhere(case)),
        ),
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
        "CrashLoopBackOff" => crash_loop(
            &who,
            case,
            c,
            c.last_termination.as_ref(),
            "CrashLoopBackOff".into(),
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
        _ => return restarted_crash(c, &who, case).or_else(|| failed_run(c, &who)),
    };
    Some(found)
}

/// A crash loop. The status proves the loop; it proves the program's own
/// doing only when the last instance ended with a status of its own (1 to
/// 127: no signal, so neither an OOM kill nor a probe's kill, whose sender
/// is elsewhere). Either way the cause is in the container's last lines,
/// quoted when the runner gathered them.
fn crash_loop(
    who: &str,
    case: &Case,
    c: &ContainerStatus,
    last: Option<&Termination>,
    looping: String,
) -> (Class, Confidence, String) {
    let ended = last.map_or(String::new(), |t| format!(" (last ended: {t})"));
    let words = match last_lines(c, case) {
        Some(lines) => format!("Its last lines: `{}`.", lines.join(" / ")),
        None => "Its last lines (`kubectl logs --previous`) say why.".to_string(),
    };
    // A program that exits because a service it dials refused it: the
    // loop is the dependency's doing. Any gathered instance may say so:
    // which of the two the kubelet still has depends on the moment.
    let refused = container_logs(c, case)
        .flat_map(|log| &log.last_lines)
        .find(|line| refused_connection(line));
    if let Some(line) = refused {
        return (
            Class::DependencyNotReady,
            Confidence::Likely,
            format!(
                "{who} keeps exiting because a service it needs refused the connection, likely: its last lines say `{line}`{ended}. That service's pods are not ready, or its selector matches none (`kubectl get endpoints`)."
            ),
        );
    }
    let own_exit = last
        .and_then(|t| t.exit_code)
        .is_some_and(|code| (1..128).contains(&code));
    if own_exit {
        (
            Class::CrashLoop,
            Confidence::Proven,
            format!(
                "{who} keeps exiting on its own, proven: the kubelet restarts it ({looping}){ended}. {words}"
            ),
        )
    } else {
        (
            Class::CrashLoop,
            Confidence::Likely,
            format!("{who} keeps exiting ({looping}){ended}. {words}"),
        )
    }
}

/// A line that says a connection was refused, in the words the signature
/// table knows.
fn refused_connection(line: &str) -> bool {
    signatures::by_id("connection-refused")
        .is_some_and(|signature| signature.matches_text(&line.to_lowercase()))
}

/// The last lines the container wrote, from the log the runner gathered:
/// the crashed instance's where there is one, else the current one's.
fn last_lines<'a>(c: &'a ContainerStatus, case: &'a Case) -> Option<&'a [String]> {
    container_logs(c, case)
        .max_by_key(|log| log.previous)
        .map(|log| log.last_lines.as_slice())
}

/// The gathered logs of `c`'s instances that said anything.
fn container_logs<'a>(
    c: &'a ContainerStatus,
    case: &'a Case,
) -> impl Iterator<Item = &'a ContainerLog> + 'a {
    case.evidence.iter().filter_map(move |e| match &e.fact {
        Fact::ContainerLog(log) if log.is_of(c) && !log.last_lines.is_empty() => Some(log),
        _ => None,
    })
}

/// The same crash loop seen between two back-offs: a container the kubelet
/// has restarted that has just ended in error again (terminated), or has
/// just been started again after one (running, ready for the moment: a
/// rollout that waits `minReadySeconds` sees it so).
fn restarted_crash(
    c: &ContainerStatus,
    who: &str,
    case: &Case,
) -> Option<(Class, Confidence, String)> {
    let restarts = c.restarts.filter(|&n| n > 0)?;
    let failed = |t: &Termination| t.exit_code.is_some_and(|code| code != 0);
    let last = match &c.state {
        State::Terminated(t) if failed(t) => t,
        State::Running => c.last_termination.as_ref().filter(|t| failed(t))?,
        _ => return None,
    };
    let looping = format!("{restarts} restarts so far");
    Some(crash_loop(who, case, c, Some(last), looping))
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
            Confidence::Likely,
            format!("A container{on} keeps crashing: {message}"),
        ),
        "Unhealthy" if lower.contains("probe") => (
            Class::ReadinessTimeout,
            Confidence::Likely,
            format!("A pod{on} failed its health probe, likely why it is not ready: {message}"),
        ),
        // The kubelet's own record that it restarts the container for its
        // probe.
        "Killing"
            if lower.contains("failed liveness probe")
                || lower.contains("failed startup probe") =>
        {
            (
                Class::ReadinessTimeout,
                Confidence::Proven,
                format!("A container{on} is restarted for failing its probe, proven: {message}"),
            )
        }
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
        && kill.memcg.as_deref().is_none_or(is_container_cgroup)
}

/// True for a cgroup path of a container or a pod; false for the host's
/// own units (a CI runner's `system.slice/...service`), whose limit is the
/// machine's share, not a container's.
fn is_container_cgroup(path: &str) -> bool {
    const CONTAINER_MARKS: [&str; 7] = [
        "kubepods",
        "docker",
        "libpod",
        "containerd",
        "crio",
        "machine.slice",
        "lxc",
    ];
    CONTAINER_MARKS.iter().any(|m| path.contains(m)) || !path.contains(".service")
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
/// that timed out; a crash's own message explains its crash loop; a starved
/// node explains the deadline its import ran into.
pub(super) fn absorb_consequences(candidates: &mut Vec<Candidate>) {
    for (cause, consequence) in [
        (Class::ReadinessTimeout, Class::Timeout),
        (Class::AppCrash, Class::CrashLoop),
        (Class::ImageNeverPull, Class::Timeout),
        (Class::ImagePullFailure, Class::Timeout),
        (Class::CrashLoop, Class::Timeout),
        (Class::PodUnschedulable, Class::Timeout),
        (Class::MemoryStarved, Class::Timeout),
        (Class::DependencyNotReady, Class::CrashLoop),
        (Class::DependencyNotReady, Class::Timeout),
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

#[cfg(test)]
mod tests {
    use super::{OomKill, OomScope, is_container_kill};
    use crate::triage::diagnosis::{Class, Confidence, RootCause};
    use crate::triage::evidence::ContainerLog;
    use crate::triage::{Evidence, Fact, Source, diagnose, log};

    fn root(text: &str) -> RootCause {
        diagnose(&log::scan(text, "t.log")).root_cause.unwrap()
    }

    #[test]
    fn a_host_units_memcg_oom_is_the_machines_not_a_containers() {
        let kill = |memcg: &str| OomKill {
            pid: 1,
            process: "e2e".into(),
            scope: OomScope::Cgroup,
            memcg: Some(memcg.into()),
            anon_rss_kib: None,
            usage_kib: None,
            limit_kib: None,
        };
        assert!(!is_container_kill(&kill(
            "/system.slice/gha-runner@9.service"
        )));
        assert!(is_container_kill(&kill(
            "/kubepods.slice/kubepods-burstable.slice/cri-containerd-4b1e.scope"
        )));
        assert!(is_container_kill(&kill("/docker/4b1e0c")));
    }

    #[test]
    fn a_probe_restart_is_proven_a_crash_loop_only_likely() {
        let r = root(
            "Type     Reason     Age                From               Message\n\
             ----     ------     ----               ----               -------\n\
             Warning  Unhealthy  10s (x3 over 20s)  kubelet, node01    Liveness probe failed: cat: can't open '/tmp/healthy'\n\
             Normal   Killing    10s                kubelet, node01    Container liveness failed liveness probe, will be restarted\n",
        );
        assert_eq!(
            (r.class, r.confidence),
            (Class::ReadinessTimeout, Confidence::Proven)
        );
        let r = root(
            "NAME        READY   STATUS             RESTARTS        AGE\n\
             runlore-0   0/1     CrashLoopBackOff   22 (4m14s ago)  93m\n",
        );
        assert_eq!(
            (r.class, r.confidence),
            (Class::CrashLoop, Confidence::Likely)
        );
    }

    #[test]
    fn a_never_pull_status_names_the_pod_and_proves_it() {
        let r = root(
            "error: timed out waiting for the condition on deployments/api\n\
             NAME                   READY   STATUS              RESTARTS   AGE\n\
             api-5f6d7c8b9-abcde    0/1     ErrImageNeverPull   0          5m\n",
        );
        assert_eq!(
            (r.class, r.confidence),
            (Class::ImageNeverPull, Confidence::Proven)
        );
        assert!(
            r.statement.contains("api-5f6d7c8b9-abcde"),
            "{}",
            r.statement
        );
        // The timeout is its consequence, folded into it.
        assert!(
            r.statement.contains("It explains this too"),
            "{}",
            r.statement
        );
    }

    #[test]
    fn a_never_pull_status_beside_an_engines_store_is_a_provider_mismatch_not_proven() {
        let r = root(
            "$ docker images\n\
             REPOSITORY   TAG      IMAGE ID       CREATED         SIZE\n\
             api          dev      5fc5c70ca2a0   2 minutes ago   937MB\n\
             $ kubectl get pods\n\
             NAME                   READY   STATUS              RESTARTS   AGE\n\
             api-5f6d7c8b9-abcde    0/1     ErrImageNeverPull   0          5m\n",
        );
        assert_eq!(
            (r.class, r.confidence),
            (Class::ProviderMismatch, Confidence::Likely)
        );
        assert_eq!(r.fits, [Class::ProviderMismatch, Class::ImageNeverPull]);
        assert!(r.statement.contains("docker's store"), "{}", r.statement);
        // The fix puts the image where the nodes read, not another provider.
        let fix = diagnose(&log::scan(
            "REPOSITORY   TAG   IMAGE ID       CREATED         SIZE\n\
             api          dev   5fc5c70ca2a0   2 minutes ago   937MB\n\
             NAME                   READY   STATUS              RESTARTS   AGE\n\
             api-5f6d7c8b9-abcde    0/1     ErrImageNeverPull   0          5m\n",
            "t.log",
        ))
        .fix;
        assert!(
            fix.iter()
                .flat_map(|step| &step.commands)
                .any(|c| c.run.contains("k3d image import")),
            "{fix:?}"
        );
        // The same reason relayed as text, beside the listing: likewise.
        let r = root(
            "REPOSITORY   TAG      IMAGE ID       CREATED         SIZE\n\
             api          dev      5fc5c70ca2a0   2 minutes ago   937MB\n\
             - default:deployment/api: ErrImageNeverPull: Container image \"api:v2\" is not present with pull policy of Never\n",
        );
        assert_eq!(
            (r.class, r.confidence),
            (Class::ProviderMismatch, Confidence::Likely)
        );
    }

    #[test]
    fn a_last_termination_oomkilled_outranks_the_crash_loop_it_causes() {
        let r = root(
            "Name:         cache-0\n\
             Namespace:    e2e\n\
             Containers:\n\
             \x20 cache:\n\
             \x20   Image:          redis:7\n\
             \x20   State:          Waiting\n\
             \x20     Reason:       CrashLoopBackOff\n\
             \x20   Last State:     Terminated\n\
             \x20     Reason:       OOMKilled\n\
             \x20     Exit Code:    137\n\
             \x20   Ready:          False\n\
             \x20   Restart Count:  3\n\
             \x20   Limits:\n\
             \x20     memory:  64Mi\n",
        );
        assert_eq!(
            (r.class, r.confidence),
            (Class::ContainerOomKilled, Confidence::Proven)
        );
        for named in [
            "e2e/cache-0",
            "container cache",
            "redis:7",
            "64Mi",
            "exit code 137",
        ] {
            assert!(r.statement.contains(named), "{named}: {}", r.statement);
        }
    }

    #[test]
    fn a_crash_loop_of_the_programs_own_exit_is_proven_with_its_last_lines() {
        let describe = |exit: u32| {
            format!(
                "Name:         app-0\n\
                 Namespace:    e2e\n\
                 Containers:\n\
                 \x20 app:\n\
                 \x20   Image:          app:1\n\
                 \x20   State:          Waiting\n\
                 \x20     Reason:       CrashLoopBackOff\n\
                 \x20   Last State:     Terminated\n\
                 \x20     Reason:       Error\n\
                 \x20     Exit Code:    {exit}\n\
                 \x20   Restart Count:  2\n"
            )
        };
        // The describe, and the crashed instances' last lines as the runner
        // gathers them: (previous instance?, line).
        let with_logs = |exit: u32, logs: &[(bool, &str)]| {
            let mut case = log::scan(&describe(exit), "describe.txt");
            for &(previous, line) in logs {
                case.evidence.push(Evidence::new(
                    Source::Log {
                        file: format!("logs/pod-e2e-app-0-app-{previous}.log"),
                        line: 1,
                    },
                    Fact::ContainerLog(ContainerLog {
                        namespace: "e2e".into(),
                        pod: "app-0".into(),
                        container: "app".into(),
                        previous,
                        last_lines: vec![line.into()],
                    }),
                ));
            }
            diagnose(&case).root_cause.unwrap()
        };
        let with_last_words = |exit: u32, line: &str| with_logs(exit, &[(true, line)]);
        let r = with_last_words(3, "fault: cannot open /etc/app/config.yaml");
        assert_eq!(
            (r.class, r.confidence),
            (Class::CrashLoop, Confidence::Proven)
        );
        for named in [
            "e2e/app-0",
            "container app",
            "exit code 3",
            "cannot open /etc/app/config.yaml",
        ] {
            assert!(r.statement.contains(named), "{named}: {}", r.statement);
        }
        // Its last words a refused connection: a dependency not ready.
        let r = with_last_words(
            1,
            "nc: can't connect to remote host (10.96.41.7): Connection refused",
        );
        assert_eq!(
            (r.class, r.confidence),
            (Class::DependencyNotReady, Confidence::Likely)
        );
        assert!(r.statement.contains("10.96.41.7"), "{}", r.statement);
        // The instance before said something else (the node's proxy had
        // not yet set up the Service): the later refusal still counts.
        let r = with_logs(
            1,
            &[
                (
                    true,
                    "nc: can't connect to remote host (10.96.41.7): Network unreachable",
                ),
                (
                    false,
                    "nc: can't connect to remote host (10.96.41.7): Connection refused",
                ),
            ],
        );
        assert_eq!(
            (r.class, r.confidence),
            (Class::DependencyNotReady, Confidence::Likely)
        );
        // Killed by a signal (137: SIGKILL, an OOM or a probe's kill): its
        // sender is elsewhere, so the loop alone proves no cause.
        let r = root(&describe(137));
        assert_eq!(
            (r.class, r.confidence),
            (Class::CrashLoop, Confidence::Likely)
        );
        assert!(
            r.statement.contains("kubectl logs --previous"),
            "{}",
            r.statement
        );
    }

    #[test]
    fn a_restarted_container_caught_between_back_offs_is_the_same_crash_loop() {
        let pod = |state: &str| {
            format!(
                r#"{{"kind": "Pod", "metadata": {{"name": "app-0", "namespace": "e2e"}},
                 "spec": {{"containers": [{{"name": "app", "image": "app:1"}}]}},
                 "status": {{"containerStatuses": [{{"name": "app", "image": "app:1", "ready": false,
                   "restartCount": 2, "state": {state},
                   "lastState": {{"terminated": {{"reason": "Error", "exitCode": 3}}}}}}]}}}}"#
            )
        };
        for state in [
            r#"{"terminated": {"reason": "Error", "exitCode": 3}}"#,
            r#"{"running": {"startedAt": "2026-12-03T09:50:00Z"}}"#,
        ] {
            let r = root(&pod(state));
            assert_eq!(
                (r.class, r.confidence),
                (Class::CrashLoop, Confidence::Proven),
                "{state}: {}",
                r.statement
            );
            assert!(r.statement.contains("2 restarts"), "{}", r.statement);
        }
    }

    #[test]
    fn failed_scheduling_says_why() {
        let r = root(
            "LAST SEEN   TYPE      REASON             OBJECT          MESSAGE\n\
             12s         Warning   FailedScheduling   pod/big-0       0/1 nodes are available: 1 Insufficient memory.\n",
        );
        assert_eq!(
            (r.class, r.confidence),
            (Class::PodUnschedulable, Confidence::Proven)
        );
        assert!(r.statement.contains("pod/big-0"));
        assert!(r.statement.contains("Insufficient memory"));
    }

    #[test]
    fn unready_pods_explain_the_wait_that_timed_out() {
        let r = root(
            "error: timed out waiting for the condition on pods/web-0\n\
             Warning  Unhealthy  3s (x10 over 90s)  kubelet  Readiness probe failed: HTTP probe failed with statuscode: 503\n",
        );
        assert_eq!(r.class, Class::ReadinessTimeout);
        assert!(r.confidence < Confidence::Proven);
    }

    #[test]
    fn a_cgroup_oom_kill_of_an_app_is_its_own_limit_of_a_runtime_is_not() {
        let r = root(
            "[ 301.2] Memory cgroup out of memory: Killed process 4242 (java) total-vm:1kB, anon-rss:1kB\n",
        );
        assert_eq!(
            (r.class, r.confidence),
            (Class::ContainerOomKilled, Confidence::Proven)
        );
        let r = root(
            "[ 301.2] Memory cgroup out of memory: Killed process 4242 (containerd) total-vm:1kB, anon-rss:1kB\n",
        );
        assert_eq!(r.class, Class::OomKill);
    }

    #[test]
    fn a_panic_explains_the_crash_loop() {
        let r = root(
            "Warning  BackOff  5s (x4 over 40s)  kubelet  Back-off restarting failed container api in pod api-0\n\
             panic: runtime error: invalid memory address or nil pointer dereference\n\
             [signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a1b2c]\n",
        );
        assert_eq!(r.class, Class::AppCrash);
        assert!(
            r.statement.contains("nil pointer dereference"),
            "{}",
            r.statement
        );
    }
}
