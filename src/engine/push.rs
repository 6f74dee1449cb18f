//! `push` of a local image to a registry on loopback, the way each engine
//! does it without leaving anything behind.
//!
//! docker pushes only by name, so the image gets a temporary second tag
//! (`127.0.0.1:PORT/REPO:TAG`) for the push, removed afterwards whatever
//! happened: `rmi` of that tag only untags, the image and the user's own
//! tags stay. podman pushes an image to any destination directly.

use super::{Engine, EngineError, EngineKind, process};
use std::time::Duration;

/// How long a push may take: the first push of a layer compresses it.
const PUSH_TIMEOUT: Duration = Duration::from_secs(60 * 60);

impl Engine {
    /// Pushes `image` to `destination` (`127.0.0.1:PORT/REPO:TAG`), a
    /// plain-HTTP registry on loopback.
    pub fn push_to(&self, image: &str, destination: &str) -> Result<(), EngineError> {
        match self.kind {
            EngineKind::Docker => {
                self.query(&["tag", image, destination])?;
                let pushed = self.push_args(&["push", destination]);
                // The temporary tag goes even when the push failed.
                let untagged = self.query(&["rmi", destination]);
                pushed?;
                untagged.map(drop)
            }
            EngineKind::Podman => {
                let target = format!("docker://{destination}");
                self.push_args(&["push", "--tls-verify=false", image, &target])
            }
        }
    }

    fn push_args(&self, args: &[&str]) -> Result<(), EngineError> {
        let done = process::run(&mut self.command(args), PUSH_TIMEOUT)
            .map_err(|e| self.spawn_error(args, e))?;
        if done.timed_out {
            return Err(EngineError::Timeout {
                command: self.describe(args),
                seconds: PUSH_TIMEOUT.as_secs(),
            });
        }
        self.check(args, done).map(drop)
    }
}
