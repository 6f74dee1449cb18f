//! `load` on an engine whose service runs in a network namespace of its own
//! (the lab's namespace tier, `support::netns`): its loopback is not the
//! client's, as for a podman machine or Docker Desktop's VM, and its nodes
//! run there too. Needs root, iproute2 and the engines; skipped, and says
//! so, without `LOADMASTER_TEST_ENGINES`. Beside it, the same counts on
//! the machine's own engines, which reach loadmaster's endpoint.

mod support;

use loadmaster::engine::EngineKind;
use serde_json::Value;
use support::netns::NamespacedEngine;
use support::{Layer, NodeOptions, TestCluster, TestImage, engines_under_test, image_on_node};

const MIB: u64 = 1 << 20;

/// A base layer of 8 MiB and a top layer of 1 MiB whose content `top_seed`
/// decides.
fn layers(top_seed: u64) -> [Layer; 2] {
    [
        Layer {
            bytes: 8 * MIB,
            seed: 7,
        },
        Layer {
            bytes: MIB,
            seed: top_seed,
        },
    ]
}

/// `loadmaster load IMAGE` on the cluster's engine, which must succeed.
fn load_ok(cluster: &TestCluster, args: &[&str]) -> Value {
    let (output, report) = support::load(cluster, args);
    assert!(
        output.status.success(),
        "{}: load {args:?} failed: {}\n{report}",
        cluster.kind,
        String::from_utf8_lossy(&output.stderr)
    );
    report
}

/// The one image entry of a load's report.
fn image_entry(report: &Value) -> &Value {
    let images = report["images"].as_array().expect("images in the report");
    assert_eq!(images.len(), 1, "{report}");
    &images[0]
}

fn bytes(entry: &Value, field: &str) -> u64 {
    entry["connection"][field]
        .as_u64()
        .unwrap_or_else(|| panic!("no connection.{field} in {entry}"))
}

/// The reported bug (issue 12): on an engine that cannot reach the client's
/// loopback, a reload after a one-layer change chose push and failed. Now
/// the engine is asked to reach the push endpoint first, and the load takes
/// save, saying why.
#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn reload_after_a_change_on_a_namespaced_engine_takes_save_and_says_why() {
    for kind in engines_under_test() {
        let engine = NamespacedEngine::start(kind);
        let cluster = TestCluster::start_at(kind, &engine.endpoint, 0, &NodeOptions::default());
        let image = TestImage::named_at(kind, &engine.endpoint);
        image.build(&layers(1));
        let image_bytes = 9 * MIB;

        let cold = load_ok(&cluster, &[&image.name]);
        let entry = image_entry(&cold);
        assert_eq!(entry["path"], "save", "{kind}: {cold}");
        assert_eq!(cold["nodes"][0]["result"], "loaded", "{kind}: {cold}");
        // A cold load moves the image across the connection once each way:
        // out of the engine, and into the node through its exec.
        let tar_overhead = 256 << 10;
        let read = bytes(entry, "from_engine");
        assert!(
            (image_bytes..image_bytes + tar_overhead).contains(&read),
            "{kind}: read {read} from the engine for a {image_bytes}-byte image: {entry}"
        );
        let sent = bytes(entry, "to_nodes");
        assert!(
            (image_bytes..image_bytes + tar_overhead).contains(&sent),
            "{kind}: sent {sent} to the node: {entry}"
        );

        image.build(&layers(2));
        // docker's rule saves here anyway (the node holds no earlier push):
        // `--path push` asks for the path that cannot work.
        let path: &[&str] = match kind {
            EngineKind::Podman => &[],
            EngineKind::Docker => &["--path", "push"],
        };
        let mut args = vec![image.name.as_str()];
        args.extend_from_slice(path);
        let changed = load_ok(&cluster, &args);
        let entry = image_entry(&changed);
        assert_eq!(entry["path"], "save", "{kind}: {changed}");
        let reason = entry["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("cannot reach") && reason.contains("127.0.0.1"),
            "{kind}: the reason names the unreachable endpoint: {reason}"
        );
        assert_eq!(changed["nodes"][0]["result"], "loaded", "{kind}: {changed}");
        let node = cluster.control_plane();
        let reference = changed["nodes"][0]["reference"].as_str().unwrap();
        assert!(
            image_on_node(&cluster, node, reference).is_some(),
            "{kind}: {reference} complete on {node}"
        );
        // The save path reads the whole image again, and sends the node
        // only the changed layer.
        let sent = bytes(entry, "to_nodes");
        assert!(
            (MIB..MIB + tar_overhead).contains(&sent),
            "{kind}: sent {sent} for a 1 MiB change: {entry}"
        );
        assert!(
            bytes(entry, "from_engine") >= image_bytes,
            "{kind}: {entry}"
        );
        drop((image, cluster, engine));
    }
}

/// The other side of the rule: an engine that reaches the endpoint (the
/// machine's own engines) takes the push path for a reload after a change,
/// and then only the changed layer crosses the connection, each way; a cold
/// load moves the image at most once.
#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_reload_through_a_push_moves_only_the_changed_layer_across_the_connection() {
    for kind in engines_under_test() {
        let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
        let image = TestImage::named(kind);
        image.build(&layers(3));
        let image_bytes = 9 * MIB;
        // Compressing incompressible layers adds a little; tar framing too.
        let overhead = 256 << 10;

        let cold = load_ok(&cluster, &[&image.name, "--path", "push"]);
        let entry = image_entry(&cold);
        assert_eq!(entry["path"], "push", "{kind}: {cold}");
        for field in ["from_engine", "to_nodes"] {
            let moved = bytes(entry, field);
            assert!(
                (image_bytes..image_bytes + overhead).contains(&moved),
                "{kind}: cold {field} {moved}: {entry}"
            );
        }

        image.build(&layers(4));
        let changed = load_ok(&cluster, &[&image.name]);
        let entry = image_entry(&changed);
        assert_eq!(entry["path"], "push", "{kind}: {changed}");
        assert_eq!(changed["nodes"][0]["result"], "loaded", "{kind}: {changed}");
        for field in ["from_engine", "to_nodes"] {
            let moved = bytes(entry, field);
            assert!(
                (MIB..MIB + overhead).contains(&moved),
                "{kind}: after a 1 MiB change, {field} {moved}: {entry}"
            );
        }
        let reference = changed["nodes"][0]["reference"].as_str().unwrap();
        assert!(image_on_node(&cluster, cluster.control_plane(), reference).is_some());
    }
}
