//! The step graph of `up` (and of `run` up to its test), made from the
//! plan: what each step needs.
//!
//! - `preflight` first; everything else needs it.
//! - `cluster` and every `build/<image>` right after it, side by side.
//! - `deliver/<image>` (delivery `load`) needs the cluster and, for a
//!   built image, its build; a pulled or present image needs no build.
//!   With `delivery: registry`, step `registry` (finding the registry,
//!   once) needs the cluster, and each `deliver/<image>` pushes its image
//!   once the registry is found and its own build, if any, is done.
//! - `deploy/<name>` needs the cluster, the deploy steps it `needs`, and the
//!   deliveries of the plan images its manifests name
//!   ([`super::manifests`]; every delivery when they cannot be read).
//! - `test` needs every deploy step and every delivery.
//!
//! Pure: the plan, the builds' estimates and the images each deploy step
//! names in, the graph out (a delivery's disk demand left to be measured
//! when it is ready to start). [`Order::Phases`] adds the edges of the order
//! `up` had before the graph (the cluster, then every build, then each
//! delivery in turn, then each deploy step in turn), kept so that the
//! benchmark measures the graph against it.

use super::graph::{Kind, Step};
use crate::plan::{Delivery, ImageSource, Plan};
use std::collections::BTreeSet;

/// What a step of the graph does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    Preflight,
    Cluster,
    /// The plan image with this index.
    Build(usize),
    /// The plan image with this index loaded into the nodes.
    Deliver(usize),
    /// The registry of `delivery: registry` found, once.
    Registry,
    /// The plan image with this index pushed to that registry.
    Push(usize),
    /// The deploy step with this name's index in `plan.deploy`.
    Deploy(usize),
    Test,
}

/// The job that delivers the plan image with the given index.
type Delivers = fn(usize) -> Job;

/// How steps are ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Each step as soon as what it needs is done.
    Graph,
    /// The phases `up` ran in before: set by `LOADMASTER_ORDER=phases`,
    /// for the benchmark's baseline.
    Phases,
}

/// The graph's steps and what each does, in plan order.
pub struct Pipeline {
    pub steps: Vec<Step>,
    pub jobs: Vec<Job>,
}

/// The graph of `plan`. `build_memory[n]`: the estimate of image `n`'s
/// build (0 for an image not built); `named[d]`: the images deploy step
/// `d` names, or `None` when unknown (then it needs every delivery).
pub fn pipeline(
    plan: &Plan,
    with_test: bool,
    build_memory: &[u64],
    named: &[Option<BTreeSet<usize>>],
    order: Order,
) -> Pipeline {
    let mut steps: Vec<Step> = Vec::new();
    let mut jobs = Vec::new();
    let mut add = |steps: &mut Vec<Step>,
                   id: String,
                   kind: Kind,
                   needs: Vec<usize>,
                   memory: u64,
                   job: Job| {
        // A delivery takes up to its image's size in the engine's temp
        // space (podman's `save` stages it there, and a push reads the
        // same `save`): a size known only once its build, if any, is done,
        // so it is measured then. A build reserves none: what it writes
        // is not known before it runs (its cached layers are already on
        // disk and a changed one is any size), and no earlier figure
        // says it (runs record the disk's free space, which the steps
        // beside a build move too, and no build's own growth).
        let disk_bytes = match kind {
            Kind::Delivery => None,
            _ => Some(0),
        };
        steps.push(Step {
            id,
            kind,
            needs,
            memory_bytes: memory,
            disk_bytes,
        });
        jobs.push(job);
        steps.len() - 1
    };
    let preflight = add(
        &mut steps,
        "preflight".into(),
        Kind::Preflight,
        vec![],
        0,
        Job::Preflight,
    );
    let cluster = add(
        &mut steps,
        "cluster".into(),
        Kind::Cluster,
        vec![preflight],
        0,
        Job::Cluster,
    );
    let phases = order == Order::Phases;
    let mut builds = vec![None; plan.images.len()];
    for (n, image) in plan.images.iter().enumerate() {
        if let ImageSource::Build(_) = image.source {
            let needs = if phases {
                vec![cluster]
            } else {
                vec![preflight]
            };
            builds[n] = Some(add(
                &mut steps,
                format!("build/{}", image.name),
                Kind::Build,
                needs,
                build_memory.get(n).copied().unwrap_or(0),
                Job::Build(n),
            ));
        }
    }
    let all_builds: Vec<usize> = builds.iter().flatten().copied().collect();
    // Per image: the step after which it is on the cluster.
    let mut delivered: Vec<Option<usize>> = vec![None; plan.images.len()];
    // The step every delivery needs besides its build, and the job that
    // delivers image `n`.
    let delivery: Option<(usize, Delivers)> = match plan.cluster.delivery {
        Delivery::Load => Some((cluster, Job::Deliver)),
        Delivery::Registry { .. } if !plan.images.is_empty() => {
            let registry = add(
                &mut steps,
                "registry".into(),
                Kind::Registry,
                vec![cluster],
                0,
                Job::Registry,
            );
            Some((registry, Job::Push))
        }
        Delivery::Registry { .. } => None,
    };
    if let Some((after, job)) = delivery {
        let mut previous: Option<usize> = None;
        for (n, image) in plan.images.iter().enumerate() {
            let mut needs = vec![after];
            if phases {
                needs.extend(&all_builds);
                needs.extend(previous);
            } else {
                needs.extend(builds[n]);
            }
            let step = add(
                &mut steps,
                format!("deliver/{}", image.name),
                Kind::Delivery,
                needs,
                0,
                job(n),
            );
            delivered[n] = Some(step);
            previous = Some(step);
        }
    }
    let all_delivered: BTreeSet<usize> = delivered.iter().flatten().copied().collect();
    let mut deploys: Vec<(String, usize)> = Vec::new();
    for name in &plan.deploy_order {
        let Some(d) = plan.deploy.iter().position(|step| &step.name == name) else {
            continue;
        };
        let mut needs: BTreeSet<usize> = BTreeSet::from([cluster]);
        for need in &plan.deploy[d].needs {
            needs.extend(deploys.iter().filter(|(n, _)| n == need).map(|(_, s)| *s));
        }
        match named.get(d).and_then(Option::as_ref) {
            Some(images) => needs.extend(images.iter().filter_map(|&n| delivered[n])),
            None => needs.extend(&all_delivered),
        }
        if phases {
            needs.extend(&all_delivered);
            needs.extend(deploys.last().map(|(_, s)| *s));
        }
        let step = add(
            &mut steps,
            format!("deploy/{name}"),
            Kind::Deploy,
            needs.into_iter().collect(),
            0,
            Job::Deploy(d),
        );
        deploys.push((name.clone(), step));
    }
    if with_test && plan.test.is_some() {
        let mut needs: BTreeSet<usize> = BTreeSet::from([cluster]);
        needs.extend(deploys.iter().map(|(_, s)| *s));
        needs.extend(&all_delivered);
        add(
            &mut steps,
            "test".into(),
            Kind::Test,
            needs.into_iter().collect(),
            0,
            Job::Test,
        );
    }
    Pipeline { steps, jobs }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seed-shaped plan: three builds, two pulled services, deploy
    /// steps with needs, a test.
    const PLAN: &str = "apiVersion: loadmaster/v1\ncluster:\n  name: e2e\nimages:\n  - name: localhost/api:e2e\n    build:\n      context: .\n  - name: localhost/hapi:e2e\n    build:\n      context: .\n  - name: postgres:16\n    pull: ifMissing\ndeploy:\n  - name: namespace\n    manifests: [ns.yaml]\n  - name: postgres\n    manifests: [db.yaml]\n    needs: [namespace]\n  - name: services\n    manifests: [svc.yaml]\n    needs: [postgres]\ntest:\n  command: \"true\"\n";

    fn plan() -> Plan {
        let scratch = tempfile::Builder::new()
            .prefix("lm-pipeline-")
            .tempdir()
            .unwrap();
        let dir = scratch.path().to_path_buf();
        for file in ["ns.yaml", "db.yaml", "svc.yaml", "Dockerfile"] {
            std::fs::write(dir.join(file), "a: b\n").unwrap();
        }
        let file = dir.join("loadmaster.yaml");
        std::fs::write(&file, PLAN).unwrap();
        crate::plan::load(&file).unwrap()
    }

    fn needs_of(pipeline: &Pipeline, id: &str) -> Vec<String> {
        let step = pipeline.steps.iter().find(|s| s.id == id).unwrap();
        step.needs
            .iter()
            .map(|&n| pipeline.steps[n].id.clone())
            .collect()
    }

    #[test]
    fn each_step_needs_only_what_it_uses() {
        let plan = plan();
        // namespace names nothing, postgres its image, services the api's
        // and hapi's.
        let named = [
            Some(BTreeSet::new()),
            Some(BTreeSet::from([2])),
            Some(BTreeSet::from([0, 1])),
        ];
        let p = pipeline(&plan, true, &[100, 200, 0], &named, Order::Graph);
        let ids: Vec<&str> = p.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "preflight",
                "cluster",
                "build/localhost/api:e2e",
                "build/localhost/hapi:e2e",
                "deliver/localhost/api:e2e",
                "deliver/localhost/hapi:e2e",
                "deliver/postgres:16",
                "deploy/namespace",
                "deploy/postgres",
                "deploy/services",
                "test"
            ]
        );
        assert_eq!(needs_of(&p, "cluster"), ["preflight"]);
        assert_eq!(needs_of(&p, "build/localhost/hapi:e2e"), ["preflight"]);
        assert_eq!(p.steps[3].memory_bytes, 200);
        assert_eq!(
            needs_of(&p, "deliver/localhost/api:e2e"),
            ["cluster", "build/localhost/api:e2e"]
        );
        assert_eq!(needs_of(&p, "deliver/postgres:16"), ["cluster"]);
        assert_eq!(needs_of(&p, "deploy/namespace"), ["cluster"]);
        assert_eq!(
            needs_of(&p, "deploy/postgres"),
            ["cluster", "deliver/postgres:16", "deploy/namespace"]
        );
        assert_eq!(
            needs_of(&p, "deploy/services"),
            [
                "cluster",
                "deliver/localhost/api:e2e",
                "deliver/localhost/hapi:e2e",
                "deploy/postgres"
            ]
        );
        assert_eq!(needs_of(&p, "test").len(), 7, "{:?}", needs_of(&p, "test"));
        assert_eq!(p.jobs[9], Job::Deploy(2));
        // Without the test (`up`), no test step.
        let up = pipeline(&plan, false, &[100, 200, 0], &named, Order::Graph);
        assert!(up.steps.iter().all(|s| s.id != "test"));
    }

    #[test]
    fn with_a_registry_each_image_is_pushed_once_its_own_build_is_done() {
        let mut plan = plan();
        plan.cluster.delivery = Delivery::Registry {
            registry: Some("127.0.0.1:5000/e2e".into()),
            allow_http: false,
        };
        let named = [
            Some(BTreeSet::new()),
            Some(BTreeSet::from([2])),
            Some(BTreeSet::from([1])),
        ];
        let p = pipeline(&plan, true, &[100, 200, 0], &named, Order::Graph);
        // The registry is found once, beside the builds.
        assert_eq!(needs_of(&p, "registry"), ["cluster"]);
        assert_eq!(p.steps.iter().filter(|s| s.id == "registry").count(), 1);
        // Each push needs the registry and its own build alone.
        assert_eq!(
            needs_of(&p, "deliver/localhost/api:e2e"),
            ["registry", "build/localhost/api:e2e"]
        );
        assert_eq!(
            needs_of(&p, "deliver/localhost/hapi:e2e"),
            ["registry", "build/localhost/hapi:e2e"]
        );
        assert_eq!(needs_of(&p, "deliver/postgres:16"), ["registry"]);
        let push = |id: &str| p.steps.iter().position(|s| s.id == id).unwrap();
        assert_eq!(p.jobs[push("deliver/localhost/hapi:e2e")], Job::Push(1));
        assert_eq!(p.steps[push("deliver/postgres:16")].kind, Kind::Delivery);
        // Its disk demand is measured once its build is done.
        assert_eq!(p.steps[push("deliver/localhost/api:e2e")].disk_bytes, None);
        assert_eq!(p.steps[push("build/localhost/api:e2e")].disk_bytes, Some(0));
        // A deploy step waits for the pushes of the images it names only.
        assert_eq!(
            needs_of(&p, "deploy/postgres"),
            ["cluster", "deliver/postgres:16", "deploy/namespace"]
        );
        assert_eq!(
            needs_of(&p, "deploy/services"),
            ["cluster", "deliver/localhost/hapi:e2e", "deploy/postgres"]
        );
        // The phase order pushes after every build, one image at a time.
        let phases = pipeline(&plan, true, &[100, 200, 0], &named, Order::Phases);
        assert_eq!(
            needs_of(&phases, "deliver/postgres:16"),
            [
                "registry",
                "build/localhost/api:e2e",
                "build/localhost/hapi:e2e",
                "deliver/localhost/hapi:e2e"
            ]
        );
    }

    #[test]
    fn manifests_that_cannot_be_read_wait_for_every_delivery() {
        let plan = plan();
        let p = pipeline(
            &plan,
            true,
            &[1, 1, 0],
            &[Some(BTreeSet::new()), None, None],
            Order::Graph,
        );
        assert_eq!(
            needs_of(&p, "deploy/postgres"),
            [
                "cluster",
                "deliver/localhost/api:e2e",
                "deliver/localhost/hapi:e2e",
                "deliver/postgres:16",
                "deploy/namespace"
            ]
        );
    }

    #[test]
    fn the_phase_order_chains_every_phase() {
        let plan = plan();
        let named = [
            Some(BTreeSet::new()),
            Some(BTreeSet::from([2])),
            Some(BTreeSet::new()),
        ];
        let p = pipeline(&plan, true, &[1, 1, 0], &named, Order::Phases);
        assert_eq!(needs_of(&p, "build/localhost/api:e2e"), ["cluster"]);
        assert_eq!(
            needs_of(&p, "deliver/localhost/hapi:e2e"),
            [
                "cluster",
                "build/localhost/api:e2e",
                "build/localhost/hapi:e2e",
                "deliver/localhost/api:e2e"
            ]
        );
        let namespace = needs_of(&p, "deploy/namespace");
        assert!(
            namespace.contains(&"deliver/postgres:16".to_string()),
            "{namespace:?}"
        );
        assert!(needs_of(&p, "deploy/services").contains(&"deploy/postgres".to_string()));
    }
}
