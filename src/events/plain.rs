//! Plain lines for logs (CI, a pipe, a file): one line per event, stamped
//! `HH:MM:SS.mmm` (UTC, as the journal's instants): `STEP started`, `STEP
//! succeeded|failed|interrupted (N.N s)[: error]`, loadmaster's notes, each
//! node's load, each blob of a push; bytes moving at most every 5 seconds
//! per image. A line never breaks: an error's lines are joined with `; `.

use super::text::{self, Rate, one_line};
use super::{Console, Event, Sink, lock};
use crate::time::Timestamp;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// How often bytes moving are reported, per image.
const STREAMING_INTERVAL_MS: u64 = 5000;

/// The clock the lines are stamped with, in milliseconds since the epoch
/// (a fixed one in tests).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(|| Timestamp::now().millis())
}

/// Where children's output goes: stderr to stderr, stdout to stdout
/// unless that is the report's.
#[derive(Clone, Copy, Debug)]
pub struct ChildOutput {
    pub stdout_for_report: bool,
}

impl ChildOutput {
    /// Writes `chunk` to this process's stdout, or returns false: it
    /// belongs on stderr, with the renderer's lines.
    pub fn to_stdout(self, to: Console, chunk: &[u8]) -> bool {
        if to == Console::Stderr || self.stdout_for_report {
            return false;
        }
        // Flushed now: stdout and the renderer's stderr may share a
        // terminal, and the renderer's next line must come after this. A
        // closed stdout is the reader's choice: nothing to report.
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(chunk).and_then(|()| stdout.flush());
        true
    }
}

/// A writer that stops at its first failed write (a closed pipe).
pub struct Output<W> {
    out: W,
    closed: bool,
}

impl<W: Write> Output<W> {
    pub fn new(out: W) -> Output<W> {
        Output { out, closed: false }
    }

    pub fn write(&mut self, bytes: &[u8]) {
        if !self.closed
            && self
                .out
                .write_all(bytes)
                .and_then(|()| self.out.flush())
                .is_err()
        {
            self.closed = true;
        }
    }

    pub fn get_ref(&self) -> &W {
        &self.out
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// The writer a renderer's state holds, once the renderer is done.
pub(super) fn writer_of<S, W: Write>(state: Mutex<S>, output: impl FnOnce(S) -> Output<W>) -> W {
    output(state.into_inner().unwrap_or_else(|p| p.into_inner())).into_inner()
}

struct State<W> {
    out: Output<W>,
    /// Per image: its transfer's start, and when its bytes were last shown.
    transfers: HashMap<String, (Rate, u64)>,
}

/// The plain-line renderer.
pub struct PlainLines<W> {
    state: Mutex<State<W>>,
    /// Step and delivery lines (`--progress none` has notes only).
    all: bool,
    children: ChildOutput,
    clock: Clock,
}

impl<W: Write + Send> PlainLines<W> {
    pub fn new(out: W, children: ChildOutput) -> PlainLines<W> {
        PlainLines::with_clock(out, children, true, system_clock())
    }

    /// Loadmaster's notes only (and children's output).
    pub fn notes_only(out: W, children: ChildOutput) -> PlainLines<W> {
        PlainLines::with_clock(out, children, false, system_clock())
    }

    pub fn with_clock(out: W, children: ChildOutput, all: bool, clock: Clock) -> PlainLines<W> {
        PlainLines {
            state: Mutex::new(State {
                out: Output::new(out),
                transfers: HashMap::new(),
            }),
            all,
            children,
            clock,
        }
    }

    /// The writer, for tests that read what was written.
    pub fn into_inner(self) -> W {
        writer_of(self.state, |state| state.out)
    }

    /// The line for `event`, if it gets one now.
    fn line(&self, state: &mut State<W>, event: &Event<'_>, now: u64) -> Option<String> {
        match *event {
            Event::StepStarted { step } => Some(format!("{step} started")),
            Event::StepFinished {
                step,
                outcome,
                duration_ms,
                error,
            } => Some(text::step_finished(step, outcome, duration_ms, error)),
            Event::LoadStarted { image, total, .. } => {
                state
                    .transfers
                    .insert(image.to_string(), (Rate::start(total, now), now));
                text::described(event)
            }
            Event::PushStarted { image, .. } => {
                // Blobs the registry has are not sent: the image's size is
                // no total for the upload.
                state
                    .transfers
                    .insert(image.to_string(), (Rate::start(None, now), now));
                text::described(event)
            }
            Event::LoadStreaming {
                image, read, sent, ..
            } => {
                let rate = due(state, image, now)?;
                Some(format!(
                    "{image}: read {}; sent: {}",
                    rate.describe(read, now),
                    text::sent_list(sent)
                ))
            }
            Event::PushStreaming {
                image,
                read,
                uploaded,
                ..
            } => {
                let rate = due(state, image, now)?;
                Some(format!(
                    "{image}: read {}, uploaded {}",
                    crate::units::bytes(read),
                    rate.describe(uploaded, now)
                ))
            }
            _ => text::described(event),
        }
    }
}

/// The rate of `image`'s transfer when its bytes are due to be shown again.
fn due<W>(state: &mut State<W>, image: &str, now: u64) -> Option<Rate> {
    let entry = state
        .transfers
        .entry(image.to_string())
        .or_insert_with(|| (Rate::start(None, now), now));
    if now.saturating_sub(entry.1) < STREAMING_INTERVAL_MS {
        return None;
    }
    entry.1 = now;
    Some(entry.0)
}

impl<W: Write + Send> Sink for PlainLines<W> {
    fn event(&self, event: &Event<'_>) {
        if !self.all && !matches!(event, Event::Note { .. } | Event::StepCancelled { .. }) {
            return;
        }
        let now = (self.clock)();
        let mut state = lock(&self.state);
        if let Some(line) = self.line(&mut state, event, now) {
            let stamped = format!(
                "{} {}\n",
                Timestamp::from_millis(now).clock(),
                one_line(&line)
            );
            state.out.write(stamped.as_bytes());
        }
    }

    fn output(&self, to: Console, chunk: &[u8]) {
        if !self.children.to_stdout(to, chunk) {
            lock(&self.state).out.write(chunk);
        }
    }
}
