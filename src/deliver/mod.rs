//! `load`: images into every node of a kind cluster, streamed, only the
//! blobs each node lacks, verified.
//!
//! For each image:
//! 1. ask every node what it holds ([`node::inventory`]); a node whose name
//!    already points at this image (same config digest, all content there)
//!    is done;
//! 2. stream the image out of the engine (`save`) or an archive file, once
//!    for all nodes, through the archive reader, which checks every digest;
//! 3. feed each node an OCI image-layout tar with only the blobs it lacks,
//!    then a manifest and an index naming the image, into
//!    `ctr images import` ([`feed`], [`fanout`]);
//! 4. check on every node that the name points at the manifest sent and that
//!    the content is complete.
//!
//! Nothing half-done: the index that tags the image goes last, after the
//! whole source was read and verified, so a corrupt source, a dead engine or
//! a node that fails mid-stream leaves no tag on the nodes it did not finish.
//!
//! That is the save path. An image in the engine can also come through a
//! push to loadmaster's registry endpoint ([`push`]), which reads only the
//! layers the nodes lack; [`load_image`] chooses ([`path`] has the rule).

mod fanout;
mod feed;
mod ingest;
pub mod node;
pub mod path;
pub mod progress;
pub mod push;

pub use path::{DeliveryPath, ImageLoad, PathChoice, load_image};

use crate::archive::{self, ArchiveError, Digest, ImageArchive, Limits};
use crate::engine::{Engine, EngineError, ImageDetails};
use fanout::{Fanout, Route};
use feed::{FeedOutcome, NodeFeed, Piece};
use progress::Progress;
use serde::Serialize;
use std::io::Read;
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
    },
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
}

/// Loads one image into `nodes`, reporting each node's outcome. An `Err` is
/// a failure of the source (nothing was tagged anywhere); a node's own
/// failure is in its report.
pub fn load(
    engine: &Engine,
    nodes: &[String],
    source: Source<'_>,
    progress: &dyn Progress,
) -> Result<Vec<NodeReport>, DeliverError> {
    let started = Instant::now();
    let (label, expected) = match &source {
        Source::Engine { image } => (image.to_string(), Some(engine.image_inspect(image)?)),
        Source::Archive { label, image, .. } => (image.map_or(label.clone(), str::to_string), None),
    };
    let reference = archive::normalize_reference(&label)
        .map_err(|e| DeliverError::Mismatch(e.to_string()))?
        .to_string();
    let normalized = archive::normalize_reference(&reference)
        .map_err(|e| DeliverError::Mismatch(e.to_string()))?;
    progress.begin(&label, nodes, expected.as_ref().map(|e| e.size));

    let inventories = read_inventories(engine, nodes, &reference);
    let mut reports = Vec::new();
    let mut routes = Vec::new();
    for (node, inventory) in nodes.iter().zip(inventories) {
        let report = |result, error: Option<String>| NodeReport {
            node: node.clone(),
            image: label.clone(),
            reference: reference.clone(),
            path: DeliveryPath::Save,
            result,
            bytes_sent: 0,
            blobs_sent: 0,
            blobs_skipped: 0,
            duration_ms: started.elapsed().as_millis() as u64,
            error,
        };
        let inventory = match inventory {
            Ok(inventory) => inventory,
            Err(error) => {
                reports.push(report(NodeResult::Failed, Some(error.to_string())));
                continue;
            }
        };
        let present = expected
            .as_ref()
            .is_some_and(|image| already_present(&inventory, image));
        progress.inventory(node, inventory.blobs.len(), present);
        if present {
            reports.push(report(NodeResult::AlreadyPresent, None));
            continue;
        }
        match NodeFeed::start(engine, node, &inventory.snapshotter) {
            Ok(feed) => routes.push(Route::new(node.clone(), feed, inventory)),
            Err(error) => reports.push(report(NodeResult::Failed, Some(error.to_string()))),
        }
    }
    if routes.is_empty() {
        reports.iter().for_each(|r| progress.node_done(r));
        return Ok(reports);
    }

    let mut fanout = Fanout::new(routes, progress);
    let read = stream_source(engine, source, expected.as_ref(), &mut fanout);
    let routes = fanout.routes;
    let parsed = match read {
        Ok(parsed) => parsed,
        Err(error) => {
            // Dropping the feeds without `Finish` stops every import
            // before it sees an index: nothing is tagged.
            routes
                .into_iter()
                .for_each(|route| drop(route.feed.outcome()));
            return Err(error);
        }
    };
    let image = pick_image(&parsed, &label, expected.as_ref())?;

    let manifest = image.manifest_blob();
    let index = archive::index_json(&manifest, &normalized);
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
                let (label, reference, manifest) = (&label, &reference, &manifest.digest);
                scope.spawn(move || {
                    finish_node(engine, route, sent, label, reference, manifest, started)
                })
            })
            .collect();
        waits
            .into_iter()
            .map(|w| w.join().expect("finish thread panicked"))
            .collect()
    });
    reports.extend(finished);
    reports.iter().for_each(|r| progress.node_done(r));
    Ok(reports)
}

/// The inventories of all nodes, read in parallel.
fn read_inventories(
    engine: &Engine,
    nodes: &[String],
    reference: &str,
) -> Vec<Result<node::Inventory, EngineError>> {
    thread::scope(|scope| {
        let reads: Vec<_> = nodes
            .iter()
            .map(|node| scope.spawn(move || node::inventory(engine, node, reference)))
            .collect();
        reads
            .into_iter()
            .map(|r| r.join().expect("inventory thread panicked"))
            .collect()
    })
}

/// Whether the node's name already points at this image, complete.
fn already_present(inventory: &node::Inventory, image: &ImageDetails) -> bool {
    let Some(current) = &inventory.current else {
        return false;
    };
    let id = &image.id.parse::<Digest>().ok();
    // The engine's image ID is the config digest (the manifest digest with
    // docker's containerd image store).
    current.complete
        && (current.config.as_ref() == id.as_ref() || Some(&current.manifest) == id.as_ref())
}

/// Reads the whole source through the fan-out, checking the engine's exit.
fn stream_source(
    engine: &Engine,
    source: Source<'_>,
    expected: Option<&ImageDetails>,
    fanout: &mut Fanout<'_>,
) -> Result<ImageArchive, DeliverError> {
    let limits = Limits::default();
    // With the engine's diff IDs, even docker's legacy archives name each
    // layer before it streams, so that nodes skip the ones they hold.
    let diff_ids: Vec<Digest> = expected
        .map(|image| image.layers.iter().filter_map(|l| l.parse().ok()).collect())
        .unwrap_or_default();
    match source {
        Source::Engine { image } => {
            let mut save = engine.save(image)?;
            let read = archive::read_archive_of(&mut save, fanout, &limits, &diff_ids);
            // The engine's own account of a failed save explains more than
            // the truncated stream it left.
            let saved = save.finish();
            let parsed = read.map_err(|source| DeliverError::SaveStream {
                label: format!("{} save {image}", engine.kind()),
                source: Box::new(source),
            });
            saved?;
            parsed
        }
        Source::Archive { reader, label, .. } => archive::read_archive(reader, fanout, &limits)
            .map_err(|source| DeliverError::BadArchive {
                label,
                source: Box::new(source),
            }),
    }
}

/// The image to load out of what the source held.
fn pick_image<'p>(
    parsed: &'p ImageArchive,
    label: &str,
    expected: Option<&ImageDetails>,
) -> Result<&'p archive::ArchivedImage, DeliverError> {
    let image = parsed
        .image_for(label)
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

/// Waits for a node's import and verifies what it tagged.
fn finish_node(
    engine: &Engine,
    route: Route,
    sent: Result<(), String>,
    label: &str,
    reference: &str,
    manifest: &Digest,
    started: Instant,
) -> NodeReport {
    let mut report = NodeReport {
        node: route.node.clone(),
        image: label.to_string(),
        reference: reference.to_string(),
        path: DeliveryPath::Save,
        result: NodeResult::Failed,
        bytes_sent: route.bytes_sent,
        blobs_sent: route.blobs_sent,
        blobs_skipped: route.blobs_skipped,
        duration_ms: 0,
        error: None,
    };
    let outcome = route.feed.outcome();
    let verdict = sent.and_then(|()| match outcome {
        FeedOutcome::Imported => verify(engine, &route.node, reference, manifest),
        FeedOutcome::Failed(error) => Err(node_failure(engine, &route.node, &error)),
        FeedOutcome::Aborted => Err("the import was called off".to_string()),
    });
    report.duration_ms = started.elapsed().as_millis() as u64;
    match verdict {
        Ok(()) => report.result = NodeResult::Loaded,
        Err(error) => report.error = Some(error),
    }
    report
}

/// Checks that `reference` points at `manifest` on the node, complete.
fn verify(engine: &Engine, node: &str, reference: &str, manifest: &Digest) -> Result<(), String> {
    match node::checked_image(engine, node, reference) {
        Ok(Some(current)) if &current.manifest == manifest && current.complete => Ok(()),
        Ok(Some(current)) if &current.manifest == manifest => Err(format!(
            "after the import, {reference} is incomplete on the node (`ctr -n k8s.io images check name=={reference}`)"
        )),
        Ok(Some(current)) => Err(format!(
            "after the import, {reference} points at {} instead of {manifest}",
            current.manifest
        )),
        Ok(None) => Err(format!(
            "after the import, the node has no image {reference}"
        )),
        Err(error) => Err(format!("could not verify the import: {error}")),
    }
}

/// A failed import, with the node's state when that explains it (a node
/// that exited or was removed mid-stream).
fn node_failure(engine: &Engine, node: &str, error: &EngineError) -> String {
    match engine.container_inspect(node) {
        Ok(details) if !details.state.running => format!(
            "{error}\n  the node container is {} (exit code {}{}): it stopped during the import",
            details.state.status,
            details.state.exit_code,
            if details.state.oom_killed {
                ", OOM-killed"
            } else {
                ""
            }
        ),
        Err(EngineError::ContainerNotFound { .. }) => {
            format!(
                "{error}\n  the node container no longer exists: it was removed during the import"
            )
        }
        _ => error.to_string(),
    }
}
