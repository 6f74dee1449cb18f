//! The runner for real on docker and podman: a plan against a kind-compatible
//! test cluster (its name is the plan's cluster name, `existing: true`),
//! images built from Dockerfiles that pull nothing (FROM scratch, busybox
//! copied out of the local test node image), the build schedule in the
//! journal, delivery checked on the node, the test's exit code, the
//! diagnosis of a failing test, and a clean stop on SIGTERM.
//!
//! kind and kubectl against an API server are not run here: their command
//! lines are contract tests in `src/runner/kube.rs`, and what kubectl
//! answers after a failed deploy is replayed from recordings (a contract
//! test: `tests/fixtures/kubectl/`). `tests/kind.rs` runs them for real,
//! opt-in.

mod support;

use loadmaster::engine::EngineKind;
use loadmaster::journal::{Event, EventBody, Journal, Outcome, RunStatus, Wait};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::registry::TestRegistry;
use support::{
    Layer, NodeOptions, TempDir, TestCluster, TestImage, engine_output, engines_under_test,
    unique_name,
};

/// Tests that build run one at a time: they build the same layers, and
/// an engine that removes one test's image (its untagged parents with it)
/// while another builds on the same cached steps fails that build ("No
/// such image: sha256:…", "layer not known").
static ONE_BUILD_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    ONE_BUILD_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

const DOCKERFILE: &str = r#"FROM scratch AS shell
COPY --from=localhost/loadmaster-test-node:1 /bin/busybox /bin/busybox
ENTRYPOINT ["/bin/busybox", "sh"]

FROM shell AS greeter
ARG GREETING=hi
ENV GREETING=${GREETING}
CMD ["-c", "echo \"$GREETING\""]
"#;

/// Images a test's runs built, removed when dropped.
struct Built {
    kind: EngineKind,
    names: Vec<String>,
}

impl Drop for Built {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = engine_output(self.kind, &["rmi", "-f", name]);
        }
    }
}

/// A plan in a temp directory, its runs recorded under `root`.
struct TestPlan {
    /// Held for its Drop: the plan, its Dockerfile and its runs go with it.
    _dir: TempDir,
    file: PathBuf,
    root: PathBuf,
}

impl TestPlan {
    fn write(text: &str) -> TestPlan {
        let dir = TempDir::new("lmt-plan");
        std::fs::create_dir_all(dir.path.join("images/greeter")).unwrap();
        std::fs::write(dir.path.join("images/greeter/Dockerfile"), DOCKERFILE).unwrap();
        let file = dir.path.join("loadmaster.yaml");
        std::fs::write(&file, text).unwrap();
        let root = dir.path.join("runs");
        TestPlan {
            _dir: dir,
            file,
            root,
        }
    }

    fn command(&self, verb: &str, extra: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_loadmaster"));
        command
            .arg(verb)
            .arg("-f")
            .arg(&self.file)
            .arg("--root")
            .arg(&self.root)
            .args(extra)
            .env_remove("LOADMASTER_ENGINE")
            .env_remove("KIND_EXPERIMENTAL_PROVIDER")
            .env_remove("LOADMASTER_TEARDOWN")
            .stdin(Stdio::null());
        command
    }

    /// The one run recorded by the last command (runs sort by start time).
    fn last_run(&self) -> loadmaster::journal::RunRecord {
        let runs = loadmaster::journal::list(&self.root).unwrap();
        let last = runs.last().expect("a run was recorded");
        Journal::open(&self.root.join(&last.id)).unwrap()
    }
}

fn plan_text(cluster: &TestCluster, images: &str, test: &str, budget: &str) -> String {
    format!(
        "apiVersion: loadmaster/v1\ncluster:\n  name: {}\n  engine: {}\n  existing: true\n{images}{test}budget:\n  memory: {budget}\n",
        cluster.name, cluster.kind
    )
}

fn images_yaml(greeter: &str, shell: &str) -> String {
    format!(
        "images:\n  - name: {greeter}\n    build:\n      context: images/greeter\n      args:\n        GREETING: hello\n      timeout: 2m\n      memory: 256MiB\n  - name: {shell}\n    build:\n      context: images/greeter\n      target: shell\n      timeout: 2m\n      memory: 256MiB\n"
    )
}

/// The builds the schedule event lists, with their estimates.
fn scheduled_builds(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .find_map(|event| match &event.body {
            EventBody::Schedule { builds, .. } => {
                Some(builds.iter().map(|b| b.image.clone()).collect())
            }
            _ => None,
        })
        .expect("a schedule event")
}

fn step_times(record: &loadmaster::journal::RunRecord, id: &str) -> (u64, u64) {
    let step = record
        .steps
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("step {id} in {:?}", record.steps));
    let start = step.started.since(record.started.unwrap());
    let end = step
        .ended
        .expect("step ended")
        .since(record.started.unwrap());
    (start, end)
}

/// A step line of plain progress: `HH:MM:SS.mmm STEP started`, or
/// `HH:MM:SS.mmm STEP RESULT (N.N s)[: error]`.
#[derive(Debug)]
struct StepLine {
    /// Milliseconds into the (UTC) day.
    clock: u64,
    step: String,
    /// `started`, or how it ended.
    what: String,
}

/// `HH:MM:SS.mmm` as milliseconds into the day.
fn clock_millis(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    let shape = text.len() == 12
        && bytes.iter().enumerate().all(|(i, b)| match i {
            2 | 5 => *b == b':',
            8 => *b == b'.',
            _ => b.is_ascii_digit(),
        });
    if !shape {
        return None;
    }
    let field = |range: std::ops::Range<usize>| text[range].parse::<u64>().unwrap();
    let (h, m, s, ms) = (field(0..2), field(3..5), field(6..8), field(9..12));
    (h < 24 && m < 60 && s < 60).then_some(((h * 60 + m) * 60 + s) * 1000 + ms)
}

/// The step lines of a run's plain progress, in the order printed.
fn step_lines(stderr: &str) -> Vec<StepLine> {
    stderr
        .lines()
        .filter_map(|line| {
            let (clock, rest) = line.split_once(' ')?;
            let clock = clock_millis(clock)?;
            let (step, what) = rest.split_once(' ')?;
            let ended = ["succeeded", "failed", "interrupted", "skipped"]
                .iter()
                .any(|result| what.starts_with(&format!("{result} (")) && what.contains(" s)"));
            (what == "started" || ended).then(|| StepLine {
                clock,
                step: step.to_string(),
                what: what.to_string(),
            })
        })
        .collect()
}

/// Checks a real run's plain progress against its journal: every step
/// has a start line and then an end line with its result, in the
/// journal's order, stamped with the journal's times (to the second).
fn assert_plain_progress(stderr: &str, record: &loadmaster::journal::RunRecord) {
    let lines = step_lines(stderr);
    let starts: Vec<&str> = lines
        .iter()
        .filter(|l| l.what == "started")
        .map(|l| l.step.as_str())
        .collect();
    let journal_order: Vec<&str> = record.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(starts, journal_order, "{stderr}");
    let day = 86_400_000;
    for step in &record.steps {
        let position = |what: &dyn Fn(&str) -> bool| {
            lines
                .iter()
                .position(|l| l.step == step.id && what(&l.what))
                .unwrap_or_else(|| panic!("no line for {} in {stderr}", step.id))
        };
        let start = position(&|w| w == "started");
        let result = step.status.word();
        let end = position(&|w| w.starts_with(&format!("{result} (")));
        assert!(start < end, "{} ends before it starts: {stderr}", step.id);
        for (line, at) in [
            (&lines[start], step.started),
            (&lines[end], step.ended.unwrap()),
        ] {
            let journal = at.millis() % day;
            let apart = line
                .clock
                .abs_diff(journal)
                .min(day - line.clock.abs_diff(journal));
            assert!(apart < 1000, "{line:?} vs the journal's {at}");
        }
    }
}

fn images_on_node(cluster: &TestCluster) -> String {
    cluster.exec(
        cluster.control_plane(),
        &["ctr", "-n", "k8s.io", "images", "ls", "-q"],
    )
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn up_builds_within_the_budget_and_delivers_into_the_nodes() {
    let _exclusive = exclusive();
    for kind in engines_under_test() {
        let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
        let base = unique_name("localhost/lmt-img");
        let greeter = format!("{base}-greeter:1");
        let shell = format!("{base}-shell:1");
        let _built = Built {
            kind,
            names: vec![greeter.clone(), shell.clone()],
        };
        let images = images_yaml(&greeter, &shell);

        // A budget that fits one build at a time: two batches, in turn.
        let small = TestPlan::write(&plan_text(&cluster, &images, "", "300MiB"));
        // stderr is a pipe: `auto` progress is plain lines.
        let out = small.command("up", &[]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "up on {kind}: {stderr}");
        let record = small.last_run();
        assert_eq!(record.status, RunStatus::Succeeded);
        assert_plain_progress(&stderr, &record);
        // Delivery shows its bytes.
        for image in [&greeter, &shell] {
            let delivered = format!("{image} on {}: loaded (", cluster.control_plane());
            assert!(
                stderr.lines().any(|l| l.contains(&delivered)
                    && l.contains(" sent, ")
                    && clock_millis(&l[..12]).is_some()),
                "{kind}: {stderr}"
            );
        }
        assert_eq!(
            scheduled_builds(&record.events),
            [greeter.clone(), shell.clone()],
            "{kind}"
        );
        // 256 MiB each within 300 MiB: one after the other, in plan order.
        let first = step_times(&record, &format!("build/{greeter}"));
        let second = step_times(&record, &format!("build/{shell}"));
        assert!(
            first.1 <= second.0,
            "{kind}: builds overlapped: {first:?} {second:?}"
        );
        let waited = record
            .steps
            .iter()
            .find(|s| s.id == format!("build/{shell}"))
            .map(|s| s.waits.iter().map(|w| w.wait.clone()).collect::<Vec<_>>());
        assert!(
            waited.is_some_and(|w| w.contains(&Wait::MemoryBudget)),
            "{kind}: {:?}",
            record.steps
        );
        for image in [&greeter, &shell] {
            let step = record
                .steps
                .iter()
                .find(|s| s.id == format!("deliver/{image}"));
            assert!(
                step.is_some_and(|s| s.error.is_none()),
                "{kind}: {:?}",
                record.steps
            );
        }
        // What each node was sent is in the journal, for reports.
        let deliveries = loadmaster::report::RunReport::load(&record.dir)
            .unwrap()
            .deliveries;
        for image in [&greeter, &shell] {
            assert!(
                deliveries.iter().any(|d| d.image == *image
                    && d.node == cluster.control_plane()
                    && d.result == "loaded"
                    && d.bytes_sent > 0),
                "{kind}: {deliveries:?}"
            );
        }
        let on_node = images_on_node(&cluster);
        for image in [&greeter, &shell] {
            let reference = loadmaster::archive::normalize_reference(image)
                .unwrap()
                .to_string();
            assert!(
                on_node.lines().any(|l| l == reference),
                "{kind}: {reference} not in {on_node}"
            );
        }
        // The greeter was built with its build argument, the shell with its target.
        let run = |image: &str, cmd: &str| {
            let out = engine_output(
                kind,
                &["run", "--rm", "--network", "none", image, "-c", cmd],
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        assert_eq!(run(&greeter, "echo $GREETING"), "hello", "{kind}");
        assert_eq!(run(&shell, "echo ${GREETING:-none}"), "none", "{kind}");
        assert!(
            record
                .samples
                .iter()
                .any(|s| s.nodes.iter().any(|n| n.node == cluster.control_plane())),
            "{kind}: the monitor did not sample the cluster's node"
        );

        // A budget that fits both: one batch.
        let large = TestPlan::write(&plan_text(&cluster, &images, "", "64GiB"));
        let out = large
            .command("up", &["-o", "json", "--progress", "none"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "up on {kind}: {stderr}");
        assert!(step_lines(&stderr).is_empty(), "{kind}: {stderr}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["result"], "succeeded", "{kind}: {report}");
        // Both fit: they ran side by side.
        let record = large.last_run();
        let first = step_times(&record, &format!("build/{greeter}"));
        let second = step_times(&record, &format!("build/{shell}"));
        assert!(
            first.0 < second.1 && second.0 < first.1,
            "{kind}: builds did not overlap: {first:?} {second:?}"
        );
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_failing_test_gives_its_exit_code_a_diagnosis_and_keeps_the_cluster() {
    let _exclusive = exclusive();
    for kind in engines_under_test() {
        let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
        let test = "test:\n  command: echo \"$GREETING from the test\"; echo 'cannot reach the service' >&2; exit 7\n  env:\n    GREETING: hello\n  timeout: 30s\n";
        let plan = TestPlan::write(&plan_text(&cluster, "", test, "1GiB"));

        let out = plan.command("test", &[]).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(7),
            "{kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "hello from the test\n",
            "{kind}"
        );

        let out = plan.command("run", &[]).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(7),
            "{kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let record = plan.last_run();
        assert_eq!(record.status, RunStatus::Failed, "{kind}");
        let test_step = record.steps.iter().find(|s| s.id == "test").unwrap();
        assert_eq!(
            test_step.error.as_deref(),
            Some("the test failed (exit status 7)")
        );
        let exit = record.events.iter().find_map(|e| match &e.body {
            EventBody::Command {
                exit, stderr_tail, ..
            } if e.step.as_deref() == Some("test") => Some((exit.code, stderr_tail.clone())),
            _ => None,
        });
        assert_eq!(
            exit,
            Some((Some(7), "cannot reach the service\n".to_string())),
            "{kind}"
        );
        let log = std::fs::read_to_string(record.dir.join("artifacts/test.log")).unwrap();
        assert!(
            log.contains("hello from the test") && log.contains("cannot reach the service"),
            "{log}"
        );
        let diagnosis: serde_json::Value =
            serde_json::from_slice(&std::fs::read(record.dir.join("diagnosis.json")).unwrap())
                .unwrap();
        assert_eq!(diagnosis["outcome"], "failure", "{kind}: {diagnosis:#}");
        assert_eq!(diagnosis["failed"]["exit_code"], 7, "{kind}: {diagnosis:#}");
        assert!(
            diagnosis["failed"]["command"]
                .as_str()
                .is_some_and(|c| c.starts_with("sh -c")),
            "{kind}: {diagnosis:#}"
        );
        assert!(record.dir.join("diagnosis.md").is_file());
        // This real failed run's report puts the failing step and its
        // diagnosis first, and its JUnit marks the step failed.
        let dir = record.dir.to_str().unwrap();
        let out = support::loadmaster(&["report", dir, "--format", "md"]);
        let summary = String::from_utf8_lossy(&out.stdout);
        let diagnosed = diagnosis["summary"].as_str().unwrap();
        assert!(
            out.status.success() && summary.contains("**failed**") && summary.contains(diagnosed),
            "{kind}: {summary}"
        );
        let out = support::loadmaster(&["report", dir, "--format", "junit"]);
        let junit = String::from_utf8_lossy(&out.stdout);
        assert!(junit.contains("<failure"), "{kind}: {junit}");
        let node_log = record
            .dir
            .join(format!("logs/node-{}.log", cluster.control_plane()));
        assert!(node_log.is_file(), "{kind}: node logs not gathered");
        // Kept on failure: the plan's default, and an existing cluster anyway.
        let nodes = engine_output(
            kind,
            &[
                "ps",
                "-q",
                "--filter",
                &format!("name={}", cluster.control_plane()),
            ],
        );
        assert!(!nodes.stdout.is_empty(), "{kind}: the node is gone");
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_passing_test_sees_its_env_and_keeps_its_artifacts() {
    let _exclusive = exclusive();
    for kind in engines_under_test() {
        let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
        let test = "test:\n  command: mkdir -p out && echo \"$GREETING\" > out/result.txt && echo \"$GREETING on stdout\"\n  env:\n    GREETING: hello\n  timeout: 30s\n  artifacts:\n    - out/result.txt\n";
        let plan = TestPlan::write(&plan_text(&cluster, "", test, "1GiB"));
        let out = plan.command("run", &["-o", "json"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{kind}: {stderr}");
        // stdout is the report alone; the test's stdout went to stderr.
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["result"], "succeeded", "{kind}: {report}");
        assert!(stderr.contains("\nhello on stdout\n"), "{kind}: {stderr}");
        let record = plan.last_run();
        assert_eq!(record.status, RunStatus::Succeeded);
        let kept = std::fs::read_to_string(record.dir.join("artifacts/result.txt")).unwrap();
        assert_eq!(kept, "hello\n");
        assert!(!record.dir.join("diagnosis.json").exists());
        // Delete on success is the default, but an existing cluster stays.
        let down = record.steps.iter().find(|s| s.id == "down");
        assert!(
            down.is_some_and(|s| s.error.is_none()),
            "{:?}",
            record.steps
        );
        assert!(
            !engine_output(
                kind,
                &[
                    "ps",
                    "-q",
                    "--filter",
                    &format!("name={}", cluster.control_plane())
                ]
            )
            .stdout
            .is_empty()
        );
    }
}

/// Processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let cmdline = std::fs::read(entry.ok()?.path().join("cmdline")).ok()?;
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            text.contains(marker).then_some(text)
        })
        .collect()
}

fn wait_for(what: &str, deadline: Duration, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn sigterm_stops_the_test_and_ends_the_journal_interrupted() {
    let _exclusive = exclusive();
    for kind in engines_under_test() {
        let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
        let marker = format!(
            "{}.{}",
            300 + std::process::id() % 600,
            std::process::id() % 1000
        );
        let test = format!("test:\n  command: sleep {marker}; echo never\n  timeout: 5m\n");
        let plan = TestPlan::write(&plan_text(&cluster, "", &test, "1GiB"));
        let mut child = plan
            .command("run", &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for("the test to start", Duration::from_secs(60), || {
            !processes_with(&format!("sleep {marker}")).is_empty()
        });
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(128 + 15), "{kind}");
        assert!(
            processes_with(&format!("sleep {marker}")).is_empty(),
            "{kind}: the test's sleep is still running"
        );
        let record = plan.last_run();
        assert_eq!(record.status, RunStatus::Interrupted, "{kind}");
        assert!(record.damage.is_empty(), "{kind}: {:?}", record.damage);
        let last = record.events.last().unwrap();
        assert_eq!(
            last.body,
            EventBody::RunEnd {
                result: Outcome::Interrupted
            },
            "{kind}"
        );
        let test_step = record.steps.iter().find(|s| s.id == "test").unwrap();
        assert_eq!(
            test_step.status,
            loadmaster::journal::StepStatus::Interrupted
        );
        // The report of this real interrupted run renders and says so.
        let out = support::loadmaster(&["report", record.dir.to_str().unwrap(), "--format", "md"]);
        let summary = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && summary.contains("interrupted"),
            "{kind}: {summary}"
        );
        // Interrupted: no teardown was attempted.
        assert!(
            record.steps.iter().all(|s| s.id != "down"),
            "{:?}",
            record.steps
        );
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_failing_build_fails_up_with_its_log_and_a_diagnosis() {
    let _exclusive = exclusive();
    for kind in engines_under_test() {
        let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
        let image = format!("{}:1", unique_name("localhost/lmt-img"));
        let _built = Built {
            kind,
            names: vec![image.clone()],
        };
        let images = format!(
            "images:\n  - name: {image}\n    build:\n      context: images/greeter\n      dockerfile: images/greeter/Broken.Dockerfile\n      timeout: 1m\n"
        );
        let plan = TestPlan::write(&plan_text(&cluster, &images, "", "1GiB"));
        std::fs::write(
            plan.file.with_file_name("images/greeter/Broken.Dockerfile"),
            "FROM scratch\nCOPY no-such-file /no-such-file\n",
        )
        .unwrap();
        let out = plan.command("up", &[]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{kind}: {stderr}");
        assert!(
            stderr.contains(&format!("building {image} failed (exit status")),
            "{kind}: {stderr}"
        );
        let record = plan.last_run();
        assert_eq!(record.status, RunStatus::Failed);
        let build = record
            .steps
            .iter()
            .find(|s| s.id == format!("build/{image}"))
            .unwrap();
        assert_eq!(build.status, loadmaster::journal::StepStatus::Failed);
        // Not a transient error: tried once, and nothing delivered after it.
        assert_eq!(build.commands, 1, "{kind}");
        assert!(
            record.steps.iter().all(|s| !s.id.starts_with("deliver/")),
            "{:?}",
            record.steps
        );
        let log = std::fs::read_dir(record.dir.join("logs"))
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().starts_with("build-"))
            .expect("the build's log");
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert!(text.contains("no-such-file"), "{kind}: {text}");
        assert!(
            record.dir.join("diagnosis.md").is_file()
                && record.dir.join("diagnosis.json").is_file()
        );
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_deploy_step_against_an_unreachable_api_server_fails_with_kubectls_words() {
    let _exclusive = exclusive();
    let Some(kind) = engines_under_test().into_iter().next() else {
        return;
    };
    if !loadmaster::process::on_path("kubectl") {
        eprintln!("note: kubectl is not on PATH: skipping the deploy failure test");
        return;
    }
    let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
    let deploy =
        "deploy:\n  - name: config\n    manifests:\n      - config.yaml\n    namespace: e2e\n";
    let plan = TestPlan::write(&plan_text(&cluster, deploy, "", "1GiB"));
    let dir = plan.file.parent().unwrap().to_path_buf();
    std::fs::write(
        dir.join("config.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lmt\ndata:\n  a: b\n",
    )
    .unwrap();
    // Port 9 (discard) on loopback: nothing listens, the connection is refused.
    let kubeconfig = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kubectl/unreachable.kubeconfig");
    let out = plan
        .command("up", &[])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("kubectl --namespace e2e apply -f"),
        "{stderr}"
    );
    assert!(stderr.contains("refused"), "{stderr}");
    let record = plan.last_run();
    let step = record
        .steps
        .iter()
        .find(|s| s.id == "deploy/config")
        .unwrap();
    assert_eq!(step.status, loadmaster::journal::StepStatus::Failed);
    let argv = record.events.iter().find_map(|e| match &e.body {
        EventBody::Command { argv, .. } if e.step.as_deref() == Some("deploy/config") => {
            Some(argv.clone())
        }
        _ => None,
    });
    let manifest = dir.join("config.yaml").display().to_string();
    assert_eq!(
        argv,
        Some(vec![
            "kubectl".into(),
            "--namespace".into(),
            "e2e".into(),
            "apply".into(),
            "-f".into(),
            manifest
        ])
    );
    assert!(record.dir.join("diagnosis.json").is_file());
    assert!(
        record.dir.join("logs/events.txt").is_file(),
        "the cluster's events were not asked for"
    );
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn without_kind_up_and_down_of_a_missing_cluster_say_what_to_do() {
    let _exclusive = exclusive();
    let Some(kind) = engines_under_test().into_iter().next() else {
        return;
    };
    if loadmaster::process::on_path("kind") {
        eprintln!("note: kind is on PATH: skipping the test of down without it");
        return;
    }
    let plan = TestPlan::write(&format!(
        "apiVersion: loadmaster/v1\ncluster:\n  name: {}\n  engine: {kind}\ntest:\n  command: 'true'\n",
        unique_name("lmt")
    ));
    let out = plan.command("up", &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // The pre-flight stops it, before the cluster step would.
    assert!(
        stderr.contains("the kind CLI is not on PATH to create kind cluster"),
        "{stderr}"
    );
    assert!(stderr.contains("install kind"), "{stderr}");
    let out = plan.command("test", &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("bring it up first: `loadmaster up -f"),
        "{stderr}"
    );
    let out = plan.command("down", &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the kind CLI is not on PATH"), "{stderr}");
    assert!(stderr.contains("install kind"), "{stderr}");
    assert_eq!(plan.last_run().status, RunStatus::Failed);
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_run_that_stops_before_its_cluster_exists_keeps_nothing_and_triages_nothing() {
    let Some(kind) = engines_under_test().into_iter().next() else {
        eprintln!("skipped: no engine under test (LOADMASTER_TEST_ENGINES)");
        return;
    };
    if loadmaster::process::on_path("kind") {
        eprintln!("skipped: kind is on PATH, `run` would create the cluster");
        return;
    }
    let cluster = unique_name("lmt");
    let plan = TestPlan::write(&format!(
        "apiVersion: loadmaster/v1\ncluster:\n  name: {cluster}\n  engine: {kind}\ntest:\n  command: 'true'\n"
    ));
    for verb in ["run", "test"] {
        let out = plan.command(verb, &[]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{verb}: {stderr}");
        assert!(
            stderr.contains(&format!("no kind cluster {cluster}"))
                || stderr.contains("kind CLI is not on PATH"),
            "{verb}: {stderr}"
        );
        // The error says it all: no diagnosis that finds no failure.
        assert!(!stderr.contains("diagnosis:"), "{verb}: {stderr}");
        let record = plan.last_run();
        assert!(
            !record.dir.join("diagnosis.md").exists(),
            "{verb}: {stderr}"
        );
        if verb == "run" {
            assert!(!stderr.contains("keeping cluster"), "{stderr}");
            assert!(
                stderr.contains(&format!("no cluster {cluster} to keep or delete")),
                "{stderr}"
            );
        }
    }
}

/// The findings of a run's pre-flight, or who skipped it.
fn preflight_of(record: &loadmaster::journal::RunRecord) -> &EventBody {
    record
        .events
        .iter()
        .map(|event| &event.body)
        .find(|body| {
            matches!(
                body,
                EventBody::Preflight { .. } | EventBody::PreflightSkipped { .. }
            )
        })
        .expect("a preflight event")
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn up_of_a_plan_the_engine_cannot_hold_stops_at_the_preflight_unless_skipped() {
    let Some(kind) = engines_under_test().into_iter().next() else {
        eprintln!("skipped: no engine under test (LOADMASTER_TEST_ENGINES)");
        return;
    };
    let image = format!("localhost/{}:1", unique_name("lmt-huge"));
    // Built by the runs that skip the pre-flight, below.
    let _built = support::BuiltImage(kind, image.clone());
    let plan = TestPlan::write(&format!(
        "apiVersion: loadmaster/v1\ncluster:\n  name: {}\n  engine: {kind}\n  existing: true\nimages:\n  - name: {image}\n    build:\n      context: images/greeter\n      memory: 65536GiB\ntest:\n  command: 'true'\n",
        unique_name("lmt")
    ));
    let out = plan
        .command("up", &["--progress", "plain"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("pre-flight check(s) failed: nothing was built or created"),
        "{stderr}"
    );
    assert!(stderr.contains("  memory: "), "{stderr}");
    assert!(stderr.contains("fix: "), "{stderr}");
    let record = plan.last_run();
    let steps: Vec<&str> = record.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(steps, ["preflight"], "{stderr}");
    let EventBody::Preflight { findings, .. } = preflight_of(&record) else {
        panic!("the pre-flight ran: {:?}", record.events);
    };
    let memory = findings
        .iter()
        .find(|f| f.id == "memory")
        .expect("a memory finding");
    assert_eq!(
        memory.status,
        loadmaster::finding::Status::Fail,
        "{memory:?}"
    );
    assert!(memory.needed_bytes.unwrap() > 65536u64 << 30, "{memory:?}");
    assert!(
        !engine_output(kind, &["image", "inspect", &image])
            .status
            .success(),
        "{image} was built"
    );
    assert!(!record.dir.join("diagnosis.md").exists());
    for (format, expected) in [
        ("markdown", "| `memory` | failed |"),
        ("html", "<h2>Pre-flight</h2>"),
    ] {
        let report = Command::new(env!("CARGO_BIN_EXE_loadmaster"))
            .args(["report", "--root"])
            .arg(&plan.root)
            .args(["--format", format])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&report.stdout);
        assert!(text.contains(expected), "{format}: {text}");
    }

    // Those who know better go on: the next step (the cluster, missing
    // here) runs, and the journal says who skipped the checks.
    for (flag, env, by) in [
        (Some("--skip-preflight"), None, "--skip-preflight"),
        (None, Some("1"), "LOADMASTER_SKIP_PREFLIGHT=1"),
    ] {
        let mut command = plan.command("up", flag.as_slice());
        if let Some(value) = env {
            command.env("LOADMASTER_SKIP_PREFLIGHT", value);
        }
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("pre-flight checks skipped ({by})")),
            "{stderr}"
        );
        let record = plan.last_run();
        // The build ran beside the cluster step; the delivery, which needs
        // the cluster, was cancelled.
        let steps: Vec<&str> = record.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(steps[0], "preflight", "{stderr}");
        assert!(steps.contains(&"cluster"), "{stderr}");
        assert!(
            steps[1..]
                .iter()
                .all(|s| *s == "cluster" || s.starts_with("build/")),
            "{stderr}"
        );
        assert!(
            record
                .cancelled
                .iter()
                .any(|c| c.step.starts_with("deliver/")
                    && c.because == "cluster failed and it needs it"),
            "{:?}",
            record.cancelled
        );
        assert_eq!(
            preflight_of(&record),
            &EventBody::PreflightSkipped { by: by.to_string() }
        );
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_delivery_into_a_full_node_is_diagnosed_as_disk_full() {
    let _exclusive = exclusive();
    for kind in engines_under_test() {
        let cluster = TestCluster::start(
            kind,
            0,
            &NodeOptions {
                containerd_tmpfs: Some("32m".into()),
                ..NodeOptions::default()
            },
        );
        let image = support::TestImage::named(kind);
        image.build(&[support::Layer {
            bytes: 64 << 20,
            seed: 41,
        }]);
        // No build, pull or archive: the image is taken from the engine.
        let images = format!("images:\n  - name: {}\n", image.name);
        let plan = TestPlan::write(&plan_text(&cluster, &images, "", "1GiB"));
        let out = plan.command("up", &[]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{kind}: {stderr}");
        let record = plan.last_run();
        let step = record
            .steps
            .iter()
            .find(|s| s.id == format!("deliver/{}", image.name))
            .unwrap();
        assert_eq!(
            step.status,
            loadmaster::journal::StepStatus::Failed,
            "{kind}"
        );
        assert!(
            step.error
                .as_deref()
                .unwrap_or_default()
                .contains(cluster.control_plane()),
            "{kind}: the failed node is named: {:?}",
            step.error
        );
        let report = loadmaster::report::RunReport::load(&record.dir).unwrap();
        assert!(
            report
                .deliveries
                .iter()
                .any(|d| d.node == cluster.control_plane() && d.result == "failed"),
            "{kind}: the failed delivery is recorded: {:?}",
            report.deliveries
        );
        let diagnosis: serde_json::Value =
            serde_json::from_slice(&std::fs::read(record.dir.join("diagnosis.json")).unwrap())
                .unwrap();
        assert_eq!(
            diagnosis["root_cause"]["class"], "disk-full",
            "{kind}: {diagnosis:#}"
        );
        let markdown = std::fs::read_to_string(record.dir.join("diagnosis.md")).unwrap();
        assert!(!markdown.is_empty());
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn the_local_example_runs_end_to_end() {
    let _exclusive = exclusive();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/local");
    for kind in engines_under_test() {
        let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
        // The example with this test's cluster (and so unique image names)
        // on this engine.
        let text = std::fs::read_to_string(example.join("loadmaster.yaml"))
            .unwrap()
            .replace("lm-local", &cluster.name)
            .replace("engine: podman", &format!("engine: {kind}"));
        let plan = TestPlan::write(&text);
        let greeter_dir = plan.file.with_file_name("images/greeter");
        std::fs::copy(
            example.join("images/greeter/Dockerfile"),
            greeter_dir.join("Dockerfile"),
        )
        .unwrap();
        let built = Built {
            kind,
            names: vec![
                format!("localhost/{}-greeter:1", cluster.name),
                format!("localhost/{}-shell:1", cluster.name),
            ],
        };
        let out = plan.command("run", &["-o", "json"]).output().unwrap();
        assert!(
            out.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["result"], "succeeded", "{report}");
        assert_eq!(report["testExitCode"], 0, "{report}");
        let record = plan.last_run();
        let kept = std::fs::read_to_string(record.dir.join("artifacts/result.txt")).unwrap();
        assert_eq!(kept, format!("hello from {}\n", cluster.name));
        // The run's report, from its journal: every step, every delivery.
        let out = support::loadmaster(&["report", record.dir.to_str().unwrap(), "--format", "md"]);
        let summary = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && summary.contains("**succeeded**"),
            "{kind}: {summary}"
        );
        for step in &record.steps {
            assert!(
                summary.contains(&format!("| `{}` | succeeded |", step.id)),
                "{kind}: {summary}"
            );
        }
        for name in &built.names {
            assert!(
                summary.contains(&format!(
                    "| `{name}` | {} | loaded |",
                    cluster.control_plane()
                )),
                "{kind}: {summary}"
            );
        }
        let on_node = images_on_node(&cluster);
        for name in &built.names {
            let reference = loadmaster::archive::normalize_reference(name)
                .unwrap()
                .to_string();
            assert!(
                on_node.lines().any(|l| l == reference),
                "{kind}: {reference} not in {on_node}"
            );
        }
    }
}

/// Contract test: recorded behaviour. No API server runs here, so kubectl
/// is the stand-in of `tests/fixtures/kubectl/` (it answers loadmaster's
/// command lines as kubectl does, and fails any other); the runner, its
/// test cluster and the gathering are real.
#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_failed_deploy_gathers_the_logs_of_its_unready_pods() {
    let _exclusive = exclusive();
    let Some(kind) = engines_under_test().into_iter().next() else {
        return;
    };
    let recorded = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kubectl");
    let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
    let deploy = "deploy:\n  - name: app\n    manifests:\n      - app.yaml\n    namespace: e2e\n    wait:\n      - rollout: deployment/api\n        timeout: 2s\n";
    let plan = TestPlan::write(&plan_text(&cluster, deploy, "", "1GiB"));
    let dir = plan.file.parent().unwrap().to_path_buf();
    std::fs::write(dir.join("app.yaml"), "# applied by the stand-in\n").unwrap();
    let calls = dir.join("kubectl-calls");
    let path = format!(
        "{}:{}",
        recorded.join("bin").display(),
        std::env::var("PATH").unwrap()
    );
    let out = plan
        .command("up", &[])
        .env("PATH", path)
        .env("KUBECONFIG", dir.join("kubeconfig"))
        .env("LM_FAKE_KUBECTL_CALLS", &calls)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("did not see its resources ready"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Back-off restarting failed container api"),
        "{stderr}"
    );
    let calls = std::fs::read_to_string(&calls).unwrap();
    assert!(!calls.contains("no recording"), "{calls}");

    let record = plan.last_run();
    let logs = record.dir.join("logs");
    let read = |file: &str| {
        std::fs::read_to_string(logs.join(file)).unwrap_or_else(|e| panic!("logs/{file}: {e}"))
    };
    let recording = |file: &str| std::fs::read_to_string(recorded.join(file)).unwrap();
    // The crash-looping container: its log and its previous instance's.
    let api = "pod-e2e-api-6b8f7c9d4-x2x9q";
    assert_eq!(
        read(&format!("{api}-api.log")),
        recording("logs/api-6b8f7c9d4-x2x9q-api.log")
    );
    assert_eq!(
        read(&format!("{api}-api-previous.log")),
        recording("logs/api-6b8f7c9d4-x2x9q-api-previous.log")
    );
    // Every container of the pod, init containers too; no previous
    // instance for those that never restarted.
    assert!(read(&format!("{api}-wait-for-db.log")).contains("open"));
    assert!(read(&format!("{api}-proxy.log")).contains("Connection refused"));
    assert!(!logs.join(format!("{api}-proxy-previous.log")).exists());
    assert!(read(&format!("{api}-describe.txt")).contains("Restart Count:  4"));
    // A container that never started: kubectl's reason is the evidence.
    let worker = "pod-e2e-worker-5d9c8b7f6-kq4zt";
    assert!(read(&format!("{worker}-worker.log")).contains("is waiting to start"));
    assert!(read(&format!("{worker}-describe.txt")).contains("ImagePullBackOff"));
    // The failed job's pod.
    assert!(read("pod-e2e-migrate-8fj2k-migrate.log").contains("already exists"));
    // Ready, completed, and other namespaces' pods are not read.
    for pod in ["postgres-0", "seed-xk2j9", "coredns-7db6d8ff4d-lmx8r"] {
        assert!(!calls.contains(pod), "{pod} was read: {calls}");
    }
    // The listing they were chosen from is whole (larger than a tail).
    assert_eq!(read("pods.json"), recording("pods.json"));

    // The journal lists every file gathered, under the failed step.
    let listed: std::collections::BTreeMap<String, String> = record
        .events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::LogFile { path, about } => {
                assert_eq!(e.step.as_deref(), Some("deploy/app"), "{path:?}");
                Some((path.display().to_string(), about.clone()))
            }
            _ => None,
        })
        .collect();
    let on_disk: std::collections::BTreeSet<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| format!("logs/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    assert_eq!(
        listed
            .keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        on_disk
    );
    assert_eq!(
        listed[&format!("logs/{api}-api-previous.log")],
        "pod e2e/api-6b8f7c9d4-x2x9q (CrashLoopBackOff): the log of container api (its instance before the last restart)"
    );
    // Each read is a command of the step, with kubectl's exit status.
    let previous = record.events.iter().find_map(|e| match &e.body {
        EventBody::Command { argv, exit, .. } if argv.contains(&"--previous".to_string()) => {
            Some((argv.clone(), exit.code))
        }
        _ => None,
    });
    assert_eq!(
        previous,
        Some((
            loadmaster::runner::kube::Kubectl::default().pod_logs(
                "e2e",
                "api-6b8f7c9d4-x2x9q",
                "api",
                true
            ),
            Some(0)
        ))
    );
}

/// A `kubectl` that answers as a cluster with a KEP-1755 local registry
/// would. Contract test, recorded behaviour: there is no API server here,
/// so the ConfigMap request is answered with the recorded
/// `tests/fixtures/kube/recorded-local-registry-hosting-kind.json` (its
/// `localhost:5001` replaced by the test registry), `apply -k DIR` is
/// the real `kubectl kustomize DIR`, whose output is kept as what would
/// have been applied, and the pre-flight's `version --client` is the real
/// kubectl's. Anything else fails, naming the command.
struct RecordedKubectl {
    dir: TempDir,
    real: String,
    registry: String,
}

const RECORDED_KUBECTL: &str = r#"#!/bin/sh
# Contract test (recorded behaviour): see tests/fixtures/kube/README.md.
echo "$*" >> "$LMT_KUBECTL_DIR/argv"
case "$*" in
  "version --client -o json") "$LMT_REAL_KUBECTL" version --client -o json ;;
  *"get configmap local-registry-hosting -o json")
    sed "s/localhost:5001/$LMT_REGISTRY/g" "$LMT_KUBECTL_FIXTURE" ;;
  *"apply -k "*)
    for last; do :; done
    "$LMT_REAL_KUBECTL" kustomize "$last" >> "$LMT_KUBECTL_DIR/applied.yaml" || exit 1
    echo "deployment.apps/app created" ;;
  *) echo "error: contract test: no recorded answer for: kubectl $*" >&2; exit 1 ;;
esac
"#;

impl RecordedKubectl {
    fn install(registry: &str) -> RecordedKubectl {
        use std::os::unix::fs::PermissionsExt;
        let real = Command::new("sh")
            .args(["-c", "command -v kubectl"])
            .output()
            .unwrap();
        let dir = TempDir::new("lmt-kubectl");
        let script = dir.path.join("kubectl");
        std::fs::write(&script, RECORDED_KUBECTL).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        RecordedKubectl {
            dir,
            real: String::from_utf8(real.stdout).unwrap().trim().to_string(),
            registry: registry.to_string(),
        }
    }

    fn apply_env(&self, command: &mut Command) {
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/kube/recorded-local-registry-hosting-kind.json");
        let path = format!(
            "{}:{}",
            self.dir.path.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        command
            .env("PATH", path)
            .env("LMT_KUBECTL_DIR", &self.dir.path)
            .env("LMT_REAL_KUBECTL", &self.real)
            .env("LMT_REGISTRY", &self.registry)
            .env("LMT_KUBECTL_FIXTURE", fixture)
            .env_remove("KUBECONFIG");
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.path.join(file)).unwrap_or_default()
    }
}

/// The digest of the manifest the registry serves for `repository:tag`,
/// computed here from its bytes (curl, not loadmaster's client).
fn registry_manifest_digest(registry: &TestRegistry, repository: &str, tag: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-sf",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
            &format!("http://{}/v2/{repository}/manifests/{tag}", registry.host()),
        ])
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "the registry has no {repository}:{tag}"
    );
    loadmaster::archive::Digest::of(&out.stdout).to_string()
}

fn registry_deliveries(record: &loadmaster::journal::RunRecord) -> Vec<EventBody> {
    record
        .events
        .iter()
        .filter(|e| matches!(&e.body, EventBody::Delivery { path, .. } if path == "registry"))
        .map(|e| e.body.clone())
        .collect()
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn registry_delivery_pushes_to_a_real_registry_and_deploys_the_pushed_digest() {
    let _exclusive = exclusive();
    if !loadmaster::process::on_path("kubectl") {
        eprintln!("note: kubectl is not on PATH: skipping the registry delivery test");
        return;
    }
    for kind in engines_under_test() {
        let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
        let registry = TestRegistry::start();
        let image = support::TestImage::named(kind);
        image.build(&[support::Layer {
            bytes: 2 << 20,
            seed: 61,
        }]);
        let kubectl = RecordedKubectl::install(&registry.host());
        // Beside the image the engine has, one whose build takes longer
        // than the other's push, and that nothing deployed names.
        let slow = format!("{}:1", unique_name("localhost/lmt-slow-push"));
        let _built = Built {
            kind,
            names: vec![slow.clone()],
        };
        let plan = TestPlan::write("");
        let slow_build = sleeper_images(&plan, &[(&slow, Some(8))]);
        let slow_build = slow_build.trim_start_matches("images:\n");
        let plan_with = |registry_line: &str| {
            format!(
                "apiVersion: loadmaster/v1\ncluster:\n  name: {}\n  engine: {kind}\n  existing: true\n  delivery:\n    mode: registry\n{registry_line}images:\n  - name: {}\n{slow_build}deploy:\n  - name: app\n    manifests:\n      - app.yaml\n",
                cluster.name, image.name
            )
        };
        std::fs::write(
            &plan.file,
            plan_with(&format!("    registry: {}/lmt\n", registry.host())),
        )
        .unwrap();
        let manifest = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: app\nspec:\n  containers:\n    - name: app\n      image: {}\n    - name: other\n      image: busybox:1.36\n",
            image.name
        );
        std::fs::write(plan.file.with_file_name("app.yaml"), &manifest).unwrap();

        let mut up = plan.command("up", &["-o", "json"]);
        kubectl.apply_env(&mut up);
        let out = up.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{kind}: {stderr}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let pushed = &report["pushed"][0];
        let (repository, tag) = image.name.split_once(':').unwrap();
        let repository = format!("lmt/{repository}");
        assert_eq!(
            pushed["pushed"],
            format!("{}/{repository}:{tag}", registry.host()),
            "{kind}: {report:#}"
        );
        // The registry has the image, under the digest loadmaster reports.
        let digest = registry_manifest_digest(&registry, &repository, tag);
        assert_eq!(pushed["digest"], digest.as_str(), "{kind}: {report:#}");
        let pinned = format!("{}/{repository}@{digest}", registry.host());
        assert_eq!(pushed["deployedAs"], pinned.as_str(), "{kind}");
        assert!(
            registry.requests().iter().any(|r| r.method == "PUT"
                && r.target == format!("/v2/{repository}/manifests/{tag}")
                && r.status == 201),
            "{kind}: {:?}",
            registry.requests()
        );
        // Each image is its own push step, after the registry is found
        // once: the image the engine has is pushed, and the app that names
        // it deployed, while the other image still builds.
        let record = plan.last_run();
        assert_needs_respected(&record);
        let step = |id: &str| {
            record
                .steps
                .iter()
                .find(|s| s.id == id)
                .unwrap_or_else(|| panic!("{kind}: no step {id}: {:?}", record.steps))
        };
        let (pushing, building) = (
            step(&format!("deliver/{}", image.name)),
            step(&format!("build/{slow}")),
        );
        assert_eq!(pushing.needs, ["registry"], "{kind}");
        assert_eq!(
            step(&format!("deliver/{slow}")).needs,
            ["registry".to_string(), format!("build/{slow}")],
            "{kind}"
        );
        let slow_built = building.ended.unwrap();
        assert!(
            pushing.started < slow_built && pushing.ended.unwrap() < slow_built,
            "{kind}: the push waited for build/{slow}: {:?}",
            record.steps
        );
        assert!(step("deploy/app").started < slow_built, "{kind}");
        assert_eq!(
            record.steps.iter().filter(|s| s.id == "registry").count(),
            1
        );
        // The journal: a registry delivery with the pushed name and digest.
        let deliveries = registry_deliveries(&record);
        assert_eq!(deliveries.len(), 2, "{kind}: {deliveries:?}");
        let deliveries: Vec<EventBody> = deliveries
            .into_iter()
            .filter(
                |d| matches!(d, EventBody::Delivery { image: pushed, .. } if pushed == &image.name),
            )
            .collect();
        match deliveries.as_slice() {
            [
                EventBody::Delivery {
                    result,
                    pushed,
                    digest: recorded,
                    blobs_sent,
                    node,
                    ..
                },
            ] => {
                assert_eq!(result, "pushed", "{kind}");
                assert_eq!(node, &registry.host());
                assert_eq!(recorded.as_deref(), Some(digest.as_str()), "{kind}");
                assert_eq!(
                    pushed.as_deref(),
                    Some(format!("{}/{repository}:{tag}", registry.host()).as_str())
                );
                assert!(*blobs_sent >= 2, "{kind}: config and layer: {blobs_sent}");
            }
            other => panic!("{kind}: one registry delivery, not {other:?}"),
        }
        // What was applied names the pushed digest; the user's file is as
        // it was, and the image not in the plan is left alone.
        let applied = kubectl.read("applied.yaml");
        assert!(
            applied.contains(&format!("image: {pinned}")),
            "{kind}: {applied}"
        );
        assert!(applied.contains("image: busybox:1.36"), "{kind}: {applied}");
        assert_eq!(
            std::fs::read_to_string(plan.file.with_file_name("app.yaml")).unwrap(),
            manifest
        );
        // No node was loaded.
        let reference = loadmaster::archive::normalize_reference(&image.name)
            .unwrap()
            .to_string();
        assert!(
            !images_on_node(&cluster).lines().any(|l| l == reference),
            "{kind}: the node was loaded"
        );
        let md = support::loadmaster(&["report", record.dir.to_str().unwrap(), "--format", "md"]);
        let md = String::from_utf8_lossy(&md.stdout);
        assert!(
            md.contains(&format!(
                "pushed as {}/{repository}:{tag} ({pinned})",
                registry.host()
            )),
            "{kind}: {md}"
        );

        // Without a registry in the plan, the cluster's KEP-1755 ConfigMap
        // names it (host only, no prefix): the same image, the same digest,
        // under the repository without the plan's prefix.
        std::fs::write(&plan.file, plan_with("")).unwrap();
        let mut up = plan.command("up", &["-o", "json"]);
        kubectl.apply_env(&mut up);
        let out = up.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{kind}: {stderr}");
        assert!(
            stderr.contains("as ConfigMap kube-public/local-registry-hosting says (KEP-1755)"),
            "{kind}: {stderr}"
        );
        assert!(
            kubectl
                .read("argv")
                .contains("--namespace kube-public get configmap local-registry-hosting -o json"),
            "{kind}"
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let unprefixed = repository.trim_start_matches("lmt/");
        let pinned = format!("{}/{unprefixed}@{digest}", registry.host());
        assert_eq!(report["pushed"][0]["deployedAs"], pinned.as_str(), "{kind}");
        assert_eq!(registry_manifest_digest(&registry, unprefixed, tag), digest);
        let applied = kubectl.read("applied.yaml");
        assert!(
            applied.contains(&format!("image: {pinned}")),
            "{kind}: {applied}"
        );
    }
}

/// A kubeconfig with two contexts: `staging` (the plan's, an API server
/// that refuses connections on 127.0.0.1:9) and `other`, the current one.
const TWO_CONTEXTS: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: staging\n  cluster:\n    server: https://127.0.0.1:9\n- name: other\n  cluster:\n    server: https://127.0.0.2:9\ncontexts:\n- name: staging\n  context:\n    cluster: staging\n    user: u\n- name: other\n  context:\n    cluster: other\n    user: u\ncurrent-context: other\nusers:\n- name: u\n  user:\n    token: t\n";

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn an_existing_cluster_is_reached_through_its_context_and_never_touched() {
    let Some(kind) = engines_under_test().into_iter().next() else {
        return;
    };
    if !loadmaster::process::on_path("kubectl") {
        eprintln!("note: kubectl is not on PATH: skipping the existing cluster test");
        return;
    }
    let plan_for = |context: &str| {
        format!(
            "apiVersion: loadmaster/v1\ncluster:\n  name: staging\n  engine: {kind}\n  provider: existing\n  context: {context}\n  kubeconfig: kubeconfig\n  delivery:\n    mode: registry\n    registry: registry.example.com/e2e\ndeploy:\n  - name: config\n    manifests:\n      - config.yaml\n    namespace: e2e\ntest:\n  command: kubectl config current-context > context.txt\n  artifacts:\n    - context.txt\n"
        )
    };
    let plan = TestPlan::write(&plan_for("staging"));
    let dir = plan.file.parent().unwrap().to_path_buf();
    std::fs::write(dir.join("kubeconfig"), TWO_CONTEXTS).unwrap();
    std::fs::write(
        dir.join("config.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lmt\ndata:\n  a: b\n",
    )
    .unwrap();

    // up: the context is found offline, then kubectl goes to its server.
    let out = plan
        .command("up", &[])
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("127.0.0.1:9"), "{stderr}");
    let record = plan.last_run();
    let status = |id: &str| record.steps.iter().find(|s| s.id == id).map(|s| s.status);
    assert_eq!(
        status("cluster"),
        Some(loadmaster::journal::StepStatus::Succeeded)
    );
    assert_eq!(
        status("deploy/config"),
        Some(loadmaster::journal::StepStatus::Failed)
    );
    let kubectl_calls: Vec<&Vec<String>> = record
        .events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Command { argv, .. } if argv[0] == "kubectl" => Some(argv),
            _ => None,
        })
        .collect();
    assert!(kubectl_calls.len() >= 3, "{kubectl_calls:?}");
    for argv in &kubectl_calls {
        assert_eq!(argv[1..3], ["--context", "staging"], "{argv:?}");
    }
    // No node, no kind: nothing but kubectl ran.
    assert!(
        record.events.iter().all(|e| match &e.body {
            EventBody::Command { argv, .. } => argv[0] == "kubectl",
            _ => true,
        }),
        "{:?}",
        record.events
    );

    // test: the test's own kubectl is on the plan's context, although the
    // kubeconfig's current context is another.
    let out = plan
        .command("test", &[])
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let record = plan.last_run();
    let kept = std::fs::read_to_string(record.dir.join("artifacts/context.txt")).unwrap();
    assert_eq!(kept.trim(), "staging");

    // down leaves it alone.
    let out = plan.command("down", &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("an existing cluster (context staging): loadmaster never deletes it"),
        "{stderr}"
    );

    // A context the kubeconfig lacks stops `up` at the cluster step.
    std::fs::write(&plan.file, plan_for("staging-typo")).unwrap();
    let out = plan.command("up", &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("kubeconfig context \"staging-typo\" (cluster.context) is not in"),
        "{stderr}"
    );
    assert!(stderr.contains("`kubectl config get-contexts`"), "{stderr}");
    let record = plan.last_run();
    assert_eq!(
        record
            .steps
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>(),
        ["preflight", "cluster"]
    );
}

/// Contract test: recorded behaviour (`tests/fixtures/kind/bin/kind`, a
/// stand-in answering `kind get kubeconfig` as kind does). With kind on
/// PATH the test gets kind's whole kubeconfig (over 4 KiB, more than a
/// command's kept output tail), by an absolute path: the run's root is
/// relative and the test runs in another directory. kind is told the
/// cluster's engine, which it would otherwise guess (docker first).
#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn the_test_gets_kinds_whole_kubeconfig_by_an_absolute_path() {
    let _exclusive = exclusive();
    let Some(&kind) = engines_under_test().first() else {
        return;
    };
    let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kind");
    let test = "test:\n  command: cp \"$KUBECONFIG\" ../got.yaml && case \"$KUBECONFIG\" in /*) ;; *) exit 3 ;; esac\n  workdir: sub\n  timeout: 30s\n";
    let plan = TestPlan::write(&plan_text(&cluster, "", test, "1GiB"));
    let dir = plan.file.parent().unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    let calls = dir.join("kind-calls");
    let path = format!(
        "{}:{}",
        fixtures.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_loadmaster"))
        .args(["run", "-f", "loadmaster.yaml", "--root", "runs"])
        .current_dir(dir)
        .env("PATH", path)
        .env("LM_FAKE_KIND_CALLS", &calls)
        .env_remove("KUBECONFIG")
        .env_remove("LOADMASTER_ENGINE")
        .env_remove("KIND_EXPERIMENTAL_PROVIDER")
        .env_remove("LOADMASTER_TEARDOWN")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{kind}: {stderr}");
    let recorded = std::fs::read_to_string(fixtures.join("kubeconfig.yaml")).unwrap();
    let expected = recorded.replace("CLUSTER", &cluster.name);
    assert!(expected.len() > 4096);
    let got = std::fs::read_to_string(dir.join("got.yaml")).unwrap();
    assert_eq!(got, expected, "{kind}: the kubeconfig the test saw");
    let calls = std::fs::read_to_string(&calls).unwrap();
    // The pre-flight asks kind's version; nothing else but the kubeconfig,
    // of the cluster on that engine.
    assert_eq!(
        calls,
        format!(
            "version\nKIND_EXPERIMENTAL_PROVIDER={kind} get kubeconfig --name {}\n",
            cluster.name
        ),
        "{kind}: kind was asked only for its version and the kubeconfig"
    );
}

/// `up -o json | head -1`: the reader closes stdout after the first line;
/// the run still ends (its journal), without a panic, with its own exit
/// code. Here a cluster that does not exist and no kind: exit 1.
#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn up_with_its_json_report_into_a_closed_pipe_does_not_panic() {
    let Some(kind) = engines_under_test().into_iter().next() else {
        return;
    };
    if loadmaster::process::on_path("kind") {
        eprintln!(
            "note: kind is on PATH: skipping the closed-pipe test (it needs up to fail fast)"
        );
        return;
    }
    let plan = TestPlan::write(&format!(
        "apiVersion: loadmaster/v1\ncluster:\n  name: {}\n  engine: {kind}\ntest:\n  command: 'true'\n",
        unique_name("lmt")
    ));
    let mut child = plan
        .command("up", &["-o", "json", "--progress", "plain"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `head -1` that read nothing yet: the reading end closed at once.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(1), "{stderr}");
}

/// A build that takes `NAP` seconds; `TOKEN` keeps the engine's cache from
/// skipping the sleep on a later run.
const SLEEPER: &str = "FROM scratch\nCOPY --from=localhost/loadmaster-test-node:1 /bin/busybox /bin/busybox\nARG NAP=1\nARG TOKEN=none\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo $TOKEN; /bin/busybox sleep $NAP\"]\n";

/// Plan images built from [`SLEEPER`], each `(name, seconds)`; a `None`
/// nap is a build that fails at once.
fn sleeper_images(plan: &TestPlan, images: &[(&str, Option<u32>)]) -> String {
    let dir = plan.file.parent().unwrap().join("images/sleeper");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), SLEEPER).unwrap();
    std::fs::write(
        dir.join("Broken.Dockerfile"),
        "FROM scratch\nCOPY no-such-file /no-such-file\n",
    )
    .unwrap();
    let token = unique_name("t");
    let mut text = String::from("images:\n");
    for (name, nap) in images {
        text.push_str(&format!(
            "  - name: {name}\n    build:\n      context: images/sleeper\n      memory: 64MiB\n      timeout: 2m\n"
        ));
        match nap {
            Some(nap) => text.push_str(&format!(
                "      args:\n        NAP: \"{nap}\"\n        TOKEN: {token}\n"
            )),
            None => text.push_str("      dockerfile: images/sleeper/Broken.Dockerfile\n"),
        }
    }
    text
}

/// The plan text with `images` and `deploy` in place of its images.
fn graph_plan(cluster: &TestCluster, plan: &TestPlan, images: &str, deploy: &str) {
    std::fs::write(
        &plan.file,
        plan_text(cluster, &format!("{images}{deploy}"), "", "4GiB"),
    )
    .unwrap();
}

/// `up` with kubectl replayed from recordings (a contract test:
/// `tests/fixtures/kubectl/`), since no API server runs here.
fn up_with_recorded_kubectl(plan: &TestPlan, extra: &[&str]) -> std::process::Output {
    let recorded = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kubectl");
    let dir = plan.file.parent().unwrap();
    let path = format!(
        "{}:{}",
        recorded.join("bin").display(),
        std::env::var("PATH").unwrap()
    );
    plan.command("up", extra)
        .env("PATH", path)
        .env("KUBECONFIG", dir.join("kubeconfig"))
        .env("LM_FAKE_KUBECTL_CALLS", dir.join("kubectl-calls"))
        .output()
        .unwrap()
}

/// Every step that ran started after every step it needs had ended.
fn assert_needs_respected(record: &loadmaster::journal::RunRecord) {
    for step in &record.steps {
        for need in &step.needs {
            let before = record
                .steps
                .iter()
                .find(|s| &s.id == need)
                .unwrap_or_else(|| panic!("{} needs {need}, which did not run", step.id));
            assert!(
                before.ended.is_some_and(|end| end <= step.started),
                "{} started before {need} ended: {:?}",
                step.id,
                record.steps
            );
        }
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn up_delivers_and_deploys_as_soon_as_what_they_need_is_there() {
    let _exclusive = exclusive();
    for kind in engines_under_test() {
        let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
        let base = unique_name("localhost/lmt-graph");
        let (slow, fast) = (format!("{base}-slow:1"), format!("{base}-fast:1"));
        let _built = Built {
            kind,
            names: vec![slow.clone(), fast.clone()],
        };
        let plan = TestPlan::write("");
        let images = sleeper_images(&plan, &[(&slow, Some(8)), (&fast, Some(1))]);
        let dir = plan.file.parent().unwrap();
        // `config` names no plan image; `app` names the slow one.
        std::fs::write(dir.join("config.yaml"), "apiVersion: v1\nkind: ConfigMap\n").unwrap();
        std::fs::write(
            dir.join("app.yaml"),
            format!("spec:\n  template:\n    spec:\n      containers:\n        - image: {slow}\n"),
        )
        .unwrap();
        let deploy = "deploy:\n  - name: config\n    manifests: [config.yaml]\n    namespace: e2e\n  - name: app\n    manifests: [app.yaml]\n    namespace: e2e\n    needs: []\n";
        graph_plan(&cluster, &plan, &images, deploy);
        let out = up_with_recorded_kubectl(&plan, &["-o", "json"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{kind}: {stderr}");
        let record = plan.last_run();
        assert_needs_respected(&record);
        let slow_build = step_times(&record, &format!("build/{slow}"));
        // The fast image is delivered while the slow one still builds.
        let fast_delivery = step_times(&record, &format!("deliver/{fast}"));
        assert!(
            fast_delivery.0 < slow_build.1,
            "{kind}: deliver/{fast} {fast_delivery:?} waited for build/{slow} {slow_build:?}"
        );
        // A deploy that needs no built image does not wait for the builds.
        let config = step_times(&record, "deploy/config");
        assert!(config.1 < slow_build.1, "{kind}: {config:?} {slow_build:?}");
        // One that names the slow image waits for its delivery, and says so.
        let app = record.steps.iter().find(|s| s.id == "deploy/app").unwrap();
        assert!(
            app.needs.contains(&format!("deliver/{slow}")),
            "{:?}",
            app.needs
        );
        assert!(
            app.waits.iter().any(|w| w.wait
                == Wait::Step {
                    step: format!("deliver/{slow}")
                }),
            "{kind}: {:?}",
            app.waits
        );
        // The slow build, its delivery and the app are the critical path.
        let critical: Vec<&str> = record
            .steps
            .iter()
            .filter(|s| s.critical)
            .map(|s| s.id.as_str())
            .collect();
        assert_eq!(
            critical,
            [
                "preflight".to_string(),
                format!("build/{slow}"),
                format!("deliver/{slow}"),
                "deploy/app".to_string()
            ],
            "{kind}"
        );
        // `-o json` carries the same timeline.
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let steps = report["steps"].as_array().unwrap();
        let app = steps.iter().find(|s| s["id"] == "deploy/app").unwrap();
        assert_eq!(app["critical"], true, "{report}");
        assert!(app["waits"][0]["from"].is_string(), "{report}");
        assert!(
            report["criticalPathMs"].as_u64().unwrap() > 8000,
            "{report}"
        );
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_failed_build_cancels_what_waits_or_with_keep_going_only_what_needs_it() {
    let _exclusive = exclusive();
    for kind in engines_under_test() {
        let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
        let base = unique_name("localhost/lmt-fail");
        let (broken, slow) = (format!("{base}-broken:1"), format!("{base}-slow:1"));
        let _built = Built {
            kind,
            names: vec![broken.clone(), slow.clone()],
        };
        for keep_going in [false, true] {
            let plan = TestPlan::write("");
            let images = sleeper_images(&plan, &[(&broken, None), (&slow, Some(4))]);
            graph_plan(&cluster, &plan, &images, "");
            let extra: &[&str] = if keep_going { &["--keep-going"] } else { &[] };
            let out = up_with_recorded_kubectl(&plan, extra);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{kind}: {stderr}");
            let record = plan.last_run();
            assert_eq!(record.status, RunStatus::Failed, "{kind}");
            assert_needs_respected(&record);
            let status = |id: &str| record.steps.iter().find(|s| s.id == id).map(|s| s.status);
            use loadmaster::journal::StepStatus;
            assert_eq!(status(&format!("build/{broken}")), Some(StepStatus::Failed));
            // The slow build was running: it ran to its end.
            assert_eq!(
                status(&format!("build/{slow}")),
                Some(StepStatus::Succeeded)
            );
            let cancelled = |id: &str| {
                record
                    .cancelled
                    .iter()
                    .find(|c| c.step == id)
                    .map(|c| c.because.clone())
            };
            let needs_it = format!("build/{broken} failed and it needs it");
            assert_eq!(
                cancelled(&format!("deliver/{broken}")),
                Some(needs_it),
                "{kind}"
            );
            if keep_going {
                // What does not need the failed build went on.
                assert_eq!(
                    status(&format!("deliver/{slow}")),
                    Some(StepStatus::Succeeded)
                );
                assert_eq!(cancelled(&format!("deliver/{slow}")), None);
            } else {
                assert_eq!(status(&format!("deliver/{slow}")), None, "{kind}");
                assert!(
                    cancelled(&format!("deliver/{slow}"))
                        .is_some_and(|b| b.starts_with("fail fast")),
                    "{kind}: {:?}",
                    record.cancelled
                );
                assert!(
                    stderr.contains(&format!("deliver/{slow}: cancelled: fail fast")),
                    "{stderr}"
                );
            }
        }
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_traced_run_shows_its_commands_and_steps_but_no_secret() {
    let _exclusive = exclusive();
    for kind in engines_under_test() {
        let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
        let image = format!("{}:1", unique_name("localhost/lmt-img"));
        let _built = Built {
            kind,
            names: vec![image.clone()],
        };
        // A plan's build arguments go to the engine in argv, its test's
        // environment to the test: both are where secrets pass.
        let images = format!(
            "images:\n  - name: {image}\n    build:\n      context: images/greeter\n      args:\n        NPM_TOKEN: s3cr3t-build\n      timeout: 2m\n"
        );
        let test = "test:\n  command: echo ok\n  env:\n    API_TOKEN: s3cr3t-env\n  timeout: 30s\n";
        let plan = TestPlan::write(&plan_text(&cluster, &images, test, "1GiB"));
        let out = plan
            .command("run", &["-v", "-v", "-o", "json"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{kind}: {stderr}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["result"], "succeeded", "{kind}: {report}");
        let traced: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains(" INFO ") || l.contains(" DEBUG "))
            .collect();
        let has = |parts: &[&str]| traced.iter().any(|l| parts.iter().all(|p| l.contains(p)));
        let build = format!("step{{id=build/{image}}}:command{{argv={kind} build");
        assert!(
            has(&[&build, "'NPM_TOKEN=<redacted>'", "finished exit=0"]),
            "{kind}: {stderr}"
        );
        // The node's import is an exec into it.
        let exec = format!("command{{argv={kind} exec -i {}", cluster.control_plane());
        assert!(has(&[&exec, "finished exit=0"]), "{kind}: {stderr}");
        assert!(
            has(&[
                "step{id=test}:command{argv=sh -c 'echo ok'}",
                "API_TOKEN=<redacted>"
            ]),
            "{kind}: {stderr}"
        );
        assert!(
            has(&["step{id=test}", "finished", "outcome=Succeeded"]),
            "{kind}: {stderr}"
        );
        assert!(!stderr.contains("s3cr3t"), "{kind}: {stderr}");
    }
}

/// The journal's `kubectl apply`, `rollout` and `wait` commands of `step`
/// (not the reads of the evidence a failure gathers).
fn kubectl_changes(record: &loadmaster::journal::RunRecord, step: &str) -> Vec<Vec<String>> {
    record
        .events
        .iter()
        .filter(|e| e.step.as_deref() == Some(step))
        .filter_map(|e| match &e.body {
            EventBody::Command { argv, .. }
                if argv.first().is_some_and(|a| a == "kubectl")
                    && argv
                        .iter()
                        .any(|a| ["apply", "rollout", "wait"].contains(&a.as_str())) =>
            {
                Some(argv.clone())
            }
            _ => None,
        })
        .collect()
}

/// `up` of `plan` (kubectl recorded) fails in `step`, saying `said`: the
/// run's record and stderr.
fn fails_in(plan: &TestPlan, step: &str, said: &str) -> (loadmaster::journal::RunRecord, String) {
    let out = up_with_recorded_kubectl(plan, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(said), "{said:?} not in {stderr}");
    let record = plan.last_run();
    let failed = record.steps.iter().find(|s| s.id == step);
    assert_eq!(
        failed.map(|s| s.status),
        Some(loadmaster::journal::StepStatus::Failed),
        "{:?}",
        record.steps
    );
    (record, stderr)
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn an_image_name_that_will_not_resolve_on_the_nodes_stops_the_run_before_anything_is_applied() {
    let _exclusive = exclusive();
    for kind in engines_under_test() {
        let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
        let base = unique_name("localhost/lmt-names");
        let loaded = format!("{base}:1");
        let _built = Built {
            kind,
            names: vec![loaded.clone()],
        };
        let plan = TestPlan::write("");
        let images = sleeper_images(&plan, &[(&loaded, Some(0))]);
        let dir = plan.file.parent().unwrap().to_path_buf();
        let manifest = |image: &str| {
            std::fs::write(
                dir.join("app.yaml"),
                format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: {image}\n          imagePullPolicy: Never\n"),
            )
            .unwrap()
        };
        let deploy = "deploy:\n  - name: app\n    manifests: [app.yaml]\n    namespace: e2e\n    wait:\n      - rollout: deployment/api\n        timeout: 5s\n";
        graph_plan(&cluster, &plan, &images, deploy);
        let calls = dir.join("kubectl-calls");
        let applied = || std::fs::read_to_string(&calls).unwrap_or_default();
        let asks = "app.yaml (Deployment app, container app) asks for";

        // The suite's mistake: `:latest` in the manifest, `:1` loaded. The
        // pre-flight names both, and nothing is built or applied.
        let near = format!("{base}:latest");
        manifest(&near);
        let (record, _) = fails_in(
            &plan,
            "preflight",
            &format!("{asks} {near} with imagePullPolicy Never; this plan loads {loaded}"),
        );
        assert!(
            !record.steps.iter().any(|s| s.id.starts_with("build/")),
            "{kind}: {:?}",
            record.steps
        );
        assert!(!applied().contains("apply"), "{kind}: {}", applied());

        // Skipped with the pre-flight, the deploy step's check too: the
        // manifest is applied, its wait runs, and the journal says so.
        let out = up_with_recorded_kubectl(&plan, &["--skip-preflight"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let record = plan.last_run();
        let skipped = record.events.iter().any(|e| {
            e.step.as_deref() == Some("deploy/app")
                && matches!(&e.body, EventBody::Note { message } if message.starts_with("image names not checked before applying: the pre-flight was skipped (--skip-preflight)"))
        });
        assert!(skipped, "{kind}: {stderr}");
        assert!(
            !kubectl_changes(&record, "deploy/app").is_empty(),
            "{kind}: {stderr}"
        );
        std::fs::remove_file(&calls).unwrap();

        // A Never image that nothing delivers and that is near no plan
        // image: the pre-flight can only warn; the deploy step reads what
        // the node holds, and fails before its apply and its wait.
        let absent = unique_name("localhost/lmt-absent");
        let absent = format!("{absent}:1");
        manifest(&absent);
        let (record, stderr) = fails_in(
            &plan,
            "deploy/app",
            &format!(
                "{asks} {absent} with imagePullPolicy Never, which this plan does not load and the nodes do not hold"
            ),
        );
        assert!(
            stderr.contains(&format!("warning: image-name.app.{absent}")),
            "{kind}: {stderr}"
        );
        assert!(
            record
                .steps
                .iter()
                .any(|s| s.id == format!("deliver/{loaded}")
                    && s.status == loadmaster::journal::StepStatus::Succeeded),
            "{kind}: {:?}",
            record.steps
        );
        assert_eq!(
            kubectl_changes(&record, "deploy/app"),
            Vec::<Vec<String>>::new(),
            "{kind}"
        );
        assert!(!applied().contains("apply"), "{kind}: {}", applied());
    }
}

/// What each image's delivery read from the engine in a run, and its path.
fn engine_reads(record: &loadmaster::journal::RunRecord) -> Vec<(String, String, u64)> {
    let report = loadmaster::report::RunReport::load(&record.dir).unwrap();
    report
        .connections
        .into_iter()
        .map(|c| (c.image, c.path, c.from_engine))
        .collect()
}

/// The plan's `cluster.imageCache` across cluster re-creation: a second
/// `up` of the same plan into fresh nodes reads nothing from the engine,
/// and after one image changed, only that one: on podman only its changed
/// layer (a push, its base layer fed from the cache), on docker's classic
/// store all of it (a save). On podman the first `up` already pushes the
/// image delivered second, whose base layer the first one left in the
/// cache. The images are taken from the engine as they are (built by the
/// test, so that their IDs change only when the test changes them).
#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_second_up_into_fresh_nodes_reads_from_the_engine_only_what_changed() {
    const MIB: u64 = 1 << 20;
    let _exclusive = exclusive();
    for kind in engines_under_test() {
        let cache = TempDir::new("lmt-image-cache");
        let (app, tool) = (TestImage::named(kind), TestImage::named(kind));
        let base = Layer {
            bytes: 4 * MIB,
            seed: 21,
        };
        let top = |seed| Layer { bytes: MIB, seed };
        app.build(&[base, top(22)]);
        tool.build(&[base, top(23)]);
        let up = || {
            let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
            let images = format!("images:\n  - name: {}\n  - name: {}\n", app.name, tool.name);
            let cached = format!(
                "  imageCache:\n    dir: {}\n    maxSize: 1GiB\n",
                cache.path.display()
            );
            let text = plan_text(&cluster, &images, "", "1GiB")
                .replace("  existing: true\n", &format!("  existing: true\n{cached}"));
            let plan = TestPlan::write(&text);
            let out = plan.command("up", &[]).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "up on {kind}: {stderr}");
            engine_reads(&plan.last_run())
        };
        let read = |reads: &[(String, String, u64)], image: &str| {
            reads
                .iter()
                .find(|(name, ..)| name == image)
                .map(|(_, path, bytes)| (path.clone(), *bytes))
                .unwrap_or_else(|| panic!("{kind}: no delivery of {image}: {reads:?}"))
        };
        let unread = ("cache".to_string(), 0);

        // A save reads the whole image, a push from the cache the top layer
        // (and its config and manifest).
        let whole = |(path, bytes): (String, u64)| path == "save" && bytes > 5 * MIB;
        let top_only =
            |(path, bytes): (String, u64)| path == "push" && (MIB..MIB + MIB / 4).contains(&bytes);
        let reuses = kind == EngineKind::Podman;

        let first = up();
        let (app_read, tool_read) = (read(&first, &app.name), read(&first, &tool.name));
        if reuses {
            let one_of_each = (whole(app_read.clone()) && top_only(tool_read.clone()))
                || (top_only(app_read) && whole(tool_read));
            assert!(one_of_each, "{kind}: {first:?}");
        } else {
            assert!(whole(app_read) && whole(tool_read), "{kind}: {first:?}");
        }
        let second = up();
        for image in [&app, &tool] {
            assert_eq!(read(&second, &image.name), unread, "{kind}: {second:?}");
        }
        app.build(&[base, top(24)]);
        let changed = up();
        let app_read = read(&changed, &app.name);
        if reuses {
            assert!(top_only(app_read), "{kind}: {changed:?}");
        } else {
            assert!(whole(app_read), "{kind}: {changed:?}");
        }
        assert_eq!(read(&changed, &tool.name), unread, "{kind}: {changed:?}");
    }
}
