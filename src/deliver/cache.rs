//! The image cache: a directory on loadmaster's host that keeps the blobs
//! of the images the save path streamed, so that a fresh node (a cluster
//! created again) gets an image it saw before without reading the engine.
//!
//! Layout, under the cache's directory:
//! - `blobs/sha256/<hex>`: a blob, named by the sha256 of its bytes;
//! - `images/<hex>.json`: an image, named by the engine's image ID (its
//!   config digest, or its manifest digest with docker's containerd
//!   store): the manifest loadmaster sent the nodes ([`Record`]);
//! - `tmp/`: blobs and records being written;
//! - `lock`: held while the cache is trimmed.
//!
//! **Safe between loads that run at once** (clusters that exist at the same
//! time, each loading from its own loadmaster): every file is written under
//! `tmp/` and renamed into place, so a name holds a whole file or nothing; a
//! blob's name is its content's digest, so two writers of one blob write
//! the same bytes. A reader that opened a file keeps reading it even when a
//! trim removes the name; one that finds a name gone takes the image from
//! the engine.
//!
//! **Verified on use, never trusted**: a hit is read as an OCI layout
//! archive through the archive reader, which hashes every blob against its
//! name, and the image it yields must be the one the engine names (the
//! load's own check). An entry that fails is removed
//! ([`ImageCache::remove_corrupt`]) and the image comes from the engine.
//!
//! **Bounded**: after a load wrote to it, the cache is trimmed to its size
//! (the blobs' bytes) by removing the least recently used blobs first:
//! "used" is a blob's modification time, which a write sets and every hit
//! sets again (access times are not kept on `noatime` mounts). An image
//! record whose blobs are gone is a miss, and is removed by the next trim.
//!
//! **Layers, not only images**: an image that changed (its top layer
//! rebuilt) misses, but the cache may hold its other layers as the blobs
//! the engine's push asks for ([`ImageCache::layers`]). The push path then
//! answers for them from here, feeds a node each of them from its file
//! ([`ImageCache::read_verified`], hashed as it streams), keeps what the
//! engine uploaded ([`BlobWriter`]) and records the image whole
//! ([`ImageCache::record_manifest`]): see [`super::ingest`].

use super::SourceVisitor;
use super::fanout::ARCHIVE_METADATA;
use crate::archive::{
    self, ArchivedImage, BlobEnd, BlobName, BlobStart, BlobVisitor, Digest, ImageConfig,
    ImageReference, ManifestBlob, OciLayoutWriter,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime};

/// The size a cache is trimmed to when none is given.
pub const DEFAULT_MAX_SIZE: u64 = 20 << 30;

/// A file under `tmp/` older than this was left by a load that died: a
/// trim removes it (no blob takes this long to stream).
const STALE_TEMP: Duration = Duration::from_secs(6 * 3600);

/// A cache directory and the size it is kept within.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageCache {
    dir: PathBuf,
    max_size: u64,
}

/// Why the cache cannot be used.
#[derive(Debug, thiserror::Error)]
#[error(
    "the image cache {dir}: {source}; give a directory loadmaster can write (or leave the cache out)"
)]
pub struct CacheError {
    dir: String,
    #[source]
    source: io::Error,
}

/// What an image's record holds: the manifest the nodes were given.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    manifest: Digest,
    media_type: String,
}

/// An image the cache holds whole, as its lookup found it.
#[derive(Clone, Debug)]
pub struct CachedImage {
    manifest: ManifestBlob,
    /// The config and layers, with their sizes.
    blobs: Vec<(Digest, u64)>,
}

impl CachedImage {
    /// Every blob of the image, the manifest's included.
    pub fn digests(&self) -> impl Iterator<Item = Digest> + '_ {
        std::iter::once(self.manifest.digest).chain(self.blobs.iter().map(|(d, _)| *d))
    }
}

/// What a trim removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trimmed {
    pub blobs: u64,
    pub bytes: u64,
    /// The blobs' bytes left.
    pub kept: u64,
}

impl ImageCache {
    /// The cache in `dir` (created if missing), trimmed to `max_size` bytes.
    pub fn open(dir: &Path, max_size: u64) -> Result<ImageCache, CacheError> {
        let cache = ImageCache {
            dir: dir.to_path_buf(),
            max_size,
        };
        for sub in ["blobs/sha256", "images", "tmp"] {
            fs::create_dir_all(dir.join(sub)).map_err(|source| cache.error(source))?;
        }
        Ok(cache)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn error(&self, source: io::Error) -> CacheError {
        CacheError {
            dir: self.dir.display().to_string(),
            source,
        }
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    fn record_path(&self, image_id: &Digest) -> PathBuf {
        self.dir
            .join("images")
            .join(format!("{}.json", image_id.hex()))
    }

    /// The image whose engine ID is `image_id`, when the cache holds its
    /// record, manifest and every blob the manifest names (each of the
    /// size it names). Marks them used. The manifest is checked against
    /// its digest here; the other blobs when they are read.
    pub fn lookup(&self, image_id: &Digest) -> Option<CachedImage> {
        let record: Record = serde_json::from_slice(&fs::read(self.record_path(image_id)).ok()?)
            .ok()
            .or_else(|| {
                // A record that does not parse was not written by this
                // version: it is no use to anyone.
                let _ = fs::remove_file(self.record_path(image_id));
                None
            })?;
        let bytes = fs::read(self.blob_path(&record.manifest)).ok()?;
        if Digest::of(&bytes) != record.manifest {
            let _ = fs::remove_file(self.blob_path(&record.manifest));
            return None;
        }
        let parsed: archive::Manifest = serde_json::from_slice(&bytes).ok()?;
        // The record must describe the image the engine names.
        if parsed.config.digest != *image_id && record.manifest != *image_id {
            let _ = fs::remove_file(self.record_path(image_id));
            return None;
        }
        let blobs: Vec<(Digest, u64)> = std::iter::once(&parsed.config)
            .chain(&parsed.layers)
            .map(|d| (d.digest, d.size))
            .collect();
        let whole = blobs.iter().all(|(digest, size)| {
            fs::metadata(self.blob_path(digest)).is_ok_and(|m| m.len() == *size)
        });
        if !whole {
            return None;
        }
        let now = SystemTime::now();
        for digest in std::iter::once(record.manifest).chain(blobs.iter().map(|(d, _)| *d)) {
            // A blob a trim removed meanwhile makes the read fail, and the
            // image comes from the engine: no need to tell here.
            let _ = File::options()
                .write(true)
                .open(self.blob_path(&digest))
                .and_then(|f| f.set_modified(now));
        }
        Some(CachedImage {
            manifest: ManifestBlob {
                digest: record.manifest,
                media_type: record.media_type,
                bytes,
            },
            blobs,
        })
    }

    /// The image as an OCI layout archive named `reference`, streamed from
    /// the cache's files by a thread of its own.
    pub fn archive(&self, image: &CachedImage, reference: &ImageReference) -> CacheArchive {
        let (reader, writer) = match io::pipe() {
            Ok(pipe) => pipe,
            Err(error) => return CacheArchive::failed(error),
        };
        let paths: Vec<(Digest, PathBuf, u64)> = image
            .blobs
            .iter()
            .map(|(digest, size)| (*digest, self.blob_path(digest), *size))
            .collect();
        let manifest = image.manifest.clone();
        let index = archive::index_json(&manifest, reference);
        let spawned = thread::Builder::new()
            .name("image cache".into())
            .spawn(move || write_layout(writer, &paths, &manifest, &index));
        match spawned {
            Ok(worker) => CacheArchive {
                reader: Some(reader),
                worker: Some(worker),
                failure: None,
            },
            Err(error) => CacheArchive::failed(error),
        }
    }

    /// A visitor that hands every blob to `inner` and writes it into the
    /// cache too.
    pub(super) fn tee<'v>(&self, inner: &'v mut dyn SourceVisitor) -> CacheTee<'v> {
        CacheTee {
            cache: self.clone(),
            inner,
            open: None,
        }
    }

    /// Stores the image the nodes were sent (its manifest and config, the
    /// layers a [`CacheTee`] wrote) under the engine's ID for it.
    pub fn record(&self, image_id: &Digest, image: &ArchivedImage) -> io::Result<()> {
        self.put(&image.config.digest, &image.config.bytes)?;
        self.record_manifest(image_id, &image.manifest_blob())
    }

    /// Stores `manifest` and records it under the engine's ID for its
    /// image, whose config and layers the cache holds already.
    pub fn record_manifest(&self, image_id: &Digest, manifest: &ManifestBlob) -> io::Result<()> {
        self.put(&manifest.digest, &manifest.bytes)?;
        let record = Record {
            manifest: manifest.digest,
            media_type: manifest.media_type.clone(),
        };
        let bytes = serde_json::to_vec(&record).map_err(io::Error::other)?;
        let temp = self.temp_path();
        fs::write(&temp, bytes)?;
        self.commit(&temp, &self.record_path(image_id))
    }

    /// Records `label`'s image with `record`, then trims the cache; says
    /// how that went in the log. A cache that cannot be written costs the
    /// next load its hit, never this load.
    pub fn keep(&self, label: &str, record: impl FnOnce(&ImageCache) -> io::Result<()>) {
        let kept = record(self)
            .map_err(|e| e.to_string())
            .and_then(|()| self.trim().map_err(|e| e.to_string()));
        match kept {
            Ok(trimmed) => tracing::debug!(
                "the image cache {} keeps {label} ({} bytes; the trim removed {} blobs, {} bytes)",
                self.dir.display(),
                trimmed.kept,
                trimmed.blobs,
                trimmed.bytes
            ),
            Err(error) => tracing::warn!(
                "the image cache {} did not keep {label}: {error}",
                self.dir.display(),
            ),
        }
    }

    /// A whole blob held in memory, unless the cache has it.
    fn put(&self, digest: &Digest, bytes: &[u8]) -> io::Result<()> {
        let path = self.blob_path(digest);
        if path.exists() {
            return touch(&path);
        }
        let temp = self.temp_path();
        fs::write(&temp, bytes)?;
        self.commit(&temp, &path)
    }

    fn temp_path(&self) -> PathBuf {
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let count = WRITES.fetch_add(1, Ordering::Relaxed);
        self.dir
            .join("tmp")
            .join(format!("{}-{nanos}-{count}", std::process::id()))
    }

    /// Renames a written temp file into place (removed if that fails).
    fn commit(&self, temp: &Path, path: &Path) -> io::Result<()> {
        fs::rename(temp, path).inspect_err(|_| {
            let _ = fs::remove_file(temp);
        })
    }

    /// The size of blob `digest`, when the cache holds it.
    pub fn blob_size(&self, digest: &Digest) -> Option<u64> {
        fs::metadata(self.blob_path(digest)).ok().map(|m| m.len())
    }

    /// The layers of every image the cache records, as the cache holds
    /// them: (diff ID, a blob of it: the layer itself, uncompressed, as
    /// podman's and docker's classic `save` write it, or compressed, as
    /// docker's containerd store keeps and saves it). Only blobs present
    /// are listed; records and configs that cannot be read are left out.
    pub fn layers(&self) -> BTreeSet<(Digest, Digest)> {
        let mut layers = BTreeSet::new();
        let records = entries(&self.dir.join("images")).unwrap_or_default();
        for (path, _) in records {
            let manifest = fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Record>(&bytes).ok())
                .and_then(|record| fs::read(self.blob_path(&record.manifest)).ok())
                .and_then(|bytes| serde_json::from_slice::<archive::Manifest>(&bytes).ok());
            let Some(manifest) = manifest else { continue };
            let config = fs::read(self.blob_path(&manifest.config.digest))
                .ok()
                .and_then(|bytes| serde_json::from_slice::<ImageConfig>(&bytes).ok());
            let Some(config) = config else { continue };
            for (diff_id, blob) in config.rootfs.diff_ids.iter().zip(&manifest.layers) {
                if self.blob_path(&blob.digest).exists() {
                    layers.insert((*diff_id, blob.digest));
                }
            }
        }
        layers
    }

    /// Streams blob `digest` from its file into `sink`, hashing it, and
    /// marks it used. Bytes that do not hash to `digest` (a corrupt or
    /// truncated file) remove the file and fail: `sink` must then discard
    /// what it took. A failing `sink` stops the read with its error.
    pub fn read_verified(
        &self,
        digest: &Digest,
        mut sink: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<u64, CacheBlobError> {
        let path = self.blob_path(digest);
        let unreadable = |source| CacheBlobError::Unreadable {
            path: path.display().to_string(),
            source,
        };
        let mut file = File::open(&path).map_err(unreadable)?;
        let _ = file.set_modified(SystemTime::now());
        let (mut hasher, mut size) = (Sha256::new(), 0u64);
        let mut chunk = vec![0u8; 256 << 10];
        loop {
            let read = file.read(&mut chunk).map_err(unreadable)?;
            if read == 0 {
                break;
            }
            hasher.update(&chunk[..read]);
            size += read as u64;
            sink(&chunk[..read]).map_err(CacheBlobError::Sink)?;
        }
        let found = Digest::from(hasher);
        if found != *digest {
            let _ = fs::remove_file(&path);
            return Err(CacheBlobError::Corrupt {
                path: path.display().to_string(),
                found,
            });
        }
        Ok(size)
    }

    /// A blob being written into the cache, or None when the cache cannot
    /// take one now (writing to the cache never fails a load).
    pub(super) fn blob_writer(&self) -> Option<BlobWriter> {
        let temp = self.temp_path();
        let file = File::create(&temp).ok()?;
        Some(BlobWriter {
            cache: self.clone(),
            file: Some(io::BufWriter::with_capacity(256 << 10, file)),
            temp,
        })
    }

    /// Hashes each of the image's blobs and removes those whose bytes do not
    /// match their name (a corrupt or truncated file), and the image's
    /// record: the next load takes it from the engine and writes it again.
    /// Returns the blobs removed.
    pub fn remove_corrupt(&self, image_id: &Digest, image: &CachedImage) -> Vec<Digest> {
        let _ = fs::remove_file(self.record_path(image_id));
        image
            .digests()
            .filter(|digest| {
                let path = self.blob_path(digest);
                let intact = File::open(&path)
                    .and_then(|file| hash(BufReader::new(file)))
                    .is_ok_and(|found| found == *digest);
                !intact && fs::remove_file(&path).is_ok()
            })
            .collect()
    }

    /// Removes the least recently used blobs until the rest fit the size,
    /// records whose manifest is gone, and temp files a dead load left.
    /// One trim at a time (`lock`); loads reading or writing go on.
    pub fn trim(&self) -> Result<Trimmed, CacheError> {
        let lock = File::create(self.dir.join("lock")).map_err(|e| self.error(e))?;
        lock.lock().map_err(|e| self.error(e))?;
        let mut blobs: Vec<(SystemTime, u64, PathBuf)> = entries(&self.dir.join("blobs/sha256"))
            .map_err(|e| self.error(e))?
            .into_iter()
            .map(|(path, meta)| {
                (
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    meta.len(),
                    path,
                )
            })
            .collect();
        blobs.sort();
        let mut trimmed = Trimmed {
            kept: blobs.iter().map(|(_, size, _)| size).sum(),
            ..Trimmed::default()
        };
        for (_, size, path) in &blobs {
            if trimmed.kept <= self.max_size {
                break;
            }
            if fs::remove_file(path).is_ok() {
                trimmed.blobs += 1;
                trimmed.bytes += size;
                trimmed.kept -= size;
            }
        }
        for (path, _) in entries(&self.dir.join("images")).map_err(|e| self.error(e))? {
            let manifest = fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Record>(&bytes).ok())
                .map(|record| self.blob_path(&record.manifest));
            if !manifest.is_some_and(|m| m.exists()) {
                let _ = fs::remove_file(&path);
            }
        }
        let now = SystemTime::now();
        for (path, meta) in entries(&self.dir.join("tmp")).map_err(|e| self.error(e))? {
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok());
            if age.is_some_and(|age| age > STALE_TEMP) {
                let _ = fs::remove_file(&path);
            }
        }
        Ok(trimmed)
    }
}

/// The files of a directory with their metadata (a file removed while
/// listing is left out).
fn entries(dir: &Path) -> io::Result<Vec<(PathBuf, fs::Metadata)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Ok(meta) = entry.metadata()
            && meta.is_file()
        {
            found.push((entry.path(), meta));
        }
    }
    Ok(found)
}

fn touch(path: &Path) -> io::Result<()> {
    File::options()
        .write(true)
        .open(path)?
        .set_modified(SystemTime::now())
}

fn hash(mut reader: impl Read) -> io::Result<Digest> {
    let mut hasher = Sha256::new();
    io::copy(&mut reader, &mut hasher)?;
    Ok(Digest::from(hasher))
}

/// Writes the OCI layout of a cached image: its blobs, the manifest, the
/// index naming the image, and `oci-layout`.
fn write_layout(
    out: io::PipeWriter,
    blobs: &[(Digest, PathBuf, u64)],
    manifest: &ManifestBlob,
    index: &[u8],
) -> io::Result<()> {
    let mut tar = OciLayoutWriter::new(io::BufWriter::with_capacity(256 << 10, out));
    let mut chunk = vec![0u8; 256 << 10];
    for (digest, path, size) in blobs {
        let mut file = File::open(path)?;
        tar.begin_blob(BlobName::Digest(*digest), *size)?;
        loop {
            let read = file.read(&mut chunk)?;
            if read == 0 {
                break;
            }
            tar.write_chunk(&chunk[..read])?;
        }
        // A file shorter than its size fails here: the reader sees the
        // archive end early.
        tar.end_blob()?;
    }
    tar.begin_blob(
        BlobName::Digest(manifest.digest),
        manifest.bytes.len() as u64,
    )?;
    tar.write_chunk(&manifest.bytes)?;
    tar.end_blob()?;
    tar.add_file("index.json", index)?;
    tar.finish()?.flush()
}

/// The read side of [`ImageCache::archive`]. A file that could not be read
/// makes the archive end early, and then the read fails with why.
pub struct CacheArchive {
    reader: Option<io::PipeReader>,
    worker: Option<JoinHandle<io::Result<()>>>,
    failure: Option<io::Error>,
}

impl CacheArchive {
    fn failed(error: io::Error) -> CacheArchive {
        CacheArchive {
            reader: None,
            worker: None,
            failure: Some(error),
        }
    }

    /// The writer's end: its error, if it had one.
    fn join(&mut self) -> io::Result<()> {
        drop(self.reader.take());
        match self.worker.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the image cache's reader thread panicked")),
            None => Ok(()),
        }
    }
}

impl Read for CacheArchive {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(error) = self.failure.take() {
            return Err(error);
        }
        let Some(reader) = &mut self.reader else {
            return Ok(0);
        };
        match reader.read(buf)? {
            0 => self.join().map(|()| 0),
            read => Ok(read),
        }
    }
}

impl Drop for CacheArchive {
    fn drop(&mut self) {
        // The writer sees the pipe closed and ends.
        let _ = self.join();
    }
}

/// Why a cached blob could not be read into a node.
#[derive(Debug, thiserror::Error)]
pub enum CacheBlobError {
    #[error("{path} could not be read: {source}")]
    Unreadable {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path} does not hash to its name (its bytes hash to {found}): removed")]
    Corrupt { path: String, found: Digest },
    /// What took the bytes failed (a node's, not the cache's).
    #[error("{0}")]
    Sink(#[source] io::Error),
}

/// A blob being written into the cache under `tmp/`: [`BlobWriter::commit`]
/// names it by its digest, which the writer's caller computed of exactly
/// the bytes written; dropped uncommitted (or after a failed write), the
/// file is removed.
pub(super) struct BlobWriter {
    cache: ImageCache,
    temp: PathBuf,
    /// None after a write failed: the blob is not kept.
    file: Option<io::BufWriter<File>>,
}

impl BlobWriter {
    pub(super) fn write(&mut self, chunk: &[u8]) {
        if let Some(file) = &mut self.file
            && file.write_all(chunk).is_err()
        {
            self.file = None;
        }
    }

    /// Keeps the blob as `digest` (a blob the cache has is only marked
    /// used).
    pub(super) fn commit(mut self, digest: &Digest) {
        let path = self.cache.blob_path(digest);
        let Some(file) = self.file.take() else { return };
        if touch(&path).is_ok() {
            return;
        }
        // No fsync: a file a crash tore fails its digest on use.
        if file.into_inner().is_ok() {
            let _ = self.cache.commit(&self.temp, &path);
        }
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // Gone after a commit renamed it.
        let _ = fs::remove_file(&self.temp);
    }
}

/// [`ImageCache::tee`]: what the source streams goes to the nodes as
/// before, and each content blob into the cache under the digest the
/// archive reader computed. Writing to the cache never fails the load: a
/// blob that could not be written is left out (and the image misses the
/// next time).
pub(super) struct CacheTee<'v> {
    cache: ImageCache,
    inner: &'v mut dyn SourceVisitor,
    open: Option<BlobWriter>,
}

impl BlobVisitor for CacheTee<'_> {
    fn blob_start(&mut self, blob: &BlobStart<'_>) -> io::Result<()> {
        // A blob the cache has already is only marked used.
        let held = blob
            .digest
            .is_some_and(|d| touch(&self.cache.blob_path(&d)).is_ok());
        let wanted = !held && !ARCHIVE_METADATA.contains(&blob.path);
        self.open = wanted.then(|| self.cache.blob_writer()).flatten();
        self.inner.blob_start(blob)
    }

    fn blob_data(&mut self, chunk: &[u8]) -> io::Result<()> {
        if let Some(open) = &mut self.open {
            open.write(chunk);
        }
        self.inner.blob_data(chunk)
    }

    fn blob_end(&mut self, blob: &BlobEnd) -> io::Result<()> {
        // The reader computed the digest of exactly these bytes.
        if let Some(open) = self.open.take() {
            open.commit(&blob.digest);
        }
        self.inner.blob_end(blob)
    }
}

impl SourceVisitor for CacheTee<'_> {
    fn bytes_read(&self) -> u64 {
        self.inner.bytes_read()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::fixtures::{self, Image};
    use crate::archive::{Discard, Limits, normalize_reference, read_archive_of};

    /// A cache in a directory of its own, removed when the test ends.
    struct Scratch(ImageCache);

    impl Scratch {
        fn new(name: &str, max_size: u64) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("lm-image-cache-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            Scratch(ImageCache::open(&dir, max_size).unwrap())
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0.dir);
        }
    }

    /// Counts what passes, as the fanout would take it.
    #[derive(Default)]
    struct Counting(u64);

    impl BlobVisitor for Counting {
        fn blob_start(&mut self, _: &BlobStart<'_>) -> io::Result<()> {
            Ok(())
        }
        fn blob_data(&mut self, chunk: &[u8]) -> io::Result<()> {
            self.0 += chunk.len() as u64;
            Ok(())
        }
        fn blob_end(&mut self, _: &BlobEnd) -> io::Result<()> {
            Ok(())
        }
    }

    impl SourceVisitor for Counting {
        fn bytes_read(&self) -> u64 {
            self.0
        }
    }

    /// Streams `archive` through the cache's tee, as a save-path load does,
    /// and records the image under its config digest.
    fn keep(cache: &ImageCache, archive: &[u8]) -> Digest {
        let mut inner = Counting::default();
        let parsed = {
            let mut tee = cache.tee(&mut inner);
            read_archive_of(archive, &mut tee, &Limits::default(), &[]).unwrap()
        };
        assert!(inner.0 > 0, "the tee passed the bytes on");
        let image = &parsed.images[0];
        cache.record(&image.config.digest, image).unwrap();
        image.config.digest
    }

    fn read_back(cache: &ImageCache, cached: &CachedImage) -> Result<ImageArchive, ArchiveError> {
        let reference = normalize_reference("app:1").unwrap();
        let mut reader = cache.archive(cached, &reference);
        read_archive_of(&mut reader, &mut Discard, &Limits::default(), &[])
    }

    use crate::archive::{ArchiveError, ImageArchive};

    fn image(seed: u8) -> Image {
        Image::new(
            &["app:1"],
            vec![fixtures::layer(seed, 3000), fixtures::layer(seed + 1, 5000)],
        )
    }

    #[test]
    fn an_image_kept_is_found_whole_and_reads_back_as_the_same_image() {
        let scratch = Scratch::new("hit", 1 << 30);
        let cache = &scratch.0;
        for archive in [
            fixtures::legacy_docker(&[image(1)]),
            fixtures::oci_archive(&image(3), fixtures::OciStyle::Docker25),
        ] {
            let id = keep(cache, &archive);
            let cached = cache.lookup(&id).expect("a hit");
            let back = read_back(cache, &cached).unwrap();
            let read = &back.image_for("app:1").unwrap();
            assert_eq!(read.config.digest, id);
            let original =
                read_archive_of(&archive[..], &mut Discard, &Limits::default(), &[]).unwrap();
            let layers = |a: &ImageArchive| -> Vec<Digest> {
                a.images[0].layers.iter().map(|l| l.digest).collect()
            };
            assert_eq!(layers(&back), layers(&original));
        }
    }

    #[test]
    fn a_miss_is_an_unknown_image_or_one_a_blob_of_is_missing() {
        let scratch = Scratch::new("miss", 1 << 30);
        let cache = &scratch.0;
        assert!(cache.lookup(&Digest::of(b"never kept")).is_none());
        let id = keep(cache, &fixtures::legacy_docker(&[image(5)]));
        let cached = cache.lookup(&id).unwrap();
        let (layer, _) = cached.blobs[1];
        fs::remove_file(cache.blob_path(&layer)).unwrap();
        assert!(cache.lookup(&id).is_none(), "a layer gone: a miss");
        // A record naming another image than its manifest's config.
        let other = Digest::of(b"another image");
        fs::copy(cache.record_path(&id), cache.record_path(&other)).unwrap();
        assert!(cache.lookup(&other).is_none());
        assert!(
            !cache.record_path(&other).exists(),
            "the wrong record is removed"
        );
    }

    /// Flips byte `at` of blob `digest`'s file in place (its size kept);
    /// the file's path.
    fn corrupt_blob(cache: &ImageCache, digest: &Digest, at: usize) -> PathBuf {
        let path = cache.blob_path(digest);
        let mut bytes = fs::read(&path).unwrap();
        bytes[at] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        path
    }

    /// [`corrupt_blob`] of the image's last layer: its digest, and its file.
    fn corrupt_layer(cache: &ImageCache, cached: &CachedImage) -> (Digest, PathBuf) {
        let (layer, _) = cached.blobs[2];
        (layer, corrupt_blob(cache, &layer, 100))
    }

    #[test]
    fn layers_are_listed_by_diff_id_and_read_back_checked() {
        let scratch = Scratch::new("layers", 1 << 30);
        let cache = &scratch.0;
        let image = image(9);
        keep(
            cache,
            &fixtures::legacy_docker(std::slice::from_ref(&image)),
        );
        // A docker-archive's layers are stored uncompressed: named by
        // their diff IDs.
        let listed: Vec<(Digest, Digest)> = cache.layers().into_iter().collect();
        let mut expected: Vec<(Digest, Digest)> =
            image.diff_ids().into_iter().map(|d| (d, d)).collect();
        expected.sort();
        assert_eq!(listed, expected);

        let (layer, _) = expected[0];
        let mut read = Vec::new();
        let size = cache
            .read_verified(&layer, |chunk| {
                read.extend_from_slice(chunk);
                Ok(())
            })
            .unwrap();
        assert_eq!((Digest::of(&read), size), (layer, read.len() as u64));

        let path = corrupt_blob(cache, &layer, 10);
        let error = cache.read_verified(&layer, |_| Ok(())).unwrap_err();
        assert!(matches!(error, CacheBlobError::Corrupt { .. }), "{error}");
        assert!(!path.exists(), "a corrupt blob is removed");
        assert!(
            !cache.layers().iter().any(|(_, blob)| *blob == layer),
            "and no longer listed"
        );
    }

    #[test]
    fn a_corrupt_blob_fails_the_read_and_is_removed_alone() {
        let scratch = Scratch::new("corrupt", 1 << 30);
        let cache = &scratch.0;
        let id = keep(cache, &fixtures::legacy_docker(&[image(7)]));
        let cached = cache.lookup(&id).unwrap();
        let (layer, path) = corrupt_layer(cache, &cached);
        // Same size: the lookup cannot tell, the read must.
        let cached = cache.lookup(&id).expect("sizes match");
        let error = read_back(cache, &cached).unwrap_err();
        assert!(error.to_string().contains(&layer.hex()), "{error}");
        assert_eq!(cache.remove_corrupt(&id, &cached), vec![layer]);
        assert!(!path.exists());
        assert!(
            cache.blob_path(&cached.blobs[1].0).exists(),
            "intact blobs stay"
        );
        assert!(cache.lookup(&id).is_none());
    }

    /// A consumer that stops taking the stream at its first bytes, as the
    /// fanout does once every node's import has ended.
    struct Stopped;

    impl BlobVisitor for Stopped {
        fn blob_start(&mut self, _: &BlobStart<'_>) -> io::Result<()> {
            Ok(())
        }
        fn blob_data(&mut self, _: &[u8]) -> io::Result<()> {
            Err(io::Error::other("every node stopped taking the image"))
        }
        fn blob_end(&mut self, _: &BlobEnd) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_load_from_the_cache_that_fails_elsewhere_leaves_the_entry_in_place() {
        use crate::deliver::{CacheUse, DeliverError, reject_entry};
        use crate::engine::{EngineError, EngineKind};
        let scratch = Scratch::new("not-the-entry", 1 << 30);
        let cache = &scratch.0;
        let id = keep(cache, &fixtures::legacy_docker(&[image(50)]));
        let cached = cache.lookup(&id).unwrap();
        let label = || format!("the image cache {}", cache.dir.display());
        let reference = normalize_reference("app:1").unwrap();
        let stopped = read_archive_of(
            cache.archive(&cached, &reference),
            &mut Stopped,
            &Limits::default(),
            &[],
        )
        .unwrap_err();
        assert!(matches!(stopped, ArchiveError::Visitor { .. }), "{stopped}");
        let elsewhere = [
            // The nodes stopped taking what the entry streamed.
            DeliverError::BadArchive {
                label: label(),
                source: Box::new(stopped),
            },
            // A node that vanished.
            DeliverError::Engine(EngineError::ContainerNotFound {
                engine: EngineKind::Docker,
                container: "e2e-control-plane".into(),
            }),
        ];
        for error in elsewhere {
            let said = error.to_string();
            let returned = reject_entry(cache, &id, &cached, error).unwrap_err();
            assert_eq!(returned.to_string(), said, "the error as it was");
            assert!(cache.lookup(&id).is_some(), "the entry stays: {said}");
            assert!(
                cached.digests().all(|d| cache.blob_path(&d).exists()),
                "its files stay: {said}"
            );
        }
        // Reading the entry fails its check: rejected, its bad blob gone.
        let (layer, path) = corrupt_layer(cache, &cached);
        let corrupt = DeliverError::BadArchive {
            label: label(),
            source: Box::new(read_back(cache, &cached).unwrap_err()),
        };
        let rejected = reject_entry(cache, &id, &cached, corrupt).unwrap();
        assert!(
            matches!(&rejected, CacheUse::Rejected { removed: 1, error } if error.contains(&layer.hex())),
            "{rejected:?}"
        );
        assert!(!path.exists());
        assert!(cache.lookup(&id).is_none());
    }

    /// Marks every blob of `image` last used at `when`.
    fn used_at(cache: &ImageCache, image: &CachedImage, when: SystemTime) {
        for digest in image.digests() {
            File::options()
                .write(true)
                .open(cache.blob_path(&digest))
                .unwrap()
                .set_modified(when)
                .unwrap();
        }
    }

    #[test]
    fn a_trim_removes_the_least_recently_used_blobs_and_their_records() {
        let scratch = Scratch::new("trim", 1 << 30);
        let cache = &scratch.0;
        let old = keep(cache, &fixtures::legacy_docker(&[image(10)]));
        let new = keep(cache, &fixtures::legacy_docker(&[image(20)]));
        let (old_cached, new_cached) = (cache.lookup(&old).unwrap(), cache.lookup(&new).unwrap());
        let past = SystemTime::now() - Duration::from_secs(3600);
        used_at(cache, &old_cached, past);
        let size = |c: &CachedImage| -> u64 {
            c.digests()
                .map(|d| fs::metadata(cache.blob_path(&d)).unwrap().len())
                .sum()
        };
        let (old_size, new_size) = (size(&old_cached), size(&new_cached));
        // Room for the newer image only.
        let bounded = ImageCache {
            max_size: new_size,
            ..cache.clone()
        };
        let trimmed = bounded.trim().unwrap();
        assert_eq!(trimmed.kept, new_size);
        assert_eq!(trimmed.bytes, old_size);
        assert!(bounded.lookup(&new).is_some());
        assert!(bounded.lookup(&old).is_none());
        assert!(!cache.record_path(&old).exists(), "its record went with it");
        // A hit marks an image used: now the older one is the newer use.
        let kept_again = keep(cache, &fixtures::legacy_docker(&[image(10)]));
        assert_eq!(kept_again, old);
        let half = ImageCache {
            max_size: old_size,
            ..cache.clone()
        };
        used_at(cache, &new_cached, past);
        assert!(cache.lookup(&old).is_some(), "used now");
        half.trim().unwrap();
        assert!(half.lookup(&old).is_some());
        assert!(half.lookup(&new).is_none());
    }

    #[test]
    fn loads_that_keep_and_read_one_image_at_once_see_only_whole_files() {
        let scratch = Scratch::new("shared", 1 << 30);
        let cache = &scratch.0;
        let archive = fixtures::legacy_docker(&[image(40)]);
        let id = keep(cache, &archive);
        // Writers of the same image, readers of it and trims, all at once,
        // as clusters that exist together would run them.
        thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| keep(cache, &archive));
                scope.spawn(|| {
                    let cached = cache.lookup(&id).expect("a hit");
                    let back = read_back(cache, &cached).expect("whole files");
                    assert_eq!(back.images[0].config.digest, id);
                });
                scope.spawn(|| cache.trim().unwrap());
            }
        });
        assert!(entries(&cache.dir.join("tmp")).unwrap().is_empty());
        let cached = cache.lookup(&id).unwrap();
        assert!(
            cache.remove_corrupt(&id, &cached).is_empty(),
            "every blob intact"
        );
    }

    #[test]
    fn a_read_that_stops_mid_blob_keeps_no_file() {
        let scratch = Scratch::new("partial", 1 << 30);
        let cache = &scratch.0;
        let archive = fixtures::legacy_docker(&[image(30)]);
        let cut = &archive[..archive.len() / 2];
        let mut inner = Counting::default();
        {
            let mut tee = cache.tee(&mut inner);
            assert!(read_archive_of(cut, &mut tee, &Limits::default(), &[]).is_err());
        }
        let leftovers = entries(&cache.dir.join("tmp")).unwrap();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        for (path, meta) in entries(&cache.dir.join("blobs/sha256")).unwrap() {
            let digest = Digest::from_hex(&path.file_name().unwrap().to_string_lossy()).unwrap();
            let bytes = fs::read(&path).unwrap();
            assert_eq!(
                Digest::of(&bytes),
                digest,
                "a whole blob ({} bytes)",
                meta.len()
            );
        }
    }
}
