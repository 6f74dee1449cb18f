//! Plain lines for logs (CI, a pipe, a file): each step's start and end
//! with its duration and result, loadmaster's notes, and a delivery's
//! bytes (the load's own [`Lines`]), every line stamped `HH:MM:SS.mmm`
//! (UTC, as the journal's instants).

use super::{ChildOutput, Reporter, ended, noted};
use crate::deliver::progress::{Lines, Progress, Silent};
use crate::journal::{Outcome, Timestamp};
use crate::process::{Echo, Stream};
use std::io::Write;
use std::time::Duration;

pub struct Plain {
    /// Step and delivery lines (`--progress none` has notes only).
    steps: bool,
    children: ChildOutput,
}

impl Plain {
    pub fn new(steps: bool, children: ChildOutput) -> Plain {
        Plain { steps, children }
    }

    fn line(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{} {text}", Timestamp::now().clock());
    }
}

impl Echo for Plain {
    fn output(&self, stream: Stream, chunk: &[u8]) {
        if !self.children.to_stdout(stream, chunk) {
            let _ = std::io::stderr().lock().write_all(chunk);
        }
    }
}

impl Reporter for Plain {
    fn step_started(&self, step: &str) {
        if self.steps {
            self.line(&format!("{step} started"));
        }
    }

    fn step_finished(&self, step: &str, outcome: Outcome, took: Duration, error: Option<&str>) {
        if self.steps {
            self.line(&ended(step, outcome, took, error));
        }
    }

    fn note(&self, step: Option<&str>, message: &str) {
        self.line(&noted(step, message));
    }

    fn delivery<'a>(&'a self, _step: &'a str) -> Box<dyn Progress + 'a> {
        if self.steps {
            Box::new(Lines::default())
        } else {
            Box::new(Silent)
        }
    }
}
