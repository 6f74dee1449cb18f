//! Reading an image archive in one forward pass: every content entry is
//! hashed and handed to a [`BlobVisitor`] chunk by chunk as it streams by,
//! and only small metadata is kept, to work out the images at the end.
//!
//! Memory is the chunk buffer plus the metadata, whatever the size of the
//! layers: a `docker save` of a 3 GiB image is read with the same few MiB
//! as one of 3 MiB. Limits on metadata (per entry and in total, including
//! the list of entries seen) keep a crafted archive from growing that.

use super::ImageArchive;
use super::digest::Digest;
use super::error::ArchiveError;
use super::tar_stream::{EntryKind, TarReader};
use super::{legacy, resolve};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::io::{self, Read};

/// The size of the buffer every entry's data passes through.
pub const CHUNK_SIZE: usize = 256 * 1024;

/// What the reader accounts per entry it remembers, on top of the path: the
/// map node and the record. An estimate that errs high.
const RECORD_OVERHEAD: u64 = 128;

/// How many links a path may go through: more is a loop or crafted.
const MAX_LINK_HOPS: usize = 40;

/// How much the reader may keep in memory besides its chunk buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest single metadata entry (manifest, index, config) kept.
    pub max_metadata_entry: u64,
    /// All kept metadata plus the record of every entry seen.
    pub max_metadata_total: u64,
}

impl Default for Limits {
    /// 16 MiB per entry, 64 MiB in all: real configs are a few KiB (a few
    /// hundred KiB for images with long histories).
    fn default() -> Limits {
        Limits {
            max_metadata_entry: 16 << 20,
            max_metadata_total: 64 << 20,
        }
    }
}

/// A content entry about to stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobStart<'a> {
    /// 0 for the first content entry of the archive, then 1, 2...
    pub index: usize,
    /// The entry's path in the archive, normalized (`blobs/sha256/<hex>`,
    /// `<v1 id>/layer.tar`, `<hex>.json`...).
    pub path: &'a str,
    pub size: u64,
    /// The digest the entry's name promises, when it names one; `None` for a
    /// legacy docker layer, whose digest is known only once it was read.
    pub digest: Option<Digest>,
}

/// A content entry that streamed completely and matched its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobEnd {
    pub index: usize,
    /// The sha256 of the entry's bytes, as computed while streaming.
    pub digest: Digest,
    pub size: u64,
}

/// Receives content entries as they stream by. Calls come in order:
/// `blob_start`, `blob_data` for each chunk, then `blob_end` only if the
/// entry was complete and matched its name. An error from any of them stops
/// the reading; [`read_archive`] then returns [`ArchiveError::Visitor`].
pub trait BlobVisitor {
    fn blob_start(&mut self, start: &BlobStart<'_>) -> io::Result<()>;
    fn blob_data(&mut self, chunk: &[u8]) -> io::Result<()>;
    fn blob_end(&mut self, end: &BlobEnd) -> io::Result<()>;
}

/// A visitor that keeps nothing: for learning what an archive holds (every
/// digest is still checked).
pub struct Discard;

impl BlobVisitor for Discard {
    fn blob_start(&mut self, _: &BlobStart<'_>) -> io::Result<()> {
        Ok(())
    }

    fn blob_data(&mut self, _: &[u8]) -> io::Result<()> {
        Ok(())
    }

    fn blob_end(&mut self, _: &BlobEnd) -> io::Result<()> {
        Ok(())
    }
}

/// Reads a `docker save` / `podman save` stream (docker-archive, legacy or
/// not, or an OCI layout in a tar), passing every content entry (layers,
/// configs, manifests: anything a node may need) to `visitor`, and returns
/// the images it holds.
///
/// Archive-level files (`manifest.json`, `index.json`, `oci-layout`,
/// `repositories`) and legacy v1 metadata (`<id>/json`, `<id>/VERSION`) are
/// not content: they are not visited, as no node stores them. Every digest
/// is verified against the entry's name, and every blob the images refer to
/// must be in the archive.
pub fn read_archive(
    source: impl Read,
    visitor: &mut dyn BlobVisitor,
    limits: &Limits,
) -> Result<ImageArchive, ArchiveError> {
    read_archive_of(source, visitor, limits, &[])
}

/// [`read_archive`] for an image whose diff IDs the engine reported: legacy
/// docker layers are then identified before their bytes stream (see
/// [`legacy`](super::legacy)), so that a visitor can skip the ones a node
/// holds. Their digests are verified as for any named blob.
pub fn read_archive_of(
    source: impl Read,
    visitor: &mut dyn BlobVisitor,
    limits: &Limits,
    diff_ids: &[Digest],
) -> Result<ImageArchive, ArchiveError> {
    let mut tar = TarReader::new(source);
    // The legacy layer directory last identified from its `json`, and the
    // diff ID its `layer.tar` (the entry after it) must have.
    let mut identified: Option<(String, Digest)> = None;
    let mut contents = Contents::new(limits.clone());
    let mut buf = vec![0u8; CHUNK_SIZE];
    let mut next_index = 0;
    while let Some(header) = tar.next_entry()? {
        let path = safe_path(&header.path)?;
        match header.kind {
            EntryKind::Directory => {}
            EntryKind::Symlink(target) => {
                let target = symlink_target(&path, &target)?;
                contents.add_link(path, target)?;
            }
            EntryKind::Hardlink(target) => {
                // Hard link targets are relative to the archive root.
                let target = match safe_path(&target) {
                    Ok(target) if !target.is_empty() => target,
                    _ => return Err(unsafe_path(&path, "hard link outside the archive")),
                };
                contents.add_link(path, target)?;
            }
            EntryKind::Regular => {
                if path.is_empty() {
                    return Err(unsafe_path(&header.path, "a file without a name"));
                }
                if !diff_ids.is_empty()
                    && let Some(dir) = path.strip_suffix("/json")
                    && Digest::from_hex(dir).is_ok()
                {
                    let json = read_small(&mut tar, &path, header.size, limits.max_metadata_entry)?;
                    identified = legacy::layer_position(dir, &json, diff_ids)
                        .map(|position| (dir.to_string(), diff_ids[position]));
                    continue;
                }
                let role = classify(&path)?;
                let known = match &identified {
                    Some((dir, digest)) if path.strip_suffix("/layer.tar") == Some(dir) => {
                        Some(*digest)
                    }
                    _ => None,
                };
                let visit = match role {
                    Role::Skip => continue,
                    Role::Layout => None,
                    Role::Blob { .. } => {
                        next_index += 1;
                        Some(next_index - 1)
                    }
                };
                let entry = Entry {
                    path: &path,
                    size: header.size,
                    role,
                    known,
                };
                let stored = entry.consume(&mut tar, &mut buf, &mut contents, visitor, visit)?;
                contents.add_file(path, stored)?;
            }
        }
    }
    resolve::resolve(contents)
}

/// What an entry's path says it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Not content and not needed: read past it.
    Skip,
    /// An archive-level file (`manifest.json`, `index.json`, `oci-layout`):
    /// kept, not visited.
    Layout,
    /// Content: visited, and kept when it is small metadata.
    Blob { named: Option<Digest>, keep: Keep },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Keep {
    /// Metadata by its name (a docker-archive config): kept, and too large is an error.
    Always,
    /// Could be metadata or a layer (OCI blobs): kept if it is small and
    /// starts with '{' like a JSON object; a layer starts with a tar header
    /// (a file name), gzip or zstd magic.
    IfJson,
    /// A layer by its name.
    Never,
}

fn classify(path: &str) -> Result<Role, ArchiveError> {
    match path {
        "manifest.json" | "index.json" | "oci-layout" => return Ok(Role::Layout),
        // Docker's v1 tag list: manifest.json has the same, per image.
        "repositories" => return Ok(Role::Skip),
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("blobs/") {
        let digest = rest
            .strip_prefix("sha256/")
            .and_then(|hex| Digest::from_hex(hex).ok())
            .ok_or_else(|| ArchiveError::InvalidBlobName {
                entry: path.to_string(),
            })?;
        return Ok(Role::Blob {
            named: Some(digest),
            keep: Keep::IfJson,
        });
    }
    let role = match path.split('/').collect::<Vec<_>>()[..] {
        // Legacy docker v1 metadata, superseded by the config.
        [dir, "VERSION" | "json"] if Digest::from_hex(dir).is_ok() => Role::Skip,
        // A legacy layer: the directory is a v1 ID, not the layer's digest.
        [_, "layer.tar"] => Role::Blob {
            named: None,
            keep: Keep::Never,
        },
        [file] => {
            if let Some(hex) = file.strip_suffix(".json")
                && let Ok(digest) = Digest::from_hex(hex)
            {
                Role::Blob {
                    named: Some(digest),
                    keep: Keep::Always,
                }
            } else if let Some(hex) = file
                .strip_suffix(".tar")
                .or_else(|| file.strip_suffix(".tar.gz"))
                && let Ok(digest) = Digest::from_hex(hex)
            {
                Role::Blob {
                    named: Some(digest),
                    keep: Keep::Never,
                }
            } else {
                Role::Blob {
                    named: None,
                    keep: Keep::IfJson,
                }
            }
        }
        // Anything else may still be referenced by manifest.json by path.
        _ => Role::Blob {
            named: None,
            keep: Keep::IfJson,
        },
    };
    Ok(role)
}

/// What we remember of a regular entry.
#[derive(Debug)]
pub(super) struct Stored {
    pub digest: Digest,
    pub size: u64,
    /// Whether the digest was known from the name (a legacy docker layer's is not).
    pub named: bool,
    pub compression: Compression,
    pub kept: Kept,
}

/// The compression an entry's first bytes show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    fn from_magic(magic: &[u8]) -> Compression {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Whether an entry's bytes were kept, and if not, why.
#[derive(Debug)]
pub(super) enum Kept {
    Bytes(Vec<u8>),
    /// Not metadata by its name and did not start like JSON.
    NotJson,
    /// Larger than `max_metadata_entry`.
    TooLarge,
    /// Would have gone past `max_metadata_total`.
    OverBudget,
}

/// One regular entry being read.
struct Entry<'a> {
    path: &'a str,
    size: u64,
    role: Role,
    /// The digest of an unnamed entry, learnt before its bytes (a legacy
    /// docker layer identified by its v1 ID).
    known: Option<Digest>,
}

impl Entry<'_> {
    /// Reads the entry's data through `buf`, hashing it, keeping it if it is
    /// metadata, and passing it to the visitor as blob `visit` if given.
    fn consume<R: Read>(
        &self,
        tar: &mut TarReader<R>,
        buf: &mut [u8],
        contents: &mut Contents,
        visitor: &mut dyn BlobVisitor,
        visit: Option<usize>,
    ) -> Result<Stored, ArchiveError> {
        let (named, keep) = match self.role {
            Role::Blob { named, keep } => (named, keep),
            Role::Layout | Role::Skip => (None, Keep::Always),
        };
        let expected = named.or(self.known);
        let limit = contents.limits.max_metadata_entry;
        // Decided before reading a byte, from the size the header claims.
        let mut kept = match keep {
            Keep::Always if self.size > limit => {
                return Err(ArchiveError::MetadataTooLarge {
                    entry: self.path.to_string(),
                    size: self.size,
                    limit,
                });
            }
            Keep::Always => {
                if !contents.reserve(self.size) {
                    return Err(contents.over_budget(self.path));
                }
                Keeping::Yes(Vec::with_capacity(self.size as usize))
            }
            Keep::IfJson if self.size > limit => Keeping::No(Kept::TooLarge),
            Keep::IfJson => Keeping::Undecided,
            Keep::Never => Keeping::No(Kept::NotJson),
        };

        if let Some(index) = visit {
            let start = BlobStart {
                index,
                path: self.path,
                size: self.size,
                digest: expected,
            };
            visitor
                .blob_start(&start)
                .map_err(|source| self.visitor_failed(source))?;
        }
        let mut hasher = Sha256::new();
        let mut magic = Vec::with_capacity(4);
        loop {
            let read = tar.read_data(buf)?;
            if read == 0 {
                break;
            }
            let chunk = &buf[..read];
            hasher.update(chunk);
            let wanted = 4 - magic.len();
            magic.extend_from_slice(&chunk[..wanted.min(read)]);
            // The first byte decides: manifests, indexes and configs are JSON
            // objects, and every tool writes them without leading blanks.
            // (Deciding later would lose the bytes already streamed by, and
            // the kept copy would no longer match the blob's digest.)
            if let Keeping::Undecided = kept {
                kept = if chunk[0] != b'{' {
                    Keeping::No(Kept::NotJson)
                } else if contents.reserve(self.size) {
                    // The size was checked against the per-entry limit above.
                    Keeping::Yes(Vec::with_capacity(self.size as usize))
                } else {
                    Keeping::No(Kept::OverBudget)
                };
            }
            if let Keeping::Yes(bytes) = &mut kept {
                bytes.extend_from_slice(chunk);
            }
            if visit.is_some() {
                visitor
                    .blob_data(chunk)
                    .map_err(|source| self.visitor_failed(source))?;
            }
        }
        let digest = Digest::from(hasher);
        if let Some(expected) = expected
            && expected != digest
        {
            return Err(ArchiveError::DigestMismatch {
                entry: self.path.to_string(),
                expected,
                actual: digest,
            });
        }
        if let Some(index) = visit {
            let end = BlobEnd {
                index,
                digest,
                size: self.size,
            };
            visitor
                .blob_end(&end)
                .map_err(|source| self.visitor_failed(source))?;
        }
        Ok(Stored {
            digest,
            size: self.size,
            named: named.is_some(),
            compression: Compression::from_magic(&magic),
            kept: match kept {
                Keeping::Yes(bytes) => Kept::Bytes(bytes),
                Keeping::No(why) => why,
                Keeping::Undecided => Kept::NotJson,
            },
        })
    }

    fn visitor_failed(&self, source: io::Error) -> ArchiveError {
        ArchiveError::Visitor {
            entry: self.path.to_string(),
            source,
        }
    }
}

/// Whether an entry's bytes are being kept, while it streams.
enum Keeping {
    /// Not yet known: the first byte decides.
    Undecided,
    Yes(Vec<u8>),
    No(Kept),
}

/// Everything remembered about the archive's entries, within the limits.
pub(super) struct Contents {
    files: BTreeMap<String, Stored>,
    /// Link path -> target path, both relative to the archive root.
    links: BTreeMap<String, String>,
    /// Bytes of memory accounted so far.
    retained: u64,
    limits: Limits,
}

impl Contents {
    fn new(limits: Limits) -> Contents {
        Contents {
            files: BTreeMap::new(),
            links: BTreeMap::new(),
            retained: 0,
            limits,
        }
    }

    /// Accounts `bytes` more if the total allows it.
    fn reserve(&mut self, bytes: u64) -> bool {
        match self.retained.checked_add(bytes) {
            Some(total) if total <= self.limits.max_metadata_total => {
                self.retained = total;
                true
            }
            _ => false,
        }
    }

    fn over_budget(&self, entry: &str) -> ArchiveError {
        ArchiveError::MetadataBudgetExceeded {
            entry: entry.to_string(),
            limit: self.limits.max_metadata_total,
        }
    }

    fn add_file(&mut self, path: String, stored: Stored) -> Result<(), ArchiveError> {
        if self.links.contains_key(&path) {
            return Err(duplicate(&path, "is both a link and a file".to_string()));
        }
        if let Some(first) = self.files.get(&path) {
            if first.digest != stored.digest {
                return Err(duplicate(
                    &path,
                    format!(
                        "has different contents the second time ({} then {})",
                        first.digest, stored.digest
                    ),
                ));
            }
            // The same bytes again: keep the first copy, free the second.
            if let Kept::Bytes(_) = &stored.kept {
                self.retained -= stored.size;
            }
            return Ok(());
        }
        if !self.reserve(RECORD_OVERHEAD + path.len() as u64) {
            return Err(self.over_budget(&path));
        }
        self.files.insert(path, stored);
        Ok(())
    }

    fn add_link(&mut self, path: String, target: String) -> Result<(), ArchiveError> {
        if self.files.contains_key(&path) {
            return Err(duplicate(&path, "is both a link and a file".to_string()));
        }
        if let Some(first) = self.links.get(&path) {
            if *first != target {
                return Err(duplicate(
                    &path,
                    format!("links to {first:?} and then to {target:?}"),
                ));
            }
            return Ok(());
        }
        if !self.reserve(RECORD_OVERHEAD + (path.len() + target.len()) as u64) {
            return Err(self.over_budget(&path));
        }
        self.links.insert(path, target);
        Ok(())
    }

    pub(super) fn has(&self, path: &str) -> bool {
        self.files.contains_key(path)
    }

    /// The regular entry at `path`, following links; `None` if there is none.
    pub(super) fn lookup(&self, path: &str) -> Result<Option<&Stored>, ArchiveError> {
        let mut current = path;
        for _ in 0..=MAX_LINK_HOPS {
            if let Some(stored) = self.files.get(current) {
                return Ok(Some(stored));
            }
            match self.links.get(current) {
                Some(target) => current = target,
                None => return Ok(None),
            }
        }
        Err(ArchiveError::InvalidMetadata {
            entry: path.to_string(),
            detail: format!("its links form a loop or a chain of more than {MAX_LINK_HOPS}"),
        })
    }

    /// The kept bytes of a metadata entry found at `path`.
    pub(super) fn metadata<'a>(
        &self,
        path: &str,
        stored: &'a Stored,
    ) -> Result<&'a [u8], ArchiveError> {
        match &stored.kept {
            Kept::Bytes(bytes) => Ok(bytes),
            Kept::TooLarge => Err(ArchiveError::MetadataTooLarge {
                entry: path.to_string(),
                size: stored.size,
                limit: self.limits.max_metadata_entry,
            }),
            Kept::OverBudget => Err(self.over_budget(path)),
            Kept::NotJson => Err(ArchiveError::InvalidMetadata {
                entry: path.to_string(),
                detail: "it is referenced as JSON metadata but does not start with '{'".to_string(),
            }),
        }
    }
}

fn duplicate(path: &str, detail: String) -> ArchiveError {
    ArchiveError::DuplicateEntry {
        entry: path.to_string(),
        detail,
    }
}

fn unsafe_path(path: &str, reason: &'static str) -> ArchiveError {
    ArchiveError::UnsafePath {
        entry: path.to_string(),
        reason,
    }
}

/// The path relative to the archive root without `.` or empty components;
/// absolute paths and `..` are refused, as an extractor would write outside
/// its directory.
fn safe_path(raw: &str) -> Result<String, ArchiveError> {
    if raw.starts_with('/') {
        return Err(unsafe_path(raw, "absolute path"));
    }
    let mut parts = Vec::new();
    for component in raw.split('/') {
        match component {
            "" | "." => {}
            ".." => return Err(unsafe_path(raw, "'..' component")),
            other => parts.push(other),
        }
    }
    Ok(parts.join("/"))
}

/// Where a symlink at `link` pointing to `target` leads, relative to the
/// archive root. Docker links deduplicated layers as `../<id>/layer.tar`.
fn symlink_target(link: &str, target: &str) -> Result<String, ArchiveError> {
    if target.starts_with('/') {
        return Err(unsafe_path(link, "symlink to an absolute path"));
    }
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(unsafe_path(link, "symlink pointing outside the archive"));
                }
            }
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        return Err(unsafe_path(link, "symlink to the archive root"));
    }
    Ok(parts.join("/"))
}

/// Reads a whole small entry (a legacy layer's `json`), refusing one larger
/// than `limit` before allocating.
fn read_small<R: Read>(
    tar: &mut TarReader<R>,
    path: &str,
    size: u64,
    limit: u64,
) -> Result<Vec<u8>, ArchiveError> {
    if size > limit {
        return Err(ArchiveError::MetadataTooLarge {
            entry: path.to_string(),
            size,
            limit,
        });
    }
    let mut bytes = vec![0u8; size as usize];
    let mut filled = 0;
    while filled < bytes.len() {
        let read = tar.read_data(&mut bytes[filled..])?;
        if read == 0 {
            break;
        }
        filled += read;
    }
    Ok(bytes)
}
