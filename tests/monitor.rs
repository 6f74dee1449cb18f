//! The monitor against real test nodes on docker and podman: node cgroup
//! memory (usage and the limit the node was started with), host memory and
//! disk, at 1 Hz or faster, an unreadable source noted once without
//! stopping the samples, and a stop that does not wait out the period.

mod support;

use loadmaster::engine::Engine;
use loadmaster::events::recording::Recording;
use loadmaster::journal::{EventBody, Journal};
use loadmaster::monitor::{self, HostReader, Monitor, MonitorError, NodeSource, Sources};
use loadmaster::plan;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{NodeOptions, TempDir, TestCluster, engines_under_test};

const LIMIT: u64 = 256 << 20;

fn journal_in(dir: &TempDir) -> Arc<Journal> {
    let file = dir.path.join("loadmaster.yaml");
    std::fs::write(
        &file,
        "apiVersion: loadmaster/v1\ncluster:\n  name: monitor-test\n  existing: true\ntest:\n  command: \"true\"\n",
    )
    .unwrap();
    let plan = plan::load(&file).unwrap();
    Arc::new(Journal::create(&dir.path.join("runs"), &plan).unwrap())
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn samples_a_real_node_at_one_hertz_and_stops_at_once() {
    for kind in engines_under_test() {
        let cluster = TestCluster::start(
            kind,
            0,
            &NodeOptions {
                memory: Some("256m".to_string()),
                ..NodeOptions::default()
            },
        );
        let engine = Engine::new(kind);
        let info = engine.info().unwrap();
        let dir = TempDir::new("lm-monitor");
        let journal = journal_in(&dir);
        let sources = Sources::for_engine(&info, None);
        let reader = sources
            .reader()
            .cloned()
            .expect("a local engine is readable");
        let node = NodeSource::find(&engine, &info, &reader, cluster.control_plane()).unwrap();
        assert!(
            node.dir.starts_with("/sys/fs/cgroup"),
            "{kind}: {}",
            node.dir.display()
        );

        let monitor = Monitor::start(
            Arc::new(Recording::new(journal.clone(), None)),
            sources,
            monitor::DEFAULT_PERIOD,
        )
        .unwrap();
        // Nodes come with the cluster, after the monitor started.
        monitor.watch(node);
        // One that cannot be read: noted once, and sampling goes on.
        monitor.watch(NodeSource {
            node: "gone-node".to_string(),
            dir: "/sys/fs/cgroup/memory/no-such-cgroup".into(),
            reader: HostReader::Local,
        });
        std::thread::sleep(Duration::from_millis(3300));
        let stopping = Instant::now();
        let report = monitor.stop();
        assert!(
            stopping.elapsed() < Duration::from_millis(500),
            "{kind}: stop waited {:?}",
            stopping.elapsed()
        );

        let record = Journal::open(journal.dir()).unwrap();
        assert_eq!(report.samples as usize, record.samples.len());
        assert!(
            record.samples.len() >= 4,
            "{kind}: {} samples in 3.3 s at 1 Hz",
            record.samples.len()
        );
        for pair in record.samples.windows(2) {
            let gap = pair[1].time.since(pair[0].time);
            assert!(gap <= 1100, "{kind}: {gap} ms between samples");
        }
        // Every sample after the first (taken before `watch` arrived) has
        // the node, with usage and the limit it was started with.
        for sample in &record.samples[1..] {
            let node = sample
                .nodes
                .iter()
                .find(|n| n.node == cluster.control_plane())
                .unwrap_or_else(|| panic!("{kind}: node missing from {sample:?}"));
            assert!(node.usage_bytes > 0, "{kind}: {node:?}");
            assert_eq!(node.limit_bytes, Some(LIMIT), "{kind}: {node:?}");
            assert!(
                node.peak_bytes.unwrap_or(0) >= node.usage_bytes,
                "{kind}: {node:?}"
            );
            let memory = sample.memory.expect("host memory");
            assert!(memory.total_bytes > 0 && memory.available_bytes <= memory.total_bytes);
            let roles: Vec<&str> = sample.disks.iter().map(|d| d.role.as_str()).collect();
            assert_eq!(roles, ["engine storage", "temp"], "{kind}");
            assert!(sample.disks.iter().all(|d| d.total_bytes > 0));
        }
        let notes: Vec<(&str, &str)> = record
            .events
            .iter()
            .filter_map(|event| match &event.body {
                EventBody::SampleNote { source, note } => Some((source.as_str(), note.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(notes.len(), 1, "{kind}: noted once: {notes:?}");
        assert_eq!(notes[0].0, "node gone-node");
        assert!(notes[0].1.contains("no-such-cgroup"), "{kind}: {notes:?}");
        assert_eq!(report.notes.len(), 1);
    }
}

#[test]
fn a_period_slower_than_one_hertz_is_refused() {
    let dir = TempDir::new("lm-monitor");
    let journal = journal_in(&dir);
    for period in [Duration::ZERO, Duration::from_millis(1001)] {
        let error = Monitor::start(
            Arc::new(Recording::new(journal.clone(), None)),
            Sources::default(),
            period,
        )
        .err()
        .expect("refused");
        assert!(matches!(error, MonitorError::Period { .. }));
        assert!(error.to_string().contains("at most 1s"), "{error}");
    }
    // A faster period is fine, and a monitor dropped without stop stops.
    let monitor = Monitor::start(
        Arc::new(Recording::new(journal.clone(), None)),
        Sources::default(),
        Duration::from_millis(100),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(350));
    drop(monitor);
    let record = Journal::open(journal.dir()).unwrap();
    assert!(
        (3..=5).contains(&record.samples.len()),
        "{}",
        record.samples.len()
    );
}
