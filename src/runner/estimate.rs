//! The numbers the build schedule is made from: the memory budget (what
//! the engine's host or VM has available now, minus a margin, capped by the
//! plan's budget) and each build's estimate. Each number carries where it
//! came from.
//!
//! A build's estimate is one rule for the scheduler and for the pre-flight
//! (`doctor -f`, the checks `up` and `run` start with), so that a plan the
//! doctor passes is one the scheduler runs the same way: the largest growth
//! in memory use recorded while the image built in the last successful
//! runs, else the plan's `build.memory`, else a stated default.

use crate::doctor::Estimate;
use crate::engine::EngineInfo;
use crate::journal::{self, RunStatus, Sample, StepStatus, Timestamp};
use crate::monitor::Sources;
use crate::plan::{Budget, Build, ImageSource, Plan};
use std::path::Path;

/// A build's estimate when neither history nor the plan gives one: a
/// typical compile of a Go or Node service with the engine's builder.
pub const DEFAULT_BUILD_BYTES: u64 = 1 << 30;

/// How many earlier runs are read for estimates.
const HISTORY_RUNS: usize = 10;

/// Memory left aside for everything else on the engine's host: a tenth of
/// what is available, at least this much.
pub const MIN_MARGIN_BYTES: u64 = 256 << 20;

/// The memory budget for builds and deliveries.
pub fn budget(info: &EngineInfo, sources: &Sources, plan: &Budget) -> Estimate {
    let measured = sources
        .reader()
        .and_then(|reader| reader.files(Path::new("/proc"), &["meminfo"]).ok())
        .and_then(|files| crate::monitor::parse_meminfo(files.get("meminfo")?))
        .map(|(_, available)| (available, "MemAvailable of the engine's host"))
        .unwrap_or((
            info.memory_bytes,
            "the engine's total memory (its available memory could not be read)",
        ));
    let (available, what) = measured;
    let margin = (available / 10).max(MIN_MARGIN_BYTES);
    let usable = available.saturating_sub(margin);
    let measured = Estimate {
        bytes: usable,
        source: format!("{what} ({available} bytes) minus a margin of {margin} bytes"),
    };
    match plan.memory {
        Some(limit) if limit.bytes() <= usable => Estimate {
            bytes: limit.bytes(),
            source: format!(
                "the plan's budget.memory (measured: {} bytes usable)",
                usable
            ),
        },
        Some(limit) => Estimate {
            source: format!(
                "{}, below the plan's budget.memory of {} bytes",
                measured.source,
                limit.bytes()
            ),
            ..measured
        },
        None => measured,
    }
}

/// The estimate for building `image`: the largest growth recorded in the
/// last runs under `root`, else the plan's figure, else the default.
pub fn build(root: &Path, image: &str, build: &Build) -> Estimate {
    if let Some((bytes, run)) = recorded(root, &format!("build/{image}")) {
        return Estimate::new(
            bytes,
            format!("the memory growth recorded while it built in run {run}"),
        );
    }
    match build.memory {
        Some(size) => Estimate::new(size.bytes(), "the plan's images[].build.memory"),
        None => Estimate::new(
            DEFAULT_BUILD_BYTES,
            "the default (no earlier run recorded it and the plan states none)",
        ),
    }
}

/// The plan's builds as the pre-flight counts them: how many run at once
/// (its budget's `parallelBuilds`, else 1) and the largest estimate of one,
/// naming the image. None when nothing is built.
pub fn plan_peak(root: &Path, plan: &Plan) -> Option<(u32, Estimate)> {
    let estimates: Vec<(&str, Estimate)> = plan
        .images
        .iter()
        .filter_map(|image| match &image.source {
            ImageSource::Build(build) => {
                Some((image.name.as_str(), self::build(root, &image.name, build)))
            }
            _ => None,
        })
        .collect();
    let parallel = plan
        .budget
        .parallel_builds
        .unwrap_or(1)
        .min(estimates.len() as u32);
    let (image, peak) = estimates.into_iter().max_by_key(|(_, e)| e.bytes)?;
    Some((
        parallel,
        Estimate::new(
            peak.bytes,
            format!("building {image}, the largest: {}", peak.source),
        ),
    ))
}

/// The largest growth of `step` among the last runs, and the run's id.
fn recorded(root: &Path, step: &str) -> Option<(u64, String)> {
    let runs = journal::list(root).ok()?;
    runs.iter()
        .rev()
        .take(HISTORY_RUNS)
        .filter(|run| run.result == RunStatus::Succeeded)
        .filter_map(|summary| {
            let record = journal::Journal::open(&root.join(&summary.id)).ok()?;
            let step = record
                .steps
                .iter()
                .find(|s| s.id == step && s.status == StepStatus::Succeeded)?;
            let growth = growth(&record.samples, step.started, step.ended?)?;
            Some((growth, summary.id.clone()))
        })
        .max_by_key(|(growth, _)| *growth)
}

/// How far memory use on the engine's host rose above its level at the
/// first sample between `from` and `to`; `None` without two samples or
/// without a rise (a build too short for the samples to see).
fn growth(samples: &[Sample], from: Timestamp, to: Timestamp) -> Option<u64> {
    let used: Vec<u64> = samples
        .iter()
        .filter(|s| s.time >= from && s.time <= to)
        .filter_map(|s| Some(s.memory?.used_bytes()))
        .collect();
    let first = *used.first()?;
    let peak = used.iter().copied().max()?;
    (peak > first).then(|| peak - first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::HostMemory;

    fn sample(at: &str, used: u64) -> Sample {
        Sample {
            time: Timestamp::parse(at).unwrap(),
            memory: Some(HostMemory {
                total_bytes: 10_000,
                available_bytes: 10_000 - used,
            }),
            nodes: vec![],
            disks: vec![],
        }
    }

    #[test]
    fn growth_is_the_rise_above_the_first_sample_within_the_step() {
        let samples = [
            sample("2026-01-01T00:00:00.000Z", 9_000),
            sample("2026-01-01T00:00:01.000Z", 1_000),
            sample("2026-01-01T00:00:02.000Z", 4_000),
            sample("2026-01-01T00:00:03.000Z", 2_000),
            sample("2026-01-01T00:00:09.000Z", 9_500),
        ];
        let from = Timestamp::parse("2026-01-01T00:00:01.000Z").unwrap();
        let to = Timestamp::parse("2026-01-01T00:00:03.000Z").unwrap();
        assert_eq!(growth(&samples, from, to), Some(3_000));
        let flat = Timestamp::parse("2026-01-01T00:00:01.500Z").unwrap();
        assert_eq!(growth(&samples[..2], from, flat), None);
    }

    fn build_with(memory: Option<u64>) -> Build {
        Build {
            context: "/src".into(),
            dockerfile: "/src/Dockerfile".into(),
            args: Default::default(),
            target: None,
            timeout: crate::plan::BUILD_TIMEOUT,
            memory: memory.map(|bytes| crate::plan::Size::parse(&format!("{bytes}B")).unwrap()),
        }
    }

    /// Records a run in which `step` grew memory use by `grown` bytes.
    fn record_run(root: &Path, step: &str, grown: u64, result: crate::journal::Outcome) {
        use crate::journal::{Event, Journal};
        let plan = crate::plan::parse(
            "apiVersion: loadmaster/v1\ncluster:\n  name: e2e\ntest:\n  command: 'true'\n",
            &root.join("loadmaster.yaml"),
        )
        .unwrap();
        let journal = Journal::create(root, &plan).unwrap();
        journal.record(&Event::step_start(step)).unwrap();
        for used in [1_000, 1_000 + grown] {
            std::thread::sleep(std::time::Duration::from_millis(5));
            let mut sample = sample("2026-01-01T00:00:00.000Z", used);
            sample.time = Timestamp::now();
            journal.sample(&sample).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
        journal
            .record(&Event::step_end(
                step,
                crate::journal::Outcome::Succeeded,
                None,
            ))
            .unwrap();
        journal.record(&Event::run_end(result)).unwrap();
    }

    #[test]
    fn an_earlier_runs_growth_wins_over_the_plans_figure_and_the_default() {
        let scratch = tempfile::Builder::new()
            .prefix("lm-estimate-")
            .tempdir()
            .unwrap();
        let root = scratch.path().to_path_buf();
        let build = build_with(Some(300));
        assert_eq!(
            super::build(&root, "app:1", &build).source,
            "the plan's images[].build.memory"
        );
        assert_eq!(super::build(&root, "app:1", &build).bytes, 300);
        assert_eq!(
            super::build(&root, "app:1", &build_with(None)).bytes,
            DEFAULT_BUILD_BYTES
        );
        record_run(
            &root,
            "build/app:1",
            4_000,
            crate::journal::Outcome::Succeeded,
        );
        // A failed run's figure is not trusted: the build may have stopped early.
        record_run(&root, "build/app:1", 9_000, crate::journal::Outcome::Failed);
        let estimate = super::build(&root, "app:1", &build);
        let other = super::build(&root, "other:1", &build);
        assert_eq!(estimate.bytes, 4_000, "{estimate:?}");
        assert!(
            estimate.source.contains("recorded while it built in run"),
            "{estimate:?}"
        );
        assert_eq!(other.bytes, 300);
    }

    #[test]
    fn the_preflight_counts_a_build_as_the_scheduler_does() {
        let scratch = tempfile::Builder::new()
            .prefix("lm-build-peak-")
            .tempdir()
            .unwrap();
        let root = scratch.path().to_path_buf();
        std::fs::create_dir_all(root.join("app")).unwrap();
        std::fs::write(root.join("app/Dockerfile"), "FROM scratch\n").unwrap();
        let plan = crate::plan::parse(
            "apiVersion: loadmaster/v1\ncluster:\n  name: e2e\nimages:\n  - name: app:1\n    build: {context: app}\ntest:\n  command: 'true'\n",
            &root.join("loadmaster.yaml"),
        )
        .unwrap();
        let ImageSource::Build(build) = &plan.images[0].source else {
            panic!("{:?}", plan.images[0]);
        };
        let (parallel, unrecorded) = plan_peak(&root, &plan).unwrap();
        assert_eq!(parallel, 1);
        assert_eq!(unrecorded.bytes, DEFAULT_BUILD_BYTES);
        assert_eq!(unrecorded.bytes, super::build(&root, "app:1", build).bytes);
        record_run(
            &root,
            "build/app:1",
            7_000,
            crate::journal::Outcome::Succeeded,
        );
        let (_, recorded) = plan_peak(&root, &plan).unwrap();
        let scheduled = super::build(&root, "app:1", build);
        // The doctor once assumed 2 GiB per build whatever earlier runs
        // recorded, while the scheduler read the journal.
        assert_eq!(recorded.bytes, 7_000, "{recorded:?}");
        assert_eq!(recorded.bytes, scheduled.bytes);
        assert!(recorded.source.contains("app:1"), "{recorded:?}");
    }
}
