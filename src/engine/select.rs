//! Choosing the engine: the flag, then `LOADMASTER_ENGINE`, then kind's own
//! `KIND_EXPERIMENTAL_PROVIDER`, then whichever engine answers.
//!
//! Honouring kind's variable matters: it is how kind users already say
//! "podman", and ignoring it is how the docker/podman mix-up starts.

use super::{Engine, EngineError, EngineKind};
use std::thread;

/// The `--engine` flag's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineChoice {
    /// Use whichever engine answers (docker, kind's default, when both do).
    Auto,
    Docker,
    Podman,
}

impl From<EngineKind> for EngineChoice {
    fn from(kind: EngineKind) -> EngineChoice {
        match kind {
            EngineKind::Docker => EngineChoice::Docker,
            EngineKind::Podman => EngineChoice::Podman,
        }
    }
}

/// The chosen engine and why it was chosen.
#[derive(Clone, Debug)]
pub struct Selection {
    pub engine: Engine,
    /// Why this engine: "--engine podman", "KIND_EXPERIMENTAL_PROVIDER=podman"...
    pub reason: String,
    /// True when the user named the engine (flag or environment); false when
    /// it was found by asking both. Only a probed choice may be revised, e.g.
    /// to the engine that actually runs the cluster asked for.
    pub explicit: bool,
    /// Set when both engines answered: worth telling the user.
    pub both_answer: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("{source_name}={value:?} is not an engine loadmaster drives: use docker or podman")]
    UnknownEngine { source_name: String, value: String },

    #[error("no container engine answers:\n  docker: {docker}\n  podman: {podman}")]
    NoEngine {
        docker: Box<EngineError>,
        podman: Box<EngineError>,
    },
}

/// Picks the engine. `env` reads an environment variable (a parameter so
/// that tests need not change the process environment).
pub fn select(
    flag: Option<EngineChoice>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Selection, SelectError> {
    let named = |kind: EngineKind, reason: String| Selection {
        engine: Engine::new(kind),
        reason,
        explicit: true,
        both_answer: false,
    };
    match flag {
        Some(EngineChoice::Docker) => {
            return Ok(named(EngineKind::Docker, "--engine docker".into()));
        }
        Some(EngineChoice::Podman) => {
            return Ok(named(EngineKind::Podman, "--engine podman".into()));
        }
        Some(EngineChoice::Auto) => return probe(),
        None => {}
    }
    for variable in ["LOADMASTER_ENGINE", "KIND_EXPERIMENTAL_PROVIDER"] {
        let Some(value) = env(variable).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        let kind = match value.trim() {
            "docker" => EngineKind::Docker,
            "podman" => EngineKind::Podman,
            "auto" if variable == "LOADMASTER_ENGINE" => return probe(),
            _ => {
                return Err(SelectError::UnknownEngine {
                    source_name: variable.to_string(),
                    value,
                });
            }
        };
        return Ok(named(kind, format!("{variable}={value}")));
    }
    probe()
}

/// Asks both engines at once whether they answer.
fn probe() -> Result<Selection, SelectError> {
    let answers: Vec<(EngineKind, Result<(), EngineError>)> = thread::scope(|scope| {
        let asks: Vec<_> = EngineKind::ALL
            .map(|kind| scope.spawn(move || (kind, Engine::new(kind).answers())))
            .into_iter()
            .collect();
        asks.into_iter()
            .map(|ask| ask.join().expect("probe thread panicked"))
            .collect()
    });
    let mut docker = None;
    let mut podman = None;
    for (kind, answer) in answers {
        match kind {
            EngineKind::Docker => docker = Some(answer),
            EngineKind::Podman => podman = Some(answer),
        }
    }
    let (docker, podman) = (
        docker.expect("docker probed"),
        podman.expect("podman probed"),
    );
    let probed = |kind: EngineKind, reason: &str, both_answer: bool| Selection {
        engine: Engine::new(kind),
        reason: reason.to_string(),
        explicit: false,
        both_answer,
    };
    match (docker, podman) {
        (Ok(()), Ok(())) => Ok(probed(
            EngineKind::Docker,
            "both docker and podman answer; docker is kind's default (choose with --engine, LOADMASTER_ENGINE or KIND_EXPERIMENTAL_PROVIDER)",
            true,
        )),
        (Ok(()), Err(_)) => Ok(probed(
            EngineKind::Docker,
            "docker is the engine that answers",
            false,
        )),
        (Err(_), Ok(())) => Ok(probed(
            EngineKind::Podman,
            "podman is the engine that answers",
            false,
        )),
        (Err(docker), Err(podman)) => Err(SelectError::NoEngine {
            docker: Box::new(docker),
            podman: Box::new(podman),
        }),
    }
}

impl Engine {
    /// Whether the engine is installed and its service reachable.
    pub fn answers(&self) -> Result<(), EngineError> {
        // Both CLIs fail this when their service (daemon, podman machine or
        // remote socket) cannot be reached.
        self.query(&["version", "--format", "{{.Server.Version}}"])
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        }
    }

    #[test]
    fn the_flag_wins_over_the_environment() {
        let env = env_of(&[
            ("LOADMASTER_ENGINE", "docker"),
            ("KIND_EXPERIMENTAL_PROVIDER", "docker"),
        ]);
        let chosen = select(Some(EngineChoice::Podman), &env).unwrap();
        assert_eq!(chosen.engine.kind(), EngineKind::Podman);
        assert_eq!(chosen.reason, "--engine podman");
        assert!(chosen.explicit);
    }

    #[test]
    fn loadmaster_engine_wins_over_kinds_variable() {
        let env = env_of(&[
            ("LOADMASTER_ENGINE", "docker"),
            ("KIND_EXPERIMENTAL_PROVIDER", "podman"),
        ]);
        let chosen = select(None, &env).unwrap();
        assert_eq!(chosen.engine.kind(), EngineKind::Docker);
        assert_eq!(chosen.reason, "LOADMASTER_ENGINE=docker");
    }

    #[test]
    fn kinds_variable_is_honoured() {
        let env = env_of(&[("KIND_EXPERIMENTAL_PROVIDER", "podman")]);
        let chosen = select(None, &env).unwrap();
        assert_eq!(chosen.engine.kind(), EngineKind::Podman);
        assert_eq!(chosen.reason, "KIND_EXPERIMENTAL_PROVIDER=podman");
    }

    #[test]
    fn an_unknown_engine_name_is_an_error_naming_the_variable() {
        let env = env_of(&[("KIND_EXPERIMENTAL_PROVIDER", "nerdctl")]);
        let error = select(None, &env).unwrap_err().to_string();
        assert!(
            error.contains("KIND_EXPERIMENTAL_PROVIDER=\"nerdctl\""),
            "{error}"
        );
    }
}
