//! The engine layer and kind discovery against real docker and podman.

mod support;

use loadmaster::cluster::{self, ClusterError, NodeRole};
use loadmaster::engine::{Engine, EngineError, EngineKind, Location, Selection};
use serde_json::Value;
use support::{NodeOptions, TestCluster, engine_cmd, engines_under_test, loadmaster};

fn explicit(kind: EngineKind) -> Selection {
    Selection {
        engine: Engine::new(kind),
        reason: format!("--engine {kind}"),
        explicit: true,
        both_answer: false,
    }
}

fn meminfo_total_bytes() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn info_reports_this_machines_memory_and_cpus() {
    let cpus = std::thread::available_parallelism().unwrap().get() as u32;
    let memory = meminfo_total_bytes();
    for kind in engines_under_test() {
        let info = Engine::new(kind).info().unwrap();
        assert_eq!(info.engine, kind);
        assert_eq!(
            info.location,
            Location::Local,
            "{kind} runs on this machine"
        );
        assert_eq!(info.cpus, cpus, "{kind} CPUs");
        let difference = info.memory_bytes.abs_diff(memory);
        assert!(
            difference < memory / 100,
            "{kind} reports {} bytes of memory, /proc/meminfo {memory}",
            info.memory_bytes
        );
        assert!(!info.storage_driver.is_empty() && info.storage_root.starts_with('/'));
        assert!(matches!(info.cgroup_version, 1 | 2));
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn engine_command_prints_json_with_the_reason() {
    for kind in engines_under_test() {
        let output = loadmaster(&["--engine", kind.name(), "engine", "--output", "json"]);
        assert!(output.status.success(), "{output:?}");
        let report: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(report["engine"], kind.name());
        assert_eq!(report["reason"], format!("--engine {kind}"));
        assert!(report["memory_bytes"].as_u64().unwrap() > 0);
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn discovers_one_and_two_node_clusters_with_their_roles() {
    for kind in engines_under_test() {
        let single = TestCluster::start(kind, 0, &NodeOptions::default());
        let double = TestCluster::start(kind, 1, &NodeOptions::default());

        let clusters = cluster::list(&Engine::new(kind)).unwrap();
        let found = |name: &str| clusters.iter().find(|c| c.name == name).unwrap();

        let one = found(&single.name);
        assert_eq!(one.engine, kind);
        assert_eq!(one.nodes.len(), 1);
        assert_eq!(one.nodes[0].name, format!("{}-control-plane", single.name));
        assert_eq!(one.nodes[0].role, NodeRole::ControlPlane);
        assert!(one.nodes[0].running);

        let two = found(&double.name);
        let roles: Vec<_> = two
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.role.clone()))
            .collect();
        assert_eq!(
            roles,
            vec![
                (
                    format!("{}-control-plane", double.name),
                    NodeRole::ControlPlane
                ),
                (format!("{}-worker", double.name), NodeRole::Worker),
            ]
        );

        // The CLI shows the same, as JSON for scripts.
        let output = loadmaster(&["--engine", kind.name(), "clusters", "--output", "json"]);
        assert!(output.status.success(), "{output:?}");
        let report: Value = serde_json::from_slice(&output.stdout).unwrap();
        let listed = report["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == double.name.as_str())
            .expect("the 2-node cluster is listed");
        assert_eq!(listed["engine"], kind.name());
        assert_eq!(listed["nodes"][1]["role"], "worker");
        assert_eq!(listed["nodes"][1]["status"], "running");
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_cluster_on_the_other_engine_is_reported_as_a_mismatch() {
    let engines = engines_under_test();
    if engines.len() < 2 {
        eprintln!("note: the mismatch test needs both engines");
        return;
    }
    let on_podman = TestCluster::start(EngineKind::Podman, 0, &NodeOptions::default());

    // Named engine: an error that says where the cluster is and what to do.
    let error = cluster::find(&explicit(EngineKind::Docker), Some(&on_podman.name)).unwrap_err();
    assert!(
        matches!(
            &error,
            ClusterError::OnOtherEngine {
                found_on: EngineKind::Podman,
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("--engine podman"), "{message}");
    assert!(
        message.contains("KIND_EXPERIMENTAL_PROVIDER=podman"),
        "{message}"
    );

    // Probed engine: loadmaster follows the cluster to its engine.
    let probed = Selection {
        explicit: false,
        ..explicit(EngineKind::Docker)
    };
    let (engine, found) = cluster::find(&probed, Some(&on_podman.name)).unwrap();
    assert_eq!(engine.kind(), EngineKind::Podman);
    assert_eq!(found.name, on_podman.name);

    // The CLI: the listing notes it, and naming the cluster fails with exit 1.
    let listing = loadmaster(&["--engine", "docker", "clusters", "--output", "json"]);
    let report: Value = serde_json::from_slice(&listing.stdout).unwrap();
    assert!(
        report["on_other_engine"]
            .as_array()
            .unwrap()
            .contains(&Value::from(on_podman.name.as_str())),
        "{report}"
    );
    let named = loadmaster(&["--engine", "docker", "clusters", &on_podman.name]);
    assert_eq!(named.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&named.stderr);
    assert!(stderr.contains("runs on podman"), "{stderr}");
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn an_unknown_cluster_is_a_clear_error() {
    for kind in engines_under_test() {
        let output = loadmaster(&["--engine", kind.name(), "clusters", "no-such-cluster-xyz"]);
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("no kind cluster \"no-such-cluster-xyz\""),
            "{stderr}"
        );
        assert!(
            stderr.contains("kind create cluster --name no-such-cluster-xyz"),
            "{stderr}"
        );
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_stopped_node_is_a_clear_error() {
    for kind in engines_under_test() {
        let test_cluster = TestCluster::start(kind, 1, &NodeOptions::default());
        let worker = test_cluster.nodes[1].clone();
        engine_cmd(kind, &["stop", "-t", "1", &worker]);

        let (_, found) = cluster::find(&explicit(kind), Some(&test_cluster.name)).unwrap();
        let error = found.running_nodes().unwrap_err();
        assert!(
            matches!(&error, ClusterError::NodeNotRunning { node, .. } if *node == worker),
            "{error:?}"
        );

        let output = loadmaster(&["--engine", kind.name(), "clusters", &test_cluster.name]);
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("{kind} start {worker}")),
            "{stderr}"
        );
    }
}

#[test]
fn a_missing_engine_is_a_clear_error_with_exit_code_3() {
    // An empty PATH: neither engine can be found.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_loadmaster"))
        .args(["--engine", "podman", "engine"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("podman is not installed"), "{stderr}");

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_loadmaster"))
        .args(["clusters"])
        .env("PATH", "/nonexistent")
        .env_remove("LOADMASTER_ENGINE")
        .env_remove("KIND_EXPERIMENTAL_PROVIDER")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no container engine answers"), "{stderr}");
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_stopped_docker_daemon_is_reported_as_not_running() {
    if !engines_under_test().contains(&EngineKind::Docker) {
        return;
    }
    // A docker CLI pointed at a socket nobody listens on: what users see
    // when the daemon or Docker Desktop is stopped.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_loadmaster"))
        .args(["--engine", "docker", "engine"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("docker is not running"), "{stderr}");
    assert!(stderr.contains("fix:"), "{stderr}");
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn container_inspect_reports_state_and_a_missing_container() {
    for kind in engines_under_test() {
        let test_cluster = TestCluster::start(
            kind,
            0,
            &NodeOptions {
                memory: Some("256m".into()),
                ..NodeOptions::default()
            },
        );
        let engine = Engine::new(kind);
        let details = engine
            .container_inspect(test_cluster.control_plane())
            .unwrap();
        assert_eq!(details.name, test_cluster.control_plane());
        assert!(details.state.running && details.state.pid > 0);
        assert!(details.state.started_at.is_some());
        assert_eq!(details.memory_limit, Some(256 << 20));

        let missing = engine
            .container_inspect("no-such-container-xyz")
            .unwrap_err();
        assert!(
            matches!(&missing, EngineError::ContainerNotFound { container, .. } if container == "no-such-container-xyz"),
            "{missing:?}"
        );
    }
}

/// Tracing's lines of loadmaster's stderr: those of a span.
fn trace_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains(" INFO ") || l.contains(" DEBUG "))
        .collect()
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn rust_log_and_v_trace_engine_commands_on_stderr_and_leave_stdout_json() {
    for kind in engines_under_test() {
        let args = ["--engine", kind.name(), "clusters", "--output", "json"];
        let debug = support::loadmaster_command(&args)
            .env("RUST_LOG", "loadmaster=debug")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&debug.stderr);
        assert!(debug.status.success(), "{kind}: {stderr}");
        let report: Value = serde_json::from_slice(&debug.stdout)
            .unwrap_or_else(|e| panic!("{kind}: stdout is not JSON ({e}): {stderr}"));
        assert_eq!(report["engine"], kind.name(), "{kind}: {report}");
        let ps = format!("command{{argv={kind} ps -a");
        let lines = trace_lines(&stderr);
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&ps) && l.contains("DEBUG") && l.contains("started")),
            "{kind}: {stderr}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&ps) && l.contains("finished exit=0 duration_ms=")),
            "{kind}: {stderr}"
        );
        // `-v` is info: each command's end, not its start.
        let info = support::loadmaster_command(&["-v"])
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&info.stderr);
        let lines = trace_lines(&stderr);
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&ps) && l.contains("finished exit=0")),
            "{kind}: {stderr}"
        );
        assert!(
            !lines.iter().any(|l| l.contains("DEBUG")),
            "{kind}: {stderr}"
        );
        serde_json::from_slice::<Value>(&info.stdout).unwrap();
        // Without either, nothing is traced.
        let quiet = support::loadmaster_command(&args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert!(trace_lines(&String::from_utf8_lossy(&quiet.stderr)).is_empty());
    }
}
