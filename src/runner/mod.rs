//! The runner: `up`, `test`, `down` and `run` of a plan, each recorded as
//! one run in the journal.
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
//! kubectl, the test) and end the journal with `run-end interrupted`. An
//! image delivery in progress is not a child of its own: under SIGTERM it
//! finishes and the run stops after it; a Ctrl-C from a terminal reaches
//! its engine commands too and stops it at once.

pub mod build;
pub mod estimate;
pub mod kube;
pub mod overlay;
pub mod pods;
pub mod process;
pub mod progress;
pub mod registry_delivery;
pub mod registry_hosting;
pub mod schedule;
pub mod signal;

use crate::cluster::{self, ClusterError};
use crate::deliver::{self, NodeResult, PathChoice, Source};
use crate::engine::{self, Engine, EngineChoice, EngineInfo, Selection};
use crate::journal::{Event, Journal, JournalError, Outcome, ScheduledBuild};
use crate::monitor::{Monitor, NodeSource, Sources};
use crate::plan::{
    Apply, CommandLine, Delivery, DeployStep, Image, ImageSource, Plan, Provider, PullPolicy,
    TeardownAction,
};
use crate::triage::{self, Diagnosis, render};
use process::{Ran, Spec};
use progress::Reporter;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// Why a step failed.
#[derive(Debug)]
enum StepError {
    /// Failed with this message; `output` is what the failing command said
    /// (read by triage), `node` the node that failed a delivery.
    Failed {
        message: String,
        output: String,
        node: Option<String>,
    },
    Interrupted(i32),
}

impl StepError {
    fn failed(message: impl Into<String>) -> StepError {
        let message = message.into();
        StepError::Failed {
            output: message.clone(),
            message,
            node: None,
        }
    }
}

/// Runs `phase` of `plan`.
pub fn execute(plan: &Plan, phase: Phase, options: &Options) -> Result<Report, RunError> {
    signal::install();
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
        reporter: progress::for_stderr(options.progress, options.stdout_for_report),
        journal,
        engine: selection.engine.clone(),
        selection,
        info: None,
        monitor: None,
        nodes: Vec::new(),
        kubectl: kube::Kubectl::default(),
        kubeconfig: None,
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

struct Run<'a> {
    plan: &'a Plan,
    options: &'a Options,
    reporter: Arc<dyn Reporter>,
    journal: Arc<Journal>,
    selection: Selection,
    /// The engine the cluster's nodes run on.
    engine: Engine,
    info: Option<EngineInfo>,
    monitor: Option<Monitor>,
    /// The cluster's Kubernetes nodes (none for an existing cluster: they
    /// are out of reach).
    nodes: Vec<String>,
    kubectl: kube::Kubectl,
    /// `KUBECONFIG` for kubectl and the test (a path, or a `:` list).
    kubeconfig: Option<String>,
    /// Plan images as pushed to a registry, renamed so in deployed
    /// manifests; none for `load` delivery.
    rewrites: Vec<overlay::Rewrite>,
    pushed: Vec<registry_delivery::Pushed>,
    test_exit_code: Option<i32>,
}

/// A failed step: its id and why.
type Failure = (String, StepError);

impl Run<'_> {
    fn phase(&mut self, phase: Phase) -> Result<(), Failure> {
        match phase {
            Phase::Up => self.up(),
            Phase::Test => {
                self.cluster(false)?;
                self.test()
            }
            Phase::Down => self.down(),
            Phase::Run => {
                let result = self.up().and_then(|()| self.test());
                let succeeded = result.is_ok();
                let interrupted = matches!(result, Err((_, StepError::Interrupted(_))));
                if interrupted {
                    return result;
                }
                if let Err((step, error)) = &result {
                    self.on_failure(step, error);
                }
                let teardown = self.teardown(succeeded);
                result.and(teardown)
            }
        }
    }

    fn up(&mut self) -> Result<(), Failure> {
        self.cluster(true)?;
        self.builds()?;
        match &self.plan.cluster.delivery {
            Delivery::Load => {
                for image in &self.plan.images {
                    self.deliver(image)?;
                }
            }
            Delivery::Registry {
                registry,
                allow_http,
            } => self.push_images(registry.as_deref(), *allow_http)?,
        }
        for name in &self.plan.deploy_order {
            self.deploy(name)?;
        }
        Ok(())
    }

    /// Runs `body` as journal step `id`.
    fn step<T>(&self, id: &str, body: impl FnOnce() -> Result<T, StepError>) -> Result<T, Failure> {
        if let Some(signal) = signal::received() {
            return Err((id.to_string(), StepError::Interrupted(signal)));
        }
        self.record(&Event::step_start(id));
        self.reporter.step_started(id);
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
        self.reporter
            .step_finished(id, outcome, started.elapsed(), error.as_deref());
        self.record(&Event::step_end(id, outcome, error));
        result.map_err(|error| (id.to_string(), error))
    }

    /// Records an event. A journal that stops taking writes must not stop
    /// the environment coming up; the terminal still says so.
    fn record(&self, event: &Event) {
        if let Err(error) = self.journal.record(event) {
            self.reporter.note(None, &format!("warning: {error}"));
        }
    }

    fn note(&self, step: Option<&str>, message: String) {
        self.reporter.note(step, &message);
        self.record(&Event::note(step, message));
    }

    /// Runs a command under `step`, records it, and turns a failure into a
    /// step error that quotes its output.
    fn command(&self, step: &str, spec: &Spec) -> Result<Ran, StepError> {
        let ran = process::run(spec).map_err(|error| {
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

    fn checked(&self, step: &str, spec: &Spec) -> Result<Ran, StepError> {
        let ran = self.command(step, spec)?;
        if ran.success() {
            return Ok(ran);
        }
        let message = failure_line(spec, &ran);
        Err(StepError::Failed {
            output: format!("{}\nloadmaster: error: {message}", ran.tail_text()),
            message,
            node: None,
        })
    }

    fn kube_env(&self) -> Vec<(String, String)> {
        self.kubeconfig
            .iter()
            .map(|value| ("KUBECONFIG".to_string(), value.clone()))
            .collect()
    }

    /// Finds the plan's cluster (creating a kind cluster when `create` and
    /// it is missing), then starts the monitor on its nodes.
    fn cluster(&mut self, create: bool) -> Result<(), Failure> {
        if let Provider::Existing {
            context,
            kubeconfig,
        } = &self.plan.cluster.provider
        {
            return self.existing_cluster(context, kubeconfig.as_deref());
        }
        let name = self.plan.cluster.name.clone();
        let found = self.step("cluster", || {
            match cluster::find(&self.selection, Some(&name)) {
                Ok(found) => {
                    self.note(
                        Some("cluster"),
                        format!(
                            "reusing kind cluster {name} on {} (found by its node labels): {}",
                            found.0.kind(),
                            found.1.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    );
                    Ok(found)
                }
                Err(ClusterError::NotFound { .. }) if create && !self.plan.cluster.existing => {
                    self.create_cluster()?;
                    cluster::find(&self.selection, Some(&name))
                        .map_err(|e| StepError::failed(e.to_string()))
                }
                Err(ClusterError::NotFound { engine, .. }) => {
                    let (why, fix) = if self.plan.cluster.existing {
                        (
                            "the plan says it exists (cluster.existing)",
                            format!("create it (`kind create cluster --name {name}`), or remove `existing: true` so that `loadmaster up` creates it, or correct cluster.name"),
                        )
                    } else {
                        (
                            "the test runs against a cluster that is up",
                            format!("bring it up first: `loadmaster up -f {}`", self.plan.file.display()),
                        )
                    };
                    Err(StepError::failed(format!(
                        "no kind cluster {name} on {engine} (no container has the label io.x-k8s.kind.cluster={name}); {why}\n  fix: {fix}"
                    )))
                }
                Err(error) => Err(StepError::failed(error.to_string())),
            }
        })?;
        let (engine, found) = found;
        self.engine = engine;
        let nodes = found
            .running_nodes()
            .map_err(|e| ("cluster".to_string(), StepError::failed(e.to_string())))?;
        self.nodes = nodes.iter().map(|n| n.name.clone()).collect();
        self.start_monitor();
        self.kubeconfig = self.find_kubeconfig();
        Ok(())
    }

    /// An existing cluster: its context checked in the kubeconfig (read
    /// offline), then named on every kubectl command and, through a
    /// kubeconfig in the run directory that only sets `current-context`
    /// before the user's own files, for the test. No credentials are
    /// copied. The monitor samples the engine's host only.
    fn existing_cluster(
        &mut self,
        context: &str,
        kubeconfig: Option<&Path>,
    ) -> Result<(), Failure> {
        let base = match kubeconfig {
            Some(path) => path.display().to_string(),
            None => std::env::var("KUBECONFIG")
                .ok()
                .filter(|value| !value.is_empty())
                .or_else(|| {
                    std::env::var_os("HOME")
                        .map(|home| Path::new(&home).join(".kube/config").display().to_string())
                })
                .unwrap_or_default(),
        };
        // Absolute: the test runs in its own working directory.
        let current = std::path::absolute(self.journal.dir().join("kubeconfig-context.json"))
            .map_err(|e| ("cluster".to_string(), StepError::failed(e.to_string())))?;
        let selector = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": context,
        });
        self.kubectl = kube::Kubectl {
            context: Some(context.to_string()),
        };
        self.step("cluster", || {
            std::fs::write(&current, selector.to_string()).map_err(|e| {
                StepError::failed(format!("cannot write {}: {e}", current.display()))
            })?;
            // The first file that sets current-context wins; the user's
            // files give clusters, users and contexts.
            let value = format!("{}:{base}", current.display());
            let mut spec = Spec::new(&self.kubectl.get_context(context), GATHER_TIMEOUT);
            spec.env = vec![("KUBECONFIG".to_string(), value.clone())];
            let ran = self.command("cluster", &spec)?;
            if !ran.success() {
                return Err(StepError::failed(format!(
                    "kubeconfig context {context:?} (cluster.context) is not in {base}: {}\n  fix: `kubectl config get-contexts` lists the contexts there; correct cluster.context, or name the file with cluster.kubeconfig",
                    ran.tail_text().lines().last().unwrap_or_default()
                )));
            }
            self.note(
                Some("cluster"),
                format!(
                    "existing cluster {}: context {context} from {base}; its nodes are not touched, KUBECONFIG={value}",
                    self.plan.cluster.name
                ),
            );
            Ok(value)
        })
        .map(|value| {
            self.kubeconfig = Some(value);
            self.start_monitor();
        })
    }

    fn create_cluster(&self) -> Result<(), StepError> {
        let name = &self.plan.cluster.name;
        if !process::on_path("kind") {
            return Err(StepError::failed(format!(
                "kind cluster {name} does not exist and the kind CLI is not on PATH to create it\n  fix: install kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation), or create the cluster yourself and rerun"
            )));
        }
        let config = kube::kind_config_file(&self.plan.cluster.config, self.journal.dir())
            .map_err(|e| StepError::failed(format!("cannot write the kind config: {e}")))?;
        let mut spec = Spec::new(
            &kube::kind_create(
                name,
                config.as_deref(),
                self.plan.cluster.node_image.as_deref(),
            ),
            KIND_TIMEOUT,
        );
        spec.echo = Some(self.reporter.clone());
        spec.env = vec![(
            "KIND_EXPERIMENTAL_PROVIDER".to_string(),
            self.selection.engine.kind().name().to_string(),
        )];
        self.checked("cluster", &spec).map(drop)
    }

    /// Samples the engine's host and the cluster's nodes from now on.
    fn start_monitor(&mut self) {
        let info = match self.engine.info() {
            Ok(info) => info,
            Err(error) => {
                self.note(None, format!("not sampling resources: {error}"));
                return;
            }
        };
        let tmpdir = std::env::var("TMPDIR").ok();
        let sources = Sources::for_engine(&info, tmpdir.as_deref());
        let reader = sources.reader().cloned();
        match Monitor::start(self.journal.clone(), sources, Duration::from_secs(1)) {
            Ok(monitor) => {
                for node in &self.nodes {
                    match reader
                        .as_ref()
                        .map(|reader| NodeSource::find(&self.engine, &info, reader, node))
                    {
                        Some(Ok(source)) => monitor.watch(source),
                        Some(Err(error)) => {
                            self.record(&Event::sample_note(node, &error.to_string()))
                        }
                        None => {}
                    }
                }
                self.monitor = Some(monitor);
            }
            Err(error) => self.note(None, format!("not sampling resources: {error}")),
        }
        self.info = Some(info);
    }

    /// `KUBECONFIG` for kubectl and the test: kind's for the cluster when
    /// kind is there, else the one loadmaster was given, else none.
    fn find_kubeconfig(&self) -> Option<String> {
        let name = &self.plan.cluster.name;
        if process::on_path("kind") {
            let spec = Spec {
                // A kubeconfig with its certificates is larger than the
                // tail a command otherwise keeps.
                whole_stdout: true,
                ..Spec::new(&kube::kind_kubeconfig(name), GATHER_TIMEOUT)
            };
            if let Ok(ran) = process::run(&spec)
                && ran.success()
            {
                // Absolute: the test runs in its own working directory.
                let path = self.journal.dir().join("kubeconfig");
                let path = std::path::absolute(&path).unwrap_or(path);
                if std::fs::write(&path, &ran.stdout_tail).is_ok() {
                    self.note(
                        None,
                        format!(
                            "KUBECONFIG: {} (from `kind get kubeconfig --name {name}`)",
                            path.display()
                        ),
                    );
                    return Some(path.display().to_string());
                }
            }
        }
        match std::env::var_os("KUBECONFIG") {
            Some(path) if !path.is_empty() => {
                self.note(None, format!("KUBECONFIG: {} (loadmaster's environment; kind could not give one for {name})", PathBuf::from(&path).display()));
                Some(PathBuf::from(path).display().to_string())
            }
            _ => {
                self.note(None, format!("no KUBECONFIG: the kind CLI is not there to give cluster {name}'s and none is set; kubectl and the test run without one"));
                None
            }
        }
    }

    /// Builds every image the plan builds, in batches within the budget.
    fn builds(&self) -> Result<(), Failure> {
        let builds: Vec<(&Image, &crate::plan::Build)> = self
            .plan
            .images
            .iter()
            .filter_map(|image| match &image.source {
                ImageSource::Build(build) => Some((image, build)),
                _ => None,
            })
            .collect();
        if builds.is_empty() {
            return Ok(());
        }
        let budget = match &self.info {
            Some(info) => {
                let sources = Sources::for_engine(info, std::env::var("TMPDIR").ok().as_deref());
                estimate::budget(info, &sources, &self.plan.budget)
            }
            None => estimate::Figure {
                bytes: self
                    .plan
                    .budget
                    .memory
                    .map_or(estimate::DEFAULT_BUILD_BYTES, |m| m.bytes()),
                source:
                    "the plan's budget.memory or the default (the engine could not be measured)"
                        .to_string(),
            },
        };
        let estimates: Vec<estimate::Figure> = builds
            .iter()
            .map(|(image, build)| estimate::build(&self.options.root, &image.name, build))
            .collect();
        let items: Vec<schedule::Item> = builds
            .iter()
            .zip(&estimates)
            .map(|((image, _), figure)| schedule::Item {
                name: image.name.clone(),
                estimate_bytes: figure.bytes,
            })
            .collect();
        let chosen = schedule::plan(&items, budget.bytes, self.plan.budget.parallel_builds);
        for warning in &chosen.warnings {
            self.reporter.note(None, &format!("warning: {warning}"));
        }
        let batches: Vec<Vec<ScheduledBuild>> = chosen
            .batches
            .iter()
            .map(|batch| {
                batch
                    .iter()
                    .map(|&n| ScheduledBuild {
                        image: builds[n].0.name.clone(),
                        estimate_bytes: estimates[n].bytes,
                        estimate_source: estimates[n].source.clone(),
                    })
                    .collect()
            })
            .collect();
        self.reporter.note(
            None,
            &format!(
                "{} build(s) in {} batch(es) within a budget of {} MiB ({})",
                builds.len(),
                batches.len(),
                budget.bytes >> 20,
                budget.source
            ),
        );
        self.record(&Event::schedule(
            budget.bytes,
            budget.source,
            batches,
            chosen.warnings.clone(),
        ));
        for batch in &chosen.batches {
            let results: Vec<Result<(), Failure>> = std::thread::scope(|scope| {
                let running: Vec<_> = batch
                    .iter()
                    .map(|&n| {
                        let (image, build) = builds[n];
                        scope.spawn(move || {
                            let step = format!("build/{}", image.name);
                            self.step(&step, || {
                                build::build(
                                    &self.journal,
                                    self.reporter.as_ref(),
                                    &step,
                                    self.engine.kind(),
                                    &image.name,
                                    build,
                                )
                                .map(drop)
                                .map_err(|error| {
                                    match signal::received() {
                                        Some(signal) => StepError::Interrupted(signal),
                                        None => StepError::failed(error.to_string()),
                                    }
                                })
                            })
                        })
                    })
                    .collect();
                running
                    .into_iter()
                    .map(|handle| handle.join().expect("a build thread panicked"))
                    .collect()
            });
            // Every build of the batch ran to its end; the first failure
            // stops the schedule.
            results.into_iter().collect::<Result<Vec<()>, Failure>>()?;
        }
        Ok(())
    }

    /// Delivers one image into every node.
    fn deliver(&self, image: &Image) -> Result<(), Failure> {
        let step = format!("deliver/{}", image.name);
        self.step(&step, || {
            let progress = self.reporter.delivery(&step);
            let options = deliver::Options::default();
            // A Ctrl-C reaches the engine commands a load runs (they share
            // loadmaster's process group) and fails the load: that is the
            // interruption, not a failure to diagnose.
            let failed_source = |error: deliver::DeliverError| match signal::received() {
                Some(signal) => StepError::Interrupted(signal),
                None => StepError::failed(error.to_string()),
            };
            let reports = match &image.source {
                ImageSource::Archive { path } => deliver::load(
                    &self.engine,
                    &self.nodes,
                    archive_source(path, &image.name)?,
                    &options,
                    progress.as_ref(),
                )
                .map_err(failed_source)?,
                source => {
                    if let ImageSource::Pull { policy } = source {
                        self.pull(&step, &image.name, *policy)?;
                    }
                    deliver::load_image(
                        &self.engine,
                        &self.plan.cluster.name,
                        &self.nodes,
                        &image.name,
                        PathChoice::Auto,
                        &options,
                        progress.as_ref(),
                    )
                    .map_err(failed_source)?
                    .reports
                }
            };
            for report in &reports {
                self.record(&Event::delivery(&step, report));
            }
            match reports.iter().find(|r| r.result == NodeResult::Failed) {
                Some(_) if let Some(signal) = signal::received() => {
                    Err(StepError::Interrupted(signal))
                }
                Some(report) => {
                    let error = report
                        .error
                        .clone()
                        .unwrap_or_else(|| "the load failed".to_string());
                    Err(StepError::Failed {
                        message: format!(
                            "loading {} into node {} failed: {error}",
                            image.name, report.node
                        ),
                        output: error,
                        node: Some(report.node.clone()),
                    })
                }
                None => Ok(()),
            }
        })
    }

    fn pull(&self, step: &str, image: &str, policy: PullPolicy) -> Result<(), StepError> {
        if policy == PullPolicy::IfMissing && self.engine.image_inspect(image).is_ok() {
            return Ok(());
        }
        let argv = [self.engine.kind().name(), "pull", image];
        self.checked(step, &Spec::new(&argv, crate::plan::BUILD_TIMEOUT.get()))
            .map(drop)
    }

    /// Applies a deploy step and waits for what it names.
    fn deploy(&self, name: &str) -> Result<(), Failure> {
        let Some(deploy) = self.plan.deploy.iter().find(|d| d.name == name) else {
            return Ok(());
        };
        let id = format!("deploy/{name}");
        self.step(&id, || {
            for argv in self.applies(&id, deploy)? {
                let mut spec = Spec::new(&argv, APPLY_TIMEOUT);
                spec.env = self.kube_env();
                self.checked(&id, &spec)?;
            }
            for wait in &deploy.waits {
                let mut spec = Spec::new(&self.kubectl.wait(wait, deploy.namespace.as_deref()), kube::wait_deadline(wait));
                spec.env = self.kube_env();
                let ran = self.command(&id, &spec)?;
                if ran.success() {
                    continue;
                }
                let namespace = wait.namespace.as_deref().or(deploy.namespace.as_deref());
                let events = self.gather(
                    &id,
                    &self.kubectl.events(namespace),
                    &file_name(&format!("{id}-events"), "txt"),
                    "the events of the namespace waited in, oldest first",
                );
                let pods = self.gather(
                    &id,
                    &self.kubectl.pods(namespace),
                    &file_name(&format!("{id}-pods"), "txt"),
                    "the pods of the namespace waited in",
                );
                let output = ran.tail_text();
                return Err(StepError::Failed {
                    message: format!(
                        "`{}` did not see its resources ready ({}): {}\n  not ready:\n{}\n  last events:\n{}",
                        build::shell_words(&spec.argv),
                        ran.describe(spec.timeout),
                        output.lines().last().unwrap_or_default(),
                        indent(&last_lines(&pods, 30)),
                        indent(&last_lines(&events, 15)),
                    ),
                    output: format!(
                        "{events}\n{output}\nloadmaster: error: {}",
                        failure_line(&spec, &ran)
                    ),
                    node: None,
                });
            }
            Ok(())
        })
    }

    /// The `kubectl apply` commands of a deploy step: its files as they
    /// are, or, when images went to a registry, overlays of them that name
    /// the pushed images ([`overlay`]), written under `deploy/` in the run
    /// directory.
    fn applies(&self, id: &str, deploy: &DeployStep) -> Result<Vec<Vec<String>>, StepError> {
        let namespace = deploy.namespace.as_deref();
        if self.rewrites.is_empty() {
            return Ok(self.kubectl.apply(namespace, &deploy.apply));
        }
        let dir = self.journal.dir().join("deploy").join(&deploy.name);
        let overlays = overlay::write(&deploy.apply, &self.rewrites, &dir).map_err(|e| {
            StepError::failed(format!(
                "cannot write the kustomize overlays that name the pushed images into {}: {e}",
                dir.display()
            ))
        })?;
        self.record(&Event::note(
            Some(id),
            format!(
                "applying overlays in {} that pin {} pushed image(s) by digest",
                dir.display(),
                self.rewrites.len()
            ),
        ));
        Ok(overlays
            .into_iter()
            .flat_map(|dir| self.kubectl.apply(namespace, &Apply::Kustomize { dir }))
            .collect())
    }

    /// Runs a read-only command for evidence, keeps its output under
    /// `logs/file` (listed in the journal as `about`), and returns it (or
    /// why it could not be read).
    fn gather(&self, step: &str, argv: &[String], file: &str, about: &str) -> String {
        let mut spec = Spec::new(argv, GATHER_TIMEOUT);
        spec.env = self.kube_env();
        spec.whole_stdout = true;
        let path = Path::new("logs").join(file);
        spec.log = Some(self.journal.dir().join(&path));
        let ran = self.command(step, &spec);
        self.record(&Event::log_file(step, path, about));
        match ran {
            Ok(ran) => String::from_utf8_lossy(if ran.success() {
                &ran.stdout_tail
            } else {
                &ran.stderr_tail
            })
            .trim()
            .to_string(),
            Err(StepError::Failed { message, .. }) => message,
            Err(StepError::Interrupted(signal)) => format!("not read: stopped by signal {signal}"),
        }
    }

    /// The logs (a restarted container's previous instance's too) and
    /// descriptions of the pods in the plan's namespaces that are not
    /// ready or failed.
    fn gather_pod_logs(&self, step: &str) {
        let listing = self.gather(
            step,
            &self.kubectl.pods_json(),
            "pods.json",
            "every pod as JSON: what the pods whose logs were read were chosen from",
        );
        let pods = match pods::unready(&listing, &pods::plan_namespaces(self.plan)) {
            Ok(pods) => pods,
            Err(error) => {
                self.note(
                    Some(step),
                    format!(
                        "pod logs not gathered: kubectl's pod listing is not JSON ({error}): {}",
                        listing.lines().next().unwrap_or_default()
                    ),
                );
                return;
            }
        };
        if pods.len() > MAX_PODS_READ {
            self.note(
                Some(step),
                format!(
                    "{} pods are not ready; the logs of the first {MAX_PODS_READ} are gathered",
                    pods.len()
                ),
            );
        }
        for pod in pods.iter().take(MAX_PODS_READ) {
            let about = format!("pod {}/{} ({})", pod.namespace, pod.name, pod.why);
            let stem = format!("pod-{}-{}", pod.namespace, pod.name);
            self.gather(
                step,
                &self.kubectl.describe_pod(&pod.namespace, &pod.name),
                &file_name(&format!("{stem}-describe"), "txt"),
                &format!("{about}: `kubectl describe`"),
            );
            for container in &pod.containers {
                let instances: &[bool] = if container.restarted {
                    &[false, true]
                } else {
                    &[false]
                };
                for &previous in instances {
                    let (suffix, which) = if previous {
                        ("-previous", " (its instance before the last restart)")
                    } else {
                        ("", "")
                    };
                    self.gather(
                        step,
                        &self.kubectl.pod_logs(
                            &pod.namespace,
                            &pod.name,
                            &container.name,
                            previous,
                        ),
                        &file_name(&format!("{stem}-{}{suffix}", container.name), "log"),
                        &format!("{about}: the log of container {}{which}", container.name),
                    );
                }
            }
        }
    }

    /// The test: its command with `KUBECONFIG` and the plan's environment,
    /// output to the terminal and `artifacts/test.log`.
    fn test(&mut self) -> Result<(), Failure> {
        let Some(test) = &self.plan.test else {
            return Ok(());
        };
        let mut exit = None;
        let result = self.step("test", || {
            let argv = match &test.command {
                CommandLine::Shell(line) => vec!["sh".to_string(), "-c".to_string(), line.clone()],
                CommandLine::Argv(argv) => argv.clone(),
            };
            let mut spec = Spec::new(&argv, test.timeout.get());
            spec.env = self.kube_env();
            spec.env
                .extend(test.env.iter().map(|(k, v)| (k.clone(), v.clone())));
            spec.dir = Some(test.workdir.clone());
            spec.echo = Some(self.reporter.clone());
            spec.log = Some(self.journal.artifacts_dir().join("test.log"));
            let ran = self.command("test", &spec)?;
            exit = ran.exit.code.or(ran.exit.signal.map(|s| 128 + s));
            self.keep_artifacts(&test.artifacts, &test.workdir);
            if ran.success() {
                Ok(())
            } else {
                Err(StepError::Failed {
                    message: format!("the test failed ({})", ran.describe(spec.timeout)),
                    output: format!(
                        "{}\nloadmaster: error: {}",
                        ran.tail_text(),
                        failure_line(&spec, &ran)
                    ),
                    node: None,
                })
            }
        });
        self.test_exit_code = exit;
        result
    }

    /// Copies what the test left into the run's `artifacts/`, noting what
    /// is missing.
    fn keep_artifacts(&self, artifacts: &[PathBuf], workdir: &Path) {
        let into = self.journal.artifacts_dir();
        for path in artifacts {
            let relative = path.strip_prefix(workdir).unwrap_or(path);
            let target = into.join(relative.file_name().map_or(relative, Path::new));
            if let Err(error) = copy_tree(path, &target) {
                self.note(
                    Some("test"),
                    format!("artifact {} not kept: {error}", path.display()),
                );
            }
        }
    }

    /// `kind delete cluster`, unless the plan says the cluster exists
    /// outside loadmaster.
    fn down(&mut self) -> Result<(), Failure> {
        let name = self.plan.cluster.name.clone();
        self.step("down", || {
            if self.plan.cluster.existing {
                let why = match &self.plan.cluster.provider {
                    Provider::Existing { context, .. } => format!("an existing cluster (context {context}): loadmaster never deletes it or touches its nodes"),
                    Provider::Kind => "the plan says it exists outside loadmaster (cluster.existing)".to_string(),
                };
                self.note(Some("down"), format!("cluster {name} is kept: {why}"));
                return Ok(());
            }
            if !process::on_path("kind") {
                return Err(StepError::failed(format!(
                    "cannot delete kind cluster {name}: the kind CLI is not on PATH\n  fix: install kind and rerun, or delete its nodes yourself: `{} rm -f $({} ps -aq --filter label=io.x-k8s.kind.cluster={name})`",
                    self.selection.engine.kind(),
                    self.selection.engine.kind()
                )));
            }
            let mut spec = Spec::new(&kube::kind_delete(&name), KIND_TIMEOUT);
            spec.env = vec![(
                "KIND_EXPERIMENTAL_PROVIDER".to_string(),
                self.engine.kind().name().to_string(),
            )];
            self.checked("down", &spec).map(drop)
        })
    }

    /// `run`'s teardown: as the flag, `LOADMASTER_TEARDOWN` or the plan
    /// says.
    fn teardown(&mut self, succeeded: bool) -> Result<(), Failure> {
        let env = std::env::var(crate::plan::TEARDOWN_ENV).ok();
        let action = self
            .plan
            .teardown
            .action(succeeded, self.options.teardown, env.as_deref())
            .map_err(|e| ("teardown".to_string(), StepError::failed(e.to_string())))?;
        match action {
            TeardownAction::Delete => self.down(),
            TeardownAction::Keep => {
                self.note(
                    None,
                    format!(
                        "keeping cluster {} ({}); `loadmaster down -f {}` deletes it",
                        self.plan.cluster.name,
                        if succeeded {
                            "the run succeeded"
                        } else {
                            "the run failed: look around, logs are in the run directory"
                        },
                        self.plan.file.display()
                    ),
                );
                Ok(())
            }
        }
    }

    /// After a failed step: logs gathered into the run directory, and a
    /// diagnosis written beside them.
    fn on_failure(&self, step: &str, error: &StepError) {
        let StepError::Failed { output, node, .. } = error else {
            return;
        };
        let logs = self.journal.dir().join("logs");
        let is_kind = self.plan.cluster.provider == Provider::Kind;
        if is_kind && process::on_path("kind") {
            let argv = kube::kind_export_logs(&self.plan.cluster.name, &logs.join("kind"));
            self.gather(
                step,
                &argv,
                "kind-export.txt",
                "`kind export logs` (the nodes' logs are under logs/kind/)",
            );
        } else {
            for name in &self.nodes {
                let text = self
                    .engine
                    .container_logs(name, 500)
                    .unwrap_or_else(|e| format!("cannot read the logs of node {name}: {e}"));
                let file = file_name(&format!("node-{name}"), "log");
                if std::fs::write(logs.join(&file), text).is_ok() {
                    self.record(&Event::log_file(
                        step,
                        Path::new("logs").join(file),
                        format!("the log of node {name}'s container"),
                    ));
                }
            }
        }
        if self.kubeconfig.is_some() {
            self.gather(
                step,
                &self.kubectl.events(None),
                "events.txt",
                "the cluster's events, oldest first",
            );
            self.gather(step, &self.kubectl.pods(None), "pods.txt", "every pod");
            if step == "test" || step.starts_with("deploy/") {
                self.gather_pod_logs(step);
            }
        }
        let diagnosis: Diagnosis = match node {
            Some(node) => triage::collect::diagnose_load(
                &self.engine,
                &triage::collect::LoadFailure {
                    node: Some(node),
                    error: output,
                },
            ),
            None => triage::triage_log(output, step),
        };
        let dir = self.journal.dir();
        let written = std::fs::write(dir.join("diagnosis.json"), render::json(&diagnosis))
            .and_then(|()| std::fs::write(dir.join("diagnosis.md"), render::markdown(&diagnosis)));
        if let Err(error) = written {
            self.reporter.note(
                None,
                &format!(
                    "warning: cannot write the diagnosis into {}: {error}",
                    dir.display()
                ),
            );
        }
    }

    /// Ends the run: failure handling for the phases that do not tear down,
    /// the monitor stopped, `run-end` recorded.
    fn finish(mut self, phase: Phase, result: Result<(), Failure>) -> Report {
        if let (Err((step, error)), false) = (&result, phase == Phase::Run) {
            self.on_failure(step, error);
        }
        if let Some(monitor) = self.monitor.take() {
            for note in monitor.stop().notes {
                self.reporter.note(None, &format!("monitor: {note}"));
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
        self.record(&Event::run_end(outcome));
        let diagnosis = self.journal.dir().join("diagnosis.md");
        Report {
            phase,
            run_id: self.journal.id().to_string(),
            run_dir: self.journal.dir().to_path_buf(),
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

/// An image's archive file, opened as the source of a load or a push.
fn archive_source<'a>(path: &Path, image: &'a str) -> Result<Source<'a>, StepError> {
    let file = std::fs::File::open(path)
        .map_err(|e| StepError::failed(format!("cannot read archive {}: {e}", path.display())))?;
    Ok(Source::Archive {
        reader: Box::new(std::io::BufReader::new(file)),
        label: path.display().to_string(),
        image: Some(image),
        known: None,
        platform: None,
    })
}

/// "`COMMAND` failed (HOW): LAST LINE": loadmaster's words for a failed
/// command, which triage reads for the command and its exit status.
fn failure_line(spec: &Spec, ran: &Ran) -> String {
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
fn file_name(step: &str, extension: &str) -> String {
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

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("    {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Copies a file, or a directory with everything in it.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    if from.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        std::fs::copy(from, to).map(drop)
    }
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
