//! `loadmaster load` end to end: real engines, real containerd in
//! kind-compatible test nodes, bytes counted.

mod support;

use loadmaster::deliver::{self, NodeResult, Source};
use loadmaster::engine::{Engine, EngineKind};
use serde_json::Value;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use support::{
    Containerd, KillNodeMidStream, Layer, NodeOptions, TempDir, TestCluster, TestImage,
    config_on_node, engine_cmd, engines_under_test, load, node_targets,
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
        let output = support::loadmaster_command(&["--engine", kind.name(), "load"])
            .args(["--cluster", &cluster.name])
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

/// Loads `image` into every node of `cluster`, killing `victim` (or only
/// its containerd) once it was sent 8 MiB.
fn load_killing(
    cluster: &TestCluster,
    image: &TestImage,
    victim: &str,
    containerd_only: bool,
) -> Vec<deliver::NodeReport> {
    let progress = KillNodeMidStream {
        kind: cluster.kind,
        node: victim.to_string(),
        after: 8 * MIB,
        killed: AtomicBool::new(false),
        containerd_only,
    };
    let reports = deliver::load(
        &Engine::new(cluster.kind),
        &cluster.nodes,
        Source::Engine { image: &image.name },
        &deliver::Options::default(),
        &progress,
    )
    .unwrap();
    assert!(
        progress.killed.load(Ordering::SeqCst),
        "{}: {victim} was not killed",
        cluster.target()
    );
    reports
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
        let reports = load_killing(&cluster, &image, &victim, false);
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
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_native_snapshotter_node_loads_verifies_and_skips_the_reload() {
    loads_verifies_and_skips_the_reload_on("native");
}

/// kind's rootless snapshotter, a proxy plugin over FUSE: it runs here
/// (rootful engines, /dev/fuse), so the node is kind's as it is on a
/// rootless engine.
#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_fuse_overlayfs_snapshotter_node_loads_verifies_and_skips_the_reload() {
    loads_verifies_and_skips_the_reload_on(support::FUSE_OVERLAYFS);
}

/// On nodes whose CRI snapshotter is `snapshotter`: a load unpacks with it
/// (not with containerd's default) and verifies, and the reload sends
/// nothing.
fn loads_verifies_and_skips_the_reload_on(snapshotter: &'static str) {
    for target in node_targets() {
        let kind = target.kind;
        let options = NodeOptions {
            snapshotter: Some(snapshotter),
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
        assert!(
            support::unpacked_image_on_node(
                &cluster,
                cluster.control_plane(),
                &reference,
                snapshotter
            )
            .is_some(),
            "{target}: not unpacked with {snapshotter}"
        );
        let (output, report) = load(&cluster, &[&image.name]);
        assert_succeeded(target, &output);
        let node = &node_reports(&report)[0];
        assert_eq!(node["result"], "already-present", "{target}: {report}");
        assert_eq!(node["bytes_sent"], 0, "{target}");
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
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
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
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
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
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

/// Puts `image` on the cluster's node the way a CRI pull leaves it with
/// kind's `discard_unpacked_layers = true`: unpacked, its layer blobs
/// collected. On 2.x, containerd's own `ctr images import --local
/// --discard-unpacked-layers` (the garbage-collection labels of the CRI
/// plugin's local pull); ctr 1.6 has no such flag, so its import's manifest
/// loses the layer references (`containerd.io/gc.ref.content.l.N`) as the
/// 1.6 CRI pull writes it. A removal with `--sync` runs the collection.
fn import_discarding_layers(cluster: &TestCluster, image: &TestImage, layers: usize) {
    use std::process::{Command, Stdio};
    let node = cluster.control_plane();
    let kind = cluster.kind.name();
    let mut import = vec![
        "exec", "-i", node, "ctr", "-n", "k8s.io", "images", "import",
    ];
    if cluster.containerd != Containerd::V1_6 {
        import.extend(["--local", "--discard-unpacked-layers"]);
    }
    import.extend(["--all-platforms", "--snapshotter=overlayfs", "-"]);
    let mut save = Command::new(kind)
        .args(["save", &image.name])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let imported = Command::new(kind)
        .args(&import)
        .stdin(save.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(save.wait().unwrap().success());
    assert!(
        imported.status.success(),
        "{}: {}",
        cluster.target(),
        String::from_utf8_lossy(&imported.stderr)
    );
    let reference = normalized(&image.name);
    if cluster.kind == EngineKind::Podman {
        // podman's archive names the image `localhost/NAME`; a load names
        // it as Kubernetes resolves it.
        let saved = format!("localhost/{}", image.name);
        let ctr = ["ctr", "-n", "k8s.io", "images"];
        cluster.exec(node, &[&ctr[..], &["tag", &saved, &reference]].concat());
        cluster.exec(node, &[&ctr[..], &["rm", &saved]].concat());
    }
    if cluster.containerd == Containerd::V1_6 {
        let manifest = support::unpacked_image_on_node(cluster, node, &reference, "overlayfs")
            .expect("imported");
        let mut label = vec!["ctr", "-n", "k8s.io", "content", "label", &manifest];
        let refs: Vec<String> = (0..layers)
            .map(|n| format!("containerd.io/gc.ref.content.l.{n}="))
            .collect();
        label.extend(refs.iter().map(String::as_str));
        cluster.exec(node, &label);
    }
    cluster.exec(
        node,
        &[
            "ctr", "-n", "k8s.io", "images", "tag", &reference, "lmt-gc:1",
        ],
    );
    cluster.exec(
        node,
        &["ctr", "-n", "k8s.io", "images", "rm", "--sync", "lmt-gc:1"],
    );
}

/// The image's layer digests (diff IDs: `save` archives carry them
/// uncompressed), bottom first.
fn diff_ids(image: &TestImage) -> Vec<String> {
    let listed = engine_cmd(
        image.kind,
        &[
            "image",
            "inspect",
            "--format",
            "{{range .RootFS.Layers}}{{println .}}{{end}}",
            &image.name,
        ],
    );
    listed.lines().map(str::to_string).collect()
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn layers_unpacked_with_their_blobs_discarded_are_used_not_resent() {
    for target in node_targets() {
        let kind = target.kind;
        let cluster = TestCluster::start(kind, 0, &target.nodes());
        let node = cluster.control_plane();
        let (base, first_top) = (
            Layer {
                bytes: 8 * MIB,
                seed: 61,
            },
            Layer {
                bytes: MIB,
                seed: 62,
            },
        );
        let image = TestImage::named(kind);
        image.build(&[base, first_top]);
        let reference = normalized(&image.name);

        // Unpacked, every layer blob discarded: `images check` calls it
        // incomplete, and it runs.
        import_discarding_layers(&cluster, &image, 2);
        let content = support::content_on_node(&cluster, node);
        let layers = diff_ids(&image);
        assert!(
            layers.iter().all(|layer| !content.contains(layer)),
            "{target}: the layer blobs are still there: {content:?}"
        );
        let before = support::unpacked_image_on_node(&cluster, node, &reference, "overlayfs");
        assert!(before.is_some(), "{target}: not unpacked");
        assert!(
            support::image_on_node(&cluster, node, &reference).is_none(),
            "{target}: complete although its layers are gone"
        );

        // The same image again: the node can run what it has; nothing goes.
        let (output, report) = load(&cluster, &[&image.name]);
        assert_succeeded(target, &output);
        let entry = &node_reports(&report)[0];
        assert_eq!(entry["result"], "already-present", "{target}: {report}");
        assert_eq!(entry["bytes_sent"], 0, "{target}");

        // A new top layer on the same base: the base is unpacked there, so
        // only the new layer, the config and the manifest go.
        let top = Layer {
            bytes: MIB,
            seed: 63,
        };
        image.build(&[base, top]);
        let (output, report) = load(&cluster, &[&image.name]);
        assert_succeeded(target, &output);
        let entry = &node_reports(&report)[0];
        assert_eq!(entry["result"], "loaded", "{target}: {report}");
        let sent = entry["bytes_sent"].as_u64().unwrap();
        assert!(
            (MIB..MIB + 64 * 1024).contains(&sent),
            "{target}: {sent} bytes sent for a 1 MiB change on a discarded base"
        );
        assert!(
            !support::content_on_node(&cluster, node).contains(&layers[0]),
            "{target}: the base blob was sent"
        );
        let manifest = support::unpacked_image_on_node(&cluster, node, &reference, "overlayfs")
            .unwrap_or_else(|| panic!("{target}: the new image is not unpacked"));
        assert_ne!(Some(&manifest), before.as_ref(), "{target}");
        let json = cluster.exec(node, &["ctr", "-n", "k8s.io", "content", "get", &manifest]);
        let manifest_json: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(manifest_json["config"]["digest"], image.id(), "{target}");

        // Its root filesystem holds both files as built: the base from the
        // old snapshot, the top from the layer sent.
        let sums = cluster.exec(
            node,
            &[
                "sh",
                "-c",
                "mkdir -p /lmt-rootfs && ctr -n k8s.io images mount --snapshotter overlayfs \"$1\" /lmt-rootfs >/dev/null && sha256sum /lmt-rootfs/layer0.bin /lmt-rootfs/layer1.bin; ctr -n k8s.io images unmount /lmt-rootfs >/dev/null",
                "sh",
                &reference,
            ],
        );
        let expected = format!(
            "{}  /lmt-rootfs/layer0.bin\n{}  /lmt-rootfs/layer1.bin\n",
            base.file_sha256(),
            top.file_sha256()
        );
        assert_eq!(sums, expected, "{target}");
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn containerd_killed_mid_import_is_named_and_tags_nothing() {
    for target in node_targets() {
        let kind = target.kind;
        // containerd restarts, as kind's systemd restarts it: the node
        // lives on and only its import dies.
        let options = NodeOptions {
            supervised: true,
            ..target.nodes()
        };
        let cluster = TestCluster::start(kind, 0, &options);
        let node = cluster.control_plane().to_string();
        let image = TestImage::named(kind);
        image.build(&[Layer {
            bytes: 64 * MIB,
            seed: 71,
        }]);
        let reports = load_killing(&cluster, &image, &node, true);
        let report = &reports[0];
        assert_eq!(report.result, NodeResult::Failed, "{target}: {reports:?}");
        let error = report.error.as_deref().unwrap();
        // ctr's words are kept, and what they mean is said.
        assert!(
            error.contains("ctr lost its connection to the node's containerd during the import"),
            "{target}: {error}"
        );
        if target.containerd != Containerd::V1_6 {
            // The Transfer service's client: the seed's own line, or, when
            // containerd died before the progress stream ended, the reset
            // of its connection alone.
            assert!(
                error.contains("progress stream failed to recv")
                    || error.contains("error reading from server: read unix"),
                "{target}: {error}"
            );
        }
        // Nothing tagged, once containerd is back.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let records = loop {
            let listed = support::engine_output(
                kind,
                &["exec", &node, "ctr", "-n", "k8s.io", "images", "ls", "-q"],
            );
            if listed.status.success() {
                break String::from_utf8_lossy(&listed.stdout).into_owned();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{target}: containerd did not come back"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
        assert!(
            !records.contains(&image.name),
            "{target}: tagged after a failed import: {records}"
        );
    }
}

/// The files under an image cache's blob directory: (digest hex, size).
fn cached_blobs(cache: &TempDir) -> Vec<(String, u64)> {
    let dir = cache.path.join("blobs/sha256");
    let mut blobs: Vec<(String, u64)> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap())
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    (name, e.metadata().unwrap().len())
                })
                .collect()
        })
        .unwrap_or_default();
    blobs.sort_by_key(|(_, size)| std::cmp::Reverse(*size));
    blobs
}

/// What `load --output json` said of the one image it loaded: its path and
/// the bytes read from the engine.
fn image_entry(report: &Value) -> (String, u64, String) {
    let image = &report["images"][0];
    (
        image["path"].as_str().unwrap_or_default().to_string(),
        image["connection"]["from_engine"].as_u64().unwrap(),
        image["reason"].as_str().unwrap_or_default().to_string(),
    )
}

/// The image cache across cluster re-creation: the first load into fresh
/// nodes reads the engine and keeps the image, a load into another fresh
/// cluster reads the engine not at all, a corrupt entry is rejected and the
/// image read from the engine again, and a cache kept small drops the least
/// recently used image.
#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn the_image_cache_serves_fresh_nodes_rejects_corrupt_entries_and_evicts() {
    for kind in engines_under_test() {
        let cache = TempDir::new("lmt-image-cache");
        let dir = cache.path.to_str().unwrap().to_string();
        let image = TestImage::named(kind);
        image.build(&[
            Layer {
                bytes: 8 * MIB,
                seed: 11,
            },
            Layer {
                bytes: MIB,
                seed: 12,
            },
        ]);
        let reference = normalized(&image.name);
        let load_cached = |cluster: &TestCluster, name: &str, max: &str| {
            let (output, report) = load(
                cluster,
                &[name, "--image-cache", &dir, "--image-cache-max-size", max],
            );
            assert_succeeded(kind, &output);
            let node = &node_reports(&report)[0];
            assert_eq!(node["result"], "loaded", "{kind}: {report}");
            image_entry(&report)
        };

        // A miss: read from the engine, and kept.
        let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
        let (path, from_engine, reason) = load_cached(&cluster, &image.name, "1GiB");
        assert_eq!(path, "save", "{kind}: {reason}");
        assert!(from_engine > 9 * MIB, "{kind}: {from_engine}");
        let kept = cached_blobs(&cache);
        assert!(
            kept.iter().map(|(_, size)| size).sum::<u64>() > 9 * MIB,
            "{kind}: {kept:?}"
        );
        drop(cluster);

        // A hit in a fresh cluster: the engine is not read.
        let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
        let (path, from_engine, reason) = load_cached(&cluster, &image.name, "1GiB");
        assert_eq!(
            (path.as_str(), from_engine),
            ("cache", 0),
            "{kind}: {reason}"
        );
        assert_eq!(
            config_on_node(&cluster, cluster.control_plane(), &reference),
            image.id(),
            "{kind}"
        );
        drop(cluster);

        // A corrupt layer of the same size: rejected, read from the engine,
        // kept again whole.
        let (largest, _) = &cached_blobs(&cache)[0];
        let file = cache.path.join("blobs/sha256").join(largest);
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[4096] ^= 0xff;
        std::fs::write(&file, &bytes).unwrap();
        let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
        let (path, from_engine, reason) = load_cached(&cluster, &image.name, "1GiB");
        assert_eq!(path, "save", "{kind}: {reason}");
        assert!(reason.contains("rejected"), "{kind}: {reason}");
        assert!(from_engine > 9 * MIB, "{kind}: {from_engine}");
        assert_eq!(
            config_on_node(&cluster, cluster.control_plane(), &reference),
            image.id(),
            "{kind}"
        );
        let rewritten = std::fs::read(&file).unwrap();
        assert_eq!(
            loadmaster::archive::Digest::of(&rewritten).hex(),
            *largest,
            "{kind}: the layer is kept again, whole"
        );

        // Eviction: a second image into a cache that holds one of them.
        let other = TestImage::named(kind);
        other.build(&[Layer {
            bytes: 8 * MIB,
            seed: 13,
        }]);
        let (path, _, reason) = load_cached(&cluster, &other.name, "12MiB");
        assert_eq!(path, "save", "{kind}: {reason}");
        let total: u64 = cached_blobs(&cache).iter().map(|(_, size)| size).sum();
        assert!(total <= 12 * MIB, "{kind}: {total} bytes kept");
        drop(cluster);
        let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
        let (path, from_engine, reason) = load_cached(&cluster, &other.name, "12MiB");
        assert_eq!(
            (path.as_str(), from_engine),
            ("cache", 0),
            "{kind}: the newer one stays: {reason}"
        );
        let (path, from_engine, reason) = load_cached(&cluster, &image.name, "12MiB");
        assert_eq!(path, "save", "{kind}: the older one went: {reason}");
        assert!(from_engine > 9 * MIB, "{kind}: {from_engine}");
    }
}

/// A changed image into fresh clusters with the image cache: podman's push
/// asks for the layers the cache kept (uncompressed, by diff ID), so only
/// the changed top layer is read from the engine; docker's classic store
/// asks only for compressed blobs it pushed before, so it takes save.
/// Either way a third fresh cluster reads nothing from the engine.
#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_changed_image_reads_only_its_changed_layers_with_the_image_cache() {
    for kind in engines_under_test() {
        let fresh = || TestCluster::start(kind, 0, &NodeOptions::default());
        let image = TestImage::named(kind);
        support::image_cache::a_changed_image_reads_only_its_change(
            &fresh,
            &image,
            kind == EngineKind::Podman,
        );
    }
}

/// A cache hit into a node that cannot take the image (its containerd's
/// store a 32 MiB tmpfs, the image 48 MiB): the node's failure is the
/// load's, reported as the node's, and the cache's entry stays whole: the
/// next fresh node still gets the image from it, the engine unread.
#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_node_that_fails_a_load_from_the_cache_leaves_the_entry_in_place() {
    for kind in engines_under_test() {
        let cache = TempDir::new("lmt-image-cache");
        let dir = cache.path.to_str().unwrap().to_string();
        let image = TestImage::named(kind);
        image.build(&[Layer {
            bytes: 48 * MIB,
            seed: 14,
        }]);
        let args = [
            image.name.as_str(),
            "--image-cache",
            &dir,
            "--image-cache-max-size",
            "1GiB",
        ];
        let from_the_cache = |report: &Value| {
            let (path, from_engine, reason) = image_entry(report);
            assert_eq!(
                (path.as_str(), from_engine),
                ("cache", 0),
                "{kind}: {reason}"
            );
            assert!(!reason.contains("rejected"), "{kind}: {reason}");
        };
        let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
        let (output, _) = load(&cluster, &args);
        assert_succeeded(kind, &output);
        drop(cluster);
        let kept = cached_blobs(&cache);
        assert!(!kept.is_empty(), "{kind}: the miss kept the image");

        let full = TestCluster::start(
            kind,
            0,
            &NodeOptions {
                containerd_tmpfs: Some("32m".into()),
                ..NodeOptions::default()
            },
        );
        let (output, report) = load(&full, &args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{kind}: {stderr}");
        let node = &node_reports(&report)[0];
        assert_eq!(node["result"], "failed", "{kind}: {report}");
        assert_eq!(node["node"], full.control_plane(), "{kind}: {report}");
        assert!(
            !node["error"].as_str().unwrap_or_default().is_empty(),
            "{kind}: {report}"
        );
        from_the_cache(&report);
        assert_eq!(cached_blobs(&cache), kept, "{kind}: the entry's files stay");
        drop(full);

        let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
        let (output, report) = load(&cluster, &args);
        assert_succeeded(kind, &output);
        from_the_cache(&report);
    }
}
