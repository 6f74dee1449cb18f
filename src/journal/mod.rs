//! The journal: the append-only record of one run, and the one source that
//! triage, reports and future estimates read.
//!
//! Every run gets `<root>/<id>/` (root: `.loadmaster/runs` by default):
//!
//! - `events.jsonl`: one JSON [`Event`] per line (run and step starts and
//!   ends, each command's argv, exit and stderr tail, monitor notes, what
//!   each node was sent, the files of evidence gathered after a failure),
//!   synced to disk at every step boundary;
//! - `samples.jsonl`: one [`Sample`] per line (engine/VM memory, node
//!   cgroup memory, disk), taken by the monitor every second or faster;
//! - `plan.json`: the resolved plan the run followed;
//! - `artifacts/`: what the test left.
//!
//! This module is plain data and its writer. Past the run's first line,
//! which [`Journal::create`] writes, the runner and the commands do not
//! call [`Journal::record`] themselves: they emit events on their stream,
//! and the events layer's `recording` sink writes what the journal keeps,
//! the monitor's samples included.
//!
//! Run ids are the UTC start time plus a short random part
//! (`20251215T230822.123Z-4f3a9c`), so that they sort by start time as
//! text. A run killed mid-way leaves a readable journal: [`Journal::open`]
//! accepts a cut last line and a missing end, and says what is missing.

mod event;
mod record;

pub use crate::time::Timestamp;
pub use event::{
    DiskSpace, Event, EventBody, Exit, GraphStep, HostMemory, NodeMemory, Outcome, SCHEMA_VERSION,
    STDERR_TAIL, Sample, ScheduledBuild, Wait, WaitSpan,
};
pub use record::{
    Cancelled, Damage, NodePeak, Peaks, RunRecord, RunStatus, RunSummary, StepRecord, StepStatus,
    list,
};

use crate::engine::EngineKind;
use crate::plan::Plan;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where runs are recorded unless told otherwise, relative to the current
/// directory.
pub const DEFAULT_ROOT: &str = ".loadmaster/runs";

pub const EVENTS_FILE: &str = "events.jsonl";
pub const SAMPLES_FILE: &str = "samples.jsonl";
pub const PLAN_FILE: &str = "plan.json";
pub const ARTIFACTS_DIR: &str = "artifacts";

/// Why the journal could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(
        "cannot write the run journal under {}: {source} (make the directory writable, or record elsewhere with --root DIR)",
        path.display()
    )]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read {}: {source} (is it a loadmaster run directory, <root>/<id>/?)", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A run being recorded. Shared by the threads whose events reach it (the
/// steps running side by side, the monitor's; `&Journal` is enough to
/// record), each line written whole.
pub struct Journal {
    id: String,
    dir: PathBuf,
    events: Mutex<File>,
    samples: Mutex<File>,
}

impl Journal {
    /// Starts the record of a new run of `plan` under `root`: the run's
    /// directory, `plan.json`, and the `run-start` event.
    pub fn create(root: &Path, plan: &Plan) -> Result<Journal, JournalError> {
        let (journal, dir) = Journal::open_new(root)?;
        let artifacts = dir.join(ARTIFACTS_DIR);
        std::fs::create_dir(&artifacts).map_err(write_error(&artifacts))?;
        let plan_path = dir.join(PLAN_FILE);
        let plan_json = serde_json::to_vec_pretty(plan).expect("a plan serializes");
        std::fs::write(&plan_path, plan_json).map_err(write_error(&plan_path))?;
        journal.record(&Event::run_start(
            "up",
            Some(plan.file.clone()),
            Some(plan.cluster.name.clone()),
            None,
        ))?;
        Ok(journal)
    }

    /// Starts the record of a command without a plan (`load`, `push`,
    /// `doctor`) under `root`, so that `runs`, `report` and `triage` read
    /// it as they read `up`'s.
    pub fn create_for_command(
        root: &Path,
        command: &str,
        cluster: Option<&str>,
        engine: Option<EngineKind>,
    ) -> Result<Journal, JournalError> {
        let (journal, _) = Journal::open_new(root)?;
        journal.record(&Event::run_start(
            command,
            None,
            cluster.map(str::to_string),
            engine,
        ))?;
        Ok(journal)
    }

    /// A new run directory under `root` with its two journal files.
    fn open_new(root: &Path) -> Result<(Journal, PathBuf), JournalError> {
        std::fs::create_dir_all(root).map_err(write_error(root))?;
        let (id, dir) = new_run_dir(root).map_err(write_error(root))?;
        let open = |name: &str| {
            let path = dir.join(name);
            OpenOptions::new()
                .append(true)
                .create_new(true)
                .open(&path)
                .map_err(write_error(&path))
        };
        let journal = Journal {
            events: Mutex::new(open(EVENTS_FILE)?),
            samples: Mutex::new(open(SAMPLES_FILE)?),
            id,
            dir: dir.clone(),
        };
        Ok((journal, dir))
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the test's artifacts are copied.
    pub fn artifacts_dir(&self) -> PathBuf {
        self.dir.join(ARTIFACTS_DIR)
    }

    /// Appends an event; at a step boundary, syncs events and samples to
    /// disk before returning.
    pub fn record(&self, event: &Event) -> Result<(), JournalError> {
        self.append(&self.events, EVENTS_FILE, event)?;
        if event.is_boundary() {
            for (file, name) in [(&self.samples, SAMPLES_FILE), (&self.events, EVENTS_FILE)] {
                let file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                file.sync_data().map_err(|source| JournalError::Write {
                    path: self.dir.join(name),
                    source,
                })?;
            }
        }
        Ok(())
    }

    /// Appends a resource sample (synced with the next step boundary).
    pub fn sample(&self, sample: &Sample) -> Result<(), JournalError> {
        self.append(&self.samples, SAMPLES_FILE, sample)
    }

    /// One line, written with a single `write` so that a crash leaves at
    /// most the last line cut, never two lines interleaved.
    fn append(
        &self,
        file: &Mutex<File>,
        name: &str,
        value: &impl Serialize,
    ) -> Result<(), JournalError> {
        let mut line = serde_json::to_vec(value).expect("journal lines serialize");
        line.push(b'\n');
        let mut file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        file.write_all(&line).map_err(|source| JournalError::Write {
            path: self.dir.join(name),
            source,
        })
    }

    /// Reads a recorded run (finished, interrupted or still going).
    pub fn open(dir: &Path) -> Result<RunRecord, JournalError> {
        record::open(dir)
    }
}

fn write_error(path: &Path) -> impl FnOnce(io::Error) -> JournalError + '_ {
    move |source| JournalError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// A run id and its new directory; a second try on the (unlikely) clash.
fn new_run_dir(root: &Path) -> io::Result<(String, PathBuf)> {
    let mut attempts = 0;
    loop {
        let stamp = Timestamp::now().to_string().replace(['-', ':'], "");
        let id = format!("{stamp}-{}", random_hex()?);
        let dir = root.join(&id);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok((id, dir)),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists && attempts < 3 => {
                attempts += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Six hex digits from the kernel's random source.
fn random_hex() -> io::Result<String> {
    let mut bytes = [0u8; 3];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex::encode(bytes))
}
