//! The manifest and `index.json` that name an image on a node.
//!
//! A docker-archive has no manifest of its own, and containerd's importer
//! only reads the OCI layout's `index.json` by name: so for every delivery we
//! write a manifest (when the archive had none) and an index whose
//! annotations give the image the name kubelet will ask for.

use super::digest::Digest;
use super::reference::ImageReference;
use super::spec;
use super::{ConfigBlob, LayerBlob, ManifestBlob};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize)]
struct DescriptorOut<'a> {
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    digest: Digest,
    size: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct ManifestOut<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    config: DescriptorOut<'a>,
    layers: Vec<DescriptorOut<'a>>,
}

#[derive(Serialize)]
struct IndexOut<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    manifests: Vec<DescriptorOut<'a>>,
}

/// A docker schema 2 manifest for `config` and `layers`, as `docker push`
/// would write it for an image loaded from a docker-archive. The layers keep
/// their media types (uncompressed for docker-archives).
pub fn docker_manifest(config: &ConfigBlob, layers: &[LayerBlob]) -> ManifestBlob {
    let layers = layers
        .iter()
        .map(|layer| (layer.media_type.as_str(), layer.digest, layer.size));
    manifest_of(
        spec::DOCKER_MANIFEST,
        (
            spec::DOCKER_CONFIG,
            config.digest,
            config.bytes.len() as u64,
        ),
        layers,
    )
}

/// An OCI image manifest for a config of `config_size` bytes and `layers`,
/// as a registry stores it. Layers get the OCI media type of their
/// compression (docker's uncompressed `rootfs.diff.tar` is OCI's
/// `layer.v1.tar`), so the same image always gives the same manifest
/// digest, whether its layers were just read or only looked up.
pub fn oci_manifest(config: Digest, config_size: u64, layers: &[LayerBlob]) -> ManifestBlob {
    let layers = layers.iter().map(|layer| {
        (
            spec::oci_layer_type(&layer.media_type),
            layer.digest,
            layer.size,
        )
    });
    manifest_of(
        spec::OCI_MANIFEST,
        (spec::OCI_CONFIG, config, config_size),
        layers,
    )
}

/// A manifest of `media_type` for a config and layers, each given as
/// (media type, digest, size).
fn manifest_of<'a>(
    media_type: &'a str,
    (config_type, config_digest, config_size): (&'a str, Digest, u64),
    layers: impl Iterator<Item = (&'a str, Digest, u64)>,
) -> ManifestBlob {
    let descriptor = |(media_type, digest, size)| DescriptorOut {
        media_type,
        digest,
        size,
        annotations: BTreeMap::new(),
    };
    let manifest = ManifestOut {
        schema_version: 2,
        media_type,
        config: descriptor((config_type, config_digest, config_size)),
        layers: layers.map(descriptor).collect(),
    };
    let bytes = to_json(&manifest);
    ManifestBlob {
        digest: Digest::of(&bytes),
        media_type: media_type.to_string(),
        bytes,
    }
}

/// The `index.json` of an OCI layout holding one image, named `image`.
///
/// `io.containerd.image.name` carries the full name, which containerd's
/// importer uses as the image's name; `org.opencontainers.image.ref.name`
/// carries the tag, as the OCI spec asks (left out for digest-only
/// references, which have none).
pub fn index_json(manifest: &ManifestBlob, image: &ImageReference) -> Vec<u8> {
    let mut annotations = BTreeMap::from([(spec::CONTAINERD_NAME, image.to_string())]);
    if let Some(tag) = image.tag() {
        annotations.insert(spec::OCI_REF_NAME, tag.to_string());
    }
    let index = IndexOut {
        schema_version: 2,
        media_type: spec::OCI_INDEX,
        manifests: vec![DescriptorOut {
            media_type: &manifest.media_type,
            digest: manifest.digest,
            size: manifest.bytes.len() as u64,
            annotations,
        }],
    };
    to_json(&index)
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Serializing these structs cannot fail: all keys are strings and no
    // value has a fallible Serialize.
    serde_json::to_vec(value).expect("manifest JSON serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::fixtures::OCI_LAYER_GZIP;
    use crate::archive::normalize_reference;
    use serde_json::{Value, json};

    fn sample() -> (ConfigBlob, Vec<LayerBlob>) {
        let config = ConfigBlob::new(br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec());
        let layers = vec![
            LayerBlob {
                digest: Digest::of(b"layer one"),
                size: 9,
                media_type: spec::DOCKER_LAYER.to_string(),
                diff_id: Digest::of(b"layer one"),
            },
            LayerBlob {
                digest: Digest::of(b"layer two"),
                size: 1 << 33,
                media_type: OCI_LAYER_GZIP.to_string(),
                diff_id: Digest::of(b"layer two, uncompressed"),
            },
        ];
        (config, layers)
    }

    #[test]
    fn docker_manifest_lists_config_and_layers_in_order() {
        let (config, layers) = sample();
        let manifest = docker_manifest(&config, &layers);
        assert_eq!(manifest.digest, Digest::of(&manifest.bytes));
        assert_eq!(manifest.media_type, spec::DOCKER_MANIFEST);
        let value: Value = serde_json::from_slice(&manifest.bytes).unwrap();
        assert_eq!(
            value,
            json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {
                    "mediaType": "application/vnd.docker.container.image.v1+json",
                    "digest": config.digest.to_string(),
                    "size": config.bytes.len(),
                },
                "layers": [
                    {"mediaType": spec::DOCKER_LAYER, "digest": layers[0].digest.to_string(), "size": 9},
                    {"mediaType": OCI_LAYER_GZIP, "digest": layers[1].digest.to_string(), "size": 1u64 << 33},
                ],
            })
        );
        // Parses back with the reader's own types.
        let parsed: spec::Manifest = serde_json::from_slice(&manifest.bytes).unwrap();
        assert_eq!(parsed.layers.len(), 2);
    }

    #[test]
    fn index_names_the_image_for_containerd() {
        let (config, layers) = sample();
        let manifest = docker_manifest(&config, &layers);
        let index = index_json(&manifest, &normalize_reference("app:1").unwrap());
        let value: Value = serde_json::from_slice(&index).unwrap();
        assert_eq!(
            value,
            json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [{
                    "mediaType": spec::DOCKER_MANIFEST,
                    "digest": manifest.digest.to_string(),
                    "size": manifest.bytes.len(),
                    "annotations": {
                        "io.containerd.image.name": "docker.io/library/app:1",
                        "org.opencontainers.image.ref.name": "1",
                    },
                }],
            })
        );
    }

    #[test]
    fn digest_references_get_no_ref_name() {
        let (config, layers) = sample();
        let manifest = docker_manifest(&config, &layers);
        let reference = normalize_reference(&format!("app@{}", Digest::of(b"x"))).unwrap();
        let value: Value = serde_json::from_slice(&index_json(&manifest, &reference)).unwrap();
        let annotations = &value["manifests"][0]["annotations"];
        assert_eq!(annotations[spec::CONTAINERD_NAME], reference.to_string());
        assert!(annotations.get(spec::OCI_REF_NAME).is_none());
    }
}
