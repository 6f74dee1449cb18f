//! A cgroup's memory counters ([`crate::host::cgroup`]) as evidence.
//!
//! The OOM-kill counter is the strongest evidence there is for an OOM kill in
//! a container: the kernel increments it when it kills a task of that cgroup,
//! whatever the engine's own `OOMKilled` flag says.

use super::evidence::{Evidence, Fact, Source};
use crate::host::cgroup::{CgroupError, read};
use std::path::Path;

/// The counters of a cgroup directory on this machine, as evidence.
pub fn evidence(dir: &Path) -> Result<Evidence, CgroupError> {
    let counters = read(dir)?;
    Ok(Evidence::new(
        Source::Cgroup {
            dir: dir.display().to_string(),
        },
        Fact::Memory(counters),
    ))
}
