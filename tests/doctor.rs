//! `loadmaster doctor` against real docker and podman: the figures it reports
//! match the machine, and the problems a test creates (a bound port, a stale
//! node container, a tmpfs temp dir, low inotify limits from a fixture
//! `/proc`) are flagged with the right fix. Podman machine answers, which
//! cannot be produced here, are covered by contract tests on recorded JSON.

mod support;

use loadmaster::doctor::{self, KindConfig, Options, Report, Status, machine};
use loadmaster::engine::{Engine, EngineChoice, EngineKind};
use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use support::{NODE_IMAGE, TEST_LABEL, TestCluster, engine_cmd, engine_output, engines_under_test};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/doctor")
        .join(name)
}

fn choice(kind: EngineKind) -> EngineChoice {
    match kind {
        EngineKind::Docker => EngineChoice::Docker,
        EngineKind::Podman => EngineChoice::Podman,
    }
}

/// Options as the CLI builds them, with the engine named and nothing taken
/// from this process's environment.
fn options(kind: EngineKind, cluster: &str, config: KindConfig) -> Options {
    Options {
        cluster: cluster.to_string(),
        kind_config: config,
        existing_context: None,
        cluster_up: false,
        deploys: true,
        images: Vec::new(),
        builds: None,
        engine: Some(choice(kind)),
        loadmaster_engine: None,
        kind_provider: Some(kind.name().to_string()),
        temp_dir: PathBuf::from("/tmp"),
        proc_root: PathBuf::from("/proc"),
    }
}

fn run(options: &Options) -> Report {
    doctor::run(options).expect("doctor runs")
}

/// The loadmaster binary's `doctor` with `args` and extra environment.
fn doctor_cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_loadmaster"));
    command
        .arg("doctor")
        .args(args)
        .env("LOADMASTER_ROOT", support::TEST_RUNS)
        .env_remove("LOADMASTER_ENGINE")
        .env_remove("KIND_EXPERIMENTAL_PROVIDER")
        .env_remove("LOADMASTER_PROC_ROOT")
        .env_remove("TMPDIR")
        .stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run loadmaster doctor")
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn finding<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no finding {id} in {report:#}"))
}

fn meminfo_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap()
}

fn filesystem_type(path: &str) -> String {
    let out = Command::new("stat")
        .args(["-f", "-c", "%T", path])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A file removed when dropped, also when the test panics.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A created (never started) container, removed when dropped.
struct StaleContainer {
    kind: EngineKind,
    name: String,
}

impl StaleContainer {
    fn create(kind: EngineKind, name: &str) -> StaleContainer {
        let guard = StaleContainer {
            kind,
            name: name.to_string(),
        };
        engine_cmd(
            kind,
            &[
                "create",
                "--name",
                name,
                "--label",
                TEST_LABEL,
                "--network",
                "none",
                NODE_IMAGE,
            ],
        );
        guard
    }
}

impl Drop for StaleContainer {
    fn drop(&mut self) {
        let _ = engine_output(self.kind, &["rm", "-f", "-v", &self.name]);
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn detects_both_engines_and_which_one_kind_will_use() {
    let engines = engines_under_test();
    for &kind in &engines {
        let report = run(&options(kind, "kind", KindConfig::default_cluster()));
        assert_eq!(report.engine, Some(kind));
        let engine = report.finding("engine").unwrap();
        assert_eq!(engine.status, Status::Ok, "{engine:?}");
        assert!(engine.measured.starts_with(kind.name()), "{engine:?}");
        assert_eq!(
            report.finding("engine.provider").unwrap().status,
            Status::Ok
        );
    }
    if engines.len() == 2 {
        // loadmaster told podman, kind left to its default (docker): the
        // mix-up behind "no nodes found for cluster".
        let mut mixed = options(EngineKind::Podman, "kind", KindConfig::default_cluster());
        mixed.kind_provider = None;
        let provider = run(&mixed).finding("engine.provider").unwrap().clone();
        assert_eq!(provider.status, Status::Fail, "{provider:?}");
        assert!(provider.measured.contains("docker and podman both answer"));
        assert_eq!(
            provider.fix.as_deref(),
            Some("export KIND_EXPERIMENTAL_PROVIDER=podman")
        );
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn memory_and_disk_match_the_machine() {
    for kind in engines_under_test() {
        let before = meminfo_kib("MemAvailable:") * 1024;
        let report = run(&options(kind, "kind", KindConfig::default_cluster()));
        let after = meminfo_kib("MemAvailable:") * 1024;
        let memory = report.finding("memory").unwrap();
        let measured = memory.measured_bytes.expect("memory measured");
        let (low, high) = (before.min(after), before.max(after));
        // MemAvailable moves while engines run; 2% around both readings.
        assert!(
            measured >= low - low / 50 && measured <= high + high / 50,
            "{kind}: doctor says {measured} available, /proc/meminfo {before}..{after}"
        );
        assert!(memory.source.contains("MemAvailable"), "{memory:?}");

        let root = Engine::new(kind).info().unwrap().storage_root;
        let df = Command::new("df")
            .args(["-P", "-B1", &root])
            .output()
            .unwrap();
        let df_available: u64 = String::from_utf8_lossy(&df.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|n| n.parse().ok())
            .expect("df output");
        let storage = report.finding("disk.storage").unwrap();
        let free = storage.measured_bytes.expect("storage measured");
        assert!(
            free.abs_diff(df_available) < df_available / 50,
            "{kind}: doctor says {free} free at {root}, df {df_available}"
        );
        assert!(storage.source.contains(&root), "{storage:?}");
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_loopback_port_bound_by_this_test_is_flagged_with_its_owner() {
    let engines = engines_under_test();
    let Some(&kind) = engines.first() else { return };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = TempFile(std::env::temp_dir().join(format!(
        "loadmaster-doctor-kind-{}-{port}.yaml",
        std::process::id()
    )));
    let template = std::fs::read_to_string(fixture("kind-ports.yaml.in")).unwrap();
    std::fs::write(&config.0, template.replace("HOST_PORT", &port.to_string())).unwrap();
    let our_name = std::fs::read_to_string("/proc/self/comm")
        .unwrap()
        .trim()
        .to_string();

    // The library: busy with this process named as the owner.
    let loaded = KindConfig::load(&config.0).unwrap();
    assert_eq!(loaded.kubernetes_nodes(), 2);
    let report = run(&options(kind, "kind", loaded));
    let busy = report.finding(&format!("port.{port}/tcp")).unwrap();
    assert_eq!(busy.status, Status::Fail, "{busy:?}");
    let owner = format!("{our_name} (pid {})", std::process::id());
    assert!(busy.measured.contains(&owner), "{busy:?} lacks {owner}");
    assert!(
        busy.fix
            .as_deref()
            .unwrap()
            .contains(&format!("kill {}", std::process::id()))
    );
    let udp = report.finding(&format!("port.{port}/udp")).unwrap();
    assert_eq!(udp.status, Status::Ok, "{udp:?}");

    // The binary: exit 1, the same finding in JSON.
    let path = config.0.to_str().unwrap();
    let output = doctor_cli(
        &["--kind-config", path, "--output", "json"],
        &[
            ("LOADMASTER_ENGINE", kind.name()),
            ("KIND_EXPERIMENTAL_PROVIDER", kind.name()),
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let json = json_of(&output);
    let busy = finding(&json, &format!("port.{port}/tcp"));
    assert_eq!(busy["status"], "fail");
    assert!(
        busy["measured"].as_str().unwrap().contains(&owner),
        "{busy}"
    );
    drop(listener);

    // Released: the same config passes the port check.
    let report = run(&options(kind, "kind", KindConfig::load(&config.0).unwrap()));
    let free = report.finding(&format!("port.{port}/tcp")).unwrap();
    assert_eq!(free.status, Status::Ok, "{free:?}");
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_stale_node_container_or_cluster_with_the_planned_name_is_flagged() {
    let engines = engines_under_test();
    for &kind in &engines {
        // A leftover container with the control plane's name, no kind labels.
        let cluster = support::unique_name("lmd");
        let _stale = StaleContainer::create(kind, &format!("{cluster}-control-plane"));
        let report = run(&options(kind, &cluster, KindConfig::default_cluster()));
        let names = report.finding("cluster.name").unwrap();
        assert_eq!(names.status, Status::Fail, "{names:?}");
        assert!(
            names.measured.contains("name is already in use"),
            "{names:?}"
        );
        let fix = names.fix.as_deref().unwrap();
        assert!(
            fix.contains(&format!("{kind} rm -f {cluster}-control-plane")),
            "{fix}"
        );

        // A whole (test) kind cluster with the planned name: delete it with
        // kind, on the engine it runs on.
        let existing = TestCluster::start(kind, 0, &Default::default());
        let report = run(&options(
            kind,
            &existing.name,
            KindConfig::default_cluster(),
        ));
        let names = report.finding("cluster.name").unwrap();
        assert_eq!(names.status, Status::Fail, "{names:?}");
        let fix = names.fix.as_deref().unwrap();
        assert!(
            fix.contains(&format!(
                "KIND_EXPERIMENTAL_PROVIDER={kind} kind delete cluster --name {}",
                existing.name
            )),
            "{fix}"
        );
        // The same cluster about to be reused (`up` of its plan): its name
        // is no conflict, and its nodes' own memory is already in use.
        let mut reuse = options(kind, &existing.name, KindConfig::default_cluster());
        reuse.cluster_up = true;
        let report = run(&reuse);
        assert!(report.finding("cluster.name").is_none(), "{report:?}");
        assert!(
            report
                .needs
                .memory
                .iter()
                .all(|need| need.what != "kind nodes running Kubernetes"),
            "{:?}",
            report.needs
        );
        // Nothing is flagged for a name nobody uses.
        let free = run(&options(
            kind,
            &support::unique_name("lmd"),
            KindConfig::default_cluster(),
        ));
        assert_eq!(free.finding("cluster.name").unwrap().status, Status::Ok);

        // Found from the other engine: said to be on the other engine.
        if engines.len() == 2 {
            let report = run(&options(
                kind.other(),
                &existing.name,
                KindConfig::default_cluster(),
            ));
            let names = report.finding("cluster.name").unwrap();
            assert!(
                names.measured.contains("not the selected engine"),
                "{names:?}"
            );
        }
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_temp_dir_on_tmpfs_is_flagged() {
    let engines = engines_under_test();
    let Some(&kind) = engines.first() else { return };
    assert_eq!(
        filesystem_type("/dev/shm"),
        "tmpfs",
        "the test needs /dev/shm on tmpfs"
    );
    let mut on_tmpfs = options(kind, "kind", KindConfig::default_cluster());
    on_tmpfs.temp_dir = PathBuf::from("/dev/shm");
    let temp = run(&on_tmpfs).finding("disk.temp").unwrap().clone();
    assert_eq!(temp.status, Status::Warn, "{temp:?}");
    assert!(temp.measured.contains("tmpfs"), "{temp:?}");
    assert!(temp.fix.as_deref().unwrap().contains("TMPDIR"), "{temp:?}");

    // Through the binary, from TMPDIR.
    let output = doctor_cli(
        &["--output", "json"],
        &[
            ("TMPDIR", "/dev/shm"),
            ("LOADMASTER_ENGINE", kind.name()),
            ("KIND_EXPERIMENTAL_PROVIDER", kind.name()),
        ],
    );
    let json = json_of(&output);
    assert_eq!(finding(&json, "disk.temp")["status"], "warn");

    // A disk-backed temp dir is not flagged as tmpfs.
    let disk = std::env::var("CARGO_TARGET_TMPDIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into());
    if filesystem_type(&disk) != "tmpfs" {
        let mut on_disk = options(kind, "kind", KindConfig::default_cluster());
        on_disk.temp_dir = PathBuf::from(&disk);
        let temp = run(&on_disk).finding("disk.temp").unwrap().clone();
        assert!(!temp.measured.contains("tmpfs"), "{temp:?}");
    }
}

#[test]
fn inotify_limits_below_kinds_minimum_are_flagged_from_a_fixture_proc() {
    // The inotify checks read only the fixture: no engine is needed.
    let kind = if cfg!(engine_tests) {
        engines_under_test()[0]
    } else {
        EngineKind::Docker
    };
    let mut low = options(kind, "kind", KindConfig::default_cluster());
    low.proc_root = fixture("proc-low");
    let report = run(&low);
    for (id, value, minimum) in [
        ("kernel.inotify.max_user_watches", "8192", "524288"),
        ("kernel.inotify.max_user_instances", "128", "512"),
    ] {
        let f = report.finding(id).unwrap();
        assert_eq!(f.status, Status::Warn, "{f:?}");
        assert!(f.measured.starts_with(value), "{f:?}");
        let fix = f.fix.as_deref().unwrap();
        let key = id.replace("kernel.", "fs.");
        assert!(
            fix.contains(&format!("sudo sysctl {key}={minimum}")),
            "{fix}"
        );
        assert!(fix.contains("/etc/sysctl.d/"), "{fix}");
    }

    let mut ready = low.clone();
    ready.proc_root = fixture("proc-kind-ready");
    let report = run(&ready);
    for id in [
        "kernel.inotify.max_user_watches",
        "kernel.inotify.max_user_instances",
    ] {
        assert_eq!(report.finding(id).unwrap().status, Status::Ok);
    }

    // Through the binary, from LOADMASTER_PROC_ROOT.
    let root = fixture("proc-low");
    let output = doctor_cli(
        &["--output", "json"],
        &[("LOADMASTER_PROC_ROOT", root.to_str().unwrap())],
    );
    let json = json_of(&output);
    assert_eq!(
        finding(&json, "kernel.inotify.max_user_watches")["measured"]
            .as_str()
            .unwrap()
            .split(':')
            .next(),
        Some("8192")
    );
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn images_are_sized_from_the_engine_and_missing_ones_get_a_stated_default() {
    for kind in engines_under_test() {
        let size = Engine::new(kind).image_inspect(NODE_IMAGE).unwrap().size;
        let mut with_images = options(kind, "kind", KindConfig::default_cluster());
        with_images.images = vec![
            NODE_IMAGE.to_string(),
            "localhost/loadmaster-never-built:0".into(),
        ];
        let report = run(&with_images);
        let present = report.finding(&format!("image.{NODE_IMAGE}")).unwrap();
        assert_eq!(present.measured_bytes, Some(size));
        let missing = report
            .finding("image.localhost/loadmaster-never-built:0")
            .unwrap();
        assert_eq!(missing.status, Status::Warn, "{missing:?}");
        // One node: content plus snapshot of each, and the unbuilt one once more.
        let default = doctor::requirements::UNKNOWN_IMAGE_DEFAULT;
        assert_eq!(
            report.needs.storage_bytes(),
            2 * size + 2 * default + default
        );
        assert!(
            report
                .needs
                .storage
                .iter()
                .any(|n| n.source.contains("stated default"))
        );
    }
}

#[test]
fn a_malformed_kind_config_exits_2_with_line_and_column() {
    let path = fixture("kind-malformed.yaml");
    let output = doctor_cli(&["--kind-config", path.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{}:7:15", path.display())),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

// Contract tests: no podman machine can run here (podman refuses `machine`
// commands as root, and there is no VM). The answers below follow the field
// names of podman's InspectInfo and ResourceConfig (Memory in MiB, DiskSize
// in GiB) for podman 4.9 and 5.2 on macOS.

#[test]
fn contract_podman_4_machine_inspect() {
    let json = std::fs::read(fixture("podman-4.9-machine-inspect.json")).unwrap();
    let machines = machine::parse_inspect(&json).unwrap();
    assert_eq!(machines.len(), 1);
    let m = &machines[0];
    assert_eq!(m.name, "podman-machine-default");
    assert!(m.running());
    assert_eq!(m.cpus, 4);
    assert_eq!(m.memory_bytes, 2048 << 20);
    assert_eq!(m.disk_bytes, 100 << 30);
    assert!(!m.rootful);
}

#[test]
fn contract_podman_5_stopped_rootful_machine() {
    let json = std::fs::read(fixture("podman-5.2-machine-inspect-stopped.json")).unwrap();
    let m = &machine::parse_inspect(&json).unwrap()[0];
    assert!(!m.running());
    assert_eq!(m.state, "stopped");
    assert_eq!(m.memory_bytes, 12288 << 20);
    assert_eq!(m.disk_bytes, 200 << 30);
    assert!(m.rootful);
}

#[test]
fn contract_podman_info_from_a_machine_gives_the_vms_free_memory() {
    let json = std::fs::read(fixture("podman-5.2-info-remote.json")).unwrap();
    assert_eq!(machine::parse_mem_free(&json).unwrap(), 1_223_098_368);
    assert!(machine::parse_mem_free(br#"{"host":{}}"#).is_err());
    assert!(machine::parse_inspect(b"Error: no machine").is_err());
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_plan_gives_the_cluster_its_ports_images_and_builds() {
    let engines = engines_under_test();
    let Some(&kind) = engines.first() else { return };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = support::TempDir::new("lm-doctor-plan");
    for service in ["api", "worker"] {
        std::fs::create_dir_all(dir.path.join(service)).unwrap();
        std::fs::write(dir.path.join(service).join("Dockerfile"), "FROM scratch\n").unwrap();
    }
    // The manifest's name for the api image is a near miss of the plan's.
    std::fs::write(
        dir.path.join("api.yaml"),
        "kind: Pod\nmetadata:\n  name: api\nspec:\n  containers:\n    - name: api\n      image: localhost/lmd-api:1\n      imagePullPolicy: Never\n",
    )
    .unwrap();
    let cluster = support::unique_name("lmd");
    let plan = dir.path.join("loadmaster.yaml");
    std::fs::write(
        &plan,
        format!(
            r#"apiVersion: loadmaster/v1
cluster:
  name: {cluster}
  engine: {engine}
  configInline:
    kind: Cluster
    apiVersion: kind.x-k8s.io/v1alpha4
    nodes:
      - role: control-plane
        extraPortMappings:
          - containerPort: 80
            hostPort: {port}
      - role: worker
images:
  - name: lmd-api:1
    build: {{context: api, memory: 3GiB}}
  - name: lmd-worker:1
    build: {{context: worker, memory: 1GiB}}
deploy:
  - name: api
    manifests: [api.yaml]
budget:
  parallelBuilds: 4
test:
  command: "true"
"#,
            engine = kind.name()
        ),
    )
    .unwrap();

    let output = doctor_cli(&["-f", plan.to_str().unwrap(), "--output", "json"], &[]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let report = json_of(&output);
    assert_eq!(report["cluster"], cluster.as_str());
    assert_eq!(report["engine"], kind.name());
    // The port comes from the plan's inline kind config.
    assert_eq!(
        finding(&report, &format!("port.{port}/tcp"))["status"],
        "fail"
    );
    let requirements = &report["requirements"];
    assert_eq!(requirements["nodes"], 2, "{requirements:#}");
    // Both builds at once (the budget allows 4), each up to the largest
    // memory the plan states.
    assert_eq!(requirements["parallel_builds"], 2, "{requirements:#}");
    assert_eq!(requirements["build_peak"]["bytes"], 3u64 << 30);
    assert!(
        requirements["build_peak"]["source"]
            .as_str()
            .unwrap()
            .contains("lmd-api:1"),
        "{requirements:#}"
    );
    let images: Vec<&str> = requirements["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["image"].as_str().unwrap())
        .collect();
    assert_eq!(images, ["lmd-api:1", "lmd-worker:1"]);
    drop(listener);
    let name = finding(&report, "image-name.api.localhost/lmd-api:1");
    assert_eq!(name["status"], "fail", "{name:#}");
    assert_eq!(
        name["measured"],
        "api.yaml (Pod api, container api) asks for localhost/lmd-api:1 with imagePullPolicy Never; this plan loads lmd-api:1: name lmd-api:1 in api.yaml, or add localhost/lmd-api:1 to the plan's images"
    );

    // A plan with an error is the doctor's input error: exit 2.
    std::fs::write(&plan, "apiVersion: loadmaster/v1\ncluster: [\n").unwrap();
    let output = doctor_cli(&["-f", plan.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("loadmaster.yaml:"), "{stderr}");
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_plan_for_an_existing_cluster_asks_for_no_kind_and_no_local_nodes() {
    let engines = engines_under_test();
    let Some(&kind) = engines.first() else { return };
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/existing/loadmaster.yaml");
    let output = doctor_cli(
        &[
            "-f",
            example.to_str().unwrap(),
            "--engine",
            kind.name(),
            "--output",
            "json",
        ],
        &[],
    );
    let report = json_of(&output);
    let ids: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    for kinds_own in ["tool.kind", "engine.provider", "cluster.name"] {
        assert!(!ids.contains(&kinds_own), "{kinds_own} in {ids:?}");
    }
    // kubectl still matters: it reaches the cluster.
    assert!(ids.contains(&"tool.kubectl"), "{ids:?}");
    assert_eq!(report["requirements"]["nodes"], 0, "{report:#}");
    assert_eq!(report["cluster"], "staging");
}
