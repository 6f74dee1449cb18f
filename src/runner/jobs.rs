//! `up` as a graph: the plan's [`pipeline`](super::pipeline) scheduled
//! within its bounds ([`super::graph`]) and run by the
//! [`executor`](super::executor), each job of the graph done by its step
//! (`steps/`) with a context made from what the run found so far.

use super::graph::{Bounds, Policy, Scheduler};
use super::manifests::{self, ImageUse};
use super::pipeline::{self, Job};
use super::steps::builds::Builds;
use super::steps::deploy::Deploy;
use super::steps::{Failure, StepError};
use super::{Run, executor, pull_policy};
use crate::plan::Delivery;
use std::collections::BTreeSet;

/// Deliveries at once: every load feeds the same nodes' `ctr import`, whose
/// memory is bounded one load at a time; several at once would add up.
pub const DELIVERIES_AT_ONCE: u32 = 1;

impl Run<'_> {
    /// The graph of `up` (with the test as its last step when
    /// `with_test`): the first failure, preferring an interrupt; every
    /// later failure has its evidence left here.
    pub(super) fn up(&self, with_test: bool) -> Result<(), Failure> {
        let plan = self.plan;
        let builds = self.builds();
        // Measured before the cluster step, which runs beside the builds.
        let info = self.selection.engine.info().ok();
        let (budget, memory) = builds.estimates(info.as_ref());
        // Read once: for the graph (what each deploy waits for), the
        // pre-flight and each deploy step (the names checked).
        let uses = pull_policy::read_all(plan);
        let named: Vec<Option<BTreeSet<usize>>> = plan
            .deploy
            .iter()
            .zip(&uses)
            .map(|(step, uses)| match uses {
                Ok(uses) => Some(manifests::named(uses, &plan.images)),
                Err(_) if plan.images.is_empty() => Some(BTreeSet::new()),
                Err(why) => {
                    self.recorder.note(
                        Some(&format!("deploy/{}", step.name)),
                        format!("it waits for every image's delivery: the images its manifests name are unknown ({why})"),
                    );
                    None
                }
            })
            .collect();
        let pipeline = pipeline::pipeline(plan, with_test, &memory, &named, self.options.order);
        let disk = plan.budget.disk.map(|size| size.bytes());
        let mut steps = pipeline.steps;
        if disk.is_some() {
            // A delivery takes up to its image's size in the engine's
            // temp space (podman's `save` stages it there): the size the
            // engine knows now; an image still to be built counts none.
            for (step, job) in steps.iter_mut().zip(&pipeline.jobs) {
                if let Job::Deliver(n) = job {
                    step.disk_bytes = self
                        .selection
                        .engine
                        .image_inspect(&plan.images[*n].name)
                        .map_or(0, |details| details.size);
                }
            }
        }
        let bounds = Bounds {
            memory_bytes: budget.bytes,
            parallel_builds: plan.budget.parallel_builds,
            deliveries: DELIVERIES_AT_ONCE,
            disk_bytes: disk,
        };
        let policy = if self.options.keep_going {
            Policy::KeepGoing
        } else {
            Policy::FailFast
        };
        let scheduler = Scheduler::new(steps, bounds, policy)
            .map_err(|e| ("graph".to_string(), StepError::failed(e.to_string())))?;
        let jobs = pipeline.jobs;
        let mut failures = executor::run(scheduler, &self.recorder, &|n| {
            self.job(jobs[n], &builds, &uses)
        });
        let first = failures
            .iter()
            .position(|(_, error)| matches!(error, StepError::Interrupted(_)))
            .unwrap_or(0);
        if failures.is_empty() {
            return Ok(());
        }
        let failure = failures.remove(first);
        if !matches!(failure.1, StepError::Interrupted(_)) {
            for (step, error) in &failures {
                self.on_cluster(|cluster| cluster.leave_evidence(step, error));
            }
        }
        Err(failure)
    }

    fn builds(&self) -> Builds<'_> {
        Builds {
            plan: self.plan,
            root: &self.options.root,
            engine: self.selection.engine.kind(),
            recorder: &self.recorder,
        }
    }

    /// Runs one job; `uses`: each deploy step's image uses.
    fn job(
        &self,
        job: Job,
        builds: &Builds<'_>,
        uses: &[Result<Vec<ImageUse>, String>],
    ) -> Result<(), Failure> {
        let plan = self.plan;
        match job {
            Job::Preflight => self.preflight(uses),
            Job::Cluster => self.find_cluster(true),
            Job::Build(n) => builds.build(n),
            Job::Deliver(n) => self.on_cluster(|cluster| cluster.load(&plan.images[n])),
            Job::Registry => {
                let Delivery::Registry {
                    registry,
                    allow_http,
                } = &plan.cluster.delivery
                else {
                    return Ok(());
                };
                let (pushed, rewrites) = self
                    .on_cluster(|cluster| cluster.push_images(registry.as_deref(), *allow_http))?;
                *self.pushed.lock().unwrap_or_else(|p| p.into_inner()) = pushed;
                *self.rewrites.lock().unwrap_or_else(|p| p.into_inner()) = rewrites;
                Ok(())
            }
            Job::Deploy(d) => {
                let rewrites = self
                    .rewrites
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                let cluster = self.cluster();
                Deploy {
                    plan,
                    kube: &cluster.kube,
                    rewrites: &rewrites,
                    uses: &uses[d],
                    engine: &cluster.engine,
                    nodes: &cluster.nodes,
                    skipped_by: self.options.skip_preflight.as_deref(),
                    recorder: &self.recorder,
                }
                .run(&plan.deploy[d].name)
            }
            Job::Test => self.test(),
        }
    }
}
