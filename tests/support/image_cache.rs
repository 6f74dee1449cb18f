//! The image cache's layer reuse across fresh clusters, shared by the
//! tests of the machine's engines (`tests/load.rs`) and of the
//! containerd-store docker (`tests/docker_cs.rs`): an image rebuilt with
//! only its top layer changed misses the cache, and the engines whose push
//! asks for the layers the cache holds (podman, docker's containerd store)
//! read from the engine only the change.

use super::{
    Layer, TempDir, TestCluster, TestImage, config_on_node, connection_bytes, image_on_node,
    load_ok,
};

const MIB: u64 = 1 << 20;
/// What a push may read beyond the changed layer: its config, manifest and
/// the framing.
const OVERHEAD: u64 = 256 << 10;

/// An 8 MiB base layer and a 1 MiB top layer whose content `top_seed` decides.
pub fn layers(top_seed: u64) -> [Layer; 2] {
    [
        Layer {
            bytes: 8 * MIB,
            seed: 11,
        },
        Layer {
            bytes: MIB,
            seed: top_seed,
        },
    ]
}

/// One image's load into a fresh cluster, as its report told it.
pub struct CacheLoad {
    pub path: String,
    pub from_engine: u64,
    pub reason: String,
}

/// Loads `image` with the cache in `cache` into the fresh cluster `fresh`
/// makes, checks that the node holds the engine's image whole, and drops
/// the cluster.
fn load_fresh(fresh: &dyn Fn() -> TestCluster, image: &TestImage, cache: &TempDir) -> CacheLoad {
    let cluster = fresh();
    let dir = cache.path.to_str().unwrap();
    let report = load_ok(&cluster, &[&image.name, "--image-cache", dir]);
    let what = cluster.target();
    assert_eq!(report["nodes"][0]["result"], "loaded", "{what}: {report}");
    let reference = report["nodes"][0]["reference"].as_str().unwrap();
    let node = cluster.control_plane();
    let manifest = image_on_node(&cluster, node, reference)
        .unwrap_or_else(|| panic!("{what}: {reference} complete on {node}: {report}"));
    // docker's containerd store names an image by its manifest's digest,
    // the others by its config's.
    let id = image.id();
    assert!(
        manifest == id || config_on_node(&cluster, node, reference) == id,
        "{what}: the node holds the engine's image {id}: {report}"
    );
    let entry = &report["images"][0];
    let load = CacheLoad {
        path: entry["path"].as_str().unwrap_or_default().to_string(),
        from_engine: connection_bytes(entry, "from_engine"),
        reason: entry["reason"].as_str().unwrap_or_default().to_string(),
    };
    eprintln!(
        "{what}: path {}, {} bytes from the engine ({})",
        load.path, load.from_engine, load.reason
    );
    load
}

/// The cache filled by a cold load, the image rebuilt with another top
/// layer, loaded into a new fresh cluster: with an engine whose push
/// `reuses` the cache's layers, by push reading only the change, else by
/// save reading it whole; either way a third fresh cluster then gets it from
/// the cache alone. With `reuses`, a cached lower layer that is corrupt is
/// rejected and the image takes save, the node correct.
pub fn a_changed_image_reads_only_its_change(
    fresh: &dyn Fn() -> TestCluster,
    image: &TestImage,
    reuses: bool,
) {
    let cache = TempDir::new("lmt-image-cache");
    let what = image.kind.name();
    image.build(&layers(1));
    let cold = load_fresh(fresh, image, &cache);
    assert_eq!(cold.path, "save", "{what}: {}", cold.reason);
    assert!(cold.from_engine > 9 * MIB, "{what}: {}", cold.from_engine);

    image.build(&layers(2));
    let changed = load_fresh(fresh, image, &cache);
    if reuses {
        assert_eq!(changed.path, "push", "{what}: {}", changed.reason);
        assert!(
            (MIB..MIB + OVERHEAD).contains(&changed.from_engine),
            "{what}: after a 1 MiB change, {} bytes from the engine ({})",
            changed.from_engine,
            changed.reason
        );
    } else {
        assert_eq!(changed.path, "save", "{what}: {}", changed.reason);
        assert!(changed.from_engine > 9 * MIB, "{what}");
    }

    let again = load_fresh(fresh, image, &cache);
    assert_eq!(
        (again.path.as_str(), again.from_engine),
        ("cache", 0),
        "{what}: the image is recorded whole: {}",
        again.reason
    );
    if !reuses {
        return;
    }

    // The base layer's blob (the largest) corrupt, its size kept: the push
    // feeding it from the cache finds out, removes it, and save takes over.
    image.build(&layers(3));
    let blobs = cache.path.join("blobs/sha256");
    let largest = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .max_by_key(|path| std::fs::metadata(path).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&largest).unwrap();
    bytes[4096] ^= 0xff;
    std::fs::write(&largest, &bytes).unwrap();
    let corrupt = load_fresh(fresh, image, &cache);
    assert_eq!(corrupt.path, "save", "{what}: {}", corrupt.reason);
    assert!(
        corrupt.reason.contains("rejected"),
        "{what}: {}",
        corrupt.reason
    );
    assert!(corrupt.from_engine > 9 * MIB, "{what}");
    let name = largest.file_name().unwrap().to_str().unwrap();
    assert_eq!(
        loadmaster::archive::Digest::of(&std::fs::read(&largest).unwrap()).hex(),
        name,
        "{what}: the layer is kept again, whole"
    );
}
