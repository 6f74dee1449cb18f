//! The engine's host as the kernel reports it: memory (`/proc/meminfo`),
//! sysctls, free disk (`statfs(2)`, or `df` and mountinfo where only a
//! tool on that host can look), cgroup memory counters, and a reader
//! for those files on this machine or inside a podman machine's VM.
//!
//! The lowest layer with the process layer: it knows nothing of engines,
//! plans or runs, so that the doctor, the monitor and triage all measure
//! through the same readers.

pub mod cgroup;
mod df;
mod kernel;
mod reader;
mod statfs;

pub use df::{DfRow, Mount, mount_at, parse_df};
pub use kernel::{mem_available, parse_meminfo, sysctl};
pub use reader::{HostReader, cgroup_of_pid};
pub use statfs::{Space, space, temp_dir};
