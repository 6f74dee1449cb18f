//! The parts of a kind cluster config (`kind create cluster --config FILE`)
//! that a pre-flight needs: how many nodes, what kind will name them, and
//! which host ports they will bind.
//!
//! Only these fields are read; everything else kind accepts is ignored, so a
//! config written for a newer kind still loads. A low module of its own: the
//! plan checks the config it names, and the doctor probes its ports.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// A port mapping's protocol, spelled as kind spells it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        })
    }
}

/// A host port the cluster will bind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostPort {
    pub port: u16,
    pub address: IpAddr,
    pub protocol: Protocol,
    /// Where in the kind config it was asked for.
    pub origin: String,
}

/// Where kind binds a host port when the config names no address.
const DEFAULT_LISTEN: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
/// Where kind binds the API server when the config names no address.
const DEFAULT_API_SERVER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A kind config file, reduced to what the doctor checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KindConfig {
    pub path: PathBuf,
    pub control_planes: u32,
    pub workers: u32,
    pub host_ports: Vec<HostPort>,
}

#[derive(Debug, thiserror::Error)]
pub enum KindConfigError {
    #[error(
        "cannot read the kind config {path}: {source}\n  fix: check the path given to --kind-config"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}{at}: not a valid kind config: {message}\n  fix: correct it there (schema: https://kind.sigs.k8s.io/docs/user/configuration/)", at = at(*.line, *.column))]
    Invalid {
        path: PathBuf,
        /// 1-based; 0 when the parser could not say.
        line: usize,
        column: usize,
        message: String,
    },
}

fn at(line: usize, column: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}:{column}")
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    #[serde(default)]
    nodes: Vec<RawNode>,
    #[serde(default)]
    networking: RawNetworking,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawNetworking {
    api_server_address: Option<IpAddr>,
    api_server_port: Option<u16>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawNode {
    #[serde(default)]
    role: RawRole,
    #[serde(default)]
    extra_port_mappings: Vec<RawPortMapping>,
}

#[derive(Deserialize, Default, PartialEq)]
#[serde(rename_all = "kebab-case")]
enum RawRole {
    // kind's default for a node without a role.
    #[default]
    ControlPlane,
    Worker,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPortMapping {
    host_port: Option<u16>,
    listen_address: Option<IpAddr>,
    #[serde(default)]
    protocol: Protocol,
}

impl KindConfig {
    /// kind's default cluster: one control-plane node, no fixed host ports
    /// besides a random API server port.
    pub fn default_cluster() -> KindConfig {
        KindConfig {
            path: PathBuf::new(),
            control_planes: 1,
            workers: 0,
            host_ports: Vec::new(),
        }
    }

    pub fn load(path: &Path) -> Result<KindConfig, KindConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| KindConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        KindConfig::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<KindConfig, KindConfigError> {
        let raw: RawConfig = serde_norway::from_str(text).map_err(|error| {
            let (line, column) = error
                .location()
                .map_or((0, 0), |at| (at.line(), at.column()));
            KindConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message: error.to_string(),
            }
        })?;
        let mut host_ports = Vec::new();
        for (n, node) in raw.nodes.iter().enumerate() {
            for (m, mapping) in node.extra_port_mappings.iter().enumerate() {
                // hostPort 0 or absent: kind picks a free port itself.
                let Some(port) = mapping.host_port.filter(|&p| p != 0) else {
                    continue;
                };
                host_ports.push(HostPort {
                    port,
                    address: mapping.listen_address.unwrap_or(DEFAULT_LISTEN),
                    protocol: mapping.protocol,
                    origin: format!("nodes[{n}].extraPortMappings[{m}]"),
                });
            }
        }
        if let Some(port) = raw.networking.api_server_port.filter(|&p| p != 0) {
            host_ports.push(HostPort {
                port,
                address: raw
                    .networking
                    .api_server_address
                    .unwrap_or(DEFAULT_API_SERVER),
                protocol: Protocol::Tcp,
                origin: "networking.apiServerPort".to_string(),
            });
        }
        let control_planes = raw
            .nodes
            .iter()
            .filter(|n| n.role == RawRole::ControlPlane)
            .count() as u32;
        let workers = raw.nodes.len() as u32 - control_planes;
        Ok(KindConfig {
            path: path.to_path_buf(),
            // No nodes listed: kind makes one control plane.
            control_planes: if raw.nodes.is_empty() {
                1
            } else {
                control_planes
            },
            workers,
            host_ports,
        })
    }

    /// Nodes that run Kubernetes (and receive images).
    pub fn kubernetes_nodes(&self) -> u32 {
        self.control_planes + self.workers
    }

    /// The container names kind will give this cluster's nodes:
    /// `<name>-control-plane`, `-control-plane2`..., `-worker`, `-worker2`...,
    /// and `-external-load-balancer` in front of several control planes.
    pub fn node_names(&self, cluster: &str) -> Vec<String> {
        let numbered = |role: &'static str, count: u32| {
            (1..=count).map(move |n| {
                let suffix = if n == 1 { String::new() } else { n.to_string() };
                format!("{cluster}-{role}{suffix}")
            })
        };
        let mut names: Vec<String> = numbered("control-plane", self.control_planes)
            .chain(numbered("worker", self.workers))
            .collect();
        if self.control_planes > 1 {
            names.push(format!("{cluster}-external-load-balancer"));
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<KindConfig, KindConfigError> {
        KindConfig::parse(text, Path::new("kind.yaml"))
    }

    #[test]
    fn reads_nodes_ports_and_api_server_port() {
        let config = parse(
            "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n  apiServerPort: 6443\nnodes:\n- role: control-plane\n  extraPortMappings:\n  - containerPort: 80\n    hostPort: 8080\n  - containerPort: 53\n    hostPort: 5353\n    listenAddress: 127.0.0.1\n    protocol: UDP\n  - containerPort: 81\n- role: worker\n- role: worker\n",
        )
        .unwrap();
        assert_eq!((config.control_planes, config.workers), (1, 2));
        let ports: Vec<_> = config
            .host_ports
            .iter()
            .map(|p| (p.port, p.address.to_string(), p.protocol))
            .collect();
        assert_eq!(
            ports,
            vec![
                (8080, "0.0.0.0".to_string(), Protocol::Tcp),
                (5353, "127.0.0.1".to_string(), Protocol::Udp),
                (6443, "127.0.0.1".to_string(), Protocol::Tcp),
            ]
        );
        assert_eq!(
            config.node_names("e2e"),
            ["e2e-control-plane", "e2e-worker", "e2e-worker2"]
        );
    }

    #[test]
    fn no_nodes_means_one_control_plane_and_ha_adds_a_load_balancer() {
        assert_eq!(parse("kind: Cluster\n").unwrap().kubernetes_nodes(), 1);
        let ha = parse("nodes:\n- role: control-plane\n- role: control-plane\n- {}\n").unwrap();
        assert_eq!(ha.control_planes, 3);
        assert_eq!(
            ha.node_names("k"),
            [
                "k-control-plane",
                "k-control-plane2",
                "k-control-plane3",
                "k-external-load-balancer"
            ]
        );
    }

    #[test]
    fn errors_say_line_and_column() {
        let error = parse("nodes:\n- role: worker\n  extraPortMappings:\n  - hostPort: 99999\n")
            .unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, KindConfigError::Invalid { line: 4, .. }),
            "{message}"
        );
        assert!(message.starts_with("kind.yaml:4:"), "{message}");

        let error = parse("nodes:\n- role: boss\n").unwrap_err().to_string();
        assert!(error.starts_with("kind.yaml:2:"), "{error}");
    }
}
