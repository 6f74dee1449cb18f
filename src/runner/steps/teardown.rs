//! The teardown: `down` (`kind delete cluster`, never for an existing
//! cluster), and `run`'s choice between deleting and keeping the cluster as
//! the flag, `LOADMASTER_TEARDOWN` or the plan's policy says.

use super::super::{KIND_TIMEOUT, kube};
use super::{Failure, Recorder, StepError};
use crate::cluster;
use crate::engine::{Engine, Selection};
use crate::plan::{Plan, Provider, TeardownAction};
use crate::process::{self, Spec};

/// The teardown's context.
pub struct Teardown<'a> {
    pub plan: &'a Plan,
    pub selection: &'a Selection,
    /// The engine the cluster's nodes run on.
    pub engine: &'a Engine,
    /// The cluster step found (or created) the cluster in this run.
    pub cluster_found: bool,
    pub recorder: &'a Recorder,
}

impl Teardown<'_> {
    /// `kind delete cluster`, unless the plan says the cluster exists
    /// outside loadmaster.
    pub fn down(&self) -> Result<(), Failure> {
        let name = self.plan.cluster.name.clone();
        self.recorder.step("down", || {
            if self.plan.cluster.existing {
                let why = match &self.plan.cluster.provider {
                    Provider::Existing { context, .. } => format!("an existing cluster (context {context}): loadmaster never deletes it or touches its nodes"),
                    Provider::Kind => "the plan says it exists outside loadmaster (cluster.existing)".to_string(),
                };
                self.recorder.note(Some("down"), format!("cluster {name} is kept: {why}"));
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
            spec.env = kube::kind_env(self.engine.kind());
            self.recorder.checked("down", &spec).map(drop)
        })
    }

    /// True when the run stopped before its kind cluster existed (a failed
    /// pre-flight, a kind that could not create it): this run never found
    /// or made it, and the engine shows none (or cannot show any: an
    /// engine that does not answer holds no cluster this run made).
    fn never_created(&self) -> bool {
        !self.cluster_found
            && self.plan.cluster.provider == Provider::Kind
            && cluster::find(self.selection, Some(&self.plan.cluster.name)).is_err()
    }

    /// `run`'s teardown: as `flag` (`--keep` / `--delete`),
    /// `LOADMASTER_TEARDOWN` or the plan says.
    pub fn run(&self, succeeded: bool, flag: Option<TeardownAction>) -> Result<(), Failure> {
        let env = std::env::var(crate::plan::TEARDOWN_ENV).ok();
        let action = self
            .plan
            .teardown
            .action(succeeded, flag, env.as_deref())
            .map_err(|e| ("teardown".to_string(), StepError::failed(e.to_string())))?;
        if self.never_created() {
            self.recorder.note(
                None,
                format!(
                    "no cluster {} to keep or delete: the run stopped before creating it",
                    self.plan.cluster.name
                ),
            );
            return Ok(());
        }
        match action {
            TeardownAction::Delete => self.down(),
            TeardownAction::Keep => {
                self.recorder.note(
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
}
