//! Delivery through a registry (`delivery: {mode: registry}`): no node is
//! touched. Step `registry` finds the registry once per run: the plan's,
//! else the one the cluster's KEP-1755 ConfigMap names
//! ([`super::registry_hosting`]), its trust checked before anything is
//! pushed. Then each plan image is its own step `deliver/<image>`, as a
//! load is, pushed as soon as its build ends, from the engine or its
//! archive, only the blobs the registry lacks ([`crate::push`]; what one
//! step's push sent, a later one mounts rather than sends again). Each
//! push is a `delivery` line of the journal with the pushed reference and
//! digest, its retries notes (the journal keeps the push's own events,
//! [`crate::events::recording`]); and each becomes a [`Rewrite`] so that
//! deployed manifests name exactly what was pushed ([`super::overlay`]).

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
use crate::push::{self, Located, Pusher, RegistryTarget};
use serde::Serialize;
use std::sync::Mutex;
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

/// The registry images go to, and the host the nodes pull them from: found
/// by step `registry`, shared by every image's push step.
pub struct Registry {
    target: RegistryTarget,
    /// KEP-1755's `hostFromContainerRuntime` when discovered, else the
    /// push host.
    pull_host: String,
    /// Where the pushes so far put each blob: a later push mounts it from
    /// there.
    located: Mutex<Located>,
}

impl OnCluster<'_> {
    /// Step `registry`: the registry every plan image is pushed to, the
    /// plan's (`given`) or the cluster's, with its TLS trust checked.
    pub(super) fn find_registry(
        &self,
        given: Option<&str>,
        allow_http: bool,
    ) -> Result<Registry, Failure> {
        self.recorder.step("registry", || {
            let (target, pull_host) = self.registry(given, allow_http)?;
            push::check_trust(&target).map_err(|e| StepError::failed(e.to_string()))?;
            Ok(Registry {
                target,
                pull_host,
                located: Mutex::default(),
            })
        })
    }

    /// Step `deliver/<image>`: pushes one plan image to `registry`,
    /// journaled whatever the outcome; what was pushed, and the rewrite
    /// with which deploy steps apply overlays that name it.
    pub(super) fn push_image(
        &self,
        registry: &Registry,
        image: &Image,
    ) -> Result<(Pushed, Rewrite), Failure> {
        let step = format!("deliver/{}", image.name);
        let host = &registry.target.host;
        let progress = self.recorder.reporter.pushes(host);
        self.recorder.step(&step, || {
            let mut pusher = Pusher::new(self.engine, &registry.target, progress.as_ref())
                .map_err(|e| StepError::failed(e.to_string()))?;
            pusher.remember(&registry.located.lock().unwrap_or_else(|p| p.into_inner()));
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
            registry
                .located
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(pusher.located());
            let report = result.map_err(|error| {
                self.recorder.reporter.emit(&events::Event::PushFailed {
                    step: Some(&step),
                    image: &image.name,
                    registry: host,
                    error: &error.to_string(),
                    duration_ms: started.elapsed().as_millis() as u64,
                });
                match signal::received() {
                    Some(signal) => StepError::Interrupted(signal),
                    None => StepError::failed(format!(
                        "pushing {} to {host} failed: {error}",
                        image.name
                    )),
                }
            })?;
            let from = crate::archive::normalize_reference(&image.name)
                .map_err(|e| StepError::failed(e.to_string()))?;
            let rewrite = Rewrite {
                to: format!(
                    "{}/{}",
                    registry.pull_host,
                    registry.target.repository(&from)
                ),
                from,
                digest: report.digest,
            };
            let pushed = Pushed {
                image: image.name.clone(),
                pushed: report.pushed,
                digest: report.digest,
                deployed_as: rewrite.pinned(),
            };
            Ok((pushed, rewrite))
        })
    }

    /// The plan's registry, else the one the cluster names in its
    /// `local-registry-hosting` ConfigMap (read with kubectl): where to
    /// push, and the host the nodes pull from.
    fn registry(
        &self,
        given: Option<&str>,
        allow_http: bool,
    ) -> Result<(RegistryTarget, String), StepError> {
        let target = |spec: &str| {
            RegistryTarget::parse(spec, allow_http).map_err(|e| StepError::failed(e.to_string()))
        };
        if let Some(spec) = given {
            let target = target(spec)?;
            return Ok((target.clone(), target.host));
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
        let registry = (target(&hosting.host)?, hosting.runtime_host().to_string());
        self.recorder.note(
            Some("registry"),
            format!(
                "pushing to {} as ConfigMap {}/{} says (KEP-1755); manifests name {}",
                hosting.host,
                registry_hosting::NAMESPACE,
                registry_hosting::CONFIG_MAP,
                registry.1
            ),
        );
        Ok(registry)
    }
}
