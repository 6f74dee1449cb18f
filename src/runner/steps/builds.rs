//! The build steps: every image the plan builds, in batches that fit the
//! memory budget ([`super::super::schedule`]), each build estimated by the
//! rule `doctor -f` uses too ([`super::super::estimate`]); the schedule
//! recorded in the journal, each build a step `build/<image>`.

use super::super::{build, estimate, schedule, signal};
use super::{Failure, Recorder, StepError};
use crate::doctor::Estimate;
use crate::engine::{EngineInfo, EngineKind};
use crate::journal::{Event, ScheduledBuild};
use crate::monitor::Sources;
use crate::plan::{Image, ImageSource, Plan};
use std::path::Path;

/// The build steps' context.
pub struct Builds<'a> {
    pub plan: &'a Plan,
    /// Where earlier runs are recorded (their builds' memory growth).
    pub root: &'a Path,
    /// The engine as measured when the cluster was found.
    pub info: Option<&'a EngineInfo>,
    pub engine: EngineKind,
    pub recorder: &'a Recorder,
}

impl Builds<'_> {
    /// Builds every image the plan builds, in batches within the budget.
    pub fn run(&self) -> Result<(), Failure> {
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
        let budget = match self.info {
            Some(info) => {
                let sources = Sources::for_engine(info, std::env::var("TMPDIR").ok().as_deref());
                estimate::budget(info, &sources, &self.plan.budget)
            }
            None => Estimate::new(
                self.plan
                    .budget
                    .memory
                    .map_or(estimate::DEFAULT_BUILD_BYTES, |m| m.bytes()),
                "the plan's budget.memory or the default (the engine could not be measured)",
            ),
        };
        let estimates: Vec<Estimate> = builds
            .iter()
            .map(|(image, build)| estimate::build(self.root, &image.name, build))
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
        let reporter = &self.recorder.reporter;
        for warning in &chosen.warnings {
            reporter.note(None, &format!("warning: {warning}"));
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
        reporter.note(
            None,
            &format!(
                "{} build(s) in {} batch(es) within a budget of {} MiB ({})",
                builds.len(),
                batches.len(),
                budget.bytes >> 20,
                budget.source
            ),
        );
        self.recorder.record(&Event::schedule(
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
                        scope.spawn(move || self.build(image, build))
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

    /// One build, as step `build/<image>`.
    fn build(&self, image: &Image, build: &crate::plan::Build) -> Result<(), Failure> {
        let step = format!("build/{}", image.name);
        self.recorder.step(&step, || {
            build::build(
                &self.recorder.journal,
                self.recorder.reporter.as_ref(),
                &step,
                self.engine,
                &image.name,
                build,
            )
            .map(drop)
            .map_err(|error| match signal::received() {
                Some(signal) => StepError::Interrupted(signal),
                None => StepError::failed(error.to_string()),
            })
        })
    }
}
