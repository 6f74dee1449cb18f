//! Deployed manifests that name pushed images: a kustomize overlay per
//! thing a deploy step applies, written into the run directory, whose
//! `images:` entries rename every plan image to the registry's name pinned
//! by the pushed manifest's digest. The user's files stay as they are.
//!
//! kustomize's load restrictor refuses files outside an overlay's root, but
//! not directories: a manifest file is copied into its overlay, a kustomize
//! directory is referenced by a path relative to the overlay (kustomize
//! refuses absolute ones). One overlay per manifest file keeps the plan's
//! order of `kubectl apply -f`.
//!
//! kustomize matches an `images:` name literally (`app:1` does not match
//! `docker.io/library/app:1`) and, when the name has a tag, only that tag;
//! so each image gets one entry per spelling docker accepts for it, and an
//! image the plan does not deliver is left alone. kustomize 5 (kubectl
//! 1.27+) is needed for tagged names.

use crate::archive::{Digest, ImageReference};
use crate::plan::Apply;
use serde::Serialize;
use std::path::{Component, Path, PathBuf};

/// One pushed image: manifests that name `from` get `to@digest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewrite {
    /// The plan's image, normalized.
    pub from: ImageReference,
    /// The repository as the nodes reach the registry:
    /// `HOST[:PORT]/PREFIX/REPO`.
    pub to: String,
    /// The pushed manifest's digest.
    pub digest: Digest,
}

impl Rewrite {
    /// `to@digest`: the name manifests get.
    pub fn pinned(&self) -> String {
        format!("{}@{}", self.to, self.digest)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Kustomization<'a> {
    api_version: &'static str,
    kind: &'static str,
    resources: Vec<String>,
    images: Vec<ImageEntry<'a>>,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct ImageEntry<'a> {
    name: String,
    new_name: &'a str,
    digest: String,
}

/// Writes the overlays for what a step applies into `dir` (made if
/// missing) and returns them, each to be applied with `kubectl apply -k`,
/// in order.
pub fn write(apply: &Apply, rewrites: &[Rewrite], dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let images: Vec<ImageEntry> = rewrites
        .iter()
        .flat_map(|rewrite| {
            rewrite.from.spellings().into_iter().map(|name| ImageEntry {
                name,
                new_name: &rewrite.to,
                digest: rewrite.digest.to_string(),
            })
        })
        .collect();
    let overlay = |name: &str, resource: String| -> std::io::Result<PathBuf> {
        let root = dir.join(name);
        std::fs::create_dir_all(&root)?;
        let kustomization = Kustomization {
            api_version: "kustomize.config.k8s.io/v1beta1",
            kind: "Kustomization",
            resources: vec![resource],
            images: images.clone(),
        };
        let text = serde_norway::to_string(&kustomization).map_err(std::io::Error::other)?;
        std::fs::write(root.join("kustomization.yaml"), text)?;
        Ok(root)
    };
    match apply {
        Apply::Manifests { paths } => paths
            .iter()
            .enumerate()
            .map(|(n, path)| {
                let file_name = path
                    .file_name()
                    .map_or("manifest.yaml".into(), |name| name.to_string_lossy());
                let root = overlay(&format!("{n}-{file_name}"), file_name.to_string())?;
                std::fs::copy(path, root.join(file_name.as_ref()))?;
                Ok(root)
            })
            .collect(),
        Apply::Kustomize { dir: base } => {
            let root = dir.join("kustomize");
            std::fs::create_dir_all(&root)?;
            let relative = relative_path(&root.canonicalize()?, &base.canonicalize()?);
            Ok(vec![overlay("kustomize", relative.display().to_string())?])
        }
    }
}

/// `to` as a path relative to the directory `from` (both absolute).
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path = PathBuf::new();
    for _ in common..from.len() {
        path.push("..");
    }
    for component in &to[common..] {
        path.push(component);
    }
    if path.as_os_str().is_empty() {
        path.push(".");
    }
    path
}

#[cfg(test)]
mod tests {
    use super::relative_path;
    use std::path::Path;

    #[test]
    fn relative_paths_climb_to_the_common_directory() {
        let rel = |from, to| relative_path(Path::new(from), Path::new(to));
        assert_eq!(
            rel("/r/runs/1/deploy/x", "/p/k"),
            Path::new("../../../../../p/k")
        );
        assert_eq!(rel("/p/a/b", "/p/c"), Path::new("../../c"));
        assert_eq!(rel("/p", "/p/c/d"), Path::new("c/d"));
        assert_eq!(rel("/p", "/p"), Path::new("."));
    }
}
