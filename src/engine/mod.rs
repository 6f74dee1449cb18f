//! Docker and podman behind one interface, driven through their CLIs.
//!
//! The CLIs are what kind itself drives, and they work unchanged with a podman
//! machine, Docker Desktop or a remote engine: whatever `docker` or `podman`
//! talks to is what we measure and load into. The two CLIs agree on most verbs
//! and flags; where their answers differ (the JSON of `info`, image IDs,
//! container names), the parsing below normalises them so that callers never
//! need to know which engine they have.

mod error;
mod measure;
mod noise;
mod parse;
mod push;
mod select;

pub use error::{
    EngineError, ExitDescription, FailedCommand, NodeFailure, NodeState, Stall, signal_name,
};
pub use measure::{EngineSide, PathSpace};
pub use parse::{
    ContainerDetails, ContainerState, ContainerSummary, EngineInfo, ImageDetails, Location,
};
pub use select::{EngineChoice, SelectError, Selection, select};

use crate::process::{self, Feeding, Finished, Reading, Stopped};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::Read;
use std::process::Command;
use std::time::Duration;

/// How long a quick engine query (info, inspect, ps) may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long an engine may take to exit once its stream has ended.
const STREAM_END_TIMEOUT: Duration = Duration::from_secs(120);

/// Which container engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Docker,
    Podman,
}

impl EngineKind {
    pub const ALL: [EngineKind; 2] = [EngineKind::Docker, EngineKind::Podman];

    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Docker => "docker",
            EngineKind::Podman => "podman",
        }
    }

    pub fn other(self) -> EngineKind {
        match self {
            EngineKind::Docker => EngineKind::Podman,
            EngineKind::Podman => EngineKind::Docker,
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that table columns (`{:<8}`) line up.
        f.pad(self.name())
    }
}

/// One container engine, reached through its CLI.
#[derive(Clone, Debug)]
pub struct Engine {
    kind: EngineKind,
    program: String,
}

impl Engine {
    /// The engine whose CLI is `docker` or `podman` on PATH.
    pub fn new(kind: EngineKind) -> Engine {
        Engine {
            kind,
            program: kind.name().to_string(),
        }
    }

    pub fn kind(&self) -> EngineKind {
        self.kind
    }

    /// What the engine can give containers, and how it stores images.
    pub fn info(&self) -> Result<EngineInfo, EngineError> {
        let args: &[&str] = match self.kind {
            EngineKind::Docker => &["info", "--format", "{{json .}}"],
            EngineKind::Podman => &["info", "--format", "json"],
        };
        let done = self.query(args)?;
        let mut info = parse::engine_info(self.kind, &done.stdout)
            .map_err(|detail| self.unexpected(args, detail))?;
        // Docker Desktop and podman machine say so themselves; the service
        // address the CLI was given tells a remote engine from them.
        let variable = match self.kind {
            EngineKind::Docker => "DOCKER_HOST",
            EngineKind::Podman => "CONTAINER_HOST",
        };
        info.service_address = std::env::var(variable).ok().filter(|a| !a.is_empty());
        let by_address = info
            .service_address
            .as_deref()
            .and_then(Location::of_service_address);
        match by_address {
            Some(Location::Remote) => info.location = Location::Remote,
            Some(Location::VirtualMachine) if info.location == Location::Local => {
                info.location = Location::VirtualMachine
            }
            _ => {}
        }
        Ok(info)
    }

    /// ID, size, tags, layers and config of a local image.
    pub fn image_inspect(&self, image: &str) -> Result<ImageDetails, EngineError> {
        let args = ["image", "inspect", image];
        let done = match self.query(&args) {
            Err(EngineError::CommandFailed { stderr, .. }) if is_missing_image(&stderr) => {
                return Err(self.image_not_found(image));
            }
            other => other?,
        };
        parse::image_details(&done.stdout).map_err(|detail| self.unexpected(&args, detail))
    }

    /// The "image is missing" error, noting whether the other engine has it:
    /// the docker/podman mix-up behind many "image not present locally" reports.
    fn image_not_found(&self, image: &str) -> EngineError {
        let other = Engine::new(self.kind.other());
        let also_in = other
            .image_inspect_quiet(image)
            .then_some(self.kind.other());
        EngineError::ImageNotFound {
            engine: self.kind,
            image: image.to_string(),
            also_in,
        }
    }

    fn image_inspect_quiet(&self, image: &str) -> bool {
        self.query(&["image", "inspect", image]).is_ok()
    }

    /// Streams `save` of an image: the archive is read from the returned
    /// stream as the engine writes it, never stored in a file.
    /// A missing image shows only when the stream ends, in
    /// [`SaveStream::finish`]: callers that need to know first (and want its
    /// size and layers anyway) call [`Engine::image_inspect`] before.
    pub fn save(&self, image: &str) -> Result<SaveStream, EngineError> {
        let args = vec!["save".to_string(), image.to_string()];
        let reading =
            Reading::spawn(&mut self.command(&args)).map_err(|e| self.spawn_error(&args, e))?;
        Ok(SaveStream {
            engine: self.clone(),
            args,
            reading,
            bytes_read: 0,
        })
    }

    /// Starts `exec -i CONTAINER ARGV...` with its stdin fed by the caller.
    pub fn exec_feeding(&self, container: &str, argv: &[&str]) -> Result<ExecSession, EngineError> {
        let args = exec_args(container, argv);
        let feeding =
            Feeding::spawn(&mut self.command(&args)).map_err(|e| self.spawn_error(&args, e))?;
        Ok(ExecSession {
            engine: self.clone(),
            container: container.to_string(),
            args,
            feeding,
        })
    }

    /// Starts `exec -i CONTAINER ARGV...`, a command that first answers on
    /// stdout (up to a line `marker`) and then reads its stdin. Returns the
    /// answer and the session, whose input the caller writes next. Errors
    /// show the command as `shown` (one line for a multi-line script, so
    /// that logs and triage read it).
    pub fn exec_answering(
        &self,
        container: &str,
        argv: &[&str],
        shown: &[&str],
        marker: &'static str,
    ) -> Result<(String, ExecSession), EngineError> {
        let shown = exec_args(container, shown);
        let (feeding, answer) = Feeding::spawn_answering(
            &mut self.command(&exec_args(container, argv)),
            marker,
            QUERY_TIMEOUT,
        )
        .map_err(|e| self.spawn_error(&shown, e))?;
        let session = ExecSession {
            engine: self.clone(),
            container: container.to_string(),
            args: shown,
            feeding,
        };
        match answer {
            process::Answer::Given(text) => {
                Ok((String::from_utf8_lossy(&text).into_owned(), session))
            }
            process::Answer::Ended => {
                let command = self.describe(&session.args);
                session.finish(QUERY_TIMEOUT)?;
                Err(EngineError::UnexpectedAnswer {
                    command,
                    detail: format!("it ended without printing {marker:?}"),
                })
            }
            process::Answer::TimedOut => {
                let timeout = self.timeout(&session.args, QUERY_TIMEOUT);
                drop(session.finish(Duration::ZERO));
                Err(timeout)
            }
        }
    }

    /// Runs `exec -i CONTAINER ARGV...` with `input` streamed to its stdin
    /// through a fixed buffer; returns what the command printed.
    pub fn exec(
        &self,
        container: &str,
        argv: &[&str],
        input: &mut dyn Read,
        timeout: Duration,
    ) -> Result<Finished, EngineError> {
        let mut session = self.exec_feeding(container, argv)?;
        let copied = process::copy_stream(input, session.stdin());
        let done = session.finish(timeout)?;
        // A failed command explains itself better than the broken pipe it
        // left us with, so the exit status is checked first.
        copied.map_err(|source| EngineError::Io {
            command: self.describe(&exec_args(container, argv)),
            source,
        })?;
        Ok(done)
    }

    /// Runs `exec CONTAINER ARGV...` with no input and returns its stdout.
    pub fn exec_output(&self, container: &str, argv: &[&str]) -> Result<String, EngineError> {
        let mut args = vec!["exec", container];
        args.extend_from_slice(argv);
        Ok(self.query(&args)?.stdout_text())
    }

    /// The last `lines` lines a container's main process printed (both
    /// streams, interleaved as the engine stored them): a kind node's
    /// containerd logs there.
    pub fn container_logs(&self, container: &str, lines: u32) -> Result<String, EngineError> {
        let tail = lines.to_string();
        let done = self.query(&["logs", "--tail", &tail, container])?;
        let mut text = done.stdout_text();
        text.push_str(&String::from_utf8_lossy(&done.stderr));
        Ok(text)
    }

    /// All containers (running or not) carrying `label` (`key` or
    /// `key=value`), each with its values of the label keys `keys`: one
    /// `ps`, which is all that finding a kind cluster's nodes needs (an
    /// inspect of the nodes would be another CLI call for every load).
    pub fn containers_with_label(
        &self,
        label: &str,
        keys: &[&str],
    ) -> Result<Vec<ContainerSummary>, EngineError> {
        let filter = format!("label={label}");
        // docker's template has `.Label`, podman's `.State` is a phrase
        // ("Up 2 hours") outside JSON: each engine is asked its own way.
        let format = match self.kind {
            EngineKind::Docker => {
                let values: String = keys
                    .iter()
                    .map(|key| format!("\t{{{{.Label \"{key}\"}}}}"))
                    .collect();
                format!("{{{{.ID}}}}\t{{{{.Names}}}}\t{{{{.State}}}}{values}")
            }
            EngineKind::Podman => "json".to_string(),
        };
        let args = [
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            &filter,
            "--format",
            &format,
        ];
        let done = self.query(&args)?;
        let listed = match self.kind {
            EngineKind::Docker => Ok(parse::docker_ps_lines(&done.stdout_text(), keys)),
            EngineKind::Podman => parse::podman_ps_json(&done.stdout, keys),
        };
        listed.map_err(|detail| self.unexpected(&args, detail))
    }

    /// State, exit code, OOM flag, pid and times of one container.
    pub fn container_inspect(&self, container: &str) -> Result<ContainerDetails, EngineError> {
        let args = ["container", "inspect", container];
        let done = self.query(&args)?;
        parse::container_details(&done.stdout)
            .map_err(|detail| self.unexpected(&args, detail))?
            .pop()
            .ok_or_else(|| EngineError::ContainerNotFound {
                engine: self.kind,
                container: container.to_string(),
            })
    }

    /// Runs a quick query and turns a failure into the matching error.
    fn query<S: AsRef<str>>(&self, args: &[S]) -> Result<Finished, EngineError> {
        let done = process::run(&mut self.command(args), QUERY_TIMEOUT)
            .map_err(|e| self.spawn_error(args, e))?;
        self.check(args, done)
    }

    /// Classifies a finished engine command: success, or the error it means.
    fn check<S: AsRef<str>>(&self, args: &[S], done: Finished) -> Result<Finished, EngineError> {
        self.check_streamed(args, done, Stall::Sending)
    }

    /// [`Engine::check`] of a command whose stream was watched: a stall
    /// (which way it went) or a signal that stopped it comes first.
    fn check_streamed<S: AsRef<str>>(
        &self,
        args: &[S],
        done: Finished,
        way: Stall,
    ) -> Result<Finished, EngineError> {
        match done.stopped {
            Some(Stopped::Stalled(limit)) => {
                return Err(EngineError::Stalled {
                    engine: self.kind,
                    command: self.describe(args),
                    argv: self.argv(args),
                    stalled: way,
                    seconds: limit.as_secs(),
                });
            }
            Some(Stopped::Interrupted(signal)) => {
                return Err(EngineError::Interrupted {
                    command: self.describe(args),
                    signal,
                });
            }
            None => {}
        }
        if done.timed_out {
            return Err(self.timeout(args, QUERY_TIMEOUT));
        }
        if done.status.success() {
            return Ok(done);
        }
        // Classified here, once: the engine's log chatter is not its answer.
        let stderr = noise::shown(self.kind, &done.stderr_text());
        if is_not_running(&stderr) {
            return Err(EngineError::NotRunning {
                engine: self.kind,
                answer: stderr,
            });
        }
        if let Some(container) = missing_container(&stderr) {
            return Err(EngineError::ContainerNotFound {
                engine: self.kind,
                container,
            });
        }
        Err(EngineError::CommandFailed {
            command: self.describe(args),
            argv: self.argv(args),
            exit: process::Exit::from_status(done.status, false),
            status: ExitDescription::from_status(done.status),
            stderr,
        })
    }

    fn command<S: AsRef<str>>(&self, args: &[S]) -> Command {
        let mut command = Command::new(&self.program);
        command.args(args.iter().map(AsRef::as_ref));
        command
    }

    /// The program and its arguments, word by word.
    fn argv<S: AsRef<str>>(&self, args: &[S]) -> Vec<String> {
        std::iter::once(self.program.clone())
            .chain(args.iter().map(|a| a.as_ref().to_string()))
            .collect()
    }

    /// The error of a command that loadmaster's deadline ended.
    fn timeout<S: AsRef<str>>(&self, args: &[S], limit: Duration) -> EngineError {
        EngineError::Timeout {
            command: self.describe(args),
            argv: self.argv(args),
            seconds: limit.as_secs(),
        }
    }

    fn describe<S: AsRef<str>>(&self, args: &[S]) -> String {
        let mut words = vec![self.program.as_str()];
        words.extend(args.iter().map(AsRef::as_ref));
        words.join(" ")
    }

    fn spawn_error<S: AsRef<str>>(&self, args: &[S], source: std::io::Error) -> EngineError {
        if source.kind() == std::io::ErrorKind::NotFound {
            EngineError::NotInstalled {
                engine: self.kind,
                program: self.program.clone(),
            }
        } else {
            EngineError::Io {
                command: self.describe(args),
                source,
            }
        }
    }

    fn unexpected<S: AsRef<str>>(&self, args: &[S], detail: String) -> EngineError {
        EngineError::UnexpectedAnswer {
            command: self.describe(args),
            detail,
        }
    }
}

/// The engine arguments of `exec -i CONTAINER ARGV...`.
fn exec_args(container: &str, argv: &[&str]) -> Vec<String> {
    ["exec", "-i", container]
        .iter()
        .chain(argv)
        .map(|a| a.to_string())
        .collect()
}

/// An image archive streaming out of `<engine> save`.
pub struct SaveStream {
    engine: Engine,
    args: Vec<String>,
    reading: Reading,
    bytes_read: u64,
}

impl Read for SaveStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.reading.read(buf)?;
        self.bytes_read += n as u64;
        Ok(n)
    }
}

impl SaveStream {
    /// Bytes read from the engine so far: what crossed the connection to
    /// it (a VM's or remote engine's link), tar framing included.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Waits for the engine to exit and reports a failed save.
    pub fn finish(self) -> Result<(), EngineError> {
        let done = self
            .reading
            .finish(STREAM_END_TIMEOUT)
            .map_err(|e| self.engine.spawn_error(&self.args, e))?;
        match self.engine.check(&self.args, done) {
            Err(EngineError::CommandFailed { stderr, .. }) if is_missing_image(&stderr) => {
                Err(self.engine.image_not_found(&self.args[1]))
            }
            other => other.map(drop),
        }
    }
}

/// A command running inside a container with its stdin fed by us.
pub struct ExecSession {
    engine: Engine,
    container: String,
    /// The engine's arguments as errors show them.
    args: Vec<String>,
    feeding: Feeding,
}

impl ExecSession {
    pub fn container(&self) -> &str {
        &self.container
    }

    /// Where to write the command's input.
    pub fn stdin(&mut self) -> &mut process::Stdin {
        self.feeding.stdin()
    }

    /// Closes stdin, waits up to `timeout` for the command, and reports a
    /// non-zero exit as an error carrying its stderr.
    pub fn finish(self, timeout: Duration) -> Result<Finished, EngineError> {
        let done = self
            .feeding
            .finish(timeout)
            .map_err(|e| self.engine.spawn_error(&self.args, e))?;
        if done.timed_out {
            return Err(self.engine.timeout(&self.args, timeout));
        }
        self.engine.check_streamed(&self.args, done, Stall::Taking)
    }
}

/// The engines' ways of saying "this engine is not reachable".
fn is_not_running(stderr: &str) -> bool {
    const SIGNS: [&str; 5] = [
        "Cannot connect to the Docker daemon",
        "Is the docker daemon running",
        "Cannot connect to Podman",
        "unable to connect to Podman",
        "error during connect",
    ];
    SIGNS.iter().any(|sign| stderr.contains(sign))
}

/// The engines' ways of saying "no such image".
/// (`docker save` of a missing image answers "reference does not exist".)
fn is_missing_image(stderr: &str) -> bool {
    let lower = stderr.to_lowercase();
    [
        "no such image",
        "image not known",
        "reference does not exist",
    ]
    .iter()
    .any(|sign| lower.contains(sign))
}

/// The container named in a "no such container" answer, if that is what it is.
/// docker: `No such container: NAME`; podman: `no such container NAME`, or
/// `no container with name or ID "NAME" found`.
fn missing_container(stderr: &str) -> Option<String> {
    if let Some(at) = stderr.find("name or ID \"") {
        let rest = &stderr[at + "name or ID \"".len()..];
        return rest.split('"').next().map(str::to_string);
    }
    let lower = stderr.to_lowercase();
    let at = [
        "no such container: ",
        "no such container ",
        "no such object: ",
    ]
    .iter()
    .find_map(|sign| lower.find(sign).map(|at| at + sign.len()))?;
    let name: String = stderr[at..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ':')
        .collect();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_engine_answers() {
        assert!(is_not_running(
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"
        ));
        assert!(is_not_running(
            "Error: unable to connect to Podman socket: failed to connect"
        ));
        assert!(is_missing_image("Error: No such image: app:1"));
        assert!(is_missing_image("Error: app:1: image not known"));
        assert!(is_missing_image(
            "Error response from daemon: reference does not exist"
        ));
        assert!(!is_missing_image("Error: permission denied"));
    }

    #[test]
    fn names_the_missing_container() {
        assert_eq!(
            missing_container("Error: No such container: kind-control-plane").as_deref(),
            Some("kind-control-plane")
        );
        assert_eq!(
            missing_container("Error: No such object: x-worker").as_deref(),
            Some("x-worker")
        );
        assert_eq!(
            missing_container(
                "Error: no container with name or ID \"n1\" found: no such container"
            )
            .as_deref(),
            Some("n1")
        );
        assert_eq!(
            missing_container("Error: inspecting object: no such container n2").as_deref(),
            Some("n2")
        );
        assert_eq!(missing_container("Error: boom"), None);
    }
}
