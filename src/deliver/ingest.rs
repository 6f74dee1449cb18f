//! The push endpoint's storage: the target nodes' content stores, and the
//! image cache when the load has one.
//!
//! "Present" (what the registry answers a pushing engine's `HEAD` with) is a
//! blob every target node holds, from its inventory or received in this
//! session, or one the image cache holds ([`super::cache`]): a fresh node
//! then gets the layers of a changed image that the cache kept from an
//! earlier load from the cache's files, and only the changed layers are
//! read from the engine. The engine skips those blobs, so after its push
//! each is fed from its file to the nodes that lack it
//! ([`NodeStore::feed_from_cache`]) as if the engine had uploaded it,
//! hashed as it streams: a corrupt file is removed and fails the push
//! load before anything is tagged (the image then takes save). Every blob
//! the engine uploads is written into the cache as well, so that the image
//! can be recorded there whole.
//!
//! This pays only with engines whose push asks for the blobs the cache
//! holds without compressing first: podman asks for a layer by its diff ID
//! and reuses the uncompressed layer its `save` wrote, docker's containerd
//! image store pushes the compressed blobs its `save` wrote; docker's
//! classic store asks only for compressed blobs it pushed before
//! ([`super::path`] decides).
//!
//! A received blob streams, as it arrives, into each node with `ctr content
//! ingest` through `exec -i`: one upload fans out to every node through
//! bounded queues, nothing is written to the host's disk (but the cache's
//! copy).
//! Blobs of at most [`SMALL_BLOB`] (configs, small top layers) are held in
//! memory instead, up to [`MEMORY_BUDGET`] per load, and go into the node's
//! image import with the manifest: for a small change, the whole delivery
//! is then one `ctr images import` per node, no exec per blob.
//!
//! containerd's garbage collector removes content no image references, and
//! an ingested blob is referenced only once the image record is imported
//! after the push. Any image removal in the node (kubelet's image GC,
//! another load) triggers a collection, so the window is real: each
//! ingested blob is labelled `containerd.io/gc.root` right after its commit
//! and the label is removed once the image holds it ([`NodeStore::release`]).
//! A collection in the milliseconds between commit and label would still
//! remove it; the import's verification then reports the node as failed
//! ("load again"). The same labelling records the blob's diff ID
//! (`containerd.io/uncompressed`), which is what the path choice reads.

use super::cache::{BlobWriter, CacheBlobError, ImageCache};
use super::node::{NAMESPACE, UNCOMPRESSED_LABEL};
use crate::archive::Digest;
use crate::engine::{Engine, EngineError, ExecSession};
use crate::registry::{BlobUpload, Storage};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Blobs up to this size are kept in memory rather than ingested...
pub const SMALL_BLOB: usize = 4 << 20;

/// ...as long as all such blobs of one load stay within this.
pub const MEMORY_BUDGET: usize = 32 << 20;

/// Chunks queued per node: with the registry's 256 KiB reads, 2 MiB in
/// flight per node at most; a slow node slows the upload, it does not
/// make memory grow.
const QUEUE_DEPTH: usize = 8;

/// How long `ctr content ingest` may take to commit once its input ended.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// One target node, as the storage sees it.
pub struct NodeHold {
    pub name: String,
    /// Blobs the node held before the push.
    pub blobs: BTreeSet<Digest>,
    /// containerd's root directory, where blob sizes are read...
    pub root: String,
    /// ...unless the node's current image listed them.
    pub sizes: BTreeMap<Digest, u64>,
}

/// A blob received in this session.
#[derive(Clone, Debug)]
pub struct Received {
    pub size: u64,
    /// The bytes, for a small blob (not ingested anywhere).
    pub bytes: Option<Arc<[u8]>>,
    /// The nodes it was committed into (large blobs).
    pub ingested_into: Vec<String>,
}

/// The nodes' content stores behind the push endpoint. Clones share one
/// store (the registry holds one, the load another).
#[derive(Clone)]
pub struct NodeStore(Arc<Inner>);

struct Inner {
    engine: Engine,
    nodes: Vec<NodeHold>,
    /// A second source of blobs, and where uploads are kept.
    cache: Option<ImageCache>,
    received: Mutex<BTreeMap<Digest, Received>>,
    /// Sizes of blobs the nodes held, read when an engine asks.
    sizes: Mutex<HashMap<Digest, Option<u64>>>,
    /// Bytes of small blobs held or being received, against [`MEMORY_BUDGET`].
    held: AtomicU64,
    /// Node failures while ingesting, by node, for its report.
    failures: Mutex<BTreeMap<String, String>>,
    next_ingest: AtomicU64,
    /// The value of the `containerd.io/gc.root` labels this session sets:
    /// by whom and when, so that a label a crashed load left behind can be
    /// recognised (and removed by hand).
    stamp: String,
}

impl NodeStore {
    pub fn new(engine: &Engine, nodes: Vec<NodeHold>, cache: Option<ImageCache>) -> NodeStore {
        let stamp = format!(
            "loadmaster-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        );
        NodeStore(Arc::new(Inner {
            engine: engine.clone(),
            nodes,
            cache,
            received: Mutex::default(),
            sizes: Mutex::default(),
            held: AtomicU64::new(0),
            failures: Mutex::default(),
            next_ingest: AtomicU64::new(1),
            stamp,
        }))
    }

    /// A blob received in this session.
    pub fn received(&self, digest: &Digest) -> Option<Received> {
        self.0.received.lock().unwrap().get(digest).cloned()
    }

    /// Feeds each of `blobs` that a node lacks and the engine did not
    /// upload (the registry answered for it from the image cache) from the
    /// cache's file into the nodes that lack it, as an upload would. `Err`
    /// names a blob the cache could not give (its file corrupt, and
    /// removed, or gone): nothing of it was committed into a node. A node
    /// that fails to take a blob fails in its own report.
    pub fn feed_from_cache(&self, blobs: &[Digest]) -> Result<(), (Digest, CacheBlobError)> {
        let Some(cache) = &self.0.cache else {
            return Ok(());
        };
        for digest in blobs {
            let lacking = self.0.nodes.iter().any(|n| !n.blobs.contains(digest));
            if !lacking || self.received(digest).is_some() {
                continue;
            }
            let mut upload = NodeUpload::new(&self.0, Some(*digest));
            match cache.read_verified(digest, |chunk| upload.write(chunk)) {
                // A node that failed the commit is told in its report.
                Ok(_) => drop(Box::new(upload).commit(*digest)),
                Err(CacheBlobError::Sink(_)) => {}
                // Dropping the upload abandons the nodes' ingests.
                Err(error) => return Err((*digest, error)),
            }
        }
        Ok(())
    }

    /// Why ingesting into `node` failed, if it did.
    pub fn failure(&self, node: &str) -> Option<String> {
        self.0.failures.lock().unwrap().get(node).cloned()
    }

    /// Once the image holds them: drops the GC protection of the blobs
    /// ingested into `node`, and records each layer's diff ID (`layers`:
    /// compressed digest → diff ID) for the next load's path choice.
    pub fn release(
        &self,
        node: &str,
        layers: &BTreeMap<Digest, Digest>,
    ) -> Result<(), EngineError> {
        let received = self.0.received.lock().unwrap().clone();
        let mut script = String::from("set -e\n");
        for (digest, blob) in &received {
            if !blob.ingested_into.iter().any(|n| n == node) {
                continue;
            }
            let diff_id = layers
                .get(digest)
                .map(|d| format!(" {UNCOMPRESSED_LABEL}={d}"))
                .unwrap_or_default();
            // Digests and label keys are [a-z0-9:./=-]: nothing to quote.
            script.push_str(&format!(
                "ctr --namespace {NAMESPACE} content label {digest} containerd.io/gc.root={diff_id} >/dev/null\n"
            ));
        }
        if script.lines().count() == 1 {
            return Ok(());
        }
        self.0
            .engine
            .exec_output(node, &["sh", "-c", &script])
            .map(drop)
    }
}

impl Inner {
    /// Takes `bytes` of the memory budget; false when that would exceed it.
    fn reserve(&self, bytes: usize) -> bool {
        let bytes = bytes as u64;
        self.held
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |held| {
                (held + bytes <= MEMORY_BUDGET as u64).then_some(held + bytes)
            })
            .is_ok()
    }

    fn release_reservation(&self, bytes: usize) {
        self.held.fetch_sub(bytes as u64, Ordering::SeqCst);
    }

    fn record_failure(&self, node: &str, error: String) {
        self.failures
            .lock()
            .unwrap()
            .entry(node.to_string())
            .or_insert(error);
    }

    /// The size of a blob from the first node's content store directory:
    /// `ctr` 1.6 prints sizes only rounded, and an engine writes the size
    /// the registry answers into the manifest. `ls -ln` is in every node
    /// (kind's, and busybox in the test nodes); it prints the size fifth.
    fn stored_size(&self, digest: &Digest) -> Option<u64> {
        let node = self.nodes.first()?;
        let path = format!(
            "{}/io.containerd.content.v1.content/blobs/sha256/{}",
            node.root,
            digest.hex()
        );
        let listing = self
            .engine
            .exec_output(&node.name, &["ls", "-ln", &path])
            .ok()?;
        listing.split_whitespace().nth(4)?.parse().ok()
    }
}

impl Storage for NodeStore {
    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        let store = &self.0;
        if let Some(blob) = store.received.lock().unwrap().get(digest) {
            return Some(blob.size);
        }
        if store.nodes.is_empty() || !store.nodes.iter().all(|n| n.blobs.contains(digest)) {
            return store
                .cache
                .as_ref()
                .and_then(|cache| cache.blob_size(digest));
        }
        if let Some(size) = store.nodes.iter().find_map(|n| n.sizes.get(digest)) {
            return Some(*size);
        }
        if let Some(size) = store.sizes.lock().unwrap().get(digest) {
            return *size;
        }
        // Not under the lock: engines ask for several blobs at once.
        let size = store.stored_size(digest);
        store.sizes.lock().unwrap().insert(*digest, size);
        size
    }

    fn blob_bytes(&self, digest: &Digest) -> Option<Arc<[u8]>> {
        self.0.received.lock().unwrap().get(digest)?.bytes.clone()
    }

    fn upload(&self) -> Result<Box<dyn BlobUpload>, String> {
        Ok(Box::new(NodeUpload::new(&self.0, None)))
    }
}

/// One upload: held in memory while small, then streamed to every node
/// (that lacks it, for a blob fed from the cache).
struct NodeUpload {
    store: Arc<Inner>,
    small: Vec<u8>,
    size: u64,
    /// Started once the blob outgrew [`SMALL_BLOB`].
    ingests: Option<Vec<Ingest>>,
    /// The blob fed from the cache: the nodes holding it are not fed.
    from_cache: Option<Digest>,
    /// The copy kept in the image cache (an engine's upload).
    keep: Option<BlobWriter>,
}

impl NodeUpload {
    fn new(store: &Arc<Inner>, from_cache: Option<Digest>) -> NodeUpload {
        let keep = match from_cache {
            None => store.cache.as_ref().and_then(ImageCache::blob_writer),
            Some(_) => None,
        };
        NodeUpload {
            store: Arc::clone(store),
            small: Vec::new(),
            size: 0,
            ingests: None,
            from_cache,
            keep,
        }
    }

    fn start_ingests(&mut self) -> io::Result<()> {
        let store = &self.store;
        let n = store.next_ingest.fetch_add(1, Ordering::Relaxed);
        let reference = format!("{}-upload-{n}", store.stamp);
        let mut ingests = Vec::new();
        let holding = |node: &NodeHold| self.from_cache.is_some_and(|d| node.blobs.contains(&d));
        for node in store.nodes.iter().filter(|node| !holding(node)) {
            match Ingest::start(&store.engine, &node.name, &reference, &store.stamp) {
                Ok(ingest) => ingests.push(ingest),
                Err(error) => store.record_failure(&node.name, error.to_string()),
            }
        }
        if ingests.is_empty() {
            return Err(io::Error::other(
                "no node takes the blob (see each node's report)",
            ));
        }
        let held = std::mem::take(&mut self.small);
        self.ingests = Some(ingests);
        self.send(&held)
    }

    fn send(&mut self, chunk: &[u8]) -> io::Result<()> {
        let ingests = self.ingests.as_mut().expect("ingests started");
        let shared: Arc<[u8]> = Arc::from(chunk);
        ingests.retain(|ingest| ingest.sender.send(Feed::Data(Arc::clone(&shared))).is_ok());
        if ingests.is_empty() {
            Err(io::Error::other("every node stopped taking the blob"))
        } else {
            Ok(())
        }
    }
}

impl BlobUpload for NodeUpload {
    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.size += chunk.len() as u64;
        if let Some(keep) = &mut self.keep {
            keep.write(chunk);
        }
        if self.ingests.is_none() {
            if self.small.len() + chunk.len() <= SMALL_BLOB && self.store.reserve(chunk.len()) {
                self.small.extend_from_slice(chunk);
                return Ok(());
            }
            self.store.release_reservation(self.small.len());
            self.start_ingests()?;
        }
        self.send(chunk)
    }

    fn commit(mut self: Box<Self>, digest: Digest) -> Result<(), String> {
        if let Some(keep) = self.keep.take() {
            keep.commit(&digest);
        }
        let store = Arc::clone(&self.store);
        let mut received = Received {
            size: self.size,
            bytes: None,
            ingested_into: Vec::new(),
        };
        match self.ingests.take() {
            // Held for the rest of the load, reservation included.
            None => received.bytes = Some(Arc::from(std::mem::take(&mut self.small))),
            Some(ingests) => {
                for ingest in &ingests {
                    // A node that stopped reading fails in its outcome below.
                    let _ = ingest.sender.send(Feed::Commit(digest));
                }
                for ingest in ingests {
                    let node = ingest.node.clone();
                    match ingest.outcome() {
                        Ok(()) => received.ingested_into.push(node),
                        Err(error) => store.record_failure(&node, error),
                    }
                }
                if received.ingested_into.is_empty() {
                    let failures = store.failures.lock().unwrap();
                    let reasons: Vec<&str> = failures.values().map(String::as_str).collect();
                    return Err(format!(
                        "no node could store blob {digest}: {}",
                        reasons.join("; ")
                    ));
                }
            }
        }
        store.received.lock().unwrap().insert(digest, received);
        Ok(())
    }
}

impl Drop for NodeUpload {
    /// An upload abandoned while small gives its memory back (a committed
    /// one took its bytes along).
    fn drop(&mut self) {
        self.store.release_reservation(self.small.len());
    }
}

/// What an ingest thread is told.
enum Feed {
    Data(Arc<[u8]>),
    /// All bytes were sent and hash to this digest: commit and protect it.
    Commit(Digest),
}

/// `ctr content ingest` running in one node, fed from a thread of its own.
struct Ingest {
    node: String,
    sender: SyncSender<Feed>,
    worker: JoinHandle<Result<(), String>>,
}

impl Ingest {
    fn start(
        engine: &Engine,
        node: &str,
        reference: &str,
        stamp: &str,
    ) -> Result<Ingest, EngineError> {
        let argv = [
            "ctr",
            "--namespace",
            NAMESPACE,
            "content",
            "ingest",
            reference,
        ];
        let session = engine.exec_feeding(node, &argv)?;
        let (sender, receiver) = sync_channel(QUEUE_DEPTH);
        let engine = engine.clone();
        let root_label = format!("containerd.io/gc.root={stamp}");
        let worker = thread::Builder::new()
            .name(format!("ingest {node}"))
            .spawn(move || ingest(&engine, session, receiver, &root_label))
            .map_err(|source| EngineError::Io {
                command: format!("a thread to feed {}", argv.join(" ")),
                source,
            })?;
        Ok(Ingest {
            node: node.to_string(),
            sender,
            worker,
        })
    }

    fn outcome(self) -> Result<(), String> {
        drop(self.sender);
        self.worker
            .join()
            .unwrap_or_else(|_| Err("the ingest thread panicked".to_string()))
    }
}

/// Feeds one node until `Commit`; a sender dropped before it aborts the
/// ingest (the exec is killed; should `ctr` still commit what it got, that
/// content is stored under the digest of those bytes, referenced by
/// nothing, and collected).
fn ingest(
    engine: &Engine,
    mut session: ExecSession,
    feed: Receiver<Feed>,
    root_label: &str,
) -> Result<(), String> {
    let node = session.container().to_string();
    for piece in feed {
        match piece {
            Feed::Data(chunk) => {
                if let Err(write_error) = io::Write::write_all(session.stdin(), &chunk) {
                    // What ctr said explains more than the broken pipe.
                    return Err(match session.finish(Duration::from_secs(30)) {
                        Err(error) => error.to_string(),
                        Ok(_) => format!("ctr content ingest stopped reading: {write_error}"),
                    });
                }
            }
            Feed::Commit(digest) => {
                session.finish(COMMIT_TIMEOUT).map_err(|e| e.to_string())?;
                return engine
                    .exec_output(
                        &node,
                        &[
                            "ctr",
                            "--namespace",
                            NAMESPACE,
                            "content",
                            "label",
                            &digest.to_string(),
                            root_label,
                        ],
                    )
                    .map(drop)
                    .map_err(|e| {
                        format!("protecting blob {digest} from garbage collection failed: {e}")
                    });
            }
        }
    }
    Err("the upload was abandoned".to_string())
}
