//! KEP-1755, "communicating a local registry": a cluster that has a
//! registry beside it (kind's local registry script, k3d, minikube) says so
//! in the ConfigMap `kube-public/local-registry-hosting`, whose
//! `data.localRegistryHosting.v1` is YAML naming the registry's `host` (as
//! this machine reaches it), `hostFromContainerRuntime` (as the nodes'
//! container runtime reaches it), `hostFromClusterNetwork` and a `help`
//! link. Tilt and Skaffold read it the same way: push to `host`, and name
//! images in manifests by `hostFromContainerRuntime` (else `host`).
//!
//! Reading the ConfigMap is kubectl's job ([`super::kube::Kubectl`]); this
//! module reads what kubectl printed.

use serde::Deserialize;
use std::collections::BTreeMap;

pub const NAMESPACE: &str = "kube-public";
pub const CONFIG_MAP: &str = "local-registry-hosting";
const KEY: &str = "localRegistryHosting.v1";

/// Where the convention is defined, for errors that mention it.
pub const KEP: &str = "https://github.com/kubernetes/enhancements/tree/master/keps/sig-cluster-lifecycle/generic/1755-communicating-a-local-registry";
/// How a kind cluster gets a local registry (and the ConfigMap).
pub const KIND_HELP: &str = "https://kind.sigs.k8s.io/docs/user/local-registry/";

/// A cluster's local registry, as its ConfigMap describes it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalRegistryHosting {
    /// `host[:port]` this machine pushes to.
    pub host: String,
    /// `host[:port]` the nodes' container runtime pulls from, when it
    /// differs from `host`.
    pub host_from_container_runtime: Option<String>,
    /// `host[:port]` pods reach it at.
    pub host_from_cluster_network: Option<String>,
    /// Where the cluster's maintainers explain the registry.
    pub help: Option<String>,
}

/// Why the ConfigMap names no registry.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostingError {
    #[error(
        "the cluster publishes no local registry: there is no ConfigMap {NAMESPACE}/{CONFIG_MAP} (KEP-1755: {KEP})\n  fix: give the registry in the plan (`delivery: {{mode: registry, registry: HOST[/PREFIX]}}`), or create the cluster with a local registry as {KIND_HELP} shows"
    )]
    Absent,
    #[error(
        "ConfigMap {NAMESPACE}/{CONFIG_MAP} does not describe a registry as KEP-1755 says ({KEP}): {why}{}\n  fix: correct the ConfigMap, or give the registry in the plan (`delivery: {{mode: registry, registry: HOST[/PREFIX]}}`)",
        help.as_deref().map(|help| format!(" (its help: {help})")).unwrap_or_default()
    )]
    Malformed { why: String, help: Option<String> },
}

/// kubectl's words when the ConfigMap does not exist: `Error from server
/// (NotFound): configmaps "local-registry-hosting" not found`.
pub fn is_not_found(kubectl_stderr: &str) -> bool {
    kubectl_stderr.contains("(NotFound)")
}

impl LocalRegistryHosting {
    /// Reads the ConfigMap as `kubectl get configmap -o json` prints it.
    pub fn from_config_map(json: &[u8]) -> Result<LocalRegistryHosting, HostingError> {
        #[derive(Deserialize)]
        struct ConfigMap {
            #[serde(default)]
            data: BTreeMap<String, String>,
        }
        let malformed = |why: String, help: Option<String>| HostingError::Malformed { why, help };
        let config_map: ConfigMap = serde_json::from_slice(json)
            .map_err(|e| malformed(format!("kubectl's output is not a ConfigMap: {e}"), None))?;
        let Some(text) = config_map.data.get(KEY) else {
            let keys: Vec<&str> = config_map.data.keys().map(String::as_str).collect();
            return Err(malformed(
                format!(
                    "it has no data.{KEY} (its keys: {})",
                    if keys.is_empty() {
                        "none".to_string()
                    } else {
                        keys.join(", ")
                    }
                ),
                None,
            ));
        };
        // Its help link, if any, is worth showing even when the rest is off.
        let help = serde_norway::from_str::<BTreeMap<String, serde_norway::Value>>(text)
            .ok()
            .and_then(|fields| fields.get("help")?.as_str().map(str::to_string));
        let hosting: LocalRegistryHosting = serde_norway::from_str(text)
            .map_err(|e| malformed(format!("data.{KEY}: {e}"), help.clone()))?;
        if hosting.host.trim().is_empty() {
            return Err(malformed(format!("data.{KEY}: host is empty"), help));
        }
        Ok(hosting)
    }

    /// How the nodes name images in this registry: KEP-1755's
    /// `hostFromContainerRuntime`, else `host`.
    pub fn runtime_host(&self) -> &str {
        self.host_from_container_runtime
            .as_deref()
            .filter(|host| !host.is_empty())
            .unwrap_or(&self.host)
    }
}

#[cfg(test)]
mod contract_tests {
    //! Contract tests: recorded behaviour. There is no API server here; the
    //! fixtures are what `kubectl get configmap local-registry-hosting -n
    //! kube-public -o json` prints for the ConfigMaps kind's local-registry
    //! script and a cluster with a separate runtime host create
    //! (`tests/fixtures/kube/`, see its README).
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/kube")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn kinds_local_registry_pushes_and_pulls_through_one_host() {
        let hosting = LocalRegistryHosting::from_config_map(&fixture(
            "recorded-local-registry-hosting-kind.json",
        ))
        .unwrap();
        assert_eq!(hosting.host, "localhost:5001");
        assert_eq!(hosting.runtime_host(), "localhost:5001");
        assert_eq!(hosting.help.as_deref(), Some(KIND_HELP));
    }

    #[test]
    fn a_runtime_host_is_what_manifests_name() {
        let hosting = LocalRegistryHosting::from_config_map(&fixture(
            "recorded-local-registry-hosting-runtime-host.json",
        ))
        .unwrap();
        assert_eq!(hosting.host, "localhost:5001");
        assert_eq!(hosting.runtime_host(), "kind-registry:5000");
        assert_eq!(
            hosting.host_from_cluster_network.as_deref(),
            Some("kind-registry:5000")
        );
    }

    #[test]
    fn kubectls_not_found_is_told_apart_and_the_error_links_the_kep() {
        let stderr =
            String::from_utf8(fixture("recorded-local-registry-hosting-absent.stderr")).unwrap();
        assert!(is_not_found(&stderr), "{stderr}");
        assert!(!is_not_found(
            "The connection to the server 127.0.0.1:9 was refused"
        ));
        let message = HostingError::Absent.to_string();
        assert!(
            message.contains(KEP) && message.contains(KIND_HELP),
            "{message}"
        );
    }

    #[test]
    fn a_config_map_without_a_host_is_an_error_that_keeps_its_help() {
        let json = br#"{"apiVersion":"v1","kind":"ConfigMap","data":{"localRegistryHosting.v1":"help: https://example.com/registry\n"}}"#;
        let error = LocalRegistryHosting::from_config_map(json).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("missing field `host`"), "{message}");
        assert!(
            message.contains("its help: https://example.com/registry"),
            "{message}"
        );
        let other = br#"{"apiVersion":"v1","kind":"ConfigMap","data":{"other":"x"}}"#;
        let message = LocalRegistryHosting::from_config_map(other)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("no data.localRegistryHosting.v1 (its keys: other)"),
            "{message}"
        );
    }
}
