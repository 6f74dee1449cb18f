//! The plan: a YAML file that describes one E2E environment (the cluster,
//! kind or an existing one, how images reach it, its images, what is deployed, the test, teardown, a budget).
//!
//! [`load`] reads a plan file and returns a [`Plan`] in which every rule has
//! been checked and every default filled: paths are absolute and exist,
//! `needs` form no cycle, images have valid names. What is wrong is reported
//! all at once, each problem as `file:line:column: where: what was expected`.
//! [`schema`] is the JSON Schema of the file, for editors.
//!
//! `file` holds the YAML's shape; `resolve` the checks and the resolved
//! types below, which is what the runner, doctor and journal use.

mod file;
mod positions;
mod quantity;
mod resolve;
mod shape;

pub use file::{API_VERSION, CommandLine, PullPolicy, TeardownAction};
pub use positions::Position;
pub use quantity::{Duration, Size};

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The name plans are looked for under.
pub const DEFAULT_FILE: &str = "loadmaster.yaml";

/// Default timeouts, used where the plan gives none.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(5 * 60);
pub const TEST_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// A checked plan, defaults filled, paths absolute.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The plan file, absolute.
    pub file: PathBuf,
    pub cluster: Cluster,
    pub images: Vec<Image>,
    pub deploy: Vec<DeployStep>,
    /// Deploy step names in an order that respects `needs` (file order
    /// where `needs` leaves a choice).
    pub deploy_order: Vec<String>,
    pub test: Option<Test>,
    pub teardown: Teardown,
    pub budget: Budget,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    pub name: String,
    pub engine: Option<crate::engine::EngineKind>,
    pub node_image: Option<String>,
    pub config: KindConfigSource,
    /// An existing cluster: neither created nor deleted (a kind cluster
    /// with `existing: true`, and every `provider: existing` cluster).
    pub existing: bool,
    pub provider: Provider,
    pub delivery: Delivery,
    /// Where loads keep what they streamed for fresh nodes.
    pub image_cache: Option<ImageCache>,
}

/// The image cache of a plan (`cluster.imageCache`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageCache {
    /// Absolute.
    pub dir: PathBuf,
    pub max_size: Size,
}

/// The size an image cache is kept within when the plan gives none.
pub const IMAGE_CACHE_SIZE: Size = Size::from_bytes(20 << 30);

/// What runs the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "name")]
pub enum Provider {
    /// kind: nodes are containers found by kind's labels.
    Kind,
    /// A cluster reached through a kubeconfig context; its nodes are never
    /// touched.
    Existing {
        context: String,
        /// Absolute; none: `KUBECONFIG`, else `~/.kube/config`.
        kubeconfig: Option<PathBuf>,
    },
}

/// How images reach the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "mode"
)]
pub enum Delivery {
    /// Into every node's containerd (`loadmaster load`).
    Load,
    /// Pushed to a registry; deployed manifests name the pushed digest.
    Registry {
        /// `HOST[:PORT][/PREFIX]`; none: the cluster's KEP-1755
        /// `local-registry-hosting` ConfigMap names it.
        registry: Option<String>,
        /// Plain HTTP allowed beyond loopback.
        allow_http: bool,
    },
}

/// Where the kind cluster config comes from.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase", tag = "from")]
pub enum KindConfigSource {
    /// kind's default: one control-plane node.
    Default,
    File {
        path: PathBuf,
    },
    Inline {
        config: serde_json::Map<String, serde_json::Value>,
    },
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    /// As the plan names it.
    pub name: String,
    /// As nodes name it (`app:1` → `docker.io/library/app:1`).
    pub reference: String,
    pub source: ImageSource,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase", tag = "from")]
pub enum ImageSource {
    Build(Build),
    Pull {
        policy: PullPolicy,
    },
    /// Already in the engine.
    Engine,
    Archive {
        path: PathBuf,
    },
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Build {
    pub context: PathBuf,
    pub dockerfile: PathBuf,
    pub args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub timeout: Duration,
    /// The stated peak memory of the build, if the plan gives one.
    pub memory: Option<Size>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployStep {
    pub name: String,
    pub apply: Apply,
    pub namespace: Option<String>,
    /// Steps that must be done first (resolved: the previous step when the
    /// plan says nothing).
    pub needs: Vec<String>,
    pub waits: Vec<Wait>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase", tag = "with")]
pub enum Apply {
    /// `kubectl apply -f` each, in order.
    Manifests { paths: Vec<PathBuf> },
    /// `kubectl apply -k`.
    Kustomize { dir: PathBuf },
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Wait {
    pub until: WaitFor,
    pub namespace: Option<String>,
    pub timeout: Duration,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum WaitFor {
    /// `kubectl rollout status KIND/NAME`.
    Rollout { resource: String },
    /// `kubectl wait --for=condition=complete job/NAME`.
    JobComplete { job: String },
    /// `kubectl wait --for=condition=COND RESOURCE [-l SELECTOR]`.
    Condition {
        condition: String,
        resource: String,
        selector: Option<String>,
    },
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Test {
    pub command: CommandLine,
    pub env: BTreeMap<String, String>,
    pub workdir: PathBuf,
    pub timeout: Duration,
    /// Absolute; they need not exist before the test runs.
    pub artifacts: Vec<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Teardown {
    pub on_success: TeardownAction,
    pub on_failure: TeardownAction,
}

/// The environment variable that overrides the plan's teardown policy.
pub const TEARDOWN_ENV: &str = "LOADMASTER_TEARDOWN";

impl Teardown {
    /// What to do with the cluster after a run: a flag first, then
    /// `LOADMASTER_TEARDOWN` (`keep` or `delete`; another value is an
    /// error), then the plan.
    pub fn action(
        &self,
        succeeded: bool,
        flag: Option<TeardownAction>,
        env: Option<&str>,
    ) -> Result<TeardownAction, PlanError> {
        if let Some(action) = flag {
            return Ok(action);
        }
        match env.map(str::trim) {
            None | Some("") => {}
            Some("keep") => return Ok(TeardownAction::Keep),
            Some("delete") => return Ok(TeardownAction::Delete),
            Some(other) => {
                return Err(PlanError::BadTeardownEnv {
                    value: other.to_string(),
                });
            }
        }
        Ok(if succeeded {
            self.on_success
        } else {
            self.on_failure
        })
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    pub memory: Option<Size>,
    pub disk: Option<Size>,
    pub parallel_builds: Option<u32>,
}

/// One thing wrong with a plan, and where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    /// The value's path in the plan (`deploy[1].needs[0]`); empty for the
    /// whole document.
    pub at: String,
    pub message: String,
}

/// Why a plan could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(
        "cannot read plan {path}: {source} (give the plan with -f FILE; by default {DEFAULT_FILE} in the current directory)"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// YAML that does not parse, or does not have the plan's shape.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// A plan of the right shape that breaks a rule.
    #[error("{} problem(s) in {}:\n{}", problems.len(), path.display(), ProblemList(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
    #[error("{TEARDOWN_ENV}={value:?}: use keep or delete, or unset it to follow the plan")]
    BadTeardownEnv { value: String },
}

impl PlanError {
    /// Every problem with its place, for a plan that was read: a syntax
    /// error is one problem; None when the plan could not be read at all.
    pub fn problems(&self) -> Option<Vec<Problem>> {
        match self {
            PlanError::Syntax {
                line,
                column,
                message,
                ..
            } => Some(vec![Problem {
                line: *line,
                column: *column,
                at: String::new(),
                message: message.clone(),
            }]),
            PlanError::Invalid { problems, .. } => Some(problems.clone()),
            PlanError::Read { .. } | PlanError::BadTeardownEnv { .. } => None,
        }
    }
}

struct ProblemList<'a>(&'a Path, &'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, problem) in self.1.iter().enumerate() {
            if n > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{}:{}:{}: ",
                self.0.display(),
                problem.line,
                problem.column
            )?;
            if !problem.at.is_empty() {
                write!(f, "{}: ", problem.at)?;
            }
            f.write_str(&problem.message)?;
        }
        Ok(())
    }
}

/// Reads, checks and resolves the plan at `path`.
pub fn load(path: &Path) -> Result<Plan, PlanError> {
    let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Checks and resolves plan text; `path` names the file in errors and is
/// where relative paths start.
pub fn parse(text: &str, path: &Path) -> Result<Plan, PlanError> {
    let document: serde_norway::Value = serde_norway::from_str(text).map_err(|error| {
        let (line, column) = error
            .location()
            .map_or((1, 1), |at| (at.line(), at.column()));
        PlanError::Syntax {
            path: path.to_path_buf(),
            line,
            column,
            message: without_location(&error.to_string()),
        }
    })?;
    let positions = positions::Positions::index(text);
    let shaped = shape::shape(document, &positions);
    let invalid = |mut problems: Vec<Problem>| {
        problems.sort_by_key(|p| (p.line, p.column));
        PlanError::Invalid {
            path: path.to_path_buf(),
            problems,
        }
    };
    let Some(raw) = shaped.plan else {
        return Err(invalid(shaped.problems));
    };
    match resolve::resolve(raw, path, &positions) {
        Ok(plan) if shaped.problems.is_empty() => Ok(plan),
        Ok(_) => Err(invalid(shaped.problems)),
        Err(PlanError::Invalid { problems, .. }) => {
            // A rule about a value the shape check already rejected (and
            // repaired) would say the same thing twice.
            let repeated = |problem: &Problem| {
                shaped.repaired.iter().any(|at| {
                    problem.at == *at
                        || problem.at.starts_with(&format!("{at}."))
                        || problem.at.starts_with(&format!("{at}["))
                })
            };
            let mut all = shaped.problems;
            all.extend(problems.into_iter().filter(|p| !repeated(p)));
            Err(invalid(all))
        }
        Err(other) => Err(other),
    }
}

/// serde_norway ends its messages with " at line L column C", which the
/// error already shows in front. The YAML parser's own words for a
/// misindented key get a hint, since that is nearly always the cause.
fn without_location(message: &str) -> String {
    let message = match message.rfind(" at line ") {
        Some(cut) if message[cut..].contains(" column ") => &message[..cut],
        _ => message,
    };
    let indentation = [
        "did not find expected key",
        "mapping values are not allowed in this context",
        "did not find expected '-' indicator",
    ];
    if indentation.iter().any(|sign| message.contains(sign)) {
        format!(
            "{message}: check the indentation here (keys of one mapping line up in one column; indent with spaces, not tabs)"
        )
    } else {
        message.to_string()
    }
}

/// The plan file's JSON Schema (draft 2020-12), for editors and CI checks.
pub fn schema() -> serde_json::Value {
    schemars::schema_for!(file::PlanFile).to_value()
}
