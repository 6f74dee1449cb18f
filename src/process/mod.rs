//! Running engine CLI commands: bounded waits, captured output, streamed stdin.
//!
//! Everything that talks to `docker` or `podman` goes through here, so that
//! every command has a timeout, keeps the tail of its stderr for error
//! messages, and never buffers an image-sized stream in memory.

use std::io::{self, BufRead, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How much of a command's stdout or stderr is kept. Engine answers we parse
/// (inspect, info) are far smaller; anything bigger is a stream and never
/// captured. The tail is kept because errors come last.
pub const CAPTURE_LIMIT: usize = 4 << 20;

/// Buffer size for copying streams between processes. Memory use of a
/// transfer is a small multiple of this, whatever the image size.
pub const STREAM_BUFFER: usize = 256 << 10;

/// What a finished command produced.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// True when the command was killed because it ran past its timeout.
    pub timed_out: bool,
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
/// it if it runs longer than `timeout`.
pub fn run(command: &mut Command, timeout: Duration) -> io::Result<Finished> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    let stdout = capture(child.stdout.take());
    let stderr = capture(child.stderr.take());
    let (status, timed_out) = wait_with_timeout(&mut child, timeout)?;
    Ok(Finished {
        status,
        stdout: join_capture(stdout),
        stderr: join_capture(stderr),
        timed_out,
    })
}

/// A running command whose stdin we feed; stdout and stderr are captured
/// (bounded) in the background.
pub struct Feeding {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

impl Feeding {
    pub fn spawn(command: &mut Command) -> io::Result<Feeding> {
        let mut child = spawn_piped(command)?;
        let stdin = child.stdin.take();
        let stdout = capture(child.stdout.take());
        let stderr = capture(child.stderr.take());
        Ok(Feeding {
            child,
            stdin,
            stdout,
            stderr,
        })
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
        let mut child = spawn_piped(command)?;
        let stdin = child.stdin.take();
        let stderr = capture(child.stderr.take());
        let (answered, answer) = sync_channel(1);
        let stdout = child.stdout.take().map(|stdout| {
            thread::spawn(move || {
                let mut stdout = io::BufReader::new(stdout);
                let mut text = Vec::new();
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match stdout.read_until(b'\n', &mut line) {
                        // Ended without the marker: what it printed is its
                        // output, for the error.
                        Ok(0) | Err(_) => return text,
                        Ok(_) if line.strip_suffix(b"\n") == Some(marker.as_bytes()) => break,
                        Ok(_) => text.extend_from_slice(&line),
                    }
                }
                let _ = answered.send(text);
                read_tail(&mut stdout, CAPTURE_LIMIT)
            })
        });
        let answer = match answer.recv_timeout(timeout) {
            Ok(text) => Answer::Given(text),
            Err(RecvTimeoutError::Disconnected) => Answer::Ended,
            Err(RecvTimeoutError::Timeout) => Answer::TimedOut,
        };
        let feeding = Feeding {
            child,
            stdin,
            stdout,
            stderr,
        };
        Ok((feeding, answer))
    }

    /// The command's stdin. Writing fails with `BrokenPipe` once the command
    /// has exited; call [`Feeding::finish`] to learn why.
    pub fn stdin(&mut self) -> &mut ChildStdin {
        self.stdin.as_mut().expect("stdin is taken only by finish")
    }

    /// Closes stdin and waits for the command to exit.
    pub fn finish(mut self, timeout: Duration) -> io::Result<Finished> {
        drop(self.stdin.take());
        let (status, timed_out) = wait_with_timeout(&mut self.child, timeout)?;
        Ok(Finished {
            status,
            stdout: join_capture(self.stdout.take()),
            stderr: join_capture(self.stderr.take()),
            timed_out,
        })
    }
}

impl Drop for Feeding {
    fn drop(&mut self) {
        // Only reached without `finish` on an error path: do not leave the
        // engine command running behind us.
        if self.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Spawns `command` with all three standard streams piped to us.
fn spawn_piped(command: &mut Command) -> io::Result<Child> {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
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
/// stderr is captured in the background.
pub struct Reading {
    child: Child,
    stdout: ChildStdout,
    stderr: Option<JoinHandle<Vec<u8>>>,
    finished: bool,
}

impl Reading {
    pub fn spawn(command: &mut Command) -> io::Result<Reading> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = capture(child.stderr.take());
        Ok(Reading {
            child,
            stdout,
            stderr,
            finished: false,
        })
    }

    /// Drains what is left of stdout and waits for the command to exit.
    pub fn finish(mut self, timeout: Duration) -> io::Result<Finished> {
        io::copy(&mut self.stdout, &mut io::sink())?;
        let (status, timed_out) = wait_with_timeout(&mut self.child, timeout)?;
        self.finished = true;
        Ok(Finished {
            status,
            stdout: Vec::new(),
            stderr: join_capture(self.stderr.take()),
            timed_out,
        })
    }
}

impl Read for Reading {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stdout.read(buf)
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
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

fn capture<R: Read + Send + 'static>(stream: Option<R>) -> Option<JoinHandle<Vec<u8>>> {
    stream.map(|mut stream| thread::spawn(move || read_tail(&mut stream, CAPTURE_LIMIT)))
}

fn join_capture(handle: Option<JoinHandle<Vec<u8>>>) -> Vec<u8> {
    handle
        .and_then(|handle| handle.join().ok())
        .unwrap_or_default()
}

/// Reads a stream to its end, keeping at most the last `limit` bytes.
fn read_tail(stream: &mut dyn Read, limit: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                kept.extend_from_slice(&buffer[..n]);
                if kept.len() > limit {
                    kept.drain(..kept.len() - limit);
                }
            }
        }
    }
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> io::Result<(ExitStatus, bool)> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok((status, false));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            return Ok((child.wait()?, true));
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let kept = read_tail(&mut &data[..], 10);
        assert_eq!(kept, (90..100u8).collect::<Vec<_>>());
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
