//! The renderers on one scripted run (a cluster step, two builds together,
//! a delivery into two nodes with bytes moving, a push with a retry, a
//! failed test whose error carries a tool's colours and two lines), with a
//! clock the script sets: their output is compared with snapshots
//! (`src/events/snapshots/`, reviewed with `cargo insta review`).

use super::json::JsonLines;
use super::plain::{ChildOutput, Clock, PlainLines};
use super::terminal::{Frame, Screen};
use super::{Console, Event, Sink};
use crate::archive::Digest;
use crate::deliver::{DeliveryPath, NodeReport, NodeResult};
use crate::journal::Outcome;
use crate::push::{BlobStep, PushReport, Retry};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const MIB: u64 = 1 << 20;
/// 2026-12-02 10:00:00 UTC.
const T0: u64 = 1_796_205_600_000;

fn node_report(node: &str, result: NodeResult, error: Option<&str>) -> NodeReport {
    NodeReport {
        node: node.to_string(),
        image: "app:1".to_string(),
        reference: "docker.io/library/app:1".to_string(),
        path: DeliveryPath::Save,
        result,
        bytes_sent: if error.is_some() { 0 } else { 96 * MIB },
        blobs_sent: 3,
        blobs_skipped: 1,
        duration_ms: 4200,
        error: error.map(str::to_string),
        failure: None,
    }
}

/// The scripted run: each event with its time in seconds after `T0`.
fn script(visit: &mut dyn FnMut(f64, &Event<'_>)) {
    let nodes = ["e2e-control-plane".to_string(), "e2e-worker".to_string()];
    let digest = Digest::of(b"layer");
    let retry = Retry {
        request: "PATCH /v2/ci/api/blobs/uploads/ (sha256:…)".to_string(),
        attempt: 1,
        attempts: 5,
        error: "Connection reset by peer (os error 104)".to_string(),
        wait_ms: 250,
    };
    let pushed = PushReport {
        image: "api:1".to_string(),
        pushed: "127.0.0.1:5000/ci/api:1".to_string(),
        digest,
        config: digest,
        blobs_uploaded: 2,
        blobs_skipped: 1,
        blobs_mounted: 0,
        bytes_uploaded: 12 * MIB,
        read_source: true,
        retries: vec![retry.clone()],
        duration_ms: 3100,
    };
    let loaded = node_report("e2e-control-plane", NodeResult::Loaded, None);
    let failed = node_report(
        "e2e-worker",
        NodeResult::Failed,
        Some("ctr images import: exit status 137 (the node's memory limit is 512.0 MiB)"),
    );
    let coloured = "\u{1b}[31mFAIL\u{1b}[0m: 2 of 14 specs failed\nsee artifacts/test.log";
    let events: Vec<(f64, Event<'_>)> = vec![
        (0.0, Event::StepStarted { step: "cluster" }),
        (
            0.2,
            Event::Note {
                step: Some("cluster"),
                message: "reusing kind cluster e2e (found by its node labels: e2e-control-plane, e2e-worker)",
                kept: true,
            },
        ),
        (
            7.5,
            Event::StepFinished {
                step: "cluster",
                outcome: Outcome::Succeeded,
                duration_ms: 7500,
                error: None,
            },
        ),
        (
            7.5,
            Event::StepStarted {
                step: "build/app:1",
            },
        ),
        (
            8.0,
            Event::StepStarted {
                step: "build/api:1",
            },
        ),
        (
            19.0,
            Event::StepFinished {
                step: "build/api:1",
                outcome: Outcome::Succeeded,
                duration_ms: 11000,
                error: None,
            },
        ),
        (
            20.0,
            Event::StepFinished {
                step: "build/app:1",
                outcome: Outcome::Succeeded,
                duration_ms: 12500,
                error: None,
            },
        ),
        (
            20.0,
            Event::StepStarted {
                step: "deliver/app:1",
            },
        ),
        (
            20.1,
            Event::LoadPath {
                step: Some("deliver/app:1"),
                image: "app:1",
                path: DeliveryPath::Save,
                reason: "no node holds the image's lower layers from an earlier push",
            },
        ),
        (
            20.2,
            Event::LoadStarted {
                step: Some("deliver/app:1"),
                image: "app:1",
                nodes: &nodes,
                total: Some(128 * MIB),
            },
        ),
        (
            20.3,
            Event::NodeInventory {
                step: Some("deliver/app:1"),
                image: "app:1",
                node: "e2e-worker",
                blobs: 12,
                already_present: false,
            },
        ),
        (
            23.2,
            Event::LoadStreaming {
                step: Some("deliver/app:1"),
                image: "app:1",
                read: 32 * MIB,
                sent: &[("e2e-control-plane", 32 * MIB), ("e2e-worker", 30 * MIB)],
            },
        ),
        (
            25.2,
            Event::LoadStreaming {
                step: Some("deliver/app:1"),
                image: "app:1",
                read: 64 * MIB,
                sent: &[("e2e-control-plane", 64 * MIB), ("e2e-worker", 60 * MIB)],
            },
        ),
        (
            26.0,
            Event::NodeLoaded {
                step: Some("deliver/app:1"),
                report: &loaded,
            },
        ),
        (
            26.1,
            Event::NodeLoaded {
                step: Some("deliver/app:1"),
                report: &failed,
            },
        ),
        (
            26.1,
            Event::StepFinished {
                step: "deliver/app:1",
                outcome: Outcome::Failed,
                duration_ms: 6100,
                error: Some(
                    "loading app:1 into node e2e-worker failed: ctr images import: exit status 137",
                ),
            },
        ),
        (
            26.2,
            Event::PushStarted {
                step: None,
                image: "api:1",
                destination: "127.0.0.1:5000/ci/api:1",
                size: Some(20 * MIB),
            },
        ),
        (
            26.3,
            Event::PushBlob {
                step: None,
                image: "api:1",
                digest: &digest,
                blob: BlobStep::Present,
            },
        ),
        (
            26.4,
            Event::PushReading {
                step: None,
                image: "api:1",
                missing: 2,
            },
        ),
        (
            27.0,
            Event::PushRetry {
                step: None,
                image: "api:1",
                retry: &retry,
            },
        ),
        (
            28.0,
            Event::PushStreaming {
                step: None,
                image: "api:1",
                read: 16 * MIB,
                uploaded: 8 * MIB,
            },
        ),
        (
            29.3,
            Event::Pushed {
                step: None,
                registry: "127.0.0.1:5000",
                report: &pushed,
            },
        ),
        (29.5, Event::StepStarted { step: "test" }),
        (
            40.0,
            Event::StepFinished {
                step: "test",
                outcome: Outcome::Failed,
                duration_ms: 10500,
                error: Some(coloured),
            },
        ),
    ];
    for (seconds, event) in &events {
        visit(*seconds, event);
    }
}

/// A clock the test sets.
fn clock() -> (Arc<AtomicU64>, Clock) {
    let now = Arc::new(AtomicU64::new(T0));
    let reading = now.clone();
    (now, Arc::new(move || reading.load(Ordering::SeqCst)))
}

fn at(now: &AtomicU64, seconds: f64) {
    now.store(T0 + (seconds * 1000.0) as u64, Ordering::SeqCst);
}

const CHILDREN: ChildOutput = ChildOutput {
    stdout_for_report: true,
};

#[test]
fn plain_lines_one_event_per_line() {
    let (now, clock) = clock();
    let plain = PlainLines::with_clock(Vec::new(), CHILDREN, true, clock);
    script(&mut |seconds, event| {
        at(&now, seconds);
        plain.event(event);
    });
    let text = String::from_utf8(plain.into_inner()).unwrap();
    assert!(text.lines().all(|l| !l.contains('\u{1b}')), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn plain_lines_for_progress_none_are_notes_only() {
    let (now, clock) = clock();
    let plain = PlainLines::with_clock(Vec::new(), CHILDREN, false, clock);
    script(&mut |seconds, event| {
        at(&now, seconds);
        plain.event(event);
    });
    let text = String::from_utf8(plain.into_inner()).unwrap();
    assert_eq!(
        text,
        "10:00:00.200 cluster: reusing kind cluster e2e (found by its node labels: e2e-control-plane, e2e-worker)\n"
    );
}

#[test]
fn json_lines_are_one_object_per_event() {
    let (now, clock) = clock();
    let json = JsonLines::with_clock(Vec::new(), CHILDREN, clock);
    script(&mut |seconds, event| {
        at(&now, seconds);
        json.event(event);
    });
    let text = String::from_utf8(json.into_inner()).unwrap();
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            value["event"].is_string() && value["time"].is_string(),
            "{line}"
        );
    }
    insta::assert_snapshot!(text);
}

/// The screen lines a sequence of terminal writes leaves, interpreting the
/// escapes the frame uses (cursor up or down N, clear the line, clear to
/// the end), with the screen's blank end dropped.
fn screen(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let mut lines: Vec<String> = vec![String::new()];
    let mut row = 0;
    let mut rest = text.as_str();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("\x1b[") {
            let end = after.find(['A', 'B', 'J', 'K']).unwrap();
            let (arg, letter) = (&after[..end], &after[end..=end]);
            let n: usize = arg.parse().unwrap_or(0);
            match letter {
                "A" => row -= n,
                "B" => {
                    row += n;
                    lines.resize(lines.len().max(row + 1), String::new());
                }
                // From the start of the line (the frame erases only there).
                "J" => {
                    lines.truncate(row + 1);
                    lines[row].clear();
                }
                _ => lines[row].clear(),
            }
            rest = &after[end + 1..];
        } else {
            let c = rest.chars().next().unwrap();
            if c == '\n' {
                row += 1;
                lines.resize(lines.len().max(row + 1), String::new());
            } else {
                lines[row].push(c);
            }
            rest = &rest[c.len_utf8()..];
        }
    }
    while lines.pop_if(|last| last.is_empty()).is_some() {}
    lines
}

/// The terminal screen the script leaves at `width` columns, with a
/// snapshot of the frame taken while the delivery streams.
fn terminal_at(width: usize) -> (Vec<String>, Vec<String>) {
    let mut shown = Screen::new(Vec::new(), width);
    let mut during = Vec::new();
    script(&mut |seconds, event| {
        let now = T0 + (seconds * 1000.0) as u64;
        shown.event(event, now);
        if seconds == 25.2 {
            shown.frame.tick(now, width);
            during = shown.frame.lines();
        }
    });
    let bytes = std::mem::replace(&mut shown.frame, Frame::new(Vec::new(), width)).into_out();
    (screen(&bytes), during)
}

#[test]
fn terminal_at_80_columns() {
    let (lines, during) = terminal_at(80);
    for line in lines.iter().chain(&during) {
        assert!(line.chars().count() <= 80, "{line:?} is longer than 80");
        assert!(!line.contains('\u{1b}'), "{line:?}");
    }
    insta::assert_snapshot!(format!(
        "{}\n--- frame while delivering ---\n{}",
        lines.join("\n"),
        during.join("\n")
    ));
}

#[test]
fn terminal_at_40_columns_wraps_and_shortens() {
    let (lines, during) = terminal_at(40);
    for line in lines.iter().chain(&during) {
        assert!(line.chars().count() <= 40, "{line:?} is longer than 40");
    }
    insta::assert_snapshot!(format!(
        "{}\n--- frame while delivering ---\n{}",
        lines.join("\n"),
        during.join("\n")
    ));
}

#[test]
fn the_frame_has_one_line_per_active_step_and_finished_ones_stay_above() {
    let mut frame = Frame::new(Vec::new(), 80);
    frame.start("build/app:1");
    frame.start("build/db:1");
    frame.tick(0, 80);
    let lines = frame.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("build/app:1") && lines[0].ends_with(" 0s"));
    assert!(lines[1].contains("build/db:1"));

    frame.finish("build/app:1", Some("✓ build/app:1 succeeded (1.0 s)"));
    frame.start("deliver/app:1");
    frame.detail("deliver/app:1", "10.0 MiB of 20.0 MiB, ETA 1s".to_string());
    frame.tick(2000, 80);
    let shown = screen(frame.out_ref());
    assert_eq!(shown[0], "✓ build/app:1 succeeded (1.0 s)", "{shown:?}");
    assert_eq!(shown.len(), 3, "{shown:?}");
    assert!(shown[1].contains("build/db:1 2s"), "{shown:?}");
    assert!(
        shown[2].contains("deliver/app:1") && shown[2].ends_with("10.0 MiB of 20.0 MiB, ETA 1s"),
        "{shown:?}"
    );
    // The spinner turns between ticks.
    assert_ne!(shown[1].chars().next(), lines[1].chars().next());

    frame.finish("build/db:1", Some("✓ build/db:1 succeeded (2.0 s)"));
    frame.finish("deliver/app:1", Some("✓ deliver/app:1 succeeded (1.0 s)"));
    assert!(frame.lines().is_empty());
    assert_eq!(
        screen(frame.out_ref()),
        [
            "✓ build/app:1 succeeded (1.0 s)",
            "✓ build/db:1 succeeded (2.0 s)",
            "✓ deliver/app:1 succeeded (1.0 s)"
        ]
    );
}

#[test]
fn a_childs_unfinished_line_is_not_cut_by_the_frame() {
    let mut frame = Frame::new(Vec::new(), 80);
    frame.start("test");
    frame.output(b"ok 1\nrunning ", |out, chunk| out.write(chunk));
    frame.tick(100, 80);
    frame.output(b"case 2\n", |out, chunk| out.write(chunk));
    let shown = screen(frame.out_ref());
    assert_eq!(shown.len(), 3, "{shown:?}");
    assert_eq!(shown[..2], ["ok 1", "running case 2"]);
    assert!(shown[2].contains("test"), "{shown:?}");
}

/// A pipe whose reader is gone.
struct ClosedPipe;

impl Write for ClosedPipe {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::BrokenPipe.into())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Err(std::io::ErrorKind::BrokenPipe.into())
    }
}

#[test]
fn renderers_on_a_closed_pipe_do_not_panic() {
    let (now, clock) = clock();
    let plain = PlainLines::with_clock(ClosedPipe, CHILDREN, true, clock.clone());
    let json = JsonLines::with_clock(ClosedPipe, CHILDREN, clock);
    let mut terminal = Screen::new(ClosedPipe, 80);
    script(&mut |seconds, event| {
        at(&now, seconds);
        plain.event(event);
        json.event(event);
        terminal.event(event, T0);
    });
    plain.output(Console::Stdout, b"a child's line\n");
    json.output(Console::Stderr, b"a child's line\n");
    terminal.frame.tick(T0, 80);
}

/// A frame drawn at the screen's top left is never erased with a clear to
/// the end from there, which terminals such as tmux take for a whole-screen
/// clear and keep in the scrollback, spinner lines and all.
#[test]
fn the_frame_is_not_erased_with_a_clear_from_its_first_line() {
    let mut frame = Frame::new(Vec::new(), 80);
    frame.start("load/app:1");
    frame.tick(100, 80);
    frame.print("app:1 on e2e-worker: loaded");
    frame.tick(200, 80);
    let written = String::from_utf8(frame.out_ref().clone()).unwrap();
    assert_eq!(written.matches("\x1b[1A").count(), 6, "{written:?}");
    assert!(!written.contains("A\x1b[J"), "{written:?}");
    let shown = screen(frame.out_ref());
    assert_eq!(shown[0], "app:1 on e2e-worker: loaded", "{shown:?}");
    assert_eq!(shown.len(), 2, "{shown:?}");
}
