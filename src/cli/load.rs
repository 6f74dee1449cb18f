//! `loadmaster load`: images into every node of a kind cluster; a failure
//! is diagnosed at once, while its evidence exists, and printed after it.

use super::{CommandError, Output};
use crate::archive;
use crate::cluster;
use crate::deliver::{
    self, ConnectionBytes, DeliverError, DeliveryPath, KnownImage, NodeReport, NodeResult,
    PathChoice, Source, progress,
};
use crate::engine::{Engine, Selection};
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
    pub output: Output,
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
    let progress = progress::for_stderr();
    let options = deliver::Options {
        max_parallel_nodes: args.parallel,
    };
    let picks;
    let sources: Vec<Source> = match &args.archive {
        Some(path) => {
            picks = archive_picks(path, &args.images)?;
            let mut sources = Vec::new();
            for pick in &picks {
                let mut source = super::archive_source(path, pick.name.as_deref())?;
                if let Source::Archive { known, .. } = &mut source {
                    known.clone_from(&pick.known);
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
        let loaded = match source {
            // An image in the engine may go through a push instead of a save.
            Source::Engine { image } => deliver::load_image(
                &engine,
                &found.name,
                &nodes,
                image,
                args.path,
                &options,
                progress.as_ref(),
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
            archive => deliver::load_counted(&engine, &nodes, archive, &options, progress.as_ref())
                .map(|done| {
                    let entry = ImageEntry {
                        image: label.clone(),
                        path: None,
                        reason: None,
                        connection: ConnectionBytes::of(done.from_engine, &done.reports),
                    };
                    (entry, done.reports)
                }),
        };
        match loaded {
            Ok((entry, done)) => {
                images.push(entry);
                reports.extend(done);
            }
            Err(error) => {
                source_failed = Some((label, error));
                break;
            }
        }
    }

    // Diagnosed now, while a failed node's state, cgroup and logs still exist.
    let diagnoses = diagnose_failures(&engine, &reports);
    let source_diagnosis = source_failed.as_ref().map(|(_, error)| {
        let error = error.to_string();
        collect::diagnose_load(
            &engine,
            &LoadFailure {
                node: None,
                error: &error,
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
        let diagnosis = failed
            .iter()
            .map(|(r, d)| format!("Diagnosis of node {}:\n\n{}", r.node, render::markdown(d)))
            .collect::<Vec<_>>()
            .join("\n");
        return Err(CommandError::Diagnosed {
            error: Box::new(CommandError::NodesFailed(lines.join("\n"))),
            diagnosis,
        });
    }
    Ok(())
}

/// One image to load out of an archive, in a read of its own.
struct ArchivePick {
    /// The name to pick it by (None: the archive's only image).
    name: Option<String>,
    /// Its blobs, when the archive holds other images too.
    known: Option<KnownImage>,
}

/// The images to load from the archive at `path`: those the user named,
/// else every image the archive names (as `kind load image-archive` loads
/// them). An archive of several images is read once first, to learn its
/// images and their blobs, so that each image's read sends only its own.
/// Standard input can be read only once: one image, named or the only one.
fn archive_picks(path: &str, named: &[String]) -> Result<Vec<ArchivePick>, CommandError> {
    let unread = |name: Option<&String>| ArchivePick {
        name: name.cloned(),
        known: None,
    };
    if path == "-" || named.len() == 1 {
        if named.len() > 1 {
            return Err(CommandError::BadInput(format!(
                "standard input can be read only once, so --archive - loads one image, not {}: save the archive to a file and give its path",
                named.len()
            )));
        }
        return Ok(vec![unread(named.first())]);
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
    if let [_only_image] = &held.images[..] {
        return Ok(match named {
            [] => vec![unread(None)],
            names => names.iter().map(|name| unread(Some(name))).collect(),
        });
    }
    let wanted: Vec<String> = match named {
        [] => held
            .images
            .iter()
            .map(|image| {
                image.repo_tags.first().cloned().ok_or_else(|| {
                    CommandError::BadInput(format!(
                        "{path} holds an untagged image (config {}) among others: name the images to load",
                        image.config.digest
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
        names => names.to_vec(),
    };
    wanted
        .into_iter()
        .map(|name| {
            let image = held
                .image_for(&name)
                .map_err(|e| CommandError::BadInput(format!("{path}: {e}")))?;
            Ok(ArchivePick {
                name: Some(name),
                known: Some(KnownImage::of(image)),
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
