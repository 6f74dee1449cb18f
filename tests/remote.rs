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
use support::{
    Layer, NodeOptions, TestCluster, TestImage, connection_bytes, engines_under_test,
    image_on_node, load_ok, only_image,
};

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
        let entry = only_image(&cold);
        assert_eq!(entry["path"], "save", "{kind}: {cold}");
        assert_eq!(cold["nodes"][0]["result"], "loaded", "{kind}: {cold}");
        // A cold load moves the image across the connection once each way:
        // out of the engine, and into the node through its exec.
        let tar_overhead = 256 << 10;
        let read = connection_bytes(entry, "from_engine");
        assert!(
            (image_bytes..image_bytes + tar_overhead).contains(&read),
            "{kind}: read {read} from the engine for a {image_bytes}-byte image: {entry}"
        );
        let sent = connection_bytes(entry, "to_nodes");
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
        let entry = only_image(&changed);
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
        let sent = connection_bytes(entry, "to_nodes");
        assert!(
            (MIB..MIB + tar_overhead).contains(&sent),
            "{kind}: sent {sent} for a 1 MiB change: {entry}"
        );
        assert!(
            connection_bytes(entry, "from_engine") >= image_bytes,
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
        let entry = only_image(&cold);
        assert_eq!(entry["path"], "push", "{kind}: {cold}");
        for field in ["from_engine", "to_nodes"] {
            let moved = connection_bytes(entry, field);
            assert!(
                (image_bytes..image_bytes + overhead).contains(&moved),
                "{kind}: cold {field} {moved}: {entry}"
            );
        }

        image.build(&layers(4));
        let changed = load_ok(&cluster, &[&image.name]);
        let entry = only_image(&changed);
        assert_eq!(entry["path"], "push", "{kind}: {changed}");
        assert_eq!(changed["nodes"][0]["result"], "loaded", "{kind}: {changed}");
        for field in ["from_engine", "to_nodes"] {
            let moved = connection_bytes(entry, field);
            assert!(
                (MIB..MIB + overhead).contains(&moved),
                "{kind}: after a 1 MiB change, {field} {moved}: {entry}"
            );
        }
        let reference = changed["nodes"][0]["reference"].as_str().unwrap();
        assert!(image_on_node(&cluster, cluster.control_plane(), reference).is_some());
    }
}

/// The size of the namespaced engine's own tmpfs: far from the machine's
/// disk, so that a figure read on the client's side cannot pass for it.
const ENGINE_TMPFS: u64 = 1 << 30;

/// `loadmaster doctor -o json` against the engine at `engine`, with the
/// client's temp dir on the machine's disk.
fn doctor_json(engine: &NamespacedEngine, args: &[&str]) -> Value {
    let mut command = support::loadmaster_command(&["doctor", "--engine", engine.kind.name()]);
    command
        .args(args)
        .args(["-o", "json"])
        .env("TMPDIR", "/tmp");
    engine.endpoint.apply(&mut command);
    let output = command.output().expect("run loadmaster doctor");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn finding<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .and_then(|all| all.iter().find(|f| f["id"] == id))
        .unwrap_or_else(|| panic!("no finding {id}: {report}"))
}

/// `df` of `path` as this process (the client) sees it, or of its nearest
/// ancestor the client has (a directory made in the engine's own mount
/// view is not there): available bytes.
fn client_available(path: &str) -> u64 {
    let mut at = std::path::Path::new(path);
    loop {
        if at.exists() {
            break;
        }
        at = at.parent().expect("/ exists");
    }
    let output = std::process::Command::new("df")
        .arg("-Pk")
        .arg(at)
        .output()
        .expect("run df");
    let text = String::from_utf8_lossy(&output.stdout);
    let available: u64 = text
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .nth(3)
        .and_then(|f| f.parse().ok())
        .unwrap_or_else(|| panic!("df's available column for {}: {text}", at.display()));
    available * 1024
}

/// Asserts that a disk finding is the engine's figure for `path`: read on
/// the engine's side, within what the engine wrote meanwhile of `df` in its
/// own mount view, and not the client's figure for `client_path` (the same
/// path, or the client's own temp dir).
fn assert_engine_figure(engine: &NamespacedEngine, f: &Value, path: &str, client_path: &str) {
    let kind = engine.kind;
    assert_eq!(f["side"], "engine", "{kind}: {f}");
    let measured = f["measured_bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("{kind}: {f}"));
    let (engine_available, _) = engine.df(path);
    // The measuring container and the node write a little meanwhile.
    let slack = 64 << 20;
    assert!(
        measured.abs_diff(engine_available) < slack,
        "{kind}: doctor says {measured} free at {path}, the engine's df {engine_available}: {f}"
    );
    let client = client_available(client_path);
    assert!(
        measured.abs_diff(client) > 4 * slack,
        "{kind}: doctor's {measured} is the client's figure for {client_path} ({client}): {f}"
    );
}

/// Item 4 of issue 12: `doctor` on an engine whose files the client does
/// not see as the engine does measures them on the engine's side. The
/// namespaced engine gets a 1 GiB tmpfs of its own (docker: its data root,
/// in the daemon's own mount namespace; podman: its `TMPDIR`, where it
/// stages `save`), so the client's view of the same path is another
/// filesystem, and doctor's figures are checked against `df` in the
/// engine's mount view. The save staging copy of the image counts in the
/// disk it lands on.
#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn doctor_measures_a_namespaced_engines_disks_on_its_side() {
    for kind in engines_under_test() {
        let engine = NamespacedEngine::start_with(kind, Some(ENGINE_TMPFS));
        let tmpfs = engine.tmpfs.clone().unwrap();
        let tmpfs = tmpfs.to_str().unwrap();
        // A kind node's image is what doctor measures with.
        let cluster = TestCluster::start_at(kind, &engine.endpoint, 0, &NodeOptions::default());
        let image = TestImage::named_at(kind, &engine.endpoint);
        image.build(&layers(5));
        let doctor_cluster = support::unique_name("lmdoc");
        let report = doctor_json(
            &engine,
            &["--cluster", &doctor_cluster, "--image", &image.name],
        );

        let storage = finding(&report, "disk.storage");
        let staging = finding(&report, "disk.staging");
        let image_size = report["requirements"]["images"][0]["size"]["bytes"]
            .as_u64()
            .unwrap();
        let staged = report["needs"]["staging"][0]["bytes"].as_u64();
        assert_eq!(
            staged,
            Some(image_size),
            "{kind}: the largest image is staged: {report}"
        );
        let storage_need: u64 = report["needs"]["storage"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["bytes"].as_u64().unwrap())
            .sum();
        match kind {
            EngineKind::Docker => {
                // The data root and its tmp, on the daemon's tmpfs.
                assert_engine_figure(&engine, storage, tmpfs, tmpfs);
                let tmp = format!("{tmpfs}/tmp");
                assert_engine_figure(&engine, staging, &tmp, &tmp);
                assert!(
                    storage["measured_bytes"].as_u64().unwrap() < ENGINE_TMPFS,
                    "{storage}"
                );
                assert!(
                    staging["measured"].as_str().unwrap().contains("on tmpfs"),
                    "{staging}"
                );
                // One filesystem: the storage root must hold the staging copy too.
                assert_eq!(
                    storage["needed_bytes"].as_u64(),
                    Some(storage_need + image_size),
                    "{kind}: {storage}"
                );
            }
            EngineKind::Podman => {
                // The service's TMPDIR is where podman stages a save, not the client's.
                assert_engine_figure(&engine, staging, tmpfs, "/tmp");
                assert!(
                    staging["needed"].as_str().unwrap().contains(tmpfs),
                    "{staging}"
                );
                assert_eq!(staging["status"], "warn", "tmpfs is memory: {staging}");
                assert_eq!(finding(&report, "disk.temp")["side"], "client", "{report}");
                // The store is on the machine's disk, as seen by the engine.
                assert_eq!(storage["side"], "engine", "{storage}");
                assert_eq!(
                    storage["needed_bytes"].as_u64(),
                    Some(storage_need),
                    "{kind}: {storage}"
                );
            }
        }
        drop((image, cluster, engine));
    }
}
