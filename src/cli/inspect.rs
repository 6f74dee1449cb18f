//! `loadmaster engine` and `loadmaster clusters`: what is there.

use super::{CommandError, Output};
use crate::cluster::{self, Cluster};
use crate::engine::{Engine, EngineInfo, Location, Selection};
use crate::units::bytes;
use serde::Serialize;
use std::io::{self, Write};

#[derive(Serialize)]
struct EngineReport<'a> {
    reason: &'a str,
    #[serde(flatten)]
    info: &'a EngineInfo,
}

pub fn engine(selection: Selection, output: Output) -> Result<(), CommandError> {
    let info = selection.engine.info()?;
    let mut out = io::stdout().lock();
    match output {
        Output::Json => {
            let report = EngineReport {
                reason: &selection.reason,
                info: &info,
            };
            serde_json::to_writer_pretty(&mut out, &report).map_err(io::Error::from)?;
            writeln!(out)?;
        }
        Output::Text => {
            let location = match info.location {
                Location::Local => "on this machine",
                Location::VirtualMachine => "in a VM: the figures below are the VM's",
                Location::Remote => "remote",
            };
            writeln!(
                out,
                "engine:   {} {} ({location})",
                info.engine, info.version
            )?;
            writeln!(out, "chosen:   {}", selection.reason)?;
            writeln!(out, "memory:   {}", bytes(info.memory_bytes))?;
            writeln!(out, "cpus:     {}", info.cpus)?;
            writeln!(
                out,
                "storage:  {} at {}",
                info.storage_driver, info.storage_root
            )?;
            writeln!(out, "cgroup:   v{}", info.cgroup_version)?;
            writeln!(
                out,
                "rootless: {}",
                if info.rootless { "yes" } else { "no" }
            )?;
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct ClustersReport {
    /// The selected engine.
    engine: crate::engine::EngineKind,
    reason: String,
    /// Clusters on every engine that answers, the selected one's first.
    clusters: Vec<Cluster>,
    /// Clusters that run on the engine that is not selected.
    on_other_engine: Vec<String>,
}

/// One cluster, found as `load` finds it; an error when it is missing or not
/// all of its nodes run.
pub fn cluster(selection: Selection, name: &str, output: Output) -> Result<(), CommandError> {
    let (_, found) = cluster::find(&selection, Some(name))?;
    let mut out = io::stdout().lock();
    match output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut out, &found).map_err(io::Error::from)?;
            writeln!(out)?;
        }
        Output::Text => write_nodes(&mut out, std::slice::from_ref(&found))?,
    }
    found.running_nodes()?;
    Ok(())
}

pub fn clusters(selection: Selection, output: Output) -> Result<(), CommandError> {
    let selected = selection.engine.kind();
    let mut clusters = cluster::list(&selection.engine)?;
    // The other engine may be absent or stopped: then it simply has none.
    let elsewhere = cluster::list(&Engine::new(selected.other())).unwrap_or_default();
    let report = ClustersReport {
        engine: selected,
        reason: selection.reason,
        on_other_engine: elsewhere.iter().map(|c| c.name.clone()).collect(),
        clusters: {
            clusters.extend(elsewhere);
            clusters
        },
    };
    let mut out = io::stdout().lock();
    if output == Output::Json {
        serde_json::to_writer_pretty(&mut out, &report).map_err(io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    if report.clusters.is_empty() {
        writeln!(out, "no kind clusters on docker or podman")?;
        return Ok(());
    }
    write_nodes(&mut out, &report.clusters)?;
    for name in &report.on_other_engine {
        writeln!(
            out,
            "note: cluster {name:?} runs on {}, not on the selected {selected} ({}): use `--engine {}` for it",
            selected.other(),
            report.reason,
            selected.other()
        )?;
    }
    Ok(())
}

fn write_nodes(out: &mut dyn Write, clusters: &[Cluster]) -> io::Result<()> {
    writeln!(
        out,
        "{:<24} {:<8} {:<36} {:<16} STATUS",
        "CLUSTER", "ENGINE", "NODE", "ROLE"
    )?;
    for cluster in clusters {
        for node in &cluster.nodes {
            writeln!(
                out,
                "{:<24} {:<8} {:<36} {:<16} {}",
                cluster.name,
                cluster.engine,
                node.name,
                node.role.to_string(),
                node.status
            )?;
        }
    }
    Ok(())
}
