//! Which pods a failed deploy or test step gathers the logs of: from
//! `kubectl get pods -o json`, the pods of the plan's namespaces that are
//! not ready or have failed (a completed job's pod is fine), or that are
//! ready for the moment after a restart (a crash loop between two
//! back-offs, which a rollout with `minReadySeconds` does not count), each
//! with its containers and whether a previous instance of one exists (the
//! instance that crashed, when the kubelet restarted it).

use crate::plan::Plan;
use serde::Deserialize;
use std::collections::BTreeSet;

/// A pod to read the logs and description of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unready {
    pub namespace: String,
    pub name: String,
    /// Why it counts as not ready, in a few words (`CrashLoopBackOff`,
    /// `Pending: ImagePullBackOff`).
    pub why: String,
    /// Init containers first, as they run.
    pub containers: Vec<Container>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Container {
    pub name: String,
    /// Restarted at least once: `--previous` has the instance before.
    pub restarted: bool,
}

/// The namespaces the plan deploys into (steps' and waits'); empty when it
/// names none, and then every namespace counts. A step without one
/// applies into `default` unless its manifests say otherwise.
pub fn plan_namespaces(plan: &Plan) -> BTreeSet<String> {
    let mut namespaces = BTreeSet::new();
    for step in &plan.deploy {
        namespaces.extend(step.namespace.clone());
        namespaces.extend(step.waits.iter().filter_map(|w| w.namespace.clone()));
    }
    if !namespaces.is_empty() && plan.deploy.iter().any(|s| s.namespace.is_none()) {
        namespaces.insert("default".to_string());
    }
    namespaces
}

/// The pods of `namespaces` (every namespace when empty) in `listing` (the
/// JSON of `kubectl get pods -o json`) that are not ready or failed.
pub fn unready(listing: &str, namespaces: &BTreeSet<String>) -> serde_json::Result<Vec<Unready>> {
    let list: List = serde_json::from_str(listing)?;
    Ok(list
        .items
        .into_iter()
        .filter(|pod| namespaces.is_empty() || namespaces.contains(&pod.metadata.namespace))
        .filter_map(|pod| {
            let why = pod.why_unready()?;
            let statuses: Vec<&ContainerStatus> = pod
                .status
                .init_container_statuses
                .iter()
                .chain(&pod.status.container_statuses)
                .collect();
            let containers = pod
                .spec
                .init_containers
                .iter()
                .chain(&pod.spec.containers)
                .map(|c| Container {
                    name: c.name.clone(),
                    restarted: statuses
                        .iter()
                        .any(|s| s.name == c.name && s.restart_count > 0),
                })
                .collect();
            Some(Unready {
                namespace: pod.metadata.namespace,
                name: pod.metadata.name,
                why,
                containers,
            })
        })
        .collect())
}

// The parts of the Pod API (core/v1) read here; everything else is ignored.

#[derive(Deserialize)]
struct List {
    #[serde(default)]
    items: Vec<Pod>,
}

#[derive(Deserialize)]
struct Pod {
    metadata: Metadata,
    #[serde(default)]
    spec: Spec,
    #[serde(default)]
    status: Status,
}

#[derive(Deserialize)]
struct Metadata {
    name: String,
    #[serde(default)]
    namespace: String,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    init_containers: Vec<Named>,
    #[serde(default)]
    containers: Vec<Named>,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    #[serde(default)]
    phase: String,
    #[serde(default)]
    conditions: Vec<Condition>,
    #[serde(default)]
    init_container_statuses: Vec<ContainerStatus>,
    #[serde(default)]
    container_statuses: Vec<ContainerStatus>,
}

#[derive(Deserialize)]
struct Condition {
    #[serde(rename = "type")]
    kind: String,
    status: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerStatus {
    name: String,
    #[serde(default)]
    ready: bool,
    #[serde(default)]
    restart_count: u32,
    #[serde(default)]
    state: State,
    #[serde(default)]
    last_state: State,
}

/// One of `waiting`, `running`, `terminated` is set; only the reasons of
/// the two that say why a container does not run are read.
#[derive(Default, Deserialize)]
struct State {
    waiting: Option<Reason>,
    terminated: Option<Reason>,
}

#[derive(Deserialize)]
struct Reason {
    reason: Option<String>,
}

impl Pod {
    /// Why the pod is not ready or failed, or `None` when it is ready or
    /// completed.
    fn why_unready(&self) -> Option<String> {
        let phase = self.status.phase.as_str();
        if phase == "Succeeded" {
            return None;
        }
        let ready = self
            .status
            .conditions
            .iter()
            .any(|c| c.kind == "Ready" && c.status == "True");
        if phase == "Running" && ready {
            // Ready now, but restarted: a crash loop caught while its
            // latest instance runs. Its last words are why the wait failed.
            return self
                .status
                .container_statuses
                .iter()
                .find(|s| s.restart_count > 0)
                .map(|s| {
                    let ended = s.last_state.terminated.as_ref();
                    let reason = ended.and_then(|r| r.reason.as_deref()).unwrap_or("exited");
                    format!("{reason}, running again after {} restarts", s.restart_count)
                });
        }
        // The first container's reason for not running says most: a crash
        // loop, an image that cannot be pulled, an OOM kill.
        let reason = self
            .status
            .init_container_statuses
            .iter()
            .chain(&self.status.container_statuses)
            .filter(|s| !s.ready)
            .find_map(|s| {
                let state = s.state.waiting.as_ref().or(s.state.terminated.as_ref());
                state.and_then(|r| r.reason.clone())
            });
        Some(match (phase, reason) {
            ("Running", Some(reason)) => reason,
            ("Running", None) => "Running, not ready".to_string(),
            ("", reason) => reason.unwrap_or_else(|| "no status".to_string()),
            (phase, Some(reason)) => format!("{phase}: {reason}"),
            (phase, None) => phase.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    //! Contract tests: recorded behaviour. `pods.json` is the shape of
    //! `kubectl get pods --all-namespaces -o json` (see
    //! `tests/fixtures/kubectl/README.md`).
    use super::*;

    const LISTING: &str = include_str!("../../tests/fixtures/kubectl/pods.json");

    fn names(pods: &[Unready]) -> Vec<(&str, &str, &str)> {
        pods.iter()
            .map(|p| (p.namespace.as_str(), p.name.as_str(), p.why.as_str()))
            .collect()
    }

    #[test]
    fn not_ready_and_failed_pods_of_the_plans_namespaces() {
        let e2e = BTreeSet::from(["e2e".to_string()]);
        let pods = unready(LISTING, &e2e).unwrap();
        assert_eq!(
            names(&pods),
            [
                ("e2e", "api-6b8f7c9d4-x2x9q", "CrashLoopBackOff"),
                ("e2e", "worker-5d9c8b7f6-kq4zt", "Pending: ImagePullBackOff"),
                ("e2e", "migrate-8fj2k", "Failed: Error"),
            ]
        );
        // The crashing container restarted: its previous instance is read.
        assert_eq!(
            pods[0].containers,
            [
                Container {
                    name: "wait-for-db".to_string(),
                    restarted: false
                },
                Container {
                    name: "api".to_string(),
                    restarted: true
                },
                Container {
                    name: "proxy".to_string(),
                    restarted: false
                },
            ]
        );
        assert_eq!(
            pods[1].containers,
            [Container {
                name: "worker".to_string(),
                restarted: false
            }]
        );
    }

    #[test]
    fn a_ready_pod_that_restarted_after_an_error_is_gathered() {
        let pod = |restarts: u32| {
            format!(
                r#"{{"items": [{{"metadata": {{"name": "app-0", "namespace": "e2e"}},
                 "spec": {{"containers": [{{"name": "app"}}]}},
                 "status": {{"phase": "Running", "conditions": [{{"type": "Ready", "status": "True"}}],
                   "containerStatuses": [{{"name": "app", "ready": true, "restartCount": {restarts},
                     "state": {{"running": {{}}}},
                     "lastState": {{"terminated": {{"reason": "Error", "exitCode": 1}}}}}}]}}}}]}}"#
            )
        };
        let e2e = BTreeSet::from(["e2e".to_string()]);
        let pods = unready(&pod(3), &e2e).unwrap();
        assert_eq!(
            names(&pods),
            [("e2e", "app-0", "Error, running again after 3 restarts")]
        );
        assert!(pods[0].containers[0].restarted);
        // Never restarted: ready, and nothing to gather.
        assert_eq!(unready(&pod(0), &e2e).unwrap(), []);
    }

    #[test]
    fn every_namespace_when_the_plan_names_none() {
        let pods = unready(LISTING, &BTreeSet::new()).unwrap();
        // The ready database, the completed job and kube-system's ready
        // pods are left out; kube-system's unready one is in.
        assert_eq!(
            names(&pods),
            [
                ("e2e", "api-6b8f7c9d4-x2x9q", "CrashLoopBackOff"),
                ("e2e", "worker-5d9c8b7f6-kq4zt", "Pending: ImagePullBackOff"),
                ("e2e", "migrate-8fj2k", "Failed: Error"),
                (
                    "kube-system",
                    "coredns-7db6d8ff4d-lmx8r",
                    "Running, not ready"
                ),
            ]
        );
    }

    #[test]
    fn the_plans_namespaces_are_its_steps_and_waits() {
        let scratch = tempfile::Builder::new()
            .prefix("lm-pods-")
            .tempdir()
            .unwrap();
        let dir = scratch.path().to_path_buf();
        std::fs::write(dir.join("a.yaml"), "").unwrap();
        let plan = |deploy: &str| {
            crate::plan::parse(
                &format!("apiVersion: loadmaster/v1\ncluster:\n  name: e2e\n{deploy}"),
                &dir.join("loadmaster.yaml"),
            )
            .unwrap()
        };
        let named = plan(
            "deploy:\n  - name: a\n    manifests: [a.yaml]\n    namespace: app\n    wait:\n      - rollout: deployment/db\n        namespace: data\n",
        );
        let unnamed = plan("deploy:\n  - name: a\n    manifests: [a.yaml]\n");
        let mixed = plan(
            "deploy:\n  - name: a\n    manifests: [a.yaml]\n  - name: b\n    manifests: [a.yaml]\n    namespace: app\n",
        );
        let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(plan_namespaces(&named), set(&["app", "data"]));
        assert_eq!(plan_namespaces(&unnamed), set(&[]));
        assert_eq!(plan_namespaces(&mixed), set(&["app", "default"]));
    }

    #[test]
    fn a_listing_that_is_not_json_is_an_error() {
        assert!(unready("The connection to the server was refused", &BTreeSet::new()).is_err());
    }
}
