//! One event stream for everything a command does that anybody follows,
//! as cargo-nextest has it: the code that does the work emits typed
//! [`Event`]s once, and sinks consume them. A sink is a renderer for people
//! (the terminal's redrawn frame, [`terminal`]; plain lines for logs,
//! [`plain`]), or for programs (JSON lines, [`json`]), or the run's journal
//! ([`recording`]), which keeps each step, note, delivery and push, and the
//! facts only it keeps ([`Event::Recorded`]: commands, the graph, files of
//! evidence; the resource monitor's samples, [`Event::Sampled`]).
//! [`Events::recorded`] is the stream of a recorded command: its renderer
//! and its journal. None of the producers prints or writes the journal
//! themselves, the resource monitor's thread included.
//!
//! Below the runner, the load and push code keep hooks of their own, so
//! that they need not know this layer: a load reports through
//! [`crate::deliver::progress::Progress`], a push through
//! [`crate::push::PushProgress`]. [`LoadEvents`] and [`PushEvents`] turn
//! those calls into events on a stream, under the step they belong to (if
//! any); the runner's steps and notes come through the runner's `progress`
//! module, `load`'s and `push`'s are emitted by the commands.
//!
//! Every sink writes to a stream that may be closed (`loadmaster up 2>&1 |
//! head`): a failed write is ignored and ends that sink's writing, it never
//! panics; a journal that cannot be written is said once, and the command
//! goes on.

pub mod json;
pub mod plain;
pub mod recording;
pub mod terminal;
pub mod text;

#[cfg(test)]
mod tests;

use crate::archive::Digest;
use crate::deliver::progress::Progress;
use crate::deliver::{DeliveryPath, NodeReport};
use crate::journal::{self, Journal, Outcome};
use crate::push::{BlobStep, PushProgress, PushReport, Retry};
use serde::Serialize;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

/// Something that happened, with what a renderer needs to show it.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event<'a> {
    /// A step of a run started.
    StepStarted { step: &'a str },
    /// A step ended; `error` is its error when it failed.
    StepFinished {
        step: &'a str,
        outcome: Outcome,
        duration_ms: u64,
        error: Option<&'a str>,
    },
    /// A step of the graph that will not run, and why (`build/api failed
    /// and it needs it`).
    StepCancelled { step: &'a str, because: &'a str },
    /// Something loadmaster decided or could not do. `kept`: the journal
    /// keeps it too; not for what the journal has in typed form already (a
    /// schedule's warnings, the pre-flight's findings), nor for what is
    /// about the journal itself (it cannot be written).
    Note {
        step: Option<&'a str>,
        message: &'a str,
        #[serde(skip)]
        kept: bool,
    },
    /// A fact only the journal keeps (a command and how it ended, the graph
    /// of steps, a file of evidence): renderers show nothing of it.
    #[serde(skip)]
    Recorded(&'a journal::Event),
    /// What the resource monitor read at one instant: the journal keeps it
    /// beside its events (`samples.jsonl`), renderers show nothing of it.
    #[serde(skip)]
    Sampled(&'a journal::Sample),
    /// An image leaves the engine by `path`, for `reason`.
    LoadPath {
        step: Option<&'a str>,
        image: &'a str,
        path: DeliveryPath,
        reason: &'a str,
    },
    /// A load of `image` (`total` bytes, when known) into `nodes` starts.
    LoadStarted {
        step: Option<&'a str>,
        image: &'a str,
        nodes: &'a [String],
        total: Option<u64>,
    },
    /// What a node holds was read.
    NodeInventory {
        step: Option<&'a str>,
        image: &'a str,
        node: &'a str,
        blobs: usize,
        already_present: bool,
    },
    /// Bytes read from the source so far, and sent to each node.
    LoadStreaming {
        step: Option<&'a str>,
        image: &'a str,
        read: u64,
        sent: &'a [(&'a str, u64)],
    },
    /// A node is done with an image: loaded, already there, or failed.
    NodeLoaded {
        step: Option<&'a str>,
        report: &'a NodeReport,
    },
    /// A push of `image` to `destination` (`host/repo:tag`) starts.
    PushStarted {
        step: Option<&'a str>,
        image: &'a str,
        destination: &'a str,
        size: Option<u64>,
    },
    /// What one blob needed.
    PushBlob {
        step: Option<&'a str>,
        image: &'a str,
        digest: &'a Digest,
        #[serde(flatten)]
        blob: BlobStep<'a>,
    },
    /// The source is read, because `missing` blobs must be sent.
    PushReading {
        step: Option<&'a str>,
        image: &'a str,
        missing: usize,
    },
    /// Bytes read from the source and uploaded so far.
    PushStreaming {
        step: Option<&'a str>,
        image: &'a str,
        read: u64,
        uploaded: u64,
    },
    /// A request failed for a moment and is tried again.
    PushRetry {
        step: Option<&'a str>,
        image: &'a str,
        retry: &'a Retry,
    },
    /// An image was pushed to `registry` (`host[:port]`).
    Pushed {
        step: Option<&'a str>,
        registry: &'a str,
        report: &'a PushReport,
    },
    /// Pushing an image to `registry` failed (after `duration_ms`).
    PushFailed {
        step: Option<&'a str>,
        image: &'a str,
        registry: &'a str,
        error: &'a str,
        duration_ms: u64,
    },
}

impl Event<'_> {
    /// Whether the event is for the journal alone ([`Event::Recorded`],
    /// [`Event::Sampled`]): renderers skip it.
    pub fn is_journal_only(&self) -> bool {
        matches!(self, Event::Recorded(_) | Event::Sampled(_))
    }

    /// Whether the event reports bytes moving: sent several times a second,
    /// so that renderers for logs show only some.
    pub fn is_streaming(&self) -> bool {
        matches!(
            self,
            Event::LoadStreaming { .. } | Event::PushStreaming { .. }
        )
    }
}

/// Where a child's output is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Console {
    Stdout,
    Stderr,
}

/// Consumes events. `event` is called from the threads doing the work,
/// several times a second while bytes flow: implementations must be cheap.
pub trait Sink: Send + Sync {
    fn event(&self, event: &Event<'_>);
    /// A child's output (a test's, kind's), shown as it comes by the sink
    /// that owns the terminal; `to` says which stream it belongs on.
    fn output(&self, _to: Console, _chunk: &[u8]) {}
}

/// The stream: every event goes to every sink, in order.
#[derive(Clone, Default)]
pub struct Events {
    sinks: Vec<Arc<dyn Sink>>,
}

impl Events {
    pub fn new(sinks: Vec<Arc<dyn Sink>>) -> Events {
        Events { sinks }
    }

    /// The stream of a recorded command: `renderer` shows it and says
    /// when the journal cannot be written, the journal keeps it. The one
    /// place a producer's events and the journal meet.
    pub fn recorded(journal: Arc<Journal>, renderer: Arc<dyn Sink>) -> Events {
        let recording = recording::Recording::new(journal, Some(renderer.clone()));
        Events::new(vec![renderer, Arc::new(recording)])
    }

    /// A stream nobody watches (for library callers and tests).
    pub fn none() -> Events {
        Events::default()
    }

    pub fn emit(&self, event: &Event<'_>) {
        for sink in &self.sinks {
            sink.event(event);
        }
    }

    pub fn output(&self, to: Console, chunk: &[u8]) {
        for sink in &self.sinks {
            sink.output(to, chunk);
        }
    }

    /// A load's hooks, emitting onto this stream under `step`.
    pub fn load<'a>(&'a self, step: Option<&'a str>) -> LoadEvents<'a> {
        LoadEvents {
            events: self,
            step,
            image: Mutex::default(),
        }
    }

    /// A push's hooks for pushes to `registry` (`host[:port]`), emitting
    /// onto this stream under `step`.
    pub fn push<'a>(&'a self, step: Option<&'a str>, registry: &'a str) -> PushEvents<'a> {
        PushEvents {
            events: self,
            step: step.map(|step| StepOf::Fixed(step.to_string())),
            registry,
            current: Mutex::default(),
        }
    }

    /// A push's hooks for pushes to `registry`, each image's events under
    /// step `PREFIX` + image.
    pub fn push_per_image<'a>(&'a self, prefix: &'static str, registry: &'a str) -> PushEvents<'a> {
        PushEvents {
            events: self,
            step: Some(StepOf::Prefix(prefix)),
            registry,
            current: Mutex::default(),
        }
    }
}

/// A stream is a sink too, of everything it carries: a producer below
/// the runner (the monitor) is handed the whole stream as one sink.
impl Sink for Events {
    fn event(&self, event: &Event<'_>) {
        self.emit(event);
    }

    fn output(&self, to: Console, chunk: &[u8]) {
        Events::output(self, to, chunk);
    }
}

/// How progress is shown (`--progress`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// `tty` when stderr is a terminal, `plain` otherwise.
    #[default]
    Auto,
    /// One line per active step, redrawn in place with a spinner.
    Tty,
    /// Timestamped lines, one per event: each step's start and end,
    /// delivery bytes every few seconds.
    Plain,
    /// One JSON object per event and line.
    Json,
    /// No step or delivery lines; loadmaster's notes and the children's
    /// output still show.
    None,
}

impl Mode {
    /// `Auto` decided by whether stderr is a terminal.
    pub fn resolved(self) -> Mode {
        match self {
            Mode::Auto if std::io::stderr().is_terminal() => Mode::Tty,
            Mode::Auto => Mode::Plain,
            other => other,
        }
    }
}

/// The renderer for `mode` on this process's stderr. `stdout_for_report`:
/// stdout carries a JSON report, so children's stdout goes to stderr.
pub fn for_stderr(mode: Mode, stdout_for_report: bool) -> Arc<dyn Sink> {
    let children = plain::ChildOutput { stdout_for_report };
    match mode.resolved() {
        Mode::Tty => Arc::new(terminal::Terminal::start(children)),
        Mode::Json => Arc::new(json::JsonLines::new(std::io::stderr(), children)),
        Mode::None => Arc::new(plain::PlainLines::notes_only(std::io::stderr(), children)),
        Mode::Plain | Mode::Auto => Arc::new(plain::PlainLines::new(std::io::stderr(), children)),
    }
}

/// Whole lines for stderr from outside the event stream (tracing's): shown
/// above the terminal renderer's frame while one draws, so that the frame
/// is not written over; a closed stderr is ignored, as the sinks ignore it.
pub struct StderrLines;

impl std::io::Write for StderrLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        if !terminal::print_above_frame(text.trim_end_matches('\n')) {
            let _ = std::io::stderr().write_all(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A lock that a panicked renderer left is still a renderer's state.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A load's hooks as events.
pub struct LoadEvents<'a> {
    events: &'a Events,
    step: Option<&'a str>,
    /// The image being loaded (the hooks after `begin` do not name it).
    image: Mutex<String>,
}

impl Progress for LoadEvents<'_> {
    fn begin(&self, image: &str, nodes: &[String], total: Option<u64>) {
        *lock(&self.image) = image.to_string();
        self.events.emit(&Event::LoadStarted {
            step: self.step,
            image,
            nodes,
            total,
        });
    }

    fn inventory(&self, node: &str, blobs: usize, already_present: bool) {
        let image = lock(&self.image).clone();
        self.events.emit(&Event::NodeInventory {
            step: self.step,
            image: &image,
            node,
            blobs,
            already_present,
        });
    }

    fn streaming(&self, read: u64, sent: &[(&str, u64)]) {
        let image = lock(&self.image).clone();
        self.events.emit(&Event::LoadStreaming {
            step: self.step,
            image: &image,
            read,
            sent,
        });
    }

    fn node_done(&self, report: &NodeReport) {
        self.events.emit(&Event::NodeLoaded {
            step: self.step,
            report,
        });
    }

    fn path(&self, image: &str, path: DeliveryPath, reason: &str) {
        self.events.emit(&Event::LoadPath {
            step: self.step,
            image,
            path,
            reason,
        });
    }
}

/// The step a push's events belong to.
enum StepOf {
    Fixed(String),
    /// `PREFIX` + the image pushed.
    Prefix(&'static str),
}

/// A push's hooks as events.
pub struct PushEvents<'a> {
    events: &'a Events,
    step: Option<StepOf>,
    /// The registry's `host[:port]`.
    registry: &'a str,
    /// The image being pushed and its step.
    current: Mutex<(String, Option<String>)>,
}

impl PushEvents<'_> {
    /// Emits the event `make` builds from the current image and step.
    fn emit_current(&self, make: impl FnOnce(&str, Option<&str>)) {
        let (image, step) = lock(&self.current).clone();
        make(&image, step.as_deref());
    }
}

impl PushProgress for PushEvents<'_> {
    fn begin(&self, image: &str, destination: &str, size: Option<u64>) {
        let step = self.step.as_ref().map(|step| match step {
            StepOf::Fixed(step) => step.clone(),
            StepOf::Prefix(prefix) => format!("{prefix}{image}"),
        });
        *lock(&self.current) = (image.to_string(), step.clone());
        self.events.emit(&Event::PushStarted {
            step: step.as_deref(),
            image,
            destination,
            size,
        });
    }

    fn blob(&self, digest: &Digest, blob: BlobStep<'_>) {
        self.emit_current(|image, step| {
            self.events.emit(&Event::PushBlob {
                step,
                image,
                digest,
                blob,
            })
        });
    }

    fn reading(&self, missing: usize) {
        self.emit_current(|image, step| {
            self.events.emit(&Event::PushReading {
                step,
                image,
                missing,
            })
        });
    }

    fn streaming(&self, read: u64, uploaded: u64) {
        self.emit_current(|image, step| {
            self.events.emit(&Event::PushStreaming {
                step,
                image,
                read,
                uploaded,
            })
        });
    }

    fn retry(&self, retry: &Retry) {
        self.emit_current(|image, step| self.events.emit(&Event::PushRetry { step, image, retry }));
    }

    fn done(&self, report: &PushReport) {
        self.emit_current(|_, step| {
            self.events.emit(&Event::Pushed {
                step,
                registry: self.registry,
                report,
            })
        });
    }
}
