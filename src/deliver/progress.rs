//! Progress of a load, for people: a live status line on a terminal, plain
//! timestamped lines in CI logs, or nothing (`--output json` keeps stdout
//! clean and progress goes to stderr either way).

use super::{DeliveryPath, NodeReport, NodeResult};
use crate::time::Timestamp;
use crate::units::bytes;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Instant;

/// Receives a load's progress. Implementations must be cheap: `streaming`
/// is called several times a second.
pub trait Progress: Sync {
    /// A load of `image` into `nodes` starts; `total` is the image's size.
    fn begin(&self, image: &str, nodes: &[String], total: Option<u64>);
    /// What a node holds was read.
    fn inventory(&self, node: &str, blobs: usize, already_present: bool);
    /// Bytes read from the source so far, and sent to each node.
    fn streaming(&self, read: u64, sent: &[(&str, u64)]);
    /// A node is done (loaded, skipped or failed).
    fn node_done(&self, report: &NodeReport);
    /// The image goes by `path`, for `reason` (before `begin`).
    fn path(&self, _image: &str, _path: DeliveryPath, _reason: &str) {}
}

/// Chooses a terminal display when stderr is a terminal, plain lines otherwise.
pub fn for_stderr() -> Box<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Box::new(Terminal::default())
    } else {
        Box::new(Lines::default())
    }
}

/// A transfer's throughput and time left, from the bytes moved since it
/// began: what both the load's and the runner's progress show.
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    total: Option<u64>,
    started: Instant,
}

impl Rate {
    /// A transfer of `total` bytes (when known) starting now.
    pub fn start(total: Option<u64>) -> Rate {
        Rate {
            total,
            started: Instant::now(),
        }
    }

    /// "512.0 MiB of 1.0 GiB, 210.3 MiB/s, ETA 3s" after `done` bytes.
    pub fn describe(&self, done: u64) -> String {
        let seconds = self.started.elapsed().as_secs_f64().max(0.001);
        let per_second = done as f64 / seconds;
        let mut text = match self.total {
            Some(total) => format!("{} of {}", bytes(done), bytes(total)),
            None => bytes(done),
        };
        text.push_str(&format!(", {}/s", bytes(per_second as u64)));
        if let Some(total) = self.total.filter(|&t| t > done && per_second > 0.0) {
            text.push_str(&format!(", ETA {:.0}s", (total - done) as f64 / per_second));
        }
        text
    }
}

struct State {
    image: String,
    rate: Rate,
    /// When the last periodic line was printed (plain lines only).
    last_line: Instant,
}

impl State {
    fn new(image: &str, total: Option<u64>) -> State {
        State {
            image: image.to_string(),
            rate: Rate::start(total),
            last_line: Instant::now(),
        }
    }
}

impl Default for State {
    fn default() -> State {
        State::new("", None)
    }
}

/// What one node's load came to, in one line.
pub fn outcome_line(report: &NodeReport) -> String {
    let what = match (&report.error, report.result) {
        (Some(error), _) => format!("FAILED: {error}"),
        (None, NodeResult::AlreadyPresent) => format!(
            "already there, nothing sent ({:.1}s)",
            report.duration_ms as f64 / 1000.0
        ),
        (None, _) => format!(
            "{} ({} path): {} in {} blobs sent, {} blobs already there, {:.1}s",
            report.result,
            report.path,
            bytes(report.bytes_sent),
            report.blobs_sent,
            report.blobs_skipped,
            report.duration_ms as f64 / 1000.0
        ),
    };
    format!("{} on {}: {what}", report.image, report.node)
}

/// How often plain lines report a load in progress.
const LINE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// "node-a 12.0 MiB, node-b 3.0 MiB"
pub fn sent_list(sent: &[(&str, u64)]) -> String {
    let nodes: Vec<String> = sent
        .iter()
        .map(|(node, n)| format!("{node} {}", bytes(*n)))
        .collect();
    nodes.join(", ")
}

/// Plain lines for logs: one per event, and one every few seconds while
/// bytes flow.
#[derive(Default)]
pub struct Lines {
    state: Mutex<State>,
}

impl Lines {
    fn line(&self, text: &str) {
        let now = Timestamp::now().clock();
        let _ = writeln!(std::io::stderr(), "{now} {text}");
    }
}

impl Progress for Lines {
    fn begin(&self, image: &str, nodes: &[String], total: Option<u64>) {
        let mut state = self.state.lock().unwrap();
        *state = State::new(image, total);
        let size = total
            .map(|t| format!(" ({})", bytes(t)))
            .unwrap_or_default();
        self.line(&format!("loading {image}{size} into {}", nodes.join(", ")));
    }

    fn inventory(&self, node: &str, blobs: usize, already_present: bool) {
        let state = self.state.lock().unwrap();
        let note = if already_present {
            "; the image is already there"
        } else {
            ""
        };
        self.line(&format!(
            "{} on {node}: the node holds {blobs} blobs{note}",
            state.image
        ));
    }

    /// A line every few seconds, so that a CI log shows a slow load moving.
    fn streaming(&self, read: u64, sent: &[(&str, u64)]) {
        let mut state = self.state.lock().unwrap();
        if state.last_line.elapsed() < LINE_INTERVAL {
            return;
        }
        state.last_line = Instant::now();
        self.line(&format!(
            "{}: read {}; sent: {}",
            state.image,
            state.rate.describe(read),
            sent_list(sent)
        ));
    }

    fn node_done(&self, report: &NodeReport) {
        self.line(&outcome_line(report));
    }

    fn path(&self, image: &str, path: DeliveryPath, reason: &str) {
        self.line(&format!("{image}: {path} path ({reason})"));
    }
}

/// A status line redrawn in place on a terminal.
#[derive(Default)]
pub struct Terminal {
    state: Mutex<State>,
}

impl Progress for Terminal {
    fn begin(&self, image: &str, nodes: &[String], total: Option<u64>) {
        let mut state = self.state.lock().unwrap();
        *state = State::new(image, total);
        eprintln!("loading {image} into {}", nodes.join(", "));
    }

    fn inventory(&self, _node: &str, _blobs: usize, _already_present: bool) {}

    fn streaming(&self, read: u64, sent: &[(&str, u64)]) {
        let state = self.state.lock().unwrap();
        // \r and clear-to-end-of-line: redraw the one status line.
        eprint!(
            "\r\x1b[K  read {}; sent: {}",
            state.rate.describe(read),
            sent_list(sent)
        );
    }

    fn node_done(&self, report: &NodeReport) {
        eprintln!("\r\x1b[K{}", outcome_line(report));
    }

    fn path(&self, image: &str, path: DeliveryPath, reason: &str) {
        eprintln!("{image}: {path} path ({reason})");
    }
}

/// Nothing at all (for library users and tests).
pub struct Silent;

impl Progress for Silent {
    fn begin(&self, _: &str, _: &[String], _: Option<u64>) {}
    fn inventory(&self, _: &str, _: usize, _: bool) {}
    fn streaming(&self, _: u64, _: &[(&str, u64)]) {}
    fn node_done(&self, _: &NodeReport) {}
}
