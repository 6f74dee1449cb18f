//! The rules beyond the YAML's shape, and defaults: from a [`PlanFile`] to a
//! [`Plan`].
//!
//! Every problem is collected, not just the first, each placed at the value
//! it is about: fixing a plan one error per run is slow.

use super::file::{
    self, API_VERSION, BuildFile, ClusterFile, DeliveryFile, DeliveryMode, DeployFile, ImageFile,
    PlanFile, TeardownAction, TestFile, WaitFile,
};
use super::positions::Positions;
use super::{
    Apply, BUILD_TIMEOUT, Budget, Build, Cluster, CommandLine, Delivery, DeployStep,
    IMAGE_CACHE_SIZE, Image, ImageCache, ImageSource, KindConfigSource, Plan, PlanError, Problem,
    Provider, TEST_TIMEOUT, Teardown, Test, WAIT_TIMEOUT, Wait, WaitFor,
};
use crate::archive::{RegistryTarget, normalize_reference, tagged_reference};
use crate::kind_config::KindConfig;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

struct Checker<'a> {
    positions: &'a Positions,
    /// The plan's directory: where relative paths start.
    base: PathBuf,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn problem(&mut self, at: &str, message: impl Into<String>) {
        let position = self.positions.find(at);
        self.problems.push(Problem {
            line: position.line,
            column: position.column,
            at: at.to_string(),
            message: message.into(),
        });
    }

    /// `path` made absolute against the plan's directory.
    fn path(&self, path: &Path) -> PathBuf {
        self.base.join(path)
    }

    /// The absolute path, checked to be an existing file (or directory).
    fn existing(&mut self, at: &str, path: &Path, directory: bool) -> PathBuf {
        let full = self.path(path);
        let what = if directory { "directory" } else { "file" };
        match std::fs::metadata(&full) {
            Ok(meta) if meta.is_dir() == directory => {}
            Ok(_) => self.problem(at, format!("{} is not a {what}", full.display())),
            Err(error) => self.problem(
                at,
                format!(
                    "{} ({what}): {error}; paths are relative to the plan's directory {}",
                    full.display(),
                    self.base.display()
                ),
            ),
        }
        full
    }
}

pub(super) fn resolve(
    raw: PlanFile,
    path: &Path,
    positions: &Positions,
) -> Result<Plan, PlanError> {
    let file = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut checker = Checker {
        positions,
        base,
        problems: Vec::new(),
    };
    let c = &mut checker;
    if raw.api_version != API_VERSION {
        c.problem(
            "apiVersion",
            format!(
                "{:?} is not a plan version this loadmaster reads: use {API_VERSION:?}",
                raw.api_version
            ),
        );
    }
    if raw.images.is_empty() && raw.deploy.is_empty() && raw.test.is_none() {
        c.problem(
            "",
            "the plan does nothing: give at least one of images, deploy or test",
        );
    }
    let cluster = cluster(c, raw.cluster);
    let images = images(c, raw.images);
    if matches!(cluster.delivery, Delivery::Registry { .. }) {
        for (n, image) in images.iter().enumerate() {
            if let Err(error) = tagged_reference(&image.name) {
                c.problem(&format!("images[{n}].name"), error.to_string());
            }
        }
    }
    let mut deploy: Vec<DeployStep> = raw
        .deploy
        .into_iter()
        .enumerate()
        .map(|(n, step)| deploy_step(c, n, step))
        .collect();
    let deploy_order = order(c, &mut deploy);
    let test = raw.test.map(|test| test_section(c, test));
    let budget = raw.budget.map_or_else(Budget::default, |budget| {
        if budget.parallel_builds == Some(0) {
            c.problem("budget.parallelBuilds", "must be at least 1");
        }
        Budget {
            memory: budget.memory,
            disk: budget.disk,
            parallel_builds: budget.parallel_builds,
        }
    });
    let teardown = Teardown {
        on_success: raw.teardown.on_success.unwrap_or(TeardownAction::Delete),
        on_failure: raw.teardown.on_failure.unwrap_or(TeardownAction::Keep),
    };
    if checker.problems.is_empty() {
        Ok(Plan {
            file,
            cluster,
            images,
            deploy,
            deploy_order,
            test,
            teardown,
            budget,
        })
    } else {
        checker.problems.sort_by_key(|p| (p.line, p.column));
        Err(PlanError::Invalid {
            path: path.to_path_buf(),
            problems: checker.problems,
        })
    }
}

/// A DNS label: lowercase letters, digits and `-`, not at either end. kind
/// cluster names become container and host names, and Kubernetes object
/// names follow the same rule.
fn is_dns_label(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn cluster(c: &mut Checker, raw: ClusterFile) -> Cluster {
    let is_existing = raw.provider == Some(file::Provider::Existing);
    if is_existing {
        if !is_dns_label(&raw.name, 63) {
            c.problem(
                "cluster.name",
                format!(
                    "{:?} is not a cluster name (the name runs and reports give the cluster): lowercase letters, digits and '-'",
                    raw.name
                ),
            );
        }
    } else if !is_dns_label(&raw.name, 50) {
        // kind appends "-control-plane" (14) and "-worker99"; 50 leaves a
        // hostname under 64.
        c.problem(
            "cluster.name",
            format!(
                "{:?} is not a kind cluster name: lowercase letters, digits and '-', at most 50 characters, starting and ending with a letter or digit",
                raw.name
            ),
        );
    }
    let not_created = if is_existing {
        "an existing cluster (provider: existing) is not created, so this does not apply: remove it"
    } else {
        "an existing cluster is not created, so this does not apply: remove it, or remove `existing: true`"
    };
    if raw.existing || is_existing {
        for (field, given) in [
            ("config", raw.config.is_some()),
            ("configInline", raw.config_inline.is_some()),
            ("nodeImage", raw.node_image.is_some()),
        ] {
            if given {
                c.problem(&format!("cluster.{field}"), not_created);
            }
        }
    }
    if is_existing && raw.existing {
        c.problem(
            "cluster.existing",
            "`provider: existing` is never created or deleted already: remove `existing: true`",
        );
    }
    let provider = if is_existing {
        existing_provider(c, raw.context, raw.kubeconfig)
    } else {
        for (field, given) in [
            ("context", raw.context.is_some()),
            ("kubeconfig", raw.kubeconfig.is_some()),
        ] {
            if given {
                c.problem(
                    &format!("cluster.{field}"),
                    "only an existing cluster is reached through a kubeconfig: add `provider: existing`, or remove this (kind clusters use kind's kubeconfig)",
                );
            }
        }
        Provider::Kind
    };
    let delivery = delivery(c, raw.delivery, is_existing);
    let image_cache = raw.image_cache.map(|cache| {
        if matches!(delivery, Delivery::Registry { .. }) {
            c.problem(
                "cluster.imageCache",
                "the image cache serves loads into the nodes, and this cluster's images go through a registry: remove it, or use `delivery: {mode: load}`",
            );
        }
        if cache.max_size.is_some_and(|s| s.bytes() == 0) {
            c.problem(
                "cluster.imageCache.maxSize",
                "a cache of 0 bytes keeps nothing: give a size like 20GiB, or remove imageCache",
            );
        }
        if cache.dir.as_os_str().is_empty() {
            c.problem("cluster.imageCache.dir", "give the cache's directory, like .loadmaster/image-cache");
        }
        ImageCache {
            dir: c.path(&cache.dir),
            max_size: cache.max_size.unwrap_or(IMAGE_CACHE_SIZE),
        }
    });
    let config = match (raw.config, raw.config_inline) {
        (Some(_), Some(_)) => {
            c.problem(
                "cluster.configInline",
                "give the kind config either as a file (config) or inline (configInline), not both",
            );
            KindConfigSource::Default
        }
        (Some(path), None) => {
            let full = c.existing("cluster.config", &path, false);
            if full.is_file()
                && let Err(error) = KindConfig::load(&full)
            {
                c.problem("cluster.config", error.to_string());
            }
            KindConfigSource::File { path: full }
        }
        (None, Some(config)) => KindConfigSource::Inline { config },
        (None, None) => KindConfigSource::Default,
    };
    if let Some(image) = &raw.node_image
        && let Err(error) = normalize_reference(image)
    {
        c.problem("cluster.nodeImage", error.to_string());
    }
    Cluster {
        name: raw.name,
        engine: raw.engine,
        node_image: raw.node_image,
        config,
        existing: raw.existing || is_existing,
        provider,
        delivery,
        image_cache,
    }
}

fn existing_provider(
    c: &mut Checker,
    context: Option<String>,
    kubeconfig: Option<PathBuf>,
) -> Provider {
    let context = match context {
        Some(context) if !context.trim().is_empty() => context,
        Some(_) => {
            c.problem(
                "cluster.context",
                "the context is empty: give its name (`kubectl config get-contexts` lists them)",
            );
            String::new()
        }
        None => {
            c.problem(
                "cluster",
                "an existing cluster is reached through a kubeconfig context: add `context: NAME` (`kubectl config get-contexts` lists them)",
            );
            String::new()
        }
    };
    let kubeconfig = kubeconfig.map(|path| c.existing("cluster.kubeconfig", &path, false));
    Provider::Existing {
        context,
        kubeconfig,
    }
}

/// The delivery mode: `load` unless the plan says otherwise; an existing
/// cluster's nodes are out of reach, so it needs a registry.
fn delivery(c: &mut Checker, raw: Option<DeliveryFile>, is_existing: bool) -> Delivery {
    let Some(raw) = raw else {
        if is_existing {
            c.problem(
                "cluster",
                "an existing cluster's nodes are not touched, so images go through a registry: add `delivery: {mode: registry, registry: HOST[/PREFIX]}`",
            );
        }
        return Delivery::Load;
    };
    match raw.mode {
        DeliveryMode::Load => {
            if is_existing {
                c.problem(
                    "cluster.delivery.mode",
                    "an existing cluster's nodes are not touched, so images cannot be loaded into them: use `mode: registry` with `registry: HOST[/PREFIX]`",
                );
            }
            for (field, given) in [
                ("registry", raw.registry.is_some()),
                ("allowHttp", raw.allow_http),
            ] {
                if given {
                    c.problem(
                        &format!("cluster.delivery.{field}"),
                        "only `mode: registry` takes this: remove it, or use `mode: registry`",
                    );
                }
            }
            Delivery::Load
        }
        DeliveryMode::Registry => {
            if let Some(spec) = &raw.registry
                && let Err(error) = RegistryTarget::parse(spec, raw.allow_http)
            {
                c.problem("cluster.delivery.registry", error.to_string());
            }
            if raw.registry.is_none() && is_existing {
                c.problem(
                    "cluster.delivery",
                    "an existing cluster needs `registry: HOST[/PREFIX]`, a registry its nodes pull from (only a kind cluster's registry is discovered, from its local-registry-hosting ConfigMap)",
                );
            }
            Delivery::Registry {
                registry: raw.registry,
                allow_http: raw.allow_http,
            }
        }
    }
}

fn images(c: &mut Checker, raw: Vec<ImageFile>) -> Vec<Image> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut images = Vec::new();
    for (n, image) in raw.into_iter().enumerate() {
        let at = format!("images[{n}]");
        let reference = match normalize_reference(&image.name) {
            Ok(reference) => reference.to_string(),
            Err(error) => {
                c.problem(&format!("{at}.name"), error.to_string());
                image.name.clone()
            }
        };
        if let Some(first) = seen.insert(reference.clone(), n) {
            c.problem(
                &format!("{at}.name"),
                format!("images[{first}] is the same image ({reference}): list each image once"),
            );
        }
        let given = [
            image.build.is_some(),
            image.pull.is_some(),
            image.archive.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            c.problem(
                &at,
                "an image comes from one place: give at most one of build, pull and archive (none: taken from the engine)",
            );
        }
        let source = if let Some(build) = image.build {
            ImageSource::Build(build_section(c, &format!("{at}.build"), build))
        } else if let Some(policy) = image.pull {
            ImageSource::Pull { policy }
        } else if let Some(archive) = image.archive {
            ImageSource::Archive {
                path: c.existing(&format!("{at}.archive"), &archive, false),
            }
        } else {
            ImageSource::Engine
        };
        images.push(Image {
            name: image.name,
            reference,
            source,
        });
    }
    images
}

fn build_section(c: &mut Checker, at: &str, raw: BuildFile) -> Build {
    let context = c.existing(&format!("{at}.context"), &raw.context, true);
    let dockerfile = match &raw.dockerfile {
        Some(file) => c.existing(&format!("{at}.dockerfile"), file, false),
        None => {
            let file = context.join("Dockerfile");
            if context.is_dir() && !file.is_file() {
                c.problem(
                    &format!("{at}.context"),
                    format!(
                        "{} has no Dockerfile: add one, or name it with dockerfile:",
                        context.display()
                    ),
                );
            }
            file
        }
    };
    let timeout = raw.timeout.unwrap_or(BUILD_TIMEOUT);
    positive(c, &format!("{at}.timeout"), timeout);
    if raw.memory.is_some_and(|m| m.bytes() == 0) {
        c.problem(
            &format!("{at}.memory"),
            "a build needs some memory: give its peak, like 2GiB",
        );
    }
    Build {
        context,
        dockerfile,
        args: raw.args,
        target: raw.target,
        timeout,
        memory: raw.memory,
    }
}

fn positive(c: &mut Checker, at: &str, duration: super::Duration) {
    if duration.get().is_zero() {
        c.problem(at, "a timeout of 0 fails at once: give one like 5m");
    }
}

fn deploy_step(c: &mut Checker, n: usize, raw: DeployFile) -> DeployStep {
    let at = format!("deploy[{n}]");
    if !is_dns_label(&raw.name, 63) {
        c.problem(
            &format!("{at}.name"),
            format!(
                "{:?} is not a step name: lowercase letters, digits and '-'",
                raw.name
            ),
        );
    }
    let apply = match (raw.manifests.is_empty(), raw.kustomize) {
        (false, Some(_)) => {
            c.problem(
                &at,
                "give either manifests or kustomize, not both: make two steps",
            );
            Apply::Manifests { paths: Vec::new() }
        }
        (true, None) => {
            c.problem(
                &at,
                "nothing to apply: give manifests (files) or kustomize (a directory)",
            );
            Apply::Manifests { paths: Vec::new() }
        }
        (false, None) => Apply::Manifests {
            paths: raw
                .manifests
                .iter()
                .enumerate()
                .map(|(m, path)| c.existing(&format!("{at}.manifests[{m}]"), path, false))
                .collect(),
        },
        (true, Some(dir)) => {
            let dir = c.existing(&format!("{at}.kustomize"), &dir, true);
            let has_kustomization = ["kustomization.yaml", "kustomization.yml", "Kustomization"]
                .iter()
                .any(|name| dir.join(name).is_file());
            if dir.is_dir() && !has_kustomization {
                c.problem(
                    &format!("{at}.kustomize"),
                    format!("{} has no kustomization.yaml", dir.display()),
                );
            }
            Apply::Kustomize { dir }
        }
    };
    let waits = raw
        .wait
        .into_iter()
        .enumerate()
        .filter_map(|(w, wait)| wait_section(c, &format!("{at}.wait[{w}]"), wait, &raw.namespace))
        .collect();
    DeployStep {
        name: raw.name,
        apply,
        namespace: raw.namespace,
        // Filled in by `order`, which knows the steps before this one.
        needs: raw.needs.unwrap_or_else(|| vec![PREVIOUS.to_string()]),
        waits,
    }
}

/// Stands for "the step before" until `order` resolves it.
const PREVIOUS: &str = "\0previous";

fn wait_section(
    c: &mut Checker,
    at: &str,
    raw: WaitFile,
    step_namespace: &Option<String>,
) -> Option<Wait> {
    let timeout = raw.timeout.unwrap_or(WAIT_TIMEOUT);
    positive(c, &format!("{at}.timeout"), timeout);
    let kinds = [
        raw.rollout.is_some(),
        raw.job.is_some(),
        raw.condition.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        c.problem(at, "a wait is exactly one of rollout, job or condition");
        return None;
    }
    if raw.condition.is_none() {
        for (field, given) in [
            ("resource", raw.resource.is_some()),
            ("selector", raw.selector.is_some()),
        ] {
            if given {
                c.problem(&format!("{at}.{field}"), "only a condition wait takes this");
            }
        }
    }
    let until = if let Some(resource) = raw.rollout {
        let kind = resource.split_once('/').map(|(kind, _)| kind);
        if !matches!(kind, Some("deployment" | "statefulset" | "daemonset")) {
            c.problem(
                &format!("{at}.rollout"),
                format!("{resource:?}: give deployment/NAME, statefulset/NAME or daemonset/NAME"),
            );
        }
        WaitFor::Rollout { resource }
    } else if let Some(job) = raw.job {
        let name = job.strip_prefix("job/").unwrap_or(&job).to_string();
        if !is_dns_label(&name, 63) {
            c.problem(&format!("{at}.job"), format!("{job:?} is not a job name"));
        }
        WaitFor::JobComplete { job: name }
    } else {
        let condition = raw.condition.unwrap_or_default();
        let Some(resource) = raw.resource else {
            c.problem(
                at,
                "a condition wait needs resource: KIND/NAME, or KIND with selector",
            );
            return None;
        };
        if !resource.contains('/') && raw.selector.is_none() {
            c.problem(
                &format!("{at}.resource"),
                format!("{resource:?} names no object: give KIND/NAME, or add selector"),
            );
        }
        WaitFor::Condition {
            condition,
            resource,
            selector: raw.selector,
        }
    };
    Some(Wait {
        until,
        namespace: raw.namespace.or_else(|| step_namespace.clone()),
        timeout,
    })
}

/// Resolves `needs` and orders the steps: file order, except that a step
/// waits for what it needs. Reports unknown names and cycles.
fn order(c: &mut Checker, steps: &mut [DeployStep]) -> Vec<String> {
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for (n, step) in steps.iter().enumerate() {
        if let Some(first) = index.insert(step.name.clone(), n) {
            c.problem(
                &format!("deploy[{n}].name"),
                format!(
                    "deploy[{first}] has the same name {:?}: names must be unique",
                    step.name
                ),
            );
        }
    }
    let mut needs: Vec<Vec<usize>> = Vec::new();
    // Steps that follow the one before only because they say nothing.
    let implicit: Vec<bool> = steps
        .iter()
        .map(|step| step.needs.iter().any(|name| name == PREVIOUS))
        .collect();
    for (n, step) in steps.iter().enumerate() {
        let mut mine = Vec::new();
        for (m, name) in step.needs.iter().enumerate() {
            if name == PREVIOUS {
                mine.extend(n.checked_sub(1));
            } else if name == &step.name {
                c.problem(
                    &format!("deploy[{n}].needs[{m}]"),
                    "a step cannot need itself",
                );
            } else if let Some(&other) = index.get(name.as_str()) {
                mine.push(other);
            } else {
                let known: Vec<&str> = index.keys().map(String::as_str).collect();
                c.problem(
                    &format!("deploy[{n}].needs[{m}]"),
                    format!(
                        "no deploy step is named {name:?}; the steps are: {}",
                        known.join(", ")
                    ),
                );
            }
        }
        needs.push(mine);
    }
    // The sentinel becomes the previous step's name (or nothing, first).
    for n in 0..steps.len() {
        let previous = n.checked_sub(1).map(|p| steps[p].name.clone());
        let step = &mut steps[n];
        step.needs = std::mem::take(&mut step.needs)
            .into_iter()
            .filter_map(|name| {
                if name == PREVIOUS {
                    previous.clone()
                } else {
                    Some(name)
                }
            })
            .collect();
    }
    if let Some(cycle) = find_cycle(&needs) {
        let names: Vec<&str> = cycle.iter().map(|&n| steps[n].name.as_str()).collect();
        let mut message = format!(
            "these steps need each other, so none can start: {} (each needs the next)",
            names.join(" -> ")
        );
        for pair in cycle.windows(2) {
            if implicit[pair[0]] && pair[1] + 1 == pair[0] {
                message.push_str(&format!(
                    "; {:?} gives no needs, so it follows the step before it, {:?} (`needs: []` starts it first)",
                    steps[pair[0]].name, steps[pair[1]].name
                ));
            }
        }
        // Placed at a step that named its needs, if the cycle has one.
        let at = cycle
            .iter()
            .find(|&&n| !implicit[n])
            .map_or(format!("deploy[{}]", cycle[0]), |n| {
                format!("deploy[{n}].needs")
            });
        c.problem(&at, message);
        return Vec::new();
    }
    // Kahn's algorithm, taking the first ready step in file order each time.
    let mut done = vec![false; steps.len()];
    let mut order = Vec::new();
    while order.len() < steps.len() {
        let next = (0..steps.len())
            .find(|&n| !done[n] && needs[n].iter().all(|&m| done[m]))
            .expect("no cycle, so some step is ready");
        done[next] = true;
        order.push(steps[next].name.clone());
    }
    order
}

/// A cycle in the `needs` graph, as step indexes from a step back to it
/// (`[a, b, a]`), or `None`.
fn find_cycle(needs: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        n: usize,
        needs: &[Vec<usize>],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        marks[n] = Mark::Open;
        path.push(n);
        for &m in &needs[n] {
            match marks[m] {
                Mark::Open => {
                    let start = path
                        .iter()
                        .position(|&p| p == m)
                        .expect("open steps are on the path");
                    let mut cycle = path[start..].to_vec();
                    cycle.push(m);
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(cycle) = visit(m, needs, marks, path) {
                        return Some(cycle);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[n] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; needs.len()];
    (0..needs.len()).find_map(|n| {
        (marks[n] == Mark::New)
            .then(|| visit(n, needs, &mut marks, &mut Vec::new()))
            .flatten()
    })
}

fn test_section(c: &mut Checker, raw: TestFile) -> Test {
    let empty = match &raw.command {
        CommandLine::Shell(line) => line.trim().is_empty(),
        CommandLine::Argv(argv) => argv.first().is_none_or(|program| program.is_empty()),
    };
    if empty {
        c.problem(
            "test.command",
            "the command is empty: give the test's command line",
        );
    }
    let workdir = match &raw.workdir {
        Some(dir) => c.existing("test.workdir", dir, true),
        None => c.base.clone(),
    };
    let timeout = raw.timeout.unwrap_or(TEST_TIMEOUT);
    positive(c, "test.timeout", timeout);
    Test {
        command: raw.command,
        env: raw.env,
        artifacts: raw
            .artifacts
            .iter()
            .map(|path| workdir.join(path))
            .collect(),
        workdir,
        timeout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cycle_not_just_that_there_is_one() {
        // 0 -> 1 -> 2 -> 1; 3 stands alone.
        let needs = vec![vec![1], vec![2], vec![1], vec![]];
        assert_eq!(find_cycle(&needs), Some(vec![1, 2, 1]));
        assert_eq!(find_cycle(&[vec![], vec![0], vec![0, 1]]), None);
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("aianalysis-e2e", 50));
        for bad in ["", "-a", "a-", "A", "a_b", "a.b"] {
            assert!(!is_dns_label(bad, 50), "{bad}");
        }
        assert!(!is_dns_label(&"a".repeat(51), 50));
    }
}
