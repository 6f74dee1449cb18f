//! What can be wrong with an image archive, said so that the user knows which
//! entry is at fault and what to do about it.
//!
//! Archives come from engines we drive and from CI artifacts we do not
//! control, so every check names the entry and the byte offset it found the
//! problem at: "the archive is broken" alone would send the user hunting.

use super::digest::Digest;
use super::reference::ReferenceError;
use crate::units;
use std::io;

/// The advice for an archive that cannot be trusted as it is.
const RECREATE: &str = "re-create it with `docker save IMAGE` or `podman save IMAGE`";

/// Why an image archive could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("reading the archive failed after {at}: {source}", at = position(*.offset))]
    Read {
        offset: u64,
        #[source]
        source: io::Error,
    },

    #[error(
        "the archive is truncated: it ends after {at}{inside}, before its end marker; the save was cut short (engine killed, disk full, partial download): {RECREATE}",
        at = position(*.offset),
        inside = .entry.as_ref().map(|e| format!(" in {e}")).unwrap_or_default()
    )]
    Truncated {
        offset: u64,
        /// The entry whose header or data was cut, if the cut is inside one.
        entry: Option<String>,
    },

    #[error("the archive is not a valid tar stream at {at}: {detail}; {RECREATE}", at = position(*.offset))]
    InvalidTar { offset: u64, detail: String },

    #[error("the archive has data after its end marker, at {at}: it may be two archives concatenated; pass a single `docker save` or `podman save` output", at = position(*.offset))]
    TrailingData { offset: u64 },

    #[error(
        "entry {entry:?} is a {kind}, which image archives never contain: refusing the archive; {RECREATE}"
    )]
    UnsupportedEntry { entry: String, kind: String },

    #[error(
        "entry {entry:?} has an unsafe path ({reason}): image archives hold only relative paths that stay inside the archive, so this one was crafted or corrupted; {RECREATE}"
    )]
    UnsafePath { entry: String, reason: &'static str },

    #[error(
        "entry {entry:?} is under blobs/ but is not named blobs/sha256/<64 lowercase hex digits>, as OCI layouts name their blobs; {RECREATE}"
    )]
    InvalidBlobName { entry: String },

    #[error(
        "entry {entry:?} does not match its digest: its name says {expected}, its content hashes to {actual}; the archive is corrupt or was altered: {RECREATE}"
    )]
    DigestMismatch {
        entry: String,
        expected: Digest,
        actual: Digest,
    },

    #[error(
        "entry {entry:?} is {size}, above the {limit} limit for image metadata (manifests, configs, index); if this image really has metadata this large, raise the limit",
        size = units::bytes(*.size),
        limit = units::bytes(*.limit)
    )]
    MetadataTooLarge {
        entry: String,
        size: u64,
        limit: u64,
    },

    #[error(
        "the archive's metadata and entry list add up to more than {limit} (reached at entry {entry:?}): an image archive holds a few small files per layer, so this one is malformed or crafted; if the image really has that many layers, raise the limit",
        limit = units::bytes(*.limit)
    )]
    MetadataBudgetExceeded { entry: String, limit: u64 },

    #[error(
        "entry {entry:?} appears twice and {detail}: refusing to guess which one is meant; {RECREATE}"
    )]
    DuplicateEntry { entry: String, detail: String },

    #[error("{entry} is not valid: {detail}; {RECREATE}")]
    InvalidMetadata { entry: String, detail: String },

    #[error(
        "layer {index} of image {image} ({entry}) has the diff ID {actual}, but the image config lists {expected}: the layer does not belong to this image; {RECREATE}"
    )]
    DiffIdMismatch {
        image: String,
        index: usize,
        entry: String,
        expected: Digest,
        actual: Digest,
    },

    #[error(
        "{referenced_by} refers to {blob}, which is not in the archive: the archive is incomplete; {RECREATE}"
    )]
    MissingBlob { referenced_by: String, blob: String },

    #[error(
        "the stream is not an image archive: it has neither manifest.json (docker-archive) nor index.json (OCI layout); pass the output of `docker save` or `podman save`"
    )]
    NotAnImageArchive,

    #[error("the consumer of {entry:?} failed: {source}")]
    Visitor {
        entry: String,
        #[source]
        source: io::Error,
    },

    #[error(
        "image {requested} is not in the archive, which holds {available}: save the image you want to load, or ask for one of these"
    )]
    ImageNotInArchive {
        requested: String,
        available: String,
    },

    #[error(
        "image {image} is in the archive for {present}, not for {requested}: ask for one of these with --platform, or save the platform you want"
    )]
    PlatformNotInArchive {
        image: String,
        requested: String,
        present: String,
    },

    #[error(
        "image {image} is in the archive for {present}, none of them this machine's ({host}): pick one with --platform"
    )]
    NoPlatformForHost {
        image: String,
        host: String,
        present: String,
    },

    #[error(transparent)]
    Reference(#[from] ReferenceError),
}

/// "12.3 MiB (12897484 bytes)": readable, and exact for `dd`/`cmp`.
fn position(offset: u64) -> String {
    if offset < 1024 {
        format!("{offset} bytes")
    } else {
        format!("{} ({offset} bytes)", units::bytes(offset))
    }
}
