//! `loadmaster load` end to end: real engines, real containerd in
//! kind-compatible test nodes, bytes counted.

mod support;

use loadmaster::deliver::{self, NodeResult, Source};
use loadmaster::engine::Engine;
use serde_json::Value;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use support::{
    KillNodeMidStream, Layer, NodeOptions, TempDir, TestCluster, TestImage, config_on_node,
    engine_cmd, engines_under_test, load, node_targets,
};

const MIB: u64 = 1 << 20;

fn assert_succeeded(target: impl std::fmt::Display, output: &Output) {
    assert!(
        output.status.success(),
        "{target}: {}",
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
    for target in node_targets() {
        let kind = target.kind;
        let cluster = TestCluster::start(kind, 0, &target.nodes());
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
        assert_succeeded(target, &output);
        let node = &node_reports(&report)[0];
        assert_eq!(node["result"], "loaded", "{target}: {report}");
        let cold_bytes = node["bytes_sent"].as_u64().unwrap();
        assert!(
            cold_bytes > 25 * MIB,
            "{target}: cold load sent {cold_bytes}"
        );
        assert_eq!(
            config_on_node(&cluster, cluster.control_plane(), &reference),
            image.id(),
            "{target}"
        );

        // Unchanged: nothing goes.
        let (output, report) = load(&cluster, &[&image.name]);
        assert!(output.status.success(), "{target}");
        let node = &node_reports(&report)[0];
        assert_eq!(node["result"], "already-present", "{target}: {report}");
        assert_eq!(node["bytes_sent"], 0, "{target}");

        // One small top layer changed: only it, the config and the manifest go.
        image.build(&[
            base,
            Layer {
                bytes: MIB,
                seed: 3,
            },
        ]);
        let (output, report) = load(&cluster, &[&image.name]);
        assert_succeeded(target, &output);
        let node = &node_reports(&report)[0];
        assert_eq!(node["result"], "loaded", "{target}: {report}");
        let delta_bytes = node["bytes_sent"].as_u64().unwrap();
        assert!(
            delta_bytes > MIB && delta_bytes < MIB + 256 * 1024,
            "{target}: after a 1 MiB change {delta_bytes} bytes were sent"
        );
        assert!(
            node["blobs_skipped"].as_u64().unwrap() >= 1,
            "{target}: {report}"
        );
        // The same tag now names the new image.
        assert_eq!(
            config_on_node(&cluster, cluster.control_plane(), &reference),
            image.id(),
            "{target}"
        );
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn loads_into_every_node_of_a_two_node_cluster() {
    for target in node_targets() {
        let kind = target.kind;
        let cluster = TestCluster::start(kind, 1, &target.nodes());
        let image = TestImage::named(kind);
        image.build(&[Layer {
            bytes: 8 * MIB,
            seed: 7,
        }]);
        // One node per pass: the second node is fed by a second read.
        let (output, report) = load(&cluster, &[&image.name, "--parallel", "1"]);
        assert_succeeded(target, &output);
        let nodes = node_reports(&report);
        assert_eq!(nodes.len(), 2, "{target}: {report}");
        for node in &cluster.nodes {
            let entry = nodes.iter().find(|n| n["node"] == node.as_str()).unwrap();
            assert_eq!(entry["result"], "loaded", "{target}: {report}");
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
        // A plain user error: no triage after it that finds no failure.
        assert!(!stderr.contains("no failure found"), "{kind}: {stderr}");
        assert!(!stderr.contains("Triage"), "{kind}: {stderr}");
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_truncated_archive_fails_and_tags_nothing() {
    for target in node_targets() {
        let kind = target.kind;
        let cluster = TestCluster::start(kind, 0, &target.nodes());
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
            "{target}: a truncated archive must fail"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("truncated"), "{target}: {stderr}");
        let images = cluster.exec(
            cluster.control_plane(),
            &["ctr", "-n", "k8s.io", "images", "ls", "-q"],
        );
        assert!(
            !images.contains(&image.name),
            "{target}: nothing may be tagged, found {images}"
        );

        // The whole archive loads, here from standard input.
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_loadmaster"))
            .args(["--engine", kind.name(), "load", "--cluster", &cluster.name])
            .args(["--output", "json", "--archive", "-", &image.name])
            .stdin(std::fs::File::open(&full).unwrap())
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        assert_succeeded(target, &output);
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
    for target in node_targets() {
        let kind = target.kind;
        let cluster = TestCluster::start(kind, 1, &target.nodes());
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
            "{target}: the node was killed"
        );
        let victim_report = reports.iter().find(|r| r.node == victim).unwrap();
        assert_eq!(
            victim_report.result,
            NodeResult::Failed,
            "{target}: {reports:?}"
        );
        let error = victim_report.error.as_deref().unwrap();
        assert!(
            error.contains("stopped during the import") || error.contains("no longer exists"),
            "{target}: {error}"
        );
        let survivor = reports.iter().find(|r| r.node == cluster.nodes[0]).unwrap();
        assert_eq!(survivor.result, NodeResult::Loaded, "{target}: {reports:?}");
    }
}

/// The image records on a node (`ctr images ls -q`).
fn images_on_node(cluster: &TestCluster, node: &str) -> Vec<String> {
    cluster
        .exec(node, &["ctr", "-n", "k8s.io", "images", "ls", "-q"])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_native_snapshotter_node_loads_verifies_and_skips_the_reload() {
    for target in node_targets() {
        let kind = target.kind;
        let options = NodeOptions {
            snapshotter: Some("native"),
            ..target.nodes()
        };
        let cluster = TestCluster::start(kind, 0, &options);
        let image = TestImage::named(kind);
        image.build(&[Layer {
            bytes: 4 * MIB,
            seed: 21,
        }]);
        let reference = normalized(&image.name);
        let (output, report) = load(&cluster, &[&image.name]);
        assert_succeeded(target, &output);
        assert_eq!(
            node_reports(&report)[0]["result"],
            "loaded",
            "{target}: {report}"
        );
        // Unpacked with the node's snapshotter, not containerd's default.
        let check = cluster.exec(
            cluster.control_plane(),
            &[
                "ctr",
                "-n",
                "k8s.io",
                "images",
                "check",
                "--snapshotter",
                "native",
                &format!("name=={reference}"),
            ],
        );
        assert!(
            check
                .lines()
                .nth(1)
                .is_some_and(|row| row.trim_end().ends_with("true")),
            "{target}: not unpacked with native: {check}"
        );
        let (output, report) = load(&cluster, &[&image.name]);
        assert_succeeded(target, &output);
        let node = &node_reports(&report)[0];
        assert_eq!(node["result"], "already-present", "{target}: {report}");
        assert_eq!(node["bytes_sent"], 0, "{target}");
    }
}

#[test]
fn a_new_image_under_the_same_tag_replaces_the_old_and_leaves_no_import_records() {
    for target in node_targets() {
        let kind = target.kind;
        let cluster = TestCluster::start(kind, 0, &target.nodes());
        let image = TestImage::named(kind);
        image.build(&[Layer {
            bytes: 2 * MIB,
            seed: 31,
        }]);
        let reference = normalized(&image.name);
        let (output, _) = load(&cluster, &[&image.name]);
        assert_succeeded(target, &output);
        // Another image (no layer in common) under the same name.
        image.build(&[Layer {
            bytes: 3 * MIB,
            seed: 32,
        }]);
        let (output, report) = load(&cluster, &[&image.name]);
        assert_succeeded(target, &output);
        assert_eq!(
            node_reports(&report)[0]["result"],
            "loaded",
            "{target}: {report}"
        );
        assert_eq!(
            config_on_node(&cluster, cluster.control_plane(), &reference),
            image.id(),
            "{target}"
        );
        // The name and the CRI plugin's `sha256:<image ID>` records; no
        // `import-DATE@sha256:` record (`--digests`, which containerd 2.3
        // adds on every import), no rollback record.
        let records = images_on_node(&cluster, cluster.control_plane());
        assert!(records.contains(&reference), "{target}: {records:?}");
        assert!(
            records
                .iter()
                .all(|r| *r == reference || r.starts_with("sha256:")),
            "{target}: {records:?}"
        );
    }
}

/// An OCI layout archive of an image named `reference` whose one layer is
/// not a tar (its digests are right, so only containerd's unpack fails).
fn archive_that_does_not_unpack(path: &std::path::Path, reference: &str) {
    use loadmaster::archive::{BlobName, Digest, OCI_LAYOUT_FILE, OciLayoutWriter};
    let layer: Vec<u8> = (0..64 * 1024u32).map(|n| (n * 7919 % 251) as u8).collect();
    let layer_digest = Digest::of(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest.to_string()]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": Digest::of(&config).to_string(),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest.to_string(),
            "size": layer.len(),
        }],
    }))
    .unwrap();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": Digest::of(&manifest).to_string(),
            "size": manifest.len(),
            "annotations": {"io.containerd.image.name": reference},
        }],
    }))
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = OciLayoutWriter::new(file);
    writer.add_file("oci-layout", OCI_LAYOUT_FILE).unwrap();
    for blob in [&layer, &config, &manifest] {
        writer
            .begin_blob(BlobName::Digest(Digest::of(blob)), blob.len() as u64)
            .unwrap();
        writer.write_chunk(blob).unwrap();
        writer.end_blob().unwrap();
    }
    writer.add_file("index.json", &index).unwrap();
    writer.finish().unwrap();
}

#[test]
fn an_import_that_fails_to_unpack_tags_nothing_and_keeps_the_previous_image() {
    for target in node_targets() {
        let kind = target.kind;
        let cluster = TestCluster::start(kind, 0, &target.nodes());
        let node = cluster.control_plane();
        let dir = TempDir::new("lmt-bad-layer");
        let archive = dir.path.join("bad.tar");

        // A name the node does not have: it stays absent.
        let fresh = format!("{}:1", support::unique_name("lmt-bad"));
        archive_that_does_not_unpack(&archive, &normalized(&fresh));
        let before = images_on_node(&cluster, node);
        let (output, report) = load(&cluster, &["--archive", archive.to_str().unwrap(), &fresh]);
        assert!(!output.status.success(), "{target}: {report}");
        assert_eq!(
            node_reports(&report)[0]["result"],
            "failed",
            "{target}: {report}"
        );
        assert_eq!(
            images_on_node(&cluster, node),
            before,
            "{target}: a failed import left a record"
        );

        // A name the node has: it keeps pointing at what it did.
        let image = TestImage::named(kind);
        image.build(&[Layer {
            bytes: MIB,
            seed: 41,
        }]);
        let reference = normalized(&image.name);
        let (output, _) = load(&cluster, &[&image.name]);
        assert_succeeded(target, &output);
        let before = support::image_on_node(&cluster, node, &reference).expect("loaded");
        let records = images_on_node(&cluster, node);
        archive_that_does_not_unpack(&archive, &reference);
        let (output, report) = load(
            &cluster,
            &["--archive", archive.to_str().unwrap(), &image.name],
        );
        assert!(!output.status.success(), "{target}: {report}");
        assert_eq!(
            support::image_on_node(&cluster, node, &reference).as_deref(),
            Some(before.as_str()),
            "{target}: {report}"
        );
        assert_eq!(images_on_node(&cluster, node), records, "{target}");
    }
}

#[test]
fn a_node_whose_containerd_is_still_starting_is_waited_for() {
    for target in node_targets() {
        let kind = target.kind;
        let options = NodeOptions {
            containerd_delay_secs: Some(3),
            ..target.nodes()
        };
        let cluster = TestCluster::start(kind, 0, &options);
        let image = TestImage::named(kind);
        image.build(&[Layer {
            bytes: MIB,
            seed: 51,
        }]);
        let (output, report) = load(&cluster, &[&image.name]);
        assert_succeeded(target, &output);
        assert_eq!(
            node_reports(&report)[0]["result"],
            "loaded",
            "{target}: {report}"
        );
    }
}
