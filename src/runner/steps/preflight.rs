//! The pre-flight, the first step of `up` and `run`: the checks `doctor -f`
//! makes for the plan (the engine's memory and disk against the plan's
//! needs, ports, stale names, inotify, tools, and the image names the
//! deploy steps' manifests use against the plan's images:
//! [`super::super::pull_policy`]), each finding recorded in the
//! journal. A failed check stops the run before anything is built or
//! created, its fix in the step's error; warnings are shown and kept.
//! `--skip-preflight` (or `LOADMASTER_SKIP_PREFLIGHT=1`) skips it, and the
//! journal says who skipped it.

use super::super::manifests::ImageUse;
use super::super::{estimate, pull_policy};
use super::{Failure, Recorder, StepError};
use crate::cluster;
use crate::doctor::{self, DoctorError, Finding, KindConfig, Status};
use crate::engine::{EngineChoice, Selection};
use crate::journal::Event;
use crate::plan::{KindConfigSource, Plan, Provider};
use std::path::Path;
use std::time::Instant;

/// The step's id.
pub const STEP: &str = "preflight";

/// The doctor's options for a plan: its cluster, kind config, images and
/// builds (each estimated as the scheduler will, from the runs under
/// `root`). `engine`: `--engine`, else the plan's `cluster.engine`.
pub fn doctor_options(
    plan: &Plan,
    root: &Path,
    engine: Option<EngineChoice>,
) -> Result<doctor::Options, DoctorError> {
    let kind_config = match &plan.cluster.config {
        KindConfigSource::Default => KindConfig::default_cluster(),
        KindConfigSource::File { path } => KindConfig::load(path)?,
        // JSON is YAML: the inline config parses as a kind config file would.
        KindConfigSource::Inline { config } => {
            let text = serde_json::Value::Object(config.clone()).to_string();
            KindConfig::parse(&text, &plan.file)?
        }
    };
    let mut options = doctor::Options::from_environment(&plan.cluster.name, kind_config);
    if let Provider::Existing { context, .. } = &plan.cluster.provider {
        options.existing_context = Some(context.clone());
    }
    options.engine = engine.or(plan.cluster.engine.map(EngineChoice::from));
    options.images = plan.images.iter().map(|image| image.name.clone()).collect();
    options.deploys = !plan.deploy.is_empty();
    options.builds = estimate::plan_peak(root, plan);
    Ok(options)
}

/// The pre-flight's context.
pub struct Preflight<'a> {
    pub plan: &'a Plan,
    /// Where earlier runs are recorded (their builds' memory growth).
    pub root: &'a Path,
    pub selection: &'a Selection,
    /// Who said to skip it, when someone did.
    pub skipped_by: Option<&'a str>,
    /// Each deploy step's image uses, in `plan.deploy`'s order.
    pub uses: &'a [Result<Vec<ImageUse>, String>],
    pub recorder: &'a Recorder,
}

impl Preflight<'_> {
    pub fn run(&self) -> Result<(), Failure> {
        let recorder = self.recorder;
        recorder.step(STEP, || {
            if let Some(by) = self.skipped_by {
                recorder.record(&Event::preflight_skipped(by));
                recorder.note(Some(STEP), format!("pre-flight checks skipped ({by})"));
                return Ok(());
            }
            let started = Instant::now();
            let mut report = doctor::run(&self.options()?)
                .map_err(|e| StepError::failed(format!("the pre-flight cannot run: {e}")))?;
            report
                .findings
                .extend(pull_policy::findings(self.plan, self.uses));
            let took = started.elapsed();
            recorder.record(&Event::preflight(report.findings.clone(), took));
            // One line each: the fixes are in the journal, the report and
            // `doctor -f`.
            for warning in report.findings.iter().filter(|f| f.status == Status::Warn) {
                recorder.reporter.notice(
                    Some(STEP),
                    &format!("warning: {}: {}", warning.id, warning.measured),
                );
            }
            let failed: Vec<&Finding> = report
                .findings
                .iter()
                .filter(|f| f.status == Status::Fail)
                .collect();
            recorder.note(
                Some(STEP),
                format!(
                    "pre-flight: {} failed, {} warnings, {} ok ({} ms; every check and fix: `loadmaster doctor -f {}`)",
                    failed.len(),
                    report.count(Status::Warn),
                    report.count(Status::Ok),
                    took.as_millis(),
                    self.plan.file.display()
                ),
            );
            if failed.is_empty() {
                return Ok(());
            }
            let lines: Vec<String> = failed.iter().map(|f| format!("  {}", describe(f))).collect();
            Err(StepError::failed(format!(
                "{} pre-flight check(s) failed: nothing was built or created\n{}\n  (--skip-preflight runs anyway)",
                failed.len(),
                lines.join("\n"),
            )))
        })
    }

    /// The doctor's options as this run will go: on the selected engine,
    /// which the runner also gives kind (`KIND_EXPERIMENTAL_PROVIDER`), and
    /// with a kind cluster that is up counted as reused, not as a conflict.
    fn options(&self) -> Result<doctor::Options, StepError> {
        let kind = self.selection.engine.kind();
        let mut options = doctor_options(self.plan, self.root, Some(kind.into()))
            .map_err(|e| StepError::failed(format!("the pre-flight cannot run: {e}")))?;
        options.kind_provider = Some(kind.name().to_string());
        options.cluster_up = self.plan.cluster.provider == Provider::Kind
            && cluster::find(self.selection, Some(&self.plan.cluster.name)).is_ok();
        Ok(options)
    }
}

/// A finding in one line: what was measured, what is needed, the fix.
fn describe(finding: &Finding) -> String {
    let mut line = format!(
        "{}: {} (needed: {})",
        finding.id, finding.measured, finding.needed
    );
    if let Some(fix) = &finding.fix {
        line.push_str(&format!("\n    fix: {fix}"));
    }
    line
}
