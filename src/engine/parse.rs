//! Turning the JSON that `docker` and `podman` print into one set of types.
//!
//! The two engines agree on the shape of `container inspect` and
//! `image inspect` (podman copied docker's), with small differences handled
//! here: podman's image IDs have no `sha256:` prefix, docker's container names
//! start with `/`. `info` differs completely and has one parser per engine.

use super::EngineKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// What an engine can give containers and how it stores images. For a podman
/// machine or Docker Desktop these are the VM's figures, not the host's:
/// that is where containers run and where a node can run out of memory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineInfo {
    pub engine: EngineKind,
    pub version: String,
    /// Memory the engine's kernel has, in bytes.
    pub memory_bytes: u64,
    pub cpus: u32,
    pub storage_driver: String,
    /// Where the engine keeps images and containers (inside the VM for a VM).
    pub storage_root: String,
    /// 1 or 2.
    pub cgroup_version: u8,
    pub rootless: bool,
    pub location: Location,
    /// The engine's kernel release, which tells a VM from this host.
    pub kernel: String,
    /// Where the engine writes a whole image before `save` streams a byte
    /// of it, on the engine's side (inside the VM for a VM); None when it
    /// streams from its store. docker's classic store exports into its
    /// temp dir, `DATA-ROOT/tmp` (moby's `prepareTempDir` sets `TMPDIR` to
    /// it unless `DOCKER_TMPDIR` names another, which no client can see);
    /// Docker's containerd store streams the stored blobs. podman writes
    /// `api.tar` for a remote client, and a docker-archive for its own CLI,
    /// under the `TMPDIR` its process got: the service's `TMPDIR`, else
    /// containers.conf's `image_copy_tmp_dir` (default `/var/tmp`), as
    /// `podman info` reports it (`store.imageCopyTmpDir`; podman's
    /// cmd/podman/root.go, libpod/info.go, pkg/api/handlers/libpod/images.go).
    #[serde(default)]
    pub save_staging: Option<String>,
    /// The service address the CLI was pointed at (`DOCKER_HOST`,
    /// `CONTAINER_HOST`), if any: a service that may see another mount
    /// view than this process, even on this kernel.
    #[serde(default)]
    pub service_address: Option<String>,
}

impl EngineInfo {
    /// Whether the engine's files are out of this process's sight: in a
    /// VM, elsewhere, or behind a service address (a socket forwarded from
    /// a VM, or a service in namespaces of its own). Then its disks are
    /// measured from inside the engine ([`super::Engine::measure_inside`]).
    pub fn files_elsewhere(&self) -> bool {
        self.location != Location::Local || self.service_address.is_some()
    }
}

/// Where the engine runs, relative to loadmaster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Location {
    /// On this machine's kernel: its memory is this machine's.
    Local,
    /// In a VM on this machine (podman machine, Docker Desktop, colima...).
    VirtualMachine,
    /// Somewhere else, reached over a socket or SSH.
    Remote,
}

impl Location {
    /// The names under which an engine here may reach a port on the
    /// client's loopback when its own `127.0.0.1` does not (which a probe
    /// tries first, as it needs no `info`): a podman machine reaches the
    /// host as `host.containers.internal` and Docker Desktop's VM as
    /// `host.docker.internal` (both forwarded to the host's loopback), and
    /// a remote engine may have a tunnel under them. A local engine has
    /// none: it shares the loopback unless its service runs in a network
    /// namespace of its own. These are the candidates a probe tries
    /// ([`super::Engine::probe_registry`]), never assumptions.
    pub fn host_aliases(self, engine: EngineKind) -> &'static [&'static str] {
        match (self, engine) {
            (Location::Local, _) => &[],
            (_, EngineKind::Podman) => &["host.containers.internal"],
            (_, EngineKind::Docker) => &["host.docker.internal"],
        }
    }

    /// What the CLI's service address says of where the engine runs, when
    /// it says anything: `DOCKER_HOST` or `CONTAINER_HOST` (`address`)
    /// over TCP or SSH to another machine is a remote engine; SSH to this
    /// machine's loopback is how a podman machine is reached, a VM.
    pub fn of_service_address(address: &str) -> Option<Location> {
        let (scheme, rest) = address.split_once("://")?;
        if !matches!(scheme, "tcp" | "ssh" | "http" | "https") {
            return None;
        }
        let authority = rest.split('/').next().unwrap_or_default();
        let host_port = authority.rsplit('@').next().unwrap_or_default();
        let host = match host_port.strip_prefix('[') {
            Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
            None => host_port.split(':').next().unwrap_or_default(),
        };
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        Some(if loopback {
            Location::VirtualMachine
        } else {
            Location::Remote
        })
    }
}

/// What loadmaster needs to know of a local image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageDetails {
    /// `sha256:<hex>`: the config digest on both engines (for docker with the
    /// containerd image store it is the manifest's digest instead).
    pub id: String,
    pub repo_tags: Vec<String>,
    /// Uncompressed size in bytes, as the engine reports it.
    pub size: u64,
    /// The uncompressed layer digests (diff IDs), bottom first.
    pub layers: Vec<String>,
    /// The image's run configuration (Env, Cmd, Entrypoint...), as the engine printed it.
    pub config: Value,
    /// Whether the engine keeps the layers as the compressed blobs it
    /// built or pulled them as, so that its push sends them without
    /// compressing anything: docker's containerd image store, whose
    /// inspect has the image's OCI `Descriptor` (moby's API documents the
    /// field as present only with that store).
    #[serde(default)]
    pub stored_compressed: bool,
}

/// One container's identity, labels and state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerDetails {
    pub id: String,
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub state: ContainerState,
    /// The memory limit in bytes, if one is set.
    pub memory_limit: Option<u64>,
}

/// A container's state as the engine last saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerState {
    /// created, running, paused, restarting, exited, dead...
    pub status: String,
    pub running: bool,
    pub exit_code: i64,
    /// The engine's own OOM flag. Not proof either way: podman 4.3 on
    /// cgroup v1 reports false for a container whose main process the
    /// kernel OOM-killed (FIELD-NOTES).
    pub oom_killed: bool,
    pub pid: u32,
    pub restart_count: u64,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The engine's error text, e.g. why the container could not start.
    pub error: String,
}

pub fn engine_info(engine: EngineKind, json: &[u8]) -> Result<EngineInfo, String> {
    let v: Value = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let mut info = match engine {
        EngineKind::Docker => docker_info(&v),
        EngineKind::Podman => podman_info(&v),
    }?;
    if info.location == Location::Local && !is_local_kernel(&info.kernel) {
        info.location = Location::VirtualMachine;
    }
    Ok(info)
}

fn docker_info(v: &Value) -> Result<EngineInfo, String> {
    let operating_system = text(v, &["OperatingSystem"]);
    let rootless = v["SecurityOptions"]
        .as_array()
        .is_some_and(|options| options.iter().any(|o| o.as_str() == Some("name=rootless")));
    let location = if operating_system.contains("Docker Desktop") {
        Location::VirtualMachine
    } else {
        Location::Local
    };
    // Docker's containerd image store says so in its driver status.
    let containerd_store = v["DriverStatus"].as_array().is_some_and(|rows| {
        rows.iter().any(|row| {
            row[0].as_str() == Some("driver-type")
                && row[1].as_str() == Some("io.containerd.snapshotter.v1")
        })
    });
    let root = text(v, &["DockerRootDir"]);
    Ok(EngineInfo {
        engine: EngineKind::Docker,
        service_address: None,
        save_staging: (!containerd_store && !root.is_empty()).then(|| format!("{root}/tmp")),
        version: text(v, &["ServerVersion"]),
        memory_bytes: number(v, &["MemTotal"])?,
        cpus: number(v, &["NCPU"])? as u32,
        storage_driver: text(v, &["Driver"]),
        storage_root: root,
        cgroup_version: if text(v, &["CgroupVersion"]) == "2" {
            2
        } else {
            1
        },
        rootless,
        location,
        kernel: text(v, &["KernelVersion"]),
    })
}

fn podman_info(v: &Value) -> Result<EngineInfo, String> {
    let remote = v["host"]["serviceIsRemote"].as_bool().unwrap_or(false);
    // Go's os.TempDir: /tmp when TMPDIR is empty.
    let staging = match text(v, &["store", "imageCopyTmpDir"]) {
        dir if dir.is_empty() => "/tmp".to_string(),
        dir => dir,
    };
    Ok(EngineInfo {
        engine: EngineKind::Podman,
        service_address: None,
        save_staging: Some(staging),
        version: text(v, &["version", "Version"]),
        memory_bytes: number(v, &["host", "memTotal"])?,
        cpus: number(v, &["host", "cpus"])? as u32,
        storage_driver: text(v, &["store", "graphDriverName"]),
        storage_root: text(v, &["store", "graphRoot"]),
        cgroup_version: if text(v, &["host", "cgroupVersion"]) == "v2" {
            2
        } else {
            1
        },
        rootless: v["host"]["security"]["rootless"].as_bool().unwrap_or(false),
        // podman-remote on macOS and Windows always talks to a podman machine.
        location: if remote {
            Location::VirtualMachine
        } else {
            Location::Local
        },
        kernel: text(v, &["host", "kernel"]),
    })
}

/// True when `kernel` is the release this process runs on: the engine shares
/// our kernel, so it is local.
fn is_local_kernel(kernel: &str) -> bool {
    match std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        Ok(ours) => kernel.is_empty() || ours.trim() == kernel,
        // Not on Linux: any engine runs in a VM or elsewhere.
        Err(_) => false,
    }
}

pub fn image_details(json: &[u8]) -> Result<ImageDetails, String> {
    let all: Vec<Value> = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let v = all.first().ok_or("no image in the answer")?;
    let id = text(v, &["Id"]);
    if id.is_empty() {
        return Err("the image has no Id".into());
    }
    Ok(ImageDetails {
        id: if id.contains(':') {
            id
        } else {
            format!("sha256:{id}")
        },
        repo_tags: strings(&v["RepoTags"]),
        size: v["Size"].as_u64().unwrap_or(0),
        layers: strings(&v["RootFS"]["Layers"]),
        config: v["Config"].clone(),
        stored_compressed: v["Descriptor"].is_object(),
    })
}

/// A container as `ps` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSummary {
    pub id: String,
    pub name: String,
    /// created, running, paused, restarting, exited, dead...
    pub state: String,
    /// The values of the label keys asked for that the container has.
    pub labels: BTreeMap<String, String>,
}

impl ContainerSummary {
    pub fn running(&self) -> bool {
        self.state == "running"
    }
}

/// docker's `ps` lines `ID<TAB>NAME<TAB>STATE<TAB>VALUE...`, one value per
/// key in `keys` (empty when the container lacks the label).
pub fn docker_ps_lines(text: &str, keys: &[&str]) -> Vec<ContainerSummary> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let mut fields = line.split('\t');
            let mut next = || fields.next().unwrap_or_default().to_string();
            let (id, name, state) = (next(), next(), next());
            let labels = keys
                .iter()
                .map(|key| (key.to_string(), next()))
                .filter(|(_, value)| !value.is_empty())
                .collect();
            ContainerSummary {
                id,
                name,
                state,
                labels,
            }
        })
        .collect()
}

/// podman's `ps --format json`: an array of `{Id, Names: [..], State,
/// Labels: {..}}`; only the labels in `keys` are kept.
pub fn podman_ps_json(json: &[u8], keys: &[&str]) -> Result<Vec<ContainerSummary>, String> {
    let all: Vec<Value> = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    Ok(all
        .iter()
        .map(|v| ContainerSummary {
            id: text(v, &["Id"]),
            name: v["Names"][0].as_str().unwrap_or_default().to_string(),
            state: text(v, &["State"]),
            labels: keys
                .iter()
                .filter_map(|key| Some((key.to_string(), v["Labels"][key].as_str()?.to_string())))
                .collect(),
        })
        .collect())
}

pub fn container_details(json: &[u8]) -> Result<Vec<ContainerDetails>, String> {
    let all: Vec<Value> = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    all.iter().map(one_container).collect()
}

fn one_container(v: &Value) -> Result<ContainerDetails, String> {
    let state = &v["State"];
    let labels = v["Config"]["Labels"]
        .as_object()
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok(ContainerDetails {
        id: text(v, &["Id"]),
        name: text(v, &["Name"]).trim_start_matches('/').to_string(),
        image: text(v, &["Config", "Image"]),
        labels,
        state: ContainerState {
            status: text(state, &["Status"]),
            running: state["Running"].as_bool().unwrap_or(false),
            exit_code: state["ExitCode"].as_i64().unwrap_or(0),
            oom_killed: state["OOMKilled"].as_bool().unwrap_or(false),
            pid: state["Pid"].as_u64().unwrap_or(0) as u32,
            restart_count: v["RestartCount"].as_u64().unwrap_or(0),
            started_at: time(state, "StartedAt"),
            finished_at: time(state, "FinishedAt"),
            error: text(state, &["Error"]),
        },
        memory_limit: v["HostConfig"]["Memory"].as_u64().filter(|&m| m > 0),
    })
}

/// A timestamp, or None for the engines' "never" (the zero time).
fn time(v: &Value, key: &str) -> Option<String> {
    let t = v[key].as_str()?;
    (!t.is_empty() && !t.starts_with("0001-01-01")).then(|| t.to_string())
}

fn text(v: &Value, path: &[&str]) -> String {
    let mut at = v;
    for key in path {
        at = &at[*key];
    }
    at.as_str().unwrap_or_default().to_string()
}

fn number(v: &Value, path: &[&str]) -> Result<u64, String> {
    let mut at = v;
    for key in path {
        at = &at[*key];
    }
    at.as_u64()
        .ok_or_else(|| format!("no number at {}", path.join(".")))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIND_KEYS: [&str; 2] = ["io.x-k8s.kind.cluster", "io.x-k8s.kind.role"];

    #[test]
    fn docker_ps_lines_give_each_key_its_value() {
        // As docker 20.10 prints the template containers_with_label asks for.
        let text = "3f43e3\te2e-control-plane\trunning\te2e\tcontrol-plane\n5c1f5a\te2e-worker\texited\te2e\t\n";
        let listed = docker_ps_lines(text, &KIND_KEYS);
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].name, "e2e-control-plane");
        assert!(listed[0].running());
        assert_eq!(listed[0].labels["io.x-k8s.kind.role"], "control-plane");
        assert!(!listed[1].running());
        assert_eq!(listed[1].labels.get("io.x-k8s.kind.role"), None);
        assert_eq!(listed[1].labels["io.x-k8s.kind.cluster"], "e2e");
    }

    #[test]
    fn podman_ps_json_keeps_the_keys_asked_for() {
        // The fields podman 4.3's `ps --format json` prints, as here.
        let json = br#"[{"Id":"66df07","Names":["e2e-control-plane"],"State":"running","Labels":{"io.loadmaster.rootfs":"3d29","io.x-k8s.kind.cluster":"e2e","io.x-k8s.kind.role":"control-plane"},"ExitCode":0}]"#;
        let listed = podman_ps_json(json, &KIND_KEYS).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, "66df07");
        assert_eq!(listed[0].name, "e2e-control-plane");
        assert!(listed[0].running());
        assert_eq!(listed[0].labels.len(), 2);
        assert!(podman_ps_json(b"not json", &KIND_KEYS).is_err());
    }

    // Contract test: Docker Desktop cannot run here. The fields we read, with
    // the values a Docker Desktop VM on macOS reports (the product name in
    // OperatingSystem, the VM's linuxkit kernel and memory).
    const DOCKER_DESKTOP_INFO: &str = r#"{"ServerVersion":"27.3.1","MemTotal":8217579520,"NCPU":6,
        "Driver":"overlayfs","DockerRootDir":"/var/lib/docker","CgroupVersion":"2",
        "SecurityOptions":["name=seccomp,profile=unconfined","name=cgroupns"],
        "OperatingSystem":"Docker Desktop","KernelVersion":"6.10.11-linuxkit"}"#;

    // Contract test: podman-remote cannot run here. The fields we read of
    // `podman info --format json` from macOS, where the client reaches a
    // podman machine with the default 2 GiB.
    const PODMAN_MACHINE_INFO: &str = r#"{"host":{"memTotal":2048086016,"cpus":4,
        "cgroupVersion":"v2","serviceIsRemote":true,"kernel":"6.9.12-200.fc40.aarch64",
        "security":{"rootless":false}},
        "store":{"graphDriverName":"overlay","graphRoot":"/var/lib/containers/storage"},
        "version":{"Version":"5.2.3"}}"#;

    #[test]
    fn docker_desktop_is_a_vm_and_reports_the_vm_memory() {
        let info = engine_info(EngineKind::Docker, DOCKER_DESKTOP_INFO.as_bytes()).unwrap();
        assert_eq!(info.location, Location::VirtualMachine);
        assert_eq!(info.memory_bytes, 8217579520);
        assert_eq!(info.cpus, 6);
        assert_eq!(info.cgroup_version, 2);
        assert!(!info.rootless);
    }

    #[test]
    fn podman_machine_is_a_vm_and_reports_the_vm_memory() {
        let info = engine_info(EngineKind::Podman, PODMAN_MACHINE_INFO.as_bytes()).unwrap();
        assert_eq!(info.location, Location::VirtualMachine);
        assert_eq!(info.memory_bytes, 2048086016);
        assert_eq!(info.storage_driver, "overlay");
        assert_eq!(info.version, "5.2.3");
    }

    #[test]
    fn the_service_address_tells_a_remote_engine_from_a_vm() {
        let of = Location::of_service_address;
        assert_eq!(
            of("ssh://root@build.example.com/run/podman/podman.sock"),
            Some(Location::Remote)
        );
        assert_eq!(of("tcp://10.0.0.5:2376"), Some(Location::Remote));
        // How `podman machine` connections look.
        assert_eq!(
            of("ssh://core@127.0.0.1:54321/run/user/501/podman/podman.sock"),
            Some(Location::VirtualMachine)
        );
        assert_eq!(
            of("ssh://user@[::1]:2222/run/podman.sock"),
            Some(Location::VirtualMachine)
        );
        // A socket says nothing: a local service, or one in a namespace
        // or VM whose socket is forwarded here.
        assert_eq!(of("unix:///run/podman/podman.sock"), None);
        assert_eq!(of(""), None);
    }

    #[test]
    fn a_vm_or_remote_engine_is_probed_under_its_host_name_a_local_one_not() {
        assert!(Location::Local.host_aliases(EngineKind::Docker).is_empty());
        assert_eq!(
            Location::VirtualMachine.host_aliases(EngineKind::Podman),
            ["host.containers.internal"]
        );
        assert_eq!(
            Location::Remote.host_aliases(EngineKind::Docker),
            ["host.docker.internal"]
        );
    }

    #[test]
    fn info_without_memory_is_an_error() {
        assert!(engine_info(EngineKind::Docker, br#"{"NCPU":2}"#).is_err());
        assert!(engine_info(EngineKind::Podman, b"not json").is_err());
    }

    #[test]
    fn podman_image_ids_get_their_algorithm() {
        let json =
            br#"[{"Id":"a2e7","RepoTags":["x:1"],"Size":5,"RootFS":{"Layers":["sha256:b2"]}}]"#;
        let image = image_details(json).unwrap();
        assert_eq!(image.id, "sha256:a2e7");
        assert_eq!(image.layers, vec!["sha256:b2"]);
        assert!(!image.stored_compressed);
    }

    /// docker 28.5.2's answer with the containerd image store (trimmed),
    /// and docker 20.10's with the classic store, as recorded here.
    #[test]
    fn a_containerd_store_image_says_its_layers_are_stored_compressed() {
        let containerd_store = br#"[{"Id":"sha256:e060","RepoTags":["lmcs-img:1"],"Size":5,
            "Descriptor":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:e060","size":762},
            "GraphDriver":{"Data":null,"Name":"overlayfs"},"RootFS":{"Layers":["sha256:b2"]}}]"#;
        assert!(image_details(containerd_store).unwrap().stored_compressed);
        let classic = br#"[{"Id":"sha256:5fe3","RepoTags":["x:1"],"Size":5,"Descriptor":null,
            "GraphDriver":{"Name":"overlay2"},"RootFS":{"Layers":["sha256:b2"]}}]"#;
        assert!(!image_details(classic).unwrap().stored_compressed);
    }

    #[test]
    fn container_names_lose_dockers_slash_and_zero_times_are_none() {
        let json = br#"[{"Id":"84a5","Name":"/n-control-plane","Config":{"Labels":{"io.x-k8s.kind.role":"control-plane"}},
            "State":{"Status":"exited","Running":false,"ExitCode":137,"OOMKilled":true,"Pid":0,
            "StartedAt":"2025-12-15T23:00:00Z","FinishedAt":"0001-01-01T00:00:00Z"},
            "HostConfig":{"Memory":0}}]"#;
        let c = &container_details(json).unwrap()[0];
        assert_eq!(c.name, "n-control-plane");
        assert_eq!(c.state.exit_code, 137);
        assert!(c.state.oom_killed);
        assert_eq!(c.state.started_at.as_deref(), Some("2025-12-15T23:00:00Z"));
        assert_eq!(c.state.finished_at, None);
        assert_eq!(c.memory_limit, None);
        assert_eq!(c.labels["io.x-k8s.kind.role"], "control-plane");
    }

    /// Contract tests, recorded behaviour: podman 5.8 and 6.0 cannot run
    /// here; `tests/fixtures/podman/VERSION/` holds their output's shape,
    /// derived from podman's source (its README says from which files).
    /// podman 6 changed only the template `{{.Labels}}` (to `k=v,...`,
    /// kind #4201); the JSON loadmaster asks for keeps its label object.
    mod podman_versions {
        use super::*;

        const VERSIONS: [(&str, &str, &str, &str); 2] = [
            (
                "5.8.2",
                include_str!("../../tests/fixtures/podman/5.8/ps.json"),
                include_str!("../../tests/fixtures/podman/5.8/info.json"),
                include_str!("../../tests/fixtures/podman/5.8/container-inspect.json"),
            ),
            (
                "6.0.0",
                include_str!("../../tests/fixtures/podman/6.0/ps.json"),
                include_str!("../../tests/fixtures/podman/6.0/info.json"),
                include_str!("../../tests/fixtures/podman/6.0/container-inspect.json"),
            ),
        ];

        #[test]
        fn ps_json_gives_kinds_labels_on_podman_5_and_6() {
            for (version, ps, _, _) in VERSIONS {
                let listed = podman_ps_json(ps.as_bytes(), &KIND_KEYS).unwrap();
                assert_eq!(listed.len(), 2, "{version}");
                assert_eq!(listed[0].name, "e2e-control-plane", "{version}");
                assert!(listed[0].running(), "{version}");
                assert_eq!(
                    listed[0].labels["io.x-k8s.kind.cluster"], "e2e",
                    "{version}"
                );
                assert_eq!(
                    listed[1].labels["io.x-k8s.kind.role"], "worker",
                    "{version}"
                );
                assert!(!listed[1].running(), "{version}");
            }
        }

        #[test]
        fn info_gives_the_vms_figures_and_where_save_stages() {
            for (version, _, info, _) in VERSIONS {
                let info = engine_info(EngineKind::Podman, info.as_bytes()).unwrap();
                assert_eq!(info.version, version);
                assert_eq!(info.location, Location::VirtualMachine, "{version}");
                assert_eq!(info.memory_bytes, 2046894080, "{version}");
                assert_eq!(info.cpus, 5, "{version}");
                assert_eq!(info.cgroup_version, 2, "{version}");
                assert_eq!(
                    info.storage_root, "/var/lib/containers/storage",
                    "{version}"
                );
                assert_eq!(info.save_staging.as_deref(), Some("/var/tmp"), "{version}");
            }
        }

        #[test]
        fn container_inspect_gives_state_and_labels() {
            for (version, _, _, inspect) in VERSIONS {
                let c = &container_details(inspect.as_bytes()).unwrap()[0];
                assert_eq!(c.name, "e2e-worker", "{version}");
                assert_eq!(c.state.exit_code, 137, "{version}");
                assert!(c.state.oom_killed, "{version}");
                assert_eq!(c.labels["io.x-k8s.kind.role"], "worker", "{version}");
                assert_eq!(c.memory_limit, None, "{version}");
            }
        }
    }

    #[test]
    fn docker_info_says_where_save_stages() {
        // docker 20.10's classic store, as here: `save` stages in DATA-ROOT/tmp.
        let classic = br#"{"ServerVersion":"20.10.24","MemTotal":1,"NCPU":2,"Driver":"overlay2",
            "DockerRootDir":"/var/lib/docker","DriverStatus":[["Backing Filesystem","extfs"]]}"#;
        let info = engine_info(EngineKind::Docker, classic).unwrap();
        assert_eq!(info.save_staging.as_deref(), Some("/var/lib/docker/tmp"));
        // Docker 29's containerd store streams from its content store.
        let containerd = br#"{"ServerVersion":"29.0.1","MemTotal":1,"NCPU":2,"Driver":"overlayfs",
            "DockerRootDir":"/var/lib/docker","DriverStatus":[["driver-type","io.containerd.snapshotter.v1"]]}"#;
        let info = engine_info(EngineKind::Docker, containerd).unwrap();
        assert_eq!(info.save_staging, None);
    }
}
