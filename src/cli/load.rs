//! `loadmaster load`: images into every node of a kind cluster.

use super::{CommandError, Output};
use crate::cluster;
use crate::deliver::{self, NodeReport, NodeResult, PathChoice, Source, progress};
use crate::engine::Selection;
use serde::Serialize;
use std::io::{self, Write};

pub struct LoadArgs {
    pub images: Vec<String>,
    pub cluster: Option<String>,
    pub nodes: Option<Vec<String>>,
    pub archive: Option<String>,
    pub path: PathChoice,
    pub output: Output,
}

#[derive(Serialize)]
struct LoadReport<'a> {
    cluster: &'a str,
    engine: crate::engine::EngineKind,
    nodes: &'a [NodeReport],
}

pub fn load(selection: Selection, args: LoadArgs) -> Result<(), CommandError> {
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
    let mut reports = Vec::new();
    match &args.archive {
        Some(path) => {
            let (reader, label): (Box<dyn io::Read + Send>, String) = if path == "-" {
                (Box::new(io::stdin()), "standard input".to_string())
            } else {
                let file = std::fs::File::open(path).map_err(|source| CommandError::Input {
                    path: path.clone(),
                    source,
                })?;
                (Box::new(io::BufReader::new(file)), path.clone())
            };
            let source = Source::Archive {
                reader,
                label,
                image: args.images.first().map(String::as_str),
            };
            reports.extend(deliver::load(&engine, &nodes, source, progress.as_ref())?);
        }
        None => {
            if args.images.is_empty() {
                return Err(CommandError::BadInput(
                    "name at least one image to load, or an archive with --archive".into(),
                ));
            }
            for image in &args.images {
                let loaded = deliver::load_image(
                    &engine,
                    &found.name,
                    &nodes,
                    image,
                    args.path,
                    progress.as_ref(),
                )?;
                reports.extend(loaded.reports);
            }
        }
    }

    if args.output == Output::Json {
        let report = LoadReport {
            cluster: &found.name,
            engine: engine.kind(),
            nodes: &reports,
        };
        let mut out = io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &report).map_err(io::Error::from)?;
        writeln!(out)?;
    }
    let failed: Vec<&NodeReport> = reports
        .iter()
        .filter(|r| r.result == NodeResult::Failed)
        .collect();
    if !failed.is_empty() {
        let lines: Vec<String> = failed
            .iter()
            .map(|r| {
                format!(
                    "{} on {}: {}",
                    r.image,
                    r.node,
                    r.error.as_deref().unwrap_or("failed")
                )
            })
            .collect();
        return Err(CommandError::NodesFailed(lines.join("\n")));
    }
    Ok(())
}
