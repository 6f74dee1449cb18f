//! `loadmaster load`: images into every node of a kind cluster; a failure
//! is diagnosed at once, while its evidence exists, and printed after it.

use super::record::CommandJournal;
use super::{CommandError, Output};
use crate::archive;
use crate::cluster;
use crate::deliver::{
    self, ConnectionBytes, DeliverError, DeliveryPath, KnownImage, NodeReport, NodeResult,
    PathChoice, Source,
};
use crate::engine::{Engine, Selection};
use crate::events::{self, Event, Events, Mode};
use crate::journal::{self, Outcome};
use crate::triage::collect::{self, LoadFailure};
use crate::triage::{Diagnosis, render};
use serde::Serialize;
use std::io::{self, Write};
use std::thread;

pub struct LoadArgs {
    pub images: Vec<String>,
    pub cluster: Option<String>,
    pub nodes: Option<Vec<String>>,
    pub archive: Option<String>,
    pub parallel: usize,
    pub path: PathChoice,
    /// `os/arch[/variant]`, for archives.
    pub platform: Option<String>,
    /// The image cache's directory and size.
    pub image_cache: Option<(std::path::PathBuf, u64)>,
    pub output: Output,
    /// Where the load is recorded as a run (`.loadmaster/runs`).
    pub root: std::path::PathBuf,
}

#[derive(Serialize)]
struct LoadReport<'a> {
    cluster: &'a str,
    engine: crate::engine::EngineKind,
    /// Each image (or archive) loaded: its path and what crossed the
    /// connection to the engine.
    images: Vec<ImageEntry>,
    nodes: Vec<NodeEntry<'a>>,
    /// Set when the load stopped because its source failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    source_failure: Option<SourceFailure<'a>>,
}

/// How one image was loaded.
#[derive(Serialize)]
struct ImageEntry {
    image: String,
    /// `save` or `push`; absent for an archive.
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<DeliveryPath>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    connection: ConnectionBytes,
}

/// A node's report, with the diagnosis of its failure.
#[derive(Serialize)]
struct NodeEntry<'a> {
    #[serde(flatten)]
    report: &'a NodeReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    diagnosis: Option<&'a Diagnosis>,
}

#[derive(Serialize)]
struct SourceFailure<'a> {
    image: &'a str,
    error: String,
    diagnosis: &'a Diagnosis,
}

pub fn load(selection: Selection, args: LoadArgs) -> Result<(), CommandError> {
    if let Some(platform) = &args.platform {
        let parts: Vec<&str> = platform.split('/').collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(CommandError::BadInput(format!(
                "--platform {platform:?} is not OS/ARCH[/VARIANT] (`linux/amd64`, `linux/arm64/v8`)"
            )));
        }
    }
    // From here a SIGINT or SIGTERM stops the engine and node commands at
    // once (the process layer's watchdog), and the load fails as
    // interrupted, with no image tagged on a node it did not finish.
    crate::process::signal::install();
    let (engine, found) = cluster::find(&selection, args.cluster.as_deref())?;
    let running: Vec<String> = found
        .running_nodes()?
        .iter()
        .map(|n| n.name.clone())
        .collect();
    let nodes = match &args.nodes {
        None => running,
        Some(wanted) => {
            if let Some(unknown) = wanted.iter().find(|n| !running.contains(n)) {
                return Err(CommandError::BadInput(format!(
                    "--nodes names {unknown:?}, which is not a node of kind cluster {:?} (its nodes: {})",
                    found.name,
                    running.join(", ")
                )));
            }
            wanted.clone()
        }
    };
    let journal = CommandJournal::start(
        &args.root,
        "load",
        Some(&found.name),
        Some(engine.kind()),
        events::for_stderr(Mode::Auto, false),
    );
    let events = &journal.events;
    let image_cache = match &args.image_cache {
        Some((dir, max_size)) => Some(
            deliver::cache::ImageCache::open(dir, *max_size)
                .map_err(|e| CommandError::BadInput(e.to_string()))?,
        ),
        None => None,
    };
    let options = deliver::Options {
        max_parallel_nodes: args.parallel,
        image_cache,
    };
    let picks;
    let sources: Vec<Source> = match &args.archive {
        Some(path) => {
            picks = archive_picks(path, &args.images, args.platform.as_deref())?;
            let mut sources = Vec::new();
            for pick in &picks {
                let mut source = super::archive_source(path, Some(&pick.name))?;
                if let Source::Archive {
                    known, platform, ..
                } = &mut source
                {
                    known.clone_from(&pick.known);
                    *platform = args.platform.as_deref();
                }
                sources.push(source);
            }
            sources
        }
        None if args.images.is_empty() => {
            return Err(CommandError::BadInput(
                "name at least one image to load, or an archive with --archive".into(),
            ));
        }
        None => args
            .images
            .iter()
            .map(|image| Source::Engine { image })
            .collect(),
    };
    let mut reports = Vec::new();
    let mut images = Vec::new();
    // The load stops at the first source that fails.
    let mut source_failed: Option<(String, DeliverError)> = None;
    for source in sources {
        let label = source.label();
        let step = format!("load/{label}");
        events.emit(&Event::StepStarted { step: &step });
        // Each node's report reaches the journal as the load's event.
        let progress = events.load(Some(&step));
        let started = std::time::Instant::now();
        let loaded = match source {
            // An image in the engine may go through a push instead of a save.
            Source::Engine { image } => deliver::load_image(
                &engine,
                &found.name,
                &nodes,
                image,
                args.path,
                &options,
                &progress,
            )
            .map(|loaded| {
                let entry = ImageEntry {
                    image: label.clone(),
                    path: Some(loaded.path),
                    reason: Some(loaded.reason),
                    connection: loaded.connection,
                };
                (entry, loaded.reports)
            }),
            archive => {
                deliver::load_counted(&engine, &nodes, archive, &options, &progress).map(|done| {
                    let entry = ImageEntry {
                        image: label.clone(),
                        path: None,
                        reason: None,
                        connection: ConnectionBytes::of(done.from_engine, &done.reports),
                    };
                    (entry, done.reports)
                })
            }
        };
        match loaded {
            Ok((entry, done)) => {
                let failed = done.iter().find(|r| r.result == NodeResult::Failed);
                step_finished(
                    events,
                    &step,
                    started,
                    failed.map(|r| {
                        format!(
                            "loading {} into node {} failed: {}",
                            r.image,
                            r.node,
                            r.error
                                .as_deref()
                                .unwrap_or("failed")
                                .lines()
                                .next()
                                .unwrap_or_default()
                        )
                    }),
                );
                images.push(entry);
                reports.extend(done);
            }
            Err(error) => {
                if let Some(command) = error.facts().and_then(|f| f.command) {
                    let fact = journal::Event::failed_command(&step, &command, started.elapsed());
                    events.emit(&Event::Recorded(&fact));
                }
                let message = error.to_string();
                step_finished(
                    events,
                    &step,
                    started,
                    Some(message.lines().next().unwrap_or_default().to_string()),
                );
                source_failed = Some((label, error));
                break;
            }
        }
    }
    let failed = source_failed.is_some() || reports.iter().any(|r| r.result == NodeResult::Failed);
    journal.finish(match (crate::process::signal::received(), failed) {
        (Some(_), _) => Outcome::Interrupted,
        (None, true) => Outcome::Failed,
        (None, false) => Outcome::Succeeded,
    });

    // Diagnosed now, while a failed node's state, cgroup and logs still exist.
    let diagnoses = diagnose_failures(&engine, &reports);
    let source_diagnosis = source_failed.as_ref().map(|(_, error)| {
        let message = error.to_string();
        let facts = error.facts();
        collect::diagnose_load(
            &engine,
            &LoadFailure {
                node: None,
                error: &message,
                facts: facts.as_ref(),
                archive: error.archive_error(),
            },
        )
    });

    if args.output == Output::Json {
        let report = LoadReport {
            cluster: &found.name,
            engine: engine.kind(),
            images,
            nodes: reports
                .iter()
                .zip(&diagnoses)
                .map(|(report, diagnosis)| NodeEntry {
                    report,
                    diagnosis: diagnosis.as_ref(),
                })
                .collect(),
            source_failure: source_failed.as_ref().zip(source_diagnosis.as_ref()).map(
                |((image, error), diagnosis)| SourceFailure {
                    image,
                    error: error.to_string(),
                    diagnosis,
                },
            ),
        };
        let mut out = io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &report).map_err(io::Error::from)?;
        writeln!(out)?;
    }
    if let (Some((_, error)), Some(diagnosis)) = (source_failed, source_diagnosis) {
        // A plain user error (an image the engine does not have) says all
        // there is: a triage that finds no cause would contradict it.
        if diagnosis.root_cause.is_none() {
            return Err(error.into());
        }
        return Err(CommandError::Diagnosed {
            error: Box::new(error.into()),
            diagnosis: render::markdown(&diagnosis),
        });
    }
    let failed: Vec<(&NodeReport, &Diagnosis)> = reports
        .iter()
        .zip(&diagnoses)
        .filter_map(|(report, diagnosis)| Some((report, diagnosis.as_ref()?)))
        .collect();
    if !failed.is_empty() {
        let lines: Vec<String> = failed
            .iter()
            .map(|(r, _)| {
                format!(
                    "{} on {}: {}",
                    r.image,
                    r.node,
                    r.error.as_deref().unwrap_or("failed")
                )
            })
            .collect();
        let error = CommandError::NodesFailed(lines.join("\n"));
        let diagnosis = failed
            .iter()
            .filter(|(_, d)| d.root_cause.is_some())
            .map(|(r, d)| format!("Diagnosis of node {}:\n\n{}", r.node, render::markdown(d)))
            .collect::<Vec<_>>()
            .join("\n");
        if diagnosis.is_empty() {
            return Err(error);
        }
        return Err(CommandError::Diagnosed {
            error: Box::new(error),
            diagnosis,
        });
    }
    Ok(())
}

/// The end of a step begun at `started`: failed with `error`, else
/// succeeded; interrupted when a signal stopped it.
fn step_finished(events: &Events, step: &str, started: std::time::Instant, error: Option<String>) {
    let outcome = match (&error, crate::process::signal::received()) {
        (_, Some(_)) => Outcome::Interrupted,
        (Some(_), None) => Outcome::Failed,
        (None, None) => Outcome::Succeeded,
    };
    events.emit(&Event::StepFinished {
        step,
        outcome,
        duration_ms: started.elapsed().as_millis() as u64,
        error: error.as_deref(),
    });
}

/// One image to load out of an archive, in a read of its own.
struct ArchivePick {
    /// The name to pick it by, and to give it on the nodes.
    name: String,
    /// Its blobs, when the archive holds other images too.
    known: Option<KnownImage>,
}

/// The images to load from the archive at `path`: those the user named,
/// else every image the archive names (as `kind load image-archive` loads
/// them), learnt by reading it once first; then, in an archive of several
/// images, each image's read sends only its own blobs. Standard input can
/// be read only once: one image, named, since the nodes are asked for it
/// by name before it streams.
fn archive_picks(
    path: &str,
    named: &[String],
    platform: Option<&str>,
) -> Result<Vec<ArchivePick>, CommandError> {
    let unread = |name: &String| ArchivePick {
        name: name.clone(),
        known: None,
    };
    if path == "-" {
        // The nodes are asked for the image by name before it streams.
        return match named {
            [name] => Ok(vec![unread(name)]),
            _ => Err(CommandError::BadInput(format!(
                "--archive - (standard input, read only once) loads one image, named: give its name (`load --archive - app:1`){}",
                if named.is_empty() {
                    ""
                } else {
                    ", or save the archive to a file to load several"
                }
            ))),
        };
    }
    // One image named, of whatever platform the archive picks: no need to
    // read it first. A platform asked for is checked before anything is
    // sent.
    if let [name] = named
        && platform.is_none()
    {
        return Ok(vec![unread(name)]);
    }
    let file = std::fs::File::open(path).map_err(|source| CommandError::Input {
        path: path.to_string(),
        source,
    })?;
    let held = archive::read_archive(
        std::io::BufReader::new(file),
        &mut archive::Discard,
        &archive::Limits::default(),
    )
    .map_err(|e| CommandError::BadInput(format!("{path}: {e}")))?;
    let wanted: Vec<String> = match named {
        [] => held
            .images
            .iter()
            .map(|image| {
                image.repo_tags.first().cloned().ok_or_else(|| {
                    CommandError::BadInput(format!(
                        "{path} holds an untagged image (config {}): name it (`load --archive {path} app:1`)",
                        image.config.digest
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
        names => names.to_vec(),
    };
    // An image saved for several platforms is several entries of one name.
    let mut seen = std::collections::BTreeSet::new();
    let wanted: Vec<String> = wanted
        .into_iter()
        .filter(|n| seen.insert(n.clone()))
        .collect();
    let several = held.images.len() > 1;
    wanted
        .into_iter()
        .map(|name| {
            let image = held
                .image_for_platform(&name, platform)
                .map_err(|e| CommandError::BadInput(format!("{path}: {e}")))?;
            Ok(ArchivePick {
                known: (several || platform.is_some()).then(|| KnownImage::of(image)),
                name,
            })
        })
        .collect()
}

/// The diagnosis of every failed node (`None` for the others), the nodes
/// examined in parallel.
fn diagnose_failures(engine: &Engine, reports: &[NodeReport]) -> Vec<Option<Diagnosis>> {
    thread::scope(|scope| {
        let running: Vec<_> = reports
            .iter()
            .map(|report| {
                (report.result == NodeResult::Failed).then(|| {
                    scope.spawn(move || {
                        let failure = LoadFailure {
                            node: Some(&report.node),
                            error: report.error.as_deref().unwrap_or("the load failed"),
                            facts: report.failure.as_ref(),
                            archive: None,
                        };
                        collect::diagnose_load(engine, &failure)
                    })
                })
            })
            .collect();
        running
            .into_iter()
            .map(|r| r.map(|r| r.join().expect("diagnosis thread panicked")))
            .collect()
    })
}
