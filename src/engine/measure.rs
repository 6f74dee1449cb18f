//! Measuring the engine's host from inside it: a short-lived container on
//! the engine that reads `df` of the paths that matter and the kernel's
//! memory figures, so that a VM's or another machine's disk is measured
//! where it is, never on the client's filesystem; and one that reads that
//! host's kernel log, for triage.
//!
//! Why a container and not the engine's `info`: `docker info` reports no
//! free disk and no free memory at all, and `podman info`'s
//! `graphRootUsed` counts the blocks reserved for root as free
//! (`f_bfree`; on this machine 236 GiB "free" where `df` gives 74 GiB),
//! and neither names the filesystem of the directory where `save` stages
//! an image. A container's bind mount is resolved by the engine's own
//! runtime in the engine's mount view, and its `/proc/meminfo` is the
//! engine's kernel's. The container runs with no network, mounts the paths
//! read-only (a missing path is an error, never created), and never pulls:
//! its image is one the engine already holds (a kind node's, a
//! `kindest/node` or a `busybox` image), since a VM or remote engine may
//! have no way to the internet and loadmaster does not fetch images.

use super::{Engine, EngineError, QUERY_TIMEOUT};
use crate::host;
use crate::process;
use std::time::{SystemTime, UNIX_EPOCH};

/// What the engine's host has, as read inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineSide {
    /// The image the measuring container ran.
    pub image: String,
    /// One per path asked about, in that order.
    pub paths: Vec<PathSpace>,
    /// `MemAvailable` of the engine's kernel, in bytes.
    pub mem_available: Option<u64>,
}

/// The filesystem under one path on the engine's host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathSpace {
    pub path: String,
    /// Bytes an unprivileged writer can still use.
    pub available: u64,
    pub total: u64,
    /// `tmpfs`, `ext4`, `xfs`...
    pub fs_type: String,
    /// `major:minor`: two paths on one filesystem share it.
    pub device: String,
}

impl PathSpace {
    /// Files written here take memory, not disk.
    pub fn tmpfs(&self) -> bool {
        self.fs_type == "tmpfs"
    }
}

/// Marks the sections of the measuring container's output.
const MOUNTINFO: &str = "@@loadmaster-mountinfo";
const MEMINFO: &str = "@@loadmaster-meminfo";

/// Repositories whose images have a POSIX shell, `df` and `cat`, besides
/// those of kind nodes found on the engine.
const HELPER_REPOSITORIES: [&str; 2] = ["kindest/node", "busybox"];

impl Engine {
    /// Measures `paths` (and the memory) on the engine's host, in a
    /// container of an image the engine holds: the image of a container
    /// labelled `node_label` (kind's nodes) first.
    pub fn measure_inside(&self, paths: &[&str], node_label: &str) -> Result<EngineSide, String> {
        let targets: Vec<String> = (0..paths.len()).map(|i| format!("/m/{i}")).collect();
        let mut options = Vec::new();
        for (path, target) in paths.iter().zip(&targets) {
            options.push("--mount".into());
            options.push(format!("type=bind,source={path},target={target},readonly"));
        }
        let script = format!(
            "df -Pk {} && echo {MOUNTINFO} && cat /proc/self/mountinfo && echo {MEMINFO} && cat /proc/meminfo",
            targets.join(" ")
        );
        self.run_helper(node_label, &options, &script, |text, image| {
            parse_measure(text, paths, &targets, image)
        })
        .map(|(side, _)| side)
    }

    /// The kernel log of the engine's host (`dmesg`), read in a helper
    /// container with `CAP_SYSLOG` (the kernel's ring buffer is not
    /// namespaced): for an engine in a VM or on another machine, whose
    /// kernel the client cannot read. Returns the log and the command as
    /// it ran.
    pub fn kernel_log_inside(&self, node_label: &str) -> Result<(String, String), String> {
        let options = ["--cap-add".to_string(), "SYSLOG".to_string()];
        self.run_helper(node_label, &options, "dmesg", |text, _| {
            if text.trim().is_empty() {
                return Err("dmesg printed nothing".to_string());
            }
            Ok(text.to_string())
        })
    }

    /// Runs `script` under `sh -c` in a short-lived container on the
    /// engine (no network, never pulled, `options` before the image) and
    /// reads its stdout with `parse(stdout, image)`: with each helper
    /// image in turn until one works, else the last error. Returns what
    /// `parse` made and the command that ran.
    fn run_helper<T>(
        &self,
        node_label: &str,
        options: &[String],
        script: &str,
        parse: impl Fn(&str, &str) -> Result<T, String>,
    ) -> Result<(T, String), String> {
        let images = self.helper_images(node_label)?;
        if images.is_empty() {
            return Err(format!(
                "no image on the {engine} engine to run a helper container with (no kind node, no kindest/node or busybox image; none is pulled)\n  fix: load one into the engine, e.g. `{engine} pull busybox` (or `{engine} load -i busybox.tar` where it has no internet), or create the cluster first",
                engine = self.kind
            ));
        }
        let mut last = String::new();
        for image in images {
            let result = self
                .run_helper_with(&image, options, script)
                .and_then(|(args, text)| {
                    let command = self.describe(&args);
                    match parse(&text, &image) {
                        Ok(value) => Ok((value, command)),
                        Err(detail) => Err(EngineError::UnexpectedAnswer { command, detail }),
                    }
                });
            match result {
                Ok(value) => return Ok(value),
                // Listed but not runnable (another platform, removed meanwhile): the next.
                Err(error) => last = format!("{image}: {error}"),
            }
        }
        Err(last)
    }

    /// Candidate images, the likeliest to work first, without repeats.
    fn helper_images(&self, node_label: &str) -> Result<Vec<String>, String> {
        let filter = format!("label={node_label}");
        let nodes = self
            .query(&["ps", "-a", "--filter", &filter, "--format", "{{.Image}}"])
            .map_err(|e| e.to_string())?
            .stdout_text();
        let local = self
            .query(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .map_err(|e| e.to_string())?
            .stdout_text();
        let known = local.lines().filter(|line| {
            let (repository, tag) = line.rsplit_once(':').unwrap_or((line, ""));
            tag != "<none>"
                && HELPER_REPOSITORIES
                    .iter()
                    .any(|r| repository == *r || repository.ends_with(&format!("/{r}")))
        });
        let mut images: Vec<String> = Vec::new();
        for image in nodes.lines().chain(known).map(str::trim) {
            if !image.is_empty() && !images.iter().any(|i| i == image) {
                images.push(image.to_string());
            }
        }
        Ok(images)
    }

    /// One helper container of `image`: its argv and stdout.
    fn run_helper_with(
        &self,
        image: &str,
        options: &[String],
        script: &str,
    ) -> Result<(Vec<String>, String), EngineError> {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("loadmaster-helper-{}-{stamp}", std::process::id());
        let mut args: Vec<String> = [
            "run",
            "--rm",
            "--name",
            &name,
            "--network",
            "none",
            "--pull",
            "never",
            "--security-opt",
            "label=disable",
            "--entrypoint",
            "sh",
        ]
        .map(String::from)
        .into();
        args.extend(options.iter().cloned());
        args.push(image.to_string());
        args.push("-c".into());
        args.push(script.to_string());
        let done = self.query(&args);
        if matches!(done, Err(EngineError::Timeout { .. })) {
            // The client gave up; the container may still run on the engine.
            drop(process::run(
                &mut self.command(&["rm", "-f", &name]),
                QUERY_TIMEOUT,
            ));
        }
        let text = done?.stdout_text();
        Ok((args, text))
    }
}

/// The measuring container's output: `df -Pk` of the targets, then
/// mountinfo, then meminfo.
fn parse_measure(
    text: &str,
    paths: &[&str],
    targets: &[String],
    image: &str,
) -> Result<EngineSide, String> {
    let (df, rest) = text
        .split_once(&format!("{MOUNTINFO}\n"))
        .ok_or("no mountinfo section")?;
    let (mountinfo, meminfo) = rest
        .split_once(&format!("{MEMINFO}\n"))
        .ok_or("no meminfo section")?;
    let rows = host::parse_df(df).map_err(|e| e.to_string())?;
    if rows.len() != paths.len() {
        return Err(format!(
            "df printed {} rows for {} paths",
            rows.len(),
            paths.len()
        ));
    }
    let paths = paths
        .iter()
        .zip(targets)
        .zip(rows)
        .map(|((path, target), row)| {
            let mount = host::mount_at(mountinfo, target)
                .ok_or_else(|| format!("{target} is not in the container's mountinfo"))?;
            Ok(PathSpace {
                path: path.to_string(),
                available: row.available,
                total: row.total,
                fs_type: mount.fs_type,
                device: mount.device,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(EngineSide {
        image: image.to_string(),
        paths,
        mem_available: host::parse_meminfo(meminfo).map(|(_, available)| available),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As the lab's node image (BusyBox 1.35) prints it on a dockerd whose
    /// data root is a 1 GiB tmpfs, measuring the data root and its tmp.
    const OUTPUT: &str = "\
Filesystem           1024-blocks    Used Available Capacity Mounted on
lmtmpfs                1048576     94016    954560   9% /m/1
lmtmpfs                1048576     94016    954560   9% /m/1
@@loadmaster-mountinfo
1167 1089 0:94 / / rw,relatime - overlay overlay rw
1170 1167 0:51 / /m/0 ro,relatime - tmpfs lmtmpfs rw,size=1048576k
1171 1167 0:51 /tmp /m/1 ro,relatime - tmpfs lmtmpfs rw,size=1048576k
@@loadmaster-meminfo
MemTotal:       24683584 kB
MemFree:        17145092 kB
MemAvailable:   22252428 kB
";

    #[test]
    fn reads_each_path_and_the_memory() {
        let targets = ["/m/0".to_string(), "/m/1".to_string()];
        let side = parse_measure(OUTPUT, &["/d", "/d/tmp"], &targets, "node:1").unwrap();
        assert_eq!(side.paths.len(), 2);
        assert_eq!(side.paths[0].path, "/d");
        assert_eq!(side.paths[1].path, "/d/tmp");
        assert_eq!(side.paths[1].total, 1 << 30);
        assert_eq!(side.paths[1].available, 954_560 * 1024);
        assert!(side.paths[0].tmpfs());
        assert_eq!(side.paths[0].device, side.paths[1].device);
        assert_eq!(side.mem_available, Some(22_252_428 * 1024));
    }

    #[test]
    fn output_that_does_not_fit_is_an_error() {
        let targets = ["/m/0".to_string()];
        assert!(parse_measure(OUTPUT, &["/d"], &targets, "x").is_err());
        assert!(parse_measure("df: nope\n", &["/d"], &targets, "x").is_err());
    }
}
