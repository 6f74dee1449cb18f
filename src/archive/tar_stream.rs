//! A forward-only tar reader for untrusted input.
//!
//! Written here rather than taken from the `tar` crate because the crate
//! reads GNU long names and PAX headers into memory whatever size their
//! header claims, and ends silently when the stream stops at an entry
//! boundary: a truncated `docker save` must be an error, and a hostile
//! archive must not choose how much we allocate. This reader allocates only
//! for extension headers, after checking their size against a small cap, and
//! requires the end-of-archive marker.
//!
//! It understands what docker (Go's archive/tar), podman (the same) and GNU
//! tar write: ustar and GNU headers, GNU long names and link names, PAX
//! extended headers (`path`, `linkpath`, `size`), octal and base-256 numbers.

use super::error::ArchiveError;
use std::io::{self, Read};

/// The tar block size: headers take one block, data is padded to whole blocks.
pub(super) const BLOCK: usize = 512;

/// The largest PAX or GNU long-name extension we read. Real ones hold a path
/// of at most a few hundred bytes; the cap keeps a crafted one from making
/// us allocate what it claims.
const MAX_EXTENSION: u64 = 64 * 1024;

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum EntryKind {
    Regular,
    Directory,
    /// A symbolic link to this target, as written (relative to the link's directory).
    Symlink(String),
    /// A hard link to this path, relative to the archive root.
    Hardlink(String),
}

/// An entry's header, with extensions applied. The path is as the archive
/// spells it: not yet checked for safety.
#[derive(Debug, Clone)]
pub(super) struct EntryHeader {
    pub path: String,
    pub kind: EntryKind,
    /// Data bytes that follow (0 for everything but regular files).
    pub size: u64,
}

/// Reads entries one after another from a stream that cannot seek.
pub(super) struct TarReader<R> {
    inner: R,
    /// Bytes consumed from `inner` so far.
    offset: u64,
    /// Data bytes of the current entry not yet read.
    remaining: u64,
    /// Padding after the current entry's data.
    padding: u64,
    /// The current entry's path, for errors.
    current: Option<String>,
    finished: bool,
}

/// Extensions that apply to the next real header.
#[derive(Default)]
struct Pending {
    path: Option<String>,
    link: Option<String>,
    size: Option<u64>,
    /// Any extension header at all: a stream ending after one is truncated.
    any: bool,
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R) -> TarReader<R> {
        TarReader {
            inner,
            offset: 0,
            remaining: 0,
            padding: 0,
            current: None,
            finished: false,
        }
    }

    /// The next entry's header, skipping whatever of the current entry was
    /// not read. `None` after the end-of-archive marker.
    pub fn next_entry(&mut self) -> Result<Option<EntryHeader>, ArchiveError> {
        if self.finished {
            return Ok(None);
        }
        self.skip(self.remaining + self.padding)?;
        self.remaining = 0;
        self.padding = 0;
        self.current = None;

        let mut pending = Pending::default();
        loop {
            let mut block = [0u8; BLOCK];
            let read = self.read_full(&mut block)?;
            if read < BLOCK {
                return Err(ArchiveError::Truncated {
                    offset: self.offset,
                    entry: pending.path.clone(),
                });
            }
            if block.iter().all(|&b| b == 0) {
                if pending.any {
                    return Err(self.invalid("an extension header is followed by the end marker"));
                }
                self.finished = true;
                self.drain_trailer()?;
                return Ok(None);
            }
            let header_offset = self.offset - BLOCK as u64;
            verify_checksum(&block).map_err(|detail| ArchiveError::InvalidTar {
                offset: header_offset,
                detail,
            })?;
            let size =
                parse_numeric(&block[124..136]).map_err(|detail| ArchiveError::InvalidTar {
                    offset: header_offset,
                    detail: format!("bad size field: {detail}"),
                })?;
            let typeflag = block[156];
            match typeflag {
                b'x' => {
                    let data = self.read_extension(size)?;
                    apply_pax(&data, &mut pending).map_err(|detail| ArchiveError::InvalidTar {
                        offset: header_offset,
                        detail: format!("bad PAX header: {detail}"),
                    })?;
                    pending.any = true;
                    continue;
                }
                // A global PAX header sets defaults for every entry; none of
                // its keys change how we read the archive.
                b'g' => {
                    self.read_extension(size)?;
                    continue;
                }
                b'L' | b'K' => {
                    let data = self.read_extension(size)?;
                    let text =
                        extension_string(&data).map_err(|detail| ArchiveError::InvalidTar {
                            offset: header_offset,
                            detail: format!("bad GNU long name: {detail}"),
                        })?;
                    if typeflag == b'L' {
                        pending.path = Some(text);
                    } else {
                        pending.link = Some(text);
                    }
                    pending.any = true;
                    continue;
                }
                _ => {}
            }

            let path = match pending.path.take() {
                Some(path) => path,
                None => header_path(&block).map_err(|detail| ArchiveError::InvalidTar {
                    offset: header_offset,
                    detail,
                })?,
            };
            let link = match pending.link.take() {
                Some(link) => link,
                None => {
                    field_string(&block[157..257]).map_err(|detail| ArchiveError::InvalidTar {
                        offset: header_offset,
                        detail: format!("bad link name of {path:?}: {detail}"),
                    })?
                }
            };
            let size = pending.size.unwrap_or(size);
            let kind = match typeflag {
                b'0' | 0 | b'7' => EntryKind::Regular,
                b'5' => EntryKind::Directory,
                b'2' => EntryKind::Symlink(link),
                b'1' => EntryKind::Hardlink(link),
                other => {
                    return Err(ArchiveError::UnsupportedEntry {
                        entry: path,
                        kind: type_name(other),
                    });
                }
            };
            // As in Go's archive/tar: only regular files carry data, whatever
            // the size field of a link or directory says.
            let size = if kind == EntryKind::Regular { size } else { 0 };
            self.remaining = size;
            self.padding = padding(size);
            self.current = Some(path.clone());
            return Ok(Some(EntryHeader { path, kind, size }));
        }
    }

    /// Reads the current entry's data into `buf`; 0 once all of it was read.
    /// The stream ending early is [`ArchiveError::Truncated`].
    pub fn read_data(&mut self, buf: &mut [u8]) -> Result<usize, ArchiveError> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let read = self.read_some(&mut buf[..want])?;
        if read == 0 {
            return Err(self.truncated());
        }
        self.remaining -= read as u64;
        Ok(read)
    }

    fn truncated(&self) -> ArchiveError {
        ArchiveError::Truncated {
            offset: self.offset,
            entry: self.current.clone(),
        }
    }

    fn invalid(&self, detail: &str) -> ArchiveError {
        ArchiveError::InvalidTar {
            offset: self.offset,
            detail: detail.to_string(),
        }
    }

    /// An extension entry's data, after checking its size against the cap.
    fn read_extension(&mut self, size: u64) -> Result<Vec<u8>, ArchiveError> {
        if size > MAX_EXTENSION {
            return Err(self.invalid(&format!(
                "an extension header claims {size} bytes, more than the {MAX_EXTENSION} any real archive needs"
            )));
        }
        // The cap above bounds this allocation.
        let mut data = vec![0u8; size as usize];
        if self.read_full(&mut data)? < data.len() {
            return Err(self.truncated());
        }
        self.skip(padding(size))?;
        Ok(data)
    }

    /// Discards `count` bytes, which must all be there.
    fn skip(&mut self, count: u64) -> Result<(), ArchiveError> {
        let mut scratch = [0u8; 8192];
        let mut left = count;
        while left > 0 {
            let want = scratch
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            let read = self.read_some(&mut scratch[..want])?;
            if read == 0 {
                return Err(self.truncated());
            }
            left -= read as u64;
        }
        Ok(())
    }

    /// After the end marker: tar writers pad with zero blocks (GNU tar to a
    /// 10 KiB record), which we read so the writer never blocks on a full
    /// pipe. Anything else there is not part of this archive.
    fn drain_trailer(&mut self) -> Result<(), ArchiveError> {
        let mut scratch = [0u8; 8192];
        loop {
            let start = self.offset;
            let read = self.read_some(&mut scratch)?;
            if read == 0 {
                return Ok(());
            }
            if let Some(at) = scratch[..read].iter().position(|&b| b != 0) {
                return Err(ArchiveError::TrailingData {
                    offset: start + at as u64,
                });
            }
        }
    }

    /// One `read`, retried on EINTR.
    fn read_some(&mut self, buf: &mut [u8]) -> Result<usize, ArchiveError> {
        loop {
            match self.inner.read(buf) {
                Ok(read) => {
                    self.offset += read as u64;
                    return Ok(read);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ArchiveError::Read {
                        offset: self.offset,
                        source,
                    });
                }
            }
        }
    }

    /// Fills `buf` unless the stream ends first; returns how much was read.
    fn read_full(&mut self, buf: &mut [u8]) -> Result<usize, ArchiveError> {
        let mut filled = 0;
        while filled < buf.len() {
            let read = self.read_some(&mut buf[filled..])?;
            if read == 0 {
                break;
            }
            filled += read;
        }
        Ok(filled)
    }
}

/// Bytes of padding after `size` bytes of data.
pub(super) fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// Checks the header checksum: the sum of the header's bytes with the
/// checksum field counted as spaces. Old writers summed signed bytes, so
/// that sum is accepted too, as GNU tar and Go do.
fn verify_checksum(block: &[u8; BLOCK]) -> Result<(), String> {
    let stored = parse_octal(&block[148..156]).map_err(|e| format!("bad checksum field: {e}"))?;
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    if stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed) {
        Ok(())
    } else {
        Err(format!(
            "header checksum mismatch (stored {stored:o}, computed {unsigned:o}): the header is corrupt"
        ))
    }
}

/// A numeric field: octal text, or GNU base-256 (high bit of the first byte
/// set) for values octal cannot hold, such as sizes of 8 GiB and more.
pub(super) fn parse_numeric(field: &[u8]) -> Result<u64, String> {
    match field.first() {
        Some(&first) if first & 0x80 != 0 => {
            if first & 0x40 != 0 {
                return Err("negative base-256 number".to_string());
            }
            let mut value: u64 = u64::from(first & 0x3f);
            for &b in &field[1..] {
                value = value
                    .checked_mul(256)
                    .and_then(|v| v.checked_add(u64::from(b)))
                    .ok_or("base-256 number too large")?;
            }
            Ok(value)
        }
        _ => parse_octal(field),
    }
}

/// Octal digits, optionally surrounded by spaces and NULs.
fn parse_octal(field: &[u8]) -> Result<u64, String> {
    let text: &[u8] = {
        let start = field
            .iter()
            .position(|&b| b != b' ' && b != 0)
            .unwrap_or(field.len());
        let rest = &field[start..];
        let end = rest
            .iter()
            .position(|&b| b == b' ' || b == 0)
            .unwrap_or(rest.len());
        if rest[end..].iter().any(|&b| b != b' ' && b != 0) {
            return Err(format!(
                "{:?} is not an octal number",
                String::from_utf8_lossy(field)
            ));
        }
        &rest[..end]
    };
    let mut value: u64 = 0;
    for &b in text {
        if !(b'0'..=b'7').contains(&b) {
            return Err(format!(
                "{:?} is not an octal number",
                String::from_utf8_lossy(field)
            ));
        }
        value = value
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or("octal number too large")?;
    }
    Ok(value)
}

/// A NUL-terminated text field.
fn field_string(field: &[u8]) -> Result<String, String> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8(field[..end].to_vec()).map_err(|_| "the name is not UTF-8".to_string())
}

/// The entry name, joined with the ustar prefix field where there is one.
/// GNU headers ("ustar  \0") use that area for other fields.
fn header_path(block: &[u8; BLOCK]) -> Result<String, String> {
    let name = field_string(&block[0..100])?;
    let is_posix_ustar = &block[257..263] == b"ustar\0";
    if is_posix_ustar {
        let prefix = field_string(&block[345..500])?;
        if !prefix.is_empty() {
            return Ok(format!("{prefix}/{name}"));
        }
    }
    Ok(name)
}

/// A GNU long name: the data, up to its first NUL.
fn extension_string(data: &[u8]) -> Result<String, String> {
    field_string(data)
}

/// Applies the PAX records we need ("<len> <key>=<value>\n" each).
fn apply_pax(data: &[u8], pending: &mut Pending) -> Result<(), String> {
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or("a record has no length")?;
        let length: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("a record length is not a number")?;
        if length <= space + 1 || length > rest.len() || rest[length - 1] != b'\n' {
            return Err("a record length does not match its record".to_string());
        }
        let record = &rest[space + 1..length - 1];
        rest = &rest[length..];
        let equals = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or("a record has no '='")?;
        let (key, value) = (&record[..equals], &record[equals + 1..]);
        let text = || -> Result<String, String> {
            if value.contains(&0) {
                return Err("a path contains a NUL byte".to_string());
            }
            String::from_utf8(value.to_vec()).map_err(|_| "a path is not UTF-8".to_string())
        };
        match key {
            b"path" => pending.path = Some(text()?),
            b"linkpath" => pending.link = Some(text()?),
            b"size" => {
                let size = std::str::from_utf8(value)
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse().ok())
                    .ok_or("the size record is not a number")?;
                pending.size = Some(size);
            }
            _ => {}
        }
    }
    Ok(())
}

fn type_name(typeflag: u8) -> String {
    match typeflag {
        b'3' => "character device".to_string(),
        b'4' => "block device".to_string(),
        b'6' => "FIFO".to_string(),
        b'S' => "GNU sparse file".to_string(),
        other if other.is_ascii_graphic() => format!("tar entry of type '{}'", other as char),
        other => format!("tar entry of type {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8]) -> Result<Vec<(EntryHeader, Vec<u8>)>, ArchiveError> {
        let mut reader = TarReader::new(bytes);
        let mut entries = Vec::new();
        while let Some(header) = reader.next_entry()? {
            let mut data = Vec::new();
            let mut buf = [0u8; 100];
            loop {
                let read = reader.read_data(&mut buf)?;
                if read == 0 {
                    break;
                }
                data.extend_from_slice(&buf[..read]);
            }
            entries.push((header, data));
        }
        Ok(entries)
    }

    fn gnu_tar_with_long_name() -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let long = format!("{}/file", "d".repeat(150));
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, &long, &b"hello"[..])
            .unwrap();
        builder.into_inner().unwrap()
    }

    #[test]
    fn reads_gnu_long_names() {
        let entries = read_all(&gnu_tar_with_long_name()).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].0.path, format!("{}/file", "d".repeat(150)));
        assert_eq!(entries[0].1, b"hello");
    }

    #[test]
    fn reads_pax_paths_and_ustar_prefixes() {
        let mut builder = tar::Builder::new(Vec::new());
        let long = format!("{}/file", "p".repeat(300));
        builder
            .append_pax_extensions([("path", long.as_bytes())])
            .unwrap();
        let mut header = tar::Header::new_ustar();
        header.set_path("short").unwrap();
        header.set_size(2);
        header.set_cksum();
        builder.append(&header, &b"ok"[..]).unwrap();
        let prefixed = format!("{}/{}", "a".repeat(120), "b".repeat(90));
        let mut header = tar::Header::new_ustar();
        header.set_path(&prefixed).unwrap();
        header.set_size(0);
        header.set_cksum();
        builder.append(&header, &b""[..]).unwrap();
        let entries = read_all(&builder.into_inner().unwrap()).unwrap();
        assert_eq!(entries[0].0.path, long);
        assert_eq!(entries[0].1, b"ok");
        assert_eq!(entries[1].0.path, prefixed);
    }

    #[test]
    fn a_stream_without_end_marker_is_truncated() {
        let mut bytes = gnu_tar_with_long_name();
        // Cut right after the entry's padded data: an entry boundary.
        bytes.truncate(bytes.len() - 1024);
        let err = read_all(&bytes).unwrap_err();
        assert!(matches!(err, ArchiveError::Truncated { .. }), "{err}");
    }

    #[test]
    fn rejects_a_corrupt_checksum() {
        let mut bytes = gnu_tar_with_long_name();
        // The real header, after the long-name header and its data block.
        bytes[1024 + 10] ^= 1;
        let err = read_all(&bytes).unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
    }

    #[test]
    fn rejects_oversized_extensions_without_allocating_them() {
        let mut header = tar::Header::new_ustar();
        header.set_path("././@LongLink").unwrap();
        header.set_entry_type(tar::EntryType::GNULongName);
        header.set_size(1 << 40);
        header.set_cksum();
        let mut bytes = header.as_bytes().to_vec();
        bytes.extend_from_slice(&[0; 1024]);
        let err = read_all(&bytes).unwrap_err();
        assert!(err.to_string().contains("extension header claims"), "{err}");
    }

    #[test]
    fn rejects_device_entries() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_path("dev/null").unwrap();
        header.set_entry_type(tar::EntryType::Char);
        header.set_size(0);
        header.set_cksum();
        builder.append(&header, &b""[..]).unwrap();
        let err = read_all(&builder.into_inner().unwrap()).unwrap_err();
        assert!(err.to_string().contains("character device"), "{err}");
    }

    #[test]
    fn rejects_data_after_the_end_marker() {
        let mut bytes = gnu_tar_with_long_name();
        bytes.extend_from_slice(&gnu_tar_with_long_name());
        let err = read_all(&bytes).unwrap_err();
        assert!(matches!(err, ArchiveError::TrailingData { .. }), "{err}");
    }

    #[test]
    fn parses_octal_and_base256_numbers() {
        assert_eq!(parse_numeric(b"00000000012\0").unwrap(), 10);
        assert_eq!(parse_numeric(b"  777 \0").unwrap(), 0o777);
        assert_eq!(parse_numeric(b"\0\0\0").unwrap(), 0);
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[4..].copy_from_slice(&(10u64 << 30).to_be_bytes());
        assert_eq!(parse_numeric(&big).unwrap(), 10 << 30);
        assert!(parse_numeric(b"0008\0").is_err());
        assert!(parse_numeric(b"12 34").is_err());
        assert!(parse_numeric(&[0xff; 12]).is_err());
        assert!(
            parse_numeric(&[0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err()
        );
    }
}
