//! Routing one source stream to several nodes, each getting only the blobs
//! it lacks.
//!
//! The archive reader calls this for every blob as it streams past. Each
//! blob's bytes are read once and shared between the nodes that need them
//! (one allocation per chunk, whatever the node count).

use super::feed::{NodeFeed, Piece};
use super::node::Inventory;
use super::progress::Progress;
use crate::archive::{BlobEnd, BlobName, BlobStart, BlobVisitor, Digest};
use std::collections::BTreeSet;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Entries of a source archive that describe it rather than hold content:
/// they are read, never forwarded (each node gets an index of its own).
pub(super) const ARCHIVE_METADATA: [&str; 4] =
    ["manifest.json", "index.json", "oci-layout", "repositories"];

/// One node's side of the routing.
pub struct Route {
    pub node: String,
    pub feed: NodeFeed,
    pub inventory: Inventory,
    /// Blobs sent in this load.
    pub sent: BTreeSet<Digest>,
    /// Layers (by diff ID) the node has unpacked, whose blobs it needs not
    /// hold ([`Inventory::unpacked_layers`]).
    unpacked: BTreeSet<Digest>,
    pub bytes_sent: u64,
    pub blobs_sent: u64,
    pub blobs_skipped: u64,
    /// Whether the blob being streamed goes to this node.
    receiving: bool,
}

impl Route {
    pub fn new(node: String, feed: NodeFeed, inventory: Inventory) -> Route {
        Route {
            node,
            feed,
            inventory,
            sent: BTreeSet::new(),
            unpacked: BTreeSet::new(),
            bytes_sent: 0,
            blobs_sent: 0,
            blobs_skipped: 0,
            receiving: false,
        }
    }

    /// The route of a node that has these layers unpacked.
    pub fn with_unpacked(mut self, unpacked: BTreeSet<Digest>) -> Route {
        self.unpacked = unpacked;
        self
    }

    /// Whether the node has `digest` or can do without it (an unpacked
    /// layer), from before or from this load.
    pub fn holds(&self, digest: &Digest) -> bool {
        self.inventory.blobs.contains(digest)
            || self.unpacked.contains(digest)
            || self.sent.contains(digest)
    }

    /// Sends a whole blob held in memory (a config or manifest), unless the
    /// node holds it already.
    pub fn send_blob(&mut self, digest: &Digest, bytes: &[u8]) {
        if self.holds(digest) {
            return;
        }
        let name = BlobName::Digest(*digest);
        self.feed.send(Piece::BlobStart {
            name,
            size: bytes.len() as u64,
        });
        self.feed.send(Piece::Data(Arc::from(bytes)));
        if self.feed.send(Piece::BlobEnd) {
            self.bytes_sent += bytes.len() as u64;
            self.blobs_sent += 1;
            self.sent.insert(*digest);
        }
    }
}

/// The visitor the archive reader drives.
pub struct Fanout<'a> {
    pub routes: Vec<Route>,
    /// Set in the high bits of this load's placeholder entry names, so that
    /// no two loads name an entry alike ([`BlobName::Placeholder`]).
    placeholder_base: u64,
    progress: &'a dyn Progress,
    /// When set, the only blobs forwarded (those of the image loaded out of
    /// an archive that holds others).
    only: Option<BTreeSet<Digest>>,
    bytes_read: u64,
    last_report: Instant,
}

impl<'a> Fanout<'a> {
    pub fn new(
        routes: Vec<Route>,
        progress: &'a dyn Progress,
        only: Option<BTreeSet<Digest>>,
    ) -> Fanout<'a> {
        Fanout {
            routes,
            placeholder_base: placeholder_base(),
            progress,
            only,
            bytes_read: 0,
            last_report: Instant::now(),
        }
    }

    /// Bytes of the source read so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    fn report(&mut self, force: bool) {
        if force || self.last_report.elapsed() >= Duration::from_millis(200) {
            self.last_report = Instant::now();
            let sent: Vec<(&str, u64)> = self
                .routes
                .iter()
                .map(|r| (r.node.as_str(), r.bytes_sent))
                .collect();
            self.progress.streaming(self.bytes_read, &sent);
        }
    }

    /// Reading goes on only while some node still takes input.
    fn check_any_taking(&self) -> io::Result<()> {
        if self.routes.iter().any(|r| r.feed.is_taking()) {
            Ok(())
        } else {
            Err(io::Error::other("every node stopped taking the image"))
        }
    }
}

/// Bits above the entry index (an archive has far fewer than 2^24
/// entries) that differ from one load to the next: the clock's
/// nanoseconds and this process, with a counter for loads in the same
/// nanosecond.
fn placeholder_base() -> u64 {
    static LOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let count = LOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mixed = nanos ^ (u64::from(std::process::id()) << 40) ^ count.rotate_right(8);
    mixed << 24
}

impl BlobVisitor for Fanout<'_> {
    fn blob_start(&mut self, blob: &BlobStart<'_>) -> io::Result<()> {
        let metadata = ARCHIVE_METADATA.contains(&blob.path);
        let unwanted = match (&self.only, &blob.digest) {
            (Some(only), Some(digest)) => !only.contains(digest),
            _ => false,
        };
        for route in &mut self.routes {
            route.receiving = !metadata
                && !unwanted
                && match &blob.digest {
                    // Known before its bytes: skip what the node holds.
                    Some(digest) => !route.holds(digest),
                    // Unknown until read: the node may need it.
                    None => true,
                };
            if !metadata && !unwanted && !route.receiving {
                route.blobs_skipped += 1;
            }
            if route.receiving {
                let name = match &blob.digest {
                    Some(digest) => BlobName::Digest(*digest),
                    None => BlobName::Placeholder(self.placeholder_base | blob.index as u64),
                };
                route.receiving = route.feed.send(Piece::BlobStart {
                    name,
                    size: blob.size,
                });
            }
        }
        self.check_any_taking()
    }

    fn blob_data(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.bytes_read += chunk.len() as u64;
        if self.routes.iter().any(|r| r.receiving) {
            let shared: Arc<[u8]> = Arc::from(chunk);
            for route in self.routes.iter_mut().filter(|r| r.receiving) {
                route.receiving = route.feed.send(Piece::Data(Arc::clone(&shared)));
                if route.receiving {
                    route.bytes_sent += chunk.len() as u64;
                }
            }
        }
        self.report(false);
        self.check_any_taking()
    }

    fn blob_end(&mut self, blob: &BlobEnd) -> io::Result<()> {
        for route in self.routes.iter_mut().filter(|r| r.receiving) {
            if route.feed.send(Piece::BlobEnd) {
                route.blobs_sent += 1;
                route.sent.insert(blob.digest);
            }
            route.receiving = false;
        }
        self.report(true);
        self.check_any_taking()
    }
}
