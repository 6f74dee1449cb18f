//! The HTML report: one self-contained file (inline CSS and hand-written
//! SVG, nothing fetched), so that it can be attached to a CI run and opened
//! anywhere, offline.
//!
//! Sections: summary and result (and what the journal lacks, for a run cut
//! short), the triage of a failed run, a Gantt chart of the steps (one row
//! per step, so builds that ran together show as overlapping bars), memory
//! over time (the engine's host or VM in one chart, the nodes in another:
//! a node's few hundred MiB would be a flat line on the host's scale; each
//! series with its limit as a dashed line, each step's peak marked), disk
//! free over time, and the delivery table.
//!
//! Each chart sits in a solid frame of its own colour ([`FRAME_COLOURS`]):
//! a screenshot test finds the charts by those frames.

use super::{Preflight, RunReport, finding_word};
use crate::journal::{Sample, StepStatus, Timestamp};
use crate::units;
use crate::units::seconds;
use std::fmt::Write;

/// The frame colours of the Gantt, host memory, node memory and disk
/// charts, in that order.
pub const FRAME_COLOURS: [&str; 4] = ["#6a1b9a", "#00695c", "#1565c0", "#8d4f00"];

/// Step bar colours by status.
const SUCCEEDED: &str = "#2e9e44";
const FAILED: &str = "#d62828";
const INTERRUPTED: &str = "#f08c00";
const SKIPPED: &str = "#9e9e9e";
/// Series colours: the engine's host first, then nodes or disks in turn.
const SERIES: [&str; 6] = [
    "#1d4ed8", "#c2185b", "#0891b2", "#7c3aed", "#65a30d", "#b45309",
];

const WIDTH: f64 = 1100.0;
const LEFT: f64 = 210.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 34.0;
const ROW: f64 = 22.0;
const PLOT_HEIGHT: f64 = 240.0;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#1a1a1a;max-width:1120px}
h1{font-size:22px;margin:0 0 8px}h2{font-size:18px;margin:28px 0 8px}
table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.succeeded{color:#1b7a30}.failed{color:#c01818}.interrupted{color:#b86200}.skipped{color:#666}.warning{color:#b86200}
.missing{background:#fff4e0;border:1px solid #f08c00;padding:8px 12px}
.triage{background:#fdecec;border:1px solid #d62828;padding:8px 12px}
pre{background:#f5f5f5;padding:6px 8px;overflow-x:auto}svg{display:block;margin:4px 0}
.legend span{margin-right:14px;font-size:13px}";

/// The report as one HTML document.
pub fn render(report: &RunReport) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; `let _ =` keeps that visible.
    let _ = write_page(&mut out, report);
    out
}

fn write_page(out: &mut String, r: &RunReport) -> std::fmt::Result {
    let run = &r.run;
    writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    )?;
    writeln!(
        out,
        "<title>loadmaster run {}: {}</title><style>{STYLE}</style></head><body>",
        esc(&run.id),
        r.result()
    )?;
    writeln!(
        out,
        "<h1>loadmaster run {} <span class=\"{1}\">{1}</span></h1>",
        esc(&run.id),
        r.result()
    )?;
    writeln!(out, "<table>")?;
    let row = |out: &mut String, key: &str, value: String| {
        writeln!(out, "<tr><th>{key}</th><td>{}</td></tr>", esc(&value))
    };
    row(
        out,
        "Cluster",
        run.cluster.clone().unwrap_or_else(|| "unknown".into()),
    )?;
    row(
        out,
        "Plan",
        run.plan
            .as_ref()
            .map_or("unknown".into(), |p| p.display().to_string()),
    )?;
    row(
        out,
        "Started",
        run.started.map_or("unknown".into(), |t| t.to_string()),
    )?;
    let duration = match (run.duration_ms(), run.ended) {
        (None, _) => "unknown".to_string(),
        (Some(ms), Some(_)) => seconds(ms),
        // No end: the run lasted at least until its last record.
        (Some(ms), None) => format!("at least {}", seconds(ms)),
    };
    row(out, "Duration", duration)?;
    row(out, "Steps", run.steps.len().to_string())?;
    if let Some(step) = r.failing_step() {
        row(
            out,
            "Failing step",
            format!(
                "{} ({}){}",
                step.id,
                step.status.word(),
                step.error
                    .as_ref()
                    .map_or(String::new(), |e| format!(": {e}"))
            ),
        )?;
    }
    writeln!(out, "</table>")?;

    if !r.missing.is_empty() {
        writeln!(
            out,
            "<div class=\"missing\"><strong>This record is incomplete</strong> (the run was interrupted or its journal damaged); what is missing:<ul>"
        )?;
        for line in &r.missing {
            writeln!(out, "<li>{}</li>", esc(line))?;
        }
        writeln!(out, "</ul></div>")?;
    }

    if let Some(triage) = &r.diagnosis {
        writeln!(out, "<h2>Triage</h2><div class=\"triage\">")?;
        writeln!(out, "<p><strong>{}</strong></p>", esc(&triage.summary))?;
        if let Some(cause) = &triage.root_cause {
            writeln!(
                out,
                "<p>Root cause: {} ({}): {}</p>",
                esc(&cause.class),
                esc(&cause.confidence),
                esc(&cause.statement)
            )?;
        }
        if !triage.fix.is_empty() {
            writeln!(out, "<p>Fix:</p><ol>")?;
            for step in &triage.fix {
                write!(out, "<li>{}", esc(&step.what))?;
                for command in &step.commands {
                    let context = command
                        .context
                        .as_ref()
                        .map_or(String::new(), |c| format!("# {c}\n"));
                    write!(out, "<pre>{}{}</pre>", esc(&context), esc(&command.run))?;
                }
                writeln!(out, "</li>")?;
            }
            writeln!(out, "</ol>")?;
        }
        writeln!(out, "</div>")?;
    }

    preflight(out, r)?;
    writeln!(out, "<h2>Timeline</h2>")?;
    gantt(out, r)?;
    writeln!(out, "<h2>Memory of the engine's host or VM</h2>")?;
    host_memory(out, r)?;
    writeln!(out, "<h2>Memory of the nodes</h2>")?;
    node_memory(out, r)?;
    writeln!(out, "<h2>Disk free</h2>")?;
    disk(out, r)?;

    writeln!(out, "<h2>Delivery</h2>")?;
    if r.deliveries.is_empty() {
        writeln!(out, "<p>No image deliveries recorded.</p>")?;
    } else {
        writeln!(
            out,
            "<table><tr><th>image</th><th>node</th><th>path</th><th>result</th><th>bytes sent</th><th>blobs sent</th><th>blobs skipped</th><th>duration</th></tr>"
        )?;
        for d in &r.deliveries {
            writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\" title=\"{} bytes\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&d.image),
                esc(&d.node),
                esc(&d.path),
                esc(&match &d.error {
                    Some(error) => format!("{}: {error}", d.outcome()),
                    None => d.outcome(),
                }),
                d.bytes_sent,
                units::bytes(d.bytes_sent),
                d.blobs_sent,
                d.blobs_skipped,
                seconds(d.duration_ms)
            )?;
        }
        writeln!(out, "</table>")?;
    }
    if !r.connections.is_empty() {
        // For a VM's or a remote engine's link, each way: what the cost of
        // a load is beyond the nodes' own imports.
        writeln!(
            out,
            "<h3>Across the connection to the engine</h3>\n<table><tr><th>image</th><th>path</th><th>read from the engine</th><th>sent to the nodes</th></tr>"
        )?;
        for c in &r.connections {
            writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"n\" title=\"{} bytes\">{}</td><td class=\"n\" title=\"{} bytes\">{}</td></tr>",
                esc(&c.image),
                esc(&c.path),
                c.from_engine,
                units::bytes(c.from_engine),
                c.to_nodes,
                units::bytes(c.to_nodes)
            )?;
        }
        writeln!(out, "</table>")?;
    }
    writeln!(out, "</body></html>")
}

fn preflight(out: &mut String, r: &RunReport) -> std::fmt::Result {
    let Some(preflight) = &r.preflight else {
        return Ok(());
    };
    writeln!(out, "<h2>Pre-flight</h2>")?;
    if let Preflight::Skipped { by } = preflight {
        return writeln!(out, "<p>Skipped ({}).</p>", esc(by));
    }
    let (shown, ok) = preflight.to_show();
    writeln!(
        out,
        "<p>{} warnings or failures, {ok} checks ok.</p>",
        shown.len()
    )?;
    if shown.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "<table><tr><th>check</th><th>status</th><th>measured</th><th>needed</th><th>from</th><th>fix</th></tr>"
    )?;
    for f in shown {
        let word = finding_word(f.status);
        writeln!(
            out,
            "<tr><td>{}</td><td class=\"{word}\">{word}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&f.id),
            esc(&f.measured),
            esc(&f.needed),
            esc(&f.source),
            esc(f.fix.as_deref().unwrap_or("-"))
        )?;
    }
    writeln!(out, "</table>")
}

/// The time span of the charts: the run's start to its end or last record.
fn span(r: &RunReport) -> Option<(Timestamp, Timestamp)> {
    let first = r
        .run
        .started
        .or_else(|| r.run.steps.first().map(|s| s.started))
        .or_else(|| r.run.samples.first().map(|s| s.time))?;
    let last = r.run.ended.or(r.run.last_seen)?;
    Some((first, last.max(Timestamp::from_millis(first.millis() + 1))))
}

/// Maps times to x and values to y inside a chart.
struct Axes {
    from: u64,
    to: u64,
    max: f64,
    height: f64,
}

impl Axes {
    fn x(&self, t: Timestamp) -> f64 {
        let fraction = t.millis().saturating_sub(self.from) as f64 / (self.to - self.from) as f64;
        LEFT + fraction.min(1.0) * (WIDTH - LEFT - RIGHT)
    }

    fn y(&self, value: f64) -> f64 {
        TOP + self.height - (value / self.max).min(1.0) * self.height
    }

    /// The frame, the time axis with ticks in seconds from the start.
    fn frame(&self, out: &mut String, colour: &str, total_height: f64) -> std::fmt::Result {
        writeln!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{total_height}\" font-size=\"12\">"
        )?;
        writeln!(
            out,
            "<rect x=\"2\" y=\"2\" width=\"{}\" height=\"{}\" fill=\"#fff\" stroke=\"{colour}\" stroke-width=\"4\"/>",
            WIDTH - 4.0,
            total_height - 4.0
        )?;
        let total_s = (self.to - self.from) as f64 / 1000.0;
        let step = nice_step(total_s / 8.0);
        let base = TOP + self.height;
        let mut tick = 0.0;
        while tick <= total_s + 1e-9 {
            let x = self.x(Timestamp::from_millis(self.from + (tick * 1000.0) as u64));
            writeln!(
                out,
                "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{base}\" stroke=\"#eee\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{tick}s</text>",
                base + 16.0
            )?;
            tick += step;
        }
        Ok(())
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let raw = raw.max(0.001);
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * power)
}

fn gantt(out: &mut String, r: &RunReport) -> std::fmt::Result {
    let Some((from, to)) = span(r) else {
        return writeln!(out, "<p>No steps recorded.</p>");
    };
    let height = (r.run.steps.len().max(1) as f64) * ROW;
    let axes = Axes {
        from: from.millis(),
        to: to.millis(),
        max: 1.0,
        height,
    };
    let total = TOP + height + BOTTOM;
    axes.frame(out, FRAME_COLOURS[0], total)?;
    for (n, step) in r.run.steps.iter().enumerate() {
        let y = TOP + n as f64 * ROW;
        let x1 = axes.x(step.started);
        // A bar at least 3 px wide, so that an instant step still shows.
        let x2 = axes.x(r.step_end(step)).max(x1 + 3.0);
        let colour = match step.status {
            StepStatus::Succeeded => SUCCEEDED,
            StepStatus::Failed => FAILED,
            StepStatus::Interrupted => INTERRUPTED,
            StepStatus::Skipped => SKIPPED,
        };
        let duration = step
            .ended
            .map_or("no end".to_string(), |end| seconds(end.since(step.started)));
        // What it waited for: a thin line from when the wait began to its
        // start, each reason in its title.
        if let Some(first) = step.waits.iter().map(|w| w.from).min() {
            let reasons: Vec<String> = step
                .waits
                .iter()
                .map(|w| format!("{} ({})", w.wait, seconds(w.until.since(w.from))))
                .collect();
            writeln!(
                out,
                "<rect class=\"wait\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"2\" fill=\"#999\"><title>{} waited for {}</title></rect>",
                axes.x(first),
                y + ROW / 2.0 - 1.0,
                (x1 - axes.x(first)).max(0.0),
                esc(&step.id),
                esc(&reasons.join(", ")),
            )?;
        }
        // The critical path: outlined, and said in its title.
        let (mark, critical) = if step.critical {
            (
                " class=\"critical\" stroke=\"#000\" stroke-width=\"2\"",
                ", on the critical path",
            )
        } else {
            ("", "")
        };
        let needs = if step.needs.is_empty() {
            String::new()
        } else {
            format!("; needs {}", step.needs.join(", "))
        };
        writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><rect x=\"{x1:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"{mark}><title>{}: {}, {duration}{critical}{}</title></rect>",
            LEFT - 8.0,
            y + 15.0,
            esc(&short(&step.id)),
            y + 3.0,
            x2 - x1,
            ROW - 6.0,
            esc(&step.id),
            step.status.word(),
            esc(&needs),
        )?;
        if step.ended.is_none() {
            // After the bar when there is room, else inside its end.
            let (x, anchor, fill) = if x2 + 90.0 <= WIDTH - RIGHT {
                (x2 + 4.0, "start", "#b86200")
            } else {
                (x2 - 4.0, "end", "#fff")
            };
            writeln!(
                out,
                "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\" font-weight=\"bold\" fill=\"{fill}\">interrupted</text>",
                y + 15.0
            )?;
        }
    }
    writeln!(out, "</svg>")?;
    if let Some(length) = r.run.critical_path_ms {
        writeln!(
            out,
            "<p>Outlined: the critical path, the chain of needs whose steps take longest ({} of {} wall time); a grey line before a bar: what the step waited for (hover for why).</p>",
            seconds(length),
            r.run.duration_ms().map_or("unknown".to_string(), seconds),
        )?;
    }
    if !r.run.cancelled.is_empty() {
        writeln!(out, "<p>Cancelled, never started:</p><ul>")?;
        for cancelled in &r.run.cancelled {
            writeln!(
                out,
                "<li><code>{}</code>: {}</li>",
                esc(&cancelled.step),
                esc(&cancelled.because)
            )?;
        }
        writeln!(out, "</ul>")?;
    }
    Ok(())
}

/// A time series: its label, colour, points, and the limit drawn with it.
struct Series {
    label: String,
    colour: &'static str,
    points: Vec<(Timestamp, u64)>,
    limit: Option<u64>,
    /// What the limit is: `limit` for memory, `size` for a disk.
    limit_is: &'static str,
}

fn host_memory(out: &mut String, r: &RunReport) -> std::fmt::Result {
    let samples = &r.run.samples;
    let series = [Series {
        label: "engine host / VM used".to_string(),
        colour: SERIES[0],
        points: samples
            .iter()
            .filter_map(|s| Some((s.time, s.memory?.used_bytes())))
            .collect(),
        limit: samples
            .iter()
            .rev()
            .find_map(|s| Some(s.memory?.total_bytes)),
        limit_is: "limit",
    }];
    let peaks = step_peaks(r, |s| s.memory.map(|m| m.used_bytes()));
    chart(out, r, FRAME_COLOURS[1], &series, &peaks)
}

fn node_memory(out: &mut String, r: &RunReport) -> std::fmt::Result {
    let samples = &r.run.samples;
    let series: Vec<Series> = node_names(samples)
        .into_iter()
        .enumerate()
        .map(|(n, node)| {
            let of = |s: &Sample| s.nodes.iter().find(|m| m.node == node).cloned();
            Series {
                points: samples
                    .iter()
                    .filter_map(|s| Some((s.time, of(s)?.usage_bytes)))
                    .collect(),
                limit: samples.iter().rev().find_map(|s| of(s)?.limit_bytes),
                limit_is: "limit",
                colour: SERIES[(n + 1) % SERIES.len()],
                label: format!("node {node}"),
            }
        })
        .collect();
    // The node that used the most during each step, at that instant.
    let peaks = step_peaks(r, |s| s.nodes.iter().map(|m| m.usage_bytes).max());
    chart(out, r, FRAME_COLOURS[2], &series, &peaks)
}

/// Each step's highest `value` among the samples taken while it ran, and
/// when: the markers on a memory chart.
fn step_peaks(
    r: &RunReport,
    value: impl Fn(&Sample) -> Option<u64>,
) -> Vec<(String, (Timestamp, u64))> {
    r.run
        .steps
        .iter()
        .filter_map(|step| {
            let end = r.step_end(step);
            let peak = r
                .run
                .samples
                .iter()
                .filter(|s| s.time >= step.started && s.time <= end)
                .filter_map(|s| Some((s.time, value(s)?)))
                .max_by_key(|(_, v)| *v)?;
            Some((step.id.clone(), peak))
        })
        .collect()
}

fn disk(out: &mut String, r: &RunReport) -> std::fmt::Result {
    let samples = &r.run.samples;
    let mut paths: Vec<(String, String)> = Vec::new();
    for disk in samples.iter().flat_map(|s| &s.disks) {
        if !paths.iter().any(|(path, _)| *path == disk.path) {
            paths.push((disk.path.clone(), disk.role.clone()));
        }
    }
    let series: Vec<Series> = paths
        .into_iter()
        .enumerate()
        .map(|(n, (path, role))| Series {
            colour: SERIES[n % SERIES.len()],
            points: samples
                .iter()
                .filter_map(|s| {
                    let d = s.disks.iter().find(|d| d.path == path)?;
                    Some((s.time, d.available_bytes))
                })
                .collect(),
            limit: samples
                .iter()
                .rev()
                .find_map(|s| s.disks.iter().find(|d| d.path == path))
                .map(|d| d.total_bytes),
            limit_is: "size",
            label: format!("{path} ({role}) free"),
        })
        .collect();
    chart(out, r, FRAME_COLOURS[3], &series, &[])
}

/// Every node that appears in the samples, in order of appearance.
fn node_names(samples: &[Sample]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for node in samples.iter().flat_map(|s| &s.nodes) {
        if !names.contains(&node.node) {
            names.push(node.node.clone());
        }
    }
    names
}

/// A line chart of byte series over the run, each with its limit dashed,
/// and `peaks` (label, time, value) marked with a triangle.
fn chart(
    out: &mut String,
    r: &RunReport,
    frame: &str,
    series: &[Series],
    peaks: &[(String, (Timestamp, u64))],
) -> std::fmt::Result {
    let Some((from, to)) = span(r) else {
        return writeln!(out, "<p>No samples recorded.</p>");
    };
    if series.iter().all(|s| s.points.is_empty()) {
        return writeln!(
            out,
            "<p>No samples recorded (see the run's sample-note events for why).</p>"
        );
    }
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1).chain(s.limit))
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.05;
    let axes = Axes {
        from: from.millis(),
        to: to.millis(),
        max,
        height: PLOT_HEIGHT,
    };
    axes.frame(out, frame, TOP + PLOT_HEIGHT + BOTTOM)?;
    for fraction in [0.25, 0.5, 0.75, 1.0] {
        let value = max / 1.05 * fraction;
        let y = axes.y(value);
        writeln!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            units::bytes(value as u64)
        )?;
    }
    for s in series {
        if let Some(limit) = s.limit {
            let y = axes.y(limit as f64);
            writeln!(
                out,
                "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{}\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"><title>{} {}: {}</title></line>",
                WIDTH - RIGHT,
                s.colour,
                esc(&s.label),
                s.limit_is,
                units::bytes(limit)
            )?;
        }
        let points: Vec<String> = s
            .points
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", axes.x(*t), axes.y(*v as f64)))
            .collect();
        writeln!(
            out,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"3\" points=\"{}\"><title>{}</title></polyline>",
            s.colour,
            points.join(" "),
            esc(&s.label)
        )?;
    }
    for (label, (time, value)) in peaks {
        let (x, y) = (axes.x(*time), axes.y(*value as f64));
        writeln!(
            out,
            "<path d=\"M{x:.1},{:.1} l-5,-9 h10 z\" fill=\"#111\"><title>peak of {}: {}</title></path>",
            y - 2.0,
            esc(label),
            units::bytes(*value)
        )?;
    }
    writeln!(out, "</svg>")?;
    write!(out, "<div class=\"legend\">")?;
    for s in series {
        write!(
            out,
            "<span><b style=\"color:{}\">&#9632;</b> {}{}</span>",
            s.colour,
            esc(&s.label),
            s.limit.map_or(String::new(), |l| format!(
                " ({} {})",
                s.limit_is,
                units::bytes(l)
            ))
        )?;
    }
    if !peaks.is_empty() {
        write!(out, "<span>&#9660; each step's peak</span>")?;
    }
    writeln!(out, "</div>")
}

/// A step id that fits left of the Gantt chart (the full id is in the
/// bar's tooltip).
fn short(id: &str) -> String {
    const MAX: usize = 30;
    if id.chars().count() <= MAX {
        return id.to_string();
    }
    let tail: String = id.chars().skip(id.chars().count() - (MAX - 1)).collect();
    format!("\u{2026}{tail}")
}

/// Text escaped for HTML content and attribute values.
pub(super) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn long_step_ids_keep_their_end() {
        assert_eq!(short("deploy/db"), "deploy/db");
        let id = "build/registry.example.com/team/very-long-image-name:1.2.3";
        let label = short(id);
        assert_eq!(label.chars().count(), 30);
        assert!(label.starts_with('\u{2026}') && id.ends_with(&label[3..]));
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1.3), 2.0);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(31.0), 50.0);
    }
}
