//! JSON lines (`--progress json`): one object per event, `{"time":
//! "2026-…Z", "event": "step-started", …}`, for a program that follows a
//! run as it goes. Bytes moving are written at most once a second per
//! image. Children's output is passed through as it comes, as the other
//! renderers do.

use super::plain::{ChildOutput, Clock, Output, system_clock, writer_of};
use super::{Console, Event, Sink, lock};
use crate::time::Timestamp;
use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;

const STREAMING_INTERVAL_MS: u64 = 1000;

pub struct JsonLines<W> {
    state: Mutex<(Output<W>, HashMap<String, u64>)>,
    children: ChildOutput,
    clock: Clock,
}

#[derive(serde::Serialize)]
struct Line<'a> {
    time: Timestamp,
    #[serde(flatten)]
    event: &'a Event<'a>,
}

impl<W: Write + Send> JsonLines<W> {
    pub fn new(out: W, children: ChildOutput) -> JsonLines<W> {
        JsonLines::with_clock(out, children, system_clock())
    }

    pub fn with_clock(out: W, children: ChildOutput, clock: Clock) -> JsonLines<W> {
        JsonLines {
            state: Mutex::new((Output::new(out), HashMap::new())),
            children,
            clock,
        }
    }

    /// The writer, for tests that read what was written.
    pub fn into_inner(self) -> W {
        writer_of(self.state, |state| state.0)
    }
}

impl<W: Write + Send> Sink for JsonLines<W> {
    fn event(&self, event: &Event<'_>) {
        // The journal's own facts are the journal's (`loadmaster report`).
        if event.is_journal_only() {
            return;
        }
        let now = (self.clock)();
        let mut state = lock(&self.state);
        if let Event::LoadStreaming { image, .. } | Event::PushStreaming { image, .. } = event {
            let last = state.1.entry(image.to_string()).or_insert(0);
            if now.saturating_sub(*last) < STREAMING_INTERVAL_MS {
                return;
            }
            *last = now;
        }
        let line = Line {
            time: Timestamp::from_millis(now),
            event,
        };
        if let Ok(mut text) = serde_json::to_string(&line) {
            text.push('\n');
            state.0.write(text.as_bytes());
        }
    }

    fn output(&self, to: Console, chunk: &[u8]) {
        if !self.children.to_stdout(to, chunk) {
            lock(&self.state).0.write(chunk);
        }
    }
}
