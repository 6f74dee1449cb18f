//! Fuzzes `archive::read_archive` with arbitrary streams: it must never
//! panic, hang or allocate beyond its limits, must call the visitor in
//! order, and whatever it accepts must describe blobs it really saw.
//!
//! The first input byte picks a mode: odd values repair every tar header
//! checksum before reading, so that mutations reach the entry and JSON
//! handling instead of stopping at the first checksum.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loadmaster::archive::{
    BlobEnd, BlobStart, BlobVisitor, Digest, Limits, index_json, normalize_reference,
    read_archive,
};
use std::collections::BTreeMap;
use std::io;

/// Checks the order of visitor calls and keeps what each blob turned out to be.
#[derive(Default)]
struct Checker {
    open: Option<(usize, u64, Option<Digest>)>,
    received: u64,
    seen: BTreeMap<Digest, u64>,
    next_index: usize,
}

impl BlobVisitor for Checker {
    fn blob_start(&mut self, start: &BlobStart<'_>) -> io::Result<()> {
        assert!(self.open.is_none(), "blob_start while a blob is open");
        assert_eq!(start.index, self.next_index);
        self.next_index += 1;
        self.open = Some((start.index, start.size, start.digest));
        self.received = 0;
        Ok(())
    }

    fn blob_data(&mut self, chunk: &[u8]) -> io::Result<()> {
        let (_, size, _) = self.open.expect("blob_data outside a blob");
        assert!(!chunk.is_empty());
        self.received += chunk.len() as u64;
        assert!(self.received <= size, "more data than the declared size");
        Ok(())
    }

    fn blob_end(&mut self, end: &BlobEnd) -> io::Result<()> {
        let (index, size, named) = self.open.take().expect("blob_end outside a blob");
        assert_eq!(end.index, index);
        assert_eq!(end.size, size);
        assert_eq!(self.received, size, "blob ended early");
        if let Some(named) = named {
            assert_eq!(named, end.digest, "blob_end after a digest mismatch");
        }
        self.seen.insert(end.digest, end.size);
        Ok(())
    }
}

/// Recomputes the checksum of every header block, walking entries by their
/// (octal) size fields.
fn repair_checksums(data: &mut [u8]) {
    let mut at = 0;
    while at + 512 <= data.len() {
        let block = &mut data[at..at + 512];
        if block.iter().all(|&b| b == 0) {
            return;
        }
        block[148..156].copy_from_slice(b"        ");
        let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
        block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let size = std::str::from_utf8(&block[124..135])
            .ok()
            .and_then(|s| u64::from_str_radix(s.trim_matches(|c| c == ' ' || c == '\0'), 8).ok())
            .unwrap_or(0);
        let Some(next) = (size.div_ceil(512) * 512 + 512).try_into().ok().and_then(|d: usize| at.checked_add(d)) else {
            return;
        };
        at = next;
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let mut data = rest.to_vec();
    if mode & 1 == 1 {
        repair_checksums(&mut data);
    }
    // Small limits, so that inputs of a fuzzer's size reach them.
    let limits = Limits {
        max_metadata_entry: 16 << 10,
        max_metadata_total: 256 << 10,
    };
    let mut checker = Checker::default();
    let Ok(archive) = read_archive(&data[..], &mut checker, &limits) else {
        return;
    };
    assert!(checker.open.is_none(), "success with a blob still open");
    assert!(!archive.images.is_empty());
    for image in &archive.images {
        // What the reader kept is exactly the blob it names.
        assert_eq!(Digest::of(&image.config.bytes), image.config.digest);
        // Every blob of an accepted image went through the visitor.
        assert_eq!(checker.seen.get(&image.config.digest), Some(&(image.config.bytes.len() as u64)));
        for layer in &image.layers {
            assert_eq!(checker.seen.get(&layer.digest), Some(&layer.size));
        }
        let manifest = image.manifest_blob();
        if let Some(own) = &image.manifest {
            assert_eq!(Digest::of(&own.bytes), own.digest);
            assert_eq!(checker.seen.get(&own.digest), Some(&(own.bytes.len() as u64)));
        }
        let name = normalize_reference("fuzz:1").unwrap();
        let index = index_json(&manifest, &name);
        assert!(index.len() > 2);
        for tag in &image.repo_tags {
            let _ = normalize_reference(tag);
        }
        let _ = archive.image_for(image.repo_tags.first().map_or("x", |t| t.as_str()));
    }
});
