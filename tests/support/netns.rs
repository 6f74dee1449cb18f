//! The network-namespace tier of the remote-engine lab: an engine whose
//! service runs in a network namespace of its own, so that its loopback is
//! not the client's, as for a podman machine or Docker Desktop's VM.
//!
//! - podman: `podman system service` started in the namespace with
//!   `nsenter --net=` (not `ip netns exec`, which remounts /sys and breaks
//!   cgroups), listening on a socket of its own; the CLI reaches it as a
//!   remote client with `CONTAINER_HOST=unix://...`. It shares the local
//!   podman's image store (the service is rootful podman), so the test
//!   node image is already there.
//! - docker: a second dockerd in the namespace with its own data root, exec
//!   root, pid file and socket, on the machine's containerd under a
//!   containerd namespace of its own, without bridge or iptables; the CLI
//!   reaches it with `DOCKER_HOST=unix://...`. Its image store is empty, so
//!   the test node image is copied in (`save` | `load`).
//!
//! [`NamespacedEngine::start_with`] can also give the engine a small tmpfs
//! of its own where a client looking from outside sees another filesystem,
//! so that a figure read on the client's side cannot pass for the
//! engine's: docker's data root in a mount namespace of the daemon's own
//! (with a containerd it starts itself, as the machine's containerd would
//! resolve paths in the machine's mount view), or podman's `TMPDIR`, where
//! its `save` stages an image.
//!
//! Containers started with `--network host` on such an engine share the
//! namespace's loopback, not the client's. Everything is torn down when the
//! [`NamespacedEngine`] is dropped (also on a panic): the service, the
//! namespace, the directories, and docker's containerd namespace.

use super::{Endpoint, NODE_IMAGE, unique_name};
use loadmaster::engine::EngineKind;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a namespaced engine may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// An engine service in a network namespace of its own.
pub struct NamespacedEngine {
    pub kind: EngineKind,
    /// The network namespace (`/run/netns/NAME`), also the name of the
    /// containerd namespace of docker's daemon.
    pub name: String,
    /// Where the service keeps its socket, logs and (docker) its state.
    dir: PathBuf,
    service: Option<Child>,
    pub endpoint: Endpoint,
    /// The directory on a tmpfs of its own ([`NamespacedEngine::start_with`]).
    pub tmpfs: Option<PathBuf>,
}

impl NamespacedEngine {
    /// Starts `kind`'s service in a new network namespace and waits until it
    /// answers. Panics (after tearing down what was made) when it cannot.
    pub fn start(kind: EngineKind) -> NamespacedEngine {
        NamespacedEngine::start_with(kind, None)
    }

    /// [`NamespacedEngine::start`], and with `tmpfs_bytes`, a tmpfs of that
    /// size as docker's data root, seen only in the daemon's own mount
    /// namespace, or as podman's `TMPDIR` (where it stages a `save`).
    pub fn start_with(kind: EngineKind, tmpfs_bytes: Option<u64>) -> NamespacedEngine {
        let name = unique_name("lmns");
        let dir = PathBuf::from("/run").join(&name);
        let socket = dir.join("engine.sock");
        let mut engine = NamespacedEngine {
            kind,
            name: name.clone(),
            dir: dir.clone(),
            service: None,
            endpoint: Endpoint::local(),
            tmpfs: None,
        };
        run_checked("ip", &["netns", "add", &name]);
        std::fs::create_dir_all(&dir).expect("create the namespaced engine's directory");
        let net = format!("--net=/run/netns/{name}");
        run_checked("nsenter", &[&net, "ip", "link", "set", "lo", "up"]);
        let log = std::fs::File::create(dir.join("service.log")).expect("create the service log");
        let mut command = Command::new("nsenter");
        command.arg(&net);
        let url = format!("unix://{}", socket.display());
        let size = tmpfs_bytes.map(|bytes| format!("size={}k", bytes / 1024));
        match kind {
            EngineKind::Podman => {
                if let Some(size) = &size {
                    let tmp = dir.join("tmp");
                    std::fs::create_dir_all(&tmp).expect("create podman's TMPDIR");
                    run_checked(
                        "mount",
                        &["-t", "tmpfs", "-o", size, &name, tmp.to_str().unwrap()],
                    );
                    command.env("TMPDIR", &tmp);
                    engine.tmpfs = Some(tmp);
                }
                command.args(["podman", "system", "service", "--time=0", &url]);
            }
            EngineKind::Docker => {
                let root = |sub: &str| dir.join(sub).display().to_string();
                let mut dockerd: Vec<String> = ["dockerd", "-H", &url]
                    .into_iter()
                    .map(String::from)
                    .collect();
                dockerd.extend(
                    ["--data-root", &root("data"), "--exec-root", &root("exec")].map(String::from),
                );
                dockerd.extend(["--pidfile".to_string(), root("dockerd.pid")]);
                dockerd.extend(["--containerd-namespace".to_string(), name.clone()]);
                dockerd.extend([
                    "--containerd-plugins-namespace".to_string(),
                    format!("{name}-plugins"),
                ]);
                dockerd.extend(
                    ["--bridge=none", "--iptables=false", "--ip-masq=false"].map(String::from),
                );
                match &size {
                    None => {
                        command.args(&dockerd);
                        command.args(["--containerd", "/run/containerd/containerd.sock"]);
                    }
                    Some(size) => {
                        // The data root's tmpfs exists only in the daemon's
                        // mount namespace; the machine's containerd socket
                        // is hidden there, so that dockerd starts its own
                        // containerd, which sees that tmpfs too.
                        let data = root("data");
                        std::fs::create_dir_all(&data).expect("create the data root");
                        let script = format!(
                            "mount -t tmpfs -o {size} {name} {data} && mount -t tmpfs -o size=1m {name}-hide /run/containerd && exec \"$@\""
                        );
                        command.args([
                            "unshare",
                            "--mount",
                            "--propagation",
                            "private",
                            "sh",
                            "-c",
                            &script,
                            "sh",
                        ]);
                        command.args(&dockerd);
                        engine.tmpfs = Some(PathBuf::from(data));
                    }
                }
            }
        }
        let spawned = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {kind}'s service in namespace {name}: {e}"));
        engine.service = Some(spawned);
        engine.endpoint = Endpoint::at(kind, &url);
        engine.wait_until_it_answers();
        if kind == EngineKind::Docker {
            engine.copy_node_image();
        }
        engine
    }

    fn wait_until_it_answers(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let probe = self
                .endpoint
                .command(self.kind, &["version", "--format", "{{.Server.Version}}"])
                .output()
                .expect("run the engine CLI");
            if probe.status.success() {
                return;
            }
            let exited = self
                .service
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "{} in network namespace {} did not answer ({}): {}\nits log:\n{}",
                    self.kind,
                    self.name,
                    exited.map_or("timed out".to_string(), |s| s.to_string()),
                    String::from_utf8_lossy(&probe.stderr),
                    std::fs::read_to_string(self.dir.join("service.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The test node image, from the machine's docker into this one.
    fn copy_node_image(&self) {
        let mut save = Command::new("docker")
            .args(["save", NODE_IMAGE])
            .stdout(Stdio::piped())
            .spawn()
            .expect("run docker save");
        let loaded = self
            .endpoint
            .command(self.kind, &["load", "-q"])
            .stdin(save.stdout.take().unwrap())
            .output()
            .expect("run docker load");
        let saved = save.wait().expect("wait for docker save");
        assert!(
            saved.success() && loaded.status.success(),
            "copying {NODE_IMAGE} into the namespaced docker failed (build it with tests/node-image/build docker): {}",
            String::from_utf8_lossy(&loaded.stderr)
        );
    }

    /// `df -Pk PATH` as the engine's service sees it: in its own mount
    /// namespace (docker with a tmpfs), else in the machine's. Available
    /// and total bytes.
    pub fn df(&self, path: &str) -> (u64, u64) {
        let pid = self.service.as_ref().expect("the service runs").id();
        let mount = format!("--mount=/proc/{pid}/ns/mnt");
        let output = Command::new("nsenter")
            .args([mount.as_str(), "df", "-Pk", path])
            .output()
            .expect("run df in the engine's mount namespace");
        assert!(
            output.status.success(),
            "df {path}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8_lossy(&output.stdout);
        let fields: Vec<u64> = text
            .lines()
            .nth(1)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        (fields[2] * 1024, fields[0] * 1024)
    }

    /// The service's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("service.log")).unwrap_or_default()
    }
}

impl Drop for NamespacedEngine {
    fn drop(&mut self) {
        if let Some(mut service) = self.service.take() {
            // SIGTERM: dockerd stops its containers and unmounts on the way
            // out; then SIGKILL for a service that hangs.
            let _ = Command::new("kill")
                .args(["-TERM", &service.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while service.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = service.kill();
            let _ = service.wait();
        }
        if self.kind == EngineKind::Docker {
            // dockerd bind-mounts its own network namespace under exec-root.
            let _ = Command::new("umount")
                .arg(self.dir.join("exec/netns/default"))
                .stderr(Stdio::null())
                .status();
            for namespace in [self.name.clone(), format!("{}-plugins", self.name)] {
                let _ = Command::new("ctr")
                    .args(["--address", "/run/containerd/containerd.sock"])
                    .args(["namespaces", "remove", &namespace])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        if self.kind == EngineKind::Podman
            && let Some(tmp) = &self.tmpfs
        {
            let _ = Command::new("umount").arg(tmp).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

fn run_checked(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} (the namespace tier needs iproute2 and util-linux, as root): {e}")
        });
    assert!(
        output.status.success(),
        "`{program} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}
