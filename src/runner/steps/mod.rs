//! The steps of a run, one module each: [`preflight`], [`cluster`], [`builds`],
//! [`deliver`] (and [`super::registry_delivery`]), [`deploy`], [`test`],
//! [`teardown`], and the [`evidence`] a failed step leaves. Each step is a
//! small struct holding only what it needs, made by the sequencer
//! ([`super::Run`]) from what earlier steps found.
//!
//! What every step shares is here: the [`Recorder`] that runs a body as a
//! journal step and records its commands and notes, [`Kube`], the kubectl
//! and `KUBECONFIG` of the cluster found, and [`OnCluster`], the context of
//! the steps that reach the cluster's nodes (delivery, failure evidence).

pub mod builds;
pub mod cluster;
pub mod deliver;
pub mod deploy;
pub mod evidence;
pub mod preflight;
pub mod teardown;
pub mod test;

use super::kube;
use super::progress::Reporter;
use super::{GATHER_TIMEOUT, build};
use crate::deliver::NodeFailure;
use crate::engine::Engine;
use crate::journal::{Event, Journal, Outcome};
use crate::plan::Plan;
use crate::process::signal;
use crate::process::{self, Ran, Spec};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Why a step failed.
#[derive(Debug)]
pub enum StepError {
    /// Failed with this message; `output` is what the failing command said
    /// (read by triage), `node` the node that failed a delivery and `facts`
    /// its failure as facts (the command, its exit, the node's state).
    Failed {
        message: String,
        output: String,
        node: Option<String>,
        facts: Option<Box<NodeFailure>>,
    },
    Interrupted(i32),
}

impl StepError {
    pub fn failed(message: impl Into<String>) -> StepError {
        let message = message.into();
        StepError::Failed {
            output: message.clone(),
            message,
            node: None,
            facts: None,
        }
    }
}

/// A failed step: its id and why.
pub type Failure = (String, StepError);

/// Where a run's steps are recorded and shown.
pub struct Recorder {
    pub journal: Arc<Journal>,
    pub reporter: Arc<dyn Reporter>,
    /// Held while a step's start or end is recorded and shown, so that
    /// steps running side by side appear in the same order in the journal
    /// and on the terminal.
    pub boundaries: Mutex<()>,
}

impl Recorder {
    /// Runs `body` as journal step `id`.
    pub fn step<T>(
        &self,
        id: &str,
        body: impl FnOnce() -> Result<T, StepError>,
    ) -> Result<T, Failure> {
        if let Some(signal) = signal::received() {
            return Err((id.to_string(), StepError::Interrupted(signal)));
        }
        let span = tracing::info_span!("step", id = %id);
        let _entered = span.enter();
        tracing::info!("started");
        {
            let _boundary = self.boundary();
            self.record(&Event::step_start(id));
            self.reporter.step_started(id);
        }
        let started = Instant::now();
        let result = body();
        let (outcome, error) = match &result {
            Ok(_) => (Outcome::Succeeded, None),
            Err(StepError::Interrupted(signal)) => (
                Outcome::Interrupted,
                Some(format!("stopped by signal {signal}")),
            ),
            Err(StepError::Failed { message, .. }) => (Outcome::Failed, Some(message.clone())),
        };
        let took = started.elapsed();
        tracing::info!(?outcome, duration_ms = took.as_millis() as u64, "finished");
        {
            let _boundary = self.boundary();
            self.reporter
                .step_finished(id, outcome, took, error.as_deref());
            self.record(&Event::step_end(id, outcome, error));
        }
        result.map_err(|error| (id.to_string(), error))
    }

    fn boundary(&self) -> std::sync::MutexGuard<'_, ()> {
        self.boundaries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an event. A journal that stops taking writes must not stop
    /// the environment coming up; the terminal still says so.
    pub fn record(&self, event: &Event) {
        if let Err(error) = self.journal.record(event) {
            self.reporter.note(None, &format!("warning: {error}"));
        }
    }

    pub fn note(&self, step: Option<&str>, message: String) {
        self.reporter.note(step, &message);
        self.record(&Event::note(step, message));
    }

    /// Runs a command under `step`, records it, and turns a failure into a
    /// step error that quotes its output.
    pub fn command(&self, step: &str, spec: &Spec) -> Result<Ran, StepError> {
        let ran = process::supervise(spec).map_err(|error| {
            StepError::failed(format!(
                "cannot run `{}`: {error} (is {} installed and on PATH?)",
                build::shell_words(&spec.argv),
                spec.argv[0]
            ))
        })?;
        self.record(&Event::command(
            step,
            spec.argv.clone(),
            ran.exit,
            &ran.stderr_tail,
            ran.duration,
        ));
        if let Some(signal) = ran.interrupted {
            return Err(StepError::Interrupted(signal));
        }
        Ok(ran)
    }

    /// [`Recorder::command`], failing the step when the command fails.
    pub fn checked(&self, step: &str, spec: &Spec) -> Result<Ran, StepError> {
        let ran = self.command(step, spec)?;
        if ran.success() {
            return Ok(ran);
        }
        let message = failure_line(spec, &ran);
        Err(StepError::Failed {
            output: format!("{}\nloadmaster: error: {message}", ran.tail_text()),
            message,
            node: None,
            facts: None,
        })
    }
}

/// How the run reaches the cluster's API: kubectl (with the context of an
/// existing cluster) and `KUBECONFIG` for it and the test.
#[derive(Default)]
pub struct Kube {
    pub kubectl: kube::Kubectl,
    /// `KUBECONFIG` for kubectl and the test (a path, or a `:` list).
    pub kubeconfig: Option<String>,
}

impl Kube {
    /// The environment kubectl and the test run with.
    pub fn env(&self) -> Vec<(String, String)> {
        self.kubeconfig
            .iter()
            .map(|value| ("KUBECONFIG".to_string(), value.clone()))
            .collect()
    }

    /// Runs a read-only command for evidence, keeps its output under
    /// `logs/file` (listed in the journal as `about`), and returns it, or
    /// why it could not be read (the command's error, or that it failed).
    pub fn gather(
        &self,
        recorder: &Recorder,
        step: &str,
        argv: &[String],
        file: &str,
        about: &str,
    ) -> Result<String, String> {
        let mut spec = Spec::new(argv, GATHER_TIMEOUT);
        spec.env = self.env();
        spec.whole_stdout = true;
        let path = Path::new("logs").join(file);
        spec.log = Some(recorder.journal.dir().join(&path));
        let ran = recorder.command(step, &spec);
        recorder.record(&Event::log_file(step, path, about));
        match ran {
            Ok(ran) if ran.success() => {
                Ok(String::from_utf8_lossy(&ran.stdout_tail).trim().to_string())
            }
            Ok(ran) => Err(String::from_utf8_lossy(&ran.stderr_tail).trim().to_string()),
            Err(StepError::Failed { message, .. }) => Err(message),
            Err(StepError::Interrupted(signal)) => {
                Err(format!("not read: stopped by signal {signal}"))
            }
        }
    }
}

/// The context of the steps that reach the cluster's nodes: delivery
/// ([`deliver`], [`super::registry_delivery`]) and the [`evidence`] of a
/// failure.
pub struct OnCluster<'a> {
    pub plan: &'a Plan,
    /// The engine the nodes run on.
    pub engine: &'a Engine,
    pub nodes: &'a [String],
    pub kube: &'a Kube,
    pub recorder: &'a Recorder,
}

/// "`COMMAND` failed (HOW): LAST LINE": loadmaster's words for a failed
/// command, which triage reads for the command and its exit status.
pub fn failure_line(spec: &Spec, ran: &Ran) -> String {
    format!(
        "`{}` failed ({}): {}",
        build::shell_words(&spec.argv),
        ran.describe(spec.timeout),
        ran.tail_text().lines().last().unwrap_or_default()
    )
}

/// A file name for something about `step` (`build/localhost/app:1` →
/// `build-localhost-app-1.log`): only characters every filesystem and
/// shell takes as they are.
pub fn file_name(step: &str, extension: &str) -> String {
    let stem: String = step
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{stem}.{extension}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn file_names_keep_only_plain_characters() {
        assert_eq!(
            super::file_name("build/localhost/app:1", "log"),
            "build-localhost-app-1.log"
        );
        assert_eq!(
            super::file_name("deploy/db-events", "txt"),
            "deploy-db-events.txt"
        );
    }
}
