//! Supervised children (a run's builds, kind, kubectl, the test): their
//! output streamed as it comes (to an [`Echo`] and a log file when asked)
//! while its tail is kept for the journal, a timeout, and a stop on SIGINT
//! or SIGTERM.
//!
//! Each child gets its own process group, so that stopping it stops what
//! it started too (`sh -c` and its commands), and a Ctrl-C reaches
//! loadmaster only, which then stops the child (SIGTERM, then SIGKILL
//! after a grace) and records that it did.

use super::{Capture, PIPE_GRACE, keep_tail, kill_group, signal, spawn_traced};
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How much of a supervised child's stdout and stderr is kept (and what
/// the journal's command events keep): errors come last.
pub const OUTPUT_TAIL: usize = 4096;

/// How a command ended: an exit code, a signal, or killed at its timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Exit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub timed_out: bool,
}

impl Exit {
    pub fn from_status(status: std::process::ExitStatus, timed_out: bool) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        Exit {
            code: status.code(),
            signal: status.signal(),
            timed_out,
        }
    }

    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }
}

/// How long a stopped child gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// How often a running child is checked for its end, timeout and signals.
const POLL: Duration = Duration::from_millis(50);

/// Which of a child's streams a chunk of output came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Shows a child's output as it comes. The runner's progress display is
/// one: it must know, to keep its own lines clear of the child's.
pub trait Echo: Send + Sync {
    fn output(&self, stream: Stream, chunk: &[u8]);
}

/// A command to run.
#[derive(Clone, Default)]
pub struct Spec {
    pub argv: Vec<String>,
    /// Added to loadmaster's environment.
    pub env: Vec<(String, String)>,
    pub dir: Option<PathBuf>,
    pub timeout: Duration,
    /// Where to show the child's stdout and stderr as they come.
    pub echo: Option<Arc<dyn Echo>>,
    /// Also append both to this file.
    pub log: Option<PathBuf>,
    /// Keep all of stdout, not only its tail: for output that is parsed
    /// (a pod listing as JSON).
    pub whole_stdout: bool,
}

impl Spec {
    pub fn new(argv: &[impl AsRef<str>], timeout: Duration) -> Spec {
        Spec {
            argv: argv.iter().map(|a| a.as_ref().to_string()).collect(),
            timeout,
            ..Spec::default()
        }
    }
}

/// How a child ended.
#[derive(Debug)]
pub struct Ran {
    pub exit: Exit,
    /// Stopped because loadmaster received this signal.
    pub interrupted: Option<i32>,
    /// The last [`OUTPUT_TAIL`] bytes of stdout (all of it with
    /// [`Spec::whole_stdout`]) and of stderr.
    pub stdout_tail: Vec<u8>,
    pub stderr_tail: Vec<u8>,
    pub duration: Duration,
}

impl Ran {
    pub fn success(&self) -> bool {
        self.exit.success() && self.interrupted.is_none()
    }

    /// The end of stderr, or of stdout when stderr said nothing: what an
    /// error message quotes.
    pub fn tail_text(&self) -> String {
        let tail = if self.stderr_tail.iter().all(u8::is_ascii_whitespace) {
            &self.stdout_tail
        } else {
            &self.stderr_tail
        };
        String::from_utf8_lossy(tail).trim().to_string()
    }

    /// How it ended, in words: "exit status 3", "killed by signal 9",
    /// "timed out after 30s".
    pub fn describe(&self, timeout: Duration) -> String {
        if let Some(signal) = self.interrupted {
            format!("stopped: loadmaster received signal {signal}")
        } else if self.exit.timed_out {
            format!("timed out after {}s", timeout.as_secs())
        } else if let Some(code) = self.exit.code {
            format!("exit status {code}")
        } else {
            format!("killed by signal {}", self.exit.signal.unwrap_or(0))
        }
    }
}

/// Runs `spec` to its end, its timeout, or a signal to loadmaster.
pub fn supervise(spec: &Spec) -> io::Result<Ran> {
    let (program, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "an empty command"))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(dir) = &spec.dir {
        command.current_dir(dir);
    }
    let log = match &spec.log {
        Some(path) => Some(Arc::new(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        ))),
        None => None,
    };
    let started = Instant::now();
    let (mut child, traced) = spawn_traced(&mut command)?;
    let stdout_keep = if spec.whole_stdout {
        usize::MAX
    } else {
        OUTPUT_TAIL
    };
    let stdout = pump(
        child.stdout.take(),
        (Stream::Stdout, stdout_keep),
        spec.echo.clone(),
        log.clone(),
    );
    let stderr = pump(
        child.stderr.take(),
        (Stream::Stderr, OUTPUT_TAIL),
        spec.echo.clone(),
        log,
    );
    let pgid = child.id() as libc::pid_t;
    let mut timed_out = false;
    let mut interrupted = None;
    let mut stopping: Option<Instant> = None;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if stopping.is_none() {
            if started.elapsed() >= spec.timeout {
                timed_out = true;
            }
            interrupted = signal::received();
            if timed_out || interrupted.is_some() {
                kill_group(pgid, libc::SIGTERM);
                stopping = Some(Instant::now());
            }
        } else if stopping.is_some_and(|at| at.elapsed() >= GRACE) {
            kill_group(pgid, libc::SIGKILL);
        }
        thread::sleep(POLL);
    };
    // Whatever the child left running in its group goes with it; what
    // left the group is not waited for past the grace.
    kill_group(pgid, libc::SIGKILL);
    let stopped = interrupted.map(super::Stopped::Interrupted);
    traced.finished(status, timed_out, stopped);
    let by = Instant::now() + PIPE_GRACE;
    Ok(Ran {
        exit: Exit::from_status(status, timed_out),
        interrupted,
        stdout_tail: stdout.collect(by),
        stderr_tail: stderr.collect(by),
        duration: started.elapsed(),
    })
}

/// Copies a child's stream to the echo and the log as it comes, and
/// keeps its last `keep` bytes.
fn pump(
    stream: Option<impl Read + Send + 'static>,
    (which, keep): (Stream, usize),
    echo: Option<Arc<dyn Echo>>,
    log: Option<Arc<Mutex<std::fs::File>>>,
) -> Capture {
    Capture::start(stream, move |mut stream, tail| {
        let mut buffer = [0u8; 8192];
        loop {
            let n = match stream.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &buffer[..n];
            // Echo and log are best effort: a closed terminal must not stop
            // the run, and the journal keeps the tail regardless.
            if let Some(echo) = &echo {
                echo.output(which, chunk);
            }
            if let Some(log) = &log {
                let mut file = log.lock().unwrap_or_else(|p| p.into_inner());
                let _ = file.write_all(chunk);
            }
            keep_tail(tail, chunk, keep);
        }
    })
}

/// True when `program` is an executable file in a `PATH` directory.
pub fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_exit_code_and_tails() {
        let ran = supervise(&Spec::new(
            &["sh", "-c", "echo out; echo err >&2; exit 3"],
            Duration::from_secs(10),
        ))
        .unwrap();
        assert_eq!(ran.exit.code, Some(3));
        assert_eq!(ran.stdout_tail, b"out\n");
        assert_eq!(ran.tail_text(), "err");
        assert_eq!(ran.describe(Duration::from_secs(10)), "exit status 3");
    }

    #[test]
    fn a_timeout_stops_the_child_and_what_it_started() {
        let started = Instant::now();
        let ran = supervise(&Spec::new(
            &["sh", "-c", "sleep 30 & sleep 30; echo never"],
            Duration::from_millis(300),
        ))
        .unwrap();
        assert!(ran.exit.timed_out);
        assert!(!ran.success());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(ran.stdout_tail.is_empty());
    }

    #[test]
    fn whole_stdout_keeps_more_than_the_tail() {
        let script = format!("head -c {} /dev/zero", 3 * OUTPUT_TAIL);
        let mut spec = Spec::new(&["sh", "-c", &script], Duration::from_secs(10));
        assert_eq!(supervise(&spec).unwrap().stdout_tail.len(), OUTPUT_TAIL);
        spec.whole_stdout = true;
        assert_eq!(supervise(&spec).unwrap().stdout_tail.len(), 3 * OUTPUT_TAIL);
    }

    #[test]
    fn a_log_file_gets_both_streams() {
        let scratch = tempfile::Builder::new()
            .prefix("lm-process-")
            .tempdir()
            .unwrap();
        let dir = scratch.path().to_path_buf();
        let log = dir.join("out.log");
        let mut spec = Spec::new(
            &["sh", "-c", "echo one; echo two >&2"],
            Duration::from_secs(10),
        );
        spec.log = Some(log.clone());
        let ran = supervise(&spec).unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(ran.success());
        assert!(text.contains("one\n") && text.contains("two\n"), "{text:?}");
    }

    #[test]
    fn on_path_finds_sh_and_not_a_made_up_name() {
        assert!(on_path("sh"));
        assert!(!on_path("loadmaster-no-such-program"));
    }
}
