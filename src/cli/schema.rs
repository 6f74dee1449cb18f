//! `loadmaster schema` and `loadmaster check` (also `loadmaster plan
//! check`): the plan format for editors, and a plan checked without
//! running anything.
//!
//! `check` exits 0 for a valid plan and 2 for an invalid one, every problem
//! on stderr as `file:line:column: where: what`; with `-o json` the
//! resolved plan (defaults filled, paths absolute) goes to stdout, or for
//! an invalid plan the list of problems (`{"file", "valid": false,
//! "problems": [{"line", "column", "at", "message"}]}`).

use super::{CommandError, Output};
use crate::plan::{self, ImageSource, Plan};
use crate::units::bytes;
use std::io::{self, Write};
use std::path::Path;

pub fn schema() -> Result<(), CommandError> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &plan::schema()).map_err(io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

pub fn check(file: &Path, output: Output) -> Result<(), CommandError> {
    let mut out = io::stdout().lock();
    let plan = match plan::load(file) {
        Ok(plan) => plan,
        Err(error) => {
            if output == Output::Json
                && let Some(problems) = error.problems()
            {
                let report = serde_json::json!({
                    "file": file,
                    "valid": false,
                    "problems": problems,
                });
                serde_json::to_writer_pretty(&mut out, &report).map_err(io::Error::from)?;
                writeln!(out)?;
            }
            return Err(error.into());
        }
    };
    match output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut out, &plan).map_err(io::Error::from)?;
            writeln!(out)?;
        }
        Output::Text => write_summary(&mut out, &plan)?,
    }
    Ok(())
}

fn write_summary(out: &mut dyn Write, plan: &Plan) -> io::Result<()> {
    writeln!(out, "{}: valid plan", plan.file.display())?;
    let engine = plan
        .cluster
        .engine
        .map_or("engine chosen at run time".to_string(), |e| e.to_string());
    let how = if plan.cluster.existing {
        "existing"
    } else {
        "created"
    };
    writeln!(out, "  cluster  {} ({how}, {engine})", plan.cluster.name)?;
    for image in &plan.images {
        let source = match &image.source {
            ImageSource::Build(build) => {
                let memory = build.memory.map_or(String::new(), |m| {
                    format!(", peak memory {}", bytes(m.bytes()))
                });
                format!("built from {}{memory}", build.context.display())
            }
            ImageSource::Pull { .. } => "pulled".to_string(),
            ImageSource::Engine => "taken from the engine".to_string(),
            ImageSource::Archive { path } => format!("read from {}", path.display()),
        };
        writeln!(out, "  image    {}: {source}", image.reference)?;
    }
    for name in &plan.deploy_order {
        let step = plan
            .deploy
            .iter()
            .find(|step| &step.name == name)
            .expect("deploy_order names plan steps");
        let needs = if step.needs.is_empty() {
            String::new()
        } else {
            format!(" after {}", step.needs.join(", "))
        };
        writeln!(
            out,
            "  deploy   {name}{needs}: {} wait(s)",
            step.waits.len()
        )?;
    }
    if let Some(test) = &plan.test {
        let command = match &test.command {
            plan::CommandLine::Shell(line) => line.clone(),
            plan::CommandLine::Argv(argv) => argv.join(" "),
        };
        writeln!(out, "  test     {command} (timeout {})", test.timeout)?;
    }
    writeln!(
        out,
        "  teardown on success: {}, on failure: {}",
        action(plan.teardown.on_success),
        action(plan.teardown.on_failure)
    )?;
    Ok(())
}

fn action(action: plan::TeardownAction) -> &'static str {
    match action {
        plan::TeardownAction::Keep => "keep",
        plan::TeardownAction::Delete => "delete",
    }
}
