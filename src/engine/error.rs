//! Engine errors: what the engine answered, and what the user can do about it.

use super::EngineKind;
use crate::process::{Exit, OUTPUT_TAIL};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Something an engine command could not do. Every variant's message names the
/// cause and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{engine} is not installed (no `{program}` on PATH): {fix}", fix = install_hint(*.engine))]
    NotInstalled { engine: EngineKind, program: String },

    #[error("{engine} is not running: {answer}\n  fix: {fix}", fix = start_hint(*.engine))]
    NotRunning { engine: EngineKind, answer: String },

    #[error("image {image:?} is not present in {engine}{other}", other = other_engine_note(*.engine, .also_in.as_ref()))]
    ImageNotFound {
        engine: EngineKind,
        image: String,
        /// Set when the image was found in the other engine instead.
        also_in: Option<EngineKind>,
    },

    #[error("container {container:?} does not exist in {engine}")]
    ContainerNotFound {
        engine: EngineKind,
        container: String,
    },

    #[error("`{command}` timed out after {seconds}s")]
    Timeout {
        command: String,
        /// What ran, word by word, for triage (as `CommandFailed`'s).
        argv: Vec<String>,
        seconds: u64,
    },

    #[error(
        "`{command}` {stalled} {waited}, so loadmaster stopped it: {side} stalled\n  fix: see what holds it up (`{engine} ps`, the engine's log, the node's containerd), or allow longer with `--stall-timeout`",
        side = if *.stalled == Stall::Sending { "the engine" } else { "the container's command" },
        waited = crate::process::stall_words(std::time::Duration::from_secs(*.seconds))
    )]
    Stalled {
        engine: EngineKind,
        command: String,
        /// What ran, word by word, for triage.
        argv: Vec<String>,
        stalled: Stall,
        seconds: u64,
    },

    #[error("`{command}` stopped: loadmaster received {signal}", signal = signal_name(*.signal).unwrap_or("a signal"))]
    Interrupted { command: String, signal: i32 },

    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        command: String,
        /// What ran, word by word (the program first): `command` is these
        /// joined for people, this is what triage is given.
        argv: Vec<String>,
        /// How it ended, as the process layer tells it.
        exit: Exit,
        status: ExitDescription,
        stderr: String,
    },

    #[error("could not understand the answer of `{command}`: {detail}")]
    UnexpectedAnswer { command: String, detail: String },

    #[error("could not run `{command}`: {source}")]
    Io {
        command: String,
        #[source]
        source: std::io::Error,
    },
}

/// A command that failed, as facts rather than a message: what ran, how
/// it ended, and the end of what it said. Journals record it and triage
/// reads it as it is, never parsed back out of an error's text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedCommand {
    pub argv: Vec<String>,
    pub exit: Exit,
    /// The last [`OUTPUT_TAIL`] bytes of its stderr.
    pub stderr_tail: String,
}

impl EngineError {
    /// The engine command that failed, when the error is one's exit (a
    /// refused `exec`, an import that was killed) or loadmaster's deadline
    /// ended it; `None` for other errors of loadmaster's own (an answer it
    /// could not read).
    pub fn failed_command(&self) -> Option<FailedCommand> {
        match self {
            EngineError::CommandFailed {
                argv, exit, stderr, ..
            } => {
                let cut = stderr.len().saturating_sub(OUTPUT_TAIL);
                let cut = (cut..=stderr.len())
                    .find(|&i| stderr.is_char_boundary(i))
                    .unwrap_or(stderr.len());
                Some(FailedCommand {
                    argv: argv.clone(),
                    exit: *exit,
                    stderr_tail: stderr[cut..].to_string(),
                })
            }
            // loadmaster stopped it (its deadline or its stall watchdog): a fact too (which command,
            // on which node), though the engine said nothing.
            EngineError::Timeout { argv, .. } | EngineError::Stalled { argv, .. } => {
                Some(FailedCommand {
                    argv: argv.clone(),
                    exit: Exit {
                        code: None,
                        signal: Some(libc::SIGKILL),
                        timed_out: true,
                    },
                    stderr_tail: String::new(),
                })
            }
            _ => None,
        }
    }
}

/// A node's failure as facts, for the journal and triage: the node command
/// that failed and the node container's state after it. A load's report
/// says the same for people; nothing reads that back.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeFailure {
    /// The command that failed (the node's `ctr images import` under exec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<FailedCommand>,
    /// The node container's state after the failure, when it was no longer
    /// running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_state: Option<NodeState>,
}

/// A node container that was no longer running after a failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum NodeState {
    /// It had stopped: the engine's status, exit code and OOM flag.
    #[serde(rename_all = "camelCase")]
    Stopped {
        status: String,
        exit_code: i64,
        oom_killed: bool,
    },
    /// It no longer existed: removed during the operation.
    Removed,
}

/// Which way a stream stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// The command sent nothing (an engine's `save`).
    Sending,
    /// The command took no input (a node's `ctr import` under `exec -i`).
    Taking,
}

impl fmt::Display for Stall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stall::Sending => "sent nothing",
            Stall::Taking => "took no input",
        })
    }
}

/// An exit status as people read it: "exit status 137 (SIGKILL)".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitDescription {
    Code(i32),
    Signal(i32),
    Unknown,
}

impl ExitDescription {
    pub fn from_status(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => ExitDescription::Code(code),
            (None, Some(signal)) => ExitDescription::Signal(signal),
            _ => ExitDescription::Unknown,
        }
    }

    /// The exit code a shell would show: signals as 128 + signal.
    pub fn shell_code(self) -> Option<i32> {
        match self {
            ExitDescription::Code(code) => Some(code),
            ExitDescription::Signal(signal) => Some(128 + signal),
            ExitDescription::Unknown => None,
        }
    }
}

impl fmt::Display for ExitDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitDescription::Code(code) if code > 128 => match signal_name(code - 128) {
                Some(name) => write!(f, "exit status {code}, i.e. killed by {name}"),
                None => write!(f, "exit status {code}"),
            },
            ExitDescription::Code(code) => write!(f, "exit status {code}"),
            ExitDescription::Signal(signal) => match signal_name(signal) {
                Some(name) => write!(f, "killed by {name}"),
                None => write!(f, "killed by signal {signal}"),
            },
            ExitDescription::Unknown => write!(f, "unknown exit status"),
        }
    }
}

/// Names of the signals that end processes in practice.
pub fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        6 => "SIGABRT",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => return None,
    })
}

fn install_hint(engine: EngineKind) -> &'static str {
    match engine {
        EngineKind::Docker => {
            "install Docker (Debian/Ubuntu: `sudo apt-get install docker.io`) or choose podman with `--engine podman`"
        }
        EngineKind::Podman => {
            "install podman (Debian/Ubuntu: `sudo apt-get install podman`; macOS: `brew install podman`) or choose docker with `--engine docker`"
        }
    }
}

fn start_hint(engine: EngineKind) -> &'static str {
    match engine {
        EngineKind::Docker => {
            "start the Docker daemon (`sudo systemctl start docker`, or open Docker Desktop), or choose podman with `--engine podman`"
        }
        EngineKind::Podman => {
            "start the podman machine with `podman machine start` (on Linux, check `podman info` as the user that runs kind), or choose docker with `--engine docker`"
        }
    }
}

fn other_engine_note(engine: EngineKind, also_in: Option<&EngineKind>) -> String {
    match also_in {
        Some(other) => format!(
            "; it is present in {other}: rerun with `--engine {other}`, or copy it with `{other} save IMAGE | {engine} load`"
        ),
        None => format!("; build or pull it first (`{engine} images` lists what is there)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_137_reads_as_sigkill() {
        assert_eq!(
            ExitDescription::Code(137).to_string(),
            "exit status 137, i.e. killed by SIGKILL"
        );
        assert_eq!(ExitDescription::Signal(9).shell_code(), Some(137));
    }

    #[test]
    fn image_not_found_points_at_the_other_engine() {
        let message = EngineError::ImageNotFound {
            engine: EngineKind::Docker,
            image: "app:1".into(),
            also_in: Some(EngineKind::Podman),
        }
        .to_string();
        assert!(message.contains("--engine podman"), "{message}");
    }
}
