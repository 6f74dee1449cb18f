//! Whether each image a deploy step's manifests name ([`super::manifests`])
//! will resolve on the nodes, judged before anything is applied: a pod
//! whose image the kubelet may not pull (`imagePullPolicy: Never`) or that
//! nothing delivered under its name would otherwise show only as a wait
//! that times out (`ErrImageNeverPull`, `ErrImagePull`).
//!
//! A use is fine when its name, as the nodes resolve it, is an image the
//! plan delivers or (when known) one every node holds, or when the kubelet
//! pulls it anyway (`Always`). Otherwise:
//!
//! - a near miss, the name of a delivered image but for its tag or its
//!   registry (`localhost/app:latest`, `app:e2e` or `docker.io/app:e2e`
//!   where `localhost/app:e2e` is loaded), is an error naming both names;
//!   except that a tag of another registry's repository with
//!   `IfNotPresent` (`postgres:15` where `postgres:16` is loaded) is only
//!   a warning, since the node pulls it from that registry;
//! - a `Never` name that is near nothing delivered is an error when the
//!   nodes' holdings are known and lack it, else a warning that it must be
//!   on the nodes already;
//! - an `IfNotPresent` name near nothing delivered (a PostgreSQL from a
//!   registry) is pulled, as meant.
//!
//! A name pinned by digest is left alone unless delivered or held: a
//! digest names content, which no comparison of names can judge.

use super::manifests::{ImageUse, PullPolicy};
use crate::archive::{ImageReference, normalize_reference};
use crate::finding::{Finding, Status};
use crate::plan::{Image, Plan};
use std::collections::HashSet;
use std::fmt;

/// A domain no node pulls from: podman's prefix for its own images.
const LOCAL_ONLY: &str = "localhost";

/// What the nodes will hold when a deploy step applies.
pub struct Holdings<'a> {
    /// The plan's images, all delivered before the step applies.
    pub delivered: &'a [Image],
    /// What every node holds, as references, when it was read.
    pub held: Option<&'a HashSet<ImageReference>>,
}

/// A use whose name will not (or may not) resolve on the nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub usage: ImageUse,
    pub problem: Problem,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Near the names of these delivered images (as the plan names them).
    /// `pulled`: the node pulls the name from its registry instead.
    NearMiss { loaded: Vec<String>, pulled: bool },
    /// `Never`, delivered by nothing, and not on every node; `near`:
    /// the names the nodes hold of the same repository.
    NotOnNodes { near: Vec<String> },
    /// `Never`, delivered by nothing; what the nodes hold is unknown.
    MustBeOnNodes,
}

impl Mismatch {
    /// The deploy would fail on it (else it is worth a warning only).
    pub fn is_error(&self) -> bool {
        match &self.problem {
            Problem::NearMiss { pulled, .. } => !pulled,
            Problem::NotOnNodes { .. } => true,
            Problem::MustBeOnNodes => false,
        }
    }

    /// `app.yaml (Deployment app, container app) asks for
    /// localhost/app:latest with imagePullPolicy Never`.
    fn asks(&self) -> String {
        let usage = &self.usage;
        let resolved = usage.reference.to_string();
        let resolved = if resolved == usage.image {
            String::new()
        } else {
            format!(" (on a node: {resolved})")
        };
        let defaulted = if usage.policy_defaulted {
            " (Kubernetes' default for it)"
        } else {
            ""
        };
        format!(
            "{} asks for {}{resolved} with imagePullPolicy {}{defaulted}",
            usage.place, usage.image, usage.policy
        )
    }

    /// What would make it resolve.
    fn fix(&self) -> String {
        let (image, file) = (&self.usage.image, &self.usage.place.file);
        match &self.problem {
            Problem::NearMiss { loaded, .. } => format!(
                "name {} in {file}, or add {image} to the plan's images",
                loaded.join(" or ")
            ),
            Problem::NotOnNodes { .. } | Problem::MustBeOnNodes => format!(
                "add {image} to the plan's images, or load it into the nodes first (`loadmaster load {image}`)"
            ),
        }
    }

    /// The pre-flight finding of a use in deploy step `step`.
    pub fn finding(&self, step: &str) -> Finding {
        let needed = match &self.problem {
            Problem::NearMiss { loaded, .. } => {
                format!(
                    "the name of an image this plan loads: {}",
                    loaded.join(", ")
                )
            }
            Problem::NotOnNodes { .. } | Problem::MustBeOnNodes => format!(
                "{} on every node, or in the plan's images",
                self.usage.image
            ),
        };
        Finding {
            id: format!("image-name.{step}.{}", self.usage.image),
            status: if self.is_error() {
                Status::Fail
            } else {
                Status::Warn
            },
            measured: self.to_string(),
            measured_bytes: None,
            needed,
            needed_bytes: None,
            source: format!("deploy step {step}'s manifests, against the plan's images"),
            side: None,
            fix: Some(self.fix()),
        }
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let asks = self.asks();
        let fix = self.fix();
        match &self.problem {
            Problem::NearMiss {
                loaded,
                pulled: false,
            } => write!(f, "{asks}; this plan loads {}: {fix}", loaded.join(", ")),
            Problem::NearMiss {
                loaded,
                pulled: true,
            } => write!(
                f,
                "{asks}: the nodes will pull it from {}, while this plan loads {}; if that is the image meant, {fix}",
                self.usage.reference.domain(),
                loaded.join(", ")
            ),
            Problem::NotOnNodes { near } => {
                let near = if near.is_empty() {
                    String::new()
                } else {
                    format!(" (they hold {})", near.join(", "))
                };
                write!(
                    f,
                    "{asks}, which this plan does not load and the nodes do not hold{near}: {fix}"
                )
            }
            Problem::MustBeOnNodes => write!(
                f,
                "{asks}, which this plan does not load: it must be on every node already, else {fix}"
            ),
        }
    }
}

/// The uses that will not (or may not) resolve on the nodes, in order.
pub fn check(uses: &[ImageUse], holdings: &Holdings<'_>) -> Vec<Mismatch> {
    uses.iter()
        .filter_map(|usage| {
            let problem = problem(usage, holdings)?;
            Some(Mismatch {
                usage: usage.clone(),
                problem,
            })
        })
        .collect()
}

fn problem(usage: &ImageUse, holdings: &Holdings<'_>) -> Option<Problem> {
    let reference = &usage.reference;
    let wanted = reference.to_string();
    let delivered = holdings.delivered.iter().any(|i| i.reference == wanted);
    let held = holdings.held.is_some_and(|held| held.contains(reference));
    if usage.policy == PullPolicy::Always || delivered || held || reference.digest().is_some() {
        return None;
    }
    let near: Vec<(&Image, ImageReference)> = holdings
        .delivered
        .iter()
        .filter_map(|image| Some((image, normalize_reference(&image.reference).ok()?)))
        .filter(|(_, loaded)| same_repository_name(loaded, reference))
        .collect();
    if !near.is_empty() {
        // Another tag of a repository on a registry the nodes pull from:
        // the node pulls it, which may be what was meant.
        let pulled = usage.policy == PullPolicy::IfNotPresent
            && reference.domain() != LOCAL_ONLY
            && near
                .iter()
                .any(|(_, loaded)| loaded.name() == reference.name());
        return Some(Problem::NearMiss {
            loaded: near.iter().map(|(image, _)| image.name.clone()).collect(),
            pulled,
        });
    }
    if usage.policy != PullPolicy::Never {
        return None;
    }
    Some(match holdings.held {
        Some(held) => {
            let mut near: Vec<String> = held
                .iter()
                .filter(|h| same_repository_name(h, reference))
                .map(ToString::to_string)
                .collect();
            near.sort();
            Problem::NotOnNodes { near }
        }
        None => Problem::MustBeOnNodes,
    })
}

/// The same repository but for its registry: `localhost/app`,
/// `docker.io/library/app` and `registry:5000/app` all end in `app`.
fn same_repository_name(a: &ImageReference, b: &ImageReference) -> bool {
    let short = |r: &ImageReference| {
        r.path()
            .strip_prefix("library/")
            .unwrap_or(r.path())
            .to_string()
    };
    short(a) == short(b)
}

/// The pre-flight's findings for the plan's deploy steps, each with its
/// uses as [`super::manifests::read`] read them (in `plan.deploy`'s
/// order): judged by the plan's images alone, before anything is
/// delivered. A step whose manifests cannot be read is a warning.
pub fn findings(plan: &Plan, uses: &[Result<Vec<ImageUse>, String>]) -> Vec<Finding> {
    let holdings = Holdings {
        delivered: &plan.images,
        held: None,
    };
    plan.deploy
        .iter()
        .zip(uses)
        .flat_map(|(step, uses)| match uses {
            Ok(uses) => check(uses, &holdings)
                .iter()
                .map(|mismatch| mismatch.finding(&step.name))
                .collect(),
            Err(why) => vec![Finding {
                id: format!("image-name.{}", step.name),
                status: Status::Warn,
                measured: format!("its manifests cannot be read: {why}"),
                measured_bytes: None,
                needed: "manifests that parse, to check the image names they use".into(),
                needed_bytes: None,
                source: format!("deploy step {}'s manifests", step.name),
                side: None,
                fix: None,
            }],
        })
        .collect()
}

/// Each deploy step's uses, in `plan.deploy`'s order.
pub fn read_all(plan: &Plan) -> Vec<Result<Vec<ImageUse>, String>> {
    let base = plan.file.parent().unwrap_or(&plan.file);
    plan.deploy
        .iter()
        .map(|step| super::manifests::read(&step.apply, base))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::manifests::Place;
    use crate::runner::manifests::tests::image;

    /// A use in `app.yaml`'s Deployment app, container app; `policy` none:
    /// Kubernetes' default.
    fn usage(name: &str, policy: Option<PullPolicy>) -> ImageUse {
        let reference = normalize_reference(name).unwrap();
        ImageUse {
            image: name.to_string(),
            policy: policy.unwrap_or_else(|| PullPolicy::default_for(&reference)),
            policy_defaulted: policy.is_none(),
            reference,
            place: Place {
                file: "app.yaml".into(),
                object: Some("Deployment app".into()),
                container: Some("app".into()),
            },
        }
    }

    fn problems(uses: &[ImageUse], delivered: &[Image], held: Option<&[&str]>) -> Vec<Problem> {
        let held: Option<HashSet<ImageReference>> = held.map(|names| {
            names
                .iter()
                .map(|n| normalize_reference(n).unwrap())
                .collect()
        });
        check(
            uses,
            &Holdings {
                delivered,
                held: held.as_ref(),
            },
        )
        .into_iter()
        .map(|mismatch| mismatch.problem)
        .collect()
    }

    const NEVER: Option<PullPolicy> = Some(PullPolicy::Never);
    const IF_NOT_PRESENT: Option<PullPolicy> = Some(PullPolicy::IfNotPresent);

    #[test]
    fn a_delivered_or_held_name_resolves_in_any_spelling() {
        let delivered = [image("localhost/app:e2e"), image("worker:1")];
        let uses = [
            usage("localhost/app:e2e", NEVER),
            usage("docker.io/library/worker:1", NEVER),
            usage("index.docker.io/worker:1", IF_NOT_PRESENT),
            usage("localhost/tools:1", NEVER),
        ];
        assert_eq!(
            problems(&uses, &delivered, Some(&["localhost/tools:1"])),
            []
        );
    }

    #[test]
    fn a_near_miss_is_an_error_whatever_the_nodes_hold_but_what_they_hold_by_that_name() {
        let delivered = [image("localhost/app:e2e")];
        let near = |loaded: &str| Problem::NearMiss {
            loaded: vec![loaded.into()],
            pulled: false,
        };
        // Another tag, a missing `localhost/`, docker.io's spelling, a
        // registry host of its own: each near the loaded name.
        let uses = [
            usage("localhost/app:latest", NEVER),
            usage("app:e2e", NEVER),
            usage("docker.io/library/app:e2e", IF_NOT_PRESENT),
            usage("registry.example.com:5000/app:e2e", None),
        ];
        assert_eq!(
            problems(&uses, &delivered, None),
            vec![near("localhost/app:e2e"); 4]
        );
        assert_eq!(
            problems(&uses, &delivered, Some(&["docker.io/library/redis:7"])),
            vec![near("localhost/app:e2e"); 4]
        );
        // Held by the nodes under the name asked for: it resolves.
        assert_eq!(
            problems(&uses[..1], &delivered, Some(&["localhost/app:latest"])),
            []
        );
    }

    #[test]
    fn another_tag_pulled_from_its_registry_is_a_warning_with_never_an_error() {
        let delivered = [image("postgres:16"), image("ghcr.io/org/api:e2e")];
        let found = problems(
            &[
                usage("postgres:15", None),
                usage("ghcr.io/org/api:1", IF_NOT_PRESENT),
                usage("postgres:15", NEVER),
                // Same name on another registry: not a pull of the same
                // repository, so the mistake it looks like.
                usage("org/api:e2e", IF_NOT_PRESENT),
            ],
            &delivered,
            None,
        );
        let pulled = |loaded: &str, pulled| Problem::NearMiss {
            loaded: vec![loaded.into()],
            pulled,
        };
        assert_eq!(
            found,
            [
                pulled("postgres:16", true),
                pulled("ghcr.io/org/api:e2e", true),
                pulled("postgres:16", false),
                pulled("ghcr.io/org/api:e2e", false),
            ]
        );
    }

    #[test]
    fn a_never_name_near_nothing_is_an_error_only_when_the_nodes_are_known_to_lack_it() {
        let delivered = [image("localhost/app:e2e")];
        let uses = [usage("localhost/tools:1", NEVER)];
        assert_eq!(problems(&uses, &delivered, None), [Problem::MustBeOnNodes]);
        assert_eq!(
            problems(&uses, &delivered, Some(&["localhost/tools:2", "busybox:1"])),
            [Problem::NotOnNodes {
                near: vec!["localhost/tools:2".into()]
            }]
        );
    }

    #[test]
    fn pulled_names_always_and_by_digest_are_left_alone() {
        let delivered = [image("localhost/app:e2e")];
        let pinned = format!("localhost/app@sha256:{}", "a".repeat(64));
        let uses = [
            // IfNotPresent of an image from a registry: pulled, as meant.
            usage("postgres:16", None),
            // `latest` is pulled always by default; and when stated.
            usage("localhost/app", None),
            usage("localhost/app:e2e-old", Some(PullPolicy::Always)),
            usage(&pinned, NEVER),
        ];
        assert_eq!(problems(&uses, &delivered, Some(&[])), []);
    }

    #[test]
    fn the_error_and_the_finding_name_both_names_and_the_fix() {
        let delivered = [image("localhost/app:e2e")];
        let mismatches = check(
            &[usage("localhost/app:latest", NEVER), usage("app:e2e", None)],
            &Holdings {
                delivered: &delivered,
                held: None,
            },
        );
        assert_eq!(
            mismatches[0].to_string(),
            "app.yaml (Deployment app, container app) asks for localhost/app:latest with imagePullPolicy Never; this plan loads localhost/app:e2e: name localhost/app:e2e in app.yaml, or add localhost/app:latest to the plan's images"
        );
        assert_eq!(
            mismatches[1].to_string(),
            "app.yaml (Deployment app, container app) asks for app:e2e (on a node: docker.io/library/app:e2e) with imagePullPolicy IfNotPresent (Kubernetes' default for it); this plan loads localhost/app:e2e: name localhost/app:e2e in app.yaml, or add app:e2e to the plan's images"
        );
        let finding = mismatches[0].finding("app");
        assert_eq!(finding.id, "image-name.app.localhost/app:latest");
        assert_eq!(finding.status, Status::Fail);
        assert_eq!(finding.measured, mismatches[0].to_string());
        assert_eq!(
            finding.needed,
            "the name of an image this plan loads: localhost/app:e2e"
        );
        assert_eq!(
            finding.fix.as_deref(),
            Some(
                "name localhost/app:e2e in app.yaml, or add localhost/app:latest to the plan's images"
            )
        );
        let unknown = Mismatch {
            usage: usage("localhost/tools:1", NEVER),
            problem: Problem::MustBeOnNodes,
        };
        assert_eq!(unknown.finding("app").status, Status::Warn);
        assert!(
            unknown.to_string().ends_with(
                "which this plan does not load: it must be on every node already, else add localhost/tools:1 to the plan's images, or load it into the nodes first (`loadmaster load localhost/tools:1`)"
            ),
            "{unknown}"
        );
    }

    #[test]
    fn the_preflight_judges_each_step_by_the_plan_images_and_warns_of_unreadable_ones() {
        let scratch = tempfile::Builder::new()
            .prefix("lm-pull-policy-")
            .tempdir()
            .unwrap();
        let dir = scratch.path().to_path_buf();
        std::fs::write(
            dir.join("app.yaml"),
            "kind: Pod\nmetadata:\n  name: app\nspec:\n  containers:\n    - name: app\n      image: localhost/app:latest\n      imagePullPolicy: Never\n    - name: db\n      image: postgres:16\n",
        )
        .unwrap();
        std::fs::write(dir.join("broken.yaml"), "a: [b").unwrap();
        let plan_file = dir.join("loadmaster.yaml");
        std::fs::write(
            &plan_file,
            "apiVersion: loadmaster/v1\ncluster:\n  name: lm\nimages:\n  - name: localhost/app:e2e\ndeploy:\n  - name: app\n    manifests: [app.yaml]\n  - name: broken\n    manifests: [broken.yaml]\n",
        )
        .unwrap();
        let plan = crate::plan::load(&plan_file);
        let findings = plan.as_ref().map(|plan| findings(plan, &read_all(plan)));
        let found: Vec<(String, Status)> = findings
            .unwrap()
            .into_iter()
            .map(|f| (f.id, f.status))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "image-name.app.localhost/app:latest".to_string(),
                    Status::Fail
                ),
                ("image-name.broken".to_string(), Status::Warn),
            ]
        );
    }
}
