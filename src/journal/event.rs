//! What a journal holds: events (one JSON object per line of
//! `events.jsonl`) and resource samples (one per line of `samples.jsonl`).
//!
//! Events are typed by `kind`; every line carries the format version `v`,
//! so that a reader can tell a line from a newer loadmaster from a broken one.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The journal format version this loadmaster writes.
pub const SCHEMA_VERSION: u32 = 1;

/// How much of a command's stderr an event keeps: errors come last.
pub const STDERR_TAIL: usize = 4096;

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
        /// The plan file, absolute.
        plan: PathBuf,
        cluster: String,
        loadmaster_version: String,
    },
    StepStart,
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
    /// The build schedule the runner chose: the memory budget, where it
    /// came from, each build's estimate and the batches run one after the
    /// other (the builds of a batch run together).
    #[serde(rename_all = "camelCase")]
    Schedule {
        budget_bytes: u64,
        budget_source: String,
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
    /// The last line of a run that was not interrupted.
    RunEnd {
        result: Outcome,
    },
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

/// One build in a [`EventBody::Schedule`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledBuild {
    pub image: String,
    pub estimate_bytes: u64,
    /// Where the estimate came from: the plan, an earlier run, the default.
    pub estimate_source: String,
}

/// How a command ended: an exit code, a signal, or killed at its timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Exit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub timed_out: bool,
}

impl Exit {
    pub fn from_status(status: std::process::ExitStatus, timed_out: bool) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        Exit {
            code: status.code(),
            signal: status.signal(),
            timed_out,
        }
    }

    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }
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
        batches: Vec<Vec<ScheduledBuild>>,
        warnings: Vec<String>,
    ) -> Event {
        Event::now(
            None,
            EventBody::Schedule {
                budget_bytes,
                budget_source,
                batches,
                warnings,
            },
        )
    }

    /// What a load did on one node, under the step that delivered it.
    pub fn delivery(step: &str, report: &crate::deliver::NodeReport) -> Event {
        Event::now(
            Some(step),
            EventBody::Delivery {
                image: report.image.clone(),
                node: report.node.clone(),
                path: report.path.to_string(),
                result: report.result.to_string(),
                bytes_sent: report.bytes_sent,
                blobs_sent: report.blobs_sent,
                blobs_skipped: report.blobs_skipped,
                duration_ms: report.duration_ms,
                error: report.error.clone(),
                pushed: None,
                digest: None,
            },
        )
    }

    /// What a push to the cluster's registry (`registry`, its `host[:port]`)
    /// did with one image: its report, or why it failed.
    pub fn pushed(
        step: &str,
        image: &str,
        registry: &str,
        outcome: Result<&crate::push::PushReport, String>,
        duration: std::time::Duration,
    ) -> Event {
        let (result, report, error) = match outcome {
            Ok(report) if report.bytes_uploaded > 0 => ("pushed", Some(report), None),
            Ok(report) => ("already present", Some(report), None),
            Err(error) => ("failed", None, Some(error)),
        };
        Event::now(
            Some(step),
            EventBody::Delivery {
                image: image.to_string(),
                node: registry.to_string(),
                path: "registry".to_string(),
                result: result.to_string(),
                bytes_sent: report.map_or(0, |r| r.bytes_uploaded),
                blobs_sent: report.map_or(0, |r| r.blobs_uploaded),
                // Mounted from another repository: there, so not sent.
                blobs_skipped: report.map_or(0, |r| r.blobs_skipped + r.blobs_mounted),
                duration_ms: duration.as_millis() as u64,
                error,
                pushed: report.map(|r| r.pushed.clone()),
                digest: report.map(|r| r.digest.to_string()),
            },
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

    pub fn run_end(result: Outcome) -> Event {
        Event::now(None, EventBody::RunEnd { result })
    }

    pub(super) fn run_start(plan: PathBuf, cluster: String) -> Event {
        Event::now(
            None,
            EventBody::RunStart {
                plan,
                cluster,
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
    fn a_push_is_a_registry_delivery_with_its_reference_and_digest() {
        let digest = crate::archive::Digest::of(b"manifest");
        let report = crate::push::PushReport {
            image: "app:1".to_string(),
            pushed: "127.0.0.1:5000/e2e/app:1".to_string(),
            digest,
            config: crate::archive::Digest::of(b"config"),
            blobs_uploaded: 0,
            blobs_skipped: 2,
            blobs_mounted: 1,
            bytes_uploaded: 0,
            read_source: false,
            retries: Vec::new(),
            duration_ms: 5,
        };
        let took = std::time::Duration::from_millis(7);
        let body = |event: Event| event.body;
        match body(Event::pushed(
            "deliver/app:1",
            "app:1",
            "127.0.0.1:5000",
            Ok(&report),
            took,
        )) {
            EventBody::Delivery {
                node,
                path,
                result,
                blobs_sent,
                blobs_skipped,
                pushed,
                digest: recorded,
                duration_ms,
                ..
            } => {
                assert_eq!(
                    (node.as_str(), path.as_str()),
                    ("127.0.0.1:5000", "registry")
                );
                // Nothing uploaded: the registry had it; a mount sends nothing.
                assert_eq!(result, "already present");
                assert_eq!((blobs_sent, blobs_skipped, duration_ms), (0, 3, 7));
                assert_eq!(pushed.as_deref(), Some("127.0.0.1:5000/e2e/app:1"));
                assert_eq!(recorded, Some(digest.to_string()));
            }
            other => panic!("{other:?}"),
        }
        let uploaded = crate::push::PushReport {
            blobs_uploaded: 1,
            bytes_uploaded: 10,
            ..report
        };
        assert!(matches!(
            body(Event::pushed("s", "app:1", "r", Ok(&uploaded), took)),
            EventBody::Delivery { result, bytes_sent: 10, .. } if result == "pushed"
        ));
        assert!(matches!(
            body(Event::pushed("s", "app:1", "r", Err("refused".to_string()), took)),
            EventBody::Delivery { result, error: Some(error), pushed: None, digest: None, .. }
                if result == "failed" && error == "refused"
        ));
    }

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
