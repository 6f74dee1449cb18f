//! The build steps, `build/<image>`: each image the plan builds, estimated
//! by the rule `doctor -f` uses too ([`super::super::estimate`]) against a
//! memory budget that the step graph keeps builds within
//! ([`super::super::graph`]); the budget and the estimates recorded in the
//! journal as a `schedule` event.

use super::super::{build, estimate};
use super::{Failure, Recorder, StepError};
use crate::doctor::Estimate;
use crate::engine::{EngineInfo, EngineKind};
use crate::journal::{Event, ScheduledBuild};
use crate::monitor::Sources;
use crate::plan::{ImageSource, Plan};
use crate::process::signal;
use std::path::Path;

/// The build steps' context.
pub struct Builds<'a> {
    pub plan: &'a Plan,
    /// Where earlier runs are recorded (their builds' memory growth).
    pub root: &'a Path,
    pub engine: EngineKind,
    pub recorder: &'a Recorder,
}

impl Builds<'_> {
    /// The memory budget (`info`: the engine as measured, if it could be)
    /// and each plan image's build estimate in bytes (0 for an image not
    /// built), recorded in the journal and said in a note.
    pub fn estimates(&self, info: Option<&EngineInfo>) -> (Estimate, Vec<u64>) {
        let budget = match info {
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
        let mut scheduled = Vec::new();
        let mut warnings = Vec::new();
        let bytes: Vec<u64> = self
            .plan
            .images
            .iter()
            .map(|image| {
                let ImageSource::Build(build) = &image.source else {
                    return 0;
                };
                let figure = estimate::build(self.root, &image.name, build);
                if figure.bytes > budget.bytes {
                    warnings.push(format!(
                        "build {} is estimated at {} bytes, more than the whole budget of {} bytes: it runs alone and may fail for lack of memory (give the engine more memory, or lower the estimate with images[].build.memory if it is too high)",
                        image.name, figure.bytes, budget.bytes
                    ));
                }
                let bytes = figure.bytes;
                scheduled.push(ScheduledBuild {
                    image: image.name.clone(),
                    estimate_bytes: bytes,
                    estimate_source: figure.source,
                });
                bytes
            })
            .collect();
        if scheduled.is_empty() {
            return (budget, bytes);
        }
        for warning in &warnings {
            self.recorder
                .reporter
                .notice(None, &format!("warning: {warning}"));
        }
        self.recorder.reporter.notice(
            None,
            &format!(
                "{} build(s) within a budget of {} MiB ({})",
                scheduled.len(),
                budget.bytes >> 20,
                budget.source
            ),
        );
        self.recorder.record(&Event::schedule(
            budget.bytes,
            budget.source.clone(),
            scheduled,
            warnings,
        ));
        (budget, bytes)
    }

    /// Builds plan image `n`, as step `build/<image>`.
    pub fn build(&self, n: usize) -> Result<(), Failure> {
        let image = &self.plan.images[n];
        let ImageSource::Build(plan_build) = &image.source else {
            return Ok(());
        };
        let step = format!("build/{}", image.name);
        self.recorder.step(&step, || {
            build::build(
                &self.recorder.journal,
                self.recorder.reporter.as_ref(),
                &step,
                self.engine,
                &image.name,
                plan_build,
            )
            .map(drop)
            .map_err(|error| match signal::received() {
                Some(signal) => StepError::Interrupted(signal),
                None => StepError::failed(error.to_string()),
            })
        })
    }
}
