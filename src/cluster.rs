//! Kind clusters, found the way kind finds them: by the labels it puts on its
//! node containers. No kind CLI and no Kubernetes API are needed, so this
//! works for any cluster kind created, on docker or on podman.

use crate::engine::{Engine, EngineError, EngineKind, Selection};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// The label naming a node's cluster (set by kind on every node container).
pub const CLUSTER_LABEL: &str = "io.x-k8s.kind.cluster";
/// The label naming a node's role.
pub const ROLE_LABEL: &str = "io.x-k8s.kind.role";
/// kind's default cluster name.
pub const DEFAULT_CLUSTER: &str = "kind";

/// A node's role, from its `io.x-k8s.kind.role` label.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    ControlPlane,
    Worker,
    /// The HA proxy kind adds in front of several control planes: a container
    /// of the cluster, but no Kubernetes node, so images never go there.
    ExternalLoadBalancer,
    #[serde(untagged)]
    Other(String),
}

impl NodeRole {
    fn from_label(label: &str) -> NodeRole {
        match label {
            "control-plane" => NodeRole::ControlPlane,
            "worker" => NodeRole::Worker,
            "external-load-balancer" => NodeRole::ExternalLoadBalancer,
            other => NodeRole::Other(other.to_string()),
        }
    }
}

impl fmt::Display for NodeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeRole::ControlPlane => "control-plane",
            NodeRole::Worker => "worker",
            NodeRole::ExternalLoadBalancer => "external-load-balancer",
            NodeRole::Other(other) => other,
        })
    }
}

/// One node container of a kind cluster.
#[derive(Clone, Debug, Serialize)]
pub struct Node {
    pub name: String,
    pub role: NodeRole,
    /// The container's status: running, exited, paused...
    pub status: String,
    pub running: bool,
}

/// A kind cluster: its name, the engine its nodes run on, and its nodes.
#[derive(Clone, Debug, Serialize)]
pub struct Cluster {
    pub name: String,
    pub engine: EngineKind,
    pub nodes: Vec<Node>,
}

impl Cluster {
    /// The nodes that run Kubernetes (all but kind's load balancer): where
    /// images must go.
    pub fn kubernetes_nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes
            .iter()
            .filter(|node| node.role != NodeRole::ExternalLoadBalancer)
    }

    /// The Kubernetes nodes, or an error naming the first one not running.
    pub fn running_nodes(&self) -> Result<Vec<&Node>, ClusterError> {
        let nodes: Vec<&Node> = self.kubernetes_nodes().collect();
        if let Some(stopped) = nodes.iter().find(|node| !node.running) {
            return Err(ClusterError::NodeNotRunning {
                cluster: self.name.clone(),
                node: stopped.name.clone(),
                status: stopped.status.clone(),
                engine: self.engine,
            });
        }
        Ok(nodes)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no kind cluster {name:?} on {engine}{known}\n  fix: create it with `kind create cluster --name {name}`, or name one with --cluster", known = list_known(.known))]
    NotFound {
        name: String,
        engine: EngineKind,
        known: Vec<String>,
    },

    #[error(
        "kind cluster {name:?} runs on {found_on}, but {selected} was selected ({reason}); kind reports this as \"no nodes found for cluster\"\n  fix: rerun with `--engine {found_on}` (and `export KIND_EXPERIMENTAL_PROVIDER={found_on}` for kind itself)"
    )]
    OnOtherEngine {
        name: String,
        selected: EngineKind,
        reason: String,
        found_on: EngineKind,
    },

    #[error(
        "node {node:?} of kind cluster {cluster:?} is not running (status: {status})\n  fix: start it with `{engine} start {node}`, or recreate the cluster"
    )]
    NodeNotRunning {
        cluster: String,
        node: String,
        status: String,
        engine: EngineKind,
    },

    #[error(transparent)]
    Engine(#[from] EngineError),
}

fn list_known(known: &[String]) -> String {
    if known.is_empty() {
        " (it has no kind clusters)".to_string()
    } else {
        format!(" (it has: {})", known.join(", "))
    }
}

/// Every kind cluster whose nodes run on `engine`, sorted by name.
pub fn list(engine: &Engine) -> Result<Vec<Cluster>, EngineError> {
    let containers = engine.containers_with_label(CLUSTER_LABEL, &[CLUSTER_LABEL, ROLE_LABEL])?;
    let mut by_name: BTreeMap<String, Vec<Node>> = BTreeMap::new();
    for container in containers {
        let Some(cluster) = container.labels.get(CLUSTER_LABEL) else {
            continue;
        };
        let role =
            NodeRole::from_label(container.labels.get(ROLE_LABEL).map_or("", String::as_str));
        by_name.entry(cluster.clone()).or_default().push(Node {
            running: container.running(),
            name: container.name,
            role,
            status: container.state,
        });
    }
    Ok(by_name
        .into_iter()
        .map(|(name, mut nodes)| {
            nodes.sort_by(|a, b| (&a.role, &a.name).cmp(&(&b.role, &b.name)));
            Cluster {
                name,
                engine: engine.kind(),
                nodes,
            }
        })
        .collect())
}

/// The cluster to work on, and the engine its nodes run on.
///
/// Without a name: the only cluster there is, else kind's default `kind`.
/// A cluster missing on the selected engine is looked for on the other one:
/// when the user named the engine that is the docker/podman mismatch, an
/// error saying so; when loadmaster only guessed the engine, it switches.
pub fn find(selection: &Selection, name: Option<&str>) -> Result<(Engine, Cluster), ClusterError> {
    let selected = &selection.engine;
    let clusters = list(selected)?;
    let name = match name {
        Some(name) => name.to_string(),
        None if clusters.len() == 1 => clusters[0].name.clone(),
        None => DEFAULT_CLUSTER.to_string(),
    };
    if let Some(cluster) = clusters.iter().find(|c| c.name == name) {
        return Ok((selected.clone(), cluster.clone()));
    }
    let other = Engine::new(selected.kind().other());
    // The other engine may be absent or stopped; then it has no clusters.
    let elsewhere = list(&other).unwrap_or_default();
    if let Some(cluster) = elsewhere.into_iter().find(|c| c.name == name) {
        if selection.explicit {
            return Err(ClusterError::OnOtherEngine {
                name,
                selected: selected.kind(),
                reason: selection.reason.clone(),
                found_on: other.kind(),
            });
        }
        return Ok((other, cluster));
    }
    Err(ClusterError::NotFound {
        name,
        engine: selected.kind(),
        known: clusters.into_iter().map(|c| c.name).collect(),
    })
}
