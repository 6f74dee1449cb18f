//! loadmaster: local Kubernetes E2E environments (kind clusters on docker or
//! podman) that come up within the machine's limits, and a diagnosis with
//! evidence when they do not.
//!
//! The library does the work; `src/main.rs` only calls [`cli::main`].
//! Modules are layered, each using only its own layer and those below
//! (`tests/layers.rs` keeps it so), top first: `cli`; `report`; `runner`;
//! `monitor`, `triage`, `doctor`; `plan`, `journal` (plain data);
//! `deliver`, `push`, `registry`; `engine`, `cluster`, `archive`,
//! `kind_config`; `process`, `host`, `units`, `time`.
//!
//! The low layer:
//!
//! - [`process`]: child processes with deadlines and captured output.
//! - [`host`]: the kernel's figures (meminfo, sysctls, statfs, cgroup
//!   memory counters), here or in a podman machine's VM.
//! - [`time`]: UTC instants to the millisecond; [`units`]: sizes and
//!   durations as people read them.
//! - [`kind_config`]: what a kind cluster config asks for (nodes, ports).
//!
//! The others, in the order data flows through them:
//!
//! - [`engine`]: docker and podman behind one interface (info, inspect, save
//!   as a stream, exec with streamed stdin, containers by label).
//! - [`cluster`]: kind clusters and their nodes, found by kind's labels.
//! - [`archive`]: image archives streamed from `docker save` / `podman save`,
//!   and the OCI layout stream a node imports.
//! - [`deliver`]: `load`: images into every node, only the blobs each
//!   lacks, verified; through `save` or through a `push` to [`registry`].
//! - [`registry`]: a minimal OCI distribution endpoint on loopback, so that
//!   an engine's `push` sends only the blobs the nodes lack.
//! - [`push`]: images into a real registry (OCI distribution client): only
//!   the blobs it lacks, streamed, retried, with the engines' credentials.
//! - [`triage`]: a diagnosis from evidence (logs, cgroup counters, the
//!   kernel log): root cause, confidence, evidence for and against, fix.
//! - [`doctor`]: the pre-flight: the machine (or the engine's VM) measured
//!   against what the environment needs, each finding with its fix.
//! - [`plan`]: the plan file (YAML): cluster, images, deploy steps, test,
//!   teardown, budget; checked with line:column errors; its JSON Schema.
//! - [`monitor`]: resource samples (engine memory, node cgroups, disk)
//!   taken during a run.
//! - [`journal`]: the append-only record of a run (events, samples,
//!   artifacts), readable after a crash.
//! - [`runner`]: `up`, `test`, `down`, `run` of a plan: cluster (kind or an
//!   existing kubeconfig context), budgeted builds, delivery (into nodes or
//!   through a registry), deploy, the test, teardown; each step journaled.
//! - [`report`]: a run's report from its journal: HTML with charts,
//!   Markdown for CI summaries, JUnit XML.
//! - [`cli`]: the command line.

pub mod archive;
pub mod cli;
pub mod cluster;
pub mod deliver;
pub mod doctor;
pub mod engine;
pub mod host;
pub mod journal;
pub mod kind_config;
pub mod monitor;
pub mod plan;
pub mod process;
pub mod push;
pub mod registry;
pub mod report;
pub mod runner;
pub mod time;
pub mod triage;
pub mod units;
