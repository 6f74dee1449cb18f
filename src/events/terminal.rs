//! The terminal renderer: a frame of one line per active step (builds that
//! run together show one each; a `load` or `push` outside a run shows one
//! per image) with a spinner and the time taken so far, a transfer's bytes,
//! rate and ETA on its line, redrawn in place ten times a second. What is
//! done (a step's end, a node's load, a note, a child's output) is printed
//! above the frame and stays.
//!
//! Everything fits the terminal's width: frame lines are shortened (a line
//! that wrapped would make the redraw erase one screen line too few), lines
//! above the frame are wrapped at spaces with an indent.
//!
//! Written by hand rather than with indicatif's `MultiProgress`: the frame
//! has to interleave children's raw output (a test's, possibly a line
//! unfinished) with its redraws, which indicatif's line-based `println`
//! cannot do without cutting a child's line in two.

use super::plain::{ChildOutput, Clock, Output, system_clock};
use super::text::{self, Rate, one_line, shorten, wrap};
use super::{Console, Event, Sink, lock};
use crate::journal::Outcome;
use std::collections::HashMap;
use std::io::Write;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the frame is redrawn.
const TICK: Duration = Duration::from_millis(100);

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// Indent of a printed line's continuation lines, and of a note.
const INDENT: usize = 4;

/// The lines under redraw, and what is on the screen of them.
pub struct Frame<W> {
    out: Output<W>,
    /// Columns of the terminal.
    width: usize,
    /// In the order they started.
    active: Vec<Active>,
    spin: usize,
    /// Frame lines on the screen, above the cursor.
    drawn: usize,
    /// A child's output ended mid-line: no frame until the line is done,
    /// or it would be cut in two.
    mid_line: bool,
    /// The clock, in milliseconds, as of the last call.
    now_ms: u64,
}

struct Active {
    key: String,
    started_ms: u64,
    /// What the step is at (a transfer's bytes), if it says.
    detail: String,
}

impl<W: Write> Frame<W> {
    pub fn new(out: W, width: usize) -> Frame<W> {
        Frame {
            out: Output::new(out),
            width,
            active: Vec::new(),
            spin: 0,
            drawn: 0,
            mid_line: false,
            now_ms: 0,
        }
    }

    /// Adds a line for `key`, unless it has one.
    pub fn start(&mut self, key: &str) {
        if self.active.iter().any(|a| a.key == key) {
            return;
        }
        self.active.push(Active {
            key: key.to_string(),
            started_ms: self.now_ms,
            detail: String::new(),
        });
        self.refresh();
    }

    /// Takes `key` off the frame, printing `line` (if any) in its place.
    pub fn finish(&mut self, key: &str, line: Option<&str>) {
        self.active.retain(|a| a.key != key);
        match line {
            Some(line) => self.print(line),
            None => self.refresh(),
        }
    }

    /// Shown on `key`'s line from the next redraw on.
    pub fn detail(&mut self, key: &str, detail: String) {
        if let Some(active) = self.active.iter_mut().find(|a| a.key == key) {
            active.detail = detail;
        }
    }

    /// A line above the frame, to stay (on a line of its own, also after
    /// a child's unfinished one), wrapped to the terminal's width.
    pub fn print(&mut self, line: &str) {
        let newline = if self.mid_line { "\n" } else { "" };
        let mut text = newline.to_string();
        // Escape sequences (a tool's colours) would count as columns.
        for part in line.lines().map(one_line) {
            for part in wrap(&part, self.width.saturating_sub(1), INDENT) {
                text.push_str(part.trim_end());
                text.push('\n');
            }
        }
        self.redraw(|out| {
            out.write(text.as_bytes());
            true
        });
    }

    /// A child's output above the frame; `write` puts `chunk` where it
    /// goes (this writer or another stream on the same terminal).
    pub fn output(&mut self, chunk: &[u8], write: impl FnOnce(&mut Output<W>, &[u8])) {
        self.redraw(|out| {
            write(out, chunk);
            chunk.ends_with(b"\n")
        });
    }

    /// The spinner's next turn, at `now_ms`, in a terminal `width` wide.
    pub fn tick(&mut self, now_ms: u64, width: usize) {
        self.spin = self.spin.wrapping_add(1);
        self.now_ms = now_ms;
        self.width = width;
        self.refresh();
    }

    /// Draws the frame anew, unless a child's line is unfinished.
    fn refresh(&mut self) {
        let at_line_start = !self.mid_line;
        self.redraw(|_| at_line_start);
    }

    /// The frame as it would be drawn now: one line per active step, each
    /// shorter than the terminal is wide.
    pub fn lines(&self) -> Vec<String> {
        let spinner = SPINNER[self.spin % SPINNER.len()];
        self.active
            .iter()
            .map(|active| {
                let mut line = format!(
                    "{spinner} {} {}s",
                    active.key,
                    self.now_ms.saturating_sub(active.started_ms) / 1000
                );
                if !active.detail.is_empty() {
                    line.push_str("  ");
                    line.push_str(&active.detail);
                }
                shorten(&line, self.width.saturating_sub(1))
            })
            .collect()
    }

    /// Erases the frame, lets `between` write (it returns whether the
    /// cursor is at the start of a line after), then draws the frame anew,
    /// all before one flush so that the terminal never shows half a frame.
    fn redraw(&mut self, between: impl FnOnce(&mut Output<W>) -> bool) {
        if self.drawn > 0 {
            // Up to the frame's first line, cleared, and from the line
            // under it to the end of the screen. Not one clear from the
            // frame's first line: when that is the screen's top left, a
            // clear to the end of the screen is a whole-screen clear, which
            // terminals such as tmux keep in the scrollback (`scroll-on-clear`).
            let erase = format!("\x1b[{}A\x1b[2K\x1b[1B\x1b[J\x1b[1A", self.drawn);
            self.out.write(erase.as_bytes());
        }
        self.drawn = 0;
        self.mid_line = !between(&mut self.out);
        if !self.mid_line {
            let lines = self.lines();
            let mut text = String::new();
            for line in &lines {
                text.push_str(line);
                text.push('\n');
            }
            self.out.write(text.as_bytes());
            self.drawn = lines.len();
        }
    }

    /// What was written (for tests).
    pub fn out_ref(&self) -> &W {
        self.out.get_ref()
    }

    pub fn into_out(self) -> W {
        self.out.into_inner()
    }

    /// Erases the frame for good.
    fn clear(&mut self) {
        self.active.clear();
        self.redraw(|_| true);
    }
}

/// The frame and what the renderer tracks of the events: each transfer's
/// rate, by its frame line.
pub struct Screen<W> {
    pub frame: Frame<W>,
    rates: HashMap<String, Rate>,
}

impl<W: Write> Screen<W> {
    pub fn new(out: W, width: usize) -> Screen<W> {
        Screen {
            frame: Frame::new(out, width),
            rates: HashMap::new(),
        }
    }

    /// Shows `event` at `now_ms`.
    pub fn event(&mut self, event: &Event<'_>, now_ms: u64) {
        self.frame.now_ms = now_ms;
        // A transfer outside a step gets a line of its own.
        let key = |step: Option<&str>, verb: &str, image: &str| {
            step.map_or_else(|| format!("{verb} {image}"), str::to_string)
        };
        match *event {
            Event::StepStarted { step } => self.frame.start(step),
            Event::StepFinished {
                step,
                outcome,
                duration_ms,
                error,
            } => {
                let mark = match outcome {
                    Outcome::Succeeded => '✓',
                    Outcome::Failed => '✗',
                    Outcome::Skipped | Outcome::Interrupted => '-',
                };
                let line = text::step_finished(step, outcome, duration_ms, error);
                self.frame.finish(step, Some(&format!("{mark} {line}")));
            }
            Event::LoadStarted {
                step,
                image,
                nodes,
                total,
            } => {
                let key = key(step, "load", image);
                self.rates.insert(key.clone(), Rate::start(total, now_ms));
                self.frame.start(&key);
                self.frame
                    .detail(&key, format!("into {}", nodes.join(", ")));
            }
            Event::LoadStreaming {
                step,
                image,
                read,
                sent,
            } => {
                let key = key(step, "load", image);
                let rate = self.rate(&key, now_ms).describe(read, now_ms);
                self.frame.start(&key);
                let detail = format!("{rate}; sent: {}", text::sent_list(sent));
                self.frame.detail(&key, detail);
            }
            Event::NodeLoaded { step, report } => {
                let line = format!("  {}", text::node_loaded(report));
                match step {
                    Some(_) => self.frame.print(&line),
                    // Back on the next bytes, if other nodes still load.
                    None => self
                        .frame
                        .finish(&key(None, "load", &report.image), Some(&line)),
                }
            }
            Event::PushStarted {
                step,
                image,
                destination,
                ..
            } => {
                let key = key(step, "push", image);
                self.rates.insert(key.clone(), Rate::start(None, now_ms));
                self.frame.start(&key);
                self.frame.detail(&key, format!("to {destination}"));
            }
            Event::PushStreaming {
                step,
                image,
                read,
                uploaded,
            } => {
                let key = key(step, "push", image);
                let rate = self.rate(&key, now_ms).describe(uploaded, now_ms);
                self.frame.start(&key);
                let detail = format!("read {}, uploaded {rate}", crate::units::bytes(read));
                self.frame.detail(&key, detail);
            }
            Event::Pushed { step, report, .. } => match step {
                Some(_) => self.frame.print(&format!("  {}", text::pushed(report))),
                None => {
                    let line = format!("✓ {}", text::pushed(report));
                    self.frame
                        .finish(&key(None, "push", &report.image), Some(&line));
                }
            },
            Event::NodeInventory { .. } => {}
            _ => {
                if let Some(line) = text::described(event) {
                    self.frame.print(&format!("  {line}"));
                }
            }
        }
    }

    fn rate(&mut self, key: &str, now_ms: u64) -> Rate {
        *self
            .rates
            .entry(key.to_string())
            .or_insert_with(|| Rate::start(None, now_ms))
    }
}

/// The screen of the [`Terminal`] drawing on stderr now, if one is: what
/// else writes to stderr ([`super::StderrLines`]) prints above its frame.
static DRAWING: Mutex<Option<Weak<Mutex<Screen<std::io::Stderr>>>>> = Mutex::new(None);

/// Prints `line` above the frame of the terminal renderer drawing now;
/// false when none is.
pub fn print_above_frame(line: &str) -> bool {
    let screen = lock(&DRAWING).as_ref().and_then(Weak::upgrade);
    match screen {
        Some(screen) => {
            lock(&screen).frame.print(line);
            true
        }
        None => false,
    }
}

/// The renderer on this process's stderr, redrawn by a thread of its own
/// until dropped.
pub struct Terminal {
    screen: Arc<Mutex<Screen<std::io::Stderr>>>,
    children: ChildOutput,
    clock: Clock,
    /// Dropped to stop the ticker.
    stop: Option<mpsc::Sender<()>>,
    ticker: Option<JoinHandle<()>>,
}

impl Terminal {
    pub fn start(children: ChildOutput) -> Terminal {
        let screen = Arc::new(Mutex::new(Screen::new(std::io::stderr(), stderr_width())));
        *lock(&DRAWING) = Some(Arc::downgrade(&screen));
        let clock = system_clock();
        let (stop, stopped) = mpsc::channel::<()>();
        let (ticking, ticker_clock) = (screen.clone(), clock.clone());
        let ticker = std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(TICK) {
                lock(&ticking).frame.tick(ticker_clock(), stderr_width());
            }
        });
        Terminal {
            screen,
            children,
            clock,
            stop: Some(stop),
            ticker: Some(ticker),
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        lock(&DRAWING).take();
        drop(self.stop.take());
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
        }
        lock(&self.screen).frame.clear();
    }
}

impl Sink for Terminal {
    fn event(&self, event: &Event<'_>) {
        let now = (self.clock)();
        lock(&self.screen).event(event, now);
    }

    fn output(&self, to: Console, chunk: &[u8]) {
        let children = self.children;
        lock(&self.screen).frame.output(chunk, |err, chunk| {
            if !children.to_stdout(to, chunk) {
                err.write(chunk);
            }
        });
    }
}

/// Columns of the terminal on stderr (80 when it does not say).
fn stderr_width() -> usize {
    // SAFETY: TIOCGWINSZ writes a `winsize` into the one passed, which
    // lives for the call; on a descriptor that is not a terminal it fails
    // and writes nothing.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let read = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) };
    if read == 0 && size.ws_col > 0 {
        usize::from(size.ws_col)
    } else {
        80
    }
}
