//! Opt-in tests against real kind clusters: `loadmaster run` of
//! `examples/kind` (the cluster created with the kind CLI, an image built
//! and delivered into its node, deploy steps with rollout, condition and
//! job waits, the test, the cluster deleted), and a deploy that never
//! becomes ready, whose pods' logs are gathered from the real API server
//! (the counterpart of the contract test in `tests/runner.rs`).
//!
//! They need the kind CLI, kubectl, an engine kind can run nodes on, and
//! the internet (kind's node image, busybox), and take minutes each, so
//! they are `#[ignore]`d: a plain `cargo test` lists them as ignored. Run
//! them with
//!
//! ```sh
//! LOADMASTER_TEST_KIND=1 cargo test --test kind -- --ignored --test-threads=1
//! ```
//!
//! on the engine `LOADMASTER_TEST_ENGINES` names first (default docker).
//! Without kind on PATH they print "skipped: kind not installed" and pass,
//! unless `LOADMASTER_TEST_KIND=1` asked for them: then they fail.

mod support;

use loadmaster::journal::{EventBody, Journal, RunRecord, RunStatus, StepStatus};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use support::{TempDir, unique_name};

/// The example's cluster name, namespace and image, as its files spell them.
const EXAMPLE_CLUSTER: &str = "name: lm-kind\n";
const NAMESPACE: &str = "lm-kind";
const IMAGE: &str = "localhost/lm-kind-web:1";

/// Two kind clusters at once would only compete for the machine.
static ONE_CLUSTER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The engine to run kind on, or `None` (after saying so) when kind is not
/// installed and the tests were not asked for.
fn kind_engine() -> Option<String> {
    let asked = std::env::var("LOADMASTER_TEST_KIND").is_ok_and(|v| v == "1");
    for tool in ["kind", "kubectl"] {
        if !loadmaster::process::on_path(tool) {
            assert!(
                !asked,
                "LOADMASTER_TEST_KIND=1, but {tool} is not on PATH: install it (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
            );
            // Past the test harness's capture: a skip is seen, not only
            // counted as a pass.
            let _ = writeln!(std::io::stderr(), "skipped: {tool} not installed");
            return None;
        }
    }
    let engine = std::env::var("LOADMASTER_TEST_ENGINES")
        .ok()
        .and_then(|names| names.split(',').next().map(|n| n.trim().to_string()))
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "docker".to_string());
    Some(engine)
}

/// `examples/kind` copied into a temp directory, its cluster renamed so that
/// it meets no other; the cluster is deleted and the image removed when
/// dropped, whatever the test left.
struct Example {
    dir: TempDir,
    cluster: String,
    engine: String,
    /// Released after the cluster is deleted (fields drop after `drop`).
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

impl Example {
    /// The example, ready to run: `None` (after saying so) without kind.
    fn start() -> Option<Example> {
        let one_at_a_time = ONE_CLUSTER_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let engine = kind_engine()?;
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kind");
        let dir = TempDir::new("lmk-plan");
        copy_dir(&source, &dir.path);
        let example = Example {
            dir,
            cluster: unique_name("lmk"),
            engine,
            _one_at_a_time: one_at_a_time,
        };
        example.edit("loadmaster.yaml", |plan| {
            replace(
                plan,
                EXAMPLE_CLUSTER,
                &format!("name: {}\n", example.cluster),
            )
        });
        Some(example)
    }

    fn file(&self) -> PathBuf {
        self.dir.path.join("loadmaster.yaml")
    }

    fn root(&self) -> PathBuf {
        self.dir.path.join("runs")
    }

    /// Rewrites one of the example's files.
    fn edit(&self, file: &str, change: impl FnOnce(&str) -> String) {
        let path = self.dir.path.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, change(&text)).unwrap();
    }

    fn loadmaster(&self, verb: &str, extra: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_loadmaster"))
            .arg(verb)
            .arg("-f")
            .arg(self.file())
            .arg("--root")
            .arg(self.root())
            .args(["--engine", &self.engine])
            .args(extra)
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

    /// The kind clusters on the engine (`kind get clusters`).
    fn clusters(&self) -> Vec<String> {
        let out = self.kind(&["get", "clusters"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn kind(&self, args: &[&str]) -> Output {
        Command::new("kind")
            .args(args)
            .env("KIND_EXPERIMENTAL_PROVIDER", &self.engine)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.kind(&["delete", "cluster", "--name", &self.cluster]);
        let _ = Command::new(&self.engine)
            .args(["rmi", "-f", IMAGE])
            .output();
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

/// The argv of every command `step` ran, with its exit code.
fn commands(record: &RunRecord, step: &str) -> Vec<(Vec<String>, Option<i32>)> {
    record
        .events
        .iter()
        .filter(|e| e.step.as_deref() == Some(step))
        .filter_map(|e| match &e.body {
            EventBody::Command { argv, exit, .. } => Some((argv.clone(), exit.code)),
            _ => None,
        })
        .collect()
}

fn ran(record: &RunRecord, step: &str, prefix: &[&str]) -> Option<i32> {
    commands(record, step)
        .into_iter()
        .find(|(argv, _)| {
            argv.iter()
                .map(String::as_str)
                .take(prefix.len())
                .eq(prefix.iter().copied())
        })
        .unwrap_or_else(|| {
            panic!(
                "{step} ran no `{}`: {:?}",
                prefix.join(" "),
                commands(record, step)
            )
        })
        .1
}

#[test]
#[ignore = "opt-in, needs kind, kubectl and the internet: LOADMASTER_TEST_KIND=1 cargo test --test kind -- --ignored"]
fn kind_run_of_the_example_creates_deploys_tests_and_deletes_the_cluster() {
    let Some(example) = Example::start() else {
        return;
    };
    let out = example.loadmaster("run", &["-o", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["result"], "succeeded", "{report}");
    assert_eq!(report["testExitCode"], 0, "{report}");

    let record = example.last_run();
    let steps: Vec<(&str, StepStatus)> = record
        .steps
        .iter()
        .map(|s| (s.id.as_str(), s.status))
        .collect();
    let build = format!("build/{IMAGE}");
    let deliver = format!("deliver/{IMAGE}");
    assert_eq!(
        steps,
        [
            ("cluster", StepStatus::Succeeded),
            (build.as_str(), StepStatus::Succeeded),
            (deliver.as_str(), StepStatus::Succeeded),
            ("deploy/web", StepStatus::Succeeded),
            ("deploy/check", StepStatus::Succeeded),
            ("test", StepStatus::Succeeded),
            ("down", StepStatus::Succeeded),
        ]
    );
    let name = example.cluster.as_str();
    assert_eq!(
        ran(
            &record,
            "cluster",
            &["kind", "create", "cluster", "--name", name]
        ),
        Some(0)
    );
    // Each kind of wait, against the real API server.
    let ns = ["kubectl", "--namespace", NAMESPACE];
    assert_eq!(
        ran(
            &record,
            "deploy/web",
            &[&ns[..], &["rollout", "status", "deployment/web"]].concat()
        ),
        Some(0)
    );
    assert_eq!(
        ran(
            &record,
            "deploy/web",
            &[
                &ns[..],
                &["wait", "--for=condition=Ready", "pod", "-l", "app=web"]
            ]
            .concat()
        ),
        Some(0)
    );
    assert_eq!(
        ran(
            &record,
            "deploy/check",
            &[&ns[..], &["wait", "--for=condition=complete", "job/check"]].concat()
        ),
        Some(0)
    );
    // The page the test fetched is the delivered image's (imagePullPolicy: Never).
    let page = std::fs::read_to_string(record.dir.join("artifacts/page.html")).unwrap();
    assert_eq!(page, "hello from loadmaster\n");
    // Deleted on success.
    assert_eq!(
        ran(
            &record,
            "down",
            &["kind", "delete", "cluster", "--name", name]
        ),
        Some(0)
    );
    assert!(
        !example.clusters().contains(&example.cluster),
        "{:?}",
        example.clusters()
    );
}

#[test]
#[ignore = "opt-in, needs kind, kubectl and the internet: LOADMASTER_TEST_KIND=1 cargo test --test kind -- --ignored"]
fn kind_a_crashing_deploy_keeps_the_cluster_with_its_pods_logs() {
    let Some(example) = Example::start() else {
        return;
    };
    // The web server's container exits at once, saying why; a minute of
    // waiting sees it restarted (kubelet's back-off: 10 s, then 20 s).
    example.edit("deploy/web.yaml", |manifest| {
        replace(
            manifest,
            "          imagePullPolicy: Never\n",
            "          imagePullPolicy: Never\n          command: [\"sh\", \"-c\", \"echo 'web: cannot start: no config' >&2; exit 3\"]\n",
        )
    });
    example.edit("loadmaster.yaml", |plan| {
        replace(plan, "        timeout: 3m\n", "        timeout: 60s\n")
    });
    let out = example.loadmaster("run", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let record = example.last_run();
    assert_eq!(record.status, RunStatus::Failed);
    let failed = record.steps.iter().find(|s| s.id == "deploy/web").unwrap();
    assert_eq!(failed.status, StepStatus::Failed);
    assert!(
        record
            .steps
            .iter()
            .all(|s| s.id != "test" && s.id != "down"),
        "{:?}",
        record.steps
    );

    // The crashing container's logs, read from the API server, each file
    // listed in the journal.
    let listed: Vec<(String, String)> = record
        .events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::LogFile { path, about } => Some((path.display().to_string(), about.clone())),
            _ => None,
        })
        .collect();
    let web_logs: Vec<&(String, String)> = listed
        .iter()
        .filter(|(path, _)| {
            path.starts_with(&format!("logs/pod-{NAMESPACE}-web-")) && path.ends_with("-web.log")
        })
        .collect();
    assert_eq!(web_logs.len(), 1, "{listed:?}");
    // Read while the container crash-loops: its last instance (and, once
    // restarted, the one before) says why; a read in the instant between a
    // restart and its output may find the current instance still silent.
    let previous = web_logs[0].0.replace("-web.log", "-web-previous.log");
    let mut said = Vec::new();
    for path in [&web_logs[0].0, &previous] {
        if let Some((_, about)) = listed.iter().find(|(listed, _)| listed == path) {
            assert!(
                path != &previous || about.contains("before the last restart"),
                "{about}"
            );
            said.push(std::fs::read_to_string(record.dir.join(path)).unwrap());
        }
    }
    assert!(
        said.iter()
            .any(|log| log.contains("web: cannot start: no config")),
        "{said:?}"
    );
    let describe = web_logs[0].0.replace("-web.log", "-describe.txt");
    let text = std::fs::read_to_string(record.dir.join(&describe)).unwrap();
    assert!(text.contains("Restart Count:"), "{text}");
    assert!(
        listed.iter().any(|(path, _)| path == "logs/pods.json"),
        "{listed:?}"
    );

    // Kept on failure, until `down`.
    assert!(
        example.clusters().contains(&example.cluster),
        "{:?}",
        example.clusters()
    );
    let out = example.loadmaster("down", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !example.clusters().contains(&example.cluster),
        "{:?}",
        example.clusters()
    );
}
