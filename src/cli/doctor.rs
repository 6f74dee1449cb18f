//! `loadmaster doctor`: the pre-flight, as a table for people or JSON for
//! scripts. Exit 0 when nothing fails, 1 when a check fails, 2 when the
//! doctor could not run (an unreadable or malformed kind config, an engine
//! name it does not know).

use super::record::CommandJournal;
use super::{CommandError, Output};
use crate::doctor::{self, Finding, KindConfig, Need, Options, Report, Side, Status};
use crate::engine::EngineChoice;
use crate::events::{self, Mode};
use crate::journal::{Event, Outcome};
use crate::plan;
use crate::runner::pull_policy;
use crate::runner::steps::preflight::STEP;
use crate::units::bytes;
use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

pub fn doctor(
    engine: Option<EngineChoice>,
    cluster: &str,
    kind_config: Option<&Path>,
    images: Vec<String>,
    root: &Path,
    output: Output,
) -> Result<(), CommandError> {
    let kind_config = match kind_config {
        Some(path) => KindConfig::load(path).map_err(doctor::DoctorError::from)?,
        None => KindConfig::default_cluster(),
    };
    let mut options = Options::from_environment(cluster, kind_config);
    options.engine = engine;
    options.images = images;
    examine(&options, Vec::new(), root, output)
}

/// The doctor for a plan: its cluster, kind config, images and builds,
/// and the image names its deploy steps' manifests use.
pub fn doctor_plan(
    engine: Option<EngineChoice>,
    file: &Path,
    root: &Path,
    output: Output,
) -> Result<(), CommandError> {
    let plan = plan::load(file)?;
    let options = crate::runner::steps::preflight::doctor_options(&plan, root, engine)?;
    let names = pull_policy::findings(&plan, &pull_policy::read_all(&plan));
    examine(&options, names, root, output)
}

/// Runs the checks (and adds `more`, findings made beside the doctor's),
/// records them as a `doctor` run under `root` (each finding in a
/// `preflight` event, as `up` records its pre-flight), prints the report,
/// and fails when a check failed.
fn examine(
    options: &Options,
    more: Vec<Finding>,
    root: &Path,
    output: Output,
) -> Result<(), CommandError> {
    let mut report = doctor::run(options)?;
    report.findings.extend(more);
    record(&report, root);
    let mut out = io::stdout().lock();
    match output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut out, &report).map_err(io::Error::from)?;
            writeln!(out)?;
        }
        Output::Text => write_text(&mut out, &report)?,
    }
    match report.count(Status::Fail) {
        0 => Ok(()),
        failed => Err(CommandError::ChecksFailed { failed }),
    }
}

fn record(report: &Report, root: &Path) {
    // Notes only: the report itself is what `doctor` prints.
    let renderer = events::for_stderr(Mode::None, false);
    let journal = CommandJournal::start(
        root,
        "doctor",
        Some(&report.cluster),
        report.engine,
        renderer,
    );
    let events = &journal.events;
    events.emit(&events::Event::StepStarted { step: STEP });
    events.emit(&events::Event::Recorded(&Event::preflight(
        report.findings.clone(),
        Duration::from_millis(report.elapsed_ms),
    )));
    let failed: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| f.status == Status::Fail)
        .map(|f| f.id.as_str())
        .collect();
    let (outcome, error) = if failed.is_empty() {
        (Outcome::Succeeded, None)
    } else {
        (
            Outcome::Failed,
            Some(format!("checks failed: {}", failed.join(", "))),
        )
    };
    events.emit(&events::Event::StepFinished {
        step: STEP,
        outcome,
        duration_ms: report.elapsed_ms,
        error: error.as_deref(),
    });
    journal.finish(outcome);
}

fn write_text(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    let engine = match (&report.engine, &report.engine_reason) {
        (Some(engine), Some(reason)) => format!("{engine} ({reason})"),
        _ => "no engine".to_string(),
    };
    writeln!(
        out,
        "loadmaster doctor: kind cluster {:?} on {engine}\n",
        report.cluster
    )?;
    let width = report
        .findings
        .iter()
        .map(|f| f.id.len())
        .max()
        .unwrap_or(0)
        .max("CHECK".len());
    writeln!(out, "{:<6} {:<width$}  MEASURED", "STATUS", "CHECK")?;
    for finding in &report.findings {
        write_finding(out, finding, width)?;
    }
    writeln!(
        out,
        "\nrequirements ({} node(s)):",
        report.requirements.nodes
    )?;
    write_needs(out, "memory", &report.needs.memory)?;
    write_needs(out, "disk", &report.needs.storage)?;
    write_needs(out, "temp", &report.needs.temp)?;
    if !report.needs.staging.is_empty() {
        write_needs(out, "save", &report.needs.staging)?;
    }
    writeln!(
        out,
        "\n{} failed, {} warnings, {} ok ({} ms)",
        report.count(Status::Fail),
        report.count(Status::Warn),
        report.count(Status::Ok),
        report.elapsed_ms
    )
}

fn write_finding(out: &mut dyn Write, f: &Finding, width: usize) -> io::Result<()> {
    let status = match f.status {
        Status::Ok => "ok",
        Status::Warn => "WARN",
        Status::Fail => "FAIL",
    };
    let indent = " ".repeat(6 + 1 + width + 2);
    writeln!(out, "{status:<6} {:<width$}  {}", f.id, f.measured)?;
    writeln!(out, "{indent}needed: {}", f.needed)?;
    let side = match f.side {
        Some(Side::Engine) => "engine's side: ",
        Some(Side::Client) => "client's side: ",
        None => "",
    };
    writeln!(out, "{indent}from:   {side}{}", f.source)?;
    if let Some(fix) = &f.fix {
        writeln!(out, "{indent}fix:    {fix}")?;
    }
    Ok(())
}

fn write_needs(out: &mut dyn Write, resource: &str, needs: &[Need]) -> io::Result<()> {
    let total: u64 = needs.iter().map(|n| n.bytes).sum();
    writeln!(out, "  {resource:<6} {:>10} in all", bytes(total))?;
    for need in needs {
        writeln!(
            out,
            "         {:>10}  {}: {}",
            bytes(need.bytes),
            need.what,
            need.source
        )?;
    }
    Ok(())
}
