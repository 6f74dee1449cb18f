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
/// Pushes to a registry take the same slot: each reads the engine's
/// `save`, as a load does.
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
        let steps = pipeline.steps;
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
        // A delivery's disk demand, asked once what it needs is done (a
        // built image is in the engine by then): the image's size as the
        // engine knows it; an image still to be pulled counts none.
        let disk_demand = |n: usize| match jobs[n] {
            Job::Deliver(i) | Job::Push(i) => self
                .selection
                .engine
                .image_inspect(&plan.images[i].name)
                .map_or(0, |details| details.size),
            _ => 0,
        };
        let mut failures = executor::run(scheduler, &self.recorder, &disk_demand, &|n| {
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
                let found = self.on_cluster(|cluster| {
                    cluster.find_registry(registry.as_deref(), *allow_http)
                })?;
                // The step runs once: nothing was set before.
                let _ = self.registry.set(found);
                Ok(())
            }
            Job::Push(n) => {
                let registry = self
                    .registry
                    .get()
                    .expect("a push step needs the registry step, which found the registry");
                let pushed =
                    self.on_cluster(|cluster| cluster.push_image(registry, &plan.images[n]))?;
                self.pushed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(n, pushed);
                Ok(())
            }
            Job::Deploy(d) => {
                // The images this step names were pushed before it started.
                let rewrites: Vec<_> = self
                    .pushed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .values()
                    .map(|(_, rewrite)| rewrite.clone())
                    .collect();
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
