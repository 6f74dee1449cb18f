//! The push path end to end (real engines pushing to loadmaster's loopback
//! registry, real containerd in test nodes), and the registry protocol
//! driven by hand over 127.0.0.1.

mod support;

use loadmaster::archive::Digest;
use loadmaster::deliver::progress::Silent;
use loadmaster::deliver::{self, DeliveryPath, ImageLoad, NodeResult, PathChoice};
use loadmaster::engine::{Engine, EngineKind};
use loadmaster::registry::{BlobUpload, Registry, RequestRecord, Storage};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use support::{
    Layer, TestCluster, TestImage, config_on_node, engine_cmd, engine_output, loadmaster,
    node_targets,
};

const MIB: u64 = 1 << 20;

/// A base layer big enough to be streamed into the nodes (not held in
/// memory), and a 1 MiB top layer.
fn layers(top_seed: u64) -> [Layer; 2] {
    [
        Layer {
            bytes: 24 * MIB,
            seed: 11,
        },
        Layer {
            bytes: MIB,
            seed: top_seed,
        },
    ]
}

fn push_load(cluster: &TestCluster, image: &str) -> ImageLoad {
    let kind = cluster.target();
    let loaded = deliver::load_image(
        &Engine::new(cluster.kind),
        &cluster.name,
        &cluster.nodes,
        image,
        PathChoice::Push,
        &deliver::Options::default(),
        &Silent,
    )
    .unwrap_or_else(|e| panic!("{kind}: push load of {image}: {e}"));
    assert_eq!(loaded.path, DeliveryPath::Push);
    for report in &loaded.reports {
        assert_eq!(report.result, NodeResult::Loaded, "{kind}: {report:?}");
        assert_eq!(report.path, DeliveryPath::Push);
    }
    loaded
}

/// The blobs stored by the registry in a load, by size.
fn uploads(loaded: &ImageLoad) -> Vec<u64> {
    loaded
        .registry_requests
        .iter()
        .filter(|r| r.finished_upload())
        .map(|r| upload_size(&loaded.registry_requests, r))
        .collect()
}

/// The bytes of an upload: its PATCHes and the final PUT share its path.
fn upload_size(requests: &[RequestRecord], done: &RequestRecord) -> u64 {
    requests
        .iter()
        .filter(|r| r.path == done.path)
        .map(|r| r.bytes)
        .sum()
}

/// The config digest `reference` names on `node`.
/// A second tag of an image, removed when dropped.
struct Alias {
    kind: EngineKind,
    name: String,
}

impl Drop for Alias {
    fn drop(&mut self) {
        let _ = engine_output(self.kind, &["rmi", &self.name]);
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn push_loads_then_uploads_nothing_unchanged_then_only_the_changed_layer() {
    for target in node_targets() {
        let cluster = TestCluster::start(target.kind, 1, &target.nodes());
        let image = TestImage::named(target.kind);
        // Messages name the engine and the nodes' containerd.
        let kind = target;
        image.build(&layers(1));

        // Cold: both layers and the config are uploaded, into both nodes.
        let cold = push_load(&cluster, &image.name);
        let sizes = uploads(&cold);
        assert_eq!(sizes.len(), 3, "{kind}: {:?}", cold.registry_requests);
        for node in &cluster.nodes {
            assert_eq!(
                config_on_node(&cluster, node, &format!("docker.io/library/{}", image.name)),
                image.id(),
                "{kind}: {node}"
            );
        }
        // The GC protection is lifted once the image holds the blobs.
        let labels = cluster.exec(
            cluster.control_plane(),
            &["ctr", "-n", "k8s.io", "content", "ls"],
        );
        assert!(
            !labels.contains("containerd.io/gc.root"),
            "{kind}: {labels}"
        );

        // Unchanged, under a second name the nodes lack: the engine asks,
        // the registry answers from the nodes, nothing is uploaded.
        let alias = Alias {
            kind: target.kind,
            name: format!("{}-alias:1", image.name.split(':').next().unwrap()),
        };
        engine_cmd(target.kind, &["tag", &image.name, &alias.name]);
        let unchanged = push_load(&cluster, &alias.name);
        assert_eq!(
            uploads(&unchanged),
            Vec::<u64>::new(),
            "{kind}: {:?}",
            unchanged.registry_requests
        );
        assert!(
            unchanged
                .registry_requests
                .iter()
                .any(|r| r.method == "PUT" && r.path.contains("/manifests/")),
            "{kind}: the manifest was pushed"
        );

        // A 1 MiB top-layer change: that layer (gzip of incompressible
        // data: a little over 1 MiB) and the config, nothing else.
        image.build(&layers(2));
        let changed = push_load(&cluster, &image.name);
        let mut sizes = uploads(&changed);
        sizes.sort();
        assert_eq!(sizes.len(), 2, "{kind}: {:?}", changed.registry_requests);
        assert!(sizes[0] < 16 << 10, "{kind}: config {sizes:?}");
        assert!(
            (MIB..MIB + MIB / 16).contains(&sizes[1]),
            "{kind}: layer {sizes:?}"
        );
        for node in &cluster.nodes {
            assert_eq!(
                config_on_node(&cluster, node, &format!("docker.io/library/{}", image.name)),
                image.id(),
                "{kind}: {node}"
            );
        }
    }
}

fn cli_load(cluster: &TestCluster, image: &str, path: &str) -> Value {
    let output = loadmaster(&[
        "--engine",
        cluster.kind.name(),
        "load",
        image,
        "--cluster",
        &cluster.name,
        "--path",
        path,
        "--output",
        "json",
    ]);
    assert!(
        output.status.success(),
        "{}: {}",
        cluster.target(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn auto_saves_into_a_cold_node_and_pushes_once_a_push_is_there() {
    for target in node_targets() {
        let cluster = TestCluster::start(target.kind, 0, &target.nodes());
        let image = TestImage::named(target.kind);
        let kind = target;
        image.build(&layers(3));
        let report = cli_load(&cluster, &image.name, "auto");
        assert_eq!(
            report["nodes"][0]["path"], "save",
            "{kind}: cold node: {report}"
        );
        assert_eq!(report["nodes"][0]["result"], "loaded");

        image.build(&layers(4));
        let report = cli_load(&cluster, &image.name, "push");
        assert_eq!(report["nodes"][0]["path"], "push", "{kind}: {report}");

        image.build(&layers(5));
        let report = cli_load(&cluster, &image.name, "auto");
        assert_eq!(report["nodes"][0]["path"], "push", "{kind}: {report}");
        assert_eq!(report["nodes"][0]["result"], "loaded", "{kind}: {report}");
        assert!(
            report["nodes"][0]["bytes_sent"].as_u64().unwrap() < 2 * MIB,
            "{kind}: {report}"
        );
        assert_eq!(
            config_on_node(
                &cluster,
                cluster.control_plane(),
                &format!("docker.io/library/{}", image.name)
            ),
            image.id(),
            "{kind}"
        );
    }
}

/// Blobs kept in memory: the registry's storage for protocol tests.
#[derive(Clone, Default)]
struct MemoryStorage {
    blobs: Arc<Mutex<HashMap<Digest, Arc<[u8]>>>>,
}

struct MemoryUpload {
    storage: MemoryStorage,
    bytes: Vec<u8>,
}

impl Storage for MemoryStorage {
    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        self.blobs
            .lock()
            .unwrap()
            .get(digest)
            .map(|b| b.len() as u64)
    }
    fn blob_bytes(&self, digest: &Digest) -> Option<Arc<[u8]>> {
        self.blobs.lock().unwrap().get(digest).cloned()
    }
    fn upload(&self) -> Result<Box<dyn BlobUpload>, String> {
        Ok(Box::new(MemoryUpload {
            storage: self.clone(),
            bytes: Vec::new(),
        }))
    }
}

impl BlobUpload for MemoryUpload {
    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }
    fn commit(self: Box<Self>, digest: Digest) -> Result<(), String> {
        self.storage
            .blobs
            .lock()
            .unwrap()
            .insert(digest, Arc::from(self.bytes));
        Ok(())
    }
}

/// A response: status, headers (lowercase names), body.
struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// One HTTP/1.1 request over a fresh connection to 127.0.0.1.
fn request(port: u16, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let text = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = text.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

fn error_code(answer: &Answer) -> String {
    let json: Value = serde_json::from_slice(&answer.body).unwrap();
    json["errors"][0]["code"].as_str().unwrap().to_string()
}

#[test]
fn the_registry_rejects_a_wrong_digest_and_keeps_a_right_one() {
    let storage = MemoryStorage::default();
    let registry = Registry::start(0, Arc::new(storage.clone())).unwrap();
    let port = registry.port();

    let base = request(port, "GET", "/v2/", &[], b"");
    assert_eq!(base.status, 200);
    assert_eq!(
        base.headers["docker-distribution-api-version"],
        "registry/2.0"
    );

    let blob = b"the bytes of a layer".repeat(1000);
    let right = Digest::of(&blob);
    let wrong = Digest::of(b"something else");

    // An upload finished with the wrong digest is refused and discarded.
    let started = request(port, "POST", "/v2/team/app/blobs/uploads/", &[], b"");
    assert_eq!(started.status, 202);
    let location = started.headers["location"].clone();
    assert!(started.headers.contains_key("docker-upload-uuid"));
    let range = format!("0-{}", blob.len() - 1);
    let patched = request(
        port,
        "PATCH",
        &location,
        &[("Content-Range", &range)],
        &blob,
    );
    assert_eq!(patched.status, 202);
    assert_eq!(patched.headers["range"], range);
    let put = request(port, "PUT", &format!("{location}?digest={wrong}"), &[], b"");
    assert_eq!(put.status, 400);
    assert_eq!(error_code(&put), "DIGEST_INVALID");
    for digest in [right, wrong] {
        let head = request(
            port,
            "HEAD",
            &format!("/v2/team/app/blobs/{digest}"),
            &[],
            b"",
        );
        assert_eq!(head.status, 404, "{digest} must not be stored");
    }
    assert!(storage.blobs.lock().unwrap().is_empty());
    // The upload is gone with it.
    let again = request(port, "PUT", &format!("{location}?digest={right}"), &[], b"");
    assert_eq!(error_code(&again), "BLOB_UPLOAD_UNKNOWN");

    // A monolithic upload with the right digest (percent-encoded, as
    // clients send it) is stored and then reported present.
    let target = format!(
        "/v2/team/app/blobs/uploads/?digest={}",
        right.to_string().replace(':', "%3A")
    );
    let stored = request(port, "POST", &target, &[], &blob);
    assert_eq!(stored.status, 201);
    assert_eq!(stored.headers["docker-content-digest"], right.to_string());
    let head = request(
        port,
        "HEAD",
        &format!("/v2/team/app/blobs/{right}"),
        &[],
        b"",
    );
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["content-length"], blob.len().to_string());
    assert!(head.body.is_empty());

    // A mount of a present blob needs no upload; of an absent one, it opens one.
    let mounted = request(
        port,
        "POST",
        &format!("/v2/other/blobs/uploads/?mount={right}&from=team/app"),
        &[],
        b"",
    );
    assert_eq!(mounted.status, 201);
    let not_mounted = request(
        port,
        "POST",
        &format!("/v2/other/blobs/uploads/?mount={wrong}&from=team/app"),
        &[],
        b"",
    );
    assert_eq!(not_mounted.status, 202);

    // A manifest naming a blob that is not there is refused; one whose
    // blobs are all there is kept and served.
    let manifest = |config: Digest| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":1}},"layers":[]}}"#
        )
    };
    let oci = [("Content-Type", "application/vnd.oci.image.manifest.v1+json")];
    let refused = request(
        port,
        "PUT",
        "/v2/team/app/manifests/1",
        &oci,
        manifest(wrong).as_bytes(),
    );
    assert_eq!(error_code(&refused), "MANIFEST_BLOB_UNKNOWN");
    let kept = request(
        port,
        "PUT",
        "/v2/team/app/manifests/1",
        &oci,
        manifest(right).as_bytes(),
    );
    assert_eq!(kept.status, 201);
    let got = request(port, "GET", "/v2/team/app/manifests/1", &[], b"");
    assert_eq!(got.body, manifest(right).as_bytes());
    assert_eq!(got.headers["content-type"], oci[0].1);
    assert_eq!(
        registry.manifest("team/app", "1").unwrap().digest,
        Digest::of(manifest(right).as_bytes())
    );

    let log = registry.requests();
    assert_eq!(
        log.iter().filter(|r| r.finished_upload()).count(),
        1,
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|r| r.method == "PATCH" && r.bytes == blob.len() as u64)
    );
}
