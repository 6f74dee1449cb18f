//! The signature table: error texts and exit statuses seen in E2E
//! environments, what each means, and what would confirm or refute the cause
//! it points at.
//!
//! It is data: adding a signature is adding one entry to [`SIGNATURES`] (and a
//! line to a test). A signature only says what a line means on its own; how
//! much a diagnosis may claim from it is decided in
//! [`diagnosis`](super::diagnosis), with the other evidence in view.

use super::diagnosis::{Class, Confidence};

/// One known failure text or exit status.
#[derive(Debug)]
pub struct Signature {
    /// Stable identifier, used in JSON output.
    pub id: &'static str,
    pub trigger: Trigger,
    /// What it means, in one phrase.
    pub meaning: &'static str,
    /// The root-cause class it points at on its own.
    pub class: Class,
    /// How sure that class is from this signature alone.
    pub confidence: Confidence,
    /// A process was killed or lost the server it talked to: a question for
    /// the memory evidence (OOM kill or not) rather than a cause by itself.
    pub abrupt_end: bool,
    /// Evidence that would confirm the cause.
    pub confirms: &'static str,
    /// Evidence that would refute it.
    pub refutes: &'static str,
    /// For a text known to mislead (ENOSPC, "not present locally", "could
    /// not find a log line"): the causes it fits, likeliest first. Such a
    /// signature never proves a cause alone; the diagnosis lists these with
    /// the commands that decide between them.
    pub fits: &'static [Class],
    /// Pulls out what the line names (a container, a port, an image).
    pub subject: Option<fn(&str) -> Option<String>>,
}

/// What makes a signature match.
#[derive(Debug)]
pub enum Trigger {
    /// A process ended with this status (signals as 128 + N).
    Exit(i32),
    /// A line matches when it contains every text of any one group, ignoring
    /// case: `&[&["a", "b"], &["c"]]` is (a and b) or c.
    Text(&'static [&'static [&'static str]]),
    /// A line matches when the test holds for it, lower-cased, trimmed and
    /// without a CI timestamp: for texts that must open the line (`panic:`)
    /// or that need words kept out.
    Line(fn(&str) -> bool),
}

/// The cluster's network not up. Not containerd's own notice at start
/// (`failed to load cni during init ... cni plugin not initialized`),
/// which every node prints before its CNI config is written: a node's log
/// read after a failed import holds it, and it explains nothing.
fn cluster_network_down(line: &str) -> bool {
    const TEXTS: [&str; 4] = [
        "networkpluginnotready",
        "cni plugin not initialized",
        "network plugin is not ready",
        "still waiting on: \"kubernetes\"",
    ];
    TEXTS.iter().any(|text| line.contains(text)) && !line.contains("failed to load cni during init")
}

/// A reset on a network connection. On a unix socket (`read unix
/// @->/run/containerd/containerd.sock`) the daemon behind it went away:
/// ctr's abrupt-end lines say that, and no network is involved.
fn tcp_connection_reset(line: &str) -> bool {
    line.contains("connection reset by peer") && !line.contains(" unix ")
}

impl Signature {
    /// True when `lowercase_line` (already lower-cased) matches a text trigger.
    pub fn matches_text(&self, lowercase_line: &str) -> bool {
        match self.trigger {
            Trigger::Text(groups) => groups
                .iter()
                .any(|group| group.iter().all(|text| lowercase_line.contains(text))),
            Trigger::Line(test) => test(bare(lowercase_line)),
            Trigger::Exit(_) => false,
        }
    }
}

/// A line without its CI timestamp, indentation, or the `#` / `>` a
/// pasted log is quoted with.
fn bare(line: &str) -> &str {
    super::kube::unprefixed(line)
        .trim()
        .trim_start_matches(['#', '>'])
        .trim()
}

/// The signature with this id.
pub fn by_id(id: &str) -> Option<&'static Signature> {
    SIGNATURES.iter().find(|s| s.id == id)
}

/// The signature for an exit status, if the status means something of its own.
pub fn for_exit(code: i32) -> Option<&'static Signature> {
    SIGNATURES
        .iter()
        .find(|s| matches!(s.trigger, Trigger::Exit(c) if c == code))
}

const OOM_CONFIRMS: &str = "an OOM kill on record: the node cgroup's oom_kill counter above 0 (memory.oom_control on cgroup v1, memory.events on v2), a kernel \"Killed process N (containerd|ctr)\" line at that time, or docker's OOMKilled=true";
const OOM_REFUTES: &str = "oom_kill 0 in the node's cgroup and no OOM line in the kernel log of the engine's machine (for a podman machine or Docker Desktop: the VM's kernel)";

/// Every known signature. Text triggers are lower case.
pub static SIGNATURES: &[Signature] = &[
    Signature {
        id: "exit-137",
        trigger: Trigger::Exit(137),
        meaning: "killed by SIGKILL (exit status 137 = 128 + 9); no proof of an OOM by itself: podman exits 137 without one (podman #10825)",
        class: Class::KilledUnknown,
        confidence: Confidence::Suspected,
        abrupt_end: true,
        confirms: OOM_CONFIRMS,
        refutes: "an OOM is refuted by oom_kill 0 and a clean kernel log; podman exits 137 without any OOM when an exec session is torn down (podman #10825), so 137 alone proves nothing about memory",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "exit-143",
        trigger: Trigger::Exit(143),
        meaning: "stopped by SIGTERM (exit status 143 = 128 + 15): asked to stop by a timeout, a cancelled CI job or a shutdown",
        class: Class::Terminated,
        confidence: Confidence::Suspected,
        abrupt_end: false,
        confirms: "a timeout or a cancellation at that time in the CI job's or the test runner's log",
        refutes: "no timeout configured and no cancellation recorded",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "exit-139",
        trigger: Trigger::Exit(139),
        meaning: "crashed with SIGSEGV (exit status 139 = 128 + 11): a bug in the program, or corrupt memory",
        class: Class::Crash,
        confidence: Confidence::Proven,
        abrupt_end: false,
        confirms: "a \"segfault at\" line for the process in the kernel log",
        refutes: "nothing: the status itself is the crash",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "exit-125",
        trigger: Trigger::Exit(125),
        meaning: "the container engine itself failed (docker/podman exit 125: the error is the engine's, not the command's)",
        class: Class::EngineError,
        confidence: Confidence::Suspected,
        abrupt_end: false,
        confirms: "the engine's own error message on the lines before",
        refutes: "the command was not run through docker or podman",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "exit-126",
        trigger: Trigger::Exit(126),
        meaning: "the command was found but could not be run (exit 126: not executable, permission denied, or the OCI runtime failed)",
        class: Class::CommandNotRunnable,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "\"permission denied\" or an OCI runtime error before it",
        refutes: "the program itself exits 126 for its own reasons",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "exit-127",
        trigger: Trigger::Exit(127),
        meaning: "command not found (exit 127)",
        class: Class::CommandNotRunnable,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "\"not found\" or \"executable file not found in $PATH\" before it",
        refutes: "the program itself exits 127 for its own reasons",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "transport-closing",
        trigger: Trigger::Text(&[&["transport is closing"]]),
        meaning: "the gRPC connection to containerd closed mid-call: containerd exited or was killed",
        class: Class::EngineCrash,
        confidence: Confidence::Suspected,
        abrupt_end: true,
        confirms: OOM_CONFIRMS,
        refutes: OOM_REFUTES,
        fits: &[],
        subject: None,
    },
    Signature {
        id: "progress-stream-recv",
        trigger: Trigger::Text(&[&["progress stream failed to recv"]]),
        meaning: "ctr lost its import progress stream: the containerd it talks to went away, or ctr was killed",
        class: Class::EngineCrash,
        confidence: Confidence::Suspected,
        abrupt_end: true,
        confirms: OOM_CONFIRMS,
        refutes: OOM_REFUTES,
        fits: &[],
        subject: None,
    },
    Signature {
        id: "server-eof",
        trigger: Trigger::Text(&[
            &["error reading from server: eof"],
            &["error reading from server", "connection reset by peer"],
        ]),
        meaning: "the gRPC server (containerd) closed or reset the connection",
        class: Class::EngineCrash,
        confidence: Confidence::Suspected,
        abrupt_end: true,
        confirms: OOM_CONFIRMS,
        refutes: OOM_REFUTES,
        fits: &[],
        subject: None,
    },
    Signature {
        id: "server-quit",
        trigger: Trigger::Text(&[&["server probably quit"]]),
        meaning: "the podman API service closed the connection: it crashed, was killed or restarted",
        class: Class::EngineCrash,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "the podman service's log (`journalctl --user -u podman.service`, or inside the machine) shows it exiting; a kernel OOM line naming podman",
        refutes: "the service's uptime predates the failure",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "no-space",
        trigger: Trigger::Text(&[&["no space left on device"]]),
        meaning: "ENOSPC: a filesystem is full, or (the same error code) the inotify watch limit was reached",
        class: Class::DiskFull,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "`df` of the node's /var/lib/containerd, the engine's storage and /tmp showing one of them (nearly) full",
        refutes: "every filesystem has room: then ENOSPC came from inotify_add_watch (fs.inotify.max_user_watches)",
        fits: &[Class::DiskFull, Class::InotifyLimits],
        subject: Some(written_path),
    },
    Signature {
        id: "cannot-allocate-memory",
        trigger: Trigger::Text(&[&["cannot allocate memory"]]),
        meaning: "an allocation failed (ENOMEM): memory, or a limit such as pids or vm.max_map_count, ran out",
        class: Class::OutOfMemory,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "the engine's free memory near 0 (`podman info`, `docker info`), or a cgroup at its limit",
        refutes: "plenty of free memory at the time: then a pids or map-count limit is the likelier cause",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "unknown-version",
        trigger: Trigger::Text(&[&["unknown version specified"]]),
        meaning: "the OCI runtime (crun) rejected the container spec's version",
        class: Class::RuntimeTransient,
        confidence: Confidence::Suspected,
        abrupt_end: false,
        confirms: "the same command succeeds when retried",
        refutes: "it fails the same way on every retry: then the OCI runtime is older than the engine expects (`podman info --format '{{.Host.OCIRuntime.Version}}'`)",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "name-in-use",
        trigger: Trigger::Text(&[
            &["container name \"", "already in use"],
            &["name is already in use"],
        ]),
        meaning: "a container with that name already exists (a node left over from an earlier run)",
        class: Class::NameConflict,
        confidence: Confidence::Proven,
        abrupt_end: false,
        confirms: "`docker ps -a` / `podman ps -a` lists the name",
        refutes: "the name is free now: then a concurrent run took it and removed it",
        fits: &[],
        subject: Some(quoted_after_name),
    },
    Signature {
        id: "cluster-exists",
        trigger: Trigger::Text(&[&["already exist for a cluster with the name"]]),
        meaning: "kind found nodes of a cluster with that name (left over from an earlier run)",
        class: Class::NameConflict,
        confidence: Confidence::Proven,
        abrupt_end: false,
        confirms: "`kind get clusters` lists it",
        refutes: "it is not listed on the engine kind used",
        fits: &[],
        subject: Some(quoted_after_name),
    },
    Signature {
        id: "port-in-use",
        trigger: Trigger::Text(&[
            &["address already in use"],
            &["port is already allocated"],
            &["proxy already running"],
        ]),
        meaning: "a host port is already taken (by another process, another cluster, an earlier node of the same cluster, or a stale gvproxy of a podman machine); the message does not say who holds it",
        class: Class::PortConflict,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "`ss -ltnp` / `lsof -iTCP -sTCP:LISTEN` shows the owner of the port",
        refutes: "the port is free now: then the earlier owner has gone",
        fits: &[],
        subject: Some(port),
    },
    Signature {
        id: "image-missing",
        trigger: Trigger::Text(&[&["image not known"], &["no such image"]]),
        meaning: "the engine asked has no such image (for `kind load docker-image` under podman: kind asks docker, kind #2027 #3105)",
        class: Class::ImageMissing,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "`podman images IMAGE` / `docker images IMAGE` shows which engine has it",
        refutes: "the engine asked lists the image under exactly that name",
        fits: &[],
        subject: Some(image),
    },
    Signature {
        id: "image-pull",
        trigger: Trigger::Text(&[
            &["errimagepull"],
            &["imagepullbackoff"],
            &["failed to pull image"],
        ]),
        meaning: "an image could not be pulled: it was not loaded into the node, or its pull policy forces a pull (`:latest` means Always), or the registry refused or could not be reached",
        class: Class::ImagePullFailure,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "`crictl images` in the node lacks the image, or the pod's imagePullPolicy is Always",
        refutes: "the node holds the image and the policy is IfNotPresent or Never",
        fits: &[],
        subject: Some(quoted_after_pull),
    },
    Signature {
        id: "deadline-exceeded",
        trigger: Trigger::Text(&[
            &["context deadline exceeded"],
            &["timed out waiting for the condition"],
            &["timed out after"],
            &["timeout expired"],
            &["deadlineexceeded"],
        ]),
        meaning: "a wait ran out of time: the thing waited for was slow or never came",
        class: Class::Timeout,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "the awaited object's events (`kubectl get events`, `kubectl describe`) show why it was not ready",
        refutes: "it became ready shortly after: then the timeout is too short",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "kind-log-line",
        trigger: Trigger::Text(&[&["could not find a log line"]]),
        meaning: "kind's node container did not finish booting (its systemd never logged readiness)",
        class: Class::NodeStartFailure,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "`docker logs NODE` / `podman logs NODE` (kind create cluster --retain keeps it) shows where boot stopped",
        refutes: "nothing: kind waited and gave up; the node's log tells why",
        fits: &[
            Class::CgroupConfig,
            Class::InotifyLimits,
            Class::KindNodeVersionMismatch,
            Class::OomKill,
        ],
        subject: None,
    },
    Signature {
        id: "too-many-open-files",
        trigger: Trigger::Text(&[&["too many open files"]]),
        meaning: "a file or inotify limit was reached; in kind nodes usually fs.inotify.max_user_instances/max_user_watches",
        class: Class::InotifyLimits,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "`sysctl fs.inotify` on the engine's machine shows the defaults (128 instances, 8192 watches)",
        refutes: "the inotify limits are already raised: then the open-files ulimit is the limit",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "build-failed",
        trigger: Trigger::Text(&[
            &["building at step"],
            &["failed to solve"],
            &["executor failed running"],
            &["returned a non-zero code"],
        ]),
        meaning: "an image build step failed (the builder's word that it failed, not why: a bug, or a toolchain or dependency of another version)",
        class: Class::BuildFailure,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "the step's own output just above",
        refutes: "nothing: the builder said so",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "corrupt-archive",
        trigger: Trigger::Text(&[
            &["invalid tar header"],
            &["unrecognized image format"],
            &["unexpected end of file", "tar"],
        ]),
        meaning: "an image archive could not be read: truncated or not an image archive",
        class: Class::CorruptInput,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "`tar tf ARCHIVE` fails, or the archive is smaller than the image",
        refutes: "the same archive imports elsewhere: then the stream was cut in transit",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "digest-mismatch",
        trigger: Trigger::Text(&[
            &["does not match its digest"],
            &["does not belong to this image"],
        ]),
        meaning: "an image archive entry's content does not hash to the digest that names it: the archive is corrupt",
        class: Class::CorruptInput,
        confidence: Confidence::Proven,
        abrupt_end: false,
        confirms: "nothing more is needed: the hash was computed over the bytes read",
        refutes: "the same file hashes correctly when read again: then the read, not the file, was corrupt (bad disk or memory)",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "test-failed",
        trigger: Trigger::Text(&[&["--- fail:"], &["[fail]"], &["fail! --"]]),
        meaning: "a test failed (go test / ginkgo): the environment came up",
        class: Class::TestFailure,
        confidence: Confidence::Proven,
        abrupt_end: false,
        confirms: "the test's own failure message",
        refutes: "nothing: the test runner said so",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "kind-not-present",
        trigger: Trigger::Text(&[&["not present locally"]]),
        meaning: "kind found no such image in the engine it asked: kind asks docker by name, so an image that podman holds (or another engine's store) is \"not present\" (kind #2027, #3105)",
        class: Class::ImageMissing,
        confidence: Confidence::Suspected,
        abrupt_end: false,
        confirms: "`docker images IMAGE` empty while `podman images IMAGE` lists it",
        refutes: "neither engine lists the image: then it was never built under that name",
        fits: &[Class::ProviderMismatch, Class::ImageMissing],
        subject: Some(image),
    },
    Signature {
        id: "no-nodes-found",
        trigger: Trigger::Text(&[&["no nodes found for cluster"], &["unknown cluster \""]]),
        meaning: "kind found no node containers of that cluster on the engine it asked",
        class: Class::ProviderMismatch,
        confidence: Confidence::Suspected,
        abrupt_end: false,
        confirms: "`podman ps -a` lists the cluster's nodes while `docker ps -a` does not (or the reverse): made under one provider, asked under the other",
        refutes: "no engine lists them: then the cluster is gone or has another name",
        fits: &[Class::ProviderMismatch, Class::ClusterNameMismatch],
        subject: Some(quoted),
    },
    Signature {
        id: "docker-daemon-unreachable",
        trigger: Trigger::Text(&[&["cannot connect to the docker daemon"]]),
        meaning: "the docker CLI found no daemon at its socket",
        class: Class::EngineError,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "`docker info` fails the same way; `systemctl status docker` shows it stopped",
        refutes: "`docker info` answers: then DOCKER_HOST points elsewhere",
        fits: &[Class::ProviderMismatch, Class::EngineError],
        subject: None,
    },
    Signature {
        id: "rate-limited",
        trigger: Trigger::Text(&[
            &["toomanyrequests"],
            &["pull rate limit"],
            &["429 too many requests"],
            &["429", "too many requests"],
        ]),
        meaning: "the registry refused the pull for its rate (HTTP 429)",
        class: Class::RegistryRateLimit,
        confidence: Confidence::Proven,
        abrupt_end: false,
        confirms: "the registry's answer names the limit; anonymous Docker Hub pulls are limited per IP",
        refutes: "nothing: the registry said so",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "content-digest-not-found",
        trigger: Trigger::Text(&[&["content digest", "not found"]]),
        meaning: "`ctr import` met an index naming a blob the archive lacks: Docker 29's containerd store saves every platform's index with only the host's blobs (kind #3795)",
        class: Class::ContainerdStoreDigestMissing,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "`docker info --format '{{.Driver}}'` says overlayfs from the containerd store (`io.containerd.snapshotter.v1`), or Docker 29+; `docker save --platform linux/amd64` then imports",
        refutes: "the archive came from a classic store: then it is truncated (corrupt-input)",
        fits: &[Class::ContainerdStoreDigestMissing, Class::CorruptInput],
        subject: None,
    },
    Signature {
        id: "platform-mismatch",
        trigger: Trigger::Text(&[
            &["does not match the detected host platform"],
            &["does not match the specified platform"],
            &["no matching manifest for"],
            &["image platform", "does not match"],
        ]),
        meaning: "the image is for another platform (CPU architecture) than the host's",
        class: Class::ArchitectureMismatch,
        confidence: Confidence::Proven,
        abrupt_end: false,
        confirms: "`docker image inspect IMAGE --format '{{.Os}}/{{.Architecture}}'` against `uname -m`",
        refutes: "nothing: the engine compared the platforms",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "exec-format-error",
        trigger: Trigger::Text(&[
            &["exec format error"],
            &["cannot execute binary file"],
            &["qemu: uncaught target signal"],
            &["rosetta error"],
            &["qemu-", "segmentation fault"],
        ]),
        meaning: "a binary for another CPU architecture was run (ENOEXEC), or crashed under emulation",
        class: Class::ArchitectureMismatch,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "`file BINARY` or the image's Architecture differs from `uname -m` of the engine's machine",
        refutes: "the architectures match: then the file is a script without a `#!` line",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "api-version-mismatch",
        trigger: Trigger::Text(&[
            &["api version is too old"],
            &["is too new. maximum supported api version"],
            &["client version", "is too new"],
            &["client version", "is too old"],
            &["server api version", "older"],
        ]),
        meaning: "the engine's client and server speak different API versions",
        class: Class::EngineVersionMismatch,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "`podman version` / `docker version` shows client and server versions apart",
        refutes: "client and server report the same version",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "api-answer-undecodable",
        trigger: Trigger::Line(|line| {
            (line.contains("cannot unmarshal")
                && (line.contains("podman") || line.contains("docker")))
                // podman's client decoding into its own `define` types.
                || line.contains("unmarshalling into &define.")
        }),
        meaning: "an engine client could not decode its server's answer: usually a client and server of different versions",
        class: Class::EngineVersionMismatch,
        confidence: Confidence::Suspected,
        abrupt_end: false,
        confirms: "`podman version` shows Client and Server versions apart",
        refutes: "they match: then the answer itself is malformed (an engine bug)",
        fits: &[Class::EngineVersionMismatch, Class::EngineError],
        subject: None,
    },
    Signature {
        id: "kind-node-incompatible",
        trigger: Trigger::Text(&[
            &["failed to detect containerd snapshotter"],
            &["unsupported config version"],
            &["unknown containerd config version"],
            &["this version of kubeadm only supports"],
            &["kubeadm", "unknown flag"],
            &["kubelet", "unknown flag"],
            &["node image", "not supported by this kind"],
        ]),
        meaning: "the kind CLI and the node image (its kubeadm, kubelet or containerd config) are of versions that do not work together",
        class: Class::KindNodeVersionMismatch,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "`kind version` against the node image's tag: each kind release lists the node images built for it",
        refutes: "the node image is one the kind release lists",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "name-resolution",
        trigger: Trigger::Text(&[
            &["no such host"],
            &["temporary failure in name resolution"],
            &["server misbehaving"],
            &["could not resolve host"],
            &["name or service not known"],
            &["network is unreachable"],
            &["no route to host"],
            &["tls handshake timeout"],
            &["dial tcp", "i/o timeout"],
        ]),
        meaning: "a name did not resolve or the network path to an address was down",
        class: Class::DnsNetwork,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "`nslookup NAME` / `curl -v ADDRESS` from the same place (node, pod, engine VM) fails the same way",
        refutes: "it resolves and connects from there: then it was a passing outage",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "connection-refused",
        trigger: Trigger::Text(&[
            &["connection refused"],
            &["connection was refused"],
            &["econnrefused"],
        ]),
        meaning: "nothing listened at the address dialled: the service was not up (yet), or the address is not the service's from the side that dialled",
        class: Class::DependencyNotReady,
        confidence: Confidence::Suspected,
        abrupt_end: false,
        confirms: "the service's pod or process is not ready at that time (its events, `kubectl get endpoints`); for 127.0.0.1, which side dialled it",
        refutes: "the service answers at that address from the same side",
        fits: &[Class::DependencyNotReady, Class::EndpointUnreachable],
        subject: Some(address),
    },
    Signature {
        id: "gave-up",
        trigger: Trigger::Text(&[
            &["giving up"],
            &["gave up"],
            &["max retries"],
            &["retries exceeded"],
            &["exhausted", "retries"],
            &["retry limit"],
        ]),
        meaning: "a component retried something until it gave up",
        class: Class::DependencyNotReady,
        confidence: Confidence::Suspected,
        abrupt_end: false,
        confirms: "what it retried (the lines before) was not ready at that time",
        refutes: "what it retried was up: then the component itself was misconfigured",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "app-panic",
        trigger: Trigger::Line(|line| {
            (line.starts_with("panic: ") && !line.starts_with("panic: test timed out"))
                || line.starts_with("fatal error: ")
                || line.starts_with("traceback (most recent call last)")
                || line.starts_with("exception in thread")
                || line.contains("unhandled exception")
                || line.contains("uncaught exception")
                || (line.starts_with("thread '") && line.contains("panicked at"))
                || line.starts_with("[signal sigsegv: segmentation violation")
                // Kubernetes' HandleCrash logs a recovered panic so.
                || line.contains("observed a panic")
        }),
        meaning: "an application crashed: a panic, a runtime's fatal error or an uncaught exception",
        class: Class::AppCrash,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "the first lines of its stack trace name the code that failed",
        refutes: "nothing in the log: its cause is in the first lines after it",
        fits: &[],
        subject: Some(after_colon),
    },
    Signature {
        id: "go-test-timeout",
        trigger: Trigger::Text(&[&["panic: test timed out after"]]),
        meaning: "go test's -timeout ran out and it killed the test binary",
        class: Class::Timeout,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "the goroutine dump after it shows what the test was waiting on",
        refutes: "nothing: go test said so",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "image-never-pull",
        trigger: Trigger::Text(&[
            &["errimageneverpull"],
            &["is not present with pull policy of never"],
        ]),
        meaning: "the pod's image is not on the node and its pull policy is Never: a tag or name other than the one loaded, or an image never loaded into this node's store",
        class: Class::ImageNeverPull,
        // The kubelet's reason relayed as text (skaffold, a CI step): it
        // says where the image is not, not why, and may sit in another
        // engine's store (k3s reads its own containerd, not docker's) or
        // never have been loaded. A pod status read from the API server is
        // weighed in `workload`.
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "`crictl images` in the node lists the image under another tag or name",
        refutes: "the image is in the store of the engine that built it but not in the node's: then it was loaded into another store",
        fits: &[Class::ImageNeverPull, Class::ProviderMismatch],
        subject: Some(quoted),
    },
    Signature {
        id: "crash-loop",
        trigger: Trigger::Text(&[
            &["crashloopbackoff"],
            &["back-off restarting failed container"],
        ]),
        meaning: "a container keeps exiting and the kubelet backs off restarting it: a symptom whose cause is in the container's last lines",
        class: Class::CrashLoop,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "`kubectl logs POD -c CONTAINER --previous` shows how the last instance ended",
        refutes: "nothing: the kubelet said so",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "probe-failed",
        trigger: Trigger::Text(&[
            &["readiness probe failed"],
            &["liveness probe failed"],
            &["startup probe failed"],
            &["running and ready within"],
            &["exceeded its progress deadline"],
            &["progress deadline exceeded"],
            // Cluster API's e2e framework, waiting for a Deployment.
            &["status.available = true condition"],
        ]),
        meaning: "pods did not become ready: their readiness probe failed or the rollout ran past its deadline",
        class: Class::ReadinessTimeout,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "`kubectl describe pod` events show the probe's failures and the container's logs why it did not answer",
        refutes: "the pods became ready shortly after: then the wait was too short",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "failed-scheduling",
        trigger: Trigger::Text(&[
            &["failedscheduling"],
            &["nodes are available"],
            &["pod has unbound immediate persistentvolumeclaims"],
        ]),
        meaning: "the scheduler found no node for the pod",
        class: Class::PodUnschedulable,
        confidence: Confidence::Proven,
        abrupt_end: false,
        confirms: "the FailedScheduling event's message names why (insufficient memory or cpu, a taint, an unbound claim)",
        refutes: "nothing: the scheduler said so",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "oomkilled-reason",
        trigger: Trigger::Line(|line| {
            line.contains("oomkilled")
                && !line.contains("oomkilled=false")
                && !line.contains("oomkilled\": false")
                && !line.contains("oomkilled:false")
        }),
        meaning: "a container's status reason is OOMKilled: it used more than its memory limit",
        class: Class::ContainerOomKilled,
        confidence: Confidence::Proven,
        abrupt_end: false,
        confirms: "the container's memory limit (`kubectl get pod -o jsonpath='{..resources.limits.memory}'`)",
        refutes: "nothing: the kubelet's status says so",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "inotify",
        trigger: Trigger::Text(&[
            &["inotify"],
            &["fsnotify watcher"],
            &["failed to allocate directory watch"],
        ]),
        meaning: "an inotify instance or watch could not be created: fs.inotify limits are too low for the nodes",
        class: Class::InotifyLimits,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "`sysctl fs.inotify` on the engine's machine shows the defaults (128 instances, 8192 watches)",
        refutes: "the limits are already raised",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "cgroup-setup",
        trigger: Trigger::Line(|line| {
            const TROUBLE: [&str; 15] = [
                "not supported",
                "does not support",
                "does not exist",
                "no such file",
                "not found",
                "not available",
                "not enabled",
                "failed",
                "unable",
                "invalid",
                "permission denied",
                "read-only",
                "delegat",
                "is different from",
                "misconfiguration",
            ];
            // kubeadm prints "(required cgroups disabled)" after every
            // failed wait for the kubelet, whatever the cause.
            let cgroup_trouble = line.contains("cgroup")
                && !line.contains("could not find a log line")
                && !line.contains("required cgroups disabled")
                && TROUBLE.iter().any(|t| line.contains(t));
            cgroup_trouble || line.contains("delegate=yes")
        }),
        meaning: "the cgroup setup (v1 or v2, its controllers, their delegation, the cgroup driver) does not suit the runtime or the kubelet",
        class: Class::CgroupConfig,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "`stat -fc %T /sys/fs/cgroup` (cgroup2fs is v2) and `cat /sys/fs/cgroup/cgroup.subtree_control` on the engine's machine",
        refutes: "the hierarchy and controllers are what the node image expects",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "privileged-port",
        trigger: Trigger::Text(&[
            &["bind: permission denied"],
            &["cannot expose privileged port"],
            &["ip_unprivileged_port_start"],
        ]),
        meaning: "a rootless engine may not bind a host port below 1024",
        class: Class::PrivilegedPort,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "`sysctl net.ipv4.ip_unprivileged_port_start` is above the port",
        refutes: "the engine runs as root",
        fits: &[],
        subject: Some(port),
    },
    Signature {
        id: "config-unparsable",
        trigger: Trigger::Text(&[
            &["toml: line"],
            &["toml:", "expected"],
            &["yaml: line"],
            &["error parsing", ".conf"],
            &["near line", "last key parsed"],
            &["bare keys cannot contain"],
        ]),
        meaning: "a configuration file could not be parsed",
        class: Class::CorruptInput,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "the file and line the message names",
        refutes: "the file parses: then another file of the same name was read",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "test-summary",
        trigger: Trigger::Line(|line| {
            let pytest = line.starts_with('=') && line.contains(" failed");
            let pytest_case = line.starts_with("failed ") && line.contains("::");
            let go_package = line.starts_with("fail\t") || line.starts_with("fail ");
            let ginkgo = line.starts_with("summarizing ") && line.contains("failure");
            pytest || pytest_case || go_package || ginkgo
        }),
        meaning: "a test framework's summary reports failed tests: the environment came up",
        class: Class::TestFailure,
        confidence: Confidence::Proven,
        abrupt_end: false,
        confirms: "the failed test's own message",
        refutes: "nothing: the test runner said so",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "engine-refused",
        trigger: Trigger::Text(&[&["error response from daemon"]]),
        meaning: "the container engine refused the request",
        class: Class::EngineError,
        confidence: Confidence::Suspected,
        abrupt_end: false,
        confirms: "the rest of the engine's message says what it refused",
        refutes: "nothing",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "disk-pressure",
        trigger: Trigger::Text(&[
            &["evict", "ephemeral-storage"],
            &["diskpressure"],
            &["disk pressure"],
            &["nodefs.available"],
            &["imagefs.available"],
        ]),
        meaning: "the kubelet found its node short of disk (eviction thresholds met)",
        class: Class::DiskFull,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "`df -h` of the engine's storage (the nodes' disk is the engine's)",
        refutes: "the engine's storage has room: then the thresholds are set too high",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "unknown-flag",
        trigger: Trigger::Text(&[&["unknown flag: --"], &["flag provided but not defined"]]),
        meaning: "a program was given a flag it does not know: its version is not the one its caller was written for",
        class: Class::AppCrash,
        confidence: Confidence::Suspected,
        abrupt_end: false,
        confirms: "the program's `--version` against the version its caller expects",
        refutes: "the flag is in the program's `--help`",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "http-registry",
        trigger: Trigger::Text(&[&["server gave http response to https client"]]),
        meaning: "the client spoke HTTPS to a registry that serves plain HTTP",
        class: Class::RegistryTls,
        confidence: Confidence::Proven,
        abrupt_end: false,
        confirms: "nothing more: the registry answered in plain HTTP",
        refutes: "nothing",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "untrusted-certificate",
        trigger: Trigger::Text(&[
            &["certificate signed by unknown authority"],
            &["x509: certificate"],
            &["tls: failed to verify certificate"],
        ]),
        meaning: "the client did not trust the registry's (or a proxy's) TLS certificate",
        // TLS was spoken on both sides (not plain HTTP against HTTPS): the
        // pull failed on trust, which a CA bundle in the node fixes.
        class: Class::ImagePullFailure,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "`openssl s_client -connect HOST:PORT` shows the certificate and its issuer",
        refutes: "the certificate's issuer is in the client's trust store",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "timeout-kill",
        trigger: Trigger::Text(&[
            &["killed", "timeout -s"],
            &["killed", "timeout --signal"],
            &["killed", "timeout -k"],
        ]),
        meaning: "`timeout` killed the command when its time ran out",
        class: Class::Timeout,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "the command's wall time equals the timeout",
        refutes: "it ended before the timeout",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "node-kubernetes-start-failed",
        trigger: Trigger::Text(&[
            &["failed to start containermanager"],
            &["failed to run kubelet"],
            &["starting kubernetes: preparing server"],
        ]),
        meaning: "the Kubernetes of a node (its kubelet, or a k3s server) could not start there: the node's filesystem, devices or cgroups are not what it needs",
        class: Class::NodeStartFailure,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "the node's kubelet or k3s log (`kind export logs`, `docker logs NODE`) shows the same error at each start",
        refutes: "the node's kubelet runs: then this was a start that later recovered",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "kubeadm-wait-failed",
        trigger: Trigger::Text(&[
            &["this error is likely caused by"],
            &["the kubelet is not running"],
            &["failed to init node with kubeadm"],
            &["failed to join node with kubeadm"],
        ]),
        meaning: "kubeadm in the node gave up on the kubelet without a cause of its own (its hints are printed for every failure): in kind, most often a node image the kind CLI was not released with",
        class: Class::KindNodeVersionMismatch,
        confidence: Confidence::Suspected,
        abrupt_end: false,
        confirms: "`kind version` against the node image's tag (each kind release lists its node images); the kubelet's own log in `kind export logs` names the error",
        refutes: "the node image is one the kind release lists: then read the kubelet's log for the cgroup or node error",
        fits: &[
            Class::KindNodeVersionMismatch,
            Class::CgroupConfig,
            Class::NodeStartFailure,
        ],
        subject: None,
    },
    Signature {
        id: "cluster-network-down",
        trigger: Trigger::Line(cluster_network_down),
        meaning: "the cluster's network is not up: the CNI plugin is not ready, or CoreDNS cannot reach the API server through the service network",
        class: Class::DnsNetwork,
        confidence: Confidence::Suspected,
        abrupt_end: false,
        confirms: "the CNI pods' state (`kubectl -n kube-system get pods -o wide`), and from a pod: `nc -vz 10.96.0.1 443`, `nslookup kubernetes.default`; a host firewall (firewalld, nftables) dropping pod traffic",
        refutes: "pods reach the API server's service address and resolve names",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "registry-auth-failed",
        trigger: Trigger::Text(&[
            &["unable to retrieve auth token"],
            &["invalid username/password"],
            &["incorrect username or password"],
        ]),
        meaning: "the registry refused the credentials sent with the pull (stale or wrong login in the auth file)",
        class: Class::ImagePullFailure,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "the auth file (`${XDG_RUNTIME_DIR}/containers/auth.json`, `~/.docker/config.json`) holds an entry for the registry",
        refutes: "no credentials are stored for the registry",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "connection-reset",
        trigger: Trigger::Line(tcp_connection_reset),
        meaning: "the connection was accepted and dropped: for a published port, the forwarder reached no listener inside (the service binds its loopback only), or the service closed it",
        class: Class::EndpointUnreachable,
        confidence: Confidence::Suspected,
        abrupt_end: false,
        confirms: "`ss -tln` in the container's network namespace shows the service listening on 127.0.0.1 only",
        refutes: "it listens on 0.0.0.0 there: then the service itself dropped the connection",
        fits: &[Class::EndpointUnreachable, Class::DependencyNotReady],
        subject: None,
    },
    Signature {
        id: "systemd-no-dbus",
        trigger: Trigger::Text(&[&["failed to get d-bus connection: operation not permitted"]]),
        meaning: "systemd did not run in the container: its image's systemd does not support the host's cgroup hierarchy (an old systemd on cgroup v2), so nothing answers on D-Bus",
        class: Class::CgroupConfig,
        confidence: Confidence::Suspected,
        abrupt_end: false,
        confirms: "`stat -fc %T /sys/fs/cgroup` is cgroup2fs and the image's systemd predates cgroup v2 support (systemd < 230)",
        refutes: "the host is on cgroup v1, or the container's PID 1 is not systemd",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "webhook-unavailable",
        trigger: Trigger::Text(&[&["failed calling webhook"], &["failed to call webhook"]]),
        meaning: "the API server could not call an admission webhook: its service had no ready endpoint (not started yet, restarting, or not schedulable)",
        class: Class::DependencyNotReady,
        confidence: Confidence::Suspected,
        abrupt_end: false,
        confirms: "`kubectl get endpoints -n NS SERVICE` empty at that time, and the webhook pod's events",
        refutes: "the endpoints were ready: then the webhook's certificate or network path is wrong",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "docker-is-podman",
        trigger: Trigger::Text(&[&["emulate docker cli using podman"]]),
        meaning: "the `docker` command is podman's emulation: a tool that drives docker gets podman's behaviour and store",
        class: Class::ProviderMismatch,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "`docker --version` prints podman's version; `rpm -qf $(command -v docker)` is podman-docker",
        refutes: "`docker version` shows a Docker Engine server",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "kind-list-failed",
        trigger: Trigger::Text(&[
            &["failed to list clusters"],
            &["could not list clusters"],
            &["failed to list nodes"],
        ]),
        meaning: "kind (or a tool built on its library) could not list node containers with the docker CLI: the cluster runs under another engine, or docker itself is unusable",
        class: Class::ProviderMismatch,
        confidence: Confidence::Suspected,
        abrupt_end: false,
        confirms: "`docker ps` fails the same way while `podman ps` lists the nodes (or KIND_EXPERIMENTAL_PROVIDER=podman is unset)",
        refutes: "`docker ps` works for this user: then read the command's own error",
        fits: &[Class::ProviderMismatch, Class::EngineError],
        subject: None,
    },
    Signature {
        id: "short-name-unresolved",
        trigger: Trigger::Text(&[&["short-name resolution enforced"]]),
        meaning: "podman or buildah would not pick a registry for an unqualified image name without a terminal to ask on (short-name-mode enforcing)",
        class: Class::ImagePullFailure,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "the Containerfile or manifest names the image without a registry (`FROM alpine:3`)",
        refutes: "the name is fully qualified (`docker.io/library/alpine:3`): then registries.conf's aliases are at fault",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "crd-not-registered",
        trigger: Trigger::Text(&[
            &["no matches for kind"],
            &["ensure crds are installed first"],
        ]),
        meaning: "the API server does not know the custom resource's kind (yet): its CRD is not installed, or not Established when the resource was applied",
        class: Class::DependencyNotReady,
        confidence: Confidence::Suspected,
        abrupt_end: false,
        confirms: "`kubectl get crd NAME` shows the CRD appearing, or `kubectl wait --for=condition=established crd/NAME` passing, after the failure",
        refutes: "no installed CRD serves that group and version: then the manifest names a kind or version that does not exist",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "database-not-accepting",
        trigger: Trigger::Text(&[
            &["the database system is starting up"],
            &["the database system is shutting down"],
            &["the database system is in recovery mode"],
            &["not yet accepting connections"],
        ]),
        meaning: "PostgreSQL answered but does not accept connections (yet): it is starting, handing over from its init server, recovering or stopping",
        class: Class::DependencyNotReady,
        confidence: Confidence::Suspected,
        abrupt_end: false,
        confirms: "the database's own log shows it starting (init scripts, \"database system is ready to accept connections\" after the failure)",
        refutes: "the database was stopped on purpose or crashed: its log shows a shutdown request or a fatal error",
        fits: &[Class::DependencyNotReady, Class::AppCrash],
        subject: None,
    },
    Signature {
        id: "registry-unreachable",
        trigger: Trigger::Line(|line| {
            line.contains("error response from daemon: get http") && line.contains("/v2/")
        }),
        meaning: "the engine could not get an answer from the registry's API: the pull never reached an image",
        class: Class::ImagePullFailure,
        confidence: Confidence::Suspected,
        abrupt_end: false,
        confirms: "`curl -sI https://REGISTRY/v2/` from the engine's machine fails the same way, or `docker login REGISTRY` makes the pull work",
        refutes: "the same pull works from the engine's machine: then it was transient",
        fits: &[Class::ImagePullFailure, Class::DnsNetwork],
        subject: None,
    },
    Signature {
        id: "api-ping-404",
        trigger: Trigger::Text(&[&["ping response was 404"]]),
        meaning: "the engine's socket answered, but not the API path the client asked for: a client and service of different API versions, or a socket of another engine",
        class: Class::EngineVersionMismatch,
        confidence: Confidence::Suspected,
        abrupt_end: false,
        confirms: "`podman version` shows client and server versions that differ by a major version",
        refutes: "client and server are of the same version: then the socket belongs to another service",
        fits: &[Class::EngineVersionMismatch, Class::EngineError],
        subject: None,
    },
    Signature {
        id: "oom-killer-invoked",
        trigger: Trigger::Text(&[&["invoked oom-killer:"]]),
        meaning: "the kernel ran out of memory and invoked the OOM killer (the first line of its report; the victim is named further on)",
        class: Class::OomKill,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "the report's \"Killed process N (name)\" line names the victim; a memory cgroup in its call trace means a container's limit",
        refutes: "nothing: the kernel said so",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "memcg-oom-trace",
        trigger: Trigger::Text(&[&["mem_cgroup_oom"], &["memory cgroup out of memory"]]),
        meaning: "an OOM kill inside a memory cgroup: a container's (or a service's) own limit, not the machine's memory",
        class: Class::ContainerOomKilled,
        confidence: Confidence::Likely,
        abrupt_end: false,
        confirms: "the report's task_memcg is a container's or a pod's cgroup",
        refutes: "the cgroup is a host service's (system.slice/...service): then the limit is the machine's share",
        fits: &[],
        subject: None,
    },
    Signature {
        id: "pull-denied",
        trigger: Trigger::Text(&[&["pull access denied"], &["repository does not exist"]]),
        meaning: "the registry has no such image or refuses it: for an image built locally, it was not loaded into the nodes the pod runs on, so the kubelet tried a registry",
        class: Class::ImageMissing,
        confidence: Confidence::Suspected,
        abrupt_end: false,
        confirms: "`crictl images` on the pod's node lacks the image",
        refutes: "the image exists in the registry and the credentials are right: then it is an authorization failure",
        fits: &[Class::ImageMissing, Class::ImagePullFailure],
        subject: Some(quoted_after_pull),
    },
];

/// The first `"..."` after `name "`: `container name "/kind-control-plane"`
/// (docker adds the slash) or `cluster with the name "kind"`.
fn quoted_after_name(line: &str) -> Option<String> {
    let at = line.find("name \"")? + "name \"".len();
    let name = line[at..].split('"').next()?;
    Some(name.trim_start_matches('/').to_string()).filter(|n| !n.is_empty())
}

/// The first `"..."` of a line.
fn quoted(line: &str) -> Option<String> {
    let at = line.find('"')? + 1;
    let inside = line[at..].split('"').next()?;
    (!inside.is_empty()).then(|| inside.to_string())
}

/// The address dialled: `dial tcp 127.0.0.1:5000: connect: connection
/// refused` gives `127.0.0.1:5000`; `The connection to the server
/// localhost:8080 was refused` gives `localhost:8080`.
pub fn address(line: &str) -> Option<String> {
    let lower = line.to_lowercase();
    let after = [
        "dial tcp ",
        "dial tcp4 ",
        "dial tcp6 ",
        "to the server ",
        "connect to ",
        "connecting to ",
    ]
    .iter()
    .find_map(|m| lower.find(m).map(|at| at + m.len()))?;
    let word = line[after..].split_whitespace().next()?;
    let word = word.trim_end_matches([':', ',', ';', '.']);
    let word = word
        .strip_prefix("http://")
        .or_else(|| word.strip_prefix("https://"))
        .unwrap_or(word);
    (word.contains(':') && !word.is_empty()).then(|| word.trim_end_matches('/').to_string())
}

/// What follows the first `: ` (a panic's message).
fn after_colon(line: &str) -> Option<String> {
    let (_, rest) = line.split_once(": ")?;
    let rest = rest.trim();
    (!rest.is_empty()).then(|| rest.chars().take(160).collect())
}

/// The path a failed write names: `write /var/lib/containerd/x/data: no
/// space left on device` (Go's `*PathError`, as containerd and ctr print it).
fn written_path(line: &str) -> Option<String> {
    let at = line.to_lowercase().find(": no space left on device")?;
    let path = line[..at].split_whitespace().next_back()?;
    path.starts_with('/').then(|| path.to_string())
}

/// The port in `Bind for 0.0.0.0:6443 failed: port is already allocated` or
/// `listen tcp 0.0.0.0:80: bind: address already in use`: the last `:NNNN`.
fn port(line: &str) -> Option<String> {
    line.match_indices(':')
        .filter_map(|(at, _)| {
            let digits: String = line[at + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            (!digits.is_empty()).then_some(digits)
        })
        .next_back()
}

/// The image in kind's `image: "app:1" not present locally`, podman's
/// `Error: app:1: image not known`, docker's `No such image: app:1`.
fn image(line: &str) -> Option<String> {
    if let Some(at) = line.find('"') {
        return line[at + 1..].split('"').next().map(str::to_string);
    }
    let lower = line.to_lowercase();
    if let Some(at) = lower.find("no such image: ") {
        return line[at + "no such image: ".len()..]
            .split_whitespace()
            .next()
            .map(str::to_string);
    }
    let at = lower.find(": image not known")?;
    line[..at]
        .split_whitespace()
        .next_back()
        .map(str::to_string)
}

/// The image in `Failed to pull image "app:1": ...`.
fn quoted_after_pull(line: &str) -> Option<String> {
    let at = line.to_lowercase().find("pull image \"")? + "pull image \"".len();
    line[at..].split('"').next().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signature a line matches, with what it names.
    fn hit(line: &str) -> (&'static str, Option<String>) {
        let lower = line.to_lowercase();
        let signature = SIGNATURES
            .iter()
            .find(|s| s.matches_text(&lower))
            .unwrap_or_else(|| panic!("no signature matches {line:?}"));
        (signature.id, signature.subject.and_then(|f| f(line)))
    }

    #[test]
    fn a_nodes_start_up_notices_are_no_failure() {
        // Printed by every node's containerd before its CNI config exists
        // (seen in tests/faultlab.rs, read from a node's log after a failed
        // import); and ctr's reset on containerd's socket when it died.
        for line in [
            r#"time="2026-12-02T18:52:30Z" level=error msg="failed to load cni during init, please check CRI plugin status before setting up network for pods" error="cni config load failed: no network config found in /etc/cni/net.d: cni plugin not initialized: failed to load cni config""#,
            r#"error="error reading from server: read unix @->/run/containerd/containerd.sock: read: connection reset by peer""#,
        ] {
            let lower = line.to_lowercase();
            let ids: Vec<&str> = SIGNATURES
                .iter()
                .filter(|s| s.matches_text(&lower))
                .map(|s| s.id)
                .collect();
            assert!(
                !ids.contains(&"cluster-network-down") && !ids.contains(&"connection-reset"),
                "{ids:?}"
            );
            // The reset is containerd going away, as its EOF is.
            if line.contains("containerd.sock") {
                assert!(ids.contains(&"server-eof"), "{ids:?}");
            }
        }
    }

    #[test]
    fn ids_are_unique_and_exit_signatures_are_found_by_status() {
        for (i, s) in SIGNATURES.iter().enumerate() {
            assert!(SIGNATURES[i + 1..].iter().all(|t| t.id != s.id), "{}", s.id);
        }
        assert_eq!(for_exit(137).unwrap().id, "exit-137");
        assert_eq!(for_exit(143).unwrap().class, Class::Terminated);
        assert_eq!(for_exit(139).unwrap().class, Class::Crash);
        assert_eq!(for_exit(125).unwrap().class, Class::EngineError);
        assert_eq!(for_exit(126).unwrap().class, Class::CommandNotRunnable);
        assert_eq!(for_exit(127).unwrap().class, Class::CommandNotRunnable);
        assert!(for_exit(1).is_none());
    }

    /// Texts whose cause is not the plain reading (issue #15): each reads
    /// as its own signature, not as the generic one it also contains.
    #[test]
    fn prose_failures_have_signatures_of_their_own() {
        let cases = [
            (
                r#""Failed to start ContainerManager" err="failed to get rootfs info""#,
                "node-kubernetes-start-failed",
            ),
            ("This error is likely caused by:", "kubeadm-wait-failed"),
            (
                r#"[INFO] plugin/ready: Still waiting on: "kubernetes""#,
                "cluster-network-down",
            ),
            (
                "message:Network plugin returns error: cni plugin not initialized",
                "cluster-network-down",
            ),
            (
                "unable to retrieve auth token: invalid username/password",
                "registry-auth-failed",
            ),
            (
                "curl: (56) Recv failure: Connection reset by peer",
                "connection-reset",
            ),
            (
                "Failed to get D-Bus connection: Operation not permitted",
                "systemd-no-dbus",
            ),
            (
                r#"Internal error occurred: failed calling webhook "x.kb.io": context deadline exceeded"#,
                "webhook-unavailable",
            ),
            (
                "Emulate Docker CLI using podman. Create /etc/containers/nodocker to quiet msg.",
                "docker-is-podman",
            ),
            (
                "ERROR: failed to list clusters: command \"docker ps\" failed with error: exit status 1",
                "kind-list-failed",
            ),
            (
                "ERROR: unknown containerd config version: 4 (supported versions: 2 and 3)",
                "kind-node-incompatible",
            ),
            (
                r#"Error: unmarshalling into &define.InspectContainerData{ID:"22"}"#,
                "api-answer-undecodable",
            ),
            (
                r#"E0623 runtime.go:78] Observed a panic: "invalid memory address""#,
                "app-panic",
            ),
            (
                "Liveness probe failed: cat: can't open '/tmp/healthy'",
                "probe-failed",
            ),
            (r#"Error: unknown cluster "kind""#, "no-nodes-found"),
        ];
        for (line, id) in cases {
            assert!(
                by_id(id).unwrap().matches_text(&line.to_lowercase()),
                "{id}: {line}"
            );
        }
        // kubeadm's fixed hint names cgroups after every failed wait.
        let hint = "- The kubelet is unhealthy due to a misconfiguration of the node in some way (required cgroups disabled)";
        assert!(
            !by_id("cgroup-setup")
                .unwrap()
                .matches_text(&hint.to_lowercase())
        );
    }

    #[test]
    fn containerd_connection_loss() {
        // The seed's line, and FIELD-NOTES' reproduction of it.
        let seed = r#"Command Output: time="2025-12-15T23:08:22Z" level=error msg="progress stream failed to recv" error="error reading from server: EOF""#;
        assert_eq!(hit(seed).0, "progress-stream-recv");
        assert!(
            by_id("server-eof")
                .unwrap()
                .matches_text(&seed.to_lowercase())
        );
        assert_eq!(
            hit("ctr: failed to send write: transport is closing: unavailable").0,
            "transport-closing"
        );
    }

    #[test]
    fn engine_and_runtime_failures() {
        assert_eq!(
            hit("Error: server probably quit: unexpected EOF").0,
            "server-quit"
        );
        assert_eq!(
            hit("Error: OCI runtime error: crun: unknown version specified").0,
            "unknown-version"
        );
        assert_eq!(
            hit(
                "ctr: failed to send write: write /var/lib/containerd/io.containerd.content.v1.content/ingest/x/data: no space left on device: unknown"
            ),
            (
                "no-space",
                Some("/var/lib/containerd/io.containerd.content.v1.content/ingest/x/data".into())
            )
        );
        assert_eq!(
            hit("write failed: no space left on device"),
            ("no-space", None)
        );
        assert_eq!(
            hit("runtime: failed to create new OS thread (have 12 already; errno=12): cannot allocate memory").0,
            "cannot-allocate-memory"
        );
        assert_eq!(
            hit("failed to create fsnotify watcher: too many open files").0,
            "too-many-open-files"
        );
    }

    #[test]
    fn name_conflicts_name_the_container_or_cluster() {
        assert_eq!(
            hit(
                r#"docker: Error response from daemon: Conflict. The container name "/e2e-control-plane" is already in use by container "3f2a". You have to remove (or rename) that container to be able to reuse that name."#
            ),
            ("name-in-use", Some("e2e-control-plane".into()))
        );
        assert_eq!(
            hit(
                r#"Error: creating container storage: the container name "e2e-worker" is already in use by 6e1d. You have to remove that container to be able to reuse that name: that name is already in use"#
            ),
            ("name-in-use", Some("e2e-worker".into()))
        );
        assert_eq!(
            hit(
                r#"ERROR: failed to create cluster: node(s) already exist for a cluster with the name "e2e""#
            ),
            ("cluster-exists", Some("e2e".into()))
        );
    }

    #[test]
    fn port_conflicts_name_the_port() {
        assert_eq!(
            hit(
                "docker: Error response from daemon: driver failed programming external connectivity on endpoint e2e-control-plane: Bind for 0.0.0.0:6443 failed: port is already allocated."
            ),
            ("port-in-use", Some("6443".into()))
        );
        assert_eq!(
            hit("Error: rootlessport listen tcp 0.0.0.0:8080: bind: address already in use"),
            ("port-in-use", Some("8080".into()))
        );
        assert_eq!(
            hit(r#"Error: something went wrong with the request: "proxy already running\n""#),
            ("port-in-use", None)
        );
    }

    #[test]
    fn missing_and_unpullable_images_name_the_image() {
        assert_eq!(
            hit(r#"ERROR: image: "localhost/app:dev" not present locally"#),
            ("kind-not-present", Some("localhost/app:dev".into()))
        );
        assert_eq!(
            hit("Error: localhost/app:dev: image not known"),
            ("image-missing", Some("localhost/app:dev".into()))
        );
        assert_eq!(
            hit("Error response from daemon: No such image: app:dev"),
            ("image-missing", Some("app:dev".into()))
        );
        assert_eq!(
            hit(
                r#"  Warning  Failed     3s    kubelet  Failed to pull image "app:latest": rpc error: code = NotFound"#
            ),
            ("image-pull", Some("app:latest".into()))
        );
        assert_eq!(
            hit("app-7d9c-x2x   0/1     ImagePullBackOff   0          2m").0,
            "image-pull"
        );
    }

    #[test]
    fn waits_boots_builds_archives_and_tests() {
        assert_eq!(
            hit("Error: failed to wait: context deadline exceeded").0,
            "deadline-exceeded"
        );
        assert_eq!(
            hit("error: timed out waiting for the condition on deployments/app").0,
            "deadline-exceeded"
        );
        assert_eq!(
            hit(r#"ERROR: failed to create cluster: could not find a log line that matches "Reached target .*Multi-User System.*|detected cgroup v1""#).0,
            "kind-log-line"
        );
        assert_eq!(
            hit(r#"Error: building at STEP "RUN make": while running runtime: exit status 2"#).0,
            "build-failed"
        );
        assert_eq!(
            hit(r#"ERROR: failed to solve: process "/bin/sh -c make" did not complete successfully: exit code: 2"#).0,
            "build-failed"
        );
        assert_eq!(
            hit("ctr: archive/tar: invalid tar header").0,
            "corrupt-archive"
        );
        // loadmaster's own archive reader, which hashes every entry.
        assert_eq!(
            hit(r#"layer 0 of image app:1 ("5a1b/layer.tar") has the diff ID sha256:aa, but the image config lists sha256:bb: the layer does not belong to this image"#).0,
            "digest-mismatch"
        );
        assert_eq!(hit("--- FAIL: TestLoad (3.20s)").0, "test-failed");
        assert_eq!(
            hit("[FAIL] AIAnalysis E2E [It] analyzes an incident").0,
            "test-failed"
        );
    }

    #[test]
    fn ordinary_lines_match_nothing() {
        for line in [
            "Creating cluster \"kind\" ...",
            "Image: \"app:1\" with ID \"sha256:ab\" not yet present on node \"kind-control-plane\", loading...",
            "--- PASS: TestLoad (1.00s)",
            "address 10.0.0.1 assigned",
        ] {
            let lower = line.to_lowercase();
            assert!(SIGNATURES.iter().all(|s| !s.matches_text(&lower)), "{line}");
        }
    }
}
