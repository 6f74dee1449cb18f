//! `loadmaster load` end to end: real engines, real containerd in
//! kind-compatible test nodes, bytes counted.

mod support;

use loadmaster::deliver::{self, NodeResult, Source};
use loadmaster::engine::{Engine, EngineKind};
use serde_json::Value;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use support::{
    KillNodeMidStream, Layer, NodeOptions, TempDir, TestCluster, TestImage, config_on_node,
    engine_cmd, engines_under_test, load,
};

const MIB: u64 = 1 << 20;

fn assert_succeeded(kind: EngineKind, output: &Output) {
    assert!(
        output.status.success(),
        "{kind}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn node_reports(report: &Value) -> &Vec<Value> {
    report["nodes"]
        .as_array()
        .expect("nodes in the JSON report")
}

fn normalized(name: &str) -> String {
    format!("docker.io/library/{name}")
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn loads_then_skips_then_sends_only_the_changed_layer() {
    for kind in engines_under_test() {
        let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
        let image = TestImage::named(kind);
        let base = Layer {
            bytes: 24 * MIB,
            seed: 1,
        };
        image.build(&[
            base,
            Layer {
                bytes: MIB,
                seed: 2,
            },
        ]);
        let reference = normalized(&image.name);

        // Cold: everything goes.
        let (output, report) = load(&cluster, &[&image.name]);
        assert_succeeded(kind, &output);
        let node = &node_reports(&report)[0];
        assert_eq!(node["result"], "loaded", "{kind}: {report}");
        let cold_bytes = node["bytes_sent"].as_u64().unwrap();
        assert!(cold_bytes > 25 * MIB, "{kind}: cold load sent {cold_bytes}");
        assert_eq!(
            config_on_node(&cluster, cluster.control_plane(), &reference),
            image.id(),
            "{kind}"
        );

        // Unchanged: nothing goes.
        let (output, report) = load(&cluster, &[&image.name]);
        assert!(output.status.success(), "{kind}");
        let node = &node_reports(&report)[0];
        assert_eq!(node["result"], "already-present", "{kind}: {report}");
        assert_eq!(node["bytes_sent"], 0, "{kind}");

        // One small top layer changed: only it, the config and the manifest go.
        image.build(&[
            base,
            Layer {
                bytes: MIB,
                seed: 3,
            },
        ]);
        let (output, report) = load(&cluster, &[&image.name]);
        assert_succeeded(kind, &output);
        let node = &node_reports(&report)[0];
        assert_eq!(node["result"], "loaded", "{kind}: {report}");
        let delta_bytes = node["bytes_sent"].as_u64().unwrap();
        assert!(
            delta_bytes > MIB && delta_bytes < MIB + 256 * 1024,
            "{kind}: after a 1 MiB change {delta_bytes} bytes were sent"
        );
        assert!(
            node["blobs_skipped"].as_u64().unwrap() >= 1,
            "{kind}: {report}"
        );
        // The same tag now names the new image.
        assert_eq!(
            config_on_node(&cluster, cluster.control_plane(), &reference),
            image.id(),
            "{kind}"
        );
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn loads_into_every_node_of_a_two_node_cluster() {
    for kind in engines_under_test() {
        let cluster = TestCluster::start(kind, 1, &NodeOptions::default());
        let image = TestImage::named(kind);
        image.build(&[Layer {
            bytes: 8 * MIB,
            seed: 7,
        }]);
        // One node per pass: the second node is fed by a second read.
        let (output, report) = load(&cluster, &[&image.name, "--parallel", "1"]);
        assert_succeeded(kind, &output);
        let nodes = node_reports(&report);
        assert_eq!(nodes.len(), 2, "{kind}: {report}");
        for node in &cluster.nodes {
            let entry = nodes.iter().find(|n| n["node"] == node.as_str()).unwrap();
            assert_eq!(entry["result"], "loaded", "{kind}: {report}");
            assert_eq!(
                config_on_node(&cluster, node, &normalized(&image.name)),
                image.id()
            );
        }
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_missing_image_fails_and_names_the_engine() {
    for kind in engines_under_test() {
        let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
        let (output, _) = load(&cluster, &["lmt-no-such-image:1"]);
        assert_eq!(output.status.code(), Some(1), "{kind}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("is not present in"), "{kind}: {stderr}");
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_truncated_archive_fails_and_tags_nothing() {
    for kind in engines_under_test() {
        let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
        let image = TestImage::named(kind);
        image.build(&[Layer {
            bytes: 4 * MIB,
            seed: 11,
        }]);
        let dir = TempDir::new("lmt-archive");
        let full = dir.path.join("full.tar");
        let full_path = full.to_str().unwrap();
        engine_cmd(kind, &["save", "-o", full_path, &image.name]);
        let bytes = std::fs::read(&full).unwrap();
        let cut = dir.path.join("cut.tar");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();

        let (output, _) = load(&cluster, &["--archive", cut.to_str().unwrap(), &image.name]);
        assert!(
            !output.status.success(),
            "{kind}: a truncated archive must fail"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("truncated"), "{kind}: {stderr}");
        let images = cluster.exec(
            cluster.control_plane(),
            &["ctr", "-n", "k8s.io", "images", "ls", "-q"],
        );
        assert!(
            !images.contains(&image.name),
            "{kind}: nothing may be tagged, found {images}"
        );

        // The whole archive loads, here from standard input.
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_loadmaster"))
            .args(["--engine", kind.name(), "load", "--cluster", &cluster.name])
            .args(["--output", "json", "--archive", "-", &image.name])
            .stdin(std::fs::File::open(&full).unwrap())
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        assert_succeeded(kind, &output);
        assert_eq!(node_reports(&report)[0]["result"], "loaded");
        assert_eq!(
            config_on_node(&cluster, cluster.control_plane(), &normalized(&image.name)),
            image.id()
        );
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_node_killed_mid_stream_fails_by_name_while_the_other_loads() {
    for kind in engines_under_test() {
        let cluster = TestCluster::start(kind, 1, &NodeOptions::default());
        let image = TestImage::named(kind);
        image.build(&[Layer {
            bytes: 96 * MIB,
            seed: 5,
        }]);
        let victim = cluster.nodes[1].clone();
        let progress = KillNodeMidStream {
            kind,
            node: victim.clone(),
            after: 8 * MIB,
            killed: AtomicBool::new(false),
        };
        let reports = deliver::load(
            &Engine::new(kind),
            &cluster.nodes,
            Source::Engine { image: &image.name },
            &deliver::Options::default(),
            &progress,
        )
        .unwrap();
        assert!(
            progress.killed.load(Ordering::SeqCst),
            "{kind}: the node was killed"
        );
        let victim_report = reports.iter().find(|r| r.node == victim).unwrap();
        assert_eq!(
            victim_report.result,
            NodeResult::Failed,
            "{kind}: {reports:?}"
        );
        let error = victim_report.error.as_deref().unwrap();
        assert!(
            error.contains("stopped during the import") || error.contains("no longer exists"),
            "{kind}: {error}"
        );
        let survivor = reports.iter().find(|r| r.node == cluster.nodes[0]).unwrap();
        assert_eq!(survivor.result, NodeResult::Loaded, "{kind}: {reports:?}");
    }
}
