//! The runner: `up`, `test`, `down` and `run` of a plan, each recorded as
//! one run in the journal. This module sequences the phases; each step is a
//! module of [`steps`] with a context of only what it needs.
//!
//! `up` is a graph of steps ([`pipeline`] makes it from the plan,
//! [`graph`] decides what starts, [`executor`] runs it): the pre-flight,
//! then the cluster (an existing one with the plan's name, found by kind's
//! node labels, is reused; a missing one is created with the kind CLI; a
//! `provider: existing` cluster is its kubeconfig context, checked) while
//! the images build within the memory budget; each image delivered into
//! every node as soon as its build and the cluster are there (deliveries
//! one at a time: they share the nodes' imports), or pushed to the
//! cluster's registry ([`registry_delivery`]); each deploy step with its
//! waits once its `needs` and the images its manifests name are there
//! (applying [`overlay`]s that name the pushed images). A failed step
//! stops new steps from starting (fail fast), or with `--keep-going` only
//! those that need it. `test`: the plan's test command with `KUBECONFIG`
//! and its environment, its output streamed and kept, its exit code
//! recorded. `down`: `kind delete cluster`, never for an existing cluster.
//! `run`: the graph of `up` with the test as its last step, then the
//! teardown following the plan's policy.
//!
//! Every step is a journal step with a start, an end and its commands, and
//! in the graph its needs and why it waited; the monitor samples memory
//! (host and nodes) throughout. A failed deploy or test step also gets the
//! logs and descriptions of the pods that are not ready ([`pods`]), each
//! file listed in the journal. What happens is emitted once to a
//! [`progress::Reporter`], the run's event stream, which the journal
//! writes and a renderer shows (a frame of active steps on a terminal,
//! timestamped lines elsewhere); the runner only informs. A failing
//! step gets logs gathered and a diagnosis (`diagnosis.json`,
//! `diagnosis.md` in the run directory). SIGINT and SIGTERM stop the
//! running children (builds, kubectl, the test), cancel every step not
//! started, and end the journal with `run-end interrupted`; an image
//! delivery in progress stops at once too (the process layer's watchdog
//! stops its engine commands), with nothing tagged.

pub mod build;
pub mod estimate;
pub mod executor;
pub mod graph;
mod jobs;
pub mod kube;
pub mod manifests;
pub mod overlay;
pub mod pipeline;
pub mod pods;
pub mod progress;
pub mod pull_policy;
pub mod registry_delivery;
pub mod registry_hosting;
pub mod steps;

use crate::engine::{self, Engine, EngineChoice, Selection};
use crate::journal::{self, Event, Journal, JournalError, Outcome};
use crate::plan::{Plan, TeardownAction};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;
use steps::cluster::{ClusterState, ClusterStep};
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
    /// `--keep-going`: after a failure, run what does not need it.
    pub keep_going: bool,
    /// The graph, or the phase order it replaced (for the benchmark).
    pub order: pipeline::Order,
}

/// The order `LOADMASTER_ORDER` asks for: `phases` runs `up` in the phases
/// it had before the step graph (the benchmark's baseline); anything else,
/// or nothing, the graph.
pub fn order_from_env(var: &dyn Fn(&str) -> Option<String>) -> pipeline::Order {
    match var("LOADMASTER_ORDER").as_deref() {
        Some("phases") => pipeline::Order::Phases,
        _ => pipeline::Order::Graph,
    }
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
    /// Every step as the journal recorded it: start, end, needs, waits,
    /// and whether it is on the critical path.
    pub steps: Vec<StepTiming>,
    /// Steps of the graph that never ran, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cancelled: Vec<journal::Cancelled>,
    /// The critical path's length (the durations of its steps added up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub critical_path_ms: Option<u64>,
}

/// One step in the `-o json` report.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepTiming {
    pub id: String,
    pub started: journal::Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<journal::Timestamp>,
    pub result: journal::StepStatus,
    pub needs: Vec<String>,
    pub waits: Vec<journal::WaitSpan>,
    pub critical: bool,
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
    let run = Run {
        plan,
        options,
        recorder: Recorder {
            reporter: progress::recorded(
                journal.clone(),
                options.progress,
                options.stdout_for_report,
            ),
            journal,
            boundaries: Mutex::new(()),
        },
        cluster: RwLock::new(ClusterState::before(&selection)),
        selection,
        registry: OnceLock::new(),
        pushed: Mutex::new(BTreeMap::new()),
        test_exit_code: Mutex::new(None),
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

/// The sequencer: runs the phases, each step from a small context made
/// of what earlier steps found. Shared by the graph's threads: what a step
/// finds for later ones is behind a lock.
struct Run<'a> {
    plan: &'a Plan,
    options: &'a Options,
    recorder: Recorder,
    selection: Selection,
    /// Written by the cluster step alone, before any step that reads it
    /// starts.
    cluster: RwLock<ClusterState>,
    /// The registry of a `delivery: registry` plan, set by its step.
    registry: OnceLock<registry_delivery::Registry>,
    /// Plan images (by index) as pushed to the registry, and how deployed
    /// manifests are to name them; none for `load` delivery.
    pushed: Mutex<BTreeMap<usize, (registry_delivery::Pushed, overlay::Rewrite)>>,
    test_exit_code: Mutex<Option<i32>>,
}

impl Run<'_> {
    fn phase(&self, phase: Phase) -> Result<(), Failure> {
        match phase {
            Phase::Up => self.up(false),
            Phase::Test => {
                self.find_cluster(false)?;
                self.test()
            }
            Phase::Down => self.teardown(|teardown| teardown.down()),
            Phase::Run => {
                let result = self.up(true);
                let succeeded = result.is_ok();
                let interrupted = matches!(result, Err((_, StepError::Interrupted(_))));
                if interrupted {
                    return result;
                }
                if let Err((step, error)) = &result {
                    self.on_cluster(|cluster| cluster.leave_evidence(step, error));
                }
                let teardown =
                    self.teardown(|teardown| teardown.run(succeeded, self.options.teardown));
                result.and(teardown)
            }
        }
    }

    /// The pre-flight; `uses`: each deploy step's image uses.
    fn preflight(&self, uses: &[Result<Vec<manifests::ImageUse>, String>]) -> Result<(), Failure> {
        Preflight {
            plan: self.plan,
            root: &self.options.root,
            selection: &self.selection,
            skipped_by: self.options.skip_preflight.as_deref(),
            uses,
            recorder: &self.recorder,
        }
        .run()
    }

    fn find_cluster(&self, create: bool) -> Result<(), Failure> {
        ClusterStep {
            plan: self.plan,
            selection: &self.selection,
            recorder: &self.recorder,
        }
        .run(
            create,
            &mut self.cluster.write().unwrap_or_else(|p| p.into_inner()),
        )
    }

    fn cluster(&self) -> std::sync::RwLockReadGuard<'_, ClusterState> {
        self.cluster.read().unwrap_or_else(|p| p.into_inner())
    }

    fn test(&self) -> Result<(), Failure> {
        let Some(test) = &self.plan.test else {
            return Ok(());
        };
        let cluster = self.cluster();
        let (result, exit) = TestStep {
            test,
            kube: &cluster.kube,
            recorder: &self.recorder,
        }
        .run();
        *self
            .test_exit_code
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = exit;
        result
    }

    fn teardown<T>(&self, body: impl FnOnce(Teardown<'_>) -> T) -> T {
        let cluster = self.cluster();
        body(Teardown {
            plan: self.plan,
            selection: &self.selection,
            engine: &cluster.engine,
            cluster_found: cluster.found,
            recorder: &self.recorder,
        })
    }

    /// `body` with the context of the steps that reach the cluster's nodes.
    fn on_cluster<T>(&self, body: impl FnOnce(&OnCluster<'_>) -> T) -> T {
        let cluster = self.cluster();
        body(&OnCluster {
            plan: self.plan,
            engine: &cluster.engine,
            nodes: &cluster.nodes,
            kube: &cluster.kube,
            recorder: &self.recorder,
        })
    }

    /// Ends the run: failure handling for the phases that do not tear down,
    /// the monitor stopped, `run-end` recorded.
    fn finish(self, phase: Phase, result: Result<(), Failure>) -> Report {
        if let (Err((step, error)), false) = (&result, phase == Phase::Run) {
            self.on_cluster(|cluster| cluster.leave_evidence(step, error));
        }
        let monitor = self
            .cluster
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .monitor
            .take();
        if let Some(monitor) = monitor {
            for note in monitor.stop().notes {
                self.recorder
                    .reporter
                    .notice(None, &format!("monitor: {note}"));
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
        // The timeline as the journal has it: what reports read too.
        let record = Journal::open(journal.dir()).ok();
        let steps = record.as_ref().map_or_else(Vec::new, |record| {
            record
                .steps
                .iter()
                .map(|step| StepTiming {
                    id: step.id.clone(),
                    started: step.started,
                    ended: step.ended,
                    result: step.status,
                    needs: step.needs.clone(),
                    waits: step.waits.clone(),
                    critical: step.critical,
                })
                .collect()
        });
        Report {
            phase,
            run_id: journal.id().to_string(),
            run_dir: journal.dir().to_path_buf(),
            cluster: self.plan.cluster.name.clone(),
            result: outcome,
            failed_step,
            error,
            test_exit_code: *self
                .test_exit_code
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
            signal,
            diagnosis: diagnosis.exists().then_some(diagnosis),
            pushed: std::mem::take(&mut *self.pushed.lock().unwrap_or_else(|p| p.into_inner()))
                .into_values()
                .map(|(pushed, _)| pushed)
                .collect(),
            cancelled: record
                .as_ref()
                .map_or_else(Vec::new, |r| r.cancelled.clone()),
            critical_path_ms: record.as_ref().and_then(|r| r.critical_path_ms),
            steps,
        }
    }
}
