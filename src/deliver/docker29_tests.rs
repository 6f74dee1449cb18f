//! Docker 29 archives (containerd image store, kind #3795) loaded into a
//! real node: the fixtures written from moby's exporter
//! (`archive::fixtures::docker29_archive`), with gzip and zstd layers, go
//! through `load --archive`'s path into a test node's containerd, which
//! unpacks them (checking every diff ID) and names the image. Here rather
//! than in `tests/` because the fixtures are the library's test code.
//! Needs `LOADMASTER_TEST_ENGINES` and the test node image
//! (`tests/node-image/build`); without them it says it was skipped.

use super::progress::Progress;
use super::{KnownImage, NodeReport, NodeResult, Options, Source, load_counted};
use crate::archive::fixtures::{self, Image, StoredCompression, layer};
use crate::engine::{Engine, EngineKind};
use std::process::Command;

struct Quiet;

impl Progress for Quiet {
    fn begin(&self, _: &str, _: &[String], _: Option<u64>) {}
    fn inventory(&self, _: &str, _: usize, _: bool) {}
    fn streaming(&self, _: u64, _: &[(&str, u64)]) {}
    fn node_done(&self, _: &NodeReport) {}
}

/// A test node (containerd as its main process), removed when dropped.
struct Node {
    kind: EngineKind,
    name: String,
}

impl Node {
    fn start(kind: EngineKind) -> Node {
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("lmt-d29-{}-{n}-{}", std::process::id(), kind.name());
        let node = Node { kind, name };
        let started = Command::new(kind.name())
            .args([
                "run",
                "-d",
                "--name",
                &node.name,
                "--label",
                "io.loadmaster.test=1",
            ])
            .args(["--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE"])
            .args([
                "--security-opt",
                "seccomp=unconfined",
                "--security-opt",
                "apparmor=unconfined",
            ])
            .args(["--network", "none", "--tmpfs", "/var/lib/containerd"])
            .arg("localhost/loadmaster-test-node:1")
            .output()
            .unwrap();
        assert!(
            started.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&started.stderr)
        );
        for _ in 0..200 {
            if node.ctr(&["version"]).status.success() {
                return node;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("{kind}: containerd did not start in {}", node.name);
    }

    fn ctr(&self, args: &[&str]) -> std::process::Output {
        Command::new(self.kind.name())
            .args(["exec", &self.name, "ctr", "-n", "k8s.io"])
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new(self.kind.name())
            .args(["rm", "-f", &self.name])
            .output();
    }
}

fn engines() -> Vec<EngineKind> {
    let Ok(names) = std::env::var("LOADMASTER_TEST_ENGINES") else {
        eprintln!("skipped: LOADMASTER_TEST_ENGINES is unset");
        return Vec::new();
    };
    EngineKind::ALL
        .into_iter()
        .filter(|kind| names.split(',').any(|n| n.trim() == kind.name()))
        .collect()
}

#[test]
fn docker_29_archives_load_into_a_node_which_unpacks_them() {
    for kind in engines() {
        let node = Node::start(kind);
        let engine = Engine::new(kind);
        for (n, compression) in [StoredCompression::Gzip, StoredCompression::Zstd]
            .into_iter()
            .enumerate()
        {
            let tag = format!("d29-{n}:1");
            let image = Image::new(&[&tag], vec![layer(40 + n as u8, 5000), layer(50, 300_000)]);
            let bytes = fixtures::docker29_archive(&image, compression);
            let source = Source::Archive {
                reader: Box::new(std::io::Cursor::new(bytes)),
                label: format!("docker29-{compression:?}.tar"),
                image: Some(&tag),
                known: None::<KnownImage>,
                platform: None,
            };
            let nodes = [node.name.clone()];
            let done = load_counted(&engine, &nodes, source, &Options::default(), &Quiet)
                .unwrap_or_else(|e| panic!("{kind} {compression:?}: {e}"));
            let [report] = &done.reports[..] else {
                panic!("{:?}", done.reports)
            };
            assert_eq!(
                report.result,
                NodeResult::Loaded,
                "{kind} {compression:?}: {report:?}"
            );
            let reference = format!("docker.io/library/{tag}");
            assert_eq!(report.reference, reference);
            // Unpacked: containerd read every layer and matched its diff ID.
            let snapshot = node.ctr(&["images", "check", &format!("name=={reference}")]);
            let check = String::from_utf8_lossy(&snapshot.stdout);
            assert!(
                check.contains("complete"),
                "{kind} {compression:?}: {check}"
            );
            let usage = node.ctr(&["snapshots", "ls"]);
            let snapshots = String::from_utf8_lossy(&usage.stdout);
            assert!(
                snapshots.lines().count() > 1,
                "{kind} {compression:?}: the layers were unpacked: {snapshots}"
            );
        }
    }
}

#[test]
fn a_platform_the_archive_lacks_fails_and_tags_nothing() {
    for kind in engines() {
        let node = Node::start(kind);
        let image = Image::new(&["d29-arm:1"], vec![layer(60, 4000)]);
        let bytes = fixtures::docker29_archive(&image, StoredCompression::Gzip);
        let source = Source::Archive {
            reader: Box::new(std::io::Cursor::new(bytes)),
            label: "docker29.tar".into(),
            image: Some("d29-arm:1"),
            known: None,
            platform: Some("linux/arm64"),
        };
        let nodes = [node.name.clone()];
        let error = load_counted(
            &Engine::new(kind),
            &nodes,
            source,
            &Options::default(),
            &Quiet,
        )
        .err()
        .unwrap_or_else(|| panic!("{kind}: loading an absent platform succeeded"))
        .to_string();
        assert!(
            error.contains("linux/arm64") && error.contains("linux/amd64"),
            "{kind}: the error names the platform asked for and those held: {error}"
        );
        let listed = node.ctr(&["images", "ls", "-q"]);
        assert_eq!(
            String::from_utf8_lossy(&listed.stdout).trim(),
            "",
            "{kind}: nothing tagged"
        );
    }
}
