//! The images a deploy step's manifests name, read once per step for two
//! users: the step graph, in which a deploy waits for the deliveries of
//! the plan images it names alone (a PostgreSQL pulled from a registry does
//! not wait for the builds), and the check that every name will resolve on
//! the nodes ([`super::pull_policy`]).
//!
//! Every `image:` value anywhere in the documents counts (containers, init
//! containers, CronJob templates, custom resources that name images the
//! same way), each with the mapping's `imagePullPolicy` (else Kubernetes'
//! default) and where it is: the file, the object (kind and name) and the
//! container. Names are compared with the plan's images as references
//! normalized the way the nodes resolve them (`app:1` is
//! `docker.io/library/app:1`). A kustomize directory is rendered with
//! `kubectl kustomize` first, as `apply -k` would render it, since
//! kustomize may rename images. When the manifests cannot be read, the
//! step waits for every image and the reason says why: waiting too long is
//! safe, deploying before an image is there is not.

use crate::archive::{ImageReference, normalize_reference};
use crate::plan::{Apply, Image};
use crate::process::{self, Spec};
use serde_norway::Value;
use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// How long rendering a kustomize directory may take.
const KUSTOMIZE_TIMEOUT: Duration = Duration::from_secs(60);

/// A container's `imagePullPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// Kubernetes' default for `reference`: `Always` for a `latest` tag (or
    /// none, which normalizes to `latest`) without a digest, else
    /// `IfNotPresent`.
    pub fn default_for(reference: &ImageReference) -> PullPolicy {
        if reference.digest().is_none() && reference.tag() == Some("latest") {
            PullPolicy::Always
        } else {
            PullPolicy::IfNotPresent
        }
    }

    fn parse(text: &str) -> Option<PullPolicy> {
        match text {
            "Always" => Some(PullPolicy::Always),
            "IfNotPresent" => Some(PullPolicy::IfNotPresent),
            "Never" => Some(PullPolicy::Never),
            _ => None,
        }
    }
}

impl fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        })
    }
}

/// One `image:` value of a step's manifests, and what pulls it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageUse {
    /// As the manifest writes it.
    pub image: String,
    /// As the nodes resolve it.
    pub reference: ImageReference,
    /// As the manifest states it, else Kubernetes' default.
    pub policy: PullPolicy,
    /// The policy is the default, not written in the manifest.
    pub policy_defaulted: bool,
    pub place: Place,
}

/// Where an image is named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    /// The manifest file, or the kustomize directory, as shown to people
    /// (relative to the plan's directory when inside it).
    pub file: String,
    /// The object's kind and name (`Deployment app`), when it has them.
    pub object: Option<String>,
    /// The container's name, when the mapping has one.
    pub container: Option<String>,
}

impl fmt::Display for Place {
    /// `app.yaml (Deployment app, container app)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        let container = self.container.as_ref().map(|c| format!("container {c}"));
        let within: Vec<&str> = self
            .object
            .iter()
            .chain(&container)
            .map(String::as_str)
            .collect();
        if !within.is_empty() {
            write!(f, " ({})", within.join(", "))?;
        }
        Ok(())
    }
}

/// Every image use of what `apply` applies, files shown relative to
/// `base` (the plan's directory); `Err` says why they cannot be known.
/// Values that are no image reference (a template's `${IMAGE}`) are left
/// out: nothing resolves them.
pub fn read(apply: &Apply, base: &Path) -> Result<Vec<ImageUse>, String> {
    let shown = |path: &Path| {
        path.strip_prefix(base)
            .unwrap_or(path)
            .display()
            .to_string()
    };
    let sources = match apply {
        Apply::Manifests { paths } => paths
            .iter()
            .map(|path| {
                std::fs::read_to_string(path)
                    .map(|text| (shown(path), text))
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))
            })
            .collect::<Result<Vec<_>, String>>()?,
        Apply::Kustomize { dir } => vec![(shown(dir), kustomize(dir)?)],
    };
    let mut uses = Vec::new();
    for (file, text) in &sources {
        uses.extend(uses_in(text, file).map_err(|e| format!("{file}: {e}"))?);
    }
    Ok(uses)
}

/// The indexes into `images` of the plan images `uses` name.
pub fn named(uses: &[ImageUse], images: &[Image]) -> BTreeSet<usize> {
    uses.iter()
        .flat_map(|usage| {
            let reference = usage.reference.to_string();
            images
                .iter()
                .enumerate()
                .filter(move |(_, image)| image.reference == reference)
                .map(|(n, _)| n)
        })
        .collect()
}

/// `kubectl kustomize DIR`: the manifests `apply -k` would apply.
fn kustomize(dir: &Path) -> Result<String, String> {
    let argv = ["kubectl", "kustomize", &dir.display().to_string()];
    let spec = Spec {
        whole_stdout: true,
        ..Spec::new(&argv, KUSTOMIZE_TIMEOUT)
    };
    match process::supervise(&spec) {
        Ok(ran) if ran.success() => Ok(String::from_utf8_lossy(&ran.stdout_tail).into_owned()),
        Ok(ran) => Err(format!(
            "`kubectl kustomize {}` failed ({}): {}",
            dir.display(),
            ran.describe(spec.timeout),
            ran.tail_text().lines().last().unwrap_or_default()
        )),
        Err(error) => Err(format!("cannot run `kubectl kustomize`: {error}")),
    }
}

/// Every image use in the YAML documents of `text`, from `file`.
fn uses_in(text: &str, file: &str) -> Result<Vec<ImageUse>, String> {
    use serde::Deserialize;
    let mut found = Vec::new();
    for document in serde_norway::Deserializer::from_str(text) {
        let value = Value::deserialize(document).map_err(|e| format!("not YAML: {e}"))?;
        collect(&value, file, None, &mut found);
    }
    Ok(found)
}

/// The walk: a mapping with a string `image` is a use (its `name` the
/// container's, its `imagePullPolicy` the policy); a mapping with a `kind`
/// and a `metadata.name` is the object of everything under it.
fn collect(value: &Value, file: &str, object: Option<&str>, found: &mut Vec<ImageUse>) {
    match value {
        Value::Mapping(map) => {
            let text = |key: &str| map.get(key).and_then(Value::as_str);
            let named_object = text("kind").zip(
                map.get("metadata")
                    .and_then(|m| m.get("name"))
                    .and_then(Value::as_str),
            );
            let named_object = named_object.map(|(kind, name)| format!("{kind} {name}"));
            let object = named_object.as_deref().or(object);
            if let Some(image) = text("image")
                && let Ok(reference) = normalize_reference(image)
            {
                let stated = text("imagePullPolicy").and_then(PullPolicy::parse);
                found.push(ImageUse {
                    image: image.to_string(),
                    policy: stated.unwrap_or_else(|| PullPolicy::default_for(&reference)),
                    policy_defaulted: stated.is_none(),
                    reference,
                    place: Place {
                        file: file.to_string(),
                        object: object.map(str::to_string),
                        container: text("name").map(str::to_string),
                    },
                });
            }
            for (key, value) in map {
                if !(key.as_str() == Some("image") && value.is_string()) {
                    collect(value, file, object, found);
                }
            }
        }
        Value::Sequence(items) => items
            .iter()
            .for_each(|item| collect(item, file, object, found)),
        Value::Tagged(tagged) => collect(&tagged.value, file, object, found),
        _ => {}
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::plan::{ImageSource, PullPolicy as EnginePull};

    /// A plan image pulled into the engine (the tests of
    /// [`super::super::pull_policy`] use it too).
    pub(in super::super) fn image(name: &str) -> Image {
        Image {
            name: name.to_string(),
            reference: normalize_reference(name).unwrap().to_string(),
            source: ImageSource::Pull {
                policy: EnginePull::IfMissing,
            },
        }
    }

    #[test]
    fn images_anywhere_in_every_document_are_found_with_policy_and_place() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  template:\n    spec:\n      initContainers:\n        - name: migrate\n          image: localhost/api:e2e\n          imagePullPolicy: Never\n      containers:\n        - name: api\n          image: \"app\"\n        - image: ${IMAGE}\n---\napiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: nightly\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers:\n            - image: docker.io/library/postgres:16-alpine\n---\n# an empty document\n";
        let uses = uses_in(text, "app.yaml").unwrap();
        let seen: Vec<(&str, PullPolicy, bool, String)> = uses
            .iter()
            .map(|u| {
                (
                    u.image.as_str(),
                    u.policy,
                    u.policy_defaulted,
                    u.place.to_string(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                (
                    "localhost/api:e2e",
                    PullPolicy::Never,
                    false,
                    "app.yaml (Deployment api, container migrate)".to_string()
                ),
                // No tag is `latest`: pulled always by default.
                (
                    "app",
                    PullPolicy::Always,
                    true,
                    "app.yaml (Deployment api, container api)".to_string()
                ),
                (
                    "docker.io/library/postgres:16-alpine",
                    PullPolicy::IfNotPresent,
                    true,
                    "app.yaml (CronJob nightly)".to_string()
                ),
            ]
        );
        assert_eq!(
            uses[1].reference.to_string(),
            "docker.io/library/app:latest"
        );
        assert!(uses_in("a: [b", "x.yaml").is_err());
    }

    #[test]
    fn the_default_policy_is_always_only_for_latest_without_a_digest() {
        let policy = |name| PullPolicy::default_for(&normalize_reference(name).unwrap());
        assert_eq!(policy("app"), PullPolicy::Always);
        assert_eq!(policy("localhost/app:latest"), PullPolicy::Always);
        assert_eq!(policy("app:1"), PullPolicy::IfNotPresent);
        let pinned = format!("app:latest@sha256:{}", "a".repeat(64));
        assert_eq!(policy(&pinned), PullPolicy::IfNotPresent);
    }

    #[test]
    fn manifests_name_plan_images_as_the_nodes_resolve_them() {
        let scratch = tempfile::Builder::new()
            .prefix("lm-manifests-")
            .tempdir()
            .unwrap();
        let dir = scratch.path().to_path_buf();
        let db = dir.join("db.yaml");
        std::fs::write(&db, "spec:\n  containers:\n    - image: postgres:16\n").unwrap();
        let api = dir.join("api.yaml");
        std::fs::write(
            &api,
            "spec:\n  containers:\n    - image: localhost/api:e2e\n    - image: busybox\n",
        )
        .unwrap();
        let images = [
            image("localhost/api:e2e"),
            image("docker.io/library/postgres:16"),
            image("localhost/worker:e2e"),
        ];
        let named_by = |paths: Vec<std::path::PathBuf>| {
            read(&Apply::Manifests { paths }, &dir).map(|uses| named(&uses, &images))
        };
        assert_eq!(named_by(vec![db.clone()]).unwrap(), BTreeSet::from([1]));
        assert_eq!(named_by(vec![db, api]).unwrap(), BTreeSet::from([0, 1]));
        let missing = named_by(vec![dir.join("nope.yaml")]).unwrap_err();
        assert!(missing.contains("nope.yaml"), "{missing}");
    }

    #[test]
    fn a_kustomization_is_read_as_rendered_with_its_renamed_images() {
        if !process::on_path("kubectl") {
            eprintln!("note: kubectl is not on PATH: skipping the kustomize rendering test");
            return;
        }
        let scratch = tempfile::Builder::new()
            .prefix("lm-kustomize-")
            .tempdir()
            .unwrap();
        let dir = scratch.path().to_path_buf();
        std::fs::write(
            dir.join("app.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: app\nspec:\n  containers:\n    - name: app\n      image: app:latest\n      imagePullPolicy: Never\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("kustomization.yaml"),
            "resources: [app.yaml]\nimages:\n  - name: app\n    newName: localhost/app\n    newTag: e2e\n",
        )
        .unwrap();
        let uses = read(
            &Apply::Kustomize { dir: dir.clone() },
            dir.parent().unwrap(),
        );
        let uses = uses.unwrap();
        assert_eq!(uses.len(), 1, "{uses:?}");
        assert_eq!(uses[0].reference.to_string(), "localhost/app:e2e");
        assert_eq!(uses[0].policy, PullPolicy::Never);
        assert_eq!(
            uses[0].place.to_string(),
            format!(
                "{} (Pod app, container app)",
                dir.file_name().unwrap().to_string_lossy()
            )
        );
    }
}
