//! The steps of a run, one module each: [`preflight`], [`cluster`], [`builds`],
//! [`deliver`] (and [`super::registry_delivery`]), [`deploy`], [`test`],
//! [`teardown`], and the [`evidence`] a failed step leaves. Each step is a
//! small struct holding only what it needs, made by the sequencer
//! ([`super::Run`]) from what earlier steps found.
//!
//! What every step shares is here: the [`Recorder`] that runs a body as a
//! step of the run's event stream (which the journal is a sink of) and
//! emits its commands and notes, [`Kube`], the kubectl
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
use crate::events;
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

/// Where a run's steps are shown and recorded: `reporter` is the run's
/// event stream, the journal one of its sinks.
pub struct Recorder {
    /// The run's directory (logs, artifacts, the diagnosis); its events
    /// come through `reporter`.
    pub journal: Arc<Journal>,
    pub reporter: Arc<dyn Reporter>,
    /// Held while a step's start or end is emitted, so that steps running
    /// side by side start and end in the same order for every sink.
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
            self.reporter.emit(&events::Event::StepStarted { step: id });
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
            self.reporter.emit(&events::Event::StepFinished {
                step: id,
                outcome,
                duration_ms: took.as_millis() as u64,
                error: error.as_deref(),
            });
        }
        result.map_err(|error| (id.to_string(), error))
    }

    fn boundary(&self) -> std::sync::MutexGuard<'_, ()> {
        self.boundaries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fact only the journal keeps. A journal that stops taking writes
    /// does not stop the environment coming up; the terminal says so once.
    pub fn record(&self, event: &Event) {
        self.reporter.record(event);
    }

    /// A note shown and kept.
    pub fn note(&self, step: Option<&str>, message: String) {
        self.reporter.note(step, &message);
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

    /// Runs a read-only kubectl command for evidence: [`gather`] with
    /// kubectl's environment.
    pub fn gather(
        &self,
        recorder: &Recorder,
        step: &str,
        argv: &[String],
        file: &str,
        about: &str,
    ) -> Result<String, String> {
        gather(recorder, step, argv, self.env(), file, about)
    }
}

/// Runs a read-only command for evidence with `env`, keeps its output
/// under `logs/file` (listed in the journal as `about`), and returns it, or
/// why it could not be read (the command's error, or that it failed).
pub fn gather(
    recorder: &Recorder,
    step: &str,
    argv: &[String],
    env: Vec<(String, String)>,
    file: &str,
    about: &str,
) -> Result<String, String> {
    let mut spec = Spec::new(argv, GATHER_TIMEOUT);
    spec.env = env;
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
        Err(StepError::Interrupted(signal)) => Err(format!("not read: stopped by signal {signal}")),
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
    use super::*;
    use crate::events::Events;
    use crate::events::plain::{ChildOutput, PlainLines};
    use crate::journal::EventBody;

    /// A step, its note and its command are emitted once, on the run's
    /// stream: the renderer shows the step and the note, the journal keeps
    /// all three, each once (a recorder that also wrote the journal itself
    /// would record them twice; one that wrote only the journal would leave
    /// the renderer blank).
    #[test]
    fn one_emitted_step_reaches_the_journal_and_the_renderer() {
        let scratch = tempfile::Builder::new()
            .prefix("lm-recorder-")
            .tempdir()
            .unwrap();
        let root = scratch.path().to_path_buf();
        let journal = Arc::new(Journal::create_for_command(&root, "up", None, None).unwrap());
        let children = ChildOutput {
            stdout_for_report: true,
        };
        let plain = Arc::new(PlainLines::new(Vec::new(), children));
        let recorder = Recorder {
            journal: journal.clone(),
            reporter: Arc::new(Events::recorded(journal.clone(), plain.clone())),
            boundaries: Mutex::new(()),
        };
        let step = "build/app:1";
        let broken = ["sh", "-c", "echo 'no space left' >&2; exit 3"];
        let failed = recorder.step(step, || {
            recorder.note(Some(step), "the cache is warm".to_string());
            recorder.checked(
                step,
                &Spec::new(&broken, std::time::Duration::from_secs(10)),
            )
        });
        let record = Journal::open(journal.dir()).unwrap();
        assert!(matches!(failed, Err((id, StepError::Failed { .. })) if id == step));

        let kept: Vec<&EventBody> = record
            .events
            .iter()
            .filter(|e| e.step.as_deref() == Some(step))
            .map(|e| &e.body)
            .collect();
        assert_eq!(kept.len(), 4, "{kept:#?}");
        assert_eq!(kept[0], &EventBody::StepStart);
        assert!(matches!(kept[1], EventBody::Note { message } if message == "the cache is warm"));
        assert!(
            matches!(kept[2], EventBody::Command { argv, exit, stderr_tail, .. }
                if argv[0] == "sh" && exit.code == Some(3) && stderr_tail == "no space left\n")
        );
        assert!(
            matches!(kept[3], EventBody::StepEnd { result: Outcome::Failed, error: Some(error) }
                if error.contains("no space left"))
        );

        drop(recorder);
        let plain = Arc::into_inner(plain).expect("the stream is gone");
        let shown = String::from_utf8(plain.into_inner()).unwrap();
        let lines: Vec<&str> = shown
            .lines()
            .map(|l| l.split_once(' ').unwrap().1)
            .collect();
        assert_eq!(lines.len(), 3, "{shown}");
        assert_eq!(lines[0], "build/app:1 started");
        assert_eq!(lines[1], "build/app:1: the cache is warm");
        assert!(lines[2].starts_with("build/app:1 failed ("), "{shown}");
    }

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
