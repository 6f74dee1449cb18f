//! The plan file as written: the YAML's shape, field by field.
//!
//! These types are what serde reads (unknown fields are errors that list
//! the valid ones) and what the JSON Schema is generated from, so editors
//! and `loadmaster check` agree on one definition. Rules that span fields
//! (exactly one of `build`/`pull`/`archive`, `needs` naming real steps) are
//! checked afterwards in `resolve`, which turns these into [`super::Plan`].

use super::quantity::{Duration, Size};
use crate::engine::EngineKind;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The only format version so far.
pub const API_VERSION: &str = "loadmaster/v1";

/// A loadmaster plan: a cluster (kind, or an existing one), the images it
/// needs and how they reach it, what is deployed into it, the test that
/// runs against it, and what happens afterwards.
/// Paths are relative to the plan file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "loadmaster plan")]
pub struct PlanFile {
    /// The plan format: `loadmaster/v1`.
    #[schemars(schema_with = "api_version_schema")]
    pub api_version: String,
    pub cluster: ClusterFile,
    /// Images every node must have, built, pulled, taken from the engine or
    /// read from an archive.
    #[serde(default)]
    pub images: Vec<ImageFile>,
    /// What is applied to the cluster, in order (or as `needs` says).
    #[serde(default)]
    pub deploy: Vec<DeployFile>,
    pub test: Option<TestFile>,
    #[serde(default)]
    pub teardown: TeardownFile,
    pub budget: Option<BudgetFile>,
}

fn api_version_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "const": API_VERSION })
}

/// The cluster the environment runs on: a kind cluster (default), or an
/// existing one reached through a kubeconfig context.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterFile {
    /// The kind cluster's name (`kind create cluster --name`); for an
    /// `existing` cluster, the name runs and reports give it.
    pub name: String,
    /// The engine kind runs its nodes on; without it: --engine,
    /// LOADMASTER_ENGINE, KIND_EXPERIMENTAL_PROVIDER, whichever answers.
    // `default` also tells the schema the field is optional, which
    // `schema_with` would otherwise hide.
    #[serde(default)]
    #[schemars(schema_with = "engine_schema")]
    pub engine: Option<EngineKind>,
    /// The node image (`kind create cluster --image`), e.g. kindest/node:v1.31.0.
    pub node_image: Option<String>,
    /// A kind cluster config file (`kind create cluster --config`).
    pub config: Option<PathBuf>,
    /// A kind cluster config written here instead of in a file.
    pub config_inline: Option<serde_json::Map<String, serde_json::Value>>,
    /// A kind cluster that already exists: it is neither created nor
    /// deleted (its nodes are still found by kind's labels).
    #[serde(default)]
    pub existing: bool,
    /// What runs the cluster: `kind` (default), or `existing`, any
    /// cluster reached through a kubeconfig context, whose nodes loadmaster
    /// never touches.
    pub provider: Option<Provider>,
    /// The kubeconfig context of an `existing` cluster; every kubectl call
    /// and the test use it.
    pub context: Option<String>,
    /// The kubeconfig file of an `existing` cluster; default: `KUBECONFIG`,
    /// else `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// How images reach the cluster: `load` into the nodes (kind's
    /// default), or `registry` (required for `existing`).
    pub delivery: Option<DeliveryFile>,
    /// Keep the images loaded into the nodes on this machine, so that a
    /// cluster created again gets them without reading the engine.
    pub image_cache: Option<ImageCacheFile>,
}

/// A directory on this machine that keeps the blobs the loads streamed out
/// of the engine (`delivery: load` only).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageCacheFile {
    /// The directory (created if missing), relative to the plan; several
    /// plans and clusters may share one.
    pub dir: PathBuf,
    /// The size it is kept within: least recently used blobs are removed
    /// first; default 20GiB.
    pub max_size: Option<Size>,
}

/// What runs the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Provider {
    /// A kind cluster on docker or podman: created by `up` unless
    /// `existing: true`, deleted by `down`.
    Kind,
    /// A cluster that exists, reached through a kubeconfig context: never
    /// created, deleted or its nodes touched.
    Existing,
}

/// How images reach the cluster.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeliveryFile {
    pub mode: DeliveryMode,
    /// `HOST[:PORT][/PREFIX]` images are pushed to (`mode: registry`).
    /// Without it, a kind cluster's KEP-1755 `local-registry-hosting`
    /// ConfigMap (in `kube-public`) names the registry.
    pub registry: Option<String>,
    /// Push over plain HTTP to a registry that is not on loopback
    /// (loopback registries may always use it).
    #[serde(default)]
    pub allow_http: bool,
}

/// `load`: into every node's containerd; `registry`: pushed to a registry
/// and the deployed manifests rewritten to the pushed digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DeliveryMode {
    Load,
    Registry,
}

fn engine_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "enum": ["docker", "podman"] })
}

/// One image the nodes need. With `build`, it is built; with `pull`,
/// pulled; with `archive`, read from a docker-archive or OCI-layout tar;
/// with none of them, taken from the engine as it is.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageFile {
    /// The image reference pods use, e.g. `localhost/app:e2e`.
    pub name: String,
    pub build: Option<BuildFile>,
    pub pull: Option<PullPolicy>,
    /// A docker-archive or OCI-layout tar holding the image.
    pub archive: Option<PathBuf>,
}

/// How an image is built (`docker build` / `podman build`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildFile {
    /// The build context directory.
    pub context: PathBuf,
    /// The Dockerfile; default: `Dockerfile` in the context.
    pub dockerfile: Option<PathBuf>,
    /// Build arguments (`--build-arg NAME=VALUE`).
    #[serde(default)]
    pub args: BTreeMap<String, String>,
    /// The stage to build (`--target`).
    pub target: Option<String>,
    /// How long the build may take; default 30m.
    pub timeout: Option<Duration>,
    /// The build's peak memory, when known: builds run in parallel only as
    /// far as the memory budget allows.
    pub memory: Option<Size>,
}

/// When an image is pulled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PullPolicy {
    /// Only when the engine does not have it.
    IfMissing,
    /// Every run.
    Always,
}

/// One deploy step: manifests or a kustomize directory, applied, then
/// waited for.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeployFile {
    /// The step's name, for `needs` and in reports.
    pub name: String,
    /// Manifest files applied in this order (`kubectl apply -f`).
    #[serde(default)]
    pub manifests: Vec<PathBuf>,
    /// A kustomize directory (`kubectl apply -k`).
    pub kustomize: Option<PathBuf>,
    /// The namespace to apply into (`kubectl -n`).
    pub namespace: Option<String>,
    /// Steps that must be done first. Absent: the step before this one;
    /// `[]`: none.
    pub needs: Option<Vec<String>>,
    /// What must be ready before the step counts as done.
    #[serde(default)]
    pub wait: Vec<WaitFile>,
}

/// One readiness wait: exactly one of `rollout`, `job` or `condition`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WaitFile {
    /// A rollout to complete: `deployment/NAME`, `statefulset/NAME` or
    /// `daemonset/NAME` (`kubectl rollout status`).
    pub rollout: Option<String>,
    /// A job to complete: `NAME` or `job/NAME`.
    pub job: Option<String>,
    /// A condition to become true (`kubectl wait --for=condition=...`) on
    /// `resource`.
    pub condition: Option<String>,
    /// What `condition` is about: `KIND/NAME`, or `KIND` with `selector`.
    pub resource: Option<String>,
    /// A label selector for `resource` (`-l app=redis`).
    pub selector: Option<String>,
    /// Default: the step's namespace.
    pub namespace: Option<String>,
    /// Default 5m.
    pub timeout: Option<Duration>,
}

/// The test run against the environment.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestFile {
    /// A shell command line (run by `sh -c`) or a list of arguments.
    pub command: CommandLine,
    /// Environment variables added to loadmaster's.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The working directory; default: the plan's directory.
    pub workdir: Option<PathBuf>,
    /// Default 30m.
    pub timeout: Option<Duration>,
    /// Files and directories (relative to the working directory) the test
    /// leaves, kept with the run.
    #[serde(default)]
    pub artifacts: Vec<PathBuf>,
}

/// A command: a line for `sh -c`, or an argument list run as it is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum CommandLine {
    Shell(String),
    Argv(Vec<String>),
}

impl<'de> Deserialize<'de> for CommandLine {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CommandVisitor;
        impl<'de> serde::de::Visitor<'de> for CommandVisitor {
            type Value = CommandLine;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a shell command line, or a list of arguments")
            }
            fn visit_str<E: serde::de::Error>(self, line: &str) -> Result<CommandLine, E> {
                Ok(CommandLine::Shell(line.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<CommandLine, A::Error> {
                let mut argv = Vec::new();
                while let Some(arg) = seq.next_element::<String>()? {
                    argv.push(arg);
                }
                Ok(CommandLine::Argv(argv))
            }
        }
        deserializer.deserialize_any(CommandVisitor)
    }
}

impl JsonSchema for CommandLine {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "CommandLine".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A shell command line (run by `sh -c`), or a list of arguments run as it is.",
            "oneOf": [
                { "type": "string", "minLength": 1 },
                { "type": "array", "items": { "type": "string" }, "minItems": 1 }
            ]
        })
    }
}

/// What happens to the cluster after the run. A `--keep`/`--delete` flag or
/// `LOADMASTER_TEARDOWN=keep|delete` overrides both.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TeardownFile {
    /// Default `delete`.
    pub on_success: Option<TeardownAction>,
    /// Default `keep`, with logs gathered, for a look at what failed.
    pub on_failure: Option<TeardownAction>,
}

/// Keep the cluster or delete it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TeardownAction {
    Keep,
    Delete,
}

/// What the environment may use. Planned needs above it stop the run
/// before it starts; samples above it are reported.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BudgetFile {
    /// Memory of the engine's host or VM.
    pub memory: Option<Size>,
    /// Disk where the engine stores images and containers.
    pub disk: Option<Size>,
    /// Builds that may run at once.
    #[schemars(range(min = 1))]
    pub parallel_builds: Option<u32>,
}
