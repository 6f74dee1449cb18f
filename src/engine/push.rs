//! `push` of a local image to a registry on loopback, the way each engine
//! does it without leaving anything behind.
//!
//! docker pushes only by name, so the image gets a temporary second tag
//! (`127.0.0.1:PORT/REPO:TAG`) for the push, removed afterwards whatever
//! happened: `rmi` of that tag only untags, the image and the user's own
//! tags stay. podman pushes an image to any destination directly.

use super::{Engine, EngineError, EngineKind};
use crate::process;
use std::time::Duration;

/// How long a push may take: the first push of a layer compresses it.
const PUSH_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// How long the engine may take to answer a reachability probe. podman
/// retries a refused connection three times, a second apart.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// The repository a probe asks for; no registry of loadmaster's has it.
pub const PROBE_REPOSITORY: &str = "loadmaster-reach-probe";

impl Engine {
    /// Pushes `image` to `destination` (`127.0.0.1:PORT/REPO:TAG`), a
    /// plain-HTTP registry on loopback. The returned [`Untag`] removes
    /// docker's temporary tag; wait for it with [`Untag::finish`].
    pub fn push_to(&self, image: &str, destination: &str) -> Result<Untag, EngineError> {
        match self.kind {
            EngineKind::Docker => {
                self.query(&["tag", image, destination])?;
                let pushed = self.push_args(&["push", destination]);
                // The temporary tag goes even when the push failed; while
                // the caller delivers what was pushed, not after.
                let engine = self.clone();
                let untag = destination.to_string();
                let untagging =
                    std::thread::spawn(move || engine.query(&["rmi", &untag]).map(drop));
                let untag = Untag(Some(untagging));
                match pushed {
                    Ok(()) => Ok(untag),
                    Err(error) => {
                        drop(untag);
                        Err(error)
                    }
                }
            }
            EngineKind::Podman => {
                let target = format!("docker://{destination}");
                self.push_args(&["push", "--tls-verify=false", image, &target])?;
                Ok(Untag(None))
            }
        }
    }
}

/// docker's temporary push tag being removed in the background.
#[must_use = "finish() reports whether the temporary tag was removed"]
pub struct Untag(Option<std::thread::JoinHandle<Result<(), EngineError>>>);

impl Untag {
    /// Waits for the removal of the temporary tag.
    pub fn finish(mut self) -> Result<(), EngineError> {
        match self.0.take() {
            None => Ok(()),
            Some(untagging) => untagging.join().unwrap_or_else(|_| {
                Err(EngineError::Io {
                    command: "rmi of the temporary push tag".into(),
                    source: std::io::Error::other("the thread panicked"),
                })
            }),
        }
    }
}

impl Drop for Untag {
    /// Dropped unfinished (an error path): still waits, so that the tag is
    /// gone before the process may exit.
    fn drop(&mut self) {
        if let Some(untagging) = self.0.take() {
            let _ = untagging.join();
        }
    }
}

impl Engine {
    /// Has the engine's service (not this CLI: inside its VM, or wherever
    /// it runs) contact the registry at `host` (`ADDRESS:PORT`, plain
    /// HTTP), by pulling [`PROBE_REPOSITORY`], which the registry does not
    /// have. That pull always fails; whether the registry was reached is
    /// for the caller to see in the registry's requests, and the returned
    /// error says why when it was not (`connection refused`, a name that
    /// does not resolve...). Nothing is stored in the engine.
    pub fn probe_registry(&self, host: &str) -> EngineError {
        let image = format!("{host}/{PROBE_REPOSITORY}:probe");
        let target = format!("docker://{image}");
        let args: Vec<&str> = match self.kind {
            EngineKind::Docker => vec!["pull", "-q", &image],
            EngineKind::Podman => vec!["pull", "-q", "--tls-verify=false", &target],
        };
        let done = match process::run(&mut self.command(&args), PROBE_TIMEOUT) {
            Ok(done) => done,
            Err(source) => return self.spawn_error(&args, source),
        };
        if done.timed_out {
            return self.timeout(&args, PROBE_TIMEOUT);
        }
        match self.check(&args, done) {
            Err(error) => error,
            Ok(_) => self.unexpected(
                &args,
                format!("it pulled {image}, which no registry of loadmaster's has"),
            ),
        }
    }

    fn push_args(&self, args: &[&str]) -> Result<(), EngineError> {
        let done = process::run(&mut self.command(args), PUSH_TIMEOUT)
            .map_err(|e| self.spawn_error(args, e))?;
        if done.timed_out {
            return Err(self.timeout(args, PUSH_TIMEOUT));
        }
        self.check(args, done).map(drop)
    }
}
