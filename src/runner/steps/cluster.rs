//! The cluster step: the plan's kind cluster found by its node labels (a
//! missing one created with the kind CLI when the phase creates), or an
//! existing cluster's kubeconfig context checked; then the monitor started
//! on its nodes and `KUBECONFIG` found for kubectl and the test.

use super::super::{GATHER_TIMEOUT, KIND_TIMEOUT, kube};
use super::{Failure, Kube, Recorder, StepError};
use crate::cluster::{self, ClusterError};
use crate::engine::{Engine, EngineInfo, Selection};
use crate::journal::Event;
use crate::monitor::{Monitor, NodeSource, Sources};
use crate::plan::{Plan, Provider};
use crate::process::{self, Spec};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the later steps know of the cluster. Before the cluster step (or
/// when it fails) it is the selected engine, no nodes and no kubeconfig.
pub struct ClusterState {
    /// The engine the cluster's nodes run on.
    pub engine: Engine,
    pub info: Option<EngineInfo>,
    pub monitor: Option<Monitor>,
    /// The cluster's Kubernetes nodes (none for an existing cluster: they
    /// are out of reach).
    pub nodes: Vec<String>,
    pub kube: Kube,
    /// The cluster step found (or created) the cluster.
    pub found: bool,
}

impl ClusterState {
    pub fn before(selection: &Selection) -> ClusterState {
        ClusterState {
            engine: selection.engine.clone(),
            info: None,
            monitor: None,
            nodes: Vec::new(),
            kube: Kube::default(),
            found: false,
        }
    }
}

/// The cluster step's context.
pub struct ClusterStep<'a> {
    pub plan: &'a Plan,
    pub selection: &'a Selection,
    pub recorder: &'a Recorder,
}

impl ClusterStep<'_> {
    /// Finds the plan's cluster (creating a kind cluster when `create` and
    /// it is missing) into `state`, then starts the monitor on its nodes.
    pub fn run(&self, create: bool, state: &mut ClusterState) -> Result<(), Failure> {
        if let Provider::Existing {
            context,
            kubeconfig,
        } = &self.plan.cluster.provider
        {
            return self.existing(context, kubeconfig.as_deref(), state);
        }
        let name = self.plan.cluster.name.clone();
        let found = self.recorder.step("cluster", || {
            match cluster::find(self.selection, Some(&name)) {
                Ok(found) => {
                    self.recorder.note(
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
                    self.create()?;
                    cluster::find(self.selection, Some(&name))
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
        state.engine = engine;
        state.found = true;
        let nodes = found
            .running_nodes()
            .map_err(|e| ("cluster".to_string(), StepError::failed(e.to_string())))?;
        state.nodes = nodes.iter().map(|n| n.name.clone()).collect();
        self.start_monitor(state);
        state.kube.kubeconfig = self.find_kubeconfig(&state.engine);
        Ok(())
    }

    /// An existing cluster: its context checked in the kubeconfig (read
    /// offline), then named on every kubectl command and, through a
    /// kubeconfig in the run directory that only sets `current-context`
    /// before the user's own files, for the test. No credentials are
    /// copied. The monitor samples the engine's host only.
    fn existing(
        &self,
        context: &str,
        kubeconfig: Option<&Path>,
        state: &mut ClusterState,
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
        let current =
            std::path::absolute(self.recorder.journal.dir().join("kubeconfig-context.json"))
                .map_err(|e| ("cluster".to_string(), StepError::failed(e.to_string())))?;
        let selector = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": context,
        });
        state.kube.kubectl = kube::Kubectl {
            context: Some(context.to_string()),
        };
        let kubectl = &state.kube.kubectl;
        let value = self.recorder.step("cluster", || {
            std::fs::write(&current, selector.to_string()).map_err(|e| {
                StepError::failed(format!("cannot write {}: {e}", current.display()))
            })?;
            // The first file that sets current-context wins; the user's
            // files give clusters, users and contexts.
            let value = format!("{}:{base}", current.display());
            let mut spec = Spec::new(&kubectl.get_context(context), GATHER_TIMEOUT);
            spec.env = vec![("KUBECONFIG".to_string(), value.clone())];
            let ran = self.recorder.command("cluster", &spec)?;
            if !ran.success() {
                return Err(StepError::failed(format!(
                    "kubeconfig context {context:?} (cluster.context) is not in {base}: {}\n  fix: `kubectl config get-contexts` lists the contexts there; correct cluster.context, or name the file with cluster.kubeconfig",
                    ran.tail_text().lines().last().unwrap_or_default()
                )));
            }
            self.recorder.note(
                Some("cluster"),
                format!(
                    "existing cluster {}: context {context} from {base}; its nodes are not touched, KUBECONFIG={value}",
                    self.plan.cluster.name
                ),
            );
            Ok(value)
        })?;
        state.kube.kubeconfig = Some(value);
        state.found = true;
        self.start_monitor(state);
        Ok(())
    }

    fn create(&self) -> Result<(), StepError> {
        let name = &self.plan.cluster.name;
        if !process::on_path("kind") {
            return Err(StepError::failed(format!(
                "kind cluster {name} does not exist and the kind CLI is not on PATH to create it\n  fix: install kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation), or create the cluster yourself and rerun"
            )));
        }
        let config = kube::kind_config_file(&self.plan.cluster.config, self.recorder.journal.dir())
            .map_err(|e| StepError::failed(format!("cannot write the kind config: {e}")))?;
        let mut spec = Spec::new(
            &kube::kind_create(
                name,
                config.as_deref(),
                self.plan.cluster.node_image.as_deref(),
            ),
            KIND_TIMEOUT,
        );
        spec.echo = Some(self.recorder.reporter.clone());
        spec.env = kube::kind_env(self.selection.engine.kind());
        self.recorder.checked("cluster", &spec).map(drop)
    }

    /// Samples the engine's host and the cluster's nodes from now on.
    fn start_monitor(&self, state: &mut ClusterState) {
        let info = match state.engine.info() {
            Ok(info) => info,
            Err(error) => {
                self.recorder
                    .note(None, format!("not sampling resources: {error}"));
                return;
            }
        };
        let tmpdir = std::env::var("TMPDIR").ok();
        let sources = Sources::for_engine(&info, tmpdir.as_deref());
        let reader = sources.reader().cloned();
        match Monitor::start(
            self.recorder.reporter.clone(),
            sources,
            Duration::from_secs(1),
        ) {
            Ok(monitor) => {
                for node in &state.nodes {
                    match reader
                        .as_ref()
                        .map(|reader| NodeSource::find(&state.engine, &info, reader, node))
                    {
                        Some(Ok(source)) => monitor.watch(source),
                        Some(Err(error)) => self
                            .recorder
                            .record(&Event::sample_note(node, &error.to_string())),
                        None => {}
                    }
                }
                state.monitor = Some(monitor);
            }
            Err(error) => self
                .recorder
                .note(None, format!("not sampling resources: {error}")),
        }
        state.info = Some(info);
    }

    /// `KUBECONFIG` for kubectl and the test: kind's for the cluster (whose
    /// nodes run on `engine`) when kind is there, else the one loadmaster
    /// was given, else none.
    fn find_kubeconfig(&self, engine: &Engine) -> Option<String> {
        let name = &self.plan.cluster.name;
        if process::on_path("kind") {
            let spec = Spec {
                // A kubeconfig with its certificates is larger than the
                // tail a command otherwise keeps.
                whole_stdout: true,
                env: kube::kind_env(engine.kind()),
                ..Spec::new(&kube::kind_kubeconfig(name), GATHER_TIMEOUT)
            };
            if let Ok(ran) = process::supervise(&spec)
                && ran.success()
            {
                // Absolute: the test runs in its own working directory.
                let path = self.recorder.journal.dir().join("kubeconfig");
                let path = std::path::absolute(&path).unwrap_or(path);
                if std::fs::write(&path, &ran.stdout_tail).is_ok() {
                    self.recorder.note(
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
                self.recorder.note(None, format!("KUBECONFIG: {} (loadmaster's environment; kind could not give one for {name})", PathBuf::from(&path).display()));
                Some(PathBuf::from(path).display().to_string())
            }
            _ => {
                self.recorder.note(None, format!("no KUBECONFIG: the kind CLI is not there to give cluster {name}'s and none is set; kubectl and the test run without one"));
                None
            }
        }
    }
}
