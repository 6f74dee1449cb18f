//! A pre-flight finding: one check of the machine against what an
//! environment needs, as the doctor makes it and the journal keeps
//! it (the `preflight` step of `up` and `run`). Plain data, below both.

use serde::{Deserialize, Serialize};

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Worth knowing; the environment can still come up.
    Warn,
    /// The environment will not come up (or not reliably) until fixed.
    Fail,
}

/// Where a figure was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// On the engine's host, as the engine's own kernel and mount view
    /// show it.
    Engine,
    /// On this machine, where loadmaster runs.
    Client,
}

/// One check's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable, for scripts: `memory`, `disk.temp`, `port.8080/tcp`...
    pub id: String,
    pub status: Status,
    pub measured: String,
    /// The measured value in bytes, where it is a size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured_bytes: Option<u64>,
    pub needed: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needed_bytes: Option<u64>,
    /// Where the measured value was read.
    pub source: String,
    /// Whose figure it is: the engine's host (inside its VM, or where its
    /// service runs) or this machine, the client's. None for findings
    /// that are no machine's figure (a name, a tool's version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<Side>,
    /// The command (or step) that fixes it; none when all is well.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}
