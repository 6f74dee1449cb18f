//! The runner: `up`, `test`, `down` and `run` of a plan, each recorded as
//! one run in the journal. This module is the sequencer; each step is a
//! module of [`steps`] with a context of only what it needs.
//!
//! `up`: the cluster (an existing one with the plan's name, found by kind's
//! node labels, is reused; a missing one is created with the kind CLI; a
//! `provider: existing` cluster is its kubeconfig context, checked), the
//! builds in batches that fit the memory budget ([`schedule`]), every plan
//! image delivered into every node (one at a time: a load's memory is
//! bounded, several at once would not be) or pushed to the cluster's
//! registry ([`registry_delivery`]), then the deploy steps with their waits
//! (applying [`overlay`]s that name the pushed images). `test`: the plan's
//! test command with `KUBECONFIG` and its environment, its output streamed
//! and kept, its exit code recorded. `down`: `kind delete cluster`, never
//! for an existing cluster. `run`: all three, the teardown following the
//! plan's policy.
//!
//! Every step is a journal step with a start, an end and its commands; the
//! monitor samples memory (host and nodes) throughout. A failed deploy or
//! test step also gets the logs and descriptions of the pods that are not
//! ready ([`pods`]), each file listed in the journal. What happens is
//! shown by a [`progress::Reporter`] (a frame of active steps on a
//! terminal, timestamped lines elsewhere), which the runner only informs. A failing step gets
//! logs gathered and a diagnosis (`diagnosis.json`, `diagnosis.md` in the
//! run directory). SIGINT and SIGTERM stop the running child (a build,
//! kubectl, the test) and end the journal with `run-end interrupted`; an
//! image delivery in progress stops at once too (the process layer's
//! watchdog stops its engine commands), with nothing tagged.

pub mod build;
pub mod estimate;
pub mod kube;
pub mod overlay;
pub mod pods;
pub mod progress;
pub mod registry_delivery;
pub mod registry_hosting;
pub mod schedule;
pub mod steps;

use crate::engine::{self, Engine, EngineChoice, Selection};
use crate::journal::{Event, Journal, JournalError, Outcome};
use crate::plan::{self, Plan, TeardownAction};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use steps::builds::Builds;
use steps::cluster::{ClusterState, ClusterStep};
use steps::deploy::Deploy;
use steps::preflight::Preflight;
use steps::teardown::Teardown;
use steps::test::TestStep;
use steps::{Failure, OnCluster, Recorder, StepError};

/// What to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Up,
    Test,
    Down,
    Run,
}

/// How to run it.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where runs are recorded.
    pub root: PathBuf,
    /// `--engine`, which wins over the plan's `cluster.engine`.
    pub engine: Option<EngineChoice>,
    /// `--keep` / `--delete`, for `run`.
    pub teardown: Option<TeardownAction>,
    /// `--progress`.
    pub progress: progress::Mode,
    /// Stdout carries the run's JSON report: children's stdout is shown on
    /// stderr instead.
    pub stdout_for_report: bool,
    /// Who said to skip the pre-flight of `up` and `run`
    /// (`--skip-preflight`, `LOADMASTER_SKIP_PREFLIGHT=1`), if anyone did.
    pub skip_preflight: Option<String>,
}

/// How long the kind CLI may take to create or delete a cluster.
const KIND_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// How long reading events or logs may take after a failure.
const GATHER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one apply may take.
const APPLY_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// The most pods whose logs a failure gathers: a broken deployment of many
/// replicas tells the same story in each.
const MAX_PODS_READ: usize = 10;

/// Why a run could not start at all (no journal was written).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Select(#[from] engine::SelectError),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// What a run did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub phase: Phase,
    pub run_id: String,
    pub run_dir: PathBuf,
    pub cluster: String,
    pub result: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The test command's exit code, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_exit_code: Option<i32>,
    /// The signal that stopped the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// `diagnosis.md` of a failed run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<PathBuf>,
    /// Images pushed to the cluster's registry (`delivery: registry`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pushed: Vec<registry_delivery::Pushed>,
}

impl Report {
    /// The exit code for the command line: the test's own code when the
    /// test failed, 128 + the signal when interrupted, 1 for another
    /// failure.
    pub fn exit_code(&self) -> u8 {
        match self.result {
            Outcome::Succeeded | Outcome::Skipped => 0,
            Outcome::Interrupted => 128u8.saturating_add(self.signal.unwrap_or(15) as u8),
            Outcome::Failed => match self.test_exit_code {
                Some(code) if code != 0 => u8::try_from(code).unwrap_or(1),
                _ => 1,
            },
        }
    }
}

/// Runs `phase` of `plan`.
pub fn execute(plan: &Plan, phase: Phase, options: &Options) -> Result<Report, RunError> {
    crate::process::signal::install();
    let selection = select(plan, options.engine)?;
    let journal = Arc::new(Journal::create(&options.root, plan)?);
    let logs = journal.dir().join("logs");
    std::fs::create_dir_all(&logs).map_err(|source| JournalError::Write {
        path: logs.clone(),
        source,
    })?;
    let mut run = Run {
        plan,
        options,
        recorder: Recorder {
            reporter: progress::for_stderr(options.progress, options.stdout_for_report),
            journal,
        },
        cluster: ClusterState::before(&selection),
        selection,
        rewrites: Vec::new(),
        pushed: Vec::new(),
        test_exit_code: None,
    };
    let result = run.phase(phase);
    Ok(run.finish(phase, result))
}

fn select(plan: &Plan, flag: Option<EngineChoice>) -> Result<Selection, engine::SelectError> {
    match (flag, plan.cluster.engine) {
        (None, Some(kind)) => Ok(Selection {
            engine: Engine::new(kind),
            reason: format!("the plan's cluster.engine: {kind}"),
            explicit: true,
            both_answer: false,
        }),
        (flag, _) => engine::select(flag, &|name| std::env::var(name).ok()),
    }
}

/// The sequencer: runs the steps of a phase in order, each from a small
/// context made of what earlier steps found.
struct Run<'a> {
    plan: &'a Plan,
    options: &'a Options,
    recorder: Recorder,
    selection: Selection,
    cluster: ClusterState,
    /// Plan images as pushed to a registry, renamed so in deployed
    /// manifests; none for `load` delivery.
    rewrites: Vec<overlay::Rewrite>,
    pushed: Vec<registry_delivery::Pushed>,
    test_exit_code: Option<i32>,
}

impl Run<'_> {
    fn phase(&mut self, phase: Phase) -> Result<(), Failure> {
        match phase {
            Phase::Up => self.up(),
            Phase::Test => {
                self.find_cluster(false)?;
                self.test()
            }
            Phase::Down => self.teardown().down(),
            Phase::Run => {
                let result = self.up().and_then(|()| self.test());
                let succeeded = result.is_ok();
                let interrupted = matches!(result, Err((_, StepError::Interrupted(_))));
                if interrupted {
                    return result;
                }
                if let Err((step, error)) = &result {
                    self.on_cluster().leave_evidence(step, error);
                }
                let teardown = self.teardown().run(succeeded, self.options.teardown);
                result.and(teardown)
            }
        }
    }

    fn up(&mut self) -> Result<(), Failure> {
        Preflight {
            plan: self.plan,
            root: &self.options.root,
            selection: &self.selection,
            skipped_by: self.options.skip_preflight.as_deref(),
            recorder: &self.recorder,
        }
        .run()?;
        self.find_cluster(true)?;
        Builds {
            plan: self.plan,
            root: &self.options.root,
            info: self.cluster.info.as_ref(),
            engine: self.cluster.engine.kind(),
            recorder: &self.recorder,
        }
        .run()?;
        let delivery = self.on_cluster();
        match &self.plan.cluster.delivery {
            plan::Delivery::Load => {
                for image in &self.plan.images {
                    delivery.load(image)?;
                }
            }
            plan::Delivery::Registry {
                registry,
                allow_http,
            } => {
                (self.pushed, self.rewrites) =
                    delivery.push_images(registry.as_deref(), *allow_http)?
            }
        }
        let deploy = Deploy {
            plan: self.plan,
            kube: &self.cluster.kube,
            rewrites: &self.rewrites,
            recorder: &self.recorder,
        };
        for name in &self.plan.deploy_order {
            deploy.run(name)?;
        }
        Ok(())
    }

    fn find_cluster(&mut self, create: bool) -> Result<(), Failure> {
        ClusterStep {
            plan: self.plan,
            selection: &self.selection,
            recorder: &self.recorder,
        }
        .run(create, &mut self.cluster)
    }

    fn test(&mut self) -> Result<(), Failure> {
        let Some(test) = &self.plan.test else {
            return Ok(());
        };
        let (result, exit) = TestStep {
            test,
            kube: &self.cluster.kube,
            recorder: &self.recorder,
        }
        .run();
        self.test_exit_code = exit;
        result
    }

    fn teardown(&self) -> Teardown<'_> {
        Teardown {
            plan: self.plan,
            selection: &self.selection,
            engine: &self.cluster.engine,
            cluster_found: self.cluster.found,
            recorder: &self.recorder,
        }
    }

    fn on_cluster(&self) -> OnCluster<'_> {
        OnCluster {
            plan: self.plan,
            engine: &self.cluster.engine,
            nodes: &self.cluster.nodes,
            kube: &self.cluster.kube,
            recorder: &self.recorder,
        }
    }

    /// Ends the run: failure handling for the phases that do not tear down,
    /// the monitor stopped, `run-end` recorded.
    fn finish(mut self, phase: Phase, result: Result<(), Failure>) -> Report {
        if let (Err((step, error)), false) = (&result, phase == Phase::Run) {
            self.on_cluster().leave_evidence(step, error);
        }
        if let Some(monitor) = self.cluster.monitor.take() {
            for note in monitor.stop().notes {
                self.recorder
                    .reporter
                    .note(None, &format!("monitor: {note}"));
            }
        }
        let (outcome, failed_step, error, signal) = match result {
            Ok(()) => (Outcome::Succeeded, None, None, None),
            Err((step, StepError::Interrupted(signal))) => (
                Outcome::Interrupted,
                Some(step),
                Some(format!("stopped by signal {signal}")),
                Some(signal),
            ),
            Err((step, StepError::Failed { message, .. })) => {
                (Outcome::Failed, Some(step), Some(message), None)
            }
        };
        self.recorder.record(&Event::run_end(outcome));
        let journal = &self.recorder.journal;
        let diagnosis = journal.dir().join("diagnosis.md");
        Report {
            phase,
            run_id: journal.id().to_string(),
            run_dir: journal.dir().to_path_buf(),
            cluster: self.plan.cluster.name.clone(),
            result: outcome,
            failed_step,
            error,
            test_exit_code: self.test_exit_code,
            signal,
            diagnosis: diagnosis.exists().then_some(diagnosis),
            pushed: self.pushed,
        }
    }
}
