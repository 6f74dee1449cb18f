//! One node's import: a `ctr images import` running in the node, fed an OCI
//! image-layout tar from a thread of its own through a bounded channel.
//!
//! The channel is what keeps memory bounded when one source feeds several
//! nodes: a slow node blocks the reader once its few queued chunks are
//! full, instead of letting chunks pile up. A node whose import dies stops
//! taking pieces; the reader sees that on its next send and goes on with the
//! others.

use super::node::Session;
use crate::archive::{BlobName, OciLayoutWriter};
use crate::engine::EngineError;
use std::io;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Chunks queued per node. With the reader's 256 KiB chunks this is at most
/// 2 MiB in flight per node.
const QUEUE_DEPTH: usize = 8;

/// How long `ctr` may take, once its input has ended, to write the last
/// blobs and unpack the image.
const IMPORT_FINISH_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// A piece of the tar a node receives.
pub enum Piece {
    BlobStart {
        name: BlobName,
        size: u64,
    },
    Data(Arc<[u8]>),
    BlobEnd,
    /// A whole small file (index.json).
    File {
        path: String,
        bytes: Vec<u8>,
    },
    /// Everything was sent: close the tar and let the import finish.
    /// A feed dropped without it aborts the import, so that nothing is tagged.
    Finish,
}

/// How a node's import ended.
#[derive(Debug)]
pub enum FeedOutcome {
    /// `ctr` exited 0 after the whole tar; what the script printed, which
    /// ends with the check of the name.
    Imported(String),
    /// The import failed: `ctr` exited non-zero, or the node stopped taking input.
    Failed(EngineError),
    /// The load was called off before the tar was complete; `ctr` was stopped.
    Aborted,
}

/// The sending side of one node's import.
pub struct NodeFeed {
    sender: Option<SyncSender<Piece>>,
    worker: JoinHandle<FeedOutcome>,
}

impl NodeFeed {
    /// Starts the import of a node's [`Session`]: `ctr images import` the
    /// way `kind load` runs it (kind adds `exec --privileged`, which `ctr`
    /// does not need: the import runs in the node's containerd, `ctr` only
    /// streams to its socket), followed by the check of the image's name.
    pub fn start(session: Session, snapshotter: &str) -> Result<NodeFeed, EngineError> {
        let session = session.import(snapshotter)?;
        let node = session.container().to_string();
        let (sender, receiver) = sync_channel(QUEUE_DEPTH);
        let worker = thread::Builder::new()
            .name(format!("feed {node}"))
            .spawn(move || feed(session, receiver))
            .map_err(|source| EngineError::Io {
                command: format!("a thread to feed the import in {node}"),
                source,
            })?;
        Ok(NodeFeed {
            sender: Some(sender),
            worker,
        })
    }

    /// Queues a piece; false when the node no longer takes input (its
    /// outcome then says why).
    pub fn send(&mut self, piece: Piece) -> bool {
        match &self.sender {
            Some(sender) => {
                let taken = sender.send(piece).is_ok();
                if !taken {
                    self.sender = None;
                }
                taken
            }
            None => false,
        }
    }

    pub fn is_taking(&self) -> bool {
        self.sender.is_some()
    }

    /// Waits for the import to end. Without a `Piece::Finish` sent before,
    /// this aborts it.
    pub fn outcome(mut self) -> FeedOutcome {
        drop(self.sender.take());
        self.worker.join().unwrap_or_else(|_| {
            FeedOutcome::Failed(EngineError::Io {
                command: "the import thread".into(),
                source: io::Error::other("it panicked"),
            })
        })
    }
}

fn feed(mut session: crate::engine::ExecSession, pieces: Receiver<Piece>) -> FeedOutcome {
    let written = write_pieces(&mut session, &pieces);
    // Stop taking pieces before waiting on ctr, so the reader moves on.
    drop(pieces);
    match written {
        Ok(true) => match session.finish(IMPORT_FINISH_TIMEOUT) {
            Ok(done) => FeedOutcome::Imported(String::from_utf8_lossy(&done.stdout).into_owned()),
            Err(error) => FeedOutcome::Failed(error),
        },
        // Called off: dropping the session stops ctr before it sees an
        // index, so the node tags nothing.
        Ok(false) => FeedOutcome::Aborted,
        // The node stopped reading. What ctr or the engine said about it
        // explains more than the broken pipe.
        Err(write_error) => {
            let node = session.container().to_string();
            match session.finish(Duration::from_secs(30)) {
                Err(error) => FeedOutcome::Failed(error),
                Ok(_) => FeedOutcome::Failed(EngineError::Io {
                    command: format!("ctr images import in {node}"),
                    source: write_error,
                }),
            }
        }
    }
}

/// Writes pieces until `Finish` (true) or until the sender is dropped (false).
fn write_pieces(
    session: &mut crate::engine::ExecSession,
    pieces: &Receiver<Piece>,
) -> io::Result<bool> {
    let mut tar = OciLayoutWriter::new(session.stdin());
    for piece in pieces {
        match piece {
            Piece::BlobStart { name, size } => tar.begin_blob(name, size)?,
            Piece::Data(chunk) => tar.write_chunk(&chunk)?,
            Piece::BlobEnd => tar.end_blob()?,
            Piece::File { path, bytes } => tar.add_file(&path, &bytes)?,
            Piece::Finish => {
                tar.finish()?;
                return Ok(true);
            }
        }
    }
    Ok(false)
}
