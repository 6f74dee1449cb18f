//! Progress of a run: the runner reports what happens (steps starting and
//! ending, its notes, a delivery's or a push's progress, its children's
//! output) to a [`Reporter`], which is the run's [`Events`] stream: the
//! renderers there alone decide how it looks ([`crate::events`]).
//!
//! Progress goes to stderr. A child's stdout (the test's) goes to stdout,
//! except when stdout carries the run's JSON report (`-o json`), which
//! must stay the only thing there.

use crate::deliver::progress::Progress;
use crate::events::{Console, Event, Events};
use crate::journal::Outcome;
use crate::process::{Echo, Stream};
use crate::push::PushProgress;
use std::sync::Arc;
use std::time::Duration;

pub use crate::events::Mode;

/// Receives what a run does, and shows it.
pub trait Reporter: Echo {
    fn step_started(&self, step: &str);
    /// `error` is the step's error when it failed (its first line shows).
    fn step_finished(&self, step: &str, outcome: Outcome, took: Duration, error: Option<&str>);
    /// Something loadmaster decided or could not do, under `step` if any.
    fn note(&self, step: Option<&str>, message: &str);
    /// The progress of a delivery step's load: nodes, bytes, rate, ETA.
    fn delivery<'a>(&'a self, step: &'a str) -> Box<dyn Progress + 'a>;
    /// The progress of pushes, each under its image's `deliver/IMAGE` step.
    fn pushes(&self) -> Box<dyn PushProgress + '_>;
}

/// The reporter for `mode` on this process's stderr. `stdout_for_report`:
/// stdout carries the JSON report, so children's stdout goes to stderr.
pub fn for_stderr(mode: Mode, stdout_for_report: bool) -> Arc<dyn Reporter> {
    Arc::new(Events::new(vec![crate::events::for_stderr(
        mode,
        stdout_for_report,
    )]))
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
    fn step_started(&self, step: &str) {
        self.emit(&Event::StepStarted { step });
    }

    fn step_finished(&self, step: &str, outcome: Outcome, took: Duration, error: Option<&str>) {
        self.emit(&Event::StepFinished {
            step,
            outcome,
            duration_ms: took.as_millis() as u64,
            error,
        });
    }

    fn note(&self, step: Option<&str>, message: &str) {
        self.emit(&Event::Note { step, message });
    }

    fn delivery<'a>(&'a self, step: &'a str) -> Box<dyn Progress + 'a> {
        Box::new(self.load(Some(step)))
    }

    fn pushes(&self) -> Box<dyn PushProgress + '_> {
        Box::new(self.push_per_image("deliver/"))
    }
}
