//! Delivery through a registry (`delivery: {mode: registry}`): no node is
//! touched. The registry is the plan's, else the one the cluster's
//! KEP-1755 ConfigMap names ([`super::registry_hosting`]); every plan image
//! is pushed to it from the engine or its archive, only the blobs it lacks
//! ([`crate::push`]); each push is a `delivery` line of the journal with
//! the pushed reference and digest, its retries notes (the journal keeps
//! the push's own events, [`crate::events::recording`]); and each becomes a
//! [`Rewrite`] so that deployed manifests name exactly what was pushed
//! ([`super::overlay`]).

use super::GATHER_TIMEOUT;
use super::overlay::Rewrite;
use super::registry_hosting::{self, HostingError, LocalRegistryHosting};
use super::steps::deliver::archive_source;
use super::steps::{Failure, OnCluster, StepError, failure_line};
use crate::archive::Digest;
use crate::deliver::Source;
use crate::events;
use crate::plan::{Image, ImageSource};
use crate::process::Spec;
use crate::process::signal;
use crate::push::{PushReport, Pusher, RegistryTarget};
use serde::Serialize;
use std::time::Instant;

/// One plan image as pushed, for `-o json`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pushed {
    pub image: String,
    /// `host/repository:tag`, where it went.
    pub pushed: String,
    pub digest: Digest,
    /// What the deployed manifests name: `PULL-HOST/repository@digest`.
    pub deployed_as: String,
}

/// The registry images go to, and the host the nodes pull them from.
struct Registry {
    target: RegistryTarget,
    /// KEP-1755's `hostFromContainerRuntime` when discovered, else the
    /// push host.
    pull_host: String,
}

impl OnCluster<'_> {
    /// Pushes every plan image; what was pushed, and the rewrites with
    /// which deploy steps apply overlays that name the pushed images.
    pub(super) fn push_images(
        &self,
        registry: Option<&str>,
        allow_http: bool,
    ) -> Result<(Vec<Pushed>, Vec<Rewrite>), Failure> {
        if self.plan.images.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let registry = self
            .recorder
            .step("registry", || self.registry(registry, allow_http))?;
        let progress = self.recorder.reporter.pushes(&registry.target.host);
        let mut pusher = Pusher::new(self.engine, &registry.target, progress.as_ref())
            .map_err(|e| ("registry".to_string(), StepError::failed(e.to_string())))?;
        let mut pushed = Vec::new();
        for image in &self.plan.images {
            let report = self.push(&mut pusher, &registry.target.host, image)?;
            let from = crate::archive::normalize_reference(&image.name).map_err(|e| {
                (
                    format!("deliver/{}", image.name),
                    StepError::failed(e.to_string()),
                )
            })?;
            let rewrite = Rewrite {
                to: format!(
                    "{}/{}",
                    registry.pull_host,
                    registry.target.repository(&from)
                ),
                from,
                digest: report.digest,
            };
            pushed.push((
                Pushed {
                    image: image.name.clone(),
                    pushed: report.pushed,
                    digest: report.digest,
                    deployed_as: rewrite.pinned(),
                },
                rewrite,
            ));
        }
        Ok(pushed.into_iter().unzip())
    }

    /// The plan's registry, else the one the cluster names in its
    /// `local-registry-hosting` ConfigMap (read with kubectl).
    fn registry(&self, given: Option<&str>, allow_http: bool) -> Result<Registry, StepError> {
        let target = |spec: &str| {
            RegistryTarget::parse(spec, allow_http).map_err(|e| StepError::failed(e.to_string()))
        };
        if let Some(spec) = given {
            let target = target(spec)?;
            return Ok(Registry {
                pull_host: target.host.clone(),
                target,
            });
        }
        let mut spec = Spec::new(&self.kube.kubectl.local_registry_hosting(), GATHER_TIMEOUT);
        spec.env = self.kube.env();
        let ran = self.recorder.command("registry", &spec)?;
        if !ran.success() {
            let stderr = String::from_utf8_lossy(&ran.stderr_tail);
            return Err(StepError::failed(
                if registry_hosting::is_not_found(&stderr) {
                    HostingError::Absent.to_string()
                } else {
                    format!(
                        "cannot read which registry the cluster uses: {}",
                        failure_line(&spec, &ran)
                    )
                },
            ));
        }
        let hosting = LocalRegistryHosting::from_config_map(&ran.stdout_tail)
            .map_err(|e| StepError::failed(e.to_string()))?;
        let registry = Registry {
            target: target(&hosting.host)?,
            pull_host: hosting.runtime_host().to_string(),
        };
        self.recorder.note(
            Some("registry"),
            format!(
                "pushing to {} as ConfigMap {}/{} says (KEP-1755); manifests name {}",
                hosting.host,
                registry_hosting::NAMESPACE,
                registry_hosting::CONFIG_MAP,
                registry.pull_host
            ),
        );
        Ok(registry)
    }

    /// Pushes one image as step `deliver/<image>`, journaled whatever the
    /// outcome.
    fn push(
        &self,
        pusher: &mut Pusher,
        registry_host: &str,
        image: &Image,
    ) -> Result<PushReport, Failure> {
        let step = format!("deliver/{}", image.name);
        self.recorder.step(&step, || {
            let source = match &image.source {
                ImageSource::Archive { path } => archive_source(path, &image.name)?,
                source => {
                    if let ImageSource::Pull { policy } = source {
                        self.pull(&step, &image.name, *policy)?;
                    }
                    Source::Engine { image: &image.name }
                }
            };
            let started = Instant::now();
            let result = pusher.push(&image.name, source);
            if let Err(error) = &result {
                self.recorder.reporter.emit(&events::Event::PushFailed {
                    step: Some(&step),
                    image: &image.name,
                    registry: registry_host,
                    error: &error.to_string(),
                    duration_ms: started.elapsed().as_millis() as u64,
                });
            }
            result.map_err(|error| match signal::received() {
                Some(signal) => StepError::Interrupted(signal),
                None => StepError::failed(format!(
                    "pushing {} to {registry_host} failed: {error}",
                    image.name
                )),
            })
        })
    }
}
