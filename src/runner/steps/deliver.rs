//! The delivery steps, `deliver/<image>`: every plan image loaded into
//! every node (one image at a time: a load's memory is bounded, several at
//! once would not be), pulled first when the plan says so; or, for
//! `delivery: registry`, pushed ([`super::super::registry_delivery`]).
//! What each node was sent reaches the journal as the load's own events
//! (`node_done`, a `delivery` line each). With `cluster.imageCache`, the
//! loads keep what they streamed there, and a fresh node gets an image the
//! cache holds whole without reading the engine ([`deliver::cache`]).

use super::{Failure, OnCluster, StepError};
use crate::deliver::{self, ConnectionBytes, NodeResult, PathChoice, Source};
use crate::journal::{Event, EventBody};
use crate::plan::{Image, ImageSource, PullPolicy};
use crate::process::Spec;
use crate::process::signal;
use std::path::Path;

impl OnCluster<'_> {
    /// Delivers one image into every node.
    pub fn load(&self, image: &Image) -> Result<(), Failure> {
        let step = format!("deliver/{}", image.name);
        self.recorder.step(&step, || {
            let progress = self.recorder.reporter.delivery(&step);
            let image_cache = match &self.plan.cluster.image_cache {
                Some(cache) => Some(
                    deliver::cache::ImageCache::open(&cache.dir, cache.max_size.bytes())
                        .map_err(|e| StepError::failed(e.to_string()))?,
                ),
                None => None,
            };
            let options = deliver::Options {
                image_cache,
                ..deliver::Options::default()
            };
            // A SIGINT or SIGTERM makes the watchdog stop the engine
            // commands a load runs, which fails the load: that is the
            // interruption, not a failure to diagnose.
            let started = std::time::Instant::now();
            let failed_source = |error: deliver::DeliverError| match signal::received() {
                Some(signal) => StepError::Interrupted(signal),
                None => {
                    // The engine command that failed, as facts for triage.
                    if let Some(command) = error.facts().and_then(|f| f.command) {
                        self.recorder.record(&Event::failed_command(
                            &step,
                            &command,
                            started.elapsed(),
                        ));
                    }
                    StepError::failed(error.to_string())
                }
            };
            let (reports, path, connection) = match &image.source {
                ImageSource::Archive { path } => deliver::load(
                    self.engine,
                    self.nodes,
                    archive_source(path, &image.name)?,
                    &options,
                    progress.as_ref(),
                )
                .map(|reports| {
                    let connection = ConnectionBytes::of(0, &reports);
                    (reports, "archive".to_string(), connection)
                })
                .map_err(failed_source)?,
                source => {
                    if let ImageSource::Pull { policy } = source {
                        self.pull(&step, &image.name, *policy)?;
                    }
                    deliver::load_image(
                        self.engine,
                        &self.plan.cluster.name,
                        self.nodes,
                        &image.name,
                        PathChoice::Auto,
                        &options,
                        progress.as_ref(),
                    )
                    .map(|load| (load.reports, load.path.to_string(), load.connection))
                    .map_err(failed_source)?
                }
            };
            self.recorder.record(&Event::in_step(
                &step,
                EventBody::Connection {
                    image: image.name.clone(),
                    path,
                    from_engine: connection.from_engine,
                    to_nodes: connection.to_nodes,
                },
            ));
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
                        facts: report.failure.clone().map(Box::new),
                    })
                }
                None => Ok(()),
            }
        })
    }

    /// `<engine> pull` of a plan image, unless it is there and the plan
    /// pulls only missing images.
    pub(in super::super) fn pull(
        &self,
        step: &str,
        image: &str,
        policy: PullPolicy,
    ) -> Result<(), StepError> {
        if policy == PullPolicy::IfMissing && self.engine.image_inspect(image).is_ok() {
            return Ok(());
        }
        let argv = [self.engine.kind().name(), "pull", image];
        self.recorder
            .checked(step, &Spec::new(&argv, crate::plan::BUILD_TIMEOUT.get()))
            .map(drop)
    }
}

/// An image's archive file, opened as the source of a load or a push.
pub(in super::super) fn archive_source<'a>(
    path: &Path,
    image: &'a str,
) -> Result<Source<'a>, StepError> {
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
