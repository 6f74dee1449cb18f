//! The tar stream a node's `ctr images import` reads: an OCI image layout
//! holding only the blobs that node lacks, written as blobs arrive.
//!
//! Nothing is buffered: each blob's header goes out with its declared size,
//! then its bytes as they come, so a multi-GiB layer passes through in
//! chunks. A blob whose digest is not known yet (a legacy docker-archive
//! layer, hashed while it streams) is written under a placeholder name:
//! containerd's importer stores every entry under the digest it computes and
//! finds blobs through `index.json` and the manifest, which come last.
//!
//! Headers are POSIX ustar, sizes of 8 GiB and more in GNU base-256, which
//! both GNU tar and Go's archive/tar (containerd) read.

use super::digest::Digest;
use super::tar_stream::{BLOCK, padding};
use std::io::{self, Write};

/// The name a blob is written under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobName {
    /// `blobs/sha256/<hex>`.
    Digest(Digest),
    /// `blobs/sha256/pending-<n>`: for a blob whose digest is learnt only
    /// once it has been streamed. `n` must be unique within one stream, and
    /// should be across the loads into one node: containerd's importer
    /// writes each entry through an ingest named after it, and resumes an
    /// ingest an aborted import left under that name when the size matches,
    /// which would prefix another blob's bytes to this one's.
    Placeholder(u64),
}

impl BlobName {
    pub fn path(&self) -> String {
        match self {
            BlobName::Digest(digest) => format!("blobs/sha256/{}", digest.hex()),
            BlobName::Placeholder(n) => format!("blobs/sha256/pending-{n}"),
        }
    }
}

/// The `oci-layout` file every OCI layout starts from.
pub const OCI_LAYOUT_FILE: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// A misuse of the writer or a failed write. After any error the stream is
/// unusable (a header may promise bytes that never came): abort the import.
#[derive(Debug, thiserror::Error)]
pub enum LayoutWriteError {
    #[error("writing the image layout stream failed: {0}")]
    Io(#[from] io::Error),

    #[error(
        "blob {path} was given {written} bytes, not the {size} its header declared: the source stream changed size while being copied"
    )]
    SizeMismatch {
        path: String,
        size: u64,
        written: u64,
    },

    #[error("{action} while blob {path} is still being written: end it first")]
    BlobOpen { path: String, action: &'static str },

    #[error("data was written with no blob started: call begin_blob first")]
    NoBlobOpen,

    #[error("cannot name a tar entry {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },

    #[error("the image layout stream failed earlier and cannot be continued: abort the import")]
    Failed,
}

impl From<LayoutWriteError> for io::Error {
    fn from(error: LayoutWriteError) -> io::Error {
        match error {
            LayoutWriteError::Io(source) => source,
            other => io::Error::other(other),
        }
    }
}

struct OpenBlob {
    path: String,
    size: u64,
    written: u64,
}

/// Writes an OCI image layout as a tar stream, one entry at a time.
pub struct OciLayoutWriter<W: Write> {
    out: W,
    open: Option<OpenBlob>,
    failed: bool,
}

impl<W: Write> OciLayoutWriter<W> {
    pub fn new(out: W) -> OciLayoutWriter<W> {
        OciLayoutWriter {
            out,
            open: None,
            failed: false,
        }
    }

    /// Starts a blob of exactly `size` bytes.
    pub fn begin_blob(&mut self, name: BlobName, size: u64) -> Result<(), LayoutWriteError> {
        self.usable()?;
        if let Some(open) = &self.open {
            return Err(LayoutWriteError::BlobOpen {
                path: open.path.clone(),
                action: "a new blob was started",
            });
        }
        let path = name.path();
        let header = self.guard(|| header(&path, size))?;
        self.guard_io(|out| out.write_all(&header))?;
        self.open = Some(OpenBlob {
            path,
            size,
            written: 0,
        });
        Ok(())
    }

    /// The next bytes of the open blob.
    pub fn write_chunk(&mut self, chunk: &[u8]) -> Result<(), LayoutWriteError> {
        self.usable()?;
        let Some(open) = &mut self.open else {
            return Err(LayoutWriteError::NoBlobOpen);
        };
        let written = open.written + chunk.len() as u64;
        if written > open.size {
            let error = LayoutWriteError::SizeMismatch {
                path: open.path.clone(),
                size: open.size,
                written,
            };
            self.failed = true;
            return Err(error);
        }
        open.written = written;
        self.guard_io(|out| out.write_all(chunk))
    }

    /// Ends the open blob, which must have received exactly its size.
    pub fn end_blob(&mut self) -> Result<(), LayoutWriteError> {
        self.usable()?;
        let Some(open) = self.open.take() else {
            return Err(LayoutWriteError::NoBlobOpen);
        };
        if open.written != open.size {
            self.failed = true;
            return Err(LayoutWriteError::SizeMismatch {
                path: open.path,
                size: open.size,
                written: open.written,
            });
        }
        self.write_padding(open.size)
    }

    /// A small file (`index.json`, a manifest) written whole.
    pub fn add_file(&mut self, path: &str, contents: &[u8]) -> Result<(), LayoutWriteError> {
        self.usable()?;
        if let Some(open) = &self.open {
            return Err(LayoutWriteError::BlobOpen {
                path: open.path.clone(),
                action: "a file was added",
            });
        }
        let header = self.guard(|| header(path, contents.len() as u64))?;
        self.guard_io(|out| {
            out.write_all(&header)?;
            out.write_all(contents)
        })?;
        self.write_padding(contents.len() as u64)
    }

    /// Writes `oci-layout` and the end-of-archive marker, flushes, and gives
    /// the output back.
    pub fn finish(mut self) -> Result<W, LayoutWriteError> {
        self.add_file("oci-layout", OCI_LAYOUT_FILE)?;
        self.guard_io(|out| {
            out.write_all(&[0u8; 2 * BLOCK])?;
            out.flush()
        })?;
        Ok(self.out)
    }

    fn usable(&self) -> Result<(), LayoutWriteError> {
        if self.failed {
            Err(LayoutWriteError::Failed)
        } else {
            Ok(())
        }
    }

    fn guard<T>(
        &mut self,
        f: impl FnOnce() -> Result<T, LayoutWriteError>,
    ) -> Result<T, LayoutWriteError> {
        let result = f();
        self.failed |= result.is_err();
        result
    }

    fn guard_io(
        &mut self,
        f: impl FnOnce(&mut W) -> io::Result<()>,
    ) -> Result<(), LayoutWriteError> {
        let result = f(&mut self.out);
        self.failed |= result.is_err();
        result.map_err(LayoutWriteError::Io)
    }

    fn write_padding(&mut self, size: u64) -> Result<(), LayoutWriteError> {
        let zeros = [0u8; BLOCK];
        let pad = padding(size) as usize;
        self.guard_io(|out| out.write_all(&zeros[..pad]))
    }
}

/// A ustar header for a regular file.
fn header(path: &str, size: u64) -> Result<[u8; BLOCK], LayoutWriteError> {
    let invalid = |reason| LayoutWriteError::InvalidPath {
        path: path.to_string(),
        reason,
    };
    if path.is_empty()
        || path.starts_with('/')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(invalid(
            "it must be a relative path without empty, '.' or '..' components",
        ));
    }
    if path.contains('\0') {
        return Err(invalid("it contains a NUL byte"));
    }
    let (prefix, name) = split_ustar_path(path).ok_or_else(|| {
        invalid("it does not fit a ustar header (name up to 100 bytes after a prefix of up to 155)")
    })?;

    let mut block = [0u8; BLOCK];
    block[..name.len()].copy_from_slice(name.as_bytes());
    write_octal(&mut block[100..108], 0o644);
    write_octal(&mut block[108..116], 0); // uid
    write_octal(&mut block[116..124], 0); // gid
    write_size(&mut block[124..136], size);
    write_octal(&mut block[136..148], 0); // mtime: fixed, so streams are reproducible
    block[156] = b'0';
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    block[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    // The checksum is computed with its own field as spaces, then written
    // as six octal digits, NUL, space: what GNU tar and Go write.
    block[148..156].copy_from_slice(b"        ");
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    Ok(block)
}

/// Splits a path into a ustar prefix (up to 155 bytes) and name (up to 100)
/// at a '/'.
fn split_ustar_path(path: &str) -> Option<(&str, &str)> {
    if path.len() <= 100 {
        return Some(("", path));
    }
    path.match_indices('/')
        .map(|(at, _)| (&path[..at], &path[at + 1..]))
        .find(|(prefix, name)| prefix.len() <= 155 && name.len() <= 100 && !name.is_empty())
}

/// Octal digits filling the field but its last byte, which is NUL.
fn write_octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(text.as_bytes());
    field[digits] = 0;
}

/// A size: octal up to 8 GiB - 1, GNU base-256 beyond (octal has 11 digits).
fn write_size(field: &mut [u8], size: u64) {
    if size < 1 << 33 {
        write_octal(field, size);
    } else {
        field.fill(0);
        field[0] = 0x80;
        let bytes = size.to_be_bytes();
        let start = field.len() - bytes.len();
        field[start..].copy_from_slice(&bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::tar_stream::parse_numeric;
    use std::io::Read;
    use std::process::{Command, Stdio};

    /// A layout with a digest-named blob, a placeholder blob written in
    /// uneven chunks, a blob filling whole blocks, an empty blob and files.
    fn sample_stream() -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
        let known = b"known blob".to_vec();
        let pending: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let aligned = vec![b'a'; 1024];
        let mut writer = OciLayoutWriter::new(Vec::new());
        writer
            .begin_blob(BlobName::Digest(Digest::of(&known)), known.len() as u64)
            .unwrap();
        writer.write_chunk(&known).unwrap();
        writer.end_blob().unwrap();
        writer
            .begin_blob(BlobName::Placeholder(3), pending.len() as u64)
            .unwrap();
        for chunk in pending.chunks(4099) {
            writer.write_chunk(chunk).unwrap();
        }
        writer.end_blob().unwrap();
        writer
            .begin_blob(BlobName::Digest(Digest::of(&aligned)), 1024)
            .unwrap();
        writer.write_chunk(&aligned).unwrap();
        writer.end_blob().unwrap();
        writer
            .begin_blob(BlobName::Digest(Digest::of(b"")), 0)
            .unwrap();
        writer.end_blob().unwrap();
        writer.add_file("index.json", b"{}").unwrap();
        let bytes = writer.finish().unwrap();
        let expected = vec![
            (format!("blobs/sha256/{}", Digest::of(&known).hex()), known),
            ("blobs/sha256/pending-3".to_string(), pending),
            (
                format!("blobs/sha256/{}", Digest::of(&aligned).hex()),
                aligned,
            ),
            (
                format!("blobs/sha256/{}", Digest::of(b"").hex()),
                Vec::new(),
            ),
            ("index.json".to_string(), b"{}".to_vec()),
            ("oci-layout".to_string(), OCI_LAYOUT_FILE.to_vec()),
        ];
        (bytes, expected)
    }

    #[test]
    fn the_tar_crate_reads_back_every_entry() {
        let (bytes, expected) = sample_stream();
        assert_eq!(bytes.len() % BLOCK, 0);
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut found = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            assert_eq!(entry.header().entry_type(), tar::EntryType::Regular);
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            found.push((path, data));
        }
        assert_eq!(found, expected);
        // And ends with the two zero blocks of the end marker.
        assert!(bytes[bytes.len() - 2 * BLOCK..].iter().all(|&b| b == 0));
    }

    #[test]
    fn gnu_tar_lists_and_extracts_it() {
        let (bytes, expected) = sample_stream();
        let scratch = tempfile::Builder::new()
            .prefix("loadmaster-writer-")
            .tempdir()
            .unwrap();
        let dir = scratch.path().to_path_buf();
        let archive = dir.join("layout.tar");
        std::fs::write(&archive, &bytes).unwrap();

        let listing = Command::new("tar")
            .arg("-tvf")
            .arg(&archive)
            .output()
            .unwrap();
        assert!(
            listing.status.success(),
            "{}",
            String::from_utf8_lossy(&listing.stderr)
        );
        assert!(
            listing.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&listing.stderr)
        );
        let listing = String::from_utf8(listing.stdout).unwrap();
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), expected.len(), "{listing}");
        for (line, (path, data)) in lines.iter().zip(&expected) {
            assert!(line.starts_with("-rw-r--r--"), "{line}");
            assert!(line.ends_with(&format!(" {path}")), "{line}");
            assert!(line.contains(&format!(" {} ", data.len())), "{line}");
        }

        let out = dir.join("out");
        std::fs::create_dir_all(&out).unwrap();
        let status = Command::new("tar")
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(&out)
            .stderr(Stdio::inherit())
            .status()
            .unwrap();
        assert!(status.success());
        for (path, data) in &expected {
            assert_eq!(&std::fs::read(out.join(path)).unwrap(), data, "{path}");
        }
    }

    #[test]
    fn sizes_of_8_gib_and_more_use_base_256() {
        let size = (1u64 << 33) + 5;
        let block = header("blobs/sha256/pending-1", size).unwrap();
        assert_eq!(parse_numeric(&block[124..136]).unwrap(), size);
        let parsed = tar::Header::from_byte_slice(&block);
        assert_eq!(parsed.size().unwrap(), size);
        assert_eq!(parsed.cksum().unwrap(), {
            let mut copy = block;
            copy[148..156].copy_from_slice(b"        ");
            copy.iter().map(|&b| u32::from(b)).sum::<u32>()
        });
        let below = header("x", (1 << 33) - 1).unwrap();
        assert_eq!(&below[124..136], b"77777777777\0");
    }

    #[test]
    fn long_paths_use_the_ustar_prefix() {
        let path = format!("{}/{}", "d".repeat(120), "f".repeat(90));
        let mut writer = OciLayoutWriter::new(Vec::new());
        writer.add_file(&path, b"x").unwrap();
        let bytes = writer.finish().unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let first = archive.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(first.path().unwrap().to_str().unwrap(), path);

        let mut writer = OciLayoutWriter::new(Vec::new());
        let err = writer.add_file(&"x".repeat(101), b"").unwrap_err();
        assert!(err.to_string().contains("does not fit"), "{err}");
        for bad in ["/abs", "a/../b", "a//b", ""] {
            let err = OciLayoutWriter::new(Vec::new())
                .add_file(bad, b"")
                .unwrap_err();
            assert!(
                matches!(err, LayoutWriteError::InvalidPath { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn refuses_blobs_of_the_wrong_size_and_stays_failed() {
        let mut writer = OciLayoutWriter::new(Vec::new());
        writer.begin_blob(BlobName::Placeholder(1), 4).unwrap();
        writer.write_chunk(b"abc").unwrap();
        let err = writer.end_blob().unwrap_err();
        assert!(
            err.to_string().contains("given 3 bytes, not the 4"),
            "{err}"
        );
        assert!(matches!(
            writer.add_file("index.json", b"{}"),
            Err(LayoutWriteError::Failed)
        ));

        let mut writer = OciLayoutWriter::new(Vec::new());
        writer.begin_blob(BlobName::Placeholder(1), 2).unwrap();
        let err = writer.write_chunk(b"abc").unwrap_err();
        assert!(
            matches!(err, LayoutWriteError::SizeMismatch { written: 3, .. }),
            "{err}"
        );
        assert!(matches!(writer.finish(), Err(LayoutWriteError::Failed)));
    }

    #[test]
    fn refuses_out_of_order_calls() {
        let mut writer = OciLayoutWriter::new(Vec::new());
        assert!(matches!(
            writer.write_chunk(b"x"),
            Err(LayoutWriteError::NoBlobOpen)
        ));
        let mut writer = OciLayoutWriter::new(Vec::new());
        assert!(matches!(
            writer.end_blob(),
            Err(LayoutWriteError::NoBlobOpen)
        ));
        let mut writer = OciLayoutWriter::new(Vec::new());
        writer.begin_blob(BlobName::Placeholder(1), 1).unwrap();
        let err = writer.begin_blob(BlobName::Placeholder(2), 1).unwrap_err();
        assert!(
            err.to_string().contains("pending-1 is still being written"),
            "{err}"
        );
        let mut writer = OciLayoutWriter::new(Vec::new());
        writer.begin_blob(BlobName::Placeholder(1), 1).unwrap();
        assert!(matches!(
            writer.finish(),
            Err(LayoutWriteError::BlobOpen { .. })
        ));
    }

    #[test]
    fn write_errors_surface_as_io_errors_with_their_kind() {
        // /dev/full fails every write with ENOSPC, as a full disk or a node
        // whose containerd died would.
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let mut writer = OciLayoutWriter::new(full);
        let err = writer.begin_blob(BlobName::Placeholder(1), 1).unwrap_err();
        assert_eq!(io::Error::from(err).kind(), io::ErrorKind::StorageFull);
        assert!(matches!(
            writer.write_chunk(b"x"),
            Err(LayoutWriteError::Failed)
        ));
    }
}
