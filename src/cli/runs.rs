//! `loadmaster runs`: the runs recorded under a journal root (`up`'s and
//! those of `load`, `push` and `doctor`), oldest first, as a table or as JSON.

use super::{CommandError, Output};
use crate::journal::{self, RunStatus};
use std::io::{self, Write};
use std::path::Path;

pub fn runs(root: &Path, output: Output) -> Result<(), CommandError> {
    let runs = journal::list(root)?;
    let mut out = io::stdout().lock();
    if output == Output::Json {
        serde_json::to_writer_pretty(&mut out, &runs).map_err(io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    if runs.is_empty() {
        writeln!(out, "no runs recorded under {}", root.display())?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<28} {:<8} {:<24} {:>9}  {:<12} PLAN",
        "ID", "COMMAND", "STARTED", "DURATION", "RESULT"
    )?;
    for run in &runs {
        let started = run
            .started
            .map_or_else(|| "unknown".to_string(), |t| t.to_string());
        let duration = match (run.duration_ms, run.result) {
            (None, _) => "unknown".to_string(),
            // Interrupted: the run lasted at least this long.
            (Some(ms), RunStatus::Interrupted) => format!(">={:.1}s", ms as f64 / 1000.0),
            (Some(ms), _) => format!("{:.1}s", ms as f64 / 1000.0),
        };
        let mut result = serde_json::to_value(run.result)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        if run.damaged {
            result.push('*');
        }
        // A command without a plan (`load`, `push`) shows its cluster.
        let plan = match (&run.plan, &run.cluster) {
            (Some(plan), _) => plan.display().to_string(),
            (None, Some(cluster)) => format!("- (cluster {cluster})"),
            (None, None) => "-".to_string(),
        };
        writeln!(
            out,
            "{:<28} {:<8} {started:<24} {duration:>9}  {result:<12} {plan}",
            run.id, run.command
        )?;
    }
    if runs.iter().any(|run| run.damaged) {
        writeln!(
            out,
            "* the journal has unreadable lines (a run killed while writing)"
        )?;
    }
    Ok(())
}
