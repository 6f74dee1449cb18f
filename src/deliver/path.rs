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
//! docker asks only for the compressed digests it pushed before.
//! Otherwise **save**: a cold node, or (docker) one loaded by `save`, gets
//! the uncompressed stream, and the next load can take the push path once a
//! push has happened (`--path push` forces one).

use super::node::Inventory;
use super::progress::Progress;
use super::{DeliverError, Options, Source, Visit, inspect_and_open, load, load_with, push};
use crate::archive::{self, Digest};
use crate::engine::{Engine, EngineKind, ImageDetails};
use crate::registry::RequestRecord;
use serde::Serialize;
use std::collections::BTreeSet;

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
}

impl std::fmt::Display for DeliveryPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeliveryPath::Save => "save",
            DeliveryPath::Push => "push",
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
}

/// Loads `image` from the engine into `nodes` of kind cluster `cluster`,
/// by the path `choice` selects.
pub fn load_image(
    engine: &Engine,
    cluster: &str,
    nodes: &[String],
    image: &str,
    choice: PathChoice,
    options: &Options,
    progress: &dyn Progress,
) -> Result<ImageLoad, DeliverError> {
    let saved = |reason: String, reports| ImageLoad {
        path: DeliveryPath::Save,
        reason,
        reports,
        registry_requests: Vec::new(),
    };
    if choice == PathChoice::Save {
        let reason = "--path save".to_string();
        progress.path(image, DeliveryPath::Save, &reason);
        let reports = load(engine, nodes, Source::Engine { image }, options, progress)?;
        return Ok(saved(reason, reports));
    }
    let (expected, visits) = inspect_and_open(engine, image, nodes)?;
    let reference =
        archive::normalize_reference(image).map_err(|e| DeliverError::Mismatch(e.to_string()))?;
    let reason = match choice {
        PathChoice::Push => "--path push".to_string(),
        _ => match why_push(&visits, &expected, engine.kind()) {
            Ok(reason) => reason,
            // The save path takes what was read for the choice.
            Err(reason) => {
                progress.path(image, DeliveryPath::Save, &reason);
                let source = Source::Engine { image };
                let reports = load_with(
                    engine,
                    nodes,
                    source,
                    Some(expected),
                    Some(visits),
                    options,
                    progress,
                )?;
                return Ok(saved(reason, reports));
            }
        },
    };
    progress.path(image, DeliveryPath::Push, &reason);
    progress.begin(image, nodes, Some(expected.size));
    let pushed = push::load(
        engine,
        cluster,
        image,
        &expected,
        &reference,
        nodes.iter().cloned().zip(visits).collect(),
        progress,
    )?;
    Ok(ImageLoad {
        path: DeliveryPath::Push,
        reason,
        reports: pushed.reports,
        registry_requests: pushed.requests,
    })
}

/// The auto rule (module doc): Ok(reason to push) or Err(reason to save).
fn why_push(visits: &[Visit], image: &ImageDetails, engine: EngineKind) -> Result<String, String> {
    let diff_ids: Vec<Digest> = image.layers.iter().filter_map(|l| l.parse().ok()).collect();
    let needing: Vec<&Inventory> = visits
        .iter()
        .filter_map(|visit| visit.as_ref().ok().map(|(inventory, _)| inventory))
        .filter(|i| !super::already_present(i, image))
        .collect();
    if needing.is_empty() {
        return Err("no node needs the image".to_string());
    }
    if needing.iter().all(|i| pushed_before(i, &diff_ids, engine)) {
        Ok("the nodes hold an earlier push of the image: only changed layers are read".to_string())
    } else {
        Err("a node holds no earlier push of the image's lower layers: the uncompressed stream is faster than compressing them".to_string())
    }
}

/// Whether every layer but the top one, and at least one layer, is in the
/// node in a form `engine`'s push reuses: a compressed blob of an earlier
/// push, or (podman) the uncompressed layer itself.
fn pushed_before(inventory: &Inventory, diff_ids: &[Digest], engine: EngineKind) -> bool {
    let mut pushed: BTreeSet<&Digest> = inventory.uncompressed.values().collect();
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
        for engine in EngineKind::ALL {
            assert!(
                pushed_before(&held, &[a, b, c], engine),
                "top layer changed"
            );
            assert!(pushed_before(&held, &[a, b], engine), "unchanged");
            assert!(
                !pushed_before(&held, &[a, c, b], engine),
                "a lower layer is new"
            );
            assert!(
                !pushed_before(&inventory(&[]), &[a], engine),
                "cold node, one layer"
            );
            assert!(!pushed_before(&held, &[], engine));
        }
    }

    #[test]
    fn podman_reuses_layers_a_save_left_docker_does_not() {
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        let mut saved = inventory(&[]);
        saved.blobs.insert(a);
        assert!(pushed_before(&saved, &[a, b], EngineKind::Podman));
        assert!(!pushed_before(&saved, &[a, b], EngineKind::Docker));
    }
}
