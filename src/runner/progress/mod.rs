//! Progress of a run: the runner reports what happens (steps starting,
//! ending and cancelled, its notes, the facts only the journal keeps, a
//! delivery's or a push's progress, its children's output) to a
//! [`Reporter`], which is the run's [`Events`] stream: the journal is one
//! of its sinks, the renderers the others, and they alone decide how it
//! looks or what is kept ([`crate::events`]). The runner informs once.
//!
//! Progress goes to stderr. A child's stdout (the test's) goes to stdout,
//! except when stdout carries the run's JSON report (`-o json`), which
//! must stay the only thing there.

use crate::deliver::progress::Progress;
use crate::events::{Console, Event, Events, Sink};
use crate::journal::Journal;
use crate::process::{Echo, Stream};
use crate::push::PushProgress;
use std::sync::Arc;

pub use crate::events::Mode;

/// Receives what a run does, and shows and keeps it. As a [`Sink`], it is
/// what a producer below the runner is handed (the monitor).
pub trait Reporter: Echo + Sink {
    fn emit(&self, event: &Event<'_>) {
        self.event(event);
    }
    /// Something loadmaster decided or could not do, under `step` if any;
    /// shown, and kept by the journal.
    fn note(&self, step: Option<&str>, message: &str) {
        self.emit(&Event::Note {
            step,
            message,
            kept: true,
        });
    }
    /// A note shown only: what it says the journal has in typed form
    /// already (a schedule's warnings, the pre-flight's findings), or it is
    /// about the journal or the monitor themselves.
    fn notice(&self, step: Option<&str>, message: &str) {
        self.emit(&Event::Note {
            step,
            message,
            kept: false,
        });
    }
    /// A fact only the journal keeps (a command, the graph, a log file).
    fn record(&self, fact: &crate::journal::Event) {
        self.emit(&Event::Recorded(fact));
    }
    /// The progress of a delivery step's load: nodes, bytes, rate, ETA.
    fn delivery<'a>(&'a self, step: &'a str) -> Box<dyn Progress + 'a>;
    /// The progress of pushes to `registry` (`host[:port]`), each under
    /// its image's `deliver/IMAGE` step.
    fn pushes<'a>(&'a self, registry: &'a str) -> Box<dyn PushProgress + 'a>;
}

/// The reporter of a run recorded in `journal`, shown for `mode` on this
/// process's stderr. `stdout_for_report`: stdout carries the JSON report,
/// so children's stdout goes to stderr.
pub fn recorded(journal: Arc<Journal>, mode: Mode, stdout_for_report: bool) -> Arc<dyn Reporter> {
    let renderer = crate::events::for_stderr(mode, stdout_for_report);
    Arc::new(Events::recorded(journal, renderer))
}

impl Echo for Events {
    fn output(&self, stream: Stream, chunk: &[u8]) {
        let to = match stream {
            Stream::Stdout => Console::Stdout,
            Stream::Stderr => Console::Stderr,
        };
        Events::output(self, to, chunk);
    }
}

impl Reporter for Events {
    fn delivery<'a>(&'a self, step: &'a str) -> Box<dyn Progress + 'a> {
        Box::new(self.load(Some(step)))
    }

    fn pushes<'a>(&'a self, registry: &'a str) -> Box<dyn PushProgress + 'a> {
        Box::new(self.push_per_image("deliver/", registry))
    }
}
