//! The VM tier: engines inside a real VM (qemu under TCG, Debian's kernel,
//! cgroup v2, 2 GiB of memory and a disk of its own, as a podman machine
//! is), reached only through the engine's forwarded API socket, with the
//! test nodes running inside it. What must hold there: the engine's figures
//! are the VM's, a load and a reload after a change reach the nodes, and the
//! seed's failure (a node's import killed for lack of memory) is diagnosed
//! from the client's side with the VM's own evidence: its kernel log, read
//! through the engine's API, and the node's cgroup counters.
//!
//! TCG is slow and the machine's cores are shared, so the cases are few and
//! small and run one after another in one process (its own `main`,
//! `harness = false`), with one VM per engine booted once. Every engine
//! command and loadmaster itself are pointed at the VM through
//! `CONTAINER_HOST` / `DOCKER_HOST` ([`TestVm::endpoint`]).
//!
//! `cargo test --test vm [FILTER]` runs the cases whose name holds FILTER.

mod support;

use loadmaster::deliver::push::stable_port;
use loadmaster::engine::EngineKind;
use serde_json::Value;
use std::process::Output;
use support::vm::{self, TestVm};
use support::{
    Layer, NODE_IMAGE, NodeOptions, TestCluster, TestImage, config_on_node, connection_bytes,
    engines_under_test, load, load_ok, loadmaster_command, only_image, unique_name,
};

const MIB: u64 = 1 << 20;
/// podman machine's default memory.
const VM_MIB: u64 = 2048;

/// One case of the tier: its name and the test, run against a booted VM.
type Case = (&'static str, fn(&TestVm));

fn main() {
    let filter = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .unwrap_or_default();
    // As the other tests' `ignore`: without engines named (or CI) the tier
    // is skipped, and says so.
    if !cfg!(engine_tests) {
        eprintln!("note: skipping the VM tests: they need LOADMASTER_TEST_ENGINES");
        return;
    }
    let engines = engines_under_test();
    if engines.is_empty() {
        return;
    }
    // Opt-in: a TCG VM is slow (a minute to boot and copy the node image
    // in); `.ci/run` asks for it (tests/vm/ci). Skipped, and said so,
    // unless asked for.
    if !vm::required() {
        eprintln!("note: skipping the VM tests: set LOADMASTER_TEST_VM=1 (needs tests/vm/prepare)");
        return;
    }
    if let Some(why) = vm::missing() {
        if vm::required() {
            eprintln!("error: LOADMASTER_TEST_VM=1 but the VM tier cannot run: {why}");
            std::process::exit(1);
        }
        eprintln!("note: skipping the VM tests: {why}");
        return;
    }
    let mut failed = Vec::new();
    let mut ran = 0;
    for kind in engines {
        // One VM for each group of cases, booted only when a case of it is
        // chosen, and shut down before the next one boots.
        let groups: [(u64, &[Case]); 1] = [(
            VM_MIB,
            &[
                (
                    "engine_and_doctor_report_the_vms_figures",
                    engine_and_doctor_report_the_vms_figures,
                ),
                (
                    "load_and_reload_after_a_change_reach_a_node_in_the_vm",
                    load_and_reload_after_a_change_reach_a_node_in_the_vm,
                ),
                // Last: it leaves OOM kills in the VM's kernel log.
                (
                    "an_import_killed_for_lack_of_memory_in_the_vm_is_diagnosed_from_its_kernel_log",
                    an_import_killed_for_lack_of_memory_in_the_vm_is_diagnosed_from_its_kernel_log,
                ),
            ],
        )];
        for (memory_mib, cases) in groups {
            let chosen: Vec<_> = cases
                .iter()
                .filter(|(name, _)| format!("{kind}::{name}").contains(&filter))
                .collect();
            if chosen.is_empty() {
                continue;
            }
            let name = unique_name(&format!("lmt-{kind}"));
            let reachable = [stable_port(&reachable_cluster(&name))];
            let vm = TestVm::boot(kind, &name, memory_mib, &reachable);
            vm.copy_image_in(NODE_IMAGE);
            for (name, case) in chosen {
                ran += 1;
                let full = format!("vm::{kind}::{name}");
                eprintln!("test {full} ...");
                let started = std::time::Instant::now();
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(&vm)));
                let took = started.elapsed().as_secs();
                match result {
                    Ok(()) => eprintln!("test {full} ... ok ({took} s)"),
                    Err(_) => {
                        eprintln!("test {full} ... FAILED ({took} s)");
                        failed.push(full);
                    }
                }
            }
        }
    }
    eprintln!(
        "vm: {} passed, {} failed{}",
        ran - failed.len(),
        failed.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(": {}", failed.join(", "))
        }
    );
    if !failed.is_empty() {
        std::process::exit(1);
    }
}

/// `loadmaster ARGS...` pointed at the VM's engine.
fn loadmaster_at(vm: &TestVm, args: &[&str]) -> Output {
    let mut command = loadmaster_command(args);
    vm.endpoint().apply(&mut command);
    command.output().expect("run loadmaster")
}

fn json(output: &Output, what: &str) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: no JSON on stdout ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// MemTotal of the VM's kernel in bytes, read in a container on it.
fn vm_mem_total(cluster: &TestCluster) -> u64 {
    let meminfo = cluster.exec(cluster.control_plane(), &["cat", "/proc/meminfo"]);
    meminfo_kib(&meminfo, "MemTotal") * 1024
}

fn meminfo_kib(meminfo: &str, field: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/meminfo: {meminfo}"))
}

fn engine_and_doctor_report_the_vms_figures(vm: &TestVm) {
    let kind = vm.kind;
    let cluster = TestCluster::start_at(kind, &vm.endpoint(), 0, &NodeOptions::default());
    let vm_total = vm_mem_total(&cluster);
    assert!(
        vm_total <= VM_MIB * MIB && vm_total > VM_MIB * MIB * 3 / 4,
        "{kind}: the VM's kernel has {vm_total} bytes"
    );

    let output = loadmaster_at(vm, &["--engine", kind.name(), "engine", "--output", "json"]);
    assert!(output.status.success(), "{kind}: {output:?}");
    let engine = json(&output, "loadmaster engine");
    assert_eq!(engine["memory_bytes"], vm_total, "{kind}: {engine:#}");
    assert_eq!(engine["cpus"], 1, "{kind}: {engine:#}");
    assert_eq!(engine["cgroup_version"], 2, "{kind}: {engine:#}");
    assert_ne!(engine["location"], "local", "{kind}: {engine:#}");
    // The node image links only some of busybox's applets; its sh runs them all.
    let kernel = cluster.exec(cluster.control_plane(), &["sh", "-c", "uname -r"]);
    assert_eq!(engine["kernel"], kernel.trim(), "{kind}: the VM's kernel");

    let output = loadmaster_at(vm, &["--engine", kind.name(), "doctor", "--output", "json"]);
    let doctor = json(&output, "loadmaster doctor");
    let findings = doctor["findings"].as_array().expect("findings");
    let memory = findings
        .iter()
        .find(|f| f["id"] == "memory")
        .unwrap_or_else(|| panic!("{kind}: a memory finding: {doctor:#}"));
    let measured = memory["measured_bytes"].as_u64().unwrap();
    assert!(
        measured <= vm_total,
        "{kind}: doctor measured {measured} bytes, more than the VM's {vm_total}: {memory:#}"
    );
    let engine_finding = findings.iter().find(|f| f["id"] == "engine").unwrap();
    assert!(
        engine_finding["measured"]
            .as_str()
            .unwrap()
            .contains("1 CPUs"),
        "{kind}: {engine_finding:#}"
    );
}

/// The cluster whose push endpoint the VM named `vm` can reach: qemu
/// forwards that one port of this machine's loopback (`guestfwd`), as a
/// podman machine reaches any of the host's as `host.containers.internal`.
fn reachable_cluster(vm: &str) -> String {
    format!("{vm}-reach")
}

/// A load and a reload after a 1 MiB change reach a node in the VM, from a
/// VM that reaches this machine only as `host.containers.internal` /
/// `host.docker.internal`: the reach is probed, never assumed. podman
/// (which pushes plain HTTP there with `--tls-verify=false`) takes the push
/// path through that name, and only the changed layer crosses the VM's
/// link, each way; docker (which speaks HTTPS to any registry but loopback
/// unless configured otherwise) takes save, the reason naming what was
/// tried, and only the changed layer goes to the node. Either way the load
/// works and the tag names the new image.
fn load_and_reload_after_a_change_reach_a_node_in_the_vm(vm: &TestVm) {
    let kind = vm.kind;
    let cluster = TestCluster::start_named_at(
        kind,
        &vm.endpoint(),
        &reachable_cluster(&vm.name),
        0,
        &NodeOptions::default(),
    );
    let image = TestImage::named_at(kind, &vm.endpoint());
    let base = Layer {
        bytes: 8 * MIB,
        seed: 61,
    };
    image.build(&[
        base,
        Layer {
            bytes: MIB,
            seed: 62,
        },
    ]);
    let reference = format!("docker.io/library/{}", image.name);
    let cold = load_ok(&cluster, &[&image.name, "--path", "push"]);
    let entry = only_image(&cold);
    let reason = entry["reason"].as_str().unwrap_or_default();
    let expected_path = match kind {
        EngineKind::Podman => "push",
        EngineKind::Docker => {
            assert!(
                reason.contains("host.docker.internal") && reason.contains("took save"),
                "{kind}: the reason names what was tried: {reason}"
            );
            "save"
        }
    };
    assert_eq!(entry["path"], expected_path, "{kind}: {entry}");
    assert_eq!(cold["nodes"][0]["result"], "loaded", "{kind}: {cold:#}");
    assert_eq!(
        config_on_node(&cluster, cluster.control_plane(), &reference),
        image.id(),
        "{kind}"
    );

    image.build(&[
        base,
        Layer {
            bytes: MIB,
            seed: 63,
        },
    ]);
    let changed = load_ok(&cluster, &[&image.name]);
    let entry = only_image(&changed);
    assert_eq!(entry["path"], expected_path, "{kind}: {changed}");
    let node = &changed["nodes"][0];
    assert_eq!(node["result"], "loaded", "{kind}: {changed:#}");
    let sent = node["bytes_sent"].as_u64().unwrap();
    assert!(
        sent < 2 * MIB,
        "{kind}: after a 1 MiB change {sent} bytes went to the node: {changed:#}"
    );
    if kind == EngineKind::Podman {
        // Compressing incompressible data adds a little; tar framing too.
        let overhead = 256 << 10;
        for field in ["from_engine", "to_nodes"] {
            let moved = connection_bytes(entry, field);
            assert!(
                (MIB..MIB + overhead).contains(&moved),
                "{kind}: after a 1 MiB change, {field} {moved}: {entry}"
            );
        }
    }
    assert_eq!(
        config_on_node(&cluster, cluster.control_plane(), &reference),
        image.id(),
        "{kind}: the tag names the new image"
    );
}

/// The seed's failure, for real, in the VM: a node's import killed for
/// lack of memory, the engine saying only "exit 137" (or, when the
/// kernel took the node's containerd, that the import lost it), diagnosed from the
/// client's side with the VM's own evidence: its kernel log, which `load`
/// reads through the engine's API alone (a helper container with
/// `CAP_SYSLOG` running `dmesg`), and the node's cgroup v2 counters, read
/// inside the node. The node has no headroom (the fault lab's recipe: a
/// 192 MiB limit with 165 MiB pinned in it): the VM's memory as a whole
/// running out does not get an import killed, the guest's kernel thrashes
/// instead (two tries, docs/field-notes.md). Such a node's import can
/// also crawl rather than die; then it is stopped at the deadline and the
/// diagnosis says memory-starved, from the same evidence.
fn an_import_killed_for_lack_of_memory_in_the_vm_is_diagnosed_from_its_kernel_log(vm: &TestVm) {
    let kind = vm.kind;
    // Supervised, as kind's systemd restarts containerd: the node, and its
    // cgroup, outlive a killed containerd.
    let options = NodeOptions {
        memory: Some("192m".into()),
        pinned_mib: Some(165),
        supervised: true,
        ..NodeOptions::default()
    };
    let cluster = TestCluster::start_at(kind, &vm.endpoint(), 0, &options);
    let image = TestImage::named_at(kind, &vm.endpoint());
    image.build(&[Layer {
        bytes: 64 * MIB,
        seed: 137,
    }]);
    let (output, report) = load(&cluster, &["--stall-timeout", "180", &image.name]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{kind}: {stderr}");
    let node = &report["nodes"][0];
    assert_eq!(node["result"], "failed", "{kind}: {report:#}");
    let d = &node["diagnosis"];
    let evidence = d["evidence"].as_array().expect("evidence");
    let of_kind = |fact: &str| -> Vec<&Value> {
        evidence
            .iter()
            .filter(|e| e["fact"]["kind"] == fact)
            .collect()
    };
    // The VM's kernel log was read, through the engine: the client's own
    // kernel is not the VM's.
    let through_the_engine = |command: &str| {
        command.starts_with(kind.name())
            && command.contains("--cap-add SYSLOG")
            && command.ends_with("dmesg")
    };
    let read = of_kind("kernel-log-read");
    assert_eq!(read.len(), 1, "{kind}: the kernel log is read once: {d:#}");
    let command = read[0]["source"]["command"].as_str().unwrap();
    assert!(
        through_the_engine(command),
        "{kind}: the kernel log was read with {command:?}"
    );
    let root = (
        d["root_cause"]["class"].as_str().unwrap_or("none"),
        d["root_cause"]["confidence"].as_str().unwrap_or("none"),
    );
    let statement = d["root_cause"]["statement"].as_str().unwrap_or_default();
    if root == ("memory-starved", "likely") {
        assert!(
            statement.contains("starved of memory"),
            "{kind}: {statement}"
        );
        eprintln!("{kind}: the import crawled at the node's limit instead: {statement}");
        return;
    }
    assert_eq!(root, ("oom-kill", "proven"), "{kind}: {d:#}");
    let kills = of_kind("oom-kill");
    assert!(
        !kills.is_empty(),
        "{kind}: the VM's kernel logged the kill: {d:#}"
    );
    for kill in &kills {
        assert_eq!(kill["fact"]["scope"], "cgroup", "{kind}: {kill}");
        assert_eq!(kill["fact"]["limit_kib"], 192 * 1024, "{kind}: {kill}");
        let process = kill["fact"]["process"].as_str().unwrap();
        assert!(
            process == "ctr" || process == "containerd",
            "{kind}: the kernel killed {process}: {kill}"
        );
        let command = kill["source"]["command"].as_str().unwrap();
        assert!(
            through_the_engine(command),
            "{kind}: the kill was read with {command:?}"
        );
    }
    // What the engine itself says: the import's exit 137 when the kernel
    // took ctr, the node's when it took containerd as the node's main
    // process; a supervised node's containerd, restarted, leaves the import
    // with a lost or refused connection instead.
    if kills.iter().any(|kill| kill["fact"]["process"] == "ctr") {
        assert_eq!(
            node["failure"]["command"]["exit"]["code"], 137,
            "{kind}: {node:#}"
        );
    }
    let node_state = &node["failure"]["node_state"];
    if !node_state.is_null() {
        assert_eq!(node_state["exitCode"], 137, "{kind}: {node:#}");
    }
    // A node that outlived the kill has its counters read inside it:
    // memory.events counts the kill.
    if node_state.is_null() {
        let memory = of_kind("memory");
        assert_eq!(memory.len(), 1, "{kind}: the node's cgroup is read: {d:#}");
        assert!(
            memory[0]["fact"]["oom_kill"].as_u64().unwrap() >= 1,
            "{kind}: {}",
            memory[0]
        );
    }
    eprintln!("{kind}: {statement}");
}
