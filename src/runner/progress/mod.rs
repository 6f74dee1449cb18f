//! Progress of a run, for people. The runner reports what happens (steps
//! starting and ending, its notes, a delivery's bytes, its children's
//! output) to a [`Reporter`], which alone decides how that looks: on a
//! terminal one line per active step, redrawn with a spinner
//! ([`terminal`]); in CI logs and pipes plain timestamped lines
//! ([`plain`]).
//!
//! Progress goes to stderr. A child's stdout (the test's) goes to stdout,
//! except when stdout carries the run's JSON report (`-o json`), which
//! must stay the only thing there.

pub mod plain;
pub mod terminal;

use super::process::{Echo, Stream};
use crate::deliver::progress::Progress;
use crate::journal::{Outcome, StepStatus};
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

/// How progress is shown (`--progress`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// `tty` when stderr is a terminal, `plain` otherwise.
    #[default]
    Auto,
    /// One line per active step, redrawn in place with a spinner.
    Tty,
    /// Timestamped lines: each step's start and end, delivery bytes.
    Plain,
    /// No step or delivery lines; loadmaster's notes and the children's
    /// output still show.
    None,
}

/// Receives what a run does, and shows it.
pub trait Reporter: Echo {
    fn step_started(&self, step: &str);
    /// `error` is the step's error when it failed (its first line shows).
    fn step_finished(&self, step: &str, outcome: Outcome, took: Duration, error: Option<&str>);
    /// Something loadmaster decided or could not do, under `step` if any.
    fn note(&self, step: Option<&str>, message: &str);
    /// The display of a delivery step's load: nodes, bytes, rate, ETA.
    fn delivery<'a>(&'a self, step: &'a str) -> Box<dyn Progress + 'a>;
}

/// The reporter for `mode` on this process's stderr. `stdout_for_report`:
/// stdout carries the JSON report, so children's stdout goes to stderr.
pub fn for_stderr(mode: Mode, stdout_for_report: bool) -> Arc<dyn Reporter> {
    let children = ChildOutput { stdout_for_report };
    let tty = match mode {
        Mode::Auto => std::io::stderr().is_terminal(),
        Mode::Tty => true,
        Mode::Plain | Mode::None => false,
    };
    if tty {
        Arc::new(terminal::Terminal::start(children))
    } else {
        Arc::new(plain::Plain::new(mode != Mode::None, children))
    }
}

/// Where children's output goes: stderr to stderr, stdout to stdout
/// unless that is the report's.
#[derive(Clone, Copy, Debug)]
pub struct ChildOutput {
    pub stdout_for_report: bool,
}

impl ChildOutput {
    /// Writes `chunk` of `stream` to stdout, or returns false: it belongs
    /// on stderr, with the reporter's lines.
    fn to_stdout(self, stream: Stream, chunk: &[u8]) -> bool {
        if stream == Stream::Stderr || self.stdout_for_report {
            return false;
        }
        // Flushed now: stdout and the reporter's stderr share a terminal,
        // and the reporter's next line must come after this chunk.
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(chunk).and_then(|()| stdout.flush());
        true
    }
}

/// "build/app:1 failed (4.3 s): the first line of its error"
fn ended(step: &str, outcome: Outcome, took: Duration, error: Option<&str>) -> String {
    let mut line = format!(
        "{step} {} ({})",
        StepStatus::from(outcome).word(),
        crate::units::seconds(took.as_millis() as u64)
    );
    if let Some(first) = error.and_then(|e| e.lines().next()) {
        line.push_str(": ");
        line.push_str(first);
    }
    line
}

/// "cluster: reusing kind cluster e2e", or the message alone for the run's.
fn noted(step: Option<&str>, message: &str) -> String {
    match step {
        Some(step) => format!("{step}: {message}"),
        None => message.to_string(),
    }
}
