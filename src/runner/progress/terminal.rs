//! The terminal display: a frame of one line per active step (builds that
//! run together show one each) with a spinner and the time taken so far,
//! a delivery's bytes, rate and ETA on its step's line, redrawn in place
//! ten times a second. What is done (a step's end, a node's load, a note,
//! a child's output) is printed above the frame and stays.

use super::{ChildOutput, Reporter, ended, noted};
use crate::deliver::progress::{Progress, Rate, outcome_line, sent_list};
use crate::deliver::{DeliveryPath, NodeReport};
use crate::journal::Outcome;
use crate::process::{Echo, Stream};
use std::io::Write;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the frame is redrawn.
const TICK: Duration = Duration::from_millis(100);

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// The lines under redraw, and what is on the screen of them.
pub struct Frame<W> {
    out: W,
    /// Columns of the terminal: a frame line longer than that would wrap,
    /// and the redraw would then erase one screen line too few.
    width: usize,
    /// In the order they started.
    active: Vec<Active>,
    spin: usize,
    /// Frame lines on the screen, above the cursor.
    drawn: usize,
    /// A child's output ended mid-line: no frame until the line is done,
    /// or it would be cut in two.
    mid_line: bool,
}

struct Active {
    step: String,
    started: Instant,
    /// What the step is at (a delivery's bytes), if it says.
    detail: String,
}

impl<W: Write> Frame<W> {
    pub fn new(out: W, width: usize) -> Frame<W> {
        Frame {
            out,
            width,
            active: Vec::new(),
            spin: 0,
            drawn: 0,
            mid_line: false,
        }
    }

    pub fn start(&mut self, step: &str) {
        self.active.push(Active {
            step: step.to_string(),
            started: Instant::now(),
            detail: String::new(),
        });
        self.refresh();
    }

    /// Takes `step` off the frame, printing `line` in its place.
    pub fn finish(&mut self, step: &str, line: &str) {
        self.active.retain(|a| a.step != step);
        self.print(line);
    }

    /// Shown on `step`'s line from the next redraw on.
    pub fn detail(&mut self, step: &str, detail: String) {
        if let Some(active) = self.active.iter_mut().find(|a| a.step == step) {
            active.detail = detail;
        }
    }

    /// A line above the frame, to stay (on a line of its own, also after
    /// a child's unfinished one).
    pub fn print(&mut self, line: &str) {
        let newline = if self.mid_line { "\n" } else { "" };
        self.redraw(|out| {
            let _ = writeln!(out, "{newline}{line}");
            true
        });
    }

    /// A child's output above the frame; `write` puts `chunk` where it
    /// goes (this writer or another stream on the same terminal).
    pub fn output(&mut self, chunk: &[u8], write: impl FnOnce(&mut W, &[u8])) {
        self.redraw(|out| {
            write(out, chunk);
            chunk.ends_with(b"\n")
        });
    }

    /// The spinner's next turn, in a terminal `width` columns wide.
    pub fn tick(&mut self, width: usize) {
        self.spin = self.spin.wrapping_add(1);
        self.width = width;
        self.refresh();
    }

    /// Draws the frame anew, unless a child's line is unfinished.
    fn refresh(&mut self) {
        let at_line_start = !self.mid_line;
        self.redraw(|_| at_line_start);
    }

    /// The frame as it would be drawn now: one line per active step.
    pub fn lines(&self) -> Vec<String> {
        let spinner = SPINNER[self.spin % SPINNER.len()];
        self.active
            .iter()
            .map(|active| {
                let mut line = format!(
                    "{spinner} {} {}s",
                    active.step,
                    active.started.elapsed().as_secs()
                );
                if !active.detail.is_empty() {
                    line.push_str("  ");
                    line.push_str(&active.detail);
                }
                line.chars().take(self.width.saturating_sub(1)).collect()
            })
            .collect()
    }

    /// Erases the frame, lets `between` write (it returns whether the
    /// cursor is at the start of a line after), then draws the frame anew,
    /// all in one write so that the terminal never shows half a frame.
    fn redraw(&mut self, between: impl FnOnce(&mut W) -> bool) {
        let mut erase = String::new();
        if self.drawn > 0 {
            // Up to the frame's first line, and clear to the end of the screen.
            erase = format!("\x1b[{}A\x1b[J", self.drawn);
        }
        let _ = self.out.write_all(erase.as_bytes());
        self.drawn = 0;
        self.mid_line = !between(&mut self.out);
        if !self.mid_line {
            let lines = self.lines();
            let mut text = String::new();
            for line in &lines {
                text.push_str(line);
                text.push('\n');
            }
            let _ = self.out.write_all(text.as_bytes());
            self.drawn = lines.len();
        }
        let _ = self.out.flush();
    }

    /// Erases the frame for good.
    fn clear(&mut self) {
        self.active.clear();
        self.redraw(|_| true);
    }
}

/// The display on this process's stderr, redrawn by a thread of its own
/// until dropped.
pub struct Terminal {
    frame: Arc<Mutex<Frame<std::io::Stderr>>>,
    children: ChildOutput,
    /// Dropped to stop the ticker.
    stop: Option<mpsc::Sender<()>>,
    ticker: Option<JoinHandle<()>>,
}

impl Terminal {
    pub fn start(children: ChildOutput) -> Terminal {
        let frame = Arc::new(Mutex::new(Frame::new(std::io::stderr(), stderr_width())));
        let (stop, stopped) = mpsc::channel::<()>();
        let ticking = frame.clone();
        let ticker = std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(TICK) {
                lock(&ticking).tick(stderr_width());
            }
        });
        Terminal {
            frame,
            children,
            stop: Some(stop),
            ticker: Some(ticker),
        }
    }

    fn frame(&self) -> MutexGuard<'_, Frame<std::io::Stderr>> {
        lock(&self.frame)
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
        }
        self.frame().clear();
    }
}

impl Echo for Terminal {
    fn output(&self, stream: Stream, chunk: &[u8]) {
        let children = self.children;
        self.frame().output(chunk, |err, chunk| {
            if !children.to_stdout(stream, chunk) {
                let _ = err.write_all(chunk);
            }
        });
    }
}

impl Reporter for Terminal {
    fn step_started(&self, step: &str) {
        self.frame().start(step);
    }

    fn step_finished(&self, step: &str, outcome: Outcome, took: Duration, error: Option<&str>) {
        let mark = match outcome {
            Outcome::Succeeded => '✓',
            Outcome::Failed => '✗',
            Outcome::Skipped | Outcome::Interrupted => '-',
        };
        let line = format!("{mark} {}", ended(step, outcome, took, error));
        self.frame().finish(step, &line);
    }

    fn note(&self, step: Option<&str>, message: &str) {
        self.frame().print(&format!("  {}", noted(step, message)));
    }

    fn delivery<'a>(&'a self, step: &'a str) -> Box<dyn Progress + 'a> {
        Box::new(Delivery {
            terminal: self,
            step,
            rate: Mutex::new(Rate::start(None)),
        })
    }
}

/// A load shown on its step's line, each node's outcome above the frame.
struct Delivery<'a> {
    terminal: &'a Terminal,
    step: &'a str,
    rate: Mutex<Rate>,
}

impl Progress for Delivery<'_> {
    fn begin(&self, _image: &str, nodes: &[String], total: Option<u64>) {
        *lock(&self.rate) = Rate::start(total);
        self.terminal
            .frame()
            .detail(self.step, format!("into {}", nodes.join(", ")));
    }

    fn inventory(&self, _node: &str, _blobs: usize, _already_present: bool) {}

    fn streaming(&self, read: u64, sent: &[(&str, u64)]) {
        let rate = lock(&self.rate).describe(read);
        self.terminal
            .frame()
            .detail(self.step, format!("{rate}; sent: {}", sent_list(sent)));
    }

    fn node_done(&self, report: &NodeReport) {
        self.terminal
            .frame()
            .print(&format!("  {}", outcome_line(report)));
    }

    fn path(&self, image: &str, path: DeliveryPath, reason: &str) {
        self.terminal
            .frame()
            .print(&format!("  {image}: {path} path ({reason})"));
    }
}

/// A display that panicked mid-draw is still a display.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The screen lines a sequence of frame writes leaves, interpreting
    /// the two escapes the frame uses (cursor up N, clear to the end).
    fn screen(bytes: &[u8]) -> Vec<String> {
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let mut lines: Vec<String> = vec![String::new()];
        let mut rest = text.as_str();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("\x1b[") {
                let end = after.find(['A', 'J']).unwrap();
                let (arg, letter) = (&after[..end], &after[end..=end]);
                if letter == "A" {
                    let up: usize = arg.parse().unwrap();
                    lines.truncate(lines.len() - up);
                    lines.last_mut().unwrap().clear();
                }
                rest = &after[end + 1..];
            } else {
                let c = rest.chars().next().unwrap();
                if c == '\n' {
                    lines.push(String::new());
                } else {
                    lines.last_mut().unwrap().push(c);
                }
                rest = &rest[c.len_utf8()..];
            }
        }
        lines.pop_if(|last| last.is_empty());
        lines
    }

    #[test]
    fn the_frame_has_one_line_per_active_step_and_finished_ones_stay_above() {
        let mut frame = Frame::new(Vec::new(), 80);
        frame.start("build/app:1");
        frame.start("build/db:1");
        frame.tick(80);
        let lines = frame.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains("build/app:1") && lines[0].ends_with(" 0s"));
        assert!(lines[1].contains("build/db:1"));
        assert_eq!(screen(&frame.out), lines, "the screen shows the frame");

        frame.finish("build/app:1", "✓ build/app:1 succeeded (1.0 s)");
        frame.start("deliver/app:1");
        frame.detail("deliver/app:1", "10.0 MiB of 20.0 MiB, ETA 1s".to_string());
        frame.tick(80);
        let shown = screen(&frame.out);
        assert_eq!(shown[0], "✓ build/app:1 succeeded (1.0 s)", "{shown:?}");
        assert_eq!(shown.len(), 3, "{shown:?}");
        assert!(shown[1].contains("build/db:1"), "{shown:?}");
        assert!(
            shown[2].contains("deliver/app:1")
                && shown[2].ends_with("10.0 MiB of 20.0 MiB, ETA 1s"),
            "{shown:?}"
        );
        // The spinner turns between ticks.
        assert_ne!(shown[1].chars().next(), lines[1].chars().next());

        frame.finish("build/db:1", "✓ build/db:1 succeeded (2.0 s)");
        frame.finish("deliver/app:1", "✓ deliver/app:1 succeeded (1.0 s)");
        assert!(frame.lines().is_empty());
        assert_eq!(
            screen(&frame.out),
            [
                "✓ build/app:1 succeeded (1.0 s)",
                "✓ build/db:1 succeeded (2.0 s)",
                "✓ deliver/app:1 succeeded (1.0 s)"
            ]
        );
    }

    #[test]
    fn a_childs_unfinished_line_is_not_cut_by_the_frame() {
        let mut frame = Frame::new(Vec::new(), 80);
        frame.start("test");
        frame.output(b"ok 1\nrunning ", |out, chunk| out.extend_from_slice(chunk));
        frame.tick(80);
        frame.output(b"case 2\n", |out, chunk| out.extend_from_slice(chunk));
        let shown = screen(&frame.out);
        assert_eq!(shown.len(), 3, "{shown:?}");
        assert_eq!(shown[..2], ["ok 1", "running case 2"]);
        assert!(shown[2].contains("test"), "{shown:?}");
    }

    #[test]
    fn frame_lines_fit_the_terminal_so_that_they_never_wrap() {
        let mut frame = Frame::new(Vec::new(), 20);
        frame.start("deliver/a-very-long-image-name:1");
        assert!(frame.lines().iter().all(|l| l.chars().count() == 19));
        frame.clear();
        assert!(screen(&frame.out).is_empty());
    }
}
