//! `loadmaster report` on recorded runs: a successful run sampled by the
//! real monitor on real test nodes (docker and podman) with a real image
//! delivery, a failed run with the runner's triage artifact, and a run cut
//! short mid-line. Every run here is produced by the journal API
//! (`Journal::create`, `record`, `sample`), the way the runner writes one.
//!
//! The HTML is opened in headless Chromium and screenshotted: each chart's
//! frame (a solid colour of its own) is found in the PNG and must hold the
//! colours of what it draws. The JUnit XML is validated against
//! `tests/fixtures/junit.xsd` with xmllint.

mod support;

use loadmaster::deliver::{self, PathChoice, progress::Silent};
use loadmaster::engine::Engine;
use loadmaster::events::recording::{Recording, node_delivery};
use loadmaster::journal::{
    DiskSpace, Event, EventBody, Exit, HostMemory, Journal, NodeMemory, Outcome, Sample, Timestamp,
};
use loadmaster::monitor::{HostReader, Monitor, NodeSource, Sources};
use loadmaster::plan::{self, Plan};
use loadmaster::report::{self, RunReport, html};
use loadmaster::triage;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use support::{
    Layer, NodeOptions, TempDir, TestCluster, TestImage, engines_under_test, loadmaster,
};

const MIB: u64 = 1 << 20;

fn plan_in(dir: &Path, cluster: &str) -> Plan {
    let file = dir.join("loadmaster.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: loadmaster/v1\ncluster:\n  name: {cluster}\n  existing: true\ntest:\n  command: \"true\"\n"
        ),
    )
    .unwrap();
    plan::load(&file).unwrap()
}

/// An event `seconds` after `t0` (the constructors stamp the current time).
fn at(t0: u64, seconds: f64, mut event: Event) -> Event {
    event.time = Timestamp::from_millis(t0 + (seconds * 1000.0) as u64);
    event
}

/// The journal's start: just after `Journal::create` stamped `run-start`.
fn start() -> u64 {
    Timestamp::now().millis()
}

/// A real command's end, as the runner records it.
fn ran(step: &str, argv: &[&str]) -> Event {
    let started = Instant::now();
    let output = Command::new(argv[0]).args(&argv[1..]).output().unwrap();
    Event::command(
        step,
        argv.iter().map(|a| a.to_string()).collect(),
        Exit::from_status(output.status, false),
        &output.stderr,
        started.elapsed(),
    )
}

/// A sample `seconds` after `t0` with the host, two nodes (limit 512 MiB)
/// and the temp disk.
fn sample(t0: u64, seconds: u64, host_used: u64, node_usage: u64, disk_free: u64) -> Sample {
    let node = |name: &str, usage: u64| NodeMemory {
        node: name.to_string(),
        usage_bytes: usage,
        peak_bytes: Some(usage + MIB),
        limit_bytes: Some(512 * MIB),
    };
    Sample {
        time: Timestamp::from_millis(t0 + seconds * 1000),
        memory: Some(HostMemory {
            total_bytes: 2048 * MIB,
            available_bytes: 2048 * MIB - host_used,
        }),
        nodes: vec![
            node("e2e-control-plane", node_usage),
            node("e2e-worker", node_usage / 2),
        ],
        disks: vec![DiskSpace {
            role: "temp".to_string(),
            path: "/tmp".to_string(),
            available_bytes: disk_free,
            total_bytes: 10_000 * MIB,
        }],
    }
}

/// A run that failed delivering `api` into the worker (the seed's exit
/// 137), with the runner's `diagnosis.json` written by the real triage from
/// the failing command's output. Produced by the journal API, the times
/// set as offsets from the run's start.
fn record_failed_run(root: &Path, plans: &Path) -> PathBuf {
    let journal = Journal::create(root, &plan_in(plans, "e2e")).unwrap();
    let t0 = start();
    let record = |seconds: f64, event: Event| journal.record(&at(t0, seconds, event)).unwrap();
    record(0.0, Event::step_start("cluster"));
    record(7.5, ran("cluster", &["true"]));
    record(8.0, Event::step_end("cluster", Outcome::Succeeded, None));
    // The two builds ran together.
    record(8.0, Event::step_start("build/api"));
    record(9.0, Event::step_start("build/web"));
    record(17.0, Event::step_end("build/web", Outcome::Succeeded, None));
    record(20.0, Event::step_end("build/api", Outcome::Succeeded, None));
    record(20.0, Event::step_start("deliver/api"));
    let log = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed-import-137-kernel-oom.log"),
    )
    .unwrap();
    for (node, result, sent, error) in [
        (
            "e2e-control-plane",
            deliver::NodeResult::Loaded,
            300 * MIB,
            None,
        ),
        (
            "e2e-worker",
            deliver::NodeResult::Failed,
            120 * MIB,
            Some("ctr images import: exit status 137".to_string()),
        ),
    ] {
        let report = deliver::NodeReport {
            node: node.to_string(),
            image: "localhost/api:dev".to_string(),
            reference: "localhost/api:dev".to_string(),
            path: deliver::DeliveryPath::Save,
            result,
            bytes_sent: sent,
            blobs_sent: 4,
            blobs_skipped: 2,
            duration_ms: 5200,
            error,
            failure: None,
        };
        record(25.5, node_delivery("deliver/api", &report));
    }
    // What the load moved across the engine's connection (issue 12, item 3).
    record(
        25.6,
        Event::in_step(
            "deliver/api",
            EventBody::Connection {
                image: "localhost/api:dev".to_string(),
                path: "save".to_string(),
                from_engine: 300 * MIB,
                to_nodes: 420 * MIB,
            },
        ),
    );
    let error = "loading localhost/api:dev into node e2e-worker failed: exit status 137";
    record(
        26.0,
        Event::step_end("deliver/api", Outcome::Failed, Some(error.to_string())),
    );
    record(26.5, Event::run_end(Outcome::Failed));
    for s in 0..=26 {
        journal
            .sample(&sample(
                t0,
                s,
                (400 + s * 40) * MIB,
                (100 + s * 14) * MIB,
                (8000 - s * 60) * MIB,
            ))
            .unwrap();
    }
    // As the runner's on_failure writes it.
    let diagnosis = triage::triage_log(&log, "deliver/api");
    std::fs::write(
        journal.dir().join(report::DIAGNOSIS_FILE),
        triage::render::json(&diagnosis),
    )
    .unwrap();
    journal.dir().to_path_buf()
}

/// A run killed while building: `cluster` done, `build/api` started, the
/// last event and the last sample cut mid-line. Produced by the journal
/// API, then cut as a kill leaves it.
fn record_truncated_run(root: &Path, plans: &Path) -> PathBuf {
    let journal = Journal::create(root, &plan_in(plans, "e2e")).unwrap();
    let t0 = start();
    let record = |seconds: f64, event: Event| journal.record(&at(t0, seconds, event)).unwrap();
    record(0.0, Event::step_start("cluster"));
    record(6.0, Event::step_end("cluster", Outcome::Succeeded, None));
    record(6.0, Event::step_start("build/api"));
    for s in 0..=12 {
        journal
            .sample(&sample(
                t0,
                s,
                (500 + s * 30) * MIB,
                (90 + s * 10) * MIB,
                7000 * MIB,
            ))
            .unwrap();
    }
    let dir = journal.dir().to_path_buf();
    drop(journal);
    let cut = |name: &str, line: String| {
        let half = &line.as_bytes()[..line.len() / 2];
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join(name))
            .unwrap();
        file.write_all(half).unwrap();
    };
    let end = at(
        t0,
        14.0,
        Event::step_end("build/api", Outcome::Succeeded, None),
    );
    cut("events.jsonl", serde_json::to_string(&end).unwrap());
    cut(
        "samples.jsonl",
        serde_json::to_string(&sample(t0, 13, 900 * MIB, 300 * MIB, 7000 * MIB)).unwrap(),
    );
    dir
}

/// Validates JUnit XML against the schema with xmllint.
fn assert_valid_junit(xml: &str, dir: &Path) {
    let file = dir.join("junit.xml");
    std::fs::write(&file, xml).unwrap();
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/junit.xsd");
    let output = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&schema)
        .arg(&file)
        .output()
        .expect("xmllint (Debian libxml2-utils; .ci/run installs it)");
    assert!(
        output.status.success(),
        "not valid JUnit: {}\n{xml}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A decoded RGB(A) screenshot.
struct Screenshot {
    width: usize,
    height: usize,
    channels: usize,
    pixels: Vec<u8>,
}

impl Screenshot {
    fn rgb(&self, x: usize, y: usize) -> [u8; 3] {
        let at = (y * self.width + x) * self.channels;
        [self.pixels[at], self.pixels[at + 1], self.pixels[at + 2]]
    }

    /// The bounding box of the pixels of `colour` (`#rrggbb`).
    fn find(&self, colour: &str) -> Option<(usize, usize, usize, usize)> {
        let want = hex(colour);
        let mut bounds: Option<(usize, usize, usize, usize)> = None;
        for y in 0..self.height {
            for x in 0..self.width {
                if self.rgb(x, y) == want {
                    let b = bounds.get_or_insert((x, y, x, y));
                    *b = (b.0.min(x), b.1.min(y), b.2.max(x), b.3.max(y));
                }
            }
        }
        bounds
    }

    /// Pixels close to `colour` inside a box.
    fn count(&self, (x0, y0, x1, y1): (usize, usize, usize, usize), colour: &str) -> usize {
        let want = hex(colour);
        let mut n = 0;
        for y in y0..=y1 {
            for x in x0..=x1 {
                let got = self.rgb(x, y);
                if (0..3).all(|c| got[c].abs_diff(want[c]) <= 24) {
                    n += 1;
                }
            }
        }
        n
    }
}

fn hex(colour: &str) -> [u8; 3] {
    let v = u32::from_str_radix(colour.trim_start_matches('#'), 16).unwrap();
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

/// Renders `html` in headless Chromium (Debian's `chromium`) and decodes
/// the screenshot.
fn screenshot(html_file: &Path, dir: &Path) -> Screenshot {
    let png = dir.join("report.png");
    let profile = TempDir::new("lm-chromium");
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1200,1800")
        .arg(format!("file://{}", html_file.display()))
        .output()
        .expect("chromium (Debian's chromium package; .ci/run installs it)");
    assert!(
        output.status.success() && png.is_file(),
        "chromium: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    Screenshot {
        width: info.width as usize,
        height: info.height as usize,
        channels: info.color_type.samples(),
        pixels,
    }
}

/// Each chart's frame is on screen, and inside it what the chart draws:
/// `inside[n]` colours for chart n, each at least `min` pixels.
fn assert_charts_drew(shot: &Screenshot, inside: [&[&str]; 4], min: usize) {
    let mut last_bottom = 0;
    for (n, frame) in html::FRAME_COLOURS.iter().enumerate() {
        let (x0, y0, x1, y1) = shot
            .find(frame)
            .unwrap_or_else(|| panic!("chart {n}: no frame {frame} in the screenshot"));
        assert!(
            x1 - x0 > 1000 && y1 - y0 > 60,
            "chart {n}: frame {frame} is {}x{}",
            x1 - x0,
            y1 - y0
        );
        // Laid out one below the other.
        assert!(y0 > last_bottom, "chart {n} overlaps the one above");
        last_bottom = y1;
        let plot = (x0 + 6, y0 + 6, x1 - 6, y1 - 6);
        for colour in inside[n] {
            let found = shot.count(plot, colour);
            assert!(
                found >= min,
                "chart {n}: {found} pixels of {colour} inside its frame, want {min}+"
            );
        }
    }
}

#[test]
fn failed_run_reports_its_failing_step_and_diagnosis_first() {
    let dir = TempDir::new("lm-report-failed");
    let root = dir.path.join("runs");
    let run = record_failed_run(&root, &dir.path);
    let loaded = RunReport::load(&run).unwrap();
    assert!(loaded.missing.is_empty(), "{:?}", loaded.missing);
    let triage = loaded.diagnosis.as_ref().expect("diagnosis.json read");
    assert!(triage.summary.contains("OOM"), "{}", triage.summary);

    let md = report::markdown::render(&loaded);
    let failing = md.find("**failed** `deliver/api`").expect(&md);
    let diagnosis = md.find("**Diagnosis:**").expect(&md);
    let steps = md.find("| step |").expect(&md);
    assert!(failing < diagnosis && diagnosis < steps, "{md}");
    assert!(md.contains("run `") && md.contains("**failed**"), "{md}");
    assert!(md.contains("| `build/web` | succeeded | 8.0 s |"), "{md}");
    assert!(
        md.contains("| `localhost/api:dev` | e2e-worker | failed | 120.0 MiB | 2 | 5.2 s |"),
        "{md}"
    );

    assert!(
        md.contains("| `localhost/api:dev` | save | 300.0 MiB | 420.0 MiB |"),
        "{md}"
    );

    let xml = report::junit::render(&loaded);
    assert_valid_junit(&xml, &dir.path);
    assert!(
        xml.contains("tests=\"4\" failures=\"1\" errors=\"0\""),
        "{xml}"
    );
    assert!(
        xml.contains("<testcase name=\"build/api\" classname=\"loadmaster\" time=\"12.000\"/>"),
        "{xml}"
    );
    assert!(
        xml.contains("<failure message=\"loading localhost/api:dev"),
        "{xml}"
    );

    let page = html::render(&loaded);
    assert!(
        page.contains("<h3>Across the connection to the engine</h3>")
            && page.contains("<td class=\"n\" title=\"314572800 bytes\">300.0 MiB</td><td class=\"n\" title=\"440401920 bytes\">420.0 MiB</td>"),
        "the delivery table shows the connection's bytes"
    );
    let file = dir.path.join("failed.html");
    std::fs::write(&file, &page).unwrap();
    assert!(page.contains(&format!(
        "<title>loadmaster run {}: failed</title>",
        loaded.run.id
    )));
    for text in [
        "cluster",
        "build/api",
        "build/web",
        "deliver/api",
        "<h2>Triage</h2>",
        "e2e-worker",
    ] {
        assert!(page.contains(text), "{text} missing from the page");
    }
    // Each step's peak, on the host's chart and on the nodes'; each series'
    // limit.
    assert_eq!(page.matches("<title>peak of ").count(), 8, "{page}");
    assert!(page.contains("<title>peak of deliver/api: 1.4 GiB</title>"));
    assert!(page.contains("<title>node e2e-worker limit: 512.0 MiB</title>"));
    assert!(page.contains("/tmp (temp) free (size 9.8 GiB)"));
    assert!(page.contains("<title>engine host / VM used limit: 2.0 GiB</title>"));
    // Nothing that would be fetched: the page stands alone.
    for reference in ["src=", "href=", "url(", "@import"] {
        assert!(
            !page.contains(reference),
            "the page refers out: {reference}"
        );
    }
    let shot = screenshot(&file, &dir.path);
    // Gantt: the succeeded bars and the failed one; memory: the host line,
    // the two nodes'; disk: the temp disk's line.
    assert_charts_drew(
        &shot,
        [
            &["#2e9e44", "#d62828"],
            &["#1d4ed8"],
            &["#c2185b", "#0891b2"],
            &["#1d4ed8"],
        ],
        150,
    );
}

/// A step error carrying a tool's coloured stderr (ANSI escapes, a bell):
/// XML 1.0 cannot hold C0 control characters, even escaped, so the JUnit
/// report drops the colour codes and shows the other controls as U+FFFD.
#[test]
fn junit_of_a_step_error_with_terminal_colours_is_valid_xml() {
    let dir = TempDir::new("lm-report-ansi");
    let root = dir.path.join("runs");
    let journal = Journal::create(&root, &plan_in(&dir.path, "e2e")).unwrap();
    let error = "kind create cluster: \u{1b}[31mERROR\u{1b}[0m: failed\u{7} to create\u{0}";
    journal.record(&Event::step_start("cluster")).unwrap();
    journal
        .record(&Event::step_end(
            "cluster",
            Outcome::Failed,
            Some(error.to_string()),
        ))
        .unwrap();
    journal.record(&Event::run_end(Outcome::Failed)).unwrap();
    let loaded = RunReport::load(journal.dir()).unwrap();
    let xml = report::junit::render(&loaded);
    assert_valid_junit(&xml, &dir.path);
    assert!(
        xml.contains("message=\"kind create cluster: ERROR: failed\u{fffd} to create\u{fffd}\""),
        "{xml}"
    );
}

#[test]
fn truncated_run_still_renders_and_says_what_is_missing() {
    let dir = TempDir::new("lm-report-cut");
    let root = dir.path.join("runs");
    let run = record_truncated_run(&root, &dir.path);
    let loaded = RunReport::load(&run).unwrap();
    assert_eq!(loaded.result(), "interrupted");
    let missing = loaded.missing.join("\n");
    assert!(missing.contains("no run-end event"), "{missing}");
    assert!(missing.contains("step build/api has no end"), "{missing}");
    assert!(
        missing.contains("events.jsonl line 5 was cut off mid-line"),
        "{missing}"
    );
    assert!(
        missing.contains("samples.jsonl line 14 was cut off"),
        "{missing}"
    );

    let page = html::render(&loaded);
    assert!(page.contains("<title>loadmaster run"), "{page}");
    assert!(page.contains("This record is incomplete"));
    assert!(
        page.contains(">interrupted</text>"),
        "the Gantt marks the open step"
    );
    assert!(
        page.contains("at least 12.0 s"),
        "duration is a lower bound"
    );
    let file = dir.path.join("cut.html");
    std::fs::write(&file, &page).unwrap();
    let shot = screenshot(&file, &dir.path);
    assert_charts_drew(
        &shot,
        [
            &["#2e9e44", "#f08c00"],
            &["#1d4ed8"],
            &["#c2185b", "#0891b2"],
            &["#1d4ed8"],
        ],
        150,
    );

    let xml = report::junit::render(&loaded);
    assert_valid_junit(&xml, &dir.path);
    assert!(
        xml.contains("<error message=\"the step never ended (the run was killed)\""),
        "{xml}"
    );
    let md = report::markdown::render(&loaded);
    assert!(md.starts_with("## loadmaster run `"), "{md}");
    assert!(md.contains("**interrupted** `build/api`"), "{md}");
    assert!(md.contains("> This record is incomplete"), "{md}");
}

#[test]
fn cli_reports_the_latest_run_and_writes_the_step_summary() {
    let dir = TempDir::new("lm-report-cli");
    let root = dir.path.join("runs");
    record_truncated_run(&root, &dir.path);
    // Ids sort by start time: the failed run is the latest.
    std::thread::sleep(Duration::from_millis(5));
    let failed = record_failed_run(&root, &dir.path);
    let id = failed.file_name().unwrap().to_str().unwrap();
    let root_arg = root.to_str().unwrap();

    let out = dir.path.join("r.html");
    let done = loadmaster(&["report", "--root", root_arg, "-o", out.to_str().unwrap()]);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let page = std::fs::read_to_string(&out).unwrap();
    assert!(page.contains(&format!("<title>loadmaster run {id}: failed</title>")));

    let summary = dir.path.join("summary.md");
    std::fs::write(&summary, "earlier step's summary\n").unwrap();
    let done = Command::new(env!("CARGO_BIN_EXE_loadmaster"))
        .args(["report", "--root", root_arg, "--format", "md"])
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let written = std::fs::read_to_string(&summary).unwrap();
    let stdout = String::from_utf8(done.stdout).unwrap();
    assert_eq!(written, format!("earlier step's summary\n{stdout}"));
    assert!(stdout.contains(&format!("## loadmaster run `{id}`: **failed**")));

    let junit = loadmaster(&["report", id, "--root", root_arg, "--format", "junit"]);
    assert!(junit.status.success());
    assert_valid_junit(&String::from_utf8(junit.stdout).unwrap(), &dir.path);

    let unknown = loadmaster(&["report", "no-such-run", "--root", root_arg]);
    assert_eq!(unknown.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("no run no-such-run under") && stderr.contains("loadmaster runs"),
        "{stderr}"
    );
    let empty = loadmaster(&["report", "--root", dir.path.join("none").to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&empty.stderr).contains("no runs recorded under"));
}

/// A successful run on real test nodes: the monitor samples them, two
/// builds run together, a real image is delivered into both nodes.
#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn successful_run_sampled_on_real_nodes() {
    for kind in engines_under_test() {
        let cluster = TestCluster::start(
            kind,
            1,
            &NodeOptions {
                memory: Some("256m".to_string()),
                ..NodeOptions::default()
            },
        );
        let engine = Engine::new(kind);
        let info = engine.info().unwrap();
        let dir = TempDir::new("lm-report-real");
        let journal = Arc::new(
            Journal::create(&dir.path.join("runs"), &plan_in(&dir.path, &cluster.name)).unwrap(),
        );
        let sources = Sources::for_engine(&info, None);
        let reader: HostReader = sources.reader().cloned().unwrap();
        let monitor = Monitor::start(
            Arc::new(Recording::new(journal.clone(), None)),
            sources,
            Duration::from_millis(200),
        )
        .unwrap();
        for node in &cluster.nodes {
            monitor.watch(NodeSource::find(&engine, &info, &reader, node).unwrap());
        }
        let engine_name = kind.to_string();

        journal.record(&Event::step_start("cluster")).unwrap();
        journal
            .record(&ran(
                "cluster",
                &[&engine_name, "inspect", cluster.control_plane()],
            ))
            .unwrap();
        std::thread::sleep(Duration::from_millis(400));
        journal
            .record(&Event::step_end("cluster", Outcome::Succeeded, None))
            .unwrap();

        // Both builds start before either runs: they overlap, as a batch does.
        let started = Barrier::new(2);
        let images: Vec<TestImage> = std::thread::scope(|scope| {
            let builds: Vec<_> = (0..2u64)
                .map(|n| {
                    let (journal, started) = (&journal, &started);
                    scope.spawn(move || {
                        let image = TestImage::named(kind);
                        let step = format!("build/{}", image.name);
                        journal.record(&Event::step_start(&step)).unwrap();
                        started.wait();
                        image.build(&[Layer {
                            bytes: 2 * MIB,
                            seed: n + 1,
                        }]);
                        journal
                            .record(&Event::step_end(&step, Outcome::Succeeded, None))
                            .unwrap();
                        image
                    })
                })
                .collect();
            builds.into_iter().map(|b| b.join().unwrap()).collect()
        });

        let step = format!("deliver/{}", images[0].name);
        journal.record(&Event::step_start(&step)).unwrap();
        let load = deliver::load_image(
            &engine,
            &cluster.name,
            &cluster.nodes,
            &images[0].name,
            PathChoice::Auto,
            &deliver::Options::default(),
            &Silent,
        )
        .unwrap();
        for node in &load.reports {
            journal.record(&node_delivery(&step, node)).unwrap();
        }
        journal
            .record(&Event::step_end(&step, Outcome::Succeeded, None))
            .unwrap();

        journal.record(&Event::step_start("test")).unwrap();
        journal.record(&ran("test", &["sleep", "0.6"])).unwrap();
        journal
            .record(&Event::step_end("test", Outcome::Succeeded, None))
            .unwrap();
        monitor.stop();
        journal.record(&Event::run_end(Outcome::Succeeded)).unwrap();

        let loaded = RunReport::load(journal.dir()).unwrap();
        assert_eq!(loaded.result(), "succeeded");
        assert!(loaded.missing.is_empty(), "{kind}: {:?}", loaded.missing);
        assert!(
            loaded.run.samples.len() >= 5,
            "{kind}: {} samples",
            loaded.run.samples.len()
        );
        let builds: Vec<_> = loaded
            .run
            .steps
            .iter()
            .filter(|s| s.id.starts_with("build/"))
            .collect();
        assert!(
            builds[1].started < builds[0].ended.unwrap()
                && builds[0].started < builds[1].ended.unwrap(),
            "{kind}: the builds overlap"
        );
        assert_eq!(loaded.deliveries.len(), 2, "{kind}");
        assert!(
            loaded.deliveries.iter().all(|d| d.bytes_sent > 2 * MIB),
            "{kind}: {:?}",
            loaded.deliveries
        );

        let page = html::render(&loaded);
        for text in [
            format!("<title>loadmaster run {}: succeeded</title>", loaded.run.id),
            format!("node {} (limit 256.0 MiB)", cluster.control_plane()),
            format!("build/{}", images[1].name),
            "engine host / VM used".to_string(),
        ] {
            assert!(page.contains(&text), "{kind}: {text} missing");
        }
        assert!(
            !page.contains("<h2>Triage</h2>"),
            "{kind}: no triage for a success"
        );
        let file = dir.path.join("ok.html");
        std::fs::write(&file, &page).unwrap();
        let shot = screenshot(&file, &dir.path);
        // Memory: the host, and the nodes (two nodes at rest use about the
        // same, so the worker's line, drawn last, may cover the control
        // plane's); disk: the engine's storage and temp, temp drawn last
        // (often the same filesystem).
        assert_charts_drew(
            &shot,
            [&["#2e9e44"], &["#1d4ed8"], &["#0891b2"], &["#c2185b"]],
            100,
        );
        let xml = report::junit::render(&loaded);
        assert_valid_junit(&xml, &dir.path);
        assert!(
            xml.contains("tests=\"5\" failures=\"0\" errors=\"0\""),
            "{kind}: {xml}"
        );
    }
}

/// A graph run as the executor records it: the graph, a step that waited
/// for a build and the memory budget, one cancelled; the critical path is
/// the chain of needs that takes longest, marked in the journal's reading
/// and outlined in the Gantt chart, the waits and the cancelled step shown.
#[test]
fn a_graph_run_marks_its_critical_path_waits_and_cancellations() {
    use loadmaster::journal::{GraphStep, Wait, WaitSpan};
    let dir = TempDir::new("lm-report-graph");
    let journal = Journal::create(&dir.path.join("runs"), &plan_in(&dir.path, "e2e")).unwrap();
    let t0 = start();
    let record = |seconds: f64, event: Event| journal.record(&at(t0, seconds, event)).unwrap();
    let step = |id: &str, needs: &[&str]| GraphStep {
        id: id.to_string(),
        needs: needs.iter().map(|n| n.to_string()).collect(),
    };
    record(
        0.0,
        Event::graph(vec![
            step("cluster", &[]),
            step("build/api", &[]),
            step("build/web", &[]),
            step("deliver/api", &["cluster", "build/api"]),
            step("deliver/web", &["cluster", "build/web"]),
            step("deploy/app", &["deliver/api", "deliver/web"]),
        ]),
    );
    let ms = |seconds: u64| Timestamp::from_millis(t0 + seconds * 1000);
    record(0.0, Event::step_start("cluster"));
    record(0.0, Event::step_start("build/api"));
    record(0.0, Event::step_start("build/web"));
    record(5.0, Event::step_end("cluster", Outcome::Succeeded, None));
    record(4.0, Event::step_end("build/web", Outcome::Succeeded, None));
    record(5.0, Event::step_start("deliver/web"));
    record(
        7.0,
        Event::step_end("deliver/web", Outcome::Succeeded, None),
    );
    record(20.0, Event::step_end("build/api", Outcome::Succeeded, None));
    record(
        20.0,
        Event::step_waited(
            "deliver/api",
            vec![
                WaitSpan {
                    wait: Wait::Step {
                        step: "build/api".into(),
                    },
                    from: ms(0),
                    until: ms(20),
                },
                WaitSpan {
                    wait: Wait::DeliverySlot,
                    from: ms(5),
                    until: ms(7),
                },
            ],
        ),
    );
    record(20.0, Event::step_start("deliver/api"));
    record(
        23.0,
        Event::step_end("deliver/api", Outcome::Failed, Some("refused".into())),
    );
    record(
        23.0,
        Event::step_cancelled("deploy/app", "deliver/api failed and it needs it"),
    );
    record(23.0, Event::run_end(Outcome::Failed));

    let run = Journal::open(journal.dir()).unwrap();
    let critical: Vec<&str> = run
        .steps
        .iter()
        .filter(|s| s.critical)
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(critical, ["build/api", "deliver/api"]);
    assert_eq!(run.critical_path_ms, Some(23_000));
    let waited = run.steps.iter().find(|s| s.id == "deliver/api").unwrap();
    assert_eq!(waited.needs, ["cluster", "build/api"]);
    assert_eq!(waited.waits.len(), 2);
    assert_eq!(run.cancelled.len(), 1);
    assert_eq!(run.cancelled[0].step, "deploy/app");

    let page = html::render(&RunReport::load(journal.dir()).unwrap());
    assert_eq!(page.matches("class=\"critical\"").count(), 2, "{page}");
    assert!(
        page.contains("deliver/api waited for step build/api (20.0 s), delivery slot (2.0 s)"),
        "{page}"
    );
    assert!(page.contains("<code>deploy/app</code>: deliver/api failed and it needs it"));
    assert!(page.contains("the critical path"), "{page}");
}
