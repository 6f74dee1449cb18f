//! Memory counters of a cgroup, v1 or v2, and what they prove.
//!
//! The OOM-kill counter is the strongest evidence there is for an OOM kill in
//! a container: the kernel increments it when it kills a task of that cgroup,
//! whatever the engine's own `OOMKilled` flag says. v1 keeps it in
//! `memory.oom_control` (`oom_kill`, kernels 4.13+), v2 in `memory.events`.
//! The reading is separated from the parsing ([`parse`] takes a lookup) so the
//! same code serves a local directory, a node's files read through `exec`,
//! and a podman machine's files read through `podman machine ssh`.

use crate::units::bytes;
use serde::Serialize;
use std::fmt;
use std::path::Path;

/// v1 reports "no limit" as the largest page-aligned counter value
/// (9223372036854771712 on 4 KiB pages); anything this large is no limit.
const V1_UNLIMITED: u64 = 1 << 62;

/// A cgroup's memory counters. A counter the kernel does not provide (old
/// kernels lack v1's `oom_kill` and v2's `memory.peak`) is `None`, never 0:
/// a missing counter proves nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemoryCounters {
    /// 1 or 2.
    pub version: u8,
    /// The limit in bytes; `None` when unlimited.
    pub limit_bytes: Option<u64>,
    pub usage_bytes: Option<u64>,
    /// The highest usage since the cgroup was created (v1
    /// `memory.max_usage_in_bytes`, v2 `memory.peak`).
    pub peak_bytes: Option<u64>,
    /// How often usage hit the limit (v1 `memory.failcnt`, v2 `max` of
    /// `memory.events`).
    pub failcnt: Option<u64>,
    /// v2 `oom` of `memory.events`: times the cgroup ran out of memory.
    pub oom_events: Option<u64>,
    /// Tasks of the cgroup the kernel OOM-killed (v1 `memory.oom_control`,
    /// v2 `memory.events`).
    pub oom_kill: Option<u64>,
    /// v1 `under_oom` of `memory.oom_control`: the cgroup is out of memory now.
    pub under_oom: Option<bool>,
}

/// Why a cgroup's memory counters could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error(
        "{dir} is not a memory cgroup: it has neither memory.current (cgroup v2) nor memory.usage_in_bytes (v1); on v1 the memory controller lives under /sys/fs/cgroup/memory/, on v2 directly under /sys/fs/cgroup/"
    )]
    NotMemoryCgroup { dir: String },
    #[error("{file} holds {value:?}, not a counter: is this a memory cgroup file?")]
    Malformed { file: String, value: String },
}

/// Reads the counters of a cgroup directory on this machine.
pub fn read(dir: &Path) -> Result<MemoryCounters, CgroupError> {
    let lookup = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    parse(&dir.display().to_string(), &lookup)
}

/// Parses counters from a lookup of the cgroup's files by name (`None`: no
/// such file); `dir` names the directory in errors. The version is told by
/// which files exist.
pub fn parse(
    dir: &str,
    file: &dyn Fn(&str) -> Option<String>,
) -> Result<MemoryCounters, CgroupError> {
    if let Some(current) = file("memory.current") {
        let events = file("memory.events").unwrap_or_default();
        return Ok(MemoryCounters {
            version: 2,
            limit_bytes: match file("memory.max") {
                Some(max) if max.trim() == "max" => None,
                Some(max) => Some(number("memory.max", &max)?),
                None => None,
            },
            usage_bytes: Some(number("memory.current", &current)?),
            peak_bytes: file("memory.peak")
                .map(|p| number("memory.peak", &p))
                .transpose()?,
            failcnt: keyed("memory.events", &events, "max")?,
            oom_events: keyed("memory.events", &events, "oom")?,
            oom_kill: keyed("memory.events", &events, "oom_kill")?,
            under_oom: None,
        });
    }
    if let Some(usage) = file("memory.usage_in_bytes") {
        let oom_control = file("memory.oom_control").unwrap_or_default();
        let counter = |name: &str| file(name).map(|v| number(name, &v)).transpose();
        return Ok(MemoryCounters {
            version: 1,
            limit_bytes: counter("memory.limit_in_bytes")?.filter(|&l| l < V1_UNLIMITED),
            usage_bytes: Some(number("memory.usage_in_bytes", &usage)?),
            peak_bytes: counter("memory.max_usage_in_bytes")?,
            failcnt: counter("memory.failcnt")?,
            oom_events: None,
            oom_kill: keyed("memory.oom_control", &oom_control, "oom_kill")?,
            under_oom: keyed("memory.oom_control", &oom_control, "under_oom")?.map(|u| u > 0),
        });
    }
    Err(CgroupError::NotMemoryCgroup {
        dir: dir.to_string(),
    })
}

fn number(file: &str, value: &str) -> Result<u64, CgroupError> {
    value.trim().parse().map_err(|_| CgroupError::Malformed {
        file: file.to_string(),
        value: value.trim().to_string(),
    })
}

/// The value of `key` in a flat keyed file (`oom_kill 1` lines).
fn keyed(file: &str, text: &str, key: &str) -> Result<Option<u64>, CgroupError> {
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some(key) {
            return number(file, words.next().unwrap_or_default()).map(Some);
        }
    }
    Ok(None)
}

impl MemoryCounters {
    /// The file that holds the OOM-kill counter, for messages.
    pub fn oom_kill_file(&self) -> &'static str {
        if self.version == 1 {
            "memory.oom_control"
        } else {
            "memory.events"
        }
    }

    /// True when usage reached the limit: the peak (or current usage) is
    /// within 5% of it, or the limit was hit at least once.
    pub fn hit_limit(&self) -> bool {
        let near = |used: Option<u64>| match (used, self.limit_bytes) {
            (Some(used), Some(limit)) => used >= limit / 100 * 95,
            _ => false,
        };
        near(self.peak_bytes) || near(self.usage_bytes) || self.failcnt.unwrap_or(0) > 0
    }
}

impl fmt::Display for MemoryCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |v: Option<u64>| v.map_or("unknown".to_string(), bytes);
        write!(
            f,
            "cgroup v{}: limit {}, usage {}, peak {}",
            self.version,
            self.limit_bytes.map_or("none".to_string(), bytes),
            shown(self.usage_bytes),
            shown(self.peak_bytes)
        )?;
        if let Some(failcnt) = self.failcnt {
            write!(f, ", limit hit {failcnt} times")?;
        }
        match self.oom_kill {
            Some(kills) => write!(f, ", oom_kill {kills} ({})", self.oom_kill_file()),
            None => write!(f, ", no oom_kill counter (kernel too old)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn files(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    #[test]
    fn v1_unlimited_limit_is_none_and_missing_oom_kill_is_unknown() {
        // A 4.9 kernel: no oom_kill line in memory.oom_control.
        let counters = parse(
            "test",
            &files(&[
                ("memory.usage_in_bytes", "1048576\n"),
                ("memory.limit_in_bytes", "9223372036854771712\n"),
                ("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n"),
            ]),
        )
        .unwrap();
        assert_eq!(counters.limit_bytes, None);
        assert_eq!(counters.oom_kill, None);
        assert_eq!(counters.under_oom, Some(false));
        assert!(!counters.hit_limit());
    }

    #[test]
    fn v2_max_means_no_limit() {
        let counters = parse(
            "test",
            &files(&[("memory.current", "4096\n"), ("memory.max", "max\n")]),
        )
        .unwrap();
        assert_eq!(counters.version, 2);
        assert_eq!(counters.limit_bytes, None);
        assert_eq!(counters.oom_kill, None);
    }

    #[test]
    fn garbage_is_an_error_naming_the_file() {
        let error = parse("test", &files(&[("memory.current", "lots\n")])).unwrap_err();
        assert!(error.to_string().contains("memory.current"), "{error}");
    }
}
