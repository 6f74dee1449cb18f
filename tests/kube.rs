//! The runner against a real Kubernetes: a one-node cluster started by
//! `tests/kube/start` (etcd, the control plane, a kubelet on the node's own
//! containerd, kube-proxy and CoreDNS in a kind-compatible node, nothing
//! pulled) on each engine under test, and `examples/kind` run on it with
//! `cluster.existing`: images built, loaded into the node, manifests
//! applied, rollout, condition and job waits, the test with `KUBECONFIG`,
//! its artifacts kept; the pods run the very images loadmaster delivered.
//!
//! The cluster needs Kubernetes and CoreDNS built from their Go modules
//! (`tests/kube/build`, 25-45 min cold; `.ci/run` does it). Without that
//! build the tests say so and return, unless `LOADMASTER_TEST_KUBE=1` asked
//! for them: then they fail. Like the other engine tests they are ignored
//! unless `LOADMASTER_TEST_ENGINES` (or `CI`) was set when they were built.

mod support;

use loadmaster::engine::EngineKind;
use loadmaster::journal::{EventBody, Journal, RunRecord, StepStatus};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use support::{TempDir, engines_under_test, unique_name};

/// The example's cluster name, namespace and image, as its files spell them.
const EXAMPLE_CLUSTER: &str = "name: lm-kind\n";
const NAMESPACE: &str = "lm-kind";
const IMAGE: &str = "localhost/lm-kind-web:1";

/// A cluster takes a good part of the machine: one at a time.
static ONE_CLUSTER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A `tests/kube/versions` setting, as the scripts read it.
fn version(name: &str) -> String {
    let text = std::fs::read_to_string(repo().join("tests/kube/versions")).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} in tests/kube/versions"))
        .to_string()
}

/// Why the cluster cannot start here, if it cannot: the Go builds it
/// mounts, or kubectl, missing.
fn missing() -> Option<String> {
    let cache = std::env::var("LOADMASTER_GO_CACHE")
        .unwrap_or_else(|_| "/var/cache/loadmaster-go".to_string());
    for tool in [
        format!("kubernetes@{}", version("KUBE_VERSION")),
        format!("coredns@{}", version("COREDNS_VERSION")),
    ] {
        let done = Path::new(&cache).join(&tool).join(".done");
        if !done.exists() {
            return Some(format!(
                "{} is not built: run tests/kube/build (25-45 min cold)",
                done.parent().unwrap().display()
            ));
        }
    }
    if !loadmaster::process::on_path("kubectl") {
        return Some("kubectl is not on PATH".to_string());
    }
    None
}

/// The engines to run on, or none (after saying why) when the cluster
/// cannot start here and `LOADMASTER_TEST_KUBE=1` did not ask for it.
fn kube_engines() -> Vec<EngineKind> {
    let engines = engines_under_test();
    if let Some(why) = missing() {
        let asked = std::env::var("LOADMASTER_TEST_KUBE").is_ok_and(|v| v == "1");
        assert!(!asked, "LOADMASTER_TEST_KUBE=1, but {why}");
        // Past the harness's capture: a skip is seen, not only counted.
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "skipped: {why}");
        return Vec::new();
    }
    engines
}

fn script(name: &str, args: &[&str]) -> Output {
    Command::new(repo().join("tests/kube").join(name))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A cluster of `tests/kube/start`, stopped when dropped (also on panic).
struct KubeCluster {
    name: String,
    engine: EngineKind,
    kubeconfig: PathBuf,
    /// Released after the cluster is stopped (fields drop after `drop`).
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

impl KubeCluster {
    fn start(engine: EngineKind) -> KubeCluster {
        let one_at_a_time = ONE_CLUSTER_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // The node image in this engine (seconds when it is up to date).
        let built = script("build", &[engine.name()]);
        assert!(
            built.status.success(),
            "tests/kube/build {engine}: {}",
            String::from_utf8_lossy(&built.stderr)
        );
        let name = unique_name("lmkube");
        let out = script("start", &[&name, engine.name()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let cluster = KubeCluster {
            kubeconfig: PathBuf::from(stdout.lines().last().unwrap_or_default()),
            name,
            engine,
            _one_at_a_time: one_at_a_time,
        };
        assert!(
            out.status.success(),
            "tests/kube/start on {engine}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(cluster.kubeconfig.is_file(), "{stdout}");
        cluster
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--request-timeout", "30s"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn node(&self) -> String {
        format!("{}-control-plane", self.name)
    }

    /// Runs a command in the node; its stdout.
    fn exec(&self, argv: &[&str]) -> String {
        let node = self.node();
        let mut args = vec!["exec", node.as_str()];
        args.extend_from_slice(argv);
        support::engine_cmd(self.engine, &args)
    }
}

impl Drop for KubeCluster {
    fn drop(&mut self) {
        let _ = script("stop", &[&self.name, self.engine.name()]);
    }
}

/// `examples/kind` copied into a temp directory for `cluster`: its cluster
/// renamed and marked `existing` on that engine, its image built from the
/// local busybox instead of a pulled one. The image is removed when
/// dropped.
struct Example {
    dir: TempDir,
    engine: EngineKind,
}

impl Example {
    fn for_cluster(cluster: &KubeCluster) -> Example {
        let example = Example {
            dir: TempDir::new("lmkube-plan"),
            engine: cluster.engine,
        };
        copy_dir(&repo().join("examples/kind"), &example.dir.path);
        example.edit("loadmaster.yaml", |plan| {
            replace(
                plan,
                EXAMPLE_CLUSTER,
                &format!(
                    "name: {}\n  engine: {}\n  existing: true\n",
                    cluster.name, cluster.engine
                ),
            )
        });
        example.edit("web/Dockerfile", |dockerfile| {
            replace(
                dockerfile,
                "FROM docker.io/library/busybox:1.36\n",
                "FROM localhost/loadmaster-test-node:1 AS tools\n\
                 FROM scratch\n\
                 COPY --from=tools /bin/busybox /bin/busybox\n\
                 RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n",
            )
        });
        example
    }

    fn edit(&self, file: &str, change: impl FnOnce(&str) -> String) {
        let path = self.dir.path.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, change(&text)).unwrap();
    }

    fn root(&self) -> PathBuf {
        self.dir.path.join("runs")
    }

    fn loadmaster(&self, cluster: &KubeCluster, verb: &str, extra: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_loadmaster"))
            .arg(verb)
            .arg("-f")
            .arg(self.dir.path.join("loadmaster.yaml"))
            .arg("--root")
            .arg(self.root())
            .args(["--engine", cluster.engine.name()])
            .args(extra)
            .env("KUBECONFIG", &cluster.kubeconfig)
            .env_remove("LOADMASTER_TEARDOWN")
            .current_dir(&self.dir.path)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn last_run(&self) -> RunRecord {
        let runs = loadmaster::journal::list(&self.root()).unwrap();
        Journal::open(&self.root().join(&runs.last().expect("a run").id)).unwrap()
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = support::engine_output(self.engine, &["rmi", "-f", IMAGE]);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `text` with `from` replaced, which must be there: an example that
/// changed under the test fails it rather than testing something else.
fn replace(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not in {text}");
    text.replacen(from, to, 1)
}

/// The exit code of the first command `step` ran that starts with `prefix`.
fn ran(record: &RunRecord, step: &str, prefix: &[&str]) -> Option<i32> {
    let commands: Vec<(Vec<String>, Option<i32>)> = record
        .events
        .iter()
        .filter(|e| e.step.as_deref() == Some(step))
        .filter_map(|e| match &e.body {
            EventBody::Command { argv, exit, .. } => Some((argv.clone(), exit.code)),
            _ => None,
        })
        .collect();
    commands
        .iter()
        .find(|(argv, _)| {
            argv.iter()
                .map(String::as_str)
                .take(prefix.len())
                .eq(prefix.iter().copied())
        })
        .unwrap_or_else(|| panic!("{step} ran no `{}`: {commands:?}", prefix.join(" ")))
        .1
}

/// The manifest digest `reference` names in the node's containerd, and the
/// config digest that manifest names.
fn image_in_node(cluster: &KubeCluster, reference: &str) -> (String, String) {
    let filter = format!("name=={reference}");
    let list = cluster.exec(&["ctr", "-n", "k8s.io", "images", "ls", &filter]);
    // REF TYPE DIGEST SIZE PLATFORMS LABELS, after a header line
    let manifest = list
        .lines()
        .nth(1)
        .and_then(|line| line.split_whitespace().nth(2))
        .unwrap_or_else(|| panic!("{reference} is not in the node: {list}"))
        .to_string();
    let json = cluster.exec(&["ctr", "-n", "k8s.io", "content", "get", &manifest]);
    let parsed: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let config = parsed["config"]["digest"]
        .as_str()
        .expect("a config digest");
    (manifest, config.to_string())
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn kube_examples_kind_runs_on_a_real_cluster_with_the_delivered_images() {
    for engine in kube_engines() {
        let cluster = KubeCluster::start(engine);
        let example = Example::for_cluster(&cluster);
        let out = example.loadmaster(&cluster, "run", &["-o", "json"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "on {engine}: {stderr}");
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["result"], "succeeded", "on {engine}: {report}");
        assert_eq!(report["testExitCode"], 0, "on {engine}: {report}");

        let record = example.last_run();
        let steps: Vec<(&str, StepStatus)> = record
            .steps
            .iter()
            .map(|s| (s.id.as_str(), s.status))
            .collect();
        let build = format!("build/{IMAGE}");
        let deliver = format!("deliver/{IMAGE}");
        for step in [
            build.as_str(),
            deliver.as_str(),
            "deploy/web",
            "deploy/check",
            "test",
        ] {
            assert!(
                steps.contains(&(step, StepStatus::Succeeded)),
                "on {engine}: {steps:?}"
            );
        }
        // Each kind of wait, against the real API server.
        let ns = ["kubectl", "--namespace", NAMESPACE];
        let rollout = [&ns[..], &["rollout", "status", "deployment/web"]].concat();
        assert_eq!(ran(&record, "deploy/web", &rollout), Some(0));
        let ready = [
            &ns[..],
            &["wait", "--for=condition=Ready", "pod", "-l", "app=web"],
        ]
        .concat();
        assert_eq!(ran(&record, "deploy/web", &ready), Some(0));
        let job = [&ns[..], &["wait", "--for=condition=complete", "job/check"]].concat();
        assert_eq!(ran(&record, "deploy/check", &job), Some(0));
        // The test ran with the cluster's KUBECONFIG (kubectl exec into the
        // web pod) and its artifact was kept.
        let page = std::fs::read_to_string(record.dir.join("artifacts/page.html")).unwrap();
        assert_eq!(page, "hello from loadmaster\n");

        // The pods run the image loadmaster delivered: the node's image of
        // that name is the engine's (same config digest), and the pods'
        // image IDs name it.
        let engine_id =
            support::engine_cmd(engine, &["image", "inspect", "--format", "{{.Id}}", IMAGE]);
        let engine_id = engine_id.trim();
        let engine_id = if engine_id.starts_with("sha256:") {
            engine_id.to_string()
        } else {
            format!("sha256:{engine_id}")
        };
        let (manifest, config) = image_in_node(&cluster, IMAGE);
        assert_eq!(config, engine_id, "on {engine}");
        let ids = cluster.kubectl(&[
            "--namespace",
            NAMESPACE,
            "get",
            "pods",
            "-o",
            "jsonpath={range .items[*]}{.status.containerStatuses[0].imageID}{\"\\n\"}{end}",
        ]);
        let ids: Vec<&str> = ids.lines().collect();
        assert!(!ids.is_empty());
        for id in &ids {
            assert!(
                *id == config || id.ends_with(&format!("@{manifest}")),
                "on {engine}: a pod runs {id}, loadmaster delivered {manifest} (config {config})"
            );
        }
    }
}

/// The fault lab's image: busybox from the local test node, nothing pulled.
const FAULT_IMAGE: &str = "localhost/lmkube-fault:e2e";

/// One fault: the deployment's container spec (after `image:`), the wait
/// that sees it fail, and the diagnosis it must get.
struct Fault {
    name: &'static str,
    /// The container's spec, each line indented by ten spaces; `IMAGE`
    /// stands for the delivered image.
    container: &'static str,
    wait: &'static str,
    /// More documents for the namespace (a Service), each ending in `---`.
    others: &'static str,
    class: &'static str,
    /// How sure the evidence makes the diagnosis: the kubelet's word for a
    /// state proves it; a probe's failures or a refused connection make
    /// their cause likely.
    confidence: &'static str,
    /// What the root cause's statement must name besides the pod and the
    /// container.
    names: &'static [&'static str],
    /// Run with `--skip-preflight`: a name loadmaster knows will not
    /// resolve is caught before anything is applied unless skipped, and
    /// the case is what the cluster says of it.
    skip_preflight: bool,
}

// The crash loop and the OOM kill are proven from the pod listing the
// runner gathered (the last termination's reason and exit code), not from
// the kubelet's BackOff event, which proves the loop only.
const FAULTS: [Fault; 6] = [
    Fault {
        name: "crash",
        container: "          image: IMAGE\n          imagePullPolicy: Never\n          command: [\"sh\", \"-c\", \"echo 'fault: cannot open /etc/app/config.yaml' >&2; exit 3\"]\n",
        wait: "      - rollout: deployment/app\n        timeout: 45s\n",
        others: "",
        class: "crash-loop",
        confidence: "proven",
        // Its own last words, from the crashed instance's log.
        names: &[FAULT_IMAGE],
        skip_preflight: false,
    },
    Fault {
        name: "oomkilled",
        // dd's 64 MiB block is one allocation, touched as it is read into:
        // over the 16Mi limit at once, whatever the machine's load.
        container: "          image: IMAGE\n          imagePullPolicy: Never\n          command: [\"dd\", \"if=/dev/zero\", \"of=/dev/null\", \"bs=67108864\", \"count=1\"]\n          resources:\n            limits: {memory: 16Mi}\n",
        wait: "      - rollout: deployment/app\n        timeout: 45s\n",
        others: "",
        class: "container-oomkilled",
        confidence: "proven",
        names: &[FAULT_IMAGE, "16Mi", "OOMKilled"],
        skip_preflight: false,
    },
    Fault {
        name: "unschedulable",
        container: "          image: IMAGE\n          imagePullPolicy: Never\n          command: [\"sleep\", \"3600\"]\n          resources:\n            requests: {memory: 4000Gi}\n",
        wait: "      - condition: Ready\n        resource: pod\n        selector: app=app\n        timeout: 20s\n",
        others: "",
        class: "pod-unschedulable",
        confidence: "proven",
        names: &["Insufficient memory"],
        skip_preflight: false,
    },
    Fault {
        name: "neverpull",
        // As in a suite whose manifest said :latest while :e2e was loaded.
        container: "          image: localhost/lmkube-fault:latest\n          imagePullPolicy: Never\n          command: [\"sleep\", \"3600\"]\n",
        wait: "      - rollout: deployment/app\n        timeout: 30s\n",
        others: "",
        class: "image-never-pull",
        confidence: "proven",
        names: &["localhost/lmkube-fault:latest"],
        // The pre-flight (and the deploy step's own check) would stop it
        // before the cluster saw it (tests/runner.rs has that case).
        skip_preflight: true,
    },
    Fault {
        name: "unready",
        // Runs, never ready: its readiness probe fails every time.
        container: "          image: IMAGE\n          imagePullPolicy: Never\n          command: [\"sleep\", \"3600\"]\n          readinessProbe:\n            exec: {command: [\"cat\", \"/tmp/ready\"]}\n            periodSeconds: 2\n",
        wait: "      - condition: Ready\n        resource: pod\n        selector: app=app\n        timeout: 20s\n",
        others: "",
        class: "readiness-timeout",
        confidence: "likely",
        skip_preflight: false,
        names: &["Readiness probe failed"],
    },
    Fault {
        name: "dependency",
        // It dials a Service whose selector matches no pod: the node's
        // kube-proxy refuses the connection, and the container exits.
        container: "          image: IMAGE\n          imagePullPolicy: Never\n          command: [\"sh\", \"-c\", \"nc -w 2 db 5432 </dev/null\"]\n",
        wait: "      - rollout: deployment/app\n        timeout: 45s\n",
        others: "apiVersion: v1\nkind: Service\nmetadata:\n  name: db\nspec:\n  selector: {app: db}\n  ports:\n    - port: 5432\n---\n",
        class: "dependency-not-ready",
        confidence: "likely",
        skip_preflight: false,
        names: &[FAULT_IMAGE, "Connection refused"],
    },
];

/// A plan for `cluster` that builds and loads [`FAULT_IMAGE`] and deploys
/// `fault` into namespace `namespace`. `minReadySeconds`: a container that
/// crashes a moment after it started was Ready for that moment, which
/// would complete a rollout.
fn fault_plan(dir: &Path, cluster: &KubeCluster, namespace: &str, fault: &Fault) -> PathBuf {
    std::fs::create_dir_all(dir.join("image")).unwrap();
    std::fs::write(
        dir.join("image/Dockerfile"),
        "FROM localhost/loadmaster-test-node:1 AS tools\n\
         FROM scratch\n\
         COPY --from=tools /bin/busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("app.yaml"),
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n---\n{}\
             apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n  namespace: {namespace}\n\
             spec:\n  replicas: 1\n  minReadySeconds: 20\n  selector:\n    matchLabels: {{app: app}}\n  template:\n    metadata:\n      labels: {{app: app}}\n    spec:\n\
             \x20     terminationGracePeriodSeconds: 1\n      containers:\n        - name: app\n{}",
            fault.others,
            fault.container.replace("IMAGE", FAULT_IMAGE)
        ),
    )
    .unwrap();
    let plan = dir.join("loadmaster.yaml");
    std::fs::write(
        &plan,
        format!(
            "apiVersion: loadmaster/v1\ncluster:\n  name: {}\n  engine: {}\n  existing: true\n\
             images:\n  - name: {FAULT_IMAGE}\n    build:\n      context: image\n      timeout: 3m\n\
             deploy:\n  - name: app\n    manifests: [app.yaml]\n    namespace: {namespace}\n    wait:\n{}\
             test:\n  command: \"true\"\n  timeout: 30s\n\
             teardown:\n  onSuccess: delete\n  onFailure: keep\n\
             budget:\n  memory: 2GiB\n",
            cluster.name, cluster.engine, fault.wait
        ),
    )
    .unwrap();
    plan
}

/// A diagnosis as a failed assertion shows it: the root cause and the
/// pod-level facts first (a CI log may keep only the head of a long
/// message), then the whole of it.
fn explain(diagnosis: &Value) -> String {
    let cause = &diagnosis["root_cause"];
    let mut out = format!(
        "root cause {} ({}): {}\n",
        cause["class"], cause["confidence"], cause["statement"]
    );
    for e in diagnosis["evidence"].as_array().into_iter().flatten() {
        if matches!(
            e["fact"]["kind"].as_str(),
            Some("pod-container" | "container-log")
        ) {
            out.push_str(&format!("  {}: {}\n", e["where"], e["shows"]));
        }
    }
    out + &format!("{diagnosis:#}")
}

/// `LOADMASTER_TEST_FAULTS=crash,dependency` runs only those cases, for
/// working on one without waiting for the other five; unset, all run.
fn fault_wanted(name: &str) -> bool {
    std::env::var("LOADMASTER_TEST_FAULTS")
        .map(|only| only.split(',').any(|n| n.trim() == name))
        .unwrap_or(true)
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn kube_fault_lab_each_failure_is_diagnosed_from_what_the_runner_gathered() {
    for engine in kube_engines() {
        let cluster = KubeCluster::start(engine);
        // The image the runs build goes with the test: left in one engine,
        // it fails the other's pre-flight ("not in podman, but in docker").
        let _image = support::BuiltImage(engine, FAULT_IMAGE.to_string());
        for fault in FAULTS.iter().filter(|f| fault_wanted(f.name)) {
            let dir = TempDir::new("lmkube-fault");
            let namespace = format!("fault-{}", fault.name);
            let plan = fault_plan(&dir.path, &cluster, &namespace, fault);
            let root = dir.path.join("runs");
            let out = Command::new(env!("CARGO_BIN_EXE_loadmaster"))
                .arg("run")
                .arg("-f")
                .arg(&plan)
                .arg("--root")
                .arg(&root)
                .args(["--engine", engine.name()])
                .args(fault.skip_preflight.then_some("--skip-preflight"))
                .env("KUBECONFIG", &cluster.kubeconfig)
                // kind's own engine choice agrees (the pre-flight checks it).
                .env("KIND_EXPERIMENTAL_PROVIDER", engine.name())
                .env_remove("LOADMASTER_TEARDOWN")
                .current_dir(&dir.path)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            let case = format!("{} on {engine}", fault.name);
            assert_eq!(out.status.code(), Some(1), "{case}: {stderr}");
            let runs = loadmaster::journal::list(&root).unwrap();
            let record = Journal::open(&root.join(&runs.last().expect("a run").id)).unwrap();
            let failed = record
                .steps
                .iter()
                .find(|s| s.id == "deploy/app")
                .unwrap_or_else(|| panic!("{case}: no deploy step: {stderr}"));
            assert_eq!(
                failed.status,
                StepStatus::Failed,
                "{case}: {:?}",
                record.steps
            );
            if fault.skip_preflight {
                // The deploy step's name check was skipped with it, and
                // the journal says so.
                let skipped = record.events.iter().any(|e| {
                    e.step.as_deref() == Some("deploy/app")
                        && matches!(&e.body, EventBody::Note { message } if message.starts_with("image names not checked"))
                });
                assert!(skipped, "{case}: no note of the skipped name check");
            }

            let path = record.dir.join("diagnosis.json");
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{case}: {}: {e}\n{stderr}", path.display()));
            let diagnosis: Value = serde_json::from_str(&text).unwrap();
            let shown = explain(&diagnosis);
            let cause = &diagnosis["root_cause"];
            assert_eq!(cause["class"], fault.class, "{case}: {shown}");
            assert_eq!(cause["confidence"], fault.confidence, "{case}: {shown}");
            // What still works: the API server, which answered.
            assert!(
                diagnosis["still_works"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|w| w.as_str().unwrap().contains("API server answers")),
                "{case}: {shown}"
            );
            let statement = cause["statement"].as_str().unwrap();
            let pod = cluster.kubectl(&[
                "--namespace",
                &namespace,
                "get",
                "pods",
                "-o",
                "jsonpath={.items[0].metadata.name}",
            ]);
            // The diagnosis names the pod (the statement does for a crash
            // loop, an OOM kill and an unplaced pod, not yet for
            // ErrImageNeverPull), the statement the container for a crash
            // loop and an OOM kill, and the image and the cause's own words
            // are in it.
            assert!(text.contains(&pod), "{case}: {pod} not in {shown}");
            if matches!(
                fault.class,
                "crash-loop" | "container-oomkilled" | "dependency-not-ready"
            ) {
                assert!(
                    statement.contains("container app") && statement.contains(&pod),
                    "{case}: no pod and container in {statement}"
                );
            }
            if fault.class == "crash-loop" {
                // Proven by its own exit status, and explained by its last
                // words: both in the statement.
                for said in ["exit code 3", "fault: cannot open /etc/app/config.yaml"] {
                    assert!(
                        statement.contains(said),
                        "{case}: {said} not in {statement}"
                    );
                }
            }
            for name in fault.names {
                assert!(text.contains(name), "{case}: {name} not in {shown}");
            }
            if fault.name == "crash" {
                // The container's last lines, read from the API server.
                let logs = std::fs::read_dir(record.dir.join("logs"))
                    .unwrap()
                    .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
                    .any(|text| text.contains("fault: cannot open /etc/app/config.yaml"));
                assert!(logs, "{case}: the container's last lines were not gathered");
            }
            // The next case gets the node's room back.
            cluster.kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
        }
    }
}
