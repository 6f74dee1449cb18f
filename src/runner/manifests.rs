//! The plan images a deploy step's manifests name, so that in the step
//! graph a deploy waits for the deliveries of those images alone (a
//! PostgreSQL pulled from a registry does not wait for the builds).
//!
//! Every `image:` value anywhere in the documents counts (containers, init
//! containers, CronJob templates, custom resources that name images the
//! same way), compared with the plan's images as references normalized the
//! way the nodes resolve them (`app:1` is `docker.io/library/app:1`). A
//! kustomize directory is rendered with `kubectl kustomize` first, as
//! `apply -k` would render it, since kustomize may rename images. When the
//! manifests cannot be read, the step waits for every image and the reason
//! says why: waiting too long is safe, deploying before an image is there
//! is not.

use crate::archive::normalize_reference;
use crate::plan::{Apply, Image};
use crate::process::{self, Spec};
use std::collections::BTreeSet;
use std::time::Duration;

/// How long rendering a kustomize directory may take.
const KUSTOMIZE_TIMEOUT: Duration = Duration::from_secs(60);

/// The indexes into `images` of the images `apply` names; `Err` says why
/// they cannot be known.
pub fn named(apply: &Apply, images: &[Image]) -> Result<BTreeSet<usize>, String> {
    let texts = match apply {
        Apply::Manifests { paths } => paths
            .iter()
            .map(|path| {
                std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))
            })
            .collect::<Result<Vec<String>, String>>()?,
        Apply::Kustomize { dir } => vec![kustomize(dir)?],
    };
    let mut named = BTreeSet::new();
    for text in &texts {
        for value in images_in(text)? {
            let Ok(reference) = normalize_reference(&value) else {
                continue;
            };
            let reference = reference.to_string();
            named.extend(
                images
                    .iter()
                    .enumerate()
                    .filter_map(|(n, image)| (image.reference == reference).then_some(n)),
            );
        }
    }
    Ok(named)
}

/// `kubectl kustomize DIR`: the manifests `apply -k` would apply.
fn kustomize(dir: &std::path::Path) -> Result<String, String> {
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

/// Every string under an `image` key in the YAML documents of `text`.
fn images_in(text: &str) -> Result<Vec<String>, String> {
    use serde::Deserialize;
    let mut found = Vec::new();
    for document in serde_norway::Deserializer::from_str(text) {
        let value =
            serde_norway::Value::deserialize(document).map_err(|e| format!("not YAML: {e}"))?;
        collect(&value, &mut found);
    }
    Ok(found)
}

fn collect(value: &serde_norway::Value, found: &mut Vec<String>) {
    use serde_norway::Value;
    match value {
        Value::Mapping(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    (Some("image"), Value::String(image)) => found.push(image.clone()),
                    _ => collect(value, found),
                }
            }
        }
        Value::Sequence(items) => items.iter().for_each(|item| collect(item, found)),
        Value::Tagged(tagged) => collect(&tagged.value, found),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{ImageSource, PullPolicy};

    fn image(name: &str) -> Image {
        Image {
            name: name.to_string(),
            reference: normalize_reference(name).unwrap().to_string(),
            source: ImageSource::Pull {
                policy: PullPolicy::IfMissing,
            },
        }
    }

    #[test]
    fn images_anywhere_in_every_document_are_found() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      initContainers:\n        - name: migrate\n          image: localhost/api:e2e\n      containers:\n        - name: api\n          image: \"app:1\"\n---\napiVersion: batch/v1\nkind: CronJob\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers:\n            - image: docker.io/library/postgres:16-alpine\n---\n# an empty document\n";
        assert_eq!(
            images_in(text).unwrap(),
            vec![
                "localhost/api:e2e",
                "app:1",
                "docker.io/library/postgres:16-alpine"
            ]
        );
        assert!(images_in("a: [b").is_err());
    }

    #[test]
    fn manifests_name_plan_images_as_the_nodes_resolve_them() {
        let dir = std::env::temp_dir().join(format!("lm-manifests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
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
        let named_by = |paths: Vec<std::path::PathBuf>| named(&Apply::Manifests { paths }, &images);
        assert_eq!(named_by(vec![db.clone()]).unwrap(), BTreeSet::from([1]));
        assert_eq!(named_by(vec![db, api]).unwrap(), BTreeSet::from([0, 1]));
        let missing = named_by(vec![dir.join("nope.yaml")]).unwrap_err();
        assert!(missing.contains("nope.yaml"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
