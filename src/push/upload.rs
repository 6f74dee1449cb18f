//! Uploading the blobs a repository lacks while the image streams out of
//! the engine: the archive reader hands each blob over chunk by chunk, and
//! this visitor sends the missing ones on.
//!
//! Memory is one buffer of [`CHUNK_BYTES`], whatever the layer sizes: a
//! blob that fits is sent in one request once complete (monolithic), a
//! larger one as a `PATCH` each time the buffer fills (chunked). Holding
//! the chunk until the registry took it is what lets a failed `PATCH` be
//! tried again without reading the image again.

use super::PushError;
use super::blobs::{self, Session};
use super::client::Client;
use super::progress::{BlobStep, PushProgress};
use crate::archive::{BlobEnd, BlobStart, BlobVisitor, Digest};
use crate::deliver::SourceVisitor;
use std::collections::HashMap;
use std::io;
use std::time::{Duration, Instant};

/// The upload buffer: blobs up to this size go in one request, larger ones
/// in `PATCH`es of this size. A multiple of the archive reader's chunk.
pub const CHUNK_BYTES: usize = 8 << 20;

/// What is known of a blob in the target repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Known {
    Present { size: u64 },
    Missing,
}

/// The blob being uploaded.
struct Current {
    /// Its digest when known before its bytes.
    digest: Option<Digest>,
    index: usize,
    session: Option<Session>,
    size: u64,
}

impl Current {
    fn label(&self) -> String {
        match &self.digest {
            Some(digest) => digest.to_string(),
            None => format!("blob {} of the archive", self.index + 1),
        }
    }
}

/// The visitor the archive reader drives during a push.
pub struct Uploader<'u, 'p> {
    client: &'u mut Client<'p>,
    progress: &'u dyn PushProgress,
    repository: &'u str,
    /// What was looked up; blobs not in it are looked up as they come,
    /// and uploaded ones become present.
    pub known: &'u mut HashMap<Digest, Known>,
    buffer: Vec<u8>,
    current: Option<Current>,
    /// Blobs uploaded, with their sizes.
    pub uploaded: Vec<(Digest, u64)>,
    bytes_read: u64,
    bytes_uploaded: u64,
    last_report: Instant,
    /// Why the reading was stopped, if the push failed.
    pub failure: Option<PushError>,
}

impl<'u, 'p> Uploader<'u, 'p> {
    pub fn new(
        client: &'u mut Client<'p>,
        progress: &'u dyn PushProgress,
        repository: &'u str,
        known: &'u mut HashMap<Digest, Known>,
    ) -> Uploader<'u, 'p> {
        Uploader {
            client,
            progress,
            repository,
            known,
            buffer: Vec::with_capacity(CHUNK_BYTES),
            current: None,
            uploaded: Vec::new(),
            bytes_read: 0,
            bytes_uploaded: 0,
            last_report: Instant::now(),
            failure: None,
        }
    }

    /// Keeps the error and stops the reading.
    fn fail(&mut self, error: PushError) -> io::Error {
        let stop = io::Error::other(format!("stopped: {error}"));
        self.failure = Some(error);
        stop
    }

    /// Whether a blob about to stream must be sent.
    fn needs(&mut self, digest: Option<&Digest>) -> Result<bool, PushError> {
        let Some(digest) = digest else {
            // Known only once read (a legacy layer of an archive).
            return Ok(true);
        };
        Ok(match self.known.get(digest) {
            Some(Known::Present { .. }) => false,
            Some(Known::Missing) => true,
            None => {
                let size = blobs::head(self.client, self.repository, digest)?;
                let known = size.map_or(Known::Missing, |size| Known::Present { size });
                self.known.insert(*digest, known);
                if size.is_some() {
                    self.progress.blob(digest, BlobStep::Present);
                }
                size.is_none()
            }
        })
    }

    /// Sends the full buffer as the next chunk of the current upload.
    fn send_chunk(&mut self) -> Result<(), PushError> {
        let current = self.current.as_mut().expect("a blob is being uploaded");
        let label = current.label();
        let session = match &mut current.session {
            Some(session) => session,
            None => current
                .session
                .insert(blobs::start(self.client, self.repository)?),
        };
        blobs::patch(self.client, self.repository, session, &self.buffer, &label)?;
        self.bytes_uploaded += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }

    fn end_blob(&mut self, end: &BlobEnd) -> Result<(), PushError> {
        let Some(mut current) = self.current.take() else {
            return Ok(());
        };
        let label = current.label();
        match current.session.take() {
            None => blobs::monolithic(self.client, self.repository, &end.digest, &self.buffer)?,
            Some(mut session) => {
                if !self.buffer.is_empty() {
                    blobs::patch(
                        self.client,
                        self.repository,
                        &mut session,
                        &self.buffer,
                        &label,
                    )?;
                }
                blobs::finish(self.client, self.repository, session, &end.digest)?;
            }
        }
        self.bytes_uploaded += self.buffer.len() as u64;
        self.buffer.clear();
        self.known
            .insert(end.digest, Known::Present { size: current.size });
        self.uploaded.push((end.digest, current.size));
        self.progress.blob(
            &end.digest,
            BlobStep::Uploaded {
                bytes: current.size,
            },
        );
        Ok(())
    }

    fn report(&mut self) {
        if self.last_report.elapsed() >= Duration::from_millis(200) {
            self.last_report = Instant::now();
            self.progress
                .streaming(self.bytes_read, self.bytes_uploaded);
        }
    }
}

impl BlobVisitor for Uploader<'_, '_> {
    fn blob_start(&mut self, start: &BlobStart<'_>) -> io::Result<()> {
        match self.needs(start.digest.as_ref()) {
            Ok(true) => {
                self.current = Some(Current {
                    digest: start.digest,
                    index: start.index,
                    session: None,
                    size: start.size,
                });
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(error) => Err(self.fail(error)),
        }
    }

    fn blob_data(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.bytes_read += chunk.len() as u64;
        if self.current.is_some() {
            let mut rest = chunk;
            while !rest.is_empty() {
                let room = CHUNK_BYTES - self.buffer.len();
                let (now, later) = rest.split_at(room.min(rest.len()));
                self.buffer.extend_from_slice(now);
                rest = later;
                if self.buffer.len() == CHUNK_BYTES
                    && let Err(error) = self.send_chunk()
                {
                    return Err(self.fail(error));
                }
            }
        }
        self.report();
        Ok(())
    }

    fn blob_end(&mut self, end: &BlobEnd) -> io::Result<()> {
        self.end_blob(end).map_err(|error| self.fail(error))
    }
}

impl SourceVisitor for Uploader<'_, '_> {
    fn bytes_read(&self) -> u64 {
        self.bytes_read
    }
}
