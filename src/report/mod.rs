//! Reports of a recorded run, rendered from its journal alone: a
//! self-contained HTML page ([`html`]), a Markdown summary for CI job pages
//! ([`markdown`]) and JUnit XML with one test case per step ([`junit`]).
//!
//! This module reads the run (`Journal::open`, the `delivery` events, the
//! runner's `diagnosis.json`) and shapes it into a [`RunReport`] that the
//! three renderers share, so that they never disagree about a run. A run
//! cut short still renders: what the journal lacks is carried in
//! [`RunReport::missing`] and every renderer shows it.

pub mod html;
pub mod junit;
pub mod markdown;

use crate::finding::{Finding, Status};
use crate::journal::{self, EventBody, Journal, JournalError, RunRecord, StepStatus, Timestamp};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The file the runner writes the diagnosis of a failed run into.
pub const DIAGNOSIS_FILE: &str = "diagnosis.json";

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(
        "no runs recorded under {}: run `loadmaster run` first, or point at another journal with --root DIR",
        root.display()
    )]
    NoRuns { root: PathBuf },
    #[error(
        "no run {run} under {}: give a run id from `loadmaster runs`, or a run directory",
        root.display()
    )]
    UnknownRun { run: String, root: PathBuf },
    #[error("cannot write the report to {}: {source} (give a writable path)", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A run as the reports show it.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub run: RunRecord,
    /// What each node was sent, in the order it was recorded.
    pub deliveries: Vec<Delivery>,
    /// Per image loaded into nodes: what crossed the connection to the engine.
    pub connections: Vec<Connection>,
    /// The pre-flight `up` and `run` started with, when the run had one.
    pub preflight: Option<Preflight>,
    /// The diagnosis of a failed run, when the runner wrote one.
    pub diagnosis: Option<Triage>,
    /// What the journal lacks, in words (a cut line, no `run-end`, a step
    /// without its end, an unreadable diagnosis): shown by every format.
    pub missing: Vec<String>,
}

/// The pre-flight of a run: its findings, or who skipped it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Preflight {
    Checked {
        findings: Vec<Finding>,
        duration_ms: u64,
    },
    Skipped {
        by: String,
    },
}

impl Preflight {
    /// The findings worth a line (warnings and failures, the worst first),
    /// and how many checks were fine.
    pub fn to_show(&self) -> (Vec<&Finding>, usize) {
        let Preflight::Checked { findings, .. } = self else {
            return (Vec::new(), 0);
        };
        let mut shown: Vec<&Finding> = findings.iter().filter(|f| f.status != Status::Ok).collect();
        shown.sort_by_key(|f| std::cmp::Reverse(f.status));
        let ok = findings.len() - shown.len();
        (shown, ok)
    }
}

/// A finding's status in one word.
pub fn finding_word(status: Status) -> &'static str {
    match status {
        Status::Ok => "ok",
        Status::Warn => "warning",
        Status::Fail => "failed",
    }
}

/// What crossed the connection between loadmaster and the engine for one
/// image's load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    pub image: String,
    pub path: String,
    pub from_engine: u64,
    pub to_nodes: u64,
}

/// One image delivered into one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub image: String,
    pub node: String,
    pub path: String,
    pub result: String,
    pub bytes_sent: u64,
    pub blobs_sent: u64,
    pub blobs_skipped: u64,
    pub duration_ms: u64,
    pub error: Option<String>,
    /// A push to a registry: `host/repository:tag`, and the manifest digest.
    pub pushed: Option<String>,
    pub digest: Option<String>,
}

impl Delivery {
    /// What happened, in a few words: the result, and for a push where the
    /// image went, pinned by digest (what deployed manifests name).
    pub fn outcome(&self) -> String {
        let mut text = self.result.clone();
        if let (Some(pushed), Some(digest)) = (&self.pushed, &self.digest) {
            let repository = crate::archive::normalize_reference(pushed)
                .map_or_else(|_| pushed.clone(), |reference| reference.name());
            text.push_str(&format!(" as {pushed} ({repository}@{digest})"));
        }
        text
    }
}

/// The parts of `diagnosis.json` (schema `loadmaster.triage/v1`) a report
/// shows; the full diagnosis stays in the run directory.
#[derive(Clone, Debug, Deserialize)]
pub struct Triage {
    pub summary: String,
    pub root_cause: Option<TriageCause>,
    #[serde(default)]
    pub fix: Vec<TriageFix>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct TriageCause {
    pub class: String,
    pub confidence: String,
    pub statement: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct TriageFix {
    pub what: String,
    #[serde(default)]
    pub commands: Vec<TriageCommand>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct TriageCommand {
    pub context: Option<String>,
    pub run: String,
}

/// The run directory a report is about: `run` as a directory, else as a run
/// id under `root`; without `run`, the latest run under `root`.
pub fn find_run(root: &Path, run: Option<&str>) -> Result<PathBuf, ReportError> {
    match run {
        Some(run) if Path::new(run).join(journal::EVENTS_FILE).is_file() => Ok(PathBuf::from(run)),
        Some(run) => {
            let dir = root.join(run);
            if dir.join(journal::EVENTS_FILE).is_file() {
                Ok(dir)
            } else {
                Err(ReportError::UnknownRun {
                    run: run.to_string(),
                    root: root.to_path_buf(),
                })
            }
        }
        // Run ids sort by start time, and `list` returns them oldest first.
        None => journal::list(root)?
            .last()
            .map(|latest| root.join(&latest.id))
            .ok_or_else(|| ReportError::NoRuns {
                root: root.to_path_buf(),
            }),
    }
}

impl RunReport {
    /// Reads a run directory.
    pub fn load(dir: &Path) -> Result<RunReport, ReportError> {
        let run = Journal::open(dir)?;
        let mut missing = run.missing.clone();
        for damage in &run.damage {
            missing.push(if damage.truncated {
                format!(
                    "{} line {} was cut off mid-line (the run was killed while writing it)",
                    damage.file, damage.line
                )
            } else {
                format!(
                    "{} line {} is unreadable: {}",
                    damage.file, damage.line, damage.error
                )
            });
        }
        let deliveries = run
            .events
            .iter()
            .filter_map(|event| match &event.body {
                EventBody::Delivery {
                    image,
                    node,
                    path,
                    result,
                    bytes_sent,
                    blobs_sent,
                    blobs_skipped,
                    duration_ms,
                    error,
                    pushed,
                    digest,
                    ..
                } => Some(Delivery {
                    image: image.clone(),
                    node: node.clone(),
                    path: path.clone(),
                    result: result.clone(),
                    bytes_sent: *bytes_sent,
                    blobs_sent: *blobs_sent,
                    blobs_skipped: *blobs_skipped,
                    duration_ms: *duration_ms,
                    error: error.clone(),
                    pushed: pushed.clone(),
                    digest: digest.clone(),
                }),
                _ => None,
            })
            .collect();
        let connections = run
            .events
            .iter()
            .filter_map(|event| match &event.body {
                EventBody::Connection {
                    image,
                    path,
                    from_engine,
                    to_nodes,
                } => Some(Connection {
                    image: image.clone(),
                    path: path.clone(),
                    from_engine: *from_engine,
                    to_nodes: *to_nodes,
                }),
                _ => None,
            })
            .collect();
        let preflight = run.events.iter().find_map(|event| match &event.body {
            EventBody::Preflight {
                findings,
                duration_ms,
            } => Some(Preflight::Checked {
                findings: findings.clone(),
                duration_ms: *duration_ms,
            }),
            EventBody::PreflightSkipped { by } => Some(Preflight::Skipped { by: by.clone() }),
            _ => None,
        });
        let diagnosis = match std::fs::read(dir.join(DIAGNOSIS_FILE)) {
            Ok(bytes) => match serde_json::from_slice::<Triage>(&bytes) {
                Ok(triage) => Some(triage),
                Err(error) => {
                    missing.push(format!("{DIAGNOSIS_FILE} is unreadable: {error}"));
                    None
                }
            },
            // A run that did not fail has none, and one killed before its
            // failure was diagnosed has none either.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => {
                missing.push(format!("{DIAGNOSIS_FILE} cannot be read: {error}"));
                None
            }
        };
        Ok(RunReport {
            run,
            deliveries,
            connections,
            preflight,
            diagnosis,
            missing,
        })
    }

    /// The run's result in one word.
    pub fn result(&self) -> &'static str {
        match self.run.status {
            journal::RunStatus::Succeeded => "succeeded",
            journal::RunStatus::Failed => "failed",
            journal::RunStatus::Skipped => "skipped",
            journal::RunStatus::Interrupted => "interrupted",
        }
    }

    /// The first step that failed or was interrupted.
    pub fn failing_step(&self) -> Option<&journal::StepRecord> {
        self.run
            .steps
            .iter()
            .find(|s| matches!(s.status, StepStatus::Failed | StepStatus::Interrupted))
    }

    /// Where a step's bar ends: its end, or for a step that never ended the
    /// last instant the journal knows of.
    pub fn step_end(&self, step: &journal::StepRecord) -> Timestamp {
        step.ended.or(self.run.last_seen).unwrap_or(step.started)
    }
}
