//! Synthetic image archives in the layouts docker and podman write, built
//! with the `tar` crate (an independent tar writer) so the reader is tested
//! against someone else's tar, entry order and naming as the real tools do
//! them (checked against `docker save` 20.10 and `podman save` 4.3 output).

use super::digest::Digest;
use super::spec;
use flate2::Compression as Level;
use flate2::write::GzEncoder;
use serde_json::json;
use std::io::Write;

pub use super::spec::OCI_LAYER_GZIP;

/// A tar entry to write.
#[derive(Clone, Debug)]
pub enum Node {
    File(Vec<u8>),
    Dir,
    Symlink(String),
    Hardlink(String),
}

/// Writes entries in the order given, with GNU headers as Go's archive/tar
/// writes them for these short names.
pub fn tar_of(entries: &[(String, Node)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, node) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        match node {
            Node::File(data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, path, &data[..]).unwrap();
            }
            Node::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder.append_data(&mut header, path, &[][..]).unwrap();
            }
            Node::Symlink(target) | Node::Hardlink(target) => {
                let kind = match node {
                    Node::Symlink(_) => tar::EntryType::Symlink,
                    _ => tar::EntryType::Link,
                };
                header.set_entry_type(kind);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, path, target).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

pub fn file(path: &str, data: impl Into<Vec<u8>>) -> (String, Node) {
    (path.to_string(), Node::File(data.into()))
}

/// An uncompressed layer: a tar holding one file of `size` bytes that
/// depend on `seed`.
pub fn layer(seed: u8, size: usize) -> Vec<u8> {
    let contents: Vec<u8> = (0..size)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed)
        .collect();
    tar_of(&[file(&format!("data/file-{seed}"), contents)])
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Level::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// An image: tags and uncompressed layers, bottom first.
#[derive(Clone, Debug)]
pub struct Image {
    pub tags: Vec<String>,
    pub layers: Vec<Vec<u8>>,
}

impl Image {
    pub fn new(tags: &[&str], layers: Vec<Vec<u8>>) -> Image {
        Image {
            tags: tags.iter().map(|t| t.to_string()).collect(),
            layers,
        }
    }

    pub fn diff_ids(&self) -> Vec<Digest> {
        self.layers.iter().map(|l| Digest::of(l)).collect()
    }

    /// A config like docker's: platform, run config, rootfs.
    pub fn config(&self) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": self.diff_ids()},
            "history": [{"created_by": "test"}],
        }))
        .unwrap()
    }

    pub fn config_digest(&self) -> Digest {
        Digest::of(&self.config())
    }

    /// A v1 ID for layer `index`, different from any digest, as docker's are.
    fn v1_id(&self, index: usize) -> String {
        Digest::of(format!("v1 {index} {}", self.config_digest()).as_bytes()).hex()
    }
}

/// `docker save` before Docker 25: `<v1 id>/{VERSION,json,layer.tar}` per
/// layer, `<config hex>.json`, `manifest.json`, `repositories`, in lexical
/// order; a layer identical to an earlier one is a symlink to it.
pub fn legacy_docker(images: &[Image]) -> Vec<u8> {
    let mut entries: Vec<(String, Node)> = Vec::new();
    let mut manifest = Vec::new();
    let mut first_copy: Vec<(Digest, String)> = Vec::new();
    for image in images {
        let mut layer_paths = Vec::new();
        for (index, layer) in image.layers.iter().enumerate() {
            let id = image.v1_id(index);
            let path = format!("{id}/layer.tar");
            entries.push((format!("{id}/"), Node::Dir));
            entries.push(file(&format!("{id}/VERSION"), "1.0"));
            entries.push(file(&format!("{id}/json"), format!(r#"{{"id":"{id}"}}"#)));
            let digest = Digest::of(layer);
            match first_copy.iter().find(|(d, _)| *d == digest) {
                Some((_, first)) => {
                    entries.push((path.clone(), Node::Symlink(format!("../{first}"))))
                }
                None => {
                    entries.push((path.clone(), Node::File(layer.clone())));
                    first_copy.push((digest, path.clone()));
                }
            }
            layer_paths.push(path);
        }
        let config_name = format!("{}.json", image.config_digest().hex());
        if !entries.iter().any(|(p, _)| *p == config_name) {
            entries.push(file(&config_name, image.config()));
        }
        manifest
            .push(json!({"Config": config_name, "RepoTags": image.tags, "Layers": layer_paths}));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.push(file(
        "manifest.json",
        serde_json::to_vec(&manifest).unwrap(),
    ));
    entries.push(file("repositories", r#"{"app":{"1":"x"}}"#));
    tar_of(&entries)
}

/// `podman save` (docker-archive): `<diff id hex>.tar` layers, the config,
/// v1 directories whose `layer.tar` links to the layer, `manifest.json`,
/// `repositories`, in the order containers/image writes them.
pub fn podman_docker_archive(image: &Image) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut layer_paths = Vec::new();
    for layer in &image.layers {
        let path = format!("{}.tar", Digest::of(layer).hex());
        if !layer_paths.contains(&path) {
            entries.push(file(&path, layer.clone()));
        }
        layer_paths.push(path);
    }
    let config_name = format!("{}.json", image.config_digest().hex());
    entries.push(file(&config_name, image.config()));
    for (index, path) in layer_paths.iter().enumerate() {
        let id = image.v1_id(index);
        entries.push((
            format!("{id}/layer.tar"),
            Node::Symlink(format!("../{path}")),
        ));
        entries.push(file(&format!("{id}/VERSION"), "1.0"));
        entries.push(file(&format!("{id}/json"), format!(r#"{{"id":"{id}"}}"#)));
    }
    let manifest = json!([{"Config": config_name, "RepoTags": image.tags, "Layers": layer_paths}]);
    entries.push(file(
        "manifest.json",
        serde_json::to_vec(&manifest).unwrap(),
    ));
    entries.push(file("repositories", "{}"));
    tar_of(&entries)
}

/// Which tool wrote an OCI layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OciStyle {
    /// `podman save --format oci-archive`: gzip layers, the full name in
    /// `org.opencontainers.image.ref.name`.
    Podman,
    /// Docker 25+ `docker save`: uncompressed layers, containerd's name
    /// annotation, a docker `manifest.json` beside the layout.
    Docker25,
    /// Like Docker 25, but `index.json` points at a multi-platform index of
    /// which only the linux/amd64 image (and no attestation) was saved.
    NestedIndex,
}

/// The blobs and files of an OCI layout, and its manifest's digest.
pub struct OciParts {
    pub blobs: Vec<(Digest, Vec<u8>)>,
    pub manifest: Digest,
}

pub fn oci_parts(image: &Image, style: OciStyle) -> OciParts {
    let mut blobs = Vec::new();
    let (layer_type, config_type) = match style {
        OciStyle::Podman => (OCI_LAYER_GZIP, "application/vnd.oci.image.config.v1+json"),
        _ => (spec::OCI_LAYER, "application/vnd.oci.image.config.v1+json"),
    };
    let mut layer_descriptors = Vec::new();
    for layer in &image.layers {
        let bytes = match style {
            OciStyle::Podman => gzip(layer),
            _ => layer.clone(),
        };
        let digest = Digest::of(&bytes);
        layer_descriptors
            .push(json!({"mediaType": layer_type, "digest": digest, "size": bytes.len()}));
        blobs.push((digest, bytes));
    }
    let config = image.config();
    let config_descriptor =
        json!({"mediaType": config_type, "digest": Digest::of(&config), "size": config.len()});
    blobs.push((Digest::of(&config), config));
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": spec::OCI_MANIFEST,
        "config": config_descriptor,
        "layers": layer_descriptors,
    }))
    .unwrap();
    let manifest_digest = Digest::of(&manifest);
    blobs.push((manifest_digest, manifest));
    OciParts {
        blobs,
        manifest: manifest_digest,
    }
}

pub fn oci_archive(image: &Image, style: OciStyle) -> Vec<u8> {
    let parts = oci_parts(image, style);
    let manifest_size = parts
        .blobs
        .iter()
        .find(|(d, _)| *d == parts.manifest)
        .map(|(_, b)| b.len())
        .unwrap();
    let mut blobs = parts.blobs.clone();
    let mut index_manifests = Vec::new();
    match style {
        OciStyle::Podman => {
            for tag in &image.tags {
                index_manifests.push(json!({
                    "mediaType": spec::OCI_MANIFEST, "digest": parts.manifest, "size": manifest_size,
                    "annotations": {spec::OCI_REF_NAME: tag},
                }));
            }
        }
        OciStyle::Docker25 => {
            for tag in &image.tags {
                let full = super::normalize_reference(tag).unwrap();
                index_manifests.push(json!({
                    "mediaType": spec::OCI_MANIFEST, "digest": parts.manifest, "size": manifest_size,
                    "annotations": {
                        spec::CONTAINERD_NAME: full.to_string(),
                        spec::OCI_REF_NAME: full.tag().unwrap(),
                    },
                }));
            }
        }
        OciStyle::NestedIndex => {
            let absent = Digest::of(b"a manifest that was not saved");
            let attestation = Digest::of(b"an attestation that was not saved");
            let platform_index = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": spec::OCI_INDEX,
                "manifests": [
                    {"mediaType": spec::OCI_MANIFEST, "digest": absent, "size": 500,
                     "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
                    {"mediaType": spec::OCI_MANIFEST, "digest": parts.manifest, "size": manifest_size,
                     "platform": {"architecture": "amd64", "os": "linux"}},
                    {"mediaType": spec::OCI_MANIFEST, "digest": attestation, "size": 800,
                     "platform": {"architecture": "unknown", "os": "unknown"},
                     "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
                ],
            }))
            .unwrap();
            let full = super::normalize_reference(&image.tags[0]).unwrap();
            index_manifests.push(json!({
                "mediaType": spec::OCI_INDEX, "digest": Digest::of(&platform_index), "size": platform_index.len(),
                "annotations": {spec::CONTAINERD_NAME: full.to_string(), spec::OCI_REF_NAME: full.tag().unwrap()},
            }));
            blobs.push((Digest::of(&platform_index), platform_index));
        }
    }
    blobs.sort_by_key(|(d, _)| *d);
    let mut entries = blob_entries(&blobs);
    let index =
        json!({"schemaVersion": 2, "mediaType": spec::OCI_INDEX, "manifests": index_manifests});
    entries.push(file("index.json", serde_json::to_vec(&index).unwrap()));
    if style != OciStyle::Podman {
        let config = format!("blobs/sha256/{}", image.config_digest().hex());
        let layers: Vec<String> = image
            .layers
            .iter()
            .map(|l| format!("blobs/sha256/{}", Digest::of(l).hex()))
            .collect();
        let manifest = json!([{"Config": config, "RepoTags": image.tags, "Layers": layers}]);
        entries.push(file(
            "manifest.json",
            serde_json::to_vec(&manifest).unwrap(),
        ));
    }
    entries.push(file("oci-layout", r#"{"imageLayoutVersion": "1.0.0"}"#));
    if style != OciStyle::Podman {
        entries.push(file("repositories", "{}"));
    }
    tar_of(&entries)
}

/// How Docker 29's containerd image store holds a layer, and so saves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredCompression {
    Gzip,
    Zstd,
}

/// A zstd frame holding `bytes` in raw (stored) blocks: valid zstd that any
/// decoder reads, written by hand because no encoder is among the
/// dependencies. The layout (RFC 8878, sections 3.1.1-3.1.1.2): the magic,
/// a frame header with the single-segment flag and a 4-byte content size,
/// then blocks of at most 128 KiB, each a 3-byte header (last-block bit,
/// type 0 = raw, size) and the bytes.
pub fn zstd_stored(bytes: &[u8]) -> Vec<u8> {
    const MAX_BLOCK: usize = 128 << 10;
    let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd];
    // Frame_Content_Size_flag 2 (4 bytes), Single_Segment_flag set.
    frame.push(0b1010_0000);
    frame.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    let mut chunks: Vec<&[u8]> = bytes.chunks(MAX_BLOCK).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    let last = chunks.len() - 1;
    for (n, chunk) in chunks.into_iter().enumerate() {
        let header = ((chunk.len() as u32) << 3) | u32::from(n == last);
        frame.extend_from_slice(&header.to_le_bytes()[..3]);
        frame.extend_from_slice(chunk);
    }
    frame
}

/// `docker save IMAGE` from Docker 29's containerd image store, written
/// from what moby's `daemon/containerd/image_exporter.go` (ExportImage)
/// asks of containerd's exporter (`core/images/archive/exporter.go`,
/// Export): the image's target, its multi-platform index, goes into
/// `index.json` named by `io.containerd.image.name` (the full name) and
/// `org.opencontainers.image.ref.name` (the tag); only the manifests of
/// the platform matcher (the host's) are walked, so the index names every
/// platform while only the host's manifest, config and layers are inside
/// (WithSkipMissing, WithPlatform), layers as stored (compressed);
/// `manifest.json` names the host's image by its familiar name; every
/// record is sorted by name (writeTar), directories included; no
/// `repositories` file.
pub fn docker29_archive(image: &Image, compression: StoredCompression) -> Vec<u8> {
    type Compress = fn(&[u8]) -> Vec<u8>;
    let (layer_type, compress): (&str, Compress) = match compression {
        StoredCompression::Gzip => (OCI_LAYER_GZIP, gzip),
        StoredCompression::Zstd => (spec::OCI_LAYER_ZSTD, zstd_stored),
    };
    let mut blobs: Vec<(Digest, Vec<u8>)> = Vec::new();
    let mut layers = Vec::new();
    for layer in &image.layers {
        let stored = compress(layer);
        let digest = Digest::of(&stored);
        layers.push(json!({"mediaType": layer_type, "digest": digest, "size": stored.len()}));
        blobs.push((digest, stored));
    }
    let config = image.config();
    let config_digest = Digest::of(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": spec::OCI_MANIFEST,
        "config": {"mediaType": spec::OCI_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": layers,
    }))
    .unwrap();
    let manifest_digest = Digest::of(&manifest);
    let platform_index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": spec::OCI_INDEX,
        "manifests": [
            {"mediaType": spec::OCI_MANIFEST, "digest": manifest_digest, "size": manifest.len(),
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": spec::OCI_MANIFEST, "digest": Digest::of(b"arm64 manifest, not saved"),
             "size": 1061, "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
            {"mediaType": spec::OCI_MANIFEST, "digest": Digest::of(b"amd64 attestation, not saved"),
             "size": 566, "platform": {"architecture": "unknown", "os": "unknown"},
             "annotations": {"vnd.docker.reference.digest": manifest_digest,
                             "vnd.docker.reference.type": "attestation-manifest"}},
        ],
    }))
    .unwrap();
    let index_digest = Digest::of(&platform_index);
    blobs.push((config_digest, config));
    blobs.push((manifest_digest, manifest));
    blobs.push((index_digest, platform_index.clone()));

    let mut entries = blob_entries(&blobs);
    // One index.json record per name saved (WithManifest(target, name)).
    let named: Vec<_> = image
        .tags
        .iter()
        .map(|tag| {
            let full = super::normalize_reference(tag).unwrap();
            json!({
                "mediaType": spec::OCI_INDEX, "digest": index_digest, "size": platform_index.len(),
                "annotations": {spec::CONTAINERD_NAME: full.to_string(), spec::OCI_REF_NAME: full.tag().unwrap()},
            })
        })
        .collect();
    let index = json!({"schemaVersion": 2, "manifests": named});
    entries.push(file("index.json", serde_json::to_vec(&index).unwrap()));
    let layer_paths: Vec<String> = blobs[..image.layers.len()]
        .iter()
        .map(|(d, _)| format!("blobs/sha256/{}", d.hex()))
        .collect();
    let docker_manifest = json!([{
        "Config": format!("blobs/sha256/{}", config_digest.hex()),
        "RepoTags": image.tags,
        "Layers": layer_paths,
    }]);
    entries.push(file(
        "manifest.json",
        serde_json::to_vec(&docker_manifest).unwrap(),
    ));
    entries.push(file("oci-layout", r#"{"imageLayoutVersion":"1.0.0"}"#));
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    tar_of(&entries)
}

/// An OCI layout's `blobs/` directories and a file for each blob.
fn blob_entries(blobs: &[(Digest, Vec<u8>)]) -> Vec<(String, Node)> {
    let mut entries = vec![
        ("blobs/".to_string(), Node::Dir),
        ("blobs/sha256/".to_string(), Node::Dir),
    ];
    for (digest, bytes) in blobs {
        entries.push(file(
            &format!("blobs/sha256/{}", digest.hex()),
            bytes.clone(),
        ));
    }
    entries
}
