//! Child processes: bounded waits, captured output, streamed stdin and
//! stdout, and nothing that can hang.
//!
//! Every command loadmaster starts (engine CLIs, their `exec`s into nodes,
//! probes; a run's builds, kind, kubectl and test through [`supervise`])
//! goes through here, so that every child:
//!
//! - runs in a process group of its own, and a deadline kills the group,
//!   not only the child (`sh -c` and what it started go too);
//! - is waited for only so long on its pipes: a grandchild that escaped the
//!   group and holds stdout open loses its output, never blocks us;
//! - when it streams (an image `save` read, an `exec` fed), is watched
//!   ([`watchdog`]): a stream that stalls past the limit, or a SIGINT or
//!   SIGTERM to loadmaster ([`signal`]), stops it at once;
//! - keeps the tail of its stderr for error messages, and never buffers an
//!   image-sized stream in memory;
//! - is a tracing span ([`trace`]): its argv (redacted), how long it took
//!   and how it ended.

pub mod signal;
mod supervise;
pub mod trace;
pub mod watchdog;

pub use supervise::{Echo, Exit, OUTPUT_TAIL, Ran, Spec, Stream, on_path, supervise};
pub use watchdog::{DEFAULT_STALL_LIMIT, Stopped, set_stall_limit, stall_limit, stall_words};

use std::io::{self, BufRead, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use trace::Traced;
use watchdog::Watch;

/// How much of a command's stdout or stderr is kept. Engine answers we parse
/// (inspect, info) are far smaller; anything bigger is a stream and never
/// captured. The tail is kept because errors come last.
pub const CAPTURE_LIMIT: usize = 4 << 20;

/// Buffer size for copying streams between processes. Memory use of a
/// transfer is a small multiple of this, whatever the image size.
pub const STREAM_BUFFER: usize = 256 << 10;

/// How long output is still collected once a command has ended: what a
/// grandchild outside its group writes later is not waited for.
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// What a finished command produced.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// True when the command was killed because it ran past its timeout.
    pub timed_out: bool,
    /// Set when the watchdog stopped the command (its stream stalled, or
    /// loadmaster was interrupted).
    pub stopped: Option<Stopped>,
}

impl Finished {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_string()
    }
}

/// Runs `command` to completion with no stdin, capturing its output, and kills
/// its process group if it runs longer than `timeout`.
pub fn run(command: &mut Command, timeout: Duration) -> io::Result<Finished> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let (mut child, traced) = spawn_traced(command)?;
    let stdout = capture(child.stdout.take());
    let stderr = capture(child.stderr.take());
    let (status, timed_out) = wait_with_timeout(&mut child, timeout)?;
    traced.finished(status, timed_out, None);
    let by = Instant::now() + PIPE_GRACE;
    Ok(Finished {
        status,
        stdout: stdout.collect(by),
        stderr: stderr.collect(by),
        timed_out,
        stopped: None,
    })
}

/// A running command whose stdin we feed; stdout and stderr are captured
/// (bounded) in the background.
pub struct Feeding {
    child: Child,
    stdin: Option<Stdin>,
    stdout: Capture,
    stderr: Capture,
    watch: Arc<Watch>,
    traced: Traced,
}

/// The stdin of a [`Feeding`] command: each write is watched, so that a
/// command that stops reading is stopped.
pub struct Stdin {
    pipe: ChildStdin,
    watch: Arc<Watch>,
}

impl Write for Stdin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.watch.waiting(|| self.pipe.write(buf));
        stopped_error(&self.watch, "took no input").map_or(written, Err)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.pipe.flush()
    }
}

impl Feeding {
    pub fn spawn(command: &mut Command) -> io::Result<Feeding> {
        Feeding::spawn_watched(command, stall_limit())
    }

    /// [`Feeding::spawn`] with a stall limit of its own.
    pub fn spawn_watched(command: &mut Command, limit: Duration) -> io::Result<Feeding> {
        let (mut child, traced) = spawn_piped(command)?;
        let stdout = capture(child.stdout.take());
        let stderr = capture(child.stderr.take());
        Ok(Feeding::watched((child, traced), stdout, stderr, limit))
    }

    fn watched(
        (mut child, traced): (Child, Traced),
        stdout: Capture,
        stderr: Capture,
        limit: Duration,
    ) -> Feeding {
        let watch = Watch::start(child.id() as libc::pid_t, limit);
        let stdin = child.stdin.take().map(|pipe| Stdin {
            pipe,
            watch: watch.clone(),
        });
        Feeding {
            child,
            stdin,
            stdout,
            stderr,
            watch,
            traced,
        }
    }

    /// Spawns a command that first answers on stdout, with text ended by a
    /// line `marker`, and only then reads its stdin (a question asked and
    /// an action taken in one process, which saves an engine `exec`).
    /// Waits up to `timeout` for the answer; whatever follows it on stdout
    /// is captured as with [`Feeding::spawn`].
    pub fn spawn_answering(
        command: &mut Command,
        marker: &'static str,
        timeout: Duration,
    ) -> io::Result<(Feeding, Answer)> {
        let (mut child, traced) = spawn_piped(command)?;
        let stderr = capture(child.stderr.take());
        let (answered, answer) = sync_channel(1);
        let stdout = Capture::start(child.stdout.take(), move |stdout, tail| {
            let mut stdout = io::BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                match stdout.read_until(b'\n', &mut line) {
                    // Ended without the marker: what it printed is its
                    // output, for the error.
                    Ok(0) | Err(_) => return,
                    Ok(_) if line.strip_suffix(b"\n") == Some(marker.as_bytes()) => break,
                    Ok(_) => keep_tail(tail, &line, CAPTURE_LIMIT),
                }
            }
            let text = std::mem::take(&mut *tail.lock().unwrap_or_else(|p| p.into_inner()));
            let _ = answered.send(text);
            read_tail(&mut stdout, tail, CAPTURE_LIMIT);
        });
        let answer = match answer.recv_timeout(timeout) {
            Ok(text) => Answer::Given(text),
            Err(RecvTimeoutError::Disconnected) => Answer::Ended,
            Err(RecvTimeoutError::Timeout) => Answer::TimedOut,
        };
        Ok((
            Feeding::watched((child, traced), stdout, stderr, stall_limit()),
            answer,
        ))
    }

    /// The command's stdin. Writing fails with `BrokenPipe` once the command
    /// has exited; call [`Feeding::finish`] to learn why.
    pub fn stdin(&mut self) -> &mut Stdin {
        self.stdin.as_mut().expect("stdin is taken only by finish")
    }

    /// Closes stdin and waits for the command to exit.
    pub fn finish(mut self, timeout: Duration) -> io::Result<Finished> {
        drop(self.stdin.take());
        let (status, timed_out) = wait_with_timeout(&mut self.child, timeout)?;
        let stopped = self.watch.stopped();
        self.traced.finished(status, timed_out, stopped);
        let by = Instant::now() + PIPE_GRACE;
        Ok(Finished {
            status,
            stdout: self.stdout.take(by),
            stderr: self.stderr.take(by),
            timed_out,
            stopped,
        })
    }
}

impl Drop for Feeding {
    fn drop(&mut self) {
        // Only reached without `finish` on an error path: do not leave the
        // engine command running behind us.
        if self.stdin.is_some() {
            kill_group(self.child.id() as libc::pid_t, libc::SIGKILL);
            if let Ok(status) = self.child.wait() {
                self.traced.finished(status, false, self.watch.stopped());
            }
        }
    }
}

/// Spawns `command` with all three standard streams piped to us, in a
/// process group of its own.
fn spawn_piped(command: &mut Command) -> io::Result<(Child, Traced)> {
    watchdog::refuse_after_signal()?;
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    spawn_traced(command)
}

/// Spawns `command` as it is set up, in a span of its own.
fn spawn_traced(command: &mut Command) -> io::Result<(Child, Traced)> {
    let traced = Traced::start(command);
    match command.spawn() {
        Ok(child) => Ok((child, traced)),
        Err(error) => {
            traced.failed(&error);
            Err(error)
        }
    }
}

/// What a command spawned with [`Feeding::spawn_answering`] did first.
#[derive(Debug)]
pub enum Answer {
    /// Its stdout up to the marker line.
    Given(Vec<u8>),
    /// It closed stdout without printing the marker (it exited).
    Ended,
    /// It printed no marker in time.
    TimedOut,
}

/// A running command whose stdout we read as a stream (an image `save`).
/// stderr is captured in the background; each read is watched, so that a
/// command that stops sending is stopped.
pub struct Reading {
    child: Child,
    stdout: ChildStdout,
    stderr: Capture,
    watch: Arc<Watch>,
    traced: Traced,
    finished: bool,
}

impl Reading {
    pub fn spawn(command: &mut Command) -> io::Result<Reading> {
        Reading::spawn_watched(command, stall_limit())
    }

    /// [`Reading::spawn`] with a stall limit of its own.
    pub fn spawn_watched(command: &mut Command, limit: Duration) -> io::Result<Reading> {
        watchdog::refuse_after_signal()?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let (mut child, traced) = spawn_traced(command)?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = capture(child.stderr.take());
        let watch = Watch::start(child.id() as libc::pid_t, limit);
        Ok(Reading {
            child,
            stdout,
            stderr,
            watch,
            traced,
            finished: false,
        })
    }

    /// Drains what is left of stdout and waits for the command to exit.
    pub fn finish(mut self, timeout: Duration) -> io::Result<Finished> {
        // A drain that fails because the watchdog stopped the command is
        // told by `stopped` below.
        let drained = io::copy(&mut self, &mut io::sink());
        let (status, timed_out) = wait_with_timeout(&mut self.child, timeout)?;
        self.finished = true;
        let stopped = self.watch.stopped();
        self.traced.finished(status, timed_out, stopped);
        if stopped.is_none() {
            drained?;
        }
        Ok(Finished {
            status,
            stdout: Vec::new(),
            stderr: self.stderr.take(Instant::now() + PIPE_GRACE),
            timed_out,
            stopped,
        })
    }
}

impl Read for Reading {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.watch.waiting(|| self.stdout.read(buf));
        stopped_error(&self.watch, "sent nothing").map_or(read, Err)
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        if !self.finished {
            kill_group(self.child.id() as libc::pid_t, libc::SIGKILL);
            if let Ok(status) = self.child.wait() {
                self.traced.finished(status, false, self.watch.stopped());
            }
        }
    }
}

/// The error a read or write returns once the watchdog stopped the
/// command: the stall or the signal, not the EOF or broken pipe it left.
fn stopped_error(watch: &Watch, stalled: &str) -> Option<io::Error> {
    Some(match watch.stopped()? {
        Stopped::Stalled(limit) => io::Error::new(
            io::ErrorKind::TimedOut,
            format!("it {stalled} {}", stall_words(limit)),
        ),
        // Not `ErrorKind::Interrupted`, which `write_all` and `read_exact`
        // retry.
        Stopped::Interrupted(signal) => {
            io::Error::other(format!("stopped: loadmaster received signal {signal}"))
        }
    })
}

/// A command line as one could paste it into a shell.
pub fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|arg| {
            if !arg.is_empty()
                && arg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+".contains(&b))
            {
                arg.clone()
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Copies `from` into `to` through one fixed buffer; returns the bytes copied.
pub fn copy_stream(from: &mut dyn Read, to: &mut dyn Write) -> io::Result<u64> {
    let mut buffer = vec![0u8; STREAM_BUFFER];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buffer[..n])?;
        total += n as u64;
    }
}

/// The tail of one of a child's output streams, read in the background.
struct Capture {
    tail: Arc<Mutex<Vec<u8>>>,
    ended: Option<Receiver<()>>,
}

impl Capture {
    /// Runs `read` on its own thread with `stream`; it keeps what it reads
    /// in the shared tail.
    fn start<R: Read + Send + 'static>(
        stream: Option<R>,
        read: impl FnOnce(R, &Mutex<Vec<u8>>) + Send + 'static,
    ) -> Capture {
        let tail = Arc::new(Mutex::new(Vec::new()));
        let ended = stream.map(|stream| {
            let (done, ended) = sync_channel(1);
            let kept = tail.clone();
            thread::spawn(move || {
                read(stream, &kept);
                let _ = done.send(());
            });
            ended
        });
        Capture { tail, ended }
    }

    /// What was read, once the stream ended or `by` passed.
    fn take(&mut self, by: Instant) -> Vec<u8> {
        if let Some(ended) = self.ended.take() {
            let _ = ended.recv_timeout(by.saturating_duration_since(Instant::now()));
        }
        std::mem::take(&mut *self.tail.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn collect(mut self, by: Instant) -> Vec<u8> {
        self.take(by)
    }
}

fn capture<R: Read + Send + 'static>(stream: Option<R>) -> Capture {
    Capture::start(stream, |mut stream, tail| {
        read_tail(&mut stream, tail, CAPTURE_LIMIT)
    })
}

/// Reads a stream to its end, keeping at most the last `limit` bytes.
fn read_tail(stream: &mut dyn Read, tail: &Mutex<Vec<u8>>, limit: usize) {
    let mut buffer = [0u8; 8192];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => keep_tail(tail, &buffer[..n], limit),
        }
    }
}

fn keep_tail(tail: &Mutex<Vec<u8>>, chunk: &[u8], limit: usize) {
    let mut kept = tail.lock().unwrap_or_else(|p| p.into_inner());
    kept.extend_from_slice(chunk);
    if kept.len() > limit {
        let cut = kept.len() - limit;
        kept.drain(..cut);
    }
}

/// Waits for `child` until `timeout`, then kills its process group. Once
/// it has exited, whatever it left running in its group goes too.
fn wait_with_timeout(child: &mut Child, timeout: Duration) -> io::Result<(ExitStatus, bool)> {
    let pgid = child.id() as libc::pid_t;
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait()? {
            break (status, false);
        }
        if Instant::now() >= deadline {
            kill_group(pgid, libc::SIGKILL);
            break (child.wait()?, true);
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    };
    kill_group(pgid, libc::SIGKILL);
    Ok((status, timed_out))
}

/// Sends `signal` to the process group `pgid`.
pub fn kill_group(pgid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) with a negative pid signals a process group; it has
    // no memory-safety preconditions. ESRCH (group gone) is fine.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_quotes_what_a_shell_would_split() {
        let argv = ["docker", "build", "--build-arg", "B=x y", "it's"].map(String::from);
        assert_eq!(
            shell_words(&argv),
            r"docker build --build-arg 'B=x y' 'it'\''s'"
        );
    }

    #[test]
    fn run_captures_output_and_status() {
        let done = run(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(done.status.code(), Some(3));
        assert_eq!(done.stdout_text(), "out\n");
        assert_eq!(done.stderr_text(), "err");
        assert!(!done.timed_out);
    }

    #[test]
    fn run_kills_a_command_past_its_timeout() {
        let started = Instant::now();
        let done = run(Command::new("sleep").arg("30"), Duration::from_millis(200)).unwrap();
        assert!(done.timed_out);
        assert!(!done.status.success());
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn read_tail_keeps_the_end() {
        let data: Vec<u8> = (0..100u8).collect();
        let kept = Mutex::new(Vec::new());
        read_tail(&mut &data[..], &kept, 10);
        assert_eq!(kept.into_inner().unwrap(), (90..100u8).collect::<Vec<_>>());
    }

    #[test]
    fn a_timeout_kills_the_whole_group() {
        // The background sleep holds stdout: killing only `sh` would leave
        // the capture waiting for it.
        let started = Instant::now();
        let done = run(
            Command::new("sh").args(["-c", "sleep 30 & sleep 30"]),
            Duration::from_millis(200),
        )
        .unwrap();
        assert!(done.timed_out);
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_grandchild_outside_the_group_does_not_hold_us() {
        // `setsid` leaves the group, so no kill reaches it; it keeps the
        // pipe open, and is not waited for past the grace.
        let started = Instant::now();
        let done = run(
            Command::new("sh").args(["-c", "setsid sleep 30 & echo started"]),
            Duration::from_secs(20),
        )
        .unwrap();
        assert!(done.status.success() && !done.timed_out);
        assert_eq!(done.stdout_text(), "started\n");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_stream_that_sends_nothing_is_stopped_and_says_so() {
        let started = Instant::now();
        let mut reading = Reading::spawn_watched(
            Command::new("sh").args(["-c", "echo first; exec sleep 30"]),
            Duration::from_millis(300),
        )
        .unwrap();
        let mut text = Vec::new();
        let error = reading.read_to_end(&mut text).unwrap_err();
        assert_eq!(text, b"first\n");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
        assert!(error.to_string().contains("sent nothing"), "{error}");
        let done = reading.finish(Duration::from_secs(5)).unwrap();
        assert_eq!(
            done.stopped,
            Some(Stopped::Stalled(Duration::from_millis(300)))
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_command_that_stops_reading_is_stopped_and_says_so() {
        let started = Instant::now();
        let mut feeding =
            Feeding::spawn_watched(Command::new("sleep").arg("30"), Duration::from_millis(300))
                .unwrap();
        // More than a pipe holds: the write blocks until the watchdog acts.
        let data = vec![0u8; 4 << 20];
        let error = feeding.stdin().write_all(&data).unwrap_err();
        assert!(error.to_string().contains("took no input"), "{error}");
        let done = feeding.finish(Duration::from_secs(5)).unwrap();
        assert_eq!(
            done.stopped,
            Some(Stopped::Stalled(Duration::from_millis(300)))
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_command_that_takes_its_input_at_a_crawl_is_stopped_as_stalled() {
        // It takes 1000 bytes at a time, freeing a page of the pipe every
        // few reads, so each small write ends soon after the pipe is full
        // and no single wait reaches the limit; their sum does, long before
        // the 1 MiB is through (about 20 s at its pace).
        let started = Instant::now();
        let mut feeding = Feeding::spawn_watched(
            Command::new("sh").args([
                "-c",
                "while dd bs=1000 count=1 status=none of=/dev/null; do sleep 0.01; done",
            ]),
            Duration::from_millis(500),
        )
        .unwrap();
        let piece = [0u8; 512];
        let error = (0..2048)
            .find_map(|_| feeding.stdin().write_all(&piece).err())
            .expect("a crawl is a stall");
        assert!(error.to_string().contains("took no input"), "{error}");
        let done = feeding.finish(Duration::from_secs(5)).unwrap();
        assert_eq!(
            done.stopped,
            Some(Stopped::Stalled(Duration::from_millis(500)))
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_slow_producer_is_not_a_stall_of_the_consumer() {
        // `cat` waits on us between writes longer than its limit: only time
        // spent inside a write counts.
        let mut feeding =
            Feeding::spawn_watched(&mut Command::new("cat"), Duration::from_millis(200)).unwrap();
        for _ in 0..3 {
            feeding.stdin().write_all(b"piece\n").unwrap();
            thread::sleep(Duration::from_millis(400));
        }
        let done = feeding.finish(Duration::from_secs(5)).unwrap();
        assert_eq!(done.stopped, None);
        assert_eq!(done.stdout_text(), "piece\npiece\npiece\n");
    }

    #[test]
    fn an_answering_command_answers_then_reads_its_input() {
        let script = "echo question; echo @@end; read -r word; echo \"got $word\"; wc -c";
        let (mut feeding, answer) = Feeding::spawn_answering(
            Command::new("sh").args(["-c", script]),
            "@@end",
            Duration::from_secs(10),
        )
        .unwrap();
        let Answer::Given(text) = answer else {
            panic!("no answer: {answer:?}")
        };
        assert_eq!(text, b"question\n");
        feeding.stdin().write_all(b"import\n12345").unwrap();
        let done = feeding.finish(Duration::from_secs(10)).unwrap();
        assert!(done.status.success());
        // `read` took its line and nothing more: wc counts the rest.
        assert_eq!(done.stdout_text(), "got import\n5\n");
    }

    #[test]
    fn an_answering_command_that_exits_first_says_so() {
        let (feeding, answer) = Feeding::spawn_answering(
            Command::new("sh").args(["-c", "echo partial; echo broken >&2; exit 4"]),
            "@@end",
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(matches!(answer, Answer::Ended), "{answer:?}");
        let done = feeding.finish(Duration::from_secs(10)).unwrap();
        assert_eq!(done.status.code(), Some(4));
        assert_eq!(done.stdout_text(), "partial\n");
        assert_eq!(done.stderr_text(), "broken");
    }

    #[test]
    fn an_answering_command_that_hangs_times_out() {
        let (feeding, answer) = Feeding::spawn_answering(
            Command::new("sleep").arg("30"),
            "@@end",
            Duration::from_millis(200),
        )
        .unwrap();
        assert!(matches!(answer, Answer::TimedOut), "{answer:?}");
        let done = feeding.finish(Duration::ZERO).unwrap();
        assert!(done.timed_out);
    }

    #[test]
    fn feeding_streams_stdin_and_reports_exit() {
        let mut feeding = Feeding::spawn(Command::new("wc").arg("-c")).unwrap();
        let data = vec![7u8; 1 << 20];
        copy_stream(&mut &data[..], feeding.stdin()).unwrap();
        let done = feeding.finish(Duration::from_secs(10)).unwrap();
        assert!(done.status.success());
        assert_eq!(done.stdout_text().trim(), "1048576");
    }
}
