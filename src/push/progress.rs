//! What a push reports as it goes: the hooks [`PushProgress`] the push
//! code calls. They print nothing: the events layer (`PushEvents`) turns
//! them into events for its sinks (the renderers, and the journal, which
//! keeps each push's report as a `delivery` and its retries as notes).

use super::PushReport;
use super::retry::Retry;
use crate::archive::Digest;
use serde::Serialize;

/// What a push found a blob needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "blob", rename_all = "kebab-case")]
pub enum BlobStep<'a> {
    /// The repository has it: nothing sent.
    Present,
    /// Linked from another repository of the registry: nothing sent.
    Mounted { from: &'a str },
    /// Sent, `bytes` of it.
    Uploaded { bytes: u64 },
}

/// Receives a push's progress. `streaming` is called several times a
/// second, so implementations must be cheap.
pub trait PushProgress: Sync {
    /// A push of `image` to `destination` (`host/repo:tag`) starts.
    fn begin(&self, image: &str, destination: &str, size: Option<u64>);
    fn blob(&self, digest: &Digest, step: BlobStep<'_>);
    /// The engine's `save` starts, because `missing` blobs must be sent.
    fn reading(&self, missing: usize);
    /// Bytes read from the source and uploaded so far.
    fn streaming(&self, read: u64, uploaded: u64);
    fn retry(&self, retry: &Retry);
    fn done(&self, report: &PushReport);
}

/// Nothing at all (for library callers and tests).
pub struct Silent;

impl PushProgress for Silent {
    fn begin(&self, _: &str, _: &str, _: Option<u64>) {}
    fn blob(&self, _: &Digest, _: BlobStep<'_>) {}
    fn reading(&self, _: usize) {}
    fn streaming(&self, _: u64, _: u64) {}
    fn retry(&self, _: &Retry) {}
    fn done(&self, _: &PushReport) {}
}
