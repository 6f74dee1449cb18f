//! `loadmaster triage --log FILE`: a diagnosis of a failed run from its log.
//!
//! Log-only triage needs no engine: it reads the log and names, for the
//! engine the log (or `--engine`) shows, the evidence still to collect.

use super::CommandError;
use crate::engine::{EngineChoice, EngineKind};
use crate::triage::{self, render};
use clap::ValueEnum;
use std::io::{self, Read, Write};
use std::path::PathBuf;

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
    let mut case = triage::log::scan(&text, &name);
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
