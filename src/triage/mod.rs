//! Triage: why an E2E environment failed, with evidence.
//!
//! Data flows one way: collectors turn what they read into [`Evidence`]
//! (each with its source), [`diagnose`] turns evidence into a [`Diagnosis`]
//! whose confidence follows from that evidence, and [`render`] prints it.
//!
//! - [`log`]: any log (kind, podman, docker, make, go test, loadmaster).
//! - [`recorded`]: loadmaster's own runs, from their journals' typed facts
//!   (no text of loadmaster's is scanned back).
//! - [`kernel`]: OOM kills in kernel log text.
//! - [`kube`]: pod statuses and events as kubectl prints them (tables,
//!   describe, JSON).
//! - [`cgroup`]: a cgroup's memory counters ([`crate::host::cgroup`]) as evidence.
//! - [`collect`]: live collectors run at a failure, and the diagnosis of a
//!   failed `load` ([`collect::diagnose_load`]).
//! - [`signatures`]: the table of known failure texts and exit statuses.
//! - [`diagnosis`]: the rules, with `workload` for pod-level facts;
//!   [`advice`]: what to collect and the fix.
//!
//! Live collectors (a node's cgroup read through `exec`, `dmesg`, `container
//! inspect`) add [`Evidence`] to a [`Case`] before it is diagnosed:
//!
//! ```
//! use loadmaster::triage::{self, Class, Confidence};
//! let log = r#"ERROR: command "podman exec -i n1 ctr images import -" failed with error: exit status 137"#;
//! let mut case = triage::log::scan(log, "load.log");
//! // Exit 137 alone: killed, cause unproven.
//! let root = triage::diagnose(&case).root_cause.unwrap();
//! assert_eq!((root.class, root.confidence), (Class::KilledUnknown, Confidence::Suspected));
//! // The kernel log, read live, names the containerd that `ctr` talks to.
//! case.evidence.extend(triage::kernel::kernel_log_evidence(
//!     "[ 88.1] Memory cgroup out of memory: Killed process 42 (containerd) total-vm:1kB, anon-rss:1kB\n",
//!     "podman machine ssh -- sudo dmesg",
//! ));
//! let root = triage::diagnose(&case).root_cause.unwrap();
//! assert_eq!((root.class, root.confidence), (Class::OomKill, Confidence::Proven));
//! ```

pub mod advice;
pub mod cgroup;
pub mod collect;
pub mod diagnosis;
pub mod evidence;
pub mod kernel;
pub mod kube;
pub mod log;
pub mod recorded;
pub mod render;
pub mod signatures;
mod workload;

pub use diagnosis::{Case, Class, Confidence, Diagnosis, Outcome, Phase, diagnose};
pub use evidence::{Evidence, Fact, Source};

/// Reads a log and diagnoses it: `loadmaster triage --log`.
pub fn triage_log(text: &str, name: &str) -> Diagnosis {
    diagnose(&log::scan(text, name))
}
