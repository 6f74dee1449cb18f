//! A diagnosis as Markdown (for people, in the order a good triage is read)
//! and as JSON (for scripts; schema in `docs/triage-json.md`).

use super::diagnosis::{CommandLine, Diagnosis, Outcome, Weighed};
use std::fmt::Write;

/// The diagnosis as one pretty-printed JSON document.
pub fn json(diagnosis: &Diagnosis) -> String {
    // Serializing plain data to a String cannot fail.
    serde_json::to_string_pretty(diagnosis).expect("a diagnosis serializes")
}

/// The diagnosis as Markdown: summary, facts, timeline, evidence, root cause,
/// what still works, evidence to collect, fix.
pub fn markdown(d: &Diagnosis) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; `let _ =` keeps that visible.
    let _ = write_markdown(&mut out, d);
    out
}

fn write_markdown(out: &mut String, d: &Diagnosis) -> std::fmt::Result {
    match &d.root_cause {
        Some(root) => writeln!(out, "# Triage: {} ({})\n", root.class, root.confidence)?,
        None => writeln!(out, "# Triage: no failure found\n")?,
    }
    writeln!(out, "**Summary:** {}\n", d.summary)?;

    writeln!(out, "| | |\n|---|---|")?;
    writeln!(out, "| Read | {} |", d.inputs.join(", "))?;
    if let Some(phase) = d.phase {
        writeln!(out, "| Phase | {phase} |")?;
    }
    if let Some(failed) = &d.failed {
        let what = failed
            .command
            .as_ref()
            .map_or(failed.message.clone(), |c| format!("`{c}`"));
        let status = failed
            .exit_code
            .map_or(String::new(), |code| format!(", exit status {code}"));
        writeln!(
            out,
            "| Failed | {}{status} ({}) |",
            cell(&what),
            failed.source
        )?;
        if let Some(node) = &failed.node {
            writeln!(out, "| Node | {node} |")?;
        }
    }
    if let Some(root) = &d.root_cause {
        write!(out, "| Root cause | {}, {}", root.class, root.confidence)?;
        if let Some(suspected) = root.suspected {
            write!(out, "; suspected: {suspected}")?;
        }
        if root.fits.len() > 1 {
            let fits: Vec<&str> = root.fits.iter().map(|c| c.name()).collect();
            write!(out, "; the message fits: {}", fits.join(", "))?;
        }
        writeln!(out, " |")?;
    }
    match d.engine {
        Some(engine) => writeln!(out, "| Engine | {engine} |")?,
        None => writeln!(
            out,
            "| Engine | unknown: commands below are given for both |"
        )?,
    }
    writeln!(out)?;

    if !d.timeline.is_empty() {
        writeln!(out, "## Timeline\n")?;
        for moment in &d.timeline {
            let line = moment.line.map_or(String::new(), |l| format!("line {l}"));
            let time = moment
                .time
                .as_deref()
                .map_or(String::new(), |t| format!(" ({t})"));
            writeln!(out, "- {line}{time}: {}", moment.event)?;
        }
        writeln!(out)?;
    }

    if d.outcome == Outcome::Failure {
        writeln!(out, "## Evidence\n")?;
        writeln!(out, "For:\n")?;
        weighed(out, d, &d.evidence_for)?;
        writeln!(out, "Against:\n")?;
        if d.evidence_against.is_empty() {
            writeln!(out, "- none collected yet\n")?;
        } else {
            weighed(out, d, &d.evidence_against)?;
        }
    }

    if let Some(root) = &d.root_cause {
        writeln!(out, "## Root cause\n")?;
        writeln!(
            out,
            "**{}** ({}): {}\n",
            root.class, root.confidence, root.statement
        )?;
        if !d.also_seen.is_empty() {
            writeln!(out, "Also seen:\n")?;
            for finding in &d.also_seen {
                writeln!(
                    out,
                    "- {} ({}): {}",
                    finding.class, finding.confidence, finding.statement
                )?;
            }
            writeln!(out)?;
        }
    }

    writeln!(out, "## What still works\n")?;
    if d.still_works.is_empty() {
        writeln!(
            out,
            "- The evidence does not show; `loadmaster clusters` lists the clusters and their nodes' states.\n"
        )?;
    } else {
        for item in &d.still_works {
            writeln!(out, "- {item}")?;
        }
        writeln!(out)?;
    }

    if !d.to_collect.is_empty() {
        writeln!(out, "## Evidence to collect\n")?;
        for (n, item) in d.to_collect.iter().enumerate() {
            writeln!(out, "{}. **{}**: {}.", n + 1, item.what, item.why)?;
            commands(out, &item.commands)?;
        }
        writeln!(out)?;
    }

    if !d.fix.is_empty() {
        writeln!(out, "## Fix\n")?;
        for (n, step) in d.fix.iter().enumerate() {
            writeln!(out, "{}. {}", n + 1, step.what)?;
            commands(out, &step.commands)?;
        }
    }
    Ok(())
}

fn weighed(out: &mut String, d: &Diagnosis, items: &[Weighed]) -> std::fmt::Result {
    for item in items {
        let evidence = &d.evidence[item.evidence];
        writeln!(out, "- {}: {}", evidence.source, item.reading)?;
        if let Some(excerpt) = &evidence.excerpt {
            writeln!(out, "  `{}`", excerpt.replace('`', "'"))?;
        }
    }
    writeln!(out)
}

/// Commands as an indented shell block, each with its context as a comment.
fn commands(out: &mut String, commands: &[CommandLine]) -> std::fmt::Result {
    if commands.is_empty() {
        return Ok(());
    }
    writeln!(out, "\n   ```sh")?;
    let mut context = None;
    for command in commands {
        // One comment per run of commands for the same place.
        if command.context.is_some() && command.context != context {
            writeln!(
                out,
                "   # {}",
                command.context.as_deref().unwrap_or_default()
            )?;
        }
        context = command.context.clone();
        writeln!(out, "   {}", command.run)?;
    }
    writeln!(out, "   ```\n")
}

/// Text safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}
