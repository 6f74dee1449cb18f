//! The monitor: a thread that samples resources every period (1 s by
//! default, never slower) while a run goes on, and emits each sample onto
//! the run's event stream, whose journal keeps it ([`Event::Sampled`]).
//!
//! What it reads, each where it really is:
//!
//! - memory of the engine's host: /proc/meminfo here for a local engine, the
//!   VM's through `podman machine ssh` for a podman machine;
//! - each node container's cgroup memory (usage, the kernel's high-water
//!   mark, the limit), v1 or v2, the directory found from the engine;
//! - free disk at the engine's storage root and in the temp directory.
//!
//! A source that cannot be read never stops or slows the run: it is left
//! out of the samples and a `sample-note` event says why, once. A journal
//! that cannot take a sample is the stream's journal sink's to say.

pub use crate::host::{HostReader, cgroup_of_pid, parse_meminfo};

use crate::engine::{Engine, EngineInfo, EngineKind, Location};
use crate::events::{Event, Sink};
use crate::host::cgroup;
use crate::journal::{self, DiskSpace, HostMemory, NodeMemory, Sample, Timestamp};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The default sampling period.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(1);

/// The cgroup files read for a node's memory, v1 and v2 (absent ones are
/// skipped by the reader).
const CGROUP_FILES: [&str; 6] = [
    "memory.usage_in_bytes",
    "memory.max_usage_in_bytes",
    "memory.limit_in_bytes",
    "memory.current",
    "memory.peak",
    "memory.max",
];

/// Why the monitor could not start.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(
        "a sampling period of {period:?} is not allowed: give one above 0 and at most 1s (samples must come at 1 Hz or faster)"
    )]
    Period { period: Duration },
    #[error("cannot start the monitor's thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error(
        "cannot find the memory cgroup of node {node} on {engine}: {reason} (is the container running?)"
    )]
    NodeCgroup {
        node: String,
        engine: EngineKind,
        reason: String,
    },
}

/// A node container's memory cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSource {
    pub node: String,
    pub dir: PathBuf,
    pub reader: HostReader,
}

impl NodeSource {
    /// Finds a node container's memory cgroup from what the engine says:
    /// podman's `State.CgroupPath`; for docker the cgroupfs and systemd
    /// layouts of its id; else the main process's `/proc/<pid>/cgroup`.
    /// The first directory that holds memory counters wins.
    pub fn find(
        engine: &Engine,
        info: &EngineInfo,
        reader: &HostReader,
        container: &str,
    ) -> Result<NodeSource, MonitorError> {
        let fail = |reason: String| MonitorError::NodeCgroup {
            node: container.to_string(),
            engine: engine.kind(),
            reason,
        };
        let details = engine
            .container_inspect(container)
            .map_err(|e| fail(e.to_string()))?;
        let root = if info.cgroup_version == 2 {
            Path::new("/sys/fs/cgroup")
        } else {
            Path::new("/sys/fs/cgroup/memory")
        };
        let mut candidates = Vec::new();
        match engine.kind() {
            EngineKind::Podman => {
                if let Some(path) = podman_cgroup_path(container) {
                    candidates.push(root.join(path.trim_start_matches('/')));
                }
            }
            EngineKind::Docker => {
                candidates.push(root.join("docker").join(&details.id));
                candidates.push(
                    root.join("system.slice")
                        .join(format!("docker-{}.scope", details.id)),
                );
            }
        }
        if details.state.pid > 0
            && let Ok(dir) = cgroup_of_pid(reader, details.state.pid)
        {
            candidates.push(dir);
        }
        for dir in &candidates {
            let files = reader.files(dir, &["memory.usage_in_bytes", "memory.current"]);
            if files.is_ok_and(|files| !files.is_empty()) {
                return Ok(NodeSource {
                    node: container.to_string(),
                    dir: dir.clone(),
                    reader: reader.clone(),
                });
            }
        }
        let tried: Vec<String> = candidates.iter().map(|d| d.display().to_string()).collect();
        Err(fail(format!(
            "no memory counters in {}",
            if tried.is_empty() {
                "any directory (the engine named none)".to_string()
            } else {
                tried.join(", ")
            }
        )))
    }

    fn read(&self) -> Result<NodeMemory, String> {
        let files = self
            .reader
            .files(&self.dir, &CGROUP_FILES)
            .map_err(|e| e.to_string())?;
        let counters = cgroup::parse(&self.dir.display().to_string(), &|name| {
            files.get(name).cloned()
        })
        .map_err(|e| e.to_string())?;
        Ok(NodeMemory {
            node: self.node.clone(),
            usage_bytes: counters.usage_bytes.unwrap_or(0),
            peak_bytes: counters.peak_bytes,
            limit_bytes: counters.limit_bytes,
        })
    }
}

/// `podman container inspect --format {{.State.CgroupPath}}`: not part of
/// the engine interface's inspect, which docker lacks.
fn podman_cgroup_path(container: &str) -> Option<String> {
    let mut command = std::process::Command::new("podman");
    command.args([
        "container",
        "inspect",
        "--format",
        "{{.State.CgroupPath}}",
        container,
    ]);
    let done = crate::process::run(&mut command, Duration::from_secs(30)).ok()?;
    let path = done.stdout_text().trim().to_string();
    (done.status.success() && !path.is_empty()).then_some(path)
}

/// A filesystem whose free space is sampled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskSource {
    /// `engine storage` or `temp`.
    pub role: String,
    pub path: PathBuf,
    pub reader: HostReader,
}

/// What to sample.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// Memory of the engine's host; `None` when it cannot be read.
    pub memory: Option<HostReader>,
    pub nodes: Vec<NodeSource>,
    pub disks: Vec<DiskSource>,
    /// Sources left out, and why: recorded as `sample-note` events at start.
    pub notes: Vec<(String, String)>,
}

impl Sources {
    /// The engine's host memory, its storage root and the temp directory
    /// (`tmpdir`: `TMPDIR`), read where the engine runs.
    pub fn for_engine(info: &EngineInfo, tmpdir: Option<&str>) -> Sources {
        let mut sources = Sources::default();
        let reader = match (info.location, info.engine) {
            (Location::Local, _) => Some(HostReader::Local),
            (_, EngineKind::Podman) => Some(HostReader::PodmanMachine { name: None }),
            (location, EngineKind::Docker) => {
                sources.notes.push((
                    "engine host".to_string(),
                    format!(
                        "docker runs in a {location:?} host whose memory, cgroups and disk loadmaster cannot read (docker info gives only the total, {} bytes): not sampled",
                        info.memory_bytes
                    ),
                ));
                None
            }
        };
        if let Some(reader) = &reader {
            sources.memory = Some(reader.clone());
            sources.disks.push(DiskSource {
                role: "engine storage".to_string(),
                path: PathBuf::from(&info.storage_root),
                reader: reader.clone(),
            });
        }
        // kind writes image tars to this machine's temp directory, wherever
        // the engine runs.
        sources.disks.push(DiskSource {
            role: "temp".to_string(),
            path: crate::host::temp_dir(tmpdir),
            reader: HostReader::Local,
        });
        sources
    }

    /// The reader for files of the engine's host, if it has one.
    pub fn reader(&self) -> Option<&HostReader> {
        self.memory.as_ref()
    }
}

/// What the monitor did, when stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonitorReport {
    pub samples: u64,
    /// One line per source that failed.
    pub notes: Vec<String>,
}

enum Message {
    Stop,
    Watch(NodeSource),
}

/// A running sampler. Stop it with [`Monitor::stop`]; dropping it stops it
/// too.
pub struct Monitor {
    sender: mpsc::Sender<Message>,
    thread: Option<JoinHandle<MonitorReport>>,
}

impl Monitor {
    /// Starts sampling `sources` onto `events` every `period` (> 0, ≤ 1 s).
    pub fn start(
        events: Arc<dyn Sink>,
        sources: Sources,
        period: Duration,
    ) -> Result<Monitor, MonitorError> {
        if period.is_zero() || period > DEFAULT_PERIOD {
            return Err(MonitorError::Period { period });
        }
        let (sender, receiver) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("loadmaster-monitor".to_string())
            .spawn(move || Sampler::new(events, sources).run(period, &receiver))
            .map_err(MonitorError::Thread)?;
        Ok(Monitor {
            sender,
            thread: Some(thread),
        })
    }

    /// Adds a node to watch from the next sample on (nodes appear when the
    /// cluster is created, after the monitor started).
    pub fn watch(&self, node: NodeSource) {
        // A send fails only when the thread has ended, and then there is
        // nothing left to watch with.
        let _ = self.sender.send(Message::Watch(node));
    }

    /// Stops sampling (at once, not at the end of a period) and returns
    /// what the monitor did.
    pub fn stop(mut self) -> MonitorReport {
        self.halt()
    }

    fn halt(&mut self) -> MonitorReport {
        let _ = self.sender.send(Message::Stop);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(report)) => report,
            Some(Err(_)) => MonitorReport {
                samples: 0,
                notes: vec!["the monitor's thread panicked".to_string()],
            },
            None => MonitorReport {
                samples: 0,
                notes: Vec::new(),
            },
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.halt();
        }
    }
}

struct Sampler {
    events: Arc<dyn Sink>,
    sources: Sources,
    /// Sources already noted as failing: each is noted once.
    noted: HashSet<String>,
    report: MonitorReport,
}

impl Sampler {
    fn new(events: Arc<dyn Sink>, sources: Sources) -> Sampler {
        Sampler {
            events,
            sources,
            noted: HashSet::new(),
            report: MonitorReport {
                samples: 0,
                notes: Vec::new(),
            },
        }
    }

    fn run(mut self, period: Duration, messages: &mpsc::Receiver<Message>) -> MonitorReport {
        for (source, note) in std::mem::take(&mut self.sources.notes) {
            self.note(&source, &note);
        }
        let mut next = Instant::now();
        loop {
            self.record_sample();
            // Ticks on a fixed grid; a slow read skips ticks rather than
            // bunching samples up.
            next += period;
            let now = Instant::now();
            while next <= now {
                next += period;
            }
            loop {
                match messages.recv_timeout(next.saturating_duration_since(Instant::now())) {
                    Ok(Message::Watch(node)) => self.sources.nodes.push(node),
                    Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => {
                        // One more at the end: a run shorter than a period
                        // still has a sample of every node it watched (the
                        // cluster step can end after the builds it ran
                        // beside, just before the run does).
                        self.record_sample();
                        return self.report;
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                }
            }
        }
    }

    /// Takes a sample and emits it.
    fn record_sample(&mut self) {
        let sample = self.take();
        self.events.event(&Event::Sampled(&sample));
        self.report.samples += 1;
    }

    fn take(&mut self) -> Sample {
        let time = Timestamp::now();
        let memory = match self.sources.memory.clone() {
            Some(reader) => {
                let read = reader
                    .files(Path::new("/proc"), &["meminfo"])
                    .map_err(|e| e.to_string())
                    .and_then(|mut files| {
                        let text = files.remove("meminfo").ok_or("cannot read /proc/meminfo")?;
                        parse_meminfo(&text)
                            .ok_or_else(|| "no MemTotal/MemAvailable in /proc/meminfo".to_string())
                    });
                self.ok_or_note("engine host memory", read)
                    .map(|(total_bytes, available_bytes)| HostMemory {
                        total_bytes,
                        available_bytes,
                    })
            }
            None => None,
        };
        let mut nodes = Vec::new();
        for node in self.sources.nodes.clone() {
            let read = node.read();
            if let Some(memory) = self.ok_or_note(&format!("node {}", node.node), read) {
                nodes.push(memory);
            }
        }
        let mut disks = Vec::new();
        for disk in self.sources.disks.clone() {
            let read = disk.reader.space(&disk.path).map_err(|e| e.to_string());
            let source = format!("disk {} ({})", disk.path.display(), disk.role);
            if let Some((available_bytes, total_bytes)) = self.ok_or_note(&source, read) {
                disks.push(DiskSpace {
                    role: disk.role,
                    path: disk.path.display().to_string(),
                    available_bytes,
                    total_bytes,
                });
            }
        }
        Sample {
            time,
            memory,
            nodes,
            disks,
        }
    }

    fn ok_or_note<T>(&mut self, source: &str, read: Result<T, String>) -> Option<T> {
        read.map_err(|why| self.note(source, &why)).ok()
    }

    /// Records why a source is missing from the samples, once per source.
    fn note(&mut self, source: &str, why: &str) {
        if !self.noted.insert(source.to_string()) {
            return;
        }
        self.report.notes.push(format!("{source}: {why}"));
        self.events
            .event(&Event::Recorded(&journal::Event::sample_note(source, why)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::EventBody;
    use std::sync::Mutex;

    /// Keeps what the monitor emits: its samples' times and its notes.
    #[derive(Default)]
    struct Kept {
        samples: Mutex<Vec<Timestamp>>,
        notes: Mutex<Vec<String>>,
    }

    impl Sink for Kept {
        fn event(&self, event: &Event<'_>) {
            match event {
                Event::Sampled(sample) => self.samples.lock().unwrap().push(sample.time),
                Event::Recorded(journal::Event {
                    body: EventBody::SampleNote { source, .. },
                    ..
                }) => self.notes.lock().unwrap().push(source.clone()),
                _ => {}
            }
        }
    }

    #[test]
    fn samples_and_notes_go_onto_the_stream_it_is_given() {
        let kept = Arc::new(Kept::default());
        let sources = Sources {
            notes: vec![("engine host memory".to_string(), "not readable".to_string())],
            ..Sources::default()
        };
        let monitor = Monitor::start(kept.clone(), sources, Duration::from_millis(50)).unwrap();
        thread::sleep(Duration::from_millis(180));
        let report = monitor.stop();

        let samples = kept.samples.lock().unwrap();
        // At 0, 50, 100, 150 ms and one more at the stop.
        assert!(samples.len() >= 4, "{} samples", samples.len());
        assert_eq!(report.samples as usize, samples.len());
        assert_eq!(*kept.notes.lock().unwrap(), ["engine host memory"]);
        assert_eq!(report.notes, ["engine host memory: not readable"]);
    }
}
