//! `load --archive FILE`: without an IMAGE, every image the archive names
//! is loaded (as `kind load image-archive` does); with IMAGEs, only those.
//! The archives are real `docker save` / `podman save -m` output of two
//! images. Skipped, and says so, without `LOADMASTER_TEST_ENGINES`.

mod support;

use loadmaster::engine::EngineKind;
use support::{
    Layer, NodeOptions, TempDir, TestCluster, TestImage, engine_cmd, engines_under_test,
    image_on_node,
};

const MIB: u64 = 1 << 20;

/// Two images sharing a base layer, saved into one archive.
fn two_image_archive(kind: EngineKind, dir: &TempDir) -> (TestImage, TestImage, String) {
    let base = Layer {
        bytes: 2 * MIB,
        seed: 11,
    };
    let first = TestImage::named(kind);
    first.build(&[
        base,
        Layer {
            bytes: MIB,
            seed: 12,
        },
    ]);
    let second = TestImage::named(kind);
    second.build(&[
        base,
        Layer {
            bytes: MIB,
            seed: 13,
        },
    ]);
    let path = dir.path.join("two.tar").display().to_string();
    let mut args = vec!["save", "-o", &path];
    if kind == EngineKind::Podman {
        // podman writes one image unless told otherwise.
        args.push("-m");
    }
    args.extend([first.name.as_str(), second.name.as_str()]);
    engine_cmd(kind, &args);
    (first, second, path)
}

fn on_node(cluster: &TestCluster, image: &TestImage) -> bool {
    let reference = format!("docker.io/library/{}", image.name);
    image_on_node(cluster, cluster.control_plane(), &reference).is_some()
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn an_archive_without_an_image_named_loads_every_image_it_names() {
    for kind in engines_under_test() {
        let dir = TempDir::new("lmt-archive");
        let (first, second, path) = two_image_archive(kind, &dir);
        let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
        let (output, report) = support::load(&cluster, &["--archive", &path]);
        assert!(
            output.status.success(),
            "{kind}: {}\n{report}",
            String::from_utf8_lossy(&output.stderr)
        );
        let images = report["images"].as_array().unwrap();
        assert_eq!(images.len(), 2, "{kind}: {report}");
        // Under the names the archive gives them (podman's `localhost/`).
        for image in [&first, &second] {
            let name = match kind {
                EngineKind::Docker => format!("docker.io/library/{}", image.name),
                EngineKind::Podman => format!("localhost/{}", image.name),
            };
            assert!(
                image_on_node(&cluster, cluster.control_plane(), &name).is_some(),
                "{kind}: {name} on the node: {report}"
            );
        }
        // The archive is a file on this machine: nothing was read from the
        // engine. The shared base layer went to the node once.
        for image in images {
            assert_eq!(image["connection"]["from_engine"], 0, "{kind}: {image}");
        }
        let sent: u64 = images
            .iter()
            .map(|i| i["connection"]["to_nodes"].as_u64().unwrap())
            .sum();
        // docker 20.10 writes the legacy layout (`<v1 id>/layer.tar`),
        // where a layer of the other image cannot be told apart before its
        // bytes stream: each read also sends the other's 1 MiB top layer.
        let layers = match kind {
            EngineKind::Docker => 6 * MIB,
            EngineKind::Podman => 4 * MIB,
        };
        assert!(
            (layers..layers + MIB).contains(&sent),
            "{kind}: sent {sent} for {layers} bytes of layers: {report}"
        );
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn an_archive_with_an_image_named_loads_only_that_one() {
    for kind in engines_under_test() {
        let dir = TempDir::new("lmt-archive");
        let (first, second, path) = two_image_archive(kind, &dir);
        let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
        let (output, report) = support::load(&cluster, &["--archive", &path, &second.name]);
        assert!(
            output.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            report["images"].as_array().unwrap().len(),
            1,
            "{kind}: {report}"
        );
        assert!(on_node(&cluster, &second), "{kind}: {}", second.name);
        assert!(
            !on_node(&cluster, &first),
            "{kind}: {} was not asked for",
            first.name
        );

        // Standard input is read once: one image at a time.
        let (output, _) = support::load(&cluster, &["--archive", "-", &first.name, &second.name]);
        assert_eq!(output.status.code(), Some(2), "{kind}: bad input");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("standard input"), "{kind}: {stderr}");
    }
}

#[test]
fn a_platform_that_is_not_os_arch_is_bad_input() {
    let output = support::loadmaster(&[
        "--engine",
        "docker",
        "load",
        "--archive",
        "any.tar",
        "--platform",
        "linux",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("OS/ARCH"), "{stderr}");
}
