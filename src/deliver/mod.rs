//! `load`: images into every node of a kind cluster, streamed, only the
//! blobs each node lacks, verified.
//!
//! For each image:
//! 1. ask every node what it holds ([`node::open`], an exec that stays
//!    open for the import); a node whose name already points at this image
//!    (same config digest, unpacked: what a container runs from) is done;
//! 2. stream the image out of the engine (`save`) or an archive file, once
//!    for all nodes, through the archive reader, which checks every digest;
//! 3. feed each node an OCI image-layout tar with only the blobs it lacks
//!    (a layer already unpacked there needs none, see [`node`]), then a
//!    manifest and an index naming the image, into `ctr images import`
//!    ([`feed`], [`fanout`]);
//! 4. check on every node that the name points at the manifest sent,
//!    unpacked (printed by the same exec, after the import).
//!
//! Nothing half-done: the index that tags the image goes last, after the
//! whole source was read and verified, so a corrupt source, a dead engine or
//! a node that fails mid-stream leaves no tag on the nodes it did not finish.
//!
//! With an image cache ([`cache`]), the save path also keeps every blob it
//! streamed on the host, and a node that lacks an image the cache holds
//! whole gets it from there: the engine's `save` is not run.
//!
//! That is the save path. An image in the engine can also come through a
//! push to loadmaster's registry endpoint ([`push`]), which reads only the
//! layers the nodes lack; [`load_image`] chooses ([`path`] has the rule).

pub mod cache;
#[cfg(test)]
mod docker29_tests;
mod fanout;
mod feed;
mod ingest;
pub mod node;
pub mod path;
pub mod progress;
pub mod push;

pub use path::{DeliveryPath, ImageLoad, PathChoice, load_image};

use crate::archive::{self, ArchiveError, BlobVisitor, Digest, ImageArchive, Limits};
use crate::engine::{Engine, EngineError, ImageDetails};
pub use crate::engine::{NodeFailure, NodeState};
use fanout::{Fanout, Route};
use feed::{FeedOutcome, NodeFeed, Piece};
use progress::Progress;
use serde::Serialize;
use std::collections::BTreeSet;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Instant;

/// Where an image comes from.
pub enum Source<'a> {
    /// `save` of an image in the engine.
    Engine { image: &'a str },
    /// An archive (docker-archive or OCI layout tar) made elsewhere; `image`
    /// picks one when it holds several.
    Archive {
        reader: Box<dyn Read + Send + 'a>,
        label: String,
        image: Option<&'a str>,
        /// The image picked, when the archive also holds others and a
        /// first reading told its blobs: no other blob is sent.
        known: Option<KnownImage>,
        /// The platform to load (`linux/arm64`) of an image saved for
        /// several; None: this machine's.
        platform: Option<&'a str>,
    },
}

/// What a first reading of an archive told of one of its images.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KnownImage {
    /// Its config, manifest and layer digests as stored in the archive.
    pub blobs: BTreeSet<Digest>,
    /// Its diff IDs, bottom first: they identify a legacy docker-archive's
    /// layers before their bytes stream, as the engine's do for `save`.
    pub diff_ids: Vec<Digest>,
}

impl KnownImage {
    pub fn of(image: &archive::ArchivedImage) -> KnownImage {
        let mut blobs: BTreeSet<Digest> = image.layers.iter().map(|l| l.digest).collect();
        blobs.insert(image.config.digest);
        blobs.extend(image.manifest.as_ref().map(|m| m.digest));
        KnownImage {
            blobs,
            diff_ids: image.layers.iter().map(|l| l.diff_id).collect(),
        }
    }
}

impl Source<'_> {
    /// The image or archive, as the user named it.
    pub fn label(&self) -> String {
        match self {
            Source::Engine { image } => image.to_string(),
            Source::Archive { label, .. } => label.clone(),
        }
    }
}

/// How one node's load ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeResult {
    /// The image was imported and verified.
    Loaded,
    /// The node had the image already; nothing was sent.
    AlreadyPresent,
    Failed,
}

impl std::fmt::Display for NodeResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeResult::Loaded => "loaded",
            NodeResult::AlreadyPresent => "already present",
            NodeResult::Failed => "failed",
        })
    }
}

/// What happened on one node (the `--output json` record).
#[derive(Clone, Debug, Serialize)]
pub struct NodeReport {
    pub node: String,
    pub image: String,
    /// The name the image has on the node.
    pub reference: String,
    /// How the image left the engine.
    pub path: DeliveryPath,
    pub result: NodeResult,
    pub bytes_sent: u64,
    pub blobs_sent: u64,
    pub blobs_skipped: u64,
    pub duration_ms: u64,
    pub error: Option<String>,
    /// What the failure is known to be, as facts (absent when it is not
    /// known beyond `error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<NodeFailure>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The engine's `save` stream was not a valid image archive.
    #[error("{label}: {source}")]
    SaveStream {
        label: String,
        #[source]
        source: Box<ArchiveError>,
    },
    /// An archive given to load is not a valid image archive: the input's fault.
    #[error("{label}: {source}")]
    BadArchive {
        label: String,
        #[source]
        source: Box<ArchiveError>,
    },
    #[error("{0}")]
    Mismatch(String),
    /// The push path failed before any node was given the image.
    #[error("loading through a push failed: {0}; `--path save` loads without one")]
    Push(String),
    /// A blob the push path was to feed the nodes from the image cache
    /// could not be read or was corrupt (then removed): nothing was tagged
    /// on any node, and the save path does without the cache's blob.
    #[error("the image cache's blob {digest}: {source}")]
    CacheBlob {
        digest: Digest,
        #[source]
        source: cache::CacheBlobError,
    },
    /// The engine's own push to loadmaster's endpoint failed: nothing was
    /// given to any node, and the save path does without a push.
    #[error("the engine's push to {destination} failed: {source}")]
    EnginePush {
        destination: String,
        #[source]
        source: Box<EngineError>,
    },
}

impl DeliverError {
    /// The source's failure as facts: the engine command that failed (a
    /// `save` that exited, an engine's push that was refused), when one did.
    pub fn facts(&self) -> Option<NodeFailure> {
        let command = match self {
            DeliverError::Engine(error) => error.failed_command(),
            DeliverError::EnginePush { source, .. } => source.failed_command(),
            _ => None,
        }?;
        Some(NodeFailure {
            command: Some(command),
            node_state: None,
        })
    }

    /// The archive error of an archive (or `save` stream) that could not
    /// be read.
    pub fn archive_error(&self) -> Option<&ArchiveError> {
        match self {
            DeliverError::SaveStream { source, .. } | DeliverError::BadArchive { source, .. } => {
                Some(source)
            }
            _ => None,
        }
    }
}

/// How a load runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// How many nodes one pass over the source feeds at once. More nodes are
    /// fed in further passes (one `save` each), so that the memory and the
    /// engine streams in use stay bounded whatever the cluster's size. An
    /// archive can be read only once: all its nodes are fed in one pass.
    pub max_parallel_nodes: usize,
    /// Where images the save path streamed are kept for fresh nodes.
    pub image_cache: Option<cache::ImageCache>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_parallel_nodes: 4,
            image_cache: None,
        }
    }
}

/// What one image's load is about, shared by its passes.
struct Job<'a> {
    engine: &'a Engine,
    /// The image as the user named it.
    label: String,
    /// The name it gets on the nodes.
    reference: archive::ImageReference,
    /// What the engine says the image is (None for an archive).
    expected: Option<ImageDetails>,
    /// The platform asked for (archives only).
    platform: Option<&'a str>,
    started: Instant,
    /// Bytes read from the engine by every pass so far.
    from_engine: AtomicU64,
    /// Where what the engine streams is kept (the save path's).
    cache: Option<&'a cache::ImageCache>,
}

/// Loads one image into `nodes`, reporting each node's outcome. An `Err` is
/// a failure of the source (nothing was tagged on the nodes it was feeding);
/// a node's own failure is in its report.
pub fn load(
    engine: &Engine,
    nodes: &[String],
    source: Source<'_>,
    options: &Options,
    progress: &dyn Progress,
) -> Result<Vec<NodeReport>, DeliverError> {
    load_counted(engine, nodes, source, options, progress).map(|done| done.reports)
}

/// [`load`], also counting what crossed the connection to the engine.
pub fn load_counted(
    engine: &Engine,
    nodes: &[String],
    source: Source<'_>,
    options: &Options,
    progress: &dyn Progress,
) -> Result<Delivered, DeliverError> {
    match source {
        Source::Engine { image } => {
            let (expected, visits) = inspect_and_open(engine, image, nodes)?;
            let source = Source::Engine { image };
            load_with(
                engine,
                nodes,
                source,
                Some(expected),
                Some(visits),
                options,
                progress,
            )
        }
        Source::Archive { .. } => load_with(engine, nodes, source, None, None, options, progress),
    }
}

/// What one image's load did on the save path.
pub struct Delivered {
    pub reports: Vec<NodeReport>,
    /// Bytes read from the engine's `save` (every pass), 0 for an archive.
    pub from_engine: u64,
    /// What the image cache gave.
    pub cache: CacheUse,
}

/// What the image cache did for one image's load.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CacheUse {
    /// No cache, or no node needed it, or an archive source.
    #[default]
    Unused,
    /// The cache held the image whole: the nodes got it from there.
    Hit,
    /// The cache lacked (some of) it: it was streamed from the engine and
    /// kept.
    Miss,
    /// The cache's entry failed its check: its bad blobs were removed
    /// and the image streamed from the engine (and kept again).
    Rejected { error: String, removed: usize },
}

/// What crossed the connection between loadmaster and the engine for one
/// image (for a VM or remote engine, its link, in each direction): the
/// image read from the engine (its `save` stream, or the blobs it pushed to
/// loadmaster's endpoint), and what was sent to the nodes, whose execs the
/// engine relays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ConnectionBytes {
    pub from_engine: u64,
    pub to_nodes: u64,
}

impl ConnectionBytes {
    /// `from_engine` as counted, and the nodes' reports' bytes sent.
    pub fn of(from_engine: u64, reports: &[NodeReport]) -> ConnectionBytes {
        ConnectionBytes {
            from_engine,
            to_nodes: reports.iter().map(|r| r.bytes_sent).sum(),
        }
    }
}

/// A node's inventory and its session waiting for the import, or why
/// the node could not be asked.
type Visit = Result<(node::Inventory, node::Session), EngineError>;

/// The engine's account of `image` and the nodes' sessions for its
/// normalized name, opened at the same time: each costs a CLI round trip
/// that a reload of an unchanged or slightly changed image notices.
fn inspect_and_open(
    engine: &Engine,
    image: &str,
    nodes: &[String],
) -> Result<(ImageDetails, Vec<Visit>), DeliverError> {
    let reference =
        archive::normalize_reference(image).map_err(|e| DeliverError::Mismatch(e.to_string()))?;
    let (expected, visits) = thread::scope(|scope| {
        let inspect = scope.spawn(|| engine.image_inspect(image));
        let visits = open_sessions(engine, nodes, &reference.to_string());
        (inspect.join().expect("inspect thread panicked"), visits)
    });
    Ok((expected?, visits))
}

/// [`load`] given what was read already (by the path choice): the engine's
/// account of the image, and the nodes' sessions if they were opened.
fn load_with(
    engine: &Engine,
    nodes: &[String],
    source: Source<'_>,
    expected: Option<ImageDetails>,
    visits: Option<Vec<Visit>>,
    options: &Options,
    progress: &dyn Progress,
) -> Result<Delivered, DeliverError> {
    if let (Source::Engine { image }, Some(cache), Some(details)) =
        (&source, &options.image_cache, &expected)
        && let Ok(id) = details.id.parse::<Digest>()
        && let Some(cached) = cache.lookup(&id)
    {
        return load_cached(
            engine,
            nodes,
            image,
            cache,
            (id, cached),
            expected,
            visits,
            options,
            progress,
        );
    }
    let label = match &source {
        Source::Engine { image } => image.to_string(),
        Source::Archive { label, image, .. } => image.map_or(label.clone(), str::to_string),
    };
    let reference =
        archive::normalize_reference(&label).map_err(|e| DeliverError::Mismatch(e.to_string()))?;
    let platform = match &source {
        Source::Archive { platform, .. } => *platform,
        Source::Engine { .. } => None,
    };
    let job = Job {
        engine,
        label,
        reference,
        expected,
        platform,
        started: Instant::now(),
        from_engine: AtomicU64::new(0),
        cache: options
            .image_cache
            .as_ref()
            .filter(|_| matches!(source, Source::Engine { .. })),
    };
    progress.begin(&job.label, nodes, job.expected.as_ref().map(|e| e.size));

    let visits = visits.unwrap_or_else(|| open_sessions(engine, nodes, &job.reference.to_string()));
    let visits = nodes.iter().cloned().zip(visits);
    let (mut reports, waiting) = sort_visits(
        visits,
        job.expected.as_ref(),
        progress,
        |node, result| job.report(node, result, None),
        |node, error| job.failed(node, error),
    );
    let mut group_reports = Vec::new();
    match source {
        Source::Engine { image } => {
            let mut waiting = waiting.into_iter().peekable();
            while waiting.peek().is_some() {
                let group = waiting
                    .by_ref()
                    .take(options.max_parallel_nodes.max(1))
                    .collect();
                let pass = job.feed(group, Source::Engine { image }, progress)?;
                group_reports.extend(pass);
            }
        }
        archive_source @ Source::Archive { .. } if !waiting.is_empty() => {
            group_reports.extend(job.feed(waiting, archive_source, progress)?);
        }
        Source::Archive { .. } => {}
    }
    group_reports.iter().for_each(|r| progress.node_done(r));
    reports.extend(group_reports);
    let cache = match job.cache {
        Some(_) if job.from_engine.load(Ordering::Relaxed) > 0 => CacheUse::Miss,
        _ => CacheUse::Unused,
    };
    Ok(Delivered {
        reports,
        from_engine: job.from_engine.into_inner(),
        cache,
    })
}

/// [`load_with`] of an image the cache holds whole: read from the cache's
/// files as an archive, checked like one. When the entry fails that check
/// (corrupt or missing files), its bad blobs are removed and the image is
/// streamed from the engine instead, which writes the cache again; a
/// failure that is not the entry's is the load's ([`reject_entry`]).
#[allow(clippy::too_many_arguments)]
fn load_cached(
    engine: &Engine,
    nodes: &[String],
    image: &str,
    cache: &cache::ImageCache,
    (id, cached): (Digest, cache::CachedImage),
    expected: Option<ImageDetails>,
    visits: Option<Vec<Visit>>,
    options: &Options,
    progress: &dyn Progress,
) -> Result<Delivered, DeliverError> {
    let reference =
        archive::normalize_reference(image).map_err(|e| DeliverError::Mismatch(e.to_string()))?;
    let known = KnownImage {
        blobs: cached.digests().collect(),
        diff_ids: expected
            .iter()
            .flat_map(|image| image.layers.iter().filter_map(|l| l.parse().ok()))
            .collect(),
    };
    let source = Source::Archive {
        reader: Box::new(cache.archive(&cached, &reference)),
        label: format!("the image cache {}", cache.dir().display()),
        image: Some(image),
        known: Some(known),
        platform: None,
    };
    match load_with(
        engine,
        nodes,
        source,
        expected.clone(),
        visits,
        options,
        progress,
    ) {
        Ok(mut done) => {
            // Nodes that had the image got nothing from the cache.
            let mut fed = false;
            for report in &mut done.reports {
                if report.result != NodeResult::AlreadyPresent {
                    report.path = DeliveryPath::Cache;
                    fed = true;
                }
            }
            if fed {
                done.cache = CacheUse::Hit;
            }
            Ok(done)
        }
        Err(error) => {
            let rejected = reject_entry(cache, &id, &cached, error)?;
            let source = Source::Engine { image };
            let mut done = load_with(engine, nodes, source, expected, None, options, progress)?;
            done.cache = rejected;
            Ok(done)
        }
    }
}

/// After a load from the cache failed with `error`: when reading or
/// checking the entry failed (a blob whose bytes do not match its digest,
/// a file cut short or gone, an image that is not the one the engine
/// has), the entry is rejected: its bad blobs and its record are removed,
/// and the rejection is returned. Any other failure is not the entry's (the
/// engine's, a node's, or every node's import ending, which stops the read
/// of the entry): it is returned as it is and the entry stays, since
/// reading the engine instead would not help and the next load can use the
/// entry.
fn reject_entry(
    cache: &cache::ImageCache,
    id: &Digest,
    cached: &cache::CachedImage,
    error: DeliverError,
) -> Result<CacheUse, DeliverError> {
    let entry_failed = match &error {
        DeliverError::BadArchive { source, .. } => {
            !matches!(**source, ArchiveError::Visitor { .. })
        }
        DeliverError::Mismatch(_) => true,
        DeliverError::Engine(_)
        | DeliverError::SaveStream { .. }
        | DeliverError::Push(_)
        | DeliverError::CacheBlob { .. }
        | DeliverError::EnginePush { .. } => false,
    };
    if !entry_failed {
        return Err(error);
    }
    let removed = cache.remove_corrupt(id, cached).len();
    Ok(CacheUse::Rejected {
        error: error.to_string(),
        removed,
    })
}

impl Job<'_> {
    fn report(&self, node: &str, result: NodeResult, error: Option<String>) -> NodeReport {
        NodeReport {
            node: node.to_string(),
            image: self.label.clone(),
            reference: self.reference.to_string(),
            path: DeliveryPath::Save,
            result,
            bytes_sent: 0,
            blobs_sent: 0,
            blobs_skipped: 0,
            duration_ms: self.started.elapsed().as_millis() as u64,
            error,
            failure: None,
        }
    }

    /// A node that failed before its import streamed (its inventory or
    /// the import's start timed out or failed): the error and its facts.
    fn failed(&self, node: &str, error: &EngineError) -> NodeReport {
        let (message, facts) = node_failure(self.engine, node, error);
        NodeReport {
            failure: Some(facts),
            ..self.report(node, NodeResult::Failed, Some(message))
        }
    }

    fn finish(
        &self,
        route: Route,
        sent: Result<(), String>,
        manifest: Option<&Digest>,
    ) -> NodeReport {
        let reference = self.reference.to_string();
        finish_node(
            self.engine,
            route,
            sent,
            &self.label,
            &reference,
            manifest,
            self.started,
        )
    }

    /// Records the image the engine streamed in the cache (whose blobs the
    /// tee wrote), then trims the cache.
    fn keep(&self, image: &archive::ArchivedImage) {
        let (Some(cache), Some(expected)) = (self.cache, &self.expected) else {
            return;
        };
        let Ok(id) = expected.id.parse::<Digest>() else {
            return;
        };
        cache.keep(&self.label, |cache| cache.record(&id, image));
    }

    /// One pass over the source, feeding `group`'s nodes at once.
    fn feed(
        &self,
        group: Vec<Waiting>,
        source: Source<'_>,
        progress: &dyn Progress,
    ) -> Result<Vec<NodeReport>, DeliverError> {
        let mut reports = Vec::new();
        let mut routes = Vec::new();
        let diff_ids: Vec<Digest> = match &source {
            Source::Archive { known, .. } => known
                .as_ref()
                .map(|k| k.diff_ids.clone())
                .unwrap_or_default(),
            Source::Engine { .. } => self
                .expected
                .iter()
                .flat_map(|image| image.layers.iter().filter_map(|l| l.parse().ok()))
                .collect(),
        };
        for (node, inventory, session) in group {
            match NodeFeed::start(session, &inventory.snapshotter) {
                Ok(feed) => {
                    let unpacked = inventory.unpacked_layers(&diff_ids);
                    routes.push(Route::new(node, feed, inventory).with_unpacked(unpacked))
                }
                Err(error) => reports.push(self.failed(&node, &error)),
            }
        }
        if routes.is_empty() {
            return Ok(reports);
        }

        let only = match &source {
            Source::Archive { known, .. } => known.as_ref().map(|k| k.blobs.clone()),
            Source::Engine { .. } => None,
        };
        let mut fanout = Fanout::new(routes, progress, only);
        let read = match self.cache {
            Some(cache) => {
                let mut tee = cache.tee(&mut fanout);
                stream_source(self.engine, source, self.expected.as_ref(), &mut tee)
            }
            None => stream_source(self.engine, source, self.expected.as_ref(), &mut fanout),
        };
        let routes = fanout.routes;
        let parsed = match read {
            Ok(streamed) => {
                self.from_engine
                    .fetch_add(streamed.from_engine, Ordering::Relaxed);
                streamed.archive
            }
            // Every node's import died first: the read stopped because
            // nothing took the stream any more. That is each node's failure,
            // not the source's, and each node's own error says why.
            Err(_) if routes.iter().all(|route| !route.feed.is_taking()) => {
                let stopped = routes
                    .into_iter()
                    .map(|route| self.finish(route, Ok(()), None));
                reports.extend(stopped);
                return Ok(reports);
            }
            Err(error) => {
                // Dropping the feeds without `Finish` stops every import
                // before it sees an index: nothing is tagged.
                routes
                    .into_iter()
                    .for_each(|route| drop(route.feed.outcome()));
                return Err(error);
            }
        };
        let image = pick_image(&parsed, &self.label, self.platform, self.expected.as_ref())?;
        self.keep(image);

        let manifest = image.manifest_blob();
        let index = archive::index_json(&manifest, &self.reference);
        let mut finishing = Vec::new();
        for mut route in routes {
            if !route.feed.is_taking() {
                // Its import ended early; its outcome says why.
                finishing.push((route, Ok(())));
                continue;
            }
            let missing = image
                .layers
                .iter()
                .find(|layer| !route.holds(&layer.digest));
            if let Some(layer) = missing {
                let error = format!(
                    "the node lost layer {} while the load ran (its containerd removed it); load again",
                    layer.digest
                );
                // No `Finish`: the import is called off when the feed ends.
                finishing.push((route, Err(error)));
                continue;
            }
            route.send_blob(&image.config.digest, &image.config.bytes);
            route.send_blob(&manifest.digest, &manifest.bytes);
            route.feed.send(Piece::File {
                path: "index.json".to_string(),
                bytes: index.clone(),
            });
            route.feed.send(Piece::Finish);
            finishing.push((route, Ok(())));
        }

        // Each node's import ends, then is verified, in parallel.
        let finished: Vec<NodeReport> = thread::scope(|scope| {
            let waits: Vec<_> = finishing
                .into_iter()
                .map(|(route, sent)| {
                    let manifest = &manifest.digest;
                    scope.spawn(move || self.finish(route, sent, Some(manifest)))
                })
                .collect();
            waits
                .into_iter()
                .map(|w| w.join().expect("finish thread panicked"))
                .collect()
        });
        reports.extend(finished);
        Ok(reports)
    }
}

/// Waits for a node's import and verifies that it tagged `manifest` (None
/// when the whole image was never sent). The report says the save path;
/// the push path corrects that.
fn finish_node(
    engine: &Engine,
    route: Route,
    sent: Result<(), String>,
    label: &str,
    reference: &str,
    manifest: Option<&Digest>,
    started: Instant,
) -> NodeReport {
    let outcome = route.feed.outcome();
    let mut failure = None;
    // The stream to the node broke because its import failed (killed, or
    // ended by loadmaster's deadline): the message is the stream's, and the
    // import's failure is still the fact triage reads.
    if sent.is_err()
        && let FeedOutcome::Failed(error) = &outcome
    {
        failure = Some(node_failure(engine, &route.node, error).1);
    }
    let verdict = sent.and_then(|()| match (outcome, manifest) {
        (FeedOutcome::Imported(output), Some(manifest)) => verify(&output, reference, manifest),
        (FeedOutcome::Imported(_), None) => {
            Err("the import ended before the whole image was sent".to_string())
        }
        (FeedOutcome::Failed(error), _) => {
            let (message, facts) = node_failure(engine, &route.node, &error);
            failure = Some(facts);
            Err(message)
        }
        (FeedOutcome::Aborted, _) => Err("the import was called off".to_string()),
    });
    NodeReport {
        node: route.node.clone(),
        image: label.to_string(),
        reference: reference.to_string(),
        path: DeliveryPath::Save,
        result: if verdict.is_ok() {
            NodeResult::Loaded
        } else {
            NodeResult::Failed
        },
        bytes_sent: route.bytes_sent,
        blobs_sent: route.blobs_sent,
        blobs_skipped: route.blobs_skipped,
        duration_ms: started.elapsed().as_millis() as u64,
        error: verdict.err(),
        failure,
    }
}

/// Every node's session, opened in parallel.
fn open_sessions(engine: &Engine, nodes: &[String], reference: &str) -> Vec<Visit> {
    thread::scope(|scope| {
        let opens: Vec<_> = nodes
            .iter()
            .map(|node| scope.spawn(move || node::open(engine, node, reference)))
            .collect();
        opens
            .into_iter()
            .map(|r| r.join().expect("inventory thread panicked"))
            .collect()
    })
}

/// A node that needs the image: its inventory and open session.
type Waiting = (String, node::Inventory, node::Session);

/// Sorts the visited nodes into those that need the image and the rest:
/// nodes that could not be asked (failed) and nodes whose name already
/// points at `expected` (their sessions are ended, in parallel). The
/// rest get their reports, made by `report`, at once.
fn sort_visits(
    visits: impl IntoIterator<Item = (String, Visit)>,
    expected: Option<&ImageDetails>,
    progress: &dyn Progress,
    report: impl Fn(&str, NodeResult) -> NodeReport + Sync,
    failed: impl Fn(&str, &EngineError) -> NodeReport + Sync,
) -> (Vec<NodeReport>, Vec<Waiting>) {
    let mut reports = Vec::new();
    let mut present = Vec::new();
    let mut waiting = Vec::new();
    for (node, visit) in visits {
        match visit {
            Err(error) => reports.push(failed(&node, &error)),
            Ok((inventory, session)) => {
                let has_it = expected.is_some_and(|image| already_present(&inventory, image));
                progress.inventory(&node, inventory.blobs.len(), has_it);
                if has_it {
                    present.push((node, session));
                } else {
                    waiting.push((node, inventory, session));
                }
            }
        }
    }
    let closed: Vec<NodeReport> = thread::scope(|scope| {
        let closes: Vec<_> = present
            .into_iter()
            .map(|(node, session)| {
                let (report, failed) = (&report, &failed);
                scope.spawn(move || match session.close() {
                    Ok(()) => report(&node, NodeResult::AlreadyPresent),
                    Err(error) => failed(&node, &error),
                })
            })
            .collect();
        closes
            .into_iter()
            .map(|c| c.join().expect("close thread panicked"))
            .collect()
    });
    reports.extend(closed);
    reports.iter().for_each(|r| progress.node_done(r));
    (reports, waiting)
}

/// Whether the node's name already points at this image, unpacked.
fn already_present(inventory: &node::Inventory, image: &ImageDetails) -> bool {
    let Some(current) = &inventory.current else {
        return false;
    };
    let id = &image.id.parse::<Digest>().ok();
    // The engine's image ID is the config digest (the manifest digest with
    // docker's containerd image store).
    current.usable
        && (current.config.as_ref() == id.as_ref() || Some(&current.manifest) == id.as_ref())
}

/// A [`BlobVisitor`] that counts the source bytes it was given, so that a
/// save that failed before streaming anything can be told apart.
pub(crate) trait SourceVisitor: BlobVisitor {
    fn bytes_read(&self) -> u64;
}

impl SourceVisitor for Fanout<'_> {
    fn bytes_read(&self) -> u64 {
        Fanout::bytes_read(self)
    }
}

/// What reading a source gave: the archive, and the bytes read from the
/// engine for it (0 for an archive file).
pub(crate) struct Streamed {
    pub archive: ImageArchive,
    pub from_engine: u64,
}

/// Reads the whole source through `visitor`, checking the engine's exit.
pub(crate) fn stream_source(
    engine: &Engine,
    source: Source<'_>,
    expected: Option<&ImageDetails>,
    visitor: &mut dyn SourceVisitor,
) -> Result<Streamed, DeliverError> {
    let limits = Limits::default();
    // With the engine's diff IDs, even docker's legacy archives name each
    // layer before it streams, so that nodes skip the ones they hold.
    let diff_ids: Vec<Digest> = expected
        .map(|image| image.layers.iter().filter_map(|l| l.parse().ok()).collect())
        .unwrap_or_default();
    match source {
        Source::Engine { image } => {
            let mut attempts = 0;
            let mut from_engine = 0;
            loop {
                attempts += 1;
                let mut save = engine.save(image)?;
                let read = archive::read_archive_of(&mut save, visitor, &limits, &diff_ids);
                from_engine += save.bytes_read();
                // The engine's own account of a failed save explains more
                // than the truncated stream it left.
                let saved = save.finish();
                // podman 4 ("image not known") and docker 20.10 ("reference
                // does not exist") can fail a save while another image is
                // being removed (races in their stores, seen in the tests):
                // when nothing streamed yet and the image is still there,
                // it is worth one more try.
                let raced = matches!(saved, Err(EngineError::ImageNotFound { .. }))
                    && visitor.bytes_read() == 0
                    && attempts == 1
                    && engine.image_inspect(image).is_ok();
                if raced {
                    continue;
                }
                let parsed = read.map_err(|source| DeliverError::SaveStream {
                    label: format!("{} save {image}", engine.kind()),
                    source: Box::new(source),
                });
                saved?;
                return parsed.map(|archive| Streamed {
                    archive,
                    from_engine,
                });
            }
        }
        Source::Archive {
            reader,
            label,
            known,
            ..
        } => {
            let diff_ids = known.map(|k| k.diff_ids).unwrap_or_default();
            archive::read_archive_of(reader, visitor, &limits, &diff_ids)
        }
        .map(|archive| Streamed {
            archive,
            from_engine: 0,
        })
        .map_err(|source| DeliverError::BadArchive {
            label,
            source: Box::new(source),
        }),
    }
}

/// The image to load out of what the source held.
pub(crate) fn pick_image<'p>(
    parsed: &'p ImageArchive,
    label: &str,
    platform: Option<&str>,
    expected: Option<&ImageDetails>,
) -> Result<&'p archive::ArchivedImage, DeliverError> {
    let image = parsed
        .image_for_platform(label, platform)
        .map_err(|e| DeliverError::Mismatch(e.to_string()))?;
    if let Some(expected) = expected {
        let id = &expected.id.parse::<Digest>().ok();
        let same = id.as_ref() == Some(&image.config.digest)
            || image.manifest.as_ref().map(|m| &m.digest) == id.as_ref();
        if !same {
            return Err(DeliverError::Mismatch(format!(
                "the engine saved config {} for {label}, but inspect reported {}: the image changed during the load; run it again",
                image.config.digest, expected.id
            )));
        }
    }
    Ok(image)
}

/// Checks, from what the node's import printed, that `reference` points at
/// `manifest` on the node, unpacked.
fn verify(import_output: &str, reference: &str, manifest: &Digest) -> Result<(), String> {
    match node::check_after_import(import_output, reference) {
        Some(current) if &current.manifest == manifest && current.usable => Ok(()),
        Some(current) if &current.manifest == manifest => Err(format!(
            "after the import, {reference} is not unpacked on the node (`ctr -n k8s.io images check name=={reference}`)"
        )),
        Some(current) => Err(format!(
            "after the import, {reference} points at {} instead of {manifest}",
            current.manifest
        )),
        None => Err(format!(
            "after the import, the node has no image {reference}"
        )),
    }
}

/// What ctr prints when its connection to containerd breaks during an
/// import: the Transfer service's client logs `progress stream failed to
/// recv` (containerd's core/transfer/proxy: the stream of progress events
/// from the daemon ended without EOF) and fails with `error reading from
/// server: EOF`, or `error reading from server: read unix …: connection
/// reset by peer` alone when the daemon died before the stream ended; the
/// client-side import (1.6, `--local`) fails writing a blob with `failed
/// to send write: EOF` or `transport is closing`. None of them is the
/// cause: they say the daemon went away.
const CONNECTION_LOST: [&str; 4] = [
    "progress stream failed to recv",
    "error reading from server: ",
    "failed to send write",
    "transport is closing",
];

/// Why ctr's import lost containerd, for people: what the words mean and
/// where the cause is.
fn connection_lost_note(engine: &Engine, node: &str) -> String {
    format!(
        "  ctr lost its connection to the node's containerd during the import (`progress stream failed to recv` / `error reading from server: EOF` or `connection reset by peer` is ctr saying so, not the cause): containerd stopped mid-import: killed (an OOM kill: see the node's memory limit and the kernel log, `dmesg | grep -i oom`), crashed or restarted; `{} logs {node}` shows how it ended",
        engine.kind()
    )
}

/// A failed import, with the node's state when that explains it (a node
/// that exited or was removed mid-stream, or whose containerd went away):
/// the message for people, and the same as facts.
fn node_failure(engine: &Engine, node: &str, error: &EngineError) -> (String, NodeFailure) {
    let lost = matches!(error, EngineError::CommandFailed { stderr, .. }
        if CONNECTION_LOST.iter().any(|words| stderr.contains(words)));
    let mut facts = NodeFailure {
        command: error.failed_command(),
        node_state: None,
    };
    let message = match engine.container_inspect(node) {
        Ok(details) if !details.state.running => {
            let message = format!(
                "{error}\n  the node container is {} (exit code {}{}): it stopped during the import",
                details.state.status,
                details.state.exit_code,
                if details.state.oom_killed {
                    ", OOM-killed"
                } else {
                    ""
                }
            );
            facts.node_state = Some(NodeState::Stopped {
                status: details.state.status,
                exit_code: details.state.exit_code,
                oom_killed: details.state.oom_killed,
            });
            message
        }
        Err(EngineError::ContainerNotFound { .. }) => {
            facts.node_state = Some(NodeState::Removed);
            format!(
                "{error}\n  the node container no longer exists: it was removed during the import"
            )
        }
        _ if lost => format!("{error}\n{}", connection_lost_note(engine, node)),
        _ => error.to_string(),
    };
    (message, facts)
}
