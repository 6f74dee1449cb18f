//! Progress of a push, for people, on stderr: what each blob needed, bytes
//! read and uploaded while the engine streams, every retry, and the result;
//! plain timestamped lines in logs, a redrawn status line on a terminal,
//! as `load` does ([`crate::deliver::progress`]).

use super::PushReport;
use super::retry::Retry;
use crate::archive::Digest;
use crate::time::Timestamp;
use crate::units::bytes;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a push found a blob needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobStep<'a> {
    /// The repository has it: nothing sent.
    Present,
    /// Linked from another repository of the registry: nothing sent.
    Mounted { from: &'a str },
    /// Sent, `bytes` of it.
    Uploaded { bytes: u64 },
}

/// Receives a push's progress. `streaming` is called several times a
/// second, so implementations must be cheap.
pub trait PushProgress: Sync {
    /// A push of `image` to `destination` (`host/repo:tag`) starts.
    fn begin(&self, image: &str, destination: &str, size: Option<u64>);
    fn blob(&self, digest: &Digest, step: BlobStep<'_>);
    /// The engine's `save` starts, because `missing` blobs must be sent.
    fn reading(&self, missing: usize);
    /// Bytes read from the source and uploaded so far.
    fn streaming(&self, read: u64, uploaded: u64);
    fn retry(&self, retry: &Retry);
    fn done(&self, report: &PushReport);
}

/// A terminal display when stderr is a terminal, plain lines otherwise.
pub fn for_stderr() -> Box<dyn PushProgress> {
    Box::new(Lines {
        state: Mutex::default(),
        terminal: std::io::stderr().is_terminal(),
    })
}

/// Lines on stderr; on a terminal, `streaming` redraws one status line
/// instead of printing one every few seconds.
pub struct Lines {
    state: Mutex<State>,
    terminal: bool,
}

#[derive(Default)]
struct State {
    image: String,
    started: Option<Instant>,
    last_line: Option<Instant>,
}

/// How often plain lines report bytes moving.
const LINE_INTERVAL: Duration = Duration::from_secs(5);

impl Lines {
    fn line(&self, text: &str) {
        if self.terminal {
            eprintln!("\r\x1b[K{text}");
        } else {
            eprintln!("{} {text}", Timestamp::now().clock());
        }
    }
}

impl PushProgress for Lines {
    fn begin(&self, image: &str, destination: &str, size: Option<u64>) {
        *self.state.lock().unwrap() = State {
            image: image.to_string(),
            started: Some(Instant::now()),
            last_line: Some(Instant::now()),
        };
        let size = size.map(|s| format!(" ({})", bytes(s))).unwrap_or_default();
        self.line(&format!("pushing {image}{size} to {destination}"));
    }

    fn blob(&self, digest: &Digest, step: BlobStep<'_>) {
        let image = self.state.lock().unwrap().image.clone();
        let what = match step {
            BlobStep::Present => "already in the registry".to_string(),
            BlobStep::Mounted { from } => format!("mounted from {from}"),
            BlobStep::Uploaded { bytes: n } => format!("uploaded, {}", bytes(n)),
        };
        self.line(&format!("{image}: blob {} {what}", short(digest)));
    }

    fn reading(&self, missing: usize) {
        let image = self.state.lock().unwrap().image.clone();
        self.line(&format!(
            "{image}: reading the image from the engine for {missing} missing blob(s)"
        ));
    }

    fn streaming(&self, read: u64, uploaded: u64) {
        let mut state = self.state.lock().unwrap();
        let seconds = state
            .started
            .map_or(0.0, |s| s.elapsed().as_secs_f64())
            .max(0.001);
        let text = format!(
            "{}: read {}, uploaded {}, {}/s",
            state.image,
            bytes(read),
            bytes(uploaded),
            bytes((uploaded as f64 / seconds) as u64)
        );
        if self.terminal {
            eprint!("\r\x1b[K  {text}");
        } else if state
            .last_line
            .is_none_or(|last| last.elapsed() >= LINE_INTERVAL)
        {
            state.last_line = Some(Instant::now());
            drop(state);
            self.line(&text);
        }
    }

    fn retry(&self, retry: &Retry) {
        self.line(&format!("retry: {retry}"));
    }

    fn done(&self, report: &PushReport) {
        self.line(&format!(
            "pushed {} as {}@{}: {} blob(s) uploaded ({}), {} already there, {} mounted, {} retries, {:.1}s",
            report.image,
            report.pushed,
            report.digest,
            report.blobs_uploaded,
            bytes(report.bytes_uploaded),
            report.blobs_skipped,
            report.blobs_mounted,
            report.retries.len(),
            report.duration_ms as f64 / 1000.0
        ));
    }
}

/// Nothing at all (for library callers and tests).
pub struct Silent;

impl PushProgress for Silent {
    fn begin(&self, _: &str, _: &str, _: Option<u64>) {}
    fn blob(&self, _: &Digest, _: BlobStep<'_>) {}
    fn reading(&self, _: usize) {}
    fn streaming(&self, _: u64, _: u64) {}
    fn retry(&self, _: &Retry) {}
    fn done(&self, _: &PushReport) {}
}

/// `sha256:0123456789ab`: enough to tell blobs apart in a log.
fn short(digest: &Digest) -> String {
    format!("sha256:{}", &digest.hex()[..12])
}
