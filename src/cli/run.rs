//! `up`, `test`, `down` and `run`: a plan run by the [`runner`](crate::runner),
//! its outcome printed (a summary, or the report as JSON) and turned into
//! the exit code (`test`: the test's own).

use super::{CommandError, Output};
use crate::engine::EngineChoice;
use crate::plan::{self, TeardownAction};
use crate::runner::{self, Phase, Report, progress};
use std::io::Write;
use std::path::PathBuf;

pub struct RunArgs {
    pub file: PathBuf,
    pub root: PathBuf,
    pub teardown: Option<TeardownAction>,
    pub output: Output,
    pub progress: progress::Mode,
    /// Who said to skip the pre-flight, if anyone did.
    pub skip_preflight: Option<String>,
    /// `--keep-going`.
    pub keep_going: bool,
}

pub fn run(phase: Phase, engine: Option<EngineChoice>, args: RunArgs) -> Result<(), CommandError> {
    let plan = plan::load(&args.file)?;
    let options = runner::Options {
        root: args.root,
        engine,
        teardown: args.teardown,
        progress: args.progress,
        stdout_for_report: args.output == Output::Json,
        skip_preflight: args.skip_preflight,
        keep_going: args.keep_going,
        order: runner::order_from_env(&|name| std::env::var(name).ok()),
    };
    let report = runner::execute(&plan, phase, &options)?;
    match args.output {
        // The run's outcome is its exit code, also when the reader of the
        // report stopped reading (`up -o json | head -1`).
        Output::Json => super::reader_gone(write_report(&report))?,
        Output::Text => {
            let _ = writeln!(std::io::stderr(), "{}", summary(&report));
        }
    }
    match report.exit_code() {
        0 => Ok(()),
        code => Err(CommandError::RunFailed {
            message: report
                .error
                .clone()
                .unwrap_or_else(|| "the run failed".to_string()),
            run_dir: report.run_dir.clone(),
            code,
        }),
    }
}

fn write_report(report: &Report) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, report)?;
    writeln!(out)?;
    out.flush()
}

fn summary(report: &Report) -> String {
    let mut text = format!(
        "loadmaster: {} of cluster {}: {} (run {}, journal in {})",
        word(&report.phase),
        report.cluster,
        word(&report.result),
        report.run_id,
        report.run_dir.display()
    );
    if let Some(code) = report.test_exit_code {
        text.push_str(&format!("\n  test exit code: {code}"));
    }
    if let Some(diagnosis) = &report.diagnosis {
        text.push_str(&format!("\n  diagnosis: {}", diagnosis.display()));
    }
    text
}

/// A unit enum's name as the JSON report spells it (`up`, `failed`).
fn word(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}
