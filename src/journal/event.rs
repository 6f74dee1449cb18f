//! What a journal holds: events (one JSON object per line of
//! `events.jsonl`) and resource samples (one per line of `samples.jsonl`).
//!
//! Events are typed by `kind`; every line carries the format version `v`,
//! so that a reader can tell a line from a newer loadmaster from a broken one.

use crate::engine::{EngineKind, FailedCommand, NodeFailure};
use crate::finding::Finding;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The journal format version this loadmaster writes.
pub const SCHEMA_VERSION: u32 = 1;

/// How much of a command's stderr an event keeps: errors come last.
pub const STDERR_TAIL: usize = crate::process::OUTPUT_TAIL;

pub use crate::process::Exit;

/// One line of `events.jsonl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The format version ([`SCHEMA_VERSION`]).
    pub v: u32,
    pub time: Timestamp,
    /// The step the event belongs to (`build/hapi`, `deploy/postgres`); none
    /// for the run's own events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(flatten)]
    pub body: EventBody,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum EventBody {
    /// The first line of every run.
    #[serde(rename_all = "camelCase")]
    RunStart {
        /// The loadmaster command recorded: `up` (also for `run`, whose
        /// journal is `up`'s), `load`, `push` or `doctor`. Journals written
        /// before other commands had one are `up`'s.
        #[serde(default = "up_command")]
        command: String,
        /// The plan file, absolute; none for a command without a plan.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plan: Option<PathBuf>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cluster: Option<String>,
        /// The engine the command used, when it knew it at the start.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        engine: Option<EngineKind>,
        loadmaster_version: String,
    },
    /// The steps of `up` as a graph, recorded before the first starts:
    /// each with the steps it needs.
    Graph {
        steps: Vec<GraphStep>,
    },
    /// Why a step did not start as soon as the graph began (recorded just
    /// before its `step-start`): each reason with when it held.
    StepWaited {
        waits: Vec<WaitSpan>,
    },
    StepStart,
    /// A step of the graph that will not run, and why.
    StepCancelled {
        /// `build/api failed and it needs it`, `fail fast after build/api
        /// failed`, `interrupted`.
        because: String,
    },
    StepEnd {
        result: Outcome,
        /// Why it failed, in one line.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A command the step ran, and how it ended.
    #[serde(rename_all = "camelCase")]
    Command {
        argv: Vec<String>,
        exit: Exit,
        /// The last [`STDERR_TAIL`] bytes of its stderr.
        stderr_tail: String,
        duration_ms: u64,
    },
    /// A resource source the monitor could not read, and why: recorded once
    /// per source, so that a gap in the samples is explained.
    SampleNote {
        source: String,
        note: String,
    },
    /// What the builds are scheduled by: the memory budget, where it came
    /// from, and each build's estimate, in plan order. (Journals from
    /// before the step graph list `batches` run one after the other
    /// instead.)
    #[serde(rename_all = "camelCase")]
    Schedule {
        budget_bytes: u64,
        budget_source: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        builds: Vec<ScheduledBuild>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        batches: Vec<Vec<ScheduledBuild>>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
    },
    /// Something the runner decided or could not do that the reader should
    /// know (a retry, a cluster reused, a kubeconfig not found).
    Note {
        message: String,
    },
    /// One image delivered into one node (a `deliver/<image>` step records
    /// one per node), or pushed to the cluster's registry (one per image),
    /// so that reports can show what each node or the registry was sent.
    #[serde(rename_all = "camelCase")]
    Delivery {
        image: String,
        /// The node; for `registry`, the registry's `host[:port]`.
        node: String,
        /// `save` or `push` (into nodes), or `registry`.
        path: String,
        /// `loaded`, `pushed`, `already present` or `failed`.
        result: String,
        bytes_sent: u64,
        blobs_sent: u64,
        blobs_skipped: u64,
        duration_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// `registry`: where the image went, `host/repository:tag`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pushed: Option<String>,
        /// `registry`: the pushed manifest's digest, which deployed
        /// manifests pin.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        digest: Option<String>,
        /// A failed node's failure as facts (the command, the node's
        /// state after it), which triage reads as they are.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<Box<NodeFailure>>,
    },
    /// What crossed the connection between loadmaster and the engine for
    /// one image's load into the nodes (a VM's or remote engine's link,
    /// each way): read from the engine, and sent to the nodes through the
    /// engine's execs.
    Connection {
        image: String,
        /// `save`, `push` or `cache`; `archive` when the image came from a file.
        path: String,
        from_engine: u64,
        to_nodes: u64,
    },
    /// A file of evidence gathered after a failure (a pod's log, its
    /// description, the cluster's events), so that readers find it
    /// without listing the run directory.
    LogFile {
        /// Relative to the run directory (`logs/pod-e2e-api-0-api.log`).
        path: PathBuf,
        /// What it holds.
        about: String,
    },
    /// The pre-flight `up` and `run` start with (step `preflight`): every
    /// finding of the checks `doctor -f` makes.
    #[serde(rename_all = "camelCase")]
    Preflight {
        findings: Vec<Finding>,
        duration_ms: u64,
    },
    /// The pre-flight was not run, and who said so (`--skip-preflight`,
    /// `LOADMASTER_SKIP_PREFLIGHT=1`).
    PreflightSkipped {
        by: String,
    },
    /// The last line of a run that was not interrupted.
    RunEnd {
        result: Outcome,
    },
}

fn up_command() -> String {
    "up".to_string()
}

/// How a step or a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Succeeded,
    Failed,
    Skipped,
    /// Stopped by SIGINT or SIGTERM; child processes were stopped first.
    Interrupted,
}

/// One step of a [`EventBody::Graph`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphStep {
    pub id: String,
    /// The steps that must succeed before it starts.
    pub needs: Vec<String>,
}

/// Why a step could not start.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "for", rename_all = "kebab-case")]
pub enum Wait {
    /// A step it needs had not succeeded yet.
    Step { step: String },
    /// Builds that ran took the memory it needs.
    MemoryBudget,
    /// `budget.parallelBuilds` builds ran.
    BuildSlot,
    /// The bound on deliveries at once was reached.
    DeliverySlot,
    /// Steps in flight took the disk it needs (`budget.disk`).
    DiskBudget,
}

impl std::fmt::Display for Wait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Wait::Step { step } => write!(f, "step {step}"),
            Wait::MemoryBudget => f.write_str("memory budget"),
            Wait::BuildSlot => f.write_str("build slot"),
            Wait::DeliverySlot => f.write_str("delivery slot"),
            Wait::DiskBudget => f.write_str("disk budget"),
        }
    }
}

/// One reason a step waited, from when to when it held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitSpan {
    #[serde(flatten)]
    pub wait: Wait,
    pub from: Timestamp,
    pub until: Timestamp,
}

/// One build in a [`EventBody::Schedule`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledBuild {
    pub image: String,
    pub estimate_bytes: u64,
    /// Where the estimate came from: the plan, an earlier run, the default.
    pub estimate_source: String,
}

impl Event {
    fn now(step: Option<&str>, body: EventBody) -> Event {
        Event {
            v: SCHEMA_VERSION,
            time: Timestamp::now(),
            step: step.map(str::to_string),
            body,
        }
    }

    pub fn step_start(step: &str) -> Event {
        Event::now(Some(step), EventBody::StepStart)
    }

    pub fn graph(steps: Vec<GraphStep>) -> Event {
        Event::now(None, EventBody::Graph { steps })
    }

    pub fn step_waited(step: &str, waits: Vec<WaitSpan>) -> Event {
        Event::now(Some(step), EventBody::StepWaited { waits })
    }

    pub fn step_cancelled(step: &str, because: impl Into<String>) -> Event {
        Event::now(
            Some(step),
            EventBody::StepCancelled {
                because: because.into(),
            },
        )
    }

    pub fn step_end(step: &str, result: Outcome, error: Option<String>) -> Event {
        Event::now(Some(step), EventBody::StepEnd { result, error })
    }

    /// A finished command; `stderr` is cut to its last [`STDERR_TAIL`] bytes.
    pub fn command(
        step: &str,
        argv: Vec<String>,
        exit: Exit,
        stderr: &[u8],
        duration: std::time::Duration,
    ) -> Event {
        let tail = &stderr[stderr.len().saturating_sub(STDERR_TAIL)..];
        Event::now(
            Some(step),
            EventBody::Command {
                argv,
                exit,
                stderr_tail: String::from_utf8_lossy(tail).into_owned(),
                duration_ms: duration.as_millis() as u64,
            },
        )
    }

    pub fn sample_note(source: &str, note: &str) -> Event {
        Event::now(
            None,
            EventBody::SampleNote {
                source: source.to_string(),
                note: note.to_string(),
            },
        )
    }

    pub fn note(step: Option<&str>, message: impl Into<String>) -> Event {
        Event::now(
            step,
            EventBody::Note {
                message: message.into(),
            },
        )
    }

    pub fn schedule(
        budget_bytes: u64,
        budget_source: String,
        builds: Vec<ScheduledBuild>,
        warnings: Vec<String>,
    ) -> Event {
        Event::now(
            None,
            EventBody::Schedule {
                budget_bytes,
                budget_source,
                builds,
                batches: Vec::new(),
                warnings,
            },
        )
    }

    /// An event of `step`: for bodies that the modules doing the work
    /// fill from their own reports (a delivery), so that the journal
    /// knows none of them.
    pub fn in_step(step: &str, body: EventBody) -> Event {
        Event::now(Some(step), body)
    }

    /// A failed command known as facts (an engine's `save`, a node's import).
    pub fn failed_command(
        step: &str,
        command: &FailedCommand,
        duration: std::time::Duration,
    ) -> Event {
        Event::command(
            step,
            command.argv.clone(),
            command.exit,
            command.stderr_tail.as_bytes(),
            duration,
        )
    }

    pub fn log_file(step: &str, path: PathBuf, about: impl Into<String>) -> Event {
        Event::now(
            Some(step),
            EventBody::LogFile {
                path,
                about: about.into(),
            },
        )
    }

    pub fn preflight(findings: Vec<Finding>, duration: std::time::Duration) -> Event {
        Event::now(
            Some("preflight"),
            EventBody::Preflight {
                findings,
                duration_ms: duration.as_millis() as u64,
            },
        )
    }

    pub fn preflight_skipped(by: impl Into<String>) -> Event {
        Event::now(
            Some("preflight"),
            EventBody::PreflightSkipped { by: by.into() },
        )
    }

    pub fn run_end(result: Outcome) -> Event {
        Event::now(None, EventBody::RunEnd { result })
    }

    pub(super) fn run_start(
        command: &str,
        plan: Option<PathBuf>,
        cluster: Option<String>,
        engine: Option<EngineKind>,
    ) -> Event {
        Event::now(
            None,
            EventBody::RunStart {
                command: command.to_string(),
                plan,
                cluster,
                engine,
                loadmaster_version: env!("CARGO_PKG_VERSION").to_string(),
            },
        )
    }

    /// True for events after which the journal is synced to disk: a run
    /// killed later still has every step boundary before it.
    pub fn is_boundary(&self) -> bool {
        matches!(
            self.body,
            EventBody::RunStart { .. }
                | EventBody::StepStart
                | EventBody::StepCancelled { .. }
                | EventBody::StepEnd { .. }
                | EventBody::RunEnd { .. }
        )
    }
}

/// One line of `samples.jsonl`: what the monitor read at one instant. A
/// source that could not be read is absent (a `sample-note` event says why).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    pub time: Timestamp,
    /// Memory of the engine's host: this machine, or the engine's VM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<HostMemory>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeMemory>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<DiskSpace>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostMemory {
    pub total_bytes: u64,
    /// `MemAvailable`: what new work can get without swapping.
    pub available_bytes: u64,
}

impl HostMemory {
    pub fn used_bytes(&self) -> u64 {
        self.total_bytes.saturating_sub(self.available_bytes)
    }
}

/// A node container's cgroup memory counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeMemory {
    pub node: String,
    /// Usage now, page cache included (as the limit counts it).
    pub usage_bytes: u64,
    /// The kernel's high-water mark since the container started (v1
    /// `max_usage_in_bytes`, v2 `memory.peak`), when the kernel has one:
    /// it catches spikes between two samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_bytes: Option<u64>,
}

/// Free space of the filesystem under a path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiskSpace {
    /// What the path is: `engine storage` or `temp`.
    pub role: String,
    pub path: String,
    pub available_bytes: u64,
    pub total_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn exits_from_real_processes() {
        let status = |script: &str| Command::new("sh").args(["-c", script]).status().unwrap();
        let three = Exit::from_status(status("exit 3"), false);
        assert_eq!(
            (three.code, three.signal, three.success()),
            (Some(3), None, false)
        );
        let killed = Exit::from_status(status("kill -9 $$"), false);
        assert_eq!((killed.code, killed.signal), (None, Some(9)));
        assert!(Exit::from_status(status("true"), false).success());
        // A command killed at its timeout failed, whatever it exited with.
        assert!(!Exit::from_status(status("true"), true).success());
    }
}
