//! Test support: kind-compatible test clusters on real engines.
//!
//! A test node is a container of a test node image (built by
//! `tests/node-image/build`: real containerd, ctr and runc, with kind's
//! containerd config; one image per containerd version, see
//! [`Containerd`]) started the way kind starts its nodes: named
//! `<cluster>-control-plane`, `<cluster>-worker`, `<cluster>-worker2`...,
//! labelled with kind's labels, with containerd as the main process and its
//! `/var/lib/containerd` on a volume. Everything a test creates is removed
//! when its `TestCluster` (or `TestImage`) is dropped, also when it panics.
//!
//! Integration tests run on the engines named in `LOADMASTER_TEST_ENGINES`
//! (`docker,podman`; `.ci/run` sets it). Unset, the tests that need an
//! engine are ignored (`build.rs` sets `cfg(engine_tests)` only with it or
//! with `CI`), so that contributors without engines can run the others and
//! `cargo test` counts what it skipped; under `CI` without it, and with an
//! engine that does not answer, those tests fail.
//!
//! Delivery tests run on every containerd version too ([`node_targets`]):
//! those named in `LOADMASTER_TEST_CONTAINERD` (`1.6,2.1,2.3`), each of
//! which must then be built, or by default every version whose image is
//! built in the engine (1.6 always is: `.ci/run` builds them all). Each
//! failure names the engine and version it ran on.

#![allow(dead_code)] // each test binary uses a different part of this module

pub mod docker_cs;
pub mod image_cache;
pub mod netns;
pub mod openssl;
pub mod registry;
pub mod token;
pub mod vm;

use loadmaster::deliver::NodeReport;
use loadmaster::deliver::progress::Progress;
use loadmaster::engine::{Engine, EngineKind};
use serde_json::Value;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The containerd 1.6 test node (Debian's containerd).
pub const NODE_IMAGE: &str = "localhost/loadmaster-test-node:1";

/// A containerd version a test node image is built for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Containerd {
    /// Debian's 1.6: [`NODE_IMAGE`].
    #[default]
    V1_6,
    /// 2.1.4, what kind v0.30 ships.
    V2_1,
    /// 2.3.4, what kind v0.33 ships.
    V2_3,
}

impl Containerd {
    pub const ALL: [Containerd; 3] = [Containerd::V1_6, Containerd::V2_1, Containerd::V2_3];

    /// The version as `LOADMASTER_TEST_CONTAINERD` and the build script name it.
    pub fn name(self) -> &'static str {
        match self {
            Containerd::V1_6 => "1.6",
            Containerd::V2_1 => "2.1",
            Containerd::V2_3 => "2.3",
        }
    }

    pub fn image(self) -> String {
        match self {
            Containerd::V1_6 => NODE_IMAGE.to_string(),
            version => format!(
                "localhost/loadmaster-test-node:containerd-{}",
                version.name()
            ),
        }
    }

    fn built_in(self, kind: EngineKind) -> bool {
        engine_output(kind, &["image", "inspect", &self.image()])
            .status
            .success()
    }
}

/// An engine and the containerd version of the nodes a test starts on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeTarget {
    pub kind: EngineKind,
    pub containerd: Containerd,
}

impl std::fmt::Display for NodeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, containerd {}", self.kind, self.containerd.name())
    }
}

impl NodeTarget {
    /// Node options for this target's containerd.
    pub fn nodes(&self) -> NodeOptions {
        NodeOptions {
            containerd: self.containerd,
            ..NodeOptions::default()
        }
    }
}

/// Every engine under test with every containerd version under test; says
/// which on stderr (`--nocapture` shows it), and which versions it skips.
pub fn node_targets() -> Vec<NodeTarget> {
    let named = std::env::var("LOADMASTER_TEST_CONTAINERD").ok();
    let wanted: Vec<Containerd> = match &named {
        None => Containerd::ALL.to_vec(),
        Some(names) => names
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(|name| {
                Containerd::ALL
                    .into_iter()
                    .find(|version| version.name() == name)
                    .unwrap_or_else(|| {
                        panic!("LOADMASTER_TEST_CONTAINERD names {name:?}: use 1.6, 2.1 and/or 2.3")
                    })
            })
            .collect(),
    };
    let mut targets = Vec::new();
    for kind in engines_under_test() {
        for &containerd in &wanted {
            let target = NodeTarget { kind, containerd };
            if containerd.built_in(kind) {
                targets.push(target);
            } else if named.is_some() || containerd == Containerd::V1_6 {
                panic!(
                    "{target}: test node image {} is not built: tests/node-image/build --containerd {} {kind}",
                    containerd.image(),
                    containerd.name()
                );
            } else {
                eprintln!(
                    "note: {target}: skipped, its test node is not built (tests/node-image/build --containerd {} {kind})",
                    containerd.name()
                );
            }
        }
    }
    let names: Vec<String> = targets.iter().map(ToString::to_string).collect();
    eprintln!("runs on: {}", names.join("; "));
    targets
}
/// Every container, volume and image a test creates carries this label, so
/// that a leak can be found (and `.ci/run` can sweep one up).
pub const TEST_LABEL: &str = "io.loadmaster.test=1";

/// The engines to test on, each checked to answer.
///
/// The tests that call this are ignored unless `LOADMASTER_TEST_ENGINES` or
/// `CI` was set when they were built (`build.rs`); under `CI` without
/// engines named, they fail: CI must test on engines, not skip them.
pub fn engines_under_test() -> Vec<EngineKind> {
    let names = std::env::var("LOADMASTER_TEST_ENGINES").unwrap_or_default();
    if names.trim().is_empty() {
        // Here the test was built with `CI` or the variable set (else it
        // would be ignored): running it on no engine would pass it untested.
        panic!(
            "LOADMASTER_TEST_ENGINES names no engine, and this test needs one (CI is set, or the test binary was built with the variable): name the engines to test on, e.g. LOADMASTER_TEST_ENGINES=docker,podman"
        );
    }
    names
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            let kind = match name {
                "docker" => EngineKind::Docker,
                "podman" => EngineKind::Podman,
                other => {
                    panic!("LOADMASTER_TEST_ENGINES names {other:?}: use docker and/or podman")
                }
            };
            if let Err(error) = Engine::new(kind).answers() {
                panic!("LOADMASTER_TEST_ENGINES asks for {kind}, which does not answer: {error}");
            }
            kind
        })
        .collect()
}

/// Which service an engine's CLI talks to: its default one, or one named by
/// the CLI's own variable (`DOCKER_HOST`, `CONTAINER_HOST`), as a remote or
/// namespaced engine is reached ([`netns`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    variable: Option<(&'static str, String)>,
}

impl Endpoint {
    /// The engine's default service on this machine.
    pub fn local() -> Endpoint {
        Endpoint::default()
    }

    /// The service at `url` (`unix:///run/x.sock`).
    pub fn at(kind: EngineKind, url: &str) -> Endpoint {
        let name = match kind {
            EngineKind::Docker => "DOCKER_HOST",
            EngineKind::Podman => "CONTAINER_HOST",
        };
        Endpoint {
            variable: Some((name, url.to_string())),
        }
    }

    /// `kind`'s CLI with `args`, pointed at this service.
    pub fn command(&self, kind: EngineKind, args: &[&str]) -> Command {
        let mut command = Command::new(kind.name());
        command.args(args).stdin(Stdio::null());
        self.apply(&mut command);
        command
    }

    /// Points `command` (an engine CLI, or loadmaster) at this service.
    pub fn apply(&self, command: &mut Command) {
        for variable in ["DOCKER_HOST", "CONTAINER_HOST"] {
            command.env_remove(variable);
        }
        if let Some((name, value)) = &self.variable {
            command.env(name, value);
        }
    }
}

/// Runs an engine command that must succeed and returns its stdout.
pub fn engine_cmd(kind: EngineKind, args: &[&str]) -> String {
    engine_cmd_at(kind, &Endpoint::local(), args)
}

/// [`engine_cmd`] on the service at `endpoint`.
pub fn engine_cmd_at(kind: EngineKind, endpoint: &Endpoint, args: &[&str]) -> String {
    checked(kind, args, &mut endpoint.command(kind, args))
}

/// Runs `command` (`kind ARGS...`); panics on failure, else its stdout.
fn checked(kind: EngineKind, args: &[&str], command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {kind}: {e}"));
    assert!(
        output.status.success(),
        "`{kind} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// An image that the runs of a test build (not the test itself), removed
/// from its engine when dropped, also when the test fails.
pub struct BuiltImage(pub EngineKind, pub String);

impl Drop for BuiltImage {
    fn drop(&mut self) {
        let _ = engine_output(self.0, &["rmi", "-f", &self.1]);
    }
}

pub fn engine_output(kind: EngineKind, args: &[&str]) -> Output {
    engine_output_at(kind, &Endpoint::local(), args)
}

pub fn engine_output_at(kind: EngineKind, endpoint: &Endpoint, args: &[&str]) -> Output {
    endpoint
        .command(kind, args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {kind}: {e}"))
}

/// Whether `--cap-add ALL` needs `--cap-drop SYS_RESOURCE` beside it here:
/// podman's and docker 20.10's `ALL` name every capability they know, and
/// the container fails to start without one this sandbox withholds. Later
/// dockers (28 here) take from `ALL` only what their own process holds
/// (moby's `oci/caps/utils_linux.go`) and refuse to drop one they do not
/// hold ("capability not supported by your kernel or not available in the
/// current environment").
fn drops_capabilities_by_name(kind: EngineKind, endpoint: &Endpoint) -> bool {
    if kind == EngineKind::Podman {
        return true;
    }
    let version = engine_cmd_at(
        kind,
        endpoint,
        &["version", "--format", "{{.Server.Version}}"],
    );
    let major: u32 = version
        .trim()
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    major <= 20
}

/// A name no other test (or earlier run) uses.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos & 0xfff
    )
}

/// How to start a test cluster's nodes.
#[derive(Clone, Debug, Default)]
pub struct NodeOptions {
    /// A memory limit for every node, as the engine takes it (`256m`).
    pub memory: Option<String>,
    /// MiB of memory pinned inside every node once containerd is up: written
    /// to a tmpfs mounted in the node, so charged to the node's cgroup and
    /// never reclaimable. With `memory`, it leaves a load no headroom
    /// (FIELD-NOTES: 192 MiB limit, 165 MiB pinned).
    pub pinned_mib: Option<u64>,
    /// containerd runs under a shell that restarts it, as kind's systemd
    /// does: the node outlives a containerd the kernel killed, and so does
    /// its cgroup. Without it containerd is the main process, as in a
    /// minimal node, and its death ends the node.
    pub supervised: bool,
    /// The node's /var/lib/containerd on a tmpfs of this size (`32m`)
    /// instead of a volume: a small filesystem for a load to fill.
    pub containerd_tmpfs: Option<String>,
    /// The node on the host's network (`--network host`) instead of none:
    /// its containerd can then pull from a registry on 127.0.0.1.
    pub host_network: bool,
    /// The containerd version of the node image.
    pub containerd: Containerd,
    /// containerd starts this long after the node, and the cluster is
    /// handed over without waiting for it: a load meets a node whose
    /// containerd is still starting.
    pub containerd_delay_secs: Option<u32>,
    /// The CRI snapshotter instead of overlayfs: the node gets kind's config
    /// with it (mounted over the image's), as kind's entrypoint rewrites it
    /// (`native` on zfs). [`FUSE_OVERLAYFS`] also gets the node kind's
    /// proxy plugin for it, running, and /dev/fuse.
    pub snapshotter: Option<&'static str>,
}

/// A kind-compatible test cluster, removed when dropped.
pub struct TestCluster {
    pub kind: EngineKind,
    pub containerd: Containerd,
    /// The engine service the nodes run on.
    pub endpoint: Endpoint,
    pub name: String,
    pub nodes: Vec<String>,
    volumes: Vec<String>,
    /// Node configs that differ from the image's (mounted; removed last).
    config_dir: TempDir,
}

/// containerd's fuse-overlayfs snapshotter, what kind's entrypoint picks on
/// a rootless engine: a proxy plugin (containerd-fuse-overlayfs-grpc, in
/// every test node image) that containerd reaches on [`FUSE_SOCKET`].
pub const FUSE_OVERLAYFS: &str = "fuse-overlayfs";

/// The proxy plugin's socket and root, kind's (its base image's
/// containerd-fuse-overlayfs.service and config.toml).
const FUSE_SOCKET: &str = "/run/containerd-fuse-overlayfs.sock";
const FUSE_ROOT: &str = "/var/lib/containerd-fuse-overlayfs";

/// The test nodes' containerd config (kind's) with another CRI snapshotter,
/// as kind's entrypoint rewrites it (`native` on zfs); a proxy snapshotter
/// gets kind's `proxy_plugins` entry for it.
fn containerd_config(snapshotter: &str) -> String {
    const KIND_CONFIG: &str = include_str!("../node-image/containerd-config.toml");
    const DEFAULT: &str = "snapshotter = \"overlayfs\"";
    assert!(
        KIND_CONFIG.contains(DEFAULT),
        "the node config sets overlayfs"
    );
    let mut config = KIND_CONFIG.replace(DEFAULT, &format!("snapshotter = \"{snapshotter}\""));
    if snapshotter == FUSE_OVERLAYFS {
        config.push_str(&format!(
            "\n[proxy_plugins]\n  [proxy_plugins.\"{FUSE_OVERLAYFS}\"]\n    type = \"snapshot\"\n    address = \"{FUSE_SOCKET}\"\n"
        ));
    }
    config
}

impl TestCluster {
    /// A cluster with a control plane and `workers` workers, containerd ready
    /// on every node.
    pub fn start(kind: EngineKind, workers: usize, options: &NodeOptions) -> TestCluster {
        TestCluster::start_at(kind, &Endpoint::local(), workers, options)
    }

    /// [`TestCluster::start`] on the engine service at `endpoint`.
    pub fn start_at(
        kind: EngineKind,
        endpoint: &Endpoint,
        workers: usize,
        options: &NodeOptions,
    ) -> TestCluster {
        TestCluster::start_named_at(kind, endpoint, &unique_name("lmt"), workers, options)
    }

    /// [`TestCluster::start_at`] with the cluster's name chosen beforehand
    /// (the push endpoint's port is derived from it).
    pub fn start_named_at(
        kind: EngineKind,
        endpoint: &Endpoint,
        name: &str,
        workers: usize,
        options: &NodeOptions,
    ) -> TestCluster {
        let mut cluster = TestCluster {
            kind,
            containerd: options.containerd,
            endpoint: endpoint.clone(),
            name: name.to_string(),
            nodes: Vec::new(),
            volumes: Vec::new(),
            config_dir: TempDir::new("lmt-config"),
        };
        let mut roles = vec![("control-plane".to_string(), "control-plane")];
        for n in 1..=workers {
            let suffix = if n == 1 { String::new() } else { n.to_string() };
            roles.push((format!("worker{suffix}"), "worker"));
        }
        // Asked of the engine once, not per node.
        let drop_by_name = drops_capabilities_by_name(kind, endpoint);
        for (suffix, role) in roles {
            let node = format!("{}-{suffix}", cluster.name);
            cluster.start_node(&node, role, options, drop_by_name);
        }
        for node in &cluster.nodes {
            if options.containerd_delay_secs.is_some() {
                continue;
            }
            wait_for_containerd(kind, endpoint, node);
            if let Some(mib) = options.pinned_mib {
                cluster.pin(node, mib);
            }
        }
        cluster
    }

    /// Pins `mib` MiB of memory in `node` ([`NodeOptions::pinned_mib`]).
    fn pin(&self, node: &str, mib: u64) {
        let count = format!("count={mib}");
        let size = format!("size={}m", mib + 8);
        self.exec(node, &["mkdir", "-p", "/pinned"]);
        self.exec(
            node,
            &["mount", "-t", "tmpfs", "-o", &size, "tmpfs", "/pinned"],
        );
        self.exec(
            node,
            &["dd", "if=/dev/zero", "of=/pinned/fill", "bs=1M", &count],
        );
    }

    /// Starts `node`; `drop_by_name`: [`drops_capabilities_by_name`].
    fn start_node(&mut self, node: &str, role: &str, options: &NodeOptions, drop_by_name: bool) {
        let volume = format!("{node}-containerd");
        if options.containerd_tmpfs.is_none() {
            self.engine_cmd(&["volume", "create", "--label", TEST_LABEL, &volume]);
            self.volumes.push(volume.clone());
        }
        let cluster_label = format!("io.x-k8s.kind.cluster={}", self.name);
        let role_label = format!("io.x-k8s.kind.role={role}");
        let mount = format!("{volume}:/var/lib/containerd");
        let tmpfs = options
            .containerd_tmpfs
            .as_ref()
            .map(|size| format!("/var/lib/containerd:size={size}"));
        let mut args = vec![
            "run",
            "-d",
            "--name",
            node,
            "--hostname",
            node,
            "--label",
            &cluster_label,
            "--label",
            &role_label,
            "--label",
            TEST_LABEL,
            // kind runs nodes --privileged. This sandbox withholds
            // CAP_SYS_RESOURCE, which --privileged asks for on docker
            // 20.10, so the nodes get every other capability and no
            // confinement, which is what containerd needs to mount layers.
            "--cap-add",
            "ALL",
            "--security-opt",
            "seccomp=unconfined",
            "--security-opt",
            "apparmor=unconfined",
            "--network",
            if options.host_network { "host" } else { "none" },
        ];
        if drop_by_name {
            args.extend(["--cap-drop", "SYS_RESOURCE"]);
        }
        match &tmpfs {
            Some(tmpfs) => args.extend(["--tmpfs", tmpfs]),
            None => args.extend(["-v", &mount]),
        }
        if let Some(memory) = &options.memory {
            args.extend(["--memory", memory, "--memory-swap", memory]);
        }
        let config_mount = options.snapshotter.map(|snapshotter| {
            let path = self.config_dir.path.join(format!("{node}.toml"));
            std::fs::write(&path, containerd_config(snapshotter)).unwrap();
            format!("{}:/etc/containerd/config.toml:ro", path.display())
        });
        if let Some(mount) = &config_mount {
            args.extend(["-v", mount]);
        }
        // What runs before containerd: the fuse-overlayfs proxy plugin, as
        // kind's systemd starts it, and the delay a test asks for.
        let fuse = options.snapshotter == Some(FUSE_OVERLAYFS);
        if fuse {
            args.extend(["--device", "/dev/fuse"]);
        }
        let mut before = String::new();
        if fuse {
            before.push_str(&format!(
                "containerd-fuse-overlayfs-grpc {FUSE_SOCKET} {FUSE_ROOT} >/run/fuse-overlayfs.log 2>&1 & "
            ));
        }
        if let Some(secs) = options.containerd_delay_secs {
            before.push_str(&format!("sleep {secs}; "));
        }
        let shell = match (options.supervised, before.is_empty()) {
            (true, _) => Some(format!("{before}while :; do containerd; sleep 0.2; done")),
            (false, false) => Some(format!("{before}exec containerd")),
            (false, true) => None,
        };
        if shell.is_some() {
            args.extend(["--entrypoint", "sh"]);
        }
        let image = options.containerd.image();
        args.push(&image);
        if let Some(shell) = &shell {
            args.extend(["-c", shell]);
        }
        // Recorded before the run so that Drop removes a half-started node.
        self.nodes.push(node.to_string());
        // podman's conmon marks an OOM kill in the node with a file (`oom`,
        // `oomKilled`) in the directory `podman run` ran in: the cluster's
        // own, removed with it, not the checkout.
        let mut run = self.endpoint.command(self.kind, &args);
        checked(self.kind, &args, run.current_dir(&self.config_dir.path));
    }

    /// Runs an engine command on the cluster's engine; panics on failure.
    pub fn engine_cmd(&self, args: &[&str]) -> String {
        engine_cmd_at(self.kind, &self.endpoint, args)
    }

    /// The node's target, for messages.
    pub fn target(&self) -> NodeTarget {
        NodeTarget {
            kind: self.kind,
            containerd: self.containerd,
        }
    }

    pub fn control_plane(&self) -> &str {
        &self.nodes[0]
    }

    /// Runs a command in a node and returns its stdout; panics on failure.
    pub fn exec(&self, node: &str, argv: &[&str]) -> String {
        let mut args = vec!["exec", node];
        args.extend_from_slice(argv);
        self.engine_cmd(&args)
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            // SIGKILL first: a supervised node's shell ignores the SIGTERM
            // of `rm -f`, which podman then waits out for 10 s.
            let _ = engine_output_at(self.kind, &self.endpoint, &["kill", node]);
            let _ = engine_output_at(self.kind, &self.endpoint, &["rm", "-f", "-v", node]);
        }
        for volume in &self.volumes {
            let _ = engine_output_at(self.kind, &self.endpoint, &["volume", "rm", "-f", volume]);
        }
    }
}

fn wait_for_containerd(kind: EngineKind, endpoint: &Endpoint, node: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let probe = engine_output_at(kind, endpoint, &["exec", node, "ctr", "version"]);
        if probe.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "containerd did not start in test node {node} on {kind}: {}",
            String::from_utf8_lossy(&probe.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Peak resident memory of this process so far (VmHWM), in bytes.
pub fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmHWM value");
    kib * 1024
}

/// Runs the loadmaster binary with `args` and returns its output.
pub fn loadmaster(args: &[&str]) -> Output {
    loadmaster_command(args).output().expect("run loadmaster")
}

/// Where the runs of commands started by the tests are recorded, unless a
/// test names its own `--root`: Cargo's scratch directory for integration
/// tests, not the checkout's `.loadmaster/runs`, which is the user's.
pub const TEST_RUNS: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/runs");

/// The loadmaster binary with `args`, no stdin, and no engine chosen by
/// the environment; for tests that set more (env) or run it in the
/// background.
pub fn loadmaster_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_loadmaster"));
    command
        .args(args)
        .env("LOADMASTER_ROOT", TEST_RUNS)
        .env_remove("LOADMASTER_ENGINE")
        .env_remove("KIND_EXPERIMENTAL_PROVIDER")
        .stdin(Stdio::null());
    command
}

/// One layer of a test image: `bytes` of incompressible data made from
/// `seed`, so that the same (size, seed) gives the same layer digest on
/// every build.
#[derive(Clone, Copy, Debug)]
pub struct Layer {
    pub bytes: u64,
    pub seed: u64,
}

/// An image built in a test from incompressible layers (FROM scratch: nothing
/// is pulled), removed from the engine when dropped.
pub struct TestImage {
    pub kind: EngineKind,
    /// The engine service the image is built on.
    pub endpoint: Endpoint,
    /// The name as a user types it (`lmt-img-…:1`).
    pub name: String,
    /// Every image ID built under the name: a rebuild leaves the previous
    /// one untagged, and it must go too.
    built: std::cell::RefCell<Vec<String>>,
}

impl TestImage {
    /// A new image name, not built yet.
    pub fn named(kind: EngineKind) -> TestImage {
        TestImage::named_at(kind, &Endpoint::local())
    }

    /// [`TestImage::named`] on the engine service at `endpoint`.
    pub fn named_at(kind: EngineKind, endpoint: &Endpoint) -> TestImage {
        TestImage {
            kind,
            endpoint: endpoint.clone(),
            name: format!("{}:1", unique_name("lmt-img")),
            built: Default::default(),
        }
    }

    /// Builds (or rebuilds) the image from `layers`, bottom first.
    pub fn build(&self, layers: &[Layer]) {
        let context = TempDir::new("lmt-context");
        let mut dockerfile = String::from("FROM scratch\n");
        for (n, layer) in layers.iter().enumerate() {
            let file = format!("layer{n}.bin");
            write_random_file(&context.path.join(&file), layer.bytes, layer.seed);
            dockerfile.push_str(&format!("COPY {file} /{file}\n"));
        }
        dockerfile.push_str("CMD [\"/layer0.bin\"]\n");
        std::fs::write(context.path.join("Dockerfile"), dockerfile).unwrap();
        let context_path = context.path.to_str().unwrap().to_string();
        // The name in a label makes the image's ID its own: two tests that
        // build the same layers must not share an image, since dropping one
        // removes it by ID, tags and all.
        let own = format!("io.loadmaster.test.image={}", self.name);
        let _store = image_store_lock();
        engine_cmd_at(
            self.kind,
            &self.endpoint,
            &[
                "build",
                "-q",
                "--label",
                TEST_LABEL,
                "--label",
                &own,
                "-t",
                &self.name,
                &context_path,
            ],
        );
        self.built.borrow_mut().push(self.id());
    }

    /// The engine's image ID (config digest).
    pub fn id(&self) -> String {
        let id = engine_cmd_at(
            self.kind,
            &self.endpoint,
            &["image", "inspect", "--format", "{{.Id}}", &self.name],
        );
        let id = id.trim();
        // podman prints the hex alone, docker with its algorithm.
        if id.contains(':') {
            id.to_string()
        } else {
            format!("sha256:{id}")
        }
    }
}

/// Held while a test builds or removes an image. podman 4.3 fails a build
/// whose cache lookup meets a layer another test is removing ("getting top
/// layer info: layer not known"), and docker 20.10 has races of the same
/// kind: within one test binary, builds and removals take turns.
fn image_store_lock() -> std::sync::MutexGuard<'static, ()> {
    static STORE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    STORE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Drop for TestImage {
    fn drop(&mut self) {
        let _store = image_store_lock();
        let _ = engine_output_at(self.kind, &self.endpoint, &["rmi", "-f", &self.name]);
        // Removing an image removes its untagged build-step parents too.
        for id in self.built.borrow().iter().rev() {
            let _ = engine_output_at(self.kind, &self.endpoint, &["rmi", "-f", id]);
        }
    }
}

/// A temporary directory, removed when dropped.
pub struct TempDir {
    pub path: std::path::PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(unique_name(prefix));
        std::fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

impl Layer {
    /// The sha256 of the file this layer adds (`/layerN.bin`), as
    /// `sha256sum` prints it.
    pub fn file_sha256(&self) -> String {
        let dir = TempDir::new("lmt-layer");
        let path = dir.path.join("layer.bin");
        write_random_file(&path, self.bytes, self.seed);
        loadmaster::archive::Digest::of(&std::fs::read(&path).unwrap()).hex()
    }
}

/// Writes `bytes` of xorshift output, with a fixed modification time so that
/// a rebuild from the same seed gives a byte-identical layer.
fn write_random_file(path: &std::path::Path, bytes: u64, seed: u64) {
    use std::io::Write;
    let file = std::fs::File::create(path).unwrap();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, &file);
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut remaining = bytes;
    while remaining > 0 {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let word = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        let n = remaining.min(8) as usize;
        out.write_all(&word[..n]).unwrap();
        remaining -= n as u64;
    }
    out.flush().unwrap();
    drop(out);
    file.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000))
        .unwrap();
}

/// `reference`'s row of `ctr images check` on `node`, unpacked state read
/// for `snapshotter` (ctr's default without one): the manifest digest,
/// whether every blob is there, whether it is unpacked.
fn image_check(
    cluster: &TestCluster,
    node: &str,
    reference: &str,
    snapshotter: Option<&str>,
) -> Option<(String, bool, bool)> {
    let name = format!("name=={reference}");
    let mut argv = vec!["ctr", "-n", "k8s.io", "images", "check"];
    if let Some(snapshotter) = snapshotter {
        argv.extend(["--snapshotter", snapshotter]);
    }
    argv.push(&name);
    let check = cluster.exec(node, &argv);
    check.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.first() == Some(&reference)).then(|| {
            (
                fields[2].to_string(),
                fields.get(3) == Some(&"complete"),
                fields.last() == Some(&"true"),
            )
        })
    })
}

/// The manifest digest `reference` points at on `node`, if complete.
pub fn image_on_node(cluster: &TestCluster, node: &str, reference: &str) -> Option<String> {
    image_check(cluster, node, reference, None)
        .and_then(|(manifest, complete, unpacked)| (complete && unpacked).then_some(manifest))
}

/// The manifest digest `reference` points at on `node`, if it is unpacked
/// with `snapshotter` (its layer blobs may be gone: what a container needs
/// is the config and the snapshots).
pub fn unpacked_image_on_node(
    cluster: &TestCluster,
    node: &str,
    reference: &str,
    snapshotter: &str,
) -> Option<String> {
    image_check(cluster, node, reference, Some(snapshotter))
        .and_then(|(manifest, _, unpacked)| unpacked.then_some(manifest))
}

/// The digests in `node`'s content store.
pub fn content_on_node(cluster: &TestCluster, node: &str) -> Vec<String> {
    cluster
        .exec(node, &["ctr", "-n", "k8s.io", "content", "ls", "-q"])
        .lines()
        .map(str::to_string)
        .collect()
}

/// The config digest of the image `reference` names on `node`.
pub fn config_on_node(cluster: &TestCluster, node: &str, reference: &str) -> String {
    let manifest = image_on_node(cluster, node, reference).expect("image on the node");
    let json = cluster.exec(node, &["ctr", "-n", "k8s.io", "content", "get", &manifest]);
    let manifest: Value = serde_json::from_str(&json).unwrap();
    manifest["config"]["digest"].as_str().unwrap().to_string()
}

/// Kills a node (or only its containerd) once it has been sent `after`
/// bytes.
pub struct KillNodeMidStream {
    pub kind: EngineKind,
    pub node: String,
    pub after: u64,
    pub killed: AtomicBool,
    /// SIGKILL to the node's containerd alone (a supervised node restarts
    /// it), as the kernel's OOM killer picks it, instead of the node.
    pub containerd_only: bool,
}

/// `sh -c` in a node: SIGKILL to every process named containerd (the
/// node's busybox has no pkill; its /proc is the node's PID namespace).
const KILL_CONTAINERD: &str = r#"for p in /proc/[0-9]*; do [ "$(cat "$p/comm" 2>/dev/null)" = containerd ] && kill -9 "${p#/proc/}"; done; true"#;

impl Progress for KillNodeMidStream {
    fn begin(&self, _: &str, _: &[String], _: Option<u64>) {}
    fn inventory(&self, _: &str, _: usize, _: bool) {}
    fn streaming(&self, _read: u64, sent: &[(&str, u64)]) {
        let reached = sent
            .iter()
            .any(|(node, n)| *node == self.node && *n >= self.after);
        if reached && !self.killed.swap(true, Ordering::SeqCst) {
            if self.containerd_only {
                engine_cmd(
                    self.kind,
                    &["exec", &self.node, "sh", "-c", KILL_CONTAINERD],
                );
            } else {
                engine_cmd(self.kind, &["kill", &self.node]);
            }
        }
    }
    fn node_done(&self, _: &NodeReport) {}
}

/// `loadmaster --engine E load --cluster C ARGS... --output json`.
pub fn load(cluster: &TestCluster, args: &[&str]) -> (Output, Value) {
    let mut all = vec![
        "--engine",
        cluster.kind.name(),
        "load",
        "--cluster",
        &cluster.name,
        "--output",
        "json",
    ];
    all.extend_from_slice(args);
    let mut command = loadmaster_command(&all);
    cluster.endpoint.apply(&mut command);
    let output = command.output().expect("run loadmaster");
    let report = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (output, report)
}

/// [`load`], which must succeed: its report.
pub fn load_ok(cluster: &TestCluster, args: &[&str]) -> Value {
    let (output, report) = load(cluster, args);
    assert!(
        output.status.success(),
        "{}: load {args:?} failed: {}\n{report}",
        cluster.target(),
        String::from_utf8_lossy(&output.stderr)
    );
    report
}

/// The one image entry of a load's report.
pub fn only_image(report: &Value) -> &Value {
    let images = report["images"].as_array().expect("images in the report");
    assert_eq!(images.len(), 1, "{report}");
    &images[0]
}

/// What crossed the connection to the engine for an image entry of a
/// load's report: `field` is `from_engine` or `to_nodes`.
pub fn connection_bytes(entry: &Value, field: &str) -> u64 {
    entry["connection"][field]
        .as_u64()
        .unwrap_or_else(|| panic!("no connection.{field} in {entry}"))
}
