//! Triage of loadmaster's own runs: what the journal recorded, read as
//! typed facts.
//!
//! A failed step, load or push is in the journal as data: the command's
//! argv, its exit code or signal, the node, its stderr tail, the step (which
//! gives the phase), each node's state after a failed import. Those become
//! evidence as they are. Only a stderr tail, another tool's words, is
//! scanned, and only for what that tool can say (known failure texts, kernel
//! OOM lines, pod states): a line in it that reads like a failure report of
//! its own ("Error: `x` failed (exit status 1)") is never taken for the
//! failure, whose command, exit and node are the journal's.

use super::diagnosis::{Case, Failure, Moment, Phase};
use super::evidence::{Evidence, Fact, Source};
use super::log;
use crate::archive::ArchiveError;
use crate::deliver::NodeFailure;
use crate::engine::FailedCommand;
use crate::journal::{EventBody, Exit, Outcome, RunRecord};
use crate::process::shell_words;

/// The phase a step of loadmaster's belongs to, by its id (`build/app:1`,
/// `cluster`, `deliver/app:1`, `load/app:1`, `push/app:1`, `deploy/db`,
/// `test`); none for the others (`preflight`, `teardown`).
pub fn phase_of_step(step: &str) -> Option<Phase> {
    let kind = step.split('/').next().unwrap_or(step);
    Some(match kind {
        "build" => Phase::Build,
        "cluster" => Phase::ClusterCreate,
        "deliver" | "load" | "push" => Phase::ImageLoad,
        "deploy" => Phase::Deploy,
        "test" => Phase::Test,
        _ => return None,
    })
}

/// The exit a shell shows: the code, or 128 + the signal.
fn shell_code(exit: &Exit) -> Option<i32> {
    exit.code.or(exit.signal.map(|signal| 128 + signal))
}

/// The container an `exec` ran in: the first word after `exec` and its
/// flags (`podman exec -i NODE ctr ...`). Read from the argv's words, which
/// are data, not from a printed line.
fn exec_node(argv: &[String]) -> Option<String> {
    let mut words = argv.iter().skip_while(|w| *w != "exec").skip(1);
    words.find(|w| !w.starts_with('-')).cloned()
}

/// The failure a failed command is: its words, exit and node as recorded.
pub fn command_failure(
    argv: &[String],
    exit: &Exit,
    node: Option<&str>,
    message: Option<&str>,
    source: Source,
) -> Failure {
    let command = shell_words(argv);
    let status = match (shell_code(exit), exit.timed_out) {
        (_, true) => "killed at its deadline".to_string(),
        (Some(code), false) => format!("exit status {code}"),
        (None, false) => "unknown exit status".to_string(),
    };
    Failure {
        message: message.map_or_else(|| format!("`{command}` failed ({status})"), str::to_string),
        exit_code: shell_code(exit),
        node: node.map(str::to_string).or_else(|| exec_node(argv)),
        command: Some(command),
        source,
    }
}

/// The evidence of one failed command: how it ended, as recorded, and what
/// its stderr tail says in the words of the tool that wrote it.
pub fn command_evidence(
    argv: &[String],
    exit: &Exit,
    stderr_tail: &str,
    source: &Source,
    stderr_name: &str,
) -> Vec<Evidence> {
    let command = shell_words(argv);
    let mut evidence = Vec::new();
    if exit.timed_out {
        // loadmaster's own deadline ended it: a kill, but not a mystery one.
        evidence.push(Evidence::new(
            source.clone(),
            Fact::Signature {
                id: "timeout-kill",
                subject: Some(format!("loadmaster's deadline for `{command}`")),
            },
        ));
    } else if let Some(code) = shell_code(exit) {
        evidence.push(Evidence::new(
            source.clone(),
            Fact::exit(code, Some(command)),
        ));
    }
    evidence.extend(stderr_evidence(stderr_tail, stderr_name));
    evidence
}

/// What a command's stderr says: every fact a log scan finds except exit
/// statuses and the failure, which the recorded exit already states.
fn stderr_evidence(stderr_tail: &str, name: &str) -> Vec<Evidence> {
    if stderr_tail.trim().is_empty() {
        return Vec::new();
    }
    log::scan(stderr_tail, name)
        .evidence
        .into_iter()
        .filter(|e| !matches!(e.fact, Fact::Exit { .. }))
        .collect()
}

/// An archive that could not be read, as the archive reader's typed error
/// says (a digest that does not match, a cut or invalid tar stream): the
/// input's fault. `None` for a read error, which is the disk's or the
/// pipe's, not the archive's. `said` is loadmaster's message about it
/// (naming the archive), shown as the excerpt.
pub fn archive_evidence(error: &ArchiveError, said: &str, source: &Source) -> Option<Evidence> {
    let id = match error {
        ArchiveError::DigestMismatch { .. } | ArchiveError::DiffIdMismatch { .. } => {
            "digest-mismatch"
        }
        ArchiveError::Read { .. } => return None,
        _ => "corrupt-archive",
    };
    Some(Evidence::new(source.clone(), Fact::Signature { id, subject: None }).with_excerpt(said))
}

/// A node's failure (its command, its state after) as evidence.
pub fn node_failure_evidence(
    node: &str,
    facts: &NodeFailure,
    source: &Source,
    stderr_name: &str,
) -> Vec<Evidence> {
    let mut evidence = Vec::new();
    if let Some(FailedCommand {
        argv,
        exit,
        stderr_tail,
    }) = &facts.command
    {
        evidence.extend(command_evidence(
            argv,
            exit,
            stderr_tail,
            source,
            stderr_name,
        ));
    }
    if let Some(state) = &facts.node_state {
        evidence.push(Evidence::new(
            source.clone(),
            Fact::NodeState {
                node: node.to_string(),
                state: state.clone(),
            },
        ));
    }
    evidence
}

/// The case a recorded run makes: its first failed step (or, in a run cut
/// short, its last failed command) with the typed facts of every failed
/// command and node up to it. What the run did after that step failed
/// (gathering logs) is not evidence of the failure.
pub fn case(record: &RunRecord) -> Case {
    let mut case = Case {
        inputs: vec![format!(
            "the journal of `{}` run {} ({} events)",
            record.command,
            record.id,
            record.events.len()
        )],
        ..Case::default()
    };
    let failed_step = record.events.iter().find_map(|e| match &e.body {
        EventBody::StepEnd {
            result: Outcome::Failed,
            ..
        } => e.step.clone(),
        _ => None,
    });
    let mut failure: Option<(Option<String>, Failure)> = None;
    for (index, event) in record.events.iter().enumerate() {
        let source = Source::Journal {
            run: record.id.clone(),
            event: index + 1,
        };
        let stderr_name = format!("the stderr tail in event {} of the journal", index + 1);
        let step = event.step.as_deref();
        let moment = |what: String| Moment {
            line: None,
            time: Some(event.time.to_string()),
            event: what,
        };
        match &event.body {
            EventBody::RunStart { engine, .. } => case.engine = *engine,
            EventBody::StepStart => {
                if let Some(phase) = step.and_then(phase_of_step)
                    && !case.phases_seen.contains(&phase)
                {
                    case.phases_seen.push(phase);
                }
            }
            EventBody::Command {
                argv,
                exit,
                stderr_tail,
                ..
            } if !exit.success() => {
                case.evidence.extend(command_evidence(
                    argv,
                    exit,
                    stderr_tail,
                    &source,
                    &stderr_name,
                ));
                let failed = command_failure(argv, exit, None, None, source);
                case.timeline.push(moment(format!(
                    "{} ({})",
                    failed.message,
                    step.unwrap_or("run")
                )));
                failure = Some((event.step.clone(), failed));
            }
            EventBody::Delivery {
                node,
                failure: Some(facts),
                error,
                ..
            } => {
                case.evidence
                    .extend(node_failure_evidence(node, facts, &source, &stderr_name));
                let first_line = error.as_deref().and_then(|e| e.lines().next());
                if let Some(command) = &facts.command {
                    let failed = command_failure(
                        &command.argv,
                        &command.exit,
                        Some(node),
                        first_line,
                        source,
                    );
                    case.timeline
                        .push(moment(format!("node {node}: {}", failed.message)));
                    failure = Some((event.step.clone(), failed));
                }
            }
            EventBody::StepEnd {
                result: Outcome::Failed,
                error,
            } if event.step == failed_step => {
                let error = error.as_deref().unwrap_or("failed");
                case.timeline.push(moment(format!(
                    "step {} failed: {error}",
                    step.unwrap_or("?")
                )));
                case.phase = step.and_then(phase_of_step);
                case.failure = Some(match failure.take() {
                    // The step's own failed command: its message is the step's.
                    Some((command_step, mut failed)) if command_step == event.step => {
                        failed.message = error.to_string();
                        failed
                    }
                    // Failed without a command of its own: loadmaster's
                    // error is the failure, taken as it is (not scanned).
                    _ => Failure {
                        command: None,
                        exit_code: None,
                        message: error.to_string(),
                        source,
                        node: None,
                    },
                });
                return case;
            }
            _ => {}
        }
    }
    // Cut short before any step failed: the last failed command, if any.
    if let Some((step, failed)) = failure {
        case.phase = step.as_deref().and_then(phase_of_step);
        case.failure = Some(failed);
    }
    case
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::NodeState;
    use crate::journal::{Event, SCHEMA_VERSION, Timestamp};
    use crate::triage::{Class, diagnose};

    fn event(step: Option<&str>, body: EventBody) -> Event {
        Event {
            v: SCHEMA_VERSION,
            time: Timestamp::from_millis(1_796_205_600_000),
            step: step.map(str::to_string),
            body,
        }
    }

    fn record(events: Vec<Event>) -> RunRecord {
        RunRecord {
            id: "20261202T100000.000Z-abcdef".into(),
            dir: "/nonexistent".into(),
            command: "load".into(),
            plan: None,
            cluster: Some("e2e".into()),
            schema_version: Some(SCHEMA_VERSION),
            started: None,
            ended: None,
            last_seen: None,
            status: crate::journal::RunStatus::Failed,
            steps: Vec::new(),
            cancelled: Vec::new(),
            critical_path_ms: None,
            damage: Vec::new(),
            missing: Vec::new(),
            events,
            samples: Vec::new(),
        }
    }

    fn argv(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_string).collect()
    }

    fn delivery(node: &str, failure: NodeFailure) -> EventBody {
        EventBody::Delivery {
            image: "app:1".into(),
            node: node.into(),
            path: "save".into(),
            result: "failed".into(),
            bytes_sent: 0,
            blobs_sent: 0,
            blobs_skipped: 0,
            duration_ms: 10,
            error: Some("`podman exec …` failed (exit status 137)".into()),
            pushed: None,
            digest: None,
            failure: Some(Box::new(failure)),
        }
    }

    #[test]
    fn a_failed_node_import_is_read_from_its_facts() {
        let step = Some("load/app:1");
        let failure = NodeFailure {
            command: Some(FailedCommand {
                argv: argv("podman exec -i e2e-worker ctr -n k8s.io images import -"),
                exit: Exit {
                    code: Some(137),
                    signal: None,
                    timed_out: false,
                },
                stderr_tail: "ctr: failed to send write: transport is closing: unavailable\n"
                    .into(),
            }),
            node_state: Some(NodeState::Stopped {
                status: "exited".into(),
                exit_code: 137,
                oom_killed: false,
            }),
        };
        let run = record(vec![
            event(step, EventBody::StepStart),
            event(step, delivery("e2e-worker", failure)),
            event(
                step,
                EventBody::StepEnd {
                    result: Outcome::Failed,
                    error: Some("loading app:1 into node e2e-worker failed".into()),
                },
            ),
        ]);
        let case = case(&run);
        let failed = case.failure.as_ref().unwrap();
        assert_eq!(failed.node.as_deref(), Some("e2e-worker"));
        assert_eq!(failed.exit_code, Some(137));
        assert_eq!(failed.message, "loading app:1 into node e2e-worker failed");
        assert_eq!(case.phase, Some(Phase::ImageLoad));
        assert!(matches!(failed.source, Source::Journal { event: 2, .. }));
        let d = diagnose(&case);
        let root = d.root_cause.unwrap();
        // Killed, its node exited 137; no OOM on record: suspected only.
        assert_eq!(root.class, Class::KilledUnknown, "{}", root.statement);
        assert!(
            d.evidence
                .iter()
                .any(|e| matches!(&e.fact, Fact::NodeState { node, .. } if node == "e2e-worker"))
        );
        // The stderr's own words are read for what ctr said.
        assert!(
            d.evidence.iter().any(
                |e| matches!(&e.fact, Fact::Signature { id, .. } if *id == "transport-closing")
            )
        );
    }

    #[test]
    fn a_misleading_line_in_stderr_is_not_taken_for_the_failure() {
        // The command exited 1 on node n1; its stderr quotes another
        // failure in loadmaster's own wording, with another node and 137.
        let stderr =
            "Error: `podman exec -i other-node ctr images import -` failed (exit status 137)\n";
        let step = Some("build/app:1");
        let run = record(vec![
            event(step, EventBody::StepStart),
            event(
                step,
                EventBody::Command {
                    argv: argv("podman exec n1 sh -c exit-1"),
                    exit: Exit {
                        code: Some(1),
                        signal: None,
                        timed_out: false,
                    },
                    stderr_tail: stderr.into(),
                    duration_ms: 5,
                },
            ),
            event(
                step,
                EventBody::StepEnd {
                    result: Outcome::Failed,
                    error: Some("`podman exec n1 sh -c exit-1` failed (exit status 1)".into()),
                },
            ),
        ]);
        let case = case(&run);
        let failed = case.failure.as_ref().unwrap();
        assert_eq!(failed.exit_code, Some(1));
        assert_eq!(failed.node.as_deref(), Some("n1"));
        assert_eq!(
            failed.command.as_deref(),
            Some("podman exec n1 sh -c exit-1")
        );
        assert_eq!(case.phase, Some(Phase::Build));
        // No exit 137 was read out of the stderr: the only exit is the
        // recorded one, and nothing says SIGKILL.
        let exits: Vec<i32> = case
            .evidence
            .iter()
            .filter_map(|e| match e.fact {
                Fact::Exit { code, .. } => Some(code),
                _ => None,
            })
            .collect();
        assert_eq!(exits, [1]);
        let root = diagnose(&case).root_cause.unwrap();
        assert_ne!(root.class, Class::KilledUnknown, "{}", root.statement);
        // Read as a log, the same text would have been a kill of other-node.
        let as_log = crate::triage::log::scan(stderr, "stderr");
        assert_eq!(as_log.failure.as_ref().and_then(|f| f.exit_code), Some(137));
    }

    #[test]
    fn what_ran_after_the_failed_step_is_not_its_evidence() {
        let failed_kubectl = |step: &str| {
            event(
                Some(step),
                EventBody::Command {
                    argv: argv("kubectl get events -A"),
                    exit: Exit {
                        code: Some(1),
                        signal: None,
                        timed_out: false,
                    },
                    stderr_tail: "The connection to the server 127.0.0.1:6443 was refused\n".into(),
                    duration_ms: 5,
                },
            )
        };
        let run = record(vec![
            event(Some("deploy/db"), EventBody::StepStart),
            event(
                Some("deploy/db"),
                EventBody::StepEnd {
                    result: Outcome::Failed,
                    error: Some("a plain error of loadmaster's".into()),
                },
            ),
            failed_kubectl("deploy/db"),
        ]);
        let case = case(&run);
        assert!(case.evidence.is_empty(), "{:?}", case.evidence);
        let failed = case.failure.unwrap();
        assert_eq!(failed.message, "a plain error of loadmaster's");
        assert_eq!(failed.command, None);
        assert_eq!(case.phase, Some(Phase::Deploy));
    }

    #[test]
    fn a_timed_out_command_is_not_a_mystery_kill() {
        let exit = Exit {
            code: None,
            signal: Some(9),
            timed_out: true,
        };
        let evidence = command_evidence(
            &argv("kubectl rollout status deploy/db"),
            &exit,
            "",
            &Source::Command {
                command: "x".into(),
            },
            "stderr",
        );
        assert!(
            matches!(&evidence[..], [e] if matches!(e.fact, Fact::Signature { id: "timeout-kill", .. }))
        );
    }

    #[test]
    fn steps_have_phases() {
        assert_eq!(phase_of_step("load/app:1"), Some(Phase::ImageLoad));
        assert_eq!(
            phase_of_step("deliver/localhost/app:1"),
            Some(Phase::ImageLoad)
        );
        assert_eq!(phase_of_step("build/app:1"), Some(Phase::Build));
        assert_eq!(phase_of_step("test"), Some(Phase::Test));
        assert_eq!(phase_of_step("preflight"), None);
    }
}
