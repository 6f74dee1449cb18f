//! `loadmaster push`: images into a registry, only the blobs it lacks.

use super::record::CommandJournal;
use super::{CommandError, Output, select_engine};
use crate::deliver::Source;
use crate::engine::{EngineChoice, EngineKind};
use crate::events::{self, Event, Mode};
use crate::journal::{self, Outcome};
use crate::push::{self, PushError, PushReport, Pusher, RegistryTarget, Retry};
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

/// Each image's step: `push/IMAGE`.
const STEP_PREFIX: &str = "push/";

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
    push::check_trust(&target)?;
    let engine = select_engine(engine_flag)?.engine;
    let journal = CommandJournal::start(
        &args.root,
        "push",
        None,
        Some(engine.kind()),
        events::for_stderr(Mode::Auto, false),
    );
    let events = &journal.events;
    // Each image's events under its step, its report the journal's too.
    let progress = events.push_per_image(STEP_PREFIX, &target.host);
    let mut pusher = match Pusher::new(&engine, &target, &progress) {
        Ok(pusher) => pusher,
        // Its trust was checked above: a certificate gone since then.
        Err(error) => {
            journal.finish(Outcome::Failed);
            return Err(error.into());
        }
    };
    let mut reports = Vec::new();
    let mut failed: Option<(&str, PushError, Vec<Retry>)> = None;
    for image in &args.images {
        let source = match &args.archive {
            None => Source::Engine { image },
            Some(path) => super::archive_source(path, Some(image))?,
        };
        let step = format!("{STEP_PREFIX}{image}");
        events.emit(&Event::StepStarted { step: &step });
        let started = Instant::now();
        let finished = |outcome, error: Option<&str>| {
            events.emit(&Event::StepFinished {
                step: &step,
                outcome,
                duration_ms: started.elapsed().as_millis() as u64,
                error,
            })
        };
        match pusher.push(image, source) {
            Ok(report) => {
                finished(Outcome::Succeeded, None);
                reports.push(report);
            }
            Err(error) => {
                let message = error.to_string();
                events.emit(&Event::PushFailed {
                    step: Some(&step),
                    image,
                    registry: &target.host,
                    error: &message,
                    duration_ms: started.elapsed().as_millis() as u64,
                });
                // The engine command that failed (its `save`), as facts.
                if let PushError::Engine(engine_error) = &error
                    && let Some(command) = engine_error.failed_command()
                {
                    let fact = journal::Event::failed_command(&step, &command, started.elapsed());
                    events.emit(&Event::Recorded(&fact));
                }
                finished(Outcome::Failed, message.lines().next());
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
