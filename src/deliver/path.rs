//! Which way an image from the engine goes to the nodes: `save` or `push`.
//!
//! - `save` streams the whole image out of the engine, uncompressed, and
//!   sends each node the blobs it lacks. Reading is the fixed cost: every
//!   layer is exported on every load, whatever the nodes hold.
//! - `push` lets the engine ask which blobs the nodes hold and read only the
//!   rest. But a layer the engine has not pushed to this registry name
//!   before is gzip-compressed first, which is slower than the uncompressed
//!   `save` stream, and nodes loaded by `save` hold layers uncompressed,
//!   under other digests, so a first push sends everything again.
//!
//! The rule (`--path auto`, the default) uses only what the inventories
//! already read tell: **push** when on every node that needs the image,
//! every layer except the topmost has a compressed blob that came through
//! an earlier push (containerd labels it `containerd.io/uncompressed` with
//! the layer's diff ID, and so does the push path), and at least one layer
//! has; then only the changed top layers are compressed and sent.
//! podman also asks for a layer by its diff ID and reuses an uncompressed
//! blob of that digest (measured: podman 4.3 after a `save` load sent only
//! the changed layer), so with podman a layer a `save` load left counts too;
//! docker's classic store asks only for the compressed digests it pushed
//! before. Docker's containerd image store (Docker 29's default) keeps each
//! layer as the compressed blob it was built or pulled as and `save`s that
//! blob, and its push compresses nothing: there `auto` pushes whenever a
//! node needs the image, also cold (one copy fewer than `save`, which
//! passes through the CLI: 4.4-6.2 s against 6.7-12.6 s at 256 MiB here).
//! Otherwise **save**: a cold node, or (docker) one loaded by `save`, gets
//! the uncompressed stream, and the next load can take the push path once a
//! push has happened (`--path push` forces one).
//!
//! With an image cache ([`super::cache`]), an image the cache holds whole
//! takes save, which reads it from the cache, not from the engine. One it
//! lacks takes **push** when the cache, with what the nodes hold, has every
//! layer but the topmost in the form the engine's push asks for (the rule
//! above, the cache counting as one more holder): podman's uncompressed
//! layers (a blob named by its diff ID), docker's compressed ones (which
//! only its containerd store saves; the cache holds a classic store's
//! layers uncompressed, which its push never asks for). The registry then
//! answers for those from the cache and feeds the nodes from its files
//! ([`super::ingest`]), the engine uploads only the changed layers, and
//! the image is recorded in the cache whole. Otherwise save, which streams
//! it and keeps it: either way, the next fresh node reads nothing from the
//! engine. A cached blob that fails its digest is removed and the image
//! takes save.
//!
//! Whatever the rule says, a push needs an engine that reaches loadmaster's
//! endpoint on this machine's loopback, which an engine in a VM, in a
//! network namespace of its own, or on another machine may not: the engine
//! is made to contact it first ([`push::engine_reach`]), and when it cannot,
//! or when its push fails, the image takes save and the reason says why.
//! The path chosen never fails a load.

use super::cache::ImageCache;
use super::node::Inventory;
use super::progress::Progress;
use super::{
    CacheUse, ConnectionBytes, DeliverError, Delivered, Options, Source, Visit, inspect_and_open,
    load_counted, load_with, push,
};
use crate::archive::{self, Digest};
use crate::engine::{Engine, EngineKind, ImageDetails};
use crate::registry::RequestRecord;
use serde::Serialize;
use std::collections::BTreeSet;
use std::thread;

/// How `load` chooses the path (`--path`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PathChoice {
    /// Push when the nodes hold an earlier push of the image, else save.
    Auto,
    Save,
    Push,
}

/// The path an image took (`"path"` in the JSON report).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryPath {
    Save,
    Push,
    /// From the image cache, which an earlier save filled.
    Cache,
}

impl std::fmt::Display for DeliveryPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeliveryPath::Save => "save",
            DeliveryPath::Push => "push",
            DeliveryPath::Cache => "cache",
        })
    }
}

/// What loading one image from the engine did.
pub struct ImageLoad {
    pub path: DeliveryPath,
    /// Why this path (for people).
    pub reason: String,
    pub reports: Vec<super::NodeReport>,
    /// The push endpoint's requests (empty on the save path).
    pub registry_requests: Vec<RequestRecord>,
    /// What crossed the connection to the engine.
    pub connection: ConnectionBytes,
}

/// Loads `image` from the engine into `nodes` of kind cluster `cluster`,
/// by the path `choice` selects. A push is tried only once the engine was
/// seen to reach loadmaster's endpoint, and a push the engine fails to send
/// gives way to save: the path chosen never fails a load that save can do.
pub fn load_image(
    engine: &Engine,
    cluster: &str,
    nodes: &[String],
    image: &str,
    choice: PathChoice,
    options: &Options,
    progress: &dyn Progress,
) -> Result<ImageLoad, DeliverError> {
    let saved = |reason: String, done: Delivered| ImageLoad {
        path: match done.cache {
            CacheUse::Hit => DeliveryPath::Cache,
            _ => DeliveryPath::Save,
        },
        reason: match &done.cache {
            CacheUse::Hit => {
                format!("{reason}; the image cache held the image whole: the engine was not read")
            }
            CacheUse::Rejected { error, removed } => format!(
                "{reason}; the image cache's entry was rejected ({error}; {removed} bad blobs removed): read from the engine and kept again"
            ),
            CacheUse::Miss => format!("{reason}; kept in the image cache"),
            CacheUse::Unused => reason,
        },
        connection: ConnectionBytes::of(done.from_engine, &done.reports),
        reports: done.reports,
        registry_requests: Vec::new(),
    };
    let save_afresh = |reason: String| {
        progress.path(image, DeliveryPath::Save, &reason);
        let done = load_counted(engine, nodes, Source::Engine { image }, options, progress)?;
        Ok(saved(reason, done))
    };
    if choice == PathChoice::Save {
        return save_afresh("--path save".to_string());
    }
    // The reach probe runs beside the inspection and the nodes'
    // inventories, which it does not need: a reload that pushes waits for
    // the slower of them, not for both (on podman the probe is about 0.1 s
    // of a 0.9 s reload). A load that then takes save has spent one probe.
    let speculate = choice == PathChoice::Push || options.image_cache.is_none();
    let (opened, probed) = thread::scope(|scope| {
        let probe = speculate.then(|| scope.spawn(|| push::engine_reach(engine, cluster)));
        let opened = inspect_and_open(engine, image, nodes);
        let probed = probe.map(|probe| {
            probe
                .join()
                .unwrap_or_else(|_| Err("the reach probe failed unexpectedly".to_string()))
        });
        (opened, probed)
    });
    let (expected, visits) = opened?;
    let reference =
        archive::normalize_reference(image).map_err(|e| DeliverError::Mismatch(e.to_string()))?;
    let chosen = match (choice, &options.image_cache) {
        (PathChoice::Push, _) => Ok("--path push".to_string()),
        (_, Some(cache)) => why_push_cached(cache, &visits, &expected, engine.kind()),
        _ => why_push(&visits, &expected, engine.kind(), &BTreeSet::new()),
    };
    // Push only where the engine reaches the endpoint.
    let reach = || probed.unwrap_or_else(|| push::engine_reach(engine, cluster));
    let chosen = chosen.and_then(|reason| match reach() {
        Ok(address) => Ok((reason, address)),
        Err(unreachable) => Err(format!("{reason}, but {unreachable}: took save")),
    });
    let (reason, address) = match chosen {
        Ok(chosen) => chosen,
        // The save path takes what was read for the choice.
        Err(reason) => {
            progress.path(image, DeliveryPath::Save, &reason);
            let source = Source::Engine { image };
            let done = load_with(
                engine,
                nodes,
                source,
                Some(expected),
                Some(visits),
                options,
                progress,
            )?;
            return Ok(saved(reason, done));
        }
    };
    progress.path(image, DeliveryPath::Push, &reason);
    progress.begin(image, nodes, Some(expected.size));
    let pushed = push::load(
        engine,
        cluster,
        &address,
        image,
        &expected,
        &reference,
        nodes.iter().cloned().zip(visits).collect(),
        options.image_cache.as_ref(),
        progress,
    );
    let pushed = match pushed {
        Ok(pushed) => pushed,
        Err(DeliverError::EnginePush {
            destination,
            source,
        }) => {
            return save_afresh(format!(
                "{reason}, but the engine's push to {destination} failed ({source}): took save"
            ));
        }
        Err(DeliverError::CacheBlob { digest, source }) => {
            return save_afresh(format!(
                "{reason}, but the image cache's blob {digest} was rejected ({source}): took save"
            ));
        }
        Err(other) => return Err(other),
    };
    let from_engine = pushed.requests.iter().map(|r| r.bytes).sum();
    Ok(ImageLoad {
        path: DeliveryPath::Push,
        reason,
        connection: ConnectionBytes::of(from_engine, &pushed.reports),
        reports: pushed.reports,
        registry_requests: pushed.requests,
    })
}

/// The auto rule with an image cache (module doc): save for an image the
/// cache holds whole (a hit reads nothing) or none of whose layers it holds
/// as `engine`'s push asks for them; else the rule of [`why_push`], the
/// cache's layers counting as held.
fn why_push_cached(
    cache: &ImageCache,
    visits: &[Visit],
    image: &ImageDetails,
    engine: EngineKind,
) -> Result<String, String> {
    if let Ok(id) = image.id.parse::<Digest>()
        && cache.lookup(&id).is_some()
    {
        return Err("the image cache is read on the save path".to_string());
    }
    // podman asks for a layer by its diff ID, docker (its containerd
    // store) for the compressed blob it keeps.
    let reused: BTreeSet<Digest> = cache
        .layers()
        .into_iter()
        .filter(|(diff_id, blob)| (diff_id == blob) == (engine == EngineKind::Podman))
        .map(|(diff_id, _)| diff_id)
        .collect();
    let lacking = "the image cache holds none of its layers as the engine's push asks for them: save fills it";
    if !image
        .layers
        .iter()
        .any(|l| l.parse().is_ok_and(|d| reused.contains(&d)))
    {
        return Err(lacking.to_string());
    }
    why_push(visits, image, engine, &reused)
        .map(|_| {
            "the image cache holds its lower layers: only changed layers are read from the engine"
                .to_string()
        })
        .map_err(|reason| format!("{reason} (the image cache holds only some of them)"))
}

/// The auto rule (module doc): Ok(reason to push) or Err(reason to save).
/// `cached`: diff IDs of layers the image cache holds as the engine's push
/// asks for them.
fn why_push(
    visits: &[Visit],
    image: &ImageDetails,
    engine: EngineKind,
    cached: &BTreeSet<Digest>,
) -> Result<String, String> {
    let diff_ids: Vec<Digest> = image.layers.iter().filter_map(|l| l.parse().ok()).collect();
    let needing: Vec<&Inventory> = visits
        .iter()
        .filter_map(|visit| visit.as_ref().ok().map(|(inventory, _)| inventory))
        .filter(|i| !super::already_present(i, image))
        .collect();
    if needing.is_empty() {
        return Err("no node needs the image".to_string());
    }
    if image.stored_compressed {
        return Ok("the engine keeps the layers compressed (docker's containerd image store): its push sends them as stored, only those the nodes lack".to_string());
    }
    if needing
        .iter()
        .all(|i| pushed_before(i, &diff_ids, engine, cached))
    {
        Ok("the nodes hold an earlier push of the image: only changed layers are read".to_string())
    } else {
        Err("a node holds no earlier push of the image's lower layers: the uncompressed stream is faster than compressing them".to_string())
    }
}

/// Whether every layer but the top one, and at least one layer, is in the
/// node (or in `cached`) in a form `engine`'s push reuses: a compressed
/// blob of an earlier push, or (podman) the uncompressed layer itself.
fn pushed_before(
    inventory: &Inventory,
    diff_ids: &[Digest],
    engine: EngineKind,
    cached: &BTreeSet<Digest>,
) -> bool {
    let mut pushed: BTreeSet<&Digest> = inventory.uncompressed.values().collect();
    pushed.extend(cached);
    if engine == EngineKind::Podman {
        pushed.extend(diff_ids.iter().filter(|d| inventory.blobs.contains(d)));
    }
    let Some((_top, below)) = diff_ids.split_last() else {
        return false;
    };
    below.iter().all(|d| pushed.contains(d)) && diff_ids.iter().any(|d| pushed.contains(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inventory(pushed: &[(Digest, Digest)]) -> Inventory {
        Inventory {
            snapshotter: "overlayfs".into(),
            blobs: pushed.iter().map(|(c, _)| *c).collect(),
            snapshots: Default::default(),
            uncompressed: pushed.iter().copied().collect(),
            root: "/var/lib/containerd".into(),
            sizes: Default::default(),
            current: None,
        }
    }

    #[test]
    fn pushes_when_all_but_the_top_layer_came_through_a_push() {
        let (a, b, c) = (Digest::of(b"a"), Digest::of(b"b"), Digest::of(b"c"));
        let (gz_a, gz_b) = (Digest::of(b"gz a"), Digest::of(b"gz b"));
        let held = inventory(&[(gz_a, a), (gz_b, b)]);
        let none = BTreeSet::new();
        for engine in EngineKind::ALL {
            assert!(
                pushed_before(&held, &[a, b, c], engine, &none),
                "top layer changed"
            );
            assert!(pushed_before(&held, &[a, b], engine, &none), "unchanged");
            assert!(
                !pushed_before(&held, &[a, c, b], engine, &none),
                "a lower layer is new"
            );
            assert!(
                !pushed_before(&inventory(&[]), &[a], engine, &none),
                "cold node, one layer"
            );
            assert!(!pushed_before(&held, &[], engine, &none));
        }
    }

    #[test]
    fn podman_reuses_layers_a_save_left_docker_does_not() {
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        let none = BTreeSet::new();
        let mut saved = inventory(&[]);
        saved.blobs.insert(a);
        assert!(pushed_before(&saved, &[a, b], EngineKind::Podman, &none));
        assert!(!pushed_before(&saved, &[a, b], EngineKind::Docker, &none));
    }

    #[test]
    fn the_image_cache_counts_as_holding_the_layers_it_has() {
        let (a, b, c) = (Digest::of(b"a"), Digest::of(b"b"), Digest::of(b"c"));
        let fresh = inventory(&[]);
        let cached = BTreeSet::from([a, b]);
        for engine in EngineKind::ALL {
            assert!(pushed_before(&fresh, &[a, b, c], engine, &cached));
            assert!(!pushed_before(&fresh, &[a, c, b], engine, &cached));
        }
    }
}
