//! The kind and kubectl command lines the runner uses: cluster create,
//! delete, kubeconfig and log export (each told the nodes' engine); apply,
//! the readiness waits, the events read when a wait times out, the pods'
//! logs and descriptions read after a failure, an existing cluster's
//! context and its KEP-1755 registry ConfigMap; each with an existing
//! cluster's context named.
//!
//! Neither a kind CLI nor an API server exists where loadmaster's tests run,
//! so the tests here are contract tests: the command lines are checked
//! against what kind v0.20+ and kubectl 1.27+ accept, as documented and as
//! recorded from real runs (flags, `KIND/NAME` forms, `--timeout=Ns`).

use crate::engine::EngineKind;
use crate::plan::{Apply, KindConfigSource, Wait, WaitFor};
use std::path::Path;
use std::time::Duration;

/// `kind create cluster` for the plan's cluster; `config` is the kind
/// config file to pass (a file of the plan, or the inline config written
/// to the run directory).
pub fn kind_create(name: &str, config: Option<&Path>, node_image: Option<&str>) -> Vec<String> {
    let mut argv = words(&["kind", "create", "cluster", "--name", name]);
    if let Some(config) = config {
        argv.extend(words(&["--config", &config.display().to_string()]));
    }
    if let Some(image) = node_image {
        argv.extend(words(&["--image", image]));
    }
    argv
}

/// The environment of every kind command: the engine its nodes run on
/// (kind's "provider"). Without it kind takes docker whenever docker
/// answers, and then finds no cluster whose nodes are podman's.
pub fn kind_env(engine: EngineKind) -> Vec<(String, String)> {
    vec![(
        "KIND_EXPERIMENTAL_PROVIDER".to_string(),
        engine.name().to_string(),
    )]
}

pub fn kind_delete(name: &str) -> Vec<String> {
    words(&["kind", "delete", "cluster", "--name", name])
}

pub fn kind_kubeconfig(name: &str) -> Vec<String> {
    words(&["kind", "get", "kubeconfig", "--name", name])
}

pub fn kind_export_logs(name: &str, dir: &Path) -> Vec<String> {
    words(&[
        "kind",
        "export",
        "logs",
        &dir.display().to_string(),
        "--name",
        name,
    ])
}

/// The kind config file to create the cluster with, if the plan gives one;
/// an inline config is written as `kind-config.yaml` into `run_dir`.
pub fn kind_config_file(
    source: &KindConfigSource,
    run_dir: &Path,
) -> std::io::Result<Option<std::path::PathBuf>> {
    match source {
        KindConfigSource::Default => Ok(None),
        KindConfigSource::File { path } => Ok(Some(path.clone())),
        KindConfigSource::Inline { config } => {
            let path = run_dir.join("kind-config.yaml");
            let text = serde_norway::to_string(config).map_err(std::io::Error::other)?;
            std::fs::write(&path, text)?;
            Ok(Some(path))
        }
    }
}

/// How kubectl reaches the cluster: through `KUBECONFIG` alone (kind's
/// kubeconfig), or with an existing cluster's context named on every
/// command, so that the journal shows which cluster each one went to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kubectl {
    pub context: Option<String>,
}

impl Kubectl {
    /// `kubectl apply`: one `-f` per manifest, or `-k`.
    pub fn apply(&self, namespace: Option<&str>, apply: &Apply) -> Vec<Vec<String>> {
        match apply {
            Apply::Manifests { paths } => paths
                .iter()
                .map(|path| self.command(namespace, &["apply", "-f", &path.display().to_string()]))
                .collect(),
            Apply::Kustomize { dir } => {
                vec![self.command(namespace, &["apply", "-k", &dir.display().to_string()])]
            }
        }
    }

    /// The kubectl command that waits for `wait` (its timeout passed to
    /// kubectl, so that kubectl's own message says what it waited for).
    pub fn wait(&self, wait: &Wait, step_namespace: Option<&str>) -> Vec<String> {
        let namespace = wait.namespace.as_deref().or(step_namespace);
        let timeout = format!("--timeout={}s", wait.timeout.get().as_secs().max(1));
        match &wait.until {
            WaitFor::Rollout { resource } => {
                self.command(namespace, &["rollout", "status", resource, &timeout])
            }
            WaitFor::JobComplete { job } => self.command(
                namespace,
                &[
                    "wait",
                    "--for=condition=complete",
                    &job_resource(job),
                    &timeout,
                ],
            ),
            WaitFor::Condition {
                condition,
                resource,
                selector,
            } => {
                let condition = format!("--for=condition={condition}");
                let mut args = vec!["wait", &condition, resource.as_str()];
                if let Some(selector) = selector {
                    args.extend(["-l", selector.as_str()]);
                }
                args.push(&timeout);
                self.command(namespace, &args)
            }
        }
    }

    /// The namespace's events, oldest first: what a timed-out wait names as
    /// the reason its resources did not become ready.
    pub fn events(&self, namespace: Option<&str>) -> Vec<String> {
        match namespace {
            Some(_) => self.command(namespace, &["get", "events", "--sort-by=.lastTimestamp"]),
            None => self.command(
                None,
                &[
                    "get",
                    "events",
                    "--all-namespaces",
                    "--sort-by=.lastTimestamp",
                ],
            ),
        }
    }

    /// What is not ready in the namespace: pods with their phase and reasons.
    pub fn pods(&self, namespace: Option<&str>) -> Vec<String> {
        match namespace {
            Some(_) => self.command(namespace, &["get", "pods", "-o", "wide"]),
            None => self.command(None, &["get", "pods", "--all-namespaces", "-o", "wide"]),
        }
    }

    /// Every pod as JSON: what [`super::pods`] picks the pods to read from.
    pub fn pods_json(&self) -> Vec<String> {
        self.command(None, &["get", "pods", "--all-namespaces", "-o", "json"])
    }

    /// A container's log (its previous instance's with `previous`: the one
    /// that crashed, when the kubelet restarted it), timestamped to line up
    /// with the journal.
    pub fn pod_logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Vec<String> {
        let tail = format!("--tail={LOG_TAIL_LINES}");
        let mut args = vec!["logs", pod, "--container", container, &tail, "--timestamps"];
        if previous {
            args.push("--previous");
        }
        self.command(Some(namespace), &args)
    }

    /// A pod's spec, state, conditions and events.
    pub fn describe_pod(&self, namespace: &str, pod: &str) -> Vec<String> {
        self.command(Some(namespace), &["describe", "pod", pod])
    }

    /// The context as the kubeconfig defines it; exits 1 when there is no
    /// such context. Reads only the kubeconfig files, not the cluster.
    pub fn get_context(&self, context: &str) -> Vec<String> {
        self.command(None, &["config", "get-contexts", context])
    }

    /// The KEP-1755 ConfigMap through which a cluster names its local
    /// registry ([`super::registry_hosting`]).
    pub fn local_registry_hosting(&self) -> Vec<String> {
        self.command(
            Some(super::registry_hosting::NAMESPACE),
            &[
                "get",
                "configmap",
                super::registry_hosting::CONFIG_MAP,
                "-o",
                "json",
            ],
        )
    }

    fn command(&self, namespace: Option<&str>, args: &[&str]) -> Vec<String> {
        let mut argv = vec!["kubectl".to_string()];
        if let Some(context) = &self.context {
            argv.extend(words(&["--context", context]));
        }
        if let Some(namespace) = namespace {
            argv.extend(words(&["--namespace", namespace]));
        }
        argv.extend(words(args));
        argv
    }
}

/// How many lines of a container's log are kept: its end, where a crash
/// says why.
pub const LOG_TAIL_LINES: u32 = 1000;

/// How long loadmaster lets a kubectl wait run before killing it: kubectl's
/// own timeout plus time to say what it was waiting for.
pub fn wait_deadline(wait: &Wait) -> Duration {
    wait.timeout.get() + Duration::from_secs(30)
}

fn job_resource(job: &str) -> String {
    if job.contains('/') {
        job.to_string()
    } else {
        format!("job/{job}")
    }
}

fn words(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

#[cfg(test)]
mod contract_tests {
    //! Contract tests: the command lines kind and kubectl are documented to
    //! accept (no kind CLI or API server here to run them against).
    use super::*;
    use crate::plan::Duration as PlanDuration;
    use std::path::PathBuf;

    fn wait_for(until: WaitFor, namespace: Option<&str>) -> Wait {
        Wait {
            until,
            namespace: namespace.map(str::to_string),
            timeout: PlanDuration::from_secs(120),
        }
    }

    #[test]
    fn kind_commands() {
        assert_eq!(
            kind_create(
                "e2e",
                Some(Path::new("/p/kind.yaml")),
                Some("kindest/node:v1.30.0")
            ),
            "kind create cluster --name e2e --config /p/kind.yaml --image kindest/node:v1.30.0"
                .split(' ')
                .collect::<Vec<_>>()
        );
        assert_eq!(
            kind_create("e2e", None, None),
            ["kind", "create", "cluster", "--name", "e2e"]
        );
        assert_eq!(
            kind_delete("e2e"),
            ["kind", "delete", "cluster", "--name", "e2e"]
        );
        assert_eq!(
            kind_kubeconfig("e2e"),
            ["kind", "get", "kubeconfig", "--name", "e2e"]
        );
        assert_eq!(
            kind_export_logs("e2e", Path::new("/run/logs/kind")),
            ["kind", "export", "logs", "/run/logs/kind", "--name", "e2e"]
        );
    }

    #[test]
    fn apply_manifests_one_by_one_and_kustomize_with_k() {
        let kubectl = Kubectl::default();
        let manifests = Apply::Manifests {
            paths: vec![PathBuf::from("/p/ns.yaml"), PathBuf::from("/p/db.yaml")],
        };
        assert_eq!(
            kubectl.apply(Some("e2e"), &manifests),
            [
                ["kubectl", "--namespace", "e2e", "apply", "-f", "/p/ns.yaml"],
                ["kubectl", "--namespace", "e2e", "apply", "-f", "/p/db.yaml"]
            ]
        );
        let kustomize = Apply::Kustomize {
            dir: PathBuf::from("/p/services"),
        };
        assert_eq!(
            kubectl.apply(None, &kustomize),
            [["kubectl", "apply", "-k", "/p/services"]]
        );
    }

    #[test]
    fn an_existing_clusters_context_is_named_on_every_command() {
        let kubectl = Kubectl {
            context: Some("staging".to_string()),
        };
        let rollout = wait_for(
            WaitFor::Rollout {
                resource: "deployment/api".to_string(),
            },
            None,
        );
        let kustomize = Apply::Kustomize {
            dir: PathBuf::from("/p/services"),
        };
        for argv in [
            kubectl.apply(Some("e2e"), &kustomize).remove(0),
            kubectl.wait(&rollout, Some("e2e")),
            kubectl.events(None),
            kubectl.pods(Some("e2e")),
            kubectl.local_registry_hosting(),
        ] {
            assert_eq!(argv[..3], ["kubectl", "--context", "staging"], "{argv:?}");
        }
        assert_eq!(
            kubectl.local_registry_hosting(),
            [
                "kubectl",
                "--context",
                "staging",
                "--namespace",
                "kube-public",
                "get",
                "configmap",
                "local-registry-hosting",
                "-o",
                "json"
            ]
        );
        assert_eq!(
            kubectl.get_context("staging"),
            [
                "kubectl",
                "--context",
                "staging",
                "config",
                "get-contexts",
                "staging"
            ]
        );
    }

    #[test]
    fn waits_carry_kubectls_timeout_and_the_namespace() {
        let rollout = wait_for(
            WaitFor::Rollout {
                resource: "deployment/postgres".to_string(),
            },
            None,
        );
        assert_eq!(
            Kubectl::default().wait(&rollout, Some("e2e")),
            [
                "kubectl",
                "--namespace",
                "e2e",
                "rollout",
                "status",
                "deployment/postgres",
                "--timeout=120s"
            ]
        );
        let job = wait_for(
            WaitFor::JobComplete {
                job: "migrate".to_string(),
            },
            Some("db"),
        );
        assert_eq!(
            Kubectl::default().wait(&job, Some("e2e")),
            [
                "kubectl",
                "--namespace",
                "db",
                "wait",
                "--for=condition=complete",
                "job/migrate",
                "--timeout=120s"
            ]
        );
        let condition = wait_for(
            WaitFor::Condition {
                condition: "Ready".to_string(),
                resource: "pod".to_string(),
                selector: Some("app=redis".to_string()),
            },
            None,
        );
        assert_eq!(
            Kubectl::default().wait(&condition, None),
            [
                "kubectl",
                "wait",
                "--for=condition=Ready",
                "pod",
                "-l",
                "app=redis",
                "--timeout=120s"
            ]
        );
        assert_eq!(wait_deadline(&condition), Duration::from_secs(150));
    }

    #[test]
    fn events_of_a_namespace_or_all() {
        assert_eq!(
            Kubectl::default().events(Some("e2e")),
            [
                "kubectl",
                "--namespace",
                "e2e",
                "get",
                "events",
                "--sort-by=.lastTimestamp"
            ]
        );
        assert_eq!(
            Kubectl::default().events(None),
            [
                "kubectl",
                "get",
                "events",
                "--all-namespaces",
                "--sort-by=.lastTimestamp"
            ]
        );
    }

    #[test]
    fn pod_logs_and_descriptions() {
        assert_eq!(
            Kubectl::default().pods_json(),
            ["kubectl", "get", "pods", "--all-namespaces", "-o", "json"]
        );
        assert_eq!(
            Kubectl::default().pod_logs("e2e", "api-7d4b9c-x2x9q", "api", true),
            [
                "kubectl",
                "--namespace",
                "e2e",
                "logs",
                "api-7d4b9c-x2x9q",
                "--container",
                "api",
                "--tail=1000",
                "--timestamps",
                "--previous"
            ]
        );
        assert_eq!(
            Kubectl::default().describe_pod("e2e", "api-7d4b9c-x2x9q"),
            [
                "kubectl",
                "--namespace",
                "e2e",
                "describe",
                "pod",
                "api-7d4b9c-x2x9q"
            ]
        );
    }

    /// The command lines above, given to the real kubectl (when installed)
    /// with a kubeconfig for an address where nothing listens: kubectl
    /// must get as far as connecting, so that it took every flag and
    /// argument.
    #[test]
    fn kubectl_accepts_the_pod_command_lines() {
        if !crate::process::on_path("kubectl") {
            eprintln!("skipped: kubectl not installed");
            return;
        }
        let kubeconfig = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/kubectl/unreachable.kubeconfig"
        );
        for argv in [
            Kubectl::default().pods_json(),
            Kubectl::default().pod_logs("e2e", "api-0", "api", false),
            Kubectl::default().pod_logs("e2e", "api-0", "api", true),
            Kubectl::default().describe_pod("e2e", "api-0"),
        ] {
            let out = std::process::Command::new(&argv[0])
                .args(&argv[1..])
                .env("KUBECONFIG", kubeconfig)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{argv:?}");
            assert!(stderr.contains("connection refused"), "{argv:?}: {stderr}");
        }
    }

    #[test]
    fn an_inline_kind_config_is_written_to_the_run_directory() {
        let scratch = tempfile::Builder::new()
            .prefix("lm-kube-")
            .tempdir()
            .unwrap();
        let dir = scratch.path().to_path_buf();
        let mut config = serde_json::Map::new();
        config.insert("kind".into(), "Cluster".into());
        config.insert("apiVersion".into(), "kind.x-k8s.io/v1alpha4".into());
        let path = kind_config_file(&KindConfigSource::Inline { config }, &dir).unwrap();
        let text = std::fs::read_to_string(path.unwrap()).unwrap();
        assert!(text.contains("kind: Cluster"), "{text}");
        assert!(
            text.contains("apiVersion: kind.x-k8s.io/v1alpha4"),
            "{text}"
        );
    }
}
