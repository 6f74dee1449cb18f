//! A minimal OCI distribution (registry v2) endpoint on loopback, in
//! process, that an engine's `push` talks to.
//!
//! The point is the protocol's first question: before uploading a blob, a
//! pushing engine asks (`HEAD /v2/<name>/blobs/<digest>`) whether the
//! destination has it, and uploads only the rest. The answers come from a
//! [`Storage`] (for `load`: what the target nodes' containerd hold), so
//! docker and podman read out of their stores only what the nodes lack,
//! instead of the whole image a `save` exports.
//!
//! What it is not: a registry that keeps images. Blobs are streamed into
//! the [`Storage`] as they arrive (never buffered whole: memory per upload
//! is one read buffer), manifests (at most [`MANIFEST_LIMIT`]) are kept in
//! memory for the session, and `GET` of a blob is answered only for what
//! the storage keeps in memory. It listens on 127.0.0.1 only, speaks plain
//! HTTP (both engines treat 127.0.0.0/8 as an insecure registry: docker by
//! default, podman with `--tls-verify=false`), and has no authentication:
//! anything on this machine can push to it while a load runs, and what it
//! pushes is verified against its digest like everything else.
//!
//! Endpoints: `GET /v2/`; `HEAD`/`GET /v2/<name>/blobs/<digest>`;
//! `POST /v2/<name>/blobs/uploads/` (with `?digest=` for a monolithic upload,
//! `?mount=&from=` for a cross-repository mount); `PATCH` and `PUT ?digest=`
//! on the upload's location; `HEAD`/`GET`/`PUT /v2/<name>/manifests/<ref>`.
//! Every request is recorded in a bounded log ([`Registry::requests`]).

mod http;
mod server;

pub use server::{Manifest, Registry, RegistryError, RequestRecord};

use crate::archive::Digest;
use std::io;
use std::sync::Arc;

/// Largest manifest accepted: the limit the distribution spec suggests.
pub const MANIFEST_LIMIT: usize = 4 << 20;

/// Where blobs pushed to the registry go, and what it already holds.
pub trait Storage: Send + Sync + 'static {
    /// The size of `digest` when the destination already holds it (then a
    /// pushing engine skips it).
    fn blob_size(&self, digest: &Digest) -> Option<u64>;

    /// The bytes of a blob held in memory (small blobs received in this
    /// session), to answer `GET`.
    fn blob_bytes(&self, digest: &Digest) -> Option<Arc<[u8]>>;

    /// Starts receiving a blob whose digest is learnt at the end.
    fn upload(&self) -> Result<Box<dyn BlobUpload>, String>;
}

/// One blob being received. Dropping it without [`BlobUpload::commit`]
/// discards what was written.
pub trait BlobUpload: Send {
    /// The next bytes, in order.
    fn write(&mut self, chunk: &[u8]) -> io::Result<()>;

    /// All bytes were written and their sha256 is `digest` (checked by the
    /// registry before calling): keep the blob.
    fn commit(self: Box<Self>, digest: Digest) -> Result<(), String>;
}
