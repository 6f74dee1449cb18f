//! The push path: the engine pushes the image to loadmaster's own registry
//! endpoint on loopback ([`crate::registry`]), which answers from the
//! nodes' inventories and streams what it receives into the nodes
//! ([`super::ingest`]); then each node gets the image record.
//!
//! 0. the engine's service (in its VM, or wherever it runs) must reach the
//!    endpoint, which listens on this machine's loopback: [`engine_reach`]
//!    has it contact the endpoint at `127.0.0.1`, then under the host names
//!    its location makes likely (`host.containers.internal`...) and keeps
//!    the first that worked; none working is a reason to take save;
//! 1. the registry starts on a port derived from the cluster's name
//!    ([`stable_port`]) and the image is pushed as
//!    `ADDRESS:PORT/<its repository>:<its tag>`. Both names must be the same
//!    from one load to the next: the engines remember which compressed
//!    blobs they pushed per registry `host:port` and repository, and only
//!    then ask (`HEAD`) before compressing and uploading a layer again;
//! 2. the engine uploads what the nodes lack; each large blob is committed
//!    into each node's content store as it arrives; with an image cache,
//!    the blobs the registry answered for from the cache are fed to the
//!    nodes from there after the push ([`NodeStore::feed_from_cache`]), and
//!    the image is recorded in the cache once every blob of it is there;
//! 3. after the manifest arrived, each node imports a small OCI layout
//!    (index.json naming the image, the manifest, the config and small blobs
//!    it lacks) through the same `ctr images import` feed as the save path,
//!    and is verified the same way.

use super::cache::ImageCache;
use super::fanout::Route;
use super::feed::{NodeFeed, Piece};
use super::ingest::{NodeHold, NodeStore};
use super::node::{Inventory, Session};
use super::progress::{HoldingDone, Progress};
use super::{DeliverError, DeliveryPath, NodeReport, NodeResult, Visit, finish_node, sort_visits};
use crate::archive::{self, Digest, ImageReference, ManifestBlob};
use crate::engine::{Engine, EngineError, ImageDetails, Location};
use crate::registry::{BlobUpload, Registry, RequestRecord, Storage};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

/// Ports [`stable_port`] picks from: below Linux's ephemeral range
/// (32768-60999), where connect() would hand out ports under us, and above
/// the well-known services.
const PORT_BASE: u16 = 21000;
const PORT_SPAN: u16 = 9000;

/// The registry port for a cluster: a hash of its name, so that every load
/// into the cluster pushes to the same `127.0.0.1:PORT` and the engine's
/// record of what it pushed there applies. Another process on the port
/// moves the registry to a neighbour or any free port ([`Registry::start`]);
/// the push then works but compresses and uploads as on a first push.
pub fn stable_port(cluster: &str) -> u16 {
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let hash = cluster
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    PORT_BASE + (hash % u64::from(PORT_SPAN)) as u16
}

/// The repository and tag an image is pushed as: its normalized name (with
/// `:` of a registry port made `-`, which a repository cannot hold) and tag.
pub fn push_name(reference: &ImageReference) -> (String, String) {
    let repository = reference.name().replace(':', "-").to_ascii_lowercase();
    let tag = reference.tag().unwrap_or("latest").to_string();
    (repository, tag)
}

/// The address under which the engine reaches loadmaster's registry
/// endpoint for `cluster` (on this machine's loopback), found by having the
/// engine contact it there ([`Engine::probe_registry`]): first at
/// `127.0.0.1`, which needs no question to the engine (`podman info` alone
/// takes longer than a whole reload's push), then under the host names its
/// location makes likely. `Err` says why none worked, each address with the
/// engine's answer.
pub fn engine_reach(engine: &Engine, cluster: &str) -> Result<String, String> {
    let registry = Registry::start(stable_port(cluster), Arc::new(Unreachable))
        .map_err(|e| format!("loadmaster's registry endpoint did not start ({e})"))?;
    let mut answers = Vec::new();
    let mut reached = |address: &str| {
        let host = format!("{address}:{}", registry.port());
        let seen = registry.requests().len();
        let answer = engine.probe_registry(&host);
        if registry.requests().len() > seen {
            return true;
        }
        answers.push(format!("{host}: {}", engine_cause(&answer)));
        false
    };
    if reached("127.0.0.1") {
        return Ok("127.0.0.1".to_string());
    }
    let location = engine
        .info()
        .map_err(|e| format!("where the engine runs is unknown ({e})"))?
        .location;
    if let Some(alias) = location
        .host_aliases(engine.kind())
        .iter()
        .find(|alias| reached(alias))
    {
        return Ok(alias.to_string());
    }
    let side = match location {
        Location::Local => "on this machine, in a network namespace of its own",
        Location::VirtualMachine => "in a VM",
        Location::Remote => "remote",
    };
    Err(format!(
        "the engine ({side}) cannot reach loadmaster's registry endpoint on this machine's loopback ({})",
        answers.join("; ")
    ))
}

/// The engine's own words for a failed probe: the last line of what it
/// printed, which names the cause (`dial tcp 127.0.0.1:21596: connect:
/// connection refused`), else the whole error.
fn engine_cause(error: &EngineError) -> String {
    let EngineError::CommandFailed { stderr, .. } = error else {
        return error.to_string();
    };
    let last = stderr.lines().rev().find(|line| !line.trim().is_empty());
    match last {
        Some(line) => line
            .trim()
            .trim_start_matches("Error response from daemon: ")
            .trim_start_matches("Error: ")
            .to_string(),
        None => error.to_string(),
    }
}

/// What a reachability probe talks to: a registry that holds nothing and
/// takes nothing.
struct Unreachable;

impl Storage for Unreachable {
    fn blob_size(&self, _: &Digest) -> Option<u64> {
        None
    }

    fn blob_bytes(&self, _: &Digest) -> Option<Arc<[u8]>> {
        None
    }

    fn upload(&self) -> Result<Box<dyn BlobUpload>, String> {
        Err("this endpoint only answers reachability probes".to_string())
    }
}

/// What a push load did: each node's outcome and the registry's requests.
pub struct Pushed {
    pub reports: Vec<NodeReport>,
    pub requests: Vec<RequestRecord>,
}

/// The image as pushed: its manifest, and each layer's diff ID.
struct PushedImage {
    manifest: ManifestBlob,
    config: Digest,
    /// Compressed digest → diff ID, bottom layer first.
    layers: Vec<(Digest, Digest)>,
}

/// Loads `image` into the nodes whose inventories are given, through a push
/// that the engine sends to loadmaster's endpoint as `address` (from
/// [`engine_reach`]), with `cache` as a second source of blobs.
#[allow(clippy::too_many_arguments)]
pub fn load(
    engine: &Engine,
    cluster: &str,
    address: &str,
    image: &str,
    expected: &ImageDetails,
    reference: &ImageReference,
    visits: Vec<(String, Visit)>,
    cache: Option<&ImageCache>,
    progress: &dyn Progress,
) -> Result<Pushed, DeliverError> {
    let started = Instant::now();
    let label = image.to_string();
    let reference_text = reference.to_string();
    let report = |node: &str, result, error: Option<String>| NodeReport {
        node: node.to_string(),
        image: label.clone(),
        reference: reference_text.clone(),
        path: DeliveryPath::Push,
        result,
        bytes_sent: 0,
        blobs_sent: 0,
        blobs_skipped: 0,
        duration_ms: started.elapsed().as_millis() as u64,
        error,
        failure: None,
    };
    // The nodes skipped or failed here are reported once the engine's push
    // went through: if it fails, the save path visits them again.
    let (mut reports, targets) = sort_visits(
        visits,
        Some(expected),
        &HoldingDone(progress),
        |node, result| report(node, result, None),
        |node, error| report(node, NodeResult::Failed, Some(error.to_string())),
    );
    let report_sorted = |reports: &[NodeReport]| reports.iter().for_each(|r| progress.node_done(r));
    if targets.is_empty() {
        report_sorted(&reports);
        return Ok(Pushed {
            reports,
            requests: Vec::new(),
        });
    }

    let holds = targets
        .iter()
        .map(|(node, inventory, _)| NodeHold {
            name: node.clone(),
            blobs: inventory.blobs.clone(),
            root: inventory.root.clone(),
            sizes: inventory.sizes.clone(),
        })
        .collect();
    let store = NodeStore::new(engine, holds, cache.cloned());
    let registry = Registry::start(stable_port(cluster), Arc::new(store.clone()))
        .map_err(|e| DeliverError::Push(e.to_string()))?;
    let (repository, tag) = push_name(reference);
    let destination = format!("{address}:{}/{repository}:{tag}", registry.port());
    let untag = engine
        .push_to(image, &destination)
        .map_err(|source| DeliverError::EnginePush {
            destination: destination.clone(),
            source: Box::new(source),
        })?;
    report_sorted(&reports);
    let pushed = pushed_image(&registry, &repository, &tag, expected)?;
    let blobs: Vec<Digest> = pushed.blobs().collect();
    if let Err((digest, source)) = store.feed_from_cache(&blobs) {
        // Nothing is tagged: what was ingested becomes collectable again.
        for (node, _, _) in &targets {
            let _ = store.release(node, &BTreeMap::new());
        }
        let _ = untag.finish();
        return Err(DeliverError::CacheBlob { digest, source });
    }

    let finished: Vec<NodeReport> = thread::scope(|scope| {
        let waits: Vec<_> = targets
            .into_iter()
            .map(|(node, inventory, session)| {
                let (store, pushed, label, reference_text) =
                    (&store, &pushed, &label, &reference_text);
                scope.spawn(move || {
                    import_node(
                        engine,
                        store,
                        pushed,
                        node,
                        inventory,
                        session,
                        reference,
                        label,
                        reference_text,
                        started,
                    )
                })
            })
            .collect();
        waits
            .into_iter()
            .map(|w| w.join().expect("import thread panicked"))
            .collect()
    });
    finished.iter().for_each(|r| progress.node_done(r));
    if let Some(cache) = cache
        && let Ok(id) = expected.id.parse::<Digest>()
        && blobs.iter().all(|blob| cache.blob_size(blob).is_some())
    {
        cache.keep(image, |cache| cache.record_manifest(&id, &pushed.manifest));
    }
    reports.extend(finished);
    untag.finish().map_err(|e| {
        DeliverError::Push(format!(
            "the image was delivered, but removing the temporary tag {destination} failed: {e}; remove it with `{} rmi {destination}`",
            engine.kind()
        ))
    })?;
    let requests = registry.requests();
    Ok(Pushed { reports, requests })
}

impl PushedImage {
    /// The config and layers the manifest names.
    fn blobs(&self) -> impl Iterator<Item = Digest> + '_ {
        std::iter::once(self.config).chain(self.layers.iter().map(|(d, _)| *d))
    }
}

/// The manifest the engine pushed, checked against the image inspected.
fn pushed_image(
    registry: &Registry,
    repository: &str,
    tag: &str,
    expected: &ImageDetails,
) -> Result<PushedImage, DeliverError> {
    let manifest = registry.manifest(repository, tag).ok_or_else(|| {
        DeliverError::Push(format!(
            "the push ended without a manifest for {repository}:{tag} (the registry's requests: {:?})",
            registry.requests().iter().map(|r| format!("{} {} {}", r.method, r.path, r.status)).collect::<Vec<_>>()
        ))
    })?;
    let json: serde_json::Value = serde_json::from_slice(&manifest.bytes)
        .map_err(|e| DeliverError::Push(format!("the pushed manifest is not JSON: {e}")))?;
    let digest_at = |value: &serde_json::Value| {
        value["digest"]
            .as_str()
            .and_then(|d| d.parse::<Digest>().ok())
    };
    let config = digest_at(&json["config"]).ok_or_else(|| {
        DeliverError::Push(format!(
            "the pushed manifest ({}) has no config: only single-platform image manifests can be loaded through a push",
            manifest.media_type
        ))
    })?;
    // The config's digest is the image ID on both engines, but docker's
    // containerd image store names an image by its manifest's digest.
    let id = expected.id.parse::<Digest>().ok();
    if id != Some(config) && id != Some(manifest.digest) {
        return Err(DeliverError::Mismatch(format!(
            "the engine pushed config {config}, but inspect reported {}: the image changed during the load; run it again",
            expected.id
        )));
    }
    let compressed: Vec<Digest> = json["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(digest_at)
        .collect();
    let diff_ids: Vec<Digest> = expected
        .layers
        .iter()
        .filter_map(|l| l.parse().ok())
        .collect();
    if compressed.len() != diff_ids.len() {
        return Err(DeliverError::Push(format!(
            "the pushed manifest lists {} layers, the image has {}",
            compressed.len(),
            diff_ids.len()
        )));
    }
    Ok(PushedImage {
        manifest: ManifestBlob {
            digest: manifest.digest,
            media_type: manifest.media_type,
            bytes: manifest.bytes.to_vec(),
        },
        config,
        layers: compressed.into_iter().zip(diff_ids).collect(),
    })
}

/// Gives one node the image record, verifies it, and lifts the GC
/// protection of what was ingested into it.
#[allow(clippy::too_many_arguments)]
fn import_node(
    engine: &Engine,
    store: &NodeStore,
    pushed: &PushedImage,
    node: String,
    inventory: Inventory,
    session: Session,
    reference: &ImageReference,
    label: &str,
    reference_text: &str,
    started: Instant,
) -> NodeReport {
    let failed = |error: String| NodeReport {
        node: node.clone(),
        image: label.to_string(),
        reference: reference_text.to_string(),
        path: DeliveryPath::Push,
        result: NodeResult::Failed,
        bytes_sent: 0,
        blobs_sent: 0,
        blobs_skipped: 0,
        duration_ms: started.elapsed().as_millis() as u64,
        error: Some(error),
        failure: None,
    };
    if let Some(error) = store.failure(&node) {
        return failed(format!("storing the pushed blobs failed: {error}"));
    }
    // What reached this node: blobs it held, blobs ingested into it, and
    // small blobs held in memory for its import.
    let (mut ingested_bytes, mut ingested, mut skipped) = (0, 0, 0);
    let mut small = Vec::new();
    for digest in pushed.blobs() {
        if inventory.blobs.contains(&digest) {
            skipped += 1;
            continue;
        }
        match store.received(&digest) {
            Some(blob) if blob.ingested_into.contains(&node) => {
                ingested += 1;
                ingested_bytes += blob.size;
            }
            Some(blob) if blob.bytes.is_some() => {
                small.push((digest, blob.bytes.unwrap_or_default()))
            }
            _ => {
                return failed(format!(
                    "the push did not deliver blob {digest} to the node (the engine skipped it as present, then the node lost it?); load again"
                ));
            }
        }
    }
    let feed = match NodeFeed::start(session, &inventory.snapshotter) {
        Ok(feed) => feed,
        Err(error) => return failed(error.to_string()),
    };
    let mut route = Route::new(node.clone(), feed, inventory);
    for (digest, bytes) in &small {
        route.send_blob(digest, bytes);
    }
    route.send_blob(&pushed.manifest.digest, &pushed.manifest.bytes);
    route.feed.send(Piece::File {
        path: "index.json".to_string(),
        bytes: archive::index_json(&pushed.manifest, reference),
    });
    route.feed.send(Piece::Finish);
    let mut report = finish_node(
        engine,
        route,
        Ok(()),
        label,
        reference_text,
        Some(&pushed.manifest.digest),
        started,
    );
    report.path = DeliveryPath::Push;
    report.bytes_sent += ingested_bytes;
    report.blobs_sent += ingested;
    report.blobs_skipped = skipped;
    let layers: BTreeMap<Digest, Digest> = pushed.layers.iter().copied().collect();
    if let Err(error) = store.release(&node, &layers) {
        report.result = NodeResult::Failed;
        report.error = Some(format!(
            "the image loaded, but lifting the garbage-collection protection of its pushed blobs failed: {error}; remove the label containerd.io/gc.root from them with `ctr -n k8s.io content label DIGEST containerd.io/gc.root=`"
        ));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_is_stable_per_cluster_and_in_range() {
        let kind = stable_port("kind");
        assert_eq!(kind, stable_port("kind"));
        assert_ne!(kind, stable_port("kind2"));
        for name in [
            "kind",
            "e2e",
            "a-very-long-cluster-name-with-many-parts",
            "",
        ] {
            let port = stable_port(name);
            assert!(
                (PORT_BASE..PORT_BASE + PORT_SPAN).contains(&port),
                "{name}: {port}"
            );
        }
    }

    #[test]
    fn pushes_under_the_normalized_name() {
        let reference = archive::normalize_reference("app:1").unwrap();
        assert_eq!(
            push_name(&reference),
            ("docker.io/library/app".into(), "1".into())
        );
        let reference = archive::normalize_reference("registry.local:5000/team/app").unwrap();
        assert_eq!(
            push_name(&reference),
            ("registry.local-5000/team/app".into(), "latest".into())
        );
    }
}
