//! `loadmaster push`: images into a registry, only the blobs it lacks.

use super::record::CommandJournal;
use super::{CommandError, Output, select_engine};
use crate::deliver::Source;
use crate::engine::{EngineChoice, EngineKind};
use crate::events::{self, Events, Mode};
use crate::journal::{Event, Outcome};
use crate::push::{self, PushError, PushReport, Pusher, RegistryTarget, Retry};
use crate::runner::registry_delivery::registry_delivery;
use serde::Serialize;
use std::io::{self, Write};
use std::time::Instant;

pub struct PushArgs {
    pub images: Vec<String>,
    pub registry: String,
    pub archive: Option<String>,
    pub allow_http: bool,
    pub cert_dir: Option<std::path::PathBuf>,
    pub output: Output,
    /// Where the push is recorded as a run (`.loadmaster/runs`).
    pub root: std::path::PathBuf,
}

#[derive(Serialize)]
struct PushOutput<'a> {
    registry: &'a str,
    engine: EngineKind,
    images: &'a [PushReport],
    /// Set when a push failed (the images after it were not pushed).
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<Failure<'a>>,
}

#[derive(Serialize)]
struct Failure<'a> {
    image: &'a str,
    error: String,
    retries: &'a [Retry],
}

pub fn push(engine_flag: Option<EngineChoice>, args: PushArgs) -> Result<(), CommandError> {
    // Everything the user typed is checked before the engine is asked.
    let target = RegistryTarget {
        cert_dir: args.cert_dir.clone(),
        ..RegistryTarget::parse(&args.registry, args.allow_http).map_err(PushError::from)?
    };
    if args.images.is_empty() {
        return Err(CommandError::BadInput(match args.archive {
            Some(_) => {
                "name the image to push from the archive (`loadmaster push app:1 --archive FILE`)"
                    .into()
            }
            None => "name at least one image to push".into(),
        }));
    }
    if args.archive.is_some() && args.images.len() > 1 {
        return Err(CommandError::BadInput(
            "--archive pushes one image: name only that one".into(),
        ));
    }
    for image in &args.images {
        push::destination_of(image)?;
    }
    let engine = select_engine(engine_flag)?.engine;
    let events = Events::new(vec![events::for_stderr(Mode::Auto, false)]);
    let progress = events.push(None);
    let mut pusher = Pusher::new(&engine, &target, &progress)?;

    let journal = CommandJournal::start(&args.root, "push", None, Some(engine.kind()));
    let mut reports = Vec::new();
    let mut failed: Option<(&str, PushError, Vec<Retry>)> = None;
    for image in &args.images {
        let source = match &args.archive {
            None => Source::Engine { image },
            Some(path) => super::archive_source(path, Some(image))?,
        };
        let step = format!("push/{image}");
        journal.record(&Event::step_start(&step));
        let started = Instant::now();
        let pushed = pusher.push(image, source);
        let outcome = pushed.as_ref().map_err(ToString::to_string);
        journal.record(&Event::in_step(
            &step,
            registry_delivery(image, &target.host, outcome, started.elapsed()),
        ));
        match pushed {
            Ok(report) => {
                journal.record(&Event::step_end(&step, Outcome::Succeeded, None));
                reports.push(report);
            }
            Err(error) => {
                // The engine command that failed (its `save`), as facts.
                if let PushError::Engine(engine_error) = &error
                    && let Some(command) = engine_error.failed_command()
                {
                    journal.record(&Event::failed_command(&step, &command, started.elapsed()));
                }
                let message = error.to_string();
                journal.record(&Event::step_end(
                    &step,
                    Outcome::Failed,
                    Some(message.lines().next().unwrap_or_default().to_string()),
                ));
                failed = Some((image, error, pusher.take_retries()));
                break;
            }
        }
    }
    journal.finish(if failed.is_some() {
        Outcome::Failed
    } else {
        Outcome::Succeeded
    });

    if args.output == Output::Json {
        let output = PushOutput {
            registry: &target.host,
            engine: engine.kind(),
            images: &reports,
            failure: failed.as_ref().map(|(image, error, retries)| Failure {
                image,
                error: error.to_string(),
                retries,
            }),
        };
        let mut out = io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &output).map_err(io::Error::from)?;
        writeln!(out)?;
    }
    match failed {
        None => Ok(()),
        Some((image, error, _)) => Err(CommandError::PushFailed {
            image: image.to_string(),
            error: Box::new(error),
        }),
    }
}
