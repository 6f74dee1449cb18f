//! `loadmaster triage`: a diagnosis of a failed run, from its log
//! (`--log FILE`) or from its record (`triage [RUN]`).
//!
//! Log-only triage needs no engine: it reads the log and names, for the
//! engine the log (or `--engine`) shows, the evidence still to collect. A
//! recorded run that failed under the runner has the diagnosis taken at that
//! moment, with the live evidence of then (cgroups, kernel log, disks): that
//! one is shown. Otherwise the journal's facts (failed commands with their
//! argv, exit and node, each node's state) are diagnosed as they are
//! ([`triage::recorded`]); only the stderr tails in them are scanned.

use super::CommandError;
use crate::engine::{EngineChoice, EngineKind};
use crate::journal::Journal;
use crate::triage::{self, render};
use clap::ValueEnum;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// How `triage` prints its diagnosis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Report {
    /// For people: a Markdown triage (`text` is accepted, as elsewhere).
    #[value(alias = "text")]
    Markdown,
    /// For scripts: one JSON document (schema: docs/triage-json.md).
    Json,
}

/// Reads the log (`-`: stdin), diagnoses it and prints the diagnosis.
pub fn run(log: PathBuf, engine: Option<EngineChoice>, report: Report) -> Result<(), CommandError> {
    let (name, text) = read_log(&log)?;
    diagnose_text(&text, &name, engine, report)
}

/// The diagnosis of a recorded run (the latest under `root` without `run`).
pub fn recorded(
    root: &Path,
    run: Option<&str>,
    engine: Option<EngineChoice>,
    report: Report,
) -> Result<(), CommandError> {
    let dir = crate::report::find_run(root, run)?;
    let stored = dir.join(match report {
        Report::Markdown => "diagnosis.md",
        Report::Json => "diagnosis.json",
    });
    if let Ok(text) = std::fs::read_to_string(&stored) {
        io::stdout().lock().write_all(text.as_bytes())?;
        return Ok(());
    }
    let record = Journal::open(&dir).map_err(crate::report::ReportError::from)?;
    print(triage::recorded::case(&record), engine, report)
}

fn diagnose_text(
    text: &str,
    name: &str,
    engine: Option<EngineChoice>,
    report: Report,
) -> Result<(), CommandError> {
    print(triage::log::scan(text, name), engine, report)
}

/// Diagnoses a case and prints the diagnosis.
fn print(
    mut case: triage::Case,
    engine: Option<EngineChoice>,
    report: Report,
) -> Result<(), CommandError> {
    // The flag wins over what the log suggests: the user knows the engine.
    match engine {
        Some(EngineChoice::Docker) => case.engine = Some(EngineKind::Docker),
        Some(EngineChoice::Podman) => case.engine = Some(EngineKind::Podman),
        Some(EngineChoice::Auto) | None => {}
    }
    let diagnosis = triage::diagnose(&case);
    let rendered = match report {
        Report::Markdown => render::markdown(&diagnosis),
        Report::Json => render::json(&diagnosis) + "\n",
    };
    io::stdout().lock().write_all(rendered.as_bytes())?;
    Ok(())
}

/// The log's name for evidence sources, and its text. Bytes that are not
/// UTF-8 (binary noise in CI logs) are replaced, not fatal.
fn read_log(path: &PathBuf) -> Result<(String, String), CommandError> {
    let unreadable = |source| CommandError::Input {
        path: path.display().to_string(),
        source,
    };
    let mut bytes = Vec::new();
    let name = if path.as_os_str() == "-" {
        io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .map_err(unreadable)?;
        "stdin".to_string()
    } else {
        bytes = std::fs::read(path).map_err(unreadable)?;
        path.display().to_string()
    };
    Ok((name, String::from_utf8_lossy(&bytes).into_owned()))
}
