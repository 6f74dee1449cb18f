//! `load` against Docker as Docker 25-29 users run it: the containerd image
//! store (a dockerd 28.5 of its own, `support::docker_cs`), where layers
//! are kept as the compressed blobs they were built as and `save` writes
//! an OCI layout. Its push compresses nothing, so the default path pushes,
//! cold and after a change, and a reload reads only the changed layer;
//! before loadmaster's endpoint answered a TLS ClientHello in plain HTTP,
//! its push failed (`Head "https://127.0.0.1:PORT/v2/...": EOF`) and every
//! reload read the whole image. Runs on every containerd version whose
//! test node is built; skipped, and says so, without the dockerd build.

mod support;

use loadmaster::engine::EngineKind;
use support::image_cache::layers;
use support::{
    Containerd, Endpoint, NodeOptions, TempDir, TestCluster, TestImage, connection_bytes,
    engines_under_test, image_on_node, load_ok, only_image,
};

const MIB: u64 = 1 << 20;
/// What a reload may move beyond the changed layer: its manifest, config
/// and the framing.
const OVERHEAD: u64 = 256 << 10;

/// The node versions to run on: 1.6, and 2.3 (what kind v0.33 ships) when
/// its test node is built.
fn versions() -> Vec<Containerd> {
    let built = |version: Containerd| {
        support::engine_output(EngineKind::Docker, &["image", "inspect", &version.image()])
            .status
            .success()
    };
    let versions: Vec<Containerd> = [Containerd::V1_6, Containerd::V2_3]
        .into_iter()
        .filter(|&version| built(version))
        .collect();
    eprintln!(
        "runs on containerd {}",
        versions
            .iter()
            .map(|v| v.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    versions
}

/// Runs `test` on the containerd-store docker with the node options of each
/// containerd version, unless docker is not under test or that docker is not
/// built (said on stderr).
fn on_each_version(test: impl Fn(&Endpoint, &NodeOptions)) {
    if !engines_under_test().contains(&EngineKind::Docker) {
        return eprintln!("skipping: docker is not under test");
    }
    let versions = versions();
    let Some(endpoint) = support::docker_cs::endpoint(&versions) else {
        return;
    };
    for containerd in versions {
        let options = NodeOptions {
            containerd,
            ..NodeOptions::default()
        };
        test(&endpoint, &options);
    }
}

/// Cold, unchanged, then a 1 MiB top-layer change: the change goes by push
/// (the default path) and only that layer crosses the connection each way.
#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_reload_after_a_change_pushes_only_the_changed_layer() {
    on_each_version(|endpoint, options| {
        let cluster = TestCluster::start_at(EngineKind::Docker, endpoint, 0, options);
        let image = TestImage::named_at(EngineKind::Docker, endpoint);
        image.build(&layers(1));
        let node = cluster.control_plane().to_string();
        let version = options.containerd.name();

        // Cold too the default path pushes: nothing is compressed, and the
        // blobs skip the CLI's copy that `save` goes through.
        let cold = load_ok(&cluster, &[&image.name]);
        assert_eq!(only_image(&cold)["path"], "push", "{version}: {cold}");
        assert_eq!(cold["nodes"][0]["result"], "loaded", "{version}: {cold}");
        let reference = cold["nodes"][0]["reference"].as_str().unwrap().to_string();
        assert!(
            image_on_node(&cluster, &node, &reference).is_some(),
            "{version}: {reference} complete on {node} after the cold load"
        );
        assert!(
            connection_bytes(only_image(&cold), "from_engine") < 9 * MIB + OVERHEAD,
            "{version}: a cold load reads the image at most once: {cold}"
        );

        let unchanged = load_ok(&cluster, &[&image.name]);
        assert_eq!(
            unchanged["nodes"][0]["result"], "already-present",
            "{version}: {unchanged}"
        );
        assert_eq!(
            connection_bytes(only_image(&unchanged), "from_engine"),
            0,
            "{version}: {unchanged}"
        );

        image.build(&layers(2));
        let changed = load_ok(&cluster, &[&image.name]);
        let image_entry = only_image(&changed);
        assert_eq!(image_entry["path"], "push", "{version}: {changed}");
        assert_eq!(
            changed["nodes"][0]["result"], "loaded",
            "{version}: {changed}"
        );
        for field in ["from_engine", "to_nodes"] {
            let bytes = connection_bytes(image_entry, field);
            assert!(
                (MIB..MIB + OVERHEAD).contains(&bytes),
                "{version}: after a 1 MiB change, {field} {bytes}: {changed}"
            );
        }
        let manifest = image_on_node(&cluster, &node, &reference).unwrap_or_else(|| {
            panic!("{version}: {reference} complete on {node} after the reload")
        });
        // The node's image is the engine's: docker's containerd store names
        // an image by its manifest digest.
        assert_eq!(
            manifest,
            image.id(),
            "{version}: the node holds the engine's image"
        );
    });
}

/// The image cache's layers reused by this docker's push: a changed image
/// into a fresh cluster reads only its change from the engine, the rest
/// fed from the cache (a corrupt cached layer rejected: save), and a third
/// fresh cluster reads nothing.
#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_changed_image_reads_only_its_changed_layers_with_the_image_cache() {
    on_each_version(|endpoint, options| {
        let fresh = || TestCluster::start_at(EngineKind::Docker, endpoint, 0, options);
        let image = TestImage::named_at(EngineKind::Docker, endpoint);
        support::image_cache::a_changed_image_reads_only_its_change(&fresh, &image, true);
    });
}

/// What this docker's `save` writes (an OCI layout whose index names the
/// image; the layers compressed as stored) loads from `--archive`, every
/// blob checked, and the node holds the engine's image.
#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn an_archive_this_docker_saved_loads_from_a_file() {
    if !engines_under_test().contains(&EngineKind::Docker) {
        return eprintln!("skipping: docker is not under test");
    }
    let versions = versions();
    let Some(endpoint) = support::docker_cs::endpoint(&versions) else {
        return;
    };
    let image = TestImage::named_at(EngineKind::Docker, &endpoint);
    image.build(&layers(3));
    let dir = TempDir::new("lmt-cs-archive");
    let archive = dir.path.join("image.tar");
    let archive = archive.to_str().unwrap();
    support::engine_cmd_at(
        EngineKind::Docker,
        &endpoint,
        &["save", "-o", archive, &image.name],
    );
    for containerd in versions {
        let options = NodeOptions {
            containerd,
            ..NodeOptions::default()
        };
        let cluster = TestCluster::start_at(EngineKind::Docker, &endpoint, 0, &options);
        let report = load_ok(&cluster, &["--archive", archive]);
        let version = containerd.name();
        assert_eq!(
            report["nodes"][0]["result"], "loaded",
            "{version}: {report}"
        );
        let reference = report["nodes"][0]["reference"].as_str().unwrap();
        let manifest = image_on_node(&cluster, cluster.control_plane(), reference)
            .unwrap_or_else(|| panic!("{version}: {reference} complete on the node"));
        assert_eq!(manifest, image.id(), "{version}: {report}");
    }
}
