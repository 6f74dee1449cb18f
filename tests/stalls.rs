//! Stalls on real engines: an engine `save` stopped mid-stream, and a node
//! whose `ctr import` stops reading. Each load fails within the stall limit
//! with an error naming the side that stalled, and the node holds no tag
//! for the image. And a SIGTERM stops a stalled load at once, not at the
//! stall limit.

mod support;

use loadmaster::deliver::progress::Progress;
use loadmaster::deliver::{self, NodeReport, NodeResult, Source};
use loadmaster::engine::{Engine, EngineKind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::{
    Layer, NodeOptions, TestCluster, TestImage, engine_output, engines_under_test, image_on_node,
    loadmaster_command,
};

const MIB: u64 = 1 << 20;

/// The stall limit of these tests: short, so that they take seconds.
const LIMIT: Duration = Duration::from_secs(3);

/// Within this a stalled load must have failed: the limit, plus the
/// watchdog's tick and the engine's end of the command.
const FAILS_WITHIN: Duration = Duration::from_secs(30);

/// The processes of this machine whose command line holds every one of
/// `words`, with their `/proc` directories.
fn processes_with(words: &[&str]) -> Vec<PathBuf> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let dir = entry.ok()?.path();
            dir.file_name()?.to_str()?.parse::<u32>().ok()?;
            let cmdline = std::fs::read(dir.join("cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            words
                .iter()
                .all(|word| args.iter().any(|a| a == word))
                .then_some(dir)
        })
        .collect()
}

fn pid_of(dir: &std::path::Path) -> i32 {
    dir.file_name().unwrap().to_str().unwrap().parse().unwrap()
}

fn stop(pid: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    assert_eq!(
        unsafe { libc::kill(pid, libc::SIGSTOP) },
        0,
        "SIGSTOP {pid}"
    );
}

/// Stops (SIGSTOP) a process once the node has been sent `after` bytes:
/// the engine's `save` of `image` (a child of this test), or the `ctr
/// import` in the node container `node_id`.
struct StopMidStream {
    target: Target,
    after: u64,
    stopped: AtomicBool,
}

enum Target {
    Save { image: String },
    NodeImport { node_id: String },
}

/// The `ctr import` running in the node container `node_id`.
fn node_import(node_id: &str) -> Option<i32> {
    processes_with(&["ctr", "import"])
        .iter()
        .find(|dir| std::fs::read_to_string(dir.join("cgroup")).is_ok_and(|c| c.contains(node_id)))
        .map(|dir| pid_of(dir))
}

impl StopMidStream {
    fn stop_target(&self) {
        let pid = match &self.target {
            Target::Save { image } => processes_with(&["save", image])
                .iter()
                .find(|dir| {
                    let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
                    // `pid (comm) state ppid ...`: our own child only.
                    let ppid = stat.rsplit(')').next().unwrap_or_default();
                    ppid.split_whitespace().nth(1) == Some(&std::process::id().to_string())
                })
                .map(|dir| pid_of(dir)),
            Target::NodeImport { node_id } => node_import(node_id),
        };
        stop(pid.expect("the process to stop is running"));
    }
}

impl Progress for StopMidStream {
    fn begin(&self, _: &str, _: &[String], _: Option<u64>) {}
    fn inventory(&self, _: &str, _: usize, _: bool) {}
    fn streaming(&self, _read: u64, sent: &[(&str, u64)]) {
        let reached = sent.iter().any(|(_, n)| *n >= self.after);
        if reached && !self.stopped.swap(true, Ordering::SeqCst) {
            self.stop_target();
        }
    }
    fn node_done(&self, _: &NodeReport) {}
}

fn reference(image: &TestImage) -> String {
    format!("docker.io/library/{}", image.name)
}

fn container_id(kind: EngineKind, node: &str) -> String {
    let output = engine_output(kind, &["inspect", "--format", "{{.Id}}", node]);
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_save_stopped_mid_stream_fails_the_load_naming_the_engine() {
    loadmaster::process::set_stall_limit(LIMIT);
    for kind in engines_under_test() {
        let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
        let image = TestImage::named(kind);
        image.build(&[Layer {
            bytes: 64 * MIB,
            seed: 31,
        }]);
        let node = cluster.control_plane().to_string();
        let progress = StopMidStream {
            target: Target::Save {
                image: image.name.clone(),
            },
            after: 4 * MIB,
            stopped: AtomicBool::new(false),
        };
        let started = Instant::now();
        let result = deliver::load(
            &Engine::new(kind),
            std::slice::from_ref(&node),
            Source::Engine { image: &image.name },
            &deliver::Options::default(),
            &progress,
        );
        let took = started.elapsed();
        assert!(progress.stopped.load(Ordering::SeqCst), "{kind}");
        let error = match result {
            Err(error) => error.to_string(),
            Ok(reports) => panic!("{kind}: a stalled save is the source's failure: {reports:?}"),
        };
        assert!(
            error.contains("sent nothing") && error.contains("the engine stalled"),
            "{kind}: {error}"
        );
        assert!(
            error.contains(&format!("{} save", kind.name())),
            "{kind}: {error}"
        );
        assert!(took < FAILS_WITHIN, "{kind}: {took:?}");
        assert_eq!(
            image_on_node(&cluster, &node, &reference(&image)),
            None,
            "{kind}"
        );
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_node_that_stops_reading_fails_naming_the_node() {
    loadmaster::process::set_stall_limit(LIMIT);
    for kind in engines_under_test() {
        let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
        let image = TestImage::named(kind);
        // More than the pipes and the engine's buffers between us and ctr
        // hold, so that our writes block once ctr stops.
        image.build(&[Layer {
            bytes: 96 * MIB,
            seed: 37,
        }]);
        let node = cluster.control_plane().to_string();
        let progress = StopMidStream {
            target: Target::NodeImport {
                node_id: container_id(kind, &node),
            },
            after: 4 * MIB,
            stopped: AtomicBool::new(false),
        };
        let started = Instant::now();
        let reports = deliver::load(
            &Engine::new(kind),
            std::slice::from_ref(&node),
            Source::Engine { image: &image.name },
            &deliver::Options::default(),
            &progress,
        )
        .unwrap_or_else(|e| panic!("{kind}: a stalled node is the node's failure: {e}"));
        let took = started.elapsed();
        assert!(progress.stopped.load(Ordering::SeqCst), "{kind}");
        assert_eq!(reports[0].result, NodeResult::Failed, "{kind}: {reports:?}");
        let error = reports[0].error.as_deref().unwrap();
        assert!(
            error.contains("took no input") && error.contains("the container's command stalled"),
            "{kind}: {error}"
        );
        assert!(error.contains(&node), "{kind}: {error}");
        assert!(took < FAILS_WITHIN, "{kind}: {took:?}");
        assert_eq!(
            image_on_node(&cluster, &node, &reference(&image)),
            None,
            "{kind}"
        );
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_sigterm_stops_a_stalled_load_at_once_and_tags_nothing() {
    for kind in engines_under_test() {
        let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
        let image = TestImage::named(kind);
        image.build(&[Layer {
            bytes: 96 * MIB,
            seed: 41,
        }]);
        let node = cluster.control_plane().to_string();
        let node_id = container_id(kind, &node);
        // A stall limit far beyond the test: only the signal can end it.
        let mut load = loadmaster_command(&[
            "--engine",
            kind.name(),
            "--stall-timeout",
            "600",
            "load",
            "--cluster",
            &cluster.name,
            &image.name,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
        let waiting = Instant::now();
        let import = loop {
            if let Some(pid) = node_import(&node_id) {
                break pid;
            }
            assert!(
                waiting.elapsed() < FAILS_WITHIN,
                "{kind}: no import started"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        stop(import);
        std::thread::sleep(Duration::from_millis(500));
        let signalled = Instant::now();
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe { libc::kill(load.id() as i32, libc::SIGTERM) };
        let status = loop {
            if let Some(status) = load.try_wait().unwrap() {
                break status;
            }
            if signalled.elapsed() > FAILS_WITHIN {
                let _ = load.kill();
                panic!("{kind}: the load went on after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let took = signalled.elapsed();
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut load.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(1), "{kind}: {stderr}");
        assert!(stderr.contains("received SIGTERM"), "{kind}: {stderr}");
        assert!(took < Duration::from_secs(10), "{kind}: {took:?}");
        assert_eq!(
            image_on_node(&cluster, &node, &reference(&image)),
            None,
            "{kind}"
        );
    }
}

/// Within this a command past its deadline must have returned: the
/// deadline, the group's kill and the pipes' grace, well under the
/// grandchild's 120 s.
const RETURNS_WITHIN: Duration = Duration::from_secs(30);

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn an_engine_command_whose_grandchild_holds_stdout_returns_at_its_deadline() {
    for kind in engines_under_test() {
        let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
        let node = cluster.control_plane().to_string();
        // The command runs past its deadline, and the engine client `sh`
        // started in the background holds our stdout as well: only a kill
        // of the whole group ends both.
        let script = format!(
            "{engine} exec {node} sleep 120 & {engine} exec {node} sh -c 'echo started; exec sleep 120'",
            engine = kind.name()
        );
        let started = Instant::now();
        let done = loadmaster::process::run(
            std::process::Command::new("sh").args(["-c", &script]),
            Duration::from_secs(5),
        )
        .unwrap();
        let took = started.elapsed();
        assert!(done.timed_out, "{kind}: {:?}", done.status);
        assert_eq!(done.stdout_text(), "started\n", "{kind}");
        assert!(took < RETURNS_WITHIN, "{kind}: {took:?}");
        // No engine client of the group is left on this machine.
        let left = processes_with(&[kind.name(), "exec", &node]);
        assert!(left.is_empty(), "{kind}: still running: {left:?}");
    }
}
