//! The Markdown report: a compact summary for a CI job page
//! (`$GITHUB_STEP_SUMMARY`), the failing step and its diagnosis first,
//! then the steps, the deliveries and what the journal lacks.

use super::{Preflight, RunReport, finding_word};
use crate::units;
use crate::units::seconds;
use std::fmt::Write;

/// The report as Markdown.
pub fn render(report: &RunReport) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; `let _ =` keeps that visible.
    let _ = write_summary(&mut out, report);
    out
}

fn write_summary(out: &mut String, r: &RunReport) -> std::fmt::Result {
    let run = &r.run;
    let duration = match (run.duration_ms(), run.ended) {
        (None, _) => "unknown".to_string(),
        (Some(ms), Some(_)) => seconds(ms),
        (Some(ms), None) => format!("at least {}", seconds(ms)),
    };
    writeln!(
        out,
        "## loadmaster run `{}`: **{}**\n\nCluster `{}`, {} steps, {duration}.\n",
        run.id,
        r.result(),
        run.cluster.as_deref().unwrap_or("unknown"),
        run.steps.len()
    )?;
    if let Some(step) = r.failing_step() {
        write!(out, "**{}** `{}`", step.status.word(), step.id)?;
        match &step.error {
            Some(error) => writeln!(out, ": {}\n", cell(error))?,
            None => writeln!(out, "\n")?,
        }
    }
    if let Some(triage) = &r.diagnosis {
        writeln!(out, "**Diagnosis:** {}\n", triage.summary)?;
        if let Some(cause) = &triage.root_cause {
            writeln!(
                out,
                "Root cause: {} ({}): {}\n",
                cause.class, cause.confidence, cause.statement
            )?;
        }
        for (n, step) in triage.fix.iter().enumerate() {
            writeln!(out, "{}. {}", n + 1, step.what)?;
            for command in &step.commands {
                writeln!(out, "   ```sh\n   {}\n   ```", command.run)?;
            }
        }
        if !triage.fix.is_empty() {
            writeln!(out)?;
        }
    }
    write_preflight(out, r)?;
    if !r.missing.is_empty() {
        writeln!(out, "> [!WARNING]\n> This record is incomplete:")?;
        for line in &r.missing {
            writeln!(out, "> - {line}")?;
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "| step | result | duration | peak memory |\n|---|---|---|---|"
    )?;
    for step in &run.steps {
        let duration = step
            .ended
            .map_or("no end".to_string(), |end| seconds(end.since(step.started)));
        let peak = step
            .peaks
            .memory_used_bytes
            .map_or("-".to_string(), units::bytes);
        writeln!(
            out,
            "| `{}` | {} | {duration} | {peak} |",
            step.id,
            step.status.word()
        )?;
    }
    if !r.deliveries.is_empty() {
        writeln!(
            out,
            "\n| image | node | result | sent | blobs skipped | duration |\n|---|---|---|---|---|---|"
        )?;
        for d in &r.deliveries {
            writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} |",
                d.image,
                d.node,
                cell(&d.outcome()),
                units::bytes(d.bytes_sent),
                d.blobs_skipped,
                seconds(d.duration_ms)
            )?;
        }
    }
    if !r.connections.is_empty() {
        writeln!(
            out,
            "\n| image | path | read from the engine | sent to the nodes |\n|---|---|---|---|"
        )?;
        for c in &r.connections {
            writeln!(
                out,
                "| `{}` | {} | {} | {} |",
                c.image,
                c.path,
                units::bytes(c.from_engine),
                units::bytes(c.to_nodes)
            )?;
        }
    }
    Ok(())
}

fn write_preflight(out: &mut String, r: &RunReport) -> std::fmt::Result {
    let Some(preflight) = &r.preflight else {
        return Ok(());
    };
    if let Preflight::Skipped { by } = preflight {
        return writeln!(out, "**Pre-flight:** skipped ({by}).\n");
    }
    let (shown, ok) = preflight.to_show();
    writeln!(
        out,
        "**Pre-flight:** {} warnings or failures, {ok} checks ok.\n",
        shown.len()
    )?;
    if shown.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "| check | status | measured | needed | fix |\n|---|---|---|---|---|"
    )?;
    for f in shown {
        writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            f.id,
            finding_word(f.status),
            cell(&f.measured),
            cell(&f.needed),
            cell(f.fix.as_deref().unwrap_or("-"))
        )?;
    }
    writeln!(out)
}

/// Text fit for one line of Markdown (a step's error can span lines).
fn cell(text: &str) -> String {
    text.replace('\n', " ").replace('|', "\\|")
}
