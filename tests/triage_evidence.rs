//! Live-style evidence feeding the triage rules: cgroup v1 and v2 counter
//! directories (written as the kernel lays them out), a kernel log, and
//! `container inspect` states, added to the seed's log case. Checks that the
//! confidence follows the evidence, and the fix's number the measurements.

use loadmaster::engine::{EngineInfo, EngineKind, Location};
use loadmaster::triage::evidence::ContainerFacts;
use loadmaster::triage::{self, Class, Confidence, Evidence, Fact, Source, cgroup};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A directory of its own for each call (tests run in parallel, and two may
/// ask for the same name), removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "loadmaster-triage-{}-{unique}-{name}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn with(self, files: &[(&str, &str)]) -> TempDir {
        for (name, content) in files {
            fs::write(self.0.join(name), content).unwrap();
        }
        self
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const SEED: &str = include_str!("fixtures/seed-import-137.log");

fn seed_case() -> triage::Case {
    triage::log::scan(SEED, "seed-import-137.log")
}

/// A node cgroup on cgroup v1 after FIELD-NOTES' reproduction: 192 MiB
/// limit, hit, one OOM kill.
fn v1_after_oom() -> TempDir {
    TempDir::new("v1-oom").with(&[
        ("memory.limit_in_bytes", "201326592\n"),
        ("memory.usage_in_bytes", "200704000\n"),
        ("memory.max_usage_in_bytes", "201326592\n"),
        ("memory.failcnt", "2213\n"),
        (
            "memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        ),
    ])
}

#[test]
fn reads_cgroup_v1_counters() {
    let dir = v1_after_oom();
    let c = loadmaster::host::cgroup::read(dir.path()).unwrap();
    assert_eq!(c.version, 1);
    assert_eq!(c.limit_bytes, Some(192 << 20));
    assert_eq!(c.usage_bytes, Some(200704000));
    assert_eq!(c.peak_bytes, Some(192 << 20));
    assert_eq!(c.failcnt, Some(2213));
    assert_eq!(c.oom_kill, Some(1));
    assert_eq!(c.under_oom, Some(false));
    assert_eq!(c.oom_events, None);
    assert!(c.hit_limit());
}

#[test]
fn reads_cgroup_v2_counters() {
    let dir = TempDir::new("v2").with(&[
        ("memory.max", "2147483648\n"),
        ("memory.current", "1610612736\n"),
        ("memory.peak", "2147479552\n"),
        (
            "memory.events",
            "low 0\nhigh 0\nmax 87\noom 2\noom_kill 1\noom_group_kill 0\n",
        ),
    ]);
    let c = loadmaster::host::cgroup::read(dir.path()).unwrap();
    assert_eq!(c.version, 2);
    assert_eq!(c.limit_bytes, Some(2 << 30));
    assert_eq!(c.usage_bytes, Some(1610612736));
    assert_eq!(c.peak_bytes, Some(2147479552));
    assert_eq!(c.failcnt, Some(87));
    assert_eq!(c.oom_events, Some(2));
    assert_eq!(c.oom_kill, Some(1));
    assert_eq!(c.under_oom, None);
}

#[test]
fn a_directory_without_memory_files_is_an_error_naming_it() {
    let dir = TempDir::new("empty");
    let error = loadmaster::host::cgroup::read(dir.path())
        .unwrap_err()
        .to_string();
    assert!(error.contains(&dir.path().display().to_string()), "{error}");
    assert!(error.contains("not a memory cgroup"), "{error}");
}

#[test]
fn oom_kill_counter_proves_the_seed_failure_and_sizes_the_fix() {
    let dir = v1_after_oom();
    let mut case = seed_case();
    case.evidence.push(cgroup::evidence(dir.path()).unwrap());
    // The VM's memory, as `podman info` reports it: far above the node's limit.
    case.evidence.push(Evidence::new(
        Source::Command {
            command: "podman info".into(),
        },
        Fact::EngineMemory {
            engine: EngineKind::Podman,
            memory_bytes: 4 << 30,
            in_vm: true,
        },
    ));
    let d = triage::diagnose(&case);
    let root = d.root_cause.as_ref().unwrap();
    assert_eq!(root.class, Class::OomKill);
    assert_eq!(root.confidence, Confidence::Proven);
    let first = &d.evidence[d.evidence_for[0].evidence];
    assert!(matches!(first.fact, Fact::Memory(_)));
    assert!(first.source.to_string().starts_with("cgroup /"));
    assert!(d.evidence_for[0].reading.contains("memory.oom_control"));
    // The node's own 192 MiB limit was hit, well below the VM's 4 GiB: raise
    // the node's limit to the measured peak + 25%, rounded up: 256 MiB.
    let runs: Vec<&str> = d
        .fix
        .iter()
        .flat_map(|s| &s.commands)
        .map(|c| c.run.as_str())
        .collect();
    assert_eq!(
        runs,
        vec!["podman update --memory 256m --memory-swap 256m aianalysis-e2e-control-plane"]
    );
    assert!(d.fix[0].what.contains("192.0 MiB"), "{}", d.fix[0].what);
}

#[test]
fn system_oom_in_a_vm_sizes_the_vm_from_its_measured_memory() {
    let mut case = seed_case();
    case.evidence.extend(triage::kernel::kernel_log_evidence(
        "[ 9120.44] Out of memory: Killed process 8812 (ctr) total-vm:2290164kB, anon-rss:1702312kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:3532kB oom_score_adj:0\n",
        "podman machine ssh -- sudo dmesg",
    ));
    // podman machine's default: 2048 MiB (FIELD-NOTES), as `podman info` gives it.
    case.evidence.push(Evidence::engine_memory(&EngineInfo {
        engine: EngineKind::Podman,
        version: "5.2.3".into(),
        memory_bytes: 2048 << 20,
        cpus: 2,
        storage_driver: "overlay".into(),
        storage_root: "/var/lib/containers/storage".into(),
        cgroup_version: 2,
        rootless: false,
        location: Location::VirtualMachine,
        kernel: "6.9.9-200.fc40.x86_64".into(),
        save_staging: Some("/var/tmp".into()),
        service_address: None,
    }));
    let d = triage::diagnose(&case);
    let root = d.root_cause.as_ref().unwrap();
    assert_eq!(
        (root.class, root.confidence),
        (Class::OomKill, Confidence::Proven)
    );
    // 2048 MiB ran out: at least 2048 + 25% = 2560 MiB.
    let runs: Vec<&str> = d.fix[0].commands.iter().map(|c| c.run.as_str()).collect();
    assert_eq!(
        runs,
        vec![
            "podman machine stop",
            "podman machine set --memory 2560",
            "podman machine start"
        ]
    );
    assert_eq!(
        d.evidence_for[0].evidence,
        d.evidence
            .iter()
            .position(|e| matches!(e.source, Source::KernelLog { line: 1, .. }))
            .unwrap()
    );
}

#[test]
fn zero_oom_kills_and_a_clean_kernel_log_refute_the_oom() {
    let dir = TempDir::new("v2-clean").with(&[
        ("memory.max", "max\n"),
        ("memory.current", "524288000\n"),
        ("memory.peak", "612368384\n"),
        ("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"),
    ]);
    let mut case = seed_case();
    case.evidence.push(cgroup::evidence(dir.path()).unwrap());
    case.evidence.extend(triage::kernel::kernel_log_evidence(
        "[ 1.0] Linux version 6.8.0\n",
        "dmesg",
    ));
    let d = triage::diagnose(&case);
    let root = d.root_cause.as_ref().unwrap();
    assert_eq!(root.class, Class::KilledUnknown);
    assert_eq!(root.suspected, None, "the OOM is refuted, not suspected");
    assert!(root.statement.contains("OOM refuted"), "{}", root.statement);
    assert_eq!(d.evidence_against.len(), 2);
    // What refutes it is not asked for again.
    assert!(d.to_collect.iter().all(|c| !c.what.contains("OOM")));
}

fn node_state(engine: EngineKind, exit_code: i64, oom_killed: bool) -> Evidence {
    Evidence::new(
        Source::Command {
            command: format!("{engine} container inspect aianalysis-e2e-control-plane"),
        },
        Fact::Container(ContainerFacts {
            engine,
            name: "aianalysis-e2e-control-plane".into(),
            status: "exited".into(),
            exit_code,
            oom_killed,
            restarts: 0,
            started_at: Some("2025-12-15T22:55:02Z".into()),
            finished_at: Some("2025-12-15T23:08:22Z".into()),
            memory_limit_bytes: None,
        }),
    )
}

#[test]
fn docker_oomkilled_true_proves_it_podman_false_does_not_refute_it() {
    let mut case = seed_case();
    case.evidence
        .push(node_state(EngineKind::Docker, 137, true));
    let root = triage::diagnose(&case).root_cause.unwrap();
    assert_eq!(
        (root.class, root.confidence),
        (Class::OomKill, Confidence::Proven)
    );

    // podman 4.3 on cgroup v1 says OOMKilled=false even for a kernel OOM
    // kill (FIELD-NOTES): weak evidence against, the OOM stays suspected.
    let mut case = seed_case();
    case.evidence
        .push(node_state(EngineKind::Podman, 137, false));
    let d = triage::diagnose(&case);
    let root = d.root_cause.as_ref().unwrap();
    assert_eq!(root.class, Class::KilledUnknown);
    assert_eq!(root.suspected, Some(Class::OomKill));
    assert!(d.evidence_against[0].reading.contains("weak"));
}

#[test]
fn memory_pressure_without_a_kill_on_record_is_likely() {
    let dir = TempDir::new("v1-pressure").with(&[
        ("memory.limit_in_bytes", "201326592\n"),
        ("memory.usage_in_bytes", "199229440\n"),
        ("memory.max_usage_in_bytes", "201326592\n"),
        ("memory.failcnt", "57\n"),
        // A 4.9 kernel: no oom_kill counter, so nothing for or against.
        ("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n"),
    ]);
    let mut case = seed_case();
    case.evidence.push(cgroup::evidence(dir.path()).unwrap());
    let root = triage::diagnose(&case).root_cause.unwrap();
    assert_eq!(
        (root.class, root.confidence),
        (Class::OomKill, Confidence::Likely)
    );
}

#[test]
fn measured_free_space_replaces_the_request_to_measure_it() {
    let log = "Command Output: Error response from daemon: write /tmp/images-tar1874021/images.tar: no space left on device\n";
    let mut case = triage::log::scan(log, "load.log");
    let before = triage::diagnose(&case);
    assert!(
        before
            .to_collect
            .iter()
            .any(|c| c.what.starts_with("Free space"))
    );

    case.evidence.push(Evidence::new(
        Source::Command {
            command: "df -B1 /tmp".into(),
        },
        Fact::Disk {
            path: "/tmp".into(),
            available_bytes: 0,
            size_bytes: 4 << 30,
        },
    ));
    // ENOSPC alone is likely (inotify returns it too); measured, proven.
    assert_eq!(
        before.root_cause.map(|r| r.confidence),
        Some(Confidence::Likely)
    );
    let after = triage::diagnose(&case);
    let root = after.root_cause.unwrap();
    assert_eq!(
        (root.class, root.confidence),
        (Class::DiskFull, Confidence::Proven)
    );
    assert!(after.to_collect.is_empty());
    assert!(
        after.fix[0]
            .what
            .contains("0 B free of 4.0 GiB at /tmp (`df -B1 /tmp`)"),
        "{}",
        after.fix[0].what
    );
}

#[test]
fn a_full_filesystem_makes_a_silent_failure_a_likely_full_disk() {
    // podman exec can lose a command's last stderr lines: only the exit is left.
    let log = "Error: `podman exec -i n1 ctr --namespace k8s.io images import -` failed (exit status 1):\n";
    let mut case = triage::log::scan(log, "load.log");
    let silent = triage::diagnose(&case);
    assert_eq!(silent.root_cause.unwrap().class, Class::Unknown);

    let disk = |available_bytes| {
        Evidence::new(
            Source::Command {
                command: "podman exec n1 df -P -k /var/lib/containerd".into(),
            },
            Fact::Disk {
                path: "/var/lib/containerd".into(),
                available_bytes,
                size_bytes: 32 << 20,
            },
        )
    };
    case.evidence.push(disk(16 << 20));
    let half_full = triage::diagnose(&case);
    assert_eq!(half_full.root_cause.unwrap().class, Class::Unknown);

    case.evidence.pop();
    case.evidence.push(disk(0));
    let full = triage::diagnose(&case).root_cause.unwrap();
    assert_eq!(full.class, Class::DiskFull);
    assert_eq!(full.confidence, Confidence::Likely);
    assert!(
        full.statement.contains("/var/lib/containerd"),
        "{}",
        full.statement
    );
}

/// A node import stopped at loadmaster's deadline, its node's cgroup at its
/// limit with no task killed: starved, not OOM-killed. With the limit far
/// from reached, the deadline stays the cause.
#[test]
fn an_import_that_crawled_at_its_memory_limit_is_starvation_not_a_timeout() {
    let deadline = || {
        Evidence::new(
            Source::Command {
                command: "podman exec -i n1 ctr images import -".into(),
            },
            Fact::Signature {
                id: "timeout-kill",
                subject: Some("loadmaster's deadline".into()),
            },
        )
    };
    let node_cgroup = |usage: &str, failcnt: &str| {
        TempDir::new("v1-starved").with(&[
            ("memory.limit_in_bytes", "201326592\n"),
            ("memory.usage_in_bytes", usage),
            ("memory.max_usage_in_bytes", usage),
            ("memory.failcnt", failcnt),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
            ),
        ])
    };
    let starved = node_cgroup("201060352\n", "48210\n");
    let mut case = triage::Case::default();
    case.evidence.push(deadline());
    case.evidence
        .push(cgroup::evidence(starved.path()).unwrap());
    let d = triage::diagnose(&case);
    let root = d.root_cause.as_ref().unwrap();
    assert_eq!(
        (root.class, root.confidence),
        (Class::MemoryStarved, Confidence::Likely)
    );
    assert!(
        root.statement.contains("limit hit 48210 times"),
        "{}",
        root.statement
    );
    assert!(!d.fix.is_empty(), "a starved node gets the memory fix");

    let roomy = node_cgroup("52428800\n", "0\n");
    let mut case = triage::Case::default();
    case.evidence.push(deadline());
    case.evidence.push(cgroup::evidence(roomy.path()).unwrap());
    let root = triage::diagnose(&case).root_cause.unwrap();
    assert_eq!(root.class, Class::Timeout);
}
