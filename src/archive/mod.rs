//! Image archives: reading what `docker save` and `podman save` stream, and
//! writing the OCI image layout a node's `ctr images import` reads.
//!
//! Reading is one forward pass over a stream that cannot seek ([`read_archive`]):
//! each content entry goes to a [`BlobVisitor`] in fixed-size chunks while
//! it is hashed, so layers of any size pass through a few MiB of memory and
//! the caller can forward to each node only the blobs it lacks. The images
//! themselves ([`ImageArchive`]) are known only at the end: docker-archives
//! put `manifest.json` last, Docker 25+ puts `index.json` after the blobs.
//!
//! Three layouts are understood:
//! - docker-archive from Docker before 25: layers at `<v1 id>/layer.tar`,
//!   whose digests are learnt only by hashing them, deduplicated by symlinks;
//! - docker-archive from podman (containers/image): layers at `<diff id>.tar`;
//! - OCI layout in a tar: podman's `oci-archive`, and Docker 25+ (which adds
//!   a `manifest.json` beside it), with compressed or uncompressed layers.
//!
//! Archives may come from CI artifacts, so nothing in them is trusted:
//! paths, sizes, digests and references are all checked, memory kept for
//! metadata is capped by [`Limits`], and every failure says which entry is
//! wrong and what to do.
//!
//! Writing ([`OciLayoutWriter`], [`docker_manifest`], [`index_json`]) produces
//! the stream for one node, and [`normalize_reference`] the name containerd
//! must give the image ([`tagged_reference`]: one a push can put it under);
//! [`RegistryTarget`] is where a push sends images.

mod digest;
mod error;
mod legacy;
mod manifest;
mod read;
mod reference;
mod resolve;
mod spec;
mod tar_stream;
mod target;
mod write;

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;

pub use digest::{Digest, DigestError};
pub use error::ArchiveError;
pub use manifest::{docker_manifest, index_json, oci_manifest};
pub use read::{
    BlobEnd, BlobStart, BlobVisitor, CHUNK_SIZE, Discard, Limits, read_archive, read_archive_of,
};
pub use reference::{
    ImageReference, ReferenceError, TagError, normalize_reference, tagged_reference,
};
pub use spec::{ImageConfig, Manifest, OCI_LAYER};
pub use target::{RegistryTarget, TargetError, host_name, is_loopback};
pub use write::{BlobName, LayoutWriteError, OCI_LAYOUT_FILE, OciLayoutWriter};

use serde::Serialize;

/// Which layout an archive had.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArchiveFormat {
    /// docker-archive with layers at `<v1 id>/layer.tar` (Docker before 25):
    /// layer digests were unknown until each layer had been read.
    LegacyDockerArchive,
    /// docker-archive with layers named by their digest (podman, skopeo).
    DockerArchive,
    /// OCI image layout (podman `oci-archive`, Docker 25 and later).
    OciLayout,
}

/// What an archive holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageArchive {
    pub format: ArchiveFormat,
    pub images: Vec<ArchivedImage>,
}

/// One image of an archive. Every blob it refers to was in the archive and
/// went through the visitor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchivedImage {
    /// The names the archive gives the image, as written there
    /// (`app:1`, `localhost/app:1`, `docker.io/library/app:1`).
    pub repo_tags: Vec<String>,
    pub config: ConfigBlob,
    /// Bottom layer first.
    pub layers: Vec<LayerBlob>,
    /// The archive's own manifest (OCI layouts); docker-archives have none.
    pub manifest: Option<ManifestBlob>,
    /// `os/architecture[/variant]`, from its config (when it says).
    pub platform: Option<String>,
}

/// An image config and its bytes (a few KiB).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigBlob {
    pub digest: Digest,
    pub bytes: Vec<u8>,
}

/// A layer as stored in the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerBlob {
    /// The digest of the layer's bytes in the archive: its diff ID when
    /// uncompressed (docker-archives), the compressed digest otherwise.
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    /// The digest of the uncompressed layer, from the image config: what
    /// `docker image inspect` lists under RootFS.Layers.
    pub diff_id: Digest,
}

/// A manifest and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestBlob {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

impl ConfigBlob {
    pub fn new(bytes: Vec<u8>) -> ConfigBlob {
        ConfigBlob {
            digest: Digest::of(&bytes),
            bytes,
        }
    }
}

impl ArchivedImage {
    /// The manifest to import the image under: the archive's own, or for a
    /// docker-archive the one `docker push` would write.
    pub fn manifest_blob(&self) -> ManifestBlob {
        match &self.manifest {
            Some(manifest) => manifest.clone(),
            None => docker_manifest(&self.config, &self.layers),
        }
    }
}

impl ImageArchive {
    /// The image a user asked for by name: the one whose names normalize to
    /// the same reference, or else the archive's only image (which is what
    /// `docker save NAME` produced, whatever the engine calls it: podman
    /// saves `app:1` as `localhost/app:1`). The caller names it on nodes.
    /// Of one image saved for several platforms, this machine's.
    pub fn image_for(&self, requested: &str) -> Result<&ArchivedImage, ArchiveError> {
        self.image_for_platform(requested, None)
    }

    /// [`ImageArchive::image_for`], of the platform `platform`
    /// (`linux/arm64`) when one is asked for: a platform the archive does
    /// not hold is an error naming those it does.
    pub fn image_for_platform(
        &self,
        requested: &str,
        platform: Option<&str>,
    ) -> Result<&ArchivedImage, ArchiveError> {
        let wanted = normalize_reference(requested)?;
        let same = |name: &String| normalize_reference(name).is_ok_and(|r| r == wanted);
        // podman names `app:1` `localhost/app:1`, in its archives too.
        let podmans = |name: &String| {
            name.strip_prefix("localhost/")
                .and_then(|short| normalize_reference(short).ok())
                .is_some_and(|r| r == wanted)
        };
        let named = |matches: &dyn Fn(&String) -> bool| -> Vec<&ArchivedImage> {
            self.images
                .iter()
                .filter(|image| image.repo_tags.iter().any(matches))
                .collect()
        };
        let mut candidates = named(&same);
        if candidates.is_empty() {
            candidates = named(&podmans);
        }
        // One image (for one or more platforms) needs no name.
        if candidates.is_empty()
            && self
                .images
                .iter()
                .all(|i| i.repo_tags == self.images[0].repo_tags)
        {
            candidates = self.images.iter().collect();
        }
        if candidates.is_empty() {
            let available = self
                .images
                .iter()
                .map(|image| match &image.repo_tags[..] {
                    [] => format!("an untagged image (config {})", image.config.digest),
                    tags => tags.join(", "),
                })
                .collect::<Vec<_>>()
                .join("; ");
            return Err(ArchiveError::ImageNotInArchive {
                requested: wanted.to_string(),
                available,
            });
        }
        let present = || {
            candidates
                .iter()
                .map(|i| {
                    i.platform
                        .clone()
                        .unwrap_or_else(|| "an unnamed platform".into())
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        match platform {
            Some(asked) => candidates
                .iter()
                .find(|i| i.platform.as_deref().is_some_and(|p| platform_is(p, asked)))
                .copied()
                .ok_or_else(|| ArchiveError::PlatformNotInArchive {
                    image: wanted.to_string(),
                    requested: asked.to_string(),
                    present: present(),
                }),
            None if candidates.len() == 1 => Ok(candidates[0]),
            None => {
                let host = resolve::host_platform();
                candidates
                    .iter()
                    .find(|i| i.platform.as_deref().is_some_and(|p| platform_is(p, &host)))
                    .copied()
                    .ok_or_else(|| ArchiveError::NoPlatformForHost {
                        image: wanted.to_string(),
                        host,
                        present: present(),
                    })
            }
        }
    }
}

/// Whether platform `have` (`linux/arm64/v8`) is the platform `want`
/// (`linux/arm64/v8` or, naming no variant, `linux/arm64`).
fn platform_is(have: &str, want: &str) -> bool {
    have == want
        || have
            .strip_prefix(want)
            .is_some_and(|variant| variant.starts_with('/'))
}
