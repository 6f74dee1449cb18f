//! `loadmaster report [RUN] [--format html|md|junit] [-o FILE]`: a recorded
//! run's report, from its journal alone. The Markdown summary is also
//! appended to `$GITHUB_STEP_SUMMARY` when that is set, so that a CI step
//! needs no extra plumbing to show it.

use super::CommandError;
use crate::report::{self, ReportError, RunReport};
use std::io::Write;
use std::path::Path;

/// The report's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Html,
    #[value(alias = "markdown")]
    Md,
    Junit,
}

pub fn report(
    root: &Path,
    run: Option<&str>,
    format: Format,
    output: Option<&Path>,
) -> Result<(), CommandError> {
    let dir = report::find_run(root, run)?;
    let loaded = RunReport::load(&dir)?;
    let text = match format {
        Format::Html => report::html::render(&loaded),
        Format::Md => report::markdown::render(&loaded),
        Format::Junit => report::junit::render(&loaded),
    };
    if format == Format::Md
        && let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|s| !s.is_empty())
    {
        // Appended, as GitHub expects: other steps write there too.
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&summary)
            .and_then(|mut file| file.write_all(text.as_bytes()))
            .map_err(|source| ReportError::Write {
                path: summary.into(),
                source,
            })?;
    }
    match output {
        Some(path) => std::fs::write(path, text).map_err(|source| ReportError::Write {
            path: path.to_path_buf(),
            source,
        })?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(())
}
