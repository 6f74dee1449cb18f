//! The run journal: written and read back, the line format on disk, a run
//! killed while writing (cut last line), a run that never ended, peaks per
//! step from samples, and `loadmaster runs`.

mod support;

use loadmaster::journal::{
    self, DiskSpace, Event, EventBody, Exit, HostMemory, Journal, NodeMemory, Outcome, RunStatus,
    Sample, StepStatus, Timestamp,
};
use loadmaster::plan::{self, Plan};
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::time::Duration;
use support::{TempDir, loadmaster};

const MIB: u64 = 1 << 20;

/// A minimal valid plan in `dir`.
fn plan_in(dir: &Path) -> Plan {
    let file = dir.join("loadmaster.yaml");
    std::fs::write(
        &file,
        "apiVersion: loadmaster/v1\ncluster:\n  name: journal-test\ntest:\n  command: \"true\"\n",
    )
    .unwrap();
    plan::load(&file).unwrap()
}

/// An event at a fixed instant (the constructors stamp the current time).
fn at(millis: u64, mut event: Event) -> Event {
    event.time = Timestamp::from_millis(millis);
    event
}

fn sample(millis: u64, available: u64, node_usage: u64, disk_free: u64) -> Sample {
    Sample {
        time: Timestamp::from_millis(millis),
        memory: Some(HostMemory {
            total_bytes: 1000 * MIB,
            available_bytes: available,
        }),
        nodes: vec![NodeMemory {
            node: "kind-control-plane".to_string(),
            usage_bytes: node_usage,
            peak_bytes: Some(node_usage + MIB),
            limit_bytes: Some(512 * MIB),
        }],
        disks: vec![DiskSpace {
            role: "temp".to_string(),
            path: "/tmp".to_string(),
            available_bytes: disk_free,
            total_bytes: 10_000 * MIB,
        }],
    }
}

const T0: u64 = 1_765_840_102_000; // 2025-12-15T23:08:22Z, the seed's run

/// Two steps with samples before, during and after each: build/hapi from
/// T0+1s to T0+4s, load/hapi from T0+5s to T0+7s.
fn record_two_steps(journal: &Journal) {
    let s = |seconds: u64| T0 + seconds * 1000;
    journal
        .sample(&sample(s(0), 900 * MIB, 10 * MIB, 5000 * MIB))
        .unwrap();
    journal
        .record(&at(s(1), Event::step_start("build/hapi")))
        .unwrap();
    journal
        .sample(&sample(s(2), 400 * MIB, 20 * MIB, 4000 * MIB))
        .unwrap();
    journal
        .sample(&sample(s(3), 300 * MIB, 15 * MIB, 4500 * MIB))
        .unwrap();
    journal
        .record(&at(
            s(4),
            Event::command(
                "build/hapi",
                vec![
                    "podman".into(),
                    "build".into(),
                    "-t".into(),
                    "hapi".into(),
                    ".".into(),
                ],
                Exit {
                    code: Some(0),
                    signal: None,
                    timed_out: false,
                },
                b"STEP 1/9: FROM ubi9/python-39\n",
                Duration::from_millis(2500),
            ),
        ))
        .unwrap();
    journal
        .record(&at(
            s(4),
            Event::step_end("build/hapi", Outcome::Succeeded, None),
        ))
        .unwrap();
    journal
        .record(&at(s(5), Event::step_start("load/hapi")))
        .unwrap();
    journal
        .sample(&sample(s(6), 700 * MIB, 480 * MIB, 3000 * MIB))
        .unwrap();
}

#[test]
fn a_finished_run_reads_back_with_steps_commands_and_peaks() {
    let dir = TempDir::new("lm-journal");
    let plan = plan_in(&dir.path);
    let root = dir.path.join(".loadmaster/runs");
    let journal = Journal::create(&root, &plan).unwrap();
    record_two_steps(&journal);
    let s = |seconds: u64| T0 + seconds * 1000;
    journal
        .record(&at(
            s(7),
            Event::step_end(
                "load/hapi",
                Outcome::Failed,
                Some("ctr import exit 137".into()),
            ),
        ))
        .unwrap();
    journal
        .sample(&sample(s(8), 950 * MIB, 5 * MIB, 5000 * MIB))
        .unwrap();
    journal
        .record(&at(s(8), Event::run_end(Outcome::Failed)))
        .unwrap();

    // The run's directory: id, plan copy, artifacts.
    assert_eq!(journal.dir(), root.join(journal.id()));
    assert!(journal.artifacts_dir().is_dir());
    let saved_plan: Value =
        serde_json::from_slice(&std::fs::read(journal.dir().join("plan.json")).unwrap()).unwrap();
    assert_eq!(saved_plan["cluster"]["name"], "journal-test");

    let record = Journal::open(journal.dir()).unwrap();
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(record.plan.as_deref(), Some(plan.file.as_path()));
    assert_eq!(record.cluster.as_deref(), Some("journal-test"));
    assert_eq!(record.schema_version, Some(journal::SCHEMA_VERSION));
    assert!(
        record.damage.is_empty() && record.missing.is_empty(),
        "{record:?}"
    );
    assert_eq!(record.samples.len(), 5);

    let [build, load] = &record.steps[..] else {
        panic!("two steps: {:?}", record.steps)
    };
    assert_eq!(
        (build.id.as_str(), build.status),
        ("build/hapi", StepStatus::Succeeded)
    );
    assert_eq!(build.commands, 1);
    assert_eq!(load.status, StepStatus::Failed);
    assert_eq!(load.error.as_deref(), Some("ctr import exit 137"));

    // Peaks from the samples inside each step only: build saw T0+2s and
    // T0+3s (used 600 and 700 MiB), not T0+0s or T0+6s.
    assert_eq!(build.peaks.samples, 2);
    assert_eq!(build.peaks.memory_used_bytes, Some(700 * MIB));
    assert_eq!(build.peaks.memory_available_min_bytes, Some(300 * MIB));
    let node = build.peaks.nodes["kind-control-plane"];
    assert_eq!(node.usage_bytes, 20 * MIB);
    assert_eq!(node.kernel_peak_bytes, Some(21 * MIB));
    assert_eq!(node.limit_bytes, Some(512 * MIB));
    assert_eq!(build.peaks.disk_available_min_bytes["/tmp"], 4000 * MIB);
    assert_eq!(load.peaks.samples, 1);
    assert_eq!(
        load.peaks.nodes["kind-control-plane"].usage_bytes,
        480 * MIB
    );
}

#[test]
fn events_are_one_json_object_per_line_with_version_kind_and_ms_utc_times() {
    let dir = TempDir::new("lm-journal");
    let journal = Journal::create(&dir.path.join("runs"), &plan_in(&dir.path)).unwrap();
    record_two_steps(&journal);
    let text = std::fs::read_to_string(journal.dir().join("events.jsonl")).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "run-start",
            "step-start",
            "command",
            "step-end",
            "step-start"
        ]
    );
    for line in &lines {
        assert_eq!(line["v"], 1);
        let time = line["time"].as_str().unwrap();
        assert_eq!(time.len(), "2025-12-15T23:08:22.000Z".len(), "{time}");
        assert!(time.ends_with('Z'));
    }
    assert_eq!(lines[1]["time"], "2025-12-15T23:08:23.000Z");
    let command = &lines[2];
    assert_eq!(command["step"], "build/hapi");
    assert_eq!(command["argv"][1], "build");
    assert_eq!(command["exit"]["code"], 0);
    assert_eq!(command["stderrTail"], "STEP 1/9: FROM ubi9/python-39\n");
    assert_eq!(command["durationMs"], 2500);
    assert_eq!(lines[3]["result"], "succeeded");
}

#[test]
fn a_command_keeps_only_the_tail_of_its_stderr() {
    let mut stderr = vec![b'x'; 10_000];
    stderr.extend_from_slice(b"the error at the end");
    let event = Event::command(
        "load/hapi",
        vec!["podman".into()],
        Exit {
            code: None,
            signal: Some(9),
            timed_out: false,
        },
        &stderr,
        Duration::ZERO,
    );
    let EventBody::Command {
        stderr_tail, exit, ..
    } = event.body
    else {
        panic!("a command event")
    };
    assert_eq!(stderr_tail.len(), journal::STDERR_TAIL);
    assert!(stderr_tail.ends_with("the error at the end"));
    assert!(!exit.success());
}

#[test]
fn a_run_killed_mid_write_is_read_with_the_cut_line_marked() {
    let dir = TempDir::new("lm-journal");
    let journal = Journal::create(&dir.path.join("runs"), &plan_in(&dir.path)).unwrap();
    record_two_steps(&journal);
    let run_dir = journal.dir().to_path_buf();
    drop(journal);
    // What a SIGKILL in the middle of a write leaves: half a line, no newline.
    let mut events = std::fs::OpenOptions::new()
        .append(true)
        .open(run_dir.join("events.jsonl"))
        .unwrap();
    events
        .write_all(br#"{"v":1,"time":"2025-12-15T23:08:29.000Z","step":"load/hapi","kind":"comm"#)
        .unwrap();
    let mut samples = std::fs::OpenOptions::new()
        .append(true)
        .open(run_dir.join("samples.jsonl"))
        .unwrap();
    samples.write_all(br#"{"time":"2025-12-15T23:08"#).unwrap();

    let record = Journal::open(&run_dir).unwrap();
    assert_eq!(record.status, RunStatus::Interrupted);
    assert_eq!(record.events.len(), 5, "every whole line is kept");
    assert_eq!(record.samples.len(), 4);
    let cut: Vec<(&str, usize, bool)> = record
        .damage
        .iter()
        .map(|d| (d.file.as_str(), d.line, d.truncated))
        .collect();
    assert_eq!(cut, [("events.jsonl", 6, true), ("samples.jsonl", 5, true)]);
    // The step that was running is interrupted, its peaks up to the last
    // thing recorded.
    let load = &record.steps[1];
    assert_eq!(load.status, StepStatus::Interrupted);
    assert_eq!(load.ended, None);
    assert_eq!(load.peaks.samples, 1);
    assert!(
        record
            .missing
            .iter()
            .any(|m| m.contains("no run-end event")),
        "{:?}",
        record.missing
    );
    assert!(
        record
            .missing
            .iter()
            .any(|m| m.contains("step load/hapi has no end"))
    );
    // Duration runs to the last record: T0 run start is "now", so only
    // check that there is one.
    assert!(record.summary().damaged);
}

#[test]
fn a_bad_line_in_the_middle_is_skipped_not_fatal() {
    let dir = TempDir::new("lm-journal");
    let journal = Journal::create(&dir.path.join("runs"), &plan_in(&dir.path)).unwrap();
    let run_dir = journal.dir().to_path_buf();
    std::fs::OpenOptions::new()
        .append(true)
        .open(run_dir.join("events.jsonl"))
        .unwrap()
        .write_all(b"not json\n")
        .unwrap();
    journal.record(&Event::run_end(Outcome::Succeeded)).unwrap();
    let record = Journal::open(&run_dir).unwrap();
    assert_eq!(record.status, RunStatus::Succeeded);
    assert_eq!(record.damage.len(), 1);
    assert_eq!(
        (record.damage[0].line, record.damage[0].truncated),
        (2, false)
    );
}

#[test]
fn a_directory_without_events_is_not_a_run() {
    let dir = TempDir::new("lm-journal");
    let error = Journal::open(&dir.path).unwrap_err().to_string();
    assert!(
        error.contains("events.jsonl") && error.contains("run directory"),
        "{error}"
    );
}

#[test]
fn runs_lists_every_run_oldest_first() {
    let dir = TempDir::new("lm-journal");
    let root = dir.path.join("runs");
    let plan = plan_in(&dir.path);
    let first = Journal::create(&root, &plan).unwrap();
    first.record(&Event::run_end(Outcome::Succeeded)).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    let second = Journal::create(&root, &plan).unwrap();
    second.record(&Event::step_start("build/app")).unwrap();
    std::fs::create_dir(root.join("not-a-run")).unwrap();

    let listed = journal::list(&root).unwrap();
    let ids: Vec<&str> = listed.iter().map(|run| run.id.as_str()).collect();
    assert_eq!(ids, [first.id(), second.id()]);
    assert!(first.id() < second.id(), "ids sort by start time");
    assert_eq!(listed[0].result, RunStatus::Succeeded);
    assert_eq!(listed[1].result, RunStatus::Interrupted);

    let output = loadmaster(&["runs", "--root", root.to_str().unwrap(), "-o", "json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json[0]["id"], first.id());
    assert_eq!(json[0]["result"], "succeeded");
    assert_eq!(json[1]["result"], "interrupted");
    assert_eq!(json[1]["plan"], plan.file.to_str().unwrap());
    assert!(json[0]["durationMs"].is_u64());

    let output = loadmaster(&["runs", "--root", root.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains(second.id()) && text.contains("interrupted"),
        "{text}"
    );

    let output = loadmaster(&["runs", "--root", dir.path.join("none").to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("no runs recorded"));
}

#[test]
fn triage_of_a_recorded_run_reads_its_journal_or_its_stored_diagnosis() {
    let dir = TempDir::new("lm-journal-triage");
    let root = dir.path.join("runs");
    let journal = Journal::create(&root, &plan_in(&dir.path)).unwrap();
    // The seed's failure, as the runner records a failed delivery command.
    let argv: Vec<String> = "podman exec -i aianalysis-e2e-control-plane ctr --namespace=k8s.io images import --all-platforms --digests --snapshotter=overlayfs -"
        .split(' ')
        .map(str::to_string)
        .collect();
    journal.record(&Event::step_start("deliver/hapi")).unwrap();
    journal
        .record(&Event::command(
            "deliver/hapi",
            argv,
            Exit {
                code: Some(137),
                signal: None,
                timed_out: false,
            },
            b"time=\"2025-12-15T23:08:22Z\" level=error msg=\"progress stream failed to recv\" error=\"error reading from server: EOF\"\n",
            Duration::from_secs(3),
        ))
        .unwrap();
    journal
        .record(&Event::step_end(
            "deliver/hapi",
            Outcome::Failed,
            Some("the import exited 137".into()),
        ))
        .unwrap();
    journal.record(&Event::run_end(Outcome::Failed)).unwrap();
    let root_arg = root.to_str().unwrap();

    // No stored diagnosis: the journal's failed command is read as a log.
    let output = loadmaster(&["triage", "--root", root_arg, "--output", "json"]);
    assert!(output.status.success(), "{output:?}");
    let diagnosis: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(diagnosis["failed"]["exit_code"], 137, "{diagnosis:#}");
    assert!(
        diagnosis["failed"]["command"]
            .as_str()
            .is_some_and(|c| c.contains("ctr --namespace=k8s.io images import")),
        "{diagnosis:#}"
    );
    assert_eq!(
        diagnosis["root_cause"]["confidence"], "suspected",
        "{diagnosis:#}"
    );

    // A diagnosis stored at failure time (with the live evidence of then) wins.
    let run_dir = root.join(journal::list(&root).unwrap()[0].id.clone());
    std::fs::write(run_dir.join("diagnosis.md"), "# stored at failure time\n").unwrap();
    let output = loadmaster(&["triage", run_dir.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "# stored at failure time\n"
    );

    // An unknown run is the input's fault.
    let output = loadmaster(&["triage", "no-such-run", "--root", root_arg]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}

#[test]
fn doctor_leaves_a_run_that_runs_and_report_read() {
    let dir = TempDir::new("lm-journal-doctor");
    let root = dir.path.join("runs");
    let root_arg = root.to_str().unwrap();
    // Whatever the machine has, the doctor records its findings.
    let doctor = loadmaster(&[
        "doctor",
        "--cluster",
        "lm-journal-doctor",
        "--root",
        root_arg,
        "-o",
        "json",
    ]);
    assert!(matches!(doctor.status.code(), Some(0 | 1)), "{doctor:?}");
    let checks: Value = serde_json::from_slice(&doctor.stdout).unwrap();

    let runs = journal::list(&root).unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].command, "doctor");
    assert_eq!(runs[0].cluster.as_deref(), Some("lm-journal-doctor"));
    assert_eq!(runs[0].plan, None);
    let record = Journal::open(&root.join(&runs[0].id)).unwrap();
    let findings = record
        .events
        .iter()
        .find_map(|e| match &e.body {
            EventBody::Preflight { findings, .. } => Some(findings.len()),
            _ => None,
        })
        .expect("a preflight event");
    assert_eq!(findings, checks["findings"].as_array().unwrap().len());
    let failed = checks["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["status"] == "fail");
    let expected = if failed {
        RunStatus::Failed
    } else {
        RunStatus::Succeeded
    };
    assert_eq!(record.status, expected);

    let listed = loadmaster(&["runs", "--root", root_arg]);
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(
        table.contains("COMMAND") && table.contains("doctor"),
        "{table}"
    );
    let report = loadmaster(&["report", "--root", root_arg, "--format", "md"]);
    assert!(report.status.success(), "{report:?}");
}
