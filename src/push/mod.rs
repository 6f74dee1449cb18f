//! `push`: images from the engine (or an archive) into a real registry, by
//! the OCI distribution protocol, sending only the blobs it lacks.
//!
//! For each image:
//! 1. look up every blob the image needs (its config and its layers, whose
//!    digests the engine's `image inspect` gives) with `HEAD`; a blob this
//!    command already put in another repository of the registry is
//!    mounted from there instead of sent;
//! 2. if a blob is still missing, stream the image out of the engine
//!    (`save`, through the archive reader, which checks every digest) and
//!    upload the missing blobs as they pass ([`upload`]): uncompressed
//!    layers, as `application/vnd.oci.image.layer.v1.tar`; if none is
//!    missing, the engine is not asked to `save` at all;
//! 3. `PUT` the OCI manifest under the tag, last: a push that failed
//!    before leaves the tag as it was.
//!
//! Transient failures are retried ([`retry`]), credentials come from the
//! engines' auth files ([`credentials`], [`auth`]), and plain HTTP is only
//! for loopback or when asked for ([`target`]).

mod auth;
mod blobs;
mod client;
pub mod credentials;
pub mod progress;
pub mod retry;
mod trust;
mod upload;

pub use crate::archive::RegistryTarget;
pub use progress::{BlobStep, PushProgress};
pub use retry::{Retry, RetryPolicy};

use crate::archive::{self, Digest, ImageReference, LayerBlob};
use crate::deliver::{self, DeliverError, Source};
use crate::engine::{Engine, EngineError, ImageDetails};
use client::Client;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::time::Instant;
use upload::{Known, Uploader};

/// What pushing one image did (`-o json`, one per image).
#[derive(Clone, Debug, Serialize)]
pub struct PushReport {
    /// The image as the user named it.
    pub image: String,
    /// Where it went: `host/prefix/repo:tag`.
    pub pushed: String,
    /// The manifest's digest: `host/prefix/repo@digest` pulls exactly this.
    pub digest: Digest,
    /// The image config's digest (the engine's image ID).
    pub config: Digest,
    pub blobs_uploaded: u64,
    /// Blobs the repository had already.
    pub blobs_skipped: u64,
    /// Blobs linked from another repository of the registry.
    pub blobs_mounted: u64,
    pub bytes_uploaded: u64,
    /// Whether the image was read from the engine (`save`) or the archive:
    /// false when the registry lacked nothing.
    pub read_source: bool,
    pub retries: Vec<Retry>,
    pub duration_ms: u64,
}

/// Why a push failed. Messages name the registry, the request and the fix,
/// never a credential.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// `--registry` is not a registry, or asks for plain HTTP where it is
    /// not allowed.
    #[error("{0}")]
    BadTarget(String),
    /// An image name that cannot be pushed as given.
    #[error("{0}")]
    BadImage(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Reading the image (the engine's `save` or an archive) failed.
    #[error(transparent)]
    Source(#[from] DeliverError),
    #[error("registry {registry} {detail}")]
    Unauthorized { registry: String, detail: String },
    #[error("`{request}` to {registry} failed: {detail}")]
    Registry {
        registry: String,
        request: String,
        detail: String,
    },
    #[error(
        "`{request}` to {registry} failed {attempts} times, the last: {error}; check that the registry is up (`curl -sI {url}/v2/`) and push again"
    )]
    GaveUp {
        registry: String,
        /// `http://host` or `https://host`.
        url: String,
        request: String,
        attempts: u32,
        error: String,
    },
    #[error("cannot reach registry {registry}: {detail}")]
    Connection { registry: String, detail: String },
}

impl From<archive::TargetError> for PushError {
    fn from(error: archive::TargetError) -> PushError {
        PushError::BadTarget(error.0)
    }
}

impl PushError {
    /// Whether the fault is in what the user gave (exit code 2).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            PushError::BadTarget(_)
                | PushError::BadImage(_)
                | PushError::Source(DeliverError::BadArchive { .. })
        )
    }
}

/// Pushes `images` from the engine to `target`, one after the other,
/// stopping at the first failure. Every name is checked before anything is
/// read or sent.
pub fn push_images(
    engine: &Engine,
    images: &[String],
    target: &RegistryTarget,
    progress: &dyn PushProgress,
) -> Result<Vec<PushReport>, PushError> {
    for image in images {
        destination_of(image)?;
    }
    let mut pusher = Pusher::new(engine, target, progress)?;
    images
        .iter()
        .map(|image| pusher.push(image, Source::Engine { image }))
        .collect()
}

/// The reference an image is pushed under; it must have a tag.
pub fn destination_of(image: &str) -> Result<ImageReference, PushError> {
    archive::tagged_reference(image).map_err(|error| PushError::BadImage(error.to_string()))
}

/// Pushes images to one registry, remembering across images which blobs
/// it put where (the sources of mounts).
pub struct Pusher<'a> {
    engine: &'a Engine,
    target: RegistryTarget,
    client: Client<'a>,
    progress: &'a dyn PushProgress,
    located: Located,
}

/// A repository of the registry where each blob is, and its size, as
/// pushes to it saw: where a later push mounts the blob from. Pushes made
/// by separate pushers (the runner's, one step per image) share it through
/// [`Pusher::remember`] and [`Pusher::located`].
#[derive(Clone, Debug, Default)]
pub struct Located(HashMap<Digest, (String, u64)>);

impl Located {
    /// Adds what `other` saw; a blob already located stays where it was.
    pub fn extend(&mut self, other: &Located) {
        for (digest, place) in &other.0 {
            self.0.entry(*digest).or_insert_with(|| place.clone());
        }
    }
}

/// Whether a push to `target` can trust it as asked (the CAs of
/// `--cert-dir`): the error a [`Pusher`] for it would stop at, found before
/// anything runs.
pub fn check_trust(target: &RegistryTarget) -> Result<(), PushError> {
    if target.plain_http {
        return Ok(());
    }
    trust::tls_config(&target.host, target.cert_dir.as_deref()).map(drop)
}

impl<'a> Pusher<'a> {
    /// A pusher with credentials from this process's environment's auth
    /// files and the default retry policy.
    pub fn new(
        engine: &'a Engine,
        target: &RegistryTarget,
        progress: &'a dyn PushProgress,
    ) -> Result<Pusher<'a>, PushError> {
        Pusher::with_policy(engine, target, progress, RetryPolicy::default())
    }

    pub fn with_policy(
        engine: &'a Engine,
        target: &RegistryTarget,
        progress: &'a dyn PushProgress,
        policy: RetryPolicy,
    ) -> Result<Pusher<'a>, PushError> {
        let credentials = credentials::lookup(&target.host, &|name| std::env::var(name).ok());
        Ok(Pusher {
            engine,
            target: target.clone(),
            client: Client::new(target, credentials, policy, progress)?,
            progress,
            located: Located::default(),
        })
    }

    /// Takes in where earlier pushes to the same registry saw blobs, so
    /// that this pusher mounts them rather than send them again.
    pub fn remember(&mut self, located: &Located) {
        self.located.extend(located);
    }

    /// Where this pusher's pushes saw blobs (and what it was given).
    pub fn located(&self) -> &Located {
        &self.located
    }

    /// The retries of the push that failed last (those of a push that
    /// succeeded are in its report).
    pub fn take_retries(&mut self) -> Vec<Retry> {
        self.client.take_retries()
    }

    /// Pushes the image named `image` from `source` (the engine, or an
    /// archive holding it).
    pub fn push(&mut self, image: &str, source: Source<'_>) -> Result<PushReport, PushError> {
        let started = Instant::now();
        self.client.take_retries();
        let reference = destination_of(image)?;
        let tag = reference
            .tag()
            .expect("checked by destination_of")
            .to_string();
        let repository = self.target.repository(&reference);
        let pushed = self.target.reference(&repository, &tag);
        let expected = match &source {
            Source::Engine { image } => Some(self.engine.image_inspect(image)?),
            Source::Archive { .. } => None,
        };
        self.progress
            .begin(image, &pushed, expected.as_ref().map(|e| e.size));

        let mut known = HashMap::new();
        let mut mounted = BTreeSet::new();
        if let Some(details) = &expected {
            for digest in blobs_of(details) {
                self.locate(&repository, &digest, &mut known, &mut mounted)?;
            }
        }
        let missing = known.values().filter(|k| **k == Known::Missing).count();
        let looked_up = expected
            .as_ref()
            .and_then(|details| already_there(details, &known));
        let read_source = looked_up.is_none();
        let (config, config_size, layers, uploaded) = match looked_up {
            Some((config, config_size, layers)) => (config, config_size, layers, Vec::new()),
            None => {
                self.progress.reading(missing);
                let mut uploader =
                    Uploader::new(&mut self.client, self.progress, &repository, &mut known);
                let read =
                    deliver::stream_source(self.engine, source, expected.as_ref(), &mut uploader);
                if let Some(error) = uploader.failure.take() {
                    return Err(error);
                }
                let uploaded = std::mem::take(&mut uploader.uploaded);
                let parsed = read?.archive;
                let archived = deliver::pick_image(&parsed, image, None, expected.as_ref())?;
                let config = &archived.config;
                (
                    config.digest,
                    config.bytes.len() as u64,
                    archived.layers.clone(),
                    uploaded,
                )
            }
        };
        for (digest, size) in &uploaded {
            self.located.0.insert(*digest, (repository.clone(), *size));
        }
        let required: BTreeSet<Digest> = std::iter::once(config)
            .chain(layers.iter().map(|layer| layer.digest))
            .collect();
        if let Some(absent) = required
            .iter()
            .find(|digest| !matches!(known.get(digest), Some(Known::Present { .. })))
        {
            return Err(PushError::Source(DeliverError::Mismatch(format!(
                "blob {absent} of {image} was neither in the registry nor in what the engine saved; push again"
            ))));
        }

        let manifest = archive::oci_manifest(config, config_size, &layers);
        blobs::put_manifest(&mut self.client, &repository, &tag, &manifest)?;
        let uploaded_digests: BTreeSet<&Digest> = uploaded.iter().map(|(d, _)| d).collect();
        let report = PushReport {
            image: image.to_string(),
            pushed,
            digest: manifest.digest,
            config,
            blobs_uploaded: uploaded.len() as u64,
            blobs_skipped: required
                .iter()
                .filter(|d| !uploaded_digests.contains(d) && !mounted.contains(*d))
                .count() as u64,
            blobs_mounted: mounted.len() as u64,
            bytes_uploaded: uploaded.iter().map(|(_, size)| size).sum(),
            read_source,
            retries: self.client.take_retries(),
            duration_ms: started.elapsed().as_millis() as u64,
        };
        self.progress.done(&report);
        Ok(report)
    }

    /// Finds out whether `repository` has `digest`, mounting it from
    /// another repository where this command saw it.
    fn locate(
        &mut self,
        repository: &str,
        digest: &Digest,
        known: &mut HashMap<Digest, Known>,
        mounted: &mut BTreeSet<Digest>,
    ) -> Result<(), PushError> {
        if let Some(size) = blobs::head(&mut self.client, repository, digest)? {
            self.progress.blob(digest, BlobStep::Present);
            known.insert(*digest, Known::Present { size });
            self.located
                .0
                .entry(*digest)
                .or_insert_with(|| (repository.to_string(), size));
            return Ok(());
        }
        let elsewhere = self
            .located
            .0
            .get(digest)
            .filter(|(from, _)| from != repository)
            .cloned();
        if let Some((from, size)) = elsewhere
            && blobs::mount(&mut self.client, repository, digest, &from)? == blobs::Mount::Mounted
        {
            self.progress
                .blob(digest, BlobStep::Mounted { from: &from });
            known.insert(*digest, Known::Present { size });
            mounted.insert(*digest);
            return Ok(());
        }
        known.insert(*digest, Known::Missing);
        Ok(())
    }
}

/// The blobs an image in the engine needs in a registry: its config (the
/// image ID) and its layers (diff IDs: they are pushed uncompressed).
fn blobs_of(details: &ImageDetails) -> Vec<Digest> {
    let mut seen = BTreeSet::new();
    std::iter::once(&details.id)
        .chain(&details.layers)
        .filter_map(|digest| digest.parse().ok())
        .filter(|digest| seen.insert(*digest))
        .collect()
}

/// The config digest and size and the layers of an image all of whose
/// blobs the repository has, as its manifest lists them; None when one is
/// missing (or the engine's ID is not the config's digest).
fn already_there(
    details: &ImageDetails,
    known: &HashMap<Digest, Known>,
) -> Option<(Digest, u64, Vec<LayerBlob>)> {
    let size_of = |digest: &Digest| match known.get(digest) {
        Some(Known::Present { size }) => Some(*size),
        _ => None,
    };
    let config: Digest = details.id.parse().ok()?;
    let config_size = size_of(&config)?;
    let layers = details
        .layers
        .iter()
        .map(|layer| {
            let digest: Digest = layer.parse().ok()?;
            Some(LayerBlob {
                digest,
                size: size_of(&digest)?,
                media_type: archive::OCI_LAYER.to_string(),
                diff_id: digest,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some((config, config_size, layers))
}
