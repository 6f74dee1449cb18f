//! Working out an archive's images once all of it has streamed by: which
//! config, which layers in which order, under which names.
//!
//! Both layouts come down to the same [`ArchivedImage`]: a docker-archive
//! through `manifest.json` (paths to a config and layer files), an OCI
//! layout through `index.json` (digests of manifests, possibly through a
//! nested index). Every reference is checked against what was in the
//! archive: digests, sizes, and the config's diff IDs.

use super::digest::Digest;
use super::error::ArchiveError;
use super::read::{Compression, Contents, Stored};
use super::spec::{self, Descriptor, DockerArchiveEntry, ImageConfig, Index, Manifest};
use super::{ArchiveFormat, ArchivedImage, ConfigBlob, ImageArchive, LayerBlob, ManifestBlob};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// How deep indexes may nest (an index of indexes of manifests is 1).
const MAX_INDEX_NESTING: usize = 4;

pub(super) fn resolve(contents: Contents) -> Result<ImageArchive, ArchiveError> {
    if contents.has("index.json") {
        oci_layout(&contents)
    } else if contents.has("manifest.json") {
        docker_archive(&contents)
    } else {
        Err(ArchiveError::NotAnImageArchive)
    }
}

fn parse<T: DeserializeOwned>(entry: &str, bytes: &[u8]) -> Result<T, ArchiveError> {
    serde_json::from_slice(bytes).map_err(|e| ArchiveError::InvalidMetadata {
        entry: entry.to_string(),
        detail: format!("it is not the JSON expected there ({e})"),
    })
}

/// An archive-level file (`manifest.json`, `index.json`), parsed.
fn layout_file<T: DeserializeOwned>(contents: &Contents, name: &str) -> Result<T, ArchiveError> {
    let stored = contents
        .lookup(name)?
        .ok_or(ArchiveError::NotAnImageArchive)?;
    parse(name, contents.metadata(name, stored)?)
}

/// A path from `manifest.json`, normalized as entry paths are.
fn manifest_path(path: &str) -> Result<String, ArchiveError> {
    let normalized: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if path.starts_with('/') || normalized.contains(&"..") || normalized.is_empty() {
        return Err(ArchiveError::InvalidMetadata {
            entry: "manifest.json".to_string(),
            detail: format!("it refers to {path:?}, which is not a path inside the archive"),
        });
    }
    Ok(normalized.join("/"))
}

fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

fn describe(repo_tags: &[String], config: &Digest) -> String {
    match repo_tags.first() {
        Some(tag) => tag.clone(),
        None => format!("with config {config}"),
    }
}

fn docker_archive(contents: &Contents) -> Result<ImageArchive, ArchiveError> {
    let entries: Vec<DockerArchiveEntry> = layout_file(contents, "manifest.json")?;
    if entries.is_empty() {
        return Err(ArchiveError::InvalidMetadata {
            entry: "manifest.json".to_string(),
            detail: "it lists no image".to_string(),
        });
    }
    let mut legacy = false;
    let mut images = Vec::with_capacity(entries.len());
    for entry in entries {
        let repo_tags = entry.repo_tags.unwrap_or_default();
        let config_path = manifest_path(&entry.config)?;
        let missing = |blob: &str| ArchiveError::MissingBlob {
            referenced_by: "manifest.json".to_string(),
            blob: blob.to_string(),
        };
        let config_entry = contents
            .lookup(&config_path)?
            .ok_or_else(|| missing(&config_path))?;
        let config_bytes = contents.metadata(&config_path, config_entry)?;
        let config: ImageConfig = parse(&config_path, config_bytes)?;
        let platform = config.platform();
        let diff_ids = config.rootfs.diff_ids;
        if diff_ids.len() != entry.layers.len() {
            return Err(ArchiveError::InvalidMetadata {
                entry: config_path,
                detail: format!(
                    "it lists {} diff IDs, but manifest.json lists {} layers for it",
                    diff_ids.len(),
                    entry.layers.len()
                ),
            });
        }
        let mut layers = Vec::with_capacity(diff_ids.len());
        for (index, (layer_path, diff_id)) in entry.layers.iter().zip(diff_ids).enumerate() {
            let layer_path = manifest_path(layer_path)?;
            let stored = contents
                .lookup(&layer_path)?
                .ok_or_else(|| missing(&layer_path))?;
            legacy |= !stored.named;
            let (media_type, diff_id) = if stored.digest == diff_id {
                (spec::DOCKER_LAYER, diff_id)
            } else {
                // A compressed layer (go-containerregistry writes those) is
                // checked against its diff ID by containerd when it unpacks.
                match stored.compression {
                    Compression::Gzip => (spec::DOCKER_LAYER_GZIP, diff_id),
                    Compression::Zstd => (spec::OCI_LAYER_ZSTD, diff_id),
                    Compression::None => {
                        return Err(ArchiveError::DiffIdMismatch {
                            image: describe(&repo_tags, &config_entry.digest),
                            index,
                            entry: layer_path,
                            expected: diff_id,
                            actual: stored.digest,
                        });
                    }
                }
            };
            layers.push(LayerBlob {
                digest: stored.digest,
                size: stored.size,
                media_type: media_type.to_string(),
                diff_id,
            });
        }
        images.push(ArchivedImage {
            repo_tags,
            config: ConfigBlob {
                digest: config_entry.digest,
                bytes: config_bytes.to_vec(),
            },
            layers,
            manifest: None,
            platform,
        });
    }
    Ok(ImageArchive {
        format: if legacy {
            ArchiveFormat::LegacyDockerArchive
        } else {
            ArchiveFormat::DockerArchive
        },
        images,
    })
}

fn oci_layout(contents: &Contents) -> Result<ImageArchive, ArchiveError> {
    let index: Index = layout_file(contents, "index.json")?;
    if index.manifests.is_empty() {
        return Err(ArchiveError::InvalidMetadata {
            entry: "index.json".to_string(),
            detail: "it lists no image".to_string(),
        });
    }
    let mut images: Vec<ArchivedImage> = Vec::new();
    for descriptor in &index.manifests {
        let names = names_from_annotations(descriptor);
        for (manifest_blob, manifest) in image_manifests(contents, descriptor, "index.json", 0)? {
            // Two tags of one image are two descriptors of one manifest.
            if let Some(image) = images.iter_mut().find(|image| {
                image.manifest.as_ref().map(|m| m.digest) == Some(manifest_blob.digest)
            }) {
                add_names(&mut image.repo_tags, names.clone());
                continue;
            }
            images.push(oci_image(contents, manifest_blob, manifest, names.clone())?);
        }
    }
    // Docker 25+ writes a docker-archive manifest.json beside the layout; its
    // RepoTags name the image whose config it points at.
    if contents.has("manifest.json") {
        let entries: Vec<DockerArchiveEntry> = layout_file(contents, "manifest.json")?;
        for entry in entries {
            let config_path = manifest_path(&entry.config)?;
            for image in &mut images {
                if blob_path(&image.config.digest) == config_path {
                    add_names(
                        &mut image.repo_tags,
                        entry.repo_tags.clone().unwrap_or_default(),
                    );
                }
            }
        }
    }
    Ok(ImageArchive {
        format: ArchiveFormat::OciLayout,
        images,
    })
}

/// The names an `index.json` entry gives its image: containerd's full name,
/// and the OCI ref name when it is a full reference (podman writes
/// `localhost/app:1`) rather than a bare tag (Docker writes `1`).
fn names_from_annotations(descriptor: &Descriptor) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(name) = descriptor.annotations.get(spec::CONTAINERD_NAME) {
        names.push(name.clone());
    }
    if let Some(reference) = descriptor.annotations.get(spec::OCI_REF_NAME)
        && reference.contains(['/', ':', '@'])
    {
        names.push(reference.clone());
    }
    names
}

fn add_names(repo_tags: &mut Vec<String>, names: Vec<String>) {
    for name in names {
        if !repo_tags.contains(&name) {
            repo_tags.push(name);
        }
    }
}

/// The blob a descriptor points at, checked for presence and size.
fn described<'a>(
    contents: &'a Contents,
    descriptor: &Descriptor,
    referenced_by: &str,
) -> Result<(String, &'a Stored), ArchiveError> {
    let path = blob_path(&descriptor.digest);
    let stored = contents
        .lookup(&path)?
        .ok_or_else(|| ArchiveError::MissingBlob {
            referenced_by: referenced_by.to_string(),
            blob: format!("{} ({})", descriptor.digest, descriptor.media_type),
        })?;
    if stored.size != descriptor.size {
        return Err(ArchiveError::InvalidMetadata {
            entry: referenced_by.to_string(),
            detail: format!(
                "it gives {} a size of {} bytes, but that blob has {} bytes in the archive",
                descriptor.digest, descriptor.size, stored.size
            ),
        });
    }
    Ok((path, stored))
}

/// The image manifests a descriptor leads to: one, or in a nested index
/// every platform's that the archive holds (which one loads is the
/// picker's choice: [`super::ImageArchive::image_for_platform`]).
fn image_manifests(
    contents: &Contents,
    descriptor: &Descriptor,
    referenced_by: &str,
    depth: usize,
) -> Result<Vec<(ManifestBlob, Manifest)>, ArchiveError> {
    let (path, stored) = described(contents, descriptor, referenced_by)?;
    let bytes = contents.metadata(&path, stored)?;
    // The descriptor's media type is required by the spec, but the document
    // says it too: prefer the document's when there is one.
    #[derive(Deserialize)]
    struct MediaType {
        #[serde(rename = "mediaType", default)]
        media_type: Option<String>,
    }
    let media_type = parse::<MediaType>(&path, bytes)?
        .media_type
        .unwrap_or_else(|| descriptor.media_type.clone());
    if spec::is_index(&media_type) {
        if depth >= MAX_INDEX_NESTING {
            return Err(ArchiveError::InvalidMetadata {
                entry: path,
                detail: format!("indexes nest more than {MAX_INDEX_NESTING} deep"),
            });
        }
        let index: Index = parse(&path, bytes)?;
        let mut found = Vec::new();
        for held in held_platforms(contents, &index, &path)? {
            found.extend(image_manifests(contents, held, &path, depth + 1)?);
        }
        return Ok(found);
    }
    if !spec::is_manifest(&media_type) {
        return Err(ArchiveError::InvalidMetadata {
            entry: referenced_by.to_string(),
            detail: format!(
                "it refers to {} of media type {media_type:?}, which is neither an image manifest nor an index",
                descriptor.digest
            ),
        });
    }
    let manifest: Manifest = parse(&path, bytes)?;
    Ok(vec![(
        ManifestBlob {
            digest: descriptor.digest,
            media_type,
            bytes: bytes.to_vec(),
        },
        manifest,
    )])
}

/// In a multi-platform index, the platforms' manifests the archive holds.
/// Indexes list every platform of an image even when only one was saved
/// (Docker 29's containerd store saves only the host's), and attestations
/// (platform unknown/unknown) are not images.
fn held_platforms<'a>(
    contents: &Contents,
    index: &'a Index,
    path: &str,
) -> Result<Vec<&'a Descriptor>, ArchiveError> {
    let candidates: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| spec::is_manifest(&d.media_type) || spec::is_index(&d.media_type))
        .filter(|d| d.platform.as_ref().is_none_or(|p| p.os != "unknown"))
        .collect();
    let Some(first) = candidates.first() else {
        return Err(ArchiveError::InvalidMetadata {
            entry: path.to_string(),
            detail: "it lists no image manifest".to_string(),
        });
    };
    let mut present = Vec::new();
    for candidate in &candidates {
        if contents.lookup(&blob_path(&candidate.digest))?.is_some() {
            present.push(*candidate);
        }
    }
    if present.is_empty() {
        return Err(ArchiveError::MissingBlob {
            referenced_by: path.to_string(),
            blob: format!(
                "{} (the manifest of {})",
                first.digest,
                platform_name(first)
            ),
        });
    }
    Ok(present)
}

fn platform_name(descriptor: &Descriptor) -> String {
    match &descriptor.platform {
        Some(p) => match &p.variant {
            Some(variant) => format!("{}/{}/{variant}", p.os, p.architecture),
            None => format!("{}/{}", p.os, p.architecture),
        },
        None => "an unnamed platform".to_string(),
    }
}

/// This machine's platform in OCI terms (GOOS/GOARCH names): `linux/amd64`.
pub(super) fn host_platform() -> String {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    format!("linux/{architecture}")
}

fn oci_image(
    contents: &Contents,
    manifest_blob: ManifestBlob,
    manifest: Manifest,
    repo_tags: Vec<String>,
) -> Result<ArchivedImage, ArchiveError> {
    let manifest_path = blob_path(&manifest_blob.digest);
    let (config_path, config_entry) = described(contents, &manifest.config, &manifest_path)?;
    let config_bytes = contents.metadata(&config_path, config_entry)?;
    let config: ImageConfig = parse(&config_path, config_bytes)?;
    let platform = config.platform();
    let diff_ids = config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        return Err(ArchiveError::InvalidMetadata {
            entry: config_path,
            detail: format!(
                "it lists {} diff IDs, but its manifest {} lists {} layers",
                diff_ids.len(),
                manifest_blob.digest,
                manifest.layers.len()
            ),
        });
    }
    let mut layers = Vec::with_capacity(diff_ids.len());
    for (index, (descriptor, diff_id)) in manifest.layers.iter().zip(diff_ids).enumerate() {
        let (path, stored) = described(contents, descriptor, &manifest_path)?;
        // An uncompressed layer's digest is its diff ID; a compressed one's
        // diff ID is checked by containerd when it unpacks the layer.
        if spec::is_uncompressed_layer(&descriptor.media_type) && stored.digest != diff_id {
            return Err(ArchiveError::DiffIdMismatch {
                image: describe(&repo_tags, &manifest.config.digest),
                index,
                entry: path,
                expected: diff_id,
                actual: stored.digest,
            });
        }
        layers.push(LayerBlob {
            digest: descriptor.digest,
            size: descriptor.size,
            media_type: descriptor.media_type.clone(),
            diff_id,
        });
    }
    Ok(ArchivedImage {
        repo_tags,
        config: ConfigBlob {
            digest: manifest.config.digest,
            bytes: config_bytes.to_vec(),
        },
        layers,
        manifest: Some(manifest_blob),
        platform,
    })
}
