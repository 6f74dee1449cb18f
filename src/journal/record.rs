//! Reading a run back: events and samples, the steps they describe, each
//! step's resource peaks, and what a crash left missing.
//!
//! A run killed mid-way is the case that matters most for triage, so
//! nothing here gives up on a damaged journal: a cut last line is set aside
//! and marked, an unreadable line elsewhere too, a missing `run-end` makes
//! the run "interrupted", and a step without its end is "interrupted" at
//! the last instant the journal knows of.

use super::event::{Event, EventBody, Outcome, Sample, WaitSpan};
use super::{EVENTS_FILE, JournalError, SAMPLES_FILE};
use crate::time::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How a run ended, as far as the journal tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    Succeeded,
    Failed,
    /// Recorded as skipped (nothing to do).
    Skipped,
    /// Stopped by a signal (`run-end` interrupted), or no `run-end`:
    /// killed, crashed, or still running.
    Interrupted,
}

/// How a step ended, as far as the journal tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    Succeeded,
    Failed,
    Skipped,
    /// Started, never ended.
    Interrupted,
}

impl StepStatus {
    /// The status in one word, as reports and progress lines show it.
    pub fn word(self) -> &'static str {
        match self {
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Interrupted => "interrupted",
        }
    }
}

impl From<Outcome> for StepStatus {
    fn from(outcome: Outcome) -> StepStatus {
        match outcome {
            Outcome::Succeeded => StepStatus::Succeeded,
            Outcome::Failed => StepStatus::Failed,
            Outcome::Skipped => StepStatus::Skipped,
            Outcome::Interrupted => StepStatus::Interrupted,
        }
    }
}

/// A line of a journal file that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Damage {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// True for the file's last line without its newline: cut off when
    /// the run was killed while writing it.
    pub truncated: bool,
    pub error: String,
}

/// One step as the events tell it, with the resources used while it ran.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    pub id: String,
    pub started: Timestamp,
    /// `None` when the step never ended.
    pub ended: Option<Timestamp>,
    pub status: StepStatus,
    pub error: Option<String>,
    /// Commands the step ran.
    pub commands: usize,
    /// The steps it needed, when it ran as part of a graph.
    pub needs: Vec<String>,
    /// Why it did not start sooner.
    pub waits: Vec<WaitSpan>,
    /// On the critical path: the chain of needs whose durations add up to
    /// the most, which no scheduling can beat.
    pub critical: bool,
    /// From the samples taken between start and end (for an interrupted
    /// step: up to the last thing the journal recorded).
    pub peaks: Peaks,
}

/// The highest use of each resource among a set of samples.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Peaks {
    /// How many samples the figures come from; 0 means nothing was measured.
    pub samples: usize,
    /// The most memory in use on the engine's host or VM (total − available).
    pub memory_used_bytes: Option<u64>,
    /// The least memory available there.
    pub memory_available_min_bytes: Option<u64>,
    /// Per node container.
    pub nodes: BTreeMap<String, NodePeak>,
    /// The least free space, per disk path.
    pub disk_available_min_bytes: BTreeMap<String, u64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePeak {
    /// The highest sampled usage.
    pub usage_bytes: u64,
    /// The highest kernel high-water mark seen, which also catches spikes
    /// between samples (it counts from the container's start, so it can
    /// predate the step).
    pub kernel_peak_bytes: Option<u64>,
    pub limit_bytes: Option<u64>,
}

impl Peaks {
    /// The peaks of the samples taken from `from` to `to`, both included.
    pub fn between(samples: &[Sample], from: Timestamp, to: Timestamp) -> Peaks {
        let mut peaks = Peaks::default();
        for sample in samples.iter().filter(|s| s.time >= from && s.time <= to) {
            peaks.samples += 1;
            if let Some(memory) = sample.memory {
                let used = memory.used_bytes();
                peaks.memory_used_bytes =
                    Some(peaks.memory_used_bytes.map_or(used, |p| p.max(used)));
                let available = memory.available_bytes;
                peaks.memory_available_min_bytes = Some(
                    peaks
                        .memory_available_min_bytes
                        .map_or(available, |p| p.min(available)),
                );
            }
            for node in &sample.nodes {
                let peak = peaks.nodes.entry(node.node.clone()).or_default();
                peak.usage_bytes = peak.usage_bytes.max(node.usage_bytes);
                peak.kernel_peak_bytes = peak.kernel_peak_bytes.max(node.peak_bytes);
                peak.limit_bytes = node.limit_bytes.or(peak.limit_bytes);
            }
            for disk in &sample.disks {
                let least = peaks
                    .disk_available_min_bytes
                    .entry(disk.path.clone())
                    .or_insert(disk.available_bytes);
                *least = (*least).min(disk.available_bytes);
            }
        }
        peaks
    }
}

/// A step of the graph that never ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cancelled {
    pub step: String,
    pub because: String,
    pub time: Timestamp,
}

/// A run read back from its directory.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    pub id: String,
    pub dir: PathBuf,
    /// The loadmaster command recorded (`up`, `load`, `push`, `doctor`).
    pub command: String,
    pub plan: Option<PathBuf>,
    pub cluster: Option<String>,
    /// The journal format version of the run-start event.
    pub schema_version: Option<u32>,
    pub started: Option<Timestamp>,
    /// The `run-end` event's time; `None` when interrupted.
    pub ended: Option<Timestamp>,
    /// The last instant anything was recorded.
    pub last_seen: Option<Timestamp>,
    pub status: RunStatus,
    pub steps: Vec<StepRecord>,
    /// Steps of the graph that never ran, and why.
    pub cancelled: Vec<Cancelled>,
    /// The critical path's length: the durations of its steps added up
    /// (the least time the steps could take with unbounded resources).
    pub critical_path_ms: Option<u64>,
    /// Lines that could not be read; empty for an intact journal.
    pub damage: Vec<Damage>,
    /// What the record lacks, in words, for reports ("no run-end event: …").
    pub missing: Vec<String>,
    #[serde(skip)]
    pub events: Vec<Event>,
    #[serde(skip)]
    pub samples: Vec<Sample>,
}

impl RunRecord {
    /// Milliseconds from start to end, or to the last record of an
    /// interrupted run (then a lower bound).
    pub fn duration_ms(&self) -> Option<u64> {
        Some(self.ended.or(self.last_seen)?.since(self.started?))
    }

    pub fn summary(&self) -> RunSummary {
        RunSummary {
            id: self.id.clone(),
            command: self.command.clone(),
            plan: self.plan.clone(),
            cluster: self.cluster.clone(),
            started: self.started,
            duration_ms: self.duration_ms(),
            result: self.status,
            damaged: !self.damage.is_empty(),
        }
    }
}

/// One line of `loadmaster runs`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub id: String,
    /// The loadmaster command recorded (`up`, `load`, `push`, `doctor`).
    pub command: String,
    pub plan: Option<PathBuf>,
    pub cluster: Option<String>,
    pub started: Option<Timestamp>,
    pub duration_ms: Option<u64>,
    pub result: RunStatus,
    pub damaged: bool,
}

pub(super) fn open(dir: &Path) -> Result<RunRecord, JournalError> {
    let mut damage = Vec::new();
    let mut missing = Vec::new();
    let events: Vec<Event> = read_lines(&dir.join(EVENTS_FILE), EVENTS_FILE, &mut damage)?
        .ok_or_else(|| JournalError::Read {
            path: dir.join(EVENTS_FILE),
            source: std::io::ErrorKind::NotFound.into(),
        })?;
    let samples: Vec<Sample> = read_lines(&dir.join(SAMPLES_FILE), SAMPLES_FILE, &mut damage)?
        .unwrap_or_else(|| {
            missing.push(format!("no {SAMPLES_FILE}: no resource samples"));
            Vec::new()
        });

    let mut record = RunRecord {
        id: dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        dir: dir.to_path_buf(),
        command: "up".to_string(),
        plan: None,
        cluster: None,
        schema_version: None,
        started: None,
        ended: None,
        last_seen: events
            .iter()
            .map(|e| e.time)
            .chain(samples.iter().map(|s| s.time))
            .max(),
        status: RunStatus::Interrupted,
        steps: Vec::new(),
        cancelled: Vec::new(),
        critical_path_ms: None,
        damage,
        missing,
        events: Vec::new(),
        samples: Vec::new(),
    };
    let mut open_steps: BTreeMap<String, usize> = BTreeMap::new();
    let mut needs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut waited: BTreeMap<String, Vec<WaitSpan>> = BTreeMap::new();
    for event in &events {
        match &event.body {
            EventBody::RunStart {
                command,
                plan,
                cluster,
                ..
            } => {
                record.command.clone_from(command);
                record.plan.clone_from(plan);
                record.cluster.clone_from(cluster);
                record.schema_version = Some(event.v);
                record.started = Some(event.time);
            }
            EventBody::RunEnd { result } => {
                record.ended = Some(event.time);
                record.status = match result {
                    Outcome::Succeeded => RunStatus::Succeeded,
                    Outcome::Failed => RunStatus::Failed,
                    Outcome::Skipped => RunStatus::Skipped,
                    Outcome::Interrupted => RunStatus::Interrupted,
                };
            }
            EventBody::StepStart => {
                let id = event.step.clone().unwrap_or_default();
                open_steps.insert(id.clone(), record.steps.len());
                record.steps.push(StepRecord {
                    needs: needs.get(&id).cloned().unwrap_or_default(),
                    waits: waited.remove(&id).unwrap_or_default(),
                    id,
                    started: event.time,
                    ended: None,
                    status: StepStatus::Interrupted,
                    error: None,
                    commands: 0,
                    critical: false,
                    peaks: Peaks::default(),
                });
            }
            EventBody::Graph { steps } => {
                for step in steps {
                    needs.insert(step.id.clone(), step.needs.clone());
                }
            }
            EventBody::StepWaited { waits } => {
                waited.insert(event.step.clone().unwrap_or_default(), waits.clone());
            }
            EventBody::StepCancelled { because } => record.cancelled.push(Cancelled {
                step: event.step.clone().unwrap_or_default(),
                because: because.clone(),
                time: event.time,
            }),
            EventBody::StepEnd { result, error } => {
                if let Some(&n) = event.step.as_ref().and_then(|id| open_steps.get(id)) {
                    let step = &mut record.steps[n];
                    step.ended = Some(event.time);
                    step.status = (*result).into();
                    step.error = error.clone();
                }
            }
            EventBody::Command { .. } => {
                if let Some(&n) = event.step.as_ref().and_then(|id| open_steps.get(id)) {
                    record.steps[n].commands += 1;
                }
            }
            EventBody::SampleNote { .. }
            | EventBody::Schedule { .. }
            | EventBody::Note { .. }
            | EventBody::LogFile { .. }
            | EventBody::Preflight { .. }
            | EventBody::PreflightSkipped { .. }
            | EventBody::Delivery { .. }
            | EventBody::Connection { .. } => {}
        }
    }
    if record.started.is_none() {
        record
            .missing
            .push("no run-start event: the plan and start time are unknown".to_string());
    }
    if record.ended.is_none() {
        record.missing.push(format!(
            "no run-end event: the run was interrupted (killed, crashed, or still running); last record at {}",
            record
                .last_seen
                .map_or_else(|| "no time".to_string(), |t| t.to_string())
        ));
    }
    let last = record.last_seen.unwrap_or(Timestamp::from_millis(0));
    for step in &mut record.steps {
        if step.ended.is_none() {
            record
                .missing
                .push(format!("step {} has no end: interrupted", step.id));
        }
        step.peaks = Peaks::between(&samples, step.started, step.ended.unwrap_or(last));
    }
    if !needs.is_empty() {
        record.critical_path_ms = Some(mark_critical_path(&mut record.steps, last));
    }
    record.events = events;
    record.samples = samples;
    Ok(record)
}

/// Marks the chain of needs whose steps' durations add up to the most
/// (a step that never ended counts up to `last`), and returns its length.
/// Ties go to the step recorded first, so that the mark is reproducible.
fn mark_critical_path(steps: &mut [StepRecord], last: Timestamp) -> u64 {
    let index: BTreeMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(n, step)| (step.id.as_str(), n))
        .collect();
    let took: Vec<u64> = steps
        .iter()
        .map(|s| s.ended.unwrap_or(last).since(s.started))
        .collect();
    // Longest chain ending at each step, and the need it came through.
    // Needs started earlier, so start order is an order of the graph.
    let mut order: Vec<usize> = (0..steps.len()).collect();
    order.sort_by_key(|&n| steps[n].started);
    let mut length = vec![0u64; steps.len()];
    let mut through: Vec<Option<usize>> = vec![None; steps.len()];
    for &n in &order {
        let mut best: Option<usize> = None;
        for need in &steps[n].needs {
            if let Some(&m) = index.get(need.as_str())
                && best.is_none_or(|b| length[m] > length[b])
            {
                best = Some(m);
            }
        }
        through[n] = best;
        length[n] = took[n] + best.map_or(0, |m| length[m]);
    }
    let Some(end) = (0..steps.len()).reduce(|a, b| if length[b] > length[a] { b } else { a })
    else {
        return 0;
    };
    let total = length[end];
    let mut at = Some(end);
    while let Some(n) = at {
        steps[n].critical = true;
        at = through[n];
    }
    total
}

/// Reads a JSON-lines file; `None` when it does not exist. Lines that do
/// not parse are left out and recorded in `damage`.
fn read_lines<T: DeserializeOwned>(
    path: &Path,
    name: &str,
    damage: &mut Vec<Damage>,
) -> Result<Option<Vec<T>>, JournalError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(JournalError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let ends_whole = bytes.last().is_none_or(|&b| b == b'\n');
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let count = lines.len();
    let mut values = Vec::new();
    for (n, line) in lines.into_iter().enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice(line) {
            Ok(value) => values.push(value),
            Err(error) => damage.push(Damage {
                file: name.to_string(),
                line: n + 1,
                truncated: !ends_whole && n + 1 == count,
                error: error.to_string(),
            }),
        }
    }
    Ok(Some(values))
}

/// Every run under `root`, oldest first (ids sort by start time). A missing
/// root is no runs; a directory without `events.jsonl` is not a run.
pub fn list(root: &Path) -> Result<Vec<RunSummary>, JournalError> {
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(JournalError::Read {
                path: root.to_path_buf(),
                source,
            });
        }
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.join(EVENTS_FILE).is_file())
        .collect();
    dirs.sort();
    dirs.iter()
        .map(|dir| open(dir).map(|record| record.summary()))
        .collect()
}
